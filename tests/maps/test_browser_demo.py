"""The served maps on the demo district with the real analyses (``api.analysis``) and the real
routing endpoint, in headless Chromium: clicking a planted finding of the manifest opens a
popup with its rule and shortfall (planner, fire), and the police route form returns and
draws routes between the two hazmat depots through ``POST /routes``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from live_server import live_server

pytestmark = [pytest.mark.server, pytest.mark.slow]

playwright = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def demo_server(demo_store: tuple[Any, dict[str, Any]]) -> Iterator[str]:

    from api.app import create_app
    from api.settings import Settings

    store, _manifest = demo_store
    app = create_app(Settings(store=str(store.path), anonymous_role="admin"), store=store)
    with live_server(app) as url:
        yield url


def _case(manifest: dict[str, Any], case: str, **match: Any) -> dict[str, Any]:
    return next(c for c in manifest["cases"] if c["case"] == case
                and all(c.get(k) == v for k, v in match.items()))


def _open(browser: Any, url: str) -> tuple[Any, list[str], list[str]]:
    from maps.browser import wait_for_map

    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url, wait_until="load", timeout=90000)
    wait_for_map(page, timeout_ms=60000)
    return page, errors, requests


def _click_finding(page: Any, layer: str, feature_id: str) -> str:
    """Zoom to the finding of ``layer`` about ``feature_id``, click it, return the popup text."""
    pt = page.evaluate("""([layer, fid]) => {
        const app = RiskMap.app; let hit = null;
        app.layers[layer].layer.eachLayer(l => { if (l.feature.properties.feature_id === fid) hit = l; });
        if (!hit) return null;
        const ll = hit.getBounds ? hit.getBounds().getCenter() : hit.getLatLng();
        app.map.setView(ll, 18, {animate: false});
        const p = app.map.latLngToContainerPoint(ll);
        const r = app.map.getContainer().getBoundingClientRect();
        return [p.x + r.left, p.y + r.top]; }""", [layer, feature_id])
    assert pt is not None, f"no finding about {feature_id} in layer {layer}"
    from maps.browser import wait_for_map

    wait_for_map(page)
    page.wait_for_timeout(200)
    page.mouse.click(pt[0], pt[1])
    page.wait_for_selector(".leaflet-popup-content .riskmap-popup", timeout=5000)
    return str(page.inner_text(".leaflet-popup-content"))


def test_planner_demo_setback_popup(demo_server: str, browser: Any,
                                    demo_store: tuple[Any, dict[str, Any]]) -> None:
    case = _case(demo_store[1], "setback", id="B-P04")
    page, errors, requests = _open(browser, f"{demo_server}/maps/planner")
    layers = set(page.evaluate("Object.keys(RiskMap.app.layers)"))
    assert {"setback", "occupancy", "other_findings", "location_classes", "hca_computed", "hca",
            "monitoring_coverage"} <= layers
    assert page.locator("[data-panel=coverage]").count() == 1
    popup = _click_finding(page, "setback", case["id"])
    assert "GB 50253" in popup and "4.1.5" in popup           # rule and clause
    assert f"{case['required_m']:g} m" in popup               # required distance
    assert "0.5 m" in popup                                   # shortfall
    assert "K3+675.0" in popup                                # station
    assert errors == []
    assert [u for u in requests if not u.startswith(demo_server + "/")] == []
    page.close()


def test_fire_demo_lane_popup(demo_server: str, browser: Any,
                              demo_store: tuple[Any, dict[str, Any]]) -> None:
    case = _case(demo_store[1], "lane_narrow", id="FL-01-02")
    page, errors, requests = _open(browser, f"{demo_server}/maps/fire")
    layers = set(page.evaluate("Object.keys(RiskMap.app.layers)"))
    assert {"service_areas", "compounds", "fire_lanes", "lane_findings", "hydrant_findings",
            "building_beyond_engine_reach"} <= layers
    # service areas are off by default (issue 14: 36 of them hid the compounds); on, the
    # legend lists the 3/5/8-minute bands
    assert "3 分钟" not in page.inner_text(".riskmap-legend")
    page.evaluate("() => { RiskMap.app.map.addLayer(RiskMap.app.layers.service_areas.layer);"
                  " RiskMap.app.legend.render(); }")
    page.wait_for_function("() => document.querySelector('.riskmap-legend').innerText"
                           ".includes('3 分钟')", timeout=10000)
    legend = page.inner_text(".riskmap-legend")
    assert "3 分钟" in legend and "5 分钟" in legend and "8 分钟" in legend
    page.evaluate("() => { RiskMap.app.map.removeLayer(RiskMap.app.layers.service_areas.layer); }")
    popup = _click_finding(page, "lane_findings", case["id"])
    assert "GB 50016-2014" in popup and "7.1.8" in popup
    assert f"{case['value']:g} m" in popup and "4 m" in popup and "0.8 m" in popup
    # the compound with its 一区一策 measures
    page.evaluate("() => { RiskMap.app.map.closePopup(); }")
    text = page.evaluate("""() => { let t = null; RiskMap.app.layers.compounds.layer.eachLayer(l => {
        if (l.feature.properties.id === 'C-05') t = RiskMap.popupHtml(
            RiskMap.app.layers.compounds.spec, l.feature.properties, 'zh'); }); return t; }""")
    assert text and "回车场" in text and "风险排名" in text
    assert errors == []
    assert [u for u in requests if not u.startswith(demo_server + "/")] == []
    page.close()


def test_police_route_form_real_endpoint(demo_server: str, browser: Any,
                                         demo_store: tuple[Any, dict[str, Any]]) -> None:
    manifest = demo_store[1]
    depots = [c["lonlat"] for c in manifest["cases"] if c["case"] == "depot"]
    page, errors, _requests = _open(browser, f"{demo_server}/maps/police")
    # both depots in view, then pick them by clicking the map
    pts = page.evaluate("""(d) => { const m = RiskMap.app.map;
        m.fitBounds([[d[0][1], d[0][0]], [d[1][1], d[1][0]]], {padding: [120, 120], animate: false});
        const r = m.getContainer().getBoundingClientRect();
        return d.map(p => { const q = m.latLngToContainerPoint([p[1], p[0]]); return [q.x + r.left, q.y + r.top]; }); }""",
                        depots)
    for name, pt in zip(("origin", "destination"), pts, strict=True):
        page.click(f"button[name={name}]")
        page.mouse.click(pt[0], pt[1])
    page.fill("input[name=depart_at]", "2024-05-01T08:30")
    page.click(".riskmap-route-go")
    page.wait_for_selector(".riskmap-route-alt, .riskmap-route-error", timeout=30000)
    out = page.inner_text(".riskmap-route-out")
    assert page.locator(".riskmap-route-error").count() == 0, out
    n = int(page.get_attribute(".folium-map", "data-routes") or 0)
    assert n == page.locator(".riskmap-route-alt").count() >= 2
    assert "km" in out and "分钟" in out and "风险值" in out
    # the shortest way runs through the drinking-water source zone: refused, with the reason
    assert "拒绝通行道路" in out and "Z-01" in out and "禁行区" in out
    assert int(page.get_attribute(".folium-map", "data-refused") or 0) > 0
    assert errors == []
    page.close()
