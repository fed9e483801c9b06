"""Actuators: what gatekeeper changes in the systems it gates, one file per system.

``argocd`` (sync to a revision, rollback, through Argo CD's REST API) and ``git`` (revert a commit
on the config repository's branch and push). Each call is idempotent (DESIGN §8): repeating it
after a crash changes nothing. Failures become ``ActuatorError`` (never an httpx or pygit2
exception), with a truncated upstream body; the outbox handlers in ``gatekeeper.actions`` turn it
into a retry.
"""

from __future__ import annotations


class ActuatorError(Exception):
    """A change could not be made this time (retried with backoff by the outbox)."""


class RefusedError(ActuatorError):
    """A change that will never succeed as asked (an auto-synced application's rollback)."""
