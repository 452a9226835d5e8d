"""Interchange and scheme fees, in exact integer fen.

Owns: the fee rules and their rounding. Rates are held in hundredths of a basis
point (an integer), so a fee is `(amount_minor * rate + 500_000) // 1_000_000`
fen: exact, rounded half up, per record; a fixed part in fen is added after
rounding. Must never use floats for money.
"""

from __future__ import annotations

import numpy as np

from clearing_sim.scenario import Fees

_HALF = 500_000
_DENOM = 1_000_000  # 10_000 bps * 100 hundredths


def rate_hundredths_bps(bps: float) -> int:
    """A rate in bps as an integer count of hundredths of a basis point."""
    return int(round(bps * 100))


def fee_minor(amount_minor: np.ndarray, rate: np.ndarray | int, fixed_minor: np.ndarray | int = 0) -> np.ndarray:
    """Per-record fee in fen: amount times rate (hundredths of bps), half up, plus fixed.

    Negative amounts (credits) get the mirror image, so a refund's fee is exactly the
    negative of the same purchase's fee. Raises OverflowError past int64.
    """
    a = np.asarray(amount_minor, dtype=np.int64)
    r = np.asarray(rate, dtype=np.int64)
    if a.size and (int(np.abs(a).max()) * int(r.max(initial=0)) >= 2**62):
        raise OverflowError("fee computation would exceed int64")
    mag = (np.abs(a) * r + _HALF) // _DENOM + np.asarray(fixed_minor, dtype=np.int64)
    return np.where(a < 0, -mag, mag)


class FeeSchedule:
    """The scenario's fee tables, ready to apply to arrays of records."""

    def __init__(self, fees: Fees):
        default = fees.interchange_default
        self._mcc_rate = np.full(10_000, rate_hundredths_bps(default.bps), dtype=np.int64)
        self._mcc_fixed = np.full(10_000, default.fixed_minor, dtype=np.int64)
        for mcc, r in fees.interchange.items():
            self._mcc_rate[int(mcc)] = rate_hundredths_bps(r.bps)
            self._mcc_fixed[int(mcc)] = r.fixed_minor
        self.scheme_issuer = rate_hundredths_bps(fees.scheme_issuer_bps)
        self.scheme_acquirer = rate_hundredths_bps(fees.scheme_acquirer_bps)

    def interchange(self, amount_minor: np.ndarray, mcc: np.ndarray) -> np.ndarray:
        """Interchange in fen, paid by the acquirer to the issuer, per record."""
        m = np.asarray(mcc, dtype=np.int64)
        return fee_minor(amount_minor, self._mcc_rate[m], self._mcc_fixed[m])

    def scheme_fees(self, amount_minor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(issuer's, acquirer's) scheme fee in fen per record, both kept by the network."""
        return fee_minor(amount_minor, self.scheme_issuer), fee_minor(amount_minor, self.scheme_acquirer)
