"""clearing-sim: a discrete-event simulator of a domestic card clearing and settlement network.

Notebook API: `load_scenario(path)` and `run(scenario, seed=..., mode=...)`, which
returns a `Result` with `.summary` (the dict of `summary.json`) and the tables
`.transactions`, `.clearing_records` and `.settlements` as pyarrow Tables.

The three names are loaded on first use (PEP 562): importing the package itself takes
no time, so the `clearing-sim` command can answer Ctrl-C from its very first moment
(`clearing_sim._entry`) while numpy, numba and pyarrow load.
"""

from typing import TYPE_CHECKING

__version__ = "0.3.2"

__all__ = ["__version__", "load_scenario", "run", "Result"]

if TYPE_CHECKING:
    from clearing_sim.api import load_scenario, run
    from clearing_sim.results import Result

_LAZY = {"load_scenario": "clearing_sim.api", "run": "clearing_sim.api", "Result": "clearing_sim.results"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # loaded once
        return value
    raise AttributeError(f"module 'clearing_sim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
