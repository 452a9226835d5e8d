"""Clearing as users see it: `summary.json`'s `clearing` block and `clearing_records.parquet`.

Owns: the clearing figures of a finished run (files and records received, cleared and
rejected, rejects by reason, refunds, chargebacks and second presentments, fees by
participant, the cycles) and the schema of the clearing records table (one row per
record received, cleared or rejected with its reason). Plain ints and strings in a
fixed key order, so the same run serialises to the same bytes. Must never run the
model or touch the file system.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from clearing_sim import ipm
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
    file_reasons = np.array([REASONS.index(f.reject_reason) for f in files if f.status == "rejected"], dtype=np.int64)
    by_kind = {}
    for k, name in enumerate(cd.KIND_NAMES):
        sel = kind == k
        by_kind[name] = {"presented": int(sel.sum()), "cleared": int((sel & cleared).sum()),
                         "rejected": int((sel & rejected).sum()),
                         "amount_cleared_minor": int(r["amount_minor"][sel & cleared].sum())}
    fees = fee_figures(cl)
    windows = state.settlement.windows
    return {
        "files": len(files),
        "files_rejected": int(sum(f.status == "rejected" for f in files)),
        "records_presented": int(len(r["record_id"])),
        "records_cleared": int(cleared.sum()),
        "records_rejected": int(rejected.sum()),
        "chargebacks": by_kind["first_chargeback"]["cleared"],
        "refunds": by_kind["refund"]["cleared"],
        "second_presentments": by_kind["second_presentment"]["cleared"],
        "rejects_by_reason": _count_by(REASONS, r["reason"].astype(np.int64)),
        "files_rejected_by_reason": _count_by(REASONS, file_reasons),
        "reject_messages": {"1644/691": int(cl.reject_messages[ipm.FUNC_MESSAGE_EXCEPTION]),
                            "1644/699": int(cl.reject_messages[ipm.FUNC_FILE_REJECT])},
        "files_not_cleared_by_end": len(in_transit),
        "records_by_kind": by_kind,
        "amount_presented_minor": int(r["amount_minor"].sum()),
        "amount_cleared_minor": int(r["amount_minor"][cleared].sum()),
        "amount_rejected_minor": int(r["amount_minor"][rejected].sum()),
        "interchange_minor": int(r["interchange_minor"][cleared].sum()),
        "scheme_fees_minor": int(r["scheme_fee_issuer_minor"][cleared].sum()
                                 + r["scheme_fee_acquirer_minor"][cleared].sum()),
        "fees": {**fees, "rounding": ROUNDING_RULE},
        "cycles": [
            {"id": c.id, "files": c.files, "records": c.records, "amount_minor": c.amount_minor,
             "window": windows[c.window].id if c.window >= 0 else None,
             "files_rejected": c.files_rejected, "records_rejected": c.records_rejected}
            for c in cl.cycles
        ],
        # An injected fault aimed at a submission with nothing to present sends no file.
        "faults_not_applied": [
            {"kind": fault.kind, "acquirer": fault.acquirer, "day": fault.day, "submission": fault.submission,
             "reason": "the submission had no records, so no file was sent"}
            for number, fault in enumerate(state.scenario.clearing.faults)
            if number not in state.acquirers.faults_applied
        ],
        "files_received": [
            {"name": f.name, "file_id": f.file_id, "sender": state.scenario.participant_ids[f.sender],
             "records": f.n_records, "cycle": cl.cycles[f.cycle].id, "status": f.status,
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
    index = np.asarray(index, dtype=np.int64)
    remapped = np.where(index >= 0, inverse.reshape(-1)[np.maximum(index, 0)] if len(values) else -1, -1)
    idx = pa.array(remapped.astype(np.int32), mask=remapped < 0)
    return pa.DictionaryArray.from_arrays(idx, pa.array(unique.tolist(), pa.string()))


def clearing_records_table(state) -> pa.Table:
    """One row per record the network received: cleared, or rejected with its reason."""
    cl = state.clearing
    r = cl.records()
    sc = state.scenario
    txn_idx = r["txn_index"].astype(np.int64)
    kind = r["kind"].astype(np.int64)
    mti = np.array([_MTI_FUNCTION[k][0] for k in range(4)], dtype=np.int16)[kind]
    function_code = np.array([_MTI_FUNCTION[k][1] for k in range(4)], dtype=np.int16)[kind]
    ids = list(sc.participant_ids)
    return pa.table({
        "record_id": r["record_id"],
        "txn_id": state.txn["txn_id"][txn_idx],
        "file_id": dict_array([f.file_id for f in cl.files], r["file"]),
        "file_name": dict_array([f.name for f in cl.files], r["file"]),
        "message_number": r["message_number"],
        "acquirer": dict_array([a.institution for a in sc.acquirers], state.txn["acquirer"][txn_idx]),
        "issuer": dict_array([i.institution for i in sc.issuers], state.outcomes["routed_issuer"][txn_idx]),
        "sender": dict_array(ids, r["sender"]),
        "receiver": dict_array(ids, r["receiver"]),
        "mti": pa.array(mti),
        "function_code": pa.array(function_code),
        "kind": dict_array(list(cd.KIND_NAMES), kind),
        "status": dict_array(list(STATUS_NAMES), r["status"]),
        "reject_reason": dict_array(list(REASONS), r["reason"]),
        "arn": pa.array(r["arn"]).cast(pa.string()),
        "mcc": r["mcc"],
        "card_product": dict_array(list(product_names(sc)), r["product"]),
        "cycle": dict_array([c.id for c in cl.cycles], r["cycle"]),
        "settlement_window": dict_array([w.id for w in state.settlement.windows], r["window"]),
        "amount_minor": r["amount_minor"],
        "interchange_minor": r["interchange_minor"],
        "scheme_fee_issuer_minor": r["scheme_fee_issuer_minor"],
        "scheme_fee_acquirer_minor": r["scheme_fee_acquirer_minor"],
    })
