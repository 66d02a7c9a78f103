"""The catalogue of a GeoPackage store read with sqlite3 alone: which layers, their counts,
CRS, geometry types and extents, and the store version — no numpy, pandas or GDAL, so listing a
store (``riskmap layers``) starts fast. Whole-layer reads are in :mod:`layers.gpkg_read`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from layers.errors import LayerNotFoundError, StoreError

__all__ = ["META_TABLE", "LayerSummary", "list_tables", "read_version", "snapshot", "summaries"]

Bbox = tuple[float, float, float, float]
META_TABLE = "riskmap_meta"

_GEOMETRY_NAMES = {
    "GEOMETRY": "Unknown", "POINT": "Point", "LINESTRING": "LineString", "POLYGON": "Polygon",
    "MULTIPOINT": "MultiPoint", "MULTILINESTRING": "MultiLineString",
    "MULTIPOLYGON": "MultiPolygon", "GEOMETRYCOLLECTION": "GeometryCollection",
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


def read_version(path: Path) -> str | None:
    """``<store id>:<data version>`` from a read-only connection; None when the store has no
    version table yet (written before versions existed, or never written)."""
    con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5.0)
    try:
        rows = dict(con.execute(f"SELECT key, value FROM {META_TABLE} "
                                "WHERE key IN ('store_id', 'data_version')").fetchall())
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise StoreError(f"cannot read the version of store {path}: {exc}") from exc
    finally:
        con.close()
    return f"{rows.get('store_id', '')}:{rows.get('data_version', 0)}"
