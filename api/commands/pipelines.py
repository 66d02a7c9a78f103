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

Both print a progress line per stage on stderr (``--quiet`` silences it), a summary table and
the rules applied (file, hash) on stdout. The analyses themselves run in
:class:`api.service.AnalysisService` (``api.runs.pipelines``); this module only parses the
arguments and prints. ``run_pipeline_check``, ``run_hca`` and ``Progress`` are still importable
from here for older callers (they resolve to :mod:`api.runs.pipelines`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from api.commands import add_district, group, note_absent, service, stamp
from api.commands.options import FINDING_FORMATS

if TYPE_CHECKING:
    import pandas as pd

    from api.service import AnalysisService

__all__ = ["register", "summary_table"]

# moved to api.runs.pipelines; resolved lazily so this module stays light
_MOVED = {"HcaRun": "HcaRun", "PipelineRun": "PipelineRun", "Progress": "Progress",
          "run_hca": "run_hca", "run_pipeline_check": "run_pipeline_check",
          "_search_radius": "search_radius", "RULE_FILES": "RULE_FILES"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from api.runs import pipelines

        return getattr(pipelines, _MOVED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    present = set(findings["severity"].dropna().unique().tolist())
    sev = [s for s in SEVERITIES if s in present]
    labels, counts = _crosstab(findings["kind"], findings["severity"], sev)
    rows = _rows(labels, counts)
    rows.append(["total", *counts.sum(axis=0).tolist(), int(counts.sum())])
    first = _table(["kind", *sev, "total"], rows)
    kinds = sorted(set(findings["kind"].unique().tolist()))
    labels, counts = _crosstab(findings[by].astype(str), findings["kind"], kinds)
    second = _table([by_label, *kinds, "total"], _rows(labels, counts))
    return first + "\n\n" + second


def _crosstab(index: pd.Series, columns: pd.Series, order: Sequence[object]
              ) -> tuple[list[object], Any]:
    """``pd.crosstab(index, columns).reindex(columns=order, fill_value=0)`` as (row labels,
    count matrix), counted with numpy: rows where either value is missing are left out, row
    labels sorted."""
    import numpy as np
    import pandas as pd

    ok = (index.notna() & columns.notna()).to_numpy()
    row, labels = pd.factorize(index[ok], sort=True)
    col = pd.Index(list(order)).get_indexer(columns[ok])
    keep = col >= 0
    counts = np.bincount(row[keep] * len(order) + col[keep],
                         minlength=len(labels) * len(order)).reshape(len(labels), len(order))
    return list(labels), counts


def _rows(labels: Sequence[object], counts: Any) -> list[list[object]]:
    """``[label, *counts, total]`` per row of a count matrix, column-wise."""
    return [[k, *v, t] for k, v, t in zip(labels, counts.tolist(),
                                          counts.sum(axis=1).tolist(), strict=True)]


# --- CLI -------------------------------------------------------------------------------------
def _check_out(path: str | None, flag: str = "--out") -> None:
    if path is not None and Path(path).suffix.lower() not in FINDING_FORMATS:
        from layers.errors import InputFileError

        raise InputFileError(f"{flag} {path!r}: expected a file ending in "
                             f"{', '.join(FINDING_FORMATS)}")


def _cmd_pipelines(args: argparse.Namespace) -> int:
    from api.runs.pipelines import paused_gc  # standard library only: the line comes first

    with paused_gc():  # the check and the writers allocate millions of short-lived objects
        return _check_pipelines(args)


def _check_pipelines(args: argparse.Namespace) -> int:
    from api.runs.pipelines import Progress

    _check_out(args.out)
    stream = None if args.quiet else sys.stderr
    prog = Progress(5, stream=stream)
    if args.engine != "dask":
        prog.step("loading")  # the first progress line, before geopandas & co. are imported
    from layers.writers import write_findings

    svc = service(args)
    if args.engine == "dask":
        return _cmd_dask(args, svc)
    run = svc.pipeline_check(pipeline_ids=args.pipeline, engine=args.engine, progress=prog)
    f = run.findings
    prog.step(f"writing {Path(args.out).name}")
    write_findings(f, args.out)
    prog.done()
    _report_inactive(run.rules, stream)
    print(summary_table(f))
    print(f"\nriskmap: {len(f)} finding(s) for {len(run.pipelines)} pipeline(s) → {args.out}")
    print(stamp(svc))
    return 0


def _cmd_dask(args: argparse.Namespace, svc: AnalysisService) -> int:
    from api.runs.pipelines import select_pipelines
    from layers.dask_engine import check_pipelines_dask
    from layers.errors import InputFileError, missing_layer

    if Path(args.out).suffix.lower() != ".gpkg":
        raise InputFileError(f"--out {args.out!r}: --engine dask writes its findings part by "
                             "part into a GeoPackage; use a .gpkg file")
    store = svc.store
    rs = svc.pipeline_rules()
    missing = [n for n in ("pipelines", "buildings") if not store.has_layer(n)]
    if missing:
        raise missing_layer(store.url, missing, "the pipeline check")
    pipes = select_pipelines(store.read("pipelines"), args.pipeline)
    res = check_pipelines_dask(pipes, store, occupancy_rules=rs.rows("occupancy"),
                               setback_rules=rs.rows("setback"), out=args.out,
                               scheduler=args.scheduler)
    print(f"riskmap: {res.findings} finding(s) from {res.buildings:,} buildings in "
          f"{res.partitions} partitions ({res.scheduler}) in {res.seconds:.1f} s → {res.out}")
    print(stamp(svc))
    return 0


def _report_inactive(rs: Any, stream: TextIO | None) -> None:
    off = rs.inactive()
    if off and stream is not None:
        stream.write(f"riskmap: {len(off)} UNCONFIRMED/inactive rule row(s) not applied "
                     f"({', '.join(r.id for r in off[:4])}{' …' if len(off) > 4 else ''}); "
                     "switch one on with `active = true` in a --rules file after checking it\n")


def _cmd_hca(args: argparse.Namespace) -> int:
    import pandas as pd

    from api.runs.pipelines import Progress, monitoring_target
    from geo.hca import hca_polygons
    from layers.writers import write_findings

    for flag in ("out", "segments", "corridors", "location_classes"):
        _check_out(getattr(args, flag), "--" + flag.replace("_", "-"))
    svc = service(args)
    store = svc.store
    stream = None if args.quiet else sys.stderr
    prog = Progress(6, stream=stream)
    run = svc.hca(year=args.year, progress=prog)
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
        target = float(monitoring_target(run.rules, args.year)["target"])
        print(f"video monitoring of people-dense HCAs: {share:.1%} of {total / 1000:.2f} km "
              f"(target {args.year}: {target:.0%})\n")
    print(summary_table(run.findings, by="feature_id", by_label="object"))
    print(f"\nriskmap: {len(seg)} HCA segment(s), {len(run.findings)} finding(s) → {args.out}")
    print(stamp(svc))
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
    add_district(p)
    p.add_argument("--out", metavar="FILE", required=True,
                   help="findings file: .geojson, .gpkg or .csv")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")

