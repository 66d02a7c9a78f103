"""POST /layers/{layer}/import: admin only, validated, all or nothing."""

from __future__ import annotations

import json

from tests.api.conftest import LAT0, LON0, auth, make_client


def _fc(*features):
    return json.dumps({"type": "FeatureCollection", "features": list(features)}).encode()


def _station(fid, kind="micro_station", lon=LON0, lat=LAT0):
    return {"type": "Feature", "properties": {"id": fid, "kind": kind},
            "geometry": {"type": "Point", "coordinates": [lon, lat]}}


def test_import_roles_and_append(store_copy):
    with make_client(store_copy.path) as c:
        body = _fc(_station("F-9"))
        url = "/layers/fire_stations/import?format=geojson"
        assert c.post(url, content=body).status_code == 401
        assert c.post(url, content=body, headers=auth("planner")).status_code == 403
        r = c.post(url, content=body, headers=auth("admin"))
        assert r.status_code == 200, r.text
        assert r.json()["imported"] == 1 and r.json()["total"] == 2
        ids = [f["id"] for f in c.get("/collections/fire_stations/items",
                                      headers=auth("admin")).json()["features"]]
        assert ids == ["F-1", "F-9"]


def test_import_invalid_leaves_store_unchanged(store_copy):
    before = store_copy.path.read_bytes()
    with make_client(store_copy.path) as c:
        r = c.post("/layers/fire_stations/import", headers=auth("admin"),
                   content=_fc(_station("F-7", kind="castle"), _station("F-8")))
        assert r.status_code == 422
        probs = r.json()["problems"]
        assert [(p["feature"], p["field"]) for p in probs] == [("F-7", "kind")]
        r = c.post("/layers/fire_stations/import", headers=auth("admin"),
                   content=_fc(_station("F-1")))  # id already in the layer
        assert r.status_code == 422
        assert c.post("/layers/nope/import", headers=auth("admin"),
                      content=_fc(_station("F-2"))).status_code == 400
        assert c.post("/layers/fire_stations/import?format=kml", headers=auth("admin"),
                      content=_fc(_station("F-2"))).status_code == 400
        assert c.post("/layers/fire_stations/import", headers=auth("admin"),
                      content=b"not geodata at all").status_code == 422
    assert store_copy.path.read_bytes() == before


def test_import_size_limit(store_copy):
    with make_client(store_copy.path, max_import_bytes=2048) as c:
        big = _fc(*[_station(f"F-{i}") for i in range(100)])
        r = c.post("/layers/fire_stations/import", headers=auth("admin"), content=big)
        assert r.status_code == 413
