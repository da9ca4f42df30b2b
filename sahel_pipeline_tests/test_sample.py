"""The bundled sample is what the generator makes, is labelled synthetic, and ingests as the generator says."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from sahel_pipeline.core.ingest import find_csv_files, ingest
from sahel_pipeline.core.places import places_table
from sahel_pipeline.synthetic import ACLED_EXPORT_COLUMNS, write_global, write_sample
from sahel_pipeline_tests.fixtures import TODAY


def test_committed_sample_is_reproduced_by_the_generator(tmp_path, sample_dir):
    write_sample(tmp_path)
    committed = sorted(p.name for p in sample_dir.glob("*.csv"))
    assert committed == sorted(p.name for p in tmp_path.glob("*.csv"))
    for name in committed:
        assert (tmp_path / name).read_bytes() == (sample_dir / name).read_bytes(), name


def test_sample_is_labelled_synthetic_and_in_acled_layout(sample_dir):
    export = pl.read_csv(sample_dir / "acled_sahel_2017-2024_SYNTHETIC.csv", infer_schema=False)
    assert export.columns == ACLED_EXPORT_COLUMNS
    assert export["notes"].str.starts_with("SYNTHETIC, not real.").all()
    assert all("SYNTHETIC" in p.name for p in sample_dir.glob("*.csv"))
    assert export["event_date"].str.contains(r"^\d{2} [A-Z][a-z]+ \d{4}$").all()  # "15 May 2024", as exports write it


def test_sample_ingests_with_its_revisions_and_deletions(tmp_path, sample_dir):
    planted = write_sample(tmp_path / "again")
    result = ingest(find_csv_files([sample_dir]), tmp_path / "cache", TODAY, log=lambda _: None)
    assert result.quarantine.height == 0
    assert result.stats["revised_events"] == planted["revised"]
    assert result.stats["deleted_events"] == planted["deleted"]
    assert result.events.height == planted["events"]
    assert result.events["country"].unique().sort().to_list() == ["Burkina Faso", "Mali", "Niger"]
    assert result.events["event_date"].dt.year().unique().sort().to_list() == list(range(2017, 2025))


@pytest.mark.slow  # generates benchmark data
def test_global_benchmark_data_at_small_scale_has_acled_shapes(tmp_path):
    figures = write_global(tmp_path, target_events=60_000, n_countries=12, n_actors=150)
    export = pl.read_csv(tmp_path / "acled_global_1997-2026-11-14_SYNTHETIC.csv", infer_schema=False)
    update = pl.read_csv(tmp_path / "acled_global_update_2026-11-21_SYNTHETIC.csv", infer_schema=False)
    assert export.columns == ACLED_EXPORT_COLUMNS == update.columns
    assert export.height == figures["events"] and export["country"].n_unique() == 12
    associated = export.filter(pl.col("assoc_actor_1").is_not_null())
    assert 0.1 < associated.height / export.height < 0.4
    assert associated["assoc_actor_1"].str.contains("; ").any()
    revised = update.join(export, on="event_id_cnty", suffix="_before")
    assert revised.height == figures["update_revisions"] > 0
    assert (revised["timestamp"].cast(pl.Int64) > revised["timestamp_before"].cast(pl.Int64)).all()
    # located as real events are, so that the spatial panels do their real work: around the capital (the rings
    # hold some of the events), mostly precise, a few at a region's centroid, several admin2 areas per admin1
    capitals = places_table(export["country"].unique().to_list()).filter(pl.col("kind") == "capital")
    located = export.join(capitals.select("country", clat="latitude", clon="longitude"), on="country")
    lat, lon = (np.radians(located[c].cast(pl.Float64).to_numpy()) for c in ("latitude", "longitude"))
    clat, clon = np.radians(located["clat"].to_numpy()), np.radians(located["clon"].to_numpy())
    half = np.sin((lat - clat) / 2) ** 2 + np.cos(lat) * np.cos(clat) * np.sin((lon - clon) / 2) ** 2
    km = 2 * 6371 * np.arcsin(np.sqrt(half))
    assert located.height > 0.8 * export.height and 0.03 < (km <= 100).mean() < 0.2 and km.max() < 600
    precision = export["geo_precision"].value_counts(normalize=True).sort("geo_precision")
    assert precision["geo_precision"].to_list() == ["1", "2", "3"] and 0.005 < precision["proportion"][2] < 0.05
    assert export.group_by("country", "admin1").agg(pl.col("admin2").n_unique())["admin2"].min() > 1


STATE = r"^(?:Military|Police) Forces of (?P<country>.+?) \((?P<period>\d{4}-(?:\d{4})?)\)(?P<unit> .+)?$"


def state_shares(export: pl.DataFrame) -> dict[str, float]:
    """Share of events with a state force of the event's country (any side), of those by a unit, as actor1; and the
    regime periods per country (median)."""
    parts = {side: pl.col(side).str.extract_groups(STATE) for side in ("actor1", "actor2")}
    own = {side: (p.struct.field("country") == pl.col("country")).fill_null(False) for side, p in parts.items()}
    unit = {side: own[side] & p.struct.field("unit").is_not_null() for side, p in parts.items()}
    shares = export.select(
        state=(own["actor1"] | own["actor2"]).mean(),
        actor1=own["actor1"].mean(),
        unit=(unit["actor1"] | unit["actor2"]).sum() / (own["actor1"] | own["actor2"]).sum(),
    ).row(0, named=True)
    periods = export.filter(own["actor1"]).select("country", period=parts["actor1"].struct.field("period"))
    return shares | {"periods": periods.unique().group_by("country").len()["len"].median()}


def test_sample_state_forces_have_regime_periods_units_and_types_in_words(sample_dir):
    export = pl.read_csv(sample_dir / "acled_sahel_2017-2024_SYNTHETIC.csv", infer_schema=False)
    shares = state_shares(export)
    # measured on the real files: 26-35% of events, 7-18% as actor1, a unit on 16-25% of them, 3-4 periods
    assert 0.25 < shares["state"] < 0.37 and 0.07 < shares["actor1"] < 0.18 and 0.15 < shares["unit"] < 0.26
    assert shares["periods"] >= 2
    assert set(export["inter1"]) <= {"State forces", "Rebel group", "Identity militia", "Rioters", "Protesters"}


@pytest.mark.slow  # generates benchmark data
def test_global_benchmark_data_has_state_forces_in_real_proportions_and_inter_codes(tmp_path):
    write_global(tmp_path, target_events=60_000, n_countries=12, n_actors=150)
    export = pl.read_csv(tmp_path / "acled_global_1997-2026-11-14_SYNTHETIC.csv", infer_schema=False)
    shares = state_shares(export)
    assert 0.2 < shares["state"] < 0.37 and 0.1 < shares["actor1"] < 0.2 and 0.15 < shares["unit"] < 0.26
    assert 2 <= shares["periods"] <= 5
    assert set(export["inter1"]) <= {str(code) for code in range(1, 9)}
