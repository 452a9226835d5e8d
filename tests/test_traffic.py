"""Purchases drawn up front: the profile, the mix and the block streams."""

import numpy as np

from clearing_sim.model import traffic
from clearing_sim.model.traffic import COLUMNS, build_catalogue, draw_block, draw_days, hour_parts, iter_blocks
from clearing_sim.scenario import parse_scenario
from tests.conftest import SMALL_YAML


def scenario(tpd: int = 20_000, seed: int = 1):
    return parse_scenario(SMALL_YAML.replace("transactions_per_day: 3000", f"transactions_per_day: {tpd}")
                          .replace("seed: 42", f"seed: {seed}"))


class TestArrivals:
    """Arrival counts follow the hourly profile and times stay inside their hour, sorted."""

    def test_profile_followed(self) -> None:
        profile = [0] * 6 + [1] * 12 + [3] * 6
        text = SMALL_YAML.replace("transactions_per_day: 3000", "transactions_per_day: 60000").replace(
            "  unknown_bin_rate", f"  hourly_profile: {profile}\n  unknown_bin_rate")
        txn = draw_days(parse_scenario(text))
        hours = (txn["t_arrival_s"] // 3600).astype(int)
        counts = np.bincount(hours, minlength=24)
        assert counts[:6].sum() == 0
        # Poisson means 2,000 and 6,000: each count within 5 standard deviations.
        assert np.all(np.abs(counts[6:18] - 2000) < 5 * np.sqrt(2000))
        assert np.all(np.abs(counts[18:] - 6000) < 5 * np.sqrt(6000))
        assert np.all(np.diff(txn["t_arrival_s"]) >= 0)

    def test_columns_and_ids(self) -> None:
        txn = draw_days(scenario())
        assert set(txn) == set(COLUMNS)
        assert all(txn[k].dtype == d for k, d in COLUMNS.items())
        assert np.array_equal(txn["txn_id"], np.arange(len(txn["txn_id"])))


class TestBusyHoursInParts:
    """An hour expecting more than BLOCK_MAX purchases is drawn in equal parts of the hour."""

    def test_parts_follow_the_expected_count(self, monkeypatch) -> None:
        monkeypatch.setattr(traffic, "BLOCK_MAX", 100)
        sc = scenario(tpd=24_000)  # flat profile: 1,000 an hour
        cat = build_catalogue(sc)
        assert [hour_parts(sc, cat, h) for h in range(24)] == [10] * 24
        blocks = list(iter_blocks(sc, cat))
        assert len(blocks) == 24 * 10
        for j, b in enumerate(blocks):  # each part stays inside its six minutes, sorted
            t = b["t_arrival_s"]
            assert np.all((t >= j * 360.0) & (t < (j + 1) * 360.0)) and np.all(np.diff(t) >= 0)
        txn = draw_days(sc, cat)
        assert np.array_equal(txn["txn_id"], np.arange(len(txn["txn_id"])))
        counts = np.bincount((txn["t_arrival_s"] // 3600).astype(int), minlength=24)
        assert np.all(np.abs(counts - 1000) < 5 * np.sqrt(1000))


class TestMix:
    """Acquirer, issuer and category shares follow the scenario; amounts are whole fen in range."""

    def test_shares(self) -> None:
        txn = draw_days(scenario(60_000))
        known = txn["issuer"] >= 0
        share_a = (txn["issuer"][known] == 0).mean()
        assert abs(share_a - 0.6) < 0.01
        assert abs((txn["issuer"] < 0).mean() - 0.01) < 0.003
        assert set(np.unique(txn["mcc"][txn["acquirer"] == 1])) == {5812}

    def test_amounts(self) -> None:
        s = scenario(20_000)
        txn = draw_days(s)
        a = txn["amount_minor"]
        assert a.dtype == np.int64 and (a >= s.traffic.amount_min_minor).all()
        uni = a[txn["mcc"] == 5812]
        assert uni.min() >= 1000 and uni.max() <= 20000
        median = np.median(a[txn["mcc"] == 5411])
        assert 4500 < median < 5500  # lognormal median 5,000 fen


class TestBlocks:
    """A block's draws depend only on the seed and its (day, hour)."""

    def test_block_independent_of_others(self) -> None:
        s = scenario()
        cat = build_catalogue(s)
        whole = draw_days(s, cat)
        block = draw_block(s, cat, 0, 13, first_txn_id=0)
        sel = (whole["t_arrival_s"] >= 13 * 3600) & (whole["t_arrival_s"] < 14 * 3600)
        for k in ("t_arrival_s", "amount_minor", "service_s", "hop_acq_switch_s", "risk_u"):
            assert np.array_equal(whole[k][sel], block[k])

    def test_seed_changes_draws(self) -> None:
        assert not np.array_equal(draw_days(scenario(seed=1))["amount_minor"][:50],
                                  draw_days(scenario(seed=2))["amount_minor"][:50])
