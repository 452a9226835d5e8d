"""Exact netting of interbank obligations: a pure function of integer arrays.

What this module owns
    Turning a batch of transfers -- ``payer[k]`` pays ``amount[k]`` to
    ``payee[k]`` -- into

    * multilateral net positions, one per participant
      (:func:`multilateral_positions`),
    * the gross bilateral obligation matrix, row pays column
      (:func:`bilateral_obligations`),
    * multilateral net positions per key, e.g. per settlement window or per
      fee type, in one pass (:func:`multilateral_positions_by_key`),

    and the zero-sum invariant that every set of net positions must satisfy
    (:func:`check_zero_sum`, :class:`NettingInvariantError`).

Units
    Amounts are integer minor units (fen for CNY) and every result is in the
    same units, as exact ``int64``.  Participant ids and keys are integers in
    ``[0, n)``; mapping names to ids is the caller's business.  Negative
    amounts are allowed: they are reversals (a refund or a chargeback can be
    passed either as a negative amount or with payer and payee swapped; both
    give the same net positions).

What it must never do
    * import SimPy or know about windows, cut-offs, fees or defaults: it nets
      whatever arrays it is given;
    * use floating point for money, or wrap silently on int64 overflow: when
      the sum of ``|amount|`` reaches ``2**63`` a result could exceed int64 and
      :class:`OverflowError` is raised instead;
    * read an id outside ``[0, n)``: such ids raise :class:`ValueError` before
      anything is written;
    * keep state between calls or use randomness.

Speed
    Large batches go through a small numba kernel that touches each transfer
    once (ids are range-checked and the amount bound for the overflow guard is
    taken in the same loop).  numba is imported and the kernel compiled only on
    the first large call, and the compiled code is cached on disk, so a CLI run
    that nets a few thousand records never pays for it: batches below
    ``_KERNEL_MIN_TRANSFERS`` use an exact numpy path (``np.add.at`` on int64).
    If numba cannot be imported the numpy path is used for every size.
"""

from __future__ import annotations

import functools
import numbers
from typing import Callable

import numpy as np

__all__ = [
    "NettingInvariantError",
    "bilateral_obligations",
    "check_zero_sum",
    "multilateral_positions",
    "multilateral_positions_by_key",
]

_INT64_LIMIT = 2**63  # |sum| must stay strictly below this

# Below this many transfers the numpy path is used: it is exact and, at this
# size, faster than importing numba and compiling (or loading) a kernel.
_KERNEL_MIN_TRANSFERS = 100_000

# Exact |amount| totals are summed in chunks this long, so that the uint64
# partial sums of 32-bit halves cannot wrap.
_ABS_TOTAL_CHUNK = 2**31


class NettingInvariantError(Exception):
    """A set of net positions broke an invariant (they do not sum to zero)."""


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _check_count(name: str, value: object) -> int:
    """Return ``value`` as a positive Python int, or raise ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    value = int(value)
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


def _as_1d(name: str, values: object) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0 and not isinstance(values, np.ndarray):
        array = np.asarray(values, dtype=np.int64)  # NumPy makes [] float64, yet it holds no float
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got {array.ndim}-D with shape {array.shape}")
    return array


def _as_ids(name: str, values: object) -> np.ndarray:
    """Return integer ids as int32 or int64 (range checked later, by the caller)."""
    array = _as_1d(name, values)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array of ids, got dtype {array.dtype}")
    if array.dtype == np.int64 or array.dtype == np.int32:
        return array
    if array.dtype == np.uint64 and array.size and int(array.max()) >= _INT64_LIMIT:
        k = int(np.argmax(array))
        raise ValueError(f"{name}[{k}] = {array[k]} is not an id in range")
    return array.astype(np.int64)


def _as_amounts(values: object) -> np.ndarray:
    """Return amounts as int64 minor units, or raise ValueError/OverflowError."""
    array = _as_1d("amount", values)
    if array.dtype.kind not in "iu":
        raise ValueError(
            f"amount must be an integer array of minor units (fen), got dtype {array.dtype}; "
            "money is never a float"
        )
    if array.dtype == np.uint64 and array.size and int(array.max()) >= _INT64_LIMIT:
        raise OverflowError("amount holds a value of 2**63 or more, which does not fit in int64")
    return array.astype(np.int64, copy=False)


def _check_lengths(**arrays: np.ndarray) -> int:
    lengths = {name: array.shape[0] for name, array in arrays.items()}
    if len(set(lengths.values())) != 1:
        shown = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"arrays must have the same length: {shown}")
    return next(iter(lengths.values()))


def _check_id_range(name: str, ids: np.ndarray, n: int, what: str) -> None:
    """Raise ValueError naming the first id outside [0, n); numpy path only."""
    if ids.size == 0:
        return
    if int(ids.min()) >= 0 and int(ids.max()) < n:
        return
    k = int(np.flatnonzero((ids < 0) | (ids >= n))[0])
    raise ValueError(f"{name}[{k}] = {ids[k]} is not a {what} id in [0, {n})")


# --------------------------------------------------------------------------
# Overflow guard
# --------------------------------------------------------------------------


def _abs_total(amount: np.ndarray) -> int:
    """Exact sum of |amount| as a Python int (the slow, rarely needed check)."""
    bits = amount.view(np.uint64)
    # Two's-complement magnitude in uint64 is exact even for -2**63.
    magnitude = np.where(amount < 0, ~bits + np.uint64(1), bits)
    total = 0
    for start in range(0, magnitude.shape[0], _ABS_TOTAL_CHUNK):
        chunk = magnitude[start : start + _ABS_TOTAL_CHUNK]
        total += int(np.sum(chunk >> np.uint64(32), dtype=np.uint64)) << 32
        total += int(np.sum(chunk & np.uint64(0xFFFFFFFF), dtype=np.uint64))
    return total


def _guard_overflow(amount: np.ndarray, amount_min: int, amount_max: int) -> None:
    """Raise OverflowError unless sum(|amount|) < 2**63.

    Every net position, every bilateral entry and every running sum inside the
    kernels is bounded by sum(|amount|), so below 2**63 nothing can wrap.  The
    cheap bound max|amount| * N settles almost every call; the exact sum is
    taken only when that bound is too big.
    """
    largest = max(abs(int(amount_min)), abs(int(amount_max)))
    if largest * amount.shape[0] < _INT64_LIMIT:
        return
    total = _abs_total(amount)
    if total >= _INT64_LIMIT:
        raise OverflowError(
            f"sum of |amount| over {amount.shape[0]} transfers is {total}, which reaches 2**63: "
            "a net position could exceed int64; split the batch"
        )


# --------------------------------------------------------------------------
# Kernels.  Written as plain Python over arrays so that numba can compile them
# unchanged; each returns the index of the first bad transfer (or -1) and the
# smallest and largest amount seen, for the overflow guard.
# --------------------------------------------------------------------------


def _multilateral_loop(payer, payee, amount, n):  # pragma: no cover - compiled
    out = np.zeros(n, np.int64)
    limit = np.uint64(n)
    amount_min = 0
    amount_max = 0
    for k in range(payer.shape[0]):
        p = payer[k]
        q = payee[k]
        # One unsigned compare per id: a negative id wraps to a huge uint64.
        if np.uint64(p) >= limit or np.uint64(q) >= limit:
            return out, k, amount_min, amount_max
        a = amount[k]
        amount_min = min(amount_min, a)
        amount_max = max(amount_max, a)
        out[p] -= a
        out[q] += a
    return out, -1, amount_min, amount_max


def _bilateral_loop(payer, payee, amount, n):  # pragma: no cover - compiled
    out = np.zeros((n, n), np.int64)
    limit = np.uint64(n)
    amount_min = 0
    amount_max = 0
    for k in range(payer.shape[0]):
        p = payer[k]
        q = payee[k]
        if np.uint64(p) >= limit or np.uint64(q) >= limit:
            return out, k, amount_min, amount_max
        a = amount[k]
        amount_min = min(amount_min, a)
        amount_max = max(amount_max, a)
        out[p, q] += a
    return out, -1, amount_min, amount_max


def _by_key_loop(payer, payee, amount, key, n_keys, n):  # pragma: no cover - compiled
    out = np.zeros((n_keys, n), np.int64)
    limit = np.uint64(n)
    key_limit = np.uint64(n_keys)
    amount_min = 0
    amount_max = 0
    for k in range(payer.shape[0]):
        p = payer[k]
        q = payee[k]
        w = key[k]
        if np.uint64(p) >= limit or np.uint64(q) >= limit or np.uint64(w) >= key_limit:
            return out, k, amount_min, amount_max
        a = amount[k]
        amount_min = min(amount_min, a)
        amount_max = max(amount_max, a)
        out[w, p] -= a
        out[w, q] += a
    return out, -1, amount_min, amount_max


@functools.cache
def _kernel(name: str) -> Callable | None:
    """The compiled kernel for ``name``, or None when numba is unavailable.

    numba is imported here, not at module import, so that importing the
    package (and every CLI command that never nets a large batch) stays fast.
    """
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a declared dependency
        return None
    loop = {
        "multilateral": _multilateral_loop,
        "bilateral": _bilateral_loop,
        "by_key": _by_key_loop,
    }[name]
    return numba.njit(cache=True, nogil=True)(loop)


def _use_kernel(n_transfers: int) -> bool:
    return n_transfers >= _KERNEL_MIN_TRANSFERS


def _raise_bad_id(k: int, **ids: tuple[np.ndarray, int, str]) -> None:
    """Name the bad id of transfer ``k`` reported by a kernel."""
    for name, (array, limit, what) in ids.items():
        value = int(array[k])
        if not 0 <= value < limit:
            raise ValueError(f"{name}[{k}] = {value} is not a {what} id in [0, {limit})")
    raise AssertionError(f"kernel reported transfer {k} but all its ids are in range")  # pragma: no cover


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _transfers(payer, payee, amount, n_participants, key=None, n_keys=None):
    """Checked inputs, in the order their errors are reported: (n, payer, payee, amount,
    number of transfers, key, n_keys); raises ValueError."""
    n = _check_count("n_participants", n_participants)
    if n_keys is not None:
        n_keys = _check_count("n_keys", n_keys)
    payer = _as_ids("payer", payer)
    payee = _as_ids("payee", payee)
    more = {}
    if key is not None:
        key = more["key"] = _as_ids("key", key)
    amount = _as_amounts(amount)
    n_transfers = _check_lengths(payer=payer, payee=payee, amount=amount, **more)
    return n, payer, payee, amount, n_transfers, key, n_keys


def _net(kind: str, kernel_args: tuple, numpy_path: Callable[[], np.ndarray], amount: np.ndarray,
         n_transfers: int, **ids: tuple[np.ndarray, int, str]) -> np.ndarray:
    """Run the compiled kernel (ids and overflow checked in its loop) or the numpy path."""
    kernel = _kernel(kind) if _use_kernel(n_transfers) else None
    if kernel is not None:
        result, bad, amount_min, amount_max = kernel(*kernel_args)
        if bad >= 0:
            _raise_bad_id(bad, **ids)
        _guard_overflow(amount, amount_min, amount_max)
        return result
    for name, (values, limit, what) in ids.items():
        _check_id_range(name, values, limit, what)
    if n_transfers:
        _guard_overflow(amount, amount.min(), amount.max())
    return numpy_path()


def multilateral_positions(payer, payee, amount, n_participants) -> np.ndarray:
    """Net position of each participant: receipts minus payments.

    Parameters
    ----------
    payer, payee : 1-D integer arrays of participant ids in ``[0, n_participants)``
        Transfer ``k`` moves ``amount[k]`` from ``payer[k]`` to ``payee[k]``.
    amount : 1-D integer array, minor units (fen)
        Negative amounts are reversals and are netted like any other amount.
    n_participants : int > 0

    Returns
    -------
    np.ndarray of int64, shape ``(n_participants,)``, minor units
        Positive: net receiver (net credit); negative: net payer (net debit).
        The positions sum to exactly zero.

    Raises
    ------
    ValueError
        Ids out of range, negative or not integers; float (or other
        non-integer) amounts; arrays of different lengths or not 1-D;
        ``n_participants`` not a positive int.
    OverflowError
        ``sum(|amount|) >= 2**63``, so a position could exceed int64.
    """
    n, payer, payee, amount, n_transfers, _, _ = _transfers(payer, payee, amount, n_participants)

    def numpy_path() -> np.ndarray:
        positions = np.zeros(n, np.int64)
        np.add.at(positions, payee, amount)
        np.subtract.at(positions, payer, amount)
        return positions

    positions = _net("multilateral", (payer, payee, amount, n), numpy_path, amount, n_transfers,
                     payer=(payer, n, "participant"), payee=(payee, n, "participant"))

    check_zero_sum(positions, what="multilateral positions")
    return positions


def bilateral_obligations(payer, payee, amount, n_participants) -> np.ndarray:
    """Gross bilateral obligations: entry ``[i, j]`` is what ``i`` pays ``j``.

    The matrix is gross per ordered pair (row pays column): ``[i, j]`` is the
    sum of ``amount[k]`` over transfers with ``payer[k] == i`` and
    ``payee[k] == j``; it is not netted against ``[j, i]``.  Column sums minus
    row sums equal :func:`multilateral_positions`; ``M - M.T`` gives the
    bilateral net obligations.

    Parameters and errors are those of :func:`multilateral_positions`.

    Returns
    -------
    np.ndarray of int64, shape ``(n_participants, n_participants)``, minor units
        Memory is ``8 * n_participants**2`` bytes (32 MB for 2,000 participants).
    """
    n, payer, payee, amount, n_transfers, _, _ = _transfers(payer, payee, amount, n_participants)

    def numpy_path() -> np.ndarray:
        matrix = np.zeros((n, n), np.int64)
        np.add.at(matrix, (payer, payee), amount)
        return matrix

    matrix = _net("bilateral", (payer, payee, amount, n), numpy_path, amount, n_transfers,
                  payer=(payer, n, "participant"), payee=(payee, n, "participant"))
    return matrix


def multilateral_positions_by_key(payer, payee, amount, key, n_keys, n_participants) -> np.ndarray:
    """Multilateral net positions per key, all keys in one pass.

    ``key[k]`` says which group transfer ``k`` belongs to: the index of its
    settlement window, of its fee type, or of any other partition the caller
    chooses (combine two with ``window * n_fee_types + fee_type``).  Row ``w``
    of the result equals ``multilateral_positions`` of the transfers whose key
    is ``w``.

    Parameters
    ----------
    payer, payee, amount, n_participants
        As in :func:`multilateral_positions`; amount in minor units (fen).
    key : 1-D integer array of keys in ``[0, n_keys)``
    n_keys : int > 0

    Returns
    -------
    np.ndarray of int64, shape ``(n_keys, n_participants)``, minor units
        Every row sums to exactly zero; a key with no transfers has a row of
        zeros.

    Raises
    ------
    ValueError
        As in :func:`multilateral_positions`, and for keys out of range or
        ``n_keys`` not a positive int.
    OverflowError
        ``sum(|amount|) >= 2**63``.
    """
    n, payer, payee, amount, n_transfers, key, n_keys = _transfers(
        payer, payee, amount, n_participants, key=key, n_keys=n_keys)

    def numpy_path() -> np.ndarray:
        positions = np.zeros((n_keys, n), np.int64)
        np.add.at(positions, (key, payee), amount)
        np.subtract.at(positions, (key, payer), amount)
        return positions

    positions = _net("by_key", (payer, payee, amount, key, n_keys, n), numpy_path, amount, n_transfers,
                     payer=(payer, n, "participant"), payee=(payee, n, "participant"), key=(key, n_keys, "key"))

    check_zero_sum(positions, what="multilateral positions by key")
    return positions


def check_zero_sum(positions, what: str = "net positions") -> None:
    """Raise NettingInvariantError unless the positions sum to exactly zero.

    Parameters
    ----------
    positions : integer array, minor units
        1-D: the net positions of one settlement window.  2-D: one row per
        window (or key); every row must sum to zero and the error names the
        first row that does not.
    what : str
        Names the positions in the message, e.g. ``"window 3"``.

    Raises
    ------
    NettingInvariantError
        A sum is not exactly zero.  The sum is computed exactly (with Python
        ints when int64 could wrap).
    ValueError
        ``positions`` is not an integer array of 1 or 2 dimensions.
    """
    array = np.asarray(positions)
    if array.dtype.kind not in "iu":
        raise ValueError(f"positions of {what} must be integers (minor units), got dtype {array.dtype}")
    if array.ndim not in (1, 2):
        raise ValueError(f"positions of {what} must be 1-D or 2-D, got {array.ndim}-D")
    rows = array.reshape(-1, array.shape[-1]) if array.ndim == 2 else array[np.newaxis, :]
    if rows.size == 0:
        return
    largest = max(abs(int(rows.min())), abs(int(rows.max())))
    if largest * rows.shape[1] < _INT64_LIMIT and rows.dtype != np.uint64:
        sums = rows.sum(axis=1, dtype=np.int64).tolist()
    else:
        sums = [sum(row) for row in rows.tolist()]
    for index, total in enumerate(sums):
        if total != 0:
            where = f"{what} (row {index})" if array.ndim == 2 else what
            raise NettingInvariantError(f"net positions of {where} sum to {total}, not 0")
