"""The analyses served as collections and endpoints: what each is, who reads it, what it needs.

Each :class:`AnalysisDef` names the ``geo`` module(s) it needs (analyses whose modules are not
installed are not offered), the layers it needs and ``run``, which takes the store's
:class:`~api.service.AnalysisService` (the district's rules, the one cache) and returns a
findings GeoDataFrame (``geo.findings`` schema) or another GeoDataFrame. Results are computed
lazily and cached per (store version, rules version) by the service.

:func:`result` and :func:`hazmat_network` take a store and use the service bound to it (the
app's, see :func:`api.service.service_for`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import geopandas as gpd

from api.service import AnalysisService, layers_version, service_for
from geo.findings import FINDING_COLUMNS, SEVERITIES
from layers.errors import LayerNotFoundError
from layers.store import Store

if TYPE_CHECKING:
    from api.catalog import Catalog, CollectionDef, Queryable

__all__ = [
    "ANALYSES",
    "AnalysisDef",
    "available",
    "collection_defs",
    "finding_queryables",
    "hazmat_network",
    "layers_version",
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
    run: Callable[[AnalysisService], gpd.GeoDataFrame]
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
    """Result of ``analysis_id`` on ``store`` under the rules of the service bound to it
    (``service_for(store).result(analysis_id)``).

    Raises :class:`~layers.errors.LayerNotFoundError` naming the layers to import when the
    store lacks a layer the analysis needs.
    """
    return service_for(store).result(analysis_id)


def hazmat_network(store: Store) -> Any:
    """The hazmat routing network of ``store`` (``service_for(store).hazmat_network()``)."""
    return service_for(store).hazmat_network()


def finding_queryables() -> dict[str, Queryable]:
    """Queryables of a findings collection (its columns; ``severity`` with its values)."""
    from api.catalog import Queryable

    out = {c: Queryable(c, "str") for c in FINDING_COLUMNS
           if c not in ("chainage_from_m", "chainage_to_m", "message_zh", "message_en")}
    out["severity"] = Queryable("severity", "str", SEVERITIES)
    return out


def _result_fn(svc: AnalysisService, analysis_id: str) -> Callable[[], gpd.GeoDataFrame]:
    return lambda: svc.result(analysis_id)


def collection_defs(catalog: Catalog) -> list[CollectionDef]:
    """A collection per available analysis whose layers the store holds; the description
    says which district rules (file hash) the results apply."""
    from api.catalog import frame_collection

    svc = service_for(catalog.store)
    rules = svc.district.rules_label
    out = []
    have = {i.name for i in catalog.infos()}
    versions = svc.key(None)[:-1]  # read the store version once for every analysis
    for d in available():
        if not set(d.layers) <= have:
            continue
        cached = svc.cache.peek((*versions, svc.result_key(d.id)))
        extent = None
        if cached is not None and len(cached):
            b = cached.to_crs(4490).total_bounds if cached.crs is not None else None
            extent = tuple(float(v) for v in b) if b is not None else None
        out.append(frame_collection(
            d.id, d.title, f"{d.description} Rules: {rules}.", d.roles,
            _result_fn(svc, d.id),
            finding_queryables() if d.findings else {},
            extent=extent))  # type: ignore[arg-type]
    return out


# --- the analyses ---------------------------------------------------------------------------
# Each takes the store's service (rules, cache) and returns a GeoDataFrame.
def _part(run: Callable[[AnalysisService], Any], attr: str
          ) -> Callable[[AnalysisService], gpd.GeoDataFrame]:
    def get(svc: AnalysisService) -> gpd.GeoDataFrame:
        value = getattr(run(svc), attr)
        if value is None:
            from geo.findings import empty_findings

            return empty_findings(4490)
        return value

    return get


def _pipeline_run(svc: AnalysisService) -> Any:
    return svc.pipeline_check()


def _hca_run(svc: AnalysisService) -> Any:
    return svc.hca()


def _fire_run(svc: AnalysisService) -> Any:
    return svc.fire()


def _route_check(svc: AnalysisService) -> gpd.GeoDataFrame:
    return svc.route_check()


def _fire_part(attr: str) -> Callable[[AnalysisService], gpd.GeoDataFrame]:
    return _part(_fire_run, attr)


_FIRE_ROLES = frozenset({"fire", "planner", "admin"})
_POLICE = frozenset({"police", "planner", "admin"})
_PIPE_MODULES = ("api.runs.pipelines", "geo.pipelines", "geo.hca", "geo.location_class")
_FIRE_LAYERS = ("roads", "buildings", "fire_stations")
_FIRE_MODULES = ("api.runs.fire", "geo.coverage", "geo.compounds", "geo.fire_lanes")

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
                ("api.runs.routes", "geo.route_check"), _POLICE,
                _route_check, owner="police", layers=("hazmat_routes",)),
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


# issue 16 part A: third-party construction near pipelines (api.runs.protection)
def _protection_run(svc: AnalysisService) -> gpd.GeoDataFrame:
    from api.runs.protection import protection_findings

    return protection_findings(svc)


register(AnalysisDef(
    "protection_findings", "Third-party construction near pipelines / 管道周边第三方施工",
    "Construction sites doing forbidden works in a pipeline protection zone, or works needing a "
    "permit they do not hold valid on the district's date (石油天然气管道保护法 Arts 30, 32, "
    "33, 35).", ("api.runs.protection", "geo.protection"), _POLICE, _protection_run,
    layers=("pipelines", "construction_sites")))


# issue 16 part B: HCA warning signs, patrol paths, statutory inspection (api.runs.patrol)
def _patrol_run(svc: AnalysisService) -> Any:
    from api.runs.patrol import patrol_run

    return patrol_run(svc)


def _inspection_run(svc: AnalysisService) -> Any:
    from api.runs.patrol import inspection_run

    return inspection_run(svc)


_PATROL_MODULES = ("api.runs.patrol", "geo.patrol", "geo.hca")
_PATROL_LAYERS = ("pipelines", "warning_signs", "patrol_paths")
for _d in (
    AnalysisDef("patrol_findings", "HCA warning-sign and patrol-path gaps / 警示标识与巡护通道缺口",
                "Stretches of HCAs without a warning sign in good order within the spacing, and "
                "stretches of pipelines without a passable patrol path within reach (plan "
                "targets 2020 鲁宁线, 2022 all lines), as chainage ranges.",
                _PATROL_MODULES, _PLANNERS, _part(_patrol_run, "findings"),
                layers=_PATROL_LAYERS),
    AnalysisDef("patrol_coverage", "Patrol-path coverage / 巡护通道覆盖",
                "Per pipeline: the share of its length within reach of a passable patrol path.",
                _PATROL_MODULES, _PLANNERS, _part(_patrol_run, "patrol_coverage"),
                findings=False, layers=_PATROL_LAYERS),
    AnalysisDef("sign_coverage", "HCA warning-sign coverage / 高后果区警示标识覆盖",
                "Per HCA stretch: the share of its length signed within the spacing.",
                _PATROL_MODULES, _PLANNERS, _part(_patrol_run, "sign_coverage"),
                findings=False, layers=_PATROL_LAYERS),
    AnalysisDef("inspection_findings", "Statutory inspection findings / 法定检验逾期",
                "Pipelines in service overdue for statutory inspection (next_inspection_due "
                "past, or last_inspection older than the interval) or without any record, on "
                "the district's date.", ("api.runs.patrol", "geo.inspection"), _PLANNERS,
                _part(_inspection_run, "findings"), layers=("pipelines",)),
):
    register(_d)
