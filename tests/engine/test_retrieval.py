"""``Retriever`` on a small hand-made catalog: text match, category expansion, similarity, liveness.

The catalog (``-1`` pads titles)::

    item  category  title terms         campaign
    0     0         0 4                 0
    1     0         0 8                 1
    2     0         0 4 8               -
    3     1         1 5                 2
    4     1         1 9 8               3      term 9 is in no other title
    5     1         1 5                 4
    6     2         2 6                 5
    7     2         2 8                 6
    8     2         2 10                -      term 10 only in category 2, in no campaign title
    9     2         2 10 6              -
    10    3         3 7                 7
    11    3         3 7 8               8
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.domain import ItemTable, Surface
from quanzhan.engine.batch import RequestBatch
from quanzhan.engine.retrieval import Retriever

CATEGORY = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3]
TITLES = [
    [0, 4, -1],
    [0, 8, -1],
    [0, 4, 8],
    [1, 5, -1],
    [1, 9, 8],
    [1, 5, -1],
    [2, 6, -1],
    [2, 8, -1],
    [2, 10, -1],
    [2, 10, 6],
    [3, 7, -1],
    [3, 7, 8],
]
CAMPAIGN_ITEM = [0, 1, 3, 4, 5, 6, 7, 10, 11]
N_CATEGORIES = 4
N_CAMPAIGNS = len(CAMPAIGN_ITEM)
CAMPAIGN_CATEGORY = np.array([CATEGORY[i] for i in CAMPAIGN_ITEM])


def _items() -> ItemTable:
    n = len(CATEGORY)
    return ItemTable(
        category=np.array(CATEGORY, dtype=np.int32),
        merchant=np.arange(n, dtype=np.int32),
        price=np.linspace(10.0, 40.0, n),
        title_terms=np.array(TITLES, dtype=np.int32),
        n_categories=N_CATEGORIES,
        n_terms=11,
    )


def _retriever(k: int = 6) -> Retriever:
    return Retriever(
        items=_items(),
        campaign_item=np.array(CAMPAIGN_ITEM, dtype=np.int32),
        k=k,
        category_vectors=np.eye(N_CATEGORIES, dtype=np.float32),
    )


def _batch(
    surface: list[Surface], terms: list[list[int]] | None = None, context: list[int] | None = None
) -> RequestBatch:
    n = len(surface)
    query = np.full((n, 2), -1, dtype=np.int32)
    for row, t in enumerate(terms or []):
        query[row, : len(t)] = t
    return RequestBatch(
        request_id=np.arange(n, dtype=np.int64),
        time=np.zeros(n),
        surface=np.array(surface, dtype=np.int8),
        user=np.full(n, -1, dtype=np.int32),
        query_terms=query,
        context_item=np.array(context if context is not None else [-1] * n, dtype=np.int32),
        n_slots=np.full(n, 2, dtype=np.int16),
    )


def _uniform(n: int) -> NDArray[np.float32]:
    return np.full((n, N_CATEGORIES), 1.0 / N_CATEGORIES, dtype=np.float32)


def _all_live() -> NDArray[np.bool_]:
    return np.ones(N_CAMPAIGNS, dtype=bool)


def _found(row: NDArray[np.int32]) -> list[int]:
    return [int(c) for c in row if c >= 0]


@pytest.mark.parametrize("terms", [[9], [9, 8], [8, 9]])
def test_a_term_in_one_campaign_title_ranks_that_campaign_first(terms: list[int]) -> None:
    found = _retriever().retrieve(
        _batch([Surface.SEARCH], [terms]), interest=_uniform(1), live=_all_live()
    )
    assert found.campaign[0, 0] == 3
    assert found.score[0, 0] > found.score[0, 1]


def test_a_category_word_finds_campaigns_without_the_word() -> None:
    """Term 10 is only in category 2's non-promoted titles; it expands to category 2."""
    found = _retriever().retrieve(
        _batch([Surface.SEARCH], [[10]]), interest=_uniform(1), live=_all_live()
    )
    assert sorted(_found(found.campaign[0])) == [5, 6]
    assert np.all(found.score[0, :2] > 0)


def test_an_exact_match_outranks_a_category_neighbour() -> None:
    """Term 5 is in campaigns 2 and 4's titles (category 1); campaign 3 shares only the category."""
    found = _retriever().retrieve(
        _batch([Surface.SEARCH], [[5]]), interest=_uniform(1), live=_all_live()
    )
    row = _found(found.campaign[0])
    assert sorted(row[:2]) == [2, 4]
    assert 3 in row[2:]
    assert set(row) <= {2, 3, 4}


def test_campaigns_that_are_not_live_are_never_returned() -> None:
    retriever = _retriever(k=N_CAMPAIGNS + 3)
    live = _all_live()
    live[[3, 5, 7]] = False
    batch = _batch(
        [Surface.SEARCH, Surface.SEARCH, Surface.HOME_FEED, Surface.DETAIL, Surface.OFFSITE],
        [[9], [10, 8], [], [], []],
        [-1, -1, -1, 4, -1],
    )
    found = retriever.retrieve(batch, interest=_uniform(len(batch)), live=live)
    listed = found.campaign[found.valid]
    assert not np.isin(listed, [3, 5, 7]).any()
    # The feeds, which probe every cell here, still list every live campaign.
    for row in (2, 3, 4):
        assert sorted(_found(found.campaign[row])) == np.flatnonzero(live).tolist()
    # Liveness is re-read on every call: the same retriever lists them again when live.
    again = retriever.retrieve(batch, interest=_uniform(len(batch)), live=_all_live())
    assert again.campaign[0, 0] == 3
    assert 7 in again.campaign[2]


@pytest.mark.parametrize("surface", [Surface.DETAIL, Surface.POST_PURCHASE])
def test_item_pages_retrieve_the_same_category_first(surface: Surface) -> None:
    """The shopper likes category 3; on the page of item 2 (category 0) category 0 comes first,
    while the home feed follows the shopper."""
    interest = np.array([[0.02, 0.02, 0.02, 0.94]] * 2, dtype=np.float32)
    batch = _batch([surface, Surface.HOME_FEED], context=[2, -1])
    found = _retriever(k=N_CAMPAIGNS).retrieve(batch, interest=interest, live=_all_live())
    page, feed = _found(found.campaign[0]), _found(found.campaign[1])
    assert sorted(page[:2]) == [0, 1]
    assert sorted(page[2:4]) == [7, 8]
    assert sorted(feed[:2]) == [7, 8]
    assert found.score[0, 1] > found.score[0, 2]


def test_quality_orders_campaigns_of_the_same_category() -> None:
    retriever = _retriever(k=N_CAMPAIGNS)
    quality = np.zeros(N_CAMPAIGNS, dtype=np.float32)
    quality[[2, 3, 4]] = [-0.5, 0.2, 0.9]
    retriever.update(quality=quality, category_vectors=np.eye(N_CATEGORIES, dtype=np.float32))
    found = retriever.retrieve(
        _batch([Surface.DETAIL], context=[5]), interest=_uniform(1), live=_all_live()
    )
    assert _found(found.campaign[0])[:3] == [4, 3, 2]


def test_output_shapes_and_padding() -> None:
    k = N_CAMPAIGNS + 3
    surfaces = [
        Surface.SEARCH,
        Surface.HOME_FEED,
        Surface.CART_FEED,
        Surface.POST_PURCHASE,
        Surface.DETAIL,
        Surface.OFFSITE,
        Surface.SEARCH,
    ]
    batch = _batch(surfaces, [[10], [], [], [], [], [], [7]], [-1, -1, 6, 9, 0, -1, -1])
    found = _retriever(k=k).retrieve(batch, interest=_uniform(len(batch)), live=_all_live())
    assert found.campaign.shape == found.score.shape == (len(batch), k)
    assert found.campaign.dtype == np.int32
    for row in found.campaign:
        listed = _found(row)
        # Best first, -1 only as trailing padding, no campaign twice.
        assert row.tolist() == listed + [-1] * (k - len(listed))
        assert len(set(listed)) == len(listed)
    assert np.all(found.score[~found.valid] == 0.0)
    # There are fewer campaigns than k: every row is padded.
    assert np.all(found.campaign[:, N_CAMPAIGNS:] == -1)
    # Search for category 2's word: two campaigns; for term 7 (category 3): the two of category 3.
    assert sorted(_found(found.campaign[0])) == [5, 6]
    assert sorted(_found(found.campaign[6])) == [7, 8]
    # The feed rows reach every campaign through the index.
    for row in range(1, 6):
        assert sorted(_found(found.campaign[row])) == list(range(N_CAMPAIGNS))


def test_batches_of_one_surface_and_empty_batches() -> None:
    retriever = _retriever()
    for batch in (_batch([Surface.SEARCH], [[9]]), _batch([Surface.OFFSITE]), _batch([])):
        found = retriever.retrieve(batch, interest=_uniform(len(batch)), live=_all_live())
        assert found.campaign.shape == (len(batch), 6)


def test_k_overrides_the_depth_for_one_call_only() -> None:
    retriever = _retriever(k=2)
    batch = _batch([Surface.SEARCH, Surface.HOME_FEED, Surface.DETAIL], [[8], [], []], [-1, -1, 9])
    interest = _uniform(len(batch))
    short = retriever.retrieve(batch, interest=interest, live=_all_live())
    deep = retriever.retrieve(batch, interest=interest, live=_all_live(), k=N_CAMPAIGNS)
    again = retriever.retrieve(batch, interest=interest, live=_all_live())
    assert short.campaign.shape == again.campaign.shape == (len(batch), 2)
    assert np.array_equal(short.campaign, again.campaign)
    assert deep.campaign.shape == (len(batch), N_CAMPAIGNS)
    # Term 8 is in four campaign titles: the deeper list holds them all, best first as before.
    assert np.array_equal(deep.campaign[0, :2], short.campaign[0])
    assert {1, 3, 6, 8} <= set(_found(deep.campaign[0]))
    for row in (1, 2):
        assert sorted(_found(deep.campaign[row])) == list(range(N_CAMPAIGNS))
    with pytest.raises(ValueError):
        retriever.retrieve(batch, interest=interest, live=_all_live(), k=0)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_items=st.integers(1, 60),
    n_requests=st.integers(1, 12),
    k=st.integers(1, 20),
)
def test_small_search_batches_in_dense_arrays_match_the_sparse_path(
    seed: int, n_items: int, n_requests: int, k: int
) -> None:
    """A server's small batches are scored densely, a simulation's large ones sparsely: the same
    candidates in the same order, with the same scores."""
    import quanzhan.engine.retrieval as retrieval

    rng = np.random.default_rng(seed)
    n_terms, n_categories = 15, 4
    titles = rng.integers(-1, n_terms, size=(n_items, 4)).astype(np.int32)
    items = ItemTable(
        category=rng.integers(0, n_categories, n_items).astype(np.int32),
        merchant=np.zeros(n_items, dtype=np.int32),
        price=rng.uniform(1, 100, n_items),
        title_terms=titles,
        n_categories=n_categories,
        n_terms=n_terms,
    )
    campaign_item = rng.choice(n_items, size=rng.integers(1, n_items + 1), replace=False)
    retriever = Retriever(
        items=items,
        campaign_item=campaign_item.astype(np.int32),
        k=k,
        category_vectors=np.eye(n_categories, dtype=np.float32),
    )
    retriever.update(
        quality=rng.uniform(-1, 1, len(campaign_item)).astype(np.float32),
        category_vectors=np.eye(n_categories, dtype=np.float32),
    )
    batch = RequestBatch(
        request_id=np.arange(n_requests, dtype=np.int64),
        time=np.zeros(n_requests),
        surface=np.full(n_requests, Surface.SEARCH, dtype=np.int8),
        user=np.full(n_requests, -1, dtype=np.int32),
        query_terms=rng.integers(-1, n_terms, size=(n_requests, 3)).astype(np.int32),
        context_item=np.full(n_requests, -1, dtype=np.int32),
        n_slots=np.ones(n_requests, dtype=np.int16),
    )
    live = rng.random(len(campaign_item)) < 0.8
    interest = np.full((n_requests, n_categories), 1 / n_categories, dtype=np.float32)
    dense = retriever.retrieve(batch, interest=interest, live=live)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retrieval, "_DENSE_CELLS", 0)
        sparse = retriever.retrieve(batch, interest=interest, live=live)
    np.testing.assert_allclose(dense.score, sparse.score, rtol=1e-5, atol=1e-6)
    # Same candidates in the same order, except where two scores tie to float precision.
    gaps = np.abs(np.diff(sparse.score, axis=1)) > 1e-5
    clear = np.concatenate([gaps[:, :1], gaps[:, :-1] & gaps[:, 1:], gaps[:, -1:]], axis=1)
    if k == 1:
        clear = np.ones_like(dense.campaign, dtype=bool)
    np.testing.assert_array_equal(dense.campaign[clear], sparse.campaign[clear])
    assert np.array_equal(dense.campaign >= 0, sparse.campaign >= 0)


def test_a_word_in_every_title_still_finds_campaigns() -> None:
    """A small shop whose titles all say 'shoe': a search for 'shoe' must not come back empty."""
    items = ItemTable(
        category=np.array([0, 0, 1], dtype=np.int32),
        merchant=np.zeros(3, dtype=np.int32),
        price=np.array([10.0, 20.0, 30.0]),
        title_terms=np.array([[0, 1], [0, 2], [0, -1]], dtype=np.int32),
        n_categories=2,
        n_terms=3,
    )
    retriever = Retriever(
        items=items,
        campaign_item=np.array([0, 1, 2], dtype=np.int32),
        k=3,
        category_vectors=np.eye(2, dtype=np.float32),
    )
    batch = RequestBatch(
        request_id=np.zeros(1, dtype=np.int64),
        time=np.zeros(1),
        surface=np.array([Surface.SEARCH], dtype=np.int8),
        user=np.array([-1], dtype=np.int32),
        query_terms=np.array([[0]], dtype=np.int32),
        context_item=np.array([-1], dtype=np.int32),
        n_slots=np.ones(1, dtype=np.int16),
    )
    found = retriever.retrieve(
        batch, interest=np.full((1, 2), 0.5, dtype=np.float32), live=np.ones(3, dtype=bool)
    )
    assert sorted(found.campaign[0].tolist()) == [0, 1, 2]
