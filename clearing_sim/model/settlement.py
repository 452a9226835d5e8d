"""Settlement windows: an explicit state machine, netted by `clearing_sim.netting`.

Owns: the assignment of clearing cycles to windows (the first window on or after
T+`lag_days` whose time is not before the cycle's cut-off on that day), each
window's life OPEN -> CLOSED -> PENDING_SETTLEMENT -> SETTLED | ABORTED with its
transitions appended and never edited, and the check that a window's net positions
sum to zero. Must never change a SETTLED window (finality) and never compute net
positions itself: netting is `clearing_sim.netting`'s.
"""

from __future__ import annotations

import datetime as dt
import enum

import attrs
import numpy as np
import simpy

from clearing_sim import netting
from clearing_sim.errors import InvariantError
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


class WindowStateError(InvariantError):
    """A move the window state machine does not allow (a bug in the caller)."""


@attrs.frozen
class Transition:
    t_s: float
    from_state: WindowState
    to_state: WindowState
    reason: str


@attrs.define
class SettlementWindow:
    """One settlement window: the cycles assigned to it, its transfers and its history."""

    index: int
    id: str
    t_close_s: float
    n_participants: int
    state: WindowState = WindowState.OPEN
    transitions: list[Transition] = attrs.Factory(list)
    cycles: list[int] = attrs.Factory(list)
    payer: list[np.ndarray] = attrs.Factory(list)
    payee: list[np.ndarray] = attrs.Factory(list)
    amount: list[np.ndarray] = attrs.Factory(list)
    positions_minor: np.ndarray | None = None
    gross_minor: int = 0
    t_settled_s: float | None = None

    def move(self, to: WindowState, t_s: float, reason: str) -> None:
        """Append a transition; raises WindowStateError for a move the machine forbids."""
        if to not in _ALLOWED[self.state]:
            raise WindowStateError(f"window {self.id} is {self.state.value}: it cannot become {to.value}")
        self.transitions.append(Transition(t_s, self.state, to, reason))
        self.state = to

    def add_transfers(self, payer: np.ndarray, payee: np.ndarray, amount: np.ndarray) -> None:
        """Add obligations (payer pays payee `amount` fen) to an OPEN window."""
        if self.state is not WindowState.OPEN:
            raise WindowStateError(f"window {self.id} is not open (it is {self.state.value})")
        self.payer.append(np.asarray(payer, dtype=np.int64))
        self.payee.append(np.asarray(payee, dtype=np.int64))
        self.amount.append(np.asarray(amount, dtype=np.int64))


class SettlementSystem:
    """Creates windows on demand, closes and settles each at its time."""

    def __init__(self, env: simpy.Environment, scenario: Scenario):
        self.env = env
        self.scenario = scenario
        self.window_times = [clock_seconds(t) for t in scenario.settlement.windows]
        self.lag_days = scenario.settlement.lag_days
        self.start_date = dt.date.fromisoformat(scenario.run.start_date)
        self.n_participants = len(scenario.participant_ids)
        self.windows: list[SettlementWindow] = []
        self._by_time: dict[float, SettlementWindow] = {}

    def window_time_for(self, t_cutoff_s: float) -> float:
        """The close time (s) of the window a cycle with this cut-off settles in."""
        day = int(t_cutoff_s // DAY_S)
        clock = t_cutoff_s - day * DAY_S
        target = day + self.lag_days
        for w in self.window_times:
            if self.lag_days > 0 or w >= clock:
                return target * DAY_S + w
        return (target + 1) * DAY_S + self.window_times[0]

    def window_for(self, t_cutoff_s: float) -> SettlementWindow:
        """The OPEN window for a cycle cut at `t_cutoff_s`, created (and scheduled) if new."""
        t_close = self.window_time_for(t_cutoff_s)
        w = self._by_time.get(t_close)
        if w is None:
            day = int(t_close // DAY_S)
            clock = int(t_close - day * DAY_S)
            date = self.start_date + dt.timedelta(days=day)
            wid = f"{date.isoformat()}T{clock // 3600:02d}:{clock % 3600 // 60:02d}"
            w = SettlementWindow(len(self.windows), wid, t_close, self.n_participants)
            self.windows.append(w)
            self._by_time[t_close] = w
            self.env.process(self._close(w))
        if w.state is not WindowState.OPEN:
            raise WindowStateError(f"window {w.id} is not open (it is {w.state.value})")
        return w

    def _close(self, w: SettlementWindow):
        yield self.env.timeout(max(0.0, w.t_close_s - self.env.now))
        self.settle(w)

    def settle(self, w: SettlementWindow) -> None:
        """Close a window, net it, check zero-sum, and settle it."""
        now = self.env.now
        w.move(WindowState.CLOSED, now, "window time reached")
        payer = np.concatenate(w.payer) if w.payer else np.empty(0, np.int64)
        payee = np.concatenate(w.payee) if w.payee else np.empty(0, np.int64)
        amount = np.concatenate(w.amount) if w.amount else np.empty(0, np.int64)
        positions = netting.multilateral_positions(payer, payee, amount, self.n_participants)
        try:
            netting.check_zero_sum(positions, what=f"window {w.id}")
        except netting.NettingInvariantError as exc:
            raise InvariantError(str(exc)) from exc
        w.positions_minor = positions
        w.gross_minor = int(amount.sum(dtype=np.int64))
        w.move(WindowState.PENDING_SETTLEMENT, now, "net positions computed")
        w.move(WindowState.SETTLED, now, "net debtors funded, creditors paid")
        w.t_settled_s = now
