"""The fitting pool: worker processes that fit series, started once and shared by everything in this process."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from concurrent.futures import Executor, ProcessPoolExecutor

from sahel_pipeline.core.lifeline import watch_owner
from sahel_pipeline.core.models import FITTING_MODULES


class FittingPool:
    """Worker processes that fit series (and draw the report's plots), shared by everything that runs in this
    process.

    Starting them costs seconds of CPU (each imports numpy, scipy and statsmodels), so they start only when a month
    has enough fitting to pay for them, or early in the background (`warm_up`) when a run knows it will fit; they are
    then kept until the process ends. They come from a fork server that has imported the models once; scripts using
    them need the `if __name__ == "__main__":` guard.
    """

    _shared: dict[int, FittingPool] = {}

    def __init__(self, workers: int):
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._starting = threading.Lock()

    def executor(self) -> Executor:
        with self._starting:
            if self._executor is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(fork_server_preload())
                # Each worker ends when this process does, however it ends (lifeline.watch_owner).
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=context, initializer=watch_owner, initargs=(os.getpid(),)
                )
                atexit.register(self._executor.shutdown, cancel_futures=True)
            return self._executor

    @property
    def started(self) -> bool:
        return self._executor is not None

    def warm_up(self) -> None:
        """Start the workers on a thread, so that their imports run on idle cores while this process does other work:
        the first submission waits for the fork server to import statsmodels, about a second and a half."""
        threading.Thread(target=self._start_workers, name="fitting-pool-warm-up", daemon=True).start()

    def _start_workers(self) -> None:
        # Best effort: a run that stops early shuts the executor down under this thread, and a pool that cannot start
        # raises again, with its reason, where the workers are first used.
        try:
            self.executor().submit(int)
        except RuntimeError:
            pass


def fork_server_preload() -> list[str]:
    """What the fork server imports once for all its workers: the models, and matplotlib (the workers draw the
    report's plots too; each would otherwise import it at its first plot, 0.6 s of CPU, docs/performance.md); then it
    freezes them out of the garbage collector's reach (frozen_imports; sahel_pipeline/startup.py says why)."""
    from sahel_pipeline.core.report.plots import PLOTTING_MODULES  # not at the top: core.report imports this module

    models = ["sahel_pipeline.core.models", "sahel_pipeline.core.lifeline", *FITTING_MODULES]
    return [*models, *PLOTTING_MODULES, "sahel_pipeline.core.frozen_imports"]


def fitting_pool(workers: int) -> FittingPool | None:
    """The process's pool of `workers` fitting processes (None for one: fit in this process)."""
    if workers <= 1:
        return None
    if workers not in FittingPool._shared:
        FittingPool._shared[workers] = FittingPool(workers)
    return FittingPool._shared[workers]
