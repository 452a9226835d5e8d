"""Named random streams derived from one root seed.

Owns: turning (root seed, component name, block keys) into an independent
`numpy.random.Generator`. A stream depends only on those, never on the order in
which components ask, the mode, the worker or the executor, which is what makes
runs replayable and the two fidelity modes see the same draws; and the counter-based
draws (SplitMix64 of a key and a counter), compiled loops (numba, releasing the GIL) with
numpy's wrapping uint64 arithmetic. Must never use module-level or global random state.
"""

from __future__ import annotations

import zlib

import numba
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


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@numba.njit(cache=True, nogil=True)
def splitmix64_one(z):
    """SplitMix64's output function of one uint64 (compiled, for other kernels to call)."""
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


@numba.njit(cache=True, nogil=True)
def counter_uniform_one(key, counter):
    """`counter_uniform` of one uint64 key and counter (compiled, for other kernels to call)."""
    z = splitmix64_one(key + counter * _GOLDEN)
    return (np.float64(z >> np.uint64(11)) + 0.5) / 9007199254740992.0  # 2**53


@numba.njit(cache=True, nogil=True)
def _splitmix64_kernel(x, out):
    for i in range(x.shape[0]):
        out[i] = splitmix64_one(x[i])


@numba.njit(cache=True, nogil=True)
def _counter_uniform_kernel(key, counter, out):
    for i in range(counter.shape[0]):
        out[i] = counter_uniform_one(key, counter[i])


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function: a bijective mix of uint64 values (wrapping arithmetic).

    Takes any integer array (cast to uint64, negative values wrapping) and returns a new
    uint64 array of its shape; a compiled loop that releases the GIL.
    """
    z = np.asarray(x).astype(np.uint64, order="C", copy=True)
    flat = z.reshape(-1)  # a view: z is C-contiguous
    _splitmix64_kernel(flat, flat)
    return z


def counter_uniform(key: int, counter: np.ndarray) -> np.ndarray:
    """A uniform in (0, 1) per counter value: a pure function of (key, counter).

    For draws tied to an entity rather than to an event (a card's credit limit or
    product, a purchase's ARN), so they need no stream position and no memory.
    `key` is a uint64 (0 <= key < 2**64); counters are cast to uint64
    (negative values wrapping). Returns float64 of the counter's shape.
    """
    c = np.asarray(counter).astype(np.uint64, order="C")
    out = np.empty(c.shape, dtype=np.float64)
    _counter_uniform_kernel(np.uint64(key), c.reshape(-1), out.reshape(-1))
    return out if out.ndim else out[()]  # a scalar counter gives a scalar, as numpy arithmetic does
