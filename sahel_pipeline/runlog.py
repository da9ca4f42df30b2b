"""What a terminal run shows and what it keeps: one progress line per step, Dagster's whole log in a file.

Dagster's own log (every step's events, a failing step's stack trace) is for engineers; an analyst at a terminal
wants to see each stage finish with its counts. The run's loggers send every record to the log file, and the
steps' own messages (files read, events, series fitted of total) to the progress lines; `--verbose` adds Dagster's
console log.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import sys
import time
from pathlib import Path
from typing import TextIO

import dagster as dg

# Dagster puts its structured fields on each record under this attribute (dagster._core.log_manager).
DAGSTER_META = "dagster_meta"
FILE_FORMAT = "%(asctime)s - dagster - %(levelname)s - %(message)s"  # as Dagster's console logger writes


def log_file_path(out: Path, now: dt.datetime | None = None) -> Path:
    """A new file per command under the output folder, named by when it started (UTC)."""
    now = now or dt.datetime.now(dt.UTC)
    return out / "logs" / f"sahel-{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}.log"


def terminal_stream(stream: TextIO | None = None) -> TextIO:
    """A stream on a duplicate of stderr's file descriptor (or `stream`'s). While a run's steps execute, Dagster
    points the process's descriptor 2 at the step's compute-log file and echoes that file back through a `tail`
    process, which it stops at the run's end before `tail` has read the last lines (dagster-io/dagster#23336): the
    last step's progress line was then missing from the terminal now and then. A duplicate taken before the runs
    keeps writing where stderr pointed. A stream without a descriptor (a test's capture) is used as it is."""
    stream = stream or sys.stderr
    try:
        duplicate = os.dup(stream.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        return stream
    return os.fdopen(duplicate, "w", buffering=1, encoding=getattr(stream, "encoding", None) or "utf-8",
                     errors="replace")


class ProgressLines(logging.Handler):
    """One line per finished step: its name, time and last message. On a terminal the line is rewritten in place as
    the step reports (reading a file, fitting series), so a long step shows it is moving."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(logging.DEBUG)  # step starts and ends are DEBUG records
        self.stream = terminal_stream(stream)
        self.live = self.stream.isatty()
        self.started: dict[str, float] = {}
        self.last: dict[str, str] = {}
        self.partition: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, DAGSTER_META, None)
        if not meta or not meta.get("step_key"):
            return
        step, event = meta["step_key"], meta.get("dagster_event")
        kind = event.event_type_value if event is not None else None
        self.partition = meta.get("job_tags", {}).get("dagster/partition")
        if kind == "STEP_START":
            self.started[step] = time.monotonic()
        elif kind == "STEP_SUCCESS":
            self._print(step, final=True)
        elif kind is None and record.levelno >= logging.INFO:
            self.last[step] = meta.get("orig_message", record.getMessage()).splitlines()[0]
            if self.live:
                self._print(step, final=False)

    def _print(self, step: str, final: bool) -> None:
        elapsed = time.monotonic() - self.started.get(step, time.monotonic())
        name = step.replace("__", "/")
        where = f"{self.partition} " if self.partition else ""
        line = f"{where}{name} ({elapsed:.1f} s)"
        if step in self.last:
            line += f": {self.last[step]}"
        if self.live:
            self.stream.write("\r\x1b[2K" + (line if final else line[: _width() - 1]) + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")
        self.stream.flush()


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 20)).columns


def run_loggers(path: Path, verbose: bool, progress: logging.Handler | None) -> dict[str, dg.LoggerDefinition]:
    """The loggers of the command line's runs: `file` (everything, DEBUG and up), and on the terminal either the
    progress lines or, with `--verbose`, Dagster's console log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
    handlers: list[logging.Handler] = [file_handler]
    if verbose:
        console = logging.StreamHandler(terminal_stream())
        console.setLevel(logging.INFO)
        console.setFormatter(logging.Formatter(FILE_FORMAT))
        handlers.append(console)
    elif progress is not None:
        handlers.append(progress)

    def make_logger(_context: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.Logger("sahel", logging.DEBUG)
        for handler in handlers:
            logger.addHandler(handler)
        return logger

    return {"sahel": dg.LoggerDefinition(make_logger, description="sahel's log file and progress lines")}
