"""The maps for their users (issue 14): the road base with names, findings visible at the
district view (clusters) and in a filterable list that opens them, the planner's required
setback lines, measuring on top of features, the overview by registry status with one
coverage figure, and the phone layout (nothing covers more than a third of the map).

Build tests (no browser) check the configs exactly; the Chromium tests (server, network to
other hosts blocked) run each item at desktop 1440x900 and phone 390x844."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from crafted_maps import LAT0, LON0, crafted_findings, crafted_layers
from live_server import live_server
from shapely.geometry import LineString

from geo.crs import analysis_crs
from maps.base import MapOptions
from maps.offline import render_html
from maps.overview import HAZARD_URL, build_overview, progress_rows
from maps.planner import build_planner, coverage_share, fmt_share, setback_lines

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def _config(html: str) -> dict[str, Any]:
    m = re.search(r"RiskMap\.init\([^,]+, (\{.*\})\);\n", html)
    assert m is not None
    return json.loads(m.group(1))  # type: ignore[no-any-return]


def _layer(cfg: dict[str, Any], lid: str) -> dict[str, Any]:
    return next(la for la in cfg["layers"] if la["id"] == lid)


# --- builds (no browser) --------------------------------------------------------------------
def test_setback_lines_sit_at_the_required_clear_distance_of_each_rule_row() -> None:
    from maps.planner import _default_setback_rules

    pipes = crafted_layers()["pipelines"]
    lines = setback_lines(pipes, _default_setback_rules())
    assert lines.crs.to_epsg() == 4490
    got = lines.drop(columns="geometry").set_index("id")
    assert list(got.index) == ["P-01:gb50253_oil_crowded_buildings", "P-01:gb50253_oil_factories",
                               "P-02:gb50028_medium_a_foundation"]
    assert got["label_zh"].tolist() == ["间距 15m（GB 50253 §4.1.5）", "间距 20m（GB 50253 §4.1.5）",
                                        "间距 1.5m（GB 50028 表6.3.3-1）"]
    assert got["offset_m"].tolist() == [15.36, 20.36, 1.609]  # required + OD/2 (720, 219 mm)
    # both sides, every point at the offset from the centre line (metres, analysis CRS)
    crs = analysis_crs(pipes)
    proj, centre = lines.to_crs(crs), pipes.to_crs(crs).set_index("id").geometry
    for (pid, off), g in zip(zip(got["pipeline_id"], got["offset_m"], strict=True),
                             proj.geometry, strict=True):
        assert shapely.get_num_geometries(g) == 2
        assert abs(g.distance(centre[pid]) - off) < 1e-3
        assert abs(g.hausdorff_distance(centre[pid]) - off) < 1e-3
    # a district without setback rows draws none
    assert len(setback_lines(pipes, [])) == 0


def test_planner_config_roads_setbacks_clusters_cameras_and_one_coverage_figure() -> None:
    layers = dict(crafted_layers())
    pipe = layers["pipelines"].geometry.iloc[0]
    layers["monitoring_coverage"] = gpd.GeoDataFrame(
        {"hca_id": ["H-1", "H-2"], "pipeline_id": ["P-01", "P-01"], "grade": ["II", "II"],
         "length_m": [600.0, 400.0], "covered_m": [600.0, 397.0], "coverage": [1.0, 0.9925],
         "cameras": [2, 1]}, geometry=[pipe, pipe], crs=4490)
    cfg = _config(render_html(build_planner(layers, crafted_findings()), mode="inline"))
    ids = [la["id"] for la in cfg["layers"]]
    assert ids[0] == "roads"  # the base, drawn first
    roads = _layer(cfg, "roads")
    assert roads["visible"] is True and roads["labelField"] == "name"
    assert roads["labelMinZoom"] == 15 and roads["tooltip"] == "name"
    assert sorted(f["properties"]["name"] for f in roads["data"]["features"]) == ["东环路", "南环路"]
    sb = _layer(cfg, "setback_lines")
    assert sb["visible"] is True and sb["labelField"] == {"zh": "label_zh", "en": "label_en"}
    assert {"label_zh", "label_en"} <= set(sb["data"]["features"][0]["properties"])
    assert len(sb["data"]["features"]) == 3
    assert _layer(cfg, "cameras")["visible"] is False
    assert _layer(cfg, "cameras")["style"]["fillOpacity"] <= 0.06
    for lid in ("occupancy", "setback", "other_findings"):
        assert _layer(cfg, lid)["cluster"] == {"maxZoom": 15}
    assert "cluster" not in roads
    panel = next(p for p in cfg["panels"] if p["id"] == "coverage")
    # 997 of 1000 m: "99.7 %" against each target, red where it misses
    assert [(r["cells"], r["status"]) for r in panel["rows"]] == [
        (["2020", "30 %", "99.7 %"], "ok"), (["2021", "70 %", "99.7 %"], "ok"),
        (["2022", "100 %", "99.7 %"], "bad")]
    assert coverage_share(layers["monitoring_coverage"]) == pytest.approx(0.997)


def test_fmt_share_never_rounds_up_to_a_missed_target() -> None:
    assert [fmt_share(x) for x in (0.997, 0.99996, 1.0, 0.3, 0.7049, 0.0)] == \
        ["99.7 %", "99.9 %", "100 %", "30 %", "70.4 %", "0 %"]


def test_overview_by_registry_status_with_links_rate_and_coverage() -> None:
    layers = crafted_layers()
    fnd = crafted_findings()
    ids = fnd["finding_id"].tolist()
    reg = pd.DataFrame({"finding_id": [ids[0], ids[1], "gone:1"],
                        "status": ["rectified", "rectifying", "closed"],
                        "kind": ["setback", "occupancy", "setback"]})
    cfg = _config(render_html(build_overview(layers, fnd, registry=reg, coverage_overall=0.9974),
                              mode="inline"))
    assert _layer(cfg, "roads")["visible"] is True
    f = _layer(cfg, "findings")
    assert f["classify"]["field"] == "registry_status"
    counts = {c["value"]: c["count"] for c in f["classify"]["classes"]}
    assert (counts["rectified"], counts["rectifying"], counts["unregistered"]) == (1, 1, 2)
    props = {p["finding_id"]: p for p in (x["properties"] for x in f["data"]["features"])}
    assert props[ids[0]]["hazard_id"] == ids[0] and props[ids[2]]["hazard_id"] is None
    assert f["popup"]["link"]["url"] == HAZARD_URL == "/registry/hazards/{hazard_id}"
    assert cfg["findingsList"]["status"] == "registry_status"
    rows = {r["cells"][0]["zh"]: r for r in next(p for p in cfg["panels"]
                                                 if p["id"] == "progress")["rows"]}
    assert rows["占压及安全距离不足隐患整改率"]["cells"][1] == "66.6 % (2/3)"
    assert rows["隐患整改率（全部）"]["cells"][1] == "66.6 % (2/3)"
    cov = rows["高后果区视频监控覆盖率（2022目标）"]
    assert cov["cells"][1:] == ["99.7 %", "100 %"] and cov["status"] == "bad"
    # the served link carries the app's root path
    cfg2 = _config(render_html(build_overview(layers, fnd, registry=reg, options=MapOptions(
        mode="served", api_base="/api")), mode="served"))
    assert _layer(cfg2, "findings")["popup"]["link"]["url"] == "/api/registry/hazards/{hazard_id}"
    assert progress_rows(None, None) == []


def test_standalone_export_keeps_the_roads_around_the_findings(tmp_path: Path) -> None:
    from layers.store import GeoPackageStore
    from maps.sources import read_layers

    layers = crafted_layers()
    far = LineString([(LON0 + 0.05, LAT0), (LON0 + 0.06, LAT0)])  # ~5 km east
    roads = pd.concat([layers["roads"], gpd.GeoDataFrame(
        [{"id": "RD-9", "name": "远郊路", "road_class": "local", "hazmat": "yes",
          "geometry": far}], crs=4490)], ignore_index=True)
    store = GeoPackageStore(tmp_path / "s.gpkg")
    store.write({"roads": gpd.GeoDataFrame(roads, crs=4490),
                 "pipelines": layers["pipelines"], "buildings": layers["buildings"]})
    opts = MapOptions(mode="standalone", inline_max=2)
    got = read_layers(store, "planner", options=opts, findings=crafted_findings())
    assert sorted(got["roads"]["id"]) == ["RD-1", "RD-2"]
    cfg = _config(render_html(build_planner(got, crafted_findings(), options=opts), mode="inline"))
    r = _layer(cfg, "roads")
    assert sorted(x["properties"]["id"] for x in r["data"]["features"]) == ["RD-1", "RD-2"]
    assert "400 m" in r["note"]["en"] and "2 of 3" in r["note"]["en"]


def test_pages_carry_the_vendored_markercluster_and_no_foreign_url() -> None:
    html = render_html(build_planner(crafted_layers(), crafted_findings(),
                                     options=MapOptions(mode="served")), mode="served")
    assert '<script src="/static/maps/markercluster/leaflet.markercluster.js"></script>' in html
    assert 'href="/static/maps/markercluster/MarkerCluster.css"' in html
    lic = Path(__file__).resolve().parents[2] / "maps/assets/markercluster/LICENSE"
    assert "David Leaver" in lic.read_text()


# --- Chromium --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ux_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("playwright.sync_api")

    import api.routers.maps as maps_router
    import maps.sources as sources
    from api.app import create_app
    from api.settings import Settings
    from layers.store import GeoPackageStore

    path = tmp_path_factory.mktemp("ux") / "store.gpkg"
    store = GeoPackageStore(path)
    store.write(crafted_layers(n_buildings=400))
    fnd = crafted_findings()
    reg = pd.DataFrame({"finding_id": [fnd["finding_id"].iloc[0]], "status": ["rectifying"],
                        "kind": ["setback"]})
    mp = pytest.MonkeyPatch()
    mp.setattr(maps_router, "analysis_inputs", lambda store, name: (crafted_findings(), {}))
    orig_registry = sources.read_registry  # this server's store only: other tests read theirs
    mp.setattr(sources, "read_registry",
               lambda s: reg if getattr(s, "path", None) == store.path else orig_registry(s))
    orig = maps_router.map_options
    mp.setattr(maps_router, "map_options", lambda *a, **k: replace(orig(*a, **k), inline_max=100))
    app = create_app(Settings(store=str(path), anonymous_role="admin"), store=store)
    with live_server(app) as url:
        yield url
    mp.undo()


class _Page:
    """A page at a viewport with every other host blocked; console errors collected."""

    def __init__(self, browser: Any, base: str, path: str, viewport: dict[str, int]) -> None:
        from maps.browser import wait_for_map

        self.ctx = browser.new_context(viewport=viewport)
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page.route(re.compile(r"^(?!" + re.escape(base) + r"/|data:).*"),
                        lambda route: (self.foreign.append(route.request.url), route.abort()))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(base + path, wait_until="load")
        wait_for_map(self.page)
        self.page.wait_for_timeout(200)

    def js(self, expr: str, arg: Any = None) -> Any:
        return self.page.evaluate(expr, arg)

    def close(self) -> None:
        assert self.errors == [] and self.foreign == [], (self.errors, self.foreign)
        self.ctx.close()


def _popup_on_top(p: _Page) -> bool:
    """The popup is drawn above every control (the point at its content's centre is in it)."""
    return bool(p.js("""() => { const c = document.querySelector('.leaflet-popup-content');
        if (!c) return false; const r = c.getBoundingClientRect();
        const e = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return !!(e && e.closest('.leaflet-popup')); }"""))




@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_findings_list_filters_and_opens_a_finding(ux_server: str, browser: Any,
                                                   viewport: dict[str, int]) -> None:
    p = _Page(browser, ux_server, "/maps/planner", viewport)
    box = p.page.locator(".riskmap-findings")
    assert box.get_attribute("data-count") == "4"
    if viewport is PHONE:  # collapsed on a phone: open it from its title
        assert "collapsed" in (box.get_attribute("class") or "")
        p.page.click(".riskmap-findings .riskmap-box-title")
    p.page.select_option(".riskmap-findings select[name=kind]", "setback")
    assert box.get_attribute("data-count") == "1"
    p.page.select_option(".riskmap-findings select[name=kind]", "")
    p.page.fill(".riskmap-findings input[name=q]", "b-00002")
    assert box.get_attribute("data-count") == "1"
    assert p.page.locator(".riskmap-findings-row").count() == 1
    p.page.fill(".riskmap-findings input[name=q]", "")
    p.page.click(".riskmap-findings-row[data-finding='setback:B-00001']")
    p.page.wait_for_selector(".leaflet-popup-content .riskmap-popup", timeout=5000)
    text = p.page.inner_text(".leaflet-popup-content")
    assert "GB 50253-2014 4.1.6" in text and "0.5 m" in text
    p.page.wait_for_timeout(400)  # the pan clear of the controls
    assert _popup_on_top(p)
    assert p.js("RiskMap.app.map.getZoom()") >= 16
    p.close()


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_roads_named_and_findings_clustered_at_the_district_view(
        ux_server: str, browser: Any, viewport: dict[str, int]) -> None:
    p = _Page(browser, ux_server, "/maps/planner", viewport)
    app = "RiskMap.app"
    assert p.js(f"{app}.map.hasLayer({app}.layers.roads.layer)")
    p.js(f"void {app}.map.setView([{LAT0 + 0.001}, {LON0 + 0.0015}], 14, {{animate: false}})")
    p.page.wait_for_timeout(300)
    # 3 planner findings (setback, occupancy, lane + route in "other") shadowed by markers
    assert int(p.page.get_attribute(".folium-map", "data-clustered") or 0) == 4
    assert p.page.locator(".riskmap-cluster").count() >= 1
    assert p.page.locator(".riskmap-label").count() == 0  # names from zoom 15
    # measuring: a click on a cluster marker adds a point (no zoom to the cluster)
    p.page.click(".riskmap-measure a")
    marker = p.page.locator(".riskmap-cluster").first.bounding_box()
    assert marker is not None
    p.page.mouse.click(marker["x"] + marker["width"] / 2, marker["y"] + marker["height"] / 2)
    p.page.wait_for_timeout(200)
    assert p.js(f"{app}.measure.state.pts.length") == 1 and p.js(f"{app}.map.getZoom()") == 14
    p.page.click(".riskmap-measure a")
    # search results stay inside their box (no spill over the other controls)
    p.page.fill(".riskmap-search input", "B-0")
    p.page.press(".riskmap-search input", "Enter")
    res = p.page.locator(".riskmap-search").bounding_box()
    hits = p.page.locator(".riskmap-search-hit")
    assert hits.count() >= 3 and res is not None
    for i in range(hits.count()):
        h = hits.nth(i).bounding_box()
        assert h is not None and h["x"] + h["width"] <= res["x"] + res["width"] + 0.5
    assert res["width"] <= 222 and res["height"] <= 0.3 * viewport["height"] + 40
    p.js(f"void {app}.map.setView([{LAT0 - 0.0005}, {LON0 + 0.002}], 17, {{animate: false}})")
    p.page.wait_for_timeout(300)
    assert p.page.get_attribute(".folium-map", "data-clustered") == "0"
    labels = p.page.locator(".riskmap-label").all_inner_texts()
    assert "南环路" in labels and "间距 15m（GB 50253 §4.1.5）" in labels
    p.page.click(".riskmap-lang a")  # the setback lines are labelled in the language shown
    p.page.wait_for_timeout(200)
    assert "setback 15 m (GB 50253 §4.1.5)" in p.page.locator(".riskmap-label").all_inner_texts()
    p.close()


@pytest.mark.server
@pytest.mark.slow
def test_measuring_on_buildings_adds_points_and_opens_no_popup(ux_server: str,
                                                                browser: Any) -> None:
    p = _Page(browser, ux_server, "/maps/planner", DESKTOP)
    # zoom onto building B-00065 (loaded by bbox from zoom 16; context canvas, under the
    # canvases of the pipelines and of the findings)
    p.js("([lat, lon]) => void RiskMap.app.map.setView([lat, lon], 19, {animate: false})",
         [LAT0 + 3 * 0.0005 + 0.0005 / 6, LON0 + 5 * 0.0005 + 0.0005 / 6])
    p.page.wait_for_function(
        "() => +document.querySelector('.folium-map').getAttribute('data-loaded-buildings') > 0")
    from maps.browser import wait_for_map

    wait_for_map(p.page)
    p.page.wait_for_timeout(300)
    pts = p.js("""() => { const app = RiskMap.app; let hit = null;
        app.layers.buildings.layer.eachLayer(l => { if (l.feature.properties.id === 'B-00065') hit = l; });
        const b = hit.getBounds(), r = app.map.getContainer().getBoundingClientRect();
        const f = (lat, lng) => { const q = app.map.latLngToContainerPoint([lat, lng]);
                                  return [q.x + r.left, q.y + r.top]; };
        const c = b.getCenter(), dy = (b.getNorth() - b.getSouth()) / 4;
        return [f(c.lat - dy, c.lng), f(c.lat + dy, c.lng)]; }""")
    # without measuring, a click on the building opens its popup
    p.page.mouse.click(*pts[0])
    p.page.wait_for_selector(".leaflet-popup-content .riskmap-popup", timeout=5000)
    assert "B-00065" in p.page.inner_text(".leaflet-popup-content")
    p.js("void RiskMap.app.map.closePopup()")
    p.page.click(".riskmap-measure a")
    assert p.page.get_attribute(".folium-map", "data-click-mode") == "measure"
    p.page.mouse.click(*pts[0])
    p.page.wait_for_timeout(350)  # not a double click
    p.page.mouse.click(*pts[1])
    p.page.wait_for_timeout(200)
    assert p.page.locator(".leaflet-popup").count() == 0
    assert p.js("RiskMap.app.measure.state.pts.length") == 2
    length = float(p.page.get_attribute(".riskmap-measure-out", "data-length-m") or 0)
    expected = p.js("""() => { const s = RiskMap.app.measure.state.pts;
                        return RiskMap.app.map.distance(s[0], s[1]); }""")
    assert length == pytest.approx(expected, abs=0.01) and length > 5
    p.page.click(".riskmap-measure a")  # off: the mode ends
    assert p.page.get_attribute(".folium-map", "data-click-mode") is None
    p.close()


@pytest.mark.server
@pytest.mark.slow
def test_overview_registry_colours_link_and_layer_list_clear_of_the_legend(
        ux_server: str, browser: Any) -> None:
    p = _Page(browser, ux_server, "/maps/overview", DESKTOP)
    assert p.js("RiskMap.app.map.hasLayer(RiskMap.app.layers.roads.layer)")
    legend = p.page.locator(".riskmap-legend").bounding_box()
    layers = p.page.locator(".riskmap-layers").bounding_box()
    assert legend and layers and layers["y"] + layers["height"] <= legend["y"]
    p.page.click(".riskmap-findings-row[data-finding='setback:B-00001']")
    p.page.wait_for_selector(".leaflet-popup-content .riskmap-popup-link a", timeout=5000)
    href = p.page.get_attribute(".leaflet-popup-content .riskmap-popup-link a", "href")
    assert href == "/registry/hazards/setback%3AB-00001"
    assert "整改中" in p.page.inner_text(".leaflet-popup-content")
    options = p.page.locator(".riskmap-findings select[name=status] option").all_inner_texts()
    assert options == ["全部状态", "整改中", "未登记"]
    p.close()


MAPS = ["/maps/planner", "/maps/police", "/maps/police?publish=true", "/maps/fire",
        "/maps/overview"]


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("path", MAPS)
def test_phone_controls_cover_at_most_a_third(ux_server: str, browser: Any, path: str) -> None:
    p = _Page(browser, ux_server, path, PHONE)
    covered = p.js("RiskMap.app.coveredFraction()")
    assert covered <= 1 / 3, (path, covered)
    boxes = p.page.locator(".riskmap-collapsible")
    assert all("collapsed" in (boxes.nth(i).get_attribute("class") or "")
               for i in range(boxes.count()))
    p.close()


@pytest.mark.server
@pytest.mark.slow
def test_overview_reads_registry_statuses_afresh(ux_server: str, browser: Any) -> None:
    """A served overview built (and cached) before a registry edit shows today's statuses:
    the page reads GET /registry/hazards and recolours its findings."""
    from maps.browser import wait_for_map

    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    answer = {"hazards": [{"hazard_id": "setback:B-00001", "status": "closed"},
                          {"hazard_id": "occupancy:B-00002", "status": "identified"}],
              "numberMatched": 2, "numberReturned": 2}
    asked: list[str] = []

    def handle(route: Any) -> None:
        asked.append(route.request.url)
        route.fulfill(status=200, content_type="application/json", body=json.dumps(answer))

    page.route(re.compile(re.escape(ux_server) + r"/registry/hazards\?.*"), handle)
    page.goto(ux_server + "/maps/overview", wait_until="load")
    wait_for_map(page)
    page.wait_for_selector(".folium-map[data-registry='2']", timeout=10000)
    assert asked == [ux_server + "/registry/hazards?limit=500&offset=0"]
    legend = page.inner_text(".riskmap-legend-layer[data-layer=findings]")
    assert "已销号 (1)" in legend and "待整改 (1)" in legend and "未登记 (2)" in legend
    assert "整改中" not in legend  # the status the page was built with
    options = page.locator(".riskmap-findings select[name=status] option").all_inner_texts()
    assert options == ["全部状态", "已销号", "待整改", "未登记"]
    page.click(".riskmap-findings-row[data-finding='setback:B-00001']")
    page.wait_for_selector(".leaflet-popup-content .riskmap-popup-link a", timeout=5000)
    assert "已销号" in page.inner_text(".leaflet-popup-content")
    assert errors == []
    ctx.close()


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("path", MAPS)
def test_desktop_corners_do_not_overlap(ux_server: str, browser: Any, path: str) -> None:
    """At 1440x900 and 1366x768 the boxes of the upper corners end above those of the lower
    corners (the legend never covers the layer list; the findings list never the tools)."""
    for vp in (DESKTOP, {"width": 1366, "height": 768}):
        p = _Page(browser, ux_server, path, vp)
        gaps = p.js("""() => ['left', 'right'].map(side => {
            const c = document.querySelector('.riskmap-box') ? document : null;
            const edge = (sel, f) => Array.from(document.querySelectorAll(sel + ' > .leaflet-control'))
              .map(e => e.getBoundingClientRect()).filter(r => r.height > 0).map(f);
            const top = edge('.leaflet-top.leaflet-' + side, r => r.bottom);
            const bottom = edge('.leaflet-bottom.leaflet-' + side, r => r.top);
            return (bottom.length ? Math.min(...bottom) : 1e9) - (top.length ? Math.max(...top) : 0);
        })""")
        assert min(gaps) >= 0, (path, vp, gaps)
        p.close()


def test_served_maps_load_a_large_road_network_by_bbox() -> None:
    """Over 1,000 roads the served map loads them by bbox from zoom 12 (density below);
    1,000 are inlined; a standalone export inlines them up to the general limit."""
    base = crafted_layers()["roads"].iloc[:1]

    def roads(n: int) -> gpd.GeoDataFrame:
        out = pd.concat([base] * n, ignore_index=True)
        out["id"] = [f"R-{i}" for i in range(n)]
        return gpd.GeoDataFrame(out, crs=4490)

    served = MapOptions(mode="served", api_base="/api")
    for n, remote in ((1000, False), (1001, True)):
        cfg = _config(render_html(build_planner({"roads": roads(n)}, options=served),
                                  mode="served"))
        r = _layer(cfg, "roads")
        assert ("remote" in r) is remote and ("data" in r) is not remote
    assert r["remote"] == {"url": "/api/collections/roads/items", "minZoom": 12,
                           "limit": 10000, "page": 2000, "first": 500,
                           "overview": "/api/maps/density/roads"}
    cfg = _config(render_html(build_planner({"roads": roads(1001)}), mode="inline"))
    assert len(_layer(cfg, "roads")["data"]["features"]) == 1001


def test_read_registry_gives_the_overview_its_statuses(tmp_path: Path) -> None:
    from layers.registry import Actor, Registry
    from layers.store import GeoPackageStore
    from maps.sources import read_layers, read_registry

    store = GeoPackageStore(tmp_path / "s.gpkg")
    store.write({"roads": crafted_layers()["roads"]})
    assert read_registry(store) is None  # no registry yet: findings by severity
    fnd = crafted_findings()
    reg = Registry(store.path)
    actor = Actor(who="test", role="admin")
    for rec in fnd.drop(columns="geometry").to_dict("records")[:2]:
        reg.register({k: (None if pd.isna(v) else v) for k, v in rec.items()},
                     analysis="pipeline_findings", owner_role="planner", actor=actor)
    reg.transition(fnd["finding_id"].iloc[0], "rectifying", actor=actor)
    got = read_registry(store)
    assert got is not None
    assert got[["finding_id", "status", "kind"]].to_dict("records") == [
        {"finding_id": "occupancy:B-00002", "status": "identified", "kind": "occupancy"},
        {"finding_id": "setback:B-00001", "status": "rectifying", "kind": "setback"}]
    layers = read_layers(store, "overview", options=MapOptions())
    assert list(layers["registry"]["finding_id"]) == list(got["finding_id"])
    cfg = _config(render_html(build_overview(layers, fnd), mode="inline"))
    counts = {c["value"]: c["count"] for c in _layer(cfg, "findings")["classify"]["classes"]}
    assert (counts["rectifying"], counts["identified"], counts["unregistered"]) == (1, 1, 2)
