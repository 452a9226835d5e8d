"""The settlement bank: participants' settlement accounts, collateral, caps and the guarantee fund.

Owns: each participant's balance (fen), collateral, net debit cap, guarantee-fund
contribution and loss-sharing weight; how much a net debtor can fund
(min(cap, balance + collateral), the balance first and then an overdraft secured
by collateral); posting a settled window (debtors fund first, then creditors are
paid); and the money-conservation check (settlement only moves money between
accounts and the fund). A participant without an account in the scenario can
fund anything and is reported with no limit. Must never net, decide defaults
or import SimPy.
"""

from __future__ import annotations

import numpy as np

from clearing_sim.errors import InvariantError
from clearing_sim.model.defaults import UNLIMITED
from clearing_sim.scenario import SettlementAccount


class SettlementBank:
    """Accounts of all participants, in `participant_ids` order."""

    def __init__(self, participant_ids: tuple[str, ...], accounts: tuple[SettlementAccount, ...] = ()):
        n = len(participant_ids)
        self.ids = tuple(participant_ids)
        self.limited = np.zeros(n, dtype=bool)
        self.balance = np.zeros(n, dtype=np.int64)
        self.collateral = np.zeros(n, dtype=np.int64)
        self.cap = np.full(n, UNLIMITED, dtype=np.int64)
        self.fund = np.zeros(n, dtype=np.int64)
        self.weights = np.zeros(n, dtype=np.float64)
        for acc in accounts:
            i = self.ids.index(acc.participant)
            self.limited[i] = True
            self.balance[i] = acc.opening_balance_minor
            self.collateral[i] = acc.collateral_minor
            if acc.net_debit_cap_minor is not None:
                self.cap[i] = acc.net_debit_cap_minor
            self.fund[i] = acc.guarantee_fund_minor
            self.weights[i] = acc.loss_share_weight or 0.0
        self._total = int(self.balance.sum()) + int(self.fund.sum())

    def capacity(self) -> np.ndarray:
        """Per participant: the most it can pay into a window now (UNLIMITED without an account)."""
        funds = np.maximum(self.balance + self.collateral, 0)
        return np.where(self.limited, np.minimum(self.cap, funds), UNLIMITED).astype(np.int64)

    def why_short(self, i: int, need_minor: int) -> str:
        """Plain words for why participant i cannot pay `need_minor` fen."""
        if not self.limited[i]:
            return "no limit (cannot default)"
        funds = int(self.balance[i]) + int(self.collateral[i])
        if need_minor > int(self.cap[i]) and int(self.cap[i]) <= funds:
            return f"net debit {need_minor} fen exceeds its net debit cap {int(self.cap[i])} fen"
        return (f"net debit {need_minor} fen exceeds its balance {int(self.balance[i])} "
                f"+ collateral {int(self.collateral[i])} fen")

    def post(self, account_flow: np.ndarray, fund_draw: np.ndarray) -> tuple[int, int]:
        """Book a settled window: debtors pay in first, then creditors are paid; returns (paid in, paid out).

        Raises InvariantError if a limited account would go below minus its
        collateral, a fund contribution below zero, or pay-ins differ from pay-outs.
        """
        flow = np.asarray(account_flow, dtype=np.int64)
        draw = np.asarray(fund_draw, dtype=np.int64)
        paid_in = int(-flow[flow < 0].sum()) + int(draw.sum())
        paid_out = int(flow[flow > 0].sum())
        if paid_in != paid_out:
            raise InvariantError(f"settlement bank: {paid_in} fen paid in but {paid_out} fen paid out")
        after = self.balance + flow
        short = self.limited & (after < -self.collateral)
        if short.any():
            i = int(np.flatnonzero(short)[0])
            raise InvariantError(f"settlement bank: {self.ids[i]} would overdraw beyond its collateral")
        if (self.fund - draw < 0).any():
            raise InvariantError("settlement bank: a guarantee-fund contribution would go below zero")
        self.balance = after  # debtors' debits and creditors' credits, one booking
        self.fund = self.fund - draw
        return paid_in, paid_out

    def check_conservation(self) -> None:
        """Balances plus fund never change in total: settlement only moves money. Raises InvariantError."""
        total = int(self.balance.sum()) + int(self.fund.sum())
        if total != self._total:
            raise InvariantError(f"settlement bank holds {total} fen, not the {self._total} fen it started with")
