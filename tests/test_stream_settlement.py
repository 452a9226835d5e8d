"""Tests for clearing_sim.stream_settlement: per-purchase settlement figures accumulated chunk by chunk."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clearing_sim
from clearing_sim import results, settlement_figures
from clearing_sim.errors import InvariantError
from clearing_sim.model.network import simulate
from clearing_sim.model.traffic import DAY_S
from clearing_sim.settlement_figures import STATUSES, exposure
from clearing_sim.stream_settlement import (
    SCALE_BITS,
    SettlementTxnFigures,
    amount_time_integral,
    exact_amount_time_sum,
    exact_int_sum,
    lag_percentiles,
    time_weighted_mean_minor,
)

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
KEYS = ("transactions_settled", "lag_hours", "exposure", "transactions_by_settlement_status")

finite = st.floats(allow_nan=False, allow_infinity=False)
int64 = st.integers(-(2**63) + 1, 2**63 - 1)


def feed(acc: SettlementTxnFigures, cuts, t_resp, amount, approved, t_settled, status) -> dict:
    """Feed the rows in consecutive chunks ending at `cuts` (sorted positions), then the result."""
    bounds = [0, *cuts, len(t_resp)]
    for i, j in zip(bounds[:-1], bounds[1:]):
        acc.add(t_resp[i:j], amount[i:j], approved[i:j], t_settled[i:j], status[i:j])
    return acc.result()


def in_memory(t_resp, amount, approved, t_settled, status, t_end) -> dict:
    """The four figures as results.build_summary and settlement_figures.settlement_extras compute them."""
    lag_h = (t_settled - t_resp) / 3600.0
    settled = lag_h[~np.isnan(lag_h)]
    return {
        "transactions_settled": int(len(settled)),
        "lag_hours": results.percentiles(settled, (50, 90, 99)),
        "exposure": exposure(t_resp[approved], t_settled[approved], amount[approved], t_end),
        "transactions_by_settlement_status": {s: int((status[approved] == i).sum()) for i, s in enumerate(STATUSES)},
    }


def assert_same(got: dict, want: dict) -> None:
    for k in KEYS:
        assert got[k] == want[k], k
    # == takes 1 for 1.0 and -0.0 for 0.0: the serialised bytes must match too.
    assert json.dumps({k: got[k] for k in KEYS}) == json.dumps({k: want[k] for k in KEYS})


class TestExactArithmetic:
    """The exact sums behind the time-weighted mean equal rational arithmetic, whatever the values."""

    @settings(max_examples=200, deadline=None)
    @given(rows=st.lists(st.tuples(int64, finite), max_size=30))
    def test_amount_time_sum(self, rows):
        a = np.array([r[0] for r in rows], dtype=np.int64)
        t = np.array([r[1] for r in rows], dtype=np.float64)
        want = sum((Fraction(x) * Fraction(y) for x, y in rows), Fraction(0)) * 2**SCALE_BITS
        assert want.denominator == 1
        assert exact_amount_time_sum(a, t) == want.numerator

    @settings(max_examples=100, deadline=None)
    @given(values=st.lists(int64, max_size=30))
    def test_int_sum(self, values):
        assert exact_int_sum(np.array(values, dtype=np.int64)) == sum(values)

    def test_more_rows_than_a_block(self):
        n = (1 << 20) + 12345  # past one exact int64 block
        a = np.full(n, 2**62 + 12345, dtype=np.int64)
        t = np.full(n, 2.0**-30 + 2.0**-82)  # 53 significant bits
        want = Fraction(n) * (2**62 + 12345) * (Fraction(2) ** -30 + Fraction(2) ** -82) * 2**SCALE_BITS
        assert exact_amount_time_sum(a, t) == want.numerator
        assert exact_int_sum(a) == n * (2**62 + 12345)

    @pytest.mark.parametrize("t, a", [
        ([5e-324, 1e-300, 1.0, 3.0e5, 1e300, -2.5, 0.0], [3, -7, 2**62, 11, 1, 2**40, 5]),  # any sign: general path
        ([3.0e5, 86399.999, 299.5, 1e-3, 0.0, -2.5, 5e-324], [2**62, 7, 2**40, 11, 1, 5, 3]),  # fixed point and rest
        ([86399.999, 3600.0, 500.25], [1, 2, 3]),  # fixed point only
    ])
    def test_mixed_exponents_in_one_block(self, t, a):
        t, a = np.array(t), np.array(a, dtype=np.int64)
        want = sum(Fraction(int(x)) * Fraction(float(y)) for x, y in zip(a, t)) * 2**SCALE_BITS
        assert exact_amount_time_sum(a, t) == want

    def test_rejects_non_finite_times(self):
        with pytest.raises(ValueError):
            exact_amount_time_sum(np.array([1], dtype=np.int64), np.array([np.nan]))

    @settings(max_examples=100, deadline=None)
    @given(num=st.integers(-(2**200), 2**200), t_end=st.floats(1e-3, 1e9))
    def test_mean_is_correctly_rounded(self, num, t_end):
        want = round(float(Fraction(num, 2**SCALE_BITS) / Fraction(t_end)), 3)
        assert time_weighted_mean_minor(num, t_end) == want
        assert time_weighted_mean_minor(num, 0.0) == 0.0


class TestExposureMean:
    """settlement_figures.exposure's mean is the exact area under the level over [0, t_end], rounded once."""

    @settings(max_examples=100, deadline=None)
    @given(data=st.data())
    def test_exact_and_order_free(self, data):
        n = data.draw(st.integers(1, 25))
        t_in = np.array(data.draw(st.lists(st.floats(-100, 9000), min_size=n, max_size=n)))
        lag = data.draw(st.lists(st.one_of(st.none(), st.floats(0, 5000)), min_size=n, max_size=n))
        t_out = np.array([np.nan if g is None else t + g for t, g in zip(t_in, lag)])
        amount = np.array(data.draw(st.lists(st.integers(1, 2**40), min_size=n, max_size=n)), dtype=np.int64)
        t_end = data.draw(st.sampled_from([3600.0, 7200.0, 5000.5]))
        got = exposure(t_in, t_out, amount, t_end)["time_weighted_mean_minor"]
        area = Fraction(0)
        for i, o, a in zip(t_in, t_out, amount):
            start, stop = min(Fraction(i), Fraction(t_end)), Fraction(t_end)
            if o == o:
                stop = min(Fraction(o), stop)
            area += int(a) * (stop - start)  # negative when settled before approved, as the level says
        assert got == round(float(area / Fraction(t_end)), 3)
        perm = np.array(data.draw(st.permutations(range(n))))
        assert exposure(t_in[perm], t_out[perm], amount[perm], t_end)["time_weighted_mean_minor"] == got

    def test_seeded_draws_against_rationals(self):
        """Large amounts at millisecond times, where a float dot product of the levels misses the last digit."""
        rng = np.random.default_rng(3)
        for _ in range(300):
            n = int(rng.integers(2, 6))
            t_in = np.round(rng.uniform(0, 3600, n), 3)
            t_out = np.where(rng.random(n) < 0.5, t_in + np.round(rng.uniform(0, 3600, n), 3), np.nan)
            amount = rng.integers(1, 2**40, n)
            # each amount counts from its approval until its settlement or the end, whichever is first
            area = sum(int(a) * ((Fraction(min(o, 7200.0)) if o == o else Fraction(7200.0)) - Fraction(i))
                       for i, o, a in zip(t_in, t_out, amount))
            want = round(float(area / Fraction(7200.0)), 3)
            assert exposure(t_in, t_out, amount, 7200.0)["time_weighted_mean_minor"] == want

    def test_pinned_example(self):
        # The float dot product of the sorted levels gave 1312215907097.589 here; exactly it is ...588 (rounded).
        t_in = np.array([1223.008, 810.418, 1930.739])
        amount = np.array([1030169657768, 138559192560, 456478319306])
        got = exposure(t_in, np.full(3, np.nan), amount, 7200.0)["time_weighted_mean_minor"]
        assert got == 1312215907097.588

    def test_integral_of_one_amount(self):
        # 10 fen from t=100 to the end (1000): 9000 fen*s.
        assert amount_time_integral(np.array([10]), np.array([100.0]), 1000.0) == 9000 * 2**SCALE_BITS


class TestLagPercentiles:
    """lag_percentiles, which partitions in place, gives exactly results.percentiles."""

    @settings(max_examples=100, deadline=None)
    @given(values=st.lists(st.floats(-1e6, 1e6), max_size=40))
    def test_same_as_results(self, values):
        x = np.array(values, dtype=np.float64)
        assert lag_percentiles(x.copy()) == results.percentiles(x, (50, 90, 99))


@st.composite
def purchases(draw, max_rows=40):
    """Purchases with ties: response times on a coarse grid or anywhere, a few settlement times."""
    n = draw(st.integers(0, max_rows))
    t_any = st.one_of(st.integers(0, 32).map(lambda k: k * 450.0), st.floats(-50, 15000))
    t_resp = np.array(draw(st.lists(t_any, min_size=n, max_size=n)), dtype=np.float64)
    windows = draw(st.lists(t_any, min_size=1, max_size=5))
    t_settled = np.array(draw(st.lists(st.one_of(st.none(), st.sampled_from(windows)), min_size=n, max_size=n)),
                         dtype=np.float64)
    amount = np.array(draw(st.lists(st.integers(1, 2**40), min_size=n, max_size=n)), dtype=np.int64)
    approved = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    status = np.array(draw(st.lists(st.integers(0, len(STATUSES) - 1), min_size=n, max_size=n)), dtype=np.int8)
    t_end = draw(st.sampled_from([0.0, 1800.0, 7200.0, 10000.5, 14400.0]))
    cuts = sorted(draw(st.sets(st.integers(0, n), max_size=6))) if n else []
    return t_resp, amount, approved, t_settled, status, t_end, cuts


class TestAgainstInMemory:
    """Fed in any chunks, the accumulator gives exactly the in-memory figures (exposure, lags, statuses)."""

    @settings(max_examples=300, deadline=None)
    @given(p=purchases(), data=st.data())
    def test_declared_settlement_times(self, p, data, tmp_path_factory):
        t_resp, amount, approved, t_settled, status, t_end, cuts = p
        used = sorted({float(x) for x in t_settled[~np.isnan(t_settled)]})
        extra = data.draw(st.lists(st.floats(-100, 20000), max_size=3))  # given but never used: harmless
        declared = data.draw(st.permutations(used + extra))
        acc = SettlementTxnFigures(t_end, tmp_path_factory.mktemp("spill"), settlement_times_s=declared)
        got = feed(acc, cuts, t_resp, amount, approved, t_settled, status)
        assert_same(got, in_memory(t_resp, amount, approved, t_settled, status, t_end))

    @settings(max_examples=300, deadline=None)
    @given(p=purchases())
    def test_discovered_in_response_order(self, p, tmp_path_factory):
        """Rows in response-time order, each settled after its answer (as in a run): no time needs declaring."""
        t_resp, amount, approved, t_settled, status, t_end, cuts = p
        order = np.argsort(t_resp, kind="stable")
        t_resp, amount, approved, t_settled, status = (x[order] for x in (t_resp, amount, approved, t_settled, status))
        t_settled = np.where(t_settled > t_resp, t_settled, np.nan)
        acc = SettlementTxnFigures(t_end, tmp_path_factory.mktemp("spill"))
        got = feed(acc, cuts, t_resp, amount, approved, t_settled, status)
        assert_same(got, in_memory(t_resp, amount, approved, t_settled, status, t_end))

    @settings(max_examples=300, deadline=None)
    @given(p=purchases())
    def test_discovered_in_any_order_is_exact_or_refused(self, p, tmp_path_factory):
        """Without declared times, rows in any order: the figures are exact, or add() refuses; never wrong."""
        t_resp, amount, approved, t_settled, status, t_end, cuts = p
        acc = SettlementTxnFigures(t_end, tmp_path_factory.mktemp("spill"))
        try:
            got = feed(acc, cuts, t_resp, amount, approved, t_settled, status)
        except InvariantError as exc:
            assert "settlement_times_s" in str(exc)
            acc.close()
            return
        assert_same(got, in_memory(t_resp, amount, approved, t_settled, status, t_end))


def _acc(tmp_path, t_end=7200.0, **kw) -> SettlementTxnFigures:
    return SettlementTxnFigures(t_end, tmp_path, **kw)


def _chunk(t_resp, amount, t_settled, approved=None, status=None):
    n = len(t_resp)
    return (np.array(t_resp, dtype=float), np.array(amount, dtype=np.int64),
            np.ones(n, bool) if approved is None else np.array(approved, dtype=bool),
            np.array(t_settled, dtype=float), np.zeros(n, np.int8) if status is None else np.array(status, np.int8))


class TestEdgeCases:
    """The corners of the exposure and the accumulator's contract, each against `exposure` where it applies."""

    def _check(self, tmp_path, chunks, t_end=7200.0, **kw):
        acc = _acc(tmp_path, t_end, **kw)
        for c in chunks:
            acc.add(*c)
        whole = [np.concatenate([c[i] for c in chunks]) for i in range(5)]
        want = in_memory(*whole, t_end)
        got = acc.result()
        assert_same(got, want)
        return got

    def test_no_purchases_at_all(self, tmp_path):
        got = self._check(tmp_path, [_chunk([], [], [])])
        assert got["exposure"] == {"peak_minor": 0, "t_peak_s": None, "time_weighted_mean_minor": 0.0,
                                   "unsettled_at_end_minor": 0, "hourly_minor": [0, 0]}
        assert got["lag_hours"]["p50"] is None and got["transactions_settled"] == 0

    def test_nothing_approved(self, tmp_path):
        got = self._check(tmp_path, [_chunk([10.0, 20.0], [5, 6], [100.0, np.nan], approved=[False, False])])
        assert got["exposure"]["t_peak_s"] is None and got["transactions_settled"] == 1

    def test_nothing_settled(self, tmp_path):
        got = self._check(tmp_path, [_chunk([10.0, 4000.0], [5, 6], [np.nan, np.nan]), _chunk([20.0], [7], [np.nan])])
        assert got["exposure"]["peak_minor"] == 18 and got["exposure"]["t_peak_s"] == 4000.0

    def test_approvals_after_the_end(self, tmp_path):
        got = self._check(tmp_path, [_chunk([10.0, 7100.0, 9000.0], [5, 6, 7], [7150.0, np.nan, np.nan])],
                          t_end=7150.0)
        assert got["exposure"]["peak_minor"] == 13 and got["exposure"]["hourly_minor"] == [5, 6]

    def test_equal_times_across_chunks(self, tmp_path):
        # Approved at 500 in one chunk and settled at 500 in another: the settlement counts first.
        got = self._check(tmp_path, [_chunk([500.0], [9], [np.nan]), _chunk([100.0], [4], [500.0]),
                                     _chunk([500.0], [3], [np.nan])])
        assert got["exposure"]["peak_minor"] == 12 and got["exposure"]["t_peak_s"] == 500.0

    def test_settlement_with_nothing_approved_before_it(self, tmp_path):
        # Settled at the very moment of approval: the level dips to -11 at 50 before the approvals count.
        got = self._check(tmp_path, [_chunk([50.0, 50.0], [9, 2], [50.0, 50.0])])
        assert got["exposure"]["peak_minor"] == 0 and got["exposure"]["t_peak_s"] == 50.0

    def test_settled_before_approved(self, tmp_path):
        # Never in a run, but `exposure` allows it: the level goes -9, -11, -2, and reaches 0 only at 200.
        got = self._check(tmp_path, [_chunk([100.0, 200.0], [9, 2], [10.0, 10.0])])
        assert got["exposure"]["peak_minor"] == 0 and got["exposure"]["t_peak_s"] == 200.0

    def test_minus_zero_is_written_as_zero(self, tmp_path):
        got = self._check(tmp_path, [_chunk([0.0], [5], [np.nan]), _chunk([-0.0, -1e-4], [6, 1], [np.nan, np.nan])])
        assert json.dumps(got["exposure"]["t_peak_s"]) == "0.0"

    def test_a_later_settlement_time_splits_an_interval(self, tmp_path):
        got = self._check(tmp_path, [_chunk([10.0, 20.0], [5, 6], [3000.0, np.nan]),
                                     _chunk([30.0, 40.0], [7, 8], [1000.0, np.nan])])
        assert got["exposure"]["peak_minor"] == 26 and got["exposure"]["t_peak_s"] == 40.0

    def test_declared_time_never_used(self, tmp_path):
        self._check(tmp_path, [_chunk([10.0, 20.0, 30.0], [5, 6, 7], [np.nan, 25.0, np.nan])],
                    settlement_times_s=[15.0, 25.0, 5000.0])

    def test_zero_length_run(self, tmp_path):
        got = self._check(tmp_path, [_chunk([10.0], [5], [20.0])], t_end=0.0)
        assert got["exposure"]["time_weighted_mean_minor"] == 0.0 and got["exposure"]["hourly_minor"] == []

    def test_straddled_time_is_refused(self, tmp_path):
        acc = _acc(tmp_path)
        acc.add(*_chunk([10.0, 900.0], [5, 6], [np.nan, np.nan]))
        with pytest.raises(InvariantError, match="settlement_times_s"):
            acc.add(*_chunk([20.0], [7], [500.0]))
        acc.close()

    def test_straddled_time_declared_is_exact(self, tmp_path):
        self._check(tmp_path, [_chunk([10.0, 900.0], [5, 6], [np.nan, np.nan]), _chunk([20.0], [7], [500.0])],
                    settlement_times_s=[500.0])

    @pytest.mark.parametrize("bad", [
        dict(amount=[0]), dict(status=[4]), dict(status=[-1]), dict(t_resp=[np.nan]), dict(t_settled=[np.inf])])
    def test_bad_chunks_are_refused(self, tmp_path, bad):
        args = dict(t_resp=[1.0], amount=[5], t_settled=[np.nan], status=[0]) | bad
        acc = _acc(tmp_path)
        with pytest.raises(ValueError):
            acc.add(*_chunk(args["t_resp"], args["amount"], args["t_settled"], status=args["status"]))
        acc.close()

    def test_lengths_must_agree(self, tmp_path):
        acc = _acc(tmp_path)
        with pytest.raises(ValueError):
            acc.add(np.zeros(2), np.ones(1, np.int64), np.ones(2, bool), np.zeros(2), np.zeros(2, np.int8))
        acc.close()

    def test_result_is_final_and_drops_the_spill(self, tmp_path):
        acc = _acc(tmp_path)
        acc.add(*_chunk([10.0], [5], [20.0]))
        first = acc.result()
        assert list(tmp_path.iterdir()) == []
        assert acc.result() is first
        with pytest.raises(InvariantError):
            acc.add(*_chunk([10.0], [5], [20.0]))


class TestBoundedState:
    """What the accumulator holds does not grow with the purchases; the spill is 8 bytes per settled one."""

    def test_state_size_is_flat(self, tmp_path):
        rng = np.random.default_rng(7)
        windows = np.array([36000.0, 122400.0, 208800.0])
        acc = SettlementTxnFigures(3 * DAY_S, tmp_path)

        def state_bytes():
            return sum(v.nbytes for v in vars(acc).values() if isinstance(v, np.ndarray))

        sizes, n_settled = [], 0
        for k in range(12):
            n = 50_000
            t = np.sort(rng.uniform(k * 7200.0, (k + 1) * 7200.0, n))
            settled_at = np.where(rng.random(n) < 0.9, windows[rng.integers(1, 3, n)], np.nan)
            acc.add(t, rng.integers(1, 10**6, n), rng.random(n) < 0.95, settled_at,
                    rng.integers(0, 4, n).astype(np.int8))
            n_settled += int((~np.isnan(settled_at)).sum())
            sizes.append(state_bytes())
        acc._spill.flush()
        assert acc._spill_path.stat().st_size == 8 * n_settled
        assert sizes[-1] == sizes[1] < 4096  # 73 hour bins and two settlement times
        acc.close()


# --- the shipped scenarios, fed in chunks, against the in-memory summary ---------------------

SCENARIO_NAMES = ("baseline", "intraday_windows", "t1_single_window", "participant_default", "settlement_delay",
                  "refunds_and_disputes")


@pytest.fixture(scope="module")
def runs():
    """Per scenario: the per-purchase inputs (as results.py derives them) and the in-memory settlement summary."""
    out = {}
    for name in SCENARIO_NAMES:
        state = simulate(clearing_sim.load_scenario(SCENARIOS / f"{name}.yaml"), "fast")
        settled = settlement_figures.PurchaseSettlement.of(state)
        inputs = (state.outcomes["t_response_s"], state.txn["amount_minor"], settled.owed, settled.t_settled_s,
                  settled.status)
        want = results.build_summary(state, results._lag_hours(state, settled), settled)["settlement"]
        windows = [w.t_settled_s for w in state.settlement.windows if w.t_settled_s is not None]
        out[name] = (inputs, want, state.horizon_days * DAY_S, windows)
    return out


@pytest.mark.slow
class TestShippedScenarios:
    """Each shipped scenario's purchases, fed in random consecutive chunks, give its summary's figures exactly."""

    @pytest.mark.parametrize("name", SCENARIO_NAMES)
    @pytest.mark.parametrize("declare", [False, True], ids=["discovered", "declared"])
    def test_same_as_summary(self, runs, name, declare, tmp_path):
        inputs, want, t_end, windows = runs[name]
        n = len(inputs[0])
        rng = np.random.default_rng(sum(map(ord, name)) + declare)
        patterns = [
            [],  # the whole run as one chunk
            sorted(rng.choice(np.arange(1, n), 9, replace=False).tolist()),
            sorted(set(range(0, n, 20_011)) | set(rng.integers(0, n, 5).tolist()) | {1, n - 1}),
        ]
        for i, cuts in enumerate(patterns):
            acc = SettlementTxnFigures(t_end, tmp_path / str(i), settlement_times_s=windows if declare else ())
            got = feed(acc, cuts, *inputs)
            assert_same(got, want)

    def test_scenarios_cover_the_statuses(self, runs):
        """The comparison above is not vacuous: settled, unwound and unsettled purchases all occur."""
        seen = {s for _, want, _, _ in runs.values()
                for s, c in want["transactions_by_settlement_status"].items() if c}
        assert {"settled", "unwound"} <= seen
        assert any(want["exposure"]["unsettled_at_end_minor"] > 0 for _, want, _, _ in runs.values())


@pytest.mark.parametrize("values", [[-0.0, 0.0, -0.125], [0.0, -0.0, -0.125], [-0.0, -0.0]])
def test_zero_lags_print_as_zero_in_any_order(values) -> None:
    """A purchase answered at a subnormal time and settled at 0 lags -0.0 hours: which of the
    equal zeros the max or a percentile picks depends on the order, what summary.json says must not."""
    got = lag_percentiles(np.array(values))
    assert "-0.0" not in json.dumps(got)
    assert got["max"] == 0.0
