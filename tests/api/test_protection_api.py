"""Issue 16 part A through the CLI and the API: construction-permit check, machine early
warning (POST /protection/positions, the SSE alert stream) on the demo's planted cases."""

from __future__ import annotations

import csv
import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import api.cli
from api.app import create_app
from api.settings import Settings
from tests.api.conftest import API_KEYS, auth

ON = "2026-12-07"


def _clock() -> dt.datetime:
    return dt.datetime(2026, 12, 7, 2, 0, tzinfo=dt.UTC)  # 10:00 in Asia/Shanghai


@pytest.fixture(scope="module")
def demo_client(demo_store: tuple[Any, dict[str, Any]]) -> Any:
    store, _ = demo_store
    app = create_app(Settings(store=str(store.path), api_keys=API_KEYS), clock=_clock)
    with TestClient(app) as c:
        yield c


def _cases(manifest: dict[str, Any], layer: str) -> list[dict[str, Any]]:
    return [c for c in manifest["cases"] if c["layer"] == layer]


def _site_findings(features: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(f["properties"]["feature_id"], f["properties"]["kind"],
             f["properties"]["rule_id"], f["properties"]["severity"],
             f["properties"]["distance_m"]) for f in features}


def _want_sites(manifest: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {(c["id"], c["case"], c["rule"], c["severity"], c["distance_m"])
            for c in _cases(manifest, "construction_sites") if c["expect"] == "finding"}


def test_cli_check_protection_finds_every_planted_site_and_nothing_else(
        demo_store: tuple[Any, dict[str, Any]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    store, manifest = demo_store
    out = tmp_path / "protection.geojson"
    assert api.cli.main(["check", "protection", "--store", str(store.path), "--out", str(out),
                         "--at", ON]) == 0
    feats = json.loads(out.read_text(encoding="utf-8"))["features"]
    assert _site_findings(feats) == _want_sites(manifest)
    assert len(_want_sites(manifest)) == 9
    none = {c["id"] for c in _cases(manifest, "construction_sites") if c["expect"] == "none"}
    assert none == {"CS-06", "CS-07", "CS-08", "CS-09", "CS-14"}
    text = capsys.readouterr().out
    assert text.startswith("9 construction site finding(s) on 2026-12-07 (Asia/Shanghai)\n")
    assert ("critical construction site CS-01 (excavation) is 3.00 m from pipeline P-OIL-01 "
            "centre line, within 5 m: excavation is forbidden there (Art 30)") in text
    cs01 = next(f["properties"] for f in feats if f["properties"]["feature_id"] == "CS-01")
    assert (cs01["chainage_from_m"], cs01["chainage_to_m"], cs01["station"]) == (
        300.0, 320.0, "K0+300.0")


def test_cli_check_protection_refuses_a_bad_date(demo_store: tuple[Any, dict[str, Any]],
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    store, _ = demo_store
    assert api.cli.main(["check", "protection", "--store", str(store.path), "--out",
                         str(tmp_path / "f.geojson"), "--at", "7.12.2026"]) == 2
    assert capsys.readouterr().err == (
        "riskmap: error: --at is '7.12.2026'; expected a date YYYY-MM-DD, e.g. 2026-12-07\n")


def test_cli_check_positions_on_the_demo_file(demo_store: tuple[Any, dict[str, Any]],
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    store, manifest = demo_store
    positions = store.path.with_name("demo_positions.csv")
    out = tmp_path / "alerts.csv"
    rc = api.cli.main(["check", "positions", "--store", str(store.path), "--in",
                       str(positions), "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 1  # one row refused
    assert cap.err == ("riskmap: row 9 (machine M-09): lat is missing; expected a number of "
                       "degrees in [-90, 90]\n")
    with open(out, encoding="utf-8") as fh:
        got = {(r["machine_id"], r["rule_id"], r["severity"]) for r in csv.DictReader(fh)}
    want = {(c["id"], c["rule"], c["severity"]) for c in _cases(manifest, "positions")
            if c["expect"] == "alert"}
    assert got == want and len(want) == 6
    assert cap.out.startswith("508 position(s) checked (EPSG:4490), 6 alert(s) (2 critical), "
                              "1 row(s) refused\n")


def test_collection_serves_the_same_findings_to_its_roles(
        demo_client: TestClient, demo_store: tuple[Any, dict[str, Any]]) -> None:
    _, manifest = demo_store
    r = demo_client.get("/collections/protection_findings/items", headers=auth("police"))
    assert r.status_code == 200, r.text
    assert _site_findings(r.json()["features"]) == _want_sites(manifest)
    assert demo_client.get("/collections/protection_findings/items",
                           headers=auth("fire")).status_code in (403, 404)
    assert demo_client.get("/collections/protection_findings/items").status_code in (401, 404)


def _batch() -> dict[str, Any]:
    # M-01 and M-05 of the demo (design positions), a bad kind, a swapped lon/lat, no time
    with open(_demo_positions, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by = {r["machine_id"]: r for r in rows}
    pos = [{k: by[m][k] for k in ("machine_id", "kind", "time", "lon", "lat")}
           for m in ("M-01", "M-03", "M-05")]
    pos.append({"machine_id": "X-1", "kind": "sunbathing", "time": "2026-12-07T09:00:00",
                "lon": 117.3, "lat": 34.8})
    pos.append({"machine_id": "X-2", "kind": "excavator", "time": "2026-12-07T09:00:00",
                "lon": 34.8, "lat": 117.3})
    pos.append({"machine_id": "X-3", "kind": "excavator", "lon": 117.3, "lat": 34.8})
    return {"crs": "EPSG:4490", "positions": pos}


_demo_positions = Path()


@pytest.fixture(autouse=True)
def _positions_file(demo_store: tuple[Any, dict[str, Any]]) -> None:
    global _demo_positions
    _demo_positions = demo_store[0].path.with_name("demo_positions.csv")


def test_post_positions_alerts_and_names_bad_rows(demo_client: TestClient) -> None:
    r = demo_client.post("/protection/positions", json=_batch(), headers=auth("police"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["checked"] == 3 and body["crs"] == "EPSG:4490"
    assert [(a["machine_id"], a["rule_id"], a["severity"]) for a in body["alerts"]] == [
        ("M-01", "ppl_art30_forbidden", "critical"),
        ("M-05", "ppl_art32_river_crossing", "critical")]
    a = body["alerts"][0]
    assert (a["work"], a["kind"], a["time"], a["other_id"], a["distance_m"], a["required_m"]) == (
        "excavation", "挖掘机", "2026-12-07T09:00:00+08:00", "P-OIL-01", 3.0, 5.0)
    assert [(x["row"], x["machine_id"], x["field"]) for x in body["rejected"]] == [
        (3, "X-1", "kind"), (4, "X-2", "lat"), (5, "X-3", "time")]
    assert body["rejected"][1]["received"] == 117.3


def test_post_positions_roles_and_crs(demo_client: TestClient) -> None:
    assert demo_client.post("/protection/positions", json=_batch()).status_code == 401
    assert demo_client.post("/protection/positions", json=_batch(),
                            headers=auth("fire")).status_code == 403
    bad = {**_batch(), "crs": "EPSG:4548"}
    r = demo_client.post("/protection/positions", json=bad, headers=auth("planner"))
    assert r.status_code == 422
    assert "crs is 'EPSG:4548' (projected)" in r.json()["description"]


def _read_events(lines: Any, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in lines:
        if line.startswith("data: "):
            out.append(json.loads(line[6:]))
            if len(out) == n:
                break
    return out


def test_alert_stream_replays_and_delivers_live(demo_client: TestClient) -> None:
    demo_client.post("/protection/positions", json=_batch(), headers=auth("admin"))
    # replay of the kept alerts after id 0 (the stream ends after max_events)
    with demo_client.stream("GET", "/protection/alerts?since=0&max_events=2",
                            headers=auth("police")) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        got = _read_events(r.iter_lines(), 2)
    assert [g["machine_id"] for g in got] == ["M-01", "M-05"]
    # live: an alert posted while the stream is open arrives on it
    live: list[dict[str, Any]] = []

    def listen() -> None:
        with demo_client.stream("GET", "/protection/alerts?max_events=1&timeout_s=20",
                                headers=auth("planner")) as r:
            live.extend(_read_events(r.iter_lines(), 1))

    t = threading.Thread(target=listen)
    t.start()
    import time

    time.sleep(0.5)
    one = {"crs": "EPSG:4490", "positions": _batch()["positions"][2:3]}
    demo_client.post("/protection/positions", json=one, headers=auth("police"))
    t.join(20)
    assert [g["machine_id"] for g in live] == ["M-05"]
    assert demo_client.get("/protection/alerts", headers=auth("fire")).status_code == 403
    assert demo_client.get("/protection/alerts?bogus=1",
                           headers=auth("police")).status_code == 400


def test_live_page(demo_client: TestClient) -> None:
    r = demo_client.get("/maps/protection", headers=auth("police"))
    assert r.status_code == 200
    assert '<script src="/static/maps/protection/live.js"></script>' in r.text
    js = demo_client.get("/static/maps/protection/live.js")
    assert js.status_code == 200 and "EventSource" in js.text
    anon = demo_client.get("/maps/protection", headers={"Accept": "text/html"},
                           follow_redirects=False)
    assert anon.status_code == 303
    assert anon.headers["location"] == "/signin?next=/maps/protection"


def test_gcj02_and_default_crs(demo_client: TestClient) -> None:
    from geo.crs import wgs84_to_gcj02

    m01 = _batch()["positions"][0]
    lon, lat = float(m01["lon"]), float(m01["lat"])
    glon, glat = wgs84_to_gcj02(lon, lat)
    gcj = {"crs": "GCJ-02", "positions": [{**m01, "lon": float(glon), "lat": float(glat)}]}
    r = demo_client.post("/protection/positions", json=gcj, headers=auth("police")).json()
    assert r["crs"] == "GCJ-02" and len(r["alerts"]) == 1
    a = r["alerts"][0]
    assert a["distance_m"] == pytest.approx(3.0, abs=0.01)
    assert (a["lon"], a["lat"]) == (pytest.approx(lon, abs=1e-7), pytest.approx(lat, abs=1e-7))
    wgs = {"positions": [m01]}  # no crs: EPSG:4326, the same frame as EPSG:4490 here
    r = demo_client.post("/protection/positions", json=wgs, headers=auth("police")).json()
    assert r["crs"] == "EPSG:4326" and [x["distance_m"] for x in r["alerts"]] == [3.0]


def test_cli_positions_from_geojson_with_offsets(demo_store: tuple[Any, dict[str, Any]],
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    store, _ = demo_store
    m01 = _batch()["positions"][0]
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(m01["lon"]),
                                                                          float(m01["lat"])]},
         "properties": {"machine_id": "G-1", "kind": "开挖", "time": "2026-12-07T01:00:00Z"}},
        {"type": "Feature", "geometry": None,
         "properties": {"machine_id": "G-2", "kind": "开挖", "time": "2026-12-07T01:00:00Z"}}]}
    src = tmp_path / "pos.geojson"
    src.write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "alerts.geojson"
    assert api.cli.main(["check", "positions", "--store", str(store.path), "--in", str(src),
                         "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "row 2 (machine G-2): lat is missing" in err and "lon is missing" in err
    feats = json.loads(out.read_text(encoding="utf-8"))["features"]
    assert [(f["properties"]["machine_id"], f["properties"]["time"]) for f in feats] == [
        ("G-1", "2026-12-07T09:00:00+08:00")]  # Z read and shown in district time
