"""Issuers' dispute files: first chargebacks, sent in each issuer's own clearing files.

Owns: each issuer's file schedule (`disputes.issuer_file_times` every simulated day)
and the choice of chargebacks for a file: purchases cleared to it that the up-front
draws mark for a chargeback, once their delay after clearing has passed, not yet
charged back. The file goes to the network like an acquirer's (`1442`/450 records,
written with `clearing_sim.ipm`). Second presentments are the acquirers' (see
`acquirers`). Must never validate, clear or settle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import simpy

from clearing_sim import ipm
from clearing_sim.model import clearing_data as cd
from clearing_sim.model.acquirers import SendAt, SubmittedFile
from clearing_sim.model.clearing_draws import ClearingDraws, issuer_file_draws
from clearing_sim.model.traffic import DAY_S
from clearing_sim.scenario import Scenario, clock_seconds

if TYPE_CHECKING:
    from clearing_sim.model.clearing import ClearingNetwork


def issuer_header(scenario: Scenario, issuer: int, day: int, seq: int) -> ipm.FileHeader:
    party = scenario.institution_index(scenario.issuers[issuer].institution)
    return cd.sender_header(party, scenario.run.start_date, day, seq, cd.FILE_TYPE_ISSUER)


class IssuerDisputes:
    """Every issuer's chargeback files as SimPy processes (none when the chargeback rate is 0)."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, routed_issuer: np.ndarray,
                 horizon_days: int, network: ClearingNetwork, draws: ClearingDraws, factory: cd.RecordFactory):
        self.env = env
        self.scenario = scenario
        self.network = network
        self.draws = draws
        self.factory = factory
        self.chargeback_sent = np.zeros(len(routed_issuer), dtype=bool)
        self.files: list[SubmittedFile] = []
        times = [clock_seconds(t) for t in scenario.disputes.issuer_file_times]
        if scenario.disputes.chargeback_rate <= 0:
            return
        for k in range(len(scenario.issuers)):
            mine = np.flatnonzero((routed_issuer == k) & draws.chargeback)
            env.process(self._submit(k, times, horizon_days, mine))

    def _due(self, mine: np.ndarray, now: float) -> np.ndarray:
        t_cleared = self.network.t_cleared_s[mine]
        with np.errstate(invalid="ignore"):
            due = (t_cleared + self.draws.chargeback_delay_s[mine] <= now) & ~self.chargeback_sent[mine]
        return mine[due]

    def _submit(self, k: int, times: list[int], horizon_days: int, mine: np.ndarray):
        env = self.env
        sc = self.scenario
        party = sc.institution_index(sc.issuers[k].institution)
        for day in range(horizon_days):
            draws = issuer_file_draws(sc, k, day)
            for seq, t_clock in enumerate(times):
                t = day * DAY_S + t_clock
                if t > env.now:
                    yield SendAt(env, t)
                idx = self._due(mine, env.now)
                if len(idx) == 0:
                    continue
                self.chargeback_sent[idx] = True
                cols = self.factory.columns(cd.KIND_CHARGEBACK, idx)
                header = issuer_header(sc, k, day, seq)
                data = ipm.write_file(header, ipm.RecordBatch(**cols), blocked=sc.clearing.blocked_files)
                now = env.now
                f = SubmittedFile(header.file_id, party, "issuer", k, now, now + float(draws.transfer_s[seq]),
                                  idx, np.full(len(idx), cd.KIND_CHARGEBACK, dtype=np.int8),
                                  cols["amount_minor"], cols["arn"], data, "")
                self.files.append(f)
                self.network.receive(f)

    def file_rejected(self, f: SubmittedFile) -> None:
        """The network rejected file `f` as a whole: its chargebacks go into the issuer's next file."""
        if self.scenario.clearing.resubmit_rejected_files:
            self.chargeback_sent[f.txn_index] = False
