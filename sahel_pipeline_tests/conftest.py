"""Fixtures shared by the tests; the helpers they use (paths, the real-data mark) are in fixtures.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from sahel_pipeline import SAMPLE_DIR


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE_DIR
