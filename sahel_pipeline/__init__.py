"""sahel_pipeline: an early-warning pipeline for armed-conflict analysts."""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
SAMPLE_DIR = PROJECT_DIR / "data" / "sample"
ALIAS_TABLE = PROJECT_DIR / "data" / "actor_aliases.csv"
