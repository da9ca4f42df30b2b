"""Configuration shared by the assets: where raw files are read and outputs written."""

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from sahel_pipeline import ALIAS_TABLE, SAMPLE_DIR
from sahel_pipeline.core.ingest import find_csv_files, resolve_raw_files


class PipelineSettings(dg.ConfigurableResource):
    """Where raw files are read and outputs written. Relative paths are relative to the folder Dagster or `sahel` runs in."""

    raw_paths: str = Field(
        default="data/raw",
        description=f"Folders or single CSV files to ingest, separated by '{os.pathsep}'.",
    )
    output_dir: str = Field(default="data/outputs", description="Alerts, reports and the warehouse of stored assets.")
    sample_fallback: bool = Field(
        default=True,
        description="Use the bundled synthetic sample when the raw folders hold no CSV (off when paths are given).",
    )

    alias_table: str = Field(
        default=str(ALIAS_TABLE), description="CSV mapping raw actor names to canonical armed-group ids."
    )
    group_role: Literal["perpetrator", "any"] = Field(
        default="perpetrator",
        description="Count a group's events as perpetrator (actor1, assoc_actor_1) or as any party (either side).",
    )
    ambiguous_attribution: Literal["separate", "each"] = Field(
        default="separate",
        description="'X and/or Y' events: their own series (separate) or counted for each group named (each).",
    )

    def raw_path_list(self) -> list[Path]:
        return [Path(p) for p in self.raw_paths.split(os.pathsep) if p.strip()]

    def raw_files(self, log: Callable[[str], None]) -> list[tuple[Path, str]]:
        if self.sample_fallback:
            return resolve_raw_files(self.raw_path_list(), SAMPLE_DIR, log)
        files = find_csv_files(self.raw_path_list())
        if not files:
            raise FileNotFoundError(f"no CSV files under {self.raw_paths}")
        return files

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir)

    @property
    def warehouse(self) -> Path:
        return self.output_path / "warehouse"

    @property
    def ingest_cache(self) -> Path:
        return self.warehouse / "_ingest_cache"

    @staticmethod
    def today() -> dt.date:
        return dt.datetime.now(dt.UTC).date()
