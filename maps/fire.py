"""The fire brigade's map: stations and micro stations with 3/5/8-minute service areas, fire
lanes coloured by qualification, hydrants by status with gaps, buildings not reachable, and
old compounds ranked with their 一区一策 report in the popup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import STORAGE_CRS, analysis_crs
from maps.base import (
    STATIC_PREFIX,
    Categorical,
    Field,
    Graduated,
    LayerSpec,
    MapOptions,
    RiskMapElement,
    Text,
    _lonlat,
    _simplify,
    findings_spec,
    make_map,
    text,
)
from maps.compose import FindingsInput, LayerInput, add, concat_findings, get, group, select_kinds
from maps.styles import spec

__all__ = ["FIRE_JS", "HYDRANTS_NEAR_M", "REACH_CELL_M", "REACH_KINDS", "REPORT_FIELDS",
           "add_reach_layers", "build_fire", "hydrants_near", "lane_qualification", "rank_reasons",
           "reach_grid"]

# The fire map's own browser code (clickable ranking, zoom-dependent reach layers).
FIRE_JS = ("riskmap_fire", f"{STATIC_PREFIX}/riskmap/fire.js")

# Lane defect kinds (geo.fire_lanes) → qualification class, most severe first.
_LANE_KINDS = (("lane_obstructed", "obstructed"), ("lane_narrow", "narrow"),
               ("lane_low", "low"), ("dead_end_no_turnaround", "dead_end"))

# Buildings-beyond-reach finding kinds (geo.coverage): layer label, shown at start.
# Finding kinds (prefixes) a hydrant is context for: fire lanes, hydrants, dead ends, compounds.
FIRE_CONTEXT_KINDS = ("lane_", "hydrant_", "dead_end", "compound", "building_")

REACH_KINDS = (
    ("building_unreachable", "消防车不可达建筑", "Buildings not reachable", True),
    ("building_beyond_engine_reach", "消防车5分钟不可达建筑", "Beyond 5-min engine reach", True),
    ("building_beyond_micro_reach", "微型站3分钟不可达建筑", "Beyond 3-min micro-station reach", False),
    ("building_beyond_hydrant_radius", "消火栓保护半径外建筑", "Beyond hydrant radius", True),
)

SERVICE_AREA_SIMPLIFY_M = 5.0

# Buildings beyond reach at the district view: counts on a grid of this cell side (metres),
# drawn below REACH_DETAIL_ZOOM; the buildings themselves from that zoom.
REACH_CELL_M = 200.0
REACH_DETAIL_ZOOM = 15
REACH_GRID_BREAKS = (1.0, 3.0, 10.0, 25.0, 50.0, float("inf"))

# A standalone export keeps the hydrants within this distance of a lane, hydrant or compound
# finding (not of the buildings beyond engine reach: that is most of the district).
HYDRANTS_NEAR_M = 150.0

# Ranking rows listed (the rest behind "show all").
RANKING_ROWS = 10

SERVICE_MINUTES = ((3, "#006d2c", "3 分钟", "3 min"), (5, "#74c476", "5 分钟", "5 min"),
                   (8, "#c7e9c0", "8 分钟", "8 min"))

# Columns of the compound report (issue 5) shown in the popup, when present.
REPORT_FIELDS: tuple[Field, ...] = (
    Field("rank", "风险排名", "risk rank", digits=0),
    Field("risk_score", "风险值", "risk score", digits=2),
    Field("buildings", "建筑数", "buildings", digits=0),
    Field("households", "户数", "households", digits=0),
    Field("engine_share", "消防车5分钟可达比例", "engine within 5 min", type="percent"),
    Field("micro_share", "微型站3分钟可达比例", "micro station within 3 min", type="percent"),
    Field("unqualified_lanes_m", "不合格车道长度", "unqualified lanes", "m", 0),
    Field("narrow_m", "宽度不足", "narrow", "m", 0),
    Field("low_m", "净高不足", "low", "m", 0),
    Field("obstructed_m", "被占用", "obstructed", "m", 0),
    Field("dead_end_m", "尽头无回车场", "dead end", "m", 0),
    Field("unmarked_m", "未标识", "unmarked", "m", 0),
    Field("hydrant_share", "消火栓保护范围内比例", "within hydrant radius", type="percent"),
    Field("hydrant_gaps", "消火栓缺口", "hydrant gaps", digits=0),
    Field("spacing_gap_m", "消火栓间距超限道路", "streets beyond hydrant spacing", "m", 0),
    Field("faulty_hydrants", "故障消火栓", "faulty hydrants", digits=0),
    Field("nearest_station", "最近消防站", "nearest station"),
    Field("nearest_station_s", "最近消防站到场时间", "nearest station time", "s", 0),
    Field("measures", "整改措施（一区一策）", "measures (一区一策)", type="list"),
    Field("plan", "一区一策", "plan"),
)


def lane_qualification(lanes: gpd.GeoDataFrame, findings: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    """``qualification`` (ok / obstructed / narrow / low / dead_end / unchecked) and ``reasons``
    of each lane from the lane findings (``geo.fire_lanes``); without findings: unchecked."""
    out = lanes.copy()
    ids = out["id"].astype(str) if "id" in out.columns else out.index.astype(str).to_series()
    qual = pd.Series("unchecked" if findings is None else "ok", index=out.index, dtype=object)
    reasons = pd.Series([[] for _ in range(len(out))], index=out.index, dtype=object)
    if findings is not None:
        lf = findings[findings["kind"].isin([k for k, _ in _LANE_KINDS] + ["lane_unmarked"])]
        for kind, q in reversed(_LANE_KINDS):  # most severe last, so it wins
            hit = ids.isin(set(lf.loc[lf["kind"] == kind, "feature_id"].astype(str))).to_numpy()
            qual[hit] = q
        msg = lf.groupby(lf["feature_id"].astype(str))["message_zh"].agg(list)
        reasons = ids.map(msg).apply(lambda v: v if isinstance(v, list) else [])
        reasons.index = out.index
    out["qualification"] = qual
    out["reasons"] = reasons
    return out


def build_fire(
    layers: Mapping[str, LayerInput],
    findings: FindingsInput = None,
    *,
    options: MapOptions | None = None,
    findings_collection: str | None = "fire_findings",
) -> folium.Map:
    """The fire map.

    ``layers``: ``fire_stations``, ``fire_lanes``, ``hydrants``, ``compounds``, ``buildings``,
    ``roads`` and, when computed, ``service_areas`` (``station_id``, ``minutes`` 3/5/8) and
    ``compound_report`` (compound polygons with the report columns of :data:`REPORT_FIELDS`).
    ``findings``: lane, hydrant and coverage findings (common schema).
    ``findings_collection``: the API collection serving them (``api.analysis``), from which a
    served map loads the large buildings-beyond-reach layers by bbox.
    """
    options = options or MapOptions()
    m, app = make_map(options, title=text("消防车通道与消防力量覆盖图", "Fire lanes and fire cover"))
    m.default_js = [*m.default_js, FIRE_JS]
    fnd = concat_findings(findings)
    flist = [fnd]
    fire_cfg: dict[str, Any] = {"ranking": None, "compoundLayer": "compounds", "zoomPanes": {},
                                "zoomLayers": {}}
    app.config["fire"] = fire_cfg

    add(app, spec("roads"), get(layers, "roads"), flist)
    # an export keeps the buildings other findings refer to; those beyond reach have their
    # own layers (and are far too many to embed as plain buildings)
    not_reach = None if fnd is None else fnd[~fnd["kind"].isin([k for k, *_ in REACH_KINDS])]
    add(app, spec("buildings"), get(layers, "buildings"), [not_reach])

    sa = get(layers, "service_areas")
    if isinstance(sa, gpd.GeoDataFrame):
        sa = sa.copy()
        if "minutes" not in sa.columns:
            for c in ("limit_s", "time_s", "seconds"):
                if c in sa.columns:
                    sa["minutes"] = (pd.to_numeric(sa[c], errors="coerce") / 60).round().astype("Int64")
                    break
        # isochrones follow every street: 5 m is invisible at the zooms they are looked at
        sa = _simplify(_lonlat(sa), SERVICE_AREA_SIMPLIFY_M)
        if "minutes" in sa.columns:
            sa["minutes"] = pd.to_numeric(sa["minutes"], errors="coerce").round().astype("Int64")
            sa = sa.sort_values("minutes", ascending=False)
    add(app, LayerSpec("service_areas", "服务范围", "Service areas", "fire", "polygon",
                       style={"weight": 0.5, "fillOpacity": 0.35, "color": "#31a354"},
                       classify=Categorical("minutes", SERVICE_MINUTES, title=text("到场时间", "arrival")),
                       fields=(Field("station_id", "消防站", "station"),
                               Field("kind", "类型", "kind",
                                     enum={"station": text("消防站", "fire station"),
                                           "micro_station": text("微型消防站", "micro station")}),
                               Field("minutes", "分钟", "minutes", digits=0),
                               Field("area_m2", "面积", "area", "m²", 0),
                               Field("reached_length_m", "可达道路长度", "roads reached", "m", 0)),
                       popup_title="station_id", search=(), visible=False), sa, flist)

    compounds = get(layers, "compound_report")
    if compounds is None:
        compounds = get(layers, "compounds")
    if isinstance(compounds, gpd.GeoDataFrame):
        if "id" not in compounds.columns and "compound_id" in compounds.columns:
            compounds = compounds.assign(id=compounds["compound_id"])
        cspec = spec("compounds", fields=(*spec("compounds").fields[:1], *REPORT_FIELDS))
        if "rank" in compounds.columns:
            n = int(pd.to_numeric(compounds["rank"], errors="coerce").max() or 1)
            edges = np.unique(np.ceil(np.linspace(1, n + 1, 5))).astype(float)
            colors = ("#a50f15", "#de2d26", "#fb6a4a", "#fcae91", "#fee5d9")[: len(edges) - 1]
            if len(edges) >= 2:
                cspec = spec("compounds", fields=cspec.fields, classify=Graduated(
                    "rank", tuple(edges), colors, title=text("风险排名（1 = 最高）", "risk rank (1 = highest)")))
            fire_cfg["ranking"] = {
                "title": text("老旧小区风险排名", "Compound risk ranking"),
                "rows": rank_reasons(compounds, fnd), "shown": RANKING_ROWS}
        add(app, cspec, compounds, flist)

    lanes = get(layers, "fire_lanes")
    if isinstance(lanes, gpd.GeoDataFrame):
        lanes = lane_qualification(lanes, fnd)
    add(app, spec("fire_lanes"), lanes, flist)
    add(app, spec("hydrants"), hydrants_near(get(layers, "hydrants"), fnd), flist)
    add(app, spec("fire_stations"), get(layers, "fire_stations"), flist)

    hyd = select_kinds(fnd, prefix=("hydrant",))
    lanef = select_kinds(fnd, prefix=("lane_", "dead_end"))
    finding_layers: tuple[tuple[str, str, str, Any, Literal["point", "line"]], ...] = (
        ("hydrant_findings", "消火栓问题", "Hydrant findings", hyd, "point"),
        ("lane_findings", "车道问题", "Lane findings", lanef, "line"))
    for fid, zh, en, frame, kind in finding_layers:
        if frame is not None:
            group(app, "findings")
            app.add_layer(findings_spec(fid, zh=zh, en=en, kind=kind,
                                        extra_fields=(Field("compound_id", "小区", "compound"),)),
                          frame)
    add_reach_layers(app, fnd, collection=findings_collection, district_view=True)
    # the findings list: the findings themselves, not the cells of the district-view grid
    app.set_findings_list(layers=[js["id"] for js in app.config["layers"]
                                  if js["group"] == "findings" and js.get("pane") != "reachgrid"])
    return m


def hydrants_near(hydrants: Any, findings: gpd.GeoDataFrame | None, *,
                  distance_m: float = HYDRANTS_NEAR_M) -> Any:
    """For an export that read a large hydrant layer only around the findings
    (``attrs["riskmap_around_m"]``): the hydrants within ``distance_m`` of a lane, hydrant,
    dead-end or compound finding (buildings beyond reach left aside: they cover most of a
    district). Anything else is returned as given."""
    if (not isinstance(hydrants, gpd.GeoDataFrame) or not hydrants.attrs.get("riskmap_around_m")
            or not len(hydrants)):
        return hydrants
    # fire findings only (an overview's pipeline or route findings say nothing of hydrants)
    fire = findings["kind"].astype(str).str.startswith(FIRE_CONTEXT_KINDS) if (
        findings is not None) else None
    near = None if findings is None else findings[
        fire & ~findings["kind"].isin([k for k, *_ in REACH_KINDS])]
    total = int(hydrants.attrs.get("riskmap_total", len(hydrants)))
    if near is None or not len(near):
        out = hydrants.iloc[:0].copy()
    else:
        near = near[near.geometry.notna() & ~near.geometry.is_empty]
        crs = analysis_crs(near.to_crs(STORAGE_CRS))
        tree = shapely.STRtree(near.to_crs(crs).geometry.values)
        hit = tree.query(hydrants.to_crs(crs).geometry.values, predicate="dwithin",
                         distance=distance_m)[0]
        out = hydrants.iloc[np.unique(hit)].copy()
    out.attrs.update(riskmap_total=total, riskmap_around_m=distance_m)
    return out


def reach_grid(frame: gpd.GeoDataFrame, *, cell_m: float = REACH_CELL_M) -> gpd.GeoDataFrame:
    """Buildings of ``frame`` counted on a square grid of ``cell_m`` metres in the frame's
    analysis CRS (each by its representative point): non-empty cells with ``count`` and
    ``compounds`` (ids of the compounds concerned, ``;``-joined), in EPSG:4490."""
    crs = analysis_crs(frame.to_crs(STORAGE_CRS))
    pts = shapely.get_coordinates(frame.to_crs(crs).geometry.representative_point().values)
    ix = np.floor(pts[:, 0] / cell_m).astype(np.int64)
    iy = np.floor(pts[:, 1] / cell_m).astype(np.int64)
    cells, inv, counts = np.unique(np.column_stack([ix, iy]), axis=0, return_inverse=True,
                                   return_counts=True)
    x0, y0 = cells[:, 0] * cell_m, cells[:, 1] * cell_m
    geoms = shapely.box(x0, y0, x0 + cell_m, y0 + cell_m)
    out = gpd.GeoDataFrame({"count": counts.astype(np.int64)},
                           geometry=gpd.GeoSeries(geoms, crs=crs)).to_crs(STORAGE_CRS)
    if "compound_id" in frame.columns:
        cid = frame["compound_id"].to_numpy(dtype=object)
        has = pd.notna(cid)
        per = (pd.DataFrame({"cell": np.asarray(inv).ravel()[has], "c": cid[has].astype(str)})
               .drop_duplicates().sort_values(["cell", "c"])
               .groupby("cell")["c"].agg(";".join))
        out["compounds"] = pd.Series(per).reindex(range(len(out))).to_numpy(dtype=object)
    return out


def _int(v: Any) -> int:
    x = pd.to_numeric(v, errors="coerce")
    return int(x) if pd.notna(x) else 0


def _num(v: Any) -> float:
    x = pd.to_numeric(v, errors="coerce")
    return float(x) if pd.notna(x) else 0.0


# factor -> (score column, deficit column) of geo.compounds
_FACTORS = (("engine", "score_engine", "deficit_engine"), ("micro", "score_micro", "deficit_micro"),
            ("hydrant", "score_hydrant", "deficit_hydrant"), ("lanes", "score_lanes", "deficit_lanes"),
            ("station", "score_station", "deficit_station"))
_LANE_WORDS = (("lane_narrow", "narrow_m", "宽度不足", "too narrow"),
               ("lane_low", "low_m", "净高不足", "too low"),
               ("lane_obstructed", "obstructed_m", "被占用", "obstructed"),
               ("dead_end_no_turnaround", "dead_end_m", "尽头无回车场", "dead end without turnaround"))


def _factor_text(key: str, r: Mapping[str, Any], lane_counts: Mapping[str, int]) -> Text | None:
    """What puts compound row ``r`` up the ranking for factor ``key`` (None: nothing)."""
    if key == "engine" and _int(r.get("engine_not_covered")) > 0:
        n = _int(r.get("engine_not_covered"))
        return text(f"消防车5分钟不可达 {n} 栋", f"{n} buildings beyond 5-min engine reach")
    if key == "micro" and _int(r.get("micro_not_covered")) > 0:
        n = _int(r.get("micro_not_covered"))
        return text(f"微型站3分钟不可达 {n} 栋", f"{n} buildings beyond 3-min micro-station reach")
    if key == "hydrant" and _int(r.get("hydrant_not_covered")) > 0:
        n = _int(r.get("hydrant_not_covered"))
        return text(f"消火栓保护半径外 {n} 栋", f"{n} buildings beyond hydrant radius")
    if key == "lanes" and _num(r.get("unqualified_lanes_m")) > 0:
        zh, en = [], []
        for kind, col, wz, we in _LANE_WORDS:
            metres = _num(r.get(col))
            if metres <= 0:
                continue
            k = lane_counts.get(kind, 0)
            zh.append(f"{wz}{f' {k} 处' if k else ''} {metres:.0f} m")
            en.append(f"{we} {metres:.0f} m" + (f" ({k} lane{'s' if k != 1 else ''})" if k else ""))
        return text("消防车道" + "、".join(zh), "fire lanes: " + ", ".join(en)) if zh else None
    if key == "station" and _num(r.get("deficit_station")) > 0:
        t = _num(r.get("nearest_station_s"))
        st = str(r.get("nearest_station") or "")
        return text(f"首车到场 {t:.0f} s（{st}）", f"first engine after {t:.0f} s ({st})")
    return None


def rank_reasons(report: gpd.GeoDataFrame, findings: gpd.GeoDataFrame | None) -> list[dict[str, Any]]:
    """Ranking rows of the compound report (rank order): id, rank, name, score, households
    and ``reasons`` = the factors that put the compound there, largest part of the score
    first, with their values (buildings beyond reach, unqualified lanes by defect with the
    number of lane findings, first-engine time), then unmarked lanes, faulty hydrants and
    hydrant spacing gaps; "no defect found" when there is none of these."""
    c = report.copy()
    c["_rank"] = pd.to_numeric(c["rank"], errors="coerce")
    c = c.sort_values("_rank", kind="stable")
    ids = (c["compound_id"] if "compound_id" in c.columns else c["id"]).astype(str)
    counts: dict[str, dict[str, int]] = {}
    if findings is not None and "compound_id" in findings.columns and len(findings):
        lf = findings[findings["kind"].isin([*(k for k, *_ in _LANE_WORDS), "lane_unmarked"])
                      & findings["compound_id"].notna()]
        for (cid, kind), n in lf.groupby([lf["compound_id"].astype(str), "kind"]).size().items():
            counts.setdefault(str(cid), {})[str(kind)] = int(n)
    rows = []
    for cid, (_, r) in zip(ids, c.iterrows(), strict=True):
        rec = r.to_dict()
        parts = sorted(((-_num(rec.get(sc)) if sc in rec else -_num(rec.get(dc)), i, key)
                        for i, (key, sc, dc) in enumerate(_FACTORS)))
        reasons = [t for *_, key in parts if (t := _factor_text(key, rec, counts.get(cid, {})))]
        if _num(rec.get("unmarked_m")) > 0:  # not in the score, but a defect to fix
            u, k = _num(rec.get("unmarked_m")), counts.get(cid, {}).get("lane_unmarked", 0)
            reasons.append(text(f"消防车道未标识{f' {k} 处' if k else ''} {u:.0f} m",
                                f"fire lanes not marked {u:.0f} m"
                                + (f" ({k} lane{'s' if k != 1 else ''})" if k else "")))
        if _int(rec.get("faulty_hydrants")) > 0:
            n = _int(rec.get("faulty_hydrants"))
            reasons.append(text(f"故障消火栓 {n} 个", f"{n} faulty hydrant{'s' if n != 1 else ''}"))
        if _num(rec.get("spacing_gap_m")) > 0:
            g = _num(rec.get("spacing_gap_m"))
            reasons.append(text(f"消火栓间距超限道路 {g:.0f} m", f"{g:.0f} m of street beyond hydrant spacing"))
        if not reasons:
            reasons.append(text("未发现缺陷", "no defect found"))
        score = _num(rec.get("risk_score"))
        rows.append({"id": cid, "rank": _int(rec.get("_rank")), "name": str(rec.get("name") or cid),
                     "score": round(score, 2), "households": _int(rec.get("households")),
                     "reasons": {"zh": "，".join(t["zh"] for t in reasons),
                                 "en": "; ".join(t["en"] for t in reasons)}})
    return rows


def add_reach_layers(app: RiskMapElement, findings: gpd.GeoDataFrame | None, *,
                     collection: str | None = "fire_findings", visible: bool | None = None,
                     district_view: bool = False) -> None:
    """Buildings-beyond-reach findings, one layer per kind of :data:`REACH_KINDS`.

    A district has tens of thousands of them: a served map loads a layer over
    ``inline_max`` by bbox from ``/collections/{collection}/items?kind=…``; an export keeps
    none of a layer that large and its legend says so.

    ``district_view`` (the fire map; needs fire.js): each kind also gets its counts on a
    :data:`REACH_CELL_M` grid, drawn below zoom :data:`REACH_DETAIL_ZOOM`; and an export keeps
    every building of a large layer as its centre point (shown from that zoom) instead of
    none.
    """
    o = app.options
    fcfg: dict[str, Any] = app.config.setdefault("fire", {}) if district_view else {}
    panes = fcfg.setdefault("zoomPanes", {})
    zoomed = fcfg.setdefault("zoomLayers", {})
    for kind, zh, en, shown in REACH_KINDS:
        frame = select_kinds(findings, {kind})
        if frame is None:
            continue
        group(app, "findings")
        show = shown if visible is None else visible
        fields = (Field("compound_id", "小区", "compound"),)
        base = replace(findings_spec(kind, zh=zh, en=en, kind="polygon", extra_fields=fields),
                       collection=collection, remote_query=f"kind={kind}", visible=show)
        if not district_view:
            app.add_layer(base, frame)
            continue
        n, z = len(frame), REACH_DETAIL_ZOOM
        grid = reach_grid(frame)
        app.add_layer(LayerSpec(
            f"{kind}_grid", f"{zh}（分布）", f"{en} (distribution)", "findings", "polygon",
            style={"stroke": False, "fillOpacity": 0.45, "interactive": False},
            classify=Graduated("count", REACH_GRID_BREAKS,
                               ("#fcbba1", "#fc9272", "#fb6a4a", "#de2d26", "#a50f15"),
                               title=text(f"每 {REACH_CELL_M:g} m 网格建筑数",
                                          f"buildings per {REACH_CELL_M:g} m cell")),
            fields=(Field("count", "建筑数", "buildings", digits=0),
                    Field("compounds", "涉及小区", "compounds")),
            popup_title=None, search=(), visible=show,
            note=text(f"共 {n:,} 栋；放大至 {z} 级及以上显示建筑",
                      f"{n:,} buildings; zoom to {z}+ for the buildings")), grid)
        app.config["layers"][-1]["pane"] = "reachgrid"  # shading under everything
        panes["reachgrid"] = {"max": z}
        if o.mode == "standalone" and n > o.inline_max:
            # every building as its centre point, with the fields of its popup
            pts = frame.copy()
            for c in ("time_s", "required_s", "hose_m"):
                if c in pts.columns:
                    pts[c] = pd.to_numeric(pts[c], errors="coerce").round(0)
            pts = pts.set_geometry(pts.to_crs(analysis_crs(pts.to_crs(STORAGE_CRS)))
                                   .geometry.representative_point().to_crs(pts.crs))
            src = frame["rule_source"].dropna().astype(str).unique() if "rule_source" in frame else []
            rule = f"（{src[0]}）" if len(src) == 1 else ""
            pspec = LayerSpec(
                kind, zh, en, "findings", "point",
                style={"color": "#67000d", "weight": 0.5, "fillColor": "#de2d26",
                       "fillOpacity": 0.85, "radius": 3},
                fields=(Field("feature_id", "建筑", "building"),
                        Field("other_id", "最近消防站", "nearest station"),
                        Field("time_s", "预计最早到场", "earliest arrival", "s", 0),
                        Field("required_s", "规定时间", "required", "s", 0),
                        Field("hose_m", "水带距离", "hose distance", "m", 0), *fields),
                popup_title="feature_id", search=("feature_id",), visible=show,
                note=text(f"全部 {n:,} 栋，以建筑中心点表示，{z} 级及以上显示{rule}",
                          f"all {n:,} buildings, as centre points, from zoom {z}"
                          + (f" ({src[0]})" if rule else "")))
            app.options = replace(o, inline_max=max(o.inline_max, n))
            try:
                app.add_layer(pspec, pts)
            finally:
                app.options = o
            zoomed[kind] = {"min": z}
        else:
            app.add_layer(base, frame)
