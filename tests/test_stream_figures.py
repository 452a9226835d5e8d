"""Tests for clearing_sim.stream_figures: the authorisation figures accumulated chunk by chunk.

The oracle is `reference_authorisation_summary` below: the whole-day code results.py
used before it became one `add` of `AuthorisationFigures`, kept verbatim so that a
drift in either is caught.
"""

from __future__ import annotations

import functools
import json
import tempfile
import tracemalloc
from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim import results, stream_figures
from clearing_sim.errors import InvariantError
from clearing_sim.model.authorisation import (
    APPROVED,
    FINAL_STATES,
    HOST_NOT_SENT,
    HOST_OUTCOMES,
    RESPONSE_CODES,
    ROUTE_IN_BANK,
)
from clearing_sim.model.network import SimulationState, simulate
from clearing_sim.model.switch import ADVICE
from clearing_sim.model.switch_restarts import SwitchRestarts
from clearing_sim.scenario import load_scenario
from clearing_sim.stream_figures import AuthorisationFigures

ROOT = Path(__file__).resolve().parent.parent

# (file, mode): outages, stand-in and store-and-forward (issuer_outage), long queues
# (degraded_issuer), switch restarts with lost purchases and 0401s (switch_restart),
# a plain day (intraday_windows), and in-bank purchases with all of the above
# (the fast-mode stress files, one of them in detailed mode for its list-based log).
RUNS = [
    ("scenarios/issuer_outage.yaml", "fast"),
    ("scenarios/degraded_issuer.yaml", "fast"),
    ("scenarios/switch_restart.yaml", "fast"),
    ("scenarios/intraday_windows.yaml", "fast"),
    ("tests/data/fast_stress.yaml", "fast"),
    ("tests/data/fast_stress_restart.yaml", "detailed"),
]


# --- the oracle: results.py's whole-day code before the accumulator ------------------------

def _ref_r(x: float) -> float:
    return round(float(x), 3)


def _ref_percentiles(values: np.ndarray, qs: tuple[int, ...]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    if len(values) == 0:
        out.update({f"p{q}": None for q in qs})
        out["max"] = None
        return out
    pv = np.percentile(values, qs)
    out.update({f"p{q}": _ref_r(v) for q, v in zip(qs, pv)})
    out["max"] = _ref_r(values.max())
    return out


def _ref_block(code, latency, amount, o, saf) -> dict:
    approved = code == APPROVED
    stand_in = o["stand_in"]
    rev = o["reversed"]
    stand_in_approved = stand_in & approved
    host = o["host_outcome"]
    first = saf["attempt"] == 0
    is_advice = saf["kind"] == ADVICE
    return {
        "count": int(len(code)),
        "approved": int(approved.sum()),
        "declined": int((~approved).sum()),
        "stand_in": int(stand_in_approved.sum()),
        "advices": int((first & is_advice).sum()),
        "reversals": int(rev.sum()),
        "approved_minor": int(amount[approved].sum()),
        "stand_in_minor": int(amount[stand_in_approved].sum()),
        "stand_in_declined": int((stand_in & ~approved).sum()),
        "reversed_approved": int((rev & approved).sum()),
        "reversed_approved_minor": int(amount[rev & approved].sum()),
        "switch_timeouts": int((stand_in & (host != HOST_NOT_SENT)).sum()),
        "advice_repeats": int((~first & is_advice).sum()),
        "reversal_advices": int((first & ~is_advice).sum()),
        "reversal_advice_repeats": int((~first & ~is_advice).sum()),
        "saf_drained_s": _ref_r(np.nanmax(saf["t_acked_s"])) if (~np.isnan(saf["t_acked_s"])).any() else None,
        "lost_in_switch": int(o["lost_in_switch"].sum()),
        "lost_in_switch_minor": int(amount[o["lost_in_switch"]].sum()),
        "by_response_code": {f"{c:02d}": int((code == c).sum()) for c in RESPONSE_CODES if (code == c).any()},
        "by_final_state": {name: int((o["final_state"] == s).sum())
                           for s, name in enumerate(FINAL_STATES) if (o["final_state"] == s).any()},
        "latency_ms": _ref_percentiles(latency, (50, 95, 99)),
    }


def _ref_reversal_repeats(state: SimulationState) -> np.ndarray:
    o = state.outcomes
    out = np.zeros(len(o["reversed"]), dtype=np.int64)
    restarts = SwitchRestarts(state.scenario)
    rev = np.flatnonzero(o["reversed"])
    if restarts and len(rev):
        txn = state.txn
        timeout_s = np.array([a.auth_timeout_ms / 1000.0 for a in state.scenario.acquirers])[
            txn["acquirer"][rev].astype(np.int64)]
        _, out[rev] = restarts.reversal_arrival(txn["t_arrival_s"][rev] + timeout_s,
                                                txn["hop_rev_acq_switch_s"][rev], timeout_s)
    return out


def reference_authorisation_summary(state: SimulationState, latency: np.ndarray) -> dict:
    o = state.outcomes
    code = o["response_code"]
    amount = state.txn["amount_minor"]
    route = o["route"]
    routed = o["routed_issuer"]
    saf = results._saf_log(state)
    saf_issuer = routed[saf["txn"]] if len(saf["txn"]) else np.empty(0, dtype=np.int16)
    switched = route != ROUTE_IN_BANK

    def select(sel):
        return {k: v[sel] for k, v in o.items()}

    auth = _ref_block(code[switched], latency[switched], amount[switched], select(switched), saf)
    wait_ms = (o["t_host_start_s"] - o["t_host_in_s"]) * 1000.0
    reversal_repeats = _ref_reversal_repeats(state)
    per_issuer = {}
    for k, iss in enumerate(state.scenario.issuers):
        sel = switched & (routed == k)
        block = _ref_block(code[sel], latency[sel], amount[sel], select(sel),
                           {key: v[saf_issuer == k] for key, v in saf.items()})
        served = (routed == k) & ~np.isnan(wait_ms)
        w = wait_ms[served]
        block["host_wait_ms_mean"] = _ref_r(w.mean()) if len(w) else None
        block["host_wait_ms"] = _ref_percentiles(w, (50, 99))
        block["queue_depth_max"] = int(state.queue_depth_max[k])
        host = o["host_outcome"][routed == k]
        block["host"] = {name: int((host == h).sum()) for h, name in enumerate(HOST_OUTCOMES)}
        block["reversal_repeats"] = int(reversal_repeats[sel].sum())
        per_issuer[iss.institution] = block
    auth["per_issuer"] = per_issuer
    auth["reversal_repeats"] = int(reversal_repeats.sum())
    bank = route == ROUTE_IN_BANK
    bank_code = code[bank]
    auth["in_bank"] = {
        "count": int(bank.sum()),
        "approved": int((bank_code == APPROVED).sum()),
        "declined": int((bank_code != APPROVED).sum()),
        "approved_minor": int(amount[bank][bank_code == APPROVED].sum()),
        "by_response_code": {f"{c:02d}": int((bank_code == c).sum())
                             for c in RESPONSE_CODES if (bank_code == c).any()},
        "latency_ms": _ref_percentiles(latency[bank], (50, 95, 99)),
    }
    return auth


# --- fixtures and helpers --------------------------------------------------------------------

class Run:
    """A finished simulation and the figures the whole-day code gives for it."""

    def __init__(self, path: str, mode: str):
        self.name = f"{Path(path).stem}-{mode}"
        self.state = simulate(load_scenario(ROOT / path), mode)
        self.latency = results._latency_ms(self.state)
        self.expected = reference_authorisation_summary(self.state, self.latency)
        saf = results._saf_log(self.state)
        self.saf_issuer = self.state.outcomes["routed_issuer"][saf["txn"]]
        self.saf_kind = saf["kind"]
        self.saf_attempt = saf["attempt"]
        self.saf_acked = saf["t_acked_s"]


@functools.cache
def get_run(path: str, mode: str) -> Run:
    """Each run simulated once per test session."""
    return Run(path, mode)


@pytest.fixture(scope="module", params=RUNS, ids=lambda r: f"{Path(r[0]).stem}-{r[1]}")
def run(request) -> Run:
    return get_run(*request.param)


def cuts(data, n: int, max_cuts: int = 12) -> list[int]:
    """Sorted cut positions in 0..n (repeats allowed: empty chunks), drawn by Hypothesis."""
    inner = data.draw(st.lists(st.integers(0, n), max_size=max_cuts))
    return [0, *sorted(inner), n]


def streamed(run: Run, row_cuts: list[int], saf_cuts: list[int], saf_order: np.ndarray,
             spill_dir: Path | None) -> dict:
    """The figures fed in the given chunks: purchases in id order, the SAF log shuffled and cut."""
    figures = AuthorisationFigures(run.state.scenario, spill_dir)
    txn, out = run.state.txn, run.state.outcomes
    for lo, hi in zip(row_cuts, row_cuts[1:]):
        figures.add({k: v[lo:hi] for k, v in txn.items()}, {k: v[lo:hi] for k, v in out.items()})
    for lo, hi in zip(saf_cuts, saf_cuts[1:]):
        part = saf_order[lo:hi]
        figures.add_saf(run.saf_issuer[part], run.saf_kind[part], run.saf_attempt[part], run.saf_acked[part])
    return figures.result(run.state.queue_depth_max)


def assert_identical(got: dict, expected: dict) -> None:
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)  # the same keys in the same order: the same bytes


@pytest.fixture(scope="module")
def stress() -> Run:
    return get_run("tests/data/fast_stress.yaml", "fast")


@pytest.fixture(scope="module")
def small() -> Run:
    return get_run("scenarios/intraday_windows.yaml", "fast")


@pytest.fixture(scope="module")
def tiled(stress: Run, tmp_path_factory):
    """The stress run's purchases four times over (no txn_id: ids would repeat), and a spill folder."""
    txn = {k: np.tile(v, 4) for k, v in stress.state.txn.items() if k != "txn_id"}
    out = {k: np.tile(v, 4) for k, v in stress.state.outcomes.items()}
    return txn, out, tmp_path_factory.mktemp("spill")


# --- tests ---------------------------------------------------------------------------------

class TestRunsExercisePaths:
    """The chosen runs between them reach every figure (else the equality tests prove little)."""

    def test_every_figure_is_nonzero_somewhere(self) -> None:
        auths = [get_run(p, m).expected for p, m in RUNS]
        for key, value in auths[0].items():
            if isinstance(value, int):  # every count and amount, reversal_repeats included
                assert any(a[key] for a in auths), key
        assert any(a["in_bank"]["count"] and a["in_bank"]["declined"] for a in auths)
        assert any(b["queue_depth_max"] and b["host_wait_ms_mean"]
                   for a in auths for b in a["per_issuer"].values())
        assert any(a["by_response_code"].get("91") for a in auths)


class TestWholeDay:
    """results.authorisation_summary (one add of the whole day) gives the old whole-day figures."""

    def test_summary_equals_reference(self, run: Run) -> None:
        assert_identical(results.authorisation_summary(run.state, run.latency), run.expected)

    def test_single_chunk_with_spill(self, run: Run, tmp_path: Path) -> None:
        n = len(run.state.outcomes["route"])
        k = len(run.saf_kind)
        got = streamed(run, [0, n], [0, k], np.arange(k), tmp_path)
        assert_identical(got, run.expected)


class TestChunked:
    """Any cut of the purchases and of the SAF log, spilled or in memory, gives the identical dict."""

    @settings(max_examples=4, deadline=None)
    @given(data=st.data())
    def test_random_chunks_spilled(self, run: Run, data) -> None:
        n = len(run.state.outcomes["route"])
        k = len(run.saf_kind)
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        with tempfile.TemporaryDirectory() as d:
            got = streamed(run, cuts(data, n), cuts(data, k, 5), rng.permutation(k), Path(d))
        assert_identical(got, run.expected)

    @settings(max_examples=2, deadline=None)
    @given(data=st.data())
    def test_random_chunks_in_memory(self, run: Run, data) -> None:
        n = len(run.state.outcomes["route"])
        k = len(run.saf_kind)
        got = streamed(run, cuts(data, n), cuts(data, k, 5), np.arange(k)[::-1], None)
        assert_identical(got, run.expected)

    def test_many_small_slices(self, run: Run, monkeypatch, tmp_path: Path) -> None:
        """`add` cuts a big chunk into slices itself; slices of 997 rows change nothing."""
        monkeypatch.setattr(stream_figures, "_SLICE_ROWS", 997)
        n = len(run.state.outcomes["route"])
        k = len(run.saf_kind)
        got = streamed(run, [0, n // 3, n], [0, k], np.arange(k), tmp_path)
        assert_identical(got, run.expected)

    def test_saf_fed_per_issuer_stream(self, run: Run, tmp_path: Path) -> None:
        """Fast mode's log issuer by issuer (as the streamed run feeds it: issuer j's parts under j)
        gives the figures of the log keyed by each attempt's routed issuer."""
        stream = getattr(run.state.authorisation, "stream", None)
        if stream is None:
            pytest.skip("detailed mode keeps one log for all issuers")
        figures = AuthorisationFigures(run.state.scenario, tmp_path)
        figures.add(run.state.txn, run.state.outcomes)
        for j, issuer in enumerate(stream.issuers or []):
            for part in issuer.saf_log:
                figures.add_saf(np.full(len(part["kind"]), j, dtype=np.int16), part["kind"], part["attempt"],
                                part["t_acked_s"])
        assert_identical(figures.result(run.state.queue_depth_max), run.expected)

    def test_result_twice(self, run: Run, tmp_path: Path) -> None:
        """result() reads the spill without consuming it (its in-place sorts use copies)."""
        n = len(run.state.outcomes["route"])
        figures = AuthorisationFigures(run.state.scenario, tmp_path)
        figures.add(run.state.txn, run.state.outcomes)
        figures.add_saf(run.saf_issuer, run.saf_kind, run.saf_attempt, run.saf_acked)
        first = figures.result(run.state.queue_depth_max)
        assert_identical(figures.result(run.state.queue_depth_max), first)
        assert n and first == run.expected


class TestArbitraryColumns:
    """On outcome columns the model never produces together (in-bank purchases reversed after
    a switch restart, store-and-forward attempts of unrouted purchases, ...), the chunked
    figures still equal the oracle: each column of a real run is shuffled on its own."""

    COLUMNS = ("route", "routed_issuer", "reversed", "stand_in", "lost_in_switch", "host_outcome",
               "response_code", "final_state", "t_host_start_s")

    @settings(max_examples=3, deadline=None)
    @given(seed=st.integers(0, 2**32 - 1), data=st.data())
    def test_shuffled_columns(self, seed: int, data) -> None:
        base = get_run("tests/data/fast_stress_restart.yaml", "detailed")
        rng = np.random.default_rng(seed)
        out = dict(base.state.outcomes)
        for name in self.COLUMNS:
            out[name] = rng.permutation(out[name])
        # And values outside the named ones: no issuer or one past the last, unknown codes and states.
        n_iss = len(base.state.scenario.issuers)
        for name, odd in (("routed_issuer", [-1, n_iss]), ("response_code", [-1, 1, 99]),
                          ("final_state", [-1, len(FINAL_STATES)]), ("host_outcome", [-1, len(HOST_OUTCOMES)])):
            rows = rng.choice(len(out[name]), size=200, replace=False)
            out[name][rows] = rng.choice(odd, size=200)
        run = Run.__new__(Run)
        run.state = attrs.evolve(base.state, outcomes=out)
        run.latency = results._latency_ms(run.state)
        run.expected = reference_authorisation_summary(run.state, run.latency)
        run.saf_issuer = out["routed_issuer"][results._saf_log(run.state)["txn"]]
        run.saf_kind, run.saf_attempt, run.saf_acked = base.saf_kind, base.saf_attempt, base.saf_acked
        assert run.expected["in_bank"]["count"] and (out["reversed"] & (out["route"] == ROUTE_IN_BANK)).any()
        assert (run.saf_issuer < 0).any()
        n, k = len(out["route"]), len(run.saf_kind)
        with tempfile.TemporaryDirectory() as d:
            got = streamed(run, cuts(data, n), cuts(data, k, 5), rng.permutation(k), Path(d))
        assert_identical(got, run.expected)
        assert_identical(results.authorisation_summary(run.state, run.latency), run.expected)


class TestFigureCells:
    """`fast_kernels.figure_cells` gives the cells' counts and sums the numpy code it replaced
    gave (kept here: `_ref_cells`), on values inside and outside the known states and codes."""

    @staticmethod
    def _ref_cells(group, out, amount, shape):
        def index(value, lookup, outside):
            inside = (value >= 0) & (value < len(lookup))
            return np.where(inside, lookup[np.where(inside, value, 0)], outside)

        f = stream_figures
        state = index(out["final_state"], np.arange(len(FINAL_STATES)), len(FINAL_STATES))
        code = index(out["response_code"], f._CODE_INDEX, len(RESPONSE_CODES))
        flags = (out["stand_in"] * f._STAND_IN | out["reversed"] * f._REVERSED | out["lost_in_switch"] * f._LOST
                 | (out["host_outcome"] != HOST_NOT_SENT) * f._HOST_SENT)
        cell = ((group.astype(np.int64) * f._N_STATES + state) * f._N_CODES + code) * f._N_FLAGS + flags
        count = np.zeros(shape, dtype=np.int64)
        minor = np.zeros(shape, dtype=np.int64)
        count.reshape(-1)[:] += np.bincount(cell, minlength=count.size)
        np.add.at(minor.reshape(-1), cell, amount)
        return count, minor

    @settings(max_examples=30, deadline=None)
    @given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3000), big=st.booleans())
    def test_equals_numpy(self, seed: int, n: int, big: bool) -> None:
        from clearing_sim.model import fast_kernels

        f = stream_figures
        rng = np.random.default_rng(seed)
        groups = 5
        group = rng.integers(0, groups, n).astype(np.int16)
        out = {
            "final_state": rng.integers(-2, len(FINAL_STATES) + 2, n).astype(np.int8),
            "response_code": rng.choice(np.array(list(RESPONSE_CODES) + [-1, 1, 92, 99, 200]), n).astype(np.int16),
            "stand_in": rng.random(n) < 0.5, "reversed": rng.random(n) < 0.5,
            "lost_in_switch": rng.random(n) < 0.5,
            "host_outcome": rng.integers(-1, len(HOST_OUTCOMES) + 1, n).astype(np.int8),
        }
        # Amounts near the int64 range: the sums wrap alike.
        amount = (rng.integers(-2**62, 2**62, n) if big else rng.integers(0, 10**7, n)).astype(np.int64)
        shape = (groups, f._N_STATES, f._N_CODES, f._N_FLAGS)
        want_count, want_minor = self._ref_cells(group, out, amount, shape)
        count = np.zeros(shape, dtype=np.int64)
        minor = np.zeros(shape, dtype=np.int64)
        fast_kernels.figure_cells(group, out["final_state"], out["response_code"], f._CODE_INDEX, out["stand_in"],
                                  out["reversed"], out["lost_in_switch"], out["host_outcome"], HOST_NOT_SENT,
                                  amount, f._N_STATES, f._N_CODES, f._N_FLAGS, count.reshape(-1), minor.reshape(-1))
        assert count.dtype == minor.dtype == np.int64
        assert np.array_equal(count, want_count) and np.array_equal(minor, want_minor)


class TestOrderMatters:
    """The spill keeps transaction-id order, which the host-wait mean needs: a shuffle would change it."""

    def test_mean_before_the_in_place_sort(self, stress: Run) -> None:
        """Waits whose float sum depends on order: the mean is the one of transaction-id order."""
        w = np.array([1.0, 1e16, 1.0, 1.0])
        assert round(float(w.mean()), 3) != round(float(np.sort(w).mean()), 3)
        figures = AuthorisationFigures(stress.state.scenario, None)
        figures.host_wait.append(0, w)
        assert figures._host_wait(0)["host_wait_ms_mean"] == round(float(w.mean()), 3)

    def test_shuffled_waits_change_some_mean(self, stress: Run) -> None:
        o = stress.state.outcomes
        wait = stream_figures.host_wait_ms(o)
        rng = np.random.default_rng(1)
        changed = 0
        for k in range(len(stress.state.scenario.issuers)):
            w = wait[(o["routed_issuer"] == k) & ~np.isnan(wait)]
            changed += sum(float(rng.permutation(w).mean()) != float(w.mean()) for _ in range(5))
        assert changed  # float sums depend on order: why the spill is not a bag of values


class TestSpill:
    """The spill files hold raw float64 per group; stale or short files are never read as ours."""

    def test_file_sizes_match_groups(self, stress: Run, tmp_path: Path) -> None:
        figures = AuthorisationFigures(stress.state.scenario, tmp_path)
        figures.add(stress.state.txn, stress.state.outcomes)
        o = stress.state.outcomes
        n_iss = len(stress.state.scenario.issuers)
        switched = o["route"] != ROUTE_IN_BANK
        for k in range(n_iss):
            size = (tmp_path / f"latency_ms_{k}.f64").stat().st_size
            assert size == 8 * int((switched & (o["routed_issuer"] == k)).sum())
        bank = (tmp_path / f"latency_ms_{n_iss + 1}.f64").stat().st_size
        assert bank == 8 * int((~switched).sum())
        wait = np.fromfile(tmp_path / "host_wait_ms_0.f64")
        w = stream_figures.host_wait_ms(o)
        assert np.array_equal(wait, w[(o["routed_issuer"] == 0) & ~np.isnan(w)])  # id order

    def test_stale_file_is_truncated(self, stress: Run, tmp_path: Path) -> None:
        (tmp_path / "latency_ms_0.f64").write_bytes(np.arange(1000.0).tobytes())
        (tmp_path / f"latency_ms_{len(stress.state.scenario.issuers)}.f64").write_bytes(b"\0" * 800)
        figures = AuthorisationFigures(stress.state.scenario, tmp_path)
        figures.add(stress.state.txn, stress.state.outcomes)
        figures.add_saf(stress.saf_issuer, stress.saf_kind, stress.saf_attempt, stress.saf_acked)
        assert figures.result(stress.state.queue_depth_max) == stress.expected

    def test_short_file_raises(self, stress: Run, tmp_path: Path) -> None:
        figures = AuthorisationFigures(stress.state.scenario, tmp_path)
        figures.add(stress.state.txn, stress.state.outcomes)
        path = tmp_path / "host_wait_ms_1.f64"
        path.write_bytes(path.read_bytes()[:-8])
        with pytest.raises(InvariantError, match="host_wait_ms_1"):
            figures.result(stress.state.queue_depth_max)


class TestMemory:
    """What `add` and `result()` hold is bounded: a slice of rows, and one group of floats
    (numpy reports its buffers to tracemalloc, so the peaks are exact byte counts)."""

    def test_add_holds_one_slice(self, stress: Run, tiled, monkeypatch) -> None:
        txn, out, spill = tiled
        monkeypatch.setattr(stream_figures, "_SLICE_ROWS", 1 << 14)
        figures = AuthorisationFigures(stress.state.scenario, spill / "add")
        tracemalloc.start()
        try:
            figures.add(txn, out)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        rows = len(out["route"])
        assert rows > 400_000
        assert peak < 200 * (1 << 14) + (1 << 20)  # bytes: ~100 a row of the slice, not of the chunk

    def test_result_holds_the_switched_latencies_only(self, stress: Run, tiled) -> None:
        txn, out, spill = tiled
        figures = AuthorisationFigures(stress.state.scenario, spill / "result")
        figures.add(txn, out)
        switched_bytes = 8 * int((out["route"] != ROUTE_IN_BANK).sum())
        tracemalloc.start()
        try:
            figures.result(stress.state.queue_depth_max)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert switched_bytes > 2_000_000
        assert switched_bytes <= peak < switched_bytes + 256 * 1024  # no copy of them, no second group


class TestGuards:
    """Chunks out of id order, repeated, or with ragged columns are refused."""

    @staticmethod
    def chunk(run: Run, lo: int, hi: int):
        return ({k: v[lo:hi] for k, v in run.state.txn.items()},
                {k: v[lo:hi] for k, v in run.state.outcomes.items()})

    def test_out_of_order(self, small: Run) -> None:
        figures = AuthorisationFigures(small.state.scenario, None)
        figures.add(*self.chunk(small, 100, 200))
        with pytest.raises(InvariantError, match="transaction-id order"):
            figures.add(*self.chunk(small, 0, 100))

    def test_repeated_chunk(self, small: Run) -> None:
        figures = AuthorisationFigures(small.state.scenario, None)
        figures.add(*self.chunk(small, 0, 100))
        with pytest.raises(InvariantError, match="transaction-id order"):
            figures.add(*self.chunk(small, 99, 150))

    def test_ragged_columns(self, small: Run) -> None:
        txn, out = self.chunk(small, 0, 100)
        out["route"] = out["route"][:-1]
        with pytest.raises(InvariantError, match="differ in length"):
            AuthorisationFigures(small.state.scenario, None).add(txn, out)
        with pytest.raises(InvariantError, match="differ in length"):
            AuthorisationFigures(small.state.scenario, None).add_saf(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(1))


class TestPercentiles:
    """`percentiles` in place gives the figures of a copy; results re-exports it with its rounding."""

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=60))
    def test_in_place_equals_copy(self, xs) -> None:
        v = np.array(xs, dtype=np.float64)
        expected = _ref_percentiles(v, (50, 95, 99))
        assert stream_figures.percentiles(v.copy(), (50, 95, 99), overwrite_input=True) == expected
        assert stream_figures.percentiles(v, (50, 95, 99)) == expected

    def test_same_function_and_rounding(self) -> None:
        assert results.percentiles is stream_figures.percentiles
        assert results._DECIMALS == stream_figures._DECIMALS
