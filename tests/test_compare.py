"""`clearing-sim compare`: replications with common random numbers, intervals, three files."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

import clearing_sim
from clearing_sim import compare, metrics
from clearing_sim.cli import main

from tests.conftest import SMALL_YAML

INTRADAY_YAML = SMALL_YAML.replace("name: small", "name: small_intraday").replace(
    'windows: ["10:00"]\n  lag_days: 1', 'windows: ["13:00", "23:50"]\n  lag_days: 0')


@pytest.fixture(scope="module")
def two_files(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("scenarios")
    a, b = d / "small.yaml", d / "intraday.yaml"
    a.write_text(SMALL_YAML, encoding="utf-8")
    b.write_text(INTRADAY_YAML, encoding="utf-8")
    return a, b


@pytest.fixture(scope="module")
def compared(two_files, tmp_path_factory):
    """compare.json and stdout of `compare small intraday --replications 3`."""
    out = tmp_path_factory.mktemp("compare")
    capture = tmp_path_factory.mktemp("stdout") / "out.txt"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["compare", str(two_files[0]), str(two_files[1]), "--replications", "3", "--out", str(out)])
    capture.write_text(buf.getvalue())
    return rc, out, json.loads((out / "compare.json").read_text()), buf.getvalue()


class TestCompareScenarioFiles:
    """Scenario files run R times each; compare.json holds a mean and interval per dotted path."""

    def test_exit_and_files(self, compared):
        rc, out, _, _ = compared
        assert rc == 0
        for name in ("compare.json", "compare.csv", "compare.html"):
            assert (out / name).is_file()
        assert not list(out.glob(".*tmp*"))

    def test_json_shape(self, compared):
        data = compared[2]
        assert [s["name"] for s in data["scenarios"]] == ["small", "small_intraday"]
        for s in data["scenarios"]:
            assert s["replications"] == 3
            assert "settlement.lag_hours.p50" in s["metrics"]
            for path, m in s["metrics"].items():
                assert path in metrics.METRICS_BY_PATH
                assert set(m) >= {"mean", "ci95"}
                assert len(m["values"]) == 3

    def test_intervals_contain_their_means(self, compared):
        for s in compared[2]["scenarios"]:
            for path, m in s["metrics"].items():
                lo, hi = m["ci95"]
                assert lo <= m["mean"] <= hi, path

    def test_interval_is_the_t_interval(self, compared):
        m = compared[2]["scenarios"][0]["metrics"]["settlement.lag_hours.p50"]
        iv = metrics.interval(m["values"])
        assert m["mean"] == pytest.approx(iv.mean, abs=1e-6)
        assert m["ci95"] == [pytest.approx(iv.lo, abs=1e-6), pytest.approx(iv.hi, abs=1e-6)]
        assert iv.hi > iv.lo  # three different seeds give different lags

    def test_missing_metric_left_out(self, compared):
        """A key metric that no summary has (and none can be derived) is left out, not a crash."""
        values = metrics.key_values({"scenario": "x", "authorisations": {"count": 3}})
        assert values["settlement.defaulted_participants"] is None
        for s in compared[2]["scenarios"]:
            assert all(m["mean"] is not None for m in s["metrics"].values())

    def test_common_random_numbers(self, compared):
        """Replication i of both scenarios used one seed: the authorisations are identical."""
        a, b = compared[2]["scenarios"]
        assert a["seeds"] == b["seeds"] == list(compare.replication_seeds(compared[2]["root_seed"], 3))
        assert len(set(a["seeds"])) == 3
        for path in ("authorisations.latency_ms.p99", "authorisations.approval_rate"):
            assert a["metrics"][path]["values"] == b["metrics"][path]["values"]
        # ... while the settlement windows differ.
        assert a["metrics"]["settlement.lag_hours.p50"]["mean"] != b["metrics"]["settlement.lag_hours.p50"]["mean"]

    def test_replication_reproducible_with_run(self, compared, small_scenario):
        a = compared[2]["scenarios"][0]
        r = clearing_sim.run(small_scenario, seed=a["seeds"][1])
        assert r.summary["authorisations"]["latency_ms"]["p99"] == \
            a["metrics"]["authorisations.latency_ms.p99"]["values"][1]

    def test_table_printed(self, compared):
        text = compared[3]
        assert "small_intraday" in text and "settlement lag p50" in text
        assert "defaulted participants" in text

    def test_csv_rows(self, compared):
        rows = list(csv.DictReader((compared[1] / "compare.csv").open()))
        assert len(rows) == 2 * len(metrics.KEY_METRICS)
        row = next(r for r in rows if r["scenario"] == "small" and r["metric"] == "settlement.lag_hours.p99")
        assert float(row["ci95_lo"]) <= float(row["mean"]) <= float(row["ci95_hi"])

    def test_html(self, compared):
        html = (compared[1] / "compare.html").read_text()
        assert "<svg" in html and "<script" not in html
        assert "small_intraday" in html


class TestCompareRunFolders:
    """A run folder counts as one replication; a figure its summary lacks shows as '-'."""

    def test_folder_and_file(self, tmp_path, small_file, capsys):
        run = tmp_path / "run"
        assert main(["run", str(small_file), "--out", str(run), "--quiet"]) == 0
        summary = json.loads((run / "summary.json").read_text())
        del summary["settlement"]["lag_hours"]
        summary["settlement"].pop("exposure", None)  # an older summary: exposure only derivable from the table
        old = tmp_path / "old"
        shutil.copytree(run, old)
        (old / "summary.json").write_text(json.dumps(summary))
        (old / "transactions.parquet").unlink()
        capsys.readouterr()
        out = tmp_path / "cmp"
        assert main(["compare", str(run), str(old), "--out", str(out)]) == 0
        text = capsys.readouterr().out
        data = json.loads((out / "compare.json").read_text())
        first, second = data["scenarios"]
        assert first["kind"] == "run" and first["replications"] == 1 and first["seeds"] == [42]
        m = first["metrics"]["settlement.lag_hours.p50"]
        assert m["ci95"] == [m["mean"], m["mean"]]
        assert m["mean"] == summary_value(run, "settlement.lag_hours.p50")
        assert "settlement.exposure.peak_minor" in first["metrics"]
        assert second["name"] != first["name"]  # same scenario name made unique
        assert "settlement.lag_hours.p50" not in second["metrics"]
        assert "settlement.exposure.peak_minor" not in second["metrics"]
        assert "-" in text
        assert "note:" not in text  # both folders written by this clearing-sim

    def test_a_folder_of_another_version_gets_a_note(self, tmp_path, small_file, capsys):
        """A run folder another clearing-sim wrote was compared without a word, though a figure's
        definition can change between versions (0.3.1's exposure); now a note names it."""
        from clearing_sim import __version__

        run = tmp_path / "run"
        assert main(["run", str(small_file), "--out", str(run), "--quiet"]) == 0
        old = tmp_path / "old"
        shutil.copytree(run, old)
        summary = json.loads((old / "summary.json").read_text())
        summary["version"] = "0.2.0"
        (old / "summary.json").write_text(json.dumps(summary))
        capsys.readouterr()
        assert main(["compare", str(run), str(old), "--out", str(tmp_path / "cmp")]) == 0
        notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
        assert notes == [f"note: {old} was made by clearing-sim 0.2.0; this is {__version__}, and its figures "
                         "are compared as that version defined them"]

    def test_a_table_without_its_approved_column_leaves_the_figure_missing(self, tmp_path, small_file, capsys):
        """A table the exposure cannot be read from (no `approved`, a `route` of numbers) is as
        good as none: the figure is missing, not an internal error."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        run = tmp_path / "run"
        assert main(["run", str(small_file), "--out", str(run), "--quiet"]) == 0
        summary = json.loads((run / "summary.json").read_text())
        summary["settlement"].pop("exposure")
        table = pq.read_table(run / "transactions.parquet")
        tables = {"no_approved": table.drop(["approved"]),
                  "route_numbers": table.set_column(table.column_names.index("route"), "route",
                                                    pa.array([1] * table.num_rows, pa.int8()))}
        for name, t in tables.items():
            folder = tmp_path / name
            shutil.copytree(run, folder)
            (folder / "summary.json").write_text(json.dumps(summary))
            pq.write_table(t, folder / "transactions.parquet")
        capsys.readouterr()
        out = tmp_path / "cmp"
        assert main(["compare", str(run), *(str(tmp_path / n) for n in tables), "--out", str(out)]) == 0
        first, *others = json.loads((out / "compare.json").read_text())["scenarios"]
        assert "settlement.exposure.peak_minor" in first["metrics"]
        for o in others:
            assert "settlement.exposure.peak_minor" not in o["metrics"]
            assert "settlement.lag_hours.p50" in o["metrics"]


def summary_value(folder: Path, path: str):
    return metrics.get_path(json.loads((folder / "summary.json").read_text()), path)


class TestCompareErrors:
    """Bad arguments exit 2 with a message naming the problem, never a traceback."""

    @pytest.mark.parametrize("args, needle", [
        (["nowhere.yaml"], "no such scenario file or run folder"),
        (["{file}", "--replications", "0"], "--replications"),
        (["{dir}"], "not a run folder"),
        (["{bad}"], "traffic.transactions_per_day"),
        # A name longer than the file system allows (300 bytes) was exit 1, "internal error: OSError".
        (["{tmp}/" + "a" * 300], "File name too long"),
    ])
    def test_exit_2(self, tmp_path, small_file, capsys, args, needle):
        bad = tmp_path / "bad.yaml"
        bad.write_text(SMALL_YAML.replace("transactions_per_day: 3000", "transactions_per_day: -5"))
        args = [a.format(file=small_file, dir=tmp_path, bad=bad, tmp=tmp_path) for a in args]
        assert main(["compare", *args, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert needle in err
        assert "Traceback" not in err
        assert not (tmp_path / "o" / "compare.json").exists()


class TestHandEditedSummary:
    """A run folder's summary.json with NaN or an infinite number is bad input (exit 2), not a bug."""

    @pytest.mark.parametrize("text", ['{"seed": 1, "authorisations": {"latency_ms": {"p99": NaN}}}',
                                      '{"seed": 1, "authorisations": {"latency_ms": {"p99": -Infinity}}}',
                                      '{"seed": 1, "authorisations": {"latency_ms": {"p99": 1e400}}}',
                                      '{"seed": 1, "authorisations": {"approved": 1' + "0" * 400 + '}}'])
    def test_non_finite_number(self, tmp_path, capsys, text):
        run = tmp_path / "run"
        run.mkdir()
        (run / "summary.json").write_text(text)
        assert main(["compare", str(run), "--out", str(tmp_path / "o")]) == 2  # was 1: ValueError from json.dumps
        err = capsys.readouterr().err
        assert "summary.json: cannot read the run summary" in err and "internal error" not in err
        assert not (tmp_path / "o").exists()

    def test_failed_rendering_leaves_no_folder(self, tmp_path, capsys, monkeypatch):
        from clearing_sim import compare as cmp

        run = tmp_path / "run"
        run.mkdir()
        (run / "summary.json").write_text('{"seed": 1}')

        def broken(*args, **kwargs):
            raise RuntimeError("plot failed")

        monkeypatch.setattr(cmp, "to_html", broken)
        assert main(["compare", str(run), "--out", str(tmp_path / "o" / "deeper")]) == 1
        assert not (tmp_path / "o").exists()  # was left behind, empty

    @pytest.mark.parametrize("values", [(1e308,), (1e308, -1e308), (1.7e308, 1.7e308), (5e307, 1e308), (1.1e307,)])
    def test_finite_but_huge_figures_are_compared(self, tmp_path, capsys, values):
        """Finite figures near float's limit (a hand-edited summary) are compared: the table shows
        them and the plot says they are too large to plot (matplotlib failed on the axis: exit 1)."""
        runs = []
        for k, v in enumerate(values):
            run = tmp_path / f"run{k}"
            run.mkdir()
            (run / "summary.json").write_text(
                '{"seed": %d, "authorisations": {"latency_ms": {"p99": %r}, "approval_rate": %r}}' % (k, v, v))
            runs.append(str(run))
        assert main(["compare", *runs, "--out", str(tmp_path / "o")]) == 0
        html = (tmp_path / "o" / "compare.html").read_text()
        assert "values too large to plot" in html


def test_out_into_a_run_folder_is_refused(tmp_path, capsys):
    """compare --out RUN would put compare.* among the run's own files (a replay of it then differs)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text('{"seed": 1, "authorisations": {"approval_rate": 0.5}}')
    (run / "config.yaml").write_text("# clearing-sim 0.1.0 mode fast: the resolved scenario of this run\n")
    before = sorted(p.name for p in run.iterdir())
    assert main(["compare", str(run), "--out", str(run)]) == 2
    assert "is a run folder" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == before
    assert main(["compare", str(run), "--out", str(tmp_path / "cmp")]) == 0
    assert main(["compare", str(run), "--out", str(tmp_path / "cmp")]) == 0  # its own folder: written again
    assert main(["compare", str(run), "--out", str(run / "cmp")]) == 2  # inside the run: a replay would differ
    assert "lies inside the run folder" in capsys.readouterr().err and not (run / "cmp").exists()
    mine = tmp_path / "mine"  # a user's folder with a config.yaml of its own is no run folder
    mine.mkdir()
    (mine / "config.yaml").write_text("foo: 1\n")
    assert main(["compare", str(run), "--out", str(mine)]) == 0
    assert sorted(p.name for p in mine.iterdir()) == ["compare.csv", "compare.html", "compare.json", "config.yaml"]


def test_out_that_cannot_be_created_is_refused_before_running(tmp_path, capsys, monkeypatch):
    """--out under a file: refused before any replication (it failed with exit 1 after them all)."""
    from clearing_sim import compare as cmp

    (tmp_path / "afile").write_text("x")
    ran: list[int] = []
    monkeypatch.setattr(cmp, "compare", lambda *a, **k: ran.append(1) or [])
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text('{"seed": 1}')
    assert main(["compare", str(run), "--out", str(tmp_path / "afile" / "cmp")]) == 2
    assert "is not a folder" in capsys.readouterr().err and not ran
    # A name too long for the file system: it was exit 1, "internal error: OSError".
    assert main(["compare", str(run), "--out", str(tmp_path / ("a" * 300) / "cmp")]) == 2
    assert "--out: cannot write into" in capsys.readouterr().err and not ran


def test_a_folder_compare_wrote_into_is_not_replaced_by_a_run(tmp_path, capsys, small_file):
    """compare --out a user's folder puts compare.* beside their files; a run --out that folder must
    not then take it for a comparison's folder and replace it whole (their files went with it)."""
    run = tmp_path / "run"
    assert main(["run", str(small_file), "--mode", "fast", "--out", str(run), "-q"]) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    assert main(["compare", str(run), "--out", str(mine)]) == 0
    capsys.readouterr()
    assert main(["run", str(small_file), "--mode", "fast", "--out", str(mine), "-q"]) == 2
    assert "did not write" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep me\n"
    alone = tmp_path / "cmp"  # compare.* and nothing else: a comparison's own folder, which a run may replace
    assert main(["compare", str(run), "--out", str(alone)]) == 0
    assert main(["run", str(small_file), "--mode", "fast", "--out", str(alone), "-q"]) == 0


@pytest.mark.skipif(not Path("/proc/sys").is_dir(), reason="needs /proc/sys, a folder nobody may write into")
def test_an_existing_folder_that_cannot_be_written_is_refused_before_running(tmp_path, capsys, monkeypatch):
    from clearing_sim import compare as cmp

    ran: list[int] = []
    monkeypatch.setattr(cmp, "compare", lambda *a, **k: ran.append(1) or [])
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text('{"seed": 1}')
    assert main(["compare", str(run), "--out", "/proc/sys"]) == 2
    assert "cannot write into /proc/sys" in capsys.readouterr().err and not ran


def test_disk_full_exits_1_and_leaves_no_folder(tmp_path, capsys, monkeypatch):
    """The disk filled while compare.html was written: exit 2, as for bad input, and the new
    --out folder was left behind, empty. Now exit 1, as for any failure that is not the input's."""
    import errno
    import os

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text('{"seed": 1}')
    real_write_text = Path.write_text

    def full(self, *args, **kwargs):
        if self.name.startswith(".compare.html.tmp-"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    assert main(["compare", str(run), "--out", str(tmp_path / "o" / "deeper")]) == 1
    err = capsys.readouterr().err
    assert "the comparison could not be written: No space left on device; nothing was written" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
