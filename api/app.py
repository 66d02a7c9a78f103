"""The FastAPI application factory: ``create_app(settings)``.

Routers live in ``api/routers/``; each module exposes ``router`` (an ``APIRouter``) and may
expose ``install(app)`` instead when it needs more (static mounts). Optional routers (``maps``)
are included when their module exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import install_error_handlers
from api.openapi30 import install_openapi30
from api.settings import Settings
from layers.store import Store, open_store

__all__ = [
    "OPTIONAL_ROUTERS",
    "ROUTERS",
    "BodyLimit",
    "Guard",
    "content_security_policy",
    "create_app",
    "host_allowed",
    "tile_sources",
]

log = logging.getLogger("riskmap.api")

# Always included, in this order.
ROUTERS = ("landing", "conformance", "collections", "analysis", "registry", "registry_pages",
           "imports", "session")
# Included when the module exists (added by other parts of the project).
OPTIONAL_ROUTERS = ("protection", "maps", "notice", "changes")  # protection before maps/{name}


_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Public, versioned assets: cacheable whoever asks (no Vary / no-store).
_ASSET_PREFIXES = ("/static/", "/ogc-assets/")
_DOC_PAGES = ("/api.html", "/redoc.html")  # Swagger UI / ReDoc (vendored, served here)


def _host_name(host: str) -> str:
    """The host of a ``Host`` header value, lower-case, without the port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str, trusted: Sequence[str]) -> bool:
    """True when the ``Host`` header value ``host`` names one of ``trusted`` (``*`` any,
    ``*.example.org`` its subdomains)."""
    name = _host_name(host)
    if not name:
        return False
    for t in trusted:
        if t == "*" or t == name or (t.startswith("*.") and name.endswith(t[1:])):
            return True
    return False


def content_security_policy(img_sources: Sequence[str], *, docs: bool = False) -> str:
    """The CSP of HTML pages: everything from this origin, inline script and style (the
    Folium maps and the OGC pages inline their data and set-up code), basemap tiles from
    ``img_sources``, no plugins, no framing, forms posting only here. ``docs`` (the API
    documentation pages ``/api.html``, ``/redoc.html``, whose scripts are vendored) lets
    ReDoc start its search worker from a ``blob:`` URL; no other host is named."""
    worker = "worker-src 'self' blob:; " if docs else ""
    img = " ".join(("'self'", "data:", "blob:", *img_sources))
    return ("default-src 'self'; "
            "script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            f"img-src {img}; {worker}"
            "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


def tile_sources(settings: Settings) -> list[str]:
    """Origins the maps may load basemap tiles from (``img-src`` of the CSP)."""
    out: list[str] = []
    try:
        from maps.base import BASEMAPS
    except ImportError:  # pragma: no cover - maps not installed
        BASEMAPS = {}
    urls = [u for b in BASEMAPS.values() for u in b.urls]
    if settings.map_tile_url:
        urls.append(settings.map_tile_url)
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme in ("http", "https") and parts.netloc:
            netloc = parts.netloc
            if "{" in netloc.split(".", 1)[0]:  # t{s}.tianditu.gov.cn → *.tianditu.gov.cn
                netloc = "*." + netloc.split(".", 1)[-1]
            src = f"{parts.scheme}://{netloc}"
            if src not in out:
                out.append(src)
    return out


class Guard:
    """ASGI middleware guarding every request and response.

    - a ``Host`` not in ``trusted_hosts`` → 400 (the name is never written into links);
    - an unsafe method (POST, PUT, PATCH, DELETE) sent by a browser from another site (an
      ``Origin`` other than this service or ``allowed_origins``; or, without ``Origin``,
      ``Sec-Fetch-Site: cross-site`` / ``same-site``) → 403: no cross-site form writes;
    - responses get ``X-Content-Type-Options: nosniff``; HTML also a CSP with
      ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``; every non-asset response
      ``Vary: Authorization, X-API-Key, Cookie``, and ``Cache-Control: private, no-store``
      when it is keyed (the request carries a key, or anonymous callers are not ``public``).

    Starlette's in-process TestClient (scope client ``testclient``, which no socket peer can
    be) may use its fixed host name ``testserver``.
    """

    def __init__(self, app: ASGIApp, *, trusted_hosts: Sequence[str],
                 allowed_origins: Sequence[str], keyed_anonymous: bool,
                 img_sources: Sequence[str]) -> None:
        self.app = app
        self.trusted = tuple(trusted_hosts)
        self.origins = frozenset(o.rstrip("/").lower() for o in allowed_origins if o != "*")
        self.keyed_anonymous = keyed_anonymous
        self.csp = content_security_policy(img_sources)
        self.csp_docs = content_security_policy(img_sources, docs=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get(b"host", "")
        client = scope.get("client") or ("", 0)
        in_process = client[0] == "testclient" and _host_name(host) == "testserver"
        if not in_process and not host_allowed(host, self.trusted):
            await _json(send, 400, "InvalidHost", "the Host header does not name this "
                        "service; the trusted hosts are set with RISKMAP_TRUSTED_HOSTS")
            return
        if scope["method"] in _UNSAFE_METHODS:
            foreign = self._foreign(headers, host)
            if foreign:
                await _json(send, 403, "Forbidden", f"cross-site write refused: {foreign}; "
                            "changes are accepted from this service's own pages, API clients "
                            "that send no Origin, and the origins in RISKMAP_CORS_ORIGINS")
                return
        path: str = scope.get("path", "")
        asset = path.startswith(_ASSET_PREFIXES)
        keyed = (self.keyed_anonymous or b"authorization" in headers
                 or b"x-api-key" in headers or "riskmap_session=" in headers.get(b"cookie", ""))
        csp = self.csp_docs if path in _DOC_PAGES else self.csp

        async def guarded(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                out = MutableHeaders(scope=msg)
                out["X-Content-Type-Options"] = "nosniff"
                if out.get("content-type", "").startswith("text/html"):
                    out["Content-Security-Policy"] = csp
                    out["X-Frame-Options"] = "DENY"
                    out["Referrer-Policy"] = "same-origin"
                if not asset:
                    for name in ("Authorization", "X-API-Key", "Cookie"):
                        out.add_vary_header(name)
                    if keyed:
                        out["Cache-Control"] = "private, no-store"
            await send(msg)

        await self.app(scope, receive, guarded)

    def _foreign(self, headers: dict[bytes, str], host: str) -> str | None:
        """Why this write comes from another site, or None when it does not."""
        origin = headers.get(b"origin")
        if origin is not None:
            o = origin.strip().rstrip("/").lower()
            if o in self.origins:
                return None
            parts = urlsplit(o)
            if o != "null" and parts.netloc and parts.netloc == host.strip().lower():
                return None
            return f"Origin {origin[:100]!r} is not this service"
        site = headers.get(b"sec-fetch-site", "").strip().lower()
        if site in ("cross-site", "same-site"):
            return f"Sec-Fetch-Site is {site!r}"
        return None


async def _json(send: Send, status: int, code: str, description: str) -> None:
    body = json.dumps({"code": code, "description": description}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})


# Other uploads limited like imports (their routers apply their own, smaller, limits).
_UPLOAD_SUFFIXES = ("/attachments", "/registry/import.xlsx")


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
        path = scope.get("path", "")
        limit = (self.import_bytes if path.startswith(self.import_prefix)
                 or path.endswith(_UPLOAD_SUFFIXES) else self.default)
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

        refused = False

        async def checked_send(msg: Message) -> None:
            # Once the body went over the limit, whatever the app answers (FastAPI turns the
            # aborted read into 400 "error parsing the body") becomes 413.
            nonlocal refused
            if seen > limit:
                if not refused:
                    refused = True
                    await self._refuse(send, limit)
                return
            await send(msg)

        try:
            await self.app(scope, counted, checked_send)
        except _TooLarge:
            if not refused:
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
        docs_url=None,  # /api.html and /redoc.html: api.routers.landing (vendored assets)
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
    app.add_middleware(Guard, trusted_hosts=settings.trusted_hosts,
                       allowed_origins=settings.cors_origins,
                       keyed_anonymous=settings.anonymous_role != "public",
                       img_sources=tile_sources(settings))  # outermost: sees every answer
    install_openapi30(app)
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("riskmap")
    except Exception:  # pragma: no cover - not installed
        return "0"
