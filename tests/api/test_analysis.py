"""Analysis endpoints: the analyses list, POST /routes, route check, results cached per version."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import LineString, box

from layers.store import GeoPackageStore
from tests.api.conftest import auth, make_client

LON0, LAT0 = 117.25, 34.80
S = 0.002  # ~200 m grid step


def _grid_roads() -> gpd.GeoDataFrame:
    rows = []
    for i in range(3):
        for j in range(3):
            x, y = LON0 + i * S, LAT0 + j * S
            if i < 2:
                rows.append({"id": f"h{i}{j}", "road_class": "arterial", "hazmat": "yes",
                             "geometry": LineString([(x, y), (x + S, y)])})
            if j < 2:
                rows.append({"id": f"v{i}{j}", "road_class": "arterial", "hazmat": "yes",
                             "geometry": LineString([(x, y), (x, y + S)])})
    return gpd.GeoDataFrame(rows, crs=4490)


@pytest.fixture(scope="module")
def grid_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("grid") / "grid.gpkg"
    c = (LON0 + S, LAT0 + S)
    GeoPackageStore(path).write({
        "roads": _grid_roads(),
        "restricted_zones": gpd.GeoDataFrame([
            {"id": "Z-F", "name": "centre", "kind": "city_center", "rule": "forbidden",
             "hours": "", "geometry": box(c[0] - S / 4, c[1] - S / 4, c[0] + S / 4,
                                          c[1] + S / 4)}], crs=4490),
        "hazmat_routes": gpd.GeoDataFrame([
            {"id": "R-1", "name": "through the centre", "status": "published", "hours": "",
             "geometry": LineString([(LON0, LAT0 + S), (LON0 + 2 * S, LAT0 + S)])},
            {"id": "R-2", "name": "south edge", "status": "published", "hours": "",
             "geometry": LineString([(LON0, LAT0), (LON0 + 2 * S, LAT0)])}], crs=4490),
        "buildings": gpd.GeoDataFrame([
            {"id": "B-1", "use": "residential", "floors": 3, "households": 30,
             "geometry": box(LON0 + 0.2 * S, LAT0 + 0.1 * S, LON0 + 0.3 * S, LAT0 + 0.2 * S)}],
            crs=4490),
    })
    return path


@pytest.fixture(scope="module")
def gc(grid_path):
    with make_client(grid_path) as c:
        yield c


BODY = {"origin": [LON0, LAT0 + S], "destination": [LON0 + 2 * S, LAT0 + S],
        "objective": "distance"}


def test_routes_roles(gc):
    assert gc.post("/routes", json=BODY).status_code == 401
    assert gc.post("/routes", json=BODY, headers=auth("fire")).status_code == 403
    assert gc.post("/routes", json=BODY, headers=auth("police")).status_code == 200


def test_route_avoids_forbidden_zone(gc):
    r = gc.post("/routes", json=BODY, headers=auth("police"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/geo+json"
    feats = r.json()["features"]
    kinds = [f["properties"]["feature"] for f in feats]
    assert kinds.count("route") == 1 and "origin" in kinds and "destination" in kinds
    route = next(f for f in feats if f["properties"]["feature"] == "route")
    roads = route["properties"]["roads"]
    assert "h01" not in roads and "h11" not in roads  # the straight way crosses the centre
    assert route["properties"]["length_m"] > 2 * 180  # a detour, longer than straight
    refused = [f for f in feats if f["properties"]["feature"] == "refused"]
    assert refused and all("Z-F" in str(f["properties"]) for f in refused)
    coords = route["geometry"]["coordinates"]
    assert coords[0][0] == pytest.approx(LON0, abs=1e-6)


def test_route_with_permit_and_alternatives(gc):
    body = {**BODY, "alternatives": 3}
    r = gc.post("/routes", json=body, headers=auth("planner"))
    routes = [f for f in r.json()["features"] if f["properties"]["feature"] == "route"]
    assert 1 <= len(routes) <= 3
    assert [f["properties"]["rank"] for f in routes] == list(range(1, len(routes) + 1))


@pytest.mark.parametrize("body, status", [
    ({**BODY, "objective": "fastest"}, 400),
    ({**BODY, "origin": [34.8, 117.25]}, 400),
    ({**BODY, "alternatives": 9}, 400),
    ({**BODY, "colour": "red"}, 400),
    ({"origin": [LON0, LAT0]}, 400),
    ({**BODY, "origin": [LON0 + 1.0, LAT0]}, 400),  # far from any road
])
def test_route_bad_requests(gc, body, status):
    r = gc.post("/routes", json=body, headers=auth("police"))
    assert r.status_code == status, r.text
    assert r.json()["description"]


def test_route_check_collection(gc):
    r = gc.get("/collections/route_check/items", headers=auth("police"))
    assert r.status_code == 200, r.text
    feats = r.json()["features"]
    hits = {(f["properties"]["feature_id"], f["properties"]["kind"]) for f in feats}
    assert ("R-1", "route_in_forbidden_zone") in hits
    assert not any(fid == "R-2" and k == "route_in_forbidden_zone" for fid, k in hits)
    assert gc.get("/collections/route_check/items").status_code == 401
    r = gc.get("/collections/route_check/items?kind=route_in_forbidden_zone",
               headers=auth("police"))
    assert {f["properties"]["feature_id"] for f in r.json()["features"]} == {"R-1"}


def test_analyses_list(gc):
    ids = {a["id"] for a in gc.get("/analyses", headers=auth("police")).json()["analyses"]}
    assert "route_check" in ids and "pipeline_findings" not in ids
    assert gc.get("/analyses").json()["analyses"] == []


def test_results_cached_per_version(store_copy):
    from api import analysis as an

    calls = []
    an.register(an.AnalysisDef("test_counter", "t", "t", (), frozenset({"admin"}),
                               lambda svc: calls.append(1) or svc.store.read("fire_stations"),
                               findings=False))
    try:
        with make_client(store_copy.path) as c:
            h = auth("admin")
            assert c.get("/collections/test_counter/items", headers=h).json()[
                "numberMatched"] == 1
            c.get("/collections/test_counter/items", headers=h)
            assert len(calls) == 1
            # a registry write does not invalidate analysis results
            c.put("/registry/measures/M-1", headers=h, json={"title": "t"})
            c.get("/collections/test_counter/items", headers=h)
            assert len(calls) == 1
            store_copy.write({"fire_stations": store_copy.read("fire_stations").iloc[:0]})
            assert c.get("/collections/test_counter/items", headers=h).json()[
                "numberMatched"] == 0
            assert len(calls) == 2
    finally:
        an.ANALYSES[:] = [d for d in an.ANALYSES if d.id != "test_counter"]
