"""Files the pipeline writes and reads back: written aside and renamed into place, and checked before being trusted.

Every output (alerts, reports, plots, forecasts, the warehouse, the caches) goes through `written_aside`: the new
content is written to a temporary file beside the old one, and renamed over it only once it is complete. A run that
is killed, or a disk that fills up, leaves the previous file whole; what is left is a temporary file (named
`.<name>.<pid>.<random>.tmp`), which the next run that takes the output folder removes (`remove_stale_files`). The
rename is atomic on one filesystem; there is no fsync, so a power cut (not a crash) can still lose the last writes.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

TMP_SUFFIX = ".tmp"
Log = Callable[[str], None]


@contextmanager
def written_aside() -> Iterator[Callable[[str | Path], Path]]:
    """Yields `aside(path)`, which gives a temporary twin of `path` to write to. When the block ends, every twin
    replaces its path, in the order they were asked for; when the block fails, none does and the twins are removed.

        with written_aside() as aside:
            frame.write_csv(aside(csv_path))
            aside(json_path).write_text(document)
    """
    twins: list[tuple[Path, Path]] = []

    def aside(path: str | Path) -> Path:
        path = Path(path)
        twin = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
        twins.append((twin, path))
        return twin

    try:
        yield aside
    except BaseException:
        for twin, _ in twins:
            twin.unlink(missing_ok=True)
        raise
    for twin, path in twins:
        os.replace(twin, path)


def remove_stale_files(folder: Path) -> list[Path]:
    """Remove the temporary files interrupted writes left under `folder` (only when no other run writes there)."""
    stale = [p for p in folder.rglob(f".*{TMP_SUFFIX}") if p.is_file()] if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def discarded(path: Path, error: Exception, what: str, warn: Log) -> None:
    """Say that a stored file could not be read and is not used (and what the run does instead), and remove it."""
    reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    warn(f"{path} is unreadable ({type(error).__name__}: {reason}): discarded; {what}")
    path.unlink(missing_ok=True)


# What reading a truncated or corrupt stored file raises: Polars' errors (a Parquet footer, a page that does not
# decompress), JSON's (ValueError; KeyError and TypeError for a document of the wrong shape), the file system's.
UNREADABLE = (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_whole_png(data: bytes) -> bool:
    """A PNG whose every chunk is complete and matches its checksum, ending with IEND: a truncated or damaged plot
    is not (a cached plot is checked before it is embedded again)."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    offset = len(PNG_SIGNATURE)
    while offset + 12 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        end = offset + 12 + length
        if end > len(data):
            return False
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : end - 4]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[end - 4 : end])[0]:
            return False
        if kind == b"IEND":
            return end == len(data)
        offset = end
    return False
