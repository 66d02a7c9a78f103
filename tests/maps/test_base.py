"""Map factory, legends, offline rendering and the no-external-URL rule (no browser)."""

from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pytest
from crafted_maps import LAT0, LON0, crafted_findings, crafted_layers
from shapely.geometry import box

from geo.crs import wgs84_to_gcj02
from maps.base import BASEMAPS, Categorical, Graduated, MapOptions, findings_spec, make_map, text
from maps.offline import OfflineError, external_urls, render_html
from maps.sources import MAP_NAMES, build


def _config(html: str) -> dict:
    mo = re.search(r"RiskMap\.init\([^,]+, (\{.*\})\);\n", html)
    assert mo is not None
    return json.loads(mo.group(1).replace("<\\/", "</"))


@pytest.mark.parametrize("name", MAP_NAMES)
@pytest.mark.parametrize("basemap", ["none", "osm", "gaode", "tianditu", "local"])
def test_exported_html_has_no_url_but_the_tile_url(name: str, basemap: str) -> None:
    opts = MapOptions(basemap=basemap, tianditu_key="k" * 16, tile_url="/tiles/{z}/{x}/{y}.png")
    html = render_html(build(name, crafted_layers(), crafted_findings(), options=opts),
                       mode="inline")
    _bm, urls = opts.tiles()
    found = re.findall(r"https?://[^\s\"'<>()\\`]+", html)
    for u in found:  # every URL in the page is a (JSON-escaped) prefix of a chosen tile URL
        assert any(t == u or t.startswith(u) for t in urls if t.startswith("http")), u
    if basemap == "none":
        assert found == []
    assert "cdn.jsdelivr" not in html and "cdnjs" not in html and "/static/maps/" not in html


def test_folium_defaults_replaced_and_served_paths() -> None:
    m = build("planner", crafted_layers(), crafted_findings(), options=MapOptions())
    html = render_html(m, mode="served", static_prefix="/app/static/maps")
    assert '<script src="/app/static/maps/leaflet/leaflet.js"></script>' in html
    assert '<link rel="stylesheet" href="/app/static/maps/riskmap/riskmap.css"/>' in html
    assert external_urls(html) == []


def test_a_cdn_plugin_is_refused() -> None:
    from folium.plugins import MiniMap

    m = build("fire", crafted_layers(), None, options=MapOptions())
    MiniMap().add_to(m)
    with pytest.raises(OfflineError, match="external URL"):
        render_html(m, mode="inline")


def test_external_urls_allows_only_the_tile_template() -> None:
    t = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    page = f'"{t}" "https://tile.openstreetmap.org.evil.com/x" "http://example.com/a.js"'
    assert external_urls(page, [t]) == ["https://tile.openstreetmap.org.evil.com/x",
                                        "http://example.com/a.js"]


def test_legend_counts_and_graduated_classes() -> None:
    f = crafted_findings()
    cfg = _config(render_html(build("planner", crafted_layers(), f, options=MapOptions()),
                              mode="served"))
    layers = {lay["id"]: lay for lay in cfg["layers"]}
    assert layers["setback"]["classify"]["type"] == "graduated"
    assert layers["setback"]["classify"]["counts"] == [0, 1, 0, 0, 0]  # 0.5 m in [0.5, 1)
    med = layers["pipelines"]["classify"]
    assert {c["value"]: c["count"] for c in med["classes"]}["crude_oil"] == 1
    # popups carry rule, clause, distances, shortfall and station
    keys = [fl["key"] for fl in layers["setback"]["popup"]["fields"]]
    for k in ("rule_id", "rule_source", "distance_m", "required_m", "shortfall_m", "station"):
        assert k in keys
    feat = layers["setback"]["data"]["features"][0]["properties"]
    assert feat["shortfall_m"] == 0.5 and feat["station"] == "K0+123.4"
    assert feat["rule_source"] == "GB 50253-2014 4.1.6"
    assert cfg["lang"] == "zh" and layers["setback"]["label"] == {"zh": "安全距离不足",
                                                                  "en": "Insufficient setback"}


def test_graduated_needs_one_more_break() -> None:
    with pytest.raises(ValueError, match="need 3 breaks"):
        Graduated("x", (0, 1), ("#000", "#fff"))
    js = Categorical("k", (("a", "#f00", "甲", "A"),)).to_js(None)
    assert js["classes"][0]["label"] == text("甲", "A")


def test_gaode_shifts_data_for_display_only() -> None:
    layers = crafted_layers()
    before = layers["pipelines"].geometry.iloc[0].coords[0]
    cfg = _config(render_html(build("planner", layers, None, options=MapOptions(basemap="gaode")),
                              mode="served"))
    assert cfg["gcj"] is True
    pipes = next(lay for lay in cfg["layers"] if lay["id"] == "pipelines")
    x, y = pipes["data"]["features"][0]["geometry"]["coordinates"][0]
    gx, gy = wgs84_to_gcj02(before[0], before[1])
    assert (x, y) == (round(float(gx), 6), round(float(gy), 6))
    assert layers["pipelines"].geometry.iloc[0].coords[0] == before  # input not shifted


def test_standalone_reduces_large_layers_and_says_so() -> None:
    layers = crafted_layers(n_buildings=400)
    f = crafted_findings()
    opts = MapOptions(inline_max=100)
    cfg = _config(render_html(build("planner", layers, f, options=opts), mode="inline"))
    b = next(lay for lay in cfg["layers"] if lay["id"] == "buildings")
    ids = sorted(ft["properties"]["id"] for ft in b["data"]["features"])
    assert ids == ["B-00001", "B-00002"]
    assert "398" in b["note"]["zh"] and "398 left out" in b["note"]["en"]


def test_served_mode_loads_large_layers_by_bbox() -> None:
    layers = crafted_layers(n_buildings=400)
    opts = MapOptions(inline_max=100, mode="served", api_base="/api")
    cfg = _config(render_html(build("planner", layers, None, options=opts), mode="served"))
    b = next(lay for lay in cfg["layers"] if lay["id"] == "buildings")
    assert "data" not in b
    assert b["remote"] == {"url": "/api/collections/buildings/items", "minZoom": 16,
                           "limit": 10000, "page": 2000, "first": 500,
                           "overview": "/api/maps/density/buildings"}


def test_basemap_presets_need_their_settings() -> None:
    with pytest.raises(ValueError, match="Tianditu key"):
        make_map(MapOptions(basemap="tianditu"))
    with pytest.raises(ValueError, match="tile URL"):
        make_map(MapOptions(basemap="local"))
    with pytest.raises(ValueError, match="unknown basemap"):
        make_map(MapOptions(basemap="bing"))
    assert set(BASEMAPS) == {"none", "osm", "tianditu", "gaode", "local"}


def test_publish_view_has_no_findings_and_no_drafts() -> None:
    from maps.police import build_police

    cfg = _config(render_html(build_police(crafted_layers(), crafted_findings(), publish=True,
                                           date="2024-05-01"), mode="inline"))
    ids = [lay["id"] for lay in cfg["layers"]]
    assert "route_findings" not in ids and "roads" not in ids
    routes = next(lay for lay in cfg["layers"] if lay["id"] == "hazmat_routes")
    assert [f["properties"]["id"] for f in routes["data"]["features"]] == ["HR-01"]
    assert cfg["publish"]["authority"] == "某市公安局交通警察支队"
    assert cfg["publish"]["notice"] == "公交通〔2024〕12号" and cfg["publish"]["date"] == "2024-05-01"
    assert "routeForm" not in cfg


def test_fire_lane_qualification_from_findings() -> None:
    from maps.fire import lane_qualification

    q = lane_qualification(crafted_layers()["fire_lanes"], crafted_findings())
    assert q["qualification"].tolist() == ["narrow", "ok"]
    q0 = lane_qualification(crafted_layers()["fire_lanes"], None)
    assert q0["qualification"].tolist() == ["unchecked", "unchecked"]


def test_findings_spec_colours() -> None:
    s = findings_spec(by="shortfall")
    assert isinstance(s.classify, Graduated) and s.classify.field == "shortfall_m"
    f = gpd.GeoDataFrame({"id": ["x"]}, geometry=[box(LON0, LAT0, LON0 + 1e-4, LAT0 + 1e-4)],
                         crs=4490)
    assert np.isfinite(f.total_bounds).all()


def test_density_grid_counts_each_feature_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from layers.store import GeoPackageStore
    from maps.sources import density_grid

    # 3 buildings in the south-west cell, 1 in the north-east one; extent 0.01 degree
    b = gpd.GeoDataFrame({"id": ["a", "b", "c", "d"]}, geometry=[
        box(LON0, LAT0, LON0 + 1e-4, LAT0 + 1e-4), box(LON0 + 2e-4, LAT0, LON0 + 3e-4, LAT0 + 1e-4),
        box(LON0, LAT0 + 2e-4, LON0 + 1e-4, LAT0 + 3e-4),
        box(LON0 + 0.01, LAT0 + 0.01, LON0 + 0.0101, LAT0 + 0.0101)], crs=4490)
    store = GeoPackageStore(tmp_path / "s.gpkg")
    store.write({"buildings": b})
    g = density_grid(store, "buildings", cells=2)
    counts = sorted(f["properties"]["count"] for f in g["features"])
    assert counts == [1, 3] and g["max"] == 3
    sw = next(f for f in g["features"] if f["properties"]["count"] == 3)
    # cells of 0.01 / 2 degree with edges on multiples of it (not at a feature's coordinate)
    # (R-tree bounds are float32: the extent is within 2e-5 degree)
    size = g["cell_deg"]
    assert size == pytest.approx(0.005, abs=2e-5)
    (x0, y0), (x1, y1) = sw["geometry"]["coordinates"][0][0], sw["geometry"]["coordinates"][0][2]
    assert x1 - x0 == pytest.approx(size, abs=2e-6) and y1 - y0 == pytest.approx(size, abs=2e-6)
    assert x0 / size == pytest.approx(round(x0 / size), abs=1e-3)
    assert y0 / size == pytest.approx(round(y0 / size), abs=1e-3)
    assert x0 < LON0 + 5e-5 < x1 and y0 < LAT0 + 5e-5 < y1
    with pytest.raises(ValueError, match="cells=0"):
        density_grid(store, "buildings", cells=0)
    with pytest.raises(ValueError, match="min_cell_m=0"):
        density_grid(store, "buildings", min_cell_m=0)


def test_density_cells_never_under_100_m(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from layers.store import GeoPackageStore
    from maps.sources import MIN_CELL_M, density_grid

    # 40 hydrants 25 m apart along a 1 km street: 512 cells asked for would be 2 m each
    step = 25 / 92_000  # degree of longitude at 34.8 N ~ 91.4 km
    h = gpd.GeoDataFrame({"id": [f"H{i}" for i in range(40)], "status": ["ok", "faulty"] * 20},
                         geometry=gpd.points_from_xy(LON0 + step * np.arange(40),
                                                     np.full(40, LAT0)), crs=4490)
    store = GeoPackageStore(tmp_path / "s.gpkg")
    store.write({"hydrants": h})
    g = density_grid(store, "hydrants", cells=512)
    side_m = g["cell_deg"] * 111_320 * np.cos(np.radians(LAT0))
    assert MIN_CELL_M == 100.0 and side_m == pytest.approx(100.0)
    assert sum(f["properties"]["count"] for f in g["features"]) == 40
    # 975 m of street in 100 m cells: 10 or 11 cells (by where the edges fall), at most 4
    # hydrants in one (25 m apart)
    assert len(g["features"]) in (10, 11) and g["max"] == 4
    # a coarser floor merges them further; a row filter counts only matching rows
    assert len(density_grid(store, "hydrants", cells=512, min_cell_m=500)["features"]) <= 3
    faulty = density_grid(store, "hydrants", cells=512, where={"status": "faulty"})
    assert sum(f["properties"]["count"] for f in faulty["features"]) == 20
    with pytest.raises(ValueError, match="no column 'owner'"):
        density_grid(store, "hydrants", where={"owner": "x"})


HOSTILE = ("<!--<script>", "</script><script>window.__pwned=1</script>",
           '"><img src=x onerror=window.__pwned=1>', "'-alert(1)-'", "a\u2028b\u2029c",
           "{{7*7}}", "see https://evil.example/x")


def test_script_json_keeps_values_and_leaves_no_markup() -> None:
    from maps.html import script_json

    for value in (*HOSTILE, "a\\/b", "\\", "\\\\/<"):
        raw = json.dumps({"v": value}, ensure_ascii=False)
        safe = script_json(raw)
        assert json.loads(safe) == {"v": value}
        assert not re.search(r"[<>&\u2028\u2029]|//", safe), safe


def test_hostile_names_stay_inside_the_map_config() -> None:
    layers = crafted_layers()
    zones = layers["restricted_zones"].copy()
    zones["name"] = list(HOSTILE[:2])
    zones["notice"] = list(HOSTILE[2:4])
    layers["restricted_zones"] = zones
    routes = layers["hazmat_routes"].copy()
    routes["authority"] = [HOSTILE[6], HOSTILE[4]]  # the notice's issuing authority
    layers["hazmat_routes"] = routes
    for publish in (False, True):  # a URL in data is no external asset (no OfflineError)
        html = render_html(build("police", layers, None, options=MapOptions(),
                                 publish=publish), mode="inline")
        script = html[html.index("RiskMap.init("):]
        script = script[:script.index("</script>")]
        assert "<!--" not in script and "<script" not in script and "<img" not in script
        cfg = _config(html)
        lay = next(li for li in cfg["layers"] if li["id"] == "restricted_zones")
        assert [f["properties"]["name"] for f in lay["data"]["features"]] == list(HOSTILE[:2])
        if publish:
            assert cfg["publish"]["authority"] == HOSTILE[6]
            assert cfg["publish"]["notice"] == HOSTILE[2]
