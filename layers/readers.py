"""Read users' files into GeoDataFrames: GeoJSON, GeoPackage, zipped Shapefile, CSV, OSM PBF.

:func:`read_file` returns the features as they are in the file (its CRS, its field names
after ``mapping``); :func:`layers.validate.validate_layer` then checks them. Features a
reader cannot build (a broken ring in a clipped OSM extract, a WKT that does not parse) are
kept with an empty geometry and a message in the ``_read_problem`` column, so validation
reports them by feature instead of the whole read crashing.

OSM files (``.osm.pbf``, ``.osm``) give one of three layers, chosen by ``target``:

- ``roads`` from ``highway=*`` ways open to motor vehicles: ``highway`` → ``road_class``
  (``ref`` G… → national, S… → provincial), ``oneway`` (``-1`` reverses the way),
  ``maxspeed`` → ``speed_kmh`` (mph converted), ``hazmat``/``hazmat:*``/``hgv``/``access`` →
  ``hazmat`` (the most restrictive of yes/destination/no), ``bridge``, ``tunnel``, ``lanes``,
  ``width`` → ``width_m``, ``maxweight`` → ``max_weight_t``, ``maxheight`` → ``max_height_m``.
- ``buildings`` from ``building=*`` closed ways and multipolygon relations: ``building`` and
  ``amenity`` → ``use``, ``building:levels`` → ``floors``, ``building:flats`` → ``households``.
- ``pipelines`` from ``man_made=pipeline`` ways carrying hydrocarbons: ``substance`` →
  ``medium``, ``usage`` (transmission → long_distance, distribution → urban_gas) → ``kind``,
  ``pressure`` (bar unless a unit is given) → ``pressure_mpa``, ``diameter`` (mm unless a
  unit is given) → ``diameter_mm``. OSM rarely has pressure and diameter: such features fail
  validation naming the field, until the user supplies them (``--map``).
- ``construction_sites`` from areas (closed ways, multipolygons) tagged
  ``landuse=construction`` or ``construction=*``: ``construction`` → ``work`` (road and
  highway values → road, railway, canal, pipeline/cable → cable … else other;
  ``building=construction`` → building), ``status`` active; permits are not in OSM.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj.exceptions
import shapely
from pyproj import CRS

from layers.errors import CRSError, InputFileError
from layers.validate import READ_CLIPPED, READ_NOTE, READ_NOTES, READ_PROBLEM

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMATS",
    "OSM_LAYERS",
    "parse_mapping",
    "read_file",
    "user_crs",
]

DEFAULT_MAX_BYTES = 2 * 1024**3
"""Largest file read by default (2 GB)."""

FORMATS = ("GeoJSON (.geojson, .json)", "GeoPackage (.gpkg)", "zipped Shapefile (.zip, .shp)",
           "CSV with a WKT column or lon/lat columns (.csv)", "OSM PBF (.osm.pbf, .osm)",
           "KML (.kml)", "FlatGeobuf (.fgb)")
OSM_LAYERS = ("roads", "buildings", "pipelines", "construction_sites")

_WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom", "wkt_geom", "shape")
_LON_COLUMNS = ("lon", "lng", "long", "longitude", "x", "经度", "东经", "point_x", "x_coord",
                "xcoord", "x坐标", "easting", "东坐标")
_LAT_COLUMNS = ("lat", "latitude", "y", "纬度", "北纬", "point_y", "y_coord", "ycoord", "y坐标",
                "northing", "北坐标")


def parse_mapping(items: list[str] | None) -> dict[str, str]:
    """``["src=ours", ...]`` → ``{"src": "ours"}``; raise ValueError on a malformed item."""
    out: dict[str, str] = {}
    for item in items or []:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ValueError(f"--map {item!r}: expected SOURCE_FIELD=OUR_FIELD")
        out[src.strip()] = dst.strip()
    return out


def read_file(
    path: str | os.PathLike[str],
    *,
    crs: CRS | str | int | None = None,
    layer: str | None = None,
    mapping: Mapping[str, str] | None = None,
    target: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> gpd.GeoDataFrame:
    """Read a geodata file as it is (its CRS) with ``mapping`` applied to field names.

    Parameters
    ----------
    path
        GeoJSON, GeoPackage, zipped Shapefile, CSV (WKT or lon/lat columns) or OSM PBF.
    crs
        CRS of the coordinates when the file states none (CSV, Shapefile without .prj,
        GeoJSON in a projected CRS — GeoJSON without a ``crs`` member is WGS 84).
    layer
        Layer inside a GeoPackage or zip (default: the one named ``target``, or the only one).
    mapping
        ``{source_field: our_field}`` renames (``--map``).
    target
        The riskmap layer being imported; for OSM files it selects roads/buildings/pipelines.
    max_bytes
        Larger files are refused with InputFileError.

    Raises
    ------
    InputFileError
        Missing, too large, unsupported, broken or not geodata; the message names the file
        and what was expected.
    """
    crs = user_crs(crs)
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: no such file")
    if p.is_dir():
        raise InputFileError(f"{p} is a directory; expected a file: {_formats()}")
    size = p.stat().st_size
    if size > max_bytes:
        raise InputFileError(
            f"{p} is {_human(size)}, over the limit of {_human(max_bytes)}; clip it to the "
            "district first (e.g. ogr2ogr -clipsrc or osmium extract) or raise the limit"
        )
    if size == 0:
        raise InputFileError(f"{p} is empty; expected {_formats()}")
    reader = _reader_for(p)
    gdf = reader(p, crs=crs, layer=layer, target=target)
    return _apply_mapping(gdf, mapping, p)


# --- dispatch ------------------------------------------------------------------------------------
def _formats() -> str:
    return "one of " + ", ".join(FORMATS)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


_Reader = Callable[..., gpd.GeoDataFrame]


def _reader_for(p: Path) -> _Reader:
    name = p.name.lower()
    if name.endswith((".osm.pbf", ".pbf", ".osm")):
        return _read_osm
    if name.endswith(".csv"):
        return _read_csv
    if name.endswith(".zip"):
        return _read_zip
    if name.endswith((".geojson", ".json", ".gpkg", ".shp", ".fgb", ".kml")):
        return _read_ogr
    raise InputFileError(f"{p}: unsupported file type {p.suffix or '(no extension)'!r}; "
                         f"expected {_formats()}")


def _apply_mapping(
    gdf: gpd.GeoDataFrame, mapping: Mapping[str, str] | None, p: Path
) -> gpd.GeoDataFrame:
    if not mapping:
        return gdf
    missing = [s for s in mapping if s not in gdf.columns]
    if missing:
        fields = ", ".join(str(c) for c in gdf.columns if c != gdf.geometry.name)
        raise InputFileError(
            f"{p}: --map names field(s) {', '.join(map(repr, missing))} that the file does "
            f"not have; its fields are: {fields}"
        )
    clash = [d for s, d in mapping.items() if d in gdf.columns and d not in mapping]
    if clash and any(d == gdf.geometry.name for d in clash):
        raise InputFileError(f"{p}: --map cannot replace the geometry column")
    out = gdf.drop(columns=clash) if clash else gdf
    return out.rename(columns=dict(mapping))


# --- OGR formats ---------------------------------------------------------------------------------
def _pick_layer(src: str, p: Path, layer: str | None, target: str | None) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            listed = pyogrio.list_layers(src)
    except Exception as exc:
        raise _broken(p, exc) from exc
    names = [str(n) for n, gt in listed if gt is not None] or [str(n) for n, _ in listed]
    if layer is not None:
        if layer not in names:
            raise InputFileError(f"{p} has no layer {layer!r}; its layers are: "
                                 f"{', '.join(names) or '(none)'}")
        return layer
    if len(names) == 1:
        return names[0]
    if target is not None and target in names:
        return target
    if not names:
        raise InputFileError(f"{p} holds no layers; expected geodata")
    raise InputFileError(f"{p} holds several layers ({', '.join(names)}); choose one "
                         "with --source-layer")


_EXPECTED = {
    ".gpkg": "a GeoPackage",
    ".geojson": "a GeoJSON FeatureCollection",
    ".json": "a GeoJSON FeatureCollection",
    ".zip": "a zipped Shapefile",
    ".shp": "a Shapefile with its .shx and .dbf",
    ".csv": "a CSV with a WKT column or lon/lat columns",
    ".pbf": "an OSM PBF file",
    ".osm": "an OSM XML file",
    ".kml": "a KML document",
}


def _broken(p: Path, exc: Exception, expected: str | None = None) -> InputFileError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.split("; It might help")[0].rstrip(".")
    want = expected or _EXPECTED.get(p.suffix.lower(), _formats())
    return InputFileError(f"{p} cannot be read as geodata ({text}); expected {want}")


def _read_ogr(
    p: Path, *, crs: Any = None, layer: str | None = None, target: str | None = None,
    src: str | None = None,
) -> gpd.GeoDataFrame:
    source = src or str(p)
    name = p.name.lower()
    if name.endswith((".geojson", ".json")):
        _sniff_json(p)
        _check_crs_member(p)
    chosen = _pick_layer(source, p, layer, target)
    notes: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gdf = pyogrio.read_dataframe(source, layer=chosen, use_arrow=False)
    except Exception as exc:
        raise _broken(p, exc) from exc
    for w in caught:
        text = str(w.message)
        if "Measured (M)" in text:
            notes.append("M (measure) values dropped: " + text.split(". ")[-1].rstrip("."))
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise InputFileError(f"{p} has no geometry; expected {_formats()}")
    if source.lower().endswith(".shp"):
        gdf = _fix_dbf_encoding(gdf, source, notes)
    if name.endswith((".geojson", ".json")) and "id" not in gdf.columns and src is None:
        gdf = _feature_ids(p, gdf, notes)
    if notes:
        gdf.attrs[READ_NOTES] = list(dict.fromkeys(notes))
    if crs is not None:
        given = CRS.from_user_input(crs)
        if gdf.crs is None or name.endswith((".geojson", ".json")):
            # GeoJSON without a "crs" member is read as WGS 84 by GDAL: --crs overrides it.
            gdf = gdf.set_crs(given, allow_override=True)
        elif not CRS.from_user_input(gdf.crs).equals(given, ignore_axis_order=True):
            raise CRSError(f"{p} states its CRS as {CRS(gdf.crs).to_string()} but --crs says "
                           f"{given.to_string()}; drop --crs or fix the file")
    return gdf


def _fix_dbf_encoding(gdf: gpd.GeoDataFrame, source: str, notes: list[str]) -> gpd.GeoDataFrame:
    """Re-decode a DBF that GDAL read as ISO-8859-1 (no .cpg, no code page) but is GBK or UTF-8.

    Chinese Shapefiles from desktop GIS are often GBK without a ``.cpg``; GDAL then decodes
    them as Latin-1, which maps byte to character, so the original bytes are recovered exactly.
    They are re-decoded as UTF-8 when that is valid, else as GB18030 when every run of
    non-ASCII bytes has even length (double-byte characters; real Latin-1 text has single
    accented letters) and decodes.
    """
    try:
        enc = str(pyogrio.read_info(source).get("encoding") or "")
    except Exception:  # pragma: no cover - it was just read
        return gdf
    if enc.upper().replace("_", "-") not in ("ISO-8859-1", "LATIN1", "LATIN-1"):
        return gdf
    texts = [c for c in gdf.columns if isinstance(c, str) and c != gdf.geometry.name]
    strings = [str(c) for c in texts]
    obj_cols = [c for c in texts
                if gdf[c].dtype == object or pd.api.types.is_string_dtype(gdf[c])]
    for c in obj_cols:
        strings.extend(v for v in gdf[c].dropna().unique() if isinstance(v, str))
    raw = [t.encode("latin-1", errors="ignore") for t in strings if not t.isascii()]
    if not raw:
        return gdf
    codec = None
    for cand in ("utf-8", "gb18030"):
        try:
            for b in raw:
                if cand == "gb18030" and any(len(r) % 2 for r in re.findall(rb"[\x80-\xff]+", b)):
                    raise UnicodeDecodeError(cand, b, 0, 1, "odd run of high bytes")
                b.decode(cand)
        except UnicodeDecodeError:
            continue
        codec = cand
        break
    if codec is None:
        return gdf

    def fix(v: object) -> object:
        return v.encode("latin-1").decode(codec) if isinstance(v, str) and not v.isascii() else v

    out = gdf.copy()
    for c in obj_cols:
        out[c] = out[c].map(fix, na_action="ignore")
    out = out.rename(columns={c: fix(c) for c in texts})
    notes.append(f"the Shapefile has no .cpg and no code page; its text was read as "
                 f"{codec.upper()} (add a .cpg file holding {'UTF-8' if codec == 'utf-8' else 'GBK'}"
                 " to say so)")
    return out


def _feature_ids(p: Path, gdf: gpd.GeoDataFrame, notes: list[str]) -> gpd.GeoDataFrame:
    """GeoJSON Features' own ``"id"`` members (RFC 7946 §3.2) as the ``id`` field.

    GDAL turns integer Feature ids into feature numbers, which are not returned as a field;
    without this a file whose ids are only there would be refused for lacking ids.
    """
    if p.stat().st_size > 256 * 1024**2:
        return gdf
    try:
        data = json.loads(p.read_bytes())
    except ValueError:
        return gdf
    feats = data.get("features") if isinstance(data, dict) else None
    if not isinstance(feats, list) or len(feats) != len(gdf) or not feats:
        return gdf
    ids = [f.get("id") if isinstance(f, dict) else None for f in feats]
    if any(i is None for i in ids):
        return gdf
    out = gdf.copy()
    out.insert(0, "id", [str(i) for i in ids])
    notes.append('ids taken from the Features\' "id" members (there is no id property)')
    return out


def user_crs(crs: CRS | str | int | None) -> CRS | None:
    """The CRS a user named (``--crs`` / ``crs=``), or None; CRSError naming it (cut to 60
    characters) when pyproj knows no such CRS (``EPSG:99999999999``, text)."""
    if crs is None or isinstance(crs, CRS):
        return crs
    text = str(crs)
    shown = text if len(text) <= 60 else text[:59] + f"… ({len(text)} characters)"
    if len(text) > 2000:
        raise CRSError(f"crs {shown!r} is too long to be a CRS; give an EPSG code such as "
                       "EPSG:4490 (CGCS2000) or EPSG:4548 (CGCS2000 / 3-degree GK CM 117E)")
    try:
        return CRS.from_user_input(crs)
    except (pyproj.exceptions.CRSError, ValueError, TypeError, OverflowError):
        raise CRSError(f"crs {shown!r} is not a CRS pyproj knows; give an EPSG code such as "
                       "EPSG:4490 (CGCS2000) or EPSG:4548 (CGCS2000 / 3-degree GK CM "
                       "117E)") from None


_CRS_MEMBER = re.compile(rb'"crs"\s*:\s*\{[^{}]*?"properties"\s*:\s*\{[^{}]*?"name"\s*:\s*'
                         rb'"([^"]{0,300})"')


def _check_crs_member(p: Path) -> None:
    """Refuse a GeoJSON whose ``crs`` member (in its first 1 MB) names a CRS pyproj does not
    know: GDAL would read the coordinates as WGS 84."""
    with open(p, "rb") as fh:
        head = fh.read(1 << 20)
    m = _CRS_MEMBER.search(head)
    if m is None:
        return
    name = m.group(1).decode("utf-8", "replace")
    try:
        CRS.from_user_input(name)
    except (pyproj.exceptions.CRSError, ValueError, TypeError, OverflowError):
        raise CRSError(f"{p}: its \"crs\" member names {name[:80]!r}, which is not a CRS "
                       "pyproj knows (it would be read as WGS 84); fix the member, or drop it "
                       "and give the CRS with --crs / crs=") from None


def _sniff_json(p: Path) -> None:
    with open(p, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith((b"{", b"[")):
        raise InputFileError(f"{p} is not JSON; expected a GeoJSON FeatureCollection")
    if b'"type"' not in head and b"'type'" not in head:
        raise InputFileError(f"{p} is JSON but not GeoJSON (no \"type\" member near the "
                             "start); expected a GeoJSON FeatureCollection")


def _read_zip(
    p: Path, *, crs: Any = None, layer: str | None = None, target: str | None = None
) -> gpd.GeoDataFrame:
    if not zipfile.is_zipfile(p):
        raise InputFileError(f"{p} is not a zip archive; expected a zipped Shapefile")
    with zipfile.ZipFile(p) as zf:
        members = [m for m in zf.namelist() if not _zip_junk(m)]
    shps = [m for m in members if m.lower().endswith(".shp")]
    others = [m for m in members if m.lower().endswith((".gpkg", ".geojson", ".json"))]
    if not shps and not others:
        raise InputFileError(f"{p} holds no Shapefile (.shp) or other geodata; found: "
                             f"{', '.join(members[:10]) or '(nothing)'}")
    if len(shps) + len(others) > 1:
        names = {_stem(m): m for m in shps + others}
        want = layer if layer is not None else target
        if want not in names:
            listed = ", ".join(f"{m} (--source-layer {_stem(m)})" for m in shps + others)
            if layer is not None:
                raise InputFileError(f"{p} has no file named {layer!r}; it holds: {listed}")
            raise InputFileError(f"{p} holds several geodata files: {listed}; choose one "
                                 "with --source-layer")
        chosen = names[want]
        shps, others = ([chosen], []) if chosen in shps else ([], [chosen])
    for shp in shps:
        stem = shp[:-4]
        for ext in (".shx", ".dbf"):
            if not any(m.lower() == (stem + ext).lower() for m in members):
                raise InputFileError(f"{p}: {shp} lacks its {ext} part; zip the .shp, .shx, "
                                     ".dbf and .prj files together")
    member = shps[0] if shps else others[0]
    src = f"/vsizip/{p.resolve()}/{member}"
    inner = layer if not shps and layer is not None and layer != _stem(member) else None
    return _read_ogr(p, crs=crs, layer=inner, target=target, src=src)


def _zip_junk(member: str) -> bool:
    """macOS resource forks and folders that zip tools add (``__MACOSX/``, ``._x.shp``)."""
    base = member.rsplit("/", 1)[-1]
    return member.endswith("/") or member.startswith("__MACOSX/") or "/__MACOSX/" in member \
        or base.startswith("._")


def _stem(member: str) -> str:
    base = member.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0]


# --- CSV -----------------------------------------------------------------------------------------
def _read_csv(
    p: Path, *, crs: Any = None, layer: str | None = None, target: str | None = None
) -> gpd.GeoDataFrame:
    del layer, target
    df = None
    sep = _csv_delimiter(p)
    for enc in ("utf-8-sig", "gb18030"):
        try:
            df = pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""],
                             encoding=enc, sep=sep)
            break
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise _broken(p, exc, "a CSV with a WKT column or lon/lat columns") from exc
    if df is None:
        raise InputFileError(f"{p} is not text in UTF-8 or GB18030; expected a CSV")
    lower: dict[str, Any] = {}
    for c in df.columns:  # "经度(°)", "Longitude (deg)" → 经度, longitude
        key = re.sub(r"\s*[(（\[].*?[)）\]]\s*|[°\s]", "", str(c).strip().lower())
        lower.setdefault(key, c)
        lower.setdefault(str(c).strip().lower(), c)
    wkt = next((lower[c] for c in _WKT_COLUMNS if c in lower), None)
    lon = next((lower[c] for c in _LON_COLUMNS if c in lower), None)
    lat = next((lower[c] for c in _LAT_COLUMNS if c in lower), None)
    problem = pd.Series([None] * len(df), dtype=object)
    if wkt is not None:
        text = df[wkt].fillna("").astype(str).str.strip()
        geoms = shapely.from_wkt(text.where(text != "", None).to_numpy(dtype=object),
                                 on_invalid="ignore")
        bad = (text != "").to_numpy() & shapely.is_missing(geoms)
        problem[bad] = [f"{wkt} {_clip(t)!r} is not valid WKT" for t in text[bad]]
        df = df.drop(columns=[wkt])
    elif lon is not None and lat is not None:
        frame = df

        def num(col: Any) -> np.ndarray:
            text = frame[col].astype("string").str.strip()
            if sep != ",":  # decimal commas of European exports: 117,25
                text = text.str.replace(r"^(-?\d+),(\d+)$", r"\1.\2", regex=True)
            return pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)

        x, y = num(lon), num(lat)
        good = np.isfinite(x) & np.isfinite(y)
        geoms = np.full(len(df), None, dtype=object)
        geoms[good] = shapely.points(x[good], y[good])
        given = df[lon].notna().to_numpy() | df[lat].notna().to_numpy()
        bad = ~good & given
        problem[bad] = [f"{lon}/{lat} ({a!r}, {b!r}) are not numbers"
                        for a, b in zip(df[lon][bad], df[lat][bad], strict=True)]
        df = df.drop(columns=[lon, lat])
    else:
        raise InputFileError(
            f"{p} is a CSV without geometry: expected a WKT column ({', '.join(_WKT_COLUMNS[:3])}) "
            f"or lon/lat columns (lon/lat, longitude/latitude, x/y); its columns are: "
            f"{', '.join(map(str, df.columns)) or '(none)'}"
        )
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, index=df.index),
                           crs=CRS.from_user_input(crs) if crs is not None else None)
    if problem.notna().any():
        gdf[READ_PROBLEM] = problem.to_numpy()
    return gdf


def _csv_delimiter(p: Path) -> str:
    """',' unless the header line has none and has ';' or a tab (European or Excel exports)."""
    with open(p, "rb") as fh:
        head = fh.readline(65536)
    if b"," in head:
        return ","
    if b";" in head:
        return ";"
    if b"\t" in head:
        return "\t"
    return ","


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# --- OSM -----------------------------------------------------------------------------------------
def _read_osm(
    p: Path, *, crs: Any = None, layer: str | None = None, target: str | None = None
) -> gpd.GeoDataFrame:
    try:
        import osmium
    except ImportError as exc:
        from layers.errors import missing_extra

        raise missing_extra("osmium", extra="osm",
                            feature="reading OSM files (.osm.pbf, .osm)") from exc

    kind = target or layer
    if kind not in OSM_LAYERS:
        raise InputFileError(f"{p}: OSM files provide the layers {', '.join(OSM_LAYERS)}; "
                             f"got {kind!r}")
    if crs is not None and not CRS.from_user_input(crs).equals(CRS.from_epsg(4326)):
        raise CRSError(f"{p}: OSM data is WGS 84 (EPSG:4326); --crs {crs} does not apply")
    try:
        rows = (_osm_buildings(p, osmium) if kind == "buildings"
                else _osm_construction(p, osmium) if kind == "construction_sites"
                else _osm_ways(p, osmium, kind))
    except (RuntimeError, OSError) as exc:
        if "out of order" in str(exc):
            raise InputFileError(
                f"{p} is not sorted ({exc}); building areas need a sorted file: sort it with "
                f"`osmium sort {p.name} -o sorted.osm.pbf` and import that") from exc
        raise _broken(p, exc) from exc
    records, wkbs = rows
    if not records:
        raise InputFileError(f"{p} holds no {_OSM_WHAT[kind]}; nothing to import as {kind!r}")
    geoms = shapely.from_wkb(np.array(wkbs, dtype=object))
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame({"id": []})
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, index=df.index), crs=4326)
    for col in (READ_PROBLEM, READ_NOTE, READ_CLIPPED):
        if col in gdf.columns and not (gdf[col].eq(True).any() if col == READ_CLIPPED
                                       else gdf[col].notna().any()):
            gdf = gdf.drop(columns=col)
    return gdf


_OSM_WHAT = {
    "roads": "highway=* ways open to motor vehicles",
    "buildings": "building=* ways or multipolygons",
    "pipelines": "man_made=pipeline ways carrying oil, gas or other hydrocarbons (water, sewage "
                 "and heat pipelines are left out)",
    "construction_sites": "landuse=construction or construction=* areas",
}

_MOTOR_HIGHWAYS = {
    "motorway": "expressway", "motorway_link": "expressway",
    "trunk": "national", "trunk_link": "national",
    "primary": "arterial", "primary_link": "arterial",
    "secondary": "collector", "secondary_link": "collector",
    "tertiary": "collector", "tertiary_link": "collector",
    "unclassified": "local", "residential": "local", "living_street": "local", "road": "local",
    "service": "service",
}  # fmt: skip
_HAZMAT_RANK = {"yes": 0, "destination": 1, "no": 2}
_HAZMAT_VALUES = {"yes": "yes", "designated": "yes", "permissive": "yes",
                  "destination": "destination", "delivery": "destination",
                  "private": "destination", "no": "no"}
_MEDIA = {
    "gas": "natural_gas", "natural_gas": "natural_gas", "methane": "natural_gas",
    "oil": "crude_oil", "crude_oil": "crude_oil", "crude": "crude_oil",
    "fuel": "refined_oil", "petroleum": "refined_oil", "diesel": "refined_oil",
    "gasoline": "refined_oil", "petrol": "refined_oil", "kerosene": "refined_oil",
    "jet_fuel": "refined_oil", "refined_oil": "refined_oil",
    "lpg": "lpg", "propane": "lpg", "butane": "lpg",
    "hydrogen": "other", "ethylene": "other", "chemicals": "other", "ammonia": "other",
}
_NOT_HYDROCARBON = {"water", "sewage", "wastewater", "waste_water", "hot_water", "heat",
                    "steam", "rainwater", "drain", "irrigation", "air", "cold_water", "cold",
                    "cooling", "district_cooling", "district_heating", "chilled_water",
                    "drinking_water", "storm_water", "stormwater", "slurry", "compressed_air",
                    "heating", "waste"}
_USAGE = {"transmission": "long_distance", "distribution": "urban_gas"}
_BUILDING_USE = {
    **dict.fromkeys(("residential", "house", "apartments", "detached", "semidetached_house",
                     "terrace", "dormitory", "bungalow", "farm", "hut_residential"),
                    "residential"),
    **dict.fromkeys(("school", "university", "college"), "school"),
    "kindergarten": "kindergarten", "hospital": "hospital", "clinic": "hospital",
    **dict.fromkeys(("nursing_home", "elderly_care"), "elderly_care"),
    "prison": "prison",
    **dict.fromkeys(("retail", "supermarket", "kiosk", "marketplace", "market"), "market"),
    **dict.fromkeys(("office", "commercial", "government"), "office"),
    **dict.fromkeys(("church", "mosque", "temple", "cathedral", "chapel", "civic", "public",
                     "stadium", "sports_hall", "sports_centre", "train_station",
                     "transportation", "theatre", "cinema", "community_centre"),
                    "public_assembly"),
    **dict.fromkeys(("industrial", "manufacture", "factory"), "industrial"),
    **dict.fromkeys(("warehouse", "storage"), "warehouse"),
    "fuel": "gas_station",
    **dict.fromkeys(("shed", "hut", "garage", "garages", "carport", "roof", "cabin",
                     "greenhouse", "barn", "farm_auxiliary"), "shed"),
}
_AMENITY_USE = {
    "school": "school", "university": "school", "college": "school",
    "kindergarten": "kindergarten", "childcare": "kindergarten",
    "hospital": "hospital", "clinic": "hospital", "nursing_home": "elderly_care",
    "social_facility": "elderly_care", "prison": "prison", "marketplace": "market",
    "fuel": "gas_station", "theatre": "public_assembly", "cinema": "public_assembly",
    "place_of_worship": "public_assembly", "community_centre": "public_assembly",
}

_NUM = re.compile(r"^\s*(-?\d+(?:[.,]\d+)?)\s*([A-Za-z\"'/]*)\s*$")


def _number(text: str | None) -> tuple[float, str] | None:
    if text is None:
        return None
    m = _NUM.match(text.split(";")[0])
    if not m:
        return None
    return float(m.group(1).replace(",", ".")), m.group(2).lower()


def _speed_kmh(v: str | None) -> float | None:
    n = _number(v)
    if n is None:
        return None
    val, unit = n
    return round(val * 1.609344, 2) if unit == "mph" else val if unit in ("", "kmh", "km/h",
                                                                          "kph") else None


def _length_m(v: str | None) -> float | None:
    if v is None:
        return None
    feet = re.match(r"^\s*(\d+(?:\.\d+)?)\s*'\s*(?:(\d+(?:\.\d+)?)\s*\")?\s*$", v)
    if feet:
        return round(float(feet.group(1)) * 0.3048 + float(feet.group(2) or 0) * 0.0254, 3)
    n = _number(v)
    if n is None:
        return None
    val, unit = n
    factor = {"": 1.0, "m": 1.0, "cm": 0.01, "ft": 0.3048, "in": 0.0254}.get(unit)
    return None if factor is None else round(val * factor, 3)


def _weight_t(v: str | None) -> float | None:
    n = _number(v)
    if n is None:
        return None
    val, unit = n
    factor = {"": 1.0, "t": 1.0, "kg": 0.001, "st": 0.90718474, "lbs": 0.00045359237,
              "lb": 0.00045359237}.get(unit)
    return None if factor is None else round(val * factor, 3)


def _pressure_mpa(v: str | None) -> float | None:
    n = _number(v)
    if n is None:
        return None
    val, unit = n
    factor = {"": 0.1, "bar": 0.1, "mpa": 1.0, "kpa": 0.001, "pa": 1e-6,
              "psi": 0.00689476}.get(unit)
    return None if factor is None else round(val * factor, 6)


def _diameter_mm(v: str | None) -> float | None:
    if v is not None and re.match(r"^\s*\d+(\.\d+)?\s*(\"|in)\s*$", v):
        return round(float(re.sub(r"[^\d.]", "", v)) * 25.4, 1)
    n = _number(v)
    if n is None:
        return None
    val, unit = n
    factor = {"": 1.0, "mm": 1.0, "cm": 10.0, "m": 1000.0}.get(unit)
    return None if factor is None else val * factor


def _yes(v: str | None) -> bool | None:
    if v is None:
        return None
    return v not in ("no", "false", "0")


def _hazmat(tags: Mapping[str, str]) -> str | None:
    found: list[str] = []
    for k, v in tags.items():
        if (k == "hazmat" or k.startswith("hazmat:")) and v in _HAZMAT_VALUES:
            found.append(_HAZMAT_VALUES[v])
    for k in ("hgv", "motor_vehicle", "access"):
        val = tags.get(k)
        if val in ("no", "private", "destination", "delivery"):
            found.append("no" if val == "no" else "destination")
    if not found:
        return None
    return max(found, key=_HAZMAT_RANK.__getitem__)


def _road_record(tags: Mapping[str, str]) -> dict[str, object] | None:
    hw = tags.get("highway")
    if hw not in _MOTOR_HIGHWAYS:
        return None
    road_class = _MOTOR_HIGHWAYS[hw]
    ref = tags.get("ref", "")
    if road_class != "expressway" and re.match(r"^G\d", ref):
        road_class = "national"
    elif road_class != "expressway" and re.match(r"^S\d", ref):
        road_class = "provincial"
    ow = tags.get("oneway")
    implied = hw in ("motorway", "motorway_link") or tags.get("junction") == "roundabout"
    oneway = ow in ("yes", "true", "1", "-1") or (implied and ow not in ("no", "false", "0"))
    lanes = _number(tags.get("lanes"))
    return {
        "name": tags.get("name:zh") or tags.get("name"),
        "road_class": road_class,
        "oneway": oneway,
        "speed_kmh": _speed_kmh(tags.get("maxspeed")),
        "width_m": _length_m(tags.get("width")),
        "lanes": int(lanes[0]) if lanes and lanes[0] >= 1 else None,
        "bridge": bool(_yes(tags.get("bridge"))),
        "tunnel": bool(_yes(tags.get("tunnel"))),
        "hazmat": _hazmat(tags),
        "max_weight_t": _weight_t(tags.get("maxweight")),
        "max_height_m": _length_m(tags.get("maxheight")),
        "highway": hw,
        "ref": ref or None,
        "_reverse": ow == "-1",
    }


def _pipeline_record(tags: Mapping[str, str]) -> dict[str, object] | None:
    if tags.get("man_made") != "pipeline":
        return None
    substance = (tags.get("substance") or tags.get("type") or "").lower()
    if substance in _NOT_HYDROCARBON:
        return None
    rec: dict[str, object] = {k: v for k, v in tags.items() if k not in ("id", "geometry")}
    rec.update({
        "name": tags.get("name:zh") or tags.get("name"),
        "medium": _MEDIA.get(substance, substance or None),
        "kind": _USAGE.get(tags.get("usage", ""), tags.get("usage")),
        "pressure_mpa": _pressure_mpa(tags.get("pressure")) if tags.get("pressure") else None,
        "diameter_mm": _diameter_mm(tags.get("diameter")) if tags.get("diameter") else None,
        "operator": tags.get("operator"),
    })
    if tags.get("pressure") and rec["pressure_mpa"] is None:
        rec["pressure_mpa"] = tags["pressure"]  # let validation name the value
    if tags.get("diameter") and rec["diameter_mm"] is None:
        rec["diameter_mm"] = tags["diameter"]
    return rec


def _building_record(tags: Mapping[str, str]) -> dict[str, object] | None:
    b = tags.get("building")
    if b is None or b == "no":
        return None
    use = _AMENITY_USE.get(tags.get("amenity", "")) or _BUILDING_USE.get(b, "other")
    if tags.get("shop") and use == "other":
        use = "market"
    levels = _number(tags.get("building:levels"))
    flats = _number(tags.get("building:flats"))
    return {
        "name": tags.get("name:zh") or tags.get("name"),
        "use": use,
        "floors": max(1, math.ceil(levels[0])) if levels else None,
        "households": int(flats[0]) if flats else None,
        "building": b,
    }


def _osm_ways(p: Path, osmium: Any, kind: str) -> tuple[list[dict[str, object]], list[Any]]:
    key, make = ("highway", _road_record) if kind == "roads" else ("man_made", _pipeline_record)
    fab = osmium.geom.WKBFactory()
    records: list[dict[str, object]] = []
    wkbs: list[Any] = []
    proc = osmium.FileProcessor(str(p), osmium.osm.NODE | osmium.osm.WAY).with_locations()
    for obj in proc.with_filter(osmium.filter.KeyFilter(key)):
        if not obj.is_way():
            continue
        tags = {t.k: t.v for t in obj.tags}
        rec = make(tags)
        if rec is None:
            continue
        rec["id"] = f"w{obj.id}"
        wkb, problem, note = _way_line(obj, fab)
        rec[READ_PROBLEM], rec[READ_NOTE] = problem, note
        rec[READ_CLIPPED] = problem is not None and "missing from the extract" in problem
        if rec.pop("_reverse", False) and wkb is not None:
            wkb = shapely.to_wkb(shapely.reverse(shapely.from_wkb(wkb)))
        records.append(rec)
        wkbs.append(wkb)
    return records, wkbs


_CONSTRUCTION_WORK = {
    **dict.fromkeys(("motorway", "trunk", "primary", "secondary", "tertiary", "unclassified",
                     "residential", "service", "road", "highway", "living_street",
                     "motorway_link", "trunk_link", "primary_link", "secondary_link",
                     "tertiary_link", "footway", "cycleway", "path", "track", "parking"),
                    "road"),
    **dict.fromkeys(("railway", "rail", "light_rail", "subway", "tram", "narrow_gauge"),
                    "railway"),
    **dict.fromkeys(("building", "house", "residential_building", "apartments", "commercial",
                     "industrial", "retail", "school", "hospital", "office", "warehouse",
                     "yes"), "building"),
    **dict.fromkeys(("canal", "ditch", "drain", "waterway"), "canal"),
    **dict.fromkeys(("cable", "pipeline", "telecom"), "cable"),
    **dict.fromkeys(("power", "line", "minor_line", "power_line"), "power_line"),
    **dict.fromkeys(("quarry", "mining", "mine"), "mining"),
}  # fmt: skip


def _construction_record(tags: Mapping[str, str]) -> dict[str, object] | None:
    if tags.get("landuse") != "construction" and "construction" not in tags:
        return None
    value = tags.get("construction", "").lower()
    work = _CONSTRUCTION_WORK.get(value)
    if work is None:
        work = "building" if tags.get("building") not in (None, "no") else "other"
    return {"name": tags.get("name:zh") or tags.get("name"), "work": work,
            "status": "active", "construction": value or None,
            "operator": tags.get("operator")}


def _osm_construction(p: Path, osmium: Any) -> tuple[list[dict[str, object]], list[Any]]:
    """Construction areas: closed ways and multipolygon relations (others are not sites)."""
    fab = osmium.geom.WKBFactory()
    records: list[dict[str, object]] = []
    wkbs: list[Any] = []
    keys = osmium.filter.KeyFilter("landuse", "construction")
    proc = osmium.FileProcessor(str(p)).with_areas(keys).with_filter(keys)
    for obj in proc:
        if not obj.is_area():
            continue
        rec = _construction_record({t.k: t.v for t in obj.tags})
        if rec is None:
            continue
        rec["id"] = f"w{obj.orig_id()}" if obj.from_way() else f"r{obj.orig_id()}"
        try:
            wkb = fab.create_multipolygon(obj)
        except Exception as exc:  # pragma: no cover - the assembler already checked it
            rec[READ_PROBLEM] = f"{rec['id']}: area could not be built ({exc})"
            wkb = None
        records.append(rec)
        wkbs.append(wkb)
    return records, wkbs


def _way_line(way: Any, fab: Any) -> tuple[Any, str | None, str | None]:
    """WKB of a way; with nodes missing from the extract, the line through the rest."""
    try:
        return fab.create_linestring(way), None, None
    except Exception:
        pass
    coords = []
    missing = 0
    for n in way.nodes:
        if n.location.valid():
            coords.append((n.location.lon, n.location.lat))
        else:
            missing += 1
    dedup = [c for i, c in enumerate(coords) if i == 0 or c != coords[i - 1]]
    if len(dedup) >= 2 and missing:
        return (shapely.to_wkb(shapely.LineString(dedup)), None,
                f"{missing} of {len(way.nodes)} nodes are missing from the extract (clipped); "
                "built from the remaining nodes")
    if missing:
        return None, (f"way {way.id}: {missing} of {len(way.nodes)} nodes are missing from the "
                      "extract (clipped at its edge); too few left for a line"), None
    return None, f"way {way.id} has fewer than two distinct nodes", None


def _ways_state(p: Path, osmium: Any, ids: set[int]) -> tuple[set[int], set[int]]:
    """Of the ways ``ids``: those in the file, and those with nodes missing (second pass, only
    when a multipolygon relation could not be assembled)."""
    seen: set[int] = set()
    cut: set[int] = set()
    proc = osmium.FileProcessor(str(p), osmium.osm.NODE | osmium.osm.WAY).with_locations()
    for w in proc.with_filter(osmium.filter.IdFilter(ids)):
        if w.is_way():
            seen.add(w.id)
            if any(not n.location.valid() for n in w.nodes):
                cut.add(w.id)
    return seen, cut


def _osm_buildings(p: Path, osmium: Any) -> tuple[list[dict[str, object]], list[Any]]:
    fab = osmium.geom.WKBFactory()
    records: dict[str, dict[str, object]] = {}
    wkbs: dict[str, Any] = {}
    candidates: dict[str, tuple[dict[str, object], str, bool]] = {}
    ways_built: dict[str, tuple[dict[str, object], Any]] = {}
    relation_ways: dict[str, list[int]] = {}
    proc = osmium.FileProcessor(str(p)).with_areas(osmium.filter.KeyFilter("building"))
    proc = proc.with_filter(osmium.filter.KeyFilter("building"))
    for obj in proc:
        tags = {t.k: t.v for t in obj.tags}
        if obj.is_area():
            rec = _building_record(tags)
            if rec is None:
                continue
            fid = f"w{obj.orig_id()}" if obj.from_way() else f"r{obj.orig_id()}"
            try:
                wkb = fab.create_multipolygon(obj)
            except Exception as exc:  # pragma: no cover - assembler already filtered
                candidates[fid] = (rec, f"{fid}: ring could not be built ({exc})", False)
                continue
            rec["id"] = fid
            records[fid] = rec
            wkbs[fid] = wkb
        elif obj.is_way():
            rec = _building_record(tags)
            if rec is None:
                continue
            fid = f"w{obj.id}"
            missing = sum(1 for n in obj.nodes if not n.location.valid())
            cut_note = (f" ({missing} of {len(obj.nodes)} nodes missing from the extract — "
                        "clipped at its edge)" if missing else "")
            if obj.is_closed() and not missing:
                ring = [(n.location.lon, n.location.lat) for n in obj.nodes]
                rec["id"] = fid
                rec[READ_NOTE] = (f"way {obj.id}: osmium could not assemble its ring "
                                  "(self-intersecting or self-touching); built from its nodes")
                ways_built[fid] = (rec, shapely.to_wkb(shapely.Polygon(ring))
                                   if len(set(ring)) >= 3 else None)
                continue
            why = (f"way {obj.id}: closed ring could not be built{cut_note}" if obj.is_closed()
                   else f"way {obj.id}: ring is not closed{cut_note}")
            candidates[fid] = (rec, why, bool(missing))
        elif obj.is_relation() and tags.get("type") in ("multipolygon", "building"):
            rec = _building_record(tags)
            if rec is None:
                continue
            fid = f"r{obj.id}"
            outer = [m.ref for m in obj.members if m.type == "w"]
            candidates[fid] = (rec, f"relation {obj.id}: multipolygon rings could not be "
                               f"assembled from its {len(outer)} member way(s) (broken, or "
                               "clipped at the extract edge)", False)
            relation_ways[fid] = outer
    failed = [w for fid, ws in relation_ways.items() if fid not in records for w in ws]
    seen_ways, cut_ways = _ways_state(p, osmium, set(failed)) if failed else (set(), set())
    for fid, (rec, why, clipped) in candidates.items():
        if fid in records:
            continue
        rec["id"] = fid
        members = relation_ways.get(fid)
        if members is not None:
            absent = sum(1 for w in members if w not in seen_ways)
            cut = sum(1 for w in members if w in cut_ways)
            if absent:
                why = (f"relation {fid[1:]}: {absent} of {len(members)} member way(s) are "
                       "missing from the extract (clipped at its edge); rings cannot be closed")
                clipped = True
            elif cut:
                why = (f"relation {fid[1:]}: {cut} of {len(members)} member way(s) have nodes "
                       "missing from the extract (clipped at its edge); rings cannot be closed")
                clipped = True
        rec[READ_PROBLEM] = why
        rec[READ_CLIPPED] = clipped
        records[fid] = rec
        wkbs[fid] = None
    for fid, (rec, wkb) in ways_built.items():
        if fid not in records:
            records[fid] = rec
            wkbs[fid] = wkb
    order = list(records)
    return [records[k] for k in order], [wkbs[k] for k in order]
