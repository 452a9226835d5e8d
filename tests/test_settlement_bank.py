"""Tests for clearing_sim.model.settlement_bank: capacity, posting and conservation."""

from __future__ import annotations

import numpy as np
import pytest

from clearing_sim.errors import InvariantError
from clearing_sim.model.defaults import UNLIMITED
from clearing_sim.model.settlement_bank import SettlementBank
from clearing_sim.scenario import SettlementAccount

IDS = ("A", "B", "NETWORK")


def bank():
    return SettlementBank(IDS, (
        SettlementAccount("A", opening_balance_minor=100, collateral_minor=50, net_debit_cap_minor=120),
        SettlementAccount("B", opening_balance_minor=10, collateral_minor=5),
    ))


class TestCapacity:
    """A participant can fund min(cap, balance + collateral); one without an account is unlimited."""

    def test_capacity(self):
        assert bank().capacity().tolist() == [120, 15, UNLIMITED]

    def test_reasons_name_cap_or_funds(self):
        b = bank()
        assert "net debit cap 120" in b.why_short(0, 130)
        assert "balance 10 + collateral 5" in b.why_short(1, 16)


class TestPosting:
    """Posting moves money between accounts only, and refuses what would break the books."""

    def test_post_and_conserve(self):
        b = bank()
        paid_in, paid_out = b.post(np.array([-120, 15, 105]), np.zeros(3, np.int64))
        assert (paid_in, paid_out) == (120, 120)
        assert b.balance.tolist() == [-20, 25, 105]  # A is in its collateralised overdraft
        b.check_conservation()

    def test_overdraft_beyond_collateral_is_refused(self):
        with pytest.raises(InvariantError, match="overdraw"):
            bank().post(np.array([-151, 151, 0]), np.zeros(3, np.int64))

    def test_unbalanced_posting_is_refused(self):
        with pytest.raises(InvariantError, match="paid in"):
            bank().post(np.array([-10, 9, 0]), np.zeros(3, np.int64))

    def test_conservation_catches_a_leak(self):
        b = bank()
        b.balance[0] += 1
        with pytest.raises(InvariantError, match="not the"):
            b.check_conservation()
