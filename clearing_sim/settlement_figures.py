"""Settlement figures of a finished run: what `summary.json` and `settlements.parquet` say about settlement.

Owns: per-record and per-transaction settlement status and time (a record settles
when its window is SETTLED and it was not unwound), per-window figures (obligations,
positions per kind, defaults and the cascade, unwound records, guarantee-fund draws
and loss shares, liquidity saving, cover-1), and run-level figures: per-participant
peak net debit, exposure over time (value owed to the network's settlement and not yet
settled: see `carries_obligation`; its peak, time-weighted mean and hourly levels) and
total liquidity. Must never run the model or write files; money stays integer fen,
ratios are rounded floats.
"""

from __future__ import annotations

import attrs
import numpy as np
import pyarrow as pa

from clearing_sim.model.authorisation import APPROVED, ROUTE_IN_BANK
from clearing_sim.model.defaults import UNLIMITED
from clearing_sim.model.settlement import KIND_NAMES, SettlementWindow, WindowState
from clearing_sim.model.traffic import DAY_S, HOUR_S
from clearing_sim.scenario import clock_seconds

_DECIMALS = 6
STATUSES = ("settled", "unwound", "aborted", "unsettled")  # per record / transaction
SETTLED, UNWOUND, ABORTED, UNSETTLED = range(4)


def _ratio(x: float) -> float:
    return round(float(x), _DECIMALS)


def record_settlement(state) -> tuple[np.ndarray, np.ndarray]:
    """Per clearing record: (status code into STATUSES, settlement time in s or NaN)."""
    recs = state.clearing.records()
    windows = state.settlement.windows
    code = np.array([SETTLED if w.state is WindowState.SETTLED else
                     ABORTED if w.state is WindowState.ABORTED else UNSETTLED for w in windows] + [UNSETTLED],
                    dtype=np.int8)
    t = np.array([w.t_settled_s if w.t_settled_s is not None else np.nan for w in windows] + [np.nan])
    win = recs["window"].astype(np.int64)
    win = np.where(win >= 0, win, len(windows))
    status = code[win]
    t_settled = t[win]
    unwound = [w.unwound_record_ids[w.unwound_record_ids >= 0] for w in windows if len(w.unwound_record_ids)]
    if unwound:
        pos = np.searchsorted(recs["record_id"], np.concatenate(unwound))
        status[pos] = UNWOUND
        t_settled[pos] = np.nan
    return status, t_settled


def carries_obligation(response_code: np.ndarray, route: np.ndarray, reversed_: np.ndarray) -> np.ndarray:
    """Per purchase: approved, switched through the network and not reversed.

    These purchases, and only these, owe the network a first presentment, so they are the
    ones that can settle: the exposure and `transactions_by_settlement_status` count them
    alone. An approval kept inside the issuing bank (`on_us_in_bank`) never reaches the
    network's clearing; an approval reversed (the acquirer timed out and sent a 0400) left
    the merchant with a decline and carries no clearing obligation.
    """
    return (np.asarray(response_code) == APPROVED) & (np.asarray(route) != ROUTE_IN_BANK) & ~np.asarray(reversed_)


def txn_settlement(state) -> tuple[np.ndarray, np.ndarray]:
    """Per transaction: (status code into STATUSES, settlement time in s or NaN; never cleared: unsettled)."""
    n = len(state.txn["txn_id"])
    status = np.full(n, UNSETTLED, dtype=np.int8)
    t = np.full(n, np.nan)
    rs, rt = record_settlement(state)
    recs = state.clearing.records()
    # A purchase settles with its cleared first presentment (not its refund, chargeback or a rejected copy).
    first = np.flatnonzero((recs["status"] == 0) & (recs["kind"] == 0))
    idx = recs["matched_txn"][first]
    status[idx] = rs[first]
    t[idx] = rt[first]
    return status, t


@attrs.frozen
class PurchaseSettlement:
    """Per purchase of an in-memory run, worked out once for its summary and its table:
    `status` and `t_settled_s` (`txn_settlement`) and `owed` (`carries_obligation`)."""

    status: np.ndarray
    t_settled_s: np.ndarray
    owed: np.ndarray

    @classmethod
    def of(cls, state) -> PurchaseSettlement:
        status, t_settled = txn_settlement(state)
        o = state.outcomes
        return cls(status, t_settled, carries_obligation(o["response_code"], o["route"], o["reversed"]))


def _by_id(ids, values) -> dict[str, int]:
    return {pid: int(v) for pid, v in zip(ids, values)}


def window_extras(w: SettlementWindow, ids: tuple[str, ...]) -> dict:
    """Settlement figures of one window, beyond the DESIGN.md keys (all money in fen)."""
    n = len(ids)
    zeros = np.zeros(n, np.int64)
    obligations = w.obligations_minor if w.obligations_minor is not None else zeros
    positions = w.positions_minor if w.positions_minor is not None else zeros
    net_settled = int(-positions[positions < 0].sum())
    res = w.resolution
    out: dict = {
        "business_date": w.business_date,
        "t_close_s": round(float(w.t_close_s), 3),
        "t_settled_s": None if w.t_settled_s is None else round(float(w.t_settled_s), 3),
        # Close to settlement: 0 unless the settlement bank was late (settlement.bank_delays).
        "settled_after_close_s": None if w.t_settled_s is None else round(float(w.t_settled_s - w.t_close_s), 3),
        "transfers": int(w.n_transfers),
        "gross_settled_minor": int(w.gross_settled_minor),
        "liquidity_saving": _ratio(1 - net_settled / w.gross_settled_minor) if w.gross_settled_minor else None,
        "obligations_minor": _by_id(ids, obligations),
        "obligations_net_minor": int(-obligations[obligations < 0].sum()),
        "positions_by_kind_minor": {
            KIND_NAMES[k]: _by_id(ids, w.positions_by_kind_minor[k]) for k in w.kinds_present
        } if w.positions_by_kind_minor is not None else {},
        "default_rule": res.rule if res is not None else None,
        "defaults": [
            {"participant": ids[d.participant], "round": d.round, "net_debit_minor": d.net_debit_minor,
             "available_minor": d.capacity_minor}
            for d in (res.defaults if res is not None else ())
        ],
        "cascade_rounds": max((d.round for d in res.defaults), default=0) if res is not None else 0,
        "unwound": {"records": w.records_unwound, "transfers": int(w.unwound_transfers),
                    "gross_minor": int(w.unwound_minor)},
        "shortfall_minor": int(res.shortfall_minor) if res is not None else 0,
        "funding": {"paid_in_minor": int(w.paid_in_minor), "paid_out_minor": int(w.paid_out_minor)},
        "cover_1": _cover_1(w.cover_1, ids),
    }
    if res is not None and res.fund_draw.any():
        out["guarantee_fund_draw_minor"] = _by_id(ids, res.fund_draw)
    if res is not None and res.loss_share.any():
        out["loss_share_minor"] = _by_id(ids, res.loss_share)
    return out


def _cover_1(c: dict | None, ids) -> dict | None:
    if c is None:
        return None
    out = dict(c)
    out["participant"] = ids[c["participant"]]
    out["further_defaults"] = [ids[i] for i in c["further_defaults"]]
    return out


def exposure(t_in_s: np.ndarray, t_out_s: np.ndarray, amount_minor: np.ndarray, t_end_s: float) -> dict:
    """Value approved but not yet settled over [0, t_end_s]: peak, time-weighted mean and hourly levels.

    The caller passes the purchases that carry an obligation (`carries_obligation`). Each
    amount counts from `t_in_s` (its approval) until `t_out_s` (its settlement;
    NaN: never within the run). At equal times settlements are counted before
    approvals. Amounts are fen; the mean is a float of fen: the area under the level
    up to `t_end_s` (each amount times the time it counts before the end), summed
    exactly and divided by `t_end_s` with one rounding, so it does not depend on the
    order of the events (`stream_settlement.SettlementTxnFigures` gives the same bits).
    """
    # Imported here: stream_settlement imports this module (STATUSES).
    from clearing_sim.stream_settlement import amount_time_integral, time_weighted_mean_minor

    settled = ~np.isnan(t_out_s)
    times = np.concatenate([t_in_s, t_out_s[settled]])
    delta = np.concatenate([amount_minor, -amount_minor[settled]]).astype(np.int64)
    # Events in time order. The level after the last event of each time does not depend on
    # the order within that time, so a stable sort by time alone (quick: approvals come
    # nearly in time order) gives it; the peak is worked out per time below.
    order = np.argsort(times, kind="stable")
    times = times[order]
    delta = delta[order]
    level = np.cumsum(delta, dtype=np.int64)
    hours = int(np.ceil(t_end_s / HOUR_S))
    ends = (np.arange(hours) + 1) * HOUR_S
    if len(times) == 0:
        return {"peak_minor": 0, "t_peak_s": None, "time_weighted_mean_minor": 0.0, "unsettled_at_end_minor": 0,
                "hourly_minor": [0] * hours}
    # The events of one time count settlements before approvals, the smallest change first
    # (ascending): the level's path through them is convex, so its highest point is after
    # the first event (the time's smallest change) or after the last. The peak is the first
    # time whose highest point is the run's highest.
    new_time = np.ones(len(times), dtype=bool)
    new_time[1:] = times[1:] != times[:-1]
    first = np.flatnonzero(new_time)
    last = np.append(first[1:] - 1, len(times) - 1)
    before = level[first] - delta[first]  # the level when the time comes
    highest = before + np.maximum(np.minimum.reduceat(delta, first), level[last] - before)
    k = int(first[np.argmax(highest)])
    area = (amount_time_integral(amount_minor, t_in_s, t_end_s)
            - amount_time_integral(amount_minor[settled], t_out_s[settled], t_end_s))
    at = np.searchsorted(times, ends, side="right") - 1  # the last event at or before each hour's end
    hourly = np.where(at >= 0, level[np.maximum(at, 0)], 0)
    return {
        "peak_minor": int(max(highest.max(), 0)),
        "t_peak_s": round(float(times[k]), 3) + 0.0,  # + 0.0: -0.0 and 0.0 are one time, written "0.0"
        "time_weighted_mean_minor": time_weighted_mean_minor(area, t_end_s),
        "unsettled_at_end_minor": int(level[-1]),
        "hourly_minor": [int(x) for x in hourly],
    }


def settlement_extras(state, settled: PurchaseSettlement) -> dict:
    """Run-level settlement figures for `summary.json["settlement"]` (`settled`: the run's
    `PurchaseSettlement`)."""
    owed = settled.owed
    exp = exposure(state.outcomes["t_response_s"][owed], settled.t_settled_s[owed], state.txn["amount_minor"][owed],
                   state.horizon_days * DAY_S)
    by_status = {s: int((settled.status[owed] == i).sum()) for i, s in enumerate(STATUSES)}
    return run_figures(state, exp, by_status)


def run_figures(state, exp: dict, by_status: dict[str, int]) -> dict:
    """`settlement_extras` given the per-purchase figures (exposure, purchases that carry an
    obligation by status): everything else comes from `state.scenario` and `state.settlement` alone."""
    sc = state.scenario
    ids = sc.participant_ids
    windows = state.settlement.windows
    n = len(ids)
    obligations = np.array([w.obligations_minor if w.obligations_minor is not None else np.zeros(n, np.int64)
                            for w in windows], dtype=np.int64).reshape(len(windows), n)
    peak = np.maximum(-obligations, 0).max(axis=0) if len(windows) else np.zeros(n, np.int64)
    peak_window = obligations.argmin(axis=0) if len(windows) else np.zeros(n, np.int64)
    gross = sum(w.gross_settled_minor for w in windows)
    net = sum(int(-w.positions_minor[w.positions_minor < 0].sum()) for w in windows if w.positions_minor is not None)
    defaulted = sorted({ids[d.participant] for w in windows if w.resolution for d in w.resolution.defaults},
                       key=ids.index)
    bank = state.settlement.bank
    st = sc.settlement
    return {
        "default_rule": st.default_rule,
        "loss_sharing_key": st.loss_sharing_key,
        "lag_business_days": st.lag_days,
        "calendar": {"weekend": list(st.calendar.weekend), "holidays": list(st.calendar.holidays),
                     "working_days": list(st.calendar.working_days)},
        "liquidity": {"gross_settled_minor": int(gross), "net_settled_minor": int(net),
                      "saving": _ratio(1 - net / gross) if gross else None},
        "peak_net_debit_minor": _by_id(ids, peak),
        "peak_net_debit_window": {pid: (windows[int(k)].id if p > 0 else None)
                                  for pid, k, p in zip(ids, peak_window, peak)},
        "exposure": exp,
        "defaulted_participants": defaulted,
        "records_unwound": int(sum(w.records_unwound for w in windows)),
        "transactions_by_settlement_status": by_status,
        "final_balances_minor": {pid: (int(b) if lim else None)
                                 for pid, b, lim in zip(ids, bank.balance, bank.limited)},
        "bank_delays": bank_delay_figures(state),
    }


def bank_delay_figures(state) -> list[dict]:
    """Each `settlement.bank_delays` entry with the window it delayed (`window_id` None: no such window ran)."""
    by_time = {w.t_close_s: w for w in state.settlement.windows}
    out = []
    for d in state.scenario.settlement.bank_delays:
        w = by_time.get(float((d.day - 1) * DAY_S + clock_seconds(d.window)))
        out.append({
            "day": d.day, "window": d.window, "delay_minutes": d.delay_minutes,
            "window_id": w.id if w is not None else None,
            "status": w.state.value if w is not None else None,
            "settled_after_close_s": (round(float(w.t_settled_s - w.t_close_s), 3)
                                      if w is not None and w.t_settled_s is not None else None),
        })
    return out


# The settlements' columns that may hold nulls: a participant without a settlement account
# has no balances, one that did not default no round. The rest are declared not null, and
# the Parquet writer refuses a null in them.
SETTLEMENT_NULLABLE = frozenset({"available_minor", "balance_before_minor", "balance_after_minor", "default_round"})


def settlements_table(state) -> pa.Table:
    """One row per settlement window and participant: obligation, settled position, funding and defaults."""
    ids = list(state.scenario.participant_ids)
    n = len(ids)
    cols: dict[str, list] = {k: [] for k in (
        "window_id", "window_index", "business_date", "status", "t_close_s", "t_settled_s", "participant",
        "position_minor", "obligation_minor", "gross_paid_minor", "gross_received_minor", "available_minor",
        "balance_before_minor", "balance_after_minor", "defaulted", "default_round", "guarantee_fund_draw_minor",
        "loss_share_minor", "unwound_records")}
    for w in state.settlement.windows:
        zeros = np.zeros(n, np.int64)
        pos = w.positions_minor if w.positions_minor is not None else zeros
        obl = w.obligations_minor if w.obligations_minor is not None else zeros
        res = w.resolution
        paid = w.gross_paid_minor if w.gross_paid_minor is not None else zeros
        received = w.gross_received_minor if w.gross_received_minor is not None else zeros
        round_of = {d.participant: d.round for d in (res.defaults if res else ())}
        cap = w.capacity_minor if w.capacity_minor is not None else np.full(n, UNLIMITED)
        for i, pid in enumerate(ids):
            cols["window_id"].append(w.id)
            cols["window_index"].append(w.index)
            cols["business_date"].append(w.business_date)
            cols["status"].append(w.state.value)
            cols["t_close_s"].append(float(w.t_close_s))
            cols["t_settled_s"].append(w.t_settled_s)
            cols["participant"].append(pid)
            cols["position_minor"].append(int(pos[i]))
            cols["obligation_minor"].append(int(obl[i]))
            cols["gross_paid_minor"].append(int(paid[i]))
            cols["gross_received_minor"].append(int(received[i]))
            cols["available_minor"].append(None if int(cap[i]) == UNLIMITED else int(cap[i]))
            # Balances only mean something for participants with an account (limited funds).
            limited = bool(state.settlement.bank.limited[i])
            before, after = w.balance_before_minor, w.balance_after_minor
            cols["balance_before_minor"].append(int(before[i]) if limited and before is not None else None)
            cols["balance_after_minor"].append(int(after[i]) if limited and after is not None else None)
            cols["defaulted"].append(i in round_of)
            cols["default_round"].append(round_of.get(i))
            cols["guarantee_fund_draw_minor"].append(int(res.fund_draw[i]) if res else 0)
            cols["loss_share_minor"].append(int(res.loss_share[i]) if res else 0)
            cols["unwound_records"].append(w.records_unwound)
    i64, f64, s = pa.int64(), pa.float64(), pa.string()
    schema = pa.schema([pa.field(name, t, nullable=name in SETTLEMENT_NULLABLE) for name, t in (
        ("window_id", s), ("window_index", pa.int32()), ("business_date", s), ("status", s),
        ("t_close_s", f64), ("t_settled_s", f64), ("participant", s), ("position_minor", i64),
        ("obligation_minor", i64), ("gross_paid_minor", i64), ("gross_received_minor", i64),
        ("available_minor", i64), ("balance_before_minor", i64), ("balance_after_minor", i64),
        ("defaulted", pa.bool_()), ("default_round", pa.int32()), ("guarantee_fund_draw_minor", i64),
        ("loss_share_minor", i64), ("unwound_records", i64),
    )])
    return pa.table(cols, schema=schema)


def default_lines(settlement: dict, fen) -> list[str]:
    """Console lines (rich markup) for `summary["settlement"]`: each default and each window's unwound records.

    `fen` formats an amount in fen for people (the CLI's yuan formatter).
    """
    lines = []
    for w in settlement["windows"]:
        for d in w.get("defaults", []):
            lines.append(f"[red]window {w['id']}: {d['participant']} defaulted[/red] (round {d['round']}: "
                         f"net debit {fen(d['net_debit_minor'])} CNY, could fund {fen(d['available_minor'])} CNY)")
        unwound = w.get("unwound", {})
        if unwound.get("records"):
            lines.append(f"window {w['id']}: {unwound['records']:,} records unwound "
                         f"({fen(unwound['gross_minor'])} CNY of transfers) under {w.get('default_rule')}")
    return lines
