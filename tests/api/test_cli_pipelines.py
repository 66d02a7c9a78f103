"""``riskmap check pipelines`` / ``riskmap check hca`` end to end on the demo district."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from api.cli import main
from geo.crs import analysis_crs

Demo = tuple[Any, dict[str, Any]]


def _pipeline_cases(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in manifest["cases"]
            if c["layer"] == "buildings" and c["case"] in ("occupancy", "setback")]


@pytest.fixture(scope="module")
def checked(demo_store: Demo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    store, manifest = demo_store
    out = tmp_path_factory.mktemp("check")
    assert main(["check", "pipelines", "--store", store.url, "--out",
                 str(out / "f.geojson"), "--quiet"]) == 0
    assert main(["check", "pipelines", "--store", store.url, "--out", str(out / "f.gpkg"),
                 "--quiet"]) == 0
    assert main(["check", "pipelines", "--store", store.url, "--out", str(out / "f.csv"),
                 "--quiet"]) == 0
    return {"dir": out, "manifest": manifest, "store": store,
            "geojson": json.loads((out / "f.geojson").read_text(encoding="utf-8"))}


def test_every_planted_case_found_and_no_unplanted_finding(checked: dict[str, Any]) -> None:
    fc = checked["geojson"]
    props = pd.DataFrame([f["properties"] for f in fc["features"]])
    cases = _pipeline_cases(checked["manifest"])
    assert cases, "the demo manifest has no pipeline cases"
    by_building = props.groupby("feature_id")
    for c in cases:
        got = by_building.get_group(c["id"]) if c["id"] in by_building.groups else props.iloc[:0]
        if c["expect"] == "none":
            assert got[got["kind"] == c["case"]].empty, c
            continue
        assert got["kind"].tolist() == [c["case"]], c
        row = got.iloc[0]
        assert row["other_id"] == c["pipeline_id"]
        assert row["distance_m"] == pytest.approx(c["distance_m"], abs=0.01), c
        if c["case"] == "setback":
            assert row["rule_id"] == c["rule"]
            assert row["required_m"] == c["required_m"]
            assert row["clear_distance_m"] == pytest.approx(c["clear_distance_m"], abs=0.01)
            assert row["shortfall_m"] == pytest.approx(c["required_m"] - c["clear_distance_m"],
                                                       abs=0.01)
        if "chainage_m" in c:
            assert row["chainage_from_m"] - 0.01 <= c["chainage_m"] <= row["chainage_to_m"] + 0.01
    planted = {c["id"] for c in cases}
    found_planted = set(props["feature_id"]) & planted
    assert found_planted == {c["id"] for c in cases if c["expect"] == "finding"}
    # RFC 7946: lon/lat, no crs member
    assert "crs" not in fc
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0]
    assert 116 < lon < 119 and 33 < lat < 36


def test_distances_agree_with_an_independent_computation(checked: dict[str, Any]) -> None:
    store = checked["store"]
    f = pyogrio.read_dataframe(checked["dir"] / "f.gpkg", layer="findings")
    pipes = store.read("pipelines")
    crs = analysis_crs(pipes)
    p = pipes.to_crs(crs).set_index("id").geometry
    b = store.read("buildings").to_crs(crs).set_index("id").geometry
    d = shapely.distance(np.asarray(b.loc[f["feature_id"]].values),
                         np.asarray(p.loc[f["other_id"]].values))
    np.testing.assert_allclose(f["distance_m"].to_numpy(), d, atol=0.01)


def test_outputs_agree_and_ids_are_stable(checked: dict[str, Any], tmp_path: Path) -> None:
    out = checked["dir"]
    gj = [f["properties"]["finding_id"] for f in checked["geojson"]["features"]]
    gp = pyogrio.read_dataframe(out / "f.gpkg", layer="findings")["finding_id"].tolist()
    csv = pd.read_csv(out / "f.csv", encoding="utf-8-sig")
    assert gj == gp == csv["finding_id"].tolist() == sorted(gj)
    assert {"lon", "lat", "wkt", "message_zh", "station"} <= set(csv.columns)
    assert main(["check", "pipelines", "--store", checked["store"].url, "--out",
                 str(tmp_path / "again.geojson"), "--quiet"]) == 0
    again = json.loads((tmp_path / "again.geojson").read_text(encoding="utf-8"))
    assert again == checked["geojson"]


def test_summary_table_and_progress(checked: dict[str, Any], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    store = checked["store"]
    assert main(["check", "pipelines", "--store", store.url, "--pipeline", "P-OIL-01",
                 "--out", str(tmp_path / "oil.csv")]) == 0
    cap = capsys.readouterr()
    assert "kind" in cap.out and "occupancy" in cap.out and "P-OIL-01" in cap.out
    assert "P-GAS-01" not in cap.out
    assert "5/5 done" in cap.err and "UNCONFIRMED" in cap.err
    assert cap.err.startswith("\r[------------------------] 1/5 loading ")  # before the imports


def test_district_rules_file_and_errors(checked: dict[str, Any], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    store = checked["store"]
    rules = tmp_path / "district.toml"
    rules.write_text('[[occupancy]]\nid = "ppl_art30_corridor"\nhalf_width_m = 6.0\n')
    out = tmp_path / "wide.geojson"
    assert main(["check", "pipelines", "--store", store.url, "--rules", str(rules),
                 "--out", str(out), "--quiet"]) == 0
    props = [f["properties"] for f in json.loads(out.read_text(encoding="utf-8"))["features"]]
    occ = {p["feature_id"] for p in props if p["kind"] == "occupancy"}
    five_and_a_half = {c["id"] for c in _pipeline_cases(checked["manifest"])
                       if c["case"] == "occupancy" and c["distance_m"] == 5.5}
    assert five_and_a_half <= occ  # 5.5 m is inside a 6 m corridor
    assert main(["check", "pipelines", "--store", store.url, "--out",
                 str(tmp_path / "x.shp")]) == 2
    assert "expected a file ending in" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('[[setback]]\nid = "x"\n')
    assert main(["check", "pipelines", "--store", store.url, "--rules", str(bad), "--out",
                 str(tmp_path / "y.csv")]) == 2
    assert "source is missing" in capsys.readouterr().err


def test_check_hca_finds_the_unregistered_school(checked: dict[str, Any], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    store, manifest = checked["store"], checked["manifest"]
    out, seg, lc = tmp_path / "hca.geojson", tmp_path / "seg.gpkg", tmp_path / "lc.csv"
    assert main(["check", "hca", "--store", store.url, "--out", str(out), "--segments",
                 str(seg), "--corridors", str(tmp_path / "cor.geojson"),
                 "--location-classes", str(lc), "--quiet"]) == 0
    props = pd.DataFrame([f["properties"] for f in
                          json.loads(out.read_text(encoding="utf-8"))["features"]])
    for c in (c for c in manifest["cases"] if c["case"] == "unregistered_hca"):
        hit = props[(props["kind"] == "hca_unregistered") & (props["feature_id"] == c["id"])
                    & (props["chainage_from_m"] <= c["chainage_from_m"] + 0.01)
                    & (props["chainage_to_m"] >= c["chainage_to_m"] - 0.01)]
        assert len(hit) == 1, c
        assert hit["grade"].iat[0] == c["grade"]
        assert hit["chainage_from_m"].iat[0] == pytest.approx(c["chainage_from_m"], abs=0.01)
        assert hit["chainage_to_m"].iat[0] == pytest.approx(c["chainage_to_m"], abs=0.01)
    segs = gpd.read_file(seg, layer="hca_segments")
    assert set(segs["grade"]) <= {"I", "II", "III"} and len(segs)
    lcs = pd.read_csv(lc, encoding="utf-8-sig")
    assert set(lcs["location_class"]) <= {1, 2, 3, 4}
    text = capsys.readouterr().out
    assert "video monitoring of people-dense HCAs" in text and "hca_unregistered" in text


@pytest.mark.server
def test_postgis_store_both_engines_match_the_geopackage(checked: dict[str, Any],
                                                         tmp_path: Path) -> None:
    import os
    import uuid

    import psycopg

    from layers.store import open_store

    url = os.environ.get("RISKMAP_TEST_POSTGIS_URL", "").strip()
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but RISKMAP_TEST_POSTGIS_URL is unset")
        pytest.skip("PostGIS variant skipped: RISKMAP_TEST_POSTGIS_URL is unset")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    store_url = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    src = checked["store"]
    want = [f["properties"]["finding_id"] for f in checked["geojson"]["features"]]
    try:
        open_store(store_url).write({k: src.read(k) for k in ("pipelines", "buildings")})
        for engine in ("postgis", "local"):
            out = tmp_path / f"{engine}.geojson"
            assert main(["check", "pipelines", "--store", store_url, "--engine", engine,
                         "--out", str(out), "--quiet"]) == 0
            got = json.loads(out.read_text(encoding="utf-8"))
            assert [f["properties"]["finding_id"] for f in got["features"]] == want, engine
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_paused_gc_restores_the_collector() -> None:
    import gc

    from api.runs.pipelines import paused_gc

    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner one found it paused: leaves it so
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # was off before: stays off
    finally:
        gc.enable()


def test_summary_table_counts_exactly() -> None:
    import pandas as pd

    from api.commands.pipelines import summary_table

    f = pd.DataFrame({"kind": ["setback", "occupancy", "setback", "occupancy", "setback"],
                      "severity": ["high", "critical", "high", "critical", "medium"],
                      "other_id": ["P-2", "P-1", "P-1", None, "P-2"]}).astype("str")
    assert summary_table(f) == (
        "kind       critical  high  medium  total\n"
        "---------  --------  ----  ------  -----\n"
        "occupancy         2     0       0      2\n"
        "setback           0     2       1      3\n"
        "total             2     2       1      5\n\n"
        "pipeline  occupancy  setback  total\n"
        "--------  ---------  -------  -----\n"
        "P-1               1        1      2\n"
        "P-2               0        2      2")
    assert summary_table(f.iloc[:0]) == "no findings"
