"""`sahel fetch` and `sahel vintages`: pulls from the command line, their progress line and their one-line errors."""

from __future__ import annotations

import datetime as dt

import pytest

from sahel_pipeline.cli import main
from sahel_pipeline_tests.fake_providers import FakeProviders
from sahel_pipeline_tests.test_fetch_acled import synthetic_rows
from sahel_pipeline_tests.test_fetch_ucdp import MALI, ged_rows

EMAIL, PASSWORD, TOKEN = "desk+sahel@example.org", "a b&c+d", "t0ken"


@pytest.fixture
def providers(monkeypatch):
    with FakeProviders(email=EMAIL, password=PASSWORD, ucdp_token=TOKEN) as fake:
        for name, value in {"ACLED_EMAIL": EMAIL, "ACLED_PASSWORD": PASSWORD, "UCDP_API_TOKEN": TOKEN,
                            "SAHEL_ACLED_API_URL": fake.url, "SAHEL_UCDP_API_URL": fake.url}.items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.mark.slow
def test_fetch_acled_shows_its_progress_and_what_it_wrote(providers, tmp_path, capsys):
    providers.publish(synthetic_rows(12_003, "Mali", dt.date(1990, 1, 1), 1_500_000_000))
    assert main(["fetch", "acled", "--raw", str(tmp_path / "raw"), "--country", "Mali", "--since", "1990-01-01"]) == 0
    printed = capsys.readouterr()
    assert "ACLED Mali, events from 1990-01-01, all: page 1/3, 5,000 of 12,003 rows" in printed.err
    assert "page 3/3, 12,003 of 12,003 rows" in printed.err
    assert "ACLED: 12,003 new or revised events, 0 deletions: " in printed.out
    assert "vintage: " in printed.out
    assert main(["vintages", "--raw", str(tmp_path / "raw")]) == 0
    listing = capsys.readouterr().out
    assert "-acled" in listing and "12,003 rows" in listing and "1 files held" in listing


def test_fetch_ucdp_pulls_a_version(providers, tmp_path, capsys):
    providers.ucdp["25.1"] = ged_rows(range(1, 8), MALI, dt.date(2021, 1, 1))
    assert main(["fetch", "ucdp", "--raw", str(tmp_path / "raw"), "--version", "25.1", "--country", "Mali"]) == 0
    assert "UCDP: 7 events; replaced by GED: 0 Candidate events, 0 of earlier GED versions" in capsys.readouterr().out
    assert main(["fetch", "ucdp", "--raw", str(tmp_path / "raw"), "--version", "25.1", "--country", "Mali"]) == 0
    assert "held already" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "unset", "status", "message"), [
    (["fetch", "acled", "--raw", "RAW"], "ACLED_PASSWORD", 2,
     "ACLED_EMAIL and ACLED_PASSWORD must hold your myACLED login"),
    (["fetch", "ucdp", "--raw", "RAW", "--version", "25.1"], "UCDP_API_TOKEN", 2,
     "UCDP_API_TOKEN must hold your UCDP API token"),
    (["fetch", "acled", "--raw", "RAW", "--country", "Nigre"], None, 2,
     "unknown country 'Nigre' (did you mean 'Niger'?)"),
    (["fetch", "acled", "--raw", "RAW", "--since", "2024-13-01"], None, 2, "bad date '2024-13-01' for --since"),
    (["fetch", "ucdp", "--raw", "RAW", "--version", "v25"], None, 2, "'v25' is not a UCDP version"),
    (["fetch", "ucdp", "--raw", "RAW", "--version", "24.1"], None, 1, "UCDP: no version 24.1"),
    (["vintages", "--raw", "RAW"], None, 1, "no pull recorded under"),
])
def test_errors_are_one_line(providers, tmp_path, monkeypatch, capsys, argv, unset, status, message):
    if unset:
        monkeypatch.delenv(unset)
    assert main([str(tmp_path / "raw") if a == "RAW" else a for a in argv]) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sahel: error: ") and message in err[-1]
    assert PASSWORD not in err[-1] and TOKEN not in err[-1]


def test_wrong_acled_password_from_the_command_line(providers, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACLED_PASSWORD", "not it")
    assert main(["fetch", "acled", "--raw", str(tmp_path / "raw"), "--country", "Mali"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("sahel: error: ACLED: the e-mail address and password were refused (The user credentials were "
                   "incorrect.): check ACLED_EMAIL and ACLED_PASSWORD, your myACLED login")
