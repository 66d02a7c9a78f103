"""Demo construction sites, pipeline facilities and machine positions with planted cases
(issue 16 part A: Pipeline Protection Law Arts 30, 32, 33, 35).

Local demo metres (the builder shifts them to EPSG:4548). The sites stand along the rural
southern stretch of the crude line P-OIL-01 (x = 4575, y −3000…0: chainage = y + 3000), whose
nearest other long-distance line is > 600 m away; the river-crossing facility sits where
P-OIL-01 crosses the river (y = 1875) and the tunnel on the first leg of P-GAS-01 in the western
margin. Permits are judged on :data:`CHECK_ON` (valid permits run to 2030-12-31, the
not-yet-valid one starts 2030-01-01: the cases hold on any day of 2026-11…2029).

Positions (``<store>_positions.csv`` beside the store): planted machines at design distances
plus background machines > 1200 m from every zone, times in district time on CHECK_ON.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from layers.demo import _layout as L

__all__ = ["CHECK_ON", "build_protection", "positions_path", "write_positions"]

CHECK_ON = dt.date(2026, 12, 7)
_X = 4575.0  # P-OIL-01's southern leg
_VALID = {"permit_from": dt.date(2026, 1, 1), "permit_to": dt.date(2030, 12, 31)}
_RIVER_X = 4575.0 - 500.0 * (1875.0 - 1300.0) / 1300.0  # P-OIL-01 at the river's centre line


def _gas_y(x: float) -> float:
    """y of P-GAS-01's first leg at ``x``."""
    return 900.0 + (x + 3000.0) * 200.0 / 2300.0


def _box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(x0, y0, x1, y1)


# (id, work, geometry, status, permit (None | "valid" | "expired" | "early"), expect, kind,
#  rule, severity, note)
def _sites() -> list[tuple[Any, ...]]:
    return [
        ("CS-01", "excavation", _box(_X + 3, -2700, _X + 23, -2680), "active", "valid",
         "construction_forbidden", "ppl_art30_forbidden", "critical",
         "mechanical excavation 3 m from the crude line (Art 30), permit or not"),
        ("CS-02", "building", _box(_X - 24, -2500, _X - 4, -2480), "active", None,
         "construction_forbidden", "ppl_art30_forbidden", "critical",
         "a shed being built 4 m from the line (Art 30)"),
        ("CS-03", "road", _box(_X + 30, -2300, _X + 50, -2280), "active", None,
         "construction_no_permit", "ppl_art35_2_line", "high",
         "road works 30 m from the line without a permit (Art 35(2))"),
        ("CS-04", "blasting", _box(_X + 150, -2100, _X + 200, -2050), "active", "expired",
         "construction_permit_expired", "ppl_art35_3_line", "high",
         "blasting 150 m from the line on a permit that ended 2026-10-31 (Art 35(3))"),
        ("CS-05", "drilling", _box(_X - 120, -1900, _X - 100, -1880), "active", "early",
         "construction_permit_not_yet_valid", "ppl_art35_3_line", "high",
         "drilling 100 m from the line on a permit valid only from 2030-01-01 (Art 35(3))"),
        ("CS-06", "excavation", _box(_X + 100, -1300, _X + 200, -1200), "active", "valid",
         None, None, None, "excavation 100 m from the line with a valid permit"),
        ("CS-07", "cable", shapely.Point(_X + 60, -1100), "active", None, None, None, None,
         "cable laying 60 m from the line: outside the 50 m band"),
        ("CS-08", "seismic", shapely.Point(_X - 250, -900), "active", None, None, None, None,
         "seismic survey 250 m from the line: outside the 200 m band"),
        ("CS-09", "crossing", _box(_X - 10, -700, _X + 10, -690), "active", "valid",
         None, None, None, "a permitted road crossing"),
        ("CS-10", "crossing", _box(_X - 15, -500, _X + 15, -490), "active", None,
         "construction_no_permit", "ppl_art35_1_crossing", "high",
         "a crossing of the line without a permit (Art 35(1))"),
        ("CS-11", "road", shapely.Point(_X + 80, -1500), "active", None,
         "construction_no_permit", "ppl_art35_2_facility", "high",
         "road works 80 m from valve room F-01 (Art 35(2), 100 m around facilities)"),
        ("CS-12", "dredging", shapely.Point(_RIVER_X - 300, 1875), "active", "valid",
         "construction_forbidden", "ppl_art32_river_crossing", "critical",
         "sand dredging 300 m from the river crossing of P-OIL-01 (Art 32), permit or not"),
        ("CS-13", "mining", shapely.Point(-2400, 1752), "active", None,
         "construction_forbidden", "ppl_art33_tunnel", "critical",
         "quarrying within 1000 m of the pipeline tunnel F-03 (Art 33)"),
        ("CS-14", "excavation", _box(_X + 2, -300, _X + 12, -290), "finished", None,
         None, None, None, "finished works are not checked"),
    ]


def _facilities() -> pd.DataFrame:
    return pd.DataFrame([
        {"id": "F-01", "kind": "valve", "pipeline_id": "P-OIL-01", "name": "鲁宁线枣庄南阀室",
         "geometry": shapely.Point(_X, -1500)},
        {"id": "F-02", "kind": "river_crossing", "pipeline_id": "P-OIL-01",
         "name": "鲁宁线穿越小清河", "geometry": shapely.Point(_RIVER_X, 1875)},
        {"id": "F-03", "kind": "tunnel", "pipeline_id": "P-GAS-01", "name": "冀宁联络线山体隧道",
         "geometry": shapely.LineString([(-2600, _gas_y(-2600)), (-2200, _gas_y(-2200))])},
        {"id": "F-04", "kind": "station", "pipeline_id": "P-OIL-02", "name": "枣庄油库首站",
         "geometry": shapely.Point(5025, 825)},
    ])


# (machine, kind as reported, x, y, time, expect rule / None, severity, note)
def _machines() -> list[tuple[Any, ...]]:
    day = CHECK_ON.isoformat()
    return [
        ("M-01", "挖掘机", _X + 3, -2000, f"{day}T09:00:00", "ppl_art30_forbidden", "critical",
         "an excavator 3 m from the crude line"),
        ("M-02", "excavator", _X + 100, -1600, f"{day}T09:01:00", "ppl_art35_3_line", "high",
         "an excavator 100 m from the line, no site"),
        ("M-03", "excavator", _X + 150, -1250, f"{day}T09:02:00", None, None,
         "an excavator inside CS-06 (valid excavation permit)"),
        ("M-04", "爆破", _X + 175, -2075, f"{day}T09:03:00", "ppl_art35_3_line", "high",
         "blasting inside CS-04, whose permit has expired"),
        ("M-05", "挖泥船", _RIVER_X - 200, 1875, f"{day}T09:04:00", "ppl_art32_river_crossing",
         "critical", "a dredger 200 m from the river crossing"),
        ("M-06", "excavator", _X + 300, -2200, f"{day}T09:05:00", None, None,
         "an excavator 300 m from the line"),
        ("M-07", "钻机", _X - 110, -1890, f"{day}T09:06:00", "ppl_art35_3_line", "high",
         "a drill rig inside CS-05, whose permit is not valid yet"),
        ("M-08", "excavation", _X + 150, -1250, "2031-01-05T10:00:00", "ppl_art35_3_line", "high",
         "inside CS-06 after its permit ended (2030-12-31)"),
    ]


def _permit(kind: str | None, n: int) -> dict[str, Any]:
    if kind is None:
        return {"permit_no": None, "permit_from": None, "permit_to": None}
    base = {"permit_no": f"枣管保许〔2026〕{n:02d}号", **_VALID}
    if kind == "expired":
        base.update(permit_from=dt.date(2026, 6, 1), permit_to=dt.date(2026, 10, 31))
    elif kind == "early":
        base.update(permit_from=dt.date(2030, 1, 1), permit_to=dt.date(2030, 12, 31))
    return base


def build_protection(pipes: pd.DataFrame, grid: L.Grid, *, seed: int
                     ) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]],
                                list[dict[str, Any]]]:
    """(construction sites, pipeline facilities, manifest cases, position rows) in local
    metres; position rows carry x, y (local) and are written by :func:`write_positions`.
    Background machines come from their own generator (``seed``): the rest of the demo
    does not change with them."""
    rows, cases = [], []
    line = pipes.set_index("id").geometry
    fac = _facilities()
    fgeom = dict(zip(fac["id"], fac["geometry"], strict=True))
    for n, (sid, work, geom, status, permit, kind, rule, sev, note) in enumerate(_sites(), 1):
        rows.append({"id": sid, "work": work, **_permit(permit, n),
                     "contractor": "枣庄市政建设有限公司", "status": status,
                     "name": note.split(" (")[0], "geometry": geom})
        case: dict[str, Any] = {"case": kind or "construction_ok", "layer": "construction_sites",
                                "id": sid, "expect": "finding" if kind else "none",
                                "check_on": CHECK_ON.isoformat(), "note": note}
        if kind:
            ref = {"ppl_art35_2_facility": "F-01", "ppl_art32_river_crossing": "F-02",
                   "ppl_art33_tunnel": "F-03"}.get(str(rule))
            target = fgeom[ref] if ref else line["P-OIL-01"]
            case.update(rule=rule, severity=sev, other_id=ref or "P-OIL-01",
                        distance_m=round(float(shapely.distance(geom, target)), 3))
        cases.append(case)
    sites = pd.DataFrame(rows)
    positions = []
    for mid, kind, x, y, t, rule, sev, note in _machines():
        positions.append({"machine_id": mid, "kind": kind, "time": t, "x": x, "y": y})
        c: dict[str, Any] = {"case": "machine_alert" if rule else "machine_ok",
                             "layer": "positions", "id": mid,
                             "expect": "alert" if rule else "none", "note": note}
        if rule:
            c.update(rule=rule, severity=sev)
        cases.append(c)
    positions.append({"machine_id": "M-09", "kind": "excavator", "time": "2026-12-07T09:07:00",
                      "x": _X + 10, "y": None})
    cases.append({"case": "machine_bad_row", "layer": "positions", "id": "M-09",
                  "expect": "rejected", "field": "lat", "note": "a position without latitude"})
    positions += _background(pipes, fac, grid, np.random.default_rng(seed + 16))
    return sites, fac, cases, positions


def _background(pipes: pd.DataFrame, fac: pd.DataFrame, grid: L.Grid,
                rng: np.random.Generator, n: int = 500) -> list[dict[str, Any]]:
    """Machines > 1200 m from every long-distance line and facility (no alert expected)."""
    x0, y0, x1, y1 = grid.extent
    x = rng.uniform(x0, x1, 6 * n)
    y = rng.uniform(y0, y1, 6 * n)
    pts = shapely.points(x, y)
    far = np.ones(len(pts), dtype=bool)
    refs = [*pipes.loc[pipes["kind"] == "long_distance", "geometry"], *fac["geometry"]]
    for g in refs:
        far &= shapely.distance(pts, g) > 1200.0
    idx = np.flatnonzero(far)[:n]
    kinds = np.array(["excavator", "挖掘机", "drilling", "road", "blasting", "钻机", "dredger"])
    k = rng.integers(0, len(kinds), len(idx))
    minute = rng.integers(0, 480, len(idx))
    return [{"machine_id": f"M-{100 + i}", "kind": str(kinds[k[i]]),
             "time": f"{CHECK_ON.isoformat()}T{8 + int(minute[i]) // 60:02d}:"
                     f"{int(minute[i]) % 60:02d}:00",
             "x": float(x[j]), "y": float(y[j])} for i, j in enumerate(idx)]


def positions_path(out: str | os.PathLike[str]) -> Path:
    """``data/demo.gpkg`` → ``data/demo_positions.csv``."""
    p = Path(out)
    stem = p.name[: -len(".gpkg")] if p.name.lower().endswith(".gpkg") else p.name
    return p.with_name(stem + "_positions.csv")


def write_positions(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> Path:
    """Write position rows (local x, y) as CSV machine_id,kind,time,lon,lat,crs (EPSG:4490)."""
    to_ll = Transformer.from_crs(4548, 4490, always_xy=True)
    p = Path(path)
    with open(p, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["machine_id", "kind", "time", "lon", "lat", "crs"])
        for r in rows:
            lon, lat = to_ll.transform(r["x"] + L.E0, (r["y"] or 0.0) + L.N0)
            w.writerow([r["machine_id"], r["kind"], r["time"], f"{lon:.8f}",
                        "" if r["y"] is None else f"{lat:.8f}", "EPSG:4490"])
    return p
