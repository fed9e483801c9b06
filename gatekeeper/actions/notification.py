"""``notification``: tell one configured endpoint of one event (a decision that changed the
verdict, a break-glass, a freeze started or lifted).

The outbox row names its endpoint; the URL and key are looked up here (never stored). A retry
sends the same ``id``, so a receiver that saw it already can drop the repeat. An endpoint taken
out of the file since is no failure: the action is done, saying so.
"""

from __future__ import annotations

from collections.abc import Mapping

from gatekeeper.actions import ActionFailedError
from gatekeeper.domain.records import ActionRecord, ReleaseDetail
from gatekeeper.notifiers import UpstreamError
from gatekeeper.notifiers.endpoints import Endpoint, Notifier


class NotificationHandler:
    kind = "notification"

    def __init__(self, endpoints: tuple[Endpoint, ...], notifiers: Mapping[str, Notifier]) -> None:
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}
        self.notifiers = notifiers

    def run(self, action: ActionRecord, release: ReleaseDetail | None) -> str:
        name = action.payload["endpoint"]
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return f"endpoint {name} is no longer configured: not sent"
        notifier = self.notifiers.get(endpoint.kind)
        if notifier is None:
            raise ActionFailedError(f"no notifier for endpoint kind {endpoint.kind!r}")
        try:
            return notifier.deliver(endpoint, action.payload["event"])
        except UpstreamError as exc:
            raise ActionFailedError(str(exc)) from exc
