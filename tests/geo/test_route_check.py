"""Designated-route check on crafted geometry: exact chainages."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely.geometry import LineString, MultiLineString, box

from geo.findings import FINDING_COLUMNS
from geo.route_check import check_routes, stretches
from layers.hazmat_rules import load_hazmat_rules

CRS = "EPSG:4548"
PARAMS = load_hazmat_rules().check


def route(hours="", geom=None):
    g = geom if geom is not None else LineString([(x, 0) for x in range(0, 3001, 100)])
    return gpd.GeoDataFrame([{"id": "HR-T", "name": "test route", "hours": hours,
                              "status": "published", "geometry": g}], crs=CRS)


ZONES = gpd.GeoDataFrame([
    {"id": "Z-F", "name": "水源地", "kind": "water_source", "rule": "forbidden", "hours": "",
     "geometry": box(1000, -100, 1500, 100)},
    {"id": "Z-P", "name": "中心城区", "kind": "city_center", "rule": "permit",
     "hours": "07:00-09:00", "geometry": box(1600, -100, 1700, 100)},
    {"id": "Z-B", "name": "大桥", "kind": "bridge", "rule": "avoid", "hours": "",
     "geometry": box(2000, -100, 2100, 100)},
    {"id": "Z-A", "name": "avoid only", "kind": "dense_population", "rule": "avoid", "hours": "",
     "geometry": box(2200, -100, 2300, 100)},
], crs=CRS)

ROADS = gpd.GeoDataFrame([
    {"id": "R-a", "name": "a", "hazmat": "yes", "geometry": LineString([(0, 0), (200, 0)])},
    {"id": "R-no", "name": "隧道路", "hazmat": "no", "geometry": LineString([(200, 0), (600, 0)])},
    {"id": "R-b", "name": "b", "hazmat": "yes", "geometry": LineString([(600, 0), (2500, 0)])},
    {"id": "R-c", "name": "c", "hazmat": "yes", "geometry": LineString([(2800, 0), (3000, 0)])},
    {"id": "R-X", "name": "crossing", "hazmat": "no",
     "geometry": LineString([(1800, -300), (1800, 300)])},
], crs=CRS)


def test_every_rule_with_exact_chainage():
    f = check_routes(route("09:00-16:00"), zones=ZONES, roads=ROADS, params=PARAMS)
    assert list(f.columns[: len(FINDING_COLUMNS)]) == list(FINDING_COLUMNS)
    got = f[["kind", "other_id", "chainage_from_m", "chainage_to_m", "length_m",
             "severity"]].values.tolist()
    assert got == [
        ["route_on_hazmat_no_road", "R-no", 200.0, 600.0, 400.0, "critical"],
        ["route_in_forbidden_zone", "Z-F", 1000.0, 1500.0, 500.0, "critical"],
        ["route_over_bridge_tunnel_zone", "Z-B", 2000.0, 2100.0, 100.0, "high"],
        ["route_off_network", None, 2515.0, 2785.0, 270.0, "medium"],
    ]
    row = f.iloc[1]
    assert row["feature_id"] == "HR-T" and row["layer"] == "hazmat_routes"
    assert row["station"] == "K1+000.0"
    assert row["finding_id"] == "route_in_forbidden_zone:HR-T:Z-F:1000.0"
    assert row["message_en"] == ("route HR-T runs 500.0 m inside forbidden zone Z-F (水源地) "
                                 "00:00-24:00 from K1+000.0 to K1+500.0 (rule: "
                                 + row["rule_source"] + ")")
    assert row["message_zh"].endswith("（依据：" + row["rule_source"] + "）")
    assert row["zone_hours"] == "00:00-24:00" and row["route_hours"] == "09:00-16:00"
    assert "第四十九条" in row["rule_source"]
    assert row.geometry.length == pytest.approx(500.0)


def test_permit_zone_reported_when_hours_overlap():
    f = check_routes(route(""), zones=ZONES, roads=ROADS, params=PARAMS)
    p = f[f["kind"] == "route_in_permit_zone"]
    assert p[["other_id", "chainage_from_m", "chainage_to_m"]].values.tolist() == [
        ["Z-P", 1600.0, 1700.0]]
    assert p["severity"].tolist() == ["high"]
    assert p["zone_hours"].tolist() == ["07:00-09:00"]


def test_chainage_follows_route_direction_and_multiline():
    rev = LineString([(x, 0) for x in range(3000, -1, -100)])
    f = check_routes(route("09:00-16:00", rev), zones=ZONES, roads=ROADS, params=PARAMS)
    z = f[f["kind"] == "route_in_forbidden_zone"]
    assert z[["chainage_from_m", "chainage_to_m"]].values.tolist() == [[1500.0, 2000.0]]
    multi = MultiLineString([[(0, 0), (1200, 0)], [(1200, 0), (3000, 0)]])
    f = check_routes(route("09:00-16:00", multi), zones=ZONES, roads=ROADS, params=PARAMS)
    z = f[f["kind"] == "route_in_forbidden_zone"]
    assert z[["chainage_from_m", "chainage_to_m"]].values.tolist() == [[1000.0, 1500.0]]


def test_clean_route_has_no_findings():
    clean = LineString([(700, 0), (950, 0)])
    f = check_routes(route("", clean), zones=ZONES, roads=ROADS, params=PARAMS)
    assert f.empty and list(f.columns[: len(FINDING_COLUMNS)]) == list(FINDING_COLUMNS)


def test_stretches_drop_touching_and_short():
    z = box(0, 0, 10, 10)
    assert stretches(LineString([(10, -5), (10, 0)]), z) == []
    s = stretches(LineString([(-5, 5), (15, 5), (15, 8), (-5, 8)]), z)
    assert sorted(p.length for p in s) == [10.0, 10.0]
    assert stretches(LineString([(-5, 5), (15, 5)]), z, min_length_m=11) == []
