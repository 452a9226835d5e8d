"""Clearing cycles: the network clears the files received by each cut-off.

Owns: the cycle schedule (every `clearing.cutoffs` time of every simulated day),
taking the files received by the cut-off, clearing their records (with fees from
`clearing_sim.fees`), handing each cycle's obligations to its settlement window, and
the per-record clearing table. Must never clear a record twice or settle anything
itself.
"""

from __future__ import annotations

import attrs
import numpy as np
import simpy

from clearing_sim.errors import InvariantError
from clearing_sim.fees import FeeSchedule
from clearing_sim.model.acquirers import SubmittedFile
from clearing_sim.model.settlement import ObligationKind, SettlementSystem
from clearing_sim.model.traffic import DAY_S
from clearing_sim.scenario import Scenario, clock_seconds

RECORD_COLUMNS = (
    "record_id", "txn_index", "file", "cycle", "window", "amount_minor",
    "interchange_minor", "scheme_fee_issuer_minor", "scheme_fee_acquirer_minor",
)


@attrs.define
class ClearingCycle:
    index: int
    id: str
    t_cutoff_s: float
    files: list[str]
    records: int
    amount_minor: int
    window: int


class ClearingNetwork:
    """Receives acquirers' files and runs the clearing cycles as a SimPy process."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, txn: dict[str, np.ndarray],
                 routed_issuer: np.ndarray, settlement: SettlementSystem, horizon_days: int):
        self.env = env
        self.scenario = scenario
        self.txn = txn
        self.routed_issuer = routed_issuer
        self.settlement = settlement
        self.fees = FeeSchedule(scenario.fees)
        inst = scenario.participant_ids
        self.issuer_party = np.array([inst.index(i.institution) for i in scenario.issuers], dtype=np.int64)
        self.acquirer_party = np.array([inst.index(a.institution) for a in scenario.acquirers], dtype=np.int64)
        self.network_party = len(inst) - 1
        self.inbox: list[SubmittedFile] = []
        self.files: list[SubmittedFile] = []
        self.cycles: list[ClearingCycle] = []
        n = len(txn["txn_id"])
        self.txn_cycle = np.full(n, -1, dtype=np.int32)
        self.txn_window = np.full(n, -1, dtype=np.int32)
        self._records: dict[str, list[np.ndarray]] = {k: [] for k in RECORD_COLUMNS}
        self._n_records = 0
        self.cutoffs = [clock_seconds(t) for t in scenario.clearing.cutoffs]
        env.process(self._run(horizon_days))

    def receive(self, f: SubmittedFile) -> None:
        """A file arrives at the network; it waits for the next cut-off."""
        self.inbox.append(f)
        self.files.append(f)

    def _run(self, horizon_days: int):
        env = self.env
        for day in range(horizon_days):
            for c in self.cutoffs:
                t = day * DAY_S + c
                if t > env.now:
                    yield env.timeout(t - env.now)
                self.run_cycle(day)

    def run_cycle(self, day: int) -> None:
        now = self.env.now
        files = [f for f in self.inbox if f.t_received_s <= now]
        if not files:
            return
        self.inbox = [f for f in self.inbox if f.t_received_s > now]
        cycle_index = len(self.cycles)
        window = self.settlement.window_for(now)
        idx = np.concatenate([f.txn_index for f in files])
        file_no = np.concatenate([np.full(len(f.txn_index), self.files.index(f), dtype=np.int32) for f in files])
        if (self.txn_cycle[idx] >= 0).any() or len(np.unique(idx)) != len(idx):
            raise InvariantError(f"cycle {cycle_index}: a record would be cleared twice")
        for f in files:
            f.cycle = cycle_index
        amount = self.txn["amount_minor"][idx]
        interchange = self.fees.interchange(amount, self.txn["mcc"][idx])
        fee_iss, fee_acq = self.fees.scheme_fees(amount)
        issuer = self.issuer_party[self.routed_issuer[idx]]
        acquirer = self.acquirer_party[self.txn["acquirer"][idx]]
        network = np.full(len(idx), self.network_party, dtype=np.int64)
        # Issuer pays amount minus interchange to the acquirer; each pays its scheme fee.
        # All three transfers carry the record id, so an unwind takes the record out whole.
        record_id = np.arange(self._n_records, self._n_records + len(idx), dtype=np.int64)
        kinds = np.array([ObligationKind.PRESENTMENT, ObligationKind.SCHEME_FEE_ISSUER,
                          ObligationKind.SCHEME_FEE_ACQUIRER], dtype=np.int8)
        window.add_obligations(
            np.repeat(kinds, len(idx)),
            np.tile(record_id, 3),
            np.concatenate([issuer, issuer, acquirer]),
            np.concatenate([acquirer, network, network]),
            np.concatenate([amount - interchange, fee_iss, fee_acq]),
        )
        window.cycles.append(cycle_index)
        self.txn_cycle[idx] = cycle_index
        self.txn_window[idx] = window.index
        n = len(idx)
        cols = {
            "record_id": np.arange(self._n_records, self._n_records + n, dtype=np.int64),
            "txn_index": idx.astype(np.int64),
            "file": file_no,
            "cycle": np.full(n, cycle_index, dtype=np.int32),
            "window": np.full(n, window.index, dtype=np.int32),
            "amount_minor": amount,
            "interchange_minor": interchange,
            "scheme_fee_issuer_minor": fee_iss,
            "scheme_fee_acquirer_minor": fee_acq,
        }
        for k, v in cols.items():
            self._records[k].append(v)
        self._n_records += n
        clock = int(now - day * DAY_S)
        self.cycles.append(ClearingCycle(
            cycle_index, f"D{day + 1:03d}-{clock // 3600:02d}:{clock % 3600 // 60:02d}",
            now, [f.file_id for f in files], n, int(amount.sum()), window.index,
        ))

    def records(self) -> dict[str, np.ndarray]:
        """The clearing records of the run, one row per cleared presentment."""
        dtypes = {"file": np.int32, "cycle": np.int32, "window": np.int32}
        return {
            k: (np.concatenate(v) if v else np.empty(0, dtype=dtypes.get(k, np.int64)))
            for k, v in self._records.items()
        }
