"""`clearing-sim sweep`: strict sweep files, grid points, seeds, and executor-independent outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clearing_sim import sweep as sw
from clearing_sim.cli import main
from clearing_sim.rng import derived_seed

from tests.conftest import SMALL_YAML

SWEEP_YAML = """\
name: small_sweep
base: small.yaml
replications: 2
overrides:
  settlement.lag_days: 0
grid:
  settlement.windows:
    - ["10:00"]
    - ["10:00", "16:00"]
  issuers[1].host.servers: [1, 3]
"""


def write_sweep(folder: Path, text: str) -> Path:
    (folder / "small.yaml").write_text(SMALL_YAML, encoding="utf-8")
    p = folder / "sweep.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture
def sweep_file(tmp_path) -> Path:
    return write_sweep(tmp_path, SWEEP_YAML)


class TestPoints:
    """The grid is the product of the keys' values, first key outermost, overrides on every point."""

    def test_points(self, sweep_file):
        s = sw.load_sweep(sweep_file)
        assert s.keys == ("settlement.windows", "issuers[1].host.servers")
        assert [p.values for p in s.points] == [
            {"settlement.windows": ["10:00"], "issuers[1].host.servers": 1},
            {"settlement.windows": ["10:00"], "issuers[1].host.servers": 3},
            {"settlement.windows": ["10:00", "16:00"], "issuers[1].host.servers": 1},
            {"settlement.windows": ["10:00", "16:00"], "issuers[1].host.servers": 3},
        ]
        for p in s.points:
            assert list(p.scenario.settlement.windows) == p.values["settlement.windows"]
            assert p.scenario.issuers[1].host.servers == p.values["issuers[1].host.servers"]
            assert p.scenario.settlement.lag_days == 0
            assert p.scenario.issuers[0] == s.base_scenario.issuers[0]

    def test_seeds_from_root_point_and_replication(self, sweep_file):
        s = sw.load_sweep(sweep_file)
        assert s.root_seed == 42  # the base scenario's run.seed
        seeds = [t.seed for t in s.tasks()]
        assert len(set(seeds)) == len(seeds) == 8
        assert seeds[3] == derived_seed(42, "sweep", 1, 1)

    def test_common_random_numbers(self, tmp_path):
        s = sw.load_sweep(write_sweep(tmp_path, SWEEP_YAML + "common_random_numbers: true\nseed: 7\n"))
        assert s.seed(0, 1) == s.seed(3, 1) == derived_seed(7, "replication", 1)
        assert s.seed(0, 0) != s.seed(0, 1)


def _errors(tmp_path: Path, text: str, capsys) -> str:
    p = write_sweep(tmp_path, text)
    assert main(["sweep", str(p), "--workers", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    return " ".join(err.split())  # undo the console's line wrapping


class TestBadSweepFiles:
    """Bad sweep files exit 2 with the problem, its path and its line; nothing runs or is written."""

    def test_unknown_key_path(self, tmp_path, capsys):
        err = _errors(tmp_path, SWEEP_YAML.replace("settlement.windows:", "settlement.window:"), capsys)
        assert "grid.settlement.window (line 7)" in err
        assert "unknown key path 'settlement.window'" in err
        assert "settlement has no key 'window'" in err

    def test_index_out_of_range(self, tmp_path, capsys):
        err = _errors(tmp_path, SWEEP_YAML.replace("issuers[1]", "issuers[5]"), capsys)
        assert "issuers has 2 item(s), there is no [5]" in err

    def test_key_below_a_value(self, tmp_path, capsys):
        err = _errors(tmp_path, SWEEP_YAML.replace("settlement.lag_days: 0", "settlement.lag_days.x: 0"), capsys)
        assert "overrides.settlement.lag_days.x (line 5)" in err
        assert "is a single value" in err

    def test_empty_grid(self, tmp_path, capsys):
        text = SWEEP_YAML[:SWEEP_YAML.index("grid:")] + "grid: {}\n"
        err = _errors(tmp_path, text, capsys)
        assert "grid (line 6): empty grid" in err

    def test_a_run_block_without_a_seed_is_swept(self, tmp_path):
        """grid: {run: [...]} replaces the whole run block: without a seed in it, nothing is ignored
        (9b39171 refused it as 'run.seed would be ignored', the point's seed falling back to 0)."""
        from clearing_sim import sweep as sw

        text = SWEEP_YAML.replace("issuers[1].host.servers: [1, 3]",
                                  'run: [{days: 1, start_date: "2026-11-02"}, {days: 2, start_date: "2026-11-02"}]')
        s = sw.load_sweep(write_sweep(tmp_path, text))
        assert [p.scenario.run.days for p in s.points] == [1, 2, 1, 2]

    @pytest.mark.parametrize("old, new, where", [
        ("issuers[1].host.servers: [1, 3]", "run.seed: [1, 2]", "grid.run.seed (line 10)"),
        ("settlement.lag_days: 0", "run.seed: 5", "overrides.run.seed (line 5)"),
        # through the parent key, as a whole run block
        ("issuers[1].host.servers: [1, 3]", "run: [{seed: 1, days: 1}, {seed: 2, days: 1}]", "grid.run (line 10)"),
        ("settlement.lag_days: 0", "run: {seed: 5, days: 1}", "overrides.run (line 5)"),
    ])
    def test_run_seed_is_refused(self, tmp_path, capsys, old, new, where):
        # it was accepted and ignored: the replications' seeds come from the root seed, point and replication
        err = _errors(tmp_path, SWEEP_YAML.replace(old, new), capsys)
        assert f"{where}: run.seed would be ignored" in err

    @pytest.mark.parametrize("old, new, where, says", [
        # one value spelt twice: the points labelled issuers[1].host.servers=1 ran with 5
        ("issuers[1].host.servers: [1, 3]", "issuers[1].host.servers: [1, 3]\n  issuers[01].host.servers: [5]",
         "grid.issuers[01].host.servers (line 11)", "sets what grid key 'issuers[1].host.servers' also sets"),
        # a grid key that replaces the value another one varies
        ("issuers[1].host.servers: [1, 3]", "issuers[1].host.servers: [1, 3]\n  issuers[1].host: [{servers: 2}]",
         "grid.issuers[1].host (line 11)", "sets what grid key 'issuers[1].host.servers' also sets"),
        # a grid key that replaces what an override set: spelt otherwise, or from above it
        ("settlement.lag_days: 0", "settlement.lag_days: 0\n  issuers[01].host.servers: 2",
         "grid.issuers[1].host.servers (line 11)", "is also set in overrides"),
        ("settlement.lag_days: 0", "settlement.lag_days: 0\n  settlement.windows[0]: '09:00'",
         "grid.settlement.windows (line 8)", "is also set in overrides"),
        ("settlement.lag_days: 0", "settlement.lag_days: 0\n  issuers[1].cards: 10\n  issuers[01].cards: 20",
         "overrides.issuers[01].cards (line 7)", "sets the same value as overrides key 'issuers[1].cards'"),
    ])
    def test_one_value_set_by_two_keys_is_refused(self, tmp_path, capsys, old, new, where, says):
        """Two keys that set the same scenario value, however spelt, are refused (they were accepted:
        the later silently won, and the sweep labelled points with values they did not run with)."""
        err = _errors(tmp_path, SWEEP_YAML.replace(old, new), capsys)
        assert f"{where}: {says}" in err

    def test_an_override_inside_a_grid_value_is_kept(self, tmp_path):
        """An override that sets a whole block while the grid varies one value inside it is no overlap."""
        text = SWEEP_YAML.replace("settlement.lag_days: 0", "settlement.lag_days: 0\n  issuers[1].host: {servers: 2, "
                                  "service_time_ms: {distribution: constant, value: 10}}")
        s = sw.load_sweep(write_sweep(tmp_path, text))
        assert [p.scenario.issuers[1].host.servers for p in s.points] == [1, 3, 1, 3]
        assert {p.scenario.issuers[1].host.service_time_ms.value for p in s.points} == {10}

    def test_a_number_as_an_unknown_top_level_key(self, tmp_path, capsys):
        # `1.5: x` made a Problem whose path was the float 1.5: printing it raised a TypeError,
        # exit 1 "internal error ... a bug in clearing-sim".
        err = _errors(tmp_path, SWEEP_YAML.replace("replications: 2", "replications: 2\n1.5: x"), capsys)
        assert "1.5 (line 4): unknown key" in err

    def test_empty_values(self, tmp_path, capsys):
        text = SWEEP_YAML.replace("issuers[1].host.servers: [1, 3]", "issuers[1].host.servers: []")
        err = _errors(tmp_path, text, capsys)
        assert "grid.issuers[1].host.servers (line 10): empty grid" in err

    def test_missing_grid_and_base(self, tmp_path, capsys):
        err = _errors(tmp_path, "name: x\nreplications: 1\n", capsys)
        assert "base: required key is missing" in err or "base (line 1): required key is missing" in err
        assert "grid" in err and "required key is missing" in err

    def test_unknown_top_level_key_and_bad_replications(self, tmp_path, capsys):
        err = _errors(tmp_path, SWEEP_YAML.replace("replications: 2", "replication: 2\nreplications: 0"), capsys)
        assert "replication (line 3): unknown key" in err
        assert "replications (line 4): must be a whole number" in err

    def test_duplicate_key_names_its_path_and_both_lines(self, tmp_path, capsys):
        err = _errors(tmp_path, SWEEP_YAML + "  settlement.windows: [[\"12:00\"]]\n", capsys)
        assert ("grid.settlement.windows (line 11): duplicate key 'settlement.windows': given at line 7 and again "
                "at line 11") in err

    def test_base_not_found(self, tmp_path, capsys):
        err = _errors(tmp_path, SWEEP_YAML.replace("base: small.yaml", "base: nothere.yaml"), capsys)
        assert "base (line 2): no such scenario file: nothere.yaml" in err

    def test_invalid_point_names_point_and_key(self, tmp_path, capsys):
        err = _errors(tmp_path, SWEEP_YAML.replace('- ["10:00", "16:00"]', '- ["10:00", "25:00"]'), capsys)
        assert "grid.settlement.windows[1] (line 9)" in err
        assert 'point 2 (settlement.windows=["10:00", "25:00"], issuers[1].host.servers=1)' in err
        assert "'25:00' is not a time of day" in err

    def test_invalid_value_type(self, tmp_path, capsys):
        err = _errors(tmp_path, SWEEP_YAML.replace("[1, 3]", "[1, many]"), capsys)
        assert "grid.issuers[1].host.servers[1] (line 10)" in err
        assert "expected a whole number" in err

    def test_out_is_a_file_refused_before_running(self, tmp_path, sweep_file, capsys, monkeypatch):
        f = tmp_path / "notes.txt"
        f.write_text("keep me")
        monkeypatch.setattr(sw, "run_sweep", lambda *a, **k: pytest.fail("ran the sweep"))
        assert main(["sweep", str(sweep_file), "--workers", "1", "--out", str(f)]) == 2
        assert "exists and is not a folder" in capsys.readouterr().err
        assert f.read_text() == "keep me"

    def test_out_is_the_current_folder(self, tmp_path, sweep_file, capsys, monkeypatch):
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sw, "run_sweep", lambda *a, **k: pytest.fail("ran the sweep"))
        assert main(["sweep", str(sweep_file), "--workers", "1", "--out", "."]) == 2
        assert "is the current folder" in capsys.readouterr().err
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    def test_default_folder_of_a_long_name(self, tmp_path):
        s = sw.load_sweep(write_sweep(tmp_path, SWEEP_YAML.replace("name: ", "name: " + "y" * 300, 1)))
        assert len(sw.default_out(s).name.encode()) <= 200

    def test_load_sweep_problems(self, tmp_path):
        p = write_sweep(tmp_path, SWEEP_YAML.replace("settlement.windows:", "settlement.window:"))
        with pytest.raises(sw.SweepError) as info:
            sw.load_sweep(p)
        (problem,) = info.value.problems
        assert (problem.path, problem.line) == ("grid.settlement.window", 7)


def _sweep_json(tmp_path: Path, sweep_file: Path, name: str, *args: str) -> tuple[bytes, bytes]:
    out = tmp_path / name
    assert main(["sweep", str(sweep_file), "--out", str(out), *args]) == 0
    return (out / "sweep.json").read_bytes(), (out / "sweep.parquet").read_bytes()


class TestExecutorIndependence:
    """sweep.json and sweep.parquet are byte-identical with 1 or 2 local workers and on Dask."""

    def test_same_bytes(self, tmp_path, capsys):
        text = SWEEP_YAML.replace("issuers[1].host.servers: [1, 3]", "")  # 2 points x 2 replications
        sweep_file = write_sweep(tmp_path, text)
        one = _sweep_json(tmp_path, sweep_file, "w1", "--workers", "1")
        two = _sweep_json(tmp_path, sweep_file, "w2", "--workers", "2")
        assert one == two
        distributed = pytest.importorskip("distributed")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            dask = _sweep_json(tmp_path, sweep_file, "dask", "--scheduler", cluster.scheduler_address)
        assert one == dask

    # tls:// without Dask's TLS configuration and ucx:// without UCX failed with a TypeError inside
    # distributed: exit 1, "internal error ... a bug in clearing-sim".
    @pytest.mark.parametrize("address", ["tcp://127.0.0.1:9", "tls://127.0.0.1:9", "ucx://127.0.0.1:9"])
    def test_unreachable_scheduler_exits_2(self, tmp_path, sweep_file, capsys, monkeypatch, address):
        pytest.importorskip("distributed")
        from clearing_sim import executor

        monkeypatch.setattr(executor, "CONNECT_TIMEOUT_S", 2)
        rc = main(["sweep", str(sweep_file), "--out", str(tmp_path / "o"), "--scheduler", address])
        assert rc == 2
        assert "cannot reach the Dask scheduler" in " ".join(capsys.readouterr().err.split())


@pytest.fixture(scope="module")
def sweep_out(tmp_path_factory) -> Path:
    """The folder of the small sweep, run once for this module."""
    d = tmp_path_factory.mktemp("sweep")
    f = write_sweep(d, SWEEP_YAML)
    assert main(["sweep", str(f), "--workers", "1", "--out", str(d / "out")]) == 0
    return d / "out"


class TestOutputs:
    """sweep.json holds every point with intervals; sweep.parquet one row per point and replication."""

    def test_folder(self, sweep_out):
        assert sorted(p.name for p in sweep_out.iterdir()) == ["base.yaml", "sweep.json", "sweep.parquet",
                                                                "sweep.yaml"]

    def test_json(self, sweep_out):
        data = json.loads((sweep_out / "sweep.json").read_text())
        assert data["keys"] == ["settlement.windows", "issuers[1].host.servers"]
        assert len(data["points"]) == 4
        for p in data["points"]:
            assert len(p["replications"]) == 2
            for path, m in p["metrics"].items():
                assert m["ci95"][0] <= m["mean"] <= m["ci95"][1], path
        # Two windows a day settle the midday cycle the same day: a shorter median lag.
        lag = [p["metrics"]["settlement.lag_hours.p50"]["mean"] for p in data["points"]]
        assert lag[2] < lag[0] and lag[3] < lag[1]

    def test_parquet(self, sweep_out):
        t = pq.read_table(sweep_out / "sweep.parquet")
        assert t.num_rows == 8
        df = t.to_pandas()
        assert list(df["point"]) == [0, 0, 1, 1, 2, 2, 3, 3]
        assert list(df["replication"]) == [0, 1] * 4
        assert list(df["issuers[1].host.servers"]) == [1, 1, 3, 3, 1, 1, 3, 3]
        assert [list(v) for v in df["settlement.windows"][::2]] == [["10:00"], ["10:00"], ["10:00", "16:00"],
                                                                     ["10:00", "16:00"]]
        assert "settlement.lag_hours.p50" in df and "authorisations.per_issuer.BANKA.count" in df
        df["windows_per_day"] = df["settlement.windows"].map(len)
        means = df.groupby("windows_per_day")["settlement.lag_hours.p50"].mean()
        assert means[2] < means[1]


    @pytest.mark.parametrize("columns", [None, "80"])
    def test_no_figure_is_cut_short(self, tmp_path, sweep_file, capsys, monkeypatch, columns):
        """Every point's mean and half-width is printed whole, in as many tables as the width
        needs: with twelve figures in 200 columns (a pipe) they showed as '44,610,243.…'."""
        import re

        from clearing_sim import cli
        from clearing_sim.metrics import KEY_METRICS, fmt_value

        if columns is not None:  # a terminal 80 columns wide
            monkeypatch.setenv("COLUMNS", columns)
            monkeypatch.setattr(cli, "out_console", cli.Console(highlight=False, soft_wrap=True, force_terminal=True))
        assert main(["sweep", str(sweep_file), "--workers", "1", "--out", str(tmp_path / "out")]) == 0
        printed = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
        assert "…" not in printed
        cells = {c.strip() for line in printed.splitlines() for c in line.split("│")}
        data = json.loads((tmp_path / "out" / "sweep.json").read_text())
        for p in data["points"]:
            for m in KEY_METRICS:
                if m.path in p["metrics"]:
                    assert fmt_value(p["metrics"][m.path]["mean"], m.unit) in cells, (p["index"], m.path)

    def test_disk_full_leaves_nothing_and_blames_no_bug(self, tmp_path, sweep_file, capsys, monkeypatch):
        """The disk filled while sweep.parquet was written: exit 1 'internal error ... This is a bug
        in clearing-sim (for `run`, ...)'; now a one-line reason, and still nothing left."""
        import errno
        import os

        from clearing_sim import outputs

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(outputs, "write_table", full)
        before = sorted(p.name for p in tmp_path.iterdir())
        assert main(["sweep", str(sweep_file), "--workers", "1", "--out", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert "the sweep could not be written: No space left on device; nothing was written" in err, err
        assert "bug" not in err and err.count("\n") == 2  # the sweep's first line, then the reason
        assert sorted(p.name for p in tmp_path.iterdir()) == before


class TestShippedSweeps:
    """Every sweep file shipped in scenarios/ (sweep_*.yaml) loads with all its points valid."""

    SWEEPS = sorted((Path(__file__).resolve().parent.parent / "scenarios").glob("sweep_*.yaml"))

    @pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
    def test_loads(self, path):
        s = sw.load_sweep(path)
        assert s.points and s.replications >= 1

    def test_sweep_windows(self):
        s = sw.load_sweep(Path(__file__).resolve().parent.parent / "scenarios" / "sweep_windows.yaml")
        assert [len(p.scenario.settlement.windows) for p in s.points] == [1, 2, 4, 6]
        assert s.base_scenario.name == "baseline"
        assert all(p.scenario.traffic == s.base_scenario.traffic for p in s.points)


class TestBasePathSafety:
    """A sweep's base is a scenario file in the sweep file's folder (or below it); anything else is named."""

    @pytest.mark.parametrize("base", ["../small.yaml", "/etc/passwd", "sub/../../small.yaml"])
    def test_escape_refused(self, tmp_path, capsys, base):
        sub = tmp_path / "sweeps"
        sub.mkdir()
        err = _errors(sub, SWEEP_YAML.replace("base: small.yaml", f"base: {base}"), capsys)
        assert "outside the sweep file's folder" in err

    @pytest.mark.parametrize("base, message", [
        ("sweep.yaml", "'sweep.yaml' is a sweep file, not a scenario file"),  # itself
        ("other.yaml", "'other.yaml' is a sweep file, not a scenario file"),
        ("folder", "'folder' is a folder, not a scenario file"),
        (".", "'.' is a folder, not a scenario file"),
    ])
    def test_a_base_that_is_no_scenario_file_is_named(self, tmp_path, capsys, base, message):
        # A sweep file as base got the base's 8 "institutions (line 1): required key is missing"...;
        # a folder "no such scenario file".
        (tmp_path / "other.yaml").write_text(SWEEP_YAML, encoding="utf-8")
        (tmp_path / "folder").mkdir()
        err = _errors(tmp_path, SWEEP_YAML.replace("base: small.yaml", f"base: {base}"), capsys)
        assert f"invalid sweep (1 problem(s)) - base (line 2): {message}" in err

    @pytest.mark.parametrize("base, message", [
        ('"small.yaml\\0"', "must be the path of a scenario file"),  # was exit 1, 'embedded null byte'
        ("a" * 300 + ".yaml", "no such scenario file: aaa"),  # was exit 1, 'File name too long'
    ])
    def test_a_base_no_file_can_have_is_refused(self, tmp_path, capsys, base, message):
        err = _errors(tmp_path, SWEEP_YAML.replace("base: small.yaml", f"base: {base}"), capsys)
        assert f"base (line 2): {message}" in err


@pytest.mark.parametrize("old, new, where", [
    ("name: small_sweep", 'name: "sw\\e[31mred"', "name (line 1)"),
    ("name: small_sweep", 'name: sw\ndescription: "a\\x00b"', "description (line 2)"),
])
def test_control_characters_in_the_sweeps_own_name(tmp_path, capsys, old, new, where):
    """The sweep's name is printed and names its folder: an escape sequence went raw to the console."""
    assert old in SWEEP_YAML
    err = _errors(tmp_path, SWEEP_YAML.replace(old, new, 1), capsys)
    assert f"{where}: holds the control character" in err


def test_a_local_dask_cluster_has_no_more_workers_than_tasks(monkeypatch):
    """--scheduler local --workers 64 for two tasks starts two worker processes, not 64."""
    distributed = pytest.importorskip("distributed")
    from clearing_sim import executor

    started: list[int] = []

    class Stop(Exception):
        pass

    def cluster(n_workers, **kwargs):
        started.append(n_workers)
        raise Stop

    monkeypatch.setattr(distributed, "LocalCluster", cluster)
    with pytest.raises(Stop):
        executor._execute_dask([object(), object()], [None, None], 64, "local", None, None)
    assert started == [2]


def _block_in_worker(task):
    """A pool task that says it started (a file named by its pid) and then waits: a long replication."""
    import os
    import time

    Path(os.environ["CLEARING_SIM_TEST_MARKERS"], str(os.getpid())).touch()
    time.sleep(300)


_POOL_DRIVER = """
import sys
from clearing_sim import cli, executor
from tests.test_sweep import _block_in_worker

cli._terminate_as_interrupt()
try:
    executor.execute([executor.Task(None, i) for i in range(4)], workers=2, run=_block_in_worker)
except KeyboardInterrupt:
    sys.exit(130)
"""


_SUBMIT_INTERRUPTED_DRIVER = """
import os, signal, sys, time
from concurrent.futures import ProcessPoolExecutor
from clearing_sim import cli, executor
from tests.test_sweep import _block_in_worker

real_submit = ProcessPoolExecutor.submit

def submit(self, *args, **kwargs):
    future = real_submit(self, *args, **kwargs)
    deadline = time.monotonic() + 120  # a bound for a loaded machine, not a timing
    while not os.listdir(os.environ["CLEARING_SIM_TEST_MARKERS"]) and time.monotonic() < deadline:
        time.sleep(0.1)  # the first task running in its worker
    os.kill(os.getpid(), signal.SIGTERM)  # before the second is handed out
    return future

ProcessPoolExecutor.submit = submit
cli._terminate_as_interrupt()
try:
    executor.execute([executor.Task(None, i) for i in range(2)], workers=2, run=_block_in_worker)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def stray_processes():
    """Process groups to kill after the test, whatever happened (a failing test left them running)."""
    import os
    import signal

    groups: list[int] = []
    yield groups
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _spawn_driver(driver: str, tmp_path, stray_processes):
    """`python -c driver` in a session of its own (killed at the end: its workers too), with a
    folder where its tasks leave markers; returns the process and the folder."""
    import os
    import subprocess
    import sys

    markers = tmp_path / "markers"
    markers.mkdir()
    env = dict(os.environ, CLEARING_SIM_TEST_MARKERS=str(markers),
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", driver], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    stray_processes.append(proc.pid)  # its group: the workers too
    return proc, markers


def _start_pool(tmp_path, stray_processes):
    """A process running two pool workers that each block in a task; returns it and the workers' pids."""
    import time

    proc, markers = _spawn_driver(_POOL_DRIVER, tmp_path, stray_processes)
    deadline = time.monotonic() + 180  # a bound for a loaded machine, not a timing
    while len(list(markers.iterdir())) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
        time.sleep(0.1)
    return proc, [int(p.name) for p in markers.iterdir()]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
class TestStoppingAPool:
    """Stopping `sweep`/`compare --workers N` stops its worker processes at once, and quietly."""

    @pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
    def test_stopped_promptly_without_tracebacks(self, tmp_path, how, stray_processes):
        """SIGTERM killed the sweep outright (no handler) and left its workers running, for ever;
        Ctrl-C (SIGINT to the whole group) printed each worker's traceback, and the sweep then
        waited for every task to run before exiting."""
        import os
        import signal

        proc, workers = _start_pool(tmp_path, stray_processes)
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)  # the tasks would take 300 s each
        assert proc.returncode == 130 and "Traceback" not in err, err
        assert not any(_alive(pid) for pid in workers)

    def test_stopped_while_the_tasks_are_handed_out(self, tmp_path, stray_processes):
        """SIGTERM between two submissions (a job cancelled as it starts): the pool then waited for
        every task already handed out to finish (300 s each here) before exiting 130."""
        proc, markers = _spawn_driver(_SUBMIT_INTERRUPTED_DRIVER, tmp_path, stray_processes)
        _, err = proc.communicate(timeout=150)  # the task would take 300 s
        assert proc.returncode == 130 and "Traceback" not in err, err
        workers = [int(p.name) for p in markers.iterdir()]
        assert len(workers) == 1 and not _alive(workers[0])

    def test_workers_end_with_a_killed_parent(self, tmp_path, stray_processes):
        """SIGKILL (or the out-of-memory killer) on the sweep left its idle workers waiting for ever."""
        import signal
        import time

        proc, workers = _start_pool(tmp_path, stray_processes)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        deadline = time.monotonic() + 120
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "the workers outlived their parent"
            time.sleep(0.2)


def test_an_interrupted_sweep_says_so_and_leaves_nothing(tmp_path, sweep_file, capsys, monkeypatch):
    """Ctrl-C or SIGTERM during a sweep exited 130 without a word (typer turns it into exit 130)."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sw, "run_sweep", interrupted)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["sweep", str(sweep_file), "--workers", "1", "--out", str(tmp_path / "out")]) == 130
    assert "interrupted: nothing was left half-way" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
