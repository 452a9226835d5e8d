"""Clearing record ids and helpers: ARNs, approval codes, PANs, the ARN index, file damage."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from clearing_sim import ipm
from clearing_sim.model import clearing_data as cd

HEADER = ipm.FileHeader(sender_id=4, receiver_id=cd.NETWORK_PROCESSOR_ID, business_date=dt.date(2026, 11, 2),
                        file_sequence=1)


def small_batch(n: int, seed: int = 1) -> ipm.RecordBatch:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 10**9, n)
    return ipm.RecordBatch(
        mti=np.full(n, 1240), function_code=np.full(n, 200), pan=cd.pan_bytes(3796010000000000 + ids),
        processing_code=np.zeros(n, np.int64), amount_minor=rng.integers(1, 10**7, n), currency=np.full(n, 156),
        local_time=np.full(n, 261102101010), mcc=np.full(n, 5411),
        arn=cd.make_arn(np.full(n, 4), np.full(n, np.datetime64("2026-11-02")), ids),
        auth_code=cd.approval_code(ids), reason_code=np.zeros(n, np.int64), originator_id=np.full(n, 4),
        destination_id=np.full(n, 1),
    )


class TestApprovalCode:
    """An approval code stands for exactly one purchase id modulo 36**6, and back."""

    @given(st.lists(st.integers(0, 10**12), min_size=1, max_size=50))
    def test_round_trip_modulo(self, ids: list[int]) -> None:
        ids_a = np.array(ids, dtype=np.int64)
        codes = cd.approval_code(ids_a)
        assert all(len(c) == 6 and c.isalnum() and c.upper() == c for c in codes.tolist())
        assert np.array_equal(cd.approval_residue(codes), ids_a % 36**6)

    def test_distinct_below_the_modulus(self) -> None:
        ids = np.arange(0, 36**6, 36**6 // 200_000)
        assert len(np.unique(cd.approval_code(ids))) == len(ids)

    def test_candidates_cover_every_wrap(self) -> None:
        ids = np.array([5, 36**6 + 5, 2 * 36**6 + 5])
        cands = cd.approval_candidates(cd.approval_code(ids[:1]), 3 * 36**6)
        assert [int(c[0]) for c in cands] == ids.tolist() + [-1]

    def test_not_a_code(self) -> None:
        assert cd.approval_residue(np.array([b"abc123", b"A-B   "], dtype="S6")).tolist() == [-1, -1]

    @settings(max_examples=300)
    @example([b"000000", b"00009J", b"ZZZZZZ", b"ZZZZZ", b"", b"0\x0000000"])
    @given(st.lists(st.binary(max_size=6).map(lambda b: b.translate(_CODE_BYTES)), max_size=30))
    def test_residue_as_the_numpy_version(self, raw: list[bytes]) -> None:
        """The compiled residue reads every DE 38 as the numpy version did (codes, short ones, other bytes)."""
        code = np.array(raw, dtype="S6")
        got = cd.approval_residue(code)
        assert got.dtype == np.int64 and np.array_equal(got, _approval_residue_numpy(code))


    @settings(max_examples=300)
    @example([0, 1, 36**6 - 1, 36**6, -1, -(36**6), 2**63 - 1, -(2**63)])
    @given(st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(0, 10**9), max_size=30))
    def test_code_as_the_numpy_version(self, ids: list[int]) -> None:
        """The compiled codes are the numpy version's, for every int64 id."""
        a = np.array(ids, dtype=np.int64)
        got = cd.approval_code(a)
        assert got.dtype == np.dtype("S6") and np.array_equal(got, _approval_code_numpy(a))


def _approval_code_numpy(txn_id: np.ndarray) -> np.ndarray:
    """`clearing_data.approval_code` before it was compiled, kept as the reference."""
    v = (np.asarray(txn_id, dtype=np.int64) % cd._CODE_MOD * cd._CODE_MUL + cd._CODE_ADD) % cd._CODE_MOD
    out = np.empty((len(v), 6), np.uint8)
    for j in range(6):
        v, r = np.divmod(v, 36)
        out[:, 5 - j] = cd._ALPHABET[r]
    return cd.as_bytes_column(out)


# Bytes folded mostly onto 0-9 A-Z, with NUL and a few others.
_CODE_BYTES = bytes(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[b % 36] if b < 216 else (0, 47, 97, 64, 255)[b % 5]
                    for b in range(256))


def _approval_residue_numpy(code: np.ndarray) -> np.ndarray:
    """`clearing_data.approval_residue` before it was compiled, kept as the reference."""
    mat = np.frombuffer(np.ascontiguousarray(code, dtype="S6").tobytes(), np.uint8).reshape(-1, 6)
    values = cd._VALUE_OF[mat]
    ok = (values >= 0).all(axis=1)
    v = np.zeros(len(mat), dtype=np.int64)
    for j in range(6):
        v = v * 36 + np.maximum(values[:, j], 0)
    return np.where(ok, (v - cd._CODE_ADD) % cd._CODE_MOD * cd._CODE_INV % cd._CODE_MOD, -1)


class TestArn:
    """ARNs are 23 digits with a valid Luhn check digit and unique per record."""

    @given(st.integers(0, cd.MAX_SEQUENCE), st.integers(0, 10**6 - 1),
           st.dates(dt.date(2000, 1, 1), dt.date(2068, 12, 31)))
    def test_layout(self, seq: int, pid: int, day: dt.date) -> None:
        arn = cd.make_arn(np.array([pid]), np.array([day], dtype="M8[D]"), np.array([seq]))[0].decode()
        assert len(arn) == 23 and arn.isdigit() and arn[0] == "7"
        assert arn[1:7] == f"{pid:06d}" and arn[11:22] == f"{seq:011d}"
        assert arn[7:11] == f"{day.year % 10}{day.timetuple().tm_yday:03d}"
        assert cd.arn_is_valid(np.array([arn.encode()]))[0]

    @given(st.integers(0, 22), st.integers(1, 9))
    def test_a_changed_digit_breaks_the_check(self, pos: int, delta: int) -> None:
        arn = bytearray(cd.make_arn(np.array([7]), np.array(["2026-11-02"], dtype="M8[D]"), np.array([123456]))[0])
        arn[pos] = 48 + (arn[pos] - 48 + delta) % 10
        assert not cd.arn_is_valid(np.array([bytes(arn)]))[0]

    def test_refund_arns_differ_from_purchase_arns(self) -> None:
        ids = np.arange(1000)
        day = np.full(1000, np.datetime64("2026-11-02"))
        a = cd.make_arn(np.ones(1000, int), day, ids)
        b = cd.make_arn(np.ones(1000, int), day, ids + cd.REFUND_SEQUENCE_OFFSET)
        assert len(set(a.tolist()) | set(b.tolist())) == 2000

    def test_sequence_out_of_range_is_refused(self) -> None:
        with pytest.raises(ValueError):
            cd.make_arn(np.array([1]), np.array(["2026-11-02"], dtype="M8[D]"), np.array([10**11]))


class TestPan:
    """PANs go to DE 2 digits and back; anything else reads as -1."""

    @given(st.lists(st.integers(10**15, 10**16 - 1), max_size=20))
    def test_round_trip(self, pans: list[int]) -> None:
        a = np.array(pans, dtype=np.int64)
        assert np.array_equal(cd.pan_values(cd.pan_bytes(a)), a)

    def test_bad_pans(self) -> None:
        assert cd.pan_values(np.array([b"12a4", b"", b"1" * 19], dtype="S19")).tolist() == [-1, -1, -1]

    @settings(max_examples=300)
    @example([b"1" * 19, b"9" * 18, b"12\x0034", b"\x0012", b"0", b""])
    @given(st.lists(st.binary(max_size=19).map(lambda b: b.translate(_FEW_BYTES)), max_size=30))
    def test_as_the_numpy_version(self, raw: list[bytes]) -> None:
        """The compiled parse reads every DE 2 as the whole-matrix numpy one did (digits, NULs inside, other bytes)."""
        pan = np.array(raw, dtype="S19")
        got = cd.pan_values(pan)
        assert got.dtype == np.int64 and np.array_equal(got, _pan_values_numpy(pan))


class TestDigitMatrix:
    """The compiled digit writer gives the bytes the whole-column numpy one gave, for every int64 and width."""

    @settings(max_examples=300)
    @example([0, 1, 10**15, 10**16 - 1, 2**63 - 1, -1, -(2**63)], 16)
    @example([2**63 - 1, 10**18, -7], 22)
    @given(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(0, 10**16)), max_size=30),
           st.integers(1, 22))
    def test_as_the_numpy_version(self, values: list[int], width: int) -> None:
        v = np.array(values, dtype=np.int64)
        got = cd.digit_matrix(v, width)
        assert got.dtype == np.uint8 and np.array_equal(got, _digit_matrix_numpy(v, width))


class TestRecordFactory:
    """A record carries its purchase's DE 12 (worked out once per purchase, looked up per record)."""

    def test_local_time_is_the_purchase_arrival_to_the_second(self) -> None:
        t = np.array([0.0, 59.9, 86_399.5, 3 * 86_400.0 + 1.25])
        n = len(t)
        txn = {"t_arrival_s": t, "txn_id": np.arange(n, dtype=np.int64), "acquirer": np.zeros(n, np.int64),
               "issuer": np.zeros(n, np.int64), "amount_minor": np.full(n, 100, np.int64),
               "mcc": np.full(n, 5411, np.int64)}
        start = dt.date(2026, 11, 2)
        factory = cd.RecordFactory(start, txn, np.full(n, 3796010000000001, np.int64), np.zeros(1, np.int64),
                                   np.zeros(1, np.int64), 4837)
        idx = np.array([3, 1, 1, 0])
        cols = factory.columns(cd.KIND_FIRST_PRESENTMENT, idx)
        want = ipm.local_time_from_sim_seconds(np.floor(t[idx]).astype(np.int64), start)  # as before
        assert cols["local_time"].dtype == want.dtype and np.array_equal(cols["local_time"], want)


def _digit_matrix_numpy(values: np.ndarray, width: int) -> np.ndarray:
    """`clearing_data.digit_matrix` before it was compiled, kept as the reference."""
    v = np.asarray(values, dtype=np.int64)
    out = np.empty((len(v), width), np.uint8)
    for j in range(width):
        out[:, width - 1 - j] = 48 + (v // 10 ** np.int64(min(j, 18))) % 10 if j < 19 else 48
    return out


# Bytes folded onto digits, NUL and a few others, so rows are often (nearly) valid PANs.
_FEW_BYTES = bytes(48 + b % 10 if b < 200 else (0, 47, 58, 97, 255)[b % 5] for b in range(256))


def _pan_values_numpy(pan: np.ndarray) -> np.ndarray:
    """`clearing_data.pan_values` before it was compiled, kept as the reference."""
    mat = np.frombuffer(np.ascontiguousarray(pan, dtype="S19").tobytes(), np.uint8).reshape(-1, 19)
    lens = (mat != 0).sum(axis=1)
    digit = mat.astype(np.int64) - 48
    inside = np.arange(19) < lens[:, None]
    ok = ((digit >= 0) & (digit <= 9) | ~inside).all(axis=1) & (lens >= 1) & (lens <= 18)
    value = np.zeros(len(mat), dtype=np.int64)
    for j in range(18):
        value = np.where(inside[:, j], value * 10 + np.where(ok, digit[:, j], 0), value)
    return np.where(ok, value, -1)


class TestArnIndex:
    """The ARN index answers like a dict of every ARN added, however the runs merged."""

    @given(st.lists(st.lists(st.integers(0, 500), max_size=40), max_size=12), st.lists(st.integers(0, 600)))
    @settings(max_examples=60, deadline=None)
    def test_matches_a_dict(self, chunks: list[list[int]], probes: list[int]) -> None:
        day = np.datetime64("2026-11-02")
        index, seen = cd.ArnIndex(), {}
        for chunk in chunks:
            chunk = list(dict.fromkeys(c for c in chunk if c not in seen))  # the network adds each ARN once
            arn = cd.make_arn(np.ones(len(chunk), int), np.full(len(chunk), day), np.array(chunk, dtype=np.int64))
            index.add(arn, np.array(chunk, dtype=np.int64) * 10)
            seen.update({c: c * 10 for c in chunk})
        assert index.size == len(seen)
        probe = cd.make_arn(np.ones(len(probes), int), np.full(len(probes), day), np.array(probes, dtype=np.int64))
        assert index.lookup(probe).tolist() == [seen.get(p, -1) for p in probes]
        assert len(index._runs) <= max(1, int(np.log2(max(index.size, 1))) + 2)


class TestFileDamage:
    """Each injected file fault makes `ipm.read_file` reject the file with its own reason."""

    @pytest.mark.parametrize("blocked", [False, True])
    @pytest.mark.parametrize(("how", "reason"), [
        ("corrupt_trailer", "AMOUNT_MISMATCH"), ("trailer_count", "COUNT_MISMATCH"),
        ("trailer_file_id", "FILE_ID_MISMATCH"), ("truncated", "TRUNCATED"),
    ])
    @pytest.mark.parametrize("n", [1, 700])
    def test_reason(self, blocked: bool, how: str, reason: str, n: int) -> None:
        data = ipm.write_file(HEADER, small_batch(n), blocked=blocked)
        assert ipm.read_file(data).trailer.message_count == n + 2
        with pytest.raises(ipm.ClearingFileError) as info:
            ipm.read_file(cd.damage_file(data, HEADER.file_id, blocked, how))
        assert info.value.reason_code == reason

    @pytest.mark.parametrize("blocked", [False, True])
    @pytest.mark.parametrize("first", ["trailer_file_id", "corrupt_trailer"])
    @pytest.mark.parametrize("then", ["trailer_file_id", "corrupt_trailer", "trailer_count"])
    def test_two_trailer_faults_on_one_file(self, blocked: bool, first: str, then: str) -> None:
        # a trailer fault after trailer_file_id found no trailer (ValueError: the run stopped, exit 1)
        data = ipm.write_file(HEADER, small_batch(50), blocked=blocked)
        bad = cd.damage_file(cd.damage_file(data, HEADER.file_id, blocked, first), HEADER.file_id, blocked, then)
        with pytest.raises(ipm.ClearingFileError) as info:
            ipm.read_file(bad)
        assert info.value.reason_code in ("FILE_ID_MISMATCH", "AMOUNT_MISMATCH", "COUNT_MISMATCH")

    def test_only_the_trailer_changes(self) -> None:
        data = ipm.write_file(HEADER, small_batch(20))
        bad = cd.damage_file(data, HEADER.file_id, False, "corrupt_trailer")
        differ = [i for i, (a, b) in enumerate(zip(data, bad)) if a != b]
        assert len(bad) == len(data) and differ and min(differ) > len(data) - 120


class TestRecordKinds:
    """A batch read from a file tells the four record kinds apart by MTI, function code and processing code."""

    def test_kinds(self) -> None:
        b = small_batch(4)
        kinds = ipm.RecordBatch(
            mti=[1240, 1240, 1442, 1240], function_code=[200, 200, 450, 205], pan=b.pan,
            processing_code=[0, 200000, 0, 0], amount_minor=b.amount_minor, currency=b.currency,
            local_time=b.local_time, mcc=b.mcc, arn=b.arn, auth_code=b.auth_code, reason_code=[0, 0, 4853, 2700],
            originator_id=b.originator_id, destination_id=b.destination_id,
        )
        assert cd.record_kind(kinds).tolist() == [cd.KIND_FIRST_PRESENTMENT, cd.KIND_REFUND, cd.KIND_CHARGEBACK,
                                                  cd.KIND_SECOND_PRESENTMENT]


class TestFaultRows:
    """The records a fault damages depend only on its key and the purchase ids."""

    def test_stable_and_bounded(self) -> None:
        ids = np.arange(100, 200)
        a = cd.fault_rows(7, ids, 5)
        assert len(a) == 5 and np.array_equal(a, cd.fault_rows(7, ids, 5))
        shuffled = np.random.default_rng(0).permutation(ids)
        assert set(shuffled[cd.fault_rows(7, shuffled, 5)]) == set(ids[a])
        assert len(cd.fault_rows(7, ids[:3], 10)) == 3


class TestArnsAsStreamedRunsMakeThem:
    """A streamed run makes an acquirer file's ARNs from its spilled records and hands them to
    Arrow without a copy; the values are make_arn's, the column pyarrow's."""

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.floats(0.0, 40 * 86_400.0), min_size=0, max_size=50),
           st.integers(0, 10**7), st.integers(0, 10**11 - 10**4))
    def test_record_arns_are_make_arn(self, times, pid, first_seq) -> None:
        from clearing_sim.model.stream_clearing import SPILL_DTYPE, record_arns
        from pathlib import Path

        from clearing_sim.scenario import load_scenario

        sc = load_scenario(Path(__file__).resolve().parent.parent / "scenarios" / "intraday_windows.yaml")
        rec = np.zeros(len(times), dtype=SPILL_DTYPE)
        rec["t_arrival_s"] = times
        rec["txn_id"] = first_seq + np.arange(len(times))
        party = sc.institution_index(sc.acquirers[0].institution)
        dates = cd.sim_dates(dt.date.fromisoformat(sc.run.start_date), rec["t_arrival_s"])
        expect = cd.make_arn(np.full(len(rec), cd.processor_id(party), dtype=np.int64), dates, rec["txn_id"])
        got = record_arns(sc, 0, rec)
        assert got.dtype == expect.dtype and np.array_equal(got, expect)
        assert cd.arn_is_valid(got).all()

    def test_negative_sequences_refused(self) -> None:
        with pytest.raises(ValueError, match="sequence"):
            cd.make_arn(1, np.array(["2026-01-01"], dtype="M8[D]"), np.array([-1]))

    @settings(max_examples=100, deadline=None)
    @given(st.integers(1, 30), st.lists(st.binary(min_size=0, max_size=30), max_size=20))
    def test_string_column_is_pyarrows(self, width, values) -> None:
        import pyarrow as pa

        from clearing_sim.clearing_results import string_column

        a = np.array([v[:width] for v in values], dtype=f"S{width}")
        try:
            expect = pa.array(a).cast(pa.string())
        except pa.ArrowInvalid:
            with pytest.raises(pa.ArrowInvalid):
                string_column(a)
            return
        assert string_column(a).equals(expect)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["CUP", "ICBC", "file-1", "file-1", "\u4e2d"]), min_size=0, max_size=6), st.data())
def test_dict_array_names_each_index_and_nulls_minus_one(values, data) -> None:
    """Repeated names share one dictionary entry; -1 is null; with or without nulls in the
    column, the same strings come back."""
    from clearing_sim.clearing_results import dict_array

    index = np.array(data.draw(st.lists(st.integers(-1, len(values) - 1), max_size=30)), dtype=np.int64)
    a = dict_array(values, index)
    assert a.to_pylist() == [values[i] if i >= 0 else None for i in index.tolist()]
    assert len(set(a.dictionary.to_pylist())) == len(a.dictionary)
    assert a.null_count == int((index < 0).sum())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dates(dt.date(1995, 1, 1), dt.date(2068, 12, 31)), min_size=0, max_size=40), st.integers(0, 3))
def test_yddd_by_day_lookup_is_the_calendar(days, spread) -> None:
    """Codes looked up per day of the span equal the calendar's, date by date (across years,
    leap days, a single date, none)."""
    dates = np.array([d + dt.timedelta(days=k % (spread + 1)) for k, d in enumerate(days[:1] * 30 + days)],
                     dtype="M8[D]")
    expect = [d.year % 10 * 1000 + d.timetuple().tm_yday for d in dates.astype(dt.date).tolist()]
    assert cd.yddd(dates).tolist() == expect


def _old_dict_array(values: list[str], index: np.ndarray) -> pa.DictionaryArray:
    """clearing_results.dict_array before its indices were looked up by a compiled pass (reference)."""
    unique, inverse = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    lut = inverse.reshape(-1).astype(np.int32)
    index = np.asarray(index)
    if len(index) and len(values) and index.min() >= 0:
        idx = pa.array(lut[index])
    else:
        index = index.astype(np.int64)
        remapped = np.where(index >= 0, lut[np.maximum(index, 0)] if len(values) else -1, -1)
        idx = pa.array(remapped.astype(np.int32), mask=remapped < 0)
    return pa.DictionaryArray.from_arrays(idx, pa.array(unique.tolist(), pa.string()))


def _old_results_dict_array(values: list[str], index: np.ndarray) -> pa.DictionaryArray:
    """results._dict_array before the same change (reference)."""
    idx = pa.array(np.asarray(index, dtype=np.int32), mask=np.asarray(index) < 0)
    return pa.DictionaryArray.from_arrays(idx, pa.array(values, pa.string()))


def _ipc_bytes(array: pa.Array) -> bytes:
    table = pa.table({"c": array})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _assert_same_array(new: pa.DictionaryArray, old: pa.DictionaryArray) -> None:
    """Same values, nulls, dictionary, buffers (a null row's stored index too) and IPC bytes."""
    assert new.type == old.type and new.null_count == old.null_count
    assert new.dictionary.equals(old.dictionary)
    nb, ob = new.indices.buffers(), old.indices.buffers()
    assert (nb[0] is None) == (ob[0] is None)
    if nb[0] is not None:  # the validity bits of the rows (and the padding bits clear)
        assert nb[0].to_pybytes() == ob[0].to_pybytes()
    assert nb[1].to_pybytes() == ob[1].to_pybytes()
    assert _ipc_bytes(new) == _ipc_bytes(old)


class TestDictionaryIndicesSameAsNumpy:
    """`clearing_results.dictionary_indices` (one compiled pass) gives the dictionary columns
    the numpy code gave, buffer for buffer, in both the tables' builders that use it."""

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.sampled_from(["CUP", "ICBC", "file-1", "file-1", "\u4e2d", "b", "a"]), min_size=0,
                    max_size=8),
           st.data(), st.sampled_from([np.int8, np.int16, np.int32, np.int64]))
    def test_hypothesis_indices(self, values, data, dtype) -> None:
        from clearing_sim.clearing_results import dict_array
        from clearing_sim.results import _dict_array

        index = np.array(data.draw(st.lists(st.integers(-1, len(values) - 1), max_size=70)), dtype=dtype)
        _assert_same_array(dict_array(values, index), _old_dict_array(values, index))
        unique_values = list(dict.fromkeys(values))
        index = np.minimum(index, len(unique_values) - 1).astype(dtype)
        _assert_same_array(_dict_array(unique_values, index), _old_results_dict_array(unique_values, index))

    def test_scenario_columns(self) -> None:
        """Every dictionary column of a shipped scenario's tables, built both ways."""
        import clearing_sim
        from clearing_sim.clearing_results import dict_array
        from clearing_sim.results import _dict_array

        res = clearing_sim.run(clearing_sim.load_scenario("scenarios/corrupt_file.yaml"), mode="fast")
        checked = 0
        for table, build, old in ((res.transactions, _dict_array, _old_results_dict_array),
                                  (res.clearing_records, dict_array, _old_dict_array)):
            for name in table.column_names:
                col = table.column(name).combine_chunks()
                if not pa.types.is_dictionary(col.type):
                    continue
                index = col.indices.to_numpy(zero_copy_only=False)
                index = np.where(col.is_null().to_numpy(zero_copy_only=False), -1, index).astype(np.int64)
                values = col.dictionary.to_pylist()
                _assert_same_array(build(values, index), old(values, index))
                checked += 1
        assert checked >= 10

    def test_index_past_the_values_raises(self) -> None:
        from clearing_sim.clearing_results import dict_array

        with pytest.raises(IndexError):
            dict_array(["a", "b"], np.array([0, 2]))
