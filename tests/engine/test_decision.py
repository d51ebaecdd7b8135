"""``Engine.decide`` and ``Engine.refresh`` on the tiny simulated market.

The simulator only supplies realistic inputs (catalog, campaigns, page views, clicks); every
expectation comes from the engine's contract (DESIGN.md §5, ``engine.auction``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.domain import CampaignMode
from quanzhan.engine import decision as decision_module
from quanzhan.engine.batch import Decision, RequestBatch
from quanzhan.engine.config import SurfaceRules
from quanzhan.engine.decision import Decided, Engine
from quanzhan.engine.log import EventLog, Impressions
from quanzhan.engine.opportunity import Opportunities
from quanzhan.engine.organic import OrganicEvents, OrganicEvidence
from quanzhan.engine.prediction import ServedAffinity
from quanzhan.engine.profiles import UserProfiles
from quanzhan.sim.config import ScenarioConfig, load_scenario
from quanzhan.sim.market import Market, MarketView

SEED = 1
PROPERTY = settings(max_examples=40, deadline=None)


@dataclass(frozen=True)
class World:
    config: ScenarioConfig
    view: MarketView
    max_slots: int
    batch: RequestBatch  # a mid-morning tick, a few rows given no slots and no known user
    later: RequestBatch  # another tick, for the refresh tests


def _take(batch: RequestBatch, rows: NDArray[np.int64] | slice) -> RequestBatch:
    return RequestBatch(**{f.name: getattr(batch, f.name)[rows] for f in fields(RequestBatch)})


def _engine(world: World, *, seed: int = SEED) -> Engine:
    view = world.view
    return Engine(
        config=world.config.engine,
        items=view.items,
        campaigns=view.campaigns,
        n_users=view.n_users,
        max_slots=world.max_slots,
        history_user=view.history_user,
        history_item=view.history_item,
        seed=seed,
    )


@pytest.fixture(scope="module")
def world() -> World:
    tiny = load_scenario("tiny")
    # Reserves high enough to bind on some auctions: a rule the properties below must cover.
    rules = {name: SurfaceRules(reserve=1.0) for name in tiny.engine.surfaces}
    config = tiny.model_copy(update={"engine": tiny.engine.model_copy(update={"surfaces": rules})})
    market = Market(config)
    view = market.reset(seed=SEED)
    max_slots = max(page.ad_slots for page in config.traffic.pages.values())
    ticks = [market.next_requests() for _ in range(21)]
    assert all(t is not None for t in ticks)
    batch, later = ticks[20], ticks[12]
    assert batch is not None and later is not None
    n_slots = batch.n_slots.copy()
    n_slots[::17] = 0
    user = batch.user.copy()
    user[5::23] = -1
    batch = RequestBatch(
        request_id=batch.request_id,
        time=batch.time,
        surface=batch.surface,
        user=user,
        query_terms=batch.query_terms,
        context_item=batch.context_item,
        n_slots=n_slots,
    )
    assert len(batch) > 200
    assert len(np.unique(batch.surface)) == 6
    return World(config, view, max_slots, batch, later)


@pytest.fixture(scope="module")
def engine(world: World) -> Engine:
    return _engine(world)


@dataclass(frozen=True)
class Money:
    multiplier: NDArray[np.float64]
    remaining: NDArray[np.float64]
    active: NDArray[np.bool_] | None


def _money(view: MarketView, seed: int, *, exhausted: float = 0.2, paused: float = 0.1) -> Money:
    """Multipliers around break-even; some budgets spent out, some nearly, some paused."""
    rng = np.random.default_rng(seed)
    campaigns = view.campaigns
    n = len(campaigns)
    multiplier = rng.uniform(0.3, 4.0, n) / campaigns.target_roi
    share = rng.choice(
        [0.0, 1e-3, 0.01, 0.3, 1.0], n, p=[exhausted, 0.1, 0.1, 0.2, 0.6 - exhausted]
    )
    remaining = campaigns.budget * share
    active = rng.random(n) >= paused if paused > 0 else None
    return Money(multiplier, remaining, active)


def _decided(
    engine: Engine, batch: RequestBatch, money: Money, *, with_menus: bool = False
) -> Decided:
    return engine.decide(
        batch,
        multiplier=money.multiplier,
        remaining_budget=money.remaining,
        active=money.active,
        with_menus=with_menus,
    )


def _decide(engine: Engine, batch: RequestBatch, money: Money) -> Decision:
    decided = _decided(engine, batch, money)
    decision, x_ctr, x_cvr = decided.decision, decided.x_ctr, decided.x_cvr
    s = engine.max_slots
    assert decision.campaign.shape == (len(batch), s)
    assert x_ctr.shape[:2] == x_cvr.shape[:2] == (len(batch), s)
    return decision


def _assert_rows_equal(whole: Decision, rows: NDArray[np.int64], part: Decision) -> None:
    for f in fields(Decision):
        np.testing.assert_array_equal(
            getattr(whole, f.name)[rows], getattr(part, f.name), err_msg=f.name
        )


@pytest.fixture(scope="module")
def money(world: World, engine: Engine) -> Money:
    money = _money(world.view, seed=7)
    # Leave a few of the campaigns that win with the budgets as drawn just under their bid, so
    # that some winners bid what is left of their budget.
    won = _decide(engine, world.batch, money)
    filled = won.campaign >= 0
    campaign, first = np.unique(won.campaign[filled], return_index=True)
    bid = won.bid[filled][first]
    chosen = np.random.default_rng(8).choice(len(campaign), min(12, len(campaign)), replace=False)
    remaining = money.remaining.copy()
    remaining[campaign[chosen]] = 0.97 * bid[chosen]
    return replace(money, remaining=remaining)


@pytest.fixture(scope="module")
def decided(world: World, engine: Engine, money: Money) -> Decision:
    return _decide(engine, world.batch, money)


def test_the_setting_exercises_the_rules(world: World, decided: Decision, money: Money) -> None:
    """Enough ads are shown, and enough campaigns are out, for the properties to mean something."""
    assert (decided.campaign >= 0).sum() > len(world.batch)
    assert money.active is not None
    dead = (money.remaining <= 0) | ~money.active
    assert dead.sum() >= 10
    filled = decided.campaign >= 0
    row, slot = np.nonzero(filled)
    c = decided.campaign[row, slot]
    assert (world.view.campaigns.mode[c] == CampaignMode.MANUAL_CPC).any()
    # Some winners' bids are capped by what is left of their budget.
    assert np.isclose(decided.bid[row, slot], money.remaining[c]).sum() >= 5
    # Some prices stand at the reserve, some above it.
    reserve = np.array(world.config.engine.reserve_by_surface())[world.batch.surface[row]]
    at_reserve = np.isclose(decided.price[row, slot], reserve)
    assert 5 <= at_reserve.sum() < len(row) - 5


def test_a_batch_decides_each_request_as_if_alone(
    world: World, engine: Engine, money: Money, decided: Decision
) -> None:
    for i in range(len(world.batch)):
        rows = np.array([i])
        _assert_rows_equal(decided, rows, _decide(engine, _take(world.batch, rows), money))


def test_a_batch_decides_as_its_two_halves(
    world: World, engine: Engine, money: Money, decided: Decision
) -> None:
    half = len(world.batch) // 2 + 3
    first, second = np.arange(half), np.arange(half, len(world.batch))
    _assert_rows_equal(decided, first, _decide(engine, _take(world.batch, first), money))
    _assert_rows_equal(decided, second, _decide(engine, _take(world.batch, second), money))


@PROPERTY
@given(st.data())
def test_any_subset_in_any_order_decides_the_same(
    world: World, engine: Engine, money: Money, decided: Decision, data: st.DataObject
) -> None:
    n = len(world.batch)
    rows = np.array(
        data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=40, unique=True)),
        dtype=np.int64,
    )
    _assert_rows_equal(decided, rows, _decide(engine, _take(world.batch, rows), money))


def test_batches_larger_than_a_chunk_decide_the_same(
    world: World, engine: Engine, money: Money, decided: Decision
) -> None:
    """The engine cuts large batches into chunks; every row still decides as in a small batch."""
    n = len(world.batch)
    rows = np.arange(decision_module._CHUNK + n + 5) % n
    big = _decide(engine, _take(world.batch, rows), money)
    for f in fields(Decision):
        np.testing.assert_array_equal(
            getattr(big, f.name), getattr(decided, f.name)[rows], err_msg=f.name
        )


def test_an_empty_batch(world: World, engine: Engine, money: Money) -> None:
    empty = _decide(engine, _take(world.batch, slice(0, 0)), money)
    assert empty.campaign.shape == (0, world.max_slots)


def _check_decision(world: World, engine: Engine, batch: RequestBatch, money: Money) -> Decision:
    """Every per-slot rule of the decision contract, for one batch and one money state."""
    d = _decide(engine, batch, money)
    campaigns = world.view.campaigns
    reserve = np.array(world.config.engine.reserve_by_surface())[batch.surface]
    floor = np.array(engine.config.floor_by_surface())[batch.surface]
    filled = d.campaign >= 0
    row, slot = np.nonzero(filled)
    c = d.campaign[row, slot]

    # Empty slots: nothing shown, nothing charged; filled slots are a prefix up to n_slots.
    assert np.all(d.item[~filled] == -1)
    assert np.all(d.price[~filled] == 0.0) and np.all(d.bid[~filled] == 0.0)
    assert np.all(np.diff(filled.astype(np.int8), axis=1) <= 0)
    assert np.all(filled.sum(axis=1) <= batch.n_slots)
    assert not filled[batch.n_slots == 0].any()

    # Nobody out of budget or paused ever wins, nor even enters the landscape.
    live = money.remaining > 0
    if money.active is not None:
        live &= money.active
    assert live[c].all()
    listed = d.landscape_campaign[d.landscape_campaign >= 0]
    assert live[listed].all()

    # The shown item is the campaign's; never the same item twice on a page.
    np.testing.assert_array_equal(d.item[row, slot], campaigns.item[c])
    for r in np.unique(row):
        items = d.item[r][d.item[r] >= 0]
        assert len(np.unique(items)) == len(items)

    # Bids: k * pCVR * price for full-site campaigns, the fixed CPC for manual ones, never past
    # the remaining budget.
    bid = d.bid[row, slot]
    assert np.all(bid <= money.remaining[c])
    value = money.multiplier[c] * d.pcvr[row, slot] * world.view.items.price[campaigns.item[c]]
    wanted = np.where(campaigns.mode[c] == CampaignMode.MANUAL_CPC, campaigns.manual_cpc[c], value)
    np.testing.assert_allclose(bid, np.minimum(wanted, money.remaining[c]), rtol=1e-9)

    # Prices: within [reserve, bid]; generalized second price on the first-position pCTR.
    price = d.price[row, slot]
    assert np.all(price <= bid)
    assert np.all(price >= reserve[row] - 1e-12)
    factor = engine.predictor.position_factor(batch.surface[row], slot.astype(np.int64))
    pctr_first = d.pctr[row, slot] / factor
    assert np.all(pctr_first >= floor[row])
    ecpm = bid * pctr_first
    np.testing.assert_allclose(d.landscape_ecpm[row, slot], ecpm, rtol=1e-9)
    np.testing.assert_array_equal(d.landscape_campaign[row, slot], c)
    runner_up = d.landscape_ecpm[row, slot + 1]
    expected = np.minimum(bid, np.maximum(reserve[row], runner_up / pctr_first))
    np.testing.assert_allclose(price, expected, rtol=1e-9)
    # Ranked by eCPM, descending, slot after slot and through the landscape.
    assert np.all(np.diff(d.landscape_ecpm, axis=1) <= 1e-12)
    return d


def test_decision_rules_hold_on_a_tick(
    world: World, engine: Engine, money: Money, decided: Decision
) -> None:
    d = _check_decision(world, engine, world.batch, money)
    for f in fields(Decision):
        np.testing.assert_array_equal(getattr(d, f.name), getattr(decided, f.name))


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    exhausted=st.sampled_from([0.0, 0.2, 0.5, 0.6]),
    paused=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_decision_rules_hold_whatever_the_budgets(
    world: World, engine: Engine, seed: int, exhausted: float, paused: float
) -> None:
    money = _money(world.view, seed, exhausted=exhausted, paused=paused)
    rows = np.random.default_rng(seed).choice(len(world.batch), 120, replace=False)
    _check_decision(world, engine, _take(world.batch, rows), money)


def test_nobody_wins_when_every_campaign_is_out(world: World, engine: Engine) -> None:
    n = len(world.view.campaigns)
    spent = Money(np.ones(n), np.zeros(n), None)
    assert np.all(_decide(engine, world.batch, spent).campaign == -1)
    paused = Money(np.ones(n), world.view.campaigns.budget.copy(), np.zeros(n, dtype=bool))
    d = _decide(engine, world.batch, paused)
    assert np.all(d.campaign == -1) and np.all(d.price == 0.0)
    assert np.all(d.landscape_campaign == -1)


def test_a_campaign_revived_is_served_again(world: World, engine: Engine, money: Money) -> None:
    """Liveness is an input of each call, not state: pausing everyone does not stick."""
    n = len(world.view.campaigns)
    _decide(engine, world.batch, Money(money.multiplier, np.zeros(n), None))
    again = _decide(engine, world.batch, money)
    np.testing.assert_array_equal(
        again.campaign, _decide(_engine(world), world.batch, money).campaign
    )


def test_requests_without_slots_get_nothing(
    world: World, engine: Engine, money: Money, decided: Decision
) -> None:
    none = world.batch.n_slots == 0
    assert none.any()
    assert np.all(decided.campaign[none] == -1)
    assert np.all(decided.item[none] == -1)
    assert np.all(decided.price[none] == 0.0)
    alone = _decide(engine, _take(world.batch, np.flatnonzero(none)[:1]), money)
    assert np.all(alone.campaign == -1)


def test_the_inputs_need_one_entry_per_campaign(world: World, engine: Engine, money: Money) -> None:
    with pytest.raises(ValueError):
        engine.decide(
            world.batch, multiplier=money.multiplier[:-1], remaining_budget=money.remaining
        )


# --- menus of campaigns out of budget --------------------------------------------------------


def _menus(engine: Engine, batch: RequestBatch, money: Money) -> Decided:
    decided = _decided(engine, batch, money, with_menus=True)
    assert decided.menus is not None
    return decided


def _spent(world: World, money: Money) -> NDArray[np.bool_]:
    listed = np.ones(len(world.view.campaigns), bool) if money.active is None else money.active
    return listed & (money.remaining <= 0)


def test_gathering_menus_changes_nothing_shown(
    world: World, engine: Engine, money: Money, decided: Decision
) -> None:
    """Campaigns out of budget get menus beside the auction, never a candidate's place in it:
    the decision is the one made without menus, field for field."""
    gathered = _menus(engine, world.batch, money)
    for f in fields(Decision):
        np.testing.assert_array_equal(
            getattr(gathered.decision, f.name), getattr(decided, f.name), err_msg=f.name
        )
    menus = gathered.menus
    assert menus is not None
    spent = _spent(world, money)
    assert spent[menus.campaign].sum() > 20, "too few menus of spent campaigns to mean anything"


def test_without_spent_menus_only_the_live_campaigns_get_menus(
    world: World, engine: Engine, money: Money
) -> None:
    """``spent_menus=False`` leaves out the campaigns out of budget, and nothing else: the
    live campaigns' menus and the decision are those made with them."""
    full = _menus(engine, world.batch, money)
    live_only = engine.decide(
        world.batch,
        multiplier=money.multiplier,
        remaining_budget=money.remaining,
        active=money.active,
        with_menus=True,
        spent_menus=False,
    )
    assert full.menus is not None and live_only.menus is not None
    for f in fields(Decision):
        np.testing.assert_array_equal(
            getattr(live_only.decision, f.name), getattr(full.decision, f.name), err_msg=f.name
        )
    spent = _spent(world, money)
    assert not spent[live_only.menus.campaign].any()
    kept = ~spent[full.menus.campaign]
    for f in fields(Opportunities):
        np.testing.assert_array_equal(
            getattr(live_only.menus, f.name), getattr(full.menus, f.name)[kept], err_msg=f.name
        )


def test_menu_terms_price_each_slot_at_its_own_position(
    world: World, engine: Engine, money: Money
) -> None:
    """Value and cost of slot ``j`` are the clicks it brings (pCTR times the learned factor of
    position ``j`` on the menu's surface) times value per click and price per click."""
    menus = _menus(engine, world.batch, money).menus
    assert menus is not None and len(menus) > 0
    value, cost = engine.menu_terms(menus)
    slots = menus.price.shape[1]
    for j in range(slots):
        position = engine.predictor.position_factor(menus.surface, np.full(len(menus), j))
        clicks = position * menus.pctr
        price = world.view.items.price[world.view.campaigns.item[menus.campaign]]
        np.testing.assert_allclose(value[:, j], clicks * menus.pcvr * price, rtol=1e-12)
        np.testing.assert_allclose(cost[:, j], clicks * menus.price[:, j], rtol=1e-12)


def test_menus_of_a_batch_larger_than_a_chunk_are_each_rows_own(
    world: World, engine: Engine, money: Money
) -> None:
    """Chunks of a large batch may take different numbers of spent campaigns beside their
    candidates; every row's menus are still those it has in a small batch."""
    single = _menus(engine, world.batch, money).menus
    n = len(world.batch)
    rows = np.arange(decision_module._CHUNK + n + 5) % n
    big = _menus(engine, _take(world.batch, rows), money).menus
    assert single is not None and big is not None

    def keyed(menus: Opportunities, row: NDArray[np.int64]) -> list[tuple[int, int, bytes]]:
        return sorted(
            (int(r), int(c), p.tobytes())
            for r, c, p in zip(
                row, menus.campaign, np.nan_to_num(menus.price, nan=-1.0), strict=True
            )
        )

    expected = keyed(single, single.row)
    repeats = np.bincount(rows, minlength=n)
    assert keyed(big, rows[big.row]) == sorted(
        entry for entry in expected for _ in range(int(repeats[entry[0]]))
    )


def test_a_spent_campaign_is_priced_against_the_live_bidders(
    world: World, engine: Engine, money: Money
) -> None:
    gathered = _menus(engine, world.batch, money)
    menus, decision = gathered.menus, gathered.decision
    assert menus is not None
    mine = _spent(world, money)[menus.campaign]
    assert np.all(menus.won_slot[mine] == -1)
    assert not np.isin(decision.landscape_campaign, np.flatnonzero(_spent(world, money))).any()
    row = menus.row[mine]
    reserve = np.array(world.config.engine.reserve_by_surface())[world.batch.surface[row]]
    slots = menus.price.shape[1]
    expected = np.maximum(
        reserve[:, None], decision.landscape_ecpm[row, :slots] / menus.pctr[mine, None]
    )
    shown = ~np.isnan(menus.price[mine])
    np.testing.assert_allclose(menus.price[mine][shown], expected[shown])


def test_a_spent_campaign_gets_the_menus_of_the_auctions_it_would_have_entered(
    world: World, money: Money
) -> None:
    """With an index that scores every campaign (candidates twice the campaigns' number
    scored), a spent campaign's menus are in the auctions where, given its budget back, it
    would have been a candidate: the same rows, one campaign at a time."""
    deep = world.config.engine.model_copy(update={"candidates": 40})
    view = world.view
    engine = Engine(
        config=deep, items=view.items, campaigns=view.campaigns, n_users=view.n_users,
        max_slots=world.max_slots, history_user=view.history_user,
        history_item=view.history_item, seed=SEED,
    )  # fmt: skip
    menus = _menus(engine, world.batch, money).menus
    assert menus is not None
    spent = np.flatnonzero(_spent(world, money))
    assert 0 < len(spent) < deep.candidates  # fewer than a list's length: none is cut
    checked = 0
    for campaign in spent[:6]:
        revived = money.remaining.copy()
        revived[campaign] = view.campaigns.budget[campaign]
        again = _menus(engine, world.batch, replace(money, remaining=revived)).menus
        assert again is not None
        np.testing.assert_array_equal(
            np.sort(menus.row[menus.campaign == campaign]),
            np.sort(again.row[again.campaign == campaign]),
            err_msg=f"campaign {campaign}",
        )
        checked += int((menus.campaign == campaign).sum())
    assert checked > 0


# --- learning from the log -------------------------------------------------------------------


def _play(
    world: World, ticks: int, organic: list[OrganicEvents] | None = None
) -> tuple[list[Impressions], float]:
    """Serve the first ``ticks`` of a fresh market with a fresh engine; the impressions logged.
    The organic results shown go to ``organic`` where given."""
    market = Market(world.config)
    view = market.reset(seed=SEED)
    engine = _engine(world)
    campaigns = view.campaigns
    logged = []
    for _ in range(ticks):
        batch = market.next_requests()
        assert batch is not None
        decided = engine.decide(
            batch, multiplier=2.0 / campaigns.target_roi, remaining_budget=campaigns.budget
        )
        decision, x_ctr, x_cvr = decided.decision, decided.x_ctr, decided.x_cvr
        feedback = market.serve(campaign=decision.campaign, item=decision.item)
        if organic is not None:
            organic.append(feedback.organic)
        row, slot, clicked = feedback.request_index, feedback.slot, feedback.clicked
        click_id = np.full(len(row), -1, dtype=np.int64)
        click_id[clicked] = feedback.click_id
        click_time = np.full(len(row), np.nan)
        click_time[clicked] = feedback.click_time
        logged.append(
            Impressions(
                request_id=batch.request_id[row],
                time=batch.time[row],
                surface=batch.surface[row],
                slot=slot,
                campaign=decision.campaign[row, slot],
                user=batch.user[row],
                click_id=click_id,
                click_time=click_time,
                x_ctr=x_ctr[row, slot],
                x_cvr=x_cvr[row, slot],
                pctr=decision.pctr[row, slot],
                pcvr=decision.pcvr[row, slot],
            )
        )
    return logged, market.clock


@pytest.fixture(scope="module")
def played(world: World) -> tuple[list[Impressions], float]:
    logged, now = _play(world, ticks=16)
    clicks = sum(int(imps.clicked.sum()) for imps in logged)
    assert clicks >= 50, "too few clicks to learn from"
    return logged, now


def _refreshed(world: World, played: tuple[list[Impressions], float]) -> Engine:
    engine = _engine(world)
    logged, now = played
    for imps in logged:
        engine.record(imps)
    engine.refresh(now=now)
    return engine


def _parameters(engine: Engine) -> dict[str, NDArray[np.float64]]:
    p = engine.predictor
    out: dict[str, NDArray[np.float64]] = {}
    for name, model in (("click", p.click), ("purchase", p.purchase)):
        for part in ("bias", "shared", "deviation", "position"):
            out[f"{name}.{part}"] = getattr(model, part)
    out["ctr_item"], out["ctr_category"] = p.ctr_item, p.ctr_category
    return out


def test_refresh_moves_the_predictions(
    world: World, played: tuple[list[Impressions], float], money: Money
) -> None:
    fresh, learned = _engine(world), _refreshed(world, played)
    assert learned.predictor.refreshes == 1
    assert not np.allclose(learned.predictor.click.bias, fresh.predictor.click.bias)
    before = _decide(fresh, world.later, money)
    after = _decide(learned, world.later, money)
    assert before.campaign.shape == after.campaign.shape
    shown = (before.campaign >= 0) & (after.campaign >= 0)
    assert shown.sum() > 50
    assert not np.allclose(before.landscape_ecpm, after.landscape_ecpm)
    # Offsets stay relative to the first slot, which serving scores at.
    assert np.all(learned.predictor.click.position[:, 0] == 0.0)


def test_refresh_is_deterministic_for_the_same_log(
    world: World, played: tuple[list[Impressions], float], money: Money
) -> None:
    first, second = _refreshed(world, played), _refreshed(world, played)
    a, b = _parameters(first), _parameters(second)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    one, two = _decide(first, world.later, money), _decide(second, world.later, money)
    for f in fields(Decision):
        np.testing.assert_array_equal(getattr(one, f.name), getattr(two, f.name), err_msg=f.name)


def test_refresh_on_an_empty_log_changes_nothing(world: World, money: Money) -> None:
    engine, fresh = _engine(world), _engine(world)
    engine.refresh(now=3600.0)
    assert engine.predictor.refreshes == 0
    one, two = _decide(engine, world.later, money), _decide(fresh, world.later, money)
    for f in fields(Decision):
        np.testing.assert_array_equal(getattr(one, f.name), getattr(two, f.name), err_msg=f.name)


def test_organic_results_teach_tastes_and_nothing_else(world: World, money: Money) -> None:
    """Organic clicks join the shoppers' profiles and the category affinity at the next
    refresh, never before; the click and purchase models still learn from ads alone."""
    organic: list[OrganicEvents] = []
    logged, now = _play(world, ticks=16, organic=organic)
    shown = OrganicEvents.concat(organic)
    assert shown.clicked.sum() >= 50
    plain, taught = _engine(world), _engine(world)
    for engine in (plain, taught):
        for imps in logged:
            engine.record(imps)
    taught.record_organic(shown)
    before = taught.profiles.counts.sum()
    assert before == plain.profiles.counts.sum()
    for engine in (plain, taught):
        engine.refresh(now=now)
    known = shown.clicked & (shown.user >= 0)
    gained = taught.profiles.counts.sum() - plain.profiles.counts.sum()
    assert gained == known.sum()
    assert not np.allclose(taught.affinity.lift, plain.affinity.lift)
    # The models' fit reads ads only: the same parameters, save through the features that
    # the organic clicks moved (profiles, affinity), so the logged rows fit the same way.
    np.testing.assert_array_equal(taught.predictor.ctr_category, plain.predictor.ctr_category)
    # Recorded events are learned once: a second refresh adds nothing to the profiles.
    counted = taught.profiles.counts.sum()
    taught.refresh(now=now + 1.0)
    assert taught.profiles.counts.sum() == counted


def test_organic_results_recorded_tick_by_tick_teach_what_one_record_does(world: World) -> None:
    """The engine keeps only the evidence of organic results between refreshes (the item's
    category, not the item); however they came in, a refresh learns the same from them."""
    organic: list[OrganicEvents] = []
    logged, now = _play(world, ticks=8, organic=organic)
    at_once, by_tick = _engine(world), _engine(world)
    for engine in (at_once, by_tick):
        for imps in logged:
            engine.record(imps)
    at_once.record_organic(OrganicEvents.concat(organic))
    for events in organic:
        by_tick.record_organic(events)
    assert len(organic) > 1
    for engine in (at_once, by_tick):
        engine.refresh(now=now)
    assert (at_once.profiles.counts != by_tick.profiles.counts).nnz == 0
    np.testing.assert_allclose(by_tick.affinity.lift, at_once.affinity.lift, atol=1e-6)
    assert at_once.affinity.lift.any()


def test_organic_evidence_reads_categories_and_caps_positions() -> None:
    events = OrganicEvents(
        time=np.zeros(3),
        surface=np.array([0, 5, 2], np.int8),
        user=np.array([4, -1, 0], np.int32),
        item=np.array([2, 0, 1], np.int32),
        position=np.array([0, 7, 1 << 40], np.int64),
        clicked=np.array([True, False, True]),
    )
    evidence = OrganicEvidence.of(events, np.array([30, 10, 20], np.int32))
    np.testing.assert_array_equal(evidence.category, [20, 30, 10])
    np.testing.assert_array_equal(evidence.position, [0, 7, OrganicEvidence.MAX_POSITION])
    np.testing.assert_array_equal(evidence.user, events.user)
    np.testing.assert_array_equal(evidence.surface, events.surface)
    np.testing.assert_array_equal(evidence.clicked, events.clicked)
    assert evidence.time.dtype == np.float32
    np.testing.assert_array_equal(evidence.time, events.time)
    both = OrganicEvidence.concat([evidence, evidence])
    assert len(both) == 6 and both.position.dtype == np.int16
    assert OrganicEvidence.concat([evidence]) is evidence
    nothing = OrganicEvidence.concat([])
    assert len(nothing) == 0
    for column in fields(OrganicEvidence):  # an empty one of each column's own type
        assert getattr(nothing, column.name).dtype == getattr(evidence, column.name).dtype
        assert getattr(both, column.name).dtype == getattr(evidence, column.name).dtype


def test_a_first_refresh_over_a_long_log_calibrates_on_the_profiles_then_served(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a first refresh over hours of log (a file, a platform's past) the rows held out to
    calibrate the models are its last refresh interval, served with every click before it:
    their affinity is read from those profiles, not from the history alone nor from the
    clicks that came after them."""
    organic: list[OrganicEvents] = []
    logged, now = _play(world, ticks=16, organic=organic)
    shown = OrganicEvents.concat(organic)
    engine = _engine(world)
    for imps in logged:
        engine.record(imps)
    engine.record_organic(shown)
    captured: dict[str, ServedAffinity | None] = {}
    fit = engine.predictor.refresh

    def spy(*, log: EventLog, now: float, served_affinity: ServedAffinity | None = None) -> None:
        captured["served"] = served_affinity
        fit(log=log, now=now, served_affinity=served_affinity)

    monkeypatch.setattr(engine.predictor, "refresh", spy)
    engine.refresh(now=now)
    served = captured["served"]
    assert served is not None
    cut = now - world.config.engine.refresh_hours * 3600
    imps = engine.log.impressions()
    category = engine.predictor.category[imps.campaign].astype(np.int32)
    before_cut = _engine(world).profiles  # the history alone
    ad = imps.clicked & (imps.click_time <= cut)
    before_cut.add(user=imps.user[ad], category=category[ad])
    hit = shown.clicked & (shown.time.astype(np.float32) <= cut)
    before_cut.add(user=shown.user[hit], category=world.view.items.category[shown.item[hit]])
    held_rows = np.flatnonzero(imps.time > cut)
    assert 0 < len(held_rows) < len(imps) and ad.any() and hit.any()
    held = imps.take(held_rows)

    def affinity_from(profiles: UserProfiles) -> NDArray[np.float32]:
        return engine.affinity.of_rows(profiles, user=held.user, category=category[held_rows])

    got = served(held)
    np.testing.assert_allclose(got, affinity_from(before_cut), atol=1e-6)
    assert not np.allclose(got, affinity_from(_engine(world).profiles), atol=1e-3)
    assert not np.allclose(got, affinity_from(engine.profiles), atol=1e-3)


def test_organic_results_alone_refresh_the_affinity(world: World) -> None:
    organic: list[OrganicEvents] = []
    _play(world, ticks=8, organic=organic)
    engine = _engine(world)
    engine.record_organic(OrganicEvents.concat(organic))
    engine.refresh(now=8 * 3600.0)
    assert engine.affinity.lift.any()
    assert engine.predictor.refreshes == 0  # no ad logged: the models keep their priors


def test_bad_organic_events_are_refused() -> None:
    good = {
        "time": np.zeros(2),
        "surface": np.zeros(2, np.int8),
        "user": np.zeros(2, np.int32),
        "item": np.zeros(2, np.int32),
        "position": np.zeros(2, np.int64),
        "clicked": np.zeros(2, bool),
    }
    assert len(OrganicEvents(**good)) == 2  # type: ignore[arg-type]
    for name, bad in (
        ("time", np.zeros(3)),
        ("surface", np.array([0, 6], np.int8)),
        ("position", np.array([0, -1], np.int64)),
    ):
        with pytest.raises(ValueError, match="organic events"):
            OrganicEvents(**{**good, name: bad})  # type: ignore[arg-type]
