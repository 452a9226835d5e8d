"""Published worked examples of multilateral netting, reproduced by clearing_sim.netting."""

from __future__ import annotations

import numpy as np

from clearing_sim.netting import bilateral_obligations, multilateral_positions


class TestReserveBankOfAustralia1999:
    """The RBA's four-bank example of multilateral net settlement nets to A -8, B +14, C -2, D -4.

    Source: Reserve Bank of Australia, "The Role of Exchange Settlement Accounts",
    Reserve Bank of Australia Bulletin, March 1999 (also media release 1999-02,
    "Net Settlement in Payments Systems", https://www.rba.gov.au/media-releases/1999/mr-99-02-role.html),
    Figure 1. Its table of payments (paying bank in rows, receiving bank in
    columns): A pays B 10, C 5, D 0 (total 15); B pays A 4, C 1, D 6 (11); C pays
    A 3, B 7, D 2 (12); D pays A 0, B 8, C 4 (12); total receipts A 7, B 25,
    C 10, D 8 (50). The text: "A, C and D all owe funds (8, 2 and 4
    respectively) to the system while B is due to receive funds (14)."
    """

    PAID = [  # row pays column, A..D, as printed
        [0, 10, 5, 0],
        [4, 0, 1, 6],
        [3, 7, 0, 2],
        [0, 8, 4, 0],
    ]

    def transfers(self):
        m = np.array(self.PAID)
        payer, payee = np.nonzero(m)
        return payer, payee, m[payer, payee]

    def test_net_positions_as_published(self):
        assert multilateral_positions(*self.transfers(), 4).tolist() == [-8, 14, -2, -4]

    def test_totals_as_published(self):
        matrix = bilateral_obligations(*self.transfers(), 4)
        assert matrix.tolist() == self.PAID
        assert matrix.sum(axis=1).tolist() == [15, 11, 12, 12]  # total payments
        assert matrix.sum(axis=0).tolist() == [7, 25, 10, 8]    # total receipts
        assert int(matrix.sum()) == 50

    def test_the_same_in_fen_beyond_two_to_the_53(self):
        # Scaled so every total passes float64's exact range: still exact.
        scale = 2**50
        payer, payee, amount = self.transfers()
        got = multilateral_positions(payer, payee, amount * scale, 4)
        assert got.tolist() == [-8 * scale, 14 * scale, -2 * scale, -4 * scale]


class TestBancoDeMexico2000:
    """Banco de México's three-bank netting scheme nets to Central -4, Comercial +13, Meridional -9.

    Source: Banco de México, "The Use of Netting in Payment and Securities Settlement
    Systems" (note dated 22 April 2000; Spanish title "Esquemas de compensación en los
    sistemas de pagos y de liquidación de valores"), section "Payment Systems": "The
    following example shows a very simple netting scheme with 3 participants." Read in
    the copy at https://docslib.org/doc/13944867/ . Its table (paying bank in rows,
    receiving bank in columns, own cell blank): Central pays Comercial 25, Meridional 7
    (pays 32, net -4); Comercial pays Central 17, Meridional 9 (pays 26, net 13);
    Meridional pays Central 11, Comercial 14 (pays 25, net -9); receives 28, 39, 16. The
    text: "it is enough that Central pays into the system 4 and Meridional 9. Comercial
    will then get 13."
    """

    PAID = [  # row pays column: Central, Comercial, Meridional, as printed
        [0, 25, 7],
        [17, 0, 9],
        [11, 14, 0],
    ]

    def transfers(self):
        m = np.array(self.PAID)
        payer, payee = np.nonzero(m)
        return payer, payee, m[payer, payee]

    def test_net_positions_as_published(self):
        assert multilateral_positions(*self.transfers(), 3).tolist() == [-4, 13, -9]

    def test_totals_as_published(self):
        matrix = bilateral_obligations(*self.transfers(), 3)
        assert matrix.tolist() == self.PAID
        assert matrix.sum(axis=1).tolist() == [32, 26, 25]  # "pays"
        assert matrix.sum(axis=0).tolist() == [28, 39, 16]  # "receives"

    def test_the_same_in_shuffled_order_and_split_payments(self):
        # Netting must not depend on the order of the records nor on how a payment is split.
        payer, payee, amount = self.transfers()
        first = amount // 2
        payer2 = np.concatenate([payer, payer])
        payee2 = np.concatenate([payee, payee])
        amount2 = np.concatenate([first, amount - first])
        order = np.random.default_rng(2000).permutation(len(payer2))
        got = multilateral_positions(payer2[order], payee2[order], amount2[order], 3)
        assert got.tolist() == [-4, 13, -9]
