"""What happens in a window when a net debtor cannot fund: the three default rules.

Owns: `resolve`, a pure function from a window's transfers (with the record each
belongs to), each participant's funding capacity and the scenario's rule to the
positions that settle, who defaulted in which round, and what was unwound, drawn
or shared; and `cover_one`, the same question asked of the largest net debtor.
Netting is `clearing_sim.netting`'s. Must never import SimPy, modify its inputs,
loop in Python over records (only over participants and rounds), or return
positions that do not sum to zero.

A participant defaults in a round when the cash it must pay from its account is
larger than its capacity (what the settlement bank will debit: min(net debit
cap, balance + collateral)). The rules:

``unwind``
    Every record with a transfer to or from a defaulter is taken out of the
    window and the rest is re-netted. A survivor that can no longer fund (it
    lost receipts from the defaulter) defaults in the next round, and so on
    until no one fails: that chain is the cascade, reported round by round.
    All participants that fail in one round are removed together.

    What happens to unwound records. Deferred net settlement systems with
    unwind provisions (CHIPS before its 1990 loss-sharing rules; Payments
    Canada's ACSS until 2014; unwinding as described in the BIS Lamfalussy
    report of 1990) delete the provisional transfers involving the failed
    participant and recalculate the others' obligations; the deleted transfers
    are not settled by the system but handed back to the participants that
    submitted them, and the claims on the defaulter stand outside the system.
    This model does the same: an unwound record is not settled in this window
    or any later one. It is reported (per window: records, value and the
    defaulters; per record: settlement status ``unwound``), stays in the
    exposure figure (approved, never settled) to the end of the run and has no
    settlement lag. Re-submission to a later window is not modelled.

``loss_sharing``
    The defaulter pays what it can (its capacity); the shortfall is shared by
    the survivors pro rata to the key (``bilateral_exposure``: what the
    defaulters owed each survivor bilaterally, net, in this window, falling
    back to ``equal`` when no survivor is exposed; ``equal``; or ``fixed``
    weights), in whole fen by largest remainder (ties to the lower index). A
    survivor that cannot fund its share defaults in the next round and its own
    shortfall is shared again. Some participant always survives (the survivors'
    positions sum to what the defaulters pay, so one of them is never a net
    debtor), so the window settles; a window is ABORTED only by an operator
    (`SettlementWindow.abort`).

``guarantee_fund``
    As ``loss_sharing``, but each shortfall is first drawn from the
    defaulter's own pre-funded contribution, then from the survivors'
    contributions pro rata to what is left of them, and only the rest is
    shared. Fund draws are paid from the fund, not from the accounts, so they
    never make a survivor default.

Every rule keeps the window's positions summing to exactly zero: what a
defaulter does not pay is exactly what the others pay in its place.
"""

from __future__ import annotations

from fractions import Fraction

import attrs
import numpy as np

from clearing_sim import netting

UNLIMITED = int(np.iinfo(np.int64).max)  # capacity of a participant without an account

RULES = ("unwind", "loss_sharing", "guarantee_fund")


@attrs.frozen
class Default:
    """One participant that could not fund, in the round it failed."""

    participant: int
    round: int
    net_debit_minor: int  # cash it had to pay from its account in that round
    capacity_minor: int   # cash it could pay


@attrs.frozen
class Resolution:
    """What settles in a window after its default rule (all amounts in fen, int64)."""

    rule: str
    settled: bool                 # False: the window is aborted
    reason: str
    obligations: np.ndarray       # net positions of all transfers, before the rule
    positions: np.ndarray         # net positions that settle (zeros if aborted)
    defaults: tuple[Default, ...]
    keep: np.ndarray | None       # per transfer: settles (None: all of them)
    fund_draw: np.ndarray         # per participant: paid from its guarantee-fund contribution
    loss_share: np.ndarray        # per participant: paid to cover others' shortfalls
    shortfall_minor: int          # total that defaulters did not pay
    unwound_records: np.ndarray | None = None  # sorted ids of the records taken out (unwind)

    @property
    def account_flow(self) -> np.ndarray:
        """Per participant: cash into (+) or out of (-) its account; positions minus fund draws."""
        return self.positions + self.fund_draw

    @property
    def defaulted(self) -> list[int]:
        return [d.participant for d in self.defaults]


def allocate(total: int, weights: list[Fraction]) -> list[int]:
    """Split `total` fen pro rata to `weights` in whole fen (largest remainder, ties to the lower index)."""
    wsum = sum(weights, Fraction(0))
    if total == 0 or not weights:
        return [0] * len(weights)
    if wsum <= 0:
        raise ValueError("weights must have a positive sum")
    quotas = [total * w / wsum for w in weights]
    shares = [q.numerator // q.denominator for q in quotas]
    left = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - shares[i]), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def _empty(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.int64)


def resolve(rule: str, payer: np.ndarray, payee: np.ndarray, amount: np.ndarray, record: np.ndarray,
            n: int, capacity: np.ndarray, *, fund: np.ndarray | None = None,
            loss_key: str = "equal", weights: np.ndarray | None = None,
            obligations: np.ndarray | None = None) -> Resolution:
    """Apply the default rule to one window's transfers.

    `payer`, `payee`, `amount` (fen) and `record` (the record each transfer belongs
    to) are equal-length arrays; `capacity[i]` is the most participant i can pay
    from its account (UNLIMITED for no limit); `fund[i]` its guarantee-fund
    contribution left; `weights[i]` its fixed loss-sharing weight. `obligations`,
    if given, are the already netted positions of all transfers. Raises ValueError
    for an unknown rule or key.
    """
    if rule not in RULES:
        raise ValueError(f"unknown default rule {rule!r} (one of: {', '.join(RULES)})")
    if obligations is None:
        obligations = netting.multilateral_positions(payer, payee, amount, n)
    capacity = np.asarray(capacity, dtype=np.int64)
    if rule == "unwind":
        return _unwind(payer, payee, amount, record, n, capacity, obligations)
    return _share(rule, payer, payee, amount, n, capacity, obligations,
                  fund if fund is not None else _empty(n), loss_key, weights)


def _failing(need: np.ndarray, capacity: np.ndarray, defaulted: np.ndarray) -> np.ndarray:
    return np.flatnonzero((need > capacity) & ~defaulted)


class _RecordDropper:
    """Which transfers to keep once some records are out, in O(transfers).

    Record ids from clearing are dense, so a bitmap over [min, max] replaces a
    sort-based `np.isin`; sparse ids fall back to `np.isin`.
    """

    def __init__(self, record: np.ndarray):
        self.record = record
        self.lo = int(record.min()) if len(record) else 0
        span = (int(record.max()) - self.lo + 1) if len(record) else 0
        self.dense = span <= 4 * len(record) + 1024
        self.span = span

    def drop(self, involved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(keep mask per transfer, sorted ids of the records dropped)."""
        if self.dense:
            bad = np.zeros(self.span, dtype=bool)
            bad[self.record[involved] - self.lo] = True
            return ~bad[self.record - self.lo], np.flatnonzero(bad) + self.lo
        ids = np.unique(self.record[involved])
        return ~np.isin(self.record, ids), ids


def _unwind(payer, payee, amount, record, n, capacity, obligations) -> Resolution:
    positions = obligations.copy()
    defaulted = np.zeros(n, dtype=bool)
    defaults: list[Default] = []
    keep = None
    unwound = None
    dropper = _RecordDropper(record)
    for rnd in range(1, n + 2):
        failing = _failing(-positions, capacity, defaulted)
        if len(failing) == 0:
            break
        if rnd > n:  # pragma: no cover - each round removes at least one participant
            raise AssertionError("unwind did not converge")
        defaults += [Default(int(d), rnd, int(-positions[d]), int(capacity[d])) for d in failing]
        defaulted[failing] = True
        involved = defaulted[payer] | defaulted[payee]
        keep, unwound = dropper.drop(involved)
        positions = netting.multilateral_positions(payer[keep], payee[keep], amount[keep], n)
    netting.check_zero_sum(positions, what="positions after unwind")
    if defaults:
        reason = f"unwound the records of {len(defaults)} participant(s) in {defaults[-1].round} round(s)"
    else:
        reason = "every net debtor funded"
    return Resolution("unwind", True, reason, obligations, positions, tuple(defaults), keep,
                      _empty(n), _empty(n), 0, unwound)


def _exposure_weights(payer, payee, amount, n, defaulters: list[int]) -> np.ndarray:
    """Per participant: what the defaulters owed it, bilaterally net, in this window (fen)."""
    gross = netting.bilateral_obligations(payer, payee, amount, n)
    owed = np.zeros(n, dtype=np.int64)
    for d in defaulters:
        owed += np.maximum(gross[d, :] - gross[:, d], 0)
    return owed


def _share(rule, payer, payee, amount, n, capacity, obligations, fund, loss_key, weights) -> Resolution:
    positions = obligations.astype(np.int64).copy()
    fund_left = np.asarray(fund, dtype=np.int64).copy()
    fund_draw = _empty(n)
    cover_draw = _empty(n)  # fund draws made to cover others' shortfalls
    defaulted = np.zeros(n, dtype=bool)
    defaults: list[Default] = []
    for rnd in range(1, n + 2):
        need = -(positions + fund_draw)  # cash from the account; fund draws are pre-funded
        failing = _failing(need, capacity, defaulted)
        if len(failing) == 0:
            break
        if rnd > n:  # pragma: no cover - each round defaults at least one participant
            raise AssertionError("loss sharing did not converge")
        shortfall = 0
        for d in failing:  # a loop over participants, not records
            short = int(need[d]) - int(capacity[d])
            defaults.append(Default(int(d), rnd, int(need[d]), int(capacity[d])))
            if rule == "guarantee_fund":
                own = min(short, int(fund_left[d]))
                fund_left[d] -= own
                fund_draw[d] += own
                short -= own        # paid from its own contribution, part of what it pays
            positions[d] += short   # what it does not pay at all
            shortfall += short
        defaulted[failing] = True
        survivors = np.flatnonzero(~defaulted)
        if shortfall and rule == "guarantee_fund":
            left = fund_left[survivors]
            pool = int(left.sum())
            if pool:
                draw = allocate(min(shortfall, pool), [Fraction(int(x)) for x in left])
                for i, x in zip(survivors, draw):
                    fund_left[i] -= x
                    fund_draw[i] += x
                    cover_draw[i] += x
                    positions[i] -= x
                shortfall -= sum(draw)
        if shortfall == 0:
            continue
        if len(survivors) == 0:  # pragma: no cover - unreachable, kept as a guard
            # Survivors' positions sum to what the defaulters pay (>= 0), so one of
            # them is never a net debtor and always survives; this is a guard only.
            return Resolution(rule, False, f"no participant survives to cover a shortfall of {shortfall} fen",
                              obligations, _empty(n), tuple(defaults), None, _empty(n), _empty(n), shortfall)
        if loss_key == "fixed":
            w = [Fraction(float(weights[i])) if weights is not None else Fraction(0) for i in survivors]
        elif loss_key == "bilateral_exposure":
            exposure = _exposure_weights(payer, payee, amount, n, [int(d) for d in failing])
            w = [Fraction(int(exposure[i])) for i in survivors]
        elif loss_key == "equal":
            w = [Fraction(1)] * len(survivors)
        else:
            raise ValueError(f"unknown loss-sharing key {loss_key!r}")
        if sum(w) <= 0:
            w = [Fraction(1)] * len(survivors)  # no survivor has weight: share equally
        for i, x in zip(survivors, allocate(shortfall, w)):
            positions[i] -= x
    netting.check_zero_sum(positions, what=f"positions after {rule}")
    # What each paid beyond its own obligation from its account (a survivor's shares; a
    # participant that defaulted in a later round may have borne some before it did),
    # and what the defaulters left unpaid: the two are reported, not used to settle.
    borne = obligations.astype(np.int64) - positions
    loss_share = np.maximum(borne - cover_draw, 0)
    shortfall_total = int(np.maximum(-borne[defaulted], 0).sum())
    if defaults:
        reason = (f"{len(defaults)} participant(s) defaulted in {defaults[-1].round} round(s); "
                  f"shortfall {shortfall_total} fen covered by "
                  + ("the guarantee fund and " if rule == "guarantee_fund" else "") + "the survivors")
    else:
        reason = "every net debtor funded"
    return Resolution(rule, True, reason, obligations, positions, tuple(defaults), None,
                      fund_draw, loss_share, shortfall_total)


def cover_one(rule: str, payer, payee, amount, record, n: int, capacity: np.ndarray, **kw) -> dict | None:
    """Would the window still settle if its largest net debtor paid nothing?

    The largest net debtor (ties: lower index) gets capacity 0 and the rule is
    applied. `completes` is True when the window settles with no other default
    (no cascade). Returns None when the window has no net debtor.
    """
    obligations = kw.pop("obligations", None)
    count_records = kw.pop("count_records", len)  # how many records unwound ids stand for
    if obligations is None:
        obligations = netting.multilateral_positions(payer, payee, amount, n)
    if not (obligations < 0).any():
        return None
    largest = int(np.argmin(obligations))
    cap = np.asarray(capacity, dtype=np.int64).copy()
    cap[largest] = 0
    res = resolve(rule, payer, payee, amount, record, n, cap, obligations=obligations, **kw)
    others = sorted({d.participant for d in res.defaults} - {largest})
    out = {
        "participant": largest,
        "net_debit_minor": int(-obligations[largest]),
        "completes": bool(res.settled and not others),
        "further_defaults": others,
    }
    if res.unwound_records is not None:
        out["records_unwound"] = int(count_records(res.unwound_records))
    return out
