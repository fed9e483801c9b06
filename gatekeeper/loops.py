"""Background loops: each periodic task in a thread of its own (a slow GitHub never delays a
token revocation or the audit chainer). A loop can be woken early (the scheduler after a commit).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Loop:
    """Runs ``task`` every ``interval`` seconds in a daemon thread until stopped."""

    def __init__(self, name: str, task: Callable[[], object], interval: float) -> None:
        self.name = name
        self._task = task
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Run the task now instead of at the end of the interval."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._task()
            except Exception:  # a loop must survive anything its task throws
                logger.exception("background task %s failed", self.name)
            self._wake.wait(self._interval)
