"""One drift check of a target with 50, 200 and 800 objects, and one push announcing 1,500
releases (issue 15): time and API requests.

Run from the repository root:  .venv/bin/python bench/drift.py [--sizes 50,200,800] [--checks 20]
                               [--push-targets 1500] [--pushes 3]

For each size, a bare Git repository made with pygit2 holds the target's manifests (Deployments,
Services and ConfigMaps spread over four namespaces: twelve (kind, namespace) pairs, in files of 50
documents), and the fake Kubernetes API server of the tests (tests/integration/fake_kubernetes.py,
real HTTP on loopback, the real `kubernetes` client) holds the live objects with every server-set
field. The drift reader (Pygit2GitReader + KubernetesClusterReader, as `gatekeeper serve` builds
them) then checks the target: once cold (a new mirror: clone, discovery, YAML parsing) and
--checks times warm (what a hook's poll costs: the baseline's manifests are cached per commit).
Printed per size: cold time, warm median and p95, API requests per warm check (expected: the
Argo CD Application GET plus one LIST per (kind, namespace) pair), objects found drifted (0).

Then the push: N Argo CD Applications (odoo-0000 ...) in the fake API, each deploying
clusters/prod/app-NNNN of one repository, all governed by one policy (a calendar that is open, no
drift rule: the announcement's own cost), on a fresh PostgreSQL schema at 127.0.0.1:5432/test.
A signed GitHub push (one commit touching every app's path) goes through the service's webhook
path in process (`WebhookService.receive`: verify, parse, find the targets, gather facts, one
transaction deciding N + 1 releases, the stored answer), timed from receipt to the answer after
commit. The first push lists the Applications (cached 30 s); each next push is a new revision.
Target: under 1 s (Argo CD needs about 15 s for one webhook at 1,500 applications, argo-cd #14269).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/calendar.py is named like the standard library's `calendar`: keep bench/ off the import path.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import copy
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pygit2
import yaml

from gatekeeper.domain.policy import DriftMode, Policy
from gatekeeper.domain.types import ReleaseRequest, TargetKey
from gatekeeper.drift import LIST_PARALLEL, DriftReader
from gatekeeper.readers.git import Pygit2GitReader
from gatekeeper.readers.kubernetes import KubernetesClusterReader
from tests.integration.drift_world import (
    DEPLOYMENT,
    IMAGE_BASELINE,
    argocd_application,
    commit,
    live_config_map,
    live_deployment,
    live_service,
)
from tests.integration.fake_kubernetes import start_fake_kubernetes, write_kubeconfig

NAMESPACES = ("odoo", "odoo-wms", "odoo-finance", "odoo-portal")
KINDS = ("Deployment", "Service", "ConfigMap")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def objects(count: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``count`` (desired, live) pairs: kinds and namespaces in turn."""
    base_desired = yaml.safe_load(DEPLOYMENT.replace("{image}", IMAGE_BASELINE))
    pairs = []
    for index in range(count):
        kind, namespace, name = KINDS[index % 3], NAMESPACES[(index // 3) % 4], f"obj-{index:04d}"
        if kind == "Deployment":
            desired, live = copy.deepcopy(base_desired), live_deployment()
            desired["metadata"]["annotations"]["acme.io/last-review"] = "2026-11-02"
        elif kind == "Service":
            desired = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                       "spec": {"selector": {"app.kubernetes.io/name": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}  # fmt: skip
            live = live_service()
            live["spec"]["selector"] = {"app.kubernetes.io/name": name}
        else:
            desired = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"index": str(index)}}
            live = live_config_map(name, {"index": str(index)})
        desired["metadata"].update(name=name, namespace=namespace)
        live["metadata"].update(name=name, namespace=namespace)
        pairs.append((desired, live))
    return pairs


def run(count: int, checks: int, root: Path, *, latency: float = 0.0, list_parallel: int = LIST_PARALLEL) -> dict[str, Any]:
    pairs = objects(count)
    repo = pygit2.init_repository(str(root / f"config-{count}.git"), bare=True)
    files = {
        f"apps/bulk/part-{start // 50:03d}.yaml": "---\n".join(yaml.safe_dump(d, sort_keys=False) for d, _ in pairs[start : start + 50])
        for start in range(0, count, 50)
    }
    sha = commit(repo, "main", files, f"{count} objects")
    url = (root / f"config-{count}.git").resolve().as_uri()
    kube = start_fake_kubernetes()
    kube.latency = latency
    try:
        for _, live in pairs:
            kube.put(live)
        kube.put(argocd_application(url, sha, path="apps/bulk"))
        kubeconfig = write_kubeconfig(root / f"kubeconfig-{count}", {"bench": kube.url}, "bench")
        git, cluster = Pygit2GitReader(root / f"cache-{count}"), KubernetesClusterReader(kubeconfig)
        reader = DriftReader(git, cluster, list_parallel=list_parallel)
        policy = Policy(name="bench", targets=("argocd:*",), drift=DriftMode.BLOCK)
        request = ReleaseRequest(TargetKey("argocd:odoo-prod"), "f" * 40)
        started = time.perf_counter()
        first = reader.read(request, [policy], NOW)
        cold = time.perf_counter() - started
        outcome = first.of("bench")
        assert outcome is not None and outcome.problem is None, outcome
        times, requests = [], []
        for _ in range(checks):
            before = len(kube.requests)
            started = time.perf_counter()
            reading = reader.read(request, [policy], NOW)
            times.append(time.perf_counter() - started)
            requests.append(len(kube.requests) - before)
        drifted = len(reading.of("bench").drifted)  # type: ignore[union-attr]
    finally:
        kube.stop()
    times.sort()
    return {
        "objects": count,
        "checked": outcome.checked,
        "cold_ms": cold * 1000,
        "warm_median_ms": statistics.median(times) * 1000,
        "warm_p95_ms": times[int(0.95 * (len(times) - 1))] * 1000,
        "requests": sorted(set(requests)),
        "pairs": len({(d["kind"], d["metadata"]["namespace"]) for d, _ in pairs}),
        "drifted": drifted,
    }


PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PUSH_POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-fleet}
spec:
  targets: ["argocd:odoo-*"]
  calendar:
    deny:
      - {cron: "0 3 * * 0", duration: 1m, code: sunday_maintenance}
"""


def push_bench(targets: int, pushes: int, root: Path) -> list[tuple[float, int]]:
    import hashlib
    import hmac
    import json
    import uuid

    from sqlalchemy import create_engine, text

    from gatekeeper.api.app import build_service, build_webhooks
    from gatekeeper.metrics import Metrics
    from gatekeeper.service import system_clock
    from gatekeeper.settings import Settings

    repo = "https://github.com/acme/odoo-fleet.git"
    kube = start_fake_kubernetes()
    schema = f"gk_bench_drift_{uuid.uuid4().hex[:8]}"
    engine = create_engine(PG)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        for index in range(targets):
            app = argocd_application(repo, "0" * 40, path=f"clusters/prod/app-{index:04d}")
            app["metadata"]["name"] = f"odoo-{index:04d}"
            kube.put(app)
        (root / "policies").mkdir()
        (root / "calendars").mkdir()
        (root / "policies" / "fleet.yaml").write_text(PUSH_POLICY)
        settings = Settings(
            DATABASE_URL=f"{PG}?options=-csearch_path%3D{schema}", AUTO_MIGRATE=True,
            POLICIES_DIR=root / "policies", CALENDARS_DIR=root / "calendars", GITHUB_SECRET="bench-secret",  # type: ignore[arg-type]  # noqa: S106
            KUBECONFIG=write_kubeconfig(root / "kubeconfig-push", {"bench": kube.url}, "bench"),  # type: ignore[arg-type]
        )  # fmt: skip
        service = build_service(settings, system_clock, Metrics())
        webhooks = build_webhooks(settings, service)
        results = []
        for run in range(pushes):
            sha = hashlib.sha1(f"push-{run}".encode()).hexdigest()  # noqa: S324 - a commit id
            files = [f"clusters/prod/app-{index:04d}/deployment.yaml" for index in range(targets)]
            payload = {
                "ref": "refs/heads/main", "before": "0" * 40, "after": sha, "deleted": False,
                "repository": {"full_name": "acme/odoo-fleet", "clone_url": repo},
                "pusher": {"name": "dora", "email": "dora@acme.io"}, "sender": {"login": "dora"},
                "commits": [{"id": sha, "author": {"username": "erik", "email": "erik@acme.io"},
                             "added": [], "modified": files, "removed": []}],
            }  # fmt: skip
            body = json.dumps(payload).encode()
            signature = "sha256=" + hmac.new(b"bench-secret", body, hashlib.sha256).hexdigest()
            headers = {"x-github-event": "push", "x-github-delivery": str(uuid.uuid4()), "x-hub-signature-256": signature,
                       "content-type": "application/json"}  # fmt: skip
            started = time.perf_counter()
            answer = webhooks.receive("github", headers, body)
            elapsed = time.perf_counter() - started
            assert answer.status == 200, answer.body
            results.append((elapsed, len(answer.body.get("announced", []))))
        service.store.close()
        return results
    finally:
        kube.stop()
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


DRIFT_POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-fleet-drift}
spec:
  targets: ["argocd:odoo-*"]
  drift: {mode: block}
"""


def _clean(gathered: Any) -> bool:
    """The drift reader ran and found the target as Git says (no error, nothing drifted)."""
    reading = gathered.facts.readings.get("drift")
    outcome = reading.of("odoo-fleet-drift") if reading is not None else None
    return not gathered.facts.gather_errors and outcome is not None and outcome.problem is None and not outcome.drifted


def announce_facts_bench(targets: int, size: int, root: Path, latency: float) -> tuple[float, float, int]:
    """The facts of a push announcing ``targets`` releases with a drift rule, one target after
    another (the baseline) and as the webhook path gathers them (``gather_many``): seconds each,
    and the targets whose drift check ran clean in both."""
    from sqlalchemy import create_engine, text

    from gatekeeper.api.app import build_service
    from gatekeeper.metrics import Metrics
    from gatekeeper.service import system_clock
    from gatekeeper.settings import Settings

    pairs = objects(size)
    bare = root / "fleet.git"
    repo = pygit2.init_repository(str(bare), bare=True)
    files = {f"apps/bulk/part-{start // 50:03d}.yaml": "---\n".join(yaml.safe_dump(d, sort_keys=False) for d, _ in pairs[start : start + 50])
             for start in range(0, size, 50)}  # fmt: skip
    sha = commit(repo, "main", files, "fleet")
    kube = start_fake_kubernetes()
    kube.latency = latency
    schema = f"gk_bench_announce_{uuid.uuid4().hex[:8]}"
    engine = create_engine(PG)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        for _, live in pairs:
            kube.put(live)
        for index in range(targets):  # every Application deploys the same path: one mirror, one tree
            app = argocd_application(bare.resolve().as_uri(), sha, path="apps/bulk")
            app["metadata"]["name"] = f"odoo-{index:04d}"
            kube.put(app)
        (root / "policies").mkdir()
        (root / "calendars").mkdir()
        (root / "policies" / "fleet.yaml").write_text(DRIFT_POLICY)
        settings = Settings(
            DATABASE_URL=f"{PG}?options=-csearch_path%3D{schema}", AUTO_MIGRATE=True, GIT_CACHE_DIR=root / "git-cache",  # type: ignore[arg-type]
            POLICIES_DIR=root / "policies", CALENDARS_DIR=root / "calendars",  # type: ignore[arg-type]
            KUBECONFIG=write_kubeconfig(root / "kubeconfig-announce", {"bench": kube.url}, "bench"),  # type: ignore[arg-type]
        )  # fmt: skip
        service = build_service(settings, system_clock, Metrics())
        requests = [ReleaseRequest(TargetKey(f"argocd:odoo-{index:04d}"), "f" * 40, trigger="github-push-announce") for index in range(targets)]
        now = datetime.now(UTC)
        service.gather(requests[0], now)  # the mirror is cloned once, before either is timed
        started = time.perf_counter()
        one_by_one = [service.gather(request, now) for request in requests]
        serial = time.perf_counter() - started
        started = time.perf_counter()
        together = service.gather_many(requests, now)
        parallel = time.perf_counter() - started
        clean = sum(1 for a, b in zip(one_by_one, together, strict=True) if _clean(a) and _clean(b))
        service.store.close()
        return serial, parallel, clean
    finally:
        kube.stop()
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,800")
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--push-targets", type=int, default=1500)
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--announce-targets", type=int, default=100, help="targets with a drift rule a push announces")
    args = parser.parse_args()
    print(f"{'objects':>8} {'cold ms':>9} {'warm p50 ms':>12} {'warm p95 ms':>12} {'requests/check':>15} {'(kind,ns) pairs':>16} {'drifted':>8}")
    with tempfile.TemporaryDirectory(prefix="gatekeeper-drift-bench-") as folder:
        for size in (int(part) for part in args.sizes.split(",")):
            result = run(size, args.checks, Path(folder))
            assert result["checked"] == size, result
            print(
                f"{result['objects']:>8} {result['cold_ms']:>9.1f} {result['warm_median_ms']:>12.1f} {result['warm_p95_ms']:>12.1f}"
                f" {','.join(map(str, result['requests'])):>15} {result['pairs']:>16} {result['drifted']:>8}"
            )
        print(f"\n{'API server':>10} {'LISTs at once':>14} {'warm p50 ms':>12} {'warm p95 ms':>12}   (200 objects)")
        for latency in (0.0, 0.005):
            for parallel in (1, LIST_PARALLEL):  # one after another: the baseline, what it did before 2026-12-07
                root = Path(folder) / f"latency-{latency}-{parallel}"
                root.mkdir()
                result = run(200, args.checks, root, latency=latency, list_parallel=parallel)
                print(f"{latency * 1000:>8.0f}ms {parallel:>14} {result['warm_median_ms']:>12.1f} {result['warm_p95_ms']:>12.1f}")
        if args.push_targets:
            print(f"\npush announcing {args.push_targets} targets, PostgreSQL, in process (receipt to answer after commit):")
            for index, (elapsed, announced) in enumerate(push_bench(args.push_targets, args.pushes, Path(folder))):
                kind = "first (lists the Applications)" if index == 0 else "next (Applications cached)"
                print(f"  push {index + 1}: {elapsed * 1000:8.1f} ms, {announced} releases announced and decided ({kind})")
        if args.announce_targets:
            size = 50
            print(f"\nfacts of a push announcing {args.announce_targets} targets with a drift rule ({size} objects each):")
            for latency in (0.0, 0.005):
                root = Path(folder) / f"announce-{latency}"
                root.mkdir()
                serial, parallel, clean = announce_facts_bench(args.announce_targets, size, root, latency)
                print(f"  API server {latency * 1000:.0f} ms per request: one after another (baseline) {serial:6.2f} s,"
                      f" as the webhook gathers them {parallel:6.2f} s, ratio {serial / parallel:.2f}x,"
                      f" clean drift checks {clean}/{args.announce_targets}")


if __name__ == "__main__":
    main()
