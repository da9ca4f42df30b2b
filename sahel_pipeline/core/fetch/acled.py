"""ACLED's API: the OAuth password grant, paginated reads of events and deletions, and the weekly incremental pull.

The protocol is the one ACLED documents since its 2025 platform change (and its R client, acledR, follows):

* `POST {base}/oauth/token`, form-encoded `username`, `password`, `grant_type=password`, `client_id=acled`,
  `scope=authenticated` -> an access token (24 h) and a refresh token (14 days); `grant_type=refresh_token` renews
  it. Data requests carry `Authorization: Bearer <token>`; a 401 means the token expired: refresh and ask again.
* `GET {base}/api/acled/read?_format=json` with `limit` and `page` (from 1) until a page comes back short; ACLED
  leaves the row counts out unless `with_total=true` (asked on a query's first page only: it is slower); filters
  `country`, `event_date` with `event_date_where`, `timestamp` with `timestamp_where`.
* `GET {base}/api/deleted/read?_format=json` -> `event_id_cnty`, `deleted_timestamp`, filtered the same way.

The pull (`pull_acled`) is incremental: the first one takes every event of the countries since the given date; each
later one asks only for events whose `timestamp` is at or after the watermark (the newest timestamp held, and never
later than the provider's clock when the previous pull began, so rows changed while it ran are asked again) and for
the deletions since then. Rows already held with the same id and timestamp are left out, so an unchanged week
writes no file. New countries, or an earlier start date, get a full pull of their own. Together the files give what
one full pull would: the ingest keeps each event's newest timestamp and applies the deletions.
"""

from __future__ import annotations

import datetime as dt
import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from sahel_pipeline.core import vintages
from sahel_pipeline.core.fetch.http import (
    DEFAULT_RETRY,
    ApiClient,
    FetchError,
    Log,
    RetryPolicy,
    server_time,
    snippet,
)
from sahel_pipeline.core.fetch.pages import Page, Progress, PulledQuery, pull_pages, write_raw_csv
from sahel_pipeline.core.reference import ACLED_COUNTRIES

if TYPE_CHECKING:
    import httpx

ACLED_URL = "https://acleddata.com"
PAGE_SIZE = 5000  # the most ACLED returns per page
FOLDER = "acled_api"  # under the raw folder
EVERY_COUNTRY = "*"
REFRESH_LIFETIME = 14 * 86400  # ACLED's refresh tokens; its token answer does not say
TOKEN_MARGIN = 60  # renew a token this many seconds before it expires
EARLIEST = dt.date(1997, 1, 1)


@dataclass(frozen=True)
class AcledCredentials:
    email: str
    password: str = field(repr=False)

    @property
    def complete(self) -> bool:
        return bool(self.email.strip() and self.password)


class AcledClient(ApiClient):
    """An authenticated session with ACLED's API."""

    def __init__(
        self,
        credentials: AcledCredentials,
        base_url: str = ACLED_URL,
        page_size: int = PAGE_SIZE,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        log: Log = print,
    ):
        super().__init__("ACLED", base_url or ACLED_URL, self._secrets, retry, sleep, log)
        self.credentials = credentials
        self.page_size = page_size
        self.clock = clock
        self._access: str | None = None
        self._refresh: str | None = None
        self._access_expires = 0.0
        self._refresh_expires = 0.0

    def _secrets(self) -> list[str]:
        return [self.credentials.email, self.credentials.password, self._access or "", self._refresh or ""]

    # --- tokens -----------------------------------------------------------------------------------------------------

    def token(self) -> str:
        now = self.clock()
        if self._access and now < self._access_expires - TOKEN_MARGIN:
            return self._access
        if self._refresh and now < self._refresh_expires - TOKEN_MARGIN and self._grant_refresh():
            return self._access  # type: ignore[return-value]
        self._grant_password()
        return self._access  # type: ignore[return-value]

    def _grant_password(self) -> None:
        response = self.http.request("POST", "/oauth/token", data={
            "username": self.credentials.email,
            "password": self.credentials.password,
            "grant_type": "password",
            "client_id": "acled",
            "scope": "authenticated",
        })
        if response.status_code in (400, 401, 403):
            raise self.http.fail(f"the e-mail address and password were refused ({snippet(response)}): check "
                                 "ACLED_EMAIL and ACLED_PASSWORD, your myACLED login")
        self._store_tokens(response)

    def _grant_refresh(self) -> bool:
        response = self.http.request("POST", "/oauth/token", data={
            "grant_type": "refresh_token",
            "refresh_token": self._refresh,
            "client_id": "acled",
        })
        if response.status_code != 200:
            self.log(f"ACLED: the refresh token was refused ({response.status_code}): logging in again")
            self._refresh = None
            return False
        self._store_tokens(response)
        return True

    def _store_tokens(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise self.http.fail(f"{response.status_code} from the token endpoint: {snippet(response)}")
        try:
            body = response.json()
            access = body["access_token"]
        except (ValueError, KeyError, TypeError):
            raise self.http.fail("the token endpoint answered without an access token") from None
        now = self.clock()
        self._access = access
        self._access_expires = now + float(body.get("expires_in") or 86400)
        if body.get("refresh_token"):
            self._refresh = body["refresh_token"]
            self._refresh_expires = now + REFRESH_LIFETIME

    # --- reads ------------------------------------------------------------------------------------------------------

    def get(self, endpoint: str, params: dict) -> tuple[dict, httpx.Response]:
        """One JSON answer of a data endpoint; an expired token is renewed once."""
        for attempt in (1, 2):
            response = self.http.request("GET", endpoint, params={"_format": "json", **params},
                                         headers={"Authorization": f"Bearer {self.token()}"})
            if response.status_code != 401 or attempt == 2:
                break
            self.log("ACLED: the access token was refused (expired): renewing it")
            self._access_expires = 0.0
        if response.status_code == 401:
            raise self.http.fail(f"a freshly issued access token was refused on {endpoint} (401: {snippet(response)})")
        if response.status_code == 403:
            raise self.http.fail(f"access to {endpoint} refused (403: {snippet(response)}): the account's access "
                                 "level does not include API data; check it on myACLED")
        if response.status_code != 200:
            raise self.http.fail(f"{response.status_code} on {endpoint}: {snippet(response)}")
        try:
            body = response.json()
        except ValueError:
            raise self.http.fail(f"{endpoint} answered with something that is not JSON: {snippet(response)}") from None
        if not isinstance(body, dict) or body.get("success") is False or not isinstance(body.get("data", []), list):
            raise self.http.fail(f"{endpoint} answered with an error: {snippet(response)}")
        return body, response

    def page(self, endpoint: str, params: dict, number: int, with_total: bool) -> Page:
        asked = {**params, "limit": self.page_size, "page": number}
        if with_total:
            asked["with_total"] = "true"
        body, response = self.get(endpoint, asked)
        total = body.get("total_count")
        return Page(body.get("data") or [], int(total) if total is not None else None, server_time(response))

    def read(self, folder: Path, label: str, endpoint: str, params: dict, id_column: str,
             progress: Progress) -> PulledQuery:
        """Every page of one query, kept under folder/.partial until the pull is complete."""
        return pull_pages(
            folder, "ACLED", label, {"base": self.base_url, "endpoint": endpoint, "params": params},
            lambda number, with_total: self.page(endpoint, params, number, with_total),
            first_page=1, page_size=self.page_size, id_column=id_column, progress=progress, log=self.log,
        )


# --- the pull ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    country: str  # EVERY_COUNTRY for no country filter
    since: dt.date
    timestamp_from: int | None  # None for a full pull

    @property
    def where(self) -> str:
        return "every country" if self.country == EVERY_COUNTRY else self.country

    @property
    def label(self) -> str:
        when = f"changed since timestamp {self.timestamp_from}" if self.timestamp_from is not None else "all"
        return f"{self.where}, events from {self.since}, {when}"

    def params(self) -> dict:
        params: dict = {"event_date": self.since.isoformat(), "event_date_where": ">="}
        if self.country != EVERY_COUNTRY:
            params["country"] = self.country
        if self.timestamp_from is not None:
            params.update(timestamp=self.timestamp_from, timestamp_where=">=")
        return params


@dataclass
class PullResult:
    vintage: vintages.Vintage | None  # None when nothing was pulled
    events_file: Path | None
    deletions_file: Path | None
    rows_received: int
    rows_written: int
    deletions_written: int
    newest_timestamp: int | None
    queries: list[dict]


def check_countries(countries: list[str]) -> list[str]:
    """ACLED's spelling of each country, or a one-line error naming the ones it does not know."""
    by_lower = {c.lower(): c for c in ACLED_COUNTRIES}
    unknown = [c for c in countries if c.strip().lower() not in by_lower]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, ACLED_COUNTRIES, 1)
            hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise FetchError(f"ACLED: unknown country {', '.join(hints)}: use ACLED's names, e.g. 'Burkina Faso'")
    return sorted({by_lower[c.strip().lower()] for c in countries})


def plan_queries(
    countries: list[str], since: dt.date | None, held: dict[str, str], watermark: int | None
) -> tuple[list[Query], dict[str, str]]:
    """The queries of a pull, and the scope held after it (country -> first event date).

    Held countries are updated from the watermark; a country not held yet, or asked from an earlier date than held,
    is pulled whole. Without a date, a held country keeps its own and a new one starts at 1997-01-01. The scope only
    grows: a country pulled once keeps being updated, so its file stays true.
    """
    scope = {c: dt.date.fromisoformat(s) for c, s in held.items()}

    def start(country: str) -> dt.date:
        return since or scope.get(country) or scope.get(EVERY_COUNTRY) or EARLIEST

    asked = {c: start(c) for c in countries} if countries else {EVERY_COUNTRY: start(EVERY_COUNTRY)}

    def covered(country: str, start: dt.date) -> bool:
        return any(c in (country, EVERY_COUNTRY) and s <= start for c, s in scope.items())

    full = {c: s for c, s in asked.items() if not covered(c, s)}
    queries = [Query(c, s, watermark) for c, s in sorted(scope.items()) if watermark is not None and c not in full]
    queries += [Query(c, s, None) for c, s in sorted(full.items())]
    scope.update(full)
    return queries, {c: s.isoformat() for c, s in sorted(scope.items())}


def pull_acled(
    raw_dir: Path,
    client: AcledClient,
    countries: list[str],
    since: dt.date | None = None,
    made_by: str = "cli",
    progress: Progress = lambda event: None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> PullResult:
    """Pull what changed at ACLED since the last pull into raw_dir/acled_api/, and record the vintage."""
    countries = check_countries(countries)
    log = client.log
    folder = raw_dir / FOLDER
    with vintages.locked(raw_dir):
        history = vintages.read_vintages(raw_dir, "ACLED")
        last = history[-1].record if history else {}
        queries, scope = plan_queries(countries, since, last.get("scope", {}), last.get("watermark"))
        extra = sorted(set(last.get("scope", {})) - set(countries or [EVERY_COUNTRY]))
        if extra and countries:
            log(f"ACLED: also updating {', '.join(extra)}, held from earlier pulls")
        started = now()
        stamp = vintages.new_stamp(raw_dir, started)
        pulled = []
        for query in queries:
            result = client.read(folder, query.label, "/api/acled/read", query.params(), "event_id_cnty", progress)
            if query.timestamp_from is None and result.rows == 0:
                raise client.http.fail(
                    f"no events for {query.where} since {query.since}: an account whose access level "
                    "does not include these data gets an empty answer; check it on myACLED")
            pulled.append((query, result))
        deletions = None
        if last.get("watermark") is not None:
            deletions = client.read(folder, f"deletions since timestamp {last['watermark']}", "/api/deleted/read",
                                    {"deleted_timestamp": last["watermark"], "deleted_timestamp_where": ">="},
                                    "event_id_cnty", progress)

        held_events = _held(raw_dir, history, "events", ["event_id_cnty", "timestamp"])
        held_deletions = _held(raw_dir, history, "deletions", ["event_id_cnty", "deleted_timestamp"])
        events_name = f"{FOLDER}/acled_{stamp}.csv"
        deletions_name = f"{FOLDER}/acled_deletions_{stamp}.csv"
        new_events = _new_rows([r for _, r in pulled], held_events, ["event_id_cnty", "timestamp"])
        new_deletions = _new_rows([deletions] if deletions else [], held_deletions,
                                  ["event_id_cnty", "deleted_timestamp"])
        written = {}
        for kind, name, frame in (("events", events_name, new_events), ("deletions", deletions_name, new_deletions)):
            if frame.height:
                write_raw_csv(raw_dir / name, frame)
                written[kind] = name

        received = sum(r.rows for _, r in pulled)
        known = [t for t in (_max_int(new_events, "timestamp"), last.get("newest_timestamp")) if t is not None]
        newest = max(known) if known else None
        starts = [r.server_time for _, r in pulled if r.server_time is not None]
        watermark = min([newest, *starts]) if newest is not None and starts else newest
        record: dict[str, Any] = {
            **vintages.manifest_head(stamp, "ACLED", started, now(), made_by, client.base_url),
            "request": {"countries": countries or "every country", "since": since.isoformat() if since else None,
                        "timestamp_from": last.get("watermark"), "deletions_from": last.get("watermark")},
            "queries": [{"country": q.country, "since": q.since.isoformat(), "timestamp_from": q.timestamp_from,
                         "pages": len(r.pages), "rows": r.rows, "total_reported": r.total, "requests": r.requests}
                        for q, r in pulled],
            "rows_received": received,
            "rows": new_events.height,
            "deletions_received": deletions.rows if deletions else 0,
            "deletions": new_deletions.height,
            "newest_timestamp": newest,
            "watermark": watermark,
            "provider_version": None,  # ACLED publishes no version number; the newest timestamp dates the data
            "scope": scope,
            "files": list(written.values()),
            "kinds": {name: kind for kind, name in written.items()},
        }
        vintage = vintages.record_vintage(raw_dir, record)
        for _, result in pulled:
            result.discard()
        if deletions:
            deletions.discard()
    log(f"ACLED: {received:,} rows received, {new_events.height:,} new or revised events and "
        f"{new_deletions.height:,} deletions written; vintage {vintage.id}")
    return PullResult(
        vintage, raw_dir / written["events"] if "events" in written else None,
        raw_dir / written["deletions"] if "deletions" in written else None,
        received, new_events.height, new_deletions.height, newest, record["queries"],
    )


def _held(raw_dir: Path, history: list[vintages.Vintage], kind: str, columns: list[str]) -> pl.DataFrame:
    """The (id, timestamp) pairs earlier pulls wrote, to leave out rows already held."""
    names = [name for v in history for name, k in v.record.get("kinds", {}).items() if k == kind]
    paths = [raw_dir / n for n in names if (raw_dir / n).exists()]
    if not paths:
        return pl.DataFrame(schema={c: pl.String for c in columns})
    return pl.concat([pl.scan_csv(p, infer_schema=False).select(columns) for p in paths]).unique().collect()


def _new_rows(results: list[PulledQuery], held: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """Each id's newest row across the queries, unless that exact row is held already."""
    frames = [r.frame() for r in results if r.pages]
    if not frames:
        return pl.DataFrame()
    rows = pl.concat(frames, how="diagonal").collect()
    newest = (
        rows.with_columns(_ts=pl.col(key[1]).cast(pl.Int64, strict=False))
        .sort("_ts", nulls_last=False, maintain_order=True)
        .unique(key[0], keep="last", maintain_order=True)
        .drop("_ts")
    )
    return newest.join(held, on=key, how="anti", nulls_equal=True)


def _max_int(frame: pl.DataFrame, column: str) -> int | None:
    if frame.height == 0 or column not in frame.columns:
        return None
    value = frame.select(pl.col(column).cast(pl.Int64, strict=False).max()).item()
    return int(value) if value is not None else None
