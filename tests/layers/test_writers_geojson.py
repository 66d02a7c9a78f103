"""write_findings .geojson column-wise: the same bytes as json.dumps(geo.crs.to_geojson(...))."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import (
    GeometryCollection,
    LineString,
    MultiLineString,
    MultiPoint,
    MultiPolygon,
    Point,
    Polygon,
)

import layers.writers as writers
from geo.crs import to_geojson
from geo.findings import empty_findings
from layers.writers import write_findings

X0, Y0 = 500_000.0, 3_800_000.0
TRI = Polygon([(X0, Y0), (X0 + 10, Y0), (X0 + 10, Y0 + 10)])
HOLED = Polygon([(X0, Y0), (X0 + 100, Y0), (X0 + 100, Y0 + 100), (X0, Y0 + 100)],
                [[(X0 + 10, Y0 + 10), (X0 + 20, Y0 + 10), (X0 + 20, Y0 + 20)]])


def _general(gdf: gpd.GeoDataFrame) -> str:
    """The general path: geo.crs.to_geojson through json.dumps."""
    return json.dumps(to_geojson(writers._finite(gdf)), ensure_ascii=False, allow_nan=False,
                      default=writers._json_default)


def _written(gdf: gpd.GeoDataFrame, tmp_path: Path) -> str:
    return write_findings(gdf, tmp_path / "f.geojson").read_text(encoding="utf-8")


FRAMES = {
    "every_type": gpd.GeoDataFrame(
        {"n": range(9), "b": [True, False] * 4 + [True],
         "s": ["a", None, 'q"\\\n', "c", "占压", "", "=1", "f", "g"],
         "x": [0.1, -0.0, 1e16, np.nan, 3.0, 1e-7, np.inf, 7.0, 8.0],
         "j": [[], None, {"k": [1, 2.5]}, "t", (1, 2), None, [], {}, "u"]},
        geometry=[TRI, HOLED, MultiPolygon([TRI, HOLED]), Point(X0, Y0),
                  MultiPoint([(X0, Y0), (X0 + 1, Y0 + 1)]), LineString([(X0, Y0), (X0 + 1, Y0 + 3)]),
                  MultiLineString([[(X0, Y0), (X0 + 1, Y0 + 3)],
                                   [(X0 + 5, Y0), (X0 + 6, Y0 + 3), (X0 + 9, Y0)]]),
                  None, Polygon()], crs="EPSG:4548"),
    "empty": empty_findings("EPSG:4548"),
    "no_columns": gpd.GeoDataFrame(geometry=[TRI], crs="EPSG:4548"),
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_same_text_as_the_general_path(name: str, tmp_path: Path) -> None:
    gdf = FRAMES[name]
    assert writers._geojson_text(writers._finite(gdf)) is not None  # the column-wise path
    assert _written(gdf, tmp_path) == _general(gdf)


def test_demo_findings_same_text(demo_store: Any, tmp_path: Path) -> None:
    from api.runs.pipelines import run_pipeline_check

    found = run_pipeline_check(demo_store[0]).findings
    assert len(found) > 0
    text = _written(found, tmp_path)
    assert text == _general(found)
    assert json.loads(text)["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_general_path_for_what_it_does_not_take(tmp_path: Path) -> None:
    cases = [
        gpd.GeoDataFrame({"n": [1]}, geometry=[GeometryCollection([TRI])], crs="EPSG:4548"),
        gpd.GeoDataFrame({"n": [1]}, geometry=[Point(X0, Y0, 2.0)], crs="EPSG:4548"),
        gpd.GeoDataFrame({"n": [1]}, geometry=[TRI], crs="EPSG:4548").assign(
            when=pd.to_datetime(["2026-12-07"]).astype(str)).assign(v=[np.int64(3)]).astype(
            {"v": object}),
    ]
    for gdf in cases:
        assert writers._geojson_text(writers._finite(gdf)) is None
    assert _written(cases[0], tmp_path) == _general(cases[0])


def test_rounding_equals_python_round() -> None:
    rng = np.random.default_rng(5)
    v = np.concatenate([rng.uniform(73, 136, 200_000), rng.uniform(-1, 1, 50_000),
                        np.round(rng.uniform(100, 120, 50_000), 7) + 0.5e-7,  # ties
                        [0.0, -0.0, 1e-8, -1e-8, 5e-8, -5e-8, 1.5e-7, 2.5e-7]])
    got = writers._round_like_python(v, 7)
    want = np.array([round(x, 7) for x in v.tolist()])
    assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))
