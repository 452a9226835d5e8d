"""Benchmark conventions for clearing-sim (read this before adding a bench file).

Where and how
    * Benchmarks are pytest-benchmark tests in ``benchmarks/bench_*.py``.
      ``make test`` never runs them (testpaths is ``tests/``); run them with
      ``make bench`` (everything) or ``make bench-ci`` (``-m "not full"``).
    * A benchmark too heavy for CI (10^7 rows, a full simulated day...) carries
      ``@pytest.mark.full``; keep a smaller sibling in the quick subset, and keep
      the whole quick subset under about two minutes on a 2-core machine.
    * Data comes from fixed seeds (``np.random.default_rng(<constant>)``), is
      built outside the timed function (a module- or session-scoped fixture),
      and JIT warm-up (numba) happens before ``benchmark(...)`` is called, so
      the timing is of steady-state work only.

What every benchmark records
    ``benchmark.extra_info.update(items=N, unit="transactions", reference=...)``

    * ``items``: how many things one call processes (throughput is
      items / mean seconds); ``unit``: what they are, plural.
    * ``reference``: the *name* of another benchmark measured in the same run,
      exactly as pytest-benchmark records it -- the test function name plus
      its parametrize id, e.g. ``"test_read_pass[1e6-p50]"``.  The report
      shows this benchmark's time divided by the reference's time.  It is
      looked up in the same bench file first, then in the whole run.
    * A reference benchmark itself sets ``reference=None, role="reference"``.
      A good reference is the cheapest honest baseline for the same data (a
      read pass over the inputs, a numpy one-liner, the previous algorithm).

Limits
    ``benchmarks/limits.toml`` holds limits on *ratios* between benchmarks of
    the same run, never on seconds (machines differ, ratios travel).  One table
    per benchmark, keyed by bench-file stem and benchmark name::

        [bench_netting."test_multilateral[1e7-p50]"]
        reference = "test_read_pass[1e7-p50]"   # optional, defaults to extra_info
        max_time_ratio = 2.0                    # time / reference time <= 2.0
        # min_time_ratio = 3.0                  # time / reference time >= 3.0

Report
    ``python -m benchmarks.report benchmarks/results/latest.json
    benchmarks/results/latest.md`` writes (and prints) a Markdown table --
    benchmark, items, unit, mean time, throughput, reference, ratio, speed-up,
    limit, PASS/FAIL -- and exits 1 if any limit is crossed.  A reference that
    is not in the run is noted in the table, not an error.
    ``benchmarks/results/`` is gitignored and created on demand.
"""

from __future__ import annotations

from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def pytest_configure(config):
    # pytest-benchmark opens --benchmark-json only at the end of the run; make
    # sure its folder exists so a long run does not die at the last step.
    RESULTS_DIR.mkdir(exist_ok=True)
    json_path = config.getoption("benchmark_json", default=None)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
