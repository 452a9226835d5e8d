"""Tests for clearing_sim.settlement_figures and the settlement scenarios in scenarios/."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clearing_sim
from clearing_sim.scenario import Calendar, SettlementAccount, parse_scenario
from clearing_sim.settlement_figures import STATUSES, carries_obligation, exposure
from tests.conftest import SMALL_YAML

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


class TestExposure:
    """Exposure over time equals a naive step-by-step sum of what was approved and not yet settled."""

    @settings(max_examples=100, deadline=None)
    @given(data=st.data())
    def test_against_naive(self, data):
        n = data.draw(st.integers(0, 30))
        t_in = np.array(data.draw(st.lists(st.integers(0, 100), min_size=n, max_size=n)), dtype=float)
        lag = data.draw(st.lists(st.one_of(st.none(), st.integers(0, 50)), min_size=n, max_size=n))
        t_out = np.array([np.nan if g is None else t + g for t, g in zip(t_in, lag)])
        amount = np.array(data.draw(st.lists(st.integers(1, 2**40), min_size=n, max_size=n)), dtype=np.int64)
        t_end = 7200.0
        got = exposure(t_in, t_out, amount, t_end)

        def level(t):  # value approved at or before t and not settled at or before t
            return sum(int(a) for i, o, a in zip(t_in, t_out, amount) if i <= t and not (o <= t))

        grid = sorted(set(t_in.tolist()) | {x for x in t_out.tolist() if x == x} | {0.0})
        assert got["peak_minor"] == max([0] + [level(t) for t in grid])
        steps = grid + [t_end]
        integral = sum(level(steps[k]) * (steps[k + 1] - steps[k]) for k in range(len(grid)))
        assert got["time_weighted_mean_minor"] == pytest.approx(integral / t_end, rel=1e-9, abs=1e-3)
        assert got["hourly_minor"] == [level(3600.0), level(7200.0)]


def _exposure_with_lexsort(t_in_s, t_out_s, amount_minor, t_end_s):
    """`exposure` as it was before it sorted by time alone: every event in (time, change) order."""
    from clearing_sim.stream_settlement import amount_time_integral, time_weighted_mean_minor

    settled = ~np.isnan(t_out_s)
    times = np.concatenate([t_in_s, t_out_s[settled]])
    delta = np.concatenate([amount_minor, -amount_minor[settled]]).astype(np.int64)
    order = np.lexsort((delta, times))
    times = times[order]
    level = np.cumsum(delta[order], dtype=np.int64)
    hours = int(np.ceil(t_end_s / 3600))
    ends = (np.arange(hours) + 1) * 3600
    if len(times) == 0:
        return {"peak_minor": 0, "t_peak_s": None, "time_weighted_mean_minor": 0.0, "unsettled_at_end_minor": 0,
                "hourly_minor": [0] * hours}
    k = int(np.argmax(level))
    area = (amount_time_integral(amount_minor, t_in_s, t_end_s)
            - amount_time_integral(amount_minor[settled], t_out_s[settled], t_end_s))
    at = np.searchsorted(times, ends, side="right") - 1
    hourly = np.where(at >= 0, level[np.maximum(at, 0)], 0)
    return {
        "peak_minor": int(max(level[k], 0)),
        "t_peak_s": round(float(times[k]), 3) + 0.0,
        "time_weighted_mean_minor": time_weighted_mean_minor(area, t_end_s),
        "unsettled_at_end_minor": int(level[-1]),
        "hourly_minor": [int(x) for x in hourly],
    }


class TestExposureAsBefore:
    """`exposure` gives what the full (time, change) sort gave, to the bit, also when many events share a time."""

    @settings(max_examples=300, deadline=None)
    @given(data=st.data())
    def test_against_lexsort(self, data):
        n = data.draw(st.integers(0, 40))
        times = st.sampled_from([-0.0, 0.0, 1.5, 3600.0, 3600.5, 7000.0, 9000.0])  # few: many ties
        t_in = np.array(data.draw(st.lists(times, min_size=n, max_size=n)), dtype=float)
        t_out = np.array(data.draw(st.lists(st.one_of(st.just(np.nan), times), min_size=n, max_size=n)), dtype=float)
        amount = np.array(data.draw(st.lists(st.integers(-5, 2**40), min_size=n, max_size=n)), dtype=np.int64)
        assert exposure(t_in, t_out, amount, 7200.0) == _exposure_with_lexsort(t_in, t_out, amount, 7200.0)

    def test_shipped_scenarios(self):
        from clearing_sim.model.network import simulate
        from clearing_sim.settlement_figures import txn_settlement

        for name in ("baseline.yaml", "participant_default.yaml", "refunds_and_disputes.yaml"):
            state = simulate(clearing_sim.load_scenario(SCENARIOS / name), "fast")
            o = state.outcomes
            owed = carries_obligation(o["response_code"], o["route"], o["reversed"])
            args = (o["t_response_s"][owed], txn_settlement(state)[1][owed],
                    state.txn["amount_minor"][owed], state.horizon_days * 86_400.0)
            assert exposure(*args) == _exposure_with_lexsort(*args), name


@pytest.mark.parametrize("mode", ["fast", "detailed"])
def test_only_purchases_owed_to_the_network_count(mode):
    """Approvals kept inside the bank and approvals reversed owe no presentment: they are not
    exposure and have no settlement status. The stress scenario has both (an on-us issuer
    kept in the bank, acquirer timeouts), and every window settles, so nothing stays unsettled."""
    from tests.auth_scenarios import stress_scenario

    r = clearing_sim.run(stress_scenario(), mode=mode)
    s, a = r.summary["settlement"], r.summary["authorisations"]
    t = r.transactions
    route = np.array(t.column("route").to_pylist())
    rev = t.column("reversed").to_numpy(zero_copy_only=False)
    approved = t.column("approved").to_numpy(zero_copy_only=False)
    assert (approved & (route == "in_bank")).sum() > 100 and (approved & rev).sum() > 100  # both kinds occur
    owed = approved & (route == "network") & ~rev
    status = np.array(t.column("settlement_status").to_pylist(), dtype=object)
    assert [x is None for x in status] == (~owed).tolist()
    by_status = s["transactions_by_settlement_status"]
    assert by_status == {k: int((status[owed] == k).sum()) for k in STATUSES}
    assert sum(by_status.values()) == a["approved"] - a["reversed_approved"] == owed.sum()
    assert all(w["status"] == "SETTLED" for w in s["windows"]) and r.summary["clearing"]["records_rejected"] == 0
    assert by_status["unsettled"] == 0 and s["exposure"]["unsettled_at_end_minor"] == 0
    col = {c: t.column(c).to_numpy() for c in ("t_response_s", "t_settled_s", "amount_minor")}
    want = exposure(col["t_response_s"][owed], col["t_settled_s"][owed], col["amount_minor"][owed],
                    r.summary["simulated_days"] * 86_400.0)
    assert s["exposure"] == want
    # The key figures' fallback and the report's plot read the table the same way.
    from clearing_sim import metrics, report

    assert metrics._peak_exposure({}, lambda: metrics.transaction_columns(t)) == want["peak_minor"]
    assert report._Exposure(report.Batches.of_table(t, batch_rows=997), None).peak_level == want["peak_minor"]


@pytest.fixture(scope="module")
def t1():
    return clearing_sim.run(SCENARIOS / "t1_single_window.yaml")


@pytest.fixture(scope="module")
def intraday():
    return clearing_sim.run(SCENARIOS / "intraday_windows.yaml")


@pytest.fixture(scope="module")
def default_run():
    return clearing_sim.run(SCENARIOS / "participant_default.yaml")


@pytest.mark.slow
class TestIntradayAgainstT1:
    """Four T+0 windows a day settle sooner than one T+1 window on the same traffic, and both report liquidity."""

    def test_same_traffic(self, t1, intraday):
        assert t1.summary["authorisations"]["approved_minor"] == intraday.summary["authorisations"]["approved_minor"]
        assert t1.summary["clearing"]["amount_cleared_minor"] == intraday.summary["clearing"]["amount_cleared_minor"]

    def test_median_lag_is_shorter(self, t1, intraday):
        lag_t1 = t1.summary["settlement"]["lag_hours"]["p50"]
        lag_intraday = intraday.summary["settlement"]["lag_hours"]["p50"]
        assert lag_intraday < lag_t1

    @pytest.mark.parametrize("which", ["t1", "intraday"])
    def test_reports_peak_net_debit_and_exposure(self, which, request):
        s = request.getfixturevalue(which).summary["settlement"]
        peak = s["peak_net_debit_minor"]
        assert set(peak) == set(request.getfixturevalue(which).summary["participants"])
        for w in s["windows"]:
            for pid, p in w["obligations_minor"].items():
                assert peak[pid] >= -p
        assert max(peak.values()) > 0
        e = s["exposure"]
        assert e["peak_minor"] >= e["time_weighted_mean_minor"] > 0
        assert e["unsettled_at_end_minor"] == 0
        assert all(sum(w["positions_minor"].values()) == 0 for w in s["windows"])

    def test_intraday_needs_less_peak_liquidity(self, t1, intraday):
        a = t1.summary["settlement"]
        b = intraday.summary["settlement"]
        assert b["exposure"]["peak_minor"] < a["exposure"]["peak_minor"]
        assert max(b["peak_net_debit_minor"].values()) < max(a["peak_net_debit_minor"].values())


@pytest.mark.slow
class TestParticipantDefault:
    """participant_default.yaml shows BOC's default, the unwound records, the cascade and zero-sum positions."""

    def test_defaulter_cascade_and_unwound_records(self, default_run):
        s = default_run.summary["settlement"]
        w = s["windows"][0]
        assert w["status"] == "SETTLED"
        assert [(d["participant"], d["round"]) for d in w["defaults"]] == [("BOC", 1), ("ICBC", 2)]
        assert w["cascade_rounds"] == 2
        assert w["unwound"]["records"] > 0
        assert w["positions_minor"]["BOC"] == 0 and w["positions_minor"]["ICBC"] == 0
        assert sum(w["positions_minor"].values()) == 0
        assert sum(w["obligations_minor"].values()) == 0
        assert s["defaulted_participants"] == ["ICBC", "BOC"]
        assert s["records_unwound"] == sum(x["unwound"]["records"] for x in s["windows"])

    def test_unwound_records_in_the_tables(self, default_run):
        s = default_run.summary["settlement"]
        recs = default_run.clearing_records.to_pandas()
        unwound = recs[recs["settlement_status"] == "unwound"]
        assert len(unwound) == s["records_unwound"]
        # Every unwound record has BOC or ICBC as issuer or acquirer; no other record does.
        touches = recs["issuer"].isin(["BOC", "ICBC"]) | recs["acquirer"].isin(["BOC", "ICBC"])
        first = recs["settlement_window"] == s["windows"][0]["id"]
        assert (touches[first] == (recs["settlement_status"][first] == "unwound")).all()
        txns = default_run.transactions.to_pandas()
        assert txns.loc[txns["settlement_status"] == "unwound", "settlement_lag_h"].isna().all()
        rows = default_run.settlements.to_pandas()
        first_rows = rows[rows["window_id"] == s["windows"][0]["id"]]
        assert first_rows["position_minor"].sum() == 0
        assert set(first_rows.loc[first_rows["defaulted"], "participant"]) == {"BOC", "ICBC"}

    def test_exposure_keeps_unwound_value(self, default_run):
        e = default_run.summary["settlement"]["exposure"]
        assert e["unsettled_at_end_minor"] > 0

    def test_same_seed_same_summary(self, default_run):
        again = clearing_sim.run(SCENARIOS / "participant_default.yaml")
        assert json.dumps(again.summary) == json.dumps(default_run.summary)
        assert again.settlements.equals(default_run.settlements)


def _small(**settlement):
    base = parse_scenario(SMALL_YAML, "small.yaml")
    return attrs.evolve(base, settlement=attrs.evolve(base.settlement, **settlement))


class TestEveryRuleEndToEnd:
    """Each default rule runs end to end: a tight issuer defaults, books balance, figures add up."""

    @pytest.mark.parametrize("rule", ["unwind", "loss_sharing", "guarantee_fund"])
    def test_rule(self, rule):
        accounts = (SettlementAccount("BANKB", opening_balance_minor=1_000,
                                      guarantee_fund_minor=500 if rule == "guarantee_fund" else 0),
                    SettlementAccount("BANKC", opening_balance_minor=10**9,
                                      guarantee_fund_minor=2_000 if rule == "guarantee_fund" else 0))
        r = clearing_sim.run(_small(accounts=accounts, default_rule=rule, loss_sharing_key="equal"))
        s = r.summary["settlement"]
        first = s["windows"][0]
        assert first["status"] == "SETTLED"
        assert "BANKB" in [d["participant"] for d in first["defaults"]]
        assert sum(first["positions_minor"].values()) == 0
        assert first["funding"]["paid_in_minor"] == first["funding"]["paid_out_minor"]
        if rule == "unwind":
            assert first["unwound"]["records"] > 0 and first["positions_minor"]["BANKB"] == 0
        else:
            assert first["unwound"]["records"] == 0
            assert first["shortfall_minor"] > 0
            paid_by_b = -first["positions_minor"]["BANKB"]
            drawn_b = first.get("guarantee_fund_draw_minor", {}).get("BANKB", 0)
            assert paid_by_b == 1_000 + drawn_b  # all its balance, and its own fund contribution
        if rule == "guarantee_fund":
            # BANKB's own 500 first; what it still leaves unpaid comes from BANKC's 2,000, then loss sharing.
            draws = first["guarantee_fund_draw_minor"]
            assert draws["BANKB"] == 500
            assert draws["BANKC"] == min(first["shortfall_minor"], 2_000)
            shared = sum(first.get("loss_share_minor", {}).values())
            assert shared == first["shortfall_minor"] - draws["BANKC"]


class TestHorizonFollowsTheCalendar:
    """A window pushed past a long holiday still falls inside the simulated run and settles."""

    def test_friday_before_a_three_day_holiday(self):
        sc = _small(calendar=Calendar(holidays=("2026-11-09", "2026-11-10", "2026-11-11")))
        sc = attrs.evolve(sc, run=attrs.evolve(sc.run, start_date="2026-11-06"))  # a Friday
        r = clearing_sim.run(sc)
        ids = [w["id"] for w in r.summary["settlement"]["windows"]]
        assert ids[0] == "2026-11-12T10:00"  # Thursday: weekend, then three holidays
        assert all(w["status"] == "SETTLED" for w in r.summary["settlement"]["windows"])
