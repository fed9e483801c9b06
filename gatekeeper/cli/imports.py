"""``gatekeeper import argocd PROJECT.yaml``: policies from another tool's configuration (offline).

Thin: read the file, call ``configuration.argocd``, write the policies, print what could not be
carried over to stderr (one ``FILE:LINE: window N field: message`` line each).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from gatekeeper.cli.common import app, fail, print_json
from gatekeeper.configuration.argocd import ArgoImportError, import_project

import_app = typer.Typer(no_args_is_help=True, help="Import policies from other tools.")
app.add_typer(import_app, name="import")


@import_app.command("argocd")
def import_argocd(
    project: Annotated[Path, typer.Argument(metavar="PROJECT.yaml", help="An Argo CD AppProject manifest.")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the policies here (default: stdout).")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Policy name (default: the AppProject's name; -1, -2... when several).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the policies and the notes as JSON.")] = False,
) -> None:
    """ReleasePolicy documents equivalent to PROJECT.yaml's spec.syncWindows. Exit 0 written, 2 bad input.

    What does not carry over exactly, and where gatekeeper reads a window differently, goes to stderr."""
    try:
        text = project.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{project}: no such file")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{project}: cannot read: {exc}")
    try:
        imported = import_project(text, str(project), name=name, now=datetime.now(UTC))
    except ArgoImportError as exc:
        for note in exc.notes:
            typer.echo(str(note), err=True)
        fail(str(exc))
    rendered = imported.to_yaml()
    for note in imported.notes:
        typer.echo(str(note), err=True)
    if out is not None:
        try:
            out.write_text(rendered, encoding="utf-8")
        except OSError as exc:
            fail(f"{out}: cannot write: {exc}")
    if as_json:
        print_json({
            "project": imported.project,
            "out": str(out) if out is not None else None,
            "policies": list(imported.documents),
            "notes": [note.as_json() for note in imported.notes],
        })
    elif out is None:
        typer.echo(rendered, nl=False)
    else:
        names = ", ".join(document["metadata"]["name"] for document in imported.documents)
        typer.echo(f"wrote {len(imported.documents)} policies ({names}) to {out}; "
                   f"{len(imported.notes)} note(s) on stderr")
