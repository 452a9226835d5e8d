"""A simulated day, detailed mode against fast mode, measured in the same run.

* ``test_day_detailed``: the reference -- `clearing_sim.run(baseline, mode="detailed")`,
  the whole day end to end (draws, authorisations as SimPy processes, files, clearing,
  settlement, summary and tables);
* ``test_day_fast``: the same with ``mode="fast"`` (authorisations by compiled kernels;
  SimPy still drives files, cycles and windows). Same outcomes, checked here too.
* ``test_day_draw``: drawing the same day's purchases and nothing else
  (`traffic.draw_days`). Both modes make exactly these draws (that is what makes their
  outcomes equal), so its speed-up over ``test_day_detailed`` is a ceiling that fast mode's
  speed-up cannot pass, however fast everything after the draws becomes.
* ``test_auth_detailed`` / ``test_auth_fast``: the authorisation path alone (the part
  the two modes do differently) on the same 10^5-purchase workload as
  ``bench_authorisation``.

Throughput is transactions per second; the ratio of the two is fast mode's speed-up.
The baseline day is ``full`` (a detailed day takes seconds); the authorisation pair is
in the quick subset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import clearing_sim
from benchmarks.bench_authorisation import run_detailed, workload
from clearing_sim.model.fast_authorisation import FastAuthorisation
from clearing_sim.model.network import horizon_days
from clearing_sim.model.traffic import DAY_S, draw_days

BASELINE = Path(__file__).resolve().parent.parent / "scenarios" / "baseline.yaml"
UNIT = "transactions"


def _baseline():
    return clearing_sim.load_scenario(BASELINE)


@pytest.mark.full
def test_day_detailed(benchmark):
    sc = _baseline()
    result = benchmark.pedantic(clearing_sim.run, args=(sc,), kwargs={"mode": "detailed"},
                                rounds=3, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(items=result.transactions.num_rows, unit=UNIT, reference=None, role="reference")


@pytest.mark.full
def test_day_fast(benchmark):
    sc = _baseline()
    clearing_sim.run(sc, mode="fast")  # compile the kernels outside the timing
    result = benchmark.pedantic(clearing_sim.run, args=(sc,), kwargs={"mode": "fast"},
                                rounds=5, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(items=result.transactions.num_rows, unit=UNIT, reference="test_day_detailed")


@pytest.mark.full
def test_day_draw(benchmark):
    sc = _baseline()
    days = benchmark.pedantic(draw_days, args=(sc,), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(items=len(days["txn_id"]), unit=UNIT, reference="test_day_detailed")


def _run_fast(sc, txn, routed):
    return FastAuthorisation(sc, txn, routed, horizon_days(sc) * DAY_S)


def test_auth_detailed(benchmark):
    sc, txn, routed = workload(100_000)
    benchmark.extra_info.update(items=len(txn["txn_id"]), unit="authorisations", reference=None, role="reference")
    benchmark.pedantic(run_detailed, args=(sc, txn, routed), rounds=3, iterations=1, warmup_rounds=0)


def test_auth_fast(benchmark):
    sc, txn, routed = workload(100_000)
    _run_fast(sc, txn, routed)  # compile outside the timing
    benchmark.extra_info.update(items=len(txn["txn_id"]), unit="authorisations", reference="test_auth_detailed")
    fast = benchmark.pedantic(_run_fast, args=(sc, txn, routed), rounds=5, iterations=1, warmup_rounds=0)
    detailed = run_detailed(sc, txn, routed)
    for k in ("response_code", "t_response_s", "stand_in", "reversed"):
        assert np.array_equal(fast.out[k], detailed.out[k], equal_nan=fast.out[k].dtype.kind == "f")
