"""Helpers shared by the contract tests: a server per test module, ads to click, token contents."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from harness import POSTGRES_ADMIN, Api, Server

from quanzhan.api.tokens import ClickToken

# A promotion window the operator announces: Singles' Day evening, three times the traffic.
SINGLES_DAY = {"day": "2026-11-11", "start_hour": 18, "end_hour": 23.5, "traffic_factor": 3.0}


class Clock:
    """A clock the test moves: ``clock.now`` is what the service reads."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextmanager
def module_server(
    request: pytest.FixtureRequest, folder: Path, *, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """A server on a SQLite file or a fresh PostgreSQL schema (``request.param``), for every test
    of a module: each test makes its own merchants, so they do not see each other's rows."""
    schema = None
    admin: Any = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'quanzhan.db'}"
    else:
        from sqlalchemy import text

        admin = request.getfixturevalue("postgres_admin")
        schema = f"qz_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{POSTGRES_ADMIN}?options=-csearch_path%3D{schema}"
    running = Server(url, log=folder / "server.log", env=env).start()
    try:
        yield running
    finally:
        running.stop()
        if schema is not None:
            from sqlalchemy import text

            with admin.connect() as connection:
                connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def word() -> str:
    """A word no other test's titles or queries contain."""
    return "w" + uuid.uuid4().hex[:12]


def token_fields(token: str) -> dict[str, Any]:
    """What a click token carries (its payload is base64url JSON: a version, then the fields)."""
    payload = token.split(".")[0]
    version, *values = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert version == 1
    return dict(zip([f.name for f in fields(ClickToken)], values, strict=True))


def encode_payload(values: dict[str, Any]) -> str:
    """A token payload (no signature) holding ``values``."""
    raw = json.dumps([1, *values.values()], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def ad_for(
    operator: Api, body: dict[str, Any], campaign_id: int, *, timeout: float = 15.0
) -> dict[str, Any]:
    """An ad of ``campaign_id`` from a decision for ``body``, asking again while the serving
    snapshot has not picked the campaign up yet."""
    deadline = time.monotonic() + timeout
    while True:
        response = operator.post("/v1/decisions", body)
        assert response.status_code == 200, response.text
        for ad in response.json()["ads"]:
            if ad["campaign_id"] == campaign_id:
                return dict(ad)
        assert time.monotonic() < deadline, f"campaign {campaign_id} won no slot for {body}"
        time.sleep(0.1)


def no_ads_for(
    operator: Api, body: dict[str, Any], campaign_id: int, *, timeout: float = 15.0
) -> None:
    """Once the serving snapshot has caught up, ``campaign_id`` wins no slot for ``body``, in
    several decisions in a row."""
    deadline = time.monotonic() + timeout
    in_a_row = 0
    while in_a_row < 5:
        response = operator.post("/v1/decisions", body)
        assert response.status_code == 200, response.text
        if any(ad["campaign_id"] == campaign_id for ad in response.json()["ads"]):
            assert time.monotonic() < deadline, f"campaign {campaign_id} still shown for {body}"
            in_a_row = 0
            time.sleep(0.1)
        else:
            in_a_row += 1


def events(operator: Api, *batch: dict[str, Any]) -> dict[str, Any]:
    response = operator.post("/v1/events", {"events": list(batch)})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert len(answer["results"]) == len(batch)
    assert [r["id"] for r in answer["results"]] == [e["id"] for e in batch]
    return answer


def report(api: Api, campaign_id: int) -> dict[str, Any]:
    response = api.get(f"/v1/reports/campaigns/{campaign_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
