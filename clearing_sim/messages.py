"""ISO 8583:1987 authorisation messages of a run, and the `messages.iso8583` trace file.

Owns: building every authorisation message of a finished run from its outcome arrays,
encoding and decoding them with pyiso8583's public `default_ascii` spec (ASCII
fields, hex-character bitmaps), and the trace format: each message prefixed by its
length as 2 bytes, big-endian. Must never simulate or change outcomes: the trace is a
view of what the model decided.

One record per message, in the order the switch handled them (time, then transaction,
then the message's place in its exchange). The 0100/0110 of a switched purchase are
recorded once, on the acquirer's side of the switch (the switch forwards the same
message to and from the issuer). Purchases kept inside the bank have no network
message.

* `0100` request: DE2 PAN, DE3 `000000` (purchase), DE4 amount (fen, 12 digits), DE7
  transmission time (MMDDhhmmss in GMT, as ISO 8583 defines it: the simulated clock, China
  Standard Time, less 8 hours), DE11 STAN (per acquirer, 1-999999),
  DE12/13 local time and date of the purchase (the simulated clock), DE18 MCC, DE32 acquirer id, DE37 RRN,
  DE41 terminal id, DE42 merchant id, DE49 currency `156`.
* `0110` response: the request's fields, DE7 of the response, DE38 auth code (approvals
  only: the code the acquirer presents in clearing, made the same way for a stand-in
  approval, so it does not mark one; the 0120 advice does), DE39 response code.
* `0120` stand-in advice to the issuer (a resend is `0121`): the request's fields with
  DE38 and DE39 `00`; `0130` the issuer's acknowledgement.
* `0400` acquirer reversal and `0410` the switch's answer; `0420` the reversal forwarded
  to the issuer as a reversal advice (a resend is `0421`), `0430` its acknowledgement.
  All carry DE90, original data elements: original MTI, STAN, DE7 (GMT), acquirer id.
* Switch restarts (`clearing_sim.model.switch_restarts`): an authorisation lost in the
  switch has its `0100` but no `0110`; its `0400` follows. An `0400` that reached the
  switch while it was down is repeated as `0401` (the trace records every send).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import attrs
import iso8583
import numpy as np
from iso8583.specs import default_ascii

from clearing_sim.errors import InputError
from clearing_sim.model.clearing_data import approval_code
from clearing_sim.model.authorisation import APPROVED, ROUTE_IN_BANK
from clearing_sim.model.switch import ADVICE
from clearing_sim.model.switch_restarts import SwitchRestarts
from clearing_sim.model.traffic import DAY_S

SPEC = default_ascii
CURRENCY_CNY = "156"
# The simulated clock is China Standard Time (UTC+8, no daylight saving); DE7 is in GMT.
CST_OFFSET_S = 8 * 3600
PURCHASE = "000000"
MAX_MESSAGE_BYTES = 0xFFFF

# (MTI, place in its exchange) for sorting messages of one transaction at the same instant.
_ORDER = {"0100": 0, "0110": 1, "0120": 2, "0121": 2, "0130": 3, "0400": 4, "0401": 4, "0410": 5,
          "0420": 6, "0421": 6, "0430": 7}


class TraceError(InputError):
    """A trace file that is not a sequence of length-prefixed ISO 8583 messages."""


def institution_code(participant_index: int) -> str:
    """DE32 of an institution: `100001` for the first institution of the scenario, and so on."""
    return f"{100001 + participant_index}"


@attrs.define
class MessageLog:
    """Every message of a run as sorted columns; encode with `iter_encoded` or `write`.

    Per-transaction values are kept as plain numbers and formatted per message, so a
    log costs a few lists of ints, not a dict of strings per message.
    """

    t_s: list[float]  # when the switch handled each message (the trace's order)
    t_sent_s: list[float]  # when its sender transmitted it (DE7)
    txn: list[int]  # each message's transaction index
    mti: list[str]
    pan: list[int]
    amount_minor: list[int]
    stan: list[int]
    t_purchase_s: list[float]
    mcc: list[int]
    acquirer_code: list[str]
    txn_id: list[int]
    merchant: list[int]
    acquirer: list[int]
    auth_code: list[str]
    response_code: list[str]
    start_date: dt.date

    def __len__(self) -> int:
        return len(self.mti)

    def counts(self) -> dict[str, int]:
        """Messages per MTI."""
        out: dict[str, int] = {}
        for m in self.mti:
            out[m] = out.get(m, 0) + 1
        return dict(sorted(out.items()))

    def _clock(self, t: float, gmt: bool = False) -> tuple[str, str]:
        """(MMDD, hhmmss) of a simulated time (China Standard Time), or of the same instant in GMT."""
        if gmt:
            t -= CST_OFFSET_S
        day = int(t // DAY_S)
        secs = int(t - day * DAY_S)
        date = self.start_date + dt.timedelta(days=day)
        return f"{date.month:02d}{date.day:02d}", f"{secs // 3600:02d}{secs % 3600 // 60:02d}{secs % 60:02d}"

    def document(self, n: int) -> dict[str, str]:
        """The n-th message as a pyiso8583 document (field number -> text, `t` the MTI)."""
        i = self.txn[n]
        mti = self.mti[n]
        date7, time7 = self._clock(self.t_sent_s[n], gmt=True)
        date13, time12 = self._clock(self.t_purchase_s[i])
        sent_date, sent_time = self._clock(self.t_purchase_s[i], gmt=True)  # the 0100's DE7
        stan = f"{self.stan[i]:06d}"
        acq = self.acquirer_code[i]
        doc = {
            "t": mti,
            "2": str(self.pan[i]),
            "3": PURCHASE,
            "4": f"{self.amount_minor[i]:012d}",
            "7": date7 + time7,
            "11": stan,
        }
        ack = mti in ("0130", "0430")
        if not ack:
            doc["12"] = time12
            doc["13"] = date13
            doc["18"] = f"{self.mcc[i]:04d}"
        doc["32"] = acq
        doc["37"] = f"{self.txn_id[i] % 10**12:012d}"
        if mti in ("0110", "0120", "0121") and self.auth_code[i]:
            doc["38"] = self.auth_code[i]
        if mti == "0110":
            doc["39"] = self.response_code[i]
        elif mti in ("0120", "0121", "0130", "0410", "0430"):
            doc["39"] = "00"
        if not ack:
            doc["41"] = f"{self.merchant[i] % 10**8:08d}"
            doc["42"] = f"{self.acquirer[i]:03d}{self.merchant[i]:012d}"
            doc["49"] = CURRENCY_CNY
        if mti[:2] == "04":
            # Original data elements: MTI, STAN, transmission time, acquirer id, forwarding id (none).
            doc["90"] = f"0100{stan}{sent_date}{sent_time}{acq:0>11}{'':0>11}"
        return doc

    def iter_encoded(self) -> Iterator[bytes]:
        """Each message encoded with `default_ascii`, in trace order."""
        for n in range(len(self.mti)):
            raw, _ = iso8583.encode(self.document(n), SPEC)
            yield bytes(raw)

    def write(self, fh: BinaryIO) -> int:
        """Write the trace (2-byte big-endian length, then the message) and return the message count."""
        count = 0
        for raw in self.iter_encoded():
            if len(raw) > MAX_MESSAGE_BYTES:
                raise ValueError(f"message {count} is {len(raw)} bytes, too long for a 2-byte length prefix")
            fh.write(len(raw).to_bytes(2, "big"))
            fh.write(raw)
            count += 1
        return count


def build_message_log(state) -> MessageLog:
    """Every ISO 8583 message of a finished simulation (`clearing_sim.model.network.SimulationState`)."""
    sc = state.scenario
    o = state.outcomes
    txn = state.txn
    n = len(txn["txn_id"])
    switched = o["route"] != ROUTE_IN_BANK
    idx = np.flatnonzero(switched)

    rows_t: list[np.ndarray] = []
    rows_sent: list[np.ndarray] = []
    rows_txn: list[np.ndarray] = []
    rows_mti: list[np.ndarray] = []

    def add(t: np.ndarray, sent: np.ndarray, which: np.ndarray, mti: np.ndarray | str) -> None:
        rows_t.append(np.asarray(t, dtype=np.float64))
        rows_sent.append(np.asarray(sent, dtype=np.float64))
        rows_txn.append(np.asarray(which, dtype=np.int64))
        rows_mti.append(np.broadcast_to(np.asarray(mti, dtype="<U4"), (len(which),)))

    t_purchase = txn["t_arrival_s"]
    add(o["t_switch_in_s"][idx], t_purchase[idx], idx, "0100")
    answered = idx[~o["lost_in_switch"][idx]]  # a restart lost the others' answers
    add(o["t_switch_response_s"][answered], o["t_switch_response_s"][answered], answered, "0110")
    rev = np.flatnonzero(o["reversed"])
    acq_timeout_s = np.array([a.auth_timeout_ms / 1000.0 for a in sc.acquirers])
    t_gave_up = t_purchase[rev] + acq_timeout_s[txn["acquirer"][rev].astype(np.int64)]
    restarts = SwitchRestarts(sc)
    if restarts:
        repeat_s = acq_timeout_s[txn["acquirer"][rev].astype(np.int64)]
        hop = txn["hop_rev_acq_switch_s"][rev]
        _, repeats = restarts.reversal_arrival(t_gave_up, hop, repeat_s)
        row, sent = restarts.reversal_sends(t_gave_up, repeat_s, repeats)
        first = np.arange(len(row)) < len(rev)  # the first len(rev) rows are the first sends
        add(sent + hop[row], sent, rev[row], np.where(first, "0400", "0401"))
    else:
        add(o["t_reversal_s"][rev], t_gave_up, rev, "0400")
    add(o["t_reversal_s"][rev], o["t_reversal_s"][rev], rev, "0410")
    log = state.authorisation.saf.log if state.authorisation is not None else None
    if log is not None and len(log["txn"]):  # lists in detailed mode, arrays in fast mode
        kind = np.asarray(log["kind"])
        saf_txn = np.asarray(log["txn"], dtype=np.int64)
        attempt = np.asarray(log["attempt"])
        sent = np.asarray(log["t_sent_s"], dtype=np.float64)
        applied = np.asarray(log["t_applied_s"], dtype=np.float64)
        acked = np.asarray(log["t_acked_s"], dtype=np.float64)
        advice = kind == ADVICE
        first = attempt == 0
        mti_sent = np.where(advice, np.where(first, "0120", "0121"), np.where(first, "0420", "0421"))
        add(sent, sent, saf_txn, mti_sent)
        ok = ~np.isnan(acked)
        add(acked[ok], applied[ok], saf_txn[ok], np.where(advice[ok], "0130", "0430"))

    t_all = np.concatenate(rows_t)
    sent_all = np.concatenate(rows_sent)
    txn_all = np.concatenate(rows_txn)
    mti_all = np.concatenate(rows_mti)
    if np.isnan(t_all).any():
        raise ValueError("a message without a time: the run is not finished")
    order_key = np.array([_ORDER[m] for m in mti_all.tolist()], dtype=np.int8)
    order = np.lexsort((order_key, txn_all, t_all))

    acq = txn["acquirer"].astype(np.int64)
    acq_inst = [sc.institution_index(a.institution) for a in sc.acquirers]
    acq_codes = [institution_code(x) for x in acq_inst]
    # STAN: each acquirer numbers its requests 1, 2, ... in sending order, wrapping after 999,999.
    stan = np.zeros(n, dtype=np.int64)
    for a in range(len(sc.acquirers)):
        mine = np.flatnonzero(acq == a)
        stan[mine] = np.arange(len(mine)) % 999999 + 1
    code = o["response_code"]
    ids = txn["txn_id"]
    # DE 38 is the code the acquirer later presents in its clearing record (the same
    # function), so a trace and the clearing files of one run agree purchase by purchase.
    auth_code = [""] * n
    approved = np.flatnonzero(code == APPROVED)
    for i, c in zip(approved.tolist(), approval_code(ids[approved]).tolist()):
        auth_code[i] = c.decode("ascii")
    return MessageLog(
        t_s=t_all[order].tolist(), t_sent_s=sent_all[order].tolist(), txn=txn_all[order].tolist(), mti=mti_all[order].tolist(),
        pan=state.pan.tolist(), amount_minor=txn["amount_minor"].tolist(), stan=stan.tolist(),
        t_purchase_s=txn["t_arrival_s"].tolist(), mcc=txn["mcc"].tolist(),
        acquirer_code=[acq_codes[a] for a in acq.tolist()], txn_id=ids.tolist(),
        merchant=txn["merchant"].tolist(), acquirer=acq.tolist(), auth_code=auth_code,
        response_code=[f"{c:02d}" if c >= 0 else "" for c in code.tolist()],
        start_date=dt.date.fromisoformat(sc.run.start_date),
    )


def write_trace(path: Path, log: MessageLog) -> int:
    """Write `messages.iso8583` at `path`; returns the number of messages."""
    with open(path, "wb") as fh:
        return log.write(fh)


def iter_trace(path: Path) -> Iterator[tuple[dict[str, str], bytes]]:
    """Each message of a trace file, decoded with `default_ascii`, with its raw bytes.

    Raises TraceError (exit 2) for a truncated file or a message pyiso8583 cannot decode.
    """
    data = Path(path).read_bytes()
    pos = 0
    n = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise TraceError(f"{path}: message {n} at byte {pos}: truncated length prefix")
        size = int.from_bytes(data[pos:pos + 2], "big")
        raw = data[pos + 2:pos + 2 + size]
        if len(raw) != size:
            raise TraceError(f"{path}: message {n} at byte {pos}: {size} bytes announced, {len(raw)} present")
        try:
            doc, _ = iso8583.decode(raw, SPEC)
        except iso8583.DecodeError as exc:
            raise TraceError(f"{path}: message {n} at byte {pos}: {exc}") from None
        yield doc, raw
        pos += 2 + size
        n += 1
