"""Named random streams derived from one root seed.

Owns: turning (root seed, component name, block keys) into an independent
`numpy.random.Generator`. A stream depends only on those, never on the order in
which components ask, the mode, the worker or the executor, which is what makes
runs replayable and the two fidelity modes see the same draws; the counter-based
draws (SplitMix64 of a key and a counter), compiled loops (numba, releasing the GIL) with
numpy's wrapping uint64 arithmetic; and a stream's standard normals drawn in a compiled
loop from the stream itself (numba's port of numpy's algorithm: the same numbers, in the
same order, and the stream left where numpy would leave it). Must never use module-level or global random state.
"""

from __future__ import annotations

import functools
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


# --- standard normals, compiled ------------------------------------------------------------------
#
# `Generator.standard_normal` calls numpy's ziggurat through two function pointers per draw
# (about 14-18 ns); numba draws from the generator's own bit generator in a compiled loop
# (numba.np.random ports numpy's distributions, tables included) in about 5-7 ns. numba's
# port and numpy's algorithm could part in another release, so the compiled loop is used only
# after it has given numpy's own numbers once in the process (`_compiled_normals`); otherwise
# numpy draws them. Tests compare the draws with numpy's, tails included.


@numba.njit(cache=True, nogil=True)
def _standard_normal_kernel(rng, out):  # pragma: no cover - compiled
    """`rng.standard_normal()` once per element of `out` (numba's np.random.Generator support)."""
    for i in range(out.shape[0]):
        out[i] = rng.standard_normal()


def standard_normal_into(rng: np.random.Generator, out: np.ndarray) -> None:
    """`rng.standard_normal(out=out)`: the same numbers, and `rng` left in the same state, for
    a PCG64 generator (every `stream` is one); `out` is a C-contiguous float64 array.

    Raises TypeError for another bit generator, ValueError for another `out`.
    """
    bit_gen = rng.bit_generator
    if not isinstance(bit_gen, np.random.PCG64):
        raise TypeError(f"standard_normal_into needs a PCG64 generator, got {type(bit_gen).__name__}")
    if out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError("standard_normal_into fills a C-contiguous float64 array")
    if _compiled_normals():
        _compiled_standard_normals(rng, out)
    else:
        rng.standard_normal(out=out)


def _compiled_standard_normals(rng: np.random.Generator, out: np.ndarray) -> None:
    with rng.bit_generator.lock:  # as numpy's own draws hold it
        _standard_normal_kernel(rng, out.reshape(-1))


@functools.cache
def _compiled_normals() -> bool:
    """Whether the compiled loop gives this numpy's standard normals, checked once per process on
    20,000 draws (the ziggurat's common and wedge branches; tests check the tail too)."""
    ours, theirs = np.random.Generator(np.random.PCG64(20261126)), np.random.Generator(np.random.PCG64(20261126))
    got = np.empty(20_000)
    try:
        _compiled_standard_normals(ours, got)
    except numba.core.errors.NumbaError:  # pragma: no cover - a numba that cannot compile it
        return False
    return bool(np.array_equal(got, theirs.standard_normal(20_000))
                and ours.bit_generator.state == theirs.bit_generator.state)
