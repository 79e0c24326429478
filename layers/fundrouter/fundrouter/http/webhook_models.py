"""The bodies the webhook routes answer with (see fundrouter.http.models): mapped from
the domain's endpoints and deliveries. A secret is only ever shown in the answer that
created it (`EndpointCreated`)."""

from typing import Annotated, Self

from pydantic import Field, NonNegativeInt

from fundrouter.domain.clock import Timestamp
from fundrouter.domain.webhooks import (
    Delivery,
    DeliveryState,
    Endpoint,
    StatusChangedBody,
    WebhookEventType,
)
from fundrouter.http.models import Paged, ResponseModel, Version
from fundrouter.service.webhooks import Created


class EndpointResource(ResponseModel):
    endpoint_id: str
    url: str
    events: list[WebhookEventType]
    description: str | None
    created_at: Timestamp
    updated_at: Timestamp
    secret_created_at: Timestamp = Field(description="When the current secret was made.")
    previous_secret_expires_at: Timestamp | None = Field(
        description="Until when the secret before it still signs deliveries; null: none does."
    )
    version: Version

    @classmethod
    def of(cls, endpoint: Endpoint) -> Self:
        current, *older = endpoint.secrets
        expiring = [s.expires_at for s in older if s.expires_at is not None]
        return cls(
            endpoint_id=endpoint.endpoint_id,
            url=endpoint.url,
            events=list(endpoint.events),
            description=endpoint.description,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
            secret_created_at=current.created_at,
            previous_secret_expires_at=max(expiring) if expiring else None,
            version=endpoint.version,
        )


class EndpointCreated(ResponseModel):
    """The endpoint and its signing secret: shown this once, keep it."""

    endpoint: EndpointResource
    secret: Annotated[str, Field(description="HMAC-SHA256 key of `Fundrouter-Signature`.")]

    @classmethod
    def of(cls, created: Created) -> Self:
        return cls(endpoint=EndpointResource.of(created.endpoint), secret=created.secret)


class EndpointList(ResponseModel):
    items: list[EndpointResource]


class AttemptResource(ResponseModel):
    at: Timestamp
    duration_ms: NonNegativeInt
    status_code: int | None = Field(description="null: no answer; `error` says why.")
    error: str | None


class DeliveryResource(ResponseModel):
    delivery_id: str
    endpoint_id: str
    event_id: str
    event_type: WebhookEventType
    order_id: str
    order_version: Version
    state: DeliveryState
    next_attempt_at: Timestamp | None = Field(description="While PENDING: when it is due.")
    attempt_count: NonNegativeInt = Field(description="Every attempt made, re-sends included.")
    attempts: list[AttemptResource] = Field(description="The newest 100 attempts, oldest first.")
    created_at: Timestamp
    finished_at: Timestamp | None
    payload: StatusChangedBody = Field(description="The body every attempt sends, unchanged.")

    @classmethod
    def of(cls, delivery: Delivery) -> Self:
        return cls.model_validate(delivery, from_attributes=True)


class DeliveryPage(Paged[DeliveryResource]):
    pass
