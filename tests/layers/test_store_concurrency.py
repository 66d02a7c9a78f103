"""Several writers and readers on one GeoPackage store at once (issue 11, item 1).

Processes race, not threads: concurrent ``riskmap import`` runs and API servers, an append
racing a ``--replace``, a writer meeting a busy store, readers during writes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import pyogrio
import pytest
from shapely.geometry import box

from layers import gpkg_query
from layers.errors import STORE_BUSY_EXIT
from layers.importing import import_frame
from layers.store import GeoPackageStore

ROOT = Path(__file__).resolve().parents[2]
LON0, LAT0 = 117.25, 34.80
STEP = 0.0002  # ~20 m grid
N_FILE = 2000
N_PROCS = 8
ADMIN_KEY = "admin-key-h1-concurrency"

_ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def _buildings(prefix: str, n: int, row0: int) -> gpd.GeoDataFrame:
    """``n`` valid buildings ``<prefix>-<k>`` on a grid starting at row ``row0``."""
    k = range(n)
    geoms = [box(LON0 + (i % 50) * STEP, LAT0 + (row0 + i // 50) * STEP,
                 LON0 + (i % 50) * STEP + STEP / 2, LAT0 + (row0 + i // 50) * STEP + STEP / 2)
             for i in k]
    return gpd.GeoDataFrame({"id": [f"{prefix}-{i}" for i in k], "use": ["office"] * n,
                             "floors": [1 + i % 4 for i in k]}, geometry=geoms, crs=4490)


def _files(tmp_path: Path, n_files: int) -> list[Path]:
    out = []
    for f in range(n_files):
        path = tmp_path / f"b{f}.gpkg"
        pyogrio.write_dataframe(_buildings(f"F{f}", N_FILE, row0=f * (N_FILE // 50)), path,
                                layer="buildings", driver="GPKG")
        out.append(path)
    return out


def _ids(path: Path, layer: str = "buildings") -> list[str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [str(r[0]) for r in con.execute(f'SELECT id FROM "{layer}" ORDER BY fid')]
    finally:
        con.close()


def _check_layer(path: Path, want: int) -> None:
    """The layer is a sound GeoPackage table of ``want`` features after the race."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("SELECT rtreecheck('rtree_buildings_geom')").fetchall() == [("ok",)]
        assert con.execute("SELECT feature_count FROM gpkg_ogr_contents WHERE "
                           "table_name = 'buildings'").fetchall() == [(want,)]
        assert con.execute("SELECT count(*) FROM rtree_buildings_geom").fetchone() == (want,)
    finally:
        con.close()
    assert pyogrio.read_info(path, layer="buildings", force_feature_count=True
                             )["features"] == want


def _outcome(path: Path, codes: list[int], totals: list[int]) -> None:
    """Every import either landed whole (exit 0) or was refused whole (exit 75)."""
    stored = _ids(path) if GeoPackageStore(path).has_layer("buildings") else []
    landed = [f for f, rc in enumerate(codes) if rc == 0]
    assert all(rc in (0, STORE_BUSY_EXIT) for rc in codes), codes
    assert sorted(stored) == sorted(f"F{f}-{i}" for f in landed for i in range(N_FILE))
    # each append saw the ones before it: totals 2000, 4000, … in some order
    assert sorted(totals) == [N_FILE * (k + 1) for k in range(len(landed))]
    if landed:
        _check_layer(path, N_FILE * len(landed))


# --- 8 concurrent `riskmap import` processes ------------------------------------------------
@pytest.mark.slow
def test_concurrent_cli_imports_all_land(tmp_path: Path) -> None:
    files = _files(tmp_path, N_PROCS)
    store = tmp_path / "s.gpkg"
    env = {**os.environ, "RISKMAP_BUSY_TIMEOUT": "120"}
    procs = [subprocess.Popen([sys.executable, "-m", "api.cli", "import", "--store", str(store),
                               "buildings", str(f)], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in files]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0] * N_PROCS, [o[1][-500:] for o in outs]
    totals = [int(m.group(1)) for o, _e in outs
              for m in [re.search(r"\(now (\d+)\)", o)] if m]
    _outcome(store, codes, totals)


# --- the same through the API: two server processes, 8 requests at once ---------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    store = tmp_path / "api.gpkg"
    GeoPackageStore(store).write({"fire_stations": gpd.GeoDataFrame(
        {"id": ["F-1"], "kind": ["micro_station"]},
        geometry=gpd.points_from_xy([LON0], [LAT0]), crs=4490)})
    env = {**os.environ, "RISKMAP_STORE": str(store), "RISKMAP_BUSY_TIMEOUT": "120",
           "RISKMAP_API_KEYS": f"admin:h1:{ADMIN_KEY}"}
    procs, urls, logs = [], [], []
    try:
        for k in range(2):
            port = _free_port()
            log = open(tmp_path / f"server{k}.log", "wb")  # noqa: SIM115 - closed below
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
                 "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        for proc, url in zip(procs, urls, strict=True):
            port = int(url.rsplit(":", 1)[1])
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("server did not start: " + (tmp_path / "server0.log"
                                                                ).read_text(errors="replace"))
                    time.sleep(0.2)
        yield store, urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()


@pytest.mark.slow
@pytest.mark.server
def test_concurrent_api_imports_all_land(servers: tuple[Path, list[str]],
                                         tmp_path: Path) -> None:
    store, urls = servers
    bodies = [_buildings(f"F{f}", N_FILE, row0=f * (N_FILE // 50)).to_json().encode()
              for f in range(N_PROCS)]

    def post(f: int) -> httpx.Response:
        return httpx.post(f"{urls[f % 2]}/layers/buildings/import?format=geojson",
                          content=bodies[f], timeout=300,
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"})

    with ThreadPoolExecutor(N_PROCS) as pool:
        answers = list(pool.map(post, range(N_PROCS)))
    codes = [0 if r.status_code == 200 else STORE_BUSY_EXIT if r.status_code == 503
             else r.status_code for r in answers]
    assert [r.status_code for r in answers] == [200] * N_PROCS, [r.text for r in answers]
    assert all(r.json()["imported"] == N_FILE for r in answers)
    _outcome(store, codes, [r.json()["total"] for r in answers])


# --- an append racing a --replace ---------------------------------------------------------------
def _race_one(path: str, kind: str, frame: gpd.GeoDataFrame, start: Any, out: Any) -> None:
    try:
        start.wait()
        r = import_frame(GeoPackageStore(path), "buildings", frame, replace=kind == "replace")
        out.put((kind, r.total))
    except BaseException as exc:  # reported to the test
        out.put((kind, f"{type(exc).__name__}: {exc}"))


def test_append_racing_replace_ends_in_a_serial_order(tmp_path: Path) -> None:
    a = _buildings("A", 60, row0=0)
    b = _buildings("B", 40, row0=10)
    c = _buildings("C", 30, row0=20)
    orders = []
    for trial in range(5):
        path = tmp_path / f"race{trial}.gpkg"
        GeoPackageStore(path).write({"buildings": a})
        start, out = _ctx.Barrier(2), _ctx.Queue()
        procs = [_ctx.Process(target=_race_one, args=(str(path), kind, frame, start, out))
                 for kind, frame in (("append", b), ("replace", c))]
        for p in procs:
            p.start()
        results = dict(out.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(timeout=30)
        ids = set(_ids(path))
        if ids == set(c["id"]):  # append first, then the replace
            assert results == {"append": 100, "replace": 30}
            orders.append("append, replace")
        else:  # replace first, then the append
            assert ids == set(c["id"]) | set(b["id"]), sorted(ids)[:5]
            assert results == {"append": 70, "replace": 30}
            orders.append("replace, append")
        _check_layer(path, len(ids))
    assert len(orders) == 5


# --- a busy store -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_import_on_a_busy_store_exits_75_and_changes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "busy.gpkg"
    GeoPackageStore(store).write({"buildings": _buildings("A", 10, row0=0)})
    version = GeoPackageStore(store).version()
    src = tmp_path / "more.gpkg"
    pyogrio.write_dataframe(_buildings("M", 5, row0=5), src, layer="buildings", driver="GPKG")
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        for extra in ([], ["--replace"]):
            run = subprocess.run([sys.executable, "-m", "api.cli", "import", "--store",
                                  str(store), "buildings", str(src), *extra],
                                 cwd=ROOT, capture_output=True, text=True, timeout=120,
                                 env={**os.environ, "RISKMAP_BUSY_TIMEOUT": "0.5"})
            assert run.returncode == STORE_BUSY_EXIT, run.stderr
            assert f"store {store} busy (another writer holds it); retry — nothing was " \
                   "changed (waited 0.5 s)" in run.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert GeoPackageStore(store).version() == version
    assert _ids(store) == [f"A-{i}" for i in range(10)]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".riskmap-")] == []


# --- readers during writes ------------------------------------------------------------------------
_BOX = (LON0 - 0.001, LAT0 + 9.5 * STEP, LON0 + 0.02, LAT0 + 20 * STEP)


def _riskmap_reader(path: str, ready: Any, stop: Any, out: Any, done: Any) -> None:
    """riskmap's own read paths (the store, the API's page queries): one SQLite."""
    reads, errors = 0, []
    store = GeoPackageStore(path)
    ready.set()
    while not stop.is_set():
        try:
            n = len(store.read("buildings"))
            near = len(store.read("buildings", bbox=_BOX))
            with gpkg_query.reader(path) as con:
                rows = gpkg_query.read_rows(con, gpkg_query.describe(con, "buildings"),
                                            limit=1000)
            if n not in (300, 600) or near not in (0, 300) or len(rows.fids) not in (300, 600):
                errors.append(f"read {n} / bbox {near} / page {len(rows.fids)} features")
            reads += 1
            done.value = reads
        except Exception as exc:  # every failure is a finding
            errors.append(f"{type(exc).__name__}: {exc}")
    out.put((reads, errors))


def _gdal_reader(path: str, ready: Any, stop: Any, out: Any, done: Any) -> None:
    """Another program reading with GDAL (QGIS, ogr2ogr) in its own process."""
    reads, errors = 0, []
    ready.set()
    while not stop.is_set():
        try:
            n = len(pyogrio.read_dataframe(path, layer="buildings"))
            near = len(pyogrio.read_dataframe(path, layer="buildings", bbox=_BOX))
            if n not in (300, 600) or near not in (0, 300):
                errors.append(f"read {n} / bbox {near} features")
            reads += 1
            done.value = reads
        except Exception as exc:  # every failure is a finding
            errors.append(f"{type(exc).__name__}: {exc}")
    out.put((reads, errors))


def test_readers_never_fail_during_writes(tmp_path: Path) -> None:
    path = tmp_path / "rw.gpkg"
    first = _buildings("X", 300, row0=0)  # rows 0..5
    second = _buildings("Y", 300, row0=10)  # rows 10..15: the bbox's features
    store = GeoPackageStore(path)
    store.write({"buildings": first})
    readers, dones = [], []
    for target in (_riskmap_reader, _gdal_reader):
        ready, stop, out, done = _ctx.Event(), _ctx.Event(), _ctx.Queue(), _ctx.Value("i", 0)
        proc = _ctx.Process(target=target, args=(str(path), ready, stop, out, done))
        proc.start()
        readers.append((proc, ready, stop, out))
        dones.append(done)
    results, cycles = [], 0
    try:
        for _proc, ready, _stop, _out in readers:
            assert ready.wait(60)
        deadline = time.monotonic() + 60
        # write until each reader has read 20 times during the writes (at least 10 cycles)
        while cycles < 10 or (min(d.value for d in dones) < 20 and time.monotonic() < deadline):
            store.append("buildings", second)
            store.write({"buildings": first})
            cycles += 1
    finally:
        for proc, _ready, stop, out in readers:
            stop.set()
            results.append(out.get(timeout=60))
            proc.join(timeout=30)
    for reads, errors in results:
        assert errors == []
        assert reads >= 20
    assert _ids(path) == list(first["id"])
