"""Layer schemas: the public data contract shared by users' files, the store and the API.

Each layer has a geometry type, required and optional attributes with types, enums, bounds,
units and defaults. Unknown extra attributes are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from geo.pressure import PRESSURE_CLASSES, pressure_class

__all__ = [
    "CONSTRUCTION_STATUSES",
    "CONSTRUCTION_WORKS",
    "FACILITY_KINDS",
    "LAYER_NAMES",
    "PRESSURE_CLASSES",
    "SCHEMAS",
    "SIGN_STATUSES",
    "FieldSpec",
    "LayerSchema",
    "get_schema",
    "pressure_class",
]

FieldType = Literal["str", "int", "float", "bool", "date"]


@dataclass(frozen=True)
class FieldSpec:
    """One attribute of a layer.

    ``minimum``/``maximum`` are inclusive bounds, ``gt`` an exclusive lower bound.
    """

    name: str
    type: FieldType
    required: bool = False
    enum: tuple[str, ...] | None = None
    default: object | None = None
    unit: str | None = None
    gt: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""
    synonyms: tuple[tuple[str, str], ...] = ()  # (written name, enum value) of this field only

    def expected(self) -> str:
        """Human-readable description of what the field accepts."""
        if self.enum is not None:
            return "one of " + ", ".join(self.enum)
        kind = {
            "str": "a text",
            "int": "a whole number",
            "float": "a number",
            "bool": "true or false",
            "date": "a date (YYYY-MM-DD)",
        }[self.type]
        parts = []
        if self.gt is not None:
            parts.append(f"> {self.gt:g}")
        if self.minimum is not None:
            parts.append(f">= {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        return kind + (" " + " and ".join(parts) if parts else "")


@dataclass(frozen=True)
class LayerSchema:
    """Schema of one layer: geometry types and attributes (``id`` is always required)."""

    name: str
    geometry_types: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    title_zh: str
    title_en: str
    description: str = ""
    field_index: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_index", {f.name: f for f in self.fields})

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    def __getitem__(self, name: str) -> FieldSpec:
        return self.field_index[name]

    def __contains__(self, name: object) -> bool:
        return name in self.field_index


def _id() -> FieldSpec:
    return FieldSpec("id", "str", required=True, description="stable feature identifier")


_LINE = ("LineString", "MultiLineString")
_POLY = ("Polygon", "MultiPolygon")
_POINT = ("Point",)

PIPELINE_MEDIA = ("natural_gas", "crude_oil", "refined_oil", "lpg", "other")
BUILDING_USES = (
    "residential", "school", "kindergarten", "hospital", "elderly_care", "prison", "market",
    "office", "public_assembly", "industrial", "warehouse", "gas_station", "oil_depot", "shed",
    "other",
)  # fmt: skip
SITE_KINDS = (
    "school", "hospital", "kindergarten", "elderly_care", "prison", "market", "square",
    "stadium", "gas_station", "oil_depot", "water_source", "river", "reservoir",
    "nature_reserve", "railway", "other",
)  # fmt: skip
ROAD_CLASSES = (
    "expressway", "national", "provincial", "arterial", "collector", "local", "service",
)  # fmt: skip
ZONE_KINDS = (
    "water_source", "school_area", "dense_population", "city_center", "scenic",
    "nature_reserve", "bridge", "tunnel", "other",
)  # fmt: skip
# Issue 16: third-party construction near pipelines (Pipeline Protection Law Arts 30, 32, 33, 35).
CONSTRUCTION_WORKS = (
    "crossing", "road", "railway", "canal", "power_line", "cable", "grounding", "building",
    "piling", "excavation", "drilling", "blasting", "seismic", "mining", "anchoring", "dredging",
    "other",
)  # fmt: skip
CONSTRUCTION_STATUSES = ("planned", "active", "finished")
_WORK_SYNONYMS = (
    ("穿越", "crossing"), ("穿跨越", "crossing"), ("跨越", "crossing"), ("道路", "road"),
    ("公路", "road"), ("修路", "road"), ("铁路", "railway"), ("渠道", "canal"), ("水渠", "canal"),
    ("开渠", "canal"), ("河渠", "canal"), ("电力线", "power_line"), ("电力线路", "power_line"),
    ("架空线", "power_line"), ("电缆", "cable"), ("光缆", "cable"), ("接地体", "grounding"),
    ("接地", "grounding"), ("避雷接地", "grounding"), ("建筑", "building"),
    ("建房", "building"), ("建筑物", "building"), ("构筑物", "building"), ("打桩", "piling"),
    ("桩基", "piling"), ("开挖", "excavation"), ("挖掘", "excavation"),
    ("机械开挖", "excavation"), ("土方开挖", "excavation"), ("钻探", "drilling"),
    ("钻孔", "drilling"), ("爆破", "blasting"), ("地震法勘探", "seismic"),
    ("地震勘探", "seismic"), ("物探", "seismic"), ("采矿", "mining"), ("取土", "mining"),
    ("采石", "mining"), ("挖砂", "mining"), ("抛锚", "anchoring"), ("拖锚", "anchoring"),
    ("疏浚", "dredging"), ("挖泥", "dredging"), ("采砂", "dredging"),
    ("其他", "other"), ("其它", "other"),
)  # fmt: skip
_CONSTRUCTION_STATUS_SYNONYMS = (
    ("计划", "planned"), ("拟建", "planned"), ("待开工", "planned"), ("施工中", "active"),
    ("在建", "active"), ("施工", "active"), ("进行中", "active"), ("已完工", "finished"),
    ("完工", "finished"), ("竣工", "finished"),
)  # fmt: skip
FACILITY_KINDS = (
    "station", "valve", "vent", "depot", "storage", "loading", "river_crossing", "tunnel",
    "other",
)  # fmt: skip
_FACILITY_SYNONYMS = (
    ("站场", "station"), ("输油站", "station"), ("输气站", "station"), ("泵站", "station"),
    ("压气站", "station"), ("计量站", "station"), ("分输站", "station"), ("首站", "station"),
    ("末站", "station"), ("阀室", "valve"), ("阀井", "valve"), ("阀门", "valve"),
    ("放空", "vent"), ("放空管", "vent"), ("放空立管", "vent"), ("油库", "depot"),
    ("储气库", "storage"), ("储罐", "storage"), ("装卸栈桥", "loading"), ("装卸", "loading"),
    ("河流穿越", "river_crossing"), ("穿越河流", "river_crossing"), ("隧道", "tunnel"),
    ("管道隧道", "tunnel"), ("其他", "other"), ("其它", "other"),
)  # fmt: skip
SIGN_STATUSES = ("ok", "damaged", "missing")
_SIGN_STATUS_SYNONYMS = (
    ("完好", "ok"), ("正常", "ok"), ("损坏", "damaged"), ("破损", "damaged"),
    ("污损", "damaged"), ("缺失", "missing"), ("丢失", "missing"), ("无", "missing"),
)  # fmt: skip

SCHEMAS: dict[str, LayerSchema] = {
    s.name: s
    for s in (
        LayerSchema(
            "pipelines",
            _LINE,
            (
                _id(),
                FieldSpec("name", "str"),
                FieldSpec("medium", "str", required=True, enum=PIPELINE_MEDIA),
                FieldSpec("kind", "str", required=True, enum=("long_distance", "urban_gas")),
                FieldSpec("pressure_mpa", "float", required=True, gt=0, unit="MPa",
                          description="maximum allowable operating pressure (MAOP), gauge"),
                FieldSpec("diameter_mm", "float", required=True, gt=0, unit="mm",
                          description="outside diameter"),
                FieldSpec("wall_mm", "float", gt=0, unit="mm", description="wall thickness"),
                FieldSpec("location_class", "int", enum=None, minimum=1, maximum=4),
                FieldSpec("operator", "str"),
                FieldSpec("status", "str", default="in_service",
                          enum=("in_service", "idle", "abandoned", "under_construction")),
                FieldSpec("laid_year", "int", minimum=1900, maximum=2100),
                FieldSpec("depth_m", "float", minimum=0, unit="m"),
                FieldSpec("last_inspection", "date"),
                FieldSpec("next_inspection_due", "date"),
            ),
            "油气管道", "Oil and gas pipelines",
        ),
        LayerSchema(
            "buildings",
            _POLY,
            (
                _id(),
                FieldSpec("use", "str", enum=BUILDING_USES, default="other"),
                FieldSpec("floors", "int", minimum=1, default=1),
                FieldSpec("households", "int", minimum=0,
                          description="if absent for residential: estimated from area x floors"),
                FieldSpec("name", "str"),
            ),
            "建筑物", "Buildings",
        ),
        LayerSchema(
            "sites",
            ("Point", "Polygon", "MultiPolygon"),
            (
                _id(),
                FieldSpec("kind", "str", required=True, enum=SITE_KINDS),
                FieldSpec("name", "str"),
                FieldSpec("occupants", "int", minimum=0),
            ),
            "特定场所", "Identified sites",
        ),
        LayerSchema(
            "hca",
            ("Polygon", "MultiPolygon", "LineString", "MultiLineString"),
            (
                _id(),
                FieldSpec("pipeline_id", "str", required=True),
                FieldSpec("grade", "str", required=True, enum=("I", "II", "III")),
                FieldSpec("start_m", "float", minimum=0, unit="m"),
                FieldSpec("end_m", "float", minimum=0, unit="m"),
                FieldSpec("people_dense", "bool", default=False),
                FieldSpec("video_monitored", "bool", default=False),
            ),
            "高后果区", "Registered high-consequence areas",
        ),
        LayerSchema(
            "cameras",
            _POINT,
            (_id(), FieldSpec("range_m", "float", gt=0, default=100.0, unit="m")),
            "视频监控", "Cameras",
        ),
        LayerSchema(
            "roads",
            _LINE,
            (
                _id(),
                FieldSpec("name", "str"),
                FieldSpec("road_class", "str", enum=ROAD_CLASSES, default="local"),
                FieldSpec("oneway", "bool", default=False),
                FieldSpec("speed_kmh", "float", gt=0, unit="km/h"),
                FieldSpec("width_m", "float", gt=0, unit="m"),
                FieldSpec("lanes", "int", minimum=1),
                FieldSpec("bridge", "bool", default=False),
                FieldSpec("tunnel", "bool", default=False),
                FieldSpec("hazmat", "str", enum=("yes", "no", "destination"), default="yes"),
                FieldSpec("max_weight_t", "float", gt=0, unit="t"),
                FieldSpec("max_height_m", "float", gt=0, unit="m"),
            ),
            "道路", "Roads",
        ),
        LayerSchema(
            "restricted_zones",
            _POLY,
            (
                _id(),
                FieldSpec("name", "str"),
                FieldSpec("kind", "str", required=True, enum=ZONE_KINDS),
                FieldSpec("rule", "str", required=True, enum=("forbidden", "permit", "avoid")),
                FieldSpec("hours", "str", default="",
                          description="e.g. 07:00-09:00;17:00-19:00; empty = always"),
                FieldSpec("penalty", "float", gt=0, description="cost multiplier for avoid"),
                FieldSpec("authority", "str"),
                FieldSpec("notice", "str"),
            ),
            "危化品车辆限行区域", "Hazmat restricted zones",
        ),
        LayerSchema(
            "hazmat_routes",
            _LINE,
            (
                _id(),
                FieldSpec("name", "str"),
                FieldSpec("hours", "str", default=""),
                FieldSpec("status", "str", enum=("draft", "published"), default="draft"),
                FieldSpec("authority", "str"),
            ),
            "危化品运输车辆通行路线", "Designated hazmat routes",
        ),
        LayerSchema(
            "fire_lanes",
            _LINE,
            (
                _id(),
                FieldSpec("compound_id", "str"),
                FieldSpec("width_m", "float", required=True, gt=0, unit="m"),
                FieldSpec("clear_height_m", "float", gt=0, default=4.5, unit="m"),
                FieldSpec("obstructed", "bool", default=False),
                FieldSpec("marked", "bool", default=False),
            ),
            "消防车通道", "Fire lanes",
        ),
        LayerSchema(
            "fire_stations",
            _POINT,
            (
                _id(),
                FieldSpec("name", "str"),
                FieldSpec("kind", "str", required=True, enum=("station", "micro_station")),
                FieldSpec("engines", "int", minimum=0),
                FieldSpec("turnout_s", "float", minimum=0, default=60.0, unit="s"),
            ),
            "消防站", "Fire stations",
        ),
        LayerSchema(
            "hydrants",
            _POINT,
            (_id(), FieldSpec("status", "str", enum=("ok", "faulty"), default="ok")),
            "室外消火栓", "Outdoor hydrants",
        ),
        LayerSchema(
            "compounds",
            _POLY,
            (
                _id(),
                FieldSpec("name", "str"),
                FieldSpec("built_year", "int", minimum=1900, maximum=2100),
                FieldSpec("households", "int", minimum=0),
                FieldSpec("property_management", "bool"),
                FieldSpec("plan", "str", description="一区一策 plan text"),
            ),
            "老旧小区", "Old residential compounds",
        ),
        LayerSchema(
            "construction_sites",
            ("Point", "Polygon", "MultiPolygon"),
            (
                _id(),
                FieldSpec("work", "str", required=True, enum=CONSTRUCTION_WORKS,
                          synonyms=_WORK_SYNONYMS,
                          description="kind of work (Pipeline Protection Law Arts 30, 32, 33, 35)"),
                FieldSpec("permit_no", "str", description="permit of the pipeline authority (Art 35)"),
                FieldSpec("permit_from", "date", description="first day the permit is valid"),
                FieldSpec("permit_to", "date", description="last day the permit is valid"),
                FieldSpec("contractor", "str"),
                FieldSpec("status", "str", enum=CONSTRUCTION_STATUSES, default="active",
                          synonyms=_CONSTRUCTION_STATUS_SYNONYMS),
                FieldSpec("name", "str"),
            ),
            "第三方施工", "Third-party construction sites",
        ),
        LayerSchema(
            "pipeline_facilities",
            ("Point", "Polygon", "MultiPolygon", "LineString", "MultiLineString"),
            (
                _id(),
                FieldSpec("kind", "str", required=True, enum=FACILITY_KINDS,
                          synonyms=_FACILITY_SYNONYMS,
                          description="Art 58(1) facility; river_crossing (Art 32) and tunnel "
                                      "(Art 33) mark the crossing section of a pipeline"),
                FieldSpec("pipeline_id", "str"),
                FieldSpec("name", "str"),
            ),
            "管道附属设施", "Pipeline facilities",
        ),
        LayerSchema(
            "warning_signs",
            _POINT,
            (
                _id(),
                FieldSpec("pipeline_id", "str", required=True),
                FieldSpec("kind", "str", description="e.g. marker, warning, hca"),
                FieldSpec("status", "str", enum=SIGN_STATUSES, default="ok",
                          synonyms=_SIGN_STATUS_SYNONYMS),
            ),
            "警示标识", "Warning signs",
        ),
        LayerSchema(
            "patrol_paths",
            _LINE,
            (
                _id(),
                FieldSpec("pipeline_id", "str", required=True),
                FieldSpec("passable", "bool", default=True),
            ),
            "巡护通道", "Patrol paths",
        ),
    )
}

LAYER_NAMES: tuple[str, ...] = tuple(SCHEMAS)


def get_schema(layer: str) -> LayerSchema:
    """Return the schema of ``layer`` or raise a ValueError naming the known layers."""
    from layers.errors import UnknownLayerError

    try:
        return SCHEMAS[layer]
    except KeyError:
        raise UnknownLayerError(
            f"unknown layer {layer!r}; expected one of {', '.join(LAYER_NAMES)}"
        ) from None
