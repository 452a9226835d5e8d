"""Issuer hosts: when they are up, their FIFO servers, and each cardholder's open-to-buy.

Owns: one host's availability as a static timeline (outages and degraded-capacity
windows from the scenario, known before the run starts), the host's run-time queue
state (busy servers, current capacity, the FIFO line of waiting requests), and the
issuer's ledger of open-to-buy per card. Must never decide for the switch (stand-in
and store-and-forward are `clearing_sim.model.switch`'s) and never draw random numbers.

Rules (the detailed mode's semantics, which a fast mode must reproduce):

* Availability. Outages are half-open intervals [s, e) of simulated seconds, so are
  degraded windows [b, f). At every instant the host is either down (inside an outage;
  capacity 0) or up with capacity `servers`, or the window's `servers` inside a
  degraded window. An outage wins over a degraded window. At an instant where the
  availability changes, the change takes effect before anything else that happens at
  that instant (arrivals, service completions).
* Going down at s: every request waiting in the queue at s is lost, and so is every
  request in service whose service would end after s (one ending exactly at s
  completes). Lost requests get no answer. Busy servers are reset to 0.
* While down, every request reaching the host is lost (a request reaching it at
  exactly e is not: it is served from e).
* Capacity changes never preempt: after a drop in capacity, requests in service run to
  completion and no request starts until fewer than the new capacity are busy. After a
  rise (or at e), waiting requests start at once, in FIFO order, up to the capacity.
* Queue. One FIFO line per host; FIFO order is the order of arrival at the host, ties
  broken by transaction id. A request starts at max(its arrival, the instant a server
  becomes free to it); its service ends `service_s` later. A request that arrives when
  `queue_limit` requests are already waiting is dropped (never answered).
* Open-to-buy. Each card starts the run with open-to-buy equal to its credit limit.
  The issuer decides a request when its service ends: `05` if the risk rule fires
  (`risk_u < risk_decline_rate`), else `51` if the amount exceeds the card's current
  open-to-buy, else `00`, drawing the open-to-buy down by the amount. Decisions are
  taken in the order services end (ties: the order the services started). A decision
  whose answer reaches the switch after the switch's timeout is void: the switch has
  already stood in, and the decision leaves open-to-buy untouched.
  A stand-in advice applied by the issuer draws the open-to-buy down unconditionally
  (it may go below zero). A reversal applied by the issuer restores what the
  authorisation had drawn down, if anything; an approval or advice that reaches the
  issuer after the reversal of the same authorisation draws nothing down.
  Advices and reversals are applied when they reach the issuer, without queueing
  for the host's servers.
"""

from __future__ import annotations

import bisect
import collections

import numpy as np

from clearing_sim.scenario import Host


class Availability:
    """One host's outages and degraded windows as sorted, static intervals."""

    def __init__(self, host: Host):
        outages = sorted((o.interval_s, o.announced) for o in host.outages)
        self.starts = [s for (s, _), _ in outages]
        self.ends = [e for (_, e), _ in outages]
        self.announced = [a for _, a in outages]
        self._starts = np.array(self.starts, dtype=np.float64)
        self._ends = np.array(self.ends, dtype=np.float64)
        self._announced = np.array(self.announced, dtype=bool)
        self.servers = host.servers
        self.degraded = sorted((d.interval_s, d.servers) for d in host.degraded)

    def _outage_index(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per time: index of the outage containing it and whether there is one."""
        idx = np.searchsorted(self._starts, t, side="right") - 1
        safe = np.maximum(idx, 0)
        inside = (idx >= 0) & (t < self._ends[safe]) if len(self._starts) else np.zeros(t.shape, dtype=bool)
        return safe, inside

    def down(self, t: np.ndarray) -> np.ndarray:
        """Whether the host is down at each time (inside any outage)."""
        if not self.starts:
            return np.zeros(np.shape(t), dtype=bool)
        _, inside = self._outage_index(np.asarray(t, dtype=np.float64))
        return inside

    def announced_down(self, t: np.ndarray) -> np.ndarray:
        """Whether the issuer is signed off at each time (inside an announced outage)."""
        if not self.starts:
            return np.zeros(np.shape(t), dtype=bool)
        idx, inside = self._outage_index(np.asarray(t, dtype=np.float64))
        return inside & self._announced[idx]

    def down_at(self, t: float) -> bool:
        """Scalar `down`, for rare run-time checks."""
        j = bisect.bisect_right(self.starts, t) - 1
        return j >= 0 and t < self.ends[j]

    def announced_end_at(self, t: float) -> float | None:
        """The end of the announced outage containing `t`, or None."""
        j = bisect.bisect_right(self.starts, t) - 1
        if j >= 0 and t < self.ends[j] and self.announced[j]:
            return self.ends[j]
        return None

    def capacity_at(self, t: float) -> int:
        """Servers available at `t`: 0 when down, the window's servers when degraded."""
        if self.down_at(t):
            return 0
        for (b, f), servers in self.degraded:
            if b <= t < f:
                return servers
        return self.servers

    def timeline(self) -> list[tuple[float, bool, int]]:
        """(time, down, capacity) at every instant where the host's availability changes."""
        times = sorted({t for s, e in zip(self.starts, self.ends) for t in (s, e)}
                       | {t for (b, f), _ in self.degraded for t in (b, f)})
        out: list[tuple[float, bool, int]] = []
        state = (False, self.servers)
        for t in times:
            new = (self.down_at(t), self.capacity_at(t))
            if new != state:
                out.append((t, new[0], new[1]))
                state = new
        return out


class HostState:
    """A host's run-time state: servers busy now, capacity now, the FIFO line of waiting requests."""

    __slots__ = ("index", "busy", "cap", "waiting", "epoch", "queue_limit", "queue_depth_max", "crash_times")

    def __init__(self, index: int, host: Host, availability: Availability):
        self.index = index
        self.busy = 0
        self.cap = host.servers
        self.waiting: collections.deque[int] = collections.deque()
        self.epoch = 0  # bumped when the host goes down: completions from before do not free a server
        self.queue_limit = host.queue_limit
        self.queue_depth_max = 0
        self.crash_times = list(availability.starts)

    def crash_between(self, t_start: float, t_end: float) -> float | None:
        """The first outage start s with t_start < s < t_end (a service cut short), or None."""
        ct = self.crash_times
        if not ct:
            return None
        j = bisect.bisect_right(ct, t_start)
        if j < len(ct) and ct[j] < t_end:
            return ct[j]
        return None


class OpenToBuy:
    """The issuers' ledger: open-to-buy per card (Python ints indexed by a dense card slot)."""

    def __init__(self, issuer: np.ndarray, card: np.ndarray, credit_limit_minor: np.ndarray):
        key = issuer.astype(np.int64) * (1 << 40) + card.astype(np.int64)
        _, first, slot = np.unique(key, return_index=True, return_inverse=True)
        self.slot = slot.astype(np.int64)
        self.initial_minor = credit_limit_minor[first].astype(np.int64)
        self.open_to_buy = self.initial_minor.tolist()

    def final_minor(self) -> np.ndarray:
        """Open-to-buy of every card slot now (int64)."""
        return np.array(self.open_to_buy, dtype=np.int64)


def check_ledger(otb: OpenToBuy, held: np.ndarray, amount_minor: np.ndarray) -> str | None:
    """None if every card's open-to-buy is its limit minus what it holds; else what is wrong."""
    held_minor = np.zeros(len(otb.initial_minor), dtype=np.int64)
    np.add.at(held_minor, otb.slot[held], amount_minor[held])
    expected = otb.initial_minor - held_minor
    actual = otb.final_minor()
    bad = np.flatnonzero(expected != actual)
    if len(bad):
        return f"{len(bad)} card(s) whose open-to-buy is not their limit minus what they hold"
    return None

