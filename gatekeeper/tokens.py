"""API tokens: a YAML list of ``{name, roles, token_sha256, targets}`` (DESIGN §6).

Presented tokens are hashed with SHA-256 and compared with every entry in constant time. The
file is re-read when it changes; with no file every authenticated route answers 401. Roles are
not hierarchical: a token lists all it holds. Tokens never reach logs.
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

import yaml

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
    targets: tuple[str, ...] = ()

    def may_act_on(self, target: str) -> bool:
        return not self.targets or any(fnmatchcase(target, pattern) for pattern in self.targets)


@dataclass(frozen=True, slots=True)
class _Entry:
    identity: Identity
    digest: bytes


def parse_tokens(text: str, source: str) -> tuple[_Entry, ...]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TokenFileError(f"{source}: YAML syntax: {exc}") from None
    if data is None:
        return ()
    if not isinstance(data, list):
        raise TokenFileError(f"{source}: expected a list of tokens")
    entries: list[_Entry] = []
    for position, item in enumerate(data):
        where = f"{source}: entry {position + 1}"
        if not isinstance(item, dict) or set(item) - {"name", "roles", "token_sha256", "targets"}:
            raise TokenFileError(f"{where}: expected keys name, roles, token_sha256, targets")
        name, roles, digest = item.get("name"), item.get("roles"), str(item.get("token_sha256", ""))
        if not isinstance(name, str) or not name:
            raise TokenFileError(f"{where}: name is required")
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
            raise TokenFileError(f"{where} ({name}): roles must be a non-empty list")
        unknown = sorted(set(roles) - ROLES)
        if unknown:
            raise TokenFileError(f"{where} ({name}): unknown role {unknown[0]!r} (known: {', '.join(sorted(ROLES))})")
        if not _SHA256.fullmatch(digest):
            raise TokenFileError(f"{where} ({name}): token_sha256 must be 64 lowercase hex digits")
        targets = item.get("targets") or []
        if not isinstance(targets, list):
            raise TokenFileError(f"{where} ({name}): targets must be a list of globs")
        identity = Identity(name, frozenset(roles), tuple(str(t) for t in targets))
        entries.append(_Entry(identity, bytes.fromhex(digest)))
    return tuple(entries)


class TokenStore:
    """Verifies bearer tokens against the tokens file; ``refresh`` (run by the housekeeper every
    RELOAD_INTERVAL seconds) re-reads it when it changed."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._entries: tuple[_Entry, ...] = ()
        self._stamp: tuple[int, int] | None = None
        self.error: str | None = None
        self.refresh()

    def refresh(self) -> None:
        """Re-read the file if it changed; a broken file keeps the previous tokens."""
        if self._path is None:
            return
        try:
            stat = self._path.stat()
        except OSError:
            self.error = f"{self._path}: tokens file not found"
            self._entries, self._stamp = (), None
            return
        stamp = (stat.st_size, stat.st_mtime_ns)
        if stamp == self._stamp:
            return
        with self._lock:
            try:
                self._entries = parse_tokens(self._path.read_text(encoding="utf-8"), str(self._path))
                self.error = None
            except (TokenFileError, OSError, UnicodeDecodeError) as exc:
                self.error = str(exc)
                logger.error("tokens file rejected: %s", exc)
            self._stamp = stamp

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
