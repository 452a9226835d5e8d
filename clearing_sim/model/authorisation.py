"""The authorisation path: acquirer -> switch -> issuer host -> switch -> acquirer.

Owns: detailed mode's SimPy processes (the reference semantics): one process per
authorisation that reaches an issuer host, the hosts' availability changes, the
switch's stand-in clocks (`clearing_sim.model.switch`), each acquirer's reversal
clock, and the final state of every authorisation. Consumes only the draws made up
front by `traffic`; writes outcomes into preallocated arrays, never Python objects
per transaction. Must never decide anything about clearing or settlement.

Response codes (ISO 8583 DE39): `00` approved, `05` do not honour (issuer's risk rule),
`14` invalid card (unknown BIN, declined by the switch), `51` insufficient funds
(open-to-buy), `91` issuer unavailable (stand-in declined, or the issuer's own host is
down for a purchase that stays inside the bank).

Routes. The switch routes a PAN by longest-prefix BIN match; no match: the switch
declines `14` at once (answer leaves it at t_sw). A purchase whose card issuer and
merchant acquirer are the same institution is on-us; when that issuer has
`on_us_in_bank: true` it never reaches the switch: it goes to the bank's host directly
(reaching it hop_acq_switch after the purchase, answer back hop_switch_acq after the
decision), has no switch timeout, stand-in, reversal or network message, is declined
`91` by the bank when its host is down, full, or loses it in a crash (answer leaves at
the crash), and is never presented for network clearing. Host and ledger rules are in
`clearing_sim.model.issuers`, switch rules in `clearing_sim.model.switch`.

Timeline of a switched purchase (all as values computed from the up-front draws):
t_sw = t_arrival + hop_acq_switch; t_host_in = t_sw + hop_switch_issuer; an issuer
answer leaves the switch at t_host_end + hop_issuer_switch, a stand-in answer at its
decision time; the answer reaches the acquirer hop_switch_acq after leaving the switch
(`t_response_s`).

Reversals. Each acquirer's timer expires at t_arrival + auth_timeout. If the answer
has not reached the acquirer by then (an answer arriving exactly then is in time), the
acquirer sends an 0400: it reaches the switch hop_rev_acq_switch later (repeated while
the switch is down), the switch answers 0410 at once and forwards the reversal to the
issuer by store-and-forward.
A reversed authorisation is never presented for clearing, whatever its answer.

Final states (exactly one per authorisation): `approved` (00 from the issuer, not
reversed), `approved_stand_in`, `declined` (05, 14, 51 from the issuer or the switch's
BIN table), `declined_stand_in` (91), `reversed` (any answer, reversed by the acquirer),
`in_bank_approved`, `in_bank_declined`, `lost_in_switch_reversed` (a switch restart lost
it: no answer, `91` at the acquirer's timeout, reversed; rules in
`clearing_sim.model.switch_restarts`).

Simultaneous events: host availability changes come first at their instant; arrivals
at a host are taken in (t_host_in, transaction id) order; decisions in the order
services end, ties in the order services started. Other exact ties between different
transactions need equal sums of continuous draws; where they occur SimPy's scheduling
order decides, and with zero-latency hops and zero service times an answer produced
at exactly a timer's deadline may count as late.
"""

from __future__ import annotations

import math

import attrs
import numpy as np
import simpy

from clearing_sim.errors import InvariantError
from clearing_sim.model import fast_kernels
from clearing_sim.model.issuers import Availability, HostState, OpenToBuy, check_ledger
from clearing_sim.model.switch import ADVICE, REVERSAL, StandInLimits, StoreAndForward, switch_timer, wait_until
from clearing_sim.model.switch_restarts import SwitchRestarts
from clearing_sim.scenario import Scenario

APPROVED = 0
DO_NOT_HONOUR = 5
INVALID_CARD = 14
INSUFFICIENT_FUNDS = 51
ISSUER_UNAVAILABLE = 91
RESPONSE_CODES = (APPROVED, DO_NOT_HONOUR, INVALID_CARD, INSUFFICIENT_FUNDS, ISSUER_UNAVAILABLE)

# How a purchase is routed.
ROUTE_UNKNOWN_BIN = 0
ROUTE_NETWORK = 1
ROUTE_IN_BANK = 2
ROUTES = ("unknown_bin", "network", "in_bank")

# What happened at the issuer host.
HOST_NOT_SENT = 0  # unknown BIN, or the issuer was signed off
HOST_LOST_ON_ARRIVAL = 1  # the host was down when the request reached it
HOST_DROPPED = 2  # the host's queue was full
HOST_LOST_WAITING = 3  # waiting in the queue when the host went down
HOST_LOST_IN_SERVICE = 4  # in service when the host went down
HOST_ANSWERED = 5  # decided, answer in time (or in the bank)
HOST_LATE = 6  # decided, but the answer reached the switch after its timeout: void
HOST_OUTCOMES = ("not_sent", "lost_on_arrival", "dropped", "lost_waiting", "lost_in_service", "answered", "late")

FINAL_STATES = ("approved", "approved_stand_in", "declined", "declined_stand_in", "reversed",
                "in_bank_approved", "in_bank_declined", "lost_in_switch_reversed")

OUTCOME_COLUMNS = {
    "routed_issuer": np.int16,
    "route": np.int8,
    "t_switch_in_s": np.float64,
    "t_host_in_s": np.float64,
    "t_host_start_s": np.float64,
    "t_host_end_s": np.float64,
    "host_outcome": np.int8,
    "t_switch_response_s": np.float64,
    "t_response_s": np.float64,
    "response_code": np.int16,
    "stand_in": np.bool_,
    "reversed": np.bool_,
    "t_reversal_s": np.float64,
    "t_advice_applied_s": np.float64,
    "t_reversal_applied_s": np.float64,
    "final_state": np.int8,
    "lost_in_switch": np.bool_,  # a switch restart lost it (clearing_sim.model.switch_restarts)
}


# Each outcome column's value until something decides it: NaN, False or -1.
OUTCOME_FILLS = {k: np.nan if d == np.float64 else False if d == np.bool_ else -1 for k, d in OUTCOME_COLUMNS.items()}


def empty_outcomes(n: int) -> dict[str, np.ndarray]:
    """Outcome columns for `n` authorisations: NaN, -1 or False until decided."""
    return {k: np.full(n, OUTCOME_FILLS[k], dtype=d) for k, d in OUTCOME_COLUMNS.items()}


@attrs.frozen
class AuthorisationPlan:
    """Every authorisation's path before anything queues: its route, the times fixed by its
    draws, whether it can reach its host, and the outcomes already known (unknown BINs,
    in-bank purchases whose host is down). Both fidelity modes start from it."""

    issuer: np.ndarray
    acquirer: np.ndarray
    route: np.ndarray
    network: np.ndarray
    in_bank: np.ndarray
    unknown: np.ndarray
    switched: np.ndarray
    t_sw: np.ndarray
    t_host_in: np.ndarray
    deadline: np.ndarray
    acq_deadline: np.ndarray
    switch_timeout_s: float
    availability: list
    signed_off: np.ndarray
    lost_on_arrival: np.ndarray
    visits: np.ndarray
    host_outcome: np.ndarray
    out: dict
    restarts: SwitchRestarts
    switch_lost: np.ndarray  # the 0100 reached the switch while it was down
    next_restart: np.ndarray  # first switch restart strictly after t_sw (inf: none)
    t_rev_at_switch: np.ndarray  # when an 0400 sent at the acquirer's timeout gets through
    rev_repeats: np.ndarray  # 0401 repeats that took


def plan_authorisations(scenario: Scenario, txn: dict[str, np.ndarray], routed_issuer: np.ndarray) -> AuthorisationPlan:
    """The static part of the authorisation path (see the module docstring)."""
    iss = routed_issuer.astype(np.int64)
    acq = txn["acquirer"].astype(np.int64)
    n = len(txn["txn_id"])
    out = empty_outcomes(n)
    out["routed_issuer"][:] = routed_issuer

    # --- routes -----------------------------------------------------------------
    inst_of_issuer = np.array([scenario.institution_index(i.institution) for i in scenario.issuers] + [-1])
    inst_of_acq = np.array([scenario.institution_index(a.institution) for a in scenario.acquirers])
    keeps_on_us = np.array([i.on_us_in_bank for i in scenario.issuers] + [False])
    in_bank = (iss >= 0) & (inst_of_issuer[iss] == inst_of_acq[acq]) & keeps_on_us[iss]
    route = np.where(iss < 0, ROUTE_UNKNOWN_BIN, np.where(in_bank, ROUTE_IN_BANK, ROUTE_NETWORK))
    out["route"][:] = route
    network = route == ROUTE_NETWORK
    unknown = route == ROUTE_UNKNOWN_BIN
    switched = ~in_bank

    # --- static timeline values ---------------------------------------------------
    t = txn["t_arrival_s"]
    h1, h2 = txn["hop_acq_switch_s"], txn["hop_switch_issuer_s"]
    h3, h4 = txn["hop_issuer_switch_s"], txn["hop_switch_acq_s"]
    t_sw = np.where(switched, t + h1, np.nan)
    t_host_in = np.where(network, t_sw + h2, np.where(in_bank, t + h1, np.nan))
    switch_timeout_s = scenario.network.switch_timeout_ms / 1000.0
    deadline = t_sw + switch_timeout_s
    acq_timeout_s = np.array([a.auth_timeout_ms / 1000.0 for a in scenario.acquirers])
    acq_deadline = t + acq_timeout_s[acq]
    out["t_switch_in_s"][:] = t_sw

    restarts = SwitchRestarts(scenario)
    switch_lost = switched & restarts.down(t_sw)
    next_restart = restarts.next_restart(t_sw)
    t_rev_at_switch, rev_repeats = restarts.reversal_arrival(
        acq_deadline, txn["hop_rev_acq_switch_s"], acq_timeout_s[acq])
    availability = [Availability(i.host) for i in scenario.issuers]
    signed_off = np.zeros(n, dtype=bool)
    lost_on_arrival = np.zeros(n, dtype=bool)
    for k, av in enumerate(availability):
        if not av.starts:  # a host that is never down signs nothing off and loses nothing
            continue
        mine = iss == k
        net_k = mine & network & ~switch_lost
        signed_off[net_k] = av.announced_down(t_sw[net_k])
        reach = mine & ~signed_off & ~switch_lost
        lost_on_arrival[reach] = av.down(t_host_in[reach])
    visits = (network | in_bank) & ~signed_off & ~lost_on_arrival & ~switch_lost

    # --- static outcomes -------------------------------------------------------------
    code = out["response_code"]
    resp = out["t_response_s"]
    host_outcome = np.where(signed_off | unknown | switch_lost, HOST_NOT_SENT, -1)
    host_outcome[lost_on_arrival] = HOST_LOST_ON_ARRIVAL
    out["lost_in_switch"][:] = switch_lost
    unknown_seen = unknown & ~switch_lost
    code[unknown_seen] = INVALID_CARD
    out["t_switch_response_s"][unknown_seen] = t_sw[unknown_seen]
    resp[unknown_seen] = t_sw[unknown_seen] + h4[unknown_seen]
    bank_down = in_bank & lost_on_arrival
    code[bank_down] = ISSUER_UNAVAILABLE
    resp[bank_down] = t_host_in[bank_down] + h4[bank_down]
    with np.errstate(invalid="ignore"):
        out["t_host_in_s"][:] = np.where(visits | lost_on_arrival, t_host_in, np.nan)

    return AuthorisationPlan(
        issuer=iss, acquirer=acq, route=route, network=network, in_bank=in_bank, unknown=unknown,
        switched=switched, t_sw=t_sw, t_host_in=t_host_in, deadline=deadline, acq_deadline=acq_deadline,
        switch_timeout_s=switch_timeout_s, availability=availability, signed_off=signed_off,
        lost_on_arrival=lost_on_arrival, visits=visits, host_outcome=host_outcome, out=out,
        restarts=restarts, switch_lost=switch_lost, next_restart=next_restart,
        t_rev_at_switch=t_rev_at_switch, rev_repeats=rev_repeats,
    )


class DetailedAuthorisation:
    """Every authorisation through SimPy (the reference semantics); see the module docstring."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, txn: dict[str, np.ndarray],
                 routed_issuer: np.ndarray):
        self.env = env
        self.scenario = scenario
        self.txn = txn
        n = len(txn["txn_id"])
        self.n = n
        p = self.plan = plan_authorisations(scenario, txn, routed_issuer)
        out = self.out = p.out
        iss, acq = p.issuer, p.acquirer
        network, in_bank, switched = p.network, p.in_bank, p.switched
        t_sw, t_host_in, deadline, acq_deadline = p.t_sw, p.t_host_in, p.deadline, p.acq_deadline
        signed_off, visits = p.signed_off, p.visits
        h3, h4 = txn["hop_issuer_switch_s"], txn["hop_switch_acq_s"]
        self.switch_timeout_s = p.switch_timeout_s
        self.availability = p.availability
        resp = out["t_response_s"]
        host_outcome = p.host_outcome

        # --- per-transaction data for the processes, as plain lists --------------------
        self.ledger = OpenToBuy(iss, txn["card"], txn["credit_limit_minor"])
        rates = np.array([i.risk_decline_rate for i in scenario.issuers] + [0.0])
        self._issuer = iss.tolist()
        self._in_bank = in_bank.tolist()
        self._t_switch = t_sw.tolist()
        self._t_host_in = t_host_in.tolist()
        self._deadline = deadline.tolist()
        self._acq_deadline = acq_deadline.tolist()
        self._service = txn["service_s"].tolist()
        self._h3 = h3.tolist()
        self._h4 = h4.tolist()
        self._rev_hops = (txn["hop_rev_acq_switch_s"].tolist(), txn["hop_rev_switch_acq_s"].tolist())
        self._t_rev_at_switch = p.t_rev_at_switch.tolist()
        self._next_restart = p.next_restart.tolist()
        self._lost_in_switch = out["lost_in_switch"]
        self._risk = (txn["risk_u"] < rates[iss]).tolist()
        self._amount = txn["amount_minor"].tolist()
        self._slot = self.ledger.slot.tolist()
        self._known_in_time = bytearray(n)  # the issuer's answer is known to reach the switch in time
        self._held = bytearray(n)  # the issuer's ledger holds this authorisation's amount
        self._reversed_at_issuer = bytearray(n)
        self._resp = resp.tolist()  # when the answer reaches the acquirer; inf while unknown
        for i in np.flatnonzero(np.isnan(resp)).tolist():
            self._resp[i] = math.inf
        self._host_outcome = host_outcome.tolist()
        self._t_start = [math.nan] * n
        self._t_end = [math.nan] * n
        self._t_switch_response = out["t_switch_response_s"].tolist()
        self._grant: list[simpy.Event | None] = [None] * n
        # Requests at a host (waiting or in service) not yet decided or lost; drain() runs on
        # until none is left, as a long queue can outlast the settlement horizon.
        self._at_hosts = int(visits.sum())
        self._hosts_idle: simpy.Event | None = None
        # The two columns acquirers read during the run, bound once (no dict lookup per decision).
        self._code_out = out["response_code"]
        self._resp_out = out["t_response_s"]
        self._otb = self.ledger.open_to_buy

        self.hosts = [HostState(k, iss_.host, av) for k, (iss_, av)
                      in enumerate(zip(scenario.issuers, self.availability))]
        self.queue_depth_max = [0] * len(scenario.issuers)
        self.stand_in_limits = StandInLimits(scenario)
        self.saf = StoreAndForward(
            env, self.availability, self.switch_timeout_s,
            (txn["hop_advice_out_s"].tolist(), txn["hop_rev_out_s"].tolist()),
            (txn["hop_advice_back_s"].tolist(), txn["hop_rev_back_s"].tolist()),
            self._apply_at_issuer, switch_down=p.restarts,
        )

        # --- processes -----------------------------------------------------------------------
        for host, av in zip(self.hosts, self.availability):
            for t_change, down, cap in av.timeline():
                # Scheduled now, before any other event: a change comes first at its instant.
                ev = env.timeout(t_change)
                ev.callbacks.append(lambda _ev, h=host, tc=t_change, d=down, c=cap: self._availability(h, tc, d, c))
        order = np.flatnonzero(visits)
        order = order[np.lexsort((order, t_host_in[order]))]
        env.process(self._arrivals(order.tolist()))
        txn_ids = np.arange(n)
        for k in range(len(scenario.issuers)):
            a = np.flatnonzero(network & (iss == k) & signed_off)
            a = a[np.lexsort((a, t_sw[a]))]
            b = np.flatnonzero(network & (iss == k) & ~signed_off & ~p.switch_lost)
            b = b[np.lexsort((b, deadline[b]))]
            env.process(switch_timer(env, a.tolist(), b.tolist(), self._t_switch, self._deadline,
                                     self._known_in_time, self._stand_in))
        for j in range(len(scenario.acquirers)):
            mine = txn_ids[switched & (acq == j)]  # arrival order; deadlines are monotone per acquirer
            env.process(self._acquirer_timer(mine.tolist()))

    # --- the issuer host ----------------------------------------------------------------

    def _arrivals(self, order: list[int]):
        env = self.env
        t_host_in = self._t_host_in
        visit = self._visit
        process = env.process
        for i in order:
            t = t_host_in[i]
            if t > env.now:
                yield env.timeout(t - env.now)
            process(visit(i))

    def _visit(self, i: int):
        """One request at its host: queue, service, decision, release."""
        k = self._issuer[i]
        host = self.hosts[k]
        if host.busy < host.cap:  # then nobody is waiting
            host.busy += 1
            t_start = self._t_host_in[i]
        else:
            waiting = host.waiting
            if len(waiting) >= host.queue_limit:
                self._lost(i, HOST_DROPPED, self._t_host_in[i])
                return
            grant = self._grant[i] = simpy.Event(self.env)
            waiting.append(i)
            if len(waiting) > host.queue_depth_max:
                host.queue_depth_max = len(waiting)
            t_start = yield grant
        service = self._service[i]
        t_end = t_start + service
        self._t_start[i] = t_start
        crash = host.crash_between(t_start, t_end)
        if crash is not None:
            self._lost(i, HOST_LOST_IN_SERVICE, crash)
            return  # the crash frees the server
        in_bank = self._in_bank[i]
        if in_bank:
            in_time = True
        else:
            t_answer = t_end + self._h3[i]
            in_time = t_answer <= self._deadline[i]
            if in_time:
                self._known_in_time[i] = 1  # in time, or its stand-in clock is lost with it
                if t_answer > self._next_restart[i]:
                    self._lost_in_switch[i] = True  # the switch restarts while holding it
                else:
                    self._t_switch_response[i] = t_answer
                    self._resp[i] = t_answer + self._h4[i]
        epoch = host.epoch
        yield self.env.timeout(service)
        self._t_end[i] = t_end
        if in_time:
            self._host_outcome[i] = HOST_ANSWERED
            if self._risk[i]:
                code = DO_NOT_HONOUR
            else:
                slot = self._slot[i]
                amount = self._amount[i]
                otb = self._otb
                if amount > otb[slot]:
                    code = INSUFFICIENT_FUNDS
                else:
                    code = APPROVED
                    if not self._reversed_at_issuer[i]:
                        otb[slot] -= amount
                        self._held[i] = 1
            self._code_out[i] = code
            if in_bank:
                self._resp[i] = t_end + self._h4[i]
            self._resp_out[i] = self._resp[i]
        else:
            self._host_outcome[i] = HOST_LATE
        self._left_host()
        if host.epoch == epoch:
            host.busy -= 1
            self._start_waiting(host, t_end)

    def _left_host(self) -> None:
        """One request left its host (decided or lost)."""
        self._at_hosts -= 1
        if not self._at_hosts and self._hosts_idle is not None:
            self._hosts_idle.succeed()

    def _start_waiting(self, host: HostState, t: float) -> None:
        waiting = host.waiting
        grant = self._grant
        while waiting and host.busy < host.cap:
            j = waiting.popleft()
            host.busy += 1
            ev = grant[j]
            grant[j] = None
            ev.succeed(t)

    def _lost(self, i: int, how: int, t: float) -> None:
        """Request `i` will never be answered by its host (`t`: when that became so)."""
        self._host_outcome[i] = how
        self._left_host()
        if self._in_bank[i]:  # the bank declines it itself
            self._resp[i] = t + self._h4[i]
            self.out["response_code"][i] = ISSUER_UNAVAILABLE
            self.out["t_response_s"][i] = self._resp[i]

    def _availability(self, host: HostState, t: float, down: bool, cap: int) -> None:
        """The host's availability changes at `t` (a callback, first at its instant)."""
        if down:
            for j in host.waiting:
                self._grant[j] = None
                self._lost(j, HOST_LOST_WAITING, t)
            host.waiting.clear()
            host.busy = 0
            host.epoch += 1
            host.cap = 0
            return
        host.cap = cap
        self._start_waiting(host, t)

    def _apply_at_issuer(self, i: int, kind: int, t: float) -> None:
        """A store-and-forward message reaches the issuer at `t` and changes its ledger."""
        slot = self._slot[i]
        if kind == ADVICE:
            self.out["t_advice_applied_s"][i] = t
            if not self._reversed_at_issuer[i] and not self._held[i]:
                self.ledger.open_to_buy[slot] -= self._amount[i]
                self._held[i] = 1
        else:
            self.out["t_reversal_applied_s"][i] = t
            self._reversed_at_issuer[i] = 1
            if self._held[i]:
                self.ledger.open_to_buy[slot] += self._amount[i]
                self._held[i] = 0

    # --- the switch and the acquirer ---------------------------------------------------

    def _stand_in(self, i: int, t: float) -> None:
        """The switch answers for issuer of `i` at time `t` (unless a restart lost its clock)."""
        if t > self._next_restart[i]:
            self._lost_in_switch[i] = True
            return
        k = self._issuer[i]
        out = self.out
        out["stand_in"][i] = True
        if self.stand_in_limits.approve(k, self._amount[i], t):
            out["response_code"][i] = APPROVED
            self.saf.enqueue(k, i, ADVICE, t)
        else:
            out["response_code"][i] = ISSUER_UNAVAILABLE
        self._t_switch_response[i] = t
        self._resp[i] = t + self._h4[i]
        out["t_response_s"][i] = self._resp[i]

    def _acquirer_timer(self, txns: list[int]):
        """One acquirer's reversal clock: wakes only at deadlines whose answer is not known in time."""
        env = self.env
        resp = self._resp
        deadline = self._acq_deadline
        reached = -math.inf
        j = 0
        n = len(txns)
        while j < n:
            i = txns[j]
            d = deadline[i]
            if resp[i] <= d:
                j += 1
                continue
            if d > reached:
                yield from wait_until(env, d)
                # Once more at d, after every event already due at d: a stand-in decided
                # exactly at d (zero-latency hops) answers in time, and must be seen first.
                yield env.timeout(0.0)
                reached = d
                continue  # look again: the answer may have become known meanwhile
            self._reverse(i, d)
            j += 1

    def _reverse(self, i: int, t: float) -> None:
        """The acquirer gives up on `i` at `t` and sends an 0400."""
        out = self.out
        out["reversed"][i] = True
        t_at_switch = self._t_rev_at_switch[i]  # t + hop, later if the 0400 reaches a down switch
        out["t_reversal_s"][i] = t_at_switch
        k = self._issuer[i]
        if k < 0:
            return  # the switch answers it; there is no issuer to tell
        ev = self.env.timeout(max(0.0, t_at_switch - self.env.now))
        ev.callbacks.append(lambda _ev: self._forward_reversal(k, i, t_at_switch))

    def _forward_reversal(self, k: int, i: int, t_at_switch: float) -> None:
        """The 0400 reaches the switch: queue its 0420 once every stand-in decided at this instant is queued.

        A store-and-forward queue takes, at one instant, advices before reversals. The switch's stand-in
        clock for a deadline at this instant was scheduled earlier (at a previous decision), so it goes
        before a zero-delay event scheduled now; without this step a stand-in and its own 0400 reaching
        the switch at once (constant hops, auth_timeout_ms == switch_timeout_ms) were queued in the order
        SimPy had scheduled them, which depended on when the issuer's previous stand-in was decided.
        """
        ev = self.env.timeout(0.0)
        ev.callbacks.append(lambda _ev: self.saf.enqueue(k, i, REVERSAL, t_at_switch))

    # --- the end ----------------------------------------------------------------------------

    def drain(self) -> None:
        """Run on, past the horizon, until every host has decided (or lost) every request
        it took and every advice and reversal advice is acknowledged.

        Only hosts and store-and-forward are left by then (outages and restarts fall on
        traffic days, so every link delivers in the end); a host queue of slow services, or
        a store-and-forward queue behind a long outage or slow links, can take longer than
        the settlement horizon. Fast mode needs no such step: it computes every decision
        and acknowledgement, whenever it falls.
        """
        if self._at_hosts:
            self._hosts_idle = self.env.event()
            self.env.run(until=self._hosts_idle)
        if self.saf.pending():
            self.env.run(until=self.saf.drained())

    def finish(self) -> None:
        """Copy the processes' lists into the outcome arrays and set every final state."""
        out = self.out
        out["t_host_start_s"][:] = self._t_start
        out["t_host_end_s"][:] = self._t_end
        out["host_outcome"][:] = self._host_outcome
        out["t_switch_response_s"][:] = self._t_switch_response
        settle_lost_in_switch(out, self.plan.acq_deadline)
        self.queue_depth_max = [h.queue_depth_max for h in self.hosts]
        out["final_state"][:] = final_states(out)

    def held(self) -> np.ndarray:
        """Whether the issuer's ledger holds each authorisation's amount at the end."""
        return np.frombuffer(bytes(self._held), dtype=np.uint8).astype(bool)

    def check(self) -> None:
        """End-of-run checks of the authorisation side; raises InvariantError."""
        out = self.out
        if self.saf.pending():
            raise InvariantError(f"{self.saf.pending()} advice(s) or reversal(s) never reached their issuer")
        problem = check_ledger(self.ledger, self.held(), self.txn["amount_minor"])
        if problem:
            raise InvariantError(problem)
        code = out["response_code"]
        keeps = (code == APPROVED) & ~out["reversed"]
        if not np.array_equal(self.held() & (out["routed_issuer"] >= 0), keeps & (out["routed_issuer"] >= 0)):
            raise InvariantError("the issuers' ledgers disagree with the approved, unreversed authorisations")
        check_final_states(out, self.plan.acq_deadline, self.switch_timeout_s)


def settle_lost_in_switch(out: dict[str, np.ndarray], acq_deadline: np.ndarray) -> None:
    """Authorisations a switch restart lost: the acquirer's own `91` at its timeout, no switch answer."""
    lost = out["lost_in_switch"]
    if lost.any():
        out["response_code"][lost] = ISSUER_UNAVAILABLE
        out["t_response_s"][lost] = acq_deadline[lost]
        out["t_switch_response_s"][lost] = np.nan


def final_states(out: dict[str, np.ndarray]) -> np.ndarray:
    """Each authorisation's final state (index into FINAL_STATES); raises InvariantError if not exactly one.

    The states, for switched purchases (route not in-bank) with `reversed` meaning reversed
    and not lost in the switch: approved (code approved, not stood in, not reversed),
    approved_stand_in, declined (do not honour, invalid card, insufficient funds; not stood
    in), declined_stand_in (issuer unavailable, stood in), reversed (and decided: a code and
    an answer time); in-bank: in_bank_approved, in_bank_declined (do not honour,
    insufficient funds, issuer unavailable); and lost_in_switch_reversed (switched, lost,
    reversed, not stood in, issuer unavailable). One compiled pass over the rows
    (`fast_kernels.final_states`).
    """
    code = out["response_code"]
    state = np.zeros(len(code), dtype=np.int8)
    n_bad, first, first_count = fast_kernels.final_states(code, out["route"], out["stand_in"], out["reversed"],
                                                          out["t_response_s"], out["lost_in_switch"], state)
    if n_bad:
        raise InvariantError(f"{n_bad} authorisation(s) do not end in exactly one final state "
                             f"(first: index {first}, code {int(code[first])}, "
                             f"{'no' if first_count == 0 else 'several'} state(s))")
    return state


def check_final_states(out: dict[str, np.ndarray], acq_deadline: np.ndarray, switch_timeout_s: float) -> None:
    """Cross-checks between the outcome columns (`acq_deadline`: each purchase's acquirer deadline,
    float64 s); raises InvariantError."""
    route = out["route"]
    resp = out["t_response_s"]
    if np.isnan(resp).any() or (out["response_code"] < 0).any():
        raise InvariantError(f"{int(np.isnan(resp).sum())} authorisation(s) never got an answer")
    switched = route != ROUTE_IN_BANK
    late = switched & (resp > acq_deadline)
    lost = out["lost_in_switch"]
    if (lost & ~switched).any() or (lost & late).any():
        raise InvariantError("an authorisation lost in the switch was kept in the bank or answered late")
    if not np.array_equal(late | lost, out["reversed"]):
        raise InvariantError("reversals do not match the answers that reached acquirers after their timeout "
                             "and the authorisations lost in the switch")
    if (out["stand_in"] & (route != ROUTE_NETWORK)).any():
        raise InvariantError("the switch stood in for a purchase it never forwarded")
    sw = out["t_switch_response_s"]
    net = route == ROUTE_NETWORK
    if (sw[net] > out["t_switch_in_s"][net] + switch_timeout_s).any():
        raise InvariantError("the switch answered after its own timeout")
