"""JSON responses in the shapes of fundrouter.http.models."""

import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel

from fundrouter.domain.errors import FieldProblem
from fundrouter.http.models import Error, ErrorDetail, FieldError


def dumps(body: Any) -> str:
    """The resolver's serializer too: compact, and UTF-8 rather than \\u escapes."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def answer[M: BaseModel](status: HTTPStatus, body: M) -> Response[M]:
    """The answer of a route whose status is not 200 (a route that answers only 200
    returns its model); the resolver serializes the model as the route declares."""
    return Response(status_code=status, content_type="application/json", body=body)


def error_response(
    status: HTTPStatus, code: str, message: str, fields: Iterable[FieldProblem] = ()
) -> Response[str]:
    # Error handlers answer after the resolver's serialization: dumped here.
    error = ErrorDetail(
        code=code,
        message=message,
        fields=[FieldError(field=f.field, reason=f.reason) for f in fields],
    )
    body = Error(error=error).model_dump(mode="json", by_alias=True)
    return Response(status_code=status, content_type="application/json", body=dumps(body))
