"""Shared fixtures: a small valid scenario as YAML text, as a file and as a Scenario; the Hypothesis profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from clearing_sim.scenario import Scenario, parse_scenario

# No Hypothesis deadline anywhere: tests never assert on wall-clock time, and the first call
# of a compiled kernel (numba, cached per machine) can take far longer than the rest.
settings.register_profile("clearing-sim", deadline=None)
settings.load_profile("clearing-sim")

SMALL_YAML = """\
name: small
run: {days: 1, seed: 42, start_date: "2026-11-02"}
institutions:
  - {id: BANKA, name: Bank A}
  - {id: BANKB, name: Bank B}
  - {id: BANKC, name: Bank C}
issuers:
  - institution: BANKA
    bins: ["400001", "40000210"]
    share: 0.6
    cards: 5000
    host: {servers: 2, service_time_ms: {distribution: exponential, mean: 40}}
  - institution: BANKB
    bins: ["400003"]
    share: 0.4
    cards: 3000
    risk_decline_rate: 0.05
    host: {servers: 1, service_time_ms: {distribution: constant, value: 30}}
acquirers:
  - institution: BANKA
    share: 0.5
    merchants: 50
    category_mix: {"5411": 0.7, "5812": 0.3}
    submission_times: ["22:00"]
  - institution: BANKC
    share: 0.5
    merchants: 80
    category_mix: {"5812": 1.0}
    submission_times: ["12:00", "23:00"]
traffic:
  transactions_per_day: 3000
  unknown_bin_rate: 0.01
  amount_minor:
    "5411": {distribution: lognormal, median: 5000, sigma: 0.8}
    "5812": {distribution: uniform, low: 1000, high: 20000}
clearing:
  cutoffs: ["12:30", "23:45"]
settlement:
  windows: ["10:00"]
  lag_days: 1
"""


@pytest.fixture
def small_yaml() -> str:
    """YAML text of a small, valid three-bank scenario (about 3,000 purchases)."""
    return SMALL_YAML


@pytest.fixture
def small_scenario() -> Scenario:
    """The small scenario, loaded."""
    return parse_scenario(SMALL_YAML, "small.yaml")


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    """The small scenario written to a file."""
    p = tmp_path / "small.yaml"
    p.write_text(SMALL_YAML, encoding="utf-8")
    return p
