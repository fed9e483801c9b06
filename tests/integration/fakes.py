"""Wire-level fakes of GitHub's and GitLab's REST APIs on loopback (real HTTP, real httpx).

They check what the real APIs document: paths, auth and version headers, JSON bodies and the
allowed values, and answer 201 like the real endpoints. Every request is recorded.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GITHUB_TOKEN = "ghs_fake_installation_token"
GITLAB_TOKEN = "glpat-fake-token"

GITHUB_STATUS = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/statuses/(?P<sha>[0-9a-f]{7,64})$")
GITHUB_REVIEW = re.compile(
    r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/actions/runs/(?P<run>\d+)/deployment_protection_rule$"
)
GITLAB_STATUS = re.compile(r"^/api/v4/projects/(?P<project>[^/]+)/statuses/(?P<sha>[0-9a-f]{7,64})$")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApi:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    failed: list[Recorded] = field(default_factory=list)  # the requests answered 500 by fail_next
    errors: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    fail_next: int = 0  # answer this many requests 500 (a GitHub outage), then as usual
    # GitLab: the state of each (path, name) commit status; a transition to the state it has is
    # refused with 400, as GitLab's state machine does ("Cannot transition status via :enqueue
    # from :pending").
    statuses: dict[tuple[str, str], str] = field(default_factory=dict)
    refused: list[Recorded] = field(default_factory=list)
    delay: float = 0.0  # seconds each answer takes (a slow API)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_failure(self) -> bool:
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return True
            return False

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _github(recorded: Recorded) -> tuple[int, dict[str, Any]] | str:
    headers = recorded.headers
    if headers.get("authorization") != f"Bearer {GITHUB_TOKEN}":
        return "missing or wrong Authorization"
    if headers.get("accept") != "application/vnd.github+json":
        return "Accept must be application/vnd.github+json"
    if headers.get("x-github-api-version") != "2022-11-28":
        return "X-GitHub-Api-Version must be 2022-11-28"
    body = recorded.body
    if GITHUB_STATUS.match(recorded.path):
        if body.get("state") not in ("error", "failure", "pending", "success"):
            return f"bad state {body.get('state')!r}"
        if len(body.get("description", "")) > 140 or not body.get("context") or not body.get("target_url"):
            return "description over 140 characters, or no context/target_url"
        return 201, {"id": len(body), "state": body["state"], "context": body["context"]}
    if GITHUB_REVIEW.match(recorded.path):
        if body.get("state") not in ("approved", "rejected") or not body.get("environment_name"):
            return "review needs state approved|rejected and environment_name"
        return 204, {}
    return f"unknown GitHub path {recorded.path}"


GITLAB_EVENTS = {"pending": "enqueue", "running": "run", "success": "succeed", "failed": "drop", "canceled": "cancel"}


def _gitlab(recorded: Recorded) -> tuple[int, dict[str, Any]] | str:
    if recorded.headers.get("private-token") != GITLAB_TOKEN:
        return "missing or wrong PRIVATE-TOKEN"
    if not GITLAB_STATUS.match(recorded.path):
        return f"unknown GitLab path {recorded.path} (the project id must be URL-encoded)"
    body = recorded.body
    if body.get("state") not in ("pending", "running", "success", "failed", "canceled", "skipped"):
        return f"bad state {body.get('state')!r}"
    return 201, {"id": 1, "status": body["state"], "name": body.get("name")}


def start_fake(kind: str) -> FakeApi:
    fake = FakeApi()
    check = _github if kind == "github" else _gitlab

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length)
            if len(raw) < length:  # the client died mid-request (a SIGKILLed replica): nothing arrived
                self.close_connection = True
                return
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = None
            recorded = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            if fake.delay:
                time.sleep(fake.delay)
            if fake.take_failure():
                fake.failed.append(recorded)
                self._answer(500, {"message": "Server Error"})
                return
            outcome = check(recorded) if isinstance(body, dict) else "body is not a JSON object"
            if kind == "gitlab" and not isinstance(outcome, str):
                key = (recorded.path, str(body.get("name")))
                if fake.statuses.get(key) == body["state"]:
                    fake.refused.append(recorded)
                    verb = GITLAB_EVENTS.get(body["state"], body["state"])
                    message = f"Cannot transition status via :{verb} from :{body['state']}"
                    self._answer(400, {"message": message})
                    return
                fake.statuses[key] = body["state"]
            fake.requests.append(recorded)
            if isinstance(outcome, str):
                fake.errors.append(outcome)
                status, answer = 422, {"message": outcome}
            else:
                status, answer = outcome
            self._answer(status, answer)

        def _answer(self, status: int, answer: dict[str, Any]) -> None:
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.server = server
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    return fake
