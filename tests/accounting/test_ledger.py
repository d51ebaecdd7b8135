"""Tests of the ledger: budget enforcement, idempotency, daily reset, validation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.accounting.ledger import Ledger, LedgerRows

# --- a sequential reference ------------------------------------------------------------------


@dataclass
class Batch:
    click_id: list[int]
    campaign: list[int]
    price: list[float]
    time: list[float]

    def charge(self, ledger: Ledger) -> NDArray[np.float64]:
        return ledger.charge(
            click_id=np.array(self.click_id, dtype=np.int64),
            campaign=np.array(self.campaign, dtype=np.int64),
            price=np.array(self.price, dtype=np.float64),
            time=np.array(self.time, dtype=np.float64),
        )


@dataclass
class ReferenceLedger:
    """The charging rule as a plain loop over clicks in time order."""

    budget: list[float]
    spend: list[float] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    rows: list[tuple[int, int, float, float, int]] = field(default_factory=list)
    day: int = 0

    def __post_init__(self) -> None:
        self.spend = [0.0] * len(self.budget)
        self.refused = [0] * len(self.budget)

    def start_day(self) -> None:
        self.day += 1
        self.spend = [0.0] * len(self.budget)
        self.refused = [0] * len(self.budget)

    def charge(self, batch: Batch) -> list[float]:
        amounts = [0.0] * len(batch.click_id)
        for j in sorted(range(len(batch.click_id)), key=lambda j: (batch.time[j], j)):
            click, camp, price = batch.click_id[j], batch.campaign[j], batch.price[j]
            if click in self.seen:
                continue
            self.seen.add(click)
            if self.spend[camp] < self.budget[camp]:
                paid = min(price, self.budget[camp] - self.spend[camp])
                self.spend[camp] += paid
                amounts[j] = paid
                self.rows.append((click, camp, paid, batch.time[j], self.day))
            else:
                self.refused[camp] += 1
        return amounts


# --- strategies --------------------------------------------------------------------------------

# Quarter-unit prices and budgets keep every sum exact, so results compare with ==.
quarters = st.integers(min_value=0, max_value=24).map(lambda q: q / 4)
budgets = st.integers(min_value=1, max_value=40).map(lambda q: q / 4)


@st.composite
def batches(draw: st.DrawFn, n_campaigns: int, *, prices: st.SearchStrategy[float]) -> Batch:
    m = draw(st.integers(min_value=0, max_value=25))
    ints = st.lists(st.integers(min_value=0, max_value=60), min_size=m, max_size=m)
    return Batch(
        click_id=draw(ints),
        campaign=draw(
            st.lists(st.integers(0, n_campaigns - 1), min_size=m, max_size=m),
        ),
        price=draw(st.lists(prices, min_size=m, max_size=m)),
        time=[float(t) for t in draw(st.lists(st.integers(0, 8), min_size=m, max_size=m))],
    )


@st.composite
def scenarios(
    draw: st.DrawFn, *, prices: st.SearchStrategy[float] = quarters
) -> tuple[list[float], list[Batch | None]]:
    """Budgets and a sequence of batches; ``None`` stands for ``start_day``."""
    n = draw(st.integers(min_value=1, max_value=4))
    budget = draw(st.lists(budgets, min_size=n, max_size=n))
    steps = draw(st.lists(st.none() | batches(n, prices=prices), min_size=1, max_size=6))
    return budget, steps


def run(ledger: Ledger, steps: list[Batch | None]) -> None:
    for step in steps:
        if step is None:
            ledger.start_day()
        else:
            step.charge(ledger)


def campaign_sums(rows: LedgerRows, n: int, day: int) -> NDArray[np.float64]:
    today = rows.day == day
    return np.bincount(rows.campaign[today], weights=rows.amount[today], minlength=n)


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_matches_sequential_reference(scenario: tuple[list[float], list[Batch | None]]) -> None:
    budget, steps = scenario
    ledger = Ledger(budget=np.array(budget))
    reference = ReferenceLedger(budget=budget)
    for step in steps:
        if step is None:
            ledger.start_day()
            reference.start_day()
            continue
        assert step.charge(ledger).tolist() == reference.charge(step)
        assert ledger.spend.tolist() == reference.spend
        assert ledger.refused_clicks.tolist() == reference.refused
    rows = ledger.rows()
    got = list(
        zip(
            rows.click_id.tolist(),
            rows.campaign.tolist(),
            rows.amount.tolist(),
            rows.time.tolist(),
            rows.day.tolist(),
            strict=True,
        )
    )
    assert got == reference.rows
    assert ledger.day == reference.day


arbitrary_prices = st.floats(min_value=0, max_value=5, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(scenarios(prices=arbitrary_prices))
def test_spend_equals_sum_of_todays_rows(
    scenario: tuple[list[float], list[Batch | None]],
) -> None:
    budget, steps = scenario
    ledger = Ledger(budget=np.array(budget))
    run(ledger, steps)
    sums = campaign_sums(ledger.rows(), len(budget), ledger.day)
    np.testing.assert_allclose(ledger.spend, sums, rtol=1e-12, atol=1e-12)


@settings(max_examples=150, deadline=None)
@given(scenarios(prices=arbitrary_prices))
def test_spend_never_passes_budget(
    scenario: tuple[list[float], list[Batch | None]],
) -> None:
    budget, steps = scenario
    ledger = Ledger(budget=np.array(budget))
    run(ledger, steps)
    rows = ledger.rows()
    tol = 1e-9
    for c in range(len(budget)):
        mine = rows.amount[(rows.campaign == c) & (rows.day == ledger.day)]
        if len(mine) == 0:
            continue
        spend = ledger.spend[c]
        assert spend <= budget[c] + tol
        assert spend - mine[-1] < budget[c] + tol  # the last charged click began below budget


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_a_click_id_is_charged_at_most_once(
    scenario: tuple[list[float], list[Batch | None]],
) -> None:
    budget, steps = scenario
    ledger = Ledger(budget=np.array(budget))
    run(ledger, steps)
    ids = ledger.rows().click_id
    assert len(np.unique(ids)) == len(ids)


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.data())
def test_invalid_batch_raises_and_changes_nothing(
    scenario: tuple[list[float], list[Batch | None]], data: st.DataObject
) -> None:
    budget, steps = scenario
    ledger = Ledger(budget=np.array(budget))
    run(ledger, steps)
    spend, refused, rows = ledger.spend, ledger.refused_clicks, ledger.rows()
    bad = data.draw(st.sampled_from(sorted(INVALID)))
    with pytest.raises(ValueError):
        ledger.charge(**INVALID[bad](len(budget)))
    np.testing.assert_array_equal(ledger.spend, spend)
    np.testing.assert_array_equal(ledger.refused_clicks, refused)
    assert len(ledger.rows()) == len(rows)
    # The ids of the rejected batch were not remembered: a valid replay is decided normally,
    # so it is either charged (a new row) or refused (one more refused click).
    ledger.charge(click_id=[1_000_000], campaign=[0], price=[0.0], time=[0.0])
    decided = len(ledger.rows()) - len(rows) + ledger.refused_clicks[0] - refused[0]
    assert decided == 1


def _batch(
    n: int,
    *,
    click_id: object = None,
    campaign: object = None,
    price: object = None,
    time: object = None,
) -> dict[str, object]:
    """A valid two-click batch (ids 1_000_000 and 1_000_001) with one column replaced."""
    return {
        "click_id": [1_000_000, 1_000_001] if click_id is None else click_id,
        "campaign": [0, n - 1] if campaign is None else campaign,
        "price": [1.0, 2.0] if price is None else price,
        "time": [0.0, 1.0] if time is None else time,
    }


INVALID = {
    "lengths": lambda n: _batch(n, price=[1.0]),
    "campaign_negative": lambda n: _batch(n, campaign=[0, -1]),
    "campaign_too_large": lambda n: _batch(n, campaign=[0, n]),
    "campaign_float": lambda n: _batch(n, campaign=[0.0, 0.0]),
    "price_negative": lambda n: _batch(n, price=[1.0, -0.5]),
    "price_nan": lambda n: _batch(n, price=[1.0, np.nan]),
    "price_inf": lambda n: _batch(n, price=[np.inf, 1.0]),
    "click_id_float": lambda n: _batch(n, click_id=[1.5, 2.0]),
    "time_nan": lambda n: _batch(n, time=[0.0, np.nan]),
    "two_dimensional": lambda n: _batch(n, price=[[1.0, 2.0]]),
}


# --- examples ----------------------------------------------------------------------------------


def test_duplicate_in_batch_charges_the_first_in_time_order() -> None:
    ledger = Ledger(budget=np.array([10.0]))
    amount = ledger.charge(click_id=[7, 7, 7], campaign=[0, 0, 0], price=[1, 2, 3], time=[5, 1, 1])
    assert amount.tolist() == [0.0, 2.0, 0.0]
    assert ledger.rows().time.tolist() == [1.0]


def test_click_id_charged_in_an_earlier_batch_or_day_charges_zero() -> None:
    ledger = Ledger(budget=np.array([10.0]))
    ledger.charge(click_id=[1], campaign=[0], price=[2.0], time=[0.0])
    ledger.start_day()
    assert ledger.charge(click_id=[1, 2], campaign=[0, 0], price=[2, 3], time=[1, 1]).tolist() == [
        0.0,
        3.0,
    ]
    assert ledger.spend.tolist() == [3.0]


def test_refused_click_stays_refused_when_replayed() -> None:
    ledger = Ledger(budget=np.array([1.0]))
    amount = ledger.charge(click_id=[1, 2], campaign=[0, 0], price=[1.0, 1.0], time=[0.0, 1.0])
    assert amount.tolist() == [1.0, 0.0]
    assert ledger.refused_clicks.tolist() == [1]
    ledger.set_budget(campaign=0, budget=5.0)
    assert ledger.charge(click_id=[2], campaign=[0], price=[1.0], time=[2.0]).tolist() == [0.0]
    assert ledger.refused_clicks.tolist() == [1]


def test_the_click_that_reaches_the_budget_pays_only_what_is_left() -> None:
    ledger = Ledger(budget=np.array([5.0, 100.0]))
    amount = ledger.charge(
        click_id=np.arange(5),
        campaign=[0, 0, 0, 0, 1],
        price=[2.0, 2.0, 2.0, 2.0, 1.0],
        time=[3.0, 0.0, 1.0, 2.0, 0.0],
    )
    assert amount.tolist() == [0.0, 2.0, 2.0, 1.0, 1.0]
    assert ledger.spend.tolist() == [5.0, 1.0]
    assert ledger.remaining().tolist() == [0.0, 99.0]
    assert ledger.refused_clicks.tolist() == [1, 0]


def test_spend_at_budget_refuses_even_free_clicks() -> None:
    ledger = Ledger(budget=np.array([2.0]))
    amount = ledger.charge(click_id=[1, 2, 3], campaign=[0, 0, 0], price=[2, 0, 0], time=[0, 1, 1])
    assert amount.tolist() == [2.0, 0.0, 0.0]
    assert len(ledger.rows()) == 1
    assert ledger.refused_clicks.tolist() == [2]


def test_start_day_resets_spend_and_keeps_rows() -> None:
    ledger = Ledger(budget=np.array([1.0, 1.0]))
    ledger.charge(click_id=[1, 2, 3], campaign=[0, 0, 1], price=[1.0, 1.0, 0.5], time=[0, 1, 2])
    ledger.start_day()
    assert ledger.day == 1
    assert ledger.spend.tolist() == [0.0, 0.0]
    assert ledger.refused_clicks.tolist() == [0, 0]
    ledger.charge(click_id=[4], campaign=[0], price=[0.25], time=[0.0])
    rows = ledger.rows()
    assert rows.click_id.tolist() == [1, 3, 4]
    assert rows.day.tolist() == [0, 0, 1]
    assert rows.campaign.dtype == np.int32 and rows.day.dtype == np.int32


def test_rows_are_in_time_order_within_a_batch_and_read_only() -> None:
    ledger = Ledger(budget=np.array([10.0, 10.0]))
    ledger.charge(click_id=[1, 2, 3], campaign=[1, 0, 1], price=[1, 1, 1], time=[2.0, 1.0, 0.5])
    rows = ledger.rows()
    assert rows.click_id.tolist() == [3, 2, 1]
    with pytest.raises(ValueError):
        rows.amount[0] = 99.0
    spend = ledger.spend
    spend[0] = 99.0
    assert ledger.spend[0] == 1.0


def test_empty_ledger_rows_and_empty_batch() -> None:
    ledger = Ledger(budget=np.array([1.0]))
    assert len(ledger.rows()) == 0
    assert ledger.charge(click_id=[], campaign=[], price=[], time=[]).shape == (0,)
    assert ledger.rows().click_id.dtype == np.int64


@pytest.mark.parametrize("budget", [[1.0, 0.0], [-1.0], [np.nan], [[1.0]]])
def test_constructor_rejects_bad_budgets(budget: list[float]) -> None:
    with pytest.raises(ValueError):
        Ledger(budget=np.array(budget))


@pytest.mark.parametrize(
    ("campaign", "budget"), [(2, 1.0), (-1, 1.0), (0, 0.0), (0, -3.0), (0, np.nan)]
)
def test_set_budget_validates(campaign: int, budget: float) -> None:
    ledger = Ledger(budget=np.array([1.0, 1.0]))
    with pytest.raises(ValueError):
        ledger.set_budget(campaign=campaign, budget=budget)
    assert ledger.budget.tolist() == [1.0, 1.0]


def test_lowering_the_budget_below_spend_refuses_further_clicks() -> None:
    ledger = Ledger(budget=np.array([10.0]))
    ledger.charge(click_id=[1], campaign=[0], price=[4.0], time=[0.0])
    ledger.set_budget(campaign=0, budget=3.0)
    assert ledger.remaining().tolist() == [0.0]
    assert ledger.charge(click_id=[2], campaign=[0], price=[1.0], time=[1.0]).tolist() == [0.0]


def test_many_batches_stay_consistent() -> None:
    rng = np.random.default_rng(7)
    n = 50
    ledger = Ledger(budget=rng.uniform(5.0, 50.0, n))
    charged = 0.0
    for b in range(200):
        amount = ledger.charge(
            click_id=rng.integers(0, 30_000, 300),  # many replays across batches
            campaign=rng.integers(0, n, 300),
            price=rng.uniform(0, 2, 300),
            time=np.full(300, float(b)),
        )
        charged += amount.sum()
    rows = ledger.rows()
    assert len(np.unique(rows.click_id)) == len(rows)
    np.testing.assert_allclose(ledger.spend, campaign_sums(rows, n, 0), rtol=1e-12)
    assert np.all(ledger.spend < ledger.budget + 2.0)
    assert charged == pytest.approx(ledger.spend.sum())
