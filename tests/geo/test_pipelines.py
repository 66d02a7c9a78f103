"""Occupancy and setback findings on crafted geometry, with exact answers."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
import shapely.affinity
from shapely.geometry import LineString, MultiLineString, box

from geo.errors import CRSError
from geo.findings import FINDING_COLUMNS
from geo.pipelines import check_pipelines, find_occupancy, find_setbacks
from layers.rules import load_rules

CRS = "EPSG:4548"
X0, Y0 = 500_000.0, 3_800_000.0
RULES = load_rules("pipelines")
OCC = RULES.rows("occupancy")
SB = RULES.rows("setback")


def pipes(*rows: dict) -> gpd.GeoDataFrame:
    base = {"kind": "long_distance", "medium": "natural_gas", "pressure_mpa": 6.3,
            "diameter_mm": 610.0, "wall_mm": np.nan, "status": "in_service"}
    recs = [{**base, **r} for r in rows]
    geoms = [r.pop("geometry") for r in recs]
    return gpd.GeoDataFrame(recs, geometry=geoms, crs=CRS)


def blds(*rows: tuple[str, object, str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"id": [r[0] for r in rows], "use": [r[2] for r in rows]},
                            geometry=[r[1] for r in rows], crs=CRS)


def east(y: float = Y0, length: float = 2000.0) -> LineString:
    return LineString([(X0, y), (X0 + length, y)])


def above(x: float, gap: float, y: float = Y0, w: float = 20.0, h: float = 15.0) -> shapely.Polygon:
    """A footprint whose south wall is ``gap`` m north of the line y."""
    return box(x, y + gap, x + w, y + gap + h)


def check(p: gpd.GeoDataFrame, b: gpd.GeoDataFrame, **kw) -> gpd.GeoDataFrame:
    return check_pipelines(p, b, occupancy_rules=kw.get("occ", OCC),
                           setback_rules=kw.get("sb", SB))


def test_4_99_is_occupancy_5_01_is_not() -> None:
    p = pipes({"id": "P-GAS-01", "geometry": east()})
    b = blds(("B-IN", above(X0 + 500, 4.99), "residential"),
             ("B-OUT", above(X0 + 800, 5.01), "residential"),
             ("B-EXACT", above(X0 + 1100, 5.0), "residential"))
    f = check(p, b)
    # the corridor edge belongs to the corridor (Art. 30 "各五米地域范围内" includes 5 m)
    assert f["finding_id"].tolist() == ["occupancy:P-GAS-01:B-EXACT", "occupancy:P-GAS-01:B-IN"]
    exact = f.iloc[0]
    assert exact["distance_m"] == 5.0 and exact["shortfall_m"] == 0.0
    assert exact["kind"] == "occupancy" and exact["overlap_m2"] == 0.0
    row = f.iloc[1]
    assert row["distance_m"] == pytest.approx(4.99, abs=1e-9)
    assert row["required_m"] == 5.0
    assert row["shortfall_m"] == pytest.approx(0.01, abs=1e-9)
    assert (row["chainage_from_m"], row["chainage_to_m"]) == (500.0, 520.0)
    assert row["station"] == "K0+510.0"
    assert row["rule_id"] == "ppl_art30_corridor"
    assert row["severity"] == "critical"
    # 20 m wide footprint, 0.01 m deep inside the 5 m corridor
    assert row["overlap_m2"] == pytest.approx(0.2, abs=0.01)
    assert "4.99 m" in row["message_zh"] and "K0+510.0" in row["message_zh"]
    assert "4.99 m" in row["message_en"] and "Art. 30" in row["message_en"]
    assert list(f.columns[: len(FINDING_COLUMNS)]) == list(FINDING_COLUMNS)


def test_pipe_crossing_a_footprint() -> None:
    p = pipes({"id": "P-OIL-01", "medium": "crude_oil", "geometry": east()})
    b = blds(("B-X", box(X0 + 300, Y0 - 10, X0 + 320, Y0 + 10), "shed"))
    f = check(p, b)
    assert f["finding_id"].tolist() == ["occupancy:P-OIL-01:B-X"]
    assert f["distance_m"].iat[0] == 0.0
    assert f["overlap_m2"].iat[0] == pytest.approx(200.0, abs=1e-6)  # 20 m x 10 m corridor
    assert (f["chainage_from_m"].iat[0], f["chainage_to_m"].iat[0]) == (300.0, 320.0)
    assert "与管道交叉" in f["message_zh"].iat[0]
    assert "crosses the centre line" in f["message_en"].iat[0]


def test_multilinestring_pipeline_with_gap() -> None:
    line = MultiLineString([[(X0 + 1100, Y0), (X0 + 2000, Y0)], [(X0, Y0), (X0 + 1000, Y0)]])
    p = pipes({"id": "P-M", "geometry": line})
    b = blds(("B-GAP", above(X0 + 1040, 3.0, h=5), "residential"),  # over the gap: 40 m off
             ("B-2", above(X0 + 1500, 2.0), "residential"))
    f = check(p, b)
    assert f["finding_id"].tolist() == ["occupancy:P-M:B-2"]
    assert f["distance_m"].iat[0] == pytest.approx(2.0)
    # chainage skips the 100 m gap: x = 1500 → 1000 + 400
    assert (f["chainage_from_m"].iat[0], f["chainage_to_m"].iat[0]) == (1400.0, 1420.0)


def test_foundation_vs_outer_wall() -> None:
    # medium A (0.3 MPa): 1.5 m to the foundation; sub-high B (0.6 MPa): 5.0 m to the wall
    od = 200.0
    p = pipes({"id": "G-MA", "kind": "urban_gas", "pressure_mpa": 0.3, "diameter_mm": od,
               "geometry": east(Y0)},
              {"id": "G-SB", "kind": "urban_gas", "pressure_mpa": 0.6, "diameter_mm": od,
               "geometry": east(Y0 + 1000)})
    r = od / 2000
    b = blds(("F-BAD", above(X0 + 100, r + 1.4), "residential"),
             ("F-OK", above(X0 + 300, r + 1.6), "residential"),
             ("W-BAD", above(X0 + 100, r + 4.5, Y0 + 1000), "residential"),
             ("W-OK", above(X0 + 300, r + 5.5, Y0 + 1000), "residential"))
    f = check(p, b).set_index("finding_id")
    assert sorted(f.index) == ["setback:G-MA:F-BAD", "setback:G-SB:W-BAD"]
    fa, wa = f.loc["setback:G-MA:F-BAD"], f.loc["setback:G-SB:W-BAD"]
    assert (fa["rule_id"], fa["measure"], fa["required_m"]) == (
        "gb50028_medium_a_foundation", "foundation", 1.5)
    assert (wa["rule_id"], wa["measure"], wa["required_m"]) == (
        "gb50028_sub_high_b_wall", "outer_wall", 5.0)
    assert fa["clear_distance_m"] == pytest.approx(1.4)
    assert fa["shortfall_m"] == pytest.approx(0.1)
    assert wa["shortfall_m"] == pytest.approx(0.5)
    assert "基础" in fa["message_zh"] and "foundation" in fa["message_en"]
    assert "外墙" in wa["message_zh"] and "outer wall" in wa["message_en"]


@pytest.mark.parametrize(("wall", "required", "rule"), [
    (np.nan, 13.5, "gb50028_sub_high_a_wall"),
    (9.4, 13.5, "gb50028_sub_high_a_wall"),
    (9.5, 6.5, "gb50028_sub_high_a_wall_9_5mm"),
    (11.0, 6.5, "gb50028_sub_high_a_wall_9_5mm"),
    (11.9, 3.0, "gb50028_sub_high_a_wall_11_9mm"),
])  # fmt: skip
def test_wall_thickness_reduction(wall: float, required: float, rule: str) -> None:
    od = 323.9
    p = pipes({"id": "P-GAS-U03", "kind": "urban_gas", "pressure_mpa": 1.2,
               "diameter_mm": od, "wall_mm": wall, "geometry": east()})
    b = blds(("B-SHORT", above(X0 + 100, od / 2000 + required - 0.5), "residential"),
             ("B-OK", above(X0 + 400, od / 2000 + required + 0.5), "residential"))
    f = check(p, b)
    assert f["finding_id"].tolist() == ["setback:P-GAS-U03:B-SHORT"]
    assert f["rule_id"].iat[0] == rule
    assert f["required_m"].iat[0] == required
    assert f["clear_distance_m"].iat[0] == pytest.approx(required - 0.5, abs=1e-9)
    assert f["shortfall_m"].iat[0] == pytest.approx(0.5, abs=1e-9)


def test_oil_setbacks_by_building_use_and_occupancy_reported_once() -> None:
    od = 508.0
    p = pipes({"id": "P-OIL-01", "medium": "crude_oil", "diameter_mm": od, "geometry": east()})
    r = od / 2000
    b = blds(("RES-14", above(X0 + 100, r + 14.5), "residential"),
             ("RES-15", above(X0 + 200, r + 15.5), "residential"),
             ("IND-19", above(X0 + 300, r + 19.5), "industrial"),
             ("IND-21", above(X0 + 400, r + 20.5), "industrial"),
             ("SHED-6", above(X0 + 500, r + 6.0), "shed"),  # no oil setback for sheds
             ("OCC", above(X0 + 600, 3.0), "residential"))
    f = check(p, b)
    assert f["finding_id"].tolist() == [
        "occupancy:P-OIL-01:OCC", "setback:P-OIL-01:IND-19", "setback:P-OIL-01:RES-14"]
    sb = f[f["kind"] == "setback"].set_index("feature_id")
    assert sb.loc["RES-14", "rule_id"] == "gb50253_oil_crowded_buildings"
    assert sb.loc["IND-19", "rule_id"] == "gb50253_oil_factories"
    assert sb["shortfall_m"].round(9).tolist() == [0.5, 0.5]
    assert sb["severity"].tolist() == ["medium", "medium"]
    assert len(find_occupancy(p, b, occupancy_rules=OCC)) == 1
    assert find_setbacks(p, b, occupancy_rules=OCC, setback_rules=SB)["feature_id"].tolist() == [
        "IND-19", "RES-14"]


def test_urban_gas_occupancy_crossing_and_protection_zone() -> None:
    od = 160.0
    p = pipes({"id": "G-LOW", "kind": "urban_gas", "pressure_mpa": 0.005, "diameter_mm": od,
               "geometry": east()})
    thr = od / 2000 + 0.5  # 0.58 m from the centre line
    b = blds(("CROSS", box(X0 + 100, Y0 - 5, X0 + 110, Y0 + 5), "residential"),
             ("IN-ZONE", above(X0 + 300, thr - 0.01), "residential"),
             ("SETBACK", above(X0 + 500, thr + 0.1), "residential"),  # clear 0.6 < 0.7
             ("OK", above(X0 + 700, od / 2000 + 0.71), "residential"))
    f = check(p, b)
    assert f["finding_id"].tolist() == ["occupancy:G-LOW:CROSS", "occupancy:G-LOW:IN-ZONE",
                                        "setback:G-LOW:SETBACK"]
    assert f["rule_id"].tolist()[:2] == ["urban_gas_protection_zone"] * 2
    assert f["required_m"].iat[0] == pytest.approx(thr)


def test_unconfirmed_rows_are_inactive_by_default(tmp_path) -> None:
    od = 406.4
    p = pipes({"id": "G-HB", "kind": "urban_gas", "pressure_mpa": 2.0, "diameter_mm": od,
               "geometry": east()})
    b = blds(("B", above(X0 + 100, od / 2000 + 10.0), "residential"))
    assert check(p, b).empty
    district = tmp_path / "district.toml"
    district.write_text('[[setback]]\nid = "gb50028_high_b_wall"\nactive = true\n')
    rules = load_rules("pipelines", override=district)
    f = check(p, b, sb=rules.rows("setback"))
    assert f["rule_id"].tolist() == ["gb50028_high_b_wall"]
    assert f["shortfall_m"].iat[0] == pytest.approx(5.0)


def test_distances_match_brute_force_on_a_long_diagonal_line() -> None:
    rng = np.random.default_rng(7)
    line = LineString([(X0, Y0), (X0 + 30_000, Y0 + 20_000), (X0 + 31_000, Y0 + 40_000)])
    p = pipes({"id": "P-LONG", "medium": "crude_oil", "diameter_mm": 508.0, "geometry": line})
    # buildings scattered along the line, some near, most far
    t = rng.uniform(0, 1, 3000)
    pts = shapely.line_interpolate_point(line, t, normalized=True)
    off = rng.uniform(-40, 40, (3000, 2))
    xy = shapely.get_coordinates(pts) + off
    geoms = shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + 8, xy[:, 1] + 6)
    b = gpd.GeoDataFrame({"id": [f"B{i:04d}" for i in range(3000)], "use": "residential"},
                         geometry=geoms, crs=CRS)
    f = check(p, b)
    d = shapely.distance(geoms, line)
    clear = d - 508.0 / 2000
    want_occ = {f"B{i:04d}" for i in np.flatnonzero(d < 5.0)}
    want_sb = {f"B{i:04d}" for i in np.flatnonzero((d >= 5.0) & (clear < 15.0))}
    assert set(f.loc[f["kind"] == "occupancy", "feature_id"]) == want_occ
    assert set(f.loc[f["kind"] == "setback", "feature_id"]) == want_sb
    idx = f["feature_id"].str[1:].astype(int).to_numpy()
    np.testing.assert_allclose(f["distance_m"].to_numpy(), d[idx], atol=1e-9)


def test_deterministic_and_stable_ids() -> None:
    p = pipes({"id": "P1", "geometry": east()}, {"id": "P2", "geometry": east(Y0 + 6)})
    b = blds(("A", above(X0 + 10, 1.0), "residential"), ("C", above(X0 + 50, 2.0), "school"))
    f1 = check(p, b)
    f2 = check(p.iloc[::-1], b.iloc[::-1])
    assert f1["finding_id"].tolist() == ["occupancy:P1:A", "occupancy:P1:C",
                                         "occupancy:P2:A", "occupancy:P2:C"]
    assert f1.drop(columns="geometry").equals(f2.drop(columns="geometry"))


def test_abandoned_pipelines_are_skipped_and_crs_enforced() -> None:
    p = pipes({"id": "P1", "status": "abandoned", "geometry": east()})
    b = blds(("A", above(X0 + 10, 1.0), "residential"))
    assert check(p, b).empty
    with pytest.raises(CRSError, match="degrees"):
        check(p.to_crs(4490), b.to_crs(4490))


def test_demo_planted_cases_on_every_building(demo_store) -> None:
    """check_pipelines on the whole demo (no pre-selection): every planted case found, no
    finding on a planted 'none' building, distances within 1 cm of the design values and of
    an independent shapely computation."""
    from geo.crs import analysis_crs

    store, manifest = demo_store
    p = store.read("pipelines")
    crs = analysis_crs(p)
    p = p.to_crs(crs)
    b = store.read("buildings").to_crs(crs)
    f = check(p, b)
    cases = [c for c in manifest["cases"]
             if c["layer"] == "buildings" and c["case"] in ("occupancy", "setback")]
    assert len(cases) >= 20
    got = {(r.feature_id, r.other_id): r for r in f.itertuples(index=False)}
    for c in cases:
        hit = got.get((c["id"], c["pipeline_id"]))
        if c["expect"] == "none":
            assert hit is None or hit.kind != c["case"], c
            continue
        assert hit is not None and hit.kind == c["case"], c
        assert hit.distance_m == pytest.approx(c["distance_m"], abs=0.01)
    planted = {c["id"] for c in cases}
    assert {k[0] for k in got} & planted == {c["id"] for c in cases if c["expect"] == "finding"}
    pg = p.set_index("id").geometry
    bg = b.set_index("id").geometry
    d = shapely.distance(np.asarray(bg.loc[f["feature_id"]].values),
                         np.asarray(pg.loc[f["other_id"]].values))
    np.testing.assert_allclose(f["distance_m"].to_numpy(), d, atol=0.01)


def test_a_stricter_district_occupancy_row_for_one_medium_wins(tmp_path) -> None:
    district = tmp_path / "d.toml"
    district.write_text(
        '[[occupancy]]\nid = "lpg_10m"\npipeline_kind = "long_distance"\nmedia = ["lpg"]\n'
        'measure_from = "centre_line"\nhalf_width_m = 10.0\nseverity = "critical"\n'
        'source = "District notice"\nconfidence = "LOCAL"\n')
    occ = load_rules("pipelines", override=district).rows("occupancy")
    p = pipes({"id": "LPG", "medium": "lpg", "geometry": east()},
              {"id": "GAS", "geometry": east(Y0 + 1000)})
    b = blds(("A", above(X0 + 100, 8.0), "residential"),
             ("B", above(X0 + 100, 8.0, Y0 + 1000), "residential"))
    f = check(p, b, occ=occ)
    assert f["finding_id"].tolist() == ["occupancy:LPG:A"]
    assert f["rule_id"].tolist() == ["lpg_10m"]


def test_search_radius_per_pipeline() -> None:
    from geo.pipelines import search_radius

    p = pipes({"id": "OIL", "medium": "crude_oil", "diameter_mm": 508.0, "geometry": east()},
              {"id": "GAS", "geometry": east()},
              {"id": "U", "kind": "urban_gas", "pressure_mpa": 1.2, "diameter_mm": 400.0,
               "wall_mm": 10.0, "geometry": east()})
    np.testing.assert_allclose(search_radius(p, occupancy_rules=OCC, setback_rules=SB),
                               [20.254, 5.0, 6.7])


def test_no_occupancy_row_means_no_occupancy_even_on_the_line() -> None:
    # without a matching occupancy row the threshold is 0: a crossing footprint (distance 0)
    # must not become an occupancy finding (only the setback rows apply)
    p = pipes({"id": "P-GAS-01", "geometry": east()})
    b = blds(("B-X", box(X0 + 100, Y0 - 5, X0 + 120, Y0 + 5), "residential"))
    assert check(p, b, occ=[], sb=[]).empty
    sb = [{"id": "any", "pipeline_kind": "long_distance", "measure_to": "outer_wall",
           "required_m": 1.0, "severity": "high", "source": "test", "confidence": "C1"}]
    f = check(p, b, occ=[], sb=sb)
    assert f["kind"].tolist() == ["setback"] and f["distance_m"].tolist() == [0.0]


@pytest.mark.parametrize("od", [200.0, 219.0, 323.9, 610.0])
def test_setback_exactly_at_the_limit_is_compliant(od: float) -> None:
    # GB 50028 Table 6.3.3-1 (不应小于 5.0 m, sub-high B): 5.0 m clear is compliant even when
    # distance − OD/2 comes out as 4.9999999998 at projected coordinates; 4.99 m is not
    p = pipes({"id": "U", "kind": "urban_gas", "pressure_mpa": 0.6, "diameter_mm": od,
               "geometry": east()})
    b = blds(("B-5.00", above(X0 + 100, od / 2000 + 5.0), "residential"),
             ("B-4.99", above(X0 + 400, od / 2000 + 4.99), "residential"))
    f = check(p, b)
    assert f["finding_id"].tolist() == ["setback:U:B-4.99"]
    assert f["shortfall_m"].iat[0] == pytest.approx(0.01, abs=1e-6)


def test_chainages_and_messages_on_a_line_that_doubles_back() -> None:
    """Crafted geometry with exact chainages (the nearest point of the whole line for every
    vertex, the first along the line on ties) and the messages word for word."""
    od = 508.0
    u_turn = LineString([(X0, Y0), (X0 + 2000, Y0), (X0 + 2000, Y0 + 20), (X0, Y0 + 20)])
    gap = MultiLineString([[(X0, Y0 + 1000), (X0 + 1000, Y0 + 1000)],
                           [(X0 + 1100, Y0 + 1000), (X0 + 2000, Y0 + 1000)]])
    p = pipes({"id": "P-U", "medium": "crude_oil", "diameter_mm": od, "geometry": u_turn},
              {"id": "P-G", "medium": "crude_oil", "diameter_mm": od, "geometry": gap})
    b = blds(
        # between the legs, 8 m from both: south vertices on the way out, north on the way back
        ("B-BETWEEN", box(X0 + 500, Y0 + 8, X0 + 520, Y0 + 12), "residential"),
        # inside the first bend: 3 m from the outward leg, 4 m from the short leg
        ("B-BEND", box(X0 + 1985, Y0 + 3, X0 + 1996, Y0 + 9), "industrial"),
        # across the boundary of the first two 200 m pieces, south of the line
        ("B-PIECE", box(X0 + 190, Y0 - 12, X0 + 215, Y0 - 6), "school"),
        # before the start of the line
        ("B-END", box(X0 - 20, Y0 + 2, X0 - 8, Y0 + 6), "office"),
        # over the gap of P-G: chainage does not count the 100 m gap
        ("B-GAP", box(X0 + 990, Y0 + 1002, X0 + 1110, Y0 + 1006), "residential"),
    )
    f = check(p, b).set_index("finding_id")
    assert list(f.index) == ["occupancy:P-G:B-GAP", "occupancy:P-U:B-BEND",
                             "setback:P-U:B-BETWEEN", "setback:P-U:B-END",
                             "setback:P-U:B-PIECE"]
    got = f[["chainage_from_m", "chainage_to_m", "chainage_m", "station"]]
    assert got.to_dict("index") == {
        "occupancy:P-G:B-GAP": {"chainage_from_m": 990.0, "chainage_to_m": 1010.0,
                                "chainage_m": 1000.0, "station": "K1+000.0"},
        "occupancy:P-U:B-BEND": {"chainage_from_m": 1985.0, "chainage_to_m": 2009.0,
                                 "chainage_m": 1990.5, "station": "K1+990.5"},
        "setback:P-U:B-BETWEEN": {"chainage_from_m": 500.0, "chainage_to_m": 3520.0,
                                  "chainage_m": 510.0, "station": "K0+510.0"},
        "setback:P-U:B-END": {"chainage_from_m": 0.0, "chainage_to_m": 0.0,
                              "chainage_m": 0.0, "station": "K0+000.0"},
        "setback:P-U:B-PIECE": {"chainage_from_m": 190.0, "chainage_to_m": 215.0,
                                "chainage_m": 202.5, "station": "K0+202.5"},
    }
    np.testing.assert_allclose(f["distance_m"], [2.0, 3.0, 8.0, np.hypot(8, 2), 6.0])
    bend = f.loc["occupancy:P-U:B-BEND"]
    assert bend["overlap_m2"] == 26.0  # y <= 5 (11 x 2) and x >= 1995 above it (1 x 4)
    occ = RULES.get("occupancy", "ppl_art30_corridor")
    assert bend["message_zh"] == (
        "建筑物 B-BEND（厂房）占压原油长输管道 P-U：距管道中心线 3.00 m，位于"
        "管道中心线两侧各5米管道保护范围（距中心线 5.00 m 以内）内，深入 2.00 m；"
        f"桩号 K1+990.5（K1+985.0～K2+009.0），保护范围内面积 26.0 m²。依据：{occ['source']}。")
    assert bend["message_en"] == (
        "Building B-BEND (industrial) occupies crude oil long-distance pipeline P-U: it is "
        "3.00 m from the centre line, inside the 5 m corridor each side of the centre line "
        "(5.00 m from the centre line) by 2.00 m, at K1+990.5 (K1+985.0 to K2+009.0); "
        f"26.0 m² inside the corridor. Rule: {occ['source_en']}.")
    sb = RULES.get("setback", "gb50253_oil_crowded_buildings")
    between = f.loc["setback:P-U:B-BETWEEN"]
    assert between["message_zh"] == (
        "建筑物 B-BETWEEN（住宅）与原油长输管道 P-U 的水平净距为 7.75 m，小于要求的 15.00 m"
        f"（至建筑物外墙面），不足 7.25 m；桩号 K0+510.0。依据：{sb['source']}。")
    assert between["message_en"] == (
        "Building B-BETWEEN (residential) is 7.75 m clear of crude oil long-distance pipeline "
        f"P-U at K0+510.0; {sb['source_en']} requires 15.00 m to the building outer wall — "
        "7.25 m short.")
    cross = check(p, blds(("X", box(X0 + 300, Y0 - 1, X0 + 310, Y0 + 1), "shed")))
    assert cross["message_zh"].iat[0].startswith(
        "建筑物 X（棚屋）占压原油长输管道 P-U：与管道交叉，位于")
    assert "it crosses the centre line, inside" in cross["message_en"].iat[0]


def test_overlap_area_where_the_line_passes_through_and_where_it_ends() -> None:
    od = 160.0
    thr = od / 2000 + 0.5  # urban gas protection zone: 0.58 m from the centre line
    xs = np.arange(0.0, 1001.0, 10.0)  # a vertex every 10 m, as urban mains are drawn
    line = LineString(np.c_[X0 + xs, np.full(len(xs), Y0)])
    p = pipes({"id": "G", "kind": "urban_gas", "pressure_mpa": 0.005, "diameter_mm": od,
               "geometry": line})
    end_box = box(X0 + 1000.3, Y0 - 5, X0 + 1010, Y0 + 5)  # 0.3 m beyond the end
    b = blds(("THROUGH", box(X0 + 103, Y0 - 5, X0 + 127, Y0 + 5), "residential"),
             ("END", end_box, "residential"),
             ("EDGE", box(X0 + 300, Y0 + 0.2, X0 + 305, Y0 + 6), "residential"))
    f = check(p, b).set_index("feature_id")
    assert f.loc["THROUGH", "overlap_m2"] == round(24 * 2 * thr, 2)  # 27.84
    assert f.loc["EDGE", "overlap_m2"] == round(5 * (thr - 0.2), 2)  # 1.9
    # the round cap at the end of the line reaches 0.28 m into the footprint
    cap = shapely.area(shapely.intersection(end_box, line.buffer(thr, quad_segs=64)))
    assert 0.1 < cap < 0.3
    assert f.loc["END", "overlap_m2"] == round(cap, 2)


def test_overlap_areas_clipped_in_numpy_equal_geos() -> None:
    """The corridor area inside convex footprints (numpy Sutherland–Hodgman) equals GEOS's
    intersection area: rotated and clockwise rectangles, an L-shaped footprint (GEOS),
    flat- and round-capped bands, a corridor with a hole, a two-part corridor."""
    from geo.pipelines import _area_inside

    rng = np.random.default_rng(11)
    n = 600
    x, y = X0 + rng.uniform(0, 5000, n), Y0 + rng.uniform(0, 5000, n)
    w, h, a = rng.uniform(5, 30, n), rng.uniform(5, 20, n), rng.uniform(0, np.pi, n)
    feet = np.array([shapely.affinity.rotate(box(xi - wi / 2, yi - hi / 2, xi + wi / 2,
                                                 yi + hi / 2), ai, use_radians=True)
                     for xi, yi, wi, hi, ai in zip(x, y, w, h, a, strict=True)])
    feet[::7] = shapely.reverse(feet[::7])
    feet[::11] = shapely.union(feet[::11],
                               shapely.box(x[::11], y[::11], x[::11] + 15, y[::11] + 2))
    turn = np.cumsum(rng.normal(0, 0.4, (n, 6)), axis=1)
    lx = x[:, None] - 20 + np.cumsum(8 * np.cos(turn), axis=1)
    ly = y[:, None] + rng.uniform(-8, 8, (n, 1)) + np.cumsum(8 * np.sin(turn), axis=1)
    lines = shapely.linestrings(np.stack([lx, ly], axis=2))
    corr = shapely.buffer(lines, 0.6, quad_segs=64, cap_style="flat")
    corr[1::4] = shapely.buffer(lines[1::4], 3.0, quad_segs=64)
    corr[::13] = shapely.difference(shapely.buffer(feet[::13], 6.0),
                                    shapely.buffer(feet[::13], 1.0))
    corr[::17] = shapely.union(corr[::17], shapely.box(x[::17] - 3, y[::17] - 3,
                                                        x[::17] + 3, y[::17] + 3))
    want = shapely.area(shapely.intersection(feet, corr))
    assert (want > 0).sum() > 300
    np.testing.assert_allclose(_area_inside(feet, corr), want, atol=1e-7, rtol=0)


def test_chunks_checked_in_threads_give_the_same_findings(demo_store, monkeypatch) -> None:
    """Buildings are checked in chunks, one thread each: the findings (order, every column,
    geometries) do not depend on how many threads or where the chunks are cut."""
    from geo import pipelines
    from geo.crs import analysis_crs

    store, _manifest = demo_store
    p = store.read("pipelines")
    crs = analysis_crs(p)
    p = p.to_crs(crs)
    b = store.read("buildings").to_crs(crs)
    one = check_pipelines(p, b, occupancy_rules=OCC, setback_rules=SB, workers=1)
    assert pipelines._chunks(15_000, 4) == [0, 15_000]  # chunks of >= 10,000 buildings
    assert pipelines._chunks(45_000, 8) == [0, 11_250, 22_500, 33_750, 45_000]
    monkeypatch.setattr(pipelines, "_CHUNK_MIN", 1)  # cut even the demo into chunks
    assert pipelines._chunks(10, 3) == [0, 3, 6, 10]
    for workers in (2, 3, 7):
        many = check_pipelines(p, b, occupancy_rules=OCC, setback_rules=SB, workers=workers)
        assert len(one) > 10
        assert many.drop(columns="geometry").equals(one.drop(columns="geometry"))
        assert shapely.equals_exact(many.geometry.values, one.geometry.values, 0).all()


def test_message_numbers_and_texts_are_what_f_strings_print() -> None:
    """Messages are joined column-wise in Arrow: every number reads as ``f"{x:.2f}"`` /
    ``f"{x:.1f}"`` prints it (halves, float noise around them, -0.0, tiny negatives, huge,
    nan, inf), every text as ``f"{v}"`` (None, NaN, numbers)."""
    from geo.pipelines import _fixed, _text

    rng = np.random.default_rng(7)
    x = np.r_[rng.uniform(-50, 500, 20_000), np.round(rng.uniform(0, 100, 5_000), 3),
              np.arange(0, 20, 0.005), np.arange(0, 20, 0.05) + 1e-12,
              [0.0, -0.0, -0.001, -0.004, 0.005, 0.015, 0.025, 0.125, 2.675, 1.005, 0.285,
               1e15, 4.5e15, 1e300, -1e300, np.nan, np.inf, -np.inf, 5e-324]]
    for digits in (1, 2):
        got = _fixed(x, digits).to_pylist()
        assert got == [format(v, f".{digits}f") for v in x.tolist()]
    vals = np.array(["B1", None, np.nan, 3, "占压", 2.5], dtype=object)
    assert _text(vals).to_pylist() == ["B1", "None", "nan", "3", "占压", "2.5"]
    assert _text(np.array(["B1", None], dtype=object)).to_pylist() == ["B1", "None"]
    assert _text(np.array(["B1", np.nan], dtype=object)).to_pylist() == ["B1", "nan"]


def test_threads_keep_one_pass_order_and_columns(monkeypatch) -> None:
    """Chunks cut by thread give what one pass gives: equal finding ids (a pipeline recorded
    as two sections of one id, a building id used twice) in one pass's order, and the
    occupancy columns first even when the first chunk has only setbacks."""
    from geo import pipelines

    monkeypatch.setattr(pipelines, "_CHUNK_MIN", 2)
    p = pipes({"id": "P1", "medium": "crude_oil", "geometry": east(length=1000.0)},
              {"id": "P1", "medium": "crude_oil",
               "geometry": LineString([(X0 + 1000, Y0), (X0 + 2000, Y0)])})
    b = blds(("B0", above(X0 + 1500, 2.0, w=10, h=10), "residential"),  # by section 2
             ("S", above(X0 + 1700, 12.0, w=10, h=10), "residential"),   # setback only
             ("X", above(X0 + 1800, 400.0), "residential"),
             ("Y", above(X0 + 1900, 400.0), "residential"),
             ("B0", above(X0 + 500, 2.0, w=10, h=10), "residential"))   # by section 1
    one = check_pipelines(p, b, occupancy_rules=OCC, setback_rules=SB, workers=1)
    assert one["finding_id"].tolist() == ["occupancy:P1:B0", "occupancy:P1:B0", "setback:P1:S"]
    assert one.geometry.bounds["minx"].tolist() == [X0 + 500, X0 + 1500, X0 + 1700]
    # the first chunk holds only the setback building
    many = check_pipelines(p, b.iloc[[1, 2, 0, 3, 4]], occupancy_rules=OCC, setback_rules=SB,
                           workers=2)
    single = check_pipelines(p, b.iloc[[1, 2, 0, 3, 4]], occupancy_rules=OCC,
                             setback_rules=SB, workers=1)
    assert list(many.columns) == list(single.columns) == list(one.columns)
    assert many.drop(columns="geometry").equals(single.drop(columns="geometry"))
    assert shapely.equals_exact(many.geometry.values, single.geometry.values, 0).all()
    # equal ids in different chunks: one pass orders them by section, then building
    order = [0, 1, 2, 4, 3]  # B0 by section 2 in the first chunk, B0 by section 1 in the second
    many = check_pipelines(p, b.iloc[order], occupancy_rules=OCC, setback_rules=SB, workers=2)
    single = check_pipelines(p, b.iloc[order], occupancy_rules=OCC, setback_rules=SB, workers=1)
    assert single.geometry.bounds["minx"].tolist() == [X0 + 500, X0 + 1500, X0 + 1700]
    assert many.geometry.bounds["minx"].tolist() == [X0 + 500, X0 + 1500, X0 + 1700]
