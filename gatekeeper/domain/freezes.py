"""Ad-hoc freezes (DESIGN §3): a release manager closes targets now, with no file edit.

A freeze closes every target matching one of its globs (``fnmatchcase``, ``*`` also matches
``/``) over ``[start, end)``, ``end`` None meaning until it is lifted. A lifted freeze keeps the
part it was in force (``[start, lifted_at)``): windows and the calendar feed show what really
closed the gate. Pure: no clock, no store; the orchestrator passes ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fnmatch import fnmatchcase

from gatekeeper.domain.types import InvalidTargetError, parse_target, utc_epoch

FREEZE_CODE = "adhoc_freeze"
MAX_GLOB = 512
MAX_GLOBS = 100
# Target keys start with one of these (domain.types.parse_target): a glob whose fixed beginning
# fits none of them can match no target, and a freeze that stops nothing is a mistake, not a freeze.
TARGET_KINDS = ("argocd:", "flux:", "git:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WILDCARD = re.compile(r"[*?\[]")


class FreezeState(StrEnum):
    SCHEDULED = "scheduled"  # starts later
    ACTIVE = "active"
    ENDED = "ended"  # its end has passed
    LIFTED = "lifted"  # lifted by a person


class InvalidGlobError(ValueError):
    """A freeze target glob that is malformed or can match no target key."""


def check_glob(glob: str) -> str:
    """``glob`` if it is a usable target glob, else InvalidGlobError saying why."""
    if not glob.strip():
        raise InvalidGlobError("a glob must not be empty")
    if len(glob) > MAX_GLOB:
        raise InvalidGlobError(f"a glob is at most {MAX_GLOB} characters (got {len(glob)})")
    if _CONTROL.search(glob) or glob != glob.strip():
        raise InvalidGlobError(f"glob {glob!r} has control characters or surrounding white space")
    if _unclosed_class(glob):
        raise InvalidGlobError(f"glob {glob!r} has a '[' without its ']'")
    if not _WILDCARD.search(glob):  # no wildcard: it names one target, which must be a target key
        try:
            return parse_target(glob)
        except InvalidTargetError as exc:
            raise InvalidGlobError(f"glob {glob!r} matches no target: {exc}") from None
    fixed = _WILDCARD.split(glob, maxsplit=1)[0]
    if not any(kind.startswith(fixed) or fixed.startswith(kind) for kind in TARGET_KINDS):
        kinds = ", ".join(TARGET_KINDS)
        raise InvalidGlobError(f"glob {glob!r} matches no target (target keys start with {kinds})")
    return glob


def _unclosed_class(glob: str) -> bool:
    """Whether a ``[`` opens a class with no closing ``]`` (fnmatch would match it literally)."""
    position = glob.find("[")
    while position != -1:
        close = glob.find("]", position + 2 if glob[position + 1 : position + 2] in ("!", "]") else position + 1)
        if close == -1:
            return True
        position = glob.find("[", close + 1)
    return False


@dataclass(frozen=True, slots=True)
class Freeze:
    """One ad-hoc freeze as stored."""

    id: int
    targets: tuple[str, ...]
    start: datetime
    end: datetime | None
    reason: str
    created_by: str
    created_at: datetime
    code: str = FREEZE_CODE
    lifted_at: datetime | None = None
    lifted_by: str | None = None
    lift_reason: str | None = None

    def matches(self, target: str) -> bool:
        return any(fnmatchcase(target, pattern) for pattern in self.targets)

    @property
    def effective_end(self) -> datetime | None:
        """When it stops closing the gate: its end or its lifting, whichever came first."""
        ends = [instant for instant in (self.end, self.lifted_at) if instant is not None]
        return min(ends) if ends else None

    def state(self, now: datetime) -> FreezeState:
        # A freeze is lifted only while in force (a lift after its end is refused), so a lifting
        # always comes before the end.
        if self.lifted_at is not None and self.lifted_at <= now:
            return FreezeState.LIFTED
        if self.end is not None and self.end <= now:
            return FreezeState.ENDED
        return FreezeState.SCHEDULED if now < self.start else FreezeState.ACTIVE

    def in_force(self, now: datetime) -> bool:
        """Whether it is active now or will be (what a lift can still stop)."""
        return self.state(now) in (FreezeState.ACTIVE, FreezeState.SCHEDULED)

    def label(self) -> str:
        """How a reason names it: which freeze, who started it and why."""
        return f"freeze {self.id} by {self.created_by}: {self.reason}"

    def span(self, hi: int) -> tuple[int, int]:
        """Its closed span in epoch seconds, an open end reaching ``hi``."""
        end = self.effective_end
        return utc_epoch(self.start), utc_epoch(end) if end is not None else hi


def matching(freezes: Iterable[Freeze], target: str) -> tuple[Freeze, ...]:
    """The freezes whose globs match ``target``, in id order."""
    return tuple(sorted((freeze for freeze in freezes if freeze.matches(target)), key=lambda f: f.id))
