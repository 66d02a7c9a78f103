"""``riskmap coverage`` and ``riskmap compounds``: fire-lane coverage and the 一区一策 report.

``riskmap coverage --store STORE [--rules FILE] --out FILE`` writes every fire finding (lane
defects, dead ends, buildings beyond engine reach, buildings of old compounds beyond
micro-station reach, hydrant gaps, faulty hydrants, stations off the network) to FILE and the building-level coverage and the 3/5/8-
minute service areas next to it (``<stem>.buildings<ext>``, ``<stem>.service_areas<ext>``;
in a ``.gpkg`` they are the layers ``fire_findings``, ``building_coverage`` and
``service_areas``).

``riskmap compounds --store STORE [--rules FILE] --out FILE`` writes the report per old
compound sorted by risk rank: ``.json`` (a document with the risk formula and one object per
compound), ``.geojson`` (compound polygons with the report columns), ``.csv`` (one row per
compound, measures joined with "；") or ``.gpkg``.

:func:`run_fire` is the whole analysis on a store, for the API and the maps.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from api.commands import note_absent, open_existing
from geo.compounds import RISK_FORMULA, assign_compounds, compound_report
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

__all__ = ["FireRun", "register", "run_fire", "write_compounds"]

_OUT = (".geojson", ".json", ".gpkg", ".csv")


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


# -- writing ------------------------------------------------------------------------------------
def _sibling(path: Path, name: str) -> Path:
    return path.with_name(f"{path.stem}.{name}{path.suffix}")


def _finite(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = frame.copy()
    for c in out.columns:
        if c != out.geometry.name and pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].where(np.isfinite(out[c].to_numpy(dtype=float)))
    return out


def _write(gdf: gpd.GeoDataFrame, path: Path, layer: str) -> None:
    from layers.writers import write_findings

    write_findings(_finite(gdf), path, layer=layer)


def _check_out(path: Path) -> None:
    if path.suffix.lower() not in _OUT:
        raise InputFileError(f"--out {path.name!r}: expected one of {', '.join(_OUT)}")


def write_compounds(report: gpd.GeoDataFrame, path: str | Path, *, rules: FireRules) -> Path:
    """Write the compound report (sorted by rank) as .json, .geojson, .csv or .gpkg."""
    p = Path(path)
    _check_out(p)
    rep = _finite(report.sort_values("rank"))
    ext = p.suffix.lower()
    if ext == ".json":
        centre = rep.geometry.representative_point().to_crs(4326)
        rows = []
        for (_, row), pt in zip(rep.drop(columns=rep.geometry.name).iterrows(), centre,
                                strict=True):
            rec = {k: _plain(v) for k, v in row.items()}
            rec["lon"], rec["lat"] = round(pt.x, 7), round(pt.y, 7)
            rows.append(rec)
        doc = {"risk_formula": RISK_FORMULA,
               "weights": {k: getattr(rules, k) for k in (
                   "risk_weight_engine", "risk_weight_micro", "risk_weight_hydrant",
                   "risk_weight_lanes", "risk_weight_station")},
               "compounds": rows}
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False),
                     encoding="utf-8")
        return p
    if ext == ".csv":
        rep = rep.copy()
        for c in ("measures", "measures_en"):
            rep[c] = rep[c].map(lambda v: "；".join(v) if isinstance(v, list) else v)
    _write(rep, p, "compound_report")
    return p


def _plain(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return v


# -- commands ------------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    """Add the ``coverage`` and ``compounds`` commands."""
    p = sub.add_parser(
        "coverage", help="fire-lane qualification, station reach and hydrant gaps",
        description="Qualify fire lanes (GB 50016 7.1.8/7.1.9, GB 55037 3.4.5), compute the "
        "5-minute engine and 3-minute micro-station coverage of every building in one "
        "multi-source pass, and check hydrants (GB 50974 7.2.5). Writes the findings to "
        "--out and the building coverage and service areas next to it.")
    p.add_argument("--store", required=True, help="store path (*.gpkg) or postgresql:// URL")
    p.add_argument("--rules", type=Path, help="district rule file overriding layers/rule_tables/fire.toml")
    p.add_argument("--out", required=True, type=Path, help="findings file: " + ", ".join(_OUT))
    p.set_defaults(func=_cmd_coverage)
    q = sub.add_parser(
        "compounds", help="一区一策 report per old residential compound, ranked by risk",
        description="One report per compound: buildings and households, engine (5 min) and "
        "micro-station (3 min) coverage, unqualified lanes by reason, hydrant gaps, the first "
        "station and its time, a risk rank with its formula and concrete measures. "
        + RISK_FORMULA)
    q.add_argument("--store", required=True, help="store path (*.gpkg) or postgresql:// URL")
    q.add_argument("--rules", type=Path, help="district rule file overriding layers/rule_tables/fire.toml")
    q.add_argument("--out", required=True, type=Path, help="report file: " + ", ".join(_OUT))
    q.set_defaults(func=_cmd_compounds)


def _cmd_coverage(args: argparse.Namespace) -> int:
    _check_out(args.out)
    rules = load_fire_rules(args.rules)
    store = open_existing(args.store)
    run = run_fire(store, rules=rules, with_compounds=False)
    note_absent(store, {"fire_lanes": "fire-lane qualification (width, clear height, "
                                      "obstruction)",
                        "hydrants": "hydrant gaps and faulty hydrants"})
    out: Path = args.out
    if out.suffix.lower() == ".gpkg":
        out.unlink(missing_ok=True)
        _write(run.findings, out, "fire_findings")
        _write(run.buildings, out, "building_coverage")
        if run.service_areas is not None:
            _write(run.service_areas, out, "service_areas")
        written = [str(out)]
    else:
        _write(run.findings, out, "fire_findings")
        b = _sibling(out, "buildings")
        _write(run.buildings, b, "building_coverage")
        written = [str(out), str(b)]
        if run.service_areas is not None:
            s = _sibling(out, "service_areas")
            _write(run.service_areas, s, "service_areas")
            written.append(str(s))
    cov = run.buildings
    n = len(cov)
    e = int(cov["engine_covered"].sum())
    m = int(cov["micro_covered"].sum())
    h = int(cov["hydrant_covered"].sum())
    counts = run.findings["kind"].value_counts().sort_index()
    print(f"buildings: {n}; engine within {run.rules.station_reach_s / 60:g} min: {e} "
          f"({100 * e / max(n, 1):.1f} %); micro station within "
          f"{run.rules.micro_reach_s / 60:g} min: {m} ({100 * m / max(n, 1):.1f} %); "
          f"ok hydrant within {run.rules.hydrant_radius_m:g} m "
          f"({run.buildings['hydrant_method'].iloc[0] if n else run.rules.hydrant_distance}): "
          f"{h} ({100 * h / max(n, 1):.1f} %)")
    for kind, k in counts.items():
        print(f"  {kind}: {k}")
    print("wrote " + ", ".join(written))
    return 0


def _cmd_compounds(args: argparse.Namespace) -> int:
    _check_out(args.out)
    rules = load_fire_rules(args.rules)
    store = open_existing(args.store)
    missing = [n for n in ("compounds", "roads", "buildings", "fire_stations")
               if not store.has_layer(n)]
    if missing:
        raise missing_layer(store.url, missing, "the compound report")
    run = run_fire(store, rules=rules, with_compounds=True, with_service_areas=False)
    report = run.compounds
    if report is None or len(report) == 0:
        print(f"riskmap: error: store {store.url}: layer 'compounds' is empty", file=sys.stderr)
        return 2
    write_compounds(report, args.out, rules=rules)
    top = report.head(5)
    print(f"{len(report)} compounds ranked; highest risk:")
    for _, row in top.iterrows():
        print(f"  {int(row['rank'])}. {row['compound_id']} score {row['risk_score']:.1f}: "
              f"{row['buildings']} buildings, engine {100 * row['engine_share']:.0f} %, "
              f"micro {100 * row['micro_share']:.0f} %, "
              f"{row['unqualified_lanes_m']:.0f} m unqualified lanes")
    print(f"wrote {args.out}")
    return 0
