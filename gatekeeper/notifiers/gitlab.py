"""GitLab: commit statuses (``POST /projects/:id/statuses/:sha``, ``PRIVATE-TOKEN`` header)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from gatekeeper.notifiers import TIMEOUT, describe, send

STATE = {"approve": "success", "defer": "pending", "rollback": "failed"}
NAME = "gatekeeper"


class GitLabNotifier:
    def __init__(self, api_url: str, token: str) -> None:
        self._api = api_url.rstrip("/")
        self._headers = {"PRIVATE-TOKEN": token, "User-Agent": "gatekeeper"}
        self._client = httpx.Client(timeout=TIMEOUT)  # one for the process (see GitHubNotifier)

    def close(self) -> None:
        self._client.close()

    def status_body(self, verdict: str, reasons: list[dict[str, Any]], link: str) -> dict[str, str]:
        return {"state": STATE[verdict], "name": NAME, "target_url": link, "description": describe(verdict, reasons)}

    def post_status(self, repo: str, sha: str, body: dict[str, str]) -> None:
        project = quote(repo, safe="")
        send(self._client, "POST", f"{self._api}/projects/{project}/statuses/{sha}", json=body, headers=self._headers)
