"""Fast mode's authorisation path: detailed mode's semantics computed over arrays.

Owns: the same outcomes as `clearing_sim.model.authorisation.DetailedAuthorisation`,
transaction for transaction, without a SimPy process per authorisation. Each issuer is
independent of the others (its host, its cardholders' open-to-buy, its stand-in limits
and its store-and-forward link), so each is computed by compiled kernels (numba) in
passes that follow the order of causes in the detailed model:

1. the host: a FIFO multi-server queue over the arrivals at the host, sorted by
   (arrival, transaction id), with the availability timeline (outages lose the queue
   and the requests in service; degraded windows change the capacity without
   preempting) and the queue bound; its outcome is every request's start and end or
   how it was lost. This is the multi-server (Kiefer-Wolfowitz) recursion made exact
   under capacity changes by keeping the servers' completion times in a heap;
2. the switch: which forwarded requests are answered in time; stand-in decisions for
   the rest and for the requests never sent, in the detailed order (time, signed-off
   first, transaction id), against the per-purchase and per-day limits;
3. the acquirers: an answer later than the acquirer's timeout is reversed;
4. store-and-forward: advices and reversals per issuer, one in flight, repeated while
   the issuer is down;
5. the issuer's ledger: decisions (in the order services end) and applied advices and
   reversals, merged in time order, give each answer's response code.

Every time is computed with the same floating-point operations, on the same values,
as in detailed mode, so the outcomes are equal, not merely close. Exact ties between
events of different kinds at one instant (which need equal sums of continuous draws)
are ordered as the module docstring of `authorisation` states: availability changes
first, then completions, then arrivals; at the issuer, decisions before applied
messages. Must never draw random numbers or decide anything about clearing.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from clearing_sim.errors import InvariantError
from clearing_sim.model.authorisation import (
    ADVICE,
    APPROVED,
    DO_NOT_HONOUR,
    HOST_ANSWERED,
    HOST_DROPPED,
    HOST_LATE,
    HOST_LOST_IN_SERVICE,
    HOST_LOST_WAITING,
    INSUFFICIENT_FUNDS,
    ISSUER_UNAVAILABLE,
    REVERSAL,
    check_final_states,
    final_states,
    plan_authorisations,
    settle_lost_in_switch,
)
from clearing_sim.model.issuers import OpenToBuy, check_ledger
from clearing_sim.model.traffic import DAY_S
from clearing_sim.scenario import Scenario

_INF = math.inf


# --- the host -----------------------------------------------------------------------------


@numba.njit(cache=True)
def _heap_push(ht, hs, hi, size, t, s, i):
    """Push (t, s) -> i onto a binary min-heap kept in three arrays; returns the new size."""
    k = size
    ht[k] = t
    hs[k] = s
    hi[k] = i
    while k > 0:
        parent = (k - 1) // 2
        if ht[parent] < ht[k] or (ht[parent] == ht[k] and hs[parent] < hs[k]):
            break
        ht[parent], ht[k] = ht[k], ht[parent]
        hs[parent], hs[k] = hs[k], hs[parent]
        hi[parent], hi[k] = hi[k], hi[parent]
        k = parent
    return size + 1


@numba.njit(cache=True)
def _heap_pop(ht, hs, hi, size):
    """Remove the smallest entry; returns the new size (read ht[0], hi[0] before calling)."""
    size -= 1
    ht[0] = ht[size]
    hs[0] = hs[size]
    hi[0] = hi[size]
    k = 0
    while True:
        left = 2 * k + 1
        if left >= size:
            break
        small = left
        right = left + 1
        if right < size and (ht[right] < ht[left] or (ht[right] == ht[left] and hs[right] < hs[left])):
            small = right
        if ht[k] < ht[small] or (ht[k] == ht[small] and hs[k] <= hs[small]):
            break
        ht[small], ht[k] = ht[k], ht[small]
        hs[small], hs[k] = hs[k], hs[small]
        hi[small], hi[k] = hi[k], hi[small]
        k = small
    return size


@numba.njit(cache=True)
def _begin_service(i, t_now, service, crash_t, t_start, outcome, t_lost, started_epoch, epoch,
                   ht, hs, hi, hsize, seq):
    """Request `i` takes a server at `t_now`: lost at the first outage start strictly inside
    its service, else its completion goes on the heap. Returns (heap size, next sequence)."""
    te = t_now + service[i]
    t_start[i] = t_now
    pos = np.searchsorted(crash_t, t_now, side="right")
    if pos < len(crash_t) and crash_t[pos] < te:
        outcome[i] = HOST_LOST_IN_SERVICE
        t_lost[i] = crash_t[pos]
        return hsize, seq
    started_epoch[i] = epoch
    return _heap_push(ht, hs, hi, hsize, te, seq, i), seq + 1


@numba.njit(cache=True)
def host_kernel(t_in, service, servers, queue_limit, ch_t, ch_down, ch_cap, crash_t):
    """One host's FIFO queue; arrivals sorted by (arrival, id). Returns per request
    (t_start, t_end, outcome, t_lost), the completion order and the largest queue.

    outcome: 0 not yet known (answered or late, decided by the caller), or one of
    HOST_DROPPED / HOST_LOST_WAITING / HOST_LOST_IN_SERVICE.
    """
    n = len(t_in)
    t_start = np.full(n, np.nan)
    t_end = np.full(n, np.nan)
    t_lost = np.full(n, np.nan)
    outcome = np.zeros(n, dtype=np.int8)
    completed = np.empty(n, dtype=np.int64)
    n_completed = 0
    ht = np.empty(n + 1)
    hs = np.empty(n + 1, dtype=np.int64)
    hi = np.empty(n + 1, dtype=np.int64)
    hsize = 0
    wait = np.empty(n + 1, dtype=np.int64)
    w_head = 0
    w_tail = 0
    started_epoch = np.zeros(n, dtype=np.int64)
    epoch = 0
    busy = 0
    cap = servers
    seq = 0
    depth_max = 0
    ia = 0
    ic = 0
    nc = len(ch_t)
    while True:
        ta = t_in[ia] if ia < n else _INF
        tc = ch_t[ic] if ic < nc else _INF
        th = ht[0] if hsize > 0 else _INF
        if ta == _INF and tc == _INF and th == _INF:
            break
        to_start = -1
        t_now = 0.0
        if tc <= th and tc <= ta:  # an availability change comes first at its instant
            t_now = tc
            if ch_down[ic]:
                for w in range(w_head, w_tail):
                    j = wait[w]
                    outcome[j] = HOST_LOST_WAITING
                    t_lost[j] = tc
                w_head = w_tail
                busy = 0
                cap = 0
                # Requests in service past this instant were found lost at their start;
                # those ending exactly now still decide but free no server (a new epoch).
                epoch += 1
            else:
                cap = ch_cap[ic]
                to_start = 1
            ic += 1
        elif th <= ta:  # a service ends
            t_now = ht[0]
            i = hi[0]
            hsize = _heap_pop(ht, hs, hi, hsize)
            t_end[i] = t_now
            completed[n_completed] = i
            n_completed += 1
            if started_epoch[i] == epoch:  # started since the last crash: frees its server
                busy -= 1
                to_start = 1
        else:  # an arrival
            i = ia
            ia += 1
            t_now = t_in[i]
            if busy < cap:
                busy += 1
                hsize, seq = _begin_service(i, t_now, service, crash_t, t_start, outcome, t_lost,
                                            started_epoch, epoch, ht, hs, hi, hsize, seq)
            elif w_tail - w_head >= queue_limit:
                outcome[i] = HOST_DROPPED
                t_lost[i] = t_now
            else:
                wait[w_tail] = i
                w_tail += 1
                if w_tail - w_head > depth_max:
                    depth_max = w_tail - w_head
        if to_start == 1:
            while w_tail > w_head and busy < cap:
                j = wait[w_head]
                w_head += 1
                busy += 1
                hsize, seq = _begin_service(j, t_now, service, crash_t, t_start, outcome, t_lost,
                                            started_epoch, epoch, ht, hs, hi, hsize, seq)
    return t_start, t_end, outcome, t_lost, completed[:n_completed], depth_max


# --- the switch's stand-in --------------------------------------------------------------------


@numba.njit(cache=True)
def stand_in_kernel(t_decide, amount, per_transaction, daily, n_days):
    """Stand-in approvals in decision order (the caller sorts); returns approved flags."""
    used = np.zeros(n_days + 1, dtype=np.int64)
    approved = np.zeros(len(t_decide), dtype=np.bool_)
    for m in range(len(t_decide)):
        a = amount[m]
        if a > per_transaction:
            continue
        day = int(t_decide[m] // 86400.0)
        if day > n_days:
            day = n_days
        if used[day] + a > daily:
            continue
        used[day] += a
        approved[m] = True
    return approved


# --- store-and-forward ------------------------------------------------------------------------


@numba.njit(cache=True)
def _announced_end_at(t, o_start, o_end, o_announced):
    j = np.searchsorted(o_start, t, side="right") - 1
    if j >= 0 and t < o_end[j] and o_announced[j]:
        return o_end[j]
    return -1.0


@numba.njit(cache=True)
def _down_at(t, o_start, o_end):
    j = np.searchsorted(o_start, t, side="right") - 1
    return j >= 0 and t < o_end[j]


@numba.njit(cache=True)
def saf_kernel(t_queued, hop_out, hop_back, timeout_s, o_start, o_end, o_announced, sw_start, sw_end):
    """One issuer's SAF link over its messages in queue order. Returns, per attempt,
    (message, attempt, t_sent, t_applied or NaN), and per message when it was applied.
    `sw_start`/`sw_end`: the switch's down intervals (restarts), sorted."""
    m = len(t_queued)
    cap = 2 * m + 16
    a_msg = np.empty(cap, dtype=np.int64)
    a_no = np.empty(cap, dtype=np.int32)
    a_sent = np.empty(cap)
    a_applied = np.empty(cap)
    a_acked = np.empty(cap)
    n_att = 0
    applied = np.full(m, np.nan)
    t_free = 0.0
    for q in range(m):
        t = t_queued[q] if t_queued[q] > t_free else t_free
        attempt = 0
        done = False
        while True:
            while True:  # not while the issuer is signed off, nor while the switch is down
                end = _announced_end_at(t, o_start, o_end, o_announced)
                if end >= 0.0:
                    t = end
                if len(sw_start) == 0:
                    break
                j = np.searchsorted(sw_start, t, side="right") - 1
                if j >= 0 and t < sw_end[j]:
                    t = sw_end[j]
                else:
                    break
            reach = t + hop_out[q]
            if n_att == cap:
                cap *= 2
                a_msg = np.concatenate((a_msg, np.empty(cap - n_att, dtype=np.int64)))
                a_no = np.concatenate((a_no, np.empty(cap - n_att, dtype=np.int32)))
                a_sent = np.concatenate((a_sent, np.empty(cap - n_att)))
                a_applied = np.concatenate((a_applied, np.empty(cap - n_att)))
                a_acked = np.concatenate((a_acked, np.empty(cap - n_att)))
            a_msg[n_att] = q
            a_no[n_att] = attempt
            a_sent[n_att] = t
            if _down_at(reach, o_start, o_end):
                a_applied[n_att] = np.nan
                a_acked[n_att] = np.nan
                n_att += 1
                t = t + timeout_s
                attempt += 1
                continue
            acked = reach + hop_back[q]
            a_applied[n_att] = reach
            if not done:
                applied[q] = reach
                done = True
            if len(sw_start) > 0 and _down_at(acked, sw_start, sw_end):  # the ack reaches a down switch
                a_acked[n_att] = np.nan
                n_att += 1
                t = t + timeout_s
                attempt += 1
                continue
            a_acked[n_att] = acked
            n_att += 1
            t_free = acked
            break
    return a_msg[:n_att], a_no[:n_att], a_sent[:n_att], a_applied[:n_att], a_acked[:n_att], applied


# --- the issuer's ledger ----------------------------------------------------------------------


@numba.njit(cache=True)
def ledger_kernel(ev_t, ev_kind, ev_txn, slot, amount, risk, otb):
    """Apply an issuer's decisions (kind 2) and applied advices (0) and reversals (1) in
    the given order; returns each decided request's response code and who holds funds."""
    n = len(slot)
    code = np.full(n, -1, dtype=np.int16)
    held = np.zeros(n, dtype=np.bool_)
    reversed_at_issuer = np.zeros(n, dtype=np.bool_)
    for e in range(len(ev_t)):
        i = ev_txn[e]
        kind = ev_kind[e]
        s = slot[i]
        if kind == 2:
            if risk[i]:
                code[i] = DO_NOT_HONOUR
            elif amount[i] > otb[s]:
                code[i] = INSUFFICIENT_FUNDS
            else:
                code[i] = APPROVED
                if not reversed_at_issuer[i]:
                    otb[s] -= amount[i]
                    held[i] = True
        elif kind == 0:
            if not reversed_at_issuer[i] and not held[i]:
                otb[s] -= amount[i]
                held[i] = True
        else:
            reversed_at_issuer[i] = True
            if held[i]:
                otb[s] += amount[i]
                held[i] = False
    return code, held


# --- the whole path ---------------------------------------------------------------------------


class _SafLog:
    """The store-and-forward attempts, in the shape `DetailedAuthorisation.saf` exposes."""

    def __init__(self, log: dict[str, np.ndarray], queued: list[int]):
        self.log = log
        self.queued = queued


class FastAuthorisation:
    """Every authorisation of a run, computed before the SimPy run; same outcomes as detailed."""

    def __init__(self, scenario: Scenario, txn: dict[str, np.ndarray], routed_issuer: np.ndarray,
                 horizon_s: float):
        self.scenario = scenario
        self.txn = txn
        p = self.plan = plan_authorisations(scenario, txn, routed_issuer)
        out = self.out = p.out
        self.switch_timeout_s = p.switch_timeout_s
        n = len(txn["txn_id"])
        t_host_in = p.t_host_in
        h3, h4 = txn["hop_issuer_switch_s"], txn["hop_switch_acq_s"]
        amount = txn["amount_minor"].astype(np.int64)
        rates = np.array([i.risk_decline_rate for i in scenario.issuers] + [0.0])
        risk = txn["risk_u"] < rates[p.issuer]
        self.ledger = OpenToBuy(p.issuer, txn["card"], txn["credit_limit_minor"])
        slot = self.ledger.slot
        otb = np.array(self.ledger.initial_minor, dtype=np.int64)

        host_outcome = p.host_outcome.astype(np.int8)
        t_start_all = np.full(n, np.nan)
        t_end_all = np.full(n, np.nan)
        t_lost_all = np.full(n, np.nan)
        completion_order: list[np.ndarray] = []
        self.queue_depth_max = []
        for k, (iss, av) in enumerate(zip(scenario.issuers, p.availability)):
            idx = np.flatnonzero(p.visits & (p.issuer == k))
            idx = idx[np.lexsort((idx, t_host_in[idx]))]
            timeline = av.timeline()
            ch_t = np.array([c[0] for c in timeline], dtype=np.float64)
            ch_down = np.array([c[1] for c in timeline], dtype=np.bool_)
            ch_cap = np.array([c[2] for c in timeline], dtype=np.int64)
            crash_t = np.array(av.starts, dtype=np.float64)
            ts, te, oc, tl, done, depth = host_kernel(
                t_host_in[idx], txn["service_s"][idx], iss.host.servers, iss.host.queue_limit,
                ch_t, ch_down, ch_cap, crash_t)
            t_start_all[idx] = ts
            t_end_all[idx] = te
            t_lost_all[idx] = tl
            lost = oc != 0
            host_outcome[idx[lost]] = oc[lost]
            completion_order.append(idx[done])
            self.queue_depth_max.append(int(depth))

        # Which answers reach the switch in time; the in-bank ones always count.
        completed = ~np.isnan(t_end_all)
        t_answer = t_end_all + h3
        with np.errstate(invalid="ignore"):
            in_time = completed & (p.in_bank | (t_answer <= p.deadline))
        host_outcome[completed & in_time] = HOST_ANSWERED
        host_outcome[completed & ~in_time] = HOST_LATE
        out["t_host_start_s"][:] = t_start_all
        out["t_host_end_s"][:] = t_end_all
        # A switch restart between t_sw and the answer loses it (the issuer still decided).
        with np.errstate(invalid="ignore"):
            lost_in_flight = in_time & p.network & (t_answer > p.next_restart)
        net_answer = in_time & p.network & ~lost_in_flight
        out["t_switch_response_s"][net_answer] = t_answer[net_answer]
        resp = out["t_response_s"]
        resp[net_answer] = t_answer[net_answer] + h4[net_answer]
        bank_answer = in_time & p.in_bank
        resp[bank_answer] = t_end_all[bank_answer] + h4[bank_answer]
        bank_lost = p.in_bank & np.isin(host_outcome, (HOST_DROPPED, HOST_LOST_WAITING, HOST_LOST_IN_SERVICE))
        out["response_code"][bank_lost] = ISSUER_UNAVAILABLE
        resp[bank_lost] = t_lost_all[bank_lost] + h4[bank_lost]

        # Stand-in: never sent (signed off) at t_sw, or not answered in time at the deadline.
        n_days = int(horizon_s // DAY_S) + 1
        advice_txn: list[np.ndarray] = []
        advice_t: list[np.ndarray] = []
        for k, iss in enumerate(scenario.issuers):
            a = np.flatnonzero(p.network & (p.issuer == k) & p.signed_off)
            b = np.flatnonzero(p.network & (p.issuer == k) & ~p.signed_off & ~in_time & ~p.switch_lost)
            clock_lost = p.deadline[b] > p.next_restart[b]  # a restart loses the stand-in clock
            lost_in_flight[b[clock_lost]] = True
            b = b[~clock_lost]
            cand = np.concatenate([a, b])
            t_dec = np.concatenate([p.t_sw[a], p.deadline[b]])
            first = np.concatenate([np.zeros(len(a), np.int8), np.ones(len(b), np.int8)])
            order = np.lexsort((cand, first, t_dec))
            cand, t_dec = cand[order], t_dec[order]
            ok = stand_in_kernel(t_dec, amount[cand], iss.stand_in.per_transaction_minor,
                                 iss.stand_in.daily_minor, n_days)
            out["stand_in"][cand] = True
            out["response_code"][cand] = np.where(ok, APPROVED, ISSUER_UNAVAILABLE)
            out["t_switch_response_s"][cand] = t_dec
            resp[cand] = t_dec + h4[cand]
            advice_txn.append(cand[ok])
            advice_t.append(t_dec[ok])

        # Reversals: an answer later than the acquirer's timeout, or none (lost in the switch).
        lost = out["lost_in_switch"]
        lost |= lost_in_flight
        settle_lost_in_switch(out, p.acq_deadline)
        if np.isnan(resp[p.switched]).any():
            raise InvariantError("fast mode: a switched authorisation has no answer before its reversal check")
        rev = p.switched & ((resp > p.acq_deadline) | lost)
        out["reversed"][:] = rev
        t_rev = p.t_rev_at_switch
        out["t_reversal_s"][rev] = t_rev[rev]

        # Store-and-forward per issuer, then the ledger.
        self._held = np.zeros(n, dtype=bool)
        log_cols: dict[str, list[np.ndarray]] = {k: [] for k in ("kind", "txn", "attempt", "t_sent_s",
                                                                  "t_applied_s", "t_acked_s")}
        queued = [0, 0]
        for k in range(len(scenario.issuers)):
            av = p.availability[k]
            r = np.flatnonzero(rev & (p.issuer == k))
            r = r[np.lexsort((r, p.acq_deadline[r]))]
            m_txn = np.concatenate([advice_txn[k], r])
            m_kind = np.concatenate([np.full(len(advice_txn[k]), ADVICE, np.int8), np.full(len(r), REVERSAL, np.int8)])
            m_t = np.concatenate([advice_t[k], t_rev[r]])
            seq = np.arange(len(m_txn))
            order = np.lexsort((seq, m_t))
            m_txn, m_kind, m_t = m_txn[order], m_kind[order], m_t[order]
            queued[ADVICE] += int((m_kind == ADVICE).sum())
            queued[REVERSAL] += int((m_kind == REVERSAL).sum())
            hop_out = np.where(m_kind == ADVICE, txn["hop_advice_out_s"][m_txn], txn["hop_rev_out_s"][m_txn])
            hop_back = np.where(m_kind == ADVICE, txn["hop_advice_back_s"][m_txn], txn["hop_rev_back_s"][m_txn])
            a_msg, a_no, a_sent, a_applied, a_acked, applied = saf_kernel(
                m_t, hop_out, hop_back, self.switch_timeout_s,
                np.array(av.starts, dtype=np.float64), np.array(av.ends, dtype=np.float64),
                np.array(av.announced, dtype=np.bool_), p.restarts.starts, p.restarts.ends)
            log_cols["kind"].append(m_kind[a_msg])
            log_cols["txn"].append(m_txn[a_msg])
            log_cols["attempt"].append(a_no)
            log_cols["t_sent_s"].append(a_sent)
            log_cols["t_applied_s"].append(a_applied)
            log_cols["t_acked_s"].append(a_acked)
            is_adv = m_kind == ADVICE
            out["t_advice_applied_s"][m_txn[is_adv]] = applied[is_adv]
            out["t_reversal_applied_s"][m_txn[~is_adv]] = applied[~is_adv]

            # The ledger: decisions (completion order) merged with applied messages by time.
            done = completion_order[k]
            done = done[in_time[done]]
            ev_t = np.concatenate([t_end_all[done], applied])
            ev_kind = np.concatenate([np.full(len(done), 2, np.int8), m_kind])
            ev_txn = np.concatenate([done, m_txn])
            rank = np.concatenate([np.zeros(len(done), np.int8), np.ones(len(m_txn), np.int8)])
            seq = np.arange(len(ev_t))
            order = np.lexsort((seq, rank, ev_t))
            code_k, held_k = ledger_kernel(ev_t[order], ev_kind[order], ev_txn[order], slot, amount, risk, otb)
            decided = done[~lost[done]]  # a lost one's issuer decided, but the acquirer never heard
            out["response_code"][decided] = code_k[decided]
            mine = p.issuer == k
            self._held[mine] = held_k[mine]
        self._otb = otb
        self.saf = _SafLog(
            {name: (np.concatenate(v) if v else np.empty(0)) for name, v in log_cols.items()}, queued)
        if len(self.saf.log["t_acked_s"]) and np.nanmax(self.saf.log["t_acked_s"], initial=0.0) > horizon_s:
            raise InvariantError("fast mode: a store-and-forward message is acknowledged after the run ends")
        out["host_outcome"][:] = host_outcome

    def finish(self) -> None:
        """Set every final state (the outcome columns are complete from the start)."""
        self.ledger.open_to_buy = self._otb.tolist()
        self.out["final_state"][:] = final_states(self.out)

    def held(self) -> np.ndarray:
        """Whether the issuer's ledger holds each authorisation's amount at the end."""
        return self._held

    def check(self) -> None:
        """The same end-of-run checks as detailed mode; raises InvariantError."""
        out = self.out
        problem = check_ledger(self.ledger, self.held(), self.txn["amount_minor"])
        if problem:
            raise InvariantError(problem)
        keeps = (out["response_code"] == APPROVED) & ~out["reversed"]
        routed = out["routed_issuer"] >= 0
        if not np.array_equal(self.held() & routed, keeps & routed):
            raise InvariantError("the issuers' ledgers disagree with the approved, unreversed authorisations")
        check_final_states(out, self.plan.acq_deadline.tolist(), self.switch_timeout_s)
