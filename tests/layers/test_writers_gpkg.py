"""write_findings .gpkg with sqlite3: read back by pyogrio / ogrinfo exactly as pyogrio's own
file, a valid R-tree, other layers kept, pyogrio for what it does not map."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon

import layers.writers as writers
from geo.findings import empty_findings
from layers.errors import InputFileError
from layers.writers import write_findings

X0, Y0 = 500_000.0, 3_800_000.0
TRI = Polygon([(X0, Y0), (X0 + 10, Y0), (X0 + 10, Y0 + 10)])


def _by_pyogrio(gdf: gpd.GeoDataFrame, path: Path, layer: str = "findings") -> None:
    """The writer as it was: everything through pyogrio."""
    orig = writers._write_gpkg
    writers._write_gpkg = lambda *a: False  # type: ignore[assignment]
    try:
        write_findings(gdf, path, layer=layer)
    finally:
        writers._write_gpkg = orig  # type: ignore[assignment]


def _assert_same(ours: Path, theirs: Path, layer: str = "findings") -> None:
    a = pyogrio.read_dataframe(ours, layer=layer)
    b = pyogrio.read_dataframe(theirs, layer=layer)
    assert list(a.columns) == list(b.columns)
    assert a.dtypes.astype(str).tolist() == b.dtypes.astype(str).tolist()
    assert a.crs == b.crs and a.crs.to_epsg() == 4490
    pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")),
                                  pd.DataFrame(b.drop(columns="geometry")))
    assert (shapely.to_wkb(a.geometry.values) == shapely.to_wkb(b.geometry.values)).all()
    ia, ib = pyogrio.read_info(ours, layer=layer), pyogrio.read_info(theirs, layer=layer)
    for key in ("geometry_type", "features", "fields", "dtypes", "crs", "total_bounds",
                "fid_column", "geometry_name"):
        assert str(ia[key]) == str(ib[key]), key
    with sqlite3.connect(ours) as con:
        assert con.execute(f"SELECT rtreecheck('rtree_{layer}_geom')").fetchone() == ("ok",)
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("PRAGMA application_id").fetchone() == (0x47504B47,)


FRAMES = {
    "mixed": gpd.GeoDataFrame(
        {"n": [1, 2, 3, 4], "x": [1.5, np.nan, 2.0, -0.0], "s": ["占压", None, "z", "'q"],
         "b": [True, False, True, False], "j": [[1, 2], None, {"k": "v"}, "s"]},
        geometry=[TRI, MultiPolygon([TRI]), None, Polygon()], crs="EPSG:4548"),
    "points": gpd.GeoDataFrame({"n": [1, 2]}, geometry=[Point(X0, Y0), Point()],
                               crs="EPSG:4548"),
    "point_and_line": gpd.GeoDataFrame(
        {"n": [1, 2]}, geometry=[Point(X0, Y0), LineString([(X0, Y0), (X0 + 1, Y0 + 1)])],
        crs="EPSG:4548"),
    "lines": gpd.GeoDataFrame(
        {"s": ["a", "b"]}, geometry=[MultiLineString([[(X0, Y0), (X0 + 1, Y0 + 1)]]),
                                     LineString([(X0, Y0), (X0 + 5, Y0)])], crs="EPSG:4548"),
    "empty": empty_findings("EPSG:4548"),
    # rows but nothing for the R-tree: it keeps its empty root
    "no_geometry": gpd.GeoDataFrame({"n": [1, 2]}, geometry=[None, None], crs="EPSG:4548"),
    "only_empty": gpd.GeoDataFrame({"n": [1, 2]}, geometry=[Polygon(), Polygon()],
                                   crs="EPSG:4548"),
}


@pytest.mark.parametrize("rows", ["adbc", "sqlite3"])
@pytest.mark.parametrize("name", sorted(FRAMES))
def test_reads_back_as_pyogrio_writes(name: str, rows: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A new file's rows go in through ADBC (Arrow buffers), else through sqlite3: the file
    reads back the same either way."""
    from layers import writers

    if rows == "adbc":
        assert writers._ingest_arrow is not None  # a declared dependency
    else:
        monkeypatch.setattr(writers, "_ingest_arrow", None)
    gdf = FRAMES[name]
    write_findings(gdf, tmp_path / "ours.gpkg")
    _by_pyogrio(gdf, tmp_path / "theirs.gpkg")
    _assert_same(tmp_path / "ours.gpkg", tmp_path / "theirs.gpkg")
    with contextlib.closing(sqlite3.connect(tmp_path / "ours.gpkg")) as con:
        assert con.execute("SELECT rtreecheck('rtree_findings_geom')").fetchone() == ("ok",)
        boxed = con.execute("SELECT count(*) FROM rtree_findings_geom").fetchone()[0]
    g = np.asarray(gdf.geometry.values, dtype=object)
    assert boxed == int((~(shapely.is_missing(g) | shapely.is_empty(g))).sum())


def test_demo_findings_read_back_as_pyogrio_writes(demo_store: Any, tmp_path: Path) -> None:
    from api.runs.pipelines import run_pipeline_check

    found = run_pipeline_check(demo_store[0]).findings
    assert len(found) > 0
    write_findings(found, tmp_path / "ours.gpkg")
    _by_pyogrio(found, tmp_path / "theirs.gpkg")
    _assert_same(tmp_path / "ours.gpkg", tmp_path / "theirs.gpkg")
    if shutil.which("ogrinfo"):
        out = subprocess.run(["ogrinfo", "-so", "-al", str(tmp_path / "ours.gpkg")],
                             capture_output=True, text=True, check=True)
        assert f"Feature Count: {len(found)}" in out.stdout and "ERROR" not in out.stderr
    # a bbox read through the R-tree finds what it finds in pyogrio's file
    x0, y0, x1, y1 = pyogrio.read_info(tmp_path / "theirs.gpkg")["total_bounds"]
    half = (x0, y0, (x0 + x1) / 2, (y0 + y1) / 2)
    ids = [sorted(pyogrio.read_dataframe(tmp_path / f, bbox=half)["finding_id"])
           for f in ("ours.gpkg", "theirs.gpkg")]
    assert ids[0] == ids[1] and ids[0]


@pytest.mark.parametrize("rows", ["adbc", "sqlite3"])
def test_layers_kept_and_replaced(rows: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing GeoPackage gets the layer in one transaction (its rows staged through ADBC
    in a temporary file and copied in with INSERT … SELECT, else inserted by sqlite3); the
    other layers stay, no temporary file is left."""
    from layers import writers

    if rows == "sqlite3":
        monkeypatch.setattr(writers, "_ingest_arrow", None)
    ours, theirs = tmp_path / "ours.gpkg", tmp_path / "theirs.gpkg"
    for write, path in ((write_findings, ours), (_by_pyogrio, theirs)):
        write(FRAMES["mixed"], path)
        write(FRAMES["points"], path, layer="other")
        write(FRAMES["lines"], path, layer="other")  # replaces it
    assert pyogrio.list_layers(ours).tolist() == [["findings", "MultiPolygon"],
                                                  ["other", "MultiLineString"]]
    _assert_same(ours, theirs)
    _assert_same(ours, theirs, layer="other")
    # into pyogrio's own file, and pyogrio into ours
    write_findings(FRAMES["points"], theirs, layer="pts")
    _by_pyogrio(FRAMES["points"], ours, layer="pts")
    _assert_same(ours, theirs, layer="pts")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.gpkg", "theirs.gpkg"]


def test_rtree_bulk_load_equals_sqlite_inserts() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 51, 52, 2602, 20_000):
        lo = rng.uniform(-180, 170, (n, 2))
        bounds = np.column_stack([lo, lo + rng.uniform(0, 0.5, (n, 2))])
        ids = rng.permutation(n) * 3 + 7
        ours, ref = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
        for con in (ours, ref):
            con.execute("CREATE VIRTUAL TABLE r USING rtree(id, minx, maxx, miny, maxy)")
        writers._fill_rtree(ours, "r", ids, bounds)
        ref.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?)",
                        zip(ids.tolist(), *bounds[:, [0, 2, 1, 3]].T.tolist(), strict=True))
        assert ours.execute("SELECT rtreecheck('r')").fetchone() == ("ok",)
        q = "SELECT * FROM r ORDER BY id"
        assert ours.execute(q).fetchall() == ref.execute(q).fetchall()  # float32 rounding too
        w = "SELECT id FROM r WHERE maxx >= -20 AND minx <= 20 AND maxy >= -50 AND miny <= 0"
        assert sorted(ours.execute(w).fetchall()) == sorted(ref.execute(w).fetchall())
        ours.execute("INSERT INTO r VALUES (1, 0, 1, 0, 1)")  # still an ordinary R-tree
        ours.execute("DELETE FROM r WHERE id = ?", (int(ids[0]),))
        assert ours.execute("SELECT rtreecheck('r')").fetchone() == ("ok",)


def test_pyogrio_writes_what_sqlite_does_not_map(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {"when": pd.to_datetime(["2026-12-07T10:00:00"]), "n": pd.array([1], dtype="Int64")},
        geometry=[TRI], crs="EPSG:4548")
    for col in ("when", "n"):
        one = gdf[[col, "geometry"]]
        assert not writers._write_gpkg(one.to_crs(4490), tmp_path / "x.gpkg", "findings")
        write_findings(one, tmp_path / f"{col}.gpkg")
        _by_pyogrio(one, tmp_path / f"{col}_theirs.gpkg")
        pd.testing.assert_frame_equal(pyogrio.read_dataframe(tmp_path / f"{col}.gpkg"),
                                      pyogrio.read_dataframe(tmp_path / f"{col}_theirs.gpkg"))
    z = gpd.GeoDataFrame({"n": [1]}, geometry=[Point(X0, Y0, 3.0)], crs="EPSG:4548")
    assert not writers._write_gpkg(z.to_crs(4490), tmp_path / "z.gpkg", "findings")


def test_not_a_geopackage(tmp_path: Path) -> None:
    p = tmp_path / "f.gpkg"
    p.write_text("not a database")
    with pytest.raises(InputFileError, match=r"f\.gpkg: the file exists and is not a GeoPackage"):
        write_findings(FRAMES["points"], p)
    assert p.read_text() == "not a database"
