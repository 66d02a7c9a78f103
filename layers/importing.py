"""Import a file into a store layer, all or nothing: read → map fields → validate → write.

Nothing is written unless every feature passes validation; the store's own write is atomic
(a failed write leaves the store as it was). Without ``replace`` the features are appended to
an existing layer and their ids must not already be there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from layers.errors import LayerValidationError, Problem
from layers.readers import DEFAULT_MAX_BYTES, read_file
from layers.schema import get_schema
from layers.store import Store
from layers.validate import Note, validate_layer

__all__ = ["ImportResult", "import_file", "import_frame"]


@dataclass
class ImportResult:
    """What an import did."""

    layer: str
    source: str
    imported: int
    total: int
    replaced: bool
    source_crs: str | None = None
    notes: list[Note] = field(default_factory=list)

    def summary(self) -> str:
        how = "replaced layer" if self.replaced else "into layer"
        text = (f"imported {self.imported} feature(s) from {self.source} {how} "
                f"{self.layer!r} (now {self.total})")
        if self.source_crs:
            text += f"; source CRS {self.source_crs}, stored in EPSG:4490"
        return text


def import_file(
    store: Store,
    layer: str,
    path: str | os.PathLike[str],
    *,
    crs: CRS | str | int | None = None,
    mapping: Mapping[str, str] | None = None,
    replace: bool = False,
    source_layer: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ImportResult:
    """Read ``path``, validate it as ``layer`` and write it to ``store`` (all or nothing).

    Raises
    ------
    InputFileError
        The file cannot be read as geodata.
    LayerValidationError
        Any feature fails validation, or (appending) an id is already in the layer.
    """
    get_schema(layer)
    gdf = read_file(path, crs=crs, layer=source_layer, mapping=mapping, target=layer,
                    max_bytes=max_bytes)
    return import_frame(store, layer, gdf, crs=crs, replace=replace, source=str(Path(path)))


def import_frame(
    store: Store,
    layer: str,
    gdf: gpd.GeoDataFrame,
    *,
    crs: CRS | str | int | None = None,
    replace: bool = False,
    source: str = "<frame>",
) -> ImportResult:
    """Validate ``gdf`` as ``layer`` and write it to ``store`` (all or nothing)."""
    clean, report = validate_layer(gdf, layer, crs=crs)
    combined = clean
    if not replace and store.has_layer(layer):
        existing = store.read(layer)
        _check_new_ids(layer, existing, clean)
        combined = _append(existing, clean)
    store.write({layer: combined})
    return ImportResult(layer=layer, source=source, imported=len(clean), total=len(combined),
                        replaced=replace, source_crs=report.source_crs, notes=report.notes)


def _check_new_ids(layer: str, existing: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> None:
    if "id" not in existing.columns:
        return
    old = set(existing["id"].dropna().astype(str))
    clash = new["id"].astype(str).isin(old).to_numpy()
    if clash.any():
        problems = [
            Problem(layer, str(i), "id", str(i), f"an id not already in layer {layer!r}",
                    "use --replace to replace the layer")
            for i in new["id"].to_numpy()[clash]
        ]
        raise LayerValidationError(layer, problems)


def _append(existing: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    existing = existing.to_crs(new.crs) if existing.crs != new.crs else existing
    old = existing.rename_geometry("geometry") if existing.geometry.name != "geometry" \
        else existing
    cols = list(new.columns) + [c for c in old.columns if c not in new.columns]
    frames = [old.reindex(columns=cols), new.reindex(columns=cols)]
    for c in cols:
        if c == "geometry":
            continue
        if str(new[c].dtype) in ("Int64", "boolean", "string") and c in old.columns:
            frames[0][c] = _cast_like(old[c], new[c].dtype)
    out = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=new.crs)


def _cast_like(s: pd.Series, dtype: object) -> pd.Series:
    """Stored values (ints read back as floats, bools as objects) in the new frame's dtype."""
    try:
        if str(dtype) == "Int64":
            arr = s.to_numpy(dtype=float, na_value=np.nan)
            return pd.Series(pd.array(np.where(np.isfinite(arr), arr, np.nan),
                                      dtype="Float64"), index=s.index).astype("Int64")
        return s.astype(dtype)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return s
