"""Logistic regression with per-surface biases, shared weights plus per-surface deviations, and
per-surface position offsets that are learned in training and left out at serving.

    logit = bias[s] + (shared + deviation[s]) . x + position[s, slot]

Serving scores every candidate at the first position; ``position`` turns that into the odds of any
other slot, so the click model does not absorb the slot effect (the position bias). Deviations are
penalised by L2 so that a small surface borrows strength from the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, logit

from quanzhan.domain import N_SURFACES

_MAX_NEWTON_STEPS = 25
_MAX_HALVINGS = 20
_TOLERANCE = 1e-7
_BIAS_POOLING = 1.0  # strength of the pull of each surface bias towards their mean
_RIDGE = 1e-8  # keeps the Hessian invertible where a surface or slot has no rows


@dataclass(slots=True)
class LogisticModel:
    """Parameters: ``bias (s,)``, ``shared (f,)``, ``deviation (s, f)``, ``position (s, p)``."""

    bias: NDArray[np.float64]
    shared: NDArray[np.float64]
    deviation: NDArray[np.float64]
    position: NDArray[np.float64]

    @classmethod
    def prior(cls, *, rate: float, n_features: int, n_positions: int) -> LogisticModel:
        return cls(
            bias=np.full(N_SURFACES, logit(rate)),
            shared=np.zeros(n_features),
            deviation=np.zeros((N_SURFACES, n_features)),
            position=np.zeros((N_SURFACES, n_positions)),
        )

    def logit(
        self,
        surface: NDArray[np.int8],
        x: NDArray[np.float32],
        slot: NDArray[np.int64] | None = None,
    ) -> NDArray[np.float64]:
        """Logit of each row of ``x`` (``(m, f)``) on its surface, at ``slot`` or the first one."""
        weights = self.shared[None, :] + self.deviation[surface]
        z = self.bias[surface] + np.einsum("mf,mf->m", weights, x.astype(np.float64))
        if slot is not None:
            z = z + self.position[surface, np.minimum(slot, self.position.shape[1] - 1)]
        out: NDArray[np.float64] = z
        return out

    def predict(
        self,
        surface: NDArray[np.int8],
        x: NDArray[np.float32],
        slot: NDArray[np.int64] | None = None,
    ) -> NDArray[np.float64]:
        out: NDArray[np.float64] = expit(self.logit(surface, x, slot))
        return out

    def predict_grid(
        self,
        surface: NDArray[np.int8],
        x: NDArray[np.float32],
        offset: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """``(n, k)`` odds at the first position for ``(n, k, f)`` features, one surface per row;
        ``offset`` (per surface) is added to the logits."""
        weights = (self.shared[None, :] + self.deviation[surface]).astype(np.float32)
        bias = self.bias if offset is None else self.bias + offset
        z = np.einsum("nkf,nf->nk", x, weights) + bias[surface][:, None].astype(np.float32)
        out: NDArray[np.float64] = expit(z.astype(np.float64))
        return out

    def fit(
        self,
        *,
        surface: NDArray[np.int8],
        x: NDArray[np.float32],
        slot: NDArray[np.int64],
        label: NDArray[np.bool_],
        weight: NDArray[np.float64],
        l2: float,
        fit_position: bool,
        deviation_l2: float | None = None,
    ) -> None:
        """Refit in place by damped Newton steps, starting from the current parameters.
        ``deviation_l2`` (``l2`` where not given) shrinks the per-surface deviations.

        The problem is small (tens of parameters) and strictly convex with the L2 term, so a few
        Newton steps converge where a quasi-Newton method would need hundreds of evaluations.
        """
        design = _design(surface, x, slot, self.position.shape[1], fit_position)
        design32 = design.astype(np.float32)  # the Hessian only steers; float32 halves its cost
        theta = self._pack(fit_position)
        penalty = l2 * _penalty_mask(self.shared.size, fit_position, self.position.shape[1])
        if deviation_l2 is not None:
            f = self.shared.size
            penalty[N_SURFACES + f : N_SURFACES + f + N_SURFACES * f] = deviation_l2
        # Surface biases shrink towards their mean, weakly: a surface whose rows hold no
        # positive at all (a thin surface, scarce orders) keeps a finite bias near the others'
        # instead of running off to minus infinity.
        s = N_SURFACES
        pooled = np.zeros((len(penalty), len(penalty)))
        pooled[:s, :s] = _BIAS_POOLING * (np.eye(s) - 1.0 / s)
        penalty_matrix = np.diag(penalty) + pooled
        y = label.astype(np.float64)

        def loss(candidate: NDArray[np.float64]) -> float:
            z = design @ candidate
            return float(
                np.sum(weight * (np.logaddexp(0.0, z) - y * z))
                + 0.5 * float(candidate @ penalty_matrix @ candidate)
            )

        current = loss(theta)
        for _ in range(_MAX_NEWTON_STEPS):
            p = expit(design @ theta)
            grad = design.T @ (weight * (p - y)) + penalty_matrix @ theta
            curvature = weight * p * (1.0 - p)
            weighted = (design32 * curvature[:, None].astype(np.float32)).T
            hessian = (
                (weighted @ design32).astype(np.float64)
                + penalty_matrix
                + _RIDGE * np.eye(len(theta))
            )
            step = np.linalg.solve(hessian, grad)
            for _ in range(_MAX_HALVINGS):
                trial = loss(theta - step)
                if trial <= current:
                    break
                step = step / 2.0
            else:
                break
            theta, improvement = theta - step, current - trial
            current = trial
            if improvement <= _TOLERANCE * max(abs(current), 1.0):
                break
        self._unpack(theta, fit_position)

    def _pack(self, fit_position: bool) -> NDArray[np.float64]:
        parts = [self.bias, self.shared, self.deviation.ravel()]
        if fit_position:
            parts.append(self.position[:, 1:].ravel())
        return np.concatenate(parts)

    def _unpack(self, theta: NDArray[np.float64], fit_position: bool) -> None:
        s, f = self.deviation.shape
        self.bias = theta[:s].copy()
        self.shared = theta[s : s + f].copy()
        self.deviation = theta[s + f : s + f + s * f].reshape(s, f).copy()
        if fit_position:
            self.position[:, 1:] = theta[s + f + s * f :].reshape(s, -1)


def _design(
    surface: NDArray[np.int8],
    x: NDArray[np.float32],
    slot: NDArray[np.int64],
    n_positions: int,
    fit_position: bool,
) -> NDArray[np.float64]:
    m, f = x.shape
    s = N_SURFACES
    onehot = np.zeros((m, s))
    onehot[np.arange(m), surface] = 1.0
    interactions = (onehot[:, :, None] * x[:, None, :]).reshape(m, s * f)
    parts = [onehot, x.astype(np.float64), interactions]
    if fit_position:
        position = np.zeros((m, s, n_positions))
        position[np.arange(m), surface, np.minimum(slot, n_positions - 1)] = 1.0
        parts.append(position[:, :, 1:].reshape(m, -1))
    return np.hstack(parts)


def _penalty_mask(n_features: int, fit_position: bool, n_positions: int) -> NDArray[np.float64]:
    """Biases go unpenalised; weights, deviations and position offsets are shrunk."""
    s = N_SURFACES
    sizes = [s, n_features, s * n_features] + ([s * (n_positions - 1)] if fit_position else [])
    mask = np.ones(sum(sizes))
    mask[:s] = 0.0
    return mask
