"""The Python API the CLI is a thin layer over.

Owns: `load_scenario` and `run` for notebooks and scripts. Must never write files
(the run folder is `clearing_sim.outputs`') or print.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clearing_sim.model.network import MODES, simulate
from clearing_sim.resources import check_memory
from clearing_sim.results import Result, build_result
from clearing_sim.scenario import Scenario, check_scenario, with_seed
from clearing_sim.scenario import load_scenario as _load


def load_scenario(path: str | Path) -> Scenario:
    """Load and check a scenario YAML file; raises ScenarioError (an InputError) if invalid."""
    return _load(path)


def run(scenario: Scenario | str | Path, seed: int | None = None, mode: str = "detailed",
        progress: Callable[[float, float], None] | None = None, clearing_files: bool = False) -> Result:
    """Simulate a scenario and return its summary and tables.

    `seed` replaces the scenario's `run.seed` when given; `mode` is one of
    `clearing_sim.model.network.MODES`; `progress(now_s, horizon_s)` is called once per
    simulated hour; `clearing_files` keeps every clearing file's bytes in
    `Result.clearing_files`. Raises ScenarioError for a bad scenario,
    ValueError for an unknown mode, InputError if the run cannot fit in memory
    (`clearing_sim.resources`) and InvariantError if the books do not balance.
    """
    if not isinstance(scenario, Scenario):
        scenario = _load(scenario)
    else:  # perhaps made or changed in Python: nothing is simulated before it is valid
        scenario = check_scenario(scenario)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (one of: {', '.join(MODES)})")
    check_memory(scenario)
    return build_result(simulate(with_seed(scenario, seed), mode, progress=progress,
                                 keep_clearing_files=clearing_files))
