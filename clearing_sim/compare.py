"""Comparing scenarios side by side: replications, 95% intervals, compare.{json,csv,html}.

Owns: turning the `compare` command's arguments (scenario files or run folders) into
sources, running each scenario file's replications with common random numbers
(replication i of every scenario uses the seed `derived_seed(root, "replication", i)`),
the intervals of every key metric (`clearing_sim.metrics.KEY_METRICS`, named by their
dotted summary.json paths) and the three output files, written all or nothing. A run
folder counts as one replication with its own seed. Must never print; a metric a
source does not have is left out of its `metrics` (shown as "-"), never an error.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from clearing_sim import __version__, metrics
from clearing_sim.errors import InputError, WriteError
from clearing_sim.executor import Task, execute
from clearing_sim.rng import derived_seed
from clearing_sim.scenario import Scenario, load_scenario

MAX_REPLICATIONS = 10_000


@attrs.frozen
class Source:
    """One thing to compare: a scenario file to replicate, or a finished run folder."""

    path: Path
    kind: str  # "scenario" or "run"
    name: str
    scenario: Scenario | None = None
    version: str | None = None  # a run folder's: the clearing-sim that wrote its summary


@attrs.frozen
class Compared:
    """One source's figures: per-replication values and the interval of each metric."""

    name: str
    source: str
    kind: str
    seeds: tuple[int, ...]
    values: dict[str, tuple[float | int | None, ...]]
    intervals: dict[str, metrics.Interval]

    @property
    def replications(self) -> int:
        return len(self.seeds)


def replication_seeds(root: int, replications: int) -> tuple[int, ...]:
    """The seeds of replications 0..R-1: the same for every scenario (common random numbers)."""
    return tuple(derived_seed(root, "replication", i) for i in range(replications))


def resolve_sources(paths: Sequence[Path]) -> list[Source]:
    """Scenario files and run folders from the command line; raises InputError naming a bad one."""
    if not paths:
        raise InputError("compare: give at least one scenario file or run folder")
    sources: list[Source] = []
    for p in paths:
        p = Path(p)
        try:
            p.stat()
        except FileNotFoundError:
            pass
        except OSError as exc:  # a name too long for the file system, a loop of links
            raise InputError(f"{p}: cannot read it: {exc.strerror or exc}") from None
        if p.is_dir():
            summary = p / "summary.json"
            if not summary.is_file():
                raise InputError(f"{p}: not a run folder (it has no summary.json)")
            data = _read_summary(summary)
            version = data.get("version")
            sources.append(Source(p, "run", str(data.get("scenario") or p.name),
                                  version=version if isinstance(version, str) else None))
        elif p.is_file():
            sc = load_scenario(p)
            sources.append(Source(p, "scenario", sc.name, sc))
        else:
            raise InputError(f"{p}: no such scenario file or run folder")
    # Names label columns and rows: make them unique, keeping the first as it is.
    seen: dict[str, int] = {}
    out = []
    for s in sources:
        n = seen.get(s.name, 0)
        seen[s.name] = n + 1
        out.append(s if n == 0 else attrs.evolve(s, name=f"{s.name} ({s.path.name} #{n + 1})"))
    return out


def _not_json(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _non_finite(v: object) -> bool:
    if isinstance(v, float):
        return not math.isfinite(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return abs(v) > sys.float_info.max  # 10**400 written out in digits: no float holds it
    if isinstance(v, dict):
        return any(_non_finite(x) for x in v.values())
    if isinstance(v, list):
        return any(_non_finite(x) for x in v)
    return False


def _read_summary(path: Path) -> dict:
    try:
        # NaN and Infinity (which Python's json reads, and a number like 1e400 becomes) are no
        # figures: a summary.json clearing-sim writes never holds them (allow_nan=False).
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_not_json)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the run summary ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a run summary is a JSON object")
    if _non_finite(data):
        raise InputError(f"{path}: cannot read the run summary (a number is too large for a float)")
    return data


def _folder_values(folder: Path) -> tuple[int, dict[str, float | int | None]]:
    """Seed and key metric values of a run folder (its transactions table read only if needed)."""
    summary = _read_summary(folder / "summary.json")

    def transactions() -> dict | None:
        p = folder / "transactions.parquet"
        if not p.is_file():
            return None
        import pyarrow.parquet as pq

        try:
            has = set(pq.read_schema(p).names)
            table = pq.read_table(p, columns=["t_response_s", "t_settled_s", "amount_minor",
                                              *(c for c in metrics.EXPOSED_BY if c in has)])
            return metrics.transaction_columns(table)  # a column missing or of another type fails here
        except Exception:  # noqa: BLE001 - an older or partial table: the figure is just missing
            return None

    seed = summary.get("seed")
    return (seed if isinstance(seed, int) else -1), metrics.key_values(summary, transactions)


def version_notes(sources: Sequence[Source]) -> list[str]:
    """A line for each run folder another clearing-sim wrote: its figures are compared as
    written, and a figure's definition can change between versions (0.3.1: the exposure
    leaves out reversed and in-bank approvals)."""
    return [f"note: {s.path} was made by clearing-sim {s.version or 'of an unknown version'}; this is "
            f"{__version__}, and its figures are compared as that version defined them"
            for s in sources if s.kind == "run" and s.version != __version__]


def compare(sources: Sequence[Source], replications: int = 1, root_seed: int = 0, mode: str = "detailed",
            workers: int = 1, scheduler: str | None = None, progress: bool = False) -> list[Compared]:
    """Run the scenario sources' replications and collect every source's intervals.

    Raises InputError if `replications` is not between 1 and MAX_REPLICATIONS or the
    root seed is negative.
    """
    if not 1 <= replications <= MAX_REPLICATIONS:
        raise InputError(f"--replications: must be between 1 and {MAX_REPLICATIONS:,}, got {replications}")
    if root_seed < 0 or root_seed > 2**63 - 1:
        raise InputError(f"--seed: must be between 0 and 2**63-1, got {root_seed}")
    seeds = replication_seeds(root_seed, replications)
    tasks = [Task(s.scenario, seed, mode) for s in sources if s.kind == "scenario" for seed in seeds]
    results = iter(execute(tasks, workers=workers, scheduler=scheduler, progress=progress,
                           label="replications"))
    out = []
    for s in sources:
        if s.kind == "scenario":
            rows = [next(results).key for _ in seeds]
            src_seeds = seeds
        else:
            seed, key = _folder_values(s.path)
            rows, src_seeds = [key], (seed,)
        values = {m.path: tuple(r.get(m.path) for r in rows) for m in metrics.KEY_METRICS}
        intervals = {}
        for path, vs in values.items():
            iv = metrics.interval(vs)
            if iv is not None:
                intervals[path] = iv
        out.append(Compared(s.name, str(s.path), s.kind, src_seeds, values, intervals))
    return out


def _num(x: float) -> float:
    return round(float(x), 6)


def to_json(compared: Sequence[Compared], root_seed: int, mode: str) -> dict[str, Any]:
    """The dict written as `compare.json`.

    `{"scenarios": [{"name", "replications", "metrics": {path: {"mean", "ci95": [lo, hi],
    "n", "values"}}, ...}]}`; a metric with no value in a source is left out of its metrics.
    """
    scenarios = []
    for c in compared:
        scenarios.append({
            "name": c.name,
            "source": c.source,
            "kind": c.kind,
            "replications": c.replications,
            "seeds": list(c.seeds),
            "metrics": {
                path: {"mean": _num(iv.mean), "ci95": [_num(iv.lo), _num(iv.hi)], "n": iv.n,
                       "values": list(c.values[path])}
                for path, iv in c.intervals.items()
            },
        })
    return {
        "clearing_sim_version": __version__,
        "root_seed": root_seed,
        "mode": mode,
        "interval": "95% t interval of the mean over replications: mean +- t(0.975, n-1) * s / sqrt(n)",
        "scenarios": scenarios,
    }


def to_csv(compared: Sequence[Compared]) -> str:
    """`compare.csv`: one row per source and key metric (empty cells where missing)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["scenario", "source", "replications", "metric", "unit", "n", "mean", "ci95_lo", "ci95_hi"])
    for c in compared:
        for m in metrics.KEY_METRICS:
            iv = c.intervals.get(m.path)
            cells = [iv.n, _num(iv.mean), _num(iv.lo), _num(iv.hi)] if iv else [0, "", "", ""]
            w.writerow([c.name, c.source, c.replications, m.path, m.unit, *cells])
    return buf.getvalue()


def cell(iv: metrics.Interval | None, unit: str) -> str:
    """`mean [lo, hi]` for people, or just the value when the interval is a point."""
    if iv is None:
        return "-"
    mean = metrics.fmt_value(iv.mean, unit)
    if iv.lo == iv.hi:
        return mean
    return f"{mean} [{metrics.fmt_value(iv.lo, unit)}, {metrics.fmt_value(iv.hi, unit)}]"


def to_html(compared: Sequence[Compared], root_seed: int, mode: str) -> str:
    """`compare.html`: the side-by-side table and one interval plot per key metric."""
    from clearing_sim.report import esc, figure_svg, page

    head = "".join(f"<th>{esc(c.name)}<br><small>{esc(c.kind)}, R={c.replications}</small></th>"
                   for c in compared)
    rows = []
    for m in metrics.KEY_METRICS:
        unit = metrics.unit_label(m.unit)
        cells = "".join(f"<td class=\"num\">{esc(cell(c.intervals.get(m.path), m.unit))}</td>" for c in compared)
        rows.append(f"<tr><th>{esc(m.label)}{' (' + esc(unit) + ')' if unit else ''}<br>"
                    f"<small><code>{esc(m.path)}</code></small></th>{cells}</tr>")
    table = f"<table><tr><th>figure</th>{head}</tr>\n" + "\n".join(rows) + "</table>"

    shown = [m for m in metrics.KEY_METRICS if any(m.path in c.intervals for c in compared)]
    body = [
        "<h1>Scenario comparison</h1>",
        f"<p class=\"meta\">{len(compared)} source(s) &middot; root seed {root_seed} &middot; mode "
        f"{esc(mode)} &middot; clearing-sim {esc(__version__)}. Cells show the mean over replications "
        "and its 95% interval [lo, hi]; replication i of every scenario used the same seed.</p>",
        "<h2>Key figures</h2>", table,
    ]
    if shown:
        body.append("<h2>Intervals</h2>")
        ncols = 3
        nrows = (len(shown) + ncols - 1) // ncols

        def build(fig: Any) -> None:
            axes = fig.subplots(nrows, ncols, squeeze=False)
            names = [c.name if len(c.name) <= 28 else c.name[:27] + "\u2026" for c in compared]
            for k, ax in enumerate(axes.flat):
                if k >= len(shown):
                    ax.set_axis_off()
                    continue
                m = shown[k]
                scale = 100.0 if m.unit in ("fen", "rate") else 1.0
                unit = {"fen": "CNY", "rate": "%"}.get(m.unit, metrics.unit_label(m.unit))
                f = (1 / scale) if m.unit == "fen" else scale
                points = [(j, iv.lo * f, iv.mean * f, iv.hi * f) for j, c in enumerate(compared)
                          if (iv := c.intervals.get(m.path)) is not None]
                ends = [x for _, lo, _, hi in points for x in (lo, hi)]
                if ends and not math.isfinite(16 * max(abs(x) for x in ends)):
                    # A hand-edited summary's 1e308: the axis and its ticks would overflow a float.
                    ax.text(0.5, 0.5, "values too large to plot", ha="center", va="center", transform=ax.transAxes)
                    points = []
                for j, lo, mean, hi in points:
                    ax.errorbar([mean], [j], xerr=[[mean - lo], [hi - mean]], fmt="o", color=f"C{j % 10}", capsize=3)
                ax.set_yticks(range(len(names)), names)
                ax.set_ylim(-0.6, len(names) - 0.4)
                ax.invert_yaxis()
                ax.set_title(m.label, fontsize=9)
                ax.set_xlabel(unit)

        svg = figure_svg(build, "compare-intervals", width_in=11.0, height_in=1.2 + 1.9 * nrows)
        body.append(f"<figure>\n{svg}\n<figcaption>Mean and 95% interval of each key figure, "
                    "by scenario.</figcaption>\n</figure>")
    return page("clearing-sim comparison", "\n".join(body))


def check_out(out: Path) -> None:
    """Refuse an `--out` that compare cannot write into (raises InputError): a file, or a run or
    sweep folder or a folder inside one, whose files must stay as clearing-sim wrote them (a
    replay of the run would differ). Any other folder gets compare.* beside its own files."""
    from clearing_sim.outputs import check_can_create, enclosing_output, output_kind

    out = Path(out)
    try:
        if out.exists() and not out.is_dir():
            raise InputError(f"--out: {out} exists and is not a folder")
        if not out.exists():
            check_can_create(out)  # before the replications run, not after
        else:  # a folder compare writes into: try it (os.access says yes to root on /proc/sys)
            with tempfile.NamedTemporaryFile(dir=out, prefix=".compare-probe-"):
                pass
    except OSError as exc:  # a name too long, a loop of links, a read-only folder...
        raise InputError(f"--out: cannot write into {out}: {exc.strerror or exc}") from None
    kind = output_kind(out)
    if kind in ("run", "sweep"):
        raise InputError(f"--out: {out} is a {kind} folder; write the comparison into a folder of its own")
    inside = enclosing_output(out)
    if inside is not None:
        raise InputError(f"--out: {out} lies inside the {output_kind(inside)} folder {inside}; write the "
                         "comparison into a folder of its own")


def _remove(paths) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def write_outputs(out: Path, compared: Sequence[Compared], root_seed: int, mode: str) -> list[Path]:
    """Write compare.json, compare.csv and compare.html into `out`, all or nothing."""
    from clearing_sim.outputs import dumps_json

    out = Path(out)
    check_out(out)
    files = {
        "compare.json": dumps_json(to_json(compared, root_seed, mode)),
        "compare.csv": to_csv(compared),
        "compare.html": to_html(compared, root_seed, mode),
    }
    created = [p for p in (out, *out.parents) if not p.exists()]  # the folders made here, deepest first
    tmp = {name: out / f".{name}.tmp-{os.getpid()}" for name in files}
    try:
        out.mkdir(parents=True, exist_ok=True)  # once there is something to write
        for name, text in files.items():
            tmp[name].write_text(text, encoding="utf-8")
        for name in files:
            os.replace(tmp[name], out / name)
    except OSError as exc:  # the disk filled, the folder went read-only: no bug, nor bad input
        with contextlib.suppress(OSError):
            _remove(tmp.values())
            for p in created:  # a failure leaves no folder
                p.rmdir()
        raise WriteError(f"{out}: the comparison could not be written: {exc.strerror or exc}; nothing was "
                         "written") from None
    finally:
        with contextlib.suppress(OSError):
            _remove(tmp.values())
    return [out / name for name in files]
