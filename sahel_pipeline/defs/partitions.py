"""How the monthly assets are partitioned, and how the model stage fans out."""

import datetime as dt

import dagster as dg

from sahel_pipeline.core.months import month_key, month_range

# One partition per month, added as the data arrive: the panels asset adds every month from the first one the data
# can score (the data's first month plus a minimum baseline and the recent window) to the current, still-open month.
# Materializing 2023-10 uses only data dated up to October 2023. Months the data cannot score are not partitions, so
# the UI's partition bar is not hundreds of months that can never fill.
MONTHS = dg.DynamicPartitionsDefinition(name="months")

# No month before this one is a partition, whatever the data: ACLED's start in 1997 and the models need years of
# baseline. A month before it, or after the current month, is refused before any work; a month the data are too short
# to score only once they are ingested.
EARLIEST_MONTH = dt.date(2000, 1, 1)

# The model stage is split into this many assets by country (a stable hash), so that a cluster executor (dagster-k8s,
# dagster-celery) fits them on as many machines; in one process the fitting pool (ModelSettings.workers) fans out.
MODEL_SHARDS = 4


def add_month_partitions(instance: dg.DagsterInstance, first: dt.date, last: dt.date) -> list[str]:
    """Add the months first..last that are not partitions yet; returns those added."""
    assert MONTHS.name is not None
    known = set(instance.get_dynamic_partitions(MONTHS.name))
    added = [key for key in map(month_key, month_range(first, last)) if key not in known]
    if added:
        instance.add_dynamic_partitions(MONTHS.name, added)
    return added


def impossible_months(months: list[str], today: dt.date) -> str | None:
    """Why some of `months` (YYYY-MM keys) can be no partition on `today`, in one line; None when all can be."""
    first, last = month_key(EARLIEST_MONTH), month_key(today)
    outside = sorted(key for key in months if not first <= key <= last)
    if not outside:
        return None
    return f"month {outside[0]} is outside the months the pipeline scores, {first} to {last} (the current month)"


def month_partitions(instance: dg.DagsterInstance) -> list[str]:
    assert MONTHS.name is not None
    return sorted(instance.get_dynamic_partitions(MONTHS.name))
