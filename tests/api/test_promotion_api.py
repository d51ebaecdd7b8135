"""The promotion calendar over HTTP, on SQLite and PostgreSQL: the operator announces windows,
lists and withdraws them; a window that is not one is refused with a 422 and stores nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from harness import Api, Server
from support import SINGLES_DAY, module_server

pytestmark = pytest.mark.service


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with module_server(request, tmp_path_factory.mktemp("promotions")) as running:
        yield running


def _made(ops: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = ops.post("/v1/promotions", body)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def test_windows_are_announced_listed_and_withdrawn(shared: Server, ops: Api) -> None:
    evening = _made(ops, SINGLES_DAY)
    assert {k: evening[k] for k in SINGLES_DAY} == SINGLES_DAY
    morning = _made(ops, {**SINGLES_DAY, "start_hour": 0, "end_hour": 2, "traffic_factor": 1.5})
    later = _made(ops, {**SINGLES_DAY, "day": "2026-12-12"})
    listed = ops.get("/v1/promotions").json()
    assert [p["id"] for p in listed] == [morning["id"], evening["id"], later["id"]]
    # Sent again, or overlapping a window of its day, a window would count twice: refused.
    for clash in (SINGLES_DAY, {**SINGLES_DAY, "start_hour": 23, "end_hour": 24}):
        again = ops.post("/v1/promotions", clash)
        assert again.status_code == 409 and f"promotion {evening['id']}" in again.json()["detail"]
    assert len(ops.get("/v1/promotions").json()) == 3
    # Touching is not overlapping.
    touching = _made(ops, {**SINGLES_DAY, "start_hour": 23.5, "end_hour": 24})
    assert ops.client.delete(f"/v1/promotions/{touching['id']}").status_code == 204
    assert ops.client.delete(f"/v1/promotions/{evening['id']}").status_code == 204
    gone = ops.client.delete(f"/v1/promotions/{evening['id']}")
    assert gone.status_code == 404 and "no promotion" in gone.json()["detail"]
    assert [p["id"] for p in ops.get("/v1/promotions").json()] == [morning["id"], later["id"]]
    for made in (morning, later):
        assert ops.client.delete(f"/v1/promotions/{made['id']}").status_code == 204


@pytest.mark.parametrize(
    "change",
    [
        {"start_hour": 20, "end_hour": 20},
        {"start_hour": 21, "end_hour": 20},
        {"end_hour": 24.5},
        {"start_hour": -1},
        {"traffic_factor": 0},
        {"traffic_factor": -2},
        {"traffic_factor": 101},
        {"day": "2026-13-01"},
        {"day": "2026-2-1"},
        {"day": "tomorrow"},
        {"day": 20261111},
        {"colour": "red"},
    ],
)
def test_a_window_that_is_not_one_is_refused(
    shared: Server, ops: Api, change: dict[str, Any]
) -> None:
    response = ops.post("/v1/promotions", {**SINGLES_DAY, **change})
    assert response.status_code == 422, response.text
    assert ops.get("/v1/promotions").json() == []
