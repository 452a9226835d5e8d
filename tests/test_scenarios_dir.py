"""Integration: every scenario shipped in scenarios/ validates and runs with balanced books."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from clearing_sim.cli import main
from clearing_sim.clearing_results import RECORD_NULLABLE
from clearing_sim.results import TRANSACTION_NULLABLE
from clearing_sim.settlement_figures import SETTLEMENT_NULLABLE

NULLABLE = {"transactions": TRANSACTION_NULLABLE, "clearing_records": RECORD_NULLABLE,
            "settlements": SETTLEMENT_NULLABLE}

# sweep_*.yaml are sweep files (a base scenario and a grid), loaded by tests/test_sweep.py.
SCENARIOS = sorted(p for p in (Path(__file__).resolve().parent.parent / "scenarios").glob("*.yaml")
                   if not p.name.startswith("sweep_"))


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_runs(path: Path, tmp_path: Path) -> None:
    """The scenario runs to a summary whose windows sum to zero and whose counts add up."""
    from clearing_sim.scenario import load_scenario

    if load_scenario(path).traffic.transactions_per_day * load_scenario(path).run.days > 5_000_000:
        pytest.skip("national-scale scenario: too large for the test suite (tests/test_streamed.py runs its "
                    "network at 1/500 of its volume; the note of issue 7 gives the full run)")
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "-q"]) == 0
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    a, c = s["authorisations"], s["clearing"]
    assert a["count"] > 0 and a["count"] == a["approved"] + a["declined"]
    assert c["records_presented"] == c["records_cleared"] + c["records_rejected"]
    for w in s["settlement"]["windows"]:
        assert sum(w["positions_minor"].values()) == 0
    # Fast mode gives the same tables and summary (apart from the mode) on every shipped scenario.
    assert main(["run", str(path), "--mode", "fast", "--out", str(tmp_path / "fast"), "-q"]) == 0
    f = json.loads((tmp_path / "fast" / "summary.json").read_text())
    assert f["mode"] == "fast" and s["mode"] == "detailed"
    assert {k: v for k, v in f.items() if k != "mode"} == {k: v for k, v in s.items() if k != "mode"}
    for name in ("transactions", "clearing_records", "settlements"):
        d = pq.read_table(tmp_path / "run" / f"{name}.parquet")
        q = pq.read_table(tmp_path / "fast" / f"{name}.parquet")
        assert d.column_names == q.column_names, name
        # The same schema whatever the scenario: the columns that may be null are fixed per table.
        assert d.schema.equals(q.schema), name
        assert {f.name for f in d.schema if f.nullable} == NULLABLE[name], name
        for col in d.column_names:
            x, y = d[col].to_numpy(zero_copy_only=False), q[col].to_numpy(zero_copy_only=False)
            same = np.array_equal(x, y, equal_nan=True) if x.dtype.kind == "f" else d[col].equals(q[col])
            assert same, (name, col)


def test_scenarios_present() -> None:
    """The default scenario is shipped."""
    assert any(p.name == "baseline.yaml" for p in SCENARIOS)
