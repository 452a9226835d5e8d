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
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import numpy as np

from clearing_sim.rng import counter_uniform, stream
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
        return float(dist.median) * np.exp(float(dist.sigma) * rng.standard_normal(n))  # type: ignore[arg-type]
    raise ValueError(f"unknown distribution {kind!r}")


def counter_uniforms(key: int, counter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two independent uniforms in (0, 1) per counter value, a pure function of (key, counter)."""
    c = np.asarray(counter).astype(np.uint64) * np.uint64(2)
    return counter_uniform(key, c), counter_uniform(key, c + np.uint64(1))


def sample_from_uniforms(dist: Distribution, u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """One draw of a scenario distribution per pair of uniforms in (0, 1) (inverse transform / Box-Muller)."""
    kind = dist.distribution
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


def card_credit_limits(scenario: Scenario, issuer: np.ndarray, card: np.ndarray) -> np.ndarray:
    """Each card's credit limit in fen (int64, at least 0); 0 where the issuer is -1 (unknown BIN)."""
    out = np.zeros(issuer.shape, dtype=np.int64)
    for k, iss in enumerate(scenario.issuers):
        idx = np.flatnonzero(issuer == k)
        if len(idx) == 0:
            continue
        key = int(stream(scenario.run.seed, "card_limits", k).integers(0, 2**63))
        u1, u2 = counter_uniforms(key, card[idx])
        raw = np.rint(sample_from_uniforms(iss.credit_limit_minor, u1, u2))
        out[idx] = np.clip(raw, 0, 10**15).astype(np.int64)
    return out


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
    t = np.sort(start + rng.random(n) * width)
    acquirer = rng.choice(len(cat.acquirer_p), size=n, p=cat.acquirer_p).astype(np.int16)
    merchant = np.empty(n, dtype=np.int32)
    mcc = np.empty(n, dtype=np.int16)
    for a, table in enumerate(cat.merchant_mcc):
        idx = np.flatnonzero(acquirer == a)
        m = rng.integers(0, len(table), size=len(idx))
        merchant[idx] = m
        mcc[idx] = table[m]
    issuer = rng.choice(len(cat.issuer_p), size=n, p=cat.issuer_p).astype(np.int16)
    if traffic.unknown_bin_rate > 0:
        issuer[rng.random(n) < traffic.unknown_bin_rate] = -1
    cards = np.array([i.cards for i in scenario.issuers] + [1], dtype=np.int64)
    card = (rng.random(n) * cards[issuer]).astype(np.int64)
    amount = np.empty(n, dtype=np.int64)
    for code, dist in traffic.amount_minor.items():
        idx = np.flatnonzero(mcc == int(code))
        raw = np.rint(sample(dist, rng, len(idx)))
        amount[idx] = np.clip(raw, traffic.amount_min_minor, traffic.amount_max_minor).astype(np.int64)

    net = stream(seed, "network", *keys)
    hops = sample(scenario.network.latency_ms, net, 4 * n).reshape(4, n) / 1000.0

    iss_rng = stream(seed, "issuer", *keys)
    service = np.zeros(n)
    risk_u = iss_rng.random(n)
    for k, iss in enumerate(scenario.issuers):
        idx = np.flatnonzero(issuer == k)
        service[idx] = sample(iss.host.service_time_ms, iss_rng, len(idx)) / 1000.0

    more = stream(seed, "network_more", *keys)
    more_hops = sample(scenario.network.latency_ms, more, len(_MORE_HOPS) * n).reshape(len(_MORE_HOPS), n) / 1000.0
    extra = {name: more_hops[j].copy() for j, name in enumerate(_MORE_HOPS)}
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
        "hop_acq_switch_s": hops[0].copy(),
        "hop_switch_issuer_s": hops[1].copy(),
        "hop_issuer_switch_s": hops[2].copy(),
        "hop_switch_acq_s": hops[3].copy(),
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
