"""Walk every hand-worked auction case in ``tests/golden/auction``.

Each file holds ``description``, ``input`` (the keyword arguments of ``run_auction``, with an
optional ``max_slots``) and either ``expected`` (``winner`` and ``price``, optionally ``ecpm``,
``landscape_col`` and ``landscape_ecpm``) or ``expected_error`` (a substring of the
``ValueError`` message). Expected values are exact binary fractions, compared exactly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from quanzhan.engine.auction import AuctionResult, run_auction

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "auction"
CASES = sorted(GOLDEN.glob("*.json"))
DTYPES: dict[str, type[np.generic]] = {
    "bid": np.float64,
    "pctr": np.float64,
    "item": np.int64,
    "valid": np.bool_,
    "n_slots": np.int64,
    "reserve": np.float64,
    "relevance_floor": np.float64,
}
OPTIONAL = ("ecpm", "landscape_col", "landscape_ecpm")


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(case.get("description"), str) and case["description"]
    assert ("expected" in case) != ("expected_error" in case)
    return case


def _arguments(raw: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {name: np.asarray(raw[name], dtype=t) for name, t in DTYPES.items()}
    kwargs["max_slots"] = raw.get("max_slots")
    return kwargs


def _check(result: AuctionResult, expected: dict[str, Any]) -> None:
    np.testing.assert_array_equal(result.winner, np.asarray(expected["winner"]))
    assert result.winner.shape == np.shape(expected["winner"])
    assert result.price.shape == np.shape(expected["price"])
    np.testing.assert_array_equal(result.price, np.asarray(expected["price"]))
    for name in OPTIONAL:
        if name in expected:
            got = getattr(result, name)
            assert got.shape == np.shape(expected[name]), name
            np.testing.assert_array_equal(got, np.asarray(expected[name]), err_msg=name)


def test_golden_folder_is_populated() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case(path: Path) -> None:
    case = _load(path)
    kwargs = _arguments(case["input"])
    if "expected_error" in case:
        with pytest.raises(ValueError, match=re.escape(case["expected_error"])):
            run_auction(**kwargs)
        return
    _check(run_auction(**kwargs), case["expected"])
