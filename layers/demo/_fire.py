"""Old residential compounds, their internal fire lanes and buildings, fire stations.

Each compound fills one street block. A spine lane runs through it from the south street to
the north street (joining both at shared endpoints, which split the street segments); three
pairs of 30 m branch lanes (short dead ends, < 40 m) reach between the rows of 6-storey
slabs. Planted variants change one lane per compound. A turnaround is drawn as a 12 m × 12 m
square loop of lanes at the end of a long branch, so the branch has no dead tip.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import shapely

from layers.demo import _layout as L
from layers.demo._geom import rects

__all__ = ["build_compounds", "build_stations", "lane_nodes"]

_NAMES = ["矿建", "青檀", "光明", "振兴", "建华", "兴仁", "齐村", "税郭", "龙潭", "文化",
          "煤机", "机电", "化肥厂", "纺织", "电厂", "水泥厂", "供销", "粮所", "邮电", "运输",
          "卫校", "师专", "新兴", "幸福", "和平", "东湖", "西苑", "南苑", "北辰", "锦苑"]  # fmt: skip

# compound index -> (variant, lane key, value)
_VARIANTS: dict[int, tuple[str, str, float]] = {
    0: ("lane_narrow", "S2", 3.2), 7: ("lane_narrow", "S3", 3.5), 14: ("lane_narrow", "S2", 3.8),
    1: ("lane_low", "S3", 3.5), 8: ("lane_low", "S2", 3.8),
    2: ("lane_obstructed", "S2", 1.0), 9: ("lane_obstructed", "S3", 1.0),
    3: ("lane_unmarked", "S1", 0.0), 10: ("lane_unmarked", "S4", 0.0),
    4: ("dead_end_no_turnaround", "E75", 55.0), 11: ("dead_end_no_turnaround", "E75", 48.0),
    5: ("dead_end_with_turnaround", "E75", 44.0), 12: ("dead_end_with_turnaround", "E75", 46.0),
    6: ("dead_end_short", "E75", 30.0),
}  # fmt: skip


def _compound_cells() -> list[tuple[int, int]]:
    return [(i, j) for i in L.COMPOUND_COLS for j in L.COMPOUND_ROWS]


def lane_nodes() -> list[tuple[int, int]]:
    """Horizontal street segments (i, j) split at their midpoint by a lane entrance."""
    cells = _compound_cells()
    return sorted({(i, j) for i, j in cells} | {(i, j + 1) for i, j in cells})


def build_compounds(grid: L.Grid, rng: np.random.Generator):
    """Compounds, fire lanes, compound buildings (frame), micro stations and cases."""
    b = grid.b
    comps: list[dict[str, Any]] = []
    lanes: list[dict[str, Any]] = []
    blds: list[pd.DataFrame] = []
    micro: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    for k, (i, j) in enumerate(_compound_cells()):
        cid = f"C-{k + 1:02d}"
        xc, y0, y1 = i * b + b / 2, j * b, (j + 1) * b
        x0i, y0i, x1i, y1i = grid.interior(np.array([i]), np.array([j]), setback=3.0)
        poly = shapely.box(float(x0i[0]), float(y0i[0]), float(x1i[0]), float(y1i[0]))
        lk: dict[str, list[tuple[float, float]]] = {
            "S1": [(xc, y0), (xc, y0 + 40)], "S2": [(xc, y0 + 40), (xc, y0 + 75)],
            "S3": [(xc, y0 + 75), (xc, y0 + 110)], "S4": [(xc, y0 + 110), (xc, y1)],
        }  # fmt: skip
        for yb in (40, 75, 110):
            lk[f"W{yb}"] = [(xc, y0 + yb), (xc - 30, y0 + yb)]
            lk[f"E{yb}"] = [(xc, y0 + yb), (xc + 30, y0 + yb)]
        variant = _VARIANTS.get(k)
        loop: list[str] = []
        if variant and variant[0].startswith("dead_end") and variant[0] != "dead_end_short":
            length = variant[2]
            lk["E75"] = [(xc, y0 + 75), (xc + length, y0 + 75)]
            if variant[0] == "dead_end_with_turnaround":
                xa, xb, ym = xc + length, xc + length + 12.0, y0 + 75
                lk["T1"] = [(xa, ym), (xa, ym - 6), (xb, ym - 6)]
                lk["T2"] = [(xb, ym - 6), (xb, ym + 6)]
                lk["T3"] = [(xb, ym + 6), (xa, ym + 6), (xa, ym)]
                loop = ["T1", "T2", "T3"]
        ids = {key: f"FL-{k + 1:02d}-{n:02d}" for n, key in enumerate(lk, start=1)}
        for key, pts in lk.items():
            spine = key.startswith("S")
            row: dict[str, Any] = {"id": ids[key], "compound_id": cid, "width_m": 5.0 if spine else 4.5,
                   "clear_height_m": 4.5, "obstructed": False, "marked": True,
                   "geometry": shapely.LineString(pts)}
            if variant and key == variant[1]:
                kind, _, value = variant
                if kind == "lane_narrow":
                    row["width_m"] = value
                elif kind == "lane_low":
                    row["clear_height_m"] = value
                elif kind == "lane_obstructed":
                    row["obstructed"] = True
                elif kind == "lane_unmarked":
                    row["marked"] = False
            lanes.append(row)
        if variant:
            kind, key, value = variant
            case: dict[str, Any] = {"case": kind, "layer": "fire_lanes", "id": ids[key], "compound_id": cid,
                    "expect": "none" if kind in ("dead_end_with_turnaround", "dead_end_short")
                    else "finding"}
            if kind in ("lane_narrow", "lane_low"):
                case["value"] = value
            elif kind.startswith("dead_end"):
                case["value"] = value
                case["length_m"] = value
            if kind == "dead_end_with_turnaround":
                case["turnaround_ids"] = [ids[t] for t in loop]
                case["turnaround_m"] = 12.0
            cases.append(case)
        # 8 six-storey slabs in four rows either side of the spine
        ys = y0 + np.array([22.0, 57.5, 92.5, 128.0])
        cx = np.concatenate([np.full(4, xc - 33.5), np.full(4, xc + 33.5)])
        cy = np.concatenate([ys, ys])
        blds.append(pd.DataFrame({
            "geometry": rects(cx, cy, np.full(8, 49.0), np.full(8, 11.0), np.zeros(8)),
            "use": "residential", "floors": rng.integers(5, 7, 8), "compound_id": cid,
            "name": [f"{_NAMES[k]}小区{n}号楼" for n in range(1, 9)],
        }))  # fmt: skip
        comps.append({"id": cid, "name": f"{_NAMES[k]}小区", "built_year": 1982 + (k * 7) % 18,
                      "property_management": k % 3 != 1,
                      "plan": "一区一策：清理占用消防车道，施划标线，增设微型消防站"
                      if k % 2 == 0 else "一区一策：打通断头路，增设回车场，更换老化消火栓",
                      "geometry": poly})
        if k % 3 == 0:
            micro.append({"id": f"MS-{len(micro) + 1:02d}", "name": f"{_NAMES[k]}小区微型消防站",
                          "kind": "micro_station", "engines": 0, "turnout_s": 30.0,
                          "x": xc - 40.0, "y": y0 + 33.5})
    return (pd.DataFrame(comps), pd.DataFrame(lanes), pd.concat(blds, ignore_index=True),
            pd.DataFrame(micro), cases)


def build_stations(grid: L.Grid) -> pd.DataFrame:
    """The two fire stations (kind station) at block centres."""
    rows = []
    for n, (sid, (i, j)) in enumerate(L.FIRE_STATIONS.items()):
        rows.append({"id": sid, "name": ["高新区消防救援站", "兴城特勤消防站"][n],
                     "kind": "station", "engines": [5, 4][n], "turnout_s": 60.0,
                     "x": (i + 0.5) * grid.b, "y": (j + 0.5) * grid.b})
    return pd.DataFrame(rows)
