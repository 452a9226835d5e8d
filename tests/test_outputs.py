"""The Parquet writer options of the run folder's tables (`outputs.write_table_options`)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings

from clearing_sim.outputs import write_table, write_table_options

try:
    import fcntl
except ImportError:
    fcntl = None


def _column_encodings(path) -> dict[str, set[str]]:
    meta = pq.ParquetFile(path).metadata
    out: dict[str, set[str]] = {}
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for i in range(rg.num_columns):
            c = rg.column(i)
            out.setdefault(c.path_in_schema, set()).update(c.encodings)
    return out


def _table(n: int) -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table({
        "txn_id": np.arange(n, dtype=np.int64),
        "issuer": pa.array(rng.choice(["ICBC", "CCB", "BOC"], n)).dictionary_encode(),
        "acquirer": rng.integers(0, 40, n).astype(np.int16),
        "approved": rng.random(n) < 0.9,
        "t_arrival_s": np.sort(rng.random(n) * 86400.0),
        "amount_minor": rng.integers(100, 10**7, n),
        "arn": pa.array([f"{i:023d}" for i in range(n)]),
    })


def test_encodings_follow_the_column_types(tmp_path):
    path = tmp_path / "t.parquet"
    write_table(path, _table(5000))
    enc = _column_encodings(path)
    assert "RLE_DICTIONARY" in enc["issuer"] and "RLE_DICTIONARY" in enc["acquirer"]
    assert "BYTE_STREAM_SPLIT" in enc["t_arrival_s"] and "RLE_DICTIONARY" not in enc["t_arrival_s"]
    assert "DELTA_BINARY_PACKED" in enc["txn_id"] and "DELTA_BINARY_PACKED" in enc["amount_minor"]
    assert "RLE_DICTIONARY" not in enc["arn"]
    rg = pq.ParquetFile(path).metadata.row_group(0)
    with_stats = {rg.column(i).path_in_schema for i in range(rg.num_columns) if rg.column(i).is_stats_set}
    assert with_stats == {"txn_id", "acquirer", "approved", "t_arrival_s", "amount_minor", "arn"}
    assert rg.column(0).statistics.min == 0 and rg.column(0).statistics.max == 4999


def test_same_table_same_bytes(tmp_path):
    t = _table(3000)
    write_table(tmp_path / "a.parquet", t)
    write_table(tmp_path / "b.parquet", t)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


@settings(max_examples=40, deadline=None)
@given(
    ints=st.lists(st.integers(-2**63, 2**63 - 1), min_size=0, max_size=50),
    floats=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=50),
    floats32=st.lists(st.floats(width=32), min_size=0, max_size=50),
    names=st.lists(st.sampled_from(["a", "b", "\u4e2d"]), min_size=0, max_size=50),
)
def test_round_trip(tmp_path_factory, ints, floats, floats32, names):
    """Whatever the values (extreme int64s, NaN, infinities, no rows), the file reads back equal."""
    n = min(len(ints), len(floats), len(floats32), len(names))
    t = pa.table({
        "i": pa.array(ints[:n], pa.int64()),
        "f": pa.array(floats[:n], pa.float64()),
        "g": pa.array(np.array(floats32[:n], dtype=np.float32)),
        "s": pa.array(names[:n], pa.string()).dictionary_encode(),
        "k": pa.array(ints[:n], pa.int64()).cast(pa.int8(), safe=False),
        "b": pa.array([x > 0 for x in ints[:n]], pa.bool_()),
    })
    path = tmp_path_factory.mktemp("rt") / "t.parquet"
    pq.write_table(t, path, **write_table_options(t.schema))
    back = pq.read_table(path)
    assert back.schema == t.schema
    for name in t.column_names:
        a, b = t[name].to_pylist(), back[name].to_pylist()
        assert [x if x == x else "nan" for x in a] == [x if x == x else "nan" for x in b]


class TestDeclareNotNull:
    """`clearing_results.declare_not_null`: the tables' columns that never lack a value are REQUIRED in Parquet."""

    def test_required_columns_have_no_definition_levels(self, tmp_path):
        from clearing_sim.clearing_results import declare_not_null

        t = pa.table({"a": np.arange(5, dtype=np.int64), "b": pa.array([1.0, None, 3.0, 4.0, 5.0]),
                      "c": pa.DictionaryArray.from_arrays(pa.array([0, 1, 0, 1, 0], pa.int32()),
                                                          pa.array(["x", "y"]))})
        out = declare_not_null(t, frozenset({"b"}))
        assert [f.nullable for f in out.schema] == [False, True, False]
        assert all(out.column(i).equals(t.column(i)) for i in range(3))  # only the schema's flags changed
        write_table(tmp_path / "t.parquet", out)
        schema = pq.ParquetFile(tmp_path / "t.parquet").schema
        assert [schema.column(i).max_definition_level for i in range(3)] == [0, 1, 0]
        back = pq.read_table(tmp_path / "t.parquet")
        assert back.schema.equals(out.schema) and back.equals(out)

    def test_a_null_in_a_declared_column_is_refused(self):
        from clearing_sim.clearing_results import declare_not_null
        from clearing_sim.errors import InvariantError

        t = pa.table({"a": pa.array([1, None], pa.int64()), "b": pa.array([None, 2], pa.int64())})
        with pytest.raises(InvariantError, match="'a' has 1 null"):
            declare_not_null(t, frozenset({"b"}))
        assert declare_not_null(t, frozenset({"a", "b"})).schema.equals(t.schema)


def test_out_a_link_to_an_old_run_leaves_nothing_behind(tmp_path, small_file):
    """--out a symbolic link to an old run folder: the new run takes the link's place, the old run
    (the link's target) is kept, and no `.NAME.old-PID` link is left beside it."""
    from clearing_sim.cli import main

    real, link = tmp_path / "real", tmp_path / "link"
    assert main(["run", str(small_file), "--out", str(real), "-q"]) == 0
    before = (real / "summary.json").read_bytes()
    link.symlink_to(real)
    assert main(["run", str(small_file), "--out", str(link), "--seed", "8", "-q"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != small_file.name) == ["link", "real"]
    assert (real / "summary.json").read_bytes() == before
    assert '"seed": 8' in (link / "summary.json").read_text()


@pytest.mark.parametrize("name, folder", [(".", "_"), ("..", "_."), (".hidden", "_hidden"), ("a/../b", "a_.._b"),
                                          ("", "scenario"), ("华东", "华东")])
def test_folder_names_are_never_hidden_nor_paths(name, folder):
    """A scenario named `.` or `..` gave the hidden folder runs/.-11; a name is never a path either."""
    from clearing_sim.outputs import folder_name

    assert folder_name(name, "scenario") == folder


class TestOutFolders:
    """What `run --out` may replace: only a folder clearing-sim wrote, never one inside a run."""

    def test_a_users_folder_with_a_config_yaml_is_not_replaced(self, tmp_path, small_file, capsys):
        """A config.yaml alone marked a folder as clearing-sim's: `run --out` would have deleted a
        user's folder holding one (and their other files) as a whole."""
        from clearing_sim.cli import main

        mine = tmp_path / "project"
        mine.mkdir()
        (mine / "config.yaml").write_text("database: prod\n")
        (mine / "notes.txt").write_text("keep me\n")
        assert main(["run", str(small_file), "--out", str(mine), "-q"]) == 2
        assert "clearing-sim did not write" in capsys.readouterr().err
        assert sorted(p.name for p in mine.iterdir()) == ["config.yaml", "notes.txt"]

    def test_a_run_is_replaced_but_not_written_into(self, tmp_path, small_file, capsys):
        from clearing_sim.cli import main
        from clearing_sim.outputs import output_kind

        run = tmp_path / "run"
        assert main(["run", str(small_file), "--out", str(run), "-q"]) == 0
        assert output_kind(run) == "run"
        assert main(["run", str(small_file), "--out", str(run / "inner"), "-q"]) == 2
        assert "lies inside the run folder" in capsys.readouterr().err and not (run / "inner").exists()
        assert main(["run", str(small_file), "--out", str(run), "-q"]) == 0  # an old run is replaced


    def test_a_read_only_run_folder_is_not_replaced(self, tmp_path, small_file, capsys, monkeypatch):
        """An old run folder made read-only (`chmod -R a-w`): the run replaced it, exit 0, but could
        not delete it, so the whole old run stayed beside it as the hidden `.run.old-PID`, one more
        at every run. Now refused before the run, exit 2, the folder as it was."""
        from clearing_sim import outputs
        from clearing_sim.cli import main

        run = tmp_path / "run"
        assert main(["run", str(small_file), "--out", str(run), "-q"]) == 0
        before = {p.name: p.read_bytes() for p in run.iterdir()}
        real_access = os.access  # root may write anywhere: pretend to be its owner without that right
        monkeypatch.setattr(outputs.os, "access",
                            lambda p, mode: False if Path(p) == run and mode & os.W_OK else real_access(p, mode))
        capsys.readouterr()
        assert main(["run", str(small_file), "--out", str(run), "--seed", "8", "-q"]) == 2
        assert f"{run} cannot be replaced: {run} is read-only" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "small.yaml"]


def test_out_a_link_to_nowhere_is_replaced_by_the_run(tmp_path, small_file):
    """--out a symbolic link whose target is gone: the run lands there (it failed after the whole
    run: 'NotADirectoryError', exit 1, the finished run left in a hidden folder)."""
    from clearing_sim.cli import main

    link = tmp_path / "dlink"
    link.symlink_to(tmp_path / "nowhere")
    assert main(["run", str(small_file), "--out", str(link), "-q"]) == 0
    assert (link / "summary.json").is_file() and not link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dlink", "small.yaml"]


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class TestWriteFailures:
    """A write the machine refuses (a full disk, a read-only folder) exits 1 with a one-line
    reason, never blames a bug, and leaves the complete folder, the failed run's record or nothing."""

    @pytest.mark.parametrize("err, code", [(errno.ENOSPC, 1), (errno.EDQUOT, 1), (errno.EACCES, 2)])
    def test_disk_full_for_the_empty_folder(self, tmp_path, small_file, capsys, monkeypatch, err, code):
        """The disk too full even for the empty hidden folder: exit 2 ('cannot create'), as if
        --out were the user's mistake. Now exit 1 with the reason and 'nothing was written'
        (a folder refused for its permissions stays exit 2), and no hidden folder is left."""
        from clearing_sim import outputs
        from clearing_sim.cli import main

        def refuse(folder):
            raise OSError(err, os.strerror(err))

        monkeypatch.setattr(outputs, "hold_folder", refuse)
        out = tmp_path / "run"
        assert main(["run", str(small_file), "--out", str(out), "-q"]) == code
        err_text = capsys.readouterr().err
        assert os.strerror(err) in err_text and "bug" not in err_text, err_text
        assert ("nothing was written" in err_text) == (code == 1)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["small.yaml"]

    def test_disk_full_while_writing_the_report(self, tmp_path, small_file, capsys, monkeypatch):
        """The tables fitted, report.html did not: exit 1 'internal error ... This is a bug'."""
        import clearing_sim.report as report
        from clearing_sim.cli import main

        monkeypatch.setattr(report, "write_report", _enospc)
        out = tmp_path / "run"
        assert main(["run", str(small_file), "--out", str(out), "-q"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "No space left on device" in err and "bug" not in err, err
        assert f"{out / 'status.json'} records the error" in err
        assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "log.jsonl", "status.json"]
        assert json.loads((out / "status.json").read_text())["status"] == "failed"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "small.yaml"]

    def test_the_log_file_refused(self, tmp_path, small_file, capsys, monkeypatch):
        """The log file itself refused (an inode quota): exit 1 'internal error: OSError ... This
        is a bug', and the hidden `.run.tmp-PID` was left behind. Now the failed run's folder,
        which the next run into that --out replaces."""
        from clearing_sim import outputs
        from clearing_sim.cli import main

        def refuse_the_log(path, *args, **kwargs):
            if Path(path).name == "log.jsonl":
                raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
            return open(path, *args, **kwargs)

        monkeypatch.setattr(outputs, "open", refuse_the_log, raising=False)
        assert main(["run", str(small_file), "--out", str(tmp_path / "run"), "-q"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Disk quota exceeded;" in err and "bug" not in err, err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "small.yaml"]
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.yaml", "status.json"]
        monkeypatch.undo()
        assert main(["run", str(small_file), "--out", str(tmp_path / "run"), "-q"]) == 0

    def test_no_room_even_for_the_status_leaves_nothing(self, tmp_path, small_file, capsys, monkeypatch):
        """The disk full before status.json: the hidden `.run.tmp-PID` was left with an empty
        status.json, the old run kept aside, and the message named status.json's write."""
        import clearing_sim.report as report
        from clearing_sim.cli import main

        out = tmp_path / "run"
        assert main(["run", str(small_file), "--out", str(out), "-q"]) == 0
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        real_write_text = Path.write_text

        def full_for_status(self, *args, **kwargs):
            if self.name == "status.json":
                _enospc()
            return real_write_text(self, *args, **kwargs)

        monkeypatch.setattr(report, "write_report", _enospc)
        monkeypatch.setattr(Path, "write_text", full_for_status)
        capsys.readouterr()
        assert main(["run", str(small_file), "--out", str(out), "--seed", "8", "-q"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "No space left on device; nothing was written" in err, err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "small.yaml"]
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old run as it was

    def test_a_folder_made_read_only_mid_run_is_named(self, tmp_path, small_file, capsys, monkeypatch):
        """The temporary folder made read-only under the run: neither status.json nor the removal
        could be done, and the message said 'nothing was written' beside the hidden folder left."""
        import clearing_sim.report as report
        from clearing_sim import outputs
        from clearing_sim.cli import main

        real_write_text = Path.write_text

        def read_only(self, *args, **kwargs):
            if self.name == "status.json":
                raise OSError(errno.EACCES, os.strerror(errno.EACCES))
            return real_write_text(self, *args, **kwargs)

        monkeypatch.setattr(report, "write_report", _enospc)
        monkeypatch.setattr(Path, "write_text", read_only)
        monkeypatch.setattr(outputs.shutil, "rmtree", lambda *a, **k: None)  # as on a read-only folder
        assert main(["run", str(small_file), "--out", str(tmp_path / "run"), "-q"]) == 1
        err = capsys.readouterr().err
        assert f"{tmp_path / f'.run.tmp-{os.getpid()}'} could not be removed" in err, err

    def test_a_folder_that_cannot_take_its_place_puts_the_old_one_back(self, tmp_path, monkeypatch):
        """The old folder was moved aside, then the new one could not be renamed in: --out was gone."""
        from clearing_sim import outputs

        out, tmp = tmp_path / "run", tmp_path / ".run.tmp-1"
        out.mkdir()
        (out / "summary.json").write_text("old")
        tmp.mkdir()
        real_replace = os.replace

        def refuse_tmp(src, dst):
            if Path(src) == tmp:
                raise OSError(errno.EACCES, os.strerror(errno.EACCES))
            real_replace(src, dst)

        monkeypatch.setattr(outputs.os, "replace", refuse_tmp)
        with pytest.raises(OSError):
            outputs._move_into_place(tmp, out)
        assert (out / "summary.json").read_text() == "old"
        assert sorted(p.name for p in tmp_path.iterdir()) == [".run.tmp-1", "run"]

    def test_a_run_finishing_into_the_same_out_at_the_same_moment(self, tmp_path, monkeypatch):
        """Another run put its folder at --out between the two renames: the rename failed
        (exit 1 after the whole run) and the first old folder was left as `.run.old-PID`."""
        from clearing_sim import outputs

        out, tmp = tmp_path / "run", tmp_path / ".run.tmp-1"
        out.mkdir()
        tmp.mkdir()
        (tmp / "summary.json").write_text("new")
        real_replace = os.replace
        raced = []

        def other_run_first(src, dst):
            if Path(src) == tmp and not raced:
                raced.append(1)
                (tmp_path / "other").mkdir()
                (tmp_path / "other" / "summary.json").write_text("other")
                real_replace(tmp_path / "other", out)
            real_replace(src, dst)

        monkeypatch.setattr(outputs.os, "replace", other_run_first)
        outputs._move_into_place(tmp, out)
        assert (out / "summary.json").read_text() == "new"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.skipif(fcntl is None, reason="flock is POSIX")
def test_what_a_killed_run_left_beside_out_is_removed_by_the_next(tmp_path, small_file):
    """A run killed (SIGKILL) left `.run.tmp-PID` with its half-written files; every such run added
    one, never removed. A sibling a running clearing-sim holds (locked) is kept, as is anything else."""
    from clearing_sim.cli import main

    out = tmp_path / "run"
    for stale in (".run.tmp-123", ".run.old-123-0", ".run.tmp-456"):
        (tmp_path / stale).mkdir()
        (tmp_path / stale / "transactions.parquet").write_bytes(b"half")
    (tmp_path / ".run.tmp-notes").mkdir()  # not a name clearing-sim gives
    (tmp_path / ".other.tmp-1").mkdir()    # another --out's
    running = os.open(tmp_path / ".run.tmp-456", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(running, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["run", str(small_file), "--out", str(out), "-q"]) == 0
    finally:
        os.close(running)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-1", ".run.tmp-456", ".run.tmp-notes", "run",
                                                          "small.yaml"]


def _without_flock(monkeypatch) -> None:
    """`outputs` on a file system that refuses flock (NFS without its lock daemon)."""
    import types

    from clearing_sim import outputs

    def refused(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(outputs, "fcntl", types.SimpleNamespace(LOCK_EX=2, LOCK_NB=4, flock=refused))


@pytest.mark.skipif(fcntl is None, reason="flock is POSIX")
def test_a_file_system_without_flock_still_runs(tmp_path, small_file, capsys, monkeypatch):
    """Where flock fails (ENOLCK), every run ended 'error: --out: cannot create OUT: No locks
    available' (exit 2) and left its `.OUT.tmp-PID` behind; a sibling it cannot lock is kept."""
    from clearing_sim.cli import main

    _without_flock(monkeypatch)
    (tmp_path / ".run.tmp-123").mkdir()  # perhaps a run of another machine's, still going
    assert main(["run", str(small_file), "--out", str(tmp_path / "run"), "-q"]) == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "summary.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.tmp-123", "run", "small.yaml"]


@pytest.mark.skipif(fcntl is None, reason="flock is POSIX")
def test_what_a_killed_run_left_does_not_count_against_the_disk_check(tmp_path, small_file, monkeypatch):
    """A streamed run killed late leaves gigabytes of scratch beside --out; the next run's disk
    check counted them as used and refused the run (exit 2) before they were removed."""
    from clearing_sim import resources
    from clearing_sim.cli import main

    stale = tmp_path / ".run.tmp-123"
    stale.mkdir()
    (stale / "rows.arrow").write_bytes(b"x" * 1000)
    seen = []
    real_check = resources.check_memory
    monkeypatch.setattr(resources, "check_memory", lambda *a, **k: seen.append(stale.exists()) or real_check(*a, **k))
    assert main(["run", str(small_file), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert seen == [False]
