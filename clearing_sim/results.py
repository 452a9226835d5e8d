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
    HOST_OUTCOMES,
    ROUTES,
)
from clearing_sim.clearing_results import dict_array as clearing_dict_array
from clearing_sim.clearing_results import clearing_records_table, clearing_summary, declare_not_null, dictionary_indices
from clearing_sim.model.network import SimulationState
from clearing_sim.model.traffic import DAY_S
from clearing_sim import settlement_figures
# One rounding rule and one response-code format for every figure of the summary.
from clearing_sim.stream_figures import _DECIMALS, AuthorisationFigures, _code, _r, percentiles  # noqa: F401



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


def build_result(state: SimulationState) -> Result:
    """Summary and tables of a finished simulation."""
    settled = settlement_figures.PurchaseSettlement.of(state)
    lag_h = _lag_hours(state, settled)
    return Result(
        summary=build_summary(state, lag_h, settled),
        transactions=transactions_table(state, lag_h, settled),
        clearing_records=clearing_table(state),
        settlements=settlements_table(state),
        simulation=state,
        clearing_files=tuple(state.clearing.kept_files),
    )


def _latency_ms(state: SimulationState) -> np.ndarray:
    return (state.outcomes["t_response_s"] - state.txn["t_arrival_s"]) * 1000.0


def _lag_hours(state: SimulationState, settled: settlement_figures.PurchaseSettlement) -> np.ndarray:
    """Per transaction: hours from its authorisation response to its settlement (NaN if none).

    A record unwound after a default, or in an aborted window, is not settled (NaN).
    """
    return (settled.t_settled_s - state.outcomes["t_response_s"]) / 3600.0


def _saf_log(state: SimulationState) -> dict[str, np.ndarray]:
    """The store-and-forward attempts of the run as arrays (empty if there is no log)."""
    log = state.authorisation.saf.log if state.authorisation is not None else {}
    return {
        "kind": np.asarray(log.get("kind", []), dtype=np.int8),
        "txn": np.asarray(log.get("txn", []), dtype=np.int64),
        "attempt": np.asarray(log.get("attempt", []), dtype=np.int32),
        "t_acked_s": np.asarray(log.get("t_acked_s", []), dtype=np.float64),
    }


def authorisation_summary(state: SimulationState, latency: np.ndarray) -> dict:
    """`summary.json`'s `authorisations`: the switched ones overall and per issuer, and the in-bank ones.

    One `add` of the whole day to `stream_figures.AuthorisationFigures`, the accumulator
    the streamed run feeds chunk by chunk, so both give the same figures by construction.
    `latency` is `_latency_ms(state)`.
    """
    figures = AuthorisationFigures(state.scenario, spill_dir=None)
    figures.add(state.txn, state.outcomes, latency=latency)
    saf = _saf_log(state)
    figures.add_saf(state.outcomes["routed_issuer"][saf["txn"]], saf["kind"], saf["attempt"], saf["t_acked_s"])
    return figures.result(state.queue_depth_max)


def build_summary(state: SimulationState, lag_h: np.ndarray, settled: settlement_figures.PurchaseSettlement) -> dict:
    """The dict written as `summary.json` (keys listed in DESIGN.md, and more)."""
    auth = authorisation_summary(state, _latency_ms(state))
    lags = lag_h[~np.isnan(lag_h)]
    lag = {"transactions_settled": int(len(lags)), "lag_hours": percentiles(lags, (50, 90, 99))}
    return assemble_summary(state.scenario, state.mode, state.horizon_days, auth, clearing_summary(state),
                            state.settlement.windows, [c.id for c in state.clearing.cycles], lag,
                            settlement_figures.settlement_extras(state, settled))


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
    idx = dictionary_indices(np.arange(len(values), dtype=np.int32), index, keep_negative=True)
    return pa.DictionaryArray.from_arrays(idx, pa.array(values, pa.string()))


def transactions_table(state: SimulationState, lag_h: np.ndarray,
                       settled: settlement_figures.PurchaseSettlement) -> pa.Table:
    """One row per purchase: who, when, how much, the outcome and where it cleared and settled."""
    names = TableNames.of(state.scenario, [f.file_id for f in state.clearing.files],
                          [c.id for c in state.clearing.cycles], [w.id for w in state.settlement.windows])
    return transaction_rows(names, state.txn, state.outcomes, state.pan, state.clearing.txn_file,
                            state.clearing.txn_cycle, state.clearing.txn_window, settled.status, settled.t_settled_s,
                            lag_h, settled.owed)


@attrs.frozen
class TableNames:
    """The names that the tables' dictionary columns index into, fixed for a whole run."""

    acquirers: list[str]
    issuers: list[str]
    files: list[str]  # file ids in order of arrival (a file sent twice repeats its id)
    cycles: list[str]
    windows: list[str]
    long_bins: np.ndarray = attrs.field(eq=False)  # the issuers' 8-digit BINs, sorted (`bins`)

    @classmethod
    def of(cls, scenario, files: list[str], cycles: list[str], windows: list[str]) -> TableNames:
        long_bins = np.unique(np.array([int(b) for i in scenario.issuers for b in i.bins if len(b) == 8],
                                       dtype=np.int64))
        return cls([a.institution for a in scenario.acquirers], [i.institution for i in scenario.issuers],
                   files, cycles, windows, long_bins)

    def bins(self, pan: np.ndarray) -> np.ndarray:
        """The BIN each PAN was routed by: its first eight digits where they are an issuer's
        8-digit BIN (longest prefix first, as the switch routes), else its first six."""
        six = pan // 10**10
        if len(self.long_bins) == 0:
            return six.astype(np.int32)
        eight = pan // 10**8
        return np.where(np.isin(eight, self.long_bins), eight, six).astype(np.int32)


_CODES = [_code(c) for c in range(100)]
# The transactions' columns that may hold nulls: a purchase with an unknown BIN has no
# issuer, one never presented (or not cleared) no file, cycle or window, and one that owes
# no presentment (declined, reversed or kept in the bank) no settlement status.
TRANSACTION_NULLABLE = frozenset({"issuer", "clearing_file", "clearing_cycle", "settlement_window",
                                  "settlement_status"})


def transaction_rows(names: TableNames, t: dict[str, np.ndarray], o: dict[str, np.ndarray], pan: np.ndarray,
                     txn_file: np.ndarray, txn_cycle: np.ndarray, txn_window: np.ndarray,
                     settle_status: np.ndarray, settled_at: np.ndarray, lag_h: np.ndarray,
                     owed: np.ndarray) -> pa.Table:
    """`transactions` rows of some purchases (a whole run, or a streamed run's chunk): their
    traffic columns `t`, outcome columns `o`, PANs, the file (index into `names.files`), cycle
    and window their first presentment cleared in (-1: none), and how and when they settled.
    `settlement_status` is null where `owed` is false, a purchase that owes no presentment
    (`settlement_figures.carries_obligation`, which the caller has at hand): nothing of it
    was ever to settle."""
    code = o["response_code"]
    settle_status = np.where(owed, settle_status, -1)
    return declare_not_null(pa.table({
        "txn_id": t["txn_id"],
        "day": t["day"].astype(np.int16) + 1,
        "t_arrival_s": t["t_arrival_s"],
        "acquirer": _dict_array(names.acquirers, t["acquirer"]),
        "merchant": t["merchant"],
        "mcc": t["mcc"],
        "issuer": _dict_array(names.issuers, o["routed_issuer"]),
        "bin": names.bins(pan),
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
    }), TRANSACTION_NULLABLE)


def clearing_table(state: SimulationState) -> pa.Table:
    """One row per clearing record received: cleared, or rejected with its reason, and how it settled."""
    status = settlement_figures.record_settlement(state)[0]
    return clearing_records_table(state, _dict_array(list(settlement_figures.STATUSES), status))


def settlements_table(state: SimulationState) -> pa.Table:
    """One row per settlement window and participant: its net position and the window status.

    The columns are `settlement_figures.settlements_table`'s (a superset of the walking
    skeleton's window_id, status, t_close_s, t_settled_s, participant, position_minor).
    """
    return settlement_figures.settlements_table(state)


__all__ = ["Result", "build_result", "percentiles", "DAY_S"]
