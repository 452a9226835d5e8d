"""Switch restarts: the scenario key, its validation, and the static rules both modes share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim import cli
from clearing_sim.errors import ScenarioError
from clearing_sim.model.switch_restarts import SwitchRestarts
from clearing_sim.scenario import parse_scenario
from tests.conftest import SMALL_YAML


def with_restarts(*rows: str) -> str:
    """SMALL_YAML with `network.switch_restarts`, one row per line (block style, so lines are exact)."""
    return SMALL_YAML + "network:\n  switch_restarts:\n" + "".join(f"    - {r}\n" for r in rows)


BAD = {
    "negative downtime": (with_restarts('{at: "12:30", down_s: -1}'),
                          "network.switch_restarts[0].down_s", "must not be negative"),
    "not a number": (with_restarts('{at: "12:30", down_s: soon}'),
                     "network.switch_restarts[0].down_s", ""),
    "infinite downtime": (with_restarts('{at: "12:30", down_s: .inf}'),
                          "network.switch_restarts[0].down_s", "finite"),
    "clock": (with_restarts('{at: "24:30"}'), "network.switch_restarts[0].at", "not a time of day"),
    "clock form": (with_restarts('{at: "noon"}'), "network.switch_restarts[0].at", "HH:MM"),
    "missing time": (with_restarts("{down_s: 30}"), "network.switch_restarts[0].at", ""),
    "day after the run": (with_restarts('{day: 2, at: "12:30"}'),
                          "network.switch_restarts[0].day", "after the run's last day"),
    "day 0": (with_restarts('{day: 0, at: "12:30"}'), "network.switch_restarts[0].day", "greater than 0"),
    "unknown key": (with_restarts('{at: "12:30", down_ms: 5}'),
                    "network.switch_restarts[0].down_ms", "unknown key"),
    "restart while down": (with_restarts('{at: "12:30", down_s: 120}', '{at: "12:31", down_s: 10}'),
                           "network.switch_restarts[1].at", "still down"),
    "same instant": (with_restarts('{at: "12:31", down_s: 0}', '{at: "12:31", down_s: 0}'),
                     "network.switch_restarts[1].at", "still down"),
    "listed out of order, overlapping": (with_restarts('{at: "13:00"}', '{at: "12:59", down_s: 61}'),
                                         "network.switch_restarts[1].at", "still down"),
    # A lost 0400 is repeated every auth_timeout_ms: a day down at 1 ms would take 86 million
    # repeats, and the run failed half-way (exit 1) at the 100,000-repeat loop bound.
    "acquirer timeout too short for the downtime": (
        with_restarts('{at: "00:00", down_s: 86400}').replace('submission_times: ["22:00"]',
                                                             'submission_times: ["22:00"]\n    auth_timeout_ms: 1'),
        "acquirers[0].auth_timeout_ms", "repeated more than 100,000 times"),
    # Restarts closer together than the timeout chain: 2 x 43,199 s at 800 ms is 108,000 repeats.
    "chained restarts": (
        with_restarts('{at: "00:00", down_s: 43199.5}', '{at: "12:00", down_s: 43199}').replace(
            'submission_times: ["22:00"]', 'submission_times: ["22:00"]\n    auth_timeout_ms: 800'),
        "acquirers[0].auth_timeout_ms", "repeated more than 100,000 times"),
}


class TestBadValues:
    """Each bad restart is refused with its full path and YAML line, and `run` exits 2 writing nothing."""

    @pytest.mark.parametrize("case", sorted(BAD), ids=sorted(BAD))
    def test_loader_names_the_field(self, case):
        text, path, message = BAD[case]
        with pytest.raises(ScenarioError) as info:
            parse_scenario(text, "bad.yaml")
        problems = info.value.problems
        assert any(p.path == path and message in p.message for p in problems), [str(p) for p in problems]

    @pytest.mark.parametrize("case", ["negative downtime", "day after the run", "restart while down"])
    def test_line_points_at_the_restart(self, case):
        text, path, _ = BAD[case]
        with pytest.raises(ScenarioError) as info:
            parse_scenario(text, "bad.yaml")
        line = next(p.line for p in info.value.problems if p.path == path)
        index = int(path.split("[")[1].split("]")[0])
        rows = [n for n, t in enumerate(text.splitlines(), 1) if t.startswith("    - {")]
        assert line == rows[index]

    @pytest.mark.parametrize("case", ["negative downtime", "restart while down"])
    def test_run_exits_2(self, case, tmp_path: Path, capsys):
        text, path, _ = BAD[case]
        f = tmp_path / "bad.yaml"
        f.write_text(text, encoding="utf-8")
        assert cli.main(["run", str(f), "--out", str(tmp_path / "run"), "-q"]) == 2
        err = capsys.readouterr().err
        assert path in err and "Traceback" not in err
        assert not (tmp_path / "run").exists()


def test_timeout_short_but_within_the_repeat_bound_runs(tmp_path: Path):
    """86,400 s down at 870 ms is 99,311 repeats: valid, and the run gets every reversal through."""
    text = (with_restarts('{at: "00:00", down_s: 86400}')
            .replace('submission_times: ["22:00"]', 'submission_times: ["22:00"]\n    auth_timeout_ms: 870')
            .replace("transactions_per_day: 3000", "transactions_per_day: 100"))
    f = tmp_path / "ok.yaml"
    f.write_text(text, encoding="utf-8")
    assert cli.main(["run", str(f), "--out", str(tmp_path / "run"), "-q"]) == 0


class TestKey:
    """No restarts by default; a restart's interval is [at, at + down_s) on its day."""

    def test_default_is_none(self, small_scenario):
        assert small_scenario.network.switch_restarts == ()
        assert not SwitchRestarts(small_scenario)

    def test_interval(self):
        sc = parse_scenario(with_restarts('{at: "12:30", down_s: 90}', '{at: "12:32", down_s: 0}'))
        assert [r.interval_s for r in sc.network.switch_restarts] == [(45_000.0, 45_090.0), (45_120.0, 45_120.0)]
        assert sc.network.switch_restarts[0].day == 1


def restarts_of(spans: list[tuple[float, float]]) -> SwitchRestarts:
    r = SwitchRestarts.__new__(SwitchRestarts)
    r.starts = np.array([s for s, _ in spans], dtype=np.float64)
    r.ends = np.array([e for _, e in spans], dtype=np.float64)
    return r


_spans = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 30)), max_size=5).map(
    lambda xs: sorted({s * 10.0: s * 10.0 + d for s, d in xs}.items()))


def _disjoint(spans):
    out = []
    for s, e in spans:
        if not out or s > out[-1][1]:
            out.append((s, e))
    return out


class TestRules:
    """`down`, `next_restart` and the 0400 repeats agree with a direct reading of the rules."""

    @settings(max_examples=150, deadline=None)
    @given(spans=_spans.map(_disjoint), t=st.lists(st.floats(-10, 2_500, allow_nan=False), min_size=1, max_size=20))
    def test_down_and_next_restart(self, spans, t):
        r = restarts_of(spans)
        t = np.array(t)
        expect_down = [any(s <= x < e for s, e in spans) for x in t]
        expect_next = [min([s for s, _ in spans if s > x], default=np.inf) for x in t]
        assert r.down(t).tolist() == expect_down
        assert r.next_restart(t).tolist() == expect_next

    @settings(max_examples=150, deadline=None)
    @given(spans=_spans.map(_disjoint), send=st.floats(0, 2_000), hop=st.floats(0, 3), repeat=st.floats(0.5, 20))
    def test_reversal_gets_through_at_the_first_send_reaching_an_up_switch(self, spans, send, hop, repeat):
        r = restarts_of(spans)
        arrival, repeats = r.reversal_arrival(np.array([send]), np.array([hop]), np.array([repeat]))
        t, m = send, 0
        while any(s <= t + hop < e for s, e in spans):
            t, m = t + repeat, m + 1
        assert repeats[0] == m and arrival[0] == t + hop
        rows, sends = r.reversal_sends(np.array([send]), np.array([repeat]), repeats)
        assert len(rows) == m + 1 and sends[-1] + hop == arrival[0]
