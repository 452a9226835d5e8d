"""The command line: exit codes, run folders written all or nothing, replayable bytes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clearing_sim.cli import main
from clearing_sim.errors import InputError, InvariantError, ScenarioError
from tests.conftest import SMALL_YAML

RUN_FILES = {"config.yaml", "summary.json", "transactions.parquet", "clearing_records.parquet",
             "settlements.parquet", "log.jsonl"}


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "log.jsonl"}


class TestRun:
    """`run` writes a complete, reproducible run folder."""

    def test_run_folder(self, small_file: Path, tmp_path: Path, capsys) -> None:
        out = tmp_path / "run"
        assert run_cli("run", small_file, "--out", out, "-q") == 0
        assert RUN_FILES <= {p.name for p in out.iterdir()}
        summary = json.loads((out / "summary.json").read_text())
        assert summary["seed"] == 42 and summary["mode"] == "detailed"
        a = summary["authorisations"]
        assert a["count"] == a["approved"] + a["declined"]
        assert pq.read_table(out / "transactions.parquet").num_rows == a["count"]
        for w in summary["settlement"]["windows"]:
            assert sum(w["positions_minor"].values()) == 0
        printed = capsys.readouterr().out
        assert "seed 42" in printed and "authorisations" in printed
        assert "store-and-forward drained" not in printed  # no advice on this day
        assert "kept in the bank" not in printed  # no issuer keeps on-us purchases in the bank

    def test_purchases_kept_in_the_bank_are_printed(self, tmp_path: Path, capsys) -> None:
        """A day whose purchases an issuer all kept inside the bank printed 'authorisations 0'
        and nothing else about them: the summary now says how many were kept and approved."""
        path = tmp_path / "bank.yaml"
        path.write_text("""\
name: all_in_bank
run: {days: 1, seed: 3}
institutions:
  - {id: B0, name: Bank B0}
issuers:
  - {institution: B0, bins: ["400001"], share: 1, on_us_in_bank: true, host: {servers: 2}}
acquirers:
  - {institution: B0, share: 1, category_mix: {"5411": 1}}
traffic:
  transactions_per_day: 500
  amount_minor: {"5411": {distribution: constant, value: 100}}
""")
        assert run_cli("run", path, "--out", tmp_path / "run", "--mode", "fast", "-q") == 0
        ib = json.loads((tmp_path / "run" / "summary.json").read_text())["authorisations"]["in_bank"]
        assert ib["count"] > 400 and ib["approved"] > 0
        printed = " ".join(capsys.readouterr().out.split())
        assert f"kept in the bank: purchases / approved │ {ib['count']:,} / {ib['approved']:,}" in printed

    @pytest.mark.parametrize("columns", [None, "60"])
    def test_no_figure_is_cut_short(self, tmp_path: Path, monkeypatch, capsys, columns: str | None) -> None:
        """Every net position is printed whole, in as many tables as the width needs: with a dozen
        windows each was cut to "-30…" in a pipe (80 columns) or an ordinary terminal."""
        from clearing_sim.metrics import yuan_text

        if columns is not None:  # a terminal 60 columns wide
            monkeypatch.setenv("COLUMNS", columns)
            from clearing_sim import cli

            monkeypatch.setattr(cli, "out_console", cli.Console(highlight=False, soft_wrap=True, force_terminal=True))
        hours = range(1, 24, 2)
        sc = tmp_path / "windows.yaml"
        sc.write_text(SMALL_YAML.replace('cutoffs: ["12:30", "23:45"]', "cutoffs: [" + ", ".join(
            f'"{h:02d}:00"' for h in hours) + "]").replace('windows: ["10:00"]', "windows: [" + ", ".join(
            f'"{h:02d}:30"' for h in hours) + "]").replace("lag_days: 1", "lag_days: 0"), encoding="utf-8")
        assert run_cli("run", sc, "--out", tmp_path / "run", "--mode", "fast", "-q") == 0
        printed = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # a terminal's styles
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert len(summary["settlement"]["windows"]) == 5 and "…" not in printed
        lines = printed.splitlines()
        for w in summary["settlement"]["windows"]:
            (header,) = [n for n, line in enumerate(lines) if f" {w['id']} " in line]
            end = next(n for n in range(header, len(lines)) if lines[n].startswith("└"))
            row = {line.split()[1]: line for line in lines[header:end] if line.startswith("│")}
            column = [c.strip() for c in lines[header].split("┃")].index(w["id"])
            for pid, value in w["positions_minor"].items():
                assert [c.strip() for c in row[pid].split("│")][column] == yuan_text(value)

    def test_store_and_forward_drain_is_printed(self, tmp_path: Path, capsys) -> None:
        """When advices were sent, the summary table says when the last was acknowledged."""
        from clearing_sim.cli import _run_clock
        from tests.test_fast_mode import SLOW_LINKS_YAML

        path = tmp_path / "slow.yaml"
        path.write_text(SLOW_LINKS_YAML)
        assert run_cli("run", path, "--out", tmp_path / "run", "--mode", "fast", "-q") == 0
        drained = json.loads((tmp_path / "run" / "summary.json").read_text())["authorisations"]["saf_drained_s"]
        assert f"store-and-forward drained │ {_run_clock(drained)}" in " ".join(capsys.readouterr().out.split())
        assert _run_clock(0.0) == "day 1 00:00:00.000"
        assert _run_clock(86_400 * 4 + 3_600 * 13 + 62.5) == "day 5 13:01:02.500"

    def test_byte_identical_and_seed_sensitive(self, small_file: Path, tmp_path: Path) -> None:
        for name, seed in (("a", "42"), ("b", "42"), ("c", "43")):
            assert run_cli("run", small_file, "--out", tmp_path / name, "--seed", seed, "-q") == 0
        a, b, c = (folder_bytes(tmp_path / n) for n in "abc")
        assert a == b
        assert a["summary.json"] != c["summary.json"]

    def test_default_out_folder(self, small_file: Path, tmp_path: Path, monkeypatch) -> None:
        monkeypatch.chdir(tmp_path)
        assert run_cli("run", small_file, "--seed", "5", "-q") == 0
        assert (tmp_path / "runs" / "small-5" / "summary.json").exists()

    def test_rerun_replaces_folder(self, small_file: Path, tmp_path: Path) -> None:
        out = tmp_path / "run"
        assert run_cli("run", small_file, "--out", out, "-q") == 0
        (out / "stale.txt").write_text("old")
        assert run_cli("run", small_file, "--out", out, "-q") == 0
        assert not (out / "stale.txt").exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    def test_an_empty_folder_is_used(self, small_file: Path, tmp_path: Path) -> None:
        out = tmp_path / "run"
        out.mkdir()
        assert run_cli("run", small_file, "--out", out, "-q") == 0
        assert (out / "summary.json").is_file()

    def test_a_folder_of_other_files_is_never_replaced(self, small_file: Path, tmp_path: Path, capsys) -> None:
        out = tmp_path / "mydocs"
        out.mkdir()
        (out / "thesis.txt").write_text("precious")
        assert run_cli("run", small_file, "--out", out, "-q") == 2
        assert "clearing-sim did not write" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]
        assert (out / "thesis.txt").read_text() == "precious"
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no run folder left beside it

    @pytest.mark.parametrize("marker", ["config.yaml", "sweep.json", "compare.json", "status.json", "summary.json"])
    def test_what_clearing_sim_wrote_may_be_replaced(self, tmp_path: Path, marker: str) -> None:
        """A run (its config.yaml's header line), a sweep (its sweep.json) or a comparison alone may be
        replaced; a file's name alone marks nothing (a user's status.json or summary.json)."""
        from clearing_sim.outputs import CONFIG_HEADER, check_out_folder

        out = tmp_path / "old"
        out.mkdir()
        (out / "notes.txt").write_text("x")
        with pytest.raises(InputError, match="did not write"):
            check_out_folder(out)
        (out / marker).write_text("{}\n" if marker != "config.yaml" else "name: mine\n")  # the name, not the content
        with pytest.raises(InputError, match="did not write"):
            check_out_folder(out)
        own = {"config.yaml": CONFIG_HEADER.format(version="0.1.0", mode="fast"),
               "sweep.json": '{\n  "clearing_sim_version": "0.2.0"\n}\n'}
        if marker in own:
            (out / marker).write_text(own[marker])
            check_out_folder(out)  # no error: a run or a sweep folder
        elif marker == "compare.json":
            (out / "notes.txt").unlink()  # compare.* alone: a comparison's folder
            check_out_folder(out)


    def test_an_out_that_is_a_file_is_refused(self, small_file: Path, tmp_path: Path, capsys) -> None:
        # The file used to be moved to a hidden .notes.txt.old-PID sibling, left there, and replaced by the run.
        out = tmp_path / "notes.txt"
        out.write_text("keep me")
        before = sorted(p.name for p in tmp_path.iterdir())
        assert run_cli("run", small_file, "--out", out, "-q") == 2
        assert f"--out: {out} exists and is not a folder" in capsys.readouterr().err
        assert out.read_text() == "keep me"
        assert sorted(p.name for p in tmp_path.iterdir()) == before


class TestOutFolder:
    """An --out that cannot become a run folder exits 2 before the run, and loses nothing."""

    def test_out_is_a_file(self, small_file: Path, tmp_path: Path, capsys) -> None:
        f = tmp_path / "notes.txt"
        f.write_text("keep me")
        assert run_cli("run", small_file, "--out", f, "-q") == 2
        assert "exists and is not a folder" in capsys.readouterr().err
        assert f.read_text() == "keep me"

    def test_out_below_a_file(self, small_file: Path, tmp_path: Path, capsys) -> None:
        (tmp_path / "notes.txt").write_text("keep me")
        assert run_cli("run", small_file, "--out", tmp_path / "notes.txt" / "run", "-q") == 2
        assert "is not a folder" in capsys.readouterr().err

    @pytest.mark.parametrize("out", [".", ".."])
    def test_out_is_the_current_folder(self, small_file: Path, tmp_path: Path, monkeypatch, capsys,
                                       out: str) -> None:
        here = tmp_path / "work"
        here.mkdir()
        (here / "keep.txt").write_text("keep me")
        monkeypatch.chdir(here)
        assert run_cli("run", small_file, "--out", out, "-q") == 2
        assert "is the current folder or holds it" in capsys.readouterr().err
        assert sorted(p.name for p in here.iterdir()) == ["keep.txt"]
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


    @pytest.mark.parametrize("name", ["x" * 300, "银行" * 60])
    def test_long_scenario_name_default_folder(self, tmp_path: Path, monkeypatch, name: str) -> None:
        # runs/<name>-<seed> past 255 bytes failed: exit 2 blaming --out (run) or exit 1 (sweep).
        monkeypatch.chdir(tmp_path)
        f = tmp_path / "long.yaml"
        f.write_text(SMALL_YAML.replace("name: small", f"name: {name}"), encoding="utf-8")
        assert run_cli("run", f, "--seed", "5", "-q") == 0
        (folder,) = (tmp_path / "runs").iterdir()
        assert (folder / "summary.json").exists() and folder.name.endswith("-5")
        assert len(folder.name.encode()) <= 220

    def test_out_name_too_long(self, small_file: Path, tmp_path: Path, capsys) -> None:
        assert run_cli("run", small_file, "--out", tmp_path / ("z" * 300), "-q") == 2
        assert "--out: cannot create" in capsys.readouterr().err


class TestFailedRun:
    """A run that breaks an invariant exits 1 and leaves config and error, no summary."""

    def test_internal_error(self, small_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
        import clearing_sim.api as api

        def broken(*args, **kwargs):
            raise InvariantError("window W sums to 1")

        monkeypatch.setattr(api, "run", broken)
        out = tmp_path / "run"
        assert run_cli("run", small_file, "--out", out, "-q") == 1
        names = {p.name for p in out.iterdir()}
        assert names == {"config.yaml", "status.json", "log.jsonl"}
        status = json.loads((out / "status.json").read_text())
        assert status["status"] == "failed" and "sums to 1" in status["error"]
        assert "Traceback" not in capsys.readouterr().err


class TestBadInput:
    """Bad input exits 2 naming the field and line, and writes nothing."""

    def test_bad_scenario(self, tmp_path: Path, capsys) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text(SMALL_YAML.replace("servers: 2,", "servers: 0,"))
        out = tmp_path / "run"
        assert run_cli("run", bad, "--out", out) == 2
        err = capsys.readouterr().err
        assert "issuers[0].host.servers (line 12)" in err
        assert not out.exists()

    def test_a_sweep_file_given_as_a_scenario_says_so(self, small_file: Path, tmp_path: Path, capsys) -> None:
        # `run sweep.yaml` listed eight problems (four scenario keys missing, four sweep keys
        # unknown) without saying that the file is a sweep; `compare` did the same.
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text(f"name: s\nbase: {small_file.name}\nreplications: 1\ngrid:\n  run.days: [1, 2]\n")
        (tmp_path / small_file.name).write_text(small_file.read_text())
        out = tmp_path / "run"
        for args in (("run", sweep, "--out", out), ("compare", sweep, small_file, "--out", out)):
            assert run_cli(*args) == 2
            err = capsys.readouterr().err
            assert "(1 problem(s))" in err
            assert "base (line 2): this is a sweep file" in err and "clearing-sim sweep" in err
            assert not out.exists()
        assert run_cli("validate", sweep) == 0  # validate takes sweeps

    def test_missing_file(self, tmp_path: Path, capsys) -> None:
        assert run_cli("validate", tmp_path / "none.yaml") == 2
        assert "file not found" in capsys.readouterr().err

    @pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
    def test_an_endless_file_is_refused(self, tmp_path: Path, capsys) -> None:
        """/dev/zero as a scenario (it was read until the memory ran out) or a sweep is refused, unread."""
        out = tmp_path / "run"
        assert run_cli("run", "/dev/zero", "--out", out) == 2
        assert "/dev/zero" in capsys.readouterr().err and not out.exists()
        assert run_cli("validate", "/dev/zero") == 2
        assert run_cli("sweep", "/dev/zero", "--out", out) == 2
        assert "larger than" in capsys.readouterr().err and not out.exists()

    def test_unknown_mode(self, small_file: Path, tmp_path: Path) -> None:
        assert run_cli("run", small_file, "--mode", "turbo", "--out", tmp_path / "r") == 2
        assert not (tmp_path / "r").exists()

    def test_usage_error_is_2(self) -> None:
        assert run_cli("run") == 2

    def test_validate_ok(self, small_file: Path, capsys) -> None:
        assert run_cli("validate", small_file) == 0
        assert "valid scenario 'small'" in capsys.readouterr().out

    def test_validate_a_sweep_file(self, tmp_path: Path, capsys) -> None:
        """validate on a sweep file checks it as a sweep (every point), not as a scenario missing its keys."""
        shipped = Path(__file__).resolve().parent.parent / "scenarios" / "sweep_windows.yaml"
        assert run_cli("validate", shipped) == 0
        assert "valid sweep 'sweep_windows': 4 point(s) x 3 replication(s) of baseline.yaml" in capsys.readouterr().out
        for name in ("sweep_windows.yaml", "baseline.yaml"):
            (tmp_path / name).write_text((shipped.parent / name).read_text())
        bad = tmp_path / "sweep_windows.yaml"
        bad.write_text(bad.read_text().replace("  settlement.windows:", "  settlement.window:"))
        assert run_cli("validate", bad) == 2
        err = capsys.readouterr().err
        assert "invalid sweep" in err and "grid.settlement.window (line" in err and "institutions" not in err
        (tmp_path / "nogrid.yaml").write_text("name: x\nbase: baseline.yaml\n")  # a sweep without its grid
        assert run_cli("validate", tmp_path / "nogrid.yaml") == 2
        err = capsys.readouterr().err
        assert "invalid sweep" in err and "grid" in err and "institutions" not in err
        (tmp_path / "scenario.yaml").write_text("name: x\ninstitutions: []\n")  # a scenario's problems
        assert run_cli("validate", tmp_path / "scenario.yaml") == 2
        assert "invalid scenario" in capsys.readouterr().err

    def test_console_script_no_traceback(self, tmp_path: Path) -> None:
        """The installed command itself exits 2 with a message and no traceback."""
        bad = tmp_path / "bad.yaml"
        bad.write_text(SMALL_YAML.replace("  - institution: BANKC", "  - institution: NOPE"))
        exe = Path(sys.executable).with_name("clearing-sim")
        proc = subprocess.run([str(exe), "validate", str(bad)], capture_output=True, text=True)
        assert proc.returncode == 2
        assert "acquirers[1].institution" in proc.stderr and "Traceback" not in proc.stderr

    @pytest.mark.parametrize("module", ["clearing_sim", "clearing_sim.cli"])
    def test_python_dash_m(self, module: str, tmp_path: Path, small_file: Path) -> None:
        """`python -m clearing_sim` (and `-m clearing_sim.cli`) is the command, exit codes included
        (a hunt found `-m clearing_sim.cli` did nothing and exited 0)."""
        bad = tmp_path / "bad.yaml"
        bad.write_text(SMALL_YAML.replace("  - institution: BANKC", "  - institution: NOPE"))
        proc = subprocess.run([sys.executable, "-m", module, "validate", str(bad)], capture_output=True, text=True)
        assert proc.returncode == 2 and "acquirers[1].institution" in proc.stderr
        proc = subprocess.run([sys.executable, "-m", module, "validate", str(small_file)], capture_output=True,
                              text=True)
        assert proc.returncode == 0 and "valid scenario 'small'" in proc.stdout


class TestConsoleEncoding:
    """The console's encoding never stops a command: a character it lacks is printed as an escape."""

    @pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
    def test_a_chinese_name_on_a_narrow_console(self, tmp_path: Path, encoding: str) -> None:
        # `run` stopped before running, exit 1 "internal error: UnicodeEncodeError: 'ascii' codec ...".
        sc = tmp_path / "cjk.yaml"
        sc.write_text(SMALL_YAML.replace("name: small", "name: 小型").replace("Bank A", "中国工商银行"), encoding="utf-8")
        exe = Path(sys.executable).with_name("clearing-sim")
        env = {**os.environ, "PYTHONIOENCODING": encoding}
        proc = subprocess.run([str(exe), "run", str(sc), "--out", str(tmp_path / "run"), "-q"], capture_output=True,
                              env=env)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout.decode(encoding)
        assert "running '\\u5c0f\\u578b' with seed 42" in out and "\\u5c0f\\u578b  seed 42" in out
        assert (tmp_path / "run" / "summary.json").is_file()

    @pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
    @pytest.mark.parametrize("args", [["version"], ["validate", "SCENARIO"]])
    def test_a_console_that_cannot_be_written_is_no_bug(self, tmp_path: Path, args: list[str]) -> None:
        # stdout on a full disk said "internal error: OSError: [Errno 28] ... This is a bug in clearing-sim".
        sc = tmp_path / "small.yaml"
        sc.write_text(SMALL_YAML, encoding="utf-8")
        exe = Path(sys.executable).with_name("clearing-sim")
        with open("/dev/full", "w") as full:
            proc = subprocess.run([str(exe), *[str(sc) if a == "SCENARIO" else a for a in args]], stdout=full,
                                  stderr=subprocess.PIPE, text=True)
        assert proc.returncode == 1
        assert proc.stderr.strip() == "error: could not write to the console: No space left on device"

    def test_a_reader_gone_early_leaves_the_run_complete(self, tmp_path: Path) -> None:
        # As README says: `run ... | head -1` ends quietly (exit 1, no "internal error"), and the
        # folder, moved into place before the summary is printed, is complete.
        sc = tmp_path / "small.yaml"
        sc.write_text(SMALL_YAML, encoding="utf-8")
        exe = Path(sys.executable).with_name("clearing-sim")
        proc = subprocess.Popen([str(exe), "run", str(sc), "--out", str(tmp_path / "run"), "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().startswith("running 'small'")
        proc.stdout.close()  # the reader goes, as `head -1` does
        err = proc.stderr.read()
        assert proc.wait() == 1 and "internal error" not in err and "Traceback" not in err
        assert (tmp_path / "run" / "summary.json").is_file()
        assert json.loads((tmp_path / "run" / "summary.json").read_text())["seed"] == 42


def test_python_api(small_scenario) -> None:
    """`clearing_sim.run` returns the summary and Arrow tables without writing anything."""
    import clearing_sim

    r = clearing_sim.run(small_scenario, seed=3)
    assert r.summary["seed"] == 3
    assert r.transactions.num_rows == r.summary["authorisations"]["count"]
    assert r.settlements.num_rows == len(r.summary["settlement"]["windows"]) * 4
    with pytest.raises(ValueError):
        clearing_sim.run(small_scenario, mode="nope")


class TestPythonApiChecksScenarioObjects:
    """A Scenario changed in Python is checked as strictly as a file before anything is simulated."""

    def test_evolved_unknown_institution(self, small_scenario) -> None:
        import attrs

        import clearing_sim

        bad = attrs.evolve(small_scenario, issuers=(attrs.evolve(small_scenario.issuers[0], institution="NOPE"),
                                                    *small_scenario.issuers[1:]))
        with pytest.raises(ScenarioError) as exc:
            clearing_sim.run(bad, mode="fast")
        assert [p.path for p in exc.value.problems] == ["issuers[0].institution"]
        assert all(p.line is None for p in exc.value.problems)  # no file: no line

    def test_dict_edited_in_place(self, small_file: Path) -> None:
        import clearing_sim

        sc = clearing_sim.load_scenario(small_file)  # its own copy: the dict is changed in place
        del sc.traffic.amount_minor[next(iter(sc.traffic.amount_minor))]
        with pytest.raises(ScenarioError) as exc:
            clearing_sim.run(sc, mode="fast")
        assert exc.value.problems and all(p.path for p in exc.value.problems)

    def test_a_numpy_value_is_refused_at_its_field(self, small_scenario) -> None:
        # A notebook's np.int64 (np.arange, a DataFrame cell) set with attrs.evolve was refused at
        # "(top level)", naming no field; the problem is now that value's path.
        import attrs
        import numpy as np

        import clearing_sim

        bad = attrs.evolve(small_scenario, issuers=(*small_scenario.issuers[:1],
                                                    attrs.evolve(small_scenario.issuers[1], cards=np.int64(100))))
        with pytest.raises(ScenarioError) as exc:
            clearing_sim.run(bad, mode="fast")
        (problem,) = exc.value.problems
        assert problem.path == "issuers[1].cards"
        assert "np.int64(100)" in problem.message

    def test_evolve_names_the_field_it_refuses(self, small_scenario) -> None:
        # attrs.evolve runs the field's validator: its ValueError said "must be greater than 0, got 0"
        # without saying which field.
        import attrs

        with pytest.raises(ValueError, match=r"^days: must be greater than 0, got 0$"):
            attrs.evolve(small_scenario.run, days=0)

    @pytest.mark.parametrize(("where", "change", "message"), [
        ("run", {"days": "1"}, r"^days: expected a whole number, got str '1'$"),
        ("run", {"start_date": 20261102}, r"^start_date: expected text, got int 20261102$"),
        ("scenario", {"name": None}, r"^name: expected text, got NoneType None$"),
        ("traffic", {"hourly_profile": (1.0,) * 23 + ("x",)}, r"^hourly_profile: expected a number, got str 'x'$"),
    ])
    def test_evolve_names_the_field_of_a_value_of_the_wrong_type(self, small_scenario, where, change,
                                                                  message) -> None:
        # A value its validator could not compare raised TypeError ("'>' not supported between
        # instances of 'str' and 'int'", "expected string or bytes-like object"), naming no field.
        import attrs

        obj = {"run": small_scenario.run, "scenario": small_scenario, "traffic": small_scenario.traffic}[where]
        with pytest.raises(ValueError, match=message):
            attrs.evolve(obj, **change)

    def test_every_field_names_itself_for_a_value_of_the_wrong_type(self) -> None:
        # Every field of every scenario class met in the shipped scenarios, set to a value of no
        # scenario type, is refused by attrs.evolve with a ValueError that starts with its name.
        import attrs

        import clearing_sim

        examples: dict[type, object] = {}

        def walk(obj: object) -> None:
            if attrs.has(type(obj)):
                examples.setdefault(type(obj), obj)
                for f in attrs.fields(type(obj)):
                    walk(getattr(obj, f.name))
            elif isinstance(obj, (tuple, list)):
                for x in obj:
                    walk(x)
            elif isinstance(obj, dict):
                for x in obj.values():
                    walk(x)

        from tests.test_scenarios_dir import SCENARIOS

        for path in SCENARIOS:
            walk(clearing_sim.load_scenario(path))
        assert len(examples) >= 20
        for cls, obj in examples.items():
            for f in attrs.fields(cls):
                with pytest.raises(ValueError, match=rf"^{f.name}: expected "):
                    attrs.evolve(obj, **{f.name: object()})

    def test_a_loaded_scenario_unchanged_is_not_checked_again(self, small_file: Path) -> None:
        # The check is a YAML round trip (0.07 s for baseline, 0.26 s for national_day) that every
        # run of a loaded scenario paid: a benchmark's and each replication of compare and sweep.
        from clearing_sim.scenario import check_scenario, load_scenario

        sc = load_scenario(small_file)
        assert check_scenario(sc) is sc
        sc.traffic.amount_minor.clear()  # edited in place after the check: checked again
        with pytest.raises(ScenarioError):
            check_scenario(sc)


class TestReplay:
    """`run --replay` reruns a folder from its config.yaml and compares the bytes."""

    def test_identical(self, small_file: Path, tmp_path: Path, capsys) -> None:
        out = tmp_path / "run"
        assert run_cli("run", small_file, "--out", out, "--seed", "9", "-q") == 0
        assert run_cli("run", "--replay", out, "-q") == 0
        assert "replay identical" in capsys.readouterr().out

    @pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
    def test_what_a_killed_replay_left_is_removed_by_the_next(self, small_file: Path, tmp_path: Path) -> None:
        """A replay killed (SIGKILL) left its scratch `.clearing-sim-replay-XXXX` (a half-written run)
        beside the run folder for ever, one more per killed replay. One still running is kept."""
        import fcntl
        import os

        out = tmp_path / "run"
        assert run_cli("run", small_file, "--out", out, "-q") == 0
        for name in (".clearing-sim-replay-killed", ".clearing-sim-replay-running"):
            (tmp_path / name / ".run.tmp-123").mkdir(parents=True)
            (tmp_path / name / ".run.tmp-123" / "transactions.parquet").write_bytes(b"half")
        running = os.open(tmp_path / ".clearing-sim-replay-running", os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(running, fcntl.LOCK_EX | fcntl.LOCK_NB)
            assert run_cli("run", "--replay", out, "-q") == 0
        finally:
            os.close(running)
        assert sorted(p.name for p in tmp_path.iterdir()) == [".clearing-sim-replay-running", "run", "small.yaml"]

    @pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
    def test_a_file_system_without_flock_still_replays(self, small_file: Path, tmp_path: Path, capsys,
                                                       monkeypatch) -> None:
        """Where flock fails (ENOLCK), a replay ended 'internal error: OSError: [Errno 37] No locks
        available ... This is a bug' (exit 1) and left its scratch folder behind."""
        from tests.test_outputs import _without_flock

        out = tmp_path / "run"
        assert run_cli("run", small_file, "--out", out, "-q") == 0
        _without_flock(monkeypatch)
        assert run_cli("run", "--replay", out, "-q") == 0, capsys.readouterr().err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "small.yaml"]

    def test_detects_a_changed_file(self, small_file: Path, tmp_path: Path, capsys) -> None:
        out = tmp_path / "run"
        assert run_cli("run", small_file, "--out", out, "-q") == 0
        summary = out / "summary.json"
        summary.write_text(summary.read_text().replace('"seed": 42', '"seed": 43'))
        assert run_cli("run", "--replay", out, "-q") == 1
        assert "summary.json" in capsys.readouterr().err

    def test_not_a_run_folder(self, tmp_path: Path) -> None:
        assert run_cli("run", "--replay", tmp_path) == 2

    def test_a_name_too_long_for_the_file_system(self, tmp_path: Path, capsys) -> None:
        # It was exit 1, "internal error: OSError: [Errno 36] File name too long".
        assert run_cli("run", "--replay", tmp_path / ("a" * 300)) == 2
        assert "--replay: cannot read" in capsys.readouterr().err

    @pytest.mark.parametrize("extra", [["--mode", "fast"], ["--mode", "turbo"], ["--seed", "1"], ["--clearing-files"],
                                       ["--trace-messages"]])
    def test_options_of_a_new_run_are_refused(self, extra: list[str], small_file: Path, tmp_path: Path,
                                              capsys) -> None:
        # --mode, --clearing-files and --trace-messages were silently ignored (the folder's own were used)
        out = tmp_path / "run"
        assert run_cli("run", small_file, "--out", out, "-q") == 0
        capsys.readouterr()
        assert run_cli("run", "--replay", out, *extra, "-q") == 2
        assert f"no {extra[0]}" in capsys.readouterr().err

    def test_unknown_mode_in_the_config_header(self, small_file: Path, tmp_path: Path, capsys) -> None:
        # a hand-edited header: was exit 1 "internal error: ValueError: unknown mode"
        out = tmp_path / "run"
        assert run_cli("run", small_file, "--out", out, "-q") == 0
        config = out / "config.yaml"
        config.write_text(config.read_text().replace(" mode detailed:", " mode turbo:", 1))
        capsys.readouterr()
        assert run_cli("run", "--replay", out, "-q") == 2
        err = capsys.readouterr().err
        assert "config.yaml" in err and "'turbo'" in err and "internal error" not in err

    @pytest.mark.parametrize("where", [".", "sub", "..", "link"])
    def test_out_at_the_replayed_folder_is_refused(self, where: str, small_file: Path, tmp_path: Path,
                                                   capsys) -> None:
        # --out on the replayed folder replaced it with the replay and compared it with itself:
        # "identical" even for a changed file, which was overwritten.
        out = tmp_path / "runs" / "run"
        assert run_cli("run", small_file, "--out", out, "-q") == 0
        summary = out / "summary.json"
        summary.write_text(summary.read_text().replace('"seed": 42', '"seed": 43'))
        def snapshot() -> dict[str, bytes]:
            return {str(p.relative_to(tmp_path)): p.read_bytes() for p in sorted((tmp_path / "runs").rglob("*"))
                    if p.is_file() and p.name != "log.jsonl"}

        before = snapshot()
        (tmp_path / "link").symlink_to(out)
        target = tmp_path / "link" if where == "link" else out / where
        capsys.readouterr()
        assert run_cli("run", "--replay", out, "--out", target, "-q") == 2
        assert "the replay must go to another folder" in capsys.readouterr().err
        assert snapshot() == before


class TestInterrupt:
    """SIGTERM during a run leaves the folder marked interrupted, with seed and progress."""

    def test_the_package_loads_nothing_heavy(self) -> None:
        # `import clearing_sim` loaded numpy, numba and pyarrow (half a second), before `main`
        # could answer a Ctrl-C: Python printed a KeyboardInterrupt traceback.
        code = "import sys, clearing_sim; print(sorted({'numpy', 'numba', 'pyarrow'} & set(sys.modules)))"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert proc.stdout.strip() == "[]"

    def test_ctrl_c_while_the_command_loads(self) -> None:
        # The interrupt lands while `clearing_sim.cli` (and numpy, numba...) are imported.
        code = ("import sys\n"
                "class Interrupting:\n"
                "    def find_spec(self, name, path=None, target=None):\n"
                "        if name == 'clearing_sim.cli':\n"
                "            raise KeyboardInterrupt\n"
                "sys.meta_path.insert(0, Interrupting())\n"
                "from clearing_sim._entry import main\n"
                "sys.exit(main())\n")
        proc = subprocess.run([sys.executable, "-c", code, "run", "x.yaml"], capture_output=True, text=True)
        assert proc.returncode == 130
        assert proc.stderr == "interrupted: nothing was started\n"

    def test_sigterm(self, tmp_path: Path) -> None:
        import signal
        import time

        big = tmp_path / "big.yaml"
        big.write_text(SMALL_YAML.replace("transactions_per_day: 3000", "transactions_per_day: 2000000")
                       .replace("days: 1", "days: 3"))
        out = tmp_path / "run"
        exe = Path(sys.executable).with_name("clearing-sim")
        proc = subprocess.Popen([str(exe), "run", str(big), "--out", str(out), "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not (list(tmp_path.glob(".run.tmp-*")) and time.monotonic() > deadline - 115):
            time.sleep(0.2)
            assert time.monotonic() < deadline, "run never started"
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        status = json.loads((out / "status.json").read_text())
        assert status["status"] == "interrupted" and status["seed"] == 42
        assert 0.0 <= status["progress"]["fraction"] < 1.0
        assert not (out / "summary.json").exists()
