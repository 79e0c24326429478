"""GET /v1/audit (scope lines.admin): per line, when its counters were last fully
audited against its orders, and the drift that pass found (docs/decisions.md, 20)."""

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fundrouter.http.deps import Audit
from fundrouter.http.models import AuditReport, LineAudit, answers

router = APIGatewayHttpRouter()  # module-level: see fundrouter.http.orders


@router.get(
    "/v1/audit",
    summary="Each line's last full audit and the drift it found",
    responses=answers(AuditReport, ok="Every line's audit, by lineId"),
)
def audit(service: Audit) -> AuditReport:
    return AuditReport(items=[LineAudit.of(s) for s in service.lines()])
