"""Feature sources behind the collections: store layers (GeoPackage: paged through the R-tree
with sqlite3; PostGIS: one SQL query per page, :mod:`layers.pg_query`) and in-memory frames
(analysis results), plus GeoJSON serialisation.

Routers build an :class:`ItemsQuery` from the request and ask a :class:`Source` for a
:class:`Page`; :func:`feature_collection_bytes` writes it out in the requested CRS.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from api.crs import OgcCrs, transform_geoms
from geo.crs import STORAGE_CRS
from layers import gpkg_query as gq
from layers import pg_query as pq
from layers.postgis import PostGISStore
from layers.store import GeoPackageStore, Store

__all__ = [
    "LARGE_RESULT",
    "FrameSource",
    "ItemsQuery",
    "NearFilter",
    "Page",
    "PostGISLayerSource",
    "ReadSource",
    "Source",
    "StoreLayerSource",
    "feature_bytes",
    "feature_collection_bytes",
    "json_value",
    "source_for",
]


# Above this many index candidates a spatial query pages through the index without an exact
# count (numberMatched omitted; offsets count candidates).
LARGE_RESULT = 20_000


@dataclass(frozen=True)
class NearFilter:
    """Features within ``within_m`` metres of ``target`` (a geometry in ``crs``, metric)."""

    target: shapely.Geometry
    crs: CRS
    within_m: float

    def storage_bounds(self) -> tuple[float, float, float, float]:
        minx, miny, maxx, maxy = self.target.bounds
        d = self.within_m
        t = Transformer.from_crs(self.crs, STORAGE_CRS, always_xy=True)
        return t.transform_bounds(minx - d, miny - d, maxx + d, maxy + d, densify_pts=21)

    def mask(self, geoms_storage: np.ndarray) -> np.ndarray:
        if len(geoms_storage) == 0:
            return np.zeros(0, dtype=bool)
        t = Transformer.from_crs(STORAGE_CRS, self.crs, always_xy=True)
        proj = shapely.transform(geoms_storage, lambda c: np.column_stack(
            t.transform(c[:, 0], c[:, 1])))
        return np.asarray(shapely.dwithin(proj, self.target, self.within_m), dtype=bool)


@dataclass
class ItemsQuery:
    """What to return: spatial region (storage lon/lat), near filter, equality filters, page."""

    region: shapely.Geometry | None = None
    near: NearFilter | None = None
    where: dict[str, object] = field(default_factory=dict)
    limit: int = 100
    offset: int = 0


@dataclass
class Page:
    """One page of features in storage coordinates; ``matched`` may be None (not counted)."""

    columns: list[str]
    records: list[tuple[object, ...]]
    geometries: np.ndarray
    ids: list[object]
    matched: int | None
    next_offset: int | None = None  # set when offsets count index candidates (large results)


class Source(Protocol):
    """A collection's features."""

    def columns(self) -> list[tuple[str, str]]: ...

    def page(self, q: ItemsQuery) -> Page: ...

    def feature(self, feature_id: str) -> Page | None: ...


def _id_index(columns: list[str]) -> int | None:
    return columns.index("id") if "id" in columns else None


# --- store layers ---------------------------------------------------------------------------
class StoreLayerSource:
    """A layer of a GeoPackage store, queried with sqlite3 through its R-tree."""

    def __init__(self, store: GeoPackageStore, layer: str) -> None:
        self.path = store.path
        self.layer = layer

    def _meta(self, con: Any) -> gq.LayerMeta:
        return gq.describe(con, self.layer)

    def columns(self) -> list[tuple[str, str]]:
        with gq.reader(self.path) as con:
            return [(c.name, c.kind) for c in self._meta(con).columns]

    def _bounds(self, q: ItemsQuery) -> tuple[float, float, float, float] | None:
        bounds: tuple[float, float, float, float] | None = None
        if q.region is not None:
            bounds = q.region.bounds
        if q.near is not None:
            nb = q.near.storage_bounds()
            bounds = nb if bounds is None else (max(bounds[0], nb[0]), max(bounds[1], nb[1]),
                                                min(bounds[2], nb[2]), min(bounds[3], nb[3]))
        return bounds

    @staticmethod
    def _exact(q: ItemsQuery, geoms: np.ndarray) -> np.ndarray:
        ok = np.ones(len(geoms), dtype=bool)
        if len(geoms) == 0:
            return ok
        if q.region is not None:
            shapely.prepare(q.region)
            ok &= shapely.intersects(geoms, q.region)
        if q.near is not None:
            ok &= q.near.mask(geoms)
        return ok

    def _spatial_fids(self, con: Any, meta: gq.LayerMeta, q: ItemsQuery,
                      bounds: tuple[float, float, float, float]) -> np.ndarray:
        fids, env = gq.candidates(con, meta, bounds, where=q.where)
        if len(fids) == 0:
            return fids
        sure = np.zeros(len(fids), dtype=bool)
        if q.region is not None and q.near is None:
            boxes = shapely.box(env[:, 0], env[:, 1], env[:, 2], env[:, 3])
            shapely.prepare(q.region)
            sure = shapely.within(boxes, q.region)
        check = fids[~sure]
        if len(check):
            geoms = gq.read_rows(con, meta, fids=check).geometries
            keep = np.concatenate([fids[sure], check[self._exact(q, geoms)]])
            keep.sort()
            return keep
        return fids

    def _large_page(self, con: Any, meta: gq.LayerMeta, q: ItemsQuery,
                    bounds: tuple[float, float, float, float]) -> Page:
        """Page through index candidates in fid order, testing only the page exactly;
        offsets count candidates and numberMatched is omitted (no full scan)."""
        records: list[tuple[object, ...]] = []
        geoms: list[np.ndarray] = []
        fids: list[np.ndarray] = []
        offset, got, exhausted = q.offset, 0, False
        chunk = max(q.limit, 200)
        while got < q.limit:
            ids = gq.candidate_page(con, meta, bounds, where=q.where, limit=chunk,
                                    offset=offset)
            if len(ids) == 0:
                exhausted = True
                break
            rows = gq.read_rows(con, meta, fids=ids)
            ok = self._exact(q, rows.geometries)
            idx = np.flatnonzero(ok)[: q.limit - got]
            used = (int(idx[-1]) + 1) if len(idx) and got + len(idx) >= q.limit else len(ids)
            offset += used
            records += [rows.records[i] for i in idx]
            geoms.append(rows.geometries[idx])
            fids.append(rows.fids[idx])
            got += len(idx)
            if len(ids) < chunk and used == len(ids):
                exhausted = True
                break
        rows = gq.Rows(meta.columns, np.concatenate(fids) if fids else np.empty(0, np.int64),
                       records, np.concatenate(geoms) if geoms else np.empty(0, object))
        page = self._to_page(rows, None)
        page.next_offset = None if exhausted else offset
        return page

    def page(self, q: ItemsQuery) -> Page:
        with gq.reader(self.path) as con:
            meta = self._meta(con)
            bounds = self._bounds(q)
            if bounds is not None:
                if bounds[0] > bounds[2] or bounds[1] > bounds[3]:
                    return self._to_page(gq.read_rows(con, meta, fids=[]), 0)
                if gq.candidate_count(con, meta, bounds, where=q.where) > LARGE_RESULT:
                    return self._large_page(con, meta, q, bounds)
                fids = self._spatial_fids(con, meta, q, bounds)
                rows = gq.read_rows(con, meta, fids=fids[q.offset:q.offset + q.limit])
                matched: int | None = len(fids)
            else:
                rows = gq.read_rows(con, meta, where=q.where, limit=q.limit, offset=q.offset)
                matched = gq.count(con, meta, where=q.where)
        return self._to_page(rows, matched)

    def _to_page(self, rows: gq.Rows, matched: int | None) -> Page:
        cols = [c.name for c in rows.columns]
        i = _id_index(cols)
        ids: list[object] = ([r[i] if r[i] is not None else int(f)
                              for r, f in zip(rows.records, rows.fids, strict=True)]
                             if i is not None else [int(f) for f in rows.fids])
        return Page(cols, rows.records, rows.geometries, ids, matched)

    def feature(self, feature_id: str) -> Page | None:
        with gq.reader(self.path) as con:
            meta = self._meta(con)
            fid = gq.fid_of(con, meta, "id", feature_id)
            if fid is None and meta.column("id") is None and feature_id.isdigit():
                fid = int(feature_id)
            if fid is None:
                return None
            rows = gq.read_rows(con, meta, fids=[fid])
        if not rows.records:
            return None
        return self._to_page(rows, 1)


# --- in-memory frames -----------------------------------------------------------------------
def _kind_of(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "str"


class FrameSource:
    """A GeoDataFrame held in memory (analysis results), reprojected to storage lon/lat."""

    def __init__(self, frame: gpd.GeoDataFrame, *, id_column: str | None = None) -> None:
        gdf = frame if frame.crs is None or CRS(frame.crs) == STORAGE_CRS else frame.to_crs(
            STORAGE_CRS)
        self.frame = gdf.reset_index(drop=True)
        if id_column not in self.frame.columns:
            id_column = next((c for c in ("finding_id", "id") if c in self.frame.columns), None)
        self.id_column = id_column
        geom = self.frame.geometry.name
        self.attr_columns = [c for c in self.frame.columns if c != geom]
        self._geoms = np.asarray(self.frame.geometry.values, dtype=object)

    def columns(self) -> list[tuple[str, str]]:
        return [(c, _kind_of(self.frame[c].dtype)) for c in self.attr_columns]

    def _mask(self, q: ItemsQuery) -> np.ndarray:
        n = len(self.frame)
        mask = np.ones(n, dtype=bool)
        for name, value in q.where.items():
            col = self.frame[name]
            mask &= (col.isna().to_numpy() if value is None
                     else (col == value).fillna(False).to_numpy(dtype=bool))
        if q.region is not None and n:
            hits = self.frame.sindex.query(q.region, predicate="intersects")
            m = np.zeros(n, dtype=bool)
            m[hits] = True
            mask &= m
        if q.near is not None and n:
            idx = np.flatnonzero(mask)
            ok = q.near.mask(self._geoms[idx])
            mask[:] = False
            mask[idx[ok]] = True
        return mask

    def _page_of(self, idx: np.ndarray, matched: int | None) -> Page:
        sub = self.frame.iloc[idx]
        records = list(sub[self.attr_columns].itertuples(index=False, name=None))
        ids: list[object] = (sub[self.id_column].tolist() if self.id_column is not None
                             else [int(i) for i in idx])
        return Page(list(self.attr_columns), records, self._geoms[idx], ids, matched)

    def page(self, q: ItemsQuery) -> Page:
        idx = np.flatnonzero(self._mask(q))
        return self._page_of(idx[q.offset:q.offset + q.limit], len(idx))

    def feature(self, feature_id: str) -> Page | None:
        if self.id_column is not None:
            hits = np.flatnonzero((self.frame[self.id_column].astype(str) == feature_id)
                                  .to_numpy())
        elif feature_id.isdigit() and int(feature_id) < len(self.frame):
            hits = np.asarray([int(feature_id)])
        else:
            hits = np.empty(0, dtype=int)
        if len(hits) == 0:
            return None
        return self._page_of(hits[:1], 1)


class ReadSource:
    """A layer of any other store: spatial queries read only the query's box through the
    store's index, then filter and page in memory."""

    _NOWHERE = (-179.9999, -89.9999, -179.9998, -89.9998)

    def __init__(self, store: Store, layer: str) -> None:
        self.store = store
        self.layer = layer

    def columns(self) -> list[tuple[str, str]]:
        return FrameSource(self.store.read(self.layer, bbox=self._NOWHERE)).columns()

    def page(self, q: ItemsQuery) -> Page:
        box = None
        if q.region is not None:
            box = q.region.bounds
        if q.near is not None:
            nb = q.near.storage_bounds()
            box = nb if box is None else (max(box[0], nb[0]), max(box[1], nb[1]),
                                          min(box[2], nb[2]), min(box[3], nb[3]))
        if box is not None and (box[0] > box[2] or box[1] > box[3]):
            box = self._NOWHERE
        frame = self.store.read(self.layer, bbox=box) if box is not None else self.store.read(
            self.layer)
        return FrameSource(frame).page(q)

    def feature(self, feature_id: str) -> Page | None:
        return FrameSource(self.store.read(self.layer)).feature(feature_id)


class PostGISLayerSource:
    """A layer of a PostGIS store, paged in the database (:mod:`layers.pg_query`): a page is
    one SQL query (``&&`` on the GiST index, the exact region test, the equality filters,
    ``ORDER BY`` the primary key, ``LIMIT``/``OFFSET``) with a bounded count; a feature is
    ``WHERE id = %s``. Same records, order and ``numberMatched`` as :class:`StoreLayerSource`,
    except that a filter without ``bbox`` matching more than :data:`LARGE_RESULT` features is
    not counted (``numberMatched`` omitted) rather than scanned."""

    def __init__(self, store: PostGISStore, layer: str) -> None:
        self.store = store
        self.layer = layer

    def columns(self) -> list[tuple[str, str]]:
        with pq.reader(self.store) as cur:
            return [(c.name, c.kind) for c in pq.describe(cur, self.store, self.layer).columns]

    @staticmethod
    def _region(q: ItemsQuery) -> pq.Region | None:
        bounds: tuple[float, float, float, float] | None = None
        if q.region is not None:
            bounds = q.region.bounds
        if q.near is not None:
            nb = q.near.storage_bounds()
            bounds = nb if bounds is None else (max(bounds[0], nb[0]), max(bounds[1], nb[1]),
                                                min(bounds[2], nb[2]), min(bounds[3], nb[3]))
        return None if bounds is None else pq.Region(bounds, q.region)

    def page(self, q: ItemsQuery) -> Page:
        region = self._region(q)
        with pq.reader(self.store) as cur:
            meta = pq.describe(cur, self.store, self.layer)
            if region is not None and (region.bounds[0] > region.bounds[2]
                                       or region.bounds[1] > region.bounds[3]):
                return self._to_page(pq.read_rows(cur, meta, fids=[])[0], 0)
            n, matched = pq.counts(cur, meta, region=region, where=q.where, cap=LARGE_RESULT)
            if region is not None and n > LARGE_RESULT:
                return self._large_page(cur, meta, q, region)
            if q.near is not None and region is not None:
                fids, geoms = pq.candidates(cur, meta, region, where=q.where)
                keep = fids[q.near.mask(geoms)] if len(fids) else fids
                rows, _ = pq.read_rows(cur, meta, fids=keep[q.offset:q.offset + q.limit])
                return self._to_page(rows, len(keep))
            rows, _ = pq.read_rows(cur, meta, region=region, where=q.where, limit=q.limit,
                                   offset=q.offset)
        return self._to_page(rows, matched)

    def _large_page(self, cur: Any, meta: pq.LayerMeta, q: ItemsQuery,
                    region: pq.Region) -> Page:
        """Page through index candidates in fid order, testing only what is read; offsets
        count candidates and numberMatched is omitted (as :class:`StoreLayerSource`)."""
        records: list[tuple[object, ...]] = []
        geoms: list[np.ndarray] = []
        fids: list[np.ndarray] = []
        offset, got, exhausted = q.offset, 0, False
        chunk = max(q.limit, 200)
        while got < q.limit:
            rows, ok = pq.read_rows(cur, meta, region=region, where=q.where, exact=False,
                                    limit=chunk, offset=offset)
            if len(rows.fids) == 0:
                exhausted = True
                break
            if q.near is not None:
                ok &= q.near.mask(rows.geometries)
            idx = np.flatnonzero(ok)[: q.limit - got]
            used = ((int(idx[-1]) + 1) if len(idx) and got + len(idx) >= q.limit
                    else len(rows.fids))
            offset += used
            records += [rows.records[i] for i in idx]
            geoms.append(rows.geometries[idx])
            fids.append(rows.fids[idx])
            got += len(idx)
            if len(rows.fids) < chunk and used == len(rows.fids):
                exhausted = True
                break
        page = self._to_page(gq.Rows(meta.columns, np.concatenate(fids) if fids else np.empty(
            0, np.int64), records, np.concatenate(geoms) if geoms else np.empty(0, object)),
            None)
        page.next_offset = None if exhausted else offset
        return page

    @staticmethod
    def _to_page(rows: gq.Rows, matched: int | None) -> Page:
        cols = [c.name for c in rows.columns]
        i = _id_index(cols)
        ids: list[object] = ([r[i] if r[i] is not None else int(f)
                              for r, f in zip(rows.records, rows.fids, strict=True)]
                             if i is not None else [int(f) for f in rows.fids])
        return Page(cols, rows.records, rows.geometries, ids, matched)

    def feature(self, feature_id: str) -> Page | None:
        with pq.reader(self.store) as cur:
            meta = pq.describe(cur, self.store, self.layer)
            fid = pq.fid_of(cur, meta, feature_id)
            if fid is None:
                return None
            rows, _ = pq.read_rows(cur, meta, fids=[fid])
        return self._to_page(rows, 1) if rows.records else None


def source_for(store: Store, layer: str) -> Source:
    """The source serving ``layer`` of ``store``: R-tree paging for GeoPackage stores, SQL
    paging for PostGIS stores."""
    if isinstance(store, GeoPackageStore):
        return StoreLayerSource(store, layer)
    if isinstance(store, PostGISStore):
        return PostGISLayerSource(store, layer)
    return ReadSource(store, layer)


# --- serialisation --------------------------------------------------------------------------
def json_value(v: object) -> object:
    """A JSON-safe scalar (NaN → null, numpy → Python, dates → ISO text)."""
    if v is None:
        return None
    if isinstance(v, (bool, str, int)):
        return v
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, np.generic):
        return json_value(v.item())
    if isinstance(v, (pd.Timestamp, dt.datetime, dt.date)):
        return None if pd.isna(v) else v.isoformat()
    if v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (list, tuple, dict)):
        return json.loads(json.dumps(v, default=str))
    return str(v)


def _geometry_texts(geoms: np.ndarray, crs: OgcCrs) -> list[str]:
    if len(geoms) == 0:
        return []
    oriented = shapely.orient_polygons(geoms, exterior_cw=False)
    out = transform_geoms(oriented, crs)
    texts = shapely.to_geojson(out)
    return ["null" if t is None else str(t) for t in texts]


def _features(page: Page, crs: OgcCrs, props: Callable[[tuple[object, ...]], dict[str, object]]
              ) -> list[str]:
    geo = _geometry_texts(page.geometries, crs)
    out = []
    for fid, rec, g in zip(page.ids, page.records, geo, strict=True):
        out.append('{"type":"Feature","id":' + json.dumps(json_value(fid)) + ',"geometry":' + g
                   + ',"properties":' + json.dumps(props(rec), ensure_ascii=False,
                                                   allow_nan=False) + "}")
    return out


_PLAIN = (str, int, type(None))


def _props_fn(columns: list[str]) -> Callable[[tuple[object, ...]], dict[str, object]]:
    def fn(rec: tuple[object, ...]) -> dict[str, object]:
        if all(type(v) in _PLAIN for v in rec):  # bool is not plain: type() is exact
            return dict(zip(columns, rec, strict=True))
        return {c: json_value(v) for c, v in zip(columns, rec, strict=True)}
    return fn


def feature_collection_bytes(page: Page, crs: OgcCrs, *, links: Sequence[Mapping[str, Any]],
                             number_matched: bool = True) -> bytes:
    """The page as a GeoJSON FeatureCollection with OGC paging members."""
    feats = _features(page, crs, _props_fn(page.columns))
    head: dict[str, Any] = {"type": "FeatureCollection"}
    tail: dict[str, Any] = {
        "links": list(links),
        "timeStamp": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace(
            "+00:00", "Z"),
        "numberReturned": len(feats),
    }
    if number_matched and page.matched is not None:
        tail["numberMatched"] = page.matched
    text = (json.dumps(head)[:-1] + ',"features":[' + ",".join(feats) + "],"
            + json.dumps(tail, ensure_ascii=False)[1:])
    return text.encode("utf-8")


def feature_bytes(page: Page, crs: OgcCrs, *, links: Sequence[Mapping[str, Any]]) -> bytes:
    """The first feature of ``page`` as a GeoJSON Feature with links."""
    text = _features(page, crs, _props_fn(page.columns))[0]
    return (text[:-1] + ',"links":' + json.dumps(list(links), ensure_ascii=False) + "}").encode(
        "utf-8")
