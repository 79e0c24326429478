"""The ApiFunction's resolver: every route, and the single map from errors to the
error shape and status codes of docs/api.md."""

from collections.abc import Callable, Sequence
from functools import partial
from http import HTTPStatus
from typing import Any, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from fundrouter.domain.errors import (
    Contended,
    DomainError,
    FieldProblem,
    InvalidCursor,
    InvalidInput,
    OrderConflict,
    OrderNotFound,
    Unavailable,
    reason,
)
from fundrouter.domain.lifecycle import (
    AmountExceedsHeld,
    LineMismatch,
    TransitionNotAllowed,
    VersionMismatch,
)
from fundrouter.domain.lines import (
    LineCurrencyLocked,
    LineNotFound,
    StaleLineConfig,
)
from fundrouter.domain.tenants import (
    ClientRetired,
    QuotaExceeded,
    TenantChanged,
    TenantNotFound,
    TenantSuspended,
)
from fundrouter.domain.webhooks import (
    DeliveryBusy,
    DeliveryNotFound,
    WebhookLimitReached,
    WebhookNotFound,
)
from fundrouter.http import admin, audit, lines, orders, tenants, webhooks
from fundrouter.http.auth import ROUTE_SCOPES, Caller, Forbidden, Unauthenticated
from fundrouter.http.responses import dumps, error_response
from fundrouter.http.tokens import authenticate
from fundrouter.service.lifecycle import EventConflict, OrderBusy
from fundrouter.service.lines import UnknownLines

logger = Logger(child=True)

DOMAIN_STATUS: dict[type[DomainError], HTTPStatus] = {
    OrderNotFound: HTTPStatus.NOT_FOUND,
    OrderConflict: HTTPStatus.CONFLICT,
    InvalidCursor: HTTPStatus.UNPROCESSABLE_ENTITY,
    InvalidInput: HTTPStatus.UNPROCESSABLE_ENTITY,
    LineNotFound: HTTPStatus.NOT_FOUND,
    StaleLineConfig: HTTPStatus.CONFLICT,
    LineCurrencyLocked: HTTPStatus.CONFLICT,
    UnknownLines: HTTPStatus.UNPROCESSABLE_ENTITY,
    TransitionNotAllowed: HTTPStatus.CONFLICT,
    AmountExceedsHeld: HTTPStatus.UNPROCESSABLE_ENTITY,
    LineMismatch: HTTPStatus.CONFLICT,
    VersionMismatch: HTTPStatus.CONFLICT,
    EventConflict: HTTPStatus.CONFLICT,
    OrderBusy: HTTPStatus.CONFLICT,
    WebhookNotFound: HTTPStatus.NOT_FOUND,
    DeliveryNotFound: HTTPStatus.NOT_FOUND,
    WebhookLimitReached: HTTPStatus.CONFLICT,
    DeliveryBusy: HTTPStatus.CONFLICT,
    TenantNotFound: HTTPStatus.NOT_FOUND,
    TenantSuspended: HTTPStatus.FORBIDDEN,
    ClientRetired: HTTPStatus.FORBIDDEN,
    TenantChanged: HTTPStatus.CONFLICT,
    QuotaExceeded: HTTPStatus.TOO_MANY_REQUESTS,
}


class UnsupportedMediaType(Exception):
    def __init__(self, content_type: str) -> None:
        super().__init__(content_type)
        self.content_type = content_type


class _JsonObjectBodies(OpenAPIRequestValidationMiddleware):
    """Every body this API takes is a JSON object. Powertools would also parse forms,
    raise a bare NotImplementedError on other media types, and validate a JSON array
    as its first element (an array of one order created that order)."""

    def handler(self, app: Any, next_middleware: NextMiddleware) -> Response[Any]:
        """Who calls, and with which scopes, before what they sent: 401 and 403 come
        before 422, on the routes the gateway leaves open too (decision 30)."""
        validate = cast(NextMiddleware, partial(super().handler, next_middleware=next_middleware))
        scoped = cast(NextMiddleware, partial(_scoped, next_middleware=validate))
        return cast(Response[Any], authenticate(app, scoped))

    def _get_body(self, app: Any) -> dict[str, Any]:
        content_type = app.current_event.headers.get("content-type", "").strip()
        if content_type and content_type.split(";")[0].strip().lower() != "application/json":
            raise UnsupportedMediaType(content_type)
        body = self._parse_json_data(app)
        if body is not None and not isinstance(body, dict):
            raise RequestValidationError(
                [{"type": "dict_type", "loc": ("body",), "msg": "must be a JSON object"}]
            )
        return body


def _scoped(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """The route's scopes (ROUTE_SCOPES, by the route key the HTTP API matched), before
    anything else runs: a token without them is 403, an absent one 401. The catch-all
    `$default` route only ever answers 404 or 405."""
    scopes = ROUTE_SCOPES.get(str(app.current_event.raw_event.get("routeKey")))
    if scopes is not None:
        claims = app.current_event.request_context.authorizer.jwt_claim
        Caller.from_claims(claims).require(*scopes)
    return next_middleware(app)


def build_app(
    transient: Callable[[BaseException], bool] = lambda _: False,
) -> APIGatewayHttpResolver:
    """`transient` (from the persistence layer, which alone knows AWS's errors) says
    which unexpected errors are AWS failing for now rather than a bug: 503."""
    app = APIGatewayHttpResolver(enable_validation=True, serializer=dumps)
    app._request_validation_middleware = _JsonObjectBodies()  # no public hook for it
    for module in (orders, lines, admin, audit, tenants, webhooks):
        app.include_router(module.router)
    for kind, answer in ERROR_ANSWERS.items():
        app.exception_handler(kind)(answer)
    app.exception_handler(Exception)(_bug_or_unavailable(transient))

    @app.not_found
    def no_route(_: NotFoundError) -> Response[str]:
        allowed = _methods_of(app, app.current_event.path)
        if not allowed:
            return error_response(HTTPStatus.NOT_FOUND, "route_not_found", "no such route")
        response = error_response(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "method_not_allowed",
            f"{app.current_event.http_method} is not a method of this route",
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response

    return app


def unsupported_media_type(error: UnsupportedMediaType) -> Response[str]:
    return error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON with content-type: application/json",
        [FieldProblem("content-type", f"{error.content_type} is not application/json")],
    )


def invalid_request(error: RequestValidationError) -> Response[str]:
    problems = _field_problems(error.errors())
    if any(p.reason == "malformed JSON" for p in problems):
        return error_response(
            HTTPStatus.BAD_REQUEST, "malformed_json", "request body is not valid JSON", problems
        )
    return error_response(
        HTTPStatus.UNPROCESSABLE_ENTITY, "validation_failed", "request failed validation", problems
    )


def refused(error: DomainError) -> Response[str]:
    logger.info("request refused", extra={"code": error.code, "reason": error.message})
    return error_response(status_of(error), error.code, error.message, error.fields)


def unauthenticated(_: Unauthenticated) -> Response[str]:
    return error_response(
        HTTPStatus.UNAUTHORIZED, "unauthorized", "a valid bearer token is required"
    )


def forbidden(error: Forbidden) -> Response[str]:
    return error_response(HTTPStatus.FORBIDDEN, "forbidden", str(error))


def status_of(error: DomainError) -> HTTPStatus:
    """The status of the nearest class in the error's MRO that has one, so a subclass
    answers like its base."""
    for kind in type(error).__mro__:
        if kind in DOMAIN_STATUS:
            return DOMAIN_STATUS[kind]
    return HTTPStatus.UNPROCESSABLE_ENTITY


def _methods_of(app: APIGatewayHttpResolver, path: str) -> list[str]:
    routes = [*app._static_routes, *app._dynamic_routes]  # no public list of them
    return sorted({route.method for route in routes if route.rule.match(path)})


def _bug_or_unavailable(
    transient: Callable[[BaseException], bool],
) -> Callable[[Exception], Response[str]]:
    def bug(error: Exception) -> Response[str]:
        if transient(error):  # throttled, a dropped connection, a timeout: nothing to fix
            return unavailable(Unavailable())
        # A pydantic ValidationError lands here too: the caller's input was validated
        # already, so one now means a stored item or a transition is wrong: a bug.
        # The exception text stays in the logs: clients learn only that it failed.
        logger.exception("unhandled error")
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error")

    return bug


def unavailable(error: Unavailable) -> Response[str]:
    """Contention on the order is 409 order_busy, throttling and AWS-side errors 503;
    both wrote nothing, and Retry-After says when to send the same request again."""
    logger.warning("store unavailable", extra={"code": error.code})
    status = HTTPStatus.CONFLICT if isinstance(error, Contended) else HTTPStatus.SERVICE_UNAVAILABLE
    response = error_response(status, error.code, error.message)
    response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


def quota_exceeded(error: QuotaExceeded) -> Response[str]:
    """The tenant's orders per minute: the next minute's start says when to retry."""
    response = refused(error)
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
        problems.append(FieldProblem(field, reason(error)))
    return problems


# Every error a route may raise, and its answer; anything else is _bug_or_unavailable's.
ERROR_ANSWERS: dict[type[Exception], Callable[[Any], Response[str]]] = {
    UnsupportedMediaType: unsupported_media_type,
    RequestValidationError: invalid_request,
    DomainError: refused,
    Unavailable: unavailable,
    Unauthenticated: unauthenticated,
    Forbidden: forbidden,
    QuotaExceeded: quota_exceeded,
}
