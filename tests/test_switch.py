"""The switch's stand-in limits, its timeout clock and store-and-forward links."""

from __future__ import annotations

import math

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim.model.issuers import Availability
from clearing_sim.model.switch import ADVICE, REVERSAL, StandInLimits, StoreAndForward, switch_timer, wait_until
from clearing_sim.scenario import Host, Outage, parse_scenario
from tests.conftest import SMALL_YAML

_SMALL = parse_scenario(SMALL_YAML)


class TestStandInLimits:
    """Stand-in approves in decision order while the per-purchase and daily limits allow, per issuer and day."""

    @settings(max_examples=200, deadline=None)
    @given(decisions=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 60_000), st.floats(0, 3 * 86_400)),
                              max_size=60),
           per_txn=st.integers(0, 50_000), daily=st.integers(0, 200_000))
    def test_greedy_within_limits(self, decisions, per_txn, daily):
        limits = StandInLimits(_SMALL)
        limits.per_transaction = [per_txn, per_txn]
        limits.daily = [daily, daily]
        used: dict[tuple[int, int], int] = {}
        for k, amount, t in sorted(decisions, key=lambda d: d[2]):
            day = int(t // 86_400)
            fits = amount <= per_txn and used.get((k, day), 0) + amount <= daily
            assert limits.approve(k, amount, t) == fits
            if fits:
                used[(k, day)] = used.get((k, day), 0) + amount
        assert all(v <= daily for v in used.values())


class TestSwitchTimer:
    """The clock stands in at t_sw for signed-off requests and at the deadline for unanswered ones."""

    def test_order_and_times(self):
        env = simpy.Environment()
        t_switch = [1.0, 2.0, 3.0, 4.0]
        deadline = [t + 5.0 for t in t_switch]
        answered = bytearray(4)
        calls = []

        def answer_later(i, at):
            yield env.timeout(at)
            answered[i] = 1

        env.process(answer_later(1, 6.5))  # answered before its deadline (7.0): no stand-in
        env.process(answer_later(2, 9.0))  # answered after its deadline (8.0): stood in at 8.0
        env.process(switch_timer(env, [3], [0, 1, 2], t_switch, deadline, answered,
                                 lambda i, t: calls.append((i, t, env.now))))
        env.run()
        assert [(i, t) for i, t, _ in calls] == [(3, 4.0), (0, 6.0), (2, 8.0)]
        assert all(math.isclose(t, now) for _, t, now in calls)

    def test_wakes_at_its_deadline_exactly(self):
        """From 0.648... a timeout of `t - now` lands one rounding step after t = 3.694... (no delay
        lands on t); wait_until gets there exactly, and at once for a time already passed."""
        env = simpy.Environment()
        start, t = 0.6480684875458438, 3.6945604671436754
        assert start + (t - start) != t
        woke = []

        def clock():
            yield env.timeout(start)
            yield from wait_until(env, t)
            woke.append(env.now)
            yield from wait_until(env, 1.0)
            woke.append(env.now)

        env.process(clock())
        env.run()
        assert woke == [t, t]


class TestStoreAndForward:
    """Messages reach the issuer one at a time, FIFO, and are resent while it is down."""

    def test_resend_until_the_issuer_is_back(self):
        env = simpy.Environment()
        host = Host(servers=1, outages=(Outage(start="00:01", end="00:02"),))  # down 60-120 s, unannounced
        applied = []
        saf = StoreAndForward(env, [Availability(host)], 10.0, ([0.5] * 3, [0.5] * 3), ([0.25] * 3, [0.25] * 3),
                              lambda i, kind, t: applied.append((i, kind, t)))

        def feed():
            yield env.timeout(55.0)
            saf.enqueue(0, 0, ADVICE, 55.0)
            yield env.timeout(10.0)
            saf.enqueue(0, 1, REVERSAL, 65.0)
            saf.enqueue(0, 2, ADVICE, 65.0)

        env.process(feed())
        env.run(until=500)
        # 55.0 -> reaches 55.5, acked 55.75. 65.0 -> would reach 65.5: down; resent 75, 85, ..., 115
        # (reaches 115.5: down), 125 -> reaches 125.5. Then the advice at 125.75 -> 126.25.
        assert applied == [(0, ADVICE, 55.5), (1, REVERSAL, 125.5), (2, ADVICE, 126.25)]
        assert saf.log["attempt"] == [0, 0, 1, 2, 3, 4, 5, 6, 0]
        assert saf.pending() == 0

    def test_waits_for_an_announced_outage_to_end(self):
        env = simpy.Environment()
        host = Host(servers=1, outages=(Outage(start="00:01", end="00:02", announced=True),))
        applied = []
        saf = StoreAndForward(env, [Availability(host)], 10.0, ([0.5], [0.5]), ([0.25], [0.25]),
                              lambda i, kind, t: applied.append((i, kind, t)))

        def feed():
            yield env.timeout(70.0)
            saf.enqueue(0, 0, ADVICE, 70.0)

        env.process(feed())
        env.run(until=500)
        assert applied == [(0, ADVICE, 120.5)] and saf.log["attempt"] == [0]
