"""``riskmap route`` / ``check routes`` / ``publish routes`` on a crafted store and the demo."""

from __future__ import annotations

import json
from datetime import time
from itertools import permutations
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, box

from api.cli import main
from api.commands.routes import parse_lonlat
from api.district import District
from api.runs.routes import published_routes
from api.service import CACHE, AnalysisService
from geo.crs import to_analysis
from geo.routing import route
from geo.zones import parse_hours
from layers.errors import InputFileError
from layers.store import GeoPackageStore


def hazmat_network(store):
    return AnalysisService(store).hazmat_network()


def run_route_check(store):
    return AnalysisService(store).route_check()


def parse_at(text):
    return District().resolve_at(text)

CRS = "EPSG:4548"
X0, Y0 = 500000.0, 3850000.0
_T = Transformer.from_crs(CRS, "EPSG:4490", always_xy=True)


def ll(x: float, y: float) -> str:
    lon, lat = _T.transform(X0 + x, Y0 + y)
    return f"{lon:.8f},{lat:.8f}"


def L(*pts):
    return LineString([(X0 + x, Y0 + y) for x, y in pts])


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> GeoPackageStore:
    """The ladder of tests/geo/test_routing.py with a forbidden zone on RZ and two routes."""
    rows = [
        ("OA", [(-200, 0), (0, 0)]), ("R1", [(0, 0), (900, 0)]), ("RZ", [(900, 0), (1100, 0)]),
        ("R3", [(1100, 0), (2000, 0)]), ("BD", [(2000, 0), (2200, 0)]),
        ("N1", [(0, 0), (0, 500)]), ("N2", [(0, 500), (2000, 500)]), ("N3", [(2000, 500), (2000, 0)]),
    ]
    roads = gpd.GeoDataFrame([{"id": r, "name": r, "road_class": "local", "speed_kmh": 36.0,
                               "hazmat": "yes", "oneway": False, "geometry": L(*p)}
                              for r, p in rows], crs=CRS)
    zones = gpd.GeoDataFrame([
        {"id": "Z-1", "name": "水源地", "kind": "water_source", "rule": "forbidden",
         "hours": "07:00-09:00", "geometry": box(X0 + 900, Y0 - 50, X0 + 1100, Y0 + 50)},
    ], crs=CRS)
    routes = gpd.GeoDataFrame([
        {"id": "HR-A", "name": "direct", "hours": "", "status": "published",
         "geometry": L((-200, 0), (2200, 0))},
        {"id": "HR-B", "name": "north", "hours": "", "status": "draft",
         "geometry": L((-200, 0), (0, 0), (0, 500), (2000, 500), (2000, 0), (2200, 0))},
    ], crs=CRS)
    path = tmp_path_factory.mktemp("routes") / "store.gpkg"
    st = GeoPackageStore(path)
    st.write({"roads": roads, "restricted_zones": zones, "hazmat_routes": routes})
    return st


def test_route_command_writes_geojson(store, tmp_path, capsys):
    out = tmp_path / "route.geojson"
    rc = main(["route", "--store", store.url, "--from", ll(-200, 20), "--to", ll(2200, -10),
               "--at", "2024-05-06T08:30", "--alternatives", "2", "--out", str(out)])
    assert rc == 0
    fc = json.loads(out.read_text(encoding="utf-8"))
    feats = [f["properties"]["feature"] for f in fc["features"]]
    assert feats == ["route", "origin", "destination", "refused"]
    r = fc["features"][0]["properties"]
    assert r["roads"] == "OA;N1;N2;N3;BD" and r["length_m"] == pytest.approx(3400.0, abs=0.01)
    ref = fc["features"][3]["properties"]
    assert ref["road_id"] == "RZ" and ref["zone_id"] == "Z-1" and ref["hours"] == "07:00-09:00"
    text = capsys.readouterr().out
    assert "refused: road RZ refused: in forbidden zone Z-1 (水源地) 07:00-09:00" in text
    # at 10:00 the zone is off
    rc = main(["route", "--store", store.url, "--from", ll(-200, 20), "--to", ll(2200, -10),
               "--at", "10:00", "--out", str(out)])
    fc = json.loads(out.read_text(encoding="utf-8"))
    assert fc["features"][0]["properties"]["roads"] == "OA;R1;RZ;R3;BD"


def test_route_command_errors(store, tmp_path, capsys):
    out = tmp_path / "r.geojson"
    rc = main(["route", "--store", store.url, "--from", ll(-1000, 0), "--to", ll(2200, 0),
               "--out", str(out)])
    assert rc == 2
    assert "origin is more than 500 m from the nearest permitted road" in capsys.readouterr().err
    rc = main(["route", "--store", store.url, "--from", "abc", "--to", ll(2200, 0),
               "--out", str(out)])
    assert rc == 2 and "expected LON,LAT" in capsys.readouterr().err
    rc = main(["route", "--store", store.url, "--from", ll(1000, 0), "--to", ll(2200, 0),
               "--at", "08:00", "--out", str(out)])
    assert rc == 2
    assert "origin lies in forbidden zone Z-1 (水源地) 07:00-09:00" in capsys.readouterr().err
    rc = main(["route", "--store", store.url, "--from", ll(-200, 20), "--to", ll(2200, 0),
               "--permit", "Z-9", "--out", str(out)])
    assert rc == 2
    assert "permit for unknown zone Z-9; permit zones are: none" in capsys.readouterr().err
    assert not out.exists()


def test_check_routes_command(store, tmp_path, capsys):
    out = tmp_path / "findings.csv"
    assert main(["check", "routes", "--store", store.url, "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8-sig")
    assert "route_in_forbidden_zone:HR-A:Z-1:1100.0" in text
    assert "HR-B" not in text
    assert "1 finding(s)" in capsys.readouterr().out


def test_publish_routes_command(store, tmp_path, capsys):
    out = tmp_path / "published.geojson"
    # HR-A runs through the forbidden zone Z-1 (07:00-09:00): refused, as the notice is
    assert main(["publish", "routes", "--store", store.url, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "publishing refused: 1 route(s) to publish (HR-A)" in err
    assert "route HR-A crosses forbidden zone Z-1 (水源地)" in err and not out.exists()
    assert main(["publish", "routes", "--store", store.url, "--out", str(out),
                 "--override", "night runs only"]) == 0
    assert "warning: published by override: route HR-A crosses forbidden zone Z-1" \
        in capsys.readouterr().out
    fc = json.loads(out.read_text(encoding="utf-8"))
    props = [(f["properties"]["feature"], f["properties"]["id"], f["properties"]["hours_text"],
              f["properties"]["override"]) for f in fc["features"]]
    assert props == [("route", "HR-A", "00:00-24:00", "night runs only"),
                     ("zone", "Z-1", "07:00-09:00", None)]
    assert published_routes(store).crs.to_epsg() == 4490


def test_network_is_cached_per_store_version(store, tmp_path):
    CACHE.clear()
    a = hazmat_network(store)
    assert hazmat_network(store) is a
    copy = GeoPackageStore(tmp_path / "copy.gpkg")
    copy.write({"roads": store.read("roads")})
    b = hazmat_network(copy)
    assert b is not a and len(b.zones) == 0
    copy.write({"restricted_zones": store.read("restricted_zones")})
    c = hazmat_network(copy)
    assert c is not b and len(c.zones) == 1


def test_parse_helpers():
    assert parse_lonlat("117.2, 34.8", "--from") == (117.2, 34.8)
    with pytest.raises(InputFileError, match="LON,LAT"):
        parse_lonlat("117.2", "--from")
    assert parse_at("08:30") == time(8, 30)
    assert parse_at("any") is None
    assert parse_at("2024-05-06T08:30").isoformat() == "2024-05-06T08:30:00+08:00"
    with pytest.raises(InputFileError, match="ISO"):
        parse_at("half past eight")


# -- the demo district ------------------------------------------------------------------------
def test_demo_hr02_reported_with_the_planted_chainage(demo_store):
    st, manifest = demo_store
    findings = run_route_check(st)
    planted = [c for c in manifest["cases"] if c["case"] == "route_through_forbidden"]
    assert planted
    for case in planted:
        hit = findings[(findings["feature_id"] == case["id"])
                       & (findings["other_id"] == case["zone_id"])
                       & (findings["kind"] == "route_in_forbidden_zone")]
        assert len(hit) == 1
        assert hit["chainage_from_m"].iloc[0] == pytest.approx(case["chainage_from_m"], abs=0.01)
        assert hit["chainage_to_m"].iloc[0] == pytest.approx(case["chainage_to_m"], abs=0.01)
    ok = [c["id"] for c in manifest["cases"] if c["case"] == "route_ok"]
    assert ok and not findings["feature_id"].isin(ok).any()


@pytest.mark.parametrize("at", [time(8, 0), time(12, 0), time(17, 30), None])
def test_demo_depot_routes_never_enter_a_forbidden_zone(demo_store, at):
    st, manifest = demo_store
    net = hazmat_network(st)
    depots = [c["lonlat"] for c in manifest["cases"] if c["case"] == "depot"]
    assert len(depots) >= 2
    zones = to_analysis(st.read("restricted_zones"), crs=net.crs)
    forb = zones[zones["rule"].isin(["forbidden", "permit"])]
    for a, b in permutations(depots, 2):
        res = route(net, a, b, at, alternatives=3)
        assert len(res.routes) >= 1
        for geom in res.routes.geometry:
            for z in forb.itertuples():
                if parse_hours(z.hours).active(at):
                    inside = shapely.length(shapely.intersection(geom, z.geometry))
                    assert inside < 1e-6, f"{z.id} entered at {at}"
        # every route passes no forbidden zone by its own account either
        assert not any("forbidden" in s and "off at departure" not in s
                       for s in "; ".join(res.routes["zones"]).split("; "))
        assert np.all(res.routes["length_m"] > 0)


def test_demo_route_cli(demo_store, tmp_path):
    st, manifest = demo_store
    depots = [c["lonlat"] for c in manifest["cases"] if c["case"] == "depot"]
    out = tmp_path / "demo_route.geojson"
    rc = main(["route", "--store", str(Path(st.url)), "--from", f"{depots[0][0]},{depots[0][1]}",
               "--to", f"{depots[1][0]},{depots[1][1]}", "--at", "08:00", "--alternatives", "3",
               "--objective", "risk", "--out", str(out)])
    assert rc == 0
    fc = json.loads(out.read_text(encoding="utf-8"))
    costs = [f["properties"]["cost"] for f in fc["features"]
             if f["properties"]["feature"] == "route"]
    assert len(costs) >= 2 and costs == sorted(costs)
