"""Clearing records as participants write them: ids, ARNs, approval codes, batches, faults.

Owns: the numbers that identify parties and records in clearing files (processor ids,
file ids, the acquirer reference number (ARN), the approval code of an authorisation),
building the columns of each record kind from the purchase arrays, the injected
faults that damage a file, and the index of ARNs the network has cleared. Pure
functions of arrays: must never simulate, draw random numbers or decide whether a
record clears.

Record kinds and how they look in a file (`clearing_sim.ipm`):

    first presentment   1240/200, processing code 000000, ARN of the purchase
    refund (a credit)   1240/200, processing code 200000, its own ARN, the purchase's
                        approval code, DE 12 = the time of the refund
    first chargeback    1442/450, the purchase's ARN, DE 25 = the scenario's reason
    second presentment  1240/205, the purchase's ARN, DE 25 = 2700 (chargeback remedied)

The ARN is `7` + the acquirer's processor id (6 digits) + the date as YDDD + an
11-digit sequence (the purchase's id; refunds add 50,000,000,000) + a Luhn check
digit: 23 digits, unique per record the acquirer originates. The approval code is
a bijection of the purchase id modulo 36**6 into six characters 0-9 A-Z, so the
network can find the authorisation an approval code belongs to (and tell a code
that none has).
"""

from __future__ import annotations

import datetime as dt
import re

import numba
import numpy as np

from clearing_sim import ipm

KIND_FIRST_PRESENTMENT = 0
KIND_REFUND = 1
KIND_CHARGEBACK = 2
KIND_SECOND_PRESENTMENT = 3
KIND_NAMES = ("first_presentment", "refund", "first_chargeback", "second_presentment")
# +1: the issuer pays the acquirer (the purchase's direction); -1: the acquirer pays the issuer.
KIND_DIRECTION = np.array([1, -1, -1, 1], dtype=np.int64)

PROC_PURCHASE = 0
PROC_REFUND = 200_000
CURRENCY_CNY = 156
REPRESENTMENT_REASON = 2700  # chargeback remedied

FILE_TYPE_ACQUIRER = 1  # presentments and refunds sent by an acquirer
FILE_TYPE_ISSUER = 2  # chargebacks sent by an issuer
FILE_TYPE_DISTRIBUTION = 101  # cleared records the network sends to their receiver
FILE_TYPE_REJECTS = 199  # 1644/691 and 1644/699 back to a sender

NETWORK_PROCESSOR_ID = ipm.MAX_INSTITUTION_ID
REFUND_SEQUENCE_OFFSET = 50_000_000_000
MAX_SEQUENCE = 10**11 - 1

_CODE_MOD = 36**6
_CODE_MUL = 2_654_435_761  # odd and not a multiple of 3: invertible modulo 36**6
_CODE_ADD = 12_345
_CODE_INV = pow(_CODE_MUL, -1, _CODE_MOD)
_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", np.uint8)
_VALUE_OF = np.full(256, -1, dtype=np.int64)
_VALUE_OF[_ALPHABET] = np.arange(36)


def processor_id(participant: int | np.ndarray) -> np.ndarray:
    """The processor id (DE 93/94, PDS 0105) of a participant index: index + 1."""
    return np.asarray(participant, dtype=np.int64) + 1


def sender_header(participant: int, start_date: str, day: int, seq: int, file_type: int) -> ipm.FileHeader:
    """The header of submission `seq` (0-based) on run `day` (0-based) of a participant's
    files to the network (FILE_TYPE_ACQUIRER or FILE_TYPE_ISSUER)."""
    return ipm.FileHeader(
        sender_id=int(processor_id(participant)), receiver_id=NETWORK_PROCESSOR_ID,
        business_date=dt.date.fromisoformat(start_date) + dt.timedelta(days=day),
        file_sequence=seq + 1, file_type=file_type,
    )


def digit_matrix(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative int64 values below 10**width -> (n, width) uint8 ASCII digits, zero-padded."""
    v = np.ascontiguousarray(values, dtype=np.int64)
    out = np.empty((len(v), width), np.uint8)
    _digits_into(v, out)
    return out


@numba.njit(cache=True, nogil=True)
def _digits_into(v, out):  # pragma: no cover - compiled
    """Row i of `out`: the last `width` decimal digits of v[i] (floor division, as numpy's), in
    ASCII, one pass per value (numpy took a whole-column division per digit)."""
    width = out.shape[1]
    ten = np.uint64(10)
    for i in range(len(v)):
        if v[i] >= 0:  # the documented case: unsigned, where dividing by ten is a multiplication
            rest = np.uint64(v[i])
            for j in range(width):  # j = 0 is the rightmost digit
                out[i, width - 1 - j] = 48 + rest % ten
                rest //= ten
        else:
            signed = v[i]
            for j in range(width):
                out[i, width - 1 - j] = 48 + signed % 10 if j < 19 else 48
                signed //= 10


def as_bytes_column(mat: np.ndarray) -> np.ndarray:
    """(n, w) uint8 -> an `S{w}` array (one bytes value per row)."""
    mat = np.ascontiguousarray(mat, dtype=np.uint8)
    return mat.view(f"S{mat.shape[1]}").reshape(-1)


def pan_bytes(pan: np.ndarray) -> np.ndarray:
    """16-digit int64 PANs -> `S19` as DE 2 carries them."""
    return as_bytes_column(digit_matrix(pan, 16))


def pan_values(pan: np.ndarray) -> np.ndarray:
    """DE 2 bytes (`S19`) -> int64 PAN; -1 where not 1-18 digits."""
    mat = np.frombuffer(np.ascontiguousarray(pan, dtype="S19").tobytes(), np.uint8).reshape(-1, 19)
    out = np.empty(len(mat), dtype=np.int64)
    _pan_values(mat, out)
    return out


@numba.njit(cache=True, nogil=True)
def _pan_values(mat, out):  # pragma: no cover - compiled
    """Each row of `mat` (n x 19 bytes) as a number: its first L bytes, where L counts the
    row's non-NUL bytes, must be 1 to 18 ASCII digits; else -1. One pass per row, where
    whole-matrix numpy took a dozen passes over n x 19 temporaries."""
    for i in range(mat.shape[0]):
        length = 0
        for j in range(mat.shape[1]):
            if mat[i, j] != 0:
                length += 1
        if not 1 <= length <= 18:
            out[i] = -1
            continue
        value = np.int64(0)
        for j in range(length):
            digit = np.int64(mat[i, j]) - 48
            if digit < 0 or digit > 9:
                value = -1
                break
            value = value * 10 + digit
        out[i] = value


def approval_code(txn_id: np.ndarray) -> np.ndarray:
    """The six-character approval code (DE 38, `S6`) of each purchase id."""
    ids = np.ascontiguousarray(txn_id, dtype=np.int64)
    out = np.empty((len(ids), 6), np.uint8)
    _approval_code(ids, _ALPHABET, out)
    return as_bytes_column(out)


@numba.njit(cache=True, nogil=True)
def _approval_code(ids, alphabet, out):  # pragma: no cover - compiled
    """`approval_code` one id at a time (numpy took a division pass and temporaries per
    character). Integer % is floored as in numpy: a negative id has a code too."""
    for i in range(len(ids)):
        v = (ids[i] % _CODE_MOD * _CODE_MUL + _CODE_ADD) % _CODE_MOD
        for j in range(6):
            out[i, 5 - j] = alphabet[v % 36]
            v //= 36


def approval_residue(code: np.ndarray) -> np.ndarray:
    """Purchase id modulo 36**6 that an approval code stands for; -1 if it is not 0-9 A-Z."""
    mat = np.frombuffer(np.ascontiguousarray(code, dtype="S6").tobytes(), np.uint8).reshape(-1, 6)
    out = np.empty(len(mat), dtype=np.int64)
    _approval_residue(mat, _VALUE_OF, out)
    return out


@numba.njit(cache=True, nogil=True)
def _approval_residue(mat, value_of, out):  # pragma: no cover - compiled
    """`approval_residue` one row at a time (numpy took a pass and a temporary per character).
    Integer % is floored as in numpy, and every product stays below 36**6 * _CODE_INV < 2**63."""
    for i in range(mat.shape[0]):
        v = np.int64(0)
        for j in range(6):
            digit = value_of[mat[i, j]]
            if digit < 0:
                v = -1
                break
            v = v * 36 + digit
        out[i] = -1 if v < 0 else (v - _CODE_ADD) % _CODE_MOD * _CODE_INV % _CODE_MOD


def approval_candidates(code: np.ndarray, n_txn: int) -> list[np.ndarray]:
    """Purchase indices (< n_txn, else -1) each code can stand for: one array per wrap of 36**6."""
    residue = approval_residue(code)
    out = []
    for k in range(n_txn // _CODE_MOD + 1):  # one pass below 2.2e9 purchases a run
        idx = residue + k * _CODE_MOD
        out.append(np.where((residue >= 0) & (idx < n_txn), idx, -1))
    return out


def _luhn(payload: np.ndarray) -> np.ndarray:
    """Luhn check digit of each row of (n, w) ASCII digits."""
    d = payload.astype(np.int64) - 48
    w = payload.shape[1]
    doubled = (np.arange(w)[::-1] % 2) == 0  # the rightmost payload digit is doubled
    d = np.where(doubled, d * 2, d)
    d = np.where(d > 9, d - 9, d)
    return (10 - d.sum(axis=1) % 10) % 10


def yddd(dates: np.ndarray) -> np.ndarray:
    """`datetime64[D]` dates -> last digit of the year * 1000 + day of the year.

    A run's records fall on few days: the codes are worked out once per day of their span
    and looked up, rather than by calendar arithmetic per record."""
    dates = np.asarray(dates, dtype="M8[D]")
    day = dates.astype(np.int64)
    if len(day) > 1:
        lo, hi = int(day.min()), int(day.max())
        if hi - lo < len(day):
            return _yddd_each(np.arange(lo, hi + 1).astype("M8[D]"))[day - lo]
    return _yddd_each(dates)


def _yddd_each(dates: np.ndarray) -> np.ndarray:
    year_start = dates.astype("M8[Y]")
    year = year_start.astype(np.int64) + 1970
    day_of_year = (dates - year_start.astype("M8[D]")).astype(np.int64) + 1
    return year % 10 * 1000 + day_of_year


def make_arn(acquirer_pid: np.ndarray, dates: np.ndarray, sequence: np.ndarray) -> np.ndarray:
    """23-digit ARNs (`S23`): 7, acquirer id (6), YDDD (4), sequence (11), Luhn check digit."""
    seq = np.asarray(sequence, dtype=np.int64)
    if len(seq) and (seq.min() < 0 or seq.max() > MAX_SEQUENCE):
        raise ValueError("ARN sequence numbers must be 0 to 10**11 - 1")
    n = len(seq)
    mat = np.empty((n, 23), np.uint8)
    pid = np.broadcast_to(np.asarray(acquirer_pid, dtype=np.int64) % 10**6, (n,))
    _arn_digits(np.ascontiguousarray(pid), np.ascontiguousarray(yddd(dates), dtype=np.int64), seq, mat)
    return as_bytes_column(mat)


@numba.njit(cache=True, nogil=True)
def _arn_digits(pid, date, seq, out):  # pragma: no cover - compiled
    """Fill each row of `out` (n x 23 ASCII) with the ARN's digits and its Luhn check digit.

    The three numbers are not negative (checked or reduced by the callers), so their
    digits are taken in unsigned arithmetic, where dividing by ten is a multiplication."""
    ten = np.uint64(10)
    for i in range(len(seq)):
        out[i, 0] = 55  # "7"
        v = np.uint64(pid[i])
        for j in range(6, 0, -1):
            out[i, j] = 48 + v % ten
            v //= ten
        v = np.uint64(date[i])
        for j in range(10, 6, -1):
            out[i, j] = 48 + v % ten
            v //= ten
        v = np.uint64(seq[i])
        for j in range(21, 10, -1):
            out[i, j] = 48 + v % ten
            v //= ten
        total = 0
        for j in range(22):  # the rightmost payload digit (j = 21) is doubled, and every second one left of it
            d = out[i, j] - 48
            if (21 - j) % 2 == 0:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        out[i, 22] = 48 + (10 - total % 10) % 10


def arn_is_valid(arn: np.ndarray) -> np.ndarray:
    """Whether each ARN (`S23`) carries a correct Luhn check digit."""
    mat = np.frombuffer(np.ascontiguousarray(arn, dtype="S23").tobytes(), np.uint8).reshape(-1, 23)
    return _luhn(mat[:, :22]) == mat[:, 22].astype(np.int64) - 48


def sim_dates(start_date: dt.date, t_s: np.ndarray) -> np.ndarray:
    """`datetime64[D]` calendar dates of simulated times (s since the start date's midnight)."""
    day1 = np.datetime64(start_date, "D")
    return day1 + (np.asarray(t_s, dtype=np.float64) // 86_400).astype(np.int64).astype("m8[D]")


class RecordFactory:
    """Builds the columns of clearing records from the purchase arrays (one row per record)."""

    def __init__(self, start_date: dt.date, txn: dict[str, np.ndarray], pan: np.ndarray,
                 issuer_party: np.ndarray, acquirer_party: np.ndarray, chargeback_reason: int):
        self.start_date = start_date
        self.txn = txn
        self.pan = pan
        self.issuer_pid = processor_id(issuer_party)
        self.acquirer_pid = processor_id(acquirer_party)
        self.chargeback_reason = int(chargeback_reason)
        # DE 12 of every purchase, once: the network matches presentments against it too.
        self.purchase_local_time = self.local_time(txn["t_arrival_s"])

    def local_time(self, t_s: np.ndarray) -> np.ndarray:
        """DE 12 (YYMMDDhhmmss) of simulated times, to the whole second."""
        return ipm.local_time_from_sim_seconds(np.floor(np.asarray(t_s, dtype=np.float64)).astype(np.int64),
                                               self.start_date)

    def dates(self, t_s: np.ndarray) -> np.ndarray:
        return sim_dates(self.start_date, t_s)

    def purchase_arn(self, idx: np.ndarray) -> np.ndarray:
        """The ARN the acquirer gave each purchase (chargebacks and re-presentments repeat it)."""
        acq = self.txn["acquirer"][idx]
        return make_arn(self.acquirer_pid[acq], self.dates(self.txn["t_arrival_s"][idx]), self.txn["txn_id"][idx])

    def columns(self, kind: int, idx: np.ndarray, t_record_s: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Columns of a `RecordBatch` of one record kind about purchases `idx`.

        `t_record_s` is the simulated time a refund was made (its DE 12 and ARN date);
        the other kinds carry the purchase's own time.
        """
        idx = np.asarray(idx, dtype=np.int64)
        n = len(idx)
        t = self.txn
        acq_pid = self.acquirer_pid[t["acquirer"][idx]]
        iss_pid = self.issuer_pid[t["issuer"][idx]]
        zeros = np.zeros(n, dtype=np.int64)
        cols = {
            "mti": np.full(n, ipm.MTI_PRESENTMENT, dtype=np.int64),
            "function_code": np.full(n, ipm.FUNC_FIRST_PRESENTMENT, dtype=np.int64),
            "pan": pan_bytes(self.pan[idx]),
            "processing_code": zeros,
            "amount_minor": t["amount_minor"][idx].astype(np.int64),
            "currency": np.full(n, CURRENCY_CNY, dtype=np.int64),
            "local_time": self.purchase_local_time[idx],
            "mcc": t["mcc"][idx].astype(np.int64),
            "arn": self.purchase_arn(idx),
            "auth_code": approval_code(t["txn_id"][idx]),
            "reason_code": zeros,
            "originator_id": acq_pid,
            "destination_id": iss_pid,
        }
        if kind == KIND_REFUND:
            if t_record_s is None:
                raise ValueError("a refund needs the time it was made")
            cols["processing_code"] = np.full(n, PROC_REFUND, dtype=np.int64)
            cols["local_time"] = self.local_time(t_record_s)
            cols["arn"] = make_arn(acq_pid, self.dates(t_record_s), t["txn_id"][idx] + REFUND_SEQUENCE_OFFSET)
        elif kind == KIND_CHARGEBACK:
            cols["mti"] = np.full(n, ipm.MTI_CHARGEBACK, dtype=np.int64)
            cols["function_code"] = np.full(n, ipm.FUNC_FIRST_CHARGEBACK, dtype=np.int64)
            cols["reason_code"] = np.full(n, self.chargeback_reason, dtype=np.int64)
            cols["originator_id"], cols["destination_id"] = iss_pid, acq_pid
        elif kind == KIND_SECOND_PRESENTMENT:
            cols["function_code"] = np.full(n, ipm.FUNC_SECOND_PRESENTMENT, dtype=np.int64)
            cols["reason_code"] = np.full(n, REPRESENTMENT_REASON, dtype=np.int64)
        elif kind != KIND_FIRST_PRESENTMENT:
            raise ValueError(f"unknown record kind {kind}")
        return cols


def concat_columns(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Rows of several column dicts, one after the other."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def record_kind(batch: ipm.RecordBatch) -> np.ndarray:
    """Kind of each record of a batch read from a file (-1: none of the four)."""
    mti, func = batch.mti, batch.function_code
    credit = batch.processing_code // 10_000 == PROC_REFUND // 10_000
    kind = np.full(len(mti), -1, dtype=np.int64)
    presentment = (mti == ipm.MTI_PRESENTMENT) & (func == ipm.FUNC_FIRST_PRESENTMENT)
    kind[presentment & ~credit] = KIND_FIRST_PRESENTMENT
    kind[presentment & credit] = KIND_REFUND
    kind[(mti == ipm.MTI_CHARGEBACK) & (func == ipm.FUNC_FIRST_CHARGEBACK)] = KIND_CHARGEBACK
    kind[(mti == ipm.MTI_PRESENTMENT) & (func == ipm.FUNC_SECOND_PRESENTMENT)] = KIND_SECOND_PRESENTMENT
    return kind


# --- injected faults ----------------------------------------------------------------


def fault_rows(key: int, txn_id: np.ndarray, k: int) -> np.ndarray:
    """The `k` rows (sorted) a record fault damages: the smallest keyed hashes of the purchase ids."""
    from clearing_sim.rng import splitmix64

    with np.errstate(over="ignore"):
        h = splitmix64(np.asarray(txn_id).astype(np.uint64) ^ np.uint64(key))
    return np.sort(np.argsort(h, kind="stable")[: min(k, len(h))])


FILE_DAMAGE = ("corrupt_trailer", "trailer_count", "trailer_file_id", "truncated")


def damage_file(data: bytes, file_id: str, blocked: bool, how: str) -> bytes:
    """The file damaged the way an injected fault says (`FILE_DAMAGE`).

    `corrupt_trailer`: the trailer's amount checksum (PDS 0301) one fen higher;
    `trailer_count`: its message count (PDS 0306) one higher; `trailer_file_id`: its
    file id (PDS 0105) with the last digit changed; `truncated`: only the first half
    of the bytes (of the blocks, for a 1014-blocked file). Written for files of `ipm.write_file` in ASCII (latin_1).
    """
    if how == "truncated":  # a blocked file loses whole blocks, as a broken transfer would
        keep = len(data) // 2 if not blocked else len(data) // ipm.BLOCK_SIZE // 2 * ipm.BLOCK_SIZE
        return data[:keep]
    if how not in FILE_DAMAGE:
        raise ValueError(f"unknown file damage {how!r}")
    buf = bytearray(data)
    if blocked:  # the VBS stream is the first 1012 bytes of every 1014-byte block
        stream = np.frombuffer(data, np.uint8).reshape(-1, ipm.BLOCK_SIZE)[:, : ipm.BLOCK_DATA].tobytes()
    else:
        stream = data
    # The trailer's DE 48: PDS 0105 (25) + PDS 0301 (16) + PDS 0306 (8), written in that order.
    needle = b"0105025" + file_id.encode("ascii") + b"0301016"
    at = stream.rfind(needle)
    if at < 0:  # its file id already damaged by a trailer_file_id fault on the same file: the last digit differs
        found = list(re.finditer(re.escape(needle[:-8]) + rb"\d0301016", stream))
        if not found:
            raise ValueError(f"no trailer of file {file_id} to damage")
        at = found[-1].start()
    amount_at = at + len(needle)
    if how == "corrupt_trailer":
        start, width = amount_at, 16
    elif how == "trailer_count":
        start, width = amount_at + 16 + 7, 8
    else:
        start, width = at + 7 + 24, 1
    value = (int(stream[start : start + width]) + 1) % 10**width
    for j, ch in enumerate(f"{value:0{width}d}".encode("ascii")):
        pos = start + j
        if blocked:
            pos += 2 * (pos // ipm.BLOCK_DATA)
        buf[pos] = ch
    return bytes(buf)


class ArnIndex:
    """Cleared ARNs and the purchase each belongs to: sorted runs merged as they grow.

    Lookups binary-search every run (at most about log2 of the size of them); adding
    merges runs of similar size, so the work per ARN stays O(log n) amortised.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self.size = 0

    def add(self, arn: np.ndarray, txn: np.ndarray) -> None:
        if len(arn) == 0:
            return
        order = np.argsort(arn, kind="stable")
        self._runs.append((np.asarray(arn, dtype="S23")[order], np.asarray(txn, dtype=np.int64)[order]))
        self.size += len(arn)
        while len(self._runs) >= 2 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (a_keys, a_vals), (b_keys, b_vals) = self._runs[-2], self._runs[-1]
            keys = np.concatenate([a_keys, b_keys])
            order = np.argsort(keys, kind="stable")
            self._runs[-2:] = [(keys[order], np.concatenate([a_vals, b_vals])[order])]

    def lookup(self, arn: np.ndarray) -> np.ndarray:
        """The purchase index of each ARN, -1 where it was never added."""
        arn = np.asarray(arn, dtype="S23")
        out = np.full(len(arn), -1, dtype=np.int64)
        for keys, vals in self._runs:
            pos = np.minimum(np.searchsorted(keys, arn), len(keys) - 1)
            hit = keys[pos] == arn
            out[hit] = vals[pos[hit]]
        return out
