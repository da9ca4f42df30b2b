"""Start-up tricks: what a run does to its own process so that it starts, works and ends sooner, and why each exists.

A `sahel run` is a fresh process that imports Dagster, Great Expectations, statsmodels and matplotlib, builds and
drops frames of gigabytes, and exits; at 2.5 M events the weekly update's 15 s target is mostly that fixed cost.
Each trick below was measured in interleaved runs of the benchmark (`make bench`; the figures and their history are
in docs/performance.md), and is kept because it paid:

- **The allocator's decay** (`set_allocator_settings`, called on importing `sahel_pipeline`, because Polars reads it
  when it is first imported). Polars' jemalloc hands freed memory back after 0.5 s (pola-rs/polars#18088), so a run
  faulted the same pages in again and again: 1.5 million page faults and 4.6 s of system time in a weekly update.
  Keeping freed pages 5 s makes the weekly update about 0.4 s faster and the cold run's peak 0.3 GiB higher (4.8 to
  5.1 GiB; 30 s saved 0.6 s but took the peak to 6.6 GiB, over the 6 GiB budget). A value already in the
  environment (`_RJEM_MALLOC_CONF`) is kept.
- **Background imports** (`core/imports.py`). Great Expectations (2 to 3 s to import) is imported on a thread while
  the CSVs are read (`validation.warm_up_great_expectations`, at the ingest's start), statsmodels and matplotlib
  while Polars counts the panels (`defs/panels.py`): those stages hold the interpreter lock little, so the imports
  cost the run almost nothing, where the same imports at the first use are paid in full. They start in the assets,
  not here, so that a run launched from the UI has them too.
- **The fitting pool's warm-up** (`warm_up_fitting_pool`, called by the runner). Every run ends in fitting: the
  workers start on a thread as the run begins, so their imports overlap the ingest, and a running pool takes any
  month with a tenth of a second of fitting (weekly update 13.0 to 12.5 s, cold run about 28 to 26 s).
- **The fork server's `gc.freeze`** (`core/frozen_imports.py`, imported last by the pool's fork server: see
  `pool.fork_server_preload`). What the server imported moves out of the garbage collector's reach, as Python's
  documentation advises before forking: the workers share those objects without copying them, and the server's own
  exit skips collecting them (0.2 s after the last run, which a caller reading the output through a pipe waits for).
- **The run process's start-up objects frozen** (`freeze_start_up_objects`, called by the runner once the code
  location is built, before any run). Dagster, Polars and the definitions leave some 260,000 objects that live as
  long as the process; every full collection walked them again (9-11 in a weekly update, 0.2 s each). Frozen, the
  collector leaves them alone: its time in a weekly update 2.6 -> 1.9 s. Nothing of a run exists yet, so nothing a
  run drops is kept by the freeze.
- **No last garbage collection** (`skip_final_garbage_collection`, called by the command line and the benchmark).
  At exit Python collects every object the libraries created: over a second at the end of each `sahel run`, to free
  memory the operating system takes back anyway. Every output is written and closed before then.

- **Dagster's check records compiled first here** (`compile_check_records`, called by the runner). A Dagster record
  compiles its constructor on first use with its caller's local variables in the new function's namespace
  (dagster_shared's `EvalContext.update_from_frame`): the first asset check evaluated, the ingest's, left its step's
  context there for the life of the process, and with it every output that run had captured, the 2.5 M events (0.85
  GiB) among them, held while the panels counted. Compiled from here, the namespace holds nothing of a run's.

Tried and dropped (docs/performance.md): Great Expectations in a process of its own started at launch (it took the
CPU the ingest needed), importing it before Dagster (both imports hold the interpreter), drawing the report's plots
on the fitting workers (no faster).
"""

from __future__ import annotations

import atexit
import gc
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sahel_pipeline.core.pool import FittingPool

ALLOCATOR_SETTINGS = "dirty_decay_ms:5000,muzzy_decay_ms:5000"


def set_allocator_settings() -> None:
    """Before any module imports Polars; a value already in the environment is kept."""
    os.environ.setdefault("_RJEM_MALLOC_CONF", ALLOCATOR_SETTINGS)


def warm_up_fitting_pool(pool: FittingPool | None) -> None:
    """Start the fitting workers on a thread (nothing when the run fits in this process)."""
    if pool is not None:
        pool.warm_up()


def compile_check_records() -> None:
    """Construct the records a step makes of an asset check's result once, from a frame holding nothing large."""
    import dagster as dg
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationPlanned,
        AssetCheckEvaluationTargetMaterializationData,
    )

    key = dg.AssetKey("compiled_at_startup")
    AssetCheckEvaluationPlanned(asset_key=key, check_name="compiled")
    target = AssetCheckEvaluationTargetMaterializationData(storage_id=0, run_id="", timestamp=0.0)
    dg.AssetCheckEvaluation(asset_key=key, check_name="compiled", passed=True, target_materialization_data=target)


def freeze_start_up_objects() -> None:
    """Move what exists now out of the garbage collector's reach (collected first, so no garbage is frozen)."""
    gc.collect()
    gc.freeze()


def skip_final_garbage_collection() -> None:
    """Let the process end without its last garbage collection. Registered first, the freeze runs after every other
    exit handler."""
    atexit.register(gc.freeze)
