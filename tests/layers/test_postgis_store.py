"""Store-level tests run against GeoPackage and against a live PostGIS server.

The PostGIS variants are marked ``server``; see ``tests/layers/postgis_support.py`` for when they
skip. Both stores must give the same answers for the same calls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from postgis_support import postgis_url, scratch_schema
from shapely.geometry import LineString, MultiPolygon, Point, box

from layers.errors import LayerNotFoundError, StoreError
from layers.store import GeoPackageStore, Store, open_store

LON0, LAT0 = 117.25, 34.80


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.server)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "gpkg":
        yield open_store(tmp_path / "s.gpkg")
        return
    with scratch_schema(postgis_url()) as url:
        yield open_store(url)


def _frame(n: int = 5, *, tag: str = "v1") -> gpd.GeoDataFrame:
    """``n`` 10 m-ish squares in a row, with every attribute type the schemas use."""
    d = 0.0001
    geoms = [box(LON0 + i * 2 * d, LAT0, LON0 + (2 * i + 1) * d, LAT0 + d) for i in range(n)]
    return gpd.GeoDataFrame(
        {
            "id": [f"B{i}" for i in range(n)],
            "tag": [tag] * n,
            "floors": np.arange(1, n + 1, dtype="int64"),
            "height_m": [3.0 * (i + 1) + 0.1 for i in range(n)],
            "school": [i % 2 == 0 for i in range(n)],
        },
        geometry=geoms,
        crs="EPSG:4490",
    )


def _typed() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "id": ["a", "b", None],
            "name": ["", 'quote " comma , newline\n', "医院"],
            "n": [1, 2, 3],
            "ni": pd.array([1, None, 3], dtype="Int64"),
            "f": [0.1 + 0.2, np.nan, 1e-300],
            "b": [True, False, True],
            "bn": pd.array([True, None, False], dtype="boolean"),
            "d": [dt.date(2020, 1, 2), None, dt.date(2021, 3, 4)],
        },
        geometry=[Point(LON0, LAT0), None, Point(LON0 + 0.001, LAT0 + 0.001)],
        crs="EPSG:4490",
    )


def test_round_trip_keeps_values_and_types(store: Store, tmp_path: Path) -> None:
    store.write({"t": _typed()})
    got = store.read("t")
    assert list(got.columns) == ["id", "name", "n", "ni", "f", "b", "bn", "d", "geometry"]
    assert got["id"].tolist()[:2] == ["a", "b"] and pd.isna(got["id"].iloc[2])
    assert got["name"].tolist() == ["", 'quote " comma , newline\n', "医院"]
    assert got["n"].tolist() == [1, 2, 3]
    assert got["ni"].iloc[0] == 1 and np.isnan(got["ni"].iloc[1])
    assert got["f"].iloc[0] == 0.1 + 0.2 and np.isnan(got["f"].iloc[1])
    assert got["f"].iloc[2] == 1e-300
    assert got["b"].tolist() == [True, False, True]
    assert got["bn"].tolist() == [True, None, False]
    assert got["d"].tolist() == [dt.date(2020, 1, 2), None, dt.date(2021, 3, 4)]
    assert got.geometry.iloc[0].equals(Point(LON0, LAT0)) and got.geometry.iloc[1] is None
    assert got.crs.to_epsg() == 4490
    # ... and exactly what the GeoPackage store gives back.
    ref = GeoPackageStore(tmp_path / "ref.gpkg")
    ref.write({"t": _typed()})
    assert_geodataframe_equal(got, ref.read("t"))


def test_layers_info(store: Store) -> None:
    lines = gpd.GeoDataFrame(
        {"id": ["P1", "P2"]},
        geometry=[LineString([(LON0, LAT0), (LON0 + 0.01, LAT0)]),
                  LineString([(LON0, LAT0 + 0.002), (LON0 + 0.005, LAT0 + 0.02)])],
        crs="EPSG:4490",
    )
    mixed = gpd.GeoDataFrame(
        {"id": ["A", "B"]},
        geometry=[box(0, 0, 1, 1), MultiPolygon([box(2, 2, 3, 3), box(4, 4, 5, 5)])],
        crs="EPSG:4490",
    )
    assert store.layers() == [] and not store.has_layer("pipelines")
    store.write({"pipelines": lines, "buildings": _frame(3), "mixed": mixed,
                 "empty": _frame(0)})
    info = {i.name: i for i in store.layers()}
    assert [i.name for i in store.layers()] == ["pipelines", "buildings", "mixed", "empty"]
    assert store.has_layer("pipelines") and not store.has_layer("roads")
    p = info["pipelines"]
    assert (p.count, p.crs, p.geometry_type) == (2, "EPSG:4490", "LineString")
    assert p.bbox == pytest.approx((LON0, LAT0, LON0 + 0.01, LAT0 + 0.02))
    assert info["buildings"].geometry_type == "Polygon" and info["buildings"].count == 3
    # a layer mixing Polygon and MultiPolygon is promoted to MultiPolygon
    assert info["mixed"].geometry_type == "MultiPolygon"
    assert store.read("mixed").geom_type.tolist() == ["MultiPolygon", "MultiPolygon"]
    assert (info["empty"].count, info["empty"].bbox) == (0, None)
    assert len(store.read("empty")) == 0


def test_bbox_read(store: Store) -> None:
    store.write({"buildings": _frame(10)})
    d = 0.0001
    # squares 2..4 overlap this box (lon/lat)
    bbox = (LON0 + 4.5 * d, LAT0 + 0.2 * d, LON0 + 8.5 * d, LAT0 + 0.5 * d)
    assert store.read("buildings", bbox=bbox)["id"].tolist() == ["B2", "B3", "B4"]
    # the same box given in the projected analysis CRS (GK zone 39, EPSG:4548)
    proj = gpd.GeoSeries([box(*bbox)], crs=4490).to_crs(4548).total_bounds
    got = store.read("buildings", bbox=tuple(proj), bbox_crs="EPSG:4548")
    assert got["id"].tolist() == ["B2", "B3", "B4"]
    assert store.read("buildings", bbox=(0, 0, 1, 1)).empty


def test_columns_and_crs(store: Store) -> None:
    store.write({"buildings": _frame(3).to_crs(4548)})  # stored in EPSG:4490 anyway
    got = store.read("buildings", columns=["floors"])
    assert list(got.columns) == ["floors", "geometry"]
    assert got.crs.to_epsg() == 4490
    assert got.geometry.iloc[0].equals_exact(_frame(3).geometry.iloc[0], tolerance=1e-9)
    projected = store.read("buildings", crs=4548)
    assert projected.crs.to_epsg() == 4548
    assert projected.geometry.iloc[0].area == pytest.approx(_frame(3).to_crs(4548).area[0])


def test_replace_and_version(store: Store) -> None:
    v0 = store.version()
    store.write({"buildings": _frame(5)})
    v1 = store.version()
    store.write({"buildings": _frame(2, tag="v2")})
    v2 = store.version()
    assert len({v0, v1, v2}) == 3
    got = store.read("buildings")
    assert got["tag"].tolist() == ["v2", "v2"]
    assert store.layers()[0].count == 2


def test_errors(store: Store) -> None:
    with pytest.raises(LayerNotFoundError, match="no layer 'roads'"):
        store.read("roads")
    with pytest.raises(StoreError, match="no CRS"):
        store.write({"buildings": _frame(2).set_crs(None, allow_override=True)})
    assert not store.has_layer("buildings")


def test_failed_write_leaves_store_unchanged(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write({"buildings": _frame(3), "roads": _frame(2)})
    version = store.version()
    if isinstance(store, GeoPackageStore):
        import layers.gpkg_write as mod

        real = mod.pyogrio.write_dataframe

        def flaky(gdf: gpd.GeoDataFrame, path: object, *, layer: str, **kw: object) -> None:
            if layer == "roads":
                raise OSError("disk full")
            real(gdf, path, layer=layer, **kw)

        monkeypatch.setattr(mod.pyogrio, "write_dataframe", flaky)
    else:
        import layers.postgis as mod

        real_batches = mod._Encoded.csv_batches

        def broken(self: mod._Encoded) -> Iterator[bytes]:
            if self.name == "roads":  # the server rejects this row inside the transaction
                yield b'"R1","v9",not-a-number,1.0,true,0101000020AA\n'
            else:
                yield from real_batches(self)

        monkeypatch.setattr(mod._Encoded, "csv_batches", broken)
    with pytest.raises(StoreError, match="the store is unchanged"):
        store.write({"buildings": _frame(7, tag="v2"), "roads": _frame(4, tag="v2")})
    assert store.version() == version
    assert store.read("buildings")["tag"].tolist() == ["v1"] * 3
    assert len(store.read("roads")) == 2


def test_concurrent_imports_and_reads_lose_nothing(store: Store) -> None:
    """20 concurrent operations: 10 writers (each its own layer, two rounds) and 10 readers of
    a layer being rewritten; every write lands and every read sees one whole version."""
    store.write({"shared": _frame(6, tag="v0")})
    errors: list[BaseException] = []
    reads: list[gpd.GeoDataFrame] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        for r in range(2):
            store.write({f"layer_{i}": _frame(i + 1, tag=f"w{i}r{r}"),
                         "shared": _frame(6, tag=f"w{i}r{r}")})

    def reader(i: int) -> None:
        for _ in range(3):
            got = store.read("shared")
            with lock:
                reads.append(got)

    def run(job: tuple[str, int]) -> None:
        try:
            (writer if job[0] == "w" else reader)(job[1])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    jobs = [("w", i) for i in range(10)] + [("r", i) for i in range(10)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(run, jobs))
    assert errors == []
    for i in range(10):
        got = store.read(f"layer_{i}")
        assert len(got) == i + 1 and got["tag"].tolist() == [f"w{i}r1"] * (i + 1)
    assert len(reads) == 30
    for got in reads:
        assert len(got) == 6 and got["tag"].nunique() == 1
    assert store.read("shared")["tag"].iloc[0].endswith("r1")
    assert sorted(i.name for i in store.layers()) == sorted(
        ["shared", *(f"layer_{i}" for i in range(10))])


# -- PostGIS only --------------------------------------------------------------------------
@pytest.fixture
def pg_url() -> Iterator[str]:
    with scratch_schema(postgis_url()) as url:
        yield url


@pytest.mark.server
def test_bbox_read_uses_the_gist_index(pg_url: str) -> None:
    from layers.postgis import PostGISStore

    store = PostGISStore(pg_url)
    xs, ys = np.meshgrid(np.arange(60), np.arange(60))
    pts = shapely.points(LON0 + xs.ravel() * 1e-4, LAT0 + ys.ravel() * 1e-4)
    store.write({"hydrants": gpd.GeoDataFrame({"id": np.arange(pts.size).astype(str)},
                                              geometry=pts, crs=4490)})
    bbox = (LON0, LAT0, LON0 + 2.5e-4, LAT0 + 2.5e-4)
    plan = store.explain_read("hydrants", bbox)
    assert "hydrants_gix" in plan and "&&" in plan
    assert len(store.read("hydrants", bbox=bbox)) == 9


@pytest.mark.server
def test_read_boxes_one_query(pg_url: str) -> None:
    from layers.postgis import PostGISStore

    store = PostGISStore(pg_url)
    store.write({"buildings": _frame(10)})
    d = 0.0001
    # square Bi spans lon (2i .. 2i+1)·d
    boxes = [(LON0 + 0.5 * d, LAT0, LON0 + 0.6 * d, LAT0 + d),      # inside B0
             (LON0 + 8.5 * d, LAT0, LON0 + 12.5 * d, LAT0 + d),     # B4, B5, B6
             (LON0 + 2.5 * d, LAT0, LON0 + 4.5 * d, LAT0 + d)]      # B1, B2
    got = store.read_boxes("buildings", boxes, crs=4548)
    assert got["id"].tolist() == ["B0", "B1", "B2", "B4", "B5", "B6"]
    assert got.crs.to_epsg() == 4548
    assert store.read_boxes("buildings", []).empty


@pytest.mark.server
def test_db_init_applies_migrations_once(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import psycopg

    from api.commands import db
    from layers.migrations import LATEST
    from layers.postgis import PostGISStore, split_url

    parser = argparse.ArgumentParser()
    db.register(parser.add_subparsers(), {})

    def main(argv: list[str]) -> int:
        args = parser.parse_args(argv)
        return int(args.func(args))

    assert main(["db", "init", "--store", pg_url]) == 0
    assert "applied 0001_catalogue" in capsys.readouterr().out
    assert main(["db", "init", "--store", pg_url]) == 0
    assert "up to date" in capsys.readouterr().out
    conninfo, schema = split_url(pg_url)
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(f'SELECT version FROM "{schema}".riskmap_migrations ORDER BY 1')
        assert [r[0] for r in rows] == list(range(1, LATEST + 1))
    assert PostGISStore(pg_url).layers() == []


@pytest.mark.server
def test_reserved_names_and_bad_url(pg_url: str) -> None:
    from layers.postgis import PostGISStore

    store = PostGISStore(pg_url)
    with pytest.raises(StoreError, match="reserved"):
        store.write({"riskmap_layers": _frame(1)})
    with pytest.raises(StoreError, match="reserved"):
        store.write({"b": _frame(1).rename(columns={"tag": "riskmap_fid"})})
    bad = PostGISStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
    with pytest.raises(StoreError, match="cannot connect"):
        bad.layers()


@pytest.mark.server
def test_append_keeps_a_consistent_layer(pg_url: str) -> None:
    """Append adds columns, widens int to float, keeps all-null columns typed, promotes
    Polygon to MultiPolygon like a replace would, and moves the catalogue and version."""
    from layers.postgis import PostGISStore

    store = PostGISStore(pg_url)
    assert store.append("buildings", _frame(3)) == 3  # creates the layer
    version = store.version()
    more = _frame(2, tag="v2")
    more["id"] = ["C0", "C1"]
    more["height_m"] = [1, 2]                      # int into a float column
    more["floors"] = [None, None]                  # all-null: keeps bigint
    more["note"] = ["x", None]                     # a new column
    more.geometry = [MultiPolygon([box(LON0 - 0.01, LAT0 - 0.01, LON0 - 0.009, LAT0 - 0.009)]),
                     box(LON0, LAT0, LON0 + 0.0001, LAT0 + 0.0001)]
    assert store.append("buildings", more) == 5
    got = store.read("buildings")
    assert list(got.columns) == ["id", "tag", "floors", "height_m", "school", "note", "geometry"]
    assert got["id"].tolist() == ["B0", "B1", "B2", "C0", "C1"]
    assert got["floors"].tolist()[:3] == [1, 2, 3] and got["floors"].isna().tolist()[3:] == [
        True, True]
    assert got["height_m"].tolist() == [3.1, 6.1, 9.1, 1.0, 2.0]
    assert got["note"].tolist()[3] == "x" and got["note"].isna().tolist() == [True] * 3 + [
        False, True]
    assert set(got.geometry.geom_type) == {"MultiPolygon"}
    info = store.layers()[0]
    assert (info.count, info.geometry_type) == (5, "MultiPolygon")
    assert info.bbox is not None and info.bbox[0] == pytest.approx(LON0 - 0.01)
    assert info.bbox[2] == pytest.approx(LON0 + 5 * 0.0001)
    assert store.version() != version
    # insertion order is kept in the fids: slices partition the layer
    assert store.read_slice("buildings", 2, 4)["id"].tolist() == ["B2", "C0"]
    with pytest.raises(StoreError, match="has no CRS"):
        store.append("buildings", _frame(1).set_crs(None, allow_override=True))
