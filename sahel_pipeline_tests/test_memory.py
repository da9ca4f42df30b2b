"""What a run keeps in memory after its work is done: nothing of the events it ingested."""

import subprocess
import sys

import pytest

# In a fresh interpreter: whether a Dagster record was compiled earlier in the test process decides the outcome.
AFTER_UPSTREAM = """
import gc, sys
from pathlib import Path
import polars as pl
from dagster._core.execution.context.system import StepExecutionContext
from sahel_pipeline.runner import Runner

if __name__ == "__main__":
    runner = Runner([], Path(sys.argv[1]), workers=1)
    events = runner.materialize_upstream()["events"]
    gc.collect()
    contexts = sum(isinstance(o, StepExecutionContext) and o.step.key == "ingested_events" for o in gc.get_objects())
    tables = sum(isinstance(o, pl.DataFrame) and o.height == events for o in gc.get_objects())
    print(contexts, tables, events)
"""


@pytest.mark.slow  # ingests the sample in a fresh interpreter
def test_after_ingest_and_panels_neither_the_ingest_step_nor_its_events_stay_in_memory(tmp_path):
    """Dagster compiles a record's constructor with its first caller's local variables: compiled from inside the
    ingest's step, it kept that step's context, and every output the run captured, for the life of the process."""
    done = subprocess.run(
        [sys.executable, "-c", AFTER_UPSTREAM, str(tmp_path / "out")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    contexts, tables, events = (int(x) for x in done.stdout.split()[-3:])
    assert events > 10_000  # the sample was ingested
    assert (contexts, tables) == (0, 0)


FROZEN_AT_START = """
import gc, sys
from pathlib import Path
from sahel_pipeline.runner import Runner

if __name__ == "__main__":
    before = gc.get_freeze_count()
    Runner([], Path(sys.argv[1]), workers=1)
    print(before, gc.get_freeze_count())
"""


@pytest.mark.slow  # a fresh interpreter imports the code location
def test_the_runner_freezes_what_start_up_made_before_any_run(tmp_path):
    """The libraries' and the definitions' objects live as long as the process: every full collection of a run
    walked them again (startup.freeze_start_up_objects)."""
    done = subprocess.run(
        [sys.executable, "-c", FROZEN_AT_START, str(tmp_path / "out")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = (int(x) for x in done.stdout.split()[-2:])
    assert before == 0 and after > 50_000
