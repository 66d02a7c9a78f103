"""Fire-station and micro-station reach over roads and fire lanes, in one multi-source pass.

:func:`build_fire_network` joins roads and fire lanes into one :class:`geo.network.RoadGraph`
and marks every directed edge with who may use it and how fast:

* **engine** edges: roads (narrower or lower than 4.0 m when ``width_m``/``max_height_m`` say
  so are excluded) and *qualified* fire lanes (:func:`geo.fire_lanes.qualify_lanes`); speed
  ``engine_speed_factor`` × the road's ``speed_kmh``, else its class speed
  (``fire_engine_speed`` rules), lanes at ``lane_speed_kmh``;
* **micro** edges: every road and lane a crew on foot / light vehicle can pass (narrow lanes
  included), at ``micro_speed_kmh`` (capped by the engine speed).

:func:`reach` runs one multi-source Dijkstra from all stations of a kind: the cost of a node
is turnout + drive time from the station that gets there first. :func:`building_coverage`
then decides per building whether a vehicle can *stop* on a usable edge within ``hose_m`` of
the footprint within the time limit (5 min for stations, 3 min for micro stations): the
reached part of every edge (whole edges and the partly reached frontier) is cut out exactly
and buildings are matched to it with one STRtree ``dwithin`` query — no per-building routing.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import require_projected, require_same_crs
from geo.findings import empty_findings, make_findings
from geo.fire_lanes import as_bool, qualify_lanes
from geo.fire_params import FireRules
from geo.network import RoadGraph, build_graph, multi_source_dijkstra

__all__ = [
    "Reach",
    "build_fire_network",
    "building_coverage",
    "coverage_findings",
    "node_line_ends",
    "reach",
    "reached_pieces",
    "substrings",
]

_KMH = 1000.0 / 3600.0  # km/h → m/s


# -- network ---------------------------------------------------------------------------------
def node_line_ends(geoms: np.ndarray, *, snap_m: float) -> np.ndarray:
    """Insert a vertex into a line wherever another line's end lies within ``snap_m`` of
    its interior, so T-junctions become shared vertices (``build_graph`` then joins them).

    ``geoms`` are LineStrings; returns new LineStrings aligned with them. Crossings without
    an end on the other line (bridges) stay unconnected.
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    if n == 0:
        return geoms
    starts = shapely.get_point(geoms, 0)
    ends = shapely.get_point(geoms, -1)
    pts = np.concatenate([starts, ends])
    owner = np.concatenate([np.arange(n), np.arange(n)])
    pi, li = shapely.STRtree(geoms).query(pts, predicate="dwithin", distance=snap_m)
    keep = li != owner[pi]
    pi, li = pi[keep], li[keep]
    if len(pi) == 0:
        return geoms
    pos = shapely.line_locate_point(geoms[li], pts[pi])
    length = shapely.length(geoms[li])
    inner = (pos > 1e-6) & (pos < length - 1e-6)
    pi, li, pos = pi[inner], li[inner], pos[inner]
    if len(pi) == 0:
        return geoms
    new_xy = shapely.get_coordinates(shapely.line_interpolate_point(geoms[li], pos))
    xy, line_of = shapely.get_coordinates(geoms, return_index=True)
    step = np.zeros(len(xy))
    step[1:] = np.hypot(*(xy[1:] - xy[:-1]).T)
    step[1:][line_of[1:] != line_of[:-1]] = 0.0
    cum = np.cumsum(step)
    first = np.searchsorted(line_of, np.arange(n))
    cum -= cum[first][line_of]
    all_line = np.concatenate([line_of, li])
    all_cum = np.concatenate([cum, pos])
    all_xy = np.concatenate([xy, new_xy])
    is_new = np.concatenate([np.zeros(len(xy), bool), np.ones(len(li), bool)])
    order = np.lexsort((is_new, all_cum, all_line))
    all_line, all_cum, all_xy = all_line[order], all_cum[order], all_xy[order]
    dup = np.zeros(len(all_line), dtype=bool)
    dup[1:] = (all_line[1:] == all_line[:-1]) & (np.abs(all_cum[1:] - all_cum[:-1]) < 1e-9)
    all_line, all_xy = all_line[~dup], all_xy[~dup]
    return shapely.linestrings(all_xy, indices=all_line)


def _single_lines(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    g = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)]
    return g.explode(index_parts=False).reset_index(drop=True)


def build_fire_network(
    roads: gpd.GeoDataFrame,
    lanes: gpd.GeoDataFrame | None,
    *,
    rules: FireRules,
) -> RoadGraph:
    """The combined road + fire-lane graph with per-edge ``engine_ok``, ``micro_ok``,
    ``engine_s`` and ``micro_s`` (travel seconds; inf where the edge is not usable).

    Both layers in the same projected CRS (metres). Lane ends are noded onto the lines they
    touch (within ``snap_m``); lanes are two-way. Lane qualification columns (``narrow``,
    ``low``, ``obstructed``) are kept on lane edges.
    """
    require_projected(roads, "roads")
    parts = []
    r = _single_lines(roads).copy()
    r["source_layer"] = "roads"
    parts.append(r)
    if lanes is not None and len(lanes):
        require_projected(lanes, "fire_lanes")
        if lanes.crs != roads.crs:
            raise ValueError("roads and fire_lanes must be in the same CRS")
        q = _single_lines(qualify_lanes(lanes, rules=rules)).copy()
        q["source_layer"] = "fire_lanes"
        q["oneway"] = False
        parts.append(q.rename(columns={"length_m": "lane_length_m"}))
    lines = pd.concat(parts, ignore_index=True)
    lines = gpd.GeoDataFrame(lines, geometry=lines.geometry.name, crs=roads.crs)
    lines = lines.set_geometry(node_line_ends(lines.geometry.values, snap_m=rules.snap_m))
    g = build_graph(lines, id_column="id", oneway_column="oneway", snap_m=rules.snap_m,
                    source_layer="roads")
    _edge_costs(g, rules)
    return g


def _edge_costs(g: RoadGraph, rules: FireRules) -> None:
    e = g.edges
    is_lane = e["source_layer"].to_numpy(dtype=object) == "fire_lanes"
    width = pd.to_numeric(e.get("width_m", pd.Series(np.nan, index=e.index)),
                          errors="coerce").to_numpy(dtype=float)
    # roads: an explicit width / height limit below the lane minimum bars engines
    road_height = pd.to_numeric(e.get("max_height_m", pd.Series(np.nan, index=e.index)),
                                errors="coerce").to_numpy(dtype=float)
    road_ok = ~(width < rules.lane_min_width_m) & ~(road_height < rules.lane_min_height_m)
    lane_engine = as_bool(e.get("engine_ok"), True, e.index).to_numpy()
    lane_micro = as_bool(e.get("micro_ok"), True, e.index).to_numpy()
    engine_ok = np.where(is_lane, lane_engine, road_ok)
    micro_ok = np.where(is_lane, lane_micro, True)
    speed_attr = pd.to_numeric(e.get("speed_kmh", pd.Series(np.nan, index=e.index)),
                               errors="coerce").to_numpy(dtype=float)
    cls = (e["road_class"].fillna("local").astype(str) if "road_class" in e.columns
           else pd.Series("local", index=e.index))
    default_local = rules.engine_speeds_kmh.get("local", 25.0)
    cls_speed = cls.map(rules.engine_speeds_kmh).fillna(default_local).to_numpy(dtype=float)
    road_speed = np.where(np.isfinite(speed_attr) & (speed_attr > 0),
                          speed_attr * rules.engine_speed_factor, cls_speed)
    engine_kmh = np.where(is_lane, rules.lane_speed_kmh, road_speed)
    micro_kmh = np.minimum(rules.micro_speed_kmh, engine_kmh)
    length = e["length_m"].to_numpy(dtype=float)
    e["is_lane"] = is_lane
    e["engine_ok"] = engine_ok
    e["micro_ok"] = micro_ok
    e["engine_kmh"] = engine_kmh
    e["micro_kmh"] = micro_kmh
    e["engine_s"] = np.where(engine_ok, length / (engine_kmh * _KMH), np.inf)
    e["micro_s"] = np.where(micro_ok, length / (micro_kmh * _KMH), np.inf)


# -- reach -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reach:
    """Result of :func:`reach` for one vehicle kind.

    ``cost_s`` per node (turnout + travel, inf unreached), ``station`` per node (row position
    in ``stations``, -1 unreached); ``seconds``/``speed_ms`` per edge (inf where unusable);
    ``stations`` the stations used with their snap (``edge``, ``position_m``,
    ``snap_distance_m``, ``turnout_s``, ``start_s``); ``mode`` ``"engine"`` or ``"micro"``.
    """

    mode: str
    cost_s: np.ndarray
    station: np.ndarray
    seconds: np.ndarray
    speed_ms: np.ndarray
    stations: gpd.GeoDataFrame


def _turnout(stations: gpd.GeoDataFrame, default: float) -> np.ndarray:
    t = pd.to_numeric(stations.get("turnout_s", pd.Series(np.nan, index=stations.index)),
                      errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(t) & (t >= 0), t, default)


def reach(
    graph: RoadGraph,
    stations: gpd.GeoDataFrame,
    *,
    rules: FireRules,
    mode: str = "engine",
    limit_s: float = np.inf,
) -> Reach:
    """Multi-source Dijkstra from all ``stations`` over the edges usable in ``mode``.

    ``mode="engine"``: stations of kind ``station`` (all rows when there is no ``kind``
    column) on engine edges; ``mode="micro"``: kind ``micro_station`` on micro edges. A
    station is snapped to the nearest usable edge within ``station_snap_m`` and starts
    with its turnout (``turnout_s``, default from the rules) plus the time from its foot
    point to each end of that edge.
    """
    if mode not in ("engine", "micro"):
        raise ValueError(f"mode is {mode!r}; expected 'engine' or 'micro'")
    require_projected(stations, "fire_stations")
    require_same_crs(stations, graph.crs, "fire_stations", "the road network")
    kind = "station" if mode == "engine" else "micro_station"
    st = stations
    if "kind" in st.columns:
        st = st[st["kind"].astype(str) == kind]
    st = st.copy()
    e = graph.edges
    seconds = e[f"{mode}_s"].to_numpy(dtype=float)
    speed = e[f"{mode}_kmh"].to_numpy(dtype=float) * _KMH
    speed = np.where(np.isfinite(seconds), speed, 0.0)
    default = rules.station_turnout_s if mode == "engine" else rules.micro_turnout_s
    st["turnout_s"] = _turnout(st, default)
    snap = graph.snap(st.geometry, max_m=rules.station_snap_m, mask=np.isfinite(seconds))
    st["edge"] = snap.edge
    st["position_m"] = snap.position_m
    st["snap_distance_m"] = snap.distance_m
    n = graph.n_nodes
    ok = snap.edge >= 0
    srcs, init, owner = [], [], []
    if ok.any():
        idx = np.flatnonzero(ok)
        ed = snap.edge[ok]
        pos = snap.position_m[ok]
        length = graph.length_m[ed]
        t0 = st["turnout_s"].to_numpy()[ok]
        v = speed[ed]
        # forward to v
        srcs.append(graph.v[ed])
        init.append(t0 + (length - pos) / v)
        owner.append(idx)
        # backward to u through the twin edge (two-way pieces)
        tw = graph.twin[ed]
        back = (tw >= 0) & np.isfinite(seconds[np.maximum(tw, 0)])
        srcs.append(graph.u[ed][back])
        init.append(t0[back] + pos[back] / v[back])
        owner.append(idx[back])
    st["start_s"] = st["turnout_s"]
    if srcs:
        s = np.concatenate(srcs)
        i0 = np.concatenate(init)
        own = np.concatenate(owner)
        res = multi_source_dijkstra(graph.matrix(seconds), s, initial_costs=i0,
                                    limit=limit_s)
        cost = res.cost
        station = np.where(res.source >= 0, own[np.maximum(res.source, 0)], -1)
    else:
        cost = np.full(n, np.inf)
        station = np.full(n, -1, dtype=np.int64)
    return Reach(mode=mode, cost_s=cost, station=station.astype(np.int64), seconds=seconds,
                 speed_ms=speed, stations=st.reset_index(drop=True))


# -- reached parts of edges ---------------------------------------------------------------------
def substrings(lines: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Vectorised ``shapely.ops.substring`` for LineStrings with ``0 <= start < end <= length``."""
    lines = np.asarray(lines, dtype=object)
    k = len(lines)
    if k == 0:
        return np.empty(0, dtype=object)
    start = np.asarray(start, dtype=float)
    end = np.asarray(end, dtype=float)
    xy, li = shapely.get_coordinates(lines, return_index=True)
    step = np.zeros(len(xy))
    step[1:] = np.hypot(*(xy[1:] - xy[:-1]).T)
    step[1:][li[1:] != li[:-1]] = 0.0
    cum = np.cumsum(step)
    first = np.searchsorted(li, np.arange(k))
    cum -= cum[first][li]
    inside = (cum > start[li]) & (cum < end[li])
    p0 = shapely.get_coordinates(shapely.line_interpolate_point(lines, start))
    p1 = shapely.get_coordinates(shapely.line_interpolate_point(lines, end))
    all_line = np.concatenate([np.arange(k), li[inside], np.arange(k)])
    all_key = np.concatenate([start, cum[inside], end])
    rank = np.concatenate([np.zeros(k), np.ones(int(inside.sum())), np.full(k, 2.0)])
    all_xy = np.concatenate([p0, xy[inside], p1])
    order = np.lexsort((rank, all_key, all_line))
    return shapely.linestrings(all_xy[order], indices=all_line[order])


def reached_pieces(graph: RoadGraph, r: Reach, limit_s: float) -> gpd.GeoDataFrame:
    """The parts of usable edges reachable within ``limit_s``: one row per reached
    interval with ``edge``, ``from_m``/``to_m`` along the edge, ``t0_s`` (time at
    ``from_m``), ``speed_ms``, ``station`` and the cut geometry (oriented along travel)."""
    e = graph.edges
    length = graph.length_m
    usable = np.isfinite(r.seconds)
    cu = r.cost_s[graph.u]
    ok = usable & (cu <= limit_s)
    eid = np.flatnonzero(ok)
    a = np.zeros(len(eid))
    t0 = cu[eid]
    stn = r.station[graph.u[eid]]
    # stations part-way along an edge start there
    st = r.stations
    sok = st["edge"].to_numpy() >= 0
    if sok.any():
        se = st["edge"].to_numpy()[sok]
        spos = st["position_m"].to_numpy()[sok]
        st0 = st["start_s"].to_numpy()[sok]
        sidx = np.flatnonzero(sok)
        tw = graph.twin[se]
        has_tw = (tw >= 0) & usable[np.maximum(tw, 0)]
        eid = np.concatenate([eid, se, tw[has_tw]])
        a = np.concatenate([a, spos, length[tw[has_tw]] - spos[has_tw]])
        t0 = np.concatenate([t0, st0, st0[has_tw]])
        stn = np.concatenate([stn, sidx, sidx[has_tw]])
        keep = t0 <= limit_s
        eid, a, t0, stn = eid[keep], a[keep], t0[keep], stn[keep]
    v = r.speed_ms[eid]
    b = np.minimum(length[eid], a + (limit_s - t0) * v)
    keep = b > a + 1e-9
    eid, a, b, t0, v, stn = eid[keep], a[keep], b[keep], t0[keep], v[keep], stn[keep]
    full = (a <= 0) & (b >= length[eid])
    geoms = np.empty(len(eid), dtype=object)
    geoms[full] = e.geometry.values[eid[full]]
    if (~full).any():
        geoms[~full] = substrings(e.geometry.values[eid[~full]], a[~full], b[~full])
    return gpd.GeoDataFrame({"edge": eid, "from_m": a, "to_m": b, "t0_s": t0, "speed_ms": v,
                             "station": stn}, geometry=gpd.GeoSeries(geoms, crs=graph.crs),
                            crs=graph.crs)


@dataclass(frozen=True)
class _Pieces:
    """Undirected pieces of the graph in their digitised direction: geometry, length, end
    nodes ``a``/``b`` and the forward / backward directed edge (-1 when one-way)."""

    geom: np.ndarray
    length: np.ndarray
    a: np.ndarray
    b: np.ndarray
    fwd: np.ndarray
    bwd: np.ndarray
    edge_piece: np.ndarray
    edge_reverse: np.ndarray


def _piece_table(graph: RoadGraph) -> _Pieces:
    e = graph.edges
    piece = e["piece"].to_numpy(dtype=np.int64)
    rev = e["reverse"].to_numpy(dtype=bool)
    n = int(piece.max()) + 1 if len(piece) else 0
    ids = np.arange(len(piece))
    fwd = np.full(n, -1, dtype=np.int64)
    bwd = np.full(n, -1, dtype=np.int64)
    fwd[piece[~rev]] = ids[~rev]
    bwd[piece[rev]] = ids[rev]
    one = np.where(fwd >= 0, fwd, bwd)
    has = one >= 0
    geom = np.empty(n, dtype=object)
    geom[has] = e.geometry.values[one[has]]
    flip = has & (fwd < 0)
    if flip.any():
        geom[flip] = shapely.reverse(geom[flip])
    u, v = graph.u, graph.v
    a = np.where(fwd >= 0, u[np.maximum(fwd, 0)], v[np.maximum(bwd, 0)])
    b = np.where(fwd >= 0, v[np.maximum(fwd, 0)], u[np.maximum(bwd, 0)])
    length = np.where(has, graph.length_m[np.maximum(one, 0)], 0.0)
    return _Pieces(geom=geom, length=length, a=a, b=b, fwd=fwd, bwd=bwd, edge_piece=piece,
                   edge_reverse=rev)


def _sources(pt: _Pieces, r: Reach, limit_s: float) -> pd.DataFrame:
    """Where vehicles enter each piece within ``limit_s``: ``piece``, origin ``o`` (along the
    piece), direction ``dir`` (+1 towards ``b``), start time ``t0``, speed ``v``, ``station``."""
    usable = np.isfinite(r.seconds)
    frames = []
    for edge, node, o_at_b, sign in ((pt.fwd, pt.a, False, 1), (pt.bwd, pt.b, True, -1)):
        ok = edge >= 0
        ok[ok] = usable[edge[ok]]
        ok[ok] = r.cost_s[node[ok]] <= limit_s
        pc = np.flatnonzero(ok)
        frames.append(pd.DataFrame({
            "piece": pc, "o": pt.length[pc] if o_at_b else np.zeros(len(pc)),
            "dir": sign, "t0": r.cost_s[node[pc]], "v": r.speed_ms[edge[pc]],
            "station": r.station[node[pc]]}))
    st = r.stations
    sok = np.flatnonzero(st["edge"].to_numpy() >= 0)
    if len(sok):
        # stations part-way along an edge start there, in both usable directions
        e_st = st["edge"].to_numpy()[sok]
        pos = st["position_m"].to_numpy()[sok]
        t0 = st["start_s"].to_numpy()[sok]
        pc = pt.edge_piece[e_st]
        along = np.where(pt.edge_reverse[e_st], pt.length[pc] - pos, pos)
        for sign, edge in ((1, pt.fwd[pc]), (-1, pt.bwd[pc])):
            ok = (edge >= 0) & (t0 <= limit_s)
            ok[ok] = usable[edge[ok]]
            frames.append(pd.DataFrame({
                "piece": pc[ok], "o": along[ok], "dir": sign, "t0": t0[ok],
                "v": r.speed_ms[edge[ok]], "station": sok[ok]}))
    return pd.concat(frames, ignore_index=True)


def _earliest(pt: _Pieces, pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
              buildings: np.ndarray, r: Reach, limit_s: float,
              hose_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(covered, time, station) per building within ``limit_s``.

    ``pairs`` = (building, piece, s): every building-piece pair within ``hose_m`` and the
    position of the building's anchor projected on the piece. A pair counts when the part of
    the piece reached within the limit is within ``hose_m`` of the footprint: at once when
    the whole piece is reached, else checked exactly on the cut part (frontier pieces only).
    The time is taken at the reached point nearest the anchor's projection.
    """
    nb = len(buildings)
    t = np.full(nb, np.inf)
    stn = np.full(nb, -1, dtype=np.int64)
    bi, pi, s = pairs
    src = _sources(pt, r, limit_s)
    if len(bi) == 0 or len(src) == 0:
        return np.zeros(nb, dtype=bool), t, stn
    src = src.sort_values("piece", kind="stable", ignore_index=True)
    sp = src["piece"].to_numpy()
    npieces = len(pt.length)
    count = np.bincount(sp, minlength=npieces)
    first = np.zeros(npieces, dtype=np.int64)
    first[1:] = np.cumsum(count)[:-1]
    k = count[pi]
    row = np.repeat(np.arange(len(bi)), k)
    offs = np.arange(len(row)) - np.repeat(np.cumsum(k) - k, k)
    j = first[pi][row] + offs
    o = src["o"].to_numpy()[j]
    d = src["dir"].to_numpy()[j]
    t0 = src["t0"].to_numpy()[j]
    v = src["v"].to_numpy()[j]
    L = pt.length[pi[row]]
    run = np.maximum(limit_s - t0, 0.0) * v
    lo = np.where(d > 0, o, np.maximum(0.0, o - run))
    hi = np.where(d > 0, np.minimum(L, o + run), o)
    full = (lo <= 1e-9) & (hi >= L - 1e-9)
    tt = t0 + np.abs(np.clip(s[row], lo, hi) - o) / v
    valid = full.copy()
    # the exact check is needed only where a partly reached piece could do better than the
    # earliest time of a wholly reached piece of the same pair
    best_full = np.full(len(bi), np.inf)
    np.minimum.at(best_full, row[full], tt[full])
    part = np.flatnonzero(~full & (tt < best_full[row]))
    if len(part):
        g = pt.geom[pi[row[part]]]
        a, b = lo[part], hi[part]
        seg = np.empty(len(part), dtype=object)
        line = b - a > 1e-9
        if line.any():
            seg[line] = substrings(g[line], a[line], b[line])
        if (~line).any():
            seg[~line] = shapely.line_interpolate_point(g[~line], a[~line])
        valid[part] = shapely.dwithin(seg, buildings[bi[row[part]]], hose_m)
    sel = np.flatnonzero(valid)
    if len(sel) == 0:
        return np.zeros(nb, dtype=bool), t, stn
    b_sel = bi[row[sel]]
    order = np.lexsort((tt[sel], b_sel))
    b_sel, tt_sel, j_sel = b_sel[order], tt[sel][order], j[sel][order]
    head = np.ones(len(b_sel), dtype=bool)
    head[1:] = b_sel[1:] != b_sel[:-1]
    t[b_sel[head]] = tt_sel[head]
    stn[b_sel[head]] = src["station"].to_numpy()[j_sel[head]]
    return np.isfinite(t), t, stn


def _pairs(pt: _Pieces, buildings: np.ndarray, anchor: np.ndarray,
           hose_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (building, piece) within ``hose_m`` and the anchor's position on the piece."""
    has = np.flatnonzero(pt.length > 0)
    if len(has) == 0 or len(buildings) == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0)
    # candidates by grown bounding boxes, then the exact distance test pair by pair (faster
    # than the tree's own dwithin predicate, which prepares every building)
    bb = shapely.bounds(pt.geom[has])
    boxes = shapely.box(bb[:, 0] - hose_m, bb[:, 1] - hose_m, bb[:, 2] + hose_m,
                        bb[:, 3] + hose_m)
    k, bi = shapely.STRtree(buildings).query(boxes)
    pi = has[k]
    near = shapely.dwithin(buildings[bi], pt.geom[pi], hose_m)
    bi, pi = bi[near], pi[near]
    order = np.lexsort((pi, bi))
    bi, pi = bi[order], pi[order]
    s = shapely.line_locate_point(pt.geom[pi], anchor[bi])
    return bi, pi, s


def building_coverage(
    buildings: gpd.GeoDataFrame,
    graph: RoadGraph,
    stations: gpd.GeoDataFrame,
    *,
    rules: FireRules,
    horizon_s: float | None = None,
) -> gpd.GeoDataFrame:
    """Engine (``station_reach_s``) and micro-station (``micro_reach_s``) coverage per building.

    A building is ``engine_covered`` when an engine can stop on an engine edge within
    ``hose_m`` (straight distance to the footprint) of it within ``station_reach_s`` of
    dispatch, turnout included; ``micro_covered`` likewise for micro stations on micro
    edges within ``micro_reach_s``. The test is exact: buildings are matched to the exact
    reached part of every edge. ``engine_time_s``/``micro_time_s`` estimates the arrival:
    for every reached edge part within ``hose_m`` of the footprint, the time at its point
    nearest the building's centroid; the earliest of these (within the limit
    when covered, else up to ``horizon_s``, default twice the limit; inf beyond), with the
    station that gets there first (``*_station_id``). Returns a copy of ``buildings`` with
    these columns added.
    """
    require_projected(buildings, "buildings")
    require_same_crs(buildings, graph.crs, "buildings", "the road network")
    geoms = np.asarray(buildings.geometry.values, dtype=object)
    anchor = shapely.centroid(geoms)
    out = buildings.copy()
    pt = _piece_table(graph)
    pairs = _pairs(pt, geoms, anchor, rules.hose_m)
    for mode, limit in (("engine", rules.station_reach_s), ("micro", rules.micro_reach_s)):
        horizon = 2 * limit if horizon_s is None else max(horizon_s, limit)
        r = reach(graph, stations, rules=rules, mode=mode, limit_s=horizon)
        covered, t, s = _earliest(pt, pairs, geoms, r, limit, rules.hose_m)
        rest = np.flatnonzero(~covered)
        if horizon > limit and len(rest):
            keep = np.isin(pairs[0], rest)
            _, t_out, s_out = _earliest(pt, (pairs[0][keep], pairs[1][keep], pairs[2][keep]),
                                        geoms, r, horizon, rules.hose_m)
            t[rest], s[rest] = t_out[rest], s_out[rest]
        ids = r.stations["id"].astype(str).to_numpy() if "id" in r.stations.columns \
            else r.stations.index.astype(str).to_numpy()
        out[f"{mode}_covered"] = covered
        out[f"{mode}_time_s"] = t
        sid = np.full(len(s), None, dtype=object)
        sid[s >= 0] = ids[s[s >= 0]]
        out[f"{mode}_station_id"] = sid
    return out


def _late_zh(t: float, limit: float) -> str:
    if not np.isfinite(t):
        return "，在分析时限内不可达"
    return f"，预计最早约 {t:.0f} s 到达（限 {limit:g} s）"


def _late_en(t: float, limit: float) -> str:
    if not np.isfinite(t):
        return "; not reached within the analysis horizon"
    return f"; estimated earliest arrival about {t:.0f} s (limit {limit:g} s)"


def coverage_findings(coverage: gpd.GeoDataFrame, *, rules: FireRules,
                      micro_scope: np.ndarray | None = None) -> gpd.GeoDataFrame:
    """Findings ``building_beyond_engine_reach`` (high) and ``building_beyond_micro_reach``
    (medium) for the uncovered rows of :func:`building_coverage`.

    ``micro_scope`` (booleans aligned with ``coverage``) limits the micro-station findings,
    e.g. to the buildings of the old compounds the community micro stations serve; default
    every building.
    """
    frames = []
    specs = (
        ("building_beyond_engine_reach", "engine", rules.station_reach_s, "station_reach_s",
         "high", "建筑 {id} 在消防站 {m:g} 分钟（含出动时间）内消防车无法停靠在 {h:g} m 水带距离内",
         "building {id}: no engine can stop within {h:g} m hose distance within {m:g} min of "
         "dispatch (turnout included)"),
        ("building_beyond_micro_reach", "micro", rules.micro_reach_s, "micro_reach_s",
         "medium", "建筑 {id} 不在微型消防站 {m:g} 分钟到场范围内",
         "building {id} is beyond the {m:g}-minute reach of every micro fire station"),
    )
    crs = coverage.crs
    ids = coverage["id"].astype(str).to_numpy() if "id" in coverage.columns \
        else coverage.index.astype(str).to_numpy()
    for kind, mode, limit, key, sev, zh, en in specs:
        bad = ~coverage[f"{mode}_covered"].to_numpy(dtype=bool)
        if mode == "micro" and micro_scope is not None:
            bad &= np.asarray(micro_scope, dtype=bool)
        if not bad.any():
            continue
        src = rules.source(key)
        bid = ids[bad]
        m = limit / 60.0
        t = coverage[f"{mode}_time_s"].to_numpy(dtype=float)[bad]
        df = pd.DataFrame({
            "severity": sev,
            "layer": "buildings",
            "feature_id": bid,
            "other_layer": "fire_stations",
            "other_id": coverage[f"{mode}_station_id"].to_numpy(dtype=object)[bad],
            "rule_id": f"fire.{key}",
            "rule_source": src,
            "message_zh": [zh.format(id=i, m=m, h=rules.hose_m) + _late_zh(x, limit)
                           + f"（{src}）" for i, x in zip(bid, t, strict=True)],
            "message_en": [en.format(id=i, m=m, h=rules.hose_m) + _late_en(x, limit)
                           + f" ({src})" for i, x in zip(bid, t, strict=True)],
            "time_s": np.where(np.isfinite(t), t, np.nan),
            "required_s": limit,
            "hose_m": rules.hose_m,
        })
        frames.append(make_findings(df, kind=kind, geometry=coverage.geometry.values[bad],
                                    crs=crs, id_columns=["feature_id"]))
    if not frames:
        return empty_findings(crs)
    return pd.concat(frames, ignore_index=True)
