"""Paginated queries pulled page by page into a hidden folder, so an interrupted pull resumes where it stopped.

Each page is saved as it arrives (`<raw>/<provider folder>/.partial/<query key>/page_00003.csv`, written aside and
renamed), with the query and the provider's count of matching rows beside it. The ingest never reads hidden folders,
so a half-done pull is invisible to it. A pull resumes only when the provider still counts the same rows for the
query; otherwise the data moved under the saved pages and the query starts again.

Offset pagination is not a snapshot: a row deleted while the pages are read shifts later rows onto pages already
read. A query that ends with fewer distinct rows than the provider counted is therefore pulled once more.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sahel_pipeline.core.fetch.http import FetchError, Log
from sahel_pipeline.core.storage import written_aside

PARTIAL = ".partial"


@dataclass
class Page:
    rows: list[dict]
    total: int | None = None  # rows matching the query, when the provider says
    server_time: int | None = None  # the provider's clock when it answered (Unix seconds)


@dataclass
class ProgressEvent:
    provider: str
    query: str  # what is being pulled, in words
    page: int  # pages received so far in this query
    pages: int | None  # pages the query needs, when the provider's count is known
    rows: int
    total: int | None


Progress = Callable[[ProgressEvent], None]


@dataclass
class PulledQuery:
    pages: list[Path]
    rows: int  # rows received, repeats included
    distinct: int
    total: int | None
    server_time: int | None  # the provider's clock when the query began (its first session, if resumed)
    requests: int
    folder: Path

    def frame(self) -> pl.LazyFrame:
        """Every row of every page, all columns as text (as the provider sent them)."""
        if not self.pages:
            return pl.LazyFrame()
        return pl.concat([pl.scan_csv(p, infer_schema=False) for p in self.pages], how="diagonal")

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def query_key(query: dict) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pull_pages(
    folder: Path,
    provider: str,
    label: str,
    query: dict,
    fetch: Callable[[int, bool], Page],
    first_page: int,
    page_size: int,
    id_column: str,
    progress: Progress,
    log: Log,
) -> PulledQuery:
    """Every page of one query (`fetch(page, with_total)`), saved as it arrives, until a page comes back short."""
    work = folder / PARTIAL / query_key(query)
    for attempt in (1, 2):
        pulled = _pull(work, provider, label, query, fetch, first_page, page_size, progress, log)
        pulled.distinct = _distinct(pulled.pages, id_column)
        if pulled.total is None or pulled.distinct >= pulled.total:
            return pulled
        again = "; pulling the query again" if attempt == 1 else ""
        log(f"{provider}: {label}: {pulled.distinct:,} distinct rows received but {pulled.total:,} counted when the "
            f"query began: the data changed while the pages were read{again}")
        pulled.discard()
    raise FetchError(f"{provider}: {label}: the provider's data changed while its pages were read, twice in a row "
                     f"({pulled.distinct:,} rows of {pulled.total:,}): try again later")


def _pull(work: Path, provider: str, label: str, query: dict, fetch: Callable[[int, bool], Page], first_page: int,
          page_size: int, progress: Progress, log: Log) -> PulledQuery:
    state_path = work / "query.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    saved = _saved_pages(work)
    if state is None and saved:  # pages without their query: nothing says what they answer
        shutil.rmtree(work)
        saved = []
    if state and state.get("complete"):
        log(f"{provider}: {label}: every page was already pulled ({len(saved)} pages kept)")
        return PulledQuery(saved, state["rows"], 0, state["total"], state["server_time"], 0, work)
    number = first_page + len(saved)
    page = fetch(number, True)
    requests = 1
    if state and page.total is not None and state.get("total") is not None and page.total != state["total"]:
        log(f"{provider}: {label}: the provider counts {page.total:,} rows now, {state['total']:,} when the pull was "
            "interrupted: starting the query again")
        shutil.rmtree(work)
        state, saved = None, []
        if number != first_page:
            number = first_page
            page = fetch(number, True)
            requests += 1
    if state:
        log(f"{provider}: {label}: resuming an interrupted pull at page {number - first_page + 1} "
            f"({len(saved)} pages kept)")
    else:
        work.mkdir(parents=True, exist_ok=True)
        state = {"query": query, "total": page.total, "server_time": page.server_time, "rows": 0, "complete": False}
        _write_json(state_path, state)
    total = state["total"] if state["total"] is not None else page.total
    rows = state["rows"]
    pages_needed = -(-total // page_size) if total is not None else None
    while True:
        if page.rows:
            saved.append(_save_page(work, number - first_page + 1, page.rows))
        rows += len(page.rows)
        short = len(page.rows) < page_size
        state.update(rows=rows, complete=short)
        _write_json(state_path, state)
        progress(ProgressEvent(provider, label, len(saved), pages_needed, rows, total))
        if short:
            break
        number += 1
        page = fetch(number, False)
        requests += 1
    return PulledQuery(saved, rows, 0, total, state["server_time"], requests, work)


def _saved_pages(work: Path) -> list[Path]:
    return sorted(work.glob("page_*.csv")) if work.is_dir() else []


def _save_page(work: Path, index: int, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    path = work / f"page_{index:05d}.csv"
    with written_aside() as aside, open(aside(path), "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows([_text(row.get(c)) for c in columns] for row in rows)
    return path


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _distinct(pages: list[Path], id_column: str) -> int:
    if not pages:
        return 0
    ids = pl.concat([pl.scan_csv(p, infer_schema=False).select(id_column) for p in pages])
    return ids.select(pl.col(id_column).n_unique()).collect().item()


def _write_json(path: Path, data: dict) -> None:
    with written_aside() as aside:
        aside(path).write_text(json.dumps(data, indent=1, default=str))


def write_raw_csv(path: Path, frame: pl.DataFrame) -> None:
    """A pulled file into the raw folder, written aside under a hidden name and renamed: the ingest (or the sensor)
    never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_aside() as aside:
        frame.write_csv(aside(path))
