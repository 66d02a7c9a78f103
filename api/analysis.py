"""Analysis results served as collections and endpoints, computed lazily and cached per store
version (a rewritten layer changes the version, so results are recomputed on next use).

Each :class:`AnalysisDef` names the ``geo`` module(s) it needs; analyses whose modules are not
installed are simply not offered. ``run`` reads the layers it needs from the store and calls
the pure ``geo`` function; the result is a findings GeoDataFrame (``geo.findings`` schema) or
another GeoDataFrame.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import geopandas as gpd

from geo.findings import FINDING_COLUMNS, SEVERITIES
from layers.errors import LayerNotFoundError
from layers.store import Store

if TYPE_CHECKING:
    from api.catalog import Catalog, CollectionDef, Queryable

__all__ = [
    "ANALYSES",
    "AnalysisDef",
    "ResultCache",
    "available",
    "collection_defs",
    "finding_queryables",
    "missing_layers",
    "missing_layers_error",
    "result",
]

_PLANNERS = frozenset({"planner", "admin"})


@dataclass(frozen=True)
class AnalysisDef:
    """An analysis served as collection ``id``: needs ``modules``; read by ``roles``."""

    id: str
    title: str
    description: str
    modules: tuple[str, ...]
    roles: frozenset[str]
    run: Callable[[Store], gpd.GeoDataFrame]
    findings: bool = True
    owner: str = "planner"
    layers: tuple[str, ...] = ()


ANALYSES: list[AnalysisDef] = []


def register(defn: AnalysisDef) -> AnalysisDef:
    """Add an analysis (replacing one with the same id)."""
    for i, d in enumerate(ANALYSES):
        if d.id == defn.id:
            ANALYSES[i] = defn
            return defn
    ANALYSES.append(defn)
    return defn


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available() -> list[AnalysisDef]:
    """The analyses whose modules are installed."""
    return [d for d in ANALYSES if all(_has(m) for m in d.modules)]


class ResultCache:
    """Results per (analysis id, store version), least recently used evicted."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}

    def get(self, key: tuple[str, str], compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            klock = self._key_locks.setdefault(key, threading.Lock())
        with klock:
            with self._lock:
                if key in self._data:
                    return self._data[key]
            value = compute()
            with self._lock:
                self._data[key] = value
                while len(self._data) > self.size:
                    self._data.popitem(last=False)
                self._key_locks.pop(key, None)
            return value

    def peek(self, key: tuple[str, str]) -> Any | None:
        with self._lock:
            return self._data.get(key)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_CACHES: dict[int, ResultCache] = {}


def cache_for(store: Store, size: int = 16) -> ResultCache:
    """The result cache of ``store`` (one per store object)."""
    return _CACHES.setdefault(id(store), ResultCache(size))


def missing_layers(store: Store, defn: AnalysisDef) -> list[str]:
    """The layers ``defn`` needs that ``store`` does not hold."""
    return [name for name in defn.layers if not store.has_layer(name)]


def missing_layers_error(defn: AnalysisDef, missing: list[str]) -> LayerNotFoundError:
    """The error for analysis ``defn`` on a store lacking ``missing``: names them and how to
    add them (the store path is left out: API clients must not learn server paths)."""
    how = "; ".join(f"`riskmap import --store STORE {m} FILE`" for m in missing)
    return LayerNotFoundError(
        f"analysis {defn.id!r} needs layer(s) {', '.join(missing)}, which this store does not "
        f"have; add them with {how}")


def result(store: Store, analysis_id: str) -> gpd.GeoDataFrame:
    """Result of ``analysis_id`` for the current store version (computed at most once).

    Raises :class:`~layers.errors.LayerNotFoundError` naming the layers to import when the
    store lacks a layer the analysis needs.
    """
    defn = next((d for d in available() if d.id == analysis_id), None)
    if defn is None:
        from api.errors import NotFound

        raise NotFound(f"no analysis {analysis_id!r}; available: "
                       + ", ".join(d.id for d in available()))
    missing = missing_layers(store, defn)
    if missing:
        raise missing_layers_error(defn, missing)
    return cache_for(store).get((analysis_id, layers_version(store)), lambda: defn.run(store))


def layers_version(store: Store) -> str:
    """A version that changes when a layer is rewritten but not on registry writes.

    GeoPackage layer writes replace the file (new inode) and stamp ``gpkg_contents``; the
    registry edits its own tables in place, which must not invalidate analysis results.
    """
    from layers.store import GeoPackageStore

    if not isinstance(store, GeoPackageStore):
        return store.version()
    import sqlite3

    try:
        st = store.path.stat()
        con = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
        try:
            stamp = con.execute("SELECT COUNT(*), MAX(last_change) FROM gpkg_contents WHERE "
                                "data_type = 'features'").fetchone()
        finally:
            con.close()
    except (OSError, sqlite3.Error):
        return store.version()
    return f"{st.st_ino:x}-{stamp[0]}-{stamp[1]}"


def finding_queryables() -> dict[str, Queryable]:
    from api.catalog import Queryable

    out = {c: Queryable(c, "str") for c in FINDING_COLUMNS
           if c not in ("chainage_from_m", "chainage_to_m", "message_zh", "message_en")}
    out["severity"] = Queryable("severity", "str", SEVERITIES)
    return out


def _result_fn(store: Store, analysis_id: str) -> Callable[[], gpd.GeoDataFrame]:
    return lambda: result(store, analysis_id)


def collection_defs(catalog: Catalog) -> list[CollectionDef]:
    """A collection per available analysis."""
    from api.catalog import frame_collection

    store = catalog.store
    out = []
    have = {i.name for i in catalog.infos()}
    for d in available():
        if not set(d.layers) <= have:
            continue
        cached = cache_for(store).peek((d.id, layers_version(store)))
        extent = None
        if cached is not None and len(cached):
            b = cached.to_crs(4490).total_bounds if cached.crs is not None else None
            extent = tuple(float(v) for v in b) if b is not None else None
        out.append(frame_collection(
            d.id, d.title, d.description, d.roles,
            _result_fn(store, d.id),
            finding_queryables() if d.findings else {},
            extent=extent))  # type: ignore[arg-type]
    return out


# --- the analyses ---------------------------------------------------------------------------
# Adapters are added here as the geo modules land (pipelines, hca, location_class, routing,
# route_check, coverage, compounds). Each reads its layers from the store and calls geo.
def _read(store: Store, layer: str) -> gpd.GeoDataFrame:
    return store.read(layer)


def _maybe(store: Store, layer: str) -> gpd.GeoDataFrame | None:
    return store.read(layer) if store.has_layer(layer) else None


def _import(name: str) -> Any:
    return importlib.import_module(name)


def _projected(store: Store, layers: tuple[str, ...], *, anchor: str
               ) -> dict[str, gpd.GeoDataFrame | None]:
    """Read ``layers`` (absent → None) in the analysis CRS of layer ``anchor``."""
    from geo.crs import analysis_crs

    base = store.read(anchor)
    crs = analysis_crs(base) if len(base) else analysis_crs((117.0, 35.0))
    out: dict[str, gpd.GeoDataFrame | None] = {anchor: base.to_crs(crs)}
    for name in layers:
        if name != anchor:
            out[name] = store.read(name, crs=crs) if store.has_layer(name) else None
    return out


def _pipeline_run(store: Store) -> Any:
    cmd = _import("api.commands.pipelines")
    return cache_for(store).get(("_pipeline_run", layers_version(store)),
                                lambda: cmd.run_pipeline_check(store))


def _hca_run(store: Store) -> Any:
    cmd = _import("api.commands.pipelines")
    return cache_for(store).get(("_hca_run", layers_version(store)), lambda: cmd.run_hca(store))


def _part(run: Callable[[Store], Any], attr: str) -> Callable[[Store], gpd.GeoDataFrame]:
    def get(store: Store) -> gpd.GeoDataFrame:
        value = getattr(run(store), attr)
        if value is None:
            from geo.findings import empty_findings

            return empty_findings(4490)
        return value

    return get


def _hazmat_rules() -> Any:
    return _import("layers.hazmat_rules").load_hazmat_rules()


def _run_route_check(store: Store) -> gpd.GeoDataFrame:
    from geo.route_check import check_routes

    rules = _hazmat_rules()
    d = _projected(store, ("hazmat_routes", "restricted_zones", "roads"),
                   anchor="hazmat_routes")
    routes = d["hazmat_routes"]
    assert routes is not None
    return check_routes(routes, zones=d["restricted_zones"], roads=d["roads"],
                        params=rules.check)


def hazmat_network(store: Store) -> Any:
    """The prepared hazmat routing network of ``store`` (cached per layers version)."""

    def build() -> Any:
        from geo.routing import prepare_network

        rules = _hazmat_rules()
        d = _projected(store, ("roads", "restricted_zones", "buildings", "sites"),
                       anchor="roads")
        roads = d["roads"]
        assert roads is not None
        return prepare_network(roads, zones=d["restricted_zones"], buildings=d["buildings"],
                               sites=d["sites"], params=rules.routing)

    return cache_for(store).get(("_hazmat_network", layers_version(store)), build)


def _fire_run(store: Store) -> Any:
    fire = _import("api.commands.fire")
    return cache_for(store).get(("_fire_run", layers_version(store)),
                                lambda: fire.run_fire(store))


def _fire_part(attr: str) -> Callable[[Store], gpd.GeoDataFrame]:
    return _part(_fire_run, attr)


_FIRE_ROLES = frozenset({"fire", "planner", "admin"})
_POLICE = frozenset({"police", "planner", "admin"})
_PIPE_MODULES = ("api.commands.pipelines", "geo.pipelines", "geo.hca", "geo.location_class")
_FIRE_LAYERS = ("roads", "buildings", "fire_stations")
_FIRE_MODULES = ("api.commands.fire", "geo.coverage", "geo.compounds", "geo.fire_lanes")

for _d in (
    AnalysisDef("pipeline_findings", "Pipeline occupancy and setback findings / 管道占压与间距不足",
                "Buildings over pipelines (occupancy) and closer than the setback distance "
                "(GB 50253 / GB 50251 / GB 50028 / 石油天然气管道保护法).",
                _PIPE_MODULES, _PLANNERS, _part(_pipeline_run, "findings"),
                layers=("pipelines", "buildings")),
    AnalysisDef("location_classes", "Pipeline location classes / 地区等级",
                "GB 50251-2015 §4.2 location class ranges along long-distance pipelines.",
                _PIPE_MODULES, _PLANNERS, _part(_hca_run, "location_classes"),
                findings=False, layers=("pipelines", "buildings")),
    AnalysisDef("hca_segments", "Identified HCA segments / 高后果区识别",
                "GB 32167-2015 HCA segments identified along long-distance pipelines.",
                _PIPE_MODULES, _PLANNERS, _part(_hca_run, "segments"), findings=False,
                layers=("pipelines", "buildings")),
    AnalysisDef("hca_findings", "HCA diff and monitoring findings / 高后果区差异与视频监控",
                "Unregistered, unsupported and re-graded HCAs; people-dense HCAs below the "
                "video-monitoring target.", _PIPE_MODULES, _PLANNERS,
                _part(_hca_run, "findings"), layers=("pipelines", "buildings")),
    AnalysisDef("monitoring_coverage", "HCA video-monitoring coverage / 视频监控覆盖",
                "Share of each people-dense HCA's centre line within camera range.",
                _PIPE_MODULES, _PLANNERS, _part(_hca_run, "coverage"), findings=False,
                layers=("pipelines", "buildings")),
    AnalysisDef("route_check", "Designated hazmat route check / 危化品通行路线核查",
                "Designated routes crossing forbidden or permit zones, bridge/tunnel zones, "
                "hazmat-no roads, or leaving the road network.",
                ("geo.route_check", "layers.hazmat_rules"), _POLICE,
                _run_route_check, owner="police", layers=("hazmat_routes",)),
    AnalysisDef("fire_findings", "Fire-lane and coverage findings / 消防通道与覆盖问题",
                "Fire-lane defects, dead ends, buildings beyond engine or micro-station reach, "
                "hydrant gaps, faulty hydrants.", _FIRE_MODULES, _FIRE_ROLES,
                _fire_part("findings"), owner="fire", layers=_FIRE_LAYERS),
    AnalysisDef("building_coverage", "Building fire coverage / 建筑消防覆盖",
                "Per building: engine and micro-station arrival times and coverage.",
                _FIRE_MODULES, _FIRE_ROLES, _fire_part("buildings"), findings=False,
                owner="fire", layers=_FIRE_LAYERS),
    AnalysisDef("compound_report", "Old compounds report / 老旧小区一区一策",
                "Per old residential compound: risk rank and measures.", _FIRE_MODULES,
                _FIRE_ROLES, _fire_part("compounds"), findings=False, owner="fire",
                layers=(*_FIRE_LAYERS, "compounds")),
    AnalysisDef("service_areas", "Fire station service areas / 消防站服务范围",
                "3/5/8-minute service areas of the fire stations.", _FIRE_MODULES,
                _FIRE_ROLES, _fire_part("service_areas"), findings=False, owner="fire",
                layers=_FIRE_LAYERS),
):
    register(_d)
