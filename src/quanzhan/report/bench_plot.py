"""The bidding benchmark's picture: each policy's efficiency against its ROI attainment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from quanzhan.errors import OutputError


def write_bench_plot(
    *, summary: Mapping[str, Any], efficiencies: Mapping[str, np.ndarray], path: Path
) -> None:
    """Left: median efficiency (bars: 10th percentile to median) against the share of campaigns
    meeting their ROI target, one point per policy. Right: each policy's per-campaign
    efficiencies. Written atomically as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    names = list(summary["policies"])
    for name in names:
        figures = summary["policies"][name]
        median, p10, met = (
            figures["efficiency_median"],
            figures["efficiency_p10"],
            figures["roi_met_share"],
        )
        if median is None or met is None:
            continue
        marker = "*" if name == summary.get("default_policy") else "o"
        left.errorbar(
            [met],
            [median],
            yerr=[[median - p10], [0.0]],
            fmt=marker,
            markersize=11,
            capsize=4,
            label=name,
        )
    left.set_xlabel("share of campaigns meeting their ROI target (expected)")
    left.set_ylabel("median efficiency (GMV / hindsight optimum)")
    left.set_title(f"{summary['scenario']} (seed {summary['seed']})")
    left.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    left.legend(fontsize="small", loc="best")
    data = [np.clip(np.asarray(efficiencies.get(n, [])), 0, 1.5) for n in names]
    right.boxplot(data, tick_labels=names, showfliers=False)
    right.set_ylabel("per-campaign efficiency")
    right.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    right.tick_params(axis="x", labelrotation=20)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        figure.savefig(temporary, format="png", dpi=110)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from error
