"""HCA warning signs (高后果区警示标识) and patrol paths (巡护通道) along pipelines.

Signs
    Overlapping or touching HCA stretches of a pipeline (identified segments and registered
    HCAs alike) are united first, so a stretch is judged once. A sign of an accepted status
    standing within ``max_offset_m`` of its pipeline's centre line *signs* the chainage
    ``[c - spacing_m / 2, c + spacing_m / 2]`` around its own chainage ``c`` (signs at most
    ``spacing_m`` apart, the first and last within ``spacing_m / 2`` of the HCA's ends). A
    *gap* is a stretch of an HCA no sign signs, longer than ``min_gap_m``: one missing sign in
    a row of signs ``spacing_m`` apart leaves a gap of exactly ``spacing_m``.

Patrol paths
    A point of a centre line is *served* when a passable patrol path of that pipeline (or one
    naming no pipeline) is within ``reach_m`` (distance <= reach_m). The served chainage is
    exact: each short piece of the line is intersected in closed form with the capsule of
    every path edge (:func:`geo.hca.reach_intervals`), no polygonal buffer.

Chainage is measured along :func:`geo.linref.line_reference` of each pipeline. All inputs
are projected, metres.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import require_projected
from geo.findings import empty_findings, format_stations, make_findings
from geo.hca import reach_intervals
from geo.linref import LineRef, chainage, line_reference, merge_intervals, pieces, substring

__all__ = [
    "hca_stretches",
    "patrol_coverage",
    "patrol_gap_findings",
    "patrol_gaps",
    "sign_coverage",
    "sign_gap_findings",
    "sign_gaps",
]

_GAP_COLS = ["hca_id", "pipeline_id", "chainage_from_m", "chainage_to_m", "gap_m",
             "station_from", "station_to", "signs_not_ok"]


# --- shared ----------------------------------------------------------------------------------
def _refs(pipelines: gpd.GeoDataFrame) -> dict[str, LineRef]:
    return {str(pid): line_reference(g) for pid, g in zip(pipelines["id"], pipelines.geometry,
                                                          strict=True)
            if g is not None and not g.is_empty}


def _complement(group: np.ndarray, lo: np.ndarray, hi: np.ndarray, start: np.ndarray,
                end: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group g in 0..n-1: the parts of [start[g], end[g]] outside the (merged, disjoint)
    intervals (group, lo, hi). Returns (group, from, to) of the uncovered parts."""
    order = np.lexsort((lo, group))
    g, a, z = group[order], lo[order], hi[order]
    # gaps before each interval: from the previous interval's end (or the group start)
    first = np.r_[True, g[1:] != g[:-1]] if len(g) else np.empty(0, dtype=bool)
    prev_end = np.where(first, start[g] if len(g) else np.empty(0), np.r_[0.0, z[:-1]])
    # the tail of each group after its last interval
    last = np.r_[g[1:] != g[:-1], True] if len(g) else np.empty(0, dtype=bool)
    empty = np.setdiff1d(np.arange(n), g)
    out_g = np.r_[g, g[last], empty].astype(np.int64)
    out_a = np.r_[prev_end, z[last], start[empty]]
    out_z = np.r_[a, end[g[last]] if len(g) else np.empty(0), end[empty]]
    keep = out_z > out_a
    o = np.lexsort((out_a[keep], out_g[keep]))
    return out_g[keep][o], out_a[keep][o], out_z[keep][o]


# --- signs -----------------------------------------------------------------------------------
def hca_stretches(hca_segments: pd.DataFrame) -> pd.DataFrame:
    """Unite the overlapping or touching HCA stretches of each pipeline.

    ``hca_segments``: ``hca_id``, ``pipeline_id``, ``chainage_from_m``, ``chainage_to_m``
    (identified segments, registered extents or both). Returns ``hca_id`` (the ids of the
    members, sorted, joined by ``+``), ``pipeline_id``, ``chainage_from_m``,
    ``chainage_to_m``, sorted by pipeline and chainage.
    """
    cols = ["hca_id", "pipeline_id", "chainage_from_m", "chainage_to_m"]
    seg = pd.DataFrame(hca_segments)[cols].copy()
    seg = seg[np.isfinite(seg["chainage_from_m"].astype(float))
              & np.isfinite(seg["chainage_to_m"].astype(float))].reset_index(drop=True)
    if seg.empty:
        return pd.DataFrame({c: pd.Series(dtype=float if c.startswith("chain") else object)
                             for c in cols})
    a = seg[["chainage_from_m", "chainage_to_m"]].astype(float).min(axis=1).to_numpy()
    z = seg[["chainage_from_m", "chainage_to_m"]].astype(float).max(axis=1).to_numpy()
    pid = seg["pipeline_id"].astype(str)
    codes, names = pd.factorize(pid, sort=True)
    g, lo, hi, lab = merge_intervals(codes, a, z, gap_m=0.0)
    ids = (pd.DataFrame({"lab": lab, "id": seg["hca_id"].astype(str)})
           .groupby("lab")["id"].agg(lambda s: "+".join(sorted(set(s)))))
    out = pd.DataFrame({"hca_id": ids.reindex(np.arange(len(g))).to_numpy(),
                        "pipeline_id": np.asarray(names)[g], "chainage_from_m": lo,
                        "chainage_to_m": hi})
    return out.sort_values(["pipeline_id", "chainage_from_m"], kind="stable").reset_index(
        drop=True)


def _sign_chainage(signs: gpd.GeoDataFrame, refs: Mapping[str, LineRef],
                   pipelines: gpd.GeoDataFrame, max_offset_m: float | None) -> pd.DataFrame:
    """id, pipeline_id, status, chainage_m, offset_m of each sign on a known pipeline within
    the offset (others dropped)."""
    cols = ["sign_id", "pipeline_id", "status", "chainage_m", "offset_m"]
    if signs.empty or not refs:
        return pd.DataFrame({c: [] for c in cols})
    pid = signs["pipeline_id"].astype(str).to_numpy()
    geoms = np.asarray(signs.geometry.values, dtype=object)
    status = (signs["status"].fillna("ok").astype(str).to_numpy() if "status" in signs
              else np.full(len(signs), "ok"))
    line_of = dict(zip(pipelines["id"].astype(str), pipelines.geometry, strict=True))
    frames = []
    for p in np.unique(pid):
        if p not in refs:
            continue
        sel = np.flatnonzero(pid == p)
        frames.append(pd.DataFrame({
            "sign_id": signs["id"].astype(str).to_numpy()[sel], "pipeline_id": p,
            "status": status[sel], "chainage_m": chainage(refs[p], geoms[sel]),
            "offset_m": shapely.distance(geoms[sel], line_of[p])}))
    if not frames:
        return pd.DataFrame({c: [] for c in cols})
    out = pd.concat(frames, ignore_index=True)
    if max_offset_m is not None:
        out = out[out["offset_m"] <= float(max_offset_m)]
    return out.reset_index(drop=True)


def _signs(
    hca_segments: pd.DataFrame, signs: gpd.GeoDataFrame, pipelines: gpd.GeoDataFrame, *,
    spacing_m: float, max_offset_m: float | None, ok_status: Sequence[str], min_gap_m: float,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(stretches with signed_m, gaps, sign chainages)."""
    require_projected(pipelines, "pipelines")
    require_projected(signs, "warning_signs")
    if not spacing_m > 0:
        raise ValueError(f"spacing_m is {spacing_m!r}; expected a length > 0 (metres)")
    refs = _refs(pipelines)
    st = hca_stretches(hca_segments)
    st = st[st["pipeline_id"].isin(list(refs))].reset_index(drop=True)
    sc = _sign_chainage(signs, refs, pipelines, max_offset_m)
    n = len(st)
    a = st["chainage_from_m"].to_numpy(dtype=float)
    z = st["chainage_to_m"].to_numpy(dtype=float)
    ok = sc[sc["status"].isin(list(ok_status))]
    half = float(spacing_m) / 2.0
    pairs = (st.reset_index(names="k")[["k", "pipeline_id"]]
             .merge(ok[["pipeline_id", "chainage_m", "sign_id"]], on="pipeline_id"))
    k = pairs["k"].to_numpy(dtype=np.int64)
    lo = np.maximum(pairs["chainage_m"].to_numpy(dtype=float) - half, a[k])
    hi = np.minimum(pairs["chainage_m"].to_numpy(dtype=float) + half, z[k])
    inside = hi >= lo
    g, mlo, mhi, _ = merge_intervals(k[inside], lo[inside], hi[inside], gap_m=0.0)
    signed = np.bincount(g, weights=mhi - mlo, minlength=n) if n else np.zeros(0)
    ch = pairs["chainage_m"].to_numpy(dtype=float)
    within = (ch >= a[k]) & (ch <= z[k])
    n_ok = np.bincount(k[within], minlength=n) if n else np.zeros(0, dtype=np.int64)
    st = st.assign(length_m=np.round(z - a, 3), signed_m=np.round(signed, 3),
                   share=np.round(np.divide(signed, z - a, out=np.ones(n), where=z > a), 6),
                   signs_ok=n_ok.astype(np.int64))
    gg, ga, gz = _complement(g, mlo, mhi, a, z, n)
    keep = gz - ga > float(min_gap_m)
    gg, ga, gz = gg[keep], ga[keep], gz[keep]
    gaps = pd.DataFrame({"k": gg, "pipeline_id": st["pipeline_id"].to_numpy()[gg],
                         "chainage_from_m": np.round(ga, 3), "chainage_to_m": np.round(gz, 3),
                         "gap_m": np.round(gz - ga, 3)})
    # the HCAs (as given, before uniting) each gap lies in
    seg = pd.DataFrame(hca_segments)[["hca_id", "pipeline_id", "chainage_from_m",
                                      "chainage_to_m"]].astype({"pipeline_id": str})
    hit = gaps.reset_index(names="gap")[["gap", "pipeline_id", "chainage_from_m",
                                         "chainage_to_m"]].merge(seg, on="pipeline_id",
                                                                 suffixes=("", "_h"))
    lo_h = hit[["chainage_from_m_h", "chainage_to_m_h"]].astype(float).min(axis=1)
    hi_h = hit[["chainage_from_m_h", "chainage_to_m_h"]].astype(float).max(axis=1)
    hit = hit[(lo_h < hit["chainage_to_m"]) & (hi_h > hit["chainage_from_m"])]
    members = hit.groupby("gap")["hca_id"].agg(lambda s: "+".join(sorted(set(s.astype(str)))))
    gaps.insert(1, "hca_id", pd.Series(members.reindex(np.arange(len(gaps))).to_numpy(),
                                       dtype=object))
    # signs on record but not in order (damaged, missing …) inside each gap
    bad = sc[~sc["status"].isin(list(ok_status))]
    gp = gaps.reset_index(names="gap").merge(bad, on="pipeline_id")
    gp = gp[(gp["chainage_m"] >= gp["chainage_from_m"]) & (gp["chainage_m"] <= gp["chainage_to_m"])]
    notes = (gp.sort_values("chainage_m").assign(txt=gp["sign_id"].astype(str) + " ("
                                                   + gp["status"].astype(str) + ")")
             .groupby("gap")["txt"].agg(", ".join))
    gaps["signs_not_ok"] = pd.Series(notes.reindex(np.arange(len(gaps))).to_numpy(),
                                     dtype=object).where(lambda s: s.notna(), "")
    gaps["station_from"] = format_stations(gaps["chainage_from_m"].to_numpy(dtype=float))
    gaps["station_to"] = format_stations(gaps["chainage_to_m"].to_numpy(dtype=float))
    gaps["geometry"] = [substring(refs[p], fa, fz) for p, fa, fz in
                        zip(gaps["pipeline_id"], gaps["chainage_from_m"],
                            gaps["chainage_to_m"], strict=True)]
    st["geometry"] = [substring(refs[p], fa, fz) for p, fa, fz in
                      zip(st["pipeline_id"], st["chainage_from_m"], st["chainage_to_m"],
                          strict=True)]
    return st, gaps.drop(columns=["k"]), sc


def sign_coverage(
    hca_segments: pd.DataFrame, signs: gpd.GeoDataFrame, pipelines: gpd.GeoDataFrame, *,
    spacing_m: float, max_offset_m: float | None = None, ok_status: Sequence[str] = ("ok",),
    min_gap_m: float = 0.01,
) -> gpd.GeoDataFrame:
    """Per united HCA stretch: ``hca_id``, ``pipeline_id``, ``chainage_from_m``,
    ``chainage_to_m``, ``length_m``, ``signed_m``, ``share`` (0–1), ``signs_ok``; geometry =
    the centre-line piece. Parameters as :func:`sign_gaps`."""
    st, _gaps, _sc = _signs(hca_segments, signs, pipelines, spacing_m=spacing_m,
                            max_offset_m=max_offset_m, ok_status=ok_status, min_gap_m=min_gap_m)
    return gpd.GeoDataFrame(st, geometry="geometry", crs=pipelines.crs)


def sign_gaps(
    hca_segments: pd.DataFrame, signs: gpd.GeoDataFrame, pipelines: gpd.GeoDataFrame, *,
    spacing_m: float, max_offset_m: float | None = None, ok_status: Sequence[str] = ("ok",),
    min_gap_m: float = 0.01,
) -> gpd.GeoDataFrame:
    """Stretches of HCAs where no sign in good order stands within the spacing.

    Parameters
    ----------
    hca_segments
        ``hca_id``, ``pipeline_id``, ``chainage_from_m``, ``chainage_to_m`` (identified
        segments and/or registered extents; united per pipeline first).
    signs
        Points, projected, metres: ``id``, ``pipeline_id``, ``status``.
    pipelines
        Projected, metres: ``id``.
    spacing_m
        Longest allowed distance between consecutive signs along the line.
    max_offset_m
        Signs farther from their centre line do not count (None: any distance).
    ok_status
        Sign statuses that count as in good order.
    min_gap_m
        Shorter uncovered stretches are not gaps (survey tolerance).

    Returns
    -------
    GeoDataFrame: ``hca_id``, ``pipeline_id``, ``chainage_from_m``, ``chainage_to_m``,
    ``gap_m``, ``station_from``, ``station_to``, ``signs_not_ok`` (ids and statuses of the
    signs on record in the gap that are not in order); geometry = the centre line of the gap.
    ``hca_id`` names the given HCAs the gap lies in (sorted, ``+``-joined).
    """
    _st, gaps, _sc = _signs(hca_segments, signs, pipelines, spacing_m=spacing_m,
                            max_offset_m=max_offset_m, ok_status=ok_status, min_gap_m=min_gap_m)
    return gpd.GeoDataFrame(gaps[[*_GAP_COLS, "geometry"]], geometry="geometry",
                            crs=pipelines.crs)


def sign_gap_findings(gaps: gpd.GeoDataFrame, *, rule: Mapping[str, Any],
                      rule_source: str | None = None) -> gpd.GeoDataFrame:
    """``hca_sign_gap`` findings (one per gap) of :func:`sign_gaps` under the
    ``warning_signs`` rule row (``id``, ``source``, ``spacing_m``, ``severity``).

    ``finding_id`` is ``hca_sign_gap:<pipeline>:<from>-<to>`` (stable while the gap stays);
    ``feature_id`` the HCAs it lies in."""
    crs = gaps.crs
    if gaps.empty:
        return empty_findings(crs)
    src = rule_source or str(rule["source"])
    src_en = str(rule.get("source_en", src))
    spacing = float(rule["spacing_m"])
    df = pd.DataFrame(gaps.drop(columns=gaps.geometry.name))
    df["feature_id"] = df["hca_id"]
    df["other_id"] = [f"{a:.1f}-{b:.1f}" for a, b in zip(df["chainage_from_m"],
                                                         df["chainage_to_m"], strict=True)]
    df["layer"], df["other_layer"] = "hca", "warning_signs"
    df["gap_key"] = df["pipeline_id"].astype(str)
    df["severity"] = str(rule.get("severity", "medium"))
    df["rule_id"], df["rule_source"], df["spacing_m"] = str(rule["id"]), src, spacing
    df["station"] = df["station_from"]
    df["message_zh"] = [
        f"高后果区 {h}（管道 {p}）{sa}–{sb} 段 {g:.1f} m 内无完好警示标识（间距不大于 "
        f"{spacing:g} m）" + (f"；该段标识 {b}" if b else "") + f"。依据：{src}。"
        for h, p, sa, sb, g, b in zip(df["hca_id"], df["pipeline_id"], df["station_from"],
                                     df["station_to"], df["gap_m"], df["signs_not_ok"],
                                     strict=True)]
    df["message_en"] = [
        f"HCA {h} (pipeline {p}) has no warning sign in good order along {g:.1f} m from {sa} "
        f"to {sb} (signs at most {spacing:g} m apart)" + (f"; signs there: {b}" if b else "")
        + f". Rule: {src_en}."
        for h, p, sa, sb, g, b in zip(df["hca_id"], df["pipeline_id"], df["station_from"],
                                     df["station_to"], df["gap_m"], df["signs_not_ok"],
                                     strict=True)]
    out = make_findings(df.drop(columns=["hca_id"]), kind="hca_sign_gap",
                        geometry=gaps.geometry, crs=crs, id_columns=["gap_key", "other_id"])
    return out.drop(columns=["gap_key"])


# --- patrol paths ----------------------------------------------------------------------------
def _served(pipelines: gpd.GeoDataFrame, paths: gpd.GeoDataFrame, reach_m: float,
            refs: list[LineRef], ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merged served intervals (line, from, to) and the number of paths serving each line."""
    e = np.empty(0)
    nline = np.zeros(len(refs), dtype=np.int64)
    if paths.empty or not refs:
        return np.empty(0, np.int64), e, e, nline
    passable = (paths["passable"].astype(object).where(paths["passable"].notna(), True)
                .astype(bool).to_numpy() if "passable" in paths
                else np.ones(len(paths), dtype=bool))
    geoms = np.asarray(paths.geometry.values, dtype=object)
    use = passable & ~shapely.is_empty(geoms) & ~pd.isna(geoms)
    if not use.any():
        return np.empty(0, np.int64), e, e, nline
    pidx = np.flatnonzero(use)
    pg = geoms[pidx]
    owner = (paths["pipeline_id"].astype(object).to_numpy()[pidx] if "pipeline_id" in paths
             else np.full(len(pidx), None, dtype=object))
    pcs = pieces(refs, max_length_m=200.0)
    qi, tj = shapely.STRtree(pg).query(pcs.geoms, predicate="dwithin", distance=float(reach_m))
    line_ids = pipelines["id"].astype(str).to_numpy()
    own = owner[tj]
    mine = pd.isna(own) | (own.astype(str) == line_ids[pcs.line[qi]])
    qi, tj = qi[mine], tj[mine]
    if len(qi) == 0:
        return np.empty(0, np.int64), e, e, nline
    iv = reach_intervals(pcs, qi, pg, tj, np.full(len(qi), float(reach_m)))
    g, lo, hi, _ = merge_intervals(iv["line"].to_numpy(), iv["from_m"].to_numpy(),
                                   iv["to_m"].to_numpy(), gap_m=1e-6)
    served_by = iv.drop_duplicates(["line", "target"])
    nline = np.bincount(served_by["line"].to_numpy(dtype=np.int64), minlength=len(refs))
    return g, lo, hi, nline


def _patrol(pipelines: gpd.GeoDataFrame, paths: gpd.GeoDataFrame, *, reach_m: float,
            min_gap_m: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    require_projected(pipelines, "pipelines")
    require_projected(paths, "patrol_paths")
    if not reach_m > 0:
        raise ValueError(f"reach_m is {reach_m!r}; expected a length > 0 (metres)")
    p = pipelines[~pipelines.geometry.isna() & ~pipelines.geometry.is_empty].reset_index(drop=True)
    refs = [line_reference(gm) for gm in p.geometry]
    g, lo, hi, npaths = _served(p, paths, reach_m, refs)
    n = len(refs)
    length = np.array([r.length_m for r in refs])
    served = np.bincount(g, weights=hi - lo, minlength=n) if n else np.zeros(0)
    cov = pd.DataFrame({
        "pipeline_id": p["id"].astype(str).to_numpy(),
        "name": p["name"].to_numpy() if "name" in p else None,
        "status": p["status"].fillna("in_service").to_numpy() if "status" in p else "in_service",
        "length_m": np.round(length, 3), "served_m": np.round(np.minimum(served, length), 3),
        "share": np.round(np.minimum(np.divide(served, length, out=np.zeros(n),
                                               where=length > 0), 1.0), 6),
        "paths": npaths.astype(np.int64), "geometry": p.geometry.to_numpy()})
    gg, ga, gz = _complement(g, lo, hi, np.zeros(n), length, n)
    keep = gz - ga > float(min_gap_m)
    gg, ga, gz = gg[keep], ga[keep], gz[keep]
    gaps = pd.DataFrame({"pipeline_id": cov["pipeline_id"].to_numpy()[gg],
                         "chainage_from_m": np.round(ga, 3), "chainage_to_m": np.round(gz, 3),
                         "gap_m": np.round(gz - ga, 3),
                         "station_from": format_stations(np.round(ga, 3)),
                         "station_to": format_stations(np.round(gz, 3)),
                         "geometry": [substring(refs[i], a, z) for i, a, z in
                                      zip(gg.tolist(), ga.tolist(), gz.tolist(), strict=True)]})
    return cov, gaps


def patrol_coverage(
    pipelines: gpd.GeoDataFrame, paths: gpd.GeoDataFrame, *, reach_m: float,
    min_gap_m: float = 0.01,
) -> gpd.GeoDataFrame:
    """Per pipeline the share of its length served by a passable patrol path.

    Parameters
    ----------
    pipelines
        Projected, metres: ``id`` (``name``, ``status`` kept for the targets).
    paths
        Lines, projected, metres: ``pipeline_id`` (None = serves any pipeline), ``passable``
        (None = passable).
    reach_m
        A path serves the points of its pipeline within this distance (inclusive).

    Returns
    -------
    GeoDataFrame: ``pipeline_id``, ``name``, ``status``, ``length_m``, ``served_m``,
    ``share`` (0–1), ``paths`` (passable paths serving it); geometry = the pipeline.
    """
    cov, _gaps = _patrol(pipelines, paths, reach_m=reach_m, min_gap_m=min_gap_m)
    return gpd.GeoDataFrame(cov, geometry="geometry", crs=pipelines.crs)


def patrol_gaps(
    pipelines: gpd.GeoDataFrame, paths: gpd.GeoDataFrame, *, reach_m: float,
    min_gap_m: float = 0.01,
) -> gpd.GeoDataFrame:
    """Stretches of each pipeline no passable patrol path serves (longer than
    ``min_gap_m``): ``pipeline_id``, ``chainage_from_m``, ``chainage_to_m``, ``gap_m``,
    ``station_from``, ``station_to``; geometry = the centre line of the gap. Parameters as
    :func:`patrol_coverage`."""
    _cov, gaps = _patrol(pipelines, paths, reach_m=reach_m, min_gap_m=min_gap_m)
    return gpd.GeoDataFrame(gaps, geometry="geometry", crs=pipelines.crs)


def patrol_gap_findings(
    gaps: gpd.GeoDataFrame, *, rule: Mapping[str, Any], targets: Mapping[str, Mapping[str, Any]],
    reach_m: float, rule_source: str | None = None,
) -> gpd.GeoDataFrame:
    """``patrol_gap`` findings: each gap of a pipeline that a patrol target applies to.

    ``targets`` maps pipeline id → the target row in force for it (``id``, ``year``,
    ``source``, ``severity``); gaps of other pipelines give no finding. ``rule`` is the
    ``patrol_reach`` row (its id and source name the reach)."""
    crs = gaps.crs
    sel = gaps[gaps["pipeline_id"].isin(list(targets))]
    if sel.empty:
        return empty_findings(crs)
    reach_src = rule_source or str(rule["source"])
    df = pd.DataFrame(sel.drop(columns=sel.geometry.name)).reset_index(drop=True)
    t = [targets[p] for p in df["pipeline_id"]]
    df["feature_id"] = df["pipeline_id"]
    df["other_id"] = [f"{a:.1f}-{b:.1f}" for a, b in zip(df["chainage_from_m"],
                                                         df["chainage_to_m"], strict=True)]
    df["layer"], df["other_layer"] = "pipelines", "patrol_paths"
    df["severity"] = [str(r.get("severity", "medium")) for r in t]
    df["rule_id"] = [str(r["id"]) for r in t]
    df["rule_source"] = [f"{r['source']}; reach {reach_m:g} m: {reach_src}" for r in t]
    df["target_year"] = [int(r["year"]) for r in t]
    df["reach_m"] = float(reach_m)
    df["station"] = df["station_from"]
    df["message_zh"] = [
        f"管道 {p} {sa}–{sb} 段 {g:.1f} m 两侧 {reach_m:g} m 内无可通行巡护通道"
        f"（{r['year']} 年底前应打通）。依据：{r['source']}。"
        for p, sa, sb, g, r in zip(df["pipeline_id"], df["station_from"], df["station_to"],
                                   df["gap_m"], t, strict=True)]
    df["message_en"] = [
        f"Pipeline {p} has no passable patrol path within {reach_m:g} m along {g:.1f} m from "
        f"{sa} to {sb} (due by end {r['year']}). Rule: {r.get('source_en', r['source'])}."
        for p, sa, sb, g, r in zip(df["pipeline_id"], df["station_from"], df["station_to"],
                                   df["gap_m"], t, strict=True)]
    return make_findings(df, kind="patrol_gap",
                         geometry=sel.geometry.reset_index(drop=True), crs=crs,
                         id_columns=["feature_id", "other_id"])
