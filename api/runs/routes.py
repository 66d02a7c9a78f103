"""The hazmat analyses on a store: the routing network, the designated-route check and the
published route set.

:func:`build_network` is the one builder of the hazmat routing network (:mod:`api.service`
caches it per store version and rules version, for the CLI, the API and the maps alike).
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import pandas as pd

from geo.crs import analysis_crs, to_analysis
from geo.findings import empty_findings
from geo.route_check import check_routes
from geo.routing import HazmatNetwork, prepare_network
from geo.zones import parse_hours
from layers.errors import LayerNotFoundError, missing_layer
from layers.hazmat_rules import HazmatRules
from layers.store import Store
from layers.validate import check_stored_hours

__all__ = ["build_network", "published_routes", "run_route_check"]


def _read(store: Store, layer: str, crs: Any, columns: list[str] | None = None, *,
          analysis: str = "hazmat routing") -> gpd.GeoDataFrame | None:
    if not store.has_layer(layer):
        return None
    return _hours_checked(store.read(layer, crs=crs, columns=columns), layer, analysis)


def _hours_checked(gdf: gpd.GeoDataFrame, layer: str, analysis: str) -> gpd.GeoDataFrame:
    """``gdf`` when its ``hours`` all parse; else StoredLayerError naming the features (422)."""
    check_stored_hours(gdf, layer, analysis=analysis)
    return gdf


def build_network(store: Store, *, rules: HazmatRules) -> HazmatNetwork:
    """The hazmat routing network of ``store`` under ``rules``.

    Reads ``roads`` (required, not empty), ``restricted_zones``, ``buildings`` (households)
    and ``sites`` (sensitive sites), all projected to the roads' analysis CRS.
    """
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
    return prepare_network(roads, zones=zones, buildings=buildings, sites=sites,
                           params=rules.routing)


def run_route_check(store: Store, *, rules: HazmatRules) -> gpd.GeoDataFrame:
    """Findings of the designated-route check (analysis CRS of the routes)."""
    if not store.has_layer("hazmat_routes"):
        raise missing_layer(store.url, "hazmat_routes", "the designated-route check")
    routes = _hours_checked(store.read("hazmat_routes"), "hazmat_routes",
                            "the designated-route check")
    if routes.empty:
        return empty_findings(routes.crs)
    crs = analysis_crs(routes)
    routes = to_analysis(routes, crs=crs)
    zones = _read(store, "restricted_zones", crs, analysis="the designated-route check")
    bounds = tuple(routes.total_bounds)
    pad = max(rules.check.off_network_m, rules.check.road_match_m) + 50.0
    bbox = (bounds[0] - pad, bounds[1] - pad, bounds[2] + pad, bounds[3] + pad)
    roads = (store.read("roads", bbox=bbox, bbox_crs=crs).to_crs(crs)
             if store.has_layer("roads") else None)
    return check_routes(routes, zones=zones, roads=roads, params=rules.check)


def published_routes(store: Store) -> gpd.GeoDataFrame:
    """The published designated routes and every restricted zone with its hours, in one
    frame (EPSG:4490) with ``feature`` = ``route`` / ``zone`` and ``hours_text``."""
    if not store.has_layer("hazmat_routes"):
        raise missing_layer(store.url, "hazmat_routes", "publishing routes")
    routes = _hours_checked(store.read("hazmat_routes"), "hazmat_routes", "publishing routes")
    if "status" in routes.columns:
        routes = routes[routes["status"].fillna("draft") == "published"]
    routes = routes.assign(feature="route")
    zones = _read(store, "restricted_zones", None, analysis="publishing routes")
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
