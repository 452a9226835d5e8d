"""report.html from Parquet files read batch by batch: the same bytes as from the in-memory tables.

The plots read their columns one batch at a time (`report.Batches`); what they keep (counts
per bin, exact int64 sums, exact order statistics, the exposure peak) must equal what the
whole-column numpy code computed: np.percentile, np.histogram, pyarrow's unify_dictionaries,
`metrics.exposure_curve` and `metrics.sample_step`. These tests compare with those, on
runs of shipped scenarios and on generated columns split at arbitrary places.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clearing_sim
from clearing_sim import metrics, report
from clearing_sim.outputs import dumps_json, write_table
from clearing_sim.scenario import parse_scenario

from tests.conftest import SMALL_YAML

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
RUNS = ("small", "participant_default", "intraday_windows")  # 3k, 30k and 120k purchases; 1 and 3 days


@pytest.fixture(scope="module")
def runs() -> dict:
    """The in-memory results of three runs (fast mode), by name."""
    out = {"small": clearing_sim.run(parse_scenario(SMALL_YAML, "small.yaml"), mode="fast")}
    for name in RUNS[1:]:
        out[name] = clearing_sim.run(SCENARIOS / f"{name}.yaml", mode="fast")
    return out


@pytest.fixture(scope="module")
def in_memory_html(runs) -> dict[str, str]:
    """Each run's report as `write_report` builds it, from the in-memory tables."""
    return {name: report.build_report(r.summary, r.transactions, r.settlements) for name, r in runs.items()}


@pytest.fixture(scope="module")
def folders(runs, tmp_path_factory) -> dict[str, Path]:
    """Each run's summary.json and tables written as a run folder writes them."""
    out = {}
    for name, r in runs.items():
        folder = tmp_path_factory.mktemp(name)
        write_table(folder / "transactions.parquet", r.transactions)
        write_table(folder / "settlements.parquet", r.settlements)
        (folder / "summary.json").write_text(dumps_json(r.summary), encoding="utf-8")
        out[name] = folder
    return out


class TestBothWays:
    """A run's report is the same string from its in-memory tables and from its Parquet files."""

    @pytest.mark.parametrize("name", RUNS)
    def test_parquet_files_give_the_same_html(self, name, runs, folders, in_memory_html):
        r, folder = runs[name], folders[name]
        html = report.build_report_from_parquet(r.summary, folder / "transactions.parquet",
                                                folder / "settlements.parquet")
        assert html.count("<svg") == len(report.PLOTS)
        assert html == in_memory_html[name]

    @pytest.mark.parametrize("name", RUNS)
    def test_many_row_groups_and_small_batches(self, name, runs, tmp_path, in_memory_html, monkeypatch):
        """Four row groups read in batches of two thirds of one: batches split anywhere, same bytes."""
        r = runs[name]
        row_group = r.transactions.num_rows // 4 + 1
        pq.write_table(r.transactions, tmp_path / "tx.parquet", row_group_size=row_group)
        pq.write_table(r.settlements, tmp_path / "st.parquet", row_group_size=5)
        assert pq.ParquetFile(tmp_path / "tx.parquet").metadata.num_row_groups == 4
        monkeypatch.setattr(report, "BATCH_ROWS", row_group * 2 // 3)
        html = report.build_report_from_parquet(r.summary, tmp_path / "tx.parquet", tmp_path / "st.parquet")
        assert html == in_memory_html[name]

    def test_small_in_memory_batches(self, runs, in_memory_html, monkeypatch):
        """An in-memory table sliced into batches of 1,000 rows gives the same bytes."""
        r = runs["participant_default"]
        monkeypatch.setattr(report, "BATCH_ROWS", 1000)
        assert len(r.transactions.to_batches(max_chunksize=1000)) > 10
        html = report.build_report(r.summary, r.transactions, r.settlements)
        assert html == in_memory_html["participant_default"]

    def test_report_from_folder_never_reads_a_whole_table(self, folders, in_memory_html, monkeypatch):
        def refuse(*args, **kwargs):
            raise AssertionError("a whole table was read")

        monkeypatch.setattr(pq, "read_table", refuse)
        monkeypatch.setattr(pq.ParquetFile, "read", refuse)
        assert report.report_from_folder(folders["small"]) == in_memory_html["small"]

    def test_key_figure_fallback_for_peak_exposure(self, runs, folders):
        """Without the summary's exposure peak, the key figure comes from the batches, same as from whole columns."""
        r = runs["intraday_windows"]
        summary = json.loads(dumps_json(r.summary))
        del summary["settlement"]["exposure"]["peak_minor"]
        whole = report._key_table(summary, lambda: metrics.transaction_columns(r.transactions))
        batched = report._key_table(summary, lambda: report._peak_exposure_columns(
            report.Batches.of_table(r.transactions, batch_rows=777)))
        assert batched == whole
        peak = r.summary["settlement"]["exposure"]["peak_minor"]
        assert metrics.fmt_value(peak, "fen") in batched
        folder = folders["intraday_windows"]
        assert report.build_report(summary, r.transactions, r.settlements) == report.build_report_from_parquet(
            summary, folder / "transactions.parquet", folder / "settlements.parquet")

    def test_missing_column_and_table(self, runs, tmp_path):
        r = runs["small"]
        tx = r.transactions.drop_columns(["settlement_lag_h"])
        pq.write_table(tx, tmp_path / "tx.parquet")
        html = report.build_report_from_parquet(r.summary, tmp_path / "tx.parquet", None)
        assert "settlement_lag_h missing" in html and "window_id missing" in html
        assert html == report.build_report(r.summary, tx, None)


# --- the pieces, against the whole-column numpy code ----------------------------------------


def _splits(draw, n: int) -> list[int]:
    """Sorted cut points in 0..n (repeats allowed: empty batches)."""
    return sorted(draw(st.lists(st.integers(0, n), max_size=6)))


def _cut(x: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    edges = [0, *cuts, len(x)]
    return [x[a:b] for a, b in zip(edges[:-1], edges[1:])]


def _same_float(a: float, b: float) -> bool:
    return np.float64(a).tobytes() == np.float64(b).tobytes()


# Float values without -0.0: numpy orders -0.0 and 0.0 as equal, so which of them sits
# at a rank is unspecified; latencies and lags are never -0.0.
_floats_st = st.floats(allow_nan=False, allow_infinity=False, width=64).map(lambda v: v + 0.0)
_values_st = st.one_of(
    st.lists(_floats_st, min_size=1, max_size=60),
    st.lists(st.sampled_from([0.0, 1.5, 2.0, 1e-300, 5e-324, 3.0, 1e300, -7.25]), min_size=1, max_size=60),
    st.lists(st.floats(0.0, 500.0, width=64), min_size=1, max_size=200),
)
_qs_st = st.lists(st.one_of(st.sampled_from([0, 1, 50, 90, 99, 99.9, 100]), st.floats(0.0, 100.0)),
                  min_size=1, max_size=4)


class TestOrderStatistics:
    """Exact percentiles over batches (NaN skipped) equal np.percentile's, bit for bit, however refined."""

    @pytest.mark.parametrize("bits, collect", [(20, 1 << 18), (3, 2), (1, 1)])
    @settings(max_examples=60, deadline=None)
    @given(data=st.data(), values=_values_st, qs=_qs_st)
    def test_percentiles_equal_numpy(self, bits, collect, data, values, qs):
        x = np.array(values, dtype=np.float64)
        read = np.insert(x, data.draw(st.lists(st.integers(0, len(x)), max_size=3)), np.nan)  # NaN is skipped
        parts = _cut(read, _splits(data.draw, len(read)))
        with mock.patch.object(report, "_BUCKET_BITS", bits), mock.patch.object(report, "_COLLECT_MAX", collect):
            stats = report._OrderStatistics(lambda: iter(parts))
            got = stats.percentiles(qs)
            assert stats.count == len(x)
            assert _same_float(stats.max(), x.max())
            ranks = data.draw(st.lists(st.integers(0, len(x) - 1), max_size=5))
            at = stats.values_at(ranks)
        for q, g in zip(qs, got):
            assert _same_float(g, np.percentile(x, q)), (q, g, np.percentile(x, q))
        for g, want in zip(got, np.percentile(x, qs)):
            assert _same_float(g, want)
        ordered = np.sort(x)
        assert all(_same_float(at[r], ordered[r]) for r in ranks)

    def test_sort_keys_order_and_invert(self):
        x = np.array([-np.inf, -1e300, -1.0, -5e-324, -0.0, 0.0, 5e-324, 1.0, 2.0, 1e300, np.inf])
        keys = np.array([report._sort_key(b) for b in x.view(np.int64)], dtype=np.uint64)
        assert (np.diff(keys.astype(object)) > 0).all()
        assert all(_same_float(report._key_value(int(k)), v) for k, v in zip(keys, x))

    def test_refines_beyond_one_pass(self):
        """A million close values: the selection narrows in several passes and stays exact."""
        rng = np.random.default_rng(3)
        x = 100.0 + rng.random(1_000_000) * 1e-9
        parts = _cut(x, [250_000, 500_001, 999_999])
        passes = []

        def read():
            passes.append(1)
            return iter(parts)

        with mock.patch.object(report, "_COLLECT_MAX", 1000):
            got = report._OrderStatistics(read).percentiles([50, 99, 99.9])
        assert len(passes) > 2
        assert all(_same_float(g, w) for g, w in zip(got, np.percentile(x, [50, 99, 99.9])))


def _old_coded(table: pa.Table, name: str) -> tuple[np.ndarray, list[str]]:
    """The whole-column decoding `report._coded` did before batches (the oracle)."""
    col = table.column(name)
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    col = pa.table({name: col}).unify_dictionaries().column(0)
    if not col.chunks:
        return np.empty(0, np.int64), []
    dictionary = col.chunks[0].dictionary.to_pylist()
    codes = np.concatenate([c.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
                            for c in col.chunks])
    return codes, [str(d) for d in dictionary]


_name_st = st.one_of(st.none(), st.sampled_from(["A", "B", "C", "D", "E"]))


@st.composite
def _chunked(draw) -> pa.ChunkedArray:
    """A string column, plain or dictionary-encoded with each chunk's own (shuffled, partly unused) dictionary."""
    chunks = draw(st.lists(st.lists(_name_st, max_size=8), min_size=1, max_size=5))
    if not draw(st.booleans()):
        return pa.chunked_array([pa.array(c, pa.string()) for c in chunks], pa.string())
    out = []
    for c in chunks:
        extra = draw(st.lists(st.sampled_from(["A", "B", "C", "D", "E"]), max_size=3))
        dictionary = list(dict.fromkeys(draw(st.permutations(sorted({v for v in c if v is not None} | set(extra))))))
        idx = pa.array([None if v is None else dictionary.index(v) for v in c], pa.int32())
        out.append(pa.DictionaryArray.from_arrays(idx, pa.array(dictionary, pa.string())))
    return pa.chunked_array(out, pa.dictionary(pa.int32(), pa.string()))


class TestNames:
    """Codes and names read batch by batch equal the whole column's unify_dictionaries (or dictionary_encode)."""

    @settings(max_examples=80, deadline=None)
    @given(col=_chunked(), batch_rows=st.integers(1, 10))
    def test_same_as_whole_column(self, col, batch_rows):
        table = pa.table({"x": col})
        want_codes, want_names = _old_coded(table, "x")
        if table.num_rows == 0:  # no names, as the table's Parquet file (no dictionary page) gives
            want_names = []
        got_codes, got_names = report._coded(table, "x")
        assert got_names == want_names
        assert got_codes.tolist() == want_codes.tolist()
        # Sliced into batches of a few rows, the names come in the same order.
        source = report.Batches.of_table(table, batch_rows=batch_rows)
        names = report._Names(source.dictionaries("x"))
        codes = [names.codes(b.column("x")).tolist() for b in source.batches(["x"])]
        assert names.names == want_names
        assert sum(codes, []) == want_codes.tolist()


class TestShares:
    """Histograms added up batch by batch equal np.histogram of each group's whole column."""

    @settings(max_examples=60, deadline=None)
    @given(data=st.data(), rows=st.lists(st.tuples(st.one_of(st.just(np.nan), st.floats(-5.0, 80.0)),
                                                 st.integers(-1, 2)), max_size=80),
           hi=st.floats(1.0, 70.0), clip=st.booleans(), other=st.booleans(), every_row=st.booleans())
    def test_same_as_whole_column(self, data, rows, hi, clip, other, every_row):
        values = np.array([v for v, _ in rows], dtype=np.float64)
        codes = np.array([c for _, c in rows], dtype=np.int64)
        edges = np.linspace(0.0, hi, 13)
        shares = report._Shares(edges, clip=clip)
        cuts = _splits(data.draw, len(rows))
        for v, c in zip(_cut(values, cuts), _cut(codes, cuts)):
            shares.add(v, c, None if every_row else ~np.isnan(v), 3, other=other)
        ok = np.ones(len(values), bool) if every_row else ~np.isnan(values)
        groups = shares.series(["a", "b", "c"])
        if other:
            groups.append(("other", shares.other, shares.other_size))
        else:
            assert shares.other_size == 0 and not shares.other.any()
        for (name, counts, n), k in zip(groups, (0, 1, 2, -1)):
            v = values[(codes == k) & ok]
            if clip:
                v = np.minimum(v, edges[-1])
            assert n == len(v)
            assert counts.tolist() == np.histogram(v, bins=edges)[0].tolist()


@st.composite
def _purchases(draw) -> pa.Table:
    """Purchases with tied, NaN and infinite times, zero and negative amounts, unknown issuers,
    and (mostly) the route and reversal flag that leave some approvals out of the exposure."""
    n = draw(st.integers(0, 40))
    times = st.one_of(st.sampled_from([0.0, 3600.0, 7200.0, 86400.0, 90000.5]), st.floats(0.0, 200000.0))
    t_in = draw(st.lists(st.one_of(times, st.just(np.nan), st.just(np.inf)), min_size=n, max_size=n))
    if draw(st.integers(0, 9)):  # mostly no NaN/inf response times, as in a run
        t_in = [v if np.isfinite(v) else 100.0 for v in t_in]
    t_out = draw(st.lists(st.one_of(st.just(np.nan), st.sampled_from([122400.0, 208800.0, 90000.5]), times),
                          min_size=n, max_size=n))
    # Amounts up to 10^15: sums past 2^53 take _int_sums' exact int64 path.
    amount = draw(st.lists(st.one_of(st.integers(-5, 1000), st.just(0), st.integers(0, 10**15)),
                           min_size=n, max_size=n))
    approved = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    issuer = draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n))
    idx = pa.array(issuer, pa.int32(), mask=np.array(issuer, dtype=int) < 0)
    cols = {
        "t_response_s": pa.array(t_in, pa.float64()), "t_settled_s": pa.array(t_out, pa.float64()),
        "amount_minor": pa.array(amount, pa.int64()), "approved": pa.array(approved, pa.bool_()),
        "issuer": pa.DictionaryArray.from_arrays(idx, pa.array(["X", "Y", "Z"])),
    }
    if draw(st.integers(0, 4)):  # a table not written by clearing-sim may have neither column
        route = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
        cols["route"] = pa.DictionaryArray.from_arrays(pa.array(route, pa.int8()),
                                                       pa.array(["unknown_bin", "network", "in_bank"]))
        cols["reversed"] = pa.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), pa.bool_())
    return pa.table(cols)


def _exposure_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """Whole numpy columns of `table` for metrics.exposure_curve: `exposed` counts an approval
    unless it was reversed or kept inside the bank."""
    cols = {c: table.column(c).to_numpy(zero_copy_only=False)
            for c in ("t_response_s", "t_settled_s", "amount_minor", "approved")}
    cols["exposed"] = cols["approved"].copy()
    if "route" in table.column_names:
        route = np.array(table.column("route").to_pylist())
        cols["exposed"] &= (route != "in_bank") & ~table.column("reversed").to_numpy(zero_copy_only=False)
    return cols


def _grid_of(end: float) -> np.ndarray:
    """The plot's 5-minute grid (three days when a time is infinite: the plot has no axis for it)."""
    days = max(1.0, float(np.ceil(end / report.DAY_S + 1e-9))) if np.isfinite(end) else 3.0
    return np.linspace(0.0, days * report.DAY_S, int(days * 24 * 12) + 1)


class TestExposure:
    """The exposure read in passes equals metrics.exposure_curve sampled by metrics.sample_step, and its peak."""

    @pytest.mark.parametrize("buckets", [1 << 16, 5, 1])
    @settings(max_examples=60, deadline=None)
    @given(table=_purchases(), batch_rows=st.integers(1, 9))
    def test_same_as_whole_columns(self, buckets, table, batch_rows):
        cols = _exposure_columns(table)
        times, level = metrics.exposure_curve(cols["t_response_s"], cols["t_settled_s"], cols["amount_minor"],
                                              cols["exposed"])
        with mock.patch.object(report, "_PEAK_BUCKETS", buckets):
            exp = report._Exposure(report.Batches.of_table(table, batch_rows=batch_rows), _grid_of)
        assert exp.approved == int(cols["exposed"].sum())
        if exp.approved == 0:
            assert len(times) == 0
            return
        i = int(np.argmax(level))
        assert exp.peak_level == level[i] and _same_float(exp.peak_time, times[i])
        ends = np.concatenate([cols["t_response_s"], cols["t_settled_s"][~np.isnan(cols["t_settled_s"])]])
        end = float(np.nanmax(ends)) if (~np.isnan(ends)).any() else np.nan
        assert _same_float(exp.end, end)
        grid = _grid_of(end)
        assert exp.total.tolist() == metrics.sample_step(times, level, grid).tolist()
        codes, names = report._coded(table, "issuer")
        assert [n for n, _, _ in exp.per_issuer] == names
        for k, (_, approved, sampled) in enumerate(exp.per_issuer):
            sel = codes == k
            assert approved == int((sel & cols["exposed"]).sum())
            if approved:
                tk, lk = metrics.exposure_curve(*(cols[c][sel] for c in ("t_response_s", "t_settled_s",
                                                                         "amount_minor", "exposed")))
                assert sampled.tolist() == metrics.sample_step(tk, lk, grid).tolist()

    def test_peak_search_holds_few_events(self):
        """200,000 purchases settling at one time: the peak search keeps a few hundred times, not all events."""
        rng = np.random.default_rng(5)
        n = 200_000
        t_in = np.sort(rng.uniform(0.0, 86400.0, n))
        table = pa.table({"t_response_s": t_in, "t_settled_s": np.full(n, 122400.0),
                          "amount_minor": rng.integers(1, 10**6, n), "approved": rng.random(n) < 0.99})
        exp = report._Exposure(report.Batches.of_table(table, batch_rows=30_000), None)
        times, level = metrics.exposure_curve(t_in, table.column("t_settled_s").to_numpy(),
                                              table.column("amount_minor").to_numpy(),
                                              table.column("approved").to_numpy(zero_copy_only=False))
        i = int(np.argmax(level))
        assert (exp.peak_time, exp.peak_level) == (times[i], level[i])
        assert 0 < exp.held_times < 500

    @pytest.mark.parametrize("t_in, amount, want", [
        ([1.0, np.nan], [5, 0], (1.0, 5)),  # a tie: the first time at the peak, not the NaN after it
        ([1.0, np.nan], [5, 2], (np.nan, 7)),  # NaN sorts last, a step of its own
        ([np.nan, np.nan], [3, -1], (np.nan, 3)),
    ])
    def test_response_time_nan(self, t_in, amount, want):
        n = len(t_in)
        table = pa.table({"t_response_s": pa.array(t_in, pa.float64()), "t_settled_s": np.full(n, np.nan),
                          "amount_minor": pa.array(amount, pa.int64()), "approved": np.ones(n, bool)})
        times, level = metrics.exposure_curve(np.array(t_in), np.full(n, np.nan), np.array(amount), np.ones(n, bool))
        i = int(np.argmax(level))
        assert _same_float(times[i], want[0]) and level[i] == want[1]
        exp = report._Exposure(report.Batches.of_table(table, batch_rows=1), None)
        assert _same_float(exp.peak_time, want[0]) and exp.peak_level == want[1]

    def test_int_sums_exact_beyond_float(self):
        """Sums past 2^53 stay exact (float64 bincount would round them)."""
        w = np.array([2**60, 1, 1, -(2**60), 3], dtype=np.int64)
        assert report._int_sums(np.array([0, 0, 1, 1, 0]), w, 2).tolist() == [2**60 + 4, 1 - 2**60]
