"""Coordinate reference systems: storage, analysis zones, axis checks, RFC 7946, GCJ-02.

Storage CRS is CGCS2000 geographic (EPSG:4490, lon/lat). Every distance and area is
measured in a projected metric CRS: the CGCS2000 3-degree Gauss-Krüger zone without zone
prefix (EPSG:4534–4554, CM 75°E–135°E) for data inside China, else the WGS 84 UTM zone.
"""

from __future__ import annotations

import json
import math
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from geo.errors import CRSError

__all__ = [
    "STORAGE_CRS",
    "analysis_crs",
    "check_lonlat",
    "gcj02_to_wgs84",
    "gk_crs",
    "gk_zone",
    "in_china",
    "orient_rfc7946",
    "reproject",
    "require_crs",
    "require_projected",
    "require_same_crs",
    "to_analysis",
    "to_geojson",
    "to_storage",
    "wgs84_to_gcj02",
]

STORAGE_CRS = CRS.from_epsg(4490)

# Mainland China envelope used to choose a GK zone (lon 73–135°E, lat 18–54°N).
_CHINA = (73.0, 18.0, 135.5, 54.0)


def gk_zone(lon: float) -> int:
    """3-degree Gauss-Krüger zone number for a longitude: n = floor(lon/3 + 0.5).

    Zone n spans CM ± 1.5°, CM = 3n; a longitude exactly on a zone edge (e.g. 118.5°E)
    goes to the eastern zone.
    """
    return math.floor(lon / 3.0 + 0.5)


def gk_crs(lon: float) -> CRS:
    """CGCS2000 3-degree GK CRS (no zone prefix, EPSG:4534–4554) for a longitude in China."""
    n = gk_zone(lon)
    if not 25 <= n <= 45:
        raise CRSError(f"longitude {lon:.4f} is outside the CGCS2000 3-degree zones (75–135°E)")
    return CRS.from_epsg(4534 + n - 25)


def in_china(lon: float, lat: float) -> bool:
    """True when the point lies in the envelope of mainland China used for zone choice."""
    return _CHINA[0] <= lon <= _CHINA[2] and _CHINA[1] <= lat <= _CHINA[3]


def analysis_crs(data: gpd.GeoDataFrame | gpd.GeoSeries | tuple[float, float]) -> CRS:
    """Projected metric CRS for analysing ``data`` (or a ``(lon, lat)`` point).

    The centre of the data's lon/lat bounds decides: the CGCS2000 GK 3-degree zone inside
    China, else the WGS 84 UTM zone.
    """
    if isinstance(data, tuple):
        lon, lat = data
    else:
        require_crs(data, "data")
        geo = data.to_crs(STORAGE_CRS) if not _is_lonlat(data.crs) else data
        minx, miny, maxx, maxy = geo.total_bounds
        if not np.all(np.isfinite([minx, miny, maxx, maxy])):
            raise CRSError("cannot choose an analysis CRS for empty data")
        lon, lat = (minx + maxx) / 2.0, (miny + maxy) / 2.0
    if in_china(lon, lat):
        return gk_crs(lon)
    zone = math.floor((lon + 180.0) / 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _is_lonlat(crs: Any) -> bool:
    return crs is not None and CRS.from_user_input(crs).is_geographic


def require_crs(data: gpd.GeoDataFrame | gpd.GeoSeries, what: str) -> None:
    """Raise CRSError when ``data`` carries no CRS."""
    if data.crs is None:
        raise CRSError(f"{what} has no CRS; state it (e.g. --crs EPSG:4490)")


def require_projected(data: gpd.GeoDataFrame | gpd.GeoSeries, what: str) -> None:
    """Raise CRSError unless ``data`` is in a projected CRS measured in metres."""
    require_crs(data, what)
    crs = CRS.from_user_input(data.crs)
    if not crs.is_projected:
        raise CRSError(f"{what} is in {crs.to_string()} (degrees); expected a projected CRS "
                       "in metres — call geo.crs.to_analysis first")
    unit = crs.axis_info[0].unit_name if crs.axis_info else ""
    if unit not in ("metre", "meter"):
        raise CRSError(f"{what} is in {crs.to_string()} with unit {unit!r}; expected metres")
    if crs.to_epsg() in (3857, 900913, 3395):
        raise CRSError(f"{what} is in Web Mercator, whose metres are not true metres; "
                       "project it with geo.crs.to_analysis")


def require_same_crs(data: gpd.GeoDataFrame | gpd.GeoSeries, crs: object, what: str,
                     other: str) -> None:
    """Raise CRSError unless ``data`` is in ``crs`` (the CRS of ``other``): distances between
    two layers are only meaningful in one CRS. ``crs`` None (unknown) is not checked."""
    if crs is None:
        return
    if data.crs is None or not CRS.from_user_input(data.crs).equals(CRS.from_user_input(crs)):
        raise CRSError(f"{what} ({data.crs}) and {other} ({crs}) are in different CRSs; "
                       "project both with geo.crs.to_analysis")


def to_analysis(
    data: gpd.GeoDataFrame, *, crs: CRS | str | int | None = None
) -> gpd.GeoDataFrame:
    """Project ``data`` to ``crs`` or, when omitted, to its analysis CRS."""
    require_crs(data, "data")
    target = CRS.from_user_input(crs) if crs is not None else analysis_crs(data)
    if CRS.from_user_input(data.crs) == target:
        return data
    return data.to_crs(target)


# Vertices below which one thread transforms them all.
_THREAD_MIN_VERTICES = 200_000


def reproject(data: gpd.GeoDataFrame, crs: CRS | str | int, *,
              workers: int = 2) -> gpd.GeoDataFrame:
    """``data.to_crs(crs)`` (same transformer, same numbers), large frames transformed in
    ``workers`` chunks in threads: PROJ releases the GIL (2 cores: 1.7x on 700k vertices)."""
    require_crs(data, "data")
    target = CRS.from_user_input(crs)
    geoms = np.asarray(data.geometry.values, dtype=object)
    n_xy = int(shapely.get_num_coordinates(geoms).sum()) if len(geoms) else 0
    if workers < 2 or n_xy < _THREAD_MIN_VERTICES or shapely.has_z(geoms).any():
        return data.to_crs(target)
    from concurrent.futures import ThreadPoolExecutor

    from pyproj import Transformer

    source = CRS.from_user_input(data.crs)

    def chunk(part: np.ndarray) -> np.ndarray:
        xy = shapely.get_coordinates(part)
        x, y = Transformer.from_crs(source, target, always_xy=True).transform(xy[:, 0],
                                                                              xy[:, 1])
        return shapely.set_coordinates(part.copy(), np.column_stack([x, y]))

    with ThreadPoolExecutor(workers, thread_name_prefix="riskmap-proj") as ex:
        out = np.concatenate(list(ex.map(chunk, np.array_split(geoms, workers))))
    return data.set_geometry(gpd.GeoSeries(out, index=data.index, crs=target,
                                           name=data.geometry.name), crs=target)


def to_storage(data: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Project ``data`` to the storage CRS EPSG:4490."""
    require_crs(data, "data")
    if CRS.from_user_input(data.crs) == STORAGE_CRS:
        return data
    return data.to_crs(STORAGE_CRS)


def check_lonlat(data: gpd.GeoDataFrame | gpd.GeoSeries, what: str) -> None:
    """Reject lon/lat coordinates that are out of range or look swapped (lat, lon).

    Call on data in a geographic CRS. Raises CRSError saying which it is.
    """
    if data.crs is not None and not _is_lonlat(data.crs):
        return
    geoms = data.geometry if isinstance(data, gpd.GeoDataFrame) else data
    geoms = geoms[~(geoms.isna() | geoms.is_empty)]
    if geoms.empty:
        return
    minx, miny, maxx, maxy = geoms.total_bounds
    if miny < -90 or maxy > 90 or minx < -180 or maxx > 360:
        if minx >= -90 and maxx <= 90 and miny >= -180 and maxy <= 180:
            raise CRSError(
                f"{what}: coordinates look like (lat, lon) — x spans {minx:.4f}..{maxx:.4f}, "
                f"y spans {miny:.4f}..{maxy:.4f}; swap them to (lon, lat)"
            )
        raise CRSError(
            f"{what}: coordinates x {minx:.1f}..{maxx:.1f}, y {miny:.1f}..{maxy:.1f} are not "
            "degrees; state the file's projected CRS (e.g. --crs EPSG:4548)"
        )
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    if not in_china(cx, cy) and in_china(cy, cx):
        raise CRSError(
            f"{what}: coordinates look like (lat, lon) — centre ({cx:.4f}, {cy:.4f}) lies in "
            f"China only when swapped to ({cy:.4f}, {cx:.4f}); swap them to (lon, lat)"
        )


def orient_rfc7946(geoms: gpd.GeoSeries) -> gpd.GeoSeries:
    """Counter-clockwise exterior rings, clockwise holes (RFC 7946 §3.1.6)."""
    return gpd.GeoSeries(
        shapely.orient_polygons(geoms.values, exterior_cw=False), index=geoms.index, crs=geoms.crs
    )


def to_geojson(data: gpd.GeoDataFrame, *, precision: int = 7) -> dict[str, Any]:
    """RFC 7946 FeatureCollection (WGS 84 lon/lat, CCW outer rings, no ``crs`` member)."""
    require_crs(data, "data")
    out = data.to_crs(4326)
    out = out.set_geometry(orient_rfc7946(out.geometry))
    text = out.to_json(na="null", drop_id=True, to_wgs84=False)
    fc = json.loads(text)
    fc.pop("crs", None)
    if precision is not None:
        for f in fc["features"]:
            if f.get("geometry"):
                f["geometry"] = _round_coords(f["geometry"], precision)
    return fc


def _round_coords(geom: dict[str, Any], nd: int) -> dict[str, Any]:
    def r(c: Any) -> Any:
        if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
            return [round(float(v), nd) for v in c]
        return [r(x) for x in c]

    if geom["type"] == "GeometryCollection":
        return {"type": geom["type"], "geometries": [_round_coords(g, nd) for g in geom["geometries"]]}
    return {"type": geom["type"], "coordinates": r(geom["coordinates"])}


# --- GCJ-02 (display only; never stored) ---------------------------------------------------
# The public re-implementation of the GCJ-02 obfuscation (Krasovsky 1940 ellipsoid constants).
_A = 6378245.0
_EE = 0.00669342162296594323


def _outside_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = lon - 105.0, lat - 35.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
            + (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
            + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    radlat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
    """WGS 84 / CGCS2000 lon/lat → GCJ-02 (Gaode display). Vectorised; outside China unchanged."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    dlon, dlat = _delta(lon, lat)
    out = _outside_china(lon, lat)
    return np.where(out, lon, lon + dlon), np.where(out, lat, lat + dlat)


def gcj02_to_wgs84(lon: Any, lat: Any, *, iterations: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 → WGS 84 lon/lat by fixed-point iteration (error < 1e-7° after 6 rounds)."""
    glon = np.asarray(lon, dtype=float)
    glat = np.asarray(lat, dtype=float)
    wlon, wlat = glon.copy(), glat.copy()
    for _ in range(iterations):
        tlon, tlat = wgs84_to_gcj02(wlon, wlat)
        wlon = wlon + (glon - tlon)
        wlat = wlat + (glat - tlat)
    return wlon, wlat
