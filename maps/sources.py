"""Which layers each audience map uses, and reading them from a store.

Small layers are read; a layer with more than ``inline_max`` features is not read at all in
served mode (the browser loads it by bbox) and, for a standalone export, is read only for the
features findings refer to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import analysis_crs
from maps.base import MapOptions, RemoteSource
from maps.compose import concat_findings

__all__ = ["AROUND_FINDINGS_M", "BUILDERS", "MAP_LAYERS", "MAP_NAMES", "MIN_CELL_M", "PUBLISH_LAYERS", "build",
           "density_grid", "map_options", "read_findings", "read_layers", "read_registry"]

MAP_LAYERS: dict[str, tuple[str, ...]] = {
    "planner": ("pipelines", "buildings", "sites", "hca", "cameras", "roads",
                "construction_sites", "pipeline_facilities", "warning_signs", "patrol_paths"),
    "police": ("restricted_zones", "hazmat_routes", "roads", "sites"),
    "fire": ("fire_stations", "fire_lanes", "hydrants", "compounds", "buildings", "roads"),
    "overview": ("pipelines", "buildings", "sites", "hca", "cameras", "roads", "restricted_zones",
                 "hazmat_routes", "fire_lanes", "fire_stations", "hydrants", "compounds",
                 "construction_sites", "pipeline_facilities", "warning_signs", "patrol_paths"),
}
MAP_NAMES = tuple(MAP_LAYERS)
# The police map's public notice view (publish=true) draws only these (published routes,
# restricted zones, roads closed to hazmat vehicles).
PUBLISH_LAYERS: tuple[str, ...] = ("restricted_zones", "hazmat_routes", "roads")

# Large layers a standalone export keeps around the findings (not only the features findings
# refer to): the road network, within this many metres of a finding, as the base map.
AROUND_FINDINGS_M: dict[str, float] = {"roads": 400.0, "hydrants": 150.0}  # fire map: see maps.fire.hydrants_near

# Smallest side of a density cell (GET /maps/density/{layer}): a count per cell must not place
# single features (a hydrant, a building) more closely than a block.
MIN_CELL_M = 100.0


def _builders() -> dict[str, Callable[..., folium.Map]]:
    from maps.fire import build_fire
    from maps.overview import build_overview
    from maps.planner import build_planner
    from maps.police import build_police

    return {"planner": build_planner, "police": build_police, "fire": build_fire,
            "overview": build_overview}


BUILDERS = _builders


def map_options(settings: Any, *, mode: str, basemap: str | None = None,
                lang: str | None = None, api_base: str = "") -> MapOptions:
    """Map options from service settings (``map_basemap``, ``map_tile_url``,
    ``tianditu_key``; any object with those attributes) and the request's choices."""
    return MapOptions(
        basemap=basemap or getattr(settings, "map_basemap", None) or "none",
        tile_url=getattr(settings, "map_tile_url", None),
        tianditu_key=_secret(getattr(settings, "tianditu_key", None)),
        lang="en" if lang == "en" else "zh",
        mode=mode,  # type: ignore[arg-type]
        api_base=api_base,
    )


def _secret(v: Any) -> str | None:
    if v is None:
        return None
    return v.get_secret_value() if hasattr(v, "get_secret_value") else str(v)


def read_layers(store: Any, name: str, *, options: MapOptions,
                findings: gpd.GeoDataFrame | None = None,
                only: Collection[str] | None = None
                ) -> dict[str, gpd.GeoDataFrame | RemoteSource | pd.DataFrame]:
    """The store layers of map ``name``: small ones read, large ones remote or reduced (and,
    for the overview, the hazard registry's statuses as ``registry``).

    ``only``: read just these of the map's layers (those the caller may see); None reads all.
    """
    if name not in MAP_LAYERS:
        raise ValueError(f"unknown map {name!r}; expected one of {', '.join(MAP_NAMES)}")
    counts = {li.name: li.count for li in store.layers()}
    out: dict[str, gpd.GeoDataFrame | RemoteSource | pd.DataFrame] = {}
    for layer in MAP_LAYERS[name]:
        if layer not in counts or (only is not None and layer not in only):
            continue
        n = counts[layer]
        if n > options.inline_max:
            if options.mode == "served":
                out[layer] = RemoteSource(f"{options.api_base}/collections/{layer}/items", n)
                continue
            if layer in AROUND_FINDINGS_M:
                out[layer] = _read_around(store, layer, findings, n, AROUND_FINDINGS_M[layer])
                continue
            out[layer] = _read_referenced(store, layer, findings, n)
            continue
        out[layer] = store.read(layer)
    if name == "overview":
        reg = read_registry(store)
        if reg is not None:
            out["registry"] = reg  # statuses for the overview's colours and progress
    return out


def read_registry(store: Any) -> pd.DataFrame | None:
    """The hazard registry's ``finding_id`` (= hazard id), ``status``, ``kind`` and
    ``detection`` (None when the store has no registry or it is empty)."""
    from layers.registry_pg import registry_for

    try:
        recs, total = registry_for(store).hazards(limit=1_000_000)
    except Exception as exc:  # the overview then shows findings by severity, not status
        import logging

        logging.getLogger("riskmap.maps").warning("overview: hazard registry not read: %s", exc)
        return None
    if not total:
        return None
    df = pd.DataFrame(recs)
    df = df.rename(columns={"hazard_id": "finding_id"})
    keep = [c for c in ("finding_id", "status", "kind", "detection", "severity") if c in df]
    return df[keep]


def _read_around(store: Any, layer: str, findings: gpd.GeoDataFrame | None, total: int,
                 distance_m: float) -> gpd.GeoDataFrame:
    """Features of a large layer within ``distance_m`` of a finding (the base map of a
    standalone export); all of them are kept (``riskmap_scope``)."""
    if findings is None or len(findings) == 0:
        gdf = store.read(layer, bbox=(0.0, 0.0, 0.0, 0.0)).iloc[:0]
    else:
        f = findings.to_crs(4490) if findings.crs is not None else findings
        f = f[f.geometry.notna() & ~f.geometry.is_empty]
        deg = distance_m / 111_000.0
        minx, miny, maxx, maxy = f.total_bounds
        gdf = store.read(layer, bbox=(minx - 2 * deg, miny - 2 * deg, maxx + 2 * deg,
                                      maxy + 2 * deg))
        if len(gdf) and len(f):
            proj = analysis_crs(f)
            tree = shapely.STRtree(f.to_crs(proj).geometry.values)
            hit = tree.query(gdf.to_crs(proj).geometry.values, predicate="dwithin",
                             distance=distance_m)[0]
            gdf = gdf.iloc[np.unique(hit)]
    gdf = gdf.copy()
    gdf.attrs["riskmap_total"] = total
    gdf.attrs["riskmap_around_m"] = distance_m
    return gdf


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


def _feature_centres(store: Any, layer: str,
                     where: Mapping[str, object] | None = None) -> np.ndarray:
    """(n, 2) lon/lat centres of the features' bounding boxes (those matching ``where``).

    A GeoPackage answers from its R-tree index (no geometry decoded: about 0.2 s per 100 k
    features) when there is no ``where``; otherwise the layer is read and filtered.
    """
    import sqlite3

    path = getattr(store, "path", None)
    if not where and path is not None and Path(path).suffix.lower() == ".gpkg":
        con = sqlite3.connect(f"file:{Path(path).as_posix()}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?",
                              (layer,)).fetchone()
            if row is not None:
                rtree = f"rtree_{layer}_{row[0]}".replace('"', '""')
                try:
                    b = np.asarray(con.execute(
                        f'SELECT minx, maxx, miny, maxy FROM "{rtree}"').fetchall(), dtype=float)
                except sqlite3.OperationalError:  # no spatial index
                    b = None
                if b is not None:
                    b = b.reshape(-1, 4)
                    return np.column_stack([(b[:, 0] + b[:, 1]) / 2, (b[:, 2] + b[:, 3]) / 2])
        finally:
            con.close()
    gdf = store.read(layer)
    if where:
        keep = np.ones(len(gdf), dtype=bool)
        for col, value in where.items():
            if col not in gdf.columns:
                raise ValueError(f"layer {layer!r} has no column {col!r} to filter on")
            keep &= (gdf[col] == value).fillna(False).to_numpy(dtype=bool)
        gdf = gdf[keep]
    b = gdf.geometry.bounds.to_numpy(dtype=float)
    return np.column_stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2])


def density_grid(store: Any, layer: str, *, cells: int = 64, min_cell_m: float = MIN_CELL_M,
                 where: Mapping[str, object] | None = None) -> dict[str, Any]:
    """Feature counts of ``layer`` on a square lon/lat grid (GeoJSON, non-empty cells only).

    The low-zoom overview of a layer the browser loads by bbox only from a high zoom: about
    ``cells`` cells along the longer side of the layer's extent, but no cell side shorter
    than ``min_cell_m`` metres anywhere in the extent (a small layer gets fewer, larger
    cells), and cell edges on multiples of the cell size (not at a feature's coordinate).
    Each feature is counted once, in the cell of its bounding-box centre; ``where`` (column
    equality, e.g. a role's row filter) counts only matching features. Members: ``count``
    per cell; the collection's ``max`` and ``cell_deg`` (side of a cell in degrees).
    """
    if not 1 <= cells <= 512:
        raise ValueError(f"cells={cells}; expected 1 to 512")
    if not (math.isfinite(min_cell_m) and min_cell_m > 0):
        raise ValueError(f"min_cell_m={min_cell_m}; expected a number of metres > 0")
    c = _feature_centres(store, layer, where)
    c = c[np.isfinite(c).all(axis=1)]
    if len(c) == 0:
        return {"type": "FeatureCollection", "features": [], "max": 0, "cell_deg": None}
    lo, hi = c.min(axis=0), c.max(axis=0)
    # metres per degree along the shorter side of a cell: longitude at the extent's highest
    # latitude (capped at 89 degrees), latitude near the equator
    lat = min(max(abs(float(lo[1])), abs(float(hi[1]))), 89.0)
    m_per_deg = min(110_574.0, 111_320.0 * math.cos(math.radians(lat)))
    size = max(float((hi - lo).max()) / cells, min_cell_m / m_per_deg, 1e-6)
    x0, y0 = math.floor(lo[0] / size) * size, math.floor(lo[1] / size) * size
    # (clipped at 0: x0 may round a hair above the lowest centre)
    ix = np.maximum(np.floor((c[:, 0] - x0) / size), 0).astype(np.int64)
    iy = np.maximum(np.floor((c[:, 1] - y0) / size), 0).astype(np.int64)
    nx = int(ix.max()) + 1
    counts = np.bincount(iy * nx + ix)
    keys = np.flatnonzero(counts)
    ax = np.round(x0 + (keys % nx) * size, 6)
    ay = np.round(y0 + (keys // nx) * size, 6)
    bx, by = np.round(ax + size, 6), np.round(ay + size, 6)
    feats = [{"type": "Feature", "properties": {"count": n},
              "geometry": {"type": "Polygon", "coordinates": [
                  [[a, b], [c_, b], [c_, d], [a, d], [a, b]]]}}
             for n, a, b, c_, d in zip(counts[keys].tolist(), ax.tolist(), ay.tolist(),
                                       bx.tolist(), by.tolist(), strict=True)]
    return {"type": "FeatureCollection", "features": feats, "max": int(counts.max()),
            "cell_deg": size}
