"""Database migrations (alembic): upgrade to head, and tell whether a database is current."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

SCRIPTS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


# Several replicas (or worker processes) with AUTO_MIGRATE start at once: on PostgreSQL one of
# them migrates while the others wait on this transaction-scoped advisory lock, then find the
# schema current. (SQLite's write lock serialises them already.)
MIGRATION_LOCK = 0x6761_7465_6D69  # "gatemi"


def upgrade(engine: Engine) -> None:
    """Migrate the database to the newest schema (safe to call from several processes at once)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def pending(engine: Engine) -> tuple[str | None, str]:
    """(current revision, head revision); equal when the database is up to date."""
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head() or ""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current, head
