"""Coverage-guided fuzzing (atheris) of the two readers of untrusted input.

Targets: the scenario loader (`clearing_sim.scenario.parse_scenario`) and the clearing
file reader (`clearing_sim.ipm.read_file` and `inspect_file`). The property is the
project's contract for bad input: any bytes give a result or a typed error
(`ScenarioError` / `ClearingFileError`, both `InputError`s, exit 2 from the CLI), never
another exception. Runs for a bounded time:

    .venv/bin/python fuzz/fuzz_inputs.py scenario -atheris_runs=20000
    make fuzz          # both targets, bounded by FUZZ_SECONDS (default 60 each)

Needs the `fuzz` extra (`pip install -e .[fuzz]`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from clearing_sim import ipm
    from clearing_sim.errors import InputError
    from clearing_sim.scenario import parse_scenario

SEEDS = Path(__file__).resolve().parent.parent / "scenarios"


def fuzz_scenario(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        parse_scenario(text, "fuzz.yaml")
    except InputError:
        pass


def fuzz_clearing_file(data: bytes) -> None:
    try:
        ipm.read_file(data)
    except InputError:
        pass
    report = ipm.inspect_file(data)  # must never raise on bytes
    ipm.format_inspect(report)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("scenario", "clearing"):
        sys.exit("usage: fuzz_inputs.py scenario|clearing [libFuzzer options, e.g. -max_total_time=60]")
    target = fuzz_scenario if sys.argv[1] == "scenario" else fuzz_clearing_file
    argv = [sys.argv[0]] + sys.argv[2:]
    atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
