"""Tests for the HTML report writer."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from quanzhan.errors import OutputError
from quanzhan.report.html import (
    format_count,
    format_metric,
    format_money,
    format_share,
    render_report,
    write_report,
)

SURFACES = ("search", "home_feed", "cart_feed", "post_purchase", "detail", "offsite")
IMG_PREFIX = '<img src="data:image/png;base64,'


def _quality(*, auc: float | None, rows: int) -> dict[str, Any]:
    return {"auc": auc, "auc_truth": 0.8123, "calibration": 1.0271, "logloss": 0.2345, "rows": rows}


def _campaign(*, index: int, mode: str, spend: float, roi: float | None) -> dict[str, Any]:
    return {
        "id": index, "item": 100 + index, "mode": mode, "budget": 500.0, "target_roi": 4.0,
        "roi_basis": "full_site", "spend": spend, "gmv_ad": spend * 3.0,
        "gmv_total": spend * (roi or 0.0), "roi": roi, "clicks": 10 * index,
        "impressions": 300 * index,
    }  # fmt: skip


def make_summary(*, scenario: str = "default", hours: int = 24) -> dict[str, Any]:
    """A valid summary: 5 campaigns (one full-site that never spent), ``hours`` hours."""
    campaigns = [
        _campaign(index=0, mode="full_site", spend=480.0, roi=4.6),
        _campaign(index=1, mode="full_site", spend=500.0, roi=3.1),
        _campaign(index=2, mode="full_site", spend=0.0, roi=None),
        _campaign(index=3, mode="manual_cpc", spend=120.5, roi=2.2),
        _campaign(index=4, mode="full_site", spend=250.0, roi=4.0),
    ]
    return {
        "scenario": scenario, "seed": 7, "policy": "landscape", "days": hours // 24,
        "requests": 123456, "impressions": 98765, "clicks": 4321, "orders": 210,
        "gmv_total": 98765.6, "gmv_ad": 12345.6, "gmv_organic": 86420.0,
        "cmr": 4938.28, "take_rate": 0.05, "wall_seconds": 12.3456,
        "prediction": {
            name: {
                **_quality(auc=0.7456, rows=5000),
                "by_surface": {s: _quality(auc=0.7, rows=800) for s in SURFACES},
                "calibration_over_time": {
                    "hours": 2.0 * max(hours, 24) / 24,
                    # A thin surface with a period of no rows (null) among the others.
                    "by_surface": {
                        s: [None if (i == 5 and p == 3) else 0.9 + 0.02 * p for p in range(12)]
                        for i, s in enumerate(SURFACES)
                    },
                },
            }
            for name in ("pctr", "pcvr")
        },
        "campaign_totals": {
            "count": 5, "full_site": 4, "manual_cpc": 1, "roi_met_share": 2 / 3,
            "roi_met_share_expected": 0.8125, "budget_use_median": 0.5, "budget_exhausted": 1,
        },
        "by_hour": {
            "hour": list(range(hours)),
            "requests": [5000 + 100 * (h % 24) for h in range(hours)],
            "spend": [50.0 + h % 24 for h in range(hours)],
            "gmv_ad": [500.0 + 10.0 * (h % 24) for h in range(hours)],
            "gmv_organic": [3600.0 - 20.0 * (h % 12) for h in range(hours)],
        },
        "by_surface": {
            s: {"requests": 1000 * (i + 1), "impressions": 800 * (i + 1), "clicks": 40 * (i + 1),
                "spend": 150.0 * (i + 1), "orders": 5 * (i + 1), "gmv_ad": 600.0 * (i + 1)}
            for i, s in enumerate(SURFACES)
        },
        "campaigns": campaigns,
    }  # fmt: skip


def _null_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    for quality in summary["prediction"].values():
        for record in (quality, *quality["by_surface"].values()):
            for metric in ("auc", "auc_truth", "calibration", "logloss"):
                record[metric] = None
    summary["campaign_totals"]["roi_met_share"] = None
    return summary


def _no_campaigns(summary: dict[str, Any]) -> dict[str, Any]:
    summary["campaigns"] = []
    summary["campaign_totals"].update(
        count=0, full_site=0, manual_cpc=0, roi_met_share=None, budget_exhausted=0
    )
    summary["cmr"] = 0.0
    summary["take_rate"] = 0.0
    summary["gmv_ad"] = 0.0
    summary["by_hour"]["spend"] = [0.0] * len(summary["by_hour"]["hour"])
    summary["by_hour"]["gmv_ad"] = [0.0] * len(summary["by_hour"]["hour"])
    for row in summary["by_surface"].values():
        row.update(spend=0.0, gmv_ad=0.0, clicks=0, orders=0)
    return summary


def _write(summary: dict[str, Any], tmp_path: Path) -> str:
    path = tmp_path / "report.html"
    write_report(summary=summary, path=path)
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def default_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The report of ``make_summary()``, rendered once for the read-only checks."""
    return _write(make_summary(), tmp_path_factory.mktemp("report"))


def test_report_holds_title_tables_and_five_png_figures(tmp_path: Path) -> None:
    page = _write(make_summary(scenario="peak_day"), tmp_path)

    assert page.startswith("<!DOCTYPE html>")
    assert "peak_day" in page
    assert page.count(IMG_PREFIX) == 5
    assert "<script" not in page
    assert not re.search(r"(?:src|href)=\"(?!data:)", page), "no external assets"


@pytest.mark.parametrize(
    "expected",
    [
        "123,456",  # requests
        "98,765",  # impressions
        "98,765.60",  # GMV total
        "12,345.60",  # GMV ad
        "86,420.00",  # GMV organic
        "4,938.28",  # CMR
        "5.00%",  # take rate
        "66.67%",  # share of full-site campaigns meeting the target
        "81.25%",  # the same in expectation
        "steered by landscape",  # the policy
        "50.00%",  # median budget use
        "12.35 s",  # wall time
        "0.746",  # pCTR AUC
        "0.812",  # AUC of the ground truth
        "1.027",  # calibration
        "0.2345",  # logloss
        "home_feed",  # a per-surface prediction row
    ],
)
def test_report_formats_numbers(default_page: str, expected: str) -> None:
    assert expected in default_page


def test_embedded_figures_are_png(default_page: str) -> None:
    payloads = re.findall(r'data:image/png;base64,([A-Za-z0-9+/=]+)"', default_page)

    assert len(payloads) == 5
    for payload in payloads:
        assert base64.b64decode(payload, validate=True).startswith(b"\x89PNG\r\n\x1a\n")


def test_special_characters_are_escaped(tmp_path: Path) -> None:
    summary = make_summary(scenario='<script>alert("x")</script> & $a$ co')
    summary["by_surface"]["<b>odd$</b>"] = dict(summary["by_surface"]["search"])

    page = _write(summary, tmp_path)

    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; $a$ co" in page
    assert "<b>odd" not in page


def test_null_metrics_show_as_dash(tmp_path: Path) -> None:
    page = _write(_null_metrics(make_summary()), tmp_path)

    assert "–" in page
    assert "0.746" not in page
    assert page.count(IMG_PREFIX) == 5


def test_no_campaigns_and_no_spend(tmp_path: Path) -> None:
    page = _write(_no_campaigns(make_summary()), tmp_path)

    assert page.count(IMG_PREFIX) == 5
    assert "0.00%" in page


def test_empty_hourly_and_surface_data(tmp_path: Path) -> None:
    summary = make_summary(hours=0)
    summary["by_surface"] = {}
    summary["prediction"] = {}

    assert _write(summary, tmp_path).count(IMG_PREFIX) == 5


def test_several_days(tmp_path: Path) -> None:
    assert _write(make_summary(hours=72), tmp_path).count(IMG_PREFIX) == 5


def test_overwrites_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text("old", encoding="utf-8")

    write_report(summary=make_summary(), path=path)

    assert "default" in path.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_path_inside_regular_file_raises_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x", encoding="utf-8")
    path = blocker / "report.html"

    with pytest.raises(OutputError, match=r"^cannot write .*report\.html: ") as caught:
        write_report(summary=make_summary(), path=path)

    assert isinstance(caught.value.__cause__, OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_dir"]


def test_failed_replace_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)

    with pytest.raises(OutputError, match="Permission denied"):
        write_report(summary=make_summary(), path=tmp_path / "report.html")

    assert list(tmp_path.iterdir()) == []


def test_directory_as_path_raises_output_error(tmp_path: Path) -> None:
    (tmp_path / "report.html").mkdir()

    with pytest.raises(OutputError):
        write_report(summary=make_summary(), path=tmp_path / "report.html")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_render_report_matches_written_file(tmp_path: Path) -> None:
    summary = make_summary()

    assert _write(summary, tmp_path) == render_report(summary=summary)


def test_import_is_cheap_and_pyplot_is_never_used(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "import quanzhan.report.html as report\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_html import make_summary\n"
        f"report.write_report(summary=make_summary(), path=Path({str(tmp_path)!r}) / 'r.html')\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


@pytest.mark.parametrize(
    ("formatter", "value", "expected"),
    [
        (format_count, 1234567, "1,234,567"),
        (format_money, 1234.5, "1,234.50"),
        (format_share, 0.0512, "5.12%"),
        (format_metric, 0.71234, "0.712"),
        (format_count, None, "–"),
        (format_money, float("nan"), "–"),
        (format_share, float("inf"), "–"),
        (format_metric, "0.7", "–"),
        (format_metric, True, "–"),
    ],
)
def test_formatters(formatter: Any, value: object, expected: str) -> None:
    assert formatter(value) == expected
