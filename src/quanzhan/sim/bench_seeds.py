"""The bidding benchmark over several seeds: one market per seed, figures summed up across them.

The benchmark market is chaotic: a change that moves one campaign's bid moves its
competitors' prices, the models' training rows and the value prior every campaign plans with,
so two versions of a policy, or two policies, can trade places from one seed to the next. A
comparison worth making holds over several seeds; this module puts their single-seed
summaries (``sim.bench.bench_bidding``) side by side:

- ``policies``: per policy, each of the single-seed summary's figures (not ``by_day`` or
  ``by_binding``), as its median over the seeds (``overspend_campaigns``: the most in any
  seed, since one campaign past its budget anywhere is one too many; ``campaigns``: the
  median count);
- ``spread``: per policy and figure, ``[least, most]`` over the seeds;
- ``default_highest``: per seed, whether the default policy had the highest median efficiency
  of the policies run (``None`` where it did not run, ran alone or scored no median);
- ``by_seed``: each seed's own summary, as ``bench bidding --seed N`` writes it.

It has ``seeds`` where a single-seed summary has ``seed``, even for one seed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from quanzhan.errors import ConfigError

# Figures whose worst seed is what matters, not the typical one.
_WORST_OF = {"overspend_campaigns": max}
# A benchmark seed takes minutes: more than this many is a typing slip.
MAX_SEEDS = 1000
_PART = re.compile(r"(\d+)(?:\s*-\s*(\d+))?", re.ASCII)


def parse_seeds(text: str) -> tuple[int, ...]:
    """Seeds from ``"1-4"``, ``"1,3,7"`` or a mix (``"1-3,9"``): each once, in the order given;
    ``ConfigError`` on anything else (a negative seed among it), a range that runs downwards,
    none at all, or more than ``MAX_SEEDS``."""
    seeds: dict[int, None] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        match = _PART.fullmatch(part)
        if match is None:
            raise ConfigError(f"seeds must be like 1-4 or 1,3,7, not {text!r}")
        low = int(match[1])
        high = low if match[2] is None else int(match[2])
        if high < low:
            raise ConfigError(f"seed range {part!r} must run upwards")
        if high - low + 1 + len(seeds) > MAX_SEEDS:
            raise ConfigError(f"at most {MAX_SEEDS} seeds at once, not {text!r}")
        seeds.update(dict.fromkeys(range(low, high + 1)))
    if not seeds:
        raise ConfigError(f"no seeds in {text!r}")
    return tuple(seeds)


def across_seeds(runs: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """One summary of several single-seed summaries of the same scenario and policies."""
    if not runs:
        raise ValueError("no runs to sum up")
    seeds = list(runs)
    first = runs[seeds[0]]
    policies = list(first["policies"])
    for seed, run in runs.items():
        if (
            run["scenario"] != first["scenario"]
            or list(run["policies"]) != policies
            or run.get("predictions") != first.get("predictions")
            or run.get("pctr_perturbation", 0.0) != first.get("pctr_perturbation", 0.0)
        ):
            raise ValueError(
                f"seed {seed} ran another scenario, other policies or other predictions"
            )
    summed: dict[str, dict[str, Any]] = {}
    spread: dict[str, dict[str, list[float] | None]] = {}
    for policy in policies:
        per_seed = [runs[s]["policies"][policy] for s in seeds]
        summed[policy], spread[policy] = {}, {}
        for figure, value in per_seed[0].items():
            if not (value is None or isinstance(value, int | float)):
                continue  # by_day, by_binding: each seed's own
            values = [f[figure] for f in per_seed if f.get(figure) is not None]
            summed[policy][figure] = _typical(figure, values)
            spread[policy][figure] = [min(values), max(values)] if values else None
    return {
        "scenario": first["scenario"],
        "seeds": seeds,
        "days": first.get("days"),
        "warmup_days": first.get("warmup_days"),
        "default_policy": first["default_policy"],
        "predictions": first.get("predictions"),
        "pctr_perturbation": first.get("pctr_perturbation", 0.0),
        "policies": summed,
        "spread": spread,
        "default_highest": {str(s): _default_highest(runs[s]) for s in seeds},
        "by_seed": {str(s): runs[s] for s in seeds},
    }


def _typical(figure: str, values: Sequence[float]) -> float | None:
    if not values:
        return None
    if figure in _WORST_OF:
        return _WORST_OF[figure](values)
    return round(float(np.median(values)), 5)


def _default_highest(run: Mapping[str, Any]) -> bool | None:
    """Whether the default policy's median efficiency beat every other policy run (``None``
    where the default was not run, ran alone, or no median was scored)."""
    default = run["default_policy"]
    figures = {p: f.get("efficiency_median") for p, f in run["policies"].items()}
    if default not in figures or figures[default] is None:
        return None
    others = [v for p, v in figures.items() if p != default and v is not None]
    return all(figures[default] > v for v in others) if others else None
