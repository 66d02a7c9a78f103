"""Audience maps: ``/maps/{name}`` (HTML) and the vendored assets under ``/static/maps/…``.

Each map is built per request from the store (small layers inline, large ones loaded by the
browser from ``/collections/{id}/items?bbox=…``) and the analysis results of the app's
:class:`~api.service.AnalysisService` (the district's rules; cached per store and rules
version). Pages reference only the app and the chosen tile URL.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import geopandas as gpd
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from api.auth import get_principal, require_read
from api.deps import get_service
from api.errors import BadRequest, NotFound
from api.ogc import check_params
from maps.base import STATIC_PREFIX
from maps.offline import asset_path, render_html
from maps.sources import MAP_NAMES, build, density_grid, map_options, read_layers

if TYPE_CHECKING:
    from api.service import AnalysisService

__all__ = ["MAP_ROLES", "OVERVIEW_LAYERS", "analysis_inputs", "install", "map_options", "router"]

log = logging.getLogger("riskmap.api")

router = APIRouter(tags=["Maps"])

# Who may open each map (admin opens all). The police publish view is public.
MAP_ROLES: dict[str, frozenset[str]] = {
    "planner": frozenset({"planner"}),
    "police": frozenset({"police"}),
    "fire": frozenset({"fire"}),
    "overview": frozenset({"planner"}),
}

# Store layers with a low-zoom density overview (GET /maps/density/{layer}).
OVERVIEW_LAYERS = ("buildings", "hydrants", "roads")

_DENSITY: dict[tuple[Any, ...], dict[str, Any]] = {}  # per store object, layer, cells, version
_DENSITY_LOCK = threading.Lock()


def analysis_inputs(service: AnalysisService, name: str
                    ) -> tuple[gpd.GeoDataFrame | None, dict[str, Any]]:
    """Findings and extra layers for map ``name`` (``service.map_inputs(name)``)."""
    return service.map_inputs(name)


@router.get("/maps/{name}", response_class=HTMLResponse, operation_id="getMap",
            summary="An audience map (planner, police, fire, overview) as an HTML page",
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}})
def get_map(request: Request, name: str) -> HTMLResponse:
    check_params(request, ("basemap", "lang", "publish"))
    if name not in MAP_NAMES:
        raise NotFound(f"no map {name!r}; available: {', '.join(MAP_NAMES)}")
    q = request.query_params
    publish = q.get("publish", "false").lower() in ("1", "true", "yes")
    if publish and name != "police":
        raise BadRequest("publish=true is only offered for the police map")
    principal = get_principal(request)
    roles = frozenset({"public"}) | MAP_ROLES[name] if publish else MAP_ROLES[name]
    require_read(principal, roles, f"map {name}")
    basemap = q.get("basemap")
    lang = q.get("lang")
    if lang not in (None, "zh", "en"):
        raise BadRequest(f"lang={lang!r}; expected zh or en")
    root = request.scope.get("root_path", "").rstrip("/")
    try:
        options = map_options(request.app.state.settings, mode="served", basemap=basemap,
                              lang=lang, api_base=root)
        options.tiles()
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    store = request.app.state.store
    findings, extra = (None, {}) if publish else analysis_inputs(get_service(request), name)
    layers: dict[str, Any] = read_layers(store, name, options=options, findings=findings)
    layers.update(extra)
    kwargs: dict[str, Any] = {}
    if name == "police":
        kwargs = {"publish": publish, "route_url": f"{root}/routes",
                  "date": get_service(request).district.now().date().isoformat()}
    m = build(name, layers, findings, options=options, **kwargs)
    html = render_html(m, mode="served", static_prefix=root + STATIC_PREFIX)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/maps/density/{layer}", operation_id="getLayerDensity",
            summary="Feature counts of a large layer on a grid (the maps' low-zoom overview)",
            responses={200: {"content": {"application/geo+json": {}}}})
def layer_density(request: Request, layer: str) -> Response:
    check_params(request, ("cells",))
    principal = get_principal(request)
    require_read(principal, frozenset().union(*MAP_ROLES.values()), "map overviews")
    store = request.app.state.store
    if layer not in OVERVIEW_LAYERS:
        raise NotFound(f"no overview of {layer!r}; available: {', '.join(OVERVIEW_LAYERS)}")
    if not store.has_layer(layer):
        raise NotFound(f"the store has no layer {layer!r}; add it with "
                       f"`riskmap import --store STORE {layer} FILE`")
    try:
        cells = int(request.query_params.get("cells", "64"))
    except ValueError:
        raise BadRequest("cells must be a whole number") from None
    if not 1 <= cells <= 512:
        raise BadRequest(f"cells={cells}; expected 1 to 512")
    from api.service import layers_version

    key = (id(store), layer, cells, layers_version(store))
    grid = _DENSITY.get(key)
    if grid is None:
        grid = density_grid(store, layer, cells=cells)
        with _DENSITY_LOCK:
            if len(_DENSITY) >= 8:
                _DENSITY.pop(next(iter(_DENSITY)))
            _DENSITY[key] = grid
    return Response(json.dumps(grid, separators=(",", ":")), media_type="application/geo+json",
                    headers={"Cache-Control": "no-store"})


@router.get(STATIC_PREFIX + "/{path:path}", include_in_schema=False)
def static_asset(path: str) -> FileResponse:
    try:
        p = asset_path(path)
    except FileNotFoundError:
        raise NotFound(f"no map asset {path!r}") from None
    return FileResponse(p, headers={"Cache-Control": "public, max-age=86400"})


def install(app: FastAPI) -> None:
    """Include the maps router (called by ``api.app.create_app``)."""
    app.include_router(router)
