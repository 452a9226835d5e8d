"""Clearing as users see it: `summary.json`'s `clearing` block and `clearing_records.parquet`.

Owns: the clearing figures of a finished run (files and records received, cleared and
rejected, rejects by reason, refunds, chargebacks and second presentments, fees by
participant, the cycles) and the schema of the clearing records table (one row per
record received, cleared or rejected with its reason), with the column helpers every
table uses (`dictionary_indices`, `declare_not_null`). Plain ints and strings in a
fixed key order, so the same run serialises to the same bytes. Must never run the
model or touch the file system.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from clearing_sim import ipm
from clearing_sim.errors import InvariantError
from clearing_sim.fees import product_names
from clearing_sim.model import clearing_data as cd
from clearing_sim.model.clearing import REASONS, STATUS_CLEARED, STATUS_NAMES, fee_figures

ROUNDING_RULE = ("per record, in integer fen: fee = floor((amount_minor * rate + 500000) / 1000000) with the rate "
                 "in hundredths of a basis point (half up), plus the fixed part; a credit's fee mirrors a debit's")

_MTI_FUNCTION = {
    cd.KIND_FIRST_PRESENTMENT: (ipm.MTI_PRESENTMENT, ipm.FUNC_FIRST_PRESENTMENT),
    cd.KIND_REFUND: (ipm.MTI_PRESENTMENT, ipm.FUNC_FIRST_PRESENTMENT),
    cd.KIND_CHARGEBACK: (ipm.MTI_CHARGEBACK, ipm.FUNC_FIRST_CHARGEBACK),
    cd.KIND_SECOND_PRESENTMENT: (ipm.MTI_PRESENTMENT, ipm.FUNC_SECOND_PRESENTMENT),
}


def _count_by(names: tuple[str, ...], index: np.ndarray) -> dict[str, int]:
    counts = np.bincount(index[index >= 0].astype(np.int64), minlength=len(names))
    return {name: int(n) for name, n in zip(names, counts) if n}


def clearing_summary(state) -> dict:
    """`summary.json`'s `clearing`: the keys DESIGN.md lists, then the detail."""
    cl = state.clearing
    r = cl.records()
    cleared = r["status"] == STATUS_CLEARED
    rejected = ~cleared
    kind = r["kind"].astype(np.int64)
    files = cl.files
    senders = [state.acquirers] + ([state.disputes] if getattr(state, "disputes", None) is not None else [])
    in_transit = [f for s in senders for f in s.files if f.cycle < 0]
    by_kind = {}
    for k, name in enumerate(cd.KIND_NAMES):
        sel = kind == k
        by_kind[name] = {"presented": int(sel.sum()), "cleared": int((sel & cleared).sum()),
                         "rejected": int((sel & rejected).sum()),
                         "amount_cleared_minor": int(r["amount_minor"][sel & cleared].sum())}
    counts = {
        "records_presented": int(len(r["record_id"])),
        "records_cleared": int(cleared.sum()),
        "records_rejected": int(rejected.sum()),
        "rejects_by_reason": _count_by(REASONS, r["reason"].astype(np.int64)),
        "records_by_kind": by_kind,
        "amount_presented_minor": int(r["amount_minor"].sum()),
        "amount_cleared_minor": int(r["amount_minor"][cleared].sum()),
        "amount_rejected_minor": int(r["amount_minor"][rejected].sum()),
        "interchange_minor": int(r["interchange_minor"][cleared].sum()),
        "scheme_fees_minor": int(r["scheme_fee_issuer_minor"][cleared].sum()
                                 + r["scheme_fee_acquirer_minor"][cleared].sum()),
    }
    return clearing_block(state.scenario, files, cl.cycles, [w.id for w in state.settlement.windows], counts,
                          fee_figures(cl), cl.reject_messages, len(in_transit), state.acquirers.faults_applied)


def clearing_block(scenario, files, cycles, window_ids: list[str], counts: dict, fees: dict, reject_messages: dict,
                   n_in_transit: int, faults_applied: set[int]) -> dict:
    """`summary.json`'s `clearing` from its parts: the files that reached a cycle (in order of
    arrival), the cycles, the record counts and amounts (`counts`, the keys `clearing_summary`
    fills), the fee figures (`fee_figures`), the 1644 reject messages sent, the files still in
    transit at the end and the numbers of the scenario's faults that a file carried."""
    by_kind = counts["records_by_kind"]
    file_reasons = np.array([REASONS.index(f.reject_reason) for f in files if f.status == "rejected"], dtype=np.int64)
    ids = scenario.participant_ids
    return {
        "files": len(files),
        "files_rejected": int(sum(f.status == "rejected" for f in files)),
        "records_presented": counts["records_presented"],
        "records_cleared": counts["records_cleared"],
        "records_rejected": counts["records_rejected"],
        "chargebacks": by_kind["first_chargeback"]["cleared"],
        "refunds": by_kind["refund"]["cleared"],
        "second_presentments": by_kind["second_presentment"]["cleared"],
        "rejects_by_reason": counts["rejects_by_reason"],
        "files_rejected_by_reason": _count_by(REASONS, file_reasons),
        "reject_messages": {"1644/691": int(reject_messages[ipm.FUNC_MESSAGE_EXCEPTION]),
                            "1644/699": int(reject_messages[ipm.FUNC_FILE_REJECT])},
        "files_not_cleared_by_end": n_in_transit,
        "records_by_kind": by_kind,
        "amount_presented_minor": counts["amount_presented_minor"],
        "amount_cleared_minor": counts["amount_cleared_minor"],
        "amount_rejected_minor": counts["amount_rejected_minor"],
        "interchange_minor": counts["interchange_minor"],
        "scheme_fees_minor": counts["scheme_fees_minor"],
        "fees": {**fees, "rounding": ROUNDING_RULE},
        "cycles": [
            {"id": c.id, "files": c.files, "records": c.records, "amount_minor": c.amount_minor,
             "window": window_ids[c.window] if c.window >= 0 else None,
             "files_rejected": c.files_rejected, "records_rejected": c.records_rejected}
            for c in cycles
        ],
        # An injected fault aimed at a submission with nothing to present sends no file.
        "faults_not_applied": [
            {"kind": fault.kind, "acquirer": fault.acquirer, "day": fault.day, "submission": fault.submission,
             "reason": "the submission had no records, so no file was sent"}
            for number, fault in enumerate(scenario.clearing.faults)
            if number not in faults_applied
        ],
        "files_received": [
            {"name": f.name, "file_id": f.file_id, "sender": ids[f.sender],
             "records": f.n_records, "cycle": cycles[f.cycle].id, "status": f.status,
             "reason": f.reject_reason or None, "fault": f.fault or None}
            for f in files
        ],
    }


def dict_array(values: list[str], index: np.ndarray) -> pa.DictionaryArray:
    """Dictionary-encoded strings (index -1 is null); repeated values share one dictionary entry.

    A dictionary must not repeat a value (a file sent twice has one file id): Parquet
    writes such a dictionary differently from run to run.
    """
    unique, inverse = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    lut = inverse.reshape(-1).astype(np.int32)
    index = np.asarray(index)
    if len(values) == 0:  # every row is null
        remapped = np.full(len(index), -1, dtype=np.int32)
        idx = pa.array(remapped, mask=remapped < 0)
    else:
        idx = dictionary_indices(lut, index, keep_negative=False)
    return pa.DictionaryArray.from_arrays(idx, pa.array(unique.tolist(), pa.string()))


def dictionary_indices(lut: np.ndarray, index: np.ndarray, keep_negative: bool) -> pa.Array:
    """Arrow int32 dictionary indices `lut[index]` (`lut` int32), null where `index` < 0; the
    null rows hold `index` itself (`keep_negative`) or -1. Raises IndexError for an index past
    `lut`. One compiled pass makes the values and the validity bitmap (numpy gathered, compared
    and packed a mask in passes of their own); no bitmap when nothing is null, as `pa.array`
    with an all-false mask gives."""
    index = np.ascontiguousarray(index)
    if index.dtype.kind not in "iu":
        index = index.astype(np.int64)
    n = len(index)
    out = np.empty(n, dtype=np.int32)
    bitmap = np.empty((n + 7) // 8, dtype=np.uint8)
    nulls = _lookup_into(np.ascontiguousarray(lut, dtype=np.int32), index, keep_negative, out, bitmap)
    if nulls < 0:
        raise IndexError(f"dictionary index {int(index.max())} is out of bounds for {len(lut)} values")
    validity = pa.py_buffer(bitmap) if nulls else None
    return pa.Array.from_buffers(pa.int32(), n, [validity, pa.py_buffer(out)], null_count=nulls)


@numba.njit(cache=True, nogil=True)
def _lookup_into(lut, index, keep_negative, out, bitmap):  # pragma: no cover - compiled
    """out[i] = lut[index[i]], or the null value where index[i] < 0; bit i of `bitmap` (least
    significant first) set where valid, the bits past the last row clear. Returns how many
    rows are null, or -1 if an index is past `lut`."""
    nulls = 0
    bitmap[:] = 0
    for i in range(len(index)):
        k = index[i]
        if k < 0:
            out[i] = k if keep_negative else -1
            nulls += 1
        elif k >= len(lut):
            return -1
        else:
            out[i] = lut[k]
            bitmap[i >> 3] |= np.uint8(1 << (i & 7))
    return nulls


def string_column(values: np.ndarray) -> pa.StringArray:
    """Fixed-width bytes (`S{w}`, as ARNs are made) as an Arrow string column: the bytes
    themselves as its data when every value fills the width with printable ASCII (no
    copy, no UTF-8 check to make), else numpy's bytes decoded (trailing NULs dropped)."""
    w = values.dtype.itemsize if values.dtype.kind == "S" else 0
    n = len(values)
    if w and 0 < n and w * (n + 1) < 2**31:
        raw = np.ascontiguousarray(values).view(np.uint8)
        if ((raw >= 0x20) & (raw <= 0x7E)).all():
            offsets = np.arange(0, w * (n + 1), w, dtype=np.int32)
            return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw))
    return pa.array(values).cast(pa.string())


def clearing_records_table(state, settlement_status: pa.Array) -> pa.Table:
    """One row per record the network received: cleared, or rejected with its reason, and how it settled."""
    cl = state.clearing
    r = cl.records()
    txn_idx = r["txn_index"].astype(np.int64)
    names = RecordNames(state.scenario, cl.files, [c.id for c in cl.cycles], [w.id for w in state.settlement.windows])
    return record_rows(names, r, state.txn["txn_id"][txn_idx], state.txn["acquirer"][txn_idx],
                       state.outcomes["routed_issuer"][txn_idx], settlement_status)


class RecordNames:
    """The names the clearing records' dictionary columns index into, fixed for a whole run."""

    def __init__(self, scenario, files, cycles: list[str], windows: list[str]):
        self.file_ids = [f.file_id for f in files]
        self.file_names = [f.name for f in files]
        self.acquirers = [a.institution for a in scenario.acquirers]
        self.issuers = [i.institution for i in scenario.issuers]
        self.participants = list(scenario.participant_ids)
        self.products = list(product_names(scenario))
        self.cycles = cycles
        self.windows = windows


_MTI = np.array([_MTI_FUNCTION[k][0] for k in range(4)], dtype=np.int16)
_FUNCTION = np.array([_MTI_FUNCTION[k][1] for k in range(4)], dtype=np.int16)


# The clearing records' columns that may hold nulls: a rejected record has no window, and one
# rejected before its receiver or card product was known has neither.
RECORD_NULLABLE = frozenset({"receiver", "reject_reason", "card_product", "settlement_window"})


def declare_not_null(table: pa.Table, nullable: frozenset[str]) -> pa.Table:
    """`table` with every column not in `nullable` declared not null.

    Parquet then stores those columns REQUIRED: no definition levels to write or read
    (a tenth to a fifth of the writer's time), and readers know every row has a value.
    Which columns may be null is fixed per table, never taken from the data, so every
    run's file has the same schema. Raises InvariantError if a declared column has a null.
    """
    for field in table.schema:
        if field.name not in nullable and table.column(field.name).null_count:
            raise InvariantError(f"table column {field.name!r} has {table.column(field.name).null_count} null(s) "
                                 "but is declared not null")
    schema = pa.schema([f.with_nullable(f.name in nullable) for f in table.schema])
    return pa.Table.from_arrays(table.columns, schema=schema)


def record_rows(names: RecordNames, r: dict[str, np.ndarray], txn_id: np.ndarray, acquirer: np.ndarray,
                issuer: np.ndarray, settlement_status: pa.Array) -> pa.Table:
    """`clearing_records` rows (a whole run's, or a streamed run's file at a time): the network's
    record columns `r` (`ClearingNetwork.records()`), each record's purchase id, acquirer and
    routed issuer (indices into the scenario's lists), and how it settled."""
    kind = r["kind"].astype(np.int64)
    return declare_not_null(pa.table({
        "record_id": r["record_id"],
        "txn_id": txn_id,
        "file_id": dict_array(names.file_ids, r["file"]),
        "file_name": dict_array(names.file_names, r["file"]),
        "message_number": r["message_number"],
        "acquirer": dict_array(names.acquirers, acquirer),
        "issuer": dict_array(names.issuers, issuer),
        "sender": dict_array(names.participants, r["sender"]),
        "receiver": dict_array(names.participants, r["receiver"]),
        "mti": pa.array(_MTI[kind]),
        "function_code": pa.array(_FUNCTION[kind]),
        "kind": dict_array(list(cd.KIND_NAMES), kind),
        "status": dict_array(list(STATUS_NAMES), r["status"]),
        "reject_reason": dict_array(list(REASONS), r["reason"]),
        "arn": string_column(r["arn"]),
        "mcc": r["mcc"],
        "card_product": dict_array(names.products, r["product"]),
        "cycle": dict_array(names.cycles, r["cycle"]),
        "settlement_window": dict_array(names.windows, r["window"]),
        "amount_minor": r["amount_minor"],
        "interchange_minor": r["interchange_minor"],
        "scheme_fee_issuer_minor": r["scheme_fee_issuer_minor"],
        "scheme_fee_acquirer_minor": r["scheme_fee_acquirer_minor"],
        "settlement_status": settlement_status,
    }), RECORD_NULLABLE)
