"""Scenarios and cached runs shared by the authorisation tests (not a test module).

STRESS_YAML is built to make every rule of the authorisation side fire within a few
seconds of simulation: overloaded hosts (late answers; drops from a full queue when BANKB has no server),
unannounced and announced outages (requests lost on arrival, while waiting and in
service), degraded windows (one with no server at all), on-us purchases kept in the
bank, few cards with low credit limits (51s and cards used many times), small
stand-in limits over two days, and acquirer timeouts short enough that reversals
reach issuers before, and after, their decisions.
"""

from __future__ import annotations

import functools
from pathlib import Path

import attrs

from clearing_sim.model.network import SimulationState, simulate
from clearing_sim.scenario import Scenario, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parent.parent
OUTAGE_SCENARIO = ROOT / "scenarios" / "issuer_outage.yaml"

STRESS_YAML = """\
name: stress
run: {days: 2, seed: 7, start_date: "2026-11-02"}
institutions:
  - {id: BANKA}
  - {id: BANKB}
  - {id: BANKC}
  - {id: PAYD}
issuers:
  - institution: BANKA
    bins: ["512345", "51234599"]
    share: 0.5
    cards: 4000
    risk_decline_rate: 0.03
    credit_limit_minor: {distribution: lognormal, median: 30000, sigma: 0.6}
    stand_in: {per_transaction_minor: 8000, daily_minor: 150000}
    host:
      servers: 2
      queue_limit: 25
      service_time_ms: {distribution: exponential, mean: 1500}
      outages:
        - {day: 1, start: "10:00", end: "10:20"}
        - {day: 1, start: "12:30", end: "12:35"}
        - {day: 1, start: "12:50", end: "12:51"}
        - {day: 1, start: "19:00", end: "19:01"}
        - {day: 2, start: "12:20", end: "12:21"}
        - {day: 2, start: "19:00", end: "19:10"}
      degraded:
        - {day: 1, start: "12:00", end: "13:00", servers: 1}
  - institution: BANKB
    bins: ["512346"]
    share: 0.3
    cards: 3000
    credit_limit_minor: {distribution: lognormal, median: 20000, sigma: 0.5}
    stand_in: {per_transaction_minor: 6000, daily_minor: 60000}
    host:
      servers: 1
      queue_limit: 300
      service_time_ms: {distribution: exponential, mean: 400}
      outages:
        - {day: 1, start: "12:00", end: "12:30", announced: true}
        - {day: 2, start: "11:15", end: "11:25"}
      degraded:
        - {day: 1, start: "09:00", end: "09:05", servers: 0}
        - {day: 2, start: "11:00", end: "11:20", servers: 0}
        - {day: 2, start: "12:00", end: "14:00", servers: 0}
  - institution: BANKC
    bins: ["512347"]
    share: 0.2
    cards: 2000
    on_us_in_bank: true
    credit_limit_minor: {distribution: lognormal, median: 25000, sigma: 0.5}
    host:
      servers: 1
      service_time_ms: {distribution: exponential, mean: 2500}
      outages:
        - {day: 2, start: "09:30", end: "09:40"}
        - {day: 2, start: "12:10", end: "12:11"}
        - {day: 2, start: "18:30", end: "18:31"}
acquirers:
  - institution: BANKA
    share: 0.35
    merchants: 40
    category_mix: {"5411": 1.0}
    auth_timeout_ms: 3000
  - institution: BANKC
    share: 0.35
    merchants: 40
    category_mix: {"5812": 1.0}
  - institution: PAYD
    share: 0.3
    merchants: 60
    category_mix: {"5411": 0.5, "5812": 0.5}
    auth_timeout_ms: 1500
traffic:
  transactions_per_day: 30000
  unknown_bin_rate: 0.002
  hourly_profile: [0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 3.0, 4.0, 5.0, 6.5,
                   9.0, 8.0, 5.0, 4.0, 4.0, 5.0, 7.0, 8.0, 6.0, 4.0, 2.0, 0.8]
  amount_minor:
    "5411": {distribution: lognormal, median: 4000, sigma: 0.8}
    "5812": {distribution: uniform, low: 500, high: 12000}
network:
  latency_ms: {distribution: lognormal, median: 20, sigma: 0.5}
  switch_timeout_ms: 2000
clearing:
  cutoffs: ["23:45"]
settlement:
  windows: ["10:00"]
"""


@functools.cache
def stress_scenario() -> Scenario:
    return parse_scenario(STRESS_YAML, "stress.yaml")


@functools.cache
def stress_run() -> SimulationState:
    """The stress scenario, simulated once per test session."""
    return simulate(stress_scenario())


def small_outage_scenario(transactions_per_day: int = 40_000) -> Scenario:
    """scenarios/issuer_outage.yaml with fewer purchases (same outage, degradation and timeouts)."""
    sc = load_scenario(OUTAGE_SCENARIO)
    return attrs.evolve(sc, traffic=attrs.evolve(sc.traffic, transactions_per_day=transactions_per_day))


@functools.cache
def small_outage_run() -> SimulationState:
    """The scaled-down outage scenario, simulated once per test session."""
    return simulate(small_outage_scenario())
