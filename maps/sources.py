"""Which layers each audience map uses, and reading them from a store.

Small layers are read; a layer with more than ``inline_max`` features is not read at all in
served mode (the browser loads it by bbox) and, for a standalone export, is read only for the
features findings refer to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd

from maps.base import MapOptions, RemoteSource
from maps.compose import concat_findings

__all__ = ["BUILDERS", "MAP_LAYERS", "MAP_NAMES", "build", "read_findings", "read_layers"]

MAP_LAYERS: dict[str, tuple[str, ...]] = {
    "planner": ("pipelines", "buildings", "sites", "hca", "cameras"),
    "police": ("restricted_zones", "hazmat_routes", "roads", "sites"),
    "fire": ("fire_stations", "fire_lanes", "hydrants", "compounds", "buildings", "roads"),
    "overview": ("pipelines", "buildings", "sites", "hca", "cameras", "roads", "restricted_zones",
                 "hazmat_routes", "fire_lanes", "fire_stations", "hydrants", "compounds"),
}
MAP_NAMES = tuple(MAP_LAYERS)


def _builders() -> dict[str, Callable[..., folium.Map]]:
    from maps.fire import build_fire
    from maps.overview import build_overview
    from maps.planner import build_planner
    from maps.police import build_police

    return {"planner": build_planner, "police": build_police, "fire": build_fire,
            "overview": build_overview}


BUILDERS = _builders


def read_layers(store: Any, name: str, *, options: MapOptions,
                findings: gpd.GeoDataFrame | None = None) -> dict[str, gpd.GeoDataFrame | RemoteSource]:
    """The store layers of map ``name``: small ones read, large ones remote or reduced."""
    if name not in MAP_LAYERS:
        raise ValueError(f"unknown map {name!r}; expected one of {', '.join(MAP_NAMES)}")
    counts = {li.name: li.count for li in store.layers()}
    out: dict[str, gpd.GeoDataFrame | RemoteSource] = {}
    for layer in MAP_LAYERS[name]:
        if layer not in counts:
            continue
        n = counts[layer]
        if n > options.inline_max:
            if options.mode == "served":
                out[layer] = RemoteSource(f"{options.api_base}/collections/{layer}/items", n)
                continue
            out[layer] = _read_referenced(store, layer, findings, n)
            continue
        out[layer] = store.read(layer)
    return out


def _read_referenced(store: Any, layer: str, findings: gpd.GeoDataFrame | None,
                     total: int) -> gpd.GeoDataFrame:
    """Only the features of a large layer that findings refer to (read by their bbox)."""
    from maps.base import layer_ids_in_findings

    ids = layer_ids_in_findings([findings], layer)
    if not ids or findings is None:
        gdf = store.read(layer, bbox=(0.0, 0.0, 0.0, 0.0)).iloc[:0]
    else:
        f = findings.to_crs(4490) if findings.crs is not None else findings
        minx, miny, maxx, maxy = f.total_bounds
        pad = 0.002
        gdf = store.read(layer, bbox=(minx - pad, miny - pad, maxx + pad, maxy + pad))
        gdf = gdf[gdf["id"].astype(str).isin(ids)]
    gdf = gdf.copy()
    gdf.attrs["riskmap_total"] = total  # the builder states how many were left out
    return gdf


def read_findings(paths: Sequence[str | Path]) -> gpd.GeoDataFrame | None:
    """Findings files (GeoJSON / GPKG / …) written by ``riskmap check …`` into one frame."""
    frames = [gpd.read_file(p) for p in paths]
    return concat_findings(frames)


def build(name: str, layers: Mapping[str, Any], findings: gpd.GeoDataFrame | None, *,
          options: MapOptions, **kwargs: Any) -> folium.Map:
    """Build map ``name`` with its builder."""
    builders = _builders()
    if name not in builders:
        raise ValueError(f"unknown map {name!r}; expected one of {', '.join(MAP_NAMES)}")
    return builders[name](layers, findings, options=options, **kwargs)
