"""Fast mode's live table: appending into buffers and compacting in place keeps exactly the rows the
old concatenate-and-mask table kept, column for column, dtype for dtype."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim.errors import InvariantError
from clearing_sim.model.fast_authorisation import _STATE, _Table, _table_dtypes


class _ReferenceTable:
    """The table as it was: every column concatenated on append and masked on keep."""

    def __init__(self, dtypes, fills):
        self.cols = {name: np.empty(0, dtype=d) for name, d in dtypes.items()}
        self.fills = fills

    def append(self, new):
        m = len(new["gid"])
        full = {name: new[name] if name in new else np.full(m, self.fills[name], dtype=c.dtype)
                for name, c in self.cols.items()}
        self.cols = {name: np.concatenate([c, full[name]]) for name, c in self.cols.items()}

    def keep(self, mask):
        self.cols = {name: c[mask] for name, c in self.cols.items()}


DTYPES = _table_dtypes()
FILLS = {name: fill for name, (_, fill) in _STATE.items()}


def new_rows(rng: np.random.Generator, first_gid: int, m: int) -> dict[str, np.ndarray]:
    """`m` rows with every input and outcome column drawn at random (state columns left to the fills)."""
    rows = {}
    for name, d in DTYPES.items():
        if name in FILLS:
            continue
        d = np.dtype(d)
        if d.kind == "f":
            v = rng.normal(size=m)
            v[rng.random(m) < 0.2] = np.nan
            rows[name] = v.astype(d)
        elif d.kind == "b":
            rows[name] = rng.random(m) < 0.5
        else:
            rows[name] = rng.integers(-100, 100, size=m).astype(d)
    rows["gid"] = first_gid + np.arange(m, dtype=np.int64)
    return rows


def assert_same(table: _Table, ref: _ReferenceTable) -> None:
    assert len(table) == len(ref.cols["gid"])
    assert table.capacity >= len(table)
    for name, want in ref.cols.items():
        got = table[name]
        assert got.dtype == want.dtype, name
        assert np.array_equal(got, want, equal_nan=got.dtype.kind == "f"), name


class TestBufferedTable:
    @settings(max_examples=60, deadline=None)
    @given(seed=st.integers(0, 2**32 - 1),
           steps=st.lists(st.tuples(st.integers(0, 3000), st.floats(0.0, 1.0)), min_size=1, max_size=12))
    def test_appends_and_keeps_equal_the_concatenating_table(self, seed, steps) -> None:
        """Any sequence of appends (some growing the buffers), writes and keeps gives the reference's columns."""
        rng = np.random.default_rng(seed)
        table, ref = _Table(DTYPES, FILLS), _ReferenceTable(DTYPES, FILLS)
        gid = 0
        for m, p_keep in steps:
            rows = new_rows(rng, gid, m)
            gid += m
            table.append(rows)
            ref.append(rows)
            assert_same(table, ref)
            # The passes write into the live views: the table must hold what was written.
            for name in ("t_end", "messages_open", "held", "out_response_code"):
                v = rng.normal(size=len(table)) if name == "t_end" else rng.integers(0, 3, size=len(table))
                table[name][:] = v
                ref.cols[name][:] = v
            mask = rng.random(len(table)) < p_keep
            table.keep(np.flatnonzero(mask))
            ref.keep(mask)
            assert_same(table, ref)
            assert table.capacity <= 4 * max(len(table), table.last_append, _Table.MIN_CAPACITY) + 1

    def test_rows_added_come_in_at_their_fill_values_not_old_contents(self) -> None:
        """A state column of new rows is its fill, even where the buffer held a dropped row's value."""
        rng = np.random.default_rng(1)
        table = _Table(DTYPES, FILLS)
        table.append(new_rows(rng, 0, 100))
        table["done_seq"][:] = 7
        table["t_end"][:] = 1.5
        table.keep(np.arange(10))
        table.append(new_rows(rng, 100, 50))
        assert (table["done_seq"][:10] == 7).all() and (table["done_seq"][10:] == -1).all()
        assert np.isnan(table["t_end"][10:]).all()

    def test_the_rows_handed_out_do_not_share_the_buffers(self) -> None:
        """What a gather of the live rows returns stays as it was after the table moves on."""
        rng = np.random.default_rng(2)
        table = _Table(DTYPES, FILLS)
        table.append(new_rows(rng, 0, 200))
        out = table["out_t_response_s"][np.arange(0, 200, 2)]
        before = out.copy()
        table.keep(np.arange(1, 200, 2))
        table.append(new_rows(rng, 200, 5000))
        assert np.array_equal(out, before, equal_nan=True)

    def test_an_empty_table_gives_back_its_buffers_and_a_live_one_refuses(self) -> None:
        rng = np.random.default_rng(3)
        table = _Table(DTYPES, FILLS)
        table.append(new_rows(rng, 0, 50_000))
        with pytest.raises(InvariantError, match="cannot be freed"):
            table.free()
        table.keep(np.empty(0, dtype=np.int64))
        table.free()
        assert table.capacity == _Table.MIN_CAPACITY and len(table) == 0
