"""``Retriever`` on a small hand-made catalog and on random ones: the documented exact score,
query topic and word matches, item pages, liveness, shapes, and ``ValueModel`` updates.

The documented score of campaign ``c`` (category ``g``) for a request on surface ``s``::

    cell_score[g] = interest_weight[s] * log(max(interest[g], 1e-6))
                  + affinity_weight[s] * affinity[g] + relevance_weight[s] * relevance[g]
    score[c]      = cell_score[g] + campaign_value[s, c] + relevance_weight[s] * 0.5 * words[c]

``relevance[g]`` is half the query's topic on search (the share of its words' uses in titles
that fall in ``g``, normalised) and ``1`` for the category of the item on screen on item pages;
``words[c]`` is the share of the query's words in ``c``'s title. The returned score is the
relevance feature ``relevance[g] + 0.5 * words[c]``.

The hand-made catalog (``-1`` pads titles)::

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

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.domain import N_SURFACES, ItemTable, Surface
from quanzhan.engine.batch import Candidates, RequestBatch
from quanzhan.engine.retrieval import _SCORED_PER_SLOT as SCORED_PER_SLOT
from quanzhan.engine.retrieval import Retriever, ValueModel

PROPERTY = settings(max_examples=120, deadline=None)

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
N_TERMS = 11
N_CAMPAIGNS = len(CAMPAIGN_ITEM)
CONTEXT_SURFACES = (Surface.DETAIL, Surface.POST_PURCHASE, Surface.CART_FEED)
# The documented share of relevance that is word match, and the share of clicks a category the
# shopper never clicked counts as under ``log(interest + share)``.
WORD_SHARE = 0.5
UNSEEN_SHARE = 0.01
EXPANSION_FLOOR = 0.05


def _items() -> ItemTable:
    n = len(CATEGORY)
    return ItemTable(
        category=np.array(CATEGORY, dtype=np.int32),
        merchant=np.arange(n, dtype=np.int32),
        price=np.linspace(10.0, 40.0, n),
        title_terms=np.array(TITLES, dtype=np.int32),
        n_categories=N_CATEGORIES,
        n_terms=N_TERMS,
    )


def _retriever(k: int = 6, *, requires_match: bool = True) -> Retriever:
    """The hand-made catalog's retriever; most tests here check the search rule, so it is on."""
    return Retriever(
        items=_items(),
        campaign_item=np.array(CAMPAIGN_ITEM, dtype=np.int32),
        k=k,
        search_requires_match=requires_match,
    )


def _batch(
    surface: list[Surface], terms: list[list[int]] | None = None, context: list[int] | None = None
) -> RequestBatch:
    n = len(surface)
    width = max([2, *(len(t) for t in terms or [])])
    query = np.full((n, width), -1, dtype=np.int32)
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


def _uniform(n: int, categories: int = N_CATEGORIES) -> NDArray[np.float32]:
    return np.full((n, categories), 1.0 / categories, dtype=np.float32)


def _zeros(n: int, categories: int = N_CATEGORIES) -> NDArray[np.float32]:
    return np.zeros((n, categories), dtype=np.float32)


def _all_live(n: int = N_CAMPAIGNS) -> NDArray[np.bool_]:
    return np.ones(n, dtype=bool)


def _retrieve(
    retriever: Retriever,
    batch: RequestBatch,
    interest: NDArray[np.float32] | None = None,
    live: NDArray[np.bool_] | None = None,
    k: int | None = None,
) -> Candidates:
    n = len(batch)
    return retriever.retrieve(
        batch,
        interest=_uniform(n) if interest is None else interest,
        affinity=_zeros(n),
        live=_all_live() if live is None else live,
        k=k,
    )


def _found(row: NDArray[np.int32]) -> list[int]:
    return [int(c) for c in row if c >= 0]


# ---------------------------------------------------------------------------------------------
# The documented score, in plain Python.


def _term_categories(items: ItemTable) -> list[list[float]]:
    """Per term, the share of its uses in titles falling in each category; shares under the
    expansion floor dropped."""
    counts = [[0.0] * items.n_categories for _ in range(items.n_terms)]
    for item, title in enumerate(items.title_terms.tolist()):
        for term in title:
            if term >= 0:
                counts[term][int(items.category[item])] += 1.0
    shares = []
    for row in counts:
        total = sum(row)
        share = [x / total if total > 0 else 0.0 for x in row]
        shares.append([x if x >= EXPANSION_FLOOR else 0.0 for x in share])
    return shares


def _reference(
    items: ItemTable,
    campaign_item: list[int],
    value: ValueModel,
    batch: RequestBatch,
    interest: NDArray[np.float32],
    affinity: NDArray[np.float32],
    live: NDArray[np.bool_],
    requires_match: bool,
) -> tuple[list[dict[int, float]], list[dict[int, float]]]:
    """Per request, the exact score and the relevance feature of every live campaign that may
    show there (on search with ``requires_match``, those with a query word in the title or on
    the query's topic)."""
    term_category = _term_categories(items)
    titles = items.title_terms.tolist()
    scores: list[dict[int, float]] = []
    features: list[dict[int, float]] = []
    for r in range(len(batch)):
        s = int(batch.surface[r])
        words = [int(w) for w in batch.query_terms[r] if w >= 0]
        relevance = [0.0] * items.n_categories
        if s == Surface.SEARCH and words:
            topic = [sum(term_category[w][g] for w in words) for g in range(items.n_categories)]
            total = sum(topic)
            if total > 0:
                relevance = [(1.0 - WORD_SHARE) * t / total for t in topic]
        context = int(batch.context_item[r])
        if s in CONTEXT_SURFACES and context >= 0:
            relevance[int(items.category[context])] = 1.0
        iw = float(value.interest_weight[s])
        aw = float(value.affinity_weight[s])
        rw = float(value.relevance_weight[s])
        score: dict[int, float] = {}
        feature: dict[int, float] = {}
        for c, item in enumerate(campaign_item):
            if not live[c]:
                continue
            g = int(items.category[item])
            cell = (
                iw * math.log(float(interest[r, g]) + UNSEEN_SHARE)
                + aw * float(affinity[r, g])
                + rw * relevance[g]
            )
            share = sum(1 for w in words if w in titles[item]) / len(words) if words else 0.0
            if requires_match and s == Surface.SEARCH and relevance[g] + share == 0:
                continue  # search shows only ads that answer the query
            score[c] = cell + float(value.campaign_value[s, c]) + rw * WORD_SHARE * share
            feature[c] = relevance[g] + WORD_SHARE * share
        scores.append(score)
        features.append(feature)
    return scores, features


def _assert_top_k(
    found: Candidates, scores: list[dict[int, float]], features: list[dict[int, float]], k: int
) -> None:
    """Each row holds the top ``k`` live campaigns by exact score, best first, ``-1`` padded,
    with the relevance feature as score; near-ties (to float32 precision) may come either way."""
    tol = 1e-4
    assert found.campaign.shape == found.score.shape == (len(scores), k)
    for r, (score, feature) in enumerate(zip(scores, features, strict=True)):
        row = found.campaign[r].tolist()
        listed = _found(found.campaign[r])
        assert row == listed + [-1] * (k - len(listed))
        assert len(set(listed)) == len(listed)
        assert set(listed) <= set(score)  # live campaigns only
        assert len(listed) == min(k, len(score))
        got = [score[c] for c in listed]
        assert all(a >= b - tol for a, b in itertools.pairwise(got))
        left = [v for c, v in score.items() if c not in listed]
        if left and got:
            assert got[-1] >= max(left) - tol
        # Without near-ties the list is exactly the reference's.
        ranked = sorted(score, key=lambda c: -score[c])
        values = sorted(score.values(), reverse=True)[: k + 1]
        if all(a - b > tol for a, b in itertools.pairwise(values)):
            assert listed == ranked[:k]
        np.testing.assert_allclose(
            found.score[r, : len(listed)], [feature[c] for c in listed], rtol=1e-5, atol=1e-5
        )
        assert np.all(found.score[r, len(listed) :] == 0.0)


def _random_value(rng: np.random.Generator, n_campaigns: int) -> ValueModel:
    return ValueModel(
        interest_weight=rng.uniform(0.1, 2.0, N_SURFACES).astype(np.float32),
        affinity_weight=rng.normal(0.0, 1.0, N_SURFACES).astype(np.float32),
        relevance_weight=rng.uniform(0.0, 3.0, N_SURFACES).astype(np.float32),
        campaign_value=rng.normal(0.0, 1.0, (N_SURFACES, n_campaigns)).astype(np.float32),
    )


def _random_batch(
    rng: np.random.Generator, items: ItemTable, n: int, n_words: int
) -> tuple[RequestBatch, NDArray[np.float32], NDArray[np.float32]]:
    """Page views on every surface: queries (some empty, some words in no title) on search,
    context items (some unknown) on item pages; interest with zeros, random affinity."""
    surface = rng.integers(0, N_SURFACES, n).astype(np.int8)
    query = np.full((n, n_words), -1, dtype=np.int32)
    search = surface == Surface.SEARCH
    query[search] = rng.integers(-1, items.n_terms, (int(search.sum()), n_words))
    context = np.full(n, -1, dtype=np.int32)
    on_item = np.isin(surface, CONTEXT_SURFACES)
    context[on_item] = rng.integers(-1, len(items), int(on_item.sum()))
    batch = RequestBatch(
        request_id=np.arange(n, dtype=np.int64),
        time=np.zeros(n),
        surface=surface,
        user=np.zeros(n, dtype=np.int32),
        query_terms=query,
        context_item=context,
        n_slots=np.ones(n, dtype=np.int16),
    )
    interest = rng.dirichlet(np.ones(items.n_categories), n) * (
        rng.random((n, items.n_categories)) < 0.7
    )
    affinity = rng.normal(0.0, 1.0, (n, items.n_categories))
    return batch, interest.astype(np.float32), affinity.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The exact score, against the reference.


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    extra_k=st.integers(0, 4),
    n_requests=st.integers(0, 12),
    requires_match=st.booleans(),
)
def test_a_budget_covering_every_campaign_gives_the_exact_top_k(
    seed: int, extra_k: int, n_requests: int, requires_match: bool
) -> None:
    """On the hand-made catalog, with a learned-looking value model and a budget (``k`` times
    the campaigns scored per slot) covering every campaign, every row is the brute-force top
    ``k`` by the documented score."""
    rng = np.random.default_rng(seed)
    k = math.ceil(N_CAMPAIGNS / SCORED_PER_SLOT) + extra_k
    retriever = _retriever(k=k, requires_match=requires_match)
    value = _random_value(rng, N_CAMPAIGNS)
    retriever.update(value)
    assert retriever.value is value
    items = _items()
    batch, interest, affinity = _random_batch(rng, items, n_requests, 3)
    live = rng.random(N_CAMPAIGNS) < 0.8
    found = retriever.retrieve(batch, interest=interest, affinity=affinity, live=live)
    scores, features = _reference(
        items, CAMPAIGN_ITEM, value, batch, interest, affinity, live, requires_match
    )
    _assert_top_k(found, scores, features, k)


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    n_items=st.integers(1, 40),
    n_categories=st.integers(1, 6),
    n_requests=st.integers(1, 10),
    extra_k=st.integers(0, 3),
    requires_match=st.booleans(),
)
def test_random_catalogs_give_the_exact_top_k(
    seed: int,
    n_items: int,
    n_categories: int,
    n_requests: int,
    extra_k: int,
    requires_match: bool,
) -> None:
    """Random catalogs (repeated title words, words in many categories, empty categories): the
    same brute-force top ``k`` when the budget covers every campaign."""
    rng = np.random.default_rng(seed)
    n_terms = int(rng.integers(1, 25))
    items = ItemTable(
        category=rng.integers(0, n_categories, n_items).astype(np.int32),
        merchant=np.zeros(n_items, dtype=np.int32),
        price=rng.uniform(1, 100, n_items),
        title_terms=rng.integers(-1, n_terms, (n_items, 4)).astype(np.int32),
        n_categories=n_categories,
        n_terms=n_terms,
    )
    campaign_item = rng.choice(n_items, size=int(rng.integers(1, n_items + 1)), replace=False)
    n_campaigns = len(campaign_item)
    k = math.ceil(n_campaigns / SCORED_PER_SLOT) + extra_k
    retriever = Retriever(
        items=items,
        campaign_item=campaign_item.astype(np.int32),
        k=k,
        search_requires_match=requires_match,
    )
    value = _random_value(rng, n_campaigns)
    retriever.update(value)
    batch, interest, affinity = _random_batch(rng, items, n_requests, 3)
    live = rng.random(n_campaigns) < 0.8
    found = retriever.retrieve(batch, interest=interest, affinity=affinity, live=live)
    scores, features = _reference(
        items, campaign_item.tolist(), value, batch, interest, affinity, live, requires_match
    )
    _assert_top_k(found, scores, features, k)


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 3))
def test_a_short_budget_still_finds_the_best_campaign(seed: int, k: int) -> None:
    """Where a campaign's value is the same on every surface and there are no query words, a
    cell's bound is a true bound: the best campaign is the first of the best cell, so the top
    campaign is exact even when the budget covers only a few of many campaigns."""
    rng = np.random.default_rng(seed)
    n_items, n_categories = 80, 6
    items = ItemTable(
        category=rng.integers(0, n_categories, n_items).astype(np.int32),
        merchant=np.zeros(n_items, dtype=np.int32),
        price=np.ones(n_items),
        title_terms=rng.integers(-1, 10, (n_items, 3)).astype(np.int32),
        n_categories=n_categories,
        n_terms=10,
    )
    campaign_item = np.arange(n_items, dtype=np.int32)
    retriever = Retriever(items=items, campaign_item=campaign_item, k=k)
    each = rng.normal(0.0, 1.0, n_items).astype(np.float32)
    value = ValueModel(
        interest_weight=rng.uniform(0.1, 2.0, N_SURFACES).astype(np.float32),
        affinity_weight=rng.normal(0.0, 1.0, N_SURFACES).astype(np.float32),
        relevance_weight=rng.uniform(0.0, 3.0, N_SURFACES).astype(np.float32),
        campaign_value=np.tile(each, (N_SURFACES, 1)),
    )
    retriever.update(value)
    batch, interest, affinity = _random_batch(rng, items, 8, 0)
    live = rng.random(n_items) < 0.7
    found = retriever.retrieve(batch, interest=interest, affinity=affinity, live=live)
    scores, _ = _reference(
        items, campaign_item.tolist(), value, batch, interest, affinity, live, False
    )
    for r, score in enumerate(scores):
        listed = _found(found.campaign[r])
        assert len(listed) == min(k, len(score))
        if score:
            assert score[listed[0]] >= max(score.values()) - 1e-4
            got = [score[c] for c in listed]
            assert all(a >= b - 1e-4 for a, b in itertools.pairwise(got))


# ---------------------------------------------------------------------------------------------
# The hand-made catalog.


def test_the_default_value_model_is_neutral() -> None:
    value = _retriever().value
    neutral = ValueModel.neutral(N_CAMPAIGNS)
    for name, array in neutral.arrays().items():
        assert np.array_equal(value.arrays()[name], array), name
    assert neutral.campaign_value.shape == (N_SURFACES, N_CAMPAIGNS)


@pytest.mark.parametrize(("terms", "topic"), [([10], [5, 6]), ([7], [7, 8]), ([6, 10], [5, 6])])
def test_a_search_query_topic_ranks_first(terms: list[int], topic: list[int]) -> None:
    """Term 10 is only in category 2's non-promoted titles, term 7 only in category 3's: each
    query's category is found, even its campaigns without the word, and carries relevance; the
    other categories answer nothing and are not shown on search at all."""
    found = _retrieve(_retriever(k=N_CAMPAIGNS), _batch([Surface.SEARCH], [terms]))
    row = _found(found.campaign[0])
    assert sorted(row) == topic
    assert np.all(found.score[0, :2] >= 0.5 - 1e-6)
    assert np.all(found.campaign[0, 2:] == -1) and np.all(found.score[0, 2:] == 0.0)


def test_without_the_rule_search_ranks_off_topic_ads_after_the_topic() -> None:
    """The default: a query on category 2 lists category 2's campaigns first, then the other
    categories' (shoppers click a liked item off the query too), with no relevance."""
    found = _retrieve(
        _retriever(k=N_CAMPAIGNS, requires_match=False), _batch([Surface.SEARCH], [[10]])
    )
    row = _found(found.campaign[0])
    assert sorted(row[:2]) == [5, 6]
    assert sorted(row) == list(range(N_CAMPAIGNS))
    assert np.all(found.score[0, :2] >= 0.5 - 1e-6) and np.all(found.score[0, 2:] == 0.0)


def test_the_topic_beats_a_mild_interest_elsewhere() -> None:
    """The shopper leans to category 3 and the query to category 2: search shows category 2,
    and the home feed, with no query, category 3."""
    interest = np.array([[0.2, 0.2, 0.25, 0.35]] * 2, dtype=np.float32)
    batch = _batch([Surface.SEARCH, Surface.HOME_FEED], [[10], []])
    found = _retrieve(_retriever(k=4), batch, interest=interest)
    assert sorted(_found(found.campaign[0])) == [5, 6]
    assert sorted(_found(found.campaign[1])[:2]) == [7, 8]


def test_a_word_in_one_campaign_title_ranks_it_first() -> None:
    """Term 9 is in campaign 3's title only; its category-mates 2 and 4 share the topic, not the
    word: 3 scores topic and word (0.5 + 0.5), 2 and 4 the topic alone (0.5)."""
    found = _retrieve(_retriever(k=N_CAMPAIGNS), _batch([Surface.SEARCH], [[9]]))
    row = _found(found.campaign[0])
    assert row[0] == 3
    assert sorted(row[1:3]) == [2, 4]
    np.testing.assert_allclose(found.score[0, :3], [1.0, 0.5, 0.5], atol=1e-6)
    assert found.score[0, 0] > found.score[0, 1]


def test_a_word_lifts_campaigns_above_their_category_mates() -> None:
    """Term 5 is in campaigns 2 and 4's titles (category 1); campaign 3 shares only the category."""
    found = _retrieve(_retriever(k=N_CAMPAIGNS), _batch([Surface.SEARCH], [[5]]))
    row = _found(found.campaign[0])
    assert sorted(row[:2]) == [2, 4]
    assert row[2] == 3
    assert found.score[0, 1] > found.score[0, 2] > found.score[0, 3]


def test_a_half_matched_query_scores_half_the_words() -> None:
    """Query (9, 8): campaign 3 holds both words, campaigns 1, 6, 8 only term 8."""
    found = _retrieve(_retriever(k=N_CAMPAIGNS), _batch([Surface.SEARCH], [[9, 8]]))
    assert found.campaign[0, 0] == 3
    score = dict(zip(_found(found.campaign[0]), found.score[0].tolist(), strict=False))
    # Term 9: category 1 only; term 8: categories 0, 0, 1, 2, 3 of its five uses.
    topic = np.array([0.4, 1.2, 0.2, 0.2]) / 2.0 * 0.5
    assert score[3] == pytest.approx(topic[1] + 0.5, abs=1e-6)
    for c, g in ((1, 0), (6, 2), (8, 3)):
        assert score[c] == pytest.approx(topic[g] + 0.25, abs=1e-6)
    for c, g in ((0, 0), (2, 1), (4, 1), (5, 2), (7, 3)):
        assert score[c] == pytest.approx(topic[g], abs=1e-6)


@pytest.mark.parametrize("surface", CONTEXT_SURFACES)
def test_item_pages_retrieve_the_same_category_first(surface: Surface) -> None:
    """The shopper leans to category 3; on the page of item 2 (category 0) category 0 comes
    first, then category 3, while the home feed follows the shopper."""
    interest = np.array([[0.2, 0.2, 0.2, 0.4]] * 2, dtype=np.float32)
    batch = _batch([surface, Surface.HOME_FEED], context=[2, -1])
    found = _retrieve(_retriever(k=N_CAMPAIGNS), batch, interest=interest)
    page, feed = _found(found.campaign[0]), _found(found.campaign[1])
    assert sorted(page[:2]) == [0, 1]
    assert sorted(page[2:4]) == [7, 8]
    assert sorted(feed[:2]) == [7, 8]
    assert found.score[0, :2].tolist() == [1.0, 1.0]
    assert np.all(found.score[0, 2:] == 0.0)
    assert np.all(found.score[1] == 0.0)


def test_an_unknown_context_item_gives_no_relevance() -> None:
    found = _retrieve(_retriever(k=N_CAMPAIGNS), _batch([Surface.DETAIL], context=[-1]))
    assert sorted(_found(found.campaign[0])) == list(range(N_CAMPAIGNS))
    assert np.all(found.score == 0.0)


def test_campaign_values_order_each_surface_on_its_own() -> None:
    """Per-surface values: on the detail page campaign 2 leads category 1, on the cart feed 4."""
    retriever = _retriever(k=N_CAMPAIGNS)
    value = ValueModel.neutral(N_CAMPAIGNS)
    campaign_value = value.campaign_value.copy()
    campaign_value[Surface.DETAIL, [2, 3, 4]] = [0.9, 0.2, -0.5]
    campaign_value[Surface.CART_FEED, [2, 3, 4]] = [-0.5, 0.2, 0.9]
    retriever.update(
        ValueModel(
            interest_weight=value.interest_weight,
            affinity_weight=value.affinity_weight,
            relevance_weight=value.relevance_weight,
            campaign_value=campaign_value,
        )
    )
    found = _retrieve(retriever, _batch([Surface.DETAIL, Surface.CART_FEED], context=[5, 5]))
    assert _found(found.campaign[0])[:3] == [2, 3, 4]
    assert _found(found.campaign[1])[:3] == [4, 3, 2]


def test_affinity_counts_only_with_its_weight() -> None:
    retriever = _retriever(k=2)
    batch = _batch([Surface.HOME_FEED])
    affinity = np.array([[0.0, 0.0, 3.0, 0.0]], dtype=np.float32)
    interest = np.array([[0.1, 0.1, 0.1, 0.7]], dtype=np.float32)
    neutral = retriever.retrieve(batch, interest=interest, affinity=affinity, live=_all_live())
    assert sorted(_found(neutral.campaign[0])) == [7, 8]
    value = ValueModel.neutral(N_CAMPAIGNS)
    retriever.update(
        ValueModel(
            interest_weight=value.interest_weight,
            affinity_weight=np.ones(N_SURFACES, dtype=np.float32),
            relevance_weight=value.relevance_weight,
            campaign_value=value.campaign_value,
        )
    )
    learned = retriever.retrieve(batch, interest=interest, affinity=affinity, live=_all_live())
    assert sorted(_found(learned.campaign[0])) == [5, 6]


def test_a_strong_affinity_lifts_a_category_the_shopper_never_clicked() -> None:
    """Category 3 holds most of the shopper's clicks, category 1 a sliver and category 2 none;
    with the learned affinity of category 2 high, category 2 comes next after category 3: a
    category outside the profile is not buried below every one inside it."""
    retriever = _retriever(k=4)
    value = ValueModel.neutral(N_CAMPAIGNS)
    retriever.update(
        ValueModel(
            interest_weight=np.ones(N_SURFACES, dtype=np.float32),
            affinity_weight=np.ones(N_SURFACES, dtype=np.float32),
            relevance_weight=value.relevance_weight,
            campaign_value=value.campaign_value,
        )
    )
    interest = np.array([[0.0, 0.02, 0.0, 0.98]], dtype=np.float32)
    batch = _batch([Surface.HOME_FEED])
    for lifted, second in ((3.0, {5, 6}), (0.0, {2, 3, 4})):
        affinity = np.array([[0.0, 0.0, lifted, 0.0]], dtype=np.float32)
        found = retriever.retrieve(batch, interest=interest, affinity=affinity, live=_all_live())
        row = _found(found.campaign[0])
        assert set(row[:2]) == {7, 8} and set(row[2:]) <= second and len(row) == 4


def test_campaigns_that_are_not_live_are_never_returned() -> None:
    retriever = _retriever(k=N_CAMPAIGNS + 3)
    live = _all_live()
    live[[3, 5, 7]] = False
    batch = _batch(
        [Surface.SEARCH, Surface.SEARCH, Surface.HOME_FEED, Surface.DETAIL, Surface.OFFSITE],
        [[9], [10, 8], [], [], []],
        [-1, -1, -1, 4, -1],
    )
    found = _retrieve(retriever, batch, live=live)
    listed = found.campaign[found.valid]
    assert not np.isin(listed, [3, 5, 7]).any()
    # Search rows list the live campaigns that answer the query, the others every live one.
    assert sorted(_found(found.campaign[0])) == [2, 4]  # term 9's topic is category 1
    for row in range(1, len(batch)):  # term 8 is used in every category: all on its topic
        assert sorted(_found(found.campaign[row])) == np.flatnonzero(live).tolist()
    # Liveness is re-read on every call: the same retriever lists them again when live.
    again = _retrieve(retriever, batch)
    assert again.campaign[0, 0] == 3
    assert 7 in again.campaign[2]
    nothing = _retrieve(retriever, batch, live=np.zeros(N_CAMPAIGNS, dtype=bool))
    assert np.all(nothing.campaign == -1) and np.all(nothing.score == 0.0)


def test_ranks_are_best_first_and_minus_infinity_on_padding() -> None:
    live = _all_live()
    live[[1, 4]] = False
    batch = _batch([Surface.SEARCH, Surface.HOME_FEED, Surface.DETAIL], [[9], [], []], [-1, -1, 4])
    found = _retrieve(_retriever(k=N_CAMPAIGNS), batch, live=live)
    assert found.rank.shape == found.campaign.shape and found.rank.dtype == np.float32
    assert np.all(np.isfinite(found.rank[found.valid]))
    assert np.all(found.rank[~found.valid] == -np.inf)
    assert np.all(found.rank[:, :-1] >= found.rank[:, 1:])


def test_each_live_set_gets_its_own_index_and_a_new_value_model_rebuilds_them() -> None:
    """Retrieval keeps an index per live set; a call with any earlier set, after others, and
    a call after new value weights, answer as a fresh retriever would."""
    batch = _batch([Surface.HOME_FEED, Surface.DETAIL, Surface.SEARCH], [[], [], [8]], [-1, 4, -1])
    rng = np.random.default_rng(3)
    masks = [rng.random(N_CAMPAIGNS) < share for share in (0.9, 0.6, 0.3)]
    kept = _retriever(k=4, requires_match=False)
    first = _retrieve(kept, batch, live=masks[0])
    for mask in masks[1:]:
        _retrieve(kept, batch, live=mask)
    again = _retrieve(kept, batch, live=masks[0])
    np.testing.assert_array_equal(again.campaign, first.campaign)
    value = _random_value(rng, N_CAMPAIGNS)
    kept.update(value)
    fresh = _retriever(k=4, requires_match=False)
    fresh.update(value)
    for mask in masks:
        np.testing.assert_array_equal(
            _retrieve(kept, batch, live=mask).campaign, _retrieve(fresh, batch, live=mask).campaign
        )


def test_output_shapes_and_padding() -> None:
    k = 6
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
    live = np.zeros(N_CAMPAIGNS, dtype=bool)
    live[[0, 2, 5, 7]] = True  # fewer live campaigns than k
    found = _retrieve(_retriever(k=k), batch, live=live)
    assert found.campaign.shape == found.score.shape == (len(batch), k)
    assert found.campaign.dtype == np.int32
    assert found.score.dtype == np.float32
    for r, row in enumerate(found.campaign):
        listed = _found(row)
        assert row.tolist() == listed + [-1] * (k - len(listed))
        if surfaces[r] != Surface.SEARCH:
            assert sorted(listed) == [0, 2, 5, 7]
    assert np.all(found.score[~found.valid] == 0.0)
    assert _found(found.campaign[0]) == [5] and _found(found.campaign[6]) == [7]
    assert found.campaign[2, 0] == 5 and found.campaign[4, 0] == 0


def test_batches_of_one_surface_and_empty_batches() -> None:
    retriever = _retriever()
    for batch in (_batch([Surface.SEARCH], [[9]]), _batch([Surface.OFFSITE]), _batch([])):
        found = _retrieve(retriever, batch)
        assert found.campaign.shape == found.score.shape == (len(batch), 6)


def test_k_overrides_the_depth_for_one_call_only() -> None:
    retriever = _retriever(k=2)
    batch = _batch([Surface.SEARCH, Surface.HOME_FEED, Surface.DETAIL], [[9], [], []], [-1, -1, 9])
    short = _retrieve(retriever, batch)
    deep = _retrieve(retriever, batch, k=N_CAMPAIGNS)
    again = _retrieve(retriever, batch)
    assert short.campaign.shape == again.campaign.shape == (len(batch), 2)
    assert np.array_equal(short.campaign[0], again.campaign[0])
    assert deep.campaign.shape == deep.score.shape == (len(batch), N_CAMPAIGNS)
    assert retriever.k == 2
    assert deep.campaign[0, 0] == short.campaign[0, 0] == 3
    assert sorted(_found(deep.campaign[0])) == [2, 3, 4]  # term 9's topic, category 1
    for row in (1, 2):
        assert sorted(_found(deep.campaign[row])) == list(range(N_CAMPAIGNS))
    assert sorted(_found(deep.campaign[2])[:2]) == [5, 6]  # item 9 is in category 2


@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_is_rejected(k: int) -> None:
    retriever = _retriever()
    with pytest.raises(ValueError):
        _retrieve(retriever, _batch([Surface.HOME_FEED]), k=k)
    with pytest.raises(ValueError):
        _retriever(k=k)


def _with(value: ValueModel, **arrays: NDArray[np.float32]) -> ValueModel:
    return ValueModel(**{**value.arrays(), **arrays})


@pytest.mark.parametrize(
    "campaign_value",
    [
        np.zeros((N_SURFACES, N_CAMPAIGNS + 1), dtype=np.float32),
        np.zeros((N_SURFACES - 1, N_CAMPAIGNS), dtype=np.float32),
        np.zeros(N_CAMPAIGNS, dtype=np.float32),
        np.zeros((N_CAMPAIGNS, N_SURFACES), dtype=np.float32),
    ],
)
def test_update_rejects_campaign_values_of_the_wrong_shape(
    campaign_value: NDArray[np.float32],
) -> None:
    retriever = _retriever()
    before = retriever.value
    with pytest.raises(ValueError):
        retriever.update(_with(before, campaign_value=campaign_value))
    assert retriever.value is before


@pytest.mark.parametrize("name", ["interest_weight", "affinity_weight", "relevance_weight"])
@pytest.mark.parametrize("size", [1, N_SURFACES - 1, N_SURFACES + 1])
def test_update_rejects_weights_of_the_wrong_shape(name: str, size: int) -> None:
    retriever = _retriever()
    with pytest.raises(ValueError):
        retriever.update(_with(retriever.value, **{name: np.ones(size, dtype=np.float32)}))


@pytest.mark.parametrize(
    "name", ["interest_weight", "affinity_weight", "relevance_weight", "campaign_value"]
)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_update_rejects_non_finite_values(name: str, bad: float) -> None:
    retriever = _retriever()
    before = retriever.value
    array = before.arrays()[name].copy()
    array.flat[-1] = bad
    with pytest.raises(ValueError):
        retriever.update(_with(before, **{name: array}))
    assert retriever.value is before
    # The retriever still works on the value model it had.
    found = _retrieve(retriever, _batch([Surface.SEARCH], [[9]]))
    assert found.campaign[0, 0] == 3
