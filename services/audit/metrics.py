"""The audit's own metric: ``renja_audit_anomalies_total{kind}``, the anomalies its projection recorded.

Counted from the projection (``audit_anomalies``) at start-up, then per folded batch of the live
consumer; a refold after a ``PROJECTION_VERSION`` bump starts from the emptied tables and counts again.
Registered on the app's own registry (``shared.web.metrics``), so ``GET /metrics`` shows it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.sop import ANOMALY_KINDS


class AnomalyCollector(Collector):
    """Anomalies recorded by kind (every kind present, 0 until one is seen)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(ANOMALY_KINDS, 0)

    def reset(self, counts: Mapping[str, int]) -> None:
        """Start from the projection's counts (``store.anomaly_counts``)."""
        self.counts = dict.fromkeys(ANOMALY_KINDS, 0) | dict(counts)

    def add(self, counts: Mapping[str, int]) -> None:
        """Add one folded batch's anomalies (``BatchResult.anomalies``)."""
        for kind, n in counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "renja_audit_anomalies",
            "Events the audit flagged as anomalies (SOP order, role, unknown Renja, duplicate id with other bytes).",
            labels=["kind"],
        )
        for kind, n in sorted(self.counts.items()):
            family.add_metric([kind], n)
        yield family
