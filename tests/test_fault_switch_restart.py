"""Integration: scenarios/switch_restart.yaml gives the outcome its header states, in both modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

import clearing_sim
from clearing_sim.model.authorisation import HOST_ANSWERED, HOST_OUTCOMES
from tests.test_fast_mode import assert_same_tables, without_mode

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "switch_restart.yaml"
RESTART_S = 12 * 3600 + 30 * 60  # 12:30 on day 1
DOWN_S = 90.0


@pytest.fixture(scope="module")
def runs():
    """The restart scenario in detailed and fast mode, and the baseline it copies (fast)."""
    sc = clearing_sim.load_scenario(SCENARIO)
    base = clearing_sim.load_scenario(ROOT / "scenarios" / "baseline.yaml")
    return (clearing_sim.run(sc, mode="detailed"), clearing_sim.run(sc, mode="fast"),
            clearing_sim.run(base, mode="fast"))


class TestStatedOutcome:
    """Authorisations are lost at the restart, each is reversed, and the books still balance."""

    def test_the_scenario_is_baseline_plus_one_restart(self, runs):
        sc = clearing_sim.load_scenario(SCENARIO)
        assert [r.interval_s for r in sc.network.switch_restarts] == [(RESTART_S, RESTART_S + DOWN_S)]
        assert runs[0].summary["authorisations"]["count"] == runs[2].summary["authorisations"]["count"]
        assert runs[2].summary["authorisations"]["lost_in_switch"] == 0

    def test_lost_in_switch_and_every_one_reversed(self, runs):
        a = runs[0].summary["authorisations"]
        assert a["lost_in_switch"] > 0
        assert a["by_final_state"]["lost_in_switch_reversed"] == a["lost_in_switch"]
        assert a["reversals"] >= a["lost_in_switch"]
        assert a["reversal_repeats"] > 0  # 0400s sent while the switch was still down were repeated
        assert sum(b["lost_in_switch"] for b in a["per_issuer"].values()) <= a["lost_in_switch"]
        t = runs[0].transactions
        lost = t["lost_in_switch"].to_numpy(zero_copy_only=False)
        assert lost.sum() == a["lost_in_switch"]
        assert t["reversed"].to_numpy(zero_copy_only=False)[lost].all()
        assert (t["response_code"].to_numpy(zero_copy_only=False)[lost].astype(str) == "91").all()

    def test_only_what_the_switch_held_or_received_while_down_is_lost(self, runs):
        t = runs[0].transactions
        lost = t["lost_in_switch"].to_numpy(zero_copy_only=False)
        t_sw = t["t_switch_in_s"].to_numpy()
        assert (t_sw[lost] < RESTART_S + DOWN_S).all()
        down = (t_sw >= RESTART_S) & (t_sw < RESTART_S + DOWN_S)
        assert np.array_equal(lost & down, down)  # every 0100 reaching the down switch is lost
        held = lost & (t_sw < RESTART_S)  # in flight at the restart: forwarded, the issuer decided
        assert held.any()
        host = t["host_outcome"].to_numpy(zero_copy_only=False).astype(str)
        assert (host[held] == HOST_OUTCOMES[HOST_ANSWERED]).all()
        restored = t["t_reversal_applied_s"].to_numpy()[held]
        assert not np.isnan(restored).any()  # the 0420 reached the issuer and gave open-to-buy back

    def test_conservation_and_nothing_lost_is_cleared(self, runs):
        a = runs[0].summary["authorisations"]
        cleared = runs[0].clearing_records
        assert a["approved_minor"] - a["reversed_approved_minor"] == pc.sum(cleared["amount_minor"]).as_py()
        lost_ids = pc.filter(runs[0].transactions["txn_id"], runs[0].transactions["lost_in_switch"])
        assert not pc.any(pc.is_in(cleared["txn_id"], value_set=lost_ids)).as_py()
        for w in runs[0].summary["settlement"]["windows"]:
            assert sum(w["positions_minor"].values()) == 0

    def test_fast_and_detailed_agree(self, runs):
        d, f, _ = runs
        assert without_mode(d.summary) == without_mode(f.summary)
        assert_same_tables(d, f)


class TestTrace:
    """The ISO 8583 trace: lost ones have a 0100 and no 0110; their 0400 (and 0401 repeats) appear."""

    def test_counts(self, runs):
        a = runs[1].summary["authorisations"]
        counts = runs[1].message_log().counts()
        assert counts["0100"] == a["count"]
        assert counts["0110"] == a["count"] - a["lost_in_switch"]
        assert counts["0400"] == counts["0410"] == a["reversals"]
        assert counts["0401"] == a["reversal_repeats"]
        assert counts["0420"] == counts["0430"] == a["reversal_advices"]


    def test_same_trace_in_both_modes(self, runs):
        d, f = runs[0].message_log(), runs[1].message_log()
        assert d.mti == f.mti and d.txn == f.txn
        assert d.t_s == f.t_s and d.t_sent_s == f.t_sent_s

    def test_a_repeat_encodes_and_decodes(self, runs):
        import iso8583

        from clearing_sim.messages import SPEC

        log = runs[1].message_log()
        n = log.mti.index("0401")
        doc = log.document(n)
        raw, _ = iso8583.encode(dict(doc), SPEC)
        back, _ = iso8583.decode(bytes(raw), SPEC)
        assert back["t"] == "0401" and back["90"][:4] == "0100" and back["11"] == doc["11"]
