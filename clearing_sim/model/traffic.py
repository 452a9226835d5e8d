"""Card purchases and every random draw a purchase needs, made up front in arrays.

Owns: arrivals (a Poisson count per simulated hour spread uniformly within it, which
is a non-homogeneous Poisson process with a piecewise-constant rate; an hour expecting
more than `BLOCK_MAX` purchases is drawn as equal parts of the hour, each a Poisson count
spread within its part, which is the same process), the acquirer,
merchant, merchant category, issuer, card and amount of each purchase, and the
per-transaction draws later stages consume (hop latencies, host service time, the
risk rule's uniform). Each (day, hour) block draws from its own named streams, so a
block's draws never depend on the mode, on other blocks or on the order of
consumption. Must never simulate: it only draws.

Card credit limits are drawn once per card population, not per purchase: a card's
limit is a counter-based draw keyed by (seed, issuer, card), so every purchase with
the same card sees the same limit without an array the size of the population.

Cost: the drawing thread shares the cores with the authorisations, so draws are made
without temporaries (in place, hop rows as views of one array), purchases are grouped by
acquirer, issuer or category with one counting sort rather than a comparison per group
(each group's positions ascending, so its draws come in the same order), and the
integer and IEEE-only steps are compiled loops that release the GIL. numpy keeps every
random draw (the standard normals come from numpy's own algorithm compiled,
`rng.standard_normal_into`) and every exp, log and cos: the numbers are the same, bit for
bit, as drawing group by group with whole-array numpy arithmetic.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import attrs
import numba
import numpy as np

from clearing_sim.rng import counter_uniform_one, standard_normal_into, stream
from clearing_sim.scenario import Distribution, Scenario

HOUR_S = 3600.0
DAY_S = 86400.0
# An hour expecting more purchases than this is drawn in parts, so no block outgrows memory.
BLOCK_MAX = 1 << 20

# Column name -> dtype of a transaction block. Times in seconds from 00:00 of day 1.
COLUMNS: dict[str, np.dtype] = {
    "txn_id": np.dtype(np.int64),
    "day": np.dtype(np.int16),
    "t_arrival_s": np.dtype(np.float64),
    "acquirer": np.dtype(np.int16),
    "merchant": np.dtype(np.int32),
    "mcc": np.dtype(np.int16),
    "issuer": np.dtype(np.int16),  # -1: a BIN the switch does not know
    "card": np.dtype(np.int64),
    "amount_minor": np.dtype(np.int64),
    "hop_acq_switch_s": np.dtype(np.float64),
    "hop_switch_issuer_s": np.dtype(np.float64),
    "hop_issuer_switch_s": np.dtype(np.float64),
    "hop_switch_acq_s": np.dtype(np.float64),
    "service_s": np.dtype(np.float64),
    "risk_u": np.dtype(np.float64),
    # The card's credit limit (its open-to-buy when the run starts); 0 for unknown BINs.
    "credit_limit_minor": np.dtype(np.int64),
    # Hops of the messages after the 0100/0110 pair (stream "network_more"): the
    # acquirer's 0400 to the switch and its 0410 back, and for each store-and-forward
    # message to the issuer (the 0120 advice and the forwarded reversal) the hop out
    # and the issuer's acknowledgement back.
    "hop_rev_acq_switch_s": np.dtype(np.float64),
    "hop_rev_switch_acq_s": np.dtype(np.float64),
    "hop_advice_out_s": np.dtype(np.float64),
    "hop_advice_back_s": np.dtype(np.float64),
    "hop_rev_out_s": np.dtype(np.float64),
    "hop_rev_back_s": np.dtype(np.float64),
}

# Merchant category codes are four digits: purchases are grouped by code in one pass.
_MCC_CODES = 10_000

_MORE_HOPS = ("hop_rev_acq_switch_s", "hop_rev_switch_acq_s", "hop_advice_out_s", "hop_advice_back_s",
              "hop_rev_out_s", "hop_rev_back_s")


def sample(dist: Distribution, rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` draws of a scenario distribution, float64, in the distribution's own unit."""
    kind = dist.distribution
    if kind == "constant":
        return np.full(n, float(dist.value))  # type: ignore[arg-type]
    if kind == "exponential":
        return rng.exponential(dist.mean, n)
    if kind == "uniform":
        return rng.uniform(dist.low, dist.high, n)
    if kind == "lognormal":
        out = np.empty(n)
        sample_into(dist, rng, out)
        return out
    raise ValueError(f"unknown distribution {kind!r}")


def sample_into(dist: Distribution, rng: np.random.Generator, out: np.ndarray) -> None:
    """Fill `out` (C-contiguous float64) with `len(out)` draws of a scenario distribution:
    the numbers `sample` gives, drawn the same way, without temporaries.

    A lognormal is `median * exp(sigma * z)` from standard normals `z` (numpy's, drawn by
    `clearing_sim.rng.standard_normal_into`), each product taken in place (an IEEE product does not
    depend on the order of its two factors).
    """
    if dist.distribution == "lognormal":
        standard_normal_into(rng, out)
        # A far tail past float64 becomes inf (no warning), which each use handles: amounts and
        # credit limits are clipped, a delay past its limit never happens, message and service
        # times have their far tail checked at load, and a file transfer drawn as inf is a file
        # never received (counted in `files_not_cleared_by_end`).
        with np.errstate(over="ignore"):
            np.multiply(out, float(dist.sigma), out=out)  # type: ignore[arg-type]
            np.exp(out, out=out)
            np.multiply(out, float(dist.median), out=out)  # type: ignore[arg-type]
    else:
        out[...] = sample(dist, rng, len(out))


def sample_from_uniforms(dist: Distribution, u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """One draw of a scenario distribution per pair of uniforms in (0, 1) (inverse transform / Box-Muller).

    A far tail past float64 is inf, as in `sample_into` (no warning)."""
    kind = dist.distribution
    with np.errstate(over="ignore"):
        if kind == "constant":
            return np.full(u1.shape, float(dist.value))  # type: ignore[arg-type]
        if kind == "exponential":
            return -float(dist.mean) * np.log(u1)  # type: ignore[arg-type]
        if kind == "uniform":
            return float(dist.low) + (float(dist.high) - float(dist.low)) * u1  # type: ignore[arg-type]
        if kind == "lognormal":
            z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
            return float(dist.median) * np.exp(float(dist.sigma) * z)  # type: ignore[arg-type]
    raise ValueError(f"unknown distribution {kind!r}")


@functools.lru_cache(maxsize=1024)
def _limit_key(seed: int, issuer: int) -> int:
    """The counter key of issuer `issuer`'s card limits (stream "card_limits"), kept once drawn."""
    return int(stream(seed, "card_limits", issuer).integers(0, 2**63))


@numba.njit(cache=True, nogil=True)
def _card_uniforms_kernel(keys, slot, card, u1, u2):
    """counter_uniforms(keys[slot[i]], card[i]) for each card, in one pass."""
    two = np.uint64(2)
    for i in range(slot.shape[0]):
        key = keys[slot[i]]
        c = np.uint64(card[i]) * two
        u1[i] = counter_uniform_one(key, c)
        u2[i] = counter_uniform_one(key, c + np.uint64(1))


@numba.njit(cache=True, nogil=True)
def _box_muller_args_kernel(log_u1, u2, two_pi):
    """In place: log_u1 becomes sqrt(-2.0 * log u1), u2 becomes two_pi * u2 (cos to follow)."""
    for i in range(log_u1.shape[0]):
        log_u1[i] = np.sqrt(-2.0 * log_u1[i])
        u2[i] = two_pi * u2[i]


@numba.njit(cache=True, nogil=True)
def _lognormal_exponent_kernel(r, cos_v, sigma, slot):
    """In place: r becomes sigma[slot] * (r * cos_v), the exponent of the lognormal limit."""
    for i in range(r.shape[0]):
        r[i] = sigma[slot[i]] * (r[i] * cos_v[i])


@numba.njit(cache=True, nogil=True)
def _limits_kernel(e, median, slot, unknown, out):
    """out = int64(clip(rint(median[slot] * e), 0, 10**15)), 0 where slot is `unknown`."""
    for i in range(e.shape[0]):
        s = slot[i]
        if s == unknown:
            out[i] = 0
            continue
        x = np.rint(median[s] * e[i])
        if x < 0.0:
            x = 0.0
        elif x > 1e15:
            x = 1e15
        out[i] = np.int64(x)


def card_credit_limits(scenario: Scenario, issuer: np.ndarray, card: np.ndarray) -> np.ndarray:
    """Each card's credit limit in fen (int64, at least 0); 0 where the issuer is -1 (unknown BIN).

    The same numbers as drawing each issuer's cards on their own: the uniforms are a
    pure function of (issuer's key, card), and when every issuer's limit is lognormal the
    Box-Muller transform runs once over all cards with each card's own median and sigma
    (elementwise, the same IEEE operations in the same order).
    """
    issuer = np.asarray(issuer)
    out = np.zeros(issuer.shape, dtype=np.int64)
    n_iss = len(scenario.issuers)
    known = (issuer >= 0) & (issuer < n_iss)
    if not known.any():
        return out
    seed = scenario.run.seed
    keys = np.array([_limit_key(seed, k) for k in range(n_iss)] + [0], dtype=np.uint64)
    slot = np.where(known, issuer, n_iss).astype(np.intp).reshape(-1)  # n_iss: no issuer, key unused
    c = np.asarray(card).astype(np.int64).reshape(-1)
    u1 = np.empty(slot.shape)
    u2 = np.empty(slot.shape)
    _card_uniforms_kernel(keys, slot, c, u1, u2)
    dists = [iss.credit_limit_minor for iss in scenario.issuers]
    if all(d.distribution == "lognormal" for d in dists):
        # z = sqrt(-2 log u1) * cos(2 pi u2); limit = median * exp(sigma * z), each card with its
        # issuer's median and sigma. numpy takes the log, cos and exp (its own SIMD versions);
        # the compiled loops only the IEEE operations (products, sqrt, rint), in the same order.
        sigma = np.array([float(d.sigma) for d in dists] + [0.0])  # type: ignore[arg-type]
        median = np.array([float(d.median) for d in dists] + [0.0])  # type: ignore[arg-type]
        np.log(u1, out=u1)
        _box_muller_args_kernel(u1, u2, 2.0 * np.pi)
        np.cos(u2, out=u2)
        _lognormal_exponent_kernel(u1, u2, sigma, slot)
        with np.errstate(over="ignore"):  # past float64: inf, which the kernel clips to 10^15
            np.exp(u1, out=u1)
        _limits_kernel(u1, median, slot, n_iss, out.reshape(-1))
        return out
    raw = np.zeros(slot.shape)
    order, bounds = group_order(slot, 0, n_iss + 1)
    for k, d in enumerate(dists):
        idx = order[bounds[k]:bounds[k + 1]]
        raw[idx] = sample_from_uniforms(d, u1[idx], u2[idx])
    np.rint(raw, out=raw)
    np.clip(raw, 0, 10**15, out=raw)
    out.reshape(-1)[...] = raw.astype(np.int64)  # unknown BINs: raw stayed 0
    return out


@numba.njit(cache=True, nogil=True)
def _group_kernel(key, lo, k, order, bounds):
    """A counting sort of `key - lo` into k groups: positions in order, groups' starts in bounds.
    Returns False (order unfilled) if a key falls outside [lo, lo + k)."""
    counts = np.zeros(k, dtype=np.int64)
    for i in range(key.shape[0]):
        g = np.int64(key[i]) - lo
        if g < 0 or g >= k:
            return False
        counts[g] += 1
    bounds[0] = 0
    for g in range(k):
        bounds[g + 1] = bounds[g] + counts[g]
    nxt = bounds[:k].copy()
    for i in range(key.shape[0]):
        g = np.int64(key[i]) - lo
        order[nxt[g]] = i
        nxt[g] += 1
    return True


def group_order(key: np.ndarray, lo: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Purchases grouped by a small integer key in [lo, lo + k): `order[bounds[g]:bounds[g + 1]]`
    are the positions where key == lo + g, ascending, which is what `np.flatnonzero(key == lo + g)`
    gives, found by one counting sort instead of k comparisons of the whole array.

    Raises ValueError if a key falls outside [lo, lo + k).
    """
    order = np.empty(len(key), dtype=np.intp)
    bounds = np.empty(k + 1, dtype=np.intp)
    if not _group_kernel(key, lo, k, order, bounds):
        raise ValueError(f"a key outside [{lo}, {lo + k})")
    return order, bounds


# Buckets of the guide table that starts each search in the cdf (a power of two, so u * G
# and b / G are exact and bucket b holds exactly the uniforms in [b / G, (b + 1) / G)).
_GUIDE_BUCKETS = 1024


@numba.njit(cache=True, nogil=True)
def _pick_kernel(cdf, guide, u, out):
    """out[i] = how many cdf values are <= u[i], which is `cdf.searchsorted(u, side="right")` for
    a sorted cdf: the guide gives how many are <= the start of u's bucket, the rest are counted."""
    m = cdf.shape[0]
    g = guide.shape[0]
    for i in range(u.shape[0]):
        x = u[i]
        c = guide[np.int64(x * g)]
        while c < m and cdf[c] <= x:
            c += 1
        out[i] = c


def _choice(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    """`rng.choice(len(p), size=n, p=p).astype(np.int16)`, the same draws and values:
    numpy's choice takes one uniform per item and searches the cdf `cumsum(p) / its last`."""
    p = np.ascontiguousarray(p, dtype=np.float64)
    if p.ndim != 1 or len(p) == 0 or (p < 0).any() or abs(p.sum() - 1.0) > np.sqrt(np.finfo(np.float64).eps):
        raise ValueError("shares must be a non-empty 1-d array of probabilities summing to 1")
    cdf = p.cumsum()
    cdf /= cdf[-1]
    guide = np.searchsorted(cdf, np.arange(_GUIDE_BUCKETS) / _GUIDE_BUCKETS, side="right").astype(np.int64)
    u = rng.random(n)
    out = np.empty(n, dtype=np.int16)
    _pick_kernel(cdf, guide, u, out)
    return out


@numba.njit(cache=True, nogil=True)
def _card_kernel(u, issuer, cards, out):
    """out[i] = int64(u[i] * cards[issuer[i]]): a card index below the issuer's population
    (issuer -1 reads cards[-1], numpy's negative index)."""
    for i in range(u.shape[0]):
        out[i] = np.int64(u[i] * np.float64(cards[issuer[i]]))


@attrs.frozen
class Catalogue:
    """Fixed, drawn-once facts of the network: each merchant's category, share tables."""

    merchant_mcc: tuple[np.ndarray, ...]  # per acquirer: int16 MCC of each merchant
    acquirer_p: np.ndarray
    issuer_p: np.ndarray
    hour_weights: np.ndarray


def build_catalogue(scenario: Scenario) -> Catalogue:
    """Draw each acquirer's merchants' categories from its category mix."""
    seed = scenario.run.seed
    merchant_mcc = []
    for a, acq in enumerate(scenario.acquirers):
        mccs = np.array([int(m) for m in acq.category_mix], dtype=np.int16)
        w = np.array(list(acq.category_mix.values()), dtype=np.float64)
        rng = stream(seed, "merchants", a)
        merchant_mcc.append(mccs[rng.choice(len(mccs), size=acq.merchants, p=w / w.sum())])
    acq_w = np.array([a.share for a in scenario.acquirers], dtype=np.float64)
    iss_w = np.array([i.share for i in scenario.issuers], dtype=np.float64)
    hours = np.array(scenario.traffic.hourly_profile, dtype=np.float64)
    return Catalogue(tuple(merchant_mcc), acq_w / acq_w.sum(), iss_w / iss_w.sum(), hours / hours.sum())


def hour_parts(scenario: Scenario, cat: Catalogue, hour: int) -> int:
    """How many parts an hour of the day is drawn in (1 unless it expects over BLOCK_MAX purchases)."""
    mean = scenario.traffic.transactions_per_day * cat.hour_weights[hour]
    return max(1, int(np.ceil(mean / BLOCK_MAX)))


def draw_block(scenario: Scenario, cat: Catalogue, day: int, hour: int, first_txn_id: int,
               part: int = 0, parts: int = 1) -> dict[str, np.ndarray]:
    """The purchases arriving in one simulated hour (or part `part` of `parts` equal parts
    of it), sorted by arrival time.

    `day` counts from 0. Each stage has its own stream keyed by (day, hour), or by
    (day, hour, part) when the hour is drawn in parts.
    """
    seed = scenario.run.seed
    traffic = scenario.traffic
    keys = (day, hour) if parts == 1 else (day, hour, part)
    rng = stream(seed, "traffic", *keys)
    mean = traffic.transactions_per_day * cat.hour_weights[hour] / parts
    n = int(rng.poisson(mean)) if mean > 0 else 0
    width = HOUR_S / parts
    start = day * DAY_S + hour * HOUR_S + part * width
    t = rng.random(n)
    np.multiply(t, width, out=t)
    np.add(t, start, out=t)  # start + u * width
    t.sort()
    acquirer = _choice(rng, cat.acquirer_p, n)
    merchant = np.empty(n, dtype=np.int32)
    mcc = np.empty(n, dtype=np.int16)
    order, bounds = group_order(acquirer, 0, len(cat.merchant_mcc))
    for a, table in enumerate(cat.merchant_mcc):
        idx = order[bounds[a]:bounds[a + 1]]
        m = rng.integers(0, len(table), size=len(idx))
        merchant[idx] = m
        mcc[idx] = table[m]
    issuer = _choice(rng, cat.issuer_p, n)
    if traffic.unknown_bin_rate > 0:
        issuer[rng.random(n) < traffic.unknown_bin_rate] = -1
    cards = np.array([i.cards for i in scenario.issuers] + [1], dtype=np.int64)
    card = np.empty(n, dtype=np.int64)
    _card_kernel(rng.random(n), issuer, cards, card)
    amount = np.empty(n, dtype=np.int64)
    try:
        order, bounds = group_order(mcc, 0, _MCC_CODES)
    except ValueError:  # a code that is not four digits: compare each code with the whole array
        order, bounds = None, None
    for code, dist in traffic.amount_minor.items():
        c = int(code)
        if order is not None and 0 <= c < _MCC_CODES:
            idx = order[bounds[c]:bounds[c + 1]]
        else:
            idx = np.flatnonzero(mcc == c)
        raw = sample(dist, rng, len(idx))
        np.rint(raw, out=raw)
        np.clip(raw, traffic.amount_min_minor, traffic.amount_max_minor, out=raw)
        amount[idx] = raw.astype(np.int64)

    # Hop latencies in seconds: one (hops, n) array, each hop a row of it (no copies).
    net = stream(seed, "network", *keys)
    hops = np.empty((4, n))
    sample_into(scenario.network.latency_ms, net, hops.reshape(-1))
    np.divide(hops, 1000.0, out=hops)

    iss_rng = stream(seed, "issuer", *keys)
    service = np.zeros(n)
    risk_u = iss_rng.random(n)
    # Issuer k's service times are the next draws after issuer k - 1's, in purchase order:
    # drawn into one buffer ordered by issuer, then put in place at once.
    order, bounds = group_order(issuer, -1, len(scenario.issuers) + 1)  # group 0: unknown BINs
    drawn = np.empty(n - bounds[1])
    for k, iss in enumerate(scenario.issuers):
        sample_into(iss.host.service_time_ms, iss_rng, drawn[bounds[k + 1] - bounds[1]:bounds[k + 2] - bounds[1]])
    np.divide(drawn, 1000.0, out=drawn)
    service[order[bounds[1]:]] = drawn

    more = stream(seed, "network_more", *keys)
    more_hops = np.empty((len(_MORE_HOPS), n))
    sample_into(scenario.network.latency_ms, more, more_hops.reshape(-1))
    np.divide(more_hops, 1000.0, out=more_hops)
    extra = {name: more_hops[j] for j, name in enumerate(_MORE_HOPS)}
    extra["credit_limit_minor"] = card_credit_limits(scenario, issuer, card)

    return {
        "txn_id": np.arange(first_txn_id, first_txn_id + n, dtype=np.int64),
        "day": np.full(n, day, dtype=np.int16),
        "t_arrival_s": t,
        "acquirer": acquirer,
        "merchant": merchant,
        "mcc": mcc,
        "issuer": issuer,
        "card": card,
        "amount_minor": amount,
        "hop_acq_switch_s": hops[0],
        "hop_switch_issuer_s": hops[1],
        "hop_issuer_switch_s": hops[2],
        "hop_switch_acq_s": hops[3],
        "service_s": service,
        "risk_u": risk_u,
    } | extra


def iter_blocks(scenario: Scenario, cat: Catalogue | None = None) -> Iterator[dict[str, np.ndarray]]:
    """The scenario's purchases block by block, in time order, transaction ids counting on:
    the stream fast mode feeds from, holding one block at a time."""
    cat = cat or build_catalogue(scenario)
    next_id = 0
    for day in range(scenario.run.days):
        for hour in range(24):
            parts = hour_parts(scenario, cat, hour)
            for part in range(parts):
                b = draw_block(scenario, cat, day, hour, next_id, part, parts)
                next_id += len(b["txn_id"])
                yield b


def draw_days(scenario: Scenario, cat: Catalogue | None = None) -> dict[str, np.ndarray]:
    """Every purchase of the scenario's traffic days as one structure of arrays."""
    blocks = list(iter_blocks(scenario, cat))
    if not blocks:
        return {k: np.empty(0, dtype=d) for k, d in COLUMNS.items()}
    return {k: np.concatenate([b[k] for b in blocks]) for k in COLUMNS}
