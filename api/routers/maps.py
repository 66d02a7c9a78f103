"""Audience maps: ``/maps/{name}`` (HTML) and the vendored assets under ``/static/maps/…``.

Each map is built from the store (small layers inline, large ones loaded by the browser from
``/collections/{id}/items?bbox=…``) and the analysis results of the app's
:class:`~api.service.AnalysisService` (the district's rules; cached per store and rules
version), with only the layers the caller may read. Builds are bounded by the app's
:class:`~maps.builds.BuildGate`: ``map_build_workers`` at once (default 2),
``map_build_queue`` more waiting (default 8), beyond that 503 with ``Retry-After``; the HTML
is cached per (map, visible layers, options, store version, rules version, district date), so
repeated requests reuse it. Pages reference only the app and the chosen tile URL.

``/maps/density/{layer}`` needs the read right on that layer (as ``/collections/{layer}``,
with the role's row filter) and never draws cells smaller than
:data:`~maps.sources.MIN_CELL_M` (100 m).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import geopandas as gpd
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from api.auth import LAYER_ROLES, Principal, can_read, get_principal, require_read
from api.deps import get_service
from api.errors import BadRequest, Forbidden, NotFound, ServiceBusy, Unauthorized
from api.ogc import check_params, esc, wants_html
from api.pages import ROLE_LABELS, has_route, inject, page, root_path
from maps.base import STATIC_PREFIX
from maps.builds import BuildGate, BuildsBusy
from maps.offline import asset_path, render_html
from maps.sources import (
    MAP_LAYERS,
    MAP_NAMES,
    MIN_CELL_M,
    PUBLISH_LAYERS,
    build,
    density_grid,
    map_options,
    read_layers,
)

if TYPE_CHECKING:
    from api.service import AnalysisService

__all__ = ["MAP_INFO", "MAP_ROLES", "OVERVIEW_LAYERS", "MapEntry", "MapIndex", "analysis_inputs",
           "build_gate", "install", "map_options", "router", "visible_layers"]

log = logging.getLogger("riskmap.api")

router = APIRouter(tags=["Maps"])

# Who may open each map (admin opens all). The police publish view is public.
MAP_ROLES: dict[str, frozenset[str]] = {
    "planner": frozenset({"planner"}),
    "police": frozenset({"police"}),
    "fire": frozenset({"fire"}),
    "overview": frozenset({"planner"}),
}

# Title and one-line description of each map page (zh · en), in the order of the /maps index;
# ("police", True) is the public notice (/maps/police?publish=true), open to everybody.
MAP_INFO: dict[tuple[str, bool], tuple[str, str]] = {
    ("planner", False): ("规划管线安全图 · Planner pipeline map",
                         "管道占压、间距不足与高后果区 · pipeline occupancy, setback shortfalls "
                         "and high-consequence areas"),
    ("police", False): ("危化品运输路线图 · Police hazmat route map",
                        "危化品车辆路线、禁行区与路线规划 · hazmat routes, restricted zones "
                        "and route planning"),
    ("fire", False): ("消防通道与救援覆盖图 · Fire access and coverage map",
                      "消防通道、消火栓与 5 分钟可达范围 · fire lanes, hydrants and 5-minute "
                      "reach"),
    ("overview", False): ("区域安全总览 · District safety overview",
                          "各类隐患与整改情况 · all findings and their rectification"),
    ("police", True): ("危化品车辆通行公告 · Public hazmat route notice",
                       "公众可见的通行路线与禁行区域 · published routes and restricted zones, "
                       "for everybody"),
}


class MapEntry(BaseModel):
    """One map page of the index."""

    name: str
    publish: bool = Field(description="the public notice view of the police map")
    title: str
    description: str
    href: str
    roles: list[str] = Field(description="roles that may open it (admin opens all); "
                             "'*' for everybody")
    allowed: bool = Field(description="whether the caller may open it")


class MapIndex(BaseModel):
    """The map pages, and which of them the caller may open."""

    role: str
    maps: list[MapEntry]


def _map_href(root: str, name: str, publish: bool) -> str:
    return f"{root}/maps/{name}" + ("?publish=true" if publish else "")


def _map_index(request: Request, principal: Principal) -> MapIndex:
    root = root_path(request)
    out = []
    for (name, publish), (title, desc) in MAP_INFO.items():
        if name not in MAP_NAMES:
            continue
        roles = ["*"] if publish else sorted(MAP_ROLES[name] | {"admin"})
        out.append(MapEntry(name=name, publish=publish, title=title, description=desc,
                            href=_map_href(root, name, publish), roles=roles,
                            allowed=publish or can_read(principal, MAP_ROLES[name])))
    if has_route(request, "/maps/protection"):  # the live early-warning page (issue 16)
        from api.routers.protection import ALERT_ROLES

        out.append(MapEntry(
            name="protection", publish=False,
            title="第三方施工机械定位预警 · Machine early warning",
            description="施工机械实时位置与管道保护区告警 · live machine positions and "
                        "pipeline protection-zone alerts",
            href=f"{root}/maps/protection", roles=sorted(ALERT_ROLES),
            allowed=can_read(principal, ALERT_ROLES)))
    return MapIndex(role=principal.role, maps=out)


@router.get("/maps", response_model=MapIndex, operation_id="getMapIndex",
            summary="The map pages, and which of them the caller may open",
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}, 400: {},
                       401: {}})
def map_index(request: Request) -> Any:
    check_params(request, ())
    principal = get_principal(request)
    index = _map_index(request, principal)
    if not wants_html(request):
        return index
    root = root_path(request)
    rows = []
    for e in index.maps:
        if e.allowed:
            rows.append(f'<li class="riskmap-map" data-map="{esc(e.name)}" data-publish='
                        f'"{str(e.publish).lower()}"><a href="{esc(e.href)}">{esc(e.title)}</a>'
                        f"<br><small>{esc(e.description)}</small></li>")
        else:
            need = "、".join(f"{ROLE_LABELS.get(r, r)} {r}" for r in e.roles if r != "admin")
            nxt = esc(e.href).replace("?", "%3F").replace("=", "%3D")
            rows.append(f'<li class="riskmap-locked" data-map="{esc(e.name)}" data-publish='
                        f'"{str(e.publish).lower()}">{esc(e.title)}<br><small>需要角色 needs '
                        f'role: {esc(need)} · <a href="{root}/signin?next={nxt}">登录 sign '
                        "in</a></small></li>")
    body = f'<ul class="riskmap-maps">{"".join(rows)}</ul>'
    return page("地图 Maps", body, principal, request=request)


def _wants_page(request: Request) -> bool:
    """A browser navigating (Accept names text/html): sent to sign in rather than a JSON 401."""
    return "text/html" in request.headers.get("accept", "")


def _signin_redirect(request: Request) -> RedirectResponse:
    from urllib.parse import quote

    root = root_path(request)
    here = root + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{root}/signin?next={quote(here, safe='/')}", status_code=303)


# Store layers with a low-zoom density overview (GET /maps/density/{layer}).
OVERVIEW_LAYERS = ("buildings", "hydrants", "roads")

_DENSITY: dict[tuple[Any, ...], dict[str, Any]] = {}  # per store, layer, cells, version, filter
_DENSITY_LOCK = threading.Lock()
_GATE_LOCK = threading.Lock()


def analysis_inputs(service: AnalysisService, name: str
                    ) -> tuple[gpd.GeoDataFrame | None, dict[str, Any]]:
    """Findings and extra layers for map ``name`` (``service.map_inputs(name)``)."""
    return service.map_inputs(name)


def build_gate(app: FastAPI) -> BuildGate:
    """The app's map build gate (made on first use from ``map_build_workers`` and
    ``map_build_queue`` in its settings)."""
    gate = getattr(app.state, "map_builds", None)
    if gate is None:
        with _GATE_LOCK:
            gate = getattr(app.state, "map_builds", None)
            if gate is None:
                settings = app.state.settings
                gate = app.state.map_builds = BuildGate(
                    workers=settings.map_build_workers,
                    queue=settings.map_build_queue)
    return gate  # type: ignore[no-any-return]


def visible_layers(principal: Principal, name: str, *, publish: bool = False) -> tuple[str, ...]:
    """The layers of map ``name`` that ``principal`` may read (the notice view: its fixed
    public layers)."""
    if publish:
        return PUBLISH_LAYERS
    return tuple(layer for layer in MAP_LAYERS[name]
                 if can_read(principal, LAYER_ROLES.get(layer, frozenset({"planner"}))))


@router.get("/maps/{name}", response_class=HTMLResponse, operation_id="getMap",
            summary="An audience map (planner, police, fire, overview) as an HTML page",
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}},
                       400: {}, 401: {}, 403: {}, 404: {},
                       503: {"description": "too many map builds at once; see Retry-After"}})
def get_map(request: Request, name: str) -> Response:
    check_params(request, ("basemap", "lang", "publish"))
    if name not in MAP_NAMES:
        raise NotFound(f"no map {name!r}; available: {', '.join(MAP_NAMES)}")
    q = request.query_params
    publish = q.get("publish", "false").lower() in ("1", "true", "yes")
    if publish and name != "police":
        raise BadRequest("publish=true is only offered for the police map")
    principal = get_principal(request)
    if not publish:  # the public notice is for everybody, whatever the anonymous role
        try:
            require_read(principal, MAP_ROLES[name], f"map {name}")
        except (Unauthorized, Forbidden):
            if _wants_page(request):
                return _signin_redirect(request)
            raise
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
    service = get_service(request)
    from api.service import layers_version

    visible = visible_layers(principal, name, publish=publish)
    date = service.district.now().date().isoformat() if name == "police" else None
    if publish:  # refused (409) like the printed notice while a route fails the route check
        from api.routers.notice import notice_links, publish_guard, publish_texts

        refused = publish_guard(request, principal)
        if refused is not None:
            return refused
    key = (name, publish, visible, repr(options), str(getattr(store, "url", id(store))),
           layers_version(store), service.rules_version, date)

    def make() -> str:
        findings, extra = (None, {}) if publish else analysis_inputs(service, name)
        layers: dict[str, Any] = read_layers(store, name, options=options, findings=findings,
                                             only=visible)
        layers.update(extra)
        kwargs: dict[str, Any] = service.map_options(name)
        if name == "police":
            kwargs = {"publish": publish, "route_url": f"{root}/routes", "date": date,
                      **(publish_texts(request) if publish else {})}
        m = build(name, layers, findings, options=options, **kwargs)
        return render_html(m, mode="served", static_prefix=root + STATIC_PREFIX)

    try:
        html = build_gate(request.app).get(key, make)
    except BuildsBusy as exc:
        log.warning("map %s refused: %s", name, exc)
        raise ServiceBusy(str(exc), retry_after_s=exc.retry_after_s) from None
    html = inject(html, title=MAP_INFO[(name, publish)][0], principal=principal, request=request)
    if publish:
        html = notice_links(html, root)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/maps/density/{layer}", operation_id="getLayerDensity",
            summary="Feature counts of a large layer on a grid (the maps' low-zoom overview)",
            description=("Needs the read right on the layer (as /collections/{layer}; a role "
                         "that sees some rows counts only those). About `cells` cells (1-512) "
                         f"along the longer side of the layer's extent, none under {MIN_CELL_M:g} "
                         "m a side."),
            responses={200: {"content": {"application/geo+json": {}}}, 400: {}, 401: {},
                       403: {}, 404: {}})
def layer_density(request: Request, layer: str) -> Response:
    check_params(request, ("cells",))
    principal = get_principal(request)
    if layer not in OVERVIEW_LAYERS:
        raise NotFound(f"no overview of {layer!r}; available: {', '.join(OVERVIEW_LAYERS)}")
    from api.routers.collections import get_catalog

    defn = get_catalog(request).get(layer)
    roles = defn.roles if defn is not None else LAYER_ROLES.get(layer, frozenset({"planner"}))
    require_read(principal, roles, f"collection {layer!r}")  # before saying whether it exists
    store = request.app.state.store
    if defn is None or not store.has_layer(layer):
        raise NotFound(f"the store has no layer {layer!r}; add it with "
                       f"`riskmap import --store STORE {layer} FILE`")
    raw = request.query_params.get("cells", "64")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
        raise BadRequest(f"cells={raw[:20]!r}; expected a whole number 1 to 512")
    cells = int(raw)
    if not 1 <= cells <= 512:
        raise BadRequest(f"cells={cells}; expected 1 to 512")
    where = defn.row_filter(principal)
    from api.service import layers_version

    key = (id(store), layer, cells, layers_version(store), tuple(sorted(where.items())))
    grid = _DENSITY.get(key)
    if grid is None:
        grid = density_grid(store, layer, cells=cells, where=where)
        with _DENSITY_LOCK:
            if len(_DENSITY) >= 8:
                _DENSITY.pop(next(iter(_DENSITY)))
            _DENSITY[key] = grid
    return Response(json.dumps(grid, separators=(",", ":")), media_type="application/geo+json",
                    headers={"Cache-Control": "private, no-store", "Vary": "Authorization, X-API-Key"})


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
