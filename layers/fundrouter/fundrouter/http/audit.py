"""GET /v1/audit (scope lines.admin): per line, when its counters were last fully
audited against its orders, and the drift that pass found (docs/decisions.md, 20)."""

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fundrouter.http.deps import Audit
from fundrouter.http.responses import json_response
from fundrouter.service.auditing import AuditState, Drift


def routes() -> APIGatewayHttpRouter:
    """A new router per resolver (see fundrouter.http.orders.routes)."""
    router = APIGatewayHttpRouter()

    @router.get("/v1/audit", summary="Each line's last full audit and the drift it found")
    def audit(service: Audit) -> Response[str]:
        return json_response(HTTPStatus.OK, {"items": [resource(s) for s in service.lines()]})

    return router


def resource(state: AuditState) -> dict[str, Any]:
    under_way = None
    if state.cursor is not None:
        under_way = {"startedAt": state.pass_started_at, "orders": state.order_count}
    return {
        "lineId": state.line_id,
        # null: no pass has completed yet on this line.
        "lastFullPassAt": state.last_full_pass_at,
        "orders": state.last_pass_orders,
        "drift": _drift(state.drift),
        # A pass over several runs found this; drift once the next pass finds it too.
        "unconfirmed": _drift(state.unconfirmed),
        "passUnderWay": under_way,
    }


def _drift(drift: Drift | None) -> dict[str, Any] | None:
    return None if drift is None else drift.values() | {"amount": drift.amount}
