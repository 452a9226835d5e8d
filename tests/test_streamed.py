"""A streamed fast-mode run (clearing_sim.streamed) writes the same run folder as a whole-day run."""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim import resources, streamed
from clearing_sim.cli import main
from clearing_sim.errors import InputError
from clearing_sim.model import defaults as rules
from clearing_sim.model.settlement import ObligationKind, SettlementWindow
from clearing_sim.model.stream_clearing import SPILL_DTYPE, Submissions, _fill_records, why_not_streamable
from clearing_sim.model.network import horizon_days
from clearing_sim.model.traffic import DAY_S, group_order
from clearing_sim.scenario import clock_seconds, load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
# Outages and store-and-forward, switch restarts, a late settlement bank, intraday windows.
SAME_AS_WHOLE_DAY = ("baseline", "issuer_outage", "switch_restart", "settlement_delay", "intraday_windows")
OUTPUTS = ("summary.json", "transactions.parquet", "clearing_records.parquet", "settlements.parquet", "report.html")


def _run(path: Path, out: Path, *extra: str) -> None:
    assert main(["run", str(path), "--mode", "fast", "--out", str(out), "-q", *extra]) == 0


def _same_folders(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert not [p.name for p in a.iterdir() if p.name.startswith(".")], "scratch files left in the run folder"


@pytest.mark.slow
@pytest.mark.parametrize("name", SAME_AS_WHOLE_DAY)
def test_streamed_folder_is_byte_identical(name: str, tmp_path: Path, monkeypatch) -> None:
    """Every output file of a streamed run equals the whole-day run's, byte for byte."""
    path = SCENARIOS / f"{name}.yaml"
    sc = load_scenario(path)
    assert why_not_streamable(sc, horizon_days(sc)) is None
    _run(path, tmp_path / "whole")
    monkeypatch.setattr(streamed, "STREAM_MIN_TRANSACTIONS", 0)
    monkeypatch.setattr(streamed, "FEED_ROWS", 1009)  # an hour's block goes on in about ten parts
    monkeypatch.setattr(streamed, "RECORD_PART", 997)  # a file's records become rows in parts
    monkeypatch.setattr(streamed, "REORDER_HOLD_ROWS", 3001)  # parts waiting behind a purchase go to scratch files
    _run(path, tmp_path / "streamed")
    log = (tmp_path / "streamed" / "log.jsonl").read_text()
    assert "streamed run" in log and "streamed run" not in (tmp_path / "whole" / "log.jsonl").read_text()
    _same_folders(tmp_path / "streamed", tmp_path / "whole")


@pytest.mark.slow
def test_store_and_forward_attempts_are_counted_as_they_are_made(tmp_path: Path, monkeypatch) -> None:
    """The forward pass does not keep the run's store-and-forward log (a long outage's every
    stand-in advice): an issuer's log holds at most one feed's attempts."""
    from clearing_sim.model import fast_authorisation

    held: list[int] = []
    original = fast_authorisation._IssuerStream._store_and_forward

    def watched(self, W: float) -> None:
        held.append(len(self.saf_log))
        original(self, W)

    monkeypatch.setattr(fast_authorisation._IssuerStream, "_store_and_forward", watched)
    monkeypatch.setattr(streamed, "STREAM_MIN_TRANSACTIONS", 0)
    monkeypatch.setattr(streamed, "FEED_ROWS", 1009)
    _run(SCENARIOS / "issuer_outage.yaml", tmp_path / "streamed")
    summary = json.loads((tmp_path / "streamed" / "summary.json").read_text())
    assert summary["authorisations"]["advices"] > 0
    assert len(held) > 100 and max(held) <= 1


def _streams_like_a_whole_day(text: str, tmp_path: Path, monkeypatch, **limits: int) -> dict:
    """Run scenario `text` whole, then streamed with the given part sizes (streamed.FEED_ROWS, ...):
    the two folders must be byte-identical. Returns the summary."""
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    _run(path, tmp_path / "whole")
    monkeypatch.setattr(streamed, "STREAM_MIN_TRANSACTIONS", 0)
    for name, value in limits.items():
        monkeypatch.setattr(streamed, name, value)
    _run(path, tmp_path / "streamed")
    assert "streamed run" in (tmp_path / "streamed" / "log.jsonl").read_text()
    _same_folders(tmp_path / "streamed", tmp_path / "whole")
    return json.loads((tmp_path / "streamed" / "summary.json").read_text())


@pytest.mark.slow
def test_national_day_shape_streams_like_a_whole_day(tmp_path: Path, monkeypatch) -> None:
    """national_day.yaml's network (30 issuers, 40 acquirers, 4 cycles, 2 windows, T+0) at 1/500 of its volume."""
    text = (SCENARIOS / "national_day.yaml").read_text().replace("transactions_per_day: 100000000",
                                                                    "transactions_per_day: 200000")
    s = _streams_like_a_whole_day(text, tmp_path, monkeypatch, FEED_ROWS=4099, RECORD_PART=1021,
                                  REORDER_HOLD_ROWS=10007)
    assert abs(s["authorisations"]["count"] - 200_000) < 3_000
    # The day's four cycles, and the next morning's for purchases answered after the 23:30 files.
    assert [c["id"][-5:] for c in s["clearing"]["cycles"]] == ["06:30", "12:30", "18:30", "23:45", "06:30"]


def test_store_and_forward_past_the_horizon_streams_like_a_whole_day(tmp_path: Path, monkeypatch) -> None:
    """Advices acknowledged days after the settlement horizon: the streamed run's summary has the
    same drain times (and every other byte) as the whole-day run's."""
    from tests.test_fast_mode import SLOW_LINKS_YAML

    s = _streams_like_a_whole_day(SLOW_LINKS_YAML, tmp_path, monkeypatch, FEED_ROWS=257, REORDER_HOLD_ROWS=301)
    assert s["authorisations"]["saf_drained_s"] > s["simulated_days"] * 86400


@pytest.mark.slow
def test_approvals_owing_nothing_stream_like_a_whole_day(tmp_path: Path, monkeypatch) -> None:
    """Approvals kept in the bank and approvals reversed (tests/auth_scenarios.py's stress
    scenario has thousands of each) are left out of the exposure and the settlement statuses
    by the streamed run exactly as by the whole-day run."""
    from tests.auth_scenarios import STRESS_YAML

    s = _streams_like_a_whole_day(STRESS_YAML, tmp_path, monkeypatch, FEED_ROWS=1009, RECORD_PART=997,
                                  REORDER_HOLD_ROWS=3001)
    a, st_ = s["authorisations"], s["settlement"]
    assert a["reversed_approved"] > 0 and a["in_bank"]["approved"] > 0
    assert sum(st_["transactions_by_settlement_status"].values()) == a["approved"] - a["reversed_approved"]
    assert st_["exposure"]["unsettled_at_end_minor"] == 0


NOTHING_CLEARED = """
name: nothing_cleared
run: {days: 1, seed: 1}
institutions:
  - {id: B0, name: Bank B0}
issuers:
  - {institution: B0, bins: ["400001"], share: 1, risk_decline_rate: 1.0, host: {servers: 1}}
acquirers:
  - {institution: B0, share: 1, category_mix: {"5411": 1}}
traffic:
  transactions_per_day: 300
  amount_minor: {"5411": {distribution: constant, value: 100}}
"""


@pytest.mark.parametrize("purchases, text", [
    (285, NOTHING_CLEARED),
    (0, NOTHING_CLEARED.replace("transactions_per_day: 300", "transactions_per_day: 1").replace("seed: 1", "seed: 0")),
])
def test_a_run_that_clears_nothing_streams_like_a_whole_day(purchases: int, text: str, tmp_path: Path,
                                                            monkeypatch) -> None:
    """Every purchase declined, or no purchase at all: no clearing record, and the empty
    clearing_records.parquet of a streamed run has the whole-day run's column types (its `mcc` was int64
    where a whole day's is int16); with no purchase the streamed run no longer fails on the issuers'
    queue depths (no chunk ever reached the authorisation stream)."""
    path = tmp_path / "nothing_cleared.yaml"
    path.write_text(text)
    _run(path, tmp_path / "whole")
    monkeypatch.setattr(streamed, "STREAM_MIN_TRANSACTIONS", 0)
    _run(path, tmp_path / "streamed")
    summary = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert summary["authorisations"]["count"] == purchases and summary["clearing"]["records_presented"] == 0
    _same_folders(tmp_path / "streamed", tmp_path / "whole")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=0, max_size=200), st.integers(1, 40))
def test_feed_bounds_cut_every_so_many_rows_but_never_inside_an_instant(ticks: list[int], rows: int) -> None:
    t = np.sort(np.array(ticks, dtype=np.float64))
    b = streamed.feed_bounds(t, rows)
    assert b[0] == 0 and b[-1] == len(t) and b == sorted(set(b)) or (len(t) == 0 and b == [0, 0])
    assert all(t[c - 1] < t[c] for c in b[1:-1])
    assert set(b[1:-1]) == {c for c in range(rows, len(t), rows) if t[c - 1] < t[c]}


def test_only_large_fast_runs_stream() -> None:
    sc = load_scenario(SCENARIOS / "baseline.yaml")
    assert not streamed.streams(sc, "fast") and streamed.streams(sc, "fast", force=True)
    assert not streamed.streams(sc, "detailed", force=True)
    assert not streamed.streams(sc, "fast", keep_files=True, force=True)
    assert streamed.streams(load_scenario(SCENARIOS / "national_day.yaml"), "fast")


@pytest.mark.parametrize("name, key", [
    ("late_file", "clearing.faults"), ("duplicate_file", "clearing.faults"),
    ("refunds_and_disputes", "clearing.refund_rate"), ("participant_default", "settlement.accounts"),
])
def test_what_cannot_stream_says_why(name: str, key: str) -> None:
    """Features that need the whole day's records keep the run in memory, and the reason names the key."""
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    assert why_not_streamable(sc, 5).startswith(key)
    assert not streamed.streams(sc, "fast", force=True)


def test_presentment_limit_shorter_than_the_run_does_not_stream() -> None:
    sc = load_scenario(SCENARIOS / "baseline.yaml")
    sc = attrs.evolve(sc, clearing=attrs.evolve(sc.clearing, presentment_limit_days=2))
    assert why_not_streamable(sc, 5).startswith("clearing.presentment_limit_days")


class TestSubmissions:
    """A purchase goes into its acquirer's first submission after its answer (0.3.2: one answered at a
    submission's very instant goes into the next, as `acquirers._ready_into` decides in a whole-day run)."""

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.floats(0.0, 3 * DAY_S + 100.0), min_size=1, max_size=40), st.integers(0, 2))
    def test_matches_a_walk_through_the_schedule(self, times: list[float], acquirer: int) -> None:
        sc = load_scenario(SCENARIOS / "intraday_windows.yaml")
        acquirer %= len(sc.acquirers)
        subs = Submissions(sc, 3)
        got = subs.of(np.full(len(times), acquirer), np.array(times))
        clocks = [clock_seconds(t) for t in sc.acquirers[acquirer].submission_times]
        for t, slot in zip(times, got.tolist()):
            expect = -1
            for day in range(3):
                for seq, c in enumerate(clocks):
                    if expect < 0 and t < day * DAY_S + c:
                        expect = int(subs.offset[acquirer]) + day * len(clocks) + seq
            assert slot == expect
            if slot >= 0:
                a, day, seq = subs.describe(slot)
                assert (a, day * DAY_S + clocks[seq] > t) == (acquirer, True)


    @settings(max_examples=80, deadline=None)
    @given(st.data(), st.integers(1, 3))
    def test_same_as_the_numpy_version(self, data, days: int) -> None:
        """Submissions.of (compiled) gives what it gave as numpy code, for any acquirers and finite
        times, answers exactly at a submission or at midnight included."""
        sc = _intraday_windows()
        subs = Submissions(sc, days)
        exact = [d * DAY_S + clock_seconds(c) for a in sc.acquirers for c in a.submission_times
                 for d in range(-1, days + 1)] + [d * DAY_S for d in range(-1, days + 2)]
        times = np.array(data.draw(st.lists(st.one_of(st.floats(-DAY_S, (days + 1) * DAY_S), st.sampled_from(exact)),
                                            max_size=60)), dtype=np.float64)
        acquirer = np.array(data.draw(st.lists(st.integers(0, len(sc.acquirers) - 1), min_size=len(times),
                                               max_size=len(times))), dtype=np.int64)
        got = subs.of(acquirer, times)
        want = _ref_submissions_of(subs, acquirer, times)
        assert got.dtype == want.dtype and np.array_equal(got, want)

    def test_an_unknown_acquirer_is_an_error(self) -> None:
        subs = Submissions(_intraday_windows(), 1)
        with pytest.raises(ValueError):
            subs.of(np.array([0, len(subs.times)]), np.array([1.0, 2.0]))


@functools.cache
def _intraday_windows():
    return load_scenario(SCENARIOS / "intraday_windows.yaml")


def _ref_submissions_of(subs: Submissions, acquirer: np.ndarray, t_response_s: np.ndarray) -> np.ndarray:
    """Submissions.of as numpy code, acquirer by acquirer, before its compiled loop (with 0.3.2's
    strict rule: a clock time equal to a submission's is past it)."""
    out = np.full(len(acquirer), -1, dtype=np.int64)
    order, edges = group_order(acquirer, 0, len(subs.times))
    for a, times in enumerate(subs.times):
        rows = order[edges[a]:edges[a + 1]]
        if len(rows) == 0:
            continue
        t = t_response_s[rows]
        day = np.floor(t / DAY_S)
        clock = t - day * DAY_S
        seq = np.searchsorted(times, clock, side="right")
        day = day.astype(np.int64) + (seq == len(times))
        seq = np.where(seq == len(times), 0, seq)
        slot = subs.offset[a] + day * len(times) + seq
        out[rows] = np.where(day < subs.horizon_days, slot, -1)
    return out


class TestSummedObligations:
    """A cycle's records posted as sums per (issuer, acquirer) pair, kind and sign, the way a
    streamed run posts them, give a window the figures of the records posted one by one."""

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(-50, 10**6), st.integers(0, 40),
                              st.integers(0, 40)), min_size=1, max_size=40))
    def test_same_figures_as_record_by_record(self, records) -> None:
        n, network = 5, 4
        kinds, rec_ids, payers, payees, amounts = [], [], [], [], []
        for r, (iss, acq, principal, fee_iss, fee_acq) in enumerate(records):  # as clearing._post_obligations
            for kind, payer, payee, amount in ((ObligationKind.PRESENTMENT, iss, acq, principal),
                                               (ObligationKind.SCHEME_FEE_ISSUER, iss, network, fee_iss),
                                               (ObligationKind.SCHEME_FEE_ACQUIRER, acq, network, fee_acq)):
                kinds.append(kind), rec_ids.append(r), payers.append(payer), payees.append(payee)
                amounts.append(amount)
        single = SettlementWindow(0, "w", 0.0, n)
        single.add_obligations(np.array(kinds, np.int8), np.array(rec_ids), np.array(payers), np.array(payees),
                               np.array(amounts, np.int64))
        sums: dict[tuple, list[int]] = {}
        per_pair: dict[int, int] = {}
        for r, kind, payer, payee, amount in zip(rec_ids, kinds, payers, payees, amounts):
            iss, acq = records[r][0], records[r][1]
            pair = iss * n + acq
            if kind == ObligationKind.PRESENTMENT:
                per_pair[pair] = per_pair.get(pair, 0) + 1
            total = sums.setdefault((int(kind), pair, payer, payee, amount < 0), [0, 0])
            total[0] += amount
            total[1] += 1
        summed = SettlementWindow(0, "w", 0.0, n)
        keys = list(sums)
        summed.add_obligations(np.array([k[0] for k in keys], np.int8), np.array([k[1] for k in keys]),
                               np.array([k[2] for k in keys]), np.array([k[3] for k in keys]),
                               np.array([sums[k][0] for k in keys], np.int64),
                               transfers=np.array([sums[k][1] for k in keys]), records=per_pair)
        for w in (single, summed):
            w.close(1.0)
        for field in ("n_transfers", "gross_minor", "kinds_present"):
            assert getattr(single, field) == getattr(summed, field), field
        for field in ("obligations_minor", "positions_by_kind_minor", "gross_paid_minor", "gross_received_minor"):
            assert np.array_equal(getattr(single, field), getattr(summed, field)), field
        cap = np.full(n, rules.UNLIMITED, dtype=np.int64)
        one = rules.cover_one("unwind", *single.columns()[:4], n, cap)
        two = rules.cover_one("unwind", *summed.columns()[:4], n, cap, count_records=summed._count_records)
        assert one == two

    def test_a_summed_row_stands_for_at_least_one_transfer(self) -> None:
        w = SettlementWindow(0, "w", 0.0, 3)
        with pytest.raises(ValueError, match="at least one transfer"):
            w.add_obligations(ObligationKind.PRESENTMENT, 0, [0], [1], [5], transfers=[0])


class TestStreamedResources:
    """A streamed run is checked for memory by its cards and for disk by its volume, before anything is written."""

    def test_national_day_fits_by_its_cards(self, monkeypatch) -> None:
        sc = load_scenario(SCENARIOS / "national_day.yaml")
        monkeypatch.setattr(resources, "available_bytes", lambda: 8 * 2**30)
        monkeypatch.setattr(resources.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 0, 2**50))
        resources.check_memory(sc, streamed=True)
        with pytest.raises(InputError, match="traffic.transactions_per_day"):
            resources.check_memory(sc)
        assert resources.estimated_peak_bytes(sc, streamed=True) <= 4 * 2**30

    def test_refused_for_memory_names_the_cards(self, monkeypatch) -> None:
        sc = load_scenario(SCENARIOS / "national_day.yaml")
        monkeypatch.setattr(resources, "available_bytes", lambda: 2**30)
        monkeypatch.setattr(resources.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 0, 2**50))
        with pytest.raises(InputError, match=r"issuers\[\].cards"):
            resources.check_memory(sc, streamed=True)

    def test_refused_for_disk(self, monkeypatch, tmp_path: Path, capsys) -> None:
        monkeypatch.setattr(resources.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 0, 2**30))
        out = tmp_path / "run"
        assert main(["run", str(SCENARIOS / "national_day.yaml"), "--mode", "fast", "--out", str(out)]) == 2
        assert "GiB of disk" in capsys.readouterr().err and not out.exists()


class TestStreamedRunFolder:
    """A streamed run replays byte for byte, and a failed one leaves no table, no report and no scratch."""

    def test_replay_is_identical(self, tmp_path: Path, monkeypatch, capsys) -> None:
        monkeypatch.setattr(streamed, "STREAM_MIN_TRANSACTIONS", 0)
        path = SCENARIOS / "t1_single_window.yaml"
        _run(path, tmp_path / "run")
        assert main(["run", "--replay", str(tmp_path / "run"), "-q"]) == 0
        assert "replay identical" in capsys.readouterr().out

    def test_failure_half_way_writes_nothing(self, tmp_path: Path, monkeypatch) -> None:
        monkeypatch.setattr(streamed, "STREAM_MIN_TRANSACTIONS", 0)

        def broken(*args, **kwargs):
            raise streamed.InvariantError("injected: the books do not balance")

        monkeypatch.setattr(streamed, "_write_records", broken)  # after transactions.parquet was begun
        out = tmp_path / "run"
        assert main(["run", str(SCENARIOS / "t1_single_window.yaml"), "--mode", "fast", "--out", str(out), "-q"]) == 1
        status = json.loads((out / "status.json").read_text())
        assert status["status"] == "failed" and "injected" in status["error"]
        assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "log.jsonl", "status.json"]

    @pytest.mark.parametrize("stage", ["draw", "present"])
    def test_failure_in_a_forward_stage_writes_nothing(self, stage: str, tmp_path: Path, monkeypatch) -> None:
        """An error in the drawing thread or the presenting worker fails the run like one in the main thread."""
        import threading

        monkeypatch.setattr(streamed, "STREAM_MIN_TRANSACTIONS", 0)
        calls = {"n": 0}

        def third_fails(real):
            def wrapped(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == 3:
                    raise streamed.InvariantError(f"injected in {stage}")
                return real(*args, **kwargs)
            return wrapped

        if stage == "draw":
            real_blocks = streamed.iter_blocks

            def blocks(*args, **kwargs):
                for i, b in enumerate(real_blocks(*args, **kwargs)):
                    if i == 3:
                        raise streamed.InvariantError("injected in draw")
                    yield b

            monkeypatch.setattr(streamed, "iter_blocks", blocks)
        else:
            monkeypatch.setattr(streamed.Presentments, "add", third_fails(streamed.Presentments.add))
        out = tmp_path / "run"
        assert main(["run", str(SCENARIOS / "t1_single_window.yaml"), "--mode", "fast", "--out", str(out), "-q"]) == 1
        status = json.loads((out / "status.json").read_text())
        assert status["status"] == "failed" and f"injected in {stage}" in status["error"]
        assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "log.jsonl", "status.json"]
        assert not [t for t in threading.enumerate() if t.name in ("prefetch", "worker") and t.is_alive()]


    def test_failure_in_the_settlement_figures_thread_writes_nothing(self, tmp_path: Path, monkeypatch) -> None:
        """settle.add runs in a worker thread beside transactions.parquet's encoding: its error, on
        a middle batch or on the last one (raised as the thread is joined), fails the run like
        one in the main thread, the figures are never taken, and no thread is left."""
        import threading

        from clearing_sim import stream_settlement

        monkeypatch.setattr(streamed, "STREAM_MIN_TRANSACTIONS", 0)
        monkeypatch.setattr(streamed, "FEED_ROWS", 1009)
        real = stream_settlement.SettlementTxnFigures.add
        calls = {"n": 0, "fail_at": 0}

        def add(self, *args):
            calls["n"] += 1
            if calls["n"] == calls["fail_at"]:
                raise streamed.InvariantError(f"injected in settle at batch {calls['n']}")
            real(self, *args)

        monkeypatch.setattr(stream_settlement.SettlementTxnFigures, "add", add)
        path = SCENARIOS / "t1_single_window.yaml"
        _run(path, tmp_path / "whole")
        batches = calls["n"]
        assert batches > 3
        monkeypatch.setattr(stream_settlement.SettlementTxnFigures, "result",
                            lambda self: pytest.fail("the figures were taken after a batch failed"))
        for fail_at in (3, batches):
            calls.update(n=0, fail_at=fail_at)
            out = tmp_path / f"run{fail_at}"
            assert main(["run", str(path), "--mode", "fast", "--out", str(out), "-q"]) == 1
            status = json.loads((out / "status.json").read_text())
            assert status["status"] == "failed" and f"injected in settle at batch {fail_at}" in status["error"]
            assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "log.jsonl", "status.json"]
            assert not [t for t in threading.enumerate() if t.name == "worker" and t.is_alive()]

    @pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a file whose every write fails ENOSPC")
    @pytest.mark.parametrize("spill", ["presentments", "figures"])
    def test_disk_full_in_the_scratch_files(self, spill: str, tmp_path: Path, monkeypatch, capsys) -> None:
        """The disk filling under the scratch files (numpy's tofile): 'internal error: OSError: 24882
        requested and 54 written ... This is a bug'; now the full disk is named, exit 1."""
        from clearing_sim import stream_figures

        monkeypatch.setattr(streamed, "STREAM_MIN_TRANSACTIONS", 0)
        full = lambda *args: Path("/dev/full")  # noqa: E731
        if spill == "presentments":
            monkeypatch.setattr(streamed.Presentments, "spill_path", full)
        else:
            monkeypatch.setattr(stream_figures._FloatGroups, "_path", full)
        out = tmp_path / "run"
        assert main(["run", str(SCENARIOS / "t1_single_window.yaml"), "--mode", "fast", "--out", str(out), "-q"]) == 1
        err = capsys.readouterr().err
        assert "the run could not be written: No space left on device" in err and "bug" not in err, err
        assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "log.jsonl", "status.json"]


class TestReorder:
    """Final rows come issuer by issuer, each issuer's in id order, a part's rows over many
    feeds; every part goes on whole, in id order, with every outcome column as it was."""

    @staticmethod
    def _parts(sizes: list[int]) -> tuple[list[dict], dict]:
        parts, first = [], 0
        for n in sizes:
            parts.append({"txn_id": np.arange(first, first + n, dtype=np.int64)})
            first += n
        rng = np.random.default_rng(len(sizes) + first)
        truth = {c: (rng.random(first) * 100).astype(d) for c, d in streamed.OUTCOME_COLUMNS.items()}
        return parts, truth

    @settings(max_examples=80, deadline=None)
    @given(st.lists(st.integers(1, 40), min_size=1, max_size=5), st.integers(1, 5), st.integers(1, 6),
           st.sampled_from([None, 0, 1, 30]), st.data())
    def test_parts_come_out_whole_and_in_order(self, sizes, issuers, feeds, hold, data) -> None:
        """Whatever the order rows finish in, and however much of the waiting parts went to
        scratch files (`hold`: rows kept in memory; None: never spill)."""
        parts, truth = self._parts(sizes)
        total = sum(sizes)
        issuer = np.array(data.draw(st.lists(st.integers(0, issuers - 1), min_size=total, max_size=total)))
        feed_of = np.array(data.draw(st.lists(st.integers(0, feeds - 1), min_size=total, max_size=total)))
        with tempfile.TemporaryDirectory() as tmp:
            spill = None if hold is None else Path(tmp) / "reorder"
            reorder = streamed._Reorder(spill, hold)
            for p in parts:
                reorder.add_part(p, p["txn_id"] * 10)
            got = []
            for f in range(feeds):
                for k in range(issuers):
                    gid = np.flatnonzero((issuer == k) & (feed_of == f))
                    if len(gid):
                        reorder.take({"gid": gid} | {c: v[gid] for c, v in truth.items()})
                    assert hold is None or reorder.held <= max(hold, reorder._in_memory(reorder.parts[0])
                                                               if reorder.parts else 0)
                for b in reorder.ready():
                    got.append((b, streamed._Reorder.assemble(b)))
            assert not reorder.parts and reorder.held == 0
            assert [b["first"] for b, _ in got] == [int(p["txn_id"][0]) for p in parts]
            for (b, out), p in zip(got, parts):
                ids = b["txn"]["txn_id"]
                assert np.array_equal(ids, p["txn_id"]) and np.array_equal(b["pan"], ids * 10)
                for c, d in streamed.OUTCOME_COLUMNS.items():
                    assert out[c].dtype == d and np.array_equal(out[c], truth[c][ids])
            assert spill is None or not spill.exists() or not list(spill.iterdir())  # files removed
            if hold == 0 and len(parts) > 1:
                assert reorder.spills > 0

    def test_a_part_is_not_ready_before_its_last_row(self) -> None:
        parts, truth = self._parts([4, 4])
        reorder = streamed._Reorder()
        for p in parts:
            reorder.add_part(p, p["txn_id"])
        gid = np.array([0, 1, 2, 4, 5, 6, 7])
        reorder.take({"gid": gid} | {c: v[gid] for c, v in truth.items()})
        assert list(reorder.ready()) == []  # the second part is whole, but the first is not
        reorder.take({"gid": np.array([3])} | {c: v[[3]] for c, v in truth.items()})
        assert [b["first"] for b in reorder.ready()] == [0, 4]

    def test_a_row_final_twice_is_an_error(self) -> None:
        parts, truth = self._parts([3])
        reorder = streamed._Reorder()
        reorder.add_part(parts[0], parts[0]["txn_id"])
        reorder.take({"gid": np.array([0, 1])} | {c: v[[0, 1]] for c, v in truth.items()})
        reorder.take({"gid": np.array([1])} | {c: v[[1]] for c, v in truth.items()})  # 1 again, 2 never
        (b,) = reorder.ready()
        with pytest.raises(streamed.InvariantError, match="final twice"):
            streamed._Reorder.assemble(b)
        with pytest.raises(streamed.InvariantError, match="final twice"):
            reorder.add_part(parts[0], parts[0]["txn_id"])
            for _ in range(2):
                reorder.take({"gid": np.array([0, 1])} | {c: v[[0, 1]] for c, v in truth.items()})

    def test_rows_out_of_id_order_are_an_error(self) -> None:
        parts, truth = self._parts([3])
        reorder = streamed._Reorder()
        reorder.add_part(parts[0], parts[0]["txn_id"])
        with pytest.raises(streamed.InvariantError, match="out of id order"):
            reorder.take({"gid": np.array([2, 0])} | {c: v[[2, 0]] for c, v in truth.items()})


def _ref_fill_records(rows, order, txn_id, t_arrival_s, amount, interchange, fee_iss, fee_acq, mcc, product, issuer):
    """The spill records as Presentments.add filled them before _fill_records: field by field."""
    at = rows[order]
    rec = np.empty(len(rows), dtype=SPILL_DTYPE)
    rec["txn_id"] = txn_id[at]
    rec["t_arrival_s"] = t_arrival_s[at]
    rec["amount_minor"] = amount[order]
    rec["interchange_minor"] = interchange[order]
    rec["scheme_fee_issuer_minor"] = fee_iss[order]
    rec["scheme_fee_acquirer_minor"] = fee_acq[order]
    rec["mcc"] = mcc[order]
    rec["product"] = product[order]
    rec["issuer"] = issuer[order]
    return rec


class TestSpillRecords:
    """A part's spill records, filled record by record, are byte for byte the field-by-field fill."""

    @settings(max_examples=60, deadline=None)
    @given(st.integers(0, 300), st.integers(1, 20), st.integers(0, 2**32 - 1))
    def test_same_bytes(self, n: int, slots: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        rows = np.flatnonzero(rng.random(n) < 0.8)  # the presentable rows of a part of n
        m = len(rows)
        order, _ = group_order(rng.integers(0, slots, m), 0, slots)
        big = np.iinfo(np.int64)
        cols = (np.arange(10**9, 10**9 + n, dtype=np.int64), rng.random(n) * 1e5,
                rng.integers(big.min, big.max, m, endpoint=True), rng.integers(-(10**12), 10**12, m),
                rng.integers(-5, 10**6, m), rng.integers(-5, 10**6, m),
                rng.integers(0, 10_000, m).astype(np.int16), rng.integers(-1, 4, m).astype(np.int8),
                rng.integers(0, 30, m))
        got = np.empty(m, dtype=SPILL_DTYPE)
        _fill_records(rows, order, *cols, got)
        assert got.tobytes() == _ref_fill_records(rows, order, *cols).tobytes()


def test_slow_file_links_stream_like_a_whole_day(tmp_path: Path, monkeypatch) -> None:
    """Files that take days to reach the network (the horizon counts the drawn transfers beyond an
    hour): the streamed folder equals the whole-day one, every record cleared inside the run."""
    text = (SCENARIOS / "baseline.yaml").read_text().replace("transactions_per_day: 240000",
                                                            "transactions_per_day: 6000")
    text = text.replace("clearing:\n", "clearing:\n  file_transfer_ms: {distribution: uniform, low: 3.6e6, high: 1.8e8}\n", 1)
    assert "file_transfer_ms: {distribution: uniform" in text  # one hour to two days and two hours
    text = text.replace("presentment_limit_days: 5 ", "presentment_limit_days: 30 ")  # streams: none late in the run
    s = _streams_like_a_whole_day(text, tmp_path, monkeypatch, FEED_ROWS=509, RECORD_PART=257)
    c = s["clearing"]
    assert c["records_cleared"] == c["records_presented"] > 0 and c["files_not_cleared_by_end"] == 0
    assert s["simulated_days"] > 4  # longer than the baseline's horizon
