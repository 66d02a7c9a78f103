"""The hazard registry in a PostGIS store, with row-level safety for concurrent editors.

Same workflow, fields, versions and audit log as the GeoPackage registry
(:mod:`layers.registry`), in the store's schema (tables from migration 2). Records carry a
``version`` that every change bumps. Each change locks its row (``SELECT … FOR UPDATE``), so
concurrent changes are applied one after the other, never over a stale copy; an editor who
passes ``expected_version`` (the version they were shown — the API's ``If-Match``) gets
:class:`~layers.registry.EditConflict` (carrying the current record) when someone else changed
the record in between, instead of silently overwriting that change. A change waits for a row
lock at most the busy timeout (``RISKMAP_BUSY_TIMEOUT``, 30 s), then raises
:class:`~layers.errors.StoreBusy`. ``sync`` is one transaction; readers (MVCC) never wait.

Example
-------
>>> reg = PgRegistry(PostGISStore("postgresql://riskmap@127.0.0.1:55432/riskmap_test"))
>>> rec = reg.hazard("occupancy:P-07:B-0042")
>>> reg.update(rec["hazard_id"], {"department": "规划局"}, actor=Actor("li", "planner"),
...            expected_version=rec["version"])
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from layers.errors import StoreBusy
from layers.postgis import PostGISStore
from layers.registry import (
    _FINDING_FIELDS,
    HAZARD_FIELDS,
    STATUSES,
    TRANSITIONS,
    Actor,
    EditConflict,
    IllegalTransition,
    RecordNotFound,
    RegistryError,
    RegistryTx,
    _check_editable,
    _check_hazard_field,
    _check_measure_fields,
    _check_version,
    _now,
    rectification_stats,
    resolve_busy_timeout,
)

__all__ = ["EditConflict", "PgRegistry", "registry_for"]


def registry_for(store: Any) -> Any:
    """The registry of ``store``: :class:`PgRegistry` for PostGIS, else the GeoPackage one."""
    if isinstance(store, PostGISStore):
        return PgRegistry(store)
    from layers.registry import Registry

    return Registry(store.path)


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(dict(value), ensure_ascii=False, default=str)


class PgRegistry:
    """The registry tables in ``store``'s schema (created by ``riskmap db init``)."""

    def __init__(self, store: PostGISStore, *, busy_timeout: float | None = None) -> None:
        self.store = store
        self.busy_timeout = resolve_busy_timeout(busy_timeout)

    # -- plumbing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _cursor(self, *, write: bool = False) -> Iterator[Any]:
        """A dict-row cursor in one transaction (committed on success); a ``write`` waits
        for row locks at most the busy timeout, then raises StoreBusy (nothing changed)."""
        import psycopg
        from psycopg.rows import dict_row

        self.store._ensure_ready()
        try:
            with self.store.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
                if write:
                    cur.execute("SELECT set_config('lock_timeout', %s, true)",
                                (f"{max(1, round(self.busy_timeout * 1000))}ms",))
                yield cur
        except psycopg.errors.LockNotAvailable as exc:
            raise StoreBusy(f"store {self.store.url} is busy: another writer held the registry "
                            f"for more than {self.busy_timeout:g} s; nothing was changed, "
                            "retry") from exc

    @staticmethod
    def _get(cur: Any, table: str, key: str, value: str, *, lock: bool = False) -> dict | None:
        cur.execute(f"SELECT * FROM {table} WHERE {key} = %s" + (" FOR UPDATE" if lock else ""),
                    (value,))
        row = cur.fetchone()
        return None if row is None else dict(row)

    @staticmethod
    def _audit_many(cur: Any, actor: Actor, action: str, rtype: str,
                    changes: Sequence[tuple[str, Mapping[str, Any] | None,
                                            Mapping[str, Any] | None]], at: str) -> None:
        """Audit rows ``(record_id, before, after)`` of one action."""
        if changes:
            cur.executemany(
                "INSERT INTO registry_audit (at, who, role, action, record_type, record_id, "
                "before, after) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)",
                [(at, actor.who, actor.role, action, rtype, rid, _json(before), _json(after))
                 for rid, before, after in changes])

    @classmethod
    def _audit(cls, cur: Any, actor: Actor, action: str, rtype: str, rid: str,
               before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
               at: str) -> None:
        cls._audit_many(cur, actor, action, rtype, [(rid, before, after)], at)

    # -- hazards -----------------------------------------------------------------------------
    def hazard(self, hazard_id: str) -> dict[str, Any]:
        """One hazard record (with its ``version``); RecordNotFound when absent."""
        with self._cursor() as cur:
            rec = self._get(cur, "registry_hazards", "hazard_id", hazard_id)
        if rec is None:
            raise RecordNotFound(f"no hazard {hazard_id!r} in the registry")
        return rec

    def hazards(self, *, where: Mapping[str, object] | None = None,
                roles: Sequence[str] | None = None, limit: int = 100, offset: int = 0
                ) -> tuple[list[dict[str, Any]], int]:
        """Hazards matching equality filters (and owned by ``roles``, if given), paged."""
        clauses, args = [], []
        for k, v in (where or {}).items():
            if k not in HAZARD_FIELDS:
                raise RegistryError(f"unknown hazard field {k!r}")
            clauses.append(f'"{k}" = %s')
            args.append(v)
        if roles is not None:
            clauses.append("owner_role = ANY(%s)")
            args.append(list(roles))
        sql_where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._cursor() as cur:
            cur.execute(f"SELECT count(*) AS n FROM registry_hazards{sql_where}", args)
            total = cur.fetchone()["n"]
            cur.execute(f"SELECT * FROM registry_hazards{sql_where} ORDER BY hazard_id "
                        "LIMIT %s OFFSET %s", [*args, limit, offset])
            rows = [dict(r) for r in cur.fetchall()]
        return rows, int(total)

    @staticmethod
    def _insert(cur: Any, findings: Sequence[Mapping[str, Any]], *, analysis: str,
                owner_role: str, now: str) -> list[dict[str, Any]]:
        """Insert the findings not registered yet (by any analysis); return those rows."""
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
        if not rows:
            return []
        cur.executemany(
            "INSERT INTO registry_hazards (hazard_id, analysis, owner_role, status, detection, "
            "first_detected, last_detected, created_at, updated_at, "
            + ", ".join(_FINDING_FIELDS) + ") VALUES (%s, %s, %s, 'identified', 'detected', "
            "%s, %s, %s, %s, " + ", ".join(["%s"] * len(_FINDING_FIELDS)) + ") "
            "ON CONFLICT (hazard_id) DO NOTHING RETURNING *", rows, returning=True)
        inserted: list[dict[str, Any]] = []
        while True:
            inserted.extend(dict(r) for r in cur.fetchall())
            if not cur.nextset():
                return inserted

    @staticmethod
    def _apply_fields(cur: Any, hazard_id: str, fields: Mapping[str, Any], now: str) -> None:
        sets, args = [], []
        for k, v in fields.items():
            v = _check_hazard_field(k, v)
            sets.append(f'"{k}" = %s' + ("::jsonb" if k == "attachments" else ""))
            args.append(v)
        if sets:
            cur.execute(f"UPDATE registry_hazards SET {', '.join(sets)}, updated_at = %s, "
                        "version = version + 1 WHERE hazard_id = %s", [*args, now, hazard_id])

    def register(self, finding: Mapping[str, Any], *, analysis: str, owner_role: str,
                 actor: Actor, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Register one finding as a hazard (idempotent: an existing record is returned)."""
        fid = str(finding["finding_id"])
        with self._cursor(write=True) as cur:
            now = _now()
            if not self._insert(cur, [finding], analysis=analysis, owner_role=owner_role,
                                now=now):
                rec = self._get(cur, "registry_hazards", "hazard_id", fid)
                assert rec is not None
                return rec
            if fields:
                self._apply_fields(cur, fid, fields, now)
                cur.execute("UPDATE registry_hazards SET version = 1 WHERE hazard_id = %s",
                            (fid,))
            after = self._get(cur, "registry_hazards", "hazard_id", fid)
            self._audit(cur, actor, "register", "hazard", fid, None, after, now)
            assert after is not None
            return after

    def update(self, hazard_id: str, fields: Mapping[str, Any], *, actor: Actor,
               expected_version: int | None = None) -> dict[str, Any]:
        """Change editable fields; EditConflict when ``expected_version`` is stale."""
        with self._cursor(write=True) as cur:
            return self._update_on(cur, hazard_id, fields, actor=actor,
                                   expected_version=expected_version)

    def _update_on(self, cur: Any, hazard_id: str, fields: Mapping[str, Any], *,
                   actor: Actor, expected_version: int | None, action: str = "update"
                   ) -> dict[str, Any]:
        before = self._get(cur, "registry_hazards", "hazard_id", hazard_id, lock=True)
        if before is None:
            raise RecordNotFound(f"no hazard {hazard_id!r} in the registry")
        _check_version("hazard", hazard_id, before, expected_version)
        _check_editable(hazard_id, before)
        now = _now()
        self._apply_fields(cur, hazard_id, fields, now)
        after = self._get(cur, "registry_hazards", "hazard_id", hazard_id)
        self._audit(cur, actor, action, "hazard", hazard_id, before, after, now)
        assert after is not None
        return after

    def transition(self, hazard_id: str, to: str, *, actor: Actor, note: str | None = None,
                   expected_version: int | None = None) -> dict[str, Any]:
        """Move a hazard to status ``to``; IllegalTransition when the workflow forbids it,
        EditConflict when ``expected_version`` is stale."""
        with self._cursor(write=True) as cur:
            return self._transition_on(cur, hazard_id, to, actor=actor, note=note,
                                       expected_version=expected_version)

    def _transition_on(self, cur: Any, hazard_id: str, to: str, *, actor: Actor,
                       note: str | None, expected_version: int | None) -> dict[str, Any]:
        if to not in STATUSES:
            raise RegistryError(f"status {to!r} is unknown; expected one of "
                                + ", ".join(STATUSES))
        before = self._get(cur, "registry_hazards", "hazard_id", hazard_id, lock=True)
        if before is None:
            raise RecordNotFound(f"no hazard {hazard_id!r} in the registry")
        _check_version("hazard", hazard_id, before, expected_version)
        current = before["status"]
        if to not in TRANSITIONS[current]:
            allowed = ", ".join(TRANSITIONS[current]) or "none (closed)"
            raise IllegalTransition(f"hazard {hazard_id!r} is {current}; it cannot become "
                                    f"{to} (allowed next: {allowed})")
        now = _now()
        extra = ""
        if to == "rectified":
            extra = ", rectified_at = %(now)s"
        elif to == "rectifying" and current == "rectified":
            extra = ", rectified_at = NULL"
        elif to == "closed":
            extra = ", closed_at = %(now)s"
        notes = before.get("notes")
        if note:
            notes = ((notes + "\n") if notes else "") + f"[{now} {actor.who}] {note}"
        cur.execute("UPDATE registry_hazards SET status = %(to)s, updated_at = %(now)s, "
                    f"notes = %(notes)s, version = version + 1{extra} "
                    "WHERE hazard_id = %(id)s",
                    {"to": to, "now": now, "id": hazard_id, "notes": notes})
        after = self._get(cur, "registry_hazards", "hazard_id", hazard_id)
        self._audit(cur, actor, f"status:{current}->{to}", "hazard", hazard_id, before,
                    after, now)
        assert after is not None
        return after

    def sync(self, analysis: str, findings: Sequence[Mapping[str, Any]], *, owner_role: str,
             actor: Actor, register_new: bool = True) -> dict[str, int]:
        """Bring the registry in line with a fresh run of ``analysis`` (see
        :meth:`layers.registry.Registry.sync`) in one transaction; the analysis's rows are
        locked meanwhile."""
        by_id = {str(f["finding_id"]): f for f in findings}
        with self._cursor(write=True) as cur:
            now = _now()
            cur.execute("SELECT * FROM registry_hazards WHERE analysis = %s ORDER BY hazard_id "
                        "FOR UPDATE", (analysis,))
            existing = {r["hazard_id"]: dict(r) for r in cur.fetchall()}
            still = [hid for hid, rec in existing.items()
                     if hid in by_id and rec["detection"] == "detected"]
            back = {hid: rec for hid, rec in existing.items()
                    if hid in by_id and rec["detection"] != "detected"}
            gone = {hid: rec for hid, rec in existing.items()
                    if hid not in by_id and rec["detection"] == "detected"}
            if still:
                cur.execute("UPDATE registry_hazards SET last_detected = %s "
                            "WHERE hazard_id = ANY(%s)", (now, still))
            self._mark(cur, back, "detected", "redetected", actor, now)
            self._mark(cur, gone, "no_longer_detected", "no_longer_detected", actor, now)
            new: list[dict[str, Any]] = []
            if register_new:
                new = self._insert(cur, [f for hid, f in by_id.items() if hid not in existing],
                                   analysis=analysis, owner_role=owner_role, now=now)
                self._audit_many(cur, actor, "register", "hazard",
                                 [(r["hazard_id"], None, r)
                                  for r in sorted(new, key=lambda r: r["hazard_id"])], now)
        return {"registered": len(new), "still_detected": len(still), "redetected": len(back),
                "no_longer_detected": len(gone)}

    @classmethod
    def _mark(cls, cur: Any, recs: Mapping[str, Mapping[str, Any]], detection: str,
              action: str, actor: Actor, now: str) -> None:
        """Set ``detection`` on the hazards ``recs`` (bumping their versions), audited."""
        if not recs:
            return
        seen = ", last_detected = %(now)s" if detection == "detected" else ""
        cur.execute("UPDATE registry_hazards SET detection = %(d)s, updated_at = %(now)s, "
                    f"version = version + 1{seen} WHERE hazard_id = ANY(%(ids)s) RETURNING *",
                    {"d": detection, "now": now, "ids": list(recs)})
        cls._audit_many(cur, actor, action, "hazard",
                        [(r["hazard_id"], recs[r["hazard_id"]], dict(r))
                         for r in sorted(cur.fetchall(), key=lambda r: r["hazard_id"])], now)

    # -- measures (制度措施清单) ---------------------------------------------------------------
    def measures(self, *, roles: Sequence[str] | None = None) -> list[dict[str, Any]]:
        with self._cursor() as cur:
            if roles is None:
                cur.execute("SELECT * FROM registry_measures ORDER BY measure_id")
            else:
                cur.execute("SELECT * FROM registry_measures WHERE owner_role = ANY(%s) "
                            "ORDER BY measure_id", (list(roles),))
            return [dict(r) for r in cur.fetchall()]

    def measure(self, measure_id: str) -> dict[str, Any]:
        with self._cursor() as cur:
            rec = self._get(cur, "registry_measures", "measure_id", measure_id)
        if rec is None:
            raise RecordNotFound(f"no measure {measure_id!r} in the registry")
        return rec

    def put_measure(self, measure_id: str, fields: Mapping[str, Any], *, owner_role: str,
                    actor: Actor, expected_version: int | None = None) -> dict[str, Any]:
        """Create (version 1) or update a measure; EditConflict when ``expected_version`` is
        stale (0: the measure must not exist yet)."""
        with self._cursor(write=True) as cur:
            return self._put_measure_on(cur, measure_id, fields, owner_role=owner_role,
                                        actor=actor, expected_version=expected_version)

    def _put_measure_on(self, cur: Any, measure_id: str, fields: Mapping[str, Any], *,
                        owner_role: str, actor: Actor, expected_version: int | None
                        ) -> dict[str, Any]:
        vals = _check_measure_fields(fields)
        now = _now()
        if not vals.get("title"):
            cur.execute("SELECT 1 FROM registry_measures WHERE measure_id = %s",
                        (measure_id,))
            if cur.fetchone() is None:
                raise RegistryError("a new measure needs a 'title'")
        cur.execute("INSERT INTO registry_measures (measure_id, title, owner_role, "
                    "created_at, updated_at, version) VALUES (%s, %s, %s, %s, %s, 0) "
                    "ON CONFLICT (measure_id) DO NOTHING",
                    (measure_id, vals.get("title") or "", owner_role, now, now))
        created = bool(cur.rowcount)
        before = self._get(cur, "registry_measures", "measure_id", measure_id, lock=True)
        assert before is not None
        _check_version("measure", measure_id, None if created else before,
                       expected_version)
        sets = [f'"{k}" = %s' + ("::jsonb" if k == "hazard_ids" else "") for k in vals]
        cur.execute(f"UPDATE registry_measures SET {', '.join([*sets, 'updated_at = %s'])}"
                    ", version = version + 1 WHERE measure_id = %s",
                    [*vals.values(), now, measure_id])
        after = self._get(cur, "registry_measures", "measure_id", measure_id)
        self._audit(cur, actor, "create" if created else "update", "measure", measure_id,
                    None if created else before, after, now)
        assert after is not None
        return after

    # -- several changes in one transaction -------------------------------------------------
    @contextlib.contextmanager
    def batch(self) -> Iterator[RegistryTx]:
        """One transaction for several changes (all or nothing), as
        :meth:`layers.registry.Registry.batch`; each record read is locked (FOR UPDATE)."""
        with self._cursor(write=True) as cur:
            yield _PgTx(self, cur)

    # -- audit and stats ---------------------------------------------------------------------
    def audit(self, *, record_id: str | None = None, limit: int = 100, offset: int = 0
              ) -> tuple[list[dict[str, Any]], int]:
        """Audit rows, oldest first (optionally of one record)."""
        where, args = ("", []) if record_id is None else (" WHERE record_id = %s", [record_id])
        with self._cursor() as cur:
            cur.execute(f"SELECT count(*) AS n FROM registry_audit{where}", args)
            total = cur.fetchone()["n"]
            cur.execute(f"SELECT * FROM registry_audit{where} ORDER BY seq LIMIT %s OFFSET %s",
                        [*args, limit, offset])
            return [dict(r) for r in cur.fetchall()], int(total)

    def rectification_stats(self, *, today: dt.date | None = None) -> dict[str, Any]:
        """Rectification rate by kind, department and year, against the plan's targets (as
        :meth:`layers.registry.Registry.rectification_stats`)."""
        today = today or dt.date.today()
        with self._cursor() as cur:
            cur.execute("SELECT kind, COALESCE(department, '') AS dep, "
                        "substr(first_detected, 1, 4) AS year, status, detection "
                        "FROM registry_hazards")
            rows = [(r["kind"], r["dep"], r["year"], r["status"], r["detection"])
                    for r in cur.fetchall()]

        return rectification_stats(rows, today=today)


class _PgTx(RegistryTx):
    def __init__(self, reg: PgRegistry, cur: Any) -> None:
        self.reg = reg
        self.cur = cur

    def hazard(self, hazard_id: str) -> dict[str, Any] | None:
        return self.reg._get(self.cur, "registry_hazards", "hazard_id", hazard_id, lock=True)

    def measure(self, measure_id: str) -> dict[str, Any] | None:
        return self.reg._get(self.cur, "registry_measures", "measure_id", measure_id,
                             lock=True)

    def update(self, hazard_id: str, fields: Mapping[str, Any], *, actor: Actor,
               expected_version: int | None = None, action: str = "update"
               ) -> dict[str, Any]:
        return self.reg._update_on(self.cur, hazard_id, fields, actor=actor,
                                   expected_version=expected_version, action=action)

    def transition(self, hazard_id: str, to: str, *, actor: Actor, note: str | None = None,
                   expected_version: int | None = None) -> dict[str, Any]:
        return self.reg._transition_on(self.cur, hazard_id, to, actor=actor, note=note,
                                       expected_version=expected_version)

    def put_measure(self, measure_id: str, fields: Mapping[str, Any], *, owner_role: str,
                    actor: Actor, expected_version: int | None = None) -> dict[str, Any]:
        return self.reg._put_measure_on(self.cur, measure_id, fields, owner_role=owner_role,
                                        actor=actor, expected_version=expected_version)
