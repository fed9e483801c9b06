"""Routes of ``/v1/freezes``: stop the line (start an ad-hoc freeze), list, lift (DESIGN §4).

Thin: parse, call the release manager, render with ``schemas.freeze_json``. Starting and lifting
need ``release-manager``; listing ``viewer`` (or ``release-manager``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from gatekeeper.api.auth import require
from gatekeeper.api.openapi import AUTH, BODY, Freeze, FreezePage, errors
from gatekeeper.api.v1 import CursorQuery, Manager, RejectBody, Service
from gatekeeper.schemas import MAX_ID, FreezeRequest, freeze_json
from gatekeeper.tokens import Identity

router = APIRouter(prefix="/v1", tags=["v1: hooks, people and tools"])
PAGE = 50
FreezeId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.post(
    "/freezes",
    summary="Stop the line: start an ad-hoc freeze (release-manager)",
    description="Role `release-manager` (a token limited to targets may freeze only globs they cover). "
    "`start` defaults to now (an earlier start means now); `end` null freezes until lifted and must "
    "otherwise be after the start (else 422 naming `end`); `duration` (e.g. `2h`) instead of `end` "
    "counts from the start. Every target glob must be able to match "
    "a target key (else 422 naming `targets.N`). Releases not yet applied that it matches are "
    "decided again.",
    status_code=201,
    responses={201: {"model": Freeze}, **errors(*AUTH, *BODY)},
)
def start_freeze(
    body: FreezeRequest,
    people: Manager,
    gatekeeper: Service,
    identity: Annotated[Identity, Depends(require("release-manager"))],
) -> dict[str, Any]:
    start, end, lasting = body.instants()
    freeze = people.start_freeze(identity, tuple(body.targets), start, end, body.reason, lasting=lasting)
    return freeze_json(freeze, gatekeeper.clock())


@router.get(
    "/freezes",
    summary="Ad-hoc freezes: those in force (active or scheduled), or all with all=true",
    description="Role `viewer` or `release-manager`. Newest first.",
    responses={200: {"model": FreezePage}, **errors(*AUTH, 422, 503)},
)
def list_freezes(
    gatekeeper: Service,
    _identity: Annotated[Identity, Depends(require("viewer", "release-manager"))],
    all_: Annotated[bool, Query(alias="all", description="also the ended and lifted ones")] = False,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE,
) -> dict[str, Any]:
    now = gatekeeper.clock()
    before = int(cursor) if cursor else None
    found = gatekeeper.store.freezes(ending_after=None if all_ else now, before_id=before, limit=limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return {"items": [freeze_json(f, now) for f in page], "next": str(page[-1].id) if more and page else None}


@router.delete(
    "/freezes/{freeze_id}",
    summary="Lift an ad-hoc freeze, with a reason (release-manager)",
    description="Role `release-manager`. The freeze stays in the history with who lifted it and why; "
    "releases it matches are decided again. Lifting one that ended or was lifted is 409.",
    responses={200: {"model": Freeze}, **errors(*AUTH, 404, 409, *BODY)},
)
def lift_freeze(
    freeze_id: FreezeId,
    body: RejectBody,
    people: Manager,
    gatekeeper: Service,
    identity: Annotated[Identity, Depends(require("release-manager"))],
) -> dict[str, Any]:
    return freeze_json(people.lift_freeze(freeze_id, identity, body.reason), gatekeeper.clock())
