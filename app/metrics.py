"""Prometheus metrics of one application (its own registry, so several apps can live in one process)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import ROUND_STATUSES, Round

logger = logging.getLogger(__name__)


class _RoundCollector(Collector):
    """Rounds by status, read from the database at scrape time (workers may be other processes)."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("tbal_rounds", "Rounds by status", labels=["status"])

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("tbal_rounds", "Rounds by status", labels=["status"])
        try:
            with self._factory() as session:
                rows = session.execute(select(Round.status, func.count()).group_by(Round.status))
                counts = {status: int(n) for status, n in rows}
        except Exception as exc:  # the database is away: report nothing rather than fail the scrape
            logger.warning("metrics: could not count rounds: %s", exc)
            return
        for status in ROUND_STATUSES:
            gauge.add_metric([status], float(counts.get(status, 0)))
        yield gauge


class Metrics:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tbal_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "tbal_http_request_seconds", "HTTP request latency", ["method", "route"], registry=self.registry
        )
        self.items_ingested = Counter("tbal_items_ingested", "Items inserted", registry=self.registry)
        self.labels_received = Counter(
            "tbal_human_labels_received", "Human labels received", registry=self.registry
        )
        self.rounds_started = Counter("tbal_rounds_started", "Rounds enqueued", registry=self.registry)
        self.registry.register(_RoundCollector(factory))
