"""Issue 16 part B through the service, CLI and API: the planted demo cases of warning signs,
patrol paths and inspection (every one found, none else); snapshots and changes since one
(`riskmap snapshot`, `riskmap changes`, `GET /changes`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import main
from api.district import District
from api.service import AnalysisService
from api.settings import Settings
from layers.store import GeoPackageStore
from tests.api.conftest import API_KEYS, LAT0, LON0, D, auth

AT = dt.datetime(2026, 12, 7, 4, 0, tzinfo=dt.UTC)  # 12:00 in Zaozhuang


def _svc(store: Any) -> AnalysisService:
    return AnalysisService(store, District(clock=lambda: AT))


# --- the demo: every planted case found, none else --------------------------------------------
def test_demo_patrol_cases_exact(demo_store: tuple[GeoPackageStore, dict[str, Any]]) -> None:
    store, manifest = demo_store
    f = _svc(store).result("patrol_findings")
    planted = [c for c in manifest["cases"] if c["case"] in ("sign_gap", "patrol_gap")]
    kind = {"sign_gap": "hca_sign_gap", "patrol_gap": "patrol_gap"}
    assert len(f) == len(planted) == 5
    for c in planted:
        hit = f[(f["kind"] == kind[c["case"]]) & (f["pipeline_id"] == c["pipeline_id"])]
        assert len(hit) == 1, c
        assert hit["chainage_from_m"].iloc[0] == pytest.approx(c["chainage_from_m"], abs=0.01)
        assert hit["chainage_to_m"].iloc[0] == pytest.approx(c["chainage_to_m"], abs=0.01)
    lu = f[(f["kind"] == "patrol_gap") & (f["pipeline_id"] == "P-OIL-01")]
    assert (lu["rule_id"].iloc[0], lu["severity"].iloc[0]) == ("patrol_luning_2020", "high")
    assert "[UNCONFIRMED]" in f["rule_source"].iloc[0]
    damaged = f[(f["kind"] == "hca_sign_gap") & (f["pipeline_id"] == "P-GAS-01")]
    assert damaged["signs_not_ok"].iloc[0] == "WS-GAS-01-007 (damaged)"


def test_demo_inspection_cases_exact(demo_store: tuple[GeoPackageStore, dict[str, Any]]) -> None:
    store, manifest = demo_store
    f = _svc(store).result("inspection_findings")
    planted = {f"{c['case']}:{c['id']}" for c in manifest["cases"]
               if c["case"].startswith("inspection_")}
    assert set(f["finding_id"]) == planted == {"inspection_overdue:P-OIL-02",
                                               "inspection_missing:P-GAS-U02",
                                               "inspection_overdue:P-GAS-U04"}


def test_demo_stats_for_the_dashboard(demo_store: tuple[GeoPackageStore, dict[str, Any]]) -> None:
    from api.runs.patrol import protection_stats

    store, _ = demo_store
    s = protection_stats(_svc(store))
    assert s["as_of"] == "2026-12-07"
    assert (s["signs"]["gaps"], s["signs"]["met"]) == (3, False)
    assert s["signs"]["hca_m"] - s["signs"]["signed_m"] == pytest.approx(300.0, abs=0.05)
    assert [(t["rule_id"], t["pipelines"]) for t in s["patrol"]] == [
        ("patrol_luning_2020", ["P-OIL-01"]),
        ("patrol_all_2022", ["P-GAS-01", "P-OIL-01", "P-OIL-02"])]
    gap = 2 * (400.0 - 2 * (50.0**2 - 20.0**2) ** 0.5) + 100.0  # the break, impassable stretch
    p22 = s["patrol"][1]
    assert p22["length_m"] - p22["served_m"] == pytest.approx(gap, abs=0.05)
    i = s["inspection"]
    assert (i["pipelines"], i["valid"], i["overdue"], i["no_record"]) == (9, 6, 2, 1)
    assert s["by_year"] == {"2020": ["patrol_luning_2020"],
                            "2022": ["hca_signs_2022", "patrol_all_2022",
                                     "inspection_rate_rising"]}


# --- snapshots and changes ---------------------------------------------------------------------
def _survey(store: GeoPackageStore) -> None:
    """A month later: a shed built over P-01, B-01 demolished, B-05 moved 1 m, B-06 gains a
    floor, P-02 inspected (due 2030)."""
    b = store.read("buildings")
    b = b[b["id"] != "B-01"].copy()
    b.loc[b["id"] == "B-05", "geometry"] = b.loc[b["id"] == "B-05", "geometry"].translate(
        xoff=0.00001)
    b.loc[b["id"] == "B-06", "floors"] = 9
    x = LON0 + 4.5 * D
    new = gpd.GeoDataFrame({"id": ["B-NEW"], "use": ["shed"], "floors": [1], "households": [0],
                            "name": ["shed"]},
                           geometry=[shapely.box(x, LAT0, x + D / 5, LAT0 + D / 3)], crs=4490)
    p = store.read("pipelines")
    p["next_inspection_due"] = pd.Series([None, dt.date(2030, 1, 1)], dtype=object)
    p["last_inspection"] = pd.Series([None, dt.date(2026, 11, 30)], dtype=object)
    store.write({"buildings": gpd.GeoDataFrame(pd.concat([b, new], ignore_index=True),
                                               crs=4490), "pipelines": p})


def test_cli_snapshot_and_changes(store_copy: GeoPackageStore, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    s = ["--store", str(store_copy.path)]
    assert main(["snapshot", *s, "survey-2026-11"]) == 0
    assert "snapshot 'survey-2026-11' of 7 layer(s)" in capsys.readouterr().out
    assert main(["snapshot", *s, "--list", "--json"]) == 0
    (snap,) = json.loads(capsys.readouterr().out)
    assert (snap["name"], snap["layers"]["buildings"]) == ("survey-2026-11", 12)
    before = {f for f in AnalysisService(store_copy).result("pipeline_findings")["finding_id"]}
    _survey(store_copy)
    now = AnalysisService(store_copy).result("pipeline_findings")
    out = tmp_path / "changes.geojson"
    assert main(["changes", *s, "--since", "survey-2026-11", "--out", str(out),
                 "--analysis", "pipeline_findings", "--analysis", "inspection_findings"]) == 0
    text = capsys.readouterr().out
    assert "changes since snapshot 'survey-2026-11'" in text
    feats = [f["properties"] for f in json.loads(out.read_text())["features"]]
    rows = {(p["section"], p["change"], p.get("layer"), p["feature_id"], p.get("fields"))
            for p in feats if p["section"] == "feature"}
    assert rows == {("feature", "added", "buildings", "B-NEW", ""),
                    ("feature", "removed", "buildings", "B-01", ""),
                    ("feature", "changed", "buildings", "B-05", "geometry"),
                    ("feature", "changed", "buildings", "B-06", "floors"),
                    ("feature", "changed", "pipelines", "P-02",
                     "last_inspection,next_inspection_due")}
    found = {(p["analysis"], p["change"], p["finding_id"]) for p in feats
             if p["section"] == "finding"}
    new_pipe = set(now["finding_id"]) - before
    gone_pipe = before - set(now["finding_id"])
    assert {f for f in new_pipe if ":B-NEW" in f}, "the new shed over P-01 is a new finding"
    assert all(":B-NEW" in f for f in new_pipe) and all(":B-01" in f for f in gone_pipe)
    assert found == ({("pipeline_findings", "new", f) for f in new_pipe}
                     | {("pipeline_findings", "gone", f) for f in gone_pipe}
                     | {("inspection_findings", "gone", "inspection_missing:P-02")})
    assert main(["snapshot", *s, "--delete", "survey-2026-11"]) == 0
    assert main(["changes", *s, "--since", "survey-2026-11", "--out", str(out)]) == 2
    assert "has no snapshot 'survey-2026-11'; it has none" in capsys.readouterr().err


def test_api_changes(store_copy: GeoPackageStore) -> None:
    from layers.snapshots import create_snapshot

    create_snapshot(store_copy, "s1", created="2026-11-07T12:00:00+08:00")
    _survey(store_copy)
    app = create_app(Settings(store=str(store_copy.path), api_keys=API_KEYS),
                     clock=lambda: AT)
    with TestClient(app) as c:
        r = c.get("/changes?since=s1&analysis=inspection_findings", headers=auth("planner"))
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["since"]["name"] == "s1"
        assert doc["counts"]["layers"]["buildings"] == {"added": 1, "removed": 1, "changed": 2}
        assert doc["counts"]["findings"] == {"inspection_findings": {"new": 0, "gone": 1,
                                                                      "changed": 0}}
        assert {f["properties"]["feature_id"] for f in doc["features"]
                if f["properties"]["section"] == "finding"} == {"P-02"}
        assert c.get("/snapshots", headers=auth("admin")).json()["snapshots"][0]["name"] == "s1"
        assert c.get("/changes?since=s1", headers=auth("police")).status_code == 403
        assert c.get("/changes?since=s1").status_code == 401
        assert c.get("/changes?since=nope", headers=auth("planner")).status_code == 404
        bad = c.get("/changes?since=%3Cscript%3E", headers=auth("planner"))
        assert bad.status_code == 400 and "<script>" not in bad.text
        assert c.get("/changes?since=s1&analysis=x", headers=auth("planner")).status_code == 400
        assert c.get("/changes?since=s1&foo=1", headers=auth("planner")).status_code == 400


def test_cli_check_patrol_and_inspection(demo_store: tuple[GeoPackageStore, dict[str, Any]],
                                         tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    store, _ = demo_store
    out, stats = tmp_path / "p.geojson", tmp_path / "stats.json"
    assert main(["check", "patrol", "--store", str(store.path), "--out", str(out),
                 "--at", "2026-12-07", "--stats", str(stats)]) == 0
    text = capsys.readouterr().out
    assert "riskmap: 5 finding(s) (hca_sign_gap 3, patrol_gap 2) on 2026-12-07" in text
    assert json.loads(stats.read_text())["signs"]["gaps"] == 3
    assert len(json.loads(out.read_text())["features"]) == 5
    assert main(["check", "inspection", "--store", str(store.path), "--out",
                 str(tmp_path / "i.csv"), "--at", "2026-12-07"]) == 0
    assert ("6 of 9 pipeline(s) in service valid (66.7%" in capsys.readouterr().out)
    assert main(["check", "inspection", "--store", str(store.path), "--out",
                 str(tmp_path / "i.csv"), "--at", "07/12/2026"]) == 2
    assert "--at '07/12/2026': expected a date YYYY-MM-DD" in capsys.readouterr().err


@pytest.mark.server
def test_changes_on_postgis(small_store_path: Path) -> None:
    """The same survey on a PostGIS store: snapshot schema, changes by id, findings gone/new."""
    import psycopg

    from api.runs.patrol import changes_since
    from layers.snapshots import create_snapshot, list_snapshots
    from layers.store import open_store
    from tests.layers.postgis_support import postgis_url, scratch_schema

    url = postgis_url()
    with scratch_schema(url) as surl:
        store = open_store(surl)
        try:
            src = GeoPackageStore(small_store_path)
            store.write({i.name: src.read(i.name) for i in src.layers()})
            create_snapshot(store, "s1", created="2026-11-07T12:00:00+08:00")
            _survey(store)  # type: ignore[arg-type]
            ch = changes_since(_svc(store), "s1",
                               analyses=("pipeline_findings", "inspection_findings"))
            assert ch.counts["layers"]["buildings"] == {"added": 1, "removed": 1, "changed": 2}
            assert ch.counts["layers"]["pipelines"] == {"added": 0, "removed": 0, "changed": 1}
            assert ch.counts["findings"]["inspection_findings"] == {"new": 0, "gone": 1,
                                                                   "changed": 0}
            new = ch.frame[(ch.frame["section"] == "finding") & (ch.frame["change"] == "new")]
            assert set(new["feature_id"]) == {"B-NEW"}
            assert [i.name for i in list_snapshots(store)] == ["s1"]
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{store.schema}__snap__s1" CASCADE')


def test_a_finding_whose_extent_moved_is_one_changed_finding() -> None:
    from api.runs.patrol import _pair

    def f(ids: list[str], kinds: list[str], feats: list[str]) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame({"finding_id": ids, "kind": kinds, "feature_id": feats},
                                geometry=[shapely.Point(0, 0)] * len(ids), crs=4548)

    new = f(["hca_unsupported:H-2:P:2550-2796", "occupancy:P:B-9", "x:A:1", "x:A:2"],
            ["hca_unsupported", "occupancy", "x", "x"], ["H-2", "B-9", "A", "A"])
    gone = f(["hca_unsupported:H-2:P:2550-2825", "occupancy:P:B-1", "x:A:0"],
             ["hca_unsupported", "occupancy", "x"], ["H-2", "B-1", "A"])
    n, g, was = _pair(new, gone)
    assert was == {"hca_unsupported:H-2:P:2550-2796": "hca_unsupported:H-2:P:2550-2825"}
    assert g["finding_id"].tolist() == ["occupancy:P:B-1", "x:A:0"]  # two new for A: no pair
    assert len(n) == 4
