"""Switch restarts: when the switch is down and which messages it loses (a fault scenario).

Owns: the switch's restart timeline (`network.switch_restarts`), as static intervals
known before the run, and the pure rules both fidelity modes apply with it. Must never
draw random numbers or hold run-time state: the switch's store-and-forward queue and
its stand-in totals are persistent and survive a restart (they live in
`clearing_sim.model.switch`).

Rules (detailed mode's semantics, which fast mode reproduces). A restart at R with
`down_s` = d makes the switch down over the half-open interval [R, R + d).

* In flight. The switch holds an authorisation from the instant it receives the 0100
  (t_sw) until its answer leaves the switch (an issuer's answer when it reaches the
  switch, a stand-in answer when the switch decides). If a restart R falls strictly
  between the two (t_sw < R < answer), the authorisation is lost in the switch: the
  answer is never sent to the acquirer, and the switch's stand-in clock for it is
  lost too (no stand-in, no advice). An answer leaving exactly at R is sent. A request
  forwarded before R still reaches its issuer, which decides it as usual (and may
  draw open-to-buy down); the switch discards that answer.
* Down. A 0100 reaching the switch while it is down (R <= t_sw < R + d) is lost: it
  is never routed nor forwarded (unknown BINs included: no `14`). One reaching it
  exactly at R + d is handled.
* Either way the acquirer gets no answer: its timer expires at t_arrival +
  auth_timeout and it sends an 0400 reversal. The authorisation ends in the final state
  `lost_in_switch_reversed`, with response code `91` (switch inoperative, the
  acquirer's own decline), `t_response_s` the acquirer's timeout and no
  `t_switch_response_s`. It is never presented for clearing.
* Reversals. An 0400 (of any authorisation) reaching the switch while it is down is
  lost; the acquirer repeats it (0401, same latency) one `auth_timeout_ms` after the
  previous send, until one reaches the switch up. `t_reversal_s` is when that one
  arrives; the switch answers 0410 and queues the 0420 for the issuer then.
* Store-and-forward (persistent). The switch sends nothing while it is down: a send
  falling in [R, R + d) waits until R + d. An acknowledgement (0130 / 0430) reaching
  the switch while it is down is lost: the switch resends the message (0121 / 0421)
  one switch timeout after the previous send, as for a message lost at a down issuer;
  the issuer recognises a repeat of a message it has applied and only acknowledges it.
"""

from __future__ import annotations

import bisect

import numpy as np

from clearing_sim.scenario import Scenario

# Bound on an acquirer's 0400 repeats for one reversal (each repeat is one auth_timeout
# later, and a restart is down at most a day): a loop bound, never reached in practice.
MAX_REVERSAL_REPEATS = 100_000


class SwitchRestarts:
    """The switch's down intervals [start, end), sorted, as arrays and lists."""

    def __init__(self, scenario: Scenario):
        spans = sorted(r.interval_s for r in scenario.network.switch_restarts)
        self.starts = np.array([s for s, _ in spans], dtype=np.float64)
        self.ends = np.array([e for _, e in spans], dtype=np.float64)

    def __bool__(self) -> bool:
        return len(self.starts) > 0

    def down(self, t: np.ndarray) -> np.ndarray:
        """Whether the switch is down at each time (NaN: False)."""
        t = np.asarray(t, dtype=np.float64)
        if not len(self.starts):
            return np.zeros(t.shape, dtype=bool)
        idx = np.searchsorted(self.starts, t, side="right") - 1
        safe = np.maximum(idx, 0)
        with np.errstate(invalid="ignore"):
            return (idx >= 0) & (t < self.ends[safe])

    def next_restart(self, t: np.ndarray) -> np.ndarray:
        """The first restart strictly after each time (inf if none; NaN stays NaN-safe: inf)."""
        t = np.asarray(t, dtype=np.float64)
        starts = np.append(self.starts, np.inf)
        idx = np.searchsorted(self.starts, t, side="right")  # NaN sorts last: inf
        return starts[idx]

    def reversal_arrival(self, t_send: np.ndarray, hop_s: np.ndarray, repeat_s: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
        """(when the 0400 that gets through reaches the switch, how many 0401 repeats it took).

        The m-th send is at t_send + repeat_s added m times (the same float operations in
        both modes); a send whose message reaches the switch down is repeated.
        """
        send = np.asarray(t_send, dtype=np.float64).copy()
        repeats = np.zeros(len(send), dtype=np.int64)
        arrival = send + hop_s
        if not len(self.starts):
            return arrival, repeats
        lost = self.down(arrival)
        for _ in range(MAX_REVERSAL_REPEATS):
            if not lost.any():
                return arrival, repeats
            send[lost] = send[lost] + repeat_s[lost]
            repeats[lost] += 1
            arrival[lost] = send[lost] + hop_s[lost]
            lost = self.down(arrival)
        raise RuntimeError("an acquirer's reversal never reached the switch")  # bounded loop

    def reversal_sends(self, t_send: np.ndarray, repeat_s: np.ndarray, repeats: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Every send of each reversal as rows (index into the inputs, send time), for the trace."""
        rows_i, rows_t = [], []
        send = np.asarray(t_send, dtype=np.float64).copy()
        alive = np.arange(len(send))
        m = 0
        while len(alive):
            rows_i.append(alive)
            rows_t.append(send[alive])
            alive = alive[repeats[alive] > m]
            send[alive] = send[alive] + repeat_s[alive]
            m += 1
        if not rows_i:
            return np.empty(0, dtype=np.int64), np.empty(0)
        return np.concatenate(rows_i), np.concatenate(rows_t)


def down_end_at(starts: list[float], ends: list[float], t: float) -> float | None:
    """The end of the switch's down interval containing `t`, or None (scalar, for SAF)."""
    j = bisect.bisect_right(starts, t) - 1
    if j >= 0 and t < ends[j]:
        return ends[j]
    return None
