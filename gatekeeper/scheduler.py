"""The scheduler: decides due deferrals again and carries out the outbox (DESIGN §1, §8).

Every replica runs one (and a loop that decides again, through the service's one decision path,
the deferred releases an action waits for once their ``not_before`` has come). Each run claims
due actions (``SKIP LOCKED`` and a
lease, so each due action is claimed by one replica and a dead replica's claim passes to another
when its lease expires), hands each to the handler registered for its kind, and records the
outcome: done, retried with exponential backoff up to a cap, or failed after ``max_attempts``;
done and failed are also audit records (``action``, actor ``gatekeeper``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from gatekeeper.actions import ActionFailedError, ActionRefusedError, ActionWaitError
from gatekeeper.domain.records import ActionRecord
from gatekeeper.ports import ActionHandler
from gatekeeper.service import GateService

logger = logging.getLogger(__name__)

POLL = 0.5  # seconds between looks for new work while an action runs


def replica_name() -> str:
    """Who holds a claim: host and process (shown in ``GET /v1/actions``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry delays: ``first * 2**(attempt-1)``, at most ``cap``; give up after ``max_attempts``."""

    first: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(minutes=10)
    max_attempts: int = 20

    def delay(self, attempts: int) -> timedelta:
        seconds = self.first.total_seconds() * 2.0 ** max(0, attempts - 1)
        return min(self.cap, timedelta(seconds=seconds))


class Scheduler:
    def __init__(
        self,
        service: GateService,
        handlers: Mapping[str, ActionHandler],
        *,
        lease_seconds: float = 60.0,
        backoff: Backoff = Backoff(),
        batch: int = 32,
        workers: int = 4,
        owner: str | None = None,
    ) -> None:
        self.service = service
        self.handlers = handlers
        self.lease_seconds = lease_seconds
        self.backoff = backoff
        self.batch = batch
        self.owner = owner or replica_name()
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="action")
        # What this process runs, across passes (a pass that ended on an error left them running).
        self._running: dict[int, Future[None]] = {}
        self._closing = threading.Event()

    def run_once(self) -> int:
        """Carry out every due action, a worker each, until none is due and none runs. Returns how
        many ran. An action is claimed only when a worker is free (its lease starts when it
        starts), and one that hangs (a notification endpoint that never answers) holds its own
        worker, not the others: they go on claiming. (Due deferrals are decided again by their own
        loop, ``GateService.redecide_due``: a decision that gives the scheduler work wakes it.)"""
        ran = 0
        while not self._closing.is_set():
            self._running = {key: future for key, future in self._running.items() if not future.done()}
            free = min(self.batch, self.workers - len(self._running))
            # An action of ours whose lease ran out while it runs may be claimed again: it is not
            # started twice here (the claim only renewed its lease).
            claimed = [a for a in (self._claim(free) if free > 0 else []) if a.id not in self._running]
            self._running |= {action.id: self._pool.submit(self._carry_out, action) for action in claimed}
            ran += len(claimed)
            if not self._running:
                break
            # Look again every POLL: for work, with a worker free (a claim is one indexed query),
            # and whether the process is stopping.
            wait(self._running.values(), timeout=POLL, return_when=FIRST_COMPLETED)
        return ran

    def _claim(self, limit: int) -> list[ActionRecord]:
        return self.service.store.claim_actions(self.service.clock(), self.owner, self.lease_seconds, limit)

    def _carry_out(self, action: ActionRecord) -> None:
        try:
            self._run(action)
        except Exception:  # the outcome could not be recorded (the database went away): its lease passes it on
            logger.exception("action %s %s: outcome not recorded", action.id, action.kind)

    def _run(self, action: ActionRecord) -> None:
        store, clock = self.service.store, self.service.clock
        handler = self.handlers.get(action.kind)
        try:
            if handler is None:
                raise ActionFailedError(f"no handler for action kind {action.kind!r}")
            release = store.release(action.release_id) if action.release_id is not None else None
            result = handler.run(action, release)
        except ActionWaitError as wait:
            now = clock()
            store.retry_action(action.id, self.owner, now, wait.until or now + self.backoff.cap, None)
            return
        except Exception as exc:  # every failure is retried; an unexpected one is logged in full
            self._failed(action, exc)
            return
        now = clock()
        store.finish_action(action.id, self.owner, now, result)
        self._audit(action, "done", result, action.attempts + 1, now)
        logger.info("action %s %s done: %s", action.id, action.kind, result, extra={"release_id": action.release_id})

    def _audit(self, action: ActionRecord, outcome: str, result: str, attempts: int, now: datetime) -> None:
        """An action's outcome in the audit log (done, or given up): what gatekeeper did, by whom."""
        data = {"action_id": action.id, "kind": action.kind, "outcome": outcome, "result": result[:500],
                "attempts": attempts, "by": self.owner}  # fmt: skip
        subject = f"release/{action.release_id}" if action.release_id is not None else f"action/{action.id}"
        with self.service.store.transaction() as tx:
            tx.append_audit("action", "gatekeeper", subject, data, now)

    def _failed(self, action: ActionRecord, exc: Exception) -> None:
        now = self.service.clock()
        attempts = action.attempts + 1
        message = str(exc)[:500] or type(exc).__name__
        give_up = attempts >= self.backoff.max_attempts or isinstance(exc, ActionRefusedError)
        at = now + self.backoff.delay(attempts)
        if isinstance(exc, ActionFailedError):
            logger.warning("action %s %s failed (attempt %d): %s", action.id, action.kind, attempts, message)
        else:
            logger.exception("action %s %s failed (attempt %d)", action.id, action.kind, attempts, exc_info=exc)
        self.service.store.retry_action(action.id, self.owner, now, at, message, failed=give_up)
        if give_up:
            self._audit(action, "failed", message, attempts, now)

    def stopping(self) -> None:
        """A pass in progress claims nothing more and returns (``close`` waits for what runs)."""
        self._closing.set()

    def close(self) -> None:
        self._closing.set()
        self._pool.shutdown(wait=True)
