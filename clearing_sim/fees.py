"""Interchange and scheme fees, in exact integer fen.

Owns: the fee rules and their rounding. Rates are held in hundredths of a basis
point (an integer), so a fee is `(amount_minor * rate + 500_000) // 1_000_000`
fen: exact, rounded half up, per record; a fixed part in fen is added after
rounding. Must never use floats for money.

Interchange depends on the merchant category and the card product: each product has
a (10,000-row) rate table by category, filled from the scenario in the order
product `by_mcc` rate, product `default`, `fees.interchange` by category,
`fees.interchange_default` (see `clearing_sim.scenario.ProductInterchange`).
"""

from __future__ import annotations

import numpy as np

from clearing_sim.scenario import Fees, Scenario

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
        # Card products: row p of the (products x 10,000) tables is product `products[p]`.
        self.products: tuple[str, ...] = ()
        self._product_rate = self._mcc_rate[None, :]
        self._product_fixed = self._mcc_fixed[None, :]
        self._by_product = fees.interchange_by_product

    def with_products(self, products: tuple[str, ...]) -> "FeeSchedule":
        """Build the per-product tables for these product names (index = product number)."""
        rate = np.repeat(self._mcc_rate[None, :], len(products), axis=0)
        fixed = np.repeat(self._mcc_fixed[None, :], len(products), axis=0)
        for p, name in enumerate(products):
            spec = self._by_product.get(name)
            if spec is None:
                continue
            if spec.default is not None:
                rate[p, :] = rate_hundredths_bps(spec.default.bps)
                fixed[p, :] = spec.default.fixed_minor
            for mcc, r in spec.by_mcc.items():
                rate[p, int(mcc)] = rate_hundredths_bps(r.bps)
                fixed[p, int(mcc)] = r.fixed_minor
        self.products = tuple(products)
        self._product_rate, self._product_fixed = rate, fixed
        return self

    def interchange(self, amount_minor: np.ndarray, mcc: np.ndarray, product: np.ndarray | None = None) -> np.ndarray:
        """Interchange in fen, paid by the acquirer to the issuer, per record.

        `product` holds product numbers (indices into `products`, see `with_products`);
        without it the category table alone applies.
        """
        m = np.asarray(mcc, dtype=np.int64)
        if product is None:
            return fee_minor(amount_minor, self._mcc_rate[m], self._mcc_fixed[m])
        p = np.asarray(product, dtype=np.int64)
        return fee_minor(amount_minor, self._product_rate[p, m], self._product_fixed[p, m])

    def scheme_fees(self, amount_minor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(issuer's, acquirer's) scheme fee in fen per record, both kept by the network."""
        return fee_minor(amount_minor, self.scheme_issuer), fee_minor(amount_minor, self.scheme_acquirer)


def product_names(scenario: Scenario) -> tuple[str, ...]:
    """Every card product of the scenario's issuers, in first-seen order (product numbers)."""
    names: dict[str, None] = {}
    for iss in scenario.issuers:
        for name in iss.products:
            names.setdefault(name, None)
    return tuple(names)
