"""The live machine early-warning page (/maps/protection) in headless Chromium: it draws the
store's pipeline and sites, follows GET /protection/alerts, and an alert posted to
POST /protection/positions appears as a machine marker and a panel entry; no console error,
no request to another host (issue 16)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import httpx
import pytest
from live_server import live_server
from shapely.geometry import LineString, box

pytestmark = [pytest.mark.server, pytest.mark.slow]

playwright = pytest.importorskip("playwright.sync_api")

KEYS = {"planner": "planner-key-0001", "police": "police-key-0001"}
LON0, LAT0 = 117.25, 34.80


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:

    from api.app import create_app
    from api.settings import Settings
    from layers.store import GeoPackageStore

    path = tmp_path_factory.mktemp("protection") / "store.gpkg"
    store = GeoPackageStore(path)
    store.write({
        "pipelines": gpd.GeoDataFrame([
            {"id": "P-1", "medium": "crude_oil", "kind": "long_distance", "pressure_mpa": 6.3,
             "diameter_mm": 720.0, "status": "in_service",
             "geometry": LineString([(LON0, LAT0), (LON0 + 0.01, LAT0)])}], crs=4490),
        "construction_sites": gpd.GeoDataFrame([
            {"id": "CS-1", "work": "excavation", "permit_no": "许-1", "status": "active",
             "geometry": box(LON0 + 0.002, LAT0 + 0.0005, LON0 + 0.003, LAT0 + 0.001)}],
            crs=4490),
    })
    app = create_app(Settings(store=str(path), api_keys=",".join(f"{r}:{r}-user:{k}" for r, k in KEYS.items())),
                     store=store)
    with live_server(app) as url:
        yield url


def _until(cond: Any, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize(("role", "layers"), [("planner", 2), ("police", 1)])
def test_live_page_shows_a_posted_alert(server: str, browser: Any, role: str,
                                        layers: int) -> None:
    """The planner sees the pipeline and the site; the police (who may not read pipelines)
    the construction site, machines and alerts — without a failed request on the console."""
    key = KEYS[role]
    ctx = browser.new_context(viewport={"width": 1440, "height": 900},
                              extra_http_headers={"Authorization": f"Bearer {key}"})
    foreign: list[str] = []
    errors: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(server + "/") or r.request.url.startswith("data:"):
            r.continue_()
        else:
            foreign.append(r.request.url)
            r.abort()

    ctx.route("**/*", route)
    page = ctx.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/maps/protection", wait_until="load")
    page.locator("#status:has-text('live')").wait_for(timeout=15000)  # the stream is open
    # the layers the role may read are drawn (no eval: the CSP forbids it)
    _until(lambda: page.locator(".leaflet-interactive").count() >= layers)
    time.sleep(0.5)
    assert page.locator(".leaflet-interactive").count() == layers
    body = {"crs": "EPSG:4490", "positions": [
        {"machine_id": f"EX-{role}", "kind": "挖掘机", "time": "2026-12-07T09:00:00",
         "lon": LON0 + 0.005, "lat": LAT0 + 0.00002}]}  # 2.2 m from the line
    r = httpx.post(server + "/protection/positions", json=body,
                   headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and len(r.json()["alerts"]) == 1
    page.wait_for_selector(".alert.critical", timeout=10000)
    text = page.locator(".alert.critical").first.inner_text()
    assert f"机械EX-{role}(开挖)距管道P-1中心线2.2米" in text
    assert "ppl_art30_forbidden" in text
    assert page.locator("#status").inner_text() == "live · 1 alert(s)"
    assert page.locator(".leaflet-interactive").count() == layers + 1  # + the machine
    assert errors == [] and foreign == []
    ctx.close()
