"""sahel_pipeline: an early-warning pipeline for armed-conflict analysts."""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
SAMPLE_DIR = PROJECT_DIR / "data" / "sample"
ALIAS_TABLE = PROJECT_DIR / "data" / "actor_aliases.csv"
BREAK_DATES = PROJECT_DIR / "data" / "break_dates.csv"
KNOWN_ESCALATIONS = PROJECT_DIR / "data" / "known_escalations.csv"
