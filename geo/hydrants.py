"""Outdoor hydrant checks (GB 50974-2014 7.2.5): protection radius, spacing, faulty hydrants.

* **Radius**: a building is protected when an ``ok`` hydrant lies within
  ``hydrant_radius_m`` (150 m). ``method="straight"`` measures the straight distance from the
  hydrant to the footprint (how the radius is worded); ``method="network"`` the hose path
  along roads and lanes (any edge, one-way or not) from the hydrant to the point of the
  network nearest the building, plus the straight step from there to the footprint. Every
  finding says which distance it used.
* **Spacing**: hydrants along roads no more than ``hydrant_spacing_m`` (120 m) apart, i.e.
  no point of a road is farther than half the spacing (60 m) *along the roads* from an ok
  hydrant within ``hydrant_snap_m`` of the road. Stretches of road beyond that are reported
  with their length and the spacing they imply (twice the largest distance to a hydrant in
  the stretch: exactly the gap between two hydrants on a through road; at a dead end the
  last hydrant must be within 60 m of the end).
* **Faulty**: every hydrant whose ``status`` is ``faulty``.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.spatial import cKDTree

from geo.coverage import substrings
from geo.crs import require_projected, require_same_crs
from geo.errors import CRSError
from geo.findings import empty_findings, make_findings
from geo.fire_params import FireRules
from geo.network import RoadGraph, multi_source_dijkstra

__all__ = [
    "faulty_hydrant_findings",
    "hydrant_distances",
    "hydrant_radius_findings",
    "hydrant_spacing_findings",
    "hydrant_spacing_gaps",
    "ok_hydrants",
]


def ok_hydrants(hydrants: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Hydrants whose ``status`` is ``ok`` (missing status counts as ok, the schema default)."""
    if "status" not in hydrants.columns:
        return hydrants
    status = hydrants["status"].fillna("ok").astype(str).str.strip().str.lower()
    return hydrants[status == "ok"]


def _ids(frame: pd.DataFrame) -> np.ndarray:
    if "id" in frame.columns:
        return frame["id"].astype(str).to_numpy()
    return frame.index.astype(str).to_numpy()


def _undirected(graph: RoadGraph, mask: np.ndarray | None = None) -> sparse.csr_matrix:
    w = graph.length_m.copy()
    if mask is not None:
        w = np.where(mask, w, np.inf)
    m = graph.matrix(w)
    return m.maximum(m.T).tocsr()


def _piece_frame(graph: RoadGraph, edge: np.ndarray, pos: np.ndarray) -> pd.DataFrame:
    """(piece, a, b, L, fpos) for points snapped on ``edge`` at ``pos`` (u→v coordinates):
    the piece's digitised end nodes ``a``/``b`` and the position from ``a``."""
    e = graph.edges
    rev = e["reverse"].to_numpy(dtype=bool)[edge]
    u, v = graph.u[edge], graph.v[edge]
    length = graph.length_m[edge]
    return pd.DataFrame({
        "piece": e["piece"].to_numpy()[edge],
        "a": np.where(rev, v, u),
        "b": np.where(rev, u, v),
        "L": length,
        "fpos": np.where(rev, length - pos, pos),
    })


def _network_distance(graph: RoadGraph, hydrants: gpd.GeoDataFrame,
                      points: np.ndarray, *, rules: FireRules,
                      limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distance along the network, hydrant row, foot point distance) per point."""
    k = len(points)
    dist = np.full(k, np.inf)
    which = np.full(k, -1, dtype=np.int64)
    hs = graph.snap(hydrants.geometry, max_m=rules.hydrant_snap_m)
    hok = hs.edge >= 0
    bs = graph.snap(points)
    if not hok.any() or k == 0:
        return dist, which, bs.distance_m
    hp = _piece_frame(graph, hs.edge[hok], hs.position_m[hok])
    hrow = np.flatnonzero(hok)
    src = np.concatenate([hp["a"].to_numpy(), hp["b"].to_numpy()])
    init = np.concatenate([hp["fpos"].to_numpy(), (hp["L"] - hp["fpos"]).to_numpy()])
    owner = np.concatenate([hrow, hrow])
    res = multi_source_dijkstra(_undirected(graph), src, initial_costs=init, limit=limit)
    node_h = np.where(res.source >= 0, owner[np.maximum(res.source, 0)], -1)
    bok = bs.edge >= 0
    bp = _piece_frame(graph, bs.edge[bok], bs.position_m[bok])
    da = res.cost[bp["a"].to_numpy()] + bp["fpos"].to_numpy()
    db = res.cost[bp["b"].to_numpy()] + (bp["L"] - bp["fpos"]).to_numpy()
    best = np.minimum(da, db)
    bh = np.where(da <= db, node_h[bp["a"].to_numpy()], node_h[bp["b"].to_numpy()])
    # hydrants on the same piece: straight along the piece
    bp["row"] = np.flatnonzero(bok)
    hp["h"] = hrow
    same = bp.merge(hp[["piece", "fpos", "h"]], on="piece", suffixes=("", "_h"))
    if len(same):
        same["d"] = (same["fpos"] - same["fpos_h"]).abs()
        m = same.sort_values("d").drop_duplicates("row")
        pos_in = np.searchsorted(bp["row"].to_numpy(), m["row"].to_numpy())
        closer = m["d"].to_numpy() < best[pos_in]
        best[pos_in[closer]] = m["d"].to_numpy()[closer]
        bh[pos_in[closer]] = m["h"].to_numpy()[closer]
    dist[bok] = best
    which[bok] = np.where(np.isfinite(best), bh, -1)
    return dist, which, bs.distance_m


def _nearest_point(polys: np.ndarray, points: np.ndarray, k: int = 4
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Exact (distance, point row) of the nearest point to each footprint.

    The ``k`` points nearest each centroid (KD-tree) are measured exactly; the answer is
    proven when it is no farther than the k-th centroid distance minus the footprint's
    radius around its centroid; the rest go through an STRtree nearest query.
    """
    pxy = shapely.get_coordinates(points)
    k = min(k, len(pxy))
    cxy = shapely.get_coordinates(shapely.centroid(polys))
    vxy, vi = shapely.get_coordinates(polys, return_index=True)
    radius = np.zeros(len(polys))
    np.maximum.at(radius, vi, np.hypot(*(vxy - cxy[vi]).T))
    dk, ik = cKDTree(pxy).query(cxy, k=k)
    dk, ik = dk.reshape(len(polys), k), ik.reshape(len(polys), k)
    exact = shapely.distance(np.repeat(polys, k), points[ik.ravel()]).reshape(len(polys), k)
    best = np.argmin(exact, axis=1)
    rows = np.arange(len(polys))
    dist, which = exact[rows, best], ik[rows, best].astype(np.int64)
    unsure = np.flatnonzero((dist > dk[:, -1] - radius) & (k < len(pxy)))
    if len(unsure):
        (bi, hi), d = shapely.STRtree(points).query_nearest(
            polys[unsure], return_distance=True, all_matches=False)
        dist[unsure[bi]], which[unsure[bi]] = d, hi
    return dist, which


def hydrant_distances(
    buildings: gpd.GeoDataFrame,
    hydrants: gpd.GeoDataFrame,
    *,
    rules: FireRules,
    graph: RoadGraph | None = None,
    method: str | None = None,
) -> gpd.GeoDataFrame:
    """Per building: ``hydrant_distance_m`` to the nearest ok hydrant, ``hydrant_id``,
    ``hydrant_method`` and ``hydrant_covered`` (distance <= ``hydrant_radius_m``).

    ``method`` defaults to the rules' ``hydrant_distance``; ``"network"`` needs ``graph``.
    Distances beyond the radius are exact for ``straight``; for ``network`` the search
    stops at twice the radius (inf beyond).
    """
    require_projected(buildings, "buildings")
    require_projected(hydrants, "hydrants")
    if buildings.crs != hydrants.crs:
        raise CRSError(f"buildings ({buildings.crs}) and hydrants ({hydrants.crs}) are in "
                       "different CRSs; project both with geo.crs.to_analysis")
    method = method or rules.hydrant_distance
    if method not in ("straight", "network"):
        raise ValueError(f"method is {method!r}; expected 'straight' or 'network'")
    ok = ok_hydrants(hydrants).reset_index(drop=True)
    hid = _ids(ok)
    geoms = buildings.geometry.values
    n = len(geoms)
    dist = np.full(n, np.inf)
    which = np.full(n, -1, dtype=np.int64)
    if len(ok) and n:
        if method == "straight":
            dist, which = _nearest_point(np.asarray(geoms, dtype=object),
                                         np.asarray(ok.geometry.values, dtype=object))
        else:
            if graph is None:
                raise ValueError("method 'network' needs the road graph (graph=...)")
            require_same_crs(buildings, graph.crs, "buildings", "the road network")
            anchor = shapely.point_on_surface(geoms)
            net, which, foot = _network_distance(graph, ok, anchor, rules=rules,
                                                 limit=2 * rules.hydrant_radius_m)
            # the straight step from the foot point to the footprint
            bs = graph.snap(anchor)
            step = np.zeros(n)
            has = bs.edge >= 0
            step[has] = shapely.distance(shapely.points(bs.x[has], bs.y[has]), geoms[has])
            dist = net + step
            del foot
    out = buildings.copy()
    out["hydrant_distance_m"] = dist
    hyd_id = np.full(n, None, dtype=object)
    hyd_id[which >= 0] = hid[which[which >= 0]]
    out["hydrant_id"] = hyd_id
    out["hydrant_method"] = method
    # within a micrometre of the radius is at the radius (不应超过 150 m: 150.0 m is covered)
    out["hydrant_covered"] = dist <= rules.hydrant_radius_m + 1e-6
    return out


def hydrant_radius_findings(distances: gpd.GeoDataFrame, *, rules: FireRules) -> gpd.GeoDataFrame:
    """Findings ``building_beyond_hydrant_radius`` from :func:`hydrant_distances`."""
    bad = ~distances["hydrant_covered"].to_numpy(dtype=bool)
    crs = distances.crs
    if not bad.any():
        return empty_findings(crs)
    src = rules.source("hydrant_radius_m")
    d = distances.loc[bad]
    bid = _ids(d)
    dist = d["hydrant_distance_m"].to_numpy(dtype=float)
    method = d["hydrant_method"].astype(str).to_numpy()
    r = rules.hydrant_radius_m
    how_zh = {"straight": "直线距离", "network": "沿路网距离"}
    how_en = {"straight": "straight-line distance", "network": "network distance"}
    msg_zh = [f"建筑 {i} 距最近的完好室外消火栓{how_zh[m]} "
              + (f"{x:.1f} m" if np.isfinite(x) else f"超过 {2 * r:g} m")
              + f"，超过保护半径 {r:g} m" + (f" {x - r:.1f} m" if np.isfinite(x) else "")
              + f"（{src}）"
              for i, x, m in zip(bid, dist, method, strict=True)]
    msg_en = [f"building {i}: the nearest working hydrant is "
              + (f"{x:.1f} m" if np.isfinite(x) else f"more than {2 * r:g} m")
              + f" away ({how_en[m]}); protection radius {r:g} m"
              + (f", exceeded by {x - r:.1f} m" if np.isfinite(x) else "") + f" ({src})"
              for i, x, m in zip(bid, dist, method, strict=True)]
    df = pd.DataFrame({
        "severity": "medium",
        "layer": "buildings",
        "feature_id": bid,
        "other_layer": "hydrants",
        "other_id": d["hydrant_id"].to_numpy(dtype=object),
        "rule_id": "fire.hydrant_radius_m",
        "rule_source": src,
        "message_zh": msg_zh,
        "message_en": msg_en,
        "distance_m": np.where(np.isfinite(dist), dist, np.nan),
        "required_m": r,
        "shortfall_m": np.where(np.isfinite(dist), dist - r, np.nan),
        "distance_method": method,
    })
    return make_findings(df, kind="building_beyond_hydrant_radius", geometry=d.geometry.values,
                         crs=crs, id_columns=["feature_id"])


def hydrant_spacing_gaps(
    graph: RoadGraph,
    hydrants: gpd.GeoDataFrame,
    *,
    rules: FireRules,
    roads_layer: str = "roads",
) -> gpd.GeoDataFrame:
    """Stretches of road farther than ``hydrant_spacing_m / 2`` along the roads from every ok
    hydrant within ``hydrant_snap_m`` of a road. Only roads of ``hydrant_road_classes`` (no
    class: local) are checked and carry hydrants.

    Returns one row per stretch: ``length_m``, ``max_distance_m`` (largest distance to a
    hydrant along the roads; inf when the road network part has no hydrant),
    ``spacing_m`` (= 2 × max_distance_m), ``road_ids`` (``;``-joined) and the geometry.
    """
    require_projected(hydrants, "hydrants")
    require_same_crs(hydrants, graph.crs, "hydrants", "the road network")
    crs = graph.crs
    cols: dict[str, list[object]] = {"length_m": [], "max_distance_m": [], "spacing_m": [],
                                     "road_ids": []}
    e = graph.edges
    road = e["source_layer"].to_numpy(dtype=object) == roads_layer
    if "road_class" in e.columns:
        cls = e["road_class"].fillna("local").astype(str).to_numpy()
        road &= np.isin(cls, list(rules.hydrant_road_classes))
    if not road.any():
        return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    half = rules.hydrant_spacing_m / 2.0
    ok = ok_hydrants(hydrants)
    hs = graph.snap(ok.geometry, max_m=rules.hydrant_snap_m, mask=road)
    hok = hs.edge >= 0
    hp = _piece_frame(graph, hs.edge[hok], hs.position_m[hok])
    cost = np.full(graph.n_nodes, np.inf)
    if len(hp):
        src = np.concatenate([hp["a"].to_numpy(), hp["b"].to_numpy()])
        init = np.concatenate([hp["fpos"].to_numpy(), (hp["L"] - hp["fpos"]).to_numpy()])
        cost = multi_source_dijkstra(_undirected(graph, road), src, initial_costs=init).cost
    # road pieces in digitised direction
    first = road & ~e["piece"].duplicated(keep="first").to_numpy()
    pe = np.flatnonzero(first)
    pieces = _piece_frame(graph, pe, np.zeros(len(pe)))
    pieces["edge"] = pe
    # breakpoints per piece: its ends (node costs) and the hydrants on it (cost 0)
    bp = pd.concat([
        pd.DataFrame({"piece": pieces["piece"], "x": 0.0, "d": cost[pieces["a"].to_numpy()]}),
        pd.DataFrame({"piece": pieces["piece"], "x": pieces["L"],
                      "d": cost[pieces["b"].to_numpy()]}),
        pd.DataFrame({"piece": hp["piece"], "x": hp["fpos"], "d": 0.0}),
    ], ignore_index=True)
    bp = bp[bp["piece"].isin(pieces["piece"])].sort_values(["piece", "x", "d"], kind="stable")
    p = bp["piece"].to_numpy()
    x = bp["x"].to_numpy(dtype=float)
    d = bp["d"].to_numpy(dtype=float)
    same = p[1:] == p[:-1]
    a, b = x[:-1][same], x[1:][same]
    da, db = d[:-1][same], d[1:][same]
    piece_of = p[:-1][same]
    with np.errstate(invalid="ignore"):
        lo = np.where(np.isfinite(da), a + (half - da), a)
        hi = np.where(np.isfinite(db), b - (half - db), b)
        peak = np.where(np.isfinite(da) & np.isfinite(db), (da + db + (b - a)) / 2.0,
                        np.inf)
    lo, hi = np.maximum(lo, a), np.minimum(hi, b)
    gap = (hi - lo > 1e-9) & (peak > half + 1e-9)
    if not gap.any():
        return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    edge_of_piece = pd.Series(pieces["edge"].to_numpy(), index=pieces["piece"].to_numpy())
    ge = edge_of_piece.reindex(piece_of[gap]).to_numpy()
    rev = e["reverse"].to_numpy(dtype=bool)[ge]
    geom = e.geometry.values[ge].copy()
    geom[rev] = shapely.reverse(geom[rev])
    parts = substrings(geom, lo[gap], hi[gap])
    src_id = e["source_id"].astype(str).to_numpy()[ge]
    peaks = peak[gap]
    merged = shapely.line_merge(shapely.union_all(parts))
    stretches = np.asarray(shapely.get_parts(merged))
    # attach pieces to the stretch that contains them
    si, pi = shapely.STRtree(stretches).query(
        shapely.line_interpolate_point(parts, 0.5, normalized=True), predicate="dwithin",
        distance=1e-3)
    order = np.unique(pi, return_index=True)[1]
    si, pi = si[order], pi[order]
    tab = pd.DataFrame({"s": si, "peak": peaks[pi], "road": src_id[pi]})
    agg = tab.groupby("s").agg(max_distance_m=("peak", "max"),
                               road_ids=("road", lambda r: ";".join(sorted(set(r)))))
    agg = agg.reindex(np.arange(len(stretches)))
    agg["road_ids"] = agg["road_ids"].fillna("")
    out = gpd.GeoDataFrame({
        "length_m": shapely.length(stretches),
        "max_distance_m": agg["max_distance_m"].to_numpy(dtype=float),
        "spacing_m": 2.0 * agg["max_distance_m"].to_numpy(dtype=float),
        "road_ids": agg["road_ids"].to_numpy(dtype=object),
    }, geometry=gpd.GeoSeries(stretches, crs=crs), crs=crs)
    return out.sort_values(["road_ids", "length_m"], ascending=[True, False]).reset_index(drop=True)


def hydrant_spacing_findings(gaps: gpd.GeoDataFrame, *, rules: FireRules) -> gpd.GeoDataFrame:
    """Findings ``hydrant_spacing_gap`` from :func:`hydrant_spacing_gaps` (one per stretch;
    the id is the roads plus the stretch's first coordinate rounded to the metre)."""
    crs = gaps.crs
    if len(gaps) == 0:
        return empty_findings(crs)
    src = rules.source("hydrant_spacing_m")
    sp = gaps["spacing_m"].to_numpy(dtype=float)
    length = gaps["length_m"].to_numpy(dtype=float)
    roads = gaps["road_ids"].astype(str).to_numpy()
    start = shapely.get_coordinates(shapely.get_point(gaps.geometry.values, 0))
    key = [f"{r}@{x:.0f},{y:.0f}" for r, (x, y) in zip(roads, start, strict=True)]
    s = rules.hydrant_spacing_m
    msg_zh = [f"道路 {r} 有 {L:.1f} m 路段距最近完好消火栓超过 {s / 2:g} m"
              + (f"，消火栓间距约 {x:.1f} m，超过 {s:g} m" if np.isfinite(x) else "，该路段无消火栓")
              + f"（{src}）" for r, L, x in zip(roads, length, sp, strict=True)]
    msg_en = [f"road {r}: {L:.1f} m of road lie more than {s / 2:g} m from a working hydrant"
              + (f"; hydrant spacing about {x:.1f} m > {s:g} m" if np.isfinite(x)
                 else "; no hydrant on this part of the network")
              + f" ({src})" for r, L, x in zip(roads, length, sp, strict=True)]
    df = pd.DataFrame({
        "severity": "medium",
        "layer": "roads",
        "feature_id": [r.split(";")[0] for r in roads],
        "rule_id": "fire.hydrant_spacing_m",
        "rule_source": src,
        "message_zh": msg_zh,
        "message_en": msg_en,
        "road_ids": roads,
        "stretch_key": key,
        "length_m": length,
        "spacing_m": np.where(np.isfinite(sp), sp, np.nan),
        "required_m": s,
    })
    return make_findings(df, kind="hydrant_spacing_gap", geometry=gaps.geometry.values, crs=crs,
                         id_columns=["stretch_key"])


def faulty_hydrant_findings(hydrants: gpd.GeoDataFrame, *, rules: FireRules) -> gpd.GeoDataFrame:
    """Findings ``hydrant_faulty``: every hydrant whose ``status`` is ``faulty``."""
    crs = hydrants.crs
    if "status" not in hydrants.columns:
        return empty_findings(crs)
    bad = hydrants["status"].astype(str).str.strip().str.lower().to_numpy() == "faulty"
    if not bad.any():
        return empty_findings(crs)
    h = hydrants.loc[bad]
    hid = _ids(h)
    src = rules.source("hydrant_radius_m")
    df = pd.DataFrame({
        "severity": "medium",
        "layer": "hydrants",
        "feature_id": hid,
        "rule_id": "fire.hydrant_status",
        "rule_source": src,
        "message_zh": [f"室外消火栓 {i} 故障，需维修（故障期间不计入保护范围；{src}）" for i in hid],
        "message_en": [f"hydrant {i} is faulty and must be repaired (it does not count for "
                       f"the protection radius meanwhile; {src})" for i in hid],
    })
    return make_findings(df, kind="hydrant_faulty", geometry=h.geometry.values, crs=crs,
                         id_columns=["feature_id"])
