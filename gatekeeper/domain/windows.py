"""The window index: when a gate is closed, answered by binary search.

A ``WindowIndex`` is compiled once from the closed intervals of every reason code (deny entries,
and ``outside_allow_window`` for the gaps between allow windows) over a valid range
``[lo, hi)`` of epoch seconds. It splits the range into maximal segments with one set of active
codes each, so "closed at t", "next open", "next close" and "closed windows in [a, b)" are each
one ``bisect`` plus a walk over the answer. Intervals are half-open everywhere.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

OUTSIDE_ALLOW = "outside_allow_window"

Span = tuple[int, int]


class OutOfRangeError(LookupError):
    """The index does not cover the instant asked; compile one that does."""


def _inside(spans: tuple[Span, ...] | None, at: int) -> bool:
    """Whether ``at`` lies in one of the sorted, disjoint ``spans``."""
    if not spans:
        return False
    position = bisect_right(spans, (at, MAX_INSTANT)) - 1
    return position >= 0 and spans[position][0] <= at < spans[position][1]


MAX_INSTANT = 2**62


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Sort and merge overlapping or touching half-open spans, dropping empty ones."""
    merged: list[Span] = []
    for start, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def complement(spans: Sequence[Span], lo: int, hi: int) -> list[Span]:
    """The parts of ``[lo, hi)`` that merged ``spans`` do not cover."""
    gaps: list[Span] = []
    cursor = lo
    for start, end in spans:
        if start > cursor:
            gaps.append((cursor, min(start, hi)))
        cursor = max(cursor, end)
        if cursor >= hi:
            break
    if cursor < hi:
        gaps.append((cursor, hi))
    return [gap for gap in gaps if gap[1] > gap[0]]


def clip(spans: Iterable[Span], lo: int, hi: int) -> list[Span]:
    return [(max(s, lo), min(e, hi)) for s, e in spans if e > lo and s < hi]


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    start: int
    end: int
    codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GateState:
    """The gate at one instant: active codes (sorted) with the instant each stops applying."""

    at: int
    codes: tuple[str, ...]
    until: Mapping[str, int | None]

    @property
    def closed(self) -> bool:
        return bool(self.codes)


@dataclass(frozen=True, slots=True)
class Lookup:
    """Everything ``status`` asks of an index at one instant."""

    state: GateState
    next_open: int | None
    next_close: int | None
    close_codes: tuple[str, ...]


@dataclass(frozen=True, slots=True, eq=False)
class WindowIndex:
    """Segments of ``[lo, hi)``: segment i is ``[bounds[i], bounds[i+1])`` (the last ends at hi)."""

    lo: int
    hi: int
    code_spans: Mapping[str, tuple[Span, ...]]
    sources: Mapping[str, tuple[str, ...]]
    bounds: tuple[int, ...] = field(repr=False)
    codes: tuple[tuple[str, ...], ...] = field(repr=False)
    next_open_segment: tuple[int, ...] = field(repr=False)
    next_closed_segment: tuple[int, ...] = field(repr=False)
    code_starts: Mapping[str, tuple[int, ...]] = field(repr=False)
    # For a code that several entries share: each entry's own spans, by (code, source label).
    source_spans: Mapping[tuple[str, str], tuple[Span, ...]] = field(repr=False, default_factory=dict)

    @classmethod
    def build(
        cls,
        lo: int,
        hi: int,
        code_spans: Mapping[str, Iterable[Span]],
        sources: Mapping[str, Iterable[str]] | None = None,
        source_spans: Mapping[tuple[str, str], Iterable[Span]] | None = None,
    ) -> WindowIndex:
        """Compile per-code closed spans (clipped to ``[lo, hi)``) into an index; ``source_spans``
        (each source's own spans, by code and label) are kept for codes that several share."""
        if hi <= lo:
            raise ValueError(f"empty index range [{lo}, {hi})")
        spans = {code: tuple(merge_spans(clip(s, lo, hi))) for code, s in code_spans.items()}
        spans = {code: s for code, s in spans.items() if s}
        labels = {code: tuple(dict.fromkeys(s)) for code, s in (sources or {}).items()}
        shared = {code for code, named in labels.items() if len(named) > 1}
        bounds, codes = _segments(lo, hi, spans)
        next_open, next_closed = _next_indices(codes)
        return cls(
            lo=lo,
            hi=hi,
            code_spans=spans,
            sources=labels,
            bounds=bounds,
            codes=codes,
            next_open_segment=next_open,
            next_closed_segment=next_closed,
            code_starts={code: tuple(s for s, _ in v) for code, v in spans.items()},
            source_spans={
                key: tuple(merge_spans(clip(s, lo, hi)))
                for key, s in (source_spans or {}).items()
                if key[0] in shared  # a code with one source: its spans are the code's
            },
        )

    @classmethod
    def union(cls, indexes: Sequence[WindowIndex]) -> WindowIndex:
        """One index closed wherever any of ``indexes`` (same range) is closed."""
        if len(indexes) == 1:
            return indexes[0]
        lo, hi = indexes[0].lo, indexes[0].hi
        if any((index.lo, index.hi) != (lo, hi) for index in indexes):
            raise ValueError("indexes to combine must cover the same range")
        spans: dict[str, list[Span]] = {}
        sources: dict[str, list[str]] = {}
        by_source: dict[tuple[str, str], list[Span]] = {}
        for index in indexes:
            for code, code_spans in index.code_spans.items():
                spans.setdefault(code, []).extend(code_spans)
            for code, labels in index.sources.items():
                sources.setdefault(code, []).extend(labels)
                for label in labels:  # a source alone under its code: its spans are the code's
                    own = index.source_spans.get((code, label), index.code_spans.get(code, ()))
                    by_source.setdefault((code, label), []).extend(own)
        return cls.build(lo, hi, spans, sources, by_source)

    def sources_at(self, code: str, at: int) -> tuple[str, ...]:
        """The sources of ``code`` active at ``at``: of several entries sharing a code, only those
        that close the gate then (all of them where the index does not know each one's spans)."""
        labels = self.sources.get(code, ())
        if len(labels) < 2:
            return labels
        active = tuple(label for label in labels if _inside(self.source_spans.get((code, label)), at))
        return active or labels

    def covers(self, start: int, end: int | None = None) -> bool:
        return self.lo <= start and (end if end is not None else start) <= self.hi

    def _segment(self, at: int) -> int:
        if not self.lo <= at < self.hi:
            raise OutOfRangeError(f"instant {at} outside index range [{self.lo}, {self.hi})")
        return bisect_right(self.bounds, at) - 1

    def state(self, at: int) -> GateState:
        return self._state(self._segment(at), at)

    def _state(self, segment: int, at: int) -> GateState:
        active = self.codes[segment]
        return GateState(at=at, codes=active, until={code: self.until(code, at) for code in active})

    def until(self, code: str, at: int) -> int | None:
        """When ``code``'s span that covers ``at`` ends; None when it runs past the range."""
        position = bisect_right(self.code_starts[code], at) - 1
        end = self.code_spans[code][position][1]
        return None if end >= self.hi else end

    def next_open(self, at: int) -> int | None:
        """The first instant >= at at which no code is active (None: not before ``hi``)."""
        return self._start(self.next_open_segment[self._segment(at)], at)

    def next_close(self, at: int) -> int | None:
        """The first instant >= at at which some code is active (None: not before ``hi``)."""
        return self._start(self.next_closed_segment[self._segment(at)], at)

    def _start(self, segment: int, at: int) -> int | None:
        """When ``segment`` (found from the one holding ``at``) starts, no earlier than ``at``."""
        return None if segment == len(self.bounds) else max(at, self.bounds[segment])

    def codes_at(self, at: int) -> tuple[str, ...]:
        return self.codes[self._segment(at)]

    def look(self, at: int) -> Lookup:
        """State, next open, next close and the codes active then, from one binary search."""
        segment = self._segment(at)
        closed_segment = self.next_closed_segment[segment]
        return Lookup(
            state=self._state(segment, at),
            next_open=self._start(self.next_open_segment[segment], at),
            next_close=self._start(closed_segment, at),
            close_codes=self.codes[closed_segment] if closed_segment < len(self.bounds) else (),
        )

    def closed_windows(self, start: int, end: int) -> list[ClosedWindow]:
        """Maximal closed intervals inside ``[start, end)``, clipped, with the codes active in them."""
        if not (self.lo <= start and end <= self.hi):
            raise OutOfRangeError(f"[{start}, {end}) outside index range [{self.lo}, {self.hi})")
        windows: list[ClosedWindow] = []
        if end <= start:
            return windows
        segment = self._segment(start)
        run_start: int | None = None
        run_codes: set[str] = set()
        while segment < len(self.bounds) and self.bounds[segment] < end:
            seg_start = max(start, self.bounds[segment])
            if self.codes[segment]:
                if run_start is None:
                    run_start, run_codes = seg_start, set()
                run_codes.update(self.codes[segment])
            elif run_start is not None:
                windows.append(ClosedWindow(run_start, seg_start, tuple(sorted(run_codes))))
                run_start = None
            segment += 1
        if run_start is not None:
            windows.append(ClosedWindow(run_start, end, tuple(sorted(run_codes))))
        return windows


def _segments(
    lo: int, hi: int, spans: Mapping[str, Sequence[Span]]
) -> tuple[tuple[int, ...], tuple[tuple[str, ...], ...]]:
    """Sweep the code spans into maximal segments with one set of active codes each."""
    events: list[tuple[int, int, str]] = []
    for code, code_spans in spans.items():
        for start, end in code_spans:
            events.append((start, 1, code))
            events.append((end, -1, code))
    events.sort()
    active: set[str] = set()
    bounds: list[int] = [lo]
    codes: list[tuple[str, ...]] = [()]
    position = 0
    while position < len(events):
        instant = events[position][0]
        while position < len(events) and events[position][0] == instant:
            _, delta, code = events[position]
            if delta > 0:
                active.add(code)
            else:
                active.discard(code)
            position += 1
        if instant >= hi:
            break
        current = tuple(sorted(active))
        if current == codes[-1]:
            continue
        if instant == bounds[-1]:
            codes[-1] = current
            if len(codes) > 1 and codes[-2] == current:
                bounds.pop()
                codes.pop()
        else:
            bounds.append(instant)
            codes.append(current)
    return tuple(bounds), tuple(codes)


def _next_indices(codes: Sequence[tuple[str, ...]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """For each segment, the first segment at or after it that is open, and that is closed."""
    count = len(codes)
    next_open = [count] * count
    next_closed = [count] * count
    open_at, closed_at = count, count
    for segment in range(count - 1, -1, -1):
        if codes[segment]:
            closed_at = segment
        else:
            open_at = segment
        next_open[segment] = open_at
        next_closed[segment] = closed_at
    return tuple(next_open), tuple(next_closed)
