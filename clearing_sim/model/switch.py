"""The switch: its timeout on each issuer, stand-in processing and store-and-forward.

Owns: when the switch stops waiting for an issuer and stands in, the stand-in decision
(the issuer's limits per purchase and per day), and the store-and-forward (SAF) link
that delivers stand-in advices and forwarded reversals to each issuer in FIFO order.
Must never touch an issuer's queue or ledger directly (it calls back) and never draw
random numbers: every latency it uses was drawn up front by `traffic`.

Rules (the detailed mode's semantics, which a fast mode must reproduce):

* The switch receives an 0100 at t_sw = t_arrival + hop_acq_switch and forwards it at
  once; the request reaches the host at t_sw + hop_switch_issuer. The issuer's answer
  reaches the switch at t_end + hop_issuer_switch. It is in time if that is at most
  D = t_sw + switch_timeout (a tie counts as in time).
* Stand-in happens (a) at t_sw when the issuer is signed off at t_sw (inside an
  announced outage): the request is never sent; (b) at D when the answer is not in
  time: the request was lost (host down, dropped from a full queue, lost in a crash)
  or is late. The stand-in answer leaves the switch at once.
* Stand-in decision order, per issuer: by decision time, then (a) before (b), then by
  transaction id. It approves `00` when the amount is at most the per-transaction
  limit and the issuer's stand-in approvals of that simulated day (day of the decision
  time) plus the amount are at most the daily limit; otherwise it declines `91`.
* Every stand-in approval creates an 0120 advice for the issuer, queued at the decision
  time. Every 0400 reversal of a routed authorisation reaching the switch is forwarded
  to the issuer as an 0420 reversal advice, queued when the 0400 arrives. At one instant
  advices are queued before reversals (a stand-in and its own 0400 reach the switch at
  once when hops are constant and auth_timeout_ms == switch_timeout_ms).
* SAF, one FIFO link per issuer, one message in flight. The head message is sent at
  max(when it was queued, when the previous one was acknowledged); if the issuer is
  signed off then, it waits for the end of that announced outage. It reaches the
  issuer `hop_out` later, and the issuer applies it then; the acknowledgement (0130 /
  0430) reaches the switch `hop_back` after that, and the next message can go. If the
  issuer is down when the message would reach it, the message is lost and sent again
  (as a repeat: 0121 / 0421) one switch timeout after the previous attempt, with the
  same hop latencies.
* Switch restarts (`clearing_sim.model.switch_restarts`): the SAF queue is persistent.
  A send falling while the switch is down waits until it is back up; an
  acknowledgement reaching the switch while it is down is lost and the message is
  sent again (a repeat) one switch timeout after the previous send. The issuer applies
  each message once: a repeat of an applied message is only acknowledged.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Sequence

import simpy

from clearing_sim.model.issuers import Availability
from clearing_sim.model.switch_restarts import SwitchRestarts, down_end_at
from clearing_sim.model.traffic import DAY_S
from clearing_sim.scenario import Scenario

ADVICE = 0  # 0120 / 0121 / 0130
REVERSAL = 1  # 0420 / 0421 / 0430


class StandInLimits:
    """Each issuer's stand-in limits and what the switch has approved for it per day."""

    def __init__(self, scenario: Scenario):
        self.per_transaction = [iss.stand_in.per_transaction_minor for iss in scenario.issuers]
        self.daily = [iss.stand_in.daily_minor for iss in scenario.issuers]
        self.used: list[dict[int, int]] = [{} for _ in scenario.issuers]

    def approve(self, k: int, amount_minor: int, t_s: float) -> bool:
        """Whether the switch approves `amount_minor` for issuer `k` at time `t_s` (and books it)."""
        if amount_minor > self.per_transaction[k]:
            return False
        day = int(t_s // DAY_S)
        used = self.used[k].get(day, 0)
        if used + amount_minor > self.daily[k]:
            return False
        self.used[k][day] = used + amount_minor
        return True


class StoreAndForward:
    """The SAF links: per issuer a FIFO of (transaction, kind, time queued), delivered one at a time."""

    def __init__(self, env: simpy.Environment, availability: Sequence[Availability], switch_timeout_s: float,
                 hop_out: tuple[list[float], list[float]], hop_back: tuple[list[float], list[float]],
                 apply: Callable[[int, int, float], None], switch_down: SwitchRestarts | None = None):
        self.env = env
        self._sw_starts = switch_down.starts.tolist() if switch_down is not None else []
        self._sw_ends = switch_down.ends.tolist() if switch_down is not None else []
        self.availability = availability
        self.timeout_s = switch_timeout_s
        self.hop_out = hop_out  # indexed [kind][txn]
        self.hop_back = hop_back
        self.apply = apply
        self.queues: list[collections.deque[tuple[int, int, float]]] = [collections.deque() for _ in availability]
        self._wake: list[simpy.Event | None] = [None] * len(availability)
        # One row per attempt: kind, txn, attempt number, sent, reached issuer (NaN: lost), acknowledged.
        self.log: dict[str, list] = {"kind": [], "txn": [], "attempt": [], "t_sent_s": [], "t_applied_s": [],
                                     "t_acked_s": []}
        self.queued = [0, 0]
        self._drained: simpy.Event | None = None
        for k in range(len(availability)):
            env.process(self._link(k))

    def enqueue(self, k: int, i: int, kind: int, t_s: float) -> None:
        """Queue a message for issuer `k` at time `t_s` (now)."""
        self.queues[k].append((i, kind, t_s))
        self.queued[kind] += 1
        wake = self._wake[k]
        if wake is not None:
            self._wake[k] = None
            wake.succeed()

    def pending(self) -> int:
        """Messages not yet acknowledged, over all issuers."""
        return sum(len(q) for q in self.queues)

    def drained(self) -> simpy.Event:
        """An event that succeeds once every queue is empty (at once if they are now).

        Queues can outlast the run's horizon (a long outage, slow links): the run then
        goes on until this event, with nothing but store-and-forward left to happen.
        """
        if self._drained is None:
            self._drained = self.env.event()
        if not self.pending():
            self._succeed_drained()
        return self._drained

    def _succeed_drained(self) -> None:
        if self._drained is not None and not self._drained.triggered:
            self._drained.succeed()

    def _link(self, k: int):
        env = self.env
        q = self.queues[k]
        av = self.availability[k]
        log = self.log
        t_free = 0.0  # when the previous message was acknowledged
        while True:
            if not q:
                wake = env.event()
                self._wake[k] = wake
                yield wake
                continue
            i, kind, t_queued = q[0]
            out = self.hop_out[kind][i]
            back = self.hop_back[kind][i]
            t = max(t_queued, t_free)
            attempt = 0
            applied = False
            while True:
                while True:  # not while the issuer is signed off, nor while the switch is down
                    end = av.announced_end_at(t)
                    if end is not None:
                        t = end
                    back_up = down_end_at(self._sw_starts, self._sw_ends, t) if self._sw_starts else None
                    if back_up is None:
                        break
                    t = back_up
                if t > env.now:
                    yield env.timeout(t - env.now)
                reach = t + out
                lost = av.down_at(reach)
                log["kind"].append(kind)
                log["txn"].append(i)
                log["attempt"].append(attempt)
                log["t_sent_s"].append(t)
                # The whole row now (NaN until known): another link may log an attempt meanwhile.
                row = len(log["t_applied_s"])
                log["t_applied_s"].append(math.nan)
                log["t_acked_s"].append(math.nan)
                if lost:
                    t = t + self.timeout_s
                    attempt += 1
                    continue
                if reach > env.now:
                    yield env.timeout(reach - env.now)
                if not applied:
                    self.apply(i, kind, reach)
                    applied = True
                acked = reach + back
                log["t_applied_s"][row] = reach
                if self._sw_starts and down_end_at(self._sw_starts, self._sw_ends, acked) is not None:
                    # The acknowledgement reaches a down switch: t_acked_s stays NaN.
                    t = t + self.timeout_s
                    attempt += 1
                    continue
                log["t_acked_s"][row] = acked
                if acked > env.now:
                    yield env.timeout(acked - env.now)
                q.popleft()
                t_free = acked
                if not self.pending():
                    self._succeed_drained()
                break


def wait_until(env: simpy.Environment, t: float):
    """Wait (`yield from`) until simulated time `t` exactly; a zero timeout if `t` has passed.

    SimPy schedules a timeout at `now + delay`, and `now + (t - now)` can round to a
    neighbour of `t` that no delay reaches exactly when `now` is far from `t`: two timers
    due at one instant as values (a stand-in at the switch's deadline, the acquirer's
    timeout) then woke one rounding step apart, in the wrong order. So: first to the
    last reachable time not after `t`, then, when short of it, on by `t - now`, which is
    exact that close to `t`.
    """
    now = env.now
    delay = t - now
    if delay <= 0.0:
        yield env.timeout(0.0)
        return
    for _ in range(4):  # a step or two at most
        if now + delay <= t:
            break
        delay = math.nextafter(delay, 0.0)
    yield env.timeout(delay)
    if env.now < t:
        yield env.timeout(t - env.now)


def switch_timer(env: simpy.Environment, signed_off: list[int], forwarded: list[int], t_switch: list[float],
                 deadline: list[float], answered_in_time: bytearray, stand_in: Callable[[int, float], None]):
    """One issuer's stand-in clock, as a SimPy process.

    `signed_off`: transactions the switch never forwards, sorted by (t_switch, id);
    `forwarded`: the others, sorted by (deadline, id). The process wakes only at the
    next decision it cannot rule out: a forwarded request whose in-time answer is
    already known (`answered_in_time`, set when its service starts) is skipped without
    waking, so in normal operation it wakes about once per timeout period.
    """
    ia = ib = 0
    na, nb = len(signed_off), len(forwarded)
    reached = -math.inf  # the simulated time this process has reached, as a value
    inf = math.inf
    while ia < na or ib < nb:
        while ib < nb and answered_in_time[forwarded[ib]]:
            ib += 1
        ta = t_switch[signed_off[ia]] if ia < na else inf
        tb = deadline[forwarded[ib]] if ib < nb else inf
        if ta == inf and tb == inf:
            return
        if ta <= tb:
            if ta > reached:
                yield from wait_until(env, ta)
                reached = ta
            stand_in(signed_off[ia], ta)
            ia += 1
        else:
            if tb > reached:
                yield from wait_until(env, tb)
                reached = tb
                continue  # look again: its answer may have become known meanwhile
            stand_in(forwarded[ib], tb)
            ib += 1
