"""Live-server acceptance: GDAL's OAPIF driver lists every collection and pages through a
layer; schemathesis checks the OpenAPI document against the running app."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import API_KEYS, KEYS, small_layers

pytestmark = pytest.mark.server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(small_store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("server") / "store.gpkg"
    shutil.copy(small_store_path, store)  # schemathesis writes to the registry
    port = _free_port()
    log_path = store.with_suffix(".log")
    log = open(log_path, "wb")  # noqa: SIM115 - a pipe nobody reads would block the server
    env = {**os.environ, "RISKMAP_STORE": str(store), "RISKMAP_API_KEYS": API_KEYS,
           "RISKMAP_MAX_LIMIT": "1000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=Path(__file__).resolve().parents[2], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("server did not start in 30 s")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _ogrinfo(args: list[str], role: str | None = "planner") -> str:
    exe = shutil.which("ogrinfo")
    if exe is None:
        pytest.skip("ogrinfo (Debian gdal-bin) is not installed")
    env = dict(os.environ)
    if role is not None:
        env["GDAL_HTTP_HEADERS"] = f"Authorization: Bearer {KEYS[role]}"
    res = subprocess.run([exe, "-ro", *args], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_ogrinfo_lists_every_collection(server):
    out = _ogrinfo([f"OAPIF:{server}"])
    listed = re.findall(r"^\d+: (\w+)", out, flags=re.M)
    import httpx

    served = httpx.get(f"{server}/collections", headers={
        "Authorization": f"Bearer {KEYS['planner']}"}).json()["collections"]
    assert set(small_layers()) < set(listed)
    assert "pipeline_findings" in listed
    assert sorted(listed) == sorted(c["id"] for c in served)
    anon = _ogrinfo([f"OAPIF:{server}"], role=None)
    assert sorted(re.findall(r"^\d+: (\w+)", anon, flags=re.M)) == [
        "hazmat_routes", "restricted_zones"]


def test_ogrinfo_pages_through_a_layer(server):
    out = _ogrinfo(["-oo", "PAGE_SIZE=5", f"OAPIF:{server}", "buildings"])
    ids = re.findall(r"^\s+id \(String\) = (\S+)$", out, flags=re.M)
    assert ids == [f"B-{i:02d}" for i in range(12)]
    floors = [int(v) for v in re.findall(r"^\s+floors \(Integer\) = (\d+)$", out, flags=re.M)]
    assert floors == [1 + i % 5 for i in range(12)]
    polys = re.findall(r"^\s+POLYGON \(\((.+)\)\)$", out, flags=re.M)
    assert len(polys) == 12
    want = small_layers()["buildings"].geometry
    for text, geom in zip(polys, want, strict=True):
        xs, ys = zip(*(map(float, p.split()) for p in text.split(",")), strict=True)
        minx, miny, maxx, maxy = geom.bounds
        assert (min(xs), min(ys), max(xs), max(ys)) == pytest.approx(
            (minx, miny, maxx, maxy), abs=1e-7)


def test_ogrinfo_bbox(server):
    out = _ogrinfo(["-spat", "117.2504", "34.8004", "117.2509", "34.8009", f"OAPIF:{server}",
                    "buildings"])
    assert re.findall(r"^\s+id \(String\) = (\S+)$", out, flags=re.M) == ["B-05"]


def test_schemathesis(server):
    st = pytest.importorskip("schemathesis")
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which(
        "st", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("schemathesis CLI not installed")
    del st
    res = subprocess.run(
        [exe, "run", f"{server}/api", "--checks",
         "not_a_server_error,status_code_conformance,content_type_conformance,"
         "response_schema_conformance", "--max-examples", "15", "--phases", "examples,fuzzing",
         "--header", f"Authorization: Bearer {KEYS['admin']}", "--request-timeout", "30",
         "--wait-for-schema", "30", "--no-color"],
        capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
