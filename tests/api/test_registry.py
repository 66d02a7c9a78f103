"""Hazard registry: roles, workflow transitions, audit, re-analysis keeps history, stats."""

from __future__ import annotations

import sqlite3

import pytest

from layers.registry import Actor, IllegalTransition, Registry
from tests.api.conftest import auth, make_client, small_layers

HID = "occupancy:P-01:B-00"


@pytest.fixture()
def rc(store_copy):
    with make_client(store_copy.path) as c:
        yield c, store_copy


def _register(c, role="planner", **extra):
    return c.post("/registry/hazards", headers=auth(role),
                  json={"finding_id": HID, "analysis": "pipeline_findings", **extra})


def _etag(c, hid=HID):
    r = c.get(f"/registry/hazards/{hid}", headers=auth("admin"))
    assert r.status_code == 200, r.text
    return r.headers["ETag"]


def _move(c, to, role="planner", hid=HID, **body):
    """A transition sent with the hazard's current version (If-Match)."""
    return c.post(f"/registry/hazards/{hid}/transition",
                  headers={**auth(role), "If-Match": _etag(c, hid)}, json={"to": to, **body})


def _patch(c, fields, role="planner", hid=HID):
    """A PATCH sent with the hazard's current version (If-Match)."""
    return c.patch(f"/registry/hazards/{hid}", headers={**auth(role), "If-Match": _etag(c, hid)},
                   json=fields)


def test_access(rc):
    c, _ = rc
    assert c.get("/registry/hazards").status_code == 401
    assert c.get("/registry/hazards", headers=auth("public")).status_code == 403
    assert c.get("/registry/stats").status_code == 200
    assert _register(c, "police").status_code == 403
    assert _register(c, "fire").status_code == 403
    assert c.post("/registry/hazards", json={"finding_id": HID,
                                             "analysis": "pipeline_findings"}).status_code == 401
    assert c.get("/registry/audit", headers=auth("police")).status_code == 403


def test_register_and_workflow(rc):
    c, _ = rc
    r = _register(c, department="区经济发展局", deadline="2022-12-31")
    assert r.status_code == 201, r.text
    h = r.json()
    assert h["hazard_id"] == HID and h["status"] == "identified"
    assert h["detection"] == "detected" and h["owner_role"] == "planner"
    assert h["kind"] == "occupancy" and h["feature_id"] == "B-00" and h["other_id"] == "P-01"
    assert h["department"] == "区经济发展局" and h["deadline"] == "2022-12-31"
    assert h["lon"] == pytest.approx(117.25, abs=1e-3)
    assert _register(c).json()["created_at"] == h["created_at"]  # idempotent

    def move(to, role="planner"):
        return _move(c, to, role, note=f"to {to}")

    assert move("rectified").status_code == 409
    assert move("closed").status_code == 409
    assert move("rectifying", "police").status_code == 404  # police cannot see it: as missing
    assert move("rectifying").json()["status"] == "rectifying"
    assert move("rectified").json()["rectified_at"] is not None
    assert move("rectifying").json()["rectified_at"] is None  # verification failed
    assert move("rectified").status_code == 200
    assert move("verified", "admin").status_code == 200
    r = move("closed")
    assert r.json()["status"] == "closed" and r.json()["closed_at"] is not None
    r = move("rectifying")
    assert r.status_code == 409 and "closed" in r.json()["description"]
    assert _move(c, "done").status_code == 400

    audit = c.get(f"/registry/audit?record_id={HID}", headers=auth("planner")).json()
    actions = [e["action"] for e in audit["entries"]]
    assert actions == ["register", "status:identified->rectifying",
                       "status:rectifying->rectified", "status:rectified->rectifying",
                       "status:rectifying->rectified", "status:rectified->verified",
                       "status:verified->closed"]
    e = audit["entries"][1]
    assert e["who"] == "planner-user" and e["role"] == "planner"
    assert e["before"]["status"] == "identified" and e["after"]["status"] == "rectifying"
    assert audit["entries"][5]["who"] == "admin-user"


def test_update_fields(rc):
    c, _ = rc
    _register(c)
    r = _patch(c, {"measures": "relocate", "attachments": [
        {"href": "doc://2021-17", "name": "rectification notice"}]})
    assert r.status_code == 200
    assert r.json()["attachments"] == [{"href": "doc://2021-17",
                                        "name": "rectification notice"}]
    assert _patch(c, {"status": "closed"}).status_code == 400
    assert _patch(c, {"deadline": "soon"}).status_code == 400
    assert _patch(c, {"notes": "x"}, role="fire").status_code == 404  # hidden = missing
    assert c.patch("/registry/hazards/nope", headers={**auth("planner"), "If-Match": '"1"'},
                   json={"notes": "x"}).status_code == 404
    a = c.get(f"/registry/audit?record_id={HID}", headers=auth("admin")).json()["entries"]
    assert [x["action"] for x in a] == ["register", "update"]
    assert a[1]["before"]["measures"] is None and a[1]["after"]["measures"] == "relocate"


def test_register_unknown_finding(rc):
    c, _ = rc
    r = c.post("/registry/hazards", headers=auth("planner"),
               json={"finding_id": "occupancy:P-01:B-99", "analysis": "pipeline_findings"})
    assert r.status_code == 404
    r = c.post("/registry/hazards", headers=auth("admin"),
               json={"finding_id": HID, "analysis": "nope"})
    assert r.status_code == 404
    r = c.post("/registry/hazards", headers=auth("planner"),
               json={"finding_id": HID, "analysis": "pipeline_findings", "color": "red"})
    assert r.status_code == 400


def test_reanalysis_keeps_history(rc):
    c, store = rc
    n = c.get("/collections/pipeline_findings/items", headers=auth("planner")).json()[
        "numberMatched"]
    assert n >= 4
    r = c.post("/registry/sync/pipeline_findings", headers=auth("planner"))
    assert r.status_code == 200
    assert r.json() == {"analysis": "pipeline_findings", "registered": n, "still_detected": 0,
                        "redetected": 0, "no_longer_detected": 0}
    gone = "occupancy:P-01:B-01"
    assert _move(c, "rectifying", hid=gone).status_code == 200
    # B-01 is demolished: the layer is rewritten, the analysis re-runs on the new version.
    blds = small_layers()["buildings"]
    store.write({"buildings": blds[blds["id"] != "B-01"]})
    lost = c.get("/collections/pipeline_findings/items", headers=auth("planner")).json()[
        "numberMatched"]
    assert lost < n
    r = c.post("/registry/sync/pipeline_findings", headers=auth("planner")).json()
    assert r["no_longer_detected"] == n - lost and r["registered"] == 0
    assert r["still_detected"] == lost
    h = c.get(f"/registry/hazards/{gone}", headers=auth("planner")).json()
    assert h["detection"] == "no_longer_detected" and h["status"] == "rectifying"
    total = c.get("/registry/hazards?limit=1000", headers=auth("planner")).json()
    assert total["numberMatched"] == n  # never deleted
    acts = [e["action"] for e in c.get(f"/registry/audit?record_id={gone}",
                                       headers=auth("planner")).json()["entries"]]
    assert acts == ["register", "status:identified->rectifying", "no_longer_detected"]
    # rebuilt: found again
    store.write({"buildings": blds})
    r = c.post("/registry/sync/pipeline_findings", headers=auth("admin")).json()
    assert r["redetected"] == n - lost
    assert c.get(f"/registry/hazards/{gone}", headers=auth("planner")).json()[
        "detection"] == "detected"


def test_registry_survives_layer_writes_and_audit_is_append_only(store_copy):
    reg = Registry(store_copy.path)
    actor = Actor("tester", "admin")
    reg.register({"finding_id": "x:1", "kind": "setback"}, analysis="a", owner_role="planner",
                 actor=actor)
    store_copy.write({"hydrants": small_layers()["fire_stations"][["id", "geometry"]]})
    assert reg.hazard("x:1")["kind"] == "setback"
    assert {i.name for i in store_copy.layers()} >= {"hydrants", "buildings"}
    assert "registry_hazards" not in {i.name for i in store_copy.layers()}
    con = sqlite3.connect(store_copy.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM registry_audit")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE registry_audit SET who = 'x'")
    con.close()
    with pytest.raises(IllegalTransition):
        reg.transition("x:1", "closed", actor=actor)


def test_concurrent_writes_not_lost(store_copy):
    import threading

    import geopandas as gpd

    reg = Registry(store_copy.path)
    actor = Actor("t", "admin")
    stations = small_layers()["fire_stations"]

    def regs(k):
        for i in range(10):
            reg.register({"finding_id": f"k{k}:{i}", "kind": "setback"}, analysis="a",
                         owner_role="planner", actor=actor)

    def writes():
        for _ in range(5):
            store_copy.write({"fire_stations": gpd.GeoDataFrame(stations, crs=4490)})

    ts = [threading.Thread(target=regs, args=(k,)) for k in range(2)] + [
        threading.Thread(target=writes)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    _rows, total = reg.hazards(limit=100)
    assert total == 20
    assert reg.audit(limit=1000)[1] == 20


def test_measures(rc):
    c, _ = rc
    r = c.put("/registry/measures/M-1", headers=auth("fire"),
              json={"title": "fire-lane marking rules", "status": "planned",
                    "deadline": "2021-06-30"})
    assert r.status_code == 200 and r.json()["owner_role"] == "fire"
    r = c.put("/registry/measures/M-1", headers=auth("police"), json={"status": "in_effect"})
    assert r.status_code == 409 and "fire" not in r.text  # the id is taken; not whose
    r = c.put("/registry/measures/M-1", headers={**auth("fire"), "If-Match": '"1"'},
              json={"status": "in_effect"})
    assert r.json()["status"] == "in_effect" and r.json()["title"] == "fire-lane marking rules"
    assert r.headers["ETag"] == '"2"' and r.json()["version"] == 2
    assert c.put("/registry/measures/M-2", headers=auth("fire"),
                 json={"status": "planned"}).status_code == 400  # needs a title
    assert [m["measure_id"] for m in c.get("/registry/measures",
                                           headers=auth("fire")).json()["measures"]] == ["M-1"]
    assert c.get("/registry/measures", headers=auth("police")).json()["measures"] == []


def test_stats(rc):
    c, _ = rc
    c.post("/registry/sync/pipeline_findings", headers=auth("planner"))
    for to in ("rectifying", "rectified"):
        assert _move(c, to).status_code == 200
    s = c.get("/registry/stats").json()
    occ = s["by_kind"]["occupancy"]
    assert occ["rectified"] == 1 and occ["target"] == 1.0 and occ["deadline"] == "2022-12-31"
    assert occ["rate"] == round(1 / occ["total"], 4) and occ["met"] is False
    mon = s["monitoring"]
    assert mon["people_dense_hca"] == 1 and mon["monitored"] == 0 and mon["coverage"] == 0.0
    assert [(t["year"], t["target"]) for t in mon["targets"]] == [
        (2020, 0.3), (2021, 0.7), (2022, 1.0)]
    assert mon["current_target"] == 1.0 and mon["met"] is False


def test_cli_sync_and_stats(store_copy, capsys):
    from api.cli import main

    assert main(["registry", "sync", "--store", str(store_copy.path), "pipeline_findings",
                 "--who", "cron"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pipeline_findings: registered ")
    reg = Registry(store_copy.path)
    rows, total = reg.hazards(limit=1000)
    assert total > 0 and all(r["detection"] == "detected" for r in rows)
    assert reg.audit(limit=1)[0][0]["who"] == "cron"
    assert main(["registry", "sync", "--store", str(store_copy.path), "nope"]) == 2
    capsys.readouterr()
    assert main(["registry", "stats", "--store", str(store_copy.path)]) == 0
    import json

    stats = json.loads(capsys.readouterr().out)
    assert stats["total"] == total and stats["by_kind"]["occupancy"]["rectified"] == 0
    assert stats["monitoring"]["people_dense_hca"] == 1


def test_etag_if_match_428_409(rc):
    """Optimistic concurrency: ETag = version; If-Match (or body version) required; a stale
    one gets 409 with the current record; the audit keeps exactly the one winning change."""
    c, _ = rc
    r = _register(c)
    assert r.status_code == 201 and r.headers["ETag"] == '"1"' and r.json()["version"] == 1
    r = c.get(f"/registry/hazards/{HID}", headers=auth("planner"))
    assert r.headers["ETag"] == '"1"' and r.json()["version"] == 1
    url = f"/registry/hazards/{HID}"
    # missing version → 428 saying how to get it
    r = c.patch(url, headers=auth("planner"), json={"notes": "x"})
    assert r.status_code == 428
    assert r.json()["code"] == "PreconditionRequired"
    assert f"If-Match with the ETag of GET {url}" in r.json()["description"]
    r = c.post(f"{url}/transition", headers=auth("planner"), json={"to": "rectifying"})
    assert r.status_code == 428
    # two editors both opened version 1: the first wins, the second gets 409 + current
    alice = c.patch(url, headers={**auth("planner"), "If-Match": '"1"'},
                    json={"department": "规划局"})
    assert alice.status_code == 200 and alice.headers["ETag"] == '"2"'
    assert alice.json()["department"] == "规划局" and alice.json()["version"] == 2
    bob = c.patch(url, headers={**auth("admin"), "If-Match": '"1"'},
                  json={"department": "应急局"})
    assert bob.status_code == 409 and bob.headers["ETag"] == '"2"'
    body = bob.json()
    assert body["code"] == "Conflict"
    assert "changed by someone else (now version 2, you sent 1)" in body["description"]
    assert body["current"] == alice.json()
    audit = c.get(f"/registry/audit?record_id={HID}", headers=auth("planner")).json()
    assert [e["action"] for e in audit["entries"]] == ["register", "update"]
    assert audit["entries"][1]["who"] == "planner-user"
    # the version in the body works too; a stale transition is refused before the workflow
    r = c.post(f"{url}/transition", headers=auth("planner"), json={"to": "closed",
                                                                     "version": 1})
    assert r.status_code == 409 and "now version 2, you sent 1" in r.json()["description"]
    r = c.post(f"{url}/transition", headers=auth("planner"), json={"to": "rectifying",
                                                                     "version": 2})
    assert r.status_code == 200 and r.headers["ETag"] == '"3"'
    r = c.patch(url, headers={**auth("planner"), "If-Match": "3"}, json={"version": 3,
                                                                        "notes": "n"})
    assert r.status_code == 200 and r.json()["version"] == 4
    # malformed / ambiguous versions are 400s naming the problem
    for value, msg in (("*", "If-Match: \\* does not protect"),
                       ('W/"4"', "expected the ETag of the record"),
                       ('"4", "5"', "expected the ETag of the record")):
        r = c.patch(url, headers={**auth("planner"), "If-Match": value}, json={"notes": "y"})
        assert r.status_code == 400, value
        import re

        assert re.search(msg, r.json()["description"]), r.json()
    r = c.patch(url, headers={**auth("planner"), "If-Match": '"4"'}, json={"version": 3})
    assert r.status_code == 400 and "If-Match says version 4 but the body says 3" in r.text
    # role and existence are checked before the version
    assert c.patch(url, headers=auth("fire"), json={"notes": "x"}).status_code == 404
    assert c.patch("/registry/hazards/nope", headers=auth("planner"),
                   json={"notes": "x"}).status_code == 404
    assert [h["version"] for h in c.get("/registry/hazards", headers=auth("planner")).json()[
        "hazards"]] == [4]


def test_measure_versions(rc):
    c, _ = rc
    r = c.put("/registry/measures/M-1", headers=auth("planner"), json={"title": "巡线"})
    assert r.status_code == 200 and r.headers["ETag"] == '"1"'
    r = c.get("/registry/measures/M-1", headers=auth("planner"))
    assert r.status_code == 200 and r.headers["ETag"] == '"1"' and r.json()["title"] == "巡线"
    assert c.get("/registry/measures/M-1", headers=auth("fire")).status_code == 404
    assert c.get("/registry/measures/M-9", headers=auth("planner")).status_code == 404
    r = c.put("/registry/measures/M-1", headers=auth("planner"), json={"status": "in_effect"})
    assert r.status_code == 428 and "GET /registry/measures/M-1" in r.json()["description"]
    r = c.put("/registry/measures/M-1", headers={**auth("planner"), "If-Match": '"1"'},
              json={"status": "in_effect"})
    assert r.status_code == 200 and r.headers["ETag"] == '"2"'
    r = c.put("/registry/measures/M-1", headers=auth("admin"), json={"version": 1,
                                                                   "status": "withdrawn"})
    assert r.status_code == 409 and r.json()["current"]["status"] == "in_effect"
    assert r.json()["current"]["version"] == 2
    # a version sent for a measure that does not exist yet
    r = c.put("/registry/measures/M-2", headers={**auth("planner"), "If-Match": '"3"'},
              json={"title": "t"})
    assert r.status_code == 409 and r.json()["current"] is None
    assert "does not exist" in r.json()["description"]
    assert [m["version"] for m in c.get("/registry/measures", headers=auth("planner")).json()[
        "measures"]] == [2]


def test_openapi_documents_versions(rc):
    c, _ = rc
    doc = c.get("/api", headers={"Accept": "application/json"}).json()
    for path, method in (("/registry/hazards/{hazard_id}", "patch"),
                         ("/registry/hazards/{hazard_id}/transition", "post"),
                         ("/registry/measures/{measure_id}", "put")):
        op = doc["paths"][path][method]
        assert {"409", "428"} <= set(op["responses"]), path
        assert "ETag" in op["responses"]["200"]["headers"]
        assert any(p["in"] == "header" and p["name"] == "If-Match" for p in op["parameters"])
    for path in ("/registry/hazards/{hazard_id}", "/registry/measures/{measure_id}"):
        assert "ETag" in doc["paths"][path]["get"]["responses"]["200"]["headers"]
    assert "version" in doc["components"]["schemas"]["Hazard"]["required"]
