"""Versioned SQL migrations of the PostGIS store.

Each migration is a module ``vNNNN_<name>.py`` holding ``SQL`` (run with ``search_path`` set to
the store's schema, then ``public`` for PostGIS). :func:`apply_migrations` runs the pending ones
in order, each in the caller's transaction, under an advisory lock so that concurrent
``riskmap db init`` runs do not race, and records them in ``riskmap_migrations``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["LATEST", "MIGRATIONS", "Migration", "applied_versions", "apply_migrations"]

_NAME = re.compile(r"^v(\d{4})_(\w+)$")


@dataclass(frozen=True)
class Migration:
    """One migration: ``version`` (1, 2, …), ``name`` and its ``sql``."""

    version: int
    name: str
    sql: str


def _discover() -> tuple[Migration, ...]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        m = _NAME.match(info.name)
        if m is None:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(Migration(int(m.group(1)), m.group(2), str(module.SQL)))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps; found {versions}")
    return tuple(found)


MIGRATIONS: tuple[Migration, ...] = _discover()
LATEST: int = MIGRATIONS[-1].version if MIGRATIONS else 0

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS riskmap_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def applied_versions(cur: Any) -> set[int]:
    """Versions already applied in the current ``search_path`` schema (empty if none)."""
    cur.execute("SELECT to_regclass('riskmap_migrations') IS NOT NULL")
    if not cur.fetchone()[0]:
        return set()
    cur.execute("SELECT version FROM riskmap_migrations")
    return {int(row[0]) for row in cur.fetchall()}


def apply_migrations(cur: Any, schema: str) -> list[Migration]:
    """Create ``schema`` if needed and apply the pending migrations; return those applied.

    ``cur`` is a psycopg cursor inside a transaction; the caller commits. The search path is
    set (transaction-local) to ``schema, public``.
    """
    from psycopg import sql

    # One advisory lock per schema serialises concurrent initialisations.
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"riskmap-migrate:{schema}",))
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    cur.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema)))
    cur.execute(_BOOKKEEPING)
    done = applied_versions(cur)
    applied = []
    for mig in MIGRATIONS:
        if mig.version in done:
            continue
        cur.execute(mig.sql)
        cur.execute("INSERT INTO riskmap_migrations (version, name) VALUES (%s, %s)",
                    (mig.version, mig.name))
        applied.append(mig)
    return applied
