"""`report.html`: one self-contained page per run, with inline SVG plots.

Owns: the plots of a run (transactions per hour, authorisation latency, authorisation
outcomes, settlement lag, net positions per window, exposure over the days), the
page around them, and the SVG/HTML helpers `compare.html` reuses. The page loads
nothing: no JavaScript, no fonts, no images from anywhere (a Content-Security-Policy
of `default-src 'none'` says so to the browser), and the same run gives the same
bytes (matplotlib's Agg-free SVG backend with a fixed hash salt per figure, text kept
as text, no dates). Must never run the model; a table column or summary key that a
run does not have leaves its plot or cell out ("-"), it never fails the run.

Also owns reading the tables for the plots in bounded memory: every plot reads its
columns batch by batch (`Batches`: an in-memory table's slices, or a Parquet file's
rows `BATCH_ROWS` at a time, decoded one batch ahead by a helper thread) and keeps
only what it draws: counts per bin, exact int64 sums per time, and exact order
statistics (`_OrderStatistics`) for the percentiles and bin edges. A plot's reading
(`Plot.read`) asks for its passes one at a time, and `_scan` runs the readings of a
table side by side: each round reads the columns of every plot's next pass once, so
the transactions are read three times, not once or more per plot. One code path for
both sources, so a run's report is the same bytes from its in-memory tables and from
its Parquet files, and the same as the whole-column numpy computation it replaces
(np.histogram counts, np.percentile's linear interpolation, `metrics.exposure_curve`
and `metrics.sample_step`). Must never hold a whole column of the transactions table.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numba
import numpy as np

from clearing_sim import metrics

DAY_S = 86400.0
HOUR_S = 3600.0
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_RC = {
    "svg.fonttype": "none",  # text stays text: small files, no font paths, same bytes
    "font.family": ["DejaVu Sans", "sans-serif"],
    "font.size": 9.0,
    "axes.titlesize": 11.0,
    "axes.titleweight": "bold",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "path.simplify": True,
}

_STYLE = """
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #1b1b1b; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.2em 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 0.85em; max-width: 900px; }
p.note { color: #777; font-style: italic; }
"""


# --- SVG ----------------------------------------------------------------------------------


def new_figure(width_in: float = 9.0, height_in: float = 3.6) -> Any:
    """A matplotlib Figure not tied to pyplot (no global state, safe in any process)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def figure_svg(build: Callable[[Any], None], salt: str, width_in: float = 9.0,
               height_in: float = 3.6) -> str:
    """Inline `<svg>` markup of the figure `build(fig)` draws; same inputs, same bytes.

    `salt` makes the SVG's element ids unique to this figure on a page with several.
    """
    import matplotlib

    with matplotlib.rc_context({**_RC, "svg.hashsalt": f"clearing-sim:{salt}"}):
        fig = new_figure(width_in, height_in)
        build(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    # matplotlib names groups figure_1, axes_1, ... in every figure: prefix every id (and
    # every reference to one) so ids stay unique on a page with several figures.
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", salt)
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', svg)
    return svg.strip()


def money_scale(max_abs_minor: float) -> tuple[float, str]:
    """Divisor from fen and axis unit for amounts up to `max_abs_minor` fen."""
    yuan = max_abs_minor / 100.0
    for div, name in ((1e9, "CNY billion"), (1e6, "CNY million"), (1e3, "CNY thousand")):
        if yuan >= div:
            return 100.0 * div, name
    return 100.0, "CNY"


def _colours(names: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"] if len(names) <= 10 else matplotlib.colormaps["tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _legend(ax: Any, title: str) -> None:
    """The legend outside the axes on the right, so it never hides data (none for an empty plot)."""
    handles, labels = ax.get_legend_handles_labels()
    if not labels:
        return  # a day without purchases: matplotlib would warn "No artists with labels" on stderr
    if len(labels) <= _LEGEND_ROWS:
        ax.legend(title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        return
    if len(labels) > _LEGEND_MAX:
        # A network of hundreds of participants: a legend of every one took most of the
        # report's time (20 s of 56 s at 1,000) in dozens of columns wider than the figure,
        # whose axes then collapsed (matplotlib warned on stderr). The first ones, and a count.
        from matplotlib.patches import Patch

        shown = _LEGEND_MAX - 1
        handles = [*handles[:shown], Patch(fill=False, linewidth=0)]
        labels = [*labels[:shown], f"and {len(labels) - shown:,} more"]
    # Many participants (a national network's 46): columns of smaller text, so the legend
    # fits the figure's height and the layout engine does not collapse the axes.
    ax.legend(handles, labels, title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              ncols=-(-len(labels) // _LEGEND_ROWS), fontsize="x-small", title_fontsize="small")


_LEGEND_ROWS = 16  # entries per legend column
_LEGEND_MAX = 3 * _LEGEND_ROWS  # entries at most: three columns (a national network's 46 fit)


# --- tables read batch by batch ----------------------------------------------------------

# Rows per batch a plot reads at a time (from a Parquet file, or sliced from an
# in-memory table): a quarter of a streamed run's row group of about 10^6 rows. With
# 2^18 rows a pass over five columns holds about 50 MB of numpy temporaries; larger
# batches were slower (caches) as well as bigger, smaller ones slower (per-batch work).
BATCH_ROWS = 1 << 18


class Batches:
    """One table as record batches in row order, read again for every pass over it.

    The plots never hold a whole column: they add up counts and sums batch by batch
    (`_Names`, `_Shares`, `_OrderStatistics`, `_Exposure`), so what they draw does not
    depend on where the batches split the rows. `of_table` slices an in-memory pyarrow
    table, `of_parquet` reads a Parquet file; both read only the columns a pass asks for.
    """

    def __init__(self, schema: Any, read: Callable[[list[str]], Iterable[Any]],
                 dictionaries: Callable[[str], list[Any]] | None = None) -> None:
        self.schema = schema
        self._read = read
        self._dictionaries = dictionaries or (lambda name: [])

    @classmethod
    def of_table(cls, table: Any, batch_rows: int | None = None) -> Batches:
        """The batches of an in-memory pyarrow table: zero-copy slices of at most
        `batch_rows` (default `BATCH_ROWS`) rows."""
        import pyarrow as pa

        def read(columns: list[str]) -> Iterable[Any]:
            return table.select(columns).to_batches(max_chunksize=batch_rows or BATCH_ROWS)

        def dictionaries(name: str) -> list[Any]:
            # Every chunk's dictionary, empty chunks too: pyarrow's unify_dictionaries of
            # the whole column sees them all, while to_batches() skips empty chunks. None
            # of a table without rows: its Parquet file has no dictionary page to read them
            # from, and the report of either must be the same.
            col = table.column(name)
            if not pa.types.is_dictionary(col.type) or table.num_rows == 0:
                return []
            return [c.dictionary for c in col.chunks]

        return cls(table.schema, read, dictionaries)

    @classmethod
    def of_parquet(cls, path: Path | str, batch_rows: int | None = None) -> Batches:
        """The batches of a Parquet file, `batch_rows` (default `BATCH_ROWS`) rows at a
        time, each decoded by a helper thread while the caller works on the one before
        (`_read_ahead`); raises OSError if unreadable, pyarrow's ArrowInvalid if not Parquet.

        Memory: about three batches of the columns a pass reads (the caller's, the one
        waiting, the one being decoded), whatever the file's size (measured for a report:
        pyarrow's pool peaks at 92-96 MiB for 1, 10 and 29 row groups of 2^20 rows).
        """
        import pyarrow.parquet as pq

        path = Path(path)

        def decode(columns: list[str]) -> Iterator[Any]:
            # pre_buffer would read every row group's column chunks ahead: memory growing
            # with the file. One decoding thread: the caller's thread has the other core.
            with pq.ParquetFile(path, pre_buffer=False) as f:
                yield from f.iter_batches(batch_size=batch_rows or BATCH_ROWS, columns=columns,
                                          use_threads=False)

        return cls(pq.read_schema(path), lambda columns: _read_ahead(lambda: decode(columns)))

    def has(self, name: str) -> bool:
        return name in self.schema.names

    def is_dictionary(self, name: str) -> bool:
        import pyarrow as pa

        return pa.types.is_dictionary(self.schema.field(name).type)

    def dictionaries(self, name: str) -> list[Any]:
        """Dictionaries of the column known before reading it (an in-memory table's chunks)."""
        return self._dictionaries(name)

    def batches(self, columns: Sequence[str]) -> Iterable[Any]:
        """Record batches of these columns, in row order."""
        return self._read(list(columns))


def _read_ahead(batches: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    """The items of `batches()`, produced by a helper thread (`pipeline.Prefetch`) ahead of the caller.

    Parquet decoding releases the GIL, so the next batch is decoded on the other core
    while the caller's numpy work runs on this one. At most three batches are alive (the
    caller's, the one waiting, the one being decoded). An exception in the helper is
    raised here, in the caller's thread; a caller that stops early (closes this
    generator) stops the helper, which closes `batches()`.
    """
    from clearing_sim.pipeline import Prefetch

    with Prefetch(batches(), depth=2, name="report-read-ahead") as items:
        yield from items


def _need_columns(table: Batches | None, names: Sequence[str], plain: Sequence[str] = ()) -> Batches:
    """`table`, or _Missing naming the first of `names` it lacks; a `plain` column must not be
    dictionary-encoded (its values are read as numbers)."""
    for name in names:
        if table is None or not table.has(name) or (name in plain and table.is_dictionary(name)):
            raise _Missing(name)
    assert table is not None
    return table


def _floats(batch: Any, name: str) -> np.ndarray:
    """A column of a batch as float64, NaN for null.

    Values are for drawing, so an integer beyond 2^53 (fen of money above about 90
    trillion yuan, which a scenario's amounts may reach) is rounded to the nearest float
    rather than refused, as pyarrow's safe cast would.
    """
    import pyarrow as pa

    return batch.column(name).cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)  # null -> NaN


def _values(batch: Any, name: str) -> np.ndarray:
    """A column of a batch as numpy values (objects, with None, when it has nulls)."""
    col = batch.column(name)
    return col.to_numpy(zero_copy_only=False) if col.null_count == 0 else \
        np.asarray(col.to_pylist(), dtype=object)


class _Names:
    """Codes of a dictionary (or string) column, batch by batch, and the names they stand for.

    A code is -1 for null. The names come in the order pyarrow's `unify_dictionaries`
    gives the whole column: the dictionaries given first (an in-memory table's chunks),
    then each batch's dictionary, each adding its new values in its order. A string
    column is dictionary-encoded batch by batch, so its names come in the order they
    first appear, as `pyarrow.compute.dictionary_encode` of the whole column gives them.
    """

    def __init__(self, dictionaries: Iterable[Any] = ()) -> None:
        self.names: list[str] = []
        self._code: dict[Any, int] = {}
        for d in dictionaries:
            self._remap(d)

    def _remap(self, dictionary: Any) -> np.ndarray:
        out = np.empty(len(dictionary), np.int64)
        for i, v in enumerate(dictionary.to_pylist()):
            code = self._code.get(v)
            if code is None:
                code = self._code[v] = len(self.names)
                self.names.append(str(v))
            out[i] = code
        return out

    def codes(self, array: Any) -> np.ndarray:
        """The codes (int64, -1 for null) of one batch's column (read-only)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not pa.types.is_dictionary(array.type):
            array = pc.dictionary_encode(array)
        # Arrow's take (null where the index is null), then -1 for null: several times
        # faster than numpy's indexing and masking for a batch of 2^18 rows.
        codes = pa.array(self._remap(array.dictionary), pa.int64()).take(array.indices)
        if codes.null_count:
            codes = codes.fill_null(-1)
        return codes.to_numpy()


def _coded(table: Any, name: str) -> tuple[np.ndarray, list[str]] | None:
    """A dictionary (or string) column of an in-memory table as (codes with -1 for null, names)."""
    if table is None or name not in table.column_names:
        return None
    source = Batches.of_table(table)
    names = _Names(source.dictionaries(name))
    parts = [names.codes(b.column(name)) for b in source.batches([name])]
    return (np.concatenate(parts) if parts else np.empty(0, np.int64)), names.names


# --- readings side by side -------------------------------------------------------------------


class _Pass(NamedTuple):
    """One pass over a table that a reading asks for: the columns it reads, and what
    takes each record batch (which may hold other readings' columns too)."""

    columns: tuple[str, ...]
    add: Callable[[Any], None]


# A reading gathers what one plot draws: a generator that yields the passes it needs, one
# at a time (a pass may depend on what the one before found), and returns what it read.
Reading = Generator[_Pass, None, Any]


class _Outcome(NamedTuple):
    """What a reading returned, or the exception it raised (kept for its plot)."""

    value: Any
    error: Exception | None

    def get(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _scan(table: Batches | None, readings: Sequence[Reading]) -> list[_Outcome]:
    """Run `readings` over `table` side by side; their outcomes, in the same order.

    The table is read in rounds: each round reads the columns of every unfinished
    reading's next pass together, once, and hands every batch to each of those passes.
    So the table is read as often as the reading with the most passes asks, and each
    column once per round, not once per plot. A reading that raises (a missing column,
    no values, anything) stops and keeps its exception; a table that cannot be read
    raises here. Each pass sees the rows it would see read alone, in the same order
    (batches of an in-memory table may split elsewhere: nothing read depends on where).
    """
    outcomes: list[_Outcome | None] = [None] * len(readings)
    passes: dict[int, _Pass] = {}

    def step(i: int) -> None:
        try:
            passes[i] = next(readings[i])
        except StopIteration as done:
            outcomes[i] = _Outcome(done.value, None)
        except Exception as exc:  # noqa: BLE001 - its plot raises it again (or notes a _Missing)
            outcomes[i] = _Outcome(None, exc)

    for i in range(len(readings)):
        step(i)
    while passes:
        assert table is not None, "a reading asked for a pass over no table"
        columns = list(dict.fromkeys(c for p in passes.values() for c in p.columns))
        for batch in table.batches(columns):
            for i, p in list(passes.items()):
                try:
                    p.add(batch)
                except Exception as exc:  # noqa: BLE001 - as in step()
                    outcomes[i] = _Outcome(None, exc)
                    del passes[i]
                    readings[i].close()
        for i in list(passes):
            del passes[i]
            step(i)
    assert all(o is not None for o in outcomes)
    return outcomes  # type: ignore[return-value]


def _read_alone(table: Batches | None, reading: Reading) -> Any:
    """What one reading returns, read by itself (raises what it raises)."""
    return _scan(table, [reading])[0].get()


def _passes_of(steps: Generator[Callable[[np.ndarray], None], None, Any], name: str) -> Reading:
    """The passes over float column `name` (its values; NaN and null are skipped) that `steps` asks for
    (`_OrderStatistics.select`); returns what `steps` returns."""
    try:
        while True:
            sink = next(steps)
            yield _Pass((name,), lambda b, sink=sink: sink(_floats(b, name)))
    except StopIteration as done:
        return done.value


# --- exact order statistics over batches -----------------------------------------------------

_MASK64 = (1 << 64) - 1
_SIGN64 = 1 << 63
_SIGN64_I64 = np.int64(-_SIGN64)  # the sign bit alone, as int64
_ABS64 = np.int64(_SIGN64 - 1)  # every bit but the sign
_INF_BITS = np.int64(0x7FF0000000000000)  # infinity's bits without the sign: larger ones are NaN
_BUCKET_BITS = 20  # 2^20 counters (8 MB) per refinement pass
# Values of one rank's bucket read into memory to sort (8 MB of keys): more than the
# largest bucket a wanted rank falls in at 10^8 purchases (latency's median: ~3*10^5),
# so the percentiles take two passes there too, and the plots three rounds.
_COLLECT_MAX = 1 << 20


@numba.njit(cache=True, nogil=True, inline="always")
def _sort_key(bits):  # pragma: no cover - compiled
    """The uint64 key, in the order of the float64 values, of a float64's bits (int64):
    flip a negative value's bits, set the sign bit of the rest."""
    return np.uint64(((bits >> 63) | _SIGN64_I64) ^ bits)


@numba.njit(cache=True, nogil=True)
def _count_keys(bits, lo, hi, shift, counts):  # pragma: no cover - compiled
    """Count the values (float64 bits as int64; NaN skipped) whose key is in lo..hi in
    `counts[(key - lo) >> shift]`; returns how many values are not NaN."""
    n = 0
    for b in bits:
        if (b & _ABS64) > _INF_BITS:  # NaN
            continue
        n += 1
        k = _sort_key(b)
        if lo <= k <= hi:
            counts[(k - lo) >> shift] += 1
    return n


@numba.njit(cache=True, nogil=True)
def _collect_keys(bits, lo, hi, out, filled):  # pragma: no cover - compiled
    """Append to `out[filled:]` the keys in lo..hi of the values (float64 bits as int64;
    NaN skipped); returns how many keys `out` would hold with room for all of them."""
    for b in bits:
        if (b & _ABS64) <= _INF_BITS:
            k = _sort_key(b)
            if lo <= k <= hi:
                if filled < len(out):
                    out[filled] = k
                filled += 1
    return filled


def _bits(x: np.ndarray) -> np.ndarray:
    """The bits (int64) of float64 values."""
    return np.ascontiguousarray(x, dtype=np.float64).view(np.int64)


def _key_value(key: int) -> np.float64:
    """The float64 whose sort key is `key` (inverse of `_sort_key`)."""
    bits = key ^ _SIGN64 if key & _SIGN64 else ~key & _MASK64
    return np.array([bits], dtype=np.uint64).view(np.float64)[0]


# What `_OrderStatistics.select` yields for each pass it needs: it takes the values batch by batch.
_Sink = Callable[[np.ndarray], None]


class _OrderStatistics:
    """Exact values at given ranks (and numpy's percentiles) of a float column read in batches.

    The first pass (`add`, batch by batch) counts the values and histograms the top
    `_BUCKET_BITS` bits of their order-preserving integer keys; each later pass narrows
    every wanted rank's key range by `_BUCKET_BITS` bits until at most `_COLLECT_MAX`
    values remain in it, which one more pass reads and sorts. Memory: the counters, and
    those few values per rank. `select` asks for the later passes one at a time (so a
    reading can run them beside other readings' passes); given `read()`, which yields the
    values (float64; NaN is skipped) batch by batch as often as asked, the first pass runs at
    once and `values_at`, `max` and `percentiles` run the later ones themselves.
    """

    def __init__(self, read: Callable[[], Iterable[np.ndarray]] | None = None) -> None:
        self._read = read
        self.count = 0
        self._top = np.zeros(1 << _BUCKET_BITS, np.int64)
        self._known: dict[int, np.float64] = {}
        if read is not None:
            for x in read():
                self.add(x)

    def add(self, x: np.ndarray) -> None:
        """Count one batch of values (float64; NaN skipped) in the first pass."""
        self.count += _count_keys(_bits(x), np.uint64(0), np.uint64(_MASK64), np.uint64(64 - _BUCKET_BITS), self._top)

    def select(self, ranks: Iterable[int] = (), qs: Sequence[float] = ()) -> Generator[
            _Sink, None, tuple[dict[int, np.float64], list[np.float64]]]:
        """The passes that find the value at each 0-based rank of the sorted values and
        `np.percentile(values, q)` for each q: yields a sink for each pass over the values;
        returns ({rank: value}, [percentile per q]). Raises IndexError for a rank outside
        0..count-1 (a q needs at least one value)."""
        plans = [_percentile_plan(self.count, q) for q in qs]
        ranks = [int(r) for r in ranks]
        wanted = sorted(set(ranks + [i for p in plans for i in p[:2]]) - set(self._known))
        if any(r < 0 or r >= self.count for r in wanted):
            raise IndexError(f"rank outside 0..{self.count - 1}")
        # Each open rank: [lo, hi] key range holding it, its rank among the values in
        # that range, and how many values the range holds.
        cum = np.cumsum(self._top)
        shift = 64 - _BUCKET_BITS
        open_: dict[int, list[int]] = {}
        for r in wanted:
            b = int(np.searchsorted(cum, r, side="right"))
            below = int(cum[b - 1]) if b else 0
            open_[r] = [b << shift, ((b + 1) << shift) - 1, r - below, int(self._top[b])]
        for _ in range(64 // _BUCKET_BITS + 2):  # each pass settles _BUCKET_BITS more bits
            for r, (lo, hi, _, _) in list(open_.items()):
                if lo == hi:  # one key left: every value in the range is this one
                    self._known[r] = _key_value(lo)
                    del open_[r]
            if not open_:
                break
            ranges = sorted({(lo, hi, n) for lo, hi, _, n in open_.values()})
            steps = {(lo, hi): max(0, (hi - lo).bit_length() - _BUCKET_BITS) for lo, hi, _ in ranges}
            # A range's values are collected when few (its count is known: `n`), else
            # counted in 2^_BUCKET_BITS sub-ranges.
            collected = {(lo, hi): np.empty(n, np.uint64) for lo, hi, n in ranges if n <= _COLLECT_MAX}
            filled = dict.fromkeys(collected, 0)
            counted = {(lo, hi): np.zeros(((hi - lo) >> steps[(lo, hi)]) + 1, np.int64)
                       for lo, hi, n in ranges if n > _COLLECT_MAX}

            def sink(x: np.ndarray, collected=collected, filled=filled, counted=counted, steps=steps) -> None:
                bits = _bits(x)
                for lo, hi in collected:
                    filled[(lo, hi)] = _collect_keys(bits, np.uint64(lo), np.uint64(hi), collected[(lo, hi)],
                                                     filled[(lo, hi)])
                for lo, hi in counted:
                    _count_keys(bits, np.uint64(lo), np.uint64(hi), np.uint64(steps[(lo, hi)]), counted[(lo, hi)])

            yield sink
            for r, (lo, hi, k, n) in list(open_.items()):
                if n <= _COLLECT_MAX:
                    assert filled[(lo, hi)] == n, "a pass read other values than the one before"
                    keys = np.sort(collected[(lo, hi)])
                    self._known[r] = _key_value(int(keys[k]))
                    del open_[r]
                    continue
                s = steps[(lo, hi)]
                counts = counted[(lo, hi)]
                cum = np.cumsum(counts)
                b = int(np.searchsorted(cum, k, side="right"))
                below = int(cum[b - 1]) if b else 0
                open_[r] = [lo + (b << s), min(hi, lo + ((b + 1) << s) - 1), k - below, int(counts[b])]
        assert not open_, "order statistics did not converge"
        known = self._known
        return {r: known[r] for r in ranks}, [_lerp(known[i], known[j], gamma) for i, j, gamma in plans]

    def _run(self, steps: Generator[_Sink, None, Any]) -> Any:
        """What `steps` returns, each pass reading the values with `read()`."""
        assert self._read is not None, "no read() to run the passes with"
        try:
            while True:
                sink = next(steps)
                for x in self._read():
                    sink(x)
        except StopIteration as done:
            return done.value

    def values_at(self, ranks: Iterable[int]) -> dict[int, np.float64]:
        """The value at each 0-based rank of the sorted values; raises IndexError outside 0..count-1."""
        return self._run(self.select(ranks))[0]

    def max(self) -> np.float64:
        return self.values_at([self.count - 1])[self.count - 1]

    def percentiles(self, qs: Sequence[float]) -> list[np.float64]:
        """`np.percentile(values, q)` (method "linear") for each q, to the last bit."""
        return self._run(self.select((), qs))[1]


def _percentile_plan(n: int, q: float) -> tuple[int, int, np.float64]:
    """Ranks below and above numpy's virtual index for percentile `q` of `n` values, and the weight.

    The steps of numpy's `_quantile` for method "linear": virtual index (n-1)*q/100,
    floor and floor+1, both the last rank when the index reaches it, the weight
    measured from the (possibly replaced) lower rank.
    """
    virtual = (n - 1) * np.true_divide(np.float64(q), 100)
    prev = np.floor(virtual)
    nxt = prev + 1
    if virtual >= n - 1:
        prev = nxt = np.float64(-1)
    prev_i, next_i = np.intp(prev), np.intp(nxt)
    gamma = np.float64(virtual - prev_i)
    return int(prev_i) % n, int(next_i) % n, gamma


def _lerp(a: np.float64, b: np.float64, t: np.float64) -> np.float64:
    """numpy's `_lerp`: a + (b-a)*t, or b - (b-a)*(1-t) when t >= 0.5 (symmetric rounding)."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


# --- the plots ---------------------------------------------------------------------------


class _Missing(Exception):
    """A plot cannot be drawn from this run's tables (a column is missing)."""


class Plot(NamedTuple):
    """One plot of the page: its anchor and heading, the table it reads, and how.

    `read(table, summary)` is the plot's reading (`Reading`: it raises _Missing for a
    column the table lacks) and `draw(fig, what_it_read, summary)` draws into a
    matplotlib figure and returns the caption. `_build` runs every plot's reading of a
    table side by side (`_scan`); calling a plot, `plot(fig, table, summary)`, reads the
    table for it alone and draws.
    """

    key: str
    title: str
    table: str
    read: Callable[[Batches | None, dict], Reading]
    draw: Callable[[Any, Any, dict], str]

    def __call__(self, fig: Any, table: Batches | None, summary: dict) -> str:
        return self.draw(fig, _read_alone(table, self.read(table, summary)), summary)


# Tick spacings of a time axis longer than two days, in days: the first that gives at most
# _MAX_TIME_TICKS steps between ticks (a run settled years out, behind a long list of holidays, had a
# tick per day: 15,000 labels took four minutes to lay out).
_TICK_DAYS = (1, 2, 7, 14, 28, 56, 91, 182, 364)
_MAX_TIME_TICKS = 16


def _time_axis(ax: Any, days: float, start_date: str | None) -> None:
    """Hours since 00:00 of day 1 on x: a tick per 3 hours on a one-day axis, per 6 on a
    two-day one, then per day, week, ... so that there are at most _MAX_TIME_TICKS steps."""
    if days <= 1.01:
        step = 3
    elif days <= 2.01:
        step = 6
    else:
        fits = [d for d in _TICK_DAYS if days / d <= _MAX_TIME_TICKS]
        step = 24 * (fits[0] if fits else int(np.ceil(days / _MAX_TIME_TICKS)))
    ticks = np.arange(0, days * 24 + 0.01, step)
    ax.set_xticks(ticks)
    ax.set_xlim(0, days * 24)
    where = f" of {start_date}" if start_date else ""
    ax.set_xlabel(f"simulated time (hours since 00:00{where}, day 1)")


class _Shares:
    """Histograms (counts per bin, and how many values) of one value per row, by a row's group.

    `add` takes one batch: row i counts for group `codes[i]` (0..groups-1, and -1 for
    the `other` group when asked for) when `ok[i]` (every row when `ok` is None); with
    `clip`, values above the last edge count in the last bin. Counts are np.histogram's
    of each group's values, added up: exact integers, so the shares drawn from them do
    not depend on how the rows were split into batches. With finite, strictly
    increasing edges, each value's bin comes from comparing it with the edges, as
    np.histogram's does ([left, right), the last bin [left, right]; NaN and values
    outside the edges in none), in one compiled loop over the rows (`_add_shares`); other edges go to
    np.histogram group by group.
    """

    def __init__(self, edges: np.ndarray, clip: bool) -> None:
        self.edges = edges
        self.clip = clip
        self._bins = len(edges) - 1
        self._counts = np.zeros((1, self._bins), np.int64)  # row 0: the other group; row k + 1: group k
        self._sizes = np.zeros(1, np.int64)
        self._search = bool(np.isfinite(edges).all() and (np.diff(edges) > 0).all())

    def _groups(self, groups: int) -> None:
        self._counts = _grow_rows(self._counts, groups + 1)
        self._sizes = _grow_rows(self._sizes, groups + 1)

    def _hist(self, v: np.ndarray) -> np.ndarray:
        if self.clip:
            v = np.minimum(v, self.edges[-1])
        return np.histogram(v, bins=self.edges)[0]

    def add(self, values: np.ndarray, codes: np.ndarray, ok: np.ndarray | None, groups: int,
            other: bool) -> None:
        self._groups(groups)
        if ok is None:
            ok = np.ones(len(values), bool)
        if not self._search:
            for k in range(-1 if other else 0, groups):
                v = values[(codes == k) & ok] if k >= 0 else values[(codes < 0) & ok]
                self._counts[k + 1] += self._hist(v)
                self._sizes[k + 1] += len(v)
            return
        _add_shares(self.edges, np.ascontiguousarray(values, dtype=np.float64), codes, ok, self.clip, other,
                    self._counts, self._sizes)

    def series(self, names: Sequence[str]) -> list[tuple[str, np.ndarray, int]]:
        self._groups(len(names))
        return [(name, self._counts[k + 1], int(self._sizes[k + 1])) for k, name in enumerate(names)]

    @property
    def other(self) -> np.ndarray:
        return self._counts[0]

    @property
    def other_size(self) -> int:
        return int(self._sizes[0])


@numba.njit(cache=True, nogil=True, inline="always")
def _edges_at_or_below(edges, x):  # pragma: no cover - compiled
    """`np.searchsorted(edges, x, side="right")` for finite, strictly increasing edges: how
    many edges are at or below `x` (NaN: all of them). A guess from the edges' span
    corrected by comparisons, so exact for any such edges and a step or two for even ones
    (hours, `np.linspace`), where a binary search takes a cache miss at every step."""
    n = len(edges)
    e0, e_last = edges[0], edges[n - 1]
    if x < e0:
        return 0
    if not x < e_last:  # at or past the last edge, or NaN
        return n if (x >= e_last or x != x) else 0
    # e0 <= x < e_last: x in [edges[g], edges[g + 1]) for one g in 0..n-2
    g = min(int((x - e0) * ((n - 1) / (e_last - e0))), n - 2)
    while edges[g] > x:
        g -= 1
    while edges[g + 1] <= x:
        g += 1
    return g + 1


@numba.njit(cache=True, nogil=True)
def _add_shares(edges, values, codes, ok, clip, other, counts, sizes):  # pragma: no cover - compiled
    """One batch of `_Shares.add` for finite, strictly increasing edges, added in place:
    each row with `ok` counts in `sizes[codes + 1]` (code -1, row 0, only with `other`)
    and in its value's bin of `counts[codes + 1]`: [left, right), the last bin [left,
    right], none for NaN and values outside the edges, as np.histogram; with `clip`,
    values above the last edge count in the last bin."""
    bins = len(edges) - 1
    last = edges[bins]
    for i in range(len(values)):
        if not ok[i]:
            continue
        row = codes[i] + 1
        if row < 1 and not other:
            continue
        sizes[row] += 1
        x = values[i]
        if clip and x > last:
            x = last
        at = _edges_at_or_below(edges, x)  # 1 + the bin of x; bins + 1 at or past the last edge
        if at > bins and x == last:
            at = bins
        if 1 <= at <= bins:
            counts[row, at - 1] += 1


def _share_stairs(ax: Any, series: list[tuple[str, np.ndarray, int]], edges: np.ndarray, colours: dict) -> None:
    """One step line per non-empty series (name, counts per bin, values): the share (%) in each bin."""
    for name, counts, n in series:
        if n == 0:
            continue
        ax.stairs(100.0 * counts / n, edges, label=f"{name} ({n:,})",
                  color=colours.get(name, "0.4"), linewidth=1.4)


def _mark_percentiles(ax: Any, marks: Sequence[np.float64], unit: str) -> None:
    """Dashed lines at the p50 and p99 (`marks`) of all values, labelled in `unit`."""
    for q, v in zip(("p50", "p99"), marks):
        ax.axvline(v, color="0.3", linestyle="--", linewidth=0.8)
        ax.annotate(f"all {q} {v:.1f} {unit}", (v, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -10), textcoords="offset points", fontsize=8, color="0.25")


class _Hours(NamedTuple):
    """Purchases per hour: how many rows, over how many days, hour edges, counts per acquirer."""

    rows: int
    days: int
    edges: np.ndarray
    per_acquirer: list[tuple[str, np.ndarray, int]]


def _read_transactions_per_hour(tx: Batches | None, summary: dict) -> Reading:
    tx = _need_columns(tx, ("t_arrival_s", "acquirer"))
    n = 0
    maxima: list[np.float64] = []
    acq = _Names(tx.dictionaries("acquirer"))
    # The axis spans the run's days, or more if a purchase arrives after them (the latest
    # arrival is known only after a pass): count per hour of the run's days on the way,
    # and only if a purchase arrived later, count again with the longer axis.
    run_days = summary.get("days")
    guess = max(1, run_days or 1) if run_days is None or type(run_days) is int else None
    hours = None if guess is None else _Shares(_hour_edges(guess), clip=False)

    def count(b: Any) -> None:
        nonlocal n
        t = _floats(b, "t_arrival_s")
        n += len(t)
        if len(t):
            maxima.append(t.max())
        if hours is not None:
            tally(b, t)

    def tally(b: Any, t: np.ndarray) -> None:  # np.histogram of each acquirer's arrival times
        hours.add(t, acq.codes(b.column("acquirer")), None, len(acq.names), other=False)

    yield _Pass(("t_arrival_s", "acquirer"), count)
    days = max(1, int(summary.get("days") or 1), int(np.ceil(np.max(maxima) / DAY_S)) if n else 1)
    if hours is None or days != guess:
        acq = _Names(tx.dictionaries("acquirer"))
        hours = _Shares(_hour_edges(days), clip=False)
        yield _Pass(("t_arrival_s", "acquirer"), lambda b: tally(b, _floats(b, "t_arrival_s")))
    return _Hours(n, days, hours.edges, hours.series(acq.names))


def _hour_edges(days: int) -> np.ndarray:
    """Edges of the hours of `days` days (s)."""
    return np.arange(0, days * 24 + 1) * HOUR_S


def _draw_transactions_per_hour(fig: Any, hours: _Hours, summary: dict) -> str:
    from matplotlib.collections import PolyCollection

    n, days, edges = hours.rows, hours.days, hours.edges
    names = [name for name, _, _ in hours.per_acquirer]
    ax = fig.add_subplot()
    colours = _colours(summary.get("participants") or names)
    # Each acquirer's bars are one collection of rectangles (0.9 h wide, stacked on the
    # acquirers before it): one artist per acquirer, not one per bar and hour, which with
    # a national network's 40 acquirers over 24 hours drew 960 patches, a second of work.
    left = edges[:-1] / HOUR_S + 0.05
    bottom = np.zeros(len(edges) - 1)
    for name, counts, _ in hours.per_acquirer:
        top = bottom + counts
        keep = counts > 0
        x0, y0, y1 = left[keep], bottom[keep], top[keep]
        verts = np.stack([np.stack([x0, y0], 1), np.stack([x0 + 0.9, y0], 1),
                          np.stack([x0 + 0.9, y1], 1), np.stack([x0, y1], 1)], 1)
        ax.add_collection(PolyCollection(verts, facecolors=[colours.get(name)], linewidths=0,
                                         label=name), autolim=False)
        bottom = top
    ax.set_ylim(0, max(1.0, float(bottom.max(initial=0.0))) * 1.05)
    _time_axis(ax, days, summary.get("start_date"))
    ax.set_ylabel("purchases per hour")
    ax.set_title("Purchases per hour, by acquirer")
    _legend(ax, "acquirer")
    return (f"{n:,} purchases over {days} day(s); each bar is one hour of arrivals, "
            "split by the acquirer of the merchant.")


class _Distribution(NamedTuple):
    """Shares of a float column's values per bin, by group, with the p50 and p99 of all values."""

    names: list[str]  # the groups' names, in code order
    series: list[tuple[str, np.ndarray, int]]
    edges: np.ndarray
    marks: tuple[np.float64, np.float64]  # p50, p99
    top: float  # latency: the 99.9th percentile (the last bin's edge); lag: the largest value
    count: int  # non-NaN values
    rows: int


def _read_latency(tx: Batches | None, summary: dict) -> Reading:
    tx = _need_columns(tx, ("latency_ms", "issuer"))
    stats = _OrderStatistics()
    yield _Pass(("latency_ms",), lambda b: stats.add(_floats(b, "latency_ms")))
    if stats.count == 0:
        raise _Missing("latency_ms (no values)")
    _, (hi_q, p50, p99) = yield from _passes_of(stats.select((), [99.9, 50, 99]), "latency_ms")
    hi = float(hi_q)
    edges = np.linspace(0.0, max(hi, 1.0), 61)
    iss = _Names(tx.dictionaries("issuer"))
    shares = _Shares(edges, clip=True)
    unknown = False
    rows = 0

    def add(b: Any) -> None:
        nonlocal unknown, rows
        lat = _floats(b, "latency_ms")
        codes = iss.codes(b.column("issuer"))
        unknown = unknown or bool((codes < 0).any())
        rows += len(lat)
        shares.add(lat, codes, ~np.isnan(lat), len(iss.names), other=True)

    yield _Pass(("latency_ms", "issuer"), add)
    series = shares.series(iss.names)
    if unknown:
        series.append(("unknown BIN (switch)", shares.other, shares.other_size))
    return _Distribution(iss.names, series, edges, (p50, p99), hi, stats.count, rows)


def _draw_latency(fig: Any, latency: _Distribution, summary: dict) -> str:
    ax = fig.add_subplot()
    colours = _colours(summary.get("participants") or latency.names)
    _share_stairs(ax, latency.series, latency.edges, colours)
    _mark_percentiles(ax, latency.marks, "ms")
    ax.set_xlabel("authorisation latency, 0100 sent to 0110 received by the acquirer (ms)")
    ax.set_ylabel("share of the issuer's authorisations (%)")
    ax.set_title("Authorisation latency distribution, by issuer")
    _legend(ax, "issuer (authorisations)")
    return (f"Latency from the acquirer's request to its response; the last bin holds everything "
            f"above the overall 99.9th percentile ({latency.top:.1f} ms).")


class _Outcomes(NamedTuple):
    """Authorisations per (issuer, response code): bar groups (name, issuer code; -1 unknown BIN)."""

    groups: list[tuple[str, int]]
    codes: list[str]  # the response codes, in code order
    counts: dict[tuple[int, int], int]  # (issuer code, response code's code) -> authorisations


def _read_outcomes(tx: Batches | None, summary: dict) -> Reading:
    tx = _need_columns(tx, ("issuer", "response_code"))
    iss = _Names(tx.dictionaries("issuer"))
    rc = _Names(tx.dictionaries("response_code"))
    counts: dict[tuple[int, int], int] = {}
    unknown = False

    def add(b: Any) -> None:
        nonlocal unknown
        icodes = iss.codes(b.column("issuer"))
        rcodes = rc.codes(b.column("response_code"))
        unknown = unknown or bool((icodes < 0).any())
        width = len(rc.names) + 1  # codes -1.. of this batch, shifted to 0..
        pair = np.bincount((icodes + 1) * width + (rcodes + 1), minlength=(len(iss.names) + 1) * width)
        for key in np.flatnonzero(pair).tolist():
            i, r = divmod(key, width)
            counts[(i - 1, r - 1)] = counts.get((i - 1, r - 1), 0) + int(pair[key])

    yield _Pass(("issuer", "response_code"), add)
    groups = [(n, k) for k, n in enumerate(iss.names)]
    if unknown:
        groups.append(("unknown BIN", -1))
    return _Outcomes(groups, rc.names, counts)


def _draw_outcomes(fig: Any, outcomes: _Outcomes, summary: dict) -> str:
    groups, counts = outcomes.groups, outcomes.counts
    present = sorted({outcomes.codes[r] for _, r in counts if r >= 0})
    labels = {"00": "00 approved", "05": "05 do not honour", "14": "14 invalid card",
              "51": "51 insufficient funds", "91": "91 issuer unavailable"}
    ax = fig.add_subplot()
    left = np.zeros(len(groups))
    import matplotlib

    cmap = matplotlib.colormaps["Set2"]
    for j, code in enumerate(present):
        k = outcomes.codes.index(code)
        row = np.array([counts.get((g, k), 0) for _, g in groups], dtype=float)
        ax.barh([g for g, _ in groups], row, left=left, label=labels.get(code, code),
                color=cmap(j % cmap.N))
        left += row
    ax.invert_yaxis()
    ax.set_xlabel("authorisations (count)")
    ax.set_ylabel("issuer")
    ax.set_title("Authorisation outcomes, by issuer and response code")
    _legend(ax, "response code")
    return "Each bar is one issuer's authorisations split by ISO 8583 response code (field 39)."


def _read_settlement_lag(tx: Batches | None, summary: dict) -> Reading:
    tx = _need_columns(tx, ("settlement_lag_h", "acquirer"))
    stats = _OrderStatistics()
    yield _Pass(("settlement_lag_h",), lambda b: stats.add(_floats(b, "settlement_lag_h")))
    if stats.count == 0:
        raise _Missing("settlement_lag_h (nothing settled)")
    # The largest value (the axis) and the marks, found in the same passes.
    at, (p50, p99) = yield from _passes_of(stats.select([stats.count - 1], [50, 99]), "settlement_lag_h")
    hi = float(np.ceil(at[stats.count - 1]))
    edges = np.linspace(0.0, max(hi, 1.0), min(int(max(hi, 1.0)) * 2, 120) + 1)
    acq = _Names(tx.dictionaries("acquirer"))
    shares = _Shares(edges, clip=False)
    rows = 0

    def add(b: Any) -> None:
        nonlocal rows
        lag = _floats(b, "settlement_lag_h")
        codes = acq.codes(b.column("acquirer"))
        rows += len(lag)
        shares.add(lag, codes, ~np.isnan(lag), len(acq.names), other=False)

    yield _Pass(("settlement_lag_h", "acquirer"), add)
    return _Distribution(acq.names, shares.series(acq.names), edges, (p50, p99), hi, stats.count, rows)


def _draw_settlement_lag(fig: Any, lag: _Distribution, summary: dict) -> str:
    ax = fig.add_subplot()
    colours = _colours(summary.get("participants") or lag.names)
    _share_stairs(ax, lag.series, lag.edges, colours)
    _mark_percentiles(ax, lag.marks, "h")
    ax.set_xlabel("settlement lag, authorisation response to settlement of its window (hours)")
    ax.set_ylabel("share of the acquirer's settled purchases (%)")
    ax.set_title("Settlement lag distribution, by acquirer")
    _legend(ax, "acquirer (settled purchases)")
    unsettled = lag.rows - lag.count
    return (f"{lag.count:,} purchases settled; {unsettled:,} have no settlement "
            "(declined, or not settled within the run).")


class _Positions(NamedTuple):
    """Net position sums per (window code, participant code), and the names of both codes."""

    windows: list[str]
    participants: list[str]
    sums: dict[tuple[int, int], np.float64]


def _read_positions(st: Batches | None, summary: dict) -> Reading:
    st = _need_columns(st, ("window_id", "participant", "position_minor"))
    win = _Names(st.dictionaries("window_id"))
    part = _Names(st.dictionaries("participant"))
    # Sums per (window, participant) code, added in row order as a float64 grid would be.
    sums: dict[tuple[int, int], np.float64] = {}

    def add(b: Any) -> None:
        wcodes = win.codes(b.column("window_id"))
        pcodes = part.codes(b.column("participant"))
        for w, p, v in zip(wcodes, pcodes, _floats(b, "position_minor")):
            if w >= 0 and p >= 0:
                sums[(w, p)] = sums.get((w, p), np.float64(0.0)) + v

    yield _Pass(("window_id", "participant", "position_minor"), add)
    return _Positions(win.names, part.names, sums)


def _draw_positions(fig: Any, positions: _Positions, summary: dict) -> str:
    wnames, pnames = positions.windows, positions.participants
    order_p = [p for p in (summary.get("participants") or pnames) if p in pnames]
    if not wnames or not order_p:
        raise _Missing("settlement windows (none)")
    grid = np.zeros((len(wnames), len(order_p)))
    for (w, p), v in positions.sums.items():
        if pnames[p] in order_p:
            grid[w, order_p.index(pnames[p])] = v
    div, unit = money_scale(float(np.abs(grid).max()) if grid.size else 0.0)
    ax = fig.add_subplot()
    colours = _colours(summary.get("participants") or order_p)
    x = np.arange(len(wnames))
    if len(wnames) <= 16:
        width = 0.8 / len(order_p)
        for j, p in enumerate(order_p):
            ax.bar(x - 0.4 + width * (j + 0.5), grid[:, j] / div, width=width, label=p,
                   color=colours.get(p))
    else:
        for j, p in enumerate(order_p):
            ax.plot(x, grid[:, j] / div, marker=".", label=p, color=colours.get(p))
    ax.axhline(0, color="0.2", linewidth=0.8)
    step = max(1, len(wnames) // 12)
    ax.set_xticks(x[::step], [wnames[i] for i in range(0, len(wnames), step)],
                  rotation=20 if len(wnames) > 3 else 0, ha="right" if len(wnames) > 3 else "center")
    ax.set_xlabel("settlement window (close date and time)")
    ax.set_ylabel(f"net position ({unit}; + receives, - pays)")
    ax.set_title("Net positions per settlement window, by participant")
    _legend(ax, "participant")
    return ("Multilateral net position of every participant in each window; "
            "positive receives from the settlement bank, negative pays in. Each window sums to zero.")

# --- exposure over batches -------------------------------------------------------------------

_EXPOSURE_COLUMNS = ("t_response_s", "t_settled_s", "amount_minor", "approved")
_PEAK_BUCKETS = 1 << 16  # time buckets of the peak search


def _int_sums(index: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Exact int64 sums of `weights` per `index` (0..size-1)."""
    w = np.asarray(weights, dtype=np.int64)
    if len(w) == 0:
        return np.zeros(size, np.int64)
    if max(int(w.max()), -int(w.min())) * len(w) < 2**53:
        # Every partial sum is an integer below 2^53: float64 adds them exactly.
        return np.bincount(index, weights=w, minlength=size).astype(np.int64)
    out = np.zeros(size, np.int64)
    np.add.at(out, index, w)
    return out


def _exposed(b: Any) -> np.ndarray:
    """The rows of a transactions batch that count in the exposure (`metrics.exposed_rows`
    of whichever of its columns `metrics.EXPOSED_BY` the batch holds)."""
    names = set(b.schema.names)
    return metrics.exposed_rows(*(b.column(c) if c in names else None for c in metrics.EXPOSED_BY))


@numba.njit(cache=True, nogil=True)
def _add_event_span(ok, t_in, t_out, span):  # pragma: no cover - compiled
    """One batch of `_Exposure._span_pass`, in place: `span[0]` the latest response or
    settlement time (not NaN) of any row (NaN while none), `span[1]` and `span[2]` the
    earliest and latest finite one of an approved row (`ok`); returns how many rows are approved."""
    end, lo, hi = span[0], span[1], span[2]
    approved = 0
    for i in range(len(ok)):
        for t in (t_in[i], t_out[i]):
            if np.isnan(t):
                continue
            if not t <= end:  # later, or the first
                end = t
            if ok[i] and np.isfinite(t):
                lo = min(lo, t)
                hi = max(hi, t)
        approved += ok[i]
    span[0], span[1], span[2] = end, lo, hi
    return approved


@numba.njit(cache=True, nogil=True, inline="always")
def _bucket_of(t, t0, width, buckets):  # pragma: no cover - compiled
    """The peak search's bucket of time `t` (not NaN): floor((t - t0) / width) within
    0..buckets-1. Non-decreasing in `t` (each step rounds monotonically), so equal times
    share a bucket."""
    x = np.floor((t - t0) / width)
    return 0 if x < 0 else (buckets - 1 if x > buckets - 1 else int(x))


@numba.njit(cache=True, nogil=True)
def _buckets_of(times, t0, width, buckets, out):  # pragma: no cover - compiled
    """`out[i]`: the bucket of `times[i]` (`_bucket_of`)."""
    for i in range(len(times)):
        out[i] = _bucket_of(times[i], t0, width, buckets)


@numba.njit(cache=True, nogil=True, inline="always")
def _grid_slot(grid, t):  # pragma: no cover - compiled
    """`np.searchsorted(grid, t, side="left")` for a sorted grid without NaN: how many grid
    times are below `t` (all of them for NaN, which numpy sorts last). A guess from the
    grid's span corrected by comparisons (as `_edges_at_or_below`): a step or two on an even grid."""
    n = len(grid)
    if np.isnan(t):
        return n
    if n == 0 or not t > grid[0]:
        return 0
    if t > grid[n - 1]:
        return n
    # grid[0] < t <= grid[n - 1]: the slot is in 1..n-1
    g = 1
    if grid[n - 1] > grid[0]:
        g = min(max(int((t - grid[0]) * ((n - 1) / (grid[n - 1] - grid[0]))), 1), n - 1)
    while grid[g - 1] >= t:
        g -= 1
    while grid[g] < t:
        g += 1
    return g


@numba.njit(cache=True, nogil=True)
def _candidate_events(ok, t_in, t_out, amount, candidate, t0, width, times, delta):  # pragma: no cover - compiled
    """The events of one batch's approved rows (`ok`) whose time is in a `candidate`
    bucket of the peak search, written to `times` and `delta` (room for two per row):
    +amount at the response time, -amount at the settlement time; returns how many."""
    buckets = len(candidate)
    m = 0
    for i in range(len(ok)):
        if not ok[i]:
            continue
        t = t_in[i]
        if not np.isnan(t) and candidate[_bucket_of(t, t0, width, buckets)]:
            times[m] = t
            delta[m] = amount[i]
            m += 1
        t = t_out[i]
        if not np.isnan(t) and candidate[_bucket_of(t, t0, width, buckets)]:
            times[m] = t
            delta[m] = -amount[i]
            m += 1
    return m


@numba.njit(cache=True, nogil=True)
def _add_exposure_changes(ok, t_in, t_out, amount, issuer, grid, sums, approved, t0, width,
                          bucket_sum, bucket_up, bucket_n):  # pragma: no cover - compiled
    """One batch of `_Exposure._sums_pass`, added in place; returns how many approved rows
    have a NaN response time.

    Each approved row (`ok`) adds its amount at its response time and takes it away at
    its settlement time (NaN: none): into `sums[issuer + 1, grid slot]` and counts in
    `approved[issuer + 1]` (skipped when `sums` has no columns: no grid), and, for the
    times that are not NaN, into the bucket's sum, its positive changes alone and its
    event count. Exact int64 sums (wrapping as numpy's do), so the order of the rows
    does not matter.
    """
    buckets = len(bucket_sum)
    with_grid = sums.shape[1] > 0
    nan_in = 0
    # Most of a batch settles at a few times, row after row: the last settlement time's
    # grid slot and bucket are reused while it repeats.
    last_out, slot_out, bucket_out = np.nan, 0, 0
    for i in range(len(ok)):
        if not ok[i]:
            continue
        a = amount[i]
        t = t_in[i]
        u = t_out[i]
        if u != last_out and not np.isnan(u):
            last_out, slot_out, bucket_out = u, _grid_slot(grid, u), _bucket_of(u, t0, width, buckets)
        if with_grid:
            r = issuer[i] + 1
            approved[r] += 1
            sums[r, _grid_slot(grid, t)] += a
            sums[r, len(grid) if np.isnan(u) else slot_out] -= a
        if np.isnan(t):
            nan_in += 1
        else:
            b = _bucket_of(t, t0, width, buckets)
            bucket_sum[b] += a
            bucket_up[b] += max(a, 0)
            bucket_n[b] += 1
        if not np.isnan(u):
            bucket_sum[bucket_out] -= a
            bucket_up[bucket_out] += max(-a, 0)
            bucket_n[bucket_out] += 1
    return nan_in


def _by_time(times: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct `times` (sorted, no NaN) and the exact int64 sum of `delta` at each."""
    bits = times.view(np.int64)
    if len(bits) and bits.min() == bits.max():  # one time (a window's settlements): no sort
        return times[:1].copy(), np.array([delta.sum(dtype=np.int64)], np.int64)
    distinct, at = np.unique(times, return_inverse=True)
    return distinct, _int_sums(at, delta, len(distinct))


class _Exposure:
    """The exposure curve (`metrics.exposure_curve`) of a transactions table, read in three passes.

    The purchases that count are the approved ones switched through the network and not
    reversed (`_exposed`). Pass 1 counts them and finds the span of their event times (and
    `end`, the latest response or settlement time of any purchase). Pass 2 adds, exactly
    in int64, each counted amount at its response time and takes it away at its
    settlement, into the plot's time grid (`grid_of(end)`, also by issuer; none when
    `grid_of` is None) and into `_PEAK_BUCKETS` buckets of time. Pass 3 reads back the
    events of the few buckets that can hold the peak (their level before the bucket plus
    all their additions reaches the highest level seen at any bucket's end) and finds the
    exact peak and the first time the curve reaches it. A response time that is NaN sorts
    after every time, as numpy sorts it, each such purchase a step of its own in row order.

    `_Exposure(tx, grid_of)` reads `tx` at once; with `read=False` nothing is read until
    `reading(tx)` is run (beside other readings, by `_scan`).
    """

    def __init__(self, tx: Batches | None, grid_of: Callable[[float], np.ndarray] | None,
                 read: bool = True) -> None:
        self._grid_of = grid_of
        # The columns besides `approved` that say which purchases count (`_exposed`): a table
        # not written by clearing-sim may lack them.
        self._by = tuple(c for c in metrics.EXPOSED_BY[1:] if tx is not None and tx.has(c))
        self.approved = 0  # purchases that count in the exposure
        self.end = np.nan
        self.grid: np.ndarray | None = None
        self.issuers: list[str] = []
        self.total = np.zeros(0, np.int64)  # exposure at each grid time
        self.per_issuer: list[tuple[str, int, np.ndarray]] = []  # (issuer, approved, exposure at grid times)
        self.peak_time, self.peak_level = np.float64(np.nan), np.int64(0)
        self.held_times = 0
        if read:
            _read_alone(tx, self.reading(tx))

    def reading(self, tx: Batches | None) -> Reading:
        """The passes over `tx` (one when nothing was approved); returns this _Exposure."""
        assert tx is not None
        yield from self._span_pass()
        if self.approved:
            yield from self._sums_pass(tx)
            yield from self._peak_pass()
        return self

    def _span_pass(self) -> Reading:
        # The latest time of any event (NaN: none), and the earliest and latest finite
        # time of an approved purchase's events.
        span = np.array([np.nan, np.inf, -np.inf])

        def add(b: Any) -> None:
            self.approved += _add_event_span(_exposed(b), _floats(b, "t_response_s"), _floats(b, "t_settled_s"),
                                             span)

        yield _Pass(("t_response_s", "t_settled_s", "approved", *self._by), add)
        self.end = float(span[0])
        self.grid = self._grid_of(self.end) if self._grid_of is not None else None
        if self.approved:
            t_lo, t_hi = span[1], span[2]
            self._t0 = float(t_lo) if t_hi >= t_lo else 0.0
            width = float(t_hi - t_lo) if t_hi >= t_lo else 0.0
            self._width = width / _PEAK_BUCKETS if width > 0 else 1.0

    def _buckets(self, times: np.ndarray) -> np.ndarray:
        """The peak search's bucket of each time (no NaN): `_bucket_of`."""
        out = np.empty(len(times), np.int64)
        _buckets_of(np.ascontiguousarray(times, dtype=np.float64), self._t0, self._width, _PEAK_BUCKETS, out)
        return out

    def _sums_pass(self, tx: Batches) -> Reading:
        grid = self.grid
        size = 0 if grid is None else len(grid) + 1  # slot len(grid): after the last grid time, or NaN
        iss = _Names(tx.dictionaries("issuer")) if grid is not None else None
        grid_times = np.empty(0) if grid is None else grid
        no_issuer = np.empty(0, np.int64)  # the kernel reads no issuer without a grid
        # Row 0: purchases of no known issuer (in the total only); row c + 1: issuer c.
        sums = np.zeros((1, size), np.int64)  # changes of exposure per (row, grid slot); no columns: no grid
        approved = np.zeros(1, np.int64)  # approved purchases per row
        self._bucket_sum = np.zeros(_PEAK_BUCKETS, np.int64)
        self._bucket_up = np.zeros(_PEAK_BUCKETS, np.int64)  # the sum of its positive changes alone
        self._bucket_n = np.zeros(_PEAK_BUCKETS, np.int64)
        nan_tail: list[np.ndarray] = []

        def add(b: Any) -> None:
            nonlocal sums, approved
            ok = _exposed(b)
            amount = np.asarray(_values(b, "amount_minor"), dtype=np.int64)
            t_in = _floats(b, "t_response_s")
            issuer = no_issuer
            if iss is not None:
                issuer = iss.codes(b.column("issuer"))
                sums = _grow_rows(sums, len(iss.names) + 1)
                approved = _grow_rows(approved, len(iss.names) + 1)
            # An event at time t counts at every grid time >= t, as `metrics.sample_step`
            # samples the curve; NaN sorts after the grid, into the slot left out.
            if _add_exposure_changes(ok, t_in, _floats(b, "t_settled_s"), amount, issuer, grid_times, sums,
                                     approved, self._t0, self._width, self._bucket_sum, self._bucket_up,
                                     self._bucket_n):
                nan_tail.append(amount[ok & np.isnan(t_in)])

        yield _Pass(_EXPOSURE_COLUMNS + self._by + (("issuer",) if iss is not None else ()), add)
        self._nan_tail = np.concatenate(nan_tail) if nan_tail else np.empty(0, np.int64)
        if grid is not None and iss is not None:
            self.issuers = iss.names
            k = len(iss.names) + 1
            sums, approved = _grow_rows(sums, k), _grow_rows(approved, k)
            self.total = np.cumsum(sums.sum(axis=0))[:-1]
            self.per_issuer = [(name, int(approved[c + 1]), np.cumsum(sums[c + 1])[:-1])
                               for c, name in enumerate(iss.names)]

    def _peak_pass(self) -> Reading:
        start = np.cumsum(self._bucket_sum) - self._bucket_sum  # the level before each bucket
        has = self._bucket_n > 0
        best: tuple[np.float64, np.int64] | None = None
        if has.any():
            ends = start + self._bucket_sum
            reached = ends[has].max()  # a level the curve takes, at the end of bucket `first_reached`
            first_reached = int(np.flatnonzero(has & (ends == reached))[0])
            # Only these buckets can hold the first time the curve is at its peak: a bucket
            # whose additions alone cannot take it above `reached` after `first_reached`
            # can neither hold a higher level nor an earlier time at `reached`.
            upper = start + self._bucket_up
            candidate = has & ((upper > reached) | ((upper == reached) & (np.arange(_PEAK_BUCKETS) <= first_reached)))
            times_l: list[np.ndarray] = []
            delta_l: list[np.ndarray] = []

            def add(b: Any) -> None:
                ok = _exposed(b)
                times = np.empty(2 * len(ok))
                delta = np.empty(2 * len(ok), np.int64)
                m = _candidate_events(ok, _floats(b, "t_response_s"), _floats(b, "t_settled_s"),
                                      np.asarray(_values(b, "amount_minor"), dtype=np.int64), candidate,
                                      self._t0, self._width, times, delta)
                # One event per distinct time (many settle at the same time): its net change.
                t, d = _by_time(times[:m], delta[:m])
                times_l.append(t)
                delta_l.append(d)

            yield _Pass(_EXPOSURE_COLUMNS + self._by, add)
            self.held_times = sum(len(t) for t in times_l)  # what the peak search kept in memory
            times, delta = _by_time(np.concatenate(times_l), np.concatenate(delta_l))
            bk = self._buckets(times)
            # The level after each distinct time: the level before its bucket plus the
            # bucket's changes up to it (times are sorted, so buckets come in order).
            first = np.flatnonzero(np.append(True, bk[1:] != bk[:-1]))
            cum = np.cumsum(delta, dtype=np.int64)
            before = np.repeat(cum[first] - delta[first], np.diff(np.append(first, len(bk))))
            level = start[bk] + cum - before
            i = int(np.argmax(level))
            best = (times[i], level[i])
        if len(self._nan_tail):
            tail = np.int64(self._bucket_sum.sum()) + np.cumsum(self._nan_tail, dtype=np.int64)
            j = int(np.argmax(tail))
            if best is None or tail[j] > best[1]:
                best = (np.float64(np.nan), tail[j])
        assert best is not None, "approved purchases without events"
        self.peak_time, self.peak_level = best


def _grow_rows(a: np.ndarray, n: int) -> np.ndarray:
    """`a` with zero rows appended up to `n` rows."""
    return a if len(a) >= n else np.concatenate([a, np.zeros((n - len(a), *a.shape[1:]), a.dtype)])


def _exposure_grid(end: float) -> np.ndarray:
    """The exposure plot's time grid: every 5 minutes over the whole days up to `end` (s)."""
    days = max(1.0, float(np.ceil(end / DAY_S + 1e-9)))
    return np.linspace(0.0, days * DAY_S, int(days * 24 * 12) + 1)


def _read_exposure(tx: Batches | None, summary: dict) -> Reading:
    tx = _need_columns(tx, (*_EXPOSURE_COLUMNS, "issuer"), plain=("amount_minor", "approved"))
    return (yield from _Exposure(tx, _exposure_grid, read=False).reading(tx))


def _draw_exposure(fig: Any, exp: _Exposure, summary: dict) -> str:
    if exp.approved == 0:
        raise _Missing("approved purchases owed to the network (none)")
    days = max(1.0, float(np.ceil(exp.end / DAY_S + 1e-9)))
    grid = exp.grid
    assert grid is not None
    div, unit = money_scale(float(exp.peak_level))
    ax = fig.add_subplot()
    colours = _colours(summary.get("participants") or exp.issuers)
    ax.step(grid / HOUR_S, exp.total / div, where="post", color="black", linewidth=1.8, label="all issuers")
    for name, approved, level in exp.per_issuer:
        if not approved:
            continue
        ax.step(grid / HOUR_S, level / div, where="post", color=colours.get(name), linewidth=1.0, label=name)
    t_peak, peak = exp.peak_time, exp.peak_level
    ax.plot([t_peak / HOUR_S], [peak / div], marker="o", color="black")
    ax.annotate(f"peak {peak / div:,.2f} {unit}", (t_peak / HOUR_S, peak / div),
                xytext=(8, -12), textcoords="offset points", fontsize=8)
    _time_axis(ax, days, summary.get("start_date"))
    ax.set_ylabel(f"approved, not yet settled ({unit})")
    ax.set_title("Exposure over the days: value approved but not yet settled, by issuer")
    _legend(ax, "issuer")
    return ("Sum of approved purchase amounts from the authorisation response until their "
            "settlement window settles, sampled every 5 minutes; the dot marks the exact peak. "
            "Approvals later reversed, and those kept inside the issuing bank, owe the network "
            "nothing and are left out.")


def _exposure_columns(exp: _Exposure) -> dict[str, np.ndarray]:
    """Columns of one approved, never settled purchase of the exposure's peak amount
    (none when nothing was approved): a table whose exposure curve has the same peak."""
    n = 1 if exp.approved else 0
    return {"t_response_s": np.zeros(n), "t_settled_s": np.full(n, np.nan),
            "amount_minor": np.full(n, exp.peak_level, dtype=np.int64), "exposed": np.ones(n, dtype=bool)}


def _peak_exposure_columns(tx: Batches | None) -> dict[str, np.ndarray] | None:
    """Columns of a table with the same exposure peak as `tx`, for `metrics.key_values`.

    The key figures' fallback for `settlement.exposure.peak_minor` runs
    `metrics.exposure_curve` on the transactions' columns; rather than hand it whole
    columns, this finds the exact peak batch by batch (`_exposure_columns`). None when
    a column is missing, as `metrics.transaction_columns`.
    """
    if tx is None or not all(tx.has(c) for c in _EXPOSURE_COLUMNS):
        return None
    return _exposure_columns(_Exposure(tx, None))


plot_transactions_per_hour = Plot("transactions_per_hour", "Purchases per hour", "transactions",
                                  _read_transactions_per_hour, _draw_transactions_per_hour)
plot_latency = Plot("latency", "Authorisation latency", "transactions", _read_latency, _draw_latency)
plot_outcomes = Plot("outcomes", "Authorisation outcomes", "transactions", _read_outcomes, _draw_outcomes)
plot_settlement_lag = Plot("settlement_lag", "Settlement lag", "transactions", _read_settlement_lag,
                           _draw_settlement_lag)
plot_positions = Plot("positions", "Net positions per window", "settlements", _read_positions, _draw_positions)
plot_exposure = Plot("exposure", "Exposure over the days", "transactions", _read_exposure, _draw_exposure)

PLOTS: tuple[Plot, ...] = (plot_transactions_per_hour, plot_latency, plot_outcomes, plot_settlement_lag,
                           plot_positions, plot_exposure)



# --- the page ----------------------------------------------------------------------------


def esc(x: Any) -> str:
    """HTML-escaped text."""
    return html.escape(str(x), quote=True)


def page(title: str, body: str) -> str:
    """A whole self-contained HTML page (no scripts, nothing loaded)."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def _key_table(summary: dict, transactions: metrics.Transactions) -> str:
    values = metrics.key_values(summary, transactions)
    rows = []
    for m in metrics.KEY_METRICS:
        unit = metrics.unit_label(m.unit)
        rows.append(f"<tr><th>{esc(m.label)}{' (' + esc(unit) + ')' if unit else ''}</th>"
                    f"<td class=\"num\">{esc(metrics.fmt_value(values[m.path], m.unit))}</td>"
                    f"<td><code>{esc(m.path)}</code></td></tr>")
    return ("<table><tr><th>figure</th><th>value</th><th>summary.json path</th></tr>\n"
            + "\n".join(rows) + "</table>")


def _windows_table(summary: dict, limit: int = 60) -> str:
    ws = metrics.get_path(summary, "settlement.windows")
    if not isinstance(ws, list) or not ws:
        return "<p class=\"note\">No settlement windows in this run.</p>"
    parts = summary.get("participants") or sorted({p for w in ws for p in (w.get("positions_minor") or {})})
    head = "".join(f"<th>{esc(p)}</th>" for p in parts)
    rows = []
    for w in ws[:limit]:
        pos = w.get("positions_minor") or {}
        cells = "".join(f"<td class=\"num\">{esc(metrics.fmt_value(pos.get(p), 'fen'))}</td>" for p in parts)
        rows.append(f"<tr><td>{esc(w.get('id', '-'))}</td><td>{esc(w.get('status', '-'))}</td>"
                    f"<td class=\"num\">{esc(metrics.fmt_value(w.get('gross_minor'), 'fen'))}</td>"
                    f"<td class=\"num\">{esc(metrics.fmt_value(w.get('net_minor'), 'fen'))}</td>{cells}</tr>")
    more = f"<p class=\"note\">{len(ws) - limit} more window(s) in summary.json.</p>" if len(ws) > limit else ""
    return ("<table><tr><th>window</th><th>status</th><th>gross (CNY)</th><th>net (CNY)</th>"
            f"{head}</tr>\n" + "\n".join(rows) + "</table>" + more)


def build_report(summary: dict, transactions: Any = None, settlements: Any = None) -> str:
    """The HTML of `report.html` for a run's summary and in-memory (pyarrow) tables.

    A plot whose columns a table lacks is replaced by a note; nothing here raises for
    missing data. Same bytes as `build_report_from_parquet` of the same tables written
    to Parquet: both read the tables batch by batch (`Batches`).
    """
    return _build(summary, None if transactions is None else Batches.of_table(transactions),
                  None if settlements is None else Batches.of_table(settlements))


def build_report_from_parquet(summary: dict, transactions_path: Path | str | None,
                              settlements_path: Path | str | None) -> str:
    """The HTML of `report.html` from a run's summary and its tables' Parquet files.

    Reads each file `BATCH_ROWS` rows at a time and only the columns a plot
    needs, so memory stays about one batch of a few columns (plus fixed-size counters)
    however many rows the run has. A path of None is a table the run does not have;
    raises OSError (or pyarrow's ArrowInvalid) for a file that cannot be read.
    """
    return _build(summary, None if transactions_path is None else Batches.of_parquet(transactions_path),
                  None if settlements_path is None else Batches.of_parquet(settlements_path))


def _build(summary: dict, transactions: Batches | None, settlements: Batches | None) -> str:
    """The page for both `build_report` and `build_report_from_parquet` (None: no such table).

    First every plot's reading of each table runs, side by side (`_scan`: the
    transactions are read in a few rounds, not once or more per plot); then the key
    figures, and each plot drawn from what its reading returned (a reading that raised
    raises again there: _Missing leaves a note, anything else fails the report as the
    plot would have alone).
    """
    tables = {"transactions": transactions, "settlements": settlements}
    read: dict[str, _Outcome] = {}
    for table_name, table in tables.items():
        plots = [p for p in PLOTS if p.table == table_name]
        read.update(zip([p.key for p in plots], _scan(table, [p.read(table, summary) for p in plots])))
    name = summary.get("scenario", "run")

    def tx_cols() -> dict[str, np.ndarray] | None:
        # The exposure plot's reading found the peak already; without it (no issuer
        # column, say) the key figure finds it by itself.
        exposure = read[plot_exposure.key]
        if exposure.error is None:
            return _exposure_columns(exposure.value)
        return _peak_exposure_columns(transactions)

    meta = (f"seed {esc(summary.get('seed', '-'))} &middot; mode {esc(summary.get('mode', '-'))} "
            f"&middot; {esc(summary.get('days', '-'))} day(s) from {esc(summary.get('start_date', '-'))} "
            f"&middot; clearing-sim {esc(summary.get('version', '-'))}")
    body = [f"<h1>Run report: {esc(name)}</h1>", f"<p class=\"meta\">{meta}</p>",
            "<h2>Key figures</h2>", _key_table(summary, tx_cols)]
    for plot in PLOTS:
        caption: list[str] = []

        def build(fig: Any, plot: Plot = plot, caption: list[str] = caption) -> None:
            caption.append(plot.draw(fig, read[plot.key].get(), summary))

        body.append(f"<h2>{esc(plot.title)}</h2>")
        try:
            svg = figure_svg(build, plot.key)
        except _Missing as exc:
            body.append(f"<p class=\"note\">Not available for this run: {esc(exc)} missing.</p>")
            continue
        body.append(f"<figure id=\"{esc(plot.key)}\">\n{svg}\n<figcaption>{esc(caption[0])}</figcaption>\n</figure>")
    body += ["<h2>Settlement windows</h2>", _windows_table(summary)]
    return page(f"clearing-sim report: {name}", "\n".join(body))


def write_report(folder: Path, result: Any) -> Path:
    """Write `report.html` for a `Result` into `folder`; returns its path."""
    path = Path(folder) / "report.html"
    path.write_text(build_report(result.summary, result.transactions, result.settlements), encoding="utf-8")
    return path


def report_from_folder(folder: Path) -> str:
    """The report HTML of an existing run folder (its summary.json and Parquet tables).

    The tables are read batch by batch (`build_report_from_parquet`), never whole.
    """
    import json

    folder = Path(folder)
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    paths = {name: folder / f"{name}.parquet" for name in ("transactions", "settlements")}
    return build_report_from_parquet(summary, *(p if p.exists() else None for p in paths.values()))
