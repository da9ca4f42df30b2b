"""The command line's progress lines reach the terminal while Dagster captures a step's output."""

import logging
import os
from types import SimpleNamespace

from sahel_pipeline.runlog import DAGSTER_META, ProgressLines


def step_record(step: str, kind: str | None, message: str = "") -> logging.LogRecord:
    record = logging.LogRecord("sahel", logging.INFO if kind is None else logging.DEBUG, "", 0, message, None, None)
    event = SimpleNamespace(event_type_value=kind) if kind else None
    setattr(record, DAGSTER_META, {"step_key": step, "dagster_event": event, "orig_message": message, "job_tags": {}})
    return record


def test_a_steps_line_goes_to_the_terminal_not_into_the_captured_output(tmp_path):
    terminal = (tmp_path / "terminal").open("w")
    progress = ProgressLines(terminal)
    # What Dagster's compute-log capture does while a run's steps execute: the stream's descriptor now points at
    # the capture file (and a `tail` echoes it back, late: the run's last lines were lost from the terminal).
    capture = (tmp_path / "capture").open("w")
    saved = os.dup(terminal.fileno())
    os.dup2(capture.fileno(), terminal.fileno())
    try:
        progress.emit(step_record("ingested_events", "STEP_START"))
        progress.emit(step_record("ingested_events", None, "canonical events: 12,507"))
        progress.emit(step_record("ingested_events", "STEP_SUCCESS"))
    finally:
        os.dup2(saved, terminal.fileno())
        os.close(saved)
    terminal.close()
    capture.close()
    assert (tmp_path / "terminal").read_text().startswith("ingested_events (0.0 s): canonical events: 12,507\n")
    assert (tmp_path / "capture").read_text() == ""
