"""OGC API – Features Part 1 (core, geojson, html) and Part 2 (crs): collections and items."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from geojson_pydantic import Feature, FeatureCollection
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal, get_principal, require_read
from api.catalog import Catalog, CollectionDef
from api.crs import CRS84, OgcCrs, bbox_region, crs_uri, parse_crs, supported_crs
from api.errors import BadRequest, NotFound
from api.features import (
    ItemsQuery,
    NearFilter,
    Page,
    Source,
    feature_bytes,
    feature_collection_bytes,
)
from api.ogc import Link, check_params, esc, href, html_page, wants_html
from geo.crs import STORAGE_CRS
from maps.html import script_json

__all__ = [
    "Collection",
    "Collections",
    "FeatureCollectionPage",
    "get_catalog",
    "parse_items_query",
    "router",
    "visible_feature",
]

router = APIRouter(tags=["Data"])

GEOJSON = "application/geo+json"
_NOTHING = "\x00no-such-value"  # an equality value no stored feature has
STORAGE_URI = crs_uri(4490)
ITEM_PARAMS = ("bbox", "bbox-crs", "crs", "limit", "offset", "near", "within_m", "datetime")
LEAFLET_DIR = Path(__file__).resolve().parents[2] / "maps" / "assets" / "leaflet"
LEAFLET_URL = "/ogc-assets/leaflet"
MAX_INT64 = 2**63 - 1  # the stores' integer columns and OFFSET are signed 64-bit


def get_catalog(request: Request) -> Catalog:
    """The app's catalog (one per app)."""
    cat = getattr(request.app.state, "catalog", None)
    if cat is None:
        cat = request.app.state.catalog = Catalog(request.app.state.store)
    return cat  # type: ignore[no-any-return]


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
CollectionId = Annotated[str, PathParam(description="collection id", pattern=r"^[A-Za-z0-9_.-]+$",
                                         examples=["buildings"])]


# --- models ---------------------------------------------------------------------------------
class SpatialExtent(BaseModel):
    bbox: list[list[float]]
    crs: str = CRS84


class Extent(BaseModel):
    spatial: SpatialExtent


class Collection(BaseModel):
    """OGC collection description."""

    model_config = ConfigDict(extra="allow")

    id: str
    title: str
    description: str | None = None
    links: list[Link]
    extent: Extent | None = None
    itemType: str = "feature"
    crs: list[str]
    storageCrs: str = STORAGE_URI
    kind: str = Field("layer", description="'layer' (stored) or 'analysis' (computed)")


class Collections(BaseModel):
    links: list[Link]
    collections: list[Collection]


class FeatureCollectionPage(FeatureCollection):  # type: ignore[misc]
    """A page of features (GeoJSON FeatureCollection with OGC paging members)."""

    model_config = ConfigDict(extra="allow")

    links: list[Link] = Field(default_factory=list)
    timeStamp: str | None = None
    numberMatched: int | None = Field(None, ge=0)
    numberReturned: int = Field(0, ge=0)


class FeatureWithLinks(Feature):  # type: ignore[misc]
    """One feature with links."""

    model_config = ConfigDict(extra="allow")

    links: list[Link] = Field(default_factory=list)


class Queryables(BaseModel):
    """JSON Schema of the properties that can be filtered on (``name=value``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_: str = Field("https://json-schema.org/draft/2019-09/schema", alias="$schema")
    id_: str = Field(alias="$id")
    type: str = "object"
    title: str
    properties: dict[str, dict[str, Any]]
    additionalProperties: bool = False


HTML_RESP: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}}


# --- helpers --------------------------------------------------------------------------------
def _collection_or_404(cat: Catalog, cid: str, principal: Principal) -> CollectionDef:
    d = cat.get(cid)
    if d is None:
        from api import analysis

        defn = next((a for a in analysis.available() if a.id == cid), None)
        missing = analysis.missing_layers(cat.store, defn) if defn is not None else []
        if defn is not None and missing:
            require_read(principal, defn.roles, f"collection {cid!r}")
            raise analysis.missing_layers_error(defn, missing)
        from layers.schema import LAYER_NAMES

        if cid in LAYER_NAMES:
            raise NotFound(f"the store has no layer {cid!r}; add it with "
                           f"`riskmap import --store STORE {cid} FILE`")
        raise NotFound(f"no collection {cid!r}; see /collections")
    require_read(principal, d.roles, f"collection {cid!r}")
    return d


def _collection_doc(request: Request, d: CollectionDef, crs_list: list[str],
                    principal: Principal) -> Collection:
    base = f"/collections/{d.id}"
    links = [
        Link(href=href(request, base), rel="self", type="application/json", title=d.title),
        Link(href=href(request, base, f="html"), rel="alternate", type="text/html",
             title=f"{d.title} (HTML)"),
        Link(href=href(request, base + "/items"), rel="items", type=GEOJSON,
             title=f"{d.title} items"),
        Link(href=href(request, base + "/items", f="html"), rel="items", type="text/html",
             title=f"{d.title} items (HTML)"),
        Link(href=href(request, base + "/queryables"),
             rel="http://www.opengis.net/def/rel/ogc/1.0/queryables",
             type="application/schema+json", title="Queryables"),
    ]
    # A role that sees only some rows (public: published routes) gets no layer-wide extent,
    # which would reveal where the hidden rows lie.
    extent = (Extent(spatial=SpatialExtent(bbox=[list(d.extent)])) if d.extent is not None
              and all(math.isfinite(v) for v in d.extent) and not d.row_filter(principal)
              else None)
    return Collection(id=d.id, title=d.title, description=d.description, links=links,
                      extent=extent, crs=crs_list, kind=d.kind)


def _short(raw: str, n: int = 40) -> str:
    """``raw`` quoted for an error message, cut to ``n`` characters (never echo megabytes)."""
    return repr(raw) if len(raw) <= n else repr(raw[:n]) + f"… ({len(raw)} characters)"


def _parse_int(name: str, raw: str | None, default: int, *, minimum: int) -> int:
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise BadRequest(f"{name}={_short(raw)} is not a whole number") from None
    if v < minimum:
        raise BadRequest(f"{name}={v} must be >= {minimum}")
    if v > MAX_INT64:
        raise BadRequest(f"{name}={_short(raw)} is too large; expected at most {MAX_INT64}")
    return v


def _parse_bbox(raw: str) -> tuple[float, float, float, float]:
    parts = raw.split(",")
    if len(parts) not in (4, 6):
        raise BadRequest(f"bbox={raw!r}: expected 4 numbers minx,miny,maxx,maxy "
                         "(or 6 with heights)")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise BadRequest(f"bbox={raw!r}: not all values are numbers") from None
    if not all(math.isfinite(v) for v in vals):
        raise BadRequest(f"bbox={raw!r}: values must be finite")
    if len(vals) == 6:
        vals = [vals[0], vals[1], vals[3], vals[4]]
    a, b, c, d = vals
    if a > c or b > d:
        raise BadRequest(f"bbox={raw!r}: lower corner must not exceed upper corner "
                         "(bboxes crossing the antimeridian are not supported)")
    return a, b, c, d


def _parse_value(d: CollectionDef, name: str, raw: str) -> object:
    q = d.queryables[name]
    try:
        if q.kind == "int":
            v_int = int(raw)
            if not -MAX_INT64 - 1 <= v_int <= MAX_INT64:
                raise BadRequest(f"{name}={_short(raw)}: out of range; expected a 64-bit "
                                 "integer")
            return v_int
        if q.kind == "float":
            v = float(raw)
            if not math.isfinite(v):
                raise ValueError
            return v
        if q.kind == "bool":
            low = raw.lower()
            if low not in ("true", "false", "1", "0"):
                raise ValueError
            return low in ("true", "1")
    except BadRequest:
        raise
    except ValueError:
        raise BadRequest(f"{name}={_short(raw)}: expected {q.kind}") from None
    if q.enum is not None and raw not in q.enum:
        raise BadRequest(f"{name}={raw!r}: expected one of {', '.join(q.enum)}")
    return raw


def visible_feature(d: CollectionDef, src: Source, feature_id: str,
                    principal: Principal) -> Page | None:
    """Feature ``feature_id`` of ``d`` as ``principal`` may see it: None when it is missing
    *or* hidden by the role's row filter (public: unpublished routes), so both answer alike."""
    page = src.feature(feature_id)
    forced = d.row_filter(principal)
    if page is not None and forced:
        rec = dict(zip(page.columns, page.records[0], strict=True))
        if any(rec.get(k) != v for k, v in forced.items()):
            return None
    return page


def _near_filter(request: Request, cat: Catalog, principal: Principal, near: str,
                 within: str | None) -> NearFilter:
    from pyproj import CRS

    from api.features import source_for

    if within is None:
        raise BadRequest("near= needs within_m= (metres)")
    try:
        within_m = float(within)
    except ValueError:
        raise BadRequest(f"within_m={within!r} is not a number") from None
    if not math.isfinite(within_m) or within_m < 0 or within_m > 100_000:
        raise BadRequest(f"within_m={within!r}: expected 0..100000 metres")
    layer, sep, fid = near.partition(":")
    if not sep or not layer or not fid:
        raise BadRequest(f"near={near!r}: expected COLLECTION:FEATURE_ID, "
                         "e.g. pipelines:P-01")
    target_def = cat.get(layer)
    if target_def is None:
        raise BadRequest(f"near={near!r}: no collection {layer!r}")
    require_read(principal, target_def.roles, f"collection {layer!r} (used in near=)")
    src = target_def.make_source() if target_def.kind != "layer" else source_for(
        cat.store, layer)
    # Through the caller's row filter: a feature it may not see answers like a missing one.
    page = visible_feature(target_def, src, fid, principal)
    if page is None:
        raise BadRequest(f"near={near!r}: collection {layer!r} has no feature {fid!r}")
    epsg = cat.analysis_epsg
    if epsg is None:
        raise BadRequest("near= needs a store with data (no analysis CRS)")
    crs = CRS.from_epsg(epsg)
    import geopandas as gpd

    geom = gpd.GeoSeries(page.geometries[:1], crs=STORAGE_CRS).to_crs(crs).iloc[0]
    del request
    return NearFilter(target=geom, crs=crs, within_m=within_m)


def parse_items_query(request: Request, d: CollectionDef, cat: Catalog, principal: Principal,
                      *, max_limit: int, default_limit: int) -> tuple[ItemsQuery, OgcCrs]:
    """Validate every query parameter of an items request (400 on anything unknown/bad)."""
    check_params(request, (*ITEM_PARAMS, *d.queryables))
    qp = request.query_params
    if "datetime" in qp:
        raise BadRequest(f"collection {d.id!r} has no temporal property; datetime= cannot "
                         "be applied")
    crs_list = supported_crs(cat.analysis_epsg)
    out_crs = parse_crs(qp["crs"], crs_list) if "crs" in qp else parse_crs(CRS84, crs_list)
    limit = min(_parse_int("limit", qp.get("limit"), default_limit, minimum=1), max_limit)
    offset = _parse_int("offset", qp.get("offset"), 0, minimum=0)
    region = None
    if "bbox" in qp:
        bcrs = parse_crs(qp["bbox-crs"], crs_list, param="bbox-crs") if "bbox-crs" in qp \
            else parse_crs(CRS84, crs_list)
        region = bbox_region(_parse_bbox(qp["bbox"]), bcrs)
    elif "bbox-crs" in qp:
        raise BadRequest("bbox-crs given without bbox")
    if "within_m" in qp and "near" not in qp:
        raise BadRequest("within_m given without near")
    near = (_near_filter(request, cat, principal, qp["near"], qp.get("within_m"))
            if "near" in qp else None)
    where = {name: _parse_value(d, name, qp[name]) for name in d.queryables if name in qp}
    for k, v in d.row_filter(principal).items():
        # A filter asking for rows the role may not see (public: status=draft) matches none.
        where[k] = v if where.get(k, v) == v else _NOTHING
    return ItemsQuery(region=region, near=near, where=where, limit=limit, offset=offset), out_crs


def _page_links(request: Request, d: CollectionDef, q: ItemsQuery, page: Page) -> list[dict[str, Any]]:
    path = f"/collections/{d.id}/items"
    params = {k: v for k, v in request.query_params.items() if k not in ("offset", "f")}
    links: list[dict[str, Any]] = [
        {"href": href(request, path, **params, offset=q.offset or None), "rel": "self",
         "type": GEOJSON, "title": "this page"},
        {"href": href(request, path, **params, offset=q.offset or None, f="html"),
         "rel": "alternate", "type": "text/html", "title": "this page as HTML"},
        {"href": href(request, f"/collections/{d.id}"), "rel": "collection",
         "type": "application/json", "title": d.title},
    ]
    returned = len(page.ids)
    if page.next_offset is not None:
        more, nxt = True, page.next_offset
    else:
        more = (q.offset + returned < page.matched) if page.matched is not None else (
            returned == q.limit)
        nxt = q.offset + returned
    if more and returned:
        links.append({"href": href(request, path, **params, offset=nxt),
                      "rel": "next", "type": GEOJSON, "title": "next page"})
    if q.offset > 0:
        links.append({"href": href(request, path, **params,
                                   offset=max(q.offset - q.limit, 0) or None),
                      "rel": "prev", "type": GEOJSON, "title": "previous page"})
    return links


def _crs_headers(crs: OgcCrs) -> dict[str, str]:
    return {"Content-Crs": f"<{crs.uri}>"}


def _answer_headers(request: Request, d: CollectionDef, crs: OgcCrs) -> dict[str, str]:
    """``Content-Crs``, and for an analysis result the rules it applied (``Riskmap-Rules``:
    short hash of the effective rule files)."""
    out = _crs_headers(crs)
    if d.kind == "analysis":
        out["Riskmap-Rules"] = request.app.state.service.rules_version
    return out


def _map_html(geojson_text: str, *, crs84: bool) -> tuple[str, str]:
    """Head and body snippets for a small Leaflet map (vendored assets), if available."""
    if not (LEAFLET_DIR / "leaflet.js").exists() or not crs84:
        return "", ""
    head = (f'<link rel="stylesheet" href="{LEAFLET_URL}/leaflet.css">'
            f'<script src="{LEAFLET_URL}/leaflet.js"></script>')
    body = ('<div id="map"></div><script>var m=L.map("map");var g=L.geoJSON('
            + script_json(geojson_text)  # no value can end the script or open a comment
            + ').addTo(m);var b=g.getBounds();if(b.isValid()){m.fitBounds(b)}'
            'else{m.setView([34.8,117.25],13)}</script>')
    return head, body


def _items_html(d: CollectionDef, page: Page, body_bytes: bytes, links: list[dict[str, Any]],
                crs: OgcCrs, *, request: Request) -> Response:
    head, mapdiv = _map_html(body_bytes.decode("utf-8"), crs84=crs.uri == CRS84)
    cols = page.columns
    from api.features import json_value

    rows = "".join(
        "<tr><td>" + esc(fid) + "</td>" + "".join(f"<td>{esc(json_value(v))}</td>" for v in rec)
        + "</tr>" for fid, rec in zip(page.ids, page.records, strict=True))
    nav = " ".join(f'<a href="{esc(li["href"].replace("f=html", "").rstrip("&?"))}'
                   f'{"&" if "?" in li["href"] else "?"}f=html">{esc(li["rel"])}</a>'
                   for li in links if li["rel"] in ("next", "prev"))
    matched = "" if page.matched is None else f" of {page.matched}"
    body = (f"<p>{len(page.ids)} feature(s){matched}. {nav}</p>{mapdiv}"
            "<table><tr><th>feature</th>" + "".join(f"<th>{esc(c)}</th>" for c in cols)
            + f"</tr>{rows}</table>")
    return html_page(d.title, body, head=head, request=request)


# --- routes ---------------------------------------------------------------------------------
@router.get("/collections", response_model=Collections, operation_id="getCollections",
            summary="Collections the caller may read", responses={200: {"content": HTML_RESP}})
def collections(request: Request, cat: CatalogDep, principal: PrincipalDep) -> Any:
    check_params(request, ())
    crs_list = supported_crs(cat.analysis_epsg)
    docs = [_collection_doc(request, d, crs_list, principal) for d in cat.visible(principal)]
    links = [Link(href=href(request, "/collections"), rel="self", type="application/json",
                  title="Collections"),
             Link(href=href(request, "/collections", f="html"), rel="alternate",
                  type="text/html", title="Collections (HTML)")]
    if wants_html(request):
        rows = "".join(f'<li><a href="{esc(href(request, "/collections/" + c.id, f="html"))}">'
                       f"{esc(c.title)}</a> ({esc(c.id)}, {esc(c.kind)})</li>" for c in docs)
        return html_page("Collections", f"<ul>{rows}</ul>", request=request)
    return Collections(links=links, collections=docs)


@router.get("/collections/{collectionId}", response_model=Collection,
            operation_id="describeCollection", summary="Describe a collection",
            responses={200: {"content": HTML_RESP}, 401: {}, 403: {}, 404: {}})
def collection(request: Request, collectionId: CollectionId, cat: CatalogDep,
               principal: PrincipalDep) -> Any:
    check_params(request, ())
    d = _collection_or_404(cat, collectionId, principal)
    doc = _collection_doc(request, d, supported_crs(cat.analysis_epsg), principal)
    if wants_html(request):
        q = "".join(f"<li>{esc(n)} ({esc(v.kind)})</li>" for n, v in d.queryables.items())
        items_url = esc(href(request, f"/collections/{d.id}/items", f="html"))
        body = (f"<p>{esc(d.description)}</p><p><a href=\"{items_url}\">items</a></p>"
                f"<h2>Queryables</h2><ul>{q}</ul>")
        return html_page(d.title, body, request=request)
    return doc


@router.get("/collections/{collectionId}/queryables", response_model=Queryables,
            response_model_by_alias=True, operation_id="getQueryables",
            summary="Properties that can be filtered on",
            responses={200: {"content": {"application/schema+json": {}}}, 401: {}, 403: {},
                       404: {}})
def queryables(request: Request, collectionId: CollectionId, cat: CatalogDep,
               principal: PrincipalDep) -> Any:
    check_params(request, ())
    wants_html(request, formats=("json",))
    d = _collection_or_404(cat, collectionId, principal)
    body = Queryables.model_validate({
        "$id": href(request, f"/collections/{d.id}/queryables"), "title": d.title,
        "properties": {n: q.json_schema() for n, q in d.queryables.items()}})
    return Response(body.model_dump_json(by_alias=True), media_type="application/schema+json")


@router.get(
    "/collections/{collectionId}/items", response_model=FeatureCollectionPage,
    operation_id="getFeatures", summary="Features of a collection, paged",
    description=(
        "Query parameters: bbox (minx,miny,maxx,maxy in bbox-crs axis order, default CRS84), "
        "bbox-crs, crs (output CRS: CRS84, EPSG:4490, EPSG:4326 or the district's GK zone), "
        "limit (default 100, clamped to the maximum), offset, near=COLLECTION:ID with "
        "within_m=metres (exact distance in the analysis CRS), and NAME=VALUE equality "
        "filters on any queryable. Unknown or malformed parameters give 400."),
    responses={200: {"content": {GEOJSON: {}, **HTML_RESP}}, 400: {}, 401: {}, 403: {},
               404: {}},
)
def items(
    request: Request,
    collectionId: CollectionId,
    cat: CatalogDep,
    principal: PrincipalDep,
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs")] = None,
    crs: Annotated[str | None, Query()] = None,
    limit: Annotated[int | None, Query(ge=1, description="page size (clamped)")] = None,
    offset: Annotated[int | None, Query(ge=0)] = None,
    near: Annotated[str | None, Query(description="COLLECTION:FEATURE_ID")] = None,
    within_m: Annotated[float | None, Query(ge=0, le=100_000)] = None,
) -> Any:
    del bbox, bbox_crs, crs, limit, offset, near, within_m  # parsed strictly below
    d = _collection_or_404(cat, collectionId, principal)
    settings = request.app.state.settings
    as_html = wants_html(request, formats=("json", "geojson", "html"))
    q, out_crs = parse_items_query(request, d, cat, principal, max_limit=settings.max_limit,
                                   default_limit=settings.default_limit)
    page = d.make_source().page(q)
    links = _page_links(request, d, q, page)
    body = feature_collection_bytes(page, out_crs, links=links)
    if as_html:
        return _items_html(d, page, body, links, out_crs, request=request)
    return Response(body, media_type=GEOJSON, headers=_answer_headers(request, d, out_crs))


@router.get("/collections/{collectionId}/items/{featureId}", response_model=FeatureWithLinks,
            operation_id="getFeature", summary="One feature",
            responses={200: {"content": {GEOJSON: {}, **HTML_RESP}}, 400: {}, 401: {}, 403: {},
                       404: {}})
def item(
    request: Request,
    collectionId: CollectionId,
    featureId: Annotated[str, PathParam(description="feature id")],
    cat: CatalogDep,
    principal: PrincipalDep,
    crs: Annotated[str | None, Query()] = None,
) -> Any:
    del crs
    check_params(request, ("crs",))
    d = _collection_or_404(cat, collectionId, principal)
    as_html = wants_html(request, formats=("json", "geojson", "html"))
    out_crs = parse_crs(request.query_params.get("crs", CRS84), supported_crs(cat.analysis_epsg))
    page = visible_feature(d, d.make_source(), featureId, principal)
    if page is None:
        raise NotFound(f"collection {d.id!r} has no feature {featureId!r}")
    base = f"/collections/{d.id}/items/{featureId}"
    links = [{"href": href(request, base), "rel": "self", "type": GEOJSON},
             {"href": href(request, base, f="html"), "rel": "alternate", "type": "text/html"},
             {"href": href(request, f"/collections/{d.id}"), "rel": "collection",
              "type": "application/json"}]
    body = feature_bytes(page, out_crs, links=links)
    if as_html:
        return _items_html(d, page, json.dumps({"type": "FeatureCollection", "features": [
            json.loads(body)]}).encode(), [], out_crs, request=request)
    return Response(body, media_type=GEOJSON, headers=_answer_headers(request, d, out_crs))


@router.get(LEAFLET_URL + "/{name:path}", include_in_schema=False)
def leaflet_asset(name: str) -> Any:
    path = (LEAFLET_DIR / name).resolve()
    if not str(path).startswith(str(LEAFLET_DIR.resolve())) or not path.is_file():
        raise NotFound(f"no asset {name!r}")
    return FileResponse(path)

