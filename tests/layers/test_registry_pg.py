"""The PostGIS hazard registry: same workflow and versions as the GeoPackage one, and no lost
update (threads, processes, the API with If-Match)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from postgis_support import postgis_url, scratch_schema
from shapely.geometry import Point

from layers.errors import StoreBusy
from layers.registry import Actor, EditConflict, IllegalTransition, Registry
from layers.store import GeoPackageStore

pytestmark = pytest.mark.server

ALICE = Actor("alice", "planner")
BOB = Actor("bob", "planner")


def _finding(i: int, kind: str = "occupancy") -> dict:
    return {"finding_id": f"{kind}:P{i}:B{i}", "kind": kind, "severity": "critical",
            "layer": "buildings", "feature_id": f"B{i}", "other_layer": "pipelines",
            "other_id": f"P{i}", "rule_id": "r", "rule_source": "GB", "station": "K0+010.0",
            "message_zh": "占压", "message_en": "occupies", "lon": 117.25, "lat": 34.8}


@pytest.fixture
def pg_registry() -> Iterator[object]:
    from layers.postgis import PostGISStore
    from layers.registry_pg import PgRegistry

    with scratch_schema(postgis_url()) as url:
        store = PostGISStore(url)
        store.init()
        yield PgRegistry(store)


def _script(reg: object) -> list:
    """The same sequence of changes on either registry; returns what it observed."""
    seen = [reg.register(_finding(1), analysis="pipelines", owner_role="planner", actor=ALICE)]
    reg.register(_finding(2, "setback"), analysis="pipelines", owner_role="planner",
                 actor=ALICE, fields={"department": "燃气办"})
    seen.append(reg.update("occupancy:P1:B1", {"deadline": "2022-06-30", "notes": "n",
                                               "attachments": ["https://x/a.pdf"]}, actor=BOB))
    for to in ("rectifying", "rectified"):
        seen.append(reg.transition("occupancy:P1:B1", to, actor=BOB, note=f"to {to}"))
    with pytest.raises(IllegalTransition, match="cannot become closed"):
        reg.transition("occupancy:P1:B1", "closed", actor=BOB)
    seen.append(reg.sync("pipelines", [_finding(1), _finding(3)], owner_role="planner",
                         actor=ALICE))
    seen.append(reg.put_measure("M1", {"title": "巡线", "hazard_ids": ["occupancy:P1:B1"]},
                                owner_role="planner", actor=ALICE))
    seen.append(reg.hazards(where={"detection": "detected"}))
    seen.append(reg.audit()[1])
    seen.append(reg.rectification_stats())
    return seen


def _strip(obj: object) -> object:
    """Drop the fields that differ by nature (times, audit seq)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items()
                if k not in ("created_at", "updated_at", "first_detected",
                             "last_detected", "rectified_at", "closed_at", "notes")}
    if isinstance(obj, list | tuple):
        return [_strip(v) for v in obj]
    return obj


def test_same_workflow_as_the_geopackage_registry(pg_registry: object, tmp_path: Path) -> None:
    path = tmp_path / "s.gpkg"
    store = GeoPackageStore(path)
    store.write({"hydrants": gpd.GeoDataFrame({"id": ["h"]}, geometry=[Point(117, 34)],
                                              crs=4490)})
    ref = _script(Registry(path))
    got = _script(pg_registry)
    assert _strip(got) == _strip(ref)  # versions included: both registries count alike
    assert got[0]["version"] == 1 and got[1]["version"] == 2 and got[3]["version"] == 4
    assert [h["version"] for h in got[-3][0]] == [4, 1]  # still detected: not bumped
    assert got[-2] == 8  # 3 registers, update, 2 transitions, no_longer_detected, measure
    # ... and the audit log is append-only
    import psycopg

    with pg_registry.store.connect() as conn, pytest.raises(psycopg.Error, match="append-only"):
        conn.execute("UPDATE registry_audit SET who = 'mallory'")


def test_two_editors_one_hazard_exactly_one_wins(pg_registry: object) -> None:
    from layers.registry_pg import EditConflict

    reg = pg_registry
    reg.register(_finding(1), analysis="pipelines", owner_role="planner", actor=ALICE)
    seen = reg.hazard("occupancy:P1:B1")["version"]  # both editors opened version 1
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def edit(actor: Actor, department: str) -> None:
        barrier.wait()
        try:
            outcome[actor.who] = reg.update("occupancy:P1:B1", {"department": department},
                                            actor=actor, expected_version=seen)
        except EditConflict as exc:
            outcome[actor.who] = exc

    threads = [threading.Thread(target=edit, args=(a, d))
               for a, d in ((ALICE, "规划局"), (BOB, "应急局"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conflicts = [w for w, o in outcome.items() if isinstance(o, EditConflict)]
    winners = [w for w, o in outcome.items() if isinstance(o, dict)]
    assert len(conflicts) == 1 and len(winners) == 1
    assert "changed by someone else" in str(outcome[conflicts[0]])
    final = reg.hazard("occupancy:P1:B1")
    assert final["department"] == {"alice": "规划局", "bob": "应急局"}[winners[0]]
    assert final["version"] == 2
    rows, _ = reg.audit(record_id="occupancy:P1:B1")
    assert [r["action"] for r in rows] == ["register", "update"]
    assert rows[1]["who"] == winners[0]


def test_twenty_concurrent_editors_lose_nothing(pg_registry: object) -> None:
    """Read-modify-write with expected_version and retry on conflict: 20 increments land."""
    from layers.registry_pg import EditConflict

    reg = pg_registry
    reg.register(_finding(1), analysis="pipelines", owner_role="planner", actor=ALICE)
    reg.update("occupancy:P1:B1", {"measures": "0"}, actor=ALICE)
    conflicts = []

    def bump(i: int) -> None:
        while True:
            rec = reg.hazard("occupancy:P1:B1")
            try:
                reg.update("occupancy:P1:B1", {"measures": str(int(rec["measures"]) + 1)},
                           actor=Actor(f"e{i}", "planner"), expected_version=rec["version"])
                return
            except EditConflict:
                conflicts.append(i)

    threads = [threading.Thread(target=bump, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = reg.hazard("occupancy:P1:B1")
    assert final["measures"] == "20" and final["version"] == 22
    assert reg.audit(record_id="occupancy:P1:B1")[1] == 22


def _race(url: str, who: str, department: str, barrier: object, out: object) -> None:
    from layers.postgis import PostGISStore
    from layers.registry_pg import PgRegistry

    reg = PgRegistry(PostGISStore(url))
    barrier.wait()  # type: ignore[attr-defined]
    try:
        reg.update("occupancy:P1:B1", {"department": department},
                   actor=Actor(who, "planner"), expected_version=1)
        out.put((who, "ok"))  # type: ignore[attr-defined]
    except EditConflict as exc:
        out.put((who, f"conflict:{exc.current['version'] if exc.current else None}"))  # type: ignore[attr-defined]


def test_two_processes_same_version_exactly_one_wins(pg_registry: object) -> None:
    reg = pg_registry
    url = reg.store.url
    reg.register(_finding(1), analysis="pipelines", owner_role="planner", actor=ALICE)
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(url, who, dep, barrier, out))
             for who, dep in (("alice", "规划局"), ("bob", "应急局"))]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(results.values()) == ["conflict:2", "ok"]
    winner = next(w for w, r in results.items() if r == "ok")
    final = reg.hazard("occupancy:P1:B1")
    assert final["version"] == 2
    assert final["department"] == {"alice": "规划局", "bob": "应急局"}[winner]
    rows, total = reg.audit(record_id="occupancy:P1:B1")
    assert total == 2 and rows[1]["who"] == winner


def test_locked_row_waits_then_store_busy(pg_registry: object) -> None:
    from layers.registry_pg import PgRegistry

    reg = pg_registry
    reg.register(_finding(1), analysis="pipelines", owner_role="planner", actor=ALICE)
    quick = PgRegistry(reg.store, busy_timeout=0.3)
    with reg.store.connect() as conn:
        conn.execute("SELECT 1 FROM registry_hazards FOR UPDATE")
        t0 = time.monotonic()
        with pytest.raises(StoreBusy, match=r"busy: another writer held the registry for more "
                                            r"than 0\.3 s; nothing was changed, retry"):
            quick.update("occupancy:P1:B1", {"notes": "x"}, actor=BOB, expected_version=1)
        assert 0.25 < time.monotonic() - t0 < 5
        assert quick.hazard("occupancy:P1:B1")["notes"] is None  # readers do not wait
    assert reg.hazard("occupancy:P1:B1")["version"] == 1
    assert reg.audit(record_id="occupancy:P1:B1")[1] == 1


def test_measure_versions_match_the_geopackage_registry(pg_registry: object) -> None:
    reg = pg_registry
    assert reg.put_measure("M1", {"title": "t"}, owner_role="planner", actor=ALICE,
                           expected_version=0)["version"] == 1
    with pytest.raises(EditConflict, match=r"already exists \(now version 1, you sent 0\)"):
        reg.put_measure("M1", {"title": "u"}, owner_role="planner", actor=BOB,
                        expected_version=0)
    with pytest.raises(EditConflict, match="does not exist") as info:
        reg.put_measure("M2", {"title": "u"}, owner_role="planner", actor=BOB,
                        expected_version=3)
    assert info.value.current is None
    assert [m["measure_id"] for m in reg.measures()] == ["M1"]  # M2 rolled back
    with pytest.raises(EditConflict, match="now version 1, you sent 5") as info:
        reg.put_measure("M1", {"title": "u"}, owner_role="planner", actor=BOB,
                        expected_version=5)
    assert info.value.current is not None and info.value.current["title"] == "t"
    assert reg.put_measure("M1", {"title": "u"}, owner_role="planner", actor=BOB,
                           expected_version=1)["version"] == 2


def test_registry_api_on_postgis(demo_store: tuple) -> None:
    """The registry router, given the PostGIS registry, serves the same workflow."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.commands.pipelines import run_pipeline_check
    from api.routers.registry import registry_of
    from api.settings import Settings
    from layers.postgis import PostGISStore
    from layers.registry_pg import registry_for

    gpkg, _ = demo_store
    key = {"Authorization": "Bearer planner-key-0001"}
    with scratch_schema(postgis_url()) as url:
        pg = PostGISStore(url)
        pg.write({n: gpkg.read(n) for n in ("pipelines", "buildings", "sites", "hca")})
        hid = run_pipeline_check(pg).findings["finding_id"].iloc[0]
        app = create_app(Settings(store=url, api_keys="planner:li:planner-key-0001"), store=pg)
        app.dependency_overrides[registry_of] = lambda: registry_for(pg)
        with TestClient(app) as c:
            r = c.post("/registry/hazards", headers=key,
                       json={"finding_id": hid, "analysis": "pipeline_findings"})
            assert r.status_code == 201, r.text
            assert r.json()["status"] == "identified"
            assert r.headers["ETag"] == '"1"'
            r = c.patch(f"/registry/hazards/{hid}", headers=key, json={"measures": "x"})
            assert r.status_code == 428
            r = c.patch(f"/registry/hazards/{hid}", headers={**key, "If-Match": '"1"'},
                        json={"measures": "relocate",
                              "attachments": [{"href": "doc://1", "name": "notice"}]})
            assert r.status_code == 200, r.text
            assert r.json()["attachments"] == [{"href": "doc://1", "name": "notice"}]
            assert r.headers["ETag"] == '"2"'
            r = c.patch(f"/registry/hazards/{hid}", headers={**key, "If-Match": '"1"'},
                        json={"measures": "lost"})
            assert r.status_code == 409
            assert "now version 2, you sent 1" in r.json()["description"]
            assert r.json()["current"]["measures"] == "relocate"
            r = c.post(f"/registry/hazards/{hid}/transition", headers={**key, "If-Match": '"2"'},
                       json={"to": "closed"})
            assert r.status_code == 409 and "cannot become closed" in r.json()["description"]
            assert c.get(f"/registry/hazards/{hid}", headers=key).headers["ETag"] == '"2"'
            assert c.get("/registry/stats").json()["total"] == 1
        assert registry_for(pg).hazard(hid)["version"] == 2
        assert [r["action"] for r in registry_for(pg).audit(record_id=hid)[0]] == [
            "register", "update"]


def test_sync_is_one_transaction_with_versions(pg_registry: object) -> None:
    from layers.registry import RegistryError

    reg = pg_registry
    reg.sync("pipelines", [_finding(1)], owner_role="planner", actor=ALICE)
    with pytest.raises(RegistryError, match="finding 'x:3' needs a 'kind'"):
        reg.sync("pipelines", [_finding(2), {"finding_id": "x:3", "kind": ""}],
                 owner_role="planner", actor=ALICE)
    assert reg.hazards()[1] == 1 and reg.audit()[1] == 1  # hazard 1 not marked gone either
    assert reg.hazard("occupancy:P1:B1")["detection"] == "detected"
    assert reg.sync("pipelines", [], owner_role="planner", actor=ALICE) == {
        "registered": 0, "still_detected": 0, "redetected": 0, "no_longer_detected": 1}
    assert reg.sync("pipelines", [_finding(1), _finding(2)], owner_role="planner",
                    actor=ALICE) == {"registered": 1, "still_detected": 0, "redetected": 1,
                                     "no_longer_detected": 0}
    rec = reg.hazard("occupancy:P1:B1")
    assert rec["detection"] == "detected" and rec["version"] == 3
    rows, _ = reg.audit(record_id="occupancy:P1:B1")
    assert [r["action"] for r in rows] == ["register", "no_longer_detected", "redetected"]
    assert rows[2]["after"]["version"] == 3 and rows[2]["before"]["version"] == 2


@pytest.mark.parametrize("backend", ["gpkg", "pg"])
def test_closed_hazard_refuses_edits(backend, pg_registry, tmp_path):
    if backend == "pg":
        reg = pg_registry
    else:
        GeoPackageStore(tmp_path / "r.gpkg").write({"hydrants": gpd.GeoDataFrame(
            {"id": ["h"]}, geometry=[Point(117, 34)], crs=4490)})
        reg = Registry(tmp_path / "r.gpkg")
    reg.register(_finding(1), analysis="pipelines", owner_role="planner", actor=ALICE)
    for to in ("rectifying", "rectified", "verified", "closed"):
        reg.transition("occupancy:P1:B1", to, actor=BOB)
    with pytest.raises(IllegalTransition, match=r"hazard 'occupancy:P1:B1' is closed \(销号"):
        reg.update("occupancy:P1:B1", {"notes": "late"}, actor=BOB)
    rec = reg.hazard("occupancy:P1:B1")
    assert rec["notes"] is None and rec["status"] == "closed" and rec["version"] == 5
