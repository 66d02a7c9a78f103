"""The police map as a traffic policeman uses it (issue 14), in headless Chromium at desktop
(1440x900) and phone (390x844) sizes, served by the app with crafted layers and planted
findings; ``POST /routes`` answered by the test (the real endpoint on the demo district:
tests/maps/test_browser_demo.py).

Picking a route point on top of a finding line or a zone sets the point and opens no popup;
the form sends permits and vehicle weight/height under the names ``POST /routes`` accepts
(validated with the API's own model); the newest answer is kept when an older one arrives
late and across the EN/中 switch (no redraw, no jump); the new routes are drawn in the form's
own colours; refusals are in the UI language; zones show their hours.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from live_server import live_server

pytestmark = pytest.mark.server

playwright = pytest.importorskip("playwright.sync_api")

VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
PUBLISHED_GREEN = "#1a9641"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from crafted_maps import crafted_findings, crafted_layers

    import api.routers.maps as maps_router
    from api.app import create_app
    from api.settings import Settings
    from layers.store import GeoPackageStore

    path = tmp_path_factory.mktemp("police_ux") / "store.gpkg"
    store = GeoPackageStore(path)
    store.write(crafted_layers(n_buildings=40))
    mp = pytest.MonkeyPatch()
    mp.setattr(maps_router, "analysis_inputs", lambda store, name: (crafted_findings(), {}))
    orig = maps_router.map_options
    mp.setattr(maps_router, "map_options", lambda *a, **k: replace(orig(*a, **k)))
    app = create_app(Settings(store=str(path), anonymous_role="admin"), store=store)
    with live_server(app) as url:
        yield url
    mp.undo()


class Page:
    """A police map page with its console errors and requests."""

    def __init__(self, browser: Any, base: str, viewport: str, path: str = "/maps/police") -> None:
        from maps.browser import wait_for_map

        self.base = base
        self.page = browser.new_page(viewport=VIEWPORTS[viewport])
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(base + path, wait_until="load")
        wait_for_map(self.page)
        self.fold(False)  # a phone starts with the form folded

    def fold(self, folded: bool) -> None:
        """Fold the route form away (on a phone it covers the middle of the map) or open it."""
        if bool(self.page.locator(".riskmap-police-route.collapsed").count()) != folded:
            self.page.click(".riskmap-route-toggle")
            self.page.wait_for_timeout(50)

    def pick(self, end: str, xy: list[float]) -> None:
        """Press the form's origin/destination button, then click the map at ``xy``."""
        self.page.click(f"button[name={end}]")
        self.page.wait_for_selector(f".folium-map[data-click-mode=route-{end}]", timeout=5000)
        self.page.mouse.click(xy[0], xy[1])
        self.page.wait_for_timeout(200)

    def foreign(self) -> list[str]:
        return [u for u in self.requests
                if not (u.startswith(self.base + "/") or u.startswith("data:"))]

    def point_of(self, layer: str, key: str, value: str, zoom: int = 17) -> list[float]:
        """Page coordinates of the middle of a feature (the view centred on it)."""
        return list(self.page.evaluate("""([layer, key, value, zoom]) => {
            const app = RiskMap.app; let hit = null;
            app.layers[layer].layer.eachLayer(l => { if (l.feature.properties[key] === value) hit = l; });
            const ll = hit.getCenter ? hit.getCenter() : hit.getBounds().getCenter();
            app.map.setView(ll, zoom, {animate: false});
            const p = app.map.latLngToContainerPoint(ll);
            const r = app.map.getContainer().getBoundingClientRect();
            return [p.x + r.left, p.y + r.top]; }""", [layer, key, value, zoom]))

    def out(self) -> str:
        return str(self.page.inner_text(".riskmap-route-out"))

    def close(self) -> None:
        self.page.close()


def _config(html: str) -> dict[str, Any]:
    """The RiskMap.init config of a rendered map page."""
    start = html.index("{", html.index("RiskMap.init("))
    cfg, _end = json.JSONDecoder().raw_decode(html[start:])
    return dict(cfg)


def _feat(props: dict[str, Any], coords: list[list[float]]) -> dict[str, Any]:
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "LineString", "coordinates": coords}}


def _answer(tag: float, n: int = 2) -> dict[str, Any]:
    """A POST /routes answer whose first route is ``tag`` km long."""
    feats = [_feat({"feature": "route", "rank": float(i + 1), "length_m": tag * 1000 + i,
                    "time_s": 600.0, "risk_score": 100.0, "zone_ids": "Z-02",
                    "zones": "permit zone Z-02 (学校周边) 07:00-09:00;17:00-19:00 (off at departure)",
                    "roads": "RD-1"},
                   [[117.2495, 34.7995], [117.2530 + 0.001 * i, 34.7995 + 0.0005 * i]])
             for i in range(n)]
    feats.append(_feat({"feature": "refused", "road_id": "RD-2", "road_name": "东环路",
                        "length_m": 120.0, "reason": "hazmat_no",
                        "message": "road RD-2 refused: road signed hazmat=no"},
                       [[117.254, 34.7995], [117.254, 34.801]]))
    return {"type": "FeatureCollection", "features": feats,
            "applied": {"at": "2024-05-01T08:30:00+08:00", "rules": "abc"}}


def test_police_config_has_form_zones_and_no_old_form() -> None:
    """No browser: the police config carries the form's URL and the zones (permit zones for
    the form, hours for the labels); the notice view has no form; police.js is loaded."""
    from crafted_maps import crafted_findings, crafted_layers

    from maps.offline import render_html
    from maps.police import build_police

    html = render_html(build_police(crafted_layers(), crafted_findings()), mode="served")
    assert '<script src="/static/maps/riskmap/police.js"></script>' in html
    cfg = _config(render_html(build_police(crafted_layers(), crafted_findings()), mode="inline"))
    assert "routeForm" not in cfg
    assert cfg["police"] == {
        "url": "/routes", "departAt": None, "alternatives": 3, "labelMinZoom": 14,
        "zones": [{"id": "Z-01", "name": "水源地", "rule": "forbidden", "hours": ""},
                  {"id": "Z-02", "name": "学校周边", "rule": "permit",
                   "hours": "07:00-09:00;17:00-19:00"}]}
    roads = next(lay for lay in cfg["layers"] if lay["id"] == "roads")
    assert roads["tooltip"] == "name"
    pub = _config(render_html(build_police(crafted_layers(), None, publish=True), mode="inline"))
    assert pub["police"]["url"] is None and len(pub["police"]["zones"]) == 2


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_pick_on_features_and_form_fields_as_the_api_takes_them(
        server: str, browser: Any, viewport: str) -> None:
    from api.routers.analysis import RouteRequest

    p = Page(browser, server, viewport)
    page = p.page
    sent: list[dict[str, Any]] = []

    def handle(route: Any) -> None:
        sent.append(json.loads(route.request.post_data or "{}"))
        route.fulfill(status=200, content_type="application/geo+json", body=json.dumps(_answer(1.5)))

    page.route(f"{server}/routes", handle)
    # origin on the planted route-check finding line, destination inside zone Z-01
    xy = p.point_of("route_findings", "finding_id", "route_forbidden_zone:HR-02")
    p.pick("origin", xy)
    assert page.locator(".leaflet-popup").count() == 0
    origin = page.evaluate("RiskMap.app.routeState.origin")
    assert origin is not None and abs(origin[0] - 117.254) < 3e-5  # on the HR-02 line (2 px)
    xy = p.point_of("restricted_zones", "id", "Z-01")
    p.pick("destination", xy)
    assert page.locator(".leaflet-popup").count() == 0
    dest = page.evaluate("RiskMap.app.routeState.destination")
    assert abs(dest[0] - 117.2515) < 3e-5 and abs(dest[1] - 34.79875) < 3e-5  # Z-01 centre (2 px)
    assert page.evaluate("RiskMap.app.routeState.pick") is None
    # a click on a feature when not picking still opens its popup
    if viewport == "phone":
        p.fold(True)
    xy = p.point_of("restricted_zones", "id", "Z-02")
    page.mouse.click(xy[0], xy[1])
    page.wait_for_selector(".leaflet-popup-content .riskmap-popup", timeout=5000)
    assert "学校周边" in page.inner_text(".leaflet-popup-content")
    page.evaluate("RiskMap.app.map.closePopup()")
    p.fold(False)
    # permits, vehicle, alternatives, objective
    page.check("input[name=permits][value=Z-02]")
    page.fill("input[name=permit_other]", "Z-09, Z-10")
    page.fill("input[name=weight_t]", "31.5")
    page.fill("input[name=height_m]", "4.2")
    page.fill("input[name=alternatives]", "2")
    page.select_option("select[name=objective]", "risk")
    page.fill("input[name=depart_at]", "2024-05-01T08:30")
    page.click(".riskmap-route-go")
    page.wait_for_selector(".riskmap-route-alt", timeout=10000)
    assert len(sent) == 1
    body = sent[0]
    assert {k: body[k] for k in ("depart_at", "permits", "vehicle", "alternatives", "objective")} == {
        "depart_at": "2024-05-01T08:30:00", "permits": ["Z-02", "Z-09", "Z-10"],
        "vehicle": {"weight_t": 31.5, "height_m": 4.2}, "alternatives": 2, "objective": "risk"}
    RouteRequest.model_validate(body)  # the API's own model takes it as sent
    assert p.errors == [] and p.foreign() == []
    p.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_newest_route_kept_and_drawn_in_its_own_colours(
        server: str, browser: Any, viewport: str) -> None:
    p = Page(browser, server, viewport)
    page = p.page
    held: list[Any] = []

    def handle(route: Any) -> None:
        held.append(route)

    page.route(f"{server}/routes", handle)
    page.evaluate("RiskMap.app.setRouteEnds([117.2495, 34.7995], [117.2535, 34.7995])")
    page.click(".riskmap-route-go")          # first request: its answer is held back
    page.wait_for_timeout(300)
    p.fold(False)
    page.click(".riskmap-route-go")          # second request
    deadline = time.time() + 10
    while len(held) < 2 and time.time() < deadline:
        page.wait_for_timeout(50)
    assert len(held) == 2
    held[1].fulfill(status=200, content_type="application/geo+json", body=json.dumps(_answer(2.0, 3)))
    page.wait_for_selector(".riskmap-route-alt", timeout=10000)
    held[0].fulfill(status=200, content_type="application/geo+json", body=json.dumps(_answer(1.0, 2)))
    page.wait_for_timeout(500)
    first = page.inner_text(".riskmap-route-alt[data-rank='1']")
    assert "2 km" in first and "推荐" in first
    assert page.locator(".riskmap-route-alt").count() == 3
    m = page.locator(".folium-map")
    assert m.get_attribute("data-routes") == "3"
    colours = (m.get_attribute("data-route-colors") or "").split(",")
    assert colours == ["#0050c8", "#c51b7d", "#01857a"] and PUBLISHED_GREEN not in colours
    drawn = page.evaluate("""() => { const out = [];
        RiskMap.app.routeState.routes.eachLayer(g => g.eachLayer(l => out.push([l.options.color, l.options.dashArray || null])));
        return out; }""")
    assert PUBLISHED_GREEN not in {c for c, _d in drawn}
    assert ["#c51b7d", "10 7"] in drawn and ["#0050c8", None] in drawn  # alternative dashed, best solid
    # the zones passed, with names from the map and "off at departure", in Chinese
    assert "经过区域: 需通行证区域 Z-02 学校周边（出发时未生效）" in first
    assert "东环路 RD-2, 120 m: 禁止危化品车辆" in p.out()
    # language switch: text in English, the same route, no redraw and no jump
    view = page.evaluate("[RiskMap.app.map.getCenter().lat, RiskMap.app.map.getCenter().lng, RiskMap.app.map.getZoom()]")
    n_layers = page.evaluate("RiskMap.app.routeState.routes.getLayers().length")
    page.click(".riskmap-lang a")
    page.wait_for_timeout(300)
    first_en = page.inner_text(".riskmap-route-alt[data-rank='1']")
    assert "2 km" in first_en and "best" in first_en
    assert "Zones passed: permit zone Z-02 学校周边 (off at departure)" in first_en
    assert page.evaluate("[RiskMap.app.map.getCenter().lat, RiskMap.app.map.getCenter().lng, RiskMap.app.map.getZoom()]") == view
    assert page.evaluate("RiskMap.app.routeState.routes.getLayers().length") == n_layers
    # picking a new origin does not bring an old route back either
    p.fold(False)
    box = m.bounding_box()
    p.pick("origin", [box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7])
    assert page.evaluate("RiskMap.app.routeState.pick") is None
    assert page.evaluate("[RiskMap.app.map.getCenter().lat, RiskMap.app.map.getCenter().lng, RiskMap.app.map.getZoom()]") == view
    assert "2 km" in page.inner_text(".riskmap-route-alt[data-rank='1']")
    assert p.errors == [] and p.foreign() == []
    p.close()


REFUSAL = ("no permitted route at 08:30; every way is blocked — the direct way is refused by "
           "forbidden zone Z-01 (水源地) 00:00-24:00; road RD-2 (road signed hazmat=no)")


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_refusals_in_the_ui_language(server: str, browser: Any, viewport: str) -> None:
    p = Page(browser, server, viewport)
    page = p.page
    replies = [(422, {"code": "InvalidInput", "description": REFUSAL}),
               (400, {"code": "InvalidParameterValue",
                      "description": "origin is more than 300 m from the nearest permitted road; the "
                                     "nearest road RD-2 is 12 m away but refused: road signed "
                                     "hazmat=no; choose a point nearer a permitted road"}),
               (400, {"code": "InvalidParameterValue",
                      "description": "permit for unknown zone Z-99; permit zones are: Z-02"}),
               (422, {"code": "InvalidInput",
                      "description": "destination lies in forbidden zone Z-01 (水源地) 00:00-24:00"})]
    sent: list[Any] = []

    def handle(route: Any) -> None:
        status, body = replies[len(sent)]
        sent.append(route.request.post_data)
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    page.route(f"{server}/routes", handle)
    page.evaluate("RiskMap.app.setRouteEnds([117.2495, 34.7995], [117.2535, 34.7995])")
    expected = [
        "无可行路线: 无可通行路线（08:30）：所有路径均被阻断，直达路线被以下限制拒绝：禁行区 Z-01 水源地 全天；"
        "道路 RD-2（道路标志禁止危化品车辆通行）",
        "无可行路线: 起点距最近的可通行道路超过 300 m；最近的道路 RD-2 相距 12 m，但不可通行："
        "道路标志禁止危化品车辆通行；请选择更靠近可通行道路的点",
        "无可行路线: 通行证区域编号不存在：Z-99；可用的需通行证区域：Z-02",
        "无可行路线: 终点位于禁行区 Z-01 水源地 全天内",
    ]
    for want in expected:
        p.fold(False)
        page.click(".riskmap-route-go")
        page.wait_for_selector(".riskmap-route-error", timeout=10000)
        assert page.inner_text(".riskmap-route-error") == want
    page.click(".riskmap-lang a")
    page.wait_for_timeout(200)
    assert page.inner_text(".riskmap-route-error") == (
        "No route: destination lies in forbidden zone Z-01 (水源地) 00:00-24:00")
    page.click(".riskmap-lang a")
    # checked in the page, in Chinese, before anything is sent
    page.fill("input[name=weight_t]", "300")
    page.click(".riskmap-route-go")
    page.wait_for_timeout(200)
    assert page.inner_text(".riskmap-route-error") == "车辆总质量应为大于 0 且不超过 200 的数值（吨）"
    assert len(sent) == 4
    # Chromium itself logs each 4xx answer; nothing else may reach the console
    assert [e for e in p.errors if not e.startswith("Failed to load resource")] == []
    assert p.foreign() == []
    p.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_zone_hours_and_road_names_on_the_map(server: str, browser: Any, viewport: str) -> None:
    p = Page(browser, server, viewport)
    page = p.page
    p.point_of("restricted_zones", "id", "Z-01", zoom=17)
    page.wait_for_timeout(200)
    labels = page.locator(".riskmap-zone-label").all_inner_texts()
    assert sorted(labels) == ["Z-01 全天", "Z-02 07:00-09:00;17:00-19:00"]
    assert page.get_attribute(".folium-map", "data-zone-labels") == "2"
    tips = page.evaluate("""() => { const out = {};
        RiskMap.app.layers.restricted_zones.layer.eachLayer(l => {
            const t = l.getTooltip(); out[l.feature.properties.id] = t._content(l); });
        RiskMap.app.layers.hazmat_routes.layer.eachLayer(l => {
            const t = l.getTooltip(); out[l.feature.properties.id] = t._content(l); });
        RiskMap.app.layers.roads.layer.eachLayer(l => {
            const t = l.getTooltip(); if (t) out[l.feature.properties.id] = typeof t._content === 'function' ? t._content(l) : t._content; });
        return out; }""")
    assert tips["Z-01"] == "Z-01 · 水源地 · 禁行区 · 时段 全天"
    assert tips["Z-02"] == "Z-02 · 学校周边 · 需通行证区域 · 时段 07:00-09:00;17:00-19:00"
    assert tips["HR-01"] == "HR-01 · 一号线 · 时段 全天"
    assert "南环路" in tips["RD-1"] and "东环路" in tips["RD-2"]
    page.click(".riskmap-lang a")
    page.wait_for_timeout(200)
    assert sorted(page.locator(".riskmap-zone-label").all_inner_texts()) == [
        "Z-01 all day", "Z-02 07:00-09:00;17:00-19:00"]
    # zoomed out: the small zones' labels give way
    page.evaluate("RiskMap.app.map.setZoom(12, {animate: false})")
    page.wait_for_timeout(200)
    assert page.locator(".riskmap-zone-label").count() == 0
    assert p.errors == [] and p.foreign() == []
    p.close()


@pytest.fixture(scope="module")
def demo_server(demo_store: tuple[Any, dict[str, Any]]) -> Iterator[str]:

    from api.app import create_app
    from api.settings import Settings

    store, _manifest = demo_store
    app = create_app(Settings(store=str(store.path), anonymous_role="admin"), store=store)
    with live_server(app) as url:
        yield url


@pytest.mark.slow
def test_real_endpoint_takes_the_form_on_the_demo(
        demo_server: str, browser: Any, demo_store: tuple[Any, dict[str, Any]]) -> None:
    """The demo district's POST /routes: the form's permits and vehicle are accepted, the
    routes come back in the form's colours, the refusals in Chinese."""
    depots = [c["lonlat"] for c in demo_store[1]["cases"] if c["case"] == "depot"]
    p = Page(browser, demo_server, "desktop")
    page = p.page
    page.evaluate("(d) => RiskMap.app.setRouteEnds(d[0], d[1])", depots)
    page.check("input[name=permits][value=Z-02]")
    page.fill("input[name=weight_t]", "49")
    page.fill("input[name=height_m]", "4.5")
    page.fill("input[name=depart_at]", "2024-05-01T08:30")
    with page.expect_response(f"{demo_server}/routes") as resp:
        page.click(".riskmap-route-go")
    assert resp.value.status == 200
    assert json.loads(resp.value.request.post_data or "{}")["vehicle"] == {"weight_t": 49, "height_m": 4.5}
    page.wait_for_selector(".riskmap-route-alt", timeout=30000)
    n = int(page.get_attribute(".folium-map", "data-routes") or 0)
    assert n == page.locator(".riskmap-route-alt").count() >= 2
    assert (page.get_attribute(".folium-map", "data-route-colors") or "").startswith("#0050c8,#c51b7d")
    out = p.out()
    assert "拒绝通行道路" in out and "禁行区 Z-01 岩马水库饮用水水源保护区" in out
    assert "refused" not in out and "forbidden" not in out  # no English in the Chinese UI
    assert p.errors == [] and p.foreign() == []
    p.close()
