"""``serve`` refuses an unmigrated database; ``db upgrade`` migrates SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

GATEKEEPER = str(Path(sys.executable).with_name("gatekeeper"))


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GATEKEEPER, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_serve_refuses_an_unmigrated_database_and_says_what_to_run(tmp_path: Path) -> None:
    env = {"GATEKEEPER_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}", "GATEKEEPER_PORT": "1"}
    done = run("serve", env=env)
    assert done.returncode == 2
    assert "gatekeeper db upgrade" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_db_upgrade_migrates_to_the_newest_schema_and_is_repeatable(
    backend: str, tmp_path: Path, pg_schema_url: Callable[[], str]
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if backend == "sqlite" else pg_schema_url()
    first = run("db", "upgrade", env={"GATEKEEPER_DATABASE_URL": url})
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("database migrated from an empty database to "), first.stdout
    again = run("db", "upgrade", env={"GATEKEEPER_DATABASE_URL": url})
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("database was at the newest schema already"), again.stdout


def test_audit_verify_on_a_missing_sqlite_file_says_so_and_creates_nothing(tmp_path: Path) -> None:
    database = tmp_path / "nowhere" / "gatekeeper.db"
    done = run("audit", "verify", env={"GATEKEEPER_DATABASE_URL": f"sqlite:///{database}"})
    assert done.returncode == 2, done.stderr
    assert f"no database at {database}: run this where" in done.stderr
    assert not database.exists() and not database.parent.exists()


def test_audit_verify_on_an_unmigrated_database_says_to_migrate(tmp_path: Path) -> None:
    database = tmp_path / "empty.db"
    database.touch()
    done = run("audit", "verify", env={"GATEKEEPER_DATABASE_URL": f"sqlite:///{database}"})
    assert done.returncode == 2, done.stderr
    assert "run `gatekeeper db upgrade`" in done.stderr


def test_replicas_migrating_one_postgresql_database_at_once_all_succeed(pg_schema_url: Callable[[], str]) -> None:
    url = pg_schema_url()
    env = {**os.environ, "GATEKEEPER_DATABASE_URL": url}
    upgrades = [
        subprocess.Popen(
            [GATEKEEPER, "db", "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    errors = [process.communicate(timeout=60)[1] for process in upgrades]
    assert [process.returncode for process in upgrades] == [0, 0, 0, 0], errors


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    env = {"GATEKEEPER_DATABASE_URL": f"sqlite:///{tmp_path / 'one.db'}", "GATEKEEPER_WORKERS": "2"}
    done = run("serve", env=env)
    assert done.returncode == 2
    assert "needs PostgreSQL" in done.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_outbox_migration_keeps_the_deployment_reviews_still_waiting(
    backend: str, tmp_path: Path, pg_schema_url: Callable[[], str]
) -> None:
    """0005 replaces pending_reviews with the actions outbox: a review that was waiting becomes a
    due deployment_review action of its release; an answered one is not carried over."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from gatekeeper.store import migrations

    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else pg_schema_url()
    engine = create_engine(url)
    config = migrations.alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        connection.execute(
            text(
                "INSERT INTO releases (id, target, revision, status, trigger, created_at, updated_at)"
                " VALUES (1, 'git:acme/odoo-config@main', 'abc', 'deferred', 'github-deployment', :t, :t)"
            ),
            {"t": "2026-12-01 10:00:00+00:00"},
        )
        for callback, answered in (
            ("https://api.github.com/runs/1/rule", None),
            ("https://api.github.com/runs/2/rule", "2026-12-01 11:00:00+00:00"),
        ):
            connection.execute(
                text(
                    "INSERT INTO pending_reviews (release_id, callback_url, environment, created_at, answered_at)"
                    " VALUES (1, :url, 'production', :t, :answered)"
                ),
                {"url": callback, "t": "2026-12-01 10:00:00+00:00", "answered": answered},
            )
    upgraded = run("db", "upgrade", env={"GATEKEEPER_DATABASE_URL": url})
    assert upgraded.returncode == 0, upgraded.stderr
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT kind, release_id, status, payload FROM actions")).all()
    engine.dispose()
    assert len(rows) == 1
    kind, release_id, status, payload = rows[0]
    payload = payload if isinstance(payload, dict) else __import__("json").loads(payload)
    assert (kind, release_id, status) == ("deployment_review", 1, "pending")
    assert payload == {"callback_url": "https://api.github.com/runs/1/rule", "environment": "production"}
