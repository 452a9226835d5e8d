"""The authorisation path: acquirer -> switch -> issuer host -> switch -> acquirer.

Owns: detailed mode's SimPy processes (one per authorisation, the reference
semantics), the issuer hosts (a `simpy.Resource` of `servers` each, FIFO, with a
bounded queue) and the issuer's decision. Consumes only the draws made up front by
`traffic`; writes outcomes into preallocated arrays, never Python objects per
transaction. Must never decide anything about clearing or settlement.

Response codes (ISO 8583 DE39): 0 `00` approved, 5 `05` do not honour (risk rule),
14 `14` invalid card (unknown BIN, declined by the switch), 91 `91` issuer unavailable
(its host queue is full).
"""

from __future__ import annotations

import numpy as np
import simpy

from clearing_sim.scenario import Scenario

APPROVED = 0
DO_NOT_HONOUR = 5
INVALID_CARD = 14
ISSUER_UNAVAILABLE = 91
RESPONSE_CODES = (APPROVED, DO_NOT_HONOUR, INVALID_CARD, ISSUER_UNAVAILABLE)

OUTCOME_COLUMNS = {
    "routed_issuer": np.int16,
    "t_host_in_s": np.float64,
    "t_host_start_s": np.float64,
    "t_host_end_s": np.float64,
    "t_response_s": np.float64,
    "response_code": np.int16,
}


def empty_outcomes(n: int) -> dict[str, np.ndarray]:
    """Outcome columns for `n` authorisations, NaN / -1 until decided."""
    out = {k: np.full(n, np.nan, dtype=d) if d == np.float64 else np.full(n, -1, dtype=d)
           for k, d in OUTCOME_COLUMNS.items()}
    return out


class DetailedAuthorisation:
    """Every authorisation as its own SimPy process (the reference semantics)."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, txn: dict[str, np.ndarray],
                 routed_issuer: np.ndarray):
        self.env = env
        self.scenario = scenario
        n = len(txn["txn_id"])
        self.out = empty_outcomes(n)
        self.out["routed_issuer"][:] = routed_issuer
        self.hosts = [simpy.Resource(env, capacity=iss.host.servers) for iss in scenario.issuers]
        self.queue_limits = [iss.host.queue_limit for iss in scenario.issuers]
        self.risk_rates = np.array([iss.risk_decline_rate for iss in scenario.issuers] + [0.0])
        # Plain Python lists index faster than numpy scalars inside SimPy processes.
        self._t = txn["t_arrival_s"].tolist()
        self._to_switch = txn["hop_acq_switch_s"].tolist()
        self._to_issuer = txn["hop_switch_issuer_s"].tolist()
        self._back = (txn["hop_issuer_switch_s"] + txn["hop_switch_acq_s"]).tolist()
        self._switch_to_acq = txn["hop_switch_acq_s"].tolist()
        self._service = txn["service_s"].tolist()
        self._issuer = routed_issuer.tolist()
        self._declined_by_risk = (txn["risk_u"] < self.risk_rates[routed_issuer]).tolist()
        self.queue_depth_max = [0] * len(scenario.issuers)
        env.process(self._arrivals())

    def _arrivals(self):
        env = self.env
        t = self._t
        for i in range(len(t)):
            delay = t[i] - env.now
            if delay > 0:
                yield env.timeout(delay)
            env.process(self._authorise(i))

    def _authorise(self, i: int):
        env = self.env
        out = self.out
        k = self._issuer[i]
        if k < 0:  # the switch cannot route it: declined at once
            yield env.timeout(self._to_switch[i] + self._switch_to_acq[i])
            out["response_code"][i] = INVALID_CARD
            out["t_response_s"][i] = env.now
            return
        yield env.timeout(self._to_switch[i] + self._to_issuer[i])
        out["t_host_in_s"][i] = env.now
        host = self.hosts[k]
        depth = len(host.queue)
        if depth >= self.queue_limits[k]:
            out["response_code"][i] = ISSUER_UNAVAILABLE
            yield env.timeout(self._back[i])
            out["t_response_s"][i] = env.now
            return
        if depth + 1 > self.queue_depth_max[k]:
            self.queue_depth_max[k] = depth + 1
        with host.request() as req:
            yield req
            out["t_host_start_s"][i] = env.now
            yield env.timeout(self._service[i])
            out["t_host_end_s"][i] = env.now
        out["response_code"][i] = DO_NOT_HONOUR if self._declined_by_risk[i] else APPROVED
        yield env.timeout(self._back[i])
        out["t_response_s"][i] = env.now
