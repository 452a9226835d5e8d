"""Card numbers and the switch's BIN table.

Owns: turning an issuer's card index into a 16-digit PAN (BIN, account digits, Luhn
check digit), and longest-prefix routing of PANs to issuers (8-digit BINs win over
6-digit ones). Vectorised over arrays; must never draw random numbers.
"""

from __future__ import annotations

import numpy as np

from clearing_sim.scenario import Scenario

PAN_DIGITS = 16
_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)


def luhn_check_digit(payload: np.ndarray) -> np.ndarray:
    """The Luhn check digit for each 15-digit payload (int64 array)."""
    total = np.zeros(payload.shape, dtype=np.int64)
    for k in range(PAN_DIGITS - 1):  # k = 0 is the rightmost payload digit: doubled
        d = (payload // _POW10[k]) % 10
        if k % 2 == 0:
            d = d * 2
            d = np.where(d > 9, d - 9, d)
        total += d
    return (10 - total % 10) % 10


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

    def _free_bin(self) -> str:
        """A 6-digit BIN that no issuer's BIN starts with, for cards the switch cannot route."""
        for candidate in range(999999, 100000, -1):
            c = str(candidate)
            if all(not b.startswith(c) for bins in self.bins_by_issuer for b in bins):
                return c
        raise RuntimeError("no free BIN left")  # unreachable with a valid scenario

    def pans(self, issuer: np.ndarray, card: np.ndarray) -> np.ndarray:
        """The 16-digit PAN (int64) of each card; issuer -1 gets a BIN nobody owns."""
        pan = np.zeros(issuer.shape, dtype=np.int64)
        groups = [(k, bins) for k, bins in enumerate(self.bins_by_issuer)] + [(-1, (self.unknown_bin,))]
        for k, bins in groups:
            idx = np.flatnonzero(issuer == k)
            if len(idx) == 0:
                continue
            c = card[idx]
            which = c % len(bins)
            for j, b in enumerate(bins):
                sel = idx[which == j]
                acct_digits = PAN_DIGITS - 1 - len(b)
                account = (card[sel] // len(bins)) % _POW10[acct_digits]
                pan[sel] = int(b) * _POW10[acct_digits] + account
        return pan * 10 + luhn_check_digit(pan)

    def route(self, pan: np.ndarray) -> np.ndarray:
        """Issuer index of each PAN by longest-prefix match, -1 where no BIN matches."""
        out = np.full(pan.shape, -1, dtype=np.int16)
        for length, bins, owners in self._tables:
            if len(bins) == 0:
                continue
            prefix = pan // _POW10[PAN_DIGITS - length]
            pos = np.searchsorted(bins, prefix)
            pos_c = np.minimum(pos, len(bins) - 1)
            hit = (bins[pos_c] == prefix) & (out == -1)
            out[hit] = owners[pos_c[hit]]
        return out
