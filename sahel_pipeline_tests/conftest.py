"""Shared fixtures: where the real files, the sample and the bad files are, and a skip when real data is absent."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sahel_pipeline import SAMPLE_DIR

TESTS_DIR = Path(__file__).resolve().parent
BAD_FILES = TESTS_DIR / "bad_files"
REAL_DIR = TESTS_DIR.parents[1] / "shared" / "data" / "real"
TODAY = dt.date(2026, 11, 21)

requires_real_data = pytest.mark.skipif(
    not REAL_DIR.is_dir(),
    reason=f"real ACLED/UCDP files not found at {REAL_DIR} (they are not redistributed with the project)",
)


def real_file(name: str) -> Path:
    return REAL_DIR / name


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE_DIR
