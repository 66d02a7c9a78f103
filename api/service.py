"""The one analysis service: a store, the district's rules and clock, one cache.

:class:`AnalysisService` loads the inputs of an analysis from its store, applies the district
rule file (:class:`~api.district.District`), computes (``api.runs.*`` → ``geo``) and caches
the result per (store, store version, rules version). The CLI commands, the HTTP endpoints,
the served and exported maps and registry sync all go through it, so they give the same
findings for the same store and rules, and the hazmat routing network and the fire network are
built once per store and rules version in one process.

The app binds its service to its store (:func:`bind`); :func:`service_for` finds it again
for code that only holds the store (the catalog's analysis collections).

Example
-------
>>> svc = AnalysisService(open_store("data/demo.gpkg"), District("district.toml"))
>>> svc.result("pipeline_findings")            # doctest: +SKIP
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np

from api.district import District
from layers.errors import InputFileError, missing_layer
from layers.store import Store

if TYPE_CHECKING:
    from api.analysis import AnalysisDef
    from api.runs.fire import FireRun
    from api.runs.pipelines import HcaRun, PipelineRun, Progress
    from geo.routing import HazmatNetwork, RouteResult, Vehicle
    from layers.fire_rules import FireRules
    from layers.hazmat_rules import HazmatRules
    from layers.rules import RuleSet

__all__ = [
    "CACHE",
    "MAP_USE",
    "AnalysisService",
    "ResultCache",
    "RouteAnswer",
    "bind",
    "finding_records",
    "layers_version",
    "service_for",
]


class ResultCache:
    """Values per key, least recently used evicted; each key computed at most once at a time
    (concurrent callers of one key wait for the first)."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value of ``key``, computed by ``compute`` when absent."""
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

    def peek(self, key: Hashable) -> Any | None:
        """The cached value of ``key`` or None (never computes)."""
        with self._lock:
            return self._data.get(key)

    def resize(self, size: int) -> None:
        """Keep at least ``size`` values (the largest size asked for wins)."""
        with self._lock:
            self.size = max(self.size, int(size))

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._data.clear()


#: The process's one analysis cache (results, runs, networks, loaded rules): about 20 entries
#: per store and rules file, most of them views of a few runs.
CACHE = ResultCache(64)


def layers_version(store: Store) -> str:
    """A version that changes when a layer is written but not on registry writes.

    ``store.version()`` moves inside every layer write's transaction and on nothing else. A
    GeoPackage written before stores had versions reports its file stamp instead, which
    registry edits move too: for it the ``gpkg_contents`` stamp of its feature tables is used
    (the registry edits its own tables, which must not invalidate analysis results).
    """
    version = store.version()
    from layers.store import GeoPackageStore

    if not isinstance(store, GeoPackageStore) or not version.startswith("file:"):
        return version
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
        try:
            stamp = con.execute("SELECT COUNT(*), MAX(last_change) FROM gpkg_contents WHERE "
                                "data_type = 'features'").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return version
    return f"contents:{store.path.stat().st_ino:x}-{stamp[0]}-{stamp[1]}"


@dataclass(frozen=True)
class RouteAnswer:
    """A hazmat route and what it was judged by: ``at`` in the district's zone (None = any
    time, every zone in force) and the rules version."""

    result: RouteResult
    at: datetime | time | None
    applied: dict[str, str | None]


# Analysis collection ids feeding each map: substrings of the id → use. "findings" frames are
# merged; other results become named layers of the map builder.
MAP_USE: dict[str, tuple[tuple[str, str], ...]] = {
    "planner": (("hca-segment", "hca_computed"), ("hca_segment", "hca_computed"),
                ("location", "location_classes"), ("monitoring", "monitoring_coverage"),
                ("pipeline", "findings"), ("occupancy", "findings"), ("setback", "findings"),
                ("hca", "findings"), ("protection", "findings"), ("patrol", "findings"),
                ("inspection", "findings")),
    "police": (("route", "findings"),),
    "fire": (("service", "service_areas"), ("compound", "compound_report"),
             ("lane", "findings"), ("coverage", "findings"), ("hydrant", "findings"),
             ("fire", "findings")),
    "overview": (("monitoring", "monitoring_coverage"), ("pipeline", "findings"),
                 ("hca", "findings"), ("route", "findings"), ("protection", "findings"),
                 ("patrol", "findings"), ("inspection", "findings"),
                 ("lane", "findings"), ("coverage", "findings"), ("hydrant", "findings"),
                 ("fire", "findings")),
}


class AnalysisService:
    """The analyses of one store under one district (rules file, time zone, clock).

    Every computed value is cached in :data:`CACHE` under (store URL, store layers version,
    rules version, what): a layer write or an edit of the rule file recomputes on next use.
    """

    def __init__(self, store: Store, district: District | None = None, *,
                 cache: ResultCache | None = None) -> None:
        self.store = store
        self.district = district if district is not None else District()
        self.cache = cache if cache is not None else CACHE

    def __repr__(self) -> str:
        return f"AnalysisService({self.store.url!r}, {self.district!r})"

    # -- versions and caching ------------------------------------------------------------
    @property
    def rules_version(self) -> str:
        """Short hash of the effective rule files."""
        return self.district.rules_version

    def key(self, what: Hashable) -> tuple[Hashable, ...]:
        """The cache key of ``what`` for the current store and rules versions."""
        return (str(self.store.url), layers_version(self.store), self.rules_version, what)

    def cached(self, what: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per store version and rules version."""
        return self.cache.get(self.key(what), compute)

    def peek(self, what: Hashable) -> Any | None:
        """The cached value of ``what`` for the current versions, or None."""
        return self.cache.peek(self.key(what))

    def applied(self, *at: datetime | time | None) -> dict[str, str | None]:
        """What answers are judged by: the rules (file, hash), the time zone (and ``at``)."""
        return self.district.applied(*at)

    # -- rules ----------------------------------------------------------------------------
    def _rules(self, what: str, load: Callable[[], Any]) -> Any:
        # rules depend only on the files: keyed without the store
        return self.cache.get(("rules", what, str(self.district.rules), self.rules_version),
                              load)

    def pipeline_rules(self) -> RuleSet:
        """Pipeline, location-class and HCA rule tables with the district file applied."""
        from api.runs.pipelines import load_pipeline_rules

        return self._rules("pipelines",  # type: ignore[no-any-return]
                           lambda: load_pipeline_rules(self.district.rules))

    def fire_rules(self) -> FireRules:
        """Fire rules with the district file applied."""
        from layers.fire_rules import load_fire_rules

        return self._rules("fire",  # type: ignore[no-any-return]
                           lambda: load_fire_rules(self.district.rules))

    def hazmat_rules(self) -> HazmatRules:
        """Hazmat routing and route-check rules with the district file applied."""
        from layers.hazmat_rules import load_hazmat_rules

        return self._rules("hazmat",  # type: ignore[no-any-return]
                           lambda: load_hazmat_rules(self.district.rules))

    # -- pipelines --------------------------------------------------------------------------
    def pipeline_check(self, *, pipeline_ids: Sequence[str] | None = None,
                       engine: str = "local", progress: Progress | None = None) -> PipelineRun:
        """Occupancy and setback findings (see :func:`api.runs.pipelines.run_pipeline_check`);
        cached per pipeline selection and engine."""
        from api.runs.pipelines import run_pipeline_check

        ids = tuple(sorted(pipeline_ids)) if pipeline_ids else ()
        return self.cached(("pipeline_check", ids, engine),  # type: ignore[no-any-return]
                           lambda: run_pipeline_check(self.store, rules=self.pipeline_rules(),
                                                      pipeline_ids=list(ids) or None,
                                                      engine=engine, progress=progress))

    def hca(self, *, year: int = 2022, progress: Progress | None = None) -> HcaRun:
        """Location classes, HCA segments, the diff and monitoring coverage for ``year``."""
        from api.runs.pipelines import run_hca

        return self.cached(("hca", int(year)),  # type: ignore[no-any-return]
                           lambda: run_hca(self.store, rules=self.pipeline_rules(),
                                           year=int(year), progress=progress))

    # -- fire -------------------------------------------------------------------------------
    def fire(self) -> FireRun:
        """The whole fire analysis (network, coverage, findings, compounds, service areas)."""
        from api.runs.fire import run_fire

        return self.cached("fire",  # type: ignore[no-any-return]
                           lambda: run_fire(self.store, rules=self.fire_rules()))

    # -- hazmat -----------------------------------------------------------------------------
    def hazmat_network(self) -> HazmatNetwork:
        """The hazmat routing network (built once per store version and rules version)."""
        from api.runs.routes import build_network

        return self.cached("hazmat_network",  # type: ignore[no-any-return]
                           lambda: build_network(self.store, rules=self.hazmat_rules()))

    def route(self, origin: Sequence[float], destination: Sequence[float],
              at: str | datetime | time | None = None, *, alternatives: int = 1,
              objective: str = "time", permits: Sequence[str] = (),
              vehicle: Vehicle | None = None) -> RouteAnswer:
        """Route a hazmat vehicle departing ``at``, read in the district's zone (None = now
        in the district, ``"any"`` = every zone in force)."""
        from geo.routing import route

        when = self.district.resolve_at(at)
        res = route(self.hazmat_network(), origin, destination, when, vehicle=vehicle,
                    permits=tuple(permits), alternatives=alternatives, objective=objective)
        return RouteAnswer(res, when, self.applied(when))

    def route_check(self) -> gpd.GeoDataFrame:
        """Designated-route check findings (analysis CRS of the routes)."""
        from api.runs.routes import run_route_check

        return self.cached("route_check",  # type: ignore[no-any-return]
                           lambda: run_route_check(self.store, rules=self.hazmat_rules()))

    def published_routes(self) -> gpd.GeoDataFrame:
        """The published route set with the restricted zones and their hours (EPSG:4490)."""
        from api.runs.routes import published_routes

        return published_routes(self.store)

    # -- analyses served as collections -----------------------------------------------------
    def definition(self, analysis_id: str) -> AnalysisDef:
        """The available analysis ``analysis_id``; NotFound naming the offered ones."""
        from api import analysis as an

        defn = next((d for d in an.available() if d.id == analysis_id), None)
        if defn is None:
            from api.errors import NotFound

            raise NotFound(f"no analysis {analysis_id!r}; available: "
                           + (", ".join(d.id for d in an.available()) or "none"))
        return defn

    def result(self, analysis_id: str) -> gpd.GeoDataFrame:
        """Result of ``analysis_id`` for the current store and rules versions (computed at
        most once). Raises LayerNotFoundError naming the layers to import when the store
        lacks one the analysis needs."""
        from api import analysis as an

        defn = self.definition(analysis_id)
        missing = an.missing_layers(self.store, defn)
        if missing:
            raise an.missing_layers_error(defn, missing)
        return self.cached(self.result_key(defn.id),  # type: ignore[no-any-return]
                           lambda: defn.run(self))

    def result_key(self, analysis_id: str) -> tuple[str, str, str]:
        """What :meth:`result` caches ``analysis_id`` under: with the district's date, since
        protection, patrol and inspection findings are judged on it (a served answer must not
        keep yesterday's after midnight)."""
        return ("result", analysis_id, self.district.now().date().isoformat())

    def map_options(self, name: str) -> dict[str, Any]:
        """Keyword arguments map ``name``'s builder takes from the district: the planner's
        required setback lines are drawn from the setback rows the check applies (a district
        override moves them too)."""
        if name == "planner":
            return {"setback_rules": self.pipeline_rules().rows("setback")}
        return {}

    def monitoring(self) -> dict[str, Any] | None:
        """Video-monitoring coverage of people-dense HCAs against the plan's targets on the
        district's date — the one figure of the maps, ``/registry/stats``, the dashboard, the
        workbook and ``riskmap registry stats``: camera coverage of HCA length when the store
        can be analysed for it, else the share of HCAs flagged ``video_monitored``."""
        from api import analysis as an
        from geo.hca import coverage_share
        from layers.registry import monitoring_stats

        coverage = None
        defn = next((d for d in an.available() if d.id == "monitoring_coverage"), None)
        if defn is not None and not an.missing_layers(self.store, defn):
            coverage = coverage_share(self.result("monitoring_coverage"))
        return monitoring_stats(self.store, self.district.now().date(), coverage=coverage)

    def findings(self, analysis_id: str) -> tuple[AnalysisDef, gpd.GeoDataFrame]:
        """The definition and current findings of a findings analysis — what registry sync
        (CLI and API) registers. Missing layers are named with this store's own import
        command; an analysis that gives no findings is refused naming those that do."""
        from api import analysis as an

        offered = [d for d in an.available() if d.findings]
        defn = next((d for d in offered if d.id == analysis_id), None)
        if defn is None:
            raise InputFileError(f"no findings analysis {analysis_id!r}; expected one of "
                                 + ", ".join(d.id for d in offered))
        missing = an.missing_layers(self.store, defn)
        if missing:
            raise missing_layer(self.store.url, missing, f"analysis {defn.id!r}")
        return defn, self.result(defn.id)

    def map_inputs(self, name: str) -> tuple[gpd.GeoDataFrame | None, dict[str, Any]]:
        """Findings and extra layers for map ``name`` from the analyses this store can run
        (a failing analysis is logged and left out, it does not take the map down)."""
        import logging

        from api import analysis as an
        from maps.compose import concat_findings

        frames: list[gpd.GeoDataFrame] = []
        extra: dict[str, Any] = {}
        for defn in an.available():
            use = next((u for key, u in MAP_USE.get(name, ()) if key in defn.id), None)
            if use is None or (use == "findings") != bool(defn.findings):
                continue
            if an.missing_layers(self.store, defn):  # not an error: the store lacks them
                continue
            try:
                res = self.result(defn.id)
            except Exception as exc:  # one failing analysis must not take the map down
                logging.getLogger("riskmap.api").warning(
                    "map %s: analysis %s failed: %s", name, defn.id, exc)
                continue
            if use == "findings":
                frames.append(res)
            else:
                extra.setdefault(use, res)
        return concat_findings(frames), extra


def finding_records(frame: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    """Findings as registry records: their columns plus ``lon``/``lat`` of a point on each
    (EPSG:4490, 7 decimals; None where the geometry is empty)."""
    if frame.empty:
        return []
    recs = frame.drop(columns=frame.geometry.name).to_dict("records")
    if frame.crs is None:
        return recs
    pts = frame.geometry.to_crs(4490).representative_point()
    xs, ys = pts.x.to_numpy(), pts.y.to_numpy()
    lons = np.where(np.isfinite(xs), np.round(xs, 7), np.nan)
    lats = np.where(np.isfinite(ys), np.round(ys, 7), np.nan)
    for r, x, y in zip(recs, lons.tolist(), lats.tolist(), strict=True):
        r["lon"] = None if x != x else x
        r["lat"] = None if y != y else y
    return recs


_BOUND: dict[int, tuple[weakref.ref[Any], AnalysisService]] = {}
_BOUND_LOCK = threading.Lock()


def bind(service: AnalysisService) -> AnalysisService:
    """Make ``service`` the one :func:`service_for` returns for its store object."""
    key = id(service.store)

    def forget(ref: weakref.ref[Any]) -> None:
        bound = _BOUND  # None while the interpreter shuts down
        if bound is not None and bound.get(key, (None,))[0] is ref:
            bound.pop(key, None)

    with _BOUND_LOCK:
        _BOUND[key] = (weakref.ref(service.store, forget), service)
    return service


def service_for(store: Store) -> AnalysisService:
    """The service bound to ``store`` (by the app serving it), else one with the district
    of the environment (``RISKMAP_RULES``, ``RISKMAP_TIMEZONE``)."""
    with _BOUND_LOCK:
        hit = _BOUND.get(id(store))
    if hit is not None and hit[0]() is store:
        return hit[1]
    return bind(AnalysisService(store, District.from_env()))
