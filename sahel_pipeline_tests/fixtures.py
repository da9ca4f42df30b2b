"""Helpers shared by the tests: where the real files and the bad files are, the test's 'today', and the mark for tests
that read the real files (conftest.py keeps only pytest fixtures)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

TESTS_DIR = Path(__file__).resolve().parent
BAD_FILES = TESTS_DIR / "bad_files"
REAL_DIR = TESTS_DIR.parents[1] / "shared" / "data" / "real"
TODAY = dt.date(2026, 11, 21)
# The one line of a report that names the time it was made: two reports of the same inputs differ only there.
GENERATED = re.compile(rb"Generated \d{1,2} \w+ \d{4}, \d\d:\d\d UTC")


def without_report_time(page: bytes) -> bytes:
    return GENERATED.sub(b"Generated (time)", page)

Test = TypeVar("Test", bound=Callable)



def canonical(paths, tmp_path: Path):
    """The canonical events of the CSV files under `paths`, ingested with a cache in `tmp_path` on the test's today."""
    from sahel_pipeline.core.ingest import find_csv_files, ingest

    return ingest(find_csv_files(paths), tmp_path / "cache", TODAY, log=lambda _: None).events


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


def materialize_upstream(job, instance, **kwargs):
    """Ingest and panels alone (unpartitioned): they add the month partitions the data can score to the instance."""
    from sahel_pipeline.defs.automation import UPSTREAM

    result = job.execute_in_process(asset_selection=UPSTREAM, instance=instance, raise_on_error=False, **kwargs)
    assert result.success, "ingest and panels failed"
    return result


def free_port() -> int:
    """A loopback port nothing listens on now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def instance_with_months(*months: str) -> Iterator:
    """A test instance in which `months` are month partitions, for a run that reads what an earlier run stored (in a
    whole run the panels add them)."""
    import dagster as dg

    from sahel_pipeline.defs.partitions import MONTHS

    assert MONTHS.name is not None
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(MONTHS.name, list(months))
        yield instance


def code_location_job(name: str):
    """A job of the code location as Dagster rebuilds it in another process (a run worker, a Celery worker): what
    `dagster job execute -m sahel_pipeline.definitions -j <name>` runs."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from sahel_pipeline import PROJECT_DIR

    repository = ReconstructableRepository.for_module("sahel_pipeline.definitions", "defs", str(PROJECT_DIR))
    return repository.get_reconstructable_job(name)
