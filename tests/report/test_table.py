"""Tests for the terminal summary tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from quanzhan.report.table import print_summary, summary_tables


def _quality(auc: float | None) -> dict[str, Any]:
    return {"auc": auc, "auc_truth": 0.8123, "calibration": 1.0271, "logloss": 0.2, "rows": 10}


def make_summary() -> dict[str, Any]:
    """The scalar parts of a valid summary; the tables read nothing else."""
    return {
        "scenario": "default", "seed": 7, "policy": "landscape", "days": 1,
        "requests": 123456, "impressions": 98765, "clicks": 4321, "orders": 210,
        "gmv_total": 98765.6, "gmv_ad": 12345.6, "gmv_organic": 86420.0,
        "cmr": 4938.28, "take_rate": 0.05, "wall_seconds": 1.5,
        "prediction": {
            "pctr": {**_quality(0.7456), "by_surface": {"search": _quality(0.7)}},
            "pcvr": {**_quality(0.6512), "by_surface": {}},
        },
        "campaign_totals": {
            "count": 5, "full_site": 4, "manual_cpc": 1, "roi_met_share": 2 / 3,
            "roi_met_share_expected": 0.8125, "budget_use_median": 0.5, "budget_exhausted": 1,
        },
        "by_hour": {"hour": [], "requests": [], "spend": [], "gmv_ad": [], "gmv_organic": []},
        "by_surface": {},
        "campaigns": [],
    }  # fmt: skip


def _render(summary: dict[str, Any]) -> str:
    console = Console(record=True, width=120)
    for table in summary_tables(summary):
        console.print(table)
    return console.export_text()


def test_three_tables_in_order() -> None:
    titles = [table.title for table in summary_tables(make_summary())]

    assert titles == ["Platform", "Campaigns", "Prediction"]


def test_platform_figures() -> None:
    text = _render(make_summary())

    for expected in ("123,456", "98,765", "4,321", "210", "98,765.60", "12,345.60"):
        assert expected in text
    assert "86,420.00" in text
    assert "4,938.28" in text
    assert "5.00%" in text


def test_campaign_figures() -> None:
    text = _render(make_summary())

    assert "Manual CPC" in text
    assert "66.67%" in text
    assert "81.25%" in text  # in expectation
    assert "50.00%" in text


def test_prediction_figures() -> None:
    text = _render(make_summary())

    for expected in ("pCTR", "pCVR", "0.746", "0.651", "0.812", "1.027"):
        assert expected in text


def test_nulls_and_zero_campaigns() -> None:
    summary = make_summary()
    summary["prediction"]["pctr"]["auc"] = None
    summary["prediction"]["pcvr"] = {}
    summary["campaign_totals"] = {
        "count": 0, "full_site": 0, "manual_cpc": 0, "roi_met_share": None,
        "budget_use_median": None, "budget_exhausted": 0,
    }  # fmt: skip

    text = _render(summary)

    assert "–" in text
    assert "0.746" not in text


def test_print_summary_prints_header_and_tables() -> None:
    console = Console(record=True, width=120)
    summary = make_summary()
    summary["scenario"] = "[bold]odd[/bold]"

    print_summary(summary=summary, console=console)
    text = console.export_text()

    assert "Scenario [bold]odd[/bold], seed 7, steered by landscape" in text
    for title in ("Platform", "Campaigns", "Prediction"):
        assert title in text
