"""Paged, index-backed reads of a PostGIS layer (for the API): the counterpart of
:mod:`layers.gpkg_query`.

A page is one SQL query on the layer's table: ``geometry && envelope`` (the GiST index) plus
``ST_Intersects`` with the region, the equality filters as SQL conditions, ``ORDER BY
riskmap_fid`` (insertion order, the primary key) and ``LIMIT``/``OFFSET``; counts are bounded
(``LIMIT cap + 1`` inside a ``count(*)``) so a large result is never scanned whole. A feature
is ``WHERE id = %s`` (a btree index on ``id``).

Every read runs in a read-only ``REPEATABLE READ`` transaction that first takes ``ACCESS
SHARE`` on the layer's table, so the catalogue row, the count and the page agree even while
a writer appends (writers wait for it only to swap or alter the table). Connections are kept
per thread and server (:meth:`PostGISStore.reading`; opening one costs milliseconds).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from layers.errors import LayerNotFoundError, missing_layer
from layers.gpkg_query import Column, Rows
from layers.postgis import SRID, PostGISStore, _psycopg

__all__ = [
    "LayerMeta",
    "Region",
    "candidates",
    "counts",
    "describe",
    "explain_page",
    "fid_of",
    "read_rows",
    "reader",
]

_FID = "riskmap_fid"
_GEOM = "geometry"
_KIND = {"text": "str", "bigint": "int", "double precision": "float", "boolean": "bool",
         "date": "date", "timestamp": "datetime", "timestamptz": "datetime"}


@dataclass(frozen=True)
class LayerMeta:
    """What a query needs to know about a layer's table (from the store's catalogue)."""

    schema: str
    table: str
    columns: tuple[Column, ...]
    types: tuple[str, ...]
    count: int

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    def pgtype(self, name: str) -> str:
        return self.types[[c.name for c in self.columns].index(name)]


@dataclass(frozen=True)
class Region:
    """A spatial filter in EPSG:4490: features whose envelope meets ``bounds`` (the index
    test) and, when ``exact`` is set, that intersect it (``ST_Intersects``)."""

    bounds: tuple[float, float, float, float]
    exact: shapely.Geometry | None = None


# -- connections -------------------------------------------------------------------------------
def reader(store: PostGISStore) -> contextlib.AbstractContextManager[Any]:
    """A binary cursor in a read-only REPEATABLE READ transaction on this thread's cached
    connection to the store's server (:meth:`PostGISStore.reading`)."""
    return store.reading()


def _table(meta_or_schema: LayerMeta | str, table: str | None = None) -> Any:
    from psycopg import sql

    if isinstance(meta_or_schema, LayerMeta):
        return sql.Identifier(meta_or_schema.schema, meta_or_schema.table)
    return sql.Identifier(meta_or_schema, table or "")


def describe(cur: Any, store: PostGISStore, layer: str) -> LayerMeta:
    """Lock ``layer``'s table for this transaction (``ACCESS SHARE``) and read its catalogue
    row; :class:`LayerNotFoundError` when the store has no such layer."""
    from psycopg import sql

    psycopg = _psycopg()
    try:
        cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
            _table(store.schema, layer)))
    except psycopg.errors.UndefinedTable:
        raise missing_layer(store.url, layer) from None
    cur.execute(sql.SQL("SELECT columns, feature_count FROM {} WHERE name = %s").format(
        _table(store.schema, "riskmap_layers")), (layer,))
    row = cur.fetchone()
    if row is None:
        raise missing_layer(store.url, layer)
    cols = [(str(n), str(t)) for n, t in row[0]]
    return LayerMeta(store.schema, layer, tuple(Column(n, _KIND.get(t, "str")) for n, t in cols),
                     tuple(t for _, t in cols), int(row[1]))


# -- SQL pieces --------------------------------------------------------------------------------
def _select_item(name: str, pgtype: str) -> Any:
    """A column as the GeoPackage source returns it (dates and times as ISO text)."""
    from psycopg import sql

    ident = sql.Identifier(name)
    if pgtype == "date":
        return sql.SQL("to_char(t.{}, 'YYYY-MM-DD')").format(ident)
    if pgtype in ("timestamp", "timestamptz"):
        v = (sql.SQL("(t.{} AT TIME ZONE 'UTC')").format(ident) if pgtype == "timestamptz"
             else sql.SQL("t.{}").format(ident))
        z = "Z" if pgtype == "timestamptz" else ""
        return sql.SQL("CASE WHEN extract(microseconds FROM {v})::bigint % 1000000 = 0 "
                       "THEN to_char({v}, 'YYYY-MM-DD\"T\"HH24:MI:SS{z}') "
                       "ELSE to_char({v}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS{z}') END").format(
            v=v, z=sql.SQL(z))
    return sql.SQL("t.{}").format(ident)


def _condition(meta: LayerMeta, name: str, value: object) -> tuple[Any, list[object]]:
    from psycopg import sql

    if meta.column(name) is None:
        raise LayerNotFoundError(f"layer {meta.table!r} has no column {name!r}")
    ident = sql.SQL("t.{}").format(sql.Identifier(name))
    if value is None:
        return sql.SQL("{} IS NULL").format(ident), []
    never: tuple[Any, list[object]] = (sql.SQL("FALSE"), [])
    pgtype = meta.pgtype(name)
    if isinstance(value, str) and "\x00" in value:
        return never  # no stored text holds NUL
    if pgtype == "text":
        text = str(int(value)) if isinstance(value, bool) else str(value)
        return sql.SQL("{} = %s").format(ident), [text]
    if pgtype in ("bigint", "double precision"):
        try:
            num: float | int = (value if isinstance(value, (int, float)) and not isinstance(
                value, bool) else int(value) if isinstance(value, bool) else float(str(value)))
        except ValueError:
            return never
        if pgtype == "bigint" and isinstance(num, float):
            if not num.is_integer():
                return never
            num = int(num)
        return sql.SQL("{} = %s").format(ident), [num]
    if pgtype == "boolean":
        if not isinstance(value, (bool, int)):
            return never
        return sql.SQL("{} = %s").format(ident), [bool(value)]
    return sql.SQL("{} = %s").format(_select_item(name, pgtype)), [str(value)]


def _filters(meta: LayerMeta, region: Region | None, where: Mapping[str, object] | None
             ) -> tuple[list[Any], list[object]]:
    from psycopg import sql

    parts: list[Any] = []
    args: list[object] = []
    if region is not None:
        minx, miny, maxx, maxy = (float(v) for v in region.bounds)
        env = sql.SQL("ST_MakeEnvelope(%s, %s, %s, %s, {})").format(sql.Literal(SRID))
        parts.append(sql.SQL("t.{} && {}").format(sql.Identifier(_GEOM), env))
        args += [minx, miny, maxx, maxy]
    for name, value in (where or {}).items():
        cond, cargs = _condition(meta, name, value)
        parts.append(cond)
        args += cargs
    return parts, args


def _exact(region: Region | None) -> tuple[Any, list[object]]:
    """``ST_Intersects`` with the region's exact shape (TRUE when it has none)."""
    from psycopg import sql

    if region is None or region.exact is None:
        return sql.SQL("TRUE"), []
    shape = region.exact
    minx, miny, maxx, maxy = shape.bounds
    if shapely.equals(shape, shapely.box(minx, miny, maxx, maxy)):
        return (sql.SQL("ST_Intersects(t.{}, ST_MakeEnvelope(%s, %s, %s, %s, {}))").format(
            sql.Identifier(_GEOM), sql.Literal(SRID)), [minx, miny, maxx, maxy])
    return (sql.SQL("ST_Intersects(t.{}, ST_GeomFromWKB(%s, {}))").format(
        sql.Identifier(_GEOM), sql.Literal(SRID)), [shapely.to_wkb(shape)])


def _where_sql(parts: list[Any]) -> Any:
    from psycopg import sql

    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts) if parts else sql.SQL("")


# -- queries -----------------------------------------------------------------------------------
def counts(cur: Any, meta: LayerMeta, *, region: Region | None = None,
           where: Mapping[str, object] | None = None, cap: int) -> tuple[int, int | None]:
    """``(candidates, matched)``: how many features pass the index test and the filters
    (counting stops at ``cap + 1``) and, when that is at most ``cap``, how many also pass the
    exact region test (else None). One query; no row beyond ``cap + 1`` is visited."""
    from psycopg import sql

    if region is None and not where:  # the catalogue's count is exact
        return min(meta.count, cap + 1), meta.count
    parts, args = _filters(meta, region, where)
    exact, eargs = _exact(region)
    cur.execute(sql.SQL("SELECT count(*), count(*) FILTER (WHERE ok) FROM (SELECT {} AS ok "
                        "FROM {} t{} LIMIT %s) c").format(
        exact, _table(meta), _where_sql(parts)), [*eargs, *args, cap + 1])
    n, ok = cur.fetchone()
    return int(n), (int(ok) if n <= cap else None)


def read_rows(
    cur: Any,
    meta: LayerMeta,
    *,
    region: Region | None = None,
    where: Mapping[str, object] | None = None,
    fids: Sequence[int] | np.ndarray | None = None,
    exact: bool = True,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[Rows, np.ndarray]:
    """One page of rows in fid order and, per row, whether it passes the region's exact test.

    With ``exact`` the exact test is a condition of the query (every row passes); without it
    the page counts index candidates and the flags tell which are real matches. ``fids``
    restricts the rows to those fids. A page of the whole layer whose fids are exactly
    1 … count (as the store writes them) is read as a fid range, not by skipping ``offset``
    rows.
    """
    from psycopg import sql

    if (region is None and not where and fids is None and limit is not None and offset > 0
            and _dense(cur, meta)):
        fids = range(offset + 1, min(offset + limit, meta.count) + 1)
        limit, offset = None, 0
    parts, args = _filters(meta, region, where)
    flag, fargs = _exact(region)
    if exact and region is not None and region.exact is not None:
        parts.append(flag)
        args += fargs
        flag, fargs = sql.SQL("TRUE"), []
    if fids is not None:
        parts.append(sql.SQL("t.{} = ANY(%s)").format(sql.Identifier(_FID)))
        args.append([int(f) for f in fids])
    items = [sql.SQL("t.{}").format(sql.Identifier(_FID)), flag,
             sql.SQL("ST_AsBinary(t.{})").format(sql.Identifier(_GEOM)),
             *(_select_item(c.name, t) for c, t in zip(meta.columns, meta.types, strict=True))]
    query = sql.SQL("SELECT {} FROM {} t{} ORDER BY t.{}").format(
        sql.SQL(", ").join(items), _table(meta), _where_sql(parts), sql.Identifier(_FID))
    if limit is not None:
        query += sql.SQL(" LIMIT %s OFFSET %s")
        args += [int(limit), int(offset)]
    cur.execute(query, [*fargs, *args])
    rows = cur.fetchall()
    out_fids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    ok = np.fromiter((bool(r[1]) for r in rows), dtype=bool, count=len(rows))
    geoms = shapely.from_wkb(np.asarray([r[2] for r in rows], dtype=object)) if rows else \
        np.empty(0, dtype=object)
    return Rows(meta.columns, out_fids, [tuple(r[3:]) for r in rows], geoms), ok


def _dense(cur: Any, meta: LayerMeta) -> bool:
    """Whether the layer's fids are exactly 1 … count (one index probe)."""
    from psycopg import sql

    cur.execute(sql.SQL("SELECT min(t.{f}), max(t.{f}) FROM {} t").format(
        _table(meta), f=sql.Identifier(_FID)))
    lo, hi = cur.fetchone()
    return meta.count == 0 or (lo == 1 and hi == meta.count)


def candidates(cur: Any, meta: LayerMeta, region: Region, *,
               where: Mapping[str, object] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fids (in order) and geometries of every feature passing the region (index and exact
    test) and the filters — for a test done in Python (``near=``) on a bounded result."""
    from psycopg import sql

    parts, args = _filters(meta, region, where)
    exact, eargs = _exact(region)
    parts.append(exact)
    cur.execute(sql.SQL("SELECT t.{}, ST_AsBinary(t.{}) FROM {} t{} ORDER BY t.{}").format(
        sql.Identifier(_FID), sql.Identifier(_GEOM), _table(meta), _where_sql(parts),
        sql.Identifier(_FID)), [*args, *eargs])
    rows = cur.fetchall()
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
    fids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return fids, shapely.from_wkb(np.asarray([r[1] for r in rows], dtype=object))


def fid_of(cur: Any, meta: LayerMeta, feature_id: str) -> int | None:
    """Fid of the feature whose ``id`` is ``feature_id`` (the first, by fid), or — for a layer
    without an ``id`` column — of the feature with that fid; None when there is none."""
    from psycopg import sql

    if meta.column("id") is None:
        if not feature_id.isdigit():
            return None
        cur.execute(sql.SQL("SELECT t.{} FROM {} t WHERE t.{} = %s").format(
            sql.Identifier(_FID), _table(meta), sql.Identifier(_FID)), (int(feature_id),))
    else:
        cond, args = _condition(meta, "id", feature_id)
        cur.execute(sql.SQL("SELECT t.{} FROM {} t WHERE {} ORDER BY t.{} LIMIT 1").format(
            sql.Identifier(_FID), _table(meta), cond, sql.Identifier(_FID)), args)
    row = cur.fetchone()
    return None if row is None else int(row[0])


def explain_page(cur: Any, meta: LayerMeta, *, region: Region | None = None,
                 where: Mapping[str, object] | None = None, limit: int = 100,
                 offset: int = 0) -> str:
    """The plan of the page query :func:`read_rows` runs (to check it uses the indexes)."""
    from psycopg import sql

    parts, args = _filters(meta, region, where)
    exact, eargs = _exact(region)
    parts.append(exact)
    cur.execute(sql.SQL("EXPLAIN SELECT t.* FROM {} t{} ORDER BY t.{} LIMIT %s OFFSET %s"
                        ).format(_table(meta), _where_sql(parts), sql.Identifier(_FID)),
                [*args, *eargs, limit, offset])
    return "\n".join(str(r[0]) for r in cur.fetchall())
