"""A whole small run: every authorisation final, books balanced, windows zero-sum."""

import numpy as np
import pytest

from clearing_sim.errors import InvariantError
from clearing_sim.model.authorisation import APPROVED, DO_NOT_HONOUR, INVALID_CARD
from clearing_sim.model.network import check_invariants, horizon_days, simulate
from clearing_sim.model.settlement import WindowState


@pytest.fixture(scope="module")
def state():
    from clearing_sim.scenario import parse_scenario
    from tests.conftest import SMALL_YAML
    return simulate(parse_scenario(SMALL_YAML))


class TestAuthorisation:
    """Each purchase gets exactly one response, in causal order."""

    def test_final_states(self, state) -> None:
        code = state.outcomes["response_code"]
        assert set(np.unique(code)) <= {APPROVED, DO_NOT_HONOUR, INVALID_CARD}
        assert not np.isnan(state.outcomes["t_response_s"]).any()
        assert (state.outcomes["t_response_s"] > state.txn["t_arrival_s"]).all()

    def test_unknown_bins_declined_14(self, state) -> None:
        unknown = state.txn["issuer"] < 0
        assert unknown.any()
        assert (state.outcomes["response_code"][unknown] == INVALID_CARD).all()

    def test_host_fifo_order(self, state) -> None:
        """On a one-server host, service starts in order of arrival at the host."""
        on_b = state.outcomes["routed_issuer"] == 1
        t_in = state.outcomes["t_host_in_s"][on_b]
        t_start = state.outcomes["t_host_start_s"][on_b]
        order = np.argsort(t_in, kind="stable")
        assert np.all(np.diff(t_start[order]) >= 0)
        assert np.all(t_start >= t_in)

    def test_risk_rule_rate(self, state) -> None:
        on_b = state.outcomes["routed_issuer"] == 1
        rate = (state.outcomes["response_code"][on_b] == DO_NOT_HONOUR).mean()
        assert 0.03 < rate < 0.07  # scenario: 5 %


class TestClearingAndSettlement:
    """Every approval is cleared once and settled in a window that sums to zero."""

    def test_approved_all_cleared_once(self, state) -> None:
        approved = state.outcomes["response_code"] == APPROVED
        assert np.array_equal(state.clearing.txn_cycle >= 0, approved)
        recs = state.clearing.records()
        assert len(np.unique(recs["txn_index"])) == len(recs["txn_index"]) == approved.sum()

    def test_cleared_equals_presented(self, state) -> None:
        recs = state.clearing.records()
        approved_value = state.txn["amount_minor"][state.outcomes["response_code"] == APPROVED].sum()
        assert recs["amount_minor"].sum() == approved_value

    def test_windows_zero_sum_and_settled(self, state) -> None:
        assert state.settlement.windows
        for w in state.settlement.windows:
            assert w.state is WindowState.SETTLED
            assert int(w.positions_minor.sum()) == 0
            assert [t.to_state for t in w.transitions] == [
                WindowState.CLOSED, WindowState.PENDING_SETTLEMENT, WindowState.SETTLED]

    def test_t_plus_one(self, state) -> None:
        """A cycle cut on day 1 settles at 10:00 on day 2."""
        first = state.settlement.windows[0]
        assert first.t_close_s == 86400 + 10 * 3600
        assert horizon_days(state.scenario) == 4

    def test_network_keeps_scheme_fees(self, state) -> None:
        recs = state.clearing.records()
        total_fees = sum(int(w.positions_minor[-1]) for w in state.settlement.windows)
        assert total_fees == recs["scheme_fee_issuer_minor"].sum() + recs["scheme_fee_acquirer_minor"].sum()

    def test_invariant_check_catches_a_lost_record(self, state) -> None:
        i = int(np.flatnonzero(state.clearing.txn_cycle >= 0)[0])
        saved = state.clearing.txn_cycle[i]
        state.clearing.txn_cycle[i] = -1
        try:
            with pytest.raises(InvariantError, match="never cleared"):
                check_invariants(state)
        finally:
            state.clearing.txn_cycle[i] = saved


class TestDeterminism:
    """Same scenario and seed give the same outcomes."""

    def test_repeat(self, state) -> None:
        again = simulate(state.scenario)
        for k in state.outcomes:
            assert np.array_equal(state.outcomes[k], again.outcomes[k], equal_nan=True)

    def test_unknown_mode(self, state) -> None:
        with pytest.raises(ValueError, match="unknown mode"):
            simulate(state.scenario, mode="turbo")


def test_a_clearing_file_past_the_format_limits_is_an_internal_error(monkeypatch):
    """A valid scenario whose file breaks a format limit is the run's failure (exit 1), not bad input.

    Found with amounts near 999,999,999,999 fen: 15,000 of them in one file passed PDS 0301's
    16 digits and the run stopped with exit 2, 'BAD_FIELD', leaving a failed run folder (that
    checksum now wraps); a file of more messages than DE 71 can number still breaks a limit.
    """
    import clearing_sim.ipm as ipm
    from clearing_sim.scenario import parse_scenario
    from tests.conftest import SMALL_YAML

    monkeypatch.setattr(ipm, "MAX_MESSAGES", 10)
    with pytest.raises(InvariantError, match="cannot be written: .*PDS 0306"):
        simulate(parse_scenario(SMALL_YAML.replace("transactions_per_day: 3000", "transactions_per_day: 200")))


class TestLateFilesInsideTheRun:
    """A file however late (injected or drawn) still clears and settles before the run ends."""

    @staticmethod
    def late_file(delay_minutes: int, drawn: str = "") -> str:
        from pathlib import Path

        text = (Path(__file__).resolve().parent.parent / "scenarios" / "late_file.yaml").read_text()
        text = text.replace("delay_minutes: 90}", f"delay_minutes: {delay_minutes}}}")
        text = text.replace("transactions_per_day: 240000", "transactions_per_day: 2000")
        if drawn:  # the first acquirer's files are all late by the drawn delay
            text = text.replace("acquirers:\n  - institution: ICBC\n", f"acquirers:\n  - institution: ICBC\n{drawn}", 1)
        return text

    @pytest.mark.parametrize("delay", [3000, 4365, 6000, 20000])
    def test_injected_lateness(self, delay: int) -> None:
        from clearing_sim.scenario import parse_scenario

        sc = parse_scenario(self.late_file(delay))
        st = simulate(sc, "fast")  # checks every window settled or aborted, or raises
        files = [f for f in st.clearing.files if "late" in f.fault]
        assert files and all(f.cycle >= 0 and f.status == "accepted" for f in files)
        assert horizon_days(sc) * 86400.0 > max(f.t_received_s for f in files)
        assert all(w.state is WindowState.SETTLED for w in st.settlement.windows)

    def test_drawn_lateness(self) -> None:
        from clearing_sim.scenario import parse_scenario

        drawn = "    late_probability: 1.0\n    late_delay_minutes: {distribution: constant, value: 3000}\n"
        sc = parse_scenario(self.late_file(0, drawn))
        st = simulate(sc, "fast")
        first = [f for f in st.acquirers.files if f.index == 0]  # ICBC, the first acquirer
        assert first and all(f.t_received_s - f.t_sent_s >= 3000 * 60.0 for f in first)
        assert all(f.cycle >= 0 for f in st.clearing.files)
