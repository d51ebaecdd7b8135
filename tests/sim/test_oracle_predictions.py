"""The oracle-predictions run: the engine bids on the hidden truth, for evaluation only."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from quanzhan.sim.config import load_scenario
from quanzhan.sim.evaluation import PredictionRecord
from quanzhan.sim.run import Simulation, SimulationResult


@pytest.fixture(scope="module")
def oracle_run() -> SimulationResult:
    return Simulation(load_scenario("tiny"), seed=3, recall=False, oracle_predictions=True).run()


def _rows(record: PredictionRecord) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Predicted and true probabilities of every recorded row."""
    rows = record.rows()
    return rows["predicted"], rows["truth"]


def test_served_predictions_are_the_truth(oracle_run: SimulationResult) -> None:
    """pCVR per click is the true purchase odds; pCTR is the true top-slot odds times the
    engine's learned slot factor, so it ranks impressions as the truth does, nearly."""
    predicted, truth = _rows(oracle_run.purchase_prediction)
    assert len(predicted) > 100
    np.testing.assert_allclose(predicted, truth, rtol=1e-9)
    report = oracle_run.click_prediction.report()
    assert report["auc"] == pytest.approx(report["auc_truth"], abs=0.02)


def test_the_oracle_is_not_the_default() -> None:
    learned = Simulation(load_scenario("tiny"), seed=3, recall=False)
    assert learned.engine.prediction_override is None
    result = learned.run()
    predicted, truth = _rows(result.purchase_prediction)
    assert not np.allclose(predicted, truth, rtol=1e-3)
