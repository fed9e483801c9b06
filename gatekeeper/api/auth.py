"""Bearer-token authentication and role checks for the API (401 without a valid token, 403 without the role)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from gatekeeper.api.errors import ApiError
from gatekeeper.tokens import Identity, TokenStore


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(tokens: TokenStore, token: str | None) -> Identity:
    identity = tokens.identify(token)
    if identity is None:
        raise ApiError(401, "unauthorized", "a valid bearer token is required")
    return identity


def require(*roles: str, allow_query_token: bool = False) -> Callable[[Request], Awaitable[Identity]]:
    """A dependency admitting a token that holds any of ``roles``.

    ``async`` because it never blocks (a hash and an in-memory lookup): a sync dependency would
    cost each request a hop through the thread pool.
    """

    async def dependency(request: Request) -> Identity:
        token = bearer(request)
        if token is None and allow_query_token:
            token = request.query_params.get("token")
        identity = authenticate(request.app.state.tokens, token)
        if not identity.roles & set(roles):
            raise ApiError(403, "forbidden", f"token {identity.name!r} lacks the role {' or '.join(roles)}")
        return identity

    return dependency


def check_target(identity: Identity, target: str) -> None:
    if not identity.may_act_on(target):
        raise ApiError(403, "forbidden", f"token {identity.name!r} may not act on target {target}", "target")
