"""Argo CD's own syntax, read the way Argo CD reads it: Go durations (``time.ParseDuration``) and
application globs (gobwas/glob), the latter as ``fnmatch`` globs for gatekeeper's targets.

Pure functions; no policy knowledge (``argocd`` turns windows into policies with them).
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from fractions import Fraction

_GO_PART = re.compile(r"(\d*(?:\.\d*)?)(ns|us|µs|μs|ms|h|m|s)")
_GO_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9,
               "m": 60 * 10**9, "h": 3600 * 10**9}
GLOB_CHARS = "*?["


def parse_go_duration(text: str) -> Fraction:
    """Seconds of a Go ``time.ParseDuration`` string (``1h``, ``30m``, ``2h30m``, ``1.5h``, ``90s``).

    ValueError if Go would reject it."""
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    body = body.removeprefix("-").removeprefix("+") if body[:1] in "+-" else body
    if body == "0":
        return Fraction(0)
    position, total = 0, Fraction(0)
    while position < len(body):
        match = _GO_PART.match(body, position)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(f"duration {text!r} is not a Go duration (e.g. 1h, 30m, 2h30m)")
        total += Fraction(match.group(1)) * _GO_UNIT_NS[match.group(2)]
        position = match.end()
    if not body:
        raise ValueError(f"duration {text!r} is not a Go duration (e.g. 1h, 30m, 2h30m)")
    return sign * total / 10**9


def app_globs(pattern: str) -> tuple[list[str], bool]:
    """Argo CD's glob (gobwas/glob: ``{a,b}``, ``\\`` escapes) as fnmatch globs; False when only
    approximately."""
    if pattern == "*":
        return ["*"], True
    alternatives = _braces(pattern)
    out, exact = [], True
    for alternative in alternatives:
        text, position = "", 0
        while position < len(alternative):
            char = alternative[position]
            if char == "\\" and position + 1 < len(alternative):
                escaped = alternative[position + 1]
                text += f"[{escaped}]" if escaped in GLOB_CHARS else escaped
                position += 2
                continue
            if char == "[" and alternative[position + 1 : position + 2] == "^":
                exact = False  # gobwas negates with [!...] as fnmatch does; [^...] is read literally there
            text += char
            position += 1
        out.append(text)
    return out, exact


def _braces(pattern: str) -> list[str]:
    """``{a,b}`` alternatives expanded (nested ones too)."""
    depth, start = 0, -1
    for position, char in enumerate(pattern):
        if char == "{":
            depth, start = depth + 1, position if depth == 0 else start
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                inner, options, level, last = pattern[start + 1 : position], [], 0, 0
                for offset, inner_char in enumerate(inner):
                    level += {"{": 1, "}": -1}.get(inner_char, 0)
                    if inner_char == "," and level == 0:
                        options.append(inner[last:offset])
                        last = offset + 1
                options.append(inner[last:])
                head, tail = pattern[:start], pattern[position + 1 :]
                return [expanded for option in options for expanded in _braces(head + option + tail)]
    return [pattern]


def may_overlap(a: str, b: str) -> bool:
    """Could one name match both globs? Exact for literals; for two globs, False only when their
    literal prefixes or suffixes already disagree."""
    literal_a, literal_b = not any(c in a for c in GLOB_CHARS), not any(c in b for c in GLOB_CHARS)
    if literal_a and literal_b:
        return a == b
    if literal_a or literal_b:
        return fnmatchcase(a, b) if literal_a else fnmatchcase(b, a)
    prefix_a, prefix_b = re.split(r"[*?\[]", a, maxsplit=1)[0], re.split(r"[*?\[]", b, maxsplit=1)[0]
    suffix_a, suffix_b = re.split(r"[*?\]]", a)[-1], re.split(r"[*?\]]", b)[-1]
    prefixes = prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a)
    suffixes = suffix_a.endswith(suffix_b) or suffix_b.endswith(suffix_a)
    return prefixes and suffixes
