"""``riskmap route``, ``riskmap check routes`` and ``riskmap publish routes``.

``riskmap route --store STORE --from LON,LAT --to LON,LAT [--at ISO-TIME] [--alternatives K]
[--objective time|distance|risk] [--permit ZONE ...] [--weight-t T] [--height-m M]
--out route.geojson`` routes a hazmat vehicle and writes the alternatives, the snapped ends and
the roads refused on the direct way (with the zone/rule/hours that refuse them).

``riskmap check routes --store STORE --out FILE`` checks every designated route
(``hazmat_routes``) against the zones, ``hazmat = no`` roads and the network.

``riskmap publish routes --store STORE --out FILE`` exports the published route set with the
restricted zones and their hours (RFC 7946 GeoJSON, GeoPackage or CSV) for publication; like
``riskmap publish notice`` it is refused (exit 2) while a published route has a critical
route-check finding, unless ``--override "reason"`` (written in the route's ``override`` field).

``--at`` is read in the district's time zone (``--tz``, $RISKMAP_TIMEZONE, default
Asia/Shanghai) unless it carries an offset; without ``--at`` the route is judged *now* in the
district. The output says which time and which rules (file hash) were applied. Routing runs in
:class:`api.service.AnalysisService` (one network per store version and rules version, shared
with the API); this module only parses the arguments and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from api.commands import add_district, group, note_absent, service, stamp
from api.commands.options import FINDING_FORMATS, OBJECTIVES
from layers.errors import InputFileError

__all__ = ["parse_lonlat", "register"]


def __getattr__(name: str) -> Any:
    if name in ("published_routes",):  # moved to api.runs.routes; resolved lazily
        from api.runs import routes

        return getattr(routes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_lonlat(text: str, what: str) -> tuple[float, float]:
    """``"117.2,34.8"`` → ``(117.2, 34.8)``; raises InputFileError saying what was wrong."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        lon, lat = float(parts[0]), float(parts[1])
    except ValueError:
        raise InputFileError(f"{what} is {text!r}; expected LON,LAT in degrees, "
                             "e.g. 117.21,34.86") from None
    return lon, lat


# --- CLI ---------------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    """Add ``route``, ``check routes`` and ``publish routes``."""
    p = sub.add_parser(
        "route", help="route a hazmat vehicle between two points (zones, hours, risk)",
        description="Route a hazardous-goods vehicle from --from to --to at --at: forbidden "
        "zones during their hours, permit zones without a permit and hazmat=no roads are "
        "refused, avoid zones cost their penalty, speeds are capped at 60/80 km/h (2019 "
        "measures Art 46). Writes up to --alternatives genuinely different routes with length, "
        "time, risk score and the zones passed, the snapped ends and the roads refused on the "
        "direct way with the reason.")
    p.add_argument("--store", required=True, help="store path (*.gpkg) or postgresql:// URL")
    p.add_argument("--from", dest="origin", required=True, metavar="LON,LAT",
                   help="origin in lon/lat (EPSG:4490)")
    p.add_argument("--to", dest="destination", required=True, metavar="LON,LAT",
                   help="destination in lon/lat (EPSG:4490)")
    p.add_argument("--at", metavar="ISO-TIME",
                   help="departure in the district's time zone, e.g. 2024-05-06T08:30 or 08:30, "
                   "or with an offset (2024-05-06T00:30Z); default now in the district; 'any' = "
                   "every zone counts as in force")
    p.add_argument("--alternatives", type=int, default=1, metavar="K",
                   help="up to K different routes (default 1)")
    p.add_argument("--objective", choices=OBJECTIVES, default="time",
                   help="rank by time (default), distance or risk (exposure × km)")
    p.add_argument("--permit", action="extend", nargs="+", default=[], metavar="ZONE",
                   help="id(s) of permit zones the vehicle holds a permit for")
    p.add_argument("--weight-t", type=float, help="vehicle gross weight (t)")
    p.add_argument("--height-m", type=float, help="vehicle height (m)")
    add_district(p, tz=True)
    p.add_argument("--out", required=True, type=Path, help="output: " + ", ".join(FINDING_FORMATS))
    p.set_defaults(func=_cmd_route)

    check = group(sub, groups, "check", "run a check and write its findings")
    c = check.add_parser("routes", help="check the designated hazmat routes",
                         description="Every stretch of a hazmat_routes line inside a forbidden "
                         "or permit zone during its hours, over a bridge/tunnel zone, along a "
                         "hazmat=no road or off the road network, with chainage.")
    c.add_argument("--store", required=True, help="store path (*.gpkg) or postgresql:// URL")
    add_district(c)
    c.add_argument("--out", required=True, type=Path, help="findings file: " + ", ".join(FINDING_FORMATS))
    c.set_defaults(func=_cmd_check)

    pub = group(sub, groups, "publish", "export a layer set for publication")
    q = pub.add_parser("routes", help="published hazmat routes with the restricted zones and hours",
                       description="The routes with status = published and every restricted "
                       "zone with its rule and hours, for publishing (GeoJSON RFC 7946).")
    q.add_argument("--store", required=True, help="store path (*.gpkg) or postgresql:// URL")
    q.add_argument("--out", required=True, type=Path, help="output: " + ", ".join(FINDING_FORMATS))
    q.add_argument("--override", default=None, metavar="REASON",
                   help="publish although a route has a critical route-check finding (refused "
                        "otherwise); the reason is written in its 'override' field")
    add_district(q)
    q.set_defaults(func=_cmd_publish)


def _check_out(path: Path) -> None:
    if path.suffix.lower() not in FINDING_FORMATS:
        raise InputFileError(f"--out {path}: extension {path.suffix or '(none)'!r} is not "
                             f"supported; use one of {', '.join(FINDING_FORMATS)}")


def _cmd_route(args: argparse.Namespace) -> int:
    from geo.routing import Vehicle
    from layers.writers import write_findings

    _check_out(args.out)
    if args.alternatives < 1:
        raise InputFileError(f"--alternatives is {args.alternatives}; expected a number >= 1")
    o = parse_lonlat(args.origin, "--from")
    d = parse_lonlat(args.destination, "--to")
    svc = service(args)
    at = svc.district.resolve_at(args.at)  # refuses a malformed --at before any work
    vehicle = Vehicle(weight_t=args.weight_t, height_m=args.height_m)
    ans = svc.route(o, d, "any" if at is None else at, alternatives=args.alternatives,
                    objective=args.objective, permits=tuple(args.permit), vehicle=vehicle)
    res = ans.result
    write_findings(res.to_frame(), args.out, layer="route")
    print(f"{len(res.routes)} route(s) at {svc.district.describe_at(ans.at)}, objective "
          f"{res.objective}; origin snapped {res.origin['snap_m']:.1f} m to "
          f"{res.origin['road_id']}, destination {res.destination['snap_m']:.1f} m to "
          f"{res.destination['road_id']}")
    print(f"{'rank':>4} {'km':>8} {'min':>7} {'risk':>10} {'stretch':>7}  zones")
    for r in res.routes.itertuples():
        print(f"{r.rank:>4} {r.length_m / 1000:>8.2f} {r.time_s / 60:>7.1f} {r.risk_score:>10.1f} "
              f"{r.stretch:>7.2f}  {r.zones or '-'}")
    for r in res.refused.itertuples():
        print(f"refused: {r.message} ({r.length_m:.0f} m)")
    print(f"written: {args.out}")
    print(stamp(svc, ans.at, with_at=True))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    import pandas as pd

    from layers.writers import write_findings

    _check_out(args.out)
    svc = service(args)
    store = svc.store
    findings = svc.route_check()
    note_absent(store, {"restricted_zones": "crossings of forbidden, permit, bridge and tunnel "
                                            "zones",
                        "roads": "hazmat=no roads and leaving the road network"})
    write_findings(findings, args.out, layer="findings")
    counts = findings.groupby("kind").size() if len(findings) else pd.Series(dtype=int)
    print(f"{len(findings)} finding(s) on designated hazmat routes")
    for kind, n in counts.items():
        print(f"  {kind:<32} {n}")
    for r in findings.itertuples():
        print(f"  {r.severity:<8} {r.message_en}")
    print(f"written: {args.out}")
    print(stamp(svc))
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from api.runs.routes import published_routes
    from layers.writers import write_findings

    _check_out(args.out)
    from api.runs.notice import require_publishable

    svc = service(args)  # the route check first: a critical finding refuses (exit 2)
    check = require_publishable(svc, override=args.override)
    out = published_routes(svc.store)
    if check.blockers:
        hit = {b.route_id for b in check.blockers}
        out["override"] = [" ".join(args.override.split()) if f == "route" and str(i) in hit
                           else None for f, i in zip(out["feature"], out["id"], strict=True)]
        for b in check.blockers:
            print(f"warning: published by override: {b.short_en} / {b.short_zh}")
    write_findings(out, args.out, layer="published_routes")
    n_routes = int((out["feature"] == "route").sum())
    print(f"{n_routes} published route(s), {len(out) - n_routes} zone(s) written: {args.out}")
    return 0

