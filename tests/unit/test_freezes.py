"""Ad-hoc freezes as domain values (globs, states, spans) and merged into calendar answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper import calendar
from gatekeeper.calendar import Calendars
from gatekeeper.domain.decision import DecideOptions
from gatekeeper.domain.durations import Duration
from gatekeeper.domain.freezes import Freeze, FreezeState, InvalidGlobError, check_glob
from gatekeeper.domain.policy import CalendarRules, CronEntry, Policy
from gatekeeper.domain.releases import ReleaseStatus
from gatekeeper.domain.types import ReleaseRequest, TargetKey
from gatekeeper.facts import FactGatherer, FreezeCache
from gatekeeper.people import ReleaseManager
from gatekeeper.reload import ConfigHolder
from gatekeeper.service import GateService
from gatekeeper.store.memory import InMemoryReleaseStore
from gatekeeper.tokens import Identity

WED = datetime(2026, 6, 3, tzinfo=UTC)
TARGET = "argocd:odoo-prod"
CUTOFF = CronEntry("0 14 * * 1-5", Duration.parse("2h"), "UTC", "dispatch_cutoff")
PRODUCTION = Policy(name="production", targets=("argocd:odoo-*",), calendar=CalendarRules((CUTOFF,), ()))


def at(hours: float) -> datetime:
    return WED + timedelta(hours=hours)


def freeze(start: float, end: float | None = None, *, lifted: float | None = None, number: int = 1) -> Freeze:
    return Freeze(
        id=number,
        targets=("argocd:odoo-prod*",),
        start=at(start),
        end=at(end) if end is not None else None,
        reason="outage",
        created_by="alice",
        created_at=at(start),
        lifted_at=at(lifted) if lifted is not None else None,
        lifted_by="bob" if lifted is not None else None,
    )


@pytest.mark.parametrize(
    "glob",
    ["*", "argocd:*", "argo*", "flux:Kustomization/odoo/*", "git:acme/*@main", "argocd:odoo-[ps]*", "?rgocd:x"],
)
def test_usable_globs_are_kept(glob: str) -> None:
    assert check_glob(glob) == glob


@pytest.mark.parametrize(
    ("glob", "message"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("odoo-prod*", "matches no target", id="no-kind"),
        pytest.param("argocd", "matches no target", id="literal-not-a-key"),
        pytest.param("argocd:odoo-[prod", "without its ']'", id="unclosed-class"),
        pytest.param(" argocd:*", "white space", id="leading-space"),
        pytest.param("argocd:\x00*", "control characters", id="control-character"),
        pytest.param("a" * 513, "at most 512", id="too-long"),
    ],
)
def test_unusable_globs_are_refused_saying_why(glob: str, message: str) -> None:
    with pytest.raises(InvalidGlobError, match=message):
        check_glob(glob)


@pytest.mark.parametrize(
    ("value", "now", "state"),
    [
        pytest.param(freeze(10), 9, FreezeState.SCHEDULED, id="scheduled"),
        pytest.param(freeze(10), 10, FreezeState.ACTIVE, id="active-from-its-start"),
        pytest.param(freeze(10, 11), 11, FreezeState.ENDED, id="ended-at-its-end"),
        pytest.param(freeze(10, lifted=10.5), 10.5, FreezeState.LIFTED, id="lifted"),
        pytest.param(freeze(10, lifted=9), 9.5, FreezeState.LIFTED, id="lifted-before-it-began"),
    ],
)
def test_a_freeze_knows_its_state(value: Freeze, now: float, state: FreezeState) -> None:
    assert value.state(at(now)) is state


def test_a_freeze_closes_status_with_its_author_and_reason_until_lifted() -> None:
    calendars = Calendars([PRODUCTION], {})
    result = calendar.status(calendars, [PRODUCTION], TARGET, at(10), freezes=(freeze(9),))
    assert result.closed and [r.code for r in result.reasons] == ["adhoc_freeze"]
    assert result.reasons[0].message.startswith("adhoc_freeze is active (freeze 1 by alice: outage)")
    assert (result.reasons[0].until, result.next_open) == (None, None)
    elsewhere = calendar.status(calendars, [PRODUCTION], "argocd:odoo-staging", at(10), freezes=(freeze(9),))
    assert not elsewhere.closed


def test_windows_keep_the_part_a_lifted_freeze_was_in_force_and_merge_with_the_calendar() -> None:
    calendars = Calendars([PRODUCTION], {})
    frozen = (freeze(9, lifted=10), freeze(13, 15, number=2))
    result = calendar.windows(calendars, [PRODUCTION], TARGET, at(8), at(18), freezes=frozen)
    assert [(w.start, w.end, w.codes) for w in result.closed] == [
        (int(at(9).timestamp()), int(at(10).timestamp()), ("adhoc_freeze",)),
        (int(at(13).timestamp()), int(at(16).timestamp()), ("adhoc_freeze", "dispatch_cutoff")),
    ]


@given(start=st.integers(0, 40), length=st.integers(1, 40), moment=st.integers(0, 80))
def test_a_freeze_never_opens_a_gate_the_calendar_closes(start: int, length: int, moment: int) -> None:
    """Adding a freeze only ever closes: at any instant, closed without it means closed with it,
    and inside the freeze the gate is closed."""
    calendars = Calendars([PRODUCTION], {})
    when = at(moment / 4)
    value = freeze(start / 4, (start + length) / 4)
    without = calendar.status(calendars, [PRODUCTION], TARGET, when)
    with_it = calendar.status(calendars, [PRODUCTION], TARGET, when, freezes=(value,))
    assert with_it.closed >= without.closed
    if value.start <= when < (value.end or when):
        assert with_it.closed and "adhoc_freeze" in [r.code for r in with_it.reasons]


# --- the orchestrator on the in-memory store (the same port as the SQL store) ---------------------

POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: warehouse}
spec:
  targets: ["argocd:odoo-wms"]
  timezone: Europe/Berlin
  calendar:
    deny:
      - {cron: "0 14 * * 1-5", duration: 2h, code: dispatch_cutoff}
"""
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 in Berlin: open
ALICE = Identity("alice", frozenset({"release-manager"}))


def test_a_freeze_on_the_in_memory_store_defers_an_approved_release_and_lifting_reapproves_it(
    config_dirs: Callable[..., tuple[Path, Path]],
) -> None:
    policies, calendars = config_dirs({"warehouse.yaml": POLICY})
    clock = lambda: MONDAY  # noqa: E731 - the fixed instant
    holder = ConfigHolder(policies, calendars, clock)
    assert holder.reload().status == "ok"
    store = InMemoryReleaseStore()
    service = GateService(
        store=store,
        config=holder,
        clock=clock,
        options=DecideOptions(),
        facts=FactGatherer(holder, freezes=FreezeCache(store, clock, max_age=60.0)),
    )
    people = ReleaseManager(service)
    request = ReleaseRequest(TargetKey("argocd:odoo-wms"), "r1")
    release = service.gate(request).release
    assert release.status is ReleaseStatus.APPROVED
    freeze = people.start_freeze(ALICE, ("argocd:odoo-*",), None, None, "stocktaking")
    assert store.freezes(ending_after=MONDAY) == [freeze]
    detail = store.release(release.id)
    assert detail is not None and detail.release.status is ReleaseStatus.DEFERRED
    assert detail.decisions[-1].trigger == "freeze:alice"
    assert [r["code"] for r in service.gate(request).decision.reasons] == ["adhoc_freeze"]
    lifted = people.lift_freeze(freeze.id, ALICE, "done")
    assert (lifted.lifted_by, lifted.lift_reason) == ("alice", "done")
    assert store.freezes(ending_after=MONDAY) == []
    assert service.gate(request).decision.verdict == "approve"
    kinds = [record["kind"] for record in store.audit_records(after=0, limit=None)]
    assert "freeze" in kinds and "freeze_lift" in kinds
