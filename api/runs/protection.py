"""Pipeline external protection on a store: the construction-site check and the machine early
warning (issue 16).

:func:`build_index` reads ``pipelines``, ``pipeline_facilities`` and ``construction_sites`` once
and indexes the zones (:func:`geo.protection.prepare_zones`); :class:`api.service.AnalysisService`
keeps it per store version and rules version, for the CLI, the API and the maps alike.
:func:`parse_positions` validates a batch of machine positions (rows it cannot use are named,
the others are checked) and :func:`check_batch` turns the alerting ones into records.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS, Transformer

from geo.crs import STORAGE_CRS, analysis_crs, gcj02_to_wgs84, to_analysis
from geo.protection import (
    HeldSites,
    ProtectionZones,
    alert_texts,
    check_construction,
    check_positions,
    held_areas,
    prepare_zones,
)
from layers.errors import InputFileError, LayerNotFoundError, missing_layer
from layers.protection_rules import ProtectionRules
from layers.schema import CONSTRUCTION_WORKS, SCHEMAS
from layers.store import Store

if TYPE_CHECKING:
    from api.service import AnalysisService

__all__ = [
    "ALERT_COLUMNS",
    "MAX_POSITIONS",
    "PositionBatch",
    "ProtectionIndex",
    "alerts_geodataframe",
    "build_index",
    "check_batch",
    "check_records",
    "parse_positions",
    "protection_findings",
    "protection_index",
    "protection_rules",
    "read_positions",
    "run_protection",
]

MAX_POSITIONS = 100_000
"""Largest batch of positions one request or file may carry."""

ALERT_COLUMNS = (
    "alert_id", "machine_id", "kind", "work", "time", "lon", "lat", "severity", "rule_id",
    "rule_source", "clause", "other_layer", "other_id", "pipeline_id", "distance_m",
    "required_m", "message_zh", "message_en",
)  # fmt: skip
_GCJ = ("gcj02", "gcj-02", "gcj_02")


@dataclass(frozen=True)
class ProtectionIndex:
    """The zones and permitted sites of a store, in its analysis CRS, plus the work names
    machine reports may use (work kinds, their Chinese names, machine names)."""

    zones: ProtectionZones
    held: HeldSites
    crs: CRS
    names: Mapping[str, str]
    rules: ProtectionRules
    _to_xy: dict[str, Transformer] = field(default_factory=dict, repr=False, compare=False)

    def transformer(self, crs: CRS) -> Transformer:
        """lon/lat (``crs``, axis order lon, lat) → the analysis CRS (cached)."""
        key = crs.to_wkt()
        t = self._to_xy.get(key)
        if t is None:
            t = Transformer.from_crs(crs, self.crs, always_xy=True)
            self._to_xy[key] = t
        return t


def _work_names(rules: ProtectionRules) -> dict[str, str]:
    names = {w: w for w in CONSTRUCTION_WORKS}
    names.update({k.lower(): v for k, v in SCHEMAS["construction_sites"]["work"].synonyms})
    names.update({k.lower(): v for k, v in rules.machine_kinds.items()})
    return names


def _read(store: Store, layer: str, crs: Any) -> gpd.GeoDataFrame | None:
    if not store.has_layer(layer):
        return None
    gdf = store.read(layer)
    return to_analysis(gdf, crs=crs) if len(gdf) else gdf.set_crs(crs, allow_override=True)


def _pipelines(store: Store, needed_by: str) -> tuple[gpd.GeoDataFrame, CRS]:
    if not store.has_layer("pipelines"):
        raise missing_layer(store.url, "pipelines", needed_by)
    pipes = store.read("pipelines")
    if pipes.empty:
        raise LayerNotFoundError(f"store {store.url}: layer 'pipelines' is empty; import "
                                 "pipelines first")
    crs = analysis_crs(pipes)
    return to_analysis(pipes, crs=crs).reset_index(drop=True), crs


def build_index(store: Store, *, rules: ProtectionRules) -> ProtectionIndex:
    """Zones of ``store``'s pipelines and facilities and its permitted active sites."""
    pipes, crs = _pipelines(store, "the machine early warning")
    fac = _read(store, "pipeline_facilities", crs)
    sites = _read(store, "construction_sites", crs)
    zones = prepare_zones(pipes, fac, rules=rules)
    return ProtectionIndex(zones, held_areas(sites, zones), crs, _work_names(rules), rules)


def run_protection(store: Store, *, rules: ProtectionRules, on: dt.date,
                   index: ProtectionIndex | None = None) -> gpd.GeoDataFrame:
    """Findings of every construction site of ``store`` on day ``on`` (analysis CRS)."""
    if not store.has_layer("construction_sites"):
        raise missing_layer(store.url, "construction_sites", "the construction-permit check")
    pipes, crs = _pipelines(store, "the construction-permit check")
    sites = _read(store, "construction_sites", crs)
    fac = _read(store, "pipeline_facilities", crs)
    assert sites is not None
    zones = index.zones if index is not None else None
    return check_construction(sites, pipes, fac, rules=rules, on=on, zones=zones)


# --- through the service (one cache for the CLI, the API and the maps) ------------------------
def protection_rules(svc: AnalysisService) -> ProtectionRules:
    """The protection rules with the district file applied (cached per rules version)."""
    from layers.protection_rules import load_protection_rules

    key = ("rules", "protection", str(svc.district.rules), svc.rules_version)
    return svc.cache.get(key, lambda: load_protection_rules(svc.district.rules))  # type: ignore[no-any-return]


def protection_index(svc: AnalysisService) -> ProtectionIndex:
    """The zones and permitted sites of the service's store (per store and rules version)."""
    return svc.cached("protection_index",  # type: ignore[no-any-return]
                      lambda: build_index(svc.store, rules=protection_rules(svc)))


def protection_findings(svc: AnalysisService, on: dt.date | None = None) -> gpd.GeoDataFrame:
    """Construction-site findings on day ``on`` (default: today in the district)."""
    day = on if on is not None else svc.district.now().date()
    return svc.cached(("protection_findings", day.isoformat()),  # type: ignore[no-any-return]
                      lambda: run_protection(svc.store, rules=protection_rules(svc), on=day,
                                             index=protection_index(svc)))


def check_records(svc: AnalysisService, records: Sequence[Mapping[str, Any]], *,
                  crs: object = None) -> tuple[pd.DataFrame, PositionBatch]:
    """Validate and check a batch of position records: (alerts, the parsed batch)."""
    index = protection_index(svc)
    batch = parse_positions(records, crs=crs, tz=svc.district.tz, names=index.names)
    return check_batch(index, batch), batch


# --- positions ------------------------------------------------------------------------------
@dataclass
class PositionBatch:
    """Validated positions (the usable rows) and the rows refused, each named."""

    row: np.ndarray
    machine_id: np.ndarray
    kind: np.ndarray
    work: np.ndarray
    time: list[dt.datetime]  # aware, in the district's zone
    day: np.ndarray  # day ordinal of each time in the district
    lon: np.ndarray
    lat: np.ndarray
    crs: str
    rejected: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.row)


@functools.lru_cache(maxsize=64)
def _crs_of(text: str | None) -> tuple[CRS | None, str]:
    """The CRS of a ``crs`` field (default EPSG:4326; ``GCJ-02`` accepted)."""
    if text is None or str(text).strip() == "":
        return CRS.from_epsg(4326), "EPSG:4326"
    t = str(text).strip()
    if t.lower() in _GCJ:
        return None, "GCJ-02"
    if t.upper() in ("CRS84", "OGC:CRS84") or t.endswith("/OGC/1.3/CRS84"):
        return CRS.from_epsg(4326), "EPSG:4326"
    try:
        crs = CRS.from_user_input(t)
    except Exception:  # pyproj raises CRSError (a plain Exception subclass)
        raise InputFileError(f"crs is {t!r}; expected EPSG:4326 (GPS), EPSG:4490 or "
                             "GCJ-02") from None
    if not crs.is_geographic:
        raise InputFileError(f"crs is {t!r} (projected); positions are lon/lat: expected "
                             "EPSG:4326 (GPS), EPSG:4490 or GCJ-02")
    return crs, crs.to_string()


_TIME_EXPECTED = ("an ISO 8601 time, e.g. 2026-12-07T09:30:00 (district time) or "
                  "2026-12-07T01:30:00Z")


def _degrees(v: Any, limit: float) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and abs(f) <= limit else None


def _time(v: Any, tz: dt.tzinfo) -> dt.datetime | None:
    if not isinstance(v, str):
        return None
    t = v.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    try:
        when = dt.datetime.fromisoformat(t)
        return when.replace(tzinfo=tz) if when.tzinfo is None else when.astimezone(tz)
    except (ValueError, OverflowError):  # not ISO, or out of range once in the district's zone
        return None


def parse_positions(records: Sequence[Mapping[str, Any]], *, crs: object = None,
                    tz: dt.tzinfo, names: Mapping[str, str]) -> PositionBatch:
    """Validate ``records`` (``machine_id``, ``kind``, ``time``, ``lon``, ``lat``).

    ``time`` is ISO 8601; without an offset it is read in ``tz`` (the district's zone).
    ``kind`` is a work kind (excavation, 开挖 …) or a machine name (excavator, 挖掘机 …).
    Rows with a problem are left out and listed in ``rejected`` (row, machine_id, field,
    received, expected), every problem of a row named. One pass over the records (they
    arrive as Python objects); the check itself is vectorised.
    """
    if len(records) > MAX_POSITIONS:
        raise InputFileError(f"{len(records)} positions in one batch; expected at most "
                             f"{MAX_POSITIONS}")
    _, crs_name = _crs_of(None if crs is None else str(crs))
    rows: list[int] = []
    mids: list[str] = []
    kinds: list[str] = []
    works: list[str] = []
    times: list[dt.datetime] = []
    lons: list[float] = []
    lats: list[float] = []
    rejected: list[dict[str, Any]] = []
    kind_expected = ("a work kind (" + ", ".join(CONSTRUCTION_WORKS) + ") or a machine name "
                     "(excavator, 挖掘机, drill_rig, pile_driver …)")
    days: list[int] = []
    for i, r in enumerate(records):
        get = r.get
        raw_mid = get("machine_id")
        mid = None if raw_mid is None else str(raw_mid).strip()
        kind = get("kind")
        kind = kind.strip() if isinstance(kind, str) else None
        work = names.get(kind.lower()) if kind else None
        lon = _degrees(get("lon"), 180.0)
        lat = _degrees(get("lat"), 90.0)
        when = _time(get("time"), tz)
        if work is not None and lon is not None and lat is not None and mid and when:
            rows.append(i)
            mids.append(mid)
            kinds.append(kind)  # type: ignore[arg-type]
            works.append(work)
            times.append(when)
            days.append(when.toordinal())
            lons.append(lon)
            lats.append(lat)
            continue
        for f, ok, e in (("kind", work is not None, kind_expected),
                         ("lat", lat is not None, "a number of degrees in [-90, 90]"),
                         ("lon", lon is not None, "a number of degrees in [-180, 180]"),
                         ("machine_id", bool(mid), "a machine id"),
                         ("time", when is not None, _TIME_EXPECTED)):
            if ok:
                continue
            got = get(f)
            if isinstance(got, float) and not math.isfinite(got):
                got = None if math.isnan(got) else str(got)  # JSON has no inf
            rejected.append({"row": i, "machine_id": mid or None, "field": f,
                             "received": (got if got is None or isinstance(
                                 got, (int, float, str)) else str(got)),
                             "expected": e})
    return PositionBatch(
        row=np.array(rows, dtype=np.intp), machine_id=np.array(mids, dtype=object),
        kind=np.array(kinds, dtype=object), work=np.array(works, dtype=object), time=times,
        day=np.array(days, dtype=np.int64),
        lon=np.array(lons, dtype=float), lat=np.array(lats, dtype=float), crs=crs_name,
        rejected=rejected)


def _xy(index: ProtectionIndex, batch: PositionBatch) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray, np.ndarray]:
    """Analysis-CRS x, y and storage lon/lat (EPSG:4490) of the batch."""
    lon, lat = batch.lon, batch.lat
    crs, _ = _crs_of(batch.crs)
    if crs is None:  # GCJ-02: back to WGS 84 first
        lon, lat = gcj02_to_wgs84(lon, lat)
        crs = CRS.from_epsg(4326)
    x, y = index.transformer(crs).transform(lon, lat)
    if crs.equals(STORAGE_CRS) or crs.to_epsg() == 4326:  # same frame to < 1 m in China
        return np.asarray(x), np.asarray(y), np.asarray(lon), np.asarray(lat)
    slon, slat = Transformer.from_crs(crs, STORAGE_CRS, always_xy=True).transform(lon, lat)
    return np.asarray(x), np.asarray(y), np.asarray(slon), np.asarray(slat)


def check_batch(index: ProtectionIndex, batch: PositionBatch) -> pd.DataFrame:
    """Alerts of a validated batch: one row per alerting position, columns
    :data:`ALERT_COLUMNS` (``lon``/``lat`` in EPSG:4490), in the batch's order."""
    if len(batch) == 0:
        return pd.DataFrame({c: [] for c in ALERT_COLUMNS})
    x, y, lon, lat = _xy(index, batch)
    a = check_positions(index.zones, index.held, x=x, y=y, work=batch.work, day=batch.day)
    p = a["position"].astype(np.intp)
    texts = alert_texts(index.zones, a, batch.machine_id[p], batch.work[p])
    times = [batch.time[k].isoformat() for k in p.tolist()]
    mids = batch.machine_id[p]
    return pd.DataFrame({
        "alert_id": [f"{m}@{t}" for m, t in zip(mids, times, strict=True)],
        "machine_id": mids, "kind": batch.kind[p], "work": batch.work[p], "time": times,
        "lon": np.round(lon[p], 7), "lat": np.round(lat[p], 7),
        **{c: texts[c] for c in ("severity", "rule_id", "rule_source", "clause",
                                 "other_layer", "other_id", "pipeline_id")},
        "distance_m": np.round(a["distance_m"].astype(float), 3),
        "required_m": np.round(a["required_m"].astype(float), 3),
        "message_zh": texts["message_zh"], "message_en": texts["message_en"],
    })


def alerts_geodataframe(alerts: pd.DataFrame) -> gpd.GeoDataFrame:
    """Alerts as EPSG:4490 points (to write them as a file)."""
    return gpd.GeoDataFrame(alerts, geometry=gpd.points_from_xy(alerts["lon"], alerts["lat"]),
                            crs=STORAGE_CRS)


# --- files ----------------------------------------------------------------------------------------
def read_positions(path: str | Path) -> tuple[list[dict[str, Any]], str | None]:
    """Records and stated CRS of a positions file: CSV (``machine_id,kind,time,lon,lat``
    and an optional ``crs`` column holding one value) or GeoJSON (Point features with
    those properties; coordinates lon/lat, RFC 7946 = EPSG:4326 unless a ``crs`` member or
    property says otherwise)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"positions file {p} does not exist")
    ext = p.suffix.lower()
    if ext == ".csv":
        df = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        df.columns = [str(c).strip().lower() for c in df.columns]
        missing = [c for c in ("machine_id", "kind", "time", "lon", "lat") if c not in df]
        if missing:
            raise InputFileError(f"positions file {p}: no column(s) {', '.join(missing)}; "
                                 "expected machine_id,kind,time,lon,lat")
        crs_values = sorted({v for v in df.get("crs", pd.Series(dtype=str)) if v})
        if len(crs_values) > 1:
            raise InputFileError(f"positions file {p}: several CRSs in column crs "
                                 f"({', '.join(crs_values)}); expected one per file")
        recs = df.replace({"": None}).to_dict("records")
        return recs, (crs_values[0] if crs_values else None)
    if ext in (".geojson", ".json"):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputFileError(f"positions file {p} is not JSON: {exc}") from None
        feats = doc.get("features") if isinstance(doc, dict) else None
        if not isinstance(feats, list):
            raise InputFileError(f"positions file {p}: expected a GeoJSON FeatureCollection")
        named = doc.get("crs", {})
        crs = named.get("properties", {}).get("name") if isinstance(named, dict) else None
        recs = []
        for f in feats:
            props = dict(f.get("properties") or {}) if isinstance(f, dict) else {}
            geom = f.get("geometry") if isinstance(f, dict) else None
            coords = geom.get("coordinates") if isinstance(geom, dict) else None
            ok = (isinstance(geom, dict) and geom.get("type") == "Point"
                  and isinstance(coords, list) and len(coords) >= 2)
            props["lon"], props["lat"] = (coords[0], coords[1]) if ok and coords else (None, None)
            crs = crs or props.pop("crs", None)
            recs.append(props)
        return recs, crs
    raise InputFileError(f"positions file {p}: extension {p.suffix or '(none)'!r} is not "
                         "supported; use .csv or .geojson")
