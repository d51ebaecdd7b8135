"""Render a simulation summary as one self-contained HTML page.

The page holds a headline table, a prediction-quality table and five PNG figures embedded as
base64 data URIs, so it needs no external assets and no JavaScript. Figures are drawn with
matplotlib's Agg canvas on private ``Figure`` objects; pyplot and its global state are never
touched, and matplotlib is imported only when a report is rendered.

The number formatters below are shared with the terminal tables (``quanzhan.report.table``);
every one of them turns a null or non-finite value into an en dash.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import math
import numbers
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quanzhan.domain import CampaignMode
from quanzhan.errors import OutputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "MISSING",
    "format_count",
    "format_metric",
    "format_money",
    "format_share",
    "render_report",
    "write_report",
]

MISSING = "–"
"""What a null, undefined or non-finite number is shown as."""

PREDICTION_MODELS: tuple[tuple[str, str], ...] = (("pctr", "pCTR"), ("pcvr", "pCVR"))
"""``(key in summary["prediction"], display name)`` for each predictor the reports show."""

_HISTOGRAM_CAP = 4.0
_AD_COLOUR = "#4c72b0"
_ORGANIC_COLOUR = "#a1c9f4"
_SPEND_COLOUR = "#dd8452"
_TARGET_COLOUR = "#c44e52"
_DPI = 100

_CSS = """
body { margin: 0; background: #f6f7f9; color: #1f2933;
       font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 32px 0 12px; border-bottom: 1px solid #d9dee5; padding-bottom: 4px; }
p.subtitle { color: #52606d; margin: 0 0 8px; }
table { border-collapse: collapse; background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
th, td { padding: 6px 14px; border-bottom: 1px solid #e4e7eb; text-align: left; }
th { background: #eef1f5; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 20px; }
figure { margin: 0; background: #fff; padding: 10px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
figure img { display: block; width: 100%; height: auto; }
figcaption { color: #52606d; font-size: .9em; margin-top: 6px; }
"""


# --- number formatting -------------------------------------------------------------------------


def _finite(value: object) -> float | None:
    """``value`` as a float, or None when it is null, not a real number, or not finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def format_count(value: object) -> str:
    """A count with thousands separators: ``12345`` → ``"12,345"``."""
    number = _finite(value)
    return MISSING if number is None else f"{round(number):,}"


def format_money(value: object) -> str:
    """An amount with thousands separators and two decimals: ``1234.5`` → ``"1,234.50"``."""
    number = _finite(value)
    return MISSING if number is None else f"{number:,.2f}"


def format_share(value: object) -> str:
    """A fraction as a percentage with two decimals: ``0.0512`` → ``"5.12%"``."""
    number = _finite(value)
    return MISSING if number is None else f"{number * 100:.2f}%"


def format_metric(value: object, *, digits: int = 3) -> str:
    """A model-quality metric (AUC, calibration, logloss) with ``digits`` decimals."""
    number = _finite(value)
    return MISSING if number is None else f"{number:.{digits}f}"


# --- public entry points -----------------------------------------------------------------------


def write_report(*, summary: Mapping[str, Any], path: Path) -> None:
    """Write ``summary`` (the ``quanzhan simulate`` summary dict) as an HTML page at ``path``.

    The whole page is rendered before anything touches the disk, then written to a temporary
    file in the same directory and moved over ``path`` with ``os.replace``: readers see either
    the old file or the complete new one, never a partial page. The parent directory must exist.

    Raises:
        OutputError: ``path`` cannot be written (the temporary file is removed).
    """
    _write_atomically(text=render_report(summary=summary), path=Path(path))


def render_report(*, summary: Mapping[str, Any]) -> str:
    """The complete HTML document for ``summary``; every piece of text in it is escaped."""
    title = f"Quanzhan simulation — {summary['scenario']} (seed {summary['seed']})"
    days = summary.get("days", 1)
    subtitle = f"Scenario {summary['scenario']}, seed {summary['seed']}, {days} simulated day(s)"
    if summary.get("policy"):
        subtitle += f", steered by {summary['policy']}"
    body = "\n".join(
        (
            _section(heading="Headline", content=_headline_table(summary)),
            _section(heading="Prediction quality", content=_prediction_table(summary)),
            _section(heading="Figures", content=_figures_block(summary)),
        )
    )
    return _page(title=title, subtitle=subtitle, body=body)


# --- HTML --------------------------------------------------------------------------------------


def _page(*, title: str, subtitle: str, body: str) -> str:
    """The HTML document skeleton around ``body`` (already HTML); title texts are escaped."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f'<p class="subtitle">{html.escape(subtitle)}</p>\n'
        f"{body}\n</main>\n</body>\n</html>\n"
    )


def _section(*, heading: str, content: str) -> str:
    """A titled ``<section>`` around ``content`` (already HTML)."""
    return f"<section>\n<h2>{html.escape(heading)}</h2>\n{content}\n</section>"


def _table(*, header: Sequence[str], rows: Iterable[Sequence[str]], text_columns: int = 1) -> str:
    """An HTML table; the first ``text_columns`` columns are text, the rest right-aligned."""
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    lines = [f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>"]
    for row in rows:
        cells = "".join(
            f'<td class="num">{html.escape(cell)}</td>'
            if index >= text_columns
            else f"<td>{html.escape(cell)}</td>"
            for index, cell in enumerate(row)
        )
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</tbody>\n</table>")
    return "\n".join(lines)


def platform_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(label, formatted value)`` of the platform's figures: traffic, GMV, ad revenue."""
    return [
        ("Requests", format_count(summary["requests"])),
        ("Impressions", format_count(summary["impressions"])),
        ("Clicks", format_count(summary["clicks"])),
        ("Orders", format_count(summary["orders"])),
        ("GMV total", format_money(summary["gmv_total"])),
        ("GMV from ads", format_money(summary["gmv_ad"])),
        ("GMV organic", format_money(summary["gmv_organic"])),
        ("Ad revenue (CMR)", format_money(summary["cmr"])),
        ("Take rate (CMR / GMV)", format_share(summary["take_rate"])),
    ]


def _headline_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(label, formatted value)`` for each headline figure."""
    totals = summary.get("campaign_totals") or {}
    wall = _finite(summary.get("wall_seconds"))
    return [
        *platform_rows(summary),
        ("Full-site campaigns meeting ROI target", format_share(totals.get("roi_met_share"))),
        (
            "Full-site campaigns meeting it in expectation",
            format_share(totals.get("roi_met_share_expected")),
        ),
        ("Median budget use", format_share(totals.get("budget_use_median"))),
        ("Wall time", MISSING if wall is None else f"{wall:,.2f} s"),
    ]


def _headline_table(summary: Mapping[str, Any]) -> str:
    """The headline table as HTML."""
    return _table(header=("Figure", "Value"), rows=_headline_rows(summary))


def _quality_cells(quality: Mapping[str, Any]) -> list[str]:
    """Rows, AUC, AUC of the ground truth, calibration and logloss of one quality record."""
    return [
        format_count(quality.get("rows")),
        format_metric(quality.get("auc")),
        format_metric(quality.get("auc_truth")),
        format_metric(quality.get("calibration")),
        format_metric(quality.get("logloss"), digits=4),
    ]


def _prediction_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """One row per model overall, then one per model and surface."""
    prediction = summary.get("prediction") or {}
    rows: list[list[str]] = []
    for key, name in PREDICTION_MODELS:
        quality = prediction.get(key) or {}
        rows.append([name, "all surfaces", *_quality_cells(quality)])
        for surface, by_surface in (quality.get("by_surface") or {}).items():
            rows.append([name, str(surface), *_quality_cells(by_surface or {})])
    return rows


def _prediction_table(summary: Mapping[str, Any]) -> str:
    """The prediction-quality table as HTML."""
    header = ("Model", "Surface", "Rows", "AUC", "AUC (truth)", "Calibration", "Logloss")
    return _table(header=header, rows=_prediction_rows(summary), text_columns=2)


def _figure_html(*, caption: str, png_base64: str) -> str:
    """One embedded PNG with its caption."""
    alt = html.escape(caption)
    return (
        f'<figure><img src="data:image/png;base64,{png_base64}" alt="{alt}">'
        f"<figcaption>{alt}</figcaption></figure>"
    )


def _figures_block(summary: Mapping[str, Any]) -> str:
    """The five figures as HTML, each rendered to a base64 PNG."""
    campaigns: Sequence[Mapping[str, Any]] = summary.get("campaigns") or []
    figures = (
        ("Spend and GMV by hour", _plot_hourly(summary.get("by_hour") or {})),
        ("Spend and ad GMV by surface", _plot_surfaces(summary.get("by_surface") or {})),
        ("Realized ROI / target ROI, full-site campaigns that spent", _plot_roi(campaigns)),
        ("Budget use (spend / budget), all campaigns", _plot_budget_use(campaigns)),
        (
            "Calibration over the run by surface (predicted / true odds on the rows served)",
            _plot_calibration(summary.get("prediction") or {}),
        ),
    )
    items = [_figure_html(caption=caption, png_base64=_png_base64(fig)) for caption, fig in figures]
    return '<div class="figures">\n' + "\n".join(items) + "\n</div>"


# --- figures -----------------------------------------------------------------------------------


def _new_figure(*, height: float = 3.6) -> Figure:
    """A fresh figure attached to an Agg canvas; pyplot's global state is never used."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png_base64(figure: Figure) -> str:
    """``figure`` as a base64-encoded PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plain(text: str) -> str:
    """``text`` safe for a matplotlib label: dollar signs would otherwise start mathtext."""
    return text.replace("$", r"\$")


def _series(values: Iterable[Any] | None) -> list[float]:
    """Plot-ready floats; null or non-finite entries count as zero."""
    return [_finite(value) or 0.0 for value in values or ()]


def _note(axes: Axes, message: str) -> None:
    """Write ``message`` in the middle of otherwise empty axes, which get no y ticks."""
    axes.text(
        0.5,
        0.5,
        message,
        ha="center",
        va="center",
        transform=axes.transAxes,
        color="0.4",
        bbox={"facecolor": "white", "edgecolor": "none"},
        zorder=3,
    )
    axes.set_yticks([])


def _blank(*, axes: Sequence[Axes], message: str) -> None:
    """Hide every frame in ``axes`` and write ``message`` in the first one."""
    for each in axes:
        each.set_axis_off()
    _note(axes[0], message)


def _plot_hourly(by_hour: Mapping[str, Any]) -> Figure:
    """Stacked ad and organic GMV per hour above the ad spend per hour."""
    figure = _new_figure(height=4.4)
    gmv_axes, spend_axes = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    hours = _series(by_hour.get("hour"))
    gmv_ad, gmv_organic = _series(by_hour.get("gmv_ad")), _series(by_hour.get("gmv_organic"))
    spend = _series(by_hour.get("spend"))
    if not hours or not len(hours) == len(gmv_ad) == len(gmv_organic) == len(spend):
        _blank(axes=(gmv_axes, spend_axes), message="no hourly data")
        return figure
    colours = (_AD_COLOUR, _ORGANIC_COLOUR)
    labels = ("ad GMV", "organic GMV")
    gmv_axes.stackplot(hours, gmv_ad, gmv_organic, labels=labels, colors=colours)
    gmv_axes.set_ylabel("GMV")
    gmv_axes.legend(loc="upper left", fontsize="small")
    spend_axes.bar(hours, spend, width=0.85, color=_SPEND_COLOUR)
    spend_axes.set_ylabel("ad spend")
    spend_axes.set_xlabel("hour")
    return figure


def _plot_calibration(prediction: Mapping[str, Any]) -> Figure:
    """One panel per predictor: each surface's calibration period by period, against the
    band of 5% either side of one."""
    figure = _new_figure(height=4.4)
    panels = figure.subplots(len(PREDICTION_MODELS), 1, sharex=True)
    drawn = False
    for axes, (key, name) in zip(panels, PREDICTION_MODELS, strict=True):
        over = (prediction.get(key) or {}).get("calibration_over_time") or {}
        hours = _finite(over.get("hours"))
        by_surface: Mapping[str, Any] = over.get("by_surface") or {}
        if hours is None or not any(by_surface.values()):
            _note(axes, f"no {name} rows")
            continue
        axes.axhspan(0.95, 1.05, color="0.9", zorder=0)
        axes.axhline(1.0, color="0.5", linewidth=0.8, zorder=1)
        for surface, values in by_surface.items():
            points = [(i * hours, v) for i, v in enumerate(values) if _finite(v) is not None]
            if points:
                axes.plot(*zip(*points, strict=True), marker="o", markersize=3,
                          label=_plain(str(surface)))  # fmt: skip
        axes.set_ylabel(f"{name} pred / true")
        drawn = True
    if drawn:
        panels[0].legend(fontsize="x-small", ncol=3)
        panels[-1].set_xlabel("hours into the run (period start)")
    return figure


def _plot_surfaces(by_surface: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Grouped bars: ad spend and ad GMV for each surface."""
    figure = _new_figure()
    axes = figure.subplots()
    names = [str(name) for name in by_surface]
    if not names:
        _blank(axes=(axes,), message="no surface data")
        return figure
    positions = list(range(len(names)))
    spend = _series(row.get("spend") for row in by_surface.values())
    gmv_ad = _series(row.get("gmv_ad") for row in by_surface.values())
    axes.bar([p - 0.2 for p in positions], spend, width=0.4, label="ad spend", color=_SPEND_COLOUR)
    axes.bar([p + 0.2 for p in positions], gmv_ad, width=0.4, label="ad GMV", color=_AD_COLOUR)
    axes.set_xticks(positions, labels=[_plain(name) for name in names], rotation=20, ha="right")
    axes.legend(fontsize="small")
    return figure


def _roi_ratios(campaigns: Iterable[Mapping[str, Any]]) -> list[float]:
    """Realized ROI over target ROI of full-site campaigns that spent and have a positive target."""
    ratios: list[float] = []
    for campaign in campaigns:
        roi, target = _finite(campaign.get("roi")), _finite(campaign.get("target_roi"))
        spend = _finite(campaign.get("spend")) or 0.0
        is_full_site = campaign.get("mode") == CampaignMode.FULL_SITE.label
        if is_full_site and spend > 0 and roi is not None and target is not None and target > 0:
            ratios.append(roi / target)
    return ratios


def _budget_uses(campaigns: Iterable[Mapping[str, Any]]) -> list[float]:
    """Spend over budget of every campaign with a positive budget."""
    uses: list[float] = []
    for campaign in campaigns:
        budget, spend = _finite(campaign.get("budget")), _finite(campaign.get("spend")) or 0.0
        if budget is not None and budget > 0:
            uses.append(spend / budget)
    return uses


def _histogram(*, values: Sequence[float], xlabel: str, line_label: str, empty: str) -> Figure:
    """A histogram of ``values`` with a dashed reference line at 1.0."""
    figure = _new_figure()
    axes = figure.subplots()
    if values:
        from matplotlib.ticker import MaxNLocator

        # A few campaigns far out would squash the rest: the last bin gathers everything past it.
        shown = [min(v, _HISTOGRAM_CAP) for v in values]
        bins = min(30, max(5, len(values) // 2))
        axes.hist(shown, bins=bins, range=(0.0, _HISTOGRAM_CAP), color=_AD_COLOUR, alpha=0.85)
        if max(values) > _HISTOGRAM_CAP:
            axes.set_xlabel(f"{xlabel} (values past {_HISTOGRAM_CAP:g} in the last bin)")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("campaigns")
    else:
        axes.set_xlim(0.0, 2.0)
        _note(axes, empty)
    axes.axvline(1.0, color=_TARGET_COLOUR, linestyle="--", linewidth=1.5)
    axes.annotate(
        line_label,
        xy=(1.0, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(4, -4),
        textcoords="offset points",
        va="top",
        fontsize="small",
        color=_TARGET_COLOUR,
    )
    axes.margins(y=0.12)
    if not axes.get_xlabel():
        axes.set_xlabel(xlabel)
    return figure


def _plot_roi(campaigns: Sequence[Mapping[str, Any]]) -> Figure:
    """Histogram of realized ROI / target ROI for full-site campaigns that spent."""
    return _histogram(
        values=_roi_ratios(campaigns),
        xlabel="realized ROI / target ROI",
        line_label="target met (1.0)",
        empty="no full-site campaign spent",
    )


def _plot_budget_use(campaigns: Sequence[Mapping[str, Any]]) -> Figure:
    """Histogram of spend / budget over all campaigns."""
    return _histogram(
        values=_budget_uses(campaigns),
        xlabel="spend / budget",
        line_label="budget (1.0)",
        empty="no campaign with a budget",
    )


# --- writing -----------------------------------------------------------------------------------


def _write_atomically(*, text: str, path: Path) -> None:
    """Write ``text`` to a temporary sibling of ``path``, then move it over ``path``."""
    if not path.name:
        raise OutputError(f"cannot write {path}: not a file path")
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        _write_new_file(data=text.encode("utf-8"), path=temporary)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from error


def _write_new_file(*, data: bytes, path: Path) -> None:
    """Create ``path`` (which must not exist; mode 0o666 less the umask) holding ``data``."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
