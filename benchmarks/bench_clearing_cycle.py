"""A clearing cycle (clearing_sim.model.clearing): records read, validated and cleared per second.

The files are the acquirers' real files of a simulated day (the baseline scenario
scaled to N purchases, simulated once, outside the timing). Each round gives a fresh
clearing network all of them in one cycle:

* ``test_read_files`` (reference): ``ipm.read_file`` of every file -- the bytes read
  back into columns with the control totals checked, nothing else;
* ``test_clearing_cycle``: ``ClearingNetwork.run_cycle`` -- the same reading, then
  file-level checks, every record matched to its authorisation, duplicate / amount /
  late checks, interchange and scheme fees, and the obligations handed to a window.

N = 10^5 is the quick (CI) subset; N = 10^6 (about a minute to simulate) is ``full``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import attrs
import numpy as np
import pytest
import simpy

from clearing_sim import ipm
from clearing_sim.model.clearing import ClearingNetwork
from clearing_sim.model.clearing_data import RecordFactory
from clearing_sim.model.clearing_draws import draw_clearing
from clearing_sim.model.network import simulate
from clearing_sim.model.settlement import SettlementSystem
from clearing_sim.scenario import load_scenario

UNIT = "records"
BASELINE = Path(__file__).resolve().parent.parent / "scenarios" / "baseline.yaml"
CASES = [
    pytest.param(10**5, id="1e5"),
    pytest.param(10**6, id="1e6", marks=pytest.mark.full),
]
_CACHE: dict[int, tuple] = {}


def day_of(n: int):
    """A simulated day of about n purchases and the bytes of its acquirers' files (built once)."""
    if n not in _CACHE:
        sc = load_scenario(BASELINE)
        sc = attrs.evolve(sc, traffic=attrs.evolve(sc.traffic, transactions_per_day=n))
        state = simulate(sc, keep_clearing_files=True)
        kept = dict(state.clearing.kept_files)
        files = [(f, kept[f"in/{f.name}"]) for f in state.clearing.files if f.role == "acquirer"]
        _CACHE[n] = (state, files)
    return _CACHE[n]


def fresh_cycle(state, files) -> tuple[tuple[ClearingNetwork], dict]:
    """A new network (no file seen, nothing cleared) with every file waiting for its first cut-off."""
    sc = state.scenario
    env = simpy.Environment()
    settlement = SettlementSystem(env, sc)
    factory = RecordFactory(dt.date.fromisoformat(sc.run.start_date), state.txn, state.pan,
                            np.array([sc.institution_index(i.institution) for i in sc.issuers]),
                            np.array([sc.institution_index(a.institution) for a in sc.acquirers]),
                            sc.disputes.chargeback_reason_code)
    net = ClearingNetwork(env, sc, state.txn, state.outcomes["routed_issuer"], settlement, 1, pan=state.pan,
                          outcomes=state.outcomes, draws=draw_clearing(sc, state.txn), factory=factory)
    for f, data in files:
        net.receive(attrs.evolve(f, data=data, t_received_s=0.0, cycle=-1, status="in transit", number=-1))
    return (net,), {}


def n_records(files) -> int:
    return sum(f.n_records for f, _ in files)


@pytest.mark.parametrize("n", CASES)
def test_read_files(benchmark, n):
    _, files = day_of(n)
    benchmark.extra_info.update(items=n_records(files), unit=UNIT, reference=None, role="reference")
    read = benchmark(lambda: [ipm.read_file(data) for _, data in files])
    assert sum(len(r.batch) for r in read) == n_records(files)


@pytest.mark.parametrize("n", CASES)
def test_clearing_cycle(benchmark, request, n):
    state, files = day_of(n)
    benchmark.extra_info.update(items=n_records(files), unit=UNIT,
                                reference=f"test_read_files[{request.node.callspec.id}]")
    nets = []

    def setup():
        args, kwargs = fresh_cycle(state, files)
        nets.append(args[0])
        return args, kwargs

    benchmark.pedantic(lambda net: net.run_cycle(0), setup=setup, rounds=5, iterations=1)
    r = nets[-1].records()
    assert len(r["record_id"]) == n_records(files) and (r["status"] == 0).all()
