"""Tests for clearing_sim.model.calendar: business days and T+N."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearing_sim.model.calendar import BusinessCalendar

MONDAY = dt.date(2026, 11, 2)


class TestBusinessDays:
    """Weekends and holidays are skipped; listed working days are not."""

    def test_default_week(self):
        cal = BusinessCalendar(MONDAY)
        assert [cal.is_business_day(d) for d in range(7)] == [True] * 5 + [False] * 2

    def test_holiday_and_working_weekend(self):
        cal = BusinessCalendar(MONDAY, holidays=["2026-11-03"], working_days=["2026-11-07"])
        assert not cal.is_business_day(1)  # Tuesday, a holiday
        assert cal.is_business_day(5)      # Saturday, worked

    def test_other_weekend(self):
        cal = BusinessCalendar(MONDAY, weekend=["FRI", "SAT"])
        assert [cal.is_business_day(d) for d in range(7)] == [True, True, True, True, False, False, True]

    def test_a_week_of_weekend_is_refused(self):
        with pytest.raises(ValueError):
            BusinessCalendar(MONDAY, weekend=["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"])


class TestAddBusinessDays:
    """T+N counts business days after the day; T+0 is the day itself or the next business day."""

    def test_friday_plus_one_is_monday(self):
        cal = BusinessCalendar(MONDAY)
        assert cal.add_business_days(4, 1) == 7

    def test_plus_zero(self):
        cal = BusinessCalendar(MONDAY)
        assert cal.add_business_days(2, 0) == 2
        assert cal.add_business_days(5, 0) == 7

    def test_golden_week_style_gap(self):
        # Seven holidays in a row after a weekend, with a worked Saturday after them.
        days = [(MONDAY + dt.timedelta(days=k)).isoformat() for k in range(7, 14)]
        cal = BusinessCalendar(MONDAY, holidays=days, working_days=["2026-11-14"])
        assert cal.add_business_days(4, 1) == 12  # Friday -> the worked Saturday of the next week

    @given(day=st.integers(0, 400), n=st.integers(0, 30),
           holidays=st.sets(st.integers(0, 450), max_size=40))
    def test_lands_on_a_business_day_with_n_between(self, day, n, holidays):
        cal = BusinessCalendar(MONDAY, holidays=[(MONDAY + dt.timedelta(days=h)).isoformat() for h in holidays])
        got = cal.add_business_days(day, n)
        assert got >= day and cal.is_business_day(got)
        business_after = sum(cal.is_business_day(d) for d in range(day + 1, got + 1))
        if n >= 1:
            assert business_after == n
        elif cal.is_business_day(day):
            assert got == day
        else:
            assert business_after == 1  # the next business day, none skipped
