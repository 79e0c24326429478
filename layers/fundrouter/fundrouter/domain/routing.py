"""Routing: which lines may take an order, and in which order to try them.

Pure and deterministic: the same lines, order, policy, time and volumes give the same
ranking whatever order the lines arrive in, and every line considered gets a
machine-readable outcome and a human reason, so an operator can always see why an
order went where it went. Only integers and Fractions are compared, so ties are exact.
"""

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Final, Self

from pydantic import AfterValidator, Field

from fundrouter.domain.lines import (
    CurrencyMismatch,
    DailyLimitReached,
    InsufficientCapacity,
    Line,
    LineConfig,
    LineId,
    LinePaused,
    LineRefusal,
    OutsideValidityWindow,
    require_unique,
)
from fundrouter.domain.orders import CamelModel, Candidate, Decision, Order, OrderRequest

MAX_POLICY_LINES: Final = 200


class Strategy(StrEnum):
    PRIORITY = "PRIORITY"
    LOWEST_COST = "LOWEST_COST"
    BEST_FIT = "BEST_FIT"
    WEIGHTED = "WEIGHTED"


class RoutingPolicy(CamelModel):
    """The body of PUT /v1/tenants/{tenantId}/routing. No lineIds: every line."""

    strategy: Strategy
    line_ids: Annotated[
        list[LineId], Field(max_length=MAX_POLICY_LINES), AfterValidator(require_unique)
    ] = Field(default_factory=list)


# A tenant without a policy of its own is routed by priority over every line.
DEFAULT_POLICY: Final = RoutingPolicy(strategy=Strategy.PRIORITY, line_ids=[])


class Outcome(StrEnum):
    """Why a line can or cannot take an order, in the order the checks run."""

    ELIGIBLE = "ELIGIBLE"
    NOT_IN_POLICY = "NOT_IN_POLICY"
    EXCLUDED = "EXCLUDED"
    LINE_PAUSED = "LINE_PAUSED"
    OUTSIDE_VALIDITY_WINDOW = "OUTSIDE_VALIDITY_WINDOW"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    AMOUNT_BELOW_MIN = "AMOUNT_BELOW_MIN"
    AMOUNT_ABOVE_MAX = "AMOUNT_ABOVE_MAX"
    TERM_NOT_OFFERED = "TERM_NOT_OFFERED"
    PRODUCT_NOT_OFFERED = "PRODUCT_NOT_OFFERED"
    REGION_NOT_SERVED = "REGION_NOT_SERVED"
    CREDIT_GRADE_NOT_ACCEPTED = "CREDIT_GRADE_NOT_ACCEPTED"
    INSUFFICIENT_CAPACITY = "INSUFFICIENT_CAPACITY"
    DAILY_LIMIT_REACHED = "DAILY_LIMIT_REACHED"


# The line's own refusals, so routing and claim word them identically.
_REFUSAL_OUTCOMES: Final[Mapping[type[LineRefusal], Outcome]] = {
    LinePaused: Outcome.LINE_PAUSED,
    OutsideValidityWindow: Outcome.OUTSIDE_VALIDITY_WINDOW,
    CurrencyMismatch: Outcome.CURRENCY_MISMATCH,
    InsufficientCapacity: Outcome.INSUFFICIENT_CAPACITY,
    DailyLimitReached: Outcome.DAILY_LIMIT_REACHED,
}


def refusal_outcome(refusal: LineRefusal) -> Outcome | None:
    """The outcome code of a line's own refusal, as a claim reports it."""
    return _REFUSAL_OUTCOMES.get(type(refusal))


@dataclass(frozen=True)
class OrderFacts:
    """What routing needs to know about an order."""

    amount: int
    currency: str
    term_months: int
    product: str
    region: str | None = None
    credit_grade: str | None = None

    @classmethod
    def of(cls, order: Order | OrderRequest) -> Self:
        return cls(
            amount=order.amount,
            currency=order.currency,
            term_months=order.term_months,
            product=order.product,
            region=order.customer.region,
            credit_grade=order.customer.credit_grade,
        )


@dataclass(frozen=True)
class Evaluation:
    line_id: str
    outcome: Outcome
    reason: str | None = None

    @property
    def eligible(self) -> bool:
        return self.outcome is Outcome.ELIGIBLE

    def as_candidate(self) -> Candidate:
        """The entry of the order's decision; the matcher replaces ELIGIBLE with what
        its claim attempt found."""
        return Candidate(
            line_id=self.line_id,
            outcome="ELIGIBLE" if self.eligible else "INELIGIBLE",
            code=None if self.eligible else self.outcome.value,
            reason=self.reason,
        )


@dataclass(frozen=True)
class Ranking:
    """`lines`: the eligible lines, best first. `candidates`: every line considered,
    the eligible in ranked order, then the others by lineId."""

    strategy: Strategy
    lines: tuple[Line, ...]
    candidates: tuple[Evaluation, ...]


type _Problem = tuple[Outcome, str] | None


def _listed[T: (int, str)](values: Iterable[T]) -> str:
    return ", ".join(str(value) for value in sorted(values))


def _amount_range(config: LineConfig, facts: OrderFacts) -> _Problem:
    if facts.amount < config.min_amount:
        return Outcome.AMOUNT_BELOW_MIN, f"amount below minAmount {config.min_amount}"
    if facts.amount > config.max_amount:
        return Outcome.AMOUNT_ABOVE_MAX, f"amount above maxAmount {config.max_amount}"
    return None


def _term(config: LineConfig, facts: OrderFacts) -> _Problem:
    if config.terms and facts.term_months not in config.terms:
        reason = f"term {facts.term_months} not offered ({_listed(config.terms)})"
        return Outcome.TERM_NOT_OFFERED, reason
    return None


def _product(config: LineConfig, facts: OrderFacts) -> _Problem:
    if config.products and facts.product not in config.products:
        reason = f"product {facts.product} not offered ({_listed(config.products)})"
        return Outcome.PRODUCT_NOT_OFFERED, reason
    return None


def _region(config: LineConfig, facts: OrderFacts) -> _Problem:
    if not config.regions or facts.region in config.regions:
        return None
    served = _listed(config.regions)
    if facts.region is None:
        return Outcome.REGION_NOT_SERVED, f"region not given, line serves ({served})"
    return Outcome.REGION_NOT_SERVED, f"region {facts.region} not served ({served})"


def _credit_grade(config: LineConfig, facts: OrderFacts) -> _Problem:
    if not config.credit_grades or facts.credit_grade in config.credit_grades:
        return None
    accepted = _listed(config.credit_grades)
    if facts.credit_grade is None:
        reason = f"credit grade not given, line accepts ({accepted})"
    else:
        reason = f"credit grade {facts.credit_grade} not accepted ({accepted})"
    return Outcome.CREDIT_GRADE_NOT_ACCEPTED, reason


_ORDER_RULES: Final[tuple[Callable[[LineConfig, OrderFacts], _Problem], ...]] = (
    _amount_range,
    _term,
    _product,
    _region,
    _credit_grade,
)


def evaluate(
    line: Line,
    facts: OrderFacts,
    now: datetime,
    excluded_line_ids: Collection[str] = frozenset(),
    *,
    policy: RoutingPolicy | None = None,
) -> Evaluation:
    """Whether `line` may take the order at `now`; the first failed check decides.

    Checks run in a fixed order: policy, exclusion (the line declined this order
    before), status, validity window, currency, amount range, term, product, region,
    credit grade, capacity, daily room. The capacity checks are the line's own claim
    rules, so a line found eligible here is refused by `claim` only if its counters
    moved in between.
    """
    if policy is not None and policy.line_ids and line.line_id not in policy.line_ids:
        return Evaluation(line.line_id, Outcome.NOT_IN_POLICY, "line not in the routing policy")
    if line.line_id in excluded_line_ids:
        return Evaluation(line.line_id, Outcome.EXCLUDED, "line declined this order before")
    refusal = line.admission_refusal(facts.currency, now)
    if refusal is None:
        for rule in _ORDER_RULES:
            problem = rule(line.config, facts)
            if problem is not None:
                return Evaluation(line.line_id, *problem)
        refusal = line.capacity_refusal(facts.amount, now)
    if refusal is not None:
        return Evaluation(line.line_id, _REFUSAL_OUTCOMES[type(refusal)], refusal.reason)
    return Evaluation(line.line_id, Outcome.ELIGIBLE)


type _SortKey = tuple[int | Fraction | bool | str, ...]


def _weighted_keys(lines: list[Line], matched_volume: Mapping[str, int]) -> dict[str, _SortKey]:
    """Largest deficit first: target share (weight over the eligible lines' weights)
    minus actual share of the volume matched to those lines. Weight 0 lines go last."""
    total_weight = sum(line.config.weight for line in lines)
    volumes = {line.line_id: matched_volume.get(line.line_id, 0) for line in lines}
    if any(volume < 0 for volume in volumes.values()):
        raise ValueError("matched volume is never negative")
    total_volume = sum(volumes.values())
    keys: dict[str, _SortKey] = {}
    for line in lines:
        weight = line.config.weight
        deficit = Fraction(0)
        if weight:
            deficit = Fraction(weight, total_weight)
            if total_volume:
                deficit -= Fraction(volumes[line.line_id], total_volume)
        keys[line.line_id] = (weight == 0, -deficit, line.config.priority, line.line_id)
    return keys


def _ordered(
    strategy: Strategy, lines: list[Line], matched_volume: Mapping[str, int]
) -> tuple[Line, ...]:
    keys: dict[str, _SortKey]
    match strategy:
        case Strategy.PRIORITY:
            keys = {line.line_id: (line.config.priority, line.line_id) for line in lines}
        case Strategy.LOWEST_COST:
            keys = {
                line.line_id: (line.config.apr_bps, line.config.priority, line.line_id)
                for line in lines
            }
        case Strategy.BEST_FIT:
            keys = {
                line.line_id: (line.available, line.config.priority, line.line_id) for line in lines
            }
        case Strategy.WEIGHTED:
            keys = _weighted_keys(lines, matched_volume)
    return tuple(sorted(lines, key=lambda line: keys[line.line_id]))


def rank(
    lines: Iterable[Line],
    facts: OrderFacts,
    policy: RoutingPolicy,
    now: datetime,
    *,
    matched_volume: Mapping[str, int] | None = None,
    excluded_line_ids: Collection[str] = frozenset(),
) -> Ranking:
    """The eligible lines in the policy's order, and the outcome for every line.

    PRIORITY: lowest priority number first. LOWEST_COST: lowest aprBps. BEST_FIT: the
    smallest available capacity that still fits, keeping large limits for large orders.
    WEIGHTED: the line furthest below its weight share of `matched_volume` (lineId to
    cumulative matched amount). Ties go to the lower priority number, then the lineId.
    """
    by_id: dict[str, Line] = {}
    for line in lines:
        if line.line_id in by_id:
            raise ValueError(f"line {line.line_id} given twice")
        by_id[line.line_id] = line
    considered = [by_id[line_id] for line_id in sorted(by_id)]
    evaluations = {
        line.line_id: evaluate(line, facts, now, excluded_line_ids, policy=policy)
        for line in considered
    }
    eligible = [line for line in considered if evaluations[line.line_id].eligible]
    ranked = _ordered(policy.strategy, eligible, matched_volume or {})
    # The lines that cannot take the order follow in the policy's own order too, so a
    # bounded decision names the ones the tenant would have been routed to first.
    others = [line for line in considered if not evaluations[line.line_id].eligible]
    candidates = tuple(
        evaluations[line.line_id]
        for line in (*ranked, *_ordered(policy.strategy, others, matched_volume or {}))
    )
    return Ranking(policy.strategy, ranked, candidates)


# Lines a decision names besides the claimed one; the rest are counted by code.
DECISION_LISTED: Final = 10


def decision(strategy: Strategy, candidates: Iterable[Candidate]) -> Decision:
    """The decision as stored and served: the claimed line, then at most
    DECISION_LISTED others in ranking order (refused and eligible first). Lines outside
    the tenant's policy are never named, only counted: a tenant does not learn the ids
    of lines it may not use."""
    listed: list[Candidate] = []
    more: dict[str, int] = {}
    for candidate in candidates:
        others = len(listed) - any(c.outcome == "CLAIMED" for c in listed)
        hidden = candidate.code == Outcome.NOT_IN_POLICY.value
        if candidate.outcome == "CLAIMED" or (not hidden and others < DECISION_LISTED):
            listed.append(candidate)
        else:
            code = candidate.code or candidate.outcome
            more[code] = more.get(code, 0) + 1
    reason = None if listed else "NO_LINE_IN_POLICY" if more else "NO_LINES"
    return Decision(strategy=strategy.value, candidates=listed, more=more, reason=reason)
