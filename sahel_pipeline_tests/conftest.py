"""Fixtures shared by the tests; the helpers they use (paths, the real-data mark) are in fixtures.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from sahel_pipeline import SAMPLE_DIR


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE_DIR


@pytest.fixture(autouse=True)
def no_delivery_settings_from_the_environment(monkeypatch):
    """A developer's SAHEL_SMTP_* or webhook variables must not make a test send anything, nor change its outcome."""
    from sahel_pipeline.defs.resources import DELIVERY_ENVIRONMENT

    for name in DELIVERY_ENVIRONMENT.values():
        monkeypatch.delenv(name, raising=False)
