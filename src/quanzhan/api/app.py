"""The FastAPI application: merchant set-up, ad decisions, events, reports, health and metrics.

``create_app(settings)`` builds one; ``app_from_environment`` is the factory ``quanzhan serve``
hands to uvicorn (settings from ``QUANZHAN_*`` variables, so every worker process gets the same).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Receive, Scope, Send

from quanzhan import __version__
from quanzhan.api.control import wall_clock
from quanzhan.api.logs import configure
from quanzhan.api.metrics import Metrics
from quanzhan.api.routes import catalog, promotions, reports, serving
from quanzhan.api.runtime import Runtime
from quanzhan.api.schemas import Health
from quanzhan.api.settings import ServiceSettings

log = logging.getLogger("quanzhan.http")

Message = MutableMapping[str, Any]


def create_app(settings: ServiceSettings, *, clock: Callable[[], float] = wall_clock) -> FastAPI:
    runtime = Runtime(settings, clock=clock)
    metrics = runtime.metrics

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        log.info("started", extra={"database": runtime.database.dialect})
        try:
            yield
        finally:
            await runtime.stop()
            log.info("stopped")

    app = FastAPI(
        title="Quanzhan",
        version=__version__,
        summary="Full-site promotion: merchant set-up, ad decisions, events and reports.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    # Routes are matched in order: the platform's hot ones first.
    app.include_router(serving.router)
    app.include_router(catalog.router)
    app.include_router(reports.router)
    app.include_router(promotions.router)

    @app.get("/healthz", response_model=Health, tags=["service"])
    async def healthz() -> Health:
        """Liveness: answers as soon as the process serves HTTP (no database round trip)."""
        return Health(status="ok")

    @app.get("/metrics", response_class=PlainTextResponse, tags=["service"])
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.add_middleware(
        _Guard,
        metrics=metrics,
        max_body=settings.max_body_bytes,
        body_seconds=settings.body_seconds,
    )
    return app


class _Guard:
    """Pure ASGI middleware: refuses oversized bodies with 413 before the app reads them, and
    counts every request for the metrics (cheaper than Starlette's BaseHTTPMiddleware)."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, max_body: int, body_seconds: float
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body
        self.body_seconds = body_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await _refuse(send, 400, "malformed Content-Length header")
            self._count(scope, 400, start)
            return
        if declared is not None and int(declared) > self.max_body:
            await _refuse(send, 413, f"request body over {self.max_body} bytes")
            self._count(scope, 413, start)
            return
        body = bytearray()
        more = True
        try:
            # A client that trickles its body would hold a buffer and a connection for as long
            # as it liked: the whole body must arrive within the deadline.
            async with asyncio.timeout(self.body_seconds):
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.max_body:
                        await _refuse(send, 413, f"request body over {self.max_body} bytes")
                        self._count(scope, 413, start)
                        return
        except TimeoutError:
            await _refuse(send, 408, f"request body not received within {self.body_seconds:g} s")
            self._count(scope, 408, start)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, replay, sending)
        finally:
            self._count(scope, status, start)

    def _count(self, scope: Scope, status: int, start: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(scope["method"], path, str(status)).inc()
        self.metrics.latency.labels(path).observe(time.perf_counter() - start)
        if status >= 500:
            log.error("request failed", extra={"path": scope["path"], "status": status})


async def _refuse(send: Callable[[Message], Awaitable[None]], status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def app_from_environment() -> FastAPI:
    # Configured here, in the process that serves: uvicorn's workers are fresh processes.
    configure(os.environ.get("QUANZHAN_LOG_LEVEL", "info"))
    return create_app(ServiceSettings.from_environment())
