"""Prometheus metrics, one registry per app (tests build several apps in one process)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gatekeeper.domain.policy import feed_display
from gatekeeper.feeds import FeedState

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

        feed = ["feed"]  # the URL redacted (domain.policy.feed_display): /metrics needs no token
        self.feed_fetches = Counter(
            "gatekeeper_calendar_feed_fetches_total",
            "Fetches of published calendars, by result (ok: new copy; not_modified: 304; unchanged: same bytes; "
            "rejected: did not validate; error: not fetched).",
            ["feed", "result"],
            registry=self.registry,
        )
        self.feed_parses = Counter(
            "gatekeeper_calendar_feed_parses_total",
            "Parses of published calendars (a 304 or unchanged body costs none).",
            feed,
            registry=self.registry,
        )
        self.feed_last_success = Gauge(
            "gatekeeper_calendar_feed_last_success_timestamp_seconds",
            "When each published calendar was last fetched successfully (200 or 304).",
            feed,
            registry=self.registry,
        )
        self.feed_last_error = Gauge(
            "gatekeeper_calendar_feed_last_error_timestamp_seconds",
            "When the latest failed fetch of each published calendar happened (0: none since the last success).",
            feed,
            registry=self.registry,
        )
        self.feed_stale = Gauge(
            "gatekeeper_calendar_feed_stale",
            "1 while a published calendar is older than its maxAge (the gate of its targets is closed).",
            feed,
            registry=self.registry,
        )
        self.feed_events = Gauge(
            "gatekeeper_calendar_feed_events", "VEVENTs in each published calendar's good copy.", feed,
            registry=self.registry,
        )

    def feed_observed(self, url: str, outcome: str) -> None:
        """The FeedBook's observer: one fetch outcome or one parse."""
        if outcome == "parsed":
            self.feed_parses.labels(feed_display(url)).inc()
        else:
            self.feed_fetches.labels(feed_display(url), outcome).inc()

    def feeds_seen(self, states: Iterable[tuple[FeedState, bool]]) -> None:
        """Gauges from each feed's state and whether it is stale now."""
        for state, stale in states:
            name = feed_display(state.url)
            self.feed_last_success.labels(name).set(state.last_success.timestamp() if state.last_success else 0)
            self.feed_last_error.labels(name).set(state.last_error_at.timestamp() if state.last_error_at else 0)
            self.feed_stale.labels(name).set(1 if stale else 0)
            self.feed_events.labels(name).set(state.events or 0)

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
