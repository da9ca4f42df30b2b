"""Layouts: which export a CSV is, recognised from its header alone, and the error that names what is missing.
"""

from __future__ import annotations


class SourceError(ValueError):
    """A file that cannot be read at all; the message names the file and what was expected of it."""


# Layouts, recognised from lower-cased header names. Order matters: the first layout whose columns are present wins.
ACLED_EVENT_COLUMNS = ("event_date", "event_type", "actor1", "fatalities")
LAYOUTS: dict[str, tuple[str, ...]] = {
    "acled_deletions": ("event_id_cnty", "deleted_timestamp"),
    "ucdp_replacements": ("id", "replaced_by", "replaced_at"),
    "ucdp_ged": ("id", "date_start", "side_a", "side_b", "type_of_violence"),
    "acled": ("event_id_cnty", *ACLED_EVENT_COLUMNS, "actor2"),
    "acled_monadic": ("event_id_cnty", *ACLED_EVENT_COLUMNS),
    "acled_extract": ACLED_EVENT_COLUMNS,
}
UCDP_DEATHS = {"best", "best_est"}
# Every column name an ACLED or UCDP file is known to have: an error message names these and no other header text.
KNOWN_COLUMNS = frozenset(
    {c for columns in LAYOUTS.values() for c in columns}
    | {
        "year", "time_precision", "disorder_type", "sub_event_type", "assoc_actor_1", "inter1", "assoc_actor_2",
        "inter2", "interaction", "civilian_targeting", "iso", "region", "country", "admin1", "admin2", "admin3",
        "location", "latitude", "longitude", "geo_precision", "source", "source_scale", "notes", "tags", "timestamp",
        "relid", "active_year", "code_status", "conflict_dset_id", "conflict_new_id", "conflict_name",
        "dyad_dset_id", "dyad_new_id", "dyad_name", "side_a_dset_id", "side_a_new_id", "side_b_dset_id",
        "side_b_new_id", "number_of_sources", "source_article", "source_office", "source_date", "source_headline",
        "source_original", "where_prec", "where_coordinates", "where_description", "adm_1", "adm_2", "geom_wkt",
        "priogrid_gid", "country_id", "event_clarity", "date_prec", "date_end", "deaths_a", "deaths_b",
        "deaths_civilians", "deaths_unknown", "high", "low", "gwnoa", "gwnob", *UCDP_DEATHS,
    }
)
LAYOUT_DESCRIPTIONS = {
    "acled": "an ACLED export",
    "acled_monadic": "an ACLED monadic export (one row per actor)",
    "acled_extract": "an ACLED extract without event ids",
    "ucdp_ged": "a UCDP GED file (and a deaths column: best or best_est)",
    "acled_deletions": "an ACLED deletions file",
    "ucdp_replacements": "a UCDP replacements file (written by `sahel fetch ucdp`)",
}
# Files that remove events rather than add them: layout -> (id column, timestamp column, id prefix, what a row is).
REMOVAL_LAYOUTS: dict[str, tuple[str, str, str, str]] = {
    "acled_deletions": ("event_id_cnty", "deleted_timestamp", "ACLED:", "deletion"),
    "ucdp_replacements": ("id", "replaced_at", "UCDP:", "replacement"),
}


def detect_layout(header: list[str], name: str) -> str:
    """The layout whose columns the header has (LAYOUTS, in order). Otherwise a SourceError that names the file and
    only the columns it recognises (the header of a file that is not an export may be private text): that the
    delimiter seems to be another one, or which columns the nearest layout lacks, or what each layout expects."""
    lower = {h.lower() for h in header}
    for layout, required in LAYOUTS.items():
        if set(required) <= lower and (layout != "ucdp_ged" or lower & UCDP_DEATHS):
            return layout
    raise SourceError(f"{name}: {_why_unrecognised(header)}")


def _why_unrecognised(header: list[str]) -> str:
    lower = [h.lower() for h in header]
    joined = ",".join(lower)
    for separator, said in ((";", "`;`"), ("\t", "a tab"), ("|", "`|`")):
        parts = [p.strip().strip('"') for p in joined.split(separator)]
        if len(parts) >= 3 and sum(p in KNOWN_COLUMNS for p in parts) >= 3:
            return (
                f"the delimiter seems to be {said}, not a comma (its header splits on it into known columns): "
                "save it as a comma-separated CSV"
            )
    wanted = {layout: [*required, *(["best"] if layout == "ucdp_ged" else [])] for layout, required in LAYOUTS.items()}
    present = {layout: [c for c in columns if c in lower or (c == "best" and set(lower) & UCDP_DEATHS)]
               for layout, columns in wanted.items()}
    nearest = max(LAYOUTS, key=lambda layout: len(present[layout]))  # ties: the first in LAYOUTS
    missing = [c for c in wanted[nearest] if c not in present[nearest]]
    if len(present[nearest]) >= 2 and len(missing) <= 2:
        named = ", ".join(f"`{c}`" + (" (or `best_est`)" if c == "best" else "") for c in missing)
        return f"it looks like {LAYOUT_DESCRIPTIONS[nearest]} but is missing column{'s' * (len(missing) > 1)} {named}"
    known = [h for h in header if h.lower() in KNOWN_COLUMNS]
    others = len(header) - len(known)
    found = ", ".join(known) if known else "none"
    expected = "; ".join(f"{LAYOUT_DESCRIPTIONS[k]}: {', '.join(v)}" for k, v in LAYOUTS.items())
    return (
        f"unrecognised layout. Columns recognised: {found}"
        + (f" (and {others} other column{'s' * (others > 1)}, not shown)" if others else "")
        + f". Expected one of -- {expected}"
    )
