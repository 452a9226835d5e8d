"""The authorisation figures of `summary.json`, accumulated from purchases chunk by chunk.

Owns: `AuthorisationFigures`, which builds `summary["authorisations"]` from final
purchases fed in consecutive chunks (transaction-id order) and store-and-forward
attempts fed in any order, and gives the same dict, to the bit, whatever the cut:
`results.authorisation_summary` is one `add` of the whole day, so the in-memory and
the streamed run share every expression. Also owns `percentiles` (results re-exports it).

How the figures stay identical:
- counts and money (integer fen) are int64 running totals (below);
- a percentile or a maximum does not depend on the order of its values, a float mean
  does (numpy sums pairwise): every float a figure needs is kept per group in
  transaction-id order, as raw float64 appended to one file per group in `spill_dir`
  (or in lists when `spill_dir` is None), and read back one group at a time by
  `result()`, which applies the same numpy expressions as the whole-day code did.

Groups of the spilled floats: the latency of the switched purchases per routed issuer
(plus one group for those routed to no issuer: unknown BINs), the latency of the
in-bank purchases, and the host wait (ms) per routed issuer. The switched latencies
overall are those per-issuer groups read back one after the other: their order
differs from transaction-id order, which changes no percentile and no maximum (the
overall block has no mean), so there is no second copy of them on disk.

Counts and money: each purchase falls in one cell (block group, final state, response
code, stand-in / reversed / lost / sent-to-host flags); the totals are how many
purchases and how many fen each cell holds (int64, exact in any order), and every count
and amount of a block is a sum over its cells.

Memory: the cells are about 1 MB of int64 for 30 issuers. `add` works through its rows
in slices of at most 2**20, so its temporaries stay bounded even for one whole-day
`add`. `result()` holds one group at a time, the largest being every switched latency
(8 bytes a purchase: 800 MB at 10**8 purchases), which it sorts in place.

Must never run the model, keep a chunk after `add` returns (only the selected floats,
in `spill_dir` or in memory when it is None), or write outside `spill_dir`. The caller
owns `spill_dir` and removes it when done.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from clearing_sim.errors import InvariantError
from clearing_sim.model import fast_kernels
from clearing_sim.model.authorisation import (
    APPROVED,
    FINAL_STATES,
    HOST_NOT_SENT,
    HOST_OUTCOMES,
    RESPONSE_CODES,
    ROUTE_IN_BANK,
)
from clearing_sim.model.switch import ADVICE
from clearing_sim.model.switch_restarts import SwitchRestarts
from clearing_sim.model.traffic import group_order
from clearing_sim.scenario import Scenario

_DECIMALS = 3  # the summary's rounding: results.py rounds its other floats the same way
_SLICE_ROWS = 1 << 20  # rows `add` handles at once; any cut gives the same figures

# The cells' axes after the block group (see the module docstring). The last state and the
# last code index stand for "none of FINAL_STATES / RESPONSE_CODES".
_N_STATES = len(FINAL_STATES) + 1
_N_CODES = len(RESPONSE_CODES) + 1
_IS_APPROVED = np.array(RESPONSE_CODES + (-1,)) == APPROVED  # per code index
_STAND_IN, _REVERSED, _LOST, _HOST_SENT = 1, 2, 4, 8  # flag bits
_N_FLAGS = 16
_FLAG_SET = {bit: (np.arange(_N_FLAGS) & bit) != 0 for bit in (_STAND_IN, _REVERSED, _LOST, _HOST_SENT)}
# Store-and-forward attempts by (kind, first or repeated).
_SAF_COUNTERS = ("advices", "advice_repeats", "reversal_advices", "reversal_advice_repeats")


def _r(x: float) -> float:
    """A figure as summary.json gives it; -0.0 as 0.0 (+ 0.0 does that), because which of two
    equal zeros an order statistic or a max picks depends on the order of the values."""
    return round(float(x), _DECIMALS) + 0.0


def _code(c: int) -> str:
    return f"{c:02d}"


def percentiles(values: np.ndarray, qs: tuple[int, ...], overwrite_input: bool = False) -> dict[str, float | None]:
    """`{"p50": ..., "max": ...}` of the values (None when there are none).

    `overwrite_input=True` lets numpy partition `values` in place instead of a copy (the
    figures are the same; the order of `values` is not kept).
    """
    out: dict[str, float | None] = {}
    if len(values) == 0:
        out.update({f"p{q}": None for q in qs})
        out["max"] = None
        return out
    pv = np.percentile(values, qs, overwrite_input=overwrite_input)
    out.update({f"p{q}": _r(v) for q, v in zip(qs, pv)})
    out["max"] = _r(values.max())
    return out


def latency_ms(txn: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> np.ndarray:
    """Per purchase: ms from its arrival at the acquirer to the answer it got (NaN if none)."""
    return (out["t_response_s"] - txn["t_arrival_s"]) * 1000.0


def host_wait_ms(out: dict[str, np.ndarray]) -> np.ndarray:
    """Per purchase: ms it waited in its issuer host's queue (NaN if it never started service)."""
    return (out["t_host_start_s"] - out["t_host_in_s"]) * 1000.0


def reversal_repeats(scenario: Scenario, restarts: SwitchRestarts, txn: dict[str, np.ndarray],
                     out: dict[str, np.ndarray]) -> np.ndarray:
    """Per purchase: how many times its acquirer repeated the 0400 (a down switch lost it).

    Row by row (each reversal's repeats depend on its own times only), so any cut of the
    purchases gives the same values.
    """
    repeats = np.zeros(len(out["reversed"]), dtype=np.int64)
    rev = np.flatnonzero(out["reversed"])
    if restarts and len(rev):
        timeout_s = np.array([a.auth_timeout_ms / 1000.0 for a in scenario.acquirers])[
            txn["acquirer"][rev].astype(np.int64)]
        _, repeats[rev] = restarts.reversal_arrival(txn["t_arrival_s"][rev] + timeout_s,
                                                    txn["hop_rev_acq_switch_s"][rev], timeout_s)
    return repeats


# Response code -> its index in RESPONSE_CODES (codes outside them: the last index).
_CODE_INDEX = np.full(max(RESPONSE_CODES) + 1, len(RESPONSE_CODES), dtype=np.int64)
_CODE_INDEX[list(RESPONSE_CODES)] = np.arange(len(RESPONSE_CODES))


def _by_group(group: np.ndarray, n_groups: int):
    """(g, row indices of group g in their order) for each g in 0..n_groups-1 that has rows;
    rows keyed n_groups are left out (a key outside 0..n_groups raises ValueError)."""
    order, bounds = group_order(group, 0, n_groups + 1)
    for g in range(n_groups):
        if bounds[g] < bounds[g + 1]:
            yield g, order[bounds[g] : bounds[g + 1]]


class _FloatGroups:
    """Float64 values per group, each group in the order appended: raw in one file per
    group under `directory` (`<prefix>_<group>.f64`), or in lists when `directory` is None."""

    def __init__(self, directory: Path | None, prefix: str, groups: int):
        self.directory = directory
        self.prefix = prefix
        self.sizes = [0] * groups
        self.parts: list[list[np.ndarray]] = [[] for _ in range(groups)]

    def _path(self, group: int) -> Path:
        assert self.directory is not None
        return self.directory / f"{self.prefix}_{group}.f64"

    def append(self, group: int, values: np.ndarray) -> None:
        if len(values) == 0:
            return
        values = np.ascontiguousarray(values, dtype=np.float64)
        if self.directory is None:
            self.parts[group].append(values.copy())
        else:
            # The first write truncates: a file left by an earlier run is never read as ours.
            with open(self._path(group), "ab" if self.sizes[group] else "wb") as f:
                f.write(values.data)  # a full disk: OSError ENOSPC (tofile's has no errno)
        self.sizes[group] += len(values)

    def read(self, groups: list[int]) -> np.ndarray:
        """The values of `groups`, one group after the other, in one new array."""
        out = np.empty(sum(self.sizes[g] for g in groups), dtype=np.float64)
        pos = 0
        for g in groups:
            n = self.sizes[g]
            if n == 0:
                continue
            if self.directory is None:
                for part in self.parts[g]:
                    out[pos : pos + len(part)] = part
                    pos += len(part)
                continue
            _read_exactly(self._path(g), out[pos : pos + n])
            pos += n
        assert pos == len(out)
        return out


def _read_exactly(path: Path, into: np.ndarray) -> None:
    """Fill `into` with the raw float64 of `path`, which must hold exactly that many bytes."""
    size = os.path.getsize(path)
    if size != into.nbytes:
        raise InvariantError(f"spill file {path} holds {size} bytes, {into.nbytes} were written")
    view = memoryview(into).cast("B")
    with open(path, "rb", buffering=0) as f:
        got = 0
        while got < len(view):  # a single read of a regular file may stop short (2 GiB on Linux)
            n = f.readinto(view[got:])
            if not n:
                raise InvariantError(f"spill file {path} ended after {got} of {len(view)} bytes")
            got += n


class AuthorisationFigures:
    """`summary["authorisations"]` from final purchases fed in chunks (see the module docstring).

    Feed every purchase of the run once, through `add`, in transaction-id order across
    calls, and every store-and-forward attempt once, through `add_saf`, in any order;
    then `result()` gives the dict `results.authorisation_summary` gives for the run.
    With `spill_dir=None` the spilled floats stay in memory (the whole-day path).
    """

    def __init__(self, scenario: Scenario, spill_dir: Path | None):
        self.scenario = scenario
        self.restarts = SwitchRestarts(scenario)
        n = len(scenario.issuers)
        self.n_issuers = n
        # Block groups: 0..n-1 switched purchases routed to that issuer, n switched ones
        # routed to none (unknown BINs), n + 1 the in-bank ones.
        self.unrouted = n
        self.in_bank = n + 1
        groups = n + 2
        shape = (groups, _N_STATES, _N_CODES, _N_FLAGS)
        self.cell_count = np.zeros(shape, dtype=np.int64)
        self.cell_minor = np.zeros(shape, dtype=np.int64)
        self.reversal_repeats = np.zeros(groups, dtype=np.int64)
        # Per routed issuer, whatever the route.
        self.host_outcomes = np.zeros((n, len(HOST_OUTCOMES)), dtype=np.int64)
        # Per routed issuer of the purchase (n: none).
        self.saf = {name: np.zeros(n + 1, dtype=np.int64) for name in _SAF_COUNTERS}
        self.saf_last_ack = np.full(n + 1, np.nan)  # NaN: nothing acknowledged yet
        if spill_dir is not None:
            spill_dir = Path(spill_dir)
            spill_dir.mkdir(parents=True, exist_ok=True)
        self.latency = _FloatGroups(spill_dir, "latency_ms", groups)
        self.host_wait = _FloatGroups(spill_dir, "host_wait_ms", n)
        self.last_txn_id: int | None = None

    # --- feeding ------------------------------------------------------------------------

    def add(self, txn: dict[str, np.ndarray], out: dict[str, np.ndarray],
            latency: np.ndarray | None = None) -> None:
        """One chunk of final purchases, in transaction-id order across calls (chunk k+1's
        ids all follow chunk k's): `txn` holds the traffic columns (as `model.traffic`
        draws them: t_arrival_s, amount_minor, acquirer, hop_rev_acq_switch_s, ...) and
        `out` the outcome columns (`model.authorisation.OUTCOME_COLUMNS`) of the same rows.

        `latency` (ms per row) may be given when the caller has it already; it must equal
        `latency_ms(txn, out)`. Raises InvariantError if the rows do not follow the ids
        already added (checked when `txn` has `txn_id`) or the columns differ in length.
        """
        n = len(out["route"])
        lengths = {len(v) for v in (*txn.values(), *out.values())}
        if latency is not None:
            lengths.add(len(latency))
        if lengths != {n}:
            raise InvariantError(f"a chunk's columns differ in length: {sorted(lengths)}")
        if "txn_id" in txn and n:
            ids = txn["txn_id"]
            if (np.diff(ids) <= 0).any() or (self.last_txn_id is not None and ids[0] <= self.last_txn_id):
                raise InvariantError("purchases must be added in transaction-id order, each once")
            self.last_txn_id = int(ids[-1])
        for lo in range(0, n, _SLICE_ROWS):
            hi = min(lo + _SLICE_ROWS, n)
            t = {k: v[lo:hi] for k, v in txn.items()}
            o = {k: v[lo:hi] for k, v in out.items()}
            self._add_slice(t, o, latency_ms(t, o) if latency is None else latency[lo:hi])

    def _add_slice(self, txn: dict[str, np.ndarray], out: dict[str, np.ndarray], latency: np.ndarray) -> None:
        n = self.n_issuers
        groups = n + 2
        routed = out["routed_issuer"]
        has_issuer = (routed >= 0) & (routed < n)
        # int16 keys: numpy's stable sort of them is a radix sort.
        group = np.where(out["route"] == ROUTE_IN_BANK, self.in_bank,
                         np.where(has_issuer, routed, self.unrouted)).astype(np.int16)

        # Each purchase's cell (group, final state, code index, flag bits): counted and its
        # amount added, exact int64 sums, in one compiled pass.
        fast_kernels.figure_cells(group, out["final_state"], out["response_code"], _CODE_INDEX, out["stand_in"],
                                  out["reversed"], out["lost_in_switch"], out["host_outcome"], HOST_NOT_SENT,
                                  txn["amount_minor"], _N_STATES, _N_CODES, _N_FLAGS,
                                  self.cell_count.reshape(-1), self.cell_minor.reshape(-1))
        if self.restarts:  # without restarts no 0400 is ever repeated
            rev = out["reversed"]
            repeats = reversal_repeats(self.scenario, self.restarts, txn, out)
            np.add.at(self.reversal_repeats, group[rev], repeats[rev])
        host = out["host_outcome"]
        known = has_issuer & (host >= 0) & (host < len(HOST_OUTCOMES))
        key = routed[known].astype(np.int64) * len(HOST_OUTCOMES) + host[known]
        self.host_outcomes.reshape(-1)[:] += np.bincount(key, minlength=self.host_outcomes.size)

        for g, rows in _by_group(group, groups):
            self.latency.append(g, latency[rows])
        wait = host_wait_ms(out)
        served = has_issuer & ~np.isnan(wait)
        for k, rows in _by_group(np.where(served, routed, n).astype(np.int16), n):
            self.host_wait.append(k, wait[rows])

    def add_saf(self, issuer: np.ndarray, kind: np.ndarray, attempt: np.ndarray, t_acked_s: np.ndarray) -> None:
        """Store-and-forward attempts (any order): the routed issuer index of each attempt's
        purchase, its kind (switch.ADVICE or a reversal advice), attempt number (0: the
        first send) and when the switch had its acknowledgement (NaN: lost, sent again).
        Raises InvariantError if the four differ in length."""
        if not len(issuer) == len(kind) == len(attempt) == len(t_acked_s):
            raise InvariantError("store-and-forward columns differ in length")
        n = self.n_issuers
        issuer = np.asarray(issuer).astype(np.int64)
        group = np.where((issuer >= 0) & (issuer < n), issuer, n)
        first = np.asarray(attempt) == 0
        is_advice = np.asarray(kind) == ADVICE
        for name, sel in (("advices", first & is_advice), ("advice_repeats", ~first & is_advice),
                          ("reversal_advices", first & ~is_advice),
                          ("reversal_advice_repeats", ~first & ~is_advice)):
            self.saf[name] += np.bincount(group[sel], minlength=n + 1)
        np.fmax.at(self.saf_last_ack, group, np.asarray(t_acked_s, dtype=np.float64))

    # --- the figures ----------------------------------------------------------------------

    def _block(self, groups: list[int], saf_groups: list[int], latency: np.ndarray) -> dict:
        """Counts, values and latency of the purchases of block `groups` (and the SAF attempts
        of `saf_groups`); `latency` is theirs, in any order, and is sorted in place.

        `approved` counts every `00` answer, stand-in approvals and answers later reversed
        included; `approved_minor - reversed_approved_minor` is what acquirers could present.
        `advices` counts 0120s (one per stand-in approval), `reversals` 0400s.
        """
        count = self.cell_count[groups].sum(axis=0)  # [final state, response code, flags]
        minor = self.cell_minor[groups].sum(axis=0)
        every = count.sum(axis=(0, 1))  # per flags
        approved = count[:, _IS_APPROVED].sum(axis=(0, 1))
        approved_minor = minor[:, _IS_APPROVED].sum(axis=(0, 1))
        stand_in, rev, lost = _FLAG_SET[_STAND_IN], _FLAG_SET[_REVERSED], _FLAG_SET[_LOST]
        timed_out = stand_in & _FLAG_SET[_HOST_SENT]  # stood in after the host was asked
        codes = count.sum(axis=(0, 2))
        states = count.sum(axis=(1, 2))
        saf = {name: int(v[saf_groups].sum()) for name, v in self.saf.items()}
        last_ack = np.fmax.reduce(self.saf_last_ack[saf_groups], initial=np.nan)  # NaN: none, or no group
        return {
            "count": int(every.sum()),
            "approved": int(approved.sum()),
            "declined": int(every.sum() - approved.sum()),
            "stand_in": int(approved[stand_in].sum()),
            "advices": saf["advices"],
            "reversals": int(every[rev].sum()),
            "approved_minor": int(approved_minor.sum()),
            "stand_in_minor": int(approved_minor[stand_in].sum()),
            "stand_in_declined": int(every[stand_in].sum() - approved[stand_in].sum()),
            "reversed_approved": int(approved[rev].sum()),
            "reversed_approved_minor": int(approved_minor[rev].sum()),
            "switch_timeouts": int(every[timed_out].sum()),
            "advice_repeats": saf["advice_repeats"],
            "reversal_advices": saf["reversal_advices"],
            "reversal_advice_repeats": saf["reversal_advice_repeats"],
            # When the last of them was acknowledged: store-and-forward drained (None: none sent).
            "saf_drained_s": None if np.isnan(last_ack) else _r(float(last_ack)),
            # Lost by a switch restart (clearing_sim.model.switch_restarts): no answer, reversed.
            "lost_in_switch": int(every[lost].sum()),
            "lost_in_switch_minor": int(minor.sum(axis=(0, 1))[lost].sum()),
            "by_response_code": {_code(rc): int(codes[j]) for j, rc in enumerate(RESPONSE_CODES) if codes[j]},
            "by_final_state": {name: int(states[s]) for s, name in enumerate(FINAL_STATES) if states[s]},
            "latency_ms": percentiles(latency, (50, 95, 99), overwrite_input=True),
        }

    def _host_wait(self, issuer: int) -> dict:
        """Mean and percentiles of the waits in `issuer`'s host queue (ms), in transaction-id order."""
        w = self.host_wait.read([issuer])
        mean = _r(w.mean()) if len(w) else None  # before the in-place sort: a float sum depends on order
        return {"host_wait_ms_mean": mean, "host_wait_ms": percentiles(w, (50, 99), overwrite_input=True)}

    def result(self, queue_depth_max: list[int]) -> dict:
        """`summary.json`'s `authorisations`: the switched ones overall and per issuer, and
        the in-bank ones; == `results.authorisation_summary(state, latency)` for the same run.

        `queue_depth_max` is the deepest queue of each issuer's host (`state.queue_depth_max`).
        Reads the spilled floats back one group at a time; may be called more than once.
        """
        n = self.n_issuers
        switched = list(range(n)) + [self.unrouted]
        auth = self._block(switched, list(range(n + 1)), self.latency.read(switched))
        per_issuer = {}
        for k, iss in enumerate(self.scenario.issuers):
            block = self._block([k], [k], self.latency.read([k]))
            block.update(self._host_wait(k))
            block["queue_depth_max"] = int(queue_depth_max[k])
            block["host"] = {name: int(self.host_outcomes[k, h]) for h, name in enumerate(HOST_OUTCOMES)}
            block["reversal_repeats"] = int(self.reversal_repeats[k])
            per_issuer[iss.institution] = block
        auth["per_issuer"] = per_issuer
        # 0401s: 0400s sent again after a down switch, in-bank purchases included.
        auth["reversal_repeats"] = int(self.reversal_repeats.sum())
        bank = self._block([self.in_bank], [], self.latency.read([self.in_bank]))
        auth["in_bank"] = {key: bank[key] for key in ("count", "approved", "declined", "approved_minor",
                                                       "by_response_code", "latency_ms")}
        return auth


__all__ = ["AuthorisationFigures", "percentiles", "latency_ms", "host_wait_ms", "reversal_repeats"]
