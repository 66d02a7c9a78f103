"""PostGIS store: the store interface of :mod:`layers.store` on a PostgreSQL/PostGIS database.

Open it with ``open_store("postgresql://user@host:5432/db?schema=riskmap")`` (``schema``
defaults to ``riskmap``). Each layer is a table in that schema with a ``geometry`` column in
EPSG:4490 and a GiST index; bbox reads filter with ``ST_Intersects(geometry,
ST_MakeEnvelope(…))`` — the index test ``&&`` then the exact one, like OGR's bbox filter on a
GeoPackage — so they go through the index.

Every write is ONE transaction holding the writer lock of each layer it touches (a
transaction-scoped advisory lock per schema and layer, taken in name order):

* :meth:`PostGISStore.write` replaces layers: new tables are filled by ``COPY`` under
  temporary names, then, under the locks, the old tables are dropped and the new ones renamed;
* :meth:`PostGISStore.append` adds features: the rows are copied into a temporary table, then,
  under the lock (and ``SHARE ROW EXCLUSIVE`` on the table, so readers keep reading), ids
  already stored are refused with one join, the rows inserted, missing columns added;

and both update the catalogue row and bump ``data_version`` in the same transaction. Readers
see the old layers or the new ones, never a mix. Lock waits end after the busy timeout
(``busy_timeout=``, ``$RISKMAP_BUSY_TIMEOUT``, default 30 s) with :class:`StoreBusy`.

Data crosses the wire as CSV written and parsed by Arrow (geometry as hex EWKB), so neither
direction loops over features in Python.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import shapely
from pyproj import CRS

from geo.crs import STORAGE_CRS
from layers.errors import (
    LayerValidationError,
    Problem,
    StoreBusy,
    StoreError,
    missing_extra,
    missing_layer,
)
from layers.registry import resolve_busy_timeout
from layers.store import Bbox, LayerInfo, _bbox_to_storage

__all__ = [
    "DEFAULT_SCHEMA",
    "PostGISStore",
    "init_store",
    "split_url",
    "with_schema",
]

DEFAULT_SCHEMA = "riskmap"
SRID = 4490
_GEOM = "geometry"
_FID = "riskmap_fid"
_BATCH_ROWS = 100_000
_RESERVED = re.compile(r"^riskmap_", re.IGNORECASE)


def split_url(url: str) -> tuple[str, str]:
    """Split ``postgresql://…?schema=NAME`` into the libpq URL (without ``schema``) and schema."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    rest = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            rest.append((key, value))
    if not schema or len(schema) > 60:
        raise StoreError(f"store URL {_masked(url)}: schema {schema!r} must be 1–60 characters")
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def with_schema(url: str, schema: str) -> str:
    """``url`` with its ``schema`` query parameter set to ``schema``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise missing_extra("psycopg", extra="postgis", feature="a PostGIS store") from exc
    return psycopg


# -- type mapping ------------------------------------------------------------------------------
def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return "text"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_floating(t):
        return "double precision"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz is not None else "timestamp"
    raise TypeError(t)


_ARROW_OF: dict[str, pa.DataType] = {
    "text": pa.string(),
    "boolean": pa.bool_(),
    "bigint": pa.int64(),
    "double precision": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}


def _arrow_column(name: str, values: pd.Series) -> pa.Array:
    """An Arrow array for one attribute column; anything without a SQL type becomes text."""
    try:
        arr = pa.array(values, from_pandas=True)
        _pg_type(arr.type)
        if pa.types.is_timestamp(arr.type) and arr.type.tz is not None:
            arr = arr.cast(pa.timestamp("us", tz="UTC"))
        return arr
    except (pa.ArrowException, TypeError, ValueError):
        text = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                for v in values.tolist()]
        return pa.array(text, type=pa.string())


def _geometry_type(geoms: np.ndarray) -> tuple[str, np.ndarray]:
    """Layer geometry type as GeoPackage reports it, and the geometries (promoted to Multi*
    when a layer mixes X and MultiX, as pyogrio does)."""
    present = geoms[~shapely.is_missing(geoms)]
    if present.size == 0:
        return "Unknown", geoms
    kinds = set(shapely.get_type_id(present).tolist())
    has_z = bool(shapely.has_z(present).any())
    names = {0: "Point", 1: "LineString", 3: "Polygon", 4: "MultiPoint",
             5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}
    single_to_multi = {0: 4, 1: 5, 3: 6}
    if len(kinds) == 1:
        kind = kinds.pop()
        out = names.get(kind, "Unknown")
    elif len(kinds) == 2 and any(single_to_multi.get(k) in kinds for k in kinds):
        single = min(kinds)
        out = names[single_to_multi[single]]
        geoms = geoms.copy()
        ids = shapely.get_type_id(geoms)
        idx = np.flatnonzero(ids == single)
        make = {0: shapely.multipoints, 1: shapely.multilinestrings, 3: shapely.multipolygons}
        geoms[idx] = make[single](geoms[idx], indices=np.arange(idx.size))
    else:
        out = "Unknown"
    if has_z and out != "Unknown":
        out += " Z"
    return out, geoms


class _Encoded:
    """A layer ready for COPY: column definitions and CSV batches."""

    def __init__(self, name: str, gdf: gpd.GeoDataFrame) -> None:
        self.name = name
        geom_col = gdf.geometry.name
        attrs = gdf.drop(columns=[geom_col])
        for col in attrs.columns:
            if not isinstance(col, str):
                raise StoreError(f"layer {name!r}: column name {col!r} is not text")
            if col.lower() in (_GEOM, _FID):
                raise StoreError(f"layer {name!r}: column name {col!r} is reserved; rename it")
        arrays = [_arrow_column(c, attrs[c]) for c in attrs.columns]
        self.null_columns = {c for c, a in zip(attrs.columns, arrays, strict=True)
                             if pa.types.is_null(a.type)}
        self.columns: list[tuple[str, str]] = [
            (c, _pg_type(a.type)) for c, a in zip(attrs.columns, arrays, strict=True)
        ]
        self.geometry_type, geoms = _geometry_type(np.asarray(gdf.geometry.values, dtype=object))
        ewkb = shapely.to_wkb(shapely.set_srid(geoms, SRID), hex=True, include_srid=True)
        arrays.append(pa.array(ewkb, type=pa.string()))
        self.table = pa.Table.from_arrays(arrays, names=[*attrs.columns, _GEOM])
        self.count = len(gdf)
        present = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
        bounds = shapely.total_bounds(present) if present.size else None
        self.bbox: Bbox | None = (
            tuple(float(v) for v in bounds)  # type: ignore[assignment]
            if bounds is not None and np.all(np.isfinite(bounds)) else None
        )

    def csv_batches(self) -> Iterator[bytes]:
        opts = pacsv.WriteOptions(include_header=False)
        for batch in self.table.to_batches(max_chunksize=_BATCH_ROWS):
            buf = io.BytesIO()
            pacsv.write_csv(pa.Table.from_batches([batch]), buf, opts)
            yield buf.getvalue()


# -- the store ---------------------------------------------------------------------------------
_readers = threading.local()  # .cons: {(pid, conninfo): psycopg connection}


class PostGISStore:
    """A store in one schema of a PostgreSQL/PostGIS database.

    The schema and its catalogue are created on first write (or by ``riskmap db init``).
    """

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: int = 10,
                 busy_timeout: float | None = None) -> None:
        self._conninfo, url_schema = split_url(url)
        self.busy_timeout = resolve_busy_timeout(busy_timeout)
        self.schema = schema or url_schema
        self._url = url
        self.url = _masked(url)
        self.connect_timeout = connect_timeout
        self._ready = False

    def __repr__(self) -> str:
        return f"PostGISStore({self.url!r}, schema={self.schema!r})"

    # -- connections -----------------------------------------------------------------------
    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A connection with ``search_path`` = the store's schema, then ``public``.

        The block runs in a transaction that commits on success and rolls back on error.
        """
        psycopg = _psycopg()
        try:
            conn = psycopg.connect(self._conninfo, connect_timeout=self.connect_timeout,
                                   application_name="riskmap")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostGIS store {self.url}: {exc}") from exc
        try:
            with conn:
                with conn.cursor() as cur:
                    cur.execute(self._sql("SET search_path TO {}, public"))
                yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Any]:
        """A binary cursor in a read-only ``REPEATABLE READ`` transaction (one snapshot for
        every statement) on this thread's cached connection to the store's server, with
        ``search_path`` = the store's schema, then ``public``.

        Opening a connection costs milliseconds, more than a page query; readers (catalogue,
        version, API pages) reuse one per thread and server. A database error becomes
        :class:`StoreError`.
        """
        psycopg = _psycopg()
        conn = self._reader_connection()
        try:
            with conn.transaction(), conn.cursor(binary=True) as cur:
                cur.execute(self._sql("SET LOCAL search_path TO {}, public"))
                yield cur
        except psycopg.Error as exc:
            if conn.broken or conn.closed:
                _readers.cons.pop((os.getpid(), self._conninfo), None)
            raise StoreError(f"reading from PostGIS store {self.url} failed: {exc}") from exc

    def _reader_connection(self) -> Any:
        psycopg = _psycopg()
        key = (os.getpid(), self._conninfo)
        cache: dict[tuple[int, str], Any] = getattr(_readers, "cons", None) or {}
        _readers.cons = cache
        conn = cache.get(key)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        try:
            conn = psycopg.connect(self._conninfo, connect_timeout=self.connect_timeout,
                                   application_name="riskmap-reader")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostGIS store {self.url}: {exc}") from exc
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        cache[key] = conn
        return conn

    def _sql(self, template: str, *names: str) -> Any:
        from psycopg import sql

        return sql.SQL(template).format(sql.Identifier(self.schema),
                                        *(sql.Identifier(n) for n in names))

    def _initialised(self, cur: Any) -> bool:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL",
                    (f'"{self.schema}".riskmap_layers',))
        return bool(cur.fetchone()[0])

    def init(self) -> list[str]:
        """Create the schema and apply pending migrations; return the names applied."""
        from layers.migrations import apply_migrations

        psycopg = _psycopg()
        with self.connect() as conn, conn.cursor() as cur:
            try:
                cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
                if cur.fetchone() is None:
                    cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            except psycopg.Error as exc:
                raise StoreError(f"{self.url}: the postgis extension is not installed and "
                                 f"cannot be created ({exc}); ask the database owner to run "
                                 "CREATE EXTENSION postgis") from exc
            applied = apply_migrations(cur, self.schema)
        self._ready = True
        return [f"{m.version:04d}_{m.name}" for m in applied]

    def _ensure_ready(self) -> None:
        if self._ready:
            return
        from layers.migrations import LATEST, applied_versions

        with self.connect() as conn, conn.cursor() as cur:
            current = max(applied_versions(cur), default=0) if self._initialised(cur) else 0
        if current < LATEST:
            self.init()
        self._ready = True

    # -- reading ---------------------------------------------------------------------------
    def _catalogue(self, cur: Any, layer: str | None = None) -> list[tuple[Any, ...]]:
        if not self._initialised(cur):
            return []
        query = ("SELECT name, geometry_type, feature_count, minx, miny, maxx, maxy, columns "
                 "FROM riskmap_layers")
        if layer is None:
            cur.execute(query + " ORDER BY ordinal")
        else:
            cur.execute(query + " WHERE name = %s", (layer,))
        return list(cur.fetchall())

    def has_layer(self, layer: str) -> bool:
        with self.reading() as cur:
            return bool(self._catalogue(cur, layer))

    def layers(self) -> list[LayerInfo]:
        with self.reading() as cur:
            rows = self._catalogue(cur)
        return [
            LayerInfo(name=r[0], count=int(r[2]), crs=f"EPSG:{SRID}", geometry_type=r[1],
                      bbox=(r[3], r[4], r[5], r[6]) if r[3] is not None and r[2] else None)
            for r in rows
        ]

    def read(
        self,
        layer: str,
        *,
        crs: CRS | str | int | None = None,
        bbox: Bbox | None = None,
        bbox_crs: CRS | str | int | None = None,
        columns: list[str] | None = None,
    ) -> gpd.GeoDataFrame:
        """Read ``layer``; ``bbox`` (in ``bbox_crs``, default EPSG:4490) uses the GiST index."""
        return self._read(layer, crs=crs, bbox=bbox, bbox_crs=bbox_crs, columns=columns)

    def read_boxes(self, layer: str, boxes: Any, *, crs: CRS | str | int | None = None,
                   columns: list[str] | None = None) -> gpd.GeoDataFrame:
        """Features whose bounding box meets any of ``boxes`` ((n, 4) lon/lat, EPSG:4490), in
        stored order — one query: the boxes go to a temporary table joined with ``&&`` on the
        GiST index (like the R-tree lookups of ``layers.near`` on a GeoPackage)."""
        from psycopg import sql

        arr = np.asarray(boxes, dtype=float).reshape(-1, 4)
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE riskmap_boxes (env geometry) ON COMMIT DROP")
            with cur.copy("COPY riskmap_boxes (env) FROM STDIN") as copy:
                for minx, miny, maxx, maxy in arr.tolist():
                    copy.write_row((f"SRID={SRID};POLYGON(({minx} {miny},{maxx} {miny},"
                                    f"{maxx} {maxy},{minx} {maxy},{minx} {miny}))",))
            where = sql.SQL("{} IN (SELECT t.{} FROM {}.{} t JOIN riskmap_boxes x "
                            "ON t.{} && x.env)").format(
                sql.Identifier(_FID), sql.Identifier(_FID), sql.Identifier(self.schema),
                sql.Identifier(layer), sql.Identifier(_GEOM))
            gdf = self.read_in(cur, layer, columns=columns, where=where)
        return gdf.to_crs(crs) if crs is not None else gdf

    def read_slice(self, layer: str, start: int, stop: int, *,
                   columns: list[str] | None = None) -> gpd.GeoDataFrame:
        """Features ``start`` … ``stop - 1`` of ``layer`` in stored order (for partitioned
        readers such as the Dask engine); the primary key makes each slice an index range."""
        return self._read(layer, columns=columns, rows=(start, stop))

    def _read(
        self,
        layer: str,
        *,
        crs: CRS | str | int | None = None,
        bbox: Bbox | None = None,
        bbox_crs: CRS | str | int | None = None,
        columns: list[str] | None = None,
        rows: tuple[int, int] | None = None,
    ) -> gpd.GeoDataFrame:
        with self.connect() as conn, conn.cursor() as cur:
            gdf = self.read_in(cur, layer, bbox=bbox, bbox_crs=bbox_crs, columns=columns,
                               rows=rows)
        if crs is not None:
            gdf = gdf.to_crs(crs)
        return gdf

    def read_in(
        self,
        cur: Any,
        layer: str,
        *,
        bbox: Bbox | None = None,
        bbox_crs: CRS | str | int | None = None,
        columns: list[str] | None = None,
        rows: tuple[int, int] | None = None,
        where: Any = None,
    ) -> gpd.GeoDataFrame:
        """Read ``layer`` (EPSG:4490) with the cursor ``cur`` of an open transaction.

        ``where`` is an extra ``psycopg.sql`` condition on the layer's table (e.g. a semi-join
        with a temporary table of that transaction).
        """
        psycopg = _psycopg()
        if not self._catalogue(cur, layer):
            raise missing_layer(self.url, layer)
        try:
            # Hold the table for the rest of this transaction: a concurrent write swaps it
            # only after we are done, and the catalogue row read below matches it.
            cur.execute(self._sql("LOCK TABLE {}.{} IN ACCESS SHARE MODE", layer))
        except psycopg.errors.UndefinedTable as exc:
            raise missing_layer(self.url, layer) from exc
        stored = [(str(n), str(t)) for n, t in self._catalogue(cur, layer)[0][7]]
        if columns is not None:
            known = {n for n, _ in stored}
            unknown = [c for c in columns if c not in known]
            if unknown:
                raise StoreError(f"layer {layer!r} has no column(s) {unknown}; it has "
                                 f"{sorted(known)}")
            wanted = set(columns)
            stored = [(n, t) for n, t in stored if n in wanted]
        query, params = self._select(layer, stored, bbox, bbox_crs, rows, where)
        chunks = []
        with cur.copy(query, params) as copy:
            for chunk in copy:
                chunks.append(bytes(chunk))
        return _decode(b"".join(chunks), stored)

    def _select(self, layer: str, stored: list[tuple[str, str]], bbox: Bbox | None,
                bbox_crs: CRS | str | int | None,
                rows: tuple[int, int] | None = None,
                where: Any = None) -> tuple[Any, tuple[Any, ...]]:
        from psycopg import sql

        items: list[sql.Composable] = []
        for name, pgtype in stored:
            ident = sql.Identifier(name)
            if pgtype == "timestamptz":  # ISO 8601 that Arrow parses
                items.append(sql.SQL("to_char({} AT TIME ZONE 'UTC', "
                                     "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')").format(ident))
            else:
                items.append(ident)
        items.append(sql.Identifier(_GEOM))
        text_cols = [sql.Identifier(f"c{i}") for i, (_, t) in enumerate(stored) if t == "text"]
        inner = sql.SQL("SELECT {} FROM {}.{}").format(
            sql.SQL(", ").join(
                sql.SQL("{} AS {}").format(item, sql.Identifier(f"c{i}"))
                for i, item in enumerate(items)
            ),
            sql.Identifier(self.schema), sql.Identifier(layer),
        )
        params: tuple[Any, ...] = ()
        if bbox is not None:
            minx, miny, maxx, maxy = _bbox_to_storage(bbox, bbox_crs)
            # ST_Intersects = the index test (&&) plus the exact test, as OGR's bbox filter
            inner += sql.SQL(" WHERE ST_Intersects({}, ST_MakeEnvelope({}, {}, {}, {}, {}))").format(
                sql.Identifier(_GEOM), *(sql.Literal(float(v)) for v in (minx, miny, maxx, maxy)),
                sql.Literal(SRID))
        if rows is not None:
            # identity values start at 1 and follow the COPY order of a freshly written table
            inner += sql.SQL(" {} {} > {} AND {} <= {}").format(
                sql.SQL("AND" if bbox is not None else "WHERE"), sql.Identifier(_FID),
                sql.Literal(int(rows[0])), sql.Identifier(_FID), sql.Literal(int(rows[1])))
        if where is not None:
            inner += sql.SQL(" {} ({})").format(
                sql.SQL("AND" if bbox is not None or rows is not None else "WHERE"), where)
        inner += sql.SQL(" ORDER BY {}").format(sql.Identifier(_FID))
        # FORCE_QUOTE on text columns tells an empty string ("") from NULL (nothing).
        options: sql.Composable = sql.SQL("FORMAT csv")
        if text_cols:
            options += sql.SQL(", FORCE_QUOTE ({})").format(sql.SQL(", ").join(text_cols))
        return sql.SQL("COPY ({}) TO STDOUT ({})").format(inner, options), params

    def explain_read(self, layer: str, bbox: Bbox) -> str:
        """The query plan of a bbox read of ``layer`` (to check that it uses the index)."""
        from psycopg import sql

        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("EXPLAIN SELECT * FROM {}.{} WHERE ST_Intersects({}, "
                                "ST_MakeEnvelope(%s, %s, %s, %s, {}))").format(
                sql.Identifier(self.schema), sql.Identifier(layer), sql.Identifier(_GEOM),
                sql.Literal(SRID)), tuple(bbox))
            return "\n".join(r[0] for r in cur.fetchall())

    def version(self) -> str:
        """Changes with every write (used as a cache key)."""
        with self.reading() as cur:
            if not self._initialised(cur):
                return "empty"
            cur.execute("SELECT value FROM riskmap_meta WHERE key = 'data_version'")
            row = cur.fetchone()
        return f"pg-{self.schema}-{row[0] if row else 0}"

    # -- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[Any]:
        """A cursor in one write transaction whose lock waits end after ``busy_timeout``.

        A wait that times out (``lock_timeout``) or a deadlock raises :class:`StoreBusy`, any
        other database error :class:`StoreError`; either way the transaction rolls back.
        """
        psycopg = _psycopg()
        self._ensure_ready()
        try:
            with self.connect() as conn, conn.cursor() as cur:
                # 0 would mean "wait forever" to PostgreSQL; 1 ms is "do not wait".
                ms = max(1, round(self.busy_timeout * 1000))
                cur.execute("SELECT set_config('lock_timeout', %s, true)", (f"{ms}ms",))
                yield cur
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as exc:
            raise StoreBusy(f"store {self.url} busy (another writer holds it); retry — nothing "
                            f"was changed (waited {self.busy_timeout:g} s to write {what})"
                            ) from exc
        except psycopg.Error as exc:
            raise StoreError(f"writing {what} to {self.url} failed; the store is unchanged: "
                             f"{exc}") from exc

    def _lock_layers(self, cur: Any, names: list[str]) -> None:
        """Take the writer lock of each layer (sorted, so two writers cannot deadlock).

        A transaction-scoped advisory lock per (schema, layer): it exists before the layer's
        table does, so two first appends (or an append and a replace) of one layer queue
        on it instead of racing to create or swap the table.
        """
        for name in sorted(set(names)):
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))",
                        (f"riskmap-layer:{self.schema}", name))

    def _bump_version(self, cur: Any) -> int:
        """Increment ``data_version`` (its row stays locked until commit) and return it."""
        cur.execute("UPDATE riskmap_meta SET value = (value::bigint + 1)::text "
                    "WHERE key = 'data_version' RETURNING value::bigint")
        return int(cur.fetchone()[0])

    @staticmethod
    def _encode(name: str, gdf: gpd.GeoDataFrame) -> _Encoded:
        _check_layer_name(name)
        if not isinstance(gdf, gpd.GeoDataFrame):
            raise StoreError(f"layer {name!r}: expected a GeoDataFrame, got "
                             f"{type(gdf).__name__}")
        if gdf.crs is None:
            raise StoreError(f"layer {name!r} has no CRS; refusing to store it")
        if CRS(gdf.crs) != STORAGE_CRS:
            gdf = gdf.to_crs(STORAGE_CRS)
        return _Encoded(name, gdf)

    def write(self, layers: Mapping[str, gpd.GeoDataFrame]) -> None:
        """Write (replacing) every given layer in one transaction.

        Each frame must carry a CRS; it is stored in EPSG:4490. New tables are filled under
        temporary names first; then, holding each layer's writer lock, the old tables are
        dropped and the new ones renamed. Raises :class:`StoreBusy` when a lock is not
        granted within ``busy_timeout`` (nothing is changed).
        """
        encoded = [self._encode(name, gdf) for name, gdf in layers.items()]
        if not encoded:
            return
        with self._writing(", ".join(e.name for e in encoded)) as cur:
            staged = [(enc, self._stage(cur, enc)) for enc in encoded]
            self._lock_layers(cur, [e.name for e in encoded])
            for enc, tmp in staged:
                self._swap(cur, enc, tmp)
            # last, so the store-wide version row is held only for the commit
            version = self._bump_version(cur)
            for enc in encoded:
                self._catalogue_row(cur, enc, version)

    def append(self, layer: str, gdf: gpd.GeoDataFrame) -> int:
        """Add the features of ``gdf`` to ``layer`` in one transaction; return the new total.

        The layer is created when it does not exist. Under the layer's writer lock (and
        ``SHARE ROW EXCLUSIVE`` on its table — readers keep reading) the new rows are checked
        for ids already stored (one join), inserted after the stored ones, missing columns
        added, and the catalogue row and data version updated.

        Raises
        ------
        LayerValidationError
            An id of ``gdf`` is already in the layer (every such id is listed); nothing is
            written.
        StoreBusy
            Another writer held the layer longer than ``busy_timeout``; nothing is written.
        """
        from psycopg import sql

        enc = self._encode(layer, gdf)
        with self._writing(layer) as cur:
            cur.execute(sql.SQL("CREATE TEMP TABLE riskmap_new ({} bigint GENERATED ALWAYS AS "
                                "IDENTITY, {}) ON COMMIT DROP").format(
                sql.Identifier(_FID), sql.SQL(", ").join(
                    [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
                     for n, t in enc.columns]
                    + [sql.SQL("{} geometry").format(sql.Identifier(_GEOM))])))
            names = [*(c for c, _ in enc.columns), _GEOM]
            with cur.copy(sql.SQL("COPY riskmap_new ({}) FROM STDIN (FORMAT csv)").format(
                    sql.SQL(", ").join(sql.Identifier(n) for n in names))) as copy:
                for chunk in enc.csv_batches():
                    copy.write(chunk)
            self._lock_layers(cur, [layer])
            row = self._catalogue(cur, layer)
            if not row:
                self._swap(cur, enc, self._stage(cur, enc))
                self._catalogue_row(cur, enc, self._bump_version(cur))
                return enc.count
            return self._append_rows(cur, enc, row[0])

    def _append_rows(self, cur: Any, enc: _Encoded, row: tuple[Any, ...]) -> int:
        from psycopg import sql

        layer = enc.name
        table = sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(layer))
        cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
        stored = [(str(n), str(t)) for n, t in row[7]]
        types = dict(stored)
        if "id" in types and any(n == "id" for n, _ in enc.columns):
            same = types["id"] == dict(enc.columns)["id"]
            cond = "t.id = n.id" if same else "t.id::text = n.id::text"
            cur.execute(sql.SQL("SELECT n.id::text FROM riskmap_new n WHERE EXISTS (SELECT 1 "
                                "FROM {} t WHERE " + cond + ") ORDER BY n.{}").format(
                table, sql.Identifier(_FID)))
            clashes = [r[0] for r in cur.fetchall()]
            if clashes:
                raise LayerValidationError(layer, [
                    Problem(layer, i, "id", i, f"an id not already in layer {layer!r}",
                            "use --replace to replace the layer") for i in clashes])
        added, widened = _merge_columns(stored, enc.columns, enc.null_columns)
        for name, pgtype in added:
            cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                table, sql.Identifier(name), sql.SQL(pgtype)))
        for name, pgtype in widened:
            cur.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
                table, sql.Identifier(name), sql.SQL(pgtype), sql.Identifier(name),
                sql.SQL(pgtype)))
        columns = [(n, t) for n, t in stored]
        columns = [(n, dict(widened).get(n, t)) for n, t in columns] + added
        final = dict(columns)
        gtype, promote_old, promote_new = _combine_geometry_types(
            str(row[1]), int(row[2]), enc.geometry_type if enc.bbox is not None else None)
        if promote_old is not None:
            cur.execute(sql.SQL("UPDATE {} SET {} = ST_Multi({}) WHERE GeometryType({}) = %s"
                                ).format(table, *(sql.Identifier(_GEOM),) * 3),
                        (promote_old.upper(),))
        cur.execute(sql.SQL("SELECT coalesce(max({}), 0) FROM {}").format(
            sql.Identifier(_FID), table))
        base = int(cur.fetchone()[0])
        geom = sql.SQL("ST_Multi(n.{})" if promote_new else "n.{}").format(
            sql.Identifier(_GEOM))
        cols = [n for n, _ in enc.columns]
        cur.execute(sql.SQL(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT %s + n.{}, {} "
            "FROM riskmap_new n ORDER BY n.{}").format(
            table,
            sql.SQL(", ").join(sql.Identifier(n) for n in [_FID, *cols, _GEOM]),
            sql.Identifier(_FID),
            sql.SQL(", ").join([*(sql.SQL("n.{}::{}").format(sql.Identifier(n),
                                                             sql.SQL(final[n]))
                                  for n in cols), geom]),
            sql.Identifier(_FID)), (base,))
        if base + enc.count > 0:
            # keep the identity ahead of the explicit fids (they stay 1 … n, in order)
            cur.execute("SELECT setval(pg_get_serial_sequence(%s, %s), %s)",
                        (f'"{self.schema}"."{layer}"', _FID, base + enc.count))
        version = self._bump_version(cur)
        bbox = enc.bbox or (None, None, None, None)
        cur.execute(
            "UPDATE riskmap_layers SET geometry_type = %s, feature_count = feature_count + %s, "
            "minx = LEAST(minx, %s), miny = LEAST(miny, %s), maxx = GREATEST(maxx, %s), "
            "maxy = GREATEST(maxy, %s), columns = %s, data_version = %s, updated_at = now() "
            "WHERE name = %s RETURNING feature_count",
            (gtype, enc.count, *bbox, json.dumps(columns), version, layer))
        return int(cur.fetchone()[0])

    def _stage(self, cur: Any, enc: _Encoded) -> str:
        from psycopg import sql

        tmp = f"riskmap_tmp_{uuid.uuid4().hex[:16]}"
        coldefs = [sql.SQL("{} bigint GENERATED ALWAYS AS IDENTITY").format(sql.Identifier(_FID))]
        coldefs += [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in enc.columns]
        coldefs.append(sql.SQL("{} geometry(Geometry, {})").format(sql.Identifier(_GEOM),
                                                                 sql.Literal(SRID)))
        cur.execute(sql.SQL("CREATE TABLE {}.{} ({})").format(
            sql.Identifier(self.schema), sql.Identifier(tmp), sql.SQL(", ").join(coldefs)))
        names = sql.SQL(", ").join(sql.Identifier(n) for n in [*(c for c, _ in enc.columns), _GEOM])
        with cur.copy(sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT csv)").format(
                sql.Identifier(self.schema), sql.Identifier(tmp), names)) as copy:
            for chunk in enc.csv_batches():
                copy.write(chunk)
        cur.execute(sql.SQL("ALTER TABLE {}.{} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
            sql.Identifier(self.schema), sql.Identifier(tmp), sql.Identifier(f"{tmp}_pkey"),
            sql.Identifier(_FID)))
        cur.execute(sql.SQL("CREATE INDEX {} ON {}.{} USING gist ({})").format(
            sql.Identifier(f"{tmp}_gix"), sql.Identifier(self.schema), sql.Identifier(tmp),
            sql.Identifier(_GEOM)))
        if any(n == "id" for n, _ in enc.columns):
            # feature lookups (``WHERE id = …``) and the id check of appends
            cur.execute(sql.SQL("CREATE INDEX {} ON {}.{} ({})").format(
                sql.Identifier(f"{tmp}_idx"), sql.Identifier(self.schema), sql.Identifier(tmp),
                sql.Identifier("id")))
        cur.execute(sql.SQL("ANALYZE {}.{}").format(sql.Identifier(self.schema),
                                                    sql.Identifier(tmp)))
        return tmp

    def _swap(self, cur: Any, enc: _Encoded, tmp: str) -> None:
        """Drop the layer's table (waiting for running reads) and rename the staged one."""
        from psycopg import sql

        schema = sql.Identifier(self.schema)
        name = enc.name
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(schema, sql.Identifier(name)))
        cur.execute(sql.SQL("ALTER TABLE {}.{} RENAME TO {}").format(
            schema, sql.Identifier(tmp), sql.Identifier(name)))
        cur.execute(sql.SQL("ALTER TABLE {}.{} RENAME CONSTRAINT {} TO {}").format(
            schema, sql.Identifier(name), sql.Identifier(f"{tmp}_pkey"),
            sql.Identifier(f"{name}_pkey")))
        cur.execute(sql.SQL("ALTER INDEX {}.{} RENAME TO {}").format(
            schema, sql.Identifier(f"{tmp}_gix"), sql.Identifier(f"{name}_gix")))
        cur.execute(sql.SQL("ALTER INDEX IF EXISTS {}.{} RENAME TO {}").format(
            schema, sql.Identifier(f"{tmp}_idx"), sql.Identifier(f"{name}_idx")))

    @staticmethod
    def _catalogue_row(cur: Any, enc: _Encoded, version: int) -> None:
        """Insert or replace the catalogue row of a layer written whole."""
        name = enc.name
        bbox = enc.bbox or (None, None, None, None)
        cur.execute(
            "INSERT INTO riskmap_layers (name, geometry_type, feature_count, minx, miny, maxx, "
            "maxy, columns, data_version, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now()) "
            "ON CONFLICT (name) DO UPDATE SET geometry_type = EXCLUDED.geometry_type, "
            "feature_count = EXCLUDED.feature_count, minx = EXCLUDED.minx, "
            "miny = EXCLUDED.miny, maxx = EXCLUDED.maxx, maxy = EXCLUDED.maxy, "
            "columns = EXCLUDED.columns, data_version = EXCLUDED.data_version, "
            "updated_at = EXCLUDED.updated_at",
            (name, enc.geometry_type, enc.count, *bbox, json.dumps(enc.columns), version),
        )


_MULTI = {"Point": "MultiPoint", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}


def _combine_geometry_types(old: str, old_count: int, new: str | None
                            ) -> tuple[str, str | None, bool]:
    """Layer geometry type after appending features of type ``new`` (None: no geometries)
    to a layer of type ``old``: the type a replace with all features would report, the
    single type whose stored rows become Multi (or None), and whether the new ones do."""
    if new is None:
        return old, None, False
    if old_count == 0:
        return new, None, False
    if "Unknown" in (old, new):
        return "Unknown", None, False
    base_old, z_old = old.removesuffix(" Z"), old.endswith(" Z")
    base_new, z_new = new.removesuffix(" Z"), new.endswith(" Z")
    z = " Z" if z_old or z_new else ""
    if base_old == base_new:
        return base_old + z, None, False
    if _MULTI.get(base_old) == base_new:
        return base_new + z, base_old, False
    if _MULTI.get(base_new) == base_old:
        return base_old + z, None, True
    return "Unknown", None, False


def _merge_columns(stored: list[tuple[str, str]], new: list[tuple[str, str]],
                   null_columns: set[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Columns to add (name, type) and stored columns to widen (name, new type) so that the
    stored table can take the ``new`` columns: bigint + double → double; a typed column
    meeting a different type becomes text; an all-null new column takes the stored type."""
    types = dict(stored)
    added: list[tuple[str, str]] = []
    widened: list[tuple[str, str]] = []
    for name, pgtype in new:
        old = types.get(name)
        if old is None:
            added.append((name, pgtype))
        elif old != pgtype and name not in null_columns and old != "text":
            target = ("double precision" if {old, pgtype} == {"bigint", "double precision"}
                      else "text")
            if target != old:
                widened.append((name, target))
    return added, widened


def _check_layer_name(name: str) -> None:
    if not isinstance(name, str) or not name or len(name) > 50:
        raise StoreError(f"layer name {name!r}: expected 1–50 characters")
    if _RESERVED.match(name):
        raise StoreError(f"layer name {name!r}: names starting with 'riskmap_' are reserved")


def _decode(data: bytes, stored: list[tuple[str, str]]) -> gpd.GeoDataFrame:
    """CSV from ``COPY … TO STDOUT`` → GeoDataFrame in EPSG:4490 (types as GeoPackage reads)."""
    names = [f"c{i}" for i in range(len(stored) + 1)]
    types = {f"c{i}": _ARROW_OF[t] for i, (_, t) in enumerate(stored)}
    types[names[-1]] = pa.string()
    if data:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False,
                null_values=[""], true_values=["t"], false_values=["f"],
            ),
        )
    else:
        table = pa.Table.from_arrays([pa.array([], type=types[n]) for n in names], names=names)
    geoms = shapely.from_wkb(table.column(names[-1]).to_numpy(zero_copy_only=False))
    df = table.drop_columns([names[-1]]).to_pandas()
    df.columns = [n for n, _ in stored]
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=STORAGE_CRS), crs=STORAGE_CRS)


def init_store(url: str) -> tuple[PostGISStore, list[str]]:
    """Open the PostGIS store at ``url`` and apply pending migrations (``riskmap db init``)."""
    store = PostGISStore(url)
    return store, store.init()
