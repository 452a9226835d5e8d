"""The whole network for one run: builds the components, runs SimPy, checks the books.

Owns: wiring traffic, the switch and issuer hosts, acquirers' files, clearing cycles
and settlement windows into one SimPy environment; the simulated horizon (traffic
days, one more day for the last files, the settlement lag and its window); and the
end-of-run invariants. Must never write files or print.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import attrs
import numpy as np
import simpy

from clearing_sim.errors import InvariantError
from clearing_sim.ipm import ClearingFileError
from clearing_sim.model.acquirers import AcquirerSubmissions
from clearing_sim.model.authorisation import APPROVED, ROUTE_IN_BANK, DetailedAuthorisation
from clearing_sim.model.clearing import ClearingNetwork, check_clearing
from clearing_sim.model.clearing_data import RecordFactory
from clearing_sim.model.clearing_draws import draw_clearing, extra_days, lateness_days
from clearing_sim.model.disputes import IssuerDisputes
from clearing_sim.model.fast_authorisation import FastAuthorisation
from clearing_sim.model.routing import BinTable
from clearing_sim.model.settlement import SettlementSystem, WindowState, latest_delayed_settlement_s
from clearing_sim.model.traffic import DAY_S, build_catalogue, draw_days
from clearing_sim.scenario import Scenario

MODES = ("detailed", "fast")


@attrs.define
class SimulationState:
    """Everything a finished run knows, as arrays and component objects."""

    scenario: Scenario
    mode: str
    txn: dict[str, np.ndarray]
    pan: np.ndarray
    outcomes: dict[str, np.ndarray]
    queue_depth_max: list[int]
    acquirers: AcquirerSubmissions
    clearing: ClearingNetwork
    settlement: SettlementSystem
    horizon_days: int
    authorisation: DetailedAuthorisation | None = None
    disputes: IssuerDisputes | None = None


def horizon_days(scenario: Scenario) -> int:
    """Traffic days, a day for the last files and cycle, then the lag and its windows.

    The settlement lag counts business days, so weekends and holidays after the
    last cycle can push the last window further out: the horizon reaches past it.
    Refunds and disputes, when the scenario has them, add the days they may take, and
    late files (drawn or injected) the days by which they can be late; a late file
    sent on one of those added days can add more, so that is repeated until nothing
    changes.
    """
    extra = extra_days(scenario)
    days = _horizon(scenario, extra)
    for _ in range(100):
        longer = _horizon(scenario, extra + lateness_days(scenario, days))
        if longer <= days:
            break
        days = longer
    else:
        raise InvariantError("late files keep pushing the end of the run out; the delays cannot be bounded")
    return days


def _horizon(scenario: Scenario, extra: int) -> int:
    base = scenario.run.days + 1 + scenario.settlement.lag_days + 1 + extra
    last_window_day = SettlementSystem(None, scenario).settlement_horizon_day(scenario.run.days + 1 + extra)
    days = max(base, last_window_day + 1)
    # A settlement-bank delay can push a window's settlement past that: run until it settles.
    return max(days, int(latest_delayed_settlement_s(scenario) // DAY_S) + 1)


def simulate(scenario: Scenario, mode: str = "detailed",
             progress: Callable[[float, float], None] | None = None,
             keep_clearing_files: bool = False) -> SimulationState:
    """Run the scenario (its `run.seed`) in the given fidelity mode; raises ValueError on a bad mode.

    `progress(now_s, horizon_s)` is called once per simulated hour if given; it only
    observes, so it never changes the outcome. `keep_clearing_files` keeps the bytes
    of every clearing file (received and sent) in `state.clearing.kept_files`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (one of: {', '.join(MODES)})")
    catalogue = build_catalogue(scenario)
    txn = draw_days(scenario, catalogue)
    bins = BinTable(scenario)
    pan = bins.pans(txn["issuer"], txn["card"])
    routed = bins.route(pan)
    if not np.array_equal(routed, txn["issuer"]):
        raise InvariantError("a card's PAN routes to another issuer than the one that issued it")

    env = simpy.Environment()
    days = horizon_days(scenario)
    if mode == "fast":
        auth = FastAuthorisation(scenario, txn, routed, days * DAY_S)
    else:
        auth = DetailedAuthorisation(env, scenario, txn, routed)
    settlement = SettlementSystem(env, scenario)
    draws = draw_clearing(scenario, txn)
    factory = RecordFactory(dt.date.fromisoformat(scenario.run.start_date), txn, pan,
                            np.array([scenario.institution_index(i.institution) for i in scenario.issuers]),
                            np.array([scenario.institution_index(a.institution) for a in scenario.acquirers]),
                            scenario.disputes.chargeback_reason_code)
    clearing = ClearingNetwork(env, scenario, txn, routed, settlement, days, pan=pan, outcomes=auth.out,
                               draws=draws, factory=factory, keep_files=keep_clearing_files)
    acquirers = AcquirerSubmissions(env, scenario, txn, auth.out, days, clearing.receive,
                                    network=clearing, draws=draws, factory=factory,
                                    write_bytes=mode == "detailed" or keep_clearing_files)
    disputes = IssuerDisputes(env, scenario, routed, days, clearing, draws, factory)
    clearing.on_file_rejected = {"acquirer": acquirers.file_rejected, "issuer": disputes.file_rejected}
    if progress is not None:
        env.process(_report_progress(env, progress, days * DAY_S))
    try:
        env.run(until=days * DAY_S)
        auth.drain()
    except ClearingFileError as exc:
        # The scenario was valid: a file the simulator writes itself that breaks a limit of
        # the format (say a day's amounts past PDS 0301's 16 digits) is its failure, not bad
        # input (exit 1 with a failed run folder, not exit 2 that says nothing was written).
        raise InvariantError(f"a clearing file of this run cannot be written: {exc}") from exc
    auth.finish()

    state = SimulationState(scenario, mode, txn, pan, auth.out, auth.queue_depth_max,
                            acquirers, clearing, settlement, days, authorisation=auth, disputes=disputes)
    check_invariants(state)
    return state


def _report_progress(env: simpy.Environment, progress: Callable[[float, float], None], horizon_s: float):
    while env.now < horizon_s:
        yield env.timeout(3600.0)
        progress(env.now, horizon_s)


def check_invariants(state: SimulationState) -> None:
    """The books must balance at the end of every run; raises InvariantError if not."""
    out = state.outcomes
    code = out["response_code"]
    if (code < 0).any() or np.isnan(out["t_response_s"]).any():
        raise InvariantError(f"{int((code < 0).sum())} authorisation(s) never reached a final state")
    approved = code == APPROVED
    cleared = state.clearing.txn_cycle >= 0
    if (cleared & ~approved).any():
        raise InvariantError("a declined authorisation was cleared")
    # Reversed authorisations and purchases kept inside the bank are never presented.
    presentable = approved & ~out["reversed"] & (out["route"] != ROUTE_IN_BANK)
    if (cleared & ~presentable).any():
        raise InvariantError(f"{int((cleared & ~presentable).sum())} reversed or in-bank authorisation(s) were cleared")
    presented = state.acquirers.ever_presented
    if (presented & ~presentable).any():
        raise InvariantError(f"{int((presented & ~presentable).sum())} reversed or in-bank authorisation(s) were presented")
    if (presentable & ~presented).any():
        raise InvariantError(f"{int((presentable & ~presented).sum())} approved authorisation(s) were never presented")
    amount = state.txn["amount_minor"]
    switched_approved = approved & (out["route"] != ROUTE_IN_BANK)
    approved_minor = int(amount[switched_approved].sum())
    reversed_minor = int(amount[switched_approved & out["reversed"]].sum())
    presented_minor = int(amount[presented].sum())
    if approved_minor - reversed_minor != presented_minor:
        raise InvariantError(f"approved {approved_minor} minus reversed {reversed_minor} fen is not the "
                             f"{presented_minor} fen handed to clearing")
    if state.authorisation is not None:
        state.authorisation.check()
    senders = [state.acquirers] + ([state.disputes] if state.disputes is not None else [])
    check_clearing(state.clearing, senders)
    for w in state.settlement.windows:
        if w.state not in (WindowState.SETTLED, WindowState.ABORTED):
            raise InvariantError(f"window {w.id} ended the run {w.state.value}")
        if w.positions_minor is not None and int(w.positions_minor.sum()) != 0:
            raise InvariantError(f"window {w.id}: positions do not sum to zero")
    state.settlement.check_invariants()
