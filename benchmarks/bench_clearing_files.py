"""Clearing files (clearing_sim.ipm): records written and read per second.

For each size N the same records are timed against an honest baseline of the
same run:

* ``test_write_framing`` (reference): join N ready-made byte records of the
  very same sizes as the IPM messages, each behind a 4-byte struct-packed
  length, plus the end-of-file record -- the framing cost alone, with every
  message already encoded;
* ``test_write_file``: ``ipm.write_file`` from numpy columns -- encode every
  data element, header, trailer with its control totals, VBS framing;
* ``test_read_framing`` (reference): walk the same VBS bytes with
  ``struct.unpack_from`` and slice out every record -- framing alone, nothing
  decoded;
* ``test_read_file``: ``ipm.read_file`` -- framing, every data element back
  into columns, all validation and the recomputed control totals;
* the ``_blocked`` variants do the same with 1014 blocking (references: the
  unblocked framing, so their ratio includes the blocking cost).

Records are a fixed-seed mix of first presentments, second presentments and
chargebacks.  N = 10^5 is the quick (CI) subset; N = 10^6 is ``full``.
"""

from __future__ import annotations

import datetime as dt
import struct

import numpy as np
import pytest

from clearing_sim import ipm

UNIT = "records"
SEED = 20_240_102

CASES = [
    pytest.param(10**5, id="1e5"),
    pytest.param(10**6, id="1e6", marks=pytest.mark.full),
]

HEADER = ipm.FileHeader(sender_id=3, receiver_id=99, business_date=dt.date(2024, 1, 2), file_sequence=1)
_LENGTH = struct.Struct(">I")
_CACHE: dict[int, tuple[ipm.RecordBatch, bytes, bytes, list[bytes]]] = {}


def batch_of(n: int) -> ipm.RecordBatch:
    rng = np.random.default_rng([SEED, n])
    kind = rng.choice(3, n, p=[0.9, 0.02, 0.08])
    function_code = np.array([200, 205, 450])[kind]
    pan = rng.integers(48, 58, (n, 19), dtype=np.uint8)
    pan[np.arange(19) >= rng.choice([16, 19], n)[:, None]] = 0
    return ipm.RecordBatch(
        mti=np.where(kind == 2, 1442, 1240),
        function_code=function_code,
        pan=pan.view("S19").ravel(),
        processing_code=np.where(rng.random(n) < 0.05, 200000, 0),
        amount_minor=np.exp(rng.uniform(0.0, np.log(1e7), n)).astype(np.int64),
        currency=np.full(n, 156),
        local_time=ipm.local_time_from_sim_seconds(rng.integers(0, 86_400, n), dt.date(2024, 1, 1)),
        mcc=rng.choice([5411, 5812, 5999, 4121], n),
        arn=rng.integers(48, 58, (n, 23), dtype=np.uint8).view("S23").ravel(),
        auth_code=rng.choice(np.array([b"A1B2C3", b"000123", b"Z9Y8X7"]), n),
        reason_code=np.where(function_code == 450, 4837, 0),
        originator_id=rng.integers(0, 40, n),
        destination_id=rng.integers(0, 40, n),
    )


def data_of(n: int) -> tuple[ipm.RecordBatch, bytes, bytes, list[bytes]]:
    """The batch, its file unblocked and blocked, and its messages as raw bytes; built once."""
    if n not in _CACHE:
        batch = batch_of(n)
        data = ipm.write_file(HEADER, batch)
        blocked = ipm.write_file(HEADER, batch, blocked=True)
        _CACHE[n] = (batch, data, blocked, read_framing(data))
    return _CACHE[n]


def write_framing(records: list[bytes]) -> bytes:
    pack = _LENGTH.pack
    return b"".join([pack(len(r)) + r for r in records]) + b"\0\0\0\0"


def read_framing(data: bytes) -> list[bytes]:
    records, pos, unpack = [], 0, _LENGTH.unpack_from
    while length := unpack(data, pos)[0]:
        records.append(data[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return records


def reference(request, name: str) -> str:
    return f"{name}[{request.node.callspec.id}]"


@pytest.mark.parametrize("n", CASES)
def test_write_framing(benchmark, n):
    _, data, _, records = data_of(n)
    benchmark.extra_info.update(items=n + 2, unit=UNIT, reference=None, role="reference")
    assert benchmark(write_framing, records) == data


@pytest.mark.parametrize("n", CASES)
def test_write_file(benchmark, request, n):
    batch, data, _, _ = data_of(n)
    benchmark.extra_info.update(items=n + 2, unit=UNIT, reference=reference(request, "test_write_framing"))
    assert benchmark(ipm.write_file, HEADER, batch) == data


@pytest.mark.parametrize("n", CASES)
def test_write_file_blocked(benchmark, request, n):
    batch, _, blocked, _ = data_of(n)
    benchmark.extra_info.update(items=n + 2, unit=UNIT, reference=reference(request, "test_write_framing"))
    assert benchmark(ipm.write_file, HEADER, batch, blocked=True) == blocked


@pytest.mark.parametrize("n", CASES)
def test_read_framing(benchmark, n):
    _, data, _, _ = data_of(n)
    benchmark.extra_info.update(items=n + 2, unit=UNIT, reference=None, role="reference")
    assert len(benchmark(read_framing, data)) == n + 2


@pytest.mark.parametrize("n", CASES)
def test_read_file(benchmark, request, n):
    batch, data, _, _ = data_of(n)
    benchmark.extra_info.update(items=n + 2, unit=UNIT, reference=reference(request, "test_read_framing"))
    got = benchmark(ipm.read_file, data)
    assert got.trailer.message_count == n + 2
    assert np.array_equal(got.batch.amount_minor, batch.amount_minor)


@pytest.mark.parametrize("n", CASES)
def test_read_file_blocked(benchmark, request, n):
    batch, _, blocked, _ = data_of(n)
    benchmark.extra_info.update(items=n + 2, unit=UNIT, reference=reference(request, "test_read_framing"))
    got = benchmark(ipm.read_file, blocked)
    assert got.blocked and got.trailer.message_count == n + 2
    assert np.array_equal(got.batch.arn, batch.arn)
