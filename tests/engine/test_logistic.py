"""``LogisticModel``: per-surface biases, shared weights plus deviations, position offsets.

Synthetic data are drawn from the model itself with known parameters, so the fit has a truth to
come back to.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy.optimize import minimize

from quanzhan.domain import N_SURFACES
from quanzhan.engine.logistic import LogisticModel

BIAS = np.array([-1.2, -0.8, -1.5, -0.5, -1.0, -0.9])
WEIGHT = np.array([0.8, -0.5])
POSITION = np.array(
    [
        [0.0, -0.3, -0.6],
        [0.0, -0.2, -0.5],
        [0.0, -0.4, -0.9],
        [0.0, -0.1, -0.3],
        [0.0, -0.5, -0.7],
        [0.0, -0.25, -0.4],
    ]
)
N_POSITIONS = POSITION.shape[1]


@dataclass(frozen=True)
class Data:
    surface: NDArray[np.int8]
    x: NDArray[np.float32]
    slot: NDArray[np.int64]
    label: NDArray[np.bool_]


def _draw(m: int, seed: int, surfaces: int = N_SURFACES) -> Data:
    rng = np.random.default_rng(seed)
    surface = rng.integers(0, surfaces, m).astype(np.int8)
    slot = rng.integers(0, N_POSITIONS, m).astype(np.int64)
    x = rng.normal(size=(m, len(WEIGHT))).astype(np.float32)
    z = BIAS[surface] + x.astype(np.float64) @ WEIGHT + POSITION[surface, slot]
    label = rng.random(m) < 1.0 / (1.0 + np.exp(-z))
    return Data(surface, x, slot, label)


def _fit(
    data: Data,
    *,
    l2: float,
    weight: NDArray[np.float64] | None = None,
    position: bool = True,
    deviation_l2: float | None = None,
) -> LogisticModel:
    model = LogisticModel.prior(rate=0.1, n_features=len(WEIGHT), n_positions=N_POSITIONS)
    model.fit(
        surface=data.surface,
        x=data.x,
        slot=data.slot,
        label=data.label,
        weight=np.ones(len(data.label)) if weight is None else weight,
        l2=l2,
        fit_position=position,
        deviation_l2=deviation_l2,
    )
    return model


@pytest.fixture(scope="module")
def data() -> Data:
    return _draw(60_000, seed=11)


@pytest.fixture(scope="module")
def fitted(data: Data) -> LogisticModel:
    return _fit(data, l2=1.0)


@dataclass(frozen=True)
class Reference:
    """Unpenalised maximum likelihood fitted surface by surface with scipy, and standard errors.

    Columns: bias, the weights, the offsets of positions 1 and 2.
    """

    estimate: NDArray[np.float64]  # (surfaces, 1 + f + 2)
    stderr: NDArray[np.float64]


def _maximum_likelihood(
    design: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Plain logistic regression by BFGS; the estimate and its standard errors."""

    def nll(theta: NDArray[np.float64]) -> float:
        z = design @ theta
        return float(np.sum(np.logaddexp(0.0, z) - y * z))

    def grad(theta: NDArray[np.float64]) -> NDArray[np.float64]:
        p = 1.0 / (1.0 + np.exp(-(design @ theta)))
        out: NDArray[np.float64] = design.T @ (p - y)
        return out

    found = minimize(nll, np.zeros(design.shape[1]), jac=grad, method="BFGS", tol=1e-10)
    p = 1.0 / (1.0 + np.exp(-(design @ found.x)))
    information = (design * (p * (1 - p))[:, None]).T @ design
    return found.x, np.sqrt(np.diag(np.linalg.inv(information)))


@pytest.fixture(scope="module")
def reference(data: Data) -> Reference:
    estimates, errors = [], []
    for s in range(N_SURFACES):
        rows = data.surface == s
        slot = data.slot[rows]
        design = np.column_stack(
            [np.ones(int(rows.sum())), data.x[rows].astype(np.float64), slot == 1, slot == 2]
        ).astype(np.float64)
        estimate, stderr = _maximum_likelihood(design, data.label[rows].astype(np.float64))
        estimates.append(estimate)
        errors.append(stderr)
    return Reference(np.array(estimates), np.array(errors))


def _flat(model: LogisticModel) -> NDArray[np.float64]:
    """The fitted model in the reference's columns, per surface."""
    effective = model.shared[None, :] + model.deviation
    return np.column_stack([model.bias, effective, model.position[:, 1:]])


def test_fit_matches_an_independent_maximum_likelihood_fit(
    fitted: LogisticModel, reference: Reference
) -> None:
    # The weak L2 (1 against tens of thousands of rows) moves nothing by more than a fraction
    # of a standard error.
    np.testing.assert_allclose(_flat(fitted), reference.estimate, atol=0.02)


def test_fit_recovers_the_generating_parameters(
    fitted: LogisticModel, reference: Reference
) -> None:
    truth = np.column_stack([BIAS, np.broadcast_to(WEIGHT, (N_SURFACES, 2)), POSITION[:, 1:]])
    error = np.abs(_flat(fitted) - truth)
    assert np.all(error < 5 * reference.stderr), error / reference.stderr
    assert np.all(reference.stderr < 0.1)  # the data pin the parameters down
    # The truth has no deviations: the shared weights carry the signal, deviations stay small.
    assert np.all(np.abs(fitted.deviation) < np.abs(fitted.shared)[None, :])
    assert np.all(np.sign(fitted.shared) == np.sign(WEIGHT))
    # Offsets are learned relative to the first position, which stays at zero.
    np.testing.assert_array_equal(fitted.position[:, 0], 0.0)


def test_fitted_model_is_calibrated_per_surface(data: Data) -> None:
    """Biases are not penalised, so at the optimum each surface's mean prediction is its rate."""
    for l2 in (1.0, 1000.0):
        model = _fit(data, l2=l2)
        p = model.predict(data.surface, data.x, data.slot)
        for s in range(N_SURFACES):
            rows = data.surface == s
            assert abs(p[rows].mean() - data.label[rows].mean()) < 1e-3, (l2, s)


def test_a_surface_without_rows_borrows_the_shared_weight() -> None:
    data = _draw(20_000, seed=5, surfaces=N_SURFACES - 1)  # the last surface gets no rows
    model = _fit(data, l2=1.0)
    # With no rows of its own, only the pull towards the others holds its bias: their mean.
    assert model.bias[-1] == pytest.approx(model.bias[:-1].mean(), abs=1e-4)
    empty = model.shared + model.deviation[-1]
    # Closer to the other surfaces' weight than to no weight at all.
    assert np.all(np.abs(empty - WEIGHT) < np.abs(WEIGHT) / 2)


def test_a_surface_without_a_positive_keeps_a_finite_bias_near_the_others() -> None:
    data = _draw(20_000, seed=6)
    label = data.label.copy()
    label[data.surface == N_SURFACES - 1] = False  # a thin surface whose rows never convert
    model = _fit(replace(data, label=label), l2=1.0)
    others = model.bias[:-1]
    # Unpooled, maximum likelihood sends that bias to minus infinity (-21 seen in practice).
    assert others.min() - 6.0 < model.bias[-1] < others.max()
    assert np.all(np.isfinite(model.bias))


def test_fitting_is_deterministic(data: Data) -> None:
    first, second = _fit(data, l2=1.0), _fit(data, l2=1.0)
    for name in ("bias", "shared", "deviation", "position"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


def test_a_weight_of_two_counts_a_row_twice() -> None:
    data = _draw(6_000, seed=3)
    twice = np.arange(len(data.label)) % 3 == 0
    weighted = _fit(data, l2=1.0, weight=np.where(twice, 2.0, 1.0))
    rows = np.concatenate([np.arange(len(data.label)), np.flatnonzero(twice)])
    duplicated = _fit(
        Data(data.surface[rows], data.x[rows], data.slot[rows], data.label[rows]), l2=1.0
    )
    for name in ("bias", "shared", "deviation", "position"):
        np.testing.assert_allclose(
            getattr(weighted, name), getattr(duplicated, name), atol=2e-4, err_msg=name
        )


def test_l2_shrinks_weights_but_not_biases(data: Data) -> None:
    def penalised(model: LogisticModel) -> float:
        parts = [model.shared, model.deviation.ravel(), model.position[:, 1:].ravel()]
        return float(np.linalg.norm(np.concatenate(parts)))

    models = [_fit(data, l2=l2) for l2 in (1.0, 300.0, 10_000.0, 1e6)]
    norms = [penalised(m) for m in models]
    assert all(a > b for a, b in itertools.pairwise(norms)), norms
    assert norms[-1] < 0.05 * norms[0]
    # With the weights shrunk away the biases still track each surface's click rate.
    strongest = models[-1]
    for s in range(N_SURFACES):
        rate = data.label[data.surface == s].mean()
        assert strongest.bias[s] == pytest.approx(np.log(rate / (1 - rate)), abs=0.05)


def test_deviation_l2_shrinks_the_deviations_not_the_shared_weights(
    data: Data, fitted: LogisticModel
) -> None:
    pooled = _fit(data, l2=1.0, deviation_l2=1e6)
    assert np.abs(pooled.deviation).max() < 1e-3
    # The shared weights take up what the deviations gave up: the truth has none.
    np.testing.assert_allclose(pooled.shared, WEIGHT, atol=0.05)
    assert np.abs(fitted.deviation).max() > 10 * np.abs(pooled.deviation).max()


def test_pooled_deviations_keep_a_thin_surface_near_the_shared_weights() -> None:
    """A surface with a few hundred rows: unpooled, its own weights follow its noise; pulled
    towards the others, they stay near the truth every surface shares."""
    errors = {None: [], 300.0: []}
    for seed in range(6):
        data = _draw(12_000, seed=100 + seed)
        thin = np.flatnonzero(data.surface == N_SURFACES - 1)[300:]
        keep = np.setdiff1d(np.arange(len(data.label)), thin)
        data = Data(data.surface[keep], data.x[keep], data.slot[keep], data.label[keep])
        for deviation_l2 in errors:
            model = _fit(data, l2=1.0, deviation_l2=deviation_l2, position=False)
            own = model.shared + model.deviation[-1]
            errors[deviation_l2].append(float(np.abs(own - WEIGHT).sum()))
    assert np.mean(errors[300.0]) < 0.5 * np.mean(errors[None]), errors


def test_without_position_fitting_offsets_are_untouched(data: Data) -> None:
    model = LogisticModel.prior(rate=0.1, n_features=len(WEIGHT), n_positions=N_POSITIONS)
    model.position[:] = [0.0, -0.7, -1.4]
    model.fit(
        surface=data.surface,
        x=data.x,
        slot=data.slot,
        label=data.label,
        weight=np.ones(len(data.label)),
        l2=1.0,
        fit_position=False,
    )
    np.testing.assert_array_equal(model.position, np.broadcast_to([0.0, -0.7, -1.4], (6, 3)))


@st.composite
def models_and_grids(
    draw: st.DrawFn,
) -> tuple[LogisticModel, NDArray[np.int8], NDArray[np.float32]]:
    f = draw(st.integers(1, 5))
    n = draw(st.integers(0, 6))
    k = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    rng = np.random.default_rng(seed)
    position = rng.normal(size=(N_SURFACES, 3)) * scale
    position[:, 0] = 0.0
    model = LogisticModel(
        bias=rng.normal(size=N_SURFACES) * scale,
        shared=rng.normal(size=f) * scale,
        deviation=rng.normal(size=(N_SURFACES, f)) * scale,
        position=position,
    )
    surface = rng.integers(0, N_SURFACES, n).astype(np.int8)
    x = (rng.normal(size=(n, k, f)) * scale).astype(np.float32)
    return model, surface, x


@settings(max_examples=100, deadline=None)
@given(models_and_grids())
def test_predict_grid_matches_predict_row_by_row(
    case: tuple[LogisticModel, NDArray[np.int8], NDArray[np.float32]],
) -> None:
    model, surface, x = case
    n, k, f = x.shape
    grid = model.predict_grid(surface, x)
    assert grid.shape == (n, k)
    rows = model.predict(np.repeat(surface, k), x.reshape(n * k, f)).reshape(n, k)
    np.testing.assert_allclose(grid, rows, rtol=1e-5, atol=1e-7)
    first_slot = model.predict(
        np.repeat(surface, k), x.reshape(n * k, f), np.zeros(n * k, np.int64)
    ).reshape(n, k)
    np.testing.assert_allclose(grid, first_slot, rtol=1e-5, atol=1e-7)
    # A later slot changes the odds by its offset, exactly.
    later = np.full(n * k, 2, np.int64)
    logit = model.logit(np.repeat(surface, k), x.reshape(n * k, f), later)
    plain = model.logit(np.repeat(surface, k), x.reshape(n * k, f))
    np.testing.assert_allclose(logit - plain, model.position[np.repeat(surface, k), 2], atol=1e-9)
