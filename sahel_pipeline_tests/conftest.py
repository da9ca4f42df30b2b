"""Fixtures shared by the tests; the helpers they use (paths, the real-data mark) are in fixtures.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahel_pipeline import PROJECT_DIR, SAMPLE_DIR
from sahel_pipeline_tests.fixtures import REAL_DIR, TESTS_DIR, canonical
from sahel_pipeline_tests.postgres import Server, running_postgres


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_events(tmp_path_factory):
    """The sample's canonical events, ingested once for the session (frames are never changed in place)."""
    return canonical([SAMPLE_DIR], tmp_path_factory.mktemp("sample"))


@pytest.fixture(autouse=True)
def no_delivery_settings_from_the_environment(monkeypatch):
    """A developer's SAHEL_SMTP_* or webhook variables must not make a test send anything, nor change its outcome."""
    from sahel_pipeline.defs.resources import DELIVERY_ENVIRONMENT

    for name in DELIVERY_ENVIRONMENT.values():
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True, scope="session")
def dagster_home(tmp_path_factory) -> Iterator[Path]:
    """Runs of the command line are recorded in $DAGSTER_HOME's instance: the tests' own, never the project's."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copyfile(PROJECT_DIR / "deploy" / "dagster-local.yaml", home / "dagster.yaml")  # what `make ui` uses
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        yield home


@pytest.fixture
def own_dagster_home(tmp_path, monkeypatch) -> Path:
    """A $DAGSTER_HOME of the test's own, for a test whose outcome depends on what the instance holds (the month
    partitions earlier runs of other data added to the session's)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT_DIR / "deploy" / "dagster-local.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture(autouse=True, scope="session")
def allowed_roots(tmp_path_factory) -> Iterator[str]:
    """Runs may read and write the tests' temporary folders, the bad files and the real files, beside data/."""
    roots = os.pathsep.join(
        str(p) for p in (tmp_path_factory.getbasetemp(), PROJECT_DIR / "data", TESTS_DIR, REAL_DIR.parent)
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAHEL_ALLOWED_ROOTS", roots)
        yield roots


@pytest.fixture
def postgres_server() -> Iterator[Server]:
    """A running PostgreSQL server on loopback with Dagster's database and role (skips without PostgreSQL)."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_dagster_home(postgres_server: Server, tmp_path: Path, monkeypatch) -> Path:
    """$DAGSTER_HOME holding the shipped deploy/dagster.yaml byte for byte, with the DAGSTER_PG_* variables set to
    reach `postgres_server`: only the environment differs from production. Subprocesses inherit both."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT_DIR / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in postgres_server.environment().items():
        monkeypatch.setenv(name, value)
    return home


@pytest.fixture(scope="session")
def r_peers_available() -> str:
    """surveillance's version, R probed when a test first needs it (not at collection, where every run of the unit
    tests, which need no R, would start it); without R or the package the test skips with the reason. Here, not in
    test_surveillance_peers: `requires_r` asks for it from other modules too."""
    from sahel_pipeline.core.evaluation.surveillance import r_status

    version, why_not = r_status()
    if version is None:
        pytest.skip(f"R peers unavailable: {why_not}")
    return version
