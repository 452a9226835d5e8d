"""Issuer hosts' availability timelines and the open-to-buy ledger."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim.model.issuers import Availability, HostState, OpenToBuy, check_ledger
from clearing_sim.scenario import Degradation, Distribution, Host, Outage


def _clock(minute: int) -> str:
    return "24:00" if minute == 1440 else f"{minute // 60:02d}:{minute % 60:02d}"


@st.composite
def hosts(draw) -> Host:
    """A host with non-overlapping outages and non-overlapping degraded windows on days 1-2."""
    servers = draw(st.integers(1, 6))

    def windows(max_n: int):
        cuts = sorted(draw(st.sets(st.integers(0, 2 * 1440), max_size=2 * max_n)))
        spans = [(a, b) for a, b in zip(cuts[::2], cuts[1::2]) if b > a]
        out = []
        for a, b in spans:
            day = a // 1440
            b = min(b, (day + 1) * 1440)
            if b > a:
                out.append((day + 1, _clock(a - day * 1440), _clock(b - day * 1440)))
        return out

    outages = tuple(Outage(start=s, end=e, day=d, announced=draw(st.booleans())) for d, s, e in windows(3))
    degraded = tuple(Degradation(start=s, end=e, day=d, servers=draw(st.integers(0, servers)))
                     for d, s, e in windows(3))
    return Host(servers=servers, outages=outages, degraded=degraded,
                service_time_ms=Distribution("constant", value=1.0))


class TestAvailability:
    """A host's timeline lists exactly the instants where its capacity or up/down state changes."""

    @settings(max_examples=150, deadline=None)
    @given(host=hosts(), probes=st.lists(st.floats(0, 2 * 86_400, allow_nan=False), min_size=1, max_size=30))
    def test_timeline_agrees_with_point_queries(self, host, probes):
        av = Availability(host)
        timeline = av.timeline()
        times = [t for t, _, _ in timeline]
        assert times == sorted(set(times))
        for t in probes + times:
            # The state at t is the last change at or before t (the full host before any change).
            before = [(d, c) for tt, d, c in timeline if tt <= t]
            down, cap = before[-1] if before else (False, host.servers)
            assert av.down_at(t) == down
            assert av.capacity_at(t) == cap
            assert (cap == 0) or not down
        arr = np.array(probes)
        assert np.array_equal(av.down(arr), np.array([av.down_at(t) for t in probes]))
        announced = np.array([av.announced_end_at(t) is not None for t in probes])
        assert np.array_equal(av.announced_down(arr), announced)

    def test_outage_is_half_open(self):
        av = Availability(Host(servers=2, outages=(Outage(start="12:00", end="12:30"),)))
        assert not av.down_at(43_199.999) and av.down_at(43_200.0) and av.down_at(44_999.9)
        assert not av.down_at(45_000.0)
        assert av.timeline() == [(43_200.0, True, 0), (45_000.0, False, 2)]

    def test_outage_wins_over_a_degraded_window(self):
        host = Host(servers=4, outages=(Outage(start="12:00", end="12:30"),),
                    degraded=(Degradation(start="11:00", end="13:00", servers=1),))
        assert Availability(host).timeline() == [
            (39_600.0, False, 1), (43_200.0, True, 0), (45_000.0, False, 1), (46_800.0, False, 4)]

    def test_going_down_after_a_zero_capacity_window_is_still_a_change(self):
        host = Host(servers=2, outages=(Outage(start="11:15", end="11:25"),),
                    degraded=(Degradation(start="11:00", end="11:20", servers=0),))
        assert Availability(host).timeline() == [
            (39_600.0, False, 0), (40_500.0, True, 0), (41_100.0, False, 2)]


class TestCrashBetween:
    """A service is cut short only by an outage starting strictly inside it."""

    def test_strictly_inside(self):
        host = Host(servers=1, outages=(Outage(start="12:00", end="12:30"),))
        state = HostState(0, host, Availability(host))
        assert state.crash_between(43_000.0, 43_300.0) == 43_200.0
        assert state.crash_between(43_000.0, 43_200.0) is None  # ends exactly as the host goes down
        assert state.crash_between(43_200.0, 43_300.0) is None
        assert state.crash_between(45_000.0, 90_000.0) is None


class TestOpenToBuy:
    """Purchases with the same card share one open-to-buy, starting at the card's limit."""

    def test_slots(self):
        issuer = np.array([0, 1, 0, 0, 1])
        card = np.array([7, 7, 8, 7, 7])
        limit = np.array([100, 200, 300, 100, 200])
        otb = OpenToBuy(issuer, card, limit)
        assert otb.slot[0] == otb.slot[3] and otb.slot[1] == otb.slot[4]
        assert len(set(otb.slot.tolist())) == 3
        assert sorted(otb.open_to_buy) == [100, 200, 300]

    def test_check_ledger_finds_a_wrong_balance(self):
        issuer, card = np.array([0, 0]), np.array([1, 1])
        otb = OpenToBuy(issuer, card, np.array([1000, 1000]))
        held = np.array([True, False])
        amount = np.array([300, 200])
        otb.open_to_buy[otb.slot[0]] -= 300
        assert check_ledger(otb, held, amount) is None
        otb.open_to_buy[otb.slot[0]] -= 1
        assert "open-to-buy" in check_ledger(otb, held, amount)
