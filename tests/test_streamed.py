"""A streamed fast-mode run (clearing_sim.streamed) writes the same run folder as a whole-day run."""

from __future__ import annotations

import json
import shutil
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
from clearing_sim.model.stream_clearing import Submissions, why_not_streamable
from clearing_sim.model.traffic import DAY_S
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
    assert why_not_streamable(load_scenario(path), 10) is None
    _run(path, tmp_path / "whole")
    monkeypatch.setattr(streamed, "STREAM_MIN_TRANSACTIONS", 0)
    _run(path, tmp_path / "streamed")
    log = (tmp_path / "streamed" / "log.jsonl").read_text()
    assert "streamed run" in log and "streamed run" not in (tmp_path / "whole" / "log.jsonl").read_text()
    _same_folders(tmp_path / "streamed", tmp_path / "whole")


@pytest.mark.slow
def test_national_day_shape_streams_like_a_whole_day(tmp_path: Path, monkeypatch) -> None:
    """national_day.yaml's network (30 issuers, 40 acquirers, 4 cycles, 2 windows, T+0) at 1/500 of its volume."""
    text = (SCENARIOS / "national_day.yaml").read_text().replace("transactions_per_day: 100000000",
                                                                    "transactions_per_day: 200000")
    path = tmp_path / "national_small.yaml"
    path.write_text(text)
    _run(path, tmp_path / "whole")
    monkeypatch.setattr(streamed, "STREAM_MIN_TRANSACTIONS", 0)
    _run(path, tmp_path / "streamed")
    _same_folders(tmp_path / "streamed", tmp_path / "whole")
    s = json.loads((tmp_path / "streamed" / "summary.json").read_text())
    assert s["authorisations"]["count"] == 200_000 and len(s["clearing"]["cycles"]) == 4


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
    """A purchase goes into its acquirer's first submission at or after its answer."""

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
                    if expect < 0 and t <= day * DAY_S + c:
                        expect = int(subs.offset[acquirer]) + day * len(clocks) + seq
            assert slot == expect
            if slot >= 0:
                a, day, seq = subs.describe(slot)
                assert (a, day * DAY_S + clocks[seq] >= t) == (acquirer, True)


class TestSummedObligations:
    """Obligations summed per pair, kind and sign give a window the figures of the transfers themselves."""

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(-50, 10**6), st.integers(0, 2)),
                    min_size=1, max_size=60))
    def test_same_figures_as_record_by_record(self, rows) -> None:
        n = 5  # participant 4 is the network
        payer = np.array([r[0] for r in rows])
        payee = np.array([r[1] for r in rows])
        amount = np.array([r[2] for r in rows], dtype=np.int64)
        kind = np.array([r[3] for r in rows], dtype=np.int8)
        record = payer * n + payee  # records are pairs, as a streamed run sums them
        single = SettlementWindow(0, "w", 0.0, n)
        single.add_obligations(kind, record, payer, payee, amount)
        summed = SettlementWindow(0, "w", 0.0, n)
        keys = {}
        for p, q, a, k, r in zip(payer, payee, amount, kind, record):
            key = (int(p), int(q), int(k), a < 0, int(r))
            total, count = keys.get(key, (0, 0))
            keys[key] = (total + int(a), count + 1)
        per_record = {}
        for r in record.tolist():
            per_record[r] = per_record.get(r, 0) + 1
        summed.add_obligations(np.array([k[2] for k in keys], dtype=np.int8), np.array([k[4] for k in keys]),
                               np.array([k[0] for k in keys]), np.array([k[1] for k in keys]),
                               np.array([v[0] for v in keys.values()], dtype=np.int64),
                               transfers=np.array([v[1] for v in keys.values()]), records=per_record)
        for w in (single, summed):
            w.close(1.0)
        for field in ("n_transfers", "gross_minor", "kinds_present"):
            assert getattr(single, field) == getattr(summed, field), field
        for field in ("obligations_minor", "positions_by_kind_minor", "gross_paid_minor", "gross_received_minor"):
            assert np.array_equal(getattr(single, field), getattr(summed, field)), field
        cap = np.full(n, rules.UNLIMITED, dtype=np.int64)
        one = rules.cover_one("unwind", *single.columns()[:4], n, cap)
        two = rules.cover_one("unwind", *summed.columns()[:4], n, cap, count_records=summed._count_records)
        if one is not None:
            # The record ids are pairs, so a record's unwound transfers are its pair's.
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
