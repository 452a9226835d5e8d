"""Settlement windows: an explicit state machine over record-level obligations.

Owns: assigning obligations to windows (the first window on or after T+`lag_days`
business days, see `window_time_for`), each window's obligations as numpy columns
(payer, payee, amount in fen, the record each transfer belongs to, its kind), the
window's life OPEN -> CLOSED -> PENDING_SETTLEMENT -> SETTLED | ABORTED with its
transitions appended and never edited, funding through the settlement bank and the
scenario's default rule (`clearing_sim.model.defaults`), and the checks that a
window's positions sum to zero and that a SETTLED window never changes (finality,
enforced by read-only arrays and a fingerprint checked at the end of the run).

Callers add obligations with `SettlementSystem.add_obligations(t_s, kind, record_id,
payer, payee, amount)` (or on a window with `SettlementWindow.add_obligations`):
presentments, scheme fees, chargebacks (the acquirer pays the issuer), or other
fees, each transfer tagged with its record so that `unwind` can take a defaulter's
records out whole. Once a window is final its transfer arrays are dropped (only
the ids of unwound records are kept), so memory does not grow with the run.

Must never change a SETTLED window, compute net positions itself (netting is
`clearing_sim.netting`'s) or loop in Python over records.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib

import attrs
import numpy as np
import simpy

from clearing_sim import netting
from clearing_sim.errors import InvariantError
from clearing_sim.model import defaults as rules
from clearing_sim.model.calendar import BusinessCalendar
from clearing_sim.model.settlement_bank import SettlementBank
from clearing_sim.model.traffic import DAY_S
from clearing_sim.scenario import Scenario, clock_seconds


class WindowState(enum.Enum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    PENDING_SETTLEMENT = "PENDING_SETTLEMENT"
    SETTLED = "SETTLED"
    ABORTED = "ABORTED"


_ALLOWED = {
    WindowState.OPEN: {WindowState.CLOSED},
    WindowState.CLOSED: {WindowState.PENDING_SETTLEMENT, WindowState.ABORTED},
    WindowState.PENDING_SETTLEMENT: {WindowState.SETTLED, WindowState.ABORTED},
    WindowState.SETTLED: set(),
    WindowState.ABORTED: set(),
}


class ObligationKind(enum.IntEnum):
    """What a transfer is for; positions are also netted per kind ("per fee type")."""

    PRESENTMENT = 0          # issuer pays acquirer: amount minus interchange
    SCHEME_FEE_ISSUER = 1    # issuer pays the network
    SCHEME_FEE_ACQUIRER = 2  # acquirer pays the network
    CHARGEBACK = 3           # acquirer pays issuer back
    REPRESENTMENT = 4        # issuer pays acquirer again after a chargeback
    OTHER_FEE = 5
    REFUND = 6               # acquirer pays issuer: a refund (credit) less its interchange


KIND_NAMES = tuple(k.name.lower() for k in ObligationKind)


class WindowStateError(InvariantError):
    """A move the window state machine does not allow (a bug in the caller)."""


@attrs.frozen
class Transition:
    t_s: float
    from_state: WindowState
    to_state: WindowState
    reason: str


_EMPTY = np.empty(0, dtype=np.int64)


@attrs.define
class SettlementWindow:
    """One settlement window: its obligations, its positions and its history."""

    index: int
    id: str
    t_close_s: float
    n_participants: int
    business_date: str = ""
    state: WindowState = WindowState.OPEN
    _transitions: list[Transition] = attrs.Factory(list)
    cycles: list[int] = attrs.Factory(list)
    # Obligations while OPEN: chunks of columns, concatenated at close.
    _chunks: list[tuple[np.ndarray, ...]] = attrs.Factory(list)
    _next_synthetic_record: int = -1
    # Rows that stand for several transfers (a streamed run posts sums per counterparty
    # pair): how many transfers each row of each chunk is (None: one), and how many
    # records each summed record id is.
    _transfer_counts: list[np.ndarray | None] = attrs.Factory(list)
    _record_counts: dict[int, int] = attrs.Factory(dict)
    # Figures, set at close and settlement.
    n_transfers: int = 0
    gross_minor: int = 0                              # sum of |amount| of every transfer
    gross_settled_minor: int = 0                      # the same, of the transfers that settled
    obligations_minor: np.ndarray | None = None       # net positions of all transfers
    positions_by_kind_minor: np.ndarray | None = None  # (kinds x participants)
    kinds_present: tuple[int, ...] = ()
    positions_minor: np.ndarray | None = None         # what settled (zeros if aborted)
    gross_paid_minor: np.ndarray | None = None        # per participant, all transfers
    gross_received_minor: np.ndarray | None = None
    resolution: rules.Resolution | None = None
    capacity_minor: np.ndarray | None = None
    balance_before_minor: np.ndarray | None = None
    balance_after_minor: np.ndarray | None = None
    paid_in_minor: int = 0
    paid_out_minor: int = 0
    unwound_record_ids: np.ndarray = attrs.Factory(lambda: _EMPTY.copy())
    unwound_transfers: int = 0
    unwound_minor: int = 0
    cover_1: dict | None = None
    t_settled_s: float | None = None
    _fingerprint: str | None = None
    _columns: tuple[np.ndarray, ...] | None = None
    _notes: list[str] = attrs.Factory(list)  # default notes, added to the final transition's reason

    # --- state machine -----------------------------------------------------------

    @property
    def transitions(self) -> tuple[Transition, ...]:
        """The window's history, oldest first (a tuple: it is appended to, never edited)."""
        return tuple(self._transitions)

    def move(self, to: WindowState, t_s: float, reason: str) -> None:
        """Append a transition; raises WindowStateError for a move the machine forbids."""
        if to not in _ALLOWED[self.state]:
            raise WindowStateError(f"window {self.id} is {self.state.value}: it cannot become {to.value}")
        self._transitions.append(Transition(float(t_s), self.state, to, reason))
        self.state = to

    @property
    def final(self) -> bool:
        return self.state in (WindowState.SETTLED, WindowState.ABORTED)

    # --- obligations -------------------------------------------------------------

    def add_obligations(self, kind, record_id, payer, payee, amount, transfers=None, records=None) -> None:
        """Add transfers to an OPEN window: `payer[k]` owes `payee[k]` `amount[k]` fen for record `record_id[k]`.

        `kind` is an ObligationKind (or an array of them, one per transfer); all
        transfers with the same record id are unwound together. A row may stand for
        the sum of several transfers of one kind between the same two parties (all
        of one sign, so gross sums stay exact): `transfers[k]` says how many, and
        `records` maps each such summed record id to the number of records it sums;
        the window's counts (transfers, records unwound) then count what was summed.
        Raises
        WindowStateError if the window is not OPEN and ValueError for arrays of
        different lengths, non-integer amounts or participant ids out of range.
        """
        if self.state is not WindowState.OPEN:
            raise WindowStateError(f"window {self.id} is not open (it is {self.state.value})")
        payer = np.asarray(payer, dtype=np.int32)
        payee = np.asarray(payee, dtype=np.int32)
        amount = np.asarray(amount)
        if amount.dtype.kind not in "iu":
            raise ValueError(f"amount must be integer fen, got dtype {amount.dtype}")
        amount = amount.astype(np.int64, copy=False)
        n = len(amount)
        record = np.broadcast_to(np.asarray(record_id, dtype=np.int64), (n,))
        kinds = np.broadcast_to(np.asarray(kind, dtype=np.int8), (n,))
        if not (len(payer) == len(payee) == n):
            raise ValueError(f"payer, payee and amount differ in length ({len(payer)}, {len(payee)}, {n})")
        if n == 0:
            return
        for name, ids in (("payer", payer), ("payee", payee)):
            if int(ids.min()) < 0 or int(ids.max()) >= self.n_participants:
                raise ValueError(f"{name} holds an id outside [0, {self.n_participants})")
        if int(kinds.min()) < 0 or int(kinds.max()) >= len(ObligationKind):
            raise ValueError("kind holds a value that is not an ObligationKind")
        if transfers is not None:
            transfers = np.array(np.broadcast_to(np.asarray(transfers, dtype=np.int64), (n,)))
            if int(transfers.min()) < 1:
                raise ValueError("a row stands for at least one transfer")
        if records is not None:
            self._record_counts.update({int(k): int(v) for k, v in records.items()})
        self._transfer_counts.append(transfers)
        # Copies: a caller that reuses its arrays must not change an open window behind its back.
        self._chunks.append((np.array(payer), np.array(payee), np.array(amount), np.array(record), np.array(kinds)))

    def add_transfers(self, payer, payee, amount, record=None, kind=ObligationKind.PRESENTMENT) -> None:
        """Older form of `add_obligations`; without `record` each transfer is a record of its own."""
        if record is None:
            n = len(np.asarray(amount))
            start = self._next_synthetic_record
            record = np.arange(start, start - n, -1, dtype=np.int64)
            self._next_synthetic_record -= n
        self.add_obligations(kind, record, payer, payee, amount)

    def columns(self) -> tuple[np.ndarray, ...]:
        """(payer, payee, amount, record, kind) of every transfer; only before the window is final."""
        if self.final:
            raise WindowStateError(f"window {self.id} is final: its transfers are no longer kept")
        if self._columns is None:
            if len(self._chunks) == 1:
                self._columns = self._chunks[0]
            elif self._chunks:
                self._columns = tuple(np.concatenate(c) for c in zip(*self._chunks))
            else:
                self._columns = (np.empty(0, np.int32), np.empty(0, np.int32), _EMPTY, _EMPTY,
                                 np.empty(0, np.int8))
        return self._columns

    def _transfer_weights(self) -> np.ndarray | None:
        """How many transfers each row of `columns()` stands for; None when every row is one."""
        if all(c is None for c in self._transfer_counts):
            return None
        lengths = [len(chunk[2]) for chunk in self._chunks]
        return np.concatenate([c if c is not None else np.ones(m, np.int64)
                               for c, m in zip(self._transfer_counts, lengths)])

    @property
    def records_unwound(self) -> int:
        """How many records the default rule took out of this window."""
        return self._count_records(self.unwound_record_ids)

    def _count_records(self, ids: np.ndarray) -> int:
        """The number of records behind record ids (a summed id counts what it sums)."""
        get = self._record_counts.get
        return int(sum(get(int(i), 1) for i in np.asarray(ids).tolist())) if self._record_counts else len(ids)

    # --- close, settle, abort ---------------------------------------------------

    def close(self, t_s: float) -> None:
        """OPEN -> CLOSED -> PENDING_SETTLEMENT: net every transfer, per kind in one pass, and check zero-sum."""
        self.move(WindowState.CLOSED, t_s, "window time reached")
        payer, payee, amount, record, kind = self.columns()
        weights = self._transfer_weights()
        self._chunks = []
        self._transfer_counts = []
        n_kinds = len(ObligationKind)
        by_kind = netting.multilateral_positions_by_key(payer, payee, amount, kind, n_kinds, self.n_participants)
        positions = by_kind.sum(axis=0, dtype=np.int64)
        try:
            netting.check_zero_sum(by_kind, what=f"window {self.id} by kind")
            netting.check_zero_sum(positions, what=f"window {self.id}")
        except netting.NettingInvariantError as exc:
            raise InvariantError(str(exc)) from exc
        counts = np.bincount(kind.astype(np.intp), minlength=n_kinds)
        self.kinds_present = tuple(int(k) for k in np.flatnonzero(counts))
        self.positions_by_kind_minor = by_kind
        self.obligations_minor = positions
        self.n_transfers = int(len(amount)) if weights is None else int(weights.sum())
        self.gross_minor = int(np.abs(amount).sum(dtype=np.int64))
        # Gross paid and received per participant, exactly: net every transfer against
        # one extra, silent counterparty (index n), so each side is seen on its own.
        n = self.n_participants
        other = np.full(len(amount), n, dtype=np.int32)
        self.gross_paid_minor = -netting.multilateral_positions(payer, other, amount, n + 1)[:n]
        self.gross_received_minor = netting.multilateral_positions(other, payee, amount, n + 1)[:n]
        net = int(-positions[positions < 0].sum())
        self.move(WindowState.PENDING_SETTLEMENT, t_s, f"net positions computed: gross {self.gross_minor} fen, "
                  f"net {net} fen over {self.n_transfers} transfers")

    def settle(self, t_s: float, bank: SettlementBank, rule: str, loss_key: str = "bilateral_exposure",
               ids: tuple[str, ...] | None = None) -> None:
        """PENDING_SETTLEMENT -> SETTLED | ABORTED: fund net debtors, apply the default rule, pay creditors."""
        if self.state is not WindowState.PENDING_SETTLEMENT:
            raise WindowStateError(f"window {self.id} is {self.state.value}: it cannot settle")
        payer, payee, amount, record, _ = self.columns()
        n = self.n_participants
        capacity = bank.capacity()
        kw = dict(fund=bank.fund, loss_key=loss_key, weights=bank.weights, obligations=self.obligations_minor)
        res = rules.resolve(rule, payer, payee, amount, record, n, capacity, **kw)
        self.cover_1 = rules.cover_one(rule, payer, payee, amount, record, n, capacity,
                                       count_records=self._count_records, **kw)
        self.resolution = res
        self.capacity_minor = capacity
        self.balance_before_minor = bank.balance.copy()
        names = ids or tuple(str(i) for i in range(n))
        if res.keep is not None:
            if self._record_counts:
                raise InvariantError(f"window {self.id}: summed obligations cannot be unwound record by record")
            dropped = ~res.keep
            self.unwound_record_ids = res.unwound_records
            self.unwound_transfers = int(dropped.sum())
            self.unwound_minor = int(np.abs(amount[dropped]).sum(dtype=np.int64))
        self.gross_settled_minor = self.gross_minor - self.unwound_minor
        for d in res.defaults:
            self._notes.append(f"round {d.round}: {names[d.participant]} cannot fund: "
                               + bank.why_short(d.participant, d.net_debit_minor))
        if not res.settled:
            self.positions_minor = np.zeros(n, dtype=np.int64)
            self.balance_after_minor = bank.balance.copy()
            self.gross_settled_minor = 0
            self._finish(WindowState.ABORTED, t_s, f"{rule}: {res.reason}")
            return
        try:
            netting.check_zero_sum(res.positions, what=f"window {self.id} after {rule}")
        except netting.NettingInvariantError as exc:
            raise InvariantError(str(exc)) from exc
        self.paid_in_minor, self.paid_out_minor = bank.post(res.account_flow, res.fund_draw)
        self.positions_minor = res.positions.copy()
        self.balance_after_minor = bank.balance.copy()
        self.t_settled_s = float(t_s)
        self._finish(WindowState.SETTLED, t_s, f"net debtors funded {self.paid_in_minor} fen, creditors paid "
                     f"{self.paid_out_minor} fen ({rule}: {res.reason})")

    def abort(self, t_s: float, reason: str) -> None:
        """CLOSED or PENDING_SETTLEMENT -> ABORTED: nothing in the window settles."""
        if self.state is WindowState.OPEN or self.final:
            raise WindowStateError(f"window {self.id} is {self.state.value}: it cannot be aborted")
        if self.obligations_minor is None:
            self.obligations_minor = np.zeros(self.n_participants, dtype=np.int64)
        self.positions_minor = np.zeros(self.n_participants, dtype=np.int64)
        self.gross_settled_minor = 0
        self._finish(WindowState.ABORTED, t_s, reason)

    def _finish(self, to: WindowState, t_s: float, reason: str) -> None:
        if self._notes:
            reason = reason + "; " + "; ".join(self._notes)
        self.move(to, t_s, reason)
        self._columns = None  # transfers are not kept once final: memory stays bounded
        self._chunks = []
        for arr in (self.positions_minor, self.obligations_minor, self.positions_by_kind_minor,
                    self.unwound_record_ids):
            if arr is not None:
                arr.flags.writeable = False
        self._fingerprint = self.fingerprint()

    def fingerprint(self) -> str:
        """A digest of everything that finality freezes: state, history, positions, unwound records."""
        h = hashlib.sha256()
        h.update(self.state.value.encode())
        for t in self._transitions:
            h.update(repr((t.t_s, t.from_state.value, t.to_state.value, t.reason)).encode())
        for arr in (self.positions_minor, self.obligations_minor, self.unwound_record_ids):
            if arr is not None:
                h.update(np.ascontiguousarray(arr).tobytes())
        h.update(repr((self.gross_minor, self.gross_settled_minor, self.t_settled_s)).encode())
        return h.hexdigest()

    def check_final(self) -> None:
        """Raise InvariantError if a final window changed after it became final (finality)."""
        if self.final and self._fingerprint != self.fingerprint():
            raise InvariantError(f"window {self.id} changed after it became {self.state.value}")


def bank_delays_s(scenario: Scenario) -> dict[float, float]:
    """`settlement.bank_delays` as {window close time (s from 00:00 of day 1): delay (s)}."""
    return {float((d.day - 1) * DAY_S + clock_seconds(d.window)): float(d.delay_minutes * 60)
            for d in scenario.settlement.bank_delays if d.delay_minutes > 0}


def latest_delayed_settlement_s(scenario: Scenario) -> float:
    """The latest time (s) a delayed window can settle: max of close + delay (0 without delays).

    With windows settling in order, no window settles later than this or its own close.
    """
    return max((t + d for t, d in bank_delays_s(scenario).items()), default=0.0)


class SettlementSystem:
    """All windows of a run, the settlement bank and the calendar; closes each window at its time.

    With a SimPy environment each window closes and settles by itself at its time;
    with `env=None` the caller closes and settles windows (tests drive it so).
    """

    def __init__(self, env: simpy.Environment | None, scenario: Scenario):
        self.env = env
        self.scenario = scenario
        st = scenario.settlement
        self.window_times = [clock_seconds(t) for t in st.windows]
        self.lag_days = st.lag_days
        self.start_date = dt.date.fromisoformat(scenario.run.start_date)
        self.calendar = BusinessCalendar.from_scenario(scenario)
        self.participant_ids = scenario.participant_ids
        self.n_participants = len(self.participant_ids)
        self.bank = SettlementBank(self.participant_ids, st.accounts)
        self.rule = st.default_rule
        self.loss_key = st.loss_sharing_key
        self.windows: list[SettlementWindow] = []
        self._by_time: dict[float, SettlementWindow] = {}
        # Settlement-bank delays (s) by window close time, and each window's settled
        # event: with delays, windows settle in the order they close (finality in order).
        self.bank_delay_s: dict[float, float] = bank_delays_s(scenario)
        self._settled_events: dict[int, simpy.Event] = {}
        self._last_closed: SettlementWindow | None = None

    # --- which window ------------------------------------------------------------

    def window_time_for(self, t_s: float) -> float:
        """Close time (s) of the window for obligations cleared at `t_s`.

        T+0: the first window at or after `t_s` on its day if that is a business
        day, else the first window of the next business day. T+N (N >= 1): the
        first window of the N-th business day after the day of `t_s`.
        """
        day = int(t_s // DAY_S)
        clock = t_s - day * DAY_S
        if self.lag_days == 0:
            if self.calendar.is_business_day(day):
                for w in self.window_times:
                    if w >= clock:
                        return day * DAY_S + w
            return self.calendar.next_business_day(day) * DAY_S + self.window_times[0]
        return self.calendar.add_business_days(day, self.lag_days) * DAY_S + self.window_times[0]

    def next_window_time(self, t_close_s: float) -> float:
        """The window time after `t_close_s` (same business day if any, else the next business day)."""
        day = int(t_close_s // DAY_S)
        clock = t_close_s - day * DAY_S
        if self.calendar.is_business_day(day):
            for w in self.window_times:
                if w > clock:
                    return day * DAY_S + w
        return self.calendar.next_business_day(day) * DAY_S + self.window_times[0]

    def window_for(self, t_s: float) -> SettlementWindow:
        """The OPEN window for obligations cleared at `t_s`, created (and scheduled) if new.

        If the window at that time has already closed, the obligations go to the
        next window (a guard: in a run, a cycle at the very second of a window comes
        before it closes, `_close`).
        """
        t_close = self.window_time_for(t_s)
        for _ in range(len(self.windows) + 1):
            w = self._by_time.get(t_close)
            if w is None or w.state is WindowState.OPEN:
                break
            t_close = self.next_window_time(t_close)
        else:  # pragma: no cover - bounded by the number of windows
            raise WindowStateError(f"no open window after t={t_s}")
        if w is None:
            w = self._new_window(t_close)
        return w

    def _new_window(self, t_close: float) -> SettlementWindow:
        day = int(t_close // DAY_S)
        clock = int(t_close - day * DAY_S)
        date = self.calendar.date_of(day)
        wid = f"{date.isoformat()}T{clock // 3600:02d}:{clock % 3600 // 60:02d}"
        w = SettlementWindow(len(self.windows), wid, t_close, self.n_participants, business_date=date.isoformat())
        self.windows.append(w)
        self._by_time[t_close] = w
        if self.env is not None:
            self.env.process(self._close(w))
        return w

    def add_obligations(self, t_s: float, kind, record_id, payer, payee, amount) -> SettlementWindow:
        """Add transfers cleared at `t_s` (chargebacks, fees, presentments) to their window; returns it.

        See `SettlementWindow.add_obligations` for the arrays and errors.
        """
        w = self.window_for(t_s)
        w.add_obligations(kind, record_id, payer, payee, amount)
        return w

    # --- running windows ----------------------------------------------------------

    def _close(self, w: SettlementWindow):
        yield self.env.timeout(max(0.0, w.t_close_s - self.env.now))
        # Once more at the close, after every event already due then: a cycle at this very
        # second clears into the window first. Its timeout was scheduled at the previous
        # cut-off, which may come after the cycle that made the window (cut-offs 10:00, 11:00
        # and 12:00 with a 12:00 window): SimPy would then close the window first.
        yield self.env.timeout(0.0)
        if not self.bank_delay_s:  # no settlement-bank delays: close and settle at once
            self.settle(w)
            return
        yield from self._close_then_settle_in_order(w)

    def _close_then_settle_in_order(self, w: SettlementWindow):
        """Close on time; settle after the bank's delay and only once the window closed before it is final.

        A delayed window holds up the windows that close after it (the settlement
        bank settles windows in order, so balances carried from window to window
        are drawn in the same order as without the delay); each of those settles at
        the same instant the delayed one does, or at its own close + delay if later.
        """
        done = self._settled_events[w.index] = self.env.event()
        before, self._last_closed = self._last_closed, w
        w.close(self.env.now)
        delay_s = self.bank_delay_s.get(w.t_close_s, 0.0)
        if delay_s > 0:
            yield self.env.timeout(delay_s)
            w._notes.append(f"settlement bank {delay_s / 60:g} min late")
        if before is not None and not before.final:
            yield self._settled_events[before.index]
            w._notes.append(f"settled after window {before.id} (windows settle in order)")
        w.settle(self.env.now, self.bank, self.rule, self.loss_key, self.participant_ids)
        done.succeed()

    def settle(self, w: SettlementWindow, t_s: float | None = None) -> None:
        """Close a window, net it, check zero-sum, fund it through the bank under the default rule."""
        now = self.env.now if (t_s is None and self.env is not None) else (t_s if t_s is not None else w.t_close_s)
        w.close(now)
        w.settle(now, self.bank, self.rule, self.loss_key, self.participant_ids)

    def check_invariants(self) -> None:
        """Every final window unchanged, every window zero-sum, money conserved; raises InvariantError."""
        for w in self.windows:
            w.check_final()
            for arr in (w.obligations_minor, w.positions_minor):
                if arr is not None and int(arr.sum()) != 0:
                    raise InvariantError(f"window {w.id}: positions do not sum to zero")
        self.bank.check_conservation()

    def settlement_horizon_day(self, last_cycle_day: int) -> int:
        """The day of the window that a cycle on `last_cycle_day` (at its last minute) settles in."""
        t = self.window_time_for(last_cycle_day * DAY_S + DAY_S - 1)
        return int(t // DAY_S)
