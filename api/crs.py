"""OGC API – Features Part 2 CRS handling: CRS URIs, axis order, output transforms, bbox regions.

Data is stored in EPSG:4490 with (lon, lat) coordinates. Part 2 wants coordinates in the axis
order the CRS defines: CRS84 is (lon, lat); EPSG:4326 and EPSG:4490 are (lat, lon); the
CGCS2000 Gauss-Krüger zones (EPSG:4534–4554) are (northing, easting). ``bbox`` given with
``bbox-crs`` follows the same order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer

from api.errors import BadRequest

__all__ = [
    "CRS84",
    "OgcCrs",
    "bbox_region",
    "crs_uri",
    "parse_crs",
    "supported_crs",
    "transform_geoms",
]

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
_URI_RE = re.compile(r"^https?://www\.opengis\.net/def/crs/(EPSG|OGC)/[^/]+/([A-Za-z0-9]+)$")
_CURIE_RE = re.compile(r"^\[?(EPSG|OGC):([A-Za-z0-9]+)\]?$", re.IGNORECASE)


@dataclass(frozen=True)
class OgcCrs:
    """A CRS as served: its URI, pyproj CRS, whether its first axis is north, and decimals."""

    uri: str
    crs: CRS
    north_first: bool
    decimals: int


def crs_uri(epsg: int | None) -> str:
    """URI for an EPSG code (CRS84 for None)."""
    return CRS84 if epsg is None else _EPSG_URI.format(epsg)


@lru_cache(maxsize=64)
def _make(uri: str) -> OgcCrs:
    if uri == CRS84:
        crs = CRS.from_user_input("OGC:CRS84")
        return OgcCrs(uri, crs, False, 7)
    code = int(uri.rsplit("/", 1)[1])
    crs = CRS.from_epsg(code)
    north = bool(crs.axis_info) and crs.axis_info[0].direction.lower() in ("north", "south")
    return OgcCrs(uri, crs, north, 7 if crs.is_geographic else 3)


def _short(text: str, n: int = 60) -> str:
    return repr(text) if len(text) <= n else repr(text[:n]) + f"… ({len(text)} characters)"


def parse_crs(text: str, supported: list[str], *, param: str = "crs") -> OgcCrs:
    """Parse a CRS URI (or ``EPSG:n`` / ``[EPSG:n]``) and check it is among ``supported``.

    Anything else is a :class:`~api.errors.BadRequest` quoting at most 60 characters of it.
    """
    if len(text) > 200:
        raise BadRequest(f"{param}={_short(text)} is too long to be a CRS; expected one of "
                         + ", ".join(supported))
    t = text.strip()
    m = _URI_RE.match(t)
    if m:
        auth, code = m.groups()
    else:
        m = _CURIE_RE.match(t)
        if not m:
            raise BadRequest(f"{param}={text!r} is not a CRS URI; expected one of "
                             + ", ".join(supported))
        auth, code = m.group(1).upper(), m.group(2)
    if auth == "OGC":
        if code.upper() != "CRS84":
            raise BadRequest(f"{param}={text!r}: only OGC CRS84 is supported")
        uri = CRS84
    else:
        if not code.isdigit() or len(code) > 9:
            raise BadRequest(f"{param}={text!r}: EPSG code must be a number of at most 9 "
                             "digits")
        uri = _EPSG_URI.format(int(code))
    if uri not in supported:
        raise BadRequest(f"{param}={text!r} is not offered; expected one of "
                         + ", ".join(supported))
    return _make(uri)


def supported_crs(analysis_epsg: int | None) -> list[str]:
    """CRS URIs offered for every collection: CRS84, EPSG:4490, EPSG:4326 and the GK zone."""
    out = [CRS84, crs_uri(4490), crs_uri(4326)]
    if analysis_epsg is not None and analysis_epsg not in (4490, 4326):
        out.append(crs_uri(analysis_epsg))
    return out


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(_make(src).crs, _make(dst).crs, always_xy=True)


def _is_lonlat_equivalent(target: OgcCrs) -> bool:
    # CGCS2000 and WGS 84 coincide to a few centimetres; no datum shift is applied.
    return target.uri in (CRS84, crs_uri(4490), crs_uri(4326))


def transform_geoms(geoms: np.ndarray, target: OgcCrs) -> np.ndarray:
    """Storage (lon, lat) geometries → ``target`` coordinates in its axis order, rounded."""
    if len(geoms) == 0:
        return geoms
    nd = target.decimals
    if _is_lonlat_equivalent(target):
        if target.north_first:
            return shapely.transform(geoms, lambda c: np.round(c[:, ::-1], nd))
        return shapely.transform(geoms, lambda c: np.round(c, nd))
    tr = _transformer(CRS84, target.uri)

    def fn(c: np.ndarray) -> np.ndarray:
        x, y = tr.transform(c[:, 0], c[:, 1])
        xy = np.column_stack([x, y]) if not target.north_first else np.column_stack([y, x])
        return np.round(xy, nd)

    return shapely.transform(geoms, fn)


def bbox_region(values: tuple[float, float, float, float], crs: OgcCrs) -> shapely.Geometry:
    """The bbox (in ``crs`` axis order) as a polygon in storage (lon, lat) coordinates.

    A geographic box outside ±180 / ±90 is a :class:`~api.errors.BadRequest`.
    Non-geographic boxes are densified before transforming, so the region is the true
    footprint of the rectangle rather than its lon/lat envelope.
    """
    a, b, c, d = values
    if crs.north_first:
        a, b, c, d = b, a, d, c
    minx, miny, maxx, maxy = a, b, c, d
    if crs.crs.is_geographic and not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        order = "lat,lon" if crs.north_first else "lon,lat"
        raise BadRequest(f"bbox={','.join(f'{v:g}' for v in values)} lies outside "
                         f"longitude -180..180 / latitude -90..90 ({order} order for "
                         f"{crs.uri}); give bbox-crs for projected coordinates")
    if _is_lonlat_equivalent(crs):
        return shapely.box(minx, miny, maxx, maxy)
    rect = shapely.segmentize(shapely.box(minx, miny, maxx, maxy),
                              max(maxx - minx, maxy - miny) / 32.0 or 1.0)
    tr = _transformer(crs.uri, CRS84)
    return shapely.transform(rect, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
