"""OGC API – Features: collections, items, paging, CRS, bbox, filters, roles."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pyproj import Transformer

from tests.api.conftest import LAT0, LON0, D, auth, make_client

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
GK = 4548  # CGCS2000 3-degree GK CM 117E


def ids(r):
    assert r.status_code == 200, r.text
    return [f["id"] for f in r.json()["features"]]


def test_conformance(client):
    conf = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conf


def test_collections_by_role(client):
    def listed(headers):
        r = client.get("/collections", headers=headers)
        assert r.status_code == 200
        return {c["id"] for c in r.json()["collections"]}

    assert listed({}) == {"hazmat_routes", "restricted_zones"}
    assert listed(auth("public")) == {"hazmat_routes", "restricted_zones"}
    assert "pipelines" in listed(auth("planner")) and "hca" in listed(auth("admin"))
    assert listed(auth("police")) == {"buildings", "hazmat_routes", "restricted_zones",
                                      "fire_stations", "route_check"}
    assert listed(auth("fire")) == {"buildings", "hazmat_routes", "restricted_zones",
                                    "fire_stations", "compounds"}


def test_collection_doc(client):
    r = client.get("/collections/buildings", headers=auth("planner"))
    assert r.status_code == 200
    doc = r.json()
    assert doc["storageCrs"] == EPSG.format(4490)
    assert doc["crs"] == [CRS84, EPSG.format(4490), EPSG.format(4326), EPSG.format(GK)]
    assert doc["extent"]["spatial"]["bbox"][0][0] == pytest.approx(LON0)
    assert {li["rel"] for li in doc["links"]} >= {"self", "items"}


@pytest.mark.parametrize("path, headers, status", [
    ("/collections/pipelines/items", {}, 401),
    ("/collections/pipelines", {}, 401),
    ("/collections/pipelines/items", "fire", 403),
    ("/collections/hca/items", "police", 403),
    ("/collections/pipelines/items", "planner", 200),
    ("/collections/hca/items", "admin", 200),
    ("/collections/hazmat_routes/items", {}, 200),
    ("/collections/restricted_zones/items", {}, 200),
    ("/collections/compounds/items", "fire", 200),
    ("/collections/compounds/items", "police", 403),
    ("/collections/nope/items", "admin", 404),
])
def test_role_access(client, path, headers, status):
    h = auth(headers) if isinstance(headers, str) else headers
    assert client.get(path, headers=h).status_code == status


def test_bad_key_401(client):
    r = client.get("/collections", headers={"Authorization": "Bearer wrong-key-123"})
    assert r.status_code == 401
    r = client.get("/collections", headers={"X-API-Key": KEYS_PLANNER})
    assert r.status_code == 200


KEYS_PLANNER = "planner-key-0001"


def test_public_sees_published_routes_only(client):
    assert ids(client.get("/collections/hazmat_routes/items")) == ["R-1"]
    assert client.get("/collections/hazmat_routes/items/R-2").status_code == 404
    assert client.get("/collections/hazmat_routes/items?status=draft").json()[
        "numberReturned"] == 0
    assert ids(client.get("/collections/hazmat_routes/items", headers=auth("police"))) == [
        "R-1", "R-2"]


def test_public_collection_has_no_extent_revealing_draft_routes(client):
    assert "extent" not in client.get("/collections/hazmat_routes").json() or client.get(
        "/collections/hazmat_routes").json()["extent"] is None
    police = client.get("/collections/hazmat_routes", headers=auth("police")).json()
    assert len(police["extent"]["spatial"]["bbox"][0]) == 4


def test_paging_reads_everything(client):
    seen, url, pages = [], "/collections/buildings/items?limit=5", 0
    while url:
        r = client.get(url, headers=auth("planner"))
        body = r.json()
        assert body["numberMatched"] == 12
        assert body["numberReturned"] == len(body["features"])
        seen += [f["id"] for f in body["features"]]
        nxt = [li["href"] for li in body["links"] if li["rel"] == "next"]
        url = nxt[0].replace("http://testserver", "") if nxt else None
        pages += 1
    assert seen == [f"B-{i:02d}" for i in range(12)]
    assert pages == 3
    r = client.get("/collections/buildings/items?limit=5&offset=5", headers=auth("planner"))
    prev = [li["href"] for li in r.json()["links"] if li["rel"] == "prev"]
    assert prev and "offset" not in prev[0]


def test_limit_clamped(small_store_path):
    with make_client(small_store_path, max_limit=5, default_limit=3) as c:
        h = auth("planner")
        assert c.get("/collections/buildings/items", headers=h).json()["numberReturned"] == 3
        assert c.get("/collections/buildings/items?limit=1000",
                     headers=h).json()["numberReturned"] == 5


@pytest.mark.parametrize("query, word", [
    ("foo=1", "foo"),
    ("limit=0", "limit"),
    ("limit=abc", "limit"),
    ("offset=-1", "offset"),
    ("bbox=1,2,3", "bbox"),
    ("bbox=1,2,x,4", "bbox"),
    ("bbox=3,2,1,4", "bbox"),
    ("bbox-crs=EPSG:4490", "bbox-crs"),
    ("bbox=1,2,3,4&bbox-crs=EPSG:3857", "bbox-crs"),
    ("crs=EPSG:9999", "crs"),
    ("crs=nonsense", "crs"),
    ("floors=two", "floors"),
    ("use=castle", "use"),
    ("datetime=2024-01-01T00:00:00Z", "datetime"),
    ("near=pipelines:P-01", "within_m"),
    ("within_m=5", "within_m"),
    ("near=pipelines:NOPE&within_m=5", "NOPE"),
    ("near=pipelines&within_m=5", "near"),
    ("near=pipelines:P-01&within_m=-1", "within_m"),
    ("limit=1&limit=2", "limit"),
    ("f=xml", "f="),
])
def test_bad_params_400(client, query, word):
    r = client.get(f"/collections/buildings/items?{query}", headers=auth("planner"))
    assert r.status_code == 400, (query, r.text)
    assert word in r.json()["description"]


def _gk_bbox(lon_min, lat_min, lon_max, lat_max):
    t = Transformer.from_crs(4490, GK, always_xy=True)
    x0, y0 = t.transform(lon_min, lat_min)
    x1, y1 = t.transform(lon_max, lat_max)
    return y0, x0, y1, x1  # north, east order


def test_bbox_same_features_in_every_crs(client):
    lon0, lat0, lon1, lat1 = LON0 + 0.8 * D, LAT0 + 0.6 * D, LON0 + 2.8 * D, LAT0 + 1.6 * D
    h = auth("planner")
    base = "/collections/buildings/items?bbox="
    want = ids(client.get(f"{base}{lon0},{lat0},{lon1},{lat1}", headers=h))
    assert want == ["B-05", "B-06"]
    for q in (
        f"{lon0},{lat0},{lon1},{lat1}&bbox-crs={CRS84}",
        f"{lat0},{lon0},{lat1},{lon1}&bbox-crs={EPSG.format(4490)}",
        f"{lat0},{lon0},{lat1},{lon1}&bbox-crs={EPSG.format(4326)}",
        "{},{},{},{}&bbox-crs={}".format(*_gk_bbox(lon0, lat0, lon1, lat1), EPSG.format(GK)),
        "{},{},{},{}&bbox-crs=EPSG:{}".format(*_gk_bbox(lon0, lat0, lon1, lat1), GK),
    ):
        assert ids(client.get(base + q, headers=h)) == want, q


def test_bbox_exact_not_envelope(client):
    # The compound C-1 polygon covers the bbox only through its envelope? No: a bbox inside a
    # gap between buildings matches no building even though rtree envelopes are float32.
    h = auth("planner")
    r = client.get(f"/collections/buildings/items?bbox={LON0 + 0.4 * D},{LAT0 + 0.4 * D},"
                   f"{LON0 + 0.9 * D},{LAT0 + 0.9 * D}", headers=h)
    assert r.json()["numberMatched"] == 0 and r.json()["features"] == []


def _coords(feature):
    return np.asarray(feature["geometry"]["coordinates"][0], dtype=float)


def test_crs_output_round_trips(client):
    h = auth("planner")
    ref = client.get("/collections/buildings/items/B-05", headers=h)
    assert ref.headers["content-crs"] == f"<{CRS84}>"
    lonlat = _coords(ref.json())
    r = client.get(f"/collections/buildings/items/B-05?crs={EPSG.format(4490)}", headers=h)
    assert r.headers["content-crs"] == f"<{EPSG.format(4490)}>"
    np.testing.assert_allclose(_coords(r.json())[:, ::-1], lonlat, atol=1e-9)
    r = client.get(f"/collections/buildings/items/B-05?crs={EPSG.format(GK)}", headers=h)
    assert r.headers["content-crs"] == f"<{EPSG.format(GK)}>"
    ne = _coords(r.json())
    assert ne[:, 0].min() > 3_800_000 and 500_000 < ne[:, 1].min() < 530_000  # north, east
    back = np.column_stack(Transformer.from_crs(GK, 4490, always_xy=True).transform(
        ne[:, 1], ne[:, 0]))
    np.testing.assert_allclose(back, lonlat, atol=1e-7)
    r = client.get(f"/collections/buildings/items?crs={EPSG.format(4326)}&limit=1", headers=h)
    assert r.headers["content-crs"] == f"<{EPSG.format(4326)}>"
    assert r.json()["features"][0]["geometry"]["coordinates"][0][0][0] == pytest.approx(
        LAT0, abs=1e-6)


def test_rfc7946_winding(client):
    ring = _coords(client.get("/collections/buildings/items/B-00",
                              headers=auth("planner")).json())
    x, y = ring[:, 0], ring[:, 1]
    assert 0.5 * np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]) > 0  # counter-clockwise


def test_property_filters(client):
    h = auth("planner")
    assert ids(client.get("/collections/buildings/items?use=school", headers=h)) == [
        "B-00", "B-03", "B-06", "B-09"]
    r = client.get("/collections/buildings/items?use=school&floors=4", headers=h)
    assert ids(r) == ["B-03"] and r.json()["numberMatched"] == 1
    r = client.get(f"/collections/buildings/items?use=school&bbox={LON0},{LAT0},"
                   f"{LON0 + 2.5 * D},{LAT0 + 1.5 * D}", headers=h)
    assert ids(r) == ["B-00", "B-06"]
    assert ids(client.get("/collections/hca/items?people_dense=true", headers=h)) == ["H-1"]
    assert ids(client.get("/collections/hca/items?people_dense=false", headers=h)) == []


def test_near_filter(client):
    h = auth("planner")
    # P-01 runs through row 0 of the buildings (distance 0); row 1 is ~46 m away.
    r = client.get("/collections/buildings/items?near=pipelines:P-01&within_m=15", headers=h)
    assert ids(r) == ["B-00", "B-01", "B-02", "B-03"]
    r = client.get("/collections/buildings/items?near=pipelines:P-01&within_m=50", headers=h)
    assert r.json()["numberMatched"] == 8
    r = client.get("/collections/buildings/items?near=pipelines:P-01&within_m=15&limit=2"
                   "&offset=2", headers=h)
    assert ids(r) == ["B-02", "B-03"]
    # police may read buildings but not pipelines
    r = client.get("/collections/buildings/items?near=pipelines:P-01&within_m=15",
                   headers=auth("police"))
    assert r.status_code == 403


def test_near_exact_threshold(client):
    # Row 1 of buildings starts at LAT0 + D; the pipe is at LAT0 + D/6: gap = 5/6 D in metres.
    t = Transformer.from_crs(4490, GK, always_xy=True)
    _, y_pipe = t.transform(LON0 + D / 6, LAT0 + D / 6)
    _, y_row = t.transform(LON0 + D / 6, LAT0 + D)
    gap = y_row - y_pipe
    h = auth("planner")
    below = client.get(f"/collections/buildings/items?near=pipelines:P-01&within_m={gap - 0.05}",
                       headers=h)
    above = client.get(f"/collections/buildings/items?near=pipelines:P-01&within_m={gap + 0.05}",
                       headers=h)
    assert below.json()["numberMatched"] == 4
    assert above.json()["numberMatched"] == 8


def test_feature_and_404(client):
    h = auth("planner")
    r = client.get("/collections/pipelines/items/P-01", headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "P-01" and body["properties"]["pressure_mpa"] == 6.3
    assert client.get("/collections/pipelines/items/P-99", headers=h).status_code == 404


def test_queryables(client):
    r = client.get("/collections/buildings/queryables", headers=auth("planner"))
    assert r.status_code == 200
    props = r.json()["properties"]
    assert props["use"]["enum"][0] == "residential"
    assert props["floors"]["type"] == "integer"


def test_html_pages(client):
    h = auth("planner")
    r = client.get("/collections/buildings/items?f=html&limit=3", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "B-02" in r.text and "<table>" in r.text
    assert "https://" not in r.text  # no CDN
    if "leaflet.js" in r.text:
        assert client.get("/ogc-assets/leaflet/leaflet.js").status_code == 200
    assert client.get("/collections?f=html", headers=h).status_code == 200
    assert client.get("/collections/buildings?f=html", headers=h).status_code == 200
    assert client.get("/collections/buildings/items/B-01?f=html", headers=h).status_code == 200


def test_openapi_30(client):
    doc = client.get("/api").json()
    assert doc["openapi"] == "3.0.3"
    text = json.dumps(doc)
    assert '"type": "null"' not in text and "prefixItems" not in text
    ops = [op.get("operationId") for p in doc["paths"].values() for op in p.values()]
    assert all(ops) and "getFeatures" in ops


def test_store_rewrite_seen(store_copy):
    import geopandas as gpd
    from shapely.geometry import Point

    with make_client(store_copy.path) as c:
        h = auth("admin")
        assert c.get("/collections/fire_stations/items", headers=h).json()["numberMatched"] == 1
        store_copy.write({"fire_stations": gpd.GeoDataFrame(
            [{"id": "F-1", "kind": "station", "geometry": Point(LON0, LAT0)},
             {"id": "F-2", "kind": "micro_station", "geometry": Point(LON0 + D, LAT0)}],
            crs=4490)})
        assert c.get("/collections/fire_stations/items", headers=h).json()["numberMatched"] == 2


def _all_pages(client, url, h):
    seen, pages = [], []
    while url:
        body = client.get(url, headers=h).json()
        pages.append(body)
        seen += [f["id"] for f in body["features"]]
        nxt = [li["href"] for li in body["links"] if li["rel"] == "next"]
        url = nxt[0].replace("http://testserver", "") if nxt else None
    return seen, pages


@pytest.mark.parametrize("query", [
    f"bbox={LON0 - D},{LAT0 - D},{LON0 + 5 * D},{LAT0 + 5 * D}",
    "near=fire_stations:F-1&within_m=60",
    "near=pipelines:P-01&within_m=50",
    f"bbox={LON0 - D},{LAT0 - D},{LON0 + 5 * D},{LAT0 + 5 * D}&use=residential",
])
def test_large_results_page_through_the_index(client, monkeypatch, query):
    import api.features as features

    h = auth("planner")
    url = f"/collections/buildings/items?{query}&limit=3"
    want, pages = _all_pages(client, url, h)
    assert all("numberMatched" in p for p in pages)
    monkeypatch.setattr(features, "LARGE_RESULT", 1)
    got, pages = _all_pages(client, url, h)
    assert got == want and want
    assert all("numberMatched" not in p for p in pages)


def test_near_point_excludes_envelope_corners(client):
    # F-1 is a point ~55 m south of row 0: B-02 straight north is within 60 m, its neighbours'
    # envelopes fall inside the search square but lie farther than 60 m.
    r = client.get("/collections/buildings/items?near=fire_stations:F-1&within_m=60",
                   headers=auth("planner"))
    assert ids(r) == ["B-02"]


def test_other_stores_served_through_read(small_store_path):
    """A store that is not a GeoPackageStore (PostGIS …) is served through ``Store.read``."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings
    from layers.store import GeoPackageStore
    from tests.api.conftest import API_KEYS

    class Wrapped:  # same data, but not a GeoPackageStore
        def __init__(self, inner):
            self._inner = inner
            self.url = inner.url

        def __getattr__(self, name):
            return getattr(self._inner, name)

    store = Wrapped(GeoPackageStore(small_store_path))
    with TestClient(create_app(Settings(store=str(small_store_path), api_keys=API_KEYS),
                               store=store)) as c:
        h = auth("planner")
        r = c.get(f"/collections/buildings/items?bbox={LON0 + 0.8 * D},{LAT0 + 0.6 * D},"
                  f"{LON0 + 2.8 * D},{LAT0 + 1.6 * D}", headers=h)
        assert ids(r) == ["B-05", "B-06"]
        assert ids(c.get("/collections/buildings/items?near=pipelines:P-01&within_m=15",
                         headers=h)) == ["B-00", "B-01", "B-02", "B-03"]
        assert c.get("/collections/buildings/items?limit=5", headers=h).json()[
            "numberMatched"] == 12
        assert c.get("/collections/buildings/queryables", headers=h).json()["properties"][
            "floors"]["type"] == "integer"
        # the registry follows the store (layers.registry_pg.registry_for), so it is served too
        assert c.get("/registry/hazards", headers=h).status_code == 200
