"""The real app (settings from the environment) plus two bench-only baseline routes, for bench/gate.py:
``/bench/empty`` (does nothing) and ``/bench/insert`` (one INSERT and COMMIT on the same database)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func, insert

from gatekeeper.api.app import create_app
from gatekeeper.settings import Settings

rows = MetaData()
bench_rows = Table(
    "bench_rows",
    rows,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("note", String(64), nullable=False),
    Column("at", DateTime(timezone=True), server_default=func.now()),
)


def app() -> FastAPI:
    application = create_app(Settings())
    engine = application.state.service.store.engine
    rows.create_all(engine)

    @application.post("/bench/empty")
    def empty() -> dict[str, Any]:
        return {}

    @application.post("/bench/insert")
    def one_insert() -> dict[str, Any]:
        with engine.begin() as connection:
            connection.execute(insert(bench_rows).values(note="bench"))
        return {}

    return application
