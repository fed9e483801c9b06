"""WindowIndex (half-open intervals, merging, union, range) and calendar.status()/windows() of DESIGN §3-§4."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatekeeper import calendar
from gatekeeper.calendar import Calendars
from gatekeeper.calendar_sources.ics import IcsCalendar
from gatekeeper.domain.durations import Duration
from gatekeeper.domain.policy import CalendarEntry, CalendarRules, CronEntry, IcsEntry, Mode, Policy
from gatekeeper.domain.windows import OUTSIDE_ALLOW, ClosedWindow, OutOfRangeError, WindowIndex
from gatekeeper.schemas import status_json, windows_json

# ---------------------------------------------------------------------------------------------
# WindowIndex on plain integers: a closed [10, 20), b closed [15, 30), c closed [60, 100) (to hi).

INDEX = WindowIndex.build(0, 100, {"a": [(10, 20)], "b": [(15, 30)], "c": [(60, 120)]})


@pytest.mark.parametrize(
    ("at", "codes", "until"),
    [
        pytest.param(0, (), {}, id="range-start-open"),
        pytest.param(9, (), {}, id="just-before-a"),
        pytest.param(10, ("a",), {"a": 20}, id="start-is-inclusive"),
        pytest.param(15, ("a", "b"), {"a": 20, "b": 30}, id="overlap-has-both-sorted"),
        pytest.param(19, ("a", "b"), {"a": 20, "b": 30}, id="last-second-of-a"),
        pytest.param(20, ("b",), {"b": 30}, id="end-is-exclusive"),
        pytest.param(30, (), {}, id="after-b"),
        pytest.param(60, ("c",), {"c": None}, id="until-unknown-past-the-range"),
        pytest.param(99, ("c",), {"c": None}, id="last-second-of-range"),
    ],
)
def test_state_reports_the_sorted_active_codes_and_when_each_ends(at: int, codes: tuple[str, ...], until: dict[str, int | None]) -> None:
    state = INDEX.state(at)
    assert state.codes == codes
    assert dict(state.until) == until
    assert state.closed is bool(codes)


@pytest.mark.parametrize(
    ("at", "next_open", "next_close"),
    [
        pytest.param(5, 5, 10, id="open-next-open-is-at"),
        pytest.param(10, 30, 10, id="closed-next-close-is-at"),
        pytest.param(17, 30, 17, id="through-an-overlap"),
        pytest.param(30, 30, 60, id="at-the-end-of-a-window"),
        pytest.param(60, None, 60, id="never-opens-within-the-range"),
    ],
)
def test_next_open_and_next_close_are_the_first_instants_at_or_after(at: int, next_open: int | None, next_close: int | None) -> None:
    assert INDEX.next_open(at) == next_open
    assert INDEX.next_close(at) == next_close


def test_next_close_is_none_when_nothing_closes_before_the_range_ends() -> None:
    index = WindowIndex.build(0, 100, {"a": [(10, 20)]})
    assert index.next_close(20) is None
    assert index.next_open(50) == 50


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param(0, 100, [ClosedWindow(10, 30, ("a", "b")), ClosedWindow(60, 100, ("c",))], id="whole-range"),
        pytest.param(12, 25, [ClosedWindow(12, 25, ("a", "b"))], id="clipped-both-sides"),
        pytest.param(20, 25, [ClosedWindow(20, 25, ("b",))], id="codes-only-of-the-clipped-part"),
        pytest.param(30, 60, [], id="open-gap-between-windows"),
        pytest.param(25, 65, [ClosedWindow(25, 30, ("b",)), ClosedWindow(60, 65, ("c",))], id="two-clipped-windows"),
        pytest.param(40, 40, [], id="empty-query"),
    ],
)
def test_closed_windows_are_maximal_clipped_and_carry_the_union_of_codes(start: int, end: int, expected: list[ClosedWindow]) -> None:
    assert INDEX.closed_windows(start, end) == expected


def test_touching_spans_of_one_code_merge_into_one() -> None:
    index = WindowIndex.build(0, 100, {"a": [(20, 30), (10, 20), (25, 28)]})
    assert index.code_spans["a"] == ((10, 30),)
    assert index.until("a", 10) == 30


def test_touching_windows_of_two_codes_form_one_window_but_keep_their_own_state() -> None:
    index = WindowIndex.build(0, 100, {"b": [(20, 30)], "a": [(10, 20)]})
    assert index.closed_windows(0, 100) == [ClosedWindow(10, 30, ("a", "b"))]
    assert index.state(19).codes == ("a",)
    assert index.state(20).codes == ("b",)
    assert index.next_open(10) == 30


def test_empty_and_out_of_range_spans_are_dropped() -> None:
    index = WindowIndex.build(0, 100, {"a": [(50, 50), (200, 300)], "b": [(-50, 5)]})
    assert "a" not in index.code_spans
    assert index.code_spans["b"] == ((0, 5),)
    assert index.closed_windows(0, 100) == [ClosedWindow(0, 5, ("b",))]


def test_the_union_of_two_indexes_is_closed_wherever_either_is() -> None:
    first = WindowIndex.build(0, 100, {"a": [(10, 20)]}, {"a": ["first"]})
    second = WindowIndex.build(0, 100, {"a": [(20, 25)], "b": [(50, 60)]}, {"a": ["second"]})
    union = WindowIndex.union([first, second])
    assert union.closed_windows(0, 100) == [ClosedWindow(10, 25, ("a",)), ClosedWindow(50, 60, ("b",))]
    assert union.until("a", 10) == 25
    assert union.sources["a"] == ("first", "second")


def test_a_code_shared_by_several_sources_names_only_those_active_at_the_instant() -> None:
    # One policy, two entries with one code (an .ics month-end close and a business-days rule).
    one = WindowIndex.build(
        0, 100, {"m": [(10, 20), (15, 30)]}, {"m": ["ics", "days"]}, {("m", "ics"): [(10, 20)], ("m", "days"): [(15, 30)]}
    )
    assert [one.sources_at("m", at) for at in (12, 17, 25)] == [("ics",), ("ics", "days"), ("days",)]
    assert one.until("m", 12) == 30  # the code's span: it stays active until both have ended
    # Two policies, each with one source under the same code: the union knows each one's spans.
    first = WindowIndex.build(0, 100, {"m": [(10, 20)]}, {"m": ["a"]})
    second = WindowIndex.build(0, 100, {"m": [(40, 50)]}, {"m": ["b"]})
    union = WindowIndex.union([first, second])
    assert (union.sources_at("m", 12), union.sources_at("m", 45)) == (("a",), ("b",))
    assert union.sources_at("a-code-nobody-has", 12) == ()


def test_indexes_over_different_ranges_cannot_be_combined() -> None:
    with pytest.raises(ValueError, match="same range"):
        WindowIndex.union([WindowIndex.build(0, 100, {}), WindowIndex.build(0, 200, {})])


@pytest.mark.parametrize("at", [pytest.param(-1, id="before-lo"), pytest.param(100, id="hi-is-exclusive")])
def test_an_instant_outside_the_range_raises_out_of_range(at: int) -> None:
    with pytest.raises(OutOfRangeError):
        INDEX.state(at)
    with pytest.raises(OutOfRangeError):
        INDEX.next_open(at)


def test_windows_beyond_the_range_raise_out_of_range() -> None:
    with pytest.raises(OutOfRangeError):
        INDEX.closed_windows(50, 101)


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ValueError, match="empty index range"):
        WindowIndex.build(10, 10, {})


# ---------------------------------------------------------------------------------------------
# calendar.status() and calendar.windows() (DESIGN §4), with policies built as domain values.

TARGET = "argocd:odoo-prod"
# Wednesday 3 June 2026; the policies below are in UTC so every expectation reads directly.
WED = datetime(2026, 6, 3, tzinfo=UTC)


def at(hours: float, day: datetime = WED) -> datetime:
    return day + timedelta(hours=hours)


def cron_entry(expression: str, duration: str, code: str) -> CronEntry:
    return CronEntry(expression, Duration.parse(duration), "UTC", code)


def policy(name: str, deny: tuple[CalendarEntry, ...] = (), allow: tuple[CalendarEntry, ...] = (), **extra: object) -> Policy:
    return Policy(name=name, targets=("argocd:odoo-*",), calendar=CalendarRules(deny, allow), **extra)  # type: ignore[arg-type]


CUTOFF = cron_entry("0 14 * * 1-5", "2h", "dispatch_cutoff")
BUSINESS_HOURS = cron_entry("0 6 * * 1-5", "10h", "business_hours")
PRODUCTION = policy("production", deny=(CUTOFF,), allow=(BUSINESS_HOURS,))


def status(policies: list[Policy], moment: datetime, ics: dict[str, IcsCalendar] | None = None, **options: bool) -> calendar.Status:
    return calendar.status(Calendars(policies, ics or {}), policies, TARGET, moment, **options)


def windows(policies: list[Policy], start: datetime, end: datetime, **options: bool) -> calendar.Windows:
    return calendar.windows(Calendars(policies, {}), policies, TARGET, start, end, **options)


@pytest.mark.parametrize(
    ("moment", "closed", "codes", "next_open", "next_close", "reason"),
    [
        pytest.param(at(10), False, [], at(10), at(14), "dispatch_cutoff", id="open-morning"),
        pytest.param(at(14), True, ["dispatch_cutoff"], at(30), at(14), "dispatch_cutoff", id="cutoff-starts-inclusive"),
        pytest.param(at(15.5), True, ["dispatch_cutoff"], at(30), at(15.5), "dispatch_cutoff", id="inside-cutoff"),
        # At 16:00 the cut-off ends exactly as business hours end: still closed, now outside the allow window.
        pytest.param(at(16), True, [OUTSIDE_ALLOW], at(30), at(16), OUTSIDE_ALLOW, id="cutoff-hands-over-to-evening"),
        pytest.param(at(5.99), True, [OUTSIDE_ALLOW], at(6), at(5.99), OUTSIDE_ALLOW, id="just-before-business-hours"),
        # Friday 5 June 16:00 -> Monday 8 June 06:00.
        pytest.param(at(16, WED + timedelta(days=2)), True, [OUTSIDE_ALLOW], at(6, WED + timedelta(days=5)),
                     at(16, WED + timedelta(days=2)), OUTSIDE_ALLOW, id="weekend"),
    ],
)
def test_status_answers_closed_reasons_next_open_and_next_close(
    moment: datetime, closed: bool, codes: list[str], next_open: datetime, next_close: datetime, reason: str
) -> None:
    result = status([PRODUCTION], moment.replace(microsecond=0))
    assert result.closed is closed
    assert [r.code for r in result.reasons] == codes
    assert result.next_open == next_open.replace(microsecond=0)
    assert result.next_close == next_close.replace(microsecond=0)
    assert result.next_close_reason == reason


def test_a_status_reason_says_which_check_and_when_it_stops() -> None:
    (reason,) = status([PRODUCTION], at(14)).reasons
    assert (reason.check, reason.code, reason.until) == ("calendar", "dispatch_cutoff", at(16))
    assert "dispatch_cutoff" in reason.message


def test_next_close_reason_is_the_first_code_in_sorted_order_when_several_start_together() -> None:
    together = policy("together", deny=(cron_entry("0 14 * * *", "1h", "zeta_freeze"), cron_entry("0 14 * * *", "2h", "alpha_freeze")))
    result = status([together], at(10))
    assert (result.next_close, result.next_close_reason) == (at(14), "alpha_freeze")


def _long_event(start: datetime, end: datetime) -> dict[str, IcsCalendar]:
    stamp = "%Y%m%dT%H%M%SZ"
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:long@t\r\n"
        f"DTSTART:{start.strftime(stamp)}\r\nDTEND:{end.strftime(stamp)}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    return {"long.ics": IcsCalendar.parse(text.encode(), "long.ics")}


@pytest.mark.parametrize(
    ("length", "expected", "until"),
    [
        pytest.param(timedelta(days=366), at(0) + timedelta(days=366), at(0) + timedelta(days=366),
                     id="exactly-366-days-is-answered"),
        pytest.param(timedelta(days=366, seconds=1), None, at(0) + timedelta(days=366, seconds=1),
                     id="a-second-more-is-null"),
        pytest.param(timedelta(days=800), None, None, id="years-away-is-null-with-until-unknown"),
    ],
)
def test_next_open_is_null_beyond_366_days(length: timedelta, expected: datetime | None, until: datetime | None) -> None:
    frozen = policy("frozen", deny=(IcsEntry("long.ics", "long_freeze"),))
    result = status([frozen], at(0), _long_event(at(0), at(0) + length))
    assert result.closed
    assert result.next_open == expected
    assert result.reasons[0].until == until


def test_next_close_is_null_when_the_gate_never_closes_within_366_days() -> None:
    result = status([policy("never")], at(0))
    assert (result.closed, result.next_open, result.next_close, result.next_close_reason) == (False, at(0), None, None)


def test_deny_beats_allow() -> None:
    result = status([PRODUCTION], at(15))  # inside business hours and inside the cut-off
    assert [r.code for r in result.reasons] == ["dispatch_cutoff"]


def test_allow_codes_never_appear_only_outside_allow_window_does() -> None:
    found = windows([PRODUCTION], at(0), at(24))
    codes = {code for window in found.closed for code in window.codes}
    assert codes == {"dispatch_cutoff", OUTSIDE_ALLOW}


def test_several_policies_on_one_target_intersect_their_allow_windows() -> None:
    early = policy("early", allow=(cron_entry("0 6 * * *", "10h", "early_hours"),))
    late = policy("late", allow=(cron_entry("0 10 * * *", "10h", "late_hours"),))
    found = windows([early, late], at(0), at(24))
    assert found.closed == (
        ClosedWindow(int(at(0).timestamp()), int(at(10).timestamp()), (OUTSIDE_ALLOW,)),
        ClosedWindow(int(at(16).timestamp()), int(at(24).timestamp()), (OUTSIDE_ALLOW,)),
    )
    assert status([early, late], at(12)).closed is False
    assert status([early, late], at(8)).closed is True


def test_a_policy_in_observe_mode_still_shows_its_calendar() -> None:
    observed = policy("observed", deny=(CUTOFF,), mode=Mode.OBSERVE)
    assert status([observed], at(14)).closed is True


def test_windows_are_clipped_sorted_and_have_exactly_start_end_codes() -> None:
    found = windows([PRODUCTION], at(15), at(24 + 7))
    body = windows_json(found)
    assert body["from"] == "2026-06-03T15:00:00Z"
    assert body["to"] == "2026-06-04T07:00:00Z"
    assert body["closed"] == [
        {"start": "2026-06-03T15:00:00Z", "end": "2026-06-04T06:00:00Z", "codes": ["dispatch_cutoff", OUTSIDE_ALLOW]},
    ]
    assert all(set(window) == {"start", "end", "codes"} for window in body["closed"])


def test_windows_over_a_week_are_sorted_disjoint_and_never_touch() -> None:
    found = windows([PRODUCTION], at(0), at(24 * 7))
    starts = [window.start for window in found.closed]
    assert starts == sorted(starts)
    assert all(a.end < b.start for a, b in zip(found.closed, found.closed[1:], strict=False))
    # Mon-Fri: 14:00-06:00 next morning is one window (cut-off then evening); the weekend joins Fri to Mon.
    assert [(w.start, w.end) for w in found.closed][:2] == [
        (int(at(0).timestamp()), int(at(6).timestamp())),
        (int(at(14).timestamp()), int(at(30).timestamp())),
    ]


def test_a_target_no_policy_governs_is_closed_with_no_policy() -> None:
    other = Policy(name="other", targets=("flux:*",))
    result = status([other], at(10))
    assert (result.closed, [r.code for r in result.reasons]) == (True, ["no_policy"])
    assert (result.next_open, result.next_close, result.next_close_reason) == (None, at(10), "no_policy")
    found = windows([other], at(0), at(24))
    assert found.closed == (ClosedWindow(int(at(0).timestamp()), int(at(24).timestamp()), ("no_policy",)),)
    assert status_json(result)["reasons"][0]["code"] == "no_policy"


def test_an_ungoverned_target_is_open_when_ungoverned_is_approve() -> None:
    result = status([], at(10), ungoverned_open=True)
    assert (result.closed, result.reasons, result.next_open, result.next_close) == (False, (), at(10), None)
    assert windows([], at(0), at(24), ungoverned_open=True).closed == ()


def test_status_json_has_the_api_shape_with_utc_instants() -> None:
    body = status_json(status([PRODUCTION], datetime.fromisoformat("2026-06-03T16:00:00+02:00")))
    assert body == {
        "target": TARGET,
        "at": "2026-06-03T14:00:00Z",
        "closed": True,
        "reasons": [
            {"check": "calendar", "code": "dispatch_cutoff", "message": body["reasons"][0]["message"],
             "until": "2026-06-03T16:00:00Z"}
        ],
        "next_open": "2026-06-04T06:00:00Z",
        "next_close": "2026-06-03T14:00:00Z",
        "next_close_reason": "dispatch_cutoff",
    }


def test_status_far_from_the_first_compiled_range_compiles_another() -> None:
    calendars = Calendars([PRODUCTION], {})
    near = calendar.status(calendars, [PRODUCTION], TARGET, at(14))
    far = calendar.status(calendars, [PRODUCTION], TARGET, at(14, datetime(2029, 6, 6, tzinfo=UTC)))
    past = calendar.status(calendars, [PRODUCTION], TARGET, at(14, datetime(2020, 6, 3, tzinfo=UTC)))
    assert near.closed and far.closed and past.closed
    assert far.next_open == datetime(2029, 6, 6, 16, tzinfo=UTC) + timedelta(hours=14)
