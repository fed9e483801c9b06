"""Receivers raise only their own error type, whatever they are fed (with valid signatures)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.receivers import Ignored, Inbound, ReceiverError
from gatekeeper.receivers.registry import registry

SECRET = "fuzz-secret"
RECEIVERS = registry()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "ref",
        "after",
        "repository",
        "full_name",
        "commits",
        "pull_request",
        "merged",
        "action",
        "base",
        "involvedObject",
        "kind",
        "namespace",
        "name",
        "metadata",
        "revision",
        "event",
        "app",
        "project",
        "path_with_namespace",
        "object_attributes",
        "deployment",
        "deployment_callback_url",
        "environment",
        "user",
        "id",
        "author",
        "added",
    ]
)
shaped = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=6),
    max_leaves=30,
)
events = st.sampled_from(
    ["push", "pull_request", "deployment_protection_rule", "ping", "Push Hook", "Merge Request Hook", "x"]
)


def signed_headers(source: str, body: bytes, event: str) -> dict[str, str]:
    digest = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "github": {"x-hub-signature-256": digest, "x-github-event": event, "x-github-delivery": "d"},
        "gitlab": {"x-gitlab-token": SECRET, "x-gitlab-event": event},
        "flux": {"x-signature": digest},
        "argocd": {"authorization": f"Bearer {SECRET}"},
    }[source]


def feed(source: str, body: bytes, event: str) -> None:
    receiver = RECEIVERS[source]
    headers = signed_headers(source, body, event)
    receiver.verify(headers, body, SECRET)  # the signature is valid: only what follows may refuse
    try:
        assert receiver.delivery_id(headers, body)
        assert isinstance(receiver.parse(headers, body), Inbound | Ignored)
    except ReceiverError as exc:
        assert exc.code in ("unauthorized", "malformed_payload", "invalid_payload")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(sorted(RECEIVERS)), body=st.binary(max_size=300), event=events)
def test_arbitrary_bytes_raise_only_receiver_errors(source: str, body: bytes, event: str) -> None:
    feed(source, body, event)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(sorted(RECEIVERS)), payload=st.dictionaries(keys, shaped, max_size=8), event=events)
def test_arbitrary_json_shapes_raise_only_receiver_errors(source: str, payload: dict[str, Any], event: str) -> None:
    feed(source, json.dumps(payload).encode(), event)


@settings(max_examples=100, deadline=None)
@given(source=st.sampled_from(sorted(RECEIVERS)), payload=json_values, event=events)
def test_arbitrary_json_values_raise_only_receiver_errors(source: str, payload: Any, event: str) -> None:
    feed(source, json.dumps(payload).encode(), event)


def test_a_wrong_signature_is_always_401() -> None:
    for source, receiver in RECEIVERS.items():
        headers = signed_headers(source, b"{}", "push")
        try:
            receiver.verify(headers, b"{}", "another-secret")
        except ReceiverError as exc:
            assert exc.code == "unauthorized"
        else:
            raise AssertionError(f"{source} accepted a wrong secret")


@settings(max_examples=200, deadline=None)
@given(source=st.sampled_from(sorted(RECEIVERS)), value=st.text(max_size=80))
def test_any_signature_or_token_text_is_refused_with_401(source: str, value: str) -> None:
    """Header text of any characters (non-ASCII among them) is refused, never a TypeError."""
    name = {"github": "x-hub-signature-256", "gitlab": "x-gitlab-token", "flux": "x-signature"}.get(
        source, "authorization"
    )
    for presented in (value, "sha256=" + value, "Bearer " + value):
        try:
            RECEIVERS[source].verify({name: presented}, b"{}", SECRET)
        except ReceiverError as exc:
            assert exc.code == "unauthorized"
