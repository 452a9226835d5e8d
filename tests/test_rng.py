"""Named random streams: fixed by (seed, name, keys), independent of call order."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim.rng import counter_uniform, splitmix64, stream


class TestStreams:
    """A stream depends on its seed, name and keys only."""

    def test_same_inputs_same_draws(self) -> None:
        assert np.array_equal(stream(5, "traffic", 0, 3).random(10), stream(5, "traffic", 0, 3).random(10))

    def test_order_of_creation_does_not_matter(self) -> None:
        a = stream(5, "network").random(5)
        stream(5, "traffic").random(100)
        assert np.array_equal(a, stream(5, "network").random(5))

    @pytest.mark.parametrize("other", [(6, "traffic", 0), (5, "network", 0), (5, "traffic", 1)])
    def test_any_difference_changes_draws(self, other) -> None:
        assert not np.array_equal(stream(5, "traffic", 0).random(10), stream(*other).random(10))

    def test_negative_seed_refused(self) -> None:
        with pytest.raises(ValueError):
            stream(-1, "x")


# --- the reference: splitmix64 and counter_uniform as numpy array code, before the compiled loops -

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _ref_splitmix64(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x).astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def _ref_counter_uniform(key: int, counter: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        base = np.uint64(key) + np.asarray(counter).astype(np.uint64) * _GOLDEN
    return ((_ref_splitmix64(base) >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def _same(got, want) -> bool:
    return type(got) is type(want) and np.shape(got) == np.shape(want) and np.asarray(got).dtype == \
        np.asarray(want).dtype and np.array_equal(got, want)


class TestCounterDrawsSameAsBefore:
    """The compiled splitmix64 and counter_uniform equal the numpy versions for any input."""

    @given(key=st.integers(0, 2**64 - 1), counter=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=100))
    @settings(max_examples=100, deadline=None)
    def test_any_key_and_counters(self, key: int, counter: list[int]) -> None:
        c = np.array(counter, dtype=np.int64)
        assert _same(splitmix64(c), _ref_splitmix64(c))
        assert _same(counter_uniform(key, c), _ref_counter_uniform(key, c))

    @pytest.mark.parametrize("counter", [3, np.int64(3), np.array(3), np.arange(12).reshape(3, 4).T,
                                         np.arange(20, dtype=np.uint64)[::3], np.arange(5, dtype=np.int16)])
    def test_shapes_and_types(self, counter) -> None:
        assert _same(counter_uniform(99, counter), _ref_counter_uniform(99, counter))
        assert _same(splitmix64(counter), _ref_splitmix64(counter))

    def test_many(self) -> None:
        c = np.random.default_rng(2).integers(0, 2**63 - 1, 300_000)
        assert _same(counter_uniform(2**63 + 5, c), _ref_counter_uniform(2**63 + 5, c))
