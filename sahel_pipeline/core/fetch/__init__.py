"""Pulling conflict events from the providers' APIs (ACLED, UCDP) into dated files of a raw folder.

The clients are plain classes over httpx; the pulls write what the ingest already reads (an ACLED export and a
deletions file, a UCDP GED file) and record each pull as a vintage (`sahel_pipeline.core.vintages`).
"""
