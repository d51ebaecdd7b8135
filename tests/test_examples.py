"""The examples in ``examples/`` run as documented."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_own_policy_example_runs_beside_the_shipped_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    namespace = runpy.run_path(str(EXAMPLES / "own_policy.py"))
    results = namespace["main"]()
    assert set(results) == {"fixed_margin", "landscape"}
    assert all(gmv > 0 for gmv in results.values())
    assert "fixed_margin" in capsys.readouterr().out
