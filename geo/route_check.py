"""Designated hazmat route check: every stretch of a ``hazmat_routes`` line that breaks a rule.

Finding kinds (common findings schema, chainage along the route from its first vertex):

* ``route_in_forbidden_zone`` / ``route_in_permit_zone`` — inside a forbidden / permit zone
  while both the zone and the route are in force (their daily hours overlap; empty = always);
* ``route_over_bridge_tunnel_zone`` — inside a zone of kind ``bridge`` or ``tunnel``
  (办法 Art 49(3)), whatever its rule, during its hours;
* ``route_on_hazmat_no_road`` — running *along* a road signed ``hazmat = no`` (within
  ``road_match_m`` of it and advancing along it; a crossing is not a finding);
* ``route_off_network`` — farther than ``off_network_m`` from every road.

Stretches shorter than ``min_stretch_m`` are not reported.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import require_projected
from geo.findings import FINDING_COLUMNS, empty_findings, format_station, make_findings
from geo.hazmat_params import RouteCheckParams
from geo.linref import chainage_range, line_reference
from geo.zones import hours_overlap, parse_hours

__all__ = ["CHECK_KINDS", "RouteCheckParams", "check_routes", "stretches"]

CHECK_KINDS = {
    "forbidden_zone": "route_in_forbidden_zone",
    "permit_zone": "route_in_permit_zone",
    "bridge_tunnel_zone": "route_over_bridge_tunnel_zone",
    "hazmat_no_road": "route_on_hazmat_no_road",
    "off_network": "route_off_network",
}
_BRIDGE_TUNNEL = ("bridge", "tunnel")
_RULE_ZH = {"forbidden": "禁行区域", "permit": "限行（凭证通行）区域", "avoid": "绕行区域"}


def stretches(line: shapely.Geometry, area: shapely.Geometry, *,
              min_length_m: float = 0.0) -> list[shapely.LineString]:
    """The connected stretches of ``line`` inside ``area`` (closed), longest-first order
    not guaranteed; points (touches) and stretches shorter than ``min_length_m`` dropped."""
    inter = shapely.intersection(line, area)
    return _line_parts(inter, min_length_m)


def _line_parts(geom: shapely.Geometry, min_length_m: float) -> list[shapely.LineString]:
    if geom is None or geom.is_empty:
        return []
    parts = shapely.get_parts(geom)
    lines = [p for p in parts if p.geom_type == "LineString" and p.length > 0]
    if not lines:
        return []
    merged = shapely.line_merge(shapely.MultiLineString(lines)) if len(lines) > 1 else lines[0]
    out = [p for p in shapely.get_parts(merged) if p.length > 0]
    return [p for p in out if p.length >= min_length_m]


def check_routes(
    routes: gpd.GeoDataFrame,
    *,
    zones: gpd.GeoDataFrame | None,
    roads: gpd.GeoDataFrame | None,
    params: RouteCheckParams,
) -> gpd.GeoDataFrame:
    """Findings for every designated route (projected, metres; all inputs one CRS).

    Returns the common findings frame plus ``route_name``, ``route_status``, ``route_hours``,
    ``zone_name``, ``zone_rule``, ``zone_hours``, ``length_m``.
    """
    require_projected(routes, "hazmat_routes")
    crs = routes.crs
    for name, gdf in (("restricted_zones", zones), ("roads", roads)):
        if gdf is not None:
            require_projected(gdf, name)
            if not gdf.crs.equals(crs):
                raise ValueError(f"{name} are in {gdf.crs.to_string()} but hazmat_routes in "
                                 f"{crs.to_string()}; project both to one CRS")
    routes = routes.reset_index(drop=True)
    rows: list[dict[str, object]] = []
    geoms: list[shapely.Geometry] = []
    refs = {}
    rgeom = routes.geometry.values
    valid = ~(shapely.is_missing(rgeom) | shapely.is_empty(rgeom))
    for i in np.flatnonzero(valid):
        refs[int(i)] = line_reference(rgeom[i])

    def add(i: int, check: str, parts: list[shapely.LineString], extra: dict[str, object],
            words: tuple[str, str]) -> None:
        if not parts:
            return
        lo, hi = chainage_range(refs[i], np.asarray(parts, dtype=object))
        r = routes.iloc[i]
        for part, a, b in zip(parts, lo, hi, strict=True):
            st_a, st_b = format_station(a), format_station(b)
            en, zh = words
            rows.append({
                "check": check, "severity": params.severity[check],
                "layer": "hazmat_routes", "feature_id": r.get("id"),
                "rule_id": f"hazmat/{check}", "rule_source": params.source[check],
                "chainage_from_m": round(float(a), 3), "chainage_to_m": round(float(b), 3),
                "station": st_a, "length_m": round(float(part.length), 3),
                "route_name": r.get("name"), "route_status": r.get("status"),
                "route_hours": parse_hours(r.get("hours", "")).describe(),
                "message_en": f"route {r.get('id')} runs {part.length:.1f} m {en} from {st_a} "
                              f"to {st_b} (rule: {params.source[check]})",
                "message_zh": f"通行路线 {r.get('id')} 在 {st_a}–{st_b} 段（{part.length:.1f} m）{zh}"
                              f"（依据：{params.source[check]}）",
                **extra,
            })
            geoms.append(part)

    # zones -----------------------------------------------------------------------------
    if zones is not None and len(zones):
        z = zones.reset_index(drop=True)
        zg = z.geometry.values
        ri, zi = shapely.STRtree(zg).query(rgeom, predicate="intersects")
        for i, k in zip(ri, zi, strict=True):
            if not valid[i]:
                continue
            zr = z.iloc[int(k)]
            rule, kind = zr.get("rule"), zr.get("kind")
            if not hours_overlap(routes.iloc[int(i)].get("hours", ""), zr.get("hours", "")):
                continue
            checks = []
            if rule == "forbidden":
                checks.append("forbidden_zone")
            elif rule == "permit":
                checks.append("permit_zone")
            if kind in _BRIDGE_TUNNEL:
                checks.append("bridge_tunnel_zone")
            if not checks:
                continue
            parts = stretches(rgeom[i], zg[k], min_length_m=params.min_stretch_m)
            hours = parse_hours(zr.get("hours", "")).describe()
            name = zr.get("name")
            named = f" ({name})" if isinstance(name, str) and name else ""
            named_zh = f"（{name}，{hours}）" if isinstance(name, str) and name else f"（{hours}）"
            extra = {"other_layer": "restricted_zones", "other_id": zr.get("id"),
                     "zone_name": name, "zone_rule": rule, "zone_hours": hours}
            for check in checks:
                if check == "bridge_tunnel_zone":
                    words = (f"inside {kind} zone {zr.get('id')}{named} {hours}",
                             f"位于{'桥梁' if kind == 'bridge' else '隧道'}限行区域 "
                             f"{zr.get('id')}{named_zh}内")
                else:
                    words = (f"inside {rule} zone {zr.get('id')}{named} {hours}",
                             f"位于{_RULE_ZH.get(rule, rule)} {zr.get('id')}{named_zh}内")
                add(int(i), check, parts, extra, words)

    # roads -----------------------------------------------------------------------------
    if roads is not None and len(roads):
        rd = roads.reset_index(drop=True)
        rdg = rd.geometry.values
        hz = rd["hazmat"].astype(str).str.lower().to_numpy() if "hazmat" in rd.columns else \
            np.full(len(rd), "yes")
        no = np.flatnonzero(hz == "no")
        if len(no):
            tol = params.road_match_m
            ri, ki = shapely.STRtree(rdg[no]).query(rgeom, predicate="dwithin", distance=tol)
            for i, k in zip(ri, ki, strict=True):
                if not valid[i]:
                    continue
                road = rdg[no[k]]
                band = shapely.buffer(road, tol, cap_style="flat")
                parts = [p for p in stretches(rgeom[i], band,
                                              min_length_m=max(params.min_stretch_m, 2 * tol))
                         if _along(p, road) >= 0.8 * p.length]
                rr = rd.iloc[int(no[k])]
                rname = rr.get("name")
                named = f" ({rname})" if isinstance(rname, str) and rname else ""
                add(int(i), "hazmat_no_road", parts,
                    {"other_layer": "roads", "other_id": rr.get("id")},
                    (f"along road {rr.get('id')}{named} signed hazmat=no",
                     f"沿禁止危险化学品车辆通行的道路 {rr.get('id')}{named} 行驶"))
        off = params.off_network_m
        tree = shapely.STRtree(rdg)
        for i in np.flatnonzero(valid):
            near = tree.query(rgeom[i], predicate="dwithin", distance=off)
            cover = shapely.union_all(shapely.buffer(rdg[near], off)) if len(near) else None
            rest = rgeom[i] if cover is None else shapely.difference(rgeom[i], cover)
            parts = _line_parts(rest, params.min_stretch_m)
            add(int(i), "off_network", parts, {},
                (f"farther than {off:g} m from every road (off the road network)",
                 f"距任何道路超过 {off:g} m（不在路网上）"))

    if not rows:
        out = empty_findings(crs)
        for c in ("route_name", "route_status", "route_hours", "zone_name", "zone_rule",
                  "zone_hours", "length_m"):
            out[c] = pd.Series(dtype="object")
        return out
    frame = pd.DataFrame(rows)
    frame["_from"] = frame["chainage_from_m"].map(lambda v: f"{v:.1f}")
    frame["other_id"] = frame.get("other_id", pd.Series([None] * len(frame))).fillna("-")
    parts_out = []
    for check, kind in CHECK_KINDS.items():
        sel = (frame["check"] == check).to_numpy()
        if not sel.any():
            continue
        sub = frame[sel].drop(columns="check")
        parts_out.append(make_findings(sub, kind=kind, geometry=np.asarray(geoms, object)[sel],
                                       crs=crs, id_columns=["feature_id", "other_id", "_from"]))
    out = pd.concat(parts_out, ignore_index=True).drop(columns="_from")
    out["other_id"] = pd.Series([None if v == "-" else v for v in out["other_id"]],
                                index=out.index, dtype=object)
    out = out.sort_values(["feature_id", "chainage_from_m", "kind"], kind="stable")
    cols = [*FINDING_COLUMNS, *[c for c in out.columns if c not in FINDING_COLUMNS]]
    return gpd.GeoDataFrame(out[cols].reset_index(drop=True), geometry="geometry", crs=crs)


def _along(part: shapely.LineString, road: shapely.Geometry) -> float:
    """How far ``part`` advances along ``road`` (distance between its ends projected)."""
    a = shapely.line_locate_point(road, shapely.get_point(part, 0))
    b = shapely.line_locate_point(road, shapely.get_point(part, -1))
    return float(abs(b - a))
