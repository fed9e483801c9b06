"""GitHub: commit statuses (``POST /repos/{owner}/{repo}/statuses/{sha}``) and deployment
protection rule reviews (``POST`` to the ``deployment_callback_url``)."""

from __future__ import annotations

from typing import Any

import httpx

from gatekeeper.notifiers import TIMEOUT, describe, send

STATE = {"approve": "success", "defer": "pending", "rollback": "failure"}
REVIEW = {"approve": "approved", "rollback": "rejected"}
CONTEXT = "gatekeeper"


class GitHubNotifier:
    def __init__(self, api_url: str, token: str) -> None:
        self._api = api_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "gatekeeper",
        }
        # One client for the process: a client per post built a TLS context each time (~40 ms of
        # CPU, docs/benchmarks.md); httpx clients are safe to share between threads.
        self._client = httpx.Client(timeout=TIMEOUT)

    def close(self) -> None:
        self._client.close()

    def status_body(self, verdict: str, reasons: list[dict[str, Any]], link: str) -> dict[str, str]:
        return {
            "state": STATE[verdict],
            "target_url": link,
            "description": describe(verdict, reasons),
            "context": CONTEXT,
        }

    def post_status(self, repo: str, sha: str, body: dict[str, str]) -> None:
        send(self._client, "POST", f"{self._api}/repos/{repo}/statuses/{sha}", json=body, headers=self._headers)

    def review_deployment(self, callback_url: str, environment: str, verdict: str, comment: str) -> bool:
        """Answer a deployment protection rule; a deferral is answered later (False)."""
        if verdict not in REVIEW:
            return False
        body = {"environment_name": environment, "state": REVIEW[verdict], "comment": comment[:1000]}
        send(self._client, "POST", callback_url, json=body, headers=self._headers)
        return True
