"""Registry concurrency through a live server (uvicorn subprocess on a copy of a small demo
store): two editors racing with the same version → one 200, one 409; 20 readers paging items
and the registry during a registry sync and during 20 PATCH/s → 0 errors, 0 dropped
connections, and every registry page from one snapshot (sync is one transaction)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import API_KEYS, KEYS

pytestmark = pytest.mark.server

PLANNER = {"Authorization": f"Bearer {KEYS['planner']}"}
ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}
READERS = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``(url, store path)`` of a server on its own small demo store (scale 0.2)."""
    from layers.demo import write_demo

    store = tmp_path_factory.mktemp("registry-live") / "demo.gpkg"
    write_demo(store, seed=42, scale=0.2)
    port = _free_port()
    log_path = store.with_suffix(".log")
    log = open(log_path, "wb")  # noqa: SIM115 - a pipe nobody reads would block the server
    env = {**os.environ, "RISKMAP_STORE": str(store), "RISKMAP_API_KEYS": API_KEYS,
           "RISKMAP_MAX_LIMIT": "1000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=Path(__file__).resolve().parents[2], stdout=log, stderr=subprocess.STDOUT)
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
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


class _Readers:
    """``READERS`` threads, each with its own connection, paging buildings and the registry
    until stopped; every status other than 200 and every transport error is kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.errors: list[str] = []
        self.dropped: list[str] = []
        self.hazard_totals: set[int] = set()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(READERS)]

    def __enter__(self) -> _Readers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)

    def _run(self, i: int) -> None:
        import httpx

        with httpx.Client(base_url=self.url, headers=PLANNER, timeout=60) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                if (i + n) % 2:
                    path = f"/collections/buildings/items?limit=20&offset={(i * 97 + n * 20) % 5000}"
                else:
                    path = f"/registry/hazards?limit=50&offset={(i * 13 + n * 50) % 1500}"
                try:
                    r = client.get(path)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.dropped.append(f"{path}: {type(exc).__name__}: {exc}")
                    continue
                self._check(path, r)

    def _check(self, path: str, r: Any) -> None:
        with self.lock:
            if r.status_code != 200:
                self.errors.append(f"{path}: {r.status_code} {r.text[:300]}")
                return
            body = r.json()
            if path.startswith("/collections"):
                if len(body["features"]) != body["numberReturned"] or not body["features"]:
                    self.errors.append(f"{path}: {body['numberReturned']} returned, "
                                       f"{len(body['features'])} features")
                    return
            else:
                self.hazard_totals.add(body["numberMatched"])
            self.ok += 1


def _patch(client: Any, hid: str, fields: dict[str, Any]) -> Any:
    etag = client.get(f"/registry/hazards/{hid}").headers["ETag"]
    return client.patch(f"/registry/hazards/{hid}", headers={"If-Match": etag}, json=fields)


@pytest.mark.slow
def test_readers_never_fail_during_sync_and_edits(live: tuple[str, Path]) -> None:
    import httpx

    url, log_path = live
    client = httpx.Client(base_url=url, headers=PLANNER, timeout=120)
    admin = httpx.Client(base_url=url, headers=ADMIN, timeout=120)
    assert client.get("/collections/buildings/items?limit=1").status_code == 200  # warm
    # 1. readers during a registry sync (analysis + one write transaction of ~1,500 hazards)
    with _Readers(url) as readers:
        time.sleep(0.5)
        r = admin.post("/registry/sync/fire_findings")
        time.sleep(0.5)
    assert r.status_code == 200, r.text
    n = r.json()["registered"]
    assert n > 500 and r.json()["still_detected"] == 0
    assert readers.errors == [] and readers.dropped == [], (
        readers.errors[:5], readers.dropped[:5], log_path.read_text(errors="replace")[-2000:])
    assert readers.ok >= 40
    assert readers.hazard_totals <= {0, n}  # each page saw the registry before or after
    # 2. readers during an editor saving every 0.05 s (If-Match: the ETag of its last save)
    #    and two re-syncs
    hid = client.get("/registry/hazards?limit=1").json()["hazards"][0]["hazard_id"]
    etag = client.get(f"/registry/hazards/{hid}").headers["ETag"]
    statuses: list[int] = []
    saves = 20
    with _Readers(url) as readers:
        t_start = time.monotonic()
        for k in range(saves):
            t0 = time.monotonic()
            r = admin.patch(f"/registry/hazards/{hid}", headers={"If-Match": etag},
                             json={"notes": f"save {k}"})
            statuses.append(r.status_code)
            etag = r.headers.get("ETag", etag)
            if k % 10 == 5:
                statuses.append(admin.post("/registry/sync/fire_findings").status_code)
            time.sleep(max(0.0, 0.05 - (time.monotonic() - t0)))
        elapsed = time.monotonic() - t_start
    assert readers.errors == [] and readers.dropped == [], (
        readers.errors[:5], readers.dropped[:5], log_path.read_text(errors="replace")[-2000:])
    assert readers.ok >= 40 and readers.hazard_totals == {n}
    assert statuses == [200] * (saves + 2), statuses
    print(f"\n{saves} saves + 2 syncs in {elapsed:.1f} s beside {READERS} readers "
          f"({readers.ok} reads)")
    final = client.get(f"/registry/hazards/{hid}")
    assert final.json()["notes"] == f"save {saves - 1}"
    assert final.headers["ETag"] == etag == f'"{1 + saves}"'  # re-syncs leave its version
    audit = client.get(f"/registry/audit?record_id={hid}&limit=1000").json()
    assert [e["action"] for e in audit["entries"]] == ["register"] + ["update"] * saves


# One editor process: connect, wait for the common start time, PATCH, print the answer.
_EDITOR = """
import json, sys, time, httpx
url, hid, etag, key, who, start = sys.argv[1:7]
with httpx.Client(base_url=url, timeout=60) as c:
    c.get("/conformance")
    time.sleep(max(0.0, float(start) - time.time()))
    r = c.patch(f"/registry/hazards/{hid}", json={"department": who},
                headers={"Authorization": f"Bearer {key}", "If-Match": etag})
print(json.dumps([who, r.status_code, r.json()]))
"""


def test_two_editor_processes_same_version_one_wins(live: tuple[str, Path]) -> None:
    import httpx

    url, _ = live
    client = httpx.Client(base_url=url, headers=PLANNER, timeout=120)
    if client.get("/registry/hazards?limit=1").json()["numberMatched"] == 0:
        r = httpx.post(f"{url}/registry/sync/pipeline_findings", headers=ADMIN, timeout=120)
        assert r.status_code == 200, r.text
    hids = [h["hazard_id"] for h in client.get("/registry/hazards?limit=3&offset=5").json()[
        "hazards"]]
    for hid in hids:
        before = client.get(f"/registry/hazards/{hid}")
        version, owner = before.json()["version"], before.json()["owner_role"]
        start = time.time() + 1.5
        procs = [subprocess.Popen([sys.executable, "-c", _EDITOR, url, hid,
                                   before.headers["ETag"], KEYS[who], who, str(start)],
                                  stdout=subprocess.PIPE, text=True)
                 for who in (owner, "admin")]
        results = {}
        for p in procs:
            out, _ = p.communicate(timeout=60)
            assert p.returncode == 0
            who, status, body = json.loads(out)
            results[who] = (status, body)
        assert sorted(s for s, _ in results.values()) == [200, 409], results
        winner = next(w for w, (s, _) in results.items() if s == 200)
        loser = next(w for w, (s, _) in results.items() if s == 409)
        conflict = results[loser][1]
        assert conflict["code"] == "Conflict"
        assert (f"now version {version + 1}, you sent {version}"
                in conflict["description"])
        assert conflict["current"] == results[winner][1]
        assert conflict["current"]["department"] == winner
        after = client.get(f"/registry/hazards/{hid}")
        assert after.json()["department"] == winner
        assert after.headers["ETag"] == f'"{version + 1}"'
        audit = client.get(f"/registry/audit?record_id={hid}").json()["entries"]
        assert [e["action"] for e in audit].count("update") == 1
        assert audit[-1]["who"] == f"{winner}-user"


# One importer process: wait for the common start time, POST its workbook, print the answer.
_IMPORTER = """
import json, sys, time, httpx
url, path, key, start = sys.argv[1:5]
data = open(path, "rb").read()
with httpx.Client(base_url=url, timeout=120) as c:
    c.get("/conformance")
    time.sleep(max(0.0, float(start) - time.time()))
    r = c.post("/registry/import.xlsx", content=data, headers={
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"})
print(json.dumps([r.status_code, r.text[:500]]))
"""


@pytest.mark.slow
def test_workbook_importers_racing_lose_nothing(live: tuple[str, Path], tmp_path: Path) -> None:
    """Three processes importing edited workbooks through the API and one `riskmap registry
    import` writing the store directly, at once, each on its own ten hazards, while readers page
    the registry and the buildings: every import lands, no reader fails (issue 15)."""
    import io

    import httpx
    from openpyxl import load_workbook

    from layers.registry_xlsx import HAZARD_SHEET, MEASURE_SHEET

    url, log_path = live
    admin = httpx.Client(base_url=url, headers=ADMIN, timeout=120)
    if admin.get("/registry/hazards?limit=1").json()["numberMatched"] == 0:
        assert admin.post("/registry/sync/fire_findings").status_code == 200
    exported = admin.get("/registry/export.xlsx").content
    books: list[tuple[Path, list[str]]] = []
    for g in range(4):
        wb = load_workbook(io.BytesIO(exported))
        ws, ms = wb[HAZARD_SHEET], wb[MEASURE_SHEET]
        head = [c.value for c in ws[1]]
        ids_col, dep_col = head.index("隐患编号") + 1, head.index("责任单位") + 1
        keep = range(2 + 10 * g, 12 + 10 * g)
        ids = [str(ws.cell(r, ids_col).value) for r in keep]
        for r in keep:
            ws.cell(r, dep_col).value = f"race-dept-{g}"
        ws.delete_rows(12 + 10 * g, ws.max_row)  # only this importer's rows stay
        if g:
            ws.delete_rows(2, 10 * g)
        ms.delete_rows(2, ms.max_row)
        path = tmp_path / f"book-{g}.xlsx"
        wb.save(path)
        books.append((path, ids))
    start = time.time() + 3.0
    with _Readers(url) as readers:
        procs = [subprocess.Popen([sys.executable, "-c", _IMPORTER, url, str(path),
                                   KEYS["admin"], str(start)],
                                  stdout=subprocess.PIPE, text=True) for path, _ in books[:3]]
        time.sleep(max(0.0, start - time.time()))
        cli = subprocess.run([sys.executable, "-m", "api.cli", "registry", "import", "--store",
                              str(log_path.with_suffix(".gpkg")), str(books[3][0]),
                              "--who", "cli-importer"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[2], timeout=300)
        answers = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert [a[0] for a in answers] == [200, 200, 200], answers
    assert [json.loads(a[1])["hazards_updated"] for a in answers] == [10, 10, 10], answers
    assert "10 hazard(s) updated" in cli.stdout, cli.stdout
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert readers.errors == [] and readers.dropped == [], (
        readers.errors[:5], readers.dropped[:5], log_path.read_text(errors="replace")[-2000:])
    for g, (_path, ids) in enumerate(books):
        for hid in ids:
            rec = admin.get(f"/registry/hazards/{hid}").json()
            assert rec["department"] == f"race-dept-{g}", (g, hid, rec["department"])
