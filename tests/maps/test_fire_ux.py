"""The fire map as a fire officer uses it (issue 14): service areas off at first; the
buildings beyond 5-minute reach visible at the district view (a grid of counts) and kept in
a standalone export (all of them, as centre points); hydrants near the lane/hydrant findings
kept in an export; a compound ranking whose rows say why each compound ranks where it does
and zoom to it (Chromium at 1440x900 and 390x844, a standalone page: no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, box

from geo.crs import analysis_crs
from geo.findings import make_findings
from maps.base import MapOptions

VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
LON0, LAT0 = 117.25, 34.80


def _config(html: str) -> dict[str, Any]:
    start = html.index("{", html.index("RiskMap.init("))
    cfg, _end = json.JSONDecoder().raw_decode(html[start:])
    return dict(cfg)


def _layer(cfg: dict[str, Any], lid: str) -> dict[str, Any]:
    return next(lay for lay in cfg["layers"] if lay["id"] == lid)


def _report() -> gpd.GeoDataFrame:
    """A compound report as geo.compounds writes it: three compounds, one with every kind
    of problem, one beyond hydrant reach, one without defect."""
    rows = [
        dict(compound_id="C-1", name="幸福小区", rank=1, households=300, risk_score=40.0,
             score_engine=25.0, score_micro=0.0, score_hydrant=0.0, score_lanes=10.0,
             score_station=5.0, engine_not_covered=5, micro_not_covered=0, hydrant_not_covered=0,
             unqualified_lanes_m=90.0, narrow_m=70.0, low_m=0.0, obstructed_m=0.0, dead_end_m=20.0,
             deficit_station=0.37, nearest_station="FS-1", nearest_station_s=412.0,
             faulty_hydrants=1, spacing_gap_m=250.0,
             geometry=box(LON0 - 0.0005, LAT0 + 0.0022, LON0 + 0.0012, LAT0 + 0.0032)),
        dict(compound_id="C-2", name="和平小区", rank=2, households=120, risk_score=8.0,
             score_engine=0.0, score_micro=0.0, score_hydrant=8.0, score_lanes=0.0,
             score_station=0.0, engine_not_covered=0, micro_not_covered=0, hydrant_not_covered=3,
             unqualified_lanes_m=0.0, narrow_m=0.0, low_m=0.0, obstructed_m=0.0, dead_end_m=0.0,
             deficit_station=0.0, nearest_station="FS-1", nearest_station_s=200.0,
             faulty_hydrants=0, spacing_gap_m=0.0, unmarked_m=40.0,
             geometry=box(LON0 + 0.003, LAT0 + 0.0022, LON0 + 0.004, LAT0 + 0.0032)),
        dict(compound_id="C-3", name="光明小区", rank=3, households=80, risk_score=0.0,
             score_engine=0.0, score_micro=0.0, score_hydrant=0.0, score_lanes=0.0,
             score_station=0.0, engine_not_covered=0, micro_not_covered=0, hydrant_not_covered=0,
             unqualified_lanes_m=0.0, narrow_m=0.0, low_m=0.0, obstructed_m=0.0, dead_end_m=0.0,
             deficit_station=0.0, nearest_station="FS-1", nearest_station_s=150.0,
             faulty_hydrants=0, spacing_gap_m=0.0,
             geometry=box(LON0 + 0.005, LAT0 + 0.0022, LON0 + 0.006, LAT0 + 0.0032)),
    ]
    return gpd.GeoDataFrame(rows, crs=4490)


def _lane_findings() -> gpd.GeoDataFrame:
    lines = [LineString([(LON0, LAT0 + 0.0025 + i * 0.0002), (LON0 + 0.001, LAT0 + 0.0025 + i * 0.0002)])
             for i in range(3)]
    parts = []
    for i, (kind, fid) in enumerate((("lane_narrow", "FL-1"), ("lane_narrow", "FL-2"),
                                     ("dead_end_no_turnaround", "FL-3"))):
        parts.append(make_findings(pd.DataFrame([dict(
            severity="high", layer="fire_lanes", feature_id=fid, compound_id="C-1",
            rule_id="fire.lane_min_width_m", rule_source="GB 50016-2014 7.1.8",
            message_zh=f"消防车道 {fid}", message_en=f"lane {fid}")]),
            kind=kind, geometry=[lines[i]], crs=4490, id_columns=["feature_id"]))
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=4490)


def _reach_findings(n: int) -> gpd.GeoDataFrame:
    """``n`` buildings beyond 5-minute reach: 3 per 200 m cell, in the analysis CRS grid."""
    crs = analysis_crs(gpd.GeoDataFrame(geometry=[Point(LON0, LAT0)], crs=4490))
    x0 = np.floor(gpd.GeoSeries([Point(LON0, LAT0 - 0.01)], crs=4490).to_crs(crs).x[0] / 200) * 200
    y0 = np.floor(gpd.GeoSeries([Point(LON0, LAT0 - 0.01)], crs=4490).to_crs(crs).y[0] / 200) * 200
    geoms = [box(x0 + 200 * (i // 3) + 20 + 50 * (i % 3), y0 + 20,
                 x0 + 200 * (i // 3) + 40 + 50 * (i % 3), y0 + 40) for i in range(n)]
    df = pd.DataFrame([dict(severity="high", layer="buildings", feature_id=f"B-{i:04d}",
                            other_layer="fire_stations", other_id="FS-1",
                            rule_id="fire.station_reach_s", rule_source="GB 51080-2015 4.1.3",
                            time_s=364.567, required_s=300.0, hose_m=50.0,
                            compound_id="C-2" if i == 0 else None,
                            message_zh="建筑超出5分钟可达范围" * 5, message_en="beyond reach" * 5)
                       for i in range(n)])
    f = make_findings(df, kind="building_beyond_engine_reach",
                      geometry=gpd.GeoSeries(geoms, crs=crs).to_crs(4490).values, crs=4490,
                      id_columns=["feature_id"])
    return gpd.GeoDataFrame(f, crs=4490)


def _service_areas() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame([{"station_id": "FS-1", "kind": "station", "minutes": m,
                              "geometry": Point(LON0, LAT0).buffer(0.002 * m)} for m in (3, 5, 8)],
                            crs=4490)


def test_rank_reasons_say_why_each_compound_ranks_there() -> None:
    from maps.fire import rank_reasons

    rows = rank_reasons(_report().iloc[::-1], _lane_findings())
    assert [(r["id"], r["rank"], r["score"]) for r in rows] == [
        ("C-1", 1, 40.0), ("C-2", 2, 8.0), ("C-3", 3, 0.0)]
    assert rows[0]["reasons"] == {
        "zh": "消防车5分钟不可达 5 栋，消防车道宽度不足 2 处 70 m、尽头无回车场 1 处 20 m，"
              "首车到场 412 s（FS-1），故障消火栓 1 个，消火栓间距超限道路 250 m",
        "en": "5 buildings beyond 5-min engine reach; fire lanes: too narrow 70 m (2 lanes), dead "
              "end without turnaround 20 m (1 lane); first engine after 412 s (FS-1); 1 faulty "
              "hydrant; 250 m of street beyond hydrant spacing"}
    assert rows[1]["reasons"] == {"zh": "消火栓保护半径外 3 栋，消防车道未标识 40 m",
                                  "en": "3 buildings beyond hydrant radius; fire lanes not marked 40 m"}
    assert rows[2]["reasons"] == {"zh": "未发现缺陷", "en": "no defect found"}
    assert rows[0]["name"] == "幸福小区" and rows[0]["households"] == 300


def test_reach_grid_counts_per_cell() -> None:
    from maps.fire import reach_grid

    g = reach_grid(_reach_findings(7))
    assert g.crs.to_epsg() == 4490
    assert g["count"].tolist() == [3, 3, 1]
    assert [c if isinstance(c, str) else None for c in g["compounds"]] == ["C-2", None, None]
    crs = analysis_crs(g)
    side = g.to_crs(crs).geometry.apply(lambda p: p.bounds[2] - p.bounds[0]).to_numpy()
    np.testing.assert_allclose(side, 200.0, atol=1e-6)


def test_hydrants_near_lane_findings_only() -> None:
    from maps.fire import hydrants_near

    lanes = _lane_findings()
    reach = _reach_findings(3)
    near = Point(LON0 + 0.0005, LAT0 + 0.0025 + 0.0012)   # ~100 m from the lane FL-1
    far = Point(LON0 + 0.0005, LAT0 + 0.0025 + 0.003)     # ~300 m from every lane
    by_reach = reach.geometry.iloc[0].centroid            # on a building beyond reach
    hyd = gpd.GeoDataFrame({"id": ["H-1", "H-2", "H-3"], "status": ["ok", "ok", "faulty"]},
                           geometry=[near, far, by_reach], crs=4490)
    hyd.attrs.update(riskmap_total=10943, riskmap_around_m=150.0)
    out = hydrants_near(hyd, pd.concat([lanes, reach], ignore_index=True))
    assert out["id"].tolist() == ["H-1"]
    assert out.attrs == {"riskmap_total": 10943, "riskmap_around_m": 150.0}
    plain = hyd.copy()
    plain.attrs.clear()
    assert hydrants_near(plain, lanes) is plain  # a layer read whole stays whole


def _fire(mode: str, n_reach: int = 7) -> dict[str, Any]:
    from crafted_maps import crafted_layers

    from maps.fire import build_fire
    from maps.offline import render_html

    layers: dict[str, Any] = crafted_layers()
    layers["compound_report"] = _report()
    layers["service_areas"] = _service_areas()
    findings = pd.concat([_lane_findings(), _reach_findings(n_reach)], ignore_index=True)
    opts = MapOptions(mode=mode, inline_max=4)  # type: ignore[arg-type]
    return _config(render_html(build_fire(layers, gpd.GeoDataFrame(findings, crs=4490),
                                          options=opts), mode="inline"))


def test_fire_config_standalone_and_served() -> None:
    cfg = _fire("standalone")
    assert _layer(cfg, "service_areas")["visible"] is False
    grid = _layer(cfg, "building_beyond_engine_reach_grid")
    assert grid["pane"] == "reachgrid" and grid["visible"] is True
    assert [f["properties"]["count"] for f in grid["data"]["features"]] == [3, 3, 1]
    assert grid["note"] == {"zh": "共 7 栋；放大至 15 级及以上显示建筑",
                            "en": "7 buildings; zoom to 15+ for the buildings"}
    pts = _layer(cfg, "building_beyond_engine_reach")
    assert pts["kind"] == "point" and len(pts["data"]["features"]) == 7
    assert pts["data"]["features"][0]["properties"] == {
        "feature_id": "B-0000", "other_id": "FS-1", "time_s": 365.0, "required_s": 300.0,
        "hose_m": 50.0, "compound_id": "C-2"}
    assert pts["note"]["zh"] == "全部 7 栋，以建筑中心点表示，15 级及以上显示（GB 51080-2015 4.1.3）"
    assert cfg["fire"]["zoomPanes"] == {"reachgrid": {"max": 15}}
    assert cfg["fire"]["zoomLayers"] == {"building_beyond_engine_reach": {"min": 15}}
    rk = cfg["fire"]["ranking"]
    assert [r["id"] for r in rk["rows"]] == ["C-1", "C-2", "C-3"] and rk["shown"] == 10
    assert "panels" not in cfg or all(p["id"] != "ranking" for p in cfg["panels"])
    # the findings list lists findings, not grid cells
    assert cfg["findingsList"]["layers"] == ["lane_findings", "building_beyond_engine_reach"]

    served = _fire("served")
    poly = _layer(served, "building_beyond_engine_reach")
    assert poly["remote"]["url"] == "/collections/fire_findings/items?kind=building_beyond_engine_reach"
    assert poly["kind"] == "polygon"
    assert served["fire"]["zoomLayers"] == {}
    assert _layer(served, "building_beyond_engine_reach_grid")["pane"] == "reachgrid"
    # a few buildings beyond reach stay inline polygons, in both modes
    small = _fire("standalone", n_reach=3)
    assert _layer(small, "building_beyond_engine_reach")["kind"] == "polygon"
    assert len(_layer(small, "building_beyond_engine_reach")["data"]["features"]) == 3


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crafted_maps import crafted_layers

    from maps.fire import build_fire
    from maps.offline import render_html

    layers: dict[str, Any] = crafted_layers()
    layers["compound_report"] = _report()
    layers["service_areas"] = _service_areas()
    findings = pd.concat([_lane_findings(), _reach_findings(7)], ignore_index=True)
    html = render_html(build_fire(layers, gpd.GeoDataFrame(findings, crs=4490),
                                  options=MapOptions(inline_max=4)), mode="inline")
    path = tmp_path_factory.mktemp("fire_ux") / "fire.html"
    path.write_text(html, encoding="utf-8")
    return path


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_fire_page_ranking_and_reach_layers(browser: Any, page_file: Path, viewport: str) -> None:
    from maps.browser import wait_for_map

    page = browser.new_page(viewport=VIEWPORTS[viewport])
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_file.as_uri(), wait_until="load")
    wait_for_map(page)
    m = page.locator(".folium-map")
    # service areas off, the grid shown at the district view, the points not yet
    assert page.evaluate("RiskMap.app.map.hasLayer(RiskMap.app.layers.service_areas.layer)") is False
    page.evaluate("RiskMap.app.map.setZoom(13, {animate: false})")
    page.wait_for_timeout(100)
    assert m.get_attribute("data-fire-panes") == "reachgrid"
    assert m.get_attribute("data-zoom-building_beyond_engine_reach") == "hidden"
    page.evaluate("RiskMap.app.map.setZoom(16, {animate: false})")
    page.wait_for_timeout(100)
    assert m.get_attribute("data-fire-panes") == ""
    assert m.get_attribute("data-zoom-building_beyond_engine_reach") == "shown"
    # the ranking: each row says why; a click zooms to the compound and opens its report
    if page.locator(".riskmap-fire-ranking.collapsed").count():
        page.click(".riskmap-ranking-toggle")
    rows = page.locator(".riskmap-ranking-row")
    assert rows.count() == 3
    assert rows.nth(0).inner_text().split("\t")[:3] == ["1", "幸福小区", "40.00"]
    assert "消防车5分钟不可达 5 栋" in rows.nth(0).inner_text()
    assert "未发现缺陷" in rows.nth(2).inner_text()
    page.evaluate("RiskMap.app.map.setView([34.79, 117.24], 13, {animate: false})")
    page.click(".riskmap-ranking-row[data-compound='C-2']")
    page.wait_for_selector(".leaflet-popup-content .riskmap-popup", timeout=5000)
    assert "和平小区" in page.inner_text(".leaflet-popup-content")
    assert m.get_attribute("data-ranking-shown") == "C-2"
    assert page.evaluate("RiskMap.app.map.getZoom()") >= 16
    centre = page.evaluate("[RiskMap.app.map.getCenter().lng, RiskMap.app.map.getCenter().lat]")
    assert abs(centre[0] - (LON0 + 0.0035)) < 0.002 and abs(centre[1] - (LAT0 + 0.0027)) < 0.002
    # English: the reasons follow the language
    page.click(".riskmap-lang a")
    page.wait_for_timeout(100)
    assert "3 buildings beyond hydrant radius" in page.locator(".riskmap-ranking-row").nth(1).inner_text()
    assert errors == []
    assert [u for u in requests if not (u.startswith("file:") or u.startswith("data:"))] == []
    page.close()


@pytest.mark.slow
def test_demo_ranking_and_export_keep_what_the_served_map_shows(
        demo_store: tuple[Any, dict[str, Any]]) -> None:
    """The demo district: score parts add up to the score; the export keeps every building
    beyond 5-minute reach (as points) and the hydrants near the lane/hydrant findings."""
    from api.service import AnalysisService
    from maps.fire import rank_reasons
    from maps.offline import render_html
    from maps.sources import build, map_options, read_layers

    store, _manifest = demo_store
    svc = AnalysisService(store)
    findings, extra = svc.map_inputs("fire")
    rep = extra["compound_report"]
    parts = rep[["score_engine", "score_micro", "score_hydrant", "score_lanes", "score_station"]]
    np.testing.assert_allclose(parts.sum(axis=1), rep["risk_score"], atol=0.03)
    rows = rank_reasons(rep, findings)
    assert rows[0]["reasons"]["zh"] == "消防车道尽头无回车场 1 处 55 m"
    options = map_options(None, mode="standalone")
    layers = read_layers(store, "fire", options=options, findings=findings)
    layers.update(extra)
    cfg = _config(render_html(build("fire", layers, findings, options=options), mode="inline"))
    n_reach = int((findings["kind"] == "building_beyond_engine_reach").sum())
    assert n_reach > 5000
    assert len(_layer(cfg, "building_beyond_engine_reach")["data"]["features"]) == n_reach
    hyd = _layer(cfg, "hydrants")
    total = len(store.read("hydrants"))
    assert 100 < len(hyd["data"]["features"]) < total // 10
    assert f"/ {total:,} 个要素" in hyd["note"]["zh"] and "150 m" in hyd["note"]["zh"]


def test_demo_overview_export_keeps_the_same_hydrants_as_the_fire_export(
        demo_store: tuple[Any, dict[str, Any]]) -> None:
    """The overview export keeps the hydrants near lane/hydrant findings, as the fire export
    does — not every hydrant within 150 m of any finding (9,102 of 10,943 before)."""
    from api.service import AnalysisService
    from maps.offline import render_html
    from maps.sources import build, map_options, read_layers

    store, _manifest = demo_store
    svc = AnalysisService(store)
    options = map_options(None, mode="standalone")
    kept = {}
    for name in ("fire", "overview"):
        findings, extra = svc.map_inputs(name)
        layers = read_layers(store, name, options=options, findings=findings)
        layers.update(extra)
        cfg = _config(render_html(build(name, layers, findings, options=options), mode="inline"))
        kept[name] = sorted(f["properties"]["id"]
                            for f in _layer(cfg, "hydrants")["data"]["features"])
    assert kept["overview"] == kept["fire"] and 100 < len(kept["fire"]) < 1000
