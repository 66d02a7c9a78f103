"""write_findings: .geojson (RFC 7946), .gpkg, .csv by extension."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import LineString, box

from geo.findings import empty_findings
from layers.errors import InputFileError
from layers.writers import write_findings

X0, Y0 = 500_000.0, 3_800_000.0


@pytest.fixture
def findings() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"finding_id": ["occupancy:P:B1", "hca_unregistered:P:0-100"],
         "message_zh": ["建筑物 B1 占压管道 P", "未登记"], "distance_m": [1.5, np.nan],
         "shortfall_m": [np.inf, 0.5], "criteria": [[], [{"row": "e", "feature_id": "S-1"}]]},
        geometry=[box(X0, Y0, X0 + 10, Y0 + 10), LineString([(X0, Y0), (X0 + 100, Y0)])],
        crs="EPSG:4548")


def test_geojson_is_rfc7946(findings: gpd.GeoDataFrame, tmp_path: Path) -> None:
    p = write_findings(findings, tmp_path / "out" / "f.geojson")
    fc = json.loads(p.read_text(encoding="utf-8"))
    assert "crs" not in fc and fc["type"] == "FeatureCollection"
    props = fc["features"][0]["properties"]
    assert props["message_zh"] == "建筑物 B1 占压管道 P"
    assert props["shortfall_m"] is None  # non-finite numbers become null
    assert fc["features"][1]["properties"]["distance_m"] is None
    assert fc["features"][1]["properties"]["criteria"] == [{"row": "e", "feature_id": "S-1"}]
    ring = fc["features"][0]["geometry"]["coordinates"][0]
    area2 = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(ring))
    assert area2 > 0  # counter-clockwise outer ring
    assert 116.9 < ring[0][0] < 117.1


def test_gpkg_and_csv(findings: gpd.GeoDataFrame, tmp_path: Path) -> None:
    g = write_findings(findings, tmp_path / "f.gpkg")
    back = pyogrio.read_dataframe(g, layer="findings")
    assert back.crs.to_epsg() == 4490
    assert json.loads(back["criteria"].iat[1]) == [{"row": "e", "feature_id": "S-1"}]
    write_findings(findings.iloc[:1], g, layer="other")  # a second layer, the first is kept
    assert {n for n, _ in pyogrio.list_layers(g)} == {"findings", "other"}
    c = write_findings(findings, tmp_path / "f.csv")
    assert c.read_bytes().startswith(b"\xef\xbb\xbf")
    df = pd.read_csv(c, encoding="utf-8-sig")
    assert df["message_zh"].iat[0] == "建筑物 B1 占压管道 P"
    assert df["wkt"].iat[1].startswith("LINESTRING (117")
    assert 34 < df["lat"].iat[0] < 35


def test_empty_findings_and_bad_extension(tmp_path: Path) -> None:
    for ext in ("geojson", "gpkg", "csv"):
        write_findings(empty_findings("EPSG:4548"), tmp_path / f"e.{ext}")
    assert json.loads((tmp_path / "e.geojson").read_text())["features"] == []
    assert len(pyogrio.read_dataframe(tmp_path / "e.gpkg")) == 0
    with pytest.raises(InputFileError, match="not supported"):
        write_findings(empty_findings("EPSG:4548"), tmp_path / "e.shp")
