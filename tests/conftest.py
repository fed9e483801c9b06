"""Shared fixtures: fixed instants, and policy/calendar directories written per test."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent

# Property tests check answers, not speed: the suite runs on two processes of a shared two-core
# machine, where one example may take longer than hypothesis' default 200 ms deadline.
settings.register_profile("gatekeeper", deadline=None)
settings.load_profile("gatekeeper")


@pytest.fixture
def config_dirs(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """Write policy YAML and .ics files into fresh directories; returns (policies, calendars)."""

    def write(policies: dict[str, str], calendars: dict[str, str] | None = None) -> tuple[Path, Path]:
        policy_dir, calendar_dir = tmp_path / "policies", tmp_path / "calendars"
        policy_dir.mkdir(exist_ok=True)
        calendar_dir.mkdir(exist_ok=True)
        for name, text in policies.items():
            (policy_dir / name).write_text(textwrap.dedent(text))
        for name, text in (calendars or {}).items():
            (calendar_dir / name).write_text(textwrap.dedent(text))
        return policy_dir, calendar_dir

    return write
