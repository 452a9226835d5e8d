"""Clearing and settlement of a streamed fast-mode run, without the day's purchases in memory.

Owns: which scenarios can stream (`why_not_streamable`); the acquirer submission each
presentable purchase goes into (`Submissions`), decided as soon as the purchase is
final; per (submission, issuer) sums of amounts, interchange and scheme fees, and a
spill file per submission of the columns its clearing records need (`Presentments`);
and, once the day has been fed, the control plane (`run_clearing`): the files that were
sent, the cycles that took them and the settlement windows they settled in, run by
SimPy as in a whole-day run, with each cycle's obligations posted as sums per
counterparty pair (`SettlementWindow.add_obligations(..., transfers=, records=)`).

Why this equals a whole-day run for the scenarios it accepts: an acquirer presents an
approved, unreversed, switched purchase in its first submission after the
answer reached it (`acquirers.AcquirerSubmissions`); per-file draws are per
(acquirer, day); without injected faults, refunds, disputes or settlement accounts a
file is never rejected, no record fails validation (each record is the one its
purchase's authorisation matches, and the presentment limit outlasts the run) and no
window defaults, so a record's cycle and window follow from its file alone, and
netting is a sum. `tests/test_streamed.py` checks the outputs equal the whole-day
run's. Must never hold a per-purchase array of the whole run, write a run folder or
print.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import attrs
import numba
import numpy as np
import simpy

from clearing_sim.errors import InvariantError
from clearing_sim.fees import FeeSchedule, product_names
from clearing_sim.model import clearing_data as cd
from clearing_sim.model.acquirers import acquirer_header
from clearing_sim.model.authorisation import APPROVED, ROUTE_IN_BANK
from clearing_sim.model.clearing import ClearingCycle
from clearing_sim.model.clearing_draws import acquirer_file_draws, card_products
from clearing_sim.model.settlement import ObligationKind, SettlementSystem
from clearing_sim.model.traffic import DAY_S, group_order
from clearing_sim.scenario import Scenario, clock_seconds

# The columns a clearing record needs, one row per presentment, in a file's record order.
SPILL_DTYPE = np.dtype([
    ("txn_id", np.int64), ("t_arrival_s", np.float64), ("amount_minor", np.int64),
    ("interchange_minor", np.int64), ("scheme_fee_issuer_minor", np.int64),
    ("scheme_fee_acquirer_minor", np.int64), ("mcc", np.int16), ("product", np.int8), ("issuer", np.int16),
])

# Per (submission, issuer): sums and counts; the three transfers of a record, each split by sign
# so that a sum of |amount| (a window's gross) stays exact.
RECORDS, AMOUNT, INTERCHANGE = 0, 1, 2
SIGNED = 3  # then, per transfer kind t in 0..2: [sum >= 0, count >= 0, sum < 0, count < 0] at 3 + 4t
_N_SUMS = SIGNED + 12
_TRANSFER_KINDS = (ObligationKind.PRESENTMENT, ObligationKind.SCHEME_FEE_ISSUER, ObligationKind.SCHEME_FEE_ACQUIRER)
PRINCIPAL, FEE_ISSUER, FEE_ACQUIRER = range(3)  # a record's transfers, in _TRANSFER_KINDS order


def transfer_total(sums: np.ndarray, t: int) -> np.ndarray:
    """The net total of transfer `t` (PRINCIPAL, FEE_ISSUER, FEE_ACQUIRER) in sums along their last axis."""
    return sums[..., SIGNED + 4 * t] + sums[..., SIGNED + 4 * t + 2]


def why_not_streamable(scenario: Scenario, horizon_days: int) -> str | None:
    """Why the scenario cannot run streamed (None: it can), naming the scenario key."""
    c, d, st = scenario.clearing, scenario.disputes, scenario.settlement
    if c.faults:
        return "clearing.faults: injected file faults need the whole day's records"
    if c.refund_rate > 0:
        return "clearing.refund_rate: refunds need the whole day's cleared records"
    if d.chargeback_rate > 0:
        return "disputes.chargeback_rate: chargebacks need the whole day's cleared records"
    if st.accounts:
        return "settlement.accounts: a window that can default unwinds record by record"
    if c.presentment_limit_days < horizon_days:
        return "clearing.presentment_limit_days: a record could be presented late within the run"
    return None


@numba.njit(cache=True, nogil=True)
def _accumulate(key, amount, interchange, fee_iss, fee_acq, out):  # pragma: no cover - compiled
    for i in range(len(key)):
        k = key[i]
        out[k, RECORDS] += 1
        out[k, AMOUNT] += amount[i]
        out[k, INTERCHANGE] += interchange[i]
        for t in range(3):
            if t == 0:
                v = amount[i] - interchange[i]
            elif t == 1:
                v = fee_iss[i]
            else:
                v = fee_acq[i]
            j = SIGNED + 4 * t + (0 if v >= 0 else 2)
            out[k, j] += v
            out[k, j + 1] += 1


@numba.njit(cache=True, nogil=True)
def _fill_records(rows, order, txn_id, t_arrival_s, amount, interchange, fee_iss, fee_acq, mcc, product, issuer,
                  rec):  # pragma: no cover - compiled
    """rec[j] = the record of presentment order[j], whose purchase is row rows[order[j]] of the
    part (txn_id, t_arrival_s; the other columns are per presentment): record by record in one
    pass, where filling field by field gathered each column and wrote it through every record."""
    for j in range(len(order)):
        k = order[j]
        i = rows[k]
        r = rec[j]
        r.txn_id = txn_id[i]
        r.t_arrival_s = t_arrival_s[i]
        r.amount_minor = amount[k]
        r.interchange_minor = interchange[k]
        r.scheme_fee_issuer_minor = fee_iss[k]
        r.scheme_fee_acquirer_minor = fee_acq[k]
        r.mcc = mcc[k]
        r.product = product[k]
        r.issuer = issuer[k]


@numba.njit(cache=True, nogil=True)
def _submission_kernel(acquirer, t_response_s, times, start, offset, horizon_days, out):  # pragma: no cover
    """Submissions.of, answer by answer: the day of t, then the first of the acquirer's clock
    times (increasing) after t's clock time, else the next day's first."""
    for i in range(len(acquirer)):
        t = t_response_s[i]
        if not np.isfinite(t):
            out[i] = -1
            continue
        a = acquirer[i]
        lo = start[a]
        k = start[a + 1] - lo
        day = np.floor(t / DAY_S)
        clock = t - day * DAY_S  # exact: t and day * DAY_S are within a factor of 2
        seq = 0
        while seq < k and times[lo + seq] <= clock:
            seq += 1
        d = np.int64(day)
        if seq == k:
            d += 1
            seq = 0
        out[i] = offset[a] + d * k + seq if d < horizon_days else -1


class Submissions:
    """Every acquirer submission of the run, numbered: acquirer by acquirer, day by day, in time order."""

    def __init__(self, scenario: Scenario, horizon_days: int):
        self.horizon_days = horizon_days
        self.times = [np.array([clock_seconds(t) for t in a.submission_times], dtype=np.float64)
                      for a in scenario.acquirers]
        self._times_flat = np.concatenate(self.times)  # acquirer a's: [_times_start[a], _times_start[a + 1])
        self._times_start = np.cumsum([0] + [len(t) for t in self.times]).astype(np.int64)
        self.offset = horizon_days * self._times_start  # acquirer a's submissions: [offset[a], offset[a + 1])
        self.n = int(self.offset[-1])

    def of(self, acquirer: np.ndarray, t_response_s: np.ndarray) -> np.ndarray:
        """The submission of each answer: the acquirer's first after it (an answer at a
        submission's very instant goes into the next, `acquirers._ready_into`); -1 past the
        last one, or for a time that is not finite.

        Raises ValueError for an acquirer outside the scenario's.
        """
        acquirer = np.asarray(acquirer)
        if len(acquirer) and (acquirer.min() < 0 or acquirer.max() >= len(self.times)):
            raise ValueError(f"an acquirer outside [0, {len(self.times)})")
        out = np.empty(len(acquirer), dtype=np.int64)
        _submission_kernel(acquirer, np.asarray(t_response_s, dtype=np.float64), self._times_flat,
                           self._times_start, self.offset, self.horizon_days, out)
        return out

    def describe(self, slot: int) -> tuple[int, int, int]:
        """(acquirer, day, sequence within the day) of submission `slot`, all 0-based."""
        a = int(np.searchsorted(self.offset, slot, side="right") - 1)
        k = len(self.times[a])
        rel = slot - int(self.offset[a])
        return a, rel // k, rel % k


class Presentments:
    """Presentable purchases, put into their acquirer's submission as they become final."""

    def __init__(self, scenario: Scenario, horizon_days: int, spill_dir: Path):
        self.scenario = scenario
        self.submissions = Submissions(scenario, horizon_days)
        self.spill_dir = Path(spill_dir)
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        ids = scenario.participant_ids
        self.n_parties = len(ids)
        self.issuer_party = np.array([ids.index(i.institution) for i in scenario.issuers], dtype=np.int64)
        self.fees = FeeSchedule(scenario.fees).with_products(product_names(scenario))
        self.sums = np.zeros((self.submissions.n * self.n_parties, _N_SUMS), dtype=np.int64)

    def spill_path(self, slot: int) -> Path:
        return self.spill_dir / f"submission_{slot:06d}.bin"

    def add(self, txn: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> np.ndarray:
        """Take a chunk of final purchases (in id order across calls); return each one's submission (-1: none)."""
        presentable = ((out["response_code"] == APPROVED) & ~out["reversed"] & (out["route"] != ROUTE_IN_BANK))
        slot = np.full(len(presentable), -1, dtype=np.int64)
        rows = np.flatnonzero(presentable)
        if len(rows) == 0:
            return slot
        acquirer = txn["acquirer"][rows].astype(np.int64)
        s = self.submissions.of(acquirer, out["t_response_s"][rows])
        if (s < 0).any():
            raise InvariantError(f"{int((s < 0).sum())} approved authorisation(s) were never presented")
        slot[rows] = s
        issuer = out["routed_issuer"][rows].astype(np.int64)
        amount = txn["amount_minor"][rows].astype(np.int64)
        mcc = txn["mcc"][rows]
        product = card_products(self.scenario, txn["issuer"][rows], txn["card"][rows])
        interchange = self.fees.interchange(amount, mcc, product).astype(np.int64)
        fee_iss, fee_acq = (f.astype(np.int64) for f in self.fees.scheme_fees(amount))
        key = s * self.n_parties + self.issuer_party[issuer]
        _accumulate(key, amount, interchange, fee_iss, fee_acq, self.sums)
        # The records grouped by submission, in id order within each.
        order, starts = group_order(s, 0, self.submissions.n)
        rec = np.empty(len(rows), dtype=SPILL_DTYPE)
        _fill_records(rows, order, txn["txn_id"], txn["t_arrival_s"], amount, interchange, fee_iss, fee_acq, mcc,
                      product, issuer, rec)
        for slot_no in np.flatnonzero(np.diff(starts)).tolist():  # the submissions this part reached
            with open(self.spill_path(slot_no), "ab") as fh:
                fh.write(rec[starts[slot_no]:starts[slot_no + 1]].data)  # tofile's short write has no errno
        return slot

    def records(self, slot: int, part_rows: int) -> Iterator[np.ndarray]:
        """The spilled records of one submission, in file order, at most `part_rows` at a time
        (an acquirer that submits once a day has the day's records in one submission)."""
        path = self.spill_path(slot)
        if not path.exists():
            return
        with open(path, "rb") as fh:
            while len(part := np.fromfile(fh, dtype=SPILL_DTYPE, count=part_rows)):
                yield part

    def per_submission(self) -> np.ndarray:
        """(submissions x participants x sums) view of the sums (the participant is the issuer's)."""
        return self.sums.reshape(self.submissions.n, self.n_parties, _N_SUMS)


@attrs.define(eq=False)
class StreamedFile:
    """An acquirer file of a streamed run: what `clearing_results` reports of a received file."""

    file_id: str
    sender: int  # participant index
    index: int  # acquirer index
    slot: int
    t_sent_s: float
    t_received_s: float
    n_records: int
    fault: str = ""
    role: str = "acquirer"
    copy: int = 0
    name: str = ""
    cycle: int = -1
    number: int = -1
    status: str = "in transit"
    reject_reason: str = ""


@attrs.define(eq=False)
class StreamedClearing:
    """The control plane's outcome: files, cycles, windows, and where each submission went."""

    files: list[StreamedFile]  # in order of arrival at the network (those that reached a cycle first)
    cycles: list[ClearingCycle]
    settlement: SettlementSystem
    slot_file: np.ndarray  # per submission: file number, -1 if none reached a cycle
    slot_cycle: np.ndarray
    slot_window: np.ndarray

    @property
    def received(self) -> list[StreamedFile]:
        """The files that reached a cycle, in order of arrival."""
        return [f for f in self.files if f.cycle >= 0]

    @property
    def in_transit(self) -> list[StreamedFile]:
        return [f for f in self.files if f.cycle < 0]


def run_clearing(scenario: Scenario, presentments: Presentments, horizon_days: int) -> StreamedClearing:
    """Send the files, run the cycles and the settlement windows of the run (SimPy)."""
    subs = presentments.submissions
    sums = presentments.per_submission()
    records = sums[:, :, RECORDS].sum(axis=1)
    ids = scenario.participant_ids
    files: list[StreamedFile] = []
    for slot in np.flatnonzero(records).tolist():
        a, day, seq = subs.describe(slot)
        draws = acquirer_file_draws(scenario, a, day)
        t_sent = day * DAY_S + float(subs.times[a][seq])
        delay = float(draws.transfer_s[seq]) + float(draws.late_delay_s[seq])
        header = acquirer_header(scenario, a, day, seq)
        files.append(StreamedFile(header.file_id, ids.index(scenario.acquirers[a].institution), a, slot,
                                  t_sent, t_sent + delay, int(records[slot]), fault="late" if draws.late[seq] else ""))
    env = simpy.Environment()
    settlement = SettlementSystem(env, scenario)
    received: list[StreamedFile] = []
    cycles: list[ClearingCycle] = []
    n_slots = subs.n
    slot_file = np.full(n_slots, -1, dtype=np.int64)
    slot_cycle = np.full(n_slots, -1, dtype=np.int64)
    slot_window = np.full(n_slots, -1, dtype=np.int64)
    network = len(ids) - 1
    acquirer_party = np.array([ids.index(a.institution) for a in scenario.acquirers], dtype=np.int64)

    def run_cycle(day: int) -> None:
        now = env.now
        inbox = [f for f in files if f.cycle < 0 and f.t_sent_s <= now]
        arrived = sorted((f for f in inbox if f.t_received_s <= now),
                         key=lambda f: (f.t_received_s, f.sender, f.file_id, f.copy))
        if not arrived:
            return
        c = len(cycles)
        clock = int(now - day * DAY_S)
        cycle = ClearingCycle(c, f"D{day + 1:03d}-{clock // 3600:02d}:{clock % 3600 // 60:02d}", now,
                              [f.file_id for f in arrived], 0, 0, -1)
        window = settlement.window_for(now)
        window.cycles.append(c)
        by_pair = np.zeros((len(ids), len(ids), _N_SUMS), dtype=np.int64)  # (issuer, acquirer)
        for f in arrived:
            f.number = len(received)
            f.cycle = c
            f.status = "accepted"
            f.name = f"{f.number + 1:05d}_{ids[f.sender]}_{f.file_id}.ipm"
            received.append(f)
            slot_file[f.slot], slot_cycle[f.slot], slot_window[f.slot] = f.number, c, window.index
            by_pair[:, acquirer_party[f.index]] += sums[f.slot]
            cycle.records += f.n_records
            cycle.amount_minor += int(sums[f.slot, :, AMOUNT].sum())
        _post(window, by_pair, c, network)
        cycle.window = window.index
        cycles.append(cycle)

    def run_cycles():
        cutoffs = [clock_seconds(t) for t in scenario.clearing.cutoffs]
        for day in range(horizon_days):
            for cut in cutoffs:
                t = day * DAY_S + cut
                if t > env.now:
                    yield env.timeout(t - env.now)
                run_cycle(day)

    env.process(run_cycles())
    env.run(until=horizon_days * DAY_S)
    left = [f for f in files if f.cycle < 0]
    return StreamedClearing(received + left, cycles, settlement, slot_file, slot_cycle, slot_window)


def _post(window, by_pair: np.ndarray, cycle: int, network: int) -> None:
    """A cycle's obligations as sums per (issuer, acquirer) pair, transfer kind and sign.

    Each pair's records form one summed record (its id: cycle, issuer, acquirer), so
    unwinding a participant would take the same transfers out as record by record.
    """
    n = by_pair.shape[0]
    iss, acq = np.nonzero(by_pair[:, :, RECORDS])
    record = (cycle * n + iss) * n + acq
    kinds, records, payers, payees, amounts, counts = [], [], [], [], [], []
    for t, kind in enumerate(_TRANSFER_KINDS):
        payer = iss if t in (0, 1) else acq
        payee = acq if t == 0 else np.full(len(iss), network)
        for sign in (0, 2):
            total = by_pair[iss, acq, SIGNED + 4 * t + sign]
            count = by_pair[iss, acq, SIGNED + 4 * t + sign + 1]
            keep = count > 0
            kinds.append(np.full(int(keep.sum()), kind, dtype=np.int8))
            records.append(record[keep])
            payers.append(payer[keep])
            payees.append(payee[keep])
            amounts.append(total[keep])
            counts.append(count[keep])
    window.add_obligations(np.concatenate(kinds), np.concatenate(records), np.concatenate(payers),
                           np.concatenate(payees), np.concatenate(amounts), transfers=np.concatenate(counts),
                           records=dict(zip(record.tolist(), by_pair[iss, acq, RECORDS].tolist())))


def record_arns(scenario: Scenario, acquirer: int, rec: np.ndarray) -> np.ndarray:
    """The ARNs of an acquirer's spilled first presentments (`RecordFactory.purchase_arn`)."""
    party = scenario.institution_index(scenario.acquirers[acquirer].institution)
    dates = cd.sim_dates(dt.date.fromisoformat(scenario.run.start_date), rec["t_arrival_s"])
    return cd.make_arn(cd.processor_id(party), dates, rec["txn_id"])
