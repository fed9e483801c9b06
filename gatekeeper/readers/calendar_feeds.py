"""Published iCalendar URLs over HTTP (Outlook, Google, Exchange, Nextcloud), fetched with httpx.

One ``HttpxFeedReader`` per process, called from the background refresh loop, never on a request.
Each fetch is conditional (``If-None-Match`` / ``If-Modified-Since`` from the last good copy),
bounded in time (a timeout per attempt), in size (the body is read at most ``max_bytes`` + 1 bytes)
and in redirects, and retried with backoff on connection errors, 429 and 5xx. Credentials come
from ``CALENDAR_CREDENTIALS_FILE`` per host (``load_credentials``), never from a policy file;
httpx drops ``Authorization`` when a redirect leaves the host. Nothing else is decided here:
validating a copy and keeping it is ``feeds.py``'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, model_validator

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
ACCEPT = "text/calendar, text/plain;q=0.5, */*;q=0.1"


class CredentialsError(ValueError):
    """``CALENDAR_CREDENTIALS_FILE`` cannot be read or is malformed (start-up fails, naming it)."""


class FeedFetchError(Exception):
    """A feed could not be fetched (after retries); the message names the URL, never a secret."""


@dataclass(frozen=True, slots=True)
class Credential:
    """How to authenticate to one host: a bearer token, or basic user and password (the secrets
    never show in a repr, so never in a log line or a traceback)."""

    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetch's outcome: ``body`` None when the server answered 304 Not Modified."""

    body: bytes | None
    etag: str | None
    last_modified: str | None


class HttpxFeedReader:
    def __init__(
        self,
        *,
        timeout: float = 10.0,
        max_bytes: int = 10 * 1024 * 1024,
        retries: int = 2,
        backoff: float = 0.5,
        max_redirects: int = 5,
        credentials: Mapping[str, Credential] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._max_bytes = max_bytes
        self._retries = retries
        self._backoff = backoff
        self._credentials = {host.lower(): credential for host, credential in (credentials or {}).items()}
        self._sleep = sleep
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=True,
            max_redirects=max_redirects,
            transport=transport,
            headers={"User-Agent": "gatekeeper (calendar feeds)", "Accept": ACCEPT},
        )

    def close(self) -> None:
        self._client.close()

    def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        """The feed's current body, or ``body=None`` if unchanged since ``etag``/``last_modified``."""
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return self._once(url, headers)
            except _Retryable as exc:
                if attempt == self._retries:
                    raise FeedFetchError(str(exc)) from exc.__cause__
                self._sleep(delay)
                delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, url: str, headers: dict[str, str]) -> Fetched:
        try:
            auth = self._auth(url)
        except ValueError as exc:
            raise FeedFetchError(f"GET {url}: invalid URL: {exc}") from exc
        try:
            with self._client.stream("GET", url, headers=headers, auth=auth) as response:
                if response.status_code == 304:
                    return Fetched(None, _header(response, "ETag"), _header(response, "Last-Modified"))
                if response.status_code in RETRYABLE:
                    raise _Retryable(f"GET {url}: HTTP {response.status_code}")
                if response.status_code != 200:
                    raise FeedFetchError(f"GET {url}: HTTP {response.status_code} (expected 200 or 304)")
                body = self._bounded(url, response)
                return Fetched(body, _header(response, "ETag"), _header(response, "Last-Modified"))
        except httpx.TooManyRedirects as exc:
            raise FeedFetchError(f"GET {url}: more redirects than allowed") from exc
        except httpx.TransportError as exc:  # connect, read, timeout, protocol
            raise _Retryable(f"GET {url}: {type(exc).__name__}: {str(exc)[:200] or 'no detail'}") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # a body that does not decode, a bad URL
            raise FeedFetchError(f"GET {url}: {type(exc).__name__}: {str(exc)[:200] or 'no detail'}") from exc

    def _bounded(self, url: str, response: httpx.Response) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self._max_bytes:
            raise FeedFetchError(f"GET {url}: body of {declared} bytes is over the limit of {self._max_bytes}")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self._max_bytes:
                raise FeedFetchError(f"GET {url}: body is over the limit of {self._max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _auth(self, url: str) -> httpx.Auth | None:
        credential = self._credentials.get((urlsplit(url).hostname or "").lower())
        if credential is None:
            return None
        if credential.token is not None:
            return _Bearer(credential.token)
        return httpx.BasicAuth(credential.username or "", credential.password or "")


class _Retryable(Exception):
    """An attempt that may succeed when repeated (connection trouble, 429, 5xx)."""


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def _header(response: httpx.Response, name: str) -> str | None:
    value = response.headers.get(name)
    return value if value else None


class _CredentialSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> _CredentialSpec:
        if (self.token is None) == (self.username is None):
            raise ValueError("give either token (bearer) or username and password (basic)")
        return self


def load_credentials(path: Path | None) -> dict[str, Credential]:
    """``CALENDAR_CREDENTIALS_FILE``: YAML mapping host -> {token} or {username, password}.

    Raises CredentialsError naming the file (and host) on a bad file: start-up fails."""
    if path is None:
        return {}
    try:
        raw = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CredentialsError(f"{path}: cannot read calendar credentials: {exc}") from None
    if not isinstance(raw, Mapping):
        raise CredentialsError(f"{path}: expected a mapping of host to credentials")
    found: dict[str, Credential] = {}
    for host, spec in raw.items():
        try:
            parsed = _CredentialSpec.model_validate(spec)
        except ValidationError as exc:
            messages = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
            raise CredentialsError(f"{path}: host {host}: {messages}") from None
        found[str(host).lower()] = Credential(
            token=parsed.token.get_secret_value() if parsed.token else None,
            username=parsed.username,
            password=parsed.password.get_secret_value() if parsed.password else None,
        )
    return found
