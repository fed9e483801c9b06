"""A fake GitHub REST API on 127.0.0.1 for bench/gate.py's scheduler run.

It answers ``POST /repos/{owner}/{repo}/statuses/{sha}`` with 201 and counts the posts per SHA
(and the body of the last one); anything else is 404. It runs in a thread of the bench process:

    with FakeGitHub() as github:
        ... GATEKEEPER_GITHUB_API_URL=github.url ...
        github.posts  # Counter: sha -> posts
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STATUS_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]{40})$")


class FakeGitHub:
    def __init__(self) -> None:
        self.posts: Counter[str] = Counter()
        self.bodies: dict[str, dict[str, Any]] = {}
        self.other = 0  # requests that were not a status post
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                found = STATUS_PATH.match(self.path)
                if found is None:
                    with fake._lock:
                        fake.other += 1
                    self._answer(404, {"message": "Not Found"})
                    return
                sha = found.group(3)
                try:
                    status = json.loads(body or b"{}")
                except json.JSONDecodeError:
                    status = {}
                with fake._lock:
                    fake.posts[sha] += 1
                    fake.bodies[sha] = status
                self._answer(201, {"id": 1, "state": status.get("state"), "context": status.get("context")})

            def _answer(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-github", daemon=True)

    def total(self) -> int:
        with self._lock:
            return sum(self.posts.values())

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
