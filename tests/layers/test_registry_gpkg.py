"""The GeoPackage hazard registry under concurrency: versions and compare-and-set, one writer
at a time through SQLite (busy timeout → StoreBusy), readers never blocked (WAL), stores from
before versions existed migrated in place, sync in one transaction."""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from layers.errors import StoreBusy, StoreError
from layers.registry import (
    _SCHEMA,
    Actor,
    EditConflict,
    RecordNotFound,
    Registry,
    RegistryError,
    resolve_busy_timeout,
)

ALICE = Actor("alice", "planner")
BOB = Actor("bob", "planner")
HID = "occupancy:P1:B1"


def _finding(i: int, kind: str = "occupancy") -> dict:
    return {"finding_id": f"{kind}:P{i}:B{i}", "kind": kind, "severity": "critical",
            "layer": "buildings", "feature_id": f"B{i}", "other_layer": "pipelines",
            "other_id": f"P{i}", "lon": 117.25, "lat": 34.8}


def _gpkg(path: Path) -> Path:
    """An empty SQLite file standing in for a store (the registry needs only SQLite)."""
    sqlite3.connect(path).close()
    return path


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    r = Registry(_gpkg(tmp_path / "s.gpkg"), busy_timeout=5)
    r.register(_finding(1), analysis="pipelines", owner_role="planner", actor=ALICE)
    return r


def test_every_change_bumps_the_version_in_its_transaction(reg: Registry) -> None:
    assert reg.hazard(HID)["version"] == 1
    assert reg.update(HID, {"notes": "a"}, actor=BOB, expected_version=1)["version"] == 2
    assert reg.transition(HID, "rectifying", actor=BOB, expected_version=2)["version"] == 3
    assert reg.update(HID, {"notes": "b"}, actor=BOB)["version"] == 4  # no check asked
    # sync: still detected → same version; vanished / found again → bumped
    counts = reg.sync("pipelines", [_finding(1), _finding(2)], owner_role="planner", actor=ALICE)
    assert counts == {"registered": 1, "still_detected": 1, "redetected": 0,
                      "no_longer_detected": 0}
    assert reg.hazard(HID)["version"] == 4 and reg.hazard("occupancy:P2:B2")["version"] == 1
    reg.sync("pipelines", [_finding(2)], owner_role="planner", actor=ALICE)
    gone = reg.hazard(HID)
    assert gone["detection"] == "no_longer_detected" and gone["version"] == 5
    reg.sync("pipelines", [_finding(1), _finding(2)], owner_role="planner", actor=ALICE)
    assert reg.hazard(HID)["version"] == 6
    assert [h["version"] for h in reg.hazards()[0]] == [6, 1]
    m = reg.put_measure("M1", {"title": "巡线"}, owner_role="planner", actor=ALICE,
                        expected_version=0)
    assert m["version"] == 1
    assert reg.put_measure("M1", {"status": "in_effect"}, owner_role="planner", actor=ALICE,
                           expected_version=1)["version"] == 2
    assert reg.measure("M1")["version"] == 2 and reg.measures()[0]["version"] == 2


def test_stale_version_is_refused_with_the_current_record(reg: Registry) -> None:
    reg.update(HID, {"department": "规划局"}, actor=ALICE, expected_version=1)
    with pytest.raises(EditConflict, match=r"changed by someone else \(now version 2, you sent "
                                           r"1\)") as info:
        reg.update(HID, {"department": "应急局"}, actor=BOB, expected_version=1)
    assert info.value.current is not None and info.value.sent == 1
    assert info.value.current["department"] == "规划局" and info.value.current["version"] == 2
    with pytest.raises(EditConflict, match="now version 2, you sent 7"):
        reg.transition(HID, "rectifying", actor=BOB, expected_version=7)
    assert reg.hazard(HID)["department"] == "规划局" and reg.hazard(HID)["status"] == "identified"
    assert [r["action"] for r in reg.audit(record_id=HID)[0]] == ["register", "update"]
    # measures: 0 = "must be new"; a version for a measure that does not exist
    reg.put_measure("M1", {"title": "t"}, owner_role="planner", actor=ALICE, expected_version=0)
    with pytest.raises(EditConflict, match=r"already exists \(now version 1, you sent 0\)"):
        reg.put_measure("M1", {"title": "u"}, owner_role="planner", actor=BOB,
                        expected_version=0)
    with pytest.raises(EditConflict, match="does not exist") as info:
        reg.put_measure("M2", {"title": "u"}, owner_role="planner", actor=BOB,
                        expected_version=3)
    assert info.value.current is None
    with pytest.raises(RecordNotFound):
        reg.measure("M2")
    assert reg.measure("M1")["title"] == "t"


def _race(path: str, who: str, department: str, barrier: object, out: object) -> None:
    reg = Registry(path)
    barrier.wait()  # type: ignore[attr-defined]
    try:
        reg.update(HID, {"department": department}, actor=Actor(who, "planner"),
                   expected_version=1)
        out.put((who, "ok"))  # type: ignore[attr-defined]
    except EditConflict as exc:
        out.put((who, f"conflict:{exc.current['version'] if exc.current else None}"))  # type: ignore[attr-defined]


def test_two_processes_same_version_exactly_one_wins(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    for round_ in range(3):
        path = _gpkg(tmp_path / f"r{round_}.gpkg")
        Registry(path).register(_finding(1), analysis="pipelines", owner_role="planner",
                                actor=ALICE)
        barrier, out = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_race, args=(str(path), who, dep, barrier, out))
                 for who, dep in (("alice", "规划局"), ("bob", "应急局"))]
        for p in procs:
            p.start()
        results = dict(out.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
        assert sorted(results.values()) == ["conflict:2", "ok"]
        winner = next(w for w, r in results.items() if r == "ok")
        final = Registry(path).hazard(HID)
        assert final["version"] == 2
        assert final["department"] == {"alice": "规划局", "bob": "应急局"}[winner]
        rows, total = Registry(path).audit(record_id=HID)
        assert total == 2 and [r["action"] for r in rows] == ["register", "update"]
        assert rows[1]["who"] == winner


def test_twenty_threads_read_modify_write_lose_nothing(reg: Registry) -> None:
    reg.update(HID, {"measures": "0"}, actor=ALICE)
    conflicts = []

    def bump(i: int) -> None:
        while True:
            rec = reg.hazard(HID)
            try:
                reg.update(HID, {"measures": str(int(rec["measures"]) + 1)},
                           actor=Actor(f"e{i}", "planner"), expected_version=rec["version"])
                return
            except EditConflict:
                conflicts.append(i)

    threads = [threading.Thread(target=bump, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = reg.hazard(HID)
    assert final["measures"] == "20" and final["version"] == 22
    assert reg.audit(record_id=HID)[1] == 22


def test_writer_waits_then_store_busy_and_nothing_changes(reg: Registry) -> None:
    holder = sqlite3.connect(reg.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        quick = Registry(reg.path, busy_timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(StoreBusy, match=r"busy: another writer held it for more than "
                                            r"0\.3 s.*nothing was changed, retry"):
            quick.update(HID, {"notes": "x"}, actor=BOB, expected_version=1)
        assert 0.25 < time.monotonic() - t0 < 3
        assert quick.hazard(HID)["notes"] is None  # readers are not blocked meanwhile
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert reg.hazard(HID)["version"] == 1
    assert reg.audit(record_id=HID)[1] == 1
    # a writer that waits less than the busy timeout just proceeds
    holder = sqlite3.connect(reg.path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    timer.start()
    try:
        assert reg.update(HID, {"notes": "y"}, actor=BOB, expected_version=1)["version"] == 2
    finally:
        timer.join()
        holder.close()


def test_readers_are_not_blocked_by_a_writer(reg: Registry) -> None:
    """Writes put the file in WAL mode: a reader sees the last committed snapshot while a
    writer holds the store with uncommitted changes."""
    with sqlite3.connect(reg.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    writer = sqlite3.connect(reg.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE registry_hazards SET notes = 'uncommitted', version = 99")
    writer.execute("INSERT INTO registry_audit (at, who, role, action, record_type, record_id)"
                   " VALUES ('t', 'w', 'admin', 'x', 'hazard', 'h')")
    try:
        slow = Registry(reg.path, busy_timeout=10)
        t0 = time.monotonic()
        rec = slow.hazard(HID)
        _rows, total = slow.hazards()
        assert slow.audit()[1] == 1
        assert time.monotonic() - t0 < 1.0
        assert rec["notes"] is None and rec["version"] == 1 and total == 1
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_busy_read_is_retried_then_reported_as_busy(reg: Registry) -> None:
    calls = []

    def flaky(con: sqlite3.Connection) -> int:
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return int(con.execute("SELECT COUNT(*) FROM registry_hazards").fetchone()[0])

    assert reg._reading(flaky) == 1 and len(calls) == 3

    def always(_con: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(StoreBusy, match="is busy"):
        reg._reading(always)

    def broken(_con: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("no such column: nope")

    with pytest.raises(StoreError, match=r"cannot read the registry .*no such column"):
        reg._reading(broken)


def test_old_store_without_versions_is_migrated_in_place(tmp_path: Path) -> None:
    path = _gpkg(tmp_path / "old.gpkg")
    old_schema = re.sub(r",\s*version INTEGER NOT NULL DEFAULT 1", "", _SCHEMA)
    assert "version" not in old_schema
    with sqlite3.connect(path) as con:
        con.executescript(old_schema)
        con.execute("INSERT INTO registry_hazards (hazard_id, analysis, kind, owner_role, "
                    "created_at, updated_at) VALUES (?, 'pipelines', 'occupancy', 'planner', "
                    "'2021-01-01T00:00:00Z', '2021-01-01T00:00:00Z')", (HID,))
        con.execute("INSERT INTO registry_measures (measure_id, title, owner_role, created_at, "
                    "updated_at) VALUES ('M1', 't', 'planner', 'x', 'x')")
    reg = Registry(path)
    assert reg.hazard(HID)["version"] == 1  # read-only: reported as version 1
    assert reg.hazards()[0][0]["version"] == 1 and reg.measure("M1")["version"] == 1
    with sqlite3.connect(path) as con:
        assert "version" not in {r[1] for r in con.execute("PRAGMA table_info(registry_hazards)")}
    with pytest.raises(EditConflict, match="now version 1, you sent 2"):
        reg.update(HID, {"notes": "x"}, actor=ALICE, expected_version=2)
    # the refused write still migrated the tables (same transaction as the check: rolled back)
    assert reg.update(HID, {"notes": "x"}, actor=ALICE, expected_version=1)["version"] == 2
    assert reg.put_measure("M1", {"status": "in_effect"}, owner_role="planner", actor=ALICE,
                           expected_version=1)["version"] == 2
    with sqlite3.connect(path) as con:
        for t in ("registry_hazards", "registry_measures"):
            assert "version" in {r[1] for r in con.execute(f"PRAGMA table_info({t})")}


def test_sync_is_one_transaction(reg: Registry) -> None:
    before = reg.audit()[1]
    bad = [_finding(1), _finding(2), {"finding_id": "x:3", "kind": ""}]
    with pytest.raises(RegistryError, match="finding 'x:3' needs a 'kind'"):
        reg.sync("pipelines", bad, owner_role="planner", actor=ALICE)
    assert reg.hazards()[1] == 1 and reg.audit()[1] == before
    counts = reg.sync("pipelines", [_finding(2), _finding(3)], owner_role="planner",
                      actor=ALICE)
    assert counts == {"registered": 2, "still_detected": 0, "redetected": 0,
                      "no_longer_detected": 1}
    actions = sorted((r["record_id"], r["action"]) for r in reg.audit()[0])
    assert actions == [(HID, "no_longer_detected"), (HID, "register"),
                       ("occupancy:P2:B2", "register"), ("occupancy:P3:B3", "register")]
    after = next(r for r in reg.audit()[0] if r["action"] == "no_longer_detected")["after"]
    assert after == reg.hazard(HID)


def test_busy_timeout_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISKMAP_BUSY_TIMEOUT", raising=False)
    assert resolve_busy_timeout() == 30.0
    monkeypatch.setenv("RISKMAP_BUSY_TIMEOUT", "2.5")
    assert resolve_busy_timeout() == 2.5 and resolve_busy_timeout(1) == 1.0
    monkeypatch.setenv("RISKMAP_BUSY_TIMEOUT", "soon")
    with pytest.raises(StoreError, match="RISKMAP_BUSY_TIMEOUT is 'soon'; expected a number"):
        Registry("x.gpkg")
    with pytest.raises(StoreError, match="busy_timeout is -1; expected a finite number"):
        resolve_busy_timeout(-1)


def test_missing_store_is_named(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "nope.gpkg")
    with pytest.raises(StoreError, match=r"GeoPackage .*nope\.gpkg does not exist"):
        reg.hazard("x")
    with pytest.raises(StoreError, match="does not exist"):
        reg.update("x", {}, actor=ALICE)
