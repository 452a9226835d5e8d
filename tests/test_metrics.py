"""Key metrics by dotted path, their fallbacks, the exposure curve and the 95% intervals."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim import metrics


def _summary(**over) -> dict:
    s = {
        "authorisations": {"count": 200, "approved": 150, "stand_in": 10, "latency_ms": {"p99": 12.5}},
        "clearing": {"records_rejected": 3},
        "settlement": {
            "lag_hours": {"p50": 20.0, "p99": 30.0},
            "windows": [
                {"id": "W1", "gross_minor": 1000, "net_minor": 400,
                 "positions_minor": {"A": -400, "B": 300, "N": 100}},
                {"id": "W2", "gross_minor": 500, "net_minor": 100,
                 "positions_minor": {"A": 50, "B": -100, "N": 50}},
            ],
        },
    }
    s.update(over)
    return s


class TestPaths:
    """Dotted paths split into keys and indices, and a missing step reads as None."""

    def test_split(self):
        assert metrics.split_path("issuers[0].host.servers") == ("issuers", 0, "host", "servers")
        assert metrics.split_path("a[1][2].b") == ("a", 1, 2, "b")
        assert metrics.split_path("settlement.windows") == ("settlement", "windows")

    @pytest.mark.parametrize("bad", ["a..b", "a[x]", "a[1", "a[1]b", ""])
    def test_split_refuses_malformed(self, bad):
        with pytest.raises(ValueError):
            metrics.split_path(bad)

    @pytest.mark.parametrize("bad", ["issuers[\u0660].cards", "issuers[\u00b2].cards", "issuers[\uff10].cards"])
    def test_an_index_is_ascii_digits(self, bad):
        # '٠' (Arabic-Indic zero) was read as [0], so a sweep accepted issuers[٠].cards beside
        # issuers[0].cards; '²' passed isdigit() and failed in int(): "invalid literal for int()".
        with pytest.raises(ValueError, match=r"list indices are written \[0\], \[1\]"):
            metrics.split_path(bad)

    def test_get_path(self):
        s = _summary()
        assert metrics.get_path(s, "settlement.windows[1].id") == "W2"
        assert metrics.get_path(s, "settlement.windows[5].id") is None
        assert metrics.get_path(s, "settlement.nothing.here") is None
        assert metrics.get_path(s, "authorisations.count.more") is None


class TestKeyValues:
    """Every key metric has a value or None, the summary's own value wins over a fallback."""

    def test_fallbacks_from_windows_and_counts(self):
        v = metrics.key_values(_summary())
        assert v["authorisations.approval_rate"] == pytest.approx(0.75)
        assert v["authorisations.stand_in_rate"] == pytest.approx(0.05)
        assert v["settlement.liquidity.gross_settled_minor"] == 1500
        assert v["settlement.liquidity.net_settled_minor"] == 500
        assert v["settlement.liquidity.saving"] == pytest.approx(1 - 500 / 1500)
        assert v["settlement.peak_net_debit_minor"] == 400
        assert v["clearing.records_rejected"] == 3
        assert v["settlement.defaulted_participants"] is None  # not modelled yet: missing, not zero
        assert v["settlement.exposure.peak_minor"] is None  # no transactions given

    def test_summary_value_wins(self):
        s = _summary()
        s["settlement"]["liquidity"] = {"gross_settled_minor": 7}
        s["authorisations"]["approval_rate"] = 0.5
        v = metrics.key_values(s)
        assert v["settlement.liquidity.gross_settled_minor"] == 7
        assert v["authorisations.approval_rate"] == 0.5

    def test_per_participant_and_list_figures_reduced(self):
        s = _summary()
        s["settlement"]["peak_net_debit_minor"] = {"A": 900, "B": 0, "N": 0}
        s["settlement"]["defaulted_participants"] = []
        v = metrics.key_values(s)
        assert v["settlement.peak_net_debit_minor"] == 900  # the summary's own figure, not the windows'
        assert v["settlement.defaulted_participants"] == 0
        s["settlement"]["defaulted_participants"] = ["A", "B"]
        assert metrics.key_values(s)["settlement.defaulted_participants"] == 2

    def test_empty_summary_gives_all_none(self):
        v = metrics.key_values({})
        assert list(v) == [m.path for m in metrics.KEY_METRICS]
        assert all(x is None for x in v.values())

    def test_exposure_from_transactions_read_once(self):
        calls = []

        def tx():
            calls.append(1)
            return {"t_response_s": np.array([1.0, 2.0]), "t_settled_s": np.array([5.0, np.nan]),
                    "amount_minor": np.array([10, 20]), "exposed": np.array([True, True])}

        v = metrics.key_values(_summary(), tx)
        assert v["settlement.exposure.peak_minor"] == 30
        assert len(calls) == 1

    def test_flatten_numbers_skips_lists_and_text(self):
        flat = metrics.flatten_numbers({"a": {"b": 1, "c": [1, 2], "d": "x", "e": 2.5, "f": True}})
        assert flat == {"a.b": 1, "a.e": 2.5}


def _brute_exposure(t_in, t_out, amount, approved, at):
    out = []
    for t in at:
        open_ = approved & (t_in <= t) & ~(t_out <= t)
        out.append(int(amount[open_].sum()))
    return np.array(out)


class TestExposureCurve:
    """The exposure step curve equals a brute-force sum of open amounts at every time."""

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 50), st.one_of(st.none(), st.integers(0, 40)),
                              st.integers(1, 10**9), st.booleans()), max_size=40))
    def test_matches_brute_force(self, rows):
        t_in = np.array([r[0] for r in rows], dtype=float)
        t_out = np.array([np.nan if r[1] is None else r[0] + r[1] for r in rows], dtype=float)
        amount = np.array([r[2] for r in rows], dtype=np.int64)
        approved = np.array([r[3] for r in rows], dtype=bool)
        times, level = metrics.exposure_curve(t_in, t_out, amount, approved)
        assert level.dtype == np.int64
        assert np.all(np.diff(times) > 0)
        at = np.arange(-1, 95, 0.5)
        assert np.array_equal(metrics.sample_step(times, level, at),
                              _brute_exposure(t_in, t_out, amount, approved, at))

    def test_exposed_rows_leave_out_in_bank_and_reversed(self):
        """Only approvals switched through the network and not reversed owe a presentment."""
        import pyarrow as pa

        route = pa.DictionaryArray.from_arrays(pa.array([1, 2, 1, 1, 0, None], pa.int8()),
                                               pa.array(["unknown_bin", "network", "in_bank"]))
        approved = pa.array([True, True, True, False, False, True])
        reversed_ = pa.array([False, False, True, False, False, False])
        assert metrics.exposed_rows(approved, route, reversed_).tolist() == [True, False, False, False, False, False]
        # Chunked columns (a table read from Parquet), and a table older than 0.3.1 without the two columns.
        assert metrics.exposed_rows(pa.chunked_array([approved[:2], approved[2:]]),
                                    pa.chunked_array([route]), pa.chunked_array([reversed_])).tolist() == \
            [True, False, False, False, False, False]
        assert metrics.exposed_rows(approved).tolist() == [True, True, True, False, False, True]
        # Each chunk compared by its own dictionary (here in another order), a plain string column by its values.
        other = pa.DictionaryArray.from_arrays(pa.array([0, 1, 0, 0, 2, None], pa.int8()),
                                               pa.array(["network", "in_bank", "unknown_bin"]))
        assert metrics.exposed_rows(pa.chunked_array([approved[:3], approved[3:]]),
                                    pa.chunked_array([route[:3], other[3:]]),
                                    pa.chunked_array([reversed_[:3], reversed_[3:]])).tolist() == \
            [True, False, False, False, False, False]
        assert metrics.exposed_rows(pa.array([True, True]), other[:2], pa.array([False, False])).tolist() == \
            [True, False]
        assert metrics.exposed_rows(approved, route.cast(pa.string()), reversed_).tolist() == \
            [True, False, False, False, False, False]
        table = pa.table({"t_response_s": np.zeros(6), "t_settled_s": np.zeros(6),
                          "amount_minor": np.ones(6, np.int64), "approved": approved, "route": route,
                          "reversed": reversed_})
        assert metrics.transaction_columns(table)["exposed"].tolist() == [True, False, False, False, False, False]

    def test_mismatched_lengths_raise(self):
        with pytest.raises(ValueError):
            metrics.exposure_curve(np.zeros(2), np.zeros(3), np.zeros(2, np.int64), np.ones(2, bool))


class TestStudentT:
    """t(0.975, df) matches published values and the expansion joins the table smoothly."""

    @pytest.mark.parametrize("df, value", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622),
                                           (29, 2.0452), (40, 2.0211), (60, 2.0003), (120, 1.9799),
                                           (1000, 1.9623)])
    def test_published_values(self, df, value):
        assert metrics.t_975(df) == pytest.approx(value, abs=1e-4)

    def test_decreasing_towards_normal(self):
        ts = [metrics.t_975(df) for df in range(1, 500)]
        assert all(a > b for a, b in zip(ts, ts[1:]))
        assert ts[-1] > 1.959963984540054
        assert metrics.t_975(31) == pytest.approx(2.039513, abs=1e-5)

    def test_needs_one_degree_of_freedom(self):
        with pytest.raises(ValueError):
            metrics.t_975(0)


class TestInterval:
    """The 95% interval is mean +- t*s/sqrt(n), contains its mean, and is a point for n=1."""

    @given(st.lists(st.one_of(st.none(), st.floats(-1e12, 1e12)), max_size=30))
    def test_contains_mean(self, xs):
        iv = metrics.interval(xs)
        present = [x for x in xs if x is not None]
        if not present:
            assert iv is None
            return
        assert iv.n == len(present)
        assert iv.lo <= iv.mean <= iv.hi

    def test_formula(self):
        xs = [10.0, 12.0, 11.0, 15.0]
        iv = metrics.interval(xs)
        half = 3.182446 * statistics.stdev(xs) / math.sqrt(4)
        assert iv.mean == pytest.approx(12.0)
        assert (iv.lo, iv.hi) == (pytest.approx(12.0 - half), pytest.approx(12.0 + half))

    def test_one_value_is_a_point(self):
        assert metrics.interval([None, 3]) == metrics.Interval(1, 3.0, 3.0, 3.0)

    def test_equal_values_have_zero_width(self):
        iv = metrics.interval([5, 5, 5])
        assert iv.lo == iv.hi == iv.mean == 5.0


class TestFormatting:
    """Figures for people: CNY from fen, percent from rates, '-' for missing."""

    def test_formats(self):
        assert metrics.fmt_value(123456, "fen") == "1,234.56"
        assert metrics.fmt_value(0.98765, "rate") == "98.765%"
        assert metrics.fmt_value(None, "ms") == "-"
        assert metrics.fmt_value(3, "count") == "3"

    def test_integer_fen_exact_beyond_a_float(self):
        """Integer fen print to the fen at any size; a float is exact only below 2^53."""
        assert metrics.fmt_value(-(2**62) - 7, "fen") == "-46,116,860,184,273,879.11"
        assert metrics.fmt_value(2**53 + 1, "fen") == "90,071,992,547,409.93"
        assert metrics.fmt_value(-5, "fen") == "-0.05"
        assert metrics.fmt_value(1234.5, "fen") == "12.35"  # a mean over replications stays a float
