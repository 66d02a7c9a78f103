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
