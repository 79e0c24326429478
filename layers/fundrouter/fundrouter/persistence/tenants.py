"""The Tenants table and the user pool's app clients (decision 30).

Items (key ``pk``):
- ``T#{tenantId}``: the tenant as one map (``tenant``), its ``version``, and its order
  quota's counter: ``qMinute`` (minutes since 1970) and ``qUsed`` (orders taken in it).
  Configuration writes set ``tenant`` and ``version`` only, never the counter.
- ``C#{clientId}``: ``tenantId``, the tenant the client was created for; never changes.

Taking an order's place is one conditional UpdateItem on the tenant's item: in the
same minute, below its quota, while ACTIVE. A refusal says why (the item as it was);
the first order of a minute resets the counter with a second conditional write.
"""

import base64
import binascii
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from fundrouter.domain.errors import InvalidCursor
from fundrouter.domain.paging import Page
from fundrouter.domain.tenants import Tenant, TenantStatus
from fundrouter.persistence.codec import from_item, to_item
from fundrouter.persistence.retries import read, transact
from fundrouter.service.ports import Slot

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient
    from mypy_boto3_dynamodb import DynamoDBClient

TENANT: Final = "T#"
CLIENT: Final = "C#"
CONDITION_EXCEPTION: Final = "ConditionalCheckFailedException"
# The tenant's status and quota inside its map, for the counter's conditions.
_NAMES: Final = {"#t": "tenant", "#st": "status", "#q": "ordersPerMinute"}


def _key(prefix: str, value: str) -> dict[str, Any]:
    return {"pk": {"S": prefix + value}}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


class DynamoTenantStore:
    def __init__(self, client: "DynamoDBClient", table: str) -> None:
        self.client = client
        self.table = table

    def create(self, tenant: Tenant) -> None:
        client_id = tenant.clients[-1].client_id
        committed = transact(
            self.client, [self._put(tenant), self._alias(client_id, tenant.tenant_id)]
        )
        if committed:  # a fresh client id is never taken: a bug, not a refusal
            raise RuntimeError(f"tenant {tenant.tenant_id} or client {client_id} exists already")

    def get(self, tenant_id: str) -> Tenant | None:
        response = read(
            partial(
                self.client.get_item,
                TableName=self.table,
                Key=_key(TENANT, tenant_id),
                ConsistentRead=True,
                ProjectionExpression="tenant",
            )
        )
        item = response.get("Item")
        return Tenant.model_validate(from_item(dict(item))["tenant"]) if item else None

    def tenant_of(self, client_id: str) -> str | None:
        response = read(
            partial(self.client.get_item, TableName=self.table, Key=_key(CLIENT, client_id))
        )
        item = response.get("Item")
        return str(item["tenantId"]["S"]) if item else None

    def list(self, limit: int, cursor: str | None) -> Page[Tenant]:
        """A page of tenants in the table's order (no particular one); each Scan page
        is filtered to tenant items, so several may make one page of the listing."""
        start = _start_key(cursor)
        tenants: list[Tenant] = []
        while True:
            request: dict[str, Any] = {
                "TableName": self.table,
                "Limit": limit - len(tenants),
                "FilterExpression": "begins_with(pk, :t)",
                "ExpressionAttributeValues": {":t": {"S": TENANT}},
                "ConsistentRead": True,
            }
            if start is not None:
                request["ExclusiveStartKey"] = start
            response = read(partial(self.client.scan, **request))
            tenants += [Tenant.model_validate(from_item(i)["tenant"]) for i in response["Items"]]
            start = response.get("LastEvaluatedKey")
            if start is None or len(tenants) >= limit:
                break
        last = tenants[-1].tenant_id if tenants and start is not None else None
        return Page(tenants, _cursor(last) if last else None)

    def replace(self, tenant: Tenant, expected_version: int, new_client: str | None = None) -> bool:
        update = {
            "Update": {
                "TableName": self.table,
                "Key": _key(TENANT, tenant.tenant_id),
                "UpdateExpression": "SET tenant = :t, version = :v",
                "ConditionExpression": "version = :expected",
                "ExpressionAttributeValues": {
                    ":t": to_item({"t": _stored(tenant)})["t"],
                    ":v": _n(tenant.version),
                    ":expected": _n(expected_version),
                },
            }
        }
        items = [update] + ([self._alias(new_client, tenant.tenant_id)] if new_client else [])
        return not transact(self.client, items)

    def take_order_slot(self, tenant_id: str, minute: int) -> Slot:
        for _ in range(2):  # a reset by another container between the two: once more
            old = self._update(
                "SET qUsed = qUsed + :one",
                "qMinute = :m AND qUsed < #t.#q AND #t.#st = :active",
                tenant_id,
                minute,
            )
            if old is None:
                return Slot.TAKEN
            tenant = old.get("tenant", {})
            if tenant.get("status") != TenantStatus.ACTIVE:
                return Slot.SUSPENDED
            if tenant.get("ordersPerMinute") is None:
                return Slot.NO_QUOTA
            if old.get("qMinute") == minute:
                return Slot.FULL
            reset = self._update(
                "SET qMinute = :m, qUsed = :one",
                "(attribute_not_exists(qMinute) OR qMinute < :m) AND #t.#st = :active"
                " AND attribute_exists(#t.#q)",
                tenant_id,
                minute,
            )
            if reset is None:
                return Slot.TAKEN
        return Slot.FULL  # pragma: no cover - two resets of one minute cannot both lose

    def _update(
        self, expression: str, condition: str, tenant_id: str, minute: int
    ) -> dict[str, Any] | None:
        """None when written; else the item as it was ({} if there is none)."""
        # Not retried on a lost answer as reads are: that would count the order twice.
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_key(TENANT, tenant_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={
                    ":one": _n(1),
                    ":m": _n(minute),
                    ":active": {"S": TenantStatus.ACTIVE},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != CONDITION_EXCEPTION:
                raise
            item: Any = error.response.get("Item")
            if item is None:  # not every emulator returns it: read it
                item = self.client.get_item(
                    TableName=self.table, Key=_key(TENANT, tenant_id), ConsistentRead=True
                ).get("Item", {})
            return from_item(dict(item))
        return None

    def _put(self, tenant: Tenant) -> dict[str, Any]:
        item = {"pk": TENANT + tenant.tenant_id, "tenant": _stored(tenant), "version": 1}
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _alias(self, client_id: str, tenant_id: str) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item({"pk": CLIENT + client_id, "tenantId": tenant_id}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }


def _stored(tenant: Tenant) -> dict[str, Any]:
    return tenant.model_dump(mode="json", by_alias=True)


def _cursor(tenant_id: str) -> str:
    return base64.urlsafe_b64encode(tenant_id.encode()).decode()


def _start_key(cursor: str | None) -> dict[str, Any] | None:
    if cursor is None:
        return None
    try:
        tenant_id = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor from error
    if not tenant_id or len(tenant_id) > 128 or _cursor(tenant_id) != cursor:
        raise InvalidCursor
    return _key(TENANT, tenant_id)


class CognitoClients:
    """App clients of the user pool, as the template declares its own: client
    credentials only, an hour's access tokens."""

    def __init__(self, client: "CognitoIdentityProviderClient", user_pool_id: str) -> None:
        self.client = client
        self.user_pool_id = user_pool_id

    def create(self, name: str, scopes: Sequence[str]) -> tuple[str, str]:
        created = self.client.create_user_pool_client(
            UserPoolId=self.user_pool_id,
            ClientName=f"tenant {name}",
            GenerateSecret=True,
            AllowedOAuthFlowsUserPoolClient=True,
            AllowedOAuthFlows=["client_credentials"],
            AllowedOAuthScopes=list(scopes),
            ExplicitAuthFlows=["ALLOW_REFRESH_TOKEN_AUTH"],
            AccessTokenValidity=60,
            TokenValidityUnits={"AccessToken": "minutes"},
        )["UserPoolClient"]
        return created["ClientId"], created["ClientSecret"]

    def delete(self, client_id: str) -> None:
        try:
            self.client.delete_user_pool_client(UserPoolId=self.user_pool_id, ClientId=client_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
