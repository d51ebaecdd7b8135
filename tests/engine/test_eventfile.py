"""The event file: what a tiny simulated day writes comes back column for column, and every
kind of damage is one clear ``ModelError`` naming the file."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from quanzhan.engine.eventfile import FORMAT, VERSION, read_event_file, write_event_file
from quanzhan.engine.log import EventLog, Impressions
from quanzhan.engine.organic import OrganicEvents
from quanzhan.engine.prediction import N_FEATURES
from quanzhan.errors import ModelError, OutputError
from quanzhan.sim.config import load_scenario
from quanzhan.sim.run import Simulation


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    run = Simulation(load_scenario("tiny"), seed=5, recall=False, keep_organic=True)
    run.run()
    return run


@pytest.fixture(scope="module")
def event_path(simulation: Simulation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "events.npz"
    simulation.write_events(path)
    return path


def _arrays(path: Path) -> dict[str, NDArray[Any]]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _same(a: object, b: object) -> bool:
    return bool(
        np.array_equal(np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind == "f")
    )


def test_round_trip_keeps_every_column(simulation: Simulation, event_path: Path) -> None:
    found = read_event_file(event_path)
    view = simulation.view
    assert found.config == simulation.config.engine
    assert (found.n_users, found.max_slots, found.seed) == (
        view.n_users,
        simulation.market.max_ad_slots,
        5,
    )
    assert found.end_time == simulation.market.clock
    for table, original in ((found.items, view.items), (found.campaigns, view.campaigns)):
        for field in fields(original):
            mine, theirs = getattr(table, field.name), getattr(original, field.name)
            assert _same(mine, theirs), field.name
            assert np.asarray(mine).dtype == np.asarray(theirs).dtype, field.name
    assert _same(found.history_user, view.history_user)
    assert _same(found.history_item, view.history_item)
    logged, original_log = found.log.impressions(), simulation.engine.log.impressions()
    assert len(logged) == len(original_log) > 0
    for field in fields(Impressions):
        mine, theirs = getattr(logged, field.name), getattr(original_log, field.name)
        assert _same(mine, theirs), field.name
        assert mine.dtype == theirs.dtype, field.name
    for mine, theirs in zip(found.log.orders(), simulation.engine.log.orders(), strict=True):
        assert _same(mine, theirs)
    order_time = found.log.orders()[1]
    assert np.all(np.isfinite(order_time))  # the simulator knows when every order was placed
    assert found.n_orders > 0 and 0 < found.n_clicks < found.n_impressions
    organic_clicks = int(simulation.stats.platform["organic_clicks"].sum())
    assert len(found.organic) > 0 and int(found.organic.clicked.sum()) == organic_clicks
    for field in fields(found.organic):
        assert (
            getattr(found.organic, field.name).dtype
            == getattr(OrganicEvents.empty(), field.name).dtype
        ), field.name


def test_plain_numpy_reads_the_documented_layout(event_path: Path) -> None:
    arrays = _arrays(event_path)
    assert str(arrays["format"]) == FORMAT and int(arrays["version"]) == VERSION
    assert arrays["impressions.x_ctr"].ndim == 2
    assert len(arrays["impressions.campaign"]) == len(arrays["impressions.x_ctr"])
    assert arrays["items.n_categories"].shape == ()
    assert {"engine_config", "n_users", "max_slots", "seed", "end_time", "orders.click_id"} <= set(
        arrays
    )


def test_a_version_1_file_is_read_without_order_times(event_path: Path, tmp_path: Path) -> None:
    """Files written before orders had times: read, every order kept, its time unknown."""
    arrays = _arrays(event_path)
    arrays["version"] = np.array(1)
    del arrays["orders.time"]
    old = tmp_path / "old.npz"
    np.savez(old, allow_pickle=False, **arrays)
    ordered, order_time = read_event_file(old).log.orders()
    assert _same(ordered, arrays["orders.click_id"]) and len(ordered) > 0
    assert np.all(np.isnan(order_time))


def test_a_version_2_file_is_read_without_organic_results(event_path: Path, tmp_path: Path) -> None:
    """Files written before the organic results were logged: read, with none."""
    arrays = _arrays(event_path)
    arrays["version"] = np.array(2)
    for key in [k for k in arrays if k.startswith("organic.")]:
        del arrays[key]
    old = tmp_path / "old.npz"
    np.savez(old, allow_pickle=False, **arrays)
    found = read_event_file(old)
    assert len(found.organic) == 0 and found.n_impressions > 0


def test_an_empty_log_round_trips(simulation: Simulation, tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    view = simulation.view
    write_event_file(
        path,
        config=simulation.config.engine,
        items=view.items,
        campaigns=view.campaigns,
        n_users=view.n_users,
        max_slots=simulation.market.max_ad_slots,
        seed=1,
        history_user=view.history_user,
        history_item=view.history_item,
        log=EventLog(),
        end_time=0.0,
        organic=OrganicEvents.empty(),
    )
    found = read_event_file(path)
    assert (found.n_impressions, found.n_clicks, found.n_orders) == (0, 0, 0)


def test_writing_where_no_folder_is_an_output_error(simulation: Simulation, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot write event file"):
        simulation.write_events(tmp_path / "no" / "such" / "events.npz")
    assert not (tmp_path / "no").exists()


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        read_event_file(tmp_path / "nowhere.npz")


def test_a_folder_is_not_an_event_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is not a file"):
        read_event_file(tmp_path)


@pytest.mark.parametrize("keep", [0, 100, 5000, -200])
def test_a_truncated_file(event_path: Path, tmp_path: Path, keep: int) -> None:
    payload = event_path.read_bytes()
    broken = tmp_path / "broken.npz"
    broken.write_bytes(payload[:keep])
    with pytest.raises(ModelError, match=r"broken\.npz") as caught:
        read_event_file(broken)
    assert "\n" not in str(caught.value)


def test_a_flipped_byte(event_path: Path, tmp_path: Path) -> None:
    payload = bytearray(event_path.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    broken = tmp_path / "flipped.npz"
    broken.write_bytes(bytes(payload))
    with pytest.raises(ModelError, match="not readable"):
        read_event_file(broken)


def test_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.npz"
    path.write_text("impressions, clicks\n")
    with pytest.raises(ModelError, match="not readable"):
        read_event_file(path)


def _mutated(path: Path, tmp_path: Path, change: dict[str, Any], drop: str | None) -> Path:
    arrays = _arrays(path)
    arrays.update({k: np.asarray(v(arrays[k]) if callable(v) else v) for k, v in change.items()})
    if drop is not None:
        del arrays[drop]
    out = tmp_path / "mutated.npz"
    np.savez(out, allow_pickle=False, **arrays)
    return out


@pytest.mark.parametrize(
    ("change", "drop", "fragment"),
    [
        ({"format": "something-else"}, None, "format is 'something-else'"),
        ({"version": 4}, None, "is version 4"),
        ({}, "organic.clicked", "no 'organic.clicked' array"),
        ({"organic.time": np.zeros(2)}, None, "organic columns differ"),
        ({"organic.surface": lambda x: x + 9}, None, "the organic table is invalid"),
        # Wider than the column: read as it stood, 258 would wrap to surface 2.
        (
            {"organic.surface": lambda x: x.astype(np.int64) + 256},
            None,
            "'organic.surface' holds values outside int8",
        ),
        (
            {"organic.user": lambda x: x.astype(np.int64) + 2**32},
            None,
            "'organic.user' holds values outside int32",
        ),
        ({"orders.time": np.zeros(2)}, None, "orders.click_id and orders.time differ in length"),
        ({}, "orders.time", "no 'orders.time' array"),
        ({}, "impressions.click_id", "no 'impressions.click_id' array"),
        ({}, "items.n_terms", "no 'items.n_terms' array"),
        ({}, "format", "no 'format' array"),
        ({"impressions.slot": np.zeros(3, np.int64)}, None, "impressions columns differ"),
        ({"items.price": np.ones(7)}, None, "items columns differ"),
        (
            {"campaigns.budget": np.negative},
            None,
            "the campaigns table is invalid: campaign budget",
        ),
        ({"impressions.campaign": "x"}, None, "'impressions.campaign'"),
        ({"seed": np.arange(3)}, None, "'seed' should be a single value"),
        ({"engine_config": '{"candidates": -1}'}, None, "engine config is invalid: candidates"),
        ({"engine_config": "{not json"}, None, "engine config is invalid"),
        # A file logged when the models took one feature fewer.
        (
            {"impressions.x_cvr": lambda x: x[:, :-1]},
            None,
            f"impressions.x_cvr holds {N_FEATURES - 1} features",
        ),
    ],
)
def test_a_damaged_layout(
    event_path: Path, tmp_path: Path, change: dict[str, Any], drop: str | None, fragment: str
) -> None:
    with pytest.raises(ModelError, match=r"mutated\.npz") as caught:
        read_event_file(_mutated(event_path, tmp_path, change, drop))
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("impressions.campaign", "'impressions.campaign' holds ids outside 0.."),
        ("campaigns.item", "'campaigns.item' holds ids outside 0.."),
        ("history.item", "'history.item' holds ids outside 0.."),
        ("impressions.user", "'impressions.user' holds ids outside -1.."),
        ("organic.item", "'organic.item' holds ids outside 0.."),
        ("organic.user", "'organic.user' holds ids outside -1.."),
    ],
)
def test_ids_out_of_range(event_path: Path, tmp_path: Path, key: str, fragment: str) -> None:
    column = _arrays(event_path)[key].copy()
    column[0] = 1_000_000
    with pytest.raises(ModelError) as caught:
        read_event_file(_mutated(event_path, tmp_path, {key: column}, None))
    assert fragment in str(caught.value)
