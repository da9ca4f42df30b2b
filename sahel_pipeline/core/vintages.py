"""Vintages: what a raw folder held after each pull, so a week's alerts can be recomputed from exactly those files.

Every pull (`sahel fetch`, or the pull assets of the weekly job) ends by writing a manifest to `<raw>/.vintages/`:
when it ran, what it asked the provider, how many rows came back, the newest timestamp, the provider's version,
the files it wrote, and the holdings: every CSV of the raw folder at that moment with its size and SHA-256. Pulled
files are never rewritten, so a vintage's holdings stay on disk and `sahel run --as-of VINTAGE` ingests exactly
them (checking every hash), ignoring whatever arrived later.

A run records the vintage it was computed on: the newest vintage whose holdings are exactly the files it ingested
(none when files were added or changed by hand since the last pull, or nothing was ever pulled), and always the
digest of those files, which identifies the input whatever its origin.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from sahel_pipeline.core.ingest import file_sha256, find_csv_files
from sahel_pipeline.core.storage import written_aside

VINTAGES = ".vintages"
STAMP = "%Y-%m-%dT%H%M%SZ"


class VintageError(ValueError):
    """A vintage that cannot be found or whose files changed since; the message says which and how."""


@dataclass(frozen=True)
class Holding:
    file: str  # relative to the raw folder, as the ingest names it
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class Vintage:
    id: str
    provider: str
    created_at: str
    made_by: str  # "cli" or "dagster": a pull made by a Dagster run is scored by that run
    files: tuple[str, ...]  # written by this pull
    holdings: tuple[Holding, ...]
    record: dict  # the manifest as written, provider details included

    def digests(self) -> dict[str, str]:
        return {h.file: h.sha256 for h in self.holdings}


def stamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime(STAMP)


def new_stamp(raw_dir: Path, now: dt.datetime) -> str:
    """`2026-11-23T060012Z`, unique in the raw folder: a second pull in the same second gets `_2`, which sorts after
    it both in vintage ids and in file names."""
    base = stamp(now)
    taken = {v.id.rsplit("-", 1)[0] for v in read_vintages(raw_dir)}
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def vintage_id(stamp_text: str, provider: str) -> str:
    """`2026-11-23T060012Z-acled`: sorts by time."""
    return f"{stamp_text}-{provider.lower()}"


def manifest_head(stamp_text: str, provider: str, started: dt.datetime, finished: dt.datetime, made_by: str,
                  base_url: str) -> dict:
    """The fields every pull's manifest opens with; the provider's pull adds what it asked and got."""
    return {
        "vintage": vintage_id(stamp_text, provider),
        "provider": provider,
        "created_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "made_by": made_by,
        "base_url": base_url,
    }


def current_day(as_of: str = "") -> dt.date:
    """Today in UTC, or, when a past vintage is recomputed, the day it was pulled."""
    return vintage_date(as_of) if as_of else dt.datetime.now(dt.UTC).date()


def vintage_date(vintage_id: str) -> dt.date:
    """The UTC day a vintage was pulled, read from its id."""
    try:
        return dt.datetime.strptime(vintage_id[:18], STAMP).date()
    except ValueError:
        raise VintageError(f"'{vintage_id}' is not a vintage id (they look like 2026-11-23T060012Z-acled)") from None


@contextlib.contextmanager
def locked(raw_dir: Path) -> Iterator[None]:
    """One pull at a time per raw folder: the schedule's two runs, or a CLI pull beside a Dagster run, would
    otherwise interleave their files and list each other's half-written holdings."""
    folder = raw_dir / VINTAGES
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_vintages(raw_dir: Path, provider: str | None = None) -> list[Vintage]:
    folder = raw_dir / VINTAGES
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        vintage = Vintage(
            id=record["vintage"],
            provider=record["provider"],
            created_at=record["created_at"],
            made_by=record.get("made_by", "cli"),
            files=tuple(record["files"]),
            holdings=tuple(Holding(**h) for h in record["holdings"]),
            record=record,
        )
        if provider is None or vintage.provider == provider:
            found.append(vintage)
    return sorted(found, key=lambda v: v.id)


def holdings(raw_dir: Path, known: Iterable[Holding] = ()) -> list[Holding]:
    """Every CSV the ingest would read in raw_dir; a file unchanged since `known` (size, mtime) is not hashed again."""
    previous = {h.file: h for h in known}
    held = []
    for path, name in find_csv_files([raw_dir]):
        stat = path.stat()
        old = previous.get(name)
        if old and old.size == stat.st_size and old.mtime_ns == stat.st_mtime_ns:
            held.append(old)
        else:
            held.append(Holding(name, stat.st_size, stat.st_mtime_ns, file_sha256(path)))
    return held


def record_vintage(raw_dir: Path, record: dict) -> Vintage:
    """Write a pull's manifest, its holdings listed now (the pull's own files already in place)."""
    earlier = read_vintages(raw_dir)
    held = holdings(raw_dir, earlier[-1].holdings if earlier else ())
    record = {**record, "holdings": [asdict(h) for h in held]}
    folder = raw_dir / VINTAGES
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['vintage']}.json"
    with written_aside() as aside:
        aside(path).write_text(json.dumps(record, indent=1, ensure_ascii=False, default=str))
    return next(v for v in read_vintages(raw_dir) if v.id == record["vintage"])


def _roots(raw_paths: Iterable[Path]) -> list[Path]:
    return [Path(p) for p in raw_paths if Path(p).is_dir()]


def find(raw_paths: Iterable[Path], vintage_id: str) -> tuple[Path, Vintage]:
    """The raw folder that holds the vintage, and the vintage."""
    roots = _roots(raw_paths)
    for root in roots:
        for vintage in read_vintages(root):
            if vintage.id == vintage_id:
                return root, vintage
    known = [v.id for root in roots for v in read_vintages(root)]
    hint = f"; the latest: {', '.join(known[-3:])}" if known else "; no pull was recorded there"
    raise VintageError(f"no vintage {vintage_id} under {', '.join(map(str, roots)) or 'the raw paths'}{hint}")


def files_at(raw_paths: Iterable[Path], vintage_id: str) -> list[tuple[Path, str]]:
    """(path, name) of exactly the files held at a vintage, each checked against its recorded SHA-256."""
    root, vintage = find(raw_paths, vintage_id)
    files = []
    for holding in vintage.holdings:
        path = root / holding.file
        if not path.is_file():
            raise VintageError(f"vintage {vintage_id} held {holding.file}, which is no longer in {root}: "
                               "it cannot be recomputed exactly")
        if path.stat().st_size != holding.size or file_sha256(path) != holding.sha256:
            raise VintageError(f"{holding.file} changed since vintage {vintage_id} was recorded (its SHA-256 "
                               "differs): it cannot be recomputed exactly")
        files.append((path, holding.file))
    return sorted(files, key=lambda item: item[1])


def identify(raw_paths: Iterable[Path], ingested: dict[str, str]) -> str | None:
    """The newest vintage whose holdings are exactly the ingested files (name -> SHA-256), if any."""
    matches = [v.id for root in _roots(raw_paths) for v in read_vintages(root) if v.digests() == ingested]
    return max(matches) if matches else None


def input_digest(ingested: dict[str, str]) -> str:
    """One digest of every ingested file's name and content: equal digests, equal input."""
    text = "".join(f"{name}\t{digest}\n" for name, digest in sorted(ingested.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def provenance(ingest_summary: pl.DataFrame) -> dict[str, str | None]:
    """The data an output was computed on, from the ingest summary: the vintage (None when the files are not exactly
    one pull's holdings) and the digest of every file ingested."""
    row = ingest_summary.row(0, named=True) if ingest_summary.height else {}
    return {"vintage": row.get("vintage") or None, "input_digest": row.get("input_digest")}


def files_pulled_by(raw_paths: Iterable[Path], made_by: str) -> set[str]:
    """Names of the files pulls made by `made_by` wrote."""
    return {name for root in _roots(raw_paths) for v in read_vintages(root) if v.made_by == made_by for name in v.files}
