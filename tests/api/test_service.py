"""The one analysis service: one cache keyed by (store, store version, rules version), one
hazmat network shared by the CLI and the API, the registry-sync findings function."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point

from api import analysis as an
from api.app import create_app
from api.district import District
from api.service import (
    CACHE,
    AnalysisService,
    ResultCache,
    bind,
    finding_records,
    service_for,
)
from api.settings import Settings
from layers.errors import InputFileError, LayerNotFoundError
from layers.store import GeoPackageStore
from tests.api.conftest import API_KEYS, auth
from tests.api.test_analysis import grid_path  # noqa: F401 - fixture: roads, zone, routes


@pytest.fixture()
def grid(grid_path: Path, tmp_path: Path) -> GeoPackageStore:  # noqa: F811
    """A writable copy of the grid store (roads, a forbidden centre, two routes)."""
    dst = tmp_path / "grid.gpkg"
    dst.write_bytes(grid_path.read_bytes())
    return GeoPackageStore(dst)


def test_cache_keys_carry_store_and_rules_versions(store_copy, tmp_path):
    rules = tmp_path / "d.toml"
    rules.write_text('[[hazmat_routing]]\nid = "snap_max_m"\nvalue = 300.0\n', encoding="utf-8")
    shipped, district = AnalysisService(store_copy), AnalysisService(store_copy, District(rules))
    k1, k2 = shipped.key("x"), district.key("x")
    assert k1[0] == k2[0] == store_copy.url and k1[1] == k2[1] and k1[3] == "x"
    assert k1[2] == District().rules_version and k2[2] == District(rules).rules_version
    assert k1 != k2
    store_copy.write({"fire_stations": store_copy.read("fire_stations")})
    assert shipped.key("x")[1] != k1[1]


def test_one_network_per_store_and_rules_version_for_cli_and_api(grid, tmp_path):
    CACHE.clear()
    cli = AnalysisService(GeoPackageStore(grid.path))  # another object, same file
    with TestClient(create_app(Settings(store=str(grid.path), api_keys=API_KEYS))) as c:
        api_svc = c.app.state.service
        net = api_svc.hazmat_network()
        assert cli.hazmat_network() is net
        assert an.hazmat_network(api_svc.store) is net  # the thin wrapper: same service
        rules = tmp_path / "d.toml"
        rules.write_text('[[hazmat_routing]]\nid = "snap_max_m"\nvalue = 300.0\n',
                         encoding="utf-8")
        other = AnalysisService(cli.store, District(rules)).hazmat_network()
        assert other is not net and other.params.snap_max_m == 300.0
        # a layer write builds a new network on next use
        grid.write({"restricted_zones": grid.read("restricted_zones").iloc[:0]})
        assert cli.hazmat_network() is not net and len(cli.hazmat_network().zones) == 0


def test_results_are_computed_once_per_version(store_copy):
    calls: list[int] = []
    an.register(an.AnalysisDef("test_calls", "t", "t", (), frozenset({"admin"}),
                               lambda svc: calls.append(1) or svc.store.read("fire_stations"),
                               findings=False))
    try:
        svc = AnalysisService(store_copy)
        a = svc.result("test_calls")
        assert svc.result("test_calls") is a and calls == [1]
        assert AnalysisService(GeoPackageStore(store_copy.path)).result("test_calls") is a
        assert svc.peek(svc.result_key("test_calls")) is a
        store_copy.write({"fire_stations": store_copy.read("fire_stations")})
        assert svc.peek(svc.result_key("test_calls")) is None
        svc.result("test_calls")
        assert calls == [1, 1]
    finally:
        an.ANALYSES[:] = [d for d in an.ANALYSES if d.id != "test_calls"]


def test_results_are_recomputed_at_the_districts_midnight(store_copy):
    """Findings judged on the district's date (permits, inspections) are not served from
    yesterday's cache: the result key holds the date in the district's zone (UTC+8)."""
    from datetime import UTC, datetime

    calls: list[int] = []
    an.register(an.AnalysisDef("test_day", "t", "t", (), frozenset({"admin"}),
                               lambda svc: calls.append(1) or svc.store.read("fire_stations"),
                               findings=False))
    instant = [datetime(2026, 12, 7, 15, 59, 59, tzinfo=UTC)]  # 23:59:59 in Shanghai
    try:
        svc = AnalysisService(store_copy, District(clock=lambda: instant[0]))
        assert svc.result_key("test_day") == ("result", "test_day", "2026-12-07")
        svc.result("test_day")
        svc.result("test_day")
        assert calls == [1]
        instant[0] = datetime(2026, 12, 7, 16, 0, 0, tzinfo=UTC)  # 00:00 on the 8th there
        assert svc.result_key("test_day") == ("result", "test_day", "2026-12-08")
        svc.result("test_day")
        assert calls == [1, 1]
    finally:
        an.ANALYSES[:] = [d for d in an.ANALYSES if d.id != "test_day"]


def test_result_cache_evicts_least_recently_used():
    cache = ResultCache(2)
    cache.get("a", lambda: 1)
    cache.get("b", lambda: 2)
    cache.get("a", lambda: 0)  # a is now the most recent
    cache.get("c", lambda: 3)
    assert cache.peek("a") == 1 and cache.peek("b") is None and cache.peek("c") == 3
    cache.resize(1)  # never shrinks below a size already asked for
    assert cache.size == 2


def test_findings_for_registry_sync(store_copy):
    svc = AnalysisService(store_copy)
    defn, frame = svc.findings("route_check")
    assert defn.id == "route_check" and defn.owner == "police"
    assert frame is svc.result("route_check")
    with pytest.raises(InputFileError, match="no findings analysis 'location_classes'; "
                                             "expected one of pipeline_findings"):
        svc.findings("location_classes")
    bare = GeoPackageStore(store_copy.path.with_name("bare.gpkg"))
    bare.write({"roads": store_copy.read("fire_stations").iloc[:0]})
    with pytest.raises(LayerNotFoundError, match=r"hazmat_routes.*riskmap import --store "
                                                 + str(bare.path).replace(".", r"\.")):
        AnalysisService(bare).findings("route_check")


def test_finding_records_carry_lon_lat():
    frame = gpd.GeoDataFrame({"finding_id": ["a", "b"], "kind": ["k", "k"]},
                             geometry=[Point(117.2512345678, 34.8), Point()], crs=4490)
    recs = finding_records(frame.to_crs(4548))
    assert [r["finding_id"] for r in recs] == ["a", "b"]
    assert recs[0]["lon"] == pytest.approx(117.2512346, abs=1e-9)
    assert recs[0]["lat"] == pytest.approx(34.8, abs=1e-7)
    assert recs[1]["lon"] is None and recs[1]["lat"] is None
    assert finding_records(frame.iloc[:0]) == []


def test_map_inputs_feed_each_map_from_the_service(grid, store_copy):
    svc = AnalysisService(grid)
    found, extra = svc.map_inputs("police")
    assert found is not None and extra == {}
    assert list(found["finding_id"]) == list(svc.result("route_check")["finding_id"])
    assert "route_in_forbidden_zone" in set(found["kind"])
    # a store without roads: no fire analyses, and that is not an error
    assert AnalysisService(store_copy).map_inputs("fire") == (None, {})
    found, extra = AnalysisService(store_copy).map_inputs("planner")
    assert set(extra) == {"hca_computed", "location_classes", "monitoring_coverage"}
    # the planner's findings analyses this store can run (no warning signs, no construction
    # sites: their layers are absent): pipelines, HCAs and statutory inspection
    svc2 = AnalysisService(store_copy)
    expected = [fid for a in ("pipeline_findings", "hca_findings", "inspection_findings")
                for fid in svc2.result(a)["finding_id"]]
    assert sorted(found["finding_id"]) == sorted(expected)
    assert {"inspection_missing:P-01", "inspection_missing:P-02"} <= set(found["finding_id"])


def test_service_for_finds_the_apps_service(small_store_path: Path, tmp_path):
    store = GeoPackageStore(small_store_path)
    rules = tmp_path / "d.toml"
    rules.write_text("", encoding="utf-8")
    app = create_app(Settings(store=str(small_store_path), rules=rules), store=store)
    assert service_for(store) is app.state.service
    assert service_for(store).district.rules == rules
    other = GeoPackageStore(small_store_path)
    assert service_for(other) is not app.state.service  # unbound: the environment's district
    assert service_for(other).district.rules is None
    mine = bind(AnalysisService(other, District(rules)))
    assert service_for(other) is mine


def test_served_analyses_say_their_rules(client):
    body = client.get("/analyses", headers=auth("planner")).json()
    assert body["rules"] == District().rules_version and body["rules_file"] is None
    assert body["timezone"] == "Asia/Shanghai"
    assert "pipeline_findings" in {a["id"] for a in body["analyses"]}


def test_one_video_coverage_figure_everywhere(demo_store):
    """The registry stats, the dashboard, the workbook and the CLI use the maps' figure (camera
    coverage of people-dense HCA length), floored: 99.7 % on the demo, not the 1.0 of the
    HCAs flagged video_monitored (issue 14)."""
    from geo.hca import coverage_share
    from maps.planner import fmt_share

    svc = AnalysisService(demo_store[0])
    mon = svc.monitoring()
    share = coverage_share(svc.result("monitoring_coverage"))
    assert mon["basis"] == "camera coverage of people-dense HCA length"
    assert mon["coverage"] == int(share * 10_000) / 10_000 < 1.0
    assert fmt_share(mon["coverage"]) == fmt_share(share) == "99.7 %"
    assert [t["met"] for t in mon["targets"]] == [True, True, False]
