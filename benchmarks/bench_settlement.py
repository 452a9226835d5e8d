"""Settlement benchmarks: netting per window and fee type in one pass, and settling a window.

For each case (N transfers, P participants, W windows x K kinds) the same arrays are timed:

* ``test_read_pass_keyed``: the reference -- sum every element of payer, payee,
  amount and key, the least work that touches all the input;
* ``test_by_window_and_kind``: ``netting.multilateral_positions_by_key`` with
  key = window * K + kind, all groups in one pass;
* ``test_pandas_groupby_keyed``: the same positions with pandas group-bys on
  (key, participant); its reference is ``test_by_window_and_kind``, so its ratio
  is netting's speed-up over pandas;
* ``test_settle_window`` / ``test_settle_window_unwind``: close and settle one
  window of N transfers (N/3 records of three legs) through the settlement bank,
  without a default and with one issuer defaulting under ``unwind``; reference
  ``test_read_pass_keyed``.

Ids are int32, amounts int64 fen, from fixed seeds. 10^7 cases are ``full``.
"""

from __future__ import annotations

import attrs
import numpy as np
import pandas as pd
import pytest

from clearing_sim import netting
from clearing_sim.model.settlement import ObligationKind, SettlementSystem, WindowState
from clearing_sim.scenario import Settlement, SettlementAccount, parse_scenario

UNIT = "transfers"
SEED = 20_261_126
N_KINDS = len(ObligationKind)

CASES = [
    pytest.param(10**6, 50, 8, id="1e6-p50-w8"),
    pytest.param(10**7, 50, 8, id="1e7-p50-w8", marks=pytest.mark.full),
]

_DATA: dict = {}


def keyed(n_transfers: int, n_participants: int, n_windows: int):
    """Fixed-seed (payer, payee, amount, key) arrays, built once per case."""
    k = (n_transfers, n_participants, n_windows)
    if k not in _DATA:
        rng = np.random.default_rng([SEED, *k])
        payer = rng.integers(0, n_participants, n_transfers, dtype=np.int32)
        payee = rng.integers(0, n_participants, n_transfers, dtype=np.int32)
        amount = np.exp(rng.uniform(0.0, np.log(1e7), n_transfers)).astype(np.int64)
        key = (rng.integers(0, n_windows, n_transfers) * N_KINDS
               + rng.integers(0, N_KINDS, n_transfers)).astype(np.int32)
        _DATA[k] = (payer, payee, amount, key)
    return _DATA[k]


def read_pass(payer, payee, amount, key) -> int:
    return int(payer.sum()) + int(payee.sum()) + int(amount.sum()) + int(key.sum())


@pytest.mark.parametrize("n_transfers, n_participants, n_windows", CASES)
def test_read_pass_keyed(benchmark, n_transfers, n_participants, n_windows):
    arrays = keyed(n_transfers, n_participants, n_windows)
    benchmark.extra_info.update(items=n_transfers, unit=UNIT, reference=None, role="reference")
    assert benchmark(read_pass, *arrays) == read_pass(*arrays)


@pytest.mark.parametrize("n_transfers, n_participants, n_windows", CASES)
def test_by_window_and_kind(benchmark, request, n_transfers, n_participants, n_windows):
    payer, payee, amount, key = keyed(n_transfers, n_participants, n_windows)
    n_keys = n_windows * N_KINDS
    benchmark.extra_info.update(items=n_transfers, unit=UNIT,
                                reference=f"test_read_pass_keyed[{request.node.callspec.id}]")
    netting.multilateral_positions_by_key(payer, payee, amount, key, n_keys, n_participants)  # warm the kernel
    got = benchmark(netting.multilateral_positions_by_key, payer, payee, amount, key, n_keys, n_participants)
    assert (got.sum(axis=1) == 0).all()


def pandas_keyed(frame: pd.DataFrame, n_keys: int, n_participants: int) -> np.ndarray:
    received = frame.groupby(["key", "payee"])["amount"].sum()
    paid = frame.groupby(["key", "payer"])["amount"].sum()
    out = np.zeros((n_keys, n_participants), dtype=np.int64)
    out[received.index.get_level_values(0), received.index.get_level_values(1)] += received.to_numpy()
    out[paid.index.get_level_values(0), paid.index.get_level_values(1)] -= paid.to_numpy()
    return out


@pytest.mark.parametrize("n_transfers, n_participants, n_windows", CASES)
def test_pandas_groupby_keyed(benchmark, request, n_transfers, n_participants, n_windows):
    payer, payee, amount, key = keyed(n_transfers, n_participants, n_windows)
    frame = pd.DataFrame({"payer": payer, "payee": payee, "amount": amount, "key": key})
    n_keys = n_windows * N_KINDS
    benchmark.extra_info.update(items=n_transfers, unit=UNIT,
                                reference=f"test_by_window_and_kind[{request.node.callspec.id}]",
                                note="pandas time / netting time: netting's speed-up over pandas")
    got = benchmark(pandas_keyed, frame, n_keys, n_participants)
    expected = netting.multilateral_positions_by_key(payer, payee, amount, key, n_keys, n_participants)
    assert (got == expected).all()


_BASE = """\
name: bench
institutions: [{id: A0}]
issuers: [{institution: A0, bins: ["400001"], share: 1, host: {servers: 1}}]
acquirers: [{institution: A0, share: 1, category_mix: {"5411": 1}}]
traffic: {transactions_per_day: 0, amount_minor: {"5411": {distribution: constant, value: 100}}}
"""


def _window(n_transfers: int, n_participants: int, accounts=()):
    """A SettlementSystem (no SimPy) with one OPEN window of n_transfers/3 three-leg records."""
    ids = [f"B{i}" for i in range(n_participants - 1)]
    text = _BASE.replace("institutions: [{id: A0}]", "institutions: [" + ", ".join(f"{{id: {i}}}" for i in ids) + "]")
    sc = parse_scenario(text.replace("A0", ids[0]), "bench.yaml")
    sc = attrs.evolve(sc, settlement=Settlement(accounts=accounts))
    system = SettlementSystem(None, sc)
    n_rec = n_transfers // 3
    rng = np.random.default_rng([SEED, n_transfers, n_participants])
    issuer = rng.integers(0, n_participants - 1, n_rec, dtype=np.int32)
    issuer[rng.random(n_rec) < 0.1] = 0  # B0 issues more than it acquires: a net debtor
    acquirer = rng.integers(0, n_participants - 1, n_rec, dtype=np.int32)
    amount = np.exp(rng.uniform(0.0, np.log(1e7), n_rec)).astype(np.int64)
    network = np.full(n_rec, n_participants - 1, dtype=np.int32)
    rec = np.arange(n_rec, dtype=np.int64)
    kinds = np.repeat(np.array([0, 1, 2], dtype=np.int8), n_rec)
    system.add_obligations(3600.0, kinds, np.tile(rec, 3), np.concatenate([issuer, issuer, acquirer]),
                           np.concatenate([acquirer, network, network]),
                           np.concatenate([amount - amount // 200, amount // 5000, amount // 3000]))
    return system, system.windows[0]


def settle(system, w):
    system.settle(w, w.t_close_s)
    return w


CASE_IDS = {tuple(c.values): c.id for c in CASES}


@pytest.mark.parametrize("n_transfers, n_participants, n_windows", CASES)
@pytest.mark.parametrize("defaulting", [False, True], ids=["no_default", "unwind"])
def test_settle_window(benchmark, n_transfers, n_participants, n_windows, defaulting):
    """Close and settle one window (netting per kind, funding, default rule, cover-1); the window is built untimed."""
    accounts = (SettlementAccount("B0", opening_balance_minor=0),) if defaulting else ()
    case = CASE_IDS[(n_transfers, n_participants, n_windows)]
    benchmark.extra_info.update(items=n_transfers, unit=UNIT, reference=f"test_read_pass_keyed[{case}]",
                                note="close + net per kind + default rule + cover-1 of one window")
    settle(*_window(300_000, n_participants, accounts))  # warm the kernels
    last = {}

    def setup():
        system, w = _window(n_transfers, n_participants, accounts)
        last["w"] = w
        return (system, w), {}

    benchmark.pedantic(settle, setup=setup, rounds=3, iterations=1)
    w = last["w"]
    assert w.state is WindowState.SETTLED
    assert bool(w.resolution.defaults) == defaulting
