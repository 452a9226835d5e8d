"""Tests for `settlement.bank_delays`: the settlement bank settling a window late, windows settling in order."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

import clearing_sim
from clearing_sim.cli import main
from clearing_sim.errors import ScenarioError
from clearing_sim.model.network import horizon_days, simulate
from clearing_sim.model.settlement import SettlementSystem, WindowState
from clearing_sim.model.traffic import DAY_S
from clearing_sim.scenario import BankDelay, parse_scenario
from tests.conftest import SMALL_YAML

# The small scenario with two intraday windows on T+0 and a cycle before each:
# 12:30 -> 13:00 window, 15:00 -> 18:00 window, 23:45 -> next business day's 13:00
# (BANKC sends a file at 14:00 too, so the 15:00 cycle has one).
INTRADAY = SMALL_YAML.replace('''clearing:
  cutoffs: ["12:30", "23:45"]
settlement:
  windows: ["10:00"]
  lag_days: 1
''', '''clearing:
  cutoffs: ["12:30", "15:00", "23:45"]
settlement:
  windows: ["13:00", "18:00"]
  lag_days: 0
''').replace('submission_times: ["12:00", "23:00"]', 'submission_times: ["12:00", "14:00", "23:00"]')
assert INTRADAY.count("14:00") == 1 and '"15:00"' in INTRADAY


def with_delays(block: str, text: str = INTRADAY) -> str:
    return text + "  bank_delays:\n" + block


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def by_id(summary: dict) -> dict[str, dict]:
    return {w["id"]: w for w in summary["settlement"]["windows"]}


class TestBankDelaySchema:
    """Bank delays load with defaults, and each bad one is reported with its path and YAML line."""

    def test_valid(self):
        s = parse_scenario(with_delays('    - {window: "13:00", delay_minutes: 90}\n'
                                       '    - {day: 2, window: "18:00", delay_minutes: 0}\n'))
        assert s.settlement.bank_delays == (BankDelay("13:00", 90, 1), BankDelay("18:00", 0, 2))

    def test_default_is_none(self, small_scenario):
        assert small_scenario.settlement.bank_delays == ()

    @pytest.mark.parametrize("block, needle, path, message", [
        ('    - {window: "12:00", delay_minutes: 90}\n', 'window: "12:00"', "settlement.bank_delays[0].window",
         "'12:00' is not one of settlement.windows (13:00, 18:00)"),
        ('    - {window: "13:00", delay_minutes: -5}\n', "-5", "settlement.bank_delays[0].delay_minutes",
         "must not be negative"),
        ('    - {window: "13:00", delay_minutes: 1441}\n', "1441", "settlement.bank_delays[0].delay_minutes",
         "must be at most 1,440"),
        ('    - {window: "13:75", delay_minutes: 5}\n', "13:75", "settlement.bank_delays[0].window",
         "not a time of day"),
        ('    - {delay_minutes: 5}\n', "delay_minutes: 5", "settlement.bank_delays[0].window",
         "required key is missing"),
        ('    - {window: "13:00", delay_minutes: 5, late_by: 3}\n', "late_by", "settlement.bank_delays[0].late_by",
         "unknown key"),
        # 2026-11-07 is a Saturday: no window runs.
        ('    - {day: 6, window: "13:00", delay_minutes: 5}\n', "day: 6", "settlement.bank_delays[0].day",
         "day 6 (2026-11-07) is not a business day"),
        # One traffic day on T+0: windows can settle on days 1 to 4 (the last cycle is on day 3).
        ('    - {day: 5, window: "13:00", delay_minutes: 5}\n', "day: 5", "settlement.bank_delays[0].day",
         "outside the days on which this run's windows settle (days 1 to 4)"),
        ('    - {day: 0, window: "13:00", delay_minutes: 5}\n', "day: 0", "settlement.bank_delays[0].day",
         "must be greater than 0"),
    ])
    def test_reported_with_path_and_line(self, block, needle, path, message):
        text = with_delays(block)
        got = problems(text)
        assert any(p.startswith(f"{path} (line {line_of(text, needle)}):") and message in p for p in got), got

    def test_duplicate(self):
        text = with_delays('    - {window: "13:00", delay_minutes: 5}\n    - {day: 1, window: "13:00", delay_minutes: 9}\n')
        got = problems(text)
        assert any(p.startswith(f"settlement.bank_delays[1] (line {line_of(text, 'delay_minutes: 9')}):")
                   and "already has a delay at settlement.bank_delays[0]" in p for p in got), got

    def test_t_plus_one_has_no_window_on_day_1(self):
        got = problems(with_delays('    - {day: 1, window: "10:00", delay_minutes: 5}\n', SMALL_YAML))
        assert any("settlement.bank_delays[0].day" in p and "(days 2 to 4)" in p for p in got), got

    def test_dates_past_year_9999(self):
        text = with_delays('    - {day: 2, window: "13:00", delay_minutes: 5}\n').replace('"2026-11-02"', '"9999-12-30"')
        assert any(p.startswith("run.start_date") and "too late" in p for p in problems(text))

    def test_cli_exits_2_without_traceback(self, tmp_path, capsys):
        f = tmp_path / "bad.yaml"
        f.write_text(with_delays('    - {window: "19:00", delay_minutes: 5}\n'))
        assert main(["validate", str(f)]) == 2
        err = capsys.readouterr().err
        assert "settlement.bank_delays[0].window" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def runs():
    """The intraday small scenario without a delay and with day 1's 13:00 window 6 hours late, fast mode."""
    plain = parse_scenario(INTRADAY)
    late = parse_scenario(with_delays('    - {day: 1, window: "13:00", delay_minutes: 360}\n'))
    return clearing_sim.run(plain, mode="fast"), clearing_sim.run(late, mode="fast")


class TestDelayedWindow:
    """A delayed window closes on time, settles at close + delay, and holds up the window after it."""

    def test_settles_at_close_plus_delay(self, runs):
        w = by_id(runs[1].summary)["2026-11-02T13:00"]
        assert w["status"] == "SETTLED"
        assert w["t_close_s"] == 13 * 3600 and w["t_settled_s"] == 19 * 3600
        assert w["settled_after_close_s"] == 6 * 3600
        steps = [(t["t_s"], t["to"]) for t in w["transitions"]]
        assert steps == [(46800.0, "CLOSED"), (46800.0, "PENDING_SETTLEMENT"), (68400.0, "SETTLED")]
        assert "settlement bank 360 min late" in w["transitions"][-1]["reason"]

    def test_next_window_closes_on_time_and_settles_after(self, runs):
        w = by_id(runs[1].summary)["2026-11-02T18:00"]
        assert [t["t_s"] for t in w["transitions"]] == [64800.0, 64800.0, 68400.0]
        assert w["t_settled_s"] == 19 * 3600
        assert "settled after window 2026-11-02T13:00" in w["transitions"][-1]["reason"]

    def test_other_windows_unchanged_in_time(self, runs):
        plain, late = by_id(runs[0].summary), by_id(runs[1].summary)
        assert plain.keys() == late.keys() and len(plain) >= 3
        for wid in set(plain) - {"2026-11-02T13:00", "2026-11-02T18:00"}:
            assert late[wid]["t_settled_s"] == late[wid]["t_close_s"] == plain[wid]["t_settled_s"]

    def test_only_timing_changes(self, runs):
        plain, late = by_id(runs[0].summary), by_id(runs[1].summary)
        for wid in plain:
            for key in ("status", "positions_minor", "obligations_minor", "gross_minor", "cycles"):
                assert late[wid][key] == plain[wid][key], (wid, key)
        assert runs[0].summary["settlement"]["final_balances_minor"] == runs[1].summary["settlement"]["final_balances_minor"]

    def test_lag_shifts_by_the_delay(self, runs):
        a, b = runs[0].transactions, runs[1].transactions
        window = a["settlement_window"].to_numpy(zero_copy_only=False)
        lag_a, lag_b = a["settlement_lag_h"].to_numpy(), b["settlement_lag_h"].to_numpy()
        for wid, shift_h in (("2026-11-02T13:00", 6.0), ("2026-11-02T18:00", 1.0)):
            sel = window == wid
            assert sel.sum() > 100
            assert np.allclose(lag_b[sel] - lag_a[sel], shift_h, rtol=0, atol=1e-9)
        rest = ~np.isin(window, ["2026-11-02T13:00", "2026-11-02T18:00"])
        assert np.array_equal(lag_a[rest], lag_b[rest], equal_nan=True)
        sa, sb = runs[0].summary["settlement"], runs[1].summary["settlement"]
        assert sb["lag_hours"]["p50"] > sa["lag_hours"]["p50"]
        assert sb["exposure"]["time_weighted_mean_minor"] > sa["exposure"]["time_weighted_mean_minor"]

    def test_zero_sum_and_reported(self, runs):
        s = runs[1].summary["settlement"]
        for w in s["windows"]:
            assert sum(w["positions_minor"].values()) == 0
        assert s["bank_delays"] == [{"day": 1, "window": "13:00", "delay_minutes": 360,
                                     "window_id": "2026-11-02T13:00", "status": "SETTLED",
                                     "settled_after_close_s": 21600.0}]

    def test_detailed_mode_agrees(self, runs):
        sc = parse_scenario(with_delays('    - {day: 1, window: "13:00", delay_minutes: 360}\n'))
        detailed = clearing_sim.run(sc, mode="detailed")
        assert runs[1].summary["settlement"] == detailed.summary["settlement"]
        assert runs[1].settlements.equals(detailed.settlements)


class TestHorizon:
    """A delay that pushes a settlement past the usual horizon extends the run until it settles."""

    def test_horizon_covers_the_delay(self):
        sc = parse_scenario(with_delays('    - {day: 4, window: "18:00", delay_minutes: 1440}\n'))
        plain = parse_scenario(INTRADAY)
        settled_s = 3 * DAY_S + 18 * 3600 + 1440 * 60
        assert horizon_days(plain) * DAY_S <= settled_s < horizon_days(sc) * DAY_S

    def test_no_delay_keeps_the_horizon(self):
        sc = parse_scenario(with_delays('    - {day: 1, window: "13:00", delay_minutes: 60}\n'))
        assert horizon_days(sc) == horizon_days(parse_scenario(INTRADAY))

    def test_late_window_ends_settled(self):
        # The last cycle (day 2, 23:45) settles in day 3's 13:00 window; a day's delay takes it to day 4, 13:00.
        sc = parse_scenario(with_delays('    - {day: 3, window: "13:00", delay_minutes: 1440}\n'))
        state = simulate(sc, "fast")
        last = state.settlement.windows[-1]
        assert last.id == "2026-11-04T13:00" and last.state is WindowState.SETTLED
        assert last.t_settled_s == 3 * DAY_S + 13 * 3600


WINDOW_TIMES = ("09:00", "12:00", "15:00", "18:00")


@pytest.fixture(scope="module")
def four_windows():
    return parse_scenario(SMALL_YAML.replace('windows: ["10:00"]\n  lag_days: 1', 'windows: ["09:00", "12:00", "15:00", "18:00"]\n  lag_days: 0'))


class TestSettlementOrder:
    """Whatever the delays, t_settled = max(close + delay, the previous window's t_settled)."""

    @settings(max_examples=40, deadline=None)
    @given(delays=st.lists(st.integers(0, 1440), min_size=4, max_size=4))
    def test_finality_in_order(self, four_windows, delays):
        sc = attrs.evolve(four_windows, settlement=attrs.evolve(
            four_windows.settlement, bank_delays=tuple(BankDelay(t, d, 1) for t, d in zip(WINDOW_TIMES, delays))))
        env = simpy.Environment()
        system = SettlementSystem(env, sc)
        for k in range(4):  # one transfer per window, cleared a minute before it closes
            t = 9 * 3600 + k * 3 * 3600 - 60
            system.add_obligations(t, 0, [k], [k % 3], [(k + 1) % 3], [100 + k])
        env.run(until=3 * DAY_S)
        previous = 0.0
        for w, d in zip(system.windows, delays):
            assert w.state is WindowState.SETTLED
            expected = max(w.t_close_s + d * 60, previous)
            assert w.t_settled_s == expected
            assert w.transitions[1].t_s == w.t_close_s  # PENDING_SETTLEMENT at close
            previous = expected
        system.check_invariants()
