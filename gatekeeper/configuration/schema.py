"""The ``ReleasePolicy`` file schema (DESIGN §6), validated with pydantic, converted to domain values.

Field names are the contract: add fields, never rename. Unknown fields are rejected.
"""

from __future__ import annotations

import posixpath
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from gatekeeper.calendar_sources import SourceError
from gatekeeper.calendar_sources import cron as cron_source
from gatekeeper.calendar_sources.zones import zone
from gatekeeper.domain import policy as domain
from gatekeeper.domain.durations import Duration, InvalidDurationError

_CODE = re.compile(r"[a-z][a-z0-9_]*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _check_zone(name: str) -> str:
    try:
        zone(name)
    except SourceError as exc:
        raise ValueError(exc.message) from None
    return name


def _check_duration(text: str) -> str:
    try:
        Duration.parse(text)
    except InvalidDurationError as exc:
        raise ValueError(str(exc)) from None
    return text


class Metadata(_Strict):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class HolidaysSpec(_Strict):
    country: str = Field(min_length=2, max_length=3)
    subdivision: str | None = None

    def to_domain(self) -> domain.HolidaySpec:
        return domain.HolidaySpec(self.country, self.subdivision)


class BusinessDaysSpec(_Strict):
    first: PositiveInt | None = None
    last: PositiveInt | None = None
    holidays: HolidaysSpec | None = None

    @model_validator(mode="after")
    def _one_end(self) -> BusinessDaysSpec:
        if (self.first is None) == (self.last is None):
            raise ValueError("businessDays needs exactly one of first or last")
        return self


FEED_SCHEMES = ("https://", "http://", "webcal://")


def feed_url(text: str) -> str | None:
    """The URL to fetch for an ``ics`` value that names a published calendar (``webcal://`` is
    read as ``https://``, as calendar clients do); None for a file path."""
    lowered = text.lower()
    if lowered.startswith("webcal://"):
        return "https://" + text[len("webcal://") :]
    if lowered.startswith(("https://", "http://")):
        return text
    return None


class CalendarEntry(_Strict):
    """One entry: exactly one of ``ics``, ``holidays``, ``businessDays`` or ``cron``.

    ``ics`` is a file under the calendars directory or a published calendar's URL
    (``https://``, ``webcal://``); a URL entry may set ``maxAge`` (default ``24h``)."""

    ics: str | None = None
    maxAge: str | None = None
    holidays: HolidaysSpec | None = None
    businessDays: BusinessDaysSpec | None = None
    cron: str | None = None
    duration: str | None = None
    timeZone: str | None = None
    code: str | None = None

    @field_validator("code")
    @classmethod
    def _snake_case(cls, value: str | None) -> str | None:
        if value is not None and not _CODE.fullmatch(value):
            raise ValueError(f"code {value!r} must be snake_case (e.g. month_end_close)")
        return value

    @field_validator("duration", "maxAge")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return None if value is None else _check_duration(value)

    @field_validator("ics")
    @classmethod
    def _feed(cls, value: str | None) -> str | None:
        url = None if value is None else feed_url(value)
        if url is not None and not re.fullmatch(r"https?://[^/\s?#]+(?:[/?#]\S*)?", url):
            raise ValueError(f"ics {value!r} is not a URL with a host (e.g. https://host/calendar.ics)")
        return value

    @field_validator("timeZone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                cron_source.validate(value)
            except SourceError as exc:
                raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> CalendarEntry:
        kinds = [k for k in ("ics", "holidays", "businessDays", "cron") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "a calendar entry needs exactly one of ics, holidays, businessDays or cron"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        if self.cron is None and (self.duration or self.timeZone):
            raise ValueError("duration and timeZone belong to cron entries only")
        if self.maxAge is not None and (self.ics is None or feed_url(self.ics) is None):
            raise ValueError("maxAge belongs to ics entries that name a URL (https:// or webcal://)")
        if self.cron is not None and self.duration is None:
            raise ValueError("a cron entry needs a duration (e.g. 2h)")
        return self

    def to_domain(self, policy_zone: str) -> domain.CalendarEntry:
        if self.ics is not None and (url := feed_url(self.ics)) is not None:
            stem = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].removesuffix(".ics") or "calendar"
            max_age = Duration.parse(self.maxAge) if self.maxAge else domain.DEFAULT_FEED_MAX_AGE
            return domain.FeedEntry(url, self.code or stem, max_age)
        if self.ics is not None:
            path = posixpath.normpath(self.ics)
            stem = path.rsplit("/", 1)[-1].removesuffix(".ics")
            return domain.IcsEntry(path, self.code or stem)
        if self.holidays is not None:
            return domain.HolidaysEntry(self.holidays.to_domain(), self.code or "public_holiday")
        if self.businessDays is not None:
            spec = self.businessDays
            holidays = spec.holidays.to_domain() if spec.holidays else None
            return domain.BusinessDaysEntry(spec.first, spec.last, holidays, self.code or "business_days")
        assert self.cron is not None and self.duration is not None  # noqa: S101 - validated
        return domain.CronEntry(
            self.cron, Duration.parse(self.duration), self.timeZone or policy_zone, self.code or "cron_window"
        )


class CalendarSpec(_Strict):
    deny: list[CalendarEntry] = []
    allow: list[CalendarEntry] = []


class SourceSpec(_Strict):
    repo: str | None = None
    path: str | None = None
    cluster: str | None = None


class DriftIgnoreSpec(_Strict):
    """One ``drift.ignore`` entry: JSON pointers (RFC 6901) of ``kind`` objects left out."""

    kind: str = Field(min_length=1)
    name: str | None = None
    namespace: str | None = None
    jsonPointers: list[str] = Field(min_length=1)

    @field_validator("jsonPointers")
    @classmethod
    def _pointers(cls, values: list[str]) -> list[str]:
        for value in values:
            if not value.startswith("/"):
                raise ValueError(f"JSON pointer {value!r} must start with / (e.g. /spec/replicas)")
        return values

    def to_domain(self) -> domain.IgnoreRule:
        return domain.IgnoreRule(self.kind, tuple(self.jsonPointers), self.name, self.namespace)


class DriftSpec(_Strict):
    mode: Literal["block", "warn", "off"] = "off"
    ignore: list[DriftIgnoreSpec] = []


class IdentitySpec(_Strict):
    issuer: str = Field(min_length=1)  # the OIDC issuer, exact (https://token.actions.githubusercontent.com)
    subject: str = Field(min_length=1)  # the certificate's SAN, a glob (https://github.com/acme/*)
    # Fulcio's Source Repository URI (https://github.com/acme/odoo), a glob; optional
    repository: str | None = Field(None, min_length=1)


class SignaturesSpec(_Strict):
    keys: list[str] = []
    identities: list[IdentitySpec] = []

    @model_validator(mode="after")
    def _some_trust(self) -> SignaturesSpec:
        if not self.keys and not self.identities:
            raise ValueError("signatures needs keys (PEM files) or identities ({issuer, subject}), or both")
        return self


class SlsaSpec(_Strict):
    builders: list[str] = Field(min_length=1)
    sourceRepos: list[str] = []


class ProvenanceSpec(_Strict):
    requireDigest: bool = False
    allowedRegistries: list[str] = []
    signatures: SignaturesSpec | None = None
    slsa: SlsaSpec | None = None
    breakGlass: bool = False


class ApprovalsSpec(_Strict):
    required: int = Field(default=1, ge=0)
    role: str = "release-manager"
    fourEyes: bool = False


class VerificationSpec(_Strict):
    period: str | None = None
    rollbackOnUnhealthy: bool = False

    @field_validator("period")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        return None if value is None else _check_duration(value)


class PolicySpec(_Strict):
    mode: Literal["enforce", "observe"] = "enforce"
    targets: list[str] = Field(min_length=1)
    paths: list[str] = []
    source: SourceSpec = SourceSpec()
    timezone: str = "UTC"
    calendar: CalendarSpec = CalendarSpec()
    drift: DriftSpec = DriftSpec()
    provenance: ProvenanceSpec = ProvenanceSpec()
    approvals: ApprovalsSpec = ApprovalsSpec(required=0)
    verification: VerificationSpec = VerificationSpec()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)


class ReleasePolicyDocument(_Strict):
    apiVersion: Literal["gatekeeper/v1"]
    kind: Literal["ReleasePolicy"]
    metadata: Metadata
    spec: PolicySpec

    def to_domain(self, file: str, line: int) -> domain.Policy:
        spec = self.spec
        provenance = spec.provenance
        return domain.Policy(
            name=self.metadata.name,
            targets=tuple(spec.targets),
            mode=domain.Mode(spec.mode),
            paths=tuple(spec.paths),
            source=domain.Source(spec.source.repo, spec.source.path, spec.source.cluster),
            timezone=spec.timezone,
            calendar=domain.CalendarRules(
                deny=tuple(entry.to_domain(spec.timezone) for entry in spec.calendar.deny),
                allow=tuple(entry.to_domain(spec.timezone) for entry in spec.calendar.allow),
            ),
            drift=domain.DriftMode(spec.drift.mode),
            drift_ignore=tuple(entry.to_domain() for entry in spec.drift.ignore),
            provenance=domain.ProvenanceRules(
                require_digest=provenance.requireDigest,
                allowed_registries=tuple(provenance.allowedRegistries),
                signature_keys=tuple(provenance.signatures.keys) if provenance.signatures else (),
                signature_identities=tuple(
                    domain.SignerIdentity(item.issuer, item.subject, item.repository)
                    for item in provenance.signatures.identities
                ) if provenance.signatures else (),
                slsa_builders=tuple(provenance.slsa.builders) if provenance.slsa else (),
                slsa_source_repos=tuple(provenance.slsa.sourceRepos) if provenance.slsa else (),
                break_glass=provenance.breakGlass,
            ),
            approvals=domain.ApprovalRules(
                spec.approvals.required, spec.approvals.role, spec.approvals.fourEyes
            ),
            verification=domain.VerificationRules(
                Duration.parse(spec.verification.period) if spec.verification.period else None,
                spec.verification.rollbackOnUnhealthy,
            ),
            file=file,
            line=line,
        )
