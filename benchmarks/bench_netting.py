"""Netting core against a read pass over its inputs and a pandas group-by.

For each case (N transfers, P participants) the same arrays are timed four ways:

* ``test_read_pass``: the reference -- sum every element of payer, payee and
  amount, the least work that touches all the input;
* ``test_multilateral``: ``netting.multilateral_positions``;
* ``test_bilateral``: ``netting.bilateral_obligations`` (P x P int64 matrix);
* ``test_pandas_groupby``: the same positions with two pandas group-bys; its
  reference is ``test_multilateral``, so its ratio is netting's speed-up.

Ids are int32 and amounts int64 fen, drawn from fixed seeds.  The 10^7 cases
are ``full``; the 10^6 cases form the quick (CI) subset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clearing_sim import netting

UNIT = "transactions"
SEED = 20_240_501

CASES = [
    pytest.param(10**6, 50, id="1e6-p50"),
    pytest.param(10**6, 2000, id="1e6-p2000"),
    pytest.param(10**7, 50, id="1e7-p50", marks=pytest.mark.full),
    pytest.param(10**7, 2000, id="1e7-p2000", marks=pytest.mark.full),
]

_DATA: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def transfers(n_transfers: int, n_participants: int):
    """Fixed-seed (payer, payee, amount) arrays, built once per case."""
    key = (n_transfers, n_participants)
    if key not in _DATA:
        rng = np.random.default_rng([SEED, n_transfers, n_participants])
        payer = rng.integers(0, n_participants, n_transfers, dtype=np.int32)
        payee = rng.integers(0, n_participants, n_transfers, dtype=np.int32)
        # Card-sized amounts: 1 fen to 100,000 CNY, log-uniform-ish.
        amount = np.exp(rng.uniform(0.0, np.log(1e7), n_transfers)).astype(np.int64)
        _DATA[key] = (payer, payee, amount)
    return _DATA[key]


def case_id(request) -> str:
    return request.node.callspec.id


def read_pass(payer, payee, amount) -> int:
    return int(payer.sum()) + int(payee.sum()) + int(amount.sum())


@pytest.mark.parametrize("n_transfers, n_participants", CASES)
def test_read_pass(benchmark, request, n_transfers, n_participants):
    payer, payee, amount = transfers(n_transfers, n_participants)
    benchmark.extra_info.update(items=n_transfers, unit=UNIT, reference=None, role="reference")
    total = benchmark(read_pass, payer, payee, amount)
    assert total == read_pass(payer, payee, amount)


@pytest.mark.parametrize("n_transfers, n_participants", CASES)
def test_multilateral(benchmark, request, n_transfers, n_participants):
    payer, payee, amount = transfers(n_transfers, n_participants)
    benchmark.extra_info.update(items=n_transfers, unit=UNIT, reference=f"test_read_pass[{case_id(request)}]")
    netting.multilateral_positions(payer, payee, amount, n_participants)  # compile or load the kernel
    positions = benchmark(netting.multilateral_positions, payer, payee, amount, n_participants)
    assert positions.sum() == 0


@pytest.mark.parametrize("n_transfers, n_participants", CASES)
def test_bilateral(benchmark, request, n_transfers, n_participants):
    payer, payee, amount = transfers(n_transfers, n_participants)
    benchmark.extra_info.update(items=n_transfers, unit=UNIT, reference=f"test_read_pass[{case_id(request)}]")
    netting.bilateral_obligations(payer, payee, amount, n_participants)  # compile or load the kernel
    matrix = benchmark(netting.bilateral_obligations, payer, payee, amount, n_participants)
    assert int(matrix.sum()) == int(amount.sum())


def pandas_positions(frame: pd.DataFrame, n_participants: int) -> np.ndarray:
    participants = pd.RangeIndex(n_participants)
    received = frame.groupby("payee")["amount"].sum().reindex(participants, fill_value=0)
    paid = frame.groupby("payer")["amount"].sum().reindex(participants, fill_value=0)
    return (received - paid).to_numpy()


@pytest.mark.parametrize("n_transfers, n_participants", CASES)
def test_pandas_groupby(benchmark, request, n_transfers, n_participants):
    payer, payee, amount = transfers(n_transfers, n_participants)
    # The frame is built outside the timing: pandas gets its data ready-made.
    frame = pd.DataFrame({"payer": payer, "payee": payee, "amount": amount})
    benchmark.extra_info.update(
        items=n_transfers,
        unit=UNIT,
        reference=f"test_multilateral[{case_id(request)}]",
        note="pandas time / netting time: netting's speed-up over pandas",
    )
    positions = benchmark(pandas_positions, frame, n_participants)
    expected = netting.multilateral_positions(payer, payee, amount, n_participants)
    assert positions.tolist() == expected.tolist()
