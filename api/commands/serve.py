"""``riskmap serve --store STORE [--rules FILE] [--tz ZONE] [--host H] [--port P]``: serve the
API with uvicorn. The API, the served maps and registry sync apply the district rule file
(``--rules`` or $RISKMAP_RULES) and judge times in the district zone (``--tz`` or
$RISKMAP_TIMEZONE, default Asia/Shanghai)."""

from __future__ import annotations

import argparse

from api.commands import add_district

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="serve the OGC API, analyses, registry and maps",
                       description="Serve the store over HTTP (OGC API – Features, analysis "
                       "endpoints, hazard registry). API keys come from RISKMAP_API_KEYS.")
    p.add_argument("--store", default=None,
                   help="GeoPackage path or postgresql:// URL (default: $RISKMAP_STORE or "
                        "data/demo.gpkg)")
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--log-level", default="info",
                   choices=("critical", "error", "warning", "info", "debug"))
    add_district(p, tz=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from layers.errors import InputFileError, StoreError
    from layers.store import open_store

    given = {k: v for k, v in (("store", args.store), ("rules", getattr(args, "rules", None)),
                               ("timezone", getattr(args, "tz", None))) if v}
    try:
        settings = Settings(**given)
    except ValueError as exc:  # pydantic's ValidationError: a bad --rules / --tz / variable
        raise InputFileError(f"riskmap serve: {exc}") from None
    store = open_store(settings.store)
    if not store.layers():
        raise StoreError(f"store {settings.store} is empty or missing; build one with "
                         "`riskmap demo --out data/demo.gpkg` or `riskmap import`")
    app = create_app(settings, store=store)
    district = app.state.service.district
    print(f"riskmap: serving {settings.store} on http://{args.host}:{args.port}/ "
          f"({settings.key_count} API key(s); anonymous = {settings.anonymous_role}; "
          f"rules {district.rules_label}; time zone {district.timezone})")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
