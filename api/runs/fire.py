"""The fire analysis on a store: fire-lane qualification, dead ends, engine and micro-station
coverage, hydrants, the 一区一策 compound report and the station service areas.

:func:`run_fire` reads the fire layers, projects them to the analysis CRS of the roads, builds
the fire road network once and calls the pure ``geo`` functions. :mod:`api.service` calls it
once per (store version, rules version) and caches the result (the network included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.compounds import assign_compounds, compound_report
from geo.coverage import Reach, build_fire_network, building_coverage, coverage_findings, reach
from geo.crs import STORAGE_CRS, analysis_crs
from geo.findings import empty_findings, make_findings
from geo.fire_lanes import dead_end_findings, lane_findings, qualify_lanes
from geo.hydrants import (
    faulty_hydrant_findings,
    hydrant_distances,
    hydrant_radius_findings,
    hydrant_spacing_findings,
    hydrant_spacing_gaps,
)
from geo.network import RoadGraph
from geo.service_areas import service_areas
from layers.errors import InputFileError, missing_layer
from layers.fire_rules import FireRules, load_fire_rules
from layers.store import Store

__all__ = ["FireRun", "run_fire"]


@dataclass
class FireRun:
    """Everything :func:`run_fire` computed, in the analysis CRS (metres)."""

    rules: FireRules
    crs: Any
    graph: RoadGraph
    engine: Reach
    micro: Reach
    lanes: gpd.GeoDataFrame | None
    buildings: gpd.GeoDataFrame
    findings: gpd.GeoDataFrame
    spacing_gaps: gpd.GeoDataFrame
    compounds: gpd.GeoDataFrame | None
    service_areas: gpd.GeoDataFrame | None


def _read(store: Store, layer: str, crs: Any, *, required: bool) -> gpd.GeoDataFrame | None:
    if not store.has_layer(layer):
        if required:
            raise missing_layer(store.url, layer, "the fire coverage")
        return None
    return store.read(layer, crs=crs)


def _station_findings(r: Reach, rules: FireRules) -> gpd.GeoDataFrame:
    st = r.stations
    off = st["edge"].to_numpy() < 0
    if not off.any():
        return empty_findings(st.crs)
    s = st.loc[off]
    ids = s["id"].astype(str).to_numpy() if "id" in s.columns else s.index.astype(str)
    lim = rules.station_snap_m
    what = "engine" if r.mode == "engine" else "micro-station"
    df = pd.DataFrame({
        "severity": "high",
        "layer": "fire_stations",
        "feature_id": ids,
        "rule_id": "fire.station_snap_m",
        "rule_source": rules.source("station_snap_m"),
        "message_zh": [f"消防站 {i} 距可通行路网超过 {lim:g} m，未参与覆盖计算" for i in ids],
        "message_en": [f"station {i} is more than {lim:g} m from any road usable by "
                       f"{what} crews; it is left out of the coverage" for i in ids],
    })
    return make_findings(df, kind="station_off_network", geometry=s.geometry.values,
                         crs=st.crs, id_columns=["feature_id"])


def run_fire(store: Store, *, rules: FireRules | None = None, with_compounds: bool = True,
             with_service_areas: bool = True) -> FireRun:
    """Read the fire layers of ``store``, project them to the analysis CRS of the roads and
    run lane qualification, dead ends, coverage, hydrants, the compound report and the
    service areas."""
    rules = rules or load_fire_rules()
    missing = [n for n in ("roads", "buildings", "fire_stations") if not store.has_layer(n)]
    if missing:
        raise missing_layer(store.url, missing, "the fire coverage")
    roads4490 = _read(store, "roads", None, required=True)
    assert roads4490 is not None
    if len(roads4490) == 0:
        raise InputFileError(f"store {store.url}: layer 'roads' is empty")
    crs = analysis_crs(roads4490.to_crs(STORAGE_CRS))
    roads = roads4490.to_crs(crs)
    buildings = _read(store, "buildings", crs, required=True)
    stations = _read(store, "fire_stations", crs, required=True)
    lanes = _read(store, "fire_lanes", crs, required=False)
    hydrants = _read(store, "hydrants", crs, required=False)
    compounds = _read(store, "compounds", crs, required=False)
    assert buildings is not None and stations is not None
    graph = build_fire_network(roads, lanes, rules=rules)
    parts = []
    qlanes = None
    if lanes is not None and len(lanes):
        qlanes = qualify_lanes(lanes, rules=rules)
        parts.append(lane_findings(lanes, rules=rules))
    dead = dead_end_findings(graph, rules=rules, buildings=buildings)
    parts.append(dead)
    cov = building_coverage(buildings, graph, stations, rules=rules)
    # micro stations serve their communities: their 3-minute findings are listed for the
    # buildings of the old compounds (every building when the store has no compounds)
    scope = None
    if compounds is not None and len(compounds):
        scope = assign_compounds(compounds, np.asarray(cov.geometry.values)) >= 0
    parts.append(coverage_findings(cov, rules=rules, micro_scope=scope))
    engine = reach(graph, stations, rules=rules, mode="engine")
    micro = reach(graph, stations, rules=rules, mode="micro")
    parts += [_station_findings(engine, rules), _station_findings(micro, rules)]
    # a store without a hydrants layer has no hydrant data (not "no hydrants"): the distances
    # are still computed for the report, but no hydrant finding is raised on missing data
    known_hydrants = hydrants is not None
    if hydrants is None:
        hydrants = gpd.GeoDataFrame({"id": [], "status": []},
                                    geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    cov = hydrant_distances(cov, hydrants, rules=rules, graph=graph)
    gaps = hydrant_spacing_gaps(graph, hydrants, rules=rules)
    if known_hydrants:
        parts.append(hydrant_radius_findings(cov, rules=rules))
        parts.append(hydrant_spacing_findings(gaps, rules=rules))
        parts.append(faulty_hydrant_findings(hydrants, rules=rules))
    parts = [p for p in parts if len(p)]
    findings = (pd.concat(parts, ignore_index=True) if parts else empty_findings(crs))
    findings = gpd.GeoDataFrame(findings, geometry="geometry", crs=crs)
    report = None
    if with_compounds and compounds is not None and len(compounds):
        report = compound_report(compounds, cov, qlanes, rules=rules, dead_ends=dead,
                                 spacing_gaps=gaps, hydrants=hydrants, graph=graph,
                                 engine=engine)
    areas = service_areas(graph, stations, rules=rules) if with_service_areas else None
    return FireRun(rules=rules, crs=crs, graph=graph, engine=engine, micro=micro, lanes=qlanes,
                   buildings=cov, findings=findings, spacing_gaps=gaps, compounds=report,
                   service_areas=areas)
