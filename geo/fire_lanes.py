"""Fire-lane qualification: width, clear height, obstruction, marking and dead ends.

A fire lane is passable by a fire engine only when it is at least 4.0 m wide and 4.0 m
clear high and not obstructed (GB 50016-2014 7.1.8); a dead-end lane longer than 40 m needs
a turnaround of at least 12 m × 12 m (15 m × 15 m serving high-rise, 18 m × 18 m for heavy
engines) or a loop (GB 55037-2022 3.4.5, GB 50016 7.1.9). The numbers come in a
:class:`layers.fire_rules.FireRules`; every failure is a finding in the common schema
(:mod:`geo.findings`) citing the clause.

Dead ends are found on the road graph (:mod:`geo.network`) of roads and lanes together:
pieces joined through nodes of degree 2 form *chains*; a chain that reaches a node of
degree 1 (the tip) is a dead end, and its length runs from the tip to the first junction.
A chain ending in a loop has no tip, so a loop counts as the turnaround.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse import csgraph

from geo.crs import require_projected, require_same_crs
from geo.findings import empty_findings, make_findings
from geo.fire_params import FireRules
from geo.network import RoadGraph

__all__ = [
    "LANE_DEFECTS",
    "as_bool",
    "dead_end_chains",
    "dead_end_findings",
    "lane_findings",
    "qualify_lanes",
]

# finding kinds for the lane defects, in report order
LANE_DEFECTS = ("lane_narrow", "lane_low", "lane_obstructed", "dead_end_no_turnaround",
                "lane_unmarked")

_TRUE = frozenset({"true", "t", "yes", "y", "1"})


def as_bool(values: Any, default: bool, index: pd.Index | None = None) -> pd.Series:
    """Booleans from bool/0-1/text values; missing values take ``default``."""
    if values is None:
        return pd.Series(default, index=index, dtype=bool)
    s = pd.Series(values, index=index) if not isinstance(values, pd.Series) else values
    if s.dtype == bool:
        return s.astype(bool)
    out = s.map(lambda v: default if v is None or (isinstance(v, float) and np.isnan(v))
                else (str(v).strip().lower() in _TRUE if isinstance(v, str) else bool(v)))
    return out.astype(bool)


def _num(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def qualify_lanes(lanes: gpd.GeoDataFrame, *, rules: FireRules) -> gpd.GeoDataFrame:
    """Per lane: ``narrow``, ``low``, ``obstructed``, ``unmarked``, ``engine_ok``,
    ``micro_ok`` and ``length_m``.

    ``lanes`` is the ``fire_lanes`` layer in a projected CRS (metres). A missing
    ``clear_height_m`` counts as clear (the schema default is 4.5 m); a missing ``marked``
    as unmarked. ``micro_ok``: passable on foot / by light vehicle (width at least
    ``micro_min_width_m``; obstructed lanes only when ``micro_pass_obstructed``).
    """
    require_projected(lanes, "fire_lanes")
    out = lanes.copy()
    width = _num(out, "width_m")
    height = _num(out, "clear_height_m")
    obstructed = as_bool(out.get("obstructed"), False, out.index)
    marked = as_bool(out.get("marked"), False, out.index)
    out["narrow"] = (width < rules.lane_min_width_m).to_numpy()
    out["low"] = (height < rules.lane_min_height_m).to_numpy()
    out["obstructed"] = obstructed.to_numpy() if rules.lane_obstruction else False
    out["unmarked"] = (~marked).to_numpy() if rules.lane_marking else False
    out["engine_ok"] = ~(out["narrow"] | out["low"] | out["obstructed"])
    wide_enough = ~(width < rules.micro_min_width_m)
    out["micro_ok"] = (wide_enough & (~obstructed | rules.micro_pass_obstructed)).to_numpy()
    out["length_m"] = out.geometry.length.to_numpy()
    return out


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def lane_findings(lanes: gpd.GeoDataFrame, *, rules: FireRules) -> gpd.GeoDataFrame:
    """Findings ``lane_narrow``, ``lane_low``, ``lane_obstructed`` and ``lane_unmarked``.

    One finding per lane and defect, on the lane geometry, with ``value_m`` (measured),
    ``required_m``, ``shortfall_m``, ``length_m`` and ``compound_id``.
    """
    q = qualify_lanes(lanes, rules=rules)
    ids = q["id"].astype(str).to_numpy() if "id" in q.columns else q.index.astype(str)
    compound = (q["compound_id"].to_numpy(dtype=object) if "compound_id" in q.columns
                else np.full(len(q), None, dtype=object))
    width = _num(q, "width_m").to_numpy()
    height = _num(q, "clear_height_m").to_numpy()
    length = q["length_m"].to_numpy()
    frames = []
    specs = (
        ("lane_narrow", "narrow", width, rules.lane_min_width_m, "lane_min_width_m", "high",
         "消防车道 {id} 净宽 {v} m，小于 {r} m（差 {d} m），消防车无法通行",
         "fire lane {id} is {v} m wide; an engine needs at least {r} m ({d} m short)"),
        ("lane_low", "low", height, rules.lane_min_height_m, "lane_min_height_m", "high",
         "消防车道 {id} 净空高度 {v} m，小于 {r} m（差 {d} m），消防车无法通行",
         "fire lane {id} has {v} m clear height; an engine needs at least {r} m ({d} m short)"),
        ("lane_obstructed", "obstructed", np.full(len(q), np.nan), np.nan, "lane_obstruction",
         "high", "消防车道 {id} 被占用/堵塞，消防车无法通行",
         "fire lane {id} is obstructed; an engine cannot pass"),
        ("lane_unmarked", "unmarked", np.full(len(q), np.nan), np.nan, "lane_marking", "low",
         "消防车道 {id} 未施划标线标识，列入标识施划计划",
         "fire lane {id} is not marked; listed for the marking campaign"),
    )
    for kind, flag, value, required, key, severity, zh, en in specs:
        sel = q[flag].to_numpy(dtype=bool)
        if not sel.any():
            continue
        src = rules.source(key)
        v = value[sel]
        lid = ids[sel]
        msg_zh = [zh.format(id=i, v=_fmt(a), r=_fmt(required), d=f"{required - a:.2f}")
                  + f"（{src}）" for i, a in zip(lid, v, strict=True)]
        msg_en = [en.format(id=i, v=_fmt(a), r=_fmt(required), d=f"{required - a:.2f}")
                  + f" ({src})" for i, a in zip(lid, v, strict=True)]
        df = pd.DataFrame({
            "severity": severity,
            "layer": "fire_lanes",
            "feature_id": lid,
            "rule_id": f"fire.{key}",
            "rule_source": src,
            "message_zh": msg_zh,
            "message_en": msg_en,
            "compound_id": compound[sel],
            "value_m": v,
            "required_m": required,
            "shortfall_m": required - v,
            "length_m": length[sel],
        })
        frames.append(make_findings(df, kind=kind, geometry=q.geometry.values[sel],
                                    crs=q.crs, id_columns=["feature_id"]))
    if not frames:
        return empty_findings(q.crs)
    return pd.concat(frames, ignore_index=True)


# -- dead ends ---------------------------------------------------------------------------------
def _pieces(graph: RoadGraph) -> gpd.GeoDataFrame:
    """One row per undirected piece of the graph (its first directed edge)."""
    e = graph.edges
    first = ~e["piece"].duplicated(keep="first").to_numpy()
    return e.loc[first].reset_index(drop=True)


def dead_end_chains(graph: RoadGraph, *, lanes_layer: str = "fire_lanes") -> gpd.GeoDataFrame:
    """Dead-end chains of the graph that contain at least one fire-lane piece.

    Returns one row per chain: ``chain``, ``length_m`` (tip to first junction), ``tip_node``,
    ``junction_node`` (-1 for a chain with two tips), ``lane_id`` (the lane at the tip),
    ``lane_ids`` (all lanes of the chain, ``;``-joined), ``compound_id`` (of the tip lane
    when the lanes have one), ``connected`` (False when both ends are tips) and the merged
    chain geometry.
    """
    crs = graph.crs
    p = _pieces(graph)
    cols = ["chain", "length_m", "tip_node", "junction_node", "lane_id", "lane_ids",
            "compound_id", "connected"]
    if len(p) == 0:
        return gpd.GeoDataFrame({c: [] for c in cols}, geometry=gpd.GeoSeries([], crs=crs),
                                crs=crs)
    n = graph.n_nodes
    pu = p["u"].to_numpy(dtype=np.int64)
    pv = p["v"].to_numpy(dtype=np.int64)
    k = len(p)
    deg = np.bincount(pu, minlength=n) + np.bincount(pv, minlength=n)
    inc_node = np.concatenate([pu, pv])
    inc_piece = np.concatenate([np.arange(k), np.arange(k)])
    two = deg[inc_node] == 2
    order = np.argsort(inc_node[two], kind="stable")
    nodes2 = inc_node[two][order]
    pcs2 = inc_piece[two][order]
    # consecutive entries of the same degree-2 node are the two pieces it joins
    a, b = pcs2[0::2], pcs2[1::2]
    g = sparse.coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(k, k))
    _, chain = csgraph.connected_components(g, directed=False)
    del nodes2
    length = np.bincount(chain, weights=p["length_m"].to_numpy(dtype=float))
    is_lane = (p["source_layer"].to_numpy(dtype=object) == lanes_layer)
    has_lane = np.bincount(chain, weights=is_lane.astype(float)) > 0
    # tips: degree-1 nodes; a chain's ends are its incident nodes whose degree != 2
    end_mask = deg[inc_node] != 2
    end_chain = chain[inc_piece[end_mask]]
    end_node = inc_node[end_mask]
    tip = deg[end_node] == 1
    n_tips = np.bincount(end_chain[tip], minlength=chain.max() + 1)
    dead = (n_tips > 0) & has_lane
    if not dead.any():
        return gpd.GeoDataFrame({c: [] for c in cols}, geometry=gpd.GeoSeries([], crs=crs),
                                crs=crs)
    # tip node per chain (the lowest tip node id) and junction node (a non-tip end)
    tip_node = np.full(len(dead), -1, dtype=np.int64)
    tn = pd.Series(end_node[tip]).groupby(end_chain[tip]).min()
    tip_node[tn.index.to_numpy()] = tn.to_numpy()
    junction = np.full(len(dead), -1, dtype=np.int64)
    jn = pd.Series(end_node[~tip]).groupby(end_chain[~tip]).min()
    junction[jn.index.to_numpy()] = jn.to_numpy()
    # lane at the tip: the lane piece of the chain nearest to its tip node
    sel = dead[chain] & is_lane
    sp = np.flatnonzero(sel)
    tip_xy = graph.nodes[tip_node[chain[sp]]]
    d_tip = shapely.distance(p.geometry.values[sp], shapely.points(tip_xy))
    order = np.lexsort((d_tip, chain[sp]))
    sp_sorted = sp[order]
    first = np.ones(len(sp_sorted), dtype=bool)
    first[1:] = chain[sp_sorted][1:] != chain[sp_sorted][:-1]
    tip_piece = pd.Series(sp_sorted[first], index=chain[sp_sorted][first])
    lane_src = p["source_id"].astype(str).to_numpy()
    lane_ids = (pd.Series(lane_src[sp]).groupby(chain[sp])
                .agg(lambda s: ";".join(sorted(dict.fromkeys(s)))))
    comp = (p["compound_id"].to_numpy(dtype=object) if "compound_id" in p.columns
            else np.full(k, None, dtype=object))
    chains = np.flatnonzero(dead)
    in_chain = dead[chain]
    merged = shapely.line_merge(shapely.multilinestrings(
        p.geometry.values[in_chain], indices=np.searchsorted(chains, chain[in_chain])))
    tp = tip_piece.reindex(chains).to_numpy()
    out = gpd.GeoDataFrame({
        "chain": chains,
        "length_m": length[chains],
        "tip_node": tip_node[chains],
        "junction_node": junction[chains],
        "lane_id": lane_src[tp],
        "lane_ids": lane_ids.reindex(chains).to_numpy(),
        "compound_id": comp[tp],
        "connected": n_tips[chains] < 2,
    }, geometry=gpd.GeoSeries(merged, crs=crs), crs=crs)
    return out


def _fits_square(polys: np.ndarray, side: np.ndarray) -> np.ndarray:
    """True where a polygon's minimum rotated rectangle has both sides >= ``side`` and its
    area is at least ``side``² (a turnaround of ``side`` × ``side``)."""
    rect = shapely.oriented_envelope(polys)
    xy, idx = shapely.get_coordinates(shapely.get_exterior_ring(rect), return_index=True)
    start = np.searchsorted(idx, np.arange(len(polys)))
    a = np.hypot(*(xy[start + 1] - xy[start]).T)
    b = np.hypot(*(xy[start + 2] - xy[start + 1]).T)
    tol = 1e-6
    return ((np.minimum(a, b) >= side - tol)
            & (shapely.area(polys) >= side * side * (1 - 1e-9) - tol))


def dead_end_findings(
    graph: RoadGraph,
    *,
    rules: FireRules,
    turnarounds: gpd.GeoDataFrame | None = None,
    buildings: gpd.GeoDataFrame | None = None,
    lanes_layer: str = "fire_lanes",
) -> gpd.GeoDataFrame:
    """Findings ``dead_end_no_turnaround``: dead-end chains longer than ``dead_end_max_m``
    without a large enough turnaround.

    A turnaround is a polygon of ``turnarounds`` within ``turnaround_search_m`` of the tip
    that fits a square of the required side, or a lane attribute ``turnaround_m`` (side of
    the square turnaround at the lane's end) on a lane of the chain. The required side is
    ``turnaround_heavy_m`` when ``heavy_engines``, else ``turnaround_high_rise_m`` when a
    building with at least ``high_rise_min_floors`` floors lies within ``hose_m`` of the
    chain, else ``turnaround_min_m``. Chains ending in a loop are not dead ends.
    """
    chains = dead_end_chains(graph, lanes_layer=lanes_layer)
    crs = graph.crs
    if len(chains) == 0:
        return empty_findings(crs)
    # > 40 m needs a turnaround; a length within a micrometre of 40 m (float noise) is 40 m
    long = chains["length_m"].to_numpy() > rules.dead_end_max_m + 1e-6
    chains = chains.loc[long].reset_index(drop=True)
    if len(chains) == 0:
        return empty_findings(crs)
    m = len(chains)
    geoms = chains.geometry.values
    # required side
    high_rise = np.zeros(m, dtype=bool)
    if buildings is not None and len(buildings) and "floors" in buildings.columns:
        require_projected(buildings, "buildings")
        require_same_crs(buildings, graph.crs, "buildings", "the road network")
        floors = pd.to_numeric(buildings["floors"], errors="coerce").to_numpy()
        tall = buildings.geometry.values[floors >= rules.high_rise_min_floors]
        if len(tall):
            ci, _ = shapely.STRtree(tall).query(geoms, predicate="dwithin",
                                                distance=rules.hose_m)
            high_rise[np.unique(ci)] = True
    side = np.where(high_rise, rules.turnaround_high_rise_m, rules.turnaround_min_m)
    if rules.heavy_engines:
        side = np.full(m, rules.turnaround_heavy_m)
    side_key = np.where(high_rise, "turnaround_high_rise_m", "turnaround_min_m")
    if rules.heavy_engines:
        side_key = np.full(m, "turnaround_heavy_m")
    have = np.zeros(m, dtype=bool)
    # turnaround polygons near the tip
    if turnarounds is not None and len(turnarounds):
        require_projected(turnarounds, "turnarounds")
        require_same_crs(turnarounds, graph.crs, "turnarounds", "the road network")
        polys = turnarounds.geometry.values
        tips = shapely.points(graph.nodes[chains["tip_node"].to_numpy()])
        ci, ti = shapely.STRtree(polys).query(tips, predicate="dwithin",
                                              distance=rules.turnaround_search_m)
        ok = _fits_square(polys[ti], side[ci])
        have[np.unique(ci[ok])] = True
    # lane attribute turnaround_m
    if "turnaround_m" in graph.edges.columns:
        e = graph.edges
        lane = e["source_layer"].to_numpy(dtype=object) == lanes_layer
        tm = pd.to_numeric(e["turnaround_m"], errors="coerce").to_numpy()
        best = pd.Series(tm[lane]).groupby(e["source_id"].astype(str).to_numpy()[lane]).max()
        for i, ids in enumerate(chains["lane_ids"].to_numpy()):
            vals = best.reindex(str(ids).split(";")).to_numpy(dtype=float)
            if np.any(vals >= side[i] - 1e-6):
                have[i] = True
    flag = ~have
    if not flag.any():
        return empty_findings(crs)
    c = chains.loc[flag].reset_index(drop=True)
    side, side_key = side[flag], side_key[flag]
    src_len = rules.source("dead_end_max_m")
    srcs = np.array([f"{src_len}; {rules.source(k)}" for k in side_key], dtype=object)
    length = c["length_m"].to_numpy()
    lane_id = c["lane_id"].astype(str).to_numpy()
    connected = c["connected"].to_numpy(dtype=bool)
    msg_zh, msg_en = [], []
    for lid, L, s, src, conn in zip(lane_id, length, side, srcs, connected, strict=True):
        extra_zh = "" if conn else "，且未与道路连通"
        extra_en = "" if conn else "; it is not connected to the road network"
        msg_zh.append(f"尽头式消防车道 {lid} 长 {L:.1f} m（超过 {rules.dead_end_max_m:g} m "
                      f"{L - rules.dead_end_max_m:.1f} m），"
                      f"未设不小于 {s:g} m×{s:g} m 的回车场或环形车道{extra_zh}（{src}）")
        msg_en.append(f"dead-end fire lane {lid} is {L:.1f} m long (> {rules.dead_end_max_m:g} m "
                      f"by {L - rules.dead_end_max_m:.1f} m) "
                      f"without a turnaround of at least {s:g} m x {s:g} m or a loop{extra_en} "
                      f"({src})")
    df = pd.DataFrame({
        "severity": "high",
        "layer": "fire_lanes",
        "feature_id": lane_id,
        "other_layer": None,
        "other_id": None,
        "rule_id": "fire.dead_end_max_m",
        "rule_source": srcs,
        "message_zh": msg_zh,
        "message_en": msg_en,
        "compound_id": c["compound_id"].to_numpy(dtype=object),
        "lane_ids": c["lane_ids"].to_numpy(dtype=object),
        "value_m": length,
        "required_m": rules.dead_end_max_m,
        "shortfall_m": rules.dead_end_max_m - length,
        "length_m": length,
        "turnaround_required_m": side,
        "connected": connected,
    })
    return make_findings(df, kind="dead_end_no_turnaround", geometry=c.geometry.values,
                         crs=crs, id_columns=["feature_id"])
