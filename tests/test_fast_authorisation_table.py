"""Fast mode's live table: appending into buffers and compacting in place keeps exactly the rows the
old concatenate-and-mask table kept, column for column, dtype for dtype."""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearing_sim.errors import InvariantError
from clearing_sim.model.authorisation import HOST_ANSWERED, HOST_LATE, ISSUER_UNAVAILABLE, REVERSAL
from clearing_sim.model.fast_authorisation import _STATE, _IssuerStream, _Messages, _Table, _table_dtypes


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

    def test_an_empty_table_adopts_rows_given_away_and_goes_on_like_the_reference(self) -> None:
        """Rows appended with adopt=True to an empty table become its buffers (no copy) where their
        dtype fits, the rest are copied or filled, and appends and keeps after it match the reference."""
        rng = np.random.default_rng(4)
        table, ref = _Table(DTYPES, FILLS), _ReferenceTable(DTYPES, FILLS)
        rows = new_rows(rng, 0, 5000)
        rows["card"] = rows["card"].astype(np.int32)  # another dtype than the table's: copied
        ref.append({k: v.copy() for k, v in rows.items()})
        table.append(rows, adopt=True)
        assert_same(table, ref)
        assert np.shares_memory(table["t_host_in"], rows["t_host_in"])
        assert not np.shares_memory(table["card"], rows["card"]) and table["card"].dtype == np.int64
        table.keep(np.arange(0, 5000, 3))
        ref.keep(np.arange(5000) % 3 == 0)
        more = new_rows(rng, 5000, 4000)
        table.append(more, adopt=True)  # not empty: copied behind the live rows
        ref.append(more)
        assert_same(table, ref)
        assert not np.shares_memory(table["t_host_in"], more["t_host_in"])

    def test_rows_not_given_away_are_never_adopted(self) -> None:
        rng = np.random.default_rng(5)
        table = _Table(DTYPES, FILLS)
        rows = new_rows(rng, 0, 5000)
        table.append(rows)
        assert not any(np.shares_memory(table[name], v) for name, v in rows.items())

    def test_an_empty_table_gives_back_its_buffers_and_a_live_one_refuses(self) -> None:
        rng = np.random.default_rng(3)
        table = _Table(DTYPES, FILLS)
        table.append(new_rows(rng, 0, 50_000))
        with pytest.raises(InvariantError, match="cannot be freed"):
            table.free()
        table.keep(np.empty(0, dtype=np.int64))
        table.free()
        assert table.capacity == _Table.MIN_CAPACITY and len(table) == 0


def _ref_answers(tb: _Table) -> None:
    """_IssuerStream._answers as numpy array code, before answers_step."""
    done = ~np.isnan(tb["t_end"])
    new = np.flatnonzero(done & ~tb["answered"])
    if len(new):
        t_end = tb["t_end"][new]
        t_answer = t_end + tb["h3"][new]
        in_bank = tb["in_bank"][new]
        network = tb["network"][new]
        in_time = in_bank | (t_answer <= tb["deadline"][new])
        tb["in_time"][new] = in_time
        tb["out_host_outcome"][new] = np.where(in_time, HOST_ANSWERED, HOST_LATE)
        tb["out_t_host_end_s"][new] = t_end
        lost_in_flight = in_time & network & (t_answer > tb["next_restart"][new])
        tb["lost_in_flight"][new] = lost_in_flight
        net = new[in_time & network & ~lost_in_flight]
        net_answer = t_end[in_time & network & ~lost_in_flight] + tb["h3"][net]
        tb["out_t_switch_response_s"][net] = net_answer
        tb["out_t_response_s"][net] = net_answer + tb["h4"][net]
        bank = new[in_time & in_bank]
        tb["out_t_response_s"][bank] = tb["t_end"][bank] + tb["h4"][bank]
        tb["answered"][new] = True
    lost = np.flatnonzero((tb["host_lost"] != 0) & ~tb["answered"])
    if len(lost):
        tb["out_host_outcome"][lost] = tb["host_lost"][lost]
        bank = lost[tb["in_bank"][lost]]
        tb["out_response_code"][bank] = ISSUER_UNAVAILABLE
        tb["out_t_response_s"][bank] = tb["t_lost"][bank] + tb["h4"][bank]
        tb["answered"][lost] = True
    started = ~np.isnan(tb["t_start"])
    tb["out_t_host_start_s"][started] = tb["t_start"][started]


class TestAnswersPass:
    """The compiled answers pass writes what the numpy pass wrote, column for column, bit for bit."""

    @settings(max_examples=80, deadline=None)
    @given(seed=st.integers(0, 2**32 - 1), m=st.integers(0, 400))
    def test_same_columns(self, seed: int, m: int) -> None:
        rng = np.random.default_rng(seed)
        tables = [_Table(DTYPES, FILLS), _Table(DTYPES, FILLS)]
        rows = new_rows(rng, 0, m)
        for table in tables:
            table.append(rows)
        # Host state as the host pass leaves it: some ends, losses and starts, some rows answered
        # before; answers exactly at the deadline or at the next restart.
        t_start = np.where(rng.random(m) < 0.7, rng.random(m) * 100, np.nan)
        t_end = np.where(rng.random(m) < 0.6, t_start + rng.random(m), np.nan)
        t_answer = t_end + rows["h3"]
        deadline = np.where(rng.random(m) < 0.2, t_answer, rng.random(m) * 120)
        restart = np.where(rng.random(m) < 0.2, t_answer, np.where(rng.random(m) < 0.5, np.inf, rng.random(m) * 120))
        state = {"t_start": t_start, "t_end": t_end, "t_lost": rng.random(m) * 100, "deadline": deadline,
                 "next_restart": restart, "host_lost": np.where(rng.random(m) < 0.3, rng.integers(2, 5, m), 0),
                 "answered": rng.random(m) < 0.3, "in_time": rng.random(m) < 0.5, "lost_in_flight": rng.random(m) < 0.1}
        for table in tables:
            for name, v in state.items():
                table[name][:] = v
        _IssuerStream._answers(types.SimpleNamespace(table=tables[0]))
        _ref_answers(tables[1])
        for name in DTYPES:
            got, want = tables[0][name], tables[1][name]
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), name


def _ref_reversals(stream, W: float) -> None:
    """_IssuerStream._reversals as numpy array code, before reversals_step."""
    tb = stream.table
    rows = np.flatnonzero(~tb["reversal_done"] & (tb["in_bank"] | (tb["acq_deadline"] < W)))
    if len(rows) == 0:
        return
    tb["reversal_done"][rows] = True
    rows = rows[~tb["in_bank"][rows]]
    lost = tb["out_lost_in_switch"][rows] | tb["lost_in_flight"][rows]
    resp = tb["out_t_response_s"][rows]
    rev = rows[lost | np.isnan(resp) | (resp > tb["acq_deadline"][rows])]
    tb["out_reversed"][rev] = True
    tb["out_t_reversal_s"][rev] = tb["t_rev"][rev]
    tb["messages_open"][rev] += 1
    stream.queued[REVERSAL] += len(rev)
    _Messages._add(stream.msg.q, {"t": tb["t_rev"][rev], "kind": np.full(len(rev), REVERSAL, np.int8),
                                  "key": tb["acq_deadline"][rev], "gid": tb["gid"][rev]})


class TestReversalsPass:
    """The compiled reversals pass writes what the numpy pass wrote and queues the same messages."""

    @settings(max_examples=80, deadline=None)
    @given(seed=st.integers(0, 2**32 - 1), m=st.integers(0, 400), calls=st.integers(1, 3))
    def test_same_columns_and_queue(self, seed: int, m: int, calls: int) -> None:
        rng = np.random.default_rng(seed)
        streams = [types.SimpleNamespace(table=_Table(DTYPES, FILLS), queued=[0, 0], msg=_Messages())
                   for _ in range(2)]
        rows = new_rows(rng, 0, m)
        rows["out_t_response_s"][rng.random(m) < 0.3] = np.nan
        rows["t_rev"] = rows["acq_deadline"] + rng.random(m)
        at_deadline = rng.random(m) < 0.2  # answers exactly at the acquirer's deadline
        rows["out_t_response_s"][at_deadline] = rows["acq_deadline"][at_deadline]
        state = {"reversal_done": rng.random(m) < 0.3, "lost_in_flight": rng.random(m) < 0.1,
                 "messages_open": rng.integers(0, 3, m)}
        for s in streams:
            s.table.append(rows)
            for name, v in state.items():
                s.table[name][:] = v
        deadlines = rows["acq_deadline"][~np.isnan(rows["acq_deadline"])]
        ws = [rng.choice(deadlines) if len(deadlines) and rng.random() < 0.5 else rng.normal() for _ in range(calls)]
        for W in sorted(ws):  # watermarks exactly at a deadline too
            _IssuerStream._reversals(streams[0], float(W))
            _ref_reversals(streams[1], float(W))
        got, want = streams
        for name in DTYPES:
            assert got.table[name].tobytes() == want.table[name].tobytes(), name
        assert got.queued == want.queued
        for name, v in want.msg.q.items():
            assert got.msg.q[name].dtype == v.dtype and got.msg.q[name].tobytes() == v.tobytes(), name
