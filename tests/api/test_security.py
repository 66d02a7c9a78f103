"""Issue 13: no role learns what it may not see, no bad input gets a 500, no secret in a log."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import content_security_policy, create_app, host_allowed
from api.commands.serve import masked_url
from api.settings import Settings, parse_api_keys
from tests.api.conftest import API_KEYS, auth, make_client

NEAR = "/collections/restricted_zones/items?near=hazmat_routes:{}&within_m=100000"


# --- 1. near= goes through the caller's row filter --------------------------------------------
def test_near_hidden_target_answers_like_missing(client):
    draft = client.get(NEAR.format("R-2"))  # a draft route: public may not see it
    missing = client.get(NEAR.format("R-9"))
    assert draft.status_code == missing.status_code == 400
    assert draft.json()["description"] == (
        "near='hazmat_routes:R-2': collection 'hazmat_routes' has no feature 'R-2'")
    assert missing.json()["description"] == (
        "near='hazmat_routes:R-9': collection 'hazmat_routes' has no feature 'R-9'")
    ok = client.get(NEAR.format("R-1"))  # published: usable
    assert ok.status_code == 200 and ok.json()["numberMatched"] == 1
    planner = client.get(NEAR.format("R-2"), headers=auth("planner"))
    assert planner.status_code == 200 and planner.json()["numberMatched"] == 1


# --- 2. /layers by role; /health without the store path ---------------------------------------
def test_layers_follow_the_role(client, small_store_path):
    anon = client.get("/layers")
    assert anon.status_code == 200
    layers = {li["name"]: li for li in anon.json()["layers"]}
    assert set(layers) == {"hazmat_routes", "restricted_zones"}
    assert layers["hazmat_routes"]["count"] == 1 and layers["hazmat_routes"]["bbox"] is None
    assert layers["restricted_zones"]["count"] == 1
    assert layers["restricted_zones"]["bbox"] is not None
    police = {li["name"] for li in client.get("/layers", headers=auth("police")).json()["layers"]}
    assert police == {"buildings", "restricted_zones", "hazmat_routes", "fire_stations"}
    assert str(small_store_path) not in anon.text
    health = client.get("/health")
    assert set(health.json()) == {"status", "version", "layers"}
    assert small_store_path.name not in health.text


# --- 8. 404 for records a role may not see ----------------------------------------------------
def test_hidden_hazard_is_404_like_missing(store_copy):
    with make_client(store_copy.path) as c:
        hid = "occupancy:P-01:B-00"
        r = c.post("/registry/hazards", headers=auth("planner"),
                   json={"finding_id": hid, "analysis": "pipeline_findings"})
        assert r.status_code == 201, r.text
        hidden = c.get(f"/registry/hazards/{hid}", headers=auth("police"))
        missing = c.get("/registry/hazards/occupancy:P-01:B-99", headers=auth("police"))
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["description"] == f"no hazard {hid!r} in the registry"
        assert "planner" not in hidden.text
        p = c.patch(f"/registry/hazards/{hid}", headers={**auth("fire"), "If-Match": '"1"'},
                    json={"notes": "x"})
        assert p.status_code == 404 and p.json()["description"] == hidden.json()["description"]


def test_closed_hazard_is_not_editable(store_copy):
    with make_client(store_copy.path) as c:
        hid = "occupancy:P-01:B-00"
        assert c.post("/registry/hazards", headers=auth("planner"), json={
            "finding_id": hid, "analysis": "pipeline_findings"}).status_code == 201
        for to in ("rectifying", "rectified", "verified", "closed"):
            etag = c.get(f"/registry/hazards/{hid}", headers=auth("planner")).headers["ETag"]
            r = c.post(f"/registry/hazards/{hid}/transition",
                       headers={**auth("planner"), "If-Match": etag}, json={"to": to})
            assert r.status_code == 200, r.text
        etag = c.get(f"/registry/hazards/{hid}", headers=auth("planner")).headers["ETag"]
        r = c.patch(f"/registry/hazards/{hid}", headers={**auth("planner"), "If-Match": etag},
                    json={"notes": "changed after closing"})
        assert r.status_code == 409
        assert "is closed (销号" in r.json()["description"]
        after = c.get(f"/registry/hazards/{hid}", headers=auth("planner")).json()
        assert after["notes"] is None and after["status"] == "closed"


# --- 5. bad input: 400, not 500 ---------------------------------------------------------------
@pytest.mark.parametrize("query, needle", [
    ("offset=9223372036854775808", "offset='9223372036854775808' is too large"),
    ("offset=99999999999999999999999", "is too large"),
    ("floors=9223372036854775808", "out of range; expected a 64-bit integer"),
    ("crs=EPSG:" + "9" * 5000, "is too long to be a CRS"),
    ("crs=EPSG:99999999999", "EPSG code must be a number of at most 9 digits"),
    ("bbox=170,80,190,85", "outside longitude -180..180 / latitude -90..90"),
    ("bbox=100,10,101,20&bbox-crs=EPSG:4326", "(lat,lon order for"),
])
def test_bad_numbers_are_400(client, query, needle):
    r = client.get(f"/collections/buildings/items?{query}", headers=auth("planner"))
    assert r.status_code == 400, r.text
    assert needle in r.json()["description"]
    assert len(r.text) < 1000  # the input is not echoed in full


def test_projected_bbox_is_not_range_checked(client):
    r = client.get("/collections/buildings/items?bbox=3850000,400000,3860000,600000"
                   "&bbox-crs=EPSG:4548", headers=auth("planner"))
    assert r.status_code == 200, r.text


# --- 8. body limits, keys, headers, hosts, origins --------------------------------------------
def test_chunked_body_over_the_limit_is_413(client):
    def chunks():
        for _ in range(40):
            yield b"x" * 50_000

    r = client.post("/registry/hazards", headers={**auth("planner"),
                                                   "Content-Type": "application/json"},
                    content=chunks())
    assert r.status_code == 413
    assert r.json()["code"] == "PayloadTooLarge"


@pytest.mark.parametrize("text", [
    "thesecretkey99:planner",           # swapped: the "role" is a key
    "planner:thesecret\u00e9key",        # non-ASCII: could never log in
    "planner:the secret key",            # a space
    '[{"role": "planner", "key": "thesecretkey99"',  # broken JSON
])
def test_bad_api_keys_never_echo_a_key(text, monkeypatch):
    monkeypatch.setenv("RISKMAP_API_KEYS", text)
    with pytest.raises(ValueError) as info:
        Settings(store="x.gpkg")
    msg = str(info.value)
    assert "secret" not in msg and "thesecr" not in msg and "key99" not in msg
    assert "RISKMAP_API_KEYS" in msg


def test_non_ascii_key_refused_naming_why():
    with pytest.raises(ValueError, match="non-ASCII character, which no HTTP header"):
        parse_api_keys("planner:clé-secrète-1")


def test_security_headers(client):
    page = client.get("/collections?f=html")
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "script-src 'self' 'unsafe-inline';" in csp
    anon = client.get("/collections")
    assert "Cache-Control" not in anon.headers  # public data stays cacheable
    assert {"Authorization", "X-API-Key", "Cookie"} <= {
        v.strip() for v in anon.headers["Vary"].split(",")}
    keyed = client.get("/collections", headers=auth("planner"))
    assert keyed.headers["Cache-Control"] == "private, no-store"
    assert "Content-Security-Policy" not in keyed.headers  # JSON


def test_raised_anonymous_role_is_never_cached(small_store_path):
    with make_client(small_store_path, anonymous_role="planner") as c:
        assert c.get("/collections").headers["Cache-Control"] == "private, no-store"


def test_untrusted_host_is_400_and_not_reflected(small_store_path):
    app = create_app(Settings(store=str(small_store_path), api_keys=API_KEYS))
    with TestClient(app, base_url="http://evil.example") as c:
        r = c.get("/")
        assert r.status_code == 400 and "evil.example" not in r.text
    with TestClient(app, base_url="http://localhost:8000") as c:
        r = c.get("/")
        assert r.status_code == 200
        assert r.json()["links"][0]["href"] == "http://localhost:8000/"
    assert host_allowed("[::1]:8000", ["::1"]) and host_allowed("a.b.org", ["*.b.org"])
    assert not host_allowed("b.org.evil", ["*.b.org"]) and not host_allowed("", ["x"])


def test_trusted_hosts_setting(small_store_path, monkeypatch):
    monkeypatch.setenv("RISKMAP_TRUSTED_HOSTS", "riskmap.example.org, *.intranet")
    s = Settings(store=str(small_store_path))
    assert s.trusted_hosts == ["riskmap.example.org", "*.intranet"]
    with TestClient(create_app(s), base_url="http://gis.intranet") as c:
        assert c.get("/").status_code == 200
    with TestClient(create_app(s), base_url="http://localhost") as c:
        assert c.get("/").status_code == 400
    monkeypatch.setenv("RISKMAP_TRUSTED_HOSTS", "bad host/x")
    with pytest.raises(ValueError, match="is not a host name"):
        Settings(store=str(small_store_path))


def test_cross_site_writes_refused(store_copy):
    with make_client(store_copy.path, anonymous_role="planner",
                     cors_origins="https://ok.example") as c:
        body = {"finding_id": "occupancy:P-01:B-00", "analysis": "pipeline_findings"}
        r = c.post("/registry/hazards", json=body, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        assert r.json()["description"].startswith(
            "cross-site write refused: Origin 'https://evil.example' is not this service")
        r = c.post("/registry/hazards", json=body, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403 and "Sec-Fetch-Site is 'cross-site'" in r.text
        assert c.get("/registry/hazards").json()["numberMatched"] == 0  # nothing written
        r = c.post("/registry/hazards", json=body, headers={"Origin": "http://testserver"})
        assert r.status_code == 201, r.text
        r = c.post("/registry/hazards", json=body, headers={"Origin": "https://ok.example"})
        assert r.status_code == 201  # idempotent register from an allowed origin


def test_csp_allows_the_docs_cdn_only_on_the_docs():
    assert "cdn.jsdelivr.net" not in content_security_policy([], docs=True)  # docs vendored
    assert "cdn.jsdelivr.net" not in content_security_policy(["https://tile.openstreetmap.org"])


# --- 6. no password in the serve start-up line ------------------------------------------------
def test_masked_url():
    assert masked_url("postgresql://user:PASSWORD@db:5432/riskmap?password=X&sslmode=require") \
        == "postgresql://user:***@db:5432/riskmap?password=***&sslmode=require"
    assert masked_url("data/demo.gpkg") == "data/demo.gpkg"
    assert masked_url("postgresql://user@db/riskmap") == "postgresql://user@db/riskmap"


@pytest.mark.server
def test_serve_masks_the_password(capsys, monkeypatch):
    import os

    url = os.environ.get("RISKMAP_TEST_POSTGIS_URL")
    if not url:
        pytest.skip("RISKMAP_TEST_POSTGIS_URL not set")
    import uvicorn

    from api.cli import main

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    with_pw = url.replace("riskmap@", "riskmap:HUNTER2-PASSWORD@", 1)
    main(["serve", "--store", with_pw])  # uvicorn.run replaced: returns at once
    out = capsys.readouterr()
    assert "HUNTER2" not in out.out + out.err
    assert "riskmap:***@" in out.out + out.err


# --- 5. unknown CRS on import (API and CLI); 8. a GeoJSON crs member naming no CRS ---------
_ZONE = {"type": "FeatureCollection", "features": [{
    "type": "Feature", "properties": {"id": "Z-9", "name": "x", "kind": "water_source",
                                      "rule": "forbidden", "hours": ""},
    "geometry": {"type": "Polygon", "coordinates": [[[117.25, 34.8], [117.251, 34.8],
                                                     [117.251, 34.801], [117.25, 34.8]]]}}]}


def test_import_unknown_crs_is_400(store_copy):
    import json

    with make_client(store_copy.path) as c:
        r = c.post("/layers/restricted_zones/import?crs=EPSG:99999999999",
                   content=json.dumps(_ZONE), headers=auth("admin"))
        assert r.status_code == 400
        assert r.json()["description"].startswith(
            "crs 'EPSG:99999999999' is not a CRS pyproj knows")
        member = {**_ZONE, "crs": {"type": "name",
                                   "properties": {"name": "urn:ogc:def:crs:EPSG::99999"}}}
        r = c.post("/layers/restricted_zones/import", content=json.dumps(member),
                   headers=auth("admin"))
        assert r.status_code == 400
        assert ("its \"crs\" member names 'urn:ogc:def:crs:EPSG::99999', which is not a CRS"
                in r.json()["description"])
        assert r.json()["description"].startswith("upload.geojson: its")
        assert "riskmap-import" not in r.text and "/tmp" not in r.text  # no server path
        assert c.get("/collections/restricted_zones/items/Z-9",
                     headers=auth("admin")).status_code == 404  # nothing imported


def test_cli_import_unknown_crs_exits_2(store_copy, tmp_path, capsys):
    import json

    from api.cli import main

    f = tmp_path / "zones.geojson"
    f.write_text(json.dumps(_ZONE))
    rc = main(["import", "--store", str(store_copy.path), "restricted_zones", str(f),
               "--crs", "EPSG:99999999999"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "crs 'EPSG:99999999999' is not a CRS pyproj knows" in err
    assert "Traceback" not in err


# --- 8. stale uploads of killed imports are removed at start-up ------------------------------
def test_stale_uploads_removed_at_startup(small_store_path, tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    stale = tmp_path / f"riskmap-import-{dead.pid}-abc.geojson"
    live = tmp_path / f"riskmap-import-{__import__('os').getpid()}-def.geojson"
    stale.write_text("{}")
    live.write_text("{}")
    with make_client(small_store_path) as c:
        assert c.get("/health").status_code == 200
    assert not stale.exists() and live.exists()


# --- 8. CSV exports cannot run formulas -----------------------------------------------------
def test_csv_export_defuses_formulas(tmp_path):
    import geopandas as gpd
    from shapely.geometry import Point

    from layers.writers import write_findings

    gdf = gpd.GeoDataFrame({"name": ["=HYPERLINK(\"http://x\")", "+1", "-2", "@A1", "\tx", "ok"],
                            "value": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0]},
                           geometry=[Point(117.25, 34.8)] * 6, crs=4490)
    out = write_findings(gdf, tmp_path / "f.csv")
    text = out.read_text(encoding="utf-8-sig").splitlines()
    assert text[0] == "name,value,lon,lat,wkt"
    assert [line.split(",")[0] for line in text[1:]] == [
        "\"'=HYPERLINK(\"\"http://x\"\")\"", "'+1", "'-2", "'@A1", "'\tx", "ok"]
    assert [line.split(",")[1] for line in text[1:]] == ["-1.5", "2.0", "-3.0", "4.0", "5.0",
                                                          "6.0"]


# --- 5. POST /routes with an unknown permit: 400, a short log, no traceback -------------------
def test_unknown_permit_is_400_with_a_small_log(store_copy, caplog):
    import logging

    import geopandas as gpd
    from shapely.geometry import LineString

    store_copy.write({"roads": gpd.GeoDataFrame([{
        "id": "RD-1", "name": "r", "kind": "primary", "lanes": 2, "speed_kmh": 50.0,
        "oneway": False, "hazmat_allowed": True,
        "geometry": LineString([(117.25, 34.8), (117.26, 34.8)])}], crs=4490)})
    caplog.set_level(logging.DEBUG)
    with make_client(store_copy.path) as client:
        r = client.post("/routes", headers=auth("police"), json={
            "origin": [117.25, 34.8], "destination": [117.252, 34.8],
            "permits": ["NOPE" * 10]})
    assert r.status_code == 400, r.text
    assert r.json()["description"].startswith("permit for unknown zone NOPENOPE")
    assert "Traceback" not in caplog.text and len(caplog.text) < 2000


# --- 8. kill -9 of a server during an import: its upload is removed at the next start -------
@pytest.mark.server
def test_killed_import_leaves_no_upload(small_store_path, tmp_path):
    import contextlib
    import json
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import threading
    import time
    from pathlib import Path

    import httpx

    store = tmp_path / "store.gpkg"
    shutil.copy(small_store_path, store)
    spool = tmp_path / "tmp"
    spool.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RISKMAP_STORE": str(store), "RISKMAP_API_KEYS": API_KEYS,
           "TMPDIR": str(spool)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        ring = [[117.25, 34.8], [117.2501, 34.8], [117.2501, 34.8001], [117.25, 34.8]]
        feats = [{"type": "Feature", "properties": {
            "id": f"B-X{i}", "use": "residential", "floors": 2, "households": 1},
            "geometry": {"type": "Polygon", "coordinates": [ring]}} for i in range(60_000)]
        body = json.dumps({"type": "FeatureCollection", "features": feats}).encode()

        def send() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server is killed under it
                httpx.post(f"http://127.0.0.1:{port}/layers/buildings/import?replace=true",
                           content=body, headers=auth("admin"), timeout=60)

        threading.Thread(target=send, daemon=True).start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(spool.glob("riskmap-import-*")):
            time.sleep(0.02)
        left = list(spool.glob("riskmap-import-*"))
        assert left and left[0].name.startswith(f"riskmap-import-{proc.pid}-")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert list(spool.glob("riskmap-import-*")) == left  # the kill left it behind
    finally:
        if proc.poll() is None:
            proc.kill()
    import tempfile

    old = tempfile.tempdir
    tempfile.tempdir = str(spool)
    try:
        with make_client(store) as c:  # the next start-up cleans it
            assert c.get("/health").status_code == 200
    finally:
        tempfile.tempdir = old
    assert list(spool.glob("riskmap-import-*")) == []
