"""``CategoryAffinity``: click lifts between categories learned from impressions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.typing import NDArray

import quanzhan.engine.affinity as affinity_module
from quanzhan.engine.affinity import CategoryAffinity
from quanzhan.engine.profiles import UserProfiles

N_CATEGORIES = 6
# Planted log-lift of shoppers of category a (row) on ads of category j (column): two blocks of
# categories that like each other and dislike the other block.
BLOCK = np.array([0, 0, 0, 1, 1, 1])
PLANTED = np.where(BLOCK[:, None] == BLOCK[None, :], 0.8, -0.8)


def _market(
    seed: int, n_users: int = 3_000, per_user: int = 40
) -> tuple[sp.csr_matrix, NDArray[np.int32], NDArray[np.int64], NDArray[np.bool_]]:
    """Shoppers of one home category each, shown ads of every category; clicks follow the
    planted lift. Returns the click counts per user and category (the impressions' own clicks
    included, as the engine's profiles hold them) and the impressions."""
    rng = np.random.default_rng(seed)
    home = rng.integers(0, N_CATEGORIES, n_users)
    user = np.repeat(np.arange(n_users, dtype=np.int32), per_user)
    category = rng.integers(0, N_CATEGORIES, len(user)).astype(np.int64)
    rate = 0.05 * np.exp(PLANTED[home[user], category])
    clicked = rng.random(len(user)) < rate
    # A few past clicks at home, so every shopper has a profile besides today's clicks.
    history = sp.csr_matrix(
        (np.full(n_users, 3.0), (np.arange(n_users), home)), shape=(n_users, N_CATEGORIES)
    )
    today = sp.csr_matrix(
        (np.ones(int(clicked.sum())), (user[clicked], category[clicked])),
        shape=(n_users, N_CATEGORIES),
    )
    return (history + today).tocsr(), user, category, clicked


def _fit(seed: int, **kw: int) -> CategoryAffinity:
    counts, user, category, clicked = _market(seed, **kw)
    model = CategoryAffinity(n_categories=N_CATEGORIES, rank=4)
    model.fit(
        counts=counts,
        user=user,
        category=category,
        clicked=clicked,
        exposure=np.ones(len(user)),
    )
    return model


def test_it_recovers_a_planted_block_structure() -> None:
    lift = _fit(seed=1).lift
    same = BLOCK[:, None] == BLOCK[None, :]
    # Every shopper category lifts its own block above the other block.
    for a in range(N_CATEGORIES):
        assert lift[a, same[a]].min() > lift[a, ~same[a]].max(), a
    assert np.corrcoef(lift.ravel(), PLANTED.ravel())[0, 1] > 0.9


def test_affinities_are_the_profile_times_the_lift() -> None:
    model = _fit(seed=2)
    interest = np.random.default_rng(3).dirichlet(np.ones(N_CATEGORIES), 5).astype(np.float32)
    np.testing.assert_allclose(model.affinities(interest), interest @ model.lift, atol=1e-5)


def test_a_click_never_explains_itself() -> None:
    """Clicks at random, whatever the categories: there is nothing to learn. A profile that kept
    the impression's own click would credit every click to its own category and invent a lift
    on the diagonal; with the click taken out, the diagonal stays at noise level."""
    rng = np.random.default_rng(7)
    n = 20_000
    user = np.arange(n, dtype=np.int32)
    home = rng.integers(0, N_CATEGORIES, n)
    category = rng.integers(0, N_CATEGORIES, n).astype(np.int64)
    clicked = rng.random(n) < 0.2
    counts = sp.csr_matrix(
        (np.r_[np.full(n, 2.0), np.ones(int(clicked.sum()))],
         (np.r_[user, user[clicked]], np.r_[home, category[clicked]])),
        shape=(n, N_CATEGORIES),
    )  # fmt: skip
    model = CategoryAffinity(n_categories=N_CATEGORIES, rank=N_CATEGORIES)
    model.fit(counts=counts, user=user, category=category, clicked=clicked, exposure=np.ones(n))
    assert abs(float(np.diag(model.lift).mean())) < 0.05
    assert float(np.abs(model.lift).max()) < 0.2


def test_nothing_to_learn_from_leaves_no_lift() -> None:
    counts, user, category, clicked = _market(seed=4, n_users=50, per_user=5)
    model = CategoryAffinity(n_categories=N_CATEGORIES, rank=4)
    unknown = np.full(len(user), -1, dtype=np.int32)
    model.fit(counts=counts, user=unknown, category=category, clicked=clicked,
              exposure=np.ones(len(user)))  # fmt: skip
    model.fit(counts=counts, user=user, category=category, clicked=np.zeros(len(user), bool),
              exposure=np.ones(len(user)))  # fmt: skip
    assert not model.lift.any()
    assert not model.affinities(np.full((2, N_CATEGORIES), 1 / N_CATEGORIES, np.float32)).any()


def test_the_rank_bounds_the_lift() -> None:
    model = _fit(seed=5)
    assert np.linalg.matrix_rank(model.lift.astype(np.float64), tol=1e-4) <= model.rank


def test_state_round_trips_and_bad_state_changes_nothing() -> None:
    model = _fit(seed=6)
    fresh = CategoryAffinity(n_categories=N_CATEGORIES, rank=4)
    fresh.load_state(model.state())
    np.testing.assert_array_equal(fresh.lift, model.lift)
    before = fresh.lift.copy()
    for bad in (
        {"left": model.state()["left"]},
        {**model.state(), "extra": np.zeros(3)},
        {"left": np.zeros((N_CATEGORIES, 3)), "right": model.state()["right"]},
        {"left": np.full_like(model.state()["left"], np.nan), "right": model.state()["right"]},
    ):
        with pytest.raises(ValueError):
            fresh.load_state(bad)  # type: ignore[arg-type]
        np.testing.assert_array_equal(fresh.lift, before)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        CategoryAffinity(n_categories=0)
    with pytest.raises(ValueError):
        CategoryAffinity(n_categories=3, rank=0)


def _organic_market(
    seed: int, n_users: int = 3_000, per_user: int = 40
) -> tuple[sp.csr_matrix, dict[str, NDArray[np.int64] | NDArray[np.bool_] | NDArray[np.int8]]]:
    """The planted market's organic results: every shopper sees results of every category, at
    page positions that fall off by half a step each, and the categories of the second block
    only low on the page (so a model that forgot the position would take them for disliked)."""
    counts, user, category, _ = _market(seed, n_users=n_users, per_user=per_user)
    rng = np.random.default_rng(seed + 100)
    position = np.where(BLOCK[category] == 1, rng.integers(8, 12, len(user)),
                        rng.integers(0, 4, len(user)))  # fmt: skip
    home = np.asarray(counts.argmax(axis=1)).ravel()
    rate = 0.2 * np.exp(PLANTED[home[user], category]) * 0.85**position
    clicked = rng.random(len(user)) < rate
    surface = np.zeros(len(user), np.int8)
    return counts, {"user": user, "category": category, "surface": surface,
                    "position": position.astype(np.int64), "clicked": clicked}  # fmt: skip


def test_organic_results_alone_teach_the_planted_structure() -> None:
    counts, rows = _organic_market(seed=11)
    model = CategoryAffinity(n_categories=N_CATEGORIES, rank=4)
    half = len(rows["user"]) // 2
    for part in (slice(0, half), slice(half, None)):  # evidence is kept across calls
        model.observe_organic(counts=counts, **{k: v[part] for k, v in rows.items()})  # type: ignore[arg-type]
    none = np.zeros(0, np.int64)
    model.fit(counts=counts, user=none.astype(np.int32), category=none, clicked=none > 0,
              exposure=np.zeros(0))  # fmt: skip
    lift = model.lift
    same = BLOCK[:, None] == BLOCK[None, :]
    for a in range(N_CATEGORIES):
        assert lift[a, same[a]].min() > lift[a, ~same[a]].max(), a
    # Shown low on the page, the second block is not mistaken for one nobody takes to.
    second = BLOCK == 1
    assert lift[np.ix_(second, second)].mean() > 0.3
    assert np.corrcoef(lift.ravel(), PLANTED.ravel())[0, 1] > 0.9


def test_organic_evidence_worked_out_in_parts_is_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A day of organic results is worked out a part at a time, to bound memory; the rates
    every part is measured against are still those of the whole call, so the lift is the
    same as in one pass."""
    counts, rows = _organic_market(seed=13)
    whole = CategoryAffinity(n_categories=N_CATEGORIES, rank=4)
    whole.observe_organic(counts=counts, **rows)  # type: ignore[arg-type]
    monkeypatch.setattr(affinity_module, "ROWS_AT_ONCE", 997)
    in_parts = CategoryAffinity(n_categories=N_CATEGORIES, rank=4)
    in_parts.observe_organic(counts=counts, **rows)  # type: ignore[arg-type]
    none = np.zeros(0, np.int64)
    for model in (whole, in_parts):
        model.fit(counts=counts, user=none.astype(np.int32), category=none, clicked=none > 0,
                  exposure=np.zeros(0))  # fmt: skip
    assert len(rows["user"]) > 100 * 997
    np.testing.assert_allclose(in_parts.lift, whole.lift, rtol=1e-5, atol=1e-6)
    assert np.abs(whole.lift).max() > 0.3  # the lift learned is not the untrained zero


def test_organic_evidence_adds_to_the_ads() -> None:
    """Few ads teach little; the organic results of the same shoppers take the lift closer to
    the planted one."""
    counts, user, category, clicked = _market(seed=12)
    few = np.random.default_rng(12).random(len(user)) < 0.003
    _, organic = _organic_market(seed=12)
    ads_only = CategoryAffinity(n_categories=N_CATEGORIES, rank=4)
    both = CategoryAffinity(n_categories=N_CATEGORIES, rank=4)
    both.observe_organic(counts=counts, **organic)  # type: ignore[arg-type]
    for model in (ads_only, both):
        model.fit(counts=counts, user=user[few], category=category[few], clicked=clicked[few],
                  exposure=np.ones(int(few.sum())))  # fmt: skip
    fit = [float(np.corrcoef(m.lift.ravel(), PLANTED.ravel())[0, 1]) for m in (ads_only, both)]
    assert fit[1] > 0.95 > 0.85 > fit[0]


def test_logged_rows_get_the_affinity_they_would_be_served() -> None:
    """``of_rows`` is, row by row, what ``affinities`` serves for the row's shopper (unknown
    ones included) and category, from the profiles it is given."""
    counts, user, category, _ = _market(seed=14, n_users=200, per_user=5)
    model = _fit(seed=14)
    profiles = UserProfiles(n_users=200, n_categories=N_CATEGORIES)
    coo = counts.tocoo()
    clicks = coo.data.astype(int)
    profiles.add(user=np.repeat(coo.row, clicks).astype(np.int32),
                 category=np.repeat(coo.col, clicks).astype(np.int32))  # fmt: skip
    rows, row_category = np.r_[user, -1].astype(np.int32), np.r_[category, 2]
    got = model.of_rows(profiles, user=rows, category=row_category)
    served = model.affinities(profiles.distribution(rows))[np.arange(len(rows)), row_category]
    np.testing.assert_allclose(got, served, atol=1e-5)
    assert (
        not CategoryAffinity(n_categories=N_CATEGORIES)
        .of_rows(profiles, user=rows, category=row_category)
        .any()
    )


def test_a_profile_snapshot_is_not_moved_by_later_clicks() -> None:
    profiles = UserProfiles(n_users=3, n_categories=N_CATEGORIES)
    profiles.add(user=np.array([0, 1], np.int32), category=np.array([2, 3], np.int32))
    before = profiles.snapshot()
    kept = before.distribution(np.array([0, 1, 2], np.int32)).copy()
    profiles.add(user=np.array([0, 2, 2], np.int32), category=np.array([5, 1, 1], np.int32))
    np.testing.assert_array_equal(before.distribution(np.array([0, 1, 2], np.int32)), kept)
    assert profiles.counts.sum() == 5 and before.counts.sum() == 2
