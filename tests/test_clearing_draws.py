"""Clearing's up-front draws depend on the seed, the scenario and the purchases only."""

from __future__ import annotations

import attrs
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim.model.clearing_draws import (
    acquirer_file_draws,
    card_products,
    counter_uniform,
    draw_clearing,
    extra_days,
)
from clearing_sim.model.traffic import draw_days
from clearing_sim.scenario import parse_scenario
from tests.conftest import SMALL_YAML

RATES = ("  refund_rate: 0.1\n", "disputes: {chargeback_rate: 0.1, representment_rate: 0.5}\n")


def scenario(days: int = 1, **changes):
    text = SMALL_YAML.replace('clearing:\n  cutoffs: ["12:30", "23:45"]\n',
                              'clearing:\n  cutoffs: ["12:30", "23:45"]\n' + RATES[0]) + RATES[1]
    text = text.replace("    share: 0.6\n", "    share: 0.6\n    products: {classic: 0.5, gold: 0.5}\n")
    sc = parse_scenario(text.replace("days: 1,", f"days: {days},"))
    return attrs.evolve(sc, **changes) if changes else sc


class TestPerPurchaseDraws:
    """A purchase's draws come from its (day, hour) block: adding days changes none of the earlier ones."""

    def test_more_days_leave_day_one_alone(self) -> None:
        one, two = scenario(1), scenario(2)
        t1, t2 = draw_days(one), draw_days(two)
        n = len(t1["txn_id"])
        d1, d2 = draw_clearing(one, t1), draw_clearing(two, t2)
        assert len(t2["txn_id"]) > n
        for name in attrs.fields_dict(type(d1)):
            assert np.array_equal(getattr(d1, name), getattr(d2, name)[:n]), name

    def test_rates_and_limits(self) -> None:
        sc = scenario(2)
        d = draw_clearing(sc, draw_days(sc))
        assert 0.08 < d.refund.mean() < 0.12
        assert not (d.refund & d.chargeback).any()
        assert not (d.representment & ~d.chargeback).any()
        assert (d.refund_delay_s[d.refund] <= sc.clearing.refund_limit_days * 86400).all()
        assert (d.chargeback_delay_s[d.chargeback] <= sc.disputes.chargeback_limit_days * 86400).all()

    def test_another_seed_other_draws(self) -> None:
        a = scenario()
        b = attrs.evolve(a, run=attrs.evolve(a.run, seed=43))
        ta = draw_days(a)
        assert not np.array_equal(draw_clearing(a, ta).refund, draw_clearing(b, ta).refund)


class TestCardProducts:
    """A card keeps its product; products follow the issuer's shares."""

    @given(st.lists(st.integers(0, 10**9), min_size=1, max_size=200))
    @settings(max_examples=30, deadline=None)
    def test_a_card_keeps_its_product(self, cards: list[int]) -> None:
        sc = scenario()
        card = np.array(cards, dtype=np.int64)
        issuer = np.zeros(len(card), dtype=np.int16)
        a = card_products(sc, issuer, card)
        order = np.random.default_rng(len(cards)).permutation(len(card))
        assert np.array_equal(card_products(sc, issuer[order], card[order]), a[order])

    def test_shares(self) -> None:
        sc = scenario()
        card = np.arange(200_000)
        p = card_products(sc, np.zeros(len(card), dtype=np.int16), card)
        assert abs((p == 1).mean() - 0.5) < 0.01
        assert (card_products(sc, np.full(10, -1, dtype=np.int16), card[:10]) == -1).all()

    def test_uniforms_are_uniform(self) -> None:
        u = counter_uniform(12345, np.arange(100_000))
        assert 0 < u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01


class TestFileDraws:
    """Each submission's transfer time and lateness are fixed per (acquirer, day)."""

    def test_late_probability(self) -> None:
        sc = scenario()
        acq = [attrs.evolve(a, late_probability=1.0) for a in sc.acquirers]
        always = attrs.evolve(sc, acquirers=tuple(acq))
        assert not acquirer_file_draws(sc, 1, 0).late.any()
        d = acquirer_file_draws(always, 1, 0)
        assert d.late.all() and (d.late_delay_s == 3600.0).all()
        assert np.array_equal(acquirer_file_draws(always, 1, 0).transfer_s, acquirer_file_draws(sc, 1, 0).transfer_s)


class TestExtraDays:
    """The run lasts long enough for the latest refund or dispute to settle."""

    def test_none_without_refunds_or_disputes(self) -> None:
        assert extra_days(parse_scenario(SMALL_YAML)) == 0

    def test_limits(self) -> None:
        sc = scenario()
        d = sc.disputes
        assert extra_days(sc) == max(sc.clearing.refund_limit_days + 1,
                                     d.chargeback_limit_days + 2 + d.representment_limit_days + 2)
