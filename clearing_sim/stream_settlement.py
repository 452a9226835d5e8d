"""Settlement figures per purchase, accumulated chunk by chunk: settled count, lag, exposure, statuses.

Owns: `SettlementTxnFigures`, which takes a run's purchases in chunks (in
transaction-id order) and gives the four parts of `summary.json["settlement"]` that
need every purchase -- `transactions_settled`, `lag_hours`, `exposure` and
`transactions_by_settlement_status` -- equal, bit for bit, to what
`results.build_summary` and `settlement_figures.settlement_extras` give from the
whole day in memory. Also owns the exact arithmetic of the exposure's time-weighted
mean (`amount_time_integral`, `time_weighted_mean_minor`), which
`settlement_figures.exposure` uses too, so the two agree to the last bit.

Must never keep a per-purchase array past `add`: the one per-purchase column (the
settled purchases' lags, float64) goes to a spill file and is read back once, by
`result`; everything else is running totals, one row per simulated hour and one per
distinct settlement time. Must never run the model or write anything but that file.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from clearing_sim.errors import InvariantError
from clearing_sim.model.traffic import HOUR_S
from clearing_sim.settlement_figures import STATUSES
from clearing_sim.stream_figures import percentiles

# Every finite float64 is a whole multiple of 2**-1074 and frexp writes it as a 53-bit
# mantissa times 2**(e - 53) with e - 53 >= -1126: counting in units of 2**-1126 makes
# amount x time an exact Python int.
SCALE_BITS = 1126
_MANTISSA_BITS = 53
_LIMB_BITS = 21  # two 21-bit limbs multiply to under 2**42 ...
_SUB_ROWS = 1 << 16  # ... and 2**16 such products sum to under 2**58: exact int64
_BLOCK_ROWS = 1 << 20  # rows handled at a time (bounds the temporaries)
_BAND_BITS = 10  # a mantissa shifted left by up to 9 bits stays under 2**62: three limbs
# Settlements happen once per settlement window: more distinct times than this is a bug
# (and the per-time rows would stop being small).
MAX_SETTLEMENT_TIMES = 100_000
_LAG_PERCENTILES = (50, 90, 99)


def _check_amounts(a: np.ndarray) -> None:
    if len(a) and int(a.min()) == np.iinfo(np.int64).min:
        raise ValueError("amount_minor -2**63 has no int64 magnitude")


def exact_int_sum(values: np.ndarray) -> int:
    """Sum of an int64 array as a Python int, without int64 overflow."""
    v = np.asarray(values, dtype=np.int64)
    total = 0
    for start in range(0, len(v), _BLOCK_ROWS):
        block = v[start:start + _BLOCK_ROWS]
        # high halves under 2**31 and low halves under 2**32: 2**20 of either sum exactly
        total += (int((block >> 32).sum()) << 32) + int((block & 0xFFFFFFFF).sum())
    return total


def _limb_dot(u: np.ndarray, v: np.ndarray) -> int:
    """sum(u * v) exactly, for non-negative int64 u and v."""
    if len(u) == 0:
        return 0
    mask = (1 << _LIMB_BITS) - 1
    n_u, n_v = (max(1, -(-int(x.max()).bit_length() // _LIMB_BITS)) for x in (u, v))
    part = [[0] * n_v for _ in range(n_u)]
    # Sub-blocks keep the limb arrays in cache; each limb product is under 2**42, so a
    # sub-block's dot product is exact in int64.
    for start in range(0, len(u), _SUB_ROWS):
        uu, vv = u[start:start + _SUB_ROWS], v[start:start + _SUB_ROWS]
        lu = [(uu >> (_LIMB_BITS * i)) & mask for i in range(n_u)]
        lv = [(vv >> (_LIMB_BITS * j)) & mask for j in range(n_v)]
        for i, x in enumerate(lu):
            for j, y in enumerate(lv):
                part[i][j] += int(np.dot(x, y))
    return sum(part[i][j] << (_LIMB_BITS * (i + j)) for i in range(n_u) for j in range(n_v))


def _block_amount_time_sum(a: np.ndarray, t: np.ndarray) -> int:
    """sum(a * t) exactly, in units of 2**-SCALE_BITS, for at most _BLOCK_ROWS rows."""
    if len(a) == 0:
        return 0
    total = 0
    t_max = float(t.max())
    e_top = math.frexp(t_max)[1]  # t_max < 2**e_top
    if int(a.min()) >= 0 and t_max > 0 and -900 < e_top < 900:  # (the scale factors stay normal floats)
        # Fast path: the times within 2**10 of the largest are whole multiples of
        # 2**(e_top - 62), and under 2**62 of them: plain int64 fixed point.
        bulk = t >= 2.0 ** (e_top - _BAND_BITS)
        every = bool(bulk.all())
        t_bulk, a_bulk = (t, a) if every else (t[bulk], a[bulk])
        fixed = (t_bulk * 2.0 ** (62 - e_top)).astype(np.int64)
        total += _limb_dot(a_bulk, fixed) << (e_top - 62 + SCALE_BITS)
        if every:
            return total
        a, t = a[~bulk], t[~bulk]
    # Any sign and any exponent: each time as mantissa * 2**q, grouped in bands of
    # _BAND_BITS exponents, products split by sign.
    m, e = np.frexp(t)
    mant = (m * 2.0 ** _MANTISSA_BITS).astype(np.int64)  # t = mant * 2**(e - 53), exactly
    keep = (mant != 0) & (a != 0)
    a, mant, q = a[keep], mant[keep], e[keep].astype(np.int64) - _MANTISSA_BITS
    if len(a) == 0:
        return total
    negative = (a < 0) != (mant < 0)
    ua, um = np.abs(a), np.abs(mant)
    q_min = int(q.min())
    band = (q - q_min) // _BAND_BITS
    um = um << ((q - q_min) % _BAND_BITS)  # under 2**62
    for b in np.unique(band).tolist():
        sel = band == b
        pos, neg = sel & ~negative, sel & negative
        s = _limb_dot(ua[pos], um[pos]) - _limb_dot(ua[neg], um[neg])
        total += s << (q_min + _BAND_BITS * b + SCALE_BITS)
    return total


def exact_amount_time_sum(amount_minor: np.ndarray, t_s: np.ndarray) -> int:
    """sum(amount_minor * t_s) exactly, as a Python int in units of 2**-SCALE_BITS fen x s.

    Any order of rows and any split into parts give the same int. Raises ValueError
    if a time is not finite or the arrays differ in length.
    """
    a = np.asarray(amount_minor, dtype=np.int64)
    t = np.asarray(t_s, dtype=np.float64)
    if a.shape != t.shape or a.ndim != 1:
        raise ValueError(f"amount_minor and t_s must be 1-D of one length, got {a.shape} and {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("t_s must be finite")
    _check_amounts(a)
    return sum(_block_amount_time_sum(a[i:i + _BLOCK_ROWS], t[i:i + _BLOCK_ROWS])
               for i in range(0, len(a), _BLOCK_ROWS))


def scaled(x: float) -> int:
    """A float exactly, as a Python int in units of 2**-SCALE_BITS."""
    num, den = float(x).as_integer_ratio()
    return num * ((1 << SCALE_BITS) // den)


def amount_time_integral(amount_minor: np.ndarray, t_s: np.ndarray, t_end_s: float) -> int:
    """sum(amount_minor * (t_end_s - min(t_s, t_end_s))) exactly, in units of 2**-SCALE_BITS fen x s.

    An amount that counts from t_s until the end of the run (and not after the end)
    adds this much to the area under the exposure curve; a settlement takes its own
    back. Times must be finite (ValueError).
    """
    t_end = float(t_end_s)
    a = np.asarray(amount_minor, dtype=np.int64)
    return scaled(t_end) * exact_int_sum(a) - exact_amount_time_sum(a, np.minimum(t_s, t_end))


def time_weighted_mean_minor(integral: int, t_end_s: float) -> float:
    """integral / t_end_s (integral in units of 2**-SCALE_BITS fen x s), correctly rounded, then to 3 decimals.

    0.0 when t_end_s <= 0. Exact arithmetic makes the figure independent of the order
    and the chunks in which the integral was summed.
    """
    if not t_end_s > 0:
        return 0.0
    num, den = float(t_end_s).as_integer_ratio()
    return round((integral * den) / (num << SCALE_BITS), 3)  # int / int: correctly rounded


def lag_percentiles(lag_h: np.ndarray) -> dict[str, float | None]:
    """`results.percentiles(lag_h, (50, 90, 99))`, partitioning `lag_h` in place (no copy of the day).

    The percentiles are order statistics, so the order in which lags were spilled does
    not matter. `lag_h` must hold no NaN; it is reordered.
    """
    return percentiles(lag_h, _LAG_PERCENTILES, overwrite_input=True)


class SettlementTxnFigures:
    """Settled count, lag percentiles, exposure and status counts of a run, fed its purchases chunk by chunk.

    Exposure (value approved and not yet settled) rises only at approvals and falls
    only at settlements, which happen at a few distinct times (one per settlement
    window). Events are ordered by time, a settlement before an approval at the same
    time (`settlement_figures.exposure`'s rule). So, with the distinct settlement times
    s_1 < ... < s_m cutting time into intervals [s_i, s_i+1), the level peaks at the
    last approval of some interval (`_exposure` says why no other event can). The
    accumulator keeps, per interval, the sum of approvals and the latest and earliest
    approval time; per settlement time, the sum and count settled then; per hour, the
    approvals' sum; and the exact integrals of the time-weighted mean.

    A settlement time first met in a later chunk splits an interval. That stays exact
    when the approvals already in the interval all lie on one side of it, which holds
    when chunks come in transaction-id order (a purchase settles hours after any
    earlier purchase was answered). Otherwise `add` raises InvariantError; passing every
    window's settlement time as `settlement_times_s` up front makes any order exact
    (times given and never used do no harm).

    Approved amounts must be at least 1 fen (as scenarios require); levels are Python
    ints, so they equal `exposure`'s int64 levels while those do not overflow.
    """

    def __init__(self, t_end_s: float, spill_dir: Path, *, settlement_times_s: Iterable[float] = ()):
        self._t_end_s = float(t_end_s)
        self._hours = int(np.ceil(self._t_end_s / HOUR_S))
        self._hour_ends = (np.arange(max(self._hours, 0)) + 1) * HOUR_S
        # approvals per hour bin: bin h holds times in (end[h-1], end[h]]; the last bin, after every end
        self._hour_in = np.zeros(max(self._hours, 0) + 1, np.int64)
        # settlement times, sorted; interval i is [times[i-1], times[i]) with times[-1] = -inf, times[m] = +inf
        self._times = np.empty(0, np.float64)
        self._in_sum = np.zeros(1, np.int64)
        self._in_max = np.full(1, -np.inf)
        self._in_min = np.full(1, np.inf)
        self._out_sum = np.empty(0, np.int64)
        self._out_count = np.empty(0, np.int64)
        self._approved = 0
        self._approved_minor = 0
        self._in_integral = 0  # exact, see amount_time_integral
        self._status = np.zeros(len(STATUSES), np.int64)
        self._settled = 0
        self._result: dict | None = None
        for s in sorted({float(x) for x in settlement_times_s}):
            if not np.isfinite(s):
                raise ValueError(f"settlement_times_s: {s} is not a finite time")
            self._add_time(s)
        spill = Path(spill_dir)
        spill.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="settlement_lag_h_", suffix=".f64", dir=spill)
        self._spill_path = Path(name)
        self._spill = os.fdopen(fd, "wb")

    def add(self, t_response_s, amount_minor, owed, t_settled_s, status) -> None:
        """One chunk of purchases: float64 response times, int64 amounts, bool owed (the purchase
        counts: `settlement_figures.carries_obligation`, called "approved" below), float64
        settlement times (NaN: not settled in the run), int8 status codes into settlement_figures.STATUSES.

        Chunks must follow one another in transaction-id order (see the class docstring
        for what else keeps the exposure exact). Raises ValueError on arrays of different
        lengths, an approved purchase with no finite response time or an amount under 1
        fen, or a status code outside STATUSES; InvariantError if a settlement time cannot
        be placed exactly, or after `result`.
        """
        if self._result is not None:
            raise InvariantError("SettlementTxnFigures.add after result(): the figures are final")
        t_resp = np.asarray(t_response_s, dtype=np.float64)
        amount = np.asarray(amount_minor, dtype=np.int64)
        ok = np.asarray(owed, dtype=np.bool_)
        t_set = np.asarray(t_settled_s, dtype=np.float64)
        code = np.asarray(status)
        n = len(t_resp)
        if any(x.ndim != 1 or len(x) != n for x in (t_resp, amount, ok, t_set, code)):
            raise ValueError("t_response_s, amount_minor, owed, t_settled_s and status must be 1-D of one length")
        if n and (int(code.min()) < 0 or int(code.max()) >= len(STATUSES)):
            raise ValueError(f"status codes must be in [0, {len(STATUSES)}), got {int(code.min())}..{int(code.max())}")

        # Everything is checked, and the new settlement times placed, before any total changes.
        t_in, a, t_out = t_resp[ok], amount[ok], t_set[ok]
        lo_t, hi_t = (float(t_in.min()), float(t_in.max())) if len(a) else (0.0, 0.0)
        if not (np.isfinite(lo_t) and np.isfinite(hi_t)):
            raise ValueError("an approved purchase has no finite t_response_s")
        if len(a) and int(a.min()) < 1:
            raise ValueError(f"approved amounts must be at least 1 fen, got {int(a.min())}")
        settled = ~np.isnan(t_out)
        s_t, s_a = t_out[settled], a[settled]
        if len(s_t) and not (np.isfinite(s_t.min()) and np.isfinite(s_t.max())):
            raise ValueError("t_settled_s must be finite or NaN")
        one_time = bool(len(s_t)) and float(s_t.min()) == float(s_t.max())  # the usual chunk: one window
        k = None
        if one_time:
            if not self._known(float(s_t[0])):
                self._add_time(float(s_t[0]))
        elif len(s_t):
            k = np.searchsorted(self._times, s_t)
            known = (self._times[np.minimum(k, len(self._times) - 1)] == s_t if len(self._times)
                     else np.zeros(len(s_t), bool))
            if not known.all():
                for s in np.unique(s_t[~known]).tolist():
                    self._add_time(s)  # leaves the totals consistent, even if a later one raises
                k = np.searchsorted(self._times, s_t)

        # Lags as results._lag_hours computes them (NaN: not settled), settled ones to the spill.
        lag = np.subtract(t_set, t_resp)
        lag /= 3600.0
        lag = lag[~np.isnan(lag)]
        self._spill.write(lag.data)  # a full disk: OSError ENOSPC (tofile's has no errno)
        self._settled += len(lag)
        self._status += np.bincount(code[ok].astype(np.intp), minlength=len(STATUSES))
        if len(a) == 0:
            return

        # Approvals: per interval and per hour; a chunk within one of them needs no per-row search.
        a_sum = a.sum()
        j_lo, j_hi = np.searchsorted(self._times, [lo_t, hi_t], side="right").tolist()
        if j_lo == j_hi:
            self._in_sum[j_lo] += a_sum
            self._in_max[j_lo] = max(self._in_max[j_lo], hi_t)
            self._in_min[j_lo] = min(self._in_min[j_lo], lo_t)
        else:
            j = j_lo + np.searchsorted(self._times[j_lo:j_hi], t_in, side="right")
            np.add.at(self._in_sum, j, a)
            np.maximum.at(self._in_max, j, t_in)
            np.minimum.at(self._in_min, j, t_in)
        h_lo, h_hi = np.searchsorted(self._hour_ends, [lo_t, hi_t], side="left").tolist()
        if h_lo == h_hi:
            self._hour_in[h_lo] += a_sum
        else:
            np.add.at(self._hour_in, h_lo + np.searchsorted(self._hour_ends[h_lo:h_hi], t_in, side="left"), a)
        self._approved += len(a)
        approved_minor = exact_int_sum(a)
        self._approved_minor += approved_minor
        self._in_integral += (scaled(self._t_end_s) * approved_minor
                              - exact_amount_time_sum(a, t_in if hi_t <= self._t_end_s else
                                                      np.minimum(t_in, self._t_end_s)))

        # Settlements: per settlement time.
        if one_time:
            k0 = int(np.searchsorted(self._times, s_t[0]))
            self._out_sum[k0] += s_a.sum()
            self._out_count[k0] += len(s_a)
        elif len(s_t):
            np.add.at(self._out_sum, k, s_a)
            np.add.at(self._out_count, k, 1)

    def _known(self, s: float) -> bool:
        k = int(np.searchsorted(self._times, s))
        return k < len(self._times) and float(self._times[k]) == s

    def _add_time(self, s: float) -> None:
        """Cut the interval holding settlement time `s` in two: approvals before s, and at or after it."""
        if len(self._times) >= MAX_SETTLEMENT_TIMES:
            raise InvariantError(f"more than {MAX_SETTLEMENT_TIMES} distinct settlement times; "
                                 "settlements happen once per settlement window")
        j = int(np.searchsorted(self._times, s, side="right"))
        lo, hi = float(self._in_min[j]), float(self._in_max[j])
        if hi < s:  # all before s (or none at all)
            left = (self._in_sum[j], hi, lo)
            right = (0, -np.inf, np.inf)
        elif lo >= s:
            left = (0, -np.inf, np.inf)
            right = (self._in_sum[j], hi, lo)
        else:
            raise InvariantError(
                f"settlement time {s} s first seen after approvals on both sides of it ({lo} s to {hi} s) were "
                "added: pass every window's settlement time as settlement_times_s to keep the exposure exact")
        self._in_sum = np.concatenate([self._in_sum[:j], [left[0], right[0]], self._in_sum[j + 1:]]).astype(np.int64)
        self._in_max = np.concatenate([self._in_max[:j], [left[1], right[1]], self._in_max[j + 1:]])
        self._in_min = np.concatenate([self._in_min[:j], [left[2], right[2]], self._in_min[j + 1:]])
        self._times = np.insert(self._times, j, s)
        self._out_sum = np.insert(self._out_sum, j, 0)
        self._out_count = np.insert(self._out_count, j, 0)

    def close(self) -> None:
        """Drop the spill file (result() does it; call this when abandoning a run)."""
        if not self._spill.closed:
            self._spill.close()
        self._spill_path.unlink(missing_ok=True)

    def result(self) -> dict:
        """{"transactions_settled": ..., "lag_hours": {...}, "exposure": {...},
        "transactions_by_settlement_status": {...}} -- identical to what results.build_summary and
        settlement_figures.settlement_extras give for the same run.

        Reads the spilled lags back once (8 bytes per settled purchase) and deletes the
        spill file; later calls return the same dict.
        """
        if self._result is not None:
            return self._result
        self._spill.close()
        lag_h = np.fromfile(self._spill_path, dtype=np.float64)
        if len(lag_h) != self._settled:
            raise InvariantError(f"spill file holds {len(lag_h)} lags, {self._settled} were written")
        lags = lag_percentiles(lag_h)
        del lag_h
        self.close()
        self._result = {
            "transactions_settled": int(self._settled),
            "lag_hours": lags,
            "exposure": self._exposure(),
            "transactions_by_settlement_status": {s: int(c) for s, c in zip(STATUSES, self._status)},
        }
        return self._result

    def _exposure(self) -> dict:
        hours = self._hours
        if self._approved == 0:
            return {"peak_minor": 0, "t_peak_s": None, "time_weighted_mean_minor": 0.0, "unsettled_at_end_minor": 0,
                    "hourly_minor": [0] * hours}
        # Blocks of approvals between the settlement times that were used (a time given up
        # front with nothing settled at it cuts nothing).
        blocks: list[tuple[int, float]] = []
        settlements: list[tuple[float, int]] = []  # (time, sum)
        cur_sum, cur_max = int(self._in_sum[0]), float(self._in_max[0])
        for i, s in enumerate(self._times.tolist()):
            if self._out_count[i]:
                blocks.append((cur_sum, cur_max))
                settlements.append((s, int(self._out_sum[i])))
                cur_sum, cur_max = int(self._in_sum[i + 1]), float(self._in_max[i + 1])
            else:
                cur_sum += int(self._in_sum[i + 1])
                cur_max = max(cur_max, float(self._in_max[i + 1]))
        blocks.append((cur_sum, cur_max))

        # Candidates for the peak, in event order; the first of the largest wins (np.argmax).
        # Within a block the level rises, so its last approval is the block's highest
        # point; a settlement only lowers the level below the event before it. The one
        # other event that could lead is the very first, a settlement when nothing was
        # approved before s_1: but it is below 0, and the level after the last event
        # (the value never settled) is not, so some block's end is higher.
        candidates: list[tuple[int, float]] = []
        level = 0
        for i, (block_sum, block_max) in enumerate(blocks):
            if i > 0:
                level -= settlements[i - 1][1]
            level += block_sum
            if block_max > -np.inf:
                candidates.append((level, block_max))
        best = max(c[0] for c in candidates)
        peak_level, t_peak = next(c for c in candidates if c[0] == best)

        settled_minor = sum(x[1] for x in settlements)
        hour_out = np.zeros(len(self._hour_in), np.int64)
        out_integral = 0
        for s, total in settlements:
            hour_out[int(np.searchsorted(self._hour_ends, s, side="left"))] += total
            out_integral += total * (scaled(self._t_end_s) - scaled(min(s, self._t_end_s)))
        hourly = np.cumsum(self._hour_in[:max(hours, 0)] - hour_out[:max(hours, 0)])
        return {
            "peak_minor": int(max(peak_level, 0)),
            "t_peak_s": round(float(t_peak), 3) + 0.0,  # as exposure writes it: never -0.0
            "time_weighted_mean_minor": time_weighted_mean_minor(self._in_integral - out_integral, self._t_end_s),
            "unsettled_at_end_minor": int(self._approved_minor - settled_minor),
            "hourly_minor": [int(x) for x in hourly],
        }


__all__ = ["SettlementTxnFigures", "amount_time_integral", "exact_amount_time_sum", "exact_int_sum",
           "lag_percentiles", "scaled", "time_weighted_mean_minor", "SCALE_BITS", "MAX_SETTLEMENT_TIMES"]
