"""``GateService.announce_in`` on the in-memory store: the set-based path decides exactly as the
one-by-one path does (the SQL stores are covered by tests/integration/test_announce.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gatekeeper.domain.decision import DecideOptions
from gatekeeper.domain.releases import ReleaseStatus
from gatekeeper.domain.types import ReleaseRequest, TargetKey
from gatekeeper.reload import ConfigHolder
from gatekeeper.service import GateService
from gatekeeper.store.memory import InMemoryReleaseStore

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: fleet}
spec:
  targets: ["argocd:odoo-*"]
  approvals: {required: 1, role: release-manager}
"""


def test_announced_releases_are_created_decided_audited_and_supersede_older_ones(
    config_dirs: Callable[..., tuple[Path, Path]],
) -> None:
    policies, calendars = config_dirs({"fleet.yaml": POLICY})
    holder = ConfigHolder(policies, calendars, lambda: MONDAY)
    assert holder.reload().status == "ok"
    store = InMemoryReleaseStore()
    service = GateService(store, holder, lambda: MONDAY, DecideOptions(retry_delay=timedelta(minutes=5)))
    older = service.gate(ReleaseRequest(TargetKey("argocd:odoo-a"), "old"))
    first = service.gate(ReleaseRequest(TargetKey("argocd:odoo-b"), "new"))
    items = [
        (request, service.gather(request, MONDAY))
        for request in (ReleaseRequest(TargetKey(f"argocd:odoo-{n}"), "new", trigger="github-push-announce") for n in "abc")
    ]
    with store.transaction() as tx:
        records = service.announce_in(tx, items, MONDAY, context={"source": "github"})
    assert [r.release.target for r in records] == ["argocd:odoo-a", "argocd:odoo-b", "argocd:odoo-c"]
    assert {r.decision.verdict for r in records} == {"defer"}
    assert [r.decided_now for r in records] == [True, False, True]  # b: decided again, nothing new to store
    assert records[1].release.id == first.release.id  # existed: decided again, not created twice
    assert store.release(older.release.id).release.status is ReleaseStatus.SUPERSEDED  # type: ignore[union-attr]
    assert store.release(records[2].release.id).release.status is ReleaseStatus.DEFERRED  # type: ignore[union-attr]
    while store.chain_audit():
        pass
    audited = {r["data"]["decision_id"] for r in store.audit_records(after=0, limit=None) if r["kind"] == "decision"}
    assert len(store.decision_ids()) == 2 + 2 and set(store.decision_ids()) <= audited


def test_an_announced_flux_release_that_is_deferred_suspends_its_target_at_once(
    config_dirs: Callable[..., tuple[Path, Path]],
) -> None:
    policies, calendars = config_dirs({"fleet.yaml": POLICY.replace('["argocd:odoo-*"]', '["flux:Kustomization/odoo/*"]')})
    holder = ConfigHolder(policies, calendars, lambda: MONDAY)
    assert holder.reload().status == "ok"
    store = InMemoryReleaseStore()
    service = GateService(store, holder, lambda: MONDAY, DecideOptions(retry_delay=timedelta(minutes=5)), flux_gate=True)
    request = ReleaseRequest(TargetKey("flux:Kustomization/odoo/web"), "new", trigger="github-push-announce")
    with store.transaction() as tx:
        (record,) = service.announce_in(tx, [(request, service.gather(request, MONDAY))], MONDAY, context={})
    assert record.decision.verdict == "defer"
    gates = [a for a in store.actions(status=None, before_id=None, limit=10) if a.kind == "flux_gate"]
    assert [(a.payload["target"], a.payload["suspend"]) for a in gates] == [("flux:Kustomization/odoo/web", True)]
