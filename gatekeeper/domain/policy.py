"""Release policies as frozen domain values (the YAML schema lives in ``configuration``).

A policy names the targets it governs (``fnmatchcase`` globs, ``*`` also matches ``/``), its
calendar entries and the rules later checks read (drift, provenance, approvals, verification).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from functools import lru_cache

from gatekeeper.domain.durations import Duration

DEFAULT_CODES = {
    "holidays": "public_holiday",
    "businessDays": "business_days",
    "cron": "cron_window",
    "adhoc": "adhoc_freeze",
}


class Mode(StrEnum):
    ENFORCE = "enforce"
    OBSERVE = "observe"


class DriftMode(StrEnum):
    BLOCK = "block"
    WARN = "warn"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class HolidaySpec:
    country: str
    subdivision: str | None = None

    def __str__(self) -> str:
        return f"{self.country}-{self.subdivision}" if self.subdivision else self.country


@dataclass(frozen=True, slots=True)
class IcsEntry:
    """Events of an ``.ics`` file (path relative to the calendars directory)."""

    path: str
    code: str

    def describe(self) -> str:
        return f"calendar {self.path}"


@dataclass(frozen=True, slots=True)
class HolidaysEntry:
    """Public holidays of a country (and subdivision), as whole local days."""

    holidays: HolidaySpec
    code: str

    def describe(self) -> str:
        return f"public holidays {self.holidays}"


@dataclass(frozen=True, slots=True)
class BusinessDaysEntry:
    """The first or last N business days of every month, as whole local days."""

    first: int | None
    last: int | None
    holidays: HolidaySpec | None
    code: str

    def describe(self) -> str:
        which = f"first {self.first}" if self.first else f"last {self.last}"
        return f"{which} business days of the month"


@dataclass(frozen=True, slots=True)
class CronEntry:
    """Argo CD sync-window style: a window of ``duration`` from each cron match in ``timezone``."""

    cron: str
    duration: Duration
    timezone: str
    code: str

    def describe(self) -> str:
        return f"cron '{self.cron}' for {self.duration} ({self.timezone})"


# A published calendar left unrefreshed this long closes the gate (DESIGN §3, ``maxAge``).
DEFAULT_FEED_MAX_AGE = Duration(days=1)


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """Events of a published iCalendar URL (``ics: https://...`` or ``webcal://``), fetched in the
    background and cached on disk; older than ``max_age`` (elapsed time) it closes the gate with
    ``calendar_stale``."""

    url: str
    code: str
    max_age: Duration = DEFAULT_FEED_MAX_AGE

    def describe(self) -> str:
        return f"calendar feed {feed_display(self.url)}"

    @property
    def max_age_seconds(self) -> int:
        return self.max_age.days * 86_400 + self.max_age.seconds


def feed_display(url: str) -> str:
    """A feed's URL as shown where anyone may read it (reasons, /readyz, /metrics): published
    calendar URLs carry their secret in the path (Outlook's key, Google's ``private-...``,
    Nextcloud's share token as the last segment), so only the scheme, the host and a last segment
    that is a file name (``calendar.ics``) are shown, with a short digest to tell feeds apart."""
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    host = host.rpartition("@")[2]
    path = path.split("?", 1)[0].split("#", 1)[0]
    segments = [segment for segment in path.split("/") if segment]
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    name = segments[-1] if segments and segments[-1].lower().endswith(".ics") else ""
    return f"{scheme}://{host}/…/{name} [{digest}]" if name else f"{scheme}://{host}/… [{digest}]"


CalendarEntry = IcsEntry | FeedEntry | HolidaysEntry | BusinessDaysEntry | CronEntry


@dataclass(frozen=True, slots=True)
class CalendarRules:
    deny: tuple[CalendarEntry, ...] = ()
    allow: tuple[CalendarEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Source:
    repo: str | None = None
    path: str | None = None
    cluster: str | None = None


@dataclass(frozen=True, slots=True)
class IgnoreRule:
    """``drift.ignore``: JSON pointers left out of the drift comparison for objects of ``kind``
    (and, where given, of that ``name`` and ``namespace``), as Argo CD's ``ignoreDifferences``."""

    kind: str
    json_pointers: tuple[str, ...]
    name: str | None = None
    namespace: str | None = None

    def applies(self, kind: str, namespace: str | None, name: str) -> bool:
        return (
            self.kind == kind
            and (self.name is None or self.name == name)
            and (self.namespace is None or self.namespace == namespace)
        )


@dataclass(frozen=True, slots=True)
class SignerIdentity:
    """A keyless signer the policy trusts: the OIDC issuer (exact), the certificate's subject (its
    SAN: an email or URI; ``subject`` a glob) and, where given, the repository the workflow ran
    for (Fulcio's Source Repository URI; ``repository`` a glob: a reusable workflow's subject is
    its own path, whoever calls it)."""

    issuer: str
    subject: str
    repository: str | None = None

    def __str__(self) -> str:
        where = f", repository {self.repository}" if self.repository else ""
        return f"{self.subject} (issuer {self.issuer}{where})"


@dataclass(frozen=True, slots=True)
class ProvenanceRules:
    require_digest: bool = False
    allowed_registries: tuple[str, ...] = ()
    signature_keys: tuple[str, ...] = ()
    signature_identities: tuple[SignerIdentity, ...] = ()
    slsa_builders: tuple[str, ...] = ()
    slsa_source_repos: tuple[str, ...] = ()
    break_glass: bool = False


@dataclass(frozen=True, slots=True)
class ApprovalRules:
    required: int = 0
    role: str = "release-manager"
    four_eyes: bool = False


@dataclass(frozen=True, slots=True)
class VerificationRules:
    period: Duration | None = None
    rollback_on_unhealthy: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    targets: tuple[str, ...]
    mode: Mode = Mode.ENFORCE
    paths: tuple[str, ...] = ()
    source: Source = Source()
    timezone: str = "UTC"
    calendar: CalendarRules = CalendarRules()
    drift: DriftMode = DriftMode.OFF
    drift_ignore: tuple[IgnoreRule, ...] = ()
    provenance: ProvenanceRules = ProvenanceRules()
    approvals: ApprovalRules = ApprovalRules()
    verification: VerificationRules = VerificationRules()
    file: str = ""
    line: int = 0

    def governs(self, target: str) -> bool:
        return _matches(self.targets, target)

    def touches(self, paths: tuple[str, ...]) -> bool:
        """Whether a change of ``paths`` concerns this policy (no ``paths`` rule: any change)."""
        if not self.paths:
            return True
        return any(fnmatchcase(path, pattern) for path in paths for pattern in self.paths)


@lru_cache(maxsize=8192)
def _matches(patterns: tuple[str, ...], target: str) -> bool:
    """Whether ``target`` matches any glob (memoised: the same targets are asked again and again)."""
    return any(fnmatchcase(target, pattern) for pattern in patterns)
