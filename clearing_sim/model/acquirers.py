"""Acquirers' clearing files: what each acquirer presents, and when.

Owns: each acquirer's submission schedule (its `submission_times` on every simulated
day); the choice of records for a file: its approved authorisations whose response
reached it before the submission time (one at its very instant waits for the next
file), that it has not reversed, that did not stay
inside the bank (on-us kept in-bank), and that it has not presented yet, the refunds
(credits) due by then of purchases that cleared, and the second presentments due
of chargebacks it received; writing the file's bytes with `clearing_sim.ipm`; the
file's transfer to the network (a transfer time, and lateness when the per-file
draws or an injected fault say so); injected file faults; and presenting again the
records of a file the network rejected as a whole. Every draw comes from
`clearing_draws`, made up front. Must never validate, clear or settle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import numba
import numpy as np
import simpy

from clearing_sim import ipm
from clearing_sim.model import clearing_data as cd
from clearing_sim.model.authorisation import APPROVED, ROUTE_IN_BANK
from clearing_sim.model.clearing_draws import ClearingDraws, acquirer_file_draws
from clearing_sim.model.traffic import DAY_S
from clearing_sim.rng import stream
from clearing_sim.scenario import ClearingFault, Scenario, clock_seconds

if TYPE_CHECKING:
    from clearing_sim.model.clearing import ClearingNetwork


@numba.njit(cache=True, nogil=True)
def _ready_into(mine, code, approved, t_response, now, presented, reversed_,  # pragma: no cover - compiled
               in_bank, out):
    """Write to `out` the purchases of `mine` that were approved, whose response reached the
    acquirer before `now` (never when it is NaN), that are not presented, reversed nor kept in
    the bank; return how many. One pass (numpy gathered five columns and combined masks).

    Strictly before: an answer at the submission's very instant goes into the next file. At
    one instant detailed mode may decide a purchase before or after the submission (SimPy's
    order), while fast mode knows every answer in advance; excluding that instant makes the
    file the same in both, whatever the order (`stream_clearing.Submissions.of` too)."""
    n = 0
    for i in mine:
        if (code[i] == approved and t_response[i] < now and not presented[i] and not reversed_[i]
                and not in_bank[i]):
            out[n] = i
            n += 1
    return n


@attrs.define(eq=False)
class SubmittedFile:
    """One clearing file sent to the network: its bytes, and what the sender put in it.

    `txn_index` and `kind` give, per record in file order, the purchase it is about
    and its kind (`clearing_data.KIND_*`): the sender's own record of what it sent,
    which the network never uses to validate (it reads `data`).
    """

    file_id: str
    sender: int  # participant index of the sending institution
    role: str  # "acquirer" or "issuer"
    index: int  # acquirer or issuer index in the scenario
    t_sent_s: float
    t_received_s: float
    txn_index: np.ndarray
    kind: np.ndarray
    amount_minor: np.ndarray
    arn: np.ndarray
    data: bytes | None
    name: str
    fault: str = ""
    # The records themselves, when the file travels without bytes (fast mode, see
    # `AcquirerSubmissions`); the network then takes them as the reader would return them.
    batch: ipm.RecordBatch | None = None
    copy: int = 0  # 1: the second copy of a file sent twice
    cycle: int = -1
    status: str = "in transit"  # then "accepted" or "rejected"
    reject_reason: str = ""
    number: int = -1  # order of arrival at the network

    @property
    def acquirer(self) -> int:
        """The acquirer index, -1 for an issuer's file."""
        return self.index if self.role == "acquirer" else -1

    @property
    def n_records(self) -> int:
        return len(self.txn_index)


class SendAt(simpy.events.Event):
    """A sender's wake-up at simulated time `t`, processed before every other event due at
    that instant (SimPy's URGENT priority; initialised as SimPy's own Timeout is).

    A file sent at a cut-off's very second (no transfer time) is received at the cut-off,
    so that cycle takes it (`clearing.ClearingNetwork.receive`). With an ordinary timeout
    the cycle ran first whenever its own timeout had been scheduled before the sender's
    (a sender whose previous file went after the previous cut-off), and the file waited
    for the next cut-off.
    """

    def __init__(self, env: simpy.Environment, t: float):
        self.env = env
        self.callbacks = []
        self._value = None
        self._ok = True
        env.schedule(self, simpy.events.URGENT, max(0.0, t - env.now))


def file_id(scenario: Scenario, acquirer: int, day: int, seq: int) -> str:
    """The IPM file id (PDS 0105) of acquirer `acquirer`'s submission `seq` (0-based) on `day` (0-based)."""
    return acquirer_header(scenario, acquirer, day, seq).file_id


def acquirer_header(scenario: Scenario, acquirer: int, day: int, seq: int) -> ipm.FileHeader:
    party = scenario.institution_index(scenario.acquirers[acquirer].institution)
    return cd.sender_header(party, scenario.run.start_date, day, seq, cd.FILE_TYPE_ACQUIRER)


def fault_key(scenario: Scenario, number: int) -> int:
    """The hash key that picks the records an injected fault damages (fault `number` of the scenario)."""
    return int(stream(scenario.run.seed, "clearing_faults", number).integers(0, 2**63))


class AcquirerSubmissions:
    """Every acquirer's file submissions as SimPy processes."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, txn: dict[str, np.ndarray],
                 outcomes: dict[str, np.ndarray], horizon_days: int,
                 deliver: Callable[[SubmittedFile], None], *,
                 network: ClearingNetwork | None = None, draws: ClearingDraws | None = None,
                 factory: cd.RecordFactory | None = None, write_bytes: bool = True):
        """`write_bytes=False` (fast mode, files not kept): a file no injected fault damages
        goes to the network as its record batch, without being encoded; what the reader
        would decode from its bytes is that batch (tests/test_ipm.py's round trips)."""
        self.env = env
        self.write_bytes = write_bytes
        self.scenario = scenario
        self.txn = txn
        self.acquirer = txn["acquirer"]
        self.response_code = outcomes["response_code"]
        self.t_response = outcomes["t_response_s"]
        # Reversed authorisations and purchases kept inside the bank are never presented.
        self.reversed = outcomes["reversed"]
        self.in_bank = outcomes["route"] == ROUTE_IN_BANK
        n = len(self.acquirer)
        self.presented = np.zeros(n, dtype=bool)  # a first presentment is in a file not rejected as a whole
        self.ever_presented = np.zeros(n, dtype=bool)
        self.refund_sent = np.zeros(n, dtype=bool)
        self.representment_sent = np.zeros(n, dtype=bool)
        self.deliver = deliver
        self.network = network
        self.draws = draws
        self.factory = factory
        self.files: list[SubmittedFile] = []
        self.faults: dict[tuple[int, int, int], list[tuple[int, ClearingFault]]] = {}
        self.faults_applied: set[int] = set()  # numbers of the scenario's faults a file carried
        by_institution = {a.institution: i for i, a in enumerate(scenario.acquirers)}
        for number, fault in enumerate(scenario.clearing.faults):
            key = (by_institution[fault.acquirer], fault.day - 1, fault.submission - 1)
            self.faults.setdefault(key, []).append((number, fault))
        for a, acq in enumerate(scenario.acquirers):
            mine = np.flatnonzero(self.acquirer == a)
            times = [clock_seconds(t) for t in acq.submission_times]
            refunds = mine[draws.refund[mine]] if draws is not None else mine[:0]
            reps = mine[draws.representment[mine]] if draws is not None else mine[:0]
            env.process(self._submit(a, times, horizon_days, mine, refunds, reps))

    # --- what goes into a file ----------------------------------------------------------

    def _purchases_ready(self, mine: np.ndarray, now: float) -> np.ndarray:
        """The purchases of `mine` (ascending int64) to present at `now`, in order."""
        out = np.empty_like(mine)
        n = _ready_into(mine, self.response_code, APPROVED, self.t_response, float(now), self.presented,
                        self.reversed, self.in_bank, out)
        return out[:n]

    def _refunds_due(self, refunds: np.ndarray, now: float) -> np.ndarray:
        if self.network is None or len(refunds) == 0:
            return refunds[:0]
        t_refund = self.txn["t_arrival_s"][refunds] + self.draws.refund_delay_s[refunds]
        due = (t_refund <= now) & ~self.refund_sent[refunds] & (self.network.txn_cycle[refunds] >= 0)
        return refunds[due]

    def _representments_due(self, reps: np.ndarray, now: float) -> np.ndarray:
        if self.network is None or len(reps) == 0:
            return reps[:0]
        t_cb = self.network.t_chargeback_cleared_s[reps]
        with np.errstate(invalid="ignore"):
            due = (t_cb + self.draws.representment_delay_s[reps] <= now) & ~self.representment_sent[reps]
        return reps[due]

    def _submit(self, a: int, times: list[int], horizon_days: int, mine: np.ndarray,
                refunds: np.ndarray, reps: np.ndarray):
        env = self.env
        for day in range(horizon_days):
            draws = acquirer_file_draws(self.scenario, a, day)
            for seq, t_clock in enumerate(times):
                t = day * DAY_S + t_clock
                if t > env.now:
                    yield SendAt(env, t)
                purchases = self._purchases_ready(mine, env.now)
                due_refunds = self._refunds_due(refunds, env.now)
                due_reps = self._representments_due(reps, env.now)
                if len(purchases) + len(due_refunds) + len(due_reps) == 0:
                    continue
                self.presented[purchases] = True
                self.ever_presented[purchases] = True
                self.refund_sent[due_refunds] = True
                self.representment_sent[due_reps] = True
                delay = float(draws.transfer_s[seq]) + float(draws.late_delay_s[seq])
                self._write_and_send(a, day, seq, purchases, due_refunds, due_reps, delay,
                                     bool(draws.late[seq]))

    def _write_and_send(self, a: int, day: int, seq: int, purchases: np.ndarray, refunds: np.ndarray,
                        reps: np.ndarray, delay_s: float, late: bool) -> None:
        sc = self.scenario
        now = self.env.now
        faults = self.faults.get((a, day, seq), [])
        self.faults_applied.update(number for number, _ in faults)
        idx = [purchases, refunds, reps]
        kinds = [cd.KIND_FIRST_PRESENTMENT, cd.KIND_REFUND, cd.KIND_SECOND_PRESENTMENT]
        if self.factory is None:
            raise RuntimeError("AcquirerSubmissions needs a RecordFactory to write files")
        t_refund = self.txn["t_arrival_s"][refunds] + self.draws.refund_delay_s[refunds] if len(refunds) else None
        parts = [self.factory.columns(k, i, t_refund if k == cd.KIND_REFUND else None)
                 for k, i in zip(kinds, idx) if len(i)]
        cols = cd.concat_columns(parts)
        txn_index = np.concatenate(idx)
        kind = np.concatenate([np.full(len(i), k, dtype=np.int8) for k, i in zip(kinds, idx)])
        n_txn = len(self.acquirer)
        fault_names = ["late"] if late else []
        copy_after_s = None
        damage: list[str] = []
        for number, fault in faults:
            fault_names.append(fault.kind)
            if fault.kind == "late":
                delay_s += fault.delay_minutes * 60.0
            elif fault.kind == "duplicate_file":
                copy_after_s = fault.delay_minutes * 60.0
            elif fault.kind in cd.FILE_DAMAGE:
                damage.append(fault.kind)
            else:  # record faults damage first presentments only
                first = np.flatnonzero(kind == cd.KIND_FIRST_PRESENTMENT)
                rows = first[cd.fault_rows(fault_key(sc, number), txn_index[first], fault.records)]
                if fault.kind == "duplicate_records":
                    cols = {k: np.concatenate([v, v[rows]]) for k, v in cols.items()}
                    txn_index = np.concatenate([txn_index, txn_index[rows]])
                    kind = np.concatenate([kind, kind[rows]])
                elif fault.kind == "unknown_authorisation":
                    cols["auth_code"] = cols["auth_code"].copy()
                    cols["auth_code"][rows] = cd.approval_code(n_txn + np.arange(len(rows)))
                elif fault.kind == "amount_changed":
                    cols["amount_minor"] = cols["amount_minor"].copy()
                    cols["amount_minor"][rows] = 2 * cols["amount_minor"][rows] + 1
        header = acquirer_header(sc, a, day, seq)
        blocked = sc.clearing.blocked_files
        data = batch = None
        if self.write_bytes or damage:
            data = ipm.write_file(header, ipm.RecordBatch(**cols), blocked=blocked)
        else:  # numbered as the reader numbers them: the header is message 1
            n = len(cols["amount_minor"])
            batch = ipm.RecordBatch(**cols, message_number=np.arange(2, n + 2, dtype=np.int64))
        # Truncation last: it cuts the trailer off, which the other damage changes (before, a trailer
        # fault listed after a truncated one on the same file stopped the run).
        for how in sorted(damage, key=lambda h: h == "truncated"):
            data = cd.damage_file(data, header.file_id, blocked, how)
        party = sc.institution_index(sc.acquirers[a].institution)
        f = SubmittedFile(header.file_id, party, "acquirer", a, now, now + delay_s, txn_index, kind,
                          cols["amount_minor"], cols["arn"], data, "", fault="+".join(fault_names), batch=batch)
        self._send(f)
        if copy_after_s is not None:
            self._send(attrs.evolve(f, t_sent_s=now + copy_after_s, t_received_s=now + delay_s + copy_after_s,
                                    copy=1))

    def _send(self, f: SubmittedFile) -> None:
        self.files.append(f)
        self.deliver(f)

    # --- what the network says back -------------------------------------------------------

    def file_rejected(self, f: SubmittedFile) -> None:
        """The network rejected file `f` as a whole: its records go into the acquirer's next file."""
        if not self.scenario.clearing.resubmit_rejected_files:
            return
        self.presented[f.txn_index[f.kind == cd.KIND_FIRST_PRESENTMENT]] = False
        self.refund_sent[f.txn_index[f.kind == cd.KIND_REFUND]] = False
        self.representment_sent[f.txn_index[f.kind == cd.KIND_SECOND_PRESENTMENT]] = False
