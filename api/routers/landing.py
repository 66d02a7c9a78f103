"""Landing page, health and the layer list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api.auth import Principal, can_read, get_principal
from api.catalog import Catalog, CollectionDef
from api.deps import get_store
from api.features import ItemsQuery
from api.ogc import Link, check_params, esc, href, html_page, wants_html
from api.routers.collections import get_catalog
from layers.schema import SCHEMAS
from layers.store import Store

__all__ = ["Health", "LandingPage", "LayerList", "LayerSummary", "router"]

router = APIRouter(tags=["Capabilities"])

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
        items = "".join(f'<li><a href="{esc(li.href)}">{esc(li.title)}</a> ({esc(li.rel)})</li>'
                        for li in links)
        return html_page(settings.title, f"<p>{esc(settings.description)}</p><ul>{items}</ul>")
    return page


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
        return html_page("Layers", "<table><tr><th>layer</th><th>title</th><th>features</th>"
                         f"<th>geometry</th></tr>{rows}</table>")
    return body

