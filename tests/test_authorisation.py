"""The authorisation side in detailed mode, checked against its documented rules.

Most tests replay a rule independently from the outcome columns of one run (the
stress scenario of `auth_scenarios`, built so that every rule fires) and compare
with what the model did, exactly: the host queues, the switch's timeouts and
stand-in, the issuers' open-to-buy, store-and-forward and reversals.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import simpy
from tests.auth_scenarios import small_outage_run, stress_run, stress_scenario

from clearing_sim.model import authorisation as au
from clearing_sim.model.network import simulate
from clearing_sim.model.routing import BinTable
from clearing_sim.model.traffic import DAY_S, draw_days
from clearing_sim.results import build_result
from clearing_sim.scenario import clock_seconds, parse_scenario


def _interval(w) -> tuple[float, float]:
    base = (w.day - 1) * DAY_S
    end = 24 * 3600 if w.end == "24:00" else clock_seconds(w.end)
    return base + clock_seconds(w.start), base + end


def _capacity(host, t: float) -> int:
    """Servers working at `t`, straight from the scenario's windows."""
    for o in host.outages:
        s, e = _interval(o)
        if s <= t < e:
            return 0
    for d in host.degraded:
        b, f = _interval(d)
        if b <= t < f:
            return d.servers
    return host.servers


def _down(host, t: float) -> bool:
    return _capacity(host, t) == 0 and any(_interval(o)[0] <= t < _interval(o)[1] for o in host.outages)


def replay_host(host, t_in: np.ndarray, service: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start time and host outcome of each request reaching a host at `t_in` (FIFO order given).

    A straightforward re-statement of `clearing_sim.model.issuers`' rules, one request at a
    time: a request starts at the first instant at or after its arrival (and the previous
    start) when fewer requests are in service than the capacity; a crash loses the ones
    waiting and those whose service would end after it.
    """
    crashes = sorted(_interval(o)[0] for o in host.outages)
    boundaries = sorted({x for w in tuple(host.outages) + tuple(host.degraded) for x in _interval(w)})
    n = len(t_in)
    start = np.full(n, np.nan)
    outcome = np.full(n, -1)
    ends: list[float] = []  # ends of requests in service (a lost one ends at its crash)
    applied = 0  # crashes applied to `ends`
    last_start = -math.inf
    waiting: list[float] = []  # heap: when each request waiting now leaves the queue
    for j in range(n):
        a = float(t_in[j])
        if _down(host, a):
            outcome[j] = au.HOST_LOST_ON_ARRIVAL
            continue
        while applied < len(crashes) and crashes[applied] <= a:
            ends = [min(e, crashes[applied]) for e in ends]
            applied += 1
        while waiting and waiting[0] <= a:
            heapq.heappop(waiting)
        busy = sum(1 for e in ends if e > a)
        if busy >= _capacity(host, a) and len(waiting) >= host.queue_limit:
            outcome[j] = au.HOST_DROPPED
            continue
        t = max(a, last_start)
        next_crash = next((s for s in crashes if s > a), math.inf)
        lost_at = None
        while True:
            while applied < len(crashes) and crashes[applied] <= t:
                ends = [min(e, crashes[applied]) for e in ends]
                applied += 1
            if next_crash <= t:  # still waiting when the host went down
                lost_at = next_crash
                break
            if sum(1 for e in ends if e > t) < _capacity(host, t):
                break
            t = min([e for e in ends if e > t] + [b for b in boundaries if b > t])
        if lost_at is not None:
            outcome[j] = au.HOST_LOST_WAITING
            heapq.heappush(waiting, lost_at)
            continue
        start[j] = t
        last_start = t
        if t > a:
            heapq.heappush(waiting, t)
        end = t + float(service[j])
        crash = next((s for s in crashes if t < s < end), None)
        outcome[j] = au.HOST_LOST_IN_SERVICE if crash is not None else au.HOST_ANSWERED
        ends = [e for e in ends if e > t] + [end if crash is None else crash]
    return start, outcome


@pytest.fixture(scope="module")
def stress():
    return stress_run()


class TestHostQueue:
    """Each host serves its requests FIFO with the capacity its outages and degraded windows leave."""

    def test_start_times_match_an_independent_replay(self, stress):
        o, txn, sc = stress.outcomes, stress.txn, stress.scenario
        for k, iss in enumerate(sc.issuers):
            sel = np.flatnonzero((o["routed_issuer"] == k) & ~np.isnan(o["t_host_in_s"]))
            sel = sel[np.lexsort((sel, o["t_host_in_s"][sel]))]
            start, outcome = replay_host(iss.host, o["t_host_in_s"][sel], txn["service_s"][sel])
            model_outcome = o["host_outcome"][sel]
            model_outcome = np.where(model_outcome == au.HOST_LATE, au.HOST_ANSWERED, model_outcome)
            assert np.array_equal(outcome, model_outcome), iss.institution
            assert np.array_equal(start, o["t_host_start_s"][sel], equal_nan=True), iss.institution

    def test_every_host_outcome_occurs_in_the_stress_run(self, stress):
        seen = set(stress.outcomes["host_outcome"].tolist())
        assert seen == set(range(len(au.HOST_OUTCOMES)))

    def test_services_end_service_time_after_they_start(self, stress):
        o = stress.outcomes
        done = ~np.isnan(o["t_host_end_s"])
        assert np.array_equal(o["t_host_end_s"][done], o["t_host_start_s"][done] + stress.txn["service_s"][done])
        assert set(o["host_outcome"][done].tolist()) == {au.HOST_ANSWERED, au.HOST_LATE}

    def test_hosts_without_windows_match_the_kiefer_wolfowitz_recursion(self):
        st = small_outage_run()
        o = st.outcomes
        for k, iss in enumerate(st.scenario.issuers):
            if iss.host.outages or iss.host.degraded:
                continue
            sel = np.flatnonzero(o["routed_issuer"] == k)
            sel = sel[np.lexsort((sel, o["t_host_in_s"][sel]))]
            free = [0.0] * iss.host.servers
            expected = []
            for a, s in zip(o["t_host_in_s"][sel].tolist(), st.txn["service_s"][sel].tolist()):
                f = heapq.heappop(free)
                start = a if a > f else f
                expected.append(start)
                heapq.heappush(free, start + s)
            assert np.array_equal(np.array(expected), o["t_host_start_s"][sel]), iss.institution


def erlang_c_wait_s(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean waiting time in queue of an M/M/c queue (Erlang C)."""
    a = arrival_rate / service_rate
    rho = a / servers
    head = sum(a**k / math.factorial(k) for k in range(servers))
    tail = a**servers / math.factorial(servers) / (1 - rho)
    return tail / (head + tail) / (servers * service_rate - arrival_rate)


# (servers, share of purchases, utilisation): 200k, 250k and 300k requests a day each.
ERLANG_ISSUERS = [(1, 200 / 750, 0.5), (2, 250 / 750, 0.5), (3, 300 / 750, 0.55)]
ERLANG_PER_DAY = 750_000


def erlang_yaml() -> str:
    issuers = []
    for k, (c, share, rho) in enumerate(ERLANG_ISSUERS):
        rate = ERLANG_PER_DAY * share / DAY_S
        mean_ms = rho * c / rate * 1000.0
        issuers.append(
            f"  - {{institution: I{k}, bins: ['60000{k}'], share: {share!r}, cards: 1000000, "
            f"risk_decline_rate: 0, host: {{servers: {c}, "
            f"service_time_ms: {{distribution: exponential, mean: {mean_ms!r}}}}}}}"
        )
    return "\n".join([
        "name: erlang",
        "run: {days: 1, seed: 11}",
        "institutions: [{id: I0}, {id: I1}, {id: I2}, {id: ACQ}]",
        "issuers:",
        *issuers,
        "acquirers:",
        "  - {institution: ACQ, share: 1, category_mix: {'5411': 1}, auth_timeout_ms: 86400000}",
        "traffic:",
        f"  transactions_per_day: {ERLANG_PER_DAY}",
        "  amount_minor: {'5411': {distribution: constant, value: 100}}",
        "network: {latency_ms: {distribution: constant, value: 2}, switch_timeout_ms: 86400000}",
        "",
    ])


class TestErlangC:
    """With Poisson arrivals and exponential service, each host's mean wait is Erlang C's within 5%."""

    def test_mean_host_wait_within_5_percent_of_erlang_c(self):
        sc = parse_scenario(erlang_yaml(), "erlang.yaml")
        txn = draw_days(sc)
        bins = BinTable(sc)
        routed = bins.route(bins.pans(txn["issuer"], txn["card"]))
        env = simpy.Environment()
        model = au.DetailedAuthorisation(env, sc, txn, routed)
        env.run(until=2 * DAY_S)
        model.finish()
        o = model.out
        assert not o["stand_in"].any() and not o["reversed"].any()
        wait_s = o["t_host_start_s"] - o["t_host_in_s"]
        report = []
        for k, (c, share, rho) in enumerate(ERLANG_ISSUERS):
            sel = routed == k
            rate = ERLANG_PER_DAY * share / DAY_S
            service_rate = rate / (rho * c)
            expected = erlang_c_wait_s(c, rate, service_rate)
            measured = float(wait_s[sel].mean())
            report.append((c, int(sel.sum()), measured, expected, measured / expected - 1))
        assert all(abs(err) <= 0.05 for *_, err in report), report


class TestSwitchTimeout:
    """The switch forwards an issuer's answer that reaches it in time and otherwise stands in at its deadline."""

    def test_answers_in_time_are_forwarded_and_others_stood_in(self, stress):
        o, txn = stress.outcomes, stress.txn
        timeout_s = stress.scenario.network.switch_timeout_ms / 1000.0
        net = o["route"] == au.ROUTE_NETWORK
        deadline = o["t_switch_in_s"] + timeout_s
        answered = net & (o["host_outcome"] == au.HOST_ANSWERED)
        t_answer = o["t_host_end_s"] + txn["hop_issuer_switch_s"]
        assert (t_answer[answered] <= deadline[answered]).all()
        assert np.array_equal(o["t_switch_response_s"][answered], t_answer[answered])
        assert np.array_equal(o["stand_in"], net & ~answered)
        late = o["host_outcome"] == au.HOST_LATE
        assert (t_answer[late] > deadline[late]).all()

    def test_stand_in_is_at_once_when_signed_off_and_at_the_deadline_otherwise(self, stress):
        o = stress.outcomes
        timeout_s = stress.scenario.network.switch_timeout_ms / 1000.0
        si = o["stand_in"]
        signed_off = si & (o["host_outcome"] == au.HOST_NOT_SENT)
        assert signed_off.any()
        assert np.array_equal(o["t_switch_response_s"][signed_off], o["t_switch_in_s"][signed_off])
        waited = si & ~signed_off
        assert np.array_equal(o["t_switch_response_s"][waited], o["t_switch_in_s"][waited] + timeout_s)

    def test_unknown_bins_are_declined_14_by_the_switch_at_once(self, stress):
        o = stress.outcomes
        unknown = o["routed_issuer"] < 0
        assert unknown.any()
        assert (o["response_code"][unknown] == au.INVALID_CARD).all()
        assert np.array_equal(o["t_switch_response_s"][unknown], o["t_switch_in_s"][unknown])
        assert (o["host_outcome"][unknown] == au.HOST_NOT_SENT).all()


class TestStandInLimits:
    """Stand-in approves within the issuer's limits, consumed in the switch's decision order."""

    def test_decisions_replay_exactly(self, stress):
        o, txn, sc = stress.outcomes, stress.txn, stress.scenario
        checked = 0
        for k, iss in enumerate(sc.issuers):
            sel = np.flatnonzero(o["stand_in"] & (o["routed_issuer"] == k))
            second = (o["host_outcome"][sel] != au.HOST_NOT_SENT).astype(int)  # (a) before (b) at a tie
            sel = sel[np.lexsort((sel, second, o["t_switch_response_s"][sel]))]
            used: dict[int, int] = {}
            for i in sel.tolist():
                t = o["t_switch_response_s"][i]
                amount = int(txn["amount_minor"][i])
                day = int(t // DAY_S)
                ok = amount <= iss.stand_in.per_transaction_minor and \
                    used.get(day, 0) + amount <= iss.stand_in.daily_minor
                if ok:
                    used[day] = used.get(day, 0) + amount
                assert o["response_code"][i] == (au.APPROVED if ok else au.ISSUER_UNAVAILABLE)
                checked += 1
        codes = o["response_code"][o["stand_in"]]
        assert checked and (codes == au.APPROVED).any() and (codes == au.ISSUER_UNAVAILABLE).any()


class TestOpenToBuy:
    """Issuers decide against each card's open-to-buy, drawn down by approvals and advices, restored by reversals."""

    def test_decisions_replay_exactly(self, stress):
        o, txn, sc = stress.outcomes, stress.txn, stress.scenario
        routed = o["routed_issuer"]
        rates = np.array([i.risk_decline_rate for i in sc.issuers] + [0.0])
        risk = txn["risk_u"] < rates[routed]
        decided = np.flatnonzero(o["host_outcome"] == au.HOST_ANSWERED)
        advices = np.flatnonzero(~np.isnan(o["t_advice_applied_s"]))
        reversals = np.flatnonzero(~np.isnan(o["t_reversal_applied_s"]))
        events = sorted(
            [(o["t_host_end_s"][i], 0, i) for i in decided.tolist()]
            + [(o["t_advice_applied_s"][i], 1, i) for i in advices.tolist()]
            + [(o["t_reversal_applied_s"][i], 2, i) for i in reversals.tolist()]
        )
        otb: dict[tuple[int, int], int] = {}
        held = set()
        reversed_at_issuer = set()
        decisions = {"51": 0, "00": 0}
        for _, kind, i in events:
            card = (int(routed[i]), int(txn["card"][i]))
            otb.setdefault(card, int(txn["credit_limit_minor"][i]))
            amount = int(txn["amount_minor"][i])
            if kind == 0:
                if risk[i]:
                    assert o["response_code"][i] == au.DO_NOT_HONOUR
                elif amount > otb[card]:
                    assert o["response_code"][i] == au.INSUFFICIENT_FUNDS
                    decisions["51"] += 1
                else:
                    assert o["response_code"][i] == au.APPROVED
                    decisions["00"] += 1
                    if i not in reversed_at_issuer:
                        otb[card] -= amount
                        held.add(i)
            elif kind == 1:
                if i not in reversed_at_issuer and i not in held:
                    otb[card] -= amount
                    held.add(i)
            else:
                reversed_at_issuer.add(i)
                if i in held:
                    otb[card] += amount
                    held.discard(i)
        assert decisions["51"] > 100 and decisions["00"] > 100
        # The model's ledger ends where the replay ends.
        model = stress.authorisation
        slot_of = {}
        for i in range(len(txn["card"])):
            slot_of.setdefault((int(routed[i]), int(txn["card"][i])), model.ledger.slot[i])
        final = model.ledger.final_minor()
        for card, value in otb.items():
            assert final[slot_of[card]] == value

    def test_some_reversals_reach_the_issuer_before_its_decision(self, stress):
        o = stress.outcomes
        early = o["t_reversal_applied_s"] < o["t_host_end_s"]
        assert early.any()


class TestReversals:
    """An acquirer reverses exactly the authorisations whose answer reached it after its timeout."""

    def test_reversed_iff_answer_after_the_acquirer_deadline(self, stress):
        o, txn, sc = stress.outcomes, stress.txn, stress.scenario
        timeout_s = np.array([a.auth_timeout_ms / 1000.0 for a in sc.acquirers])
        deadline = txn["t_arrival_s"] + timeout_s[txn["acquirer"]]
        switched = o["route"] != au.ROUTE_IN_BANK
        assert np.array_equal(o["reversed"], switched & (o["t_response_s"] > deadline))
        rev = o["reversed"]
        assert np.array_equal(o["t_reversal_s"][rev], deadline[rev] + txn["hop_rev_acq_switch_s"][rev])
        assert (o["reversed"] & (o["response_code"] == au.APPROVED) & ~o["stand_in"]).any()
        assert (o["reversed"] & o["stand_in"] & (o["response_code"] == au.APPROVED)).any()

    def test_reversed_and_in_bank_authorisations_are_never_presented(self, stress):
        o = stress.outcomes
        presented = np.zeros(len(o["route"]), dtype=bool)
        for f in stress.acquirers.files:
            presented[f.txn_index] = True
        expected = (o["response_code"] == au.APPROVED) & ~o["reversed"] & (o["route"] != au.ROUTE_IN_BANK)
        assert np.array_equal(presented, expected)
        assert (o["reversed"] & (o["response_code"] == au.APPROVED)).any()


class TestStoreAndForward:
    """Advices and forwarded reversals reach each issuer one at a time, FIFO, only while it is up."""

    def test_deliveries_replay_exactly(self, stress):
        o, txn, sc = stress.outcomes, stress.txn, stress.scenario
        timeout_s = sc.network.switch_timeout_ms / 1000.0
        advice = np.flatnonzero(o["stand_in"] & (o["response_code"] == au.APPROVED))
        reversal = np.flatnonzero(o["reversed"] & (o["routed_issuer"] >= 0))
        repeats = 0
        for k, iss in enumerate(sc.issuers):
            msgs = sorted(
                [(o["t_switch_response_s"][i], i, 0) for i in advice.tolist() if o["routed_issuer"][i] == k]
                + [(o["t_reversal_s"][i], i, 1) for i in reversal.tolist() if o["routed_issuer"][i] == k]
            )
            announced = [_interval(x) for x in iss.host.outages if x.announced]
            t_free = 0.0
            for t_queued, i, kind in msgs:
                out = txn["hop_advice_out_s" if kind == 0 else "hop_rev_out_s"][i]
                back = txn["hop_advice_back_s" if kind == 0 else "hop_rev_back_s"][i]
                t = max(t_queued, t_free)
                while True:
                    t = next((e for s, e in announced if s <= t < e), t)
                    if _down(iss.host, t + out):
                        t += timeout_s
                        repeats += 1
                        continue
                    break
                applied = o["t_advice_applied_s" if kind == 0 else "t_reversal_applied_s"][i]
                assert applied == t + out
                t_free = t + out + back
        saf = stress.authorisation.saf.log
        assert repeats == sum(1 for a in saf["attempt"] if a > 0) and repeats > 0

    def test_nothing_is_left_undelivered(self, stress):
        o = stress.outcomes
        approved_si = o["stand_in"] & (o["response_code"] == au.APPROVED)
        assert not np.isnan(o["t_advice_applied_s"][approved_si]).any()
        rev = o["reversed"] & (o["routed_issuer"] >= 0)
        assert not np.isnan(o["t_reversal_applied_s"][rev]).any()
        assert stress.authorisation.saf.pending() == 0


class TestInBank:
    """On-us purchases of a bank that keeps them in-house use its host but never the switch or clearing."""

    def test_in_bank_purchases_skip_the_switch(self, stress):
        o, txn, sc = stress.outcomes, stress.txn, stress.scenario
        bank = o["route"] == au.ROUTE_IN_BANK
        assert bank.sum() > 1000
        k = [i.institution for i in sc.issuers].index("BANKC")
        acq = [a.institution for a in sc.acquirers].index("BANKC")
        assert np.array_equal(bank, (o["routed_issuer"] == k) & (txn["acquirer"] == acq))
        assert not (o["stand_in"][bank] | o["reversed"][bank]).any()
        assert np.isnan(o["t_switch_in_s"][bank]).all()
        assert (o["response_code"][bank] == au.ISSUER_UNAVAILABLE).any()
        summary = build_result(stress).summary["authorisations"]
        assert summary["in_bank"]["count"] == int(bank.sum())
        assert summary["count"] == int((~bank).sum())


class TestConservation:
    """Every authorisation ends in exactly one final state, and approved minus reversed value is what clearing got."""

    @pytest.mark.parametrize("run", [stress_run, small_outage_run], ids=["stress", "issuer_outage"])
    def test_one_final_state_and_value_conserved(self, run):
        st = run()
        o = st.outcomes
        masks = [o["final_state"] == s for s in range(len(au.FINAL_STATES))]
        assert (np.sum(masks, axis=0) == 1).all()
        a = build_result(st).summary
        auth, clearing = a["authorisations"], a["clearing"]
        assert auth["approved_minor"] - auth["reversed_approved_minor"] == clearing["amount_presented_minor"]
        assert sum(auth["by_final_state"].values()) == auth["count"]
        assert auth["stand_in"] == auth["advices"] > 0

    def test_final_states_refuse_an_authorisation_in_two_states(self, stress):
        o = {k: v.copy() for k, v in stress.outcomes.items()}
        i = int(np.flatnonzero(o["route"] == au.ROUTE_IN_BANK)[0])
        o["stand_in"][i] = True  # in the bank and stood in by the switch: no single state fits
        with pytest.raises(au.InvariantError, match="exactly one final state"):
            au.final_states(o)


class TestDeterminism:
    """The same scenario and seed give the same outcomes, bit for bit."""

    def test_same_seed_same_outcomes(self, stress):
        again = simulate(stress_scenario())
        for name, col in stress.outcomes.items():
            assert np.array_equal(col, again.outcomes[name], equal_nan=True), name
        assert stress.authorisation.saf.log == again.authorisation.saf.log


def _reference_final_states(out: dict[str, np.ndarray]) -> np.ndarray:
    """The numpy `final_states` the compiled pass replaced, kept verbatim as the oracle."""
    code = out["response_code"]
    route = out["route"]
    stand_in = out["stand_in"]
    rev = out["reversed"]
    switched = route != au.ROUTE_IN_BANK
    decided = (code >= 0) & ~np.isnan(out["t_response_s"])
    lost = out["lost_in_switch"]
    rev = rev & ~lost
    masks = [
        switched & ~rev & ~stand_in & (code == au.APPROVED),
        switched & ~rev & stand_in & (code == au.APPROVED),
        switched & ~rev & ~stand_in & np.isin(code, (au.DO_NOT_HONOUR, au.INVALID_CARD, au.INSUFFICIENT_FUNDS)),
        switched & ~rev & stand_in & (code == au.ISSUER_UNAVAILABLE),
        switched & rev & decided,
        ~switched & ~rev & ~stand_in & (code == au.APPROVED),
        ~switched & ~rev & ~stand_in & np.isin(code, (au.DO_NOT_HONOUR, au.INSUFFICIENT_FUNDS,
                                                      au.ISSUER_UNAVAILABLE)),
        switched & lost & out["reversed"] & ~stand_in & (code == au.ISSUER_UNAVAILABLE),
    ]
    count = np.sum(masks, axis=0)
    if (count != 1).any():
        bad = np.flatnonzero(count != 1)
        raise au.InvariantError(f"{len(bad)} authorisation(s) do not end in exactly one final state "
                                f"(first: index {int(bad[0])}, code {int(code[bad[0]])}, "
                                f"{'no' if count[bad[0]] == 0 else 'several'} state(s))")
    state = np.zeros(len(code), dtype=np.int8)
    for s, m in enumerate(masks):
        state[m] = s
    return state


class TestFinalStatesCompiled:
    """`final_states` (one compiled pass) equals the numpy masks it replaced: the same states and
    dtype, or the same InvariantError message, on the model's runs and on arbitrary columns."""

    @staticmethod
    def _same(out) -> None:
        try:
            want = _reference_final_states(out)
        except au.InvariantError as e:
            with pytest.raises(au.InvariantError) as got:
                au.final_states(out)
            assert str(got.value) == str(e)
            return
        got = au.final_states(out)
        assert got.dtype == want.dtype == np.int8 and np.array_equal(got, want)

    def test_model_runs(self, stress) -> None:
        self._same(stress.outcomes)
        self._same(small_outage_run().outcomes)

    @settings(max_examples=60, deadline=None)
    @given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 400), valid=st.booleans())
    def test_arbitrary_columns(self, seed: int, n: int, valid: bool) -> None:
        rng = np.random.default_rng(seed)
        out = {
            "response_code": rng.choice(np.array([-1, 0, 1, 5, 14, 51, 91, 99]), n).astype(np.int16),
            "route": rng.integers(0, 3, n).astype(np.int8),
            "stand_in": rng.random(n) < 0.3, "reversed": rng.random(n) < 0.3,
            "lost_in_switch": rng.random(n) < 0.2,
            "t_response_s": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
        }
        if valid:  # keep only rows in exactly one state, so the states themselves are compared
            counts = [_count_states(out, i) for i in range(n)]
            keep = np.array([c == 1 for c in counts], dtype=bool)
            out = {k: v[keep] for k, v in out.items()}
        self._same(out)


def _count_states(out, i) -> int:
    one = {k: v[i:i + 1] for k, v in out.items()}
    try:
        _reference_final_states(one)
        return 1
    except au.InvariantError:
        return 0
