"""geo.patrol: HCA warning-sign gaps and patrol-path coverage, exact on crafted lines."""

from __future__ import annotations

import math

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from geo.errors import CRSError
from geo.patrol import (
    hca_stretches,
    patrol_coverage,
    patrol_gap_findings,
    patrol_gaps,
    sign_coverage,
    sign_gap_findings,
    sign_gaps,
)

CRS = 4548
SIGN_RULE = {"id": "hca_sign_spacing", "spacing_m": 100.0, "severity": "medium",
             "source": "placeholder [UNCONFIRMED]", "source_en": "placeholder [UNCONFIRMED]"}


def _pipes() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"id": ["P", "Q"], "name": ["鲁宁线", "Q line"],
                             "status": ["in_service", "in_service"]},
                            geometry=[shapely.LineString([(0, 0), (1000, 0)]),
                                      shapely.LineString([(0, 500), (1000, 500)])], crs=CRS)


def _hca() -> pd.DataFrame:
    return pd.DataFrame({"hca_id": ["P:100-500", "HCA-1", "HCA-Q"],
                         "pipeline_id": ["P", "P", "Q"],
                         "chainage_from_m": [100.0, 450.0, 0.0],
                         "chainage_to_m": [500.0, 600.0, 200.0]})


def _signs(rows: list[tuple[str, str, float, float, str]]) -> gpd.GeoDataFrame:
    ids, pid, x, y, status = zip(*rows, strict=True)
    return gpd.GeoDataFrame({"id": ids, "pipeline_id": pid, "status": status},
                            geometry=shapely.points(list(x), list(y)), crs=CRS)


BASE = [("S1", "P", 150.0, 10.0, "ok"), ("S2", "P", 250.0, -10.0, "ok"),
        ("S3", "P", 350.0, 10.0, "ok"), ("S4", "P", 450.0, 10.0, "missing"),
        ("S5", "P", 550.0, 10.0, "ok"), ("SQ", "Q", 100.0, 500.0, "damaged")]


def test_stretches_unite_identified_and_registered() -> None:
    st = hca_stretches(_hca())
    assert st.to_dict("list") == {"hca_id": ["HCA-1+P:100-500", "HCA-Q"],
                                  "pipeline_id": ["P", "Q"], "chainage_from_m": [100.0, 0.0],
                                  "chainage_to_m": [600.0, 200.0]}


def test_one_missing_sign_leaves_a_gap_of_one_spacing() -> None:
    gaps = sign_gaps(_hca(), _signs(BASE), _pipes(), spacing_m=100.0, max_offset_m=50.0)
    assert gaps.drop(columns="geometry").to_dict("list") == {
        "hca_id": ["HCA-1+P:100-500", "HCA-Q"], "pipeline_id": ["P", "Q"],
        "chainage_from_m": [400.0, 0.0], "chainage_to_m": [500.0, 200.0],
        "gap_m": [100.0, 200.0], "station_from": ["K0+400.0", "K0+000.0"],
        "station_to": ["K0+500.0", "K0+200.0"], "signs_not_ok": ["S4 (missing)", "SQ (damaged)"]}
    assert gaps.geometry.iloc[0].equals(shapely.LineString([(400, 0), (500, 0)]))
    cov = sign_coverage(_hca(), _signs(BASE), _pipes(), spacing_m=100.0, max_offset_m=50.0)
    assert cov[["length_m", "signed_m", "share", "signs_ok"]].to_dict("list") == {
        "length_m": [500.0, 200.0], "signed_m": [400.0, 0.0], "share": [0.8, 0.0],
        "signs_ok": [4, 0]}
    f = sign_gap_findings(gaps, rule=SIGN_RULE)
    assert f["finding_id"].tolist() == ["hca_sign_gap:P:400.0-500.0",
                                        "hca_sign_gap:Q:0.0-200.0"]
    assert f["feature_id"].tolist() == ["HCA-1+P:100-500", "HCA-Q"]
    assert f["message_en"].iloc[0] == (
        "HCA HCA-1+P:100-500 (pipeline P) has no warning sign in good order along 100.0 m from "
        "K0+400.0 to K0+500.0 (signs at most 100 m apart); signs there: S4 (missing). Rule: "
        "placeholder [UNCONFIRMED].")
    assert f["message_zh"].iloc[1] == (
        "高后果区 HCA-Q（管道 Q）K0+000.0–K0+200.0 段 200.0 m 内无完好警示标识（间距不大于 100 m）；"
        "该段标识 SQ (damaged)。依据：placeholder [UNCONFIRMED]。")
    assert (f["chainage_from_m"].tolist(), f["station"].tolist()) == ([400.0, 0.0],
                                                                     ["K0+400.0", "K0+000.0"])


@pytest.mark.parametrize(("x", "gap"), [(250.0, None), (250.005, None), (250.02, 0.02)])
def test_spacing_boundary(x: float, gap: float | None) -> None:
    rows = [r if r[0] != "S2" else ("S2", "P", x, -10.0, "ok") for r in BASE
            if r[0] not in ("S4", "SQ")] + [("S4", "P", 450.0, 10.0, "ok")]
    gaps = sign_gaps(_hca()[:2], _signs(rows), _pipes(), spacing_m=100.0, max_offset_m=50.0)
    assert gaps["gap_m"].tolist() == ([] if gap is None else [gap])
    if gap is not None:
        assert (gaps["chainage_from_m"].iloc[0], gaps["chainage_to_m"].iloc[0]) == (200.0, 200.02)


@pytest.mark.parametrize(("offset", "counted"), [(49.99, True), (50.0, True), (50.01, False)])
def test_sign_offset_limit(offset: float, counted: bool) -> None:
    rows = [r if r[0] != "S4" else ("S4", "P", 450.0, offset, "ok") for r in BASE[:5]]
    gaps = sign_gaps(_hca()[:2], _signs(rows), _pipes(), spacing_m=100.0, max_offset_m=50.0)
    assert gaps["gap_m"].tolist() == ([] if counted else [100.0])


def _paths() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": ["A", "B", "C", "D", "E"], "pipeline_id": ["P", "P", "P", None, "Q"],
         "passable": [True, True, False, None, True]},
        geometry=[shapely.LineString([(0, 50), (300, 50)]),         # exactly at reach
                  shapely.LineString([(300, 50.01), (600, 50.01)]),  # 1 cm too far
                  shapely.LineString([(600, 10), (800, 10)]),        # impassable
                  shapely.LineString([(800, -20), (1000, -20)]),     # no pipeline named: serves
                  shapely.LineString([(300, 5), (600, 5)])],         # Q's path beside P
        crs=CRS)


def test_patrol_coverage_exact_with_boundaries() -> None:
    cov = patrol_coverage(_pipes(), _paths(), reach_m=50.0)
    served = 300.0 + 200.0 + math.sqrt(50.0**2 - 20.0**2)
    assert cov["pipeline_id"].tolist() == ["P", "Q"]
    assert cov["served_m"].tolist() == [round(served, 3), 0.0]
    assert cov["share"].tolist() == [round(served / 1000.0, 6), 0.0]
    assert cov["paths"].tolist() == [2, 0]
    gaps = patrol_gaps(_pipes(), _paths(), reach_m=50.0)
    a = round(800.0 - math.sqrt(50.0**2 - 20.0**2), 3)
    assert gaps[["pipeline_id", "chainage_from_m", "chainage_to_m"]].to_dict("list") == {
        "pipeline_id": ["P", "Q"], "chainage_from_m": [300.0, 0.0],
        "chainage_to_m": [a, 1000.0]}
    assert gaps["station_to"].tolist() == ["K0+754.2", "K1+000.0"]
    # 50.01 m reach: B now serves 300-600 too
    assert patrol_gaps(_pipes(), _paths(), reach_m=50.01)["chainage_from_m"].tolist() == [
        600.0, 0.0]


def test_patrol_findings_only_for_target_pipelines() -> None:
    gaps = patrol_gaps(_pipes(), _paths(), reach_m=50.0)
    row = {"id": "patrol_luning_2020", "year": 2020, "severity": "high", "source": "plan 2020",
           "source_en": "plan 2020"}
    f = patrol_gap_findings(gaps, rule={"id": "patrol_path_reach", "source": "reach src"},
                            targets={"P": row}, reach_m=50.0)
    assert f["finding_id"].tolist() == ["patrol_gap:P:300.0-754.2"]
    assert f["severity"].tolist() == ["high"]
    assert f["rule_source"].iloc[0] == "plan 2020; reach 50 m: reach src"
    assert f["message_en"].iloc[0] == (
        "Pipeline P has no passable patrol path within 50 m along 454.2 m from K0+300.0 to "
        "K0+754.2 (due by end 2020). Rule: plan 2020.")
    assert patrol_gap_findings(gaps, rule={"id": "r", "source": "s"}, targets={},
                               reach_m=50.0).empty


def test_multipart_line_chainage_runs_on() -> None:
    pipes = gpd.GeoDataFrame({"id": ["M"]}, geometry=[shapely.MultiLineString(
        [[(0, 0), (100, 0)], [(100, 0), (100, 100)]])], crs=CRS)
    paths = gpd.GeoDataFrame({"id": ["A"], "pipeline_id": ["M"], "passable": [True]},
                             geometry=[shapely.LineString([(110, 40), (110, 100)])], crs=CRS)
    gaps = patrol_gaps(pipes, paths, reach_m=10.0)
    assert gaps[["chainage_from_m", "chainage_to_m"]].to_dict("list") == {
        "chainage_from_m": [0.0], "chainage_to_m": [140.0]}


def test_crs_and_parameters_checked() -> None:
    with pytest.raises(CRSError):
        patrol_coverage(_pipes().to_crs(4490), _paths(), reach_m=50.0)
    with pytest.raises(ValueError, match="reach_m is 0"):
        patrol_coverage(_pipes(), _paths(), reach_m=0)
    with pytest.raises(ValueError, match="spacing_m is -1"):
        sign_gaps(_hca(), _signs(BASE), _pipes(), spacing_m=-1)
