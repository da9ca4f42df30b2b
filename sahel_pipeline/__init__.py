"""sahel_pipeline: an early-warning pipeline for armed-conflict analysts."""

from pathlib import Path

from sahel_pipeline.startup import set_allocator_settings

PROJECT_DIR = Path(__file__).resolve().parents[1]
DATA_DIR = PROJECT_DIR / "data"
SAMPLE_DIR = DATA_DIR / "sample"
ALIAS_TABLE = PROJECT_DIR / "data" / "actor_aliases.csv"
BREAK_DATES = PROJECT_DIR / "data" / "break_dates.csv"
KNOWN_ESCALATIONS = PROJECT_DIR / "data" / "known_escalations.csv"
SUBSCRIPTIONS = PROJECT_DIR / "data" / "subscriptions.csv"
PLACES_FILE = PROJECT_DIR / "data" / "places.csv"
# Origins of the rolling backtest by default: this many months up to the data's end. Here rather than in
# core/backtest.py so that `sahel --help` can show it without importing scipy and statsmodels.
BACKTEST_MONTHS = 36

# Before any module here imports Polars, which reads its allocator's settings when first imported (startup.py says why).
set_allocator_settings()
