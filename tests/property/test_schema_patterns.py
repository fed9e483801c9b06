"""The patterns the OpenAPI document states are the rules the server applies (schemathesis
generates requests from them, so a pattern looser or stricter than the server is a test failure
there; here the two are held together directly)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gatekeeper.domain.types import InvalidTargetError, parse_target
from gatekeeper.schemas import (
    CURSOR_PATTERN,
    MAX_ID,
    PRINTABLE,
    REVISION_PATTERN,
    TARGET_PATTERN,
    GateRequest,
    _cursor,
    decimal_pattern,
)


def documented(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern`` as JSON Schema reads it (ECMA 262: ``$`` is the very
    end, where Python's would also match before a final newline)."""
    assert pattern.endswith("$")
    return re.search(pattern[:-1] + r"\Z", text) is not None


def server_takes_target(text: str) -> bool:
    if not re.fullmatch(PRINTABLE, text):
        return False
    try:
        parse_target(text)
    except InvalidTargetError:
        return False
    return True


def server_takes_cursor(text: str) -> bool:
    try:
        _cursor(text)
    except ValueError:
        return False
    return True


TARGET_LIKE = st.one_of(
    st.from_regex(TARGET_PATTERN[:-1] + r"\Z"),
    st.builds(
        lambda prefix, rest: prefix + rest,
        st.sampled_from(["argocd:", "flux:Kustomization/", "flux:HelmRelease/", "git:", "git:acme/odoo@"]),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    ),
    st.text(max_size=40),
)


@settings(max_examples=400)
@given(TARGET_LIKE)
def test_the_documented_target_pattern_is_what_the_server_takes(text: str) -> None:
    assert documented(TARGET_PATTERN, text) == server_takes_target(text), repr(text)


@pytest.mark.parametrize(
    "text",
    ["git:acme/odoo@main\x7f", "git:acme/odoo@ma\x00in", "argocd:odoo-prod\n", "git:acme/odoo@main\u2003x", ""],
)
def test_targets_with_control_characters_or_spaces_match_neither(text: str) -> None:
    assert not documented(TARGET_PATTERN, text)
    assert not server_takes_target(text)


@settings(max_examples=400)
@given(
    st.one_of(
        st.integers(min_value=-5, max_value=MAX_ID + 10**6).map(str),
        st.integers(min_value=MAX_ID - 10**6, max_value=MAX_ID + 10**6).map(str),
        st.from_regex(r"\A0*[0-9]{0,20}\Z"),
        st.text(max_size=5),
    )
)
def test_the_documented_cursor_pattern_is_what_the_server_takes(text: str) -> None:
    assert documented(CURSOR_PATTERN, text) == server_takes_cursor(text), repr(text)


@pytest.mark.parametrize("maximum", [1, 9, 10, 99, 100, 205, 1000, 4096])
def test_a_decimal_pattern_matches_exactly_one_to_its_maximum(maximum: int) -> None:
    assert [n for n in range(0, 5000) if documented(decimal_pattern(maximum), str(n))] == list(range(1, maximum + 1))


@settings(max_examples=400)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8))
def test_the_revision_pattern_spells_out_what_backslash_s_means_to_the_server(text: str) -> None:
    # pydantic (Rust's regex) and Python agree on \s; ECMA 262 does not (U+0085, U+FEFF), so the
    # pattern lists the characters, and it must refuse exactly blanks and control characters.
    refused = any(char.isspace() or ord(char) < 0x20 or char == "\x7f" for char in text)
    assert documented(REVISION_PATTERN, text) == (not refused), repr(text)
    try:
        GateRequest(target="argocd:odoo-prod", revision=text)
    except ValidationError:
        assert refused, repr(text)
    else:
        assert not refused, repr(text)
