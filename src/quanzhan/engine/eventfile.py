"""The event file: one run's log, with the catalog and settings needed to learn from it again.

``quanzhan simulate --log-events PATH`` writes it; ``quanzhan train --events PATH`` learns from
it. It is a single NumPy ``.npz`` (zip of ``.npy`` arrays, compressed, no pickled objects), so
plain ``numpy.load(path)`` reads it; every entry is an array, scalars as 0-d arrays:

=====================  ============  =====================================================
key                    shape, dtype  meaning
=====================  ============  =====================================================
``format``             ``()`` str    always ``"quanzhan-events"``
``version``            ``()`` int    ``3``; a reader refuses versions it does not know
                                     (it reads ``1``, which has no ``orders.time``, and
                                     ``2``, which has no ``organic.*``)
``engine_config``      ``()`` str    the ``EngineConfig`` as JSON
``n_users``            ``()`` int    users of the market (user ids are ``0..n_users-1``)
``max_slots``          ``()`` int    the most ad slots of any page
``seed``               ``()`` int    the run's seed (training reuses it by default)
``end_time``           ``()`` float  seconds since the start when the log ends
``items.<field>``      per field     every ``ItemTable`` field (``n_categories`` 0-d)
``campaigns.<field>``  ``(c,)``      every ``CampaignTable`` field
``history.user``       ``(h,)`` i32  past clicks before the run: who ...
``history.item``       ``(h,)`` i32  ... and on which item
``impressions.<f>``    ``(m,)``      every ``Impressions`` column; ``x_ctr``, ``x_cvr`` are
                                     ``(m, f)``; ``click_id`` is -1 when not clicked
``orders.click_id``    ``(o,)`` i64  the clicks an order was attributed to
``orders.time``        ``(o,)`` f64  when each click's first order was placed (seconds)
``organic.<field>``    ``(r,)``      every ``OrganicEvents`` column: the platform's own
                                     results shown, and whether each was clicked
=====================  ============  =====================================================

The field lists follow the dataclasses (``ItemTable``, ``CampaignTable``, ``Impressions``,
``OrganicEvents``), so
a column added there is written and required here without a change to this module. Reading
checks everything a trainer relies on and turns any defect into one ``ModelError`` that names
the file and the problem.
"""

from __future__ import annotations

import os
import typing
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from quanzhan.domain import CampaignTable, ItemTable
from quanzhan.engine.config import EngineConfig
from quanzhan.engine.decision import Engine
from quanzhan.engine.log import EventLog, Impressions
from quanzhan.engine.organic import OrganicEvents
from quanzhan.engine.prediction import FEATURES, N_FEATURES
from quanzhan.errors import ModelError, OutputError

FORMAT = "quanzhan-events"
VERSION = 3
# Version 1 files hold no order times (the purchase model learns no delays), versions 1 and 2
# no organic results (tastes are learned from the ads alone).
_VERSIONS = (1, 2, 3)

_T = TypeVar("_T")
# What a damaged or foreign file raises somewhere inside ``np.load`` and the zip reader.
_READ_ERRORS = (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError)


@dataclass(frozen=True)
class EventFile:
    """An event file read back: the engine's inputs and a log filled with the run's events."""

    config: EngineConfig
    items: ItemTable
    campaigns: CampaignTable
    n_users: int
    max_slots: int
    seed: int
    end_time: float
    history_user: NDArray[np.int32]
    history_item: NDArray[np.int32]
    log: EventLog
    organic: OrganicEvents

    @property
    def n_impressions(self) -> int:
        return len(self.log)

    @property
    def n_clicks(self) -> int:
        return int(self.log.impressions().clicked.sum()) if len(self.log) else 0

    @property
    def n_orders(self) -> int:
        return len(self.log.ordered_clicks())


def write_event_file(
    path: Path,
    *,
    config: EngineConfig,
    items: ItemTable,
    campaigns: CampaignTable,
    n_users: int,
    max_slots: int,
    seed: int,
    history_user: NDArray[np.int32],
    history_item: NDArray[np.int32],
    log: EventLog,
    end_time: float,
    organic: OrganicEvents,
) -> None:
    """Write the file atomically: into a temporary name beside ``path``, then renamed over it,
    so a crash leaves either the old file or the new one, never half of one."""
    arrays: dict[str, NDArray[Any]] = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION, dtype=np.int64),
        "engine_config": np.array(config.model_dump_json()),
        "n_users": np.array(n_users, dtype=np.int64),
        "max_slots": np.array(max_slots, dtype=np.int64),
        "seed": np.array(seed, dtype=np.int64),
        "end_time": np.array(end_time, dtype=np.float64),
        "history.user": np.asarray(history_user, dtype=np.int32),
        "history.item": np.asarray(history_item, dtype=np.int32),
    }
    ordered, order_time = log.orders()
    arrays["orders.click_id"] = np.asarray(ordered, dtype=np.int64)
    arrays["orders.time"] = np.asarray(order_time, dtype=np.float64)
    for prefix, table in (("items", items), ("campaigns", campaigns)):
        for field in fields(table):
            arrays[f"{prefix}.{field.name}"] = np.asarray(getattr(table, field.name))
    for name, column in _impression_columns(log).items():
        arrays[f"impressions.{name}"] = column
    for field in fields(organic):
        arrays[f"organic.{field.name}"] = np.asarray(getattr(organic, field.name))
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with temporary.open("wb") as handle:
            np.savez_compressed(handle, allow_pickle=False, **arrays)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"cannot write event file {path}: {error.strerror or error}") from error


def read_event_file(path: Path) -> EventFile:
    """Read and check an event file; any defect is one ``ModelError`` naming ``path``."""
    if not path.exists():
        raise ModelError(f"event file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"event file {path} is not a file")
    try:
        # Opened here, not by ``np.load``, which leaks its handle when the zip is unreadable.
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as data:
            reader = _Reader(path, {name: data[name] for name in data.files})
    except _READ_ERRORS as error:
        reason = " ".join(str(error).split()) or type(error).__name__  # one line
        raise ModelError(
            f"event file {path} is not readable (corrupt or truncated?): {reason}"
        ) from error
    return reader.event_file()


def fresh_engine(events: EventFile, *, seed: int | None = None) -> Engine:
    """An engine on the file's catalog, settings and history that has learned nothing yet;
    ``seed`` defaults to the run's."""
    return Engine(
        config=events.config,
        items=events.items,
        campaigns=events.campaigns,
        n_users=events.n_users,
        max_slots=events.max_slots,
        history_user=events.history_user,
        history_item=events.history_item,
        seed=events.seed if seed is None else seed,
    )


def train_engine(events: EventFile, *, seed: int | None = None) -> Engine:
    """A fresh engine on the file's catalog, settings and history, refreshed once on its log.

    ``seed`` defaults to the run's. One refresh at ``end_time`` learns from every logged event
    at once, as the engine's scheduled refreshes would have with the whole log in hand.
    """
    engine = fresh_engine(events, seed=seed)
    if len(events.log):
        engine.record(events.log.impressions())
    engine.record_attributed_orders(*events.log.orders())
    engine.record_organic(events.organic)
    engine.refresh(now=events.end_time)
    return engine


def _impression_columns(log: EventLog) -> dict[str, NDArray[Any]]:
    if len(log):
        found = log.impressions()
        return {f.name: np.asarray(getattr(found, f.name)) for f in fields(Impressions)}
    # An empty log still writes every column, so the reader's checks hold for it too.
    dtypes = _dtypes(Impressions)
    return {
        f.name: np.zeros((0, 0) if f.name.startswith("x_") else 0, dtype=dtypes.get(f.name))
        for f in fields(Impressions)
    }


def _dtypes(cls: type) -> dict[str, Any]:
    """The dtype (or ``int``/``float``) each field is annotated with, where it can be told."""
    found: dict[str, Any] = {}
    for name, hint in typing.get_type_hints(cls).items():
        if hint is int or hint is float:
            found[name] = hint
            continue
        args = typing.get_args(hint)
        inner = typing.get_args(args[-1]) if args else ()
        if inner and isinstance(inner[0], type) and issubclass(inner[0], np.generic):
            found[name] = np.dtype(inner[0])
    return found


class _Reader:
    """The checks, each a clear sentence, over the arrays of one file."""

    def __init__(self, path: Path, data: dict[str, NDArray[Any]]) -> None:
        self.path = path
        self.data = data

    def fail(self, problem: str) -> ModelError:
        return ModelError(f"event file {self.path}: {problem}")

    def array(self, key: str) -> NDArray[Any]:
        if key not in self.data:
            raise self.fail(f"has no {key!r} array (not a Quanzhan event file, or a damaged one)")
        return self.data[key]

    def scalar(self, key: str, kind: type[_T]) -> _T:
        value = self.array(key)
        if value.ndim != 0:
            raise self.fail(f"{key!r} should be a single value, not shape {value.shape}")
        try:
            return kind(value.item())  # type: ignore[call-arg]
        except (TypeError, ValueError):
            raise self.fail(f"{key!r} is not a {kind.__name__}: {value.item()!r}") from None

    def column(self, key: str, dtype: Any, ndim: int = 1) -> NDArray[Any]:
        value = self.array(key)
        if value.ndim != ndim:
            raise self.fail(f"{key!r} should have {ndim} dimension(s), not shape {value.shape}")
        if dtype is not None and value.size and not np.can_cast(value.dtype, dtype, "same_kind"):
            raise self.fail(f"{key!r} holds {value.dtype}, not {np.dtype(dtype)}")
        if dtype is not None and value.size and np.issubdtype(value.dtype, np.integer):
            # A narrower integer column would wrap a value it cannot hold into a valid-looking one.
            bounds = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
            if bounds is not None and (value.min() < bounds.min or value.max() > bounds.max):
                raise self.fail(f"{key!r} holds values outside {np.dtype(dtype)}")
        return value.astype(dtype, copy=False) if dtype is not None else value

    def table(self, cls: type[_T], prefix: str) -> _T:
        dtypes = _dtypes(cls)
        values: dict[str, Any] = {}
        rows: dict[str, int] = {}
        for field in fields(cls):  # type: ignore[arg-type]
            key = f"{prefix}.{field.name}"
            kind = dtypes.get(field.name)
            if kind is int or kind is float:
                values[field.name] = self.scalar(key, kind)
                continue
            value = self.column(key, kind, ndim=max(self.array(key).ndim, 1))
            values[field.name] = value
            rows[field.name] = len(value)
        if len(set(rows.values())) > 1:
            shown = ", ".join(f"{name} {n}" for name, n in rows.items())
            raise self.fail(f"{prefix} columns differ in length: {shown}")
        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise self.fail(f"the {prefix} table is invalid: {error}") from None

    def event_file(self) -> EventFile:
        kind = self.scalar("format", str)
        if kind != FORMAT:
            raise self.fail(f"format is {kind!r}, not {FORMAT!r}")
        version = self.scalar("version", int)
        if version not in _VERSIONS:
            known = " and ".join(str(v) for v in _VERSIONS)
            raise self.fail(f"is version {version}; this Quanzhan reads versions {known}")
        try:
            config = EngineConfig.model_validate_json(self.scalar("engine_config", str))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "config"
            raise self.fail(f"engine config is invalid: {where}: {first['msg']}") from None
        items = self.table(ItemTable, "items")
        campaigns = self.table(CampaignTable, "campaigns")
        n_users = self.scalar("n_users", int)
        history_user = self.column("history.user", np.int32)
        history_item = self.column("history.item", np.int32)
        if len(history_user) != len(history_item):
            raise self.fail("history.user and history.item differ in length")
        self.check_range("campaigns.item", campaigns.item, len(items))
        self.check_range("history.item", history_item, len(items))
        self.check_range("history.user", history_user, n_users)
        log = EventLog()
        impressions = self.table(Impressions, "impressions")
        for name in ("x_ctr", "x_cvr"):
            width = getattr(impressions, name).shape[1:]
            if len(impressions) and width != (N_FEATURES,):
                raise self.fail(
                    f"impressions.{name} holds {width[0] if width else 0} features per row; this"
                    f" Quanzhan's models take {N_FEATURES} ({', '.join(FEATURES)}): log the"
                    " events again with it"
                )
        self.check_range("impressions.campaign", impressions.campaign, len(campaigns))
        self.check_range("impressions.user", impressions.user, n_users, low=-1)  # -1: unknown
        log.add_impressions(impressions)
        ordered = self.column("orders.click_id", np.int64)
        if version >= 2:
            order_time = self.column("orders.time", np.float64)
            if len(order_time) != len(ordered):
                raise self.fail("orders.click_id and orders.time differ in length")
        else:
            order_time = np.full(len(ordered), np.nan)
        log.add_attributed_orders(ordered, order_time)
        organic = OrganicEvents.empty()
        if version >= 3:
            organic = self.table(OrganicEvents, "organic")
            self.check_range("organic.item", organic.item, len(items))
            self.check_range("organic.user", organic.user, n_users, low=-1)  # -1: unknown
        return EventFile(
            config=config,
            items=items,
            campaigns=campaigns,
            n_users=n_users,
            max_slots=self.scalar("max_slots", int),
            seed=self.scalar("seed", int),
            end_time=self.scalar("end_time", float),
            history_user=history_user,
            history_item=history_item,
            log=log,
            organic=organic,
        )

    def check_range(self, key: str, values: NDArray[Any], n: int, *, low: int = 0) -> None:
        if values.size and (values.min() < low or values.max() >= n):
            raise self.fail(f"{key!r} holds ids outside {low}..{n - 1}")
