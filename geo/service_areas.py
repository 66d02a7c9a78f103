"""Service areas per station: the area reachable in 3 / 5 / 8 minutes, for the map.

Each polygon is built from the *reached parts of edges* (exactly cut at the time limit, see
:func:`geo.coverage.reached_pieces`), buffered by ``service_area_buffer_m`` and unioned —
not a convex hull, so it follows the network and leaves out unreachable blocks.

The reached parts of both directions of a street are first merged into intervals per
undirected piece (so nothing is buffered twice), and each longer time limit only adds the
buffers of the intervals that grew to the polygon of the shorter one.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.coverage import Reach, reach, reached_pieces, substrings
from geo.fire_params import FireRules
from geo.network import RoadGraph

__all__ = ["reached_intervals", "service_areas"]


def reached_intervals(graph: RoadGraph, r: Reach, limit_s: float) -> pd.DataFrame:
    """Reached parts merged per undirected piece: ``piece``, ``start_m``, ``end_m`` along the
    piece's digitised direction (overlapping parts of both directions joined)."""
    p = reached_pieces(graph, r, limit_s)
    if len(p) == 0:
        return pd.DataFrame({"piece": [], "start_m": [], "end_m": []})
    e = graph.edges
    ed = p["edge"].to_numpy()
    rev = e["reverse"].to_numpy(dtype=bool)[ed]
    length = graph.length_m[ed]
    a, b = p["from_m"].to_numpy(), p["to_m"].to_numpy()
    df = pd.DataFrame({"piece": e["piece"].to_numpy()[ed],
                       "start_m": np.where(rev, length - b, a),
                       "end_m": np.where(rev, length - a, b)})
    df = df.sort_values(["piece", "start_m", "end_m"], kind="stable", ignore_index=True)
    # a new interval starts where a part begins after everything before it in its piece ended
    prev_end = df.groupby("piece")["end_m"].cummax().groupby(df["piece"]).shift()
    new = prev_end.isna() | (df["start_m"] > prev_end + 1e-9)
    grp = new.cumsum()
    return (df.groupby(grp).agg(piece=("piece", "first"), start_m=("start_m", "min"),
                                end_m=("end_m", "max")).reset_index(drop=True))


def _interval_lines(graph: RoadGraph, iv: pd.DataFrame) -> np.ndarray:
    e = graph.edges
    piece = e["piece"].to_numpy()
    rev = e["reverse"].to_numpy(dtype=bool)
    # one edge per piece and its geometry in the digitised direction
    first = ~pd.Series(piece).duplicated().to_numpy()
    by_piece = pd.Series(np.flatnonzero(first), index=piece[first])
    ed = by_piece.reindex(iv["piece"].to_numpy()).to_numpy()
    geom = e.geometry.values[ed].copy()
    flip = rev[ed]
    if flip.any():
        geom[flip] = shapely.reverse(geom[flip])
    length = graph.length_m[ed]
    s, t = iv["start_m"].to_numpy(), iv["end_m"].to_numpy()
    full = (s <= 0) & (t >= length)
    out = geom.copy()
    if (~full).any():
        out[~full] = substrings(geom[~full], s[~full], t[~full])
    return out


def service_areas(
    graph: RoadGraph,
    stations: gpd.GeoDataFrame,
    *,
    rules: FireRules,
    minutes: tuple[float, ...] | None = None,
    quad_segs: int = 2,
) -> gpd.GeoDataFrame:
    """One polygon per station and time limit (``minutes``, default the rules'
    ``service_area_minutes``), turnout included.

    Stations of kind ``station`` travel on engine edges, ``micro_station`` on micro edges.
    Returns ``station_id``, ``kind``, ``minutes``, ``area_m2``, ``reached_length_m`` (length of
    street reached, each street counted once) and the polygon (empty when the station is off
    the network or its turnout exceeds the limit).
    """
    mins = tuple(sorted(minutes or rules.service_area_minutes))
    d = rules.service_area_buffer_m
    rows = []
    for mode, kind in (("engine", "station"), ("micro", "micro_station")):
        st = stations
        if "kind" in st.columns:
            st = st[st["kind"].astype(str) == kind]
        for i in range(len(st)):
            one = st.iloc[[i]]
            sid = str(one["id"].iloc[0]) if "id" in one.columns else str(one.index[0])
            r = reach(graph, one, rules=rules, mode=mode, limit_s=max(mins) * 60.0)
            poly = shapely.Polygon()
            prev = pd.DataFrame({"piece": [], "start_m": [], "end_m": []})
            for m in mins:
                iv = reached_intervals(graph, r, m * 60.0)
                # only intervals that are new or grew since the shorter limit
                same = iv.merge(prev, on=["piece", "start_m", "end_m"], how="left",
                                indicator=True)["_merge"].to_numpy() == "both"
                grown = iv.loc[~same]
                if len(grown):
                    bufs = shapely.buffer(_interval_lines(graph, grown), d, quad_segs=quad_segs)
                    poly = shapely.union_all(np.append(bufs, poly) if not poly.is_empty
                                             else bufs)
                rows.append({"station_id": sid, "kind": kind, "minutes": float(m),
                             "reached_length_m": float((iv["end_m"] - iv["start_m"]).sum()),
                             "geometry": poly})
                prev = iv
    if not rows:
        return gpd.GeoDataFrame({"station_id": [], "kind": [], "minutes": [], "area_m2": [],
                                 "reached_length_m": []},
                                geometry=gpd.GeoSeries([], crs=graph.crs), crs=graph.crs)
    out = gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=graph.crs)
    out.insert(3, "area_m2", out.geometry.area.to_numpy(dtype=float))
    return out.sort_values(["kind", "station_id", "minutes"], kind="stable",
                           ignore_index=True)
