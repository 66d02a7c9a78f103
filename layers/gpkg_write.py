"""GeoPackage writes as SQLite transactions: replace or append layers in place, one writer at a time.

A GeoPackage is an SQLite database. The store is kept in WAL journal mode (set once, it is
persistent), so readers — GDAL/pyogrio, :mod:`layers.gpkg_query`, the registry — keep reading
their snapshot while a writer works and are never blocked or failed by it. Every write is one
``BEGIN IMMEDIATE`` transaction: one writer at a time; a writer that cannot get the store
within the busy timeout raises :class:`~layers.errors.StoreBusy` and changes nothing.

GDAL encodes the geometries: the new features are written by pyogrio into a temporary
GeoPackage in the store's directory (no lock needed), which the store's connection ATTACHes
and copies across with SQL inside the transaction — the feature table, its R-tree rows, its
rows in ``gpkg_contents`` / ``gpkg_geometry_columns`` / ``gpkg_extensions`` /
``gpkg_ogr_contents``. Triggers (the R-tree triggers call ``ST_*`` functions plain sqlite3
lacks) are created after the copy, so they never fire on it. The temporary file is removed
whatever happens.

The store version is a counter in the table ``riskmap_meta`` (key ``data_version``), moved
inside every layer write's transaction; registry edits do not move it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import pyogrio

from layers.errors import LayerValidationError, Problem, StoreBusy, StoreError
from layers.gpkg_catalog import META_TABLE, read_version  # re-exported

__all__ = [
    "META_TABLE",
    "append_layer",
    "read_version",
    "replace_layers",
    "transaction",
]

_SRC = "src"  # schema name of the attached temporary GeoPackage
# Tables holding one row (or a few) per layer, keyed by table_name.
_PER_TABLE_META = ("gpkg_contents", "gpkg_geometry_columns", "gpkg_extensions",
                   "gpkg_ogr_contents", "gpkg_data_columns")
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"
_NUMERIC = {"BOOLEAN": 0, "TINYINT": 1, "SMALLINT": 1, "MEDIUMINT": 1, "INTEGER": 1,
            "INT": 1, "FLOAT": 2, "DOUBLE": 2, "REAL": 2}
_GEOMETRY_TYPES = ("POINT", "LINESTRING", "POLYGON")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _busy(path: Path, timeout: float) -> StoreBusy:
    return StoreBusy(f"store {path} busy (another writer holds it); retry — nothing was "
                     f"changed (waited {timeout:g} s)")


# --- encoding ---------------------------------------------------------------------------------
def _encode(frames: Mapping[str, gpd.GeoDataFrame], tmp: Path) -> None:
    """Write ``frames`` (already in the storage CRS) into the new GeoPackage ``tmp``."""
    os.unlink(tmp)  # GDAL creates the file itself
    for name, gdf in frames.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pyogrio.write_dataframe(gdf, tmp, layer=name, driver="GPKG", use_arrow=True,
                                    layer_options={"SPATIAL_INDEX": "YES"})


def _remove(tmp: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(tmp) + suffix)


# --- the transaction ---------------------------------------------------------------------------
@contextlib.contextmanager
def transaction(path: Path, frames: Mapping[str, gpd.GeoDataFrame], *,
                busy_timeout: float) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction on the store at ``path``, with ``frames`` encoded
    into a temporary GeoPackage attached as schema ``src``; committed on success.

    The store is created and put in WAL mode first when needed; the version moves inside the
    transaction. Raises StoreBusy when another writer holds the store longer than
    ``busy_timeout`` seconds, StoreError when the write fails; either way nothing changed.
    """
    what = ", ".join(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".riskmap-", suffix=".gpkg", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            _encode(frames, tmp)
        except Exception as exc:  # GDAL raises its own classes
            raise StoreError(f"writing {what} to {path} failed; the store is unchanged: "
                             f"{exc}") from exc
        with _connection(path, tmp, busy_timeout) as con:
            try:
                yield con
                _bump_version(con)
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
            raise _busy(path, busy_timeout) from exc
        raise StoreError(f"writing {what} to {path} failed; the store is unchanged: {exc}"
                         ) from exc
    finally:
        _remove(tmp)


@contextlib.contextmanager
def _connection(path: Path, tmp: Path, busy_timeout: float) -> Iterator[sqlite3.Connection]:
    """The store's connection (WAL), ``tmp`` attached, inside ``BEGIN IMMEDIATE``."""
    con = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        try:
            if str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")  # persistent; outside a transaction
            con.execute(f"ATTACH DATABASE ? AS {_SRC}", (str(tmp),))
            con.execute("BEGIN IMMEDIATE")
            if _ensure_geopackage(con):  # a new store: an empty GeoPackage whatever follows
                con.execute("COMMIT")
                con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _busy(path, busy_timeout) from exc
            raise
        yield con
        con.execute(f"DETACH DATABASE {_SRC}")
        # Copy the committed pages into the file now, so readers that key on the file see
        # the change; PASSIVE never waits for (nor blocks) readers.
        with contextlib.suppress(sqlite3.Error):
            con.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        con.close()


def _tables(con: sqlite3.Connection, schema: str) -> set[str]:
    return {str(r[0]) for r in con.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")}


def _ensure_geopackage(con: sqlite3.Connection) -> bool:
    """Give a new (empty) store the GeoPackage skeleton of the temporary file; True if so."""
    have = _tables(con, "main")
    if "gpkg_contents" in have:
        return False
    rows = con.execute(f"SELECT type, name, sql FROM {_SRC}.sqlite_master WHERE sql IS NOT NULL"
                       " AND tbl_name LIKE 'gpkg%' ORDER BY type = 'table' DESC").fetchall()
    for _kind, name, sql in rows:
        if name not in have:
            con.execute(sql)
    for pragma in ("application_id", "user_version"):
        value = int(con.execute(f"PRAGMA {_SRC}.{pragma}").fetchone()[0])
        con.execute(f"PRAGMA main.{pragma} = {value}")
    con.execute(f"INSERT OR IGNORE INTO main.gpkg_spatial_ref_sys SELECT * FROM "
                f"{_SRC}.gpkg_spatial_ref_sys")
    return True


def _bump_version(con: sqlite3.Connection) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS main.{META_TABLE} "
                "(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")
    con.execute(f"INSERT OR IGNORE INTO main.{META_TABLE} (key, value) VALUES ('store_id', ?)",
                (uuid.uuid4().hex[:12],))
    # registered like the registry's tables, so GDAL lists it the same way in every store
    con.execute("INSERT OR IGNORE INTO main.gpkg_contents (table_name, data_type, identifier, "
                f"description, last_change) VALUES (?, 'attributes', ?, ?, {_NOW})",
                (META_TABLE, META_TABLE, "riskmap store version"))
    con.execute(f"INSERT INTO main.{META_TABLE} (key, value) VALUES ('data_version', 1) "
                "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")


# --- layer metadata -----------------------------------------------------------------------------
def _geometry_column(con: sqlite3.Connection, schema: str, table: str
                     ) -> tuple[str, str, int] | None:
    """(column, geometry type name, srs_id) of a feature table, None when it is not one."""
    if "gpkg_geometry_columns" not in _tables(con, schema):
        return None
    row = con.execute(f"SELECT column_name, geometry_type_name, srs_id FROM "
                      f"{schema}.gpkg_geometry_columns WHERE lower(table_name) = lower(?)",
                      (table,)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]).upper(), int(row[2]))


def _columns(con: sqlite3.Connection, schema: str, table: str) -> list[tuple[str, str, bool]]:
    """(name, declared type, is primary key) of each column of ``schema.table``."""
    return [(str(r[1]), str(r[2]).upper(), bool(r[5]))
            for r in con.execute(f"PRAGMA {schema}.table_info({_q(table)})")]


def _fid(con: sqlite3.Connection, schema: str, table: str) -> str:
    """The feature id column (the INTEGER PRIMARY KEY a GeoPackage feature table has)."""
    pks = [c for c, _t, pk in _columns(con, schema, table) if pk]
    if len(pks) != 1:
        raise StoreError(f"layer {table!r} has no single integer primary key (fid); it is not "
                         "a GeoPackage feature table riskmap can append to — replace it")
    return pks[0]


def _has_table(con: sqlite3.Connection, schema: str, name: str) -> bool:
    return con.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND "
                       "lower(name) = lower(?)", (name,)).fetchone() is not None


def _copy_meta_rows(con: sqlite3.Connection, table: str) -> None:
    """Copy the temporary file's metadata rows of ``table`` (creating a missing gpkg table)."""
    have = _tables(con, "main")
    for meta in _PER_TABLE_META:
        if not _has_table(con, _SRC, meta):
            continue
        if meta not in have:
            sql = con.execute(f"SELECT sql FROM {_SRC}.sqlite_master WHERE name = ?",
                              (meta,)).fetchone()[0]
            con.execute(sql)
        src_cols = [c[0] for c in _columns(con, _SRC, meta)]
        dst_cols = {c[0].lower() for c in _columns(con, "main", meta)}
        cols = ", ".join(_q(c) for c in src_cols if c.lower() in dst_cols)
        con.execute(f"INSERT INTO main.{meta} ({cols}) SELECT {cols} FROM {_SRC}.{meta} "
                    "WHERE lower(table_name) = lower(?)", (table,))
    con.execute(f"INSERT OR IGNORE INTO main.gpkg_spatial_ref_sys SELECT * FROM "
                f"{_SRC}.gpkg_spatial_ref_sys")
    con.execute(f"UPDATE main.gpkg_contents SET last_change = {_NOW} "
                "WHERE lower(table_name) = lower(?)", (table,))


def _drop_layer(con: sqlite3.Connection, table: str) -> None:
    """Drop ``table``, its R-tree and its metadata rows from the store (if there)."""
    geom = _geometry_column(con, "main", table)
    if geom is not None:
        rtree = f"rtree_{table}_{geom[0]}"
        if _has_table(con, "main", rtree):
            con.execute(f"DROP TABLE main.{_q(rtree)}")
    if _has_table(con, "main", table):
        con.execute(f"DROP TABLE main.{_q(table)}")
    have = _tables(con, "main")
    for meta in (*_PER_TABLE_META, "gpkg_metadata_reference"):
        if meta in have:
            con.execute(f"DELETE FROM main.{meta} WHERE lower(table_name) = lower(?)", (table,))


def _schema_sql(con: sqlite3.Connection, table: str, kind: str) -> list[str]:
    return [str(r[0]) for r in con.execute(
        f"SELECT sql FROM {_SRC}.sqlite_master WHERE type = ? AND lower(tbl_name) = lower(?) "
        "AND sql IS NOT NULL ORDER BY rowid", (kind, table))]


# --- replace -------------------------------------------------------------------------------------
def replace_layers(con: sqlite3.Connection, names: Sequence[str]) -> None:
    """Inside :func:`transaction`: replace (or create) each layer ``names`` with its copy in
    the attached temporary GeoPackage."""
    for name in names:
        _drop_layer(con, name)
        _create_from_src(con, name)


def _create_from_src(con: sqlite3.Connection, name: str) -> None:
    for sql in _schema_sql(con, name, "table"):
        con.execute(sql)  # unqualified CREATE goes to main
    con.execute(f"INSERT INTO main.{_q(name)} SELECT * FROM {_SRC}.{_q(name)}")
    geom = _geometry_column(con, _SRC, name)
    if geom is not None:
        rtree = f"rtree_{name}_{geom[0]}"
        row = con.execute(f"SELECT sql FROM {_SRC}.sqlite_master WHERE name = ?",
                          (rtree,)).fetchone()
        if row is not None:
            con.execute(str(row[0]))
            _copy_rtree(con, rtree)
    for sql in _schema_sql(con, name, "index") + _schema_sql(con, name, "trigger"):
        con.execute(sql)
    _ensure_id_index(con, name)
    _copy_meta_rows(con, name)


def _copy_rtree(con: sqlite3.Connection, rtree: str) -> None:
    """Fill the new, empty R-tree ``main.<rtree>`` with the temporary file's.

    The tree GDAL bulk-built is copied node for node (its shadow tables) when the node
    size is the same — inserting a million entries one by one would take seconds; else
    the entries are inserted.
    """
    size = f"SELECT length(data) FROM {{}}.{_q(rtree + '_node')} WHERE nodeno = 1"
    same = con.execute(size.format("main")).fetchone() == con.execute(size.format(_SRC)
                                                                       ).fetchone()
    if not same:
        con.execute(f"INSERT INTO main.{_q(rtree)} SELECT * FROM {_SRC}.{_q(rtree)}")
        return
    for shadow in ("_node", "_rowid", "_parent"):
        table = _q(rtree + shadow)
        cols = ", ".join(_q(c) for c, _t, _pk in _columns(con, _SRC, rtree + shadow))
        con.execute(f"DELETE FROM main.{table}")
        con.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM {_SRC}.{table}")


def _ensure_id_index(con: sqlite3.Connection, name: str) -> None:
    """An index on ``id``: an append checks its ids against the stored ones through it."""
    if any(c.lower() == "id" for c, _t, _pk in _columns(con, "main", name)):
        con.execute(f"CREATE INDEX IF NOT EXISTS main.{_q(f'riskmap_{name}_id')} "
                    f"ON {_q(name)} (id)")


# --- append --------------------------------------------------------------------------------------
def append_layer(con: sqlite3.Connection, name: str) -> int:
    """Inside :func:`transaction`: add the features of the temporary file's layer ``name`` to
    the store's; return the layer's new feature count.

    A layer the store lacks is created. Any id already stored raises LayerValidationError
    (one problem per clashing id) and nothing is written. Fields the store lacks are added;
    the declared types of fields and geometry are widened when the new features need it.
    """
    src_geom = _geometry_column(con, _SRC, name)
    dst_geom = _geometry_column(con, "main", name)
    if dst_geom is None or not _has_table(con, "main", name):
        _drop_layer(con, name)  # stray metadata rows of a half-registered table
        _create_from_src(con, name)
        return _count(con, name)
    if src_geom is None:
        raise StoreError(f"layer {name!r}: the new features have no geometry column")
    _check_srs(con, name, src_geom[2], dst_geom[2])
    _ensure_id_index(con, name)
    _check_ids(con, name)

    # The triggers (R-tree, feature count) call ST_* functions plain sqlite3 lacks: dropped
    # for the copy, recreated after it, all inside the transaction.
    triggers = [str(r[0]) for r in con.execute(
        "SELECT sql FROM main.sqlite_master WHERE type = 'trigger' AND lower(tbl_name) = "
        "lower(?) AND sql IS NOT NULL ORDER BY rowid", (name,))]
    for (tname,) in con.execute("SELECT name FROM main.sqlite_master WHERE type = 'trigger' "
                                "AND lower(tbl_name) = lower(?)", (name,)).fetchall():
        con.execute(f"DROP TRIGGER main.{_q(tname)}")
    dst_cols = _columns(con, "main", name)
    src_cols = _columns(con, _SRC, name)
    dst_fid, src_fid = _fid(con, "main", name), _fid(con, _SRC, name)
    dst_by_lower = {c.lower(): (c, t) for c, t, _pk in dst_cols}
    widen: dict[str, str] = {}
    pairs: list[tuple[str, str]] = [(dst_geom[0], src_geom[0])]
    for col, typ, pk in src_cols:
        if pk or col == src_geom[0]:
            continue
        hit = dst_by_lower.get(col.lower())
        if hit is None:
            con.execute(f"ALTER TABLE main.{_q(name)} ADD COLUMN {_q(col)} {typ}")
            pairs.append((col, col))
            continue
        wider = _wider_field(hit[1], typ)
        if wider != hit[1]:
            widen[hit[0]] = wider
        pairs.append((hit[0], col))
    gtype = _wider_geometry(dst_geom[1], src_geom[1])
    if gtype != dst_geom[1]:
        widen[dst_geom[0]] = gtype
        con.execute("UPDATE main.gpkg_geometry_columns SET geometry_type_name = ? "
                    "WHERE lower(table_name) = lower(?)", (gtype, name))
    if widen:
        _set_declared_types(con, name, widen)
        for col, typ in widen.items():  # values a TEXT column would have stored as text
            if typ == "TEXT":
                con.execute(f"UPDATE main.{_q(name)} SET {_q(col)} = CAST({_q(col)} AS TEXT) "
                            f"WHERE typeof({_q(col)}) IN ('integer', 'real')")

    offset = int(con.execute(f"SELECT coalesce(max({_q(dst_fid)}), 0) FROM main.{_q(name)}"
                             ).fetchone()[0])
    if _has_table(con, "main", "sqlite_sequence"):  # AUTOINCREMENT: never reuse a fid
        row = con.execute("SELECT seq FROM main.sqlite_sequence WHERE name = ?",
                          (name,)).fetchone()
        offset = max(offset, int(row[0] or 0) if row else 0)
    dst_list = ", ".join(_q(d) for d, _s in pairs)
    src_list = ", ".join(f"n.{_q(s)}" for _d, s in pairs)
    con.execute(f"INSERT INTO main.{_q(name)} ({_q(dst_fid)}, {dst_list}) "
                f"SELECT n.{_q(src_fid)} + {offset}, {src_list} FROM {_SRC}.{_q(name)} n "
                f"ORDER BY n.{_q(src_fid)}")
    dst_rtree = f"rtree_{name}_{dst_geom[0]}"
    src_rtree = f"rtree_{name}_{src_geom[0]}"
    if _has_table(con, "main", dst_rtree):
        if _has_table(con, _SRC, src_rtree):
            con.execute(f"INSERT INTO main.{_q(dst_rtree)} SELECT id + {offset}, minx, maxx, "
                        f"miny, maxy FROM {_SRC}.{_q(src_rtree)}")
        else:  # pragma: no cover - pyogrio always writes the index (SPATIAL_INDEX=YES)
            raise StoreError(f"layer {name!r}: the new features came without an R-tree")
    for sql in triggers:
        con.execute(sql)

    added = int(con.execute(f"SELECT count(*) FROM {_SRC}.{_q(name)}").fetchone()[0])
    total = _update_counts(con, name, added)
    con.execute(
        "UPDATE main.gpkg_contents SET "
        "min_x = min(coalesce(min_x, n.a), coalesce(n.a, min_x)), "
        "min_y = min(coalesce(min_y, n.b), coalesce(n.b, min_y)), "
        "max_x = max(coalesce(max_x, n.c), coalesce(n.c, max_x)), "
        "max_y = max(coalesce(max_y, n.d), coalesce(n.d, max_y)), "
        f"last_change = {_NOW} "
        f"FROM (SELECT min_x AS a, min_y AS b, max_x AS c, max_y AS d FROM {_SRC}.gpkg_contents"
        " WHERE lower(table_name) = lower(?)) AS n WHERE lower(table_name) = lower(?)",
        (name, name))
    return total


def _count(con: sqlite3.Connection, name: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM main.{_q(name)}").fetchone()[0])


def _update_counts(con: sqlite3.Connection, name: str, added: int) -> int:
    """Move ``gpkg_ogr_contents.feature_count`` by ``added``; return the new total."""
    if "gpkg_ogr_contents" not in _tables(con, "main"):
        return _count(con, name)
    row = con.execute("SELECT feature_count FROM main.gpkg_ogr_contents WHERE "
                      "lower(table_name) = lower(?)", (name,)).fetchone()
    if row is None or row[0] is None:
        total = _count(con, name)
        con.execute("DELETE FROM main.gpkg_ogr_contents WHERE lower(table_name) = lower(?)",
                    (name,))
        con.execute("INSERT INTO main.gpkg_ogr_contents (table_name, feature_count) "
                    "VALUES (?, ?)", (name, total))
        return total
    total = int(row[0]) + added
    con.execute("UPDATE main.gpkg_ogr_contents SET feature_count = ? WHERE lower(table_name) "
                "= lower(?)", (total, name))
    return total


def _check_srs(con: sqlite3.Connection, name: str, src_srs: int, dst_srs: int) -> None:
    def ident(schema: str, srs: int) -> str:
        row = con.execute(f"SELECT upper(organization), organization_coordsys_id FROM "
                          f"{schema}.gpkg_spatial_ref_sys WHERE srs_id = ?", (srs,)).fetchone()
        return f"srs_id {srs}" if row is None else f"{row[0]}:{row[1]}"

    stored, new = ident("main", dst_srs), ident(_SRC, src_srs)
    if stored != new:
        raise StoreError(f"layer {name!r} is stored in {stored} but the new features are in "
                         f"{new}; replace the layer (--replace) to change its CRS")


def _check_ids(con: sqlite3.Connection, name: str) -> None:
    if not any(c.lower() == "id" for c, _t, _pk in _columns(con, "main", name)):
        return
    if not any(c.lower() == "id" for c, _t, _pk in _columns(con, _SRC, name)):
        return
    src_fid = _fid(con, _SRC, name)
    clash = [str(r[0]) for r in con.execute(
        f"SELECT n.id FROM {_SRC}.{_q(name)} n WHERE EXISTS (SELECT 1 FROM main.{_q(name)} o "
        f"WHERE o.id = n.id) ORDER BY n.{_q(src_fid)}")]
    if clash:
        raise LayerValidationError(name, [
            Problem(name, i, "id", i, f"an id not already in layer {name!r}",
                    "use --replace to replace the layer")
            for i in clash
        ])


def _wider_field(stored: str, new: str) -> str:
    """The declared type that holds values of both types."""
    if stored == new:
        return stored
    a, b = _NUMERIC.get(stored), _NUMERIC.get(new)
    if a is not None and b is not None:
        return stored if a >= b else new
    return "TEXT"


def _wider_geometry(stored: str, new: str) -> str:
    """``POLYGON`` + ``MULTIPOLYGON`` → ``MULTIPOLYGON``; any other mix → ``GEOMETRY``."""
    if stored == new:
        return stored
    base = {t.removeprefix("MULTI") for t in (stored, new)}
    if len(base) == 1 and base.pop() in _GEOMETRY_TYPES:
        return stored if stored.startswith("MULTI") else new
    return "GEOMETRY"


def _set_declared_types(con: sqlite3.Connection, table: str, types: Mapping[str, str]) -> None:
    """Change the declared types of columns in the table's DDL (values are untouched: the
    types only tell readers such as GDAL how to read them)."""
    sql = str(con.execute("SELECT sql FROM main.sqlite_master WHERE type = 'table' AND "
                          "lower(name) = lower(?)", (table,)).fetchone()[0])
    for col, typ in types.items():
        pattern = re.compile(r'("' + re.escape(col.replace('"', '""')) + r'"\s+)([A-Za-z_]+)'
                             r'(\s*(?:\([^)]*\))?)')
        found = pattern.findall(sql)
        if len(found) != 1:
            raise StoreError(f"layer {table!r}: cannot change the type of field {col!r} to "
                             f"{typ} for the new features; replace the layer (--replace)")
        sql = pattern.sub(r"\g<1>" + typ, sql, count=1)  # a size suffix goes too
    # The procedure of SQLite's "ALTER TABLE" page for changes that leave the stored
    # format alone: edit the schema text, bump the schema version, all in the transaction.
    version = int(con.execute("PRAGMA main.schema_version").fetchone()[0])
    con.execute("PRAGMA writable_schema = ON")
    try:
        con.execute("UPDATE main.sqlite_master SET sql = ? WHERE type = 'table' AND "
                    "lower(name) = lower(?)", (sql, table))
        con.execute(f"PRAGMA main.schema_version = {version + 1}")
    finally:
        con.execute("PRAGMA writable_schema = OFF")
