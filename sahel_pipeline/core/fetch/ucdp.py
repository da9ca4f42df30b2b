"""UCDP's API: GED and Candidate event versions, paginated, and the rule by which GED replaces Candidate events.

`GET {base}/api/gedevents/<version>?pagesize=<n>&page=<k>` with pages from 0 and the token in the
`x-ucdp-access-token` header (required since February 2026); `Country` takes Gleditsch-Ward codes. Each answer has
`TotalCount`, `TotalPages` and the events in `Result`, in GED's columns.

Versions are immutable: a GED version (`25.1`, yearly) or a monthly Candidate version (`26.0.3`) is pulled once per
country and kept. **The replacement rule**: GED version `YY.1` covers events to 31 December 20(YY-1) for the
countries it was pulled for, and replaces, for those countries and up to that day, the events of every Candidate
version (provisional) and of every GED version covering less (an earlier year's release). Where GED kept an event
under the same id, GED's row wins (GED files sort after Candidate files and later versions after earlier ones, and
equal revisions go to the later file); an event it did not keep is listed in a replacements file
(`id, replaced_by, replaced_at`) the ingest applies, so GED's events stand alone for that period. Every pull counts
what it replaced.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from sahel_pipeline.core.reference import acled_country_name
from sahel_pipeline.core.sources.ucdp import UCDP_DATE_FORMATS
from sahel_pipeline.core.sources.values import parse_dates

UCDP_URL = "https://ucdpapi.pcr.uu.se"
PAGE_SIZE = 1000  # the most UCDP returns per page
FOLDER = "ucdp_api"
EVERY_COUNTRY = "*"

# Gleditsch & Ward's state codes, which UCDP's `Country` filter takes, under ACLED's country names.
GLEDITSCH_WARD: dict[str, int] = {
    "United States": 2, "Canada": 20, "Bahamas": 31, "Cuba": 40, "Haiti": 41, "Dominican Republic": 42,
    "Jamaica": 51, "Trinidad and Tobago": 52, "Barbados": 53, "Mexico": 70, "Belize": 80, "Guatemala": 90,
    "Honduras": 91, "El Salvador": 92, "Nicaragua": 93, "Costa Rica": 94, "Panama": 95, "Colombia": 100,
    "Venezuela": 101, "Guyana": 110, "Suriname": 115, "Ecuador": 130, "Peru": 135, "Brazil": 140, "Bolivia": 145,
    "Paraguay": 150, "Chile": 155, "Argentina": 160, "Uruguay": 165, "United Kingdom": 200, "Ireland": 205,
    "Netherlands": 210, "Belgium": 211, "Luxembourg": 212, "France": 220, "Switzerland": 225, "Spain": 230,
    "Portugal": 235, "Germany": 260, "Poland": 290, "Austria": 305, "Hungary": 310, "Czech Republic": 316,
    "Slovakia": 317, "Italy": 325, "Malta": 338, "Albania": 339, "Montenegro": 341, "North Macedonia": 343,
    "Croatia": 344, "Serbia": 345, "Bosnia and Herzegovina": 346, "Kosovo": 347, "Slovenia": 349, "Greece": 350,
    "Cyprus": 352, "Bulgaria": 355, "Moldova": 359, "Romania": 360, "Russia": 365, "Estonia": 366, "Latvia": 367,
    "Lithuania": 368, "Ukraine": 369, "Belarus": 370, "Armenia": 371, "Georgia": 372, "Azerbaijan": 373,
    "Finland": 375, "Sweden": 380, "Norway": 385, "Denmark": 390, "Iceland": 395, "Cape Verde": 402,
    "Sao Tome and Principe": 403, "Guinea-Bissau": 404, "Equatorial Guinea": 411, "Gambia": 420, "Mali": 432,
    "Senegal": 433, "Benin": 434, "Mauritania": 435, "Niger": 436, "Ivory Coast": 437, "Guinea": 438,
    "Burkina Faso": 439, "Liberia": 450, "Sierra Leone": 451, "Ghana": 452, "Togo": 461, "Cameroon": 471,
    "Nigeria": 475, "Gabon": 481, "Central African Republic": 482, "Chad": 483, "Republic of Congo": 484,
    "Democratic Republic of Congo": 490, "Uganda": 500, "Kenya": 501, "Tanzania": 510, "Burundi": 516,
    "Rwanda": 517, "Somalia": 520, "Djibouti": 522, "Ethiopia": 530, "Eritrea": 531, "Angola": 540,
    "Mozambique": 541, "Zambia": 551, "Zimbabwe": 552, "Malawi": 553, "South Africa": 560, "Namibia": 565,
    "Lesotho": 570, "Botswana": 571, "eSwatini": 572, "Madagascar": 580, "Comoros": 581, "Mauritius": 590,
    "Seychelles": 591, "Morocco": 600, "Algeria": 615, "Tunisia": 616, "Libya": 620, "Sudan": 625,
    "South Sudan": 626, "Iran": 630, "Turkey": 640, "Iraq": 645, "Egypt": 651, "Syria": 652, "Lebanon": 660,
    "Jordan": 663, "Israel": 666, "Saudi Arabia": 670, "Yemen": 678, "Kuwait": 690, "Bahrain": 692, "Qatar": 694,
    "United Arab Emirates": 696, "Oman": 698, "Afghanistan": 700, "Turkmenistan": 701, "Tajikistan": 702,
    "Kyrgyzstan": 703, "Uzbekistan": 704, "Kazakhstan": 705, "China": 710, "Mongolia": 712, "Taiwan": 713,
    "North Korea": 731, "South Korea": 732, "Japan": 740, "India": 750, "Bhutan": 760, "Pakistan": 770,
    "Bangladesh": 771, "Myanmar": 775, "Sri Lanka": 780, "Maldives": 781, "Nepal": 790, "Thailand": 800,
    "Cambodia": 811, "Laos": 812, "Vietnam": 816, "Malaysia": 820, "Singapore": 830, "Brunei": 835,
    "Philippines": 840, "Indonesia": 850, "East Timor": 860, "Australia": 900, "Papua New Guinea": 910,
    "New Zealand": 920, "Solomon Islands": 940, "Fiji": 950,
}


def version_kind(version: str) -> tuple[str, dt.date | None]:
    """('ged', the last day it covers) for `25.1`, ('candidate', None) for `26.0.3`; anything else is an error."""
    if m := re.fullmatch(r"(\d{2})\.1", version):
        return "ged", dt.date(2000 + int(m.group(1)) - 1, 12, 31)
    if re.fullmatch(r"\d{2}\.0\.\d+", version):
        return "candidate", None
    raise FetchError(f"UCDP: '{version}' is not a UCDP version: GED versions look like 25.1 (yearly), Candidate "
                     "versions like 26.0.3 (monthly)")


def _file_version(version: str) -> str:
    """The version as file names write it, zero-padded so 26.0.10 sorts after 26.0.9."""
    major, *rest = version.split(".")
    return ".".join([major, *rest[:-1], f"{int(rest[-1]):03d}"]) if len(rest) == 2 else version


def country_codes(countries: list[str]) -> dict[str, int]:
    """ACLED name -> Gleditsch-Ward code for each country given by name or by code; a one-line error otherwise."""
    by_lower = {name.lower(): name for name in GLEDITSCH_WARD}
    by_code = {code: name for name, code in GLEDITSCH_WARD.items()}
    codes, unknown = {}, []
    for given in countries:
        text = given.strip()
        if text.isdigit():
            codes[by_code.get(int(text), text)] = int(text)
        elif text.lower() in by_lower:
            codes[by_lower[text.lower()]] = GLEDITSCH_WARD[by_lower[text.lower()]]
        else:
            unknown.append(given)
    if unknown:
        raise FetchError(f"UCDP: no Gleditsch-Ward code known for {', '.join(map(repr, unknown))} (use ACLED's "
                         "country names, or give the numeric code, e.g. 432 for Mali)")
    return dict(sorted(codes.items()))


class UcdpClient(ApiClient):
    """UCDP's API with an access token."""

    def __init__(
        self,
        token: str,
        base_url: str = UCDP_URL,
        page_size: int = PAGE_SIZE,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        log: Log = print,
    ):
        super().__init__("UCDP", base_url or UCDP_URL, lambda: [self.token], retry, sleep, log)
        self.token = token
        self.page_size = page_size

    def page(self, version: str, params: dict, number: int) -> Page:
        path = f"/api/gedevents/{version}"
        response = self.http.request("GET", path, params={"pagesize": self.page_size, "page": number, **params},
                                     headers={"x-ucdp-access-token": self.token})
        if response.status_code in (401, 403):
            raise self.http.fail(f"the access token was refused ({response.status_code}: {snippet(response)}): "
                                 "check UCDP_API_TOKEN")
        if response.status_code == 404:
            raise self.http.fail(f"no version {version} ({snippet(response)}): check the version on ucdp.uu.se")
        if response.status_code != 200:
            raise self.http.fail(f"{response.status_code} on {path}: {snippet(response)}")
        try:
            body = response.json()
            rows, total = body["Result"], body.get("TotalCount")
        except (ValueError, KeyError, TypeError):
            raise self.http.fail(f"{path} answered without a Result: {snippet(response)}") from None
        if not isinstance(rows, list):
            raise self.http.fail(f"{path} answered with a Result that is not a list of events")
        return Page(rows, int(total) if total is not None else None, server_time(response))

    def read(self, folder: Path, version: str, codes: list[int], progress: Progress) -> PulledQuery:
        params = {"Country": ",".join(map(str, codes))} if codes else {}
        where = f"countries {params['Country']}" if codes else "every country"
        return pull_pages(
            folder, "UCDP", f"version {version}, {where}",
            {"base": self.base_url, "version": version, "params": params},
            lambda number, _with_total: self.page(version, params, number),
            first_page=0, page_size=self.page_size, id_column="id", progress=progress, log=self.log,
        )


@dataclass
class UcdpPullResult:
    vintage: vintages.Vintage | None  # None when every version asked was already held
    files: list[Path]
    rows_written: int
    replaced: int  # Candidate events a GED version now covers
    replaced_ged: int  # events of an earlier GED version a later one now covers
    versions: list[dict]


def pull_ucdp(
    raw_dir: Path,
    client: UcdpClient,
    versions: list[str],
    countries: list[str],
    made_by: str = "cli",
    progress: Progress = lambda event: None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> UcdpPullResult:
    """Pull the versions not held yet for these countries into raw_dir/ucdp_api/, apply the replacement rule, and
    record the vintage."""
    kinds = {v: version_kind(v) for v in versions}
    codes = country_codes(countries)
    log = client.log
    folder = raw_dir / FOLDER
    with vintages.locked(raw_dir):
        history = vintages.read_vintages(raw_dir, "UCDP")
        held = _held_versions(history)
        started = now()
        stamp = vintages.new_stamp(raw_dir, started)
        pulled: list[PulledQuery] = []
        entries: list[dict[str, Any]] = []
        for version in versions:
            kind, covers_to = kinds[version]
            wanted = _missing(held.get(version, []), codes)
            if wanted is None:
                log(f"UCDP: version {version} is held already for these countries: nothing to pull")
                continue
            result = client.read(folder, version, list(wanted.values()), progress)
            name = f"{FOLDER}/ucdp_{kind}_{_file_version(version)}_{stamp}.csv"
            frame = result.frame().collect() if result.pages else pl.DataFrame()
            if frame.height:
                _check_countries(frame, wanted, version)
                write_raw_csv(raw_dir / name, frame)
            pulled.append(result)
            entries.append({
                "version": version, "kind": kind, "covers_to": covers_to.isoformat() if covers_to else None,
                "countries": list(wanted) or EVERY_COUNTRY, "codes": list(wanted.values()) or EVERY_COUNTRY,
                "file": name if frame.height else None, "rows": frame.height, "pages": len(result.pages),
                "total_reported": result.total, "newest_event_date": _newest_date(frame),
            })
        if not entries:
            return UcdpPullResult(None, [], 0, 0, 0, [])
        replaced, listed = _replacements(raw_dir, history, entries)
        replaced_name = f"{FOLDER}/ucdp_replaced_{stamp}.csv"
        if listed.height:
            write_raw_csv(raw_dir / replaced_name, listed.with_columns(replaced_at=pl.lit(int(started.timestamp()))))
        files = [e["file"] for e in entries if e["file"]] + ([replaced_name] if listed.height else [])
        record: dict[str, Any] = {
            **vintages.manifest_head(stamp, "UCDP", started, now(), made_by, client.base_url),
            "request": {"versions": versions, "countries": list(codes) or "every country"},
            "versions": entries,
            "rows": sum(e["rows"] for e in entries),
            "newest_timestamp": max((e["newest_event_date"] for e in entries if e["newest_event_date"]), default=None),
            "provider_version": ", ".join(e["version"] for e in entries),
            "candidate_events_replaced": replaced["candidate"],
            "older_ged_events_replaced": replaced["ged"],
            "replacements_file": replaced_name if listed.height else None,
            "files": files,
            "kinds": {**{e["file"]: e["kind"] for e in entries if e["file"]},
                      **({replaced_name: "replacements"} if listed.height else {})},
        }
        vintage = vintages.record_vintage(raw_dir, record)
        for result in pulled:
            result.discard()
    log(f"UCDP: {record['rows']:,} events written from {len(entries)} version(s); replaced by a GED version: "
        f"{replaced['candidate']:,} Candidate events, {replaced['ged']:,} events of earlier GED versions; "
        f"vintage {vintage.id}")
    return UcdpPullResult(vintage, [raw_dir / f for f in files], record["rows"], replaced["candidate"],
                          replaced["ged"], entries)


def _held_versions(history: list[vintages.Vintage]) -> dict[str, list[dict]]:
    held: dict[str, list[dict]] = {}
    for vintage in history:
        for entry in vintage.record.get("versions", []):
            held.setdefault(entry["version"], []).append(entry)
    return held


def _missing(held: list[dict], codes: dict[str, int]) -> dict[str, int] | None:
    """The countries of a version still to pull ({} for every country), or None when all are held."""
    if any(e["codes"] == EVERY_COUNTRY for e in held):
        return None
    if not codes:
        return {}
    have = {c for e in held for c in e["codes"]}
    missing = {name: code for name, code in codes.items() if code not in have}
    return missing or None


def _check_countries(frame: pl.DataFrame, wanted: dict[str, int], version: str) -> None:
    """UCDP's country names must be the ones asked for: a wrong entry in the code table would pull another country."""
    if not wanted or "country" not in frame.columns or any(name == str(code) for name, code in wanted.items()):
        return  # every country, or a code the table does not name: nothing to hold the names against
    got = {acled_country_name(name) for name in frame["country"].drop_nulls().unique().to_list()}
    stray = sorted(got - set(wanted))
    if stray:
        raise FetchError(f"UCDP: version {version} answered for codes {sorted(wanted.values())} with events in "
                         f"{', '.join(stray)}, not {', '.join(wanted)}: the Gleditsch-Ward code table is wrong for "
                         "them; nothing was written (give the numeric code instead)")


def _newest_date(frame: pl.DataFrame) -> str | None:
    if frame.height == 0 or "date_start" not in frame.columns:
        return None
    newest = parse_dates(frame["date_start"], UCDP_DATE_FORMATS).max()
    return newest.isoformat() if newest is not None else None  # type: ignore[union-attr]


def _supersedes(ged: dict, version: dict) -> bool:
    """A GED version replaces every Candidate version, and GED versions covering less."""
    later = version["kind"] == "candidate" or ged["covers_to"] > version["covers_to"]
    return ged["file"] != version["file"] and later


def _replacements(
    raw_dir: Path, history: list[vintages.Vintage], entries: list[dict]
) -> tuple[dict[str, int], pl.DataFrame]:
    """Events this pull makes covered by a newer GED version: how many (per kind of version replaced), and those to
    list for removal (id, replaced_by).

    An event is counted once, by the pull that brings the later of it and the first GED version covering it. Events
    the GED version kept under their id are counted but not listed: GED's row replaces them by file order, and
    listing the id would remove GED's row as well.
    """
    held = [e for v in history for e in v.record.get("versions", []) if e["file"]]
    new_files = {e["file"] for e in entries if e["file"]}
    versions = held + [e for e in entries if e["file"]]
    geds = [e for e in versions if e["kind"] == "ged"]
    counts = {"candidate": 0, "ged": 0}
    listed = []
    for version in versions:
        is_new = version["file"] in new_files
        covering = [g for g in geds if _supersedes(g, version)]
        now = [g for g in covering if is_new or g["file"] in new_files]
        if not now:
            continue
        covered = _covered(raw_dir, version, now)
        before = [g for g in covering if g not in now]
        if before:
            covered = covered.filter(~pl.col("id").is_in(_covered(raw_dir, version, before)["id"].implode()))
        counts[version["kind"]] += covered.height
        kept = pl.concat([_columns(raw_dir, g["file"], ["id"]) for g in covering])["id"]
        listed.append(covered.filter(~pl.col("id").is_in(kept.implode())))
    frame = pl.concat(listed).unique("id", keep="first").sort("id") if listed else pl.DataFrame()
    return counts, frame


def _covered(raw_dir: Path, version: dict, geds: list[dict]) -> pl.DataFrame:
    """(id, replaced_by) of a version's events some GED version covers, named by the latest such version."""
    rows = _columns(raw_dir, version["file"], ["id", "country_id", "date_start"])
    rows = rows.with_columns(_date=parse_dates(rows["date_start"], UCDP_DATE_FORMATS),
                             _code=pl.col("country_id").cast(pl.Int64, strict=False))
    by = pl.lit(None, pl.String)
    for ged in sorted(geds, key=lambda e: e["covers_to"]):
        in_scope = pl.lit(True) if ged["codes"] == EVERY_COUNTRY else pl.col("_code").is_in(ged["codes"])
        covers = in_scope & (pl.col("_date") <= dt.date.fromisoformat(ged["covers_to"]))
        by = pl.when(covers).then(pl.lit(ged["version"])).otherwise(by)
    return rows.select("id", replaced_by=by).filter(pl.col("replaced_by").is_not_null()).unique("id", keep="first")


def _columns(raw_dir: Path, name: str, columns: list[str]) -> pl.DataFrame:
    return pl.read_csv(raw_dir / name, infer_schema=False, columns=columns)
