"""一区一策: one fire-safety report per old residential compound, with a risk rank.

For each ``compounds`` polygon: the buildings inside it (a building belongs to the compound
that contains its representative point; to the first by id if several do) and their
households; how many are covered by an engine within 5 minutes, by a micro station within
3 minutes and by a working hydrant within 150 m (each split into covered + not covered, so
the counts add up to the buildings inside); the length of unqualified lanes by reason; the
hydrant gaps; the first station to arrive and its time; a risk score and rank; and concrete
measures derived from the findings.

Risk score (0–100, higher = worse), with the weights of the ``fire_risk`` rules normalised
to sum 1::

    score = 100 × ( w_engine  × share of buildings not covered by an engine in 5 min
                  + w_micro   × share not reached by a micro station in 3 min
                  + w_hydrant × share farther than 150 m from a working hydrant
                  + w_lanes   × unqualified lane length / all lane length of the compound
                  + w_station × min(1, max(0, (first engine time − 300 s) / 300 s)) )

Rank 1 is the highest score; ties go to more households, then the compound id.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.coverage import Reach
from geo.crs import require_projected
from geo.fire_params import FireRules
from geo.network import RoadGraph

__all__ = ["RISK_FORMULA", "assign_compounds", "compound_report"]

RISK_FORMULA = (
    "score = 100 × (w_engine × share not covered by an engine within station_reach_s "
    "+ w_micro × share not reached by a micro station within micro_reach_s "
    "+ w_hydrant × share farther than hydrant_radius_m from a working hydrant "
    "+ w_lanes × unqualified lane length / lane length "
    "+ w_station × min(1, max(0, (first engine time − station_reach_s) / station_reach_s))); "
    "weights from the fire_risk rules, normalised to sum 1; rank 1 = highest score "
    "(ties: more households, then id)"
)

_REASONS = ("narrow", "low", "obstructed", "dead_end")


def _ids(frame: pd.DataFrame) -> np.ndarray:
    if "id" in frame.columns:
        return frame["id"].astype(str).to_numpy()
    return frame.index.astype(str).to_numpy()


def assign_compounds(compounds: gpd.GeoDataFrame, geoms: np.ndarray) -> np.ndarray:
    """Compound row position per geometry (-1 outside every compound): the compound that
    contains the geometry's representative point (a line's midpoint), the first by id when
    several do."""
    n = len(geoms)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0 or len(compounds) == 0:
        return out
    geoms = np.asarray(geoms, dtype=object)
    pts = shapely.point_on_surface(geoms)
    line = np.isin(shapely.get_type_id(geoms), (1, 5))
    if line.any():  # a line's midpoint along its length
        pts[line] = shapely.line_interpolate_point(geoms[line], 0.5, normalized=True)
    gi, ci = shapely.STRtree(compounds.geometry.values).query(pts, predicate="within")
    if len(gi):
        cid = _ids(compounds)
        order = np.lexsort((cid[ci], gi))
        gi, ci = gi[order], ci[order]
        first = np.ones(len(gi), dtype=bool)
        first[1:] = gi[1:] != gi[:-1]
        out[gi[first]] = ci[first]
    return out


def _lane_compound(lanes: gpd.GeoDataFrame, compounds: gpd.GeoDataFrame) -> np.ndarray:
    """Compound row per lane: its ``compound_id`` when it names a compound, else where its
    midpoint lies."""
    cid = _ids(compounds)
    pos = pd.Series(np.arange(len(cid)), index=cid)
    pos = pos[~pos.index.duplicated()]
    spatial = assign_compounds(compounds, lanes.geometry.values)
    if "compound_id" in lanes.columns:
        named = pos.reindex(lanes["compound_id"].astype(str).to_numpy()).to_numpy()
        return np.where(np.isfinite(named), np.nan_to_num(named, nan=-1), spatial).astype(np.int64)
    return spatial


def _object_array(items: list[list[str]]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _fmt_ids(ids: list[str], limit: int = 8) -> str:
    ids = sorted(ids)
    more = len(ids) - limit
    return ", ".join(ids[:limit]) + (f" … (+{more})" if more > 0 else "")


def compound_report(
    compounds: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    lanes: gpd.GeoDataFrame | None,
    *,
    rules: FireRules,
    dead_ends: gpd.GeoDataFrame | None = None,
    spacing_gaps: gpd.GeoDataFrame | None = None,
    hydrants: gpd.GeoDataFrame | None = None,
    graph: RoadGraph | None = None,
    engine: Reach | None = None,
) -> gpd.GeoDataFrame:
    """The 一区一策 report, one row per compound, sorted by ``rank``.

    ``buildings`` carry the columns of :func:`geo.coverage.building_coverage`
    (``engine_covered``, ``engine_time_s``, ``engine_station_id``, ``micro_covered``) and
    :func:`geo.hydrants.hydrant_distances` (``hydrant_covered``); ``lanes`` the columns of
    :func:`geo.fire_lanes.qualify_lanes`; ``dead_ends`` the findings of
    :func:`geo.fire_lanes.dead_end_findings`; ``spacing_gaps`` the stretches of
    :func:`geo.hydrants.hydrant_spacing_gaps`. With ``graph`` and ``engine`` (the engine
    :class:`geo.coverage.Reach`) the first engine's arrival also counts network nodes within
    ``hose_m`` of the compound.

    Columns include ``buildings``, ``households``, ``engine_covered``/``engine_not_covered``,
    ``micro_covered``/``micro_not_covered``, ``hydrant_covered``/``hydrant_not_covered``
    (each pair adds up to ``buildings``), the shares, ``lane_length_m``, ``narrow_m``,
    ``low_m``, ``obstructed_m``, ``dead_end_m``, ``unqualified_lanes_m``, ``unmarked_m``,
    ``spacing_gap_m``, ``faulty_hydrants``, ``hydrant_gaps`` (buildings beyond the hydrant
    radius), ``nearest_station`` and ``nearest_station_s`` (the first engine to arrive), the
    deficits, ``risk_score`` with each factor's part (``score_engine``, ``score_micro``,
    ``score_hydrant``, ``score_lanes``, ``score_station``), ``rank``, ``measures``
    (Chinese) / ``measures_en`` (lists of texts) and the polygon.
    """
    require_projected(compounds, "compounds")
    require_projected(buildings, "buildings")
    c = compounds.reset_index(drop=True)
    nc = len(c)
    cid = _ids(c)
    b = buildings.reset_index(drop=True)
    bc = assign_compounds(c, b.geometry.values)
    inside = bc >= 0
    bid = _ids(b)

    def per(values: np.ndarray) -> np.ndarray:
        return np.bincount(bc[inside], weights=values[inside].astype(float), minlength=nc)

    ones = np.ones(len(b))
    n_b = per(ones).astype(np.int64)
    hh = (pd.to_numeric(b["households"], errors="coerce").fillna(0).to_numpy()
          if "households" in b.columns else np.zeros(len(b)))
    households = per(hh)
    if "households" in c.columns:
        own = pd.to_numeric(c["households"], errors="coerce").to_numpy()
        households = np.where((households == 0) & np.isfinite(own), own, households)
    cols: dict[str, object] = {"compound_id": cid}
    if "name" in c.columns:
        cols["name"] = c["name"].to_numpy(dtype=object)
    cols["buildings"] = n_b
    cols["households"] = households.astype(np.int64)
    shares = {}
    for key in ("engine", "micro", "hydrant"):
        col = f"{key}_covered"
        cov = (b[col].to_numpy(dtype=bool) if col in b.columns else np.zeros(len(b), bool))
        k = per(cov).astype(np.int64)
        cols[f"{key}_covered"] = k
        cols[f"{key}_not_covered"] = n_b - k
        shares[key] = np.where(n_b > 0, k / np.maximum(n_b, 1), 1.0)
        cols[f"{key}_share"] = shares[key]

    # lanes by reason
    lane_len: dict[str, np.ndarray] = {r: np.zeros(nc) for r in (*_REASONS, "unmarked", "all",
                                                                  "unqualified")}
    lane_rows: dict[str, list[list[str]]] = {r: [[] for _ in range(nc)]
                                             for r in (*_REASONS, "unmarked")}
    lane_vals: dict[int, dict[str, str]] = {}
    if lanes is not None and len(lanes):
        require_projected(lanes, "fire_lanes")
        lc = _lane_compound(lanes, c)
        lin = lc >= 0
        length = lanes.geometry.length.to_numpy()
        lid = _ids(lanes)
        dead_lane = np.zeros(len(lanes), dtype=bool)
        if dead_ends is not None and len(dead_ends):
            dl = set(";".join(dead_ends["lane_ids"].astype(str)).split(";"))
            dead_lane = np.isin(lid, list(dl))
        lane_len["all"] = np.bincount(lc[lin], weights=length[lin], minlength=nc)
        flags = {}
        for r in ("narrow", "low", "obstructed", "unmarked"):
            flags[r] = (lanes[r].to_numpy(dtype=bool) if r in lanes.columns
                        else np.zeros(len(lanes), bool))
        bad = flags["narrow"] | flags["low"] | flags["obstructed"] | dead_lane
        lane_len["unqualified"] = np.bincount(lc[lin & bad], weights=length[lin & bad],
                                              minlength=nc)
        width = pd.to_numeric(lanes.get("width_m"), errors="coerce").to_numpy(dtype=float) \
            if "width_m" in lanes.columns else np.full(len(lanes), np.nan)
        height = pd.to_numeric(lanes.get("clear_height_m"), errors="coerce").to_numpy(
            dtype=float) if "clear_height_m" in lanes.columns else np.full(len(lanes), np.nan)
        for r in ("narrow", "low", "obstructed", "unmarked"):
            sel = lin & flags[r]
            lane_len[r] = np.bincount(lc[sel], weights=length[sel], minlength=nc)
            for li in np.flatnonzero(sel):
                lane_rows[r][int(lc[li])].append(str(lid[li]))
        for li in np.flatnonzero(lin & (flags["narrow"] | flags["low"])):
            lane_vals[int(li)] = {"w": f"{width[li]:.1f}", "h": f"{height[li]:.1f}"}
        lane_pos = {k: i for i, k in enumerate(lid)}
    else:
        lane_pos = {}
    dead_rows: list[list[tuple[str, float, float]]] = [[] for _ in range(nc)]
    if dead_ends is not None and len(dead_ends):
        cpos = pd.Series(np.arange(nc), index=cid)
        cpos = cpos[~cpos.index.duplicated()]
        dc = assign_compounds(c, dead_ends.geometry.values)
        if "compound_id" in dead_ends.columns:
            named = cpos.reindex(dead_ends["compound_id"].astype(str).to_numpy()).to_numpy()
            dc = np.where(np.isfinite(named), np.nan_to_num(named, nan=-1), dc).astype(np.int64)
        dlen = dead_ends["length_m"].to_numpy(dtype=float)
        for di in np.flatnonzero(dc >= 0):
            lane_len["dead_end"][dc[di]] += dlen[di]
            dead_rows[int(dc[di])].append((str(dead_ends["feature_id"].iloc[di]), float(dlen[di]),
                                           float(dead_ends["turnaround_required_m"].iloc[di])))
    for r in (*_REASONS, "unmarked"):
        cols[f"{r}_m"] = lane_len[r]
    cols["lane_length_m"] = lane_len["all"]
    cols["unqualified_lanes_m"] = lane_len["unqualified"]

    # hydrants
    hyd_bad = (~b["hydrant_covered"].to_numpy(dtype=bool) if "hydrant_covered" in b.columns
               else np.zeros(len(b), bool))
    gap_len: np.ndarray = np.zeros(nc)
    if spacing_gaps is not None and len(spacing_gaps):
        zone = shapely.buffer(c.geometry.values, rules.hose_m)
        ci, gi = shapely.STRtree(spacing_gaps.geometry.values).query(zone, predicate="intersects")
        if len(ci):
            part = shapely.length(shapely.intersection(spacing_gaps.geometry.values[gi],
                                                       zone[ci]))
            gap_len = np.bincount(ci, weights=part, minlength=nc)
    cols["spacing_gap_m"] = gap_len
    faulty: list[list[str]] = [[] for _ in range(nc)]
    if hydrants is not None and len(hydrants) and "status" in hydrants.columns:
        require_projected(hydrants, "hydrants")
        fh = hydrants[hydrants["status"].astype(str).str.lower() == "faulty"]
        if len(fh):
            zone = shapely.buffer(c.geometry.values, rules.hose_m)
            ci, hi = shapely.STRtree(fh.geometry.values).query(zone, predicate="intersects")
            fid = _ids(fh)
            for a, h in zip(ci, hi, strict=True):
                faulty[a].append(fid[h])
    cols["faulty_hydrants"] = np.array([len(f) for f in faulty], dtype=np.int64)

    # first engine at the compound
    st_time = np.full(nc, np.inf)
    st_id = np.full(nc, None, dtype=object)
    if "engine_time_s" in b.columns:
        t = b["engine_time_s"].to_numpy(dtype=float)
        sid = (b["engine_station_id"].to_numpy(dtype=object) if "engine_station_id" in b.columns
               else np.full(len(b), None, dtype=object))
        sel = np.flatnonzero(inside & np.isfinite(t))
        if len(sel):
            df = pd.DataFrame({"c": bc[sel], "t": t[sel], "s": sid[sel]}).sort_values(["c", "t"])
            df = df.drop_duplicates("c")
            st_time[df["c"].to_numpy()] = df["t"].to_numpy()
            st_id[df["c"].to_numpy()] = df["s"].to_numpy()
    if graph is not None and engine is not None and graph.n_nodes:
        zone = shapely.buffer(c.geometry.values, rules.hose_m)
        ci, ni = shapely.STRtree(shapely.points(graph.nodes)).query(zone, predicate="intersects")
        cost = engine.cost_s[ni]
        ok = np.isfinite(cost)
        ci, ni, cost = ci[ok], ni[ok], cost[ok]
        if len(ci):
            df = pd.DataFrame({"c": ci, "t": cost, "n": ni}).sort_values(["c", "t"])
            df = df.drop_duplicates("c")
            better = df["t"].to_numpy() < st_time[df["c"].to_numpy()]
            cc = df["c"].to_numpy()[better]
            st_time[cc] = df["t"].to_numpy()[better]
            sids = _ids(engine.stations)
            node_st = engine.station[df["n"].to_numpy()[better]]
            st_id[cc] = np.where(node_st >= 0, sids[np.maximum(node_st, 0)] if len(sids)
                                 else None, None)
    cols["hydrant_gaps"] = cols["hydrant_not_covered"]
    cols["nearest_station"] = st_id
    cols["nearest_station_s"] = np.where(np.isfinite(st_time), st_time, np.nan)

    # risk
    w = np.array([rules.risk_weight_engine, rules.risk_weight_micro, rules.risk_weight_hydrant,
                  rules.risk_weight_lanes, rules.risk_weight_station], dtype=float)
    w = w / w.sum()
    lanes_total = lane_len["all"]
    deficits = {
        "deficit_engine": np.where(n_b > 0, 1 - shares["engine"], 0.0),
        "deficit_micro": np.where(n_b > 0, 1 - shares["micro"], 0.0),
        "deficit_hydrant": np.where(n_b > 0, 1 - shares["hydrant"], 0.0),
        "deficit_lanes": np.where(lanes_total > 0,
                                  np.minimum(1.0, lane_len["unqualified"]
                                             / np.maximum(lanes_total, 1e-9)), 0.0),
        "deficit_station": np.where(
            np.isfinite(st_time),
            np.clip((st_time - rules.station_reach_s) / rules.station_reach_s, 0.0, 1.0), 1.0),
    }
    cols.update(deficits)
    parts = {k.replace("deficit_", "score_"): 100.0 * wi * d
             for wi, (k, d) in zip(w, deficits.items(), strict=True)}
    score = sum(parts.values())
    cols["risk_score"] = np.round(score, 2)
    # each factor's share of the score (they add up to risk_score before rounding)
    cols.update({k: np.round(v, 2) for k, v in parts.items()})

    # measures
    mz: list[list[str]] = [[] for _ in range(nc)]
    me: list[list[str]] = [[] for _ in range(nc)]
    mw, mh = rules.lane_min_width_m, rules.lane_min_height_m
    for i in range(nc):
        for lane in sorted(lane_rows["narrow"][i]):
            v = lane_vals.get(lane_pos.get(lane, -1), {}).get("w", "?")
            mz[i].append(f"将消防车道 {lane} 由 {v} m 拓宽至 {mw:g} m")
            me[i].append(f"widen lane {lane} ({v} m) to {mw:g} m")
        for lane in sorted(lane_rows["low"][i]):
            v = lane_vals.get(lane_pos.get(lane, -1), {}).get("h", "?")
            mz[i].append(f"清除消防车道 {lane} 上方障碍，净空高度由 {v} m 提高至 {mh:g} m")
            me[i].append(f"raise the clear height of lane {lane} ({v} m) to {mh:g} m "
                         "(remove the overhead obstacle)")
        for lane in sorted(lane_rows["obstructed"][i]):
            mz[i].append(f"清理消防车道 {lane} 上的占用/堵塞")
            me[i].append(f"clear the obstruction on lane {lane}")
        for lane, length, side in sorted(dead_rows[i]):
            mz[i].append(f"在尽头式消防车道 {lane}（长 {length:.1f} m）端部设置不小于 "
                         f"{side:g} m×{side:g} m 的回车场，或将其连通成环")
            me[i].append(f"build a turnaround of at least {side:g} m x {side:g} m at the end of "
                         f"lane {lane} (dead end {length:.1f} m) or connect it into a loop")
        if lane_rows["unmarked"][i]:
            ids = _fmt_ids(lane_rows["unmarked"][i])
            mz[i].append(f"施划消防车道标线标识：{ids}（应急消〔2019〕334号）")
            me[i].append(f"mark fire lanes {ids} (yellow no-parking lines, 应急消〔2019〕334号)")
        for h in sorted(faulty[i]):
            mz[i].append(f"维修故障消火栓 {h}")
            me[i].append(f"repair hydrant {h}")
    # hydrant gaps: add a hydrant near the building closest to the centre of the gap
    sel = np.flatnonzero(inside & hyd_bad)
    if len(sel):
        pts = shapely.get_coordinates(shapely.point_on_surface(b.geometry.values[sel]))
        df = pd.DataFrame({"c": bc[sel], "x": pts[:, 0], "y": pts[:, 1], "b": bid[sel]})
        cen = df.groupby("c")[["x", "y"]].mean()
        df = df.merge(cen.rename(columns={"x": "x_c", "y": "y_c"}), left_on="c",
                      right_index=True)
        df["d"] = np.hypot(df["x"] - df["x_c"], df["y"] - df["y_c"])
        near = df.sort_values(["c", "d", "b"]).drop_duplicates("c")
        count = df.groupby("c").size()
        for _, row in near.iterrows():
            ic, nk = int(row["c"]), int(count[row["c"]])
            mz[ic].append(f"在建筑 {row['b']} 附近增设室外消火栓（{nk} 栋建筑距完好消火栓超过 "
                          f"{rules.hydrant_radius_m:g} m）")
            me[ic].append(f"add a hydrant near building {row['b']} ({nk} buildings are more "
                          f"than {rules.hydrant_radius_m:g} m from a working hydrant)")
    for i in range(nc):
        if gap_len[i] > 0:
            mz[i].append(f"在小区周边道路消火栓间距超过 {rules.hydrant_spacing_m:g} m 的路段"
                         f"（{gap_len[i]:.0f} m）增设消火栓")
            me[i].append(f"add hydrants on the surrounding roads where they are more than "
                         f"{rules.hydrant_spacing_m:g} m apart ({gap_len[i]:.0f} m of road)")
        n_eng = int(cols["engine_not_covered"][i])  # type: ignore[index]
        if n_eng:
            m5 = rules.station_reach_s / 60
            mz[i].append(f"{n_eng} 栋建筑 {m5:g} 分钟内消防车无法到达水带距离内：打通上述消防车道，"
                         "或增设微型消防站")
            me[i].append(f"{n_eng} buildings cannot be reached by an engine within {m5:g} min: "
                         "open the lanes above or add a micro fire station")
        n_mic = int(cols["micro_not_covered"][i])  # type: ignore[index]
        if n_mic:
            m3 = rules.micro_reach_s / 60
            mz[i].append(f"建设社区微型消防站（{m3:g} 分钟到场仅覆盖 "
                         f"{100 * shares['micro'][i]:.0f}% 建筑）")
            me[i].append(f"set up a community micro fire station (the {m3:g}-minute reach "
                         f"covers only {100 * shares['micro'][i]:.0f}% of the buildings)")
        if np.isfinite(st_time[i]) and st_time[i] > rules.station_reach_s:
            mz[i].append(f"最近消防站 {st_id[i]} 到达需 {st_time[i] / 60:.1f} 分钟，超过 "
                         f"{rules.station_reach_s / 60:g} 分钟：完善消防站布局或前置执勤点")
            me[i].append(f"the first engine ({st_id[i]}) arrives after {st_time[i] / 60:.1f} min "
                         f"(> {rules.station_reach_s / 60:g} min): review station coverage")
        if not mz[i]:
            mz[i].append("保持现状，定期检查消防车道与消火栓")
            me[i].append("no defect found: keep lanes and hydrants under regular inspection")
    cols["measures"] = _object_array(mz)
    cols["measures_en"] = _object_array(me)
    for key in ("narrow_m", "low_m", "obstructed_m", "dead_end_m", "unmarked_m", "lane_length_m",
                "unqualified_lanes_m", "spacing_gap_m", "nearest_station_s"):
        cols[key] = np.round(np.asarray(cols[key], dtype=float), 2)
    out = gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries(c.geometry.values, crs=c.crs),
                           crs=c.crs)
    order = np.lexsort((cid, -households, -score))
    out = out.iloc[order].reset_index(drop=True)
    out.insert(1, "rank", np.arange(1, nc + 1))
    return out
