"""The command line for clearing: `run --clearing-files` and `inspect FILE`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from cardutil import mciipm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearing_sim import ipm
from clearing_sim.cli import main
from tests.conftest import SMALL_YAML
from tests.test_ipm import protected_offsets, vbs_records

FAULTS = """  faults:
    - {kind: corrupt_trailer, acquirer: BANKC, submission: 1}
    - {kind: duplicate_file, acquirer: BANKA, delay_minutes: 5}
    - {kind: duplicate_records, acquirer: BANKC, submission: 2, records: 2}
"""
DISPUTES = ("disputes: {chargeback_rate: 0.05, chargeback_delay_days: {distribution: constant, value: 1}, "
            "chargeback_limit_days: 2, representment_rate: 0.5, "
            "representment_delay_days: {distribution: constant, value: 0.5}, representment_limit_days: 1}\n")
CONTROL_TOTAL_REASONS = {"AMOUNT_MISMATCH", "COUNT_MISMATCH", "FILE_ID_MISMATCH", "TRUNCATED"}


def scenario_file(folder: Path) -> Path:
    text = SMALL_YAML.replace('  cutoffs: ["12:30", "23:45"]\n', '  cutoffs: ["12:30", "23:45"]\n' + FAULTS)
    path = folder / "faulty.yaml"
    path.write_text(text + DISPUTES, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clearing")
    out = folder / "run"
    assert main(["run", str(scenario_file(folder)), "--out", str(out), "-q", "--clearing-files"]) == 0
    return out


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "log.jsonl"}


class TestRunKeepsTheFiles:
    """`run --clearing-files` keeps every file sent to and by the network, readable by an independent reader."""

    def test_in_and_out(self, run_folder: Path) -> None:
        summary = json.loads((run_folder / "summary.json").read_text())
        received = summary["clearing"]["files_received"]
        names = sorted(p.name for p in (run_folder / "clearing" / "in").iterdir())
        assert names == sorted(f["name"] for f in received)
        out = sorted(p.name for p in (run_folder / "clearing" / "out").iterdir())
        assert any(n.endswith("_rejects.ipm") for n in out) and any(n.endswith("_clearing.ipm") for n in out)

    def test_an_independent_reader_agrees_on_every_file(self, run_folder: Path) -> None:
        """Header 697 and trailer 695 with one file id, and control totals that match, except where the network said not."""
        summary = json.loads((run_folder / "summary.json").read_text())
        rejected = {f["name"]: f["reason"] for f in summary["clearing"]["files_received"] if f["status"] == "rejected"}
        assert set(rejected.values()) == {"AMOUNT_MISMATCH", "DUPLICATE_FILE"}
        files = sorted((run_folder / "clearing").rglob("*.ipm"))
        assert len(files) > 10
        for path in files:
            messages = list(mciipm.IpmReader(io.BytesIO(path.read_bytes()), blocked=False))
            head, tail = messages[0], messages[-1]
            assert (head["MTI"], head["DE24"], tail["MTI"], tail["DE24"]) == ("1644", "697", "1644", "695")
            totals_match = (head["PDS0105"] == tail["PDS0105"] and int(tail["PDS0306"]) == len(messages)
                            and int(tail["PDS0301"]) == sum(m.get("DE4", 0) for m in messages))
            assert totals_match == (rejected.get(path.name) not in CONTROL_TOTAL_REASONS), path.name

    def test_the_table_holds_every_record_with_its_status(self, run_folder: Path) -> None:
        summary = json.loads((run_folder / "summary.json").read_text())["clearing"]
        table = pq.read_table(run_folder / "clearing_records.parquet").to_pydict()
        assert len(table["record_id"]) == summary["records_presented"]
        assert summary["records_presented"] == summary["records_cleared"] + summary["records_rejected"]
        statuses = [(s, r) for s, r in zip(table["status"], table["reject_reason"])]
        assert all((s == "cleared") == (r is None) for s, r in statuses)
        assert summary["rejects_by_reason"]["DUPLICATE_RECORD"] == 2
        assert summary["chargebacks"] > 0 and summary["second_presentments"] > 0

    def test_byte_identical_and_summary_independent_of_the_flag(self, run_folder: Path, tmp_path: Path) -> None:
        scenario = scenario_file(tmp_path)
        assert main(["run", str(scenario), "--out", str(tmp_path / "again"), "-q", "--clearing-files"]) == 0
        assert main(["run", str(scenario), "--out", str(tmp_path / "plain"), "-q"]) == 0
        assert tree_bytes(tmp_path / "again") == tree_bytes(run_folder)
        assert not (tmp_path / "plain" / "clearing").exists()
        assert (tmp_path / "plain" / "summary.json").read_bytes() == (run_folder / "summary.json").read_bytes()


class TestInspect:
    """`inspect` prints header, counts, totals, first records and the verdict; exit 2 on a rejected file."""

    def test_a_valid_file(self, run_folder: Path, capsys) -> None:
        path = next((run_folder / "clearing" / "out").glob("*_clearing.ipm"))
        assert main(["inspect", str(path), "--records", "3"]) == 0
        out = capsys.readouterr().out
        header = ipm.read_file(path.read_bytes()).header
        assert header.file_id in out and "validation: OK" in out and "first 3 record(s)" in out

    def test_the_corrupt_file_the_network_rejected(self, run_folder: Path, capsys) -> None:
        path = next((run_folder / "clearing" / "in").glob("00001_*"))
        assert main(["inspect", str(path)]) == 2
        captured = capsys.readouterr()
        assert "REJECTED AMOUNT_MISMATCH" in captured.out
        assert "AMOUNT_MISMATCH (1032)" in captured.err and "Traceback" not in captured.err

    def test_not_a_file(self, tmp_path: Path, capsys) -> None:
        assert main(["inspect", str(tmp_path / "missing.ipm")]) == 2
        assert main(["inspect", str(tmp_path)]) == 2
        assert "cannot read the file" in capsys.readouterr().err

    @pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
    def test_a_device_is_refused_unread(self, capsys) -> None:
        # /dev/zero was read until the memory ran out (exit 1 'MemoryError' under a memory limit).
        assert main(["inspect", "/dev/zero"]) == 2
        assert "/dev/zero: a device, not a clearing file" in capsys.readouterr().err


def valid_file(run_folder: Path) -> bytes:
    return min((run_folder / "clearing" / "in").glob("*.ipm"), key=lambda p: p.stat().st_size).read_bytes()


def inspect_exit(data: bytes, folder: Path, capsys) -> tuple[int, str]:
    path = folder / "x.ipm"
    path.write_bytes(data)
    rc = main(["inspect", str(path)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    return rc, captured.err


class TestInspectDamagedFiles:
    """A truncated file, a flipped byte in framing, amounts or message numbers, or a wrong total: exit 2 with a reason."""

    settings_ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

    @given(data=st.data())
    @settings_
    def test_truncated(self, run_folder: Path, tmp_path: Path, capsys, data) -> None:
        whole = valid_file(run_folder)
        cut = data.draw(st.integers(0, len(whole) - 1))
        rc, err = inspect_exit(whole[:cut], tmp_path, capsys)
        assert rc == 2 and "reason " in err

    @given(data=st.data())
    @settings_
    def test_flipped_protected_byte(self, run_folder: Path, tmp_path: Path, capsys, data) -> None:
        whole = bytearray(valid_file(run_folder))
        at = data.draw(st.sampled_from(protected_offsets(bytes(whole))))
        whole[at] ^= data.draw(st.integers(1, 255))
        rc, err = inspect_exit(bytes(whole), tmp_path, capsys)
        assert rc == 2 and "reason " in err

    @given(data=st.data())
    @settings_
    def test_any_flipped_byte_never_crashes(self, run_folder: Path, tmp_path: Path, capsys, data) -> None:
        whole = bytearray(valid_file(run_folder))
        at = data.draw(st.integers(0, len(whole) - 1))
        whole[at] ^= data.draw(st.integers(1, 255))
        rc, _ = inspect_exit(bytes(whole), tmp_path, capsys)
        assert rc in (0, 2)

    @given(delta=st.integers(1, 10**9))
    @settings_
    def test_wrong_total(self, run_folder: Path, tmp_path: Path, capsys, delta: int) -> None:
        whole = valid_file(run_folder)
        start, end = vbs_records(whole)[-1]
        trailer = whole[start:end]
        at = trailer.index(b"0301016") + 7
        total = int(trailer[at : at + 16]) + delta
        bad = whole[: start + at] + f"{total:016d}".encode() + whole[start + at + 16 :]
        rc, err = inspect_exit(bad, tmp_path, capsys)
        assert rc == 2 and "AMOUNT_MISMATCH" in err


class TestInspectArguments:
    """`inspect` refuses what it cannot honour instead of quietly doing something else."""

    @pytest.mark.parametrize("n", [-1, 101, 500])
    def test_records_outside_0_to_100(self, tmp_path, capsys, n: int) -> None:
        from clearing_sim.cli import main

        f = tmp_path / "x.ipm"
        f.write_bytes(b"")
        assert main(["inspect", str(f), "--records", str(n)]) == 2
        assert "--records: must be 0 to 100" in capsys.readouterr().err

    @pytest.mark.parametrize("path", ["", " ", "."])
    def test_no_file_named(self, capsys, path: str) -> None:
        from clearing_sim.cli import main

        assert main(["inspect", path]) == 2
        assert "name a clearing file" in capsys.readouterr().err
