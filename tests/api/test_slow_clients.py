"""A client that trickles its request body is cut off with 408 instead of holding a buffer and a
connection for as long as it likes; the server goes on serving others meanwhile."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import OPERATOR_KEY, Api, Server


@pytest.fixture
def quick_server(tmp_path: Path) -> Iterator[Server]:
    server = Server(
        f"sqlite:///{tmp_path / 'q.db'}",
        log=tmp_path / "server.log",
        env={"QUANZHAN_BODY_SECONDS": "1"},
    ).start()
    yield server
    server.stop()


def _read_response(raw: socket.socket) -> bytes:
    """Head and body may come in separate packets: read until the declared length has arrived."""
    answer = b""
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            return answer
        answer += chunk
        head, separator, body = answer.partition(b"\r\n\r\n")
        if separator:
            length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
            if length is None or len(body) >= int(length.group(1)):
                return answer


def test_a_trickled_body_is_cut_off_with_408(quick_server: Server) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", quick_server.port), timeout=20) as raw:
        raw.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + OPERATOR_KEY.encode() + b"\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        # Meanwhile other clients are served.
        api = Api(quick_server.url, OPERATOR_KEY)
        assert api.get("/v1/merchants").status_code == 200
        api.close()
        answer = _read_response(raw)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert b"not received within 1 s" in answer
    assert time.monotonic() - started < 15
