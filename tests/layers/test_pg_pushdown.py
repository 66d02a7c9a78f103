"""PostGIS pushdown of the pipeline candidate search equals the in-process search."""

from __future__ import annotations

from collections.abc import Iterator

import geopandas as gpd
import numpy as np
import pytest
from geopandas.testing import assert_geodataframe_equal
from postgis_support import postgis_url, scratch_schema
from shapely.geometry import LineString, box

from bench import district
from geo.linref import line_reference
from geo.pipelines import check_pipelines, pipeline_distances
from layers.rules import load_rules

pytestmark = pytest.mark.server

N = 6_000


@pytest.fixture(scope="module")
def rules() -> tuple[tuple, tuple]:
    r = load_rules("pipelines")
    return r.rows("occupancy"), r.rows("setback")


@pytest.fixture(scope="module")
def pg_store() -> Iterator[object]:
    from layers.postgis import PostGISStore

    with scratch_schema(postgis_url()) as url:
        store = PostGISStore(url)
        store.write({"pipelines": district.pipelines(N), "buildings": district.buildings(N)})
        yield store


def _in_process_pairs(pipes: gpd.GeoDataFrame, blds: gpd.GeoDataFrame,
                      radius: np.ndarray) -> object:
    refs = [line_reference(g) for g in pipes.geometry.values]
    pairs = pipeline_distances(refs, blds.geometry, radius_m=radius)
    pairs["building_id"] = blds["id"].to_numpy()[pairs["building"].to_numpy()]
    return pairs.sort_values(["line", "building_id"]).reset_index(drop=True)


def test_pairs_equal_in_process_and_distances_to_1cm(pg_store: object) -> None:
    from layers.pg_pushdown import pipeline_pairs

    pipes = pg_store.read("pipelines", crs=district.CRS)
    blds = pg_store.read("buildings", crs=district.CRS)
    radius = np.linspace(8.0, 40.0, len(pipes))  # a different radius per pipeline
    ours = pipeline_pairs(pg_store, pipes, radius_m=radius)
    ref = _in_process_pairs(pipes, blds, radius)
    assert len(ref) > 200
    assert ours[["line", "building_id"]].values.tolist() == \
        ref[["line", "building_id"]].values.tolist()
    assert np.abs(ours["distance_m"].to_numpy() - ref["distance_m"].to_numpy()).max() < 0.01


def test_crafted_pair_at_the_threshold(pg_store: object) -> None:
    """A footprint 4.99 m from the centre line is a pair at radius 5 m; one at 5.01 m is not."""
    from layers.pg_pushdown import pipeline_pairs

    x0, y0 = district.X0 - 5_000, district.Y0 - 5_000  # away from the synthetic district
    pipe = gpd.GeoDataFrame({"id": ["P"], "diameter_mm": [100.0]},
                            geometry=[LineString([(x0, y0), (x0 + 1000, y0)])], crs=district.CRS)
    blds = gpd.GeoDataFrame({"id": ["in", "out", "cross"]}, geometry=[
        box(x0 + 100, y0 + 4.99, x0 + 110, y0 + 14.99),
        box(x0 + 200, y0 - 15.01, x0 + 210, y0 - 5.01),
        box(x0 + 300, y0 - 3, x0 + 310, y0 + 3),
    ], crs=district.CRS)
    pg_store.write({"crafted": blds})
    got = pipeline_pairs(pg_store, pipe, radius_m=5.0, layer="crafted")
    assert got["building_id"].tolist() == ["cross", "in"]
    assert got["distance_m"].tolist() == pytest.approx([0.0, 4.99], abs=0.01)


def test_pushdown_findings_equal_default_engine(pg_store: object, rules: tuple) -> None:
    from layers.pg_pushdown import check_pipelines_pushdown

    occ, sb = rules
    ref = check_pipelines(pg_store.read("pipelines", crs=district.CRS),
                          pg_store.read("buildings", crs=district.CRS),
                          occupancy_rules=occ, setback_rules=sb)
    got = check_pipelines_pushdown(pg_store, occupancy_rules=occ, setback_rules=sb,
                                   crs=district.CRS)
    assert set(ref["kind"]) == {"occupancy", "setback"} and len(ref) > 100
    assert_geodataframe_equal(got, ref)
