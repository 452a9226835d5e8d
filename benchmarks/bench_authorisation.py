"""Detailed-mode authorisations per second against a bare SimPy model of the same traffic.

For each case (N purchases over one simulated day, five issuers) the same up-front
draws are timed two ways:

* ``test_bare_simpy``: the reference -- a bare SimPy model: Poisson arrivals (the
  scenario's arrival times), one process per purchase making one
  ``simpy.Resource`` request at its issuer (same servers, same service times),
  holding it for its service time, and nothing else;
* ``test_detailed``: ``DetailedAuthorisation`` -- routing, hops, FIFO hosts with
  their availability, the issuer's decision against open-to-buy, the switch's
  stand-in clocks, store-and-forward and the acquirers' reversal clocks -- set up
  and run to the end of the horizon, then its outcome columns finished.

The issue's target is a detailed rate of at least a third of the bare model's
(time ratio at most 3). Draws are made once per case, outside the timed function.
The 10^5 case is the quick subset; the 10^6 case is ``full``.
"""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from clearing_sim.model.authorisation import DetailedAuthorisation
from clearing_sim.model.network import horizon_days
from clearing_sim.model.routing import BinTable
from clearing_sim.model.traffic import DAY_S, draw_days
from clearing_sim.scenario import parse_scenario

UNIT = "authorisations"
SEED = 20_261_126

CASES = [
    pytest.param(100_000, id="1e5"),
    pytest.param(1_000_000, id="1e6", marks=pytest.mark.full),
]

# Five issuers sized so that every host is busy but stable at the evening peak.
_YAML = """\
name: bench-authorisation
run: {{days: 1, seed: {seed}}}
institutions: [{{id: I1}}, {{id: I2}}, {{id: I3}}, {{id: I4}}, {{id: I5}}, {{id: ACQ}}]
issuers:
  - {{institution: I1, bins: ["379601"], share: 0.30, host: {{servers: {c1}, service_time_ms: {{distribution: lognormal, median: 35, sigma: 0.4}}}}}}
  - {{institution: I2, bins: ["379603"], share: 0.25, host: {{servers: {c2}, service_time_ms: {{distribution: lognormal, median: 40, sigma: 0.4}}}}}}
  - {{institution: I3, bins: ["379604"], share: 0.20, host: {{servers: {c3}, service_time_ms: {{distribution: exponential, mean: 45}}}}}}
  - {{institution: I4, bins: ["379605"], share: 0.15, host: {{servers: {c4}, service_time_ms: {{distribution: lognormal, median: 30, sigma: 0.4}}}}}}
  - {{institution: I5, bins: ["379606"], share: 0.10, host: {{servers: {c5}, service_time_ms: {{distribution: exponential, mean: 50}}}}}}
acquirers:
  - {{institution: I1, share: 0.5, merchants: 5000, category_mix: {{"5411": 0.6, "5812": 0.4}}}}
  - {{institution: ACQ, share: 0.5, merchants: 5000, category_mix: {{"5411": 0.5, "5812": 0.5}}}}
traffic:
  transactions_per_day: {n}
  hourly_profile: [0.6, 0.3, 0.2, 0.15, 0.15, 0.3, 0.8, 2.0, 3.5, 4.2, 4.8, 5.6,
                   7.6, 6.8, 5.2, 4.8, 5.0, 5.6, 7.2, 8.0, 7.4, 5.8, 3.6, 1.6]
  unknown_bin_rate: 0.0005
  amount_minor:
    "5411": {{distribution: lognormal, median: 6800, sigma: 0.9}}
    "5812": {{distribution: lognormal, median: 5500, sigma: 0.7}}
network:
  latency_ms: {{distribution: lognormal, median: 4, sigma: 0.35}}
"""

_DATA: dict[int, tuple] = {}


def servers_for(n: int) -> list[int]:
    """Servers per issuer giving a peak utilisation of about 70%."""
    peak_per_s = n * 8.0 / 99.1 / 3600.0
    shares, mean_s = [0.30, 0.25, 0.20, 0.15, 0.10], [0.038, 0.043, 0.045, 0.032, 0.050]
    return [max(1, int(np.ceil(peak_per_s * s * m / 0.7))) for s, m in zip(shares, mean_s)]


def workload(n: int):
    """(scenario, draws, routed issuer) for N purchases, built once per case."""
    if n not in _DATA:
        c = servers_for(n)
        sc = parse_scenario(_YAML.format(seed=SEED, n=n, c1=c[0], c2=c[1], c3=c[2], c4=c[3], c5=c[4]))
        txn = draw_days(sc)
        bins = BinTable(sc)
        routed = bins.route(bins.pans(txn["issuer"], txn["card"]))
        _DATA[n] = (sc, txn, routed)
    return _DATA[n]


def run_detailed(sc, txn, routed) -> DetailedAuthorisation:
    env = simpy.Environment()
    model = DetailedAuthorisation(env, sc, txn, routed)
    env.run(until=horizon_days(sc) * DAY_S)
    model.finish()
    return model


def run_bare(t_arrival: list[float], service: list[float], issuer: list[int], servers: list[int]) -> int:
    """Poisson arrivals, one Resource request per authorisation; returns how many were served."""
    env = simpy.Environment()
    hosts = [simpy.Resource(env, capacity=c) for c in servers]
    done = [0]

    def authorisation(i: int):
        with hosts[issuer[i]].request() as req:
            yield req
            yield env.timeout(service[i])
        done[0] += 1

    def arrivals():
        for i in range(len(t_arrival)):
            delay = t_arrival[i] - env.now
            if delay > 0:
                yield env.timeout(delay)
            env.process(authorisation(i))

    env.process(arrivals())
    env.run()
    return done[0]


def _bare_inputs(n: int):
    sc, txn, routed = workload(n)
    known = routed >= 0  # the bare model has no switch: unknown BINs are left out of it
    return (txn["t_arrival_s"][known].tolist(), txn["service_s"][known].tolist(),
            routed[known].astype(np.int64).tolist(), [i.host.servers for i in sc.issuers])


@pytest.mark.parametrize("n", CASES)
def test_bare_simpy(benchmark, n):
    args = _bare_inputs(n)
    benchmark.extra_info.update(items=n, unit=UNIT, reference=None, role="reference")
    served = benchmark.pedantic(run_bare, args=args, rounds=5, iterations=1, warmup_rounds=1)
    assert served == len(args[0])


@pytest.mark.parametrize("n", CASES)
def test_detailed(benchmark, request, n):
    sc, txn, routed = workload(n)
    benchmark.extra_info.update(items=n, unit=UNIT, reference=f"test_bare_simpy[{request.node.callspec.id}]")
    model = benchmark.pedantic(run_detailed, args=(sc, txn, routed), rounds=5, iterations=1, warmup_rounds=1)
    assert (model.out["response_code"] >= 0).all() and not np.isnan(model.out["t_response_s"]).any()
    assert not model.out["stand_in"].any()  # a healthy day: the benchmark measures the normal path
