"""``riskmap coverage`` and ``riskmap compounds`` on a small store and on a real sample."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from shapely.geometry import LineString, Point, box

from api.commands import fire
from layers.store import GeoPackageStore

CRS = "EPSG:4548"  # CGCS2000 GK zone 39 (CM 117°E)
X0, Y0 = 500000.0, 3850000.0  # ~117.0°E, 34.8°N
DATA = Path(__file__).resolve().parents[1] / "data"


def _gdf(ids, geoms, crs=CRS, **cols):
    from shapely import affinity

    geoms = [affinity.translate(g, X0, Y0) for g in geoms]
    return gpd.GeoDataFrame({"id": ids, **cols}, geometry=geoms, crs=crs)


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="riskmap")
    sub = parser.add_subparsers(dest="command", required=True)
    fire.register(sub, {})
    args = parser.parse_args(list(argv))
    return int(args.func(args) or 0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("fire") / "district.gpkg"
    s = GeoPackageStore(path)
    s.write({
        "roads": _gdf(["R1"], [LineString([(0, 0), (1000, 0)])], road_class=["local"],
                      speed_kmh=[36.0]),
        "fire_lanes": _gdf(["FL-1", "FL-2", "FL-3"],
                           [LineString([(500, 0), (500, 300)]),
                            LineString([(600, 0), (600, 100)]),
                            LineString([(450, 0), (450, 35)])],
                           compound_id=["C1", "C1", "C1"], width_m=[3.2, 4.5, 4.5],
                           clear_height_m=[4.5, 4.5, 4.5], obstructed=[False, True, False],
                           marked=[True, False, True]),
        "buildings": _gdf(["B1", "B2", "B3", "B4"],
                          [box(480, 300, 520, 320), box(610, 20, 630, 40),
                           box(420, 20, 440, 40), box(850, 20, 870, 40)],
                          use=["residential"] * 4, floors=[6, 6, 6, 6], households=[30, 12, 8, 5]),
        "fire_stations": _gdf(["S1", "M1"], [Point(0, 0), Point(300, 0)],
                              kind=["station", "micro_station"], turnout_s=[60.0, 0.0]),
        "hydrants": _gdf(["H1", "H2"], [Point(560, 3), Point(900, 3)], status=["ok", "faulty"]),
        "compounds": _gdf(["C1", "C2"], [box(400, 10, 700, 400), box(800, 10, 950, 100)],
                          name=["老街小区", "河东小区"]),
    })
    return path


def test_coverage_geojson(store, tmp_path, capsys):
    out = tmp_path / "fire.geojson"
    assert _run("coverage", "--store", str(store), "--out", str(out)) == 0
    fc = json.loads(out.read_text(encoding="utf-8"))
    kinds = sorted({f["properties"]["kind"] for f in fc["features"]})
    # micro crews (12 km/h, no turnout) reach all four buildings within 3 minutes
    assert kinds == ["building_beyond_engine_reach", "building_beyond_hydrant_radius",
                     "dead_end_no_turnaround", "hydrant_faulty",
                     "hydrant_spacing_gap", "lane_narrow", "lane_obstructed", "lane_unmarked"]
    ids = {f["properties"]["finding_id"] for f in fc["features"]}
    assert {"lane_narrow:FL-1", "lane_obstructed:FL-2", "dead_end_no_turnaround:FL-1",
            "dead_end_no_turnaround:FL-2", "building_beyond_engine_reach:B1",
            "hydrant_faulty:H2"} <= ids
    assert "dead_end_no_turnaround:FL-3" not in ids  # 35 m
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][:2]
    assert 116.9 < lon < 117.1 and 34.7 < lat < 34.9  # RFC 7946 lon/lat
    b = json.loads((tmp_path / "fire.buildings.geojson").read_text(encoding="utf-8"))
    props = {f["properties"]["id"]: f["properties"] for f in b["features"]}
    assert props["B1"]["engine_covered"] is False and props["B2"]["engine_covered"] is True
    # the earliest stop: the end of the road piece at the FL-2 junction (x=600), 22 m away
    assert props["B2"]["engine_time_s"] == pytest.approx(60 + 60.0, abs=0.01)
    assert props["B1"]["engine_time_s"] is None  # inf → null
    sa = json.loads((tmp_path / "fire.service_areas.geojson").read_text(encoding="utf-8"))
    assert sorted((f["properties"]["station_id"], f["properties"]["minutes"])
                  for f in sa["features"]) == [(s, m) for s in ("M1", "S1") for m in (3, 5, 8)]
    text = capsys.readouterr().out
    assert "buildings: 4; engine within 5 min: 3 (75.0 %)" in text


def test_coverage_gpkg_and_rules_override(store, tmp_path):
    rules = tmp_path / "district.toml"
    rules.write_text('[[fire_reach]]\nid = "hose_m"\nvalue = 5.0\n'
                     'source = "district instruction"\nconfidence = "LOCAL"\n', encoding="utf-8")
    out = tmp_path / "fire.gpkg"
    assert _run("coverage", "--store", str(store), "--rules", str(rules), "--out", str(out)) == 0
    layers = {name for name, _ in pyogrio.list_layers(out)}
    assert layers == {"fire_findings", "building_coverage", "service_areas"}
    b = gpd.read_file(out, layer="building_coverage").set_index("id")
    # with a 5 m hose nothing 20 m from the road is covered any more
    assert not b["engine_covered"].any()
    assert b.crs.to_epsg() == 4490


def test_compounds_json_csv_geojson(store, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert _run("compounds", "--store", str(store), "--out", str(out)) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["risk_formula"].startswith("score = 100 ×")
    rows = doc["compounds"]
    assert [r["rank"] for r in rows] == [1, 2]
    c1 = next(r for r in rows if r["compound_id"] == "C1")
    assert c1["buildings"] == 3 and c1["engine_covered"] + c1["engine_not_covered"] == 3
    assert c1["households"] == 50
    assert "widen lane FL-1 (3.2 m) to 4 m" in c1["measures_en"]
    assert c1["narrow_m"] == pytest.approx(300.0) and c1["obstructed_m"] == pytest.approx(100.0)
    assert 116.9 < c1["lon"] < 117.1
    assert "compounds ranked" in capsys.readouterr().out
    csv_out = tmp_path / "report.csv"
    assert _run("compounds", "--store", str(store), "--out", str(csv_out)) == 0
    with open(csv_out, encoding="utf-8-sig", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["rank"] for r in table] == ["1", "2"]
    assert "；" in table[0]["measures"] and "拓宽" in table[0]["measures"]
    gj = tmp_path / "report.geojson"
    assert _run("compounds", "--store", str(store), "--out", str(gj)) == 0
    fc = json.loads(gj.read_text(encoding="utf-8"))
    assert fc["features"][0]["geometry"]["type"] == "Polygon"
    assert isinstance(fc["features"][0]["properties"]["measures"], list)


def test_bad_out_extension(store, tmp_path):
    from layers.errors import InputFileError

    with pytest.raises(InputFileError, match="expected one of"):
        _run("coverage", "--store", str(store), "--out", str(tmp_path / "x.txt"))


def test_real_web_mercator_sample_through_the_store(tmp_path):
    """momepy's Bubeneč sample, stored in EPSG:3857, imported to a store and analysed in its
    own analysis CRS (UTM 33N), not in Web-Mercator pseudo-metres."""
    streets = gpd.read_file(DATA / "bubenec_fire.gpkg", layer="streets")
    buildings = gpd.read_file(DATA / "bubenec_fire.gpkg", layer="buildings")
    streets["road_class"] = "local"
    utm = streets.to_crs(32633)
    # the station on the street vertex nearest the centre of the streets
    xy = np.vstack([np.asarray(g.coords) for g in utm.geometry])
    c = xy[np.argmin(np.hypot(*(xy - xy.mean(axis=0)).T))]
    st = gpd.GeoDataFrame({"id": ["S1"], "kind": ["station"], "turnout_s": [60.0]},
                          geometry=[Point(c)], crs=32633).to_crs(3857)
    path = tmp_path / "bubenec.gpkg"
    GeoPackageStore(path).write({"roads": streets, "buildings": buildings, "fire_stations": st})
    out = tmp_path / "bubenec.gpkg.csv"
    assert _run("coverage", "--store", str(path), "--out", str(out)) == 0
    with open(out.with_name("bubenec.gpkg.buildings.csv"), encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 144
    covered = sum(r["engine_covered"] == "True" for r in rows)
    assert covered >= 130  # all but the buildings deep inside blocks (> 50 m from a street)
    times = [float(r["engine_time_s"]) for r in rows if r["engine_time_s"]]
    # 60 s turnout + at most ~600 m at 25 km/h: true metres, not 1.56× Web-Mercator ones
    assert min(times) >= 60.0 and max(times) < 60 + 700 / (25 / 3.6)


# -- the demo district ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_fire(demo_store):
    store, manifest = demo_store
    return fire.run_fire(store, with_service_areas=False), manifest, store


def test_demo_every_planted_lane_defect_found(demo_fire):
    run, manifest, _ = demo_fire
    f = run.findings
    lane_kinds = ("lane_narrow", "lane_low", "lane_obstructed", "lane_unmarked",
                  "dead_end_no_turnaround")
    cases = [c for c in manifest["cases"] if c["layer"] == "fire_lanes"]
    assert len(cases) >= 10
    for c in cases:
        hits = f[f["feature_id"] == c["id"]]
        if c["expect"] == "none":
            assert not hits["kind"].isin(lane_kinds).any(), c
            continue
        row = hits[hits["kind"] == c["case"]]
        assert len(row) == 1, c
        if c["case"] in ("lane_narrow", "lane_low"):
            assert row.iloc[0]["value_m"] == pytest.approx(c["value"])
        if c["case"] == "dead_end_no_turnaround":
            assert row.iloc[0]["length_m"] == pytest.approx(c["length_m"], abs=0.01)
        assert row.iloc[0]["compound_id"] == c["compound_id"]
    # nothing but the planted lanes is flagged
    planted = {c["id"] for c in cases if c["expect"] == "finding"}
    assert set(f.loc[f["kind"].isin(lane_kinds), "feature_id"]) == planted


def test_demo_hydrant_cases(demo_fire):
    run, manifest, _ = demo_fire
    f = run.findings
    faulty = {c["id"] for c in manifest["cases"] if c["case"] == "hydrant_faulty"}
    assert set(f.loc[f["kind"] == "hydrant_faulty", "feature_id"]) == faulty
    gap_roads = set(";".join(f.loc[f["kind"] == "hydrant_spacing_gap", "road_ids"]).split(";"))
    planted: set[str] = set()
    for c in manifest["cases"]:
        if c["case"] == "hydrant_gap":
            planted |= set(c.get("ids", [c["id"]]))
    # the planted streets and nothing else (the expressway has no hydrants, by the rules)
    assert planted and gap_roads == planted


def test_demo_every_compound_reported_counts_add_up(demo_fire):
    run, _, store = demo_fire
    rep = run.compounds
    compounds = store.read("compounds")
    assert sorted(rep["compound_id"]) == sorted(compounds["id"])
    assert rep["rank"].tolist() == list(range(1, len(rep) + 1))
    b = store.read("buildings", crs=run.crs)
    pts = gpd.GeoDataFrame(geometry=b.representative_point(), crs=run.crs)
    joined = gpd.sjoin(pts, compounds.to_crs(run.crs), predicate="within")
    inside = joined.groupby("id").size()
    assert rep.set_index("compound_id")["buildings"].to_dict() == inside.to_dict()
    assert (inside == 8).all()  # 8 slabs per demo compound
    for key in ("engine", "micro", "hydrant"):
        assert (rep[f"{key}_covered"] + rep[f"{key}_not_covered"] == rep["buildings"]).all()
    assert (rep["households"] > 0).all()
    assert rep["risk_score"].is_monotonic_decreasing
    # planted lane defects show up in their compound's report and measures
    top = rep.set_index("compound_id")
    assert top.loc["C-01", "narrow_m"] > 0
    assert any("FL-01-02" in m for m in top.loc["C-01", "measures_en"])
    assert top.loc["C-05", "dead_end_m"] == pytest.approx(55.0, abs=0.01)


def test_bad_district_rules_are_refused(store, tmp_path):
    from layers.errors import RuleError

    bad = tmp_path / "bad.toml"
    bad.write_text('[[fire_reach]]\nid = "hose_m"\nvalue = -5.0\n', encoding="utf-8")
    with pytest.raises(RuleError, match=r"hose_m value is -5\.0; expected a number > 0"):
        _run("coverage", "--store", str(store), "--rules", str(bad),
             "--out", str(tmp_path / "x.geojson"))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[[fire_reach]]\nid = "hose_lenght_m"\nvalue = 60.0\n'
                       'source = "x"\nconfidence = "LOCAL"\n', encoding="utf-8")
    with pytest.raises(RuleError, match="unknown rule"):
        _run("coverage", "--store", str(store), "--rules", str(unknown),
             "--out", str(tmp_path / "x.geojson"))
