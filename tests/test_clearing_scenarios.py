"""The shipped clearing fault scenarios end with the expected rejects and settle everything else as the baseline.

Each scenario file is run as shipped except for its volume (scaled to 20,000 purchases
a day to keep the suite fast; `test_scenarios_dir` runs them at full size).
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest

from clearing_sim.clearing_results import clearing_summary
from clearing_sim.model.clearing import STATUS_CLEARED
from clearing_sim.model.network import simulate
from clearing_sim.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def run(name: str):
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    return simulate(attrs.evolve(sc, traffic=attrs.evolve(sc.traffic, transactions_per_day=20_000)))


@pytest.fixture(scope="module")
def baseline():
    return run("baseline")


def cleared_by_arn(state) -> dict[bytes, tuple]:
    """Each cleared record by ARN: (window id, amount, interchange, issuer fee, acquirer fee)."""
    r = state.clearing.records()
    windows = [w.id for w in state.settlement.windows]
    ok = np.flatnonzero(r["status"] == STATUS_CLEARED)
    return {r["arn"][i]: (windows[r["window"][i]], int(r["amount_minor"][i]), int(r["interchange_minor"][i]),
                          int(r["scheme_fee_issuer_minor"][i]), int(r["scheme_fee_acquirer_minor"][i])) for i in ok}


def faulty_file(state, fault: str):
    (f,) = [f for f in state.acquirers.files if fault in f.fault.split("+") and not f.copy]
    return f


class TestLateFile:
    """ICBC's late day-1 file clears in the next cycle and settles a day later; nothing is rejected."""

    def test_expected_outcome(self, baseline) -> None:
        state = run("late_file")
        late = faulty_file(state, "late")
        assert state.scenario.participant_ids[late.sender] == "ICBC"
        assert state.clearing.cycles[late.cycle].id == "D002-23:45"
        s = clearing_summary(state)
        assert (s["files_rejected"], s["records_rejected"]) == (0, 0)
        assert s["records_presented"] == s["records_cleared"] == clearing_summary(baseline)["records_cleared"]
        base, got = cleared_by_arn(baseline), cleared_by_arn(state)
        assert base.keys() == got.keys()
        moved = set(late.arn.tolist())
        for arn, (window, *money) in got.items():
            b_window, *b_money = base[arn]
            assert money == b_money
            if arn in moved:
                assert (b_window, window) == ("2026-11-03T10:00", "2026-11-04T10:00")
            else:
                assert window == b_window


class TestDuplicateFile:
    """CCB's second copy is rejected as a duplicate file; everything settles exactly as the baseline."""

    def test_expected_outcome(self, baseline) -> None:
        state = run("duplicate_file")
        copy = next(f for f in state.clearing.files if f.copy)
        assert state.scenario.participant_ids[copy.sender] == "CCB"
        s = clearing_summary(state)
        assert s["rejects_by_reason"] == {"DUPLICATE_FILE": copy.n_records}
        assert s["files_rejected_by_reason"] == {"DUPLICATE_FILE": 1}
        assert s["reject_messages"] == {"1644/691": 0, "1644/699": 1}
        assert s["records_presented"] == s["records_cleared"] + copy.n_records
        assert cleared_by_arn(state) == cleared_by_arn(baseline)
        for a, b in zip(state.settlement.windows, baseline.settlement.windows, strict=True):
            assert (a.id, a.positions_minor.tolist()) == (b.id, b.positions_minor.tolist())


class TestCorruptFile:
    """BOC's file with a wrong trailer total is rejected whole; its purchases clear from the next file."""

    def test_expected_outcome(self, baseline) -> None:
        state = run("corrupt_file")
        bad = faulty_file(state, "corrupt_trailer")
        assert state.scenario.participant_ids[bad.sender] == "BOC"
        assert (bad.status, bad.reject_reason) == ("rejected", "AMOUNT_MISMATCH")
        s = clearing_summary(state)
        assert s["rejects_by_reason"] == {"AMOUNT_MISMATCH": bad.n_records}
        assert s["reject_messages"] == {"1644/691": 0, "1644/699": 1}
        base, got = cleared_by_arn(baseline), cleared_by_arn(state)
        assert base.keys() == got.keys()  # every purchase cleared in the end, once
        moved = set(bad.arn.tolist())
        for arn, (window, *money) in got.items():
            b_window, *b_money = base[arn]
            assert money == b_money
            assert window == ("2026-11-04T10:00" if arn in moved else b_window)
        total = sum(int(w.gross_minor) for w in state.settlement.windows)
        assert total == sum(int(w.gross_minor) for w in baseline.settlement.windows)
