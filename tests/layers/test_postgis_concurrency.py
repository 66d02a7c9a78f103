"""Concurrent writers on one PostGIS store lose nothing (issue 11, item 1, PostGIS side).

Each write is one transaction holding the layer's writer lock: 8 racing imports of distinct
files all land (or a refused one exits 75 with nothing of it written), an append racing a
replace ends equal to one serial order, and a writer that cannot get the lock in time raises
``StoreBusy`` and changes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from postgis_support import postgis_url, scratch_schema
from shapely.geometry import box

from bench import district
from layers.errors import STORE_BUSY_EXIT, LayerValidationError, StoreBusy
from layers.postgis import PostGISStore, split_url

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
N_FILES, PER_FILE = 8, 2_000
LON0, LAT0 = 117.25, 34.80


@pytest.fixture
def pg_url() -> Iterator[str]:
    with scratch_schema(postgis_url()) as url:
        yield url


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """8 GeoJSON files of 2,000 distinct buildings each (one district, sliced)."""
    out = tmp_path_factory.mktemp("pg-imports")
    paths = []
    for i in range(N_FILES):
        gdf = district.buildings(N_FILES * PER_FILE, start=i * PER_FILE, count=PER_FILE)
        path = out / f"buildings_{i}.geojson"
        gdf.to_crs(4490).to_file(path, driver="GeoJSON")
        paths.append(path)
    return paths


def _expected_ids() -> list[str]:
    return [f"B{i:08d}" for i in range(N_FILES * PER_FILE)]


def _squares(ids: list[str], *, row: int) -> gpd.GeoDataFrame:
    d = 1e-4
    return gpd.GeoDataFrame(
        {"id": ids, "floors": np.arange(1, len(ids) + 1, dtype="int64")},
        geometry=[box(LON0 + k * 2 * d, LAT0 + row * 2 * d, LON0 + (2 * k + 1) * d,
                      LAT0 + (row * 2 + 1) * d) for k in range(len(ids))],
        crs=4490)


def _hold_layer_lock(url: str, layer: str) -> Any:
    """A connection holding ``layer``'s writer lock (as a writer in mid-transaction does)."""
    import psycopg

    conninfo, schema = split_url(url)
    conn = psycopg.connect(conninfo)
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))",
                 (f"riskmap-layer:{schema}", layer))
    return conn


_APPEND = """
import sys, geopandas as gpd
from layers.postgis import PostGISStore
from layers.errors import StoreBusy
try:
    print(PostGISStore(sys.argv[1]).append("buildings", gpd.read_file(sys.argv[2])))
except StoreBusy as exc:
    print(exc, file=sys.stderr)
    sys.exit(75)
"""


def _run_all(cmds: list[list[str]], env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in cmds]
    out = []
    for p, c in zip(procs, cmds, strict=True):
        stdout, stderr = p.communicate(timeout=240)
        out.append(subprocess.CompletedProcess(c, p.returncode, stdout, stderr))
    return out


def _check_all_or_refused(url: str, results: list[subprocess.CompletedProcess[str]]) -> None:
    """Every file is stored, or its process exited 75 and none of its ids are stored."""
    for r in results:
        assert r.returncode in (0, STORE_BUSY_EXIT), r.stderr[-2000:]
    landed = [i for i, r in enumerate(results) if r.returncode == 0]
    expected = [f"B{k:08d}" for i in landed for k in range(i * PER_FILE, (i + 1) * PER_FILE)]
    store = PostGISStore(url)
    got = store.read("buildings", columns=["id"])["id"].tolist()
    assert sorted(got) == sorted(expected)
    assert len(got) == len(set(got))
    info = {i.name: i for i in store.layers()}["buildings"]
    assert info.count == len(expected)
    # fids stay 1 … n in insertion order: slices partition the layer
    assert len(store.read_slice("buildings", 0, len(expected))) == len(expected)


@pytest.mark.slow
def test_eight_processes_appending_lose_nothing(pg_url: str, files: list[Path]) -> None:
    """8 processes call ``store.append`` at once on a layer none of them created."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = _run_all([[sys.executable, "-c", _APPEND, pg_url, str(f)] for f in files], env)
    assert [r.returncode for r in results] == [0] * N_FILES, [r.stderr[-800:] for r in results]
    totals = sorted(int(r.stdout.split()[-1]) for r in results)
    assert totals == [PER_FILE * (k + 1) for k in range(N_FILES)]  # each saw one serial order
    _check_all_or_refused(pg_url, results)
    store = PostGISStore(pg_url)
    assert sorted(store.read("buildings")["id"]) == _expected_ids()
    assert store.version().endswith(f"-{N_FILES}")  # one version step per append


@pytest.mark.slow
def test_eight_cli_imports_lose_nothing(pg_url: str, files: list[Path]) -> None:
    """``riskmap import --store postgresql://… buildings FILE`` × 8 at once."""
    riskmap = str(ROOT / ".venv" / "bin" / "riskmap")
    env = dict(os.environ)
    results = _run_all([[riskmap, "import", "--store", pg_url, "buildings", str(f)]
                        for f in files], env)
    _check_all_or_refused(pg_url, results)
    assert [r.returncode for r in results] == [0] * N_FILES, [r.stderr[-800:] for r in results]


def test_first_appends_race_to_create_the_layer(pg_url: str) -> None:
    """4 threads append to a layer that does not exist yet: one creates it, all land."""
    store = PostGISStore(pg_url)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            start.wait()
            PostGISStore(pg_url).append("hydrants", _squares([f"H{k}-{j}" for j in range(50)],
                                                             row=k))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = store.read("hydrants")
    assert sorted(got["id"]) == sorted(f"H{k}-{j}" for k in range(4) for j in range(50))
    assert [i.count for i in store.layers()] == [200]


@pytest.mark.parametrize("trial", range(4))
def test_append_racing_replace_ends_in_a_serial_order(pg_url: str, trial: int) -> None:
    """An append and a ``--replace`` started together: the result is replace-then-append or
    append-then-replace, never the append undoing the replace (or a mix)."""
    store = PostGISStore(pg_url)
    store.write({"buildings": _squares([f"A{j}" for j in range(300)], row=0)})
    new = _squares([f"N{j}" for j in range(200)], row=1)
    repl = _squares([f"R{j}" for j in range(100)], row=2)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(fn: object) -> None:
        try:
            start.wait()
            fn()  # type: ignore[operator]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    jobs = [lambda: PostGISStore(pg_url).append("buildings", new),
            lambda: PostGISStore(pg_url).write({"buildings": repl})]
    if trial % 2:
        jobs.reverse()
    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = store.read("buildings")
    ids = got["id"].tolist()
    replace_then_append = [f"R{j}" for j in range(100)] + [f"N{j}" for j in range(200)]
    append_then_replace = [f"R{j}" for j in range(100)]
    assert ids in (replace_then_append, append_then_replace)
    info = store.layers()[0]
    assert info.count == len(ids)
    assert store.version().endswith("-3")


def test_blocked_writer_raises_store_busy_and_changes_nothing(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = PostGISStore(pg_url)
    store.write({"buildings": _squares(["A0", "A1"], row=0)})
    version = store.version()
    holder = _hold_layer_lock(pg_url, "buildings")
    try:
        busy = PostGISStore(pg_url, busy_timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(StoreBusy, match=r"busy \(another writer holds it\); retry — "
                                            "nothing was changed"):
            busy.append("buildings", _squares(["N0"], row=1))
        assert 0.25 < time.monotonic() - t0 < 5
        with pytest.raises(StoreBusy):
            busy.write({"buildings": _squares(["R0"], row=2), "roads": _squares(["X"], row=3)})
        monkeypatch.setenv("RISKMAP_BUSY_TIMEOUT", "0.2")
        with pytest.raises(StoreBusy, match=r"waited 0\.2 s"):
            PostGISStore(pg_url).append("buildings", _squares(["N1"], row=1))
        # other layers are not blocked by this layer's writer
        assert PostGISStore(pg_url, busy_timeout=0.3).append(
            "hydrants", _squares(["H0"], row=4)) == 1
    finally:
        holder.close()
    assert store.read("buildings")["id"].tolist() == ["A0", "A1"]
    assert sorted(i.name for i in store.layers()) == ["buildings", "hydrants"]
    assert store.version() != version  # the hydrants append moved it, nothing else did
    assert store.append("buildings", _squares(["N2"], row=1)) == 3


def test_cli_exits_75_when_the_layer_stays_locked(pg_url: str, tmp_path: Path) -> None:
    store = PostGISStore(pg_url)
    store.write({"buildings": _squares(["A0"], row=0)})
    path = tmp_path / "b.geojson"
    district.buildings(50, count=5).to_crs(4490).to_file(path, driver="GeoJSON")
    holder = _hold_layer_lock(pg_url, "buildings")
    try:
        r = subprocess.run([str(ROOT / ".venv" / "bin" / "riskmap"), "import", "--store",
                            pg_url, "buildings", str(path)], cwd=ROOT, capture_output=True,
                           text=True, env={**os.environ, "RISKMAP_BUSY_TIMEOUT": "0.5"},
                           timeout=120)
    finally:
        holder.close()
    assert r.returncode == STORE_BUSY_EXIT, r.stderr[-2000:]
    assert "busy" in r.stderr and "retry" in r.stderr
    assert store.read("buildings")["id"].tolist() == ["A0"]


def test_append_clash_lists_every_stored_id_and_writes_nothing(pg_url: str) -> None:
    store = PostGISStore(pg_url)
    store.write({"buildings": _squares(["A0", "A1", "A2"], row=0)})
    version = store.version()
    with pytest.raises(LayerValidationError) as info:
        store.append("buildings", _squares(["N0", "A2", "N1", "A0"], row=1))
    assert [(p.feature, p.field, p.expected, p.note) for p in info.value.problems] == [
        ("A2", "id", "an id not already in layer 'buildings'", "use --replace to replace the layer"),
        ("A0", "id", "an id not already in layer 'buildings'", "use --replace to replace the layer"),
    ]
    assert store.version() == version
    assert store.read("buildings")["id"].tolist() == ["A0", "A1", "A2"]


@pytest.fixture
def pg_server(pg_url: str, tmp_path: Path) -> Iterator[str]:
    """A uvicorn server process (one worker) on the PostGIS store ``pg_url``."""
    import socket

    from tests.api.conftest import API_KEYS

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log_path = tmp_path / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - a pipe nobody reads would block the server
    env = {**os.environ, "RISKMAP_STORE": pg_url, "RISKMAP_API_KEYS": API_KEYS}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"server did not start: {log_path.read_text(errors='replace')}")
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
def test_eight_api_imports_lose_nothing(pg_url: str, pg_server: str, files: list[Path]) -> None:
    """8 concurrent ``POST /layers/buildings/import`` on a PostGIS-backed server: each is
    200 (stored) or 503 with Retry-After (nothing of it stored)."""
    import httpx

    from tests.api.conftest import auth

    start = threading.Barrier(N_FILES)
    answers: list[httpx.Response | BaseException] = [RuntimeError("not run")] * N_FILES

    def post(i: int) -> None:
        body = files[i].read_bytes()
        try:
            start.wait()
            answers[i] = httpx.post(f"{pg_server}/layers/buildings/import?format=geojson",
                                    content=body, headers=auth("admin"), timeout=180)
        except BaseException as exc:  # pragma: no cover - reported below
            answers[i] = exc

    threads = [threading.Thread(target=post, args=(i,)) for i in range(N_FILES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = []
    for i, a in enumerate(answers):
        assert isinstance(a, httpx.Response), a
        assert a.status_code in (200, 503), a.text[-1000:]
        if a.status_code == 503:
            assert "Retry-After" in a.headers
        else:
            assert a.json()["imported"] == PER_FILE
        results.append(subprocess.CompletedProcess([str(i)], 0 if a.status_code == 200
                                                   else STORE_BUSY_EXIT, "", a.text))
    _check_all_or_refused(pg_url, results)
    totals = sorted(a.json()["total"] for a in answers
                    if isinstance(a, httpx.Response) and a.status_code == 200)
    assert totals == [PER_FILE * (k + 1) for k in range(len(totals))]


def test_readers_do_not_wait_for_an_append(pg_url: str) -> None:
    """While an append holds its locks (writer lock + SHARE ROW EXCLUSIVE on the table),
    pages, features and whole-layer reads are served at once, from the last commit."""
    import psycopg

    from api.features import ItemsQuery, source_for

    store = PostGISStore(pg_url)
    store.write({"buildings": _squares([f"A{j}" for j in range(30)], row=0)})
    conninfo, schema = split_url(pg_url)
    holder = _hold_layer_lock(pg_url, "buildings")
    try:
        holder.execute(f'LOCK TABLE "{schema}".buildings IN SHARE ROW EXCLUSIVE MODE')
        holder.execute(f'INSERT INTO "{schema}".buildings (id) VALUES (%s)', ("uncommitted",))
        with psycopg.connect(conninfo) as probe:
            probe.execute("SET lock_timeout = '2s'")  # fail rather than hang if it would wait
            probe.execute(f'SELECT count(*) FROM "{schema}".buildings').fetchone()
        src = source_for(PostGISStore(pg_url), "buildings")
        got: dict[str, Any] = {}

        def read() -> None:
            got["page"] = src.page(ItemsQuery(limit=5, offset=25))
            got["feature"] = src.feature("A3")
            got["whole"] = PostGISStore(pg_url).read("buildings")

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout=5)
        assert not reader.is_alive(), "a reader waited for the append's locks"
    finally:
        holder.close()
    page, feature, whole = got["page"], got["feature"], got["whole"]
    assert page.ids == ["A25", "A26", "A27", "A28", "A29"] and page.matched == 30
    assert feature is not None and feature.ids == ["A3"]
    assert len(whole) == 30


def test_api_answers_503_with_retry_after_when_the_layer_stays_locked(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings
    from tests.api.conftest import API_KEYS, auth

    PostGISStore(pg_url).write({"fire_stations": gpd.GeoDataFrame(
        {"id": ["F-1"], "kind": ["station"]}, geometry=shapely.points([LON0], [LAT0]),
        crs=4490)})
    monkeypatch.setenv("RISKMAP_BUSY_TIMEOUT", "0.3")
    body = ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
            '{"id": "F-2", "kind": "micro_station"}, "geometry": {"type": "Point", '
            f'"coordinates": [{LON0}, {LAT0}]}}}}]}}').encode()
    holder = _hold_layer_lock(pg_url, "fire_stations")
    try:
        with TestClient(create_app(Settings(store=pg_url, api_keys=API_KEYS))) as c:
            r = c.post("/layers/fire_stations/import?format=geojson", content=body,
                       headers=auth("admin"))
    finally:
        holder.close()
    assert r.status_code == 503, r.text
    assert "Retry-After" in r.headers and "busy" in r.text
    assert PostGISStore(pg_url).read("fire_stations")["id"].tolist() == ["F-1"]


def test_a_replace_waiting_for_readers_does_not_hold_up_other_layers(pg_url: str) -> None:
    """A replace of one layer waits for a long read of it; an append to another layer meanwhile
    neither waits for it nor times out (the store-wide version row is taken last)."""
    import psycopg

    store = PostGISStore(pg_url)
    store.write({"buildings": _squares(["A0"], row=0), "hydrants": _squares(["H0"], row=1)})
    conninfo, schema = split_url(pg_url)
    long_read = psycopg.connect(conninfo)
    long_read.execute(f'LOCK TABLE "{schema}".buildings IN ACCESS SHARE MODE')
    errors: list[BaseException] = []

    def replace() -> None:
        try:
            PostGISStore(pg_url, busy_timeout=20).write({"buildings": _squares(["R0"], row=2)})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writer = threading.Thread(target=replace)
    try:
        writer.start()
        time.sleep(0.5)  # the replace is now waiting to drop the table
        assert writer.is_alive()
        assert PostGISStore(pg_url, busy_timeout=0.5).append(
            "hydrants", _squares(["H1"], row=3)) == 2
    finally:
        long_read.close()
        writer.join(timeout=30)
    assert errors == []
    assert store.read("buildings")["id"].tolist() == ["R0"]
    assert store.read("hydrants")["id"].tolist() == ["H0", "H1"]
