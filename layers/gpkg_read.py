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
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from layers.gpkg_catalog import (  # re-exported: the light catalogue reads live there
    Bbox,
    LayerSummary,
    _crs,
    _q,
    _table,
    list_tables,
    snapshot,
    summaries,
)

__all__ = ["LayerSummary", "list_tables", "read_layer", "snapshot", "summaries"]


# GeoPackage geometry blob → WKB: skip the 8-byte header and the envelope its flags announce.
_WKB = ("substr({g}, 9 + (CASE (unicode(CAST(substr({g}, 4, 1) AS TEXT)) >> 1) & 7 "
        "WHEN 1 THEN 32 WHEN 2 THEN 48 WHEN 3 THEN 48 WHEN 4 THEN 64 ELSE 0 END))")
# Declared column type → Arrow type, as GDAL maps them (OGR type and subtype).
_ARROW = {
    "BOOLEAN": pa.bool_(), "TINYINT": pa.int16(), "SMALLINT": pa.int16(),
    "MEDIUMINT": pa.int32(), "INT": pa.int64(), "INTEGER": pa.int64(), "BIGINT": pa.int64(),
    "FLOAT": pa.float32(), "DOUBLE": pa.float64(), "REAL": pa.float64(),
    "DATE": pa.date32(), "BLOB": pa.binary(),
}


def read_layer(con: sqlite3.Connection, layer: str, *, bbox: Bbox | None = None,
               columns: Sequence[str] | None = None,
               fids: Sequence[int] | np.ndarray | None = None,
               boxes: np.ndarray | None = None) -> gpd.GeoDataFrame:
    """Features of ``layer`` in fid order, as ``pyogrio.read_dataframe`` returns them.

    ``bbox`` (in the layer's CRS) keeps the features intersecting it, found through the
    R-tree; ``fids`` keeps those features; ``columns`` keeps those attribute columns (table
    order; unknown names ignored, as pyogrio does). ``boxes`` ((n, 4) minx, miny, maxx, maxy
    in the layer's CRS; the layer needs its R-tree) keeps the features whose R-tree box meets
    any of them: the boxes go into a temporary table joined to the R-tree in the same query
    (candidates only, no exact test).
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
    if boxes is not None:
        if t.rtree is None:
            raise ValueError(f"layer {layer!r} has no R-tree; read it by bbox or fids")
        con.execute("CREATE TEMP TABLE IF NOT EXISTS riskmap_near_boxes "
                    "(x0 REAL, y0 REAL, x1 REAL, y1 REAL)")
        con.execute("DELETE FROM temp.riskmap_near_boxes")
        con.executemany("INSERT INTO temp.riskmap_near_boxes VALUES (?, ?, ?, ?)",
                        np.asarray(boxes, dtype=float).reshape(-1, 4).tolist())
        # CROSS JOIN: one R-tree lookup per box; IN: each feature once, in fid order
        where.append(f"{_q(t.fid)} IN (SELECT r.id FROM temp.riskmap_near_boxes q CROSS JOIN "
                     f"{_q(t.rtree)} r WHERE r.maxx >= q.x0 AND r.minx <= q.x1 AND "
                     "r.maxy >= q.y0 AND r.miny <= q.y1)")
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
