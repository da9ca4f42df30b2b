"""Ingest: every CSV under the raw folders -> one canonical event table, with revisions and deletions applied.

Files are read once: each is normalised and its rows validated (bad ones to quarantine, judged on the day the file is
read) into a cache keyed by its content hash, and a manifest records what each file held, so a re-run on the same
files reads nothing and a weekly file adds only its own events. The merge itself is recomputed from the cached files
every time, so the table is always a function of the files present:

* the same event id in several files (ACLED re-publishes corrected events with a newer `timestamp`) keeps the newest
  revision; equal revisions go to the file that sorts last. Nothing is counted twice.
* an ACLED deletions file (`event_id_cnty`, `deleted_timestamp`) removes events whose revision is not newer than the
  deletion; a UCDP replacements file (written by `sahel fetch ucdp`) removes the events a newer GED version
  replaces and does not hold (Candidate events, or an earlier GED version's), counted apart.
* rows of an extract without ids that match an event of an export with ids (same source, date, location, event type
  and fatalities) are reported as overlaps and not kept twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sahel_pipeline.core.schema import (
    CANONICAL_COLUMNS,
    CONTENT_COLUMNS,
    QUARANTINE_SCHEMA,
    empty_canonical,
    empty_quarantine,
)
from sahel_pipeline.core.sources import SourceError, SourceFile, read_source_file
from sahel_pipeline.core.storage import UNREADABLE, discarded, written_aside
from sahel_pipeline.core.validation import quarantine_invalid_rows

DEFAULT_RAW_PATHS = "data/raw"  # where a fresh clone looks for exports; empty there, the bundled sample is used

# Bump when normalisation, the row rules or what the cache records change, so cached files are read again.
PARSER_VERSION = "6"
# A file's validated events are cached in parts of this many rows, in the file's order: a weekly update's revisions
# are of recent events, at the end of an export in date order, so the canonical table takes the other parts as they
# are (IngestResult.events_parts) and only the parts it lost rows from are written again.
EVENT_PART_ROWS = 250_000
OVERLAP_KEY = ["source", "event_date", "_location_key", "event_type", "fatalities"]

MANIFEST_SCHEMA: dict[str, pl.DataType] = {
    "file": pl.String(),
    "path": pl.String(),
    "sha256": pl.String(),
    "size_bytes": pl.Int64(),
    "layout": pl.String(),
    "rows": pl.Int64(),
    "events": pl.Int64(),
    "deletions": pl.Int64(),
    "quarantined_rows": pl.Int64(),
    "read_this_run": pl.Boolean(),
    "synthetic": pl.Boolean(),
    "notes": pl.String(),
    "error": pl.String(),
}

Log = Callable[[str], None]


@dataclass
class IngestResult:
    events: pl.DataFrame
    quarantine: pl.DataFrame
    manifest: pl.DataFrame
    overlaps: pl.DataFrame  # id-less rows reported as the same event as one with an id
    stats: dict[str, int] = field(default_factory=dict)
    # `events` in parts, in order: a cache file that holds exactly its part of the rows (the merge removed none of
    # them), or the rows a part kept. A writer can copy the files rather than write 2.5 M events again (about 1.5 s).
    events_parts: list[Path | pl.DataFrame] | None = None

    def unreadable_files(self) -> pl.DataFrame:
        return self.manifest.filter(pl.col("error").is_not_null())


@dataclass(frozen=True)
class Unreadable:
    """A path under the raw folders that could not be read: a folder without permission, a link to nothing."""

    name: str  # relative to the folder it was found in, as files are named (a folder ends with '/')
    path: str
    reason: str


@dataclass
class RawScan:
    """What the raw folders hold: the CSVs to ingest, in order, and what could not be read."""

    files: list[tuple[Path, str]]
    unreadable: list[Unreadable] = field(default_factory=list)


def scan_raw_paths(paths: Iterable[str | Path]) -> RawScan:
    """(path, display name) of every CSV under the given folders or files, in a stable order, and the folders and
    links under them that could not be read (so that a week's file cannot drop out of the counts unnoticed).

    The display name is the path relative to the folder it was found in, and file order decides ties between equal
    revisions: name weekly files so that they sort by date (e.g. acled_2024-05-13.csv). Hidden files and folders
    (a name starting with '.') are not read: a pull keeps its pages and half-written files there.
    """
    found: list[tuple[Path, str]] = []
    unreadable: list[Unreadable] = []
    for given in paths:
        root = Path(given)
        if root.is_file():
            found.append((root, root.name))
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"raw data path does not exist: {root}")

        def folder_error(err: OSError, root: Path = root) -> None:
            folder = Path(err.filename or root)
            name = folder.relative_to(root).as_posix() + "/" if folder != root else f"{root.name}/"
            unreadable.append(Unreadable(name, str(folder), f"folder cannot be read: {err.strerror or err}"))

        seen: set[tuple[int, int]] = set()
        for folder, subfolders, names in os.walk(root, onerror=folder_error, followlinks=True):
            here = os.stat(folder)
            if (here.st_dev, here.st_ino) in seen:  # a link back up the tree: walked once
                subfolders.clear()
                continue
            seen.add((here.st_dev, here.st_ino))
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))  # hidden: a pull's work files
            for entry in sorted(names):
                path = Path(folder, entry)
                if path.suffix.lower() != ".csv" or entry.startswith("."):
                    continue
                name = path.relative_to(root).as_posix()
                if path.is_symlink() and not path.exists():
                    reason = f"a link to {os.readlink(path)}, which does not exist"
                    unreadable.append(Unreadable(name, str(path), reason))
                elif not path.is_file():
                    continue
                elif not os.access(path, os.R_OK):
                    unreadable.append(Unreadable(name, str(path), "no permission to read it"))
                else:
                    found.append((path, name))
    return RawScan(sorted(found, key=lambda item: item[1]), sorted(unreadable, key=lambda u: u.name))


def find_csv_files(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """The readable CSVs of scan_raw_paths."""
    return scan_raw_paths(paths).files


def raw_path_list(raw_paths: str) -> list[Path]:
    """The folders or files of a raw-paths setting: separated by os.pathsep, '~' expanded, blanks dropped."""
    return [Path(p.strip()).expanduser() for p in raw_paths.split(os.pathsep) if p.strip()]


def discover_raw_files(raw_paths: str, sample: Path | None, log: Log) -> RawScan:
    """The CSVs to ingest under a raw-paths setting (scan_raw_paths), and what could not be read there.

    A fresh clone's raw folder (DEFAULT_RAW_PATHS) is empty: left at that default, with a `sample` folder given, the
    sample's CSVs are read instead, and the log says so. Any other path was given on purpose: one that is missing or
    holds no readable CSV stops the run with an error naming it, since reading the others (or the sample) would
    publish alerts without that source. Unreadable folders and links are warned about by the ingest, which records
    them in the manifest.
    """
    paths = raw_path_list(raw_paths)
    missing = [str(p) for p in paths if not p.exists()]
    if sample is not None and raw_paths == DEFAULT_RAW_PATHS:
        scan = scan_raw_paths([p for p in paths if p.exists()])
        if scan.files or scan.unreadable:
            return _readable(scan, raw_paths)
        log(
            f"no CSV files under {', '.join(map(str, paths))}"
            + (f" ({', '.join(missing)} missing)" if missing else "")
            + f": using the bundled synthetic sample in {sample}"
        )
        return scan_raw_paths([sample])
    if missing:
        raise FileNotFoundError(f"raw data path does not exist: {', '.join(missing)} (raw_paths: {raw_paths})")
    return _readable(scan_raw_paths(paths), raw_paths)


def _readable(scan: RawScan, raw_paths: str) -> RawScan:
    if not scan.files:
        problems = "; ".join(f"{u.name}: {u.reason}" for u in scan.unreadable)
        raise FileNotFoundError(
            f"no readable CSV files under {raw_paths} (unreadable: {problems})" if problems else
            f"no CSV files under {raw_paths}"
        )
    return scan


def ingest(
    files: list[tuple[Path, str]],
    cache_dir: Path,
    today: dt.date,
    log: Log = print,
    unreadable: Iterable[Unreadable] = (),
    warn: Log | None = None,
) -> IngestResult:
    """Read (or take from the cache) every file, then merge them into the canonical table.

    `unreadable` paths (scan_raw_paths) and files that an earlier run ingested but are gone now are warned about
    (`warn`, by default `log`) and listed in the manifest, with what they held; a cache file that cannot be read is
    discarded with a warning and its raw file read again."""
    warn = warn or log
    cache_dir.mkdir(parents=True, exist_ok=True)
    previous = _load_manifest(cache_dir, warn)
    entries: list[dict] = []
    problems: list[dict] = []  # manifest rows of paths that could not be read or are gone, not of files read
    event_frames: list[pl.DataFrame] = []
    event_parts: list[tuple[Path, int, pl.Schema]] = []  # the frames' cache files in order, their rows and columns
    deletion_frames: list[pl.DataFrame] = []
    quarantine_frames: list[pl.DataFrame] = []
    for skipped in unreadable:
        warn(f"cannot read {skipped.path}: {skipped.reason}; whatever it holds is not counted")
        problems.append(_problem_row(skipped.name, skipped.path, "unreadable", f"not read: {skipped.reason}"))
    for order, (path, name) in enumerate(files):
        try:
            entry = _stat_entry(path, name)
        except OSError as err:  # gone or unreadable since the raw folders were scanned
            warn(f"cannot read {path}: {err.strerror or err}; it is not counted")
            problems.append(_problem_row(name, str(path), "unreadable", f"not read: {err.strerror or err}"))
            continue
        cached = _cached_if_unchanged(cache_dir, entry, previous.get(name), warn)
        entry["read_this_run"] = cached is None
        if cached is None:
            log(f"reading {name} ({entry['size_bytes'] / 1e6:.1f} MB)")
            source = _parse_while_hashing(path, name, entry)
            if isinstance(source, SourceError):
                log(f"cannot read {name}: {source}")
                entries.append(_unrecognised_entry(entry, source))
                continue
            # A file touched but not changed has its validated rows in the cache already.
            cached = _read_cache(cache_dir, _cache_key(name, entry["sha256"]), name, warn)
            if cached is None:
                cached = _validate_and_cache(cache_dir, _cache_key(name, entry["sha256"]), name, source, today)
        events, deletions, quarantine, info = cached
        parts = _event_parts(cache_dir, _cache_key(name, entry["sha256"]), info)
        entries.append({**entry, **{k: v for k, v in info.items() if k != "event_parts"}, "error": None})
        part_of_row = np.repeat(np.arange(len(event_parts), len(event_parts) + len(parts), dtype=np.int32),
                                [rows for _, rows in parts])  # fmt: skip
        event_frames.append(events.with_columns(_file_order=pl.lit(order, pl.Int32), _part=part_of_row))
        event_parts += [(path, rows, events.schema) for path, rows in parts]
        deletion_frames.append(deletions)
        quarantine_frames.append(quarantine)
    vanished = _vanished(previous, {e["file"] for e in entries} | {p["file"] for p in problems})
    for row in vanished:
        warn(f"{row['file']} was ingested by an earlier run and is no longer under the raw folders: {row['notes']}")
    read_now = sum(e["read_this_run"] for e in entries)
    log(f"{len(entries)} files: {read_now} read, {len(entries) - read_now} unchanged since the last run (cached)")
    _save_manifest(cache_dir, entries)

    result = consolidate(event_frames, deletion_frames, quarantine_frames)
    table = result.events.drop("_part", strict=False)
    if event_parts:
        result.events_parts = _kept_parts(result.events["_part"].to_numpy(), event_parts, table)
    result.events = table
    manifest = _manifest_frame(entries + problems + vanished, result.quarantine)
    result.manifest = manifest
    result.stats.update(
        files=len(entries),
        files_read_this_run=read_now,
        rows_read=int(manifest["rows"].sum()),
        synthetic_files=int(manifest["synthetic"].sum()),
        unreadable_paths=len(problems),
        vanished_files=len(vanished),
        vanished_events=sum(int(previous[row["file"]].get("events") or 0) for row in vanished),
    )
    log(
        f"canonical events: {result.events.height:,} ({result.stats['quarantined_rows']:,} rows quarantined, "
        f"{result.stats['revised_events']:,} revised, {result.stats['deleted_events']:,} deleted, "
        f"{result.stats['overlapping_rows']:,} overlaps)"
    )
    return result


# --- one file's steps: stat, cache lookup, parsing while hashing, validation, cache write ---------------------------

CachedFile = tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict]  # events, deletions, quarantine, info


def _stat_entry(path: Path, name: str) -> dict[str, Any]:
    """The file's manifest entry as it is now; OSError when it is gone or unreadable."""
    stat = path.stat()
    return {"file": name, "path": str(path), "size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _cached_if_unchanged(cache_dir: Path, entry: dict[str, Any], known: dict | None, warn: Log) -> CachedFile | None:
    """The cached rows of a file whose size and modification time are the ones an earlier run recorded (its hash is
    that run's then, not computed again), or None: the file is read."""
    if not known or known["size_bytes"] != entry["size_bytes"] or known["mtime_ns"] != entry["mtime_ns"]:
        return None
    entry["sha256"] = known["sha256"]
    return _read_cache(cache_dir, _cache_key(entry["file"], known["sha256"]), entry["file"], warn)


def _parse_while_hashing(path: Path, name: str, entry: dict[str, Any]) -> SourceFile | SourceError:
    """The file read (or why it cannot be), its hash put in the entry. The file is hashed on a thread while it is
    parsed: hashlib runs without holding the interpreter, and a gigabyte takes about a second to hash."""
    with ThreadPoolExecutor(1) as hasher:
        digest = hasher.submit(file_sha256, path)
        try:
            source: SourceFile | SourceError = read_source_file(path, name)
        except SourceError as err:
            source = err
        entry["sha256"] = digest.result()
    return source


def _unrecognised_entry(entry: dict[str, Any], error: SourceError) -> dict[str, Any]:
    name = entry["file"]
    return {**entry, "layout": "unrecognised", "rows": 0, "events": 0, "deletions": 0, "quarantined_rows": 0,
            "synthetic": synthetic_reason(name, None) is not None, "notes": "", "error": str(error)}


def _validate_and_cache(cache_dir: Path, key: str, name: str, source: SourceFile, today: dt.date) -> CachedFile:
    """The rows that break the row rules quarantined beside the file's unreadable rows; the file's rows then kept in
    the cache under its content's key."""
    valid, invalid = quarantine_invalid_rows(source.events, today)
    source.events = valid.select(CANONICAL_COLUMNS)
    source.quarantine = pl.concat([source.quarantine, invalid], how="vertical_relaxed")
    return _write_cache(cache_dir, key, name, source)


def _problem_row(name: str, path: str, layout: str, notes: str) -> dict[str, Any]:
    """A manifest row for a path that contributed nothing this run (its counts are zero; the notes say why)."""
    return {"file": name, "path": path, "layout": layout, "rows": 0, "events": 0, "deletions": 0,
            "read_this_run": False, "notes": notes, "error": None}


def _vanished(previous: dict[str, dict], present: set[str]) -> list[dict[str, Any]]:
    """Manifest rows for the files an earlier run ingested that are gone: what they held is no longer counted (a
    rollback: events also in other files fall back to their versions there)."""
    rows = []
    for name in sorted(set(previous) - present):
        held = previous[name]
        events, deletions = int(held.get("events") or 0), int(held.get("deletions") or 0)
        what = f"its {events:,} events" + (f" and {deletions:,} deletions" if deletions else "")
        rows.append(
            _problem_row(name, str(held.get("path", "")), "vanished", f"{what} are no longer counted (rolled back)")
        )
    return rows


def consolidate(
    event_frames: list[pl.DataFrame],
    deletion_frames: list[pl.DataFrame],
    quarantine_frames: list[pl.DataFrame],
) -> IngestResult:
    """Merge validated files (given in file order, with `_file_order`) into canonical events: newest revisions,
    deletions, and overlaps of id-less extracts. Each step only removes rows and keeps the others' order, so the
    events are each file's kept rows in turn (`ingest` relies on it: it gives the rows their cache part in `_part`,
    which the events keep, to find the parts the merge left whole)."""
    all_events = pl.concat(event_frames, how="vertical_relaxed") if event_frames else _no_events()
    quarantine = (
        pl.concat(quarantine_frames, how="vertical_relaxed").select(list(QUARANTINE_SCHEMA))
        if quarantine_frames
        else empty_quarantine()
    )
    events, revised, superseded = keep_newest_revisions(all_events)
    deletions = pl.concat(deletion_frames) if deletion_frames else _no_deletions()
    events, deleted, replaced = apply_deletions(events, deletions)
    events, overlaps = drop_overlapping_extract_rows(events)
    stats = {
        "events": events.height,
        "quarantined_rows": quarantine.select("source_file", "source_row").unique().height,
        "quarantine_problems": quarantine.height,
        "revised_events": revised,
        "superseded_versions": superseded,
        "deleted_events": deleted,
        "replaced_ucdp_events": replaced,
        "overlapping_rows": overlaps.height,
    }
    kept = [*CANONICAL_COLUMNS, *(["_part"] if "_part" in events.columns else [])]
    return IngestResult(events.select(kept), quarantine, pl.DataFrame(schema=MANIFEST_SCHEMA), overlaps, stats)


def keep_newest_revisions(events: pl.DataFrame) -> tuple[pl.DataFrame, int, int]:
    """One row per event id: the highest revision, ties to the later file.

    Returns the events, how many ids had versions with different content (revised), and how many rows were replaced.
    """
    repeated = duplicated(events["event_id"])
    if not repeated.any():
        return events, 0, 0
    versions = events.with_row_index("_row").filter(repeated)
    newest = versions.sort(["revision", "_file_order"], nulls_last=False).unique("event_id", keep="last")
    revised = (
        versions.group_by("event_id")
        .agg(pl.struct(CONTENT_COLUMNS).hash().n_unique().alias("n"))
        .filter(pl.col("n") > 1)
        .height
    )
    return events.filter(~repeated.scatter(newest["_row"], False)), revised, versions.height - newest.height


def duplicated(ids: pl.Series) -> pl.Series:
    """`ids.is_duplicated()`, a third of its time on millions of text ids: candidates by their 64-bit hashes, then
    confirmed on the text, so a hash collision cannot make two events one."""
    candidates = ids.hash().is_duplicated().arg_true()
    confirmed = candidates.filter(ids.gather(candidates).is_duplicated())
    return pl.repeat(False, len(ids), eager=True).scatter(confirmed, True)


def apply_deletions(events: pl.DataFrame, deletions: pl.DataFrame) -> tuple[pl.DataFrame, int, int]:
    """Remove deleted events, unless the event was re-published after its deletion (a newer revision).

    Returns the events, how many ACLED events were deleted and how many UCDP events a newer GED version replaced
    (UCDP publishes no deletions: its only removals are the replacement files of `sahel fetch ucdp`)."""
    if deletions.height == 0:
        return events, 0, 0
    latest = deletions.group_by("event_id").agg(pl.col("deleted_at").max())
    marked = events.join(latest, on="event_id", how="left", maintain_order="left")  # see consolidate
    gone = pl.col("deleted_at").is_not_null() & (
        pl.col("revision").is_null() | (pl.col("revision") <= pl.col("deleted_at"))
    )
    kept = marked.filter(~gone).drop("deleted_at")
    replaced = marked.filter(gone & (pl.col("source") == "UCDP")).height
    return kept, events.height - kept.height - replaced, replaced


def drop_overlapping_extract_rows(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows with derived ids that describe an event already present with a real id of the same source.

    Matching is on date, location, event type and fatalities, counted: if the export has two such events and the
    extract three, two extract rows overlap and the third is kept. Actor names are left out of the key because ACLED
    renames actors between releases (the same attack is by 'Islamic State (Greater Sahara)' in one file and 'Islamic
    State (Sahel)' in a later one).
    """
    derived = int(events["event_id_derived"].sum())
    if derived == 0 or derived == events.height:
        return events, events.clear().select("event_id")
    keyed = events.with_columns(_location_key=pl.col("location").str.to_lowercase().str.strip_chars())
    with_ids = keyed.filter(~pl.col("event_id_derived")).group_by(OVERLAP_KEY).agg(_matches=pl.len())
    candidates = (
        keyed.filter(pl.col("event_id_derived"))
        .with_columns(_nth=pl.int_range(pl.len()).over(OVERLAP_KEY))
        .join(with_ids, on=OVERLAP_KEY, how="left")
    )
    overlapping = candidates.filter(pl.col("_nth") < pl.col("_matches").fill_null(0))
    kept = events.join(overlapping.select("event_id"), on="event_id", how="anti", maintain_order="left")
    return kept, overlapping.select(
        "event_id", "source_file", "source_row", "event_date", "location", "event_type", "fatalities"
    )


SYNTHETIC_MARK = "SYNTHETIC"


def synthetic_reason(name: str, events: pl.DataFrame | None) -> str | None:
    """Why a file is synthetic (not real data), or None: its name says so (any case), or it has events and every one
    of their notes starts with SYNTHETIC, as the bundled sample's and the benchmark's do. Either alone is enough: a
    deletions file has no notes, and a renamed copy of the sample keeps its notes."""
    if SYNTHETIC_MARK.lower() in Path(name).name.lower():
        return f"the file name says {SYNTHETIC_MARK}"
    if events is not None and events.height:
        notes = events["notes"]
        if notes.null_count() == 0 and bool(notes.str.starts_with(SYNTHETIC_MARK).all()):
            return f"every event note starts with {SYNTHETIC_MARK}"
    return None


def any_synthetic(ingest_summary: pl.DataFrame) -> bool:
    """Whether any input file of the run was synthetic, from the ingest summary's row."""
    return bool(ingest_summary["synthetic"].any()) if ingest_summary.height else False


# --- cache and manifest ---------------------------------------------------------------------------------------------


def _cache_key(name: str, digest: str) -> str:
    return hashlib.sha256(f"{PARSER_VERSION}\0{name}\0{digest}".encode()).hexdigest()[:32]


def _cache_part(cache_dir: Path, key: str, part: str) -> Path:
    return cache_dir / f"{key}.{part}.parquet"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


CACHE_PARTS = ("deletions", "quarantine")  # besides the events' parts (_event_parts)
CACHE_INFO_KEYS = ("layout", "rows", "events", "deletions", "notes")


def _event_parts(cache_dir: Path, key: str, info: dict) -> list[tuple[Path, int]]:
    """A cache entry's event files in order, and the rows each holds (an entry written before the events were kept
    in parts has one file)."""
    if "event_parts" not in info:
        return [(_cache_part(cache_dir, key, "events"), int(info["events"]))]
    return [(_cache_part(cache_dir, key, f"events.{n:04d}"), int(rows)) for n, rows in enumerate(info["event_parts"])]


def _kept_parts(
    part_of_row: np.ndarray, parts: list[tuple[Path, int, pl.Schema]], table: pl.DataFrame
) -> list[Path | pl.DataFrame]:
    """The merged table (each part's kept rows in turn, `part_of_row` naming each row's part) as the parts' files
    where a part kept every row in the table's own column types, and the kept rows themselves otherwise (a folder of
    parts is read as one table only when they agree); a part with no row left (or none to begin with: a deletions
    file's) is left out."""
    kept = np.bincount(part_of_row, minlength=len(parts))
    out: list[Path | pl.DataFrame] = []
    start = 0
    for (path, rows, schema), n in zip(parts, kept.tolist(), strict=True):
        if n and n == rows and schema == table.schema:
            out.append(path)
        elif n:
            out.append(table.slice(start, n))
        start += n
    return out


def _read_cache(
    cache_dir: Path, key: str, name: str, warn: Log
) -> CachedFile | None:
    """A file's cache entry, or None when there is none, or when a part of it cannot be read (truncated, corrupt):
    then the entry is removed, with a warning naming the part, and the raw file is read again."""
    info_path = cache_dir / f"{key}.json"
    if not info_path.exists():
        return None
    reading = info_path
    try:
        info = json.loads(info_path.read_text())
        if not isinstance(info, dict) or not set(CACHE_INFO_KEYS) <= set(info):
            raise ValueError("not a cache entry's description")
        event_frames = []
        for reading, _ in _event_parts(cache_dir, key, info):
            event_frames.append(pl.read_parquet(reading))
        frames = []
        for part in CACHE_PARTS:
            reading = _cache_part(cache_dir, key, part)
            frames.append(pl.read_parquet(reading))
    except UNREADABLE as err:
        discarded(reading, err, f"its cache entry is dropped and {name} is read again", warn)
        for path in (info_path, *cache_dir.glob(f"{key}.*.parquet")):
            path.unlink(missing_ok=True)
        return None
    deletions, quarantine = frames
    return pl.concat(event_frames), deletions, quarantine, info


def _write_cache(
    cache_dir: Path, key: str, name: str, source: SourceFile
) -> CachedFile:
    synthetic = synthetic_reason(name, source.events)
    info = {
        "layout": source.layout,
        "rows": source.rows,
        "events": source.events.height,
        "deletions": source.deletions.height,
        "synthetic": synthetic is not None,
        "notes": "; ".join([*source.notes, *([f"synthetic: {synthetic}"] if synthetic else [])]),
    }
    # at least one part, so that a file without events still gives the table its columns
    parts = list(source.events.iter_slices(EVENT_PART_ROWS)) or [source.events]
    info["event_parts"] = [part.height for part in parts]
    with written_aside() as aside:
        for n, part in enumerate(parts):
            part.write_parquet(aside(_cache_part(cache_dir, key, f"events.{n:04d}")), compression="lz4")
        for name_of_part, frame in zip(CACHE_PARTS, (source.deletions, source.quarantine), strict=True):
            frame.write_parquet(aside(_cache_part(cache_dir, key, name_of_part)), compression="lz4")
        # The info file is put in place last: its presence means the cache entry is complete.
        aside(cache_dir / f"{key}.json").write_text(json.dumps(info))
    return source.events, source.deletions, source.quarantine, info


MANIFEST_KEYS = ("file", "size_bytes", "mtime_ns", "sha256")


def _load_manifest(cache_dir: Path, warn: Log) -> dict[str, dict]:
    """The files the last run ingested, by name ({} when there was none, or when the manifest is unreadable: then
    every file is hashed again, and the cache entries, keyed by content, still serve)."""
    path = cache_dir / "manifest.json"
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text())
        if not isinstance(entries, list) or not all(set(MANIFEST_KEYS) <= set(e) for e in entries):
            raise ValueError("not a list of file entries")
    except UNREADABLE as err:
        discarded(path, err, "every raw file is hashed again (cached files are still used)", warn)
        return {}
    return {entry["file"]: entry for entry in entries}


def _save_manifest(cache_dir: Path, entries: list[dict]) -> None:
    with written_aside() as aside:
        aside(cache_dir / "manifest.json").write_text(json.dumps(entries, indent=1, default=str))


def _manifest_frame(entries: list[dict], quarantine: pl.DataFrame) -> pl.DataFrame:
    per_file = quarantine.group_by("source_file").agg(quarantined_rows=pl.struct("source_row").n_unique())
    frame = pl.DataFrame(
        [{k: e.get(k) for k in MANIFEST_SCHEMA if k != "quarantined_rows"} for e in entries],
        schema={k: v for k, v in MANIFEST_SCHEMA.items() if k != "quarantined_rows"},
    )
    frame = frame.join(per_file, left_on="file", right_on="source_file", how="left").with_columns(
        pl.col("quarantined_rows").fill_null(0).cast(pl.Int64)
    )
    return frame.select(list(MANIFEST_SCHEMA))


def _no_events() -> pl.DataFrame:
    return empty_canonical().with_columns(_file_order=pl.lit(0, pl.Int32))


def _no_deletions() -> pl.DataFrame:
    return pl.DataFrame(schema={"event_id": pl.String(), "deleted_at": pl.Int64()})
