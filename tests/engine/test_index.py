"""``CategoryIndex``: an IVF index whose cells are categories, probed nearest cell first."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.engine.index import CategoryIndex

PROPERTY = settings(max_examples=150, deadline=None)


def _index(
    cell: list[int], vectors: NDArray[np.float32], quality: list[float], live: list[bool]
) -> CategoryIndex:
    return CategoryIndex(
        cell=np.asarray(cell, dtype=np.int64),
        cell_vectors=np.asarray(vectors, dtype=np.float32),
        quality=np.asarray(quality, dtype=np.float32),
        live=np.asarray(live, dtype=bool),
    )


def _reference(
    cell: NDArray[np.int64],
    vectors: NDArray[np.float64],
    quality: NDArray[np.float64],
    live: NDArray[np.bool_],
    query: NDArray[np.float64],
    k: int,
    n_probe: int,
) -> list[int]:
    """The documented IVF rule, one query at a time: the ``n_probe`` nearest cells by inner
    product, nearest first; each cell's live campaigns best quality first; the first ``k``."""
    similarity = vectors @ query
    cells = sorted(range(len(vectors)), key=lambda c: -similarity[c])[:n_probe]
    out: list[int] = []
    for c in cells:
        members = [int(i) for i in np.flatnonzero((cell == c) & live)]
        out.extend(sorted(members, key=lambda i: -quality[i]))
    out = out[:k]
    return out + [-1] * (k - len(out))


def test_nearest_cell_first_then_quality() -> None:
    # Cell vectors are the axes, so a query's similarity to cell c is its c-th coordinate.
    vectors = np.eye(3, dtype=np.float32)
    cell = [0, 0, 1, 1, 2, 2]
    quality = [0.1, 0.9, 0.5, -0.5, 0.3, 0.8]
    index = _index(cell, vectors, quality, [True] * 6)
    queries = np.array([[0.2, 0.9, 0.5], [1.0, 0.0, 0.1]], dtype=np.float32)
    campaign, score = index.search(queries, 6)
    # Query 0: cells 1, 2, 0; query 1: cells 0, 2, 1.
    assert campaign.tolist() == [[2, 3, 5, 4, 1, 0], [1, 0, 5, 4, 2, 3]]
    assert campaign.dtype == np.int32
    assert score.shape == (2, 6)
    # A near cell's campaign outscores a far cell's, even a far campaign of better quality.
    assert np.all(np.diff(score, axis=1) <= 1e-6)


def test_quality_orders_only_within_a_cell() -> None:
    """A strong campaign in a far cell stays behind a weak one in the nearest cell."""
    vectors = np.eye(2, dtype=np.float32)
    index = _index([0, 1], vectors, [-1.0, 1.0], [True, True])
    campaign, _ = index.search(np.array([[0.6, 0.5]], dtype=np.float32), 2)
    assert campaign.tolist() == [[0, 1]]


def test_never_lists_campaigns_that_are_not_live() -> None:
    vectors = np.eye(2, dtype=np.float32)
    cell = [0, 0, 0, 1, 1]
    live = [True, False, True, False, True]
    index = _index(cell, vectors, [0.9, 1.0, 0.1, 1.0, 0.0], live)
    campaign, score = index.search(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32), 5)
    assert campaign.tolist() == [[0, 2, 4, -1, -1], [4, 0, 2, -1, -1]]
    assert np.all(score[campaign < 0] == 0.0)


def test_pads_with_minus_one_when_fewer_than_k_are_live() -> None:
    vectors = np.eye(2, dtype=np.float32)
    index = _index([0, 1, 1], vectors, [0.0, 0.0, 0.0], [True, True, False])
    campaign, score = index.search(np.array([[0.0, 1.0]], dtype=np.float32), 8)
    assert campaign.shape == score.shape == (1, 8)
    assert campaign[0, :2].tolist() == [1, 0]
    assert np.all(campaign[0, 2:] == -1)
    assert np.all(score[0, 2:] == 0.0)


def test_empty_index_and_empty_queries() -> None:
    vectors = np.eye(3, dtype=np.float32)
    queries = np.ones((4, 3), dtype=np.float32)
    nothing_live = _index([0, 1, 2], vectors, [0.0, 0.0, 0.0], [False] * 3)
    campaign, score = nothing_live.search(queries, 5)
    assert campaign.shape == (4, 5) and np.all(campaign == -1)
    assert np.all(score == 0.0)

    no_campaigns = CategoryIndex(
        cell=np.zeros(0, np.int64),
        cell_vectors=vectors,
        quality=np.zeros(0, np.float32),
        live=np.zeros(0, bool),
    )
    campaign, _ = no_campaigns.search(queries, 5)
    assert campaign.shape == (4, 5) and np.all(campaign == -1)

    everyone = _index([0, 1, 2], vectors, [0.0, 0.0, 0.0], [True] * 3)
    campaign, score = everyone.search(np.zeros((0, 3), dtype=np.float32), 5)
    assert campaign.shape == score.shape == (0, 5)


@st.composite
def ivf_cases(draw: st.DrawFn) -> dict[str, object]:
    """Cells whose similarity to every query is distinct (no ties to break), distinct qualities.

    Query ``i`` is a signed axis, so its similarity to cell ``c`` is ``±vectors[c, axis]``; each
    axis column holds distinct values, so every query sees a strict order of cells.
    """
    n_cells = draw(st.integers(1, 8))
    dim = draw(st.integers(1, 4))
    columns = [
        draw(st.lists(st.integers(-40, 40), min_size=n_cells, max_size=n_cells, unique=True))
        for _ in range(dim)
    ]
    vectors = np.array(columns, dtype=np.float64).T / 8.0
    n = draw(st.integers(0, 30))
    cell = draw(st.lists(st.integers(0, n_cells - 1), min_size=n, max_size=n))
    quality = draw(st.lists(st.integers(-20, 20), min_size=n, max_size=n, unique=True))
    live = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    n_queries = draw(st.integers(1, 5))
    axes = draw(st.lists(st.integers(0, dim - 1), min_size=n_queries, max_size=n_queries))
    signs = draw(
        st.lists(st.sampled_from([-1.0, 1.0, 2.0]), min_size=n_queries, max_size=n_queries)
    )
    queries = np.zeros((n_queries, dim))
    queries[np.arange(n_queries), axes] = signs
    return {
        "cell": np.asarray(cell, dtype=np.int64),
        "vectors": vectors,
        "quality": np.asarray(quality, dtype=np.float64) / 20.0,
        "live": np.asarray(live, dtype=bool),
        "queries": queries,
        "k": draw(st.integers(1, 12)),
    }


@PROPERTY
@given(ivf_cases())
def test_search_follows_the_ivf_rule(case: dict[str, object]) -> None:
    cell = case["cell"]
    vectors = case["vectors"]
    quality = case["quality"]
    live = case["live"]
    queries = case["queries"]
    k = case["k"]
    assert isinstance(cell, np.ndarray) and isinstance(vectors, np.ndarray)
    assert isinstance(quality, np.ndarray) and isinstance(live, np.ndarray)
    assert isinstance(queries, np.ndarray) and isinstance(k, int)
    n_cells = len(vectors)
    index = CategoryIndex(
        cell=cell,
        cell_vectors=vectors.astype(np.float32),
        quality=quality.astype(np.float32),
        live=live,
    )
    campaign, score = index.search(queries.astype(np.float32), k)
    assert campaign.shape == score.shape == (len(queries), k)

    # Cells holding a live campaign; the probe count is meant to fill k at their average size.
    nonempty = len(np.unique(cell[live]))
    average = max(int(live.sum()) / max(nonempty, 1), 1.0)
    least_probes = min(n_cells, math.ceil(k / average))
    for row, query in enumerate(queries):
        got = campaign[row].tolist()
        # Some number of probed cells, at least enough to fill k at the average cell size,
        # reproduces the result exactly.
        candidates = [
            _reference(cell, vectors, quality, live, query, k, p)
            for p in range(max(least_probes, 1), n_cells + 1)
        ]
        assert got in candidates, (got, candidates)
        # -1 only as trailing padding; never a campaign twice, never a non-live one.
        found = [c for c in got if c >= 0]
        assert got == found + [-1] * (k - len(found))
        assert len(set(found)) == len(found)
        assert all(live[c] for c in found)
        # Scores: the cell's similarity plus a small lean on quality, zero on padding.
        valid = campaign[row] >= 0
        assert np.all(score[row, ~valid] == 0.0)
        similarity = vectors[cell[campaign[row, valid]]] @ query
        lean = score[row, valid] - similarity
        assert np.all(np.abs(lean) <= 0.25 * np.abs(quality[campaign[row, valid]]) + 1e-5)
        order = np.argsort(quality[campaign[row, valid]], kind="stable")
        assert np.all(np.diff(lean[order]) >= -1e-5)  # a better quality never leans less
    if not live.any():
        assert np.all(campaign == -1)


@PROPERTY
@given(ivf_cases(), st.integers(0, 3))
def test_k_covering_every_live_campaign_lists_them_all(case: dict[str, object], extra: int) -> None:
    """With a live campaign in every cell and k at least the live count, the cells needed to fill
    k at the average cell size are all of them: every live campaign is listed, in IVF order."""
    vectors, queries = case["vectors"], case["queries"]
    assert isinstance(vectors, np.ndarray) and isinstance(queries, np.ndarray)
    n_cells = len(vectors)
    cell = np.concatenate([np.asarray(case["cell"]), np.arange(n_cells)]).astype(np.int64)
    quality = np.concatenate([np.asarray(case["quality"]), 1.05 + np.arange(n_cells) / 20.0])
    live = np.concatenate([np.asarray(case["live"], dtype=bool), np.ones(n_cells, dtype=bool)])
    k = int(live.sum()) + extra
    index = CategoryIndex(
        cell=cell,
        cell_vectors=vectors.astype(np.float32),
        quality=quality.astype(np.float32),
        live=live,
    )
    campaign, _ = index.search(queries.astype(np.float32), k)
    for row, query in enumerate(queries):
        expected = _reference(cell, vectors, quality, live, query, k, n_cells)
        assert campaign[row].tolist() == expected
        assert sorted(c for c in expected if c >= 0) == np.flatnonzero(live).tolist()


def test_empty_cells_cost_no_probe() -> None:
    """Live campaigns in the query's least similar cell are still found: empty cells are skipped."""
    n_cells = 20
    vectors = np.eye(n_cells, dtype=np.float32)
    cell = np.full(4, n_cells - 1, dtype=np.int64)
    index = CategoryIndex(
        cell=cell,
        cell_vectors=vectors,
        quality=np.zeros(4, dtype=np.float32),
        live=np.ones(4, dtype=bool),
    )
    query = np.linspace(1.0, 0.0, n_cells, dtype=np.float32)[None, :]  # cell 19 ranks last
    campaign, _ = index.search(query, 24)
    assert sorted(campaign[0][campaign[0] >= 0].tolist()) == [0, 1, 2, 3]
