"""Request parameters more than one route module takes, declared once."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from fundrouter.domain.orders import TENANT_ID_PATTERN

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=2048)]
TenantPath = Annotated[str, Path(alias="tenantId", pattern=TENANT_ID_PATTERN)]
