"""Prometheus metrics, one registry per app (tests build several apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONFIG_STATUSES = ("ok", "stale", "invalid")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            "gatekeeper_decisions_total", "Decisions made, by verdict.", ["verdict"], registry=self.registry
        )
        self.decision_reasons = Counter(
            "gatekeeper_decision_reasons_total",
            "Reasons given in decisions, by check and code.",
            ["check", "code"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "gatekeeper_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.break_glass = Counter(
            "gatekeeper_break_glass_total", "Break-glass approvals given.", registry=self.registry
        )
        self.config_status = Gauge(
            "gatekeeper_config_status", "1 for the current configuration status.", ["status"], registry=self.registry
        )
        self.actions = Gauge(
            "gatekeeper_actions",
            "Outbox actions by status (failing: waiting for a retry after a failure), as last counted.",
            ["status"],
            registry=self.registry,
        )
        self.audit_head_seq = Gauge(
            "gatekeeper_audit_head_seq", "Sequence number of the newest audit record.", registry=self.registry
        )
        self.audit_head_info = Gauge(
            "gatekeeper_audit_head_info",
            "The newest audit record: its hash as a label, its seq as the value (keep heads outside the database).",
            ["hash"],
            registry=self.registry,
        )
        self._head_hash: str | None = None
        self.freezes = Gauge(
            "gatekeeper_freezes",
            "Ad-hoc freezes in force, by state (active, scheduled), as last read.",
            ["state"],
            registry=self.registry,
        )
        self.config_reloads = Counter(
            "gatekeeper_config_reloads_total", "Configuration loads, by result.", ["result"], registry=self.registry
        )

    def audit_head_seen(self, seq: int, digest: str) -> None:
        """One series at a time: the head's hash as a label, its seq as the value."""
        if self._head_hash not in (None, digest):
            self.audit_head_info.remove(self._head_hash)
        self._head_hash = digest
        self.audit_head_seq.set(seq)
        self.audit_head_info.labels(digest).set(seq)

    def actions_seen(self, counts: dict[str, int]) -> None:
        for status, count in counts.items():
            self.actions.labels(status).set(count)

    def freezes_seen(self, active: int, scheduled: int) -> None:
        self.freezes.labels("active").set(active)
        self.freezes.labels("scheduled").set(scheduled)

    def config_loaded(self, status: str) -> None:
        for name in CONFIG_STATUSES:
            self.config_status.labels(name).set(1 if name == status else 0)
        self.config_reloads.labels("ok" if status == "ok" else "rejected").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
