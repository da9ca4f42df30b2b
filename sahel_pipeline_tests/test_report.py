"""The report's cards, document and renderers on hand-made alert rows (the sample's run is test_end_to_end's)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import polars as pl
import pytest
from polars.exceptions import ColumnNotFoundError

from sahel_pipeline.core.alerts import ALERT_COLUMNS, spatial_reasons
from sahel_pipeline.core.cards import alert_cards
from sahel_pipeline.core.report.document import Card, Document, Paragraph, Table, chance_words
from sahel_pipeline.core.report.plots import Plot, PlotError, drawn_figures
from sahel_pipeline.core.report.render import render_html, render_markdown
from sahel_pipeline.core.report.selection import changes


def rows(*specs: tuple[str, str, str, str]) -> pl.DataFrame:
    """Alert rows (group, indicator, severity, status) in Niger, most severe first as the table is."""
    base = {"month": "2024-12", "kind": "count", "source": "ACLED", "country": "Niger", "group_type": "rebel group",
            "observed": 20, "expected": 5.0, "upper": 12, "p_value": 1e-5, "rate_ratio": 3.5, "rate_ratio_low": 2.0,
            "rate_ratio_high": 5.0, "synthetic": True, "place": ""}  # fmt: skip
    return pl.DataFrame(
        [
            base
            | {
                "group": g,
                "group_name": g,
                "indicator": i,
                "indicators": i,
                "q_value": 1e-3,
                "rules": "month",
                "severity": s,
                "severity_reason": f"{s}: the month above its bound",
                "status": st,
                "explanation": f"{g} {i}",
            }
            for g, i, s, st in specs
        ]
    ).select(ALERT_COLUMNS)


def test_one_card_per_group_and_country_listing_every_indicator_that_rose():
    table = rows(
        ("ISSP", "events", "high", "continuing"),
        ("JNIM", "events", "medium", "new"),
        ("ISSP", "violent_events", "medium", "new"),
        ("ISSP", "civilian_targeting_events", "low", "new"),
    )
    cards = alert_cards(table)
    assert [(c.group, c.indicators, c.severity) for c in cards] == [
        ("ISSP", ("events", "violent_events", "civilian_targeting_events"), "high"),
        ("JNIM", ("events",), "medium"),
    ]
    issp = cards[0]
    assert issp.sentence == "ISSP events"  # the strongest row's
    assert issp.severity_reason == "high: the month above its bound" and issp.rules == ("month",)
    assert [i for _, i in issp.rose] == ["events", "violent_events", "civilian_targeting_events"]
    assert issp.units == (("ACLED", issp.country, "ISSP", issp.kind, ""),)  # one unit, whichever indicator leads


def test_the_card_reads_the_detection_columns_when_the_table_has_them():
    table = rows(("ISSP", "events", "high", "new")).with_columns(
        indicators=pl.lit("events, fatalities"),
        rules=pl.lit("month, window"),
        severity_reason=pl.lit("high: two rules, 4x the level"),
    )
    card = alert_cards(table)[0]
    assert card.rules == ("month", "window")
    assert card.indicators == ("events", "fatalities") and [i for _, i in card.rose] == ["events", "fatalities"]
    assert card.severity_reason == "high: two rules, 4x the level"


def test_a_spatial_alert_is_a_card_of_its_own_about_its_place():
    count = rows(("ISSP", "events", "high", "new"))
    rule, reason = spatial_reasons("approach", "events_100km", "Niamey", "medium")
    approach = rows(("ISSP", "events_100km", "medium", "new")).with_columns(
        kind=pl.lit("approach"), place=pl.lit("Niamey"), rules=pl.lit(", ".join(rule)), severity_reason=pl.lit(reason)
    )
    cards = alert_cards(pl.concat([count, approach]))
    assert [(c.kind, c.place) for c in cards] == [("count", ""), ("approach", "Niamey")]
    closing = cards[1]
    assert closing.title == "ISSP - Niger - closing in on Niamey"
    assert closing.rules == ("ring",)
    assert closing.severity_reason.startswith("medium:") and "within 100km of Niamey" in closing.severity_reason
    assert closing.units == (("ACLED", "Niger", "ISSP", "approach", "Niamey"),)
    # the group's count card the month before does not make its approach continuing
    changed = changes(cards, alert_cards(count))
    assert [c.kind for c in changed.new] == ["approach"] and [c.kind for c in changed.continuing] == ["count"]


def test_what_changed_sorts_cards_into_new_continuing_and_ended():
    now = alert_cards(rows(("ISSP", "events", "high", "continuing"), ("JNIM", "events", "low", "new")))
    before = alert_cards(rows(("ISSP", "violent_events", "low", "new"), ("Lakurawa", "events", "low", "new")))
    changed = changes(now, before)
    assert [c.group for c in changed.new] == ["JNIM"]
    assert [c.group for c in changed.continuing] == ["ISSP"]
    assert [c.group for c in changed.ended] == ["Lakurawa"]


def test_one_document_renders_as_html_and_markdown_with_data_made_inert():
    hostile = "<script>alert(1)</script> *bold* | pipe"
    card = alert_cards(rows(("ISSP", "events", "high", "new")))[0]
    frame = pl.DataFrame({"place": [hostile], "fatalities": [3]})
    document = Document(
        "Escalation alerts, December 2024",
        (Card(card, (Paragraph(hostile), Table(frame, "Largest events:"))),),
    )
    html, markdown = render_html(document), render_markdown(document, "2024-12")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "\\*bold\\*" in markdown and "\\|" in markdown
    for page in (html, markdown):
        assert "ISSP - Niger - events" in page and "Largest events:" in page


def test_a_long_title_stays_whole_on_a_map_whose_axes_shrink_to_its_proportions():
    """A tall map keeps its proportions by narrowing its axes; its title used to start at the narrowed axes and run
    off the figure's right edge. The title's band (above the axes) must leave the figure's right edge blank."""
    import io

    import numpy as np
    from PIL import Image

    from sahel_pipeline.core.report import plots

    events = pl.DataFrame(
        {"latitude": [11.2, 12.0, 12.5, 13.1, 14.9], "longitude": [-2.0, -1.5, -1.2, -0.8, -1.0],
         "fatalities": [12, 1, 5, 0, 3]}
    )  # fmt: skip
    places = pl.DataFrame({"name": ["Ouagadougou"], "kind": ["capital"], "latitude": [12.37], "longitude": [-1.53]})
    unit = "Jama'at Nusrat al-Islam wal-Muslimin (JNIM) in Burkina Faso"
    title = f"{unit}: events, Aug 2024-Oct 2024 against the baseline"
    png = plots.plot_map(events, events, places, title, (12.37, -1.53, (25, 50, 100)))
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    width = pixels.shape[1]
    axes_top = int(np.flatnonzero((pixels < 100).mean(axis=1) > 0.2)[0])  # the axes' frame: the first long dark line
    title_band = pixels[: max(axes_top - 2, 1)]
    assert (title_band < 128).any(), "the title is drawn above the axes"
    assert (title_band[:, -int(width * 0.03) :] > 200).all(), "the title runs off the figure's right edge"


# --- the plots drawn on worker processes ----------------------------------------------------------------------------
# The drawings below are module-level so that a worker process imports them by name, as it does plots.plot_series.


def whole_png(*drawn_from) -> bytes:
    import io

    from PIL import Image

    stored = io.BytesIO()
    Image.new("RGB", (4, 4), (20, 90, 160)).save(stored, "PNG")  # Pillow, not matplotlib: a fast stand-in drawing
    return stored.getvalue()


def broken_drawing(*drawn_from) -> bytes:
    raise ColumnNotFoundError('unable to find column "count"')


def not_a_png(*drawn_from) -> bytes:
    return whole_png()[:-12]  # cut off before its end


def dying_drawing(*drawn_from) -> bytes:
    os._exit(3)  # as a worker the kernel kills for memory ends: no exception, no result


def planned(name: str, draw) -> Plot:
    return Plot(name, f"JNIM - Niger: {name}", draw, (name,), "alt text", "caption", f"digest of {name}")


@pytest.fixture(scope="module")
def spawned():
    """Two worker processes of their own (the fitting pool's are shared by the session, and one test kills one)."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield executor


@pytest.mark.slow  # starts two Python processes
def test_plots_drawn_on_workers_come_back_in_order_and_earlier_ones_are_not_drawn_again(spawned):
    kept = whole_png() + b"kept"  # an earlier run's (never looked at: its digest matches)
    plots = [planned("alert1", whole_png), planned("alert1-map", whole_png), planned("alert2", whole_png)]
    figures = drawn_figures(plots, {plots[1].digest: kept}, spawned)
    assert [f.name for f in figures] == ["alert1", "alert1-map", "alert2"]
    assert [f.png for f in figures] == [whole_png(), kept, whole_png()]


@pytest.mark.slow  # starts two Python processes
@pytest.mark.parametrize("where", ["workers", "here"])
@pytest.mark.parametrize(
    ("drawing", "said"),
    [(broken_drawing, 'could not be drawn: ColumnNotFoundError: unable to find column "count"'),
     (not_a_png, "was drawn as bytes, not as a whole PNG")],
)  # fmt: skip
def test_a_plot_that_cannot_be_drawn_stops_the_report_naming_it(spawned, where, drawing, said):
    plots = [planned("alert1", whole_png), planned("alert2-map", drawing), planned("alert3", whole_png)]
    with pytest.raises(PlotError) as raised:
        drawn_figures(plots, {}, spawned if where == "workers" else None)
    assert str(raised.value) == f"the report's plot alert2-map.png (JNIM - Niger: alert2-map) {said}"


@pytest.mark.slow  # starts two Python processes
def test_a_worker_that_dies_drawing_a_plot_stops_the_report_naming_the_plot():
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as executor:
        # the worker's death breaks the pool: the plot named is the first not drawn, maybe one queued behind it
        with pytest.raises(PlotError, match=r"^the report's plot (alert[12])\.png \(JNIM - Niger: \1\) was not drawn: "
                                            "a worker process stopped while the plots were drawn"):  # fmt: skip
            drawn_figures([planned("alert1", whole_png), planned("alert2", dying_drawing)], {}, executor)


def test_the_report_draws_on_the_fitting_workers_only_when_they_run():
    from sahel_pipeline.core.pool import fitting_pool
    from sahel_pipeline.defs.resources import ModelSettings

    assert ModelSettings(workers=1).plot_executor is None  # no pool: drawn in the run's process
    idle = ModelSettings(workers=3)  # a pool no test starts
    assert idle.plot_executor is None and not fitting_pool(3).started  # not started for the plots (3-4 s)


# --- a plot's digest: what it draws, and nothing else ------------------------------------------------------------


def test_a_series_plot_digest_changes_with_what_is_drawn_and_only_with_it():
    import dataclasses
    import datetime as dt

    from sahel_pipeline.core.models import ModelConfig
    from sahel_pipeline.core.report.plots import series_plot

    month = dt.date(2024, 12, 1)
    history = pl.DataFrame({"month": [dt.date(2024, 11, 1), month], "count": [3, 9], "days_covered": [30, 31],
                            "group_id": ["JNIM", "JNIM"]})  # fmt: skip
    score = {"month": month, "indicator": "events", "expected": 3.2, "upper": 8, "days_covered": 31,
             "p_value": 0.001, "exceedance": [{"months": 1, "at_least": 1, "probability": 0.99}]}  # fmt: skip
    forecasts = pl.DataFrame({"target_month": [dt.date(2025, 1, 1)], "mean": [4.1], "q025": [0], "q05": [1],
                              "q10": [1], "q50": [4], "q90": [8], "q95": [10], "q975": [11]})  # fmt: skip
    config, breaks = ModelConfig(), ((dt.date(2023, 7, 1), "coup"),)

    def digest(history=history, score=score, forecasts=forecasts, config=config, breaks=breaks) -> str:
        return series_plot("alert1", "JNIM in Niger (ACLED): events", "alt", history, score, forecasts, config,
                           breaks).digest  # fmt: skip

    same = digest()
    # not drawn: the score's other fields, the history's other columns, the forecast's unplotted quantiles, the
    # alert rule's settings
    assert digest(score=score | {"p_value": 0.2, "exceedance": []}) == same
    assert digest(history=history.with_columns(days_covered=pl.lit(28))) == same
    assert digest(forecasts=forecasts.with_columns(mean=pl.lit(9.0), q05=pl.lit(3))) == same
    assert digest(config=dataclasses.replace(config, alert_p=0.01)) == same
    # drawn: every one of these is on the plot
    drawn_changes = [
        digest(score=score | {"upper": 9}),
        digest(score=score | {"expected": 3.0}),
        digest(score=score | {"days_covered": 15}),
        digest(history=history.with_columns(count=pl.Series([3, 10]))),
        digest(forecasts=forecasts.with_columns(q90=pl.lit(9))),
        digest(config=dataclasses.replace(config, recent_months=6)),
        digest(config=dataclasses.replace(config, bound_quantile=0.99)),
        digest(breaks=()),
    ]
    assert same not in drawn_changes and len(set(drawn_changes)) == len(drawn_changes)


def test_the_alerts_expected_by_chance_read_as_a_count_never_as_about_zero():
    # 45 series at the rules' 0.65% a month: 0.29 by chance, which a rounded "about 0" says is none at all
    assert chance_words(45 * 0.0065) == "fewer than one"
    assert chance_words(0.9) == "fewer than one"
    assert chance_words(200 * 0.0065) == "about 1"
    assert chance_words(4880 * 0.0065) == "about 32"


def test_a_sparse_baseline_mean_reads_as_the_small_count_it_is_never_as_zero():
    import datetime as dt

    from sahel_pipeline.core.alerts import count_text
    from sahel_pipeline.core.models import ModelConfig
    from sahel_pipeline.core.months import shift_month
    from sahel_pipeline.core.report.plots import series_alt

    assert [count_text(v) for v in (38.2, 2.44, 0.0278, 0.0042, 0.0004, 0.0)] == ["38", "2.4", "0.03", "0.004",
                                                                                   "< 0.001", "0"]  # fmt: skip
    config, month = ModelConfig(), dt.date(2024, 12, 1)
    months = [shift_month(month, -k) for k in range(config.window_months - 1, -1, -1)]
    counts = [0] * len(months)
    counts[0], counts[-1] = 1, 9  # one event in the baseline's first month, then the alerted month
    history = pl.DataFrame({"month": months, "count": counts})
    score = {"month": month, "expected": 0.2, "upper": 3}
    text = series_alt("JNIM in Niger (ACLED)", "events", history, score, pl.DataFrame(), config)
    assert f"the baseline's {config.baseline_months} months averaged {count_text(1 / config.baseline_months)}." in text
