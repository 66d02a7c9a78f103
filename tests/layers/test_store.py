"""GeoPackage store: read in a CRS, bbox through the index, writes and appends as SQLite
transactions (WAL, busy timeout, version), a valid GeoPackage for GDAL afterwards, listing."""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from shapely.geometry import MultiPolygon, Point, box

import layers.gpkg_write as gpkg_write
from layers import gpkg_query
from layers.errors import LayerNotFoundError, LayerValidationError, Problem, StoreBusy, StoreError
from layers.store import GeoPackageStore, LayerInfo, Store, open_store


def _points() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": ["H-1", "H-2", "H-3"], "status": ["ok", "faulty", "ok"]},
        geometry=[Point(117.25, 34.80), Point(117.26, 34.81), Point(117.30, 34.85)], crs=4490,
    )


@pytest.fixture
def store(tmp_path: Path) -> GeoPackageStore:
    s = GeoPackageStore(tmp_path / "s.gpkg")
    s.write({"hydrants": _points()})
    return s


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_protocol_and_open_store(tmp_path: Path) -> None:
    s = open_store(tmp_path / "x.gpkg")
    assert isinstance(s, GeoPackageStore) and isinstance(s, Store)
    assert open_store(f"file:{tmp_path / 'x.gpkg'}").url == str(tmp_path / "x.gpkg")
    with pytest.raises(StoreError, match=r"expected a GeoPackage path ending in .gpkg"):
        open_store(tmp_path / "x.sqlite")


def test_empty_store(tmp_path: Path) -> None:
    s = GeoPackageStore(tmp_path / "none.gpkg")
    assert s.layers() == [] and not s.has_layer("hydrants") and s.version() == "empty"
    with pytest.raises(LayerNotFoundError, match=r"has no layer 'hydrants'"):
        s.read("hydrants")


def test_round_trip_and_listing(store: GeoPackageStore) -> None:
    gdf = store.read("hydrants")
    assert gdf.crs.to_epsg() == 4490
    assert gdf["id"].tolist() == ["H-1", "H-2", "H-3"]
    assert store.layers() == [LayerInfo("hydrants", 3, "EPSG:4490", "Point",
                                        (117.25, 34.8, 117.3, 34.85))]


def test_read_in_other_crs_and_bbox(store: GeoPackageStore) -> None:
    gk = store.read("hydrants", crs=4548)
    assert gk.crs.to_epsg() == 4548
    assert gk.geometry.x.between(400_000, 600_000).all()
    near = store.read("hydrants", bbox=(117.24, 34.79, 117.27, 34.82))
    assert near["id"].tolist() == ["H-1", "H-2"]
    # the same box given in the GK zone
    b = gpd.GeoSeries([box(117.24, 34.79, 117.27, 34.82)], crs=4490).to_crs(4548).total_bounds
    near_gk = store.read("hydrants", bbox=tuple(b), bbox_crs=4548)
    assert near_gk["id"].tolist() == ["H-1", "H-2"]
    assert store.read("hydrants", columns=["id"]).columns.tolist() == ["id", "geometry"]


def test_write_projected_is_stored_in_4490(store: GeoPackageStore) -> None:
    store.write({"cameras": _points().to_crs(3857).assign(range_m=100.0)})
    cams = store.read("cameras")
    assert cams.crs.to_epsg() == 4490
    assert cams.geometry.iloc[0].distance(Point(117.25, 34.80)) < 1e-9


def test_write_replaces_layer_and_changes_version(store: GeoPackageStore) -> None:
    v1 = store.version()
    store.write({"hydrants": _points().iloc[:1]})
    assert store.read("hydrants")["id"].tolist() == ["H-1"]
    assert store.version() != v1


def test_write_without_crs_is_refused(store: GeoPackageStore) -> None:
    before = sha(store.path)
    with pytest.raises(StoreError, match=r"layer 'hydrants' has no CRS; refusing to store it"):
        store.write({"hydrants": _points().set_crs(None, allow_override=True)})
    assert sha(store.path) == before


def test_failed_write_leaves_file_unchanged(store: GeoPackageStore,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    before = sha(store.path)
    real = gpkg_write.pyogrio.write_dataframe
    calls = []

    def flaky(gdf: gpd.GeoDataFrame, path: str, **kw: object) -> None:
        calls.append(kw["layer"])
        if len(calls) == 2:
            raise OSError("disk full")
        real(gdf, path, **kw)

    monkeypatch.setattr(gpkg_write.pyogrio, "write_dataframe", flaky)
    with pytest.raises(StoreError, match=r"the store is unchanged: disk full"):
        store.write({"hydrants": _points().iloc[:1], "cameras": _points()})
    assert calls == ["hydrants", "cameras"]
    assert sha(store.path) == before
    assert [p.name for p in store.path.parent.iterdir() if p.name.startswith(".riskmap-")] == []


# --- transactions in place -----------------------------------------------------------------------
def _boxes(ids: list[str], x0: float = 117.25, y0: float = 34.80, **cols: object
           ) -> gpd.GeoDataFrame:
    geoms = [box(x0 + 0.001 * k, y0, x0 + 0.001 * k + 0.0005, y0 + 0.0005)
             for k in range(len(ids))]
    return gpd.GeoDataFrame({"id": ids, **cols}, geometry=geoms, crs=4490)


def _sql(path: Path, query: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(query, args).fetchall()
    finally:
        con.close()


def _leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir()
                  if p.name.startswith(".riskmap-") or p.name.endswith(".lock"))


def test_write_is_in_place_in_wal_mode(store: GeoPackageStore) -> None:
    inode = store.path.stat().st_ino
    store.write({"hydrants": _points().iloc[:2]})
    store.append("hydrants", _points().iloc[2:])
    assert store.path.stat().st_ino == inode  # not copied and renamed
    assert _sql(store.path, "PRAGMA journal_mode") == [("wal",)]
    assert _leftovers(store.path) == []


def test_append_adds_features_in_one_step(store: GeoPackageStore) -> None:
    more = gpd.GeoDataFrame({"id": ["H-4", "H-5"], "status": ["ok", "ok"]},
                            geometry=[Point(117.40, 34.90), Point(117.20, 34.70)], crs=4490)
    assert store.append("hydrants", more) == 5
    gdf = store.read("hydrants")
    assert gdf["id"].tolist() == ["H-1", "H-2", "H-3", "H-4", "H-5"]
    assert store.layers() == [LayerInfo("hydrants", 5, "EPSG:4490", "Point",
                                        (117.2, 34.7, 117.4, 34.9))]
    assert store.read("hydrants", bbox=(117.35, 34.85, 117.45, 34.95))["id"].tolist() == ["H-4"]
    assert _sql(store.path, "SELECT fid FROM hydrants ORDER BY fid") == [(i,) for i in range(1, 6)]


def test_append_in_another_crs_is_stored_in_4490(store: GeoPackageStore) -> None:
    more = gpd.GeoDataFrame({"id": ["H-9"]}, geometry=[Point(117.40, 34.90)], crs=4490)
    store.append("hydrants", more.to_crs(4548))
    got = store.read("hydrants", bbox=(117.39, 34.89, 117.41, 34.91))
    assert got["id"].tolist() == ["H-9"]
    assert got.geometry.iloc[0].distance(Point(117.40, 34.90)) < 1e-9


def test_append_with_known_ids_changes_nothing(store: GeoPackageStore) -> None:
    version = store.version()
    clash = gpd.GeoDataFrame({"id": ["H-7", "H-3", "H-1"]},
                             geometry=[Point(117.3, 34.9)] * 3, crs=4490)
    with pytest.raises(LayerValidationError) as info:
        store.append("hydrants", clash)
    hint = "use --replace to replace the layer"
    assert info.value.problems == [
        Problem("hydrants", "H-3", "id", "H-3", "an id not already in layer 'hydrants'", hint),
        Problem("hydrants", "H-1", "id", "H-1", "an id not already in layer 'hydrants'", hint),
    ]
    assert store.read("hydrants")["id"].tolist() == ["H-1", "H-2", "H-3"]
    assert store.version() == version
    assert _leftovers(store.path) == []


def test_append_creates_a_missing_layer(store: GeoPackageStore) -> None:
    assert store.append("buildings", _boxes(["B-1", "B-2"], floors=[1, 2])) == 2
    assert store.read("buildings")["id"].tolist() == ["B-1", "B-2"]
    assert store.read("hydrants")["id"].tolist() == ["H-1", "H-2", "H-3"]


def test_append_widens_geometry_and_field_types(store: GeoPackageStore) -> None:
    store.write({"buildings": _boxes(["B-1", "B-2"], floors=[1, 2])})
    multi = _boxes(["B-3"], x0=117.30, floors=[2.5], note=["new field"])
    multi = multi.set_geometry([MultiPolygon([multi.geometry.iloc[0]])], crs=4490)
    assert store.append("buildings", multi) == 3
    assert _sql(store.path, "SELECT geometry_type_name FROM gpkg_geometry_columns WHERE "
                "table_name = 'buildings'") == [("MULTIPOLYGON",)]
    ddl = str(_sql(store.path, "SELECT sql FROM sqlite_master WHERE name = 'buildings'")[0][0])
    assert re.findall(r'"(geom|floors|note)" (\w+)', ddl) == [
        ("geom", "MULTIPOLYGON"), ("floors", "REAL"), ("note", "TEXT")]
    assert pyogrio.read_info(store.path, layer="buildings")["geometry_type"] == "MultiPolygon"
    got = store.read("buildings")
    assert got["floors"].tolist() == [1.0, 2.0, 2.5]
    assert got["note"].tolist()[2] == "new field" and got["note"].isna().tolist()[:2] == [True] * 2
    assert got.geometry.geom_type.tolist() == ["Polygon", "Polygon", "MultiPolygon"]
    assert got.geometry.iloc[2].equals(multi.geometry.iloc[0])
    # a point among polygons: the layer says GEOMETRY; a text among numbers: TEXT
    store.append("buildings", gpd.GeoDataFrame({"id": ["B-4"], "floors": ["two"]},
                                               geometry=[Point(117.31, 34.81)], crs=4490))
    assert _sql(store.path, "SELECT geometry_type_name FROM gpkg_geometry_columns WHERE "
                "table_name = 'buildings'") == [("GEOMETRY",)]
    got = store.read("buildings")
    assert got["floors"].tolist() == ["1", "2", "2.5", "two"]
    assert got.geometry.geom_type.tolist() == ["Polygon", "Polygon", "MultiPolygon", "Point"]
    assert _sql(store.path, "PRAGMA integrity_check") == [("ok",)]


def test_version_moves_with_layer_writes_only(store: GeoPackageStore) -> None:
    v1 = store.version()
    assert re.fullmatch(r"[0-9a-f]{12}:1", v1)
    store.append("hydrants", _points().assign(id=["H-4", "H-5", "H-6"]))
    v2 = store.version()
    assert v2 == v1[:-1] + "2"
    # a registry edit (its own tables, same file) leaves the data version alone
    con = sqlite3.connect(store.path, isolation_level=None)
    con.execute("CREATE TABLE registry_probe (k TEXT)")
    con.execute("INSERT INTO registry_probe VALUES ('edit')")
    con.close()
    assert store.version() == v2
    store.write({"hydrants": _points()})
    assert store.version() == v1[:-1] + "3"
    changed = _sql(store.path, "SELECT last_change FROM gpkg_contents WHERE "
                   "table_name = 'hydrants'")[0][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(changed))


def test_busy_store_raises_and_changes_nothing(store: GeoPackageStore,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKMAP_BUSY_TIMEOUT", "0.2")
    assert GeoPackageStore(store.path).busy_timeout == 0.2
    assert GeoPackageStore(store.path, busy_timeout=1.5).busy_timeout == 1.5
    version = store.version()
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        busy = GeoPackageStore(store.path)
        msg = (rf"store {re.escape(str(store.path))} busy \(another writer holds it\); retry "
               r"— nothing was changed \(waited 0\.2 s\)")
        with pytest.raises(StoreBusy, match=msg):
            busy.write({"hydrants": _points().iloc[:1]})
        with pytest.raises(StoreBusy, match=msg):
            busy.append("hydrants", _points().assign(id=["H-4", "H-5", "H-6"]))
        # readers are not blocked by the writer holding the store
        assert store.read("hydrants")["id"].tolist() == ["H-1", "H-2", "H-3"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.version() == version
    assert store.read("hydrants")["id"].tolist() == ["H-1", "H-2", "H-3"]
    assert _leftovers(store.path) == []


def test_bad_busy_timeout_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKMAP_BUSY_TIMEOUT", "soon")
    with pytest.raises(StoreError, match=r"RISKMAP_BUSY_TIMEOUT is 'soon'; expected a number"):
        GeoPackageStore(tmp_path / "s.gpkg")


def test_readers_see_the_last_commit_while_a_write_is_open(store: GeoPackageStore) -> None:
    writer = sqlite3.connect(store.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM hydrants")  # uncommitted
    try:
        assert len(store.read("hydrants")) == 3
        assert len(store.read("hydrants", bbox=(117.24, 34.79, 117.27, 34.82))) == 2
        with gpkg_query.reader(store.path) as con:  # mode=ro connection
            meta = gpkg_query.describe(con, "hydrants")
            assert gpkg_query.count(con, meta) == 3
        assert pyogrio.read_info(store.path, layer="hydrants")["features"] == 3
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_geopackage_stays_valid_for_gdal(tmp_path: Path) -> None:
    """After a replace and appends: counts, extent, R-tree rows and integrity all right."""
    s = GeoPackageStore(tmp_path / "v.gpkg")
    s.write({"buildings": _boxes([f"A-{k}" for k in range(30)])})
    s.write({"buildings": _boxes([f"B-{k}" for k in range(12)], y0=34.70)})  # replace
    s.append("buildings", _boxes([f"C-{k}" for k in range(5)], x0=117.40, y0=34.90))
    s.append("buildings", _boxes([f"D-{k}" for k in range(3)], x0=117.10, y0=34.60))
    expected = s.read("buildings").geometry
    minx, miny, maxx, maxy = (round(float(v), 6) for v in expected.total_bounds)
    assert (minx, miny, maxx, maxy) == (117.1, 34.6, 117.4045, 34.9005)

    info = pyogrio.read_info(s.path, layer="buildings")
    assert info["features"] == 20
    assert [round(float(v), 6) for v in info["total_bounds"]] == [minx, miny, maxx, maxy]
    assert _sql(s.path, "SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE "
                "table_name = 'buildings'") == [(minx, miny, maxx, maxy)]
    assert _sql(s.path, "SELECT feature_count FROM gpkg_ogr_contents WHERE "
                "table_name = 'buildings'") == [(20,)]
    assert _sql(s.path, "PRAGMA integrity_check") == [("ok",)]
    assert _sql(s.path, "SELECT rtreecheck('rtree_buildings_geom')") == [("ok",)]
    # the R-tree holds exactly each feature's bounds under its fid
    fids = pyogrio.read_dataframe(s.path, layer="buildings", fid_as_index=True)
    rtree = _sql(s.path, "SELECT id, minx, miny, maxx, maxy FROM rtree_buildings_geom "
                 "ORDER BY id")
    want = [(int(f), *(float(v) for v in g.bounds)) for f, g in
            zip(fids.index, fids.geometry, strict=True)]
    assert [r[0] for r in rtree] == [w[0] for w in want]
    assert np.allclose([r[1:] for r in rtree], [w[1:] for w in want], atol=1e-6)
    # bbox reads go through it and return exactly the features inside
    assert s.read("buildings", bbox=(117.39, 34.89, 117.41, 34.91))["id"].tolist() == [
        "C-0", "C-1", "C-2", "C-3", "C-4"]
    assert s.read("buildings", bbox=(117.09, 34.59, 117.1006, 34.61))["id"].tolist() == ["D-0"]
    if shutil.which("ogrinfo"):
        out = subprocess.run(["ogrinfo", "-so", str(s.path), "buildings"], check=True,
                             capture_output=True, text=True).stdout
        assert "Feature Count: 20" in out
        assert (f"Extent: ({minx:.6f}, {miny:.6f}) - ({maxx:.6f}, {maxy:.6f})") in out


def test_no_posix_only_module_at_import() -> None:
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "import layers.store, layers.gpkg_write, layers.importing\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "ok", out.stderr


def test_store_written_by_gdal_is_taken_over(tmp_path: Path) -> None:
    """A GeoPackage made by other tools (rollback journal, no version table) is converted to
    WAL and versioned by its first riskmap write; its layers stay readable."""
    path = tmp_path / "gdal.gpkg"
    pyogrio.write_dataframe(_points(), path, layer="hydrants", driver="GPKG")
    pyogrio.write_dataframe(_boxes([f"B-{k}" for k in range(400)]), path, layer="buildings",
                            driver="GPKG")
    s = GeoPackageStore(path)
    assert s.version().startswith("file:") and s.version() == s.version()
    assert _sql(path, "PRAGMA journal_mode") == [("delete",)]
    assert s.append("buildings", _boxes(["B-400"], y0=34.90)) == 401
    assert re.fullmatch(r"[0-9a-f]{12}:1", s.version())
    assert _sql(path, "PRAGMA journal_mode") == [("wal",)]
    assert _sql(path, "SELECT rtreecheck('rtree_buildings_geom')") == [("ok",)]
    assert s.read("buildings", bbox=(117.2, 34.89, 117.3, 34.91))["id"].tolist() == ["B-400"]
    assert s.read("hydrants")["id"].tolist() == ["H-1", "H-2", "H-3"]


def test_failed_first_write_leaves_an_empty_store(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    s = GeoPackageStore(tmp_path / "new.gpkg")
    real = gpkg_write.replace_layers

    def half(con: sqlite3.Connection, names: list[str]) -> None:
        real(con, names)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(gpkg_write, "replace_layers", half)
    with pytest.raises(StoreError, match=r"writing hydrants to .*new\.gpkg failed; the store "
                                         r"is unchanged: disk I/O error"):
        s.write({"hydrants": _points()})
    assert s.layers() == [] and not s.has_layer("hydrants")
    assert _sql(s.path, "SELECT count(*) FROM gpkg_spatial_ref_sys WHERE srs_id IN "
                "(-1, 0, 4326)") == [(3,)]
    assert _leftovers(s.path) == []
    monkeypatch.undo()
    s.write({"hydrants": _points()})
    assert s.read("hydrants")["id"].tolist() == ["H-1", "H-2", "H-3"]


def test_append_to_a_layer_stored_in_another_crs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wgs.gpkg"
    pyogrio.write_dataframe(_points().set_crs(4326, allow_override=True), path,
                            layer="hydrants", driver="GPKG")
    s = GeoPackageStore(path)
    with pytest.raises(StoreError, match=r"layer 'hydrants' is stored in EPSG:4326 but the new "
                                         r"features are in EPSG:4490; replace the layer"):
        s.append("hydrants", _points().assign(id=["H-4", "H-5", "H-6"]))
    assert s.read("hydrants")["id"].tolist() == ["H-1", "H-2", "H-3"]


# --- reads with sqlite3 (no second SQLite in the process) ---------------------------------------
def _typed() -> gpd.GeoDataFrame:
    import datetime as dt

    n = 300
    k = np.arange(n)
    frame = _boxes([f"T-{i}" for i in k], name=[None if i % 7 == 0 else f"名{i}" for i in k],
                   floors=pd_array([None if i % 5 == 0 else int(i % 9) for i in k], "Int64"),
                   height_m=k * 0.5, ok=[bool(i % 2) for i in k],
                   due=[dt.date(2025, 1, 1 + i % 28) if i % 3 else None for i in k])
    geoms = [MultiPolygon([g]) if i % 4 == 0 else g for i, g in enumerate(frame.geometry)]
    return frame.set_geometry(geoms, crs=4490)


def pd_array(values: list[object], dtype: str) -> object:
    import pandas as pd

    return pd.array(values, dtype=dtype)


def test_reads_equal_what_gdal_reads(tmp_path: Path) -> None:
    from geopandas.testing import assert_geodataframe_equal

    s = GeoPackageStore(tmp_path / "t.gpkg")
    s.write({"buildings": _typed(), "hydrants": _points()})
    s.append("hydrants", _points().assign(id=["H-4", "H-5", "H-6"]))
    box_ = (117.30, 34.799, 117.40, 34.801)
    ours = [s.read("buildings"), s.read("buildings", columns=["ok", "name"]),
            s.read("buildings", bbox=box_), s.read_fids("buildings", [3, 1, 250]),
            s.read("hydrants")]
    infos = s.layers()
    gdal = [pyogrio.read_dataframe(s.path, layer="buildings", use_arrow=True),
            pyogrio.read_dataframe(s.path, layer="buildings", use_arrow=True,
                                   columns=["ok", "name"]),
            pyogrio.read_dataframe(s.path, layer="buildings", use_arrow=True, bbox=box_),
            pyogrio.read_dataframe(s.path, layer="buildings", use_arrow=True, fids=[1, 3, 250]),
            pyogrio.read_dataframe(s.path, layer="hydrants", use_arrow=True)]
    gdal[2] = gdal[2].sort_values("id", key=lambda c: c.str[2:].astype(int)
                                  ).reset_index(drop=True)  # GDAL: R-tree order; ours: fid
    assert len(ours[2]) == 101 and len(ours[3]) == 3  # boxes T-50 … T-150 touch or overlap
    for a, b in zip(ours, gdal, strict=True):
        assert_geodataframe_equal(a, b, check_dtype=True, check_crs=True)
    for info in infos:
        gi = pyogrio.read_info(s.path, layer=info.name, force_feature_count=True,
                               force_total_bounds=True)
        assert (info.count, info.crs, info.geometry_type, info.bbox) == (
            gi["features"], gi["crs"], gi["geometry_type"],
            tuple(float(v) for v in gi["total_bounds"]))


def test_store_reads_keep_the_wal_of_open_connections(store: GeoPackageStore) -> None:
    """GDAL, closing a read-only dataset, reopens it read-write and — its own SQLite copy not
    seeing this process's other locks — deletes -wal and -shm under open connections. The
    store's reads use the process's one SQLite instead."""
    holder = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        assert holder.execute("SELECT count(*) FROM hydrants").fetchone() == (3,)
        wal, shm = Path(f"{store.path}-wal"), Path(f"{store.path}-shm")
        assert wal.exists() and shm.exists()
        store.read("hydrants")
        store.read("hydrants", bbox=(117.24, 34.79, 117.27, 34.82))
        store.read_fids("hydrants", [1])
        assert store.has_layer("hydrants") and store.layers()[0].count == 3
        assert wal.exists() and shm.exists()
        store.append("hydrants", _points().assign(id=["H-4", "H-5", "H-6"]))
        assert holder.execute("SELECT count(*) FROM hydrants").fetchone() == (6,)
    finally:
        holder.close()
