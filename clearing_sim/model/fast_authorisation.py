"""Fast mode's authorisation path: detailed mode's semantics computed over arrays, in a stream.

Owns: the same outcomes as `clearing_sim.model.authorisation.DetailedAuthorisation`,
transaction for transaction, without a SimPy process per authorisation, computed from
chunks of arrivals fed in time order so the day never has to be held whole
(`AuthorisationStream`); and `FastAuthorisation`, which feeds a whole day through it
an hour at a time for `clearing_sim.model.network`.

Each issuer is independent of the others (its host, its cardholders' open-to-buy, its
stand-in limits and its store-and-forward link), so each has its own table of live
authorisations and its own state, advanced by the compiled kernels of
`clearing_sim.model.fast_kernels` in passes that follow the order of causes in the
detailed model:

1. the host: a FIFO multi-server queue over the arrivals at the host, sorted by
   (arrival, transaction id), with the availability timeline and the queue bound;
2. the switch: which forwarded requests are answered in time; stand-in decisions for
   the rest and for the requests never sent, in the detailed order (time, signed-off
   first, transaction id), against the per-purchase and per-day limits;
3. the acquirers: an answer later than the acquirer's timeout is reversed;
4. store-and-forward: advices and reversals per issuer, one in flight, repeated while
   the issuer is down;
5. the issuer's ledger: decisions (in the order services end) and applied advices and
   reversals, merged in time order, give each answer's response code.

Streaming. A chunk holds every arrival before a watermark W (the next chunk's first
arrival, or infinity after the last). Every event of a stage happens no earlier than
the arrival that caused it, so all events strictly before W are known once the chunk
is in: each pass handles exactly those, in the whole day's order, and carries its
state (servers, waiting line, stand-in totals, the link's last acknowledgement,
open-to-buy per card) to the next chunk. An authorisation leaves its table, with all
its outcome columns, once nothing about it can change; what stays behind is what is
still in a queue, awaiting a timer, or has a message not yet sent. One whose messages
are all sent (their applied times known, maybe hours ahead behind an outage) leaves
too, and waits in a compact parked store for the ledger to apply them.

Every time is computed with the same floating-point operations, on the same values,
as in detailed mode, so the outcomes are equal, not merely close. Exact ties at one
instant are ordered: availability changes first, then completions, then arrivals; at
the issuer, decisions before applied messages; reversals with equal deadlines by
transaction id. Ties between different transactions need equal sums of continuous
draws, which arrivals drawn by `traffic` never give; where they happen anyway (arrays
built by hand), detailed mode follows SimPy's scheduling order and the two modes can
differ (see the module docstring of `authorisation`). Must never draw random numbers
or decide anything about clearing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import attrs
import numpy as np

from clearing_sim.errors import InvariantError
from clearing_sim.model import fast_kernels as k
from clearing_sim.model.authorisation import (
    ADVICE,
    APPROVED,
    ISSUER_UNAVAILABLE,
    OUTCOME_COLUMNS,
    OUTCOME_FILLS,
    REVERSAL,
    ROUTE_IN_BANK,
    AuthorisationPlan,
    check_final_states,
    final_states,
    plan_authorisations,
)
from clearing_sim.model.traffic import DAY_S, card_credit_limits, group_order
from clearing_sim.scenario import Scenario

_INF = math.inf
_CHECK_CARDS = 1 << 20  # cards whose ledger is checked at a time at the end of a run

# Draws and plan values an issuer's table keeps per live authorisation.
_INPUT = {
    "gid": np.int64, "card": np.int64, "amount": np.int64, "limit": np.int64, "risk": np.bool_,
    "service": np.float64, "h3": np.float64, "h4": np.float64,
    "adv_out": np.float64, "adv_back": np.float64, "rev_out": np.float64, "rev_back": np.float64,
    "network": np.bool_, "in_bank": np.bool_, "signed_off": np.bool_, "switch_lost": np.bool_,
    "visits": np.bool_, "t_sw": np.float64, "t_host_in": np.float64, "deadline": np.float64,
    "acq_deadline": np.float64, "next_restart": np.float64, "t_rev": np.float64,
}
# What the passes work out per live authorisation.
_STATE = {
    "t_start": (np.float64, np.nan), "t_end": (np.float64, np.nan), "t_lost": (np.float64, np.nan),
    "host_lost": (np.int8, 0), "started_epoch": (np.int64, 0), "done_seq": (np.int64, -1),
    "answered": (np.bool_, False), "in_time": (np.bool_, False), "lost_in_flight": (np.bool_, False),
    "stand_in_done": (np.bool_, False), "reversal_done": (np.bool_, False), "decision_applied": (np.bool_, False),
    "messages_open": (np.int8, 0), "lost_settled": (np.bool_, False), "held": (np.bool_, False), "reversed_at_issuer": (np.bool_, False),
    "ledger_code": (np.int16, -1),
    # Whether an advice was ever queued for the row (a reversal is queued exactly when
    # `out_reversed` is set): with it, what the row's ledger will end at.
    "adv_msg": (np.bool_, False),
}
# A parked row (`_IssuerStream.parked`): final in every outcome column and given out already,
# its store-and-forward messages all sent, waiting only for the issuer's ledger to apply
# them (a stand-in advice behind an outage can wait hours). It keeps what the ledger needs,
# about 45 bytes against a live row's 300.
_PARKED = {"gid": np.int64, "card": np.int64, "amount": np.int64, "limit": np.int64, "held": np.bool_,
           "reversed_at_issuer": np.bool_, "messages_open": np.int8, "final_held": np.bool_}


# An outcome column's value before anything decides it (`empty_outcomes`): what the table
# gives a column a chunk does not bring because the plan left it so for every purchase.
_OUT_FILLS = {f"out_{c}": v for c, v in OUTCOME_FILLS.items()}


def _all_fill(v: np.ndarray, fill) -> bool:
    """Whether every value of `v` is `fill`, bit for bit (a NaN of another sign or payload is not)."""
    if v.dtype == np.float64:
        return bool((v.view(np.int64) == np.array(fill, dtype=np.float64).view(np.int64)).all())
    return bool((v == fill).all())


class _Table:
    """Columns of live rows, appended in transaction-id order, dropped when final.

    Each column lives at the front of a buffer with room to spare: appending copies the
    new rows in behind the live ones (a column the new rows do not bring starts at its
    fill value) and dropping rows moves the kept ones forward in place, so feeding part
    after part allocates only when the table outgrows its buffers. An empty table that
    must grow anyway adopts rows given away (`append(rows, adopt=True)`) as its buffers
    instead of copying them, and lets go of them (`free`) once every row is final and
    handed out. `table[name]` is a view of the live rows, valid until the next `append`
    or `keep`.
    """

    MIN_CAPACITY = 1024

    def __init__(self, dtypes: dict[str, type], fills: dict[str, object] | None = None):
        self.fills = dict(fills or {})
        self.n = 0
        self.buf = {name: np.empty(self.MIN_CAPACITY, dtype=d) for name, d in dtypes.items()}
        self.cols: dict[str, np.ndarray] = {}
        self.last_append = 0
        self._views()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    @property
    def capacity(self) -> int:
        return len(self.buf["gid"])

    def _adopted(self, given: np.ndarray | None, name: str, dtype: np.dtype, n: int) -> np.ndarray:
        """The buffer of column `name` for an adopting `append` of `n` rows: the array given,
        when it is one the table can write in place; else a copy of it, or its fill value."""
        if given is None:
            return np.full(n, self.fills[name], dtype=dtype)
        if given.dtype == dtype and given.flags.c_contiguous and given.flags.writeable:
            return given
        return given.astype(dtype)

    def append(self, new: dict[str, np.ndarray], adopt: bool = False) -> None:
        """Add rows after the live ones: every column from `new`, or its fill value.

        `adopt`: the arrays of `new` are the caller's to give away (nothing else reads or
        writes them afterwards). An empty table that has to grow for them then keeps those
        of the right dtype as its buffers instead of copying them (a whole day fed at once
        is one such append per issuer)."""
        lo, hi = self.n, self.n + len(new["gid"])
        if adopt and lo == 0 and hi > self.capacity:
            self.buf = {name: self._adopted(new.get(name), name, b.dtype, hi) for name, b in self.buf.items()}
            self.n = self.last_append = hi
            self._views()
            return
        if hi > self.capacity:
            self._resize(max(hi + hi // 4, 2 * self.capacity))
        for name, b in self.buf.items():
            src = new.get(name)
            b[lo:hi] = self.fills[name] if src is None else src
        self.n = hi
        self.last_append = hi - lo
        self._views()

    def keep(self, rows: np.ndarray) -> None:
        """Keep only `rows` (increasing positions), in that order, at the front."""
        k = len(rows)
        if k < self.n:
            for b in self.buf.values():
                b[:k] = b[rows]  # the gather is a copy: overlapping is safe
        self.n = k
        # Give back what a far larger part left behind (not what the next part will need again).
        if self.capacity > 4 * max(k, self.last_append, self.MIN_CAPACITY):
            self._resize(2 * max(k, self.last_append, self.MIN_CAPACITY))
        self._views()

    def free(self) -> None:
        """Give back the buffers of an empty table."""
        if self.n:
            raise InvariantError("a live table with rows cannot be freed")
        self.last_append = 0
        self._resize(self.MIN_CAPACITY)

    def rows(self, gid: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.cols["gid"], gid)

    def _resize(self, capacity: int) -> None:
        for name, b in self.buf.items():
            grown = np.empty(capacity, dtype=b.dtype)
            grown[:self.n] = b[:self.n]
            self.buf[name] = grown
        self._views()

    def _views(self) -> None:
        self.cols = {name: b[:self.n] for name, b in self.buf.items()}


def _table_dtypes() -> dict[str, type]:
    return _INPUT | {name: d for name, (d, _) in _STATE.items()} | {f"out_{c}": d for c, d in OUTCOME_COLUMNS.items()}


class _Messages:
    """Store-and-forward messages of one issuer: queued, then applied, until the ledger takes them."""

    def __init__(self):
        # queued: (t_queued, kind, order key 1, order key 2 = gid)
        self.q = {"t": np.empty(0), "kind": np.empty(0, np.int8), "key": np.empty(0), "gid": np.empty(0, np.int64)}
        # applied, waiting for the ledger: (t_applied, sequence in queue order, kind, gid)
        self.a = {"t": np.empty(0), "seq": np.empty(0, np.int64), "kind": np.empty(0, np.int8),
                  "gid": np.empty(0, np.int64)}
        self.next_seq = 0
        self.t_free = 0.0

    @staticmethod
    def _add(store: dict, new: dict) -> None:
        for name in store:
            store[name] = np.concatenate([store[name], new[name]])

    @staticmethod
    def _take(store: dict, mask: np.ndarray) -> dict:
        taken = {name: v[mask] for name, v in store.items()}
        for name in store:
            store[name] = store[name][~mask]
        return taken


class _IssuerStream:
    """One issuer's live authorisations and the state of its host, stand-in, link and ledger."""

    def __init__(self, scenario: Scenario, index: int, availability, restarts, switch_timeout_s: float,
                 n_days: int):
        iss = scenario.issuers[index]
        self.index = index
        self.scenario = scenario
        self.table = _Table(_table_dtypes(), {name: fill for name, (_, fill) in _STATE.items()} | _OUT_FILLS)
        self.pending = np.empty(0, dtype=np.int64)  # gids of earlier parts not yet at the host
        self.arriving = np.empty(0, dtype=np.int64)  # rows of this part's requests to the host
        timeline = availability.timeline()
        self.ch_t = np.array([c[0] for c in timeline], dtype=np.float64)
        self.ch_down = np.array([c[1] for c in timeline], dtype=np.bool_)
        self.ch_cap = np.array([c[2] for c in timeline], dtype=np.int64)
        self.crash_t = np.array(availability.starts, dtype=np.float64)
        self.o_start = np.array(availability.starts, dtype=np.float64)
        self.o_end = np.array(availability.ends, dtype=np.float64)
        self.o_announced = np.array(availability.announced, dtype=np.bool_)
        self.sw_start, self.sw_end = restarts.starts, restarts.ends
        self.queue_limit = iss.host.queue_limit
        self.st = np.zeros(k.HOST_STATE_SIZE, dtype=np.int64)
        self.st[k.ST_CAP] = iss.host.servers
        self.ht = np.empty(16)
        self.hs = np.empty(16, dtype=np.int64)
        self.hi = np.empty(16, dtype=np.int64)
        self.wait = np.empty(16, dtype=np.int64)
        self.stand_in_used = np.zeros(n_days + 1, dtype=np.int64)
        self.per_transaction = iss.stand_in.per_transaction_minor
        self.daily = iss.stand_in.daily_minor
        self.switch_timeout_s = switch_timeout_s
        self.msg = _Messages()
        self.parked = {name: np.empty(0, dtype=d) for name, d in _PARKED.items()}  # sorted by gid
        self.queued = [0, 0]
        self.saf_log: list[dict[str, np.ndarray]] = []
        self.otb = np.zeros(iss.cards, dtype=np.int64)
        self.touched = np.zeros(iss.cards, dtype=np.bool_)
        self.held_minor = np.zeros(iss.cards, dtype=np.int64)

    @property
    def queue_depth_max(self) -> int:
        return int(self.st[k.ST_DEPTH_MAX])

    # --- the passes ---------------------------------------------------------------------

    def feed(self, rows: dict[str, np.ndarray], W: float) -> dict[str, np.ndarray] | None:
        """Take new live rows (all arrivals before W), advance every pass to W, and
        return the rows that are now final (outcome columns, `gid`, `held`)."""
        self.arriving = np.empty(0, dtype=np.int64)
        if len(rows["gid"]):
            lo = len(self.table)
            self.table.append(rows, adopt=True)  # a PreparedChunk's rows, gathered for this issuer alone
            self.arriving = lo + np.flatnonzero(rows["visits"])  # where they went: no search
        if len(self.table) == 0 and len(self.msg.a["t"]) == 0:
            # Nothing live and nothing applied is waiting for the ledger. Parked rows' messages
            # may be (all sent, applied after an outage): the last chunk must apply them even
            # when it brings this issuer no purchase.
            return None
        self._host(W)
        self._answers()
        self._stand_in(W)
        self._reversals(W)
        self._settle_lost()
        self._store_and_forward(W)
        self._ledger(W)
        return self._release()

    def _host(self, W: float) -> None:
        tb = self.table
        rows = np.concatenate([tb.rows(self.pending), self.arriving])
        # Rows are in gid order (the table is), so they order ties as the gids would.
        order = np.lexsort((rows, tb["t_host_in"][rows]))
        rows = rows[order]
        hsize = int(self.st[k.ST_HEAP])
        waiting_now = int(self.st[k.ST_WAIT_TAIL] - self.st[k.ST_WAIT_HEAD])
        need = hsize + waiting_now + len(rows) + 1
        if len(self.ht) < need:
            grow = max(need, 2 * len(self.ht))
            self.ht = np.concatenate([self.ht[:hsize], np.empty(grow - hsize)])
            self.hs = np.concatenate([self.hs[:hsize], np.empty(grow - hsize, np.int64)])
            self.hi = np.concatenate([self.hi[:hsize], np.empty(grow - hsize, np.int64)])
        head, tail = int(self.st[k.ST_WAIT_HEAD]), int(self.st[k.ST_WAIT_TAIL])
        waiting = self.wait[head:tail]
        self.wait = np.concatenate([waiting, np.empty(len(rows) + 16, np.int64)])
        self.st[k.ST_WAIT_HEAD], self.st[k.ST_WAIT_TAIL] = 0, tail - head
        taken = k.host_step(rows, tb["t_host_in"], tb["service"], W, self.queue_limit, self.ch_t, self.ch_down,
                            self.ch_cap, self.crash_t, self.st, self.ht, self.hs, self.hi, self.wait,
                            tb["t_start"], tb["t_end"], tb["t_lost"], tb["host_lost"], tb["started_epoch"],
                            tb["done_seq"])
        self.pending = tb["gid"][rows[taken:]]

    def _answers(self) -> None:
        """Requests the host finished or lost: answers in time or late, in-bank answers."""
        tb = self.table
        k.answers_step(tb["t_end"], tb["t_lost"], tb["t_start"], tb["host_lost"], tb["h3"], tb["h4"], tb["deadline"],
                       tb["next_restart"], tb["network"], tb["in_bank"], tb["answered"], tb["in_time"],
                       tb["lost_in_flight"], tb["out_host_outcome"], tb["out_t_host_end_s"],
                       tb["out_t_switch_response_s"], tb["out_t_response_s"], tb["out_response_code"],
                       tb["out_t_host_start_s"])

    def _stand_in(self, W: float) -> None:
        """Stand-in for requests never sent (at t_sw) and not answered in time (at the deadline)."""
        tb = self.table
        open_ = tb["network"] & ~tb["stand_in_done"]
        a = np.flatnonzero(open_ & tb["signed_off"] & (tb["t_sw"] < W))
        due = np.flatnonzero(open_ & ~tb["signed_off"] & ~tb["switch_lost"] & (tb["deadline"] < W))
        tb["stand_in_done"][a] = True
        tb["stand_in_done"][due] = True
        b = due[~tb["in_time"][due]]
        clock_lost = tb["deadline"][b] > tb["next_restart"][b]  # a restart loses the stand-in clock
        tb["lost_in_flight"][b[clock_lost]] = True
        b = b[~clock_lost]
        cand = np.concatenate([a, b])
        if len(cand) == 0:
            return
        t_dec = np.concatenate([tb["t_sw"][a], tb["deadline"][b]])
        first = np.concatenate([np.zeros(len(a), np.int8), np.ones(len(b), np.int8)])
        order = np.lexsort((tb["gid"][cand], first, t_dec))
        cand, t_dec, first = cand[order], t_dec[order], first[order]
        ok = k.stand_in_step(t_dec, tb["amount"][cand], self.per_transaction, self.daily, self.stand_in_used)
        tb["out_stand_in"][cand] = True
        tb["out_response_code"][cand] = np.where(ok, APPROVED, ISSUER_UNAVAILABLE)
        tb["out_t_switch_response_s"][cand] = t_dec
        tb["out_t_response_s"][cand] = t_dec + tb["h4"][cand]
        adv = cand[ok]
        tb["messages_open"][adv] += 1
        tb["adv_msg"][adv] = True
        self.queued[ADVICE] += len(adv)
        _Messages._add(self.msg.q, {"t": t_dec[ok], "kind": np.full(len(adv), ADVICE, np.int8),
                                    "key": first[ok].astype(np.float64), "gid": tb["gid"][adv]})

    def _reversals(self, W: float) -> None:
        """The acquirer's timer, decided once its deadline has passed: every answer that
        could reach the acquirer by then is known, so one still missing comes too late."""
        tb = self.table
        rev = np.empty(len(tb), dtype=np.int64)
        rev = rev[:k.reversals_step(W, tb["reversal_done"], tb["in_bank"], tb["acq_deadline"], tb["out_lost_in_switch"],
                                    tb["lost_in_flight"], tb["out_t_response_s"], tb["t_rev"], tb["out_reversed"],
                                    tb["out_t_reversal_s"], tb["messages_open"], rev)]
        if len(rev) == 0:
            return
        self.queued[REVERSAL] += len(rev)
        _Messages._add(self.msg.q, {"t": tb["t_rev"][rev], "kind": np.full(len(rev), REVERSAL, np.int8),
                                    "key": tb["acq_deadline"][rev], "gid": tb["gid"][rev]})

    def _settle_lost(self) -> None:
        """Authorisations a switch restart lost: the acquirer's own `91` at its timeout."""
        tb = self.table
        lost = np.flatnonzero(tb["lost_in_flight"] & ~tb["out_lost_in_switch"])
        tb["out_lost_in_switch"][lost] = True
        lost = np.flatnonzero(tb["out_lost_in_switch"] & ~tb["lost_settled"])
        tb["lost_settled"][lost] = True
        tb["out_response_code"][lost] = ISSUER_UNAVAILABLE
        tb["out_t_response_s"][lost] = tb["acq_deadline"][lost]
        tb["out_t_switch_response_s"][lost] = np.nan

    def _store_and_forward(self, W: float) -> None:
        """Send every message queued before W, in queue order: time; advices before
        reversals; advices in stand-in order, reversals by (acquirer deadline, id)."""
        msg = self.msg
        m = _Messages._take(msg.q, msg.q["t"] < W)
        if len(m["t"]) == 0:
            return
        order = np.lexsort((m["gid"], m["key"], m["kind"] != ADVICE, m["t"]))
        m = {name: v[order] for name, v in m.items()}
        tb = self.table
        rows = tb.rows(m["gid"])
        is_adv = m["kind"] == ADVICE
        hop_out = np.where(is_adv, tb["adv_out"][rows], tb["rev_out"][rows])
        hop_back = np.where(is_adv, tb["adv_back"][rows], tb["rev_back"][rows])
        a_msg, a_no, a_sent, a_applied, a_acked, applied, msg.t_free = k.saf_step(
            m["t"], hop_out, hop_back, self.switch_timeout_s, self.o_start, self.o_end, self.o_announced,
            self.sw_start, self.sw_end, msg.t_free)
        self.saf_log.append({"kind": m["kind"][a_msg], "txn": m["gid"][a_msg], "attempt": a_no,
                             "t_sent_s": a_sent, "t_applied_s": a_applied, "t_acked_s": a_acked})
        tb["out_t_advice_applied_s"][rows[is_adv]] = applied[is_adv]
        tb["out_t_reversal_applied_s"][rows[~is_adv]] = applied[~is_adv]
        seq = msg.next_seq + np.arange(len(rows), dtype=np.int64)
        msg.next_seq += len(rows)
        _Messages._add(msg.a, {"t": applied, "seq": seq, "kind": m["kind"], "gid": m["gid"]})

    def _ledger(self, W: float) -> None:
        """Decisions (in the order services end) and applied messages before W, merged by time."""
        tb = self.table
        dec = np.flatnonzero(tb["in_time"] & ~tb["decision_applied"])
        msgs = _Messages._take(self.msg.a, self.msg.a["t"] < W)
        if len(dec) == 0 and len(msgs["t"]) == 0:
            return
        g = msgs["gid"]
        n = len(tb)
        m_rows = tb.rows(g)
        in_table = m_rows < n
        in_table[in_table] = tb["gid"][m_rows[in_table]] == g[in_table]
        ev_t = np.concatenate([tb["t_end"][dec], msgs["t"]])
        rank = np.concatenate([np.zeros(len(dec), np.int8), np.ones(len(g), np.int8)])
        seq = np.concatenate([tb["done_seq"][dec], msgs["seq"]])
        ev_kind = np.concatenate([np.full(len(dec), 2, np.int8), msgs["kind"]])
        order = np.lexsort((seq, rank, ev_t))
        if in_table.all():
            ev_row = np.concatenate([dec, m_rows])
            k.ledger_step(ev_kind[order], ev_row[order], tb["card"], tb["amount"], tb["limit"], tb["risk"],
                          self.otb, self.touched, tb["ledger_code"], tb["held"], tb["reversed_at_issuer"],
                          tb["messages_open"], tb["decision_applied"])
        else:
            self._ledger_with_parked(dec, m_rows, in_table, g, ev_kind[order], order)
        decided = dec[~tb["out_lost_in_switch"][dec] & ~tb["lost_in_flight"][dec]]
        tb["out_response_code"][decided] = tb["ledger_code"][decided]

    def _ledger_with_parked(self, dec: np.ndarray, m_rows: np.ndarray, in_table: np.ndarray, g: np.ndarray,
                            ev_kind: np.ndarray, order: np.ndarray) -> None:
        """`_ledger`'s events when some messages are for parked rows: the ledger runs over the
        live table's columns followed by the parked rows it touches (each once), in the same
        event order, and what it changed goes back to both; parked rows with nothing left open
        leave, their `held` checked against what they were given out with."""
        tb, pk = self.table, self.parked
        n = len(tb)
        at = np.searchsorted(pk["gid"], g[~in_table])
        if (at >= len(pk["gid"])).any() or not np.array_equal(pk["gid"][np.minimum(at, len(pk["gid"]) - 1)],
                                                                g[~in_table]):
            raise InvariantError("fast mode: a store-and-forward message for an authorisation no longer held")
        touched, local = np.unique(at, return_inverse=True)
        rows = m_rows.copy()
        rows[~in_table] = n + local
        ev_row = np.concatenate([dec, rows])[order]

        def both(table_col: np.ndarray, parked_col: np.ndarray) -> np.ndarray:
            return np.concatenate([table_col, parked_col[touched]])

        m = len(touched)
        card, amount, limit = both(tb["card"], pk["card"]), both(tb["amount"], pk["amount"]), both(tb["limit"], pk["limit"])
        risk = np.concatenate([tb["risk"], np.zeros(m, np.bool_)])
        code = np.concatenate([tb["ledger_code"], np.full(m, -1, np.int16)])
        held, rev = both(tb["held"], pk["held"]), both(tb["reversed_at_issuer"], pk["reversed_at_issuer"])
        open_ = both(tb["messages_open"], pk["messages_open"])
        applied = np.concatenate([tb["decision_applied"], np.ones(m, np.bool_)])
        k.ledger_step(ev_kind, ev_row, card, amount, limit, risk, self.otb, self.touched, code, held, rev, open_,
                      applied)
        for name, v in (("ledger_code", code), ("held", held), ("reversed_at_issuer", rev), ("messages_open", open_),
                        ("decision_applied", applied)):
            tb[name][:] = v[:n]
        for name, v in (("held", held), ("reversed_at_issuer", rev), ("messages_open", open_)):
            pk[name][touched] = v[n:]
        done = touched[pk["messages_open"][touched] == 0]
        if len(done):
            if not np.array_equal(pk["held"][done], pk["final_held"][done]):
                raise InvariantError("fast mode: a parked authorisation's ledger ended other than it was given out")
            keep = np.ones(len(pk["gid"]), dtype=bool)
            keep[done] = False
            for name in pk:
                pk[name] = pk[name][keep]

    def _release(self) -> dict[str, np.ndarray] | None:
        tb = self.table
        settled = ((~tb["visits"] | tb["answered"]) & (~tb["network"] | tb["switch_lost"] | tb["stand_in_done"])
                   & tb["reversal_done"] & (~tb["in_time"] | tb["decision_applied"]))
        final = settled & (tb["messages_open"] == 0)
        # Settled with messages open, every one of them sent (none still queued): its outcome is
        # final, only the ledger's applying is to come. It goes out now and is parked; its ledger
        # ends holding the amount if it holds it or an advice will, unless a reversal was or will be.
        park = settled & (tb["messages_open"] > 0)
        if park.any() and len(self.msg.q["gid"]):
            park &= ~np.isin(tb["gid"], self.msg.q["gid"])
        gone_mask = final | park
        gone = np.flatnonzero(gone_mask)
        if len(gone) == 0:
            return None
        held_end = np.where(park, ~(tb["reversed_at_issuer"] | tb["out_reversed"]) & (tb["held"] | tb["adv_msg"]),
                            tb["held"])
        # Every row final (a whole day fed at once ends so): the outcome columns go out as they
        # stand, not gathered, and the table lets go of its buffers below, never to write them again.
        whole = len(gone) == len(tb)
        out = {c: tb[f"out_{c}"] if whole else tb[f"out_{c}"][gone] for c in OUTCOME_COLUMNS}
        if np.isnan(out["t_response_s"][out["route"] != ROUTE_IN_BANK]).any():
            raise InvariantError("fast mode: a switched authorisation never got an answer")
        out["final_state"][:] = final_states(out)
        k.add_held(self.held_minor, gone_mask, held_end, tb["card"], tb["amount"])
        done = {"gid": tb["gid"][gone], "held": held_end[gone]} | out
        parked = np.flatnonzero(park)
        if len(parked):
            self._park(parked, held_end[parked])
        kept = np.flatnonzero(~gone_mask)
        self.table.keep(kept)
        if whole:
            self.table.free()
        # The host's heap and waiting line hold rows of the table (in service or waiting,
        # so never final): renumber them to their places among the kept rows.
        hsize = int(self.st[k.ST_HEAP])
        head, tail = int(self.st[k.ST_WAIT_HEAD]), int(self.st[k.ST_WAIT_TAIL])
        for held_rows in (self.hi[:hsize], self.wait[head:tail]):
            if gone_mask[held_rows].any():
                raise InvariantError("fast mode: the host holds an authorisation that became final")
            held_rows[:] = np.searchsorted(kept, held_rows)
        return done

    def _park(self, rows: np.ndarray, final_held: np.ndarray) -> None:
        """Move live rows (ascending) to the parked store, which stays sorted by gid."""
        tb, pk = self.table, self.parked
        new = {name: (final_held if name == "final_held" else tb[name][rows]) for name in _PARKED}
        if len(pk["gid"]) == 0 or new["gid"][0] > pk["gid"][-1]:
            for name in pk:
                pk[name] = np.concatenate([pk[name], new[name]])
            return
        order = np.argsort(np.concatenate([pk["gid"], new["gid"]]), kind="stable")  # two sorted runs: a merge
        for name in pk:
            pk[name] = np.concatenate([pk[name], new[name]])[order]

    def check_end(self) -> None:
        """After the last chunk: nothing live, and every card's open-to-buy is its limit minus what it holds.
        Gives back the live table's buffers."""
        if len(self.table) or len(self.parked["gid"]) or len(self.msg.q["t"]) or len(self.msg.a["t"]):
            raise InvariantError(f"fast mode: issuer {self.index} ended the run with "
                                 f"{len(self.table) + len(self.parked['gid'])} authorisation(s) unfinished")
        self.table.free()
        cards = np.flatnonzero(self.touched)
        for lo in range(0, len(cards), _CHECK_CARDS):  # limits are a function of (issuer, card): recompute
            c = cards[lo:lo + _CHECK_CARDS]
            limit = card_credit_limits(self.scenario, np.full(len(c), self.index, dtype=np.int16), c)
            if not np.array_equal(self.otb[c], limit - self.held_minor[c]):
                raise InvariantError("card(s) whose open-to-buy is not their limit minus what they hold")


@attrs.define
class PreparedChunk:
    """A chunk of arrivals made ready for `AuthorisationStream.feed_prepared`."""

    t_min: float
    t_max: float
    plan: AuthorisationPlan
    unknown: list[dict[str, np.ndarray]]  # final at once: unknown BINs (at most one dict)
    rows: list[dict[str, np.ndarray]]  # per issuer: its new live rows (the table adds the _STATE columns)


class AuthorisationStream:
    """Authorisations fed as chunks of arrivals in time order; yields each one once final."""

    def __init__(self, scenario: Scenario, horizon_s: float):
        self.scenario = scenario
        self.horizon_s = horizon_s
        self.n_days = int(horizon_s // DAY_S) + 1
        self.issuers: list[_IssuerStream] | None = None
        self.last_W = -_INF

    def feed(self, txn: dict[str, np.ndarray], routed_issuer: np.ndarray, W: float,
             first_gid: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Take the arrivals of one chunk (all before W, all at or after the previous W) and
        yield dicts of final rows: `gid` (first_gid + position in the chunk), `held` and
        every outcome column. The last call has W = inf and yields everything left."""
        return self.feed_prepared(self.prepare(txn, routed_issuer, first_gid), W)

    def prepare(self, txn: dict[str, np.ndarray], routed_issuer: np.ndarray, first_gid: int = 0) -> PreparedChunk:
        """The part of `feed` that depends on the chunk alone, not on the stream's state
        (the plan, the unknown BINs' answers, each issuer's new live rows): it may run in
        another thread, ahead of the chunks still being fed."""
        sc = self.scenario
        t = txn["t_arrival_s"]
        p = plan_authorisations(sc, txn, routed_issuer)
        gid = first_gid + np.arange(len(t), dtype=np.int64)
        rates = np.array([i.risk_decline_rate for i in sc.issuers] + [0.0])
        risk = txn["risk_u"] < rates[p.issuer]
        # One gather per column puts the chunk's routed purchases in issuer order (unknown
        # BINs, group 0, are final already); each issuer takes a slice.
        n_issuers = len(sc.issuers)
        order, bounds = group_order(p.issuer, -1, n_issuers + 1)
        routed_rows, edges = order[bounds[1]:], bounds[1:] - bounds[1]
        cols = {name: np.take(v, routed_rows) for name, v in self._columns(txn, p, risk, gid).items()}
        rows = []
        for j in range(n_issuers):
            lo, hi = int(edges[j]), int(edges[j + 1])
            rows.append({name: v[lo:hi] for name, v in cols.items()})
        return PreparedChunk(t_min=float(t.min()) if len(t) else np.inf, t_max=float(t.max()) if len(t) else -np.inf,
                             plan=p, unknown=list(self._unknown_bins(p, gid)), rows=rows)

    def feed_prepared(self, chunk: PreparedChunk, W: float) -> Iterator[dict[str, np.ndarray]]:
        """`feed` for a chunk `prepare` made."""
        if W < self.last_W:
            raise ValueError("chunks must be fed in time order")
        if chunk.t_min < self.last_W or chunk.t_max >= W:
            raise ValueError("a chunk's arrivals must lie between the previous watermark and its own")
        self.last_W = W
        p = chunk.plan
        if self.issuers is None:
            self.issuers = [_IssuerStream(self.scenario, j, av, p.restarts, p.switch_timeout_s, self.n_days)
                            for j, av in enumerate(p.availability)]
        yield from chunk.unknown
        for stream, rows in zip(self.issuers, chunk.rows):
            done = stream.feed(rows, W)
            if done is not None:
                yield done

    def _unknown_bins(self, p, gid: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
        """Declined by the switch at once (or lost in it): final as soon as they arrive."""
        idx = np.flatnonzero(p.issuer < 0)
        if len(idx) == 0:
            return
        out = {c: v[idx] for c, v in p.out.items()}
        lost = out["lost_in_switch"]
        out["response_code"][lost] = ISSUER_UNAVAILABLE
        out["t_response_s"][lost] = p.acq_deadline[idx][lost]
        out["t_switch_response_s"][lost] = np.nan
        rev = lost | (out["t_response_s"] > p.acq_deadline[idx])
        out["reversed"][:] = rev
        out["t_reversal_s"][rev] = p.t_rev_at_switch[idx][rev]
        out["host_outcome"][:] = p.host_outcome[idx]
        out["final_state"][:] = final_states(out)
        yield {"gid": gid[idx], "held": np.zeros(len(idx), dtype=bool)} | out

    @staticmethod
    def _columns(txn, p, risk, gid) -> dict[str, np.ndarray]:
        """A live table's input and outcome columns for every purchase of a chunk."""
        cols = {
            "gid": gid, "card": txn["card"], "amount": txn["amount_minor"].astype(np.int64, copy=False),
            "limit": txn["credit_limit_minor"], "risk": risk, "service": txn["service_s"],
            "h3": txn["hop_issuer_switch_s"], "h4": txn["hop_switch_acq_s"],
            "adv_out": txn["hop_advice_out_s"], "adv_back": txn["hop_advice_back_s"],
            "rev_out": txn["hop_rev_out_s"], "rev_back": txn["hop_rev_back_s"],
            "network": p.network, "in_bank": p.in_bank, "signed_off": p.signed_off,
            "switch_lost": p.switch_lost, "visits": p.visits, "t_sw": p.t_sw,
            "t_host_in": p.t_host_in, "deadline": p.deadline, "acq_deadline": p.acq_deadline,
            "next_restart": p.next_restart, "t_rev": p.t_rev_at_switch,
        }
        # An outcome column the plan left undecided for every purchase (most of them: the
        # host's times, stand-in, reversals, ...) is not gathered: the table fills it.
        for c in OUTCOME_COLUMNS:
            if not _all_fill(p.out[c], _OUT_FILLS[f"out_{c}"]):
                cols[f"out_{c}"] = p.out[c]
        cols["out_host_outcome"] = p.host_outcome.astype(np.int8)
        return cols

    def finish(self) -> None:
        """Raise InvariantError unless every issuer is done and its ledger balances."""
        for stream in self.issuers or []:
            stream.check_end()

    @property
    def queue_depth_max(self) -> list[int]:
        """The deepest queue of each issuer's host; 0 for each when no chunk was ever fed (no purchase)."""
        if self.issuers is None:
            return [0] * len(self.scenario.issuers)
        return [s.queue_depth_max for s in self.issuers]

    def saf_log(self) -> dict[str, np.ndarray]:
        """Every store-and-forward attempt, issuer by issuer, in the order they were made."""
        parts = [part for s in self.issuers or [] for part in s.saf_log]
        names = ("kind", "txn", "attempt", "t_sent_s", "t_applied_s", "t_acked_s")
        if not parts:
            return {name: np.empty(0) for name in names}
        return {name: np.concatenate([part[name] for part in parts]) for name in names}

    @property
    def queued(self) -> list[int]:
        return [sum(s.queued[kind] for s in self.issuers or []) for kind in (0, 1)]


class _SafLog:
    """The store-and-forward attempts, in the shape `DetailedAuthorisation.saf` exposes."""

    def __init__(self, log: dict[str, np.ndarray], queued: list[int]):
        self.log = log
        self.queued = queued


def chunk_bounds(t_arrival: np.ndarray, step_s: float = 3600.0, min_rows: int = 0) -> list[int]:
    """Positions that cut arrivals sorted by time at multiples of `step_s` simulated
    seconds, keeping a cut only once the chunk it closes has `min_rows` arrivals."""
    n = len(t_arrival)
    if n == 0:
        return [0, 0]
    edges = np.arange(0.0, float(t_arrival[-1]) + step_s, step_s)[1:]
    bounds = [0]
    for cut in np.searchsorted(t_arrival, edges, side="left").tolist():
        if cut - bounds[-1] >= max(min_rows, 1) and cut < n:
            bounds.append(cut)
    return bounds + [n]


# Fewer, larger chunks cost less per purchase; past this size a chunk saves no time.
CHUNK_ROWS = 1 << 20


class FastAuthorisation:
    """Every authorisation of a run, computed before the SimPy run; same outcomes as detailed."""

    def __init__(self, scenario: Scenario, txn: dict[str, np.ndarray], routed_issuer: np.ndarray,
                 horizon_s: float, bounds: list[int] | None = None):
        """`bounds`: positions cutting the day's arrivals (sorted by time) into chunks;
        by default at hour edges, each chunk at least CHUNK_ROWS arrivals (one chunk for
        a smaller day). The outcomes do not depend on them."""
        self.scenario = scenario
        self.txn = txn
        n = len(txn["txn_id"])
        t = txn["t_arrival_s"]
        if n and (np.diff(t) < 0).any():
            raise ValueError("fast mode needs arrivals sorted by time")
        self.out = {c: np.empty(n, dtype=d) for c, d in OUTCOME_COLUMNS.items()}
        self._held = np.zeros(n, dtype=bool)
        seen = np.zeros(n, dtype=bool)
        stream = self.stream = AuthorisationStream(scenario, horizon_s)
        bounds = chunk_bounds(t, min_rows=CHUNK_ROWS) if bounds is None else bounds
        if bounds[0] != 0 or bounds[-1] != n or (np.diff(bounds) < 0).any():
            raise ValueError("chunk bounds must rise from 0 to the number of arrivals")
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            W = float(t[hi]) if hi < n else _INF
            if hi < n and lo < hi and t[hi] == t[hi - 1]:
                raise ValueError("a chunk boundary may not split arrivals at one instant")
            chunk = {name: v[lo:hi] for name, v in txn.items()}
            for done in stream.feed(chunk, routed_issuer[lo:hi], W, first_gid=lo):
                self._take(done, seen)
        if not seen.all():
            raise InvariantError(f"fast mode: {int((~seen).sum())} authorisation(s) never became final")
        stream.finish()
        self.queue_depth_max = stream.queue_depth_max
        # Acknowledgements may fall after horizon_s (DetailedAuthorisation.drain runs on to them).
        self.saf = _SafLog(stream.saf_log(), stream.queued)
        self.switch_timeout_s = scenario.network.switch_timeout_ms / 1000.0
        self.acq_deadline = t + np.array([a.auth_timeout_ms / 1000.0 for a in scenario.acquirers])[txn["acquirer"]]

    def _take(self, done: dict[str, np.ndarray], seen: np.ndarray) -> None:
        gid = done["gid"]
        if seen[gid].any():
            raise InvariantError("fast mode: an authorisation became final twice")
        seen[gid] = True
        self._held[gid] = done["held"]
        for c in OUTCOME_COLUMNS:
            self.out[c][gid] = done[c]

    def drain(self) -> None:
        """Nothing to run: every store-and-forward acknowledgement is computed already."""

    def finish(self) -> None:
        """Nothing left to do: every outcome column, final state included, is complete."""

    def held(self) -> np.ndarray:
        """Whether the issuer's ledger holds each authorisation's amount at the end."""
        return self._held

    def check(self) -> None:
        """The same end-of-run checks as detailed mode; raises InvariantError."""
        out = self.out
        keeps = (out["response_code"] == APPROVED) & ~out["reversed"]
        routed = out["routed_issuer"] >= 0
        if not np.array_equal(self.held() & routed, keeps & routed):
            raise InvariantError("the issuers' ledgers disagree with the approved, unreversed authorisations")
        check_final_states(out, self.acq_deadline, self.switch_timeout_s)
