"""Business days for settlement: weekends, listed holidays and working weekend days.

Owns: whether a simulated day is a business day (a day on which settlement windows
run) and counting business days forward for T+N. Days are indices from day 0, the
scenario's `run.start_date`. The calendar is the scenario's own list
(`settlement.calendar`): its weekend days, its holidays, and the weekend dates that
are working days (China's State Council moves working days onto weekends around
Spring Festival and National Day, so "weekday" alone is not enough). A list in the
scenario was chosen over a package such as `chinesecalendar` so that a run never
depends on which year a package knows about, and the calendar used is written to
the run's `config.yaml`. Must never import SimPy or read files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from clearing_sim.scenario import WEEKDAY_NAMES


class BusinessCalendar:
    """Business days counted from a start date (day 0)."""

    def __init__(self, start_date: dt.date, weekend: Iterable[str] = ("SAT", "SUN"),
                 holidays: Iterable[str] = (), working_days: Iterable[str] = ()):
        self.start_date = start_date
        self.weekend = frozenset(WEEKDAY_NAMES.index(d) for d in weekend)
        if len(self.weekend) >= 7:
            raise ValueError("a calendar needs at least one weekday that is not a weekend day")
        self.holidays = frozenset(dt.date.fromisoformat(d) for d in holidays)
        self.working_days = frozenset(dt.date.fromisoformat(d) for d in working_days)
        # The longest possible run of non-business days: every holiday back to back
        # plus the weekend days around them. A loop past this has a bug.
        self._max_gap = len(self.holidays) + 7 * (len(self.holidays) + 1)

    @classmethod
    def from_scenario(cls, scenario) -> "BusinessCalendar":
        """The calendar of a scenario's `settlement.calendar`, starting at `run.start_date`."""
        cal = scenario.settlement.calendar
        return cls(dt.date.fromisoformat(scenario.run.start_date), cal.weekend, cal.holidays, cal.working_days)

    def date_of(self, day: int) -> dt.date:
        """The calendar date of simulated day `day` (0 is the start date)."""
        return self.start_date + dt.timedelta(days=int(day))

    def is_business_day(self, day: int) -> bool:
        """True if settlement windows run on simulated day `day`."""
        date = self.date_of(day)
        if date in self.working_days:
            return True
        return date.weekday() not in self.weekend and date not in self.holidays

    def next_business_day(self, day: int) -> int:
        """The first business day strictly after `day`."""
        for step in range(1, self._max_gap + 2):
            if self.is_business_day(day + step):
                return day + step
        raise AssertionError(f"no business day within {self._max_gap + 1} days after day {day}")  # pragma: no cover

    def add_business_days(self, day: int, n: int) -> int:
        """The n-th business day after `day` (T+n); n = 0 is `day` itself if a business day, else the next."""
        if n < 0:
            raise ValueError(f"n must not be negative, got {n}")
        if n == 0:
            return day if self.is_business_day(day) else self.next_business_day(day)
        for _ in range(n):
            day = self.next_business_day(day)
        return day
