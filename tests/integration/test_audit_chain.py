"""`gatekeeper audit verify --expect-head` against the chain the served app writes: a cut of 1 or 3
records and a rewrite with recomputed hashes exit 1 naming what is wrong; with AUDIT_KEY a rewrite
recomputed with plain SHA-256 is caught without a head; a malformed head is exit 2."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from gatekeeper.audit import GENESIS, chain_hash
from tests.integration.conftest import Server, eventually
from tests.integration.test_people import GATEKEEPER, gate, people  # noqa: F401 - the fixture

KEY = "an-audit-key-of-thirty-two-bytes!"


def verify(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GATEKEEPER, "audit", "verify", *args], env=env, capture_output=True, text=True, timeout=60)


def chained(server: Server, count: int) -> list[dict[str, Any]]:
    def items() -> list[dict[str, Any]]:
        with server.client("viewer") as client:
            found: list[dict[str, Any]] = client.get("/v1/audit").json()["items"]
            return found

    eventually(lambda: len(items()) == count)
    return items()


def environment(database_url: str, **extra: str) -> dict[str, str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("GATEKEEPER_")}
    return {**clean, "GATEKEEPER_DATABASE_URL": database_url, **extra}


@pytest.fixture
def six(people: Server, database_url: str) -> tuple[str, str]:  # noqa: F811 - the fixture imported above
    """Six audited gate decisions; the head (SEQ:HASH) that verify printed then."""
    for revision in ("a1", "a2", "a3", "a4", "a5", "a6"):
        gate(people, revision)
    records = chained(people, 6)
    ok = verify(env=environment(database_url))
    assert ok.returncode == 0, ok.stderr
    head = f"6:{records[-1]['hash']}"
    assert f"head {head}" in ok.stdout
    return database_url, head


@pytest.mark.parametrize("cut", [pytest.param(1, id="by-one"), pytest.param(3, id="by-three")])
def test_a_chain_cut_at_its_end_fails_against_the_head_seen_earlier(six: tuple[str, str], cut: int) -> None:
    database_url, head = six
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit WHERE seq > :keep"), {"keep": 6 - cut})
    engine.dispose()
    env = environment(database_url)
    # The chain that is left holds on its own, but the decisions whose records were cut are named.
    alone = verify(env=env)
    assert alone.returncode == 1
    assert f"{cut} decision{'s have' if cut > 1 else ' has'} no audit record" in alone.stderr, alone.stderr
    broken = verify("--expect-head", head, env=env)
    assert broken.returncode == 1
    assert f"chain ends at seq {6 - cut}, a head at seq 6 was seen" in broken.stderr


def test_a_rewrite_with_recomputed_plain_hashes_fails_against_the_head(six: tuple[str, str], tmp_path: Path) -> None:
    database_url, head = six
    env = environment(database_url)
    exported = subprocess.run([GATEKEEPER, "audit", "export"], env=env, capture_output=True, text=True, timeout=60)
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    records[2]["actor"] = "mallory"
    previous = records[1]["hash"]
    for record in records[2:]:
        record["prev_hash"] = previous
        record["hash"] = previous = chain_hash(previous, record, None)
    forged = tmp_path / "forged.jsonl"
    forged.write_text("".join(json.dumps(record) + "\n" for record in records))
    assert verify(str(forged), env=env).returncode == 0  # without a key or a head, a rewrite holds
    broken = verify(str(forged), "--expect-head", head, env=env)
    assert broken.returncode == 1
    assert "record 6: hash" in broken.stderr and "differs from the head seen" in broken.stderr


def keyed_export(path: Path, key: bytes, count: int = 4) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    previous = GENESIS
    for seq in range(1, count + 1):
        record: dict[str, Any] = {
            "seq": seq,
            "at": "2026-11-24T09:00:00Z",
            "kind": "decision",
            "actor": "gatekeeper",
            "subject": f"release:{seq}",
            "data": {"decision_id": seq, "verdict": "approve"},
            "break_glass": False,
            "prev_hash": previous,
        }
        record["hash"] = previous = chain_hash(previous, record, key)
        records.append(record)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return records


def test_with_audit_key_a_rewrite_recomputed_with_plain_sha256_fails_without_a_head(tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    records = keyed_export(export, KEY.encode())
    env = environment("sqlite:///unused.db", GATEKEEPER_AUDIT_KEY=KEY)
    intact = verify(str(export), env=env)
    assert intact.returncode == 0, intact.stderr
    assert "HMAC-SHA256 under AUDIT_KEY" in intact.stdout
    records[1]["actor"] = "mallory"
    previous = records[0]["hash"]
    for record in records[1:]:
        record["prev_hash"] = previous
        record["hash"] = previous = chain_hash(previous, record, None)
    export.write_text("".join(json.dumps(record) + "\n" for record in records))
    broken = verify(str(export), env=env)
    assert broken.returncode == 1
    assert "record 2: its hash is a plain SHA-256, not the HMAC under AUDIT_KEY" in broken.stderr
    as_json = json.loads(verify(str(export), "--json", env=env).stdout)
    assert as_json["ok"] is False
    assert [(p["code"], p["seq"]) for p in as_json["problems"]] == [("hash_mismatch", n) for n in (2, 3, 4)]


@pytest.mark.parametrize("head", ["6", "six:" + "a" * 64, "6:xyz", "0:" + "a" * 64])
def test_a_malformed_expected_head_is_bad_input(tmp_path: Path, head: str) -> None:
    export = tmp_path / "audit.jsonl"
    keyed_export(export, KEY.encode())
    done = verify(str(export), "--expect-head", head, env=environment("sqlite:///unused.db"))
    assert done.returncode == 2
    assert done.stderr.startswith("--expect-head: expected SEQ:HASH")


def test_the_served_app_chains_under_audit_key_and_a_plain_rewrite_is_caught_without_a_head(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path
) -> None:
    """AUDIT_KEY set on the service: its records are HMACs; someone with write access to the
    database rewrites a record and recomputes every later hash with plain SHA-256 (all they can
    do without the key): `audit verify` under the key fails with no head to compare with."""
    from tests.integration.conftest import MutableClock, make_settings, start_server
    from tests.integration.test_gate_api import OPEN

    server = start_server(make_settings(database_url, *config_tree, tokens_file, AUDIT_KEY=KEY), MutableClock(OPEN))
    try:
        with server.client("hook") as client:
            for revision in ("k1", "k2", "k3"):
                assert (
                    client.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": revision}).status_code
                    == 200
                )
        records = chained(server, 3)
    finally:
        server.stop()
    env = environment(database_url, GATEKEEPER_AUDIT_KEY=KEY)
    assert verify(env=env).returncode == 0
    assert verify(env=environment(database_url)).returncode == 1  # without the key nothing checks out
    engine = create_engine(database_url)
    previous = records[0]["hash"]
    with engine.begin() as connection:
        for record in records[1:]:
            record["actor"] = "mallory"
            record["prev_hash"] = previous
            record["hash"] = previous = chain_hash(previous, record, None)
            connection.execute(
                text("UPDATE audit SET actor = :actor, prev_hash = :prev, hash = :hash WHERE seq = :seq"),
                {"actor": "mallory", "prev": record["prev_hash"], "hash": record["hash"], "seq": record["seq"]},
            )
        connection.execute(text("UPDATE audit_head SET hash = :hash"), {"hash": previous})
    engine.dispose()
    broken = verify(env=env)
    assert broken.returncode == 1
    assert "record 2: its hash is a plain SHA-256, not the HMAC under AUDIT_KEY" in broken.stderr
