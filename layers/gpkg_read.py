"""Whole-layer GeoPackage reads with the sqlite3 module (not GDAL), for :class:`GeoPackageStore`.

Why not GDAL: riskmap's processes write the store and read pages with Python's sqlite3, and
pyogrio's GDAL carries its own copy of SQLite. Two SQLite copies in one process do not see each
other's locks (POSIX locks are per process), and GDAL, closing a read-only dataset while a
``-wal`` file exists, reopens it read-write and closes it — taking the exclusive lock no one
in its copy holds, checkpointing and deleting ``-wal`` and ``-shm`` under the other copy's open
connections ("disk I/O error", writes into an unlinked WAL). So the store reads with the one
SQLite its writes use; GDAL only encodes new features into a separate temporary file.

The frames equal what ``pyogrio.read_dataframe(..., use_arrow=True)`` returns (same columns,
dtypes and order, ``geometry`` last, a RangeIndex); a bbox read returns the features whose
geometry intersects the box (R-tree candidates, then the exact test, as GDAL does).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from layers.errors import LayerNotFoundError, StoreError

__all__ = ["LayerSummary", "list_tables", "read_layer", "snapshot", "summaries"]

Bbox = tuple[float, float, float, float]

# GeoPackage geometry blob → WKB: skip the 8-byte header and the envelope its flags announce.
_WKB = ("substr({g}, 9 + (CASE (unicode(CAST(substr({g}, 4, 1) AS TEXT)) >> 1) & 7 "
        "WHEN 1 THEN 32 WHEN 2 THEN 48 WHEN 3 THEN 48 WHEN 4 THEN 64 ELSE 0 END))")
_GEOMETRY_NAMES = {
    "GEOMETRY": "Unknown", "POINT": "Point", "LINESTRING": "LineString", "POLYGON": "Polygon",
    "MULTIPOINT": "MultiPoint", "MULTILINESTRING": "MultiLineString",
    "MULTIPOLYGON": "MultiPolygon", "GEOMETRYCOLLECTION": "GeometryCollection",
}
# Declared column type → Arrow type, as GDAL maps them (OGR type and subtype).
_ARROW = {
    "BOOLEAN": pa.bool_(), "TINYINT": pa.int16(), "SMALLINT": pa.int16(),
    "MEDIUMINT": pa.int32(), "INT": pa.int64(), "INTEGER": pa.int64(), "BIGINT": pa.int64(),
    "FLOAT": pa.float32(), "DOUBLE": pa.float64(), "REAL": pa.float64(),
    "DATE": pa.date32(), "BLOB": pa.binary(),
}


@dataclass(frozen=True)
class LayerSummary:
    """One feature table: count, CRS (``EPSG:n`` or WKT), geometry type as GDAL names it,
    extent (None when empty)."""

    name: str
    count: int
    crs: str
    geometry_type: str
    bbox: Bbox | None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def snapshot(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection inside one read transaction (one consistent snapshot)."""
    try:
        con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30.0,
                              isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open GeoPackage {path}: {exc}") from exc
    try:
        con.execute("BEGIN")
        yield con
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read GeoPackage {path}: {exc}") from exc
    finally:
        con.close()


def list_tables(con: sqlite3.Connection) -> list[tuple[str, str | None]]:
    """(name, geometry type) of the tables in ``gpkg_contents`` (None for attribute tables),
    in the order GDAL lists them."""
    if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'gpkg_contents'").fetchone() is None:
        return []
    rows = con.execute(
        "SELECT c.table_name, g.geometry_type_name, g.z, g.m FROM gpkg_contents c "
        "LEFT JOIN gpkg_geometry_columns g ON lower(g.table_name) = lower(c.table_name) "
        "WHERE c.data_type IN ('features', 'attributes') ORDER BY c.rowid").fetchall()
    return [(str(name), None if gtype is None else _gdal_type(str(gtype), z, m))
            for name, gtype, z, m in rows]


def _gdal_type(name: str, z: object, m: object) -> str:
    base = _GEOMETRY_NAMES.get(name.upper(), name.title())
    suffix = ("Z" if z in (1, 2) else "") + ("M" if m in (1, 2) else "")
    return f"{base} {suffix}" if suffix else base


def _crs(con: sqlite3.Connection, srs_id: int) -> str:
    row = con.execute("SELECT organization, organization_coordsys_id, definition FROM "
                      "gpkg_spatial_ref_sys WHERE srs_id = ?", (srs_id,)).fetchone()
    if row is None:
        raise StoreError(f"GeoPackage names srs_id {srs_id}, which gpkg_spatial_ref_sys lacks")
    org, code, definition = row
    return f"EPSG:{code}" if str(org).upper() == "EPSG" else str(definition)


@dataclass(frozen=True)
class _Table:
    name: str
    fid: str
    geom: str
    srs_id: int
    columns: tuple[tuple[str, str], ...]  # (name, declared type)
    rtree: str | None


def _table(con: sqlite3.Connection, layer: str) -> _Table:
    row = con.execute("SELECT table_name, column_name, srs_id FROM gpkg_geometry_columns "
                      "WHERE lower(table_name) = lower(?)", (layer,)).fetchone()
    if row is None:
        raise LayerNotFoundError(f"GeoPackage has no feature layer {layer!r}")
    table, geom, srs_id = str(row[0]), str(row[1]), int(row[2])
    info = con.execute(f"PRAGMA table_info({_q(table)})").fetchall()
    fid = next((str(r[1]) for r in info if r[5] == 1), "rowid")
    cols = tuple((str(r[1]), str(r[2]).upper()) for r in info if r[1] not in (fid, geom))
    rtree = f"rtree_{table}_{geom}"
    has = con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (rtree,)).fetchone()
    return _Table(table, fid, geom, srs_id, cols, rtree if has else None)


def summaries(con: sqlite3.Connection) -> list[LayerSummary]:
    """Count, CRS, geometry type and extent of every feature table (no geometry is read)."""
    out = []
    for name, gtype in list_tables(con):
        if gtype is None:
            continue
        t = _table(con, name)
        n = None
        if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'gpkg_ogr_contents'"
                       ).fetchone():
            r = con.execute("SELECT feature_count FROM gpkg_ogr_contents WHERE "
                            "lower(table_name) = lower(?)", (name,)).fetchone()
            n = None if r is None else r[0]
        if n is None:
            n = con.execute(f"SELECT count(*) FROM {_q(t.name)}").fetchone()[0]
        ext = con.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE "
                          "lower(table_name) = lower(?)", (name,)).fetchone()
        if (ext is None or None in ext) and t.rtree and n:
            ext = con.execute(f"SELECT min(minx), min(miny), max(maxx), max(maxy) FROM "
                              f"{_q(t.rtree)}").fetchone()
        bbox = None if not n or ext is None or None in ext else (
            float(ext[0]), float(ext[1]), float(ext[2]), float(ext[3]))
        out.append(LayerSummary(name, int(n), _crs(con, t.srs_id), gtype, bbox))
    return out


def read_layer(con: sqlite3.Connection, layer: str, *, bbox: Bbox | None = None,
               columns: Sequence[str] | None = None,
               fids: Sequence[int] | np.ndarray | None = None) -> gpd.GeoDataFrame:
    """Features of ``layer`` in fid order, as ``pyogrio.read_dataframe`` returns them.

    ``bbox`` (in the layer's CRS) keeps the features intersecting it, found through the
    R-tree; ``fids`` keeps those features; ``columns`` keeps those attribute columns (table
    order; unknown names ignored, as pyogrio does).
    """
    t = _table(con, layer)
    cols = list(t.columns)
    if columns is not None:
        wanted = set(columns)
        cols = [c for c in cols if c[0] in wanted]
    select = ", ".join([_WKB.format(g=_q(t.geom)), *(_q(c) for c, _d in cols)])
    sql = f"SELECT {select} FROM {_q(t.name)}"
    where: list[str] = []
    args: list[object] = []
    if bbox is not None and t.rtree is not None:
        minx, miny, maxx, maxy = (float(v) for v in bbox)
        where.append(f"{_q(t.fid)} IN (SELECT id FROM {_q(t.rtree)} WHERE minx <= ? AND "
                     "maxx >= ? AND miny <= ? AND maxy >= ?)")
        args += [maxx, minx, maxy, miny]
    if fids is not None:
        where.append(f"{_q(t.fid)} IN (SELECT value FROM json_each(?))")
        args.append(json.dumps([int(f) for f in np.asarray(fids, dtype=np.int64).tolist()]))
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {_q(t.fid)}"
    rows = con.execute(sql, args).fetchall()
    data = np.empty((len(rows), len(cols) + 1), dtype=object)
    if rows:
        data[:] = rows  # columns out of row tuples, in C
    geoms = shapely.from_wkb(data[:, 0])
    table = pa.table({name: _arrow(data[:, k + 1], decl)
                      for k, (name, decl) in enumerate(cols)})
    frame = table.to_pandas()
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, index=frame.index),
                           crs=_crs(con, t.srs_id))
    if bbox is not None and len(gdf):
        keep = shapely.intersects(gdf.geometry.to_numpy(), shapely.box(*bbox))
        if not keep.all():
            gdf = gdf.loc[keep].reset_index(drop=True)
    return gdf


def _arrow(values: np.ndarray, declared: str) -> pa.Array:
    """One column's values as the Arrow array GDAL would give for its declared type."""
    base = declared.split("(")[0].strip()
    typ = _ARROW.get(base)
    if base == "BOOLEAN":
        return pa.array(values, type=pa.int64()).cast(pa.bool_())
    if base == "DATE":
        return _strings(values).cast(pa.date32())
    if base == "DATETIME":
        parsed = pd.to_datetime(pd.Series(_texts(values), dtype=object), format="ISO8601",
                                utc=True)
        return pa.array(parsed.dt.tz_localize(None).astype("datetime64[ms]"))
    if typ is not None and typ != pa.binary():
        try:
            return pa.array(values, type=typ)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # text stored in a numeric column
            return _strings(values)
    if typ == pa.binary():
        return pa.array(values, type=pa.binary())
    return _strings(values)


def _strings(values: np.ndarray) -> pa.Array:
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers stored in a text column
        return pa.array(_texts(values), type=pa.string())


def _texts(values: np.ndarray) -> list[str | None]:
    return [None if v is None else str(v) for v in values]
