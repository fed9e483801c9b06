"""Outbox handlers, one module per kind of action, registered in ``registry``.

A handler carries out one action idempotently (DESIGN §8): repeating it after a crash changes
nothing. It returns a short result to record, raises ``ActionFailedError`` to be retried with
backoff (``ActionRefusedError``: failed at once, there is nothing to retry), or
``ActionWaitError`` when the action is not due yet (a review waiting for its release's
decision), which is no failure. Adding a kind: one module, one map entry, tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from gatekeeper.ports import ActionHandler


class ActionFailedError(Exception):
    """The action could not be carried out this time (retried with backoff)."""


class ActionRefusedError(ActionFailedError):
    """The action cannot be carried out as things are configured (a HelmRelease to revert, a
    source pinned to a tag): failed at once, for a person, instead of retried for hours."""


class ActionWaitError(Exception):
    """The action is not due yet: try again at ``until``."""

    def __init__(self, until: datetime | None, message: str) -> None:
        super().__init__(message)
        self.until = until


def registry(handlers: list[ActionHandler]) -> Mapping[str, ActionHandler]:
    """The handlers by the kind each carries out (a kind handled twice is a wiring error)."""
    found: dict[str, ActionHandler] = {}
    for handler in handlers:
        if handler.kind in found:
            raise ValueError(f"two handlers for action kind {handler.kind!r}")
        found[handler.kind] = handler
    return found
