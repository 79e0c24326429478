"""The ApiFunction's resolver: every route, and the single map from errors to the
error shape and status codes of api.md."""

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import ValidationError

from fundrouter.domain.errors import (
    Contended,
    DomainError,
    FieldProblem,
    InvalidCursor,
    OrderConflict,
    OrderNotFound,
    Unavailable,
)
from fundrouter.domain.lifecycle import AmountExceedsHeld, TransitionNotAllowed
from fundrouter.domain.lines import (
    LineCurrencyLocked,
    LineNotFound,
    StaleLineConfig,
)
from fundrouter.http import lines, orders
from fundrouter.http.auth import Forbidden, Unauthenticated
from fundrouter.http.responses import error_response
from fundrouter.service.lifecycle import EventConflict, OrderBusy
from fundrouter.service.lines import UnknownLines

logger = Logger(child=True)

DOMAIN_STATUS: dict[type[DomainError], HTTPStatus] = {
    OrderNotFound: HTTPStatus.NOT_FOUND,
    OrderConflict: HTTPStatus.CONFLICT,
    InvalidCursor: HTTPStatus.UNPROCESSABLE_ENTITY,
    LineNotFound: HTTPStatus.NOT_FOUND,
    StaleLineConfig: HTTPStatus.CONFLICT,
    LineCurrencyLocked: HTTPStatus.CONFLICT,
    UnknownLines: HTTPStatus.UNPROCESSABLE_ENTITY,
    TransitionNotAllowed: HTTPStatus.CONFLICT,
    AmountExceedsHeld: HTTPStatus.UNPROCESSABLE_ENTITY,
    EventConflict: HTTPStatus.CONFLICT,
    OrderBusy: HTTPStatus.CONFLICT,
}


def build_app() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    app.include_router(orders.routes())
    app.include_router(lines.routes())

    @app.exception_handler(RequestValidationError)
    def invalid_request(error: RequestValidationError) -> Response[str]:
        content_type = app.current_event.headers.get("content-type", "application/json")
        if app.current_event.body and not content_type.startswith("application/json"):
            # Bodies are JSON only; say so rather than report every field missing.
            return error_response(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with content-type: application/json",
                [FieldProblem("content-type", f"{content_type} is not application/json")],
            )
        problems = _field_problems(error.errors())
        if any(p.reason == "malformed JSON" for p in problems):
            return error_response(
                HTTPStatus.BAD_REQUEST, "malformed_json", "request body is not valid JSON", problems
            )
        return error_response(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "validation_failed",
            "request failed validation",
            problems,
        )

    @app.exception_handler(ValidationError)
    def invalid_merge(error: ValidationError) -> Response[str]:
        # A PATCH is validated after merging with the stored configuration.
        problems = [
            FieldProblem(".".join(str(p) for p in e["loc"]) or "body", _reason(dict(e)))
            for e in error.errors()
        ]
        return error_response(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "validation_failed",
            "request failed validation",
            problems,
        )

    @app.exception_handler(DomainError)
    def refused(error: DomainError) -> Response[str]:
        logger.info("request refused", extra={"code": error.code, "reason": error.message})
        status = DOMAIN_STATUS.get(type(error), HTTPStatus.UNPROCESSABLE_ENTITY)
        return error_response(status, error.code, error.message, error.fields)

    app.exception_handler(Unavailable)(unavailable)

    @app.exception_handler(Unauthenticated)
    def unauthenticated(_: Unauthenticated) -> Response[str]:
        return error_response(
            HTTPStatus.UNAUTHORIZED, "unauthorized", "a valid bearer token is required"
        )

    @app.exception_handler(Forbidden)
    def forbidden(error: Forbidden) -> Response[str]:
        return error_response(HTTPStatus.FORBIDDEN, "forbidden", str(error))

    @app.not_found
    def no_route(_: NotFoundError) -> Response[str]:
        return error_response(HTTPStatus.NOT_FOUND, "route_not_found", "no such route")

    @app.exception_handler(Exception)
    def bug(_: Exception) -> Response[str]:
        # The exception text stays in the logs: clients learn only that it failed.
        logger.exception("unhandled error")
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error")

    return app


def unavailable(error: Unavailable) -> Response[str]:
    """Contention on the order is 409 order_busy, throttling and AWS-side errors 503;
    both wrote nothing, and Retry-After says when to send the same request again."""
    logger.warning("store unavailable", extra={"code": error.code})
    status = HTTPStatus.CONFLICT if isinstance(error, Contended) else HTTPStatus.SERVICE_UNAVAILABLE
    response = error_response(status, error.code, error.message)
    response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


def _field_problems(errors: Sequence[Any]) -> list[FieldProblem]:
    problems = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid":
            problems.append(FieldProblem("body", "malformed JSON"))
            continue
        # ("body", "customer", "id") -> "customer.id"; ("query", "limit") -> "limit"
        field = ".".join(location[1:]) or (location[0] if location else "body")
        problems.append(FieldProblem(field, _reason(error)))
    return problems


def _reason(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")
