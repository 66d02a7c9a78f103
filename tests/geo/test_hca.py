"""HCA identification (GB 32167-2015), merge, registered-layer diff and monitoring coverage."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, Point, box

from geo.hca import (
    diff_hca,
    hca_polygons,
    identify_hca,
    monitoring_coverage,
    monitoring_findings,
    potential_impact_radius,
)
from geo.location_class import location_classes
from layers.rules import load_rules

CRS = "EPSG:4548"
X0, Y0 = 500_000.0, 3_800_000.0
R = load_rules("location_class", "hca")


def pipes(*rows: dict) -> gpd.GeoDataFrame:
    base = {"kind": "long_distance", "medium": "natural_gas", "pressure_mpa": 6.3,
            "diameter_mm": 610.0, "status": "in_service"}
    recs = [{**base, **r} for r in rows]
    return gpd.GeoDataFrame(recs, geometry=[LineString([(X0, Y0 + r["y"]), (X0 + 10_000, Y0 + r["y"])])
                                            for r in recs], crs=CRS)


def gdf(rows: list[dict]) -> gpd.GeoDataFrame:
    if not rows:
        return gpd.GeoDataFrame({"id": [], "use": [], "kind": []}, geometry=[], crs=CRS)
    return gpd.GeoDataFrame(rows, geometry=[r.pop("geometry") for r in rows], crs=CRS)


def school_at(bid: str, x: float, dist: float, y: float = 0.0, use: str = "school") -> dict:
    """A 20 m x 20 m building whose near wall is ``dist`` m north of the line at y."""
    return {"id": bid, "use": use, "households": 0, "floors": 2,
            "geometry": box(X0 + x - 10, Y0 + y + dist, X0 + x + 10, Y0 + y + dist + 20)}


def identify(p, b, sites=None, roads=None) -> gpd.GeoDataFrame:
    lc = location_classes(p, b, rule=R.one("location_class"), household_rule=R.one("households"),
                          sites=sites, gathering_rule=R.one("gathering_places"))
    return identify_hca(p, b, sites=sites, roads=roads, location_classes=lc,
                        gas_rows=R.rows("gas"), oil_rows=R.rows("oil"),
                        identified_site_rows=R.rows("identified_sites"),
                        flammable_row=R.one("flammable_sites"), media_row=R.one("pipeline_media"),
                        household_rule=R.one("households"),
                        pir_coefficient=R.one("pir")["coefficient"])


def test_potential_impact_radius() -> None:
    assert potential_impact_radius(1016, 10) == pytest.approx(318.07, abs=0.01)
    assert potential_impact_radius(610, 6.3) == pytest.approx(151.58, abs=0.01)
    assert round(potential_impact_radius(813, 10)) == 255
    np.testing.assert_allclose(potential_impact_radius(np.array([508, 219]), np.array([6.3, 1.6])),
                               [126.2, 27.4], atol=0.05)


def test_gas_thresholds_762_mm_6_9_mpa() -> None:
    p = pipes(
        {"id": "AT-762", "diameter_mm": 762.0, "pressure_mpa": 6.9, "y": 0},  # row e: 200 m
        {"id": "BIG", "diameter_mm": 813.0, "pressure_mpa": 10.0, "y": 5000},  # row c: PIR 254.5
        {"id": "SMALL", "diameter_mm": 219.0, "pressure_mpa": 1.5, "y": 10_000},  # row d: 26.55
        {"id": "AT-273", "diameter_mm": 273.0, "pressure_mpa": 1.5, "y": 15_000},  # row e
    )
    b = gdf([
        school_at("S-199", 2000, 199.0), school_at("S-201", 6000, 201.0),
        school_at("S-250", 2000, 250.0, y=5000), school_at("S-256", 6000, 256.0, y=5000),
        school_at("S-26", 2000, 26.0, y=10_000), school_at("S-30", 6000, 30.0, y=10_000),
        school_at("S-150", 2000, 150.0, y=15_000),
    ])
    seg = identify(p, b).set_index("pipeline_id")
    assert sorted(seg.index) == ["AT-273", "AT-762", "BIG", "SMALL"]
    assert seg.loc["AT-762", "grade"] == "I" and seg.loc["AT-762", "rows"] == "e"
    assert seg.loc["BIG", "grade"] == "II" and seg.loc["BIG", "rows"] == "c"
    assert seg.loc["SMALL", "grade"] == "I" and seg.loc["SMALL", "rows"] == "d"
    assert seg.loc["AT-273", "rows"] == "e"
    # exact stretch: within 200 m of the 20 m wide school 199 m away
    half = np.sqrt(200**2 - 199**2)
    assert seg.loc["AT-762", "chainage_from_m"] == pytest.approx(1990 - half, abs=1e-3)
    assert seg.loc["AT-762", "chainage_to_m"] == pytest.approx(2010 + half, abs=1e-3)
    pir = potential_impact_radius(813, 10)
    assert seg.loc["BIG", "corridor_m"] == pytest.approx(pir)
    assert seg.loc["BIG", "length_m"] == pytest.approx(20 + 2 * np.sqrt(pir**2 - 250**2), abs=1e-3)
    crit = seg.loc["BIG", "criteria"]
    assert [(c["row"], c["feature_id"], c["distance_m"]) for c in crit] == [("c", "S-250", 250.0)]
    assert "S-250" in seg.loc["BIG", "criteria_zh"] and "250.0 m" in seg.loc["BIG", "criteria_en"]
    # every criterion names its standard and row (the HCA finding messages quote it)
    assert seg.loc["BIG", "criteria_zh"].startswith("GB 32167-2015 表2 c：")
    assert seg.loc["AT-762", "criteria_en"].startswith("GB 32167-2015 Table 2 row e: ")


def test_merge_grades_and_flammable_sites_outside_class_3() -> None:
    p = pipes({"id": "G", "y": 0})
    b = gdf([
        school_at("S1", 1000, 100.0), school_at("S2", 1300, 120.0),  # overlapping reaches → one I
        school_at("GS", 1600, 60.0, use="gas_station"),  # row f: grade II next to it
        # a class 3 village (100 households) with a filling station inside it: f does not apply
        *[{"id": f"H{i}", "use": "residential", "households": 1, "floors": 2,
           "geometry": box(X0 + 6000 + 10 * i, Y0 + 40, X0 + 6008 + 10 * i, Y0 + 48)}
          for i in range(100)],
        school_at("GS2", 6500, 80.0, use="gas_station"),
    ])
    seg = identify(p, b)
    got = list(zip(seg["grade"], seg["rows"], seg["chainage_from_m"].round(3),
                   seg["chainage_to_m"].round(3), strict=True))
    s1 = 1000 - 10 - np.sqrt(200**2 - 100**2)
    gs = np.sqrt(200**2 - 60**2)
    # S2's stretch ends (1470) inside the filling station's (to 1800.8): rows e and f behind II
    assert got == [
        ("I", "e", round(s1, 3), round(1590 - gs, 3)),
        ("II", "e,f", round(1590 - gs, 3), round(1610 + gs, 3)),
        ("II", "b", 5800.0, 7198.0),
    ]
    assert [c["feature_id"] for c in seg["criteria"].iat[0]] == ["S1", "S2"]
    assert "GS2" not in " ".join(seg["criteria_en"])
    poly = hca_polygons(seg)
    assert poly.geometry.iat[2].area == pytest.approx((7198 - 5800) * 400, rel=1e-9)


def test_oil_rows() -> None:
    p = pipes({"id": "OIL", "medium": "crude_oil", "diameter_mm": 508.0, "y": 0})
    village = [{"id": f"V{i}", "use": "residential", "households": 5, "floors": 1,
                "geometry": box(X0 + 2000 + 30 * i, Y0 - 120, X0 + 2015 + 30 * i, Y0 - 105)}
               for i in range(10)]  # 50 households, 15 m gaps → one settlement
    hamlet = [{"id": f"W{i}", "use": "residential", "households": 7, "floors": 1,
               "geometry": box(X0 + 5000 + 30 * i, Y0 - 120, X0 + 5015 + 30 * i, Y0 - 105)}
              for i in range(7)]  # 49 households
    b = gdf(village + hamlet)
    sites = gdf([{"id": "W-1", "kind": "water_source", "geometry": Point(X0 + 8000, Y0 + 150)},
                 {"id": "RES-1", "kind": "nature_reserve",
                  "geometry": box(X0 + 9000, Y0 - 400, X0 + 9500, Y0 - 190)}])
    roads = gdf([{"id": "R-G104", "road_class": "national",
                  "geometry": LineString([(X0 + 3500, Y0 - 500), (X0 + 3500, Y0 + 500)])},
                 {"id": "R-LOCAL", "road_class": "local",
                  "geometry": LineString([(X0 + 4000, Y0 - 500), (X0 + 4000, Y0 + 500)])}])
    seg = identify(p, b, sites=sites, roads=roads)
    got = list(zip(seg["grade"], seg["rows"], seg["chainage_from_m"].round(3),
                   seg["chainage_to_m"].round(3), strict=True))
    h = np.sqrt(200**2 - 105**2)
    w = np.sqrt(200**2 - 150**2)
    r = np.sqrt(200**2 - 190**2)
    assert got == [
        ("II", "c", round(2000 - h, 3), round(2285 + h, 3)),
        ("I", "d", 3450.0, 3550.0),
        ("III", "f", round(8000 - w, 3), round(8000 + w, 3)),
        ("II", "e", round(9000 - r, 3), round(9500 + r, 3)),
    ]
    c = seg["criteria"].iat[0][0]
    assert (c["households"], c["what"]) == (50, "settlement")


def test_diff_against_registered_layer_and_monitoring() -> None:
    p = pipes({"id": "G", "y": 0})
    b = gdf([school_at("S1", 1000, 100.0), school_at("S2", 5000, 60.0, use="gas_station")])
    seg = identify(p, b)  # I around 1000, II around 5000
    line = p.geometry.iat[0]
    reg = gdf([
        {"id": "HCA-1", "pipeline_id": "G", "grade": "I", "start_m": 700.0, "end_m": 1000.0,
         "people_dense": True, "video_monitored": False, "geometry": None},
        {"id": "HCA-2", "pipeline_id": "G", "grade": "I", "start_m": np.nan, "end_m": np.nan,
         "people_dense": True, "video_monitored": True,
         "geometry": shapely.ops.substring(line, 4500, 5500).buffer(30, cap_style="flat")},
        {"id": "HCA-3", "pipeline_id": "G", "grade": "III", "start_m": 8000.0, "end_m": 9000.0,
         "people_dense": False, "video_monitored": False, "geometry": None},
    ])
    reg = reg.set_geometry(gpd.GeoSeries(reg.geometry, crs=CRS))
    f = diff_hca(seg, reg, p, rule=R.one("hca_diff"))
    s1_lo = 990 - np.sqrt(200**2 - 100**2)
    s1_hi = 1010 + np.sqrt(200**2 - 100**2)
    gs = np.sqrt(200**2 - 60**2)
    assert f["finding_id"].tolist() == [
        f"hca_grade_changed:HCA-2:G:{4990 - gs:.0f}-{5010 + gs:.0f}",
        "hca_unregistered:G:1000-" + f"{s1_hi:.0f}",
        "hca_unsupported:HCA-1:G:700-" + f"{s1_lo:.0f}",
        f"hca_unsupported:HCA-2:G:4500-{4990 - gs:.0f}",
        f"hca_unsupported:HCA-2:G:{5010 + gs:.0f}-5500",
        "hca_unsupported:HCA-3:G:8000-9000",
    ]
    up = f.iloc[0]
    assert (up["registered_grade"], up["grade"], up["severity"]) == ("I", "II", "high")
    assert "升级" in up["message_zh"] and "upgrade" in up["message_en"]
    assert f.iloc[1]["chainage_to_m"] == pytest.approx(s1_hi, abs=1e-3)
    # monitoring: HCA-1 (300 m) has no camera; HCA-2 (1000 m, from its polygon) has cameras
    # covering 4600..5000 (two 100 m-range cameras on the line at 4700 and 4900)
    cams = gdf([{"id": "C1", "range_m": 100.0, "geometry": Point(X0 + 4700, Y0)},
                {"id": "C2", "range_m": 100.0, "geometry": Point(X0 + 4900, Y0)},
                {"id": "C3", "range_m": 100.0, "geometry": Point(X0 + 8500, Y0)}])
    cov = monitoring_coverage(reg, p, cams).set_index("hca_id")
    assert sorted(cov.index) == ["HCA-1", "HCA-2"]  # HCA-3 is not people-dense
    assert cov.loc["HCA-2", "length_m"] == pytest.approx(1000.0, abs=1e-6)
    assert cov.loc["HCA-2", "covered_m"] == pytest.approx(400.0, abs=1e-6)
    assert cov.loc["HCA-1", "coverage"] == 0.0
    t2020, t2021 = R.get("monitoring", "monitoring_2020"), R.get("monitoring", "monitoring_2021")
    # overall 400 m of 1300 m = 30.8 %: meets 2020 (30 %), not 2021 (70 %)
    assert monitoring_findings(cov.reset_index(), target_row=t2020)["feature_id"].tolist() == ["HCA-1"]
    f21 = monitoring_findings(cov.reset_index(), target_row=t2021)
    assert f21["finding_id"].tolist() == ["hca_monitoring:HCA-1:2021", "hca_monitoring:HCA-2:2021",
                                          "hca_monitoring:all:2021"]
    assert "40.0%" in f21["message_zh"].iat[1] and "70%" in f21["message_zh"].iat[1]
    assert f21["coverage"].iat[2] == pytest.approx(400 / 1300)
    assert "30.8% video coverage" in f21["message_en"].iat[2]
    assert "by 39.2%" in f21["message_en"].iat[2] and "Rule: District three-year" in f21["message_en"].iat[2]
    assert "依据：枣庄高新区" in f21["message_zh"].iat[2]


def test_no_hca_on_urban_mains_and_empty_inputs() -> None:
    p = pipes({"id": "U", "kind": "urban_gas", "pressure_mpa": 0.3, "diameter_mm": 160.0, "y": 0})
    b = gdf([school_at("S1", 1000, 10.0)])
    assert identify(p, b).empty
    assert identify(pipes({"id": "G", "y": 0}), gdf([])).empty
    pd.testing.assert_index_equal(identify(p, b).columns, identify(p, b).columns)


def test_registered_hca_on_a_line_without_any_identified_hca_is_unsupported() -> None:
    p = pipes({"id": "G", "y": 0}, {"id": "H", "y": 5000})
    seg = identify(p, gdf([school_at("S1", 1000, 100.0)]))  # only G has an HCA
    reg = gdf([
        {"id": "HCA-H", "pipeline_id": "H", "grade": "II", "start_m": 100.0, "end_m": 600.0,
         "geometry": None},
        {"id": "HCA-X", "pipeline_id": "NOPE", "grade": "I", "start_m": 0.0, "end_m": 10.0,
         "geometry": None},
    ])
    reg = reg.set_geometry(gpd.GeoSeries(reg.geometry, crs=CRS))
    f = diff_hca(seg, reg, p, rule=R.one("hca_diff"))
    assert f["finding_id"].tolist() == ["hca_unregistered:G:" + f"{seg['chainage_from_m'].iat[0]:.0f}-"
                                        f"{seg['chainage_to_m'].iat[0]:.0f}",
                                        "hca_unsupported:HCA-H:H:100-600",
                                        "hca_unsupported:HCA-X:all"]
    assert "pipeline is unknown" in f["message_en"].iat[2]


def test_monitoring_coverage_without_registered_hcas_is_empty() -> None:
    """A district with no registered HCA layer gets an empty coverage table, not a crash."""

    from geo.hca import monitoring_coverage

    crs = "EPSG:4548"
    hca = gpd.GeoDataFrame({"id": [], "pipeline_id": [], "grade": []},
                           geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    pipes = gpd.GeoDataFrame({"id": ["P"]}, geometry=[LineString([(0, 0), (1000, 0)])], crs=crs)
    cams = gpd.GeoDataFrame({"id": []}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    out = monitoring_coverage(hca, pipes, cams)
    assert len(out) == 0
    assert list(out.columns[:7]) == ["hca_id", "pipeline_id", "grade", "length_m", "covered_m",
                                     "coverage", "cameras"]


def test_sites_and_roads_must_share_the_projected_crs() -> None:
    from geo.errors import CRSError

    p = pipes({"id": "G", "y": 0})
    b = gdf([school_at("S1", 1000, 100.0)])
    site = gpd.GeoDataFrame({"id": ["X"], "kind": ["school"]},
                            geometry=[Point(X0 + 500, Y0 + 50)], crs=CRS)
    for bad in (site.to_crs("EPSG:4490"), site.to_crs("EPSG:4547")):
        with pytest.raises(CRSError):
            identify_hca(p, b, sites=bad, gas_rows=R.rows("gas"), oil_rows=R.rows("oil"),
                         identified_site_rows=R.rows("identified_sites"),
                         flammable_row=R.one("flammable_sites"),
                         media_row=R.one("pipeline_media"), household_rule=R.one("households"))
    assert len(identify(p, b, sites=site)) == 2  # school site and school building


def test_identified_site_exactly_200_m_away_counts() -> None:
    # GB 32167 Table 2 e: "两侧各200 m内" includes 200 m; the stretch is a single point widened
    # by the 20 m footprint: exactly the school's width
    p = pipes({"id": "G", "y": 0})
    seg = identify(p, gdf([school_at("S-200", 3000, 200.0)]))
    assert seg["rows"].tolist() == ["e"]
    assert seg["length_m"].iat[0] == pytest.approx(20.0, abs=1e-6)
