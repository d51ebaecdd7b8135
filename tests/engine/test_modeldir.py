"""Training from an event file and the model directory: deterministic for a seed, a faithful
round trip, and every damaged, foreign or missing directory refused with the engine untouched."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from quanzhan.engine.decision import Engine
from quanzhan.engine.eventfile import EventFile, fresh_engine, read_event_file, train_engine
from quanzhan.engine.modeldir import (
    ARRAYS,
    MANIFEST,
    catalog_fingerprint,
    load_models,
    save_models,
)
from quanzhan.errors import ModelError, OutputError
from quanzhan.sim.config import load_scenario
from quanzhan.sim.run import Simulation

State = dict[str, NDArray[np.float64]]


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> EventFile:
    run = Simulation(load_scenario("tiny"), seed=5, recall=False)
    run.run()
    path = tmp_path_factory.mktemp("events") / "events.npz"
    run.write_events(path)
    return read_event_file(path)


@pytest.fixture(scope="module")
def trained(events: EventFile) -> Engine:
    return train_engine(events)


def _fresh(events: EventFile) -> Engine:
    """An engine on the file's catalog that has learned nothing: its priors only."""
    return fresh_engine(events)


def _equal(a: State, b: State) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_training_is_deterministic_for_a_seed(events: EventFile, trained: Engine) -> None:
    again = train_engine(events)
    assert _equal(trained.model_state(), again.model_state())
    assert not _equal(trained.model_state(), _fresh(events).model_state())


def test_training_takes_a_seed_of_its_own(events: EventFile) -> None:
    one, other = train_engine(events, seed=1), train_engine(events, seed=1)
    assert _equal(one.model_state(), other.model_state())


def test_a_model_directory_round_trips(trained: Engine, events: EventFile, tmp_path: Path) -> None:
    manifest = save_models(tmp_path / "models", trained, source="events.npz")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [MANIFEST, ARRAYS]
    on_disk = json.loads((tmp_path / "models" / MANIFEST).read_text())
    assert on_disk == manifest
    assert on_disk["format"] == "quanzhan-models" and on_disk["version"] == 2
    assert on_disk["source"] == "events.npz"
    assert set(on_disk["arrays"]) == set(trained.model_state())
    engine = _fresh(events)
    assert load_models(tmp_path / "models", engine) == manifest
    assert _equal(engine.model_state(), trained.model_state())


def test_saving_replaces_a_model_directory(
    trained: Engine, events: EventFile, tmp_path: Path
) -> None:
    target = tmp_path / "models"
    save_models(target, _fresh(events), source="priors")
    save_models(target, trained, source="trained")
    engine = _fresh(events)
    assert load_models(target, engine)["source"] == "trained"
    assert _equal(engine.model_state(), trained.model_state())
    assert [p.name for p in tmp_path.iterdir()] == ["models"]  # no temporaries left behind


def test_saving_refuses_a_file_and_a_foreign_folder(trained: Engine, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    with pytest.raises(OutputError, match="is a file"):
        save_models(a_file, trained, source="x")
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_text("keep me too")
    with pytest.raises(OutputError, match="not a model directory"):
        save_models(foreign, trained, source="x")
    assert a_file.read_text() == "keep me" and (foreign / "cat.jpg").exists()


def test_the_fingerprint_follows_the_catalog(events: EventFile) -> None:
    items, item = events.items, events.campaigns.item
    assert catalog_fingerprint(items, item) == catalog_fingerprint(items, item.copy())
    dearer = replace(items, price=items.price * 1.01)
    assert catalog_fingerprint(dearer, item) != catalog_fingerprint(items, item)
    assert catalog_fingerprint(items, item[::-1].copy()) != catalog_fingerprint(items, item)


def _flip_a_byte(directory: Path) -> None:
    payload = bytearray((directory / ARRAYS).read_bytes())
    payload[len(payload) // 2] ^= 0x01
    (directory / ARRAYS).write_bytes(bytes(payload))


def _edit_manifest(**changes: object) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        manifest = json.loads((directory / MANIFEST).read_text())
        manifest.update(changes)
        (directory / MANIFEST).write_text(json.dumps(manifest))

    return edit


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (_flip_a_byte, "is corrupt"),
        (lambda d: (d / MANIFEST).unlink(), "has no manifest.json"),
        (lambda d: (d / ARRAYS).unlink(), "has no readable model.npz"),
        (lambda d: (d / MANIFEST).write_text("{broken"), "is not readable JSON"),
        (lambda d: (d / MANIFEST).write_text("[1, 2]"), "not a Quanzhan model manifest"),
        (_edit_manifest(version=1), "is version 1"),
        (_edit_manifest(format="other"), "not a Quanzhan model manifest"),
        (_edit_manifest(catalog="0" * 64), "trained on another catalog"),
        (_edit_manifest(n_campaigns=3), "items and 3 campaigns"),
        (_edit_manifest(arrays={"predictor.x": [[1], "<f8"]}), "does not hold the arrays"),
        (_edit_manifest(arrays={"predictor.x": 5}), "malformed 'arrays'"),
        (_edit_manifest(sha256=None), "lacks its 'arrays' or 'sha256'"),
    ],
)
def test_a_damaged_directory_is_refused_and_changes_nothing(
    trained: Engine,
    events: EventFile,
    tmp_path: Path,
    damage: Callable[[Path], None],
    fragment: str,
) -> None:
    directory = tmp_path / "models"
    save_models(directory, trained, source="test")
    damage(directory)
    engine = _fresh(events)
    before = engine.model_state()
    with pytest.raises(ModelError) as caught:
        load_models(directory, engine)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert _equal(engine.model_state(), before)


@pytest.mark.parametrize("kind", ["nowhere", "a file"])
def test_a_missing_directory_is_refused(events: EventFile, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "models"
    if kind == "a file":
        path.write_text("not a directory")
    engine = _fresh(events)
    before = engine.model_state()
    with pytest.raises(ModelError, match="does not exist" if kind == "nowhere" else "not a dir"):
        load_models(path, engine)
    assert _equal(engine.model_state(), before)


def test_models_of_another_catalog_are_refused(trained: Engine, tmp_path: Path) -> None:
    save_models(tmp_path / "models", trained, source="seed 5")
    other = Simulation(load_scenario("tiny"), seed=6, recall=False).engine
    before = other.model_state()
    with pytest.raises(ModelError, match="trained on another catalog"):
        load_models(tmp_path / "models", other)
    assert _equal(other.model_state(), before)


def _rewrite(directory: Path, change: Callable[[State], State]) -> None:
    """Change the arrays and re-sign the manifest, as another Quanzhan's writer would have."""
    with np.load(directory / ARRAYS, allow_pickle=False) as data:
        state = change({name: data[name] for name in data.files})
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **state)
    (directory / ARRAYS).write_bytes(buffer.getvalue())
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["arrays"] = {name: [list(a.shape), a.dtype.str] for name, a in state.items()}
    manifest["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (directory / MANIFEST).write_text(json.dumps(manifest))


def _longer_first(state: State) -> State:
    first = sorted(state)[0]
    return {**state, first: np.append(state[first], 0.0)}


def _unknown_part(state: State) -> State:
    return {**state, "nowhere.weights": np.zeros(3)}


@pytest.mark.parametrize("change", [_longer_first, _unknown_part])
def test_models_of_another_shape_are_refused(
    trained: Engine, events: EventFile, tmp_path: Path, change: Callable[[State], State]
) -> None:
    save_models(tmp_path / "models", trained, source="test")
    _rewrite(tmp_path / "models", change)
    engine = _fresh(events)
    before = engine.model_state()
    with pytest.raises(ModelError, match="does not fit this engine"):
        load_models(tmp_path / "models", engine)
    assert _equal(engine.model_state(), before)


def test_a_simulation_starts_from_a_model_directory(trained: Engine, tmp_path: Path) -> None:
    save_models(tmp_path / "models", trained, source="test")
    run = Simulation(load_scenario("tiny"), seed=5, recall=False, models=tmp_path / "models")
    assert _equal(run.engine.model_state(), trained.model_state())
