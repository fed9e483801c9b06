"""Bounded, total JSON parsing of request bodies: a value, or ``JsonBodyError`` naming the problem.

Python's ``json`` is neither bounded nor total: 100,000 nested ``[`` raise ``RecursionError``, an
integer of 5,000 digits ``ValueError`` (the interpreter's digit limit), and a lone surrogate
escape (``"\\ud800"``) parses into a string that no encoder, database or response can carry.
Each of those became a 500. Here the body must be UTF-8, nest at most ``MAX_DEPTH`` levels, hold
integers of at most ``MAX_INT_DIGITS`` digits, finite numbers only (no ``NaN``/``Infinity``) and
only valid Unicode; anything else is one ``JsonBodyError`` (HTTP 400). The checks run before
the parser meets the body (depth) or as it builds each value (numbers), so their cost is bounded
by the body size, which the BodyLimit middleware bounds.

Used by every webhook receiver (after the signature check) and by the middleware for every JSON
request body of the API.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64
MAX_INT_DIGITS = 100  # ids in any payload we read are < 2**64 (20 digits); room for neighbours

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class JsonBodyError(ValueError):
    """A body that is not bounded, valid JSON; the message names the problem (never the body)."""


def depth_of(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (brackets inside strings do not count)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if len(brackets) <= MAX_DEPTH:
        return len(brackets)  # an upper bound, and cheap: most bodies stop here
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _integer(literal: str) -> int:
    digits = len(literal) - literal.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise JsonBodyError(f"body holds an integer of {digits} digits (at most {MAX_INT_DIGITS})")
    return int(literal)


def _float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise JsonBodyError(f"body holds a number out of range ({literal[:20]}...)")
    return value


def _constant(name: str) -> None:
    raise JsonBodyError(f"body holds {name}, which is not JSON")


def _lone_surrogate(text: str, data: Any) -> str | None:
    """The first surrogate escape that pairs with none, if any (``\\ud83d\\ude00`` is one character)."""
    if not _SURROGATE_ESCAPE.search(text):
        return None
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"\\u{ord(exc.object[exc.start]):04x}"
    return None


def parse_json(body: bytes | str) -> Any:
    """The JSON value of ``body``, or JsonBodyError naming what is wrong with it."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonBodyError(f"body is not UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start})") from None
    else:
        text = body
    depth = depth_of(text)
    if depth > MAX_DEPTH:
        raise JsonBodyError(f"body nests arrays or objects {depth} levels deep (at most {MAX_DEPTH})")
    try:
        data = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise JsonBodyError(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # not reached below MAX_DEPTH; kept so parsing stays total
        raise JsonBodyError(f"body nests deeper than {MAX_DEPTH} levels") from None
    surrogate = _lone_surrogate(text, data)
    if surrogate is not None:
        raise JsonBodyError(f"body holds a lone surrogate escape {surrogate}, which is not Unicode text")
    return data
