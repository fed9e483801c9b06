"""Inbound webhook receivers, one file per source, registered in ``RECEIVERS``.

Each receiver verifies its request (HMAC or token, constant time), allow-lists the event, names
the delivery and converts the payload into a typed ``Inbound`` value. It raises only
``ReceiverError`` on any input. Adding a source is: one file, one map entry, fixtures, tests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gatekeeper.domain.types import InvalidTargetError, ReleaseRequest, TargetKey, parse_target
from gatekeeper.receivers.jsonbody import JsonBodyError, parse_json


class ReceiverError(Exception):
    """A request a receiver refuses: a stable ``code``, a message and the field at fault. Which
    HTTP status each kind is lives in one table, ``gatekeeper.api.errors.STATUS_OF``."""

    code = "invalid_payload"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message, self.field = message, field


class UnauthorizedError(ReceiverError):
    """The signature or token does not match (401)."""

    code = "unauthorized"


class MalformedPayloadError(ReceiverError):
    """The body is not what the source sends at all: not JSON, too deep, not UTF-8 (400)."""

    code = "malformed_payload"


class InvalidPayloadError(ReceiverError):
    """A field is missing, of the wrong type or beyond its limits (422, naming it)."""

    code = "invalid_payload"


def unauthorized(message: str) -> ReceiverError:
    return UnauthorizedError(message)


def malformed(message: str) -> ReceiverError:
    return MalformedPayloadError(message)


def invalid(field_name: str, message: str) -> ReceiverError:
    return InvalidPayloadError(f"{field_name}: {message}", field_name)


@dataclass(frozen=True, slots=True)
class CommitPeople:
    """Who touched a commit (four eyes compares approvers with them, docs/four-eyes.md).

    ``author`` and ``merger`` are logins or usernames, never display names. ``identities``: every
    login, username and e-mail address the payload gives for people who touched the commit
    (author, committer, merger, pusher, sender), as given; the store adds them to the set it
    keeps per SHA, which only grows. A bare display name identifies nobody and is never here.
    """

    sha: str
    author: str | None = None
    merger: str | None = None
    identities: tuple[str, ...] = ()


def identities_at(data: Mapping[str, Any], *paths: str) -> tuple[str, ...]:
    """The logins and e-mail addresses at dotted ``paths`` that are given, in order, each once.

    A path ending in ``email`` counts only when it holds an address (GitLab sends ``[REDACTED]``
    for hidden ones, which would otherwise make everyone the same person)."""
    found: dict[str, None] = {}
    for path in paths:
        value = text_at(data, path, required=False, max_length=NAME)
        if value is None or not value.strip():
            continue
        if path.endswith("email") and "@" not in value:
            continue
        found[value.strip()] = None
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Callback:
    """Where and how to answer the source once the release is decided (GitHub deployment reviews)."""

    kind: str
    url: str
    environment: str | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    """What a delivery asks of the service.

    ``request``: a release to decide. ``commits``: author/merger facts to record. ``paths``: the
    files the change touched (None: unknown, which counts as touching). ``observed``: a state the
    GitOps controller reports for (target, revision): ``applied`` or ``unhealthy``. ``repo_urls``:
    the pushed repository's clone URLs (a push announces releases of the targets deploying from it).
    """

    request: ReleaseRequest | None = None
    commits: tuple[CommitPeople, ...] = ()
    paths: tuple[str, ...] | None = None
    observed: str | None = None
    callback: Callback | None = None
    repo: str | None = None
    repo_urls: tuple[str, ...] = ()


def urls_at(data: Mapping[str, Any], *paths: str) -> tuple[str, ...]:
    """The repository URLs at dotted ``paths`` that are given (422 naming one that is too long)."""
    found = (text_at(data, path, required=False, max_length=URL) for path in paths)
    return tuple(dict.fromkeys(url for url in found if url))


@dataclass(frozen=True, slots=True)
class Ignored:
    """A verified delivery that asks nothing (202 with the reason)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Secrets:
    """The inbound secrets of DESIGN §7 (plain strings; None: the source is disabled)."""

    values: Mapping[str, str | None] = field(default_factory=dict)

    def get(self, source: str) -> str | None:
        return self.values.get(source)


class Receiver(Protocol):
    source: str

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> None:
        """Raise UnauthorizedError unless the request is authentic."""

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        """The id a redelivery repeats."""

    def parse(self, headers: Mapping[str, str], body: bytes) -> Inbound | Ignored:
        """The typed meaning of the delivery (event allow-list first, then the payload)."""


def header_bytes(value: str) -> bytes:
    """A header as the bytes that came on the wire (the server decodes them as Latin-1), so a
    constant-time comparison never meets text it refuses (``hmac.compare_digest`` raises on
    non-ASCII ``str``); a character Latin-1 cannot hold (only a caller in-process can pass one)
    becomes ``?``, which matches no secret."""
    return value.encode("latin-1", errors="replace")


def secret_matches(secret: str, presented: str) -> bool:
    """A token header against the configured secret, in constant time, as bytes."""
    return hmac.compare_digest(header_bytes(presented), secret.encode())


def hmac_sha256_matches(secret: str, body: bytes, header: str | None) -> bool:
    """``sha256=<hex>`` over the raw body, compared in constant time, as bytes."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, header_bytes(header.removeprefix("sha256=").strip().lower()))


def body_digest(source: str, body: bytes) -> str:
    """A delivery id for sources that send none: sha256 of source + raw body."""
    return hashlib.sha256(source.encode() + b"\0" + body).hexdigest()


def load_json(body: bytes | str) -> dict[str, Any]:
    """The body as a JSON object: bounded and total (400 naming the problem, 422 if not an object)."""
    try:
        data = parse_json(body)
    except JsonBodyError as exc:
        raise malformed(str(exc)) from None
    if not isinstance(data, dict):
        raise invalid("body", "expected a JSON object")
    return data


# Limits of what a delivery may carry (DESIGN §4 "Limits"), checked here with the field named,
# so no value the store cannot hold (PostgreSQL refuses NUL in text and over-long values) ever
# reaches it: that was a 503 "database_unavailable" with the driver's words, and hooks retry 503s.
COMMIT_ID = 64  # a SHA-1 (40) or SHA-256 (64) commit id
REVISION = 256
NAME = 256  # people, environments, namespaces
TEXT = 512  # repositories, refs, application names, and any other text read
TARGET = 512
URL = 2048
DELIVERY_ID = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def checked_text(value: str, field_name: str, max_length: int = TEXT) -> str:
    """``value`` if it fits the limits, else 422 naming ``field_name`` with what is wrong."""
    if len(value) > max_length:
        raise invalid(field_name, f"at most {max_length} characters (got {len(value)})")
    control = _CONTROL.search(value)
    if control is not None:
        where = control.start()
        raise invalid(field_name, f"must not contain control characters (got {control.group()!r} at {where})")
    return value


def text_at(data: Mapping[str, Any], path: str, *, required: bool = True, max_length: int = TEXT) -> str | None:
    """The string at dotted ``path`` (e.g. ``repository.full_name``), 422 naming it if absent, not
    text, longer than ``max_length`` or holding a control character."""
    node: Any = data
    for step in path.split("."):
        if not isinstance(node, Mapping) or step not in node or node[step] is None:
            if required:
                raise invalid(path, "field required")
            return None
        node = node[step]
    if isinstance(node, bool) or not isinstance(node, str | int):
        raise invalid(path, f"expected a string, got {type(node).__name__}")
    value = checked_text(str(node), path, max_length)
    if required and not value:
        raise invalid(path, "must not be empty")
    return value or None


def header_text(headers: Mapping[str, str], name: str, max_length: int = DELIVERY_ID) -> str | None:
    """A header that names the delivery, 422 naming the header if it does not fit the limits."""
    value = headers.get(name.lower())
    return checked_text(value, name, max_length) if value else None


def list_at(data: Mapping[str, Any], path: str) -> list[Any]:
    node: Any = data
    for step in path.split("."):
        if not isinstance(node, Mapping) or node.get(step) is None:
            return []
        node = node[step]
    if not isinstance(node, list):
        raise invalid(path, f"expected a list, got {type(node).__name__}")
    return node


def target_of(raw: str, field_name: str) -> TargetKey:
    """``raw`` as a target key, 422 naming ``field_name`` if it is too long or not a valid target."""
    if len(raw) > TARGET:
        raise invalid(field_name, f"the target {raw[:40]}... is longer than {TARGET} characters ({len(raw)})")
    try:
        return parse_target(raw)
    except InvalidTargetError as exc:
        raise invalid(field_name, str(exc)) from None


def git_target(repo: str, branch: str, field_name: str) -> TargetKey:
    """``git:<owner/repo>@<branch>``, 422 naming ``field_name`` if it is not a valid target."""
    return target_of(f"git:{repo}@{branch}", field_name)
