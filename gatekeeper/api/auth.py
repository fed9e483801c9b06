"""Bearer-token authentication and role checks for the API (401 without a valid token, 403 without the role)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from gatekeeper.api.errors import ApiError
from gatekeeper.tokens import Identity, TokenStore

# The security schemes of the OpenAPI document. They only declare: ``require`` reads the header
# (and the query token) itself, so they never answer on their own (auto_error=False).
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", description="An API token listed in TOKENS_FILE")
QUERY_TOKEN = APIKeyQuery(
    name="token",
    auto_error=False,
    scheme_name="query_token",
    description="A viewer token as a query parameter, for calendar clients that send no headers",
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
QueryToken = Annotated[str | None, Security(QUERY_TOKEN)]


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(tokens: TokenStore, token: str | None) -> Identity:
    identity = tokens.identify(token)
    if identity is None:
        raise ApiError(401, "unauthorized", "a valid bearer token is required")
    return identity


def require(*roles: str, allow_query_token: bool = False) -> Callable[..., Awaitable[Identity]]:
    """A dependency admitting a token that holds any of ``roles``.

    ``async`` because it never blocks (a hash and an in-memory lookup): a sync dependency would
    cost each request a hop through the thread pool.
    """

    def admit(request: Request, token: str | None) -> Identity:
        identity = authenticate(request.app.state.tokens, token)
        if not identity.roles & set(roles):
            raise ApiError(403, "forbidden", f"token {identity.name!r} lacks the role {' or '.join(roles)}")
        return identity

    async def dependency(request: Request, _declared: Bearer) -> Identity:
        return admit(request, bearer(request))

    async def with_query_token(request: Request, _declared: Bearer, query: QueryToken) -> Identity:
        return admit(request, bearer(request) or query)

    return with_query_token if allow_query_token else dependency


def check_target(identity: Identity, target: str) -> None:
    if not identity.may_act_on(target):
        raise ApiError(403, "forbidden", f"token {identity.name!r} may not act on target {target}", "target")
