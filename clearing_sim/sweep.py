"""Parameter sweeps: a base scenario, a grid of values for dotted keys, replications.

Owns: the sweep file (strict, every problem named with its path and YAML line), the
points of the grid (the Cartesian product of the keys' values, first key outermost),
building and re-validating each point's scenario through the strict scenario loader
before anything is simulated, the seeds (`derived_seed(root, "sweep", point, r)`, or
`derived_seed(root, "replication", r)` with `common_random_numbers: true`), and the
outputs `sweep.json` and `sweep.parquet`, written all or nothing. The seeds and the
files depend only on the sweep file and its base, never on the executor or the
number of workers. Must never print.

A sweep file::

    name: sweep_windows
    base: baseline.yaml            # relative to this file
    replications: 3
    seed: 7                        # root seed; default: the base scenario's run.seed
    overrides:                     # set on every point (optional)
      settlement.lag_days: 0
    grid:                          # one list of values per dotted scenario key
      settlement.windows: [["10:00"], ["10:00", "16:00"]]
      issuers[0].host.servers: [4, 8]
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from clearing_sim import __version__, metrics
from clearing_sim.errors import InputError, Problem, ScenarioError, WriteError
from clearing_sim.executor import Task, TaskResult, execute
from clearing_sim.rng import derived_seed
from clearing_sim.scenario import (
    Scenario,
    _Source,
    control_character,
    dump_yaml,
    parse_scenario,
    read_yaml_text,
    scenario_from_source,
    sweep_shaped,
    unstructure,
)

MAX_POINTS = 100_000
MAX_REPLICATIONS = 10_000
_TOP_KEYS = ("name", "description", "base", "replications", "seed", "common_random_numbers",
             "mode", "overrides", "grid")


class SweepError(InputError):
    """A sweep file that cannot be run; lists every problem found (exit 2)."""

    def __init__(self, source: str, problems: Sequence[Problem]):
        self.source = source
        self.problems = tuple(problems)
        lines = [f"{source}: invalid sweep ({len(self.problems)} problem(s))"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


@attrs.frozen
class Point:
    """One point of the grid: its index, the value of each swept key, and its scenario."""

    index: int
    values: dict[str, Any]
    scenario: Scenario

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.values.items())


@attrs.frozen
class Sweep:
    """A checked sweep: every point's scenario is valid."""

    name: str
    description: str
    source: Path
    base: Path
    base_scenario: Scenario
    replications: int
    root_seed: int
    common_random_numbers: bool
    mode: str
    overrides: dict[str, Any]
    keys: tuple[str, ...]
    points: tuple[Point, ...]

    def seed(self, point: int, replication: int) -> int:
        """The root seed of one replication of one point."""
        if self.common_random_numbers:
            return derived_seed(self.root_seed, "replication", replication)
        return derived_seed(self.root_seed, "sweep", point, replication)

    def tasks(self) -> list[Task]:
        """Every (point, replication) as a task, point-major."""
        return [Task(p.scenario, self.seed(p.index, r), self.mode)
                for p in self.points for r in range(self.replications)]


# --- key paths ----------------------------------------------------------------------------


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _fields(cls: type) -> dict[str, Any]:
    attrs.resolve_types(cls)
    return {f.name: f.type for f in attrs.fields(cls)}


_SEED_IGNORED = ("run.seed would be ignored: every replication's seed comes from the sweep's root seed, the point "
                 "and the replication; set the root seed with the sweep's own `seed:`")


def check_key_path(path: str, resolved: dict) -> tuple[str | int, ...]:
    """The parts of a dotted scenario key, checked against the schema and the base scenario.

    Raises ValueError with a message saying which part is unknown and what is known.
    """
    try:
        parts = metrics.split_path(path)
    except ValueError as exc:
        raise ValueError(f"unknown key path: {exc}") from None
    if tuple(parts) == ("run", "seed"):
        raise ValueError(_SEED_IGNORED)
    tp: Any = Scenario
    node: Any = resolved
    done = ""
    for part in parts:
        tp = _strip_optional(tp)
        where = done or "the scenario"
        if attrs.has(tp):
            known = _fields(tp)
            if not isinstance(part, str) or part not in known:
                raise ValueError(f"unknown key path {path!r}: {where} has no key {part!r} "
                                 f"(keys: {', '.join(known)})")
            tp = known[part]
        elif typing.get_origin(tp) in (tuple, list):
            if not isinstance(part, int):
                raise ValueError(f"unknown key path {path!r}: {where} is a list, index it as {done}[0]")
            size = len(node) if isinstance(node, list) else 0
            if part >= size:
                raise ValueError(f"unknown key path {path!r}: {where} has {size} item(s), "
                                 f"there is no [{part}]")
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            if not isinstance(part, str):
                raise ValueError(f"unknown key path {path!r}: {where} is a mapping, not a list")
            tp = typing.get_args(tp)[1]
        else:
            raise ValueError(f"unknown key path {path!r}: {where} is a single value with no key {part!r}")
        node = node.get(part) if isinstance(node, dict) and isinstance(part, str) else \
            (node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
        done = metrics_path(done, part)
    return parts


def metrics_path(prefix: str, part: str | int) -> str:
    """`a.b[0]`-style path built one part at a time."""
    if isinstance(part, int):
        return f"{prefix}[{part}]"
    return f"{prefix}.{part}" if prefix else part


def set_path(data: dict, parts: tuple[str | int, ...], value: Any) -> None:
    """Set a value in plain scenario data, creating mappings on the way where none is."""
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = node[part] if isinstance(node, list) else node.get(part)
        if nxt is None:
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


# --- loading ------------------------------------------------------------------------------


def is_sweep_file(path: Path) -> bool:
    """Whether `path` reads as a sweep file (a mapping with `base`, no `institutions`)."""
    try:
        return sweep_shaped(_Source(read_yaml_text(path), str(path)).data)
    except ScenarioError:
        return False


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file and every point's scenario; raises SweepError or ScenarioError."""
    p = Path(path)
    try:
        src = _Source(read_yaml_text(p, "sweep"), str(p))
    except ScenarioError as exc:
        raise SweepError(str(p), exc.problems) from None
    if src.problems:
        raise SweepError(str(p), src.problems)
    return parse_sweep(src, p)


def parse_sweep(src: _Source, path: Path) -> Sweep:
    """Check the sweep's plain data (with its lines) and build every point."""
    problems: list[Problem] = []

    def problem(where: tuple, message: str) -> None:
        problems.append(Problem(_fmt(where), message, src.line_of(where)))

    data = src.data
    if not isinstance(data, dict):
        raise SweepError(str(path), [Problem("", "a sweep is a mapping of keys (name, base, grid, ...)", 1)])
    for k in data:
        if k not in _TOP_KEYS:
            problem((k,), f"unknown key (known: {', '.join(_TOP_KEYS)})")

    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        problem(("name",), "must be non-empty text")
        name = path.stem
    elif (bad := control_character(name, one_line=True)) is not None:
        problem(("name",), bad)
        name = path.stem
    description = data.get("description", "")
    if not isinstance(description, str):
        problem(("description",), "must be text")
        description = ""
    elif (bad := control_character(description, one_line=False)) is not None:
        problem(("description",), bad)
        description = ""
    replications = data.get("replications", 1)
    if isinstance(replications, bool) or not isinstance(replications, int) \
            or not 1 <= replications <= MAX_REPLICATIONS:
        problem(("replications",), f"must be a whole number from 1 to {MAX_REPLICATIONS:,}, got {replications!r}")
        replications = 1
    crn = data.get("common_random_numbers", False)
    if not isinstance(crn, bool):
        problem(("common_random_numbers",), f"must be true or false, got {crn!r}")
        crn = False
    mode = data.get("mode", "detailed")
    from clearing_sim.model.network import MODES

    if mode not in MODES:
        problem(("mode",), f"unknown mode {mode!r} (one of: {', '.join(MODES)})")
        mode = "detailed"

    base_scenario: Scenario | None = None
    base_src: _Source | None = None
    base_path = path
    if "base" not in data:
        problem(("base",), "required key is missing (the base scenario file)")
    elif not isinstance(data["base"], str) or not data["base"] or "\x00" in data["base"]:
        problem(("base",), "must be the path of a scenario file")
    else:
        folder = path.parent.resolve()
        base_path = (folder / data["base"]).resolve()
        if Path(data["base"]).is_absolute() or not base_path.is_relative_to(folder):
            # Input safety: a sweep file reads only files in its own folder (or below it).
            problem(("base",), f"{data['base']!r} is outside the sweep file's folder: give a path relative "
                               "to it that stays inside it")
        elif os.path.isdir(base_path):
            problem(("base",), f"{data['base']!r} is a folder, not a scenario file")
        elif not os.path.isfile(base_path):  # False, not OSError, for a name too long for the file system
            problem(("base",), f"no such scenario file: {data['base']} (looked for {base_path})")
        else:
            # Read once: its own problems come with its own lines, and its lines name an override's.
            base_src = _Source(read_yaml_text(Path(base_path)), str(base_path))
            if sweep_shaped(base_src.data):  # this sweep file itself, or another one
                problem(("base",), f"{data['base']!r} is a sweep file, not a scenario file")
            else:
                base_scenario = scenario_from_source(base_src, str(base_path))

    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**63 - 1):
        problem(("seed",), f"must be a whole number from 0 to 2**63-1, got {seed!r}")
        seed = None

    resolved = unstructure(base_scenario) if base_scenario is not None else None
    overrides: dict[str, Any] = {}
    ov = data.get("overrides", {})
    if ov is None:
        ov = {}
    if not isinstance(ov, dict):
        problem(("overrides",), "must be a mapping of dotted scenario keys to values")
        ov = {}
    parts_of: dict[str, tuple] = {}
    for key, value in ov.items():
        if resolved is not None:
            try:
                parts_of[key] = check_key_path(str(key), resolved)
            except ValueError as exc:
                problem(("overrides", key), str(exc))
                continue
        overrides[str(key)] = value

    grid: dict[str, list] = {}
    g = data.get("grid")
    if "grid" not in data:
        problem(("grid",), "required key is missing (a list of values for each dotted scenario key)")
    elif not isinstance(g, dict) or not g:
        problem(("grid",), "empty grid: give at least one dotted scenario key with a list of values")
    else:
        for key, values in g.items():
            key = str(key)
            if not isinstance(values, list):
                problem(("grid", key), f"must be a list of values, got {_what(values)}")
                continue
            if not values:
                problem(("grid", key), "empty grid: the list of values has no value")
                continue
            if resolved is not None:
                try:
                    parts_of[key] = check_key_path(key, resolved)
                except ValueError as exc:
                    problem(("grid", key), str(exc))
                    continue
            grid[key] = values

    _overlaps(grid, overrides, parts_of, problem)
    n_points = 1
    for vs in grid.values():
        n_points *= len(vs)
    if n_points > MAX_POINTS:
        problem(("grid",), f"{n_points:,} points is more than the {MAX_POINTS:,} a sweep may have")
    if problems:
        raise SweepError(str(path), problems)
    assert base_scenario is not None and base_src is not None and resolved is not None

    for key, value in overrides.items():
        set_path(resolved, parts_of[key], value)
    keys = tuple(grid)
    # run.seed set through its parent (grid: {run: [{seed: 1}]}) is as ignored as run.seed itself;
    # a run block without a seed is fine (its seed is not used either way).
    for where, key, values in ([("grid", k, grid[k]) for k in keys]
                               + [("overrides", k, [v]) for k, v in overrides.items()]):
        if parts_of[key] == ("run",) and any(isinstance(v, dict) and "seed" in v for v in values):
            problem((where, key), _SEED_IGNORED)
    if problems:
        raise SweepError(str(path), problems)
    points = []
    for index, combo in enumerate(itertools.product(*(range(len(grid[k])) for k in keys))):
        data_i = copy.deepcopy(resolved)
        values = {}
        for key, j in zip(keys, combo):
            set_path(data_i, parts_of[key], grid[key][j])
            values[key] = grid[key][j]
        where = {key: ("grid", key, j) for key, j in zip(keys, combo)}
        try:
            sc = parse_scenario(dump_yaml(data_i), source=f"{path}: point {index}")
        except ScenarioError as exc:
            for pr in exc.problems:
                problems.append(_point_problem(index, values, pr, parts_of, where, src, base_src))
            continue
        points.append(Point(index, values, sc))
    if problems:
        raise SweepError(str(path), problems)
    root = seed if seed is not None else base_scenario.run.seed
    return Sweep(name, description, path, Path(base_path), base_scenario, replications, root, crn,
                 mode, overrides, keys, tuple(points))


def _overlaps(grid: dict, overrides: dict, parts_of: dict, problem: Callable[[tuple, str], None]) -> None:
    """Keys written differently that set the same scenario value (`issuers[0]` and `issuers[00]`),
    or a grid key that replaces what another key sets (`issuers[0].host` and
    `issuers[0].host.servers`): the later one would silently win, and a point's label would
    show a value it did not run with. (An override inside a grid key's value is fine: the
    grid varies it, the override sets the rest.)"""
    def covers(outer: tuple | None, inner: tuple | None) -> bool:
        """`inner` is `outer` or inside it (never for a key whose path did not parse)."""
        return outer is not None and inner is not None and inner[:len(outer)] == outer

    seen: list[str] = []
    for key in overrides:
        parts = parts_of.get(key)
        twin = next((k for k in seen if parts is not None and parts_of.get(k) == parts), None)
        if twin is not None:
            problem(("overrides", key), f"sets the same value as overrides key {twin!r}; set it in one place")
        seen.append(key)
    seen = []
    for key in grid:
        parts = parts_of.get(key)
        if key in overrides or any(covers(parts, parts_of.get(k)) for k in overrides):
            problem(("grid", key), "is also set in overrides; set it in one place")
        twin = next((k for k in seen if covers(parts, parts_of.get(k)) or covers(parts_of.get(k), parts)), None)
        if twin is not None:
            problem(("grid", key), f"sets what grid key {twin!r} also sets; set it in one place")
        seen.append(key)


def _point_problem(index: int, values: dict, pr: Problem, parts_of: dict, where: dict,
                   src: _Source, base_src: _Source) -> Problem:
    """A problem of one point's scenario, placed at the sweep key that caused it if any."""
    label = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in values.items())
    msg = f"point {index} ({label}): {pr.path or '(top level)'}: {pr.message}"
    for key, parts in parts_of.items():
        kpath = _fmt(parts)
        if pr.path == kpath or pr.path.startswith(kpath + ".") or pr.path.startswith(kpath + "["):
            at = where.get(key, ("overrides", key))
            return Problem(_fmt(at), msg, src.line_of(at))
    try:
        line = base_src.line_of(metrics.split_path(pr.path)) if pr.path else None
    except ValueError:
        line = None
    return Problem("base", f"{msg} (base scenario line {line})" if line else msg, src.line_of(("base",)))


def _fmt(parts: Sequence[str | int]) -> str:
    out = ""
    for p in parts:
        # str(p): a YAML key can be a float (`1.5: x`), which Problem cannot print as a path
        out = metrics_path(out, p) if isinstance(p, int) else f"{out}.{p}" if out else str(p)
    return out


def _what(v: Any) -> str:
    return "a mapping" if isinstance(v, dict) else f"{type(v).__name__} {v!r}"


# --- running and outputs ---------------------------------------------------------------------


def run_sweep(sweep: Sweep, workers: int = 1, scheduler: str | None = None,
              progress: bool = False) -> list[TaskResult]:
    """Every point's replications, point-major (see `Sweep.tasks`)."""
    return execute(sweep.tasks(), workers=workers, scheduler=scheduler, progress=progress,
                   label=f"sweep {sweep.name}")


def _num(x: float | int | None) -> float | int | None:
    if x is None or isinstance(x, int):
        return x
    return round(float(x), 6)


def to_json(sweep: Sweep, results: Sequence[TaskResult]) -> dict[str, Any]:
    """The dict written as `sweep.json`: every point, its replications and its intervals."""
    points = []
    it = iter(results)
    for p in sweep.points:
        reps = []
        for r in range(sweep.replications):
            res = next(it)
            reps.append({"replication": r, "seed": sweep.seed(p.index, r),
                         "metrics": {k: _num(v) for k, v in res.key.items() if v is not None}})
        summary = {}
        for m in metrics.KEY_METRICS:
            iv = metrics.interval(rep["metrics"].get(m.path) for rep in reps)
            if iv is not None:
                summary[m.path] = {"mean": _num(iv.mean), "ci95": [_num(iv.lo), _num(iv.hi)], "n": iv.n}
        points.append({"index": p.index, "values": p.values, "metrics": summary, "replications": reps})
    return {
        "clearing_sim_version": __version__,
        "name": sweep.name,
        "description": sweep.description,
        "base": sweep.base_scenario.name,
        "mode": sweep.mode,
        "root_seed": sweep.root_seed,
        "common_random_numbers": sweep.common_random_numbers,
        "replications": sweep.replications,
        "overrides": sweep.overrides,
        "keys": list(sweep.keys),
        "points": points,
    }


def _column(values: list) -> Any:
    """An Arrow column of grid values: typed when they share a type, else JSON text."""
    import pyarrow as pa

    kinds = {type(v) for v in values}
    if len(kinds) == 1 or kinds <= {int, float}:
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            pass
    return pa.array([json.dumps(v, ensure_ascii=False, sort_keys=True) for v in values], pa.string())


def to_table(sweep: Sweep, results: Sequence[TaskResult]) -> Any:
    """`sweep.parquet`: one row per point and replication, the grid values and every figure.

    Columns: `point`, `replication`, `seed`, `label`, one per swept key (named by its
    dotted path), then the key metrics, then every other number of summary.json by
    dotted path (null where a run has none).
    """
    import pyarrow as pa

    rows = [(p, r) for p in sweep.points for r in range(sweep.replications)]
    cols: dict[str, Any] = {
        "point": pa.array([p.index for p, _ in rows], pa.int32()),
        "replication": pa.array([r for _, r in rows], pa.int32()),
        "seed": pa.array([sweep.seed(p.index, r) for p, r in rows], pa.int64()),
        "label": pa.array([p.label for p, _ in rows], pa.string()),
    }
    for key in sweep.keys:
        cols[key] = _column([p.values[key] for p, _ in rows])
    names: list[str] = [m.path for m in metrics.KEY_METRICS]
    seen = set(names) | set(cols)
    for res in results:
        for k in res.numbers:
            if k not in seen:
                seen.add(k)
                names.append(k)
    for k in names:
        vals = [res.key.get(k) if k in res.key else res.numbers.get(k) for res in results]
        if all(v is None for v in vals):
            cols[k] = pa.array(vals, pa.float64())
        elif all(v is None or isinstance(v, int) for v in vals):
            cols[k] = pa.array(vals, pa.int64())
        else:
            cols[k] = pa.array([None if v is None else float(v) for v in vals], pa.float64())
    return pa.table(cols)


def default_out(sweep: Sweep, root: Path = Path("runs")) -> Path:
    """`runs/<sweep name>/`."""
    from clearing_sim.outputs import folder_name

    return root / folder_name(sweep.name, "sweep")


def write_outputs(out: Path, sweep: Sweep, results: Sequence[TaskResult]) -> Path:
    """The sweep folder (sweep.json, sweep.parquet, the sweep file and its base), all or nothing."""
    from clearing_sim.outputs import (WRITE_ERRNOS, _move_into_place, discard_folder, dumps_json, temporary_folder,
                                      write_table)

    out = Path(out)
    tmp = temporary_folder(out)
    try:
        shutil.copyfile(sweep.source, tmp / "sweep.yaml")
        (tmp / "base.yaml").write_text(
            dump_yaml({"clearing_sim_version": __version__, **unstructure(sweep.base_scenario)}), encoding="utf-8")
        write_table(tmp / "sweep.parquet", to_table(sweep, results))
        (tmp / "sweep.json").write_text(dumps_json(to_json(sweep, results)), encoding="utf-8")
        _move_into_place(tmp, out)
    except BaseException as exc:
        discard_folder(tmp)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            raise WriteError(f"{out}: the sweep could not be written: {os.strerror(exc.errno)}; nothing was "
                             "written") from exc
        raise
    return out


__all__ = ["Sweep", "SweepError", "Point", "load_sweep", "run_sweep", "to_json", "to_table",
           "write_outputs", "default_out"]
