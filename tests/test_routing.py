"""PANs and BIN routing: Luhn-valid cards that route back to their issuer, longest prefix first."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pathlib import Path

from clearing_sim.model.routing import _POW10, PAN_DIGITS, BinTable, luhn_check_digit, luhn_valid
from clearing_sim.scenario import load_scenario, parse_scenario
from tests.conftest import SMALL_YAML

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def naive_luhn_ok(pan: int) -> bool:
    digits = [int(c) for c in str(pan)][::-1]
    total = sum(d if i % 2 == 0 else (2 * d - 9 if 2 * d > 9 else 2 * d) for i, d in enumerate(digits))
    return total % 10 == 0


class TestLuhn:
    """Check digits agree with the textbook Luhn algorithm."""

    def test_known_number(self) -> None:
        # 4111 1111 1111 1111 is the classic Luhn-valid test card number.
        assert luhn_valid(np.array([4111111111111111]))[0]
        assert luhn_check_digit(np.array([411111111111111]))[0] == 1

    @given(st.integers(10**14, 10**15 - 1))
    @settings(max_examples=200)
    def test_matches_naive(self, payload: int) -> None:
        pan = payload * 10 + int(luhn_check_digit(np.array([payload]))[0])
        assert naive_luhn_ok(pan)


class TestRouting:
    """Each generated PAN routes to its issuer; unknown BINs route nowhere; 8 digits beat 6."""

    def test_cards_route_home(self) -> None:
        s = parse_scenario(SMALL_YAML)
        table = BinTable(s)
        issuer = np.array([0, 0, 0, 1, 1, -1], dtype=np.int16)
        card = np.array([0, 1, 4999, 7, 2999, 3], dtype=np.int64)
        pans = table.pans(issuer, card)
        assert luhn_valid(pans).all()
        assert (pans >= 10**15).all() and (pans < 10**16).all()
        assert np.array_equal(table.route(pans), issuer)

    def test_longest_prefix_wins(self) -> None:
        text = SMALL_YAML.replace('bins: ["400003"]', 'bins: ["400002"]')
        s = parse_scenario(text)
        table = BinTable(s)  # BANKA owns 40000210 (8 digits), BANKB owns 400002 (6 digits)
        pans = np.array([4000021012345678, 4000029912345678, 4000011234567890, 5500000000000004])
        assert table.route(pans).tolist() == [0, 1, 0, -1]


# --- the reference: the array versions as they were before the compiled loops ---------------


def _ref_luhn_check_digit(payload: np.ndarray) -> np.ndarray:
    total = np.zeros(payload.shape, dtype=np.int64)
    for k in range(PAN_DIGITS - 1):
        d = (payload // _POW10[k]) % 10
        if k % 2 == 0:
            d = d * 2
            d = np.where(d > 9, d - 9, d)
        total += d
    return (10 - total % 10) % 10


def _ref_pans(table: BinTable, issuer: np.ndarray, card: np.ndarray) -> np.ndarray:
    pan = np.zeros(issuer.shape, dtype=np.int64)
    groups = [(k, bins) for k, bins in enumerate(table.bins_by_issuer)] + [(-1, (table.unknown_bin,))]
    for k, bins in groups:
        idx = np.flatnonzero(issuer == k)
        if len(idx) == 0:
            continue
        c = card[idx]
        which = c % len(bins)
        for j, b in enumerate(bins):
            sel = idx[which == j]
            acct_digits = PAN_DIGITS - 1 - len(b)
            account = (card[sel] // len(bins)) % _POW10[acct_digits]
            pan[sel] = int(b) * _POW10[acct_digits] + account
    return pan * 10 + _ref_luhn_check_digit(pan)


def _ref_route(table: BinTable, pan: np.ndarray) -> np.ndarray:
    out = np.full(pan.shape, -1, dtype=np.int16)
    for length, bins, owners in table._tables:
        if len(bins) == 0:
            continue
        prefix = pan // _POW10[PAN_DIGITS - length]
        pos = np.searchsorted(bins, prefix)
        pos_c = np.minimum(pos, len(bins) - 1)
        hit = (bins[pos_c] == prefix) & (out == -1)
        out[hit] = owners[pos_c[hit]]
    return out


class TestSameAsBefore:
    """The compiled Luhn digits and PANs equal the array versions', value for value and dtype."""

    @given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=200))
    @settings(max_examples=100, deadline=None)
    def test_luhn_any_int64(self, payloads: list[int]) -> None:
        p = np.array(payloads, dtype=np.int64)
        got, want = luhn_check_digit(p), _ref_luhn_check_digit(p)
        assert got.dtype == want.dtype and np.array_equal(got, want)

    def test_luhn_many_payloads_and_shapes(self) -> None:
        p = np.random.default_rng(1).integers(0, 10**15, 200_000)
        assert np.array_equal(luhn_check_digit(p), _ref_luhn_check_digit(p))
        grid = p[:12].reshape(3, 4)
        assert np.array_equal(luhn_check_digit(grid), _ref_luhn_check_digit(grid))
        assert luhn_check_digit(np.int64(p[0])) == _ref_luhn_check_digit(np.int64(p[0]))

    @given(issuer=st.lists(st.integers(-2, 3), max_size=200), card=st.lists(st.integers(0, 2**50), min_size=200,
                                                                           max_size=200))
    @settings(max_examples=100, deadline=None)
    def test_pans_small(self, issuer: list[int], card: list[int]) -> None:
        table = BinTable(parse_scenario(SMALL_YAML))  # BANKA has a 6- and an 8-digit BIN
        iss = np.array(issuer, dtype=np.int16)
        c = np.array(card[:len(issuer)], dtype=np.int64)
        got, want = table.pans(iss, c), _ref_pans(table, iss, c)
        assert got.dtype == want.dtype and np.array_equal(got, want)

    @pytest.mark.parametrize("name", ["baseline", "national_day", "issuer_outage"])
    def test_pans_shipped(self, name: str) -> None:
        sc = load_scenario(SCENARIOS / f"{name}.yaml")
        table = BinTable(sc)
        rng = np.random.default_rng(7)
        iss = rng.integers(-1, len(sc.issuers), 100_000).astype(np.int16)
        card = rng.integers(0, 10**7, 100_000)
        assert np.array_equal(table.pans(iss, card), _ref_pans(table, iss, card))

    @pytest.mark.parametrize("name", ["baseline", "national_day", "issuer_outage"])
    def test_route_shipped(self, name: str) -> None:
        sc = load_scenario(SCENARIOS / f"{name}.yaml")
        table = BinTable(sc)
        rng = np.random.default_rng(8)
        iss = rng.integers(-1, len(sc.issuers), 100_000).astype(np.int16)
        pans = table.pans(iss, rng.integers(0, 10**7, 100_000))
        noise = rng.integers(0, 10**16, 100_000)  # mostly routing nowhere
        for p in (pans, noise):
            got, want = table.route(p), _ref_route(table, p)
            assert got.dtype == want.dtype and np.array_equal(got, want)

    @given(pans=st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1),
                                   st.sampled_from([4000021012345678, 4000029912345678, 4000011234567890,
                                                    4000030000000000, 4000039999999999, 4000010000000000])),
                         max_size=100),
           six=st.booleans())
    @settings(max_examples=100, deadline=None)
    def test_route_any_pan(self, pans: list[int], six: bool) -> None:
        text = SMALL_YAML.replace('bins: ["400003"]', 'bins: ["400002"]') if six else SMALL_YAML
        table = BinTable(parse_scenario(text))  # with six: an 8-digit BIN inside another issuer's 6-digit one
        p = np.array(pans, dtype=np.int64)
        got, want = table.route(p), _ref_route(table, p)
        assert got.dtype == want.dtype and np.array_equal(got, want)

    def test_long_tables(self) -> None:
        """Tables of over 64 BINs (searched by bisection, not counted) route as before too."""
        many = ", ".join(f'"{500000 + 7 * j}"' for j in range(90)) + ", " + ", ".join(
            f'"{60000000 + 13 * j}"' for j in range(80))
        table = BinTable(parse_scenario(SMALL_YAML.replace('bins: ["400001", "40000210"]', f"bins: [{many}]")))
        assert all(len(bins) > 64 for _, bins, _ in table._tables)
        rng = np.random.default_rng(9)
        iss = rng.integers(-1, 2, 50_000).astype(np.int16)
        pans = table.pans(iss, rng.integers(0, 10**9, 50_000))
        assert np.array_equal(table.route(pans), iss)
        for p in (pans, pans + 10**10, rng.integers(-(2**62), 2**62, 50_000)):
            assert np.array_equal(table.route(p), _ref_route(table, p))


def test_transactions_bin_is_the_bin_the_switch_routed_by() -> None:
    """`transactions.parquet`'s `bin` is the issuer BIN that routed the card: eight digits for
    a card of an 8-digit BIN (baseline's ICBC 37960210, whose cards' first six digits 379602
    are no BIN at all), six otherwise; a card no BIN matches shows its first six digits."""
    import clearing_sim

    text = (SCENARIOS / "baseline.yaml").read_text().replace("transactions_per_day: 240000",
                                                            "transactions_per_day: 4000")
    assert "transactions_per_day: 4000" in text
    sc = parse_scenario(text, "baseline.yaml")
    assert sc.traffic.unknown_bin_rate > 0
    t = clearing_sim.run(sc, mode="fast").transactions.to_pydict()
    bins_of = {i.institution: {int(b) for b in i.bins} for i in sc.issuers}
    all_bins = set().union(*bins_of.values())
    seen = set()
    for issuer, b in zip(t["issuer"], t["bin"]):
        if issuer is None:  # unknown BIN: declined by the switch
            assert 100_000 <= b <= 999_999 and not any(str(b).startswith(str(x)[:6]) for x in all_bins)
        else:
            assert b in bins_of[issuer], (issuer, b)
            seen.add(b)
    assert 37960210 in seen and 379601 in seen and None in t["issuer"]
