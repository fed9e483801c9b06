"""An Argo CD AppProject's ``spec.syncWindows``, converted to ``ReleasePolicy`` documents.

Owns the translation of Argo CD's sync-window semantics (no matching window allows; if an allow
window matches, one must be active; an active deny wins; selectors OR-ed unless ``andOperator``)
into policies, and the honest list of what could not be carried over (``Note``). It reads no
file and no clock: the CLI passes the text and ``now`` (only used to tell which zones have DST).

Argo CD matches each window to an application; gatekeeper intersects the policies that govern a
target. So windows are grouped by their application selector, one policy per group: a target then
gets exactly the allow windows whose selector matches it, OR-ed, as long as no two groups with
allow windows select the same application (a note says when they may).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import ValidationError

from gatekeeper.calendar_sources import SourceError
from gatekeeper.calendar_sources import cron as cron_source
from gatekeeper.calendar_sources.zones import zone
from gatekeeper.configuration.argocd_syntax import app_globs, may_overlap, parse_go_duration
from gatekeeper.configuration.schema import Metadata, ReleasePolicyDocument
from gatekeeper.configuration.yamldoc import Document, YamlError, load_documents
from gatekeeper.domain.durations import Duration

KNOWN_FIELDS = frozenset(
    {"kind", "schedule", "duration", "timeZone", "applications", "namespaces", "clusters", "manualSync",
     "andOperator", "description", "syncOverrun"}
)


class _Quoted(str):
    """A string written double-quoted (cron expressions, as the shipped policies write them)."""

    __slots__ = ()


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Quoted, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
)


class ArgoImportError(ValueError):
    """The file cannot be imported: not YAML, not an AppProject, or a window Argo CD would reject."""

    def __init__(self, file: str, line: int, message: str, notes: tuple[Note, ...] = ()) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message
        self.notes = notes  # what was noted before it gave up (printed before the error)


@dataclass(frozen=True, slots=True)
class Note:
    """Something not carried over exactly, or read differently by gatekeeper."""

    file: str
    line: int
    window: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"window {self.window} {self.field}" if self.window is not None else self.field
        return f"{self.file}:{self.line}: {where}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "window": self.window, "field": self.field,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class Window:
    """One sync window as gatekeeper will read it."""

    index: int
    kind: str  # allow | deny
    entry: dict[str, str]  # the calendar entry: cron, duration, timeZone, code
    targets: tuple[str, ...]  # target globs, sorted
    manual_sync: bool


@dataclass(frozen=True, slots=True)
class Imported:
    project: str
    documents: tuple[dict[str, Any], ...]
    comments: tuple[tuple[str, ...], ...]  # the comment lines written above each document
    notes: tuple[Note, ...]

    def to_yaml(self) -> str:
        parts = []
        for comments, document in zip(self.comments, self.documents, strict=True):
            header = "".join(f"# {line}\n" if line else "#\n" for line in comments)
            body = yaml.dump(
                document, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=120, allow_unicode=True
            )
            parts.append(header + body)
        return "---\n".join(parts)


@dataclass
class _Reader:
    file: str
    document: Document
    now: datetime
    notes: list[Note] = field(default_factory=list)
    dst_zones: dict[str, int] = field(default_factory=dict)  # zone -> the window whose note explains it

    def line(self, *path: str | int) -> int:
        return self.document.line_of(("spec", "syncWindows", *path))

    def note(self, index: int | None, name: str, message: str) -> None:
        line = self.line(index, name) if index is not None else self.line()
        self.notes.append(Note(self.file, line, index, name, message))

    def error(self, index: int, name: str, message: str) -> ArgoImportError:
        return ArgoImportError(self.file, self.line(index, name), f"spec.syncWindows[{index}].{name}: {message}")


def import_project(text: str, file: str, *, name: str | None = None, now: datetime) -> Imported:
    """The policies equivalent to the AppProject in ``text`` (``file`` names it in messages)."""
    document = _project(text, file)
    metadata = document.data.get("metadata") or {}
    project = str(metadata.get("name") or "argocd-project") if isinstance(metadata, dict) else "argocd-project"
    base = name or project
    try:
        Metadata(name=base)
    except ValidationError:
        line = 1 if name else document.line_of(("metadata", "name"))
        raise ArgoImportError(file, line, f"policy name {base!r} is not a valid metadata.name "
                              "(lower case, digits, '-' and '.'); give one with --name") from None
    reader = _Reader(file, document, now)
    windows = _windows(reader, project)
    reader.note(None, "spec.syncWindows", "Argo CD lets an application that no window selects sync at any time; "
                "gatekeeper defers a target that no policy governs (no_policy) unless GATEKEEPER_UNGOVERNED=approve: "
                "give those applications a policy without a calendar")
    groups = _groups(windows)
    _overlap_notes(reader, groups)
    documents, comments = [], []
    for number, group in enumerate(groups, start=1):
        policy_name = base if len(groups) == 1 else f"{base}-{number}"
        documents.append(_document(policy_name, group))
        comments.append(_comments(project, file, group))
    for document_data in documents:  # what we write must load: a bug here is ours, not the user's
        ReleasePolicyDocument.model_validate(document_data)
    return Imported(project, tuple(documents), tuple(comments), tuple(reader.notes))


def _windows(reader: _Reader, project: str) -> list[Window]:
    spec = reader.document.data.get("spec")
    raw = spec.get("syncWindows") if isinstance(spec, dict) else None
    if raw is not None and not isinstance(raw, list):
        raise ArgoImportError(reader.file, reader.line(), "spec.syncWindows must be a list of windows")
    if not raw:
        raise ArgoImportError(reader.file, reader.document.line_of(("spec", "syncWindows")),
                              f"AppProject {project} has no spec.syncWindows: nothing to import")
    windows = [w for index, item in enumerate(raw) if (w := _window(reader, index, item)) is not None]
    if not windows:
        raise ArgoImportError(reader.file, reader.line(), "no sync window could be carried over (see the notes)",
                              tuple(reader.notes))
    return windows


def _project(text: str, file: str) -> Document:
    try:
        documents = load_documents(text)
    except YamlError as exc:
        raise ArgoImportError(file, exc.line, exc.message) from exc
    projects = [d for d in documents if isinstance(d.data, dict) and d.data.get("kind") == "AppProject"
                and str(d.data.get("apiVersion", "")).startswith("argoproj.io/")]
    if not projects:
        first = documents[0] if documents else None
        got = ""
        if first is not None and isinstance(first.data, dict):
            got = f" (got apiVersion {first.data.get('apiVersion')!r}, kind {first.data.get('kind')!r})"
        expected = "expected apiVersion argoproj.io/v1alpha1, kind AppProject"
        raise ArgoImportError(file, first.line if first else 1, f"not an Argo CD AppProject: {expected}{got}")
    if len(projects) > 1:
        raise ArgoImportError(file, projects[1].line, "more than one AppProject in the file: import one at a time")
    return projects[0]


def _window(reader: _Reader, index: int, item: Any) -> Window | None:
    if not isinstance(item, dict):
        raise ArgoImportError(reader.file, reader.line(index), f"spec.syncWindows[{index}]: a window must be a mapping")
    for unknown in sorted(set(item) - KNOWN_FIELDS, key=str):
        reader.note(index, str(unknown), "unknown sync-window field, not carried over")
    kind = item.get("kind")
    if kind not in ("allow", "deny"):
        raise reader.error(index, "kind", f"expected allow or deny, got {kind!r}")
    schedule = _schedule(reader, index, item.get("schedule"))
    duration = _duration(reader, index, item.get("duration"))
    zone_name = _zone(reader, index, item.get("timeZone"))
    selectors = {key: _patterns(reader, index, key, item.get(key)) for key in ("applications", "namespaces",
                                                                                "clusters")}
    flags = {key: _flag(reader, index, key, item.get(key)) for key in ("manualSync", "andOperator", "syncOverrun")}
    if duration is None:
        return None
    targets = _targets(reader, index, kind, selectors, and_operator=flags["andOperator"])
    if not targets:
        return None
    _time_notes(reader, index, schedule, zone_name)
    if not flags["manualSync"]:
        reader.note(index, "manualSync", "false: Argo CD holds manual syncs to this window too; gatekeeper has no "
                    "per-entry switch, a break-glass approval (release-manager and break-glass, with a reason) "
                    "overrides it")
    if flags["syncOverrun"]:
        reader.note(index, "syncOverrun", "not carried over: gatekeeper has no per-entry setting; it answers the "
                    "PreSync gate and stops no sync that has begun")
    code = _code(item.get("description"), kind, index)
    entry = {"cron": _Quoted(schedule), "duration": str(duration), "timeZone": zone_name, "code": code}
    return Window(index, kind, entry, targets, flags["manualSync"])


def _schedule(reader: _Reader, index: int, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise reader.error(index, "schedule", f"expected a cron expression such as \"0 22 * * *\", got {value!r}")
    text = " ".join(value.split())
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise reader.error(index, "schedule", f"{value!r}: a TZ= prefix is not supported; use timeZone")
    fields = text.split(" ")
    if len(fields) == 5:  # robfig/cron's '?' is '*' for the day fields
        fields[2], fields[4] = ("*" if f == "?" else f for f in (fields[2], fields[4]))
        text = " ".join(fields)
    try:
        cron_source.validate(text)
    except SourceError as exc:
        raise reader.error(index, "schedule", exc.message) from None
    return text


def _duration(reader: _Reader, index: int, value: Any) -> Duration | None:
    if not isinstance(value, str):
        raise reader.error(index, "duration", f"expected a duration such as 1h or 2h30m, got {value!r}")
    try:
        seconds = parse_go_duration(value)
    except ValueError as exc:
        raise reader.error(index, "duration", str(exc)) from None
    if seconds <= 0:
        reader.note(index, "duration", f"{value!r} is not positive: the window is never active in Argo CD; skipped")
        return None
    whole = -(-seconds.numerator // seconds.denominator)  # ceiling: never shorter than Argo CD's window
    if whole != seconds:
        reader.note(index, "duration", f"{value!r} rounded up to {whole}s (gatekeeper durations are whole seconds)")
    return Duration(seconds=int(whole))  # exact elapsed time, as Go's: 24h is not "1d"


def _zone(reader: _Reader, index: int, value: Any) -> str:
    if value is None or value == "":
        return "UTC"  # Argo CD's default
    if not isinstance(value, str):
        raise reader.error(index, "timeZone", f"expected an IANA name such as Europe/Berlin, got {value!r}")
    try:
        zone(value)
    except SourceError as exc:
        raise reader.error(index, "timeZone", exc.message) from None
    return value


def _patterns(reader: _Reader, index: int, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise reader.error(index, key, f"expected a list of names or globs, got {value!r}")
    return tuple(value)


def _flag(reader: _Reader, index: int, key: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise reader.error(index, key, f"expected true or false, got {value!r}")
    return value


def _targets(
    reader: _Reader, index: int, kind: str, selectors: dict[str, tuple[str, ...]], *, and_operator: bool
) -> tuple[str, ...]:
    """``argocd:<app>`` globs for the window, with a note for each selector that does not carry over."""
    applications = selectors["applications"]
    others = [key for key in ("namespaces", "clusters") if selectors[key]]
    effect = ("gatekeeper stays open where Argo CD denies" if kind == "deny"
              else "those applications lose this allow window")
    if not applications:
        reason = ("has no applications, namespaces or clusters" if not others else
                  f"selects applications by {' and '.join(others)} only; gatekeeper targets are argocd:<application> "
                  f"keys, so it cannot be carried over ({effect}; add their keys to a policy by hand)")
        reader.note(index, others[0] if others else "applications", f"window skipped: it {reason}")
        return ()
    for key in others:
        values = ", ".join(selectors[key])
        if and_operator:
            reader.note(index, key, f"[{values}] with andOperator: gatekeeper cannot narrow a target by destination "
                        f"{key[:-1]}, so the window applies to every application its applications select (broader "
                        f"than Argo CD)")
        else:
            reader.note(index, key, f"[{values}]: applications selected only through their destination {key[:-1]} "
                        f"are not covered ({effect}); gatekeeper targets are argocd:<application> keys: list them "
                        "in applications")
    globs: set[str] = set()
    for pattern in applications:
        expanded, exact = app_globs(pattern)
        if not exact:
            reader.note(index, "applications", f"{pattern!r} uses glob syntax fnmatch does not have; carried over as "
                        f"{', '.join(expanded)}")
        globs.update(f"argocd:{glob}" for glob in expanded)
    return tuple(sorted(globs))


def _time_notes(reader: _Reader, index: int, schedule: str, zone_name: str) -> None:
    day_of_month, day_of_week = schedule.split(" ")[2], schedule.split(" ")[4]
    if any(f.startswith("*") and f != "*" for f in (day_of_month, day_of_week)) and "*" not in (
        day_of_month, day_of_week
    ):
        reader.note(index, "schedule", f"{schedule!r}: Argo CD (robfig/cron) reads a day field starting with '*' as "
                    "unrestricted, so both day fields must match; gatekeeper (Vixie cron) fires when either matches")
    tz = zone(zone_name)
    year = reader.now.year
    winter, summer = (datetime(year, month, 15, tzinfo=UTC).astimezone(tz).utcoffset() for month in (1, 7))
    if winter == summer:
        return
    if zone_name in reader.dst_zones:
        reader.note(index, "timeZone", f"{zone_name}: read with the offset at each start, not the one in force when "
                    f"Argo CD evaluates (see window {reader.dst_zones[zone_name]})")
    else:
        reader.dst_zones[zone_name] = index
        reader.note(index, "timeZone", f"{zone_name} changes its UTC offset: Argo CD reads the schedule with the "
                    "offset in force at the moment it evaluates (the wall clock), gatekeeper with the offset at "
                    "each start (RFC 5545): a window that spans a DST change keeps its exact duration here (Argo "
                    "CD: an hour shorter or longer), and one that starts in the skipped hour starts an hour later "
                    "on the wall clock, 02:30 -> 03:30 (Argo CD: cut short, or not at all that day)")


def _code(description: Any, kind: str, index: int) -> str:
    if isinstance(description, str):
        slug = re.sub(r"[^a-z0-9]+", "_", description.lower()).strip("_")
        if re.fullmatch(r"[a-z][a-z0-9_]{0,63}", slug):
            return slug
    return f"{kind}_window_{index}"


def _groups(windows: list[Window]) -> list[list[Window]]:
    by_targets: dict[tuple[str, ...], list[Window]] = {}
    for window in windows:
        by_targets.setdefault(window.targets, []).append(window)
    return list(by_targets.values())


def _overlap_notes(reader: _Reader, groups: list[list[Window]]) -> None:
    allowing = [group for group in groups if any(w.kind == "allow" for w in group)]
    for later, group in enumerate(allowing):
        for earlier in allowing[:later]:
            pairs = [(a, b) for a in earlier[0].targets for b in group[0].targets if may_overlap(a, b)]
            if pairs:
                first = next(w.index for w in group if w.kind == "allow")
                other = next(w.index for w in earlier if w.kind == "allow")
                reader.note(first, "applications", f"{pairs[0][1]} and window {other}'s {pairs[0][0]} may select "
                            "the same application: Argo CD opens it when either allow window is active, gatekeeper "
                            "only when both policies are open (stricter)")


def _document(name: str, group: list[Window]) -> dict[str, Any]:
    zones = Counter(w.entry["timeZone"] for w in group)
    calendar = {kind: [w.entry for w in group if w.kind == kind] for kind in ("deny", "allow")}
    return {
        "apiVersion": "gatekeeper/v1",
        "kind": "ReleasePolicy",
        "metadata": {"name": name},
        "spec": {
            "targets": list(group[0].targets),
            "timezone": zones.most_common(1)[0][0],
            "calendar": {kind: entries for kind, entries in calendar.items() if entries},
        },
    }


def _comments(project: str, file: str, group: list[Window]) -> tuple[str, ...]:
    lines = [f"Imported from Argo CD AppProject {project} ({file}) by `gatekeeper import argocd`."]
    for window in group:
        entry = window.entry
        lines.append(f"window {window.index}: {window.kind} {entry['cron']!r} for {entry['duration']} in "
                     f"{entry['timeZone']} (code {entry['code']})")
        if window.manual_sync:
            lines.append("  manualSync: true -> a break-glass approval (roles release-manager and break-glass, "
                         "with a reason, audited) lets a release through it")
    return (*lines, "Deny beats allow; with allow entries the gate is open only inside one of them (DESIGN §3).")

