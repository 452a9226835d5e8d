"""Fast mode's authorisation stream: the outcomes do not depend on how the day is cut into chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearing_sim.model.fast_authorisation import AuthorisationStream, FastAuthorisation, chunk_bounds
from clearing_sim.model.network import horizon_days
from clearing_sim.model.routing import BinTable
from clearing_sim.model.traffic import DAY_S, draw_days
from clearing_sim.scenario import load_scenario
from tests.test_fast_mode import assert_same_outcomes

DATA = Path(__file__).resolve().parent / "data"


def prepared(name: str):
    sc = load_scenario(DATA / name)
    txn = draw_days(sc)
    routed = BinTable(sc).route(BinTable(sc).pans(txn["issuer"], txn["card"]))
    return sc, txn, routed, horizon_days(sc) * DAY_S


@pytest.fixture(scope="module", params=["fast_stress.yaml", "fast_stress_restart.yaml"])
def case(request):
    sc, txn, routed, horizon = prepared(request.param)
    whole = FastAuthorisation(sc, txn, routed, horizon, bounds=[0, len(txn["txn_id"])])
    return sc, txn, routed, horizon, whole


def valid_bounds(t: np.ndarray, cuts: list[int]) -> list[int]:
    """Cut positions that never split arrivals at one instant, from 0 to len(t)."""
    n = len(t)
    ok = sorted({c for c in cuts if 0 < c < n and t[c] != t[c - 1]})
    return [0, *ok, n]


def assert_same(a: FastAuthorisation, b: FastAuthorisation) -> None:
    assert_same_outcomes(a.out, b.out)
    assert np.array_equal(a.held(), b.held())
    assert a.queue_depth_max == b.queue_depth_max
    assert a.saf.queued == b.saf.queued
    assert_same_outcomes(a.saf.log, b.saf.log)


class TestChunking:
    def test_hourly_chunks_equal_one_chunk(self, case) -> None:
        sc, txn, routed, horizon, whole = case
        bounds = chunk_bounds(txn["t_arrival_s"])
        assert len(bounds) > 20
        assert_same(whole, FastAuthorisation(sc, txn, routed, horizon, bounds=bounds))

    def test_chunks_grow_to_their_minimum_size(self) -> None:
        t = np.sort(np.random.default_rng(3).uniform(0, 86400.0, 10_000))
        hourly = chunk_bounds(t)
        assert len(hourly) == 25 and hourly[0] == 0 and hourly[-1] == len(t)
        big = chunk_bounds(t, min_rows=2_000)
        assert all(b - a >= 2_000 for a, b in zip(big[:-2], big[1:-1]))
        assert set(big) <= set(hourly) and len(big) < len(hourly)
        assert chunk_bounds(t, min_rows=len(t)) == [0, len(t)]

    def test_the_stress_day_exercises_what_chunks_carry(self, case) -> None:
        # Queues, stand-in, reversals and store-and-forward all cross chunk boundaries here.
        _, _, _, _, whole = case
        o = whole.out
        assert max(whole.queue_depth_max) > 10
        assert o["stand_in"].sum() > 10 and o["reversed"].sum() > 10
        assert whole.saf.queued[0] > 10 and whole.saf.queued[1] > 10

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def test_any_chunks_equal_one_chunk(self, case, data) -> None:
        sc, txn, routed, horizon, whole = case
        n = len(txn["txn_id"])
        cuts = data.draw(st.lists(st.integers(0, n), max_size=60))
        if data.draw(st.booleans()):  # many tiny chunks near the busiest stretch
            start = data.draw(st.integers(0, max(0, n - 200)))
            cuts += list(range(start, min(n, start + 200), data.draw(st.integers(1, 7))))
        chunked = FastAuthorisation(sc, txn, routed, horizon, bounds=valid_bounds(txn["t_arrival_s"], cuts))
        assert_same(whole, chunked)


class TestStreamContract:
    def test_chunks_out_of_order_are_refused(self) -> None:
        sc, txn, routed, horizon = prepared("fast_stress.yaml")
        s = AuthorisationStream(sc, horizon)
        t = txn["t_arrival_s"]
        half = len(t) // 2
        second = {k: v[half:] for k, v in txn.items()}
        list(s.feed(second, routed[half:], np.inf, first_gid=half))
        first = {k: v[:half] for k, v in txn.items()}
        with pytest.raises(ValueError, match="time order"):
            list(s.feed(first, routed[:half], float(t[half]), first_gid=0))

    def test_a_chunk_reaching_past_its_watermark_is_refused(self) -> None:
        sc, txn, routed, horizon = prepared("fast_stress.yaml")
        s = AuthorisationStream(sc, horizon)
        t = txn["t_arrival_s"]
        with pytest.raises(ValueError, match="watermark"):
            list(s.feed(txn, routed, float(t[10]), first_gid=0))

    def test_bounds_that_split_an_instant_are_refused(self) -> None:
        sc, txn, routed, horizon = prepared("fast_stress.yaml")
        n = len(txn["txn_id"])
        with pytest.raises(ValueError, match="bounds"):
            FastAuthorisation(sc, txn, routed, horizon, bounds=[0, n + 1])

    def test_every_authorisation_is_released_once_and_the_live_tables_empty(self) -> None:
        sc, txn, routed, horizon = prepared("fast_stress.yaml")
        s = AuthorisationStream(sc, horizon)
        t = txn["t_arrival_s"]
        bounds = chunk_bounds(t, 600.0)
        released = []
        live_max = 0
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            W = float(t[hi]) if hi < len(t) else np.inf
            for done in s.feed({k: v[lo:hi] for k, v in txn.items()}, routed[lo:hi], W, first_gid=lo):
                released.append(done["gid"])
            live_max = max(live_max, sum(len(i.table) for i in s.issuers))
        s.finish()
        gids = np.sort(np.concatenate(released))
        assert np.array_equal(gids, np.arange(len(t)))
        # Only what is still in a queue, a timer or a link stays live: far less than the day.
        assert live_max < len(t) // 4


    def test_outcomes_handed_out_stay_as_they_were_while_the_stream_goes_on(self) -> None:
        """A table whose rows all became final hands out its outcome columns without a copy: the
        stream never writes them again, so rows kept by the caller (as the streamed run's reorder
        keeps them) still hold what they were released with once every later chunk is fed."""
        sc, txn, routed, horizon = prepared("fast_stress.yaml")
        s = AuthorisationStream(sc, horizon)
        t = txn["t_arrival_s"]
        bounds = chunk_bounds(t, 600.0)
        kept = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            W = float(t[hi]) if hi < len(t) else np.inf
            for done in s.feed({k: v[lo:hi] for k, v in txn.items()}, routed[lo:hi], W, first_gid=lo):
                kept.append((done, {k: v.copy() for k, v in done.items()}))
        s.finish()
        for done, copy in kept:
            for k, v in copy.items():
                assert np.array_equal(done[k], v, equal_nan=v.dtype.kind == "f"), k

    def test_advices_behind_an_outage_wait_parked_not_live(self) -> None:
        """A stand-in waiting only for its advice to be applied leaves the live table (about 300
        bytes a row) for the parked store (about 45): the outage's stand-ins are parked while
        the live rows stay few, and the outcomes equal a single chunk's."""
        sc = load_scenario(DATA.parent.parent / "scenarios" / "issuer_outage.yaml")
        txn = draw_days(sc)
        routed = BinTable(sc).route(BinTable(sc).pans(txn["issuer"], txn["card"]))
        horizon = horizon_days(sc) * DAY_S
        s = AuthorisationStream(sc, horizon)
        t = txn["t_arrival_s"]
        bounds = chunk_bounds(t, 600.0)
        live_max = parked_max = 0
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            W = float(t[hi]) if hi < len(t) else np.inf
            list(s.feed({k: v[lo:hi] for k, v in txn.items()}, routed[lo:hi], W, first_gid=lo))
            live_max = max(live_max, sum(len(i.table) for i in s.issuers))
            parked_max = max(parked_max, sum(len(i.parked["gid"]) for i in s.issuers))
        s.finish()
        assert parked_max > 1000 and live_max < parked_max // 4
        whole = FastAuthorisation(sc, txn, routed, horizon, bounds=[0, len(t)])
        assert_same(whole, FastAuthorisation(sc, txn, routed, horizon, bounds=chunk_bounds(t, 600.0)))

    def test_parked_advices_are_applied_when_the_last_chunk_brings_the_issuer_nothing(self) -> None:
        """BANKA's host is down from 23:00 to the end of the day: its stand-ins' advices are applied
        after 24:00 and wait parked. The last chunk holds only BANKB's purchases, so BANKA's live
        table is empty when it comes; its parked advices are applied all the same (the stream
        skipped every pass for an issuer with no live row and failed "issuer 0 ended the run
        with 18 authorisation(s) unfinished"), and the outcomes equal a single chunk's."""
        from clearing_sim.scenario import parse_scenario

        sc = parse_scenario(LAST_CHUNK_WITHOUT_THE_ISSUER_YAML, "last_chunk.yaml")
        txn = draw_days(sc)
        routed = BinTable(sc).route(BinTable(sc).pans(txn["issuer"], txn["card"]))
        horizon = horizon_days(sc) * DAY_S
        t = txn["t_arrival_s"]
        last_a = int(np.flatnonzero(routed == 0)[-1])
        cut = int(np.searchsorted(t, t[last_a] + 60.0))  # BANKA's last request is stood in by then
        assert t[last_a] >= 23 * 3600 and last_a < cut < len(t)
        whole = FastAuthorisation(sc, txn, routed, horizon, bounds=[0, len(t)])
        assert whole.out["stand_in"][routed == 0].sum() > 10 and whole.saf.queued[0] > 10
        assert_same(whole, FastAuthorisation(sc, txn, routed, horizon, bounds=[0, cut, len(t)]))


LAST_CHUNK_WITHOUT_THE_ISSUER_YAML = """\
name: last_chunk_without_the_issuer
run: {days: 1, seed: 3}
institutions: [{id: BANKA}, {id: BANKB}]
issuers:
  - institution: BANKA
    bins: ["400001"]
    share: 0.1
    host: {servers: 2, outages: [{start: "23:00", end: "24:00"}]}
  - {institution: BANKB, bins: ["400003"], share: 0.9, host: {servers: 2}}
acquirers:
  - {institution: BANKB, share: 1, category_mix: {"5411": 1.0}}
traffic:
  transactions_per_day: 5000
  amount_minor: {"5411": {distribution: constant, value: 1000}}
"""


ZERO_LATENCY_TIE_YAML = """\
name: zero_latency_tie
run: {days: 1, seed: 1}
institutions: [{id: BANKA}, {id: BANKB}, {id: BANKC}]
issuers:
  - {institution: BANKA, bins: ["400001"], share: 0.5, cards: 500, host: {servers: 2}}
  - institution: BANKB
    bins: ["400003"]
    share: 0.5
    cards: 500
    host:
      servers: 2
      degraded: [{start: "18:00", end: "18:30", servers: 0}]
acquirers:
  - {institution: BANKA, share: 0.5, merchants: 10, category_mix: {"5411": 1.0}, auth_timeout_ms: 2500}
  - {institution: BANKC, share: 0.5, merchants: 10, category_mix: {"5411": 1.0}, auth_timeout_ms: 2500}
traffic:
  transactions_per_day: 3000
  amount_minor: {"5411": {distribution: constant, value: 1000}}
network:
  latency_ms: {distribution: constant, value: 0}
  switch_timeout_ms: 2500
"""


TIMERS_ONE_ROUNDING_STEP_APART_YAML = """\
name: timers_one_rounding_step_apart
run: {days: 1, seed: 40046}
institutions: [{id: BANKA}, {id: BANKB}]
issuers:
  - institution: BANKA
    bins: ["40000389"]
    share: 0.3
    host: {servers: 1, queue_limit: 5, service_time_ms: {distribution: exponential, mean: 6}}
  - institution: BANKB
    bins: ["400005"]
    share: 0.6
    host:
      servers: 2
      queue_limit: 1
      service_time_ms: {distribution: exponential, mean: 6}
      degraded: [{start: "00:00", end: "00:30", servers: 0}]
acquirers:
  - {institution: BANKB, share: 0.6, category_mix: {"5411": 1}, auth_timeout_ms: 6}
  - {institution: BANKA, share: 0.4, category_mix: {"5411": 1}, auth_timeout_ms: 6}
traffic:
  transactions_per_day: 8000
  hourly_profile: [10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
  amount_minor: {"5411": {distribution: constant, value: 1000}}
network:
  latency_ms: {distribution: constant, value: 0}
  switch_timeout_ms: 6
"""


@pytest.mark.parametrize("text, min_stand_in", [
    pytest.param(ZERO_LATENCY_TIE_YAML, 10, id="zero_latency_tie"),
    pytest.param(TIMERS_ONE_ROUNDING_STEP_APART_YAML, 1000, id="timers_one_rounding_step_apart"),
])
def test_a_stand_in_answering_exactly_at_the_acquirers_timeout_is_in_time_in_both_modes(text, min_stand_in) -> None:
    # Zero-latency hops and acquirer timeout == switch timeout: every stand-in answer
    # reaches the acquirer exactly at its deadline, which is in time. Detailed mode's
    # acquirer timer used to wake first at that instant and reverse it (and then fail
    # its own reversal check, exit 1); fast mode never reversed it.
    # timers_one_rounding_step_apart: the switch's clock slept from early in the day (0.648 s)
    # to a deadline at 3.694 s, and SimPy woke it at now + (deadline - now), one rounding step
    # after the deadline and after the acquirer's timer (fixed by switch.wait_until).
    from clearing_sim.model.network import simulate
    from clearing_sim.scenario import parse_scenario

    sc = parse_scenario(text, "tie.yaml")
    d, f = simulate(sc, "detailed"), simulate(sc, "fast")
    assert f.outcomes["stand_in"].sum() > min_stand_in
    assert not d.outcomes["reversed"].any()
    assert_same_outcomes(d.outcomes, f.outcomes)
