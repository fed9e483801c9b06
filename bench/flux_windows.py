"""What following Flux targets' gates costs in the background: one ``newest_releases('flux:')`` (the
newest release of every Flux target) over a year of releases, on the local PostgreSQL.

Run from the repository root:  .venv/bin/python bench/flux_windows.py [--releases 200000] [--looks 20]

A fresh schema at 127.0.0.1:5432/test, migrated; ``--releases`` rows, a quarter of them releases of
250 Flux Kustomizations and the rest of 3,000 Argo CD applications (the newest 2,000 deferred,
the others superseded), then ANALYZE. Printed: the query's p50 and worst time over ``--looks``,
and what that costs a replica per second when it looks every scheduler pass (``SCHEDULER_INTERVAL``
1 s, the baseline: what it did before 2026-12-08) and every ``FLUX_WINDOW_INTERVAL`` (10 s).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/calendar.py is named like the standard library's `calendar`: keep bench/ off the import path.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import statistics
import time
import uuid

from sqlalchemy import create_engine, text

from gatekeeper.store.sql import SqlReleaseStore

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FILL = """
INSERT INTO releases (target, revision, status, "trigger", created_at, updated_at)
SELECT CASE WHEN i % 4 = 0 THEN 'flux:Kustomization/odoo/app-' || (i % 1000) ELSE 'argocd:app-' || (i % 3000) END,
       md5(i::text), CASE WHEN i > :total - 2000 THEN 'deferred' ELSE 'superseded' END, 'presync', now(), now()
FROM generate_series(1, :total) AS i
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=200_000)
    parser.add_argument("--looks", type=int, default=20)
    args = parser.parse_args()
    schema = f"gk_bench_flux_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        store = SqlReleaseStore.from_url(f"{PG}?options=-csearch_path%3D{schema}")
        store.upgrade()
        with store.engine.begin() as connection:
            connection.execute(text(FILL), {"total": args.releases})
            connection.execute(text("ANALYZE releases"))
        times = []
        for _ in range(args.looks):
            started = time.perf_counter()
            found = store.newest_releases("flux:", 1000)
            times.append(time.perf_counter() - started)
        p50 = statistics.median(times)
        print(f"{args.releases} releases, {len(found)} Flux targets: newest_releases p50 {p50 * 1000:.1f} ms, "
              f"worst {max(times) * 1000:.1f} ms")  # fmt: skip
        for label, interval in (("every scheduler pass, 1 s (baseline)", 1.0), ("every FLUX_WINDOW_INTERVAL, 10 s", 10.0)):
            print(f"  looking {label}: {p50 / interval * 1000:.1f} ms of database time per second per replica")
        store.engine.dispose()
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
