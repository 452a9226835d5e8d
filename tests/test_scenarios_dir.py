"""Integration: every scenario shipped in scenarios/ validates and runs with balanced books."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clearing_sim.cli import main

# sweep_*.yaml are sweep files (a base scenario and a grid), loaded by tests/test_sweep.py.
SCENARIOS = sorted(p for p in (Path(__file__).resolve().parent.parent / "scenarios").glob("*.yaml")
                   if not p.name.startswith("sweep_"))


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_runs(path: Path, tmp_path: Path) -> None:
    """The scenario runs to a summary whose windows sum to zero and whose counts add up."""
    from clearing_sim.scenario import load_scenario

    if load_scenario(path).traffic.transactions_per_day * load_scenario(path).run.days > 5_000_000:
        pytest.skip("national-scale scenario: exercised by the benchmarks, not the test suite")
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "-q"]) == 0
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    a, c = s["authorisations"], s["clearing"]
    assert a["count"] > 0 and a["count"] == a["approved"] + a["declined"]
    assert c["records_presented"] == c["records_cleared"] + c["records_rejected"]
    for w in s["settlement"]["windows"]:
        assert sum(w["positions_minor"].values()) == 0


def test_scenarios_present() -> None:
    """The default scenario is shipped."""
    assert any(p.name == "baseline.yaml" for p in SCENARIOS)
