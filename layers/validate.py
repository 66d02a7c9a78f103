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
from layers.errors import MISSING, CRSError, LayerValidationError, Problem, RiskmapError
from layers.schema import PRESSURE_CLASSES, FieldSpec, LayerSchema, get_schema

__all__ = [
    "HOUSEHOLD_AREA_M2",
    "READ_NOTE",
    "READ_PROBLEM",
    "Note",
    "ValidationReport",
    "pressure_classes",
    "validate_layer",
]

HOUSEHOLD_AREA_M2 = 90.0
"""Gross floor area per household (m²) used to estimate ``households`` of residential buildings."""

READ_PROBLEM = "_read_problem"
"""Column a reader sets on a feature it could not build (e.g. a broken OSM ring)."""

READ_NOTE = "_read_note"
"""Column a reader sets on a feature it built with a caveat (e.g. nodes missing from an extract)."""

_TRUE = ("yes", "true", "1", "y", "t", "on", "是")
_FALSE = ("no", "false", "0", "n", "f", "off", "否")
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
    out = _Collector(layer)
    df = _as_geodataframe(gdf, layer)
    df = _match_field_names(df, schema, report)
    df = df.reset_index(drop=True)
    rows = np.arange(len(df))

    ids, labels = _check_ids(df, out)
    clean: dict[str, pd.Series] = {"id": ids}
    for spec in schema.fields:
        if spec.name != "id":
            clean[spec.name] = _check_field(df, spec, labels, out)
    _check_across_fields(clean, labels, out)

    geom = _check_geometry(df, schema, labels, out, report, crs)

    extras = [c for c in df.columns
              if c not in clean and c not in (df.geometry.name, READ_PROBLEM, READ_NOTE)]
    result = gpd.GeoDataFrame(
        {**clean, **{c: df[c] for c in extras}}, geometry=geom, index=rows
    )
    if not out:
        result = _derive(result, schema, report)
    if out:
        raise LayerValidationError(layer, out.problems())
    report.count = len(result)
    return result.reset_index(drop=True), report


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
                "the file has no field 'id'; map yours with --map SOURCE=id")
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
                    f"{int(counts[val])} features use it")
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


def _coerce(raw: pd.Series, spec: FieldSpec) -> tuple[pd.Series, np.ndarray]:
    """Typed values and a mask of values present but not of the field's type."""
    text = _text(raw)
    present = text.notna().to_numpy()
    if spec.enum is not None:
        lookup = {_norm_key(v): v for v in spec.enum}
        keys = text.str.lower().str.replace(r"[\s\-]+", "_", regex=True)
        vals = keys.map(lookup).astype("string")
        return vals, present & vals.isna().to_numpy()
    if spec.type == "str":
        return text, np.zeros(len(raw), dtype=bool)
    if spec.type in ("int", "float"):
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            num = raw.astype(float)
        else:
            num = pd.to_numeric(text, errors="coerce").astype(float)
        arr = num.to_numpy(dtype=float, na_value=np.nan)
        bad = present & ~np.isfinite(arr)
        if spec.type == "int":
            bad |= present & np.isfinite(arr) & (np.mod(arr, 1) != 0)
            arr = np.where(bad, np.nan, arr)
            ints = pd.array(np.where(np.isfinite(arr), arr, 0).astype("int64"), dtype="Int64")
            ints[~np.isfinite(arr)] = pd.NA
            return pd.Series(ints, index=raw.index), bad
        return pd.Series(np.where(bad, np.nan, arr), index=raw.index), bad
    if spec.type == "bool":
        if pd.api.types.is_bool_dtype(raw):
            vals = raw.astype("boolean")
        else:
            vals = text.str.lower().map(_BOOL_MAP, na_action="ignore").astype("boolean")
        return vals, present & vals.isna().to_numpy()
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
    return dates, bad


def _check_field(
    df: gpd.GeoDataFrame, spec: FieldSpec, labels: np.ndarray, out: _Collector
) -> pd.Series:
    n = len(df)
    if spec.name not in df.columns:
        if spec.required:
            out.add(-1, None, spec.name, MISSING, spec.expected(),
                    f"the file has no field {spec.name!r}; map yours with "
                    f"--map SOURCE={spec.name}")
        raw = pd.Series([None] * n, index=df.index, dtype=object)
    else:
        raw = df[spec.name]
    vals, bad = _coerce(raw, spec)
    raw_obj = raw.to_numpy(dtype=object)
    for i in np.flatnonzero(bad):
        out.add(int(i), labels[i], spec.name, _py(raw_obj[i]), spec.expected())
    missing = vals.isna().to_numpy() & ~bad
    if spec.required and spec.name in df.columns:
        for i in np.flatnonzero(missing):
            out.add(int(i), labels[i], spec.name, MISSING, spec.expected())
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
    wrong = ok & ~np.isin(types, schema.geometry_types)
    for i in np.flatnonzero(wrong):
        out.add(int(i), labels[i], "geometry", types[i], expected)
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
                    "state it with --crs, e.g. --crs EPSG:4490 for CGCS2000 lon/lat or "
                    "--crs EPSG:4548 for the CGCS2000 GK zone at 117°E")
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

