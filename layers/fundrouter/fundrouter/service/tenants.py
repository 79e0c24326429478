"""Self-service tenants (decision 30): the admin's use cases over the tenant records
and the user pool's clients, and the gate every request passes (who the caller's
tenant is, whether it may call now, its order quota)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fundrouter.domain.paging import Page
from fundrouter.domain.tenants import (
    ClientRetired,
    QuotaExceeded,
    Tenant,
    TenantChanged,
    TenantNotFound,
    TenantPatch,
    TenantRequest,
    TenantStatus,
    TenantSuspended,
)
from fundrouter.service.ports import ClientDirectory, Slot, TenantStore

ATTEMPTS = 3


@dataclass(frozen=True)
class Credentials:
    """A client's secret, shown once: in the answer that created it."""

    tenant: Tenant
    client_id: str
    client_secret: str


class TenantService:
    def __init__(
        self, store: TenantStore, clients: ClientDirectory, clock: Callable[[], datetime]
    ) -> None:
        self._store = store
        self._clients = clients
        self._clock = clock

    def create(self, request: TenantRequest) -> Credentials:
        client_id, secret = self._clients.create(request.name, request.scopes)
        tenant = Tenant.new(request, client_id, self._clock())
        try:
            self._store.create(tenant)
        except BaseException:
            self._clients.delete(client_id)  # no client without its record
            raise
        return Credentials(tenant, client_id, secret)

    def get(self, tenant_id: str) -> Tenant:
        return self._change(tenant_id, lambda tenant, _: tenant)

    def list(self, limit: int, cursor: str | None) -> Page[Tenant]:
        return self._store.list(limit, cursor)

    def patch(self, tenant_id: str, patch: TenantPatch) -> Tenant:
        fields = {name: getattr(patch, name) for name in patch.model_fields_set}
        return self._change(tenant_id, lambda tenant, now: tenant.changed(now, **fields))

    def set_status(self, tenant_id: str, status: TenantStatus) -> Tenant:
        def to(tenant: Tenant, now: datetime) -> Tenant:
            return tenant if tenant.status is status else tenant.changed(now, status=status)

        return self._change(tenant_id, to)

    def rotate(self, tenant_id: str, grace: timedelta) -> Credentials:
        """A new client for the tenant; the current one keeps working for `grace`."""
        tenant = self._read(tenant_id)
        client_id, secret = self._clients.create(tenant.name, tenant.scopes)
        try:
            rotated, dropped = tenant.rotated(client_id, self._clock(), grace)
            if not self._store.replace(rotated, tenant.version, new_client=client_id):
                raise TenantChanged
        except BaseException:
            self._clients.delete(client_id)
            raise
        self._delete(dropped)
        return Credentials(rotated, client_id, secret)

    def _read(self, tenant_id: str) -> Tenant:
        tenant = self._store.get(tenant_id)
        if tenant is None:
            raise TenantNotFound(tenant_id)
        return tenant

    def _change(self, tenant_id: str, change: Callable[[Tenant, datetime], Tenant]) -> Tenant:
        """Apply `change` on the tenant as stored, retrying when it moved meanwhile;
        clients whose grace ended leave the record and the pool on the way."""
        for _ in range(ATTEMPTS):
            tenant, now = self._read(tenant_id), self._clock()
            retired = tenant.retired(now)
            changed = change(retired[0] if retired else tenant, now)
            if changed is tenant:
                return tenant
            if self._store.replace(changed, tenant.version):
                self._delete(retired[1] if retired else [])
                return changed
        raise TenantChanged

    def _delete(self, client_ids: Sequence[str]) -> None:
        for client_id in client_ids:
            self._clients.delete(client_id)


@dataclass(frozen=True)
class Admission:
    tenant_id: str
    orders_per_minute: int | None = None


class TenantGate:
    """Every request's tenant, from its client: a client's tenant never changes, so it
    is remembered for the container; the record is read on every request, so a
    suspension refuses the very next one."""

    def __init__(self, store: TenantStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock
        self._tenant_of: dict[str, str | None] = {}

    def admit(self, client_id: str) -> Admission:
        if client_id not in self._tenant_of:
            self._tenant_of[client_id] = self._store.tenant_of(client_id)
        tenant_id = self._tenant_of[client_id]
        if tenant_id is None:
            return Admission(client_id)  # a built-in tenant (module docstring)
        tenant = self._store.get(tenant_id)
        if tenant is None or not tenant.admits(client_id, self._clock()):
            raise ClientRetired
        if tenant.status is not TenantStatus.ACTIVE:
            raise TenantSuspended
        return Admission(tenant.tenant_id, tenant.orders_per_minute)

    def take_order_slot(self, admission: Admission) -> None:
        """One order's place in the tenant's current minute, or QuotaExceeded."""
        if admission.orders_per_minute is None:
            return
        now = self._clock()
        slot = self._store.take_order_slot(admission.tenant_id, int(now.timestamp()) // 60)
        if slot is Slot.SUSPENDED:
            raise TenantSuspended
        if slot is Slot.FULL:
            raise QuotaExceeded(admission.orders_per_minute, 60 - now.second)
