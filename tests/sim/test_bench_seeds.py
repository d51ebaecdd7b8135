"""The benchmark over several seeds: the seeds a person asks for, and how their figures sum up."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quanzhan.errors import ConfigError
from quanzhan.sim.bench_seeds import MAX_SEEDS, across_seeds, parse_seeds


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("1-4", (1, 2, 3, 4)),
        ("1,3,7", (1, 3, 7)),
        ("1 - 3, 9", (1, 2, 3, 9)),
        ("2,1-3", (2, 1, 3)),
        ("7", (7,)),
    ],
)
def test_seeds_are_read_as_ranges_and_lists_each_once(text: str, seeds: tuple[int, ...]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    "text", ["", ",", "a", "1-", "4-1", "-2", "1.5", "1-2-3", "+3", "1_000", "\u0663", "0-1000"]
)
def test_seeds_that_do_not_read_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_seeds(text)


def test_a_range_too_long_to_run_is_refused_before_it_is_spelled_out() -> None:
    assert len(parse_seeds(f"0-{MAX_SEEDS - 1}")) == MAX_SEEDS
    with pytest.raises(ConfigError, match="at most"):
        parse_seeds("1-100000000000000")
    with pytest.raises(ConfigError, match="at most"):
        parse_seeds(f"0-{MAX_SEEDS - 1},{MAX_SEEDS}")


def _run(seed: int, **by_policy: dict[str, Any]) -> dict[str, Any]:
    return {
        "scenario": "steady",
        "seed": seed,
        "days": 3,
        "warmup_days": 1,
        "default_policy": "landscape",
        "predictions": "learned",
        "policies": {
            name: {"by_day": [{"efficiency_median": 0.1}], **figures}
            for name, figures in by_policy.items()
        },
    }


def test_figures_are_medians_over_seeds_with_their_range_and_the_worst_overspend() -> None:
    runs = {
        seed: _run(
            seed,
            landscape={"efficiency_median": eff, "overspend_campaigns": over, "gmv": gmv},
            online_lp={"efficiency_median": other, "overspend_campaigns": 0, "gmv": 1.0},
        )
        for seed, eff, over, gmv, other in [
            (1, 0.70, 0, 100.0, 0.72),
            (2, 0.80, 2, 300.0, 0.60),
            (3, 0.75, 0, 200.0, 0.65),
        ]
    }
    summed = across_seeds(runs)
    assert summed["seeds"] == [1, 2, 3] and summed["scenario"] == "steady"
    landscape = summed["policies"]["landscape"]
    assert landscape["efficiency_median"] == 0.75 and landscape["gmv"] == 200.0
    assert landscape["overspend_campaigns"] == 2  # one seed with a campaign past its budget
    assert "by_day" not in landscape  # each seed keeps its own days
    assert summed["spread"]["landscape"]["efficiency_median"] == [0.70, 0.80]
    assert summed["default_highest"] == {"1": False, "2": True, "3": True}
    assert summed["by_seed"]["2"] is runs[2]


def test_a_figure_no_seed_scored_stays_unscored_and_others_count_without_it() -> None:
    runs = {
        1: _run(1, landscape={"efficiency_median": None, "roi_met_share": 0.5}),
        2: _run(2, landscape={"efficiency_median": 0.4, "roi_met_share": 0.7}),
        3: _run(3, landscape={"efficiency_median": None, "roi_met_share": 0.9}),
    }
    summed = across_seeds(runs)
    assert summed["policies"]["landscape"]["efficiency_median"] == 0.4
    assert summed["spread"]["landscape"]["efficiency_median"] == [0.4, 0.4]
    runs[2]["policies"]["landscape"]["efficiency_median"] = None
    summed = across_seeds(runs)
    assert summed["policies"]["landscape"]["efficiency_median"] is None
    assert summed["spread"]["landscape"]["efficiency_median"] is None
    assert summed["default_highest"] == {"1": None, "2": None, "3": None}


def test_whether_the_default_led_is_not_known_where_it_did_not_run() -> None:
    runs = {
        1: _run(1, dual={"efficiency_median": 0.5}, online_lp={"efficiency_median": 0.6}),
        2: _run(2, dual={"efficiency_median": 0.7}, online_lp={"efficiency_median": 0.6}),
    }
    assert across_seeds(runs)["default_highest"] == {"1": None, "2": None}
    tied = {1: _run(1, landscape={"efficiency_median": 0.6}, dual={"efficiency_median": 0.6})}
    assert across_seeds(tied)["default_highest"] == {"1": False}  # a tie is no lead


def test_runs_of_other_scenarios_or_policies_are_not_summed_together() -> None:
    one = _run(1, landscape={"efficiency_median": 0.5})
    with pytest.raises(ValueError, match="seed 2"):
        across_seeds({1: one, 2: _run(2, dual={"efficiency_median": 0.5})})
    other = {**_run(2, landscape={"efficiency_median": 0.5}), "scenario": "surge"}
    with pytest.raises(ValueError, match="seed 2"):
        across_seeds({1: one, 2: other})
    nudged = {**_run(2, landscape={"efficiency_median": 0.5}), "pctr_perturbation": 1e-9}
    with pytest.raises(ValueError, match="seed 2"):
        across_seeds({1: one, 2: nudged})
    oracle = {**_run(2, landscape={"efficiency_median": 0.5}), "predictions": "oracle"}
    with pytest.raises(ValueError, match="seed 2"):
        across_seeds({1: one, 2: oracle})
    with pytest.raises(ValueError, match="no runs"):
        across_seeds({})


def test_a_perturbation_is_carried_into_the_sum() -> None:
    runs = {
        s: {**_run(s, landscape={"efficiency_median": 0.5}), "pctr_perturbation": 1e-9}
        for s in (1, 2)
    }
    assert across_seeds(runs)["pctr_perturbation"] == 1e-9
    assert across_seeds({1: _run(1, landscape={})})["pctr_perturbation"] == 0.0


@given(st.lists(st.floats(0.0, 2.0, allow_nan=False), min_size=1, max_size=9))
def test_the_median_over_seeds_lies_within_their_range(values: list[float]) -> None:
    runs = {i: _run(i, landscape={"efficiency_median": v}) for i, v in enumerate(values)}
    summed = across_seeds(runs)
    low, high = summed["spread"]["landscape"]["efficiency_median"]
    assert low == min(values) and high == max(values)
    assert low - 1e-5 <= summed["policies"]["landscape"]["efficiency_median"] <= high + 1e-5
