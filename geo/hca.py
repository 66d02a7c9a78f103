"""High-consequence areas (高后果区) — GB 32167-2015 6.1: identification, merge, registered-layer
diff and video-monitoring coverage.

Identification (:func:`identify_hca`) evaluates the rule rows of ``layers/rule_tables/hca.toml``
(gas Table 2 rows a–f, oil Table 1 rows a–f) on each long-distance pipeline:

- location-class rows use the ranges of :func:`geo.location_class.location_classes`;
- site rows (identified sites within the potential impact radius or 200 m, flammable sites,
  roads, railways, water sources …) give the stretch of centre line within the radius of each
  site. The stretch is **exact**: each short piece of the line is intersected with the capsule
  (Minkowski sum of every site edge with the radius disk) in closed form, plus the part inside
  a polygon site — no polygonal buffer approximation;
- the oil settlement row clusters buildings (gaps <= ``cluster_gap_m``) within 200 m.

Each fired criterion is an *instance* (pipeline, chainage range, grade, evidence). Along each
pipeline the grade is the highest instance covering a chainage; adjacent stretches of one
grade are merged into HCA segments, each listing every criterion behind it. Segments are
returned as centre-line pieces; :func:`hca_polygons` gives the affected corridor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from geo.crs import require_projected
from geo.errors import CRSError
from geo.findings import empty_findings, format_station, make_findings
from geo.linref import (
    LineRef,
    Pieces,
    chainage,
    chainage_range,
    cover_max,
    line_reference,
    merge_intervals,
    pieces,
    substring,
)
from geo.location_class import households as count_households

__all__ = [
    "GRADES",
    "coverage_share",
    "diff_hca",
    "hca_polygons",
    "identify_hca",
    "monitoring_coverage",
    "monitoring_findings",
    "potential_impact_radius",
    "reach_intervals",
    "registered_extents",
]

Rule = Mapping[str, Any]
GRADES = ("I", "II", "III")
_GRADE_NUM = {g: i + 1 for i, g in enumerate(GRADES)}
_EPS = 1e-9


def potential_impact_radius(
    diameter_mm: float | np.ndarray, pressure_mpa: float | np.ndarray, *,
    coefficient: float = 0.099,
) -> float | np.ndarray:
    """GB 32167-2015 eq. (1): r = 0.099·sqrt(d²·p), d outside diameter (mm), p MAOP (MPa).

    >>> round(potential_impact_radius(1016, 10)), round(potential_impact_radius(610, 6.3))
    (318, 152)
    """
    d = np.asarray(diameter_mm, dtype=float)
    p = np.asarray(pressure_mpa, dtype=float)
    r = coefficient * np.sqrt(d * d * p)
    return float(r) if r.ndim == 0 else r


# --- exact reach of a site along a line ------------------------------------------------------
def _edges(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (E, F) of every geometry's boundary / line / point, with the geometry index.
    A point is one degenerate edge (E == F)."""
    parts, pidx = shapely.get_parts(geoms, return_index=True)
    poly = shapely.get_type_id(parts) == 3
    rings_l, ridx = shapely.get_rings(parts[poly], return_index=True)
    rings_g = pidx[poly][ridx]
    other = parts[~poly]
    other_g = pidx[~poly]
    xy_r, i_r = shapely.get_coordinates(rings_l, return_index=True)
    xy_o, i_o = shapely.get_coordinates(other, return_index=True)
    g_r, g_o = rings_g[i_r], other_g[i_o]
    out_e, out_f, out_g = [], [], []
    for xy, idx, g in ((xy_r, i_r, g_r), (xy_o, i_o, g_o)):
        if len(xy) == 0:
            continue
        same = idx[1:] == idx[:-1]
        out_e.append(xy[:-1][same])
        out_f.append(xy[1:][same])
        out_g.append(g[:-1][same])
        # single-coordinate parts (points) → degenerate edges
        counts = np.bincount(idx)
        single = np.flatnonzero(counts == 1)
        if len(single):
            first = np.searchsorted(idx, single)
            out_e.append(xy[first])
            out_f.append(xy[first])
            out_g.append(g[first])
    if not out_e:
        z = np.empty((0, 2))
        return z, z, np.empty(0, dtype=np.intp)
    return np.concatenate(out_e), np.concatenate(out_f), np.concatenate(out_g)


def _t_disk(a: np.ndarray, d: np.ndarray, c: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """t-interval of points a + t·d within r of c (NaN when none)."""
    w = a - c
    qa = np.einsum("ij,ij->i", d, d)
    qb = 2 * np.einsum("ij,ij->i", d, w)
    qc = np.einsum("ij,ij->i", w, w) - r * r
    disc = qb * qb - 4 * qa * qc
    ok = (disc >= 0) & (qa > 0)
    s = np.sqrt(np.where(ok, disc, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(ok, (-qb - s) / (2 * qa), np.nan)
        hi = np.where(ok, (-qb + s) / (2 * qa), np.nan)
    return lo, hi


def _t_slab(p0: np.ndarray, dp: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """t-interval where lo <= p0 + t·dp <= hi (±inf when dp == 0 and inside, NaN if outside)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - p0) / dp
        t2 = (hi - p0) / dp
    a = np.minimum(t1, t2)
    b = np.maximum(t1, t2)
    flat = dp == 0
    inside = (p0 >= lo) & (p0 <= hi)
    a = np.where(flat, np.where(inside, -np.inf, np.nan), a)
    b = np.where(flat, np.where(inside, np.inf, np.nan), b)
    return a, b


def _t_capsule(a: np.ndarray, d: np.ndarray, e: np.ndarray, f: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """t-interval of a + t·d inside the capsule of edge EF with radius r (convex: one
    interval = hull of the intervals in the two end disks and the rectangle)."""
    lo1, hi1 = _t_disk(a, d, e, r)
    lo2, hi2 = _t_disk(a, d, f, r)
    ef = f - e
    ln = np.hypot(ef[:, 0], ef[:, 1])
    deg = ln == 0
    u = np.where(deg[:, None], 0.0, ef / np.where(deg, 1.0, ln)[:, None])
    n = np.stack([-u[:, 1], u[:, 0]], axis=1)
    w = a - e
    s_lo, s_hi = _t_slab(np.einsum("ij,ij->i", w, u), np.einsum("ij,ij->i", d, u),
                         np.zeros(len(a)), ln)
    h_lo, h_hi = _t_slab(np.einsum("ij,ij->i", w, n), np.einsum("ij,ij->i", d, n), -r, r)
    r_lo = np.maximum(s_lo, h_lo)
    r_hi = np.minimum(s_hi, h_hi)
    rect = ~deg & (r_lo <= r_hi)  # NaN compares False
    r_lo = np.where(rect, r_lo, np.nan)
    r_hi = np.where(rect, r_hi, np.nan)
    lo = np.fmin(np.fmin(lo1, lo2), r_lo)
    hi = np.fmax(np.fmax(hi1, hi2), r_hi)
    return lo, hi


def reach_intervals(
    pcs: Pieces, piece: np.ndarray, targets: np.ndarray, target: np.ndarray, radius: np.ndarray,
) -> pd.DataFrame:
    """Chainage intervals of pieces within ``radius`` of targets, exact.

    For each pair k (``piece[k]``, ``targets[target[k]]``, ``radius[k]``) the part of the piece
    within the radius of the target (or inside a polygon target) is found in closed form and
    the intervals are merged per (line, target). Returns columns ``line``, ``target``,
    ``from_m``, ``to_m``.
    """
    cols = {"line": np.empty(0, np.intp), "target": np.empty(0, np.intp),
            "from_m": np.empty(0), "to_m": np.empty(0)}
    if len(piece) == 0:
        return pd.DataFrame(cols)
    e, f, eg = _edges(targets)
    # expand pairs × edges of their target
    order = np.argsort(eg, kind="stable")
    e, f, eg = e[order], f[order], eg[order]
    first = np.searchsorted(eg, target, side="left")
    last = np.searchsorted(eg, target, side="right")
    cnt = last - first
    k = np.repeat(np.arange(len(piece)), cnt)
    ei = np.repeat(first, cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    xy = shapely.get_coordinates(pcs.geoms[piece])
    a, b = xy[0::2], xy[1::2]
    d = b - a
    lo, hi = _t_capsule(a[k], d[k], e[ei], f[ei], radius[k])
    # interiors of polygon targets (a piece deep inside a large polygon)
    tgt = targets[target]
    is_poly = np.isin(shapely.get_type_id(tgt), (3, 6))
    ins_lo, ins_hi, ins_k = [], [], []
    if is_poly.any():
        kp = np.flatnonzero(is_poly)
        inter = shapely.intersection(pcs.geoms[piece[kp]], tgt[kp])
        parts, pi_ = shapely.get_parts(inter, return_index=True)
        lines = shapely.get_type_id(parts) == 1
        parts, pi_ = parts[lines], pi_[lines]
        if len(parts):
            kk = kp[pi_]
            L = np.hypot(d[kk, 0], d[kk, 1])
            t0 = shapely.line_locate_point(pcs.geoms[piece[kk]], shapely.get_point(parts, 0)) / L
            t1 = shapely.line_locate_point(pcs.geoms[piece[kk]], shapely.get_point(parts, -1)) / L
            ins_lo.append(np.minimum(t0, t1))
            ins_hi.append(np.maximum(t0, t1))
            ins_k.append(kk)
    lo = np.concatenate([lo, *ins_lo])
    hi = np.concatenate([hi, *ins_hi])
    k = np.concatenate([k, *ins_k]).astype(np.intp)
    lo = np.clip(lo, 0.0, 1.0)
    hi = np.clip(hi, 0.0, 1.0)
    ok = np.isfinite(lo) & np.isfinite(hi) & (hi >= lo)
    lo, hi, k = lo[ok], hi[ok], k[ok]
    if len(k) == 0:
        return pd.DataFrame(cols)
    plen = np.hypot(d[:, 0], d[:, 1])
    pk = piece[k]
    c_lo = pcs.start_m[pk] + lo * plen[k]
    c_hi = pcs.start_m[pk] + hi * plen[k]
    line = pcs.line[pk]
    tg = target[k]
    key = line.astype(np.int64) * (int(target.max()) + 1) + tg
    g, m_lo, m_hi, _ = merge_intervals(key, c_lo, c_hi, gap_m=1e-6)
    return pd.DataFrame({"line": (g // (int(target.max()) + 1)).astype(np.intp),
                         "target": (g % (int(target.max()) + 1)).astype(np.intp),
                         "from_m": m_lo, "to_m": m_hi})


def _reach(
    pcs: Pieces, geoms: np.ndarray, radius_by_line: np.ndarray
) -> pd.DataFrame:
    """(line, target, from_m, to_m, distance_m) for every target within the radius of a line
    (radius_by_line[line]; NaN / <= 0 = the line is skipped)."""
    empty = pd.DataFrame({"line": np.empty(0, np.intp), "target": np.empty(0, np.intp),
                          "from_m": np.empty(0), "to_m": np.empty(0), "distance_m": np.empty(0)})
    rad = np.nan_to_num(np.asarray(radius_by_line, dtype=float), nan=-1.0)
    use = rad[pcs.line] > 0
    if len(geoms) == 0 or not use.any():
        return empty
    pidx = np.flatnonzero(use)
    tree = shapely.STRtree(geoms)
    qi, tj = tree.query(pcs.geoms[pidx], predicate="dwithin", distance=rad[pcs.line[pidx]])
    if len(qi) == 0:
        return empty
    piece = pidx[qi]
    r = rad[pcs.line[piece]]
    out = reach_intervals(pcs, piece, geoms, tj, r)
    dist = shapely.distance(pcs.geoms[piece], geoms[tj])
    dmin = (pd.DataFrame({"line": pcs.line[piece], "target": tj, "distance_m": dist})
            .groupby(["line", "target"], as_index=False)["distance_m"].min())
    return out.merge(dmin, on=["line", "target"], how="left")


# --- targets ---------------------------------------------------------------------------------
def _targets(
    buildings: gpd.GeoDataFrame | None, sites: gpd.GeoDataFrame | None,
    roads: gpd.GeoDataFrame | None, *, building_uses: Sequence[str] = (),
    site_kinds: Sequence[str] = (), road_classes: Sequence[str] = (),
) -> pd.DataFrame:
    frames = []
    for gdf, layer, col, values in ((buildings, "buildings", "use", building_uses),
                                    (sites, "sites", "kind", site_kinds),
                                    (roads, "roads", "road_class", road_classes)):
        if gdf is None or not len(values) or col not in gdf or gdf.empty:
            continue
        sel = gdf[gdf[col].isin(list(values))]
        if sel.empty:
            continue
        frames.append(pd.DataFrame({"layer": layer, "id": sel["id"].astype(str).to_numpy(),
                                    "what": sel[col].astype(str).to_numpy(),
                                    "name": (sel["name"].to_numpy() if "name" in sel
                                             else np.full(len(sel), None)),
                                    "geometry": np.asarray(sel.geometry.values, dtype=object)}))
    if not frames:
        return pd.DataFrame({"layer": [], "id": [], "what": [], "name": [], "geometry": []})
    return pd.concat(frames, ignore_index=True)


def _cite(row: Rule) -> tuple[str, str]:
    """The standard and row a criterion text starts with ("GB 32167-2015 表2 e")."""
    zh = str(row.get("source") or row["row"])
    return zh, str(row.get("source_en") or zh)


def _bounds_match(row: Rule, d: float, p: float) -> bool:
    checks = (("diameter_gt_mm", d, np.greater), ("diameter_lt_mm", d, np.less),
              ("pressure_gt_mpa", p, np.greater), ("pressure_lt_mpa", p, np.less))
    return all(bool(op(v, float(row[k]))) for k, v, op in checks if k in row)


_WHAT_ZH = {
    "school": "学校", "kindergarten": "幼儿园", "hospital": "医院", "elderly_care": "养老院",
    "prison": "监狱", "market": "商场市场", "public_assembly": "公共聚集场所", "square": "广场",
    "stadium": "运动场", "gas_station": "加油加气站", "oil_depot": "油库", "railway": "铁路",
    "water_source": "水源", "river": "河流", "reservoir": "水库", "nature_reserve": "自然保护区",
    "expressway": "高速公路", "national": "国道", "provincial": "省道",
}  # fmt: skip


def _site_instances(
    pcs: Pieces, table: str, row: Rule, lines: np.ndarray, radius: np.ndarray,
    tg: pd.DataFrame,
) -> pd.DataFrame:
    rad = np.full(int(pcs.line.max()) + 1 if len(pcs.line) else 0, np.nan)
    rad[lines] = radius
    reach = _reach(pcs, np.asarray(tg["geometry"].to_numpy(), dtype=object), rad)
    if reach.empty:
        return pd.DataFrame()
    t = tg.iloc[reach["target"].to_numpy()].reset_index(drop=True)
    r = rad[reach["line"].to_numpy()]
    cz, ce = _cite(row)
    zh = [f"{cz}：{_WHAT_ZH.get(w, w)} {i} 距管道 {dist:.1f} m（≤ {rr:.1f} m）"
          for w, i, dist, rr in zip(t["what"], t["id"], reach["distance_m"], r, strict=True)]
    en = [f"{ce}: {w.replace('_', ' ')} {i} {dist:.1f} m from the line (<= {rr:.1f} m)"
          for w, i, dist, rr in zip(t["what"], t["id"], reach["distance_m"], r, strict=True)]
    return pd.DataFrame({
        "line": reach["line"].to_numpy(), "from_m": reach["from_m"].to_numpy(),
        "to_m": reach["to_m"].to_numpy(), "grade": _GRADE_NUM[row["grade"]],
        "rule_id": row["id"], "table": table, "row": row["row"],
        "layer": t["layer"].to_numpy(), "feature_id": t["id"].to_numpy(),
        "what": t["what"].to_numpy(), "distance_m": np.round(reach["distance_m"].to_numpy(), 3),
        "radius_m": r, "households": np.nan, "location_class": np.nan,
        "text_zh": zh, "text_en": en,
    })


def _class_instances(
    lc: gpd.GeoDataFrame, table: str, row: Rule, line_of: Mapping[str, int],
    lines: np.ndarray, half_width_m: float,
) -> pd.DataFrame:
    sel = lc[lc["pipeline_id"].map(line_of).isin(lines)
             & lc["location_class"].isin(list(row["classes"]))]
    if sel.empty:
        return pd.DataFrame()
    cz, ce = _cite(row)
    zh = [f"{cz}：{z}（2 km 地段 {format_station(a)}～{format_station(b)} 内 {int(h)} 户）"
          for z, a, b, h in zip(sel["class_zh"], sel["window_from_m"], sel["window_to_m"],
                                sel["households"], strict=True)]
    en = [f"{ce}: {e} ({int(h)} households in the 2 km window "
          f"{format_station(a)} to {format_station(b)})"
          for e, a, b, h in zip(sel["class_en"], sel["window_from_m"], sel["window_to_m"],
                                sel["households"], strict=True)]
    return pd.DataFrame({
        "line": sel["pipeline_id"].map(line_of).to_numpy(),
        "from_m": sel["chainage_from_m"].to_numpy(), "to_m": sel["chainage_to_m"].to_numpy(),
        "grade": _GRADE_NUM[row["grade"]], "rule_id": row["id"], "table": table,
        "row": row["row"], "layer": "pipelines", "feature_id": sel["pipeline_id"].to_numpy(),
        "what": "location_class", "distance_m": np.nan, "radius_m": half_width_m,
        "households": sel["households"].to_numpy(dtype=float),
        "location_class": sel["location_class"].to_numpy(dtype=float),
        "text_zh": zh, "text_en": en,
    })


def _settlement_instances(
    pcs: Pieces, table: str, row: Rule, lines: np.ndarray, buildings: gpd.GeoDataFrame,
    household_rule: Rule,
) -> pd.DataFrame:
    radius = float(row["radius_m"])
    rad = np.full(int(pcs.line.max()) + 1, np.nan)
    rad[lines] = radius
    geoms = np.asarray(buildings.geometry.values, dtype=object)
    hh = count_households(buildings, rule=household_rule)
    reach = _reach(pcs, geoms, rad)
    reach = reach[hh[reach["target"].to_numpy()] > 0].reset_index(drop=True)
    if reach.empty:
        return pd.DataFrame()
    out = []
    gap = float(row.get("cluster_gap_m", 50.0))
    for li, grp in reach.groupby("line"):
        b = np.unique(grp["target"].to_numpy())
        tree = shapely.STRtree(geoms[b])
        i, j = tree.query(geoms[b], predicate="dwithin", distance=gap)
        n = len(b)
        graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        tot = np.bincount(comp, weights=hh[b])
        big = np.flatnonzero(tot >= float(row["min_households"]))
        if not len(big):
            continue
        comp_of = dict(zip(b, comp, strict=True))
        g = grp[grp["target"].map(comp_of).isin(big)]
        cid = g["target"].map(comp_of).to_numpy()
        mg, lo, hi, _ = merge_intervals(cid, g["from_m"].to_numpy(), g["to_m"].to_numpy(),
                                          gap_m=1e-6)
        for c, a, z in zip(mg, lo, hi, strict=True):
            members = b[comp == c]
            ids = buildings["id"].astype(str).to_numpy()[members]
            nh = int(tot[c])
            out.append({
                "line": li, "from_m": a, "to_m": z, "grade": _GRADE_NUM[row["grade"]],
                "rule_id": row["id"], "table": table, "row": row["row"], "layer": "buildings",
                "feature_id": ",".join(sorted(ids)[:5]) + ("…" if len(ids) > 5 else ""),
                "what": "settlement", "distance_m": float(grp.loc[
                    grp["target"].isin(members), "distance_m"].min()),
                "radius_m": radius, "households": float(nh), "location_class": np.nan,
                "text_zh": f"{_cite(row)[0]}：聚居 {nh} 户（{len(ids)} 栋建筑，间距 ≤ {gap:g} m）"
                           f"位于管道两侧 {radius:g} m 内",
                "text_en": f"{_cite(row)[1]}: settlement of {nh} households ({len(ids)} buildings, "
                           f"gaps <= {gap:g} m) within {radius:g} m",
            })
    return pd.DataFrame(out)


def _subtract(inst: pd.DataFrame, cut: pd.DataFrame) -> pd.DataFrame:
    """Remove the ranges in ``cut`` (line, from_m, to_m) from each instance."""
    if inst.empty or cut.empty:
        return inst
    rows = []
    for r in inst.to_dict("records"):
        c = cut[(cut["line"] == r["line"]) & (cut["to_m"] > r["from_m"])
                & (cut["from_m"] < r["to_m"])].sort_values("from_m")
        a = r["from_m"]
        for lo, hi in zip(c["from_m"], c["to_m"], strict=True):
            if lo > a:
                rows.append({**r, "from_m": a, "to_m": lo})
            a = max(a, hi)
        if a < r["to_m"]:
            rows.append({**r, "from_m": a, "to_m": r["to_m"]})
    return pd.DataFrame(rows, columns=inst.columns)


def identify_hca(
    pipelines: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    *,
    sites: gpd.GeoDataFrame | None = None,
    roads: gpd.GeoDataFrame | None = None,
    location_classes: gpd.GeoDataFrame | None = None,
    gas_rows: Sequence[Rule],
    oil_rows: Sequence[Rule],
    identified_site_rows: Sequence[Rule],
    flammable_row: Rule,
    media_row: Rule,
    household_rule: Rule,
    pir_coefficient: float = 0.099,
    location_half_width_m: float = 200.0,
    merge_gap_m: float = 0.0,
    piece_length_m: float = 200.0,
) -> gpd.GeoDataFrame:
    """HCA segments of the long-distance pipelines (GB 32167-2015 6.1).

    Parameters
    ----------
    pipelines, buildings, sites, roads
        Projected (metres), one CRS.
    location_classes
        Output of :func:`geo.location_class.location_classes` for these pipelines (needed by
        the location-class rows).
    gas_rows, oil_rows, identified_site_rows, flammable_row, media_row, household_rule
        Rule rows of ``hca.toml`` / ``location_class.toml``.
    merge_gap_m
        Segments of one grade closer than this are merged.

    Returns
    -------
    GeoDataFrame
        One row per HCA segment: ``hca_id``, ``pipeline_id``, ``grade``, ``chainage_from_m``,
        ``chainage_to_m``, ``length_m``, ``station_from``, ``station_to``, ``rows`` (e.g.
        ``"b,e"``), ``criteria`` (list of dicts: rule, row, grade, layer, feature id,
        distance, households, class), ``criteria_zh``/``criteria_en`` (readable),
        ``corridor_m`` (largest radius behind it); geometry = centre-line piece.
    """
    require_projected(pipelines, "pipelines")
    crs = pipelines.crs
    for gdf, what in ((buildings, "buildings"), (sites, "sites"), (roads, "roads")):
        if gdf is None:
            continue
        require_projected(gdf, what)
        if gdf.crs != crs:
            raise CRSError(f"{what} ({gdf.crs}) and pipelines ({crs}) are in different CRSs; "
                           "project both with geo.crs.to_analysis")
    p = pipelines
    if "status" in p:
        p = p[p["status"] != "abandoned"]
    p = p[p["kind"].isin(list(media_row["pipeline_kinds"]))
          & p["medium"].isin(list(media_row["gas"]) + list(media_row["oil"]))]
    p = p[p.geometry.notna() & ~p.geometry.is_empty].reset_index(drop=True)
    if p.empty:
        return _empty_segments(crs)
    refs = [line_reference(g) for g in p.geometry.values]
    pcs = pieces(refs, max_length_m=piece_length_m)
    line_of = {str(pid): i for i, pid in enumerate(p["id"])}
    is_gas = p["medium"].isin(list(media_row["gas"])).to_numpy()
    diam = p["diameter_mm"].to_numpy(dtype=float)
    pres = p["pressure_mpa"].to_numpy(dtype=float)
    pir = np.asarray(potential_impact_radius(diam, pres, coefficient=pir_coefficient))
    site_uses = sorted({u for r in identified_site_rows for u in r.get("building_uses", [])})
    site_kinds = sorted({u for r in identified_site_rows for u in r.get("site_kinds", [])})
    ident = _targets(buildings, sites, None, building_uses=site_uses, site_kinds=site_kinds)
    flam = _targets(buildings, sites, None, building_uses=flammable_row.get("building_uses", []),
                    site_kinds=flammable_row.get("site_kinds", []))
    parts = []
    for table, rows, sel in (("gas", gas_rows, is_gas), ("oil", oil_rows, ~is_gas)):
        by_id = {r["id"]: r for r in rows}
        all_lines = np.flatnonzero(sel)
        if not len(all_lines):
            continue
        cut = None
        for row in rows:
            crit = row["criterion"]
            if crit == "location_class":
                if location_classes is None:
                    raise ValueError(f"rule {row['id']} needs the location classes; pass "
                                     "location_classes=geo.location_class.location_classes(...)")
                parts.append(_class_instances(location_classes, table, row, line_of, all_lines,
                                              location_half_width_m))
            elif crit in ("identified_site", "flammable_site", "feature"):
                lines = all_lines
                if row.get("radius") == "pir":
                    lines = np.array([i for i in all_lines if _bounds_match(row, diam[i], pres[i])],
                                     dtype=np.intp)
                    radius = pir[lines]
                else:
                    others = [by_id[o] for o in row.get("otherwise", []) if o in by_id]
                    lines = np.array([i for i in all_lines if not any(
                        _bounds_match(o, diam[i], pres[i]) for o in others)], dtype=np.intp)
                    radius = np.full(len(lines), float(row["radius_m"]))
                if not len(lines):
                    continue
                tg = (ident if crit == "identified_site" else flam if crit == "flammable_site"
                      else _targets(buildings, sites, roads,
                                    building_uses=row.get("building_uses", []),
                                    site_kinds=row.get("site_kinds", []),
                                    road_classes=row.get("road_classes", [])))
                if tg.empty:
                    continue
                inst = _site_instances(pcs, table, row, lines, radius, tg)
                if "except_min_class" in row and not inst.empty:
                    if location_classes is None:
                        raise ValueError(f"rule {row['id']} needs the location classes")
                    if cut is None:
                        lc = location_classes[location_classes["location_class"]
                                              >= row["except_min_class"]]
                        cut = pd.DataFrame({"line": lc["pipeline_id"].map(line_of),
                                            "from_m": lc["chainage_from_m"],
                                            "to_m": lc["chainage_to_m"]}).dropna()
                    inst = _subtract(inst, cut)
                parts.append(inst)
            elif crit == "settlement":
                parts.append(_settlement_instances(pcs, table, row, all_lines, buildings,
                                                   household_rule))
            else:
                raise ValueError(f"rule {row['id']}: unknown criterion {crit!r}")
    parts = [x for x in parts if not x.empty]
    if not parts:
        return _empty_segments(crs)
    inst = pd.concat(parts, ignore_index=True)
    return _segments(inst, p, refs, merge_gap_m=merge_gap_m, crs=crs)


def _empty_segments(crs: Any) -> gpd.GeoDataFrame:
    cols = ["hca_id", "pipeline_id", "grade", "chainage_from_m", "chainage_to_m", "length_m",
            "station_from", "station_to", "rows", "criteria", "criteria_zh", "criteria_en",
            "corridor_m"]
    return gpd.GeoDataFrame({c: pd.Series(dtype="object") for c in cols},
                            geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _segments(
    inst: pd.DataFrame, p: gpd.GeoDataFrame, refs: Sequence[LineRef], *, merge_gap_m: float,
    crs: Any,
) -> gpd.GeoDataFrame:
    inst = inst[inst["to_m"] > inst["from_m"]].reset_index(drop=True)  # zero-length: a tie
    rows = []
    for li, g in inst.groupby("line"):
        pts = np.unique(np.r_[g["from_m"].to_numpy(), g["to_m"].to_numpy()])
        m = len(pts) - 1
        if m <= 0:
            continue
        grade = cover_max(np.searchsorted(pts, g["from_m"].to_numpy()),
                          np.searchsorted(pts, g["to_m"].to_numpy()),
                          g["grade"].to_numpy(dtype=np.int64), m)
        cov = grade > 0
        if not cov.any():
            continue
        # runs of equal grade
        lo, hi, gr = pts[:-1][cov], pts[1:][cov], grade[cov]
        mg, a, z, _ = merge_intervals(gr, lo, hi, gap_m=max(merge_gap_m, 1e-6))
        order = np.argsort(a)
        for gg, aa, zz in zip(mg[order], a[order], z[order], strict=True):
            over = g[(g["from_m"] < zz) & (g["to_m"] > aa)]
            rows.append((int(li), int(gg), float(aa), float(zz), over))
    out = []
    for li, gg, fa, fz, over in rows:
        pid = str(p["id"].iat[li])
        over = over.sort_values(["row", "feature_id"], kind="stable")
        crit = [{"rule_id": r.rule_id, "row": r.row, "grade": GRADES[int(r.grade) - 1],
                 "layer": r.layer, "feature_id": r.feature_id, "what": r.what,
                 "distance_m": None if pd.isna(r.distance_m) else float(r.distance_m),
                 "households": None if pd.isna(r.households) else int(r.households),
                 "location_class": None if pd.isna(r.location_class) else int(r.location_class),
                 "from_m": round(float(r.from_m), 3), "to_m": round(float(r.to_m), 3)}
                for r in over.itertuples(index=False)]
        out.append({
            "hca_id": None, "pipeline_id": pid, "grade": GRADES[gg - 1],
            "chainage_from_m": round(fa, 3), "chainage_to_m": round(fz, 3),
            "length_m": round(fz - fa, 3),
            "station_from": format_station(fa), "station_to": format_station(fz),
            "rows": ",".join(sorted(set(over["row"]))),
            "criteria": crit,
            "criteria_zh": "；".join(dict.fromkeys(over["text_zh"])),
            "criteria_en": "; ".join(dict.fromkeys(over["text_en"])),
            "corridor_m": float(over["radius_m"].max()),
            "geometry": substring(refs[li], fa, fz),
        })
    if not out:
        return _empty_segments(crs)
    df = pd.DataFrame(out).sort_values(["pipeline_id", "chainage_from_m"], kind="stable")
    df["hca_id"] = [f"{pid}:{a:.0f}-{z:.0f}" for pid, a, z in
                    zip(df["pipeline_id"], df["chainage_from_m"], df["chainage_to_m"], strict=True)]
    return gpd.GeoDataFrame(df.reset_index(drop=True), geometry="geometry", crs=crs)


def hca_polygons(segments: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The affected corridor of each HCA segment: its centre-line piece buffered (flat ends) by
    ``corridor_m``."""
    out = segments.copy()
    out["geometry"] = shapely.buffer(np.asarray(segments.geometry.values, dtype=object),
                                     segments["corridor_m"].to_numpy(dtype=float),
                                     cap_style="flat", quad_segs=16)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=segments.crs)


# --- registered HCAs ------------------------------------------------------------------------
def registered_extents(
    hca: gpd.GeoDataFrame, pipelines: gpd.GeoDataFrame
) -> pd.DataFrame:
    """Chainage extent of each registered HCA on its pipeline: ``start_m``/``end_m`` when
    given, else from the geometry (the centre line inside a polygon, a line's own extent).

    Returns ``id``, ``pipeline_id``, ``grade``, ``from_m``, ``to_m``, ``people_dense``,
    ``video_monitored``, ``known`` (pipeline found).
    """
    require_projected(hca, "hca")
    refs = {str(pid): line_reference(g) for pid, g in zip(pipelines["id"], pipelines.geometry,
                                                          strict=True)
            if g is not None and not g.is_empty}
    rows = []
    for r in hca.itertuples(index=False):
        pid = str(r.pipeline_id)
        ref = refs.get(pid)
        a = getattr(r, "start_m", None)
        z = getattr(r, "end_m", None)
        g = r.geometry
        if ref is not None and (a is None or z is None or pd.isna(a) or pd.isna(z)):
            a = z = np.nan
            if g is not None and not g.is_empty:
                if g.geom_type in ("Polygon", "MultiPolygon"):
                    inside = shapely.get_parts(shapely.intersection(
                        shapely.MultiLineString(list(ref.parts)), g))
                    inside = inside[shapely.get_type_id(inside) == 1]
                    if len(inside):
                        ch = chainage(ref, shapely.points(shapely.get_coordinates(inside)))
                        a, z = float(ch.min()), float(ch.max())
                else:
                    lo, hi = chainage_range(ref, [g])
                    a, z = float(lo[0]), float(hi[0])
        rows.append({"id": str(r.id), "pipeline_id": pid, "grade": r.grade,
                     "from_m": float(a) if a is not None else np.nan,
                     "to_m": float(z) if z is not None else np.nan,
                     "people_dense": bool(getattr(r, "people_dense", False) or False),
                     "video_monitored": bool(getattr(r, "video_monitored", False) or False),
                     "known": ref is not None})
    return pd.DataFrame(rows, columns=["id", "pipeline_id", "grade", "from_m", "to_m",
                                       "people_dense", "video_monitored", "known"])


def _minus(a: float, z: float, cuts: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for lo, hi in sorted(cuts):
        if hi <= a or lo >= z:
            continue
        if lo > a:
            out.append((a, lo))
        a = max(a, hi)
    if a < z:
        out.append((a, z))
    return out


def diff_hca(
    identified: gpd.GeoDataFrame,
    registered: gpd.GeoDataFrame,
    pipelines: gpd.GeoDataFrame,
    *,
    rule: Rule,
    rule_source: str = "GB 32167-2015 6.1",
) -> gpd.GeoDataFrame:
    """Findings comparing identified HCA segments with the registered ``hca`` layer.

    - ``hca_unregistered``: identified stretches no registered HCA covers;
    - ``hca_unsupported``: registered stretches no identified HCA supports;
    - ``hca_grade_changed``: overlaps where the identified grade differs from the registered.

    Pieces shorter than ``rule["min_length_m"]`` are ignored. Pass the registered HCAs of the
    analysed pipelines (and those whose pipeline is unknown: they are reported); ``pipelines``
    may hold more lines. All inputs projected (metres).
    """
    require_projected(pipelines, "pipelines")
    crs = pipelines.crs
    min_len = float(rule.get("min_length_m", 10.0))
    reg = registered_extents(registered, pipelines) if len(registered) else pd.DataFrame(
        columns=["id", "pipeline_id", "grade", "from_m", "to_m", "known"])
    refs = {str(pid): line_reference(g) for pid, g in zip(pipelines["id"], pipelines.geometry,
                                                          strict=True)
            if g is not None and not g.is_empty}
    recs: list[dict[str, Any]] = []
    src = rule_source
    for s in identified.itertuples(index=False):
        cuts = [(a, z) for a, z in zip(reg.loc[reg["pipeline_id"] == s.pipeline_id, "from_m"],
                                       reg.loc[reg["pipeline_id"] == s.pipeline_id, "to_m"],
                                       strict=True) if np.isfinite(a) and np.isfinite(z)]
        for a, z in _minus(s.chainage_from_m, s.chainage_to_m, cuts):
            if z - a < min_len:
                continue
            sa, sz = format_station(a), format_station(z)
            recs.append({
                "kind": "hca_unregistered", "severity": rule.get("severity_unregistered", "high"),
                "layer": "pipelines", "feature_id": s.pipeline_id, "other_layer": None,
                "other_id": f"{a:.0f}-{z:.0f}", "grade": s.grade, "registered_grade": None,
                "chainage_from_m": round(a, 3), "chainage_to_m": round(z, 3), "station": sa,
                "length_m": round(z - a, 3), "criteria_zh": s.criteria_zh,
                "criteria_en": s.criteria_en,
                "message_zh": f"管道 {s.pipeline_id} {sa}～{sz}（{z - a:.0f} m）识别为 {s.grade} 级"
                              f"高后果区，但未登记。识别依据：{s.criteria_zh}。",
                "message_en": f"Pipeline {s.pipeline_id} {sa} to {sz} ({z - a:.0f} m) is a grade "
                              f"{s.grade} HCA that is not registered. Criteria: {s.criteria_en}.",
                "geometry": substring(refs[s.pipeline_id], a, z),
            })
    for r in reg.itertuples(index=False):
        if not r.known or not (np.isfinite(r.from_m) and np.isfinite(r.to_m)):
            why_zh = "所在管道不存在" if not r.known else "无法确定其在管道上的位置"
            why_en = "its pipeline is unknown" if not r.known else "its position on the line is unknown"
            recs.append({
                "kind": "hca_unsupported", "severity": rule.get("severity_unsupported", "low"),
                "layer": "hca", "feature_id": r.id, "other_layer": "pipelines",
                "other_id": "all", "grade": None, "registered_grade": r.grade,
                "chainage_from_m": None, "chainage_to_m": None, "station": None,
                "length_m": None, "criteria_zh": None, "criteria_en": None,
                "message_zh": f"已登记高后果区 {r.id}（管道 {r.pipeline_id}）{why_zh}，请核查。",
                "message_en": f"Registered HCA {r.id} (pipeline {r.pipeline_id}): {why_en}; check it.",
                "geometry": None,
            })
            continue
        segs = identified[identified["pipeline_id"] == r.pipeline_id] if len(identified) else identified
        cuts = list(zip(segs["chainage_from_m"], segs["chainage_to_m"], strict=True)) if len(segs) else []
        whole = (r.to_m - r.from_m) >= 0 and not any(
            min(z, r.to_m) - max(a, r.from_m) > 0 for a, z in cuts)
        for a, z in _minus(r.from_m, r.to_m, cuts):
            if z - a < min_len:
                continue
            sa, sz = format_station(a), format_station(z)
            part_zh = "" if whole else "部分"
            part_en = "" if whole else "part of "
            recs.append({
                "kind": "hca_unsupported", "severity": rule.get("severity_unsupported", "low"),
                "layer": "hca", "feature_id": r.id, "other_layer": "pipelines",
                "other_id": f"{r.pipeline_id}:{a:.0f}-{z:.0f}", "grade": None,
                "registered_grade": r.grade, "chainage_from_m": round(a, 3),
                "chainage_to_m": round(z, 3), "station": sa, "length_m": round(z - a, 3),
                "criteria_zh": None, "criteria_en": None,
                "message_zh": f"已登记的 {r.grade} 级高后果区 {r.id}{part_zh}（管道 {r.pipeline_id} "
                              f"{sa}～{sz}）未识别到 GB 32167 判定依据，建议复核是否仍为高后果区。",
                "message_en": f"{part_en.capitalize()}registered grade {r.grade} HCA {r.id} (pipeline "
                              f"{r.pipeline_id} {sa} to {sz}) is no longer supported by any "
                              "GB 32167 criterion; review it.",
                "geometry": substring(refs[r.pipeline_id], a, z),
            })
        for s in segs.itertuples(index=False):
            a, z = max(s.chainage_from_m, r.from_m), min(s.chainage_to_m, r.to_m)
            if z - a < min_len or s.grade == r.grade:
                continue
            up = _GRADE_NUM[s.grade] > _GRADE_NUM[str(r.grade)]
            sa, sz = format_station(a), format_station(z)
            recs.append({
                "kind": "hca_grade_changed",
                "severity": rule.get("severity_upgraded" if up else "severity_downgraded",
                                     "high" if up else "medium"),
                "layer": "hca", "feature_id": r.id, "other_layer": "pipelines",
                "other_id": f"{r.pipeline_id}:{a:.0f}-{z:.0f}", "grade": s.grade,
                "registered_grade": r.grade, "chainage_from_m": round(a, 3),
                "chainage_to_m": round(z, 3), "station": sa, "length_m": round(z - a, 3),
                "criteria_zh": s.criteria_zh, "criteria_en": s.criteria_en,
                "message_zh": f"高后果区 {r.id}（管道 {r.pipeline_id} {sa}～{sz}）登记为 {r.grade} 级，"
                              f"识别结果为 {s.grade} 级（{'升级' if up else '降级'}）。依据：{s.criteria_zh}。",
                "message_en": f"HCA {r.id} (pipeline {r.pipeline_id} {sa} to {sz}) is registered as "
                              f"grade {r.grade}; identified as grade {s.grade} "
                              f"({'upgrade' if up else 'downgrade'}). Criteria: {s.criteria_en}.",
                "geometry": substring(refs[r.pipeline_id], a, z),
            })
    if not recs:
        return empty_findings(crs)
    df = pd.DataFrame(recs)
    df["rule_id"] = rule.get("id", "hca_diff")
    df["rule_source"] = src
    frames = []
    for kind, g in df.groupby("kind", sort=True):
        frames.append(make_findings(g.drop(columns=["kind", "geometry"]), kind=str(kind),
                                    geometry=g["geometry"], crs=crs,
                                    id_columns=["feature_id", "other_id"]))
    out = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=crs).sort_values(
        "finding_id", kind="stable").reset_index(drop=True)


# --- video monitoring -----------------------------------------------------------------------
def monitoring_coverage(
    hca: gpd.GeoDataFrame, pipelines: gpd.GeoDataFrame, cameras: gpd.GeoDataFrame, *,
    people_dense_only: bool = True, default_range_m: float = 100.0,
) -> gpd.GeoDataFrame:
    """Share of each registered (people-dense) HCA's centre-line length within ``range_m`` of
    a camera. Exact: the covered stretch of every line piece is computed in closed form.

    Returns ``hca_id``, ``pipeline_id``, ``grade``, ``length_m``, ``covered_m``,
    ``coverage`` (0–1), ``cameras`` (count); geometry = the HCA's centre-line piece.
    """
    require_projected(pipelines, "pipelines")
    crs = pipelines.crs
    reg = registered_extents(hca, pipelines) if len(hca) else pd.DataFrame(
        columns=["id", "pipeline_id", "grade", "from_m", "to_m", "people_dense", "known"])
    if people_dense_only:
        reg = reg[reg["people_dense"].fillna(False).astype(bool)]
    reg = reg[reg["known"].fillna(False).astype(bool) & np.isfinite(reg["from_m"].astype(float))
              & np.isfinite(reg["to_m"].astype(float))].reset_index(drop=True)
    cols = ["hca_id", "pipeline_id", "grade", "length_m", "covered_m", "coverage", "cameras"]
    if reg.empty:
        return gpd.GeoDataFrame({c: [] for c in cols}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    refs = {str(pid): line_reference(g) for pid, g in zip(pipelines["id"], pipelines.geometry,
                                                          strict=True)
            if g is not None and not g.is_empty}
    pieces_ = [substring(refs[r.pipeline_id], r.from_m, r.to_m) for r in reg.itertuples()]
    ok = [i for i, g in enumerate(pieces_) if not g.is_empty]
    sub_refs = {i: line_reference(pieces_[i]) for i in ok}
    lengths = np.array([sub_refs[i].length_m if i in sub_refs else 0.0 for i in range(len(reg))])
    covered = np.zeros(len(reg))
    ncam = np.zeros(len(reg), dtype=int)
    if len(cameras) and ok:
        require_projected(cameras, "cameras")
        cam = np.asarray(cameras.geometry.values, dtype=object)
        rng = (cameras["range_m"].fillna(default_range_m).to_numpy(dtype=float)
               if "range_m" in cameras else np.full(len(cam), default_range_m))
        pcs = pieces([sub_refs[i] for i in ok], max_length_m=200.0)
        tree = shapely.STRtree(cam)
        qi, cj = tree.query(pcs.geoms, predicate="dwithin", distance=float(rng.max()))
        keep = shapely.distance(pcs.geoms[qi], cam[cj]) <= rng[cj]
        qi, cj = qi[keep], cj[keep]
        if len(qi):
            iv = reach_intervals(pcs, qi, cam, cj, rng[cj])
            g, lo, hi, _ = merge_intervals(iv["line"].to_numpy(), iv["from_m"].to_numpy(),
                                           iv["to_m"].to_numpy(), gap_m=1e-6)
            cov = np.bincount(g, weights=hi - lo, minlength=len(ok))
            covered[ok] = cov
            cams = pd.DataFrame({"line": pcs.line[qi], "cam": cj}).drop_duplicates()
            ncam[ok] = np.bincount(cams["line"], minlength=len(ok))
    coverage = np.divide(covered, lengths, out=np.zeros(len(reg)), where=lengths > 0)
    return gpd.GeoDataFrame({
        "hca_id": reg["id"], "pipeline_id": reg["pipeline_id"], "grade": reg["grade"],
        "length_m": np.round(lengths, 3), "covered_m": np.round(covered, 3),
        "coverage": np.round(np.minimum(coverage, 1.0), 6), "cameras": ncam,
    }, geometry=pieces_, crs=crs)


def monitoring_findings(coverage: gpd.GeoDataFrame, *, target_row: Rule) -> gpd.GeoDataFrame:
    """``hca_monitoring`` findings: each people-dense HCA covered below the target share, and
    the district as a whole (``feature_id`` ``all``: covered length / HCA length)."""
    crs = coverage.crs
    target = float(target_row["target"])
    year = int(target_row["year"])
    below = coverage[coverage["coverage"] < target - _EPS]
    total, cov_m = float(coverage["length_m"].sum()), float(coverage["covered_m"].sum())
    share = cov_m / total if total > 0 else 1.0
    rows = [{"feature_id": h, "pipeline_id": p, "length_m": ln, "covered_m": cv, "coverage": c,
             "geometry": g}
            for h, p, ln, cv, c, g in zip(below["hca_id"], below["pipeline_id"],
                                          below["length_m"], below["covered_m"],
                                          below["coverage"], below.geometry, strict=True)]
    if share < target - _EPS:
        rows.append({"feature_id": "all", "pipeline_id": None, "length_m": total,
                     "covered_m": cov_m, "coverage": share, "geometry": None})
    if not rows:
        return empty_findings(crs)
    df = pd.DataFrame(rows)
    df["severity"] = target_row.get("severity", "medium")
    df["layer"], df["other_layer"], df["other_id"] = "hca", "cameras", str(year)
    df["rule_id"], df["rule_source"], df["target"] = target_row["id"], target_row["source"], target
    df["message_zh"] = [
        (f"全区人员密集型高后果区（共 {ln / 1000:.2f} km）视频监控覆盖 {c:.1%}（{cv / 1000:.2f} km），"
         if h == "all" else
         f"人员密集型高后果区 {h}（管道 {p}，长 {ln:.0f} m）视频监控覆盖 {c:.1%}（{cv:.0f} m），")
        + f"低于 {year} 年目标 {target:.0%}（差 {target - c:.1%}）。依据：{target_row['source']}。"
        for h, p, ln, c, cv in zip(df["feature_id"], df["pipeline_id"], df["length_m"],
                                   df["coverage"], df["covered_m"], strict=True)]
    df["message_en"] = [
        (f"People-dense HCAs of the district ({ln / 1000:.2f} km) have {c:.1%} video coverage "
         f"({cv / 1000:.2f} km)" if h == "all" else
         f"People-dense HCA {h} (pipeline {p}, {ln:.0f} m) has {c:.1%} video coverage "
         f"({cv:.0f} m)") + f", below the {year} target of {target:.0%} by {target - c:.1%}. "
        f"Rule: {target_row.get('source_en', target_row['source'])}."
        for h, p, ln, c, cv in zip(df["feature_id"], df["pipeline_id"], df["length_m"],
                                   df["coverage"], df["covered_m"], strict=True)]
    return make_findings(df.drop(columns=["geometry", "pipeline_id"]), kind="hca_monitoring",
                         geometry=gpd.GeoSeries(df["geometry"].tolist(), crs=crs), crs=crs,
                         id_columns=["feature_id", "other_id"])


def coverage_share(monitoring: pd.DataFrame | None) -> float | None:
    """The district's one video-coverage figure: covered length / length of the people-dense
    HCAs (rows of :func:`monitoring_coverage`, as the ``hca_monitoring`` finding computes it);
    None when there is nothing to measure."""
    if monitoring is None or not {"covered_m", "length_m"} <= set(monitoring.columns):
        return None
    total = float(monitoring["length_m"].sum())
    return float(monitoring["covered_m"].sum()) / total if total > 0 else None
