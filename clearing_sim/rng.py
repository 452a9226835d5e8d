"""Named random streams derived from one root seed.

Owns: turning (root seed, component name, block keys) into an independent
`numpy.random.Generator`. A stream depends only on those, never on the order in
which components ask, the mode, the worker or the executor, which is what makes
runs replayable and the two fidelity modes see the same draws; the counter-based
draws (SplitMix64 of a key and a counter), compiled loops (numba, releasing the GIL) with
numpy's wrapping uint64 arithmetic; and a stream's standard normals drawn by a compiled
copy of numpy's own algorithm (the same numbers, in the same order, and the stream left
where numpy would leave it). Must never use module-level or global random state.
"""

from __future__ import annotations

import functools
import zlib

import numba
import numpy as np

try:  # numba's copy of numpy's ziggurat tables: a private module, hence the guard (`_compiled_normals`)
    from numba.np.random import _constants as _zig
except ImportError:  # pragma: no cover - depends on the installed numba
    _zig = None


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


# --- standard normals: numpy's ziggurat on PCG64, compiled -------------------------------------
#
# `Generator.standard_normal` calls the ziggurat through two function pointers per draw (about
# 14 ns each); the same steps compiled in one loop take about 6 ns. The tables are numba's
# copy of numpy's (numba.np.random ports numpy's distributions); tests compare the draws with
# numpy's, tails included. Both the tables' home (a private numba module) and numpy's algorithm
# could change in another release, so the compiled copy is used only after it has given numpy's
# own numbers once in the process (`_compiled_normals`); otherwise numpy draws them.

_M32 = np.uint64(0xFFFFFFFF)
_PCG_MULT_LO = np.uint64(0x4385DF649FCCF645)  # PCG64's 128-bit multiplier, low and high words
_PCG_MULT_HI = np.uint64(0x2360ED051FC65DA4)
_ZIG_KI = np.asarray(_zig.ki_double if _zig else [0] * 256, dtype=np.uint64)
_ZIG_WI = np.asarray(_zig.wi_double if _zig else [0.0] * 256, dtype=np.float64)
_ZIG_FI = np.asarray(_zig.fi_double if _zig else [0.0] * 256, dtype=np.float64)
_ZIG_R = float(_zig.ziggurat_nor_r) if _zig else 0.0
_ZIG_INV_R = float(_zig.ziggurat_nor_inv_r) if _zig else 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _pcg64_next(s):
    """PCG64's next uint64 (numpy's `pcg64_next64`): the 128-bit LCG state (s[0] high word,
    s[1] low) steps by the multiplier and the increment (s[2], s[3]), then the XSL-RR output."""
    lo = s[1]
    a_lo = lo & _M32
    a_hi = lo >> np.uint64(32)
    b_lo = _PCG_MULT_LO & _M32
    b_hi = _PCG_MULT_LO >> np.uint64(32)
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    mid = ((a_lo * b_lo) >> np.uint64(32)) + (p1 & _M32) + (p2 & _M32)
    carry_hi = a_hi * b_hi + (p1 >> np.uint64(32)) + (p2 >> np.uint64(32)) + (mid >> np.uint64(32))
    prod_lo = lo * _PCG_MULT_LO
    new_lo = prod_lo + s[3]
    new_hi = carry_hi + s[0] * _PCG_MULT_LO + lo * _PCG_MULT_HI + s[2] + np.uint64(new_lo < prod_lo)
    s[0] = new_hi
    s[1] = new_lo
    rot = new_hi >> np.uint64(58)
    v = new_hi ^ new_lo
    return (v >> rot) | (v << ((np.uint64(64) - rot) & np.uint64(63)))


@numba.njit(cache=True, nogil=True, inline="always")
def _pcg64_double(s):
    """numpy's `next_double`: the top 53 bits of the next uint64, in [0, 1)."""
    return np.float64(_pcg64_next(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, nogil=True)
def _standard_normal_kernel(s, ki, wi, fi, out):
    """numpy's `random_standard_normal`, step for step, once per element of `out`."""
    for i in range(out.shape[0]):
        while True:
            r = _pcg64_next(s)
            idx = np.int64(r & np.uint64(0xFF))
            r >>= np.uint64(8)
            rabs = (r >> np.uint64(1)) & np.uint64(0x000FFFFFFFFFFFFF)
            x = np.float64(rabs) * wi[idx]
            if r & np.uint64(1):
                x = -x
            if rabs < ki[idx]:  # 99.3% of draws
                out[i] = x
                break
            if idx == 0:  # the tail beyond _ZIG_R
                while True:
                    xx = -_ZIG_INV_R * np.log1p(-_pcg64_double(s))
                    yy = -np.log1p(-_pcg64_double(s))
                    if yy + yy > xx * xx:
                        out[i] = -(_ZIG_R + xx) if (rabs >> np.uint64(8)) & np.uint64(1) else _ZIG_R + xx
                        break
                break
            if (fi[idx - 1] - fi[idx]) * _pcg64_double(s) + fi[idx] < np.exp(-0.5 * x * x):
                out[i] = x
                break


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
        _compiled_standard_normals(bit_gen, out)
    else:
        rng.standard_normal(out=out)


def _compiled_standard_normals(bit_gen: np.random.PCG64, out: np.ndarray) -> None:
    state = bit_gen.state
    v, inc = state["state"]["state"], state["state"]["inc"]
    s = np.array([v >> 64, v & 0xFFFFFFFFFFFFFFFF, inc >> 64, inc & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    _standard_normal_kernel(s, _ZIG_KI, _ZIG_WI, _ZIG_FI, out.reshape(-1))
    state["state"]["state"] = (int(s[0]) << 64) | int(s[1])
    bit_gen.state = state


@functools.cache
def _compiled_normals() -> bool:
    """Whether the compiled copy gives this numpy's standard normals, checked once per process on
    20,000 draws (the ziggurat's common and wedge branches; tests check the tail too): with a
    numba without the tables, or a numpy with another algorithm, numpy draws them itself."""
    if _zig is None:
        return False
    ours, theirs = np.random.Generator(np.random.PCG64(20261126)), np.random.Generator(np.random.PCG64(20261126))
    got = np.empty(20_000)
    _compiled_standard_normals(ours.bit_generator, got)
    return bool(np.array_equal(got, theirs.standard_normal(20_000))
                and ours.bit_generator.state == theirs.bit_generator.state)
