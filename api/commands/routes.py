"""``riskmap route``, ``riskmap check routes`` and ``riskmap publish routes``.

``riskmap route --store STORE --from LON,LAT --to LON,LAT [--at ISO-TIME] [--alternatives K]
[--objective time|distance|risk] [--permit ZONE ...] [--weight-t T] [--height-m M]
--out route.geojson`` routes a hazmat vehicle and writes the alternatives, the snapped ends and
the roads refused on the direct way (with the zone/rule/hours that refuse them).

``riskmap check routes --store STORE --out FILE`` checks every designated route
(``hazmat_routes``) against the zones, ``hazmat = no`` roads and the network.

``riskmap publish routes --store STORE --out FILE`` exports the published route set with the
restricted zones and their hours (RFC 7946 GeoJSON, GeoPackage or CSV) for publication.

:func:`hazmat_network` builds the routing network of a store once per store version and
rule file and keeps it in a small in-process cache (the API reuses it between requests).
"""

from __future__ import annotations

import argparse
import threading
from collections import OrderedDict
from datetime import datetime, time
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from api.commands import group, note_absent, open_existing
from geo.crs import analysis_crs, to_analysis
from geo.findings import empty_findings
from geo.route_check import check_routes
from geo.routing import OBJECTIVES, HazmatNetwork, RouteResult, Vehicle, prepare_network, route
from geo.zones import parse_hours
from layers.errors import InputFileError, LayerNotFoundError, missing_layer
from layers.hazmat_rules import HazmatRules, load_hazmat_rules
from layers.store import Store
from layers.writers import FORMATS, write_findings

__all__ = [
    "clear_cache",
    "hazmat_network",
    "parse_at",
    "parse_lonlat",
    "published_routes",
    "register",
    "run_route",
    "run_route_check",
]

_CACHE_SIZE = 4
_cache: OrderedDict[tuple[str, str, str], HazmatNetwork] = OrderedDict()
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every cached network."""
    with _lock:
        _cache.clear()


def _read(store: Store, layer: str, crs: Any, columns: list[str] | None = None
          ) -> gpd.GeoDataFrame | None:
    try:
        return store.read(layer, crs=crs, columns=columns)
    except LayerNotFoundError:
        return None


def hazmat_network(store: Store, *, rules: HazmatRules | None = None,
                   rules_path: str | Path | None = None) -> HazmatNetwork:
    """The routing network of ``store``, built once per ``store.version()`` and rule file.

    Reads ``roads`` (required), ``restricted_zones``, ``buildings`` (households) and
    ``sites`` (sensitive sites), all projected to the roads' analysis CRS.
    """
    key = (str(store.url), store.version(), str(rules_path or ""))
    with _lock:
        if key in _cache and rules is None:
            _cache.move_to_end(key)
            return _cache[key]
    r = rules if rules is not None else load_hazmat_rules(rules_path)
    if not store.has_layer("roads"):
        raise missing_layer(store.url, "roads", "hazmat routing")
    roads = store.read("roads")
    if roads.empty:
        raise LayerNotFoundError(f"store {store.url}: layer 'roads' is empty; import roads first")
    crs = analysis_crs(roads)
    roads = to_analysis(roads, crs=crs)
    zones = _read(store, "restricted_zones", crs)
    buildings = _read(store, "buildings", crs, columns=["id", "households"])
    sites = _read(store, "sites", crs, columns=["id", "kind", "occupants"])
    net = prepare_network(roads, zones=zones, buildings=buildings, sites=sites,
                          params=r.routing)
    if rules is None:
        with _lock:
            _cache[key] = net
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return net


def parse_lonlat(text: str, what: str) -> tuple[float, float]:
    """``"117.2,34.8"`` → ``(117.2, 34.8)``; raises ValueError saying what was wrong."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        lon, lat = float(parts[0]), float(parts[1])
    except ValueError:
        raise InputFileError(f"{what} is {text!r}; expected LON,LAT in degrees, "
                             "e.g. 117.21,34.86") from None
    return lon, lat


def parse_at(text: str | None) -> datetime | time | None:
    """``--at``: ISO datetime (``2024-05-06T08:30``) or clock time (``08:30``); None = now."""
    if text is None:
        return datetime.now()
    if text.lower() in ("any", "anytime"):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise InputFileError(f"--at is {text!r}; expected an ISO time such as "
                             "2024-05-06T08:30 or 08:30, or 'any'") from None


def run_route(store: Store, origin: tuple[float, float], destination: tuple[float, float],
              at: datetime | time | None, *, alternatives: int = 1, objective: str = "time",
              permits: tuple[str, ...] = (), vehicle: Vehicle | None = None,
              rules_path: str | Path | None = None) -> RouteResult:
    """Route on the cached network of ``store``."""
    net = hazmat_network(store, rules_path=rules_path)
    return route(net, origin, destination, at, vehicle=vehicle, permits=permits,
                 alternatives=alternatives, objective=objective)


def run_route_check(store: Store, *, rules_path: str | Path | None = None
                    ) -> gpd.GeoDataFrame:
    """Findings of the designated-route check (analysis CRS of the routes)."""
    rules = load_hazmat_rules(rules_path)
    if not store.has_layer("hazmat_routes"):
        raise missing_layer(store.url, "hazmat_routes", "the designated-route check")
    routes = store.read("hazmat_routes")
    if routes.empty:
        return empty_findings(routes.crs)
    crs = analysis_crs(routes)
    routes = to_analysis(routes, crs=crs)
    zones = _read(store, "restricted_zones", crs)
    bounds = tuple(routes.total_bounds)
    pad = max(rules.check.off_network_m, rules.check.road_match_m) + 50.0
    bbox = (bounds[0] - pad, bounds[1] - pad, bounds[2] + pad, bounds[3] + pad)
    try:
        roads = store.read("roads", bbox=bbox, bbox_crs=crs).to_crs(crs)
    except LayerNotFoundError:
        roads = None
    return check_routes(routes, zones=zones, roads=roads, params=rules.check)


def published_routes(store: Store) -> gpd.GeoDataFrame:
    """The published designated routes and every restricted zone with its hours, in one
    frame (EPSG:4490) with ``feature`` = ``route`` / ``zone`` and ``hours_text``."""
    if not store.has_layer("hazmat_routes"):
        raise missing_layer(store.url, "hazmat_routes", "publishing routes")
    routes = store.read("hazmat_routes")
    if "status" in routes.columns:
        routes = routes[routes["status"].fillna("draft") == "published"]
    routes = routes.assign(feature="route")
    zones = _read(store, "restricted_zones", None)
    parts = [routes]
    if zones is not None:
        parts.append(zones.assign(feature="zone"))
    out = pd.concat(parts, ignore_index=True)
    out["hours_text"] = [parse_hours(h).describe() for h in out.get("hours", [""] * len(out))]
    cols = ["feature", "id", "name", "kind", "rule", "hours", "hours_text", "penalty", "status",
            "authority", "notice"]
    cols = [c for c in cols if c in out.columns]
    return gpd.GeoDataFrame(out[[*cols, out.geometry.name]], geometry=out.geometry.name,
                            crs=routes.crs)


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
                   help="departure, e.g. 2024-05-06T08:30 or 08:30 (default now; 'any' = every "
                   "zone counts as in force)")
    p.add_argument("--alternatives", type=int, default=1, metavar="K",
                   help="up to K different routes (default 1)")
    p.add_argument("--objective", choices=OBJECTIVES, default="time",
                   help="rank by time (default), distance or risk (exposure × km)")
    p.add_argument("--permit", action="extend", nargs="+", default=[], metavar="ZONE",
                   help="id(s) of permit zones the vehicle holds a permit for")
    p.add_argument("--weight-t", type=float, help="vehicle gross weight (t)")
    p.add_argument("--height-m", type=float, help="vehicle height (m)")
    p.add_argument("--rules", type=Path, help="district rule file overriding layers/rule_tables/hazmat.toml")
    p.add_argument("--out", required=True, type=Path, help="output: " + ", ".join(FORMATS))
    p.set_defaults(func=_cmd_route)

    check = group(sub, groups, "check", "run a check and write its findings")
    c = check.add_parser("routes", help="check the designated hazmat routes",
                         description="Every stretch of a hazmat_routes line inside a forbidden "
                         "or permit zone during its hours, over a bridge/tunnel zone, along a "
                         "hazmat=no road or off the road network, with chainage.")
    c.add_argument("--store", required=True, help="store path (*.gpkg) or postgresql:// URL")
    c.add_argument("--rules", type=Path, help="district rule file overriding layers/rule_tables/hazmat.toml")
    c.add_argument("--out", required=True, type=Path, help="findings file: " + ", ".join(FORMATS))
    c.set_defaults(func=_cmd_check)

    pub = group(sub, groups, "publish", "export a layer set for publication")
    q = pub.add_parser("routes", help="published hazmat routes with the restricted zones and hours",
                       description="The routes with status = published and every restricted "
                       "zone with its rule and hours, for publishing (GeoJSON RFC 7946).")
    q.add_argument("--store", required=True, help="store path (*.gpkg) or postgresql:// URL")
    q.add_argument("--out", required=True, type=Path, help="output: " + ", ".join(FORMATS))
    q.set_defaults(func=_cmd_publish)


def _check_out(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise InputFileError(f"--out {path}: extension {path.suffix or '(none)'!r} is not "
                             f"supported; use one of {', '.join(FORMATS)}")


def _cmd_route(args: argparse.Namespace) -> int:
    _check_out(args.out)
    if args.alternatives < 1:
        raise InputFileError(f"--alternatives is {args.alternatives}; expected a number >= 1")
    o = parse_lonlat(args.origin, "--from")
    d = parse_lonlat(args.destination, "--to")
    at = parse_at(args.at)
    vehicle = Vehicle(weight_t=args.weight_t, height_m=args.height_m)
    res = run_route(open_existing(args.store), o, d, at, alternatives=args.alternatives,
                    objective=args.objective, permits=tuple(args.permit), vehicle=vehicle,
                    rules_path=args.rules)
    write_findings(res.to_frame(), args.out, layer="route")
    when = "any time" if at is None else at.isoformat(timespec="minutes")
    print(f"{len(res.routes)} route(s) at {when}, objective {res.objective}; origin snapped "
          f"{res.origin['snap_m']:.1f} m to {res.origin['road_id']}, destination "
          f"{res.destination['snap_m']:.1f} m to {res.destination['road_id']}")
    print(f"{'rank':>4} {'km':>8} {'min':>7} {'risk':>10} {'stretch':>7}  zones")
    for r in res.routes.itertuples():
        print(f"{r.rank:>4} {r.length_m / 1000:>8.2f} {r.time_s / 60:>7.1f} {r.risk_score:>10.1f} "
              f"{r.stretch:>7.2f}  {r.zones or '-'}")
    for r in res.refused.itertuples():
        print(f"refused: {r.message} ({r.length_m:.0f} m)")
    print(f"written: {args.out}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    _check_out(args.out)
    store = open_existing(args.store)
    findings = run_route_check(store, rules_path=args.rules)
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
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    _check_out(args.out)
    out = published_routes(open_existing(args.store))
    write_findings(out, args.out, layer="published_routes")
    n_routes = int((out["feature"] == "route").sum())
    print(f"{n_routes} published route(s), {len(out) - n_routes} zone(s) written: {args.out}")
    return 0

