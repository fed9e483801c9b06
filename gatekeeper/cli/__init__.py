"""The ``gatekeeper`` command line (DESIGN §5).

Commands are thin: parse, call the configuration or the service, render. ``--json`` prints
exactly the HTTP shapes. Exit codes live in ``common``. Offline commands (files only) are in
``offline``; commands that talk to or run the server are in ``server``;
``import argocd`` is in ``imports``.
"""

from __future__ import annotations

from gatekeeper.cli import calendars as calendars
from gatekeeper.cli import freezes as freezes
from gatekeeper.cli import imports as imports
from gatekeeper.cli import offline as offline
from gatekeeper.cli import people as people
from gatekeeper.cli import server as server
from gatekeeper.cli.common import app


def main() -> None:
    """Console entry point."""
    app(prog_name="gatekeeper")
