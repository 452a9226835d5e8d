"""Scenario fields of the authorisation side: defaults, and bad values refused with their path (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim import cli
from clearing_sim.errors import ScenarioError
from clearing_sim.scenario import Outage, parse_scenario
from tests.conftest import SMALL_YAML

FIRST_HOST = "    host: {servers: 2, service_time_ms: {distribution: exponential, mean: 40}}\n"
FIRST_CARDS = "    cards: 5000\n"


def with_first_host(extra: str) -> str:
    """SMALL_YAML whose first issuer's host gets extra keys (block style, so lines are exact)."""
    assert FIRST_HOST in SMALL_YAML
    host = ("    host:\n      servers: 2\n      service_time_ms: {distribution: exponential, mean: 40}\n"
            + "".join(f"      {line}\n" for line in extra.splitlines()))
    return SMALL_YAML.replace(FIRST_HOST, host)


def with_first_issuer(extra: str) -> str:
    assert FIRST_CARDS in SMALL_YAML
    return SMALL_YAML.replace(FIRST_CARDS, FIRST_CARDS + "".join(f"    {line}\n" for line in extra.splitlines()))


BAD = {
    "servers 0": (SMALL_YAML.replace("host: {servers: 2,", "host: {servers: 0,"),
                  "issuers[0].host.servers", "must be greater than 0"),
    "outage ends before it starts": (with_first_host('outages:\n  - {start: "12:30", end: "12:00"}'),
                                     "issuers[0].host.outages[0].end", "not after it starts"),
    "outage of no length": (with_first_host('outages:\n  - {start: "12:30", end: "12:30"}'),
                            "issuers[0].host.outages[0].end", "not after it starts"),
    "outage clock": (with_first_host('outages:\n  - {start: "25:00", end: "26:00"}'),
                     "issuers[0].host.outages[0].start", "not a time of day"),
    "outage day after the run": (with_first_host('outages:\n  - {day: 2, start: "12:00", end: "12:30"}'),
                                 "issuers[0].host.outages[0].day", "after the run's last day"),
    "outage day 0": (with_first_host('outages:\n  - {day: 0, start: "12:00", end: "12:30"}'),
                     "issuers[0].host.outages[0].day", "greater than 0"),
    "overlapping outages": (with_first_host('outages:\n  - {start: "12:00", end: "12:30"}\n'
                                            '  - {start: "12:15", end: "13:00"}'),
                            "issuers[0].host.outages[1]", "overlaps outages[0]"),
    "announced not a bool": (with_first_host('outages:\n  - {start: "12:00", end: "12:30", announced: "yes"}'),
                             "issuers[0].host.outages[0].announced", "expected true or false"),
    "degraded servers above the host's": (with_first_host('degraded:\n  - {start: "12:00", end: "14:00", servers: 3}'),
                                          "issuers[0].host.degraded[0].servers", "more than the host has"),
    "degraded servers negative": (with_first_host('degraded:\n  - {start: "12:00", end: "14:00", servers: -1}'),
                                  "issuers[0].host.degraded[0].servers", "must not be negative"),
    "degraded ends before it starts": (with_first_host('degraded:\n  - {start: "14:00", end: "12:00", servers: 1}'),
                                       "issuers[0].host.degraded[0].end", "not after it starts"),
    "stand-in per transaction below zero": (with_first_issuer("stand_in: {per_transaction_minor: -1}"),
                                            "issuers[0].stand_in.per_transaction_minor", "must not be negative"),
    "stand-in daily below zero": (with_first_issuer("stand_in: {daily_minor: -500}"),
                                  "issuers[0].stand_in.daily_minor", "must not be negative"),
    "stand-in unknown key": (with_first_issuer("stand_in: {per_day_minor: 5}"),
                             "issuers[0].stand_in.per_day_minor", "unknown key"),
    "credit limit negative": (with_first_issuer("credit_limit_minor: {distribution: constant, value: -5}"),
                              "issuers[0].credit_limit_minor.value", "must not be negative"),
    "on_us_in_bank not a bool": (with_first_issuer("on_us_in_bank: 1"),
                                 "issuers[0].on_us_in_bank", "expected true or false"),
    "switch timeout zero": (SMALL_YAML + "network: {switch_timeout_ms: 0}\n",
                            "network.switch_timeout_ms", "must be greater than 0"),
    "acquirer timeout negative": (SMALL_YAML.replace('submission_times: ["22:00"]',
                                                     'submission_times: ["22:00"]\n    auth_timeout_ms: -3'),
                                  "acquirers[0].auth_timeout_ms", "must be greater than 0"),
}


class TestBadValues:
    """Each bad authorisation value is refused with the field's full path, and `run` exits 2 without a traceback."""

    @pytest.mark.parametrize("case", sorted(BAD), ids=sorted(BAD))
    def test_loader_names_the_field(self, case):
        text, path, message = BAD[case]
        with pytest.raises(ScenarioError) as info:
            parse_scenario(text, "bad.yaml")
        problems = info.value.problems
        assert any(p.path == path and message in p.message for p in problems), [str(p) for p in problems]

    @pytest.mark.parametrize("case", ["servers 0", "outage ends before it starts", "stand-in daily below zero",
                                      "degraded servers above the host's"])
    def test_run_exits_2_naming_the_field(self, case, tmp_path: Path, capsys):
        text, path, _ = BAD[case]
        f = tmp_path / "bad.yaml"
        f.write_text(text, encoding="utf-8")
        assert cli.main(["run", str(f), "--out", str(tmp_path / "run"), "-q"]) == 2
        err = capsys.readouterr().err
        assert path in err and "Traceback" not in err
        assert not (tmp_path / "run").exists()

    def test_outage_line_is_reported(self):
        text, path, _ = BAD["outage ends before it starts"]
        with pytest.raises(ScenarioError) as info:
            parse_scenario(text, "bad.yaml")
        line = next(p.line for p in info.value.problems if p.path == path)
        assert text.splitlines()[line - 1].strip().startswith("- {start: \"12:30\", end: \"12:00\"}")


class TestDefaults:
    """Scenarios without the new fields keep loading, with the documented defaults."""

    def test_defaults(self, small_scenario):
        iss = small_scenario.issuers[0]
        assert iss.host.outages == () and iss.host.degraded == ()
        assert iss.stand_in.per_transaction_minor == 100_000 and iss.stand_in.daily_minor == 20_000_000
        assert iss.on_us_in_bank is False
        assert small_scenario.network.switch_timeout_ms == 5_000.0
        assert small_scenario.acquirers[0].auth_timeout_ms == 15_000.0

    def test_end_of_day_is_allowed_as_an_end(self):
        sc = parse_scenario(with_first_host('outages:\n  - {day: 1, start: "23:30", end: "24:00", announced: true}'))
        assert sc.issuers[0].host.outages[0].interval_s == (84_600.0, 86_400.0)


_clock = st.tuples(st.integers(0, 23), st.integers(0, 59)).map(lambda hm: f"{hm[0]:02d}:{hm[1]:02d}")


class TestOutageWindows:
    """An outage is valid exactly when it ends after it starts; its interval is [start, end) on its day."""

    @settings(max_examples=200, deadline=None)
    @given(start=_clock, end=st.one_of(_clock, st.just("24:00")), day=st.integers(1, 366))
    def test_valid_iff_end_after_start(self, start, end, day):
        to_s = (lambda c: 86_400 if c == "24:00" else int(c[:2]) * 3600 + int(c[3:]) * 60)
        if to_s(end) > to_s(start):
            o = Outage(start=start, end=end, day=day)
            assert o.interval_s == ((day - 1) * 86_400 + to_s(start), (day - 1) * 86_400 + to_s(end))
        else:
            with pytest.raises(ValueError, match="not after it starts"):
                Outage(start=start, end=end, day=day)


class TestStoreAndForwardResends:
    """A short switch timeout through a long outage: an advice resent every timeout while its
    issuer is down, without limit (a 24-hour outage at 1 ms would be 86 million resends, kept in
    memory). Found by a differential hunt; such a scenario is refused before it runs."""

    OUTAGE = SMALL_YAML.replace(
        "    host: {servers: 2, service_time_ms: {distribution: exponential, mean: 40}}",
        '    host: {servers: 2, service_time_ms: {distribution: exponential, mean: 40}, '
        'outages: [{start: "%s", end: "%s"}]}') + "network:\n  switch_timeout_ms: %s\n"

    def test_refused_naming_the_timeout(self, tmp_path: Path, capsys):
        text = self.OUTAGE % ("00:00", "24:00", 1)
        with pytest.raises(ScenarioError) as info:
            parse_scenario(text, "bad.yaml")
        [problem] = info.value.problems
        assert problem.path == "network.switch_timeout_ms" and "86,400,001 times" in problem.message
        assert text.splitlines()[problem.line - 1].strip() == "switch_timeout_ms: 1"
        f = tmp_path / "bad.yaml"
        f.write_text(text, encoding="utf-8")
        assert cli.main(["run", str(f), "--out", str(tmp_path / "run"), "-q", "--mode", "fast"]) == 2
        assert "Traceback" not in capsys.readouterr().err and not (tmp_path / "run").exists()

    def test_a_timeout_too_small_to_divide_by(self):
        """1e-320 ms: the outage over the timeout is infinite (was exit 1: OverflowError in math.ceil)."""
        with pytest.raises(ScenarioError) as info:
            parse_scenario(self.OUTAGE % ("10:00", "10:30", "1e-320"), "bad.yaml")
        [problem] = info.value.problems
        assert problem.path == "network.switch_timeout_ms" and "more than 10^300 times" in problem.message

    def test_the_bound_holds_a_run_that_is_allowed(self):
        """An hour's unannounced outage at 16 ms: the resends the run makes stay within the bound."""
        import clearing_sim
        from clearing_sim.scenario import MAX_SAF_RESENDS, saf_resends_bound

        sc = parse_scenario(self.OUTAGE % ("12:00", "13:00", 16))
        bound = saf_resends_bound(sc)
        assert bound == 3600 / 0.016 + 1 <= MAX_SAF_RESENDS
        a = clearing_sim.run(sc, mode="fast").summary["authorisations"]
        resends = a["advice_repeats"] + a["reversal_advice_repeats"]
        assert 0.9 * bound < resends <= bound

    def test_an_announced_outage_is_not_refused(self):
        """The switch holds advices through an announced outage (no resends): a whole day of it at
        a 5 ms timeout runs, with at most one resend (a message already in flight as it began)."""
        import clearing_sim
        from clearing_sim.scenario import saf_resends_bound

        text = (self.OUTAGE % ("00:00", "24:00", 5)).replace('end: "24:00"}', 'end: "24:00", announced: true}')
        sc = parse_scenario(text)
        assert saf_resends_bound(sc) == 1
        a = clearing_sim.run(sc, mode="fast").summary["authorisations"]
        assert a["per_issuer"]["BANKA"]["advices"] > 0
        assert a["advice_repeats"] + a["reversal_advice_repeats"] <= 1
