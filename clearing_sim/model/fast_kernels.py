"""Fast mode's compiled kernels (numba): one issuer's host, stand-in, store-and-forward and ledger.

Owns: the loops that cannot be vectorised, written as steps over a stream. Each kernel
takes the state it left behind last time (arrays it updates in place, or values it
returns) and the new input, and processes only events strictly before a watermark `W`,
so a day can be fed in chunks and give exactly what one call over the whole day gives.
Rows are indices into the caller's table of live authorisations. Must never draw random
numbers, allocate per event, or know about more than one issuer.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_INF = math.inf

# Host outcomes and a response code decided inside the kernels (values of clearing_sim.model.authorisation).
_DROPPED = 2
_LOST_WAITING = 3
_LOST_IN_SERVICE = 4
_HOST_ANSWERED = 5
_HOST_LATE = 6
_ISSUER_UNAVAILABLE = 91

# Slots of the host's scalar state (an int64 array the kernel updates in place).
ST_BUSY, ST_CAP, ST_EPOCH, ST_SEQ, ST_CHANGE, ST_DEPTH_MAX, ST_HEAP, ST_WAIT_HEAD, ST_WAIT_TAIL = range(9)
HOST_STATE_SIZE = 9


# --- the host -----------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, inline="always")
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


@numba.njit(cache=True, nogil=True, inline="always")
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


@numba.njit(cache=True, nogil=True, inline="always")
def _begin_service(i, t_now, service, crash_t, t_start, outcome, t_lost, started_epoch, epoch,
                   ht, hs, hi, hsize, seq):
    """Row `i` takes a server at `t_now`: lost at the first outage start strictly inside
    its service, else its completion goes on the heap. Returns (heap size, next sequence)."""
    te = t_now + service[i]
    t_start[i] = t_now
    pos = np.searchsorted(crash_t, t_now, side="right")
    if pos < len(crash_t) and crash_t[pos] < te:
        outcome[i] = _LOST_IN_SERVICE
        t_lost[i] = crash_t[pos]
        return hsize, seq
    started_epoch[i] = epoch
    return _heap_push(ht, hs, hi, hsize, te, seq, i), seq + 1


@numba.njit(cache=True, nogil=True)
def host_step(arrivals, t_in, service, W, queue_limit, ch_t, ch_down, ch_cap, crash_t, st,
              ht, hs, hi, wait, t_start, t_end, t_lost, outcome, started_epoch, done_seq):
    """Advance one host's FIFO queue through every event strictly before `W`.

    `arrivals`: rows not yet at the host, sorted by (arrival at the host, transaction id);
    returns how many of them were taken. `st` is the scalar state (ST_* slots); the
    heap (ht, hs, hi: completion time, start sequence, row) and the waiting line
    `wait[head:tail]` carry requests across calls; the caller sizes them. Per row it
    sets t_start when a service starts; t_end and done_seq (the start sequence, which
    orders equal completions) when it ends; outcome and t_lost when the request is lost.

    Availability changes come first at their instant, then completions, then arrivals.
    An outage loses the waiting line and every request in service (found at its start,
    see `_begin_service`); those ending exactly at the outage still decide but free no
    server (a new epoch). The multi-server FIFO recursion, exact under capacity changes.
    """
    busy = st[ST_BUSY]
    cap = st[ST_CAP]
    epoch = st[ST_EPOCH]
    seq = st[ST_SEQ]
    ic = st[ST_CHANGE]
    depth_max = st[ST_DEPTH_MAX]
    hsize = st[ST_HEAP]
    w_head = st[ST_WAIT_HEAD]
    w_tail = st[ST_WAIT_TAIL]
    n = len(arrivals)
    nc = len(ch_t)
    ia = 0
    while True:
        ta = t_in[arrivals[ia]] if ia < n else _INF
        tc = ch_t[ic] if ic < nc else _INF
        th = ht[0] if hsize > 0 else _INF
        if min(ta, min(tc, th)) >= W:
            break
        to_start = False
        t_now = 0.0
        if tc <= th and tc <= ta:  # an availability change comes first at its instant
            t_now = tc
            if ch_down[ic]:
                for w in range(w_head, w_tail):
                    j = wait[w]
                    outcome[j] = _LOST_WAITING
                    t_lost[j] = tc
                w_head = w_tail
                busy = 0
                cap = 0
                epoch += 1
            else:
                cap = ch_cap[ic]
                to_start = True
            ic += 1
        elif th <= ta:  # a service ends
            t_now = ht[0]
            i = hi[0]
            done_seq[i] = hs[0]
            hsize = _heap_pop(ht, hs, hi, hsize)
            t_end[i] = t_now
            if started_epoch[i] == epoch:  # started since the last crash: frees its server
                busy -= 1
                to_start = True
        else:  # an arrival
            i = arrivals[ia]
            ia += 1
            t_now = t_in[i]
            if busy < cap:
                busy += 1
                hsize, seq = _begin_service(i, t_now, service, crash_t, t_start, outcome, t_lost,
                                            started_epoch, epoch, ht, hs, hi, hsize, seq)
            elif w_tail - w_head >= queue_limit:
                outcome[i] = _DROPPED
                t_lost[i] = t_now
            else:
                wait[w_tail] = i
                w_tail += 1
                if w_tail - w_head > depth_max:
                    depth_max = w_tail - w_head
        if to_start:
            while w_tail > w_head and busy < cap:
                j = wait[w_head]
                w_head += 1
                busy += 1
                hsize, seq = _begin_service(j, t_now, service, crash_t, t_start, outcome, t_lost,
                                            started_epoch, epoch, ht, hs, hi, hsize, seq)
    st[ST_BUSY] = busy
    st[ST_CAP] = cap
    st[ST_EPOCH] = epoch
    st[ST_SEQ] = seq
    st[ST_CHANGE] = ic
    st[ST_DEPTH_MAX] = depth_max
    st[ST_HEAP] = hsize
    st[ST_WAIT_HEAD] = w_head
    st[ST_WAIT_TAIL] = w_tail
    return ia


# --- the host's answers -----------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def answers_step(t_end, t_lost, t_start, host_lost, h3, h4, deadline, next_restart, network, in_bank, answered,
                 in_time, lost_in_flight, out_host_outcome, out_t_host_end_s, out_t_switch_response_s,
                 out_t_response_s, out_response_code, out_t_host_start_s):
    """Per row not yet `answered`: a host answer (t_end known) is in time if the row is in the
    bank or the answer (t_end + h3) reaches the switch by the deadline, and lost in flight if a
    switch restart comes first; a request the host lost (host_lost != 0) is answered by its
    outcome (`91` at t_lost + h4 in the bank). Every row's known t_start is copied out."""
    for i in range(len(t_end)):
        te = t_end[i]
        if not answered[i]:
            if not np.isnan(te):
                t_answer = te + h3[i]
                it = in_bank[i] or t_answer <= deadline[i]
                in_time[i] = it
                out_host_outcome[i] = _HOST_ANSWERED if it else _HOST_LATE
                out_t_host_end_s[i] = te
                lif = it and network[i] and t_answer > next_restart[i]
                lost_in_flight[i] = lif
                if it and network[i] and not lif:
                    out_t_switch_response_s[i] = t_answer
                    out_t_response_s[i] = t_answer + h4[i]
                if it and in_bank[i]:
                    out_t_response_s[i] = te + h4[i]
                answered[i] = True
            elif host_lost[i] != 0:
                out_host_outcome[i] = host_lost[i]
                if in_bank[i]:
                    out_response_code[i] = _ISSUER_UNAVAILABLE
                    out_t_response_s[i] = t_lost[i] + h4[i]
                answered[i] = True
        if not np.isnan(t_start[i]):
            out_t_host_start_s[i] = t_start[i]


# --- the acquirers' timers --------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def reversals_step(W, reversal_done, in_bank, acq_deadline, out_lost_in_switch, lost_in_flight, out_t_response_s,
                   t_rev, out_reversed, out_t_reversal_s, messages_open, rev):
    """Per row whose acquirer timer is decided (not yet done; in the bank, or its deadline
    before W): done; a switched one whose answer was lost, never came or came after the
    deadline is reversed at t_rev and has one more message open. Writes the reversed rows,
    ascending, to the front of `rev` (sized for every row) and returns how many."""
    m = 0
    for i in range(len(reversal_done)):
        if reversal_done[i] or not (in_bank[i] or acq_deadline[i] < W):
            continue
        reversal_done[i] = True
        if in_bank[i]:
            continue
        resp = out_t_response_s[i]
        if out_lost_in_switch[i] or lost_in_flight[i] or np.isnan(resp) or resp > acq_deadline[i]:
            out_reversed[i] = True
            out_t_reversal_s[i] = t_rev[i]
            messages_open[i] += 1
            rev[m] = i
            m += 1
    return m


# --- the switch's stand-in --------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def stand_in_step(t_decide, amount, per_transaction, daily, used):
    """Stand-in approvals in decision order (the caller sorts); `used[day]` carries each
    day's approved total across calls. Returns approved flags."""
    last = len(used) - 1
    approved = np.zeros(len(t_decide), dtype=np.bool_)
    for m in range(len(t_decide)):
        a = amount[m]
        if a > per_transaction:
            continue
        day = int(t_decide[m] // 86400.0)
        if day > last:
            day = last
        if used[day] + a > daily:
            continue
        used[day] += a
        approved[m] = True
    return approved


# --- store-and-forward ------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _announced_end_at(t, o_start, o_end, o_announced):
    j = np.searchsorted(o_start, t, side="right") - 1
    if j >= 0 and t < o_end[j] and o_announced[j]:
        return o_end[j]
    return -1.0


@numba.njit(cache=True, nogil=True)
def _down_at(t, o_start, o_end):
    j = np.searchsorted(o_start, t, side="right") - 1
    return j >= 0 and t < o_end[j]


@numba.njit(cache=True, nogil=True)
def saf_step(t_queued, hop_out, hop_back, timeout_s, o_start, o_end, o_announced, sw_start, sw_end, t_free):
    """One issuer's store-and-forward link over its next messages in queue order, one in
    flight, repeated while the issuer is down or the acknowledgement is lost to a switch
    restart; `t_free` is when the link's last message was acknowledged. Returns, per
    attempt, (message, attempt, t_sent, t_applied or NaN, t_acked or NaN), per message
    when it was applied, and the new `t_free`. `sw_start`/`sw_end`: the switch's down
    intervals (restarts), sorted."""
    m = len(t_queued)
    cap = 2 * m + 16
    a_msg = np.empty(cap, dtype=np.int64)
    a_no = np.empty(cap, dtype=np.int32)
    a_sent = np.empty(cap)
    a_applied = np.empty(cap)
    a_acked = np.empty(cap)
    n_att = 0
    applied = np.full(m, np.nan)
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
    return a_msg[:n_att], a_no[:n_att], a_sent[:n_att], a_applied[:n_att], a_acked[:n_att], applied, t_free


# --- the issuer's ledger ----------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def ledger_step(ev_kind, ev_row, card, amount, limit, risk, otb, touched, code, held, reversed_at_issuer,
                messages_open, decision_applied):
    """Apply an issuer's events in the given order: decisions (kind 2), applied advices
    (0) and reversals (1). `otb[card]` is each card's open-to-buy, set to the card's
    limit the first time the card is touched; `code`, `held` and `reversed_at_issuer`
    are per row and carry across calls. Per row, an applied message takes one off
    `messages_open` and a decision sets `decision_applied` (the ledger has them now)."""
    for e in range(len(ev_kind)):
        i = ev_row[e]
        kind = ev_kind[e]
        c = card[i]
        if not touched[c]:
            touched[c] = True
            otb[c] = limit[i]
        if kind != 2:
            messages_open[i] -= 1
        else:
            decision_applied[i] = True
        if kind == 2:
            if risk[i]:
                code[i] = 5  # do not honour
            elif amount[i] > otb[c]:
                code[i] = 51  # insufficient funds
            else:
                code[i] = 0
                if not reversed_at_issuer[i]:
                    otb[c] -= amount[i]
                    held[i] = True
        elif kind == 0:
            if not reversed_at_issuer[i] and not held[i]:
                otb[c] -= amount[i]
                held[i] = True
        else:
            reversed_at_issuer[i] = True
            if held[i]:
                otb[c] += amount[i]
                held[i] = False


@numba.njit(cache=True, nogil=True)
def add_held(held_minor, final, held, card, amount):
    """Add each final row's amount, when its ledger holds it, to its card's `held_minor`
    (what `np.add.at` over the selected rows gives, without the gathers)."""
    for i in range(len(final)):
        if final[i] and held[i]:
            held_minor[card[i]] += amount[i]


# --- the summary's figures --------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def figure_cells(group, final_state, code, code_index, stand_in, reversed_, lost, host_outcome, host_not_sent,
                 amount, n_states, n_codes, n_flags, count, minor):
    """Count each purchase, and add its amount, into its cell of the summary's totals
    (`clearing_sim.stream_figures`): cell ((group * n_states + state) * n_codes + code
    index) * n_flags + flags, where a final state outside 0..n_states-2 counts as
    n_states - 1, a response code outside `code_index` as n_codes - 1, and the flag bits
    are 1 stand-in, 2 reversed, 4 lost in the switch, 8 sent to the host. What
    `np.bincount` and `np.add.at` over the cells give (int64 sums wrap alike), in one pass
    and without temporaries."""
    for i in range(len(group)):
        s = final_state[i]
        if s < 0 or s >= n_states - 1:
            s = n_states - 1
        c = code[i]
        if c >= 0 and c < len(code_index):
            ci = code_index[c]
        else:
            ci = n_codes - 1
        f = 0
        if stand_in[i]:
            f |= 1
        if reversed_[i]:
            f |= 2
        if lost[i]:
            f |= 4
        if host_outcome[i] != host_not_sent:
            f |= 8
        cell = ((np.int64(group[i]) * n_states + s) * n_codes + ci) * n_flags + f
        count[cell] += 1
        minor[cell] += amount[i]


# --- final states -----------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def final_states(code, route, stand_in, reversed_, t_response, lost, state):
    """Each authorisation's final state, as `clearing_sim.model.authorisation.final_states`
    defines them (the states in FINAL_STATES order; route 2 is in-bank; codes 0 approved,
    5 do not honour, 14 invalid card, 51 insufficient funds, 91 issuer unavailable), into
    `state`. Returns (how many rows are in no state or in several, the first such row,
    how many states it is in); rows in none or several are left at 0."""
    n_bad = 0
    first = -1
    first_count = 0
    for i in range(len(code)):
        c = code[i]
        switched = route[i] != 2
        si = stand_in[i]
        rev = reversed_[i] and not lost[i]
        decided = c >= 0 and not math.isnan(t_response[i])
        count = 0
        s = 0
        if switched and not rev and not si and c == 0:
            count += 1
            s = 0
        if switched and not rev and si and c == 0:
            count += 1
            s = 1
        if switched and not rev and not si and (c == 5 or c == 14 or c == 51):
            count += 1
            s = 2
        if switched and not rev and si and c == 91:
            count += 1
            s = 3
        if switched and rev and decided:
            count += 1
            s = 4
        if not switched and not rev and not si and c == 0:
            count += 1
            s = 5
        if not switched and not rev and not si and (c == 5 or c == 51 or c == 91):
            count += 1
            s = 6
        if switched and lost[i] and reversed_[i] and not si and c == 91:
            count += 1
            s = 7
        if count != 1:
            if n_bad == 0:
                first = i
                first_count = count
            n_bad += 1
            s = 0
        state[i] = s
    return n_bad, first, first_count
