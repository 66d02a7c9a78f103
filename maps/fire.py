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

from maps.base import (
    Categorical,
    Field,
    Graduated,
    LayerSpec,
    MapOptions,
    RiskMapElement,
    _lonlat,
    _simplify,
    findings_spec,
    make_map,
    text,
)
from maps.compose import FindingsInput, LayerInput, add, concat_findings, get, group, select_kinds
from maps.styles import spec

__all__ = ["REACH_KINDS", "REPORT_FIELDS", "add_reach_layers", "build_fire", "lane_qualification"]

# Lane defect kinds (geo.fire_lanes) → qualification class, most severe first.
_LANE_KINDS = (("lane_obstructed", "obstructed"), ("lane_narrow", "narrow"),
               ("lane_low", "low"), ("dead_end_no_turnaround", "dead_end"))

# Buildings-beyond-reach finding kinds (geo.coverage): layer label, shown at start.
REACH_KINDS = (
    ("building_unreachable", "消防车不可达建筑", "Buildings not reachable", True),
    ("building_beyond_engine_reach", "消防车5分钟不可达建筑", "Beyond 5-min engine reach", True),
    ("building_beyond_micro_reach", "微型站3分钟不可达建筑", "Beyond 3-min micro-station reach", False),
    ("building_beyond_hydrant_radius", "消火栓保护半径外建筑", "Beyond hydrant radius", True),
)

SERVICE_AREA_SIMPLIFY_M = 5.0

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
    fnd = concat_findings(findings)
    flist = [fnd]

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
                       popup_title="station_id", search=()), sa, flist)

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
            _ranking_panel(app, compounds)
        add(app, cspec, compounds, flist)

    lanes = get(layers, "fire_lanes")
    if isinstance(lanes, gpd.GeoDataFrame):
        lanes = lane_qualification(lanes, fnd)
    add(app, spec("fire_lanes"), lanes, flist)
    add(app, spec("hydrants"), get(layers, "hydrants"), flist)
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
    add_reach_layers(app, fnd, collection=findings_collection)
    return m


def add_reach_layers(app: RiskMapElement, findings: gpd.GeoDataFrame | None, *,
                     collection: str | None = "fire_findings", visible: bool | None = None) -> None:
    """Buildings-beyond-reach findings, one layer per kind of :data:`REACH_KINDS`.

    A district has tens of thousands of them: a served map loads a layer over
    ``inline_max`` by bbox from ``/collections/{collection}/items?kind=…``; an export keeps
    none of a layer that large and its legend says so.
    """
    for kind, zh, en, shown in REACH_KINDS:
        frame = select_kinds(findings, {kind})
        if frame is None:
            continue
        group(app, "findings")
        app.add_layer(replace(findings_spec(kind, zh=zh, en=en, kind="polygon",
                                            extra_fields=(Field("compound_id", "小区", "compound"),)),
                              collection=collection, remote_query=f"kind={kind}",
                              visible=shown if visible is None else visible), frame)


def _ranking_panel(app: object, compounds: gpd.GeoDataFrame) -> None:
    c = compounds.copy()
    c["_rank"] = pd.to_numeric(c["rank"], errors="coerce")
    c = c.sort_values("_rank").head(10)
    rows = []
    for _, r in c.iterrows():
        share = r.get("engine_share")
        rows.append(((f"{int(r['_rank'])}", str(r.get("name") or r.get("id")),
                      f"{float(share):.0%}" if share is not None and pd.notna(share) else "—"), None))
    app.add_panel("ranking", text("老旧小区风险排名（前 10）", "Compound risk ranking (top 10)"),  # type: ignore[attr-defined]
                  rows, columns=[text("排名", "rank"), text("小区", "compound"),
                                 text("5分钟可达", "5-min reach")])
