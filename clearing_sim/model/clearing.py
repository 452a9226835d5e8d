"""Clearing cycles: the network validates and clears the files received by each cut-off.

Owns: the cycle schedule (every `clearing.cutoffs` time of every simulated day; a file
received after a cut-off waits for the next one); file-level validation by reading
each file's bytes with `clearing_sim.ipm` (unreadable, trailer count or total
mismatch, file id mismatch, a file id already received: the whole file is rejected);
record-level validation, vectorised over the cycle's records (no matching approved
authorisation, a duplicate ARN or an authorisation already cleared, an amount outside
the tolerance, late presentment; refunds, chargebacks and second presentments need a
cleared original); interchange and scheme fees (`clearing_sim.fees`); handing each
cycle's obligations to its settlement window (in one place, `_post_obligations`);
reject messages back to the sender (1644/691 per record, 1644/699 per file); outgoing
files per receiving institution and cycle (written only when the run keeps files);
and the per-record clearing table. Every record received ends cleared or rejected
with a reason. Must never clear a record twice or settle anything itself.

Validation order of a record (the first failure is its reason): the original
(authorisation, or cleared record) -> duplicate -> amount -> late presentment.
Within a cycle, first presentments are cleared first, then refunds, chargebacks and
second presentments, each in the order the files arrived and the records stand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import attrs
import numba
import numpy as np
import simpy

from clearing_sim import ipm
from clearing_sim.errors import InvariantError
from clearing_sim.fees import FeeSchedule, product_names, rate_hundredths_bps
from clearing_sim.model import clearing_data as cd
from clearing_sim.model.acquirers import SubmittedFile
from clearing_sim.model.authorisation import APPROVED
from clearing_sim.model.settlement import ObligationKind, SettlementSystem
from clearing_sim.model.traffic import DAY_S
from clearing_sim.rng import splitmix64_one
from clearing_sim.scenario import Scenario, clock_seconds

RECORD_COLUMNS = (
    "record_id", "txn_index", "file", "cycle", "window", "amount_minor",
    "interchange_minor", "scheme_fee_issuer_minor", "scheme_fee_acquirer_minor",
    "message_number", "kind", "status", "reason", "sender", "receiver", "matched_txn", "product", "mcc", "arn",
)
_DTYPES = {"file": np.int32, "cycle": np.int32, "window": np.int32, "message_number": np.int64, "kind": np.int8,
           "status": np.int8, "reason": np.int16, "sender": np.int16, "receiver": np.int16, "product": np.int8,
           "mcc": np.int16, "arn": np.dtype("S23")}
STATUS_CLEARED = 0
STATUS_REJECTED = 1
STATUS_NAMES = ("cleared", "rejected")
REASONS = tuple(ipm.REASON_CODES)  # a record's `reason` is an index into this (-1: cleared)
_REASON = {name: i for i, name in enumerate(REASONS)}

# What each settlement transfer is for, by record kind (clearing_data.KIND_*).
_PRINCIPAL_OBLIGATION = np.array([ObligationKind.PRESENTMENT, ObligationKind.REFUND, ObligationKind.CHARGEBACK,
                                  ObligationKind.REPRESENTMENT], dtype=np.int8)


@attrs.define
class ClearingCycle:
    index: int
    id: str
    t_cutoff_s: float
    files: list[str]
    records: int  # cleared
    amount_minor: int  # cleared
    window: int  # -1 when nothing cleared
    files_rejected: list[str] = attrs.Factory(list)
    records_rejected: int = 0


def _repeats(values: np.ndarray) -> np.ndarray:
    """True for every value that already appeared earlier in the array (first one wins).

    `values` are integers or bytes (`S<w>`), whose values are equal exactly when their
    bytes are; a hash set over each value's bytes finds repeats in one pass (np.unique
    sorted the ARNs and compared them as strings)."""
    values = np.asarray(values)
    if values.dtype.kind not in "iuS":
        raise TypeError(f"_repeats takes integers or bytes, not {values.dtype}")
    out = np.empty(len(values), dtype=bool)
    _repeated_rows(np.ascontiguousarray(values).view(np.uint8).reshape(len(values), values.dtype.itemsize), out)
    return out


@numba.njit(cache=True, nogil=True)
def _repeated_rows(mat, out):  # pragma: no cover - compiled
    """out[i]: whether row i of `mat` (bytes) equals an earlier row. The rows are copied into
    zero-padded 8-byte words; open addressing on a hash of each row (every word mixed in
    with `rng.splitmix64_one`), in a table at least twice the rows (so a probe always ends);
    rows that share a slot are compared word by word."""
    n, n_bytes = mat.shape
    width = (n_bytes + 7) // 8
    padded = np.zeros(n * width * 8, dtype=np.uint8)
    for i in range(n):
        for j in range(n_bytes):
            padded[i * width * 8 + j] = mat[i, j]
    words = padded.view(np.uint64).reshape(n, width)
    size = 2
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    first_at = np.full(size, -1, dtype=np.int64)
    for i in range(n):
        h = np.uint64(0)
        for j in range(width):
            h = splitmix64_one(h ^ words[i, j])
        slot = h & mask
        out[i] = False
        while first_at[slot] >= 0:
            k = first_at[slot]
            same = True
            for j in range(width):
                if words[k, j] != words[i, j]:
                    same = False
                    break
            if same:
                out[i] = True
                break
            slot = (slot + np.uint64(1)) & mask
        if not out[i]:
            first_at[slot] = i


def _printable(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)[: ipm.MAX_DETAIL_CHARS]


class ClearingNetwork:
    """Receives clearing files and runs the clearing cycles as a SimPy process."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, txn: dict[str, np.ndarray],
                 routed_issuer: np.ndarray, settlement: SettlementSystem, horizon_days: int, *,
                 pan: np.ndarray, outcomes: dict[str, np.ndarray], draws, factory: cd.RecordFactory,
                 keep_files: bool = False):
        self.env = env
        self.scenario = scenario
        self.txn = txn
        self.routed_issuer = routed_issuer
        self.settlement = settlement
        self.draws = draws
        self.factory = factory
        self.keep_files = keep_files
        self.fees = FeeSchedule(scenario.fees).with_products(product_names(scenario))
        inst = scenario.participant_ids
        self.issuer_party = np.array([inst.index(i.institution) for i in scenario.issuers], dtype=np.int64)
        self.acquirer_party = np.array([inst.index(a.institution) for a in scenario.acquirers], dtype=np.int64)
        self.network_party = len(inst) - 1
        self.start_date = dt.date.fromisoformat(scenario.run.start_date)
        n = len(txn["txn_id"])
        self.n_txn = n
        # The switch's log of authorisations, which presentments are matched against.
        self.pan = pan
        self.txn_local = factory.purchase_local_time
        self.response_code = outcomes["response_code"]  # filled in as the simulation runs
        self.reversed = outcomes.get("reversed")
        self.txn_acquirer_party = self.acquirer_party[txn["acquirer"]]
        self.txn_issuer_party = np.where(routed_issuer >= 0, self.issuer_party[np.maximum(routed_issuer, 0)], -1)
        # Per purchase: where and when each of its records cleared (-1 / NaN: not cleared).
        self.txn_cycle = np.full(n, -1, dtype=np.int32)  # first presentment
        self.txn_window = np.full(n, -1, dtype=np.int32)
        self.txn_file = np.full(n, -1, dtype=np.int32)
        self.t_cleared_s = np.full(n, np.nan)
        self.refund_cycle = np.full(n, -1, dtype=np.int32)
        self.chargeback_cycle = np.full(n, -1, dtype=np.int32)
        self.t_chargeback_cleared_s = np.full(n, np.nan)
        self.representment_cycle = np.full(n, -1, dtype=np.int32)
        self.presented_arns = cd.ArnIndex()
        self.refund_arns = cd.ArnIndex()
        self.file_ids_seen: set[str] = set()
        self.inbox: list[SubmittedFile] = []
        self.files: list[SubmittedFile] = []  # in order of arrival, as each cycle takes them
        self.cycles: list[ClearingCycle] = []
        self.kept_files: list[tuple[str, bytes]] = []  # (path under clearing/, bytes) when keep_files
        self.reject_messages = {ipm.FUNC_MESSAGE_EXCEPTION: 0, ipm.FUNC_FILE_REJECT: 0}
        self.files_out = 0
        self._out_sequence: dict[str, int] = {}
        self.on_file_rejected: dict[str, Callable[[SubmittedFile], None]] = {}
        self._records: dict[str, list[np.ndarray]] = {k: [] for k in RECORD_COLUMNS}
        self._n_records = 0
        self.cutoffs = [clock_seconds(t) for t in scenario.clearing.cutoffs]
        env.process(self._run(horizon_days))

    def receive(self, f: SubmittedFile) -> None:
        """A file is on its way: the first cycle whose cut-off is at or after `f.t_received_s` takes it."""
        self.inbox.append(f)

    def _run(self, horizon_days: int):
        env = self.env
        for day in range(horizon_days):
            for c in self.cutoffs:
                t = day * DAY_S + c
                if t > env.now:
                    yield env.timeout(t - env.now)
                self.run_cycle(day)

    # --- one cycle ---------------------------------------------------------------------------

    def run_cycle(self, day: int) -> None:
        now = self.env.now
        arrived = sorted((f for f in self.inbox if f.t_received_s <= now),
                         key=lambda f: (f.t_received_s, f.sender, f.file_id, f.copy))
        if not arrived:
            return
        self.inbox = [f for f in self.inbox if f.t_received_s > now]
        c = len(self.cycles)
        clock = int(now - day * DAY_S)
        cycle = ClearingCycle(c, f"D{day + 1:03d}-{clock // 3600:02d}:{clock % 3600 // 60:02d}", now,
                              [f.file_id for f in arrived], 0, 0, -1)
        slug = cycle.id.replace(":", "")
        ids = self.scenario.participant_ids
        accepted: list[tuple[SubmittedFile, ipm.RecordBatch]] = []
        rejected_files: list[tuple[SubmittedFile, str, str]] = []
        for f in arrived:
            f.number = len(self.files)
            f.cycle = c
            f.name = f"{f.number + 1:05d}_{ids[f.sender]}_{f.file_id}{'_copy' if f.copy else ''}.ipm"
            self.files.append(f)
            if self.keep_files:
                self.kept_files.append((f"in/{f.name}", f.data))
            reason, detail, batch = self._check_file(f)
            f.data = f.batch = None  # the file is read; a kept copy is in kept_files
            if batch is not None:
                f.status = "accepted"
                accepted.append((f, batch))
            else:
                f.status, f.reject_reason = "rejected", reason
                rejected_files.append((f, reason, detail))
        for f, reason, _ in rejected_files:
            self._add_rejected_file_rows(f, reason, c)
        cleared = self._clear_records(accepted, c, now)
        cycle.files_rejected = [f.file_id for f, _, _ in rejected_files]
        cycle.records_rejected = sum(f.n_records for f, _, _ in rejected_files) + cleared["rejected"]
        cycle.records = cleared["cleared"]
        cycle.amount_minor = cleared["amount_minor"]
        cycle.window = cleared["window"]
        self.cycles.append(cycle)
        self._send_rejects(slug, rejected_files, cleared)
        for f, reason, _ in rejected_files:
            callback = self.on_file_rejected.get(f.role)
            if callback is not None and reason != "DUPLICATE_FILE":
                callback(f)

    def _check_file(self, f: SubmittedFile) -> tuple[str, str, ipm.RecordBatch | None]:
        """File-level validation from the bytes: (reason, detail, None) or ("", "", the records read).
        A file sent without bytes (fast mode) is its record batch, as the reader would return it."""
        if f.data is None and f.batch is not None:
            fid, batch = f.file_id, f.batch
        else:
            try:
                read = ipm.read_file(f.data)
            except ipm.ClearingFileError as exc:
                return exc.reason_code, _printable(str(exc)), None
            fid, batch = read.header.file_id, read.batch
        if fid in self.file_ids_seen:
            return "DUPLICATE_FILE", f"file id {fid} was already received", None
        self.file_ids_seen.add(fid)
        if len(batch) != f.n_records:
            raise InvariantError(f"file {fid}: {len(batch)} records read, {f.n_records} written")
        return "", "", batch

    def _append(self, cols: dict[str, np.ndarray]) -> None:
        n = len(cols["kind"])
        cols["record_id"] = np.arange(self._n_records, self._n_records + n, dtype=np.int64)
        for k in RECORD_COLUMNS:
            self._records[k].append(np.asarray(cols[k], dtype=_DTYPES.get(k, np.int64)))
        self._n_records += n

    def _add_rejected_file_rows(self, f: SubmittedFile, reason: str, c: int) -> None:
        n = f.n_records
        m = f.txn_index.astype(np.int64)
        self._append({
            "txn_index": m, "file": np.full(n, f.number), "cycle": np.full(n, c), "window": np.full(n, -1),
            "amount_minor": f.amount_minor, "interchange_minor": np.zeros(n), "scheme_fee_issuer_minor": np.zeros(n),
            "scheme_fee_acquirer_minor": np.zeros(n), "message_number": np.arange(2, n + 2), "kind": f.kind,
            "status": np.full(n, STATUS_REJECTED), "reason": np.full(n, _REASON[reason]),
            "sender": np.full(n, f.sender), "receiver": np.full(n, -1), "matched_txn": np.full(n, -1),
            "product": np.full(n, -1), "mcc": self.txn["mcc"][m], "arn": f.arn,
        })

    # --- record-level validation and clearing ----------------------------------------------------

    def _clear_records(self, accepted: list[tuple[SubmittedFile, ipm.RecordBatch]], c: int, now: float) -> dict:
        out = {"cleared": 0, "rejected": 0, "amount_minor": 0, "window": -1, "record_rejects": {}}
        if not accepted:
            return out
        batches = [b for _, b in accepted]
        files = [f for f, _ in accepted]
        col = {k: np.concatenate([getattr(b, k) for b in batches]) for k in (
            "mti", "function_code", "pan", "processing_code", "amount_minor", "local_time", "mcc", "arn",
            "auth_code", "message_number")}
        n = len(col["mti"])
        kind = np.concatenate([cd.record_kind(b) for b in batches])
        if (kind < 0).any():
            raise InvariantError("a record the reader accepted is none of the four record kinds")
        sender = np.concatenate([np.full(len(b), f.sender, dtype=np.int64) for f, b in accepted])
        file_no = np.concatenate([np.full(len(b), f.number, dtype=np.int64) for f, b in accepted])
        truth = np.concatenate([f.txn_index for f in files]).astype(np.int64)
        pan = cd.pan_values(col["pan"])
        amount = col["amount_minor"]
        reason = np.full(n, -1, dtype=np.int64)
        matched = np.full(n, -1, dtype=np.int64)
        limit_s = self.scenario.clearing.presentment_limit_days * DAY_S
        age_s = now - ipm.sim_seconds_from_local_time(col["local_time"], self.start_date)

        def reject(rows: np.ndarray, bad: np.ndarray, name: str) -> np.ndarray:
            """Give `name` to the rows (still without a reason) where `bad`; return the rows left."""
            reason[rows[bad]] = _REASON[name]
            return rows[~bad]

        # First presentments: an approved, unreversed authorisation with this approval code, PAN,
        # purchase time and acquirer.
        rows = np.flatnonzero(kind == cd.KIND_FIRST_PRESENTMENT)
        m = self._match_authorisation(col["auth_code"][rows], pan[rows], sender[rows], col["local_time"][rows])
        matched[rows] = m
        rows = reject(rows, m < 0, "NO_AUTHORISATION")
        m = matched[rows]
        dup = (self.presented_arns.lookup(col["arn"][rows]) >= 0) | _repeats(col["arn"][rows])
        dup |= (self.txn_cycle[m] >= 0) | _repeats(m)
        rows = reject(rows, dup, "DUPLICATE_RECORD")
        rows = reject(rows, self._outside_tolerance(amount[rows], matched[rows]), "AMOUNT_TOLERANCE")
        rows = reject(rows, age_s[rows] > limit_s, "LATE_PRESENTMENT")
        m = matched[rows]
        self.txn_cycle[m] = c
        self.txn_file[m] = file_no[rows]
        self.t_cleared_s[m] = now
        self.presented_arns.add(col["arn"][rows], m)
        first_cleared, first_txn = rows, m

        # Refunds: the purchase (same approval code, PAN and acquirer) has cleared.
        rows = np.flatnonzero(kind == cd.KIND_REFUND)
        m = self._match_authorisation(col["auth_code"][rows], pan[rows], sender[rows], None)
        matched[rows] = m
        rows = reject(rows, (m < 0) | (self.txn_cycle[np.maximum(m, 0)] < 0), "NO_ORIGINAL")
        m = matched[rows]
        dup = (self.refund_arns.lookup(col["arn"][rows]) >= 0) | _repeats(col["arn"][rows])
        dup |= (self.refund_cycle[m] >= 0) | _repeats(m)
        rows = reject(rows, dup, "DUPLICATE_RECORD")
        rows = reject(rows, amount[rows] > self.txn["amount_minor"][matched[rows]], "AMOUNT_TOLERANCE")
        rows = reject(rows, age_s[rows] > limit_s, "LATE_PRESENTMENT")
        self.refund_cycle[matched[rows]] = c
        self.refund_arns.add(col["arn"][rows], matched[rows])
        refunds_cleared = rows

        # Chargebacks: the ARN of a cleared first presentment made to this issuer.
        rows = np.flatnonzero(kind == cd.KIND_CHARGEBACK)
        m = self._match_original(col["arn"][rows], pan[rows], sender[rows], self.txn_issuer_party)
        matched[rows] = m
        rows = reject(rows, m < 0, "NO_ORIGINAL")
        m = matched[rows]
        rows = reject(rows, (self.chargeback_cycle[m] >= 0) | _repeats(m), "DUPLICATE_RECORD")
        rows = reject(rows, amount[rows] > self.txn["amount_minor"][matched[rows]], "AMOUNT_TOLERANCE")
        self.chargeback_cycle[matched[rows]] = c
        self.t_chargeback_cleared_s[matched[rows]] = now
        chargebacks_cleared = rows

        # Second presentments: the ARN of a cleared presentment of this acquirer that was charged back.
        rows = np.flatnonzero(kind == cd.KIND_SECOND_PRESENTMENT)
        m = self._match_original(col["arn"][rows], pan[rows], sender[rows], self.txn_acquirer_party)
        matched[rows] = m
        rows = reject(rows, (m < 0) | (self.chargeback_cycle[np.maximum(m, 0)] < 0), "NO_ORIGINAL")
        m = matched[rows]
        rows = reject(rows, (self.representment_cycle[m] >= 0) | _repeats(m), "DUPLICATE_RECORD")
        rows = reject(rows, amount[rows] > self.txn["amount_minor"][matched[rows]], "AMOUNT_TOLERANCE")
        self.representment_cycle[matched[rows]] = c
        representments_cleared = rows

        ok = np.sort(np.concatenate([first_cleared, refunds_cleared, chargebacks_cleared, representments_cleared]))
        if (reason[ok] >= 0).any() or ((reason < 0).sum() != len(ok)):
            raise InvariantError(f"cycle {c}: a record is both cleared and rejected, or neither")
        status = np.where(reason < 0, STATUS_CLEARED, STATUS_REJECTED)

        # Fees and obligations of the cleared records.
        interchange = np.zeros(n, dtype=np.int64)
        fee_iss = np.zeros(n, dtype=np.int64)
        fee_acq = np.zeros(n, dtype=np.int64)
        product = np.full(n, -1, dtype=np.int64)
        receiver = np.full(n, -1, dtype=np.int64)
        window_col = np.full(n, -1, dtype=np.int64)
        mo = matched[ok]
        product[ok] = self.draws.product[mo]
        receiver[ok] = np.where(kind[ok] == cd.KIND_CHARGEBACK, self.txn_acquirer_party[mo], self.txn_issuer_party[mo])
        gross_ic = self.fees.interchange(amount[ok], col["mcc"][ok], product[ok])
        direction = cd.KIND_DIRECTION[kind[ok]]
        interchange[ok] = direction * gross_ic
        fee_iss[ok], fee_acq[ok] = self.fees.scheme_fees(amount[ok])
        record_id = np.arange(self._n_records, self._n_records + n, dtype=np.int64)
        if len(ok):
            window = self.settlement.window_for(now)
            window.cycles.append(c)
            window_col[ok] = window.index
            self.txn_window[first_txn] = window.index
            self._post_obligations(window, kind[ok], record_id[ok], self.txn_issuer_party[mo],
                                   self.txn_acquirer_party[mo], direction, amount[ok] - gross_ic,
                                   fee_iss[ok], fee_acq[ok])
            out["window"] = window.index
        self._append({
            "txn_index": truth, "file": file_no, "cycle": np.full(n, c), "window": window_col,
            "amount_minor": amount, "interchange_minor": interchange, "scheme_fee_issuer_minor": fee_iss,
            "scheme_fee_acquirer_minor": fee_acq, "message_number": col["message_number"], "kind": kind,
            "status": status, "reason": reason, "sender": sender, "receiver": receiver, "matched_txn": matched,
            "product": product, "mcc": col["mcc"], "arn": col["arn"],
        })
        out.update(cleared=len(ok), rejected=n - len(ok), amount_minor=int(amount[ok].sum()))
        bad = np.flatnonzero(reason >= 0)
        out["record_rejects"] = {
            "sender": sender[bad], "file": file_no[bad], "message_number": col["message_number"][bad],
            "arn": col["arn"][bad], "reason": reason[bad],
        }
        if self.keep_files and len(ok):
            self._send_distribution(accepted, ok, receiver, col)
        return out

    def _match_authorisation(self, code: np.ndarray, pan: np.ndarray, sender: np.ndarray,
                             local_time: np.ndarray | None) -> np.ndarray:
        """The authorisation each record's approval code, PAN, acquirer (and DE 12) point to; -1 if none."""
        found = np.full(len(code), -1, dtype=np.int64)
        for cand in cd.approval_candidates(code, self.n_txn):
            c = np.maximum(cand, 0)
            good = (cand >= 0) & (self.pan[c] == pan) & (self.txn_acquirer_party[c] == sender)
            good &= self.response_code[c] == APPROVED
            if self.reversed is not None:
                good &= ~self.reversed[c]
            if local_time is not None:
                good &= self.txn_local[c] == local_time
            found = np.where((found < 0) & good, cand, found)
        return found

    def _match_original(self, arn: np.ndarray, pan: np.ndarray, sender: np.ndarray,
                        party_of_txn: np.ndarray) -> np.ndarray:
        """The purchase whose cleared first presentment has this ARN, PAN and the sender in `party_of_txn`."""
        m = self.presented_arns.lookup(arn)
        c = np.maximum(m, 0)
        good = (m >= 0) & (self.pan[c] == pan) & (party_of_txn[c] == sender)
        return np.where(good, m, -1)

    def _outside_tolerance(self, amount: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Presented amount off the authorised amount by more than `amount_tolerance_bps` of it (exact)."""
        authorised = self.txn["amount_minor"][m].astype(np.int64)
        tol = rate_hundredths_bps(self.scenario.clearing.amount_tolerance_bps)  # hundredths of a bp
        return np.abs(amount - authorised) * 1_000_000 > tol * authorised

    def _post_obligations(self, window, kind: np.ndarray, record_id: np.ndarray, issuer: np.ndarray,
                          acquirer: np.ndarray, direction: np.ndarray, principal: np.ndarray,
                          fee_iss: np.ndarray, fee_acq: np.ndarray) -> None:
        """The one place clearing hands obligations to settlement.

        Principal (amount less interchange): the issuer pays the acquirer for first and
        second presentments, the acquirer pays the issuer for refunds and chargebacks.
        Each side pays its scheme fee to the network on every cleared record.
        Each transfer carries its record id and obligation kind.
        """
        network = np.full(len(issuer), self.network_party, dtype=np.int64)
        payer = np.where(direction > 0, issuer, acquirer)
        payee = np.where(direction > 0, acquirer, issuer)
        kinds = np.concatenate([_PRINCIPAL_OBLIGATION[kind], np.full(len(kind), ObligationKind.SCHEME_FEE_ISSUER),
                                np.full(len(kind), ObligationKind.SCHEME_FEE_ACQUIRER)]).astype(np.int8)
        # All three transfers carry the record id, so an unwind takes the record out whole.
        window.add_obligations(
            kinds,
            np.tile(record_id, 3),
            np.concatenate([payer, issuer, acquirer]),
            np.concatenate([payee, network, network]),
            np.concatenate([principal, fee_iss, fee_acq]),
        )

    # --- files the network sends -------------------------------------------------------------------

    def _out_header(self, receiver_party: int, file_type: int) -> ipm.FileHeader:
        date = self.start_date + dt.timedelta(days=int(self.env.now // DAY_S))
        key = date.isoformat()
        self._out_sequence[key] = self._out_sequence.get(key, 0) + 1
        return ipm.FileHeader(sender_id=cd.NETWORK_PROCESSOR_ID, receiver_id=int(cd.processor_id(receiver_party)),
                              business_date=date, file_sequence=self._out_sequence[key], file_type=file_type)

    def _send_distribution(self, accepted, ok: np.ndarray, receiver: np.ndarray, col: dict) -> None:
        """One outgoing file per receiving institution of this cycle's cleared records."""
        batches = [b for _, b in accepted]
        names = [k for k in attrs.fields_dict(ipm.RecordBatch) if k != "message_number"]
        every = {k: np.concatenate([getattr(b, k) for b in batches]) for k in names}
        ids = self.scenario.participant_ids
        slug = self.cycles_slug()
        for party in np.unique(receiver[ok]).tolist():
            rows = ok[receiver[ok] == party]
            batch = ipm.RecordBatch(**{k: v[rows] for k, v in every.items()})
            header = self._out_header(party, cd.FILE_TYPE_DISTRIBUTION)
            data = ipm.write_file(header, batch, blocked=self.scenario.clearing.blocked_files)
            self.kept_files.append((f"out/{slug}_{ids[party]}_clearing.ipm", data))
            self.files_out += 1

    def cycles_slug(self) -> str:
        day = int(self.env.now // DAY_S)
        clock = int(self.env.now - day * DAY_S)
        return f"D{day + 1:03d}-{clock // 3600:02d}{clock % 3600 // 60:02d}"

    def _send_rejects(self, slug: str, rejected_files: list, cleared: dict) -> None:
        """1644/691 per rejected record and 1644/699 per rejected file, back to each sender."""
        rr = cleared.get("record_rejects") or {}
        n_691 = len(rr.get("reason", ()))
        self.reject_messages[ipm.FUNC_MESSAGE_EXCEPTION] += n_691
        self.reject_messages[ipm.FUNC_FILE_REJECT] += len(rejected_files)
        if not self.keep_files or (n_691 == 0 and not rejected_files):
            return
        senders = sorted({f.sender for f, _, _ in rejected_files} | set(rr.get("sender", np.empty(0)).tolist()))
        ids = self.scenario.participant_ids
        for party in senders:
            cols: dict[str, list] = {k: [] for k in attrs.fields_dict(ipm.RejectBatch)}
            if n_691:
                for j in np.flatnonzero(rr["sender"] == party).tolist():
                    name = REASONS[int(rr["reason"][j])]
                    cols["function_code"].append(ipm.FUNC_MESSAGE_EXCEPTION)
                    cols["reason_code"].append(name)
                    cols["source_file_id"].append(self.files[int(rr["file"][j])].file_id)
                    cols["source_message_number"].append(int(rr["message_number"][j]))
                    cols["arn"].append(bytes(rr["arn"][j]))
                    cols["detail"].append(_printable(ipm.REASON_CODES[name][1]))
            for f, name, detail in rejected_files:
                if f.sender == party:
                    cols["function_code"].append(ipm.FUNC_FILE_REJECT)
                    cols["reason_code"].append(name)
                    cols["source_file_id"].append(f.file_id)
                    cols["source_message_number"].append(0)
                    cols["arn"].append(b"")
                    cols["detail"].append(detail or _printable(ipm.REASON_CODES[name][1]))
            header = self._out_header(party, cd.FILE_TYPE_REJECTS)
            data = ipm.write_rejects(header, ipm.RejectBatch(**cols), blocked=self.scenario.clearing.blocked_files)
            self.kept_files.append((f"out/{slug}_{ids[party]}_rejects.ipm", data))
            self.files_out += 1

    # --- results ---------------------------------------------------------------------------------

    def records(self) -> dict[str, np.ndarray]:
        """Every record the network received, one row each: cleared or rejected with a reason.

        Each column's chunks are joined into one when asked and kept joined, so the dozen
        callers of a finished run share one copy; the arrays are read-only for that reason
        (a lone chunk still writable may be a sender's own array: it is copied too).
        """
        for k, chunks in self._records.items():
            if len(chunks) != 1 or chunks[0].flags.writeable:
                joined = np.concatenate(chunks) if chunks else np.empty(0, dtype=_DTYPES.get(k, np.int64))
                joined.flags.writeable = False
                chunks[:] = [joined]
        return {k: chunks[0] for k, chunks in self._records.items()}


def check_clearing(clearing: ClearingNetwork, senders: list) -> None:
    """Clearing's books at the end of a run; raises InvariantError if they do not balance.

    Every record a sender put in a file that reached a cycle is in the table exactly
    once, cleared or rejected with a reason; no purchase clears any record kind twice;
    the per-purchase state agrees with the cleared records; interchange paid by
    acquirers equals interchange received by issuers.
    """
    r = clearing.records()
    sent = sum(f.n_records for s in senders for f in s.files if f.cycle >= 0)
    if sent != len(r["record_id"]):
        raise InvariantError(f"{sent} records were sent in files that reached a cycle, {len(r['record_id'])} "
                             "were cleared or rejected")
    status = r["status"]
    if not np.isin(status, (STATUS_CLEARED, STATUS_REJECTED)).all():
        raise InvariantError("a record ended neither cleared nor rejected")
    if ((status == STATUS_REJECTED) != (r["reason"] >= 0)).any():
        raise InvariantError("a rejected record without a reason, or a cleared one with one")
    cleared = status == STATUS_CLEARED
    if (r["window"][cleared] < 0).any():
        raise InvariantError("a cleared record was not handed to a settlement window")
    state = {cd.KIND_FIRST_PRESENTMENT: clearing.txn_cycle, cd.KIND_REFUND: clearing.refund_cycle,
             cd.KIND_CHARGEBACK: clearing.chargeback_cycle, cd.KIND_SECOND_PRESENTMENT: clearing.representment_cycle}
    for kind, cycle_of in state.items():
        m = r["matched_txn"][cleared & (r["kind"] == kind)]
        if len(m) and (m.min() < 0 or m.max() >= clearing.n_txn):
            raise InvariantError(f"a cleared {cd.KIND_NAMES[kind]} matched no purchase")
        # Purchase ids are small ints: a count per purchase finds repeats without sorting or hashing.
        times_cleared = np.bincount(m, minlength=clearing.n_txn)
        if (times_cleared > 1).any():
            raise InvariantError(f"a purchase has more than one cleared {cd.KIND_NAMES[kind]}")
        marked = times_cleared > 0
        if not np.array_equal(marked, cycle_of >= 0):
            raise InvariantError(f"{int((marked != (cycle_of >= 0)).sum())} purchase(s) whose "
                                 f"{cd.KIND_NAMES[kind]} state differs from the cleared records (never cleared, "
                                 "or cleared without a record)")
    figures = fee_figures(clearing)
    if figures["interchange_paid_total_minor"] != figures["interchange_received_total_minor"]:
        raise InvariantError(f"interchange paid {figures['interchange_paid_total_minor']} differs from interchange "
                             f"received {figures['interchange_received_total_minor']}")
    # Each window's net positions, recomputed from the cleared records alone, must be what it settled.
    n = clearing.network_party + 1
    windows = clearing.settlement.windows
    direction = cd.KIND_DIRECTION[r["kind"][cleared].astype(np.int64)]
    acq, iss = _acquirer_issuer(r, cleared)
    acq_gets = direction * r["amount_minor"][cleared] - r["interchange_minor"][cleared]
    fee_acq, fee_iss = r["scheme_fee_acquirer_minor"][cleared], r["scheme_fee_issuer_minor"][cleared]
    row = r["window"][cleared].astype(np.int64) * n
    network = np.full(len(row), clearing.network_party, dtype=np.int64)
    pos = _sum_by(np.concatenate([row + acq, row + iss, row + network]),
                  np.concatenate([acq_gets - fee_acq, -acq_gets - fee_iss, fee_acq + fee_iss]),
                  len(windows) * n).reshape(len(windows), n)
    for w in windows:  # obligations: before any unwind or abort changed what settled
        if w.obligations_minor is not None and not np.array_equal(pos[w.index], np.asarray(w.obligations_minor)):
            raise InvariantError(f"window {w.id}: net positions differ from those of the records cleared into it")


def _acquirer_issuer(r: dict[str, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The acquirer's and the issuer's participant index of each (cleared) record."""
    chargeback = r["kind"][rows] == cd.KIND_CHARGEBACK
    acq = np.where(chargeback, r["receiver"][rows], r["sender"][rows]).astype(np.int64)
    iss = np.where(chargeback, r["sender"][rows], r["receiver"][rows]).astype(np.int64)
    return acq, iss


def fee_figures(clearing: ClearingNetwork) -> dict:
    """Interchange and scheme fees of the cleared records by participant (fen, int).

    Interchange is signed: a credit (refund, chargeback) gives it back. What an
    acquirer pays is what the issuer of the same record receives, record by record.
    """
    r = clearing.records()
    cleared = r["status"] == STATUS_CLEARED
    acq, iss = _acquirer_issuer(r, cleared)
    n = clearing.network_party + 1
    ic = r["interchange_minor"][cleared]
    return fee_figures_of(clearing.scenario, _sum_by(acq, ic, n), _sum_by(iss, ic, n),
                          _sum_by(iss, r["scheme_fee_issuer_minor"][cleared], n),
                          _sum_by(acq, r["scheme_fee_acquirer_minor"][cleared], n))


def fee_figures_of(scenario: Scenario, paid: np.ndarray, received: np.ndarray, fee_iss: np.ndarray,
                   fee_acq: np.ndarray) -> dict:
    """`fee_figures` from per-participant totals (fen): interchange paid (as acquirer) and
    received (as issuer), scheme fees paid as issuer and as acquirer."""
    ids = scenario.participant_ids
    acquirers = sorted({a.institution for a in scenario.acquirers}, key=ids.index)
    issuers = sorted({i.institution for i in scenario.issuers}, key=ids.index)
    return {
        "interchange_paid_minor": {p: int(paid[ids.index(p)]) for p in acquirers},
        "interchange_received_minor": {p: int(received[ids.index(p)]) for p in issuers},
        "interchange_paid_total_minor": int(paid.sum()),
        "interchange_received_total_minor": int(received.sum()),
        "scheme_fees_issuer_minor": {p: int(fee_iss[ids.index(p)]) for p in issuers},
        "scheme_fees_acquirer_minor": {p: int(fee_acq[ids.index(p)]) for p in acquirers},
        "scheme_fees_total_minor": int(fee_iss.sum() + fee_acq.sum()),
    }


def _sum_by(key: np.ndarray, value: np.ndarray, n: int) -> np.ndarray:
    """Exact int64 sums of `value` by `key` in [0, n)."""
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, np.asarray(key, dtype=np.int64), np.asarray(value, dtype=np.int64))
    return out
