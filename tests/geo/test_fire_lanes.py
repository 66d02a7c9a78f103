"""Fire-lane qualification and dead ends on hand-made networks (exact results)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, box

from geo.coverage import build_fire_network, node_line_ends
from geo.errors import CRSError
from geo.fire_lanes import dead_end_chains, dead_end_findings, lane_findings, qualify_lanes
from layers.fire_rules import load_fire_rules

CRS = "EPSG:4548"


@pytest.fixture(scope="module")
def rules():
    return load_fire_rules()


def _lanes(rows):
    ids, geoms, attrs = [], [], []
    for lid, geom, a in rows:
        ids.append(lid)
        geoms.append(geom)
        attrs.append(a)
    cols = {k: [a.get(k) for a in attrs] for k in ("width_m", "clear_height_m", "obstructed",
                                                   "marked", "compound_id")}
    return gpd.GeoDataFrame({"id": ids, **cols}, geometry=geoms, crs=CRS)


def _road(length=400.0):
    return gpd.GeoDataFrame({"id": ["R1"], "road_class": ["local"]},
                            geometry=[LineString([(0, 0), (length, 0)])], crs=CRS)


def test_qualify_width_height_obstruction(rules):
    lanes = _lanes([
        ("FL-1", LineString([(0, 0), (0, 10)]), {"width_m": 3.9, "marked": True}),
        ("FL-2", LineString([(0, 0), (0, 10)]), {"width_m": 4.0, "clear_height_m": 4.0,
                                                 "marked": True}),
        ("FL-3", LineString([(0, 0), (0, 10)]), {"width_m": 6.0, "clear_height_m": 3.99}),
        ("FL-4", LineString([(0, 0), (0, 10)]), {"width_m": 6.0, "obstructed": True,
                                                 "marked": False}),
        ("FL-5", LineString([(0, 0), (0, 10)]), {"width_m": 0.8, "marked": True}),
    ])
    q = qualify_lanes(lanes, rules=rules)
    assert q["narrow"].tolist() == [True, False, False, False, True]
    assert q["low"].tolist() == [False, False, True, False, False]
    assert q["obstructed"].tolist() == [False, False, False, True, False]
    assert q["unmarked"].tolist() == [False, False, True, True, False]
    assert q["engine_ok"].tolist() == [False, True, False, False, False]
    # micro crews pass narrow (>= 1 m) and obstructed lanes, not a 0.8 m gap
    assert q["micro_ok"].tolist() == [True, True, True, True, False]


def test_lane_findings_cite_the_clause(rules):
    lanes = _lanes([
        ("FL-12", LineString([(0, 0), (0, 30)]), {"width_m": 3.2, "marked": True,
                                                  "compound_id": "C-1"}),
        ("FL-13", LineString([(5, 0), (5, 30)]), {"width_m": 4.5, "clear_height_m": 3.6,
                                                  "marked": True}),
        ("FL-07", LineString([(9, 0), (9, 30)]), {"width_m": 4.5, "obstructed": True,
                                                  "marked": False}),
    ])
    f = lane_findings(lanes, rules=rules)
    assert sorted(f["finding_id"]) == ["lane_low:FL-13", "lane_narrow:FL-12",
                                       "lane_obstructed:FL-07", "lane_unmarked:FL-07"]
    narrow = f[f["kind"] == "lane_narrow"].iloc[0]
    assert narrow["value_m"] == 3.2 and narrow["required_m"] == 4.0
    assert narrow["shortfall_m"] == pytest.approx(0.8)
    assert narrow["length_m"] == pytest.approx(30.0)
    assert narrow["compound_id"] == "C-1"
    assert narrow["rule_source"] == "GB 50016-2014(2018年版) 7.1.8"
    assert "3.2 m" in narrow["message_en"] and "7.1.8" in narrow["message_zh"]
    assert "(0.80 m short)" in narrow["message_en"] and "差 0.80 m" in narrow["message_zh"]
    low = f[f["kind"] == "lane_low"].iloc[0]
    assert low["value_m"] == 3.6 and low["severity"] == "high"
    assert f[f["kind"] == "lane_unmarked"].iloc[0]["severity"] == "low"


def test_lanes_in_degrees_are_refused(rules):
    lanes = _lanes([("FL-1", LineString([(117.0, 35.0), (117.0, 35.001)]), {"width_m": 4.0})])
    with pytest.raises(CRSError):
        qualify_lanes(lanes.set_crs(4490, allow_override=True), rules=rules)


def test_node_line_ends_joins_t_junctions():
    road = LineString([(0, 0), (100, 0)])
    lane = LineString([(40, 0.3), (40, 50)])
    out = node_line_ends(np.array([road, lane], dtype=object), snap_m=0.5)
    assert list(out[0].coords) == [(0, 0), (40, 0), (100, 0)]
    assert list(out[1].coords) == list(lane.coords)


def _dead_end_network():
    lanes = _lanes([
        ("FL-45", LineString([(50, 0), (50, 45)]), {"width_m": 4.0, "compound_id": "C-1"}),
        ("FL-35", LineString([(100, 0), (100, 35)]), {"width_m": 4.0}),
        ("FL-T", LineString([(150, 0), (150, 45)]), {"width_m": 4.0}),
        ("FL-A", LineString([(200, 0), (200, 25)]), {"width_m": 4.0}),
        ("FL-B", LineString([(200, 25), (200, 50)]), {"width_m": 4.0}),
        # a lane ending in a loop (the loop is the turnaround)
        ("FL-L", LineString([(300, 0), (300, 60)]), {"width_m": 4.0}),
        ("FL-LOOP", LineString([(300, 60), (290, 70), (300, 80), (310, 70), (300, 60)]),
         {"width_m": 4.0}),
    ])
    return _road(), lanes


def test_dead_end_45_flagged_35_not_turnaround_not(rules):
    roads, lanes = _dead_end_network()
    g = build_fire_network(roads, lanes, rules=rules)
    turn = gpd.GeoDataFrame({"id": ["T1"]}, geometry=[box(144, 45, 156, 57)], crs=CRS)
    f = dead_end_findings(g, rules=rules, turnarounds=turn)
    assert sorted(f["feature_id"]) == ["FL-45", "FL-B"]
    fl45 = f[f["feature_id"] == "FL-45"].iloc[0]
    assert fl45["length_m"] == pytest.approx(45.0)
    assert fl45["required_m"] == 40.0 and fl45["turnaround_required_m"] == 12.0
    assert fl45["compound_id"] == "C-1"
    assert "GB 55037-2022 3.4.5" in fl45["rule_source"] and "7.1.9" in fl45["rule_source"]
    assert "(> 40 m by 5.0 m)" in fl45["message_en"]
    chain = f[f["feature_id"] == "FL-B"].iloc[0]
    assert chain["length_m"] == pytest.approx(50.0) and chain["lane_ids"] == "FL-A;FL-B"
    # without the turnaround polygon FL-T is flagged too
    f2 = dead_end_findings(g, rules=rules)
    assert sorted(f2["feature_id"]) == ["FL-45", "FL-B", "FL-T"]


def test_turnaround_too_small_or_high_rise(rules):
    roads, lanes = _dead_end_network()
    g = build_fire_network(roads, lanes, rules=rules)
    small = gpd.GeoDataFrame({"id": ["T1"]}, geometry=[box(144.5, 45, 155.5, 56)], crs=CRS)
    assert "FL-T" in set(dead_end_findings(g, rules=rules, turnarounds=small)["feature_id"])
    ok = gpd.GeoDataFrame({"id": ["T1"]}, geometry=[box(144, 45, 156, 57)], crs=CRS)
    tower = gpd.GeoDataFrame({"id": ["B1"], "floors": [18]},
                             geometry=[box(160, 30, 180, 50)], crs=CRS)
    f = dead_end_findings(g, rules=rules, turnarounds=ok, buildings=tower)
    t = f[f["feature_id"] == "FL-T"].iloc[0]
    assert t["turnaround_required_m"] == 15.0 and "15 m x 15 m" in t["message_en"]
    big = gpd.GeoDataFrame({"id": ["T1"]}, geometry=[box(142, 45, 157, 60)], crs=CRS)
    assert "FL-T" not in set(dead_end_findings(g, rules=rules, turnarounds=big,
                                               buildings=tower)["feature_id"])
    heavy = rules.replace(heavy_engines=True)
    f = dead_end_findings(g, rules=heavy, turnarounds=big)
    assert f[f["feature_id"] == "FL-T"].iloc[0]["turnaround_required_m"] == 18.0


def test_turnaround_attribute_on_the_lane(rules):
    roads, lanes = _dead_end_network()
    lanes["turnaround_m"] = np.where(lanes["id"] == "FL-45", 12.0, np.nan)
    g = build_fire_network(roads, lanes, rules=rules)
    assert "FL-45" not in set(dead_end_findings(g, rules=rules)["feature_id"])


def test_dead_end_chains_and_unconnected_lane(rules):
    roads, lanes = _dead_end_network()
    extra = _lanes([("FL-X", LineString([(500, 50), (500, 100)]), {"width_m": 4.0})])
    lanes = gpd.GeoDataFrame(
        pd.concat([lanes, extra], ignore_index=True), crs=CRS)
    g = build_fire_network(roads, lanes, rules=rules)
    ch = dead_end_chains(g).set_index("lane_id")
    assert sorted(ch.index) == ["FL-35", "FL-45", "FL-B", "FL-T", "FL-X"]
    assert not ch.loc["FL-X", "connected"] and ch.loc["FL-45", "connected"]
    assert ch.loc["FL-35", "length_m"] == pytest.approx(35.0)
    f = dead_end_findings(g, rules=rules)
    x = f[f["feature_id"] == "FL-X"].iloc[0]
    assert "not connected" in x["message_en"]
