"""Domain errors map to client statuses, not 500 (issue 11/13): a malformed route request is
400, a missing optional extra is 501 naming the pip install."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.errors import install_error_handlers, status_for
from geo.errors import NoRouteError, RouteRequestError, SnapError
from layers.errors import StoreBusy, missing_extra


@pytest.mark.parametrize(("exc", "status"), [
    (RouteRequestError("unknown permit zone 'NOPE'"), 400),
    (SnapError("origin 3 km from any permitted road"), 400),
    (NoRouteError("every route crosses zone Z-1"), 422),
    (missing_extra("psycopg", extra="postgis", feature="PostGIS stores"), 501),
    (StoreBusy("store busy"), 503),
])
def test_status_of_domain_errors(exc, status):
    assert status_for(exc) == status


def test_bodies_and_headers():
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/extra")
    def extra() -> None:
        raise missing_extra("playwright", extra="export", feature="PDF/PNG map export")

    @app.get("/busy")
    def busy() -> None:
        raise StoreBusy("store s.gpkg busy (another writer holds it); retry")

    c = TestClient(app)
    r = c.get("/extra")
    assert r.status_code == 501
    assert r.json() == {"code": "NotInstalled", "description": (
        "PDF/PNG map export needs the optional package 'playwright', which is not installed; "
        "install it with: pip install 'riskmap[export]'")}
    r = c.get("/busy")
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    assert r.json()["code"] == "StoreUnavailable"


def test_service_busy_is_503_with_its_retry_after():
    from api.errors import ServiceBusy

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/busy")
    def busy():
        raise ServiceBusy("2 map builds are running or queued; retry", retry_after_s=7)

    r = TestClient(app).get("/busy")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "7"
    assert r.json() == {"code": "ServiceUnavailable",
                        "description": "2 map builds are running or queued; retry"}


def test_stored_zone_with_unreadable_hours_is_422_naming_it(store_copy):
    """A zone whose hours were written around validation (an edit in the database) stops the
    route check with 422 naming the layer, the feature and the field, not a 500."""
    import sqlite3

    import shapely

    from tests.api.conftest import auth, make_client

    def bounds(blob: bytes) -> tuple[float, ...]:
        flags = blob[3]
        envelope = (0, 32, 48, 48, 64)[(flags >> 1) & 7]
        return tuple(shapely.bounds(shapely.from_wkb(blob[8 + envelope:])))

    con = sqlite3.connect(store_copy.path)
    # The GeoPackage R-tree triggers call ST_* functions (GDAL/SpatiaLite provide them).
    con.create_function("ST_IsEmpty", 1, lambda b: 0)
    for i, name in enumerate(("ST_MinX", "ST_MinY", "ST_MaxX", "ST_MaxY")):
        con.create_function(name, 1, lambda b, i=i: bounds(b)[i])
    with con:
        con.execute("UPDATE restricted_zones SET hours = '25:00-26:00' WHERE id = 'Z-1'")
    con.close()
    with make_client(store_copy.path) as client:
        r = client.get("/collections/route_check/items", headers=auth("police"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "InvalidInput"
    assert body["description"].startswith(
        "layer 'restricted_zones' in the store: 1 problem(s) stop the designated-route check")
    [p] = body["problems"]
    assert (p["layer"], p["feature"], p["field"], p["received"]) == (
        "restricted_zones", "Z-1", "hours", "25:00-26:00")


def test_map_build_settings_are_bounded():
    from pydantic import ValidationError

    from api.settings import Settings

    assert (Settings().map_build_workers, Settings().map_build_queue) == (2, 8)
    with pytest.raises(ValidationError, match="map_build_workers"):
        Settings(map_build_workers=0)
    with pytest.raises(ValidationError, match="map_build_queue"):
        Settings(map_build_queue=-1)
