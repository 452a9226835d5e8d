"""Card numbers and the switch's BIN table.

Owns: turning an issuer's card index into a 16-digit PAN (BIN, account digits, Luhn
check digit), and longest-prefix routing of PANs to issuers (8-digit BINs win over
6-digit ones). Vectorised over arrays: PANs and Luhn digits are compiled loops (numba,
releasing the GIL, as the drawing thread shares the cores), integer-exact, giving what the
array arithmetic with numpy's floor `//` and `%` gives. Must never draw random numbers.
"""

from __future__ import annotations

import numba
import numpy as np

from clearing_sim.scenario import Scenario

PAN_DIGITS = 16
_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)


def _doubled(d: int) -> int:
    """A doubled Luhn digit: 2d, less 9 when that has two digits."""
    return 2 * d - 9 if 2 * d > 9 else 2 * d


# Luhn sum of a pair of digits `p = 10 * high + low` where the low digit is the doubled one.
_PAIR_SUM = np.array([_doubled(p % 10) + p // 10 for p in range(100)], dtype=np.uint64)


@numba.njit(cache=True, nogil=True)
def _luhn_digit(payload):
    """The Luhn check digit of one payload's 15 lowest digits (floor // and %, as numpy's)."""
    if payload >= 0:  # two digits a step, unsigned: the usual case and the quick one
        x = np.uint64(payload)
        total = np.uint64(0)
        for _ in range((PAN_DIGITS - 2) // 2):  # digits 0..13: each pair's low digit is doubled
            total += _PAIR_SUM[x % np.uint64(100)]
            x //= np.uint64(100)
        d = (x % np.uint64(10)) * np.uint64(2)  # digit 14: doubled
        total += d - np.uint64(9) if d > np.uint64(9) else d
        return np.int64((np.uint64(10) - total % np.uint64(10)) % np.uint64(10))
    total = 0
    y = payload
    for k in range(PAN_DIGITS - 1):  # k = 0 is the rightmost payload digit: doubled
        d = y % 10
        y //= 10
        if k % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


@numba.njit(cache=True, nogil=True)
def _luhn_kernel(payload, out):
    for i in range(payload.shape[0]):
        out[i] = _luhn_digit(payload[i])


@numba.njit(cache=True, nogil=True)
def _pans_kernel(issuer, card, first, count, bin_value, acct_pow, out):
    """Each card's PAN: issuer k (-1 is slot len(first) - 1) picks BIN `card % count[k]`
    of its own, the account is `(card // count[k]) % 10**digits` after it, then the check digit.
    An issuer out of range gets payload 0, as the array version left it."""
    unknown = first.shape[0] - 1
    for i in range(issuer.shape[0]):
        k = np.int64(issuer[i])
        if k == -1:
            k = unknown
        elif k < 0 or k >= unknown:
            out[i] = _luhn_digit(0)
            continue
        c = card[i]
        j = first[k] + c % count[k]
        payload = bin_value[j] * acct_pow[j] + (c // count[k]) % acct_pow[j]
        out[i] = payload * 10 + _luhn_digit(payload)


@numba.njit(cache=True, nogil=True)
def _route_kernel(pan, start, bin_lo, bin_hi, owners, out):
    """Longest-prefix match of each PAN: tables in order, the first hit wins, -1 if none.

    BIN j of a table covers the PANs in [bin_lo[j], bin_hi[j]) (the BIN followed by all
    zeros, and by all nines plus one), so `bins[j] >= pan // 10**digits` is `bin_hi[j] > pan`
    and a match is `bin_lo[j] <= pan` there: no division.
    """
    for i in range(pan.shape[0]):
        r = np.int16(-1)
        x = pan[i]
        for t in range(start.shape[0] - 1):
            lo = start[t]
            end = start[t + 1]
            if end - lo <= 64:  # a short table: count the BINs wholly below x, no branches
                c = lo
                for j in range(lo, end):
                    c += bin_hi[j] <= x
            else:  # the first BIN whose range ends after x
                c = lo
                hi = end
                while c < hi:
                    mid = (c + hi) >> 1
                    if bin_hi[mid] <= x:
                        c = mid + 1
                    else:
                        hi = mid
            if c < end and bin_lo[c] <= x:
                r = owners[c]
                break
        out[i] = r


def luhn_check_digit(payload: np.ndarray) -> np.ndarray:
    """The Luhn check digit for each 15-digit payload (int64 array of the payload's shape;
    only the 15 lowest digits count)."""
    p = np.asarray(payload).astype(np.int64, order="C")
    out = np.empty(p.shape, dtype=np.int64)
    _luhn_kernel(p.reshape(-1), out.reshape(-1))
    return out if out.ndim else out[()]  # a scalar payload gives a scalar, as numpy arithmetic does


def luhn_valid(pan: np.ndarray) -> np.ndarray:
    """Whether each 16-digit PAN (int64 array) carries a correct Luhn check digit."""
    return luhn_check_digit(pan // 10) == pan % 10


class BinTable:
    """The switch's routing table: BIN -> issuer index, longest prefix first."""

    def __init__(self, scenario: Scenario):
        self._tables: list[tuple[int, np.ndarray, np.ndarray]] = []
        for length in (8, 6):  # longest prefix first
            bins, owners = [], []
            for k, iss in enumerate(scenario.issuers):
                for b in iss.bins:
                    if len(b) == length:
                        bins.append(int(b))
                        owners.append(k)
            order = np.argsort(np.array(bins, dtype=np.int64), kind="stable")
            self._tables.append(
                (length, np.array(bins, dtype=np.int64)[order], np.array(owners, dtype=np.int16)[order])
            )
        self.bins_by_issuer = [tuple(iss.bins) for iss in scenario.issuers]
        self.unknown_bin = self._free_bin()
        # The tables flat, for the routing loop: table t's BINs (sorted) are at
        # route_start[t] : route_start[t + 1], each as the range of PANs it covers
        # [bin * 10**digits, (bin + 1) * 10**digits), at most 10**16: no int64 overflow.
        scale = np.concatenate([np.full(len(b), _POW10[PAN_DIGITS - length]) for length, b, _ in self._tables])
        bins_flat = np.concatenate([b for _, b, _ in self._tables]).astype(np.int64)
        self._route_start = np.cumsum([0] + [len(b) for _, b, _ in self._tables]).astype(np.int64)
        self._route_lo = bins_flat * scale.astype(np.int64)
        self._route_hi = (bins_flat + 1) * scale.astype(np.int64)
        self._route_owners = np.concatenate([o for _, _, o in self._tables]).astype(np.int16)
        # The BINs PANs are built from, flat: issuer k's are at first[k] : first[k] + count[k],
        # the unknown BIN last; acct_pow is 10**(account digits after the BIN).
        groups = self.bins_by_issuer + [(self.unknown_bin,)]
        self._count = np.array([len(g) for g in groups], dtype=np.int64)
        self._first = np.concatenate([[0], np.cumsum(self._count)[:-1]]).astype(np.int64)
        self._bin_value = np.array([int(b) for g in groups for b in g], dtype=np.int64)
        self._acct_pow = np.array([_POW10[PAN_DIGITS - 1 - len(b)] for g in groups for b in g], dtype=np.int64)

    def _free_bin(self) -> str:
        """A 6-digit BIN that no issuer's BIN starts with, for cards the switch cannot route."""
        for candidate in range(999999, 100000, -1):
            c = str(candidate)
            if all(not b.startswith(c) for bins in self.bins_by_issuer for b in bins):
                return c
        raise RuntimeError("no free BIN left")  # unreachable with a valid scenario

    def pans(self, issuer: np.ndarray, card: np.ndarray) -> np.ndarray:
        """The 16-digit PAN (int64) of each card; issuer -1 gets a BIN nobody owns.

        Card indices are those the issuer issued (0 <= card); a compiled loop that
        releases the GIL.
        """
        out = np.empty(np.shape(issuer), dtype=np.int64)
        _pans_kernel(np.ascontiguousarray(issuer).reshape(-1), np.ascontiguousarray(card, dtype=np.int64).reshape(-1),
                     self._first, self._count, self._bin_value, self._acct_pow, out.reshape(-1))
        return out

    def route(self, pan: np.ndarray) -> np.ndarray:
        """Issuer index (int16) of each PAN (int64) by longest-prefix match, -1 where no BIN matches.

        A compiled loop that releases the GIL: per PAN, each table longest first, the first
        BIN >= the PAN's prefix (`np.searchsorted`'s left side) is a hit if it equals the prefix.
        """
        p = np.ascontiguousarray(pan, dtype=np.int64)
        out = np.empty(p.shape, dtype=np.int16)
        _route_kernel(p.reshape(-1), self._route_start, self._route_lo, self._route_hi, self._route_owners,
                      out.reshape(-1))
        return out
