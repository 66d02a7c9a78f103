"""Each audience map in headless Chromium (Debian ``chromium`` via Playwright), served by the
app: no console errors, no request to any host but the app, legend and layer control present,
a click on a planted finding opens its popup with rule and shortfall, a screenshot that is
not blank, bbox loading of large layers, and the police route form."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from live_server import live_server

pytestmark = pytest.mark.server

playwright = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from crafted_maps import crafted_findings, crafted_layers

    import api.routers.maps as maps_router
    from api.app import create_app
    from api.settings import Settings
    from layers.store import GeoPackageStore

    path = tmp_path_factory.mktemp("maps") / "store.gpkg"
    store = GeoPackageStore(path)
    store.write(crafted_layers(n_buildings=400))
    mp = pytest.MonkeyPatch()
    # planted findings instead of whatever analyses are installed; a small inline limit so
    # the 400 buildings are loaded by bbox as in a 1 M-building district
    mp.setattr(maps_router, "analysis_inputs", lambda store, name: (crafted_findings(), {}))
    orig = maps_router.map_options
    mp.setattr(maps_router, "map_options",
               lambda *a, **k: replace(orig(*a, **k), inline_max=100))
    app = create_app(Settings(store=str(path), anonymous_role="admin"), store=store)
    with live_server(app) as url:
        yield url
    mp.undo()


class Watch:
    """Console errors and every request of a page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def foreign(self, base: str) -> list[str]:
        return [u for u in self.requests if not (u.startswith(base + "/") or u.startswith("data:"))]


def _open(browser: Any, url: str) -> tuple[Any, Watch]:
    from maps.browser import wait_for_map

    page = browser.new_page(viewport={"width": 1280, "height": 860})
    w = Watch(page)
    page.goto(url, wait_until="load")
    wait_for_map(page)
    page.wait_for_timeout(150)
    return page, w


def _not_blank(browser: Any, png: bytes) -> tuple[int, float]:
    """Distinct colours and share of pixels differing from the most common one (decoded by
    Chromium itself: no image library needed)."""
    page = browser.new_page()
    page.set_content("<canvas id=c></canvas>")
    out = page.evaluate("""async (b64) => {
        const img = new Image(); img.src = 'data:image/png;base64,' + b64; await img.decode();
        const c = document.getElementById('c'); c.width = img.width; c.height = img.height;
        const x = c.getContext('2d'); x.drawImage(img, 0, 0);
        const d = x.getImageData(0, 0, c.width, c.height).data; const n = {};
        for (let i = 0; i < d.length; i += 4) { const k = d[i] << 16 | d[i+1] << 8 | d[i+2]; n[k] = (n[k] || 0) + 1; }
        const counts = Object.values(n); const top = Math.max(...counts);
        return [counts.length, 1 - top / (d.length / 4)]; }""", base64.b64encode(png).decode())
    page.close()
    return int(out[0]), float(out[1])


def _click_feature(page: Any, layer: str, feature_id: str) -> str:
    """Click the middle of feature ``feature_id`` of ``layer``; return the popup text."""
    pt = page.evaluate("""([layer, fid]) => {
        const app = RiskMap.app; let hit = null;
        app.layers[layer].layer.eachLayer(l => { if (l.feature.properties.finding_id === fid ||
            l.feature.properties.id === fid) hit = l; });
        const ll = hit.getBounds ? hit.getBounds().getCenter() : hit.getLatLng();
        app.map.setView(ll, app.map.getZoom(), {animate: false});
        const p = app.map.latLngToContainerPoint(ll);
        const r = app.map.getContainer().getBoundingClientRect();
        return [p.x + r.left, p.y + r.top]; }""", [layer, feature_id])
    page.wait_for_timeout(300)
    page.mouse.click(pt[0], pt[1])
    page.wait_for_selector(".leaflet-popup-content .riskmap-popup", timeout=5000)
    return str(page.inner_text(".leaflet-popup-content"))


CLICKS = {  # map -> (findings layer, planted finding, text the popup must show)
    "planner": ("setback", "setback:B-00001", ("GB 50253-2014 4.1.6", "0.5 m", "15 m", "K0+123.4")),
    "police": ("route_findings", "route_forbidden_zone:HR-02", ("危险货物道路运输安全管理办法 第46条",)),
    "fire": ("lane_findings", "lane_narrow:FL-01", ("GB 50016-2014 7.1.8", "0.8 m")),
    "overview": ("findings", "setback:B-00001", ("GB 50253-2014 4.1.6", "0.5 m")),
}


@pytest.mark.parametrize("name", list(CLICKS))
def test_map_in_chromium(server: str, browser: Any, name: str, tmp_path: Path) -> None:
    page, w = _open(browser, f"{server}/maps/{name}")
    assert page.locator(".riskmap-layers input[type=checkbox]").count() >= 3
    assert page.locator(".riskmap-legend .riskmap-legend-layer").count() >= 3
    assert page.locator(".leaflet-control-scale").count() == 1
    for sel in (".riskmap-search input", ".riskmap-measure", ".riskmap-fullscreen", ".riskmap-lang"):
        assert page.locator(sel).count() == 1, sel
    layer, fid, expect = CLICKS[name]
    popup = _click_feature(page, layer, fid)
    for t in expect:
        assert t in popup, (t, popup)
    png = page.screenshot(path=str(tmp_path / f"{name}.png"))
    colours, share = _not_blank(browser, png)
    assert colours > 20 and share > 0.02, (colours, share)
    assert w.errors == []
    assert w.foreign(server) == []
    page.close()


def test_large_layer_loads_by_bbox_and_english_switch(server: str, browser: Any) -> None:
    page, w = _open(browser, f"{server}/maps/planner")
    page.wait_for_function("() => +document.querySelector('.folium-map').getAttribute('data-loaded-buildings') > 0")
    loaded = int(page.get_attribute(".folium-map", "data-loaded-buildings") or 0)
    assert 0 < loaded <= 400
    bbox_reqs = [u for u in w.requests if "/collections/buildings/items?bbox=" in u]
    assert bbox_reqs
    # zooming out below the threshold drops the layer and says why
    page.evaluate("RiskMap.app.map.setZoom(12)")
    page.wait_for_timeout(300)
    assert "放大至 16 级以上加载" in page.inner_text(".riskmap-legend")
    # zoomed out: the density overview of the buildings instead (GET /maps/density/buildings)
    page.wait_for_function("() => +document.querySelector('.folium-map').getAttribute('data-overview-buildings') > 0")
    assert page.evaluate("() => RiskMap.app.map.hasLayer(RiskMap.app.layers.buildings.overviewLayer)")
    assert any("/maps/density/buildings" in u for u in w.requests)
    page.click(".riskmap-lang a")
    assert "Legend" in page.inner_text(".riskmap-legend")
    assert "zoom to 16+ to load" in page.inner_text(".riskmap-legend")
    assert w.errors == [] and w.foreign(server) == []
    page.close()


def test_search_by_id_opens_popup(server: str, browser: Any) -> None:
    page, w = _open(browser, f"{server}/maps/planner")
    page.fill(".riskmap-search input", "P-02")
    page.press(".riskmap-search input", "Enter")
    page.wait_for_selector(".leaflet-popup-content .riskmap-popup")
    assert "P-02" in page.inner_text(".leaflet-popup-content")
    assert "中压A" in page.inner_text(".leaflet-popup-content")
    assert w.errors == []
    page.close()


def test_osm_basemap_requests_only_the_tile_host(server: str, browser: Any) -> None:
    from maps.browser import wait_for_map

    page = browser.new_page(viewport={"width": 800, "height": 600})
    w = Watch(page)
    page.route("https://tile.openstreetmap.org/**", lambda route: route.abort())
    page.goto(f"{server}/maps/fire?basemap=osm", wait_until="load")
    wait_for_map(page)
    hosts = {u.split("/")[2] for u in w.foreign(server)}
    assert hosts == {"tile.openstreetmap.org"}
    page.close()


def test_police_route_form_draws_alternatives(server: str, browser: Any) -> None:
    """The form's request and the drawing of a reply in the shape of ``POST /routes`` (the
    real endpoint on the demo district: tests/maps/test_browser_demo.py)."""
    page, w = _open(browser, f"{server}/maps/police")
    sent: list[dict[str, Any]] = []

    def feat(props: dict[str, Any], geom: dict[str, Any]) -> dict[str, Any]:
        return {"type": "Feature", "properties": props, "geometry": geom}

    line = {"type": "LineString", "coordinates": [[117.249, 34.7995], [117.254, 34.7995]]}
    answer = {"type": "FeatureCollection", "features": [
        feat({"feature": "route", "rank": 2.0, "length_m": 1500.0, "time_s": 200.0,
              "risk_score": 3000.0, "zones": "", "roads": "RD-1;RD-3"},
             {"type": "LineString", "coordinates": [[117.249, 34.7995], [117.254, 34.80]]}),
        feat({"feature": "route", "rank": 1.0, "length_m": 1234.5, "time_s": 150.0,
              "risk_score": 5400.0, "zones": "Z-09", "roads": "RD-1;RD-2"}, line),
        feat({"feature": "origin", "road_id": "RD-1", "snap_m": 3.0},
             {"type": "Point", "coordinates": [117.249, 34.7995]}),
        feat({"feature": "destination", "road_id": "RD-2", "snap_m": 4.0},
             {"type": "Point", "coordinates": [117.254, 34.7995]}),
        feat({"feature": "refused", "road_id": "RD-4", "road_name": "华山路", "length_m": 150.0,
              "reason": "zone_forbidden", "zone_id": "Z-01", "zone_name": "水源保护区",
              "rule": "forbidden", "hours": "00:00-24:00"}, line),
        feat({"feature": "refused", "road_id": "RD-5", "road_name": "华山路", "length_m": 150.0,
              "reason": "zone_forbidden", "zone_id": "Z-01", "zone_name": "水源保护区",
              "rule": "forbidden", "hours": "00:00-24:00"}, line),
        feat({"feature": "refused", "road_id": "RD-6", "length_m": 80.0, "reason": "hazmat_no"},
             line)]}

    def handle(route: Any) -> None:
        sent.append(json.loads(route.request.post_data or "{}"))
        route.fulfill(status=200, content_type="application/geo+json", body=json.dumps(answer))

    page.route(f"{server}/routes", handle)
    # pick origin and destination by clicking the map
    box = page.locator(".folium-map").bounding_box()
    page.click("button[name=origin]")
    page.mouse.click(box["x"] + 500, box["y"] + 600)
    page.click("button[name=destination]")
    page.mouse.click(box["x"] + 900, box["y"] + 600)
    page.fill("input[name=depart_at]", "2024-05-01T08:30")
    page.click(".riskmap-route-go")
    page.wait_for_selector(".riskmap-route-alt, .riskmap-route-error", timeout=15000)
    assert sent and sent[0]["depart_at"] == "2024-05-01T08:30:00"
    assert len(sent[0]["origin"]) == 2 and sent[0]["alternatives"] == 3
    assert sent[0]["objective"] == "time"
    assert page.locator(".riskmap-route-alt").count() == 2
    first = page.inner_text(".riskmap-route-alt[data-rank='1']")
    assert "1.23 km" in first and "2.5 分钟" in first and "风险值 5,400" in first and "Z-09" in first
    refused = page.inner_text(".riskmap-route-refused")
    assert "华山路 (2), 300 m: 禁行区 Z-01 水源保护区 00:00-24:00" in refused
    assert "RD-6, 80 m: 禁止危化品车辆" in refused
    assert page.get_attribute(".folium-map", "data-routes") == "2"
    assert page.get_attribute(".folium-map", "data-refused") == "3"
    assert w.errors == []
    page.close()


def test_publish_view_and_pdf(server: str, browser: Any, tmp_path: Path) -> None:
    page, w = _open(browser, f"{server}/maps/police?publish=true")
    assert page.locator(".riskmap-publish-header").count() == 1
    head = page.inner_text(".riskmap-publish-header")
    # the number comes from RISKMAP_NOTICE_NO, never a zone's notice text (issue 14)
    assert "未编号 / no number" in head and "某市公安局交通警察支队" in head
    assert "公交通〔2024〕12号" not in head
    assert page.locator(".riskmap-route, .riskmap-layers input[data-layer=route_findings]").count() == 0
    assert page.locator(".riskmap-legend").count() == 1
    assert w.errors == [] and w.foreign(server) == []
    page.close()
    from maps.browser import export_page

    pdf = export_page(f"{server}/maps/police?publish=true", tmp_path / "routes.pdf",
                      browser=browser)
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5000
    png = export_page(f"{server}/maps/police?publish=true", tmp_path / "routes.png",
                      browser=browser)
    colours, share = _not_blank(browser, png.read_bytes())
    assert colours > 20 and share > 0.02
