"""CRS handling: GK zone choice, projected/metre checks, axis checks, RFC 7946, GCJ-02."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import CRS, Geod
from shapely.geometry import Point, Polygon

from geo.crs import (
    STORAGE_CRS,
    analysis_crs,
    check_lonlat,
    gcj02_to_wgs84,
    gk_crs,
    gk_zone,
    in_china,
    orient_rfc7946,
    require_projected,
    to_analysis,
    to_geojson,
    to_storage,
    wgs84_to_gcj02,
)
from geo.errors import CRSError

GEOD = Geod(ellps="GRS80")


@pytest.mark.parametrize(
    ("lon", "epsg"),
    [(116.999, 4548), (117.0, 4548), (118.4999, 4548), (118.5, 4549), (115.5, 4548),
     (115.4999, 4547), (75.0, 4534), (135.0, 4554), (117.25, 4548)],
)
def test_gk_zone_at_edges(lon: float, epsg: int) -> None:
    assert gk_crs(lon).to_epsg() == epsg


def test_gk_zone_numbers() -> None:
    assert [gk_zone(v) for v in (116.999, 117.0, 118.4999, 118.5)] == [39, 39, 39, 40]


def test_gk_zone_central_meridian() -> None:
    crs = gk_crs(117.25)
    assert crs.to_epsg() == 4548
    assert "117" in crs.name
    x, _y = gpd.GeoSeries([Point(117.0, 34.8)], crs=4490).to_crs(crs).iloc[0].coords[0]
    assert x == pytest.approx(500_000.0, abs=1e-6)  # no zone prefix, false easting 500 km


def test_gk_outside_zones() -> None:
    with pytest.raises(CRSError, match=r"longitude 60\.0000 is outside the CGCS2000 3-degree"):
        gk_crs(60.0)


def test_analysis_crs_inside_and_outside_china() -> None:
    assert analysis_crs((117.25, 34.8)).to_epsg() == 4548
    assert analysis_crs((2.35, 48.85)).to_epsg() == 32631  # Paris: UTM 31N
    assert analysis_crs((-73.98, 40.75)).to_epsg() == 32618
    assert analysis_crs((151.2, -33.9)).to_epsg() == 32756  # Sydney: UTM 56S
    gdf = gpd.GeoDataFrame(geometry=[Point(118.49, 34.8), Point(118.52, 34.81)], crs=4490)
    assert analysis_crs(gdf).to_epsg() == 4549  # centre 118.505 → zone 40


def test_analysis_crs_of_projected_and_empty_data() -> None:
    gdf = gpd.GeoDataFrame(geometry=[Point(117.25, 34.8)], crs=4490).to_crs(3857)
    assert analysis_crs(gdf).to_epsg() == 4548
    with pytest.raises(CRSError, match="cannot choose an analysis CRS for empty data"):
        analysis_crs(gpd.GeoDataFrame(geometry=[], crs=4490))


def test_in_china() -> None:
    assert in_china(117.25, 34.8) and not in_china(34.8, 117.25)


def test_to_analysis_and_back() -> None:
    gdf = gpd.GeoDataFrame(geometry=[Point(117.25, 34.8)], crs=4490)
    gk = to_analysis(gdf)
    assert gk.crs.to_epsg() == 4548
    back = to_storage(gk)
    assert back.crs == STORAGE_CRS
    assert back.geometry.iloc[0].distance(gdf.geometry.iloc[0]) < 1e-10


def test_require_projected() -> None:
    pt = [Point(117.25, 34.8)]
    with pytest.raises(CRSError, match=r"is in EPSG:4490 \(degrees\); expected a projected"):
        require_projected(gpd.GeoDataFrame(geometry=pt, crs=4490), "buildings")
    with pytest.raises(CRSError, match="Web Mercator, whose metres are not true metres"):
        require_projected(gpd.GeoDataFrame(geometry=pt, crs=4490).to_crs(3857), "buildings")
    with pytest.raises(CRSError, match="with unit 'US survey foot'; expected metres"):
        require_projected(gpd.GeoDataFrame(geometry=[Point(0, 0)], crs=2263), "hydrants")
    with pytest.raises(CRSError, match="buildings has no CRS; state it"):
        require_projected(gpd.GeoDataFrame(geometry=pt), "buildings")
    require_projected(gpd.GeoDataFrame(geometry=pt, crs=4490).to_crs(4548), "buildings")


def test_check_lonlat_swapped_and_not_degrees() -> None:
    with pytest.raises(CRSError, match=r"look like \(lat, lon\)"):
        check_lonlat(gpd.GeoSeries([Point(34.8, 117.25)], crs=4490), "hydrants")
    with pytest.raises(CRSError, match=r"look like \(lat, lon\) — centre \(34.8000, 80.0000\)"):
        check_lonlat(gpd.GeoSeries([Point(34.8, 80.0)], crs=4490), "hydrants")
    with pytest.raises(CRSError, match="are not degrees"):
        check_lonlat(gpd.GeoSeries([Point(522000, 3851000)], crs=4490), "hydrants")
    check_lonlat(gpd.GeoSeries([Point(117.25, 34.8)], crs=4490), "hydrants")
    check_lonlat(gpd.GeoSeries([Point(2.35, 48.85)], crs=4326), "hydrants")


def _round_trip(src_crs: int, lon: float, lat: float) -> float:
    """Metres between a point and its round trip through ``src_crs``."""
    s = gpd.GeoSeries([Point(lon, lat)], crs=4490).to_crs(src_crs).to_crs(4490)
    return float(GEOD.inv(lon, lat, s.iloc[0].x, s.iloc[0].y)[2])


@pytest.mark.parametrize(("epsg", "lon", "lat"), [
    (3857, 117.2512345, 34.8012345),  # Web Mercator
    (2263, -73.9856644, 40.7484405),  # NY Long Island, US survey feet
    (2227, -122.0, 37.5),  # California zone 3, US survey feet
    (4548, 117.2512345, 34.8012345),
])
def test_projected_round_trip_within_1cm(epsg: int, lon: float, lat: float) -> None:
    assert _round_trip(epsg, lon, lat) < 0.01


def test_feet_are_feet() -> None:
    # Two points 1000 US survey feet apart in EPSG:2263 are 304.8006 m apart on the ground
    # (scale factor of the projection aside: < 0.02 %).
    a = gpd.GeoSeries([Point(988_000, 212_000), Point(989_000, 212_000)], crs=2263).to_crs(4326)
    d = GEOD.inv(a.iloc[0].x, a.iloc[0].y, a.iloc[1].x, a.iloc[1].y)[2]
    assert d == pytest.approx(1000 * 1200 / 3937, rel=2e-4)


def _signed_area(ring: list[list[float]]) -> float:
    xy = np.asarray(ring)
    return float(0.5 * np.sum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]))


def test_to_geojson_rfc7946_winding_and_no_crs() -> None:
    shell_cw = [(117.25, 34.8), (117.25, 34.801), (117.251, 34.801), (117.251, 34.8)]
    hole_ccw = [(117.2502, 34.8002), (117.2504, 34.8002), (117.2504, 34.8004), (117.2502, 34.8004)]
    poly = Polygon(shell_cw, [hole_ccw])
    assert not poly.exterior.is_ccw and poly.interiors[0].is_ccw
    gdf = gpd.GeoDataFrame({"id": ["B-1"]}, geometry=[poly], crs=4490).to_crs(4548)
    fc = to_geojson(gdf)
    assert "crs" not in fc
    assert fc["type"] == "FeatureCollection"
    (feat,) = fc["features"]
    assert feat["properties"] == {"id": "B-1"}
    outer, inner = feat["geometry"]["coordinates"]
    assert _signed_area(outer) > 0  # counter-clockwise exterior
    assert _signed_area(inner) < 0  # clockwise hole
    assert outer[0][0] == pytest.approx(117.25, abs=1e-7)  # lon first
    assert outer[0][1] == pytest.approx(34.8, abs=1e-7)
    assert all(len(str(c).split(".")[-1]) <= 7 for ring in (outer, inner) for xy in ring for c in xy)


def test_to_geojson_multipolygon_winding() -> None:
    cw = Polygon([(0, 0), (0, 1), (1, 1), (1, 0)])
    mp = shapely.MultiPolygon([cw, shapely.affinity.translate(cw, 2, 0)])
    fc = to_geojson(gpd.GeoDataFrame(geometry=[mp], crs=4326))
    parts = fc["features"][0]["geometry"]["coordinates"]
    assert [(_signed_area(p[0]) > 0) for p in parts] == [True, True]


def test_orient_rfc7946_keeps_index_and_crs() -> None:
    s = gpd.GeoSeries([Polygon([(0, 0), (0, 1), (1, 1)])], index=[7], crs=4490)
    out = orient_rfc7946(s)
    assert list(out.index) == [7] and out.crs == s.crs
    assert out.iloc[0].exterior.is_ccw


def test_gcj02_round_trip_and_offset() -> None:
    lon, lat = 117.3, 34.8
    glon, glat = wgs84_to_gcj02(lon, lat)
    offset = GEOD.inv(lon, lat, float(glon), float(glat))[2]
    assert offset == pytest.approx(543.4, abs=0.5)  # the known ~540 m GCJ-02 shift here
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    assert abs(float(wlon) - lon) < 1e-6 and abs(float(wlat) - lat) < 1e-6


def test_gcj02_round_trip_over_china_grid() -> None:
    lo, la = np.meshgrid(np.linspace(73.6, 134.9, 25), np.linspace(18.2, 53.5, 25))
    glon, glat = wgs84_to_gcj02(lo, la)
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    assert np.abs(wlon - lo).max() < 1e-6 and np.abs(wlat - la).max() < 1e-6


def test_gcj02_outside_china_unchanged() -> None:
    glon, glat = wgs84_to_gcj02([2.35, 151.2], [48.85, -33.9])
    assert glon.tolist() == [2.35, 151.2] and glat.tolist() == [48.85, -33.9]


def test_storage_crs_is_cgcs2000() -> None:
    assert CRS.from_epsg(4490) == STORAGE_CRS
    assert STORAGE_CRS.is_geographic
