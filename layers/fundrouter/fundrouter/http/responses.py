"""JSON responses in the shapes docs/api.md promises."""

import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response

from fundrouter.domain.errors import FieldProblem


def json_response(status: HTTPStatus, body: Any) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    )


def error_response(
    status: HTTPStatus, code: str, message: str, fields: Iterable[FieldProblem] = ()
) -> Response[str]:
    return json_response(
        status,
        {
            "error": {
                "code": code,
                "message": message,
                "fields": [{"field": f.field, "reason": f.reason} for f in fields],
            }
        },
    )
