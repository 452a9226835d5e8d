"""A fast-mode run streamed through bounded memory, written straight into its run folder.

Owns: when a run streams (`streams`), and the streamed run itself (`run_streamed`):
1. The forward pass: traffic block by block (`traffic.iter_blocks`), PANs and routing,
   authorisations (`AuthorisationStream`), in parts of about FEED_ROWS purchases that
   three threads overlap (`pipeline`); purchases come out final, are put back in id
   order a part at a time, and each part goes to presentment
   (`stream_clearing.Presentments`), the authorisation figures
   (`stream_figures.AuthorisationFigures`) and a scratch file of its columns.
2. The control plane (`stream_clearing.run_clearing`): files, cycles and settlement
   windows.
3. Second passes that write `transactions.parquet` (the scratch rows joined with
   file -> cycle -> window -> settlement; the settlement figures per purchase,
   `stream_settlement.SettlementTxnFigures`, on the way), `clearing_records.parquet`
   (file by file, from the presentment spills) and `settlements.parquet`, by row
   groups of `ROW_GROUP` rows, then `report.html` from those files.
Memory stays near that of the authorisation stream (its per-card open-to-buy) plus a
block or a row group; what grows with the day goes to scratch files beside the run
folder, removed at the end. The tables and `summary.json` equal a whole-day run's
(`tests/test_streamed.py`). Must never keep a per-purchase array of the whole day.
"""

from __future__ import annotations

import ctypes
import shutil
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clearing_sim import ipm, log, settlement_figures
from clearing_sim.clearing_results import RecordNames, clearing_block, record_rows
from clearing_sim.errors import InvariantError
from clearing_sim.model import clearing_data as cd
from clearing_sim.model.authorisation import APPROVED, OUTCOME_COLUMNS, ROUTE_IN_BANK
from clearing_sim.model.clearing import STATUS_CLEARED, fee_figures_of
from clearing_sim.model.fast_authorisation import AuthorisationStream, PreparedChunk
from clearing_sim.model.network import horizon_days
from clearing_sim.model.routing import BinTable
from clearing_sim.model.settlement import WindowState
from clearing_sim.model.stream_clearing import (
    AMOUNT,
    INTERCHANGE,
    FEE_ACQUIRER,
    FEE_ISSUER,
    RECORDS,
    SPILL_DTYPE,
    Presentments,
    StreamedClearing,
    record_arns,
    run_clearing,
    transfer_total,
    why_not_streamable,
)
from clearing_sim.model.traffic import COLUMNS as TRAFFIC_COLUMNS
from clearing_sim.model.traffic import DAY_S, build_catalogue, iter_blocks
from clearing_sim.outputs import write_table, write_table_options
from clearing_sim.pipeline import Background, Prefetch, Worker
from clearing_sim.results import TableNames, _dict_array, assemble_summary, transaction_rows
from clearing_sim.scenario import Scenario
from clearing_sim.stream_figures import AuthorisationFigures
from clearing_sim.stream_settlement import SettlementTxnFigures

# A run of at least this many purchases streams in fast mode (when its scenario can);
# smaller runs keep the day in memory. Fixed, not measured on the machine, so that the
# same scenario always takes the same path.
STREAM_MIN_TRANSACTIONS = 5_000_000
ROW_GROUP = 1 << 20  # rows per Parquet row group (pyarrow's default)
# Spilled records turned into rows at a time: an acquirer that submits once a day has the
# whole day's purchases in one file (10^7 of them took 3 GiB as one part).
RECORD_PART = 1 << 18
# Rows of finished parts held in memory while an earlier purchase is unfinished (about
# 140 bytes each); beyond that the newest parts go to scratch files (`_Reorder`).
REORDER_HOLD_ROWS = 1 << 21
FEED_ROWS = 1 << 18  # purchases authorised, presented and written at a time in the forward pass
_TXN_COLUMNS = ("txn_id", "day", "t_arrival_s", "acquirer", "issuer", "merchant", "mcc", "card", "amount_minor",
                "credit_limit_minor")
# What a final block keeps of its traffic columns: the scratch rows' and the figures' (reversal repeats).
_KEPT_COLUMNS = _TXN_COLUMNS + ("hop_rev_acq_switch_s",)


def streams(scenario: Scenario, mode: str, *, keep_files: bool = False, force: bool = False) -> bool:
    """Whether a run of `scenario` in `mode` streams (`force`: whatever its size)."""
    if mode != "fast" or keep_files:
        return False
    if not force and scenario.traffic.transactions_per_day * scenario.run.days < STREAM_MIN_TRANSACTIONS:
        return False
    return why_not_streamable(scenario, horizon_days(scenario)) is None


class _Reorder:
    """Final purchases put back in id order, a whole part at a time.

    `take` (the authorising thread) only notes which rows of which part an issuer's final
    rows are; `assemble` (the presenting worker) builds a finished part's outcome columns
    at once, each by one concatenation and one gather. Scattering every issuer's rows
    into the part as they came touched each column's every cache line once per issuer.

    A part waits for its every row, and parts go out in order, so one purchase that stays
    unfinished (a request in a long host queue; a stand-in waiting only for its advice to
    be applied is parked and given out, `fast_authorisation`) holds back every part after
    it, from every issuer: about 140 bytes a purchase. With `spill_dir`, once the waiting parts hold more than `hold_rows`
    rows in memory, the newest parts' columns and finished rows go to scratch files
    (uncompressed .npz, one a spill) and come back in `assemble`.
    """

    def __init__(self, spill_dir: Path | None = None, hold_rows: int | None = None):
        self.parts: list[dict] = []
        self.spill_dir = spill_dir
        self.hold_rows = REORDER_HOLD_ROWS if hold_rows is None else hold_rows
        self.held = 0  # rows of the waiting parts in memory: traffic columns and finished pieces
        self.spills = 0

    def add_part(self, txn: dict[str, np.ndarray], pan: np.ndarray) -> None:
        n = len(txn["txn_id"])
        first = int(txn["txn_id"][0]) if n else 0
        self.parts.append({"txn": txn, "pan": pan, "first": first, "n": n, "pieces": [], "left": n, "files": []})
        self.held += n
        self._bound()

    def take(self, done: dict[str, np.ndarray]) -> None:
        """Note final rows (one issuer's, so in increasing id order) in the parts they belong to."""
        gid = done["gid"]
        if len(gid) > 1 and not (gid[1:] > gid[:-1]).all():
            raise InvariantError("streamed run: final authorisations out of id order")
        for b in self.parts:
            lo, hi = np.searchsorted(gid, [b["first"], b["first"] + b["n"]])
            if lo == hi:
                continue
            b["left"] -= int(hi - lo)
            if b["left"] < 0:
                raise InvariantError("streamed run: an authorisation became final twice")
            b["pieces"].append((gid[lo:hi] - b["first"], {c: done[c][lo:hi] for c in OUTCOME_COLUMNS}))
            self.held += int(hi - lo)
        self._bound()

    def ready(self):
        while self.parts and self.parts[0]["left"] == 0:
            b = self.parts.pop(0)
            self.held -= self._in_memory(b)
            yield b

    @staticmethod
    def _in_memory(b: dict) -> int:
        return (b["n"] if b["txn"] is not None else 0) + sum(len(at) for at, _ in b["pieces"])

    def _bound(self) -> None:
        """Spill the newest waiting parts (never the first) until at most `hold_rows` rows are held."""
        if self.spill_dir is None:
            return
        for b in reversed(self.parts[1:]):
            if self.held <= self.hold_rows:
                return
            if self._in_memory(b):
                self._spill(b)

    def _spill(self, b: dict) -> None:
        """Write what a part holds in memory to a scratch file of its own."""
        arrays = {}
        if b["txn"] is not None:
            arrays = {f"txn.{k}": v for k, v in b["txn"].items()} | {"pan": b["pan"]}
        for i, (at, cols) in enumerate(b["pieces"]):
            arrays |= {f"{i}.at": at} | {f"{i}.{c}": v for c, v in cols.items()}
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"reorder_{self.spills:06d}.npz"
        self.spills += 1
        np.savez(path, **arrays)
        self.held -= self._in_memory(b)
        b["files"].append(path)
        b["txn"] = b["pan"] = None
        b["pieces"] = []

    @staticmethod
    def restore(b: dict) -> None:
        """Read back what `_bound` spilled of a part (and remove its files)."""
        for path in b["files"]:
            with np.load(path) as z:
                data = {k: z[k] for k in z.files}
            path.unlink()
            if "pan" in data:
                b["txn"] = {k[4:]: v for k, v in data.items() if k.startswith("txn.")}
                b["pan"] = data["pan"]
            i = 0
            while f"{i}.at" in data:
                b["pieces"].append((data[f"{i}.at"], {c: data[f"{i}.{c}"] for c in OUTCOME_COLUMNS}))
                i += 1
        b["files"] = []

    @staticmethod
    def assemble(b: dict) -> dict[str, np.ndarray]:
        """A finished part's outcome columns, in id order (its traffic columns read back too)."""
        _Reorder.restore(b)
        if not b["pieces"]:
            return {c: np.empty(b["n"], dtype=d) for c, d in OUTCOME_COLUMNS.items()}  # n == 0 when left == 0
        at = np.concatenate([a for a, _ in b["pieces"]])
        where = np.full(b["n"], -1, dtype=np.int64)  # where = the inverse of the pieces' order
        where[at] = np.arange(len(at))
        if (where < 0).any():  # as many rows as the part, so one came twice and another never
            raise InvariantError("streamed run: an authorisation became final twice")
        if len(b["pieces"]) == 1:
            return {c: b["pieces"][0][1][c][where].astype(d, copy=False) for c, d in OUTCOME_COLUMNS.items()}
        return {c: np.concatenate([p[c] for _, p in b["pieces"]])[where].astype(d, copy=False)
                for c, d in OUTCOME_COLUMNS.items()}


class _ParquetOut:
    """A Parquet file written by row groups of ROW_GROUP rows, with `outputs.write_table`'s options."""

    def __init__(self, path: Path):
        self.path = path
        self.writer: pq.ParquetWriter | None = None
        self.parts: list[pa.Table] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        self.parts.append(table)
        self.rows += table.num_rows
        while self.rows >= ROW_GROUP:
            self._flush(ROW_GROUP)

    def _flush(self, rows: int) -> None:
        # The row group goes in as the parts' chunks: the writer makes the same bytes from
        # them as from one combined chunk, without the copy.
        table = pa.concat_tables(self.parts)
        head, rest = table.slice(0, rows), table.slice(rows)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, head.schema, **write_table_options(head.schema))
        self.writer.write_table(head, row_group_size=ROW_GROUP)
        self.parts = [rest] if rest.num_rows else []
        self.rows = rest.num_rows

    def close(self, empty: pa.Table) -> None:
        """Write what is left; a file with no rows at all gets `empty`'s schema and no row."""
        if self.rows:
            self._flush(self.rows)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, empty.schema, **write_table_options(empty.schema))
            self.writer.write_table(empty)
        self.writer.close()


def run_streamed(scenario: Scenario, folder: Path, mode: str = "fast",
                 progress: Callable[[float, float], None] | None = None) -> dict:
    """Run `scenario` streamed, writing the tables and the report into `folder`; return the summary.

    Raises InvariantError if the books do not balance. Scratch files go to a hidden
    folder inside `folder`, removed before returning (or raising).
    """
    scratch = Path(tempfile.mkdtemp(prefix=".scratch-", dir=folder))
    try:
        return _run(scenario, folder, scratch, mode, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(sc: Scenario, folder: Path, scratch: Path, mode: str, progress) -> dict:
    days = horizon_days(sc)
    horizon_s = days * DAY_S
    presentments = Presentments(sc, days, scratch / "presentments")
    rows_path = scratch / "rows.arrow"
    phase = _Phases(sc, mode)
    figures, queue_depth_max = _forward(sc, horizon_s, presentments, rows_path, scratch / "authorisations", progress)
    _give_back_memory()
    # The authorisation state (open-to-buy per card, ...) is gone by now: only a group's values at a time.
    phase.done("forward pass: purchases drawn, authorised and presented")
    auth = figures.result(queue_depth_max)
    del figures
    _give_back_memory()
    phase.done("authorisation figures")
    clearing = run_clearing(sc, presentments, days)
    phase.done("clearing cycles and settlement windows")
    state = types.SimpleNamespace(scenario=sc, settlement=clearing.settlement)
    clearing.settlement.check_invariants()
    for w in clearing.settlement.windows:
        if w.state not in (WindowState.SETTLED, WindowState.ABORTED):
            raise InvariantError(f"window {w.id} ended the run {w.state.value}")
    windows = clearing.settlement.windows
    w_code = np.array([settlement_figures.SETTLED if w.state is WindowState.SETTLED else
                       settlement_figures.ABORTED if w.state is WindowState.ABORTED else
                       settlement_figures.UNSETTLED for w in windows] + [settlement_figures.UNSETTLED], dtype=np.int8)
    w_time = np.array([w.t_settled_s if w.t_settled_s is not None else np.nan for w in windows] + [np.nan])

    settle = SettlementTxnFigures(horizon_s, scratch / "settlement",
                                  settlement_times_s=[w.t_settled_s for w in windows if w.t_settled_s is not None])
    names = TableNames.of(sc, [f.file_id for f in clearing.received],
                          [c.id for c in clearing.cycles], [w.id for w in windows])
    # The two tables at once: Parquet's encoding and compression let go of the GIL, and there are cores.
    records = Background(_write_records, folder / "clearing_records.parquet", sc, presentments, clearing, w_code)
    try:
        _write_transactions(folder / "transactions.parquet", rows_path, clearing, names, w_code, w_time, settle)
    finally:  # never leave the thread writing into a folder that a failure is about to clean up
        records.join()
    write_table(folder / "settlements.parquet", settlement_figures.settlements_table(state))
    _give_back_memory()
    phase.done("tables written")
    txn_figures = settle.result()
    summary = assemble_summary(
        sc, mode, days, auth, _clearing_summary(sc, presentments, clearing), windows,
        [c.id for c in clearing.cycles],
        {"transactions_settled": txn_figures["transactions_settled"], "lag_hours": txn_figures["lag_hours"]},
        settlement_figures.run_figures(state, txn_figures["exposure"], txn_figures["transactions_by_settlement_status"]))
    from clearing_sim.report import build_report_from_parquet  # matplotlib only when writing

    html = build_report_from_parquet(summary, folder / "transactions.parquet", folder / "settlements.parquet")
    (folder / "report.html").write_text(html, encoding="utf-8")
    phase.done("summary and report")
    return summary


class _Phases:
    """Logs each phase of a streamed run with its wall-clock seconds (the log may differ between runs)."""

    def __init__(self, sc: Scenario, mode: str):
        self.logger = log.get_logger(scenario=sc.name, seed=sc.run.seed, mode=mode)
        self.t = time.perf_counter()

    def done(self, phase: str) -> None:
        now = time.perf_counter()
        self.logger.info("streamed phase done", phase=phase, seconds=round(now - self.t, 3))
        self.t = now


def _give_back_memory() -> None:
    """Return freed memory to the system: the C heap's free pages (glibc keeps them after
    numpy frees mid-sized arrays) and pyarrow's pool. Peak memory is what is checked."""
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _forward(sc: Scenario, horizon_s: float, presentments: Presentments, rows_path: Path, figures_dir: Path,
             progress) -> tuple[AuthorisationFigures, list[int]]:
    """The forward pass: every purchase drawn, authorised, presented and written to the scratch rows.

    Three stages overlap (`pipeline`): a thread draws the next block, its PANs and routes,
    and prepares each part (`AuthorisationStream.prepare`: what depends on the part
    alone); this thread authorises (`feed_prepared`); a worker presents each part that
    became final, adds it to the figures and writes its scratch rows. Each stage takes its
    parts in order. A drawn block goes on in parts of about FEED_ROWS purchases: what the
    authorisations and the worker hold at a time grows with a part, not with a block
    (outcomes do not depend on where the arrivals are cut, `AuthorisationStream`).
    """
    bins = BinTable(sc)
    stream = AuthorisationStream(sc, horizon_s)
    figures = AuthorisationFigures(sc, figures_dir)
    reorder = _Reorder(rows_path.parent / "reorder")
    scratch = _ScratchRows(rows_path)
    books = {"approved": 0, "reversed": 0, "presented": 0}  # fen, switched purchases

    def drawn():
        for block in iter_blocks(sc, build_catalogue(sc)):
            if len(block["txn_id"]):
                block["pan"] = bins.pans(block["issuer"], block["card"])
                bounds = feed_bounds(block["t_arrival_s"], FEED_ROWS)
                for lo, hi in zip(bounds[:-1], bounds[1:]):
                    part = {k: v[lo:hi] for k, v in block.items()}
                    routed = bins.route(part["pan"])
                    if not np.array_equal(routed, part["issuer"]):
                        raise InvariantError("a card's PAN routes to another issuer than the one that issued it")
                    kept = {k: part[k] for k in _KEPT_COLUMNS}
                    yield kept, part["pan"], stream.prepare(part, routed, first_gid=int(part["txn_id"][0]))
                del block  # the next block is drawn only once this one's parts are all taken

    def emit(b: dict) -> None:
        out = _Reorder.assemble(b)
        txn = b["txn"]
        slot = presentments.add(txn, out)
        figures.add(txn, out)
        switched_approved = (out["response_code"] == APPROVED) & (out["route"] != ROUTE_IN_BANK)
        amount = txn["amount_minor"]
        books["approved"] += int(amount[switched_approved].sum())
        books["reversed"] += int(amount[switched_approved & out["reversed"]].sum())
        books["presented"] += int(amount[slot >= 0].sum())
        scratch.write({k: txn[k] for k in _TXN_COLUMNS} | {"pan": b["pan"], "slot": slot} | out)

    def count_saf() -> None:
        # The store-and-forward attempts go into their counts as they are made: kept until the
        # end, every stand-in advice of a long outage stayed in memory (37 bytes an attempt).
        # Only add_saf touches those counts, never the worker's add, and they are integers:
        # the order does not matter.
        for j, s in enumerate(stream.issuers or []):
            for part in s.saf_log:
                figures.add_saf(np.full(len(part["kind"]), j, dtype=np.int16), part["kind"], part["attempt"],
                                part["t_acked_s"])
            s.saf_log = []

    def feed(chunk: PreparedChunk, W: float, emitter: Worker) -> None:
        for done in stream.feed_prepared(chunk, W):
            reorder.take(done)
        count_saf()
        for b in reorder.ready():
            emitter.put(b)

    try:
        with Prefetch(drawn()) as parts, Worker(emit) as emitter:
            pending = None
            for kept, pan, chunk in parts:
                reorder.add_part(kept, pan)
                if pending is not None:
                    W = float(kept["t_arrival_s"][0])
                    feed(pending, W, emitter)
                    if progress is not None:
                        progress(W, horizon_s)
                pending = chunk
            if pending is not None:
                feed(pending, np.inf, emitter)
    finally:
        scratch.close()
    if reorder.parts:
        raise InvariantError(f"streamed run: {sum(b['left'] for b in reorder.parts)} authorisation(s) never "
                             "became final")
    stream.finish()
    if books["approved"] - books["reversed"] != books["presented"]:
        raise InvariantError(f"approved {books['approved']} minus reversed {books['reversed']} fen is not the "
                             f"{books['presented']} fen handed to clearing")
    count_saf()
    return figures, stream.queue_depth_max


def feed_bounds(t_arrival: np.ndarray, rows: int) -> list[int]:
    """Cuts of arrivals sorted by time into parts of about `rows`: every `rows` positions,
    except where the cut would split arrivals at the same instant (that part grows)."""
    n = len(t_arrival)
    cuts = [c for c in range(rows, n, rows) if t_arrival[c - 1] < t_arrival[c]]
    return [0, *cuts, n]


class _ScratchRows:
    """The forward pass's rows, part by part, in an Arrow IPC file (lz4) for the second pass."""

    def __init__(self, path: Path):
        self.sink = pa.OSFile(str(path), "wb")
        self.writer: pa.ipc.RecordBatchFileWriter | None = None

    def write(self, cols: dict[str, np.ndarray]) -> None:
        batch = pa.record_batch(cols)
        if self.writer is None:
            self.writer = pa.ipc.new_file(self.sink, batch.schema, options=pa.ipc.IpcWriteOptions(compression="lz4"))
        self.writer.write_batch(batch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.sink.close()


def _write_transactions(path: Path, rows_path: Path, clearing: StreamedClearing, names: TableNames,
                        w_code: np.ndarray, w_time: np.ndarray, settle: SettlementTxnFigures) -> None:
    """`transactions.parquet` from the scratch rows, with where each purchase cleared and settled."""
    out = _ParquetOut(path)
    batches = _scratch_batches(rows_path)
    # The settlement figures in a thread of their own, batch by batch in order: this thread,
    # which encodes transactions.parquet, is the tables' longest, the records' thread the shorter.
    with Worker(lambda figures: settle.add(*figures), depth=2) as settling:
        for cols in batches:
            slot = cols["slot"]
            has = slot >= 0
            at = np.maximum(slot, 0)
            file_no = np.where(has, clearing.slot_file[at], -1)
            cycle = np.where(has, clearing.slot_cycle[at], -1)
            window = np.where(has, clearing.slot_window[at], -1)
            status = w_code[window]  # -1: the last entry, unsettled
            settled_at = w_time[window]
            lag_h = (settled_at - cols["t_response_s"]) / 3600.0
            owed = settlement_figures.carries_obligation(cols["response_code"], cols["route"], cols["reversed"])
            settling.put((cols["t_response_s"], cols["amount_minor"], owed, settled_at, status))
            out.add(transaction_rows(names, cols, cols, cols["pan"], file_no, cycle, window, status, settled_at,
                                     lag_h, owed))
    out.close(_empty_transactions(names))


def _scratch_batches(path: Path):
    """The scratch rows of the forward pass, a part at a time, as numpy columns."""
    if not path.exists() or path.stat().st_size == 0:
        return
    # Plain reads, not a memory map: a map's pages would count as resident memory until it closes.
    with pa.OSFile(str(path), "rb") as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            yield {name: col.to_numpy(zero_copy_only=False) for name, col in zip(batch.schema.names, batch.columns)}


def _empty_transactions(names: TableNames) -> pa.Table:
    t = {k: np.empty(0, dtype=d) for k, d in TRAFFIC_COLUMNS.items()}
    o = {c: np.empty(0, dtype=d) for c, d in OUTCOME_COLUMNS.items()}
    e = np.empty(0, dtype=np.int64)
    return transaction_rows(names, t, o, e, e, e, e, np.empty(0, np.int8), np.empty(0), np.empty(0),
                            np.empty(0, bool))


def _write_records(path: Path, sc: Scenario, presentments: Presentments, clearing: StreamedClearing,
                   w_code: np.ndarray) -> None:
    received = clearing.received
    names = RecordNames(sc, received, [c.id for c in clearing.cycles], [w.id for w in clearing.settlement.windows])
    issuer_party = presentments.issuer_party
    out = _ParquetOut(path)
    statuses = list(settlement_figures.STATUSES)

    def rows(rec: np.ndarray, first_id: int, first_message: int, number: int, sender: int, cycle: int,
             window: int, acquirer: int) -> pa.Table:
        """The rows of a part of one file's spilled records, the first of them its
        `first_message`th message (none: the schema of a run that cleared nothing)."""
        n = len(rec)
        r = {
            "record_id": np.arange(first_id, first_id + n, dtype=np.int64),
            "file": np.full(n, number),
            "message_number": np.arange(first_message, first_message + n, dtype=np.int64),
            "sender": np.full(n, sender), "receiver": issuer_party[rec["issuer"].astype(np.int64)],
            "kind": np.full(n, cd.KIND_FIRST_PRESENTMENT, dtype=np.int8),
            "status": np.full(n, STATUS_CLEARED, dtype=np.int8), "reason": np.full(n, -1, dtype=np.int16),
            "arn": record_arns(sc, acquirer, rec), "mcc": rec["mcc"], "product": rec["product"],
            "cycle": np.full(n, cycle), "window": np.full(n, window),
            "amount_minor": rec["amount_minor"], "interchange_minor": rec["interchange_minor"],
            "scheme_fee_issuer_minor": rec["scheme_fee_issuer_minor"],
            "scheme_fee_acquirer_minor": rec["scheme_fee_acquirer_minor"],
        }
        status = np.full(n, w_code[window], dtype=np.int64)
        return record_rows(names, r, rec["txn_id"], np.full(n, acquirer), rec["issuer"], _dict_array(statuses, status))

    next_id = 0
    for f in received:
        first_id = next_id
        for rec in presentments.records(f.slot, RECORD_PART):
            # A file's first presentments are its messages 2, 3, ... (1 is the header).
            out.add(rows(rec, next_id, 2 + next_id - first_id, f.number, f.sender, f.cycle,
                         int(clearing.slot_window[f.slot]), f.index))
            next_id += len(rec)
        if next_id - first_id != f.n_records:
            raise InvariantError(f"file {f.file_id}: {next_id - first_id} records spilled, {f.n_records} counted")
    out.close(rows(np.empty(0, SPILL_DTYPE), 0, 2, 0, 0, 0, 0, 0))


def _clearing_summary(sc: Scenario, presentments: Presentments, clearing: StreamedClearing) -> dict:
    """`summary.json`'s `clearing` of a streamed run: every record of a received file cleared."""
    received = clearing.received
    sums = presentments.per_submission()
    slots = np.array([f.slot for f in received], dtype=np.int64)
    part = sums[slots] if len(slots) else np.zeros((0,) + sums.shape[1:], np.int64)
    n_parties = len(sc.participant_ids)
    records = int(part[:, :, RECORDS].sum())
    amount = int(part[:, :, AMOUNT].sum())
    ic = part[:, :, INTERCHANGE]  # (file, issuer party)
    acq_party = np.array([f.sender for f in received], dtype=np.int64)
    paid = np.zeros(n_parties, np.int64)
    np.add.at(paid, acq_party, ic.sum(axis=1))
    received_ic = ic.sum(axis=0)
    # Scheme fees by payer: issuers pay theirs, acquirers theirs.
    fee_iss = transfer_total(part, FEE_ISSUER).sum(axis=0)
    fee_acq_per_file = transfer_total(part, FEE_ACQUIRER).sum(axis=1)
    fee_acq = np.zeros(n_parties, np.int64)
    np.add.at(fee_acq, acq_party, fee_acq_per_file)
    zero = {"presented": 0, "cleared": 0, "rejected": 0, "amount_cleared_minor": 0}
    by_kind = {name: dict(zero) for name in cd.KIND_NAMES}
    by_kind["first_presentment"] = {"presented": records, "cleared": records, "rejected": 0,
                                    "amount_cleared_minor": amount}
    counts = {
        "records_presented": records, "records_cleared": records, "records_rejected": 0, "rejects_by_reason": {},
        "records_by_kind": by_kind, "amount_presented_minor": amount, "amount_cleared_minor": amount,
        "amount_rejected_minor": 0, "interchange_minor": int(ic.sum()),
        "scheme_fees_minor": int(fee_iss.sum() + fee_acq.sum()),
    }
    fees = fee_figures_of(sc, paid, received_ic, fee_iss, fee_acq)
    rejects = {ipm.FUNC_MESSAGE_EXCEPTION: 0, ipm.FUNC_FILE_REJECT: 0}
    return clearing_block(sc, received, clearing.cycles, [w.id for w in clearing.settlement.windows], counts, fees,
                          rejects, len(clearing.in_transit), set())
