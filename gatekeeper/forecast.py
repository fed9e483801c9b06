"""The calendar questions and "when will it ship" (DESIGN §4: ``/v1/status``, ``/v1/windows``, the
``.ics`` feed, ``shipping`` on a release): what the loaded calendars and the freezes say about a
target (a published calendar past its maxAge closing it from now on, as it closes the gate),
read-only, with no decision stored. The service holds one; the routes ask it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gatekeeper import calendar
from gatekeeper.calendar import Status, Windows
from gatekeeper.configuration.loader import Configuration
from gatekeeper.domain.approvals import ApprovalFacts
from gatekeeper.domain.freezes import Freeze, matching
from gatekeeper.domain.outlook import Outlook, approval_counts, blockers, position
from gatekeeper.domain.policy import Mode, Policy
from gatekeeper.domain.records import ReleaseDetail
from gatekeeper.domain.releases import REDECIDABLE
from gatekeeper.domain.types import Reason
from gatekeeper.facts import FreezeCache
from gatekeeper.ports import Clock, ReleaseStore
from gatekeeper.reload import ConfigHolder


class ConfigUnavailableError(Exception):
    """No configuration ever loaded: calendar questions cannot be answered (fail closed)."""


@dataclass
class Forecast:
    store: ReleaseStore
    config: ConfigHolder
    clock: Clock
    ungoverned_open: bool  # a target no policy governs is open (UNGOVERNED=approve)
    freezes: Callable[[], FreezeCache | None]  # the service's freeze cache, if it has one

    def _loaded(self) -> Configuration:
        configuration = self.config.state.configuration
        if configuration is None:
            raise ConfigUnavailableError("; ".join(self.config.state.errors) or "no configuration loaded")
        return configuration

    def _freezes_from(self, start: datetime) -> tuple[Freeze, ...]:
        cache = self.freezes()
        return cache.between(start) if cache is not None else ()

    def freezes_of(self, target: str, start: datetime) -> tuple[Freeze, ...]:
        """The freezes matching ``target`` that may close it at or after ``start``."""
        return matching(self._freezes_from(start), target)

    def status(self, target: str, at: datetime | None, *, enforced_only: bool = False) -> Status:
        """The gate of ``target`` at ``at`` (now); ``enforced_only``: as its enforcing policies
        alone hold it (what holds a release back: an observed policy never does)."""
        loaded, now = self._loaded(), self.now()
        moment, policies = at or now, self._of(loaded, target, enforced_only)
        return calendar.status(
            loaded.calendars,
            policies,
            target,
            moment,
            ungoverned_open=self.ungoverned_open,
            freezes=self._freezes_from(moment),
            stale=self.stale_of([policy for policy in policies if policy.governs(target)], now),
        )

    def windows(
        self, target: str, start: datetime, end: datetime, *, stale: bool = True, enforced_only: bool = False
    ) -> Windows:
        """Closed windows of ``target`` in ``[start, end)``; ``stale=False`` leaves out the
        staleness of published calendars (a state of now, not calendar events)."""
        loaded = self._loaded()
        policies = self._of(loaded, target, enforced_only)
        return calendar.windows(
            loaded.calendars,
            policies,
            target,
            start,
            end,
            ungoverned_open=self.ungoverned_open,
            freezes=self._freezes_from(start),
            stale=self.stale_of([p for p in policies if p.governs(target)], self.now()) if stale else None,
        )

    @staticmethod
    def _of(loaded: Configuration, target: str, enforced_only: bool) -> Sequence[Policy]:
        if not enforced_only:
            return loaded.policies
        return [policy for policy in loaded.governing(target) if policy.mode is Mode.ENFORCE]

    def now(self) -> datetime:
        return self.clock().replace(microsecond=0)

    def stale_of(self, policies: Sequence[Policy], now: datetime) -> calendar.Staleness | None:
        """The published calendars of ``policies`` past their maxAge at ``now``: they close
        ``status``, ``windows`` and "when it ships" from now on, as they close the gate."""
        feeds = self.config.feeds
        reasons = feeds.stale_of(policies, now) if feeds is not None else ()
        return calendar.Staleness(now, reasons) if reasons else None

    def outlook(self, detail: ReleaseDetail, queue_limit: int = 100) -> Outlook | None:
        """For a release still waiting (pending, deferred, approved): when its calendar and the
        freezes let it go, what else blocks it (as the latest decision said; approvals counted
        now) and its place in the target's queue. None for a release no longer waiting."""
        release = detail.release
        configuration = self.config.state.configuration
        if release.status not in REDECIDABLE or configuration is None:
            return None
        now = self.now()
        governing = configuration.governing(release.target)
        enforced = [policy for policy in governing if policy.mode is Mode.ENFORCE]
        at: datetime | None = now
        closed_by: tuple[Reason, ...] = ()
        if enforced or not governing:  # only observed: the calendar never holds it back
            state = self.status(release.target, now, enforced_only=bool(governing))
            at, closed_by = state.next_open, state.reasons
        with self.store.transaction() as tx:
            people = tx.people_of(release.revision)
            facts = ApprovalFacts(tx.approvals_of(release.id), people.author, people.merger, people.touched)
        queue = tuple(self.store.open_releases(queue_limit, target=release.target))
        latest = detail.decisions[-1].reasons if detail.decisions else []
        return Outlook(
            as_of=now,
            at=at,
            closed_by=closed_by,
            blocked_by=blockers(latest),
            approvals=approval_counts(enforced, facts),
            queue=queue,
            position=position(release, queue),
        )
