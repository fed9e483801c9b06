"""Loads a policies directory and a calendars directory into one immutable Configuration.

A set of files loads whole or not at all: every problem is collected as a ``LoadError`` naming
the file (as found under the directory given) and the 1-based line, and nothing partial is
returned. The service keeps its last good Configuration when a new set fails (fail closed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from gatekeeper.calendar import Calendars, CompileError
from gatekeeper.calendar_sources import SourceError, public_holidays
from gatekeeper.calendar_sources.ics import IcsCalendar
from gatekeeper.configuration.schema import ReleasePolicyDocument
from gatekeeper.configuration.yamldoc import Document, YamlError, load_documents
from gatekeeper.domain.policy import BusinessDaysEntry, FeedEntry, HolidaysEntry, IcsEntry, Policy

POLICY_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True, order=True)
class LoadError:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"

    def as_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "message": self.message}


class ConfigurationError(Exception):
    """The files did not load; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[LoadError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = tuple(errors)


@dataclass(frozen=True, slots=True)
class Configuration:
    """Policies, their compiled calendars and the hash of the files they came from."""

    policies: tuple[Policy, ...]
    calendars: Calendars = field(compare=False)
    policy_hash: str
    files: tuple[str, ...]
    # Rules the files set that this version reads and validates but does not enforce yet.
    notices: tuple[LoadError, ...] = ()

    def governing(self, target: str) -> list[Policy]:
        return [policy for policy in self.policies if policy.governs(target)]

    @property
    def feeds(self) -> tuple[FeedEntry, ...]:
        """The published calendars the policies name (each URL once, the shortest maxAge)."""
        return feed_entries(self.policies)


def feed_entries(policies: Sequence[Policy]) -> tuple[FeedEntry, ...]:
    found: dict[str, FeedEntry] = {}
    for policy in policies:
        for entry in (*policy.calendar.deny, *policy.calendar.allow):
            if isinstance(entry, FeedEntry):
                kept = found.get(entry.url)
                if kept is None or entry.max_age_seconds < kept.max_age_seconds:
                    found[entry.url] = entry
    return tuple(found[url] for url in sorted(found))


def load_configuration(
    policies_dir: Path | str,
    calendars_dir: Path | str,
    *,
    now: datetime | None = None,
    feeds: Mapping[str, IcsCalendar] | None = None,
) -> Configuration:
    """Load and validate every file; ConfigurationError lists all problems.

    With ``now`` the calendars are also compiled for the horizon around it, so an entry that
    cannot be expanded is a load error, never a surprise mid-request. ``feeds`` are the last good
    copies of the published calendars (by URL), already validated when they were fetched; a feed
    the policies name without a copy compiles to nothing and is stale (facts.py closes the gate).
    """
    policies_root, calendars_root = Path(policies_dir), Path(calendars_dir)
    errors: list[LoadError] = []
    digest = hashlib.sha256()
    ics, ics_files = _load_calendars(calendars_root, errors, digest)
    policies, policy_files = _load_policies(policies_root, errors, digest)
    found = {path.relative_to(calendars_root).as_posix() for path in _files(calendars_root, (".ics",))}
    for policy, document in policies:
        _check_references(policy, document, found, calendars_root, errors)
    _check_unique_names(policies, errors)
    if errors:
        raise ConfigurationError(sorted(errors, key=lambda e: (e.file, e.line or 0, e.message)))
    domain_policies = tuple(policy for policy, _ in policies)
    for entry in feed_entries(domain_policies):  # the hash covers the copies decided on
        copy = (feeds or {}).get(entry.url)
        digest.update(f"feed {entry.url}\n{copy.digest if copy else 'none'}\n".encode())
        if copy is not None:
            ics[entry.url] = copy
    calendars = Calendars(domain_policies, ics)
    if now is not None:
        try:
            calendars.warm(now)
        except CompileError as exc:
            raise ConfigurationError([_compile_error(exc, policies, ics_files)]) from exc
    notices = tuple(notice for policy, document in policies for notice in _not_enforced(policy, document))
    return Configuration(domain_policies, calendars, digest.hexdigest(), tuple(policy_files + ics_files), notices)


def lint(policies_dir: Path | str, calendars_dir: Path | str, *, now: datetime) -> list[LoadError]:
    """Every problem in the files (empty when they load and compile)."""
    return lint_report(policies_dir, calendars_dir, now=now)[0]


def lint_report(
    policies_dir: Path | str, calendars_dir: Path | str, *, now: datetime
) -> tuple[list[LoadError], list[LoadError]]:
    """The problems in the files, and (when they load) the rules they set that are not enforced."""
    try:
        configuration = load_configuration(policies_dir, calendars_dir, now=now)
    except ConfigurationError as exc:
        return list(exc.errors), []
    return [], list(configuration.notices)


def _not_enforced(policy: Policy, document: Document) -> list[LoadError]:
    """The rules a policy sets that are read and validated but not acted on by this version
    (README, "Still to come"), said at every load so that nobody takes a policy file's word for a
    check that does not run. None at present: verification (``verified`` after the period, rollback
    on unhealthy) is acted on since the deferrals loop verifies applied releases."""
    del policy, document
    return []


def _display(root: Path, path: Path) -> str:
    return str(root / path.relative_to(root))


def _files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(path for path in root.rglob("*") if path.is_file() and path.suffix in suffixes)


def _load_calendars(
    root: Path, errors: list[LoadError], digest: hashlib._Hash
) -> tuple[dict[str, IcsCalendar], list[str]]:
    calendars: dict[str, IcsCalendar] = {}
    shown: list[str] = []
    for path in _files(root, (".ics",)):
        name = _display(root, path)
        data = path.read_bytes()
        relative = path.relative_to(root).as_posix()
        digest.update(f"calendar {relative}\n".encode() + data)
        shown.append(name)
        try:
            calendars[relative] = IcsCalendar.parse(data, name)
        except SourceError as exc:
            errors.append(LoadError(name, exc.line, exc.message))
    return calendars, shown


def _load_policies(
    root: Path, errors: list[LoadError], digest: hashlib._Hash
) -> tuple[list[tuple[Policy, Document]], list[str]]:
    if not root.is_dir():
        errors.append(LoadError(str(root), None, "policies directory does not exist"))
        return [], []
    loaded: list[tuple[Policy, Document]] = []
    shown: list[str] = []
    for path in _files(root, POLICY_SUFFIXES):
        name = _display(root, path)
        shown.append(name)
        raw = path.read_bytes()
        digest.update(f"policy {path.relative_to(root).as_posix()}\n".encode() + raw)
        try:
            documents = load_documents(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            errors.append(LoadError(name, raw.count(b"\n", 0, exc.start) + 1, "not UTF-8 text"))
            continue
        except YamlError as exc:
            errors.append(LoadError(name, exc.line, exc.message))
            continue
        for document in documents:
            policy = _policy(document, name, errors)
            if policy is not None:
                loaded.append((policy, document))
    return loaded, shown


def _policy(document: Document, name: str, errors: list[LoadError]) -> Policy | None:
    try:
        parsed = ReleasePolicyDocument.model_validate(document.data)
    except ValidationError as exc:
        for error in exc.errors():
            location = [step for step in error["loc"] if isinstance(step, str | int)]
            field_path = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in location)
            field_path = field_path.removeprefix(".") or "document"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field (not in the ReleasePolicy schema)"
            elif error["type"] == "missing":
                message = "required field is missing"
            errors.append(LoadError(name, document.line_of(location), f"{field_path}: {message}"))
        return None
    return parsed.to_domain(name, document.line)


def _check_references(
    policy: Policy, document: Document, found: set[str], calendars_root: Path, errors: list[LoadError]
) -> None:
    """Each ``ics`` entry names an ``.ics`` file found under the calendars directory (a broken one
    is reported on its own); each holiday country and subdivision is known."""
    for kind in ("deny", "allow"):
        for position, entry in enumerate(getattr(policy.calendar, kind)):
            line = document.line_of(["spec", "calendar", kind, position])
            if isinstance(entry, IcsEntry) and entry.path not in found:
                path = calendars_root / entry.path
                problem = "is not an .ics file under the calendars directory" if path.exists() else "does not exist"
                field = f"spec.calendar.{kind}[{position}].ics"
                errors.append(LoadError(policy.file, line, f"{field}: calendar file {path} {problem}"))
            holidays = entry.holidays if isinstance(entry, HolidaysEntry | BusinessDaysEntry) else None
            if holidays is not None:
                try:
                    public_holidays.validate(holidays)
                except SourceError as exc:
                    errors.append(LoadError(policy.file, line, f"spec.calendar.{kind}[{position}]: {exc.message}"))


def _check_unique_names(policies: list[tuple[Policy, Document]], errors: list[LoadError]) -> None:
    seen: dict[str, str] = {}
    for policy, document in policies:
        where = f"{policy.file}:{document.line_of(['metadata', 'name'])}"
        first = seen.setdefault(policy.name, where)
        if first != where:
            line = document.line_of(["metadata", "name"])
            message = f"metadata.name: policy {policy.name!r} is already defined at {first}"
            errors.append(LoadError(policy.file, line, message))


def _compile_error(exc: CompileError, policies: list[tuple[Policy, Document]], ics_files: list[str]) -> LoadError:
    entry = exc.entry
    if isinstance(entry, FeedEntry):
        return LoadError(entry.url, exc.error.line, exc.error.message)
    if isinstance(entry, IcsEntry):
        shown = next((name for name in ics_files if name.endswith(entry.path)), entry.path)
        return LoadError(shown, exc.error.line, exc.error.message)
    return LoadError(exc.policy.file, exc.policy.line, str(exc))
