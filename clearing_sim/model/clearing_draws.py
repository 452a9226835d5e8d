"""Every random draw clearing needs, made up front in arrays from named streams.

Owns: each card's product (a counter-based draw keyed by (seed, issuer, card), so a
card keeps its product in every purchase without an array the size of the card
population); per purchase, whether and when it is refunded, charged back and
re-presented (one stream per (day, hour) block of purchases, like `traffic`); per
(acquirer, day) and (issuer, day), each file's transfer time and whether it is late
and by how much. The draws depend only on the seed, the scenario and the purchases,
never on the order in which the simulation consumes them, so a fast mode sees the
same outcomes. Must never simulate.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from clearing_sim.fees import product_names
from clearing_sim.model.traffic import DAY_S, HOUR_S, group_order, sample
from clearing_sim.rng import counter_uniform, stream
from clearing_sim.scenario import Scenario

def card_products(scenario: Scenario, issuer: np.ndarray, card: np.ndarray) -> np.ndarray:
    """Product number (index into `fees.product_names`) of each purchase's card; -1 for unknown BINs."""
    names = product_names(scenario)
    out = np.full(issuer.shape, -1, dtype=np.int8)
    order, starts = group_order(issuer, -1, len(scenario.issuers) + 1)  # group 0: unknown BINs
    for k, iss in enumerate(scenario.issuers):
        idx = order[starts[k + 1]:starts[k + 2]]  # the purchases of issuer k, ascending
        if len(idx) == 0:
            continue
        key = int(stream(scenario.run.seed, "card_products", k).integers(0, 2**63))
        share = np.array(list(iss.products.values()), dtype=np.float64)
        edges = np.cumsum(share / share.sum())
        edges[-1] = 1.0
        pick = np.searchsorted(edges, counter_uniform(key, card[idx]), side="right")
        number = np.array([names.index(n) for n in iss.products], dtype=np.int8)
        out[idx] = number[np.minimum(pick, len(number) - 1)]
    return out


@attrs.frozen(eq=False)
class ClearingDraws:
    """Per purchase: card product, and refund / chargeback / re-presentment decisions and delays (s).

    A `*_due` flag is True when the event happens at all (its uniform is below the rate
    and its delay is within the scenario's limit); the delay counts from the purchase
    (refund), from the clearing of the purchase (chargeback) or from the clearing of
    the chargeback (re-presentment).
    """

    product: np.ndarray
    refund: np.ndarray
    refund_delay_s: np.ndarray
    chargeback: np.ndarray
    chargeback_delay_s: np.ndarray
    representment: np.ndarray
    representment_delay_s: np.ndarray


def _blocks(txn: dict[str, np.ndarray]) -> list[tuple[int, int, int, int]]:
    """(day, hour, start, stop) of each (day, hour) block of the purchase arrays (sorted by time)."""
    t = txn["t_arrival_s"]
    day = txn["day"].astype(np.int64)
    hour = np.clip(((t - day * DAY_S) // HOUR_S).astype(np.int64), 0, 23)
    key = day * 24 + hour
    if len(key) and (np.diff(key) < 0).any():
        raise ValueError("purchases are not in (day, hour) order")
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.empty(0, np.int64)
    stops = np.r_[starts[1:], len(key)] if len(key) else np.empty(0, np.int64)
    return [(int(key[s] // 24), int(key[s] % 24), int(s), int(e)) for s, e in zip(starts, stops)]


def draw_clearing(scenario: Scenario, txn: dict[str, np.ndarray]) -> ClearingDraws:
    """Every per-purchase clearing draw of the run."""
    n = len(txn["txn_id"])
    seed = scenario.run.seed
    c, d = scenario.clearing, scenario.disputes
    cols = {k: np.zeros(n, dtype=np.float64) for k in ("refund_u", "refund_d", "cb_u", "cb_d", "rep_u", "rep_d")}
    for day, hour, start, stop in _blocks(txn):
        rng = stream(seed, "clearing_purchases", day, hour)
        m = stop - start
        cols["refund_u"][start:stop] = rng.random(m)
        cols["refund_d"][start:stop] = sample(c.refund_delay_days, rng, m)
        cols["cb_u"][start:stop] = rng.random(m)
        cols["cb_d"][start:stop] = sample(d.chargeback_delay_days, rng, m)
        cols["rep_u"][start:stop] = rng.random(m)
        cols["rep_d"][start:stop] = sample(d.representment_delay_days, rng, m)
    refund = (cols["refund_u"] < c.refund_rate) & (cols["refund_d"] <= c.refund_limit_days)
    # A refunded purchase is not also disputed: the cardholder already has the money back.
    chargeback = (cols["cb_u"] < d.chargeback_rate) & (cols["cb_d"] <= d.chargeback_limit_days) & ~refund
    representment = chargeback & (cols["rep_u"] < d.representment_rate) & (cols["rep_d"] <= d.representment_limit_days)
    with np.errstate(over="ignore"):  # a delay past float64 in seconds is inf: past its limit, never used
        delays_s = {name: cols[name] * DAY_S for name in ("refund_d", "cb_d", "rep_d")}
    return ClearingDraws(
        product=card_products(scenario, txn["issuer"], txn["card"]),
        refund=refund,
        refund_delay_s=delays_s["refund_d"],
        chargeback=chargeback,
        chargeback_delay_s=delays_s["cb_d"],
        representment=representment,
        representment_delay_s=delays_s["rep_d"],
    )


@attrs.frozen(eq=False)
class FileDraws:
    """Per submission of one sender on one day: transfer time (s), late or not, how late (s)."""

    transfer_s: np.ndarray
    late: np.ndarray
    late_delay_s: np.ndarray


def acquirer_file_draws(scenario: Scenario, acquirer: int, day: int) -> FileDraws:
    """The draws of acquirer `acquirer`'s submissions on `day` (0-based)."""
    acq = scenario.acquirers[acquirer]
    k = len(acq.submission_times)
    # The transfer times keep the skeleton's stream, so adding lateness changed no earlier draw.
    transfer = sample(scenario.clearing.file_transfer_ms, stream(scenario.run.seed, "acquirer_files", acquirer, day), k)
    rng = stream(scenario.run.seed, "acquirer_late", acquirer, day)
    late = rng.random(k) < acq.late_probability
    delay = sample(acq.late_delay_minutes, rng, k) * 60.0
    return FileDraws(transfer / 1000.0, late, np.where(late, delay, 0.0))


def issuer_file_draws(scenario: Scenario, issuer: int, day: int) -> FileDraws:
    """The draws of issuer `issuer`'s dispute files on `day` (0-based); issuers are never late."""
    k = len(scenario.disputes.issuer_file_times)
    transfer = sample(scenario.clearing.file_transfer_ms, stream(scenario.run.seed, "issuer_files", issuer, day), k)
    return FileDraws(transfer / 1000.0, np.zeros(k, bool), np.zeros(k))


def extra_days(scenario: Scenario) -> int:
    """Days the run needs beyond traffic, files and settlement for refunds and disputes to settle.

    Each delayed event can happen up to its limit after the purchase (or the clearing
    before it), then waits up to a day for the sender's next file and a day for a cycle.
    """
    c, d = scenario.clearing, scenario.disputes
    days = 0
    if c.refund_rate > 0:
        days = max(days, math.ceil(c.refund_limit_days) + 1)
    if d.chargeback_rate > 0:
        days = max(days, d.chargeback_limit_days + 2
                   + (d.representment_limit_days + 2 if d.representment_rate > 0 else 0))
    return days


# A file's transfer up to this long is covered by the day the run keeps after its last
# files; the horizon counts what a drawn transfer takes beyond it (`lateness_days`).
TRANSFER_COVERED_S = 3600.0


def lateness_days(scenario: Scenario, days: int) -> int:
    """Whole days by which files sent in the first `days` days of a run can arrive late.

    An acquirer's file is late by its drawn delay (`late_probability`,
    `late_delay_minutes`) plus an injected `late` fault's delay; a `duplicate_file`
    fault sends its copy that much later still. A file (an issuer's dispute file too)
    whose drawn `file_transfer_ms` passes `TRANSFER_COVERED_S` is late by the rest. Every
    later cycle, window and settlement shifts with the file, so the run must last this
    much longer.
    """
    t = scenario.clearing.file_transfer_ms
    # Constant and uniform transfers have a largest value: within an hour, no file is late by them.
    slow = not (t.distribution in ("constant", "uniform") and t.far_tail() <= TRANSFER_COVERED_S * 1000.0)
    drawn = 0.0
    for a, acq in enumerate(scenario.acquirers):
        if acq.late_probability > 0 or slow:
            for day in range(days):
                d = acquirer_file_draws(scenario, a, day)
                if len(d.late_delay_s):
                    beyond = np.maximum(d.transfer_s - TRANSFER_COVERED_S, 0.0)
                    drawn = max(drawn, float((d.late_delay_s + beyond).max()))
    if slow and scenario.disputes.chargeback_rate > 0:
        for i in range(len(scenario.issuers)):
            for day in range(days):
                d = issuer_file_draws(scenario, i, day)
                if len(d.transfer_s):
                    drawn = max(drawn, float((d.transfer_s - TRANSFER_COVERED_S).max()))
    faults = scenario.clearing.faults
    late = max((f.delay_minutes * 60.0 for f in faults if f.kind == "late"), default=0.0)
    copy = max((f.delay_minutes * 60.0 for f in faults if f.kind == "duplicate_file"), default=0.0)
    return math.ceil((drawn + late + copy) / DAY_S)
