"""The common map factory: basemaps, layer specs, legends, controls and the page config.

Every audience map is a :class:`folium.Map` carrying one :class:`RiskMapElement`, which holds
the layer specs and data and renders a single ``RiskMap.init(map, config)`` call of the
vendored ``riskmap.js`` (grouped layer control, categorical/graduated legend, search by
id/name, measure tool, fullscreen, mouse coordinates, zh/en switch). Data are lon/lat
(EPSG:4490 ≈ WGS 84 at map scale); on a Gaode basemap they are shifted to GCJ-02 for
display only, here and in the browser for data loaded later.

Large layers are not inlined: a layer given as :class:`RemoteSource` (or a GeoDataFrame with
more than ``MapOptions.inline_max`` features when a remote URL is known) is loaded from the
API by bbox as the view moves; in a standalone export a large layer keeps only the features a
finding refers to, simplified, and the legend states what was left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from jinja2 import Template

from geo.crs import STORAGE_CRS, analysis_crs, wgs84_to_gcj02
from maps.html import script_json

__all__ = [
    "BASEMAPS",
    "CLUSTER_MAX_ZOOM",
    "FINDING_FIELDS",
    "KIND_LABELS",
    "SEVERITY_CLASSES",
    "STATIC_PREFIX",
    "Basemap",
    "Categorical",
    "Field",
    "Graduated",
    "LayerSpec",
    "MapOptions",
    "RemoteSource",
    "RiskMapElement",
    "Text",
    "findings_spec",
    "layer_ids_in_findings",
    "make_map",
    "text",
]

STATIC_PREFIX = "/static/maps"

Text = dict[str, str]


def text(zh: str, en: str) -> Text:
    """A label in both languages."""
    return {"zh": zh, "en": en}


# ----------------------------------------------------------------------------- basemaps
@dataclass(frozen=True)
class Basemap:
    """A tile basemap preset; ``url`` may contain ``{key}`` (Tianditu) filled from settings."""

    name: str
    label: Text
    urls: tuple[str, ...] = ()
    attribution: str = ""
    subdomains: str = "abc"
    max_zoom: int = 19
    gcj: bool = False  # tiles in GCJ-02: shift data for display


BASEMAPS: dict[str, Basemap] = {
    "none": Basemap("none", text("无底图", "No basemap")),
    "osm": Basemap("osm", text("OpenStreetMap", "OpenStreetMap"),
                   ("https://tile.openstreetmap.org/{z}/{x}/{y}.png",),
                   "© OpenStreetMap contributors", max_zoom=19),
    "tianditu": Basemap(
        "tianditu", text("天地图", "Tianditu"),
        ("https://t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
         "&LAYER=vec&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
         "&TILECOL={x}&tk={key}",
         "https://t{s}.tianditu.gov.cn/cva_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
         "&LAYER=cva&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
         "&TILECOL={x}&tk={key}"),
        "© 天地图 (国家地理信息公共服务平台)", subdomains="01234567", max_zoom=18),
    "gaode": Basemap("gaode", text("高德地图", "Gaode"),
                     ("https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1"
                      "&style=8&x={x}&y={y}&z={z}",),
                     "© 高德地图 (GCJ-02)", subdomains="1234", max_zoom=18, gcj=True),
    "local": Basemap("local", text("本地瓦片", "Local tiles"), (), "", max_zoom=20),
}


@dataclass(frozen=True)
class MapOptions:
    """How a map is built: basemap, language, served or standalone, scale thresholds.

    ``tile_url`` is the local tile URL template (``basemap="local"``); ``tianditu_key`` comes
    from settings and is required for ``basemap="tianditu"``. ``mode="served"`` loads large
    layers from the API (``api_base`` + ``/collections/{id}/items``); ``"standalone"``
    embeds them reduced to the features findings refer to. A remote layer is loaded from
    ``remote_min_zoom``, at most ``remote_limit`` features per view, in pages of
    ``remote_page`` after a first page of ``remote_first``.
    """

    basemap: str = "none"
    tile_url: str | None = None
    tianditu_key: str | None = None
    lang: Literal["zh", "en"] = "zh"
    mode: Literal["served", "standalone"] = "standalone"
    api_base: str = ""
    inline_max: int = 5000
    remote_min_zoom: int = 15
    remote_limit: int = 10000
    remote_page: int = 2000
    remote_first: int = 500
    simplify_m: float = 0.5
    precision: int = 6
    title: Text | None = None

    def tiles(self) -> tuple[Basemap, list[str]]:
        """The chosen preset and its concrete tile URL templates."""
        if self.basemap not in BASEMAPS:
            raise ValueError(f"unknown basemap {self.basemap!r}; expected one of "
                             + ", ".join(BASEMAPS))
        bm = BASEMAPS[self.basemap]
        if bm.name == "local":
            if not self.tile_url:
                raise ValueError("basemap 'local' needs a tile URL template "
                                 "(e.g. /tiles/{z}/{x}/{y}.png)")
            return bm, [self.tile_url]
        if bm.name == "tianditu":
            if not self.tianditu_key:
                raise ValueError("basemap 'tianditu' needs a Tianditu key "
                                 "(settings: RISKMAP_TIANDITU_KEY)")
            return bm, [u.replace("{key}", self.tianditu_key) for u in bm.urls]
        return bm, list(bm.urls)


# ----------------------------------------------------------------------------- styling
@dataclass(frozen=True)
class Categorical:
    """Colour by the value of ``field``; ``classes`` are ``(value, colour, zh, en)``."""

    field: str
    classes: tuple[tuple[Any, str, str, str], ...]
    default: str = "#888888"
    title: Text | None = None

    def to_js(self, values: pd.Series | None) -> dict[str, Any]:
        counts = values.astype(str).value_counts() if values is not None else None
        out = []
        for value, color, zh, en in self.classes:
            c: dict[str, Any] = {"value": value, "color": color, "label": text(zh, en)}
            if counts is not None:
                c["count"] = int(counts.get(str(value), 0))
            out.append(c)
        return {"type": "categorical", "field": self.field, "classes": out,
                "default": self.default, "title": self.title}


@dataclass(frozen=True)
class Graduated:
    """Colour by numeric ``field``: ``breaks`` has one more edge than ``colors``.

    A value v gets colour i when breaks[i] <= v < breaks[i+1]; values beyond the ends take the
    first/last colour; the last edge may be ``inf``.
    """

    field: str
    breaks: tuple[float, ...]
    colors: tuple[str, ...]
    unit: str = ""
    default: str = "#888888"
    title: Text | None = None

    def __post_init__(self) -> None:
        if len(self.breaks) != len(self.colors) + 1:
            raise ValueError(f"graduated {self.field}: {len(self.colors)} colours need "
                             f"{len(self.colors) + 1} breaks, got {len(self.breaks)}")

    def to_js(self, values: pd.Series | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "graduated", "field": self.field,
            "breaks": [b if np.isfinite(b) else 1e308 for b in self.breaks],
            "colors": list(self.colors), "unit": self.unit, "default": self.default,
            "title": self.title,
        }
        if values is not None:
            v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            idx = np.clip(np.searchsorted(np.asarray(self.breaks[1:-1]), v, side="right"),
                          0, len(self.colors) - 1)
            out["counts"] = np.bincount(idx, minlength=len(self.colors)).tolist()
        return out


@dataclass(frozen=True)
class Field:
    """A popup row: property ``key`` with its label, unit, digits, enum labels or type."""

    key: str
    zh: str
    en: str
    unit: str | None = None
    digits: int = 2
    type: Literal["text", "list", "percent"] | None = None
    enum: Mapping[str, Text] | None = None

    def to_js(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "label": text(self.zh, self.en),
                             "digits": self.digits}
        if self.unit:
            d["unit"] = self.unit
        if self.type:
            d["type"] = self.type
        if self.enum:
            d["enum"] = dict(self.enum)
        return d


@dataclass(frozen=True)
class RemoteSource:
    """A layer the browser loads from the API by bbox (``url`` = the items endpoint)."""

    url: str
    count: int | None = None


@dataclass(frozen=True)
class LayerSpec:
    """How one layer is drawn: its id, labels, group, geometry kind, style and popup."""

    id: str
    zh: str
    en: str
    group: str
    kind: Literal["point", "line", "polygon"]
    style: Mapping[str, Any] = field(default_factory=dict)
    classify: Categorical | Graduated | None = None
    style_by: tuple[str, Mapping[str, Mapping[str, Any]]] | None = None
    fields: tuple[Field, ...] = ()
    popup_title: str | None = "id"
    sentence: bool = False  # popups lead with message_zh / message_en
    tooltip: str | None = None
    search: tuple[str, ...] = ("id", "name")
    visible: bool = True
    legend: bool = True
    collection: str | None = None  # API collection id for remote loading
    remote_query: str | None = None  # filter of the remote items, e.g. "kind=setback"
    overview: bool = False  # below min_zoom, draw a density grid (GET /maps/density/{collection})
    min_zoom: int | None = None
    note: Text | None = None
    radius_field: str | None = None  # points drawn as circles of this many metres
    label: str | Text | None = None  # property (per language) drawn along lines (road names)
    label_min_zoom: int = 16  # labels from this zoom
    cluster: int | None = None  # up to this zoom, clustered markers shadow the features
    link: tuple[str, Text] | None = None  # popup link: (URL template with {field}, label)
    inline_max: int | None = None  # served: loaded by bbox above this many (else the option's)

    def columns(self) -> list[str]:
        """Properties the browser needs (everything else is dropped before embedding)."""
        cols: list[str] = []
        for c in (self.popup_title, self.tooltip, *self.search,
                  *(f.key for f in self.fields)):
            if c and c not in cols:
                cols.append(c)
        if self.classify is not None and self.classify.field not in cols:
            cols.append(self.classify.field)
        if self.style_by is not None and self.style_by[0] not in cols:
            cols.append(self.style_by[0])
        if self.radius_field and self.radius_field not in cols:
            cols.append(self.radius_field)
        for lab in ([self.label] if isinstance(self.label, str) else
                    list(self.label.values()) if self.label else []):
            if lab not in cols:
                cols.append(lab)
        if self.link is not None:
            cols += [k for k in _url_fields(self.link[0]) if k not in cols]
        if self.sentence:
            cols += [c for c in ("message_zh", "message_en") if c not in cols]
        return cols


# ----------------------------------------------------------------------------- findings
# Findings are shadowed by clustered markers up to this zoom (the district view is ~13).
CLUSTER_MAX_ZOOM = 15

SEVERITY_CLASSES = (
    ("critical", "#67001f", "严重", "critical"),
    ("high", "#d6604d", "高", "high"),
    ("medium", "#f4a582", "中", "medium"),
    ("low", "#92c5de", "低", "low"),
    ("info", "#999999", "提示", "info"),
)

KIND_LABELS: dict[str, Text] = {
    "occupancy": text("占压", "occupancy"),
    "setback": text("安全距离不足", "insufficient setback"),
    "unregistered_hca": text("未登记高后果区", "unregistered HCA"),
    "hca_unsupported": text("登记高后果区已不成立", "registered HCA no longer supported"),
    "hca_grade_change": text("高后果区等级变化", "HCA grade change"),
    "hca_unregistered": text("未登记高后果区", "unregistered HCA"),
    "hca_grade_changed": text("高后果区等级变化", "HCA grade changed"),
    "hca_monitoring": text("高后果区视频监控不足", "HCA video monitoring below target"),
    "route_in_zone": text("路线穿越限行区", "route inside restricted zone"),
    "route_in_forbidden_zone": text("路线穿越禁行区", "route inside forbidden zone"),
    "route_in_permit_zone": text("路线穿越需通行证区域", "route inside permit zone"),
    "route_over_bridge_tunnel_zone": text("路线经过桥梁隧道管控区", "route over bridge/tunnel zone"),
    "route_on_hazmat_no_road": text("路线使用禁止危化品道路", "route on hazmat=no road"),
    "route_forbidden_zone": text("路线穿越禁行区", "route inside forbidden zone"),
    "route_hazmat_no": text("路线使用禁止危化品道路", "route on hazmat=no road"),
    "route_off_network": text("路线偏离路网", "route off the road network"),
    "lane_narrow": text("消防车道宽度不足", "fire lane too narrow"),
    "lane_low": text("消防车道净高不足", "fire lane clear height too low"),
    "lane_obstructed": text("消防车道被占用", "fire lane obstructed"),
    "lane_unmarked": text("消防车道未标识", "fire lane not marked"),
    "dead_end_no_turnaround": text("尽头式车道无回车场", "dead end without turnaround"),
    "hydrant_faulty": text("消火栓故障", "faulty hydrant"),
    "hydrant_gap": text("消火栓间距过大", "hydrant gap"),
    "hydrant_spacing_gap": text("消火栓间距过大", "hydrant spacing gap"),
    "building_beyond_hydrant_radius": text("消火栓保护半径外建筑", "beyond hydrant radius"),
    "building_unreachable": text("消防车不可达建筑", "building not reachable"),
    "building_beyond_engine_reach": text("消防车5分钟不可达", "beyond 5-min engine reach"),
    "building_beyond_micro_reach": text("微型站3分钟不可达", "beyond 3-min micro-station reach"),
}

FINDING_FIELDS: tuple[Field, ...] = (
    Field("kind", "类型", "kind", enum=KIND_LABELS),
    Field("severity", "严重程度", "severity",
          enum={v: text(zh, en) for v, _c, zh, en in SEVERITY_CLASSES}),
    Field("feature_id", "对象", "feature"),
    Field("other_id", "关联对象", "related to"),
    Field("rule_id", "规则", "rule"),
    Field("rule_source", "依据条款", "rule source"),
    Field("distance_m", "距离", "distance", "m"),
    Field("clear_distance_m", "净距", "clear distance", "m"),
    Field("required_m", "规定距离", "required", "m"),
    Field("shortfall_m", "不足", "shortfall", "m"),
    Field("overlap_m2", "占压面积", "overlap", "m²", 1),
    Field("value_m", "实测值", "measured", "m"),
    Field("time_s", "到场时间", "arrival time", "s", 0),
    Field("required_s", "规定时间", "required time", "s", 0),
    Field("station", "桩号", "station"),
    Field("chainage_from_m", "起点里程", "chainage from", "m", 1),
    Field("chainage_to_m", "终点里程", "chainage to", "m", 1),
)


def findings_spec(
    id: str = "findings",
    *,
    zh: str = "问题隐患",
    en: str = "Findings",
    group: str = "findings",
    by: Literal["severity", "shortfall"] = "severity",
    kind: Literal["point", "line", "polygon"] = "polygon",
    extra_fields: Sequence[Field] = (),
    cluster: int | None = CLUSTER_MAX_ZOOM,
) -> LayerSpec:
    """Spec of a findings layer (common schema): coloured by severity or by shortfall;
    clustered markers up to zoom ``cluster`` (None: never) keep them visible zoomed out."""
    classify: Categorical | Graduated
    if by == "shortfall":
        classify = Graduated("shortfall_m", (0.0, 0.5, 1.0, 2.0, 5.0, float("inf")),
                             ("#fee5d9", "#fcae91", "#fb6a4a", "#de2d26", "#a50f15"), "m",
                             title=text("不足距离", "shortfall"))
    else:
        classify = Categorical("severity", SEVERITY_CLASSES, title=text("严重程度", "severity"))
    return LayerSpec(id, zh, en, group, kind,
                     style={"weight": 3, "fillOpacity": 0.75, "radius": 6, "color": "#333333",
                            "strokeFixed": kind == "polygon"},
                     classify=classify, fields=(*FINDING_FIELDS, *extra_fields),
                     popup_title="feature_id", sentence=True, tooltip="finding_id",
                     search=("finding_id", "feature_id"), cluster=cluster)


def layer_ids_in_findings(findings: Iterable[gpd.GeoDataFrame | None], layer: str) -> set[str]:
    """Ids of ``layer`` features referred to by any finding (``feature_id`` or ``other_id``)."""
    out: set[str] = set()
    for f in findings:
        if f is None or len(f) == 0:
            continue
        if "layer" in f.columns and "feature_id" in f.columns:
            out.update(f.loc[f["layer"] == layer, "feature_id"].dropna().astype(str))
        if "other_layer" in f.columns and "other_id" in f.columns:
            out.update(f.loc[f["other_layer"] == layer, "other_id"].dropna().astype(str))
    return out


# ----------------------------------------------------------------------------- geojson
def _jsonable(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (str, int, bool)):
        return v
    if pd.isna(v):
        return None
    return str(v)


def _feature_collection(gdf: gpd.GeoDataFrame, columns: Sequence[str], *, precision: int,
                        gcj: bool) -> str:
    """GeoJSON text of ``gdf`` (lon/lat) with only ``columns``; coordinates rounded."""
    if len(gdf) == 0:
        return '{"type":"FeatureCollection","features":[]}'
    geoms = gdf.geometry.values
    if gcj:
        def shift(c: np.ndarray) -> np.ndarray:
            x, y = wgs84_to_gcj02(c[:, 0], c[:, 1])
            return np.column_stack([x, y])
        geoms = shapely.transform(geoms, shift)
    geoms = shapely.transform(geoms, lambda c: np.round(c, precision))
    gj = shapely.to_geojson(geoms)
    cols = [c for c in columns if c in gdf.columns]
    props = pd.DataFrame(gdf[cols]).astype(object)
    records = [
        json.dumps({k: _jsonable(v) for k, v in zip(cols, row, strict=True)},
                   ensure_ascii=False, separators=(",", ":"))
        for row in props.itertuples(index=False, name=None)
    ]
    feats = ",".join(
        f'{{"type":"Feature","properties":{p},"geometry":{g if g is not None else "null"}}}'
        for p, g in zip(records, gj, strict=True))
    return '{"type":"FeatureCollection","features":[' + feats + "]}"


def _lonlat(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if gdf.crs is None:
        raise ValueError("layer has no CRS; expected EPSG:4490 or a projected CRS")
    return gdf if gdf.crs.is_geographic else gdf.to_crs(STORAGE_CRS)


def _simplify(gdf: gpd.GeoDataFrame, tolerance_m: float) -> gpd.GeoDataFrame:
    """Simplify for display in the analysis CRS (metres), back to lon/lat."""
    if tolerance_m <= 0 or len(gdf) == 0 or (gdf.geom_type == "Point").all():
        return gdf
    proj = gdf.to_crs(analysis_crs(gdf))
    out = proj.set_geometry(proj.geometry.simplify(tolerance_m, preserve_topology=True))
    return out.to_crs(STORAGE_CRS)


# ----------------------------------------------------------------------------- element
class RiskMapElement(MacroElement):
    """Holds the riskmap.js config of a map and renders ``RiskMap.init(map, config)``."""

    _template = Template("""
{% macro script(this, kwargs) %}
    var {{ this.get_name() }} = RiskMap.init({{ this._parent.get_name() }}, {{ this.config_json() }});
{% endmacro %}
""")

    def __init__(self, options: MapOptions, *, title: Text | None = None) -> None:
        super().__init__()
        self._name = "RiskMapApp"
        self.options = options
        self.config: dict[str, Any] = {
            "lang": options.lang, "title": title, "gcj": BASEMAPS[options.basemap].gcj,
            "groups": [], "layers": [], "panels": [],
            "controls": {"search": True, "measure": True, "fullscreen": True, "coords": True,
                         "lang": True},
        }
        self._data: dict[str, str] = {}
        self._bounds: list[float] | None = None
        self.omitted: dict[str, int] = {}

    # -- building
    def add_group(self, id: str, zh: str, en: str) -> None:
        if not any(g["id"] == id for g in self.config["groups"]):
            self.config["groups"].append({"id": id, "label": text(zh, en)})

    def add_layer(self, spec: LayerSpec, data: gpd.GeoDataFrame | RemoteSource | None, *,
                  keep_ids: set[str] | None = None) -> None:
        """Add a layer: inline ``data``, a :class:`RemoteSource`, or skip when None.

        In served mode a frame over ``inline_max`` with a ``collection`` becomes remote; in
        standalone mode it keeps only ``keep_ids`` (features that findings refer to) and the
        legend says how many were left out.
        """
        if data is None:
            return
        o = self.options
        js: dict[str, Any] = {
            "id": spec.id, "label": text(spec.zh, spec.en), "group": spec.group,
            "kind": spec.kind, "style": dict(spec.style), "visible": spec.visible,
            "legend": spec.legend, "tooltip": spec.tooltip, "search": list(spec.search),
            "note": spec.note, "radiusField": spec.radius_field,
        }
        if spec.label:
            js["labelField"] = spec.label if isinstance(spec.label, str) else dict(spec.label)
            js["labelMinZoom"] = spec.label_min_zoom
        if spec.cluster is not None:
            js["cluster"] = {"maxZoom": spec.cluster}
        if spec.fields or spec.sentence:
            js["popup"] = {"title": spec.popup_title,
                           "sentence": {"zh": "message_zh", "en": "message_en"} if spec.sentence
                           else None,
                           "fields": [f.to_js() for f in spec.fields]}
            if spec.link is not None:
                url = spec.link[0]
                js["popup"]["link"] = {"url": o.api_base + url if url.startswith("/") else url,
                                       "label": spec.link[1]}
        if spec.style_by is not None:
            js["styleBy"] = {"field": spec.style_by[0],
                             "values": {str(k): dict(v) for k, v in spec.style_by[1].items()}}
        limit = min(o.inline_max, spec.inline_max or o.inline_max)
        if (isinstance(data, gpd.GeoDataFrame) and len(data) > limit
                and o.mode == "served" and spec.collection):
            query = f"?{spec.remote_query}" if spec.remote_query else ""
            data = RemoteSource(f"{o.api_base}/collections/{spec.collection}/items{query}",
                                len(data))
        if isinstance(data, RemoteSource):
            js["remote"] = {"url": data.url, "minZoom": spec.min_zoom or o.remote_min_zoom,
                            "limit": o.remote_limit, "page": o.remote_page,
                            "first": o.remote_first}
            if spec.overview and spec.collection and not spec.remote_query:
                js["remote"]["overview"] = f"{o.api_base}/maps/density/{spec.collection}"
            if spec.classify is not None:
                js["classify"] = spec.classify.to_js(None)
            if data.count is not None:
                note = text(f"共 {data.count:,} 个要素，按视图范围从服务加载",
                            f"{data.count:,} features, loaded from the server by view")
                js["note"] = _join_note(spec.note, note)
        else:
            total = max(len(data), int(data.attrs.get("riskmap_total", 0)))
            gdf = _lonlat(data)
            around = data.attrs.get("riskmap_around_m")
            if total > o.inline_max and around:  # e.g. the roads around the findings
                left = total - len(gdf)
                self.omitted[spec.id] = left
                note = text(f"仅含问题周边 {around:g} m 内的 {len(gdf):,} / {total:,} 个要素"
                            f"（其余 {left:,} 个未导出，请使用在线地图）",
                            f"only the {len(gdf):,} of {total:,} features within {around:g} m "
                            f"of a finding; {left:,} left out (use the served map)")
                js["note"] = _join_note(spec.note, note)
            elif total > o.inline_max:
                ids = keep_ids or set()
                gdf = gdf[gdf["id"].astype(str).isin(ids)] if "id" in gdf.columns else gdf.iloc[:0]
                left = total - len(gdf)
                self.omitted[spec.id] = left
                note = text(f"仅含与问题相关的 {len(gdf):,} / {total:,} 个要素（其余 {left:,} 个未导出，请使用在线地图）",
                            f"only the {len(gdf):,} of {total:,} features that findings refer to; "
                            f"{left:,} left out (use the served map)")
                js["note"] = _join_note(spec.note, note)
            if o.mode == "standalone":
                gdf = _simplify(gdf, o.simplify_m)
            if spec.classify is not None:
                vals = gdf[spec.classify.field] if spec.classify.field in gdf.columns else None
                js["classify"] = spec.classify.to_js(vals)
            self._data[spec.id] = _feature_collection(
                gdf, spec.columns(), precision=o.precision, gcj=self.config["gcj"])
            if len(gdf):
                self._extend_bounds(gdf.total_bounds)
        self.config["layers"].append(js)

    def add_panel(self, id: str, title: Text, rows: Sequence[tuple[Sequence[Any], str | None]],
                  *, columns: Sequence[Any] | None = None, note: Text | None = None,
                  position: str = "bottomleft") -> None:
        """An info table (progress vs targets, ranking …); ``rows`` = (cells, status)."""
        self.config["panels"].append({
            "id": id, "title": title, "position": position, "note": note,
            "columns": list(columns) if columns else None,
            "rows": [{"cells": [c if isinstance(c, dict) else str(c) for c in cells],
                      "status": status} for cells, status in rows]})

    def set_findings_list(self, layers: Sequence[str] | None = None, *,
                          status: str | None = None,
                          status_labels: Mapping[str, Text] | None = None,
                          title: Text | None = None, position: str = "bottomleft",
                          enabled: bool = True) -> None:
        """The findings list panel (on by default for every inline layer of the ``findings``
        group): which ``layers`` it lists, the ``status`` property to filter on (e.g.
        ``registry_status``) with its labels, its title and corner; ``enabled=False`` drops it.
        """
        if not enabled:
            self.config["findingsList"] = False
            return
        cfg: dict[str, Any] = {"position": position}
        if layers is not None:
            cfg["layers"] = list(layers)
        if status:
            cfg["status"] = status
        if status_labels:
            cfg["statusLabels"] = dict(status_labels)
        if title:
            cfg["title"] = title
        self.config["findingsList"] = cfg

    def set_route_form(self, url: str, *, depart_at: str | None = None) -> None:
        self.config["routeForm"] = {"url": url, "departAt": depart_at, "alternatives": 3}

    def set_publish(self, *, title: Text, authority: str | None, notice: str | None,
                    date: str | None, text_: Text | None = None) -> None:
        """Clean publish view: header with title, authority, notice, date; no editing tools."""
        self.config["publish"] = {"title": title, "authority": authority, "notice": notice,
                                  "date": date, "text": text_}
        self.config["controls"] = {"search": False, "measure": False, "fullscreen": False,
                                   "coords": False, "lang": False}

    def set_footnote(self, note: Text) -> None:
        self.config["footnote"] = note

    def _extend_bounds(self, b: np.ndarray) -> None:
        if not np.all(np.isfinite(b)):
            return
        if self.config["gcj"]:
            x, y = wgs84_to_gcj02([b[0], b[2]], [b[1], b[3]])
            b = np.array([x[0], y[0], x[1], y[1]])
        if self._bounds is None:
            self._bounds = [float(v) for v in b]
        else:
            self._bounds = [min(self._bounds[0], b[0]), min(self._bounds[1], b[1]),
                            max(self._bounds[2], b[2]), max(self._bounds[3], b[3])]

    def set_bounds(self, bounds: Sequence[float]) -> None:
        """Initial view (lon/lat) when no inline layer gives one."""
        self._extend_bounds(np.asarray(bounds, dtype=float))

    # -- rendering
    def config_json(self) -> str:
        """The config as JSON, with each layer's pre-serialised GeoJSON spliced in."""
        layers = []
        for spec in self.config["layers"]:
            if spec["id"] in self._data:
                spec = {**spec, "data": f"@@riskmap-data:{spec['id']}@@"}
            layers.append(spec)
        cfg = {**self.config, "layers": layers, "bounds": self._bounds}
        out = json.dumps(cfg, ensure_ascii=False, separators=(",", ":"))
        for lid, data in self._data.items():
            out = out.replace(json.dumps(f"@@riskmap-data:{lid}@@"), data, 1)
        return script_json(out)


def _url_fields(url: str) -> list[str]:
    """Property names a popup link template fills (``/registry/hazards/{finding_id}``)."""
    import re

    return re.findall(r"\{([A-Za-z0-9_]+)\}", url)


def _join_note(a: Text | None, b: Text) -> Text:
    if not a:
        return b
    return {"zh": f"{a['zh']}；{b['zh']}", "en": f"{a['en']}; {b['en']}"}


# ----------------------------------------------------------------------------- factory
def make_map(options: MapOptions, *, title: Text | None = None,
             bounds: Sequence[float] | None = None) -> tuple[folium.Map, RiskMapElement]:
    """A ``folium.Map`` with vendored assets, the chosen basemap and a :class:`RiskMapElement`.

    folium's default CDN list (18 files from 4 hosts) is replaced by the vendored Leaflet and
    riskmap.js/css under :data:`STATIC_PREFIX`; :mod:`maps.offline` serves or inlines them.
    """
    bm, urls = options.tiles()
    m = folium.Map(location=None, zoom_start=13, tiles=None, prefer_canvas=True,
                   control_scale=True, max_zoom=bm.max_zoom if urls else 22)
    m.default_js = [("leaflet", f"{STATIC_PREFIX}/leaflet/leaflet.js"),
                    ("markercluster", f"{STATIC_PREFIX}/markercluster/leaflet.markercluster.js"),
                    ("riskmap", f"{STATIC_PREFIX}/riskmap/riskmap.js")]
    m.default_css = [("leaflet_css", f"{STATIC_PREFIX}/leaflet/leaflet.css"),
                     ("markercluster_css", f"{STATIC_PREFIX}/markercluster/MarkerCluster.css"),
                     ("riskmap_css", f"{STATIC_PREFIX}/riskmap/riskmap.css")]
    for url in urls:
        folium.TileLayer(tiles=url, attr=bm.attribution or "tiles", name=bm.label["zh"],
                         max_zoom=bm.max_zoom, subdomains=bm.subdomains, control=False,
                         overlay=False).add_to(m)
    # no favicon request (a 404 in the console) and a page title
    root: Any = m.get_root()  # a branca Figure (typed as Element)
    root.header.add_child(folium.Element('<link rel="icon" href="data:,">'))
    if not urls:
        root.header.add_child(folium.Element(
            "<style>.leaflet-container { background: #f2f0eb !important; }</style>"))
    app = RiskMapElement(replace(options), title=title or options.title)
    if bounds is not None:
        app.set_bounds(bounds)
    m.add_child(app)
    m.riskmap = app  # type: ignore[attr-defined]
    return m, app
