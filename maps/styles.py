"""Default drawing specs (labels, colours, legends, popups) for the store layers.

Builders start from :func:`spec` and adjust with ``dataclasses.replace``. Colours are
ColorBrewer-like, chosen to stay distinct in print.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from layers.schema import SCHEMAS, pressure_class
from maps.base import Categorical, Field, LayerSpec, text

__all__ = ["GROUPS", "PRESSURE_CLASS_LABELS", "SPECS", "spec", "with_pressure_class"]

GROUPS: dict[str, tuple[str, str]] = {
    "findings": ("问题隐患", "Findings"),
    "pipelines": ("油气管道", "Pipelines"),
    "hca": ("高后果区与地区等级", "HCAs and location classes"),
    "monitoring": ("视频监控", "Monitoring"),
    "routes": ("危化品运输", "Hazmat transport"),
    "fire": ("消防", "Fire"),
    "context": ("基础图层", "Context"),
}

MEDIUM = (
    ("natural_gas", "#e6550d", "天然气", "natural gas"),
    ("crude_oil", "#54278f", "原油", "crude oil"),
    ("refined_oil", "#3182bd", "成品油", "refined oil"),
    ("lpg", "#c51b8a", "液化石油气", "LPG"),
    ("other", "#636363", "其他", "other"),
)

PRESSURE_CLASS_LABELS: dict[str, tuple[str, str, float]] = {
    "long_distance": ("长输管道", "long-distance", 5.0),
    "above_high_a": ("超高压", "above high A", 5.0),
    "high_a": ("高压A", "high A", 4.5),
    "high_b": ("高压B", "high B", 4.5),
    "sub_high_a": ("次高压A", "sub-high A", 3.5),
    "sub_high_b": ("次高压B", "sub-high B", 3.5),
    "medium_a": ("中压A", "medium A", 2.5),
    "medium_b": ("中压B", "medium B", 2.5),
    "low": ("低压", "low", 1.5),
}

_F = Field

# Road line weights by class (the base map: wider for the through roads).
ROAD_STYLE: dict[str, dict[str, Any]] = {
    "expressway": {"weight": 4, "color": "#8c8c8c"}, "national": {"weight": 3.5, "color": "#8c8c8c"},
    "provincial": {"weight": 3, "color": "#8c8c8c"}, "arterial": {"weight": 3},
    "collector": {"weight": 2}, "local": {"weight": 1.5}, "service": {"weight": 1},
}


def _enum(layer: str, field: str, labels: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {k: text(*labels.get(k, (k, k))) for k in (SCHEMAS[layer][field].enum or ())}


SPECS: dict[str, LayerSpec] = {
    "pipelines": LayerSpec(
        "pipelines", "油气管道", "Pipelines", "pipelines", "line", style={"weight": 3, "opacity": 0.9},
        classify=Categorical("medium", MEDIUM, title=text("介质", "medium")),
        style_by=("pressure_class", {k: {"weight": w} for k, (_z, _e, w) in PRESSURE_CLASS_LABELS.items()}),
        fields=(_F("name", "名称", "name"),
                _F("medium", "介质", "medium", enum={v: text(z, e) for v, _c, z, e in MEDIUM}),
                _F("kind", "类别", "kind", enum={"long_distance": text("长输管道", "long-distance"),
                                                 "urban_gas": text("城镇燃气管道", "urban gas main")}),
                _F("pressure_class", "压力级制", "pressure class",
                   enum={k: text(z, e) for k, (z, e, _w) in PRESSURE_CLASS_LABELS.items()}),
                _F("pressure_mpa", "设计压力", "pressure", "MPa"),
                _F("diameter_mm", "管径", "diameter", "mm", 0),
                _F("wall_mm", "壁厚", "wall", "mm", 1),
                _F("operator", "运营单位", "operator"),
                _F("status", "状态", "status"),
                _F("next_inspection_due", "下次检测", "next inspection")),
        tooltip="id", collection="pipelines"),
    "buildings": LayerSpec(
        "buildings", "建筑物", "Buildings", "context", "polygon",
        style={"color": "#737373", "weight": 0.5, "fillColor": "#bdbdbd", "fillOpacity": 0.6},
        fields=(_F("name", "名称", "name"),
                _F("use", "用途", "use", enum=_enum("buildings", "use", {
                    "residential": ("住宅", "residential"), "school": ("学校", "school"),
                    "kindergarten": ("幼儿园", "kindergarten"), "hospital": ("医院", "hospital"),
                    "elderly_care": ("养老机构", "elderly care"), "market": ("市场", "market"),
                    "office": ("办公", "office"), "industrial": ("工业", "industrial"),
                    "warehouse": ("仓库", "warehouse"), "other": ("其他", "other")})),
                _F("floors", "层数", "floors", digits=0), _F("households", "户数", "households", digits=0)),
        collection="buildings", min_zoom=16, overview=True),
    "sites": LayerSpec(
        "sites", "特定场所", "Identified sites", "context", "point",
        style={"color": "#252525", "weight": 1, "fillColor": "#fee391", "fillOpacity": 0.9, "radius": 6},
        fields=(_F("name", "名称", "name"), _F("kind", "类别", "kind"),
                _F("occupants", "人数", "occupants", digits=0)),
        collection="sites"),
    "hca": LayerSpec(
        "hca", "已登记高后果区", "Registered HCAs", "hca", "polygon",
        style={"weight": 2, "fillOpacity": 0.15, "dashArray": "6 4"},
        classify=Categorical("grade", (("III", "#a50f15", "Ⅲ级", "grade III"),
                                       ("II", "#fb6a4a", "Ⅱ级", "grade II"),
                                       ("I", "#fcbba1", "Ⅰ级", "grade I")),
                             title=text("等级", "grade")),
        fields=(_F("pipeline_id", "管道", "pipeline"), _F("grade", "等级", "grade"),
                _F("start_m", "起点里程", "from", "m", 1), _F("end_m", "终点里程", "to", "m", 1),
                _F("people_dense", "人员密集型", "people-dense"),
                _F("video_monitored", "视频监控", "video monitored"),
                _F("coverage", "监控覆盖率", "monitoring coverage", type="percent")),
        collection="hca"),
    "cameras": LayerSpec(
        "cameras", "视频监控", "Cameras", "monitoring", "point",
        style={"color": "#74c476", "weight": 0.5, "opacity": 0.6, "fillColor": "#a1d99b",
               "fillOpacity": 0.06, "radius": 4},
        fields=(_F("range_m", "监控范围", "range", "m", 0),), radius_field="range_m",
        collection="cameras"),
    "roads": LayerSpec(
        "roads", "道路", "Roads", "context", "line", style={"color": "#9e9e9e", "weight": 1.5},
        style_by=("road_class", ROAD_STYLE),
        fields=(_F("name", "名称", "name"), _F("road_class", "等级", "class"),
                _F("hazmat", "危化品通行", "hazmat"), _F("speed_kmh", "限速", "speed", "km/h", 0),
                _F("width_m", "宽度", "width", "m", 1), _F("bridge", "桥梁", "bridge"),
                _F("tunnel", "隧道", "tunnel")),
        tooltip="name", label="name", label_min_zoom=15, collection="roads", min_zoom=12,
        overview=True, inline_max=1000),
    "restricted_zones": LayerSpec(
        "restricted_zones", "限行禁行区域", "Restricted zones", "routes", "polygon",
        style={"weight": 2, "fillOpacity": 0.25},
        classify=Categorical("rule", (("forbidden", "#cb181d", "禁行", "forbidden"),
                                      ("permit", "#fd8d3c", "凭证通行", "permit only"),
                                      ("avoid", "#fed976", "尽量避让", "avoid")),
                             title=text("规则", "rule")),
        fields=(_F("name", "名称", "name"), _F("kind", "类别", "kind"),
                _F("rule", "规则", "rule", enum={"forbidden": text("禁行", "forbidden"),
                                                 "permit": text("凭证通行", "permit only"),
                                                 "avoid": text("尽量避让", "avoid")}),
                _F("hours", "时段", "hours"), _F("authority", "发布机关", "authority"),
                _F("notice", "通告编号", "notice")),
        tooltip="name", collection="restricted_zones"),
    "hazmat_routes": LayerSpec(
        "hazmat_routes", "危化品运输路线", "Hazmat routes", "routes", "line",
        style={"weight": 5, "opacity": 0.9},
        classify=Categorical("status", (("published", "#1a9641", "已公布", "published"),
                                        ("draft", "#878787", "草案", "draft")),
                             title=text("状态", "status")),
        style_by=("status", {"draft": {"dashArray": "8 6"}}),
        fields=(_F("name", "名称", "name"), _F("hours", "通行时段", "hours"),
                _F("status", "状态", "status"), _F("authority", "发布机关", "authority")),
        tooltip="name", collection="hazmat_routes"),
    "fire_lanes": LayerSpec(
        "fire_lanes", "消防车通道", "Fire lanes", "fire", "line", style={"weight": 4},
        classify=Categorical("qualification", (
            ("ok", "#1a9641", "合格", "ok"), ("narrow", "#d7191c", "宽度不足", "narrow"),
            ("low", "#fdae61", "净高不足", "low"), ("obstructed", "#7b3294", "被占用", "obstructed"),
            ("dead_end", "#2c7bb6", "尽头无回车场", "dead end"),
            ("unchecked", "#bababa", "未检查", "unchecked")), title=text("资格", "qualification")),
        fields=(_F("compound_id", "小区", "compound"), _F("width_m", "宽度", "width", "m", 1),
                _F("clear_height_m", "净高", "clear height", "m", 1),
                _F("obstructed", "占用", "obstructed"), _F("marked", "已标识", "marked"),
                _F("qualification", "资格", "qualification"),
                _F("reasons", "问题", "problems", type="list")),
        collection="fire_lanes"),
    "fire_stations": LayerSpec(
        "fire_stations", "消防站", "Fire stations", "fire", "point",
        style={"color": "#000000", "weight": 2, "fillOpacity": 1, "radius": 8},
        classify=Categorical("kind", (("station", "#cb181d", "消防站", "fire station"),
                                      ("micro_station", "#fd8d3c", "微型消防站", "micro station")),
                             title=text("类别", "kind")),
        fields=(_F("name", "名称", "name"), _F("kind", "类别", "kind"),
                _F("engines", "消防车", "engines", digits=0),
                _F("turnout_s", "出动时间", "turnout", "s", 0)),
        tooltip="name", collection="fire_stations"),
    "hydrants": LayerSpec(
        "hydrants", "室外消火栓", "Hydrants", "fire", "point",
        style={"color": "#08306b", "weight": 1, "fillOpacity": 1, "radius": 4},
        classify=Categorical("status", (("ok", "#2171b5", "正常", "ok"),
                                        ("faulty", "#e31a1c", "故障", "faulty")),
                             title=text("状态", "status")),
        fields=(_F("status", "状态", "status"),), collection="hydrants"),
    "compounds": LayerSpec(
        "compounds", "老旧小区", "Old compounds", "fire", "polygon",
        style={"color": "#525252", "weight": 1.5, "fillColor": "#fdd0a2", "fillOpacity": 0.3},
        fields=(_F("name", "名称", "name"), _F("built_year", "建成年份", "built", digits=0),
                _F("households", "户数", "households", digits=0),
                _F("property_management", "物业管理", "property management"),
                _F("plan", "一区一策", "plan")),
        tooltip="name", collection="compounds"),
    # issue 16: pipeline external protection
    "construction_sites": LayerSpec(
        "construction_sites", "第三方施工", "Construction sites", "pipelines", "polygon",
        style={"color": "#b35806", "weight": 1.5, "fillColor": "#fdb863", "fillOpacity": 0.4,
               "radius": 6},
        classify=Categorical("status", (("active", "#e66101", "施工中", "active"),
                                        ("planned", "#fdb863", "计划", "planned"),
                                        ("finished", "#bababa", "已完工", "finished")),
                             title=text("状态", "status")),
        fields=(_F("name", "名称", "name"), _F("work", "作业", "work"),
                _F("permit_no", "许可证号", "permit"), _F("permit_from", "许可起", "permit from"),
                _F("permit_to", "许可止", "permit to"), _F("contractor", "施工单位", "contractor"),
                _F("status", "状态", "status")),
        collection="construction_sites"),
    "pipeline_facilities": LayerSpec(
        "pipeline_facilities", "管道附属设施", "Pipeline facilities", "pipelines", "point",
        style={"color": "#542788", "weight": 1, "fillColor": "#8073ac", "fillOpacity": 0.9,
               "radius": 5},
        fields=(_F("name", "名称", "name"), _F("kind", "类别", "kind"),
                _F("pipeline_id", "管道", "pipeline")),
        collection="pipeline_facilities"),
    "warning_signs": LayerSpec(
        "warning_signs", "警示标识", "Warning signs", "pipelines", "point",
        style={"color": "#333333", "weight": 1, "fillOpacity": 1, "radius": 3},
        classify=Categorical("status", (("ok", "#1a9850", "完好", "ok"),
                                        ("damaged", "#fdae61", "损坏", "damaged"),
                                        ("missing", "#d73027", "缺失", "missing")),
                             title=text("状态", "status")),
        fields=(_F("pipeline_id", "管道", "pipeline"), _F("kind", "类别", "kind"),
                _F("status", "状态", "status")),
        collection="warning_signs"),
    "patrol_paths": LayerSpec(
        "patrol_paths", "巡护通道", "Patrol paths", "pipelines", "line",
        style={"color": "#35978f", "weight": 2, "dashArray": "2 4"},
        classify=Categorical("passable", ((True, "#35978f", "可通行", "passable"),
                                          (False, "#d73027", "不可通行", "impassable")),
                             title=text("通行", "passable")),
        fields=(_F("pipeline_id", "管道", "pipeline"), _F("passable", "可通行", "passable")),
        collection="patrol_paths"),
}


def spec(layer: str, **changes: Any) -> LayerSpec:
    """The default spec of ``layer``, with ``changes`` applied."""
    return replace(SPECS[layer], **changes) if changes else SPECS[layer]


def with_pressure_class(pipelines: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Add ``pressure_class`` (GB 50028 class for urban gas, ``long_distance`` otherwise)."""
    out = pipelines.copy()
    p = pd.to_numeric(out.get("pressure_mpa"), errors="coerce") if "pressure_mpa" in out else None
    kinds = out["kind"] if "kind" in out else pd.Series("urban_gas", index=out.index)
    if p is None:
        out["pressure_class"] = None
        return out
    out["pressure_class"] = [
        "long_distance" if k == "long_distance" else (pressure_class(float(v)) if np.isfinite(v) else None)
        for k, v in zip(kinds, p.to_numpy(dtype=float), strict=True)
    ]
    return out
