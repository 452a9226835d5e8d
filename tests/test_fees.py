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
