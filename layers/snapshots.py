"""Named snapshots of a store's layers, kept inside the store, and the changes since one.

``riskmap snapshot --store S NAME`` keeps a copy of the layers' state as it is now — "last
month's survey" — so ``riskmap changes --since NAME`` can say what was added, removed or
changed per layer, and which findings are new or gone.

Where a snapshot lives
    - **GeoPackage**: one plain table per layer, ``riskmap_snapshot_<name>__<layer>`` (same
      columns and declared types as the layer; not registered in ``gpkg_contents``, so it is
      no layer and GIS tools do not list it), and a row per layer in ``riskmap_snapshots``
      (name, layer, table, geometry column, srs, count, created, store version) — all in one
      ``BEGIN IMMEDIATE`` transaction: every layer from one state of the store.
    - **PostGIS**: a schema ``<store schema>__snap__<name>`` holding a copy of each layer
      table, of the catalogue rows and of the version row, plus ``riskmap_snapshot`` (name,
      created, source version): it reads like a store (:class:`~layers.postgis.PostGISStore`
      with that schema). Copied in one transaction holding every layer's writer lock, so no
      write swaps a layer half-way.

Snapshots never move the store's data version (they are not layer writes): analysis results
stay cached. :func:`snapshot_store` gives a read-only :class:`~layers.store.Store` of a
snapshot so the analyses run on it exactly as on the live store.

:func:`feature_changes` compares two states of a layer by ``id`` (vectorised joins): added,
removed, and changed — geometry moved more than ``tolerance_m`` in a metric CRS (Hausdorff
distance) or any attribute different (the fields are named).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo.crs import STORAGE_CRS, require_projected
from layers.errors import InputFileError, LayerNotFoundError, StoreBusy, StoreError
from layers.store import Bbox, GeoPackageStore, LayerInfo, Store, _bbox_to_storage

__all__ = [
    "NAME_PATTERN",
    "SnapshotInfo",
    "SnapshotStore",
    "check_name",
    "create_snapshot",
    "delete_snapshot",
    "feature_changes",
    "get_snapshot",
    "list_snapshots",
    "snapshot_store",
]

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}"
_NAME_RE = re.compile(rf"^{NAME_PATTERN}$")
_META = "riskmap_snapshots"
_PREFIX = "riskmap_snapshot_"
_PG_SEP = "__snap__"
_CHANGE_COLS = ["layer", "feature_id", "change", "fields", "moved_m"]


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot: ``name``, ``created`` (district time, ISO), the store version it copied
    and the feature count of each layer."""

    name: str
    created: str
    store_version: str
    layers: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "created": self.created,
                "store_version": self.store_version, "layers": dict(self.layers)}


def check_name(name: str) -> str:
    """``name`` if it is a valid snapshot name, else InputFileError saying what is allowed."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or "__" in name:
        raise InputFileError(
            f"snapshot name {str(name)[:60]!r} is not allowed; expected 1-40 letters, digits, "
            "'.', '-' or '_' starting with a letter or digit, without '__' (e.g. survey-2026-11)")
    return name


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _is_busy(exc: sqlite3.Error) -> bool:
    return "locked" in str(exc).lower() or "busy" in str(exc).lower()


# --- GeoPackage ------------------------------------------------------------------------------
def _gpkg_connect(store: GeoPackageStore) -> sqlite3.Connection:
    if not store.path.exists() or store.path.stat().st_size == 0:
        raise StoreError(f"store {store.path} does not exist or holds no layer yet; import "
                         "layers before taking a snapshot")
    return sqlite3.connect(store.path, timeout=store.busy_timeout, isolation_level=None)


def _gpkg_meta(con: sqlite3.Connection) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {_META} (name TEXT NOT NULL, layer TEXT NOT NULL, "
                "table_name TEXT NOT NULL, geom_column TEXT NOT NULL, srs_id INTEGER NOT NULL, "
                "features INTEGER NOT NULL, created TEXT NOT NULL, store_version TEXT NOT NULL, "
                "PRIMARY KEY (name, layer))")


def _gpkg_infos(con: sqlite3.Connection, name: str | None = None) -> list[SnapshotInfo]:
    if con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (_META,)).fetchone() is None:
        return []
    sql = f"SELECT name, layer, features, created, store_version FROM {_META}"
    rows = con.execute(sql + (" WHERE name = ?" if name else "") + " ORDER BY created, name, "
                       "rowid", (name,) if name else ()).fetchall()
    head: dict[str, tuple[str, str]] = {}
    counts: dict[str, dict[str, int]] = {}
    for n, layer, count, created, version in rows:
        head.setdefault(n, (str(created), str(version)))
        counts.setdefault(n, {})[str(layer)] = int(count)
    return [SnapshotInfo(n, c, v, counts[n]) for n, (c, v) in head.items()]


def _gpkg_create(store: GeoPackageStore, name: str, created: str,
                 layers: Sequence[str] | None) -> SnapshotInfo:
    from layers import gpkg_catalog

    con = _gpkg_connect(store)
    try:
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise StoreBusy(f"store {store.path} busy (another writer holds it); retry — "
                                f"no snapshot was taken (waited {store.busy_timeout:g} s)"
                                ) from exc
            raise
        try:
            _gpkg_meta(con)
            if con.execute(f"SELECT 1 FROM {_META} WHERE name = ?", (name,)).fetchone():
                raise InputFileError(f"snapshot {name!r} already exists in {store.url}; delete "
                                     f"it first (riskmap snapshot --delete {name}) or choose "
                                     "another name")
            listed = [n for n, gt in gpkg_catalog.list_tables(con) if gt]
            wanted = listed if layers is None else list(layers)
            unknown = [n for n in wanted if n not in listed]
            if unknown:
                raise LayerNotFoundError(f"store {store.url} has no layer {', '.join(unknown)}; "
                                         f"it has {', '.join(listed) or 'none'}")
            version = store.version()
            for layer in wanted:
                t = gpkg_catalog._table(con, layer)
                info = con.execute(f"PRAGMA table_info({_q(t.name)})").fetchall()
                table = f"{_PREFIX}{name}__{layer}"
                cols = ", ".join(f"{_q(str(r[1]))} {r[2] or ''}".rstrip() + (
                    " PRIMARY KEY" if r[5] == 1 else "") for r in info)
                names = ", ".join(_q(str(r[1])) for r in info)
                con.execute(f"DROP TABLE IF EXISTS {_q(table)}")
                con.execute(f"CREATE TABLE {_q(table)} ({cols})")
                n = con.execute(f"INSERT INTO {_q(table)} ({names}) SELECT {names} FROM "
                                f"{_q(t.name)}").rowcount
                con.execute(f"INSERT INTO {_META} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (name, layer, table, t.geom, t.srs_id, n, created, version))
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise StoreError(f"taking snapshot {name!r} of {store.url} failed; nothing was "
                         f"changed: {exc}") from exc
    finally:
        con.close()
    return _gpkg_infos_ro(store, name)[0]


def _gpkg_infos_ro(store: GeoPackageStore, name: str | None = None) -> list[SnapshotInfo]:
    from layers import gpkg_catalog

    if not store.path.exists():
        return []
    with gpkg_catalog.snapshot(store.path) as con:
        return _gpkg_infos(con, name)


def _gpkg_delete(store: GeoPackageStore, name: str) -> None:
    con = _gpkg_connect(store)
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            rows = con.execute(f"SELECT table_name FROM {_META} WHERE name = ?",
                               (name,)).fetchall()
            for (table,) in rows:
                con.execute(f"DROP TABLE IF EXISTS {_q(table)}")
            con.execute(f"DELETE FROM {_META} WHERE name = ?", (name,))
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
    except sqlite3.OperationalError as exc:
        if _is_busy(exc):
            raise StoreBusy(f"store {store.path} busy (another writer holds it); retry — "
                            f"nothing was deleted (waited {store.busy_timeout:g} s)") from exc
        raise StoreError(f"deleting snapshot {name!r} of {store.url} failed: {exc}") from exc
    finally:
        con.close()


def _gpkg_read(store: GeoPackageStore, name: str, layer: str) -> gpd.GeoDataFrame:
    """A snapshot layer as the store reads its layers (same columns, dtypes), EPSG:4490."""
    from layers import gpkg_catalog, gpkg_read

    with gpkg_catalog.snapshot(store.path) as con:
        row = con.execute(f"SELECT table_name, geom_column, srs_id FROM {_META} WHERE "
                          "name = ? AND layer = ?", (name, layer)).fetchone()
        if row is None:
            raise LayerNotFoundError(f"snapshot {name!r} of {store.url} has no layer {layer!r}")
        table, geom, srs_id = str(row[0]), str(row[1]), int(row[2])
        info = con.execute(f"PRAGMA table_info({_q(table)})").fetchall()
        fid = next((str(r[1]) for r in info if r[5] == 1), "rowid")
        cols = [(str(r[1]), str(r[2]).upper()) for r in info if r[1] not in (fid, geom)]
        select = ", ".join([gpkg_read._WKB.format(g=_q(geom)), *(_q(c) for c, _ in cols)])
        rows = con.execute(f"SELECT {select} FROM {_q(table)} ORDER BY {_q(fid)}").fetchall()
        crs = gpkg_catalog._crs(con, srs_id)
    import pyarrow as pa

    data = np.empty((len(rows), len(cols) + 1), dtype=object)
    if rows:
        data[:] = rows
    frame = pa.table({c: gpkg_read._arrow(data[:, k + 1], d)
                      for k, (c, d) in enumerate(cols)}).to_pandas()
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(shapely.from_wkb(data[:, 0]),
                                                         index=frame.index), crs=crs)
    return gdf if gdf.crs is not None else gdf.set_crs(STORAGE_CRS)


# --- PostGIS ---------------------------------------------------------------------------------
def _pg_schema(store: Any, name: str) -> str:
    return f"{store.schema}{_PG_SEP}{name}"


def _pg_infos(store: Any, name: str | None = None) -> list[SnapshotInfo]:
    out = []
    with store.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT schema_name FROM information_schema.schemata WHERE "
                    "starts_with(schema_name, %s) ORDER BY schema_name",
                    (store.schema + _PG_SEP,))
        schemas = [str(r[0]) for r in cur.fetchall()]
        for s in schemas:
            if name is not None and s != _pg_schema(store, name):
                continue
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{s}".riskmap_snapshot',))
            if not cur.fetchone()[0]:
                continue
            from psycopg import sql

            cur.execute(sql.SQL("SELECT name, created, store_version, layers FROM "
                                "{}.riskmap_snapshot").format(sql.Identifier(s)))
            n, created, version, layers = cur.fetchone()
            out.append(SnapshotInfo(str(n), str(created), str(version),
                                    dict(layers if isinstance(layers, dict)
                                         else json.loads(layers))))
    return sorted(out, key=lambda i: (i.created, i.name))


def _pg_create(store: Any, name: str, created: str,
               layers: Sequence[str] | None) -> SnapshotInfo:
    from psycopg import sql

    snap = _pg_schema(store, name)
    if _pg_infos(store, name):
        raise InputFileError(f"snapshot {name!r} already exists in {store.url}; delete it "
                             f"first (riskmap snapshot --delete {name}) or choose another name")
    listed = [i.name for i in store.layers()]
    wanted = listed if layers is None else list(layers)
    unknown = [n for n in wanted if n not in listed]
    if unknown:
        raise LayerNotFoundError(f"store {store.url} has no layer {', '.join(unknown)}; it has "
                                 f"{', '.join(listed) or 'none'}")
    src, dst = sql.Identifier(store.schema), sql.Identifier(snap)
    counts: dict[str, int] = {}
    with store._writing(f"snapshot {name}") as cur:
        store._lock_layers(cur, wanted)  # no write swaps a layer while we copy
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(dst))
        for layer in wanted:
            t = sql.Identifier(layer)
            cur.execute(sql.SQL("CREATE TABLE {}.{} AS TABLE {}.{}").format(dst, t, src, t))
            counts[layer] = int(cur.rowcount)
            cur.execute(sql.SQL("CREATE INDEX ON {}.{} USING gist (geometry)").format(dst, t))
        cur.execute(sql.SQL("CREATE TABLE {}.riskmap_layers AS SELECT * FROM "
                            "{}.riskmap_layers WHERE name = ANY(%s)").format(dst, src), (wanted,))
        cur.execute(sql.SQL("CREATE TABLE {}.riskmap_meta AS TABLE {}.riskmap_meta").format(
            dst, src))
        cur.execute(sql.SQL("SELECT value FROM {}.riskmap_meta WHERE key = 'data_version'")
                    .format(src))
        row = cur.fetchone()
        version = f"pg-{store.schema}-{row[0] if row else 0}"
        cur.execute(sql.SQL("CREATE TABLE {}.riskmap_snapshot (name text, created text, "
                            "store_version text, layers jsonb)").format(dst))
        cur.execute(sql.SQL("INSERT INTO {}.riskmap_snapshot VALUES (%s, %s, %s, %s)").format(
            dst), (name, created, version, json.dumps(counts)))
    return SnapshotInfo(name, created, version, counts)


def _pg_delete(store: Any, name: str) -> None:
    from psycopg import sql

    with store._writing(f"snapshot {name}") as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(_pg_schema(store, name))))


def _is_pg(store: Store) -> bool:
    return type(store).__name__ == "PostGISStore"


# --- public ----------------------------------------------------------------------------------
def create_snapshot(store: Store, name: str, *, created: str,
                    layers: Sequence[str] | None = None) -> SnapshotInfo:
    """Keep the current state of ``layers`` (default: every layer) as snapshot ``name``.

    ``created`` is the district time of the snapshot (ISO text; the caller reads the
    district's clock). Raises InputFileError when the name is taken or not allowed,
    LayerNotFoundError for a layer the store lacks, StoreBusy when a writer holds the store
    past the busy timeout (nothing is changed).
    """
    check_name(name)
    if isinstance(store, GeoPackageStore):
        return _gpkg_create(store, name, created, layers)
    if _is_pg(store):
        return _pg_create(store, name, created, layers)
    raise StoreError(f"store {store.url} cannot keep snapshots (GeoPackage or PostGIS only)")


def list_snapshots(store: Store) -> list[SnapshotInfo]:
    """The store's snapshots, oldest first."""
    if isinstance(store, GeoPackageStore):
        return _gpkg_infos_ro(store)
    if _is_pg(store):
        return _pg_infos(store)
    return []


def get_snapshot(store: Store, name: str) -> SnapshotInfo:
    """Snapshot ``name``; LayerNotFoundError naming the snapshots there are."""
    check_name(name)
    hit = (_gpkg_infos_ro(store, name) if isinstance(store, GeoPackageStore)
           else _pg_infos(store, name) if _is_pg(store) else [])
    if not hit:
        have = [i.name for i in list_snapshots(store)]
        raise LayerNotFoundError(f"store {store.url} has no snapshot {name!r}; it has "
                                 f"{', '.join(have) or 'none'} (take one with `riskmap snapshot "
                                 f"--store {store.url} {name}`)")
    return hit[0]


def delete_snapshot(store: Store, name: str) -> SnapshotInfo:
    """Delete snapshot ``name`` (every table of it, in one transaction); returns what it was."""
    info = get_snapshot(store, name)
    if isinstance(store, GeoPackageStore):
        _gpkg_delete(store, name)
    else:
        _pg_delete(store, name)
    return info


class SnapshotStore:
    """A read-only store of a snapshot: a GeoPackage snapshot's layers are read once and kept
    in memory; a PostGIS snapshot is read through a store on its schema (``inner``).

    ``url`` is ``<store>#snapshot=<name>`` and ``version()`` ``snapshot:<name>:<version>``:
    the analysis service caches its results apart from the live store's.
    """

    def __init__(self, store: Store, info: SnapshotInfo, *, inner: Any = None) -> None:
        self.source = store
        self.info = info
        self.inner = inner
        self.url = f"{store.url}#snapshot={info.name}"
        self._frames: dict[str, gpd.GeoDataFrame] = {}

    def __repr__(self) -> str:
        return f"SnapshotStore({self.url!r})"

    def _frame(self, layer: str) -> gpd.GeoDataFrame:
        if layer not in self.info.layers:
            from layers.errors import missing_layer

            raise missing_layer(self.url, layer)
        if layer not in self._frames:
            self._frames[layer] = (
                self.inner.read(layer) if self.inner is not None
                else _gpkg_read(self.source, self.info.name, layer))  # type: ignore[arg-type]
        return self._frames[layer]

    def has_layer(self, layer: str) -> bool:
        return layer in self.info.layers

    def layers(self) -> list[LayerInfo]:
        if self.inner is not None:
            return list(self.inner.layers())
        out = []
        for name in self.info.layers:
            g = self._frame(name)
            b = tuple(float(v) for v in g.total_bounds) if len(g) else None
            gt = str(g.geom_type.mode().iat[0]) if len(g) else "Unknown"
            out.append(LayerInfo(name, len(g), f"EPSG:{STORAGE_CRS.to_epsg()}", gt,
                                 b))  # type: ignore[arg-type]
        return out

    def read(self, layer: str, *, crs: CRS | str | int | None = None, bbox: Bbox | None = None,
             bbox_crs: CRS | str | int | None = None,
             columns: list[str] | None = None) -> gpd.GeoDataFrame:
        if self.inner is not None and layer not in self._frames and bbox is not None:
            if layer not in self.info.layers:
                self._frame(layer)  # raises naming the layer
            return self.inner.read(layer, crs=crs, bbox=bbox, bbox_crs=bbox_crs,  # type: ignore[no-any-return]
                                   columns=columns)
        g = self._frame(layer)
        if bbox is not None:
            box = shapely.box(*_bbox_to_storage(bbox, bbox_crs))
            g = g[shapely.intersects(g.geometry.to_numpy(), box)].reset_index(drop=True)
        if columns is not None:
            g = g[[c for c in g.columns if c in set(columns) or c == g.geometry.name]]
        g = g.copy()
        return g.to_crs(crs) if crs is not None else g

    def read_boxes(self, layer: str, boxes: Any, *, crs: CRS | str | int | None = None,
                   columns: list[str] | None = None) -> gpd.GeoDataFrame:
        """Features whose geometry meets one of ``boxes`` ((n, 4) in EPSG:4490), in order."""
        g = self.read(layer, columns=columns)
        b = np.asarray(boxes, dtype=float).reshape(-1, 4)
        hit = shapely.STRtree(g.geometry.to_numpy()).query(
            shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3]), predicate="intersects")[1]
        out = g.iloc[np.unique(hit)].reset_index(drop=True)
        return out.to_crs(crs) if crs is not None else out

    def write(self, layers: Mapping[str, gpd.GeoDataFrame]) -> None:
        raise StoreError(f"{self.url} is a snapshot: read-only")

    def append(self, layer: str, gdf: gpd.GeoDataFrame) -> int:
        raise StoreError(f"{self.url} is a snapshot: read-only")

    def version(self) -> str:
        return f"snapshot:{self.info.name}:{self.info.store_version}"


def snapshot_store(store: Store, name: str) -> Store:
    """A read-only :class:`~layers.store.Store` of snapshot ``name`` of ``store``."""
    info = get_snapshot(store, name)
    if isinstance(store, GeoPackageStore):
        return SnapshotStore(store, info)
    cls = type(store)
    inner = cls(store._url, schema=_pg_schema(store, name),  # type: ignore[attr-defined,call-arg]
                busy_timeout=store.busy_timeout)  # type: ignore[attr-defined]
    return SnapshotStore(store, info, inner=inner)


# --- changes ---------------------------------------------------------------------------------
def _canon(s: pd.Series) -> np.ndarray:
    """Values as comparable text (None for null): dates as ISO, numbers rounded to 1e-9."""
    null = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s):
        txt = s.astype(object).map({True: "True", False: "False"})
    elif pd.api.types.is_numeric_dtype(s):
        txt = pd.Series(np.round(s.to_numpy(dtype=float), 9), index=s.index).astype(str)
    elif pd.api.types.is_datetime64_any_dtype(s):
        txt = s.dt.strftime("%Y-%m-%dT%H:%M:%S").str.removesuffix("T00:00:00")
    else:
        txt = s.astype(object).astype(str)
    out = txt.to_numpy(dtype=object)
    out[null] = None
    return out


def feature_changes(
    before: gpd.GeoDataFrame, after: gpd.GeoDataFrame, *, layer: str,
    tolerance_m: float = 0.01, ignore: Sequence[str] = (),
) -> gpd.GeoDataFrame:
    """Features of ``layer`` added, removed or changed between two states, by ``id``.

    Both frames projected, metres, in one CRS. A feature is *changed* when its geometry moved
    more than ``tolerance_m`` (Hausdorff distance; ``moved_m``) or an attribute differs
    (``fields``: the names, comma-separated, geometry first). Vectorised: one outer join on
    id, one comparison per column.

    Returns ``layer``, ``feature_id``, ``change`` (added / removed / changed), ``fields``,
    ``moved_m``; geometry = the feature now (the old one when removed), sorted by change and id.
    """
    require_projected(before, f"layer {layer!r} (snapshot)")
    require_projected(after, f"layer {layer!r}")
    if CRS(before.crs) != CRS(after.crs):
        raise StoreError(f"layer {layer!r}: the two states are in different CRS; project both "
                         "to one metric CRS")
    for what, g in (("snapshot", before), ("store", after)):
        if "id" not in g:
            raise StoreError(f"layer {layer!r} ({what}) has no id column; changes are found "
                             "by id")
    gb, ga = before.geometry.name, after.geometry.name
    skip = {gb, ga, "id", *ignore}
    cols = sorted((set(before.columns) | set(after.columns)) - skip)
    idb = _ids(before, layer, "snapshot")
    ida = _ids(after, layer, "store")
    pos = pd.Index(ida).get_indexer(idb)  # after-row of each before-row, -1 = removed
    bi = np.flatnonzero(pos >= 0)
    ai = pos[bi]
    added = np.ones(len(ida), dtype=bool)
    added[ai] = False
    rem = np.flatnonzero(pos < 0)
    g_b = np.asarray(before[gb].values, dtype=object)
    g_a = np.asarray(after[ga].values, dtype=object)
    a, b = g_b[bi], g_a[ai]
    same = shapely.equals_exact(a, b, tolerance=tolerance_m)
    moved = np.zeros(len(bi))
    moved[~same] = shapely.hausdorff_distance(a[~same], b[~same])
    diff = np.zeros((len(bi), len(cols) + 1), dtype=bool)
    diff[:, 0] = moved > tolerance_m
    for k, c in enumerate(cols, start=1):
        diff[:, k] = _differs(before[c].iloc[bi] if c in before else None,
                              after[c].iloc[ai] if c in after else None, len(bi))
    hit = np.flatnonzero(diff.any(axis=1))
    names = np.array(["geometry", *cols], dtype=object)
    fields = [",".join(names[row]) for row in diff[hit]]
    out = pd.DataFrame({
        "layer": layer,
        "feature_id": np.r_[ida[added], idb[rem], idb[bi[hit]]].astype(object),
        "change": ["added"] * int(added.sum()) + ["removed"] * len(rem) + ["changed"] * len(hit),
        "fields": [""] * (int(added.sum()) + len(rem)) + fields,
        "moved_m": np.round(np.r_[np.zeros(int(added.sum()) + len(rem)), moved[hit]], 3)})
    geom = np.r_[g_a[added], g_b[rem], g_a[ai[hit]]]
    res = gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(geom, crs=after.crs), crs=after.crs)
    return res.sort_values(["change", "feature_id"], kind="stable").reset_index(drop=True)


def _ids(g: gpd.GeoDataFrame, layer: str, what: str) -> np.ndarray:
    ids = g["id"].astype(str).to_numpy(dtype=object)
    dup = pd.Index(ids).duplicated()
    if dup.any():
        raise StoreError(f"layer {layer!r} ({what}): id {ids[dup][0]!r} appears more than once; "
                         "changes are found by id")
    return ids


def _differs(x: pd.Series | None, y: pd.Series | None, n: int) -> np.ndarray:
    """Row-wise: the values differ (null vs value differs; null vs null does not). Same
    kinds compare natively; others as text (:func:`_canon`)."""
    if x is None and y is None:
        return np.zeros(n, dtype=bool)
    if x is None or y is None:
        present = y if x is None else x
        assert present is not None
        return ~present.isna().to_numpy()
    xn, yn = x.isna().to_numpy(), y.isna().to_numpy()
    num = pd.api.types.is_numeric_dtype
    if num(x) and num(y) and not pd.api.types.is_bool_dtype(x) \
            and not pd.api.types.is_bool_dtype(y):
        xv = x.to_numpy(dtype=float, na_value=np.nan)
        yv = y.to_numpy(dtype=float, na_value=np.nan)
        eq = np.abs(xv - yv) <= 1e-9 * np.maximum(1.0, np.abs(xv))
    elif x.dtype == y.dtype and not pd.api.types.is_object_dtype(x):
        eq = (x.to_numpy(dtype=object) == y.to_numpy(dtype=object))
    else:
        eq = _canon(x) == _canon(y)
    eq = np.asarray(eq, dtype=bool)
    return (xn != yn) | (~xn & ~yn & ~eq)
