"""The `clearing-sim` command: a thin layer over the Python API.

Owns: arguments, exit codes (0 success, 2 invalid input with a message naming the
field or record, 1 internal error) and what is printed. Must never contain model
logic, and never show a traceback for bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from clearing_sim import __version__
from clearing_sim.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, InputError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Simulate a domestic card clearing and settlement network.",
)
out_console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _fen(x: int) -> str:
    """Fen as yuan with thousands separators, for people (files keep integer fen)."""
    sign = "-" if x < 0 else ""
    yuan, fen = divmod(abs(int(x)), 100)
    return f"{sign}{yuan:,}.{fen:02d}"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.2f}%" if whole else "-"


def print_summary(summary: dict, folder: Path | None) -> None:
    """The run's key figures as readable tables on stdout."""
    a, c, s = summary["authorisations"], summary["clearing"], summary["settlement"]
    head = f"[bold]{summary['scenario']}[/bold]  seed {summary['seed']}  mode {summary['mode']}  " \
           f"clearing-sim {summary['version']}"
    out_console.print(head)
    t = Table(title="Authorisations, clearing and settlement", show_header=True, header_style="bold")
    t.add_column("figure")
    t.add_column("value", justify="right")
    lat = a["latency_ms"]
    lag = s["lag_hours"]
    rows = [
        ("authorisations", f"{a['count']:,}"),
        ("approved", f"{a['approved']:,} ({_pct(a['approved'], a['count'])})"),
        ("declined", f"{a['declined']:,}  " + " ".join(f"{k}:{v:,}" for k, v in a["by_response_code"].items() if k != "00")),
        ("stand-in approvals", f"{a['stand_in']:,}"),
        ("reversals", f"{a['reversals']:,}"),
        ("auth latency p50 / p99 / max (ms)", f"{lat['p50']} / {lat['p99']} / {lat['max']}" if lat["max"] is not None else "-"),
        ("clearing files (rejected)", f"{c['files']:,} ({c['files_rejected']:,})"),
        ("records presented / cleared / rejected",
         f"{c['records_presented']:,} / {c['records_cleared']:,} / {c['records_rejected']:,}"),
        ("amount cleared (CNY)", _fen(c["amount_cleared_minor"])),
        ("interchange (CNY)", _fen(c["interchange_minor"])),
        ("scheme fees (CNY)", _fen(c["scheme_fees_minor"])),
        ("settlement lag p50 / p90 / max (h)", f"{lag['p50']} / {lag['p90']} / {lag['max']}" if lag["max"] is not None else "-"),
    ]
    for r in rows:
        t.add_row(*r)
    out_console.print(t)
    if s["windows"]:
        wt = Table(title="Net positions by settlement window (CNY; + receives, - pays)", header_style="bold")
        wt.add_column("participant")
        for w in s["windows"]:
            wt.add_column(w["id"], justify="right")
        wt.add_row("[dim]status[/dim]", *[w["status"] for w in s["windows"]])
        wt.add_row("[dim]gross[/dim]", *[_fen(w["gross_minor"]) for w in s["windows"]])
        wt.add_row("[dim]net[/dim]", *[_fen(w["net_minor"]) for w in s["windows"]], end_section=True)
        for pid in summary["participants"]:
            wt.add_row(pid, *[_fen(w["positions_minor"][pid]) for w in s["windows"]])
        wt.add_row("[dim]sum[/dim]", *[_fen(sum(w["positions_minor"].values())) for w in s["windows"]])
        out_console.print(wt)
    if folder is not None:
        out_console.print(f"run folder: {folder}")


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    out: Annotated[Optional[Path], typer.Option(help="Run folder (default runs/<scenario>-<seed>/).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Root seed, replacing the scenario's run.seed.")] = None,
    mode: Annotated[str, typer.Option(help="Fidelity mode: detailed.")] = "detailed",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No log lines on the console.")] = False,
    trace_messages: Annotated[bool, typer.Option(
        "--trace-messages", help="Also write every authorisation message to messages.iso8583 (ISO 8583, slow).",
    )] = False,
) -> None:
    """Simulate a scenario into a run folder and print its summary."""
    from clearing_sim import api, log, outputs
    from clearing_sim.model.network import MODES
    from clearing_sim.scenario import with_seed

    if mode not in MODES:
        raise InputError(f"--mode: unknown mode {mode!r} (one of: {', '.join(MODES)})")
    sc = with_seed(api.load_scenario(scenario), seed)
    folder = out if out is not None else outputs.default_out(sc)

    def open_log(fh):
        log.configure(fh, console=not quiet)

    def simulate():
        logger = log.get_logger(scenario=sc.name, seed=sc.run.seed, mode=mode)
        logger.info("run started", version=__version__, out=str(folder))
        result = api.run(sc, mode=mode)
        a = result.summary["authorisations"]
        logger.info("run finished", authorisations=a["count"], approved=a["approved"],
                    windows=len(result.summary["settlement"]["windows"]))
        return result

    def write_extras(tmp: Path, result) -> None:
        if trace_messages:
            from clearing_sim import messages

            count = messages.write_trace(tmp / "messages.iso8583", result.message_log())
            log.get_logger(scenario=sc.name).info("message trace written", messages=count)

    result = outputs.run_into_folder(folder, sc, simulate, open_log, write_extras)
    print_summary(result.summary, folder)


@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")]) -> None:
    """Check a scenario without running it (exit 0 valid, 2 invalid)."""
    from clearing_sim import api

    sc = api.load_scenario(scenario)
    tx = sc.traffic.transactions_per_day * sc.run.days
    out_console.print(
        f"{scenario}: valid scenario {sc.name!r}: {len(sc.institutions)} institutions, "
        f"{len(sc.issuers)} issuers, {len(sc.acquirers)} acquirers, ~{tx:,} transactions over "
        f"{sc.run.days} day(s), seed {sc.run.seed}"
    )


@app.command()
def version() -> None:
    """Print the version."""
    out_console.print(f"clearing-sim {__version__}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map errors to exit codes."""
    try:
        app(args=argv, standalone_mode=False)
    except InputError as exc:
        err_console.print(Text.assemble(("error: ", "red"), str(exc)), soft_wrap=True)
        return EXIT_BAD_INPUT
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: exit 1, no traceback dump
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        err_console.print(Text.assemble(("internal error: ", "red"), f"{type(exc).__name__}: {exc}"))
        err_console.print("This is a bug in clearing-sim; the run folder's status.json has the traceback.")
        return EXIT_INTERNAL
    return 0
