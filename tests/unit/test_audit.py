"""The audit chain: keyed hashes, and verify naming each way a chain can be cut or rewritten."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gatekeeper.audit import GENESIS, Head, chain_hash, head_of, key_warning, verify
from gatekeeper.settings import Settings

KEY = b"a-key-the-database-never-sees-0123456789"


def chain(count: int, key: bytes | None = KEY, *, start: int = 1) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    previous = GENESIS
    for seq in range(start, start + count):
        record: dict[str, Any] = {
            "seq": seq,
            "at": f"2026-11-24T09:00:{seq % 60:02d}Z",
            "kind": "decision",
            "actor": "gatekeeper",
            "subject": f"release:{seq}",
            "data": {"decision_id": seq * 10, "verdict": "approve"},
            "break_glass": False,
        }
        record["prev_hash"] = previous
        record["hash"] = previous = chain_hash(previous, record, key)
        records.append(record)
    return records


def rechain(records: list[dict[str, Any]], key: bytes | None, start: int = 0) -> None:
    """What an attacker with write access does: recompute hashes from ``start`` on."""
    previous = records[start - 1]["hash"] if start else GENESIS
    for record in records[start:]:
        record["prev_hash"] = previous
        record["hash"] = previous = chain_hash(previous, record, key)


def codes(problems: tuple[Any, ...]) -> list[tuple[str, int | None]]:
    return [(problem.code, problem.seq) for problem in problems]


def test_the_keyed_hash_is_hmac_sha256_and_differs_from_the_plain_one() -> None:
    record = chain(1)[0]
    assert chain_hash(GENESIS, record, KEY) == record["hash"]
    assert chain_hash(GENESIS, record, None) != record["hash"]
    assert chain_hash(GENESIS, record, b"another key") != record["hash"]


@pytest.mark.parametrize("key", [pytest.param(KEY, id="keyed"), pytest.param(None, id="plain")])
def test_an_intact_chain_has_no_problems(key: bytes | None) -> None:
    assert verify(chain(5, key), key=key) == ()


def test_a_changed_record_is_named_and_the_next_link_breaks_without_cascading() -> None:
    records = chain(5)
    records[1]["actor"] = "mallory"
    assert codes(verify(records, key=KEY)) == [("hash_mismatch", 2)]
    records[1]["hash"] = chain_hash(records[1]["prev_hash"], records[1], KEY)  # the forger knows the key
    assert codes(verify(records, key=KEY)) == [("broken_link", 3)]


def test_with_a_key_a_rewrite_recomputed_with_plain_sha256_is_caught_without_a_head() -> None:
    records = chain(5)
    records[2]["data"] = {"decision_id": 30, "verdict": "approve", "note": "nothing to see"}
    rechain(records, None, start=2)
    problems = verify(records, key=KEY)
    assert codes(problems) == [("hash_mismatch", 3), ("hash_mismatch", 4), ("hash_mismatch", 5)]
    assert "plain SHA-256, not the HMAC under AUDIT_KEY" in problems[0].message


def test_without_a_key_a_recomputed_rewrite_needs_the_head_to_be_caught() -> None:
    records = chain(5, None)
    head = (records[-1]["seq"], records[-1]["hash"])
    records[2]["actor"] = "mallory"
    rechain(records, None, start=2)
    assert verify(records) == ()
    problems = verify(records, expect_head=head)
    assert codes(problems) == [("head_mismatch", 5)]
    assert "differs from the head seen" in problems[0].message


@pytest.mark.parametrize("cut", [pytest.param(1, id="by-one"), pytest.param(3, id="by-three")])
def test_a_chain_cut_at_its_end_is_caught_by_a_head_seen_earlier(cut: int) -> None:
    records = chain(6)
    head = (6, records[-1]["hash"])
    kept = records[:-cut]
    assert verify(kept, key=KEY) == ()  # a clean cut leaves a chain that holds
    problems = verify(kept, key=KEY, expect_head=head)
    assert codes(problems) == [("truncated", 6)]
    assert problems[0].message == f"chain ends at seq {6 - cut}, a head at seq 6 was seen"


def test_records_deleted_inside_the_chain_are_a_gap_and_a_broken_link() -> None:
    records = chain(6)
    del records[2:4]
    problems = verify(records, key=KEY)
    assert codes(problems) == [("sequence_gap", 5), ("broken_link", 5)]
    assert problems[0].message == "record 5: follows record 2, records 3 to 4 missing"


def test_a_renumbered_chain_is_caught_even_with_consistent_hashes() -> None:
    records = chain(4, None, start=2)  # starts at 2: record 1 was dropped and the rest re-hashed
    assert codes(verify(records)) == [("sequence_gap", 2)]
    again = chain(3, None)
    again.append({**again[-1]})  # seq 3 reused
    rechain(again, None, start=3)
    assert ("sequence_gap", 3) in codes(verify(again))


def test_an_expected_head_that_matches_passes() -> None:
    records = chain(4)
    assert verify(records, key=KEY, expect_head=(2, records[1]["hash"])) == ()
    assert verify(records, key=KEY, expect_head=(4, records[3]["hash"])) == ()


def test_decisions_without_an_audit_record_are_reported() -> None:
    records = chain(3)  # decision ids 10, 20, 30
    assert verify(records, key=KEY, decision_ids=[10, 20, 30]) == ()
    problems = verify(records, key=KEY, decision_ids=[10, 20, 30, 40, 55])
    assert codes(problems) == [("unaudited_decisions", None)]
    assert problems[0].message == "2 decisions have no audit record: 40, 55"


def test_a_record_missing_fields_is_malformed_not_a_crash() -> None:
    records = chain(2)
    del records[1]["kind"]
    assert codes(verify(records, key=KEY)) == [("malformed", 2)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("12", "SEQ:HASH", id="no-colon"),
        pytest.param("0:" + "a" * 64, "positive integer", id="zero"),
        pytest.param("x:" + "a" * 64, "positive integer", id="not-a-number"),
        pytest.param("3:" + "A" * 64, "64 lowercase hex", id="upper-hex"),
        pytest.param("3:abc", "64 lowercase hex", id="short-hash"),
    ],
)
def test_a_malformed_head_is_refused_naming_the_part(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Head.parse(text)


def test_the_head_is_the_last_record() -> None:
    records = chain(3)
    assert head_of(records) == Head(3, records[-1]["hash"])
    assert str(Head.parse(f"3:{records[-1]['hash']}")) == f"3:{records[-1]['hash']}"
    assert head_of([]) is None


def test_the_start_up_warning_is_given_only_without_a_key() -> None:
    assert key_warning(KEY) is None
    warning = key_warning(None)
    assert warning is not None and "GATEKEEPER_AUDIT_KEY is not set" in warning


def test_the_audit_key_setting_is_bytes_and_an_empty_one_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEKEEPER_AUDIT_KEY", "k" * 32)
    assert Settings().audit_key == b"k" * 32
    monkeypatch.setenv("GATEKEEPER_AUDIT_KEY", " ")
    with pytest.raises(ValidationError, match="AUDIT_KEY"):
        Settings()
    monkeypatch.delenv("GATEKEEPER_AUDIT_KEY")
    assert Settings().audit_key is None

