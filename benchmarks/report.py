"""Turn a pytest-benchmark JSON file into a short Markdown report with limits.

Usage::

    python -m benchmarks.report RESULTS.json REPORT.md [--limits FILE] [--stat mean|median|min]

Reads the JSON written by ``pytest --benchmark-json``, pairs every benchmark
with the reference named in its ``extra_info`` (see benchmarks/conftest.py),
checks the ratio limits in limits.toml, writes the Markdown table to REPORT.md
and prints it.  Ratios use the mean time unless ``--stat`` says otherwise; on a
loaded shared machine ``--stat min`` is the steadier choice, because a
benchmark and its reference are timed at different moments.  Exit status: 0 all limits hold (or none apply), 1 a limit is
crossed, 2 the input or the limits file is unusable.

This module only reads results; it never runs benchmarks and never compares
seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LIMITS = Path(__file__).resolve().parent / "limits.toml"
LIMIT_KEYS = {"reference", "max_time_ratio", "min_time_ratio", "note"}
STATS = ("mean", "median", "min")


class ReportError(Exception):
    """The results or limits file cannot be used; the message says why."""


@dataclass(frozen=True)
class Bench:
    module: str  # bench file stem, e.g. "bench_netting"
    name: str  # test name with parametrize id, e.g. "test_read_pass[1e6-p50]"
    mean_s: float
    stats: dict
    extra: dict

    def time_s(self, stat: str) -> float:
        return float(self.stats[stat])

    @property
    def items(self):
        return self.extra.get("items")

    @property
    def reference(self):
        return self.extra.get("reference")


@dataclass(frozen=True)
class Limit:
    reference: str | None
    max_time_ratio: float | None
    min_time_ratio: float | None

    def describe(self) -> str:
        parts = []
        if self.max_time_ratio is not None:
            parts.append(f"≤ {self.max_time_ratio:g}")
        if self.min_time_ratio is not None:
            parts.append(f"≥ {self.min_time_ratio:g}")
        return " and ".join(parts)

    def holds(self, ratio: float) -> bool:
        if self.max_time_ratio is not None and not ratio <= self.max_time_ratio:
            return False
        if self.min_time_ratio is not None and not ratio >= self.min_time_ratio:
            return False
        return True


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def load_results(path: Path) -> tuple[list[Bench], dict]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file (run pytest with --benchmark-json={path} first)") from None
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ReportError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    benches = []
    for index, entry in enumerate(data["benchmarks"]):
        try:
            fullname = entry["fullname"]
            name = entry["name"]
            stats = {stat: float(entry["stats"][stat]) for stat in STATS}
        except (KeyError, TypeError, ValueError):
            raise ReportError(f"{path}: benchmarks[{index}] lacks fullname, name or stats {STATS}") from None
        module = Path(fullname.split("::", 1)[0]).stem
        benches.append(Bench(module, name, stats["mean"], stats, dict(entry.get("extra_info") or {})))
    return benches, data


def load_limits(path: Path) -> dict[tuple[str, str], Limit]:
    if not path.exists():
        return {}
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ReportError(f"{path}: {error}") from None
    limits = {}
    for module, table in raw.items():
        if not isinstance(table, dict):
            raise ReportError(f"{path}: [{module}] must be a table of benchmarks")
        for name, entry in table.items():
            where = f'{path}: [{module}."{name}"]'
            if not isinstance(entry, dict):
                raise ReportError(f"{where} must be a table")
            unknown = set(entry) - LIMIT_KEYS
            if unknown:
                raise ReportError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(LIMIT_KEYS)}")
            ratios = {}
            for key in ("max_time_ratio", "min_time_ratio"):
                value = entry.get(key)
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                    raise ReportError(f"{where}.{key} must be a positive number, got {value!r}")
                ratios[key] = None if value is None else float(value)
            if ratios["max_time_ratio"] is None and ratios["min_time_ratio"] is None:
                raise ReportError(f"{where} sets neither max_time_ratio nor min_time_ratio")
            reference = entry.get("reference")
            if reference is not None and not isinstance(reference, str):
                raise ReportError(f"{where}.reference must be a benchmark name")
            limits[(module, name)] = Limit(reference, **ratios)
    return limits


# --------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_rate(per_second: float) -> str:
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_second >= scale:
            return f"{per_second / scale:.3g} {suffix}/s"
    return f"{per_second:.3g} /s"


def find(benches: list[Bench], module: str, name: str) -> Bench | None:
    """The benchmark called ``name``: same bench file first, then anywhere."""
    for bench in benches:
        if bench.module == module and bench.name == name:
            return bench
    others = [bench for bench in benches if bench.name == name]
    return others[0] if len(others) == 1 else None


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def build_report(
    benches: list[Bench], limits: dict[tuple[str, str], Limit], meta: dict, source: str, stat: str = "mean"
):
    """Return (markdown, number of failed limits); ratios use ``stat`` times."""
    header = (
        "| benchmark | items | unit | mean time | throughput | reference "
        f"| time / ref ({stat}) | speed-up vs ref | limit | result |\n"
        "|---|---:|---|---:|---:|---|---:|---:|---|---|\n"
    )
    rows = []
    failures = 0
    for bench in benches:
        items = bench.items
        unit = bench.extra.get("unit", "")
        throughput = format_rate(items / bench.mean_s) if items and bench.mean_s > 0 else "—"
        limit = limits.get((bench.module, bench.name))
        ref_name = limit.reference if limit and limit.reference else bench.reference

        if ref_name is None:
            ref_cell, ratio_cell, speed_cell = "— (reference)", "—", "—"
            ratio = None
        else:
            reference = find(benches, bench.module, ref_name)
            if reference is None:
                ref_cell, ratio_cell, speed_cell = f"`{ref_name}` (not in this run)", "—", "—"
                ratio = None
            else:
                ratio = bench.time_s(stat) / reference.time_s(stat)
                ref_cell = f"`{ref_name}`"
                ratio_cell, speed_cell = f"{ratio:.3g}", f"{1 / ratio:.3g}×"

        if limit is None:
            limit_cell, result = "", ""
        elif ratio is None or not math.isfinite(ratio):
            limit_cell, result = limit.describe(), "SKIP (no reference)"
        elif limit.holds(ratio):
            limit_cell, result = limit.describe(), "PASS"
        else:
            limit_cell, result = limit.describe(), "**FAIL**"
            failures += 1

        rows.append(
            f"| `{bench.module}::{bench.name}` | {items if items is not None else '—'} | {unit} "
            f"| {format_seconds(bench.mean_s)} | {throughput} | {ref_cell} | {ratio_cell} "
            f"| {speed_cell} | {limit_cell} | {result} |\n"
        )

    present = {(bench.module, bench.name) for bench in benches}
    unchecked = sorted(f'{module}."{name}"' for module, name in limits if (module, name) not in present)

    machine = meta.get("machine_info") or {}
    commit = meta.get("commit_info") or {}
    cpu = (machine.get("cpu") or {}).get("brand_raw", "unknown CPU")
    lines = [
        "# Benchmark report\n\n",
        f"Source: `{source}`; {meta.get('datetime', 'date unknown')}; ",
        f"commit {str(commit.get('id', 'unknown'))[:10]}{' (dirty)' if commit.get('dirty') else ''}; ",
        f"{cpu}; Python {machine.get('python_version', '?')}.\n\n",
        f"Throughput is items / mean time.  Ratios compare the {stat} times of benchmarks "
        "in this run; limits are in `benchmarks/limits.toml` (time / reference time).\n\n",
        header,
        *rows,
    ]
    if unchecked:
        lines.append(f"\nLimits not checked (benchmark not in this run): {', '.join(unchecked)}.\n")
    verdict = f"{failures} limit(s) crossed." if failures else "All limits checked in this run hold."
    lines.append(f"\n{verdict}\n")
    return "".join(lines), failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("report", type=Path, help="Markdown file to write")
    parser.add_argument("--limits", type=Path, default=DEFAULT_LIMITS, help="ratio limits (TOML)")
    parser.add_argument("--stat", choices=STATS, default="mean", help="time statistic for ratios (default: mean)")
    args = parser.parse_args(argv)
    try:
        benches, meta = load_results(args.results)
        limits = load_limits(args.limits)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    markdown, failures = build_report(benches, limits, meta, str(args.results), args.stat)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(markdown)
    print(markdown, end="")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
