"""Key figures of a run by their dotted `summary.json` paths, and the statistics over runs.

Owns: the one list of key metrics that `compare`, `sweep` and `report.html` show
(`KEY_METRICS`, grow it here), reading a dotted path out of a summary (a missing key
is `None`, never an error), the fallbacks that derive a key figure from today's
summary or transactions table when the summary does not carry it yet, the exposure
curve (value approved through the network, not reversed and not yet settled, over time)
and the 95% interval over replications. Must never run the model, print or touch the
file system.

Student's t quantiles: `t_975(df)` is exact (to 6 decimals) from an embedded table for
df 1..30 and, above that, the Cornish-Fisher expansion of Abramowitz & Stegun 26.7.5
around the normal quantile, whose error there is below 1e-5, so no scipy is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

# --- the key metrics ---------------------------------------------------------------------

Transactions = Callable[[], "Mapping[str, np.ndarray] | None"]


@attrs.frozen
class Metric:
    """A key figure: its dotted summary path, a label for people, its unit and a fallback.

    `unit` is one of `fen` (shown as CNY), `rate` (a fraction, shown as a percent),
    `ms`, `h` or `count`. When the summary holds a mapping or a list at `path` (a figure
    per participant, a list of defaulted participants), `reduce` makes it one number:
    `max` of the mapping's numbers, or `len` of the list. `derive(summary, transactions)`
    computes the figure when the summary has nothing at `path`; `transactions()` returns
    the transactions table's columns (or None when they are not available) and is only
    called when needed.
    """

    path: str
    label: str
    unit: str
    derive: Callable[[dict, Transactions], float | int | None] | None = None
    reduce: str | None = None  # "max" of a mapping of numbers, "len" of a list


def _ratio(num: str, den: str) -> Callable[[dict, Transactions], float | None]:
    def derive(summary: dict, _: Transactions) -> float | None:
        n, d = get_path(summary, num), get_path(summary, den)
        if not isinstance(n, (int, float)) or not isinstance(d, (int, float)) or d == 0:
            return None
        return n / d

    return derive


def _windows(summary: dict) -> list[dict] | None:
    w = get_path(summary, "settlement.windows")
    return w if isinstance(w, list) else None


def _sum_windows(key: str) -> Callable[[dict, Transactions], int | None]:
    def derive(summary: dict, _: Transactions) -> int | None:
        ws = _windows(summary)
        if ws is None or any(not isinstance(w.get(key), int) for w in ws):
            return None
        return int(sum(w[key] for w in ws))

    return derive


def _liquidity_saving(summary: dict, tx: Transactions) -> float | None:
    gross = value_of(summary, "settlement.liquidity.gross_settled_minor", tx)
    net = value_of(summary, "settlement.liquidity.net_settled_minor", tx)
    if not gross or net is None:
        return None
    return 1.0 - net / gross


def _peak_net_debit(summary: dict, _: Transactions) -> int | None:
    ws = _windows(summary)
    if ws is None:
        return None
    peak = 0
    for w in ws:
        pos = w.get("positions_minor")
        if not isinstance(pos, dict):
            return None
        peak = max([peak] + [-int(p) for p in pos.values()])
    return peak


def _peak_exposure(_: dict, tx: Transactions) -> int | None:
    cols = tx()
    if cols is None:
        return None
    _, exposure = exposure_curve(cols["t_response_s"], cols["t_settled_s"], cols["amount_minor"],
                                 cols["exposed"])
    return int(exposure.max()) if len(exposure) else 0


# The figures `compare`, `sweep` and the report show, in this order. A path that a later
# summary.json carries itself wins over the fallback, so the list can grow with the model.
# The settlement paths are the ones the settlement work (liquidity, peak net debit,
# exposure, defaults) writes; until it is merged the fallbacks compute the same figures
# from the windows and the transactions table (defaults have none: shown as "-").
KEY_METRICS: tuple[Metric, ...] = (
    Metric("authorisations.latency_ms.p99", "authorisation latency p99", "ms"),
    Metric("authorisations.approval_rate", "approval rate", "rate",
           _ratio("authorisations.approved", "authorisations.count")),
    Metric("authorisations.stand_in_rate", "stand-in rate", "rate",
           _ratio("authorisations.stand_in", "authorisations.count")),
    Metric("settlement.lag_hours.p50", "settlement lag p50", "h"),
    Metric("settlement.lag_hours.p99", "settlement lag p99", "h"),
    Metric("settlement.liquidity.gross_settled_minor", "gross settled", "fen", _sum_windows("gross_minor")),
    Metric("settlement.liquidity.net_settled_minor", "net settled", "fen", _sum_windows("net_minor")),
    Metric("settlement.liquidity.saving", "liquidity saving (1 - net/gross)", "rate", _liquidity_saving),
    Metric("settlement.peak_net_debit_minor", "peak net debit (largest participant)", "fen", _peak_net_debit,
           reduce="max"),
    Metric("settlement.exposure.peak_minor", "peak exposure (approved, unsettled)", "fen", _peak_exposure),
    Metric("clearing.records_rejected", "clearing records rejected", "count"),
    Metric("settlement.defaulted_participants", "defaulted participants", "count", reduce="len"),
)

METRICS_BY_PATH: dict[str, Metric] = {m.path: m for m in KEY_METRICS}


# --- reading summaries -------------------------------------------------------------------


def split_path(path: str) -> tuple[str | int, ...]:
    """`('issuers', 0, 'host', 'servers')` from `issuers[0].host.servers`; raises ValueError."""
    parts: list[str | int] = []
    for chunk in path.split("."):
        name, _, rest = chunk.partition("[")
        if not name and not (parts and rest):
            raise ValueError(f"{path!r}: empty key")
        if name:
            parts.append(name)
        while rest:
            index, close, rest = rest.partition("]")
            if not close or not (index.isascii() and index.isdigit()):  # not '٠' (= 0) nor '²' (int() fails)
                raise ValueError(f"{path!r}: list indices are written [0], [1], ...")
            parts.append(int(index))
            if rest.startswith("["):
                rest = rest[1:]
            elif rest:
                raise ValueError(f"{path!r}: unexpected text {rest!r} after an index")
    return tuple(parts)


def get_path(data: Any, path: str | Sequence[str | int]) -> Any:
    """The value at a dotted path, or None when any step of it is missing."""
    parts = split_path(path) if isinstance(path, str) else path
    node = data
    for p in parts:
        if isinstance(p, int) and isinstance(node, list) and 0 <= p < len(node):
            node = node[p]
        elif isinstance(p, str) and isinstance(node, dict) and p in node:
            node = node[p]
        else:
            return None
    return node


def _no_transactions() -> None:
    return None


def value_of(summary: dict, path: str, transactions: Transactions = _no_transactions) -> float | int | None:
    """A key figure: the summary's own value, else the metric's fallback, else None.

    Only numbers count as values (a bool or a string at the path is treated as missing).
    """
    v = get_path(summary, path)
    if _is_number(v):
        return v
    metric = METRICS_BY_PATH.get(path)
    if metric is None:
        return None
    if metric.reduce is not None and v is not None:
        return _reduce(metric.reduce, v)
    if metric.derive is None:
        return None
    return metric.derive(summary, transactions)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _reduce(how: str, v: Any) -> float | int | None:
    if how == "max" and isinstance(v, dict):
        numbers = [x for x in v.values() if _is_number(x)]
        return max(numbers) if numbers else None
    if how == "len" and isinstance(v, list):
        return len(v)
    return None


def key_values(summary: dict, transactions: Transactions = _no_transactions) -> dict[str, float | int | None]:
    """Every key metric's value (None when missing), in `KEY_METRICS` order."""
    cache: list = []

    def once() -> Mapping[str, np.ndarray] | None:
        if not cache:
            cache.append(transactions())
        return cache[0]

    return {m.path: value_of(summary, m.path, once) for m in KEY_METRICS}


def flatten_numbers(data: Any, prefix: str = "") -> dict[str, float | int]:
    """Every number in a summary by dotted path, not descending into lists."""
    out: dict[str, float | int] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(flatten_numbers(v, path))
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out[path] = v
    return out


def transaction_columns(table: Any) -> dict[str, np.ndarray]:
    """The columns the exposure curve needs, as numpy arrays, from a pyarrow table: times,
    amounts, and `exposed` (`exposed_rows` of its columns)."""
    has = set(table.column_names)
    return {
        "t_response_s": table.column("t_response_s").to_numpy(),
        "t_settled_s": table.column("t_settled_s").to_numpy(),
        "amount_minor": table.column("amount_minor").to_numpy(),
        "exposed": exposed_rows(*(table.column(c) if c in has else None for c in EXPOSED_BY)),
    }


# The transactions table's columns that say whether a purchase counts in the exposure.
EXPOSED_BY = ("approved", "route", "reversed")


def exposed_rows(approved: Any, route: Any = None, reversed_: Any = None) -> np.ndarray:
    """Which rows of a transactions table count in the exposure, from its pyarrow columns
    (arrays or chunked arrays) `EXPOSED_BY`: approved, not kept inside the issuing bank and
    not reversed, the purchases that owe the network a presentment
    (`settlement_figures.carries_obligation`). A table without `route` or `reversed` (not
    written by clearing-sim, or cut down) is read as if none were in-bank or reversed.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from clearing_sim.model.authorisation import ROUTE_IN_BANK, ROUTES

    mask = approved
    if route is not None:
        mask = pc.and_(mask, _not_equal(route, ROUTES[ROUTE_IN_BANK]))
    if reversed_ is not None:
        mask = pc.and_(mask, pc.invert(reversed_))
    mask = pc.fill_null(mask, False)
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks() if mask.num_chunks != 1 else mask.chunk(0)
    return mask.to_numpy(zero_copy_only=False).astype(bool)


def _not_equal(column: Any, value: str) -> Any:
    """`pc.not_equal(column, value)` (null where `column` is null); a dictionary column is
    compared by its dictionary and the result taken by its indices: comparing every row's
    string decoded the whole column first, most of what the report's exposure passes cost."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([_not_equal(c, value) for c in column.chunks], type=pa.bool_())
    if pa.types.is_dictionary(column.type):
        return pc.not_equal(column.dictionary, pa.scalar(value)).take(column.indices)
    return pc.not_equal(column, pa.scalar(value))


# --- exposure ----------------------------------------------------------------------------


def exposure_curve(t_response_s: np.ndarray, t_settled_s: np.ndarray, amount_minor: np.ndarray,
                   exposed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value approved but not yet settled (fen, int64) just after each change time (s).

    A purchase that counts (`exposed`: approved, switched through the network and not
    reversed, see `exposed_rows`) adds its amount when its authorisation response is sent and
    removes it when its settlement window settles (never, if it has no settlement
    time: NaN). Events at the same time are merged, so `exposure[i]` holds on
    `[times[i], times[i+1])`. Exact in int64; raises ValueError on mismatched lengths.
    """
    n = len(amount_minor)
    if not (len(t_response_s) == len(t_settled_s) == len(exposed) == n):
        raise ValueError("exposure_curve: columns of different lengths")
    ok = np.asarray(exposed, dtype=bool)
    amount = np.asarray(amount_minor, dtype=np.int64)[ok]
    t_in = np.asarray(t_response_s, dtype=np.float64)[ok]
    t_out = np.asarray(t_settled_s, dtype=np.float64)[ok]
    out = ~np.isnan(t_out)
    times = np.concatenate([t_in, t_out[out]])
    delta = np.concatenate([amount, -amount[out]])
    if len(times) == 0:
        return np.empty(0, np.float64), np.empty(0, np.int64)
    order = np.argsort(times, kind="stable")
    times, delta = times[order], delta[order]
    level = np.cumsum(delta, dtype=np.int64)
    # Keep the level after the last event of each distinct time.
    last = np.append(times[1:] != times[:-1], True)
    return times[last], level[last]


def sample_step(times: np.ndarray, level: np.ndarray, at: np.ndarray) -> np.ndarray:
    """A step curve's value at each of `at` (0 before its first change)."""
    idx = np.searchsorted(times, at, side="right") - 1
    return np.where(idx >= 0, level[np.clip(idx, 0, None)] if len(level) else 0, 0)


# --- statistics over replications ----------------------------------------------------------

# Two-sided 95% quantiles t(0.975, df) of Student's t for df = 1..30.
_T975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
    2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
    2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
    2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)
_Z975 = 1.959963984540054


def t_975(df: int) -> float:
    """t(0.975, df), the factor of a two-sided 95% interval; raises ValueError if df < 1."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


@attrs.frozen
class Interval:
    """Mean of the values present, and its 95% interval mean +- t(0.975, n-1) * s / sqrt(n)."""

    n: int
    mean: float
    lo: float
    hi: float


def interval(values: Iterable[float | int | None]) -> Interval | None:
    """The 95% interval of the values that are not None (None if there are none).

    With one value the interval is that point; `s` is the sample standard deviation
    (n-1 in the denominator).
    """
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    n = len(xs)
    mean = math.fsum(xs) / n
    if n == 1:
        return Interval(1, mean, mean, mean)
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    half = t_975(n - 1) * math.sqrt(var) / math.sqrt(n)
    # Float rounding must never put the mean outside its own interval.
    return Interval(n, mean, min(mean - half, mean), max(mean + half, mean))


# --- formatting for people --------------------------------------------------------------------


def yuan_text(fen: int) -> str:
    """Integer fen as yuan with thousands separators, exact at any size (a float holds fen
    exactly only below 2^53), for people; files keep integer fen."""
    yuan, cents = divmod(abs(int(fen)), 100)
    return f"{'-' if fen < 0 else ''}{yuan:,}.{cents:02d}"


def fmt_value(value: float | int | None, unit: str) -> str:
    """A figure for a table cell: CNY for fen, percent for rates, '-' when missing."""
    if value is None:
        return "-"
    if unit == "fen":
        if isinstance(value, (int, np.integer)):
            return yuan_text(value)
        return f"{value / 100.0:,.2f}"  # a mean over replications
    if unit == "rate":
        return f"{100.0 * value:.3f}%"
    if unit == "count":
        return f"{value:,.1f}" if isinstance(value, float) and not float(value).is_integer() else f"{int(value):,}"
    return f"{value:,.3f}"


def unit_label(unit: str) -> str:
    """The unit as shown next to a figure's label."""
    return {"fen": "CNY", "rate": "%", "ms": "ms", "h": "hours", "count": ""}.get(unit, unit)
