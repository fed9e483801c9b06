"""Edges (issue 14), through real uvicorn on both backends: every bad input a clear 4xx naming
what is wrong, never a 500 or a 503 with a driver's text; real payloads understood."""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import socket
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration import payloads as p
from tests.integration.conftest import POLICY, TOKENS, MutableClock, Server, make_settings, start_server, token_of

GITHUB_SECRET = "gh-edge-secret"
GITLAB_SECRET = "gl-edge-token"
FLUX_SECRET = "flux-edge-key"
ARGOCD_SECRET = "argocd-edge-token"


HELM_POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-charts}
spec:
  targets: ["flux:HelmRelease/odoo-prod/*"]
  timezone: Europe/Berlin
  calendar:
    deny:
      - {cron: "0 14 * * 1-5", duration: 2h, code: dispatch_cutoff}
"""


def config(root: Path, make_url: Callable[[], str], backend: str) -> tuple[str, Path, Path, Path]:
    """The integration suite's database, policies (plus a HelmRelease policy and one .ics
    policy per DURATION case) and tokens, under ``root``."""
    policies, calendars = root / "policies", root / "calendars"
    policies.mkdir()
    calendars.mkdir()
    (policies / "odoo.yaml").write_text(textwrap.dedent(POLICY))
    (policies / "helm.yaml").write_text(HELM_POLICY)
    for name, duration in ICS_CASES.items():
        (policies / f"{name}.yaml").write_text(ICS_POLICY.format(name=name))
        (calendars / f"{name}.ics").write_text(ICS.format(name=name, duration=duration), newline="")
    lines = []
    for role, (name, roles) in TOKENS.items():
        digest = hashlib.sha256(token_of(role).encode()).hexdigest()
        targets = '\n  targets: ["argocd:odoo-staging*"]' if role == "narrow-hook" else ""
        lines.append(f"- name: {name}\n  roles: [{', '.join(roles)}]\n  token_sha256: {digest}{targets}")
    tokens = root / "tokens.yaml"
    tokens.write_text("\n".join(lines) + "\n")
    url = f"sqlite:///{root / 'gatekeeper.db'}" if backend == "sqlite" else make_url()
    return url, policies, calendars, tokens


# One server per backend for the whole module (each test sends its own data; none needs an empty
# store): starting one per test case made the suite twice as slow.
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def edges(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg_schema_url: Callable[[], str]
) -> Iterator[Server]:
    """Every inbound source enabled, no outbound notifier."""
    url, policies, calendars, tokens = config(tmp_path_factory.mktemp("edges"), pg_schema_url, request.param)
    settings = make_settings(
        url,
        policies,
        calendars,
        tokens,
        GITHUB_SECRET=GITHUB_SECRET,
        GITLAB_TOKEN=GITLAB_SECRET,
        FLUX_SECRET=FLUX_SECRET,
        ARGOCD_TOKEN=ARGOCD_SECRET,
    )
    running = start_server(settings, MutableClock())
    yield running
    running.stop()


def post(server: Server, source: str, body: bytes, headers: dict[str, str | bytes]) -> httpx.Response:
    with server.client() as client:
        return client.post(f"/webhooks/{source}", content=body, headers=headers)


# 1. Signatures with bytes that are not ASCII ------------------------------------------------


@pytest.mark.parametrize(
    ("source", "header"),
    [
        pytest.param("github", "X-Hub-Signature-256", id="github"),
        pytest.param("flux", "X-Signature", id="flux"),
    ],
)
@pytest.mark.parametrize("value", [b"sha256=\xe9", b"sha256=\xff\xfe" + b"a" * 62, "sha256=é".encode()])
def test_a_signature_with_non_ascii_bytes_is_401(edges: Server, source: str, header: str, value: bytes) -> None:
    body = p.encode(p.github_push() if source == "github" else p.flux_event())
    headers: dict[str, str | bytes] = {"Content-Type": "application/json", header: value}
    if source == "github":
        headers |= {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-non-ascii"}
    response = post(edges, source, body, headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("source", "header", "value"),
    [
        pytest.param("gitlab", "X-Gitlab-Token", b"\xe9\xff", id="gitlab"),
        pytest.param("argocd", "Authorization", b"Bearer \xe9\xff", id="argocd"),
    ],
)
def test_a_token_with_non_ascii_bytes_is_401(edges: Server, source: str, header: str, value: bytes) -> None:
    headers: dict[str, str | bytes] = {"Content-Type": "application/json", header: value, "X-Gitlab-Event": "Push Hook"}
    response = post(edges, source, b"{}", headers)
    assert response.status_code == 401, response.text


# 2. Bounded, total JSON parsing ----------------------------------------------------------------

HOSTILE_JSON = [
    pytest.param(b"[" * 100_000, "levels deep", id="100000-nested-arrays"),
    pytest.param(b'{"a":' * 65 + b"1" + b"}" * 65, "levels deep", id="65-nested-objects"),
    pytest.param(b'{"x": ' + b"7" * 5000 + b"}", "integer of 5000 digits", id="5000-digit-integer"),
    pytest.param(b'{"x": "\\ud800"}', "lone surrogate", id="lone-high-surrogate"),
    pytest.param(b'{"x": ["\\udc00"]}', "lone surrogate", id="lone-low-surrogate"),
    pytest.param(b'{"x": NaN}', "NaN", id="nan"),
    pytest.param(b'{"x": 1e999}', "out of range", id="infinite-number"),
    pytest.param(b'{"x": "\xff"}', "not UTF-8", id="not-utf8"),
]


def signed(source: str, body: bytes, event: str) -> dict[str, str | bytes]:
    headers: dict[str, str] = {
        "github": p.github_headers(GITHUB_SECRET, event, body),
        "gitlab": p.gitlab_headers(GITLAB_SECRET, event),
        "flux": p.flux_headers(FLUX_SECRET, body),
        "argocd": p.argocd_headers(ARGOCD_SECRET),
    }[source]
    return dict(headers)


@pytest.mark.parametrize(("body", "problem"), HOSTILE_JSON)
@pytest.mark.parametrize(
    ("source", "event"),
    [("github", "push"), ("gitlab", "Push Hook"), ("flux", ""), ("argocd", "")],
)
def test_hostile_json_in_a_signed_webhook_is_400_naming_the_problem(
    edges: Server, source: str, event: str, body: bytes, problem: str
) -> None:
    with edges.client() as client:
        response = client.post(f"/webhooks/{source}", content=body, headers=signed(source, body, event))
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "malformed_payload"
        assert problem in response.json()["message"]
        assert client.get("/healthz").status_code == 200  # the connection survived


@pytest.mark.parametrize(("body", "problem"), HOSTILE_JSON)
@pytest.mark.parametrize(
    ("path", "role"),
    [("/v1/gate", "hook"), ("/v1/releases/1/approve", "manager"), ("/v1/releases/1/reject", "manager")],
)
def test_hostile_json_in_an_api_body_is_400_naming_the_problem(
    edges: Server, path: str, role: str, body: bytes, problem: str
) -> None:
    with edges.client(role) as client:
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "malformed_json"
        assert problem in response.json()["message"]
        assert client.get("/healthz").status_code == 200


FUZZ_KEYS = [
    "ref", "after", "repository", "full_name", "commits", "id", "author", "username", "pull_request",
    "merged", "action", "base", "merge_commit_sha", "deployment", "sha", "environment",
    "deployment_callback_url", "project", "path_with_namespace", "object_attributes", "target_branch",
    "involvedObject", "kind", "namespace", "name", "metadata", "revision", "reason", "event", "app",
]  # fmt: skip


def fuzz_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(10 if depth < 4 else 6)
    if choice == 0:
        return rng.choice([None, True, False, 0, -1, 2**63, 10**30, 1.5, -0.0])
    if choice == 1:
        return rng.choice(["", "main", "refs/heads/main", p.SHA_A, "x" * rng.randrange(300, 700), "a\x00b"])
    if choice == 2:
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0, 0x2FFFF)])) for _ in range(8))
    if choice == 3:
        return rng.choice(["Kustomization", "HelmRelease", "sync-succeeded", "merge", "closed", "odoo-prod"])
    if choice in (4, 5):
        return rng.randrange(-(10**25), 10**25)
    if choice in (6, 7):
        return {rng.choice(FUZZ_KEYS): fuzz_value(rng, depth + 1) for _ in range(rng.randrange(6))}
    return [fuzz_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def fuzz_body(rng: random.Random, source: str) -> bytes:
    """One of: random bytes, random JSON, a real payload truncated, nested deeply, or hostile."""
    real = {
        "github": p.github_push(),
        "gitlab": p.gitlab_push(),
        "flux": p.flux_event(),
        "argocd": p.argocd_event("sync-running"),
    }[source]
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 400))
    if kind == 1:
        return json.dumps(fuzz_value(rng)).encode()
    if kind == 2:
        whole = p.encode(real)
        return whole[: rng.randrange(len(whole))]
    if kind == 3:
        depth = rng.choice([63, 64, 65, 1000, 100_000])
        opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        return opener * depth + (b"1" + closer * depth if rng.random() < 0.5 else b"")
    if kind == 4:
        mutated = dict(real)
        mutated[rng.choice(list(mutated))] = fuzz_value(rng)
        return p.encode(mutated)
    return rng.choice(HOSTILE_JSON).values[0]  # type: ignore[no-any-return]


FUZZ_EVENTS = {
    "github": ["push", "pull_request", "deployment_protection_rule", "ping"],
    "gitlab": ["Push Hook", "Merge Request Hook"],
    "flux": [""],
    "argocd": [""],
}


@pytest.mark.parametrize("source", ["github", "gitlab", "flux", "argocd"])
def test_200_signed_fuzzed_bodies_never_get_a_5xx_and_keep_the_connection(edges: Server, source: str) -> None:
    rng = random.Random(f"edges-{source}")  # reproducible
    url = httpx.URL(edges.url)
    connection = http.client.HTTPConnection(url.host, url.port, timeout=30)
    counts: Counter[int] = Counter()
    try:
        connection.connect()
        sock = connection.sock
        for number in range(200):
            body = fuzz_body(rng, source)
            headers = {k: str(v) for k, v in signed(source, body, rng.choice(FUZZ_EVENTS[source])).items()}
            connection.request("POST", f"/webhooks/{source}", body=body, headers=headers)
            response = connection.getresponse()
            text = response.read()
            counts[response.status] += 1
            assert response.status < 500, (number, body[:200], text[:500])
            assert b"Traceback" not in text
            assert connection.sock is sock, f"the server closed the connection after request {number}"
        ping = p.encode({"zen": "Keep it logically awesome.", "hook_id": 1})
        connection.request("POST", "/webhooks/github", body=ping, headers=dict(signed("github", ping, "ping")))
        after = connection.getresponse()
        after.read()
        assert after.status == 200  # a GitHub ping on the same connection
        assert connection.sock is sock
    finally:
        connection.close()
    print(f"{source}: status counts over 200 signed fuzzed bodies: {dict(sorted(counts.items()))}")


# 3. Limits: bad client input is a 422 naming the field, never a 503 with a driver's text ------


def assert_names_field(response: httpx.Response, field: str, status: int = 422) -> None:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["field"] == field, payload
    assert field in payload["message"]
    assert "database" not in response.text and "PostgreSQL" not in response.text


def with_field(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(payload))
    node = copy
    *parents, last = path.split(".")
    for step in parents:
        node = node[step]
    node[last] = value
    return copy


LONG = "x" * 600
WEBHOOK_LIMITS = [
    pytest.param("github", "push", p.github_push(), "after", "a" * 65, id="github-commit-id-over-64"),
    pytest.param("github", "push", p.github_push(), "after", "ab\x00cd", id="github-commit-id-nul"),
    pytest.param("github", "push", p.github_push(), "repository.full_name", "acme/" + LONG, id="github-repo-over-512"),
    pytest.param("github", "push", p.github_push(), "ref", "refs/heads/" + "b" * 510, id="github-target-over-512"),
    pytest.param("github", "push", p.github_push(), "ref", "refs/heads/ma\x00in", id="github-branch-nul"),
    pytest.param("github", "push", p.github_push(), "pusher.name", "d" * 300, id="github-pusher-over-256"),
    pytest.param("github", "pull_request", p.github_merge(), "pull_request.merged_by.login", "f\x07", id="github-bell"),
    pytest.param("gitlab", "Push Hook", p.gitlab_push(), "checkout_sha", "c" * 65, id="gitlab-commit-id-over-64"),
    pytest.param(
        "gitlab", "Push Hook", p.gitlab_push(), "project.path_with_namespace", "a/\x00", id="gitlab-project-nul"
    ),
    pytest.param("flux", "", p.flux_event(), "metadata.revision", "main@" + "r" * 300, id="flux-revision-over-256"),
    pytest.param("flux", "", p.flux_event(), "involvedObject.name", "n" * 600, id="flux-name-over-512"),
    pytest.param("argocd", "", p.argocd_event("sync-running"), "revision", "r" * 257, id="argocd-revision-over-256"),
    pytest.param("argocd", "", p.argocd_event("sync-running"), "revision", "a\x00", id="argocd-revision-nul"),
    pytest.param("argocd", "", p.argocd_event("sync-running"), "app", "o" * 513, id="argocd-app-over-512"),
    pytest.param("argocd", "", p.argocd_event("sync-running"), "namespace", "n\x00", id="argocd-namespace-nul"),
]


@pytest.mark.parametrize(("source", "event", "payload", "path", "value"), WEBHOOK_LIMITS)
def test_a_webhook_value_beyond_the_limits_is_422_naming_the_field(
    edges: Server, source: str, event: str, payload: dict[str, Any], path: str, value: str
) -> None:
    body = p.encode(with_field(payload, path, value.replace("\\x00", "\x00").replace("\\x07", "\x07")))
    response = post(edges, source, body, signed(source, body, event))
    assert_names_field(response, path)


def test_an_over_long_delivery_id_is_422_naming_the_header(edges: Server) -> None:
    body = p.encode(p.github_push())
    headers = signed("github", body, "push") | {"X-GitHub-Delivery": "d" * 129}
    assert_names_field(post(edges, "github", body, headers), "X-GitHub-Delivery")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"target": "argocd:odoo-prod", "revision": "r" * 257}, "revision", id="revision-over-256"),
        pytest.param({"target": "git:acme/odoo@" + "b" * 600, "revision": "a"}, "target", id="target-over-512"),
        pytest.param({"target": "git:acme/odoo@ma\x00in", "revision": "a"}, "target", id="target-nul"),
        pytest.param({"target": "git:acme/odoo@ma\x01in", "revision": "a"}, "target", id="target-control"),
    ],
)
def test_a_gate_body_beyond_the_limits_is_422_naming_the_field(edges: Server, body: dict[str, Any], field: str) -> None:
    raw = json.dumps(body).replace("\\\\x00", "\\u0000").replace("\\\\x01", "\\u0001").encode()
    with edges.client("hook") as client:
        assert_names_field(client.post("/v1/gate", content=raw, headers={"Content-Type": "application/json"}), field)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        pytest.param("/v1/releases/9223372036854775808", "release_id", id="release-id-2^63"),
        pytest.param("/v1/releases/0", "release_id", id="release-id-0"),
        pytest.param("/v1/releases?cursor=99999999999999999999", "cursor", id="cursor-20-digits"),
        pytest.param("/v1/releases?cursor=9223372036854775808", "cursor", id="cursor-2^63"),
        pytest.param("/v1/releases?cursor=%C2%B2", "cursor", id="cursor-superscript-digit"),
        pytest.param("/v1/audit?after=9223372036854775808", "after", id="audit-after-2^63"),
        pytest.param("/v1/releases?status=%00", "status", id="status-nul"),
        pytest.param("/v1/releases?target=%00", "target", id="target-nul"),
        pytest.param("/v1/releases?target=" + "t" * 513, "target", id="target-over-512"),
        pytest.param("/v1/status?target=git:a/b@%01", "target", id="status-target-control"),
    ],
)
def test_ids_cursors_and_filters_beyond_the_limits_are_422_naming_the_parameter(
    edges: Server, path: str, field: str
) -> None:
    with edges.client("viewer") as client:
        assert_names_field(client.get(path), field)


def test_the_largest_id_and_cursor_are_answered_without_a_database_error(edges: Server) -> None:
    with edges.client("viewer") as client:
        assert client.get("/v1/releases/9223372036854775807").status_code == 404
        assert client.get("/v1/releases?cursor=9223372036854775807").status_code == 200
        assert client.get("/v1/audit?after=9223372036854775807").json()["items"] == []
    with edges.client("manager") as client:
        response = client.post("/v1/releases/9223372036854775807/approve", json={"reason": "x"})
        assert response.status_code == 404, response.text


# 4. Body read deadline (BODY_TIMEOUT, 408) and a bound on bodies read at once -----------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def impatient(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg_schema_url: Callable[[], str]
) -> Iterator[Server]:
    """BODY_TIMEOUT 2 s and one body read at a time."""
    url, policies, calendars, tokens = config(tmp_path_factory.mktemp("impatient"), pg_schema_url, request.param)
    settings = make_settings(
        url, policies, calendars, tokens, GITHUB_SECRET=GITHUB_SECRET, BODY_TIMEOUT="2s", BODIES_IN_FLIGHT=1
    )
    running = start_server(settings, MutableClock())
    yield running
    running.stop()


def stalled_request(server: Server, path: str, headers: dict[str, str]) -> socket.socket:
    """Sends the headers and the first bytes of a 100-byte body, then nothing more."""
    url = httpx.URL(server.url)
    sock = socket.create_connection((url.host, url.port or 80), timeout=15)
    lines = [f"POST {path} HTTP/1.1", f"Host: {url.host}", "Content-Type: application/json", "Content-Length: 100"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + b'{"target": "argo')
    return sock


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
        (data.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0]) if b"content-length: " in data else 0
    ):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/v1/gate", {"Authorization": f"Bearer {token_of('hook')}"}, id="gate"),
        pytest.param("/webhooks/github", {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=00"}, id="webhook"),
    ],
)
def test_a_client_that_stalls_after_its_headers_is_answered_408_after_body_timeout(
    impatient: Server, path: str, headers: dict[str, str]
) -> None:
    started = time.monotonic()
    with stalled_request(impatient, path, headers) as sock:
        status, raw = read_response(sock)
    elapsed = time.monotonic() - started
    assert status == 408, raw
    assert b'"request_timeout"' in raw and b"BODY_TIMEOUT" in raw
    assert b"connection: close" in raw.lower()
    assert 1.5 <= elapsed < 10, elapsed


def test_bodies_are_read_one_at_a_time_when_bodies_in_flight_is_1(impatient: Server) -> None:
    """The second body waits for the first one's turn (here: until its 408); GETs never wait."""
    with stalled_request(impatient, "/v1/gate", {"Authorization": f"Bearer {token_of('hook')}"}) as sock:
        time.sleep(0.3)  # the stalled request holds the only turn
        with impatient.client("hook") as client:
            started = time.monotonic()
            assert client.get("/healthz").status_code == 200
            assert time.monotonic() - started < 1.0
            response = client.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": "a" * 40})
            waited = time.monotonic() - started
        status, _ = read_response(sock)
    assert status == 408
    assert response.status_code == 200, response.text
    assert waited >= 1.2, waited  # it was read only once the stalled one gave its turn back


# 5. Real payloads as each sender documents them ---------------------------------------------

SHA_C = "c0ffee0ddba11fee1dead5eedcafe0123456789a"


def flux(server: Server, event: dict[str, Any]) -> httpx.Response:
    body = p.encode(event)
    return post(server, "flux", body, signed("flux", body, ""))


@pytest.mark.parametrize(
    ("kind", "metadata", "revision"),
    [
        pytest.param(
            "Kustomization",
            {"revision": f"latest@sha256:{p.DIGEST}", "originRevision": f"main@sha1:{p.SHA_A}"},
            p.SHA_A,
            id="oci-kustomization-origin-revision-over-digest",
        ),
        pytest.param(
            "HelmRelease",
            {
                "helm.toolkit.fluxcd.io/revision": "6.5.4",
                "helm.toolkit.fluxcd.io/originRevision": f"main@sha1:{p.SHA_B}",
            },
            p.SHA_B,
            id="helmrelease-origin-revision-over-chart-version",
        ),
        pytest.param(
            "Kustomization",
            {"event.toolkit.fluxcd.io/commit": SHA_C, "originRevision": f"main@sha1:{p.SHA_A}", "revision": "x"},
            SHA_C,
            id="commit-key-first",
        ),
        pytest.param(
            "Kustomization",
            {"kustomize.toolkit.fluxcd.io/revision": f"main/{p.SHA_A}"},
            p.SHA_A,
            id="prefixed-key-legacy-form-as-in-flux-docs",
        ),
        pytest.param("Kustomization", {"revision": f"feature/x/{p.SHA_B}"}, p.SHA_B, id="legacy-branch-with-slash"),
        pytest.param("Kustomization", {"revision": f"HEAD/{p.SHA_B}"}, p.SHA_B, id="legacy-head"),
        pytest.param("Kustomization", {"revision": f"main@sha1:{p.SHA_A}"}, p.SHA_A, id="branch-at-sha1"),
        pytest.param("Kustomization", {"revision": f"sha1:{p.SHA_B}"}, p.SHA_B, id="bare-sha1"),
        pytest.param("HelmRelease", {"revision": "6.5.4"}, "6.5.4", id="chart-version-stays"),
    ],
)
def test_the_flux_revision_follows_fluxs_own_precedence_and_forms(
    edges: Server, kind: str, metadata: dict[str, str], revision: str
) -> None:
    response = flux(edges, p.flux_with_metadata(metadata, kind=kind))
    assert response.status_code == 200, response.text
    assert response.json()["decision"]["revision"] == revision
    assert response.json()["decision"]["target"] == f"flux:{kind}/odoo-prod/odoo"


@pytest.mark.parametrize("action", ["install", "upgrade"])
def test_an_older_helm_controller_success_event_with_reason_info_marks_the_release_applied(
    edges: Server, action: str
) -> None:
    chart = {"install": "7.1.0", "upgrade": "7.2.0"}[action]  # a release of its own in the shared store
    metadata = {"helm.toolkit.fluxcd.io/revision": chart, "helm.toolkit.fluxcd.io/token": "0f1e2d3c"}
    started = flux(edges, p.flux_with_metadata(metadata, "HelmRelease", "info", f"Helm {action} has started"))
    assert started.json()["decision"]["status"] == "approved", started.text
    done = flux(edges, p.flux_with_metadata(metadata, "HelmRelease", "info", f"Helm {action} succeeded"))
    assert done.status_code == 200, done.text
    assert done.json()["decision"]["status"] == "applied"
    failed = p.flux_with_metadata(metadata, "HelmRelease", "error", f"Helm {action} failed: timed out", "error")
    assert flux(edges, failed).json()["decision"]["verdict"] == "approve"  # unhealthy, nothing to roll back yet


@pytest.mark.parametrize("event", ["ping", "push"])
def test_a_github_form_encoded_delivery_is_read_like_json(edges: Server, event: str) -> None:
    payload = {"zen": "Design for failure.", "hook_id": 7} if event == "ping" else p.github_push()
    body = p.github_form(payload)
    headers = dict(signed("github", body, event)) | {"Content-Type": "application/x-www-form-urlencoded"}
    response = post(edges, "github", body, headers)
    assert response.status_code == 200, response.text
    if event == "push":
        assert response.json()["decision"]["target"] == "git:acme/odoo-config@main"
        assert response.json()["decision"]["revision"] == p.SHA_A


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(b"zen=hello", "no payload field", id="no-payload"),
        pytest.param(b"payload=%7B%22a%22", "not valid JSON", id="truncated-json"),
        pytest.param(b"payload=%FF", "form body is not valid", id="not-utf8"),
        pytest.param(b"&".join(b"f%d=1" % n for n in range(30)), "form body is not valid", id="too-many-fields"),
    ],
)
def test_a_bad_github_form_delivery_is_400(edges: Server, body: bytes, problem: str) -> None:
    headers = dict(signed("github", body, "push")) | {"Content-Type": "application/x-www-form-urlencoded"}
    response = post(edges, "github", body, headers)
    assert response.status_code == 400, response.text
    assert problem in response.json()["message"]


def test_a_gitlab_merge_hook_without_project_reads_the_target_project(edges: Server) -> None:
    body = p.encode(p.gitlab_merge_without_project())
    response = post(edges, "gitlab", body, signed("gitlab", body, "Merge Request Hook"))
    assert response.status_code == 200, response.text
    assert response.json()["decision"]["target"] == "git:acme/odoo-config@main"
    assert response.json()["decision"]["revision"] == p.SHA_B
    bare = p.gitlab_merge_without_project()
    del bare["object_attributes"]["target"]
    raw = p.encode(bare)
    assert_names_field(
        post(edges, "gitlab", raw, signed("gitlab", raw, "Merge Request Hook")), "project.path_with_namespace"
    )


# 6. An .ics DURATION in hours is exact elapsed time ---------------------------------------------

ICS_POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {{name: {name}}}
spec:
  targets: ["argocd:{name}"]
  timezone: Europe/Berlin
  calendar:
    deny:
      - {{ics: {name}.ics, code: ics_freeze}}
"""

ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//acme//gatekeeper edges//EN\r\n"
    "BEGIN:VEVENT\r\nUID:{name}@acme.io\r\nDTSTAMP:20260301T000000Z\r\nSUMMARY:Freeze over the DST change\r\n"
    "DTSTART;TZID=Europe/Berlin:20260328T120000\r\nDURATION:{duration}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


ICS_CASES = {
    "odoo-ics-pt24h": "PT24H",
    "odoo-ics-pt23h60m": "PT23H60M",
    "odoo-ics-p1d": "P1D",
    "odoo-ics-p1dt1h": "P1DT1H",
}


@pytest.mark.parametrize(
    ("name", "end"),
    [
        pytest.param("odoo-ics-pt24h", "2026-03-29T11:00:00Z", id="PT24H-is-24-elapsed-hours"),
        pytest.param("odoo-ics-pt23h60m", "2026-03-29T11:00:00Z", id="PT23H60M-is-24-elapsed-hours"),
        pytest.param("odoo-ics-p1d", "2026-03-29T10:00:00Z", id="P1D-is-one-local-day-of-23-hours"),
        pytest.param("odoo-ics-p1dt1h", "2026-03-29T11:00:00Z", id="P1DT1H-is-a-day-then-an-hour"),
    ],
)
def test_an_ics_duration_in_hours_is_exact_time_across_the_dst_change(edges: Server, name: str, end: str) -> None:
    """DTSTART;TZID=Europe/Berlin:20260328T120000; DST starts 2026-03-29 02:00 local."""
    with edges.client("viewer") as client:
        params = {"target": f"argocd:{name}", "from": "2026-03-27T00:00:00Z", "to": "2026-03-31T00:00:00Z"}
        response = client.get("/v1/windows", params=params)
    assert response.status_code == 200, response.text
    assert response.json()["closed"] == [{"start": "2026-03-28T11:00:00Z", "end": end, "codes": ["ics_freeze"]}]
