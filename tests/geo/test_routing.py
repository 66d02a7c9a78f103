"""Hazmat routing on a small hand-made ladder network with exact answers.

Layout (metres, offsets from (500000, 3850000) in EPSG:4548, CM 117°E)::

    (0,500) ───────── N2 (2000 m) ───────── (2000,500)
       │N1 500                                  │N3 500
    (-200,0)─OA─(0,0)─R1 900─(900,0)─RZ 200─(1100,0)─R3 900─(2000,0)─BD─(2200,0)
       │S1 550                                  │S3 550
    (0,-550) ──────── S2 (2000 m) ───────── (2000,-550)

Every road runs at 36 km/h = 10 m/s, so time_s = length_m / 10. Origin (-200, 20) snaps to
OA at 20 m; destination (2200, -10) snaps to BD at 10 m. Direct way 2400 m, north 3400 m,
south 3500 m.
"""

from __future__ import annotations

from datetime import datetime, time

import geopandas as gpd
import numpy as np
import pytest
from pyproj import Transformer
from shapely.geometry import LineString, Point, box

from geo.routing import NoRouteError, SnapError, Vehicle, prepare_network, route
from layers.hazmat_rules import load_hazmat_rules

CRS = "EPSG:4548"
X0, Y0 = 500000.0, 3850000.0
_T = Transformer.from_crs(CRS, "EPSG:4490", always_xy=True)
PARAMS = load_hazmat_rules().routing


def ll(x: float, y: float) -> tuple[float, float]:
    lon, lat = _T.transform(X0 + x, Y0 + y)
    return (lon, lat)


def L(*pts):
    return LineString([(X0 + x, Y0 + y) for x, y in pts])


def B(x0, y0, x1, y1):
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


ORIGIN = ll(-200, 20)
DEST = ll(2200, -10)


def roads(**overrides):
    rows = [
        ("OA", [(-200, 0), (0, 0)]), ("R1", [(0, 0), (900, 0)]), ("RZ", [(900, 0), (1100, 0)]),
        ("R3", [(1100, 0), (2000, 0)]), ("BD", [(2000, 0), (2200, 0)]),
        ("N1", [(0, 0), (0, 500)]), ("N2", [(0, 500), (2000, 500)]), ("N3", [(2000, 500), (2000, 0)]),
        ("S1", [(0, 0), (0, -550)]), ("S2", [(0, -550), (2000, -550)]),
        ("S3", [(2000, -550), (2000, 0)]),
    ]
    recs = []
    for rid, pts in rows:
        rec = {"id": rid, "name": f"road {rid}", "road_class": "local", "speed_kmh": 36.0,
               "hazmat": "yes", "oneway": False, "max_weight_t": np.nan, "geometry": L(*pts)}
        rec.update(overrides.get(rid, {}))
        recs.append(rec)
    return gpd.GeoDataFrame(recs, crs=CRS)


def zones(*rows):
    recs = [{"id": "Z-1", "name": "水源地", "kind": "water_source", "rule": "forbidden",
             "hours": "", "penalty": np.nan, "geometry": B(900, -50, 1100, 50)}]
    recs = [dict(recs[0], **r) for r in rows] if rows else []
    if not recs:
        return gpd.GeoDataFrame({"id": [], "rule": [], "hours": []},
                                geometry=gpd.GeoSeries([], crs=CRS), crs=CRS)
    return gpd.GeoDataFrame(recs, crs=CRS)


def net(z=None, r=None, buildings=None, sites=None):
    return prepare_network(r if r is not None else roads(), zones=z if z is not None else zones(),
                           buildings=buildings, sites=sites, params=PARAMS)


def roads_of(res, i=0):
    return res.routes["roads"].iloc[i].split(";")


def test_plain_route_exact_length_time_and_snap():
    res = route(net(), ORIGIN, DEST, time(8, 0))
    r = res.routes.iloc[0]
    assert roads_of(res) == ["OA", "R1", "RZ", "R3", "BD"]
    assert r["length_m"] == pytest.approx(2400.0, abs=1e-3)
    assert r["time_s"] == pytest.approx(240.0, abs=1e-3)
    assert r["cost"] == pytest.approx(240.0, abs=1e-3)
    assert res.origin["road_id"] == "OA" and res.origin["snap_m"] == pytest.approx(20.0, abs=1e-3)
    assert res.destination["road_id"] == "BD"
    assert res.destination["snap_m"] == pytest.approx(10.0, abs=1e-3)
    assert r["zones"] == "" and res.refused.empty
    g = r.geometry
    assert g.coords[0] == pytest.approx((X0 - 200, Y0)) and g.coords[-1] == pytest.approx((X0 + 2200, Y0))


def test_hazmat_speed_cap_applies_on_ordinary_roads():
    fast = roads(**{k: {"speed_kmh": 100.0} for k in ("OA", "R1", "RZ", "R3", "BD")})
    res = route(net(r=fast), ORIGIN, DEST)
    assert res.routes["time_s"].iloc[0] == pytest.approx(2400 / (60 / 3.6), abs=1e-3)


def test_forbidden_zone_enclosing_a_whole_road_is_avoided():
    # Z-1 covers RZ exactly: RZ never crosses the zone boundary, R1/R3 only touch it.
    res = route(net(zones({})), ORIGIN, DEST)
    assert roads_of(res) == ["OA", "N1", "N2", "N3", "BD"]
    assert res.routes["length_m"].iloc[0] == pytest.approx(3400.0, abs=1e-3)
    assert res.routes["zones"].iloc[0] == ""
    ref = res.refused
    assert ref["road_id"].tolist() == ["RZ"]
    assert ref["zone_id"].tolist() == ["Z-1"] and ref["rule"].tolist() == ["forbidden"]
    assert ref["hours"].tolist() == ["00:00-24:00"]
    assert ref["message"].iloc[0] == "road RZ refused: in forbidden zone Z-1 (水源地) 00:00-24:00"
    assert ref["length_m"].iloc[0] == pytest.approx(200.0)


@pytest.mark.parametrize(("at", "expected"), [
    (time(6, 58), "R1"), (time(7, 0), "N1"), (time(8, 59), "N1"), (time(9, 0), "R1"),
    (time(18, 59), "N1"), (time(19, 0), "R1"), (datetime(2024, 5, 6, 17, 30), "N1"),
    (None, "N1"),
])
def test_time_window_switches_at_the_boundary_minute(at, expected):
    n = net(zones({"hours": "07:00-09:00;17:00-19:00"}))
    res = route(n, ORIGIN, DEST, at)
    assert roads_of(res)[1] == expected
    assert res.rerouted_for == ()
    if expected == "N1":
        assert res.refused["hours"].tolist() == ["07:00-09:00;17:00-19:00"]


def test_zone_switching_on_before_the_vehicle_gets_there():
    # RZ is entered 20 s + 90 s after departure: leaving 06:58:00 it is reached 06:59:50
    # (zone off); leaving 06:59 it is reached 07:00:50, after the zone switched on
    n = net(zones({"hours": "07:00-09:00"}))
    assert roads_of(route(n, ORIGIN, DEST, datetime(2024, 5, 6, 6, 58)))[1] == "R1"
    res = route(n, ORIGIN, DEST, datetime(2024, 5, 6, 6, 59))
    assert roads_of(res)[1] == "N1"
    assert res.rerouted_for == ("Z-1",)
    assert roads_of(route(n, ORIGIN, DEST, time(6, 58, 9)))[1] == "R1"
    assert roads_of(route(n, ORIGIN, DEST, time(6, 58, 11)))[1] == "N1"


def test_permit_zone_only_with_the_permit():
    n = net(zones({"rule": "permit", "id": "Z-P"}))
    assert roads_of(route(n, ORIGIN, DEST))[1] == "N1"
    res = route(n, ORIGIN, DEST, permits=["Z-P"])
    assert roads_of(res)[1] == "R1"
    assert res.routes["zone_ids"].iloc[0] == "Z-P"
    assert res.routes["zones"].iloc[0] == "permit zone Z-P (水源地) 00:00-24:00"
    with pytest.raises(ValueError, match="unknown zone Z-X"):
        route(n, ORIGIN, DEST, permits=["Z-X"])


def test_destination_roads_usable_at_the_ends_only():
    r = roads(OA={"hazmat": "destination"}, BD={"hazmat": "destination"},
              RZ={"hazmat": "destination"})
    res = route(net(r=r), ORIGIN, DEST)
    assert roads_of(res) == ["OA", "N1", "N2", "N3", "BD"]
    assert res.refused["reason"].tolist() == ["hazmat_destination"]
    # a trip that ends on RZ may use it
    res = route(net(r=r), ORIGIN, ll(1000, 5))
    assert roads_of(res) == ["OA", "R1", "RZ"]
    assert res.routes["length_m"].iloc[0] == pytest.approx(1200.0, abs=1e-3)


@pytest.mark.parametrize(("penalty", "first"), [(5.9, "R1"), (6.1, "N1")])
def test_avoid_zone_changes_choice_only_when_penalty_outweighs_detour(penalty, first):
    # direct: 180 s + 20 s × penalty; north detour 300 s → switch above penalty 6
    res = route(net(zones({"rule": "avoid", "penalty": penalty})), ORIGIN, DEST)
    assert roads_of(res)[1] == first
    cost = res.routes["cost"].iloc[0]
    assert cost == pytest.approx(40 + 180 + 20 * penalty if first == "R1" else 340.0, abs=1e-3)
    assert res.refused.empty


def test_alternatives_differ_and_are_ranked():
    res = route(net(), ORIGIN, DEST, alternatives=3)
    rt = res.routes
    assert [roads_of(res, i)[1] for i in range(3)] == ["R1", "N1", "S1"]
    assert rt["rank"].tolist() == [1, 2, 3]
    assert rt["length_m"].round(3).tolist() == [2400.0, 3400.0, 3500.0]
    assert rt["stretch"].tolist() == pytest.approx([1.0, 3400 / 2400, 3500 / 2400], abs=1e-4)
    # they share only the access roads OA and BD (400 m)
    assert rt["overlap"].tolist() == pytest.approx([0.0, 400 / 3400, 400 / 3500], abs=1e-4)
    # k larger than the number of reasonable routes: no duplicates
    res = route(net(), ORIGIN, DEST, alternatives=6)
    assert len(res.routes) == 3
    assert res.routes["roads"].is_unique


def test_risk_score_equals_hand_computation():
    bld = gpd.GeoDataFrame({"id": ["B1"], "households": [10]},
                           geometry=[B(999, 149, 1001, 151)], crs=CRS)
    sites = gpd.GeoDataFrame({"id": ["S-1", "S-2"], "kind": ["school", "warehouse"],
                              "occupants": [500, 9999]},
                             geometry=[Point(X0 + 1500, Y0 + 350), Point(X0 + 1500, Y0 + 300)],
                             crs=CRS)
    n = net(buildings=bld, sites=sites)
    res = route(n, ORIGIN, DEST, alternatives=3)
    risk = dict(zip([roads_of(res, i)[1] for i in range(3)], res.routes["risk_score"], strict=True))
    # B1 lies 149 m from RZ and 178.9 m from R1/R3: 10 households × (0.9 + 0.2 + 0.9) km
    assert risk["R1"] == pytest.approx(20.0)
    # the school lies 150 m from N2 (2.0 km); the warehouse is not a sensitive site
    assert risk["N1"] == pytest.approx(1000.0)
    assert risk["S1"] == pytest.approx(0.0)
    res = route(n, ORIGIN, DEST, objective="risk")
    assert roads_of(res)[1] == "S1"
    # cost = risk + 0.001 per metre
    assert res.routes["cost"].iloc[0] == pytest.approx(3.5, abs=1e-6)
    res = route(n, ORIGIN, DEST, objective="distance")
    assert res.routes["cost"].iloc[0] == pytest.approx(2400.0, abs=1e-3)


def test_hazmat_no_and_weight_limit_are_refused_with_reason():
    res = route(net(r=roads(RZ={"hazmat": "no"})), ORIGIN, DEST)
    assert roads_of(res)[1] == "N1"
    assert res.refused[["road_id", "reason"]].values.tolist() == [["RZ", "hazmat_no"]]
    r = roads(RZ={"max_weight_t": 10.0})
    assert roads_of(route(net(r=r), ORIGIN, DEST, vehicle=Vehicle(weight_t=30)))[1] == "N1"
    assert roads_of(route(net(r=r), ORIGIN, DEST, vehicle=Vehicle(weight_t=10)))[1] == "R1"


def test_no_route_names_the_blocking_zone():
    z = zones({"id": "Z-3", "name": "水源地", "geometry": B(1400, -700, 1600, 700)})
    with pytest.raises(NoRouteError) as exc:
        route(net(z), ORIGIN, DEST, time(8, 30))
    msg = str(exc.value)
    assert msg.startswith("no permitted route at 08:30")
    assert "forbidden zone Z-3 (水源地) 00:00-24:00" in msg


def test_destination_in_forbidden_zone():
    z = zones({"id": "Z-03", "geometry": B(2100, -100, 2300, 100)})
    with pytest.raises(NoRouteError, match=r"^destination lies in forbidden zone Z-03 \(水源地\) "
                                           r"00:00-24:00$"):
        route(net(z), ORIGIN, DEST)


def test_snap_refused_beyond_500_m():
    with pytest.raises(SnapError, match="origin is more than 500 m from the nearest permitted road"):
        route(net(), ll(-900, 0), DEST)
    with pytest.raises(SnapError, match="not lon/lat"):
        route(net(), (34.8, 517.0), DEST)


def test_origin_and_destination_on_the_same_road():
    res = route(net(), ll(100, 5), ll(400, -5))
    assert roads_of(res) == ["R1"]
    assert res.routes["length_m"].iloc[0] == pytest.approx(300.0, abs=1e-3)
    res = route(net(), ll(400, -5), ll(100, 5))
    assert res.routes["length_m"].iloc[0] == pytest.approx(300.0, abs=1e-3)


def test_to_frame_has_routes_ends_and_refused():
    res = route(net(zones({})), ORIGIN, DEST, alternatives=2)
    fr = res.to_frame()
    assert fr["feature"].tolist() == ["route", "route", "origin", "destination", "refused"]
    assert fr.crs == CRS
