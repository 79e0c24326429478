"""The shared transaction runner on its own, with a client that answers from a list:
how long it waits, what it retries, what it gives back and what it raises."""

from typing import Any

import pytest
from botocore.exceptions import ClientError
from fundrouter.domain.errors import Contended, Unavailable
from fundrouter.persistence.retries import Backoff, transact

from tests.support.faults import cancelled, conflict, error

ITEMS = [{"Put": {}}, {"Update": {}}, {"Update": {}}]


class Answers:
    """transact_write_items answering from `answers`: a parsed error is raised."""

    def __init__(self, *answers: dict[str, Any] | None) -> None:
        self.answers = list(answers)
        self.calls = 0

    def transact_write_items(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise ClientError(answer, "TransactWriteItems")
        return {}


def test_waits_are_full_jitter_exponential_and_capped() -> None:
    pauses: list[float] = []
    backoff = Backoff(attempts=7, base_seconds=0.05, cap_seconds=0.5, sleep=pauses.append)

    with pytest.raises(Contended):
        transact(Answers(*[conflict(3)] * 7), ITEMS, backoff)

    ceilings = [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    assert len(pauses) == len(ceilings)
    assert all(0 <= pause <= ceiling for pause, ceiling in zip(pauses, ceilings, strict=True))


@pytest.mark.parametrize(
    ("answer", "raised"),
    [
        (conflict(3, at=1), Contended),
        (error("TransactionConflictException"), Contended),
        (error("ThrottlingException"), Unavailable),
        (cancelled("None", "ProvisionedThroughputExceeded", "None"), Unavailable),
        (error("InternalServerError"), Unavailable),
    ],
)
def test_what_outlasts_the_retries_becomes_a_domain_error(
    answer: dict[str, Any], raised: type[Exception]
) -> None:
    client = Answers(*[answer] * 4)

    with pytest.raises(raised) as caught:
        transact(client, ITEMS, Backoff(attempts=4, sleep=lambda _: None))

    assert client.calls == 4
    assert type(caught.value) is raised


def test_a_refused_condition_returns_one_reason_per_item_at_once() -> None:
    client = Answers(cancelled("None", "ConditionalCheckFailed"))

    reasons = transact(client, ITEMS, Backoff(sleep=lambda _: None))

    assert [r.get("Code") for r in reasons] == ["None", "ConditionalCheckFailed", None]
    assert client.calls == 1


@pytest.mark.parametrize(
    "answer",
    [error("ValidationException"), cancelled("ValidationError", "None", "None"), cancelled()],
)
def test_errors_that_are_not_for_now_are_raised_as_they_came(answer: dict[str, Any]) -> None:
    client = Answers(answer)

    with pytest.raises(ClientError):
        transact(client, ITEMS, Backoff(sleep=lambda _: None))

    assert client.calls == 1
