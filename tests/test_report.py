"""report.html: self-contained, at least five inline SVG plots, same bytes for the same run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import clearing_sim
from clearing_sim import metrics, report
from clearing_sim.cli import main
from clearing_sim.scenario import parse_scenario

from tests.conftest import SMALL_YAML

PLOT_TITLES = ("Purchases per hour", "Authorisation latency distribution", "Settlement lag distribution",
               "Net positions per settlement window", "Exposure over the days")


@pytest.fixture(scope="module")
def small_result():
    """One run of the small scenario, shared by the tests of this module."""
    return clearing_sim.run(parse_scenario(SMALL_YAML, "small.yaml"))


@pytest.fixture(scope="module")
def small_html(small_result):
    return report.build_report(small_result.summary, small_result.transactions, small_result.settlements)


def _external_references(html: str) -> list[str]:
    """Anything in the page that a browser could fetch: src/href/url()/@import/script/link."""
    found = []
    found += re.findall(r"<script\b", html, flags=re.I)
    found += re.findall(r"<link\b", html, flags=re.I)
    found += re.findall(r"@import", html, flags=re.I)
    found += re.findall(r"\bsrc\s*=", html, flags=re.I)
    found += [u for u in re.findall(r"url\(\s*['\"]?([^)'\"]*)", html) if not u.startswith("#")]
    found += [h for h in re.findall(r"\bhref\s*=\s*['\"]([^'\"]*)", html) if not h.startswith("#")]
    return found


class TestReportContent:
    """The report of a run has five or more inline SVG plots with titles and names."""

    def test_at_least_five_inline_svgs(self, small_html):
        assert small_html.count("<svg") >= 5
        assert small_html.count("<svg") == small_html.count("</svg>")

    def test_plot_titles_units_and_participants(self, small_html):
        for title in PLOT_TITLES:
            assert title in small_html, title
        for unit in ("(ms)", "(hours)", "CNY", "purchases per hour"):
            assert unit in small_html, unit
        for name in ("BANKA", "BANKB", "BANKC", "NETWORK"):
            assert name in small_html, name

    def test_key_figures_table(self, small_html, small_result):
        assert "settlement.lag_hours.p50" in small_html
        assert f"seed {small_result.summary['seed']}" in small_html

    def test_svg_ids_unique_across_plots(self, small_html):
        ids = re.findall(r'\bid="([^"]+)"', small_html)
        assert len(ids) == len(set(ids))


class TestDictionaryColumns:
    """Columns whose chunks carry different dictionaries decode to the right names."""

    def test_chunks_with_own_dictionaries(self):
        import pyarrow as pa

        col = pa.chunked_array([pa.array(["B", "A", "B"]).dictionary_encode(),
                                pa.array(["C", None, "A"]).dictionary_encode()])
        codes, names = report._coded(pa.table({"acquirer": col}), "acquirer")
        assert [names[c] if c >= 0 else None for c in codes] == ["B", "A", "B", "C", None, "A"]


class TestSelfContained:
    """The page loads nothing from anywhere and says so to the browser."""

    def test_no_external_references(self, small_html):
        assert _external_references(small_html) == []

    def test_detector_finds_a_reference(self):
        assert _external_references('<img src="http://x/y.png"><a href="https://x">') != []

    def test_content_security_policy(self, small_html):
        assert "Content-Security-Policy" in small_html
        assert "default-src 'none'" in small_html

    def test_no_metadata_dates(self, small_html):
        assert "<dc:date>" not in small_html
        assert "<metadata>" not in small_html


class TestDeterministic:
    """The same run gives the same report bytes, also in a fresh process with another hash seed."""

    def test_same_bytes_in_process(self, small_result, small_html):
        again = report.build_report(small_result.summary, small_result.transactions, small_result.settlements)
        assert again == small_html

    def test_same_bytes_across_processes(self, tmp_path, small_file):
        outs = []
        for n, hashseed in enumerate(("1", "2")):
            out = tmp_path / f"run{n}"
            env = {**os.environ, "PYTHONHASHSEED": hashseed}
            code = "import sys; from clearing_sim.cli import main; sys.exit(main(sys.argv[1:]))"
            subprocess.run([sys.executable, "-c", code, "run", str(small_file), "--out", str(out), "--quiet"],
                           check=True, env=env, capture_output=True, timeout=300)
            outs.append((out / "report.html").read_bytes())
        assert outs[0] == outs[1]


class TestMissingData:
    """A table or column a run lacks leaves a note instead of a plot, never an error."""

    def test_without_tables(self, small_result):
        html = report.build_report(small_result.summary)
        assert "<svg" not in html
        assert html.count("Not available for this run") == len(report.PLOTS)

    def test_without_a_column(self, small_result):
        tx = small_result.transactions.drop_columns(["settlement_lag_h"])
        html = report.build_report(small_result.summary, tx, small_result.settlements)
        assert "settlement_lag_h missing" in html
        assert html.count("<svg") == len(report.PLOTS) - 1

    def test_empty_summary(self):
        html = report.build_report({})
        assert "No settlement windows" in html


def test_day_without_purchases_warns_nothing():
    """A run with no purchases gets its report without matplotlib's 'No artists with labels' warning."""
    import warnings

    result = clearing_sim.run(parse_scenario(SMALL_YAML.replace("transactions_per_day: 3000",
                                                                "transactions_per_day: 0"), "empty.yaml"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        html = report.build_report(result.summary, result.transactions, result.settlements)
    assert "<html" in html


def test_day_without_purchases_same_report_from_its_folder(tmp_path):
    """A run with no purchases writes the report that its folder gives back (no acquirer names
    come from an in-memory table without rows, which its Parquet file cannot give)."""
    path = tmp_path / "empty.yaml"
    path.write_text(SMALL_YAML.replace("transactions_per_day: 3000", "transactions_per_day: 0"), encoding="utf-8")
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html == report.report_from_folder(out)
    result = clearing_sim.run(parse_scenario(path.read_text(encoding="utf-8"), "empty.yaml"))
    assert result.transactions.num_rows == 0
    assert html == report.build_report(result.summary, result.transactions, result.settlements)


def test_money_beyond_two_to_the_53_fen(tmp_path):
    """Positions of more than 2^53 fen (90 trillion yuan, which amounts at the n12 maximum
    reach in about 9,000 purchases) are drawn and their key figures printed to the fen.

    Found by a review: the report cast the money columns to float64 with pyarrow's safe
    cast, which refuses integers a float cannot hold exactly: `run` failed with an internal
    error (exit 1) after the run itself had finished.
    """
    big = 999_999_999_999
    text = SMALL_YAML.replace("transactions_per_day: 3000", f"transactions_per_day: 12000\n  amount_max_minor: {big}")
    text = text.replace('    "5411": {distribution: lognormal, median: 5000, sigma: 0.8}\n'
                        '    "5812": {distribution: uniform, low: 1000, high: 20000}\n',
                        f'    "5411": {{distribution: constant, value: {big}}}\n'
                        f'    "5812": {{distribution: constant, value: {big}}}\n')
    text = text.replace("    share: 0.6\n    cards: 5000\n",
                        "    share: 0.6\n    cards: 5000\n"
                        "    credit_limit_minor: {distribution: constant, value: 1000000000000000}\n")
    text = text.replace("    share: 0.4\n    cards: 3000\n",
                        "    share: 0.4\n    cards: 3000\n"
                        "    credit_limit_minor: {distribution: constant, value: 1000000000000000}\n")
    path = tmp_path / "big.yaml"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet", "--mode", "fast"]) == 0
    import json

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    window = summary["settlement"]["windows"][0]
    assert window["gross_minor"] > 2**53
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Not available" not in html
    assert metrics.fmt_value(window["gross_minor"], "fen") in html
    yuan, fen = divmod(window["gross_minor"], 100)
    assert f"{yuan:,}.{fen:02d}" in html  # exact, not through a float


class TestRunFolder:
    """Every run folder gets report.html, written with the rest of the folder."""

    def test_cli_run_writes_report(self, tmp_path, small_file, capsys):
        out = tmp_path / "run"
        assert main(["run", str(small_file), "--out", str(out), "--quiet"]) == 0
        html = (out / "report.html").read_text(encoding="utf-8")
        assert html.count("<svg") >= 5
        assert html == report.report_from_folder(out)

    def test_failed_run_leaves_no_report(self, tmp_path, small_file, monkeypatch, capsys):
        """A failure while the report is being written leaves no report, summary or tables."""

        def half_written(folder, result):
            (folder / "report.html").write_text("<html>partial", encoding="utf-8")
            raise RuntimeError("disk full")

        monkeypatch.setattr(report, "write_report", half_written)
        out = tmp_path / "run"
        assert main(["run", str(small_file), "--out", str(out), "--quiet"]) == 1
        assert (out / "status.json").exists()
        assert not (out / "report.html").exists()
        assert not (out / "summary.json").exists()
        assert not (out / "transactions.parquet").exists()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="no Chromium on this machine")
class TestRendersInChromium:
    """Headless Chromium parses the report into a DOM with the plots and renders a non-blank page."""

    def _run(self, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
        cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def _page_requests(self, page: Path, tmp_path: Path) -> set[str]:
        """URLs the page itself asked for, from Chromium's net log (not the browser's own requests)."""
        import json

        log = tmp_path / f"{page.stem}-netlog.json"
        r = self._run([f"--log-net-log={log}", "--dump-dom", page.as_uri()], tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        events = json.loads(log.read_text())["events"]
        return {e["params"].get("url", "?") for e in events
                if "initiator" in e.get("params", {}) and e["params"]["initiator"] != "not an origin"}

    def test_loads_nothing(self, tmp_path, small_html):
        page = tmp_path / "report.html"
        page.write_text(small_html, encoding="utf-8")
        assert self._page_requests(page, tmp_path) == set()

    def test_net_log_sees_page_requests(self, tmp_path):
        page = tmp_path / "bad.html"
        page.write_text('<img src="http://example.invalid/x.png">', encoding="utf-8")
        assert "http://example.invalid/x.png" in self._page_requests(page, tmp_path)

    def test_dom_and_screenshot(self, tmp_path, small_html):
        page = tmp_path / "report.html"
        page.write_text(small_html, encoding="utf-8")
        dom = self._run(["--dump-dom", page.as_uri()], tmp_path)
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert dom.stdout.count("<svg") >= 5
        assert "Exposure over the days" in dom.stdout
        shot = tmp_path / "shot.png"
        r = self._run([f"--screenshot={shot}", "--window-size=1000,1400", "--hide-scrollbars", page.as_uri()],
                      tmp_path)
        assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
        import matplotlib.image

        pixels = matplotlib.image.imread(str(shot))
        assert pixels.shape[0] >= 1000
        # Blank or unrendered pages are one colour; a page with plots has many.
        assert len({tuple(p) for p in pixels[::7, ::7].reshape(-1, pixels.shape[2])}) > 50


@pytest.mark.parametrize("days, step_h", [(1, 3), (2, 6), (3, 24), (16, 24), (17, 48), (40, 168), (370, 28 * 24),
                                          (15_407, 24 * 963)])
def test_time_axis_has_few_ticks(days, step_h):
    """A tick per day on a long axis (a run whose last window was decades out, behind a list of
    holidays, took four minutes to lay out 15,000 labels): at most 16 ticks, a step of whole
    days, weeks or so, and short runs keep theirs."""
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    report._time_axis(ax, float(days), "2026-11-02")
    ticks = ax.get_xticks()
    assert len(ticks) <= report._MAX_TIME_TICKS + 1
    assert ticks[0] == 0 and np.all(np.diff(ticks) == step_h)
    assert ax.get_xlim() == (0.0, days * 24.0)


def _many_participants_yaml(n: int) -> str:
    """A network of `n` banks, each issuing and acquiring, a few purchases each."""
    lines = ["name: many", "run: {days: 1, seed: 5}", "institutions:"]
    lines += [f"  - {{id: B{i:04d}}}" for i in range(n)]
    lines += ["issuers:"]
    for i in range(n):
        lines += [f"  - {{institution: B{i:04d}, bins: ['{700000 + i}'], share: 1, cards: 100, products: {{classic: 1}},",
                  "     host: {servers: 2, service_time_ms: {distribution: constant, value: 40}}}"]
    lines += ["acquirers:"]
    lines += [f"  - {{institution: B{i:04d}, share: 1, merchants: 5, category_mix: {{'5411': 1}}, "
              "submission_times: ['23:00']}" for i in range(n)]
    lines += ["traffic: {transactions_per_day: 4000, amount_minor: {'5411': {distribution: constant, value: 5000}}}"]
    return "\n".join(lines) + "\n"


def test_hundreds_of_participants_get_a_legend_that_fits():
    """A legend of every one of hundreds of participants took most of the report's time, in dozens
    of columns wider than the figure, whose axes collapsed (matplotlib warned on stderr): the first
    47 are named, then a count of the rest."""
    import warnings

    result = clearing_sim.run(parse_scenario(_many_participants_yaml(300), "many.yaml"), mode="fast")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        html = report.build_report(result.summary, result.transactions, result.settlements)
    more = re.findall(r"and ([\d,]+) more", html)
    assert more and set(more) <= {"253", "254"}  # 300 (or 301 with the network itself) named: 47 shown
