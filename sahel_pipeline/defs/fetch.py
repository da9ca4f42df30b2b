"""Pull assets: ACLED and UCDP data fetched from their APIs into the raw folder, upstream of the ingest.

Without credentials a pull is not an error: it records that nothing was pulled and why, and the ingest goes on with
the files already there (manual drops, earlier pulls, or the bundled sample).
"""

import datetime as dt

import dagster as dg
from pydantic import Field

from sahel_pipeline.core.fetch.acled import ACLED_URL, EARLIEST, AcledClient, AcledCredentials, pull_acled
from sahel_pipeline.core.fetch.http import FetchError
from sahel_pipeline.core.fetch.pages import ProgressEvent
from sahel_pipeline.core.fetch.ucdp import UCDP_URL, UcdpClient, pull_ucdp
from sahel_pipeline.defs.resources import PipelineSettings

GROUP = "fetch"
LIST_SEPARATOR = ";"  # country names hold commas and spaces, never semicolons


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(LIST_SEPARATOR) if item.strip()]


class AcledApi(dg.ConfigurableResource):
    """ACLED's API: the myACLED login, where the API is, and what to pull. Empty credentials: nothing is pulled."""

    email: str = Field(default="", description="myACLED e-mail address (ACLED_EMAIL).")
    password: str = Field(default="", description="myACLED password (ACLED_PASSWORD).")
    base_url: str = Field(default="", description=f"The API's base URL (SAHEL_ACLED_API_URL); empty for {ACLED_URL}.")
    countries: str = Field(default="", description="Countries to pull, ';'-separated, ACLED's names "
                           "(SAHEL_FETCH_COUNTRIES); empty for every country.")
    since: str = Field(default="", description="First event date of a country's first pull (YYYY-MM-DD); empty for "
                       f"{EARLIEST}, or the date a country was first pulled from.")

    def missing(self) -> str | None:
        if self.email.strip() and self.password:
            return None
        return "ACLED_EMAIL and ACLED_PASSWORD are not set"

    def since_date(self) -> dt.date | None:
        if not self.since.strip():
            return None
        try:
            return dt.date.fromisoformat(self.since.strip())
        except ValueError:
            raise dg.Failure(description=f"ACLED: since '{self.since}' is not a date (YYYY-MM-DD)") from None

    def client(self, log) -> AcledClient:
        return AcledClient(AcledCredentials(self.email.strip(), self.password), self.base_url or ACLED_URL, log=log)


class UcdpApi(dg.ConfigurableResource):
    """UCDP's API: the access token, where the API is, and which versions to pull. No token: nothing is pulled."""

    token: str = Field(default="", description="UCDP API access token (UCDP_API_TOKEN).")
    base_url: str = Field(default="", description=f"The API's base URL (SAHEL_UCDP_API_URL); empty for {UCDP_URL}.")
    versions: str = Field(default="", description="GED and Candidate versions to pull, ';'-separated, e.g. "
                          "'25.1;26.0.3' (SAHEL_UCDP_VERSIONS).")
    countries: str = Field(default="", description="Countries to pull, ';'-separated (SAHEL_FETCH_COUNTRIES); "
                           "empty for every country.")

    def missing(self) -> str | None:
        if not self.token.strip():
            return "UCDP_API_TOKEN is not set"
        if not _items(self.versions):
            return "no UCDP version is configured (SAHEL_UCDP_VERSIONS)"
        return None

    def client(self, log) -> UcdpClient:
        return UcdpClient(self.token.strip(), self.base_url or UCDP_URL, log=log)


def _progress(context: dg.AssetExecutionContext):
    def report(event: ProgressEvent) -> None:
        if event.page == 1 or event.page % 10 == 0 or (event.pages is not None and event.page >= event.pages):
            of = f" of {event.pages}" if event.pages is not None else ""
            context.log.info(f"{event.provider}: {event.query}: page {event.page}{of}, {event.rows:,} rows")
    return report


def _pull_or_fail(client, pull):
    """The pull's result; a FetchError fails the step with its one line, without a traceback to scroll."""
    with client:
        try:
            return pull()
        except FetchError as err:
            raise dg.Failure(description=str(err)) from None


def _nothing_pulled(context: dg.AssetExecutionContext, provider: str, reason: str) -> dg.MaterializeResult:
    context.log.warning(f"{provider}: nothing pulled: {reason}; the ingest uses the files already in the raw folder")
    return dg.MaterializeResult(metadata={"pulled": False, "reason": reason})


@dg.asset(group_name=GROUP, kinds={"python", "csv"})
def acled_pull(context: dg.AssetExecutionContext, settings: PipelineSettings, acled: AcledApi) -> dg.MaterializeResult:
    """ACLED events new or revised since the last pull, and deletions, written to the raw folder as a dated export."""
    if reason := acled.missing():
        return _nothing_pulled(context, "ACLED", reason)
    client = acled.client(context.log.info)
    result = _pull_or_fail(client, lambda: pull_acled(
        settings.pull_folder(), client, _items(acled.countries), acled.since_date(), made_by="dagster",
        progress=_progress(context)))
    record = result.vintage.record if result.vintage else {}
    return dg.MaterializeResult(metadata={
        "pulled": True,
        "vintage": record.get("vintage", ""),
        "rows_received": result.rows_received,
        "events_written": result.rows_written,
        "deletions_written": result.deletions_written,
        "newest_timestamp": result.newest_timestamp or 0,
        "files": ", ".join(record.get("files", [])) or "none (nothing changed)",
        "queries": dg.MetadataValue.json(result.queries),
    })


@dg.asset(group_name=GROUP, kinds={"python", "csv"})
def ucdp_pull(context: dg.AssetExecutionContext, settings: PipelineSettings, ucdp: UcdpApi) -> dg.MaterializeResult:
    """UCDP GED and Candidate versions not held yet, written to the raw folder; GED replaces what it covers."""
    if reason := ucdp.missing():
        return _nothing_pulled(context, "UCDP", reason)
    client = ucdp.client(context.log.info)
    result = _pull_or_fail(client, lambda: pull_ucdp(
        settings.pull_folder(), client, _items(ucdp.versions), _items(ucdp.countries), made_by="dagster",
        progress=_progress(context)))
    return dg.MaterializeResult(metadata={
        "pulled": result.vintage is not None,
        "vintage": result.vintage.id if result.vintage else "",
        "events_written": result.rows_written,
        "candidate_events_replaced": result.replaced,
        "older_ged_events_replaced": result.replaced_ged,
        "files": ", ".join(str(p.name) for p in result.files) or "none (every version asked is held)",
        "versions": dg.MetadataValue.json(result.versions),
    })
