"""The planners' map: pipelines, occupancy corridor, setback findings, location classes, HCAs,
cameras and HCA monitoring coverage.

Example
-------
>>> m = build_planner({"pipelines": pipes, "buildings": bldgs}, findings)  # doctest: +SKIP
>>> maps.offline.render_html(m, mode="inline")                              # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import STORAGE_CRS, analysis_crs
from geo.hca import coverage_share
from maps.base import (
    Categorical,
    Field,
    Graduated,
    LayerSpec,
    MapOptions,
    findings_spec,
    make_map,
    text,
)
from maps.compose import FindingsInput, LayerInput, add, concat_findings, get, group, select_kinds
from maps.styles import spec, with_pressure_class

__all__ = ["COVERAGE_TARGETS", "build_planner", "corridor_polygons", "coverage_share",
           "fmt_share", "setback_lines"]

# Plan targets for video monitoring of people-dense HCAs (share of HCA length covered).
COVERAGE_TARGETS = ((2020, 0.30), (2021, 0.70), (2022, 1.00))

LOCATION_CLASSES = (
    (1, "#ffffcc", "一级地区", "class 1"), (2, "#a1dab4", "二级地区", "class 2"),
    (3, "#41b6c4", "三级地区", "class 3"), (4, "#225ea8", "四级地区", "class 4"),
)


def corridor_polygons(pipelines: gpd.GeoDataFrame, *, half_width_m: float = 5.0,
                      urban_extra_m: float = 0.5) -> gpd.GeoDataFrame:
    """Display polygons of the occupancy corridor (lon/lat).

    Long-distance lines: ``half_width_m`` each side (Pipeline Protection Law Art. 30); urban
    gas mains: OD/2 + ``urban_extra_m``. For drawing only; membership is decided by exact
    distances in :mod:`geo.pipelines`, never by these buffers.
    """
    if len(pipelines) == 0:
        return pipelines
    proj = pipelines.to_crs(analysis_crs(pipelines))
    od = proj["diameter_mm"].astype(float).fillna(0.0) / 2000.0 if "diameter_mm" in proj else 0.0
    urban = proj["kind"].astype(str).eq("urban_gas") if "kind" in proj else False
    width = (urban * (od + urban_extra_m) + (~urban) * half_width_m) if hasattr(urban, "__len__") \
        else half_width_m
    out = proj[["id"]].copy() if "id" in proj else proj.iloc[:, :0].copy()
    out["half_width_m"] = width
    out = gpd.GeoDataFrame(out, geometry=proj.geometry.buffer(width, cap_style="flat"),
                           crs=proj.crs)
    return out.to_crs(STORAGE_CRS)


def fmt_share(share: float) -> str:
    """A share as every map and panel prints it: one decimal, never rounded up to a target
    it misses (0.9974 → "99.7 %", 0.99996 → "99.9 %", 1.0 → "100 %")."""
    pct = np.floor(share * 1000 + 1e-9) / 10
    return f"{pct:.0f} %" if pct == round(pct) else f"{pct:.1f} %"


def _clause(source: str) -> str:
    """"GB 50253-2003(2006) 4.1.5 埋地…" → "GB 50253 §4.1.5"; "GB 50028-2006 表6.3.3-1 …" →
    "GB 50028 表6.3.3-1"."""
    m = re.match(r"\s*([A-Z]+(?:/T)?\s*\d+)(?:[-—]\d{4})?(?:\(\d{4}\))?\s*([^\s(]\S*)?", source)
    if not m:
        return source.split(" ")[0] if source else ""
    std, clause = m.group(1), m.group(2) or ""
    if clause and clause[0].isdigit():
        clause = "§" + clause
    return f"{std} {clause}".strip()


def setback_lines(pipelines: gpd.GeoDataFrame, rules: Sequence[Any]) -> gpd.GeoDataFrame:
    """Display lines (lon/lat) at each pipeline's required setbacks, both sides.

    One pair of lines per pipeline and applicable setback row (the rows the check applies:
    :func:`geo.pipelines.setback_rows`), at ``required_m`` + OD/2 from the centre line (the
    rule's clear distance is from the pipe wall), labelled "间距 15m（GB 50253 §4.1.5）".
    For drawing only; the check measures exact distances.
    """
    from geo.pipelines import setback_rows

    cols = ["id", "pipeline_id", "rule_id", "required_m", "offset_m", "label_zh", "label_en",
            "rule_source", "building_uses"]
    if len(pipelines) == 0 or not rules:
        return gpd.GeoDataFrame({c: [] for c in cols}, geometry=[], crs=STORAGE_CRS)
    proj = pipelines.to_crs(analysis_crs(pipelines))
    recs: list[dict[str, Any]] = []
    geoms: list[Any] = []
    for pipe, geom in zip(proj.drop(columns=proj.geometry.name).to_dict("records"),
                          proj.geometry, strict=True):
        if geom is None or geom.is_empty or pd.isna(pipe.get("pressure_mpa")):
            continue
        od = float(pipe.get("diameter_mm") or 0.0) / 2000.0
        for r in setback_rows(pipe, rules):
            req = float(r["required_m"])
            off = req + od
            sides = [shapely.offset_curve(geom, d, join_style="round") for d in (off, -off)]
            clause = _clause(str(r.get("source", "")))
            uses = r.get("building_uses")
            recs.append({"id": f"{pipe['id']}:{r['id']}", "pipeline_id": pipe["id"],
                         "rule_id": r["id"], "required_m": req, "offset_m": round(off, 3),
                         "label_zh": f"间距 {req:g}m（{clause}）",
                         "label_en": f"setback {req:g} m ({clause})",
                         "rule_source": r.get("source"),
                         "building_uses": ", ".join(uses) if uses else None})
            geoms.append(shapely.union_all(sides))
    out = gpd.GeoDataFrame(pd.DataFrame(recs, columns=cols), geometry=geoms, crs=proj.crs)
    return out.to_crs(STORAGE_CRS)


def _default_setback_rules() -> tuple[Any, ...]:
    from layers.rules import load_rules

    return load_rules("pipelines").rows("setback")


def build_planner(
    layers: Mapping[str, LayerInput],
    findings: FindingsInput = None,
    *,
    options: MapOptions | None = None,
    coverage_overall: float | None = None,
    setback_rules: Sequence[Any] | None = None,
) -> folium.Map:
    """The planner map.

    ``layers``: store layers (``pipelines``, ``buildings``, ``sites``, ``hca``, ``cameras``,
    ``roads``, ``construction_sites``, ``pipeline_facilities``, ``warning_signs``,
    ``patrol_paths``)
    and, when computed, ``hca_computed`` (HCA segments with ``grade``), ``location_classes``
    (chainage ranges with ``location_class``), ``corridor`` (else drawn from pipelines),
    ``monitoring_coverage`` (per people-dense HCA ``coverage``; gives ``coverage_overall``
    when that is not passed).
    ``findings``: common-schema frames (occupancy, setback, HCA diff …). ``coverage_overall``:
    share of people-dense HCA length under camera coverage, shown against the plan targets.
    ``setback_rules``: the active setback rows of the check (default: the shipped
    ``pipelines`` table) — each pipeline's required setback lines are drawn from them.
    """
    options = options or MapOptions()
    m, app = make_map(options, title=text("油气管道安全规划图", "Pipeline safety — planner map"))
    fnd = concat_findings(findings)
    flist = [fnd]

    # context: the road network with names is the offline base
    add(app, spec("roads"), get(layers, "roads"), flist)
    add(app, spec("buildings", visible=True), get(layers, "buildings"), flist)
    add(app, spec("sites"), get(layers, "sites"), flist)

    # pipelines + corridor
    pipes = get(layers, "pipelines")
    if isinstance(pipes, gpd.GeoDataFrame):
        pipes = with_pressure_class(pipes)
        corridor = get(layers, "corridor")
        if corridor is None:
            corridor = corridor_polygons(pipes)
        add(app, LayerSpec("corridor", "占压控制带", "Occupancy corridor", "pipelines", "polygon",
                           style={"color": "#fd8d3c", "weight": 0.5, "fillColor": "#fdae6b",
                                  "fillOpacity": 0.35},
                           fields=(Field("half_width_m", "单侧宽度", "half width", "m", 2),),
                           search=(), note=text("长输管道中心线两侧各 5 m（管道保护法第30条）；城镇燃气为管径/2+保护范围",
                                                "5 m each side of long-distance lines (Pipeline "
                                                "Protection Law Art. 30); OD/2 + zone for urban gas")),
            corridor, flist)
    add(app, spec("pipelines"), pipes, flist)
    # external protection (issue 16): third-party works, facilities, signs, patrol paths
    add(app, spec("construction_sites"), get(layers, "construction_sites"), flist)
    for name in ("pipeline_facilities", "warning_signs", "patrol_paths"):
        add(app, spec(name, visible=False), get(layers, name), flist)
    if isinstance(pipes, gpd.GeoDataFrame):
        rows = _default_setback_rules() if setback_rules is None else setback_rules
        lines = setback_lines(pipes, rows)
        if len(lines):
            app.add_layer(LayerSpec(
                "setback_lines", "规定安全间距线", "Required setback lines", "pipelines", "line",
                style={"color": "#6a51a3", "weight": 1.2, "opacity": 0.85, "dashArray": "5 4"},
                fields=(Field("pipeline_id", "管道", "pipeline"),
                        Field("required_m", "规定净距", "required clear distance", "m", 1),
                        Field("offset_m", "距中心线", "from the centre line", "m", 2),
                        Field("building_uses", "适用建筑", "applies to"),
                        Field("rule_source", "依据条款", "rule source")),
                popup_title="label_zh", tooltip="label_zh",
                label={"zh": "label_zh", "en": "label_en"}, label_min_zoom=16,
                search=(),
                note=text("按检查所用规则表（管道类别、压力级制、壁厚）的规定净距，自管壁起算",
                          "clear distances of the rule table the check uses (pipeline class, "
                          "pressure class, wall), from the pipe wall")), lines)

    # HCAs and location classes
    loc = get(layers, "location_classes")
    if loc is not None:
        add(app, LayerSpec("location_classes", "地区等级", "Location classes", "hca", "line",
                           style={"weight": 10, "opacity": 0.55},
                           classify=Categorical("location_class", LOCATION_CLASSES,
                                                title=text("GB 50251 4.2", "GB 50251 4.2")),
                           fields=(Field("pipeline_id", "管道", "pipeline"),
                                   Field("location_class", "地区等级", "class", digits=0),
                                   Field("households", "户数", "households", digits=0),
                                   Field("chainage_from_m", "起点里程", "from", "m", 1),
                                   Field("chainage_to_m", "终点里程", "to", "m", 1),
                                   Field("station_from", "起点桩号", "from"),
                                   Field("station_to", "终点桩号", "to"),
                                   Field("class_zh", "地区等级（细分）", "class (division)"),
                                   Field("design_factor", "强度设计系数", "design factor"),
                                   Field("rule_source", "依据条款", "rule source")),
                           popup_title="pipeline_id", search=()), loc, flist)
    computed = get(layers, "hca_computed")
    if isinstance(computed, gpd.GeoDataFrame):
        computed = computed.copy()
        if "id" not in computed.columns and "hca_id" in computed.columns:
            computed["id"] = computed["hca_id"]
    if computed is not None:
        hca = spec("hca")
        add(app, LayerSpec("hca_computed", "识别的高后果区", "Computed HCAs", "hca", "line",
                           style={"weight": 8, "opacity": 0.6}, classify=hca.classify,
                           fields=(Field("pipeline_id", "管道", "pipeline"),
                                   Field("grade", "等级", "grade"),
                                   Field("station_from", "起点桩号", "from"),
                                   Field("station_to", "终点桩号", "to"),
                                   Field("length_m", "长度", "length", "m", 0),
                                   Field("criteria_zh", "判定依据", "criteria"),
                                   Field("criteria_en", "判定依据（英文）", "criteria (en)")),
                           search=("id",),
                           note=text("按 GB 32167-2015 识别；虚线为已登记高后果区",
                                     "identified by GB 32167-2015; dashed: registered HCAs")),
            computed, flist)
    add(app, spec("hca"), get(layers, "hca"), flist)
    add(app, spec("cameras", visible=False), get(layers, "cameras"), flist)

    # findings: occupancy (fixed red) and setbacks by shortfall; the rest by severity
    occ = select_kinds(fnd, {"occupancy"})
    setb = select_kinds(fnd, {"setback"})
    rest = None
    if fnd is not None:
        rest = fnd[~fnd["kind"].isin(["occupancy", "setback"])]
        rest = rest if len(rest) else None
    if occ is not None:
        group(app, "findings")
        occ_spec = findings_spec("occupancy", zh="占压", en="Occupancy")
        from dataclasses import replace
        occ_spec = replace(occ_spec, classify=Categorical(
            "kind", (("occupancy", "#67001f", "占压（压占管道控制带）", "occupancy (inside the corridor)"),)))
        app.add_layer(occ_spec, occ)
    if setb is not None:
        group(app, "findings")
        app.add_layer(findings_spec("setback", zh="安全距离不足", en="Insufficient setback",
                                    by="shortfall"), setb)
    if rest is not None:
        group(app, "findings")
        app.add_layer(findings_spec("other_findings", zh="其他问题", en="Other findings"), rest)

    mon = get(layers, "monitoring_coverage")
    if isinstance(mon, gpd.GeoDataFrame):
        add(app, LayerSpec("monitoring_coverage", "高后果区视频监控覆盖", "HCA video coverage",
                           "monitoring", "line", style={"weight": 5, "opacity": 0.85},
                           classify=Graduated("coverage", (0.0, 0.3, 0.7, 1.0, float("inf")),
                                              ("#d7301f", "#fc8d59", "#fdcc8a", "#1a9850"),
                                              title=text("覆盖率", "coverage")),
                           fields=(Field("hca_id", "高后果区", "HCA"),
                                   Field("pipeline_id", "管道", "pipeline"),
                                   Field("grade", "等级", "grade"),
                                   Field("coverage", "覆盖率", "coverage", type="percent"),
                                   Field("covered_m", "覆盖长度", "covered", "m", 0),
                                   Field("length_m", "长度", "length", "m", 0),
                                   Field("cameras", "摄像机", "cameras", digits=0)),
                           popup_title="hca_id", search=("hca_id",), visible=False), mon, flist)
        if coverage_overall is None:
            coverage_overall = coverage_share(mon)
    if coverage_overall is not None:
        rows = [((str(y), fmt_share(t), fmt_share(coverage_overall)),
                 "ok" if coverage_overall >= t - 1e-9 else "bad") for y, t in COVERAGE_TARGETS]
        app.add_panel("coverage", text("人员密集型高后果区视频监控覆盖率", "Video coverage of people-dense HCAs"),
                      rows, columns=[text("年度", "year"), text("目标", "target"),
                                     text("现状", "current")])
    return m
