"""Tests for clearing_sim.model.defaults: unwind, loss sharing, guarantee fund and cover-1."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim.model.defaults import UNLIMITED, allocate, cover_one, resolve

A, B, C = 0, 1, 2


def cols(transfers):
    """(payer, payee, amount, record) from (payer, payee, amount, record) tuples."""
    arr = np.array(transfers, dtype=np.int64).reshape(-1, 4)
    return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]


# A pays B 100 (record 0), C pays A 80 (record 1), B pays C 30 (record 2):
# A -20, B +70, C -50.
TRIANGLE = [(A, B, 100, 0), (C, A, 80, 1), (B, C, 30, 2)]


def naive_positions(transfers, n):
    out = [0] * n
    for p, q, a, _ in transfers:
        out[p] -= a
        out[q] += a
    return out


class TestUnwind:
    """Unwind removes every record of a defaulter, re-nets, and repeats while others fail."""

    def test_no_default_settles_everything(self):
        res = resolve("unwind", *cols(TRIANGLE), 3, np.full(3, UNLIMITED))
        assert res.settled and res.defaults == () and res.keep is None
        assert res.positions.tolist() == [-20, 70, -50]

    def test_cascade_round_by_round(self):
        # C needs 50 but has 10: its records 1 and 2 go. A then owes 100 on record 0
        # alone (it lost C's 80) and has 50: it fails in round 2 and record 0 goes too.
        res = resolve("unwind", *cols(TRIANGLE), 3, np.array([50, 0, 10]))
        assert [(d.participant, d.round, d.net_debit_minor, d.capacity_minor) for d in res.defaults] == [
            (C, 1, 50, 10), (A, 2, 100, 50)]
        assert res.keep.tolist() == [False, False, False]
        assert res.positions.tolist() == [0, 0, 0]
        assert res.settled

    def test_survivors_keep_their_other_records(self):
        transfers = TRIANGLE + [(A, B, 5, 3)]
        res = resolve("unwind", *cols(transfers), 3, np.array([UNLIMITED, UNLIMITED, 0]))
        assert res.keep.tolist() == [True, False, False, True]
        assert res.positions.tolist() == [-105, 105, 0]

    def test_a_record_goes_whole(self):
        # Record 7 has two legs; only one involves C, but both are unwound.
        transfers = [(A, B, 100, 7), (B, C, 1, 7), (B, A, 40, 8), (C, A, 2, 9)]
        res = resolve("unwind", *cols(transfers), 3, np.array([UNLIMITED, UNLIMITED, 0]))
        assert res.keep.tolist() == [False, False, True, False]
        assert res.positions.tolist() == [40, -40, 0]

    @settings(max_examples=200, deadline=None)
    @given(data=st.data())
    def test_defaulters_end_at_zero_and_survivors_can_fund(self, data):
        n = data.draw(st.integers(2, 6))
        ids = st.integers(0, n - 1)
        transfers = data.draw(st.lists(st.tuples(ids, ids, st.integers(-10**6, 10**6), st.integers(0, 15)),
                                       max_size=40))
        capacity = np.array(data.draw(st.lists(st.integers(0, 2 * 10**6), min_size=n, max_size=n)))
        res = resolve("unwind", *cols(transfers), n, capacity)
        assert sum(res.positions.tolist()) == 0
        kept = [t for t, k in zip(transfers, res.keep if res.keep is not None else [True] * len(transfers)) if k]
        assert res.positions.tolist() == naive_positions(kept, n)
        assert all(-res.positions[i] <= capacity[i] for i in range(n))
        for d in res.defaults:
            assert res.positions[d.participant] == 0
            assert not any(k and d.participant in (t[0], t[1]) for t, k in zip(transfers, res.keep))


class TestLossSharing:
    """Survivors cover a defaulter's shortfall pro rata to the key, in whole fen, summing to zero."""

    def test_equal_key(self):
        res = resolve("loss_sharing", *cols(TRIANGLE), 3, np.array([UNLIMITED, UNLIMITED, 10]), loss_key="equal")
        # C pays its 10; the 40 it cannot pay is shared 20 / 20 by A and B.
        assert res.positions.tolist() == [-40, 50, -10]
        assert res.loss_share.tolist() == [20, 20, 0]
        assert res.shortfall_minor == 40

    def test_bilateral_exposure_key(self):
        # C owed A 80 bilaterally and owed B nothing net (B owed C 30): A bears it all.
        res = resolve("loss_sharing", *cols(TRIANGLE), 3, np.array([UNLIMITED, UNLIMITED, 10]),
                      loss_key="bilateral_exposure")
        assert res.positions.tolist() == [-60, 70, -10]

    def test_fixed_key_with_remainder(self):
        res = resolve("loss_sharing", *cols(TRIANGLE), 3, np.array([UNLIMITED, UNLIMITED, 9]),
                      loss_key="fixed", weights=np.array([1.0, 2.0, 5.0]))
        # Shortfall 41 split 1:2 -> 13.67 / 27.33 -> 14 / 27 by largest remainder.
        assert res.loss_share.tolist() == [14, 27, 0]
        assert res.positions.tolist() == [-34, 43, -9]

    def test_a_survivor_that_cannot_pay_its_share_defaults_next(self):
        res = resolve("loss_sharing", *cols(TRIANGLE), 3, np.array([30, UNLIMITED, 10]), loss_key="equal")
        # Round 1: C short 40 -> A and B 20 each -> A needs 40 > 30: round 2, A short 10 -> B.
        assert [(d.participant, d.round) for d in res.defaults] == [(C, 1), (A, 2)]
        assert res.positions.tolist() == [-30, 40, -10]
        assert res.loss_share.tolist() == [10, 30, 0]  # A bore 10 of C's loss before it failed
        assert res.shortfall_minor == 40
        assert res.settled

    def test_no_surviving_weight_falls_back_to_equal(self):
        res = resolve("loss_sharing", *cols(TRIANGLE), 3, np.array([UNLIMITED, UNLIMITED, 10]),
                      loss_key="fixed", weights=np.array([0.0, 0.0, 3.0]))
        assert res.loss_share.tolist() == [20, 20, 0]


class TestGuaranteeFund:
    """The defaulter's own contribution goes first, then survivors' contributions pro rata, then loss sharing."""

    def test_fund_then_nothing_left_to_share(self):
        fund = np.array([10, 30, 15])
        res = resolve("guarantee_fund", *cols(TRIANGLE), 3, np.array([UNLIMITED, UNLIMITED, 10]), fund=fund)
        # C short 40: 15 from its own contribution, 25 from A:B = 10:30 -> 6 / 19.
        assert res.fund_draw.tolist() == [6, 19, 15]
        assert res.loss_share.tolist() == [0, 0, 0]
        assert res.positions.tolist() == [-26, 51, -25]
        assert res.account_flow.tolist() == [-20, 70, -10]  # survivors' accounts untouched by the fund

    def test_fund_too_small_then_loss_sharing(self):
        fund = np.array([2, 2, 0])
        res = resolve("guarantee_fund", *cols(TRIANGLE), 3, np.array([UNLIMITED, UNLIMITED, 10]), fund=fund,
                      loss_key="equal")
        assert res.fund_draw.tolist() == [2, 2, 0]
        assert res.loss_share.tolist() == [18, 18, 0]
        assert sum(res.positions.tolist()) == 0


class TestRulesKeepZeroSum:
    """Whatever the rule, key, capacities and transfers, settled positions sum to exactly zero."""

    @settings(max_examples=300, deadline=None)
    @given(data=st.data())
    def test_zero_sum_and_funding_within_capacity(self, data):
        n = data.draw(st.integers(2, 6))
        ids = st.integers(0, n - 1)
        transfers = data.draw(st.lists(st.tuples(ids, ids, st.integers(0, 2**40), st.integers(0, 9)), max_size=30))
        rule = data.draw(st.sampled_from(["unwind", "loss_sharing", "guarantee_fund"]))
        key = data.draw(st.sampled_from(["equal", "fixed", "bilateral_exposure"]))
        capacity = np.array(data.draw(st.lists(st.integers(0, 2**41), min_size=n, max_size=n)), dtype=np.int64)
        fund = np.array(data.draw(st.lists(st.integers(0, 2**39), min_size=n, max_size=n)), dtype=np.int64)
        weights = np.array(data.draw(st.lists(st.floats(0, 10), min_size=n, max_size=n)))
        res = resolve(rule, *cols(transfers), n, capacity, fund=fund, loss_key=key, weights=weights)
        assert res.settled
        assert sum(res.positions.tolist()) == 0
        flow = res.account_flow
        defaulted = set(res.defaulted)
        for i in range(n):
            assert -flow[i] <= capacity[i]  # nobody pays more than it can from its account
            assert 0 <= res.fund_draw[i] <= fund[i]
            assert res.loss_share[i] >= 0
            if rule != "unwind" and i in defaulted:
                assert -flow[i] == capacity[i]  # a defaulter pays all it can
            elif rule != "unwind":
                assert res.positions[i] == res.obligations[i] - res.fund_draw[i] - res.loss_share[i]
        unpaid = sum(max(0, int(res.positions[d] - res.obligations[d])) for d in defaulted)
        assert res.shortfall_minor == (unpaid if rule != "unwind" else 0)


class TestAllocate:
    """Pro-rata splits in whole fen add up exactly and stay within one fen of the exact quota."""

    @given(total=st.integers(0, 2**62), weights=st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
    def test_sums_and_bounds(self, total, weights):
        if sum(weights) == 0:
            return
        fr = [Fraction(w) for w in weights]
        shares = allocate(total, fr)
        assert sum(shares) == total
        for s, w in zip(shares, fr):
            assert abs(s - total * w / sum(fr)) < 1

    def test_ties_go_to_the_lower_index(self):
        assert allocate(1, [Fraction(1)] * 3) == [1, 0, 0]


class TestCoverOne:
    """Cover-1 fails the largest net debtor and says whether anyone else would then default."""

    def test_cascade_means_it_does_not_complete(self):
        # C is the largest net debtor (50); with C out, A owes 100 and has 60.
        got = cover_one("unwind", *cols(TRIANGLE), 3, np.array([60, UNLIMITED, UNLIMITED]))
        assert got == {"participant": C, "net_debit_minor": 50, "completes": False, "further_defaults": [A],
                       "records_unwound": 3}

    def test_completes_when_others_can_fund(self):
        got = cover_one("loss_sharing", *cols(TRIANGLE), 3, np.full(3, UNLIMITED), loss_key="equal")
        assert got["participant"] == C and got["completes"] and got["further_defaults"] == []

    def test_no_net_debtor(self):
        assert cover_one("unwind", *cols([]), 3, np.full(3, UNLIMITED)) is None

    def test_unknown_rule(self):
        with pytest.raises(ValueError, match="unknown default rule"):
            resolve("bail_out", *cols(TRIANGLE), 3, np.full(3, UNLIMITED))
