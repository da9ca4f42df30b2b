"""The output folder's lock: one run at a time writes alerts, reports and the warehouse under an output folder.

Two runs on one folder with different data would mix their outputs (one printing the other's counts). A run takes
the lock before writing: `<output folder>/.sahel.lock`, a small JSON file naming the process the lock lives with
(its PID, its start time, the host), the Dagster run when there is one, and since when. The lock lives with a
process, not with a file handle, because a Dagster run is several processes: with the multiprocess executor each step
is a child of the run's process, so a step takes or joins the lock on behalf of its parent, and the run's later steps
find the lock theirs while another run is refused. A `sahel run` holds it itself, and the Dagster runs it makes in
its process join it.

A lock whose process is gone (killed, crashed, or a Dagster run that ended) is stale: the next run takes it over and
removes the temporary files interrupted writes left (storage.remove_stale_files). The process is matched on its
start time too, so a PID reused by an unrelated process does not hold the folder. A lock taken on another host cannot
be checked from here and is respected; the refusal says how to remove it by hand.
"""

from __future__ import annotations

import atexit
import datetime as dt
import fcntl
import json
import multiprocessing
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from sahel_pipeline.core.storage import remove_stale_files, written_aside

LOCK_FILE = ".sahel.lock"
Log = Callable[[str], None]


class OutputFolderLocked(RuntimeError):
    """Another run holds the output folder; the message names it and says what to do."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started: str | None  # the process's start time (Linux: clock ticks after boot), to tell a reused PID
    run_id: str | None  # the Dagster run, when the lock was taken for one
    since: str
    what: str  # "sahel run", "Dagster run", ...

    def describe(self) -> str:
        run = f" {self.run_id}" if self.run_id else ""
        return f"PID {self.pid} on {self.host} ({self.what}{run}, since {self.since})"


def process_start(pid: int) -> str | None:
    """When a process started (Linux), or None where that cannot be read; None too for a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def is_alive(holder: Holder) -> bool:
    """Whether the holder's process still runs. A holder on another host cannot be checked: taken to be alive."""
    if holder.host != socket.gethostname():
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    if holder.started is None or not Path("/proc", str(holder.pid)).exists():
        return True
    return process_start(holder.pid) == holder.started


def run_process() -> int:
    """The process whose life a run's lock lives with: the parent of a multiprocessing child (a step of Dagster's
    multiprocess executor), else this one."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid is not None else os.getpid()


@contextmanager
def _guarded(folder: Path) -> Iterator[None]:
    """Excludes other processes while the lock file is read and replaced (an flock on the folder itself)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def read_holder(folder: Path) -> Holder | None:
    try:
        return Holder(**json.loads((folder / LOCK_FILE).read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):  # a lock file cut short by a crash while it was written: nobody's
        return None


def take(folder: Path, what: str, run_id: str | None = None, log: Log = print) -> bool:
    """Take the output folder for the run of this process (run_process). Returns True when it was taken now (the
    caller then owns it, and stale temporary files have been removed), False when this run holds it already.
    Raises OutputFolderLocked, naming the holder, when another live run holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    pid = run_process()
    with _guarded(folder):
        holder = read_holder(folder)
        if holder is not None:
            ours = holder.host == socket.gethostname() and holder.pid == pid and holder.started == process_start(pid)
            if ours or (run_id is not None and holder.run_id == run_id):
                return False
            if is_alive(holder):
                raise OutputFolderLocked(
                    f"output folder {folder} is in use by another run: {holder.describe()}; wait for it to end, or, "
                    f"if that process is gone, remove {folder / LOCK_FILE}"
                )
            log(f"output folder {folder}: took over the lock of {holder.describe()}, which no longer runs")
        mine = Holder(pid, socket.gethostname(), process_start(pid), run_id,
                      dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), what)
        with written_aside() as aside:
            aside(folder / LOCK_FILE).write_text(json.dumps(asdict(mine)))
        stale = remove_stale_files(folder)
    if stale:
        log(f"output folder {folder}: removed {len(stale)} temporary file(s) left by an interrupted run")
    return True


def release(folder: Path) -> None:
    """Give the folder back, if this process's run holds it (a folder removed meanwhile holds nothing)."""
    if not folder.is_dir():
        return
    pid = run_process()
    with _guarded(folder):
        holder = read_holder(folder)
        if holder is not None and holder.pid == pid and holder.host == socket.gethostname():
            (folder / LOCK_FILE).unlink(missing_ok=True)


def hold_for_this_process(folder: Path, what: str, log: Log = print) -> None:
    """Take the folder for as long as this process runs (a command-line run), giving it back at exit."""
    if take(folder, what, log=log):
        atexit.register(release, folder)
