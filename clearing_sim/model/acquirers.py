"""Acquirers' clearing files: what each acquirer presents, and when.

Owns: each acquirer's submission schedule (its `submission_times` on every simulated
day) and the choice of records for a file: its approved authorisations whose
response reached it by the submission time, that it has not reversed, that did not
stay inside the bank (on-us kept in-bank), and that it has not presented yet.
A file is handed to the network after a transfer time drawn from the acquirer's
own stream. Must never validate, clear or settle.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import numpy as np
import simpy

from clearing_sim.model.authorisation import APPROVED, ROUTE_IN_BANK
from clearing_sim.model.traffic import DAY_S, sample
from clearing_sim.rng import stream
from clearing_sim.scenario import Scenario, clock_seconds


@attrs.define
class SubmittedFile:
    """One clearing file as the network receives it (records are transaction indices)."""

    file_id: str
    acquirer: int
    t_sent_s: float
    t_received_s: float
    txn_index: np.ndarray
    cycle: int = -1


def file_id(scenario: Scenario, acquirer: int, day: int, seq: int) -> str:
    """A stable file id: acquirer institution, simulated day (1-based) and sequence."""
    inst = scenario.acquirers[acquirer].institution
    return f"{inst}-D{day + 1:03d}-{seq:02d}"


class AcquirerSubmissions:
    """Every acquirer's file submissions as SimPy processes."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, txn: dict[str, np.ndarray],
                 outcomes: dict[str, np.ndarray], horizon_days: int,
                 deliver: Callable[[SubmittedFile], None]):
        self.env = env
        self.scenario = scenario
        self.acquirer = txn["acquirer"]
        self.response_code = outcomes["response_code"]
        self.t_response = outcomes["t_response_s"]
        self.reversed = outcomes["reversed"]
        self.in_bank = outcomes["route"] == ROUTE_IN_BANK
        self.presented = np.zeros(len(self.acquirer), dtype=bool)
        self.deliver = deliver
        self.files: list[SubmittedFile] = []
        for a, acq in enumerate(scenario.acquirers):
            times = [clock_seconds(t) for t in acq.submission_times]
            env.process(self._submit(a, times, horizon_days))

    def _submit(self, a: int, times: list[int], horizon_days: int):
        env = self.env
        seed = self.scenario.run.seed
        transfer = self.scenario.clearing.file_transfer_ms
        mine = np.flatnonzero(self.acquirer == a)
        for day in range(horizon_days):
            rng = stream(seed, "acquirer_files", a, day)
            delays_s = sample(transfer, rng, len(times)) / 1000.0
            for seq, t_clock in enumerate(times):
                t = day * DAY_S + t_clock
                if t > env.now:
                    yield env.timeout(t - env.now)
                with np.errstate(invalid="ignore"):
                    ready = (self.response_code[mine] == APPROVED) & (self.t_response[mine] <= env.now)
                ready &= ~self.presented[mine]
                ready &= ~self.reversed[mine] & ~self.in_bank[mine]
                idx = mine[ready]
                if len(idx) == 0:
                    continue
                self.presented[idx] = True
                f = SubmittedFile(file_id(self.scenario, a, day, seq), a, env.now,
                                  env.now + float(delays_s[seq]), idx)
                self.files.append(f)
                env.process(self._transfer(f))

    def _transfer(self, f: SubmittedFile):
        yield self.env.timeout(f.t_received_s - f.t_sent_s)
        self.deliver(f)
