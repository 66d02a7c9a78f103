"""Helpers shared by the audience builders: findings frames, layer adding, options."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import geopandas as gpd
import pandas as pd

from geo.crs import STORAGE_CRS
from geo.findings import FINDING_COLUMNS
from maps.base import LayerSpec, RemoteSource, RiskMapElement, layer_ids_in_findings
from maps.styles import GROUPS

__all__ = ["FindingsInput", "LayerInput", "add", "concat_findings", "group", "select_kinds"]

LayerInput: TypeAlias = gpd.GeoDataFrame | RemoteSource
FindingsInput: TypeAlias = gpd.GeoDataFrame | Sequence[gpd.GeoDataFrame] | None


def concat_findings(findings: FindingsInput) -> gpd.GeoDataFrame | None:
    """One findings frame in EPSG:4490 from a frame or a list of frames (None when empty)."""
    if findings is None:
        return None
    frames = [findings] if isinstance(findings, gpd.GeoDataFrame) else list(findings)
    frames = [f.to_crs(STORAGE_CRS) if f.crs is not None and f.crs != STORAGE_CRS else f
              for f in frames if f is not None and len(f)]
    if not frames:
        return None
    missing = [c for c in ("finding_id", "kind", "severity") if c not in frames[0].columns]
    if missing:
        raise ValueError(f"findings frame lacks {missing}; expected the common findings schema "
                         f"({', '.join(FINDING_COLUMNS)})")
    out = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry",
                           crs=frames[0].crs or STORAGE_CRS)
    return out


def select_kinds(findings: gpd.GeoDataFrame | None, kinds: Iterable[str] | None = None, *,
                 prefix: Iterable[str] = (), layers: Iterable[str] = ()) -> gpd.GeoDataFrame | None:
    """Findings whose kind is in ``kinds``, starts with a ``prefix`` or whose layer is listed."""
    if findings is None:
        return None
    kinds = set(kinds or ())
    prefix = tuple(prefix)
    layers = set(layers)
    k = findings["kind"].astype(str)
    mask = k.isin(kinds)
    if prefix:
        mask |= k.str.startswith(prefix)
    if layers and "layer" in findings.columns:
        mask |= findings["layer"].astype(str).isin(layers)
    out = findings[mask]
    return out if len(out) else None


def group(app: RiskMapElement, gid: str) -> str:
    zh, en = GROUPS[gid]
    app.add_group(gid, zh, en)
    return gid


def add(app: RiskMapElement, spec: LayerSpec, data: LayerInput | None,
        findings: Sequence[gpd.GeoDataFrame | None] = ()) -> None:
    """Add ``data`` under ``spec`` (skipped when None), keeping finding-referenced features."""
    if data is None:
        return
    group(app, spec.group) if spec.group in GROUPS else None
    keep = layer_ids_in_findings(findings, spec.id) if isinstance(data, gpd.GeoDataFrame) else None
    app.add_layer(spec, data, keep_ids=keep)


def get(layers: Mapping[str, Any], name: str) -> Any:
    v = layers.get(name)
    if isinstance(v, gpd.GeoDataFrame) and len(v) == 0:
        return None
    return v
