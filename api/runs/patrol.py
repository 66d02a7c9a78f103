"""HCA warning signs, patrol paths and statutory inspection on a store, and their rates.

Each function reads the layers it needs, projects them to the analysis CRS of the pipelines
and calls the pure ``geo.patrol`` / ``geo.inspection`` functions under the ``patrol.toml`` rule
tables (with the district file). The district's date (``on``) comes from the caller — the
service passes ``district.now().date()``, never the OS clock.

- :func:`run_patrol`: sign gaps along every HCA (identified segments of the HCA run and the
  registered ``hca`` layer, united), patrol-path coverage per pipeline, gap findings for the
  pipelines a plan target applies to;
- :func:`run_inspection`: inspection state of every pipeline, overdue / no-record findings,
  the rate;
- :func:`protection_stats`: the signs / patrol / inspection rates against the plan's years —
  what the dashboard reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from geo.crs import analysis_crs, to_analysis
from geo.findings import empty_findings
from layers.errors import missing_layer
from layers.rules import Rule, RuleSet, load_rules
from layers.store import Store

if TYPE_CHECKING:
    from api.service import AnalysisService

__all__ = [
    "CHANGE_ANALYSES",
    "Changes",
    "InspectionRun",
    "PatrolRun",
    "changes_since",
    "inspection_run",
    "load_patrol_rules",
    "patrol_run",
    "patrol_targets",
    "protection_stats",
    "run_inspection",
    "run_patrol",
]


def load_patrol_rules(rules: RuleSet | str | Path | None) -> RuleSet:
    """The ``patrol.toml`` tables with the district file ``rules``."""
    if isinstance(rules, RuleSet):
        return rules
    return load_rules("patrol", override=rules)


def _cite(row: Rule) -> str:
    """The row's source, tagged ``[UNCONFIRMED]`` until a district confirms the value."""
    return f"{row.source} [{row.confidence}]" if row.confidence == "UNCONFIRMED" else row.source


def _pipelines(store: Store) -> tuple[gpd.GeoDataFrame, Any]:
    if not store.has_layer("pipelines"):
        raise missing_layer(store.url, "pipelines", "the patrol and inspection checks")
    p = store.read("pipelines")
    crs = analysis_crs(p) if len(p) else CRS.from_epsg(4548)
    return (to_analysis(p, crs=crs).reset_index(drop=True) if len(p) else p.to_crs(crs)), crs


def _layer(store: Store, name: str, crs: Any, columns: dict[str, Any]) -> gpd.GeoDataFrame:
    if store.has_layer(name):
        g = store.read(name)
        return g.to_crs(crs) if len(g) else g.set_crs(crs, allow_override=True)
    return gpd.GeoDataFrame({k: pd.Series([], dtype=v) for k, v in columns.items()},
                            geometry=gpd.GeoSeries([], crs=crs), crs=crs)


# --- patrol ----------------------------------------------------------------------------------
@dataclass
class PatrolRun:
    """Result of :func:`run_patrol` (analysis CRS, metres)."""

    rules: RuleSet
    crs: Any
    on: date
    pipelines: gpd.GeoDataFrame
    hca: pd.DataFrame
    sign_coverage: gpd.GeoDataFrame
    sign_gaps: gpd.GeoDataFrame
    patrol_coverage: gpd.GeoDataFrame
    patrol_gaps: gpd.GeoDataFrame
    targets: dict[str, Rule]
    findings: gpd.GeoDataFrame


def patrol_targets(pipelines: pd.DataFrame, rows: tuple[Rule, ...], *,
                   year: int) -> dict[str, Rule]:
    """Pipeline id → the patrol target in force for it by ``year``: of the rows due by then
    that apply to the line (``named`` lines by name/id, ``operating`` lines by status and
    kind), the one due first (the plan's earliest deadline for it)."""
    out: dict[str, Rule] = {}
    ids = pipelines["id"].astype(str)
    names = pipelines["name"].fillna("").astype(str) if "name" in pipelines else ids * 0
    status = (pipelines["status"].fillna("in_service").astype(str) if "status" in pipelines
              else pd.Series("in_service", index=pipelines.index))
    kind = pipelines["kind"].astype(str) if "kind" in pipelines else pd.Series(
        "long_distance", index=pipelines.index)
    for row in sorted(rows, key=lambda r: (int(r["year"]), r.id)):
        if int(row["year"]) > year:
            continue
        if row["pipelines"] == "named":
            hit = pd.Series(False, index=pipelines.index)
            for n in row["names"]:
                hit |= names.str.contains(str(n), regex=False) | ids.str.contains(str(n),
                                                                                  regex=False)
        else:
            hit = status.isin(list(row.get("statuses", ["in_service"])))
            if "kinds" in row:
                hit &= kind.isin(list(row["kinds"]))
        for pid in ids[hit]:
            out.setdefault(pid, row)
    return out


def _hca_stretches(svc: AnalysisService | None, store: Store, pipes: gpd.GeoDataFrame,
                   crs: Any) -> pd.DataFrame:
    """Identified HCA segments (when the store has buildings) and registered HCA extents."""
    from geo.hca import registered_extents

    parts = []
    if svc is not None and store.has_layer("buildings"):
        seg = svc.hca().segments
        if len(seg):
            parts.append(pd.DataFrame(seg[["hca_id", "pipeline_id", "chainage_from_m",
                                           "chainage_to_m"]]))
    if store.has_layer("hca"):
        reg = store.read("hca").to_crs(crs)
        if len(reg):
            ext = registered_extents(reg, pipes)
            ext = ext[ext["known"]]
            parts.append(pd.DataFrame({"hca_id": ext["id"], "pipeline_id": ext["pipeline_id"],
                                       "chainage_from_m": ext["from_m"],
                                       "chainage_to_m": ext["to_m"]}))
    if not parts:
        return pd.DataFrame({"hca_id": [], "pipeline_id": [], "chainage_from_m": [],
                             "chainage_to_m": []})
    return pd.concat(parts, ignore_index=True)


def run_patrol(store: Store, *, rules: RuleSet | str | Path | None = None, on: date,
               svc: AnalysisService | None = None, year: int | None = None) -> PatrolRun:
    """Warning-sign gaps along HCAs and patrol-path coverage (see the module docstring).

    ``svc`` gives the identified HCA segments (its cached HCA run); without it only the
    registered HCAs are checked. ``year`` (default: the year of ``on``) selects the patrol
    targets due.
    """
    from geo.patrol import (
        patrol_coverage,
        patrol_gap_findings,
        patrol_gaps,
        sign_coverage,
        sign_gap_findings,
        sign_gaps,
    )

    rs = load_patrol_rules(rules)
    pipes, crs = _pipelines(store)
    sr, pr = rs.one("warning_signs"), rs.one("patrol_reach")
    signs = _layer(store, "warning_signs", crs, {"id": object, "pipeline_id": object,
                                                 "status": object})
    paths = _layer(store, "patrol_paths", crs, {"id": object, "pipeline_id": object,
                                                "passable": object})
    hca = _hca_stretches(svc, store, pipes, crs)
    kw: dict[str, Any] = {"spacing_m": float(sr["spacing_m"]),
                          "max_offset_m": sr.get("max_offset_m"),
                          "ok_status": tuple(sr.get("ok_status", ["ok"])),
                          "min_gap_m": float(sr.get("min_gap_m", 0.01))}
    scov = sign_coverage(hca, signs, pipes, **kw)
    sgap = sign_gaps(hca, signs, pipes, **kw)
    reach = float(pr["reach_m"])
    pmin = float(pr.get("min_gap_m", 0.01))
    pcov = patrol_coverage(pipes, paths, reach_m=reach, min_gap_m=pmin)
    pgap = patrol_gaps(pipes, paths, reach_m=reach, min_gap_m=pmin)
    targets = patrol_targets(pipes, rs.rows("patrol_target"),
                             year=int(year) if year is not None else on.year)
    f1 = sign_gap_findings(sgap, rule=sr, rule_source=_cite(sr))
    f2 = patrol_gap_findings(pgap, rule=pr, targets=targets, reach_m=reach,
                             rule_source=_cite(pr))
    parts = [f for f in (f1, f2) if len(f)]
    findings = (gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry",
                                 crs=crs).sort_values("finding_id", kind="stable")
                .reset_index(drop=True) if parts else empty_findings(crs))
    return PatrolRun(rs, crs, on, pipes, hca, scov, sgap, pcov, pgap, targets, findings)


# --- inspection ------------------------------------------------------------------------------
@dataclass
class InspectionRun:
    """Result of :func:`run_inspection` (analysis CRS, metres)."""

    rules: RuleSet
    crs: Any
    on: date
    status: gpd.GeoDataFrame
    rate: dict[str, Any]
    findings: gpd.GeoDataFrame


def run_inspection(store: Store, *, rules: RuleSet | str | Path | None = None,
                   on: date) -> InspectionRun:
    """Inspection state of every pipeline on the district's date ``on``, the overdue and
    no-record findings and the rate of the pipelines in service."""
    from geo.inspection import inspection_findings, inspection_rate, inspection_status

    rs = load_patrol_rules(rules)
    pipes, crs = _pipelines(store)
    row = rs.one("inspection")
    st = inspection_status(pipes, on=on, interval_years=int(row["interval_years"]),
                           statuses=tuple(row.get("statuses", ["in_service"])))
    found = inspection_findings(st, rule=row, on=on, rule_source=_cite(row))
    return InspectionRun(rs, crs, on, st, inspection_rate(st), found)


# --- the dashboard's rates -------------------------------------------------------------------
def protection_stats(svc: AnalysisService, *, on: date | None = None) -> dict[str, Any]:
    """Signs, patrol and inspection rates against the plan's years, for the dashboard.

    ``on`` defaults to the district's date. Returns::

        {"as_of": "2026-12-07", "rules": "...",
         "signs": {"year": 2022, "target": 1.0, "hca_m": …, "signed_m": …, "rate": …,
                   "gaps": n, "met": bool, "rule_id": …, "source": …},
         "patrol": [{"year": 2020, "target": 1.0, "rule_id": …, "pipelines": [...],
                     "length_m": …, "served_m": …, "rate": …, "met": bool, "source": …}, …],
         "inspection": {"year": 2022, "target": None, "pipelines": n, "valid": n,
                        "rate_count": …, "rate_length": …, "overdue": n, "no_record": n, …},
         "by_year": {"2020": ["patrol_luning_2020"], "2022": [...]}}

    Rates are None where there is nothing to measure (no HCA, no target pipeline). Layers the
    store lacks count as empty (no sign, no path): the rate then says 0, not "unknown".
    """
    today = svc.district.now().date()
    day = on if on is not None else today
    if day == today:  # the service's cached runs
        pr, ins = patrol_run(svc), inspection_run(svc)
        rs = pr.rules
    else:
        rs = load_patrol_rules(svc.district.rules)
        pr = run_patrol(svc.store, rules=rs, on=day, svc=svc)
        ins = run_inspection(svc.store, rules=rs, on=day)
    st = rs.one("sign_target")
    hca_m = float(pr.sign_coverage["length_m"].sum()) if len(pr.sign_coverage) else 0.0
    signed = float(pr.sign_coverage["signed_m"].sum()) if len(pr.sign_coverage) else 0.0
    s_rate = round(signed / hca_m, 6) if hca_m > 0 else None
    signs = {"year": int(st["year"]), "target": float(st["target"]), "rule_id": st.id,
             "hca_m": round(hca_m, 3), "signed_m": round(signed, 3), "rate": s_rate,
             "gaps": len(pr.sign_gaps),
             "met": s_rate is None or s_rate >= float(st["target"]) - 1e-9,
             "source": st.source}
    patrol = []
    cov = pr.patrol_coverage.set_index("pipeline_id")
    for row in sorted(rs.rows("patrol_target"), key=lambda r: (int(r["year"]), r.id)):
        ids = sorted(patrol_targets(pr.pipelines, (row,), year=9999))
        ln = float(cov.loc[ids, "length_m"].sum()) if ids else 0.0
        sv = float(cov.loc[ids, "served_m"].sum()) if ids else 0.0
        rate = round(sv / ln, 6) if ln > 0 else None
        patrol.append({"year": int(row["year"]), "target": float(row["target"]),
                       "rule_id": row.id, "pipelines": ids, "length_m": round(ln, 3),
                       "served_m": round(sv, 3), "rate": rate,
                       "met": rate is None or rate >= float(row["target"]) - 1e-9,
                       "source": row.source})
    it = rs.one("inspection_target")
    inspection = {"year": int(it["year"]), "target": it.get("target"), "rule_id": it.id,
                  **ins.rate, "source": it.source}
    by_year: dict[str, list[str]] = {}
    for item in (signs, *patrol, inspection):
        by_year.setdefault(str(item["year"]), []).append(str(item["rule_id"]))
    return {"as_of": day.isoformat(), "rules": svc.district.rules_label, "signs": signs,
            "patrol": patrol, "inspection": inspection,
            "by_year": dict(sorted(by_year.items()))}



# --- through the service ---------------------------------------------------------------------
def patrol_run(svc: AnalysisService) -> PatrolRun:
    """:func:`run_patrol` on the service's store, rules and district date (cached per store
    version, rules version and date)."""
    day = svc.district.now().date()
    return svc.cached(("patrol", day.isoformat()),  # type: ignore[no-any-return]
                      lambda: run_patrol(svc.store, rules=svc.district.rules, on=day, svc=svc))


def inspection_run(svc: AnalysisService) -> InspectionRun:
    """:func:`run_inspection` on the service's store, rules and district date (cached)."""
    day = svc.district.now().date()
    return svc.cached(("inspection", day.isoformat()),  # type: ignore[no-any-return]
                      lambda: run_inspection(svc.store, rules=svc.district.rules, on=day))


# --- changes since a snapshot ----------------------------------------------------------------
#: Findings analyses compared by ``changes`` by default: the pipeline-safety ones (the planner's
#: survey questions), whichever of them the store can run.
CHANGE_ANALYSES = ("pipeline_findings", "hca_findings", "protection_findings",
                   "patrol_findings", "inspection_findings")
CHANGE_COLUMNS = ("section", "change", "layer", "feature_id", "fields", "moved_m", "analysis",
                  "finding_id", "was_finding_id", "kind", "severity", "message_zh", "message_en")


@dataclass
class Changes:
    """What :func:`changes_since` found: one frame (EPSG:4490) with a row per feature added,
    removed or changed and per finding new or gone, the counts, and what was skipped."""

    since: dict[str, Any]
    frame: gpd.GeoDataFrame
    counts: dict[str, Any]
    skipped: dict[str, str]


def _snapshot_service(svc: AnalysisService, snap: Store, created: str) -> AnalysisService:
    """A service on the snapshot judged on the snapshot's own date and the same rules."""
    from datetime import datetime

    from api.district import District
    from api.service import AnalysisService

    when = datetime.fromisoformat(created)
    if when.tzinfo is None:
        when = when.replace(tzinfo=svc.district.tz)
    d = District(svc.district.rules, timezone=svc.district.timezone, clock=lambda: when)
    return AnalysisService(snap, d, cache=svc.cache)


def _pair(new: gpd.GeoDataFrame, gone: gpd.GeoDataFrame
          ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, dict[str, str]]:
    """A finding whose id holds its extent (an HCA diff's chainage range) moves when the
    extent does: one gone and one new finding of the same kind and feature are one *changed*
    finding. Returns (new, gone without the paired ones, new id → old id)."""
    if new.empty or gone.empty:
        return new, gone, {}
    key = ["kind", "feature_id"]
    n = new.groupby(key, dropna=False)["finding_id"].agg(["count", "first"])
    g = gone.groupby(key, dropna=False)["finding_id"].agg(["count", "first"])
    both = n.add_suffix("_n").join(g.add_suffix("_g"), how="inner")
    both = both[(both["count_n"] == 1) & (both["count_g"] == 1)]
    was = dict(zip(both["first_n"], both["first_g"], strict=True))
    return new, gone[~gone["finding_id"].isin(list(was.values()))], was


def changes_since(svc: AnalysisService, name: str, *,
                  analyses: tuple[str, ...] | None = None,
                  tolerance_m: float = 0.01) -> Changes:
    """Features added / removed / changed per layer since snapshot ``name``, and findings new
    or gone: each analysis runs on the snapshot (judged on its date) and on the store now
    (judged today), both through the analysis service; findings are matched by
    ``finding_id``; one gone and one new finding of the same kind and feature (an extent that
    moved) are one *changed* finding (``was_finding_id``). ``analyses`` defaults to
    :data:`CHANGE_ANALYSES` (those the store and the snapshot can both run; the others are
    listed in ``skipped``)."""
    import numpy as np

    from api import analysis as an
    from layers.snapshots import feature_changes, get_snapshot, snapshot_store

    store = svc.store
    info = get_snapshot(store, name)
    snap = snapshot_store(store, name)
    now_layers = [i.name for i in store.layers()]
    names = sorted(set(info.layers) | set(now_layers))
    ref = store.read("pipelines") if "pipelines" in now_layers else None
    crs = analysis_crs(ref) if ref is not None and len(ref) else None
    frames: list[pd.DataFrame] = []
    counts: dict[str, Any] = {"layers": {}, "findings": {}}
    skipped: dict[str, str] = {}
    for layer in names:
        after = store.read(layer) if layer in now_layers else None
        before = snap.read(layer) if layer in info.layers else None
        base = after if after is not None else before
        assert base is not None
        c = crs if crs is not None else (analysis_crs(base) if len(base) else CRS.from_epsg(4548))
        empty = base.iloc[:0]
        b = to_analysis(before if before is not None else empty, crs=c)
        a = to_analysis(after if after is not None else empty, crs=c)
        ch = feature_changes(b, a, layer=layer, tolerance_m=tolerance_m)
        counts["layers"][layer] = {k: int((ch["change"] == k).sum())
                                   for k in ("added", "removed", "changed")}
        if len(ch):
            frames.append(ch.assign(section="feature").to_crs(4490))
    wanted = analyses if analyses is not None else CHANGE_ANALYSES
    offered = {d.id: d for d in an.available() if d.findings}
    old_svc = _snapshot_service(svc, snap, info.created)
    for aid in wanted:
        defn = offered.get(aid)
        if defn is None:
            if analyses is not None:
                skipped[aid] = "no such findings analysis"
            continue
        miss = sorted(set(an.missing_layers(store, defn)) | set(an.missing_layers(snap, defn)))
        if miss:
            skipped[aid] = f"needs layer(s) {', '.join(miss)} (in the store and the snapshot)"
            continue
        now_f, old_f = svc.result(aid), old_svc.result(aid)
        new = now_f[~now_f["finding_id"].isin(old_f["finding_id"])]
        gone = old_f[~old_f["finding_id"].isin(now_f["finding_id"])]
        new, gone, was = _pair(new, gone)
        counts["findings"][aid] = {"new": len(new) - len(was), "gone": len(gone),
                                   "changed": len(was)}
        for change, f in (("new", new), ("gone", gone)):
            if len(f):
                g = f.to_crs(4490) if f.crs is not None else f
                fid = g["finding_id"].to_numpy()
                frames.append(gpd.GeoDataFrame(pd.DataFrame({
                    "section": "finding",
                    "change": [("changed" if i in was else change) for i in fid],
                    "layer": g["layer"].to_numpy(), "feature_id": g["feature_id"].to_numpy(),
                    "analysis": aid, "finding_id": fid,
                    "was_finding_id": [was.get(i) for i in fid], "kind": g["kind"].to_numpy(),
                    "severity": g["severity"].to_numpy(), "message_zh": g["message_zh"].to_numpy(),
                    "message_en": g["message_en"].to_numpy()}),
                    geometry=g.geometry.to_numpy(), crs=4490))
    cols = list(CHANGE_COLUMNS)
    if frames:
        out = pd.concat([pd.DataFrame(f) for f in frames], ignore_index=True)
        for col in cols:
            if col not in out:
                out[col] = None
        out = gpd.GeoDataFrame(out[[*cols, "geometry"]], geometry="geometry", crs=4490)
        out["moved_m"] = out["moved_m"].astype(float)
        out = out.astype({col: object for col in cols if col != "moved_m"})
        order = np.lexsort((out["finding_id"].fillna("").astype(str),
                            out["feature_id"].fillna("").astype(str),
                            out["change"].astype(str), out["layer"].fillna("").astype(str),
                            out["analysis"].fillna("").astype(str),
                            out["section"].astype(str)))
        out = out.iloc[order].reset_index(drop=True)
    else:
        out = gpd.GeoDataFrame({c: pd.Series([], dtype=object) for c in cols},
                               geometry=gpd.GeoSeries([], crs=4490), crs=4490)
    return Changes(info.as_dict(), out, counts, skipped)
