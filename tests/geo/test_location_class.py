"""Location class (GB 50251 4.2) on crafted settlements, with exact answers."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point

from geo.location_class import households, location_classes
from layers.rules import load_rules

CRS = "EPSG:4548"
X0, Y0 = 500_000.0, 3_800_000.0
R = load_rules("location_class")
LC, HH, GP, DF = (R.one("location_class"), R.one("households"), R.one("gathering_places"),
                  R.one("design_factor"))
PIPE = gpd.GeoDataFrame({"id": ["P-GAS-01"]}, geometry=[LineString([(X0, Y0), (X0 + 10_000, Y0)])],
                        crs=CRS)


def village(n: int, x0: float, x1: float, *, y: float = 50.0, hh: int = 1, floors: int = 1,
            use: str = "residential", tag: str = "b") -> gpd.GeoDataFrame:
    xs = np.linspace(X0 + x0, X0 + x1, n)
    return gpd.GeoDataFrame(
        {"id": [f"{tag}{i}" for i in range(n)], "use": use, "households": hh, "floors": floors},
        geometry=shapely.box(xs, Y0 + y, xs + 10, Y0 + y + 10), crs=CRS)


def classify(b: gpd.GeoDataFrame, **kw) -> gpd.GeoDataFrame:
    return location_classes(PIPE, b, rule=LC, household_rule=HH, gathering_rule=GP,
                            design_factor_rule=DF, **kw)


def inhabited(out: gpd.GeoDataFrame) -> gpd.GeoSeries:
    return out[out["households"] > 0].iloc[0]


@pytest.mark.parametrize(("n", "cls", "label", "factor"), [
    (15, 1, "一级二类", 0.72), (16, 2, "二级", 0.6), (99, 2, "二级", 0.6), (100, 3, "三级", 0.5),
])  # fmt: skip
def test_window_with_exactly_15_16_99_100_households(n: int, cls: int, label: str, factor: float) -> None:
    out = classify(village(n, 3000, 4500))
    row = inhabited(out)
    assert (row["location_class"], row["class_zh"], row["households"]) == (cls, label, n)
    assert row["design_factor"] == factor
    # the class reaches 200 m beyond the outer edges of the first and last building
    assert (row["chainage_from_m"], row["chainage_to_m"]) == (2800.0, 4710.0)
    assert (row["window_from_m"], row["window_to_m"]) == (3005.0, 5005.0)  # from a centroid
    # the rest of the line is class 1 division 1; ranges cover the line end to end
    assert out["chainage_from_m"].tolist() == [0.0, 2800.0, 4710.0]
    assert out["chainage_to_m"].tolist() == [2800.0, 4710.0, 10_000.0]
    assert out["class_zh"].tolist()[::2] == ["一级一类", "一级一类"]


def test_sliding_window_takes_the_densest_2_km() -> None:
    # 100 households over 2.5 km: no 2 km window holds 100 → class 2, window of 80
    out = classify(village(101, 0, 2500, tag="a"))
    row = inhabited(out)
    assert row["location_class"] == 2
    assert row["households"] == 81  # buildings every 25 m: 2000 / 25 + 1
    # a second dense cluster elsewhere decides its own stretch
    b = gpd.GeoDataFrame(
        gpd.pd.concat([village(101, 0, 2500, tag="a"), village(100, 6000, 6990, tag="c")]),
        crs=CRS)
    out = classify(b)
    assert out["location_class"].tolist() == [2, 1, 3, 1]
    assert out["chainage_from_m"].tolist() == [0.0, 2710.0, 5800.0, 7200.0]


def test_class_4_when_tall_buildings_dominate() -> None:
    tall = village(26, 3000, 3500, hh=3, floors=6, tag="t")  # 78 households
    low = village(25, 3510, 4000, hh=1, floors=2, tag="l")  # 25 households
    out = classify(gpd.GeoDataFrame(gpd.pd.concat([tall, low]), crs=CRS))
    row = inhabited(out)
    assert (row["location_class"], row["households"], row["buildings"], row["tall_buildings"]) == (
        4, 103, 51, 26)
    assert row["design_factor"] == 0.4
    # exactly half tall is not "prevalent": class 3
    low = village(26, 3510, 4000, hh=1, floors=2, tag="l")
    row = inhabited(classify(gpd.GeoDataFrame(gpd.pd.concat([tall, low]), crs=CRS)))
    assert (row["location_class"], row["tall_buildings"], row["buildings"]) == (3, 26, 52)


def test_only_buildings_within_200_m_count() -> None:
    near = village(16, 3000, 3500, y=189.0, tag="n")  # far wall at 199 m, near wall 189 m
    far = village(16, 3000, 3500, y=200.01, tag="f")
    assert inhabited(classify(near))["location_class"] == 2
    assert (classify(far)["location_class"] == 1).all()
    assert (classify(far)["households"] == 0).all()
    # "管道两侧各200 m" includes 200 m: a building whose near wall is exactly 200 m away counts
    edge = village(16, 3000, 3500, y=200.0, tag="e")
    assert inhabited(classify(edge))["location_class"] == 2


def test_school_in_class_1_area_takes_class_3_design_factor() -> None:
    b = village(5, 3000, 3100)
    school = gpd.GeoDataFrame({"id": ["S1"], "kind": ["school"]},
                              geometry=[Point(X0 + 7000, Y0 - 120)], crs=CRS)
    out = classify(b, sites=school)
    row = out[(out["design_class"] == 3)].iloc[0]
    assert row["location_class"] == 1
    assert (row["chainage_from_m"], row["chainage_to_m"]) == (6800.0, 7200.0)
    assert row["design_factor"] == 0.5


def test_household_counting_convention() -> None:
    b = gpd.GeoDataFrame(
        {"use": ["residential", "residential", "residential", "school", "shed", "warehouse"],
         "households": [12, np.nan, 0, np.nan, np.nan, 5], "floors": [6, 3, 1, 3, 1, 1]},
        geometry=[shapely.box(0, 0, 10, 10), shapely.box(0, 0, 20, 30), shapely.box(0, 0, 5, 5),
                  shapely.box(0, 0, 50, 50), shapely.box(0, 0, 5, 5), shapely.box(0, 0, 50, 50)],
        crs=CRS)
    # 600 m² × 3 floors / 90 m² = 20 households; school 1; shed and warehouse 0
    assert households(b, rule=HH).tolist() == [12, 20, 0, 1, 0, 0]


def test_buildings_in_another_projected_crs_are_refused() -> None:
    from geo.errors import CRSError

    with pytest.raises(CRSError, match="different CRSs"):
        classify(village(16, 3000, 3500).to_crs("EPSG:4547"))


def test_a_building_exactly_200_m_from_a_diagonal_line_counts() -> None:
    # distance comes out as 200.0000000001 at projected coordinates; it is 200 m
    pipe = gpd.GeoDataFrame({"id": ["D"]},
                            geometry=[LineString([(X0, Y0), (X0 + 10_000, Y0 + 10_000)])], crs=CRS)
    u = np.array([-1.0, 1.0]) / np.sqrt(2.0)
    pts = [Point(*(np.array([X0 + t, Y0 + t]) + 200.0 * u)) for t in range(1000, 1400, 25)]
    # degenerate (point) footprints exactly on the 200 m limit
    b = gpd.GeoDataFrame({"id": [f"p{i}" for i in range(len(pts))], "use": "residential",
                          "households": 1, "floors": 1}, geometry=pts, crs=CRS)
    out = location_classes(pipe, b, rule=LC, household_rule=HH)
    assert out["households"].max() == 16 and out["location_class"].max() == 2
