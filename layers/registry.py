"""The hazard registry: the plan's "two lists" (问题隐患清单 hazards, 制度措施清单 measures) and an
append-only audit log, kept in the same GeoPackage as the layers (plain sqlite3 tables,
registered in ``gpkg_contents`` as attribute tables).

Concurrency rests on SQLite alone. Every write is one ``BEGIN IMMEDIATE`` transaction (one
writer at a time; a writer waits up to the busy timeout — default 30 s, ``RISKMAP_BUSY_TIMEOUT``
— and then fails with :class:`~layers.errors.StoreBusy`, changing nothing). Writes switch the
file to WAL journal mode first, so readers (read-only connections, one snapshot per call) are
never blocked by a writer; a read that still meets a busy database (WAL recovery) is retried.

Hazards and measures carry a ``version`` that every change bumps inside its transaction. An
editor passes ``expected_version`` (the version they were shown — the API's ``If-Match``); a
stale one raises :class:`EditConflict` carrying the current record, so no edit silently
overwrites another (the same contract as the PostGIS registry, :mod:`layers.registry_pg`).
Stores written before versions existed get the column on their first registry write; until
then their records read as version 1.

Hazards have a stable id — the ``finding_id`` of the finding they came from — and a ``status``
that moves identified → rectifying → rectified → verified → closed (销号); a failed verification
sends a rectified hazard back to rectifying. Re-syncing an analysis marks hazards that are no
longer found ``detection = "no_longer_detected``; nothing is ever deleted. Every change writes
an audit row (who, role, when, action, before, after); triggers refuse UPDATE/DELETE on it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from layers.errors import RiskmapError, StoreBusy, StoreError

__all__ = [
    "ATTACHMENT_KEYS",
    "BUSY_TIMEOUT_ENV",
    "DEFAULT_BUSY_TIMEOUT",
    "DETECTIONS",
    "EDITABLE_FIELDS",
    "HAZARD_FIELDS",
    "MEASURE_STATUSES",
    "MONITORING_TARGETS",
    "RECTIFICATION_TARGETS",
    "STATUSES",
    "TRANSITIONS",
    "Actor",
    "EditConflict",
    "IllegalTransition",
    "RecordNotFound",
    "Registry",
    "RegistryError",
    "RegistryTx",
    "rectification_stats",
    "resolve_busy_timeout",
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


def monitoring_stats(store: Any, today: dt.date, *, coverage: float | None = None
                     ) -> dict[str, Any] | None:
    """Video-monitoring coverage of people-dense HCAs against the plan's 30/70/100 % targets
    on ``today`` (the district's date); None when ``store`` has no ``hca`` layer.

    ``coverage``: the computed share of people-dense HCA length under camera coverage (the
    figure the maps and the ``hca_monitoring`` finding use); without it, the share of
    people-dense HCAs flagged ``video_monitored``. ``basis`` says which."""
    if not store.has_layer("hca"):
        return None
    hca = store.read("hca")
    if "people_dense" in hca.columns:
        dense = hca[hca["people_dense"].fillna(False).astype(bool)]
    else:
        dense = hca
    monitored = (int(dense["video_monitored"].fillna(False).astype(bool).sum())
                 if "video_monitored" in dense.columns else 0)
    n = len(dense)
    if coverage is not None:
        # floored, never rounded up to a target it misses (as the maps print it)
        cov: float | None = math.floor(float(coverage) * 10_000 + 1e-9) / 10_000
        basis = "camera coverage of people-dense HCA length"
    else:
        cov = round(monitored / n, 4) if n else None
        basis = "people-dense HCAs flagged video_monitored"
    years = [{"year": y, "target": t, "met": None if cov is None else cov >= t}
             for y, t in sorted(MONITORING_TARGETS.items())]
    due = [t for y, t in MONITORING_TARGETS.items() if dt.date(y, 12, 31) <= today]
    current = max(due) if due else None
    return {"people_dense_hca": n, "monitored": monitored, "coverage": cov, "basis": basis,
            "targets": years,
            "current_target": current,
            "met": None if cov is None or current is None else cov >= current}

HAZARD_FIELDS: tuple[str, ...] = (
    "hazard_id", "analysis", "kind", "severity", "layer", "feature_id", "other_layer",
    "other_id", "rule_id", "rule_source", "station", "message_zh", "message_en", "lon", "lat",
    "owner_role", "status", "detection", "department", "responsible", "deadline", "measures",
    "notes", "attachments", "first_detected", "last_detected", "created_at", "updated_at",
    "rectified_at", "closed_at",
)  # fmt: skip
EDITABLE_FIELDS: tuple[str, ...] = ("department", "responsible", "deadline", "measures",
                                    "notes", "attachments", "severity")
# Keys an attachment reference may carry (uploaded files add id, size, sha256, who, when).
ATTACHMENT_KEYS: tuple[str, ...] = ("name", "href", "type", "id", "size", "sha256",
                                    "uploaded_at", "uploaded_by")
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
  detection TEXT NOT NULL DEFAULT 'detected', department TEXT, responsible TEXT,
  deadline TEXT, measures TEXT,
  notes TEXT, attachments TEXT NOT NULL DEFAULT '[]', first_detected TEXT, last_detected TEXT,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL, rectified_at TEXT, closed_at TEXT,
  version INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS registry_hazards_analysis ON registry_hazards(analysis);
CREATE TABLE IF NOT EXISTS registry_measures (
  measure_id TEXT PRIMARY KEY, title TEXT NOT NULL, department TEXT, kind TEXT,
  status TEXT NOT NULL DEFAULT 'planned', deadline TEXT, description TEXT,
  hazard_ids TEXT NOT NULL DEFAULT '[]', owner_role TEXT NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1);
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
_VERSIONED = ("registry_hazards", "registry_measures")

BUSY_TIMEOUT_ENV = "RISKMAP_BUSY_TIMEOUT"
DEFAULT_BUSY_TIMEOUT = 30.0
# Extra waits (s) for a read that meets SQLITE_BUSY despite WAL (recovery, checkpoint).
_READ_RETRY_DELAYS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8)
_T = TypeVar("_T")


class RegistryError(RiskmapError, ValueError):
    """A registry request that cannot be carried out (bad field or value)."""


class IllegalTransition(RegistryError):
    """A status change the workflow does not allow."""


class RecordNotFound(RiskmapError, LookupError):
    """No hazard or measure with that id."""


class EditConflict(IllegalTransition):
    """The record changed since the editor read it (a stale expected version).

    ``current`` is the record as it is now (``None`` when it does not exist); ``sent`` is the
    version the editor sent. A subclass of IllegalTransition, so the API answers 409 Conflict.
    """

    def __init__(self, message: str, *, current: Mapping[str, Any] | None,
                 sent: int | None = None) -> None:
        super().__init__(message)
        self.current = None if current is None else dict(current)
        self.sent = sent


def _check_editable(hazard_id: str, rec: Mapping[str, Any]) -> None:
    """Refuse edits to a closed (销号) hazard, naming its state."""
    if rec.get("status") == "closed":
        raise IllegalTransition(f"hazard {hazard_id!r} is closed (销号, closed at "
                                f"{rec.get('closed_at')}); a closed hazard's record is final "
                                "and cannot be edited")


def _check_version(kind: str, record_id: str, record: Mapping[str, Any] | None,
                  expected: int | None) -> None:
    """Raise :class:`EditConflict` unless ``record`` is at version ``expected``.

    ``expected`` None checks nothing; 0 means "must not exist yet" (a create).
    """
    if expected is None:
        return
    expected = int(expected)
    if record is None:
        if expected == 0:
            return
        raise EditConflict(f"{kind} {record_id!r} does not exist (you sent version {expected});"
                           " create it without a version", current=None, sent=expected)
    now = int(record["version"])
    if now != expected:
        what = "already exists" if expected == 0 else "was changed by someone else"
        raise EditConflict(f"{kind} {record_id!r} {what} (now version {now}, you sent "
                           f"{expected}); reload it and apply your change again",
                           current=record, sent=expected)


def resolve_busy_timeout(value: float | None = None) -> float:
    """Seconds a store write waits for the current writer: ``value``, else
    ``$RISKMAP_BUSY_TIMEOUT``, else 30."""
    if value is None:
        raw = os.environ.get(BUSY_TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_BUSY_TIMEOUT
        try:
            value = float(raw)
        except ValueError:
            raise StoreError(f"{BUSY_TIMEOUT_ENV} is {raw!r}; expected a number of seconds "
                             "(e.g. 30)") from None
        source = BUSY_TIMEOUT_ENV
    else:
        source = "busy_timeout"
    if not value >= 0 or value == float("inf"):
        raise StoreError(f"{source} is {value!r}; expected a finite number of seconds >= 0")
    return float(value)


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
        out.append({k: str(v) for k, v in a.items() if k in ATTACHMENT_KEYS})
    return json.dumps(out, ensure_ascii=False)


def _row_dict(cur: sqlite3.Cursor, row: Sequence[Any]) -> dict[str, Any]:
    d = {c[0]: v for c, v in zip(cur.description, row, strict=True)}
    for k in ("attachments", "hazard_ids", "before", "after"):
        if k in d and isinstance(d[k], str):
            d[k] = json.loads(d[k])
    return d


def _record(cur: sqlite3.Cursor, row: Sequence[Any]) -> dict[str, Any]:
    """A hazard or measure row; a store from before versions existed reads as version 1."""
    d = _row_dict(cur, row)
    d.setdefault("version", 1)
    if "hazard_id" in d:
        d.setdefault("responsible", None)  # a store from before the column existed
    return d


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (5, 6, 15)  # SQLITE_BUSY, SQLITE_LOCKED, SQLITE_PROTOCOL
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _checkpoint(con: sqlite3.Connection) -> None:
    """Best effort, never waiting: move the committed WAL into the GeoPackage file and empty
    the WAL, so the file alone holds the registry (a copy of it, e.g. a backup, is complete)
    whenever no reader is in the middle of a snapshot."""
    with contextlib.suppress(sqlite3.Error):
        con.execute("PRAGMA busy_timeout = 0")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(dict(value), ensure_ascii=False, default=str)


class Registry:
    """The registry tables inside the GeoPackage at ``path``.

    ``busy_timeout`` (seconds; default ``$RISKMAP_BUSY_TIMEOUT`` or 30) is how long a write
    waits for another writer before :class:`~layers.errors.StoreBusy`.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float | None = None
                 ) -> None:
        self.path = os.fspath(path)
        self.busy_timeout = resolve_busy_timeout(busy_timeout)

    # -- plumbing ----------------------------------------------------------------------------
    def _missing(self) -> StoreError:
        return StoreError(f"GeoPackage {self.path} does not exist")

    def _busy(self, exc: BaseException) -> StoreBusy:
        return StoreBusy(f"store {self.path} is busy: another writer held it for more than "
                         f"{self.busy_timeout:g} s ({exc}); nothing was changed, retry")

    def _reading(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on a read-only connection inside one read transaction (one snapshot);
        retried briefly when the database answers busy, then StoreBusy."""
        uri = Path(self.path).absolute().as_uri() + "?mode=ro"
        for attempt in range(len(_READ_RETRY_DELAYS) + 1):
            if not os.path.exists(self.path):
                raise self._missing()
            try:
                con = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout,
                                      isolation_level=None)
                try:
                    con.execute("BEGIN")
                    return fn(con)
                finally:
                    con.close()
            except sqlite3.DatabaseError as exc:
                if not _is_busy(exc):
                    raise StoreError(f"cannot read the registry in {self.path}: {exc}"
                                     ) from exc
                if attempt == len(_READ_RETRY_DELAYS):
                    raise self._busy(exc) from exc
            time.sleep(_READ_RETRY_DELAYS[attempt])
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction (WAL journal), committed on success."""
        if not os.path.exists(self.path):
            raise self._missing()
        con = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            try:
                if str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    con.execute("PRAGMA journal_mode=WAL")  # persistent: readers never blocked
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    raise self._busy(exc) from exc
                raise StoreError(f"cannot write the registry in {self.path}: {exc}") from exc
            try:
                self._ensure(con)
                yield con
                con.execute("COMMIT")
            except BaseException as exc:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                    raise self._busy(exc) from exc
                raise
            _checkpoint(con)
        finally:
            con.close()

    @staticmethod
    def _ensure(con: sqlite3.Connection) -> None:
        """Create the registry tables, or add ``version`` to those of an older store."""
        have = {r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE 'registry_%'")}
        if not set(_TABLES) <= have:
            for stmt in _SCHEMA.split(";\n"):
                if stmt.strip():
                    con.execute(stmt)
            if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'gpkg_contents'"
                           ).fetchone():
                for t in _TABLES:
                    con.execute("INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, "
                                "identifier, description, last_change) VALUES (?, "
                                "'attributes', ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                                (t, t, "riskmap hazard registry"))
        for t in _VERSIONED:
            if "version" not in {r[1] for r in con.execute(f"PRAGMA table_info({t})")}:
                con.execute(f"ALTER TABLE {t} ADD COLUMN version INTEGER NOT NULL DEFAULT 1")
        if "responsible" not in {r[1] for r in con.execute(
                "PRAGMA table_info(registry_hazards)")}:
            con.execute("ALTER TABLE registry_hazards ADD COLUMN responsible TEXT")

    @staticmethod
    def _exists(con: sqlite3.Connection) -> bool:
        return con.execute("SELECT 1 FROM sqlite_master WHERE name = 'registry_audit'"
                           ).fetchone() is not None

    @staticmethod
    def _audit_many(con: sqlite3.Connection, actor: Actor, action: str, rtype: str,
                    changes: Sequence[tuple[str, Mapping[str, Any] | None,
                                            Mapping[str, Any] | None]], at: str) -> None:
        """Audit rows ``(record_id, before, after)`` of one action."""
        con.executemany(
            "INSERT INTO registry_audit (at, who, role, action, record_type, record_id, before,"
            " after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(at, actor.who, actor.role, action, rtype, rid, _json(before), _json(after))
             for rid, before, after in changes])

    @classmethod
    def _audit(cls, con: sqlite3.Connection, actor: Actor, action: str, rtype: str, rid: str,
               before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, at: str
               ) -> None:
        cls._audit_many(con, actor, action, rtype, [(rid, before, after)], at)

    @staticmethod
    def _get(con: sqlite3.Connection, table: str, key: str, value: str
             ) -> dict[str, Any] | None:
        cur = con.execute(f"SELECT * FROM {table} WHERE {key} = ?", (value,))
        row = cur.fetchone()
        return None if row is None else _record(cur, row)

    @classmethod
    def _get_hazard(cls, con: sqlite3.Connection, hazard_id: str) -> dict[str, Any] | None:
        return cls._get(con, "registry_hazards", "hazard_id", hazard_id)

    # -- hazards -----------------------------------------------------------------------------
    def hazard(self, hazard_id: str) -> dict[str, Any]:
        """One hazard record (with its ``version``); RecordNotFound when absent."""
        rec = self._reading(lambda con: self._get_hazard(con, hazard_id)
                            if self._exists(con) else None)
        if rec is None:
            raise RecordNotFound(f"no hazard {hazard_id!r} in the registry")
        return rec

    def hazards(self, *, where: Mapping[str, object] | None = None, roles: Sequence[str] | None
                = None, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Hazards matching equality filters (and owned by ``roles``, if given), paged; the
        page and the count come from one snapshot."""
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

        def page(con: sqlite3.Connection) -> tuple[list[dict[str, Any]], int]:
            if not self._exists(con):
                return [], 0
            total = con.execute(f"SELECT COUNT(*) FROM registry_hazards{sql_where}", args
                                ).fetchone()[0]
            cur = con.execute(f"SELECT * FROM registry_hazards{sql_where} ORDER BY hazard_id "
                              "LIMIT ? OFFSET ?", [*args, limit, offset])
            return [_record(cur, r) for r in cur.fetchall()], int(total)

        return self._reading(page)

    def register(self, finding: Mapping[str, Any], *, analysis: str, owner_role: str,
                 actor: Actor, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Register one finding as a hazard at version 1 (idempotent: an existing record is
        returned unchanged)."""
        fid = str(finding["finding_id"])
        with self._write() as con:
            rec = self._get_hazard(con, fid)
            if rec is not None:
                return rec
            now = _now()
            self._insert(con, [finding], analysis=analysis, owner_role=owner_role, now=now)
            if fields:
                self._apply_fields(con, fid, fields, now, bump=False)
            after = self._get_hazard(con, fid)
            assert after is not None
            self._audit(con, actor, "register", "hazard", fid, None, after, now)
            return after

    @staticmethod
    def _insert(con: sqlite3.Connection, findings: Sequence[Mapping[str, Any]], *,
                analysis: str, owner_role: str, now: str) -> None:
        rows = []
        for finding in findings:
            vals = {k: finding.get(k) for k in _FINDING_FIELDS}
            for k, v in list(vals.items()):
                if isinstance(v, float) and v != v:  # NaN
                    vals[k] = None
                elif v is not None and k not in ("lon", "lat"):
                    vals[k] = str(v)
            if not vals.get("kind"):
                raise RegistryError(f"finding {finding.get('finding_id')!r} needs a 'kind'")
            rows.append((str(finding["finding_id"]), analysis, owner_role, now, now, now, now,
                         *(vals[k] for k in _FINDING_FIELDS)))
        con.executemany(
            "INSERT INTO registry_hazards (hazard_id, analysis, owner_role, status, detection, "
            "first_detected, last_detected, created_at, updated_at, version, "
            + ", ".join(_FINDING_FIELDS) + ") VALUES (?, ?, ?, 'identified', 'detected', ?, ?, "
            "?, ?, 1, " + ", ".join("?" * len(_FINDING_FIELDS)) + ")", rows)

    @staticmethod
    def _apply_fields(con: sqlite3.Connection, hazard_id: str, fields: Mapping[str, Any],
                      now: str, *, bump: bool = True) -> None:
        sets, args = [], []
        for k, v in fields.items():
            v = _check_hazard_field(k, v)
            sets.append(f'"{k}" = ?')
            args.append(v)
        if sets:
            con.execute(f"UPDATE registry_hazards SET {', '.join(sets)}, updated_at = ?"
                        + (", version = version + 1" if bump else "")
                        + " WHERE hazard_id = ?", [*args, now, hazard_id])

    def _hazard_for_change(self, con: sqlite3.Connection, hazard_id: str,
                           expected_version: int | None) -> dict[str, Any]:
        before = self._get_hazard(con, hazard_id)
        if before is None:
            raise RecordNotFound(f"no hazard {hazard_id!r} in the registry")
        _check_version("hazard", hazard_id, before, expected_version)
        return before

    def update(self, hazard_id: str, fields: Mapping[str, Any], *, actor: Actor,
               expected_version: int | None = None) -> dict[str, Any]:
        """Change editable fields (department, deadline, measures, notes, attachments,
        severity); EditConflict when ``expected_version`` is stale, IllegalTransition when the
        hazard is closed (销号: its record is final)."""
        with self._write() as con:
            return self._update_on(con, hazard_id, fields, actor=actor,
                                   expected_version=expected_version)

    def _update_on(self, con: sqlite3.Connection, hazard_id: str, fields: Mapping[str, Any],
                   *, actor: Actor, expected_version: int | None, action: str = "update"
                   ) -> dict[str, Any]:
        before = self._hazard_for_change(con, hazard_id, expected_version)
        _check_editable(hazard_id, before)
        now = _now()
        self._apply_fields(con, hazard_id, fields, now)
        after = self._get_hazard(con, hazard_id)
        assert after is not None
        self._audit(con, actor, action, "hazard", hazard_id, before, after, now)
        return after

    def transition(self, hazard_id: str, to: str, *, actor: Actor, note: str | None = None,
                   expected_version: int | None = None) -> dict[str, Any]:
        """Move a hazard to status ``to``; IllegalTransition when the workflow forbids it,
        EditConflict when ``expected_version`` is stale."""
        with self._write() as con:
            return self._transition_on(con, hazard_id, to, actor=actor, note=note,
                                       expected_version=expected_version)

    def _transition_on(self, con: sqlite3.Connection, hazard_id: str, to: str, *,
                       actor: Actor, note: str | None, expected_version: int | None
                       ) -> dict[str, Any]:
        if to not in STATUSES:
            raise RegistryError(f"status {to!r} is unknown; expected one of "
                                + ", ".join(STATUSES))
        before = self._hazard_for_change(con, hazard_id, expected_version)
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
        notes = before.get("notes")
        if note:
            notes = (notes + "\n" if notes else "") + f"[{now} {actor.who}] {note}"
        con.execute("UPDATE registry_hazards SET status = :to, updated_at = :now, "
                    f"notes = :notes, version = version + 1{extra} WHERE hazard_id = :id",
                    {"to": to, "now": now, "id": hazard_id, "notes": notes})
        after = self._get_hazard(con, hazard_id)
        assert after is not None
        self._audit(con, actor, f"status:{cur}->{to}", "hazard", hazard_id, before, after,
                    now)
        return after

    @classmethod
    def _mark(cls, con: sqlite3.Connection, recs: Sequence[Mapping[str, Any]],
              changes: Mapping[str, Any], action: str, actor: Actor, now: str) -> None:
        """Set ``changes`` on the hazards ``recs`` (bumping their versions), audited."""
        if not recs:
            return
        sets = ", ".join(f'"{k}" = ?' for k in changes)
        con.executemany(f"UPDATE registry_hazards SET {sets}, version = version + 1 "
                        "WHERE hazard_id = ?",
                        [(*changes.values(), r["hazard_id"]) for r in recs])
        cls._audit_many(con, actor, action, "hazard",
                        [(r["hazard_id"], r, {**r, **changes, "version": r["version"] + 1})
                         for r in recs], now)

    def sync(self, analysis: str, findings: Sequence[Mapping[str, Any]], *, owner_role: str,
             actor: Actor, register_new: bool = True) -> dict[str, int]:
        """Bring the registry in line with a fresh run of ``analysis``, in one transaction.

        New findings are registered (when ``register_new``); hazards found again are
        re-marked ``detected``; hazards of ``analysis`` not found any more are marked
        ``no_longer_detected`` — never deleted. Those changes bump the version; a hazard
        still detected only gets a new ``last_detected`` (same version, so editors working
        on it meanwhile are not refused). Returns counts per action.
        """
        by_id = {str(f["finding_id"]): f for f in findings}
        with self._write() as con:
            now = _now()
            cur = con.execute("SELECT * FROM registry_hazards WHERE analysis = ? "
                              "ORDER BY hazard_id", (analysis,))
            existing = {rec["hazard_id"]: rec for rec in (_record(cur, r)
                                                          for r in cur.fetchall())}
            still = [hid for hid, rec in existing.items()
                     if hid in by_id and rec["detection"] == "detected"]
            back = [rec for hid, rec in existing.items()
                    if hid in by_id and rec["detection"] != "detected"]
            gone = [rec for hid, rec in existing.items()
                    if hid not in by_id and rec["detection"] == "detected"]
            con.executemany("UPDATE registry_hazards SET last_detected = ? WHERE hazard_id = ?",
                            [(now, hid) for hid in still])
            self._mark(con, back, {"detection": "detected", "last_detected": now,
                                   "updated_at": now}, "redetected", actor, now)
            self._mark(con, gone, {"detection": "no_longer_detected", "updated_at": now},
                       "no_longer_detected", actor, now)
            new: list[Mapping[str, Any]] = []
            if register_new:
                taken = {r[0] for r in con.execute("SELECT hazard_id FROM registry_hazards")}
                new = [f for hid, f in by_id.items() if hid not in taken]
                self._insert(con, new, analysis=analysis, owner_role=owner_role, now=now)
                new_ids = {str(f["finding_id"]) for f in new}
                cur = con.execute("SELECT * FROM registry_hazards WHERE analysis = ? AND "
                                  "created_at = ? ORDER BY hazard_id", (analysis, now))
                self._audit_many(con, actor, "register", "hazard",
                                 [(rec["hazard_id"], None, rec) for rec in
                                  (_record(cur, r) for r in cur.fetchall())
                                  if rec["hazard_id"] in new_ids], now)
        return {"registered": len(new), "still_detected": len(still), "redetected": len(back),
                "no_longer_detected": len(gone)}

    # -- measures (制度措施清单) ---------------------------------------------------------------
    def measures(self, *, roles: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Measures (owned by ``roles``, if given), by id."""
        def rows(con: sqlite3.Connection) -> list[dict[str, Any]]:
            if not self._exists(con):
                return []
            sql = "SELECT * FROM registry_measures"
            args: list[object] = []
            if roles is not None:
                sql += " WHERE owner_role IN (" + ",".join("?" * len(roles)) + ")"
                args.extend(roles)
            cur = con.execute(sql + " ORDER BY measure_id", args)
            return [_record(cur, r) for r in cur.fetchall()]

        return self._reading(rows)

    def measure(self, measure_id: str) -> dict[str, Any]:
        """One measure (with its ``version``); RecordNotFound when absent."""
        rec = self._reading(lambda con: self._get(con, "registry_measures", "measure_id",
                                                  measure_id) if self._exists(con) else None)
        if rec is None:
            raise RecordNotFound(f"no measure {measure_id!r} in the registry")
        return rec

    def put_measure(self, measure_id: str, fields: Mapping[str, Any], *, owner_role: str,
                    actor: Actor, expected_version: int | None = None) -> dict[str, Any]:
        """Create (version 1) or update a measure; EditConflict when ``expected_version`` is
        stale (0: the measure must not exist yet)."""
        with self._write() as con:
            return self._put_measure_on(con, measure_id, fields, owner_role=owner_role,
                                        actor=actor, expected_version=expected_version)

    def _put_measure_on(self, con: sqlite3.Connection, measure_id: str,
                        fields: Mapping[str, Any], *, owner_role: str, actor: Actor,
                        expected_version: int | None) -> dict[str, Any]:
        vals = _check_measure_fields(fields)
        now = _now()
        before = self._get(con, "registry_measures", "measure_id", measure_id)
        _check_version("measure", measure_id, before, expected_version)
        if before is None:
            if not vals.get("title"):
                raise RegistryError("a new measure needs a 'title'")
            con.execute("INSERT INTO registry_measures (measure_id, title, owner_role, "
                        "created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, 0)",
                        (measure_id, vals["title"], owner_role, now, now))
        sets = [f'"{k}" = ?' for k in vals]
        con.execute(f"UPDATE registry_measures SET {', '.join([*sets, 'updated_at = ?'])}, "
                    "version = version + 1 WHERE measure_id = ?",
                    [*vals.values(), now, measure_id])
        after = self._get(con, "registry_measures", "measure_id", measure_id)
        self._audit(con, actor, "create" if before is None else "update", "measure",
                    measure_id, before, after, now)
        assert after is not None
        return after

    # -- several changes in one transaction -------------------------------------------------
    @contextlib.contextmanager
    def batch(self) -> Iterator[RegistryTx]:
        """One write transaction for several changes (all or nothing): the yielded
        :class:`RegistryTx` reads and changes records inside it; an exception raised in the
        block rolls every change back."""
        with self._write() as con:
            yield _GpkgTx(self, con)

    # -- audit and stats ---------------------------------------------------------------------
    def audit(self, *, record_id: str | None = None, limit: int = 100, offset: int = 0
              ) -> tuple[list[dict[str, Any]], int]:
        """Audit rows, oldest first (optionally of one record)."""
        where, args = ("", []) if record_id is None else (" WHERE record_id = ?", [record_id])

        def page(con: sqlite3.Connection) -> tuple[list[dict[str, Any]], int]:
            if not self._exists(con):
                return [], 0
            total = con.execute(f"SELECT COUNT(*) FROM registry_audit{where}", args
                                ).fetchone()[0]
            cur = con.execute(f"SELECT * FROM registry_audit{where} ORDER BY seq LIMIT ? "
                              "OFFSET ?", [*args, limit, offset])
            return [_row_dict(cur, r) for r in cur.fetchall()], int(total)

        return self._reading(page)

    def rectification_stats(self, *, today: dt.date | None = None) -> dict[str, Any]:
        """Rectification rate by kind, department and year, against the plan's targets.

        A hazard counts as rectified once its status is rectified, verified or closed.
        Hazards no longer detected are counted separately (they left the list without a
        recorded rectification).
        """
        today = today or dt.date.today()
        rows = self._reading(lambda con: con.execute(
            "SELECT kind, COALESCE(department, ''), substr(first_detected, 1, 4), status, "
            "detection FROM registry_hazards").fetchall() if self._exists(con) else [])
        return rectification_stats(rows, today=today)


class RegistryTx:
    """The changes possible inside :meth:`Registry.batch` (and ``PgRegistry.batch``): the
    same contracts as the registry's own methods, all in the batch's one transaction."""

    def hazard(self, hazard_id: str) -> dict[str, Any] | None:
        """The hazard as it is inside the transaction (None when absent)."""
        raise NotImplementedError

    def measure(self, measure_id: str) -> dict[str, Any] | None:
        """The measure as it is inside the transaction (None when absent)."""
        raise NotImplementedError

    def update(self, hazard_id: str, fields: Mapping[str, Any], *, actor: Actor,
               expected_version: int | None = None, action: str = "update"
               ) -> dict[str, Any]:
        """As :meth:`Registry.update` (``action`` is the audit log's)."""
        raise NotImplementedError

    def transition(self, hazard_id: str, to: str, *, actor: Actor, note: str | None = None,
                   expected_version: int | None = None) -> dict[str, Any]:
        """As :meth:`Registry.transition`."""
        raise NotImplementedError

    def put_measure(self, measure_id: str, fields: Mapping[str, Any], *, owner_role: str,
                    actor: Actor, expected_version: int | None = None) -> dict[str, Any]:
        """As :meth:`Registry.put_measure`."""
        raise NotImplementedError


class _GpkgTx(RegistryTx):
    def __init__(self, reg: Registry, con: sqlite3.Connection) -> None:
        self.reg = reg
        self.con = con

    def hazard(self, hazard_id: str) -> dict[str, Any] | None:
        return self.reg._get_hazard(self.con, hazard_id)

    def measure(self, measure_id: str) -> dict[str, Any] | None:
        return self.reg._get(self.con, "registry_measures", "measure_id", measure_id)

    def update(self, hazard_id: str, fields: Mapping[str, Any], *, actor: Actor,
               expected_version: int | None = None, action: str = "update"
               ) -> dict[str, Any]:
        return self.reg._update_on(self.con, hazard_id, fields, actor=actor,
                                   expected_version=expected_version, action=action)

    def transition(self, hazard_id: str, to: str, *, actor: Actor, note: str | None = None,
                   expected_version: int | None = None) -> dict[str, Any]:
        return self.reg._transition_on(self.con, hazard_id, to, actor=actor, note=note,
                                       expected_version=expected_version)

    def put_measure(self, measure_id: str, fields: Mapping[str, Any], *, owner_role: str,
                    actor: Actor, expected_version: int | None = None) -> dict[str, Any]:
        return self.reg._put_measure_on(self.con, measure_id, fields, owner_role=owner_role,
                                        actor=actor, expected_version=expected_version)


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
