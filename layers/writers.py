"""Write findings (or any GeoDataFrame) to a file chosen by its extension.

- ``.geojson`` / ``.json``: RFC 7946 FeatureCollection (WGS 84 lon/lat, CCW outer rings, no
  ``crs`` member) via :func:`geo.crs.to_geojson`, UTF-8 without escaping Chinese text;
- ``.gpkg``: a GeoPackage layer (default ``findings``) in the storage CRS EPSG:4490, replacing a
  layer of that name and keeping the file's other layers. Written with sqlite3 (GeoPackage
  binary header + ISO WKB from shapely, the ``gpkg_*`` rows and a packed R-tree index, the
  tables and triggers GDAL writes): pyogrio / ``ogrinfo`` read it back as they read their
  own. A new file is built beside the target and renamed over it, its feature and R-tree
  rows bound from Arrow buffers by ADBC's SQLite driver; an existing GeoPackage is changed in
  one transaction (the rows staged the same way in a temporary file and copied in). Frames
  with columns or geometries this writer does not map exactly the way GDAL does (dates,
  nullable integers, mixed objects, Z) are written by pyogrio;
- ``.csv``: the attributes plus ``lon``/``lat`` of a point on the geometry and ``wkt``, both in
  EPSG:4490, UTF-8 with BOM so spreadsheet programs show Chinese correctly; a text cell
  starting with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'`` (no formula runs).

List / dict values become JSON text in GeoPackage and CSV; non-finite numbers become null.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo.crs import STORAGE_CRS, orient_rfc7946, reproject, to_geojson
from layers.errors import InputFileError

__all__ = ["FORMATS", "defuse_formulas", "write_findings"]

FORMATS = (".geojson", ".json", ".gpkg", ".csv")


def _jsonable(v: Any) -> Any:
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return v


def _finite(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Non-finite floats (inf, -inf) become missing values."""
    out = gdf
    for c in gdf.columns:
        if c != gdf.geometry.name and pd.api.types.is_float_dtype(gdf[c]):
            vals = gdf[c].to_numpy(dtype=float)
            if np.isinf(vals).any():
                out = out.copy() if out is gdf else out
                out[c] = np.where(np.isfinite(vals), vals, np.nan)
    return out


def _flat(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = gdf.copy()
    for c in out.columns:
        if c == out.geometry.name or out[c].dtype != object:
            continue
        if out[c].map(lambda v: isinstance(v, (list, tuple, dict))).any():
            out[c] = out[c].map(_jsonable)
    return out


def _atomic_text(path: Path, text: str, encoding: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".riskmap-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_findings(gdf: gpd.GeoDataFrame, path: str | os.PathLike[str], *,
                   layer: str = "findings") -> Path:
    """Write ``gdf`` to ``path``; the format follows the extension (see module docstring).

    Raises
    ------
    InputFileError
        For an unsupported extension or a frame without CRS.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in FORMATS:
        raise InputFileError(f"cannot write {p}: extension {p.suffix or '(none)'!r} is not "
                             f"supported; use one of {', '.join(FORMATS)}")
    if gdf.crs is None:
        raise InputFileError(f"cannot write {p}: the findings have no CRS")
    p.parent.mkdir(parents=True, exist_ok=True)
    gdf = _finite(gdf)
    if ext in (".geojson", ".json"):
        text = _geojson_text(gdf)
        if text is None:  # columns or geometries the column-wise writer does not take
            text = json.dumps(to_geojson(gdf), ensure_ascii=False, allow_nan=False,
                              default=_json_default)
        _atomic_text(p, text, "utf-8")
    elif ext == ".gpkg":
        flat = _flat(reproject(gdf, STORAGE_CRS))
        if not _write_gpkg(flat, p, layer):
            pyogrio.write_dataframe(flat, p, layer=layer, driver="GPKG",
                                    layer_options={"OVERWRITE": "YES", "SPATIAL_INDEX": "YES"},
                                    geometry_type=None if len(flat) else "Unknown")
    else:
        geo = gdf.to_crs(STORAGE_CRS)
        df = pd.DataFrame(_flat(geo).drop(columns=geo.geometry.name))
        g = geo.geometry.values
        ok = ~(shapely.is_missing(g) | shapely.is_empty(g))
        pt = np.full(len(g), None, dtype=object)
        pt[ok] = shapely.point_on_surface(g[ok])
        df["lon"] = np.round(shapely.get_x(pt.astype(object)), 7) if len(g) else []
        df["lat"] = np.round(shapely.get_y(pt.astype(object)), 7) if len(g) else []
        df["wkt"] = shapely.to_wkt(g, rounding_precision=7, trim=True) if len(g) else []
        _atomic_text(p, defuse_formulas(df).to_csv(index=False), "utf-8-sig")
    return p


# --- GeoJSON, column-wise -------------------------------------------------------------------
_GEOJSON_PRECISION = 7  # decimals of lon/lat, as geo.crs.to_geojson rounds them
_JSON_TYPES = (str, list, dict, tuple)


def _json_column(col: pd.Series) -> list[Any] | None:
    """The column's values as the JSON values ``geo.crs.to_geojson`` gives them (missing →
    None); None when a value is not one it would pass through unchanged."""
    dt = col.dtype
    if isinstance(dt, np.dtype) and dt.kind in "biuf":
        values = col.to_numpy().astype(object)
    elif isinstance(dt, pd.StringDtype) or dt == np.dtype(object):
        values = np.array(col.to_numpy(dtype=object), dtype=object)  # a copy, writable
    else:
        return None
    missing = pd.isna(col).to_numpy()
    if missing.any():
        values[missing] = None
    if dt == np.dtype(object):
        ok = pd.Series(values).map(lambda v: v is None or isinstance(v, _JSON_TYPES))
        if not ok.all():
            return None
    return values.tolist()  # type: ignore[no-any-return]


def _round_like_python(v: np.ndarray, digits: int) -> np.ndarray:
    """``round(x, digits)`` of every value, vectorised: ``rint(x * 10**digits) / 10**digits``
    is the double nearest to the same decimal as Python's correctly rounded ``round`` except
    where ``x * 10**digits`` lies within float noise of a half; those few go through
    ``round`` itself."""
    scaled = v * 10.0**digits
    out = np.rint(scaled) / 10.0**digits
    frac = scaled - np.floor(scaled)
    tie = np.abs(frac - 0.5) < 1e-3
    if tie.any():
        out[tie] = [round(x, digits) for x in v[tie].tolist()]
    return out


def _json_points(coords: np.ndarray) -> list[tuple[float, float]]:
    flat = _round_like_python(coords.ravel(), _GEOJSON_PRECISION).tolist()
    return list(zip(flat[0::2], flat[1::2], strict=True))


def _split(items: list[Any], counts: np.ndarray) -> list[Any]:
    """``items`` cut into consecutive lists of ``counts`` items."""
    ends = np.cumsum(counts).tolist()
    return [items[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def _json_geometries(geoms: np.ndarray) -> list[dict[str, Any] | None] | None:
    """GeoJSON geometry objects (coordinates rounded as ``geo.crs.to_geojson`` rounds them;
    missing and empty geometries → None), built per geometry family from the coordinate
    arrays; None for Z, rings or collections."""
    out: list[dict[str, Any] | None] = [None] * len(geoms)
    null = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if shapely.has_z(geoms[~null]).any():
        return None
    tid = np.where(null, -1, shapely.get_type_id(geoms))
    if np.isin(tid, (2, 7)).any():  # LinearRing, GeometryCollection
        return None
    for single, multi, name in ((0, 4, "Point"), (1, 5, "LineString"), (3, 6, "Polygon")):
        sel = np.flatnonzero((tid == single) | (tid == multi))
        if not len(sel):
            continue
        parts, owner = shapely.get_parts(geoms[sel], return_index=True)
        if single == 0:
            items: list[Any] = _json_points(shapely.get_coordinates(parts))
        elif single == 1:
            items = _split(_json_points(shapely.get_coordinates(parts)),
                           shapely.get_num_coordinates(parts))
        else:
            rings, of_part = shapely.get_rings(parts, return_index=True)
            items = _split(_split(_json_points(shapely.get_coordinates(rings)),
                                  shapely.get_num_coordinates(rings)),
                           np.bincount(of_part, minlength=len(parts)))
        per_geom = _split(items, np.bincount(owner, minlength=len(sel)))
        for i, t, its in zip(sel.tolist(), tid[sel].tolist(), per_geom, strict=True):
            out[i] = ({"type": name, "coordinates": its[0]} if t == single else
                      {"type": "Multi" + name, "coordinates": its})
    return out


def _geojson_text(gdf: gpd.GeoDataFrame) -> str | None:
    """The text of ``json.dumps(geo.crs.to_geojson(gdf))`` as write_findings writes it, built
    column-wise (properties from the column arrays, coordinates from the coordinate arrays)
    and encoded by json's C encoder once; None when a column or geometry needs the general
    path."""
    out = gdf.to_crs(4326)
    gname = out.geometry.name
    names = [c for c in out.columns if c != gname]
    columns = [_json_column(out[c]) for c in out.columns if c != gname]
    if any(c is None for c in columns):
        return None
    geometry = _json_geometries(np.asarray(orient_rfc7946(out.geometry).values, dtype=object))
    if geometry is None:
        return None
    rows = zip(*columns, strict=True) if columns else ((),) * len(out)
    features = [{"type": "Feature", "properties": dict(zip(names, row, strict=True)),
                 "geometry": g} for row, g in zip(rows, geometry, strict=True)]
    return json.dumps({"type": "FeatureCollection", "features": features},
                      ensure_ascii=False, allow_nan=False, default=_json_default)


# --- GeoPackage with sqlite3 -------------------------------------------------------------------
_SRS_ROWS = [
    ("Undefined Cartesian SRS", -1, "NONE", -1, "undefined",
     "undefined Cartesian coordinate reference system"),
    ("Undefined geographic SRS", 0, "NONE", 0, "undefined",
     "undefined geographic coordinate reference system"),
    ("WGS 84 geodetic", 4326, "EPSG", 4326,
     'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
     'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
     'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
     'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]',
     "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid"),
    ("China Geodetic Coordinate System 2000", 4490, "EPSG", 4490,
     'GEOGCS["China Geodetic Coordinate System 2000",DATUM["China_2000",SPHEROID["CGCS2000",'
     '6378137,298.257222101,AUTHORITY["EPSG","1024"]],AUTHORITY["EPSG","1043"]],'
     'PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,'
     'AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],'
     'AUTHORITY["EPSG","4490"]]', None),
]
_SRS_ID = 4490
# the core tables as GDAL creates them (GeoPackage 1.4: application_id GPKG, user_version 10400)
_GPKG_TABLES = (
    "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL,srs_id INTEGER NOT NULL "
    "PRIMARY KEY,organization TEXT NOT NULL,organization_coordsys_id INTEGER NOT NULL,"
    "definition  TEXT NOT NULL,description TEXT)",
    "CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY,data_type TEXT NOT "
    "NULL,identifier TEXT UNIQUE,description TEXT DEFAULT '',last_change DATETIME NOT NULL "
    "DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),min_x DOUBLE, min_y DOUBLE,max_x DOUBLE, "
    "max_y DOUBLE,srs_id INTEGER,CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES "
    "gpkg_spatial_ref_sys(srs_id))",
    "CREATE TABLE gpkg_ogr_contents(table_name TEXT NOT NULL PRIMARY KEY,feature_count "
    "INTEGER DEFAULT NULL)",
    "CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL,column_name TEXT NOT NULL,"
    "geometry_type_name TEXT NOT NULL,srs_id INTEGER NOT NULL,z TINYINT NOT NULL,m TINYINT "
    "NOT NULL,CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),CONSTRAINT "
    "uk_gc_table_name UNIQUE (table_name),CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) "
    "REFERENCES gpkg_contents(table_name),CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) "
    "REFERENCES gpkg_spatial_ref_sys (srs_id))",
    "CREATE TABLE IF NOT EXISTS gpkg_extensions (table_name TEXT,column_name TEXT,extension_name TEXT NOT "
    "NULL,definition TEXT NOT NULL,scope TEXT NOT NULL,CONSTRAINT ge_tce UNIQUE "
    "(table_name, column_name, extension_name))",
)
# the R-tree triggers of the gpkg_rtree_index extension (GDAL's text; {t} table, {r} R-tree)
_RTREE_TRIGGERS = (
    'CREATE TRIGGER "{r}_insert" AFTER INSERT ON "{t}" WHEN (new."geom" NOT NULL AND NOT '
    'ST_IsEmpty(NEW."geom")) BEGIN INSERT OR REPLACE INTO "{r}" VALUES (NEW."fid",'
    'ST_MinX(NEW."geom"), ST_MaxX(NEW."geom"),ST_MinY(NEW."geom"), ST_MaxY(NEW."geom")); END',
    'CREATE TRIGGER "{r}_update6" AFTER UPDATE OF "geom" ON "{t}" WHEN OLD."fid" = NEW."fid" '
    'AND (NEW."geom" NOTNULL AND NOT ST_IsEmpty(NEW."geom")) AND (OLD."geom" NOTNULL AND NOT '
    'ST_IsEmpty(OLD."geom")) BEGIN UPDATE "{r}" SET minx = ST_MinX(NEW."geom"), maxx = '
    'ST_MaxX(NEW."geom"),miny = ST_MinY(NEW."geom"), maxy = ST_MaxY(NEW."geom") WHERE id = '
    'NEW."fid";END',
    'CREATE TRIGGER "{r}_update7" AFTER UPDATE OF "geom" ON "{t}" WHEN OLD."fid" = NEW."fid" '
    'AND (NEW."geom" NOTNULL AND NOT ST_IsEmpty(NEW."geom")) AND (OLD."geom" ISNULL OR '
    'ST_IsEmpty(OLD."geom")) BEGIN INSERT INTO "{r}" VALUES (NEW."fid",ST_MinX(NEW."geom"), '
    'ST_MaxX(NEW."geom"),ST_MinY(NEW."geom"), ST_MaxY(NEW."geom")); END',
    'CREATE TRIGGER "{r}_update2" AFTER UPDATE OF "geom" ON "{t}" WHEN OLD."fid" = NEW."fid" '
    'AND (NEW."geom" ISNULL OR ST_IsEmpty(NEW."geom")) BEGIN DELETE FROM "{r}" WHERE id = '
    'OLD."fid"; END',
    'CREATE TRIGGER "{r}_update5" AFTER UPDATE ON "{t}" WHEN OLD."fid" != NEW."fid" AND '
    '(NEW."geom" NOTNULL AND NOT ST_IsEmpty(NEW."geom")) BEGIN DELETE FROM "{r}" WHERE id = '
    'OLD."fid"; INSERT OR REPLACE INTO "{r}" VALUES (NEW."fid",ST_MinX(NEW."geom"), '
    'ST_MaxX(NEW."geom"),ST_MinY(NEW."geom"), ST_MaxY(NEW."geom")); END',
    'CREATE TRIGGER "{r}_update4" AFTER UPDATE ON "{t}" WHEN OLD."fid" != NEW."fid" AND '
    '(NEW."geom" ISNULL OR ST_IsEmpty(NEW."geom")) BEGIN DELETE FROM "{r}" WHERE id IN '
    '(OLD."fid", NEW."fid"); END',
    'CREATE TRIGGER "{r}_delete" AFTER DELETE ON "{t}" WHEN old."geom" NOT NULL BEGIN '
    'DELETE FROM "{r}" WHERE id = OLD."fid"; END',
)
# GDAL's feature counts in gpkg_ogr_contents ({lit}: the table name as an SQL string literal)
_COUNT_TRIGGERS = (
    'CREATE TRIGGER "trigger_insert_feature_count_{t}" AFTER INSERT ON "{t}" BEGIN UPDATE '
    "gpkg_ogr_contents SET feature_count = feature_count + 1 WHERE lower(table_name) = "
    "lower({lit}); END",
    'CREATE TRIGGER "trigger_delete_feature_count_{t}" AFTER DELETE ON "{t}" BEGIN UPDATE '
    "gpkg_ogr_contents SET feature_count = feature_count - 1 WHERE lower(table_name) = "
    "lower({lit}); END",
)
_GPKG_META = ("gpkg_contents", "gpkg_geometry_columns", "gpkg_extensions", "gpkg_ogr_contents",
              "gpkg_data_columns", "gpkg_metadata_reference")
# numpy dtype → the column type GDAL declares for it (what pyogrio reads back as that dtype)
_SQL_TYPES = {"|b1": "BOOLEAN", "<i8": "INTEGER", "<f8": "REAL"}
_SINGLE_TO_MULTI = {"Point": "MultiPoint", "LineString": "MultiLineString",
                    "Polygon": "MultiPolygon"}
_HEADER = np.dtype([("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs_id", "<i4"),
                    ("envelope", "<f8", (4,))])


def _sql_type(col: pd.Series) -> str | None:
    """The GeoPackage column type GDAL would declare for ``col``; None when this writer does
    not map it exactly (pyogrio writes the frame then)."""
    dt = col.dtype
    if isinstance(dt, np.dtype) and dt != np.dtype(object):
        return _SQL_TYPES.get(dt.str)
    if isinstance(dt, pd.StringDtype):
        return "TEXT"
    if dt == np.dtype(object):
        kind = pd.api.types.infer_dtype(col, skipna=True)
        return "TEXT" if kind in ("string", "empty") else None
    return None


def _sql_values(col: pd.Series) -> list[Any]:
    """The column's values as Python objects for sqlite3, missing values as None."""
    values = np.array(col.to_numpy(dtype=object), dtype=object)  # a copy, writable
    missing = pd.isna(col).to_numpy()
    if missing.any():
        values[missing] = None
    return values.tolist()


def _layer_geometry(geoms: np.ndarray) -> tuple[str, np.ndarray] | None:
    """(geometry_type_name, geometries) as pyogrio writes them: one type, or single and multi
    of one family promoted to multi, else GEOMETRY; None for Z or curved geometries."""
    present = ~shapely.is_missing(geoms)
    if shapely.has_z(geoms[present & ~shapely.is_empty(geoms)]).any():
        return None
    types = pd.unique(shapely.get_type_id(geoms[present]))
    names = [shapely.GeometryType(t).name for t in types]
    if any(t not in ("POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING",
                     "MULTIPOLYGON", "GEOMETRYCOLLECTION") for t in names):
        return None
    if len(names) == 1:
        return names[0], geoms
    if len(names) == 2 and names[0].removeprefix("MULTI") == names[1].removeprefix("MULTI"):
        multi = "MULTI" + names[0].removeprefix("MULTI")
        single = shapely.get_type_id(geoms) == getattr(
            shapely.GeometryType, multi.removeprefix("MULTI"))
        out = geoms.copy()
        make = {"MULTIPOINT": shapely.multipoints, "MULTILINESTRING": shapely.multilinestrings,
                "MULTIPOLYGON": shapely.multipolygons}[multi]
        out[single] = make(geoms[single][:, None], axis=1) if single.any() else out[single]
        return multi, out
    return "GEOMETRY", geoms


def _gpkg_blobs(geoms: np.ndarray) -> tuple[list[bytes | None], np.ndarray, np.ndarray]:
    """GeoPackage geometry blobs (little-endian header, envelope except for points and empty
    geometries, ISO WKB), the bounds of each and which ones go in the R-tree."""
    missing = shapely.is_missing(geoms)
    empty = shapely.is_empty(geoms) & ~missing
    bounds = shapely.bounds(geoms)
    indexed = ~(missing | empty)
    with_env = indexed & (shapely.get_type_id(geoms) != shapely.GeometryType.POINT)
    head = np.zeros(len(geoms), dtype=_HEADER)
    head["magic"] = b"GP"
    head["flags"] = 1 | np.where(with_env, 2, 0) | np.where(empty, 16, 0)
    head["srs_id"] = _SRS_ID
    head["envelope"] = bounds[:, [0, 2, 1, 3]]
    size = np.where(with_env, _HEADER.itemsize, 8)
    raw = head.tobytes()
    wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso", output_dimension=2)
    start = np.arange(len(geoms)) * _HEADER.itemsize
    blobs: list[bytes | None] = [
        None if w is None else raw[a:a + n] + w
        for a, n, w in zip(start.tolist(), size.tolist(), wkb.tolist(), strict=True)]
    return blobs, bounds, indexed


def _write_gpkg(gdf: gpd.GeoDataFrame, path: Path, layer: str) -> bool:
    """Write ``gdf`` (EPSG:4490, values flattened) as the layer ``layer`` of the GeoPackage
    ``path`` with sqlite3; False (nothing written) when a column or geometry needs pyogrio."""
    gname = gdf.geometry.name
    cols = [c for c in gdf.columns if c != gname]
    if any(str(c).lower() in ("fid", "geom") for c in cols) or len(set(map(str, cols))) != \
            len(cols):
        return False
    types = [_sql_type(gdf[c]) for c in cols]
    if any(t is None for t in types):
        return False
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    typed = _layer_geometry(geoms) if len(gdf) else ("GEOMETRY", geoms)
    if typed is None:
        return False
    gtype, geoms = typed
    if path.exists():
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as con:
            if not _is_geopackage(con):
                raise InputFileError(f"cannot write {path}: the file exists and is not a "
                                     "GeoPackage; remove it or choose another name")
            blobs, bounds, indexed = _gpkg_blobs(geoms)
            with _staged_rows(path.parent, gdf, blobs, layer, gtype, cols, types) as staged:
                if staged is not None:  # ATTACH cannot run inside a transaction
                    con.execute("ATTACH DATABASE ? AS riskmap_rows", (str(staged),))
                con.execute("BEGIN IMMEDIATE")
                try:
                    con.execute(_GPKG_TABLES[-1])  # gpkg_extensions, if the file has none
                    con.execute("INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES "
                                "(?, ?, ?, ?, ?, ?)", _SRS_ROWS[-1])
                    _drop_layer(con, layer)
                    _create_layer(con, layer, gtype, cols, types)
                    if staged is not None:
                        con.execute(f"INSERT INTO main.{_qi(layer)} SELECT * FROM "
                                    f"riskmap_rows.{_qi(layer)}")
                    else:
                        _insert_rows(con, gdf, blobs, layer, cols)
                    _finish_layer(con, layer, gtype, bounds, indexed, len(gdf))
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                finally:
                    if staged is not None:
                        con.execute("DETACH DATABASE riskmap_rows")
        return True
    fd, tmp = tempfile.mkstemp(prefix=".riskmap-", suffix=".gpkg", dir=path.parent)
    os.close(fd)
    try:
        blobs, bounds, indexed = _gpkg_blobs(geoms)
        with contextlib.closing(sqlite3.connect(tmp, isolation_level=None)) as con:
            # findings rows are long (two messages): 64 KiB pages keep them off overflow pages
            con.execute("PRAGMA page_size = 65536")
            con.execute("PRAGMA journal_mode = OFF")
            con.execute("PRAGMA synchronous = OFF")
            con.execute("BEGIN")
            con.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
            con.execute("PRAGMA user_version = 10400")
            for sql in _GPKG_TABLES:
                con.execute(sql)
            con.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)",
                            _SRS_ROWS)
            _create_layer(con, layer, gtype, cols, types)
            _create_rtree(con, layer)
            rtree = _rtree_tables(np.flatnonzero(indexed) + 1, bounds[indexed])
            ingested = _ingest_arrow is not None and len(gdf) > 0
            if ingested:  # ADBC fills the R-tree's shadow tables: drop the empty root
                if rtree:  # (none to fill: the empty root stays)
                    con.execute(f"DELETE FROM {_qi(_rtree_name(layer) + '_node')}")
            else:
                _insert_rows(con, gdf, blobs, layer, cols)
                _fill_rtree(con, _rtree_name(layer), np.flatnonzero(indexed) + 1,
                            bounds[indexed])
            con.execute("COMMIT")
        if ingested:  # rows and R-tree from Arrow buffers, on a file no one else has open
            _ingest_rows(Path(tmp), gdf, blobs, layer, cols, rtree=rtree)
        with contextlib.closing(sqlite3.connect(tmp, isolation_level=None)) as con:
            con.execute("PRAGMA journal_mode = OFF")
            con.execute("PRAGMA synchronous = OFF")
            con.execute("BEGIN")
            _register_layer(con, layer, gtype, bounds, indexed, len(gdf))
            con.execute("COMMIT")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


@contextlib.contextmanager
def _staged_rows(folder: Path, gdf: gpd.GeoDataFrame, blobs: list[bytes | None], layer: str,
                 gtype: str, cols: Sequence[str],
                 types: Sequence[str | None]) -> Iterator[Path | None]:
    """A temporary SQLite file beside the target holding the table ``layer`` filled through
    ADBC (None: no rows, or no ADBC), for an existing GeoPackage to copy in with one
    ``INSERT … SELECT`` inside its own transaction; removed afterwards."""
    if _ingest_arrow is None or not len(gdf):
        yield None
        return
    fd, tmp = tempfile.mkstemp(prefix=".riskmap-rows-", suffix=".sqlite", dir=folder)
    os.close(fd)
    try:
        with contextlib.closing(sqlite3.connect(tmp, isolation_level=None)) as con:
            con.execute("PRAGMA page_size = 65536")
            _create_layer(con, layer, gtype, cols, types)
        _ingest_rows(Path(tmp), gdf, blobs, layer, cols)
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _load_adbc() -> Any:
    """ADBC's SQLite driver (``adbc-driver-sqlite``), or None when it is not installed."""
    try:
        import adbc_driver_sqlite.dbapi as adbc
    except ImportError:  # pragma: no cover - a declared dependency; sqlite3 still writes
        return None
    return adbc.connect


_ingest_arrow = _load_adbc()


def _arrow_column(col: pd.Series) -> Any:
    """The column as an Arrow array for ADBC: missing values (NaN, None) as nulls."""
    import pyarrow as pa

    if isinstance(col.dtype, np.dtype) and col.dtype.kind == "b":
        return pa.array(col.to_numpy().astype(np.int64))  # sqlite3 binds bools as 0 / 1
    return pa.array(col, from_pandas=True)


def _ingest_rows(path: Path, gdf: gpd.GeoDataFrame, blobs: list[bytes | None], layer: str,
                 cols: Sequence[str], *, rtree: RtreeTables | None = None) -> None:
    """Append the features to the (empty) table ``layer`` of the new file ``path`` with ADBC's
    SQLite driver: one transaction, the values bound from Arrow buffers in C (sqlite3's
    ``executemany`` makes a Python object of every cell: 0.94 s against 0.25 s for 92k
    findings of 27 columns). The driver carries its own SQLite; the file is a temporary
    one no other connection has open, so their locks never meet."""
    import pyarrow as pa

    assert _ingest_arrow is not None
    table = pa.table({"fid": pa.array(np.arange(1, len(gdf) + 1, dtype=np.int64)),
                      "geom": pa.array(blobs, type=pa.binary()),
                      **{str(c): _arrow_column(gdf[c]) for c in cols}})
    with _ingest_arrow(str(path), autocommit=True) as con, con.cursor() as cur:
        cur.execute("PRAGMA journal_mode = OFF")
        cur.fetchall()
        cur.execute("PRAGMA synchronous = OFF")
        cur.adbc_ingest(layer, table, mode="append")
        for suffix, (key, value) in (rtree or {}).items():  # the R-tree's shadow tables
            names = _RTREE_COLUMNS[suffix]
            cur.adbc_ingest(_rtree_name(layer) + suffix,
                            pa.table({names[0]: pa.array(key, type=pa.int64()),
                                      names[1]: pa.array(value, type=pa.binary()
                                                         if suffix == "_node" else pa.int64())}),
                            mode="append")


# SQLite's R-tree: nodes of 4 + 51 cells x 24 bytes (rowid, minx, maxx, miny, maxy as big-endian
# int64 / float32); values rounded outward to float32 as its rtreeValueDown/Up do
_RTREE_CELLS = 51
_RTREE_CELL = np.dtype([("id", ">i8"), ("box", ">f4", (4,))])
_RTREE_NODE = 4 + _RTREE_CELLS * _RTREE_CELL.itemsize
_RND_TOWARDS, _RND_AWAY = 1.0 - 1.0 / 8388608.0, 1.0 + 1.0 / 8388608.0


def _float32_down(v: np.ndarray) -> np.ndarray:
    f = v.astype(np.float32)
    fix = f > v
    f[fix] = (v[fix] * np.where(v[fix] < 0, _RND_AWAY, _RND_TOWARDS)).astype(np.float32)
    return f


def _float32_up(v: np.ndarray) -> np.ndarray:
    f = v.astype(np.float32)
    fix = f < v
    f[fix] = (v[fix] * np.where(v[fix] < 0, _RND_TOWARDS, _RND_AWAY)).astype(np.float32)
    return f


def _str_order(box: np.ndarray) -> np.ndarray:
    """Sort-tile-recursive order of boxes (minx, maxx, miny, maxy): vertical slices of whole
    nodes by x centre, each sorted by y centre, so consecutive runs of 51 are compact."""
    n = len(box)
    slab = int(np.ceil(np.sqrt(np.ceil(n / _RTREE_CELLS)))) * _RTREE_CELLS
    cx, cy = box[:, 0] + box[:, 1], box[:, 2] + box[:, 3]
    rank = np.empty(n, dtype=np.intp)
    rank[np.argsort(cx, kind="stable")] = np.arange(n)
    return np.lexsort((cy, rank // slab))


RtreeTables = dict[str, tuple[np.ndarray, Any]]  # shadow-table suffix → (key, value) columns


def _fill_rtree(con: sqlite3.Connection, rtree: str, ids: np.ndarray, bounds: np.ndarray) -> None:
    """Bulk-load the (empty, just created) R-tree ``rtree`` with ``ids`` and their ``bounds``
    (minx, miny, maxx, maxy): the rows of :func:`_rtree_tables` written into its shadow
    tables, what SQLite's one-row-at-a-time inserts (about 10 us a row) would build more
    slowly and less tightly. ``rtreecheck()`` accepts it."""
    tables = _rtree_tables(ids, bounds)
    if not tables:
        return
    con.execute(f"DELETE FROM {_qi(rtree + '_node')}")  # the empty root it was created with
    for suffix, (key, value) in tables.items():
        con.executemany(f"INSERT INTO {_qi(rtree + suffix)} VALUES (?, ?)",
                        zip(key.tolist(), value if isinstance(value, list) else value.tolist(),
                            strict=True))


def _rtree_tables(ids: np.ndarray, bounds: np.ndarray) -> RtreeTables:
    """The shadow-table rows of a packed R-tree of ``ids`` and their ``bounds``: ``_node``
    (node number, node blob), ``_rowid`` (id, leaf node) and ``_parent`` (node, parent
    node); empty for no ids (the tree keeps the empty root it is created with)."""
    if not len(ids):
        return {}
    box = np.column_stack([_float32_down(bounds[:, 0]), _float32_up(bounds[:, 2]),
                           _float32_down(bounds[:, 1]), _float32_up(bounds[:, 3])])
    ids = np.asarray(ids, dtype=np.int64)
    levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (ids, boxes, node), leaves up
    while True:
        order = _str_order(box)
        ids, box = ids[order], box[order]
        node = np.arange(len(ids)) // _RTREE_CELLS
        levels.append((ids, box, node))
        if len(ids) <= _RTREE_CELLS:
            break
        start = np.arange(0, len(ids), _RTREE_CELLS)
        box = np.column_stack([np.minimum.reduceat(box[:, 0], start),
                               np.maximum.reduceat(box[:, 1], start),
                               np.minimum.reduceat(box[:, 2], start),
                               np.maximum.reduceat(box[:, 3], start)])
        ids = np.arange(len(start), dtype=np.int64)  # node numbers below, fixed up after
    # node numbers from the root (1) down; a level's cells point at the next level's nodes
    first, n_nodes = [], 1
    for _ids, _box, node in reversed(levels):
        first.append(n_nodes)
        n_nodes += int(node[-1]) + 1
    first.reverse()  # first node number of each level, leaves first
    depth = len(levels) - 1
    node_no: list[np.ndarray] = []
    blobs: list[bytes] = []
    parent: list[tuple[np.ndarray, np.ndarray]] = []
    rowid = (np.empty(0, np.int64), np.empty(0, np.int64))
    for lv, (lids, lbox, node) in enumerate(levels):
        cell_ids = lids if lv == 0 else lids + first[lv - 1]
        n_here = int(node[-1]) + 1
        buf = np.zeros((n_here, _RTREE_NODE), dtype=np.uint8)
        slot = np.arange(len(lids)) - node * _RTREE_CELLS
        cells = np.zeros((n_here, _RTREE_CELLS), dtype=_RTREE_CELL)
        cells["id"][node, slot] = cell_ids
        cells["box"][node, slot] = lbox
        buf[:, 4:] = cells.view(np.uint8).reshape(n_here, -1)
        head = np.zeros(n_here, dtype=[("depth", ">u2"), ("count", ">u2")])
        head["count"] = np.bincount(node, minlength=n_here)
        if lv == depth:
            head["depth"] = depth
        buf[:, :4] = head.view(np.uint8).reshape(n_here, 4)
        node_no.append(np.arange(first[lv], first[lv] + n_here, dtype=np.int64))
        blobs += map(bytes, buf)
        if lv == 0:
            rowid = (lids, node + first[0])
        else:
            parent.append((cell_ids, node + first[lv]))
    out: RtreeTables = {"_node": (np.concatenate(node_no), blobs), "_rowid": rowid}
    if parent:
        out["_parent"] = (np.concatenate([k for k, _v in parent]),
                          np.concatenate([v for _k, v in parent]))
    return out


# the shadow tables' column names (SQLite's rtree module)
_RTREE_COLUMNS = {"_node": ("nodeno", "data"), "_rowid": ("rowid", "nodeno"),
                  "_parent": ("nodeno", "parentnode")}


def _is_geopackage(con: sqlite3.Connection) -> bool:
    try:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError:
        return False
    return {"gpkg_contents", "gpkg_geometry_columns", "gpkg_spatial_ref_sys"} <= names


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _drop_layer(con: sqlite3.Connection, layer: str) -> None:
    """Remove ``layer`` (any case), its R-tree and its rows in the gpkg_* tables."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    row = con.execute("SELECT table_name FROM gpkg_contents WHERE lower(table_name) = "
                      "lower(?)", (layer,)).fetchone()
    name = row[0] if row else next((t for t in tables if t.lower() == layer.lower()), None)
    if name is None:
        return
    if "gpkg_geometry_columns" in tables:
        for (col,) in con.execute("SELECT column_name FROM gpkg_geometry_columns WHERE "
                                  "table_name = ?", (name,)).fetchall():
            con.execute(f"DROP TABLE IF EXISTS {_qi(f'rtree_{name}_{col}')}")
    con.execute(f"DROP TABLE IF EXISTS {_qi(name)}")
    for meta in _GPKG_META:
        if meta in tables:
            con.execute(f"DELETE FROM {meta} WHERE lower(table_name) = lower(?)", (name,))


def _fill_layer(con: sqlite3.Connection, gdf: gpd.GeoDataFrame, geoms: np.ndarray,
                gtype: str, layer: str, cols: Sequence[str], types: Sequence[str | None]) -> None:
    """Create ``layer`` and insert the features, its R-tree and its gpkg_* rows."""
    blobs, bounds, indexed = _gpkg_blobs(geoms)
    _create_layer(con, layer, gtype, cols, types)
    _insert_rows(con, gdf, blobs, layer, cols)
    _finish_layer(con, layer, gtype, bounds, indexed, len(gdf))


def _create_layer(con: sqlite3.Connection, layer: str, gtype: str, cols: Sequence[str],
                  types: Sequence[str | None]) -> None:
    decl = ", ".join([f"{_qi(str(c))} {ty}" for c, ty in zip(cols, types, strict=True)])
    con.execute(f'CREATE TABLE {_qi(layer)} ( "fid" INTEGER PRIMARY KEY AUTOINCREMENT NOT '
                f'NULL, "geom" {gtype}{", " + decl if decl else ""})')


def _insert_rows(con: sqlite3.Connection, gdf: gpd.GeoDataFrame, blobs: list[bytes | None],
                 layer: str, cols: Sequence[str]) -> None:
    fid = list(range(1, len(gdf) + 1))
    values = [fid, blobs, *(_sql_values(gdf[c]) for c in cols)]
    marks = ", ".join("?" * len(values))
    con.executemany(f"INSERT INTO {_qi(layer)} VALUES ({marks})", zip(*values, strict=True))


def _finish_layer(con: sqlite3.Connection, layer: str, gtype: str, bounds: np.ndarray,
                  indexed: np.ndarray, n: int) -> None:
    """The R-tree, the gpkg_* rows and the triggers of the filled table ``layer``."""
    _create_rtree(con, layer)
    _fill_rtree(con, _rtree_name(layer), np.flatnonzero(indexed) + 1, bounds[indexed])
    _register_layer(con, layer, gtype, bounds, indexed, n)


def _rtree_name(layer: str) -> str:
    return f"rtree_{layer}_geom"


def _create_rtree(con: sqlite3.Connection, layer: str) -> None:
    con.execute(f"CREATE VIRTUAL TABLE {_qi(_rtree_name(layer))} USING rtree(id, minx, maxx, "
                "miny, maxy)")


def _register_layer(con: sqlite3.Connection, layer: str, gtype: str, bounds: np.ndarray,
                    indexed: np.ndarray, n: int) -> None:
    """The gpkg_* rows and the triggers of ``layer`` (its table and R-tree filled)."""
    rtree = _rtree_name(layer)
    b = bounds[indexed]
    # the extent to 16 significant digits, as GDAL records it
    ext = ([float(f"{v:.16g}") for v in (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(),
                                          b[:, 3].max())] if len(b) else [None] * 4)
    con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
                "last_change, min_x, min_y, max_x, max_y, srs_id) VALUES (?, 'features', ?, "
                "'', strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?, ?, ?, ?, ?)",
                (layer, layer, *ext, _SRS_ID))
    con.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)",
                (layer, gtype, _SRS_ID))
    con.execute("INSERT INTO gpkg_extensions VALUES (?, 'geom', 'gpkg_rtree_index', "
                "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')", (layer,))
    has_ogr = con.execute("SELECT 1 FROM sqlite_master WHERE name = 'gpkg_ogr_contents'"
                          ).fetchone()
    if has_ogr:
        con.execute("INSERT INTO gpkg_ogr_contents VALUES (?, ?)", (layer, n))
    names = {"t": layer.replace('"', '""'), "r": rtree.replace('"', '""'),
             "lit": "'" + layer.replace("'", "''") + "'"}
    for sql in (*_RTREE_TRIGGERS, *(_COUNT_TRIGGERS if has_ogr else ())):
        con.execute(sql.format(**names))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def defuse_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell that a spreadsheet would run as a formula (first character
    ``=``, ``+``, ``-``, ``@``, tab or CR) prefixed with ``'``; numbers are left alone."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col]):
            continue
        values = out[col]
        if isinstance(values.dtype, pd.StringDtype):  # every present value is text
            is_text = values.notna().to_numpy()
        else:
            is_text = values.map(type).eq(str).to_numpy()
        if not is_text.any():
            continue
        text = values[is_text].astype(str)
        risky = text.str.startswith(_FORMULA_START).to_numpy()
        if risky.any():
            idx = values.index[is_text][risky]
            out[col] = out[col].astype(object)
            out.loc[idx, col] = "'" + text[risky]
    return out


def _json_default(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
