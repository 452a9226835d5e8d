"""Named random streams: fixed by (seed, name, keys), independent of call order."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim import rng as rng_module
from clearing_sim.rng import counter_uniform, splitmix64, standard_normal_into, stream


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


class TestStandardNormalsSameAsNumpy:
    """standard_normal_into gives numpy's standard normals and leaves the stream where numpy does."""

    @staticmethod
    def _both(seed: int, keys: tuple[int, ...], skip: int, skip32: int, n: int):
        numpy_rng, ours_rng = stream(seed, "x", *keys), stream(seed, "x", *keys)
        for rng in (numpy_rng, ours_rng):  # any position, a buffered 32-bit half included
            rng.random(skip)
            rng.integers(0, 2**32, size=skip32, dtype=np.uint32)
        want = numpy_rng.standard_normal(n)
        got = np.empty(n)
        standard_normal_into(ours_rng, got)
        return want, got, numpy_rng, ours_rng

    @given(seed=st.integers(0, 2**64 - 1), keys=st.lists(st.integers(0, 2**31), max_size=3),
           skip=st.integers(0, 50), skip32=st.integers(0, 3), n=st.integers(0, 3000))
    @settings(max_examples=100, deadline=None)
    def test_any_stream_and_position(self, seed, keys, skip, skip32, n) -> None:
        want, got, numpy_rng, ours_rng = self._both(seed, tuple(keys), skip, skip32, n)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert ours_rng.bit_generator.state == numpy_rng.bit_generator.state
        assert np.array_equal(ours_rng.random(3), numpy_rng.random(3))

    def test_many_with_tails(self) -> None:
        want, got, numpy_rng, ours_rng = self._both(3, (1, 2), 0, 0, 3_000_000)
        assert (np.abs(want) > 3.6541528853610088).sum() > 100  # the ziggurat's tail branch ran
        assert np.array_equal(got, want)
        assert ours_rng.bit_generator.state == numpy_rng.bit_generator.state

    def test_row_of_a_block(self) -> None:
        """A row of a (hops, n) block, as traffic fills it."""
        block = np.empty((4, 1000))
        standard_normal_into(stream(4, "network", 0, 1), block[2])
        assert np.array_equal(block[2], stream(4, "network", 0, 1).standard_normal(1000))

    def test_the_compiled_copy_is_the_one_in_use(self) -> None:
        """On this install the self-check passes, so the tests above test what runs draw with."""
        assert rng_module._compiled_normals()

    def test_falls_back_to_numpy_when_the_copy_differs(self, monkeypatch) -> None:
        monkeypatch.setattr(rng_module, "_compiled_standard_normals",
                            lambda rng, out: out.fill(0.0))  # a copy that has drifted
        monkeypatch.setattr(rng_module, "_compiled_normals", rng_module._compiled_normals.__wrapped__)
        assert not rng_module._compiled_normals()
        numpy_rng, ours_rng = stream(9, "x"), stream(9, "x")
        got = np.empty(500)
        standard_normal_into(ours_rng, got)
        assert np.array_equal(got, numpy_rng.standard_normal(500))
        assert ours_rng.bit_generator.state == numpy_rng.bit_generator.state

    def test_refuses_other_generators_and_outputs(self) -> None:
        with pytest.raises(TypeError):
            standard_normal_into(np.random.Generator(np.random.MT19937(1)), np.empty(3))
        with pytest.raises(ValueError):
            standard_normal_into(stream(1, "x"), np.empty(6)[::2])
        with pytest.raises(ValueError):
            standard_normal_into(stream(1, "x"), np.empty(3, dtype=np.float32))
