"""``riskmap check pipelines`` (occupancy + setbacks) and ``riskmap check hca`` (HCAs).

``riskmap check pipelines --store STORE [--rules FILE] --out FILE`` reads the pipelines and
the buildings near them (through the store's spatial index), projects them to the analysis
CRS of the pipelines and writes every occupancy / setback finding to FILE (``.geojson`` RFC
7946, ``.gpkg`` or ``.csv``). ``--engine postgis`` pushes the candidate search into a PostGIS
store; ``--engine dask`` runs partition by partition (``--scheduler``).

``riskmap check hca --store STORE [--rules FILE] --out FILE [--year 2022]`` computes the
location classes, identifies HCA segments (GB 32167-2015), diffs them against the registered
``hca`` layer and checks the video-monitoring coverage of people-dense HCAs against the plan's
target for ``--year``; ``--segments``, ``--corridors`` and ``--location-classes`` write the
identified segments (centre-line pieces), their corridors (polygons) and the location classes.

Both print a progress line per stage on stderr (``--quiet`` silences it) and a summary table
on stdout. :func:`run_pipeline_check` and :func:`run_hca` are the analyses on a store, for the
API and the maps.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from api.commands import group, note_absent, open_existing
from geo.crs import analysis_crs, to_analysis
from geo.findings import empty_findings
from layers.errors import InputFileError, missing_layer
from layers.near import read_near
from layers.rules import RuleSet, load_rules
from layers.store import Store
from layers.writers import FORMATS, write_findings

__all__ = [
    "HcaRun",
    "PipelineRun",
    "Progress",
    "register",
    "run_hca",
    "run_pipeline_check",
    "summary_table",
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


def _rules(rules: RuleSet | str | Path | None) -> RuleSet:
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


def _select(pipes: gpd.GeoDataFrame, ids: Sequence[str] | None) -> gpd.GeoDataFrame:
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
    postgis)."""
    from geo.pipelines import check_pipelines

    rs = _rules(rules)
    _require(store, "the pipeline check")
    step = progress.step if progress is not None else _no_step
    step("reading pipelines")
    pipes4490 = _read(store, "pipelines", required=True)
    assert pipes4490 is not None
    pipes4490 = _select(pipes4490, pipeline_ids)
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
        blds = read_near(store, "buildings", pipes, _search_radius(pipes, occ, sb),
                         columns=["id", "use"])
        n_read = len(blds)
        step(f"checking {n_read:,} buildings")
        found = check_pipelines(pipes, blds, occupancy_rules=occ, setback_rules=sb)
    else:
        raise InputFileError(f"engine {engine!r}: expected local or postgis")
    return PipelineRun(rs, crs, pipes, n_read, found)


def _no_step(_label: str) -> None:
    return None


def _search_radius(pipes: gpd.GeoDataFrame, occ: Sequence[Any], sb: Sequence[Any]) -> np.ndarray:
    """Per pipeline, where no rule can produce a finding any more, plus a 1 m margin."""
    from geo.pipelines import search_radius

    return search_radius(pipes, occupancy_rules=occ, setback_rules=sb) + 1.0


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


def _target_row(rs: RuleSet, year: int) -> Any:
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
    from geo.hca import diff_hca, identify_hca, monitoring_coverage, monitoring_findings
    from geo.location_class import location_classes

    rs = _rules(rules)
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
    mon = monitoring_findings(cov, target_row=_target_row(rs, year)) if len(cov) else None
    parts = [f for f in (diff, mon) if f is not None and len(f)]
    findings = (gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry",
                                 crs=crs).sort_values("finding_id").reset_index(drop=True)
                if parts else empty_findings(crs))
    return HcaRun(rs, crs, lc, segs, cov, findings, year)


# --- summary ---------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                      enumerate(zip(r, widths, strict=True))) for r in cells]
    return "\n".join(out)


def summary_table(findings: pd.DataFrame, *, by: str = "other_id", by_label: str = "pipeline") -> str:
    """Counts by kind × severity and by ``by`` (the pipeline for the pipeline check)."""
    from geo.findings import SEVERITIES

    if findings.empty:
        return "no findings"
    sev = [s for s in SEVERITIES if s in set(findings["severity"])]
    ct = pd.crosstab(findings["kind"], findings["severity"]).reindex(columns=sev, fill_value=0)
    rows = [[k, *ct.loc[k].tolist(), int(ct.loc[k].sum())] for k in ct.index]
    rows.append(["total", *ct.sum().tolist(), int(ct.values.sum())])
    first = _table(["kind", *sev, "total"], rows)
    kinds = sorted(set(findings["kind"]))
    bt = pd.crosstab(findings[by].astype(str), findings["kind"]).reindex(columns=kinds, fill_value=0)
    rows2 = [[k, *bt.loc[k].tolist(), int(bt.loc[k].sum())] for k in bt.index]
    second = _table([by_label, *kinds, "total"], rows2)
    return first + "\n\n" + second


# --- CLI -------------------------------------------------------------------------------------
def _check_out(path: str | None, flag: str = "--out") -> None:
    if path is not None and Path(path).suffix.lower() not in FORMATS:
        raise InputFileError(f"{flag} {path!r}: expected a file ending in {', '.join(FORMATS)}")


def _cmd_pipelines(args: argparse.Namespace) -> int:
    _check_out(args.out)
    store = open_existing(args.store)
    stream = None if args.quiet else sys.stderr
    if args.engine == "dask":
        return _cmd_dask(args, store)
    prog = Progress(4, stream=stream)
    run = run_pipeline_check(store, rules=args.rules, pipeline_ids=args.pipeline,
                             engine=args.engine, progress=prog)
    f = run.findings
    prog.step(f"writing {Path(args.out).name}")
    write_findings(f, args.out)
    prog.done()
    _report_inactive(run.rules, stream)
    print(summary_table(f))
    print(f"\nriskmap: {len(f)} finding(s) for {len(run.pipelines)} pipeline(s) → {args.out}")
    return 0


def _cmd_dask(args: argparse.Namespace, store: Store) -> int:
    from layers.dask_engine import check_pipelines_dask

    if Path(args.out).suffix.lower() != ".gpkg":
        raise InputFileError(f"--out {args.out!r}: --engine dask writes its findings part by "
                             "part into a GeoPackage; use a .gpkg file")
    rs = _rules(args.rules)
    _require(store, "the pipeline check")
    pipes = _select(store.read("pipelines"), args.pipeline)
    res = check_pipelines_dask(pipes, store, occupancy_rules=rs.rows("occupancy"),
                               setback_rules=rs.rows("setback"), out=args.out,
                               scheduler=args.scheduler)
    print(f"riskmap: {res.findings} finding(s) from {res.buildings:,} buildings in "
          f"{res.partitions} partitions ({res.scheduler}) in {res.seconds:.1f} s → {res.out}")
    return 0


def _report_inactive(rs: RuleSet, stream: TextIO | None) -> None:
    off = rs.inactive()
    if off and stream is not None:
        stream.write(f"riskmap: {len(off)} UNCONFIRMED/inactive rule row(s) not applied "
                     f"({', '.join(r.id for r in off[:4])}{' …' if len(off) > 4 else ''}); "
                     "switch one on with `active = true` in a --rules file after checking it\n")


def _cmd_hca(args: argparse.Namespace) -> int:
    from geo.hca import hca_polygons

    for flag in ("out", "segments", "corridors", "location_classes"):
        _check_out(getattr(args, flag), "--" + flag.replace("_", "-"))
    store = open_existing(args.store)
    stream = None if args.quiet else sys.stderr
    prog = Progress(6, stream=stream)
    run = run_hca(store, rules=args.rules, year=args.year, progress=prog)
    note_absent(store, {"hca": "the diff against registered HCAs",
                        "cameras": "video-monitoring coverage of the registered HCAs",
                        "sites": "identified sites in HCA identification and location classes"})
    prog.step(f"writing {Path(args.out).name}")
    write_findings(run.findings, args.out)
    if args.segments:
        write_findings(run.segments, args.segments, layer="hca_segments")
    if args.corridors:
        write_findings(hca_polygons(run.segments), args.corridors, layer="hca_corridors")
    if args.location_classes:
        write_findings(run.location_classes, args.location_classes, layer="location_classes")
    prog.done()
    _report_inactive(run.rules, stream)
    seg = run.segments
    if len(seg):
        gt = pd.crosstab(seg["pipeline_id"], seg["grade"])
        print(_table(["pipeline", *gt.columns, "km"],
                     [[p, *gt.loc[p].tolist(),
                       f"{seg.loc[seg['pipeline_id'] == p, 'length_m'].sum() / 1000:.2f}"]
                      for p in gt.index]))
        print()
    if len(run.coverage):
        cov = run.coverage
        total = cov["length_m"].sum()
        share = cov["covered_m"].sum() / total if total else 0.0
        target = float(_target_row(run.rules, args.year)["target"])
        print(f"video monitoring of people-dense HCAs: {share:.1%} of {total / 1000:.2f} km "
              f"(target {args.year}: {target:.0%})\n")
    print(summary_table(run.findings, by="feature_id", by_label="object"))
    print(f"\nriskmap: {len(seg)} HCA segment(s), {len(run.findings)} finding(s) → {args.out}")
    return 0


def register(sub: argparse._SubParsersAction, groups: dict) -> None:  # type: ignore[type-arg]
    check = group(sub, groups, "check", "run a safety analysis and write its findings")
    p = check.add_parser(
        "pipelines", help="pipeline occupancy (占压) and setback violations (安全距离不足)",
        description="Find buildings over or too close to oil/gas pipelines; write the findings "
        "to --out (.geojson RFC 7946, .gpkg, .csv).")
    _common(p)
    p.add_argument("--pipeline", action="append", metavar="ID",
                   help="check only this pipeline (repeatable)")
    p.add_argument("--engine", choices=("local", "postgis", "dask"), default="local",
                   help="local (default), postgis (candidate search in a PostGIS store) or "
                        "dask (partitioned)")
    p.add_argument("--scheduler", default=None,
                   help="dask: 'local' (2 workers), 'threads' or a scheduler address")
    p.set_defaults(func=_cmd_pipelines)
    h = check.add_parser(
        "hca", help="high-consequence areas (高后果区): identify, diff, monitoring coverage",
        description="Identify HCA segments per GB 32167-2015, compare them with the registered "
        "hca layer and check the video-monitoring coverage of people-dense HCAs.")
    _common(h)
    h.add_argument("--year", type=int, default=2022,
                   help="monitoring target year (2020: 30 %%, 2021: 70 %%, 2022: 100 %%)")
    h.add_argument("--segments", metavar="FILE", help="also write the identified HCA segments")
    h.add_argument("--corridors", metavar="FILE", help="also write the HCA corridors (polygons)")
    h.add_argument("--location-classes", dest="location_classes", metavar="FILE",
                   help="also write the location-class ranges")
    h.set_defaults(func=_cmd_hca)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default="data/demo.gpkg",
                   help="GeoPackage path or postgresql:// URL (default data/demo.gpkg)")
    p.add_argument("--rules", metavar="FILE", default=None,
                   help="district rule file overriding rows of layers/rule_tables/*.toml by id")
    p.add_argument("--out", metavar="FILE", required=True,
                   help="findings file: .geojson, .gpkg or .csv")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")

