"""Helpers shared by the tests: where the real files and the bad files are, the test's 'today', and the mark for tests
that read the real files (conftest.py keeps only pytest fixtures)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

TESTS_DIR = Path(__file__).resolve().parent
BAD_FILES = TESTS_DIR / "bad_files"
REAL_DIR = TESTS_DIR.parents[1] / "shared" / "data" / "real"
TODAY = dt.date(2026, 11, 21)

Test = TypeVar("Test", bound=Callable)


def requires_real_data(test: Test) -> Test:
    """A test that reads the real ACLED/UCDP files: marked slow, and skipped with the reason when they are absent."""
    absent = pytest.mark.skipif(
        not REAL_DIR.is_dir(),
        reason=f"real ACLED/UCDP files not found at {REAL_DIR} (they are not redistributed with the project)",
    )
    return pytest.mark.slow(absent(test))


def real_file(name: str) -> Path:
    return REAL_DIR / name


def running(pid: int) -> bool:
    """Whether a process runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def outliving(pids: list[int], seconds: float = 5) -> list[int]:
    """The processes still running after `seconds`; they are then killed, so that a failing test leaves none."""
    deadline = time.monotonic() + seconds
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if running(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left
