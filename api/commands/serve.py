"""``riskmap serve --store STORE [--rules FILE] [--tz ZONE] [--host H] [--port P]``: serve the
API with uvicorn. The API, the served maps and registry sync apply the district rule file
(``--rules`` or $RISKMAP_RULES) and judge times in the district zone (``--tz`` or
$RISKMAP_TIMEZONE, default Asia/Shanghai)."""

from __future__ import annotations

import argparse
import re
import sys
from urllib.parse import urlsplit, urlunsplit

from api.commands import add_district

__all__ = ["masked_url", "register", "run"]

_SECRET_PARAM = re.compile(r"((?:^|&)(?:password|sslpassword)=)[^&]*", re.IGNORECASE)


def masked_url(url: str) -> str:
    """``url`` safe to print: a password in the user part or in a ``password=`` /
    ``sslpassword=`` parameter becomes ``***``; a path is returned as given."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        user, _, hostport = netloc.rpartition("@")
        name, sep, _pw = user.partition(":")
        netloc = f"{name}{':***' if sep else ''}@{hostport}"
    query = _SECRET_PARAM.sub(r"\1***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="serve the OGC API, analyses, registry and maps",
                       description="Serve the store over HTTP (OGC API – Features, analysis "
                       "endpoints, hazard registry). API keys come from RISKMAP_API_KEYS.")
    p.add_argument("--store", default=None,
                   help="GeoPackage path or postgresql:// URL (default: $RISKMAP_STORE or "
                        "data/demo.gpkg)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface (default 127.0.0.1); also added to the trusted hosts "
                        "($RISKMAP_TRUSTED_HOSTS, default localhost, 127.0.0.1, ::1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--log-level", default="info",
                   choices=("critical", "error", "warning", "info", "debug"))
    add_district(p, tz=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.settings import DEFAULT_TRUSTED_HOSTS, Settings
    from layers.errors import InputFileError, StoreError
    from layers.store import open_store

    given = {k: v for k, v in (("store", args.store), ("rules", getattr(args, "rules", None)),
                               ("timezone", getattr(args, "tz", None))) if v}
    try:
        settings = Settings(**given)
    except ValueError as exc:  # pydantic's ValidationError: a bad --rules / --tz / variable
        raise InputFileError(f"riskmap serve: {exc}") from None
    host = args.host.strip().strip("[]").lower()
    if host not in ("0.0.0.0", "::") and host not in settings.trusted_hosts:
        settings.trusted_hosts = [*settings.trusted_hosts, host]  # the name it listens on
    shown = masked_url(settings.store)
    store = open_store(settings.store)
    if not store.layers():
        raise StoreError(f"store {shown} is empty or missing; build one with "
                         "`riskmap demo --out data/demo.gpkg` or `riskmap import`")
    app = create_app(settings, store=store)
    district = app.state.service.district
    print(f"riskmap: serving {shown} on http://{args.host}:{args.port}/ "
          f"({settings.key_count} API key(s); anonymous = {settings.anonymous_role}; "
          f"trusted hosts {', '.join(settings.trusted_hosts)}; "
          f"rules {district.rules_label}; time zone {district.timezone})")
    if host in ("0.0.0.0", "::") and settings.trusted_hosts == list(DEFAULT_TRUSTED_HOSTS):
        print("riskmap: listening on every interface but answering only to "
              f"{', '.join(settings.trusted_hosts)}: set RISKMAP_TRUSTED_HOSTS to the names "
              "clients use", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
