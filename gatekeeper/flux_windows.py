"""Flux targets follow their gate when it opens or closes with no new release (DESIGN §3 Flux).

A decision suspends or resumes a Flux target (``flux_gate``); this covers the instants at which
nothing is decided: a calendar window or a freeze that begins or ends. With ``FLUX_GATE``, the
deferrals loop of every replica asks, for the newest release of each governed Flux target,
whether the gate (its enforcing policies' calendars and the freezes that match it) is closed now,
and acts when that, or the newest release or its status, differs from what this replica saw last
(at start-up: once for each target):

- a release still open (pending, deferred, approved) is decided again through the service's one
  decision path, whose decision suspends (defer) or resumes (approve) the target as any decision
  does;
- an applied or verified one cannot be decided again: its ``flux_gate`` action is enqueued
  directly, suspending when the gate closed, resuming with a reconcile request at the instant it
  opened, unless the release's newest ``flux_gate`` action already does that. The key names
  the transition, and the outbox drops an action identical to the last one done, so replicas
  that see the same transition enqueue it once. One applied whose latest decision is
  ``rollback`` keeps its target suspended until its revert (a newer release) is approved; a
  rolled-back one (its revert is on the branch) follows the gate;
- a rejected or superseded newest release is left as its last decision left it.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime, timedelta

from gatekeeper import effects
from gatekeeper.domain.policy import Mode
from gatekeeper.domain.records import NewAction, ReleaseRecord
from gatekeeper.domain.releases import REDECIDABLE, ReleaseStatus
from gatekeeper.domain.types import from_epoch
from gatekeeper.service import GateService

logger = logging.getLogger(__name__)

GONE_OUT = (ReleaseStatus.APPLIED, ReleaseStatus.VERIFIED)
LOOKBACK = timedelta(days=1)  # how far back the instant a gate opened or closed is looked for


class FluxWindows:
    def __init__(self, service: GateService, limit: int = 1000, interval: float = 0.0) -> None:
        self.service = service
        self.limit = limit
        self.interval = interval  # seconds between looks (each reads every Flux target's newest release)
        self._looked = -math.inf
        # target -> (newest release, its status, gate closed), as last acted on
        self._seen: dict[str, tuple[int, ReleaseStatus, bool]] = {}

    def run_once(self) -> int:
        """One look at every governed Flux target; returns how many it acted on."""
        service = self.service
        if not service.flux_gate or service.config.state.configuration is None:
            return 0
        if time.monotonic() - self._looked < self.interval:
            return 0
        self._looked = time.monotonic()
        now = service.clock().replace(microsecond=0)
        acted = 0
        for release in service.store.newest_releases(effects.FLUX_PREFIX, self.limit):
            closed = self._closed(release.target, now)
            if closed is None:
                continue
            seen = (release.id, release.status, closed)
            if self._seen.get(release.target) == seen:
                continue
            try:
                self._follow(release, closed, now)
            except Exception:  # one target's trouble never stops the others (tried again next pass)
                logger.exception("%s: could not follow its gate", release.target, extra={"target": release.target})
                continue
            self._seen[release.target] = seen
            acted += 1
        return acted

    def _closed(self, target: str, now: datetime) -> bool | None:
        """Whether the gate of ``target`` is closed at ``now`` (None: no enforcing policy)."""
        configuration = self.service.config.state.configuration
        assert configuration is not None  # noqa: S101 - checked by run_once
        if not any(p.mode is Mode.ENFORCE for p in configuration.governing(target)):
            return None
        return self.service.forecast.status(target, now, enforced_only=True).closed

    def _follow(self, release: ReleaseRecord, closed: bool, now: datetime) -> None:
        service = self.service
        if release.status in REDECIDABLE:
            record = service.redecide(release, "gate_closed" if closed else "gate_opened")
            if not record.decided_now:  # the same answer as before: its target must be where it says
                self._hold(record.release, effects.flux_gate(record.release, record.decision), now)
            return
        suspend = self._suspend(release, closed)
        if suspend is None:
            return
        # When the gate closed or opened; a rollback holds the target from its decision on.
        since = self._since(release.target, closed, now) if suspend is closed else release.updated_at
        self._hold(release, effects.flux_window(release, suspend, since), now)

    def _hold(self, release: ReleaseRecord, action: NewAction | None, now: datetime) -> None:
        """Enqueue ``action`` (suspend or resume) unless the release's newest one already does it."""
        service = self.service
        if action is None or self._already(release, bool(action.payload["suspend"])):
            return
        suspend = bool(action.payload["suspend"])
        with service.store.transaction() as tx:
            enqueued = tx.enqueue(action, now)
        if enqueued:
            service.wake()
            logger.info("%s: %s", release.target, "suspend" if suspend else "resume",
                        extra={"target": release.target, "release_id": release.id})  # fmt: skip

    def _suspend(self, release: ReleaseRecord, closed: bool) -> bool | None:
        """What a newest release that cannot be decided again asks of its target: applied and
        approved, or rolled back (its revert on the branch), follow the gate; applied and awaiting
        its rollback stays suspended; rejected or superseded is left alone (None)."""
        if release.status is ReleaseStatus.ROLLED_BACK:
            return closed
        if release.status not in GONE_OUT:
            return None
        detail = self.service.store.release(release.id)
        latest = detail.decisions[-1].verdict if detail is not None and detail.decisions else None
        return closed or latest == "rollback"

    def _already(self, release: ReleaseRecord, suspend: bool) -> bool:
        """Whether the release's newest ``flux_gate`` action (waiting, running or done) already
        sets what the gate asks (a replica starting, another replica faster)."""
        found = self.service.store.actions(status=None, before_id=None, limit=20, release_id=release.id)
        gates = [action for action in found if action.kind == effects.FLUX_GATE and action.status != "failed"]
        newest = max(gates, key=lambda action: action.id, default=None)
        return newest is not None and bool(newest.payload.get("suspend")) is suspend

    def _since(self, target: str, closed: bool, now: datetime) -> datetime:
        """When the gate closed (the start of the closed window ``now`` is in) or opened (the end
        of the last one before ``now``), looked for over the last day; else ``now``."""
        start = now - LOOKBACK
        found = self.service.forecast.windows(target, start, now + timedelta(seconds=1), enforced_only=True).closed
        epoch = int(now.astimezone(UTC).timestamp())
        if closed:
            inside = [window.start for window in found if window.start <= epoch < window.end]
            return from_epoch(inside[-1]) if inside and inside[-1] > int(start.timestamp()) else now
        before = [window.end for window in found if window.end <= epoch]
        return from_epoch(before[-1]) if before else now
