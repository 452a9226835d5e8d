"""The `clearing-sim` command: a thin layer over the Python API.

Owns: arguments, exit codes (0 success, 2 invalid input with a message naming the
field or record, 1 internal error) and what is printed. Must never contain model
logic, and never show a traceback for bad input.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from clearing_sim import __version__
from clearing_sim.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, FULL_ERRNOS, InputError, ScenarioError, WriteError
from clearing_sim.metrics import yuan_text

if TYPE_CHECKING:
    from clearing_sim.scenario import Scenario

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Simulate a domestic card clearing and settlement network.",
)
out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.2f}%" if whole else "-"


def _wide_console() -> Console:
    """stdout, wide enough for side-by-side tables when it is not a terminal (pipes, CI)."""
    return out_console if out_console.is_terminal else Console(highlight=False, width=200)


@app.command()
def compare(
    sources: Annotated[list[Path], typer.Argument(help="Scenario files and/or run folders.")],
    replications: Annotated[int, typer.Option("--replications", "-r",
                                              help="Replications of each scenario file.")] = 1,
    out: Annotated[Optional[Path], typer.Option(help="Folder for compare.json/.csv/.html "
                                                     "(default runs/compare-<names>/).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Root seed of the replications' seeds "
                                                     "(default: the first scenario file's run.seed).")] = None,
    mode: Annotated[str, typer.Option(help="Fidelity mode.")] = "detailed",
    workers: Annotated[int, typer.Option(help="Local worker processes for the replications.")] = 1,
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler address (or 'local').")] = None,
) -> None:
    """Compare scenarios side by side: key figures as means with 95% intervals."""
    from clearing_sim import compare as cmp
    from clearing_sim import executor, metrics
    from clearing_sim.model.network import MODES

    if mode not in MODES:
        raise InputError(f"--mode: unknown mode {mode!r} (one of: {', '.join(MODES)})")
    srcs = cmp.resolve_sources(sources)
    for line in cmp.version_notes(srcs):
        out_console.print(line)
    files = [s for s in srcs if s.kind == "scenario"]
    root = seed if seed is not None else (files[0].scenario.run.seed if files else 0)
    if out is None:
        names = "-vs-".join("".join(c if c.isalnum() or c in "-_." else "_" for c in s.name) for s in srcs)
        out = Path("runs") / f"compare-{names[:80]}"
    cmp.check_out(out)  # before the replications run
    compared = cmp.compare(srcs, replications=replications, root_seed=root, mode=mode, workers=workers,
                           scheduler=scheduler, progress=executor.show_progress())
    written = cmp.write_outputs(out, compared, root, mode)

    t = Table(title=f"Key figures: mean [95% interval] over replications (root seed {root})",
              header_style="bold")
    t.add_column("figure")
    for c in compared:
        t.add_column(f"{c.name}\n{c.kind}, R={c.replications}", justify="right")
    for m in metrics.KEY_METRICS:
        unit = metrics.unit_label(m.unit)
        t.add_row(m.label + (f" ({unit})" if unit else ""),
                  *[cmp.cell(c.intervals.get(m.path), m.unit) for c in compared])
    console = _wide_console()
    console.print(t)
    console.print("wrote " + ", ".join(str(p) for p in written))


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep YAML file.")],
    out: Annotated[Optional[Path], typer.Option(help="Sweep folder (default runs/<sweep name>/).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Local worker processes (default: one per CPU).")] = None,
    scheduler: Annotated[Optional[str], typer.Option(
        help="Dask scheduler address, e.g. tcp://host:8786 ('local' starts a local Dask cluster).")] = None,
) -> None:
    """Run a grid of scenario variants with replications into sweep.json and sweep.parquet."""
    from clearing_sim import executor, metrics, outputs
    from clearing_sim import sweep as sw

    s = sw.load_sweep(sweep_file)
    n_workers = workers if workers is not None else executor.default_workers()
    if n_workers < 1:
        raise InputError(f"--workers: must be at least 1, got {n_workers}")
    folder = out if out is not None else sw.default_out(s)
    from clearing_sim.outputs import check_out_folder

    check_out_folder(folder)  # before the sweep runs, not after
    err_console.print(f"sweep {s.name}: {len(s.points)} point(s) x {s.replications} replication(s), "
                      f"root seed {s.root_seed}, "
                      + (f"Dask scheduler {scheduler}" if scheduler else f"{n_workers} local worker(s)"))
    results = sw.run_sweep(s, workers=n_workers, scheduler=scheduler, progress=executor.show_progress())
    sw.write_outputs(folder, s, results)

    data = sw.to_json(s, results)
    shown = [m for m in metrics.KEY_METRICS if any(m.path in p["metrics"] for p in data["points"])]
    heads, columns = [], []  # each figure's header and cells: "mean +-half", wrapped at the space
    for m in shown:
        unit = metrics.unit_label(m.unit)
        heads.append(m.label + (f" ({unit})" if unit else ""))
        cells = []
        for p in data["points"]:
            iv = p["metrics"].get(m.path)
            if iv is None:
                cells.append("-")
                continue
            half = max(iv["ci95"][1] - iv["mean"], iv["mean"] - iv["ci95"][0])
            cells.append(metrics.fmt_value(iv["mean"], m.unit)
                         + (f" +-{metrics.fmt_value(half, m.unit)}" if half > 0 else ""))
        columns.append(cells)
    grid = [[_grid_value(point.values[k]) for k in s.keys] for point in s.points]
    # Every column as wide as its longest word, so that no figure is cut short: the figures go
    # into as many tables as the width needs, each repeating the point and its values.
    lead = [_longest_word(["point", *(str(p.index) for p in s.points)])] + [
        _longest_word([k, *(row[i] for row in grid)]) for i, k in enumerate(s.keys)]
    need = [_longest_word([h, *cells]) for h, cells in zip(heads, columns)]
    console = _wide_console()
    groups = _fit_groups([w + 3 for w in need], sum(w + 3 for w in lead) + 1, console.width)
    for first, end in groups:
        shown_part = f", figures {first + 1}-{end} of {len(need)}" if len(groups) > 1 else ""
        t = Table(title=f"Sweep {s.name}: mean +- 95% half-width over {s.replications} replication(s)"
                  + shown_part, header_style="bold")
        t.add_column("point", justify="right", min_width=lead[0])
        for key, w in zip(s.keys, lead[1:]):
            t.add_column(key, min_width=w)
        for h, w in zip(heads[first:end], need[first:end]):
            t.add_column(h, justify="right", width=w)
        for n, point in enumerate(s.points):
            t.add_row(str(point.index), *grid[n], *[cells[n] for cells in columns[first:end]])
        console.print(t)
    console.print(f"sweep folder: {folder}")


def _longest_word(texts: list[str]) -> int:
    """The width of the longest word (run of characters without a space) in `texts`."""
    return max((len(word) for text in texts for word in text.split()), default=1)


def _grid_value(v: object) -> str:
    """A swept value for a table cell: a list as its items, anything else as JSON."""
    import json

    if isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v):
        return " ".join(str(x) for x in v)
    return json.dumps(v, ensure_ascii=False)


def _run_clock(t_s: float) -> str:
    """Seconds from 00:00 of day 1 as `day D HH:MM:SS.mmm`."""
    ms = round(t_s * 1000)
    day, ms = divmod(ms, 86_400_000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    return f"day {day + 1} {h:02d}:{m:02d}:{ms / 1000:06.3f}"


def _window_groups(windows: list[dict], participants: list[str], width: int) -> list[tuple[int, int]]:
    """The settlement windows as runs `[first, end)` whose net-position table fits `width`
    characters (each column takes its widest cell plus 3 for border and padding), so that
    no figure is cut short; at least one window a table."""
    def cells(w: dict) -> list[str]:
        return [w["id"], w["status"], yuan_text(w["gross_minor"]), yuan_text(w["net_minor"]),
                yuan_text(sum(w["positions_minor"].values())), *map(yuan_text, w["positions_minor"].values())]

    start_width = max(len(p) for p in ["participant", "status", *participants]) + 4
    return _fit_groups([max(map(len, cells(w))) + 3 for w in windows], start_width, width)


def _fit_groups(needs: list[int], lead: int, width: int) -> list[tuple[int, int]]:
    """Runs `[first, end)` of columns, each `needs[i]` characters wide, that fit `width` beside
    `lead` characters of columns every table repeats; at least one column a run."""
    groups: list[tuple[int, int]] = []
    first, used = 0, lead
    for i, need in enumerate(needs):
        if i > first and used + need > width:
            groups.append((first, i))
            first, used = i, lead
        used += need
    if needs:
        groups.append((first, len(needs)))
    return groups


def print_summary(summary: dict, folder: Path | None) -> None:
    """The run's key figures as readable tables on stdout."""
    a, c, s = summary["authorisations"], summary["clearing"], summary["settlement"]
    head = f"[bold]{summary['scenario']}[/bold]  seed {summary['seed']}  mode {summary['mode']}  " \
           f"clearing-sim {summary['version']}"
    out_console.print(head)
    console = _wide_console()  # a figure is never cut short: labels wrap, values do not
    t = Table(title="Authorisations, clearing and settlement", show_header=True, header_style="bold")
    t.add_column("figure", overflow="fold")
    t.add_column("value", justify="right", no_wrap=True)
    lat = a["latency_ms"]
    lag = s["lag_hours"]
    rows = [
        ("authorisations", f"{a['count']:,}"),
        ("approved", f"{a['approved']:,} ({_pct(a['approved'], a['count'])})"),
        ("declined", f"{a['declined']:,}  " + " ".join(f"{k}:{v:,}" for k, v in a["by_response_code"].items() if k != "00")),
        ("stand-in approvals", f"{a['stand_in']:,}"),
        ("reversals", f"{a['reversals']:,}"),
        # Purchases an issuer kept inside the bank (on_us_in_bank) are not among the network's
        # authorisations above; without this row a run of them read as a day of none.
        *([("kept in the bank: purchases / approved", f"{ib['count']:,} / {ib['approved']:,}")]
          if (ib := a.get("in_bank") or {}).get("count") else []),
        *([("store-and-forward drained", _run_clock(a["saf_drained_s"]))] if a.get("saf_drained_s") is not None else []),
        ("auth latency p50 / p99 / max (ms)", f"{lat['p50']} / {lat['p99']} / {lat['max']}" if lat["max"] is not None else "-"),
        ("clearing files (rejected)", f"{c['files']:,} ({c['files_rejected']:,})"),
        ("records presented / cleared / rejected",
         f"{c['records_presented']:,} / {c['records_cleared']:,} / {c['records_rejected']:,}"),
        ("amount cleared (CNY)", yuan_text(c["amount_cleared_minor"])),
        ("interchange (CNY)", yuan_text(c["interchange_minor"])),
        ("scheme fees (CNY)", yuan_text(c["scheme_fees_minor"])),
        ("settlement lag p50 / p90 / max (h)", f"{lag['p50']} / {lag['p90']} / {lag['max']}" if lag["max"] is not None else "-"),
    ]
    if c.get("rejects_by_reason"):
        rows.append(("clearing rejects by reason", " ".join(f"{k}:{v:,}" for k, v in c["rejects_by_reason"].items())))
    if c.get("refunds") or c.get("chargebacks") or c.get("second_presentments"):
        rows.append(("refunds / chargebacks / second presentments",
                     f"{c['refunds']:,} / {c['chargebacks']:,} / {c['second_presentments']:,}"))
    for r in rows:
        t.add_row(*r)
    console.print(t, soft_wrap=True)  # soft_wrap: the titles unjustified, as out_console prints them
    title = "Net positions by settlement window (CNY; + receives, - pays)"
    groups = _window_groups(s["windows"], summary["participants"], console.width)
    for first, end in groups:
        windows = s["windows"][first:end]
        shown = f", windows {first + 1}-{end} of {len(s['windows'])}" if len(groups) > 1 else ""
        wt = Table(title=title + shown, header_style="bold")
        wt.add_column("participant", no_wrap=True)
        for w in windows:
            wt.add_column(w["id"], justify="right", no_wrap=True)
        wt.add_row("[dim]status[/dim]", *[w["status"] for w in windows])
        wt.add_row("[dim]gross[/dim]", *[yuan_text(w["gross_minor"]) for w in windows])
        wt.add_row("[dim]net[/dim]", *[yuan_text(w["net_minor"]) for w in windows], end_section=True)
        for pid in summary["participants"]:
            wt.add_row(pid, *[yuan_text(w["positions_minor"][pid]) for w in windows])
        wt.add_row("[dim]sum[/dim]", *[yuan_text(sum(w["positions_minor"].values())) for w in windows])
        console.print(wt, soft_wrap=True)
    if s["windows"]:
        from clearing_sim.settlement_figures import default_lines

        for line in default_lines(s, yuan_text):
            out_console.print(line)
    if folder is not None:
        out_console.print(f"run folder: {folder}")


class _Progress:
    """Where a run has got to: shown as a bar on a terminal, recorded if the run is interrupted."""

    def __init__(self, show: bool):
        self.now_s = 0.0
        self.horizon_s = 0.0
        self._bar = None
        if show:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), console=err_console, transient=True)
            self._task = self._bar.add_task("", total=1.0)

    def __enter__(self) -> "_Progress":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, now_s: float, horizon_s: float) -> None:
        self.now_s, self.horizon_s = now_s, horizon_s
        if self._bar is not None:
            day, rest = divmod(int(now_s), 86400)
            self._bar.update(self._task, completed=now_s / horizon_s,
                             description=f"day {day + 1} {rest // 3600:02d}:00")

    def state(self) -> dict:
        return {"simulated_s": self.now_s, "horizon_s": self.horizon_s,
                "fraction": round(self.now_s / self.horizon_s, 4) if self.horizon_s else 0.0}


def _show_progress() -> bool:
    """A bar only for a person at a terminal: never in CI or when stderr is a pipe."""
    import os

    return err_console.is_terminal and not os.environ.get("CI")


def _terminate_as_interrupt() -> None:
    """SIGTERM stops a command the way Ctrl-C does: a run's folder is marked interrupted, a sweep's
    or comparison's worker processes are stopped and nothing is written."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. inside a test runner's worker)
        pass


_interrupt_told: list[Path] = []  # run folders whose interruption was told (and marked in status.json)


def _simulate_into(folder: Path, sc, mode: str, quiet: bool, trace_messages: bool = False,
                   clearing_files: bool = False):
    from clearing_sim import api, log, outputs, streamed
    from clearing_sim.results import Result

    stream = streamed.streams(sc, mode, keep_files=clearing_files or trace_messages)

    def open_log(fh):
        log.configure(fh, console=not quiet)

    with _Progress(_show_progress() and not quiet) as progress:
        def simulate(tmp: Path):
            logger = log.get_logger(scenario=sc.name, seed=sc.run.seed, mode=mode)
            logger.info("run started", version=__version__, out=str(folder))
            if stream:
                logger.info("streamed run: tables written by row groups as the day goes")
                result = Result(streamed.run_streamed(sc, tmp, mode, progress=progress), None, None, None,
                                written=True)
            else:
                result = api.run(sc, mode=mode, progress=progress, clearing_files=clearing_files)
            a = result.summary["authorisations"]
            for fault in result.summary["clearing"].get("faults_not_applied", []):
                logger.warning("fault not applied", **fault)
            logger.info("run finished", authorisations=a["count"], approved=a["approved"],
                        windows=len(result.summary["settlement"]["windows"]))
            return result

        def write_extras(tmp: Path, result) -> None:
            if trace_messages:
                from clearing_sim import messages

                count = messages.write_trace(tmp / "messages.iso8583", result.message_log())
                log.get_logger(scenario=sc.name).info("message trace written", messages=count)

        try:
            return outputs.run_into_folder(folder, sc, mode, simulate, open_log, progress.state, write_extras)
        except KeyboardInterrupt:
            err_console.print(f"interrupted: {folder}/status.json records the seed and how far the run got")
            _interrupt_told.append(folder)
            raise typer.Exit(130) from None


@app.command()
def run(
    scenario: Annotated[Optional[Path], typer.Argument(help="Scenario YAML file.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run folder (default runs/<scenario>-<seed>/).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Root seed, replacing the scenario's run.seed.")] = None,
    mode: Annotated[Optional[str], typer.Option(help="Fidelity mode: detailed (a SimPy process per authorisation) or fast (the same outcomes from compiled kernels); default detailed.")] = None,
    replay: Annotated[Optional[Path], typer.Option(help="Rerun a finished run folder from its config.yaml "
                                                         "and say whether the outputs are identical.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No log lines on the console.")] = False,
    clearing_files: Annotated[bool, typer.Option("--clearing-files", help="Keep the clearing files in the run "
                                                 "folder: clearing/in/ (sent to the network), clearing/out/ "
                                                 "(sent by it: cleared records and rejects).")] = False,
    trace_messages: Annotated[bool, typer.Option(
        "--trace-messages", help="Also write every authorisation message to messages.iso8583 (ISO 8583, slow).",
    )] = False,
) -> None:
    """Simulate a scenario into a run folder and print its summary."""
    from clearing_sim import api, outputs
    from clearing_sim.model.network import MODES
    from clearing_sim.scenario import with_seed

    if replay is not None:
        # The replay's mode, message trace and clearing files are the folder's own.
        given = [name for name, v in (("SCENARIO", scenario), ("--seed", seed), ("--mode", mode),
                                      ("--trace-messages", trace_messages or None),
                                      ("--clearing-files", clearing_files or None)) if v is not None]
        if given:
            raise InputError(f"--replay takes a run folder alone (its config.yaml gives the scenario, seed and "
                             f"mode): no {', '.join(given)}")
        _replay(replay, out, quiet)
        return
    mode = "detailed" if mode is None else mode
    if scenario is None:
        raise InputError("run: give a SCENARIO file (or --replay RUN_FOLDER)")
    if mode not in MODES:
        raise InputError(f"--mode: unknown mode {mode!r} (one of: {', '.join(MODES)})")
    sc = with_seed(api.load_scenario(scenario), seed)
    folder = out if out is not None else outputs.default_out(sc)
    outputs.remove_stale(folder)  # a killed run's scratch beside it would count against the disk check
    _check_fits(sc, mode, clearing_files or trace_messages, folder)  # before the run folder exists
    outputs.check_out_folder(folder)
    out_console.print(f"running {sc.name!r} with seed {sc.run.seed} in {mode} mode -> {folder}")
    result = _simulate_into(folder, sc, mode, quiet, trace_messages, clearing_files)
    print_summary(result.summary, folder)


def _check_fits(sc: Scenario, mode: str, keep_files: bool, folder: Path) -> None:
    """Refuse (InputError, exit 2) a run that cannot fit in memory, or, streamed, on the disk
    holding `folder`: before anything is written."""
    from clearing_sim import streamed
    from clearing_sim.resources import check_memory

    streams = streamed.streams(sc, mode, keep_files=keep_files)
    because = None
    if mode == "fast" and not streams and keep_files:
        because = "--clearing-files and --trace-messages keep the whole day"
    check_memory(sc, streamed=streams, out=folder, not_streamed_because=because)


_REPLAY_SCRATCH = ".clearing-sim-replay-"


def _replay(folder: Path, out: Path | None, quiet: bool) -> None:
    """Rerun `folder` from its config.yaml into a scratch folder and compare the bytes."""
    import tempfile

    from clearing_sim import api, outputs

    try:
        finished = (folder / "summary.json").is_file()
    except OSError as exc:  # a name too long for the file system
        raise InputError(f"--replay: cannot read {folder}: {exc.strerror or exc}") from None
    if not finished:
        raise InputError(f"{folder}: not a finished run folder (no summary.json)")
    if out is not None:
        # The replay replaces --out as a whole: at the replayed folder (or around it) it would
        # overwrite the outputs it is compared with, and always find them identical.
        src, dst = folder.resolve(), Path(out).resolve()
        if dst == src or src in dst.parents or dst in src.parents:
            raise InputError(f"--out: {out} is the replayed run folder {folder}, inside it or holds it; "
                             "the replay must go to another folder (or leave out --out)")
    version, mode = outputs.read_config_header(folder / "config.yaml")
    from clearing_sim.model.network import MODES

    if mode not in MODES:
        raise InputError(f"{folder / 'config.yaml'}: the header line names mode {mode!r}, not one of "
                         f"{', '.join(MODES)}")
    sc = api.load_scenario(folder / "config.yaml")
    if version != __version__:
        out_console.print(f"note: {folder} was made by clearing-sim {version}; this is {__version__}")
    trace, files = (folder / "messages.iso8583").is_file(), (folder / "clearing").is_dir()
    scratch = None
    if out is None:
        # Beside the replayed folder (its disk held the run once) where it can be written, else in /tmp.
        beside = folder.resolve().parent
        where = beside if os.access(beside, os.W_OK | os.X_OK) else Path(tempfile.gettempdir())
        outputs.remove_unheld(where.glob(f"{_REPLAY_SCRATCH}*"))  # a killed replay's, there for ever
        scratch = Path(tempfile.mkdtemp(prefix=_REPLAY_SCRATCH, dir=where))
        outputs.hold_folder(scratch)
        target = scratch / "run"
    else:
        target = out
    try:
        _check_fits(sc, mode, trace or files, target)
        out_console.print(f"replaying {folder} (scenario {sc.name!r}, seed {sc.run.seed}, mode {mode})")
        _simulate_into(target, sc, mode, quiet, trace_messages=trace, clearing_files=files)
        differ = outputs.compare_folders(folder, target)
    finally:
        if scratch is not None:
            outputs.discard_folder(scratch)
    if differ:
        err_console.print(f"replay differs from {folder}: {', '.join(differ)}")
        raise typer.Exit(EXIT_INTERNAL)
    out_console.print(f"replay identical: every output file of {folder} (except log.jsonl) is byte-identical")


@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="Scenario (or sweep) YAML file.")]) -> None:
    """Check a scenario (or a sweep file and its every point) without running it (exit 0 valid, 2 invalid)."""
    from clearing_sim import api

    try:
        sc = api.load_scenario(scenario)
    except ScenarioError:
        from clearing_sim import sweep as sw

        if not sw.is_sweep_file(scenario):
            raise

        s = sw.load_sweep(scenario)  # a sweep's own problems, with their lines
        out_console.print(f"{scenario}: valid sweep {s.name!r}: {len(s.points)} point(s) x {s.replications} "
                          f"replication(s) of {s.base.name}, every point a valid scenario")
        return
    tx = sc.traffic.transactions_per_day * sc.run.days
    out_console.print(
        f"{scenario}: valid scenario {sc.name!r}: {len(sc.institutions)} institutions, "
        f"{len(sc.issuers)} issuers, {len(sc.acquirers)} acquirers, ~{tx:,} transactions over "
        f"{sc.run.days} day(s), seed {sc.run.seed}"
    )


@app.command()
def inspect(
    clearing_file: Annotated[Path, typer.Argument(help="A clearing file (IPM-style, VBS or 1014-blocked).")],
    records: Annotated[int, typer.Option(help="How many of the first records to show (0 to 100).")] = 5,
) -> None:
    """Show a clearing file's header, counts, totals, first records and validation (exit 2 if rejected)."""
    from clearing_sim import ipm

    if not 0 <= records <= ipm.INSPECT_RECORDS_KEPT:
        raise InputError(f"--records: must be 0 to {ipm.INSPECT_RECORDS_KEPT}, got {records}")
    if not str(clearing_file).strip() or str(clearing_file) == ".":
        raise InputError("inspect: name a clearing file")
    try:
        if stat.S_ISCHR(clearing_file.stat().st_mode):  # /dev/zero: read until the memory runs out
            raise InputError(f"{clearing_file}: a device, not a clearing file")
        data = clearing_file.read_bytes()
    except OSError as exc:
        raise InputError(f"{clearing_file}: cannot read the file: {exc.strerror or exc}") from None
    report = ipm.inspect_file(data)
    out_console.print(Text(f"{clearing_file}\n" + ipm.format_inspect(report, n_first=records)))
    if not report.ok:
        number = ipm.REASON_CODES[report.reason_code][0]
        where = "" if report.record_index is None else f" at message {report.record_index + 1}"
        raise InputError(f"{clearing_file}: rejected, reason {report.reason_code} ({number}){where}: {report.reason}")


@app.command()
def version() -> None:
    """Print the version."""
    out_console.print(f"clearing-sim {__version__}")


def _usage_errors() -> tuple[type, ...]:
    """The argument parser's error classes (typer vendors click from 0.20 on)."""
    types: list[type] = []
    try:
        from typer.exceptions import TyperException

        types.append(TyperException)
    except ImportError:
        pass
    try:
        import click

        types.append(click.ClickException)
    except ImportError:
        pass
    return tuple(types)


def _printable_anywhere() -> None:
    """A character the console's encoding lacks (a Chinese bank name on an ASCII or Latin-1
    console) is printed as an escape such as `\\u4e2d`, not an error that stops the command."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map errors to exit codes."""
    _printable_anywhere()
    _interrupt_told.clear()
    _terminate_as_interrupt()  # for every command: a batch scheduler stops a sweep with SIGTERM too
    try:
        rc = app(args=argv, standalone_mode=False)
    except InputError as exc:
        err_console.print(Text.assemble(("error: ", "red"), str(exc)), soft_wrap=True)
        return EXIT_BAD_INPUT
    except WriteError as exc:  # a full disk, a folder made read-only: no bug, nothing to fix in the input
        err_console.print(Text.assemble(("error: ", "red"), str(exc)), soft_wrap=True)
        return EXIT_INTERNAL
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):  # a run's folder was marked in _simulate_into
        err_console.print("interrupted: nothing was left half-way")
        return 130
    except OSError as exc:
        if exc.filename is not None or exc.errno not in FULL_ERRNOS:
            return _internal_error(exc)
        # No file named: the console itself (stdout redirected to a full disk or /dev/full).
        err_console.print(Text.assemble(("error: ", "red"),
                                        f"could not write to the console: {os.strerror(exc.errno)}"))
        return EXIT_INTERNAL
    except Exception as exc:  # noqa: BLE001 - the last line of defence: exit 1, no traceback dump
        if isinstance(exc, _usage_errors()) and hasattr(exc, "show"):
            exc.show()  # an argument error: the parser's own message, exit 2
            return int(getattr(exc, "exit_code", EXIT_BAD_INPUT))
        return _internal_error(exc)
    if rc == 130 and not _interrupt_told:  # typer turns Ctrl-C and SIGTERM into exit 130, silently
        err_console.print("interrupted: nothing was left half-way")
    return rc if isinstance(rc, int) else 0


def _internal_error(exc: BaseException) -> int:
    err_console.print(Text.assemble(("internal error: ", "red"), f"{type(exc).__name__}: {exc}"))
    err_console.print("This is a bug in clearing-sim (for `run`, the run folder's status.json "
                      "has the traceback).")
    return EXIT_INTERNAL


if __name__ == "__main__":  # `python -m clearing_sim.cli ...`, as `python -m clearing_sim ...`
    sys.exit(main())
