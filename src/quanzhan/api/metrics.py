"""Prometheus metrics of one service process, served at ``/metrics``."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from quanzhan.store.events import EventResult


class Metrics:
    """A registry of its own per app, so several apps can live in one process (tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "quanzhan_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "quanzhan_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.events = Counter(
            "quanzhan_events", "Events by type of outcome", ["status"], registry=self.registry
        )
        self.decision_batches = Counter(
            "quanzhan_decision_batches", "Engine.decide calls", registry=self.registry
        )
        self.decision_requests = Counter(
            "quanzhan_decision_requests", "Page views decided", registry=self.registry
        )
        self.charged = Counter(
            "quanzhan_charged", "Money charged to campaigns", registry=self.registry
        )

    def count_events(self, results: Iterable[EventResult]) -> None:
        for result in results:
            self.events.labels(result.status).inc()
            if result.charged:
                self.charged.inc(result.charged)

    def count_batch(self, requests: int) -> None:
        self.decision_batches.inc()
        self.decision_requests.inc(requests)

    def render(self) -> bytes:
        return generate_latest(self.registry)
