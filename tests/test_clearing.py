"""Clearing end to end on the small scenario: files, cycles, validation, rejects, fees, disputes."""

from __future__ import annotations

import io

import attrs
import numpy as np
import pytest
from cardutil import mciipm
from hypothesis import example, given, settings
from hypothesis import strategies as st

from clearing_sim import ipm
from clearing_sim.clearing_results import clearing_summary
from clearing_sim.errors import InvariantError
from clearing_sim.model import clearing_data as cd
from clearing_sim.model.authorisation import APPROVED
from clearing_sim.model.clearing import REASONS, STATUS_CLEARED, STATUS_REJECTED, _repeats, check_clearing
from clearing_sim.model.clearing_draws import draw_clearing
from clearing_sim.model.network import simulate
from clearing_sim.model.traffic import DAY_S
from clearing_sim.scenario import parse_scenario
from tests.conftest import SMALL_YAML

CUTOFFS = 'clearing:\n  cutoffs: ["12:30", "23:45"]\n'
PRODUCTS = "    share: 0.6\n    products: {classic: 0.7, gold: 0.3}\n"
GOLD_FEES = ('fees:\n  interchange_default: {bps: 50}\n  interchange: {"5411": {bps: 20}}\n'
             '  interchange_by_product:\n    gold: {default: {bps: 90, fixed_minor: 7}, by_mcc: {"5812": {bps: 80}}}\n')
DISPUTES = ("disputes:\n  chargeback_rate: 0.05\n  chargeback_delay_days: {distribution: uniform, low: 0.3, high: 2}\n"
            "  chargeback_limit_days: 2\n  representment_rate: 0.5\n"
            "  representment_delay_days: {distribution: uniform, low: 0.2, high: 1}\n  representment_limit_days: 1\n")
REFUNDS = ("  refund_rate: 0.05\n  refund_delay_days: {distribution: uniform, low: 0.1, high: 2}\n"
           "  refund_limit_days: 2\n")


def small(clearing: str = "", extra: str = "", products: bool = True, cutoffs: str = CUTOFFS):
    text = SMALL_YAML.replace(CUTOFFS, cutoffs + clearing)
    if products:
        text = text.replace("    share: 0.6\n", PRODUCTS, 1)
    return parse_scenario(text + extra, "small.yaml")


def faults(*lines: str) -> str:
    return "  faults:\n" + "".join(f"    - {line}\n" for line in lines)


def cleared_first(state) -> np.ndarray:
    r = state.clearing.records()
    sel = (r["status"] == STATUS_CLEARED) & (r["kind"] == cd.KIND_FIRST_PRESENTMENT)
    return r["matched_txn"][sel]


def reasons(state) -> dict[str, int]:
    return clearing_summary(state)["rejects_by_reason"]


@pytest.fixture(scope="module")
def full():
    """Products, refunds and disputes, no faults, files kept."""
    return simulate(small(REFUNDS, GOLD_FEES + DISPUTES), keep_clearing_files=True)


@pytest.fixture(scope="module")
def plain():
    return simulate(small(products=False), keep_clearing_files=True)


class TestEveryRecordAccountedFor:
    """Every record received ends cleared or rejected, and no purchase clears twice."""

    def test_presented_is_cleared_plus_rejected(self, full) -> None:
        s = clearing_summary(full)
        assert s["records_presented"] == s["records_cleared"] + s["records_rejected"] > 0
        sent = sum(f.n_records for f in full.acquirers.files + full.disputes.files)
        assert s["records_presented"] == sent

    def test_every_approval_cleared_exactly_once(self, plain) -> None:
        approved = plain.outcomes["response_code"] == APPROVED
        m = cleared_first(plain)
        assert len(np.unique(m)) == len(m) == int(approved.sum())
        assert np.array_equal(plain.clearing.txn_cycle >= 0, approved)

    def test_record_amounts_are_the_purchases(self, plain) -> None:
        r = plain.clearing.records()
        assert np.array_equal(r["amount_minor"], plain.txn["amount_minor"][r["txn_index"]])
        assert cd.arn_is_valid(r["arn"]).all()
        assert len(np.unique(r["arn"])) == len(r["arn"])

    def test_the_check_catches_a_lost_record(self, plain) -> None:
        lost = plain.acquirers.files[0]
        saved = lost.txn_index
        lost.txn_index = np.concatenate([saved, saved[:1]])
        try:
            with pytest.raises(InvariantError, match="records were sent"):
                check_clearing(plain.clearing, [plain.acquirers])
        finally:
            lost.txn_index = saved

    def test_the_check_catches_a_purchase_cleared_twice(self, plain) -> None:
        recs = plain.clearing._records
        saved = {k: list(v) for k, v in recs.items()}
        try:
            for k in recs:
                recs[k].append(recs[k][0][:1])
            plain.acquirers.files[0].txn_index = np.concatenate([plain.acquirers.files[0].txn_index, [0]])
            with pytest.raises(InvariantError, match="more than one cleared"):
                check_clearing(plain.clearing, [plain.acquirers])
        finally:
            plain.acquirers.files[0].txn_index = plain.acquirers.files[0].txn_index[:-1]
            for k in recs:
                recs[k][:] = saved[k]

    def test_the_check_catches_a_cleared_record_of_no_purchase(self, plain) -> None:
        i = int(np.flatnonzero(plain.clearing.records()["status"] == STATUS_CLEARED)[0])
        chunks = plain.clearing._records["matched_txn"]
        saved = chunks[0]
        chunks[0] = saved.copy()
        chunks[0][i] = -1
        try:
            with pytest.raises(InvariantError, match="matched no purchase"):
                check_clearing(plain.clearing, [plain.acquirers])
        finally:
            chunks[0] = saved

    def test_the_check_catches_a_fee_the_window_did_not_settle(self, plain) -> None:
        chunks = plain.clearing._records["interchange_minor"]
        saved = chunks[0]
        chunks[0] = saved.copy()
        chunks[0][0] += 1
        try:
            with pytest.raises(InvariantError, match="net positions differ"):
                check_clearing(plain.clearing, [plain.acquirers])
        finally:
            chunks[0] = saved

    def test_the_check_catches_a_state_without_its_record(self, plain) -> None:
        i = int(np.flatnonzero(plain.clearing.txn_cycle >= 0)[0])
        saved = plain.clearing.txn_cycle[i]
        plain.clearing.txn_cycle[i] = -1
        try:
            with pytest.raises(InvariantError, match="never cleared"):
                check_clearing(plain.clearing, [plain.acquirers])
        finally:
            plain.clearing.txn_cycle[i] = saved


class TestCutoffs:
    """A file goes to the first cycle whose cut-off is at or after its arrival."""

    def test_on_time_file_clears_in_the_midday_cycle(self, plain) -> None:
        first = plain.clearing.files[0]
        assert plain.scenario.participant_ids[first.sender] == "BANKC"
        assert plain.clearing.cycles[first.cycle].id == "D001-12:30"

    def test_a_file_after_the_cutoff_waits_for_the_next_cycle(self) -> None:
        state = simulate(small(faults("{kind: late, acquirer: BANKC, submission: 1, delay_minutes: 45}")))
        late = next(f for f in state.clearing.files if f.fault == "late")
        assert late.t_received_s > 12 * 3600 + 30 * 60
        assert state.clearing.cycles[late.cycle].id == "D001-23:45"
        assert reasons(state) == {}
        assert (state.clearing.txn_cycle[late.txn_index] == late.cycle).all()

    def test_late_probability_draws_per_file(self) -> None:
        text_late = SMALL_YAML.replace('    submission_times: ["12:00", "23:00"]\n',
                                       '    submission_times: ["12:00", "23:00"]\n    late_probability: 1.0\n'
                                       '    late_delay_minutes: {distribution: constant, value: 50}\n')
        state = simulate(parse_scenario(text_late))
        bankc = [f for f in state.acquirers.files if f.index == 1]
        assert bankc and all(f.t_received_s - f.t_sent_s == pytest.approx(50 * 60 + 2.0) for f in bankc)
        midday = [f for f in bankc if f.t_sent_s % DAY_S == 12 * 3600]
        assert all(state.clearing.cycles[f.cycle].id.endswith("23:45") for f in midday)


FILE_FAULTS = [
    ("corrupt_trailer", "AMOUNT_MISMATCH"),
    ("trailer_count", "COUNT_MISMATCH"),
    ("trailer_file_id", "FILE_ID_MISMATCH"),
    ("truncated", "TRUNCATED"),
]


class TestFileRejects:
    """A file that fails file-level validation is rejected whole, with a 699, and presented again."""

    @pytest.mark.parametrize(("kind", "reason"), FILE_FAULTS)
    def test_rejected_whole_and_resubmitted(self, kind: str, reason: str) -> None:
        state = simulate(small(faults(f"{{kind: {kind}, acquirer: BANKC, submission: 1}}")), keep_clearing_files=True)
        bad = state.clearing.files[0]
        assert (bad.status, bad.reject_reason, bad.fault) == ("rejected", reason, kind)
        assert reasons(state) == {reason: bad.n_records}
        r = state.clearing.records()
        assert (r["status"][r["file"] == bad.number] == STATUS_REJECTED).all()
        # Presented again in BANKC's next file (23:00), cleared in the evening cycle.
        assert (state.clearing.txn_cycle[bad.txn_index] > bad.cycle).all()
        approved = state.outcomes["response_code"] == APPROVED
        assert np.array_equal(state.clearing.txn_cycle >= 0, approved)
        rejects = dict(state.clearing.kept_files)["out/D001-1230_BANKC_rejects.ipm"]
        got = ipm.read_file(rejects).rejects
        assert got.function_code.tolist() == [ipm.FUNC_FILE_REJECT]
        assert (str(got.reason_code[0]), str(got.source_file_id[0])) == (reason, bad.file_id)

    def test_without_resubmission_the_records_stay_rejected(self) -> None:
        state = simulate(small("  resubmit_rejected_files: false\n"
                               + faults("{kind: corrupt_trailer, acquirer: BANKC, submission: 1}")))
        bad = state.clearing.files[0]
        assert (state.clearing.txn_cycle[bad.txn_index] < 0).all()
        assert state.acquirers.ever_presented[bad.txn_index].all()

    def test_a_duplicate_file_is_rejected_and_the_original_clears(self) -> None:
        state = simulate(small(faults("{kind: duplicate_file, acquirer: BANKA, delay_minutes: 5}")),
                         keep_clearing_files=True)
        copy = next(f for f in state.clearing.files if f.copy)
        original = next(f for f in state.clearing.files if f.file_id == copy.file_id and not f.copy)
        assert (original.status, copy.status, copy.reject_reason) == ("accepted", "rejected", "DUPLICATE_FILE")
        assert reasons(state) == {"DUPLICATE_FILE": copy.n_records}
        assert (state.clearing.txn_file[original.txn_index] == original.number).all()
        assert any(name.endswith("_copy.ipm") for name, _ in state.clearing.kept_files)


class TestRecordRejects:
    """Records failing validation are rejected one by one with a reason and a 691; the rest clear."""

    @pytest.fixture(scope="class")
    @staticmethod
    def state():
        sc = small(faults(
            "{kind: duplicate_records, acquirer: BANKC, submission: 2, records: 3}",
            "{kind: unknown_authorisation, acquirer: BANKC, submission: 2, records: 4}",
            "{kind: amount_changed, acquirer: BANKC, submission: 2, records: 5}",
        ))
        return simulate(sc, keep_clearing_files=True)

    def test_reasons_and_counts(self, state) -> None:
        assert reasons(state) == {"DUPLICATE_RECORD": 3, "NO_AUTHORISATION": 4, "AMOUNT_TOLERANCE": 5}
        s = clearing_summary(state)
        assert s["files_rejected"] == 0 and s["reject_messages"] == {"1644/691": 12, "1644/699": 0}

    def test_the_damaged_purchases_do_not_clear_and_the_rest_do(self, state) -> None:
        r = state.clearing.records()
        bad = r["txn_index"][(r["reason"] == REASONS.index("NO_AUTHORISATION"))
                             | (r["reason"] == REASONS.index("AMOUNT_TOLERANCE"))]
        assert (state.clearing.txn_cycle[bad] < 0).all()
        dup = r["txn_index"][r["reason"] == REASONS.index("DUPLICATE_RECORD")]
        assert (state.clearing.txn_cycle[dup] >= 0).all()  # the first copy cleared
        approved = state.outcomes["response_code"] == APPROVED
        assert int((approved & (state.clearing.txn_cycle < 0)).sum()) == len(bad)

    def test_each_reject_goes_back_as_a_691(self, state) -> None:
        r = state.clearing.records()
        rejected = r["reason"] >= 0
        got = ipm.read_file(dict(state.clearing.kept_files)["out/D001-2345_BANKC_rejects.ipm"]).rejects
        assert len(got) == int(rejected.sum())
        assert sorted(zip(got.source_message_number.tolist(), got.arn.tolist(), got.reason_code.tolist())) == sorted(
            zip(r["message_number"][rejected].tolist(), r["arn"][rejected].tolist(),
                [REASONS[i] for i in r["reason"][rejected]]))

    def test_late_presentment(self) -> None:
        state = simulate(small("  presentment_limit_days: 2\n"
                               + faults("{kind: late, acquirer: BANKA, delay_minutes: 4320}")))
        late = next(f for f in state.clearing.files if f.fault == "late")
        assert reasons(state) == {"LATE_PRESENTMENT": late.n_records}
        assert (state.clearing.txn_cycle[late.txn_index] < 0).all()

    def test_amount_tolerance_is_exact(self, plain) -> None:
        """With 10 bps, an amount off by floor(10 bps of it) passes and one fen more does not."""
        cl = plain.clearing
        m = int(np.flatnonzero(plain.outcomes["response_code"] == APPROVED)[0])
        authorised = int(plain.txn["amount_minor"][m])
        saved = cl.scenario
        cl.scenario = attrs.evolve(saved, clearing=attrs.evolve(saved.clearing, amount_tolerance_bps=10.0))
        try:
            limit = authorised * 10 // 10_000
            amounts = np.array([authorised, authorised + limit, authorised - limit, authorised + limit + 1,
                                authorised - limit - 1])
            assert cl._outside_tolerance(amounts, np.full(5, m)).tolist() == [False, False, False, True, True]
        finally:
            cl.scenario = saved


class TestFees:
    """Interchange follows the card product and category table; paid equals received; positions reconcile."""

    def test_rate_lookup_order(self, full) -> None:
        r = full.clearing.records()
        ok = (r["status"] == STATUS_CLEARED) & (r["kind"] == cd.KIND_FIRST_PRESENTMENT)
        number = {"classic": 0, "gold": 1}  # product numbers: first-seen order in the issuers
        rate = {("gold", 5812): (8000, 0), ("gold", 5411): (9000, 7), ("classic", 5411): (2000, 0),
                ("classic", 5812): (5000, 0)}  # hundredths of a bp, fixed fen
        for (product, mcc), (hundredths, fixed) in rate.items():
            sel = ok & (r["product"] == number[product]) & (r["mcc"] == mcc)
            assert sel.any()
            expected = [(a * hundredths + 500_000) // 1_000_000 + fixed for a in r["amount_minor"][sel].tolist()]
            assert r["interchange_minor"][sel].tolist() == expected

    def test_credits_give_interchange_back(self, full) -> None:
        r = full.clearing.records()
        ok = r["status"] == STATUS_CLEARED
        for kind in (cd.KIND_REFUND, cd.KIND_CHARGEBACK):
            sel = ok & (r["kind"] == kind)
            assert sel.any() and (r["interchange_minor"][sel] <= 0).all()

    def test_paid_equals_received(self, full) -> None:
        fees = clearing_summary(full)["fees"]
        assert fees["interchange_paid_total_minor"] == fees["interchange_received_total_minor"] != 0
        assert sum(fees["interchange_paid_minor"].values()) == sum(fees["interchange_received_minor"].values())

    def test_window_positions_from_records(self, full) -> None:
        """Positions recomputed here, one record at a time, equal what each window settled."""
        r = full.clearing.records()
        ids = full.scenario.participant_ids
        network = len(ids) - 1
        expected = {w.index: [0] * len(ids) for w in full.settlement.windows}
        for i in np.flatnonzero(r["status"] == STATUS_CLEARED).tolist():
            kind, w = int(r["kind"][i]), int(r["window"][i])
            iss, acq = int(r["receiver"][i]), int(r["sender"][i])
            if kind == cd.KIND_CHARGEBACK:
                iss, acq = acq, iss
            ic = abs(int(r["interchange_minor"][i]))
            net = int(r["amount_minor"][i]) - ic
            sign = 1 if kind in (cd.KIND_FIRST_PRESENTMENT, cd.KIND_SECOND_PRESENTMENT) else -1
            expected[w][acq] += sign * net
            expected[w][iss] -= sign * net
            expected[w][iss] -= int(r["scheme_fee_issuer_minor"][i])
            expected[w][acq] -= int(r["scheme_fee_acquirer_minor"][i])
            expected[w][network] += int(r["scheme_fee_issuer_minor"][i] + r["scheme_fee_acquirer_minor"][i])
        for w in full.settlement.windows:
            assert w.positions_minor.tolist() == expected[w.index]

    def test_products_are_per_card(self, full) -> None:
        draws = draw_clearing(full.scenario, full.txn)
        known = full.txn["issuer"] >= 0
        key = full.txn["issuer"][known].astype(np.int64) * 10**9 + full.txn["card"][known]
        product = draws.product[known]
        order = np.argsort(key, kind="stable")
        same_card = np.diff(key[order]) == 0
        assert same_card.any() and (np.diff(product[order])[same_card] == 0).all()
        bank_a = full.txn["issuer"] == 0
        assert 0.25 < (draws.product[bank_a] == 1).mean() < 0.35  # gold: 30% of BANKA's cards
        assert (draws.product[full.txn["issuer"] == 1] == 0).all()  # BANKB: classic only
        assert (draws.product[~known] == -1).all()


class TestRefundsAndDisputes:
    """Refunds, chargebacks and second presentments clear as drawn and settle in later windows, reversed."""

    def test_refunds_are_the_drawn_ones_after_their_purchase(self, full) -> None:
        r = full.clearing.records()
        draws = draw_clearing(full.scenario, full.txn)
        ok = r["status"] == STATUS_CLEARED
        refunded = r["matched_txn"][ok & (r["kind"] == cd.KIND_REFUND)]
        assert set(refunded.tolist()) == set(np.flatnonzero(draws.refund & (full.clearing.txn_cycle >= 0)).tolist())
        assert (full.clearing.refund_cycle[refunded] >= full.clearing.txn_cycle[refunded]).all()
        assert len(refunded) > 0

    def test_chargebacks_follow_the_draws_and_the_delay(self, full) -> None:
        cl = full.clearing
        draws = draw_clearing(full.scenario, full.txn)
        charged = np.flatnonzero(cl.chargeback_cycle >= 0)
        assert len(charged) > 0
        assert set(charged.tolist()) == set(np.flatnonzero(draws.chargeback & (cl.txn_cycle >= 0)).tolist())
        assert (cl.t_chargeback_cleared_s[charged] >= cl.t_cleared_s[charged] + draws.chargeback_delay_s[charged]).all()
        r = cl.records()
        cb = (r["kind"] == cd.KIND_CHARGEBACK) & (r["status"] == STATUS_CLEARED)
        assert (r["reason"][cb] < 0).all()
        issuers = {full.scenario.institution_index(i.institution) for i in full.scenario.issuers}
        assert set(r["sender"][cb].tolist()) <= issuers
        assert all(f.role == "issuer" for f in cl.files if (f.kind == cd.KIND_CHARGEBACK).any())

    def test_representments_only_after_a_chargeback(self, full) -> None:
        cl = full.clearing
        draws = draw_clearing(full.scenario, full.txn)
        rep = np.flatnonzero(cl.representment_cycle >= 0)
        assert len(rep) > 0
        assert set(rep.tolist()) == set(np.flatnonzero(draws.representment & (cl.chargeback_cycle >= 0)).tolist())
        assert (cl.representment_cycle[rep] > cl.chargeback_cycle[rep]).all()

    def test_disputes_settle_later_and_in_reverse(self, full) -> None:
        r = full.clearing.records()
        ok = r["status"] == STATUS_CLEARED
        first = {int(t): int(w) for t, w in zip(r["matched_txn"][ok & (r["kind"] == 0)], r["window"][ok & (r["kind"] == 0)])}
        cb = ok & (r["kind"] == cd.KIND_CHARGEBACK)
        assert all(int(w) > first[int(t)] for t, w in zip(r["matched_txn"][cb], r["window"][cb]))

    def test_the_draws_do_not_depend_on_event_order(self) -> None:
        """Another cut-off schedule changes when records clear, not which purchases are disputed or refunded."""
        a = simulate(small(REFUNDS, DISPUTES))
        b = simulate(small(REFUNDS, DISPUTES, cutoffs='clearing:\n  cutoffs: ["06:00", "23:50"]\n'))
        assert not np.array_equal(a.clearing.txn_cycle, b.clearing.txn_cycle)
        for name in ("refund_cycle", "chargeback_cycle", "representment_cycle"):
            assert np.array_equal(getattr(a.clearing, name) >= 0, getattr(b.clearing, name) >= 0), name


class TestOutgoingFiles:
    """Per cycle, each receiving institution gets one file with exactly the records cleared to it."""

    def test_outgoing_match_cleared_records(self, full) -> None:
        r = full.clearing.records()
        ids = full.scenario.participant_ids
        kept = dict(full.clearing.kept_files)
        ok = r["status"] == STATUS_CLEARED
        for c in full.clearing.cycles:
            slug = c.id.replace(":", "")
            here = ok & (r["cycle"] == c.index)
            for party in np.unique(r["receiver"][here]).tolist():
                read = ipm.read_file(kept[f"out/{slug}_{ids[party]}_clearing.ipm"])
                mine = here & (r["receiver"] == party)
                assert read.header.receiver_id == party + 1 and read.header.sender_id == cd.NETWORK_PROCESSOR_ID
                assert sorted(read.batch.arn.tolist()) == sorted(r["arn"][mine].tolist())
                assert int(read.batch.amount_minor.sum()) == int(r["amount_minor"][mine].sum())

    def test_an_independent_reader_reads_every_file(self, full) -> None:
        assert full.clearing.kept_files
        for name, data in full.clearing.kept_files:
            messages = list(mciipm.IpmReader(io.BytesIO(data), blocked=False))
            head, tail = messages[0], messages[-1]
            assert (head["MTI"], head["DE24"], tail["MTI"], tail["DE24"]) == ("1644", "697", "1644", "695"), name
            assert head["PDS0105"] == tail["PDS0105"]
            assert int(tail["PDS0306"]) == len(messages)
            assert int(tail["PDS0301"]) == sum(m.get("DE4", 0) for m in messages)

    def test_files_are_kept_only_when_asked(self, plain) -> None:
        again = simulate(plain.scenario)
        assert again.clearing.kept_files == [] and all(f.data is None for f in again.clearing.files)
        assert np.array_equal(again.clearing.records()["arn"], plain.clearing.records()["arn"])

    def test_blocked_files(self) -> None:
        state = simulate(small("  blocked_files: true\n" + faults("{kind: corrupt_trailer, acquirer: BANKA}")),
                         keep_clearing_files=True)
        assert reasons(state) == {"AMOUNT_MISMATCH": state.clearing.files[1].n_records}
        for name, data in state.clearing.kept_files:
            assert len(data) % ipm.BLOCK_SIZE == 0, name
            list(mciipm.IpmReader(io.BytesIO(data), blocked=True))


class TestFastMode:
    """Fast mode clears exactly what detailed mode clears: same records, rejects and obligations."""

    @pytest.mark.parametrize("name", ["refunds_and_disputes", "corrupt_file"])
    def test_same_clearing(self, name: str) -> None:
        from pathlib import Path

        from clearing_sim.scenario import load_scenario

        sc = load_scenario(Path(__file__).resolve().parent.parent / "scenarios" / f"{name}.yaml")
        sc = attrs.evolve(sc, traffic=attrs.evolve(sc.traffic, transactions_per_day=5_000))
        a, b = simulate(sc, "detailed"), simulate(sc, "fast")
        ra, rb = a.clearing.records(), b.clearing.records()
        assert len(ra["record_id"]) > 0
        for k in ra:
            assert np.array_equal(ra[k], rb[k]), k
        assert [w.obligations_minor.tolist() for w in a.settlement.windows] == \
               [w.obligations_minor.tolist() for w in b.settlement.windows]


def _repeats_with_unique(values: np.ndarray) -> np.ndarray:
    """`clearing._repeats` as it was with np.unique, kept as the reference."""
    out = np.ones(len(values), dtype=bool)
    if len(values):
        _, first = np.unique(values, return_index=True)
        out[first] = False
    return out


class TestRepeats:
    """The hashed repeat finder marks what np.unique's first occurrences left unmarked, for ARNs and ids."""

    @settings(max_examples=300)
    @example([b"", b"\x00", b"1" * 23, b"1" * 22, b"1" * 23, b""])
    @given(st.lists(st.sampled_from([b"", b"0", b"00", b"1" * 23, b"1" * 22 + b"2", b"7" * 8, b"7" * 9, b"a\x00b"])
                    | st.binary(max_size=23), max_size=60))
    def test_bytes(self, raw: list[bytes]) -> None:
        arn = np.array(raw, dtype="S23")
        assert np.array_equal(_repeats(arn), _repeats_with_unique(arn))

    @settings(max_examples=300)
    @given(st.lists(st.integers(-3, 40) | st.integers(-(2**63), 2**63 - 1), max_size=80))
    def test_ints(self, values: list[int]) -> None:
        ids = np.array(values, dtype=np.int64)
        assert np.array_equal(_repeats(ids), _repeats_with_unique(ids))

    def test_a_day_of_arns(self) -> None:
        """Many values and long runs of repeats (a probe passes many taken slots)."""
        rng = np.random.default_rng(5)
        arn = cd.make_arn(np.full(50_000, 3), np.full(50_000, np.datetime64("2026-11-02")),
                          rng.integers(0, 30_000, 50_000))
        assert np.array_equal(_repeats(arn), _repeats_with_unique(arn))
        ids = rng.integers(0, 1000, 20_000)
        assert np.array_equal(_repeats(ids), _repeats_with_unique(ids))


class TestRecordsTable:
    """`ClearingNetwork.records()`: joined once, read-only, never a sender's own array."""

    def test_a_lone_chunk_is_copied_and_frozen(self) -> None:
        from types import SimpleNamespace

        from clearing_sim.model.clearing import ClearingNetwork

        sender = np.array([1, 2, 3], dtype=np.int64)
        net = SimpleNamespace(_records={"amount_minor": [sender], "kind": [np.array([1]), np.array([2])]})
        got = ClearingNetwork.records(net)
        assert not got["amount_minor"].flags.writeable and got["amount_minor"] is not sender
        assert sender.flags.writeable and np.array_equal(got["amount_minor"], sender)
        assert not got["kind"].flags.writeable and np.array_equal(got["kind"], [1, 2])
        assert ClearingNetwork.records(net)["amount_minor"] is got["amount_minor"]  # kept joined


def _old_purchases_ready(acq, mine: np.ndarray, now: float) -> np.ndarray:
    """AcquirerSubmissions._purchases_ready before its compiled pass (reference), with 0.3.2's rule:
    answered strictly before `now`."""
    with np.errstate(invalid="ignore"):
        ready = (acq.response_code[mine] == APPROVED) & (acq.t_response[mine] < now)
    ready &= ~acq.presented[mine]
    ready &= ~acq.reversed[mine] & ~acq.in_bank[mine]
    return mine[ready]


class TestPurchasesReadySameAsNumpy:
    """The acquirer's choice of purchases for a file (one compiled pass) is the numpy masks'."""

    @staticmethod
    def _check(acq, mine: np.ndarray, now: float) -> None:
        from clearing_sim.model.acquirers import AcquirerSubmissions

        got = AcquirerSubmissions._purchases_ready(acq, mine, now)
        expect = _old_purchases_ready(acq, mine, now)
        assert got.dtype == expect.dtype and np.array_equal(got, expect)

    @settings(max_examples=150, deadline=None)
    @given(st.data(), st.integers(0, 60))
    def test_hypothesis_columns(self, data, n) -> None:
        import types

        flags = st.lists(st.booleans(), min_size=n, max_size=n)
        times = st.lists(st.sampled_from([0.0, 5.0, 10.0, 10.5, float("nan"), float("inf")]), min_size=n,
                         max_size=n)
        acq = types.SimpleNamespace(
            response_code=np.array(data.draw(st.lists(st.sampled_from([APPROVED, 5, 51]), min_size=n, max_size=n)),
                                   dtype=np.int16),
            t_response=np.array(data.draw(times), dtype=np.float64),
            presented=np.array(data.draw(flags), dtype=bool), reversed=np.array(data.draw(flags), dtype=bool),
            in_bank=np.array(data.draw(flags), dtype=bool))
        mine = np.flatnonzero(np.array(data.draw(flags), dtype=bool))
        self._check(acq, mine, data.draw(st.sampled_from([0.0, 5.0, 10.0, 10.25, float("inf")])))

    def test_scenario_acquirers(self) -> None:
        """Every acquirer of a shipped scenario at the end of its run and at half time."""
        from clearing_sim.api import load_scenario

        acq = simulate(load_scenario("scenarios/refunds_and_disputes.yaml"), "fast").acquirers
        acq.presented[::3] = False
        horizon = float(np.nanmax(acq.t_response))
        for a in range(int(acq.acquirer.max()) + 1):
            mine = np.flatnonzero(acq.acquirer == a)
            for now in (horizon / 2, horizon):
                self._check(acq, mine, now)
