"""The model directory: an engine's learned parameters on disk, and the checks to load them.

A model directory holds two files:

``model.npz``
    ``Engine.model_state()`` as one array per name (``predictor.click.bias``,
    ``affinity.left``, ...), written with ``numpy.savez``; no pickled objects.
``manifest.json``
    ``format`` (``"quanzhan-models"``), ``version`` (2), ``catalog`` (the catalog fingerprint,
    below), ``n_items``, ``n_campaigns``, ``arrays`` (``{name: [shape, dtype]}``), ``sha256``
    (of the ``model.npz`` bytes), ``source`` (what it was trained from) and ``engine_config``.

Parameters are per item, per category and per campaign row, so they only mean something for
the catalog and campaigns they were learned on: the fingerprint, a SHA-256 over every item
column and the campaigns' item column, is compared before anything is loaded. Loading checks
everything first and then hands the state to ``Engine.load_model_state``, which itself changes
nothing when names or shapes differ, so a refused directory leaves the engine as it was.
The code never lists parameter names: whatever ``model_state`` holds is written and read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quanzhan.domain import ItemTable
from quanzhan.engine.decision import Engine
from quanzhan.errors import ModelError, OutputError

FORMAT = "quanzhan-models"
# 2: item features are lifts over a model without the item, not smoothed rates.
VERSION = 2
MANIFEST = "manifest.json"
ARRAYS = "model.npz"


def catalog_fingerprint(items: ItemTable, campaign_item: NDArray[np.int32]) -> str:
    """SHA-256 over the item table (every field, with dtype and shape) and the campaigns' items.

    Dtypes and shapes are hashed too, so equal bytes read under another layout still differ.
    """
    digest = hashlib.sha256()
    named: list[tuple[str, Any]] = [(f.name, getattr(items, f.name)) for f in fields(items)]
    named.append(("campaigns.item", campaign_item))
    for name, value in named:
        array = np.ascontiguousarray(value)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_models(directory: Path, engine: Engine, *, source: str) -> dict[str, Any]:
    """Write the engine's model state to ``directory`` and return the manifest.

    Both files are written into a temporary directory beside it, which then takes its place, so
    a reader never sees a half-written model. An existing model directory is replaced; a file,
    or a non-empty directory without a manifest, is refused rather than overwritten.
    """
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"model directory {directory} is a file")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / MANIFEST).is_file():
        raise OutputError(
            f"{directory} is not empty and not a model directory; refusing to overwrite it"
        )
    state = engine.model_state()
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **state)
    payload = buffer.getvalue()
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "catalog": catalog_fingerprint(engine.items, engine.campaigns.item),
        "n_items": len(engine.items),
        "n_campaigns": len(engine.campaigns),
        "arrays": {name: [list(a.shape), a.dtype.str] for name, a in sorted(state.items())},
        "sha256": hashlib.sha256(payload).hexdigest(),
        "source": source,
        "engine_config": json.loads(engine.config.model_dump_json()),
    }
    temporary = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        (temporary / ARRAYS).write_bytes(payload)
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if directory.exists():
            os.replace(directory, old)  # a directory cannot be renamed over a non-empty one
        os.replace(temporary, directory)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        reason = error.strerror or error
        raise OutputError(f"cannot write model directory {directory}: {reason}") from error
    return manifest


def load_models(directory: Path, engine: Engine) -> dict[str, Any]:
    """Load a model directory into ``engine`` and return its manifest.

    Any problem (missing, corrupt, another version, another catalog, other shapes) is one
    ``ModelError`` naming the directory, and the engine is left unchanged.
    """
    manifest = _read_manifest(directory)
    fingerprint = catalog_fingerprint(engine.items, engine.campaigns.item)
    trained = (manifest.get("n_items"), manifest.get("n_campaigns"))
    if trained != (len(engine.items), len(engine.campaigns)):
        raise ModelError(
            f"model directory {directory} was trained for {trained[0]} items and {trained[1]} "
            f"campaigns; this engine has {len(engine.items)} and {len(engine.campaigns)}"
        )
    if manifest.get("catalog") != fingerprint:
        raise ModelError(
            f"model directory {directory} was trained on another catalog "
            "(its items or campaigns differ from this engine's)"
        )
    state = _read_arrays(directory, manifest)
    try:
        engine.load_model_state(state)
    except ValueError as error:
        reason = " ".join(str(error).split())  # one line, whatever the engine said
        raise ModelError(
            f"model directory {directory} does not fit this engine: {reason}"
        ) from None
    return manifest


def _read_manifest(directory: Path) -> dict[str, Any]:
    if not directory.exists():
        raise ModelError(f"model directory {directory} does not exist")
    if not directory.is_dir():
        raise ModelError(f"model directory {directory} is not a directory")
    path = directory / MANIFEST
    if not path.is_file():
        raise ModelError(f"model directory {directory} has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelError(f"{path} is not a Quanzhan model manifest (format {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise ModelError(
            f"{path} is version {manifest.get('version')!r}; this Quanzhan reads version {VERSION}"
        )
    if not isinstance(manifest.get("arrays"), dict) or not isinstance(manifest.get("sha256"), str):
        raise ModelError(f"{path} lacks its 'arrays' or 'sha256' entry")
    return manifest


def _read_arrays(directory: Path, manifest: dict[str, Any]) -> dict[str, NDArray[np.float64]]:
    path = directory / ARRAYS
    try:
        payload = path.read_bytes()
    except OSError as error:
        raise ModelError(f"model directory {directory} has no readable {ARRAYS}") from error
    if hashlib.sha256(payload).hexdigest() != manifest["sha256"]:
        raise ModelError(f"{path} is corrupt: its checksum differs from the manifest's")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as data:
            state = {name: np.asarray(data[name], dtype=np.float64) for name in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise ModelError(f"{path} is not readable: {error}") from None
    try:
        listed = {name: tuple(spec[0]) for name, spec in manifest["arrays"].items()}
    except (TypeError, IndexError, KeyError):
        raise ModelError(f"{directory / MANIFEST} has a malformed 'arrays' entry") from None
    found = {name: array.shape for name, array in state.items()}
    if listed != found:
        raise ModelError(f"{path} does not hold the arrays its manifest lists")
    return state
