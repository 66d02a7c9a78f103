"""Write findings (or any GeoDataFrame) to a file chosen by its extension.

- ``.geojson`` / ``.json``: RFC 7946 FeatureCollection (WGS 84 lon/lat, CCW outer rings, no
  ``crs`` member) via :func:`geo.crs.to_geojson`, UTF-8 without escaping Chinese text;
- ``.gpkg``: a GeoPackage layer (default ``findings``) in the storage CRS EPSG:4490, replacing a
  layer of that name and keeping the file's other layers;
- ``.csv``: the attributes plus ``lon``/``lat`` of a point on the geometry and ``wkt``, both in
  EPSG:4490, UTF-8 with BOM so spreadsheet programs show Chinese correctly; a text cell
  starting with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'`` (no formula runs).

List / dict values become JSON text in GeoPackage and CSV; non-finite numbers become null.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo.crs import STORAGE_CRS, to_geojson
from layers.errors import InputFileError

__all__ = ["FORMATS", "defuse_formulas", "write_findings"]

FORMATS = (".geojson", ".json", ".gpkg", ".csv")


def _jsonable(v: Any) -> Any:
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return v


def _finite(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Non-finite floats (inf, -inf) become missing values."""
    out = gdf
    for c in gdf.columns:
        if c != gdf.geometry.name and pd.api.types.is_float_dtype(gdf[c]):
            vals = gdf[c].to_numpy(dtype=float)
            if np.isinf(vals).any():
                out = out.copy() if out is gdf else out
                out[c] = np.where(np.isfinite(vals), vals, np.nan)
    return out


def _flat(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = gdf.copy()
    for c in out.columns:
        if c == out.geometry.name or out[c].dtype != object:
            continue
        if out[c].map(lambda v: isinstance(v, (list, tuple, dict))).any():
            out[c] = out[c].map(_jsonable)
    return out


def _atomic_text(path: Path, text: str, encoding: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".riskmap-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_findings(gdf: gpd.GeoDataFrame, path: str | os.PathLike[str], *,
                   layer: str = "findings") -> Path:
    """Write ``gdf`` to ``path``; the format follows the extension (see module docstring).

    Raises
    ------
    InputFileError
        For an unsupported extension or a frame without CRS.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in FORMATS:
        raise InputFileError(f"cannot write {p}: extension {p.suffix or '(none)'!r} is not "
                             f"supported; use one of {', '.join(FORMATS)}")
    if gdf.crs is None:
        raise InputFileError(f"cannot write {p}: the findings have no CRS")
    p.parent.mkdir(parents=True, exist_ok=True)
    gdf = _finite(gdf)
    if ext in (".geojson", ".json"):
        fc = to_geojson(gdf)
        _atomic_text(p, json.dumps(fc, ensure_ascii=False, allow_nan=False,
                                   default=_json_default), "utf-8")
    elif ext == ".gpkg":
        flat = _flat(gdf.to_crs(STORAGE_CRS))
        pyogrio.write_dataframe(flat, p, layer=layer, driver="GPKG",
                                layer_options={"OVERWRITE": "YES", "SPATIAL_INDEX": "YES"},
                                geometry_type=None if len(flat) else "Unknown")
    else:
        geo = gdf.to_crs(STORAGE_CRS)
        df = pd.DataFrame(_flat(geo).drop(columns=geo.geometry.name))
        g = geo.geometry.values
        ok = ~(shapely.is_missing(g) | shapely.is_empty(g))
        pt = np.full(len(g), None, dtype=object)
        pt[ok] = shapely.point_on_surface(g[ok])
        df["lon"] = np.round(shapely.get_x(pt.astype(object)), 7) if len(g) else []
        df["lat"] = np.round(shapely.get_y(pt.astype(object)), 7) if len(g) else []
        df["wkt"] = shapely.to_wkt(g, rounding_precision=7, trim=True) if len(g) else []
        _atomic_text(p, defuse_formulas(df).to_csv(index=False), "utf-8-sig")
    return p


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def defuse_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell that a spreadsheet would run as a formula (first character
    ``=``, ``+``, ``-``, ``@``, tab or CR) prefixed with ``'``; numbers are left alone."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col]):
            continue
        values = out[col]
        is_text = values.map(type).eq(str).to_numpy()
        if not is_text.any():
            continue
        text = values[is_text].astype(str)
        risky = text.str.startswith(_FORMULA_START).to_numpy()
        if risky.any():
            idx = values.index[is_text][risky]
            out[col] = out[col].astype(object)
            out.loc[idx, col] = "'" + text[risky]
    return out


def _json_default(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
