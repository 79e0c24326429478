"""Lending-line administration: configuration, utilization, routing policies.

Configuration writes never touch the counters; reads of one line are consistent and
show exactly what the line holds. No view reads an order: the line item counts its
orders by status (fundrouter.persistence.lines), so a view costs the same at any
number of loans, and PUT/PATCH answer from what they wrote plus the day's usage."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from fundrouter.domain.errors import DomainError, FieldProblem, InvalidInput
from fundrouter.domain.lines import (
    LineConfig,
    LineNotFound,
    LineRecord,
    StaleLineConfig,
    possible_days,
)
from fundrouter.domain.routing import DEFAULT_POLICY, RoutingPolicy
from fundrouter.service.ports import LineRepository

PATCH_ATTEMPTS = 3


class UnknownLines(DomainError):
    code = "unknown_lines"

    def __init__(self, positions: list[tuple[int, str]]) -> None:
        super().__init__(
            "routing policy names lines that do not exist",
            tuple(FieldProblem(f"lineIds.{i}", f"no line {line_id}") for i, line_id in positions),
        )


@dataclass(frozen=True)
class LineView:
    record: LineRecord
    day: str
    used_today: int


class LineService:
    def __init__(self, repository: LineRepository, clock: Callable[[], datetime]) -> None:
        self._repository = repository
        self._clock = clock

    def put(self, line_id: str, config: LineConfig) -> tuple[LineView, bool]:
        now = self._clock()
        record = self._repository.put_config(line_id, config, now)
        return self._written(record, now), record.config_version == 1

    def patch(self, line_id: str, changes: dict[str, Any]) -> LineView:
        """Merge `changes` into the stored configuration and validate the result as a
        whole, so a patch cannot leave a line inconsistent (minAmount > maxAmount)."""
        for attempt in range(PATCH_ATTEMPTS):
            current = self._record(line_id)
            merged = current.line.config.model_dump(mode="json", by_alias=True) | changes
            try:
                config = LineConfig.model_validate(merged)
            except ValidationError as error:
                raise InvalidInput(error) from error
            now = self._clock()
            try:
                record = self._repository.put_config(line_id, config, now, current.config_version)
            except StaleLineConfig:
                if attempt == PATCH_ATTEMPTS - 1:
                    raise
                continue
            return self._written(record, now)
        raise StaleLineConfig(line_id)  # pragma: no cover - the loop returns or raises

    def get(self, line_id: str) -> LineView:
        """One consistent read of the line and of every day it may be on now."""
        now = self._clock()
        days = possible_days(now)
        record = self._repository.get(line_id, days)
        if record is None:
            raise LineNotFound(line_id)
        day = record.line.day_of(now)
        if day not in days:  # pragma: no cover - possible_days covers every time zone
            return self._written(record, now)
        return LineView(record, day, record.line.counters.used_on(day))

    def list(self) -> list[LineView]:
        now = self._clock()
        records = self._repository.list_lines()
        days = {r.line.line_id: r.line.day_of(now) for r in records}
        usage = self._repository.usage_on(days, _shards(records))
        return [
            LineView(r, days[r.line.line_id], usage[r.line.line_id])
            for r in sorted(records, key=lambda r: r.line.line_id)
        ]

    def put_routing(self, tenant_id: str, policy: RoutingPolicy) -> RoutingPolicy:
        known = {r.line.line_id for r in self._repository.list_lines()}
        unknown = [
            (i, line_id) for i, line_id in enumerate(policy.line_ids) if line_id not in known
        ]
        if unknown:
            raise UnknownLines(unknown)
        self._repository.put_routing(tenant_id, policy, self._clock())
        return policy

    def routing(self, tenant_id: str) -> RoutingPolicy:
        """The tenant's policy; a tenant without one is routed by priority over all lines."""
        return self._repository.get_routing(tenant_id) or DEFAULT_POLICY

    def _record(self, line_id: str) -> LineRecord:
        record = self._repository.get(line_id)
        if record is None:
            raise LineNotFound(line_id)
        return record

    def _written(self, record: LineRecord, now: datetime) -> LineView:
        """The view of a line as a write returned it, with the day's usage."""
        line_id, day = record.line.line_id, record.line.day_of(now)
        usage = self._repository.usage_on({line_id: day}, _shards([record]))
        return LineView(record, day, usage[line_id])


def _shards(records: list[LineRecord]) -> dict[str, int]:
    """How many shard items each sharded line has, for reading their days."""
    return {r.line.line_id: len(r.shards) for r in records if r.shards}
