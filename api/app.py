"""The FastAPI application factory: ``create_app(settings)``.

Routers live in ``api/routers/``; each module exposes ``router`` (an ``APIRouter``) and may
expose ``install(app)`` instead when it needs more (static mounts). Optional routers (``maps``)
are included when their module exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import install_error_handlers
from api.openapi30 import install_openapi30
from api.settings import Settings
from layers.store import Store, open_store

__all__ = ["OPTIONAL_ROUTERS", "ROUTERS", "BodyLimit", "create_app"]

log = logging.getLogger("riskmap.api")

# Always included, in this order.
ROUTERS = ("landing", "conformance", "collections", "analysis", "registry", "imports")
# Included when the module exists (added by other parts of the project).
OPTIONAL_ROUTERS = ("maps",)


class BodyLimit:
    """ASGI middleware refusing request bodies larger than ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int, *, import_bytes: int | None = None,
                 import_prefix: str = "/layers/") -> None:
        self.app = app
        self.default = max_bytes
        self.import_bytes = import_bytes or max_bytes
        self.import_prefix = import_prefix
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (self.import_bytes if scope.get("path", "").startswith(self.import_prefix)
                 else self.default)
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(send, limit)
                    return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return msg

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = (b'{"code":"PayloadTooLarge","description":"request body larger than '
                + str(limit).encode() + b' bytes"}')
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def _include(app: FastAPI, module: Any) -> None:
    if hasattr(module, "install"):
        module.install(app)
    else:
        app.include_router(module.router)


def create_app(settings: Settings | None = None, *, store: Store | None = None,
               clock: Callable[[], datetime] | None = None) -> FastAPI:
    """Build the riskmap app for ``settings`` (default: from the environment).

    ``store`` overrides ``settings.store`` (tests pass an already opened store); ``clock``
    (returning an aware ``datetime``) replaces the system clock of the district (tests).
    The app's :class:`~api.service.AnalysisService` (``app.state.service``) applies the
    district's rules (``settings.rules``) and time zone (``settings.timezone``) to every
    endpoint, map and registry sync.
    """
    from api.service import CACHE, AnalysisService, bind

    settings = settings if settings is not None else Settings()
    app = FastAPI(
        title=settings.title,
        description=settings.description,
        version=_version(),
        openapi_url="/api",
        docs_url="/api.html",
        redoc_url=None,
        swagger_ui_parameters={"defaultModelsExpandDepth": -1},
    )
    app.state.settings = settings
    app.state.store = store if store is not None else open_store(settings.store)
    CACHE.resize(settings.analysis_cache_size)
    app.state.service = bind(AnalysisService(app.state.store, settings.district(clock)))
    install_error_handlers(app)
    for name in ROUTERS:
        _include(app, importlib.import_module(f"api.routers.{name}"))
    for name in OPTIONAL_ROUTERS:
        full = f"api.routers.{name}"
        if importlib.util.find_spec(full) is not None:
            _include(app, importlib.import_module(full))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "OPTIONS"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            expose_headers=["Content-Crs", "Link"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes,
                       import_bytes=settings.max_import_bytes)
    install_openapi30(app)
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("riskmap")
    except Exception:  # pragma: no cover - not installed
        return "0"
