"""Purchases drawn up front: the profile, the mix and the block streams."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim.model import traffic
from clearing_sim.model.traffic import (
    COLUMNS,
    build_catalogue,
    card_credit_limits,
    draw_block,
    draw_days,
    hour_parts,
    iter_blocks,
    sample,
)
from clearing_sim.rng import stream
from clearing_sim.scenario import Distribution, Scenario, load_scenario, parse_scenario
from tests.conftest import SMALL_YAML
from tests.test_rng import _ref_counter_uniform

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


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


# --- the reference: draw_block and its helpers as they were before they were made cheaper -----
# (numpy only, one full-length comparison per group, every temporary). The fast versions
# must give the same arrays bit for bit.

# The counter-based uniforms as they were are tests/test_rng.py's reference (_ref_counter_uniform).


def _ref_sample(dist: Distribution, rng: np.random.Generator, n: int) -> np.ndarray:
    kind = dist.distribution
    if kind == "constant":
        return np.full(n, float(dist.value))
    if kind == "exponential":
        return rng.exponential(dist.mean, n)
    if kind == "uniform":
        return rng.uniform(dist.low, dist.high, n)
    if kind == "lognormal":
        return float(dist.median) * np.exp(float(dist.sigma) * rng.standard_normal(n))
    raise ValueError(f"unknown distribution {kind!r}")


def _ref_card_credit_limits(scenario: Scenario, issuer: np.ndarray, card: np.ndarray) -> np.ndarray:
    out = np.zeros(issuer.shape, dtype=np.int64)
    for k, iss in enumerate(scenario.issuers):
        idx = np.flatnonzero(issuer == k)
        if len(idx) == 0:
            continue
        key = int(stream(scenario.run.seed, "card_limits", k).integers(0, 2**63))
        c = np.asarray(card[idx]).astype(np.uint64) * np.uint64(2)
        u1, u2 = _ref_counter_uniform(key, c), _ref_counter_uniform(key, c + np.uint64(1))
        raw = np.rint(traffic.sample_from_uniforms(iss.credit_limit_minor, u1, u2))  # unchanged numpy code
        out[idx] = np.clip(raw, 0, 10**15).astype(np.int64)
    return out


def _ref_draw_block(scenario, cat, day, hour, first_txn_id, part=0, parts=1):
    seed = scenario.run.seed
    tr = scenario.traffic
    keys = (day, hour) if parts == 1 else (day, hour, part)
    rng = stream(seed, "traffic", *keys)
    mean = tr.transactions_per_day * cat.hour_weights[hour] / parts
    n = int(rng.poisson(mean)) if mean > 0 else 0
    width = traffic.HOUR_S / parts
    start = day * traffic.DAY_S + hour * traffic.HOUR_S + part * width
    t = np.sort(start + rng.random(n) * width)
    acquirer = rng.choice(len(cat.acquirer_p), size=n, p=cat.acquirer_p).astype(np.int16)
    merchant = np.empty(n, dtype=np.int32)
    mcc = np.empty(n, dtype=np.int16)
    for a, table in enumerate(cat.merchant_mcc):
        idx = np.flatnonzero(acquirer == a)
        m = rng.integers(0, len(table), size=len(idx))
        merchant[idx] = m
        mcc[idx] = table[m]
    issuer = rng.choice(len(cat.issuer_p), size=n, p=cat.issuer_p).astype(np.int16)
    if tr.unknown_bin_rate > 0:
        issuer[rng.random(n) < tr.unknown_bin_rate] = -1
    cards = np.array([i.cards for i in scenario.issuers] + [1], dtype=np.int64)
    card = (rng.random(n) * cards[issuer]).astype(np.int64)
    amount = np.empty(n, dtype=np.int64)
    for code, dist in tr.amount_minor.items():
        idx = np.flatnonzero(mcc == int(code))
        raw = np.rint(_ref_sample(dist, rng, len(idx)))
        amount[idx] = np.clip(raw, tr.amount_min_minor, tr.amount_max_minor).astype(np.int64)
    net = stream(seed, "network", *keys)
    hops = _ref_sample(scenario.network.latency_ms, net, 4 * n).reshape(4, n) / 1000.0
    iss_rng = stream(seed, "issuer", *keys)
    service = np.zeros(n)
    risk_u = iss_rng.random(n)
    for k, iss in enumerate(scenario.issuers):
        idx = np.flatnonzero(issuer == k)
        service[idx] = _ref_sample(iss.host.service_time_ms, iss_rng, len(idx)) / 1000.0
    more = stream(seed, "network_more", *keys)
    more_hops = _ref_sample(scenario.network.latency_ms, more, 6 * n).reshape(6, n) / 1000.0
    extra = {name: more_hops[j].copy() for j, name in enumerate(traffic._MORE_HOPS)}
    extra["credit_limit_minor"] = _ref_card_credit_limits(scenario, issuer, card)
    return {
        "txn_id": np.arange(first_txn_id, first_txn_id + n, dtype=np.int64),
        "day": np.full(n, day, dtype=np.int16),
        "t_arrival_s": t, "acquirer": acquirer, "merchant": merchant, "mcc": mcc, "issuer": issuer,
        "card": card, "amount_minor": amount,
        "hop_acq_switch_s": hops[0].copy(), "hop_switch_issuer_s": hops[1].copy(),
        "hop_issuer_switch_s": hops[2].copy(), "hop_switch_acq_s": hops[3].copy(),
        "service_s": service, "risk_u": risk_u,
    } | extra


def _assert_same_block(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        assert got[k].shape == want[k].shape, k
        assert np.array_equal(got[k], want[k]), k  # no NaNs drawn: plain equality is bit equality
        assert got[k].tobytes() == want[k].tobytes(), k  # and -0.0 against 0.0 would show here


def _scaled(path: Path, tpd: int) -> Scenario:
    """A shipped scenario with its daily count replaced, to keep the comparison quick."""
    sc = load_scenario(path)
    text = path.read_text(encoding="utf-8")
    old = f"transactions_per_day: {sc.traffic.transactions_per_day}"
    assert old in text
    return parse_scenario(text.replace(old, f"transactions_per_day: {tpd}"), str(path))


def _variant(service: str, limit: str, amount: str, seed: int, tpd: int, unknown: float) -> Scenario:
    """The small scenario with other distributions for service times, card limits and one category's amounts."""
    text = (SMALL_YAML.replace("transactions_per_day: 3000", f"transactions_per_day: {tpd}")
            .replace("seed: 42", f"seed: {seed}")
            .replace("unknown_bin_rate: 0.01", f"unknown_bin_rate: {unknown}")
            .replace("{distribution: constant, value: 30}", service)
            .replace('"5812": {distribution: uniform, low: 1000, high: 20000}', f'"5812": {amount}')
            .replace("    risk_decline_rate: 0.05\n", f"    risk_decline_rate: 0.05\n    credit_limit_minor: {limit}\n"))
    return parse_scenario(text)


_DISTS = st.sampled_from([
    "{distribution: constant, value: 30}",
    "{distribution: exponential, mean: 45}",
    "{distribution: uniform, low: 5, high: 90}",
    "{distribution: lognormal, median: 30, sigma: 0.5}",
])
_LIMITS = st.sampled_from([
    "{distribution: lognormal, median: 500000, sigma: 2.0}",
    "{distribution: uniform, low: 0, high: 3000000}",
    "{distribution: exponential, mean: 800000}",
    "{distribution: constant, value: 250000.4}",
])


class TestSameDrawsAsBefore:
    """draw_block, sample and card_credit_limits give the reference's arrays bit for bit."""

    @pytest.mark.parametrize("name", ["baseline", "national_day", "intraday_windows", "issuer_outage"])
    def test_shipped_scenarios(self, name: str) -> None:
        sc = _scaled(SCENARIOS / f"{name}.yaml", 120_000)
        cat = build_catalogue(sc)
        for day, hour in [(0, 0), (0, 13), (sc.run.days - 1, 23)]:
            _assert_same_block(draw_block(sc, cat, day, hour, 17), _ref_draw_block(sc, cat, day, hour, 17))

    def test_national_hour_in_parts(self) -> None:
        sc = _scaled(SCENARIOS / "national_day.yaml", 600_000)  # its busiest hour: about 72,000
        cat = build_catalogue(sc)
        for part in range(3):
            _assert_same_block(draw_block(sc, cat, 0, 0, 5, part, 3), _ref_draw_block(sc, cat, 0, 0, 5, part, 3))

    def test_an_hour_without_purchases(self) -> None:
        text = SMALL_YAML.replace("  unknown_bin_rate", f"  hourly_profile: {[0] * 6 + [1] * 18}\n  unknown_bin_rate")
        sc = parse_scenario(text)
        cat = build_catalogue(sc)
        _assert_same_block(draw_block(sc, cat, 0, 2, 0), _ref_draw_block(sc, cat, 0, 2, 0))

    @given(service=_DISTS, limit=_LIMITS, amount=_DISTS, seed=st.integers(0, 2**40),
           tpd=st.integers(0, 60_000), unknown=st.sampled_from([0.0, 0.01, 0.5]),
           hour=st.integers(0, 23), parts=st.integers(1, 3))
    @settings(max_examples=40, deadline=None)
    def test_any_distributions(self, service, limit, amount, seed, tpd, unknown, hour, parts) -> None:
        sc = _variant(service, limit, amount, seed, tpd, unknown)
        cat = build_catalogue(sc)
        part = seed % parts
        _assert_same_block(draw_block(sc, cat, 0, hour, 3, part, parts),
                           _ref_draw_block(sc, cat, 0, hour, 3, part, parts))

    @given(dist=st.sampled_from(["constant", "exponential", "uniform", "lognormal"]),
           n=st.integers(0, 3000), seed=st.integers(0, 2**32))
    @settings(max_examples=60, deadline=None)
    def test_sample(self, dist: str, n: int, seed: int) -> None:
        d = {"constant": Distribution("constant", value=2.5), "exponential": Distribution("exponential", mean=40.0),
             "uniform": Distribution("uniform", low=1.0, high=9.0),
             "lognormal": Distribution("lognormal", median=3.0, sigma=0.3)}[dist]
        rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
        got, want = sample(d, rng_a, n), _ref_sample(d, rng_b, n)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
        assert rng_a.random() == rng_b.random()  # and the stream is left where it was

    @given(limit=_LIMITS, seed=st.integers(0, 2**40),
           issuer=st.lists(st.integers(-1, 1), max_size=300),
           card=st.lists(st.integers(0, 2**62), min_size=300, max_size=300))
    @settings(max_examples=60, deadline=None)
    def test_card_credit_limits(self, limit, seed, issuer, card) -> None:
        sc = _variant("{distribution: constant, value: 30}", limit, "{distribution: constant, value: 30}", seed,
                      1000, 0.01)
        iss = np.array(issuer, dtype=np.int16)
        c = np.array(card[:len(issuer)], dtype=np.int64)
        got, want = card_credit_limits(sc, iss, c), _ref_card_credit_limits(sc, iss, c)
        assert got.dtype == want.dtype and np.array_equal(got, want)

    def test_card_credit_limits_national(self) -> None:
        sc = load_scenario(SCENARIOS / "national_day.yaml")
        rng = np.random.default_rng(3)
        iss = rng.integers(-1, len(sc.issuers), 200_000).astype(np.int16)
        c = rng.integers(0, 9_000_000, 200_000)
        assert np.array_equal(card_credit_limits(sc, iss, c), _ref_card_credit_limits(sc, iss, c))
        one = np.full(1000, 7, dtype=np.int16)  # as fast mode's end-of-run check asks: one issuer's cards
        assert np.array_equal(card_credit_limits(sc, one, c[:1000]), _ref_card_credit_limits(sc, one, c[:1000]))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(-1, 300), max_size=300), st.integers(-1, 2))
def test_group_order_is_the_stable_argsort(keys: list[int], lo: int) -> None:
    """Each group's positions ascending, groups in key order: numpy's stable argsort, and the
    bounds where each key starts; a key outside [lo, lo + k) is refused."""
    key = np.array(keys, dtype=np.int64)
    k = 302
    if len(key) and key.min() < lo:
        with pytest.raises(ValueError):
            traffic.group_order(key, lo, k)
        return
    order, bounds = traffic.group_order(key, lo, k)
    assert np.array_equal(order, np.argsort(key, kind="stable"))
    assert np.array_equal(bounds, np.searchsorted(key[order], np.arange(lo, lo + k + 1)))


class TestFarTailsPastFloat64:
    """A valid distribution whose far tail passes float64 gives inf there, silently: amounts and
    credit limits clip it, a refund or dispute delay past its limit never happens. numpy's
    overflow warnings went to stderr (and were an internal error under `-W error`)."""

    HUGE = [Distribution("lognormal", median=1e308, sigma=10.0), Distribution("lognormal", median=5000.0, sigma=1e300),
            Distribution("exponential", mean=1.7e308)]

    @pytest.mark.parametrize("dist", HUGE, ids=["median", "sigma", "mean"])
    def test_no_warning_and_inf_in_the_tail(self, dist: Distribution) -> None:
        import warnings

        rng = np.random.default_rng(1)
        u1, u2 = rng.random(10_000), rng.random(10_000)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            from_uniforms = traffic.sample_from_uniforms(dist, u1, u2)
            drawn = traffic.sample(dist, np.random.default_rng(2), 10_000)
        for v in (from_uniforms, drawn):
            assert not np.isnan(v).any() and (v >= 0).all()
        assert np.isinf(from_uniforms).any()

    def test_lognormal_credit_limits_have_no_warning(self, small_scenario) -> None:
        """Every issuer's limits lognormal (the default kind): the compiled path clips inf to 10^15."""
        import warnings

        import attrs

        huge = Distribution("lognormal", median=1_000_000.0, sigma=1e300)
        sc = attrs.evolve(small_scenario, issuers=tuple(attrs.evolve(i, credit_limit_minor=huge)
                                                        for i in small_scenario.issuers))
        card = np.arange(3000, dtype=np.int64) % 3000
        issuer = (np.arange(3000) % 2).astype(np.int16)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            limits = traffic.card_credit_limits(sc, issuer, card)
        assert limits.max() == 10**15 and limits.min() >= 0

    def test_a_run_with_them_has_no_warning(self) -> None:
        import warnings

        import clearing_sim

        text = (SMALL_YAML.replace("cards: 5000", "cards: 5000\n    credit_limit_minor: {distribution: exponential, mean: 1.7e308}")
                .replace("sigma: 0.8", "sigma: 1.0e+300")
                .replace('cutoffs: ["12:30", "23:45"]', 'cutoffs: ["12:30", "23:45"]\n  refund_rate: 0.5\n'
                         '  refund_delay_days: {distribution: lognormal, median: 1.0e+308, sigma: 10}'))
        sc = parse_scenario(text)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            result = clearing_sim.run(sc, mode="fast")
        amounts = result.transactions["amount_minor"].to_numpy()
        assert amounts.max() == sc.traffic.amount_max_minor
        assert result.summary["clearing"]["refunds"] == 0  # every delay is past the refund limit
