"""The demo district: layers valid against the schema, planted cases exact, deterministic."""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections import Counter
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

from layers.demo import CLEARANCE_M, build_demo, manifest_path
from layers.schema import LAYER_NAMES, SCHEMAS

CM = 0.01  # manifest distances hold to < 1 cm in EPSG:4548


@pytest.fixture(scope="module")
def demo(demo_store: tuple[Any, dict[str, Any]]) -> dict[str, gpd.GeoDataFrame]:
    """Every demo layer read back from the store, in the analysis CRS EPSG:4548."""
    store, _ = demo_store
    return {name: store.read(name, crs=4548) for name in LAYER_NAMES}


def _cases(manifest: dict[str, Any], case: str) -> list[dict[str, Any]]:
    return [c for c in manifest["cases"] if c["case"] == case]


# -- layers and counts ------------------------------------------------------------------------
def test_all_layers_stored_in_4490_with_manifest_counts(demo_store, demo):
    store, manifest = demo_store
    infos = {i.name: i for i in store.layers()}
    assert set(LAYER_NAMES) <= set(infos)
    for name in LAYER_NAMES:
        assert "4490" in infos[name].crs
        assert infos[name].count == manifest["counts"][name] == len(demo[name])
    lon0, lat0, lon1, lat1 = infos["buildings"].bbox
    assert lon0 < 117.25 < lon1 and lat0 < 34.80 < lat1
    assert manifest["seed"] == 42 and manifest["scale"] == 1.0
    assert manifest["crs"] == "EPSG:4490" and manifest["analysis_crs"] == "EPSG:4548"


def test_counts_meet_the_brief(demo):
    assert len(demo["buildings"]) >= 20_000
    assert len(demo["roads"]) >= 3_000
    assert len(demo["compounds"]) == 30
    assert Counter(demo["fire_stations"]["kind"]) == {"station": 2, "micro_station": 10}
    assert len(demo["hazmat_routes"]) == 2
    uses = Counter(demo["buildings"]["use"])
    for use in ("residential", "school", "kindergarten", "hospital", "market", "office",
                "industrial", "shed", "gas_station", "oil_depot", "warehouse"):
        assert uses[use] > 0, use
    res = demo["buildings"][demo["buildings"]["use"] == "residential"]
    assert res["households"].notna().all() and (res["households"] >= 1).all()
    assert Counter(demo["roads"]["road_class"]).keys() >= {"expressway", "arterial",
                                                            "collector", "local"}
    roads = demo["roads"]
    assert roads["bridge"].sum() >= 5 and roads["oneway"].sum() >= 50
    tunnel = roads[roads["tunnel"]]
    assert len(tunnel) == 1 and tunnel["hazmat"].iat[0] == "no"
    assert (roads["hazmat"] == "destination").sum() >= 4
    kinds = set(demo["sites"]["kind"])
    assert kinds >= {"school", "hospital", "kindergarten", "gas_station", "oil_depot",
                     "water_source", "river", "railway", "other"}
    assert (demo["hydrants"]["status"] == "faulty").sum() >= 3
    assert len(demo["cameras"]) >= 50


def test_pipelines_as_specified(demo):
    p = demo["pipelines"].set_index("id")
    oil, gas = p.loc["P-OIL-01"], p.loc["P-GAS-01"]
    assert (oil["medium"], oil["kind"], oil["diameter_mm"], oil["pressure_mpa"]) == (
        "crude_oil", "long_distance", 720.0, 6.3)
    assert (gas["medium"], gas["kind"], gas["diameter_mm"], gas["pressure_mpa"]) == (
        "natural_gas", "long_distance", 610.0, 6.3)
    # bends: more than two vertices
    assert shapely.get_num_coordinates(oil.geometry) > 4
    assert len(shapely.get_parts(p.loc["P-OIL-02"].geometry)) == 2
    from layers.schema import pressure_class

    urban = p[p["kind"] == "urban_gas"]
    classes = Counter(pressure_class(v) for v in urban["pressure_mpa"])
    assert set(classes) == {"low", "medium_b", "medium_a", "sub_high_b", "sub_high_a"}
    assert ((urban["wall_mm"] >= 9.5) & (urban["pressure_mpa"] > 0.8)).sum() == 1


def test_layers_follow_the_schema(demo):
    for name, gdf in demo.items():
        schema = SCHEMAS[name]
        assert gdf.geometry.notna().all() and not gdf.geometry.is_empty.any(), name
        assert set(gdf.geom_type) <= set(schema.geometry_types), (name, set(gdf.geom_type))
        assert gdf["id"].is_unique, name
        for spec in schema.fields:
            if spec.required:
                assert spec.name in gdf.columns and gdf[spec.name].notna().all(), (name, spec)
            if spec.name not in gdf.columns:
                continue
            col = gdf[spec.name].dropna()
            if spec.enum is not None:
                assert set(col) <= set(spec.enum), (name, spec.name, set(col) - set(spec.enum))
            if spec.type in ("int", "float") and len(col):
                v = col.astype(float)
                if spec.gt is not None:
                    assert (v > spec.gt).all(), (name, spec.name)
                if spec.minimum is not None:
                    assert (v >= spec.minimum).all(), (name, spec.name)
                if spec.maximum is not None:
                    assert (v <= spec.maximum).all(), (name, spec.name)
            if spec.type == "bool":
                assert set(col) <= {True, False}, (name, spec.name)
    assert demo["buildings"].geometry.is_valid.all()
    assert demo["compounds"].geometry.is_valid.all()


def test_layers_pass_the_import_validator(demo_store):
    validate = pytest.importorskip("layers.validate")
    store, _ = demo_store
    for name in LAYER_NAMES:
        if name == "buildings":
            continue  # 30k rows: covered by test_layers_follow_the_schema
        clean, _report = validate.validate_layer(store.read(name), name)
        assert len(clean) == len(store.read(name, columns=["id"]))


# -- planted pipeline cases -------------------------------------------------------------------
def test_planted_buildings_at_exact_distances(demo, demo_manifest):
    b = demo["buildings"].set_index("id")
    p = demo["pipelines"].set_index("id")
    cases = [c for c in demo_manifest["cases"] if c["layer"] == "buildings"]
    occ = [c for c in cases if c["case"] == "occupancy"]
    setback = [c for c in cases if c["case"] == "setback"]
    # a building over every pipeline
    assert {c["pipeline_id"] for c in occ if c["distance_m"] == 0.0} == set(p.index)
    for c in cases:
        d = shapely.distance(b.geometry[c["id"]], p.geometry[c["pipeline_id"]])
        assert abs(d - c["distance_m"]) < CM, c
        if c["case"] == "setback":
            clear = d - p.at[c["pipeline_id"], "diameter_mm"] / 2000.0
            assert abs(clear - c["clear_distance_m"]) < CM, c
            assert (clear < c["required_m"]) == (c["expect"] == "finding"), c
            assert b.at[c["id"], "use"] == c["use"]
    # a violation / no-finding pair for every setback rule
    pairs = Counter((c["rule"], c["expect"]) for c in setback)
    rules = {c["rule"] for c in setback}
    assert rules >= {"gb50028_low_foundation", "gb50028_medium_b_foundation",
                     "gb50028_medium_a_foundation", "gb50028_sub_high_b_wall",
                     "gb50028_sub_high_a_wall", "gb50028_sub_high_a_wall_9_5mm",
                     "gb50253_oil_crowded_buildings", "gb50253_oil_factories"}
    assert all(pairs[(r, "finding")] == 1 and pairs[(r, "none")] == 1 for r in rules)
    for c in setback:
        if c["expect"] == "none":
            assert c["clear_distance_m"] == pytest.approx(c["required_m"] + 0.5)
    wall = [c for c in setback if c["rule"] == "gb50028_sub_high_a_wall_9_5mm"]
    assert all(c["required_m"] == 6.5 and p.at[c["pipeline_id"], "wall_mm"] >= 9.5
               for c in wall)


def test_no_unplanted_building_near_a_pipeline(demo, demo_manifest):
    b = demo["buildings"]
    tree = shapely.STRtree(b.geometry.to_numpy())
    near = tree.query(demo["pipelines"].geometry.to_numpy(), predicate="dwithin",
                      distance=CLEARANCE_M)
    near_ids = set(b["id"].to_numpy()[np.unique(near[1])])
    planted = {c["id"] for c in demo_manifest["cases"] if c["layer"] == "buildings"}
    assert near_ids == planted


def test_unregistered_hca(demo, demo_manifest):
    (case,) = _cases(demo_manifest, "unregistered_hca")
    # the store may promote single lines to one-part MultiLineStrings
    gas = shapely.line_merge(demo["pipelines"].set_index("id").geometry["P-GAS-01"])
    school = demo["sites"].set_index("id").geometry[case["site_id"]]
    bldg = demo["buildings"].set_index("id").geometry[case["building_id"]]
    a, z = case["chainage_from_m"], case["chainage_to_m"]
    for g in (school, bldg):
        assert abs(shapely.distance(g, gas) - case["distance_m"]) < CM
        at = shapely.line_interpolate_point(gas, [a - CM, a + CM, (a + z) / 2, z - CM, z + CM])
        d = shapely.distance(at, g)
        assert d[0] > 200 and d[1] <= 200 and d[2] <= 200 and d[3] <= 200 and d[4] > 200
    # no other identified site within 200 m of that stretch
    stretch = shapely.ops.substring(gas, a, z)
    sites = demo["sites"]
    near = sites[sites.geometry.distance(stretch) <= 200]
    assert list(near["id"]) == [case["site_id"]]
    # registered HCAs cover the rest of the line and leave exactly this gap
    hca = demo["hca"][demo["hca"]["pipeline_id"] == "P-GAS-01"].sort_values("start_m")
    spans = list(zip(hca["start_m"], hca["end_m"], strict=True))
    assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(gas.length, abs=CM)
    gaps = [(e, s) for (_, e), (s, _) in itertools.pairwise(spans) if s - e > CM]
    assert gaps == [(pytest.approx(a, abs=CM), pytest.approx(z, abs=CM))]


# -- hazmat routes ----------------------------------------------------------------------------
def test_routes(demo, demo_manifest):
    routes = demo["hazmat_routes"].set_index("id").geometry
    zones = demo["restricted_zones"].set_index("id")
    roads = demo["roads"]
    tree = shapely.STRtree(roads.geometry.to_numpy())
    for rid in ("HR-01", "HR-02"):  # routes follow the streets: every 5 m lies on a road
        g = routes[rid]
        pts = shapely.line_interpolate_point(g, np.arange(0.0, g.length, 5.0))
        _, dist = tree.query_nearest(pts, return_distance=True)
        assert dist.max() < CM, rid
    (bad,) = _cases(demo_manifest, "route_through_forbidden")
    assert bad["zone_id"] == "Z-01" and zones.at["Z-01", "rule"] == "forbidden"
    assert zones.at["Z-01", "kind"] == "water_source" and zones.at["Z-01", "hours"] == ""
    inside = routes["HR-02"].intersection(zones.geometry["Z-01"])
    assert inside.length == pytest.approx(bad["chainage_to_m"] - bad["chainage_from_m"], abs=CM)
    ends = sorted(routes["HR-02"].project(shapely.get_point(inside, k)) for k in (0, -1))
    assert ends == [pytest.approx(bad["chainage_from_m"], abs=CM),
                    pytest.approx(bad["chainage_to_m"], abs=CM)]
    others = zones.drop(index="Z-01").geometry.union_all()
    assert routes["HR-02"].intersection(others).length == 0
    (ok,) = _cases(demo_manifest, "route_ok")
    assert routes[ok["id"]].intersection(zones.geometry.union_all()).length == 0
    # HR-01 uses no hazmat=no road
    no = roads[roads["hazmat"] == "no"].geometry.union_all()
    assert routes["HR-01"].intersection(no).length == 0
    kinds = Counter(zip(zones["kind"], zones["rule"], strict=True))
    assert kinds[("school_area", "forbidden")] >= 5 and kinds[("city_center", "permit")] == 1
    avoid = zones[zones["rule"] == "avoid"]
    assert len(avoid) >= 1 and (avoid["penalty"] > 1).all()
    assert (zones.loc[zones["kind"] == "school_area", "hours"] == "07:00-09:00;17:00-19:00").all()
    for c in _cases(demo_manifest, "depot"):
        site = demo["sites"].set_index("id").loc[c["id"]]
        assert (site["kind"], site["name"]) == ("other", "depot")
        ll = gpd.GeoSeries([site.geometry.centroid], crs=4548).to_crs(4490).iloc[0]
        assert (ll.x, ll.y) == (pytest.approx(c["lonlat"][0], abs=1e-6),
                                pytest.approx(c["lonlat"][1], abs=1e-6))


def test_roads_split_at_every_junction(demo):
    roads = demo["roads"]
    coords = shapely.get_coordinates(roads.geometry.to_numpy())
    assert len(coords) == 2 * len(roads)  # straight two-point segments
    nodes = np.round(coords, 3)
    # no road endpoint lies inside another segment (it would be an unsplit junction)
    pts = shapely.points(np.unique(nodes, axis=0))
    tree = shapely.STRtree(roads.geometry.to_numpy())
    pi, ri = tree.query(pts, predicate="dwithin", distance=0.01)
    ends = shapely.distance(pts[pi], shapely.get_point(roads.geometry.to_numpy()[ri], 0))
    ends2 = shapely.distance(pts[pi], shapely.get_point(roads.geometry.to_numpy()[ri], -1))
    assert (np.minimum(ends, ends2) < 0.01).all()


# -- fire lanes and hydrants ------------------------------------------------------------------
def _endpoint_degree(lines: np.ndarray) -> Counter:
    deg: Counter = Counter()
    for g in lines:
        c = shapely.get_coordinates(g)
        deg[tuple(np.round(c[0], 2))] += 1
        deg[tuple(np.round(c[-1], 2))] += 1
    return deg


def test_fire_lanes(demo, demo_manifest):
    lanes = demo["fire_lanes"].set_index("id")
    roads = demo["roads"]
    deg = _endpoint_degree(np.concatenate([lanes.geometry.to_numpy(),
                                           roads.geometry.to_numpy()]))
    road_nodes = {tuple(np.round(c, 2)) for c in shapely.get_coordinates(roads.geometry)}
    # every compound's lanes reach the street network at shared endpoints
    for cid, grp in lanes.groupby("compound_id"):
        ends = {tuple(np.round(c, 2)) for c in shapely.get_coordinates(grp.geometry)}
        assert len(ends & road_nodes) == 2, cid
    planted = {c["id"]: c for c in demo_manifest["cases"] if c["layer"] == "fire_lanes"}
    kinds = Counter(c["case"] for c in planted.values())
    assert kinds.keys() == {"lane_narrow", "lane_low", "lane_obstructed", "lane_unmarked",
                            "dead_end_no_turnaround", "dead_end_with_turnaround",
                            "dead_end_short"}
    for lid, c in planted.items():
        lane = lanes.loc[lid]
        tip = tuple(np.round(shapely.get_coordinates(lane.geometry)[-1], 2))
        if c["case"] == "lane_narrow":
            assert lane["width_m"] == c["value"] < 4.0
        elif c["case"] == "lane_low":
            assert lane["clear_height_m"] == c["value"] < 4.0
        elif c["case"] == "lane_obstructed":
            assert lane["obstructed"]
        elif c["case"] == "lane_unmarked":
            assert not lane["marked"]
        elif c["case"] == "dead_end_with_turnaround":
            assert lane.geometry.length == pytest.approx(c["value"]) and c["value"] > 40
            assert deg[tip] == 3  # the branch ends on its turnaround loop
            loop = lanes.loc[c["turnaround_ids"]].geometry.union_all()
            ring = shapely.polygonize([loop]).geoms[0]
            assert ring.area == pytest.approx(144.0)
        else:  # dead ends without turnaround
            assert deg[tip] == 1
            assert lane.geometry.length == pytest.approx(c["value"])
            assert (c["value"] > 40) == (c["expect"] == "finding")
    # nothing else is defective: widths, heights, marking, obstruction, long dead ends
    rest = lanes.drop(index=list(planted))
    assert (rest["width_m"] >= 4.0).all() and (rest["clear_height_m"] >= 4.0).all()
    assert rest["marked"].all() and not rest["obstructed"].any()
    for lid, lane in rest.iterrows():
        c = shapely.get_coordinates(lane.geometry)
        tips = [deg[tuple(np.round(c[k], 2))] == 1 for k in (0, -1)]
        if any(tips):
            assert lane.geometry.length <= 40, lid
    # the compounds hold their residential buildings
    comp = demo["compounds"]
    inside = gpd.sjoin(demo["buildings"], comp, predicate="within")
    assert inside.groupby("index_right").size().min() >= 8
    assert (inside["use"] == "residential").all()


def test_hydrants(demo, demo_manifest):
    h = demo["hydrants"].set_index("id")
    faulty = {c["id"] for c in _cases(demo_manifest, "hydrant_faulty")}
    assert faulty == set(h.index[h["status"] == "faulty"])
    (gap,) = _cases(demo_manifest, "hydrant_gap")
    roads = demo["roads"].set_index("id")
    stretch = roads.loc[gap["ids"]].geometry.union_all()
    assert stretch.length == pytest.approx(gap["length_m"]) and gap["length_m"] > 120
    # no hydrant on the verge of the gap streets (verge hydrants stand <= 19 m off the line)
    assert h.geometry.distance(stretch).min() > 20
    # elsewhere hydrants stand <= 50 m apart: the middle of every street off the gap, the
    # expressway and bridges has a hydrant within 25 m along + verge offset
    streets = roads[(roads["road_class"] != "expressway") & ~roads.index.isin(gap["ids"])
                    & ~roads["bridge"]]
    pts = shapely.line_interpolate_point(streets.geometry.to_numpy(), 0.5, normalized=True)
    _, dist = shapely.STRtree(h.geometry.to_numpy()).query_nearest(pts, return_distance=True)
    assert dist.max() < math.hypot(25.0, 19.0) + CM


# -- determinism, scale, CLI ------------------------------------------------------------------
def test_deterministic_for_a_seed(demo_store):
    a = build_demo(seed=7, scale=0.2)
    b = build_demo(seed=7, scale=0.2)
    for name in LAYER_NAMES:
        assert_geodataframe_equal(a.layers[name], b.layers[name], check_less_precise=False)
    strip = lambda m: {k: v for k, v in m.items() if k != "timing"}  # noqa: E731
    assert strip(a.manifest) == strip(b.manifest)
    c = build_demo(seed=8, scale=0.2)
    assert not a.layers["buildings"].geometry.equals(c.layers["buildings"].geometry)
    # planted cases do not depend on the seed
    _, m42 = demo_store
    planted = lambda m: [x for x in m["cases"] if x["case"] not in ("hydrant_faulty",)]  # noqa: E731
    assert json.loads(json.dumps(planted(c.manifest))) == planted(m42)


def test_scale_grows_and_thins(demo_manifest):
    small = build_demo(seed=42, scale=0.1)
    n1 = demo_manifest["counts"]["buildings"]
    assert small.manifest["counts"]["buildings"] < n1 * 0.2
    assert small.manifest["counts"]["roads"] == demo_manifest["counts"]["roads"]


def test_cli_writes_gpkg_and_manifest(tmp_path, capsys):
    from api.commands import demo as cmd

    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers(), {})
    out = tmp_path / "d" / "small.gpkg"
    args = parser.parse_args(["demo", "--out", str(out), "--seed", "3", "--scale", "0.05"])
    assert args.func(args) == 0
    m = json.loads(manifest_path(out).read_text(encoding="utf-8"))
    assert manifest_path(out).name == "small.manifest.json"
    assert (m["seed"], m["scale"]) == (3, 0.05)
    assert "wrote" in capsys.readouterr().out
    # written through a temporary store renamed into place: nothing else is left behind
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "small.gpkg", "small.manifest.json", "small_positions.csv"]  # + machine positions


def test_bad_scale_is_rejected():
    from layers.errors import RiskmapError

    with pytest.raises(RiskmapError, match="scale is 0"):
        build_demo(scale=0)


def test_manifest_path():
    assert str(manifest_path("data/demo.gpkg")) == "data/demo.manifest.json"
