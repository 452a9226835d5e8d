"""Named random streams: fixed by (seed, name, keys), independent of call order."""

import numpy as np
import pytest

from clearing_sim.rng import stream


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
