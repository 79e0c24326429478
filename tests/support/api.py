"""The ApiFunction's app answering with a test's own services, through Powertools'
dependency overrides, and fundrouter.bootstrap's caches emptied around a test that
builds the services from the environment as Lambda does."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fundrouter import bootstrap
from fundrouter.domain.clock import utc_now
from fundrouter.service.tenants import TenantGate

from tests.support.aws import FakeLambdaContext
from tests.support.handlers import handler_module

api = handler_module("api", "api_handler")

BUILDERS: dict[str, Callable[[], Any]] = {
    "orders": bootstrap.order_service,
    "lines": bootstrap.line_service,
    "events": bootstrap.event_service,
    "history": bootstrap.history_service,
    "republisher": bootstrap.republisher,
    "audit": bootstrap.audit_report,
    "webhooks": bootstrap.webhook_service,
    "tenants": bootstrap.tenant_service,
    "gate": bootstrap.tenant_gate,
    "verifier": bootstrap.token_verifier,
}


class _NoTenantRecords:
    """A store without tenant records: every client is a built-in tenant."""

    def tenant_of(self, client_id: str) -> None:
        return None


# Unless a test gives its own: the tenant gate of a stack with no self-service tenants.
DEFAULTS: dict[str, Callable[[], object]] = {
    "gate": lambda: TenantGate(_NoTenantRecords(), utc_now),  # type: ignore[arg-type]
}


def _given(service: object) -> Callable[[], object]:
    return lambda: service


def _not_given(name: str) -> Callable[[], object]:
    def missing() -> object:
        raise LookupError(f"this test gives the API no {name} service")

    return missing


def serve(event: dict[str, Any], context: Any = None, **services: object) -> dict[str, Any]:
    """The API's whole answer (status, headers, body) to `event`; a route that needs a
    service the test did not give fails (500) instead of building a real one."""
    unknown = set(services) - set(BUILDERS)
    assert not unknown, f"no such service: {unknown}"
    api.app.dependency_overrides = {
        builder: _given(services[name])
        if services.get(name) is not None
        else DEFAULTS.get(name, _not_given(name))
        for name, builder in BUILDERS.items()
    }
    try:
        return dict(api.app.resolve(event, context or FakeLambdaContext()))
    finally:
        api.app.dependency_overrides = {}


@contextmanager
def built_from_environment() -> Iterator[None]:
    """Every service built afresh from the environment the test set, and forgotten
    after it, so no other test meets them."""
    builders = [f for f in vars(bootstrap).values() if hasattr(f, "cache_clear")]
    for builder in builders:
        builder.cache_clear()
    try:
        yield
    finally:
        for builder in builders:
            builder.cache_clear()
