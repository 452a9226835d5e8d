"""Named random streams derived from one root seed.

Owns: turning (root seed, component name, block keys) into an independent
`numpy.random.Generator`. A stream depends only on those, never on the order in
which components ask, the mode, the worker or the executor, which is what makes
runs replayable and the two fidelity modes see the same draws. Must never use
module-level or global random state.
"""

from __future__ import annotations

import zlib

import numpy as np


def _name_key(name: str) -> int:
    """A stable 32-bit key for a component name (crc32 is fixed across platforms)."""
    return zlib.crc32(name.encode("utf-8"))


def stream(seed: int, name: str, *keys: int) -> np.random.Generator:
    """The generator for component `name` (and optional block keys such as day, hour).

    Equivalent to spawning a child of `SeedSequence(seed)` whose spawn key is the
    name's key followed by `keys`, so streams are statistically independent.
    """
    if seed < 0:
        raise ValueError(f"seed must not be negative, got {seed}")
    seq = np.random.SeedSequence(entropy=seed, spawn_key=(_name_key(name), *[int(k) for k in keys]))
    return np.random.Generator(np.random.PCG64(seq))


def derived_seed(root: int, name: str, *keys: int) -> int:
    """A root seed for a replication or sweep point: a pure function of (root, name, keys).

    It is what `numpy.random.SeedSequence(root)` would give a child spawned with key
    (name's key, *keys), reduced to 63 bits so it is a valid `run.seed`. Being a pure
    function of its arguments, it does not depend on the executor, the worker or the
    order in which replications are run.
    """
    if root < 0:
        raise ValueError(f"seed must not be negative, got {root}")
    seq = np.random.SeedSequence(entropy=root, spawn_key=(_name_key(name), *[int(k) for k in keys]))
    return int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1))
