"""The pipeline analyses on a store: occupancy + setbacks, and HCAs (location classes, HCA
identification, the diff against registered HCAs, video-monitoring coverage).

Each function reads the layers it needs from the store (buildings only near the pipelines,
through the store's spatial index), projects them to the analysis CRS of the pipelines and
calls the pure ``geo`` functions. Rules are a :class:`~layers.rules.RuleSet` (or a district
rule file path, or None for the shipped tables). :mod:`api.service` calls these once per
(store version, rules version) and caches the result.

The module itself imports only the standard library (geopandas & co. are imported by the
functions that use them), so ``riskmap check pipelines`` can show its first progress line
before paying for them.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from layers.errors import InputFileError, missing_layer

if TYPE_CHECKING:
    import geopandas as gpd
    import numpy as np

    from layers.rules import RuleSet
    from layers.store import Store

__all__ = [
    "RULE_FILES",
    "HcaRun",
    "PipelineRun",
    "Progress",
    "load_pipeline_rules",
    "monitoring_target",
    "paused_gc",
    "run_hca",
    "run_pipeline_check",
    "search_radius",
    "select_pipelines",
]

RULE_FILES = ("pipelines", "location_class", "hca")


# --- progress --------------------------------------------------------------------------------
class Progress:
    """Stage progress on a stream: ``[####----] 2/5 reading buildings   1.3 s``.

    Call :meth:`step` when a stage starts and :meth:`done` at the end; ``timings`` holds the
    seconds per stage. Silent when ``stream`` is None.
    """

    def __init__(self, total: int, *, stream: TextIO | None = sys.stderr, width: int = 24) -> None:
        self.total = total
        self.stream = stream
        self.width = width
        self.n = 0
        self.t0 = time.perf_counter()
        self.t_stage = self.t0
        self.label = ""
        self.timings: dict[str, float] = {}

    def _close_stage(self) -> None:
        if self.label:
            self.timings[self.label] = time.perf_counter() - self.t_stage

    def step(self, label: str) -> None:
        self._close_stage()
        self.n += 1
        self.label = label
        self.t_stage = time.perf_counter()
        if self.stream is not None:
            filled = int(self.width * (self.n - 1) / max(self.total, 1))
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{bar}] {self.n}/{self.total} {label:<32}"
                              f" {self.t_stage - self.t0:6.1f} s")
            self.stream.flush()

    def done(self) -> float:
        self._close_stage()
        total = time.perf_counter() - self.t0
        if self.stream is not None:
            self.stream.write(f"\r[{'#' * self.width}] {self.total}/{self.total} "
                              f"{'done':<32} {total:6.1f} s\n")
            self.stream.flush()
        return total


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside (restored after): the check allocates millions of
    short-lived objects that reference counting frees, and the collector's passes over the
    frames alive meanwhile cost ~15 % of a dense check. Nests; the outermost restores."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# --- reading ---------------------------------------------------------------------------------
def _read(store: Store, layer: str, *, required: bool) -> gpd.GeoDataFrame | None:
    if not store.has_layer(layer):
        if required:
            raise missing_layer(store.url, layer, "the pipeline analyses")
        return None
    return store.read(layer)


def _require(store: Store, needed_by: str) -> None:
    """Fail before any work when ``pipelines`` or ``buildings`` is missing (both named)."""
    missing = [n for n in ("pipelines", "buildings") if not store.has_layer(n)]
    if missing:
        raise missing_layer(store.url, missing, needed_by)


def load_pipeline_rules(rules: RuleSet | str | Path | None) -> RuleSet:
    """The pipeline/location-class/HCA rule tables, with the district file ``rules``."""
    from layers.rules import RuleSet, load_rules

    if isinstance(rules, RuleSet):
        return rules
    return load_rules(*RULE_FILES, override=rules)


# --- pipelines -------------------------------------------------------------------------------
@dataclass
class PipelineRun:
    """Result of :func:`run_pipeline_check` (analysis CRS, metres)."""

    rules: RuleSet
    crs: Any
    pipelines: gpd.GeoDataFrame
    buildings_read: int
    findings: gpd.GeoDataFrame


def select_pipelines(pipes: gpd.GeoDataFrame, ids: Sequence[str] | None) -> gpd.GeoDataFrame:
    if not ids:
        return pipes
    missing = sorted(set(ids) - set(pipes["id"].astype(str)))
    if missing:
        raise InputFileError(f"--pipeline {', '.join(missing)}: no such pipeline; the store "
                             f"has {', '.join(pipes['id'].astype(str))}")
    return pipes[pipes["id"].astype(str).isin(list(ids))]


def run_pipeline_check(
    store: Store, *, rules: RuleSet | str | Path | None = None,
    pipeline_ids: Sequence[str] | None = None, engine: str = "local",
    progress: Progress | None = None,
) -> PipelineRun:
    """Occupancy and setback findings for the store's pipelines (``engine`` local or
    postgis); the cyclic garbage collector pauses meanwhile (:func:`paused_gc`)."""
    with paused_gc():
        return _run_pipeline_check(store, rules=rules, pipeline_ids=pipeline_ids, engine=engine,
                                   progress=progress)


def _run_pipeline_check(
    store: Store, *, rules: RuleSet | str | Path | None, pipeline_ids: Sequence[str] | None,
    engine: str, progress: Progress | None,
) -> PipelineRun:
    from pyproj import CRS

    from geo.crs import analysis_crs, to_analysis
    from geo.findings import empty_findings
    from geo.pipelines import check_pipelines
    from layers.near import read_near

    rs = load_pipeline_rules(rules)
    _require(store, "the pipeline check")
    step = progress.step if progress is not None else _no_step
    step("reading pipelines")
    pipes4490 = _read(store, "pipelines", required=True)
    assert pipes4490 is not None
    pipes4490 = select_pipelines(pipes4490, pipeline_ids)
    if pipes4490.empty:
        crs = CRS.from_epsg(4548)
        return PipelineRun(rs, crs, pipes4490, 0, empty_findings(crs))
    crs = analysis_crs(pipes4490)
    pipes = to_analysis(pipes4490, crs=crs).reset_index(drop=True)
    occ, sb = rs.rows("occupancy"), rs.rows("setback")
    if not store.has_layer("buildings"):
        raise missing_layer(store.url, "buildings", "the pipeline check")
    if engine == "postgis":
        from layers.pg_pushdown import check_pipelines_pushdown
        from layers.postgis import PostGISStore

        if not isinstance(store, PostGISStore):
            raise InputFileError(f"--engine postgis needs a postgresql:// store; got {store.url}")
        step("checking (candidates from PostGIS)")
        found = check_pipelines_pushdown(store, occupancy_rules=occ, setback_rules=sb, crs=crs,
                                         pipelines=pipes4490)
        n_read = -1
    elif engine == "local":
        step("reading buildings near pipelines")
        blds = read_near(store, "buildings", pipes, search_radius(pipes, occ, sb),
                         columns=["id", "use"])
        n_read = len(blds)
        step(f"checking {n_read:,} buildings")
        found = check_pipelines(pipes, blds, occupancy_rules=occ, setback_rules=sb)
    else:
        raise InputFileError(f"engine {engine!r}: expected local or postgis")
    return PipelineRun(rs, crs, pipes, n_read, found)


def _no_step(_label: str) -> None:
    return None


def search_radius(pipes: gpd.GeoDataFrame, occ: Sequence[Any], sb: Sequence[Any]) -> np.ndarray:
    """Per pipeline, where no rule can produce a finding any more, plus a 1 m margin."""
    from geo.pipelines import search_radius as radius

    return radius(pipes, occupancy_rules=occ, setback_rules=sb) + 1.0


# --- HCA -------------------------------------------------------------------------------------
@dataclass
class HcaRun:
    """Result of :func:`run_hca` (analysis CRS, metres)."""

    rules: RuleSet
    crs: Any
    location_classes: gpd.GeoDataFrame
    segments: gpd.GeoDataFrame
    coverage: gpd.GeoDataFrame
    findings: gpd.GeoDataFrame
    year: int


def monitoring_target(rs: RuleSet, year: int) -> Any:
    """The monitoring target row in force in ``year`` (the latest due)."""
    rows = sorted(rs.rows("monitoring"), key=lambda r: int(r["year"]))
    if not rows:
        raise InputFileError("no monitoring target rows in the rules")
    due = [r for r in rows if int(r["year"]) <= year]
    if not due:
        raise InputFileError(f"--year {year}: the first monitoring target is for "
                             f"{rows[0]['year']}")
    return due[-1]


def run_hca(
    store: Store, *, rules: RuleSet | str | Path | None = None, year: int = 2022,
    progress: Progress | None = None,
) -> HcaRun:
    """Location classes, HCA identification, registered-layer diff and monitoring coverage."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    from pyproj import CRS

    from geo.crs import analysis_crs, to_analysis
    from geo.findings import empty_findings
    from geo.hca import diff_hca, identify_hca, monitoring_coverage, monitoring_findings
    from geo.location_class import location_classes
    from layers.near import read_near

    rs = load_pipeline_rules(rules)
    _require(store, "the HCA check")
    step = progress.step if progress is not None else _no_step
    step("reading layers")
    pipes4490 = _read(store, "pipelines", required=True)
    assert pipes4490 is not None
    media = rs.one("pipeline_media")
    lc_rule = rs.one("location_class")
    long = pipes4490[pipes4490["kind"].isin(list(media["pipeline_kinds"]))
                     & pipes4490["medium"].isin(list(media["gas"]) + list(media["oil"]))]
    if "status" in long:
        long = long[long["status"] != "abandoned"]
    crs = analysis_crs(pipes4490) if len(pipes4490) else CRS.from_epsg(4548)
    pipes = to_analysis(long, crs=crs).reset_index(drop=True) if len(long) else long.to_crs(crs)
    from geo.hca import potential_impact_radius

    radii = [float(r["radius_m"]) for r in (*rs.rows("gas"), *rs.rows("oil")) if "radius_m" in r]
    pir = potential_impact_radius(pipes["diameter_mm"].to_numpy(dtype=float),
                                  pipes["pressure_mpa"].to_numpy(dtype=float),
                                  coefficient=float(rs.one("pir")["coefficient"]))
    radius = np.maximum(max([float(lc_rule["half_width_m"]), *radii]), pir) + 1.0
    blds = read_near(store, "buildings", pipes, radius)
    sites = _read(store, "sites", required=False)
    roads = _read(store, "roads", required=False)
    hca = _read(store, "hca", required=False)
    cams = _read(store, "cameras", required=False)
    sites = sites.to_crs(crs) if sites is not None else None
    roads = roads.to_crs(crs) if roads is not None else None
    hca = hca.to_crs(crs) if hca is not None else None
    cams = cams.to_crs(crs) if cams is not None else None
    step("location classes")
    lc = location_classes(pipes, blds, rule=lc_rule, household_rule=rs.one("households"),
                          sites=sites, gathering_rule=rs.one("gathering_places"),
                          design_factor_rule=rs.one("design_factor"))
    step("identifying HCAs")
    segs = identify_hca(pipes, blds, sites=sites, roads=roads, location_classes=lc,
                        gas_rows=rs.rows("gas"), oil_rows=rs.rows("oil"),
                        identified_site_rows=rs.rows("identified_sites"),
                        flammable_row=rs.one("flammable_sites"), media_row=media,
                        household_rule=rs.one("households"),
                        pir_coefficient=float(rs.one("pir")["coefficient"]),
                        location_half_width_m=float(lc_rule["half_width_m"]),
                        merge_gap_m=float(rs.one("hca_diff").get("merge_gap_m", 0.0)))
    step("diff against registered HCAs")
    all_pipes = to_analysis(pipes4490, crs=crs) if len(pipes4490) else pipes
    empty_hca = gpd.GeoDataFrame({"id": [], "pipeline_id": [], "grade": []},
                                 geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    reg = hca if hca is not None else empty_hca
    # registered HCAs on the analysed lines, and on lines the store does not have (reported)
    reg_long = (reg[reg["pipeline_id"].isin(pipes["id"])
                    | ~reg["pipeline_id"].isin(pipes4490["id"])] if len(reg) else reg)
    diff = diff_hca(segs, reg_long, all_pipes, rule=rs.one("hca_diff"))
    step("monitoring coverage")
    cams_ = cams if cams is not None else gpd.GeoDataFrame(
        {"id": [], "range_m": []}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    cov = monitoring_coverage(reg_long, all_pipes, cams_)
    mon = monitoring_findings(cov, target_row=monitoring_target(rs, year)) if len(cov) else None
    parts = [f for f in (diff, mon) if f is not None and len(f)]
    findings = (gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry",
                                 crs=crs).sort_values("finding_id").reset_index(drop=True)
                if parts else empty_findings(crs))
    return HcaRun(rs, crs, lc, segs, cov, findings, year)
