"""clearing-sim: a discrete-event simulator of a domestic card clearing and settlement network.

Notebook API: `load_scenario(path)` and `run(scenario, seed=..., mode=...)`, which
returns a `Result` with `.summary` (the dict of `summary.json`) and the tables
`.transactions`, `.clearing_records` and `.settlements` as pyarrow Tables.
"""

__version__ = "0.3.0"

from clearing_sim.api import load_scenario, run  # noqa: E402
from clearing_sim.results import Result  # noqa: E402

__all__ = ["__version__", "load_scenario", "run", "Result"]
