"""Notifications without a network: which decisions tell people, the endpoint file's errors, the
endpoints' filters, and each notifier's request through httpx's MockTransport."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatekeeper import effects
from gatekeeper.domain.records import DecisionRecord
from gatekeeper.domain.releases import ReleaseStatus
from gatekeeper.notifiers import UpstreamError
from gatekeeper.notifiers.endpoints import Endpoint, EndpointsError, load_endpoints
from gatekeeper.notifiers.slack import SlackNotifier
from gatekeeper.notifiers.teams import TeamsNotifier
from gatekeeper.notifiers.webhook import WebhookNotifier

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def decision(verdict: str, codes: tuple[str, ...] = (), trigger: str = "presync") -> DecisionRecord:
    reasons = [{"check": "calendar", "code": code, "message": code, "until": None} for code in codes]
    return DecisionRecord(1, 1, verdict, reasons, None, [], "h", None, trigger, NOW)


@pytest.mark.parametrize(
    ("previous", "current", "status", "expected"),
    [
        pytest.param(None, decision("defer"), ReleaseStatus.DEFERRED, "defer", id="first-decision"),
        pytest.param(decision("defer", ("a",)), decision("defer", ("b",)), ReleaseStatus.DEFERRED, None,
                     id="same-verdict-other-reasons"),
        pytest.param(decision("defer"), decision("approve"), ReleaseStatus.APPROVED, "approve", id="approved"),
        pytest.param(decision("approve"), decision("defer"), ReleaseStatus.DEFERRED, "defer", id="deferred-again"),
        pytest.param(decision("approve"), decision("rollback"), ReleaseStatus.APPROVED, "rollback", id="rollback"),
        pytest.param(decision("defer"), decision("approve", ("break_glass",)), ReleaseStatus.APPROVED, "break_glass",
                     id="break-glass"),
        pytest.param(decision("approve", ("break_glass",)), decision("approve", ("break_glass", "x")),
                     ReleaseStatus.APPROVED, None, id="break-glass-decided-again"),
        pytest.param(decision("defer"), decision("defer", ("rejected",), "rejection:alice"), ReleaseStatus.REJECTED,
                     "rejected", id="rejected"),
    ],
)
def test_which_stored_decisions_notify(
    previous: DecisionRecord | None, current: DecisionRecord, status: ReleaseStatus, expected: str | None
) -> None:
    assert effects.decision_event(previous, current, status) == expected


def endpoint(**fields: Any) -> Endpoint:
    return Endpoint.model_validate({"name": "e", "kind": "slack", "url": "https://hooks.example/x", **fields})


def test_an_endpoint_hears_only_the_events_and_targets_it_asked_for() -> None:
    prod = endpoint(events=["rollback", "freeze_started"], targets=["argocd:odoo-prod*"])
    assert prod.wants("rollback", ("argocd:odoo-prod-eu",))
    assert not prod.wants("rollback", ("argocd:odoo-staging",))
    assert not prod.wants("defer", ("argocd:odoo-prod",))
    assert prod.wants("freeze_started", ("argocd:odoo-prod",)) and prod.wants("freeze_started", ("*",))
    assert endpoint().wants("defer", ("anything",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("- {name: w, kind: webhook, url: 'https://x'}\n", "needs a secret", id="unsigned-webhook"),
        pytest.param("- {name: s, kind: slack, url: 'ftp://x'}\n", "http:// or https://", id="bad-url"),
        pytest.param("- {name: s, kind: slack, url: 'https://x', events: [deploy]}\n", "unknown ['deploy']",
                     id="unknown-event"),
        pytest.param("- {name: s, kind: pager, url: 'https://x'}\n", "kind", id="unknown-kind"),
        pytest.param("- {name: s, kind: slack, url: 'https://x', colour: red}\n", "colour", id="extra-field"),
        pytest.param("- {name: s, kind: slack, url: 'https://x'}\n- {name: s, kind: teams, url: 'https://y'}\n",
                     "used twice", id="duplicate-name"),
        pytest.param("name: s\n", "expected a list", id="not-a-list"),
    ],
)
def test_a_bad_endpoints_file_fails_naming_file_and_entry_never_the_secret(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "notifications.yaml"
    path.write_text(text)
    with pytest.raises(EndpointsError) as raised:
        load_endpoints(path)
    assert str(path) in str(raised.value) and message in str(raised.value)
    assert "https://x" not in str(raised.value)


EVENT: dict[str, Any] = {
    "id": "notification:e:decision:1", "event": "rollback", "at": "2026-11-24T09:00:00Z", "actor": "alice",
    "release": {"id": 3, "target": "argocd:odoo-prod", "revision": "abc123def4567", "status": "approved"},
    "decision": {"id": 1, "verdict": "rollback", "reasons": [{"check": "approval", "code": "manual_rollback",
                 "message": "rollback requested by alice: <500s> & worse", "until": None}],
                 "not_before": None, "requires": [], "trigger": "rollback:alice"},
    "freeze": None, "link": "https://gk.example/#release-3",
}


def recording(status: int = 200) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, text="ok" if status < 400 else "no_service")

    return httpx.Client(transport=httpx.MockTransport(answer)), seen


def test_the_webhook_signs_the_raw_body_with_a_signed_timestamp() -> None:
    client, seen = recording()
    hook = endpoint(kind="webhook", secret="k3y")
    assert WebhookNotifier(lambda: NOW, 5, client).deliver(hook, EVENT) == "webhook e: 200"
    (request,) = seen
    raw = request.content
    assert request.headers["x-gatekeeper-signature"] == "sha256=" + hmac.new(b"k3y", raw, hashlib.sha256).hexdigest()
    assert json.loads(raw)["timestamp"] == int(request.headers["x-gatekeeper-timestamp"]) == int(NOW.timestamp())
    assert request.headers["x-gatekeeper-delivery"] == EVENT["id"]


def test_slack_escapes_mrkdwn_and_a_refusal_names_the_endpoint_not_its_url() -> None:
    client, seen = recording()
    SlackNotifier(5, client).deliver(endpoint(), EVENT)
    body = json.loads(seen[0].content)
    assert body["text"] == "gatekeeper: release #3 of argocd:odoo-prod to be rolled back"
    assert "&lt;500s&gt; &amp; worse" in body["blocks"][1]["text"]["text"]
    refusing, _ = recording(404)
    with pytest.raises(UpstreamError) as raised:
        SlackNotifier(5, refusing).deliver(endpoint(url="https://hooks.slack.com/services/SECRET"), EVENT)
    assert "slack e answered 404" in str(raised.value) and "SECRET" not in str(raised.value)


def test_teams_gets_one_adaptive_card_with_the_facts_and_a_link() -> None:
    client, seen = recording()
    TeamsNotifier(5, client).deliver(endpoint(kind="teams"), EVENT)
    card = json.loads(seen[0].content)["attachments"][0]["content"]
    facts = {fact["title"]: fact["value"] for fact in card["body"][1]["facts"]}
    assert facts["Target"] == "argocd:odoo-prod" and facts["By"] == "alice"
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open in gatekeeper", "url": EVENT["link"]}]
