"""Tests for the settlement part of the scenario schema: calendar, accounts and default rules."""

from __future__ import annotations

import pytest

from clearing_sim.cli import main
from clearing_sim.errors import ScenarioError
from clearing_sim.scenario import parse_scenario
from tests.conftest import SMALL_YAML

BASE = SMALL_YAML.replace('''settlement:
  windows: ["10:00"]
  lag_days: 1
''', "")


def with_settlement(block: str) -> str:
    return BASE + "settlement:\n" + block


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


class TestValidSettlement:
    """A full settlement block loads, and leaving it out keeps the old defaults."""

    def test_defaults(self, small_scenario):
        st = small_scenario.settlement
        assert st.default_rule == "unwind" and st.accounts == () and st.calendar.weekend == ("SAT", "SUN")

    def test_full_block(self):
        s = parse_scenario(with_settlement('''  windows: ["09:00", "15:00"]
  lag_days: 0
  calendar: {weekend: [SAT, SUN], holidays: ["2026-10-01"], working_days: ["2026-10-10"]}
  default_rule: guarantee_fund
  loss_sharing_key: fixed
  accounts:
    - {participant: BANKA, opening_balance_minor: 100, collateral_minor: 5, net_debit_cap_minor: 90,
       guarantee_fund_minor: 7, loss_share_weight: 0.5}
    - {participant: NETWORK, opening_balance_minor: 0}
'''))
        assert s.settlement.accounts[0].net_debit_cap_minor == 90
        assert s.settlement.accounts[1].participant == "NETWORK"


class TestInvalidSettlement:
    """Every bad settlement field is reported with its full path and YAML line."""

    @pytest.mark.parametrize("block, needle, path, message", [
        ('  default_rule: bail_out\n', "bail_out", "settlement.default_rule", "unknown value 'bail_out'"),
        ('  loss_sharing_key: size\n', "size", "settlement.loss_sharing_key", "unknown value 'size'"),
        ('  accounts:\n    - {participant: BANKZ}\n', "BANKZ", "settlement.accounts[0].participant",
         "unknown participant 'BANKZ'"),
        ('  accounts:\n    - {participant: BANKA, opening_balance_minor: -5}\n', "-5",
         "settlement.accounts[0].opening_balance_minor", "must not be negative"),
        ('  accounts:\n    - {participant: BANKA, net_debit_cap_minor: -1}\n', "net_debit_cap_minor: -1",
         "settlement.accounts[0].net_debit_cap_minor", "must not be negative"),
        ('  accounts:\n    - {participant: BANKA}\n    - {participant: BANKA}\n', "- {participant: BANKA}\n",
         "settlement.accounts[1].participant", "already has an account"),
        ('  accounts:\n    - {participant: BANKA, guarantee_fund_minor: 10}\n', "guarantee_fund_minor",
         "settlement.accounts[0].guarantee_fund_minor", "only used with default_rule: guarantee_fund"),
        ('  accounts:\n    - {participant: BANKA, colateral_minor: 10}\n', "colateral",
         "settlement.accounts[0].colateral_minor", "unknown key"),
        ('  calendar: {holidays: ["2026-13-01"]}\n', "2026-13-01", "settlement.calendar.holidays[0]",
         "not a date"),
        ('  calendar: {weekend: [SAT, SUNDAY]}\n', "SUNDAY", "settlement.calendar.weekend[1]",
         "not a weekday name"),
        ('  calendar: {working_days: ["2026-11-04"]}\n', "working_days", "settlement.calendar.working_days[0]",
         "already a business day"),
        ('  calendar: {weekend: [MON, TUE, WED, THU, FRI, SAT, SUN]}\n', "weekend", "settlement.calendar.weekend",
         "at least one weekday"),
        ('  windows: ["25:00"]\n', "25:00", "settlement.windows[0]", "not a time of day"),
        ('  lag_days: -1\n', "lag_days", "settlement.lag_days", "must not be negative"),
        ('  default_rule: loss_sharing\n  loss_sharing_key: fixed\n', "fixed", "settlement.loss_sharing_key",
         "needs a loss_share_weight"),
    ])
    def test_reported_with_path_and_line(self, block, needle, path, message):
        text = with_settlement(block)
        got = problems(text)
        line = line_of(text, needle) if "\n" not in needle else line_of(text, needle.strip()) + 1
        assert any(p.startswith(f"{path} (line {line}):") and message in p for p in got), got

    def test_cli_exits_2_without_traceback(self, tmp_path, capsys):
        f = tmp_path / "bad.yaml"
        f.write_text(with_settlement('  accounts:\n    - {participant: BANKA, collateral_minor: -3}\n'))
        assert main(["validate", str(f)]) == 2
        err = capsys.readouterr().err
        assert "settlement.accounts[0].collateral_minor" in err and "Traceback" not in err
