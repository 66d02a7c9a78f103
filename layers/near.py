"""Read only the features near some lines, through the store's spatial index.

A pipeline check needs the buildings within a few tens of metres of a handful of lines, not the
million buildings of the district. The lines are cut into short stretches (long lines have huge
bounding boxes; one box per segment would make an R-tree lookup per vertex), each stretch's box
is grown by the search radius and transformed to the storage CRS (EPSG:4490), and:

- in a **GeoPackage**, the layer's R-tree is queried once per box in one SQLite statement
  (``CROSS JOIN`` keeps the R-tree lookup per box) and only those features are read (by fid);
- a store with ``read_boxes(layer, boxes, crs=, columns=)`` (the PostGIS store: one query, the
  boxes joined on the GiST index) reads them itself;
- in any other store, the boxes are merged into a few grid tiles read with ``store.read(bbox=)``
  (one whole read when there would be too many).

The result is a superset of the features within the radius (box test only); the exact distance
test follows in ``geo``. Features are returned in stored order, in the lines' CRS.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geo.crs import STORAGE_CRS, reproject, require_projected
from layers.store import GeoPackageStore, Store

__all__ = ["boxes_near", "read_near"]

_MARGIN_DEG = 1e-6  # ≈ 0.1 m: covers the corner-only transform of a box of ≤ 400 m


def _stretches(lines: np.ndarray, radius: np.ndarray, length_m: float) -> np.ndarray:
    """(n, 4) boxes (lines' CRS) of every stretch of at most ``length_m`` of every part of
    ``lines``, grown by the line's ``radius``. Vectorised over all parts and segments."""
    parts, li = shapely.get_parts(lines, return_index=True)
    xy, pi = shapely.get_coordinates(parts, return_index=True)
    same = pi[1:] == pi[:-1]
    a, b, seg_part = xy[:-1][same], xy[1:][same], pi[1:][same]
    ln = np.hypot(*(b - a).T)
    # a segment longer than a stretch is cut into equal pieces first
    k = np.maximum(1, np.ceil(ln / length_m).astype(np.intp))
    seg = np.repeat(np.arange(len(a)), k)
    j = np.arange(len(seg)) - np.repeat(np.cumsum(k) - k, k)
    d = (b - a)[seg]
    p0 = a[seg] + (j / k[seg])[:, None] * d
    p1 = a[seg] + ((j + 1) / k[seg])[:, None] * d
    part = seg_part[seg]
    # chainage along the part of each piece's start, then stretches of length_m
    pl = ln[seg] / k[seg]
    cum = np.cumsum(pl) - pl
    first = np.r_[True, part[1:] != part[:-1]]
    cum -= np.maximum.accumulate(np.where(first, cum, 0.0))
    key = np.r_[True, first[1:] | (np.floor(cum[1:] / length_m) != np.floor(cum[:-1] / length_m))]
    at = np.flatnonzero(key)
    r = radius[li[part[at]]]
    lo = np.minimum(p0, p1)
    hi = np.maximum(p0, p1)
    return np.column_stack([np.minimum.reduceat(lo[:, 0], at) - r,
                            np.minimum.reduceat(lo[:, 1], at) - r,
                            np.maximum.reduceat(hi[:, 0], at) + r,
                            np.maximum.reduceat(hi[:, 1], at) + r])


def boxes_near(lines: gpd.GeoDataFrame, radius_m: np.ndarray | float, *,
               piece_m: float = 50.0) -> np.ndarray:
    """(n, 4) lon/lat boxes (EPSG:4490) covering everything within ``radius_m[i]`` of
    ``lines[i]`` (projected, metres): one per stretch of line (pieces of at most ``piece_m``
    grouped by ``piece_m`` of length along their part: under 2 × ``piece_m`` long).

    A stretch's box is small and tight (a whole line's box would cover half the district),
    and few (one per segment would make as many R-tree lookups as vertices)."""
    require_projected(lines, "lines")
    if piece_m <= 0:
        raise ValueError(f"piece_m is {piece_m}; expected a length > 0")
    g = np.asarray(lines.geometry.values, dtype=object)
    keep = ~(shapely.is_missing(g) | shapely.is_empty(g))
    if not keep.any():
        return np.empty((0, 4))
    radius = np.broadcast_to(np.asarray(radius_m, dtype=float), (len(lines),))
    bx = _stretches(g[keep], radius[keep], piece_m)
    if not len(bx):
        return np.empty((0, 4))
    x0, y0, x1, y1 = bx.T
    # corners and edge midpoints (a box of a few hundred metres is near-affine in GK)
    xs = np.stack([x0, x1, x0, x1, (x0 + x1) / 2, (x0 + x1) / 2, x0, x1])
    ys = np.stack([y0, y0, y1, y1, y0, y1, (y0 + y1) / 2, (y0 + y1) / 2])
    lon, lat = Transformer.from_crs(lines.crs, STORAGE_CRS, always_xy=True).transform(xs, ys)
    return np.column_stack([lon.min(0) - _MARGIN_DEG, lat.min(0) - _MARGIN_DEG,
                            lon.max(0) + _MARGIN_DEG, lat.max(0) + _MARGIN_DEG])


def _gpkg_rtree(con: sqlite3.Connection, layer: str) -> tuple[str, str] | None:
    row = con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns "
                      "WHERE lower(table_name) = lower(?)", (layer,)).fetchone()
    if row is None:
        return None
    table, col = row
    rtree = f"rtree_{table}_{col}"
    ok = con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (rtree,)).fetchone()
    return (table, rtree) if ok else None


def _gpkg_near(store: GeoPackageStore, layer: str, boxes: np.ndarray,
               columns: list[str] | None) -> gpd.GeoDataFrame | None:
    """The features whose R-tree box meets one of ``boxes``: one query, the boxes in a
    temporary table joined to the layer's R-tree (None: no such layer or no R-tree)."""
    from layers import gpkg_read

    if not store.path.exists():
        return None
    with gpkg_read.snapshot(store.path) as con:
        if _gpkg_rtree(con, layer) is None:
            return None
        gdf = gpkg_read.read_layer(con, layer, boxes=boxes, columns=columns)
    return gdf if gdf.crs is not None else gdf.set_crs(STORAGE_CRS)


def _tiles(boxes: np.ndarray, cell: float) -> list[tuple[float, float, float, float]]:
    """Grid cells (degrees) touched by the boxes, merged along rows."""
    x0, y0 = np.floor(boxes[:, :2].min(axis=0) / cell) * cell
    i0 = np.floor((boxes[:, 0] - x0) / cell).astype(int)
    i1 = np.floor((boxes[:, 2] - x0) / cell).astype(int)
    j0 = np.floor((boxes[:, 1] - y0) / cell).astype(int)
    j1 = np.floor((boxes[:, 3] - y0) / cell).astype(int)
    cells = {(j, i) for a, z, c, d in zip(i0, i1, j0, j1, strict=True)
             for j in range(c, d + 1) for i in range(a, z + 1)}
    rects = []
    for j in sorted({c[0] for c in cells}):
        row = sorted(i for jj, i in cells if jj == j)
        start = prev = row[0]
        for i in [*row[1:], None]:
            if i is not None and i == prev + 1:
                prev = i
                continue
            rects.append((x0 + start * cell, y0 + j * cell, x0 + (prev + 1) * cell,
                          y0 + (j + 1) * cell))
            if i is not None:
                start = prev = i
    return rects


def read_near(
    store: Store, layer: str, lines: gpd.GeoDataFrame, radius_m: np.ndarray | float, *,
    columns: Sequence[str] | None = None, piece_m: float = 50.0, max_reads: int = 64,
) -> gpd.GeoDataFrame:
    """Features of ``layer`` whose bounding box comes within ``radius_m`` of ``lines``
    (projected), in the lines' CRS and stored order (see the module docstring)."""
    crs = lines.crs
    boxes = boxes_near(lines, radius_m, piece_m=piece_m)
    cols = list(columns) if columns is not None else None
    if isinstance(store, GeoPackageStore) and len(boxes):
        # sqlite3, not GDAL: GDAL's own SQLite copy closing the file would drop the
        # process's WAL locks (see layers/gpkg_read.py)
        found = _gpkg_near(store, layer, boxes, cols)
        if found is not None:
            return reproject(found, crs)
    if not len(boxes):
        return store.read(layer, crs=crs, columns=cols).iloc[:0]
    read_boxes = getattr(store, "read_boxes", None)
    if callable(read_boxes):
        gdf = read_boxes(layer, boxes, crs=crs, columns=cols)
        return gdf.drop_duplicates("id", keep="first") if "id" in gdf else gdf
    for cell in (0.01, 0.02, 0.05, 0.1):  # ~1, 2, 5, 10 km tiles
        rects = _tiles(boxes, cell)
        if len(rects) <= max_reads:
            break
    else:
        return store.read(layer, crs=crs, columns=cols)
    parts = [store.read(layer, bbox=r, columns=cols) for r in rects]
    out = pd.concat(parts, ignore_index=True)
    if "id" in out:
        out = out.drop_duplicates("id", keep="first")
    return gpd.GeoDataFrame(out, geometry=parts[0].geometry.name, crs=parts[0].crs).to_crs(crs)
