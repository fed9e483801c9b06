"""API tokens: a YAML list of ``{name, roles, token_sha256, targets, identities}`` (DESIGN §6).

Presented tokens are hashed with SHA-256 and compared with every entry in constant time. The
file is re-read when it changes: a broken file keeps the last good tokens (state ``stale``), a
deleted one drops them (``missing``); with no file every authenticated route answers 401. Roles
are not hierarchical: a token lists all it holds. ``identities`` are the person's Git logins,
usernames and e-mail addresses that four eyes compares (the ``name`` always counts). Tokens never
reach logs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

import yaml

from gatekeeper.domain.approvals import identity_set

logger = logging.getLogger(__name__)

ROLES = frozenset({"viewer", "release-manager", "break-glass", "hook"})
_SHA256 = re.compile(r"[0-9a-f]{64}")


class TokenFileError(ValueError):
    """The tokens file does not load (names file and entry)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a valid token belongs to, what roles it holds and which targets it may act on."""

    name: str
    roles: frozenset[str]
    targets: tuple[str, ...] = ()  # empty: no limit
    identities: tuple[str, ...] = ()  # as written in the file, the name not repeated

    def may_act_on(self, target: str) -> bool:
        return not self.targets or any(fnmatchcase(target, pattern) for pattern in self.targets)

    @property
    def person(self) -> frozenset[str]:
        """The name and identities, casefolded: what four eyes compares (``Approval.identities``)."""
        return identity_set((self.name, *self.identities))


@dataclass(frozen=True, slots=True)
class _Entry:
    identity: Identity
    digest: bytes


KEYS = ("name", "roles", "token_sha256", "targets", "identities")


def parse_tokens(text: str, source: str) -> tuple[_Entry, ...]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TokenFileError(f"{source}: YAML syntax: {exc}") from None
    if data is None:
        return ()
    if not isinstance(data, list):
        raise TokenFileError(f"{source}: expected a list of tokens")
    return tuple(_entry(item, f"{source}: entry {position + 1}") for position, item in enumerate(data))


def _entry(item: Any, where: str) -> _Entry:
    if not isinstance(item, dict) or set(item) - set(KEYS):
        raise TokenFileError(f"{where}: expected keys {', '.join(KEYS)}")
    name, roles, digest = item.get("name"), item.get("roles"), str(item.get("token_sha256", ""))
    if not isinstance(name, str) or not name:
        raise TokenFileError(f"{where}: name is required")
    where = f"{where} ({name})"
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise TokenFileError(f"{where}: roles must be a non-empty list")
    unknown = sorted(set(roles) - ROLES)
    if unknown:
        raise TokenFileError(f"{where}: unknown role {unknown[0]!r} (known: {', '.join(sorted(ROLES))})")
    if not _SHA256.fullmatch(digest):
        raise TokenFileError(f"{where}: token_sha256 must be 64 lowercase hex digits")
    targets = _strings(item, "targets", where, "globs (leave the field out for no limit)")
    identities = _strings(item, "identities", where, "logins, usernames or e-mail addresses")
    identity = Identity(name, frozenset(roles), targets, identities)
    return _Entry(identity, bytes.fromhex(digest))


def _strings(item: dict[str, Any], key: str, where: str, what: str) -> tuple[str, ...]:
    """The optional list ``key`` of non-empty strings; present but empty is an error (an empty
    ``targets`` would otherwise read as "no limit")."""
    if key not in item:
        return ()
    values = item[key]
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise TokenFileError(f"{where}: {key} must be a non-empty list of {what}")
    return tuple(v.strip() for v in values)


State = Literal["ok", "stale", "invalid", "missing", "unset"]


@dataclass(frozen=True, slots=True)
class TokenFileState:
    """What /readyz reports of the tokens file.

    ``ok``: loaded as it is. ``stale``: changed but rejected, the last good tokens still serve.
    ``invalid``: rejected and no tokens serve. ``missing``: the configured file is gone (its
    tokens were dropped). ``unset``: no tokens file is configured (every token is refused).
    ``ever_loaded``: some version of the file loaded since start-up."""

    state: State
    error: str | None
    ever_loaded: bool

    @property
    def ready(self) -> bool:
        """Not ready while a tokens file is configured but none ever loaded."""
        return self.state == "unset" or self.ever_loaded


class TokenStore:
    """Verifies bearer tokens against the tokens file; ``refresh`` (run by the housekeeper every
    RELOAD_INTERVAL seconds) re-reads it when it changed."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._entries: tuple[_Entry, ...] = ()
        self._stamp: tuple[int, int] | None = None
        self._state: TokenFileState = TokenFileState("unset" if path is None else "invalid", None, False)
        self.refresh()

    @property
    def state(self) -> TokenFileState:
        return self._state

    @property
    def error(self) -> str | None:
        return self._state.error

    def refresh(self) -> None:
        """Re-read the file if it changed; a broken file keeps the previous tokens."""
        if self._path is None:
            return
        with self._lock:
            try:
                stat = self._path.stat()
            except OSError:
                self._entries, self._stamp = (), None
                self._set("missing", f"{self._path}: tokens file not found")
                return
            stamp = (stat.st_size, stat.st_mtime_ns)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                self._entries = parse_tokens(self._path.read_text(encoding="utf-8"), str(self._path))
            except (TokenFileError, OSError, UnicodeDecodeError) as exc:
                logger.error("tokens file rejected: %s", exc)
                # Last good tokens serve on unless none were ever active (first load, or after a deletion).
                self._set("stale" if self._state.state in ("ok", "stale") else "invalid", str(exc))
                return
            self._state = TokenFileState("ok", None, True)

    def _set(self, state: State, error: str) -> None:
        self._state = TokenFileState(state, error, self._state.ever_loaded)

    def identify(self, token: str | None) -> Identity | None:
        """The identity of ``token``, or None; compares against every entry in constant time."""
        if not token:
            return None
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found: Identity | None = None
        for entry in self._entries:
            if hmac.compare_digest(presented, entry.digest) and found is None:
                found = entry.identity
        return found
