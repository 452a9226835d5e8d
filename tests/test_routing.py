"""PANs and BIN routing: Luhn-valid cards that route back to their issuer, longest prefix first."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim.model.routing import BinTable, luhn_check_digit, luhn_valid
from clearing_sim.scenario import parse_scenario
from tests.conftest import SMALL_YAML


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
