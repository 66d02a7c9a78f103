"""Validate a layer against its schema: collect every problem, repair what is safe, fill defaults.

:func:`validate_layer` is the one gate between users' files and the store. It never stops at
the first problem: it checks every feature and raises one
:class:`~layers.errors.LayerValidationError` listing them all, each naming the feature, the
field, the value received and what was expected::

    layer 'pipelines', feature 'P-07': pressure_mpa is -1.2; expected a number > 0

What it checks: CRS present (or given), required fields, unique non-empty ids, value types
(numbers, whole numbers, booleans from yes/no/true/false/1/0, dates), enums, bounds, geometry
(missing, empty, wrong type, invalid, lon/lat swapped or not degrees). What it repairs, each
repair reported as a :class:`Note`: invalid geometries that ``shapely.make_valid`` fixes while
keeping a type the layer accepts, Z coordinates dropped, field names matched case-insensitively
or by their 10-character Shapefile truncation. What it derives: ``buildings.households`` for
residential buildings without it (footprint area in the analysis CRS x floors / 90 m² per
household, at least 1, flagged in ``households_estimated``) and ``pipelines.pressure_class``
(GB 50028 class of urban gas mains).
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo.crs import _CHINA, STORAGE_CRS, check_lonlat, to_analysis
from layers.errors import (
    MISSING,
    CRSError,
    LayerValidationError,
    Problem,
    RiskmapError,
    StoredLayerError,
)
from layers.schema import PRESSURE_CLASSES, FieldSpec, LayerSchema, get_schema

__all__ = [
    "HOUSEHOLD_AREA_M2",
    "READ_CLIPPED",
    "READ_NOTE",
    "READ_NOTES",
    "READ_PROBLEM",
    "Note",
    "ValidationReport",
    "check_stored_hours",
    "check_value",
    "pressure_classes",
    "validate_layer",
]

HOUSEHOLD_AREA_M2 = 90.0
"""Gross floor area per household (m²) used to estimate ``households`` of residential buildings."""

READ_PROBLEM = "_read_problem"
"""Column a reader sets on a feature it could not build (e.g. a broken OSM ring)."""

READ_NOTE = "_read_note"
"""Column a reader sets on a feature it built with a caveat (e.g. nodes missing from an extract)."""

READ_CLIPPED = "_read_clipped"
"""Column a reader sets (True) on a feature it could not build because the extract was clipped."""

READ_NOTES = "riskmap_read_notes"
"""Key in ``GeoDataFrame.attrs``: file-level notes of the reader (encoding guessed, M dropped)."""

_TRUE = ("yes", "true", "1", "y", "t", "on", "是", "有", "√")
_FALSE = ("no", "false", "0", "n", "f", "off", "否", "无", "×")
_NULL_TEXT = ("null", "none", "nan", "n/a", "<null>", "(null)")
_NULL_NUMBER = ("-", "--", "/", "—", "－", "无", "暂无", "不详", "未知")

# Units accepted after a number, converted to the field's unit (case-insensitive, no spaces).
_UNITS: dict[str, dict[str, float]] = {
    "MPa": {"mpa": 1.0, "兆帕": 1.0, "kpa": 1e-3, "千帕": 1e-3, "bar": 0.1, "pa": 1e-6,
            "帕": 1e-6, "psi": 0.00689475729},
    "mm": {"mm": 1.0, "毫米": 1.0, "cm": 10.0, "厘米": 10.0, "m": 1000.0, "米": 1000.0,
           "in": 25.4, '"': 25.4, "英寸": 25.4},
    "m": {"m": 1.0, "米": 1.0, "cm": 0.01, "厘米": 0.01, "mm": 0.001, "毫米": 0.001,
          "km": 1000.0, "公里": 1000.0, "千米": 1000.0, "ft": 0.3048},
    "km/h": {"km/h": 1.0, "kmh": 1.0, "kph": 1.0, "公里/小时": 1.0, "千米/小时": 1.0,
             "km/hr": 1.0, "mph": 1.609344},
    "t": {"t": 1.0, "吨": 1.0, "kg": 1e-3, "千克": 1e-3, "公斤": 1e-3},
}
# Counting words after a whole number ('4台', '6层', '120户') are dropped.
_COUNT_WORDS = ("个", "台", "辆", "部", "层", "户", "人", "名", "条", "座", "处", "套", "口",
                "车道", "floors", "storeys", "stories", "lanes", "persons", "people")

# Chinese (and a few common English) names of enum values, accepted when the target value is
# one of the field's enum values; each use is reported as a conversion note.
_ENUM_SYNONYMS = {
    "天然气": "natural_gas", "燃气": "natural_gas", "原油": "crude_oil", "成品油": "refined_oil",
    "液化石油气": "lpg", "其他": "other", "其它": "other",
    "长输": "long_distance", "长输管道": "long_distance", "城镇燃气": "urban_gas",
    "城市燃气": "urban_gas",
    "在用": "in_service", "运行": "in_service", "停用": "idle", "闲置": "idle",
    "废弃": "abandoned", "在建": "under_construction",
    "住宅": "residential", "学校": "school", "幼儿园": "kindergarten", "医院": "hospital",
    "养老院": "elderly_care", "监狱": "prison", "市场": "market", "商场": "market",
    "办公": "office", "工业": "industrial", "厂房": "industrial", "仓库": "warehouse",
    "加油站": "gas_station", "油库": "oil_depot", "棚": "shed", "棚房": "shed",
    "广场": "square", "体育场": "stadium", "水源地": "water_source", "河流": "river",
    "水库": "reservoir", "自然保护区": "nature_reserve", "铁路": "railway",
    "一级": "I", "二级": "II", "三级": "III", "ⅰ": "I", "ⅱ": "II", "ⅲ": "III",
    "高速": "expressway", "高速公路": "expressway", "快速路": "expressway", "国道": "national",
    "省道": "provincial", "主干路": "arterial", "次干路": "collector", "支路": "local",
    "禁止": "forbidden", "禁行": "forbidden", "许可": "permit", "避让": "avoid",
    "消防站": "station", "微型消防站": "micro_station",
    "正常": "ok", "完好": "ok", "良好": "ok", "故障": "faulty", "损坏": "faulty", "坏": "faulty",
    "草稿": "draft", "已发布": "published", "发布": "published",
    "是": "yes", "否": "no", "禁止通行": "no",
}
_NUM_UNIT = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(\S.*)?$")
# Pipe outside diameter as written in Chinese drawings: Φ720, φ720×8 (OD x wall), Ø720.
_PHI = re.compile(r"^[ΦφØø]\s*(\d+(?:\.\d+)?)\s*(?:[×xX*]\s*\d+(?:\.\d+)?)?\s*(mm|毫米)?$")
_BOOL_MAP = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}
_POLYGONAL = ("Polygon", "MultiPolygon")


@dataclass(frozen=True)
class Note:
    """Something validation changed or estimated (not a problem)."""

    layer: str
    feature: str | None
    field: str | None
    message: str
    kind: str = "note"  # repair | rename | estimate | derive | crs | note

    def __str__(self) -> str:
        where = f"layer {self.layer!r}"
        if self.feature is not None:
            where += f", feature {self.feature!r}"
        return f"{where}: {self.message}"


@dataclass
class ValidationReport:
    """What validation did to a layer that passed: counts and notes."""

    layer: str
    count: int = 0
    source_crs: str | None = None
    notes: list[Note] = field(default_factory=list)

    @property
    def repairs(self) -> list[Note]:
        return [n for n in self.notes if n.kind == "repair"]

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for n in self.notes:
            kinds[n.kind] = kinds.get(n.kind, 0) + 1
        extra = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
        return f"{self.count} feature(s)" + (f"; notes: {extra}" if extra else "")


class _Collector:
    """Problems keyed by row so the final list reads feature by feature."""

    def __init__(self, layer: str) -> None:
        self.layer = layer
        self._items: list[tuple[int, int, Problem]] = []

    def add(self, row: int, feature: str | None, fld: str | None, received: object,
            expected: str, note: str = "") -> None:
        p = Problem(self.layer, feature, fld, received, expected, note)
        self._items.append((row, len(self._items), p))

    def __bool__(self) -> bool:
        return bool(self._items)

    def problems(self) -> list[Problem]:
        return [p for _r, _o, p in sorted(self._items, key=lambda t: (t[0], t[1]))]


def validate_layer(
    gdf: gpd.GeoDataFrame | pd.DataFrame,
    layer: str,
    *,
    crs: CRS | str | int | None = None,
) -> tuple[gpd.GeoDataFrame, ValidationReport]:
    """Validate ``gdf`` as ``layer``; return it clean in EPSG:4490 and a report.

    Parameters
    ----------
    gdf
        Features as read from a file (any CRS; field names already mapped).
    layer
        Target layer name (see :data:`layers.schema.LAYER_NAMES`).
    crs
        CRS of the coordinates when ``gdf`` carries none (``--crs``).

    Returns
    -------
    (clean, report)
        ``clean`` has the schema's typed fields (defaults filled), derived fields, the
        unknown extra attributes and the geometry in EPSG:4490.

    Raises
    ------
    LayerValidationError
        With every problem found.
    """
    schema = get_schema(layer)
    report = ValidationReport(layer)
    for text in (getattr(gdf, "attrs", {}) or {}).get(READ_NOTES, []):
        report.notes.append(Note(layer, None, None, str(text), "read"))
    out = _Collector(layer)
    df = _as_geodataframe(gdf, layer)
    df = _match_field_names(df, schema, report)
    df = df.reset_index(drop=True)
    rows = np.arange(len(df))

    ids, labels = _check_ids(df, out)
    clean: dict[str, pd.Series] = {"id": ids}
    for spec in schema.fields:
        if spec.name != "id":
            clean[spec.name] = _check_field(df, spec, labels, out, report)
    _check_across_fields(clean, labels, out)

    geom = _check_geometry(df, schema, labels, out, report, crs)

    extras = [c for c in df.columns
              if c not in clean
              and c not in (df.geometry.name, READ_PROBLEM, READ_NOTE, READ_CLIPPED)]
    kept = _unclash(extras, list(clean), layer, report)
    result = gpd.GeoDataFrame(
        {**clean, **{kept[c]: df[c] for c in extras}}, geometry=geom, index=rows
    )
    if not out:
        result = _derive(result, schema, report)
    if out:
        raise LayerValidationError(layer, out.problems())
    report.count = len(result)
    return result.reset_index(drop=True), report


def check_value(layer: str, name: str, value: object) -> str | None:
    """Why ``value`` is not acceptable for field ``name`` of ``layer`` (None when it is).

    Used for values given on the command line (``--default``) before they reach features.
    """
    spec = get_schema(layer)[name]
    out = _Collector(layer)
    labels = np.array(["--default"], dtype=object)
    _check_field(gpd.GeoDataFrame({name: [value]}), spec, labels, out)
    probs = out.problems()
    if not probs:
        return None
    p = probs[0]
    return f"{name}={value}: expected {p.expected}" + (f" ({p.note})" if p.note else "")


def check_stored_hours(gdf: pd.DataFrame, layer: str, *, analysis: str) -> None:
    """Raise :class:`~layers.errors.StoredLayerError` naming every feature of a stored ``layer``
    whose ``hours`` cannot be read (the check import applies, for data written around it)."""
    if "hours" not in gdf.columns or gdf.empty:
        return
    hours = gdf["hours"].astype(object).where(gdf["hours"].notna(), "")
    ids = gdf["id"].astype(str).to_numpy() if "id" in gdf.columns else gdf.index.astype(str)
    out = _Collector(layer)
    _check_across_fields({"hours": hours}, np.asarray(ids, dtype=object), out)
    if out:
        raise StoredLayerError(layer, out.problems(), analysis=analysis)


# --- frame and names --------------------------------------------------------------------------
def _as_geodataframe(gdf: gpd.GeoDataFrame | pd.DataFrame, layer: str) -> gpd.GeoDataFrame:
    if isinstance(gdf, gpd.GeoDataFrame) and gdf._geometry_column_name in gdf.columns:
        df = gdf.copy()
        if df.geometry.name != "geometry":
            if "geometry" in df.columns:
                df = df.drop(columns="geometry")
            df = df.rename_geometry("geometry")
        return df
    raise LayerValidationError(
        layer, [Problem(layer, None, "geometry", MISSING, "a geometry column")]
    )


def _match_field_names(
    df: gpd.GeoDataFrame, schema: LayerSchema, report: ValidationReport
) -> gpd.GeoDataFrame:
    """Rename columns that match a schema field case-insensitively or as a 10-char truncation."""
    present = {c for c in df.columns if isinstance(c, str)}
    renames: dict[Hashable, str] = {}
    for spec in schema.fields:
        if spec.name in present:
            continue
        candidates = [c for c in present if c not in renames and (
            c.lower() == spec.name or (len(c) == 10 and c.lower() == spec.name[:10]))]
        if len(candidates) == 1:
            renames[candidates[0]] = spec.name
    for src, dst in renames.items():
        report.notes.append(Note(schema.name, None, dst,
                                 f"field {src!r} read as {dst!r}", kind="rename"))
    return df.rename(columns=renames) if renames else df


def _unclash(extras: list[Hashable], fields: list[str], layer: str,
             report: ValidationReport) -> dict[Hashable, str]:
    """Names for the extra columns that differ, ignoring case, from the layer's fields, the
    geometry and each other (GeoPackage and PostGIS field names are case-insensitive)."""
    taken = {f.lower() for f in fields} | {"geometry", "fid"}
    out: dict[Hashable, str] = {}
    for c in extras:
        name = str(c)
        new = name
        k = 1
        while new.lower() in taken:
            new = f"{name}_src" if k == 1 else f"{name}_src{k}"
            k += 1
        taken.add(new.lower())
        out[c] = new
        if new != name:
            report.notes.append(Note(layer, None, new, f"extra field {name!r} kept as {new!r} "
                                     "(its name clashes with another field when case is "
                                     "ignored)", "rename"))
    return out


def _labels_from(ids: pd.Series) -> np.ndarray:
    """Feature labels for messages: the id, or ``row N`` (1-based) where the id is missing."""
    rows = "row " + pd.Series(np.arange(1, len(ids) + 1), index=ids.index).astype(str)
    return ids.astype(object).where(ids.notna(), rows).to_numpy(dtype=object)


# --- values --------------------------------------------------------------------------------------
def _text(s: pd.Series) -> pd.Series:
    """Values as stripped text (nullable); whole floats print without '.0'; '' is missing."""
    if pd.api.types.is_bool_dtype(s):
        out = s.astype("string").str.lower()
    elif pd.api.types.is_float_dtype(s):
        vals = s.to_numpy(dtype=float, na_value=np.nan)
        whole = np.isfinite(vals) & (np.mod(vals, 1) == 0) & (np.abs(vals) < 2**53)
        out = s.astype("string")
        if whole.any():
            out = out.mask(whole, pd.Series(vals).where(whole, 0).astype("int64")
                           .astype("string").to_numpy())
    else:
        out = s.astype("string")
    out = out.str.strip()
    return out.mask(out == "")


def _check_ids(df: gpd.GeoDataFrame, out: _Collector) -> tuple[pd.Series, np.ndarray]:
    if "id" not in df.columns:
        ids = pd.Series(pd.NA, index=df.index, dtype="string")
        out.add(-1, None, "id", MISSING, "a unique text id per feature",
                "the file has no field 'id'; map yours with --map SOURCE=id or number the "
                "features with --make-ids")
        return ids, _labels_from(ids)
    ids = _text(df["id"])
    labels = _labels_from(ids)
    for i in np.flatnonzero(ids.isna().to_numpy()):
        out.add(int(i), labels[i], "id", MISSING, "a unique text id per feature")
    dup = ids.notna() & ids.duplicated(keep=False)
    if dup.any():
        counts = ids[dup].value_counts()
        first = ~ids[dup].duplicated(keep="first")
        for i in np.flatnonzero(dup.to_numpy())[first.to_numpy()]:
            val = str(ids.iloc[i])
            out.add(int(i), val, "id", val, "a unique id",
                    f"{int(counts[val])} features use it; fix the ids or number the features "
                    "with --make-ids")
    return ids, labels


def _py(v: object) -> object:
    """A plain Python value for messages."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat()
    return v


def _norm_key(v: str) -> str:
    return re.sub(r"[\s\-]+", "_", v.strip().lower())


def _coerce(raw: pd.Series, spec: FieldSpec) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Typed values, a mask of values present but not of the field's type, and a mask of
    numbers converted from a written unit."""
    text = _text(raw)
    nulls = _NULL_TEXT + (_NULL_NUMBER if spec.type in ("int", "float", "date") else ())
    text = text.mask(text.str.lower().isin(nulls))
    present = text.notna().to_numpy()
    converted = np.zeros(len(raw), dtype=bool)
    if spec.enum is not None:
        lookup = {_norm_key(v): v for v in spec.enum}
        keys = text.str.lower().str.replace(r"[\s\-]+", "_", regex=True)
        vals = keys.map(lookup).astype("string")
        retry = present & vals.isna().to_numpy()
        if retry.any():
            syn = {k: v for k, v in _ENUM_SYNONYMS.items() if v in spec.enum}
            syn.update(spec.synonyms)  # the field's own names win over the shared table
            found = keys[retry].map(syn).astype("string")
            vals[retry] = found
            converted = retry & vals.notna().to_numpy()
        return vals, present & vals.isna().to_numpy(), converted
    if spec.type == "str":
        return text, np.zeros(len(raw), dtype=bool), converted
    if spec.type in ("int", "float"):
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            num = raw.astype(float)
        else:
            num = pd.to_numeric(text, errors="coerce").astype(float)
        arr = num.to_numpy(dtype=float, na_value=np.nan, copy=True)
        retry = present & ~np.isfinite(arr)
        if retry.any():
            parsed = _parse_with_units(text[retry].to_numpy(dtype=object), spec.unit)
            arr[retry] = parsed
            converted = retry & np.isfinite(arr)
        bad = present & ~np.isfinite(arr)
        if spec.type == "int":
            bad |= present & np.isfinite(arr) & (np.mod(arr, 1) != 0)
            arr = np.where(bad, np.nan, arr)
            ints = pd.array(np.where(np.isfinite(arr), arr, 0).astype("int64"), dtype="Int64")
            ints[~np.isfinite(arr)] = pd.NA
            return pd.Series(ints, index=raw.index), bad, converted
        return pd.Series(np.where(bad, np.nan, arr), index=raw.index), bad, converted
    if spec.type == "bool":
        if pd.api.types.is_bool_dtype(raw):
            vals = raw.astype("boolean")
        else:
            vals = text.str.lower().map(_BOOL_MAP, na_action="ignore").astype("boolean")
        return vals, present & vals.isna().to_numpy(), converted
    # date
    if pd.api.types.is_datetime64_any_dtype(raw):
        stamps = pd.to_datetime(raw)
    else:
        iso = text.str.replace(r"[/.]", "-", regex=True).str.replace(
            r"^(\d{4})年(\d{1,2})月(\d{1,2})日$", r"\1-\2-\3", regex=True)
        iso = iso.str.replace(r"^(\d{4})-(\d)(?=-|$)", r"\1-0\2", regex=True).str.replace(
            r"^(\d{4}-\d{2})-(\d)(?=T|\s|$)", r"\1-0\2", regex=True)
        stamps = pd.to_datetime(iso, errors="coerce", format="ISO8601")
    bad = present & stamps.isna().to_numpy()
    dates = pd.Series(stamps.dt.date.to_numpy(dtype=object), index=raw.index, dtype=object)
    dates = dates.where(stamps.notna().to_numpy(), None)
    return dates, bad, converted


def _parse_with_units(texts: np.ndarray, unit: str | None) -> np.ndarray:
    """Numbers written with a unit ('6.3MPa', '720 mm', '16bar', 'Φ720×8'), in ``unit``."""
    table = _UNITS.get(unit or "", {})
    res = np.full(len(texts), np.nan)
    for k, t in enumerate(texts):
        t = str(t).strip().replace("，", ",")
        if unit == "mm":
            phi = _PHI.match(t)
            if phi:
                res[k] = float(phi.group(1))
                continue
        m = _NUM_UNIT.match(t)
        if not m:
            continue
        if m.group(2) is None:  # "1,234" style thousands separators are not guessed
            continue
        word = re.sub(r"\s+", "", m.group(2)).lower()
        factor = table.get(word, 1.0 if unit is None and word in _COUNT_WORDS else None)
        if factor is not None:
            res[k] = round(float(m.group(1)) * factor, 9)
    return res


def _unit_hint(spec: FieldSpec) -> str:
    if spec.unit in _UNITS:
        units = ", ".join(u for u in _UNITS[spec.unit] if u.isascii())
        return f"a number in {spec.unit}; written units accepted: {units}"
    return ""


def _check_field(
    df: gpd.GeoDataFrame, spec: FieldSpec, labels: np.ndarray, out: _Collector,
    report: ValidationReport | None = None,
) -> pd.Series:
    n = len(df)
    if spec.name not in df.columns:
        if spec.required:
            out.add(-1, None, spec.name, MISSING, spec.expected(),
                    f"the file has no field {spec.name!r}; map yours with "
                    f"--map SOURCE={spec.name} or give all features one value with "
                    f"--default {spec.name}=VALUE")
        raw = pd.Series([None] * n, index=df.index, dtype=object)
    else:
        raw = df[spec.name]
    vals, bad, converted = _coerce(raw, spec)
    raw_obj = raw.to_numpy(dtype=object)
    hint = _unit_hint(spec)
    for i in np.flatnonzero(bad):
        out.add(int(i), labels[i], spec.name, _py(raw_obj[i]), spec.expected(),
                _bad_value_note(raw_obj[i], spec, hint))
    if converted.any() and report is not None:
        idx = np.flatnonzero(converted)
        if spec.enum is not None:
            examples = ", ".join(f"{raw_obj[i]!r} → {vals.iloc[i]}" for i in idx[:3])
            what = "named in Chinese or a synonym read as the layer's value"
        else:
            examples = ", ".join(f"{raw_obj[i]!r} → {float(vals.iloc[i]):g}" for i in idx[:3])
            what = (f"written with a unit converted to {spec.unit}" if spec.unit
                    else "written with a counting word read as a number")
        report.notes.append(Note(report.layer, None, spec.name,
                                 f"{len(idx)} value(s) of {spec.name} {what} (e.g. {examples})",
                                 "convert"))
    missing = vals.isna().to_numpy() & ~bad
    if spec.required and spec.name in df.columns:
        fix = f"fill it in, or use --default {spec.name}=VALUE"
        for i in np.flatnonzero(missing):
            out.add(int(i), labels[i], spec.name, MISSING, spec.expected(), fix)
    if spec.type in ("int", "float"):
        arr = vals.to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            oob = np.zeros(n, dtype=bool)
            if spec.gt is not None:
                oob |= arr <= spec.gt
            if spec.minimum is not None:
                oob |= arr < spec.minimum
            if spec.maximum is not None:
                oob |= arr > spec.maximum
        oob &= np.isfinite(arr)
        for i in np.flatnonzero(oob):
            out.add(int(i), labels[i], spec.name, _py(vals.iloc[i]), spec.expected())
    if spec.default is not None and missing.any():
        vals = vals.copy()
        vals[missing] = spec.default
    return vals


def _bad_value_note(value: object, spec: FieldSpec, hint: str) -> str:
    """How to fix a value that is not of the field's type."""
    text = str(value).strip()
    if spec.name == "diameter_mm" and re.match(r"^(DN|dn)\s*\d", text):
        return ("DN is a nominal size, not the outside diameter; give the outside diameter in "
                "mm (e.g. DN700 → 711)")
    if spec.type in ("int", "float") and re.match(r"^[+-]?\d", text):
        if re.match(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$", text):
            return "remove the thousands separators"
        return hint
    if spec.type == "bool":
        return "accepted: yes/no, true/false, 1/0, 是/否, 有/无"
    if spec.type == "date":
        return "accepted: 2024-05-01, 2024/5/1, 2024年5月1日"
    return ""


_HOURS_EXPECTED = "time windows HH:MM-HH:MM separated by ';', e.g. 07:00-09:00;17:00-19:00"


def _check_across_fields(clean: dict[str, pd.Series], labels: np.ndarray, out: _Collector) -> None:
    """Checks that need more than one value: hours syntax, start_m <= end_m."""
    from geo.zones import parse_hours

    hours = clean.get("hours")
    if hours is not None:
        bad_values = []
        for value in hours.dropna().unique():  # distinct values only: few per layer
            try:
                parse_hours(str(value))
            except (RiskmapError, ValueError):
                bad_values.append(value)
        for i in np.flatnonzero(hours.isin(bad_values).to_numpy(dtype=bool)):
            out.add(int(i), labels[i], "hours", str(hours.iloc[i]), _HOURS_EXPECTED,
                    "empty means always")
    if "start_m" in clean and "end_m" in clean:
        start = clean["start_m"].to_numpy(dtype=float, na_value=np.nan)
        end = clean["end_m"].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            reversed_ = end < start
        for i in np.flatnonzero(reversed_):
            out.add(int(i), labels[i], "end_m", _py(end[i]), f"a number >= start_m ({start[i]:g})")


# --- geometry ------------------------------------------------------------------------------------
def _expected_geometry(schema: LayerSchema) -> str:
    names = list(schema.geometry_types)
    text = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"a {text}"


def _where(xy: tuple[float, float]) -> str:
    return f"({xy[0]:.6f}, {xy[1]:.6f})"


def _check_geometry(
    df: gpd.GeoDataFrame, schema: LayerSchema, labels: np.ndarray, out: _Collector,
    report: ValidationReport, crs: CRS | str | int | None,
) -> gpd.GeoSeries:
    layer = schema.name
    expected = _expected_geometry(schema)
    arr = np.asarray(df.geometry.array, dtype=object).copy()
    n = len(arr)

    # features a reader could not build
    read_bad = np.zeros(n, dtype=bool)
    if READ_PROBLEM in df.columns:
        msgs = df[READ_PROBLEM].to_numpy(dtype=object)
        read_bad = pd.notna(msgs) & (msgs != "")
        for i in np.flatnonzero(read_bad):
            out.add(int(i), labels[i], "geometry", MISSING, expected, str(msgs[i]))
    if READ_NOTE in df.columns:
        notes = df[READ_NOTE].to_numpy(dtype=object)
        for i in np.flatnonzero(pd.notna(notes) & (notes != "")):
            report.notes.append(Note(layer, labels[i], "geometry", str(notes[i]), "repair"))

    null = shapely.is_missing(arr) & ~read_bad
    for i in np.flatnonzero(null):
        out.add(int(i), labels[i], "geometry", MISSING, expected)
    empty = ~null & ~read_bad & shapely.is_empty(arr)
    for i in np.flatnonzero(empty):
        out.add(int(i), labels[i], "geometry", arr[i].geom_type.upper() + " EMPTY",
                "a non-empty " + expected[2:])
    ok = ~(null | empty | read_bad)

    if shapely.has_z(arr[ok]).any():
        arr[ok] = shapely.force_2d(arr[ok])
        report.notes.append(Note(layer, None, "geometry", "Z coordinates dropped", "repair"))

    types = np.array([""] * n, dtype=object)
    types[ok] = pd.Series(shapely.get_type_id(arr[ok])).map(_TYPE_NAMES).to_numpy(dtype=object)
    _simplify_types(arr, types, ok, schema, labels, report)
    wrong = ok & ~np.isin(types, schema.geometry_types)
    if wrong.sum() >= 2 and wrong.sum() == ok.sum() and len(set(types[wrong])) == 1:
        out.add(-1, None, "geometry", f"{types[wrong][0]} (all {int(wrong.sum())} features)",
                expected, f"is this the file for layer {layer!r}?")
    for i in np.flatnonzero(wrong):
        out.add(int(i), labels[i], "geometry", types[i], expected, _split_hint(arr[i]))
    ok &= ~wrong

    invalid = ok & ~shapely.is_valid(arr)
    if invalid.any():
        idx = np.flatnonzero(invalid)
        reasons = shapely.is_valid_reason(arr[idx])
        polygonal = np.isin(types[idx], _POLYGONAL)
        fixed = np.empty(len(idx), dtype=object)
        if polygonal.any():
            fixed[polygonal] = shapely.make_valid(arr[idx][polygonal], method="structure",
                                                  keep_collapsed=False)
        if (~polygonal).any():
            fixed[~polygonal] = shapely.make_valid(arr[idx][~polygonal])
        fixed_types = pd.Series(shapely.get_type_id(fixed)).map(_TYPE_NAMES).to_numpy(dtype=object)
        good = ~shapely.is_empty(fixed) & np.isin(fixed_types, schema.geometry_types)
        for k, i in enumerate(idx):
            if good[k]:
                arr[i] = fixed[k]
                report.notes.append(Note(
                    layer, labels[i], "geometry",
                    f"invalid {types[i]} ({reasons[k]}) repaired with make_valid; "
                    f"now a {fixed_types[k]}", "repair"))
            else:
                became = "nothing" if shapely.is_empty(fixed[k]) else f"a {fixed_types[k]}"
                out.add(int(i), labels[i], "geometry", f"invalid {types[i]} ({reasons[k]})",
                        "a valid " + expected[2:],
                        f"make_valid would turn it into {became}; fix it in the source")
                ok[i] = False

    geom = gpd.GeoSeries(arr, index=df.index, crs=df.crs)
    src = df.crs
    if src is None:
        if crs is None:
            out.add(-1, None, "crs", MISSING, "the coordinate reference system of the file",
                    "state it with --crs: " + _guess_crs(arr[ok]))
            return gpd.GeoSeries(arr, index=df.index, crs=STORAGE_CRS)
        src = CRS.from_user_input(crs)
        geom = geom.set_crs(src)
        report.notes.append(Note(layer, None, "crs", f"coordinates read as {src.to_string()} "
                                 "(from --crs)", "crs"))
    src = CRS.from_user_input(src)
    report.source_crs = src.to_string()
    datum = src.geodetic_crs.name if src.geodetic_crs is not None else ""
    if any(old in datum for old in _LEGACY_DATUMS):
        report.notes.append(Note(
            layer, None, "crs",
            f"{src.to_string()} is on the {datum} datum; PROJ converts it to CGCS2000 without a "
            "datum shift (positions may be off by tens of metres) — convert with the "
            "district's transformation parameters first for surveying accuracy", "crs"))
    if src.is_geographic:
        _check_degrees(geom, ok, labels, out, layer)
    elif not _check_projected(arr[ok], src, out):
        return gpd.GeoSeries(arr, index=df.index, crs=STORAGE_CRS)
    if src != STORAGE_CRS:
        geom = geom.to_crs(STORAGE_CRS)
        b = shapely.bounds(np.asarray(geom.array, dtype=object))
        lost = ok & ~np.all(np.isfinite(b), axis=1)
        for i in np.flatnonzero(lost):
            out.add(int(i), labels[i], "geometry", _where(tuple(shapely.bounds(arr[i])[:2])),
                    f"coordinates valid in {src.to_string()}",
                    f"they cannot be transformed to EPSG:4490; is {src.to_string()} the "
                    "right CRS?")
    return geom


def _simplify_types(
    arr: np.ndarray, types: np.ndarray, ok: np.ndarray, schema: LayerSchema,
    labels: np.ndarray, report: ValidationReport,
) -> None:
    """In place: a GeometryCollection of one kind of part, or a multipart of one part, becomes
    the type the layer takes (each reported); anything else is left for the type check."""
    accepted = schema.geometry_types
    todo = np.flatnonzero(ok & ~np.isin(types, accepted)
                          & np.isin(types, ("GeometryCollection", "MultiPoint", "MultiLineString",
                                            "MultiPolygon")))
    for i in todo:
        parts = _flat_parts(arr[i])
        kinds = {p.geom_type for p in parts}
        new = None
        if len(kinds) == 1:
            kind = kinds.pop()
            multi = {"Point": shapely.MultiPoint, "LineString": shapely.MultiLineString,
                     "Polygon": shapely.MultiPolygon}[kind]
            if len(parts) == 1 and kind in accepted:
                new = parts[0]
            elif f"Multi{kind}" in accepted:
                new = multi(parts)
        if new is None:
            continue
        what = (f"a GeometryCollection of {len(parts)} {new.geom_type.replace('Multi', '')}(s)"
                if types[i] == "GeometryCollection" else f"a {types[i]} of one part")
        report.notes.append(Note(schema.name, labels[i], "geometry",
                                 f"{what} stored as a {new.geom_type}", "repair"))
        arr[i] = new
        types[i] = new.geom_type


def _flat_parts(g: shapely.Geometry) -> list[shapely.Geometry]:
    if isinstance(g, (shapely.GeometryCollection, shapely.MultiPoint, shapely.MultiLineString,
                      shapely.MultiPolygon)):
        return [p for sub in g.geoms for p in _flat_parts(sub) if not p.is_empty]
    return [g]


def _split_hint(g: shapely.Geometry) -> str:
    if g is None or not hasattr(g, "geoms"):
        return ""
    kinds = sorted({p.geom_type for p in _flat_parts(g)})
    return (f"it has {len(g.geoms)} parts ({', '.join(kinds)}); split it into one feature "
            "per part (e.g. geopandas explode) or fix it in the source")


# CGCS2000 Gauss-Krüger with zone prefix: 3-degree zones 25-45 (EPSG:4513-4533) and 6-degree
# zones 13-23 (EPSG:4491-4501); the prefix (x // 1e6) tells the zone and so the EPSG code.
def _prefixed_gk(zone: int) -> int | None:
    if 25 <= zone <= 45:
        return 4513 + zone - 25
    if 13 <= zone <= 23:
        return 4491 + zone - 13
    return None


def _prefixed_choice(zone: int) -> str:
    """``EPSG:4527 (CGCS2000 …; EPSG:2363 if Xian 1980, EPSG:2415 if Beijing 1954)``."""
    code = _prefixed_gk(zone)
    if 25 <= zone <= 45:
        return (f"EPSG:{code} (CGCS2000 3-degree GK zone {zone}; EPSG:{2349 + zone - 25} if "
                f"Xian 1980, EPSG:{2401 + zone - 25} if Beijing 1954)")
    return f"EPSG:{code} (CGCS2000 6-degree GK zone {zone})"


def _guess_crs(geoms: np.ndarray) -> str:
    """What --crs the coordinates suggest (a hint for the message, never applied)."""
    generic = ("e.g. --crs EPSG:4490 for CGCS2000 lon/lat or --crs EPSG:4548 for the "
               "CGCS2000 GK zone at 117°E")
    if len(geoms) == 0:
        return generic
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    if not np.all(np.isfinite([minx, miny, maxx, maxy])):
        return generic
    span = f"x {minx:.0f}..{maxx:.0f}, y {miny:.0f}..{maxy:.0f}"
    if minx >= -180 and maxx <= 360 and miny >= -90 and maxy <= 90:
        return ("the coordinates look like lon/lat degrees: --crs EPSG:4490 (CGCS2000) or "
                "EPSG:4326 (WGS 84)")
    zone = int(minx // 1e6)
    if zone == int(maxx // 1e6) and _prefixed_gk(zone) and 1e6 <= miny <= 6.5e6:
        return (f"the coordinates ({span}) look like Gauss-Krüger with zone prefix {zone}: "
                f"--crs {_prefixed_choice(zone)}")
    if minx >= 1e5 and maxx <= 9e5 and 1e6 <= miny <= 6.5e6:
        return (f"the coordinates ({span}) look like metres in a Gauss-Krüger or UTM zone "
                "without zone prefix: e.g. --crs EPSG:4548 (CGCS2000 GK CM 117°E; EPSG:4534-4554 "
                "by central meridian) or the UTM zone")
    return f"the coordinates are {span}; " + generic


def _check_projected(geoms: np.ndarray, src: CRS, out: _Collector) -> bool:
    """File-level checks of projected coordinates: degrees given a projected CRS, GK zone
    prefix present where the CRS has none (or the reverse). False when a problem was added."""
    if len(geoms) == 0:
        return True
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    if not np.all(np.isfinite([minx, miny, maxx, maxy])):
        return True
    span = f"x {minx:.2f}..{maxx:.2f}, y {miny:.2f}..{maxy:.2f}"
    if minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90 and maxx - minx < 5:
        out.add(-1, None, "crs", src.to_string(), "the CRS of the coordinates",
                f"the coordinates ({span}) look like lon/lat degrees but the file's CRS is "
                f"projected ({src.name}); use --crs EPSG:4490 or fix the .prj")
        return False
    op = src.coordinate_operation
    if op is None or "Transverse Mercator" not in op.method_name:
        return True
    fe_value = next((p.value for p in op.params if p.name == "False easting"), None)
    if fe_value is None:
        return True
    fe = float(fe_value)
    if abs(maxx - fe) > 1.5e6 or abs(minx - fe) > 1.5e6:
        zone = int(minx // 1e6)
        if zone == int(maxx // 1e6) and _prefixed_gk(zone):
            fix = (f"x carries the zone prefix {zone}, so the CRS is {_prefixed_choice(zone)}; "
                   "correct the CRS (--crs, or the file's .prj) or remove the prefix")
        elif fe >= 1e7 and minx >= 1e5 and maxx <= 9e5:
            fix = ("x has no zone prefix but the CRS expects one; correct the CRS (--crs, or "
                   "the file's .prj) to the zone without prefix (EPSG:4534-4554 for CGCS2000 "
                   "3-degree zones, by central meridian)")
        else:
            fix = "the coordinates do not fit this CRS; check the .prj or --crs"
        out.add(-1, None, "crs", src.to_string(),
                f"coordinates within the CRS's zone (false easting {fe:.0f})",
                f"{span}: {fix}")
        return False
    return True


_LEGACY_DATUMS = ("Beijing 1954", "Xian 1980", "New Beijing")

_TYPE_NAMES = {
    0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
    5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection",
}


def _check_degrees(
    geom: gpd.GeoSeries, ok: np.ndarray, labels: np.ndarray, out: _Collector, layer: str
) -> None:
    """Per feature: lon/lat out of range, or looking swapped (lat, lon)."""
    if not ok.any():
        return
    b = shapely.bounds(np.asarray(geom.array, dtype=object))
    minx, miny, maxx, maxy = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    with np.errstate(invalid="ignore"):
        out_range = (miny < -90) | (maxy > 90) | (minx < -180) | (maxx > 360)
        swapped_range = out_range & (minx >= -90) & (maxx <= 90) & (miny >= -180) & (maxy <= 180)
        cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
        china = _vec_in_china(cx, cy)
        china_swapped = _vec_in_china(cy, cx)
    swapped = ok & (swapped_range | (~out_range & ~china & china_swapped))
    not_degrees = ok & out_range & ~swapped_range
    n_ok = int(ok.sum())
    if n_ok >= 2 and int(swapped.sum()) == n_ok:
        out.add(-1, None, "geometry", f"(lat, lon) in all {n_ok} features",
                "(lon, lat) in degrees",
                f"x spans {np.nanmin(minx[ok]):.4f}..{np.nanmax(maxx[ok]):.4f}, y spans "
                f"{np.nanmin(miny[ok]):.4f}..{np.nanmax(maxy[ok]):.4f}; swap them to (lon, lat)")
    if n_ok >= 2 and int(not_degrees.sum()) == n_ok:
        stated = CRS.from_user_input(geom.crs).to_string() if geom.crs is not None else "?"
        out.add(-1, None, "crs", stated, "the CRS of the coordinates",
                f"all {n_ok} features are outside the range of degrees, so the stated lon/lat "
                "CRS (or the GeoJSON default WGS 84) is wrong; state the real CRS with --crs: "
                + _guess_crs(np.asarray(geom.array, dtype=object)[ok]))
    for i in np.flatnonzero(swapped):
        out.add(int(i), labels[i], "geometry", _where((minx[i], miny[i])),
                "(lon, lat) in degrees",
                "the coordinates look like (lat, lon); swap them to (lon, lat)")
    for i in np.flatnonzero(not_degrees):
        out.add(int(i), labels[i], "geometry", _where((minx[i], miny[i])),
                "(lon, lat) in degrees",
                "these are not degrees; state the file's projected CRS, e.g. --crs EPSG:4548")
    if not (swapped | not_degrees).any():
        try:
            check_lonlat(geom[ok], f"layer {layer!r}")
        except CRSError as exc:
            out.add(-1, None, "geometry", MISSING, "(lon, lat) in degrees", str(exc))


def _vec_in_china(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Vectorised :func:`geo.crs.in_china` (same envelope)."""
    return (x >= _CHINA[0]) & (x <= _CHINA[2]) & (y >= _CHINA[1]) & (y <= _CHINA[3])


# --- derived fields ------------------------------------------------------------------------------
def pressure_classes(pressure_mpa: pd.Series | np.ndarray) -> np.ndarray:
    """Vectorised :func:`layers.schema.pressure_class` (NaN → None)."""
    p = np.asarray(pressure_mpa, dtype=float)
    names = np.array([name for name, _ in PRESSURE_CLASSES] + ["above_high_a"], dtype=object)
    uppers = np.array([u for _, u in PRESSURE_CLASSES[1:]])
    idx = np.searchsorted(uppers, p, side="left") + 1
    idx = np.where(p < PRESSURE_CLASSES[0][1], 0, idx)
    res = names[np.clip(idx, 0, len(names) - 1)]
    res[~np.isfinite(p)] = None
    return res


def _derive(
    gdf: gpd.GeoDataFrame, schema: LayerSchema, report: ValidationReport
) -> gpd.GeoDataFrame:
    layer = schema.name
    if layer == "pipelines":
        urban = (gdf["kind"] == "urban_gas").fillna(False).to_numpy(dtype=bool)
        classes = pressure_classes(gdf["pressure_mpa"])
        classes[~urban] = None
        if "pressure_class" in gdf.columns:
            report.notes.append(Note(layer, None, "pressure_class",
                                     "pressure_class recomputed from pressure_mpa (GB 50028)",
                                     "derive"))
            gdf = gdf.drop(columns="pressure_class")
        gdf.insert(gdf.columns.get_loc("kind") + 1, "pressure_class",
                   pd.Series(classes, index=gdf.index, dtype="string"))
    elif layer == "buildings":
        todo = ((gdf["use"] == "residential").fillna(False) & gdf["households"].isna()).to_numpy(
            dtype=bool)
        est = np.zeros(len(gdf), dtype=bool)
        if todo.any():
            area = to_analysis(gdf.loc[todo, ["geometry"]]).area.to_numpy()
            floors = gdf.loc[todo, "floors"].to_numpy(dtype=float)
            hh = np.maximum(1, np.round(area * floors / HOUSEHOLD_AREA_M2)).astype("int64")
            vals = gdf["households"].copy()
            vals[todo] = hh
            gdf["households"] = vals
            est = todo
            report.notes.append(Note(
                layer, None, "households",
                f"households estimated for {int(todo.sum())} residential building(s) as "
                f"footprint area x floors / {HOUSEHOLD_AREA_M2:g} m² (see households_estimated)",
                "estimate"))
        if "households_estimated" in gdf.columns:
            gdf = gdf.drop(columns="households_estimated")
        gdf.insert(gdf.columns.get_loc("households") + 1, "households_estimated",
                   pd.Series(est, index=gdf.index))
    return gdf

