"""The common findings schema shared by every analysis (pipelines, hazmat routes, fire lanes).

A finding says *what* (``kind``, ``message_*``), *where* (geometry, ``chainage_*``,
``station``), *which rule* (``rule_id``, ``rule_source``) and *by how much* (the measured
numbers: ``distance_m``, ``required_m``, ``shortfall_m`` …). ``finding_id`` is derived from
the kind and the ids of the objects involved, so it is stable between runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

__all__ = [
    "FINDING_COLUMNS",
    "SEVERITIES",
    "empty_findings",
    "finding_ids",
    "format_station",
    "format_stations",
    "make_findings",
]

SEVERITIES = ("critical", "high", "medium", "low", "info")

# Columns every findings frame has, in this order; analyses add their own measured columns.
FINDING_COLUMNS = (
    "finding_id",
    "kind",
    "severity",
    "layer",
    "feature_id",
    "other_layer",
    "other_id",
    "rule_id",
    "rule_source",
    "chainage_from_m",
    "chainage_to_m",
    "station",
    "message_zh",
    "message_en",
)


def format_station(chainage_m: float | None) -> str | None:
    """Chainage in metres → station ``K12+345.6`` (None stays None).

    Rounded half up to 0.1 m (12.25 → K0+012.3; 999.96 → K1+000.0), not half to even.
    """
    if chainage_m is None or not np.isfinite(chainage_m):
        return None
    tenths = int(np.floor(float(chainage_m) * 10 + 0.5))
    km, rest = divmod(tenths, 10000)
    return f"K{km}+{rest // 10:03d}.{rest % 10}"


def format_stations(chainage_m: np.ndarray | Sequence[float]) -> np.ndarray:
    """:func:`format_station` of every chainage, vectorised (object array; None where not
    finite)."""
    c = np.asarray(chainage_m, dtype=float)
    ok = np.isfinite(c)
    out = np.full(len(c), None, dtype=object)
    if not ok.any():
        return out
    tenths = np.floor(c[ok] * 10 + 0.5).astype(np.int64)
    km, rest = np.divmod(tenths, 10000)
    s = np.strings
    txt = s.add(s.add(s.add("K", km.astype(np.dtypes.StringDType())), "+"),
                s.add(s.add(s.zfill((rest // 10).astype(np.dtypes.StringDType()), 3), "."),
                      (rest % 10).astype(np.dtypes.StringDType())))
    out[ok] = txt.astype(object)
    return out


def finding_ids(kind: str, *id_columns: Sequence[object]) -> list[str]:
    """Stable ids ``kind:id1:id2…`` from the ids of the objects involved."""
    out: np.ndarray | None = None
    for col in id_columns:
        part = pd.Series(col, dtype="object").astype(str).to_numpy(dtype=object)
        out = np.add(f"{kind}:" if out is None else np.add(out, ":"), part)
    if out is None:
        return []
    return list(out)


def _texts(values: list[str]) -> object:
    """``values`` (all str) as the column pandas would make of them, handed over as Arrow
    strings: pandas' own inference checks every value in Python."""
    import pyarrow as pa

    dtype = pd.Series(["x"]).dtype
    if not values or dtype == np.dtype(object):
        return values
    return pd.array(pa.array(values, type=pa.large_string()), dtype=dtype)


def empty_findings(crs: object) -> gpd.GeoDataFrame:
    """An empty findings frame with the common columns."""
    return gpd.GeoDataFrame({c: pd.Series(dtype="object") for c in FINDING_COLUMNS},
                            geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def make_findings(
    frame: pd.DataFrame,
    *,
    kind: str,
    geometry: object,
    crs: object,
    id_columns: Sequence[str],
) -> gpd.GeoDataFrame:
    """Assemble a findings GeoDataFrame from ``frame``.

    ``frame`` holds the analysis columns (at least ``severity``, ``layer``, ``feature_id``,
    ``rule_id``, ``rule_source``, ``message_zh``, ``message_en``); missing common columns
    are added as nulls. ``finding_id`` is ``kind`` joined with ``id_columns``. Rows are
    sorted by ``finding_id`` so output is deterministic.
    """
    df = pd.DataFrame(frame).copy()
    df["kind"] = kind
    df["finding_id"] = _texts(finding_ids(kind, *(df[c].to_numpy() for c in id_columns)))
    for c in FINDING_COLUMNS:
        if c not in df.columns:
            df[c] = None
    if "station" in df.columns and df["station"].isna().all() and df["chainage_from_m"].notna().any():
        df["station"] = format_stations(df["chainage_from_m"].to_numpy(dtype=float))
    bad = set(df["severity"].dropna().unique()) - set(SEVERITIES)
    if bad:
        raise ValueError(f"unknown severity {sorted(bad)}; expected one of {SEVERITIES}")
    extra = [c for c in df.columns if c not in FINDING_COLUMNS]
    gdf = gpd.GeoDataFrame(df[list(FINDING_COLUMNS) + extra], geometry=gpd.GeoSeries(
        np.asarray(geometry, dtype=object) if not isinstance(geometry, gpd.GeoSeries) else geometry.values,
        index=df.index, crs=crs), crs=crs)
    return gdf.sort_values("finding_id", kind="stable").reset_index(drop=True)
