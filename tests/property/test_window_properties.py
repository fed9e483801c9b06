"""Properties of the window index, against a brute force written independently of it.

Small integer timelines: every second of ``[0, SIZE)`` is evaluated by scanning the raw spans.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.domain.windows import OUTSIDE_ALLOW, ClosedWindow, WindowIndex

SIZE = 120
CODES = ("alpha", "beta", "gamma")

spans = st.lists(st.tuples(st.integers(-10, SIZE + 10), st.integers(0, 40)).map(lambda p: (p[0], p[0] + p[1])), max_size=5)
deny_sets = st.dictionaries(st.sampled_from(CODES), spans, max_size=3)
allow_sets = st.one_of(st.none(), spans)


def build(deny: dict[str, list[tuple[int, int]]], allow: list[tuple[int, int]] | None) -> WindowIndex:
    """The index as calendar.compile_policy builds it: deny codes, plus the gaps between allows."""
    code_spans: dict[str, list[tuple[int, int]]] = {code: list(s) for code, s in deny.items()}
    if allow is not None:
        gaps, start = [], 0
        for second in range(SIZE + 1):
            inside = second < SIZE and any(s <= second < e for s, e in allow)
            if inside and start < second:
                gaps.append((start, second))
            if inside:
                start = second + 1
        if start < SIZE:
            gaps.append((start, SIZE))
        code_spans[OUTSIDE_ALLOW] = gaps
    return WindowIndex.build(0, SIZE, code_spans)


def brute_codes(deny: dict[str, list[tuple[int, int]]], allow: list[tuple[int, int]] | None, t: int) -> tuple[str, ...]:
    codes = {code for code, s in deny.items() if any(start <= t < end for start, end in s)}
    if allow is not None and not any(start <= t < end for start, end in allow):
        codes.add(OUTSIDE_ALLOW)
    return tuple(sorted(codes))


def brute_windows(codes_at: list[tuple[str, ...]], start: int, end: int) -> list[ClosedWindow]:
    windows: list[ClosedWindow] = []
    run: tuple[int, set[str]] | None = None
    for t in range(start, end):
        if codes_at[t] and run is None:
            run = (t, set(codes_at[t]))
        elif codes_at[t] and run is not None:
            run[1].update(codes_at[t])
        elif run is not None:
            windows.append(ClosedWindow(run[0], t, tuple(sorted(run[1]))))
            run = None
    if run is not None:
        windows.append(ClosedWindow(run[0], end, tuple(sorted(run[1]))))
    return windows


@settings(max_examples=200, deadline=None)
@given(deny_sets, allow_sets)
def test_the_index_answers_what_scanning_the_raw_spans_answers(deny: dict[str, list[tuple[int, int]]], allow: list[tuple[int, int]] | None) -> None:
    index = build(deny, allow)
    codes_at = [brute_codes(deny, allow, t) for t in range(SIZE)]
    for t in range(SIZE):
        assert index.state(t).codes == codes_at[t]
        later = range(t, SIZE)
        assert index.next_open(t) == next((u for u in later if not codes_at[u]), None)
        assert index.next_close(t) == next((u for u in later if codes_at[u]), None)
    for code in index.code_spans:
        for t in range(SIZE):
            if code in codes_at[t]:
                end = next((u for u in range(t, SIZE) if code not in codes_at[u]), None)
                assert index.until(code, t) == end


@settings(max_examples=200, deadline=None)
@given(deny_sets, allow_sets, st.integers(0, SIZE), st.integers(0, SIZE))
def test_closed_windows_are_the_maximal_runs_sorted_disjoint_clipped_and_never_touching(
    deny: dict[str, list[tuple[int, int]]], allow: list[tuple[int, int]] | None, a: int, b: int
) -> None:
    start, end = min(a, b), max(a, b)
    index = build(deny, allow)
    windows = index.closed_windows(start, end)
    assert windows == brute_windows([brute_codes(deny, allow, t) for t in range(SIZE)], start, end)
    for window in windows:
        assert start <= window.start < window.end <= end
        assert window.codes and list(window.codes) == sorted(set(window.codes))
    for first, second in pairwise(windows):
        assert first.end < second.start


@settings(max_examples=200, deadline=None)
@given(deny_sets, allow_sets, st.sampled_from(CODES), spans)
def test_adding_a_deny_entry_never_opens_the_gate(
    deny: dict[str, list[tuple[int, int]]], allow: list[tuple[int, int]] | None, code: str, extra: list[tuple[int, int]]
) -> None:
    before = build(deny, allow)
    after = build({**deny, code: [*deny.get(code, []), *extra]}, allow)
    for t in range(SIZE):
        if before.state(t).closed:
            assert after.state(t).closed
            assert set(before.state(t).codes) <= set(after.state(t).codes)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(deny_sets, allow_sets), min_size=1, max_size=3))
def test_a_union_of_indexes_is_closed_exactly_where_any_of_them_is(parts: list[tuple[dict[str, list[tuple[int, int]]], list[tuple[int, int]] | None]]) -> None:
    indexes = [build(deny, allow) for deny, allow in parts]
    union = WindowIndex.union(indexes)
    for t in range(SIZE):
        expected = sorted({code for deny, allow in parts for code in brute_codes(deny, allow, t)})
        assert list(union.state(t).codes) == expected
