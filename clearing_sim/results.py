"""A finished simulation as users see it: `summary.json`'s dict and the Arrow tables.

Owns: every figure of the summary (counts, amounts, percentiles, window positions)
and the schema of `transactions`, `clearing_records` and `settlements`. Values are
plain Python ints, floats rounded to a fixed number of decimals, and strings, in a
fixed key order, so the same run always serialises to the same bytes. Must never
run the model or touch the file system.
"""

from __future__ import annotations

import attrs
import numpy as np
import pyarrow as pa

from clearing_sim import __version__
from clearing_sim.messages import MessageLog, build_message_log
from clearing_sim.model.authorisation import (
    APPROVED,
    FINAL_STATES,
    HOST_NOT_SENT,
    HOST_OUTCOMES,
    RESPONSE_CODES,
    ROUTE_IN_BANK,
    ROUTES,
)
from clearing_sim.model.switch import ADVICE
from clearing_sim.clearing_results import dict_array as clearing_dict_array
from clearing_sim.clearing_results import clearing_records_table, clearing_summary
from clearing_sim.model.authorisation import APPROVED, RESPONSE_CODES
from clearing_sim.model.switch_restarts import SwitchRestarts
from clearing_sim.model.network import SimulationState
from clearing_sim.model.traffic import DAY_S
from clearing_sim import settlement_figures

_DECIMALS = 3


@attrs.frozen
class Result:
    """What `clearing_sim.run` returns: the summary dict and the tables."""

    summary: dict
    transactions: pa.Table
    clearing_records: pa.Table
    settlements: pa.Table
    # The finished simulation, for views built on demand (the ISO 8583 trace).
    simulation: SimulationState | None = attrs.field(default=None, eq=False, repr=False)

    def message_log(self) -> MessageLog:
        """Every ISO 8583 authorisation message of the run, in trace order; raises ValueError without a simulation."""
        if self.simulation is None:
            raise ValueError("this result carries no simulation to build messages from")
        return build_message_log(self.simulation)
    # (path under the run folder's clearing/, bytes) of every clearing file, when the run keeps them.
    clearing_files: tuple[tuple[str, bytes], ...] = attrs.field(default=(), eq=False, repr=False)
    # True when the tables and the report are already in the run folder (a streamed run,
    # `clearing_sim.streamed`): the result then carries the summary alone.
    written: bool = attrs.field(default=False, eq=False)


def _r(x: float) -> float:
    return round(float(x), _DECIMALS)


def percentiles(values: np.ndarray, qs: tuple[int, ...]) -> dict[str, float | None]:
    """`{"p50": ..., "max": ...}` of the values (None when there are none)."""
    out: dict[str, float | None] = {}
    if len(values) == 0:
        out.update({f"p{q}": None for q in qs})
        out["max"] = None
        return out
    pv = np.percentile(values, qs)
    out.update({f"p{q}": _r(v) for q, v in zip(qs, pv)})
    out["max"] = _r(values.max())
    return out


def _code(c: int) -> str:
    return f"{c:02d}"


def build_result(state: SimulationState) -> Result:
    """Summary and tables of a finished simulation."""
    lag_h = _lag_hours(state)
    return Result(
        summary=build_summary(state, lag_h),
        transactions=transactions_table(state, lag_h),
        clearing_records=clearing_table(state),
        settlements=settlements_table(state),
        simulation=state,
        clearing_files=tuple(state.clearing.kept_files),
    )


def _latency_ms(state: SimulationState) -> np.ndarray:
    return (state.outcomes["t_response_s"] - state.txn["t_arrival_s"]) * 1000.0


def _lag_hours(state: SimulationState) -> np.ndarray:
    """Per transaction: hours from its authorisation response to its settlement (NaN if none).

    A record unwound after a default, or in an aborted window, is not settled (NaN).
    """
    _, t = settlement_figures.txn_settlement(state)
    return (t - state.outcomes["t_response_s"]) / 3600.0


def _auth_block(code: np.ndarray, latency: np.ndarray, amount: np.ndarray, o: dict[str, np.ndarray],
                saf: dict[str, np.ndarray]) -> dict:
    """Counts, values and latency of a selection of switched authorisations (all arrays already selected).

    `approved` counts every `00` answer, stand-in approvals and answers later reversed
    included; `approved_minor - reversed_approved_minor` is what acquirers could present.
    `advices` counts 0120s (one per stand-in approval), `reversals` 0400s.
    """
    approved = code == APPROVED
    stand_in = o["stand_in"]
    rev = o["reversed"]
    stand_in_approved = stand_in & approved
    host = o["host_outcome"]
    first = saf["attempt"] == 0
    is_advice = saf["kind"] == ADVICE
    return {
        "count": int(len(code)),
        "approved": int(approved.sum()),
        "declined": int((~approved).sum()),
        "stand_in": int(stand_in_approved.sum()),
        "advices": int((first & is_advice).sum()),
        "reversals": int(rev.sum()),
        "approved_minor": int(amount[approved].sum()),
        "stand_in_minor": int(amount[stand_in_approved].sum()),
        "stand_in_declined": int((stand_in & ~approved).sum()),
        "reversed_approved": int((rev & approved).sum()),
        "reversed_approved_minor": int(amount[rev & approved].sum()),
        "switch_timeouts": int((stand_in & (host != HOST_NOT_SENT)).sum()),
        "advice_repeats": int((~first & is_advice).sum()),
        "reversal_advices": int((first & ~is_advice).sum()),
        "reversal_advice_repeats": int((~first & ~is_advice).sum()),
        # Lost by a switch restart (clearing_sim.model.switch_restarts): no answer, reversed.
        "lost_in_switch": int(o["lost_in_switch"].sum()),
        "lost_in_switch_minor": int(amount[o["lost_in_switch"]].sum()),
        "by_response_code": {_code(c): int((code == c).sum()) for c in RESPONSE_CODES if (code == c).any()},
        "by_final_state": {name: int((o["final_state"] == s).sum())
                           for s, name in enumerate(FINAL_STATES) if (o["final_state"] == s).any()},
        "latency_ms": percentiles(latency, (50, 95, 99)),
    }


def _select(o: dict[str, np.ndarray], sel: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[sel] for k, v in o.items()}


def _saf_log(state: SimulationState) -> dict[str, np.ndarray]:
    """The store-and-forward attempts of the run as arrays (empty if there is no log)."""
    log = state.authorisation.saf.log if state.authorisation is not None else {}
    return {
        "kind": np.asarray(log.get("kind", []), dtype=np.int8),
        "txn": np.asarray(log.get("txn", []), dtype=np.int64),
        "attempt": np.asarray(log.get("attempt", []), dtype=np.int32),
    }


def _reversal_repeats(state: SimulationState) -> np.ndarray:
    """Per transaction: how many times its acquirer repeated the 0400 (a down switch lost it)."""
    o = state.outcomes
    out = np.zeros(len(o["reversed"]), dtype=np.int64)
    restarts = SwitchRestarts(state.scenario)
    rev = np.flatnonzero(o["reversed"])
    if restarts and len(rev):
        txn = state.txn
        timeout_s = np.array([a.auth_timeout_ms / 1000.0 for a in state.scenario.acquirers])[
            txn["acquirer"][rev].astype(np.int64)]
        _, out[rev] = restarts.reversal_arrival(txn["t_arrival_s"][rev] + timeout_s,
                                                txn["hop_rev_acq_switch_s"][rev], timeout_s)
    return out


def authorisation_summary(state: SimulationState, latency: np.ndarray) -> dict:
    """`summary.json`'s `authorisations`: the switched ones overall and per issuer, and the in-bank ones."""
    o = state.outcomes
    code = o["response_code"]
    amount = state.txn["amount_minor"]
    route = o["route"]
    routed = o["routed_issuer"]
    saf = _saf_log(state)
    saf_issuer = routed[saf["txn"]] if len(saf["txn"]) else np.empty(0, dtype=np.int16)
    switched = route != ROUTE_IN_BANK
    auth = _auth_block(code[switched], latency[switched], amount[switched], _select(o, switched), saf)
    wait_ms = (o["t_host_start_s"] - o["t_host_in_s"]) * 1000.0
    reversal_repeats = _reversal_repeats(state)
    per_issuer = {}
    for k, iss in enumerate(state.scenario.issuers):
        sel = switched & (routed == k)
        block = _auth_block(code[sel], latency[sel], amount[sel], _select(o, sel),
                            {key: v[saf_issuer == k] for key, v in saf.items()})
        served = (routed == k) & ~np.isnan(wait_ms)
        w = wait_ms[served]
        block["host_wait_ms_mean"] = _r(w.mean()) if len(w) else None
        block["host_wait_ms"] = percentiles(w, (50, 99))
        block["queue_depth_max"] = int(state.queue_depth_max[k])
        host = o["host_outcome"][routed == k]
        block["host"] = {name: int((host == h).sum()) for h, name in enumerate(HOST_OUTCOMES)}
        block["reversal_repeats"] = int(reversal_repeats[sel].sum())
        per_issuer[iss.institution] = block
    auth["per_issuer"] = per_issuer
    auth["reversal_repeats"] = int(reversal_repeats.sum())  # 0401s: 0400s sent again after a down switch
    bank = route == ROUTE_IN_BANK
    bank_code = code[bank]
    auth["in_bank"] = {
        "count": int(bank.sum()),
        "approved": int((bank_code == APPROVED).sum()),
        "declined": int((bank_code != APPROVED).sum()),
        "approved_minor": int(amount[bank][bank_code == APPROVED].sum()),
        "by_response_code": {_code(c): int((bank_code == c).sum()) for c in RESPONSE_CODES if (bank_code == c).any()},
        "latency_ms": percentiles(latency[bank], (50, 95, 99)),
    }
    return auth


def build_summary(state: SimulationState, lag_h: np.ndarray) -> dict:
    """The dict written as `summary.json` (keys listed in DESIGN.md, and more)."""
    auth = authorisation_summary(state, _latency_ms(state))
    settled = lag_h[~np.isnan(lag_h)]
    lag = {"transactions_settled": int(len(settled)), "lag_hours": percentiles(settled, (50, 90, 99))}
    return assemble_summary(state.scenario, state.mode, state.horizon_days, auth, clearing_summary(state),
                            state.settlement.windows, [c.id for c in state.clearing.cycles], lag,
                            settlement_figures.settlement_extras(state))


def assemble_summary(sc, mode: str, horizon_days: int, auth: dict, clearing: dict, settlement_windows,
                     cycle_ids: list[str], lag: dict, extras: dict) -> dict:
    """`summary.json` from its parts: the authorisation and clearing blocks, the windows, the
    settlement lag figures (`transactions_settled`, `lag_hours`) and `settlement_extras`."""
    ids = sc.participant_ids
    windows = []
    for w in settlement_windows:
        pos = w.positions_minor if w.positions_minor is not None else np.zeros(len(ids), np.int64)
        windows.append({
            "id": w.id,
            "status": w.state.value,
            "cycles": [cycle_ids[c] for c in w.cycles],
            "gross_minor": int(w.gross_minor),
            "net_minor": int(-pos[pos < 0].sum()),
            "positions_minor": {pid: int(p) for pid, p in zip(ids, pos)},
            "transitions": [
                {"t_s": _r(t.t_s), "from": t.from_state.value, "to": t.to_state.value, "reason": t.reason}
                for t in w.transitions
            ],
        })
        windows[-1].update(settlement_figures.window_extras(w, ids))
    return {
        "scenario": sc.name,
        "seed": sc.run.seed,
        "mode": mode,
        "version": __version__,
        "start_date": sc.run.start_date,
        "days": sc.run.days,
        "simulated_days": horizon_days,
        "participants": list(ids),
        "authorisations": auth,
        "clearing": clearing,
        "settlement": {
            "windows": windows,
            "transactions_settled": lag["transactions_settled"],
            "lag_hours": lag["lag_hours"],
            **extras,
        },
    }


def _dict_array(values: list[str], index: np.ndarray) -> pa.DictionaryArray:
    """Dictionary-encoded strings (index -1 is null)."""
    idx = pa.array(np.asarray(index, dtype=np.int32), mask=np.asarray(index) < 0)
    return pa.DictionaryArray.from_arrays(idx, pa.array(values, pa.string()))


def transactions_table(state: SimulationState, lag_h: np.ndarray) -> pa.Table:
    """One row per purchase: who, when, how much, the outcome and where it cleared and settled."""
    settle_status, settled_at = settlement_figures.txn_settlement(state)
    names = TableNames.of(state.scenario, [f.file_id for f in state.clearing.files],
                          [c.id for c in state.clearing.cycles], [w.id for w in state.settlement.windows])
    return transaction_rows(names, state.txn, state.outcomes, state.pan, state.clearing.txn_file,
                            state.clearing.txn_cycle, state.clearing.txn_window, settle_status, settled_at, lag_h)


@attrs.frozen
class TableNames:
    """The names that the tables' dictionary columns index into, fixed for a whole run."""

    acquirers: list[str]
    issuers: list[str]
    files: list[str]  # file ids in order of arrival (a file sent twice repeats its id)
    cycles: list[str]
    windows: list[str]

    @classmethod
    def of(cls, scenario, files: list[str], cycles: list[str], windows: list[str]) -> TableNames:
        return cls([a.institution for a in scenario.acquirers], [i.institution for i in scenario.issuers],
                   files, cycles, windows)


_CODES = [_code(c) for c in range(100)]


def transaction_rows(names: TableNames, t: dict[str, np.ndarray], o: dict[str, np.ndarray], pan: np.ndarray,
                     txn_file: np.ndarray, txn_cycle: np.ndarray, txn_window: np.ndarray,
                     settle_status: np.ndarray, settled_at: np.ndarray, lag_h: np.ndarray) -> pa.Table:
    """`transactions` rows of some purchases (a whole run, or a streamed run's chunk): their
    traffic columns `t`, outcome columns `o`, PANs, the file (index into `names.files`), cycle
    and window their first presentment cleared in (-1: none), and how and when they settled."""
    code = o["response_code"]
    return pa.table({
        "txn_id": t["txn_id"],
        "day": t["day"].astype(np.int16) + 1,
        "t_arrival_s": t["t_arrival_s"],
        "acquirer": _dict_array(names.acquirers, t["acquirer"]),
        "merchant": t["merchant"],
        "mcc": t["mcc"],
        "issuer": _dict_array(names.issuers, o["routed_issuer"]),
        "bin": (pan // 10**10).astype(np.int32),
        "card": t["card"],
        "amount_minor": t["amount_minor"],
        "response_code": _dict_array(_CODES, code),
        "approved": code == APPROVED,
        "t_response_s": o["t_response_s"],
        "latency_ms": (o["t_response_s"] - t["t_arrival_s"]) * 1000.0,
        "host_wait_ms": (o["t_host_start_s"] - o["t_host_in_s"]) * 1000.0,
        "clearing_file": clearing_dict_array(names.files, txn_file),  # a file sent twice repeats its id
        "clearing_cycle": _dict_array(names.cycles, txn_cycle),
        "settlement_window": _dict_array(names.windows, txn_window),
        "t_settled_s": settled_at,
        "settlement_lag_h": lag_h,
        "settlement_status": _dict_array(list(settlement_figures.STATUSES), settle_status),
        # The authorisation's path (see clearing_sim.model.authorisation).
        "route": _dict_array(list(ROUTES), o["route"]),
        "final_state": _dict_array(list(FINAL_STATES), o["final_state"]),
        "stand_in": o["stand_in"],
        "reversed": o["reversed"],
        "lost_in_switch": o["lost_in_switch"],
        "host_outcome": _dict_array(list(HOST_OUTCOMES), o["host_outcome"]),
        "t_switch_in_s": o["t_switch_in_s"],
        "t_host_in_s": o["t_host_in_s"],
        "t_host_start_s": o["t_host_start_s"],
        "t_host_end_s": o["t_host_end_s"],
        "t_switch_response_s": o["t_switch_response_s"],
        "t_reversal_s": o["t_reversal_s"],
        "t_advice_applied_s": o["t_advice_applied_s"],
        "t_reversal_applied_s": o["t_reversal_applied_s"],
        "credit_limit_minor": t["credit_limit_minor"],
    })


def clearing_table(state: SimulationState) -> pa.Table:
    """One row per clearing record received: cleared, or rejected with its reason, and how it settled."""
    table = clearing_records_table(state)
    status = settlement_figures.record_settlement(state)[0]
    return table.append_column("settlement_status", _dict_array(list(settlement_figures.STATUSES), status))


def settlements_table(state: SimulationState) -> pa.Table:
    """One row per settlement window and participant: its net position and the window status.

    The columns are `settlement_figures.settlements_table`'s (a superset of the walking
    skeleton's window_id, status, t_close_s, t_settled_s, participant, position_minor).
    """
    return settlement_figures.settlements_table(state)


__all__ = ["Result", "build_result", "percentiles", "DAY_S"]
