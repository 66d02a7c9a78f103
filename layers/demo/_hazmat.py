"""Hazmat restricted zones and the two designated hazmat routes."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import shapely

from layers.demo import _layout as L

__all__ = ["build_routes", "build_zones"]

_POLICE = "枣庄市公安局交通警察支队"
SCHOOL_HOURS = "07:00-09:00;17:00-19:00"


def _block_box(i0: int, i1: int, j0: int, j1: int, b: float, pad: float) -> shapely.Polygon:
    return shapely.box(i0 * b - pad, j0 * b - pad, (i1 + 1) * b + pad, (j1 + 1) * b + pad)


def build_zones(grid: L.Grid, school_blocks: np.ndarray) -> pd.DataFrame:
    """Water-source area (forbidden), city centre (permit), dense area (avoid) and one
    school area per school block (forbidden at school hours)."""
    b = grid.b
    rows = [
        {"id": "Z-01", "name": "岩马水库饮用水水源保护区", "kind": "water_source",
         "rule": "forbidden", "hours": "", "penalty": np.nan, "authority": _POLICE,
         "notice": "枣公交通〔2024〕7号: 危险化学品运输车辆禁止驶入饮用水水源保护区",
         "geometry": shapely.box(*L.WATER_ZONE)},
        {"id": "Z-02", "name": "高新区中心城区", "kind": "city_center", "rule": "permit",
         "hours": "", "penalty": np.nan, "authority": _POLICE,
         "notice": "中心城区危险化学品运输车辆凭通行证通行",
         "geometry": _block_box(*L.CITY_CENTRE, b, 0.0)},
        {"id": "Z-03", "name": "市立医院周边人员密集区", "kind": "dense_population",
         "rule": "avoid", "hours": "", "penalty": 3.0, "authority": _POLICE,
         "notice": "危险化学品运输车辆宜绕行", "geometry": _block_box(*L.AVOID_BLOCKS, b, 30.0)},
    ]  # fmt: skip
    for n, (i, j) in enumerate(school_blocks, start=1):
        rows.append({"id": f"Z-S{n:03d}", "name": "学校周边区域", "kind": "school_area",
                     "rule": "forbidden", "hours": SCHOOL_HOURS, "penalty": np.nan,
                     "authority": _POLICE, "notice": "上下学时段禁止危险化学品运输车辆通行",
                     "geometry": _block_box(int(i), int(i), int(j), int(j), b, 30.0)})
    return pd.DataFrame(rows)


def _path(nodes: list[tuple[float, float]], step: float) -> shapely.LineString:
    """Polyline through ``nodes`` with a vertex at every street node (every ``step`` m)."""
    pts = [nodes[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(nodes):
        n = max(1, round(max(abs(x1 - x0), abs(y1 - y0)) / step))
        for t in range(1, n + 1):
            pts.append((x0 + (x1 - x0) * t / n, y0 + (y1 - y0) * t / n))
    return shapely.LineString(pts)


def build_routes(grid: L.Grid, zones: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """HR-01 (published, clear of every zone) and HR-02 (crosses the water-source zone)."""
    b = grid.b
    hr1 = _path([(6150.0, 450.0), (6000.0, 450.0), (6000.0, 0.0), (6000.0, -500.0),
                 (2400.0, -500.0), (2400.0, -L.MARGIN)], b)  # fmt: skip
    hr2 = _path([(6300.0, 5700.0), (5400.0, 5700.0), (5400.0, 0.0), (4800.0, 0.0),
                 (4800.0, -500.0)], b)  # fmt: skip
    df = pd.DataFrame([
        {"id": "HR-01", "name": "鲁南化工园区—京台高速危化品运输通行路线",
         "hours": "09:00-16:00;20:00-06:00", "status": "published", "authority": _POLICE,
         "geometry": hr1},
        {"id": "HR-02", "name": "北部仓储区—京台高速危化品运输通行路线", "hours": "",
         "status": "published", "authority": _POLICE, "geometry": hr2},
    ])  # fmt: skip
    zone = zones.set_index("id").loc["Z-01", "geometry"]
    inside = hr2.intersection(zone)
    a, c = shapely.get_point(inside, 0), shapely.get_point(inside, -1)
    s = sorted((hr2.project(a), hr2.project(c)))
    zg = shapely.union_all(zones["geometry"].to_numpy())
    clash = hr1.intersection(zg).length
    if clash > 0:  # pragma: no cover - layout invariant
        raise AssertionError(f"HR-01 runs {clash:.1f} m inside restricted zones")
    others = shapely.union_all(zones.loc[zones["id"] != "Z-01", "geometry"].to_numpy())
    if hr2.intersection(others).length > 0:  # pragma: no cover
        raise AssertionError("HR-02 crosses a restricted zone other than Z-01")
    cases = [
        {"case": "route_through_forbidden", "layer": "hazmat_routes", "id": "HR-02",
         "zone_id": "Z-01", "expect": "finding", "chainage_from_m": round(s[0], 3),
         "chainage_to_m": round(s[1], 3), "length_m": round(s[1] - s[0], 3),
         "note": "published route crosses the drinking-water source protection area"},
        {"case": "route_ok", "layer": "hazmat_routes", "id": "HR-01", "expect": "none",
         "note": "avoids every restricted zone; only hazmat=yes/destination roads"},
    ]  # fmt: skip
    return df, cases
