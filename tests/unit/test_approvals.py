"""Four eyes compares persons (a token's name plus its identities) with everyone who touched the
revision, casefolded; distinct approvers are distinct persons."""

from __future__ import annotations

import pytest

from gatekeeper.domain.approvals import (
    Approval,
    ApprovalFacts,
    counted,
    four_eyes_conflict,
    identity_set,
    missing,
    needed,
)
from gatekeeper.domain.policy import ApprovalRules, Policy

MANAGER = frozenset({"release-manager"})
FOUR_EYES = ApprovalRules(required=1, role="release-manager", four_eyes=True)
TWO = ApprovalRules(required=2, role="release-manager", four_eyes=True)


def approval(name: str, *identities: str) -> Approval:
    return Approval(name, MANAGER, identities=identity_set((name, *identities)))


def test_identities_are_stripped_and_casefolded_and_empty_ones_dropped() -> None:
    assert identity_set(["Alice", " alice@ACME.io ", "", None, "  "]) == {"alice", "alice@acme.io"}


@pytest.mark.parametrize(
    ("name", "identities", "facts", "refused"),
    [
        pytest.param("alice", (), ApprovalFacts(author="Alice"), True, id="author-other-case"),
        pytest.param("ALICE", (), ApprovalFacts(merger="alice"), True, id="merger-other-case"),
        pytest.param(
            "alice-ops", ("alice@acme.io",), ApprovalFacts(touched=frozenset({"alice@acme.io"})), True, id="by-e-mail"
        ),
        pytest.param(
            "alice-ops",
            ("Alice@Acme.IO",),
            ApprovalFacts(touched=identity_set(["alice@acme.io"])),
            True,
            id="e-mail-case",
        ),
        pytest.param("bob", (), ApprovalFacts(author="alice", touched=frozenset({"carol"})), False, id="someone-else"),
        pytest.param("carol", (), ApprovalFacts(author="alice", touched=frozenset({"carol"})), True, id="pusher"),
        pytest.param("bob", (), ApprovalFacts(), False, id="nobody-known"),
    ],
)
def test_four_eyes_refuses_an_approver_any_of_whose_identities_touched_the_revision(
    name: str, identities: tuple[str, ...], facts: ApprovalFacts, refused: bool
) -> None:
    assert (four_eyes_conflict(name, facts, identities) is not None) is refused


def test_the_refusal_says_how_the_approver_touched_the_revision() -> None:
    facts = ApprovalFacts(author="alice", merger="bob", touched=frozenset({"carol@acme.io"}))
    assert four_eyes_conflict("Alice", facts) == "Alice wrote this revision and cannot approve it under four-eyes"
    assert four_eyes_conflict("bob", facts) == "bob merged this revision and cannot approve it under four-eyes"
    assert four_eyes_conflict("carol", facts, ["carol@acme.io"]) == (
        "carol touched this revision (as carol@acme.io) and cannot approve it under four-eyes"
    )


def test_an_approval_by_someone_who_touched_the_revision_does_not_count() -> None:
    facts = ApprovalFacts(
        (approval("alice-ops", "alice@acme.io"), approval("bob")), touched=frozenset({"alice@acme.io"})
    )
    assert counted(FOUR_EYES, facts) == ["bob"]


def test_two_tokens_of_one_person_count_once() -> None:
    facts = ApprovalFacts((approval("bob", "bob@acme.io"), approval("bob-laptop", "BOB@acme.io")))
    assert counted(TWO, facts) == ["bob"]
    assert needed(TWO, facts) == 2


def test_tokens_linked_through_a_chain_of_shared_identities_are_one_person() -> None:
    facts = ApprovalFacts(
        (approval("b1", "x@acme.io"), approval("b2", "y@acme.io"), approval("b3", "x@acme.io", "y@acme.io"))
    )
    assert counted(TWO, facts) == ["b1"]


def test_an_approval_without_identities_is_its_name_casefolded() -> None:
    facts = ApprovalFacts((Approval("Bob", MANAGER), Approval("bob", MANAGER)))
    assert counted(TWO, facts) == ["Bob"]


@pytest.mark.parametrize(
    ("facts", "want"),
    [
        pytest.param(ApprovalFacts(), 2, id="nobody-known"),
        pytest.param(ApprovalFacts(touched=frozenset({"alice"})), 1, id="touched-known"),
        pytest.param(ApprovalFacts(author="alice"), 1, id="author-known"),
    ],
)
def test_with_nobody_known_four_eyes_needs_two_people(facts: ApprovalFacts, want: int) -> None:
    assert needed(FOUR_EYES, facts) == want


def test_the_missing_reason_names_logins_and_only_counts_e_mail_addresses() -> None:
    policy = Policy(name="prod", targets=("git:*",), approvals=FOUR_EYES)
    facts = ApprovalFacts(touched=frozenset({"alice", "alice@acme.io", "bob@acme.io"}))
    (reason,), requires = missing([policy], facts)
    assert "not alice; 2 e-mail addresses also excluded" in reason.message
    assert "@" not in reason.message
    assert requires == ("approval:release-manager",)
