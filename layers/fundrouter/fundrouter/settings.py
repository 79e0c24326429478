"""Settings read from the environment once per container and validated, so a
missing variable stops the cold start with a clear message instead of a "" later."""

import os
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class MissingSetting(RuntimeError):
    pass


class EnvSettings(BaseModel):
    """A function's environment: each field's alias is the variable's name."""

    model_config = ConfigDict(frozen=True)

    @classmethod
    def from_env(cls) -> Self:
        try:
            return cls.model_validate(dict(os.environ))
        except ValidationError as error:
            names = ", ".join(str(e["loc"][0]) for e in error.errors())
            raise MissingSetting(f"environment variable(s) missing or invalid: {names}") from error


class TableSettings(EnvSettings):
    orders_table_name: str = Field(alias="ORDERS_TABLE_NAME", min_length=3)
    lines_table_name: str = Field(alias="LINES_TABLE_NAME", min_length=3)


class LifecycleSettings(EnvSettings):
    """How long after a hold expired or was cancelled a DISBURSED is still recorded."""

    late_disburse_grace_seconds: int = Field(
        default=3600, alias="LATE_DISBURSE_GRACE_SECONDS", ge=0, le=30 * 24 * 3600
    )


class EventBusSettings(EnvSettings):
    """The tracker's environment, and the API's for re-publishing status events."""

    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)
    unpublished_events_queue_url: str = Field(alias="UNPUBLISHED_EVENTS_QUEUE_URL", min_length=1)


class WebhookSettings(EnvSettings):
    """The Webhooks table and the queue of attempt prompts (the API's and the
    WebhookFunction's), and the delivery timing (the WebhookFunction's)."""

    webhooks_table_name: str = Field(alias="WEBHOOKS_TABLE_NAME", min_length=3)
    webhook_queue_url: str = Field(alias="WEBHOOK_QUEUE_URL", min_length=1)
    # http://127.0.0.1 endpoints: the local stack and its tests only, never deployed.
    allow_loopback_http: bool = Field(default=False, alias="WEBHOOK_ALLOW_LOOPBACK_HTTP")
    retry_base_seconds: float = Field(default=30, alias="WEBHOOK_RETRY_BASE_SECONDS", gt=0)
    retry_max_seconds: float = Field(default=3600, alias="WEBHOOK_RETRY_MAX_SECONDS", gt=0)
    # Deliveries are retried for at least a day: no setting shortens that.
    retry_window_seconds: int = Field(
        default=86400, alias="WEBHOOK_RETRY_WINDOW_SECONDS", ge=86400, le=7 * 86400
    )
    timeout_seconds: float = Field(default=5, alias="WEBHOOK_TIMEOUT_SECONDS", gt=0, le=10)


class TenantSettings(EnvSettings):
    """The API's tenants (decision 30): their table and the user pool whose tokens it
    verifies. AWS_ENDPOINT_URL, set only where the SDK talks to an emulator, is where
    that emulator serves the pool's keys too."""

    tenants_table_name: str = Field(alias="TENANTS_TABLE_NAME", min_length=3)
    user_pool_id: str = Field(alias="USER_POOL_ID", pattern=r"^[\w-]+_[0-9a-zA-Z]+$")
    region: str = Field(alias="AWS_REGION", min_length=1)
    endpoint_url: str | None = Field(default=None, alias="AWS_ENDPOINT_URL")

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    @property
    def jwks_url(self) -> str:
        base = f"{self.endpoint_url.rstrip('/')}/{self.user_pool_id}" if self.endpoint_url else None
        return f"{base or self.issuer}/.well-known/jwks.json"
