from __future__ import annotations

import hashlib
import io
import logging
import sys
from pathlib import Path

import pytest

from gatekeeper.logs import RedactSecrets, configure, redact
from gatekeeper.tokens import TokenFileError, TokenStore, parse_tokens


def entry(name: str, roles: str, token: str, extra: str = "") -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return f"- name: {name}\n  roles: [{roles}]\n  token_sha256: {digest}\n{extra}"


def test_a_token_is_identified_by_its_sha256_with_its_roles_and_targets(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(entry("alice", "release-manager, viewer", "s3cret", '  targets: ["argocd:odoo-*"]\n'))
    store = TokenStore(path)
    identity = store.identify("s3cret")
    assert identity is not None
    assert identity.name == "alice"
    assert identity.roles == {"release-manager", "viewer"}
    assert identity.may_act_on("argocd:odoo-prod")
    assert not identity.may_act_on("argocd:billing")
    assert store.identify("wrong") is None
    assert store.identify(None) is None


def test_the_tokens_file_is_reloaded_when_it_changes_and_a_broken_one_keeps_the_old_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(entry("alice", "viewer", "one"))
    store = TokenStore(path)
    path.write_text(entry("bob", "viewer", "two") + "\n")
    store.refresh()
    assert store.identify("two") is not None
    assert store.identify("one") is None
    path.write_text(entry("carol", "emperor", "three") + "\n\n")
    store.refresh()
    assert store.identify("two") is not None
    assert store.error is not None and "unknown role 'emperor'" in store.error


def test_no_tokens_file_means_no_token_is_valid() -> None:
    assert TokenStore(None).identify("anything") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "- name: a\n  roles: [root]\n  token_sha256: " + "0" * 64, "unknown role 'root'", id="unknown-role"
        ),
        pytest.param("- name: a\n  roles: [viewer]\n  token_sha256: abc", "64 lowercase hex", id="bad-digest"),
        pytest.param("- name: a\n  roles: []\n  token_sha256: " + "0" * 64, "non-empty list", id="no-roles"),
        pytest.param("name: a", "expected a list", id="not-a-list"),
        pytest.param("- name: a\n  role: viewer", "expected keys", id="unknown-key"),
        pytest.param(
            "- name: a\n  roles: [viewer]\n  targets: []\n  token_sha256: " + "a" * 64,
            r"entry 1 \(a\): targets must be a non-empty list of globs \(leave the field out for no limit\)",
            id="empty-targets",
        ),
        pytest.param(
            "- name: a\n  roles: [viewer]\n  targets:\n  token_sha256: " + "a" * 64,
            "targets must be",
            id="null-targets",
        ),
        pytest.param(
            "- name: a\n  roles: [viewer]\n  identities: alice@acme.io\n  token_sha256: " + "a" * 64,
            "identities must be a non-empty list of logins",
            id="identities-not-a-list",
        ),
        pytest.param(
            "- name: a\n  roles: [viewer]\n  identities: ['']\n  token_sha256: " + "a" * 64,
            "identities must be",
            id="empty-identity",
        ),
    ],
)
def test_a_bad_tokens_file_is_a_load_error_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(TokenFileError, match=message):
        parse_tokens(text, "tokens.yaml")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            '"GET /v1/calendar.ics?target=x&token=abc123 HTTP/1.1"',
            '"GET /v1/calendar.ics?target=x&token=[redacted] HTTP/1.1"',
            id="query-token",
        ),
        pytest.param(
            "/v1/calendar.ics?token=abc&target=x", "/v1/calendar.ics?token=[redacted]&target=x", id="first-param"
        ),
        pytest.param("Authorization: Bearer abc.def", "Authorization: Bearer [redacted]", id="bearer"),
        pytest.param("/v1/status?target=argocd:x", "/v1/status?target=argocd:x", id="nothing-to-hide"),
        pytest.param(
            "/v1/calendar.ics?target=x&%74oken=abc", "/v1/calendar.ics?target=x&%74oken=[redacted]", id="encoded"
        ),
        pytest.param("/v1/calendar.ics?tok%65N=abc", "/v1/calendar.ics?tok%65N=[redacted]", id="encoded-mixed-case"),
        pytest.param("/v1/calendar.ics?TOKEN=abc&x=1", "/v1/calendar.ics?TOKEN=[redacted]&x=1", id="upper-case"),
        pytest.param("/x?%2574oken=abc", "/x?%2574oken=[redacted]", id="double-encoded"),
        pytest.param("/x%3Ftoken%3Dabc%26t=1", "/x%3Ftoken%3D[redacted]%26t=1", id="whole-query-encoded"),
        pytest.param("/x?private_token=abc", "/x?private_token=[redacted]", id="gitlab-private-token"),
        pytest.param("/x?notatoken=abc&tokens=2", "/x?notatoken=abc&tokens=2", id="similar-names-kept"),
    ],
)
def test_secrets_in_urls_and_headers_are_redacted(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_the_log_filter_redacts_arguments_of_a_record() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s "%s"', ("127.0.0.1", "GET /x?token=t0p"), None
    )
    RedactSecrets().filter(record)
    assert record.getMessage() == '127.0.0.1 "GET /x?token=[redacted]"'


def test_identities_are_read_and_the_person_is_the_name_plus_them_casefolded(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(entry("Erik", "release-manager", "t", "  identities: [erik-acme, Erik@Acme.io]\n"))
    identity = TokenStore(path).identify("t")
    assert identity is not None
    assert identity.identities == ("erik-acme", "Erik@Acme.io")
    assert identity.person == {"erik", "erik-acme", "erik@acme.io"}


def test_leaving_targets_out_means_no_limit(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(entry("alice", "hook", "t"))
    identity = TokenStore(path).identify("t")
    assert identity is not None and identity.targets == () and identity.may_act_on("argocd:anything")


def test_the_store_reports_ok_stale_invalid_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    assert TokenStore(None).state.state == "unset" and TokenStore(None).state.ready
    gone = TokenStore(path).state
    assert (gone.state, gone.ever_loaded, gone.ready) == ("missing", False, False)
    assert gone.error == f"{path}: tokens file not found"
    path.write_text(entry("alice", "viewer", "one", "  targets: []\n"))
    broken = TokenStore(path)
    assert (broken.state.state, broken.state.ready) == ("invalid", False)
    assert broken.state.error is not None and "targets must be a non-empty list" in broken.state.error
    path.write_text(entry("alice", "viewer", "one"))
    broken.refresh()
    assert (broken.state.state, broken.state.error, broken.state.ready) == ("ok", None, True)
    path.write_text(entry("alice", "viewer", "one", "  targets: []\n") + "\n")
    broken.refresh()
    assert (broken.state.state, broken.state.ready) == ("stale", True)
    assert broken.identify("one") is not None  # the last good tokens serve on
    path.unlink()
    broken.refresh()
    assert (broken.state.state, broken.state.ever_loaded) == ("missing", True)
    assert broken.identify("one") is None  # a deleted file revokes its tokens
    path.write_text("- not: valid\n")
    broken.refresh()
    assert broken.state.state == "invalid"  # nothing serves: not stale


def test_the_log_filter_redacts_an_encoded_token_in_uvicorns_access_line() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/calendar.ics?target=argocd:x&%74oken=s3cret", "1.1", 200),
        None,
    )
    RedactSecrets().filter(record)
    assert "s3cret" not in record.getMessage()
    assert "%74oken=[redacted]" in record.getMessage()


def test_httpx_request_lines_with_full_urls_stay_out_of_the_log() -> None:
    """A published calendar's URL carries its key: httpx's INFO line per request must not be logged."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure()
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        assert logging.getLogger("gatekeeper").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_the_log_handler_writes_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread that outlives the test (or request) that started it must not write into a closed
    stream: the handler looks sys.stderr up at each record."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure()
        first, second = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stderr", first)
        logging.getLogger("gatekeeper.test").warning("one")
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("gatekeeper.test").warning("two")
        assert "two" in second.getvalue()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
