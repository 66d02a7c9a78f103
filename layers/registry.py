"""The hazard registry: the plan's "two lists" (问题隐患清单 hazards, 制度措施清单 measures) and an
append-only audit log, kept in the same GeoPackage as the layers (plain sqlite3 tables,
registered in ``gpkg_contents`` as attribute tables).

Every function opens a fresh sqlite3 connection. Writes take the store's writer lock
(``GeoPackageStore.lock()``), the same lock ``GeoPackageStore.write`` holds while it copies and
renames the file, so a registry write is never lost to a concurrent layer write.

Hazards have a stable id — the ``finding_id`` of the finding they came from — and a ``status``
that moves identified → rectifying → rectified → verified → closed (销号); a failed verification
sends a rectified hazard back to rectifying. Re-syncing an analysis marks hazards that are no
longer found ``detection = "no_longer_detected"``; nothing is ever deleted. Every change writes
an audit row (who, role, when, action, before, after); triggers refuse UPDATE/DELETE on it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from layers.errors import RiskmapError, StoreError

__all__ = [
    "DETECTIONS",
    "EDITABLE_FIELDS",
    "HAZARD_FIELDS",
    "MEASURE_STATUSES",
    "MONITORING_TARGETS",
    "RECTIFICATION_TARGETS",
    "STATUSES",
    "TRANSITIONS",
    "Actor",
    "IllegalTransition",
    "RecordNotFound",
    "Registry",
    "RegistryError",
    "rectification_stats",
]

STATUSES: tuple[str, ...] = ("identified", "rectifying", "rectified", "verified", "closed")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "identified": ("rectifying",),
    "rectifying": ("rectified",),
    "rectified": ("verified", "rectifying"),  # verification failed → back to rectifying
    "verified": ("closed",),
    "closed": (),
}
DONE = frozenset({"rectified", "verified", "closed"})
DETECTIONS: tuple[str, ...] = ("detected", "no_longer_detected")
MEASURE_STATUSES: tuple[str, ...] = ("planned", "in_progress", "in_effect", "withdrawn")

# Plan targets: occupancy and insufficient-distance hazards 100 % rectified by end-2022;
# video monitoring of people-dense HCAs 30 % (2020), 70 % (2021), 100 % (2022).
RECTIFICATION_TARGETS: dict[str, tuple[float, str]] = {
    "occupancy": (1.0, "2022-12-31"),
    "setback": (1.0, "2022-12-31"),
}
MONITORING_TARGETS: dict[int, float] = {2020: 0.30, 2021: 0.70, 2022: 1.00}

HAZARD_FIELDS: tuple[str, ...] = (
    "hazard_id", "analysis", "kind", "severity", "layer", "feature_id", "other_layer",
    "other_id", "rule_id", "rule_source", "station", "message_zh", "message_en", "lon", "lat",
    "owner_role", "status", "detection", "department", "deadline", "measures", "notes",
    "attachments", "first_detected", "last_detected", "created_at", "updated_at",
    "rectified_at", "closed_at",
)  # fmt: skip
EDITABLE_FIELDS: tuple[str, ...] = ("department", "deadline", "measures", "notes",
                                    "attachments", "severity")
MEASURE_FIELDS: tuple[str, ...] = ("measure_id", "title", "department", "kind", "status",
                                   "deadline", "description", "hazard_ids", "owner_role",
                                   "created_at", "updated_at")
_FINDING_FIELDS = ("kind", "severity", "layer", "feature_id", "other_layer", "other_id",
                   "rule_id", "rule_source", "station", "message_zh", "message_en", "lon", "lat")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_hazards (
  hazard_id TEXT PRIMARY KEY, analysis TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT,
  layer TEXT, feature_id TEXT, other_layer TEXT, other_id TEXT, rule_id TEXT, rule_source TEXT,
  station TEXT, message_zh TEXT, message_en TEXT, lon REAL, lat REAL,
  owner_role TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'identified',
  detection TEXT NOT NULL DEFAULT 'detected', department TEXT, deadline TEXT, measures TEXT,
  notes TEXT, attachments TEXT NOT NULL DEFAULT '[]', first_detected TEXT, last_detected TEXT,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL, rectified_at TEXT, closed_at TEXT);
CREATE INDEX IF NOT EXISTS registry_hazards_analysis ON registry_hazards(analysis);
CREATE TABLE IF NOT EXISTS registry_measures (
  measure_id TEXT PRIMARY KEY, title TEXT NOT NULL, department TEXT, kind TEXT,
  status TEXT NOT NULL DEFAULT 'planned', deadline TEXT, description TEXT,
  hazard_ids TEXT NOT NULL DEFAULT '[]', owner_role TEXT NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registry_audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, who TEXT NOT NULL, role TEXT NOT NULL,
  action TEXT NOT NULL, record_type TEXT NOT NULL, record_id TEXT NOT NULL,
  before TEXT, after TEXT);
CREATE TRIGGER IF NOT EXISTS registry_audit_no_update BEFORE UPDATE ON registry_audit
  BEGIN SELECT RAISE(ABORT, 'registry_audit is append-only'); END;
CREATE TRIGGER IF NOT EXISTS registry_audit_no_delete BEFORE DELETE ON registry_audit
  BEGIN SELECT RAISE(ABORT, 'registry_audit is append-only'); END;
"""
_TABLES = ("registry_hazards", "registry_measures", "registry_audit")


class RegistryError(RiskmapError, ValueError):
    """A registry request that cannot be carried out (bad field or value)."""


class IllegalTransition(RegistryError):
    """A status change the workflow does not allow."""


class RecordNotFound(RiskmapError, LookupError):
    """No hazard or measure with that id."""


@dataclass(frozen=True)
class Actor:
    """Who makes a change (written to the audit log)."""

    who: str
    role: str


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _check_date(field: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise RegistryError(f"{field} is {value!r}; expected a date YYYY-MM-DD") from None


def _check_attachments(value: object) -> str:
    if value is None:
        return "[]"
    if not isinstance(value, list):
        raise RegistryError("attachments must be a list of references "
                            '({"name": …, "href": …})')
    out = []
    for i, a in enumerate(value):
        if isinstance(a, str):
            a = {"href": a}
        if not isinstance(a, dict) or not isinstance(a.get("href"), str) or not a["href"]:
            raise RegistryError(f"attachments[{i}] needs an 'href' (a reference, not a file)")
        out.append({k: str(v) for k, v in a.items() if k in ("name", "href", "type")})
    return json.dumps(out, ensure_ascii=False)


def _row_dict(cur: sqlite3.Cursor, row: Sequence[Any]) -> dict[str, Any]:
    d = {c[0]: v for c, v in zip(cur.description, row, strict=True)}
    for k in ("attachments", "hazard_ids", "before", "after"):
        if k in d and isinstance(d[k], str):
            d[k] = json.loads(d[k])
    return d


class Registry:
    """The registry tables inside the GeoPackage at ``path``.

    ``lock`` is a context-manager factory for the store's writer lock (pass
    ``store.lock``); without it writes are serialised by sqlite only.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock: Any = None) -> None:
        self.path = os.fspath(path)
        self._lock = lock

    # -- plumbing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if not os.path.exists(self.path):
            raise StoreError(f"GeoPackage {self.path} does not exist")
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        lock = self._lock() if self._lock is not None else contextlib.nullcontext()
        with lock:
            if not os.path.exists(self.path):
                raise StoreError(f"GeoPackage {self.path} does not exist")
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                con.execute("BEGIN IMMEDIATE")
                self._ensure(con)
                yield con
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            finally:
                con.close()

    @staticmethod
    def _ensure(con: sqlite3.Connection) -> None:
        have = {r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE 'registry_%'")}
        if set(_TABLES) <= have:
            return
        for stmt in _SCHEMA.split(";\n"):
            if stmt.strip():
                con.execute(stmt)
        if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'gpkg_contents'").fetchone():
            for t in _TABLES:
                con.execute("INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, "
                            "identifier, description, last_change) VALUES (?, 'attributes', ?, "
                            "?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                            (t, t, "riskmap hazard registry"))

    def _exists(self, con: sqlite3.Connection) -> bool:
        return con.execute("SELECT 1 FROM sqlite_master WHERE name = 'registry_audit'"
                           ).fetchone() is not None

    @staticmethod
    def _audit(con: sqlite3.Connection, actor: Actor, action: str, rtype: str, rid: str,
               before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, at: str
               ) -> None:
        con.execute(
            "INSERT INTO registry_audit (at, who, role, action, record_type, record_id, before,"
            " after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (at, actor.who, actor.role, action, rtype, rid,
             None if before is None else json.dumps(dict(before), ensure_ascii=False,
                                                     default=str),
             None if after is None else json.dumps(dict(after), ensure_ascii=False,
                                                   default=str)))

    @staticmethod
    def _get_hazard(con: sqlite3.Connection, hazard_id: str) -> dict[str, Any] | None:
        cur = con.execute("SELECT * FROM registry_hazards WHERE hazard_id = ?", (hazard_id,))
        row = cur.fetchone()
        return None if row is None else _row_dict(cur, row)

    # -- hazards -----------------------------------------------------------------------------
    def hazard(self, hazard_id: str) -> dict[str, Any]:
        """One hazard record; RecordNotFound when absent."""
        with self._read() as con:
            rec = self._get_hazard(con, hazard_id) if self._exists(con) else None
        if rec is None:
            raise RecordNotFound(f"no hazard {hazard_id!r} in the registry")
        return rec

    def hazards(self, *, where: Mapping[str, object] | None = None, roles: Sequence[str] | None
                = None, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Hazards matching equality filters (and owned by ``roles``, if given), paged."""
        clauses, args = [], []
        for k, v in (where or {}).items():
            if k not in HAZARD_FIELDS:
                raise RegistryError(f"unknown hazard field {k!r}")
            clauses.append(f'"{k}" = ?')
            args.append(v)
        if roles is not None:
            clauses.append("owner_role IN (" + ",".join("?" * len(roles)) + ")")
            args.extend(roles)
        sql_where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._read() as con:
            if not self._exists(con):
                return [], 0
            total = con.execute(f"SELECT COUNT(*) FROM registry_hazards{sql_where}", args
                                ).fetchone()[0]
            cur = con.execute(f"SELECT * FROM registry_hazards{sql_where} ORDER BY hazard_id "
                              "LIMIT ? OFFSET ?", [*args, limit, offset])
            rows = [_row_dict(cur, r) for r in cur.fetchall()]
        return rows, int(total)

    def register(self, finding: Mapping[str, Any], *, analysis: str, owner_role: str,
                 actor: Actor, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Register one finding as a hazard (idempotent: an existing record is returned)."""
        fid = str(finding["finding_id"])
        with self._write() as con:
            rec = self._get_hazard(con, fid)
            if rec is not None:
                return rec
            now = _now()
            self._insert(con, finding, analysis=analysis, owner_role=owner_role, now=now)
            if fields:
                self._apply_fields(con, fid, fields, now)
            after = self._get_hazard(con, fid)
            assert after is not None
            self._audit(con, actor, "register", "hazard", fid, None, after, now)
            return after

    @staticmethod
    def _insert(con: sqlite3.Connection, finding: Mapping[str, Any], *, analysis: str,
                owner_role: str, now: str) -> None:
        vals = {k: finding.get(k) for k in _FINDING_FIELDS}
        for k, v in list(vals.items()):
            if isinstance(v, float) and v != v:  # NaN
                vals[k] = None
            elif v is not None and k not in ("lon", "lat"):
                vals[k] = str(v)
        if not vals.get("kind"):
            raise RegistryError("a finding needs a 'kind'")
        con.execute(
            "INSERT INTO registry_hazards (hazard_id, analysis, owner_role, status, detection, "
            "first_detected, last_detected, created_at, updated_at, "
            + ", ".join(_FINDING_FIELDS) + ") VALUES (?, ?, ?, 'identified', 'detected', ?, ?, "
            "?, ?, " + ", ".join("?" * len(_FINDING_FIELDS)) + ")",
            (str(finding["finding_id"]), analysis, owner_role, now, now, now, now,
             *(vals[k] for k in _FINDING_FIELDS)))

    @staticmethod
    def _apply_fields(con: sqlite3.Connection, hazard_id: str, fields: Mapping[str, Any],
                      now: str) -> None:
        sets, args = [], []
        for k, v in fields.items():
            v = _check_hazard_field(k, v)
            sets.append(f'"{k}" = ?')
            args.append(v)
        if sets:
            con.execute(f"UPDATE registry_hazards SET {', '.join(sets)}, updated_at = ? "
                        "WHERE hazard_id = ?", [*args, now, hazard_id])

    def update(self, hazard_id: str, fields: Mapping[str, Any], *, actor: Actor
               ) -> dict[str, Any]:
        """Change editable fields (department, deadline, measures, notes, attachments)."""
        with self._write() as con:
            before = self._get_hazard(con, hazard_id)
            if before is None:
                raise RecordNotFound(f"no hazard {hazard_id!r} in the registry")
            now = _now()
            self._apply_fields(con, hazard_id, fields, now)
            after = self._get_hazard(con, hazard_id)
            assert after is not None
            self._audit(con, actor, "update", "hazard", hazard_id, before, after, now)
            return after

    def transition(self, hazard_id: str, to: str, *, actor: Actor, note: str | None = None
                   ) -> dict[str, Any]:
        """Move a hazard to status ``to``; IllegalTransition when the workflow forbids it."""
        if to not in STATUSES:
            raise RegistryError(f"status {to!r} is unknown; expected one of "
                                + ", ".join(STATUSES))
        with self._write() as con:
            before = self._get_hazard(con, hazard_id)
            if before is None:
                raise RecordNotFound(f"no hazard {hazard_id!r} in the registry")
            cur = before["status"]
            if to not in TRANSITIONS[cur]:
                allowed = ", ".join(TRANSITIONS[cur]) or "none (closed)"
                raise IllegalTransition(f"hazard {hazard_id!r} is {cur}; it cannot become {to} "
                                        f"(allowed next: {allowed})")
            now = _now()
            extra = ""
            if to == "rectified":
                extra = ", rectified_at = :now"
            elif to == "rectifying" and cur == "rectified":
                extra = ", rectified_at = NULL"
            elif to == "closed":
                extra = ", closed_at = :now"
            con.execute(f"UPDATE registry_hazards SET status = :to, updated_at = :now{extra} "
                        "WHERE hazard_id = :id", {"to": to, "now": now, "id": hazard_id})
            if note:
                old = before.get("notes") or ""
                con.execute("UPDATE registry_hazards SET notes = ? WHERE hazard_id = ?",
                            ((old + "\n" if old else "") + f"[{now} {actor.who}] {note}",
                             hazard_id))
            after = self._get_hazard(con, hazard_id)
            assert after is not None
            self._audit(con, actor, f"status:{cur}->{to}", "hazard", hazard_id, before, after,
                        now)
            return after

    def sync(self, analysis: str, findings: Sequence[Mapping[str, Any]], *, owner_role: str,
             actor: Actor, register_new: bool = True) -> dict[str, int]:
        """Bring the registry in line with a fresh run of ``analysis``.

        New findings are registered (when ``register_new``); hazards found again are
        re-marked ``detected``; hazards of ``analysis`` not found any more are marked
        ``no_longer_detected`` — never deleted. Returns counts per action.
        """
        counts = {"registered": 0, "still_detected": 0, "redetected": 0,
                  "no_longer_detected": 0}
        by_id = {str(f["finding_id"]): f for f in findings}
        with self._write() as con:
            now = _now()
            cur = con.execute("SELECT * FROM registry_hazards WHERE analysis = ?", (analysis,))
            existing = {r[0]: _row_dict(cur, r) for r in cur.fetchall()}
            for hid, rec in existing.items():
                if hid in by_id:
                    if rec["detection"] != "detected":
                        con.execute("UPDATE registry_hazards SET detection = 'detected', "
                                    "last_detected = ?, updated_at = ? WHERE hazard_id = ?",
                                    (now, now, hid))
                        after = self._get_hazard(con, hid)
                        self._audit(con, actor, "redetected", "hazard", hid, rec, after, now)
                        counts["redetected"] += 1
                    else:
                        con.execute("UPDATE registry_hazards SET last_detected = ? "
                                    "WHERE hazard_id = ?", (now, hid))
                        counts["still_detected"] += 1
                elif rec["detection"] == "detected":
                    con.execute("UPDATE registry_hazards SET detection = 'no_longer_detected', "
                                "updated_at = ? WHERE hazard_id = ?", (now, hid))
                    after = self._get_hazard(con, hid)
                    self._audit(con, actor, "no_longer_detected", "hazard", hid, rec, after, now)
                    counts["no_longer_detected"] += 1
            if register_new:
                for hid, f in by_id.items():
                    if hid in existing:
                        continue
                    if self._get_hazard(con, hid) is not None:  # registered by another analysis
                        continue
                    self._insert(con, f, analysis=analysis, owner_role=owner_role, now=now)
                    after = self._get_hazard(con, hid)
                    self._audit(con, actor, "register", "hazard", hid, None, after, now)
                    counts["registered"] += 1
        return counts

    # -- measures (制度措施清单) ---------------------------------------------------------------
    def measures(self, *, roles: Sequence[str] | None = None) -> list[dict[str, Any]]:
        with self._read() as con:
            if not self._exists(con):
                return []
            sql = "SELECT * FROM registry_measures"
            args: list[object] = []
            if roles is not None:
                sql += " WHERE owner_role IN (" + ",".join("?" * len(roles)) + ")"
                args.extend(roles)
            cur = con.execute(sql + " ORDER BY measure_id", args)
            return [_row_dict(cur, r) for r in cur.fetchall()]

    def measure(self, measure_id: str) -> dict[str, Any]:
        with self._read() as con:
            if self._exists(con):
                cur = con.execute("SELECT * FROM registry_measures WHERE measure_id = ?",
                                  (measure_id,))
                row = cur.fetchone()
                if row is not None:
                    return _row_dict(cur, row)
        raise RecordNotFound(f"no measure {measure_id!r} in the registry")

    def put_measure(self, measure_id: str, fields: Mapping[str, Any], *, owner_role: str,
                    actor: Actor) -> dict[str, Any]:
        """Create or update a measure (institutional / management measure)."""
        vals = _check_measure_fields(fields)
        with self._write() as con:
            now = _now()
            cur = con.execute("SELECT * FROM registry_measures WHERE measure_id = ?",
                              (measure_id,))
            row = cur.fetchone()
            before = None if row is None else _row_dict(cur, row)
            if before is None:
                if not vals.get("title"):
                    raise RegistryError("a new measure needs a 'title'")
                con.execute("INSERT INTO registry_measures (measure_id, title, owner_role, "
                            "created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                            (measure_id, vals["title"], owner_role, now, now))
            sets = [f'"{k}" = ?' for k in vals]
            con.execute(f"UPDATE registry_measures SET {', '.join([*sets, 'updated_at = ?'])} "
                        "WHERE measure_id = ?", [*vals.values(), now, measure_id])
            cur = con.execute("SELECT * FROM registry_measures WHERE measure_id = ?",
                              (measure_id,))
            after = _row_dict(cur, cur.fetchone())
            self._audit(con, actor, "create" if before is None else "update", "measure",
                        measure_id, before, after, now)
            return after

    # -- audit and stats ---------------------------------------------------------------------
    def audit(self, *, record_id: str | None = None, limit: int = 100, offset: int = 0
              ) -> tuple[list[dict[str, Any]], int]:
        """Audit rows, oldest first (optionally of one record)."""
        with self._read() as con:
            if not self._exists(con):
                return [], 0
            where, args = ("", []) if record_id is None else (" WHERE record_id = ?",
                                                              [record_id])
            total = con.execute(f"SELECT COUNT(*) FROM registry_audit{where}", args
                                ).fetchone()[0]
            cur = con.execute(f"SELECT * FROM registry_audit{where} ORDER BY seq LIMIT ? "
                              "OFFSET ?", [*args, limit, offset])
            return [_row_dict(cur, r) for r in cur.fetchall()], int(total)

    def rectification_stats(self, *, today: dt.date | None = None) -> dict[str, Any]:
        """Rectification rate by kind, department and year, against the plan's targets.

        A hazard counts as rectified once its status is rectified, verified or closed.
        Hazards no longer detected are counted separately (they left the list without a
        recorded rectification).
        """
        today = today or dt.date.today()
        with self._read() as con:
            if not self._exists(con):
                rows: list[tuple[Any, ...]] = []
            else:
                rows = con.execute("SELECT kind, COALESCE(department, ''), "
                                   "substr(first_detected, 1, 4), status, detection "
                                   "FROM registry_hazards").fetchall()

        return rectification_stats(rows, today=today)


def rectification_stats(rows: list[tuple[Any, ...]], *, today: dt.date) -> dict[str, Any]:
    """Rectification rate overall and by kind / department / year from registry rows
    ``(kind, department, year, status, detection)``, with the plan's targets per kind."""
    def agg(key_index: int) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            k = r[key_index] or "(none)"
            d = out.setdefault(k, {"total": 0, "rectified": 0, "closed": 0,
                                   "open": 0, "no_longer_detected": 0})
            d["total"] += 1
            if r[3] in DONE:
                d["rectified"] += 1
            else:
                d["open"] += 1
            if r[3] == "closed":
                d["closed"] += 1
            if r[4] == "no_longer_detected":
                d["no_longer_detected"] += 1
        for d in out.values():
            d["rate"] = round(d["rectified"] / d["total"], 4) if d["total"] else None
        return dict(sorted(out.items()))

    by_kind = agg(0)
    for kind, (target, deadline) in RECTIFICATION_TARGETS.items():
        d = by_kind.get(kind)
        if d is None:
            continue
        d["target"] = target
        d["deadline"] = deadline
        d["met"] = d["rate"] is not None and d["rate"] >= target
        d["overdue"] = (not d["met"]) and today.isoformat() > deadline
    total = len(rows)
    done = sum(1 for r in rows if r[3] in DONE)
    return {"total": total, "rectified": done,
            "rate": round(done / total, 4) if total else None,
            "by_kind": by_kind, "by_department": agg(1), "by_year": agg(2)}


def _check_measure_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a measure's editable fields; return them ready to store."""
    allowed = {"title", "department", "kind", "status", "deadline", "description",
               "hazard_ids"}
    bad = sorted(set(fields) - allowed)
    if bad:
        raise RegistryError(f"unknown measure field(s) {', '.join(bad)}; expected "
                            + ", ".join(sorted(allowed)))
    vals = dict(fields)
    if "status" in vals and vals["status"] not in MEASURE_STATUSES:
        raise RegistryError(f"status is {vals['status']!r}; expected one of "
                            + ", ".join(MEASURE_STATUSES))
    if "deadline" in vals:
        vals["deadline"] = _check_date("deadline", vals["deadline"])
    if "hazard_ids" in vals:
        ids = vals["hazard_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise RegistryError("hazard_ids must be a list of hazard ids")
        vals["hazard_ids"] = json.dumps(ids, ensure_ascii=False)
    return vals


def _check_hazard_field(name: str, value: Any) -> Any:
    """Validate one editable hazard field; return the value to store."""
    if name not in EDITABLE_FIELDS:
        raise RegistryError(f"field {name!r} cannot be edited; editable: "
                            + ", ".join(EDITABLE_FIELDS) + " (status changes go "
                            "through a transition)")
    if name == "deadline":
        return _check_date(name, value)
    if name == "attachments":
        return _check_attachments(value)
    if name == "severity" and value not in ("critical", "high", "medium", "low", "info"):
        raise RegistryError(f"severity is {value!r}; expected critical, high, medium, low "
                            "or info")
    return None if value is None else str(value)
