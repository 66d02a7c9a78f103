"""Service areas per station: the area reachable in 3 / 5 / 8 minutes, for the map.

Each polygon is built from the *reached parts of edges* (exactly cut at the time limit, see
:func:`geo.coverage.reached_pieces`), buffered by ``service_area_buffer_m`` and unioned —
not a convex hull, so it follows the network and leaves out unreachable blocks.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import shapely

from geo.coverage import reach, reached_pieces
from geo.network import RoadGraph
from layers.fire_rules import FireRules

__all__ = ["service_areas"]


def service_areas(
    graph: RoadGraph,
    stations: gpd.GeoDataFrame,
    *,
    rules: FireRules,
    minutes: tuple[float, ...] | None = None,
    quad_segs: int = 4,
) -> gpd.GeoDataFrame:
    """One polygon per station and time limit (``minutes``, default the rules'
    ``service_area_minutes``), turnout included.

    Stations of kind ``station`` travel on engine edges, ``micro_station`` on micro edges.
    Returns ``station_id``, ``kind``, ``minutes``, ``area_m2``, ``reached_length_m`` and the
    polygon (empty when the station is off the network or its turnout exceeds the limit).
    """
    mins = tuple(sorted(minutes or rules.service_area_minutes))
    rows = []
    for mode, kind in (("engine", "station"), ("micro", "micro_station")):
        st = stations
        if "kind" in st.columns:
            st = st[st["kind"].astype(str) == kind]
        for i in range(len(st)):
            one = st.iloc[[i]]
            sid = str(one["id"].iloc[0]) if "id" in one.columns else str(one.index[0])
            r = reach(graph, one, rules=rules, mode=mode, limit_s=max(mins) * 60.0)
            for m in mins:
                pieces = reached_pieces(graph, r, m * 60.0)
                if len(pieces):
                    geom = shapely.buffer(shapely.multilinestrings(pieces.geometry.values),
                                          rules.service_area_buffer_m, quad_segs=quad_segs)
                    # both directions of a two-way piece may be reached: measure the union
                    length = float(shapely.length(shapely.union_all(pieces.geometry.values)))
                else:
                    geom = shapely.Polygon()
                    length = 0.0
                rows.append({"station_id": sid, "kind": kind, "minutes": float(m),
                             "reached_length_m": length, "geometry": geom})
    if not rows:
        return gpd.GeoDataFrame({"station_id": [], "kind": [], "minutes": [], "area_m2": [],
                                 "reached_length_m": []},
                                geometry=gpd.GeoSeries([], crs=graph.crs), crs=graph.crs)
    out = gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=graph.crs)
    out.insert(3, "area_m2", out.geometry.area.to_numpy(dtype=float))
    out["reached_length_m"] = out["reached_length_m"].astype(float)
    return out.sort_values(["kind", "station_id", "minutes"], kind="stable",
                           ignore_index=True)
