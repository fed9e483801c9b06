"""The store: releases, decisions, deliveries, approvals, freezes and audit, in SQL.

SQLite is the embedded default (one replica); PostgreSQL (psycopg 3) the production store.
No SQLAlchemy exception escapes this package: they become ``StoreError``.
"""

from __future__ import annotations


class StoreError(Exception):
    """The database could not do what was asked (down, locked, or not migrated)."""


class NotMigratedError(StoreError):
    """The database schema is older than this version of gatekeeper."""


class ConnectionLostError(StoreError):
    """A pooled connection turned out dead (the database restarted): safe to try again once,
    on a fresh connection (nothing was committed, or a redelivery finds what was)."""
