"""Hostile data in every text field of every layer, rendered in headless Chromium.

Each free-text field of every layer (ids and the references to them, names, authority, notice,
plan …; enum fields and ``hours`` keep values ``riskmap import`` accepts) and every
text of planted findings holds a string meant to break out of its context: ``<!--<script>``
(comments out the rest of an inline script), ``</script><script>…`` (closes it),
``"><img onerror=…>`` (leaves an attribute), ``'-alert(1)-'`` (leaves a JS string), U+2028 /
U+2029 (JS line ends) and ``{{7*7}}`` (template syntax). Every audience map (planner, police,
the public notice view, fire, overview) and every HTML page (landing, collections, each
collection, its items and one item) must render its map with the features drawn, show the
strings as text, run nothing (``window.__pwned`` undefined, no dialog) and log no console
error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import geopandas as gpd
import pytest
from live_server import live_server

pytestmark = pytest.mark.server

playwright = pytest.importorskip("playwright.sync_api")

HOSTILE = (
    "<!--<script>",
    "</script><script>window.__pwned=1</script>",
    '"><img src=x onerror=window.__pwned=1>',
    "'-alert(1)-'",
    "line\u2028sep\u2029para",
    "{{7*7}}",
)
REFS = {("hca", "pipeline_id"): "pipelines", ("fire_lanes", "compound_id"): "compounds"}
# each map, and a layer of it whose every feature is checked to arrive intact
MAPS = {"planner": "pipelines", "police": "restricted_zones",
        "police?publish=true": "restricted_zones", "fire": "fire_stations",
        "overview": "restricted_zones"}


def _hostile(i: int, tag: str) -> str:
    return f"{HOSTILE[i % len(HOSTILE)]} {tag}{i}"


def hostile_layers() -> dict[str, gpd.GeoDataFrame]:
    """The crafted layers with every free-text field (ids and references included) hostile."""
    from crafted_maps import crafted_layers

    from layers.schema import SCHEMAS

    layers = crafted_layers(n_buildings=12)
    new_ids: dict[str, dict[str, str]] = {}
    for name, gdf in layers.items():
        new_ids[name] = {old: _hostile(i, name[:2]) for i, old in enumerate(gdf["id"])}
    out = {}
    for name, gdf in layers.items():
        gdf = gdf.copy()
        text_fields = [f.name for f in SCHEMAS[name].fields if f.type == "str" and not f.enum]
        for col in text_fields:
            ref = REFS.get((name, col))
            if col == "id":
                gdf[col] = gdf[col].map(new_ids[name])
            elif ref is not None:
                gdf[col] = gdf[col].map(new_ids[ref])
            elif col == "hours":  # validated on import (HH:MM-HH:MM), like the enums
                continue
            else:
                gdf[col] = [_hostile(i + 1, col[:2]) for i in range(len(gdf))]
        out[name] = gdf
    return out


def hostile_findings(layers: dict[str, gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    """The planted findings of the map tests with every text hostile (ids, rule source,
    messages), pointing at the hostile features."""
    from crafted_maps import crafted_findings

    f = crafted_findings()
    for i, (lay, other) in enumerate(zip(f["layer"], f["other_layer"], strict=True)):
        f.loc[i, "feature_id"] = layers[lay]["id"].iloc[1]
        if isinstance(other, str):
            f.loc[i, "other_id"] = layers[other]["id"].iloc[0]
    for col in ("rule_source", "message_zh", "message_en", "rule_id"):
        f[col] = [_hostile(i + 3, col[:2]) for i in range(len(f))]
    f["finding_id"] = f["kind"] + ":" + f["feature_id"]
    return f


@pytest.fixture(scope="module")
def hostile() -> dict[str, gpd.GeoDataFrame]:
    return hostile_layers()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           hostile: dict[str, gpd.GeoDataFrame]) -> Iterator[str]:

    import api.routers.maps as maps_router
    from api.app import create_app
    from api.settings import Settings
    from layers.store import GeoPackageStore
    from maps.compose import concat_findings

    path = tmp_path_factory.mktemp("hostile") / "store.gpkg"
    store = GeoPackageStore(path)
    store.write(hostile)
    planted = hostile_findings(hostile)
    real = maps_router.analysis_inputs

    def inputs(service: Any, name: str) -> tuple[Any, dict[str, Any]]:
        found, extra = real(service, name)  # the analyses on the hostile store, and planted
        return concat_findings([x for x in (found, planted) if x is not None]), extra

    mp = pytest.MonkeyPatch()
    mp.setattr(maps_router, "analysis_inputs", inputs)
    orig = maps_router.map_options  # buildings (12) loaded by bbox, as a large layer
    mp.setattr(maps_router, "map_options", lambda *a, **k: replace(orig(*a, **k), inline_max=8))
    app = create_app(Settings(store=str(path), anonymous_role="admin"), store=store)
    with live_server(app) as url:
        yield url
    mp.undo()


class Page:
    """A page with its console errors, page errors and dialogs recorded."""

    def __init__(self, browser: Any, url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1100, "height": 800})
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        resp = self.page.goto(url, wait_until="load")
        assert resp is not None and resp.status == 200, (url, resp and resp.status)

    def assert_safe(self, url: str) -> None:
        assert self.page.evaluate("typeof window.__pwned") == "undefined", url
        assert self.dialogs == [], (url, self.dialogs)
        assert self.errors == [], (url, self.errors)
        # no element made from data: the only <img> are Leaflet's tiles/markers (none here)
        assert self.page.locator("img[src=x], img[onerror]").count() == 0, url


def _drawn(page: Any) -> dict[str, int]:
    return dict(page.evaluate("""() => { const out = {};
        for (const [id, e] of Object.entries(RiskMap.app.layers)) {
            out[id] = e.layer.getLayers().length; }
        return out; }"""))


@pytest.mark.parametrize("name", MAPS)
def test_maps_render_hostile_data_as_text(server: str, browser: Any, name: str,
                                          hostile: dict[str, gpd.GeoDataFrame]) -> None:
    from maps.browser import wait_for_map

    url = f"{server}/maps/{name}"
    p = Page(browser, url)
    wait_for_map(p.page)
    page = p.page
    assert page.locator(".folium-map .leaflet-map-pane .leaflet-overlay-pane").count() == 1
    drawn = _drawn(page)
    assert sum(drawn.values()) > 0, drawn
    layer = MAPS[name]
    expect = hostile[layer]
    assert drawn[layer] == len(expect)
    # the strings arrive intact (not cut at a '<', not evaluated as {{7*7}} -> 49)
    props = page.evaluate("""(lid) => RiskMap.app.layers[lid].layer.getLayers()
        .map(l => l.feature.properties)""", layer)
    assert sorted(x["id"] for x in props) == sorted(expect["id"])
    assert sorted(x["name"] for x in props) == sorted(expect["name"])
    # a popup and a tooltip of each drawn layer show the data as text, never as markup
    for lid, n in drawn.items():
        if n == 0:
            continue
        # (a remote layer may be reloading after the last popup panned the map)
        page.evaluate("""(lid) => { const l = RiskMap.app.layers[lid].layer.getLayers()[0];
            if (!l) { return; }
            const app = RiskMap.app; app._bindPopup(app.layers[lid].spec, l);
            app._bindTooltip(app.layers[lid].spec, l);
            if (l.getPopup()) { l.openPopup(); } if (l.getTooltip()) { l.openTooltip(); } }""",
                      lid)
        assert page.locator(".leaflet-popup-content img, .leaflet-tooltip img").count() == 0
    texts = page.evaluate("""() => [...document.querySelectorAll(
        '.leaflet-popup-content, .leaflet-tooltip')].map(e => e.textContent).join(' ')""")
    assert any(h in texts for h in HOSTILE), texts
    if "publish" in name:
        header = page.inner_text(".riskmap-publish")
        assert _hostile(1, "au") in header  # the issuing authority, as text
    else:  # search for a hostile name: hits listed as text
        page.fill(".riskmap-search input", "<img")
        page.press(".riskmap-search input", "Enter")
        page.wait_for_selector(".riskmap-search-hit", timeout=5000)
        assert HOSTILE[2] in page.inner_text(".riskmap-search-results")
    p.assert_safe(url)
    page.close()


def _html_urls(server: str, hostile: dict[str, gpd.GeoDataFrame]) -> list[tuple[str, bool]]:
    """(url, has a map) of every HTML page: landing, collections, per layer the collection,
    its items and its first feature; the items of each analysis collection."""
    import httpx

    urls = [(f"{server}/?f=html", False), (f"{server}/collections?f=html", False)]
    for name, gdf in hostile.items():
        fid = quote(str(gdf["id"].iloc[0]), safe="")
        urls += [(f"{server}/collections/{name}?f=html", False),
                 (f"{server}/collections/{name}/items?f=html", True),
                 (f"{server}/collections/{name}/items/{fid}?f=html", True)]
    cols = httpx.get(f"{server}/collections", timeout=60).json()["collections"]
    urls += [(f"{server}/collections/{c['id']}/items?f=html&limit=50", True) for c in cols
             if c["kind"] == "analysis"]
    return urls


def test_html_pages_render_hostile_data_as_text(server: str, browser: Any,
                                                hostile: dict[str, gpd.GeoDataFrame]) -> None:
    urls = _html_urls(server, hostile)
    assert len(urls) >= 2 + 3 * len(hostile)
    tables = []
    for url, has_map in urls:
        p = Page(browser, url)
        page = p.page
        if has_map and page.locator("table tr td").count():
            page.wait_for_selector("#map .leaflet-map-pane", state="attached", timeout=10000)
            drawn = page.locator("#map .leaflet-overlay-pane path, "
                                 "#map .leaflet-marker-pane img").count()
            assert drawn > 0, url
        if page.locator("table").count():
            tables.append(page.inner_text("table"))
        p.assert_safe(url)
        page.close()
    text = "\n".join(tables)
    for h in HOSTILE[:4] + HOSTILE[5:]:  # shown as text (U+2028 is rendered as a line break)
        assert h in text, h
