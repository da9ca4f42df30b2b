"""How the monthly assets are partitioned, and how the model stage fans out."""

import dagster as dg

from sahel_pipeline.core.months import KEY_FORMAT

# One partition per month, from 2000 (ACLED starts in 1997; the models need three years of baseline) to the current,
# still-open month. Materializing 2023-10 uses only data dated up to October 2023.
MONTHS = dg.MonthlyPartitionsDefinition(start_date="2000-01", fmt=KEY_FORMAT, end_offset=1)

# The model stage is split into this many assets by country (a stable hash), so that Dagster's multiprocess executor
# runs them in parallel here and a cluster executor (dagster-k8s, dagster-celery) on as many machines.
MODEL_SHARDS = 4
