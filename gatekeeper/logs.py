"""Logging set-up: the one function that configures handlers (text locally, JSON in production).

A filter redacts secrets that could ride in a URL (``?token=`` of the calendar feed) or a header
from every record, including uvicorn's access log. A query parameter is judged by its name as the
server reads it: percent-decoded and casefolded, so ``%74oken=`` and ``TOKEN=`` are caught too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from urllib.parse import unquote_plus

# Query parameters whose value is a secret, by decoded, casefolded name.
SECRET_PARAMETERS = frozenset({"token", "access_token", "private_token", "api_key", "apikey", "password", "secret"})
# What separates query parameters from each other and from the rest of a line (also
# percent-encoded: a client may have sent the whole query encoded), and what ends a name.
_SEPARATOR = re.compile(r"(\s+|[\"'?&;#]|%3[fF]|%26|%3[bB])")
_ASSIGN = re.compile(r"=|%3[dD]")
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
_CONTEXT = ("delivery_id", "source", "target", "release_id")


def _decoded(name: str) -> str:
    """The name as a server reads it; decoded until stable (a few rounds) so that no layer of
    encoding hides it."""
    for _ in range(4):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return name.strip().casefold()


def _redact_parameters(text: str) -> str:
    parts = _SEPARATOR.split(text)  # even positions: pieces; odd: the separators between them
    for position in range(0, len(parts), 2):
        piece = parts[position]
        assign = _ASSIGN.search(piece)
        if assign and assign.end() < len(piece) and _decoded(piece[: assign.start()]) in SECRET_PARAMETERS:
            parts[position] = f"{piece[: assign.end()]}[redacted]"
    return "".join(parts)


def redact(text: str) -> str:
    return _BEARER.sub(r"\1[redacted]", _redact_parameters(text))


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not the stream of the moment
    the handler was made (a test runner swaps it; a thread outliving its test then wrote into a
    closed capture)."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        return None


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = _CurrentStderr()
    handler.addFilter(RedactSecrets())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # httpx logs every request's full URL at INFO: a published calendar's URL is its secret
    # (Outlook and Google put the key in the path). Our adapters log what they fetch, redacted.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
