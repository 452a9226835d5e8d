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
from clearing_sim.clearing_results import dict_array as clearing_dict_array
from clearing_sim.clearing_results import clearing_records_table, clearing_summary
from clearing_sim.model.authorisation import APPROVED, RESPONSE_CODES
from clearing_sim.model.network import SimulationState
from clearing_sim.model.traffic import DAY_S

_DECIMALS = 3


@attrs.frozen
class Result:
    """What `clearing_sim.run` returns: the summary dict and the tables."""

    summary: dict
    transactions: pa.Table
    clearing_records: pa.Table
    settlements: pa.Table
    # (path under the run folder's clearing/, bytes) of every clearing file, when the run keeps them.
    clearing_files: tuple[tuple[str, bytes], ...] = attrs.field(default=(), eq=False, repr=False)


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
        clearing_files=tuple(state.clearing.kept_files),
    )


def _latency_ms(state: SimulationState) -> np.ndarray:
    return (state.outcomes["t_response_s"] - state.txn["t_arrival_s"]) * 1000.0


def _lag_hours(state: SimulationState) -> np.ndarray:
    """Per transaction: hours from its authorisation response to its settlement (NaN if none)."""
    settled_at = np.array([w.t_settled_s if w.t_settled_s is not None else np.nan
                           for w in state.settlement.windows] + [np.nan])
    win = state.clearing.txn_window
    t = settled_at[np.where(win >= 0, win, len(settled_at) - 1)]
    return (t - state.outcomes["t_response_s"]) / 3600.0


def _auth_block(code: np.ndarray, latency: np.ndarray, amount: np.ndarray) -> dict:
    approved = code == APPROVED
    return {
        "count": int(len(code)),
        "approved": int(approved.sum()),
        "declined": int((~approved).sum()),
        "stand_in": 0,
        "advices": 0,
        "reversals": 0,
        "approved_minor": int(amount[approved].sum()),
        "by_response_code": {_code(c): int((code == c).sum()) for c in RESPONSE_CODES if (code == c).any()},
        "latency_ms": percentiles(latency, (50, 95, 99)),
    }


def build_summary(state: SimulationState, lag_h: np.ndarray) -> dict:
    """The dict written as `summary.json` (keys listed in DESIGN.md, and more)."""
    sc = state.scenario
    code = state.outcomes["response_code"]
    latency = _latency_ms(state)
    amount = state.txn["amount_minor"]
    auth = _auth_block(code, latency, amount)
    per_issuer = {}
    routed = state.outcomes["routed_issuer"]
    wait_ms = (state.outcomes["t_host_start_s"] - state.outcomes["t_host_in_s"]) * 1000.0
    for k, iss in enumerate(sc.issuers):
        sel = routed == k
        block = _auth_block(code[sel], latency[sel], amount[sel])
        w = wait_ms[sel & ~np.isnan(wait_ms)]
        block["host_wait_ms_mean"] = _r(w.mean()) if len(w) else None
        block["queue_depth_max"] = int(state.queue_depth_max[k])
        per_issuer[iss.institution] = block
    auth["per_issuer"] = per_issuer

    clearing = clearing_summary(state)

    ids = sc.participant_ids
    windows = []
    for w in state.settlement.windows:
        pos = w.positions_minor if w.positions_minor is not None else np.zeros(len(ids), np.int64)
        windows.append({
            "id": w.id,
            "status": w.state.value,
            "cycles": [state.clearing.cycles[c].id for c in w.cycles],
            "gross_minor": int(w.gross_minor),
            "net_minor": int(-pos[pos < 0].sum()),
            "positions_minor": {pid: int(p) for pid, p in zip(ids, pos)},
            "transitions": [
                {"t_s": _r(t.t_s), "from": t.from_state.value, "to": t.to_state.value, "reason": t.reason}
                for t in w.transitions
            ],
        })
    settled = lag_h[~np.isnan(lag_h)]
    return {
        "scenario": sc.name,
        "seed": sc.run.seed,
        "mode": state.mode,
        "version": __version__,
        "start_date": sc.run.start_date,
        "days": sc.run.days,
        "simulated_days": state.horizon_days,
        "participants": list(ids),
        "authorisations": auth,
        "clearing": clearing,
        "settlement": {
            "windows": windows,
            "transactions_settled": int(len(settled)),
            "lag_hours": percentiles(settled, (50, 90, 99)),
        },
    }


def _dict_array(values: list[str], index: np.ndarray) -> pa.DictionaryArray:
    """Dictionary-encoded strings (index -1 is null)."""
    idx = pa.array(np.asarray(index, dtype=np.int32), mask=np.asarray(index) < 0)
    return pa.DictionaryArray.from_arrays(idx, pa.array(values, pa.string()))


def transactions_table(state: SimulationState, lag_h: np.ndarray) -> pa.Table:
    """One row per purchase: who, when, how much, the outcome and where it cleared and settled."""
    sc = state.scenario
    t = state.txn
    o = state.outcomes
    code = o["response_code"]
    codes = [_code(c) for c in range(100)]
    issuer_names = [i.institution for i in sc.issuers]
    file_of_txn = state.clearing.txn_file  # the file whose first presentment of it cleared
    file_ids = [f.file_id for f in state.clearing.files]
    cycle_ids = [c.id for c in state.clearing.cycles]
    window_ids = [w.id for w in state.settlement.windows]
    settled_at = np.array([w.t_settled_s if w.t_settled_s is not None else np.nan
                           for w in state.settlement.windows] + [np.nan])
    win = state.clearing.txn_window
    return pa.table({
        "txn_id": t["txn_id"],
        "day": t["day"].astype(np.int16) + 1,
        "t_arrival_s": t["t_arrival_s"],
        "acquirer": _dict_array([a.institution for a in sc.acquirers], t["acquirer"]),
        "merchant": t["merchant"],
        "mcc": t["mcc"],
        "issuer": _dict_array(issuer_names, o["routed_issuer"]),
        "bin": (state.pan // 10**10).astype(np.int32),
        "card": t["card"],
        "amount_minor": t["amount_minor"],
        "response_code": _dict_array(codes, code),
        "approved": code == APPROVED,
        "t_response_s": o["t_response_s"],
        "latency_ms": _latency_ms(state),
        "host_wait_ms": (o["t_host_start_s"] - o["t_host_in_s"]) * 1000.0,
        "clearing_file": clearing_dict_array(file_ids, file_of_txn),  # a file sent twice repeats its id
        "clearing_cycle": _dict_array(cycle_ids, state.clearing.txn_cycle),
        "settlement_window": _dict_array(window_ids, win),
        "t_settled_s": settled_at[np.where(win >= 0, win, len(settled_at) - 1)],
        "settlement_lag_h": lag_h,
    })


def clearing_table(state: SimulationState) -> pa.Table:
    """One row per clearing record received: cleared, or rejected with its reason."""
    return clearing_records_table(state)


def settlements_table(state: SimulationState) -> pa.Table:
    """One row per settlement window and participant: its net position and the window status."""
    ids = list(state.scenario.participant_ids)
    rows: dict[str, list] = {k: [] for k in ("window_id", "status", "t_close_s", "t_settled_s",
                                             "participant", "position_minor")}
    for w in state.settlement.windows:
        pos = w.positions_minor if w.positions_minor is not None else np.zeros(len(ids), np.int64)
        for pid, p in zip(ids, pos):
            rows["window_id"].append(w.id)
            rows["status"].append(w.state.value)
            rows["t_close_s"].append(float(w.t_close_s))
            rows["t_settled_s"].append(w.t_settled_s)
            rows["participant"].append(pid)
            rows["position_minor"].append(int(p))
    schema = pa.schema([
        ("window_id", pa.string()), ("status", pa.string()), ("t_close_s", pa.float64()),
        ("t_settled_s", pa.float64()), ("participant", pa.string()), ("position_minor", pa.int64()),
    ])
    return pa.table(rows, schema=schema)


__all__ = ["Result", "build_result", "percentiles", "DAY_S"]
