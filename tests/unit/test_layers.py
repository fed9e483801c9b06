"""The import-linter contracts check something: each injected bad import breaks ``lint-imports``.

A copy of the package gets one import it must not have; ``lint-imports`` runs on the copy with
this project's contracts and must fail naming the broken contract (a contract that no bad import
can break checks nothing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_copy(tmp_path: Path, module: str | None = None, line: str = "") -> subprocess.CompletedProcess[str]:
    shutil.copytree(ROOT / "gatekeeper", tmp_path / "gatekeeper", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if module is not None:
        path = tmp_path / "gatekeeper" / module
        path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
    )


INJECTED = [
    pytest.param("domain/policy.py", "import gatekeeper.store.sql", "Layers", id="domain-imports-store"),
    pytest.param("store/sql.py", "import gatekeeper.api.app", "Layers", id="store-imports-api"),
    pytest.param(
        "receivers/github.py",
        "import gatekeeper.receivers.gitlab",
        "Receivers do not import each other",
        id="receiver-imports-receiver",
    ),
    pytest.param("service.py", "import httpx", "httpx only in notifiers", id="httpx-in-the-service"),
    pytest.param("store/actions.py", "import httpx", "httpx only in notifiers", id="httpx-in-the-store"),
    pytest.param(
        "calendar_sources/ics.py",
        "import gatekeeper.calendar_sources.cron",
        "Calendar sources do not",
        id="calendar-source-imports-another",
    ),
    pytest.param("readers/git.py", "import gatekeeper.readers.kubernetes", "Readers do not", id="reader-imports-reader"),
    pytest.param("readers/kubernetes.py", "import pygit2", "pygit2 only in readers.git", id="pygit2-in-the-cluster-reader"),
    pytest.param("drift.py", "import kubernetes", "pygit2, kubernetes and cryptography only", id="kubernetes-in-drift"),
    pytest.param("feeds.py", "import httpx", "httpx only in notifiers", id="httpx-in-the-feed-book"),
    pytest.param(
        "readers/calendar_feeds.py", "import gatekeeper.service", "Layers", id="reader-imports-service"
    ),
    pytest.param(
        "readers/calendar_feeds.py",
        "import gatekeeper.calendar_sources.ics",
        "Adapter families",
        id="reader-imports-calendar-source",
    ),
]


@pytest.fixture(scope="module")
def linted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every copy linted at once (each run is a few seconds of its own; in parallel they share the
    cores): the package as it is under "as-is", each injected import under its id."""
    cases = {"as-is": (None, "")} | {case.id: tuple(case.values[:2]) for case in INJECTED}  # type: ignore[misc]
    with ThreadPoolExecutor(len(cases)) as pool:
        runs = {
            name: pool.submit(lint_copy, tmp_path_factory.mktemp(name), module, line)  # type: ignore[arg-type]
            for name, (module, line) in cases.items()
        }
        return {name: run.result() for name, run in runs.items()}


def test_the_package_as_it_is_keeps_every_contract(linted: dict[str, subprocess.CompletedProcess[str]]) -> None:
    result = linted["as-is"]
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), INJECTED)
def test_a_bad_import_breaks_lint_imports(
    linted: dict[str, subprocess.CompletedProcess[str]],
    request: pytest.FixtureRequest,
    module: str,
    line: str,
    contract: str,
) -> None:
    result = linted[request.node.callspec.id]
    assert result.returncode != 0, result.stdout[-3000:]
    broken = result.stdout[result.stdout.index("Broken contracts") :]
    assert contract in broken, broken
