"""``riskmap db init --store postgresql://…``: create the PostGIS schema and apply migrations."""

from __future__ import annotations

import argparse
import os

__all__ = ["register", "run_init"]


def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    from api.commands import group

    db = group(sub, groups, "db", "manage a PostGIS store (schema, migrations)")
    p = db.add_parser("init", help="create the schema, catalogue and indexes; apply migrations",
                      description="Create the store's schema (URL parameter ?schema=, default "
                      "riskmap) with the layer catalogue, hazard registry and audit log, and "
                      "apply pending versioned migrations. Safe to run again.")
    p.add_argument("--store", default=None,
                   help="postgresql://user@host:port/db[?schema=NAME] (default: $RISKMAP_STORE)")
    p.set_defaults(func=run_init)


def run_init(args: argparse.Namespace) -> int:
    from layers.errors import StoreError

    url = args.store or os.environ.get("RISKMAP_STORE", "")
    if not url.startswith(("postgresql://", "postgres://")):
        raise StoreError(f"riskmap db init needs a postgresql:// store URL; got {url!r} "
                         "(GeoPackage stores need no initialisation)")
    from layers.migrations import LATEST
    from layers.postgis import init_store

    store, applied = init_store(url)
    if applied:
        print(f"riskmap: {store.url} schema {store.schema!r}: applied {', '.join(applied)} "
              f"(now at version {LATEST})")
    else:
        print(f"riskmap: {store.url} schema {store.schema!r} is up to date (version {LATEST})")
    return 0
