"""Hydrant radius (straight and network), spacing and faulty hydrants (exact)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import LineString, Point, box

from geo.coverage import build_fire_network
from geo.hydrants import (
    faulty_hydrant_findings,
    hydrant_distances,
    hydrant_radius_findings,
    hydrant_spacing_findings,
    hydrant_spacing_gaps,
    ok_hydrants,
)
from layers.fire_rules import load_fire_rules

CRS = "EPSG:4548"


@pytest.fixture(scope="module")
def rules():
    return load_fire_rules()


def _gdf(ids, geoms, **cols):
    return gpd.GeoDataFrame({"id": ids, **cols}, geometry=geoms, crs=CRS)


def _road_with_hydrants(gap, rules):
    # hydrants 60 m from each road end and `gap` m apart: only the gap can exceed 120 m
    length = gap + 120.0
    roads = _gdf(["R1"], [LineString([(0, 0), (length / 2, 0), (length, 0)])])
    hyd = _gdf(["H1", "H2"], [Point(60, 3), Point(60 + gap, -3)], status=["ok", "ok"])
    return build_fire_network(roads, None, rules=rules), hyd


def test_spacing_119_vs_121(rules):
    g, hyd = _road_with_hydrants(119.0, rules)
    assert len(hydrant_spacing_gaps(g, hyd, rules=rules)) == 0
    g, hyd = _road_with_hydrants(121.0, rules)
    gaps = hydrant_spacing_gaps(g, hyd, rules=rules)
    assert len(gaps) == 1
    gap = gaps.iloc[0]
    assert gap["spacing_m"] == pytest.approx(121.0)
    assert gap["max_distance_m"] == pytest.approx(60.5)
    assert gap["length_m"] == pytest.approx(1.0)  # 120 m .. 121 m along the road
    assert gap["road_ids"] == "R1"
    f = hydrant_spacing_findings(gaps, rules=rules)
    assert f["finding_id"].tolist() == ["hydrant_spacing_gap:R1@120,0"]
    assert f.iloc[0]["rule_source"] == "GB 50974-2014 7.2.5"
    assert "121.0 m > 120 m" in f.iloc[0]["message_en"]


def test_spacing_faulty_and_far_hydrants_do_not_count(rules):
    g, hyd = _road_with_hydrants(100.0, rules)
    assert len(hydrant_spacing_gaps(g, hyd, rules=rules)) == 0
    faulty = hyd.assign(status=["ok", "faulty"])
    gaps = hydrant_spacing_gaps(g, faulty, rules=rules)
    # only H1 at 60 m works: everything beyond 120 m from it is a gap, up to the end at 220 m
    assert gaps["length_m"].sum() == pytest.approx(100.0)
    assert gaps.iloc[0]["spacing_m"] == pytest.approx(2 * 160.0)
    far = hyd.assign(geometry=[Point(60, 3), Point(160, 30)])  # 30 m off the road (> 25 m)
    assert hydrant_spacing_gaps(g, far, rules=rules)["length_m"].sum() == pytest.approx(100.0)


def test_road_without_any_hydrant(rules):
    roads = _gdf(["R9"], [LineString([(0, 0), (200, 0)])])
    g = build_fire_network(roads, None, rules=rules)
    none = _gdf([], [], status=[])
    gaps = hydrant_spacing_gaps(g, none, rules=rules)
    assert gaps["length_m"].tolist() == [pytest.approx(200.0)]
    assert np.isinf(gaps.iloc[0]["spacing_m"])
    f = hydrant_spacing_findings(gaps, rules=rules)
    assert "no hydrant" in f.iloc[0]["message_en"] and np.isnan(f.iloc[0]["spacing_m"])


def test_radius_straight_and_network(rules):
    roads = _gdf(["R1"], [LineString([(0, 0), (400, 0)])])
    g = build_fire_network(roads, None, rules=rules)
    hyd = _gdf(["H1", "H2"], [Point(60, 3), Point(100, 5)], status=["ok", "faulty"])
    blds = _gdf(["B1", "B2", "B3"], [box(0, 100, 10, 110), box(100, 200, 110, 210),
                                     box(100, 60, 110, 70)])
    d = hydrant_distances(blds, hyd, rules=rules, method="straight").set_index("id")
    # straight: footprint to hydrant H1 (60, 3)
    assert d.loc["B1", "hydrant_distance_m"] == pytest.approx(np.hypot(50, 97))
    assert d.loc["B2", "hydrant_distance_m"] == pytest.approx(np.hypot(40, 197))
    assert d["hydrant_covered"].to_dict() == {"B1": True, "B2": False, "B3": True}
    assert set(d["hydrant_id"]) == {"H1"}
    n = hydrant_distances(blds, hyd, rules=rules, graph=g, method="network").set_index("id")
    # network: along the road from H1 (foot at x=60) to the foot below the building's
    # representative point, plus the straight step from that foot to the footprint
    assert n.loc["B1", "hydrant_distance_m"] == pytest.approx(55 + 100)
    assert n.loc["B2", "hydrant_distance_m"] == pytest.approx(45 + 200)
    assert n.loc["B3", "hydrant_distance_m"] == pytest.approx(45 + 60)
    assert n["hydrant_covered"].tolist() == [False, False, True]
    f = hydrant_radius_findings(n, rules=rules)
    assert f["feature_id"].tolist() == ["B1", "B2"]
    assert set(f["distance_method"]) == {"network"}
    assert "network distance" in f.iloc[0]["message_en"] and "沿路网距离" in f.iloc[0]["message_zh"]
    fs = hydrant_radius_findings(d, rules=rules)
    assert fs["feature_id"].tolist() == ["B2"] and "straight-line" in fs.iloc[0]["message_en"]
    assert fs.iloc[0]["shortfall_m"] == pytest.approx(np.hypot(40, 197) - 150)
    assert f"exceeded by {np.hypot(40, 197) - 150:.1f} m" in fs.iloc[0]["message_en"]
    with pytest.raises(ValueError, match="graph"):
        hydrant_distances(blds, hyd, rules=rules, method="network")


def test_hydrant_on_the_buildings_own_edge(rules):
    roads = _gdf(["R1"], [LineString([(0, 0), (400, 0)])])
    g = build_fire_network(roads, None, rules=rules)
    hyd = _gdf(["H1"], [Point(300, 2)], status=["ok"])
    blds = _gdf(["B1"], [box(340, 20, 360, 40)])
    n = hydrant_distances(blds, hyd, rules=rules, graph=g, method="network")
    assert n.iloc[0]["hydrant_distance_m"] == pytest.approx(50 + 20)


def test_faulty_hydrants_listed(rules):
    hyd = _gdf(["H1", "H2", "H3"], [Point(0, 0), Point(1, 1), Point(2, 2)],
               status=["ok", "faulty", None])
    f = faulty_hydrant_findings(hyd, rules=rules)
    assert f["finding_id"].tolist() == ["hydrant_faulty:H2"]
    assert ok_hydrants(hyd)["id"].tolist() == ["H1", "H3"]


def test_expressways_are_not_checked_for_spacing(rules):
    roads = _gdf(["E1", "R1"], [LineString([(0, 0), (500, 0)]), LineString([(0, 50), (500, 50)])],
                 road_class=["expressway", None])
    g = build_fire_network(roads, None, rules=rules)
    gaps = hydrant_spacing_gaps(g, _gdf([], [], status=[]), rules=rules)
    assert gaps["road_ids"].tolist() == ["R1"]  # no class counts as local
    everything = rules.replace(hydrant_road_classes=("expressway", "local"))
    gaps = hydrant_spacing_gaps(g, _gdf([], [], status=[]), rules=everything)
    assert sorted(gaps["road_ids"]) == ["E1", "R1"]


def test_hydrants_in_another_projected_crs_are_refused(rules):
    from geo.errors import CRSError

    hyd = _gdf(["H1"], [Point(500_000, 3_800_000)], status=["ok"])
    blds = _gdf(["B1"], [box(500_010, 3_800_010, 500_020, 3_800_020)])
    with pytest.raises(CRSError, match="different CRSs"):
        hydrant_distances(blds, hyd.to_crs("EPSG:4547"), rules=rules, method="straight")
