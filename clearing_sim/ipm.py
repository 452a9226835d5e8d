"""Clearing files in the Mastercard IPM style: codec, file-level validation, inspect report.

What this module owns
    The bytes of a clearing file and nothing else: turning a header and a
    column batch of presentments / chargebacks (and reject messages) into an
    IPM-style file (:func:`write_file`, :func:`write_rejects`), reading one back
    into columns with every control total recomputed (:func:`read_file`), and a
    report for ``clearing-sim inspect`` (:func:`inspect_file`,
    :func:`format_inspect`).  Independent IPM tools (``cardutil``) read what it
    writes; the tests prove it.

What it must never do
    * decide whether a record should clear: duplicates, a matching
      authorisation, late presentment, interchange and fees belong to the
      clearing cycle, which only *writes* its verdicts here as 1644/691 and
      1644/699 reject messages;
    * hold a Python object per transaction: records travel as numpy columns
      (:class:`RecordBatch`) and are encoded and decoded column by column;
    * raise anything but :class:`ClearingFileError` on bad bytes: a truncated
      file, a flipped byte, an absurd length prefix or random data is rejected
      with a reason code from :data:`REASON_CODES`, never with an IndexError or
      a UnicodeDecodeError (a traceback from here is a bug, exit 1);
    * trust a control total: the writer computes them, the reader recomputes
      them and rejects a mismatch.

Layout (the choices, and why)
    * Framing: VBS -- each message is prefixed by its length as a 4-byte
      big-endian unsigned integer and the file ends with a zero length.  With
      ``blocked=True`` the VBS stream is cut into 1012-byte blocks, each
      followed by two x'40' bytes, and the last block is padded with x'40'
      ("1014 blocking"), exactly as ``cardutil.mciipm.block_1014`` does.
      Lengths are accepted from 20 (MTI + bitmaps) to 6000 bytes, cardutil's
      ``MAX_VBS_RECORD_LENGTH``.
    * Messages: ISO 8583:1993 with a 4-digit MTI and a 16-byte *binary*
      bitmap (primary + secondary, bit 1 always set, as IPM requires and as
      cardutil reads).  LLVAR/LLLVAR lengths are 2/3 ASCII digits.
    * Encoding: ``latin_1`` (ASCII text) by default, which is cardutil's
      default; ``encoding="cp500"`` writes EBCDIC text as mainframe IPM files
      do (read it with ``IpmReader(f, encoding="cp500")``).  The reader detects
      the encoding from the first MTI.  Bitmaps and length prefixes are binary
      in both.
    * File header ``1644``/DE 24 ``697``: DE 48 PDS 0105 file id, DE 71 = 1,
      DE 93 receiver id, DE 94 sender id.  PDS 0105 is the IPM file id,
      25 digits: file type (3) + business date YYMMDD (6) + processor id (11,
      = the sender) + file sequence number (5).
    * Records, DE 71 = 2, 3, ...: ``1240``/``200`` first presentment,
      ``1240``/``205`` second presentment (re-presentment), ``1442``/``450``
      first chargeback, each with DE 2 PAN, DE 3 processing code, DE 4 amount
      (minor units, n12), DE 12 local date and time YYMMDDhhmmss, DE 24
      function code, DE 25 message reason code (chargeback reason; present only
      when non-zero, mandatory on 450), DE 26 MCC, DE 31 ARN (23 digits), DE 38
      approval code, DE 49 currency (numeric ISO 4217), DE 71 message number,
      DE 93 transaction destination institution id and DE 94 transaction
      originator institution id.  IPM identifies the parties of a presentment
      with DE 93/94 (DE 33/100 name forwarding and receiving institutions,
      which a domestic network without intermediaries does not have), so the
      records carry DE 93/94, 11 digits zero-padded.
    * Reject messages ``1644``/``691`` (message exception: one rejected
      record) and ``1644``/``699`` (file reject): DE 48 PDS 0005 message error
      indicator, PDS 0138 source message number (691 only) and PDS 0280 source
      file id, DE 31 the rejected record's ARN (691, when known), DE 72 a
      free-text detail (when given).  Our PDS 0005 is one 13-digit occurrence:
      data element in error ``0000`` + severity ``01`` + error message code
      (the 4-digit number in :data:`REASON_CODES`) + subfield ``000``.
    * File trailer ``1644``/``695``: DE 48 PDS 0105 (same file id as the
      header), PDS 0301 file amount checksum = the sum of DE 4 over every
      message in the file, modulo 10^16 (16 digits; a hash total that wraps,
      so a file of any size has one; a credit adds to it like a debit: it is
      a checksum, not a net amount) and PDS 0306 file message count = every
      message in the file, header and trailer included (8 digits), and DE 71.
    * PDS are written ``tag(4) length(3) data`` into DE 48, the layout
      cardutil splits into ``PDSxxxx`` keys.
    * Dates: YYMMDD/YYMMDDhhmmss years are 2000-2068 only, the range in which
      every reader (Python's ``%y``, hence cardutil) agrees on the century.

Speed
    Encoding and decoding are vectorised over the batch: every data element is
    a ``(n, width)`` uint8 matrix scattered into (or gathered from) one buffer,
    so the Python work per record is only the VBS framing loop of the reader.
    pyiso8583 with a custom spec encodes about 26,000 messages a second (one
    dict per message); this codec does several hundred thousand (see
    ``benchmarks/bench_clearing_files.py``).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs
import numba
import numpy as np

from clearing_sim.errors import InputError, InvariantError

__all__ = [
    "REASON_CODES",
    "RECORD_KINDS",
    "REJECT_KINDS",
    "ClearingFile",
    "ClearingFileError",
    "FileHeader",
    "FileTrailer",
    "InspectReport",
    "RecordBatch",
    "RejectBatch",
    "format_inspect",
    "inspect_file",
    "local_time_from_sim_seconds",
    "read_file",
    "sim_seconds_from_local_time",
    "write_file",
    "write_rejects",
]

# --------------------------------------------------------------------------
# Reason codes: stable names (what code and tests compare) and stable 4-digit
# numbers (what a 1644/691 or 1644/699 carries in PDS 0005).  Never renumber
# or reuse a row; add new ones at the end of their block.
# --------------------------------------------------------------------------

REASON_CODES: Final[Mapping[str, tuple[int, str]]] = {
    # Framing: the VBS / 1014-blocked container.
    "TRUNCATED": (1001, "the data ends inside a length prefix or a record, or has no end-of-file record"),
    "BAD_LENGTH": (1002, "a record length prefix is below 20 or above 6000 bytes"),
    "BAD_BLOCKING": (1003, "1014-blocked data not a multiple of 1014 bytes, or a block not ending in x'4040'"),
    "TRAILING_DATA": (1004, "bytes after the end-of-file record other than x'40' block padding"),
    # One message.
    "BAD_MESSAGE": (1010, "a message cannot be parsed: MTI, bitmap, a length prefix, bytes left over"),
    "UNSUPPORTED_MESSAGE": (1011, "an MTI / function code (DE 24) this network does not clear"),
    "MISSING_FIELD": (1012, "a mandatory data element or PDS is absent"),
    "BAD_FIELD": (1013, "a data element or PDS has an invalid value"),
    # The file as a whole.
    "NO_HEADER": (1020, "the first message is not a 1644/697 file header"),
    "NO_TRAILER": (1021, "the last message is not a 1644/695 file trailer"),
    "MISPLACED_CONTROL": (1022, "a file header or trailer between the records"),
    "BAD_SEQUENCE": (1023, "message numbers (DE 71) are not 1, 2, 3, ... in file order"),
    "FILE_ID_MISMATCH": (1030, "the trailer's file id (PDS 0105) differs from the header's"),
    "COUNT_MISMATCH": (1031, "the trailer's message count (PDS 0306) differs from the messages in the file"),
    "AMOUNT_MISMATCH": (1032, "the trailer's amount checksum (PDS 0301) differs from the sum of DE 4"),
    # Clearing-cycle verdicts: written into reject messages by the clearing
    # cycle, never raised by this module.
    "DUPLICATE_FILE": (2001, "a file with this file id was already received"),
    "DUPLICATE_RECORD": (2002, "a record with this ARN was already presented"),
    "NO_AUTHORISATION": (2003, "no matching approved authorisation"),
    "LATE_PRESENTMENT": (2004, "presented after the presentment time limit"),
    "AMOUNT_TOLERANCE": (2005, "the amount differs from the authorised (or original) amount beyond the tolerance"),
    "NO_ORIGINAL": (2006, "no cleared original record for this refund, chargeback or second presentment"),
}
_REASON_BY_NUMBER: Final = {number: name for name, (number, _) in REASON_CODES.items()}


class ClearingFileError(InputError):
    """A clearing file (or a batch to be written) that breaks the format.

    ``reason_code`` is a name from :data:`REASON_CODES`; ``message`` says what
    was found; ``record_index`` locates it: when reading, the 0-based position
    of the message in the file (the header is 0, so it is DE 71 minus 1); when
    writing, the row of the batch.  ``None`` when no single record is at fault.
    The CLI maps it to exit code 2 (it is an :class:`InputError`).
    """

    def __init__(self, reason_code: str, message: str, record_index: int | None = None):
        if reason_code not in REASON_CODES:
            raise InvariantError(f"unknown clearing-file reason code {reason_code!r}")
        super().__init__(reason_code, message, record_index)
        self.reason_code = reason_code
        self.message = message
        self.record_index = record_index

    def __str__(self) -> str:
        where = "" if self.record_index is None else f" (record {self.record_index})"
        return f"{self.reason_code}: {self.message}{where}"


# --------------------------------------------------------------------------
# Format constants.
# --------------------------------------------------------------------------

MTI_PRESENTMENT: Final = 1240
MTI_CHARGEBACK: Final = 1442
MTI_FILE_CONTROL: Final = 1644
FUNC_FIRST_PRESENTMENT: Final = 200
FUNC_SECOND_PRESENTMENT: Final = 205
FUNC_FIRST_CHARGEBACK: Final = 450
FUNC_FILE_HEADER: Final = 697
FUNC_FILE_TRAILER: Final = 695
FUNC_MESSAGE_EXCEPTION: Final = 691
FUNC_FILE_REJECT: Final = 699

RECORD_KINDS: Final[Mapping[tuple[int, int], str]] = {
    (MTI_PRESENTMENT, FUNC_FIRST_PRESENTMENT): "first presentment",
    (MTI_PRESENTMENT, FUNC_SECOND_PRESENTMENT): "second presentment",
    (MTI_CHARGEBACK, FUNC_FIRST_CHARGEBACK): "first chargeback",
}
REJECT_KINDS: Final[Mapping[tuple[int, int], str]] = {
    (MTI_FILE_CONTROL, FUNC_MESSAGE_EXCEPTION): "message exception (record reject)",
    (MTI_FILE_CONTROL, FUNC_FILE_REJECT): "file reject",
}
CONTROL_KINDS: Final[Mapping[tuple[int, int], str]] = {
    (MTI_FILE_CONTROL, FUNC_FILE_HEADER): "file header",
    (MTI_FILE_CONTROL, FUNC_FILE_TRAILER): "file trailer",
}
MESSAGE_KINDS: Final[Mapping[tuple[int, int], str]] = {**CONTROL_KINDS, **RECORD_KINDS, **REJECT_KINDS}

ENCODINGS: Final = ("latin_1", "cp500")
MIN_RECORD_LENGTH: Final = 20  # bytes: MTI (4) + primary and secondary bitmap (16)
MAX_RECORD_LENGTH: Final = 6000  # bytes: cardutil's default MAX_VBS_RECORD_LENGTH
BLOCK_SIZE: Final = 1014
BLOCK_DATA: Final = 1012
PAD_BYTE: Final = 0x40
MAX_MESSAGES: Final = 99_999_999  # DE 71 and PDS 0306 are n8
MAX_AMOUNT_MINOR: Final = 10**12 - 1  # DE 4 is n12
MAX_AMOUNT_TOTAL: Final = 10**16 - 1  # PDS 0301 is n16
MAX_INSTITUTION_ID: Final = 10**11 - 1  # DE 93/94 and the PDS 0105 processor id are n..11
MAX_DETAIL_CHARS: Final = 200  # DE 72 text of a reject
_CHUNK_MESSAGES: Final = 1 << 16  # messages coded at once: bounds the (messages x width) temporaries
FIRST_YEAR: Final = 2000
LAST_YEAR: Final = 2068  # YY >= 69 means 19YY to Python's %y (and so to cardutil)

PDS_FILE_ID: Final = 105
PDS_AMOUNT_CHECKSUM: Final = 301
PDS_MESSAGE_COUNT: Final = 306
PDS_ERROR_INDICATOR: Final = 5
PDS_SOURCE_MESSAGE_NUMBER: Final = 138
PDS_SOURCE_FILE_ID: Final = 280
_ERROR_SEVERITY_REJECT: Final = 1

# Every data element an IPM file may carry (cardutil's table): DE -> (length
# prefix digits, max length).  Prefix 0 means fixed length = max length.  The
# reader parses all of them (so it can step over fields it does not use) and
# keeps only those below.
_IPM_FIELDS: Final[Mapping[int, tuple[int, int]]] = {
    2: (2, 19), 3: (0, 6), 4: (0, 12), 5: (0, 12), 6: (0, 12), 9: (0, 8), 10: (0, 8),
    12: (0, 12), 14: (0, 4), 22: (0, 12), 23: (0, 3), 24: (0, 3), 25: (0, 4), 26: (0, 4),
    30: (0, 24), 31: (2, 23), 32: (2, 11), 33: (2, 11), 37: (0, 12), 38: (0, 6), 40: (0, 3),
    41: (0, 8), 42: (0, 15), 43: (2, 99), 48: (3, 999), 49: (0, 3), 50: (0, 3), 51: (0, 3),
    54: (3, 999), 55: (3, 255), 62: (3, 999), 63: (3, 16), 71: (0, 8), 72: (3, 999),
    73: (0, 6), 93: (2, 11), 94: (2, 11), 95: (2, 10), 100: (2, 11), 105: (3, 999),
    111: (3, 999), 123: (3, 999), 124: (3, 999), 125: (3, 999), 127: (3, 999),
}
_WANTED: Final = frozenset({2, 3, 4, 12, 24, 25, 26, 31, 38, 49, 71, 93, 94})
_WANTED_CONTROL: Final = frozenset({48, 72})  # kept for 1644 messages only
_RECORD_FIELDS: Final = (2, 3, 4, 12, 24, 26, 31, 38, 49, 71, 93, 94)  # mandatory in a record

_AR: Final = np.arange(1024, dtype=np.int64)
_FOUR_DIGITS: Final = np.frombuffer("".join(f"{i:04d}" for i in range(10_000)).encode(), np.uint8).reshape(-1, 4)
_TEN_TO: Final = 10 ** np.arange(19, dtype=np.int64)
_TO_CP500: Final = np.frombuffer(bytes(range(256)).decode("latin_1").encode("cp500"), np.uint8).copy()
_FROM_CP500: Final = np.empty(256, np.uint8)
_FROM_CP500[_TO_CP500] = np.arange(256, dtype=np.uint8)
_DAYS_IN_MONTH: Final = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)
_SECONDS_PER_DAY: Final = 86_400


def _known_bitmap() -> np.ndarray:
    bitmap = np.zeros(16, np.uint8)
    for de in (1, *_IPM_FIELDS):
        bitmap[(de - 1) // 8] |= 0x80 >> ((de - 1) % 8)
    return bitmap


_KNOWN_BITMAP: Final = _known_bitmap()


# --------------------------------------------------------------------------
# Small vectorised helpers: ASCII digit matrices <-> integers.
# --------------------------------------------------------------------------


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative int64 values below 10**width -> (n, width) uint8 ASCII digits, zero-padded."""
    out = np.empty((len(values), width), np.uint8)
    rest = values
    for end in range(width, 0, -4):  # four digits per division, from a lookup table
        rest, group = np.divmod(rest, 10_000)
        out[:, max(end - 4, 0) : end] = _FOUR_DIGITS[group, max(4 - end, 0) :]
    return out


def _is_digits(mat: np.ndarray, lens: np.ndarray | None = None) -> np.ndarray:
    """Rows of ``mat`` whose first ``lens`` bytes (all, if None) are ASCII digits."""
    digit = (mat - np.uint8(48)) < 10  # uint8 arithmetic wraps: bytes below "0" become large
    if lens is not None:
        digit |= _AR[: mat.shape[1]] >= lens[:, None]
    return digit.all(axis=1)


def _to_int(mat: np.ndarray, ok: np.ndarray | None = None) -> np.ndarray:
    """(n, w) left-aligned ASCII digits, NUL-padded -> int64; -1 where not ``ok``.

    Rows marked ``ok`` (all rows if None) must hold at most 18 digits and only NULs after them.
    """
    n, width = mat.shape
    if width == 0 or n == 0:
        return np.full(n, -1, np.int64)
    digit = mat.astype(np.int64) - 48
    padding = mat == 0
    digit[padding] = 0
    value = (digit @ _TEN_TO[width - 1 :: -1]) // _TEN_TO[padding.sum(axis=1)]
    return value if ok is None else np.where(ok, value, -1)


def _first(bad: np.ndarray) -> int | None:
    hits = np.flatnonzero(bad)
    return int(hits[0]) if hits.size else None


def _text(mat: np.ndarray, row: int, length: int | None = None) -> str:
    raw = mat[row] if length is None else mat[row, :length]
    return bytes(raw).decode("latin_1")


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


_SHOWN: Final = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0x100))}


def _shown(text: str) -> str:
    """``text`` safe for a terminal: every character outside printable ASCII becomes ``\\xNN``.

    Bytes from a clearing file (decoded as latin_1) may hold control characters;
    printed raw, an escape sequence would drive the user's terminal.
    """
    return text.translate(_SHOWN)


def _quoted(value: Any) -> str:
    """A column value quoted for a message: ``'123'``, not numpy 2's ``np.bytes_(b'123')``."""
    return repr(bytes(value).decode("latin_1") if isinstance(value, bytes) else str(value))


def _bad_field(message: str, record_index: int | None = None) -> ClearingFileError:
    return ClearingFileError("BAD_FIELD", message, record_index)


# --------------------------------------------------------------------------
# Column conversion (attrs converters) and validation.
# --------------------------------------------------------------------------


def _int_column(name: str) -> Callable[[Any], np.ndarray]:
    def convert(values: Any) -> np.ndarray:
        array = np.asarray(values)
        if array.size == 0:
            return np.zeros(0, np.int64)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise _bad_field(f"column {name} must be a 1-d array of integers, got {array.dtype} {array.shape}")
        if array.dtype.kind == "u" and array.dtype.itemsize == 8 and int(array.max()) > 2**63 - 1:
            raise _bad_field(f"column {name} holds values beyond int64")
        return array.astype(np.int64, copy=False)

    return convert


def _bytes_column(name: str, width: int) -> Callable[[Any], np.ndarray]:
    def convert(values: Any) -> np.ndarray:
        array = np.asarray(values)
        if array.size == 0:
            return np.zeros(0, f"S{width}")
        if array.ndim != 1 or array.dtype.kind not in "SU":
            raise _bad_field(f"column {name} must be a 1-d array of strings or bytes, got {array.dtype}")
        if array.dtype.kind == "U":
            try:
                array = array.astype(f"S{array.dtype.itemsize // 4}")
            except UnicodeEncodeError:
                raise _bad_field(f"column {name} holds non-ASCII text") from None
        if array.dtype.itemsize > width:
            raw = np.ascontiguousarray(array).view(np.uint8).reshape(len(array), array.dtype.itemsize)
            row = _first((raw[:, width:] != 0).any(axis=1))
            if row is not None:
                raise _bad_field(f"{name} {_quoted(array[row])} is longer than {width} characters", row)
        return np.ascontiguousarray(array.astype(f"S{width}"))

    return convert


def _str_column(name: str) -> Callable[[Any], np.ndarray]:
    def convert(values: Any) -> np.ndarray:
        array = np.asarray(values)
        if array.size == 0:
            return np.zeros(0, "U1")
        if array.ndim != 1 or array.dtype.kind not in "SU":
            raise _bad_field(f"column {name} must be a 1-d array of strings, got {array.dtype}")
        return array.astype(str) if array.dtype.kind == "S" else array

    return convert


def _byte_matrix(column: np.ndarray) -> np.ndarray:
    """An ``S<w>`` column as an (n, w) uint8 matrix (a view)."""
    return column.view(np.uint8).reshape(len(column), column.dtype.itemsize)


def _check_range(values: np.ndarray, name: str, lo: int, hi: int) -> None:
    row = _first((values < lo) | (values > hi))
    if row is not None:
        raise _bad_field(f"{name} {int(values[row])} is outside [{lo}, {hi}]", row)


def _valid_local_time(t: np.ndarray) -> np.ndarray:
    """YYMMDDhhmmss int64 values that name a real second of 2000-2068 (bool, the shape of ``t``)."""
    t = np.asarray(t, np.int64)
    out = np.empty(t.shape, bool)
    _valid_local_times(np.ascontiguousarray(t).reshape(-1), out.reshape(-1))
    return out


# Compiled: these checks run on every record written and read, and took a whole-column
# numpy pass (and a temporary) per digit group or per byte of the field.
@numba.njit(cache=True, nogil=True)
def _valid_local_times(t, out):  # pragma: no cover - compiled
    for i in range(len(t)):
        v = t[i]
        ok = v >= 0
        if ok:
            year = v // 10**10 + 2000
            month = v // 10**8 % 100
            day = v // 10**6 % 100
            ok = (year <= LAST_YEAR and 1 <= month <= 12 and v // 10**4 % 100 < 24 and v // 100 % 100 < 60
                  and v % 100 < 60)
            if ok:
                leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
                ok = 1 <= day <= _DAYS_IN_MONTH[month] + (1 if leap and month == 2 else 0)
        out[i] = ok


def _leading_digits(column: np.ndarray) -> np.ndarray:
    """Per value of an ``S<w>`` column: how many ASCII digits it is, or -1 if anything but NULs follows them."""
    out = np.empty(len(column), np.int64)
    _digits_then_nul(_byte_matrix(column), out)
    return out


@numba.njit(cache=True, nogil=True)
def _digits_then_nul(mat, out):  # pragma: no cover - compiled
    """out[i]: how many ASCII digits row i of ``mat`` starts with, if only NULs follow them; else -1."""
    for i in range(mat.shape[0]):
        n = 0
        while n < mat.shape[1] and 48 <= mat[i, n] <= 57:
            n += 1
        for j in range(n, mat.shape[1]):
            if mat[i, j] != 0:
                n = -1
                break
        out[i] = n


def _validate_records(b: RecordBatch) -> None:
    """Raise BAD_FIELD (``record_index`` = batch row) at the first invalid value."""
    n = len(b.mti)
    for name in attrs.fields_dict(RecordBatch):
        column = getattr(b, name)
        if column is not None and len(column) != n:
            raise _bad_field(f"column {name} has {len(column)} rows, mti has {n}")
    known = np.zeros(n, bool)
    for mti, function_code in RECORD_KINDS:
        known |= (b.mti == mti) & (b.function_code == function_code)
    row = _first(~known)
    if row is not None:
        raise _bad_field(
            f"mti/function_code {int(b.mti[row])}/{int(b.function_code[row])} is not one of "
            f"{', '.join(f'{m}/{f}' for m, f in RECORD_KINDS)}",
            row,
        )
    row = _first(_leading_digits(b.pan) < 12)
    if row is not None:
        raise _bad_field(f"pan (DE 2) {_quoted(b.pan[row])} is not 12 to 19 digits", row)
    _check_range(b.processing_code, "processing_code (DE 3)", 0, 999_999)
    _check_range(b.amount_minor, "amount_minor (DE 4)", 0, MAX_AMOUNT_MINOR)
    _check_range(b.currency, "currency (DE 49)", 0, 999)
    row = _first(~_valid_local_time(b.local_time))
    if row is not None:
        raise _bad_field(
            f"local_time (DE 12) {int(b.local_time[row])} is not a YYMMDDhhmmss time in {FIRST_YEAR}-{LAST_YEAR}", row
        )
    _check_range(b.mcc, "mcc (DE 26)", 0, 9999)
    row = _first(_leading_digits(b.arn) != 23)
    if row is not None:
        raise _bad_field(f"arn (DE 31) {_quoted(b.arn[row])} is not 23 digits", row)
    auth = _byte_matrix(b.auth_code)
    row = _first(~(((auth >= 48) & (auth <= 57)) | ((auth >= 65) & (auth <= 90))).all(axis=1))
    if row is not None:
        raise _bad_field(f"auth_code (DE 38) {_quoted(b.auth_code[row])} is not 6 characters of 0-9 A-Z", row)
    _check_range(b.reason_code, "reason_code (DE 25)", 0, 9999)
    row = _first((b.mti == MTI_CHARGEBACK) & (b.reason_code == 0))
    if row is not None:
        raise _bad_field("a chargeback (1442/450) needs a non-zero reason_code (DE 25)", row)
    _check_range(b.originator_id, "originator_id (DE 94)", 0, MAX_INSTITUTION_ID)
    _check_range(b.destination_id, "destination_id (DE 93)", 0, MAX_INSTITUTION_ID)
    if b.message_number is not None:
        _check_range(b.message_number, "message_number (DE 71)", 1, MAX_MESSAGES)


# --------------------------------------------------------------------------
# The data model.
# --------------------------------------------------------------------------


@attrs.frozen(eq=False)
class RecordBatch:
    """Presentments and chargebacks as numpy columns, one row per record.

    Columns are converted (not copied when already of the right dtype) and
    validated on construction; an invalid value raises
    :class:`ClearingFileError` ``BAD_FIELD`` with ``record_index`` = the row.
    Do not mutate the arrays afterwards.

    * ``mti``, ``function_code``: a pair from :data:`RECORD_KINDS`:
      1240/200 first presentment, 1240/205 second presentment, 1442/450 first
      chargeback.
    * ``pan``: ``S19``, 12-19 digits (DE 2).
    * ``processing_code``: int, DE 3 as a number: 0 purchase, 200000 refund.
    * ``amount_minor``: int64 minor units (fen), 0 .. 10**12-1 (DE 4); a
      refund or chargeback is positive here, its direction is in the
      processing code / MTI.
    * ``currency``: numeric ISO 4217 (156 = CNY) (DE 49).
    * ``local_time``: int64 YYMMDDhhmmss local date and time of the purchase,
      years 2000-2068 (DE 12).  Convert simulated seconds with
      :func:`local_time_from_sim_seconds` and back with
      :func:`sim_seconds_from_local_time`.
    * ``mcc``: merchant category code 0-9999 (DE 26).
    * ``arn``: ``S23`` acquirer reference number, 23 digits (DE 31).
    * ``auth_code``: ``S6`` approval code, 6 of 0-9 A-Z (DE 38).
    * ``reason_code``: message reason code 0-9999 (DE 25), 0 = none;
      mandatory (non-zero) on a chargeback, e.g. 4837.
    * ``originator_id``: who sent the record: the acquirer for a presentment,
      the issuer for a chargeback (DE 94).
    * ``destination_id``: who it is for (DE 93).  Ids are 0 .. 10**11-1.
    * ``message_number``: DE 71 of the record in the file it was read from
      (``None`` for a batch not read from a file).  The writer ignores it and
      numbers messages 1, 2, 3, ... itself.
    """

    mti: np.ndarray = attrs.field(converter=_int_column("mti"))
    function_code: np.ndarray = attrs.field(converter=_int_column("function_code"))
    pan: np.ndarray = attrs.field(converter=_bytes_column("pan", 19))
    processing_code: np.ndarray = attrs.field(converter=_int_column("processing_code"))
    amount_minor: np.ndarray = attrs.field(converter=_int_column("amount_minor"))
    currency: np.ndarray = attrs.field(converter=_int_column("currency"))
    local_time: np.ndarray = attrs.field(converter=_int_column("local_time"))
    mcc: np.ndarray = attrs.field(converter=_int_column("mcc"))
    arn: np.ndarray = attrs.field(converter=_bytes_column("arn", 23))
    auth_code: np.ndarray = attrs.field(converter=_bytes_column("auth_code", 6))
    reason_code: np.ndarray = attrs.field(converter=_int_column("reason_code"))
    originator_id: np.ndarray = attrs.field(converter=_int_column("originator_id"))
    destination_id: np.ndarray = attrs.field(converter=_int_column("destination_id"))
    message_number: np.ndarray | None = attrs.field(
        default=None, converter=attrs.converters.optional(_int_column("message_number"))
    )

    def __attrs_post_init__(self) -> None:
        _validate_records(self)

    def __len__(self) -> int:
        return len(self.mti)

    @classmethod
    def empty(cls) -> RecordBatch:
        """A batch with no records."""
        zeros = np.zeros(0, np.int64)
        return cls(
            mti=zeros, function_code=zeros, pan=[], processing_code=zeros, amount_minor=zeros,
            currency=zeros, local_time=zeros, mcc=zeros, arn=[], auth_code=[], reason_code=zeros,
            originator_id=zeros, destination_id=zeros,
        )  # fmt: skip


def _check_rejects(r: RejectBatch) -> None:
    n = len(r.function_code)
    for name in attrs.fields_dict(RejectBatch):
        if len(getattr(r, name)) != n:
            raise _bad_field(f"column {name} has {len(getattr(r, name))} rows, function_code has {n}")
    for row in range(n):
        function_code = int(r.function_code[row])
        if function_code not in (FUNC_MESSAGE_EXCEPTION, FUNC_FILE_REJECT):
            raise _bad_field(f"reject function_code {function_code} is not 691 or 699", row)
        if r.reason_code[row] not in REASON_CODES:
            raise _bad_field(f"reject reason_code {_quoted(r.reason_code[row])} is not in REASON_CODES", row)
        file_id = str(r.source_file_id[row])
        if len(file_id) != 25 or not all(c.isascii() and (c.isdigit() or c.isupper()) for c in file_id):
            raise _bad_field(f"source_file_id {file_id!r} is not 25 characters of 0-9 A-Z", row)
        number, arn = int(r.source_message_number[row]), bytes(r.arn[row])
        if function_code == FUNC_MESSAGE_EXCEPTION:
            if not 1 <= number <= MAX_MESSAGES:
                raise _bad_field(f"source_message_number {number} of a 691 is outside [1, {MAX_MESSAGES}]", row)
            if arn and not (len(arn) == 23 and arn.isdigit()):
                raise _bad_field(f"arn {arn!r} is neither empty nor 23 digits", row)
        elif number != 0 or arn:
            raise _bad_field("a 699 file reject has source_message_number 0 and an empty arn", row)
        detail = str(r.detail[row])
        if len(detail) > MAX_DETAIL_CHARS or not all(" " <= c <= "~" for c in detail):
            raise _bad_field(f"detail must be at most {MAX_DETAIL_CHARS} printable ASCII characters", row)


@attrs.frozen(eq=False)
class RejectBatch:
    """Reject messages as columns, one row per 1644/691 or 1644/699.

    * ``function_code``: 691 = one record rejected (message exception),
      699 = the whole file rejected.
    * ``reason_code``: names from :data:`REASON_CODES` (str).
    * ``source_file_id``: the rejected file's id (PDS 0105), 25 of 0-9 A-Z.
    * ``source_message_number``: DE 71 of the rejected record; 0 for a 699.
    * ``arn``: ``S23``, the rejected record's ARN, or empty (always for 699).
    * ``detail``: free text, at most 200 printable ASCII characters (DE 72).

    Invalid values raise :class:`ClearingFileError` ``BAD_FIELD``.
    """

    function_code: np.ndarray = attrs.field(converter=_int_column("function_code"))
    reason_code: np.ndarray = attrs.field(converter=_str_column("reason_code"))
    source_file_id: np.ndarray = attrs.field(converter=_str_column("source_file_id"))
    source_message_number: np.ndarray = attrs.field(converter=_int_column("source_message_number"))
    arn: np.ndarray = attrs.field(converter=_bytes_column("arn", 23))
    detail: np.ndarray = attrs.field(converter=_str_column("detail"))

    def __attrs_post_init__(self) -> None:
        _check_rejects(self)

    def __len__(self) -> int:
        return len(self.function_code)

    @classmethod
    def empty(cls) -> RejectBatch:
        """No rejects."""
        return cls(function_code=[], reason_code=[], source_file_id=[], source_message_number=[], arn=[], detail=[])


def _check_int(value: Any, name: str, lo: int, hi: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
        raise _bad_field(f"{name} {value!r} is not an integer in [{lo}, {hi}]")


def _check_date(value: Any, name: str) -> None:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise _bad_field(f"{name} {value!r} is not a datetime.date")
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise _bad_field(f"{name} {value} is outside {FIRST_YEAR}-{LAST_YEAR} (YYMMDD in PDS 0105)")


@attrs.frozen
class FileHeader:
    """What the 1644/697 file header says.

    ``sender_id`` and ``receiver_id`` (0 .. 10**11-1) go to DE 94 and DE 93;
    ``business_date`` is the file reference date (2000-2068);
    ``file_sequence`` (0-99999) tells apart the files a sender writes on one
    date and ``file_type`` (0-999) is the IPM file type.  Together they make
    the 25-digit :attr:`file_id` (PDS 0105).  Invalid values raise
    :class:`ClearingFileError` ``BAD_FIELD``.
    """

    sender_id: int
    receiver_id: int
    business_date: dt.date
    file_sequence: int
    file_type: int = 1

    def __attrs_post_init__(self) -> None:
        _check_int(self.sender_id, "sender_id", 0, MAX_INSTITUTION_ID)
        _check_int(self.receiver_id, "receiver_id", 0, MAX_INSTITUTION_ID)
        _check_date(self.business_date, "business_date")
        _check_int(self.file_sequence, "file_sequence", 0, 99_999)
        _check_int(self.file_type, "file_type", 0, 999)

    @property
    def file_id(self) -> str:
        """PDS 0105: file type (3) + business date YYMMDD (6) + sender (11) + sequence (5)."""
        return f"{self.file_type:03d}{self.business_date:%y%m%d}{self.sender_id:011d}{self.file_sequence:05d}"


@attrs.frozen
class FileTrailer:
    """What the 1644/695 file trailer says (the reader checks it against the file).

    ``message_count``: PDS 0306, every message including header and trailer.
    ``amount_total_minor``: PDS 0301, the sum of DE 4 over every message, in
    minor units, modulo 10^16 (credits add like debits: a checksum, not a net amount).
    """

    file_id: str
    message_count: int
    amount_total_minor: int


@attrs.frozen(eq=False)
class ClearingFile:
    """A clearing file read and validated by :func:`read_file`."""

    header: FileHeader
    batch: RecordBatch
    rejects: RejectBatch
    trailer: FileTrailer
    blocked: bool
    encoding: str


# --------------------------------------------------------------------------
# Time: simulated seconds <-> DE 12.
# --------------------------------------------------------------------------


def _each_in_span(values: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn(values)`` for an elementwise ``fn`` of int64 values. A run's times fall on few days:
    when the values span fewer integers than there are values, ``fn`` is worked out once
    per integer of the span and looked up."""
    if values.ndim == 1 and len(values) > 1:
        lo, hi = int(values.min()), int(values.max())
        if hi - lo < len(values):
            return fn(np.arange(lo, hi + 1, dtype=np.int64))[values - lo]
    return fn(values)


def _yymmdd(days: np.ndarray, day1_date: dt.date) -> np.ndarray:
    """Per day number from day 1: YYMMDD as (year - 2000) * 10**4 + month * 100 + day (the year
    is `yymmdd // 10**4 + 2000`, before 2000 too: month and day make 101 to 1231)."""
    dates = np.datetime64(day1_date, "D") + days.astype("m8[D]")
    year = dates.astype("M8[Y]").astype(np.int64) + 1970
    month = dates.astype("M8[M]").astype(np.int64) % 12 + 1
    day = (dates - dates.astype("M8[M]").astype("M8[D]")).astype(np.int64) + 1
    return ((year - 2000) * 100 + month) * 100 + day


def local_time_from_sim_seconds(sim_seconds: Any, day1_date: dt.date) -> np.ndarray:
    """Simulated seconds from 00:00 of day 1 -> int64 YYMMDDhhmmss (DE 12).

    ``day1_date`` is the calendar date of scenario day 1.  Raises
    :class:`ClearingFileError` ``BAD_FIELD`` for a time outside 2000-2068.
    """
    seconds = np.asarray(sim_seconds, np.int64)
    days, second_of_day = np.divmod(seconds, _SECONDS_PER_DAY)
    yymmdd = _each_in_span(days, lambda d: _yymmdd(d, day1_date))
    year = yymmdd // 10**4 + 2000
    row = _first(np.atleast_1d((year < FIRST_YEAR) | (year > LAST_YEAR)))
    if row is not None:
        value = int(np.atleast_1d(seconds)[row])
        raise _bad_field(f"simulated time {value} s is outside {FIRST_YEAR}-{LAST_YEAR}", row)
    hour, rest = np.divmod(second_of_day, 3600)
    minute, second = np.divmod(rest, 60)
    return ((yymmdd * 100 + hour) * 100 + minute) * 100 + second


def sim_seconds_from_local_time(local_time: Any, day1_date: dt.date) -> np.ndarray:
    """int64 YYMMDDhhmmss (DE 12) -> simulated seconds from 00:00 of day 1.

    Raises :class:`ClearingFileError` ``BAD_FIELD`` for a value that is not a
    real date and time in 2000-2068.
    """
    t = np.asarray(local_time, np.int64)
    row = _first(np.atleast_1d(~_valid_local_time(t)))
    if row is not None:
        value = int(np.atleast_1d(t)[row])
        raise _bad_field(f"local_time {value} is not YYMMDDhhmmss in {FIRST_YEAR}-{LAST_YEAR}", row)

    def days_from_day1(yymmdd: np.ndarray) -> np.ndarray:  # any int64 in, valid dates or not
        months = (yymmdd // 10**4 + 30) * 12 + yymmdd // 100 % 100 - 1  # months since 1970-01
        dates = months.astype("M8[M]").astype("M8[D]") + (yymmdd % 100 - 1).astype("m8[D]")
        return (dates - np.datetime64(day1_date, "D")).astype(np.int64)

    days = _each_in_span(t // 10**6, days_from_day1)
    return days * _SECONDS_PER_DAY + (t // 10**4 % 100) * 3600 + (t // 100 % 100) * 60 + t % 100


# --------------------------------------------------------------------------
# Writer.
# --------------------------------------------------------------------------


@attrs.frozen(eq=False)
class _Field:
    """One data element of n messages: ASCII text, left-aligned; lens -1 = absent."""

    de: int
    values: np.ndarray  # uint8 (n, w)
    lens: np.ndarray  # int64 (n,)


def _fixed_digits(de: int, values: np.ndarray) -> _Field:
    width = _IPM_FIELDS[de][1]
    return _Field(de, _digits(values, width), np.full(len(values), width, np.int64))


def _texts(de: int, texts: Sequence[bytes | None]) -> _Field:
    lens = np.array([-1 if t is None else len(t) for t in texts], np.int64)
    values = np.zeros((len(texts), max(int(lens.max(initial=0)), 0)), np.uint8)
    for row, text in enumerate(texts):
        if text:
            values[row, : len(text)] = np.frombuffer(text, np.uint8)
    return _Field(de, values, lens)


def _encode(mti: np.ndarray, fields: Sequence[_Field], to_wire: np.ndarray | None) -> np.ndarray:
    """n messages -> their VBS records (length prefix + MTI + bitmap + fields) as uint8.

    Each message is laid out in one row of an (n, widest) matrix, every data
    element in a fixed column range, with a mask of the bytes actually sent
    (an absent field, the tail of a short variable field); the records are
    then the masked bytes in row-major order.
    """
    n = len(mti)
    fields = sorted(fields, key=lambda f: f.de)
    record_len = np.full(n, MIN_RECORD_LENGTH, np.int64)
    bitmap = np.zeros((n, 16), np.uint8)
    bitmap[:, 0] = 0x80  # bit 1: the secondary bitmap is always present
    for f in fields:
        present = f.lens >= 0
        record_len += np.where(present, _IPM_FIELDS[f.de][0] + f.lens, 0)
        bitmap[:, (f.de - 1) // 8] |= np.where(present, 0x80 >> ((f.de - 1) % 8), 0).astype(np.uint8)
    row = _first(record_len > MAX_RECORD_LENGTH)
    if row is not None:
        raise _bad_field(f"message would be {int(record_len[row])} bytes, above {MAX_RECORD_LENGTH}", row)
    width = 4 + MIN_RECORD_LENGTH + sum(_IPM_FIELDS[f.de][0] + f.values.shape[1] for f in fields)
    rows = np.zeros((n, width), np.uint8)
    sent = np.ones((n, width), bool)
    rows[:, 0:4] = record_len.astype(">u4").view(np.uint8).reshape(n, 4)
    rows[:, 4:8] = _digits(mti, 4)
    rows[:, 8:24] = bitmap
    col = 24
    for f in fields:
        prefix = _IPM_FIELDS[f.de][0]
        if prefix:
            rows[:, col : col + prefix] = _digits(np.maximum(f.lens, 0), prefix)
            sent[:, col : col + prefix] = (f.lens >= 0)[:, None]
            col += prefix
        w = f.values.shape[1]
        rows[:, col : col + w] = f.values
        sent[:, col : col + w] = _AR[:w] < f.lens[:, None]
        col += w
    if to_wire is not None:
        rows[:, 4:8] = to_wire[rows[:, 4:8]]
        rows[:, 24:] = to_wire[rows[:, 24:]]
    out = rows[sent]
    if len(out) != int(record_len.sum()) + 4 * n:
        raise InvariantError("IPM encoder: field lengths do not add up to the record lengths")
    return out


def _amount_total(amount_minor: np.ndarray) -> int:
    """Exact sum of int64 amounts below 10**12 (no int64 overflow up to 9e12 rows)."""
    high, low = np.divmod(amount_minor, 10**6)
    return int(high.sum()) * 10**6 + int(low.sum())


def _amount_checksum(total: int) -> int:
    """PDS 0301 of a file whose DE 4 amounts sum to `total`: the sum modulo 10^16."""
    return total % (MAX_AMOUNT_TOTAL + 1)


def _encode_records(batch: RecordBatch, first_message_number: int, to_wire: np.ndarray | None) -> np.ndarray:
    chunks = []
    for start in range(0, len(batch), _CHUNK_MESSAGES):
        rows = slice(start, start + _CHUNK_MESSAGES)
        pan = _byte_matrix(batch.pan[rows])
        n = len(pan)
        reason_code = batch.reason_code[rows]
        first = first_message_number + start
        fields = [
            _Field(2, pan, (pan != 0).sum(axis=1).astype(np.int64)),
            _fixed_digits(3, batch.processing_code[rows]),
            _fixed_digits(4, batch.amount_minor[rows]),
            _fixed_digits(12, batch.local_time[rows]),
            _fixed_digits(24, batch.function_code[rows]),
            _Field(25, _digits(reason_code, 4), np.where(reason_code != 0, 4, -1).astype(np.int64)),
            _fixed_digits(26, batch.mcc[rows]),
            _Field(31, _byte_matrix(batch.arn[rows]), np.full(n, 23, np.int64)),
            _Field(38, _byte_matrix(batch.auth_code[rows]), np.full(n, 6, np.int64)),
            _fixed_digits(49, batch.currency[rows]),
            _fixed_digits(71, np.arange(first, first + n, dtype=np.int64)),
            _fixed_digits(93, batch.destination_id[rows]),
            _fixed_digits(94, batch.originator_id[rows]),
        ]
        chunks.append(_encode(batch.mti[rows], fields, to_wire))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)


def _pds(*items: tuple[int, str]) -> bytes:
    return "".join(f"{tag:04d}{len(value):03d}{value}" for tag, value in items).encode("ascii")


def _one(de: int, value: bytes) -> _Field:
    return _texts(de, [value])


def write_file(
    header: FileHeader,
    batch: RecordBatch | None = None,
    *,
    rejects: RejectBatch | None = None,
    blocked: bool = False,
    encoding: str = "latin_1",
) -> bytes:
    """Encode a clearing file: header, the batch's records, the rejects, trailer.

    Messages are numbered (DE 71) 1, 2, 3, ... in that order; the trailer's
    message count and amount checksum are computed here from what is written.
    ``blocked=True`` writes 1014-blocked VBS; ``encoding`` is ``"latin_1"``
    (ASCII text, cardutil's default) or ``"cp500"`` (EBCDIC).

    Raises :class:`ClearingFileError` ``BAD_FIELD`` when the file would break
    a limit of the format (more than 99,999,999 messages, a message above
    6000 bytes; the amount checksum wraps at 10^16).  Batch values were validated
    when the batch was built.
    """
    if encoding not in ENCODINGS:
        raise _bad_field(f"encoding {encoding!r} is not one of {ENCODINGS}")
    batch = RecordBatch.empty() if batch is None else batch
    rejects = RejectBatch.empty() if rejects is None else rejects
    n_records, n_rejects = len(batch), len(rejects)
    message_count = n_records + n_rejects + 2
    if message_count > MAX_MESSAGES:
        raise _bad_field(f"{message_count} messages do not fit DE 71 / PDS 0306 (at most {MAX_MESSAGES})")
    amount_total = _amount_checksum(_amount_total(batch.amount_minor))
    to_wire = _TO_CP500 if encoding == "cp500" else None
    control = np.array([MTI_FILE_CONTROL])
    head = _encode(
        control,
        [
            _one(24, b"%03d" % FUNC_FILE_HEADER),
            _one(48, _pds((PDS_FILE_ID, header.file_id))),
            _one(71, b"%08d" % 1),
            _one(93, b"%011d" % header.receiver_id),
            _one(94, b"%011d" % header.sender_id),
        ],
        to_wire,
    )
    records = _encode_records(batch, 2, to_wire)
    reject_messages = _encode_rejects(rejects, 2 + n_records, to_wire)
    tail = _encode(
        control,
        [
            _one(24, b"%03d" % FUNC_FILE_TRAILER),
            _one(
                48,
                _pds(
                    (PDS_FILE_ID, header.file_id),
                    (PDS_AMOUNT_CHECKSUM, f"{amount_total:016d}"),
                    (PDS_MESSAGE_COUNT, f"{message_count:08d}"),
                ),
            ),
            _one(71, b"%08d" % message_count),
        ],
        to_wire,
    )
    end_of_file = np.zeros(4, np.uint8)
    vbs = np.concatenate([head, records, reject_messages, tail, end_of_file])
    return (_block(vbs) if blocked else vbs).tobytes()


def _encode_rejects(rejects: RejectBatch, first_message_number: int, to_wire: np.ndarray | None) -> np.ndarray:
    m = len(rejects)
    arn: list[bytes | None] = []
    pds: list[bytes | None] = []
    detail: list[bytes | None] = []
    for row in range(m):
        code = REASON_CODES[str(rejects.reason_code[row])][0]
        items = [(PDS_ERROR_INDICATOR, f"0000{_ERROR_SEVERITY_REJECT:02d}{code:04d}000")]
        if rejects.function_code[row] == FUNC_MESSAGE_EXCEPTION:
            items.append((PDS_SOURCE_MESSAGE_NUMBER, f"{int(rejects.source_message_number[row]):08d}"))
        items.append((PDS_SOURCE_FILE_ID, str(rejects.source_file_id[row])))
        pds.append(_pds(*items))
        arn.append(bytes(rejects.arn[row]) or None)
        detail.append(str(rejects.detail[row]).encode("ascii") or None)
    fields = [
        _fixed_digits(24, rejects.function_code),
        _texts(31, arn),
        _texts(48, pds),
        _fixed_digits(71, np.arange(first_message_number, first_message_number + m, dtype=np.int64)),
        _texts(72, detail),
    ]
    return _encode(np.full(m, MTI_FILE_CONTROL, np.int64), fields, to_wire)


def write_rejects(
    header: FileHeader, rejects: RejectBatch, *, blocked: bool = False, encoding: str = "latin_1"
) -> bytes:
    """A reject file: header, 1644/691 and 1644/699 messages, trailer (amount checksum 0).

    Same format, options and errors as :func:`write_file`, readable by
    :func:`read_file` (the rejects come back in ``ClearingFile.rejects``).
    """
    return write_file(header, None, rejects=rejects, blocked=blocked, encoding=encoding)


def _block(vbs: np.ndarray) -> np.ndarray:
    n_blocks = -(-len(vbs) // BLOCK_DATA)
    data = np.full(n_blocks * BLOCK_DATA, PAD_BYTE, np.uint8)
    data[: len(vbs)] = vbs
    blocks = np.full((n_blocks, BLOCK_SIZE), PAD_BYTE, np.uint8)
    blocks[:, :BLOCK_DATA] = data.reshape(n_blocks, BLOCK_DATA)
    return blocks.reshape(-1)


# --------------------------------------------------------------------------
# Reader, stage 1: container (1014 blocking, VBS framing).
# --------------------------------------------------------------------------


def _looks_blocked(data: bytes) -> bool:
    """1014-blocked?  A valid unblocked file ends in four zero bytes, never in x'4040'."""
    size = len(data)
    if size == 0:
        return False
    if size % BLOCK_SIZE == 0:
        tails = np.frombuffer(data, np.uint8).reshape(-1, BLOCK_SIZE)[:, BLOCK_DATA:]
        if (tails == PAD_BYTE).all():
            return True
    if size < BLOCK_SIZE or data[-4:] == b"\0\0\0\0":
        return False
    # x'4040' ending the first block, or (a damaged first block) ending the last of whole blocks
    return data[BLOCK_DATA:BLOCK_SIZE] == b"@@" or (size % BLOCK_SIZE == 0 and data[-2:] == b"@@")


def _unblock(data: bytes) -> tuple[bytes, ClearingFileError | None]:
    """1014-blocked bytes -> the VBS stream of the good blocks, and the first error."""
    n_blocks = len(data) // BLOCK_SIZE
    error = None
    if len(data) % BLOCK_SIZE:
        error = ClearingFileError(
            "BAD_BLOCKING", f"{len(data)} bytes is not a whole number of {BLOCK_SIZE}-byte blocks"
        )
    blocks = np.frombuffer(data, np.uint8, count=n_blocks * BLOCK_SIZE).reshape(n_blocks, BLOCK_SIZE)
    bad = _first((blocks[:, BLOCK_DATA:] != PAD_BYTE).any(axis=1))
    if bad is not None:
        error = ClearingFileError("BAD_BLOCKING", f"block {bad} (at byte {bad * BLOCK_SIZE}) does not end in x'4040'")
        blocks = blocks[:bad]
    return blocks[:, :BLOCK_DATA].tobytes(), error


_LENGTH: Final = struct.Struct(">I")


def _frame(vbs: bytes, blocked: bool) -> tuple[np.ndarray, np.ndarray, ClearingFileError | None]:
    """VBS stream -> start and end offsets of each record, and the first error."""
    starts: list[int] = []
    ends: list[int] = []
    size, pos = len(vbs), 0
    error = None
    unpack, add_start, add_end = _LENGTH.unpack_from, starts.append, ends.append
    for k in range(size // 4 + 1):  # every record takes at least 4 bytes
        if pos + 4 > size:
            error = ClearingFileError(
                "TRUNCATED", f"the data ends at byte {size} without the zero-length end-of-file record", k
            )
            break
        (length,) = unpack(vbs, pos)
        if MIN_RECORD_LENGTH <= length <= MAX_RECORD_LENGTH and pos + 4 + length <= size:  # the usual case
            add_start(pos + 4)
            pos += 4 + length
            add_end(pos)
            continue
        if length == 0:
            tail = vbs[pos + 4 :]
            if tail and (not blocked or tail.count(PAD_BYTE) != len(tail)):
                error = ClearingFileError(
                    "TRAILING_DATA", f"{len(tail)} bytes after the end-of-file record at byte {pos}"
                )
            break
        if blocked and vbs.count(PAD_BYTE, pos) == size - pos:  # block padding where the end-of-file record was due
            error = ClearingFileError(
                "TRUNCATED", f"the data ends at byte {pos} without the zero-length end-of-file record "
                f"(only x'40' block padding follows)", k
            )
            break
        if not MIN_RECORD_LENGTH <= length <= MAX_RECORD_LENGTH:
            error = ClearingFileError(
                "BAD_LENGTH",
                f"length prefix {length} at byte {pos} is outside [{MIN_RECORD_LENGTH}, {MAX_RECORD_LENGTH}]",
                k,
            )
            break
        error = ClearingFileError(
            "TRUNCATED", f"record at byte {pos} declares {length} bytes, {size - pos - 4} remain", k
        )
        break
    return np.array(starts, np.int64), np.array(ends, np.int64), error


# --------------------------------------------------------------------------
# Reader, stage 2: messages (vectorised over messages sharing a bitmap).
# --------------------------------------------------------------------------


class _FirstFailure:
    """The failing message that comes first in the file, with what is wrong with it."""

    def __init__(self) -> None:
        self.row: int | None = None
        self.message = ""

    def add(self, bad: np.ndarray, rows: np.ndarray, describe: Callable[[int], str]) -> None:
        j = _first(bad)
        if j is not None and (self.row is None or rows[j] < self.row):
            self.row, self.message = int(rows[j]), describe(j)


def _gather(buf: np.ndarray, pos: np.ndarray, width: int, from_wire: np.ndarray | None) -> np.ndarray:
    mat = np.take(buf, pos[:, None] + _AR[:width], mode="clip")
    return mat if from_wire is None else from_wire[mat]


def _group_rows(bitmaps: np.ndarray) -> tuple[np.ndarray, int]:
    """Group number of each message by bitmap (messages of a group share one layout)."""
    halves = np.ascontiguousarray(bitmaps).view(">u8").astype(np.uint64)
    key = halves[:, 0] * np.uint64(0x9E3779B97F4A7C15) + halves[:, 1]  # wraps: a hash
    first_of, group_of = np.unique(key, return_index=True, return_inverse=True)[1:]
    if not (bitmaps == bitmaps[first_of[group_of]]).all():  # a hash collision: sort for real
        first_of, group_of = np.unique(halves, axis=0, return_index=True, return_inverse=True)[1:]
    return group_of.reshape(-1), len(first_of)


def _parse_chunk(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, from_wire: np.ndarray | None
) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]], _FirstFailure]:
    """Parse messages: MTI (-1 if not digits) and, per kept DE, (values, lens=-1 if absent)."""
    k = len(starts)
    failure = _FirstFailure()
    every = np.arange(k)
    mti_text = _gather(buf, starts, 4, from_wire)
    mti_ok = _is_digits(mti_text)
    failure.add(~mti_ok, every, lambda j: f"MTI {_text(mti_text, j)!r} is not 4 digits")
    mti = _to_int(mti_text, mti_ok)
    bitmaps = np.take(buf, starts[:, None] + _AR[4:20], mode="clip")
    failure.add(bitmaps[:, 0] < 0x80, every, lambda j: "bitmap bit 1 is off: IPM always has a secondary bitmap")
    unknown = bitmaps & ~_KNOWN_BITMAP

    def name_unknown(j: int) -> str:
        bits = np.unpackbits(unknown[j])
        return f"bitmap sets DE {int(np.flatnonzero(bits)[0]) + 1}, which is not an IPM data element"

    failure.add(unknown.any(axis=1), every, name_unknown)
    ok = mti_ok & (bitmaps[:, 0] >= 0x80) & ~unknown.any(axis=1)

    parts: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {de: [] for de in _WANTED | _WANTED_CONTROL}
    group_of, n_groups = _group_rows(bitmaps)
    for g in range(n_groups):
        rows = np.flatnonzero((group_of == g) & ok)
        if rows.size == 0:
            continue
        bits = np.unpackbits(bitmaps[rows[0]])
        plan = [int(b) + 1 for b in np.flatnonzero(bits) if b > 0]
        pos, end = starts[rows] + MIN_RECORD_LENGTH, ends[rows]
        alive = np.ones(len(rows), bool)
        control = mti[rows] == MTI_FILE_CONTROL
        for de in plan:
            prefix, max_len = _IPM_FIELDS[de]
            if prefix:
                short = alive & (pos + prefix > end)
                failure.add(short, rows, lambda j, de=de: f"DE {de}: its length prefix runs past the message end")
                alive &= ~short
                prefix_text = _gather(buf, pos, prefix, from_wire)
                not_digits = alive & ~_is_digits(prefix_text)
                failure.add(
                    not_digits, rows,
                    lambda j, de=de, t=prefix_text: f"DE {de}: length prefix {_text(t, j)!r} is not digits",
                )  # fmt: skip
                alive &= ~not_digits
                lens = np.maximum(_to_int(prefix_text, alive), 0)
                too_long = alive & (lens > max_len)
                failure.add(
                    too_long, rows,
                    lambda j, de=de, lens=lens, m=max_len: f"DE {de}: length {int(lens[j])} is above its maximum {m}",
                )  # fmt: skip
                alive &= ~too_long
                lens = np.where(alive, lens, 0)
                pos = pos + prefix
            else:
                lens = np.full(len(rows), max_len, np.int64)
            over = alive & (pos + lens > end)
            failure.add(
                over, rows,
                lambda j, de=de, lens=lens: f"DE {de} ({int(lens[j])} bytes) runs past the end of the message",
            )  # fmt: skip
            alive &= ~over
            keep = np.ones(len(rows), bool) if de in _WANTED else control if de in _WANTED_CONTROL else None
            if keep is not None and keep.any():
                width = int(lens[keep].max())
                values = _gather(buf, pos[keep], width, from_wire)
                values[_AR[:width] >= lens[keep][:, None]] = 0
                parts[de].append((rows[keep], values, lens[keep]))
            pos = pos + np.where(alive, lens, 0)
        left = alive & (pos != end)
        failure.add(
            left, rows,
            lambda j, pos=pos, end=end: f"{int(end[j] - pos[j])} bytes left over after the last data element",
        )  # fmt: skip

    fields: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for de, pieces in parts.items():
        width = max((p[1].shape[1] for p in pieces), default=0)
        values = np.zeros((k, width), np.uint8)
        lens = np.full(k, -1, np.int64)
        for rows, v, n in pieces:
            values[rows, : v.shape[1]] = v
            lens[rows] = n
        fields[de] = (values, lens)
    return mti, fields, failure


@attrs.define
class _Parsed:
    """Everything the reader could parse, up to the first container or syntax error."""

    size: int
    blocked: bool | None = None
    encoding: str | None = None
    mti: np.ndarray = attrs.field(factory=lambda: np.zeros(0, np.int64))
    fields: dict[int, tuple[np.ndarray, np.ndarray]] = attrs.field(factory=dict)
    error: ClearingFileError | None = None

    @property
    def n(self) -> int:
        return len(self.mti)

    def present(self, de: int) -> np.ndarray:
        return self.fields[de][1] >= 0

    def raw(self, de: int, row: int) -> str | None:
        values, lens = self.fields[de]
        return None if lens[row] < 0 else _text(values, row, int(lens[row]))


def _parse(data: bytes, blocked: bool | None) -> _Parsed:
    """Container and message syntax; never raises on bad bytes (errors are kept)."""
    parsed = _Parsed(size=len(data))
    parsed.blocked = _looks_blocked(data) if blocked is None else bool(blocked)
    vbs, error = _unblock(data) if parsed.blocked else (data, None)
    starts, ends, frame_error = _frame(vbs, parsed.blocked)
    error = error or frame_error
    empty_fields = {de: (np.zeros((0, 0), np.uint8), np.zeros(0, np.int64)) for de in _WANTED | _WANTED_CONTROL}
    parsed.fields = empty_fields
    if len(starts) == 0:
        parsed.error = error
        return parsed
    buf = np.frombuffer(vbs, np.uint8)
    first_mti = vbs[starts[0] : starts[0] + 4]
    if first_mti.isdigit():
        parsed.encoding, from_wire = "latin_1", None
    elif all(0xF0 <= c <= 0xF9 for c in first_mti):
        parsed.encoding, from_wire = "cp500", _FROM_CP500
    else:
        # The first message comes before any container error (which is where framing stopped).
        parsed.error = ClearingFileError(
            "BAD_MESSAGE", f"MTI bytes {first_mti.hex()} are neither ASCII nor EBCDIC digits", 0
        )
        return parsed
    mti_parts, field_parts = [], []
    for c0 in range(0, len(starts), _CHUNK_MESSAGES):
        mti, fields, failure = _parse_chunk(
            buf, starts[c0 : c0 + _CHUNK_MESSAGES], ends[c0 : c0 + _CHUNK_MESSAGES], from_wire
        )
        if failure.row is not None:
            # Every framed message lies before where a container error stopped the framing
            # (a bad length prefix, a bad block, the end): the file's first fault is this one.
            error = ClearingFileError("BAD_MESSAGE", failure.message, c0 + failure.row)
            mti = mti[: failure.row]
            fields = {de: (v[: failure.row], n[: failure.row]) for de, (v, n) in fields.items()}
        mti_parts.append(mti)
        field_parts.append(fields)
        if failure.row is not None:
            break
    parsed.mti = np.concatenate(mti_parts)
    for de in empty_fields:
        width = max(fields[de][0].shape[1] for fields in field_parts)
        values = np.zeros((parsed.n, width), np.uint8)
        lens = np.concatenate([fields[de][1] for fields in field_parts])
        at = 0
        for fields in field_parts:
            v = fields[de][0]
            values[at : at + len(v), : v.shape[1]] = v
            at += len(v)
        parsed.fields[de] = (values, lens)
    parsed.error = error
    return parsed


# --------------------------------------------------------------------------
# Reader, stage 3: the file (structure, fields, control totals).
# --------------------------------------------------------------------------


def _numbers(p: _Parsed, de: int, rows: np.ndarray, what: str) -> np.ndarray:
    """A mandatory all-digits data element of ``rows`` as int64, or MISSING/BAD_FIELD."""
    values, lens = p.fields[de]
    row = _first(lens[rows] < 0)
    if row is not None:
        raise ClearingFileError("MISSING_FIELD", f"DE {de} ({what}) is absent", int(rows[row]))
    mat, mat_lens = values[rows], lens[rows]
    row = _first(~_is_digits(mat, mat_lens) | (mat_lens == 0))
    if row is not None:
        raise _bad_field(f"DE {de} ({what}) {_text(mat, row, int(mat_lens[row]))!r} is not digits", int(rows[row]))
    return _to_int(mat)


def _kinds(p: _Parsed) -> np.ndarray:
    """DE 24 as int64, -1 where absent or not 3 digits."""
    values, lens = p.fields[24]
    return _to_int(values, (lens == 3) & _is_digits(values, np.maximum(lens, 0)))


def _check_structure(p: _Parsed, function_code: np.ndarray) -> None:
    n = p.n
    if n == 0:
        raise ClearingFileError("NO_HEADER", "the file holds no messages")

    def kind(row: int) -> str:
        return f"{int(p.mti[row])}/{_shown(p.raw(24, row) or '(no DE 24)')}"

    header = (p.mti == MTI_FILE_CONTROL) & (function_code == FUNC_FILE_HEADER)
    trailer = (p.mti == MTI_FILE_CONTROL) & (function_code == FUNC_FILE_TRAILER)
    if not header[0]:
        raise ClearingFileError("NO_HEADER", f"the first message is {kind(0)}, not 1644/697", 0)
    if n == 1 or not trailer[-1]:
        raise ClearingFileError("NO_TRAILER", f"the last message is {kind(n - 1)}, not 1644/695", n - 1)
    row = _first((header | trailer)[1:-1])
    if row is not None:
        raise ClearingFileError("MISPLACED_CONTROL", f"a {kind(row + 1)} between the records", row + 1)
    known = header | trailer
    for mti, code in (*RECORD_KINDS, *REJECT_KINDS):
        known |= (p.mti == mti) & (function_code == code)
    row = _first(~known)
    if row is not None:
        raise ClearingFileError("UNSUPPORTED_MESSAGE", f"message {kind(row)} is not cleared here", row)
    everyone = np.arange(n)
    message_number = _numbers(p, 71, everyone, "message number")
    row = _first(message_number != everyone + 1)
    if row is not None:
        raise ClearingFileError(
            "BAD_SEQUENCE", f"message number {int(message_number[row])} where {row + 1} was due", row
        )


def _pds_of(p: _Parsed, row: int) -> dict[int, str]:
    """DE 48 of a 1644 message as {tag: value}; BAD_FIELD when it is not tag(4) length(3) data."""
    text = p.raw(48, row) or ""
    found: dict[int, str] = {}
    at = 0
    while at < len(text):  # each PDS consumes at least 7 characters
        tag, length = text[at : at + 4], text[at + 4 : at + 7]
        if not (len(tag) == 4 and len(length) == 3 and _is_ascii_digits(tag + length)):
            raise _bad_field(f"DE 48 is not PDS tag(4) length(3) data at character {at}", row)
        value = text[at + 7 : at + 7 + int(length)]
        if len(value) != int(length):
            raise _bad_field(f"DE 48: PDS {tag} runs past the end of DE 48", row)
        if int(tag) in found:
            raise _bad_field(f"DE 48: PDS {tag} appears twice", row)
        found[int(tag)] = value
        at += 7 + int(length)
    return found


def _pds_value(pds: dict[int, str], tag: int, row: int, digits: int | None = None) -> str:
    if tag not in pds:
        raise ClearingFileError("MISSING_FIELD", f"PDS {tag:04d} is absent from DE 48", row)
    value = pds[tag]
    if digits is not None and not (len(value) == digits and _is_ascii_digits(value)):
        raise _bad_field(f"PDS {tag:04d} {value!r} is not {digits} digits", row)
    return value


def _decode_header(p: _Parsed) -> FileHeader:
    row = np.array([0])
    pds = _pds_of(p, 0)
    file_id = _pds_value(pds, PDS_FILE_ID, 0, digits=25)
    receiver_id = int(_numbers(p, 93, row, "receiver id")[0])
    sender_id = int(_numbers(p, 94, row, "sender id")[0])
    if int(file_id[9:20]) != sender_id:
        raise _bad_field(f"PDS 0105 processor id {file_id[9:20]} is not the sender in DE 94 ({sender_id})", 0)
    date = int(file_id[3:9]) * 10**6
    if not _valid_local_time(np.array([date]))[0]:
        raise _bad_field(f"PDS 0105 file reference date {file_id[3:9]} is not a YYMMDD date", 0)
    try:
        return FileHeader(
            sender_id=sender_id,
            receiver_id=receiver_id,
            business_date=dt.date(2000 + int(file_id[3:5]), int(file_id[5:7]), int(file_id[7:9])),
            file_sequence=int(file_id[20:25]),
            file_type=int(file_id[0:3]),
        )
    except ClearingFileError as e:
        raise _bad_field(e.message, 0) from None


def _decode_trailer(p: _Parsed) -> FileTrailer:
    row = p.n - 1
    pds = _pds_of(p, row)
    return FileTrailer(
        file_id=_pds_value(pds, PDS_FILE_ID, row),
        message_count=int(_pds_value(pds, PDS_MESSAGE_COUNT, row, digits=8)),
        amount_total_minor=int(_pds_value(pds, PDS_AMOUNT_CHECKSUM, row, digits=16)),
    )


def _as_bytes_column(p: _Parsed, de: int, rows: np.ndarray, width: int) -> np.ndarray:
    values = p.fields[de][0][rows]
    padded = np.zeros((len(rows), width), np.uint8)
    padded[:, : min(width, values.shape[1])] = values[:, :width]
    return padded.view(f"S{width}").reshape(-1)


def _decode_records(p: _Parsed, rows: np.ndarray) -> RecordBatch:
    for de in _RECORD_FIELDS:
        row = _first(~p.present(de)[rows])
        if row is not None:
            raise ClearingFileError("MISSING_FIELD", f"DE {de} is absent from a record", int(rows[row]))
    for de, what in ((2, "PAN"), (31, "ARN")):
        values, lens = p.fields[de]
        row = _first(~_is_digits(values[rows], lens[rows]))
        if row is not None:
            raise _bad_field(f"DE {de} ({what}) {p.raw(de, int(rows[row]))!r} is not digits", int(rows[row]))
    auth = p.fields[38][0][rows]
    row = _first((auth == 0).any(axis=1))  # a NUL would vanish in an S6 column
    if row is not None:
        raise _bad_field(f"DE 38 {p.raw(38, int(rows[row]))!r} holds a NUL byte", int(rows[row]))
    reason_values, reason_lens = p.fields[25]
    has_reason = reason_lens[rows] >= 0
    row = _first(has_reason & ~_is_digits(reason_values[rows], reason_lens[rows]))
    if row is not None:
        raise _bad_field(f"DE 25 {p.raw(25, int(rows[row]))!r} is not digits", int(rows[row]))
    columns = dict(
        mti=p.mti[rows],
        function_code=_numbers(p, 24, rows, "function code"),
        pan=_as_bytes_column(p, 2, rows, 19),
        processing_code=_numbers(p, 3, rows, "processing code"),
        amount_minor=_numbers(p, 4, rows, "amount"),
        currency=_numbers(p, 49, rows, "currency"),
        local_time=_numbers(p, 12, rows, "local date and time"),
        mcc=_numbers(p, 26, rows, "MCC"),
        arn=_as_bytes_column(p, 31, rows, 23),
        auth_code=_as_bytes_column(p, 38, rows, 6),
        reason_code=np.maximum(_to_int(reason_values[rows], has_reason), 0),
        originator_id=_numbers(p, 94, rows, "originator id"),
        destination_id=_numbers(p, 93, rows, "destination id"),
        message_number=rows + 1,
    )
    try:  # the batch's own validation; its record_index is a row of the batch
        return RecordBatch(**columns)
    except ClearingFileError as e:
        index = None if e.record_index is None else int(rows[e.record_index])
        raise ClearingFileError(e.reason_code, e.message, index) from None


def _decode_rejects(p: _Parsed, rows: np.ndarray, function_code: np.ndarray) -> RejectBatch:
    columns: dict[str, list[Any]] = {name: [] for name in attrs.fields_dict(RejectBatch)}
    for row in (int(r) for r in rows):
        pds = _pds_of(p, row)
        indicator = _pds_value(pds, PDS_ERROR_INDICATOR, row, digits=13)
        reason = _REASON_BY_NUMBER.get(int(indicator[6:10]))
        if reason is None:
            raise _bad_field(f"PDS 0005 error message code {indicator[6:10]} is not in REASON_CODES", row)
        code = int(function_code[row])
        number = 0
        if code == FUNC_MESSAGE_EXCEPTION:
            number = int(_pds_value(pds, PDS_SOURCE_MESSAGE_NUMBER, row, digits=8))
        elif PDS_SOURCE_MESSAGE_NUMBER in pds:
            raise _bad_field("a 699 file reject carries PDS 0138", row)
        arn = p.raw(31, row) or ""
        detail = p.raw(72, row) or ""
        if arn and not _is_ascii_digits(arn):  # checked here: a NUL would vanish in the S23 column
            raise _bad_field(f"DE 31 (ARN) {arn!r} is not digits", row)
        if not detail.isascii():
            raise _bad_field("DE 72 is not ASCII text", row)
        if "\0" in detail:  # a NUL would vanish in the str column
            raise _bad_field(f"DE 72 {detail!r} holds a NUL byte", row)
        columns["function_code"].append(code)
        columns["reason_code"].append(reason)
        source_file_id = _pds_value(pds, PDS_SOURCE_FILE_ID, row)
        if "\0" in source_file_id:  # a NUL would vanish in the str column
            raise _bad_field(f"PDS 0280 {source_file_id!r} holds a NUL byte", row)
        columns["source_file_id"].append(source_file_id)
        columns["source_message_number"].append(number)
        columns["arn"].append(arn.encode("latin_1"))
        columns["detail"].append(detail)
    if not rows.size:
        return RejectBatch.empty()
    try:
        return RejectBatch(**columns)
    except ClearingFileError as e:
        index = None if e.record_index is None else int(rows[e.record_index])
        raise ClearingFileError(e.reason_code, e.message, index) from None


def _build(p: _Parsed) -> ClearingFile:
    """Validate the parsed messages as a file and decode them; raises ClearingFileError."""
    if p.error is not None:
        raise p.error
    function_code = _kinds(p)
    _check_structure(p, function_code)
    header = _decode_header(p)
    trailer = _decode_trailer(p)
    is_record = np.zeros(p.n, bool)
    for mti, code in RECORD_KINDS:
        is_record |= (p.mti == mti) & (function_code == code)
    records = np.flatnonzero(is_record)
    rejects = np.flatnonzero(~is_record)[1:-1]
    batch = _decode_records(p, records)
    reject_batch = _decode_rejects(p, rejects, function_code)
    if trailer.file_id != header.file_id:
        raise ClearingFileError(
            "FILE_ID_MISMATCH", f"trailer file id {trailer.file_id!r}, header file id {header.file_id!r}", p.n - 1
        )
    if trailer.message_count != p.n:
        raise ClearingFileError(
            "COUNT_MISMATCH", f"the trailer counts {trailer.message_count} messages, the file holds {p.n}", p.n - 1
        )
    with_amount = np.flatnonzero(p.present(4))  # the records, and any other message that carries DE 4
    amount_total = _amount_checksum(_amount_total(_numbers(p, 4, with_amount, "amount")))
    if trailer.amount_total_minor != amount_total:
        raise ClearingFileError(
            "AMOUNT_MISMATCH",
            f"the trailer's amount checksum is {trailer.amount_total_minor}, DE 4 sums to {amount_total}",
            p.n - 1,
        )
    return ClearingFile(header, batch, reject_batch, trailer, bool(p.blocked), str(p.encoding))


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"clearing file data must be bytes, got {type(data).__name__}")
    return data


def read_file(data: bytes, *, blocked: bool | None = None) -> ClearingFile:
    """Decode and validate a clearing file.

    ``blocked``: ``None`` detects 1014 blocking, ``True``/``False`` insists.
    The encoding (latin_1 or cp500) is detected from the first MTI.  Control
    totals are recomputed: the trailer must repeat the header's file id and
    count every message (PDS 0306) and sum every DE 4 (PDS 0301).

    Raises :class:`ClearingFileError` (reason codes in :data:`REASON_CODES`)
    for anything wrong with the bytes, and ``TypeError`` if ``data`` is not
    bytes-like.
    """
    return _build(_parse(_as_bytes(data), blocked))


# --------------------------------------------------------------------------
# Inspect.
# --------------------------------------------------------------------------

INSPECT_RECORDS_KEPT: Final = 100


@attrs.frozen
class InspectReport:
    """What ``clearing-sim inspect`` shows about a file, valid or not.

    Counts, totals and first records describe the messages that could be
    parsed (all of them for a valid file); ``amount_total_minor`` is
    recomputed from their DE 4.  ``reason_code`` is ``None`` for a valid file.
    """

    size_bytes: int
    blocked: bool | None
    encoding: str | None
    messages_parsed: int
    header: FileHeader | None
    trailer: FileTrailer | None
    counts: tuple[tuple[int, int, int], ...]  # (mti, function code or -1, messages), in file order
    amount_total_minor: int
    first_records: tuple[Mapping[str, str], ...]  # at most INSPECT_RECORDS_KEPT
    reason_code: str | None
    reason: str | None
    record_index: int | None

    @property
    def ok(self) -> bool:
        return self.reason_code is None


_RECORD_COLUMNS: Final = (
    ("msg", 71), ("type", 24), ("pan", 2), ("proc", 3), ("amount_minor", 4), ("cur", 49),
    ("local_time", 12), ("mcc", 26), ("arn", 31), ("auth", 38), ("reason", 25), ("from", 94), ("to", 93),
)  # fmt: skip


def inspect_file(data: bytes) -> InspectReport:
    """Summarise a clearing file and validate it; never raises on bad bytes.

    Raises only ``TypeError`` when ``data`` is not bytes-like.
    """
    data = _as_bytes(data)
    p = _parse(data, None)
    error: ClearingFileError | None = None
    try:
        _build(p)
    except ClearingFileError as e:
        error = e
    function_code = _kinds(p)
    header = trailer = None
    if p.n and p.mti[0] == MTI_FILE_CONTROL and function_code[0] == FUNC_FILE_HEADER:
        try:
            header = _decode_header(p)
        except ClearingFileError:
            pass
    if p.n > 1 and p.mti[-1] == MTI_FILE_CONTROL and function_code[-1] == FUNC_FILE_TRAILER:
        try:
            trailer = _decode_trailer(p)
        except ClearingFileError:
            pass
    counts: dict[tuple[int, int], int] = {}
    for mti, code in zip(p.mti.tolist(), function_code.tolist(), strict=True):
        counts[(mti, code)] = counts.get((mti, code), 0) + 1
    is_record = np.zeros(p.n, bool)
    for mti, code in RECORD_KINDS:
        is_record |= (p.mti == mti) & (function_code == code)
    amounts, amount_lens = p.fields[4]
    summed = (amount_lens == 12) & _is_digits(amounts, np.maximum(amount_lens, 0))
    amount_total = _amount_total(_to_int(amounts[summed])) if summed.any() else 0
    first = []
    for row in np.flatnonzero(is_record)[:INSPECT_RECORDS_KEPT].tolist():
        record = {name: _shown(p.raw(de, row) or "") for name, de in _RECORD_COLUMNS}
        record["type"] = f"{int(p.mti[row])}/{record['type']}"
        first.append(record)
    return InspectReport(
        size_bytes=p.size,
        blocked=p.blocked,
        encoding=p.encoding,
        messages_parsed=p.n,
        header=header,
        trailer=trailer,
        counts=tuple((mti, code, count) for (mti, code), count in counts.items()),
        amount_total_minor=amount_total,
        first_records=tuple(first),
        reason_code=None if error is None else error.reason_code,
        reason=None if error is None else error.message,
        record_index=None if error is None else error.record_index,
    )


def _masked_pan(pan: str) -> str:
    return pan if len(pan) < 12 else pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def _local_time_text(value: str) -> str:
    if len(value) != 12 or not _is_ascii_digits(value):
        return value
    return f"20{value[0:2]}-{value[2:4]}-{value[4:6]} {value[6:8]}:{value[8:10]}:{value[10:12]}"


def format_inspect(report: InspectReport, n_first: int = 5) -> str:
    """The report as text for a terminal: header, counts, totals, first records, verdict.

    PANs are masked (first 6 and last 4 digits); amounts are minor units.
    """
    layout = "unknown layout" if report.blocked is None else "1014-blocked VBS" if report.blocked else "VBS"
    lines = [f"clearing file: {report.size_bytes:,} bytes, {layout}, encoding {report.encoding or 'unknown'}"]
    h = report.header
    if h is None:
        lines.append("header:  (no valid 1644/697 file header)")
    else:
        lines.append(
            f"header:  file id {h.file_id}  sender {h.sender_id} -> receiver {h.receiver_id}  "
            f"business date {h.business_date.isoformat()}  sequence {h.file_sequence}  type {h.file_type:03d}"
        )
    t = report.trailer
    if t is None:
        lines.append("trailer: (no valid 1644/695 file trailer)")
    else:
        lines.append(
            f"trailer: file id {_shown(t.file_id)}  messages {t.message_count:,}  "
            f"amount checksum {t.amount_total_minor:,}"
        )
    lines.append(f"messages parsed: {report.messages_parsed:,}")
    for mti, code, count in report.counts:
        label = MESSAGE_KINDS.get((mti, code), "unsupported")
        lines.append(f"  {mti:04d}/{code if code >= 0 else '---'}  {label:<34} {count:>12,}")
    lines.append(f"recomputed amount total (DE 4, minor units): {report.amount_total_minor:,}")
    shown = report.first_records[: max(n_first, 0)]
    if shown:
        lines.append(f"first {len(shown)} record(s):")
        header_row = ("msg", "type", "pan", "proc", "amount_minor", "cur", "local_time", "mcc", "arn", "auth",
                      "reason", "from", "to")  # fmt: skip
        rows = [header_row]
        for r in shown:
            rows.append(
                (
                    r["msg"].lstrip("0") or "0", r["type"], _masked_pan(r["pan"]), r["proc"],
                    r["amount_minor"].lstrip("0") or "0", r["cur"], _local_time_text(r["local_time"]), r["mcc"],
                    r["arn"], r["auth"], r["reason"] or "-", r["from"].lstrip("0") or "0", r["to"].lstrip("0") or "0",
                )  # fmt: skip
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header_row))]
        right = {0, 4}
        for row in rows:
            cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
            lines.append("  " + "  ".join(cells).rstrip())
    if report.ok:
        lines.append("validation: OK")
    else:
        where = "" if report.record_index is None else f" (message {report.record_index + 1})"  # DE 71
        lines.append(f"validation: REJECTED {report.reason_code}: {_shown(report.reason or '')}{where}")
    return "\n".join(lines)
