"""Landing page, health, the layer list and the API documentation pages.

``/api.html`` (Swagger UI) and ``/redoc.html`` (ReDoc) load their scripts from the vendored
copies under ``maps/assets/apidocs/`` (served at ``/static/maps/apidocs/…``): no request leaves
the service.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from api.auth import Principal, can_read, get_principal
from api.catalog import Catalog, CollectionDef
from api.deps import get_store
from api.features import ItemsQuery
from api.ogc import Link, check_params, esc, href, wants_html
from api.pages import has_route, inject, page, root_path
from api.routers.collections import get_catalog
from layers.schema import SCHEMAS
from layers.store import Store

__all__ = ["DOCS_ASSETS", "Health", "LandingPage", "LayerList", "LayerSummary", "router"]

router = APIRouter(tags=["Capabilities"])

# Where the vendored Swagger UI and ReDoc are served (maps/assets/apidocs/, the maps router).
DOCS_ASSETS = "/static/maps/apidocs"

HTML_JSON = {"description": "JSON, or HTML with f=html",
             "content": {"text/html": {"schema": {"type": "string"}}}}


class LandingPage(BaseModel):
    """OGC API landing page."""

    title: str
    description: str
    links: list[Link]


class Health(BaseModel):
    """Health check; names no path, URL or host of the store."""

    status: str = Field(description="ok when the store can be read")
    version: str = Field(description="store version (changes whenever a layer is rewritten)")
    layers: int


class LayerSummary(BaseModel):
    name: str
    title: str | None = None
    title_zh: str | None = None
    count: int
    geometry_type: str
    crs: str
    bbox: list[float] | None = Field(None, description="lon/lat, EPSG:4490")


class LayerList(BaseModel):
    """The layers the caller may read (as ``/collections``), with the rows it may see."""

    layers: list[LayerSummary]


@router.get("/", response_model=LandingPage, operation_id="getLandingPage",
            summary="Landing page", responses={200: HTML_JSON})
def landing(request: Request) -> Any:
    check_params(request, ())
    settings = request.app.state.settings
    links = [
        Link(href=href(request, "/"), rel="self", type="application/json", title="This document"),
        Link(href=href(request, "/", f="html"), rel="alternate", type="text/html",
             title="This document as HTML"),
        Link(href=href(request, "/api"), rel="service-desc",
             type="application/vnd.oai.openapi+json;version=3.0", title="OpenAPI definition"),
        Link(href=href(request, "/api.html"), rel="service-doc", type="text/html",
             title="API documentation"),
        Link(href=href(request, "/conformance"), rel="conformance", type="application/json",
             title="Conformance classes"),
        Link(href=href(request, "/collections"), rel="data", type="application/json",
             title="Collections"),
        Link(href=href(request, "/layers"), rel="related", type="application/json",
             title="Layers with feature counts"),
        Link(href=href(request, "/registry/hazards"), rel="related", type="application/json",
             title="Hazard registry"),
    ]
    page = LandingPage(title=settings.title, description=settings.description, links=links)
    if wants_html(request):
        return _landing_html(request, links)
    return page


def _landing_html(request: Request, links: list[Link]) -> HTMLResponse:
    """The landing page for browsers: where to go (maps, registry, sign-in, API docs) first,
    then the OGC API links."""
    settings = request.app.state.settings
    root = root_path(request)
    principal = get_principal(request)
    go = []
    if has_route(request, "/maps"):
        go.append((f"{root}/maps", "地图 Maps", "按角色列出可打开的地图与公众通告 "
                   "the maps your role may open, and the public hazmat notice"))
    if has_route(request, "/registry"):
        go.append((f"{root}/registry", "隐患台账 Hazard registry",
                   "登记、整改、销号 register, rectify and close hazards"))
    if principal.session:
        go.append((f"{root}/signin", "切换账号 Switch key", "用另一角色的密钥登录 "
                   "sign in with another role's key"))
    else:
        go.append((f"{root}/signin", "登录 Sign in", "用 API 密钥登录本浏览器 "
                   "sign this browser in with an API key"))
    go.append((f"{root}/api.html", "API 文档 API documentation",
               "Swagger UI（另有 ReDoc: " f'<a href="{root}/redoc.html">redoc.html</a>）'))
    items = "".join(f'<li><a href="{h}">{t}</a> — {d}</li>' for h, t, d in go)
    ogc = "".join(f'<li><a href="{esc(li.href)}">{esc(li.title)}</a> ({esc(li.rel)})</li>'
                  for li in links)
    body = (f"<p>{esc(settings.description)}</p><ul class=\"riskmap-go\">{items}</ul>"
            f"<h2>OGC API – Features</h2><ul>{ogc}</ul>")
    return page(settings.title, body, principal, request=request)


@router.get("/api.html", include_in_schema=False)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over ``/api`` from the vendored swagger-ui-dist (no CDN)."""
    root = root_path(request)
    assets = f"{root}{DOCS_ASSETS}/swagger-ui"
    params = {**request.app.swagger_ui_parameters, "validatorUrl": None}
    doc = get_swagger_ui_html(openapi_url=f"{root}/api", title="API",
                              swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                              swagger_css_url=f"{assets}/swagger-ui.css",
                              swagger_favicon_url=f"{assets}/favicon-32x32.png",
                              swagger_ui_parameters=params)
    html = inject(bytes(doc.body).decode(), title="API 文档 API documentation",
                  principal=get_principal(request), request=request, floating=False)
    return HTMLResponse(html)


@router.get("/redoc.html", include_in_schema=False)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc over ``/api`` from the vendored redoc bundle (no CDN, no web fonts)."""
    root = root_path(request)
    doc = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width, initial-scale=1">'
           '<link rel="icon" href="data:,"><style>body{margin:0;padding:0}</style></head><body>'
           f'<redoc spec-url="{root}/api"></redoc>'
           f'<script src="{root}{DOCS_ASSETS}/redoc/redoc.standalone.js"></script>'
           "</body></html>")
    html = inject(doc, title="API 文档 (ReDoc) API documentation", floating=False,
                  principal=get_principal(request), request=request)
    return HTMLResponse(html)


@router.get("/health", response_model=Health, operation_id="getHealth", summary="Health check")
def health(request: Request, store: Annotated[Store, Depends(get_store)]) -> Health:
    check_params(request, ())
    n = len(store.layers())
    return Health(status="ok", version=store.version(), layers=n)


def _visible_count(d: CollectionDef, where: dict[str, object]) -> int:
    """Rows of ``d`` matching the row filter ``where`` (counted by the store, not read)."""
    page = d.make_source().page(ItemsQuery(where=where, limit=1))
    return int(page.matched) if page.matched is not None else len(page.ids)


@router.get("/layers", response_model=LayerList, operation_id="getLayers",
            summary="Layers the caller may read, with feature counts",
            description="Only the layers the caller's role may read (as /collections); a role "
            "that sees part of a layer (public: published routes) gets the count of those rows "
            "and no bbox.", responses={200: HTML_JSON, 401: {}})
def layers(request: Request, cat: Annotated[Catalog, Depends(get_catalog)],
           principal: Annotated[Principal, Depends(get_principal)]) -> Any:
    check_params(request, ())
    out = []
    for info in cat.infos():
        d = cat.get(info.name)
        if d is None or not can_read(principal, d.roles):
            continue
        where = d.row_filter(principal)
        schema = SCHEMAS.get(info.name)
        out.append(LayerSummary(
            name=info.name, title=schema.title_en if schema else None,
            title_zh=schema.title_zh if schema else None,
            count=_visible_count(d, where) if where else info.count,
            geometry_type=info.geometry_type, crs=info.crs,
            bbox=list(info.bbox) if info.bbox is not None and not where else None))
    body = LayerList(layers=out)
    if wants_html(request):
        rows = "".join(f"<tr><td>{esc(s.name)}</td><td>{esc(s.title_zh)} {esc(s.title)}</td>"
                       f"<td>{s.count}</td><td>{esc(s.geometry_type)}</td></tr>" for s in out)
        return page("图层 Layers", "<table><tr><th>layer</th><th>title</th><th>features</th>"
                    f"<th>geometry</th></tr>{rows}</table>", principal, request=request)
    return body

