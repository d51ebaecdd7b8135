"""The service under test: ``quanzhan serve`` in a subprocess, and an HTTP client for it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

OPERATOR_KEY = "test-operator-key-0123456789"
POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
_REQUIRED = os.environ.get("QUANZHAN_REQUIRE_SERVICES") == "1"


def absent(what: str, why: object) -> None:
    message = f"{what} is not reachable: {why}"
    if _REQUIRED:
        pytest.fail(f"{message} (QUANZHAN_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """``quanzhan serve`` in a subprocess."""

    def __init__(
        self,
        database_url: str,
        *,
        log: Path,
        redis_url: str | None = None,
        tick_seconds: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.tick_seconds = tick_seconds
        self.log = log
        self.extra_env = env or {}
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60.0) -> Server:
        self.port = free_port()
        command = [
            sys.executable, "-m", "quanzhan.cli", "serve",
            "--port", str(self.port),
            "--database", self.database_url,
            "--tick-seconds", str(self.tick_seconds),
            "--log-level", "warning",
        ]  # fmt: skip
        if self.redis_url:
            command += ["--redis", self.redis_url]
        env = {**os.environ, "QUANZHAN_OPERATOR_KEY": OPERATOR_KEY, **self.extra_env}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.logs()}")
            try:
                with httpx.Client(timeout=1.0) as probe:
                    if probe.get(f"{self.url}/healthz").status_code == 200:
                        return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not start in {timeout} s: {self.logs()}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush, nothing."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


class Api:
    """An HTTP client holding one API key."""

    def __init__(self, base_url: str, key: str) -> None:
        self.client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0
        )
        self.children: list[Api] = []  # merchants' clients made through this one, closed with it

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.client.patch(path, json=json, **kwargs)

    def close(self) -> None:
        for child in self.children:
            child.close()
        self.client.close()


def new_merchant(operator: Api, base_url: str, name: str = "shop") -> Api:
    response = operator.post("/v1/merchants", {"name": name})
    assert response.status_code == 201, response.text
    merchant = Api(base_url, response.json()["api_key"])
    operator.children.append(merchant)
    return merchant
