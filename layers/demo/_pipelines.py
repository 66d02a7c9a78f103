"""Pipelines, the buildings planted around them, registered HCAs and pipeline cameras."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from shapely.ops import substring

from layers.demo import _layout as L
from layers.demo._geom import side_rect

__all__ = ["Planted", "build_cameras", "build_hca", "build_pipelines", "plant_buildings"]

PIR_M = 200.0  # GB 32167-2015 table 2 row e: identified sites within 200 m each side


def _extend(pts: list[tuple[float, float]], grid: L.Grid) -> list[tuple[float, float]]:
    """Extend the last leg of a route to the district boundary (grows with --scale)."""
    (ax, ay), (bx, by) = pts[-2], pts[-1]
    ux, uy = bx - ax, by - ay
    x0, y0, x1, y1 = grid.extent
    ts = []
    if ux > 0:
        ts.append((x1 - bx) / ux)
    if ux < 0:
        ts.append((x0 - bx) / ux)
    if uy > 0:
        ts.append((y1 - by) / uy)
    if uy < 0:
        ts.append((y0 - by) / uy)
    t = min(ts)
    return [*pts, (bx + ux * t, by + uy * t)]


# (id, class, pressure_mpa, diameter_mm, wall_mm, grid line j, x from, x to (grid line),
#  violation clear, ok clear, required, rule)
URBAN_MAINS = [
    ("P-GAS-U01", "low", 0.0035, 110.0, 6.6, 2, 300.0, 1200.0, 0.6, 1.2, 0.7,
     "gb50028_low_foundation"),
    ("P-GAS-U02", "medium_b", 0.15, 160.0, 8.0, 5, 300.0, 1200.0, 0.75, 1.5, 1.0,
     "gb50028_medium_b_foundation"),
    ("P-GAS-U03", "medium_a", 0.35, 219.1, 6.0, 9, 300.0, 1200.0, 1.0, 2.0, 1.5,
     "gb50028_medium_a_foundation"),
    ("P-GAS-U04", "sub_high_b", 0.7, 273.0, 7.1, 2, 2700.0, 3600.0, 4.5, 5.5, 5.0,
     "gb50028_sub_high_b_wall"),
    ("P-GAS-U05", "sub_high_a", 1.5, 323.9, 7.1, 6, 2700.0, 3600.0, 13.0, 14.0, 13.5,
     "gb50028_sub_high_a_wall"),
    ("P-GAS-U06", "sub_high_a", 1.5, 406.4, 10.0, 10, 2700.0, 3600.0, 6.0, 7.0, 6.5,
     "gb50028_sub_high_a_wall_9_5mm"),
]  # fmt: skip

GAS_01 = [(-3000.0, 900.0), (-700.0, 1100.0), (1275.0, 2400.0), (1275.0, 4500.0),
          (3400.0, 6000.0)]  # fmt: skip
OIL_01 = [(4575.0, -3000.0), (4575.0, 1300.0), (4075.0, 2600.0), (4375.0, 4000.0),
          (4075.0, 6000.0)]  # fmt: skip
OIL_02 = [[(5025.0, 825.0), (5025.0, 250.0), (5250.0, 25.0)],
          [(5270.0, 10.0), (5600.0, -250.0), (6300.0, -250.0)]]  # fmt: skip


def _urban_main_coords(spec: tuple, grid: L.Grid) -> list[tuple[float, float]]:
    j, xa, xb = spec[5], spec[6], spec[7]
    ym = j * grid.b + float(L.half_width(j)) + 2.5
    kb = round(xb / grid.b)
    xv = xb + float(L.half_width(kb)) + 2.5
    return [(xa, ym), (xv, ym), (xv, ym + 200.0)]


def build_pipelines(grid: L.Grid) -> pd.DataFrame:
    """Long-distance lines (crude, gas, a two-part product line) and six urban gas mains."""
    rows = []
    insp = dt.date(2025, 4, 12)

    def add(pid, name, geom, medium, kind, p, d, wall, lc, operator, year, depth, last):
        rows.append({
            "id": pid, "name": name, "medium": medium, "kind": kind, "pressure_mpa": p,
            "diameter_mm": d, "wall_mm": wall, "location_class": lc, "operator": operator,
            "status": "in_service", "laid_year": year, "depth_m": depth,
            "last_inspection": last, "next_inspection_due": last.replace(year=last.year + 1),
            "geometry": geom,
        })  # fmt: skip

    add("P-OIL-01", "鲁宁输油管道枣庄段", shapely.LineString(_extend(OIL_01, grid)),
        "crude_oil", "long_distance", 6.3, 720.0, 8.7, 3, "国家管网集团东部原油储运公司",
        1978, 1.5, insp)
    add("P-GAS-01", "中缅—冀宁联络线枣庄段", shapely.LineString(_extend(GAS_01, grid)),
        "natural_gas", "long_distance", 6.3, 610.0, 10.3, 3, "国家管网集团山东省分公司",
        2009, 1.6, dt.date(2025, 9, 3))
    add("P-OIL-02", "枣庄油库成品油支线", shapely.MultiLineString(OIL_02), "refined_oil",
        "long_distance", 6.4, 323.9, 7.9, 3, "中石化山东枣庄石油分公司", 2012, 1.4,
        dt.date(2024, 11, 20))
    for spec in URBAN_MAINS:
        pid, _cls, p, d, wall = spec[:5]
        add(pid, f"高新区燃气管网{pid[-3:]}", shapely.LineString(_urban_main_coords(spec, grid)),
            "natural_gas", "urban_gas", p, d, wall, None, "枣庄中燃城市燃气发展有限公司",
            2006 + int(pid[-1]), 1.0 if p < 0.4 else 1.3, dt.date(2025, 6, 1))
    df = pd.DataFrame(rows)
    df["location_class"] = pd.array(df["location_class"], dtype="Int64")
    return df


@dataclass
class Planted:
    """A planted building and its manifest case."""

    geometry: shapely.Polygon
    use: str
    floors: int
    case: dict
    name: str | None = None


def _seg(line: list[tuple[float, float]], k: int):
    """Segment k of a route and the chainage at its start."""
    start = sum(math.dist(line[n], line[n + 1]) for n in range(k))
    return line[k], line[k + 1], start


def plant_buildings(pipes: pd.DataFrame, grid: L.Grid) -> list[Planted]:
    """Buildings at designed distances from the pipelines (exact in EPSG:4548)."""
    out: list[Planted] = []
    n = [0]

    def plant(pid, pts, k, s, along, near, depth, side, use, floors, case, *, straddle=False,
              name=None, **extra):
        p0, p1, s0 = _seg(pts, k)
        o1, o2 = (-depth / 2 + 2.0, depth / 2 + 2.0) if straddle else (near, near + depth)
        if side < 0 and not straddle:
            o1, o2 = -o1, -o2
        geom = side_rect(p0, p1, s, along, o1, o2)
        n[0] += 1
        bid = f"B-P{n[0]:02d}"
        c = {"case": case, "layer": "buildings", "id": bid, "pipeline_id": pid,
             "chainage_m": round(s0 + s, 3), "use": use, **extra}
        out.append(Planted(geom, use, floors, c, name))
        return bid

    od = pipes.set_index("id")["diameter_mm"].to_dict()
    oil, gas = OIL_01, GAS_01
    r_oil = od["P-OIL-01"] / 2000.0
    # crude line, first leg (due north along x = 4575), buildings on the east side
    plant("P-OIL-01", oil, 0, 3225.0, 12.0, 0.0, 12.0, -1, "shed", 1, "occupancy",
          straddle=True, expect="finding", distance_m=0.0,
          note="shed straddling the crude line (Pipeline Protection Law Art. 30)")
    for s, d, exp in ((3375.0, 4.5, "finding"), (3525.0, 5.5, "none")):
        plant("P-OIL-01", oil, 0, s, 10.0, d, 8.0, -1, "shed", 1, "occupancy", expect=exp,
              distance_m=d, note=f"shed {d} m from the crude line centre (corridor 5.0 m)")
    for s, use, floors, req, clear, exp, rule, along, depth in (
        (3675.0, "residential", 6, 15.0, 14.5, "finding", "gb50253_oil_crowded_buildings", 30, 12),
        (3825.0, "residential", 6, 15.0, 15.5, "none", "gb50253_oil_crowded_buildings", 30, 12),
        (3975.0, "industrial", 2, 20.0, 19.5, "finding", "gb50253_oil_factories", 40, 25),
        (4125.0, "industrial", 2, 20.0, 20.5, "none", "gb50253_oil_factories", 40, 25),
    ):
        plant("P-OIL-01", oil, 0, s, along, clear + r_oil, depth, -1, use, floors, "setback",
              expect=exp, required_m=req, clear_distance_m=clear,
              distance_m=clear + r_oil, rule=rule)
    # gas line, third leg (due north along x = 1275), east side
    plant("P-GAS-01", gas, 2, 75.0, 12.0, 0.0, 12.0, -1, "shed", 1, "occupancy", straddle=True,
          expect="finding", distance_m=0.0, note="shed straddling the gas line")
    plant("P-GAS-01", gas, 2, 225.0, 10.0, 4.5, 8.0, -1, "shed", 1, "occupancy",
          expect="finding", distance_m=4.5, note="shed 4.5 m from the gas line centre")
    plant("P-GAS-01", gas, 2, 375.0, 30.0, 5.5, 12.0, -1, "residential", 6, "occupancy",
          expect="none", distance_m=5.5,
          note="house 5.5 m from the gas line: outside the corridor; GB 50251 has no "
               "building setback")
    # product line: shed over the second part (chainage runs on across the parts)
    p2 = OIL_02[1]
    len1 = shapely.LineString(OIL_02[0]).length + math.dist(p2[0], p2[1])
    p0, p1 = p2[1], p2[2]
    geom = side_rect(p0, p1, 400.0, 12.0, -4.0, 8.0)
    n[0] += 1
    out.append(Planted(geom, "shed", 1, {
        "case": "occupancy", "layer": "buildings", "id": f"B-P{n[0]:02d}",
        "pipeline_id": "P-OIL-02",
        "chainage_m": round(len1 + 400.0, 3), "use": "shed", "expect": "finding",
        "distance_m": 0.0, "note": "shed over part 2 of the two-part product line"}))
    # urban gas mains: occupancy (crossing), violation and no-finding setbacks
    for spec in URBAN_MAINS:
        pid, pcls, _p, d, wall, *_rest, clear_v, clear_ok, req, rule = spec
        pts = _urban_main_coords(spec, grid)
        r = d / 2000.0
        plant(pid, pts, 0, 75.0, 16.0, 0.0, 12.0, 1, "shed", 1, "occupancy", straddle=True,
              expect="finding", distance_m=0.0,
              note=f"shed crossing the {pcls} urban gas main")
        for s, clear, exp in ((375.0, clear_v, "finding"), (675.0, clear_ok, "none")):
            plant(pid, pts, 0, s, 24.0, clear + r, 12.0, 1, "residential", 5, "setback",
                  expect=exp, required_m=req, clear_distance_m=clear,
                  distance_m=clear + r, rule=rule, pressure_class=pcls,
                  wall_mm=wall, shortfall_m=round(req - clear, 3) if exp == "finding" else None)
    return out


def unregistered_school() -> tuple[shapely.Polygon, shapely.Polygon, dict]:
    """Village school 120 m south of the gas line's rural first leg; no HCA record covers it.

    Returns (school building, campus polygon, case). Both polygons share the nearest edge, so
    the stretch within 200 m is the same for either.
    """
    p0, p1 = GAS_01[0], GAS_01[1]
    s, along, near = 1100.0, 60.0, 120.0
    bldg = side_rect(p0, p1, s, along, -near, -(near + 25.0))
    campus = side_rect(p0, p1, s, along, -near, -(near + 90.0))
    half = math.sqrt(PIR_M**2 - near**2)
    case = {
        "case": "unregistered_hca", "layer": "pipelines", "id": "P-GAS-01", "expect": "finding",
        "chainage_from_m": round(s - along / 2 - half, 3),
        "chainage_to_m": round(s + along / 2 + half, 3), "grade": "I", "distance_m": near,
        "note": "school within 200 m of the gas line (GB 32167 table 2 row e), "
                "not in the hca layer",
    }  # fmt: skip
    return bldg, campus, case


def build_hca(pipes: pd.DataFrame, grid: L.Grid, gap: tuple[float, float]) -> pd.DataFrame:
    """Registered HCAs: every long-distance line in chunks of <= 2.5 km, except the planted
    gap on P-GAS-01."""
    bbox = shapely.box(0, 0, grid.width, grid.height)
    rows = []
    for _, p in pipes[pipes["kind"] == "long_distance"].iterrows():
        geom = p["geometry"]
        length = geom.length
        if geom.geom_type == "MultiLineString":
            pieces = [(0.0, length, geom)]
        else:
            spans = [(0.0, length)]
            if p["id"] == "P-GAS-01":
                spans = [(0.0, gap[0]), (gap[1], length)]
            pieces = []
            for a, b in spans:
                k = max(1, math.ceil((b - a) / 2500.0))
                edges = np.linspace(a, b, k + 1)
                for e0, e1 in itertools.pairwise(edges):
                    pieces.append((float(e0), float(e1), substring(geom, e0, e1)))
        for a, b, g in pieces:
            urban = g.intersects(bbox)
            grade = ("III" if p["medium"] != "natural_gas" else "II") if urban else "I"
            rows.append({
                "pipeline_id": p["id"], "grade": grade, "start_m": round(a, 3),
                "end_m": round(b, 3), "people_dense": bool(urban), "video_monitored": bool(urban),
                "geometry": g,
            })  # fmt: skip
    df = pd.DataFrame(rows)
    df.insert(0, "id", [f"HCA-{n:03d}" for n in range(1, len(df) + 1)])
    return df


def build_cameras(hca: pd.DataFrame) -> pd.DataFrame:
    """Cameras every 150 m, 15 m off the line, along every video-monitored HCA."""
    xs, ys, hids = [], [], []
    for _, h in hca[hca["video_monitored"]].iterrows():
        g = h["geometry"]
        s = np.arange(75.0, g.length, 150.0)
        if len(s) == 0:
            continue
        a = shapely.line_interpolate_point(g, s)
        b = shapely.line_interpolate_point(g, np.minimum(s + 1.0, g.length))
        ax, ay = shapely.get_x(a), shapely.get_y(a)
        dx, dy = shapely.get_x(b) - ax, shapely.get_y(b) - ay
        norm = np.hypot(dx, dy)
        norm[norm == 0] = 1.0
        side = np.where(np.arange(len(s)) % 2 == 0, 1.0, -1.0) * 15.0
        xs.append(ax - dy / norm * side)
        ys.append(ay + dx / norm * side)
        hids += [h["id"]] * len(s)
    x, y = np.concatenate(xs), np.concatenate(ys)
    return pd.DataFrame({
        "id": [f"CAM-{n:04d}" for n in range(1, len(x) + 1)], "range_m": 100.0,
        "hca_id": hids, "x": x, "y": y,
    })  # fmt: skip
