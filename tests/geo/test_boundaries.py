"""Exact-boundary behaviour of the numeric rules (who is compliant AT the limit).

Chinese standards word limits as '不应小于 X' / '不宜大于 X' / '超过 X': the value X itself is
compliant, and '…以内' / '…范围内' includes X (立法技术规范: 以上、以下、以内 含本数).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import LineString, Point, Polygon, box

from geo.coverage import build_fire_network
from geo.findings import format_station
from geo.fire_lanes import dead_end_findings, qualify_lanes
from geo.hydrants import hydrant_distances, hydrant_spacing_gaps
from geo.pressure import pressure_class
from layers.fire_rules import load_fire_rules

CRS = "EPSG:4548"


@pytest.fixture(scope="module")
def rules():
    return load_fire_rules()


def _gdf(ids, geoms, **cols):
    return gpd.GeoDataFrame({"id": ids, **cols}, geometry=geoms, crs=CRS)


@pytest.mark.parametrize(("p", "cls"), [
    (0.0099, "low"), (0.01, "medium_b"), (0.2, "medium_b"), (0.2001, "medium_a"),
    (0.4, "medium_a"), (0.4001, "sub_high_b"), (0.8, "sub_high_b"), (0.8001, "sub_high_a"),
    (1.6, "sub_high_a"), (1.6001, "high_b"), (2.5, "high_b"), (2.5001, "high_a"),
    (4.0, "high_a"), (4.0001, "above_high_a"),
])
def test_gb50028_pressure_class_edges(p: float, cls: str) -> None:
    # GB 50028-2006 Table 6.1.6: low P < 0.01; medium B 0.01 <= P <= 0.2; every other class
    # 'lower < P <= upper'
    assert pressure_class(p) == cls


def test_station_rounding_edges() -> None:
    assert format_station(0.0) == "K0+000.0"
    assert format_station(999.94) == "K0+999.9"
    assert format_station(999.96) == "K1+000.0"
    assert format_station(12345.6) == "K12+345.6"
    # half up, not Python's half to even
    assert format_station(12.25) == "K0+012.3"
    assert format_station(0.05) == "K0+000.1"
    assert format_station(1999.95) == "K2+000.0"


def test_lane_exactly_4_m_wide_and_high_is_compliant(rules):
    # GB 50016 7.1.8: clear width and height 不应小于 4.0 m
    lanes = _gdf(["A", "B", "C"], [LineString([(0, 0), (0, 10)])] * 3,
                 width_m=[4.0, 3.999, 4.0], clear_height_m=[4.0, 4.0, 3.999])
    q = qualify_lanes(lanes, rules=rules)
    assert q["narrow"].tolist() == [False, True, False]
    assert q["low"].tolist() == [False, False, True]


def test_dead_end_exactly_40_m_needs_no_turnaround(rules):
    # GB 55037-2022 3.4.5: a dead-end lane LONGER than 40 m needs a turnaround
    roads = _gdf(["R1"], [LineString([(0, 0), (400, 0)])], road_class=["local"])
    lanes = _gdf(["FL-40", "FL-40.01"],
                 [LineString([(50, 0), (50, 40.0)]), LineString([(100, 0), (100, 40.01)])],
                 width_m=[4.0, 4.0])
    g = build_fire_network(roads, lanes, rules=rules)
    f = dead_end_findings(g, rules=rules)
    assert f["feature_id"].tolist() == ["FL-40.01"]
    assert f.iloc[0]["length_m"] == pytest.approx(40.01)


def test_building_exactly_150_m_from_a_hydrant_is_covered(rules):
    # GB 50974-2014 7.2.5: protection radius 不应大于 150 m
    hyd = _gdf(["H1"], [Point(0, 0)], status=["ok"])
    blds = _gdf(["B150", "B150.01"], [box(150.0, -5, 160, 5), box(-160, -5, -150.01, 5)])
    d = hydrant_distances(blds, hyd, rules=rules, method="straight").set_index("id")
    assert d.loc["B150", "hydrant_distance_m"] == 150.0
    assert d["hydrant_covered"].to_dict() == {"B150": True, "B150.01": False}


@pytest.mark.parametrize(("gap", "n"), [(120.0, 0), (120.5, 1)])
def test_hydrant_spacing_exactly_120_m_is_compliant(rules, gap: float, n: int):
    # GB 50974-2014 7.2.5: spacing 不应大于 120 m
    length = gap + 120.0
    roads = _gdf(["R1"], [LineString([(0, 0), (length, 0)])])
    hyd = _gdf(["H1", "H2"], [Point(60, 0), Point(60 + gap, 0)], status=["ok", "ok"])
    g = build_fire_network(roads, None, rules=rules)
    assert len(hydrant_spacing_gaps(g, hyd, rules=rules)) == n


def test_dead_end_of_40_m_on_a_diagonal_is_not_flagged(rules):
    # 40 m along a diagonal at projected coordinates: the summed length carries float noise
    x0, y0 = 500_000.0, 3_800_000.0
    roads = _gdf(["R1"], [LineString([(x0 - 100, y0), (x0 + 100, y0)])], road_class=["local"])
    d = 40.0 / np.sqrt(2.0)
    lanes = _gdf(["FL-D"], [LineString([(x0, y0), (x0 + d / 2, y0 + d / 2), (x0 + d, y0 + d)])],
                 width_m=[4.0])
    g = build_fire_network(roads, lanes, rules=rules)
    assert dead_end_findings(g, rules=rules).empty


def test_hydrant_at_150_m_on_a_diagonal_is_covered(rules):
    x0, y0 = 500_000.0, 3_800_000.0
    d = 150.0 / np.sqrt(2.0)
    hyd = _gdf(["H1"], [Point(x0, y0)], status=["ok"])
    # a footprint whose nearest corner is 150 m away along the diagonal
    corner = (x0 + d, y0 + d)
    blds = _gdf(["B"], [Polygon([corner, (corner[0] + 10, corner[1]), (corner[0], corner[1] + 10)])])
    out = hydrant_distances(blds, hyd, rules=rules, method="straight")
    assert out["hydrant_distance_m"].iat[0] == pytest.approx(150.0, abs=1e-9)
    assert bool(out["hydrant_covered"].iat[0])
