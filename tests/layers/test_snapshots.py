"""layers.snapshots: named copies of the layers inside the store (GeoPackage, PostGIS) and the
changes by id since one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from layers.errors import InputFileError, LayerNotFoundError, StoreError
from layers.snapshots import (
    SnapshotStore,
    create_snapshot,
    delete_snapshot,
    feature_changes,
    list_snapshots,
    snapshot_store,
)
from layers.store import GeoPackageStore, open_store
from tests.layers.postgis_support import postgis_url, scratch_schema

CRS = 4548
X0, Y0 = 500000.0, 3850000.0


def _buildings(moves: dict[str, float] | None = None, **changes: object) -> gpd.GeoDataFrame:
    moves = moves or {}
    ids = ["B1", "B2", "B3", "B4", "B5"]
    geoms = [shapely.box(X0 + i * 50 + moves.get(b, 0.0), Y0, X0 + i * 50 + 20
                         + moves.get(b, 0.0), Y0 + 20) for i, b in enumerate(ids)]
    g = gpd.GeoDataFrame({"id": ids, "use": ["residential"] * 5, "floors": [1, 2, 3, 4, 5],
                          "name": ["a", "b", None, "d", "e"]}, geometry=geoms, crs=CRS)
    for k, v in changes.items():
        fid, col = k.split("__")
        g.loc[g["id"] == fid, col] = v
    return g


def _pipes(last: str = "2025-01-01") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"id": ["P1"], "medium": ["natural_gas"], "kind": ["long_distance"],
                             "pressure_mpa": [6.3], "diameter_mm": [610.0],
                             "last_inspection": [dt.date.fromisoformat(last)]},
                            geometry=[shapely.LineString([(X0, Y0 - 100), (X0 + 400, Y0 - 100)])],
                            crs=CRS)


def _changes(store, name: str, layer: str) -> gpd.GeoDataFrame:
    snap = snapshot_store(store, name)
    return feature_changes(snap.read(layer, crs=CRS), store.read(layer, crs=CRS), layer=layer)


def _scenario(store) -> None:
    store.write({"buildings": _buildings(), "pipelines": _pipes()})
    v0 = store.version()
    info = create_snapshot(store, "survey-2026-11", created="2026-11-07T09:00:00+08:00")
    assert store.version() == v0  # a snapshot is no layer write
    assert info.as_dict() == {"name": "survey-2026-11", "created": "2026-11-07T09:00:00+08:00",
                              "store_version": v0, "layers": {"buildings": 5, "pipelines": 1}}
    assert [i.name for i in list_snapshots(store)] == ["survey-2026-11"]
    assert sorted(i.name for i in store.layers()) == ["buildings", "pipelines"]
    with pytest.raises(InputFileError, match="snapshot 'survey-2026-11' already exists"):
        create_snapshot(store, "survey-2026-11", created="x")
    # a month later: B2 moved 2 cm, B3 moved 5 mm, B4 gains a floor, B5 demolished, B6 new
    now = _buildings({"B2": 0.02, "B3": 0.005}, B4__floors=5)
    now = now[now["id"] != "B5"]
    b6 = gpd.GeoDataFrame({"id": ["B6"], "use": ["shed"], "floors": [1], "name": ["new"]},
                          geometry=[shapely.box(X0, Y0 - 103, X0 + 5, Y0 - 98)], crs=CRS)
    store.write({"buildings": gpd.GeoDataFrame(pd.concat([now, b6], ignore_index=True),
                                               crs=CRS),
        "pipelines": _pipes("2026-11-20")})
    ch = _changes(store, "survey-2026-11", "buildings")
    assert ch[["feature_id", "change", "fields"]].to_dict("list") == {
        "feature_id": ["B6", "B2", "B4", "B5"], "change": ["added", "changed", "changed",
                                                           "removed"],
        "fields": ["", "geometry", "floors", ""]}
    assert ch["moved_m"].tolist()[1] == pytest.approx(0.02, abs=2e-3)
    pc = _changes(store, "survey-2026-11", "pipelines")
    assert pc[["feature_id", "change", "fields"]].to_dict("list") == {
        "feature_id": ["P1"], "change": ["changed"], "fields": ["last_inspection"]}
    # the snapshot reads like the store did: same columns and dtypes
    snap = snapshot_store(store, "survey-2026-11")
    assert snap.has_layer("buildings") and not snap.has_layer("hca")
    assert list(snap.read("buildings").columns) == list(store.read("buildings").columns)
    with pytest.raises(StoreError, match="is a snapshot: read-only"):
        snap.write({"buildings": _buildings()})
    gone = delete_snapshot(store, "survey-2026-11")
    assert gone.name == "survey-2026-11" and list_snapshots(store) == []
    with pytest.raises(LayerNotFoundError, match="has no snapshot 'survey-2026-11'; it has none"):
        snapshot_store(store, "survey-2026-11")


def test_geopackage_snapshot_changes_delete(tmp_path: Path) -> None:
    store = GeoPackageStore(tmp_path / "s.gpkg")
    _scenario(store)
    import sqlite3

    con = sqlite3.connect(tmp_path / "s.gpkg")
    left = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE name GLOB "
                                      "'riskmap_snapshot_*__*'")]
    con.close()
    assert left == []


def test_geopackage_snapshot_store_is_a_store(tmp_path: Path) -> None:
    store = GeoPackageStore(tmp_path / "s.gpkg")
    store.write({"buildings": _buildings()})
    create_snapshot(store, "a", created="2026-12-01T00:00:00+08:00", layers=["buildings"])
    snap = snapshot_store(store, "a")
    assert isinstance(snap, SnapshotStore)
    assert snap.version() == f"snapshot:a:{store.version()}"
    assert snap.url.endswith("s.gpkg#snapshot=a")
    boxes = [[*snap.read("buildings").geometry.iloc[1].bounds]]
    assert snap.read_boxes("buildings", boxes)["id"].tolist() == ["B2"]


@pytest.mark.parametrize("bad", ["", "a__b", "-x", "x" * 41, "a b", "ü"])
def test_names_checked(tmp_path: Path, bad: str) -> None:
    store = GeoPackageStore(tmp_path / "s.gpkg")
    store.write({"buildings": _buildings()})
    with pytest.raises(InputFileError, match="is not allowed; expected 1-40 letters"):
        create_snapshot(store, bad, created="x")


def test_unknown_layer_and_empty_store(tmp_path: Path) -> None:
    store = GeoPackageStore(tmp_path / "s.gpkg")
    with pytest.raises(StoreError, match="holds no layer yet"):
        create_snapshot(store, "a", created="x")
    store.write({"buildings": _buildings()})
    with pytest.raises(LayerNotFoundError, match="has no layer hca; it has buildings"):
        create_snapshot(store, "a", created="x", layers=["buildings", "hca"])
    assert list_snapshots(store) == []


@pytest.mark.parametrize(("dx", "moved"), [(0.0099, False), (0.0101, True)])
def test_move_tolerance(dx: float, moved: bool) -> None:
    a = _buildings()
    b = _buildings({"B1": dx})
    ch = feature_changes(a, b, layer="buildings")
    assert ch["feature_id"].tolist() == (["B1"] if moved else [])


def test_attribute_null_and_new_column() -> None:
    a = _buildings()
    b = _buildings(B3__name="c", B1__floors=1)
    b["owner"] = [None, None, None, None, "x"]
    ch = feature_changes(a, b, layer="buildings")
    assert ch[["feature_id", "fields"]].to_dict("list") == {"feature_id": ["B3", "B5"],
                                                            "fields": ["name", "owner"]}


@pytest.mark.server
def test_postgis_snapshot_changes_delete() -> None:
    url = postgis_url()
    with scratch_schema(url) as surl:
        store = open_store(surl)
        try:
            _scenario(store)
        finally:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{store.schema}__snap__survey-2026-11" '
                             "CASCADE")



@pytest.mark.slow
def test_snapshots_taken_while_importers_append_are_whole(tmp_path: Path) -> None:
    """Three `riskmap import` processes append 200 buildings each while another process takes
    snapshots: every append lands, and each snapshot holds a whole state (the base plus a whole
    number of appends), never half an import."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    store = GeoPackageStore(tmp_path / "race.gpkg")
    store.write({"buildings": _buildings()})
    files = []
    for k in range(3):
        geoms = [shapely.box(X0 + i * 30, Y0 + 1000 * (k + 1), X0 + i * 30 + 20,
                             Y0 + 1000 * (k + 1) + 20) for i in range(200)]
        path = tmp_path / f"add-{k}.geojson"
        gpd.GeoDataFrame({"id": [f"A{k}-{i}" for i in range(200)], "use": "residential",
                          "floors": 2}, geometry=geoms, crs=CRS).to_file(path)
        files.append(path)
    cli = [sys.executable, "-m", "api.cli"]
    snapper = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys\n"
         "for i in range(6):\n"
         "    subprocess.run([sys.executable, '-m', 'api.cli', 'snapshot', '--store', sys.argv[1],"
         " f's{i}'], check=True, capture_output=True)", str(store.path)], cwd=root)
    importers = [subprocess.Popen([*cli, "import", "--store", str(store.path), "buildings",
                                   str(p)], cwd=root, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for p in files]
    outs = [p.communicate(timeout=300)[0] for p in importers]
    assert [p.returncode for p in importers] == [0, 0, 0], outs
    assert snapper.wait(timeout=300) == 0
    assert len(store.read("buildings")) == 5 + 600
    names = [s.name for s in list_snapshots(store)]
    assert names == [f"s{i}" for i in range(6)]
    counts = [len(snapshot_store(store, n).read("buildings")) for n in names]
    assert set(counts) <= {5, 205, 405, 605}, counts
    assert counts == sorted(counts)  # taken one after another: never an older state
