"""ISO 8583 messages and the `messages.iso8583` trace of `run --trace-messages`."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import attrs
import iso8583
import numpy as np
import pytest
from tests.auth_scenarios import OUTAGE_SCENARIO, stress_run
from hypothesis import given, settings
from hypothesis import strategies as st
from iso8583.specs import default_ascii

from clearing_sim import cli, messages
from clearing_sim.model import authorisation as au
from clearing_sim.model.clearing_data import approval_code
from clearing_sim.model.routing import BinTable, luhn_valid


def _small_outage_file(tmp_path: Path, per_day: int = 12_000) -> Path:
    """scenarios/issuer_outage.yaml with fewer purchases, as a file."""
    text = OUTAGE_SCENARIO.read_text(encoding="utf-8")
    assert "transactions_per_day: 240000" in text
    path = tmp_path / "issuer_outage_small.yaml"
    path.write_text(text.replace("transactions_per_day: 240000", f"transactions_per_day: {per_day}"), encoding="utf-8")
    return path


def _decode_all(path: Path) -> list[dict]:
    """Every message of a trace, decoded here with pyiso8583 alone (not with clearing_sim's reader)."""
    data = path.read_bytes()
    docs, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 2], "big")
        doc, _ = iso8583.decode(data[pos + 2:pos + 2 + size], default_ascii)
        docs.append(doc)
        pos += 2 + size
    assert pos == len(data)
    return docs


@pytest.fixture(scope="module")
def traced_run(tmp_path_factory):
    """`clearing-sim run <small issuer_outage> --trace-messages`: (exit code, folder, decoded messages)."""
    tmp = tmp_path_factory.mktemp("trace")
    out = tmp / "run"
    code = cli.main(["run", str(_small_outage_file(tmp)), "--out", str(out), "--trace-messages", "-q"])
    docs = _decode_all(out / "messages.iso8583") if code == 0 else []
    return code, out, docs


class TestTraceCounts:
    """The trace decodes message by message and its counts equal the summary's."""

    def test_counts_of_0100_0120_0400_equal_the_summary(self, traced_run):
        code, out, docs = traced_run
        assert code == 0
        summary = json.loads((out / "summary.json").read_text())["authorisations"]
        counts = Counter(d["t"] for d in docs)
        assert counts["0100"] == summary["count"]
        assert counts["0110"] == summary["count"]
        assert counts["0120"] == summary["advices"]
        assert counts["0400"] == summary["reversals"]
        assert counts["0121"] == summary["advice_repeats"]
        assert counts["0420"] == summary["reversal_advices"]
        assert summary["stand_in"] > 0 and summary["reversals"] > 0

    def test_response_codes_in_0110s_equal_the_summary(self, traced_run):
        _, out, docs = traced_run
        summary = json.loads((out / "summary.json").read_text())["authorisations"]
        codes = Counter(d["39"] for d in docs if d["t"] == "0110")
        assert dict(sorted(codes.items())) == summary["by_response_code"]

    def test_clearing_sim_reader_agrees(self, traced_run):
        _, out, docs = traced_run
        mine = [doc for doc, _ in messages.iter_trace(out / "messages.iso8583")]
        assert mine == docs

    def test_same_seed_gives_the_same_trace_bytes(self, traced_run, tmp_path):
        _, out, _ = traced_run
        again = tmp_path / "again"
        assert cli.main(["run", str(_small_outage_file(tmp_path)), "--out", str(again), "--trace-messages", "-q"]) == 0
        assert (again / "messages.iso8583").read_bytes() == (out / "messages.iso8583").read_bytes()
        assert (again / "summary.json").read_bytes() == (out / "summary.json").read_bytes()


class TestTraceIsOptional:
    """Without --trace-messages there is no trace; a failed run leaves none half-written."""

    def test_no_flag_no_trace(self, tmp_path):
        out = tmp_path / "run"
        assert cli.main(["run", str(_small_outage_file(tmp_path, 2_000)), "--out", str(out), "-q"]) == 0
        assert not (out / "messages.iso8583").exists()
        assert (out / "summary.json").exists()

    def test_failed_run_keeps_no_trace(self, tmp_path, monkeypatch):
        from clearing_sim import outputs
        from clearing_sim.errors import InputError

        written = []

        def broken(folder, result):
            written.append((folder / "messages.iso8583").stat().st_size)  # the trace was there first
            raise InputError("cannot write the tables")

        monkeypatch.setattr(outputs, "write_result", broken)
        out = tmp_path / "run"
        code = cli.main(["run", str(_small_outage_file(tmp_path, 2_000)), "--out", str(out), "--trace-messages", "-q"])
        assert code == 2 and written and written[0] > 0
        assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "log.jsonl", "status.json"]


@pytest.fixture(scope="module")
def stress_log():
    return stress_run(), messages.build_message_log(stress_run())


class TestMessageFields:
    """Each message carries the purchase's data elements, consistent with the model's outcome."""

    SAMPLE = 4000  # messages encoded and decoded; the counts cover all

    def test_messages_follow_the_switch_clock(self, stress_log):
        _, log = stress_log
        assert np.all(np.diff(np.array(log.t_s)) >= 0)

    def test_in_bank_purchases_have_no_messages(self, stress_log):
        state, log = stress_log
        in_bank = state.outcomes["route"] == au.ROUTE_IN_BANK
        assert in_bank.any()
        assert not in_bank[np.array(log.txn)].any()

    def test_sampled_messages_round_trip_and_match_the_outcome(self, stress_log):
        state, log = stress_log
        o, txn = state.outcomes, state.txn
        bins = BinTable(state.scenario)
        start = dt.datetime.combine(dt.date.fromisoformat(state.scenario.run.start_date), dt.time())
        step = max(1, len(log) // self.SAMPLE)
        seen = Counter()
        for n in range(0, len(log), step):
            raw, _ = iso8583.encode(log.document(n), default_ascii)
            doc, _ = iso8583.decode(bytes(raw), default_ascii)
            i = log.txn[n]
            mti = doc["t"]
            seen[mti] += 1
            pan = np.array([int(doc["2"])], dtype=np.int64)
            assert len(doc["2"]) == 16 and luhn_valid(pan)[0]
            assert bins.route(pan)[0] == o["routed_issuer"][i]
            assert int(doc["4"]) == txn["amount_minor"][i]
            # DE7 is GMT (ISO 8583): the simulated clock is China Standard Time, UTC+8.
            sent = start + dt.timedelta(seconds=float(log.t_sent_s[n])) - dt.timedelta(hours=8)
            assert doc["7"] == sent.strftime("%m%d%H%M%S")
            purchase = start + dt.timedelta(seconds=float(txn["t_arrival_s"][i]))
            if mti != "0130" and mti != "0430":
                assert doc["12"] + doc["13"] == purchase.strftime("%H%M%S%m%d")  # local time
            if mti == "0100":
                assert doc["7"] == (purchase - dt.timedelta(hours=8)).strftime("%m%d%H%M%S")
            if mti == "0110":
                assert doc["39"] == f"{o['response_code'][i]:02d}"
                assert ("38" in doc) == (o["response_code"][i] == au.APPROVED)
            if mti in ("0100", "0110", "0120", "0400"):
                assert doc["49"] == "156" and doc["18"] == f"{txn['mcc'][i]:04d}"
            if mti.startswith("04"):
                assert len(doc["90"]) == 42 and doc["90"][:4] == "0100" and doc["90"][4:10] == doc["11"]
                assert doc["90"][10:20] == (purchase - dt.timedelta(hours=8)).strftime("%m%d%H%M%S")  # the 0100's DE7
        assert {"0100", "0110", "0120", "0130", "0400", "0410", "0420", "0430"} <= set(seen)

    def test_stand_in_approvals_carry_the_clearing_approval_code(self, stress_log):
        """DE 38 of a stand-in approval is the code presented in clearing, made as an issuer's is:
        its first letter tells nothing (docs/authorisation.md said stand-in codes start with S)."""
        state, log = stress_log
        o, txn = state.outcomes, state.txn
        approved = o["response_code"] == au.APPROVED
        stand_in = np.flatnonzero(approved & o["stand_in"])
        by_issuer = np.flatnonzero(approved & ~o["stand_in"])
        assert len(stand_in) > 10
        codes = approval_code(txn["txn_id"])
        assert all(log.auth_code[i] == codes[i].decode("ascii") for i in stand_in.tolist())
        assert any(log.auth_code[i][0] != "S" for i in stand_in.tolist())
        assert any(log.auth_code[i][0] == "S" for i in by_issuer.tolist())

    def test_counts_match_the_outcomes(self, stress_log):
        state, log = stress_log
        o = state.outcomes
        counts = log.counts()
        switched = int((o["route"] != au.ROUTE_IN_BANK).sum())
        assert counts["0100"] == counts["0110"] == switched
        assert counts["0120"] == counts["0130"] == int((o["stand_in"] & (o["response_code"] == au.APPROVED)).sum())
        assert counts["0400"] == counts["0410"] == int(o["reversed"].sum())
        assert counts["0420"] == counts["0430"] == int((o["reversed"] & (o["routed_issuer"] >= 0)).sum())
        assert counts["0121"] > 0 and counts["0421"] > 0


class TestTraceReader:
    """Reading a trace refuses a truncated or garbled file with a clear error (exit 2)."""

    def _trace(self, tmp_path) -> Path:
        log = messages.build_message_log(stress_run())
        small = attrs.evolve(log, t_s=log.t_s[:5], t_sent_s=log.t_sent_s[:5], txn=log.txn[:5], mti=log.mti[:5])
        path = tmp_path / "messages.iso8583"
        assert messages.write_trace(path, small) == 5
        return path

    def test_truncated_message(self, tmp_path):
        path = self._trace(tmp_path)
        path.write_bytes(path.read_bytes()[:-3])
        with pytest.raises(messages.TraceError, match="message 4 .* bytes announced"):
            list(messages.iter_trace(path))

    def test_garbled_message(self, tmp_path):
        path = self._trace(tmp_path)
        data = bytearray(path.read_bytes())
        data[6:8] = b"ZZ"  # the primary bitmap must be hex digits
        path.write_bytes(bytes(data))
        with pytest.raises(messages.TraceError, match="message 0"):
            list(messages.iter_trace(path))
        assert messages.TraceError.exit_code == 2


_MTIS = ["0100", "0110", "0120", "0121", "0130", "0400", "0410", "0420", "0421", "0430"]


class TestDocumentRoundTrip:
    """Any message the log can build encodes and decodes back to itself with default_ascii."""

    @settings(max_examples=150, deadline=None)
    @given(
        mti=st.sampled_from(_MTIS),
        pan=st.integers(10**15, 10**16 - 1),
        amount=st.integers(1, 10**12 - 1),
        t=st.floats(0, 366 * 86400 - 1, allow_nan=False),
        mcc=st.integers(0, 9999),
        merchant=st.integers(0, 10**8 - 1),
        acquirer=st.integers(0, 999),
        stan=st.integers(1, 999999),
        code=st.sampled_from(["00", "05", "14", "51", "91"]),
        stand_in=st.booleans(),
    )
    def test_round_trip(self, mti, pan, amount, t, mcc, merchant, acquirer, stan, code, stand_in):
        log = messages.MessageLog(
            t_s=[t], t_sent_s=[t], txn=[0], mti=[mti], pan=[pan], amount_minor=[amount], stan=[stan],
            t_purchase_s=[t], mcc=[mcc], acquirer_code=[messages.institution_code(acquirer)], txn_id=[stan],
            merchant=[merchant], acquirer=[acquirer], auth_code=["S12345" if stand_in else "123456"],
            response_code=[code], start_date=dt.date(2026, 11, 2),
        )
        doc = log.document(0)
        raw, _ = iso8583.encode(dict(doc), default_ascii)
        back, _ = iso8583.decode(bytes(raw), default_ascii)
        back.pop("p", None)
        back.pop("1", None)
        assert back == doc


def test_trace_auth_codes_match_clearing_files(small_scenario):
    """DE 38 of each approval in the trace is the code the acquirer presents in its clearing file."""
    import clearing_sim
    from clearing_sim import ipm
    from clearing_sim.model.clearing_data import approval_residue

    result = clearing_sim.run(small_scenario, mode="fast", clearing_files=True)
    log = result.message_log()
    checked = 0
    for name, data in result.clearing_files:
        if not name.startswith("in/"):
            continue
        batch = ipm.read_file(data).batch
        first = batch.function_code == 200
        codes = batch.auth_code[first]
        txn = approval_residue(codes)
        for t, c in zip(txn.tolist(), codes.tolist()):
            assert log.auth_code[t] == c.decode("ascii")
            checked += 1
    assert checked > 1000
