"""Paged, index-backed reads of a GeoPackage layer with plain sqlite3 (for the API).

``GeoPackageStore.read`` returns whole GeoDataFrames; serving pages of features needs less:
the ids in a bbox (through the layer's R-tree), a count, one page of rows. Every function opens
a read-only connection (:func:`connect`, or :func:`reader` reused per thread); the store is in
WAL mode, so readers see each committed write at once and are never blocked by a writer. Geometries are decoded from GeoPackage blobs with shapely (vectorised).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from layers.errors import LayerNotFoundError, StoreError

__all__ = [
    "Column",
    "LayerMeta",
    "Rows",
    "candidate_count",
    "candidate_page",
    "candidates",
    "connect",
    "count",
    "decode_geometries",
    "describe",
    "fid_of",
    "read_rows",
    "reader",
]

_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


@dataclass(frozen=True)
class Column:
    """An attribute column: ``kind`` is one of int, float, bool, str, date, datetime, blob."""

    name: str
    kind: str


@dataclass(frozen=True)
class LayerMeta:
    """What a query needs to know about a layer's table."""

    table: str
    fid: str
    geometry: str
    columns: tuple[Column, ...]
    rtree: str | None
    count: int

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None


@dataclass
class Rows:
    """One page of rows: fids, attribute records (tuples in ``columns`` order), geometries."""

    columns: tuple[Column, ...]
    fids: np.ndarray
    records: list[tuple[object, ...]]
    geometries: np.ndarray


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _kind(decl: str) -> str:
    d = (decl or "").upper()
    if d == "BOOLEAN":
        return "bool"
    if d in ("INTEGER", "INT", "TINYINT", "SMALLINT", "MEDIUMINT", "BIGINT"):
        return "int"
    if d in ("REAL", "FLOAT", "DOUBLE"):
        return "float"
    if d == "DATE":
        return "date"
    if d == "DATETIME":
        return "datetime"
    if d == "BLOB":
        return "blob"
    return "str"


@contextlib.contextmanager
def connect(path: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    """A fresh read-only connection to the GeoPackage at ``path``."""
    if not os.path.exists(path):
        raise StoreError(f"GeoPackage {path} does not exist")
    con = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True, check_same_thread=False)
    try:
        yield con
    finally:
        con.close()


class _Con(sqlite3.Connection):
    info_version: tuple[object, ...] | None = None
    info_path: str = ""


_local = threading.local()
_meta_cache: dict[tuple[str, tuple[object, ...], str], LayerMeta] = {}
_meta_lock = threading.Lock()


def _stamp(con: sqlite3.Connection, path: str) -> tuple[object, ...]:
    """What changes with every layer write: the store's ``riskmap_meta`` data version (moved
    inside each write transaction), or — for a GeoPackage riskmap never wrote — the size and
    mtime of the file and its WAL (in WAL mode a commit may leave the main file untouched)."""
    try:
        row = con.execute("SELECT value FROM riskmap_meta WHERE key = 'data_version'"
                          ).fetchone()
    except sqlite3.OperationalError:
        row = None
    if row is not None:
        return ("v", str(row[0]))
    out: list[object] = ["f"]
    for p in (path, path + "-wal"):
        try:
            st = os.stat(p)
            out += [st.st_mtime_ns, st.st_size]
        except FileNotFoundError:
            out += [0, 0]
    return tuple(out)


@contextlib.contextmanager
def reader(path: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    """A read-only connection reused by this thread while the file is the same.

    Opening a connection and parsing a GeoPackage schema costs milliseconds. The connection is
    reopened when the file is replaced (new inode); layer metadata cached by :func:`describe`
    is keyed on the store's data version (see :func:`_stamp`), so a write committed by another
    process — which in WAL mode may not touch the main file at all — is seen at once.
    """
    key = os.fspath(path)
    try:
        inode = os.stat(key).st_ino
    except FileNotFoundError:
        raise StoreError(f"GeoPackage {key} does not exist") from None
    cache: dict[str, tuple[int, _Con]] = getattr(_local, "cons", None) or {}
    _local.cons = cache
    hit = cache.get(key)
    if hit is None or hit[0] != inode:
        if hit is not None:
            hit[1].close()
        con = sqlite3.connect(f"file:{key}?mode=ro", uri=True, factory=_Con, timeout=5.0)
        con.info_path = key
        cache[key] = (inode, con)  # type: ignore[assignment]
        hit = cache[key]
    con = hit[1]
    con.info_version = (inode, *_stamp(con, key))
    yield con


def describe(con: sqlite3.Connection, layer: str) -> LayerMeta:
    """Table, columns, R-tree and feature count of ``layer`` (cached per file version for
    connections from :func:`reader`)."""
    version = getattr(con, "info_version", None)
    if version is None:
        return _describe(con, layer)
    key = (getattr(con, "info_path", ""), version, layer)
    meta = _meta_cache.get(key)
    if meta is None:
        meta = _describe(con, layer)
        with _meta_lock:
            if len(_meta_cache) > 256:
                _meta_cache.clear()
            _meta_cache[key] = meta
    return meta


def _describe(con: sqlite3.Connection, layer: str) -> LayerMeta:
    row = con.execute(
        "SELECT table_name, column_name FROM gpkg_geometry_columns WHERE table_name = ?",
        (layer,)).fetchone()
    if row is None:
        raise LayerNotFoundError(f"GeoPackage has no feature layer {layer!r}")
    table, geom = row
    info = con.execute(f"PRAGMA table_info({_q(table)})").fetchall()
    fid = next((r[1] for r in info if r[5] == 1), "fid")
    cols = tuple(Column(r[1], _kind(r[2])) for r in info if r[1] not in (fid, geom))
    rtree = f"rtree_{table}_{geom}"
    has_rtree = con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (rtree,)).fetchone()
    n = None
    with contextlib.suppress(sqlite3.Error):
        r = con.execute("SELECT feature_count FROM gpkg_ogr_contents WHERE table_name = ?",
                        (table,)).fetchone()
        n = r[0] if r else None
    if n is None:
        n = con.execute(f"SELECT COUNT(*) FROM {_q(table)}").fetchone()[0]
    return LayerMeta(table, fid, geom, cols, rtree if has_rtree else None, int(n))


def _where(meta: LayerMeta, where: Mapping[str, object] | None, alias: str = "t"
           ) -> tuple[str, list[object]]:
    if not where:
        return "", []
    parts, args = [], []
    for name, value in where.items():
        if meta.column(name) is None:
            raise LayerNotFoundError(f"layer {meta.table!r} has no column {name!r}")
        if value is None:
            parts.append(f"{alias}.{_q(name)} IS NULL")
        else:
            parts.append(f"{alias}.{_q(name)} = ?")
            args.append(int(value) if isinstance(value, bool) else value)
    return " AND ".join(parts), args


def count(con: sqlite3.Connection, meta: LayerMeta, *, where: Mapping[str, object] | None = None
          ) -> int:
    """Number of features matching the equality filters ``where`` (cheap when none)."""
    clause, args = _where(meta, where)
    if not clause:
        return meta.count
    sql = f"SELECT COUNT(*) FROM {_q(meta.table)} t WHERE {clause}"
    return int(con.execute(sql, args).fetchone()[0])


def candidates(
    con: sqlite3.Connection,
    meta: LayerMeta,
    bounds: tuple[float, float, float, float],
    *,
    where: Mapping[str, object] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fids (sorted) and envelopes ``(n, 4)`` of features whose envelope meets ``bounds``.

    Uses the layer's R-tree; the envelopes let the caller accept features lying wholly
    inside a region without reading their geometry.
    """
    minx, miny, maxx, maxy = bounds
    clause, args = _where(meta, where)
    if meta.rtree is None:  # no index: scan (still correct)
        raise StoreError(f"layer {meta.table!r} has no spatial index; rewrite it with the store")
    sql = (f"SELECT r.id, r.minx, r.miny, r.maxx, r.maxy FROM {_q(meta.rtree)} r "
           + (f"JOIN {_q(meta.table)} t ON t.{_q(meta.fid)} = r.id " if clause else "")
           + "WHERE r.minx <= ? AND r.maxx >= ? AND r.miny <= ? AND r.maxy >= ?"
           + (f" AND {clause}" if clause else "") + " ORDER BY r.id")
    rows = con.execute(sql, [maxx, minx, maxy, miny, *args]).fetchall()
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty((0, 4))
    arr = np.asarray(rows, dtype=float)
    return arr[:, 0].astype(np.int64), arr[:, 1:]


def _rtree_sql(meta: LayerMeta, clause: str) -> str:
    if meta.rtree is None:
        raise StoreError(f"layer {meta.table!r} has no spatial index; rewrite it with the store")
    return (f"FROM {_q(meta.rtree)} r "
            + (f"JOIN {_q(meta.table)} t ON t.{_q(meta.fid)} = r.id " if clause else "")
            + "WHERE r.minx <= ? AND r.maxx >= ? AND r.miny <= ? AND r.maxy >= ?"
            + (f" AND {clause}" if clause else ""))


def candidate_count(
    con: sqlite3.Connection, meta: LayerMeta, bounds: tuple[float, float, float, float], *,
    where: Mapping[str, object] | None = None,
) -> int:
    """Number of features whose envelope meets ``bounds`` (R-tree count, no rows fetched)."""
    minx, miny, maxx, maxy = bounds
    clause, args = _where(meta, where)
    sql = "SELECT COUNT(*) " + _rtree_sql(meta, clause)
    return int(con.execute(sql, [maxx, minx, maxy, miny, *args]).fetchone()[0])


def candidate_page(
    con: sqlite3.Connection, meta: LayerMeta, bounds: tuple[float, float, float, float], *,
    where: Mapping[str, object] | None = None, limit: int, offset: int = 0,
) -> np.ndarray:
    """Fids ``offset … offset + limit`` (by fid) of the features whose envelope meets
    ``bounds``."""
    minx, miny, maxx, maxy = bounds
    clause, args = _where(meta, where)
    sql = "SELECT r.id " + _rtree_sql(meta, clause) + " ORDER BY r.id LIMIT ? OFFSET ?"
    rows = con.execute(sql, [maxx, minx, maxy, miny, *args, int(limit), int(offset)]).fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def decode_geometries(blobs: Sequence[bytes | None]) -> np.ndarray:
    """GeoPackage geometry blobs → shapely geometries (None for NULL)."""
    wkb: list[bytes | None] = []
    for b in blobs:
        if b is None or len(b) < 8 or b[:2] != b"GP":
            wkb.append(None)
            continue
        flags = b[3]
        env = _ENVELOPE_BYTES.get((flags >> 1) & 7)
        if env is None:
            raise StoreError("GeoPackage geometry blob with an invalid envelope code")
        wkb.append(bytes(b[8 + env:]))
    return shapely.from_wkb(np.asarray(wkb, dtype=object))


def read_rows(
    con: sqlite3.Connection,
    meta: LayerMeta,
    *,
    fids: Sequence[int] | np.ndarray | None = None,
    where: Mapping[str, object] | None = None,
    limit: int | None = None,
    offset: int = 0,
    geometry: bool = True,
) -> Rows:
    """Rows ordered by fid: the given ``fids``, or a ``limit``/``offset`` page of the layer."""
    cols = ", ".join(f"t.{_q(c.name)}" for c in meta.columns)
    sel = f"t.{_q(meta.fid)}" + (f", t.{_q(meta.geometry)}" if geometry else "") + (
        f", {cols}" if cols else "")
    args: list[object] = []
    if fids is not None:
        ids = [int(i) for i in fids]
        if not ids:
            return Rows(meta.columns, np.empty(0, dtype=np.int64), [], np.empty(0, dtype=object))
        marks = ",".join("?" * len(ids))
        sql = f"SELECT {sel} FROM {_q(meta.table)} t WHERE t.{_q(meta.fid)} IN ({marks})"
        args.extend(ids)
        clause, wargs = _where(meta, where)
        if clause:
            sql += f" AND {clause}"
            args.extend(wargs)
        sql += f" ORDER BY t.{_q(meta.fid)}"
    else:
        clause, wargs = _where(meta, where)
        sql = f"SELECT {sel} FROM {_q(meta.table)} t" + (f" WHERE {clause}" if clause else "")
        sql += f" ORDER BY t.{_q(meta.fid)}"
        args.extend(wargs)
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args.extend([int(limit), int(offset)])
    rows = con.execute(sql, args).fetchall()
    start = 2 if geometry else 1
    out_fids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    geoms = (decode_geometries([r[1] for r in rows]) if geometry
             else np.empty(len(rows), dtype=object))
    bools = [i for i, c in enumerate(meta.columns) if c.kind == "bool"]
    records = []
    for r in rows:
        rec = r[start:]
        if bools:
            lst = list(rec)
            for i in bools:
                if lst[i] is not None:
                    lst[i] = bool(lst[i])
            rec = tuple(lst)
        records.append(rec)
    return Rows(meta.columns, out_fids, records, geoms)


def fid_of(con: sqlite3.Connection, meta: LayerMeta, column: str, value: object) -> int | None:
    """Fid of the first feature whose ``column`` equals ``value`` (None when absent)."""
    if meta.column(column) is None:
        return None
    row = con.execute(f"SELECT {_q(meta.fid)} FROM {_q(meta.table)} WHERE {_q(column)} = ? "
                      f"ORDER BY {_q(meta.fid)} LIMIT 1", (value,)).fetchone()
    return None if row is None else int(row[0])
