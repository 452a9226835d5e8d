"""Fees in exact integer fen, rounded half up, mirrored for credits."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearing_sim.fees import FeeSchedule, fee_minor, rate_hundredths_bps
from clearing_sim.scenario import parse_scenario
from tests.conftest import SMALL_YAML


class TestFeeArithmetic:
    """A fee equals amount x rate rounded half up, exactly, for any amount."""

    def test_half_up(self) -> None:
        # 45 bps of 1,000 fen is 4.5 fen: rounds up to 5; of 999 fen is 4.4955: rounds to 4.
        assert fee_minor(np.array([1000, 999, 0]), rate_hundredths_bps(45)).tolist() == [5, 4, 0]

    def test_fixed_part_added(self) -> None:
        assert fee_minor(np.array([10_000]), rate_hundredths_bps(10), 30).tolist() == [40]

    @given(st.integers(-10**12, 10**12), st.integers(0, 1_000_000))
    def test_matches_exact_rational(self, amount: int, rate: int) -> None:
        from fractions import Fraction
        exact = Fraction(abs(amount) * rate, 1_000_000)
        expected = int(exact + Fraction(1, 2))  # floor(x + 1/2): half up
        expected = -expected if amount < 0 else expected
        assert fee_minor(np.array([amount]), rate).tolist() == [expected]

    def test_overflow_refused(self) -> None:
        with pytest.raises(OverflowError):
            fee_minor(np.array([2**62]), 10)


class TestSchedule:
    """Interchange comes from the category table, else the default."""

    def test_category_rate_and_default(self) -> None:
        text = SMALL_YAML + "fees:\n  interchange_default: {bps: 50}\n  interchange:\n    \"5411\": {bps: 20, fixed_minor: 1}\n"
        sched = FeeSchedule(parse_scenario(text).fees)
        got = sched.interchange(np.array([10_000, 10_000]), np.array([5411, 5812]))
        assert got.tolist() == [21, 50]


class TestProductSchedule:
    """Interchange by card product: its category rate, else its default, else the category table, else the default."""

    def schedule(self) -> FeeSchedule:
        text = SMALL_YAML.replace("    share: 0.6\n", "    share: 0.6\n    products: {classic: 0.5, gold: 0.3, black: 0.2}\n")
        text += ("fees:\n  interchange_default: {bps: 50}\n  interchange: {\"5411\": {bps: 20, fixed_minor: 1}}\n"
                 "  interchange_by_product:\n"
                 "    gold: {default: {bps: 90, fixed_minor: 7}, by_mcc: {\"5812\": {bps: 80}}}\n"
                 "    black: {by_mcc: {\"5812\": {bps: 120}}}\n")
        return FeeSchedule(parse_scenario(text).fees).with_products(("classic", "gold", "black"))

    @pytest.mark.parametrize("product,mcc,fee", [
        (0, 5411, 21), (0, 5812, 50), (0, 7011, 50),  # classic: the category table, then the default
        (1, 5812, 80), (1, 5411, 97), (1, 7011, 97),  # gold: its category rate, then its default
        (2, 5812, 120), (2, 5411, 21), (2, 7011, 50),  # black: its category rate, then the table
    ])
    def test_lookup_order(self, product: int, mcc: int, fee: int) -> None:
        got = self.schedule().interchange(np.array([10_000]), np.array([mcc]), np.array([product]))
        assert got.tolist() == [fee]

    def test_without_products_the_category_table_applies(self) -> None:
        sched = self.schedule()
        assert sched.interchange(np.array([10_000]), np.array([5411])).tolist() == [21]

    @given(st.lists(st.integers(-10**10, 10**10), min_size=1, max_size=30), st.integers(0, 2))
    def test_credit_mirrors_debit(self, amounts: list[int], product: int) -> None:
        sched = self.schedule()
        a = np.array(amounts, dtype=np.int64)
        mcc = np.full(len(a), 5812)
        p = np.full(len(a), product)
        assert np.array_equal(sched.interchange(-a, mcc, p), -sched.interchange(a, mcc, p))
