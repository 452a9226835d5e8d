"""`report.html`: one self-contained page per run, with inline SVG plots.

Owns: the plots of a run (transactions per hour, authorisation latency, authorisation
outcomes, settlement lag, net positions per window, exposure over the days), the
page around them, and the SVG/HTML helpers `compare.html` reuses. The page loads
nothing: no JavaScript, no fonts, no images from anywhere (a Content-Security-Policy
of `default-src 'none'` says so to the browser), and the same run gives the same
bytes (matplotlib's Agg-free SVG backend with a fixed hash salt per figure, text kept
as text, no dates). Must never run the model; a table column or summary key that a
run does not have leaves its plot or cell out ("-"), it never fails the run.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clearing_sim import metrics

DAY_S = 86400.0
HOUR_S = 3600.0
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_RC = {
    "svg.fonttype": "none",  # text stays text: small files, no font paths, same bytes
    "font.family": ["DejaVu Sans", "sans-serif"],
    "font.size": 9.0,
    "axes.titlesize": 11.0,
    "axes.titleweight": "bold",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "path.simplify": True,
}

_STYLE = """
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #1b1b1b; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.2em 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 0.85em; max-width: 900px; }
p.note { color: #777; font-style: italic; }
"""


# --- SVG ----------------------------------------------------------------------------------


def new_figure(width_in: float = 9.0, height_in: float = 3.6) -> Any:
    """A matplotlib Figure not tied to pyplot (no global state, safe in any process)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def figure_svg(build: Callable[[Any], None], salt: str, width_in: float = 9.0,
               height_in: float = 3.6) -> str:
    """Inline `<svg>` markup of the figure `build(fig)` draws; same inputs, same bytes.

    `salt` makes the SVG's element ids unique to this figure on a page with several.
    """
    import matplotlib

    with matplotlib.rc_context({**_RC, "svg.hashsalt": f"clearing-sim:{salt}"}):
        fig = new_figure(width_in, height_in)
        build(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    # matplotlib names groups figure_1, axes_1, ... in every figure: prefix every id (and
    # every reference to one) so ids stay unique on a page with several figures.
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", salt)
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', svg)
    return svg.strip()


def money_scale(max_abs_minor: float) -> tuple[float, str]:
    """Divisor from fen and axis unit for amounts up to `max_abs_minor` fen."""
    yuan = max_abs_minor / 100.0
    for div, name in ((1e9, "CNY billion"), (1e6, "CNY million"), (1e3, "CNY thousand")):
        if yuan >= div:
            return 100.0 * div, name
    return 100.0, "CNY"


def _colours(names: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"] if len(names) <= 10 else matplotlib.colormaps["tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _legend(ax: Any, title: str) -> None:
    """The legend outside the axes on the right, so it never hides data (none for an empty plot)."""
    if not ax.get_legend_handles_labels()[0]:
        return  # a day without purchases: matplotlib would warn "No artists with labels" on stderr
    ax.legend(title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


# --- tables as arrays --------------------------------------------------------------------


def _col(table: Any, name: str) -> np.ndarray | None:
    if table is None or name not in table.column_names:
        return None
    col = table.column(name)
    import pyarrow as pa

    if pa.types.is_dictionary(col.type):
        return None
    return col.to_numpy(zero_copy_only=False) if col.null_count == 0 else \
        np.asarray(col.to_pylist(), dtype=object)


def _coded(table: Any, name: str) -> tuple[np.ndarray, list[str]] | None:
    """A dictionary (or string) column as (codes with -1 for null, names)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table is None or name not in table.column_names:
        return None
    col = table.column(name)
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    # Chunks (e.g. Parquet row groups) may each have their own dictionary: unify them.
    col = pa.table({name: col}).unify_dictionaries().column(0)
    chunks = col.chunks
    if not chunks:
        return np.empty(0, np.int64), []
    dictionary = chunks[0].dictionary.to_pylist()
    codes = np.concatenate([c.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
                            for c in chunks])
    return codes, [str(d) for d in dictionary]


def _float_col(table: Any, name: str) -> np.ndarray | None:
    import pyarrow as pa

    if table is None or name not in table.column_names:
        return None
    col = table.column(name).cast(pa.float64())
    return col.to_numpy(zero_copy_only=False) if col.null_count == 0 else \
        np.array([np.nan if v is None else v for v in col.to_pylist()], dtype=np.float64)


# --- the plots ---------------------------------------------------------------------------


class _Missing(Exception):
    """A plot cannot be drawn from this run's tables (a column is missing)."""


def _need(x: Any, what: str) -> Any:
    if x is None:
        raise _Missing(what)
    return x


def _time_axis(ax: Any, days: float, start_date: str | None) -> None:
    """Hours since 00:00 of day 1 on x, a tick per day (per 3 hours on a one-day axis)."""
    step = 3 if days <= 1.01 else (6 if days <= 2.01 else 24)
    ticks = np.arange(0, days * 24 + 0.01, step)
    ax.set_xticks(ticks)
    ax.set_xlim(0, days * 24)
    where = f" of {start_date}" if start_date else ""
    ax.set_xlabel(f"simulated time (hours since 00:00{where}, day 1)")


def plot_transactions_per_hour(fig: Any, tx: Any, summary: dict) -> str:
    t = _need(_float_col(tx, "t_arrival_s"), "t_arrival_s")
    acq = _need(_coded(tx, "acquirer"), "acquirer")
    codes, names = acq
    days = max(1, int(summary.get("days") or 1), int(np.ceil(t.max() / DAY_S)) if len(t) else 1)
    edges = np.arange(0, days * 24 + 1) * HOUR_S
    ax = fig.add_subplot()
    colours = _colours(summary.get("participants") or names)
    bottom = np.zeros(len(edges) - 1)
    for k, name in enumerate(names):
        counts, _ = np.histogram(t[codes == k], bins=edges)
        ax.bar(edges[:-1] / HOUR_S + 0.5, counts, width=0.9, bottom=bottom, label=name,
               color=colours.get(name), linewidth=0)
        bottom += counts
    _time_axis(ax, days, summary.get("start_date"))
    ax.set_ylabel("purchases per hour")
    ax.set_title("Purchases per hour, by acquirer")
    _legend(ax, "acquirer")
    return (f"{len(t):,} purchases over {days} day(s); each bar is one hour of arrivals, "
            "split by the acquirer of the merchant.")


def _share_stairs(ax: Any, series: list[tuple[str, np.ndarray]], edges: np.ndarray, colours: dict) -> None:
    """One step line per non-empty series: the share (%) of its values in each bin."""
    for name, v in series:
        if len(v) == 0:
            continue
        counts, _ = np.histogram(v, bins=edges)
        ax.stairs(100.0 * counts / len(v), edges, label=f"{name} ({len(v):,})",
                  color=colours.get(name, "0.4"), linewidth=1.4)


def _mark_percentiles(ax: Any, values: np.ndarray, unit: str) -> None:
    """Dashed lines at the p50 and p99 of all `values`, labelled in `unit`."""
    for q, v in zip(("p50", "p99"), np.percentile(values, [50, 99])):
        ax.axvline(v, color="0.3", linestyle="--", linewidth=0.8)
        ax.annotate(f"all {q} {v:.1f} {unit}", (v, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -10), textcoords="offset points", fontsize=8, color="0.25")


def plot_latency(fig: Any, tx: Any, summary: dict) -> str:
    lat = _need(_float_col(tx, "latency_ms"), "latency_ms")
    iss = _need(_coded(tx, "issuer"), "issuer")
    codes, names = iss
    ok = ~np.isnan(lat)
    if not ok.any():
        raise _Missing("latency_ms (no values)")
    hi = float(np.percentile(lat[ok], 99.9))
    edges = np.linspace(0.0, max(hi, 1.0), 61)
    ax = fig.add_subplot()
    colours = _colours(summary.get("participants") or names)
    groups = [(name, codes == k) for k, name in enumerate(names)]
    if (codes < 0).any():
        groups.append(("unknown BIN (switch)", codes < 0))
    _share_stairs(ax, [(name, np.minimum(lat[sel & ok], edges[-1])) for name, sel in groups], edges, colours)
    _mark_percentiles(ax, lat[ok], "ms")
    ax.set_xlabel("authorisation latency, 0100 sent to 0110 received by the acquirer (ms)")
    ax.set_ylabel("share of the issuer's authorisations (%)")
    ax.set_title("Authorisation latency distribution, by issuer")
    _legend(ax, "issuer (authorisations)")
    return (f"Latency from the acquirer's request to its response; the last bin holds everything "
            f"above the overall 99.9th percentile ({hi:.1f} ms).")


def plot_outcomes(fig: Any, tx: Any, summary: dict) -> str:
    iss = _need(_coded(tx, "issuer"), "issuer")
    rc = _need(_coded(tx, "response_code"), "response_code")
    icodes, inames = iss
    rcodes, rnames = rc
    groups = [(n, icodes == k) for k, n in enumerate(inames)]
    if (icodes < 0).any():
        groups.append(("unknown BIN", icodes < 0))
    present = sorted({rnames[c] for c in np.unique(rcodes) if c >= 0})
    labels = {"00": "00 approved", "05": "05 do not honour", "14": "14 invalid card",
              "51": "51 insufficient funds", "91": "91 issuer unavailable"}
    ax = fig.add_subplot()
    left = np.zeros(len(groups))
    import matplotlib

    cmap = matplotlib.colormaps["Set2"]
    for j, code in enumerate(present):
        k = rnames.index(code)
        counts = np.array([(rcodes[sel] == k).sum() for _, sel in groups], dtype=float)
        ax.barh([g for g, _ in groups], counts, left=left, label=labels.get(code, code),
                color=cmap(j % cmap.N))
        left += counts
    ax.invert_yaxis()
    ax.set_xlabel("authorisations (count)")
    ax.set_ylabel("issuer")
    ax.set_title("Authorisation outcomes, by issuer and response code")
    _legend(ax, "response code")
    return "Each bar is one issuer's authorisations split by ISO 8583 response code (field 39)."


def plot_settlement_lag(fig: Any, tx: Any, summary: dict) -> str:
    lag = _need(_float_col(tx, "settlement_lag_h"), "settlement_lag_h")
    acq = _need(_coded(tx, "acquirer"), "acquirer")
    codes, names = acq
    ok = ~np.isnan(lag)
    if not ok.any():
        raise _Missing("settlement_lag_h (nothing settled)")
    hi = float(np.ceil(lag[ok].max()))
    edges = np.linspace(0.0, max(hi, 1.0), min(int(max(hi, 1.0)) * 2, 120) + 1)
    ax = fig.add_subplot()
    colours = _colours(summary.get("participants") or names)
    _share_stairs(ax, [(name, lag[(codes == k) & ok]) for k, name in enumerate(names)], edges, colours)
    _mark_percentiles(ax, lag[ok], "h")
    ax.set_xlabel("settlement lag, authorisation response to settlement of its window (hours)")
    ax.set_ylabel("share of the acquirer's settled purchases (%)")
    ax.set_title("Settlement lag distribution, by acquirer")
    _legend(ax, "acquirer (settled purchases)")
    unsettled = int((~ok).sum())
    return (f"{int(ok.sum()):,} purchases settled; {unsettled:,} have no settlement "
            "(declined, or not settled within the run).")


def plot_positions(fig: Any, st: Any, summary: dict) -> str:
    win = _need(_coded(st, "window_id"), "window_id")
    part = _need(_coded(st, "participant"), "participant")
    pos = _need(_float_col(st, "position_minor"), "position_minor")
    wcodes, wnames = win
    pcodes, pnames = part
    order_p = [p for p in (summary.get("participants") or pnames) if p in pnames]
    if not wnames or not order_p:
        raise _Missing("settlement windows (none)")
    grid = np.zeros((len(wnames), len(order_p)))
    for w, p, v in zip(wcodes, pcodes, pos):
        if w >= 0 and p >= 0 and pnames[p] in order_p:
            grid[w, order_p.index(pnames[p])] += v
    div, unit = money_scale(float(np.abs(grid).max()) if grid.size else 0.0)
    ax = fig.add_subplot()
    colours = _colours(summary.get("participants") or order_p)
    x = np.arange(len(wnames))
    if len(wnames) <= 16:
        width = 0.8 / len(order_p)
        for j, p in enumerate(order_p):
            ax.bar(x - 0.4 + width * (j + 0.5), grid[:, j] / div, width=width, label=p,
                   color=colours.get(p))
    else:
        for j, p in enumerate(order_p):
            ax.plot(x, grid[:, j] / div, marker=".", label=p, color=colours.get(p))
    ax.axhline(0, color="0.2", linewidth=0.8)
    step = max(1, len(wnames) // 12)
    ax.set_xticks(x[::step], [wnames[i] for i in range(0, len(wnames), step)],
                  rotation=20 if len(wnames) > 3 else 0, ha="right" if len(wnames) > 3 else "center")
    ax.set_xlabel("settlement window (close date and time)")
    ax.set_ylabel(f"net position ({unit}; + receives, - pays)")
    ax.set_title("Net positions per settlement window, by participant")
    _legend(ax, "participant")
    return ("Multilateral net position of every participant in each window; "
            "positive receives from the settlement bank, negative pays in. Each window sums to zero.")


def plot_exposure(fig: Any, tx: Any, summary: dict) -> str:
    t_in = _need(_float_col(tx, "t_response_s"), "t_response_s")
    t_out = _need(_float_col(tx, "t_settled_s"), "t_settled_s")
    amount = _need(_col(tx, "amount_minor"), "amount_minor")
    approved = _need(_col(tx, "approved"), "approved").astype(bool)
    iss = _need(_coded(tx, "issuer"), "issuer")
    codes, names = iss
    times, level = metrics.exposure_curve(t_in, t_out, amount, approved)
    if len(times) == 0:
        raise _Missing("approved purchases (none)")
    end = float(np.nanmax(np.concatenate([t_in, t_out[~np.isnan(t_out)]])))
    days = max(1.0, float(np.ceil(end / DAY_S + 1e-9)))
    grid = np.linspace(0.0, days * DAY_S, int(days * 24 * 12) + 1)  # every 5 minutes
    div, unit = money_scale(float(level.max()))
    ax = fig.add_subplot()
    colours = _colours(summary.get("participants") or names)
    ax.step(grid / HOUR_S, metrics.sample_step(times, level, grid) / div, where="post",
            color="black", linewidth=1.8, label="all issuers")
    for k, name in enumerate(names):
        sel = codes == k
        if not (sel & approved).any():
            continue
        tk, lk = metrics.exposure_curve(t_in[sel], t_out[sel], amount[sel], approved[sel])
        ax.step(grid / HOUR_S, metrics.sample_step(tk, lk, grid) / div, where="post",
                color=colours.get(name), linewidth=1.0, label=name)
    i = int(np.argmax(level))
    ax.plot([times[i] / HOUR_S], [level[i] / div], marker="o", color="black")
    ax.annotate(f"peak {level[i] / div:,.2f} {unit}", (times[i] / HOUR_S, level[i] / div),
                xytext=(8, -12), textcoords="offset points", fontsize=8)
    _time_axis(ax, days, summary.get("start_date"))
    ax.set_ylabel(f"approved, not yet settled ({unit})")
    ax.set_title("Exposure over the days: value approved but not yet settled, by issuer")
    _legend(ax, "issuer")
    return ("Sum of approved purchase amounts from the authorisation response until their "
            "settlement window settles, sampled every 5 minutes; the dot marks the exact peak.")


PLOTS: tuple[tuple[str, str, str, Callable[[Any, Any, dict], str]], ...] = (
    ("transactions_per_hour", "Purchases per hour", "transactions", plot_transactions_per_hour),
    ("latency", "Authorisation latency", "transactions", plot_latency),
    ("outcomes", "Authorisation outcomes", "transactions", plot_outcomes),
    ("settlement_lag", "Settlement lag", "transactions", plot_settlement_lag),
    ("positions", "Net positions per window", "settlements", plot_positions),
    ("exposure", "Exposure over the days", "transactions", plot_exposure),
)


# --- the page ----------------------------------------------------------------------------


def esc(x: Any) -> str:
    """HTML-escaped text."""
    return html.escape(str(x), quote=True)


def page(title: str, body: str) -> str:
    """A whole self-contained HTML page (no scripts, nothing loaded)."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def _key_table(summary: dict, transactions: metrics.Transactions) -> str:
    values = metrics.key_values(summary, transactions)
    rows = []
    for m in metrics.KEY_METRICS:
        unit = metrics.unit_label(m.unit)
        rows.append(f"<tr><th>{esc(m.label)}{' (' + esc(unit) + ')' if unit else ''}</th>"
                    f"<td class=\"num\">{esc(metrics.fmt_value(values[m.path], m.unit))}</td>"
                    f"<td><code>{esc(m.path)}</code></td></tr>")
    return ("<table><tr><th>figure</th><th>value</th><th>summary.json path</th></tr>\n"
            + "\n".join(rows) + "</table>")


def _windows_table(summary: dict, limit: int = 60) -> str:
    ws = metrics.get_path(summary, "settlement.windows")
    if not isinstance(ws, list) or not ws:
        return "<p class=\"note\">No settlement windows in this run.</p>"
    parts = summary.get("participants") or sorted({p for w in ws for p in (w.get("positions_minor") or {})})
    head = "".join(f"<th>{esc(p)}</th>" for p in parts)
    rows = []
    for w in ws[:limit]:
        pos = w.get("positions_minor") or {}
        cells = "".join(f"<td class=\"num\">{esc(metrics.fmt_value(pos.get(p), 'fen'))}</td>" for p in parts)
        rows.append(f"<tr><td>{esc(w.get('id', '-'))}</td><td>{esc(w.get('status', '-'))}</td>"
                    f"<td class=\"num\">{esc(metrics.fmt_value(w.get('gross_minor'), 'fen'))}</td>"
                    f"<td class=\"num\">{esc(metrics.fmt_value(w.get('net_minor'), 'fen'))}</td>{cells}</tr>")
    more = f"<p class=\"note\">{len(ws) - limit} more window(s) in summary.json.</p>" if len(ws) > limit else ""
    return ("<table><tr><th>window</th><th>status</th><th>gross (CNY)</th><th>net (CNY)</th>"
            f"{head}</tr>\n" + "\n".join(rows) + "</table>" + more)


def build_report(summary: dict, transactions: Any = None, settlements: Any = None) -> str:
    """The HTML of `report.html` for a run's summary and (pyarrow) tables.

    A plot whose columns a table lacks is replaced by a note; nothing here raises for
    missing data.
    """
    tables = {"transactions": transactions, "settlements": settlements}
    name = summary.get("scenario", "run")

    def tx_cols() -> dict[str, np.ndarray] | None:
        try:
            return metrics.transaction_columns(transactions) if transactions is not None else None
        except KeyError:
            return None

    meta = (f"seed {esc(summary.get('seed', '-'))} &middot; mode {esc(summary.get('mode', '-'))} "
            f"&middot; {esc(summary.get('days', '-'))} day(s) from {esc(summary.get('start_date', '-'))} "
            f"&middot; clearing-sim {esc(summary.get('version', '-'))}")
    body = [f"<h1>Run report: {esc(name)}</h1>", f"<p class=\"meta\">{meta}</p>",
            "<h2>Key figures</h2>", _key_table(summary, tx_cols)]
    for key, title, table_name, plot in PLOTS:
        caption: list[str] = []

        def build(fig: Any, plot=plot, table_name=table_name, caption=caption) -> None:
            caption.append(plot(fig, tables[table_name], summary))

        body.append(f"<h2>{esc(title)}</h2>")
        try:
            svg = figure_svg(build, key)
        except _Missing as exc:
            body.append(f"<p class=\"note\">Not available for this run: {esc(exc)} missing.</p>")
            continue
        body.append(f"<figure id=\"{esc(key)}\">\n{svg}\n<figcaption>{esc(caption[0])}</figcaption>\n</figure>")
    body += ["<h2>Settlement windows</h2>", _windows_table(summary)]
    return page(f"clearing-sim report: {name}", "\n".join(body))


def write_report(folder: Path, result: Any) -> Path:
    """Write `report.html` for a `Result` into `folder`; returns its path."""
    path = Path(folder) / "report.html"
    path.write_text(build_report(result.summary, result.transactions, result.settlements), encoding="utf-8")
    return path


def report_from_folder(folder: Path) -> str:
    """The report HTML of an existing run folder (its summary.json and Parquet tables)."""
    import json

    import pyarrow.parquet as pq

    folder = Path(folder)
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    tables = {}
    for name in ("transactions", "settlements"):
        p = folder / f"{name}.parquet"
        tables[name] = pq.read_table(p) if p.exists() else None
    return build_report(summary, tables["transactions"], tables["settlements"])
