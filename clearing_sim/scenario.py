"""The scenario language: one strict schema of frozen attrs classes, and its loader.

Owns: every scenario default (here and nowhere else), the YAML loader (ruamel.yaml,
no object construction, duplicate keys refused), structuring with cattrs, and every
check that a scenario can be simulated, each reported with its full path
(`issuers[1].host.servers`) and YAML line. Must never simulate or write anything:
a scenario is either wholly valid or rejected with all its problems.

Units are in the field names: `_ms` milliseconds, `_minor` fen (CNY minor units),
`_s` seconds; clock times are `HH:MM` strings within a simulated day.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import io
import math
import numbers
import re
import types
import typing
import unicodedata
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NewType

import attrs
import cattrs
import cattrs.cols
from attrs import field
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedKeyMap, CommentedKeySeq, CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import ConstructorError, DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.representer import SafeRepresenter

from clearing_sim.errors import Problem, ScenarioError

NETWORK_ID = "NETWORK"  # the scheme itself, a settlement participant that keeps scheme fees
MAX_TRANSACTIONS_PER_DAY = 2_000_000_000
MAX_DAYS = 366
MAX_AMOUNT_MINOR = 10**12 - 1  # a clearing record's DE 4 is n12: no purchase can be larger
_ID_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,15}$")
_MCC_RE = re.compile(r"^\d{4}$", re.ASCII)
_BIN_RE = re.compile(r"^\d{6}(\d{2})?$", re.ASCII)
_CLOCK_RE = re.compile(r"^(\d{2}):(\d{2})$", re.ASCII)  # \d: 0-9 only, not ４ or ٤
_PRODUCT_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")

# A card product's name (`classic`, `gold`): its own type, so that its mappings are not
# taken for merchant-category mappings by the loader.
ProductName = NewType("ProductName", str)


class _FieldProblem(ValueError):
    """Raised by a field validator; the loader adds the field to the path."""

    def __init__(self, field_name: str, message: str, subpath: tuple[str | int, ...] = ()):
        # Shown as is when `attrs.evolve` in a notebook raises it: name the field there too.
        super().__init__(f"{field_name}: {message}" if field_name else message)
        self.field_name = field_name
        self.subpath = subpath
        self.message = message


# --- validators -----------------------------------------------------------------------


def _typed_fields(cls: type, fields: list[attrs.Attribute]) -> list[attrs.Attribute]:
    """Every field first checks its value's type against its annotation, then runs its own
    validators. A file's values are structured to their types before that (cattrs), so this
    is for scenario objects: `attrs.evolve(scenario.run, days="1")` in a notebook raised
    "TypeError: '>' not supported between instances of 'str' and 'int'", and a start time of
    1 "expected string or bytes-like object", naming no field. Now a `_FieldProblem` (a
    ValueError) names it: `days: expected a whole number, got str '1'`."""
    out = []
    for f in fields:
        own = f.validator
        out.append(f.evolve(validator=_of_type if own is None else attrs.validators.and_(_of_type, own)))
    return out


_HINTS: dict[type, dict[str, Any]] = {}
_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _of_type(inst: Any, a: attrs.Attribute, v: Any) -> None:
    cls = type(inst)
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    if (wrong := _type_problem(_HINTS[cls][a.name], v, ())) is not None:
        where, message = wrong
        raise _FieldProblem(a.name, message, where)


def _type_problem(hint: Any, v: Any, where: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], str] | None:
    """(where inside the value, what is wrong) if `v` is not of the shape `hint` says, else None;
    shallow types only (the value's own validators check its range)."""
    hint = getattr(hint, "__supertype__", hint)  # NewType
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        problems = [_type_problem(arm, v, where) for arm in args]
        return None if None in problems else problems[-1 if v is not None else 0]
    if hint is type(None):
        return None if v is None else (where, f"expected nothing (null), got {type(v).__name__} {v!r}")
    if hint in _KINDS:
        ok = (isinstance(v, bool) if hint is bool else isinstance(v, str) if hint is str else
              isinstance(v, numbers.Integral if hint is int else numbers.Real) and not isinstance(v, bool))
        return None if ok else (where, f"expected {_KINDS[hint]}, got {type(v).__name__} {v!r}")
    if origin is tuple:
        if not isinstance(v, tuple):
            return where, f"expected a tuple, got {type(v).__name__} {v!r}"
        if len(args) == 2 and args[1] is Ellipsis:
            return next((p for i, x in enumerate(v) if (p := _type_problem(args[0], x, where + (i,)))), None)
        return None
    if origin is dict:
        if not isinstance(v, dict):
            return where, f"expected a dict, got {type(v).__name__} {v!r}"
        for k, x in v.items():
            if (p := _type_problem(args[0], k, where + (str(k),)) or _type_problem(args[1], x, where + (str(k),))):
                return p
        return None
    if isinstance(hint, type) and attrs.has(hint) and not isinstance(v, hint):
        return where, f"expected a {hint.__name__}, got {type(v).__name__} {v!r}"
    return None


frozen = functools.partial(attrs.frozen, field_transformer=_typed_fields)


def _positive(inst: Any, a: attrs.Attribute, v: float) -> None:
    if not v > 0:
        raise _FieldProblem(a.name, f"must be greater than 0, got {v!r}")


def _non_negative(inst: Any, a: attrs.Attribute, v: float) -> None:
    if not v >= 0:
        raise _FieldProblem(a.name, f"must not be negative, got {v!r}")


def _finite(inst: Any, a: attrs.Attribute, v: float | None) -> None:
    if v is not None and not math.isfinite(v):
        raise _FieldProblem(a.name, f"must be a finite number, got {v!r}")


def _probability(inst: Any, a: attrs.Attribute, v: float) -> None:
    if not 0.0 <= v <= 1.0:
        raise _FieldProblem(a.name, f"must be a probability between 0 and 1, got {v!r}")


def _at_most(limit: int):
    def check(inst: Any, a: attrs.Attribute, v: int) -> None:
        if v > limit:
            raise _FieldProblem(a.name, f"must be at most {limit:,}, got {v:,}")

    return check


def _clock(inst: Any, a: attrs.Attribute, v: str) -> None:
    clock_seconds(v, a.name)


def _clock_list(inst: Any, a: attrs.Attribute, v: tuple[str, ...]) -> None:
    if not v:
        raise _FieldProblem(a.name, "needs at least one HH:MM time")
    seconds = [clock_seconds(t, a.name, (i,)) for i, t in enumerate(v)]
    for i in range(1, len(seconds)):
        if seconds[i] <= seconds[i - 1]:
            raise _FieldProblem(a.name, f"times must be strictly increasing, {v[i]!r} follows {v[i - 1]!r}", (i,))


def _ident(inst: Any, a: attrs.Attribute, v: str) -> None:
    if not _ID_RE.match(v):
        raise _FieldProblem(a.name, f"{v!r} is not an id: use 1-16 of A-Z, 0-9, _ starting with a letter")


def control_character(text: str, one_line: bool) -> str | None:
    """What is wrong with a name (`one_line`) or a description holding a control character, or
    None: names go into reports, tables, folder names and the console; a description may
    have line breaks and tabs."""
    allowed = "" if one_line else "\n\t"
    bad = next((c for c in text if unicodedata.category(c) in ("Cc", "Cs") + (("Zl", "Zp") if one_line else ())
                and c not in allowed), None)
    if bad is None:
        return None
    return (f"holds the control character {bad!r} at position {text.index(bad)}"
            + (": a name is printable text on one line" if one_line else ""))


def _one_line(inst: Any, a: attrs.Attribute, v: str) -> None:
    if (bad := control_character(v, one_line=True)) is not None:
        raise _FieldProblem(a.name, bad)


def _text(inst: Any, a: attrs.Attribute, v: str) -> None:
    if (bad := control_character(v, one_line=False)) is not None:
        raise _FieldProblem(a.name, bad)


def _check_products(products: dict[ProductName, float]) -> None:
    if not products:
        raise _FieldProblem("products", "needs at least one card product")
    for name, w in products.items():
        if not _PRODUCT_RE.match(name):
            raise _FieldProblem("products", f"{name!r} is not a product name: use 1-16 of a-z, 0-9, _ "
                                "starting with a letter", (name,))
        if not (math.isfinite(w) and w > 0):
            raise _FieldProblem("products", f"share must be greater than 0, got {w!r}", (name,))
    if _sum_overflows(products.values()):
        raise _FieldProblem("products", _WEIGHTS_TOO_BIG)


def _sum_overflows(weights) -> bool:
    """Whether finite weights add up past the largest float: the run would divide by infinity
    (every share 0, or NumPy refusing the probabilities). Only their ratios matter."""
    return not math.isfinite(sum(weights))


_WEIGHTS_TOO_BIG = ("the weights add up to more than the largest number a float holds (about 1.8e308); "
                    "only their ratios matter, so scale them down")


def clock_seconds(text: str, field_name: str = "time", subpath: tuple[str | int, ...] = ()) -> int:
    """Seconds after midnight of an `HH:MM` clock time; raises a field problem if invalid."""
    m = _CLOCK_RE.match(text)
    if not m:
        raise _FieldProblem(field_name, f"{text!r} is not a time of day in HH:MM form", subpath)
    hours, minutes = int(m.group(1)), int(m.group(2))
    if hours > 23 or minutes > 59:
        raise _FieldProblem(field_name, f"{text!r} is not a time of day (00:00 to 23:59)", subpath)
    return hours * 3600 + minutes * 60


# --- schema ----------------------------------------------------------------------------

DISTRIBUTIONS = {
    "constant": ("value",),
    "exponential": ("mean",),
    "uniform": ("low", "high"),
    "lognormal": ("median", "sigma"),
}


@frozen
class Distribution:
    """A non-negative random quantity; its unit is the one named by the field holding it.

    `constant: value`; `exponential: mean`; `uniform: low, high`; `lognormal: median,
    sigma` (sigma of the underlying normal). Parameters of other kinds are refused.
    """

    distribution: str
    value: float | None = field(default=None, validator=_finite)
    mean: float | None = field(default=None, validator=_finite)
    low: float | None = field(default=None, validator=_finite)
    high: float | None = field(default=None, validator=_finite)
    median: float | None = field(default=None, validator=_finite)
    sigma: float | None = field(default=None, validator=_finite)

    def __attrs_post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            kinds = ", ".join(DISTRIBUTIONS)
            raise _FieldProblem("distribution", f"unknown distribution {self.distribution!r} (one of: {kinds})")
        needed = DISTRIBUTIONS[self.distribution]
        for name in ("value", "mean", "low", "high", "median", "sigma"):
            given = getattr(self, name)
            if name in needed and given is None:
                raise _FieldProblem(name, f"required by a {self.distribution} distribution")
            if name not in needed and given is not None:
                raise _FieldProblem(name, f"not a parameter of a {self.distribution} distribution")
            if given is not None and given < 0:
                raise _FieldProblem(name, f"must not be negative, got {given!r}")
        if self.distribution == "uniform" and self.high < self.low:  # type: ignore[operator]
            raise _FieldProblem("high", f"must be at least low ({self.low}), got {self.high}")
        if self.distribution in ("exponential",) and self.mean == 0:
            raise _FieldProblem("mean", "must be greater than 0")
        if self.distribution == "lognormal" and self.median == 0:
            raise _FieldProblem("median", "must be greater than 0")

    def far_tail(self) -> float:
        """A value the distribution exceeds about once in 10^6 draws (its largest for bounded
        kinds; infinity where that overflows a float)."""
        d = self.distribution
        if d == "constant":
            return float(self.value)  # type: ignore[arg-type]
        if d == "uniform":
            return float(self.high)  # type: ignore[arg-type]
        if d == "exponential":
            return float(self.mean) * math.log(1e6)  # type: ignore[arg-type]
        z = 4.753  # the standard normal's one-in-a-million upper tail
        log_tail = math.log(float(self.median)) + float(self.sigma) * z  # type: ignore[arg-type]
        return math.exp(log_tail) if log_tail < 700.0 else math.inf

    def tail_parameter(self, limit: float) -> str:
        """The parameter to blame when `far_tail()` passes `limit`."""
        d = self.distribution
        if d == "lognormal":
            return "median" if float(self.median) > limit else "sigma"  # type: ignore[arg-type]
        return {"constant": "value", "uniform": "high", "exponential": "mean"}[d]

    @property
    def mean_value(self) -> float:
        """The distribution's mean, in its own unit."""
        d = self.distribution
        if d == "constant":
            return float(self.value)  # type: ignore[arg-type]
        if d == "exponential":
            return float(self.mean)  # type: ignore[arg-type]
        if d == "uniform":
            return (self.low + self.high) / 2  # type: ignore[operator]
        return float(self.median) * math.exp(self.sigma**2 / 2)  # type: ignore[operator]


@frozen
class Institution:
    """A bank taking part in the network; it may issue cards, acquire merchants, or both."""

    id: str = field(validator=_ident)
    name: str = field(default="", validator=_one_line)


def _end_clock_seconds(text: str, field_name: str) -> int:
    """Like `clock_seconds`, but `24:00` (the end of the day) is allowed too."""
    if text == "24:00":
        return 24 * 3600
    return clock_seconds(text, field_name)


@frozen
class Outage:
    """The issuer host down from `start` to `end` (HH:MM, end may be 24:00) on run day `day`.

    While down the host answers nothing: requests in its queue or in service at `start`
    are lost, and so is every request reaching it before `end`. `announced: true` means
    the issuer signed off in advance, so the switch stands in at once instead of waiting
    for its timeout on each request.
    """

    start: str
    end: str
    day: int = field(default=1, validator=[_positive, _at_most(MAX_DAYS)])
    announced: bool = False

    def __attrs_post_init__(self) -> None:
        start_s = clock_seconds(self.start, "start")
        end_s = _end_clock_seconds(self.end, "end")
        if end_s <= start_s:
            raise _FieldProblem("end", f"the outage ends at {self.end}, not after it starts at {self.start}")

    @property
    def interval_s(self) -> tuple[float, float]:
        """[start, end) in seconds from 00:00 of day 1."""
        base = (self.day - 1) * 86400
        return float(base + clock_seconds(self.start)), float(base + _end_clock_seconds(self.end, "end"))


@frozen
class Degradation:
    """Only `servers` of the host's servers work from `start` to `end` on run day `day`."""

    start: str
    end: str
    servers: int = field(validator=[_non_negative, _at_most(10_000)])
    day: int = field(default=1, validator=[_positive, _at_most(MAX_DAYS)])

    def __attrs_post_init__(self) -> None:
        start_s = clock_seconds(self.start, "start")
        end_s = _end_clock_seconds(self.end, "end")
        if end_s <= start_s:
            raise _FieldProblem("end", f"the window ends at {self.end}, not after it starts at {self.start}")

    @property
    def interval_s(self) -> tuple[float, float]:
        """[start, end) in seconds from 00:00 of day 1."""
        base = (self.day - 1) * 86400
        return float(base + clock_seconds(self.start)), float(base + _end_clock_seconds(self.end, "end"))


def _no_overlaps(name: str, windows: tuple) -> None:
    """Raise a field problem naming the first window that overlaps an earlier one."""
    spans = sorted((w.interval_s, n) for n, w in enumerate(windows))
    for (prev, p), (cur, c) in zip(spans, spans[1:]):
        if cur[0] < prev[1]:
            first, second = sorted((p, c))
            raise _FieldProblem(name, f"overlaps {name}[{first}]", (second,))


@frozen
class Host:
    """An issuer's authorisation host: `servers` parallel servers fed by one FIFO queue."""

    servers: int = field(validator=[_positive, _at_most(10_000)])
    service_time_ms: Distribution = Distribution("exponential", mean=20.0)
    queue_limit: int = field(default=100_000, validator=[_positive, _at_most(10_000_000)])
    outages: tuple[Outage, ...] = ()
    degraded: tuple[Degradation, ...] = ()

    def __attrs_post_init__(self) -> None:
        _no_overlaps("outages", self.outages)
        _no_overlaps("degraded", self.degraded)
        for n, d in enumerate(self.degraded):
            if d.servers > self.servers:
                raise _FieldProblem("degraded", f"{d.servers} servers is more than the host has ({self.servers})",
                                    (n, "servers"))


@frozen
class StandIn:
    """What the switch may approve for an issuer that does not answer: per purchase and per day.

    The daily limit is cumulative over the issuer's stand-in approvals of one simulated
    day (00:00 to 24:00), consumed in the order the switch decides; reversals do not
    give it back. A purchase above either limit is declined `91`.
    """

    per_transaction_minor: int = field(default=100_000, validator=[_non_negative, _at_most(10**12)])
    daily_minor: int = field(default=20_000_000, validator=[_non_negative, _at_most(10**15)])


@frozen
class Issuer:
    """An institution's card issuing: its BINs, card population, host and risk rule."""

    institution: str
    bins: tuple[str, ...]
    share: float = field(validator=[_finite, _positive])
    host: Host
    cards: int = field(default=100_000, validator=[_positive, _at_most(10**9)])
    risk_decline_rate: float = field(default=0.01, validator=_probability)
    # Each card's credit limit (its open-to-buy when the run starts), fen.
    credit_limit_minor: Distribution = Distribution("lognormal", median=1_000_000.0, sigma=1.0)
    stand_in: StandIn = StandIn()
    # Purchases by this bank's cardholders at this bank's own merchants stay inside the
    # bank: authorised by its host directly, never switched, never cleared by the network.
    on_us_in_bank: bool = False
    # Card products and their shares of the cards; each card's product is drawn once.
    products: dict[ProductName, float] = attrs.Factory(lambda: {ProductName("classic"): 1.0})

    def __attrs_post_init__(self) -> None:
        if not self.bins:
            raise _FieldProblem("bins", "needs at least one BIN")
        for i, b in enumerate(self.bins):
            if not _BIN_RE.match(b):
                raise _FieldProblem("bins", f"{b!r} is not a 6 or 8 digit BIN", (i,))
        _check_products(self.products)


@frozen
class Acquirer:
    """An institution's merchant acquiring: its merchants, their categories, its files."""

    institution: str
    share: float = field(validator=[_finite, _positive])
    category_mix: dict[str, float]
    merchants: int = field(default=1_000, validator=[_positive, _at_most(10**8)])
    submission_times: tuple[str, ...] = field(default=("23:30",), validator=_clock_list)
    # No response this long after sending an 0100: the acquirer sends an 0400 reversal.
    auth_timeout_ms: float = field(default=15_000.0, validator=[_finite, _positive, _at_most(86_400_000)])
    # Each file is late with this probability (drawn per day and submission), by this much.
    late_probability: float = field(default=0.0, validator=_probability)
    late_delay_minutes: Distribution = Distribution("constant", value=60.0)

    def __attrs_post_init__(self) -> None:
        if not self.category_mix:
            raise _FieldProblem("category_mix", "needs at least one merchant category")
        for mcc, w in self.category_mix.items():
            if not (math.isfinite(w) and w > 0):
                raise _FieldProblem("category_mix", f"weight must be greater than 0, got {w!r}", (mcc,))
        if _sum_overflows(self.category_mix.values()):
            raise _FieldProblem("category_mix", _WEIGHTS_TOO_BIG)


@frozen
class Traffic:
    """Purchases over a day: a Poisson count per hour following `hourly_profile`."""

    transactions_per_day: int = field(validator=[_non_negative, _at_most(MAX_TRANSACTIONS_PER_DAY)])
    amount_minor: dict[str, Distribution]
    hourly_profile: tuple[float, ...] = (1.0,) * 24
    unknown_bin_rate: float = field(default=0.0, validator=_probability)
    amount_min_minor: int = field(default=1, validator=_positive)
    # at most 12 digits: a clearing record carries the amount in DE 4 (n12)
    amount_max_minor: int = field(default=100_000_000, validator=[_positive, _at_most(MAX_AMOUNT_MINOR)])

    def __attrs_post_init__(self) -> None:
        if len(self.hourly_profile) != 24:
            raise _FieldProblem("hourly_profile", f"needs 24 hourly weights, got {len(self.hourly_profile)}")
        for i, w in enumerate(self.hourly_profile):
            if not (math.isfinite(w) and w >= 0):
                raise _FieldProblem("hourly_profile", f"weight must not be negative, got {w!r}", (i,))
        if sum(self.hourly_profile) <= 0:
            raise _FieldProblem("hourly_profile", "at least one hour needs a weight above 0")
        if _sum_overflows(self.hourly_profile):
            raise _FieldProblem("hourly_profile", _WEIGHTS_TOO_BIG)
        if self.amount_max_minor < self.amount_min_minor:
            raise _FieldProblem("amount_max_minor", "must be at least amount_min_minor")
        if not self.amount_minor:
            raise _FieldProblem("amount_minor", "needs an amount distribution for at least one category")


@frozen
class SwitchRestart:
    """The switch restarts at `at` (HH:MM) on run day `day` and is down for `down_s` seconds.

    At the restart it loses every authorisation it holds in flight, and while it is down
    every message reaching it is lost (rules in `clearing_sim.model.switch_restarts`).
    """

    at: str
    down_s: float = field(default=60.0, validator=[_finite, _non_negative, _at_most(86_400)])
    day: int = field(default=1, validator=[_positive, _at_most(MAX_DAYS)])

    def __attrs_post_init__(self) -> None:
        clock_seconds(self.at, "at")

    @property
    def interval_s(self) -> tuple[float, float]:
        """[restart, back up) in seconds from 00:00 of day 1."""
        start = float((self.day - 1) * 86400 + clock_seconds(self.at))
        return start, start + self.down_s


@frozen
class Network:
    """The switch's links: one latency distribution per message hop."""

    latency_ms: Distribution = Distribution("lognormal", median=3.0, sigma=0.3)
    # The switch stands in when an issuer's answer has not reached it this long after forwarding.
    switch_timeout_ms: float = field(default=5_000.0, validator=[_finite, _positive, _at_most(86_400_000)])
    # Faults: switch restarts that lose in-flight authorisations (none by default).
    switch_restarts: tuple[SwitchRestart, ...] = ()


@frozen
class InterchangeRate:
    """Interchange paid by the acquirer to the issuer: `bps` of the amount plus `fixed_minor`."""

    bps: float = field(validator=[_finite, _non_negative, _at_most(10_000)])
    fixed_minor: int = field(default=0, validator=[_non_negative, _at_most(MAX_AMOUNT_MINOR)])


@frozen
class ProductInterchange:
    """Interchange of one card product: a rate for every category, and rates by category.

    A record's rate is looked up in this order: the product's `by_mcc` rate for its
    merchant category, the product's `default`, `fees.interchange` for its category,
    `fees.interchange_default`.
    """

    default: InterchangeRate | None = None
    by_mcc: dict[str, InterchangeRate] = attrs.Factory(dict)


@frozen
class Fees:
    """Interchange by merchant category (with a default) and scheme fees on both sides.

    Rounding rule: each fee is computed per record in exact integer arithmetic and
    rounded half up to a whole fen: fee = floor((amount * bps_hundredths + 500_000) / 1_000_000)
    with bps held in hundredths of a basis point, plus the fixed part.
    """

    interchange_default: InterchangeRate = InterchangeRate(bps=45.0)
    interchange: dict[str, InterchangeRate] = attrs.Factory(dict)
    scheme_issuer_bps: float = field(default=2.0, validator=[_finite, _non_negative, _at_most(10_000)])
    scheme_acquirer_bps: float = field(default=3.0, validator=[_finite, _non_negative, _at_most(10_000)])
    # Interchange by card product (and merchant category); see ProductInterchange.
    interchange_by_product: dict[ProductName, ProductInterchange] = attrs.Factory(dict)


FAULT_KINDS = {
    "late": "the file reaches the network `delay_minutes` after it was sent",
    "duplicate_file": "the acquirer sends the same file again `delay_minutes` later",
    "corrupt_trailer": "the file trailer's amount checksum (PDS 0301) is off by one fen",
    "trailer_count": "the file trailer's message count (PDS 0306) is off by one",
    "trailer_file_id": "the file trailer's file id (PDS 0105) differs from the header's",
    "truncated": "the file is cut off in the middle (an unreadable file)",
    "duplicate_records": "`records` records of the file are repeated at its end",
    "unknown_authorisation": "`records` records carry an approval code no authorisation has",
    "amount_changed": "`records` records are presented for twice their authorised amount plus 1 fen",
}


@frozen
class ClearingFault:
    """A fault injected into one acquirer file: `submission` (1-based) of `day` (1-based)."""

    kind: str
    acquirer: str
    day: int = field(default=1, validator=[_positive, _at_most(MAX_DAYS)])
    submission: int = field(default=1, validator=[_positive, _at_most(1_000)])
    delay_minutes: float = field(default=60.0, validator=[_finite, _non_negative, _at_most(MAX_DAYS * 1440)])
    records: int = field(default=1, validator=[_positive, _at_most(10**9)])

    def __attrs_post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise _FieldProblem("kind", f"unknown fault {self.kind!r} (one of: {', '.join(FAULT_KINDS)})")


@frozen
class Clearing:
    """Clearing cycles: the network clears the files received by each daily cut-off.

    Validation limits: a purchase (or refund) presented more than `presentment_limit_days`
    after its local time is rejected as late; a presented amount may differ from the
    authorised amount by at most `amount_tolerance_bps` of it. Refunds: a share
    `refund_rate` of cleared purchases is refunded in full after `refund_delay_days`
    (a draw beyond `refund_limit_days` means no refund). Files are plain VBS, or
    1014-blocked with `blocked_files`. An acquirer whose file is rejected as a whole
    presents its records again in its next file when `resubmit_rejected_files`.
    """

    cutoffs: tuple[str, ...] = field(default=("23:45",), validator=_clock_list)
    file_transfer_ms: Distribution = Distribution("constant", value=2_000.0)
    presentment_limit_days: int = field(default=30, validator=[_positive, _at_most(MAX_DAYS)])
    amount_tolerance_bps: float = field(default=0.0, validator=[_finite, _non_negative, _at_most(10_000)])
    refund_rate: float = field(default=0.0, validator=_probability)
    refund_delay_days: Distribution = Distribution("uniform", low=0.5, high=3.0)
    refund_limit_days: int = field(default=7, validator=[_positive, _at_most(MAX_DAYS)])
    blocked_files: bool = False
    resubmit_rejected_files: bool = True
    faults: tuple[ClearingFault, ...] = ()


@frozen
class Disputes:
    """Chargebacks and second presentments, all off unless their rates are above 0.

    An issuer charges back (`1442`/450, reason `chargeback_reason_code`) a share
    `chargeback_rate` of the purchases cleared to it, `chargeback_delay_days` after
    they cleared, in its own file sent at `issuer_file_times`; a draw beyond
    `chargeback_limit_days` means no chargeback (time-barred). The acquirer re-presents
    (`1240`/205) a share `representment_rate` of its chargebacks, likewise.
    """

    chargeback_rate: float = field(default=0.0, validator=_probability)
    chargeback_delay_days: Distribution = Distribution("uniform", low=1.0, high=10.0)
    chargeback_limit_days: int = field(default=30, validator=[_positive, _at_most(MAX_DAYS)])
    chargeback_reason_code: int = field(default=4853, validator=[_positive, _at_most(9999)])
    representment_rate: float = field(default=0.0, validator=_probability)
    representment_delay_days: Distribution = Distribution("uniform", low=1.0, high=5.0)
    representment_limit_days: int = field(default=10, validator=[_positive, _at_most(MAX_DAYS)])
    issuer_file_times: tuple[str, ...] = field(default=("21:00",), validator=_clock_list)


WEEKDAY_NAMES = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
DEFAULT_RULES = ("unwind", "loss_sharing", "guarantee_fund")
LOSS_SHARING_KEYS = ("bilateral_exposure", "equal", "fixed")
MAX_ACCOUNT_MINOR = 10**17  # fen; keeps balance + collateral + fund far below 2**63


def _one_of(options: tuple[str, ...]):
    def check(inst: Any, a: attrs.Attribute, v: str) -> None:
        if v not in options:
            raise _FieldProblem(a.name, f"unknown value {v!r} (one of: {', '.join(options)})")

    return check


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


def _is_date(text: str) -> bool:
    """Whether `text` is a calendar date written YYYY-MM-DD (not the other ISO forms
    Python accepts, `20261102` or `2026-W45-1`, which would slip past the duplicate checks)."""
    if not _DATE_RE.match(text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _date_list(inst: Any, a: attrs.Attribute, v: tuple[str, ...]) -> None:
    seen: dict[str, int] = {}
    for i, text in enumerate(v):
        if not _is_date(text):
            raise _FieldProblem(a.name, f"{text!r} is not a date in YYYY-MM-DD form", (i,))
        if text in seen:
            raise _FieldProblem(a.name, f"{text} is listed twice (first at [{seen[text]}])", (i,))
        seen[text] = i


def _optional_minor(inst: Any, a: attrs.Attribute, v: int | None) -> None:
    if v is None:
        return
    if v < 0:
        raise _FieldProblem(a.name, f"must not be negative, got {v!r}")
    if v > MAX_ACCOUNT_MINOR:
        raise _FieldProblem(a.name, f"must be at most {MAX_ACCOUNT_MINOR:,}, got {v:,}")


@frozen
class Calendar:
    """Business days on which settlement windows run (traffic and clearing run every day).

    `weekend`: weekday names (MON..SUN) that are not business days. `holidays`: dates
    (YYYY-MM-DD) that are not business days. `working_days`: weekend dates that are
    business days all the same (China's adjusted working days around public holidays).
    """

    weekend: tuple[str, ...] = ("SAT", "SUN")
    holidays: tuple[str, ...] = field(default=(), validator=_date_list)
    working_days: tuple[str, ...] = field(default=(), validator=_date_list)

    def __attrs_post_init__(self) -> None:
        for i, d in enumerate(self.weekend):
            if d not in WEEKDAY_NAMES:
                raise _FieldProblem("weekend", f"{d!r} is not a weekday name (one of: {', '.join(WEEKDAY_NAMES)})", (i,))
            if d in self.weekend[:i]:
                raise _FieldProblem("weekend", f"{d} is listed twice", (i,))
        if len(set(self.weekend)) >= 7:
            raise _FieldProblem("weekend", "at least one weekday must be a business day")
        holidays = set(self.holidays)
        for i, text in enumerate(self.working_days):
            if text in holidays:
                raise _FieldProblem("working_days", f"{text} is also listed as a holiday", (i,))
            day = WEEKDAY_NAMES[dt.date.fromisoformat(text).weekday()]
            if day not in self.weekend:
                raise _FieldProblem("working_days", f"{text} is a {day}, already a business day: "
                                    "list only weekend dates that are worked", (i,))


@frozen
class SettlementAccount:
    """A participant's account at the settlement bank (money in fen).

    A net debtor can fund at most min(`net_debit_cap_minor`, balance + collateral):
    the balance first, then a collateralised overdraft up to `collateral_minor`.
    Balances carry from window to window (no top-ups are modelled). A participant
    with no account listed is assumed able to fund any net debit.
    `guarantee_fund_minor` is its pre-funded contribution to the guarantee fund (only
    with `default_rule: guarantee_fund`); `loss_share_weight` its share of losses
    (only with `loss_sharing_key: fixed`).
    """

    participant: str
    opening_balance_minor: int = field(default=0, validator=[_non_negative, _at_most(MAX_ACCOUNT_MINOR)])
    collateral_minor: int = field(default=0, validator=[_non_negative, _at_most(MAX_ACCOUNT_MINOR)])
    net_debit_cap_minor: int | None = field(default=None, validator=_optional_minor)
    guarantee_fund_minor: int = field(default=0, validator=[_non_negative, _at_most(MAX_ACCOUNT_MINOR)])
    loss_share_weight: float | None = field(default=None, validator=_finite)

    def __attrs_post_init__(self) -> None:
        if self.loss_share_weight is not None and self.loss_share_weight < 0:
            raise _FieldProblem("loss_share_weight", f"must not be negative, got {self.loss_share_weight!r}")


MAX_BANK_DELAY_MINUTES = 24 * 60  # a window the bank has not settled within a day is an operator's matter (abort)


@frozen
class BankDelay:
    """The settlement bank completes the window at `window` (HH:MM) of run day `day` `delay_minutes` late.

    The window still closes at its time (its obligations are fixed then) and stays
    PENDING_SETTLEMENT until close + delay, then settles. Windows settle in order, so
    a later window that closes meanwhile settles only after this one (see
    docs/settlement.md).
    """

    window: str = field(validator=_clock)
    delay_minutes: int = field(validator=[_non_negative, _at_most(MAX_BANK_DELAY_MINUTES)])
    day: int = field(default=1, validator=[_positive, _at_most(MAX_DAYS + 60)])


@frozen
class Settlement:
    """Deferred net settlement: window times each day, `lag_days` after the cycle (T+N).

    `lag_days` counts business days of `calendar`. `accounts` are the participants'
    settlement-bank accounts; `default_rule` says what happens when a net debtor
    cannot fund: `unwind`, `loss_sharing` (survivors pay pro rata to
    `loss_sharing_key`) or `guarantee_fund` (pre-funded contributions, then loss sharing).
    """

    windows: tuple[str, ...] = field(default=("10:00",), validator=_clock_list)
    lag_days: int = field(default=1, validator=[_non_negative, _at_most(30)])
    calendar: Calendar = Calendar()
    accounts: tuple[SettlementAccount, ...] = ()
    default_rule: str = field(default="unwind", validator=_one_of(DEFAULT_RULES))
    loss_sharing_key: str = field(default="bilateral_exposure", validator=_one_of(LOSS_SHARING_KEYS))
    bank_delays: tuple[BankDelay, ...] = ()


@frozen
class Run:
    """How long to simulate and with which root seed; `start_date` is day 1's calendar date."""

    days: int = field(default=1, validator=[_positive, _at_most(MAX_DAYS)])
    seed: int = field(default=0, validator=[_non_negative, _at_most(2**63 - 1)])
    start_date: str = "2026-11-02"

    def __attrs_post_init__(self) -> None:
        if not _is_date(self.start_date):
            raise _FieldProblem("start_date", f"{self.start_date!r} is not a date in YYYY-MM-DD form")


@frozen
class Scenario:
    """A whole network and its day(s): the single input of a run."""

    name: str = field(validator=_one_line)
    institutions: tuple[Institution, ...]
    issuers: tuple[Issuer, ...]
    acquirers: tuple[Acquirer, ...]
    traffic: Traffic
    description: str = field(default="", validator=_text)
    run: Run = Run()
    network: Network = Network()
    fees: Fees = Fees()
    clearing: Clearing = Clearing()
    settlement: Settlement = Settlement()
    disputes: Disputes = Disputes()

    @property
    def participant_ids(self) -> tuple[str, ...]:
        """Settlement participants in index order: every institution, then the network."""
        return tuple(i.id for i in self.institutions) + (NETWORK_ID,)

    def institution_index(self, institution_id: str) -> int:
        """Index of an institution in `participant_ids`; raises KeyError if unknown."""
        return self.participant_ids.index(institution_id)


# --- loading ---------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def _strict_converter() -> cattrs.Converter:
    """A converter that refuses unknown keys and never coerces between types."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

    def struct_int(v: Any, _: type) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer() and abs(v) < 2**63:
                return int(v)
            raise TypeError(f"expected a whole number, got {_describe(v)}")
        return v

    def struct_float(v: Any, _: type) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"expected a number, got {_describe(v)}")
        return float(v)

    def struct_str(v: Any, _: type) -> str:
        if not isinstance(v, str):
            raise TypeError(f"expected text, got {_describe(v)}")
        return v

    def struct_mcc_map(value_type: type):
        def hook(v: Any, _: type) -> dict[str, Any]:
            if not isinstance(v, dict):
                raise TypeError(f"expected a mapping of merchant category codes, got {_describe(v)}")
            out: dict[str, Any] = {}
            problems: list[Exception] = []
            for k, item in v.items():
                key = f"{k:04d}" if isinstance(k, int) and not isinstance(k, bool) else k
                if not isinstance(key, str) or not _MCC_RE.match(key):
                    problems.append(_FieldProblem("", f"{k!r} is not a 4-digit merchant category code", (k,)))
                    continue
                if key in out:  # "5411" and 5411: one category written twice
                    problems.append(_FieldProblem("", f"merchant category {key} is listed twice", (k,)))
                    continue
                try:
                    out[key] = conv.structure(item, value_type)
                except Exception as exc:  # noqa: BLE001 - re-raised below with its key
                    exc.__dict__.setdefault("_scenario_key", k)
                    problems.append(exc)
            if problems:
                raise _KeyedErrors(problems)
            return dict(sorted(out.items()))

        return hook

    conv.register_structure_hook(int, struct_int)
    conv.register_structure_hook(float, struct_float)
    conv.register_structure_hook(str, struct_str)

    def struct_bool(v: Any, _: type) -> bool:
        if not isinstance(v, bool):
            raise TypeError(f"expected true or false, got {_describe(v)}")
        return v

    conv.register_structure_hook(bool, struct_bool)

    def is_list_type(t: Any) -> bool:
        return typing.get_origin(t) is tuple and typing.get_args(t)[1:] == (Ellipsis,)

    def struct_list_factory(t: Any, c: cattrs.Converter):
        # cattrs would iterate any value: text into its characters, a mapping into its keys.
        base = cattrs.cols.homogenous_tuple_structure_factory(t, c)

        def hook(v: Any, _: type) -> tuple:
            if not isinstance(v, list):
                raise TypeError(f"expected a list, got {_describe(v)}")
            return base(v, _)

        return hook

    conv.register_structure_hook_factory(is_list_type, struct_list_factory)
    for value_type in (float, Distribution, InterchangeRate):
        conv.register_structure_hook_func(
            lambda t, vt=value_type: t == dict[str, vt], struct_mcc_map(value_type)
        )
    return conv


class _KeyedErrors(Exception):
    """Errors inside a mapping, each tagged with the key it belongs to."""

    def __init__(self, errors: list[Exception]):
        super().__init__("errors in mapping")
        self.errors = errors


def _describe(v: Any) -> str:
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return f"true/false ({v})"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return f"{type(v).__name__} {v!r}"


_CONVERTER = _strict_converter()


def _walk_errors(exc: BaseException, path: Path_) -> Iterator[tuple[Path_, str]]:
    """Flatten cattrs' exception groups into (path, message) pairs."""
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            yield from _walk_errors(sub, path + (note.name,))
        for sub in without:
            yield from _walk_errors(sub, path)
    elif isinstance(exc, IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            yield from _walk_errors(sub, path + (note.index,))
        for sub in without:
            yield from _walk_errors(sub, path)
    elif isinstance(exc, _KeyedErrors):
        for sub in exc.errors:
            key = sub.__dict__.get("_scenario_key")
            yield from _walk_errors(sub, path if key is None else path + (key,))
    elif isinstance(exc, _FieldProblem):
        p = path + ((exc.field_name,) if exc.field_name else ()) + exc.subpath
        yield p, exc.message
    elif isinstance(exc, ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields, key=repr):
            yield path + (key,), "unknown key (check its spelling against the scenario reference)"
    elif isinstance(exc, KeyError):
        yield path, "required key is missing"
    elif isinstance(exc, TypeError):
        msg = str(exc)
        if "missing" in msg and "required" in msg:
            yield path, "required key is missing"
        elif "expected" in msg:
            yield path, msg
        elif (m := re.fullmatch(r"argument of type '(\w+)' is not iterable", msg)):
            got = {"NoneType": "nothing (null)", "int": "a number", "float": "a number",
                   "bool": "true or false"}.get(m.group(1), m.group(1))
            yield path, f"expected a mapping of keys to values, got {got}"
        else:
            yield path, f"wrong type ({msg})"
    elif isinstance(exc, AttributeError):
        yield path, "expected a mapping of keys to values"
    else:
        yield path, str(exc) or type(exc).__name__


def format_path(path: Path_) -> str:
    """`issuers[1].host.servers` from ('issuers', 1, 'host', 'servers')."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out


MAX_YAML_VALUES = 1_000_000  # a scenario or sweep file holds a few thousand at most


class _TextTimestamps(RoundTripConstructor):
    """Reads an unquoted time stamp that is no real date (`2026-02-30`) as the text written,
    so the scenario's own checks name its path and line (it stopped the YAML loader, with
    no path and no line); a real one is read as before."""

    def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
        try:
            return super().construct_yaml_timestamp(node, values)
        except (ValueError, OverflowError):
            return str(self.construct_scalar(node))


    # An explicit tag on text that is no such value (`!!int ''`, `!!bool maybe`, `!!int 0x`) failed
    # inside ruamel.yaml with an IndexError or KeyError: exit 1, "a bug". A YAML error at its line.
    def construct_yaml_int(self, node: Any) -> Any:
        return self._tagged(super().construct_yaml_int, node, "a whole number")

    def construct_yaml_float(self, node: Any) -> Any:
        return self._tagged(super().construct_yaml_float, node, "a number")

    def construct_yaml_bool(self, node: Any) -> Any:
        return self._tagged(super().construct_yaml_bool, node, "true or false")

    # `!!set x` and `!!omap x` on a single value failed inside ruamel.yaml with an AttributeError.
    def construct_yaml_set(self, node: Any) -> Any:
        self._collection(node, "a mapping")
        yield from super().construct_yaml_set(node)

    def construct_yaml_omap(self, node: Any) -> Any:
        self._collection(node, "a list")
        yield from super().construct_yaml_omap(node)

    # A key that is a mapping holding a mapping or list (`? {a: {b: 1}}`) cannot be hashed: it
    # stopped the loader with "unsupported structure (unhashable type ...)", naming no line.
    def construct_mapping(self, node: Any, maptyp: Any, deep: bool = False) -> Any:
        try:
            return super().construct_mapping(node, maptyp, deep=deep)
        except TypeError:
            key = next((k for k, _ in node.value if not isinstance(k, ScalarNode)), node)
            raise ConstructorError(None, None, "a mapping or list is no key: a key is text or a number",
                                   key.start_mark) from None

    def _collection(self, node: Any, what: str) -> None:
        if isinstance(node, ScalarNode):
            raise ConstructorError(None, None, f"{_tag(node)} needs {what}, got the single value {node.value!r}",
                                   node.start_mark)

    def _tagged(self, construct: Any, node: Any, what: str) -> Any:
        try:
            return construct(node)
        except (ValueError, IndexError, KeyError, OverflowError):
            raise ConstructorError(None, None, f"{_tag(node)} {node.value!r} is not {what}", node.start_mark) from None


def _tag(node: Any) -> str:
    """A node's tag as written in YAML's short form (`!!int`)."""
    return str(getattr(node.tag, "value", node.tag)).replace("tag:yaml.org,2002:", "!!")


_TextTimestamps.add_constructor("tag:yaml.org,2002:timestamp", _TextTimestamps.construct_yaml_timestamp)
_TextTimestamps.add_constructor("tag:yaml.org,2002:int", _TextTimestamps.construct_yaml_int)
_TextTimestamps.add_constructor("tag:yaml.org,2002:float", _TextTimestamps.construct_yaml_float)
_TextTimestamps.add_constructor("tag:yaml.org,2002:bool", _TextTimestamps.construct_yaml_bool)
_TextTimestamps.add_constructor("tag:yaml.org,2002:set", _TextTimestamps.construct_yaml_set)
_TextTimestamps.add_constructor("tag:yaml.org,2002:omap", _TextTimestamps.construct_yaml_omap)


class _Source:
    """The parsed YAML as plain Python values, with the line of every path."""

    def __init__(self, text: str, source: str):
        yaml = YAML(typ="rt", pure=True)
        yaml.Constructor = _TextTimestamps
        yaml.allow_duplicate_keys = False
        try:
            tree = yaml.load(io.StringIO(text))
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            what = (exc.problem or exc.context or "YAML syntax error").strip()
            if isinstance(exc, DuplicateKeyError):
                found = _duplicate_key(yaml, text, exc)
                if found is not None:
                    raise ScenarioError(source, [found]) from None
                what = "duplicate key " + _duplicate_key_name(str(exc))
            raise ScenarioError(source, [Problem("", f"YAML error: {what}", line)]) from None
        except ReaderError as exc:  # a character YAML does not allow (NUL, a control character)
            line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
            what = f"unacceptable character #x{exc.character:04x}: {exc.reason}" if isinstance(
                exc.character, int) else str(exc)
            raise ScenarioError(source, [Problem("", f"YAML error: {what}", line)]) from None
        except YAMLError as exc:
            raise ScenarioError(source, [Problem("", f"YAML error: {exc}")]) from None
        except (TypeError, ValueError, RecursionError, OverflowError, AssertionError) as exc:
            # ruamel.yaml's own failures on odd input, e.g. a list used as a mapping key, or
            # its assertion on a `%YAML 1.3` directive.
            raise ScenarioError(source, [Problem("", f"YAML error: unsupported structure ({exc})")]) from None
        self.lines: dict[Path_, int] = {}
        self.problems: list[Problem] = []
        self._values = 0
        self._source = source
        self.data = self._plain(tree, ())
        self.source = source

    def _plain(self, node: Any, path: Path_) -> Any:
        self._values += 1
        if self._values > MAX_YAML_VALUES:
            # Aliases of aliases (`&a [*b, *b, ...]`) expand exponentially: stop, don't hang.
            raise ScenarioError(self._source, [Problem(format_path(path), f"YAML error: more than "
                                                       f"{MAX_YAML_VALUES:,} values (aliases nested too deep?)",
                                                       self.line_of(path))])
        tag = getattr(getattr(node, "tag", None), "value", None)
        if tag is not None and tag not in _PLAIN_TAGS:
            self.problems.append(Problem(format_path(path), f"unsupported YAML value (tag {tag})", self.line_of(path)))
            return None
        if isinstance(node, TaggedScalar):
            return str(node.value)
        if isinstance(node, CommentedMap):
            out = {}
            for k in node:
                if isinstance(k, (CommentedKeySeq, CommentedKeyMap)):  # `[a]: 1`: at the key's line, not the map's
                    line = node.lc.key(k)[0] + 1 if k in node.lc.data else self.line_of(path)
                    what = "list" if isinstance(k, CommentedKeySeq) else "mapping"
                    self.problems.append(Problem(format_path(path), f"a {what} is no key: a key is text or a number",
                                                 line))
                    continue
                key = self._plain(k, path) if not isinstance(k, (str, int)) else k
                if isinstance(key, str) and not isinstance(key, int):
                    key = str(key)
                try:
                    self.lines[path + (key,)] = node.lc.key(k)[0] + 1
                except (KeyError, TypeError, AttributeError):
                    pass
                out[key] = self._plain(node[k], path + (key,))
            return out
        if isinstance(node, CommentedSeq):
            out_list = []
            for i, item in enumerate(node):
                try:
                    self.lines[path + (i,)] = node.lc.item(i)[0] + 1
                except (KeyError, TypeError, AttributeError):
                    pass
                out_list.append(self._plain(item, path + (i,)))
            return out_list
        if node is None or isinstance(node, bool):
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, str):
            return str(node)
        if isinstance(node, (dt.date, dt.datetime)):
            return node.isoformat()
        tag = getattr(getattr(node, "tag", None), "value", None) or type(node).__name__
        self.problems.append(Problem(format_path(path), f"unsupported YAML value ({tag})", self.line_of(path)))
        return None

    def line_of(self, path: Path_) -> int | None:
        """The YAML line of a path, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return 1 if self.lines else None


_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "str", "int", "float", "bool", "null")}


def _duplicate_key(yaml: YAML, text: str, exc: MarkedYAMLError) -> Problem | None:
    """A duplicate key with its path and both lines: the mapping and the second key are where
    `exc` says; the path and the first key are found in the composed (unconstructed) nodes."""
    if exc.context_mark is None or exc.problem_mark is None:
        return None
    mapping_at = (exc.context_mark.line, exc.context_mark.column)
    key_at = (exc.problem_mark.line, exc.problem_mark.column)
    try:
        root = yaml.compose(io.StringIO(text))
    except Exception:  # noqa: BLE001 - the loader's own message is kept
        return None
    todo: list[tuple[Any, Path_]] = [(root, ())]
    seen: set[int] = set()
    while todo:
        node, path = todo.pop()
        if id(node) in seen:  # an alias: its node is walked once
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            keys = [k for k, _ in node.value if isinstance(k, ScalarNode)]
            if (node.start_mark.line, node.start_mark.column) == mapping_at:
                second = next((k for k in keys if (k.start_mark.line, k.start_mark.column) == key_at), None)
                first = next((k for k in keys if second is not None and k is not second
                              and _key_value(yaml, k) == _key_value(yaml, second)), None)
                if first is not None:
                    a, b = first.start_mark, second.start_mark
                    where = f"at line {a.line + 1} and again at line {b.line + 1}" if a.line != b.line else \
                        f"twice on line {b.line + 1} (columns {a.column + 1} and {b.column + 1})"
                    return Problem(format_path(path + (second.value,)), f"duplicate key {second.value!r}: given {where}",
                                   b.line + 1)
            # In document order, so that a mapping shared by an alias is named where it is written.
            todo += reversed([(v, path + (k.value,)) for k, v in node.value if isinstance(k, ScalarNode)])
        elif isinstance(node, SequenceNode):
            todo += reversed([(v, path + (i,)) for i, v in enumerate(node.value)])
    return None


def _key_value(yaml: YAML, node: ScalarNode) -> Any:
    """A scalar key as the loader compares keys (`~` and `null` are one key, `0x1523` is 5411)."""
    try:
        return yaml.constructor.construct_object(node, deep=True)
    except Exception:  # noqa: BLE001 - then the text written
        return (node.tag, node.value)


def _duplicate_key_name(text: str) -> str:
    m = re.search(r'found duplicate key "([^"]*)"', text)
    return repr(m.group(1)) if m else ""


def load_scenario(path: str | Path) -> Scenario:
    """Load, structure and check a scenario file; raises ScenarioError (exit 2) if invalid."""
    p = Path(path)
    return parse_scenario(read_yaml_text(p), source=str(p))


MAX_YAML_BYTES = 2 * 1024 * 1024  # national_day.yaml, 30 issuers and 40 acquirers, is 15 kB


# YAML's own rule for a stream's encoding (YAML 1.2, 5.2): a byte order mark, or else the
# NULs around the first character, which is ASCII (Windows tools save UTF-16).
_YAML_BOMS = ((b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\xfe\xff", "utf-16"),
              (b"\xff\xfe", "utf-16"), (b"\xef\xbb\xbf", "utf-8-sig"))


def _yaml_encoding(data: bytes) -> str:
    for bom, encoding in _YAML_BOMS:
        if data.startswith(bom):
            return encoding
    if data[:3] == b"\x00\x00\x00":
        return "utf-32-be"
    if data[1:4] == b"\x00\x00\x00":
        return "utf-32-le"
    if data[:1] == b"\x00":
        return "utf-16-be"
    if data[1:2] == b"\x00":
        return "utf-16-le"
    return "utf-8"


def read_yaml_text(path: Path, kind: str = "scenario") -> str:
    """The text of a YAML file (a `kind` file): UTF-8, or UTF-16 or UTF-32 as YAML detects
    them; line breaks made `\\n`. Reads at most MAX_YAML_BYTES + 1 bytes (/dev/zero or a
    pipe cannot fill the memory); raises ScenarioError naming the file (and the line of a
    byte that is no character)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ScenarioError(str(path), [Problem("", "file not found")]) from None
    except IsADirectoryError:
        raise ScenarioError(str(path), [Problem("", f"is a folder, not a {kind} file")]) from None
    except OSError as exc:
        raise ScenarioError(str(path), [Problem("", f"cannot read the file: {exc.strerror or exc}")]) from None
    if len(data) > MAX_YAML_BYTES:
        raise ScenarioError(str(path), [Problem("", f"is larger than {MAX_YAML_BYTES:,} bytes, too large for a {kind} "
                                                    "file (they are a few kB)")])
    encoding = _yaml_encoding(data)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode(encoding, errors="replace").replace("\r\n", "\n").replace("\r", "\n")
        column = len(before) - before.rfind("\n")
        raise ScenarioError(str(path), [Problem(
            "", f"not {encoding.upper().removesuffix('-SIG')} text: byte 0x{data[exc.start]:02x} at column {column} "
                f"is no character (save the file as UTF-8)", before.count("\n") + 1)]) from None
    # As Python's text files read them: CRLF and a lone CR (old Mac editors) end a line too.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Structure and check scenario YAML text; raises ScenarioError (exit 2) if invalid."""
    return scenario_from_source(_Source(text, source), source)


def sweep_shaped(data: Any) -> bool:
    """Whether YAML data reads as a sweep file (`clearing_sim.sweep`) rather than a scenario:
    a mapping with `base`, which is no scenario key, and no `institutions`."""
    return isinstance(data, dict) and "base" in data and "institutions" not in data


def scenario_from_source(src: _Source, source: str) -> Scenario:
    """`parse_scenario` of YAML already read (`_Source`), which it leaves as it was."""
    if src.problems:
        raise ScenarioError(source, src.problems)
    if not isinstance(src.data, dict):
        raise ScenarioError(source, [Problem("", "a scenario is a mapping of keys (name, institutions, ...)", 1)])
    if sweep_shaped(src.data):  # one line that says what it is, not eight missing and unknown keys
        raise ScenarioError(source, [Problem("base", "this is a sweep file (a base scenario and a grid), not a "
                                             "scenario: run it with `clearing-sim sweep`", src.line_of(("base",)))])
    try:
        scenario = _CONVERTER.structure(src.data, Scenario)
    except Exception as exc:  # noqa: BLE001 - every structuring failure becomes a Problem
        problems = [Problem(format_path(p), m, src.line_of(p)) for p, m in _walk_errors(exc, ())]
        raise ScenarioError(source, _dedupe(problems)) from None
    problems = [Problem(format_path(p), m, src.line_of(p)) for p, m in _cross_checks(scenario)]
    if problems:
        raise ScenarioError(source, problems)
    _remember_checked(scenario)
    return scenario


# The scenarios checked in this process, by id, with what they held when checked (a deep copy:
# a Scenario is frozen, but its dicts can be edited in place). `check_scenario` passes one
# that still holds the same at once, sparing a YAML round trip (0.07 s for baseline, 0.26 s
# for national_day) on every run of a loaded scenario.
_CHECKED: dict[int, tuple[weakref.ref, dict]] = {}


def _remember_checked(scenario: Scenario) -> None:
    key = id(scenario)
    _CHECKED[key] = (weakref.ref(scenario, lambda _ref, key=key: _CHECKED.pop(key, None)),
                     copy.deepcopy(unstructure(scenario)))


def check_scenario(scenario: Scenario, source: str = "<scenario object>") -> Scenario:
    """A Scenario made or changed in Python (`attrs.evolve`, a dict edited in place) checked as
    strictly as a file, by the same structuring and cross checks; returns the checked copy
    (or `scenario` itself, when it holds what it held when it was checked).
    Raises ScenarioError naming each problem's path (no line: there is no file)."""
    seen = _CHECKED.get(id(scenario))
    data = unstructure(scenario)
    if seen is not None and seen[0]() is scenario and data == seen[1]:
        return scenario
    try:
        text = dump_yaml(data)
    except Exception as exc:  # noqa: BLE001 - a value no scenario file could hold
        where, value = _unwritable(data, ()) or ((), None)
        what = repr(value) if where else str(exc)
        raise ScenarioError(source, [Problem(format_path(where), f"holds a value no scenario file can: {what} "
                                                                 "(a plain int, float, str or bool can be)")]) from None
    try:
        return parse_scenario(text, source=source)
    except ScenarioError as exc:  # the lines would be those of a text the user never saw
        raise ScenarioError(source, [attrs.evolve(p, line=None) for p in exc.problems]) from None


_PLAIN = (str, int, float, bool, type(None))


def _unwritable(data: Any, path: Path_) -> tuple[Path_, Any] | None:
    """The path and value of the first key or value in plain scenario data that is not a plain
    YAML scalar (a numpy number set with `attrs.evolve`, say), or None."""
    if isinstance(data, dict):
        for k, v in data.items():
            if type(k) not in _PLAIN:
                return path + (str(k),), k
            if (found := _unwritable(v, path + (k,))) is not None:
                return found
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            if (found := _unwritable(v, path + (i,))) is not None:
                return found
    elif type(data) not in _PLAIN:
        return path, data
    return None


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


# A message's hop or a host's service longer than this would put events past the run's end.
MAX_MESSAGE_TIME_MS = 3_600_000
# A drawn late file's delay: the limit of a `late` fault's delay_minutes. Every record of a
# file later than this is past any presentment_limit_days; the run's horizon grows with it.
MAX_LATE_MINUTES = MAX_DAYS * 1440


def _shown_tail(tail: float) -> str:
    """A far tail (`Distribution.far_tail`) for an error message."""
    return "more than 10^300" if math.isinf(tail) else f"{tail:,.0f}" if tail < 1e15 else f"{tail:.3g}"


def _cross_checks(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """Checks that span fields: references, uniqueness, overlaps."""
    if not s.name.strip():
        yield ("name",), "must not be empty"
    timed = [(("network", "latency_ms"), s.network.latency_ms)]
    timed += [(("issuers", n, "host", "service_time_ms"), i.host.service_time_ms) for n, i in enumerate(s.issuers)]
    for path, dist in timed:
        tail = dist.far_tail()
        if tail > MAX_MESSAGE_TIME_MS:
            param = dist.tail_parameter(MAX_MESSAGE_TIME_MS)
            shown = "more than 10^300" if math.isinf(tail) else f"{tail:,.0f}"
            yield (*path, param), (f"draws beyond an hour ({shown} ms about once in 10^6 draws); per-message "
                                   f"times must stay within {MAX_MESSAGE_TIME_MS:,} ms so every event falls "
                                   "inside the run")
    transfer = s.clearing.file_transfer_ms
    tail = transfer.far_tail()
    if tail > MAX_LATE_MINUTES * 60_000.0:
        # The run lasts until the slowest file has arrived and cleared (the horizon counts the
        # drawn transfers beyond an hour, clearing_draws.lateness_days), as for late files.
        yield (("clearing", "file_transfer_ms", transfer.tail_parameter(MAX_LATE_MINUTES * 60_000.0)),
               f"draws beyond {MAX_DAYS} days ({_shown_tail(tail)} ms about once in 10^6 draws); a file must "
               f"reach the network within {MAX_LATE_MINUTES * 60_000:,} ms, as the run lasts until the slowest "
               "file has arrived and cleared")
    for n, acq in enumerate(s.acquirers):
        tail = acq.late_delay_minutes.far_tail()
        if acq.late_probability > 0 and tail > MAX_LATE_MINUTES:
            param = acq.late_delay_minutes.tail_parameter(MAX_LATE_MINUTES)
            yield (("acquirers", n, "late_delay_minutes", param),
                   f"draws beyond {MAX_DAYS} days ({_shown_tail(tail)} minutes about once in 10^6 draws); a late "
                   f"file must arrive within {MAX_LATE_MINUTES:,} minutes (a fault's delay_minutes limit), as "
                   "the run lasts until the latest file has arrived and cleared")
    ids = [i.id for i in s.institutions]
    if not ids:
        yield ("institutions",), "needs at least one institution"
    seen: dict[str, int] = {}
    for n, inst in enumerate(s.institutions):
        if inst.id == NETWORK_ID:
            yield ("institutions", n, "id"), f"{NETWORK_ID!r} is reserved for the network itself"
        if inst.id in seen:
            yield ("institutions", n, "id"), f"duplicate institution id {inst.id!r} (first at institutions[{seen[inst.id]}])"
        seen.setdefault(inst.id, n)
    known = set(ids)
    if not s.issuers:
        yield ("issuers",), "needs at least one issuer"
    if not s.acquirers:
        yield ("acquirers",), "needs at least one acquirer"
    for role, items in (("issuers", s.issuers), ("acquirers", s.acquirers)):
        if items and _sum_overflows(item.share for item in items):
            largest = max(range(len(items)), key=lambda n: items[n].share)
            yield (role, largest, "share"), f"the {role}' shares: {_WEIGHTS_TOO_BIG}"
        first: dict[str, int] = {}
        for n, item in enumerate(items):
            if item.institution not in known:
                yield (role, n, "institution"), f"unknown institution {item.institution!r} (known: {', '.join(ids)})"
            if item.institution in first:
                yield (role, n, "institution"), f"{item.institution!r} is already listed at {role}[{first[item.institution]}]"
            first.setdefault(item.institution, n)
    bin_owner: dict[str, int] = {}
    for n, iss in enumerate(s.issuers):
        for k, b in enumerate(iss.bins):
            if b in bin_owner:
                yield ("issuers", n, "bins", k), f"BIN {b} is already routed to issuers[{bin_owner[b]}]"
            bin_owner.setdefault(b, n)
    yield from _nested_bin_checks(s)
    for n, acq in enumerate(s.acquirers):
        for mcc in acq.category_mix:
            if mcc not in s.traffic.amount_minor:
                yield ("acquirers", n, "category_mix", mcc), f"merchant category {mcc} has no traffic.amount_minor distribution"
    yield from _clearing_checks(s)
    if s.settlement.lag_days == 0 and s.run.days == 0:
        yield ("run", "days"), "must be at least 1"
    yield from _settlement_checks(s)
    yield from _calendar_checks(s)
    yield from _authorisation_checks(s)
    yield from _bank_delay_checks(s)
    yield from _money_checks(s)


# Every sum of money a run keeps (a participant's position, a window's gross, the run's
# totals, the exposure over time) is int64 fen, and the run's money bounds them all. A
# scenario whose worst case reaches MONEY_BOUND_MINOR (half of int64's range: headroom for
# both legs of a transfer and the settlement accounts' balances) is refused before it runs.
MONEY_BOUND_MINOR = 2**62


def money_bound_minor(s: Scenario, amount_max_minor: int | None = None) -> tuple[int, int]:
    """(purchases, fen): at most how many purchases the run draws (its expected count plus
    8 standard deviations of the Poisson count, which it exceeds about once in 10^15 runs)
    and the most money they can move, every purchase at `amount_max_minor` (the
    scenario's own when None): its presentment and, where the scenario has them, a refund,
    a chargeback and a second presentment, each with the largest interchange and both
    scheme fees (rounded up), at twice the amount plus a fen with an `amount_changed`
    fault."""
    t, f = s.traffic, s.fees
    amount = t.amount_max_minor if amount_max_minor is None else amount_max_minor
    expected = t.transactions_per_day * s.run.days
    purchases = expected + 8 * math.isqrt(expected) + 8
    if any(fault.kind == "amount_changed" for fault in s.clearing.faults):
        amount = 2 * amount + 1
    rates = [f.interchange_default, *f.interchange.values()]
    for product in f.interchange_by_product.values():
        rates += [r for r in (product.default, *product.by_mcc.values()) if r is not None]
    bps = max(r.bps for r in rates) + f.scheme_issuer_bps + f.scheme_acquirer_bps
    fixed = max(r.fixed_minor for r in rates)
    record = amount + math.ceil(amount * bps / 10_000) + fixed + 3  # + 3: each fee rounded half up
    records = 1 + (s.clearing.refund_rate > 0) + (s.disputes.chargeback_rate > 0) + (
        s.disputes.chargeback_rate > 0 and s.disputes.representment_rate > 0)
    return purchases, purchases * records * record


def _nested_bin_checks(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """An 8-digit BIN inside another issuer's 6-digit BIN must not take that issuer's cards.

    Card `c` of an issuer with BINs `bins` gets BIN `bins[c % len(bins)]` followed by the
    9-digit account `c // len(bins)` (`model.routing`), so a 6-digit BIN's cards use the
    accounts 0 .. n-1 and their PANs start with the BIN and the account's first two
    digits. The switch routes by longest prefix: another issuer's 8-digit BIN made of the
    6-digit one and two digits XY takes every card whose account starts with XY, and those
    cards would be authorised by the wrong issuer (the run stops on it). Such a BIN is
    fine only when XY * 10^7 >= n (a carve-out the issuer's cards do not reach)."""
    for m, inner in enumerate(s.issuers):
        for k, b8 in enumerate(inner.bins):
            if len(b8) != 8:
                continue
            for n, outer in enumerate(s.issuers):
                if n == m or b8[:6] not in outer.bins:
                    continue
                count = len(outer.bins)
                j = outer.bins.index(b8[:6])
                accounts = (outer.cards - 1 - j) // count + 1 if outer.cards > j else 0
                low = math.ceil(accounts / 10**7)
                if int(b8[6:]) < low:
                    yield (("issuers", m, "bins", k),
                           f"BIN {b8} lies inside issuers[{n}]'s BIN {b8[:6]}, whose {accounts:,} cards have "
                           f"the account numbers 000000000 to {accounts - 1:09d} after it: the switch would "
                           f"route those starting {b8} to issuers[{m}] (longest prefix first); an 8-digit BIN "
                           f"carved out of another issuer's 6-digit BIN must end in {low:02d} to 99 here"
                           if low <= 99 else
                           f"BIN {b8} lies inside issuers[{n}]'s BIN {b8[:6]}, whose {accounts:,} cards use "
                           f"every 8-digit prefix under it: the switch would route some of them to "
                           f"issuers[{m}] (longest prefix first); use a BIN outside {b8[:6]}")


def _money_checks(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """The run's money must stay within what int64 fen hold exactly (MONEY_BOUND_MINOR)."""
    purchases, bound = money_bound_minor(s)
    if bound < MONEY_BOUND_MINOR:
        return
    lo, hi = 0, s.traffic.amount_max_minor  # the largest amount_max_minor that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if money_bound_minor(s, mid)[1] < MONEY_BOUND_MINOR else (lo, mid - 1)
    fix = (f"lower it to at most {lo:,}, or run fewer purchases" if lo >= s.traffic.amount_min_minor
           else "run fewer purchases (traffic.transactions_per_day, run.days)")
    yield (("traffic", "amount_max_minor"),
           f"{s.traffic.amount_max_minor:,} fen a purchase, over up to {purchases:,} purchases, could add "
           f"up to {bound:,} fen of money (fees, refunds and disputes included), more than the "
           f"{MONEY_BOUND_MINOR:,} fen within which a run keeps its sums of money (64-bit integers); {fix}")


def _settlement_checks(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """Settlement accounts name known participants once; rule-specific fields match the rule."""
    st = s.settlement
    known = s.participant_ids
    first: dict[str, int] = {}
    for n, acc in enumerate(st.accounts):
        where = ("settlement", "accounts", n)
        if acc.participant not in known:
            yield where + ("participant",), f"unknown participant {acc.participant!r} (known: {', '.join(known)})"
        elif acc.participant in first:
            yield where + ("participant",), f"{acc.participant!r} already has an account at settlement.accounts[{first[acc.participant]}]"
        first.setdefault(acc.participant, n)
        if acc.guarantee_fund_minor and st.default_rule != "guarantee_fund":
            yield where + ("guarantee_fund_minor",), f"only used with default_rule: guarantee_fund (the rule is {st.default_rule})"
        if acc.loss_share_weight is not None and st.loss_sharing_key != "fixed":
            yield where + ("loss_share_weight",), f"only used with loss_sharing_key: fixed (the key is {st.loss_sharing_key})"
    if (st.loss_sharing_key == "fixed" and st.default_rule != "unwind"
            and not any((a.loss_share_weight or 0) > 0 for a in st.accounts)):
        yield ("settlement", "loss_sharing_key"), "fixed needs a loss_share_weight above 0 on at least one account"


def _calendar_checks(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """The calendar has a business day for the run's last window before 9999-12-31 (the last date)."""
    from clearing_sim.model.calendar import BusinessCalendar  # imports this module: import late
    from clearing_sim.model.clearing_draws import extra_days

    def overflows(sc: Scenario) -> bool:
        cal = BusinessCalendar.from_scenario(sc)
        try:
            # The day of the run's last window and the day after it, as network.horizon_days
            # finds them (before late files push them out).
            last = cal.add_business_days(sc.run.days + 1 + extra_days(sc), sc.settlement.lag_days)
            cal.date_of(last + 1)
        except OverflowError:
            return True
        return False

    try:
        if not overflows(s):
            return
        st = s.settlement
        without = attrs.evolve(s, settlement=attrs.evolve(st, calendar=attrs.evolve(st.calendar, holidays=())))
        if dt.date.fromisoformat(s.run.start_date).year > 2068 and overflows(without):
            return  # a start too close to 9999, refused at run.start_date: not the holidays' doing
    except ValueError:
        return  # a bad date, reported by Run or Calendar themselves
    yield (("settlement", "calendar", "holidays"),
           f"with these holidays and weekend days no business day is left for the run's last settlement "
           f"window (T+{s.settlement.lag_days}) before 9999-12-31")


def _authorisation_checks(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """Host availability windows must fall on the run's traffic days."""
    for n, iss in enumerate(s.issuers):
        for name, windows in (("outages", iss.host.outages), ("degraded", iss.host.degraded)):
            for j, w in enumerate(windows):
                if w.day > s.run.days:
                    yield (("issuers", n, "host", name, j, "day"),
                           f"day {w.day} is after the run's last day ({s.run.days})")
    yield from _switch_restart_checks(s)
    yield from _saf_resend_checks(s)


# Store-and-forward resends an unacknowledged message every switch timeout while its issuer
# is down unannounced (and when the acknowledgement reaches a restarting switch): each resend
# is a logged attempt (about 130 bytes in fast mode, 160 in detailed). A run that could make
# more is refused before it starts (10^7: about 1.5 GB and, in detailed mode, 40 s of resends).
MAX_SAF_RESENDS = 10_000_000


def saf_resends_bound(s: Scenario) -> int:
    """At most how many store-and-forward resends the run can make. Per issuer one message at
    a time is resent, every switch timeout: through each unannounced outage (a message that
    reaches the host while it is down is lost), once for an announced one (the switch holds
    messages until its end; only one already in flight is lost), and, for each switch restart,
    while acknowledgements of messages sent before it reach the down switch (loosely: the
    restart's length; nothing is sent while it is down)."""
    timeout_s = s.network.switch_timeout_ms / 1000.0
    restarts = [r.interval_s for r in s.network.switch_restarts]

    def resends(span_s: float) -> float:
        n = span_s / timeout_s  # infinite for a timeout of a few 1e-320 ms
        return math.ceil(n) + 1 if math.isfinite(n) else math.inf

    bound: float = 0
    for iss in s.issuers:
        for o in iss.host.outages:
            start, end = o.interval_s
            bound += 1 if o.announced else resends(end - start)
        for start, end in restarts:
            bound += resends(end - start)
    return bound  # type: ignore[return-value] - an int, or infinity


def _saf_resend_checks(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """A short switch timeout through long outages must not make the resends unbounded."""
    bound = saf_resends_bound(s)
    if bound > MAX_SAF_RESENDS:
        yield (("network", "switch_timeout_ms"),
               f"{s.network.switch_timeout_ms:g} ms is too short for this run's issuer outages and switch restarts: "
               f"store-and-forward resends an unacknowledged advice every switch timeout while its issuer is down "
               f"unannounced (or the switch restarts), up to "
               f"{'more than 10^300' if math.isinf(bound) else f'{bound:,}'} times here, more than the "
               f"{MAX_SAF_RESENDS:,} a run may make (each is kept in memory); lengthen the timeout, shorten the "
               f"outages or announce them")


def _switch_restart_checks(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """Switch restarts fall on the run's traffic days, and one is back up before the next starts."""
    restarts = s.network.switch_restarts
    for j, r in enumerate(restarts):
        if r.day > s.run.days:
            yield ("network", "switch_restarts", j, "day"), f"day {r.day} is after the run's last day ({s.run.days})"
    spans = sorted((r.interval_s, j) for j, r in enumerate(restarts))
    for ((s0, e0), p), ((s1, _), c) in zip(spans, spans[1:]):
        if s1 <= e0:
            first, second = sorted((p, c))
            yield (("network", "switch_restarts", second, "at"),
                   f"restarts while (or the instant) switch_restarts[{first}] is still down")
    if not spans:
        return
    from clearing_sim.model.switch_restarts import MAX_REVERSAL_REPEATS  # imports this module: import late

    # An acquirer repeats a reversal lost at the down switch every auth_timeout_ms until
    # one gets through; restarts closer together than that chain into one span.
    for n, acq in enumerate(s.acquirers):
        repeat_s = acq.auth_timeout_ms / 1000.0
        group_start, group_end, group_first = spans[0][0][0], spans[0][0][1], spans[0][1]
        for (start, end), j in spans[1:] + [((math.inf, math.inf), -1)]:
            if start - group_end < repeat_s:
                group_end = max(group_end, end)
                continue
            if (group_end - group_start) / repeat_s + 1 >= MAX_REVERSAL_REPEATS:
                yield (("acquirers", n, "auth_timeout_ms"),
                       f"{acq.auth_timeout_ms:g} ms is too short for the switch being down "
                       f"{group_end - group_start:g} s (switch_restarts[{group_first}]): a lost reversal would be "
                       f"repeated more than {MAX_REVERSAL_REPEATS:,} times")
                break
            group_start, group_end, group_first = start, end, j


def _clearing_checks(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """Card products named by the fee table exist; faults name a real acquirer file."""
    products = {p for iss in s.issuers for p in iss.products}
    for name in s.fees.interchange_by_product:
        if name not in products:
            known = ", ".join(sorted(products))
            yield ("fees", "interchange_by_product", name), f"unknown card product {name!r} (issuers' products: {known})"
    acquirers = {a.institution: a for a in s.acquirers}
    for n, fault in enumerate(s.clearing.faults):
        acq = acquirers.get(fault.acquirer)
        if acq is None:
            yield ("clearing", "faults", n, "acquirer"), (
                f"{fault.acquirer!r} is not an acquirer (acquirers: {', '.join(acquirers)})")
            continue
        if fault.submission > len(acq.submission_times):
            yield ("clearing", "faults", n, "submission"), (
                f"{fault.acquirer} sends {len(acq.submission_times)} file(s) a day, there is no submission "
                f"{fault.submission}")
        if fault.day > s.run.days:
            yield ("clearing", "faults", n, "day"), f"the scenario runs {s.run.days} day(s), there is no day {fault.day}"
        if fault.kind == "amount_changed" and 2 * s.traffic.amount_max_minor + 1 > MAX_AMOUNT_MINOR:
            yield ("clearing", "faults", n, "kind"), (
                f"amount_changed presents twice the authorised amount plus 1 fen, which must fit a record's "
                f"DE 4 (n12, at most {MAX_AMOUNT_MINOR:,} fen): traffic.amount_max_minor must be at most "
                f"{(MAX_AMOUNT_MINOR - 1) // 2:,} with this fault (it is {s.traffic.amount_max_minor:,})")
    try:
        first = dt.date.fromisoformat(s.run.start_date)
    except ValueError:
        return  # reported by Run itself
    c, d = s.clearing, s.disputes
    span = (s.run.days + s.settlement.lag_days + 4 + c.refund_limit_days + d.chargeback_limit_days
            + d.representment_limit_days)
    last = first + dt.timedelta(days=span) if first <= dt.date(9000, 1, 1) else dt.date.max
    if first < dt.date(2000, 1, 1) or last > dt.date(2068, 12, 31):
        yield ("run", "start_date"), ("clearing files date records as YYMMDD, 2000 to 2068: the run, with its "
                                      f"settlement and dispute days ({span} days from {first}), must fall within them")


def _bank_delay_checks(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """A bank delay names one of the windows, on a business day on which windows of this run can settle, once."""
    from clearing_sim.model.calendar import BusinessCalendar  # imports this module: import late

    st = s.settlement
    if not st.bank_delays:
        return
    cal = BusinessCalendar.from_scenario(s)
    # Days (1 = run.days' first) on which windows of this run can hold obligations:
    # from T+lag of day 1 to the window of the last cycle (as network.horizon_days counts).
    try:
        first_day = cal.add_business_days(0, st.lag_days) + 1
        last_cycle_day = s.run.days + 1
        last_day = (cal.next_business_day(last_cycle_day) if st.lag_days == 0
                    else cal.add_business_days(last_cycle_day, st.lag_days)) + 1
        cal.date_of(max(d.day for d in st.bank_delays) - 1)
    except OverflowError:
        yield ("run", "start_date"), f"{s.run.start_date} is too late: the run's settlement days pass 9999-12-31"
        return
    seen: dict[tuple[int, str], int] = {}
    for n, d in enumerate(st.bank_delays):
        where = ("settlement", "bank_delays", n)
        if d.window not in st.windows:
            yield where + ("window",), f"{d.window!r} is not one of settlement.windows ({', '.join(st.windows)})"
        date = cal.date_of(d.day - 1)
        if not cal.is_business_day(d.day - 1):
            yield where + ("day",), f"day {d.day} ({date.isoformat()}) is not a business day: no window settles then"
        elif not first_day <= d.day <= last_day:
            yield where + ("day",), (f"day {d.day} ({date.isoformat()}) is outside the days on which this run's "
                                     f"windows settle (days {first_day} to {last_day})")
        key = (d.day, d.window)
        if key in seen:
            yield where, f"day {d.day} window {d.window} already has a delay at settlement.bank_delays[{seen[key]}]"
        seen.setdefault(key, n)


# --- resolved form ---------------------------------------------------------------------


def unstructure(scenario: Scenario) -> dict[str, Any]:
    """The scenario as plain data with every default filled in (for config.yaml)."""
    data = _CONVERTER.unstructure(scenario)
    return _drop_none(data)


def _drop_none(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _drop_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [_drop_none(x) for x in v]
    return v


# Plain scalars that a YAML 1.1 reader (PyYAML, the usual reader in a notebook) takes for
# something else than the text: sexagesimal numbers (`23:30` is 1410), octal-looking and
# underscored digits, and the 1.1 booleans. YAML 1.2 (this loader) reads them as text.
_YAML11_NOT_TEXT = re.compile(
    r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|[-+]?[0-9][0-9_]*|[-+]?\.[0-9_]+"
    r"|y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF")


class _QuotingRepresenter(SafeRepresenter):
    """ruamel's safe representer, but a string is quoted where a YAML 1.1 reader would not
    read it back as that string (a subclass: registering on SafeRepresenter changed every
    safe dump in the process)."""

    def represent_str(self, data: str) -> Any:
        style = "'" if _YAML11_NOT_TEXT.fullmatch(data) else None
        return self.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_QuotingRepresenter.add_representer(str, _QuotingRepresenter.represent_str)


def dump_yaml(data: dict[str, Any]) -> str:
    """Deterministic block-style YAML for resolved scenarios, read back the same by YAML 1.2
    and YAML 1.1 readers (times such as `'23:30'` are quoted)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # keep schema order
    yaml.Representer = _QuotingRepresenter
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


def with_seed(scenario: Scenario, seed: int | None) -> Scenario:
    """The scenario with its root seed replaced (when one is given)."""
    if seed is None:
        return scenario
    # From Python (a notebook) a seed can be any object: a str, a float or a bool would reach
    # SeedSequence as a TypeError, or be recorded as `"seed": true`.
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ScenarioError("--seed", [Problem("run.seed", f"must be an integer, got {seed!r}")])
    seed = int(seed)
    if seed < 0 or seed > 2**63 - 1:
        raise ScenarioError("--seed", [Problem("run.seed", f"must be between 0 and 2**63-1, got {seed}")])
    return attrs.evolve(scenario, run=attrs.evolve(scenario.run, seed=seed))
