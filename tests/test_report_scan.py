"""report.html's readings side by side: the transactions read in three rounds, each plot's data as read alone.

`report._scan` runs every plot's reading of a table together: each round reads the
columns of every reading's next pass once and hands each batch to all of them. These
tests hold that a reading gives the same data side by side as read by itself (and as
the whole-column numpy code), that the transactions are read in three rounds instead of
once or more per plot, that a reading's failure stays with its plot, that the
Parquet batches decoded ahead by a helper thread come in order, bounded and closed, and
that the compiled loops of the exposure's passes add up what the numpy code they
replaced did (reference copies here).
"""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clearing_sim
from clearing_sim import metrics, report
from clearing_sim.outputs import write_table
from clearing_sim.scenario import parse_scenario

from tests.conftest import SMALL_YAML

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
RUNS = ("small", "intraday_windows")  # 3k purchases over 1 day, 120k over 3 days


@pytest.fixture(scope="module")
def runs() -> dict:
    """The in-memory results of two runs (fast mode), by name."""
    return {"small": clearing_sim.run(parse_scenario(SMALL_YAML, "small.yaml"), mode="fast"),
            "intraday_windows": clearing_sim.run(SCENARIOS / "intraday_windows.yaml", mode="fast")}


@pytest.fixture(scope="module")
def files(runs, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Each run's tables as Parquet files, written as a run folder writes them."""
    out = {}
    for name, r in runs.items():
        folder = tmp_path_factory.mktemp(name)
        write_table(folder / "transactions.parquet", r.transactions)
        write_table(folder / "settlements.parquet", r.settlements)
        out[name] = {"transactions": folder / "transactions.parquet", "settlements": folder / "settlements.parquet"}
    return out


def _same(a, b) -> bool:
    """Equal to the last bit: arrays by dtype, shape and bytes, floats by their bits, _Exposure by its attributes."""
    if isinstance(a, report._Exposure):
        return isinstance(b, report._Exposure) and _same(vars(a), vars(b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (float, np.floating)):
        return type(a) is type(b) and np.float64(a).tobytes() == np.float64(b).tobytes()
    return type(a) is type(b) and a == b


def _alone(table: report.Batches | None, plot: report.Plot, summary: dict) -> report._Outcome:
    try:
        return report._Outcome(report._read_alone(table, plot.read(table, summary)), None)
    except Exception as exc:  # noqa: BLE001 - compared with the side-by-side outcome
        return report._Outcome(None, exc)


def _counting(table: report.Batches) -> tuple[report.Batches, list[list[str]]]:
    """`table`, and the columns of every pass made over it (a list per pass)."""
    reads: list[list[str]] = []

    def read(columns: list[str]):
        reads.append(list(columns))
        return table.batches(columns)

    return report.Batches(table.schema, read, table.dictionaries), reads


class TestSideBySide:
    """Every plot's reading gives the same data side by side as read alone, in three rounds over the transactions."""

    @pytest.mark.parametrize("name", RUNS)
    @pytest.mark.parametrize("source", ["parquet", "memory"])
    def test_same_data_as_each_plot_alone(self, name, source, runs, files):
        r = runs[name]
        for table_name in ("transactions", "settlements"):
            table = report.Batches.of_parquet(files[name][table_name]) if source == "parquet" else \
                report.Batches.of_table(getattr(r, table_name), batch_rows=7_777)
            plots = [p for p in report.PLOTS if p.table == table_name]
            together = report._scan(table, [p.read(table, r.summary) for p in plots])
            for plot, outcome in zip(plots, together):
                alone = _alone(table, plot, r.summary)
                assert outcome.error is None and alone.error is None, (plot.key, outcome.error, alone.error)
                assert _same(outcome.value, alone.value), plot.key

    @pytest.mark.parametrize("name", RUNS)
    def test_three_rounds_each_column_once(self, name, runs, files):
        r = runs[name]
        table, reads = _counting(report.Batches.of_parquet(files[name]["transactions"]))
        plots = [p for p in report.PLOTS if p.table == "transactions"]
        report._scan(table, [p.read(table, r.summary) for p in plots])
        assert len(reads) == 3
        assert all(len(columns) == len(set(columns)) for columns in reads)
        # Read alone, the same plots make eleven passes or more.
        alone, alone_reads = _counting(report.Batches.of_parquet(files[name]["transactions"]))
        for p in plots:
            report._read_alone(alone, p.read(alone, r.summary))
        assert len(alone_reads) >= 11
        assert sum(map(len, reads)) <= sum(map(len, alone_reads))  # no column read more often

    def test_report_reads_the_transactions_three_times(self, runs, files, monkeypatch):
        r = runs["intraday_windows"]
        opened = []
        real = report.Batches.of_parquet

        def of_parquet(path, batch_rows=None):
            table, reads = _counting(real(path, batch_rows))
            opened.append((Path(path).name, reads))
            return table

        monkeypatch.setattr(report.Batches, "of_parquet", of_parquet)
        report.build_report_from_parquet(r.summary, files["intraday_windows"]["transactions"],
                                         files["intraday_windows"]["settlements"])
        assert [(n, len(reads)) for n, reads in opened] == [("transactions.parquet", 3), ("settlements.parquet", 1)]

    def test_key_figure_takes_the_exposure_plots_peak(self, runs, files, monkeypatch):
        """Without the summary's peak, the key figure is the exposure plot's exact peak: no passes of its own."""
        r = runs["intraday_windows"]
        summary = copy.deepcopy(r.summary)
        del summary["settlement"]["exposure"]["peak_minor"]
        whole = report._key_table(summary, lambda: metrics.transaction_columns(r.transactions))
        assert metrics.fmt_value(r.summary["settlement"]["exposure"]["peak_minor"], "fen") in whole

        def refuse(tx):
            raise AssertionError("the key figure read the transactions again")

        monkeypatch.setattr(report, "_peak_exposure_columns", refuse)
        html = report.build_report_from_parquet(summary, files["intraday_windows"]["transactions"],
                                                files["intraday_windows"]["settlements"])
        assert whole in html
        assert html == report.build_report(summary, r.transactions, r.settlements)

    def test_key_figure_without_the_exposure_plot(self, runs):
        """No issuer column, so no exposure plot: the key figure finds the peak by itself, as from whole columns."""
        r = runs["small"]
        summary = copy.deepcopy(r.summary)
        del summary["settlement"]["exposure"]["peak_minor"]
        tx = r.transactions.drop_columns(["issuer"])
        whole = report._key_table(summary, lambda: metrics.transaction_columns(tx))
        html = report.build_report(summary, tx, r.settlements)
        assert whole in html and "issuer missing" in html

    def test_a_failing_reading_keeps_its_error(self, runs):
        """A NaN arrival time fails the hourly plot (as it did read alone); the other readings finish."""
        r = runs["small"]
        t = r.transactions.column("t_arrival_s").to_numpy().copy()
        t[5] = np.nan
        tx = r.transactions.set_column(r.transactions.schema.get_field_index("t_arrival_s"), "t_arrival_s",
                                       pa.array(t))
        table = report.Batches.of_table(tx)
        plots = [p for p in report.PLOTS if p.table == "transactions"]
        outcomes = dict(zip([p.key for p in plots], report._scan(table, [p.read(table, r.summary) for p in plots])))
        assert isinstance(outcomes.pop("transactions_per_hour").error, ValueError)
        assert all(o.error is None for o in outcomes.values())
        with pytest.raises(ValueError):
            report.plot_transactions_per_hour(report.new_figure(), table, r.summary)
        with pytest.raises(ValueError):
            report.build_report(r.summary, tx, r.settlements)

    def test_unreadable_table_raises(self, runs):
        r = runs["small"]
        real = report.Batches.of_table(r.transactions, batch_rows=500)

        def read(columns):
            yield from list(real.batches(columns))[:2]
            raise OSError("disk gone")

        table = report.Batches(real.schema, read)
        plots = [p for p in report.PLOTS if p.table == "transactions"]
        with pytest.raises(OSError, match="disk gone"):
            report._scan(table, [p.read(table, r.summary) for p in plots])


_arrival_st = st.one_of(st.sampled_from([0.0, -0.0, 3600.0, 86400.0, 86399.99, 172800.0, -1.0, 90000.0]),
                        st.floats(-10.0, 3 * 86400.0))


@st.composite
def _arrivals(draw) -> pa.Table:
    """Arrival times (on hour edges, negative, past the run's day) and acquirers (some null), in chunks."""
    n = draw(st.integers(0, 40))
    t = draw(st.lists(_arrival_st, min_size=n, max_size=n))
    acq = draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n))
    idx = pa.array(acq, pa.int32(), mask=np.array(acq, dtype=int) < 0)
    return pa.table({"t_arrival_s": pa.array(t, pa.float64()),
                     "acquirer": pa.DictionaryArray.from_arrays(idx, pa.array(["P", "Q", "R"]))})


class TestHoursOnePass:
    """Purchases per hour in one pass over the run's days, a second only for a later arrival: np.histogram's counts."""

    @settings(max_examples=60, deadline=None)
    @given(table=_arrivals(), days=st.sampled_from([None, 0, 1, 2, 2.0, "2"]), batch_rows=st.integers(1, 9))
    def test_same_as_whole_column(self, table, days, batch_rows):
        summary = {} if days is None else {"days": days}
        source, reads = _counting(report.Batches.of_table(table, batch_rows=batch_rows))
        hours = report._read_alone(source, report._read_transactions_per_hour(source, summary))
        t = table.column("t_arrival_s").to_numpy()
        want_days = max(1, int(summary.get("days") or 1), int(np.ceil(t.max() / report.DAY_S)) if len(t) else 1)
        edges = np.arange(0, want_days * 24 + 1) * report.HOUR_S
        codes, names = report._coded(table, "acquirer")
        assert (hours.rows, hours.days, hours.edges.tolist()) == (len(t), want_days, edges.tolist())
        assert [name for name, _, _ in hours.per_acquirer] == names
        for k, (_, counts, _) in enumerate(hours.per_acquirer):
            assert counts.tolist() == np.histogram(t[codes == k], bins=edges)[0].tolist()
        one_pass = type(days) is int or days is None
        assert len(reads) == (1 if one_pass and want_days == max(1, days or 1) else 2)


class TestSharesOnEdges:
    """Values on the bin edges, next to them and outside count as np.histogram counts them."""

    @pytest.mark.parametrize("clip", [False, True])
    @pytest.mark.parametrize("edges", [np.linspace(0.0, 7.3, 13), np.arange(0, 25) * 3600.0,
                                       np.array([0.0, 1.0, 1.5, 10.0]),
                                       np.array([0.0, 2.0, 2.0, 3.0]),  # not increasing strictly: np.histogram
                                       np.array([0.0, 1.0, np.inf])])  # not finite: np.histogram
    def test_same_as_histogram(self, clip, edges):
        fin = edges[np.isfinite(edges)]
        values = np.concatenate([fin, np.nextafter(fin, -np.inf), np.nextafter(fin, np.inf),
                                 [-1.0, -0.0, 100.0, np.inf, -np.inf, np.nan]])
        codes = np.arange(len(values)) % 3 - 1
        shares = report._Shares(edges, clip=clip)
        shares.add(values, codes, None, 2, other=True)
        for k, (_, counts, n) in zip((0, 1), shares.series(["a", "b"])):
            v = values[codes == k]
            assert n == len(v)
            assert counts.tolist() == np.histogram(np.minimum(v, edges[-1]) if clip else v, bins=edges)[0].tolist()
        v = values[codes < 0]
        assert shares.other.tolist() == np.histogram(np.minimum(v, edges[-1]) if clip else v, bins=edges)[0].tolist()


class TestSelect:
    """Ranks and percentiles found in the same passes equal those found apart, bit for bit, in no more passes."""

    @settings(max_examples=40, deadline=None)
    @given(values=st.lists(st.floats(0.0, 1e6, width=64), min_size=1, max_size=300), data=st.data())
    def test_together_as_apart(self, values, data):
        x = np.array(values)
        parts = np.array_split(x, 3)
        passes = []

        def read():
            passes.append(1)
            return iter(parts)

        ranks = data.draw(st.lists(st.integers(0, len(x) - 1), max_size=3))
        qs = data.draw(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=3))
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(report, "_COLLECT_MAX", 4)
            mp.setattr(report, "_BUCKET_BITS", 6)
            apart = report._OrderStatistics(read)
            at, ps = apart.values_at(ranks), apart.percentiles(qs)
            n_apart = len(passes)
            passes.clear()
            together = report._OrderStatistics(read)
            at2, ps2 = together._run(together.select(ranks, qs))
            n_together = len(passes)
        assert _same(at, at2) and _same(ps, ps2)
        assert _same(ps2, [np.percentile(x, q) for q in qs])
        assert n_together <= n_apart


class TestReadAhead:
    """The helper thread hands the batches over in order, at most two ahead, raises in the caller, stops when closed."""

    def test_in_order(self):
        assert list(report._read_ahead(lambda: iter(range(200)))) == list(range(200))

    def test_at_most_two_ahead(self):
        made = []

        def source():
            for i in range(30):
                made.append(i)
                yield i

        for got in report._read_ahead(source):
            time.sleep(0.002)  # time for the helper to run ahead if it could
            assert len(made) <= got + 3  # this one, the one queued, the one being made

    def test_error_raised_in_caller(self):
        def source():
            yield from range(3)
            raise OSError("bad page")

        got = []
        with pytest.raises(OSError, match="bad page"):
            for item in report._read_ahead(source):
                got.append(item)
        assert got == [0, 1, 2]

    def test_closing_stops_the_helper(self):
        closed = threading.Event()

        def source():
            try:
                yield from range(1000)
            finally:
                closed.set()

        batches = report._read_ahead(source)
        assert [next(batches), next(batches)] == [0, 1]
        batches.close()
        assert closed.is_set()
        assert not any(t.name == "report-read-ahead" for t in threading.enumerate())

    def test_parquet_decoded_in_the_helper(self, files, monkeypatch):
        threads = set()
        real = pq.ParquetFile.iter_batches

        def iter_batches(self, *args, **kwargs):
            threads.add(threading.current_thread().name)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(pq.ParquetFile, "iter_batches", iter_batches)
        table = report.Batches.of_parquet(files["small"]["transactions"], batch_rows=1000)
        got = pa.Table.from_batches(list(table.batches(["txn_id", "issuer"])))
        assert threads == {"report-read-ahead"}
        assert got.equals(pq.read_table(files["small"]["transactions"], columns=["txn_id", "issuer"]))


def _buckets_ref(times: np.ndarray, t0: float, width: float, buckets: int) -> np.ndarray:
    """The peak search's buckets as numpy computed them before the kernel."""
    x = times - t0
    x /= width
    np.floor(x, out=x)
    np.clip(x, 0, buckets - 1, out=x)
    return x.astype(np.int64)


def _sums_ref(ok, t_in, t_out, amount, codes, grid, t0, width, buckets):
    """One batch of the exposure's sums pass as the numpy code before the kernel added it
    up: (sums per (issuer + 1, grid slot), approved per issuer + 1, bucket sums, their
    positive changes, events per bucket, amounts of NaN response times)."""
    t_in, t_out, amount = t_in[ok], t_out[ok], amount[ok]
    size = len(grid) + 1
    k = int(codes.max(initial=-1)) + 2
    rows = codes[ok] + 1
    approved = np.bincount(rows, minlength=k)
    gi = np.searchsorted(grid, t_in, side="left") + rows * size
    go = np.searchsorted(grid, t_out, side="left") + rows * size
    sums = (report._int_sums(gi, amount, k * size) - report._int_sums(go, amount, k * size)).reshape(k, size)
    has_in, has_out = ~np.isnan(t_in), ~np.isnan(t_out)
    ti, ai, to, ao = t_in[has_in], amount[has_in], t_out[has_out], amount[has_out]
    bi, bo = _buckets_ref(ti, t0, width, buckets), _buckets_ref(to, t0, width, buckets)
    bucket_sum = report._int_sums(bi, ai, buckets) - report._int_sums(bo, ao, buckets)
    bucket_up = report._int_sums(bi, np.maximum(ai, 0), buckets) + report._int_sums(bo, np.maximum(-ao, 0), buckets)
    bucket_n = np.bincount(bi, minlength=buckets) + np.bincount(bo, minlength=buckets)
    return sums, approved, bucket_sum, bucket_up, bucket_n, amount[~has_in]


_TIMES = st.one_of(st.floats(-1e3, 2e5), st.sampled_from([0.0, -0.0, 300.0, 86100.0, 86400.0, 1e-300]),
                   st.sampled_from([np.nan, np.inf, -np.inf]))
_GRIDS = st.one_of(
    st.integers(1, 3).map(lambda days: np.linspace(0.0, days * report.DAY_S, days * 24 * 12 + 1)),
    st.lists(st.floats(-1e3, 2e5), min_size=1, max_size=30).map(lambda g: np.sort(np.array(g))),
)


class TestExposureKernel:
    """The exposure's compiled loops (span, sums and peak passes) give what the numpy code they replaced gave."""

    @settings(max_examples=200, deadline=None)
    @given(rows=st.lists(st.tuples(st.booleans(), _TIMES, _TIMES, st.one_of(
               st.integers(-5, 1000), st.integers(-(2**63), 2**63 - 1)), st.integers(-1, 3)), max_size=60),
           repeat=st.integers(1, 4), grid=_GRIDS, t0=st.floats(-1e3, 1e5),
           width=st.one_of(st.floats(1e-3, 1e5), st.just(1.0)), buckets=st.sampled_from([1, 5, 64]))
    def test_same_as_numpy(self, rows, repeat, grid, t0, width, buckets):
        rows = [r for r in rows for _ in range(repeat)]  # runs of equal settlement times, as in a run
        ok, t_in, t_out, amount, codes = (np.array(c, dtype=d) for c, d in zip(
            zip(*rows) if rows else [[]] * 5, (bool, np.float64, np.float64, np.int64, np.int64)))
        want = _sums_ref(ok, t_in, t_out, amount, codes, grid, t0, width, buckets)
        k = len(want[1])
        sums, approved = np.zeros((k, len(grid) + 1), np.int64), np.zeros(k, np.int64)
        per_bucket = [np.zeros(buckets, np.int64) for _ in range(3)]
        nan_in = report._add_exposure_changes(ok, t_in, t_out, amount, codes, grid, sums, approved,
                                              t0, width, *per_bucket)
        for got, expected in zip((sums, approved, *per_bucket), want):
            assert got.dtype == expected.dtype and np.array_equal(got, expected)
        assert nan_in == len(want[5])

    @settings(max_examples=150, deadline=None)
    @given(rows=st.lists(st.tuples(st.booleans(), _TIMES, _TIMES, st.integers(-(2**63), 2**63 - 1)), max_size=40),
           repeat=st.integers(1, 3), t0=st.floats(-1e3, 1e5), width=st.one_of(st.floats(1e-3, 1e5), st.just(1.0)),
           data=st.data())
    def test_candidate_events_as_numpy(self, rows, repeat, t0, width, data):
        """The peak pass keeps the approved events of candidate buckets, with the same net change per time."""
        rows = [r for r in rows for _ in range(repeat)]
        ok, t_in, t_out, amount = (np.array(c, dtype=d) for c, d in zip(
            zip(*rows) if rows else [[]] * 4, (bool, np.float64, np.float64, np.int64)))
        candidate = np.array(data.draw(st.lists(st.booleans(), min_size=64, max_size=64)))
        times, delta = np.empty(2 * len(ok)), np.empty(2 * len(ok), np.int64)
        m = report._candidate_events(ok, t_in, t_out, amount, candidate, t0, width, times, delta)
        sel = [ok & ~np.isnan(t) for t in (t_in, t_out)]
        sel = [s & candidate[_buckets_ref(np.where(s, t, 0.0), t0, width, 64)] for s, t in zip(sel, (t_in, t_out))]
        want = report._by_time(np.concatenate([t_in[sel[0]], t_out[sel[1]]]),
                               np.concatenate([amount[sel[0]], -amount[sel[1]]]))
        got = report._by_time(times[:m], delta[:m])
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and np.array_equal(g, w)

    @settings(max_examples=100, deadline=None)
    @given(rows=st.lists(st.tuples(st.booleans(), _TIMES, _TIMES), max_size=40), data=st.data())
    def test_span_as_numpy(self, rows, data):
        """The span pass's latest time, approved count and finite span of approved times, batch by batch."""
        ok, t_in, t_out = (np.array(c, dtype=d) for c, d in zip(zip(*rows) if rows else [[]] * 3,
                                                                (bool, np.float64, np.float64)))
        cuts = sorted(data.draw(st.lists(st.integers(0, len(rows)), max_size=3)))
        span, approved = np.array([np.nan, np.inf, -np.inf]), 0
        for lo, hi in zip([0, *cuts], [*cuts, len(rows)]):
            approved += report._add_event_span(ok[lo:hi], t_in[lo:hi], t_out[lo:hi], span)
        times = np.concatenate([t_in, t_out])
        timed = times[~np.isnan(times)]
        want = np.max(timed) if len(timed) else np.nan
        assert span[0] == want or np.isnan(span[0]) and np.isnan(want)  # 0.0 or -0.0 at a tie, as numpy's max
        assert approved == int(ok.sum())
        ours = np.concatenate([t_in[ok], t_out[ok]])
        ours = ours[np.isfinite(ours)]
        assert (span[1], span[2]) == ((ours.min(), ours.max()) if len(ours) else (np.inf, -np.inf))

    @settings(max_examples=100, deadline=None)
    @given(times=st.lists(_TIMES.filter(lambda t: not np.isnan(t)), max_size=40), t0=st.floats(-1e6, 1e6),
           width=st.one_of(st.floats(1e-12, 1e4), st.just(1.0)), buckets=st.sampled_from([1, 64, 1 << 16]))
    def test_buckets_as_numpy(self, times, t0, width, buckets):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(report, "_PEAK_BUCKETS", buckets)
            exp = report._Exposure(None, None, read=False)
            exp._t0, exp._width = t0, width
            t = np.array(times, dtype=np.float64)
            assert np.array_equal(exp._buckets(t), _buckets_ref(t, t0, width, buckets))

    @settings(max_examples=100, deadline=None)
    @given(grid=_GRIDS, times=st.lists(_TIMES, max_size=40), data=st.data())
    def test_grid_slots_are_the_searchsorted_ones(self, grid, times, data):
        beside = [float(np.nextafter(g, d)) for g in data.draw(st.lists(st.sampled_from(grid.tolist()), max_size=8))
                  for d in (-np.inf, np.inf)]
        t = np.array(times + grid.tolist() + beside, dtype=np.float64)
        assert [report._grid_slot(grid, x) for x in t] == np.searchsorted(grid, t, side="left").tolist()


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.builds(lambda lo, span, k: np.linspace(lo, lo + span, k + 1),
                  st.floats(-1e6, 1e6), st.floats(1e-3, 1e7), st.integers(1, 200)),
        st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=40, unique=True).map(lambda e: np.sort(np.array(e))),
    ),
    st.lists(st.one_of(st.floats(-2e9, 2e9), st.sampled_from([np.nan, np.inf, -np.inf])), max_size=60),
    st.data(),
)
def test_edge_counts_are_the_searchsorted_ones(edges: np.ndarray, values: list[float], data) -> None:
    """The histogram's bin search gives numpy's answer for any increasing edges, at the edges
    themselves and just beside them too, for NaN and the infinities."""
    if not (np.diff(edges) > 0).all():
        return  # linspace over a tiny span can repeat a value: not edges the report builds
    beside = [float(np.nextafter(e, d)) for e in data.draw(st.lists(st.sampled_from(edges.tolist()), max_size=10))
              for d in (-np.inf, np.inf)]
    v = np.array(values + edges.tolist() + beside, dtype=np.float64)
    assert [report._edges_at_or_below(edges, x) for x in v] == np.searchsorted(edges, v, side="right").tolist()
