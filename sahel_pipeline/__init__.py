"""sahel_pipeline: an early-warning pipeline for armed-conflict analysts."""

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
DATA_DIR = PROJECT_DIR / "data"
SAMPLE_DIR = DATA_DIR / "sample"
ALIAS_TABLE = PROJECT_DIR / "data" / "actor_aliases.csv"
BREAK_DATES = PROJECT_DIR / "data" / "break_dates.csv"
KNOWN_ESCALATIONS = PROJECT_DIR / "data" / "known_escalations.csv"
SUBSCRIPTIONS = PROJECT_DIR / "data" / "subscriptions.csv"
# Origins of the rolling backtest by default: this many months up to the data's end. Here rather than in
# core/backtest.py so that `sahel --help` can show it without importing scipy and statsmodels.
BACKTEST_MONTHS = 36

# Polars configures its allocator (jemalloc) to hand freed memory back to the system after half a second, to keep
# its footprint small (pola-rs/polars#18088), and lets `_RJEM_MALLOC_CONF` override that. A run here builds and drops
# frames of gigabytes in turn, faulting the same pages in again: 1.5 million page faults and 4.6 s of system time in
# a weekly update at 2.5 M events. Keeping freed pages for 5 s makes the weekly update about 0.4 s faster and raises
# the cold run's peak memory from 4.8 to 5.1 GiB (30 s saved 0.6 s but took the peak to 6.6 GiB, over the 6 GiB
# budget; measured). Polars reads it when first imported, so it is set on importing this package, before any module
# here imports Polars; a value already in the environment is kept.
ALLOCATOR_SETTINGS = "dirty_decay_ms:5000,muzzy_decay_ms:5000"
os.environ.setdefault("_RJEM_MALLOC_CONF", ALLOCATOR_SETTINGS)
