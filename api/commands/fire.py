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

The analysis runs in :class:`api.service.AnalysisService` (``api.runs.fire``); this module
only parses the arguments, writes and prints (``run_fire`` / ``FireRun`` are still importable
from here for older callers).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.commands import add_district, note_absent, service, stamp

if TYPE_CHECKING:
    import geopandas as gpd

    from layers.fire_rules import FireRules

__all__ = ["register", "write_compounds"]

_OUT = (".geojson", ".json", ".gpkg", ".csv")


def __getattr__(name: str) -> Any:
    if name in ("FireRun", "run_fire"):  # moved to api.runs.fire; resolved lazily
        from api.runs import fire

        return getattr(fire, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- writing ------------------------------------------------------------------------------------
def _sibling(path: Path, name: str) -> Path:
    return path.with_name(f"{path.stem}.{name}{path.suffix}")


def _finite(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    import numpy as np
    import pandas as pd

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
        from layers.errors import InputFileError

        raise InputFileError(f"--out {path.name!r}: expected one of {', '.join(_OUT)}")


def write_compounds(report: gpd.GeoDataFrame, path: str | Path, *, rules: FireRules) -> Path:
    """Write the compound report (sorted by rank) as .json, .geojson, .csv or .gpkg."""
    from geo.compounds import RISK_FORMULA

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
    import numpy as np

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
    add_district(p)
    p.add_argument("--out", required=True, type=Path, help="findings file: " + ", ".join(_OUT))
    p.set_defaults(func=_cmd_coverage)
    q = sub.add_parser(
        "compounds", help="一区一策 report per old residential compound, ranked by risk",
        description="One report per compound: buildings and households, engine (5 min) and "
        "micro-station (3 min) coverage, unqualified lanes by reason, hydrant gaps, the first "
        "station and its time, a risk rank with its formula (in the .json report) and "
        "concrete measures.")
    q.add_argument("--store", required=True, help="store path (*.gpkg) or postgresql:// URL")
    add_district(q)
    q.add_argument("--out", required=True, type=Path, help="report file: " + ", ".join(_OUT))
    q.set_defaults(func=_cmd_compounds)


def _cmd_coverage(args: argparse.Namespace) -> int:
    _check_out(args.out)
    svc = service(args)
    store = svc.store
    run = svc.fire()
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
    print(stamp(svc))
    return 0


def _cmd_compounds(args: argparse.Namespace) -> int:
    from layers.errors import missing_layer

    _check_out(args.out)
    svc = service(args)
    store = svc.store
    missing = [n for n in ("compounds", "roads", "buildings", "fire_stations")
               if not store.has_layer(n)]
    if missing:
        raise missing_layer(store.url, missing, "the compound report")
    run = svc.fire()
    rules = run.rules
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
    print(stamp(svc))
    return 0
