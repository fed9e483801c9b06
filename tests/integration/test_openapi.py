"""The OpenAPI document is honest: schemathesis, through the served app on PostgreSQL, with every check.

Each operation of ``/openapi.json`` gets generated requests (valid and invalid), sent with a token
holding the route's role, and every built-in check runs on each answer: no 5xx, only documented
statuses, content types and bodies, valid data accepted, invalid data rejected, authentication
not ignored. Webhook bodies are signed as their senders sign them (a transport adapter signs the
exact bytes sent), so generated payloads reach the receivers' parsers, not only the signature
check.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from requests.adapters import HTTPAdapter
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from gatekeeper.schemas import TARGET_PATTERN
from tests.integration.conftest import (
    MutableClock,
    Server,
    make_settings,
    start_server,
    token_of,
    write_config,
    write_tokens,
)

SECRETS = {"github": "gh-secret", "gitlab": "gl-token", "flux": "flux-secret", "argocd": "argocd-token"}
MAX_EXAMPLES = 50  # fuzzed per operation (valid and invalid), beside the coverage cases
EXPECTED_OPERATIONS = 20  # GET /v1/me: the page asks who the token is


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pg_schema_url: Callable[[], str]) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("openapi")
    policies, calendars = write_config(folder)
    settings_ = make_settings(
        pg_schema_url(),
        policies,
        calendars,
        write_tokens(folder),
        GITHUB_SECRET=SECRETS["github"],
        GITLAB_TOKEN=SECRETS["gitlab"],
        FLUX_SECRET=SECRETS["flux"],
        ARGOCD_TOKEN=SECRETS["argocd"],
    )
    running = start_server(settings_, MutableClock())
    yield running
    running.stop()


class SigningAdapter(HTTPAdapter):
    """Signs webhook deliveries over the bytes actually sent, as GitHub, GitLab, Flux and Argo CD do."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        path = request.path_url.split("?")[0]
        source = path.removeprefix("/webhooks/") if path.startswith("/webhooks/") else None
        if source in SECRETS:
            body = request.body or b""
            raw = body.encode() if isinstance(body, str) else body
            digest = hmac.new(SECRETS[source].encode(), raw, hashlib.sha256).hexdigest()
            request.headers.update(
                {
                    "github": {"X-Hub-Signature-256": f"sha256={digest}"},
                    "gitlab": {"X-Gitlab-Token": SECRETS["gitlab"]},
                    "flux": {"X-Signature": f"sha256={digest}"},
                    "argocd": {"Authorization": f"Bearer {SECRETS['argocd']}"},
                }[source]
            )
        return super().send(request, *args, **kwargs)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as signing:
        signing.mount("http://", SigningAdapter())
        yield signing


# The token each route needs (the conftest's tokens): a viewer for reads, the hook for the gate,
# a release manager who also holds break-glass for the people's actions.
def role_of(path: str) -> str | None:
    if path.startswith("/v1/releases/{release_id}/"):
        return "breakglass"
    if path == "/v1/gate":
        return "hook"
    if path.startswith("/v1/"):
        return "manager"
    return None


def test_every_operation_answers_as_its_openapi_document_says(served: Server, session: requests.Session) -> None:
    api = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    # Unknown query parameters are ignored, as HTTP APIs do (calendar clients add their own).
    api.config.generation.allow_extra_parameters = False
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == EXPECTED_OPERATIONS, [op.label for op in operations]
    failures: dict[str, str] = {}
    sent: Counter[str] = Counter()
    for operation in operations:
        try:
            exercise(api, operation, served.url, session, sent)
        except FailureGroup as exc:  # each operation's first failure, all reported together
            failures[operation.label] = str(exc)[:3000]
    print("schemathesis: responses by status", dict(sorted(sent.items())))
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def exercise(api: Any, operation: Any, url: str, session: requests.Session, sent: Counter[str]) -> None:
    """The schemathesis CLI's unit phases for one operation: the document's examples, the coverage
    cases (each boundary of each rule, just inside and just outside) and fuzzing, valid and invalid."""
    role = role_of(operation.path)
    headers = {"Authorization": f"Bearer {token_of(role)}"} if role else None
    excluded: list[Any] = []
    if operation.path.startswith("/webhooks/"):
        # A webhook's body is its sender's: the document says "a JSON object" and a receiver
        # rightly refuses one that is not an event it knows (400, 422), and ignores (202) an event
        # it does not take before it parses the body (STYLE.md: the allow-list, then parse).
        excluded += [positive_data_acceptance, negative_data_rejection]
    if operation.path == "/v1/windows":
        # `to` not before `from`, at most 800 days after it: a rule across two parameters, which
        # OpenAPI cannot say (the operation's description does); its 422 is tested below.
        excluded.append(positive_data_acceptance)
    if operation.path == "/v1/freezes" and operation.method.upper() == "POST":
        # `end` after `start` and in the future, and globs that can match a target key: rules
        # across fields and the clock, which the description says; their 422s are tested in
        # test_freezes.py.
        excluded.append(positive_data_acceptance)

    def run(case: Any) -> None:
        response = case.call_and_validate(
            base_url=url, session=session, headers=headers, excluded_checks=excluded or None
        )
        sent[str(response.status_code)] += 1

    config = HypothesisTestConfig(
        project=api.config,
        modes=list(HypothesisTestMode),
        settings=settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,  # the same requests on every run: a failure here is reproducible
            database=None,
            phases=[Phase.explicit, Phase.generate],  # the first failure, as generated (no shrinking)
            suppress_health_check=list(HealthCheck),
        ),
    )
    create_test(operation=operation, test_func=run, config=config)()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param("from=2026-11-24T00:00:00Z&to=2026-11-23T00:00:00Z", "to: must not be before from", id="reversed"),
        pytest.param("from=2026-01-01T00:00:00Z&to=2028-03-11T00:00:01Z", "to: at most 800 days after from", id="too-long"),
    ],
)
def test_windows_refuses_a_range_the_document_describes_but_cannot_express(
    served: Server, query: str, message: str
) -> None:
    with served.client("viewer") as client:
        answer = client.get(f"/v1/windows?target=argocd:odoo-prod&{query}")
    assert answer.status_code == 422
    assert answer.json() == {"error": "invalid_request", "message": message, "field": "to"}


def test_the_document_declares_the_real_error_body_bearer_auth_and_media_types(served: Server) -> None:
    with served.client() as client:
        document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["ErrorBody"]["properties"]) == {"error", "message", "field"}
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token listed in TOKENS_FILE",
    }
    paths = document["paths"]
    assert paths["/v1/gate"]["post"]["security"] == [{"bearer": []}]
    assert {"bearer": []} in paths["/v1/calendar.ics"]["get"]["security"]
    assert "security" not in paths["/healthz"]["get"]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    assert list(paths["/v1/calendar.ics"]["get"]["responses"]["200"]["content"]) == ["text/calendar"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and not path.startswith("/readyz"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/ErrorBody", (method, path, status)
    assert {"400", "401", "403", "408", "413", "422", "503"} <= set(paths["/v1/gate"]["post"]["responses"])
    target = schemas["GateRequest"]["properties"]["target"]
    assert (target["maxLength"], target["pattern"]) == (512, TARGET_PATTERN)
