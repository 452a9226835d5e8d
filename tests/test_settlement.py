"""Tests for clearing_sim.model.settlement: windows, their state machine, funding, defaults and finality."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from clearing_sim.errors import InvariantError
from clearing_sim.model.settlement import (ObligationKind, SettlementSystem, SettlementWindow, WindowState,
                                           WindowStateError)
from clearing_sim.model.traffic import DAY_S
from clearing_sim.scenario import Calendar, Settlement, SettlementAccount, parse_scenario
from tests.conftest import SMALL_YAML

HOUR = 3600.0
BASE = parse_scenario(SMALL_YAML, "small.yaml")  # participants BANKA, BANKB, BANKC, NETWORK; Monday start
N = len(BASE.participant_ids)
NETWORK = N - 1


def scenario(**settlement):
    return attrs.evolve(BASE, settlement=Settlement(**settlement))


def presentment(w_or_system, record, issuer, acquirer, amount, t=None):
    """The three legs of a cleared record, as clearing passes them."""
    kinds = [ObligationKind.PRESENTMENT, ObligationKind.SCHEME_FEE_ISSUER, ObligationKind.SCHEME_FEE_ACQUIRER]
    args = (kinds, [record] * 3, [issuer, issuer, acquirer], [acquirer, NETWORK, NETWORK],
            [amount - amount // 100, 1, 2])
    if t is None:
        return w_or_system.add_obligations(*args)
    return w_or_system.add_obligations(t, *args)


class TestStateMachine:
    """A window moves OPEN -> CLOSED -> PENDING_SETTLEMENT -> SETTLED | ABORTED, and nothing else."""

    def test_allowed_path_and_history(self):
        system = SettlementSystem(None, scenario())
        w = presentment(system, 0, 0, 2, 10_000, t=HOUR)
        system.settle(w)
        assert w.state is WindowState.SETTLED
        assert [(t.from_state.value, t.to_state.value) for t in w.transitions] == [
            ("OPEN", "CLOSED"), ("CLOSED", "PENDING_SETTLEMENT"), ("PENDING_SETTLEMENT", "SETTLED")]
        assert isinstance(w.transitions, tuple)  # a copy: the history cannot be edited through it

    @pytest.mark.parametrize("to", [WindowState.PENDING_SETTLEMENT, WindowState.SETTLED, WindowState.ABORTED])
    def test_open_window_cannot_skip(self, to):
        w = SettlementWindow(0, "W0", 10 * HOUR, N)
        with pytest.raises(WindowStateError, match=f"window W0 is OPEN: it cannot become {to.value}"):
            w.move(to, 0.0, "test")
        assert w.state is WindowState.OPEN and w.transitions == ()

    def test_settled_window_is_final(self):
        system = SettlementSystem(None, scenario())
        w = presentment(system, 0, 0, 2, 10_000, t=HOUR)
        system.settle(w)
        before = w.fingerprint()
        for to in WindowState:
            with pytest.raises(WindowStateError):
                w.move(to, 0.0, "again")
        with pytest.raises(WindowStateError, match="is not open"):
            presentment(w, 1, 0, 2, 5)
        with pytest.raises(WindowStateError, match="cannot be aborted"):
            w.abort(0.0, "too late")
        with pytest.raises(ValueError):
            w.positions_minor[0] = 1  # read-only
        assert w.fingerprint() == before
        w.check_final()

    def test_tampering_is_caught_at_the_end(self):
        system = SettlementSystem(None, scenario())
        w = presentment(system, 0, 0, 2, 10_000, t=HOUR)
        system.settle(w)
        w.gross_settled_minor += 1
        with pytest.raises(InvariantError, match="changed after it became SETTLED"):
            system.check_invariants()

    def test_abort_settles_nothing(self):
        system = SettlementSystem(None, scenario())
        w = presentment(system, 0, 0, 2, 10_000, t=HOUR)
        w.close(w.t_close_s)
        w.abort(w.t_close_s, "operator: settlement bank closed")
        assert w.state is WindowState.ABORTED
        assert w.positions_minor.tolist() == [0] * N
        assert w.obligations_minor.sum() == 0 and w.obligations_minor.any()

    def test_bad_obligations(self):
        w = SettlementWindow(0, "W0", 10 * HOUR, N)
        with pytest.raises(ValueError, match="outside"):
            w.add_obligations(ObligationKind.CHARGEBACK, 1, [N], [0], [5])
        with pytest.raises(ValueError, match="integer fen"):
            w.add_obligations(ObligationKind.CHARGEBACK, 1, [0], [1], [5.0])
        with pytest.raises(ValueError, match="differ in length"):
            w.add_obligations(ObligationKind.CHARGEBACK, 1, [0, 1], [1], [5])


class TestWindowAssignment:
    """Obligations go to the first window of T+N business days (T+0: the next window that day)."""

    def test_t1_skips_the_weekend(self):
        system = SettlementSystem(None, scenario(windows=("10:00",), lag_days=1))
        friday_night = 4 * DAY_S + 23 * HOUR
        assert system.window_time_for(friday_night) == 7 * DAY_S + 10 * HOUR  # Monday 10:00

    def test_t0_next_window_same_day_or_next_business_day(self):
        system = SettlementSystem(None, scenario(windows=("09:00", "15:00"), lag_days=0))
        assert system.window_time_for(10 * HOUR) == 15 * HOUR
        assert system.window_time_for(16 * HOUR) == DAY_S + 9 * HOUR
        assert system.window_time_for(5 * DAY_S + 8 * HOUR) == 7 * DAY_S + 9 * HOUR  # Saturday -> Monday

    def test_holiday_and_working_saturday(self):
        cal = Calendar(holidays=("2026-11-03",), working_days=("2026-11-07",))
        system = SettlementSystem(None, scenario(windows=("10:00",), lag_days=1, calendar=cal))
        assert system.window_time_for(0 * DAY_S + 20 * HOUR) == 2 * DAY_S + 10 * HOUR  # Tuesday is a holiday
        assert system.window_time_for(4 * DAY_S + 20 * HOUR) == 5 * DAY_S + 10 * HOUR  # worked Saturday

    def test_cutoff_at_the_window_second_goes_to_the_next_window(self):
        system = SettlementSystem(None, scenario(windows=("09:00", "15:00"), lag_days=0))
        w = presentment(system, 0, 0, 2, 100, t=9 * HOUR - 60)
        system.settle(w)
        w2 = presentment(system, 1, 0, 2, 100, t=9 * HOUR)
        assert w2 is not w and w2.t_close_s == 15 * HOUR


    @pytest.mark.parametrize("mode", ["detailed", "fast"])
    def test_a_cycle_at_the_window_second_clears_into_that_window(self, mode):
        """In a run, cycles come before windows close at one instant: a cut-off at 12:30 settles T+0 at 12:30.

        The window is created by the day's first cycle for the 23:45 one too, so the order does not
        depend on which process made the window (docs/settlement.md said: the next window)."""
        import clearing_sim

        sc = attrs.evolve(BASE, settlement=Settlement(windows=("12:30", "23:45"), lag_days=0))
        records = clearing_sim.run(sc, mode=mode).clearing_records.to_pydict()
        pairs = {(c, w) for c, w in zip(records["cycle"], records["settlement_window"])}
        assert {c for c, _ in pairs} >= {"D001-12:30", "D001-23:45"}
        assert all(w == f"2026-11-{int(c[1:4]) + 1:02d}T{c[5:]}" for c, w in pairs), pairs

    @pytest.mark.parametrize("mode", ["detailed", "fast"])
    def test_a_cycle_at_the_window_second_clears_into_it_after_a_cycle_in_between(self, mode):
        """The same holds when the window was made by an earlier cycle (12:30) and another cycle (18:00)
        came in between: the 23:45 cycle's timeout, scheduled at 18:00, came after the window's close
        (scheduled at 12:30), and the 23:45 cycle settled a day later, in the next 23:45 window."""
        import clearing_sim

        sc = attrs.evolve(BASE, settlement=Settlement(windows=("23:45",), lag_days=0),
                          clearing=attrs.evolve(BASE.clearing, cutoffs=("12:30", "18:00", "23:45")))
        records = clearing_sim.run(sc, mode=mode).clearing_records.to_pydict()
        pairs = {(c, w) for c, w in zip(records["cycle"], records["settlement_window"])}
        assert ("D001-12:30", "2026-11-02T23:45") in pairs
        assert ("D001-23:45", "2026-11-02T23:45") in pairs, pairs
        assert ("D001-23:45", "2026-11-03T23:45") not in pairs


class TestUnwindInAWindow:
    """A defaulter's records are unwound, the cascade reported, and survivors' positions still sum to zero."""

    def test_unwind_with_cascade(self):
        accounts = (SettlementAccount("BANKA", opening_balance_minor=0),
                    SettlementAccount("BANKB", opening_balance_minor=5_000))
        system = SettlementSystem(None, scenario(accounts=accounts))
        # BANKA's cardholders buy 10,000 at BANKB's merchants; BANKB's buy 9,000 at BANKC's.
        presentment(system, 0, 0, 1, 10_000, t=HOUR)
        w = presentment(system, 1, 1, 2, 9_000, t=HOUR)
        system.settle(w)
        d = w.resolution.defaults
        assert [(x.participant, x.round) for x in d] == [(0, 1), (1, 2)]
        assert w.unwound_record_ids.tolist() == [0, 1]
        assert w.positions_minor.tolist() == [0, 0, 0, 0]
        assert w.state is WindowState.SETTLED
        assert "round 2: BANKB cannot fund" in w.transitions[-1].reason


# --------------------------------------------------------------------------------------
# Stateful test: random presentments, chargebacks, closes, operator aborts and defaults.
# --------------------------------------------------------------------------------------

class SettlementMachine(RuleBasedStateMachine):
    """Windows driven through random obligations, closes, aborts and defaults stay zero-sum and final."""

    RULE = "unwind"

    @initialize(key=st.sampled_from(["bilateral_exposure", "equal", "fixed"]),
                balances=st.lists(st.integers(0, 20_000), min_size=N, max_size=N),
                funds=st.lists(st.integers(0, 5_000), min_size=N, max_size=N),
                limited=st.lists(st.booleans(), min_size=N, max_size=N))
    def setup(self, key, balances, funds, limited):
        rule_ = self.RULE
        ids = BASE.participant_ids
        accounts = tuple(
            SettlementAccount(ids[i], opening_balance_minor=balances[i], collateral_minor=balances[i] // 10,
                              guarantee_fund_minor=funds[i] if rule_ == "guarantee_fund" else 0,
                              loss_share_weight=float(i + 1) if key == "fixed" else None)
            for i in range(N) if limited[i] or i == 0)
        self.system = SettlementSystem(None, scenario(windows=("10:00", "15:00"), lag_days=0, accounts=accounts,
                                                      default_rule=rule_, loss_sharing_key=key))
        self.t = 8 * HOUR
        self.next_record = 0
        self.presented: list[tuple[int, int, int, int]] = []  # record, issuer, acquirer, amount
        self.transfers: dict[int, list[tuple[int, int, int, int]]] = {}  # window -> (payer, payee, amount, record)
        self.snapshots: dict[int, tuple] = {}
        self.histories: dict[int, tuple] = {}

    def _add(self, kind, legs):
        rec = self.next_record
        self.next_record += 1
        payer, payee, amount = zip(*legs)
        w = self.system.add_obligations(self.t, [kind] * len(legs), [rec] * len(legs), payer, payee, amount)
        self.transfers.setdefault(w.index, []).extend((p, q, a, rec) for p, q, a in legs)
        return rec

    @rule(issuer=st.integers(0, N - 2), acquirer=st.integers(0, N - 2), amount=st.integers(1, 20_000))
    def present(self, issuer, acquirer, amount):
        fee = amount // 500
        rec = self._add(ObligationKind.PRESENTMENT,
                        [(issuer, acquirer, amount - amount // 100), (issuer, NETWORK, fee), (acquirer, NETWORK, fee)])
        self.presented.append((rec, issuer, acquirer, amount))

    @precondition(lambda self: self.presented)
    @rule(data=st.data())
    def chargeback(self, data):
        _, issuer, acquirer, amount = data.draw(st.sampled_from(self.presented))
        self._add(ObligationKind.CHARGEBACK, [(acquirer, issuer, amount - amount // 100)])

    @rule(hours=st.floats(0.5, 30))
    def advance(self, hours):
        """Time passes; every window due by then closes and settles, in time order."""
        self.t += hours * HOUR
        for w in sorted(self.system.windows, key=lambda w: w.t_close_s):
            if w.state is WindowState.OPEN and w.t_close_s <= self.t:
                self.system.settle(w, w.t_close_s)
                rounds = max((d.round for d in w.resolution.defaults), default=0)
                event(f"window settled with {min(rounds, 2)} default round(s) under {w.resolution.rule}")

    @precondition(lambda self: any(w.state is WindowState.OPEN for w in self.system.windows))
    @rule(data=st.data())
    def operator_abort(self, data):
        w = data.draw(st.sampled_from([w for w in self.system.windows if w.state is WindowState.OPEN]))
        w.close(max(self.t, w.t_close_s))
        w.abort(max(self.t, w.t_close_s), "operator abort")

    @precondition(lambda self: self.system.windows)
    @rule(data=st.data(), to=st.sampled_from(list(WindowState)))
    def forbidden_move(self, data, to):
        w = data.draw(st.sampled_from(self.system.windows))
        allowed = {WindowState.OPEN: {WindowState.CLOSED}}.get(w.state, set())
        if to in allowed:
            return  # only forbidden moves here; allowed ones go through close/settle
        before = (w.state, w.transitions)
        with pytest.raises(WindowStateError):
            w.move(to, self.t, "forbidden")
        assert (w.state, w.transitions) == before

    @precondition(lambda self: any(w.final for w in self.system.windows))
    @rule(data=st.data())
    def write_to_final_window(self, data):
        w = data.draw(st.sampled_from([w for w in self.system.windows if w.final]))
        with pytest.raises(WindowStateError):
            w.add_obligations(ObligationKind.OTHER_FEE, 10**9, [0], [1], [1])

    @invariant()
    def zero_sum_and_exact(self):
        if not hasattr(self, "system"):
            return
        for w in self.system.windows:
            if w.obligations_minor is None:
                continue
            expected = [0] * N
            for p, q, a, _ in self.transfers.get(w.index, []):
                expected[p] -= a
                expected[q] += a
            assert w.obligations_minor.tolist() == expected
            assert sum(w.positions_minor.tolist()) == 0
            if w.state is WindowState.SETTLED and w.resolution.rule == "unwind":
                gone = set(w.unwound_record_ids.tolist())
                kept = [0] * N
                for p, q, a, r in self.transfers.get(w.index, []):
                    if r not in gone:
                        kept[p] -= a
                        kept[q] += a
                assert w.positions_minor.tolist() == kept

    @invariant()
    def finality_and_history(self):
        if not hasattr(self, "system"):
            return
        for w in self.system.windows:
            old = self.histories.get(w.index, ())
            assert w.transitions[:len(old)] == old  # appended, never edited
            self.histories[w.index] = w.transitions
            if w.final:
                snap = (w.state, w.transitions, w.positions_minor.tolist(), w.unwound_record_ids.tolist(),
                        w.fingerprint())
                assert self.snapshots.setdefault(w.index, snap) == snap
                w.check_final()

    @invariant()
    def money_is_conserved(self):
        if hasattr(self, "system"):
            self.system.bank.check_conservation()
            bank = self.system.bank
            assert (bank.balance[bank.limited] >= -bank.collateral[bank.limited]).all()


class LossSharingMachine(SettlementMachine):
    RULE = "loss_sharing"


class GuaranteeFundMachine(SettlementMachine):
    RULE = "guarantee_fund"


_MACHINE_SETTINGS = settings(max_examples=80, stateful_step_count=40, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])
TestUnwindMachine = SettlementMachine.TestCase
TestLossSharingMachine = LossSharingMachine.TestCase
TestGuaranteeFundMachine = GuaranteeFundMachine.TestCase
for _case in (TestUnwindMachine, TestLossSharingMachine, TestGuaranteeFundMachine):
    _case.settings = _MACHINE_SETTINGS
