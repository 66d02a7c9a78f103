"""The PostGIS hazard registry: same workflow as the GeoPackage one, and no lost update."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from postgis_support import postgis_url, scratch_schema
from shapely.geometry import Point

from layers.registry import Actor, IllegalTransition, Registry
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
    """Drop the fields that differ by nature (times, version, audit seq)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items()
                if k not in ("version", "created_at", "updated_at", "first_detected",
                             "last_detected", "rectified_at", "closed_at", "notes")}
    if isinstance(obj, list | tuple):
        return [_strip(v) for v in obj]
    return obj


def test_same_workflow_as_the_geopackage_registry(pg_registry: object, tmp_path: Path) -> None:
    path = tmp_path / "s.gpkg"
    store = GeoPackageStore(path)
    store.write({"hydrants": gpd.GeoDataFrame({"id": ["h"]}, geometry=[Point(117, 34)],
                                              crs=4490)})
    ref = _script(Registry(path, lock=store.lock))
    got = _script(pg_registry)
    assert _strip(got) == _strip(ref)
    assert got[0]["version"] == 1 and got[1]["version"] == 2 and got[3]["version"] == 4
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
            r = c.patch(f"/registry/hazards/{hid}", headers=key,
                        json={"measures": "relocate",
                              "attachments": [{"href": "doc://1", "name": "notice"}]})
            assert r.status_code == 200, r.text
            assert r.json()["attachments"] == [{"href": "doc://1", "name": "notice"}]
            r = c.post(f"/registry/hazards/{hid}/transition", headers=key, json={"to": "closed"})
            assert r.status_code == 409
            assert c.get("/registry/stats").json()["total"] == 1
        assert registry_for(pg).hazard(hid)["version"] == 2
