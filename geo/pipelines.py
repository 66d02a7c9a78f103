"""Pipeline occupancy (占压) and setback violations (安全距离不足).

Every distance is exact: candidate (pipeline, building) pairs come from an STRtree of the
pipelines cut into short pieces (like ``ST_Subdivide`` — a long line's bounding box would match
half the district), each piece's envelope grown by the search radius (the ``dwithin``
envelope); ``shapely.distance`` is measured on each candidate pair, pairs within the radius
are kept and reduced to the minimum per (pipeline, building). No buffer decides membership; a corridor buffer (``quad_segs=64``) is used only for
the ``overlap_m2`` area figure.

Rules arrive as rows (mappings) from ``layers/rule_tables/pipelines.toml``:

- occupancy rows: ``pipeline_kind``, ``measure_from`` (``centre_line`` | ``pipe_wall``),
  ``half_width_m``, ``severity``; occupancy is distance <= threshold (the corridor edge
  belongs to the corridor: Art. 30 "两侧各五米地域范围内", and 以内/范围内 include the
  number), where the threshold is half_width_m from the centre line, or OD/2 + half_width_m
  for ``pipe_wall``;
- setback rows: ``pipeline_kind``, optional ``media``, ``pressure_class``, ``building_uses``,
  ``min_wall_mm``/``group`` (wall-thickness reductions), ``required_m``, ``measure_to``,
  ``severity``; a violation is clear distance (distance − OD/2) < required_m for a building
  that does not occupy the corridor (a building is reported once: occupancy wins).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geo.crs import require_projected
from geo.findings import empty_findings, format_stations, make_findings
from geo.linref import LineRef, Pieces, chainage_near, line_references, pieces
from geo.pressure import pressure_class

__all__ = [
    "check_pipelines",
    "find_occupancy",
    "find_setbacks",
    "pipeline_distances",
    "pipeline_labels",
    "search_radius",
    "setback_rows",
]

Rule = Mapping[str, Any]

_USE_ZH = {
    "residential": "住宅", "school": "学校", "kindergarten": "幼儿园", "hospital": "医院",
    "elderly_care": "养老机构", "prison": "监狱", "market": "商场市场", "office": "办公楼",
    "public_assembly": "公共聚集场所", "industrial": "厂房", "warehouse": "仓库",
    "gas_station": "加油加气站", "oil_depot": "油库", "shed": "棚屋", "other": "其他建筑",
}  # fmt: skip
_MEDIUM_ZH = {"natural_gas": "天然气", "crude_oil": "原油", "refined_oil": "成品油",
              "lpg": "液化石油气", "other": ""}
_MEDIUM_EN = {"natural_gas": "natural gas", "crude_oil": "crude oil",
              "refined_oil": "refined oil", "lpg": "LPG", "other": ""}
_PCLASS_ZH = {"low": "低压", "medium_b": "中压B", "medium_a": "中压A", "sub_high_b": "次高压B",
              "sub_high_a": "次高压A", "high_b": "高压B", "high_a": "高压A",
              "above_high_a": "超高压"}
_PCLASS_EN = {"low": "low-pressure", "medium_b": "medium-B", "medium_a": "medium-A",
              "sub_high_b": "sub-high-B", "sub_high_a": "sub-high-A", "high_b": "high-B",
              "high_a": "high-A", "above_high_a": "above-high-A"}
_MEASURE_ZH = {"foundation": "建筑物基础", "outer_wall": "建筑物外墙面"}
_MEASURE_EN = {"foundation": "building foundation", "outer_wall": "building outer wall"}

_SKIP_STATUS = ("abandoned",)
# A distance within a micrometre of a limit is AT the limit: float noise at projected
# coordinates of ~1e6 m (e.g. distance − OD/2) must not turn "exactly 5.0 m" into 4.9999999998.
_TOL_M = 1e-6


def pipeline_labels(pipe: Mapping[str, Any]) -> tuple[str, str]:
    """Readable (zh, en) description of a pipeline, e.g. ('次高压A城镇燃气管道', ...)."""
    medium = str(pipe.get("medium") or "other")
    if pipe.get("kind") == "urban_gas":
        pc = pressure_class(float(pipe["pressure_mpa"]))
        return f"{_PCLASS_ZH[pc]}城镇燃气管道", f"{_PCLASS_EN[pc]} urban gas main"
    zh = f"{_MEDIUM_ZH.get(medium, '')}长输管道"
    en = f"{_MEDIUM_EN.get(medium, '')} long-distance pipeline".strip()
    return zh, en


# --- inputs ---------------------------------------------------------------------------------
def _prepare_pipelines(pipelines: gpd.GeoDataFrame,
                       skip_status: Sequence[str]) -> gpd.GeoDataFrame:
    require_projected(pipelines, "pipelines")
    pipes = pipelines
    if "status" in pipes.columns:
        pipes = pipes[~pipes["status"].isin(list(skip_status))]
    pipes = pipes[pipes.geometry.notna() & ~pipes.geometry.is_empty]
    missing = [c for c in ("id", "kind", "medium", "diameter_mm", "pressure_mpa")
               if c not in pipes.columns]
    if missing:
        raise ValueError(f"pipelines lack column(s) {', '.join(missing)}; see layers.schema")
    bad = pipes["diameter_mm"].isna() | pipes["pressure_mpa"].isna()
    if bad.any():
        raise ValueError("pipelines " + ", ".join(map(str, pipes.loc[bad, "id"]))
                         + ": diameter_mm / pressure_mpa missing; expected numbers > 0")
    return pipes.reset_index(drop=True)


def _prepare_buildings(buildings: gpd.GeoDataFrame, crs: Any) -> gpd.GeoDataFrame:
    require_projected(buildings, "buildings")
    if crs != buildings.crs:
        raise ValueError(f"pipelines ({crs}) and buildings ({buildings.crs}) are in "
                         "different CRSs; project both with geo.crs.to_analysis")
    if "id" not in buildings.columns:
        raise ValueError("buildings lack the 'id' column")
    return buildings.reset_index(drop=True)


def _uses(buildings: gpd.GeoDataFrame, rows: np.ndarray) -> np.ndarray:
    """``use`` of the buildings at positions ``rows`` (missing → "other")."""
    if "use" not in buildings.columns:
        return np.full(len(rows), "other", dtype=object)
    return buildings["use"].iloc[rows].fillna("other").astype(str).to_numpy(dtype=object)


def _rule_matches(rule: Rule, pipe: Mapping[str, Any]) -> bool:
    if rule.get("pipeline_kind") not in (None, pipe.get("kind")):
        return False
    media = rule.get("media")
    if media is not None and pipe.get("medium") not in media:
        return False
    pc = rule.get("pressure_class")
    return pc is None or pc == pressure_class(float(pipe["pressure_mpa"]))


def _occupancy_rule(pipe: Mapping[str, Any], rules: Sequence[Rule]) -> Rule | None:
    """The matching occupancy row with the widest corridor (the strictest), first on ties."""
    d = float(pipe["diameter_mm"])
    best: Rule | None = None
    for r in rules:
        if _rule_matches(r, pipe) and (
                best is None or _occupancy_threshold(r, d) > _occupancy_threshold(best, d)):
            best = r
    return best


def _occupancy_threshold(rule: Rule | None, diameter_mm: float) -> float:
    if rule is None:
        return 0.0
    extra = diameter_mm / 2000.0 if rule.get("measure_from") == "pipe_wall" else 0.0
    return float(rule["half_width_m"]) + extra


def setback_rows(pipe: Mapping[str, Any], rules: Sequence[Rule]) -> list[Rule]:
    """Setback rows applying to ``pipe``: per group, the wall-thickness alternative with the
    largest ``min_wall_mm`` not above the pipe's wall thickness."""
    wall = pipe.get("wall_mm")
    wall = float(wall) if wall is not None and np.isfinite(wall) else 0.0
    best: dict[str, Rule] = {}
    for r in rules:
        if not _rule_matches(r, pipe):
            continue
        need = float(r.get("min_wall_mm", 0.0))
        if need > wall:
            continue
        g = str(r.get("group", r["id"]))
        if g not in best or need > float(best[g].get("min_wall_mm", 0.0)):
            best[g] = r
    return list(best.values())


class _Applicable(NamedTuple):
    """The rules applying to each pipeline, worked out once per distinct pipeline type."""

    occ: list[Rule | None]  # per type: the occupancy row
    sb: list[list[Rule]]  # per type: the setback rows
    code: np.ndarray  # per pipeline: its type
    thr: np.ndarray  # per pipeline: occupancy threshold (m from the centre line)
    radius: np.ndarray  # per pipeline: search radius (m)


_TYPE_COLUMNS = ("kind", "medium", "pressure_mpa", "diameter_mm", "wall_mm")


def _applicable(
    pipes: pd.DataFrame, occupancy_rules: Sequence[Rule], setback_rules: Sequence[Rule]
) -> _Applicable:
    """Per pipeline: occupancy row, occupancy threshold, setback rows, search radius — the
    rules are matched once per distinct (kind, medium, pressure, diameter, wall), not once
    per pipeline (an urban network has thousands of mains of a few types)."""
    cols = [c for c in _TYPE_COLUMNS if c in pipes.columns]
    keys = pd.DataFrame(pipes)[cols].reset_index(drop=True)
    code = keys.groupby(cols, dropna=False, sort=False).ngroup().to_numpy() if len(keys) \
        else np.zeros(0, dtype=np.intp)
    first = np.unique(code, return_index=True)[1]
    records = keys.iloc[first].to_dict("records")
    diam = np.array([float(r["diameter_mm"]) for r in records])
    occ = [_occupancy_rule(p, occupancy_rules) for p in records]
    thr = np.array([_occupancy_threshold(r, d) for r, d in zip(occ, diam, strict=True)])
    sb = [setback_rows(p, setback_rules) for p in records]
    max_req = np.array([max((float(r["required_m"]) for r in rows), default=-np.inf)
                        for rows in sb])
    radius = np.maximum(thr, max_req + diam / 2000.0) if len(diam) else np.zeros(0)
    radius = np.where(np.isfinite(radius), radius, 0.0)
    return _Applicable(occ, sb, code, thr[code] if len(thr) else np.zeros(0),
                       radius[code] if len(radius) else np.zeros(0))


def search_radius(
    pipelines: pd.DataFrame, *, occupancy_rules: Sequence[Rule], setback_rules: Sequence[Rule]
) -> np.ndarray:
    """Per pipeline, the distance (m, from the centre line) beyond which no applicable rule
    can produce a finding: max(occupancy threshold, largest required clear distance + OD/2).
    Use it to pre-select buildings (with a small margin) before :func:`check_pipelines`."""
    return _applicable(pipelines, occupancy_rules, setback_rules).radius


# --- distances ------------------------------------------------------------------------------
def pipeline_distances(
    refs: Sequence[LineRef],
    buildings: np.ndarray | gpd.GeoSeries,
    *,
    radius_m: np.ndarray,
    piece_length_m: float = 200.0,
    pcs: Pieces | None = None,
) -> pd.DataFrame:
    """Exact minimum distance of every (line, building) pair closer than ``radius_m[line]``.

    Candidates: an STRtree over the pieces' envelopes grown by their line's radius is queried
    with the building footprints (a tree of a few thousand pieces is cheap to build, and no
    query geometry needs preparing); then ``shapely.distance`` decides: pairs at most
    ``radius_m`` apart (as ``dwithin``) are kept and reduced to the minimum per (line,
    building).

    Returns columns ``line``, ``building`` (positional indices), ``distance_m`` and ``piece``
    (index of the nearest piece in ``pcs``), sorted by line then building.
    """
    geoms = np.asarray(buildings.values if isinstance(buildings, gpd.GeoSeries) else buildings,
                       dtype=object)
    if pcs is None:
        pcs = pieces(refs, max_length_m=piece_length_m)
    return _nearest(pcs, *_candidates(pcs, geoms, radius_m))


def _candidates(
    pcs: Pieces, geoms: np.ndarray, radius_m: np.ndarray, *,
    grown: shapely.STRtree | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(piece, building, distance) of every pair at most ``radius_m[line]`` apart, sorted by
    line, building, distance (see :func:`pipeline_distances`); ``grown``: the tree of
    :func:`_grown_tree` for this ``radius_m``, when already built."""
    empty = np.empty(0, np.intp)
    if len(pcs.geoms) == 0 or len(geoms) == 0:
        return empty, empty, np.empty(0)
    r = np.asarray(radius_m, dtype=float)[pcs.line]
    if grown is None:
        grown = _grown_tree(pcs, radius_m)
    bj, pi = grown.query(geoms)
    if len(pi) == 0:
        return empty, empty, np.empty(0)
    d = shapely.distance(pcs.geoms[pi], geoms[bj])
    ok = d <= r[pi]
    pi, bj, d = pi[ok], bj[ok], d[ok]
    order = np.lexsort((d, bj, pcs.line[pi]))
    return pi[order], bj[order], d[order]


def _nearest(pcs: Pieces, pi: np.ndarray, bj: np.ndarray, d: np.ndarray) -> pd.DataFrame:
    """The nearest candidate of each (line, building): the rows of pipeline_distances."""
    line = pcs.line[pi]
    first = np.ones(len(line), dtype=bool)
    first[1:] = (line[1:] != line[:-1]) | (bj[1:] != bj[:-1])
    return pd.DataFrame({"line": line[first].astype(np.intp), "building": bj[first],
                         "distance_m": d[first], "piece": pi[first]})


def _overlap(
    pcs: Pieces, pi: np.ndarray, k: np.ndarray, geoms: np.ndarray, thr: np.ndarray
) -> np.ndarray:
    """Area of each footprint ``geoms[k]`` inside its corridor: the union of the round-capped
    buffers (radius ``thr[k]``) of the pieces ``pi`` within that distance of it.

    Vectorised: consecutive pieces are chained into one line (its round joins are the caps
    the pieces share), the chains of each footprint buffered at once as a MultiLineString
    (GEOS unions the parts' buffers)."""
    out = np.zeros(len(geoms))
    if len(pi) == 0:
        return out
    order = np.lexsort((pi, k))
    k, pi = k[order], pi[order]
    ends = shapely.get_coordinates(pcs.geoms[pi]).reshape(-1, 2, 2)
    new_run = np.r_[True, (k[1:] != k[:-1]) | (pi[1:] != pi[:-1] + 1)
                    | (ends[1:, 0] != ends[:-1, 1]).any(axis=1)]
    run = np.cumsum(new_run) - 1
    # each chain: the start of its first piece, then the end of every piece
    pos_end = np.arange(len(pi)) + np.cumsum(new_run)
    pos_start = pos_end[new_run] - 1
    coords = np.empty((len(pi) + int(new_run.sum()), 2))
    run_c = np.empty(len(coords), dtype=np.intp)
    coords[pos_end], run_c[pos_end] = ends[:, 1], run
    coords[pos_start], run_c[pos_start] = ends[new_run, 0], run[new_run]
    chains = shapely.linestrings(coords, indices=run_c)
    uk, group = np.unique(k[new_run], return_inverse=True)
    # a round cap further than the threshold from the footprint adds nothing inside it:
    # where every chain end is that far (a line passing through), flat caps give the same
    # area from a much smaller polygon
    fk = k[new_run]
    far = np.ones(len(uk), dtype=bool)
    for ends_xy in (coords[pos_start], coords[np.r_[pos_start[1:], len(coords)] - 1]):
        d_end = shapely.distance(shapely.points(ends_xy), geoms[fk])
        np.logical_and.at(far, group, d_end > thr[fk] * 1.001 + _TOL_M)
    lines = shapely.multilinestrings(chains, indices=group)
    corridor = np.empty(len(uk), dtype=object)
    for cap, sel in (("flat", far), ("round", ~far)):
        if sel.any():
            corridor[sel] = shapely.buffer(lines[sel], thr[uk[sel]], quad_segs=64,
                                           cap_style=cap)
    out[uk] = _area_inside(geoms[uk], corridor)
    return out


def _area_inside(footprints: np.ndarray, polys: np.ndarray) -> np.ndarray:
    """``area(intersection(footprints[i], polys[i]))``; footprints that are convex polygons
    (rectangles, most buildings) clip in numpy (Sutherland–Hodgman: exact area for any
    subject polygon against a convex window; rings clipped one by one, holes subtracted),
    the others through GEOS. GEOS's overlay costs ~20 µs a pair even for a 5- and a
    9-vertex polygon; this is ~8 µs (measured on 53k pairs: 1.06 s -> 0.41 s)."""
    out = np.zeros(len(footprints))
    if not len(footprints):
        return out
    convex, win, win_start = _convex_ccw(footprints)
    # the numpy clip works on every vertex at once: for small polygons (a flat-capped band
    # has ~10 vertices; a round cap alone has 129 and is left to GEOS)
    use = convex & (shapely.get_num_coordinates(polys) <= 48)
    ok, other = np.flatnonzero(use), np.flatnonzero(~use)
    if len(ok):
        out[ok] = _clip_area(win, win_start, ok, polys[ok])
    if len(other):
        out[other] = shapely.area(shapely.intersection(footprints[other], polys[other]))
    return out


def _convex_ccw(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is convex, vertices (counter-clockwise, no closing vertex), first vertex of each)
    of polygons ``g`` (only single-ring polygons can be convex here)."""
    simple = (shapely.get_type_id(g) == 3) & (shapely.get_num_interior_rings(g) == 0)
    ext = shapely.get_exterior_ring(np.where(simple, g, None))  # type: ignore[call-overload]
    xy, own = shapely.get_coordinates(ext, return_index=True)
    ok = np.zeros(len(g), dtype=bool)
    if not len(xy):
        return ok, np.zeros((0, 2)), np.zeros(len(g), dtype=np.intp)
    last = np.r_[own[1:] != own[:-1], True]
    xy, own = xy[~last], own[~last]  # the closing vertex
    n = np.bincount(own, minlength=len(g))
    start = np.cumsum(n) - n
    i = np.arange(len(xy))
    nxt = np.where(i + 1 == start[own] + n[own], start[own], i + 1)
    loc = xy - xy[start[own]]  # local coordinates: no cancellation at 1e6 m
    cross = loc[:, 0] * loc[nxt, 1] - loc[nxt, 0] * loc[:, 1]
    area2 = np.bincount(own, weights=cross, minlength=len(g))
    # orient counter-clockwise: reverse the vertices of clockwise rings
    rev = area2[own] < 0
    j = np.where(rev, start[own] + n[own] - 1 - (i - start[own]), i)
    xy = xy[j]
    e = xy[nxt] - xy
    turn = e[:, 0] * e[nxt, 1] - e[:, 1] * e[nxt, 0]
    bad = np.bincount(own, weights=(turn < 0).astype(float), minlength=len(g)) > 0
    ok = simple & (n >= 3) & ~bad & (area2 != 0)
    return ok, xy, start


def _clip_area(win: np.ndarray, win_start: np.ndarray, sel: np.ndarray,
               polys: np.ndarray) -> np.ndarray:
    """Area of ``polys[k]`` inside the convex counter-clockwise window of footprint
    ``sel[k]`` (vertices ``win`` from ``win_start``), vectorised Sutherland–Hodgman."""
    nwin = np.diff(np.r_[win_start, len(win)])
    parts, powner = shapely.get_parts(polys, return_index=True)
    rings, rpart = shapely.get_rings(parts, return_index=True)
    is_ext = np.r_[True, rpart[1:] != rpart[:-1]]
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    keep = np.r_[ring[1:] == ring[:-1], False]  # drop each ring's closing vertex
    xy, ring = xy[keep], ring[keep]
    owner = sel[powner[rpart]]  # footprint of each ring
    for j in range(int(nwin[sel].max()) if len(sel) else 0):
        if not len(ring):
            break
        f = owner[ring]
        has = j < nwin[f]
        a = win[win_start[f] + np.minimum(j, nwin[f] - 1)]
        b = win[win_start[f] + np.where(j + 1 < nwin[f], j + 1, 0)]
        d = (b[:, 0] - a[:, 0]) * (xy[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (xy[:, 0] - a[:, 0])
        inside = (d >= 0) | ~has
        cnt = np.bincount(ring, minlength=len(rings))
        first = np.cumsum(cnt) - cnt
        i = np.arange(len(xy))
        nxt = np.where(i + 1 == first[ring] + cnt[ring], first[ring], i + 1)
        cross_edge = inside != inside[nxt]
        emit = inside[nxt].astype(np.intp) + cross_edge
        pos = np.cumsum(emit) - emit
        new = np.empty((int(emit.sum()), 2))
        new_ring = np.empty(len(new), dtype=np.intp)
        ce = np.flatnonzero(cross_edge)
        t = d[ce] / (d[ce] - d[nxt[ce]])
        new[pos[ce]] = xy[ce] + t[:, None] * (xy[nxt[ce]] - xy[ce])
        new_ring[pos[ce]] = ring[ce]
        ie = np.flatnonzero(inside[nxt])
        at = pos[ie] + cross_edge[ie]
        new[at] = xy[nxt[ie]]
        new_ring[at] = ring[ie]
        xy, ring = new, new_ring
    out = np.zeros(len(sel))
    if len(ring):
        cnt = np.bincount(ring, minlength=len(rings))
        first = np.cumsum(cnt) - cnt
        i = np.arange(len(xy))
        nxt = np.where(i + 1 == first[ring] + cnt[ring], first[ring], i + 1)
        loc = xy - win[win_start[owner[ring]]]  # local coordinates: no cancellation
        a2 = np.bincount(ring, weights=loc[:, 0] * loc[nxt, 1] - loc[nxt, 0] * loc[:, 1],
                         minlength=len(rings))
        ring_area = np.abs(a2) / 2 * np.where(is_ext, 1.0, -1.0)
        np.add.at(out, np.searchsorted(sel, owner), ring_area)
    return out


# --- findings -------------------------------------------------------------------------------
# Messages are built column-wise in Arrow (C++ kernels, no per-finding Python and no GIL held:
# 92k findings 0.4-0.65 s as f-strings -> ~0.1 s), each piece of text exactly as the f-string
# ``f"{x}"`` / ``f"{x:.2f}"`` shows it (tests/geo/test_pipelines.py holds both to the same text).
def _text(values: Any) -> pa.Array:
    """``f"{v}"`` of every value, as an Arrow string array."""
    if isinstance(values, pa.Array):
        return values
    v = np.asarray(values, dtype=object)
    try:
        out = pa.array(v, type=pa.string(), from_pandas=False)
        if out.null_count == 0:
            return out
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # not all str: NaN, numbers
        pass
    return pa.array([f"{x}" for x in v.tolist()], type=pa.string())  # None → "None"


def _fixed(values: Any, digits: int) -> pa.Array:
    """``f"{x:.{digits}f}"`` of every float, vectorised: |x| x 10^digits rounded half-even
    in numpy, whole and decimal parts joined in Arrow; values within float noise of a
    half (where the product's rounding could differ from the exact decimal's), huge or not
    finite ones go through Python's format itself."""
    x = np.asarray(values, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):  # those go through format below
        q = np.abs(x) * 10.0**digits
    slow = ~np.isfinite(q) | (q >= 2.0**52)
    q = np.where(slow, 0.0, q)
    slow |= np.abs(q - np.floor(q) - 0.5) < 1e-6
    n = np.rint(q).astype(np.int64)
    whole, part = np.divmod(n, 10**digits)
    text = pc.binary_join_element_wise(
        pa.array(np.where(np.signbit(x), "-", "")), pc.cast(pa.array(whole), pa.string()),
        ".", pc.utf8_lpad(pc.cast(pa.array(part), pa.string()), width=digits, padding="0"),
        "")
    if slow.any():
        exact = pa.array([format(v, f".{digits}f") for v in x[slow].tolist()], pa.string())
        text = pc.replace_with_mask(text, pa.array(slow), exact)
    return text


def _join(*parts: Any) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _use_texts(uses: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """(zh, en) wording of each building use."""
    u = pd.Series(uses, dtype=object)
    zh = u.map(_USE_ZH).fillna(u).to_numpy(dtype=object)
    en = u.str.replace("_", " ", regex=False).to_numpy(dtype=object)
    return _text(zh), _text(en)


def _occupancy_messages(df: Columns) -> tuple[pa.Array, pa.Array]:
    """(message_zh, message_en) of occupancy findings."""
    fid, oid = _text(df["feature_id"]), _text(df["other_id"])
    uz, ue = _use_texts(df["building_use"])
    d = np.asarray(df["distance_m"], dtype=float)
    crosses = pa.array(d == 0)
    dd, req, sh = (_fixed(df[c], 2) for c in ("distance_m", "required_m", "shortfall_m"))
    st = _text(df["station"])
    a, b = (_text(format_stations(df[c])) for c in ("chainage_from_m", "chainage_to_m"))
    ov = _fixed(df["overlap_m2"], 1)
    zh = _join("建筑物 ", fid, "（", uz, "）占压", _text(df["pipe_zh"]), " ", oid, "：",
               pc.if_else(crosses, "与管道交叉", _join("距管道中心线 ", dd, " m")),
               "，位于", _text(df["rule_name_zh"]), "（距中心线 ", req, " m 以内）内，深入 ", sh,
               " m；桩号 ", st, "（", a, "～", b, "），保护范围内面积 ", ov, " m²。依据：",
               _text(df["rule_source"]), "。")
    en = _join("Building ", fid, " (", ue, ") occupies ", _text(df["pipe_en"]), " ", oid,
               ": it ", pc.if_else(crosses, "crosses the centre line",
                                   _join("is ", dd, " m from the centre line")),
               ", inside the ", _text(df["rule_name_en"]), " (", req,
               " m from the centre line) by ", sh, " m, at ", st, " (", a, " to ", b, "); ",
               ov, " m² inside the corridor. Rule: ", _text(df["rule_source_en"]), ".")
    return zh, en


def _setback_messages(df: Columns) -> tuple[pa.Array, pa.Array]:
    """(message_zh, message_en) of setback findings."""
    measure = pd.Series(df["measure"], dtype=object)
    fid, oid, st = _text(df["feature_id"]), _text(df["other_id"]), _text(df["station"])
    uz, ue = _use_texts(df["building_use"])
    c, req, sh = (_fixed(df[k], 2) for k in ("clear_distance_m", "required_m", "shortfall_m"))
    zh = _join("建筑物 ", fid, "（", uz, "）与", _text(df["pipe_zh"]), " ", oid, " 的水平净距为 ",
               c, " m，小于要求的 ", req, " m（至",
               _text(measure.map(_MEASURE_ZH).to_numpy(dtype=object)), "），不足 ", sh,
               " m；桩号 ", st, "。依据：", _text(df["rule_source"]), "。")
    en = _join("Building ", fid, " (", ue, ") is ", c, " m clear of ", _text(df["pipe_en"]),
               " ", oid, " at ", st, "; ", _text(df["rule_source_en"]), " requires ", req,
               " m to the ", _text(measure.map(_MEASURE_EN).to_numpy(dtype=object)), " — ",
               sh, " m short.")
    return zh, en


def check_pipelines(
    pipelines: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    *,
    occupancy_rules: Sequence[Rule],
    setback_rules: Sequence[Rule],
    piece_length_m: float = 200.0,
    skip_status: Sequence[str] = _SKIP_STATUS,
    workers: int | None = None,
) -> gpd.GeoDataFrame:
    """Occupancy and setback findings for every (pipeline, building) pair.

    Parameters
    ----------
    pipelines, buildings
        Projected (metres), same CRS; layer schemas of ``layers.schema``.
    occupancy_rules, setback_rules
        Active rule rows (``RuleSet.rows("occupancy")`` / ``("setback")``).
    piece_length_m
        Pipelines are cut into straight pieces at most this long before indexing.
    skip_status
        Pipelines with these ``status`` values are not checked.
    workers
        Threads checking chunks of buildings (None: one per usable CPU, at most 8; chunks
        of fewer than 10,000 buildings are not split further). The findings do not depend
        on it.

    Returns
    -------
    GeoDataFrame
        Findings (``geo.findings`` schema; kinds ``occupancy`` and ``setback``) with the
        building footprint as geometry and ``distance_m``, ``clear_distance_m``,
        ``required_m``, ``shortfall_m``, ``overlap_m2``, ``chainage_m`` … A building that
        occupies a pipeline's corridor is reported as occupancy only.
    """
    crs = pipelines.crs
    pipes = _prepare_pipelines(pipelines, skip_status)
    blds = _prepare_buildings(buildings, crs)
    if pipes.empty or blds.empty:
        return empty_findings(crs)
    app = _applicable(pipes, occupancy_rules, setback_rules)
    pcs = pieces(line_references(pipes.geometry.values), max_length_m=piece_length_m)
    shared = _Shared(pipes, app, pcs, _labels(pipes, app.code), _trees(pcs, app.radius + _TOL_M),
                     crs)
    # every finding is one (pipeline, building) pair: chunks of buildings are checked
    # independently, in threads (GEOS, numpy and Arrow release the GIL)
    cuts = _chunks(len(blds), workers)
    if len(cuts) == 2:
        parts = [_check_chunk(blds, shared, 0)]
    else:
        with ThreadPoolExecutor(len(cuts) - 1, thread_name_prefix="riskmap-check") as ex:
            jobs = [ex.submit(_check_chunk, blds.iloc[a:b], shared, a)
                    for a, b in itertools.pairwise(cuts)]
            parts = [job.result() for job in jobs]
    # occupancy frames first (their columns set the order), then setbacks, as one thread
    # makes them
    found = [f for occ, _sb in parts for f in occ] + [f for _occ, sb in parts for f in sb]
    if not found:
        return empty_findings(crs)
    out = gpd.GeoDataFrame(pd.concat(found, ignore_index=True), geometry="geometry", crs=crs)
    if len(parts) > 1:  # chunks interleave: finding id, ties as in one pass (line, building)
        out = out.sort_values(["finding_id", "_line", "_bpos"], kind="stable")
    return out.drop(columns=["_line", "_bpos"]).reset_index(drop=True)


class _Shared(NamedTuple):
    """What every chunk of one check reads (never writes): pipelines, rules, pieces, trees."""

    pipes: gpd.GeoDataFrame
    app: _Applicable
    pcs: Pieces
    labels: tuple[np.ndarray, np.ndarray]
    trees: tuple[shapely.STRtree, shapely.STRtree]
    crs: Any


def _trees(pcs: Pieces, within_m: np.ndarray) -> tuple[shapely.STRtree, shapely.STRtree]:
    """(:func:`_grown_tree`, the tree of the pieces themselves): built once and shared by the
    threads; shapely builds a tree when it is made, so concurrent queries only read it."""
    return _grown_tree(pcs, within_m), shapely.STRtree(pcs.geoms)


def _grown_tree(pcs: Pieces, within_m: np.ndarray) -> shapely.STRtree:
    """The tree of the pieces' envelopes grown by their line's ``within_m``."""
    r = np.asarray(within_m, dtype=float)[pcs.line]
    env = shapely.bounds(pcs.geoms) if len(pcs.geoms) else np.empty((0, 4))
    return shapely.STRtree(shapely.box(env[:, 0] - r, env[:, 1] - r, env[:, 2] + r,
                                       env[:, 3] + r))


# Buildings per thread below which one thread checks them all (threads cost ~1 ms each; a
# chunk this size takes ~0.2 s).
_CHUNK_MIN = 10_000


def _workers(workers: int | None) -> int:
    """``workers``, or None → the usable CPUs, at most 8."""
    if workers is None:
        return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else (os.cpu_count() or 1))
    return max(1, int(workers))


def _chunks(n: int, workers: int | None) -> list[int]:
    """Cut points of ``n`` buildings into one chunk per worker (see :func:`_workers`), each
    at least :data:`_CHUNK_MIN` buildings."""
    k = max(1, min(_workers(workers), n // _CHUNK_MIN))
    return np.linspace(0, n, k + 1).astype(int).tolist()


def _check_chunk(blds: gpd.GeoDataFrame, shared: _Shared, offset: int
                 ) -> tuple[list[gpd.GeoDataFrame], list[gpd.GeoDataFrame]]:
    """(occupancy, setback) findings frames of ``blds`` (empty ones left out), the buildings
    at ``offset`` of the whole frame; hidden columns ``_line`` and ``_bpos`` (the building's
    position in the whole frame) order ties across chunks."""
    pipes, app, pcs, labels, (grown, tree), crs = shared
    blds = blds.reset_index(drop=True)
    if blds.empty:
        return [], []
    thr_occ, radius = app.thr, app.radius
    geoms = np.asarray(blds.geometry.values, dtype=object)
    cand = _candidates(pcs, geoms, radius + _TOL_M, grown=grown)
    pairs = _nearest(pcs, *cand)
    if pairs.empty:
        return [], []
    nb = np.int64(len(geoms))
    ckey = pcs.line[cand[0]].astype(np.int64) * nb + cand[1]  # sorted: line, building
    ctx = _Context(pipes, blds, pcs, tree, *labels, cand, ckey, nb, radius + _TOL_M)
    line = pairs["line"].to_numpy()
    bidx = pairs["building"].to_numpy()
    dist = pairs["distance_m"].to_numpy()
    uses = _uses(blds, bidx)

    has_occ = np.array([r is not None for r in app.occ], dtype=bool)[app.code]
    occ = (dist <= thr_occ[line] + _TOL_M) & has_occ[line]
    occupancy = [_occupancy_findings(pairs[occ], ctx, app, uses[occ])] if occ.any() else []
    sb = _setback_findings(pairs[~occ], ctx, app, uses[~occ])
    setback = [sb] if sb is not None else []

    def frame(f: Columns) -> gpd.GeoDataFrame:
        f["_bpos"] = f["_bpos"] + offset
        return make_findings(_frame({c: v for c, v in f.items() if c not in ("geometry", "kind")}),
                             kind=f["kind"], geometry=f["geometry"], crs=crs,
                             id_columns=["other_id", "feature_id"])

    return [frame(f) for f in occupancy], [frame(f) for f in setback]


@dataclass(frozen=True)
class _Context:
    """What every findings frame of one check is built from."""

    pipes: gpd.GeoDataFrame
    blds: gpd.GeoDataFrame
    pcs: Pieces
    tree: shapely.STRtree
    pipe_zh: np.ndarray
    pipe_en: np.ndarray
    cand: tuple[np.ndarray, np.ndarray, np.ndarray]  # (piece, building, distance) pairs
    cand_key: np.ndarray  # line * n_buildings + building of each, ascending
    n_buildings: np.int64
    within_m: np.ndarray  # per line: every piece this near a building is among cand

    def candidates(self, line: np.ndarray, bidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, candidate index) of every candidate pair of the rows' (line, building)."""
        keys = line.astype(np.int64) * self.n_buildings + bidx
        lo = np.searchsorted(self.cand_key, keys, side="left")
        cnt = np.searchsorted(self.cand_key, keys, side="right") - lo
        row = np.repeat(np.arange(len(keys)), cnt)
        return row, np.repeat(lo, cnt) + np.arange(len(row)) - np.repeat(np.cumsum(cnt) - cnt, cnt)


def _labels(pipes: pd.DataFrame, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(zh, en) :func:`pipeline_labels` of every pipeline, worked out once per type."""
    first = np.unique(code, return_index=True)[1]
    labels = [pipeline_labels(p) for p in
              pd.DataFrame(pipes).iloc[first].drop(columns="geometry", errors="ignore")
              .to_dict("records")]
    zh = np.array([z for z, _ in labels], dtype=object)
    en = np.array([e for _, e in labels], dtype=object)
    return zh[code], en[code]


Columns = dict[str, Any]  # a findings frame in the making: column name → array (or scalar)


def _frame(cols: Columns) -> pd.DataFrame:
    """``pd.DataFrame(cols)``, with the text columns handed over as Arrow strings: pandas'
    own inference of the ``str`` dtype checks every value in Python (0.6 s for the columns
    of 100k findings); the dtypes are the same."""
    str_dtype = pd.Series(["x"]).dtype
    out: dict[str, Any] = {}
    for name, v in cols.items():
        if isinstance(v, pa.Array):
            out[name] = pd.array(v.cast(pa.large_string()), dtype=str_dtype)
            continue
        text_like = isinstance(v, list) or (isinstance(v, np.ndarray) and v.dtype == object)
        if text_like and len(v):
            try:
                arr = pa.array(v, type=pa.large_string(), from_pandas=True)
            except (pa.ArrowTypeError, pa.ArrowInvalid):
                out[name] = v  # not all text: pandas decides, as before
                continue
            out[name] = pd.array(arr, dtype=str_dtype) if arr.null_count < len(arr) else v
        else:
            out[name] = v
    return pd.DataFrame(out)


def _base_frame(pairs: pd.DataFrame, ctx: _Context, uses: np.ndarray) -> Columns:
    """The columns every pipeline finding has (a dict: one DataFrame is built at the end)."""
    line = pairs["line"].to_numpy()
    bidx = pairs["building"].to_numpy()
    pipes = ctx.pipes
    geoms = np.asarray(ctx.blds.geometry.values, dtype=object)[bidx]
    row, ci = ctx.candidates(line, bidx)
    ch, lo, hi = chainage_near(ctx.pcs, geoms, line, pairs["piece"].to_numpy(), tree=ctx.tree,
                               near=(row, ctx.cand[0][ci], ctx.within_m[line]))
    return {
        "_line": line,  # hidden: ties of equal finding ids keep one pass's order
        "_bpos": bidx,
        "layer": "buildings",
        "feature_id": ctx.blds["id"].to_numpy(dtype=object)[bidx],
        "other_layer": "pipelines",
        "other_id": pipes["id"].to_numpy(dtype=object)[line],
        "chainage_from_m": np.round(lo, 3),
        "chainage_to_m": np.round(hi, 3),
        "chainage_m": np.round(ch, 3),
        "station": format_stations(ch),
        "distance_m": pairs["distance_m"].to_numpy(),
        "building_use": uses,
        "pipeline_kind": pipes["kind"].to_numpy(dtype=object)[line],
        "medium": pipes["medium"].to_numpy(dtype=object)[line],
        "pressure_mpa": pipes["pressure_mpa"].to_numpy(dtype=float)[line],
        "diameter_mm": pipes["diameter_mm"].to_numpy(dtype=float)[line],
        "pipe_zh": ctx.pipe_zh[line],
        "pipe_en": ctx.pipe_en[line],
        "geometry": geoms,
    }


def _rule_column(rules: Sequence[Rule | None], key: str, default: object = None) -> np.ndarray:
    """``rule[key]`` (or ``rule.get(key, default)``; the ``source`` for a missing
    ``source_en``) of each rule row, as an object array to index by row."""
    out = np.empty(len(rules), dtype=object)
    for i, r in enumerate(rules):
        if r is None:
            continue
        if key == "source_en":
            out[i] = r.get("source_en", r["source"])
        else:
            out[i] = r[key] if default is None else r.get(key, default)
    return out


def _occupancy_findings(
    pairs: pd.DataFrame, ctx: _Context, app: _Applicable, uses: np.ndarray,
) -> Columns:
    """Occupancy findings of ``pairs``."""
    df = _base_frame(pairs, ctx, uses)
    line = pairs["line"].to_numpy()
    req = app.thr[line]
    rules, t = app.occ, app.code[line]
    # pieces within the corridor of each occupying building, for the overlap area
    geoms = df["geometry"]
    # every piece within the corridor of each building (for the overlap area) is among the
    # candidate pairs: the search radius is at least the threshold
    near_k, ci = ctx.candidates(line, pairs["building"].to_numpy())
    inside = ctx.cand[2][ci] <= req[near_k] + _TOL_M
    near_pi, near_k = ctx.cand[0][ci][inside], near_k[inside]
    df["overlap_m2"] = np.round(_overlap(ctx.pcs, near_pi, near_k, geoms, req), 2)
    df["required_m"] = req
    df["shortfall_m"] = np.maximum(req - df["distance_m"], 0.0)
    df["clear_distance_m"] = df["distance_m"] - df["diameter_mm"] / 2000.0
    df["measure"] = "centre_line"
    df["rule_id"] = _rule_column(rules, "id")[t]
    df["rule_source"] = _rule_column(rules, "source")[t]
    df["rule_source_en"] = _rule_column(rules, "source_en")[t]
    df["rule_name_zh"] = _rule_column(rules, "name_zh", "管道保护范围")[t]
    df["rule_name_en"] = _rule_column(rules, "name_en", "protection corridor")[t]
    df["severity"] = _rule_column(rules, "severity", "critical")[t]
    df["kind"] = "occupancy"
    df["message_zh"], df["message_en"] = _occupancy_messages(df)
    for c in ("pipe_zh", "pipe_en", "rule_name_zh", "rule_name_en"):
        del df[c]
    return df


def _setback_findings(
    pairs: pd.DataFrame, ctx: _Context, app: _Applicable, uses: np.ndarray,
) -> Columns | None:
    if pairs.empty:
        return None
    # (pipeline type, use) → strictest row, as a small table merged onto the pairs
    all_uses = sorted(set(uses))
    table = []
    rows: list[Rule] = []
    for ti, type_rows in enumerate(app.sb):
        for r in type_rows:
            for u in (r.get("building_uses") or all_uses):
                table.append((ti, u, float(r["required_m"]), len(rows)))
            rows.append(r)
    if not table:
        return None
    req = (pd.DataFrame(table, columns=["type", "use", "required_m", "rule"])
           .sort_values(["type", "use", "required_m"], ascending=[True, True, False],
                        kind="stable")
           .drop_duplicates(["type", "use"]))
    p = pairs.assign(use=uses, type=app.code[pairs["line"].to_numpy()]).reset_index(drop=True)
    p["_row"] = np.arange(len(p))
    m = p.merge(req, on=["type", "use"], how="inner")
    diam = ctx.pipes["diameter_mm"].to_numpy(dtype=float)[m["line"].to_numpy()]
    clear = m["distance_m"].to_numpy() - diam / 2000.0
    bad = clear < m["required_m"].to_numpy() - _TOL_M
    if not bad.any():
        return None
    m = m[bad]
    sel = m["_row"].to_numpy()
    df = _base_frame(pairs.iloc[sel], ctx, uses[sel])
    ri = m["rule"].to_numpy()
    df["clear_distance_m"] = clear[bad]
    df["required_m"] = m["required_m"].to_numpy()
    df["shortfall_m"] = df["required_m"] - df["clear_distance_m"]
    df["overlap_m2"] = 0.0
    df["measure"] = _rule_column(rows, "measure_to")[ri]
    df["rule_id"] = _rule_column(rows, "id")[ri]
    df["rule_source"] = _rule_column(rows, "source")[ri]
    df["rule_source_en"] = _rule_column(rows, "source_en")[ri]
    df["severity"] = _rule_column(rows, "severity", "high")[ri]
    df["kind"] = "setback"
    df["message_zh"], df["message_en"] = _setback_messages(df)
    for c in ("pipe_zh", "pipe_en"):
        del df[c]
    return df


def find_occupancy(
    pipelines: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, *,
    occupancy_rules: Sequence[Rule], piece_length_m: float = 200.0,
) -> gpd.GeoDataFrame:
    """Occupancy findings only (see :func:`check_pipelines`)."""
    out = check_pipelines(pipelines, buildings, occupancy_rules=occupancy_rules,
                          setback_rules=(), piece_length_m=piece_length_m)
    return out[out["kind"] == "occupancy"].reset_index(drop=True)


def find_setbacks(
    pipelines: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, *,
    occupancy_rules: Sequence[Rule], setback_rules: Sequence[Rule],
    piece_length_m: float = 200.0,
) -> gpd.GeoDataFrame:
    """Setback findings only; buildings occupying a corridor are excluded (they are
    occupancy findings)."""
    out = check_pipelines(pipelines, buildings, occupancy_rules=occupancy_rules,
                          setback_rules=setback_rules, piece_length_m=piece_length_m)
    return out[out["kind"] == "setback"].reset_index(drop=True)
