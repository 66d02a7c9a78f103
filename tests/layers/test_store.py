"""GeoPackage store: read in a CRS, bbox through the index, atomic writes, listing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Point, box

import layers.store as store_mod
from layers.errors import LayerNotFoundError, StoreError
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
    real = store_mod.pyogrio.write_dataframe
    calls = []

    def flaky(gdf: gpd.GeoDataFrame, path: str, **kw: object) -> None:
        calls.append(kw["layer"])
        if len(calls) == 2:
            raise OSError("disk full")
        real(gdf, path, **kw)

    monkeypatch.setattr(store_mod.pyogrio, "write_dataframe", flaky)
    with pytest.raises(StoreError, match=r"the store is unchanged: disk full"):
        store.write({"hydrants": _points().iloc[:1], "cameras": _points()})
    assert calls == ["hydrants", "cameras"]
    assert sha(store.path) == before
    assert [p.name for p in store.path.parent.iterdir() if p.name.startswith(".riskmap-")] == []
