"""The memory check refuses a run that cannot fit, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearing_sim import resources
from clearing_sim.cli import main
from clearing_sim.errors import InputError


class TestMemoryCheck:
    """A run whose estimate exceeds the available memory exits 2 naming the volume key."""

    def test_refused_and_nothing_written(self, small_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
        monkeypatch.setattr(resources, "available_bytes", lambda: 100 * 2**20)
        out = tmp_path / "run"
        assert main(["run", str(small_file), "--out", str(out)]) == 2
        assert "traffic.transactions_per_day" in capsys.readouterr().err
        assert not out.exists()

    def test_api_refuses(self, small_scenario, monkeypatch) -> None:
        import clearing_sim

        monkeypatch.setattr(resources, "available_bytes", lambda: 1)
        with pytest.raises(InputError, match="memory"):
            clearing_sim.run(small_scenario)

    def test_override(self, small_scenario, monkeypatch) -> None:
        monkeypatch.setattr(resources, "available_bytes", lambda: 1)
        monkeypatch.setenv(resources.ENV_SKIP, "1")
        resources.check_memory(small_scenario)  # no error

    def test_estimate_grows_with_volume(self, small_scenario) -> None:
        import attrs

        bigger = attrs.evolve(small_scenario, traffic=attrs.evolve(small_scenario.traffic, transactions_per_day=10**8))
        assert resources.estimated_peak_bytes(bigger) > 50 * 2**30 > resources.estimated_peak_bytes(small_scenario)

    def test_national_day_is_refused_here(self, capsys) -> None:
        """In detailed mode the 10^8-purchase day does not fit a 24 GiB machine: a clear refusal
        (fast mode streams it: tests/test_streamed.py)."""
        path = Path(__file__).resolve().parent.parent / "scenarios" / "national_day.yaml"
        if (resources.available_bytes() or 0) > 100 * 2**30:
            pytest.skip("a machine large enough to run it")
        assert main(["validate", str(path)]) == 0
        assert main(["run", str(path), "--mode", "detailed", "--out", "/nonexistent/never"]) == 2
        assert "GiB" in capsys.readouterr().err


class TestFastRunThatCannotStream:
    """A --mode fast run kept in memory (here for its refunds) is not told to use --mode fast."""

    def test_message_names_why_it_cannot_stream(self, small_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
        text = small_file.read_text(encoding="utf-8")
        scenario = tmp_path / "refunds.yaml"
        scenario.write_text(text.replace("clearing:\n", "clearing:\n  refund_rate: 0.01\n", 1) if "clearing:\n" in text
                            else text + "\nclearing:\n  refund_rate: 0.01\n", encoding="utf-8")
        assert main(["validate", str(scenario)]) == 0
        capsys.readouterr()
        monkeypatch.setattr(resources, "available_bytes", lambda: 1)
        out = tmp_path / "run"
        assert main(["run", str(scenario), "--mode", "fast", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "traffic.transactions_per_day" in err and "clearing.refund_rate" in err
        assert "run it with --mode fast" not in err
        assert not out.exists()

    def test_detailed_run_still_suggests_fast_mode(self, small_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
        monkeypatch.setattr(resources, "available_bytes", lambda: 1)
        assert main(["run", str(small_file), "--out", str(tmp_path / "run")]) == 2
        assert "run it with --mode fast" in capsys.readouterr().err

    @pytest.mark.parametrize("mode", ["fast", "detailed"])
    def test_the_python_api_says_why_too(self, small_file: Path, monkeypatch, mode: str) -> None:
        """clearing_sim.run keeps the day in memory: a scenario that could not stream even from the
        command line is told why, not to use --mode fast (a detailed CLI run the same)."""
        import clearing_sim

        text = small_file.read_text(encoding="utf-8").replace("clearing:\n", "clearing:\n  refund_rate: 0.01\n", 1)
        sc = clearing_sim.scenario.parse_scenario(text, "refunds.yaml")
        monkeypatch.setattr(resources, "available_bytes", lambda: 1)
        with pytest.raises(InputError) as caught:
            clearing_sim.run(sc, mode=mode)
        assert "cannot stream, even in fast mode (clearing.refund_rate" in str(caught.value)
        assert "run it with --mode fast" not in str(caught.value)


class TestStreamedDiskWhereTheFolderGoes:
    """A streamed run's scratch files and tables go beside its run folder: the disk checked is the one
    holding --out (it was the current folder's, whatever --out said)."""

    def test_disk_of_the_out_folder(self, monkeypatch, tmp_path: Path, capsys) -> None:
        import shutil

        from clearing_sim.scenario import load_scenario

        sc = load_scenario(sc_path())
        (tmp_path / "cwd").mkdir()
        (tmp_path / "disk").mkdir()
        monkeypatch.chdir(tmp_path / "cwd")
        monkeypatch.setattr(resources, "available_bytes", lambda: 2**50)
        seen: list[Path] = []

        def usage(p):
            seen.append(Path(p))  # the current folder has room, the out folder's disk has not
            return shutil._ntuple_diskusage(1, 0, 2**50 if Path(p).resolve() == tmp_path / "cwd" else 2**30)

        monkeypatch.setattr(resources.shutil, "disk_usage", usage)
        out = tmp_path / "disk" / "runs" / "nat"
        with pytest.raises(InputError, match=f"GiB are free at {tmp_path / 'disk'}"):
            resources.check_memory(sc, streamed=True, out=out)
        assert seen == [tmp_path / "disk"]
        assert main(["run", str(sc_path()), "--mode", "fast", "--out", str(out)]) == 2
        assert "GiB of disk" in capsys.readouterr().err and not (tmp_path / "disk" / "runs").exists()


def sc_path() -> Path:
    return Path(__file__).parent.parent / "scenarios" / "national_day.yaml"


def test_a_replay_is_checked_like_a_run(small_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """run --replay checks memory (and, streamed, disk) before it runs, as run does; its scratch
    folder goes beside the replayed folder and is gone afterwards."""
    run = tmp_path / "runs" / "small"
    assert main(["run", str(small_file), "--out", str(run), "-q"]) == 0
    monkeypatch.setattr(resources, "available_bytes", lambda: 1)
    assert main(["run", "--replay", str(run), "-q"]) == 2
    assert "run refused before it started" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["run", "--replay", str(run), "-q"]) == 0
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["small"]
