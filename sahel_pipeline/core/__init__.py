"""The pure core: plain functions on Polars frames, with no Dagster imports. One module per stage."""
