"""The 一区一策 compound report on a hand-made district (exact counts, lengths, score, rank)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import LineString, Point, box

from geo.compounds import assign_compounds, compound_report
from geo.coverage import build_fire_network, building_coverage, reach
from geo.fire_lanes import dead_end_findings, qualify_lanes
from geo.hydrants import hydrant_distances, hydrant_spacing_gaps
from layers.fire_rules import load_fire_rules

CRS = "EPSG:4548"


def _gdf(ids, geoms, **cols):
    return gpd.GeoDataFrame({"id": ids, **cols}, geometry=geoms, crs=CRS)


@pytest.fixture(scope="module")
def district():
    rules = load_fire_rules().replace(engine_speeds_kmh={"local": 36.0}, lane_speed_kmh=36.0,
                                      micro_speed_kmh=7.2)
    roads = _gdf(["R1"], [LineString([(0, 0), (1000, 0)])], road_class=["local"])
    lanes = _gdf(
        ["FL-1", "FL-2", "FL-3", "FL-4"],
        [LineString([(500, 0), (500, 300)]), LineString([(600, 0), (600, 100)]),
         LineString([(450, 0), (450, 45)]), LineString([(650, 0), (650, 30)])],
        compound_id=["C1", "C1", "C1", "C1"], width_m=[3.2, 4.5, 4.5, 4.5],
        obstructed=[False, True, False, False], marked=[True, False, True, True],
        turnaround_m=[12.0, 12.0, np.nan, np.nan])
    compounds = _gdf(["C1", "C2"], [box(400, 10, 700, 400), box(800, 10, 950, 100)],
                     name=["老街小区", "河东小区"], households=[0, 40])
    buildings = _gdf(["B1", "B2", "B3", "B4", "B5"],
                     [box(480, 300, 520, 320), box(610, 20, 630, 40), box(420, 60, 440, 80),
                      box(850, 20, 870, 40), box(100, 20, 120, 40)],
                     households=[30, 12, 8, 0, 5])
    stations = _gdf(["S1", "M1"], [Point(0, 0), Point(300, 0)],
                    kind=["station", "micro_station"], turnout_s=[60.0, 0.0])
    hydrants = _gdf(["H1", "H2"], [Point(560, 3), Point(900, 3)], status=["ok", "faulty"])
    g = build_fire_network(roads, lanes, rules=rules)
    dead = dead_end_findings(g, rules=rules)
    cov = building_coverage(buildings, g, stations, rules=rules)
    cov = hydrant_distances(cov, hydrants, rules=rules)
    gaps = hydrant_spacing_gaps(g, hydrants, rules=rules)
    report = compound_report(compounds, cov, qualify_lanes(lanes, rules=rules), rules=rules,
                             dead_ends=dead, spacing_gaps=gaps, hydrants=hydrants, graph=g,
                             engine=reach(g, stations, rules=rules))
    return rules, report.set_index("compound_id"), dead


def test_counts_add_up(district):
    _, rep, dead = district
    assert dead["feature_id"].tolist() == ["FL-3"]
    assert rep["buildings"].to_dict() == {"C1": 3, "C2": 1}
    # households: sum over buildings, or the compound's own figure when buildings have none
    assert rep["households"].to_dict() == {"C1": 50, "C2": 40}
    for key in ("engine", "micro", "hydrant"):
        assert (rep[f"{key}_covered"] + rep[f"{key}_not_covered"] == rep["buildings"]).all()
    assert rep["engine_covered"].to_dict() == {"C1": 2, "C2": 1}
    assert rep["micro_covered"].to_dict() == {"C1": 2, "C2": 0}
    assert rep["hydrant_covered"].to_dict() == {"C1": 2, "C2": 0}
    assert rep.loc["C1", "engine_share"] == pytest.approx(2 / 3)


def test_lane_lengths_by_reason(district):
    _, rep, _ = district
    c1 = rep.loc["C1"]
    assert c1["narrow_m"] == pytest.approx(300.0)
    assert c1["obstructed_m"] == pytest.approx(100.0)
    assert c1["low_m"] == 0.0
    assert c1["dead_end_m"] == pytest.approx(45.0)
    assert c1["unmarked_m"] == pytest.approx(100.0)
    assert c1["lane_length_m"] == pytest.approx(475.0)
    assert c1["unqualified_lanes_m"] == pytest.approx(445.0)
    assert rep.loc["C2", "lane_length_m"] == 0.0


def test_hydrants_and_station(district):
    _, rep, _ = district
    # gaps on the road beyond 60 m from H1 (x=560): x < 500 and x > 620, inside the compound
    # polygons grown by the 50 m hose distance (round corners: the road runs 10 m below the
    # boxes, so the grown boxes reach sqrt(50² - 10²) m beyond their sides along it)
    reach = np.sqrt(50**2 - 10**2)
    assert rep.loc["C1", "spacing_gap_m"] == pytest.approx(100 + reach + 80 + reach, abs=0.2)
    assert rep.loc["C2", "spacing_gap_m"] == pytest.approx(150 + 2 * reach, abs=0.2)
    assert rep["faulty_hydrants"].to_dict() == {"C1": 0, "C2": 1}
    assert rep["hydrant_gaps"].to_dict() == {"C1": 1, "C2": 1}
    # first engine at 10 m/s after a 60 s turnout: C1 at the lane junction x=450 (a network
    # node within the hose distance of the compound), C2 on the road below B4 (x=860)
    assert rep.loc["C1", "nearest_station"] == "S1"
    assert rep.loc["C1", "nearest_station_s"] == pytest.approx(60 + 45.0)
    assert rep.loc["C2", "nearest_station_s"] == pytest.approx(146.0)


def test_risk_score_and_rank(district):
    _, rep, _ = district
    c1 = 100 * (0.35 / 3 + 0.15 / 3 + 0.20 / 3 + 0.20 * 445 / 475)
    c2 = 100 * (0.15 + 0.20)
    assert rep.loc["C1", "risk_score"] == pytest.approx(c1, abs=0.005)
    assert rep.loc["C2", "risk_score"] == pytest.approx(c2, abs=0.005)
    assert rep["rank"].to_dict() == {"C1": 1, "C2": 2}
    assert rep.loc["C1", "deficit_lanes"] == pytest.approx(445 / 475)


def test_concrete_measures(district):
    _, rep, _ = district
    en = rep.loc["C1", "measures_en"]
    assert "widen lane FL-1 (3.2 m) to 4 m" in en
    assert "clear the obstruction on lane FL-2" in en
    assert ("build a turnaround of at least 12 m x 12 m at the end of lane FL-3 (dead end "
            "45.0 m) or connect it into a loop") in en
    assert any(m.startswith("mark fire lanes FL-2") for m in en)
    assert any(m.startswith("add a hydrant near building B1") for m in en)
    assert any(m.startswith("1 buildings cannot be reached by an engine") for m in en)
    zh = rep.loc["C1", "measures"]
    assert "将消防车道 FL-1 由 3.2 m 拓宽至 4 m" in zh and len(zh) == len(en)
    assert "repair hydrant H2" in rep.loc["C2", "measures_en"]


def test_assign_compounds_first_by_id():
    comps = _gdf(["C2", "C1"], [box(0, 0, 10, 10), box(0, 0, 20, 20)])
    geoms = np.array([box(1, 1, 2, 2), box(15, 15, 16, 16), box(50, 50, 51, 51),
                      LineString([(12, 1), (12, 19)])], dtype=object)
    assert assign_compounds(comps, geoms).tolist() == [1, 1, -1, 1]
