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
    meeting their ROI target, one point per policy; over several seeds (``sim.bench_seeds``)
    the point is the median over them, and each seed's own a small dot of the same colour.
    Right: each policy's per-campaign efficiencies (of every seed). Written atomically as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    names = list(summary["policies"])
    by_seed: Mapping[str, Any] = summary.get("by_seed", {})
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
        drawn = left.errorbar(
            [met],
            [median],
            yerr=[[median - p10], [0.0]],
            fmt=marker,
            markersize=11,
            capsize=4,
            label=name,
        )
        each = [run["policies"][name] for run in by_seed.values()]
        points = [
            (f["roi_met_share"], f["efficiency_median"])
            for f in each
            if f["roi_met_share"] is not None and f["efficiency_median"] is not None
        ]
        if points:
            x, y = zip(*points, strict=True)
            left.plot(x, y, ".", color=drawn.lines[0].get_color(), alpha=0.6)
    left.set_xlabel("share of campaigns meeting their ROI target (expected)")
    left.set_ylabel("median efficiency (GMV / hindsight optimum)")
    seeds = ", ".join(by_seed) if by_seed else str(summary["seed"])
    left.set_title(f"{summary['scenario']} (seed{'s' if len(by_seed) > 1 else ''} {seeds})")
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
