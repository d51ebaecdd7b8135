"""Render a simulation summary as Rich tables for the terminal.

Three tables: "Platform" (traffic, GMV, ad revenue, take rate), "Campaigns" (counts by mode,
ROI attainment, budget use) and "Prediction" (pCTR and pCVR quality). Numbers are formatted by
the same helpers as the HTML report, so both show identical figures; nulls show as an en dash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from quanzhan.report.html import (
    PREDICTION_MODELS,
    format_count,
    format_metric,
    format_share,
    platform_rows,
)

__all__ = ["print_summary", "summary_tables"]


def summary_tables(summary: Mapping[str, Any]) -> list[Table]:
    """The "Platform", "Campaigns" and "Prediction" tables for ``summary``, in that order."""
    return [_platform_table(summary), _campaigns_table(summary), _prediction_table(summary)]


def print_summary(*, summary: Mapping[str, Any], console: Console) -> None:
    """Print a one-line scenario header and the summary tables to ``console``."""
    header = f"Scenario {summary['scenario']}, seed {summary['seed']}"
    if summary.get("policy"):
        header += f", steered by {summary['policy']}"
    console.print(Text(header, style="bold"))
    for table in summary_tables(summary):
        console.print(table)


def _two_column_table(*, title: str, rows: list[tuple[str, str]]) -> Table:
    """A titled label / right-aligned value table."""
    table = Table(title=title, title_justify="left")
    table.add_column("Figure")
    table.add_column("Value", justify="right")
    for label, value in rows:
        table.add_row(Text(label), Text(value))
    return table


def _platform_table(summary: Mapping[str, Any]) -> Table:
    """Traffic, GMV, ad revenue and take rate."""
    return _two_column_table(title="Platform", rows=platform_rows(summary))


def _campaigns_table(summary: Mapping[str, Any]) -> Table:
    """Campaign counts by mode, ROI attainment and budget use."""
    totals = summary.get("campaign_totals") or {}
    return _two_column_table(
        title="Campaigns",
        rows=[
            ("Campaigns", format_count(totals.get("count"))),
            ("Full-site", format_count(totals.get("full_site"))),
            ("Manual CPC", format_count(totals.get("manual_cpc"))),
            ("Full-site meeting ROI target", format_share(totals.get("roi_met_share"))),
            (
                "Full-site meeting it in expectation",
                format_share(totals.get("roi_met_share_expected")),
            ),
            ("Median budget use", format_share(totals.get("budget_use_median"))),
            ("Budget exhausted", format_count(totals.get("budget_exhausted"))),
        ],
    )


def _prediction_table(summary: Mapping[str, Any]) -> Table:
    """Overall AUC, AUC of the ground truth and calibration of each predictor."""
    prediction = summary.get("prediction") or {}
    table = Table(title="Prediction", title_justify="left")
    table.add_column("Model")
    for column in ("AUC", "AUC truth", "Calibration"):
        table.add_column(column, justify="right")
    for key, name in PREDICTION_MODELS:
        quality = prediction.get(key) or {}
        metrics = (quality.get(metric) for metric in ("auc", "auc_truth", "calibration"))
        table.add_row(name, *(format_metric(value) for value in metrics))
    return table
