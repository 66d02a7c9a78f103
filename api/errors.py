"""HTTP mapping of domain errors: ONE table from exception class to status code.

Routers raise domain exceptions (``layers.errors``) or :class:`ApiError`; the handlers installed
by :func:`install_error_handlers` turn them into ``{"code", "description"}`` JSON bodies (the OGC
API exception shape).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo.errors import NoRouteError, RouteRequestError, SnapError
from layers.errors import (
    CRSError,
    InputFileError,
    LayerNotFoundError,
    LayerValidationError,
    MissingExtraError,
    RiskmapError,
    RuleError,
    StoreBusy,
    StoreError,
    UnknownLayerError,
)
from layers.registry import IllegalTransition, RecordNotFound, RegistryError

__all__ = [
    "STATUS_CODES",
    "ApiError",
    "BadRequest",
    "Conflict",
    "ErrorBody",
    "Forbidden",
    "NotFound",
    "ServiceBusy",
    "Unauthorized",
    "install_error_handlers",
    "status_for",
]

log = logging.getLogger("riskmap.api")

_ROUTING_CODES: dict[type[BaseException], int] = {
    NoRouteError: 422, SnapError: 400, RouteRequestError: 400}


class ApiError(Exception):
    """An error raised by the API layer itself (bad parameter, missing feature, role …)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class BadRequest(ApiError, ValueError):
    """A malformed or unknown request parameter."""


class NotFound(ApiError, LookupError):
    """No such collection, feature or record."""


class Conflict(ApiError):
    """The request conflicts with the state of a resource (illegal status transition)."""


class Unauthorized(ApiError, PermissionError):
    """No (valid) credentials, and the resource needs some."""


class Forbidden(ApiError, PermissionError):
    """The caller's role may not see or change this resource."""


class PayloadTooLarge(ApiError):
    """The request body exceeds ``max_request_bytes``."""


class ServiceBusy(ApiError):
    """Every slot of a bounded resource (map builds) is taken: 503 with ``Retry-After``."""

    def __init__(self, description: str, *, retry_after_s: int = 2) -> None:
        super().__init__(description)
        self.retry_after_s = retry_after_s


# The one table. First match in MRO order wins (most specific first).
STATUS_CODES: dict[type[BaseException], int] = {
    **_ROUTING_CODES,
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    ServiceBusy: 503,
    IllegalTransition: 409,
    RegistryError: 400,
    RecordNotFound: 404,
    LayerValidationError: 422,
    InputFileError: 422,
    UnknownLayerError: 404,
    LayerNotFoundError: 404,
    CRSError: 400,
    MissingExtraError: 501,
    RuleError: 500,
    StoreError: 503,
    RiskmapError: 500,
}

_CODE_NAMES = {400: "InvalidParameterValue", 401: "Unauthorized", 403: "Forbidden",
               404: "NotFound", 409: "Conflict", 413: "PayloadTooLarge",
               422: "InvalidInput", 500: "ServerError", 501: "NotInstalled",
               503: "StoreUnavailable"}


class ErrorBody(BaseModel):
    """Error response body (OGC API exception)."""

    code: str
    description: str


def status_for(exc: BaseException) -> int:
    """HTTP status for a domain or API exception (500 when unmapped)."""
    for klass in type(exc).__mro__:
        if klass in STATUS_CODES:
            return STATUS_CODES[klass]
    return 500


def _body(status: int, description: str, headers: dict[str, str] | None = None,
          **extra: object) -> JSONResponse:
    content: dict[str, object] = {"code": _CODE_NAMES.get(status, str(status)),
                                  "description": description, **extra}
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(status_code=status, content=content, headers=headers or None)


def install_error_handlers(app: FastAPI) -> None:
    """Install handlers for domain errors, API errors and request validation."""

    async def domain(_request: Request, exc: Exception) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.exception("internal error", exc_info=exc)
        description = exc.description if isinstance(exc, ApiError) else str(exc)
        extra: dict[str, object] = {}
        if isinstance(exc, LayerValidationError):
            extra["problems"] = [p.as_dict() for p in exc.problems]
        headers = {"Retry-After": "2"} if isinstance(exc, StoreBusy) else None
        if isinstance(exc, ServiceBusy):
            headers = {"Retry-After": str(exc.retry_after_s)}
            extra["code"] = "ServiceUnavailable"
        return _body(status, description, headers, **extra)

    async def validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        msgs = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
            msgs.append(f"{loc or 'request'}: {err.get('msg')}")
        return _body(400, "; ".join(msgs) or "invalid request")

    async def http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _body(exc.status_code, str(exc.detail))

    app.add_exception_handler(RiskmapError, domain)
    app.add_exception_handler(ApiError, domain)
    app.add_exception_handler(RequestValidationError, validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http)  # type: ignore[arg-type]
