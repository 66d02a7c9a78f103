"""Station / micro-station reach and building coverage on hand-made networks (exact), against
networkx on a random grid, and on a real Web-Mercator street + building sample."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point, box

from geo.coverage import (
    build_fire_network,
    building_coverage,
    coverage_findings,
    reach,
    reached_pieces,
    substrings,
)
from geo.crs import analysis_crs, to_analysis
from geo.errors import CRSError
from geo.service_areas import service_areas
from layers.fire_rules import load_fire_rules

CRS = "EPSG:4548"
DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def rules():
    # round numbers: engines 10 m/s everywhere, micro crews 2 m/s
    return load_fire_rules().replace(engine_speeds_kmh={"local": 36.0}, lane_speed_kmh=36.0,
                                     micro_speed_kmh=7.2)


def _gdf(ids, geoms, **cols):
    return gpd.GeoDataFrame({"id": ids, **cols}, geometry=geoms, crs=CRS)


def _stations(rows):
    ids, kinds, turnout, geoms = zip(*rows, strict=True)
    return _gdf(list(ids), list(geoms), kind=list(kinds), turnout_s=list(turnout))


def test_narrow_lane_blocks_engine_not_micro(rules):
    roads = _gdf(["R1"], [LineString([(0, 0), (1000, 0)])], road_class=["local"])
    house = box(490, 300, 510, 320)  # 300 m up the lane, far from the road
    bld = _gdf(["B1"], [house])
    st = _stations([("S1", "station", 60.0, Point(0, 0)),
                    ("M1", "micro_station", 0.0, Point(400, 0))])
    for width, engine in ((3.9, False), (4.0, True)):
        lanes = _gdf(["FL-1"], [LineString([(500, 0), (500, 300)])], width_m=[width])
        g = build_fire_network(roads, lanes, rules=rules)
        cov = building_coverage(bld, g, st, rules=rules).iloc[0]
        assert bool(cov["engine_covered"]) is engine
        assert bool(cov["micro_covered"]) is True
        # micro crews (2 m/s, no turnout) walk 100 m of road in 50 s and 260 m up the lane in
        # the remaining 130 s: they stop 40 m short of the building, within the 50 m hose
        assert cov["micro_time_s"] == pytest.approx(180.0)
        assert cov["micro_station_id"] == "M1"
        if engine:  # 60 s turnout + 800 m at 10 m/s
            assert cov["engine_time_s"] == pytest.approx(60 + 80)
            assert cov["engine_station_id"] == "S1"
        else:
            assert np.isinf(cov["engine_time_s"]) and cov["engine_station_id"] is None


def test_five_minute_boundary_includes_turnout(rules):
    roads = _gdf(["R1"], [LineString([(0, 0), (3000, 0)])], road_class=["local"])
    g = build_fire_network(roads, None, rules=rules)
    # 300 s - 60 s turnout = 240 s at 10 m/s = 2400 m; hose 50 m reaches x = 2450
    blds = _gdf(["IN", "OUT"], [box(2450, -5, 2460, 5), box(2451, -5, 2461, 5)])
    st = _stations([("S1", "station", 60.0, Point(0, 0))])
    cov = building_coverage(blds, g, st, rules=rules).set_index("id")
    assert cov["engine_covered"].to_dict() == {"IN": True, "OUT": False}
    # without the turnout the engine would reach 3000 m: both covered
    cov0 = building_coverage(blds, g, st.assign(turnout_s=0.0), rules=rules)
    assert cov0["engine_covered"].tolist() == [True, True]
    # a station without turnout_s uses the rule default (60 s)
    cov_d = building_coverage(blds, g, st.assign(turnout_s=np.nan), rules=rules)
    assert cov_d["engine_covered"].tolist() == [True, False]
    f = coverage_findings(cov, rules=rules)
    eng = f[f["kind"] == "building_beyond_engine_reach"]
    assert eng["feature_id"].tolist() == ["OUT"]
    assert eng.iloc[0]["rule_source"].startswith("建标152")
    # the message says by how much the reach is missed
    assert eng.iloc[0]["time_s"] == pytest.approx(305.6)
    assert "estimated earliest arrival about 306 s (limit 300 s)" in eng.iloc[0]["message_en"]
    assert "约 306 s 到达（限 300 s）" in eng.iloc[0]["message_zh"]


def test_hose_distance_49_vs_51(rules):
    roads = _gdf(["R1"], [LineString([(0, 0), (1000, 0)])], road_class=["local"])
    g = build_fire_network(roads, None, rules=rules)
    blds = _gdf(["B49", "B51"], [box(100, 49, 110, 59), box(200, 51, 210, 61)])
    st = _stations([("S1", "station", 0.0, Point(0, 0)),
                    ("M1", "micro_station", 0.0, Point(150, 0))])
    cov = building_coverage(blds, g, st, rules=rules).set_index("id")
    assert cov["engine_covered"].to_dict() == {"B49": True, "B51": False}
    assert cov["micro_covered"].to_dict() == {"B49": True, "B51": False}
    f = coverage_findings(cov.reset_index(), rules=rules)
    assert sorted(f["finding_id"]) == ["building_beyond_engine_reach:B51",
                                       "building_beyond_micro_reach:B51"]
    # micro-station findings only where the scope says (e.g. buildings of old compounds)
    f = coverage_findings(cov.reset_index(), rules=rules, micro_scope=np.array([True, False]))
    assert f["finding_id"].tolist() == ["building_beyond_engine_reach:B51"]
    cov60 = building_coverage(blds, g, st, rules=rules.replace(hose_m=60.0))
    assert cov60["engine_covered"].tolist() == [True, True]


def test_station_part_way_along_an_edge_and_oneway(rules):
    roads = _gdf(["R1", "R2"], [LineString([(0, 0), (1000, 0)]),
                               LineString([(1000, 0), (1000, 1000)])],
                 road_class=["local", "local"], oneway=[False, True])
    g = build_fire_network(roads, None, rules=rules)
    st = _stations([("S1", "station", 10.0, Point(300, 5))])
    r = reach(g, st, rules=rules)
    node = {tuple(xy): i for i, xy in enumerate(g.nodes)}
    assert r.cost_s[node[(0.0, 0.0)]] == pytest.approx(10 + 30)
    assert r.cost_s[node[(1000.0, 0.0)]] == pytest.approx(10 + 70)
    assert r.cost_s[node[(1000.0, 1000.0)]] == pytest.approx(10 + 70 + 100)
    # against the one-way street nothing is reached from its far end
    st2 = _stations([("S2", "station", 0.0, Point(1000, 1000))])
    r2 = reach(g, st2, rules=rules)
    assert np.isinf(r2.cost_s[node[(0.0, 0.0)]])
    # pieces start at the station itself
    p = reached_pieces(g, r, 10 + 20)
    assert sorted(np.round(p["to_m"] - p["from_m"], 6)) == [200.0, 200.0]


def test_multi_source_matches_networkx(rules):
    rng = np.random.default_rng(7)
    n = 7
    lines, speeds = [], []
    for i in range(n):
        for j in range(n):
            if i + 1 < n:
                lines.append(LineString([(i * 100, j * 100), ((i + 1) * 100, j * 100)]))
                speeds.append(rng.choice([20.0, 30.0, 40.0]))
            if j + 1 < n:
                lines.append(LineString([(i * 100, j * 100), (i * 100, (j + 1) * 100)]))
                speeds.append(rng.choice([20.0, 30.0, 40.0]))
    roads = _gdf([f"R{k}" for k in range(len(lines))], lines, speed_kmh=speeds)
    g = build_fire_network(roads, None, rules=rules)
    pts = rng.uniform(0, 600, size=(4, 2))
    turnouts = rng.uniform(0, 90, size=4)
    st = _stations([(f"S{k}", "station", float(turnouts[k]), Point(*pts[k])) for k in range(4)])
    r = reach(g, st, rules=rules)
    G = nx.DiGraph()
    e = g.edges
    for u, v, s in zip(e["u"], e["v"], e["engine_s"], strict=True):
        G.add_edge(int(u), int(v), weight=float(s))
    best = np.full(g.n_nodes, np.inf)
    for k in range(4):
        ed = int(r.stations["edge"][k])
        pos = float(r.stations["position_m"][k])
        L, v = float(e["length_m"][ed]), float(e["engine_kmh"][ed]) / 3.6
        starts = {int(e["v"][ed]): turnouts[k] + (L - pos) / v,
                  int(e["u"][ed]): turnouts[k] + pos / v}
        for node, t0 in starts.items():
            d = nx.single_source_dijkstra_path_length(G, node, weight="weight")
            for tgt, dd in d.items():
                best[tgt] = min(best[tgt], t0 + dd)
    np.testing.assert_allclose(r.cost_s, best, rtol=1e-9)
    # the station that gets there first
    assert set(r.station) <= {0, 1, 2, 3}


def test_substrings_match_shapely():
    from shapely.ops import substring

    lines = np.array([LineString([(0, 0), (10, 0), (10, 10)]),
                      LineString([(0, 0), (3, 4)])], dtype=object)
    out = substrings(lines, np.array([5.0, 0.0]), np.array([15.0, 2.5]))
    for got, line, a, b in zip(out, lines, (5.0, 0.0), (15.0, 2.5), strict=True):
        assert got.equals(substring(line, a, b))


def test_service_areas_follow_the_network(rules):
    roads = _gdf(["R1", "R2"], [LineString([(0, 0), (3000, 0)]),
                               LineString([(1000, 0), (1000, 3000)])], road_class=["local"] * 2)
    g = build_fire_network(roads, None, rules=rules)
    st = _stations([("S1", "station", 60.0, Point(0, 0))])
    sa = service_areas(g, st, rules=rules).set_index("minutes")
    # 3 min: 120 s → 1200 m: 1200 m along R1 + 200 m up R2
    assert sa.loc[3.0, "reached_length_m"] == pytest.approx(1400.0)
    assert sa.loc[5.0, "reached_length_m"] == pytest.approx(2400 + 1400)
    assert sa.loc[8.0, "reached_length_m"] == pytest.approx(3000 + 3000)
    poly = sa.loc[5.0, "geometry"]
    assert poly.contains(Point(500, 40)) and poly.contains(Point(1000, 1390))
    # a convex hull would contain this point between the two roads; the service area does not
    assert not poly.contains(Point(1500, 1000))
    assert sa["kind"].unique().tolist() == ["station"]


# -- real data: a Web-Mercator street + building sample (momepy's Bubeneč, Prague) -------------
@pytest.fixture(scope="module")
def bubenec():
    path = DATA / "bubenec_fire.gpkg"
    streets = gpd.read_file(path, layer="streets")
    buildings = gpd.read_file(path, layer="buildings")
    return streets, buildings


def test_real_web_mercator_sample(bubenec, rules):
    streets, buildings = bubenec
    assert streets.crs.to_epsg() == 3857
    with pytest.raises(CRSError, match="Web Mercator"):
        build_fire_network(streets, None, rules=rules)
    crs = analysis_crs(streets)
    assert crs.to_epsg() == 32633  # UTM 33N at 14.4°E, 50.1°N
    s, b = to_analysis(streets, crs=crs), to_analysis(buildings, crs=crs)
    # Web-Mercator lengths are 1/cos(50.1°) ≈ 1.56 times too long
    ratio = s.length.sum() / streets.length.sum()
    assert ratio == pytest.approx(np.cos(np.radians(50.103)), abs=0.005)
    g = build_fire_network(s, None, rules=load_fire_rules())
    assert g.n_nodes >= 25
    centre = shapely.points(g.nodes).tolist()
    cx, cy = g.nodes.mean(axis=0)
    start = centre[int(np.argmin(np.hypot(g.nodes[:, 0] - cx, g.nodes[:, 1] - cy)))]
    st = gpd.GeoDataFrame({"id": ["S1", "M1"], "kind": ["station", "micro_station"],
                           "turnout_s": [60.0, 120.0]}, geometry=[start, start], crs=crs)
    cov = building_coverage(b, g, st, rules=load_fire_rules())
    n = len(cov)
    assert n == 144
    # a ~1 km district around one station: nearly every building within 5 min by engine
    eng = cov["engine_covered"].mean()
    mic = cov["micro_covered"].mean()
    assert 0.8 <= eng <= 1.0
    assert 0.0 < mic < eng  # 60 s on foot (12 km/h) after a 120 s turnout: 200 m
    t = cov["engine_time_s"].to_numpy()
    assert np.all(t[cov["engine_covered"]] <= 300.0) and np.all(t >= 60.0)
    # a shorter hose covers fewer buildings, never more
    short = building_coverage(b, g, st, rules=load_fire_rules().replace(hose_m=5.0))
    assert short["engine_covered"].sum() < cov["engine_covered"].sum()
    assert not (short["engine_covered"] & ~cov["engine_covered"]).any()


def test_engine_speed_factor_scales_posted_speeds():
    rules = load_fire_rules().replace(engine_speed_factor=0.5)
    roads = _gdf(["R1"], [LineString([(0, 0), (1000, 0)])], speed_kmh=[72.0])
    g = build_fire_network(roads, None, rules=rules)
    r = reach(g, _stations([("S1", "station", 0.0, Point(0, 0))]), rules=rules)
    assert sorted(r.cost_s) == pytest.approx([0.0, 100.0])  # 1000 m at 36 km/h


def test_buildings_and_stations_must_be_in_the_network_crs(rules):
    from geo.errors import CRSError

    roads = _gdf(["R1"], [LineString([(500_000, 3_800_000), (501_000, 3_800_000)])],
                 road_class=["local"])
    g = build_fire_network(roads, None, rules=rules)
    st = _stations([("S1", "station", 60.0, Point(500_000, 3_800_000))])
    blds = _gdf(["B"], [box(500_500, 3_800_010, 500_510, 3_800_020)])
    with pytest.raises(CRSError, match="different CRSs"):
        building_coverage(blds.to_crs("EPSG:4547"), g, st, rules=rules)
    with pytest.raises(CRSError, match="different CRSs"):
        building_coverage(blds, g, st.to_crs("EPSG:4547"), rules=rules)
    assert building_coverage(blds, g, st, rules=rules)["engine_covered"].tolist() == [True]
