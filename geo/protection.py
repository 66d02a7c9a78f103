"""Third-party construction near pipelines and the machine early warning (Pipeline Protection
Law Arts 30, 32, 33, 35; issue 16).

Zones are never buffered polygons: every zone is (reference geometry, threshold) — the centre
line of a pipeline cut into short pieces, or the footprint of a pipeline facility — and a site
or a machine is inside when its exact distance to the reference is <= the threshold (the edge
belongs to the zone; a micrometre of float noise at ~1e6 m coordinates counts as on the edge).
:func:`prepare_zones` indexes the references once (an STRtree over their envelopes grown by the
largest threshold that applies to each) with a (reference × rule) threshold matrix, so one
tree query and one distance per (site or machine, reference) pair decide every rule at once.

- :func:`check_construction`: each construction site whose work is forbidden where it stands
  (critical) or needs a permit it does not hold valid on the date (high) — one finding per
  site, the worst (forbidden before permit, then the nearest reference).
- :func:`check_positions`: each machine position inside a zone where its kind of work is
  forbidden (critical) or needs a permit that no active site of that work, valid on the
  position's date and containing the position, holds (high).

Permits are valid from ``permit_from`` to ``permit_to`` **inclusive** (a permit to 2026-12-07
is valid all of 7 December and expired on the 8th); an empty ``permit_from`` means valid from
issue, an empty ``permit_to`` means open-ended. ``finished`` sites are not checked; a
``planned`` site is checked for forbidden works, a missing permit and an expired one (its
permit may start later). Everything is in a projected CRS, metres.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import require_projected, require_same_crs
from geo.findings import SEVERITIES, empty_findings, format_stations, make_findings
from geo.linref import LineRef, chainage, chainage_range, line_references, pieces
from geo.protection_params import ProtectionRules, ZoneRule

__all__ = [
    "PERMIT_STATES",
    "HeldSites",
    "Hits",
    "ProtectionZones",
    "alert_texts",
    "check_construction",
    "check_positions",
    "held_areas",
    "permit_states",
    "prepare_zones",
]

PERMIT_STATES = ("valid", "missing", "expired", "not_yet_valid")
_TOL_M = 1e-6
_EXTRA = ("pipeline_id", "work", "distance_m", "required_m", "clause", "confidence",
          "permit_no", "permit_from", "permit_to", "permit_state", "on", "rules_matched")
_PIECE_M = 100.0
_SKIP_PIPELINE_STATUS = ("abandoned",)
_NO_DAY = np.iinfo(np.int64).min
_ANY_DAY = np.iinfo(np.int64).max

Hits = dict[str, np.ndarray]
"""Columns of rule hits or alerts: equal-length arrays by name (no DataFrame on the hot path)."""

_WORK_ZH = {
    "crossing": "穿跨越", "road": "道路", "railway": "铁路", "canal": "河渠", "power_line": "电力线路",
    "cable": "电缆光缆", "grounding": "接地体", "building": "建筑物", "piling": "打桩",
    "excavation": "开挖", "drilling": "钻探", "blasting": "爆破", "seismic": "地震法勘探",
    "mining": "采矿取土", "anchoring": "抛锚", "dredging": "挖砂挖泥", "other": "其他",
}  # fmt: skip
_FACILITY_ZH = {
    "station": "站场", "valve": "阀室", "vent": "放空设施", "depot": "油库", "storage": "储气库",
    "loading": "装卸设施", "river_crossing": "河流穿越段", "tunnel": "管道隧道", "other": "附属设施",
}  # fmt: skip


@dataclass(frozen=True)
class ProtectionZones:
    """The zones of a store's pipelines and facilities under one rule set, indexed once.

    ``elements`` are the references: pipeline pieces (``ref`` < number of pipelines) then
    facilities; ``thresholds[ref, rule]`` is the distance (m) within which rule ``rule``
    applies to reference ``ref`` (NaN: it does not). ``works[rule, code]`` says whether rule
    covers work ``code`` (``work_codes``; the last column is any other kind).
    """

    rules: tuple[ZoneRule, ...]
    crs: Any
    pipeline_ids: np.ndarray
    pipeline_refs: tuple[LineRef, ...]
    facility_ids: np.ndarray
    facility_kinds: np.ndarray
    facility_pipeline: np.ndarray  # index into pipeline_ids, -1 when none
    ref_geoms: np.ndarray  # per element: a 2-point piece or a facility footprint
    ref: np.ndarray  # per element: index into the reference table
    segments: np.ndarray  # per element: x0, y0, dx, dy (pieces; NaN for facilities)
    thresholds: np.ndarray
    reach: np.ndarray  # per reference: its largest threshold (-1: no rule applies)
    works: np.ndarray
    work_codes: dict[str, int]
    tree: shapely.STRtree
    point_site_radius_m: float

    @property
    def n_pipelines(self) -> int:
        return len(self.pipeline_ids)

    def work_code(self, kinds: Sequence[object] | np.ndarray) -> np.ndarray:
        """Codes of work kinds (the last code for any kind no rule names)."""
        codes = pd.Index(list(self.work_codes)).get_indexer(np.asarray(kinds, dtype=object))
        codes[codes < 0] = len(self.work_codes)
        return codes.astype(np.intp)


def _diameter(pipes: pd.DataFrame) -> np.ndarray:
    if "diameter_mm" not in pipes.columns:
        return np.zeros(len(pipes))
    return pd.to_numeric(pipes["diameter_mm"], errors="coerce").fillna(0.0).to_numpy(float)


def _col(df: pd.DataFrame | None, name: str, n: int) -> np.ndarray:
    if df is None or name not in df.columns:
        return np.full(n, None, dtype=object)
    return df[name].astype(object).where(df[name].notna(), None).to_numpy(dtype=object)


def prepare_zones(
    pipelines: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame | None = None,
    *,
    rules: ProtectionRules,
) -> ProtectionZones:
    """Index the protection zones of ``pipelines`` (and ``facilities``) under ``rules``.

    ``pipelines``: ``id``, ``kind``, ``diameter_mm`` (for pipe-wall rows), ``status``
    (abandoned lines have no zone); ``facilities``: ``id``, ``kind``, ``pipeline_id``. Both in
    the same projected CRS (metres).
    """
    require_projected(pipelines, "pipelines")
    if facilities is not None:
        require_same_crs(facilities, pipelines.crs, "pipeline_facilities", "pipelines")
    status = _col(pipelines, "status", len(pipelines))
    pipes = pipelines.loc[~pd.Series(status).isin(_SKIP_PIPELINE_STATUS).to_numpy()]
    pipes = pipes.loc[~pipes.geometry.isna().to_numpy() & ~pipes.geometry.is_empty.to_numpy()]
    pipes = pipes.reset_index(drop=True)
    np_ = len(pipes)
    zrules = tuple(rules.zones)
    nr = len(zrules)
    kind = _col(pipes, "kind", np_)
    od_half = _diameter(pipes) / 2000.0
    t_line = np.full((np_, nr), np.nan)
    for j, r in enumerate(zrules):
        if r.reference != "line":
            continue
        sel = kind == r.pipeline_kind
        t_line[sel, j] = r.within_m + (od_half[sel] if r.measure_from == "pipe_wall" else 0.0)
    refs = line_references(pipes.geometry.to_numpy())
    pcs = pieces(refs, max_length_m=_PIECE_M)
    pid = pipes["id"].astype(str).to_numpy(dtype=object)
    if facilities is not None and len(facilities):
        fac = facilities.loc[~facilities.geometry.isna().to_numpy()
                             & ~facilities.geometry.is_empty.to_numpy()].reset_index(drop=True)
    else:
        fac = gpd.GeoDataFrame({"id": [], "kind": []}, geometry=[], crs=pipelines.crs)
    nf = len(fac)
    fkind = _col(fac, "kind", nf)
    fpipe_id = _col(fac, "pipeline_id", nf)
    pos = {p: i for i, p in enumerate(pid.tolist())}
    fpipe = np.array([pos.get(str(p), -1) if p is not None else -1 for p in fpipe_id],
                     dtype=np.intp)
    # a facility without a known pipeline is taken as long-distance (the law's default)
    fk = np.full(nf, "long_distance", dtype=object)
    fk[fpipe >= 0] = kind[fpipe[fpipe >= 0]]
    t_fac = np.full((nf, nr), np.nan)
    for j, r in enumerate(zrules):
        if r.reference != "facility":
            continue
        sel = np.isin(fkind, r.facility_kinds) & (fk == r.pipeline_kind)
        t_fac[sel, j] = r.within_m
    thresholds = np.vstack([t_line, t_fac]) if nr else np.zeros((np_ + nf, 0))
    grow = np.nanmax(np.where(np.isnan(thresholds), -1.0, thresholds), axis=1,
                     initial=-1.0)
    fgeoms = fac.geometry.to_numpy()
    ref_geoms = np.concatenate([pcs.geoms, fgeoms]).astype(object)
    ref = np.concatenate([pcs.line, np_ + np.arange(nf)]).astype(np.intp)
    keep = grow[ref] >= 0  # references no rule applies to are not indexed
    ref_geoms, ref = ref_geoms[keep], ref[keep]
    seg = np.full((len(keep), 4), np.nan)
    if len(pcs.geoms):
        e = shapely.get_coordinates(pcs.geoms).reshape(-1, 4)
        seg[: len(pcs.geoms)] = np.c_[e[:, 0], e[:, 1], e[:, 2] - e[:, 0], e[:, 3] - e[:, 1]]
    seg = seg[keep]
    env = shapely.bounds(ref_geoms) if len(ref_geoms) else np.zeros((0, 4))
    g = grow[ref] + _TOL_M
    boxes = shapely.box(env[:, 0] - g, env[:, 1] - g, env[:, 2] + g, env[:, 3] + g)
    vocab = sorted({w for r in zrules for w in r.works if w != "*"})
    codes = {w: i for i, w in enumerate(vocab)}
    works = np.zeros((nr, len(vocab) + 1), dtype=bool)
    for j, r in enumerate(zrules):
        if "*" in r.works:
            works[j, :] = True
        else:
            works[j, [codes[w] for w in r.works]] = True
    return ProtectionZones(
        rules=zrules, crs=pipelines.crs, pipeline_ids=pid, pipeline_refs=tuple(refs),
        facility_ids=fac["id"].astype(str).to_numpy(dtype=object), facility_kinds=fkind,
        facility_pipeline=fpipe, ref_geoms=ref_geoms, ref=ref, segments=seg,
        thresholds=thresholds, reach=grow, works=works, work_codes=codes,
        tree=shapely.STRtree(boxes), point_site_radius_m=rules.point_site_radius_m)


# --- hits: (query, rule, reference, distance) ------------------------------------------------
def _hits(zones: ProtectionZones, pairs: tuple[np.ndarray, np.ndarray], d: np.ndarray,
          code: np.ndarray) -> Hits:
    """Rule hits of candidate (query, element) pairs at distance ``d``: the minimum distance
    per (query, rule, reference), sorted by query, rule, reference."""
    q, e = pairs
    if len(q) == 0 or len(zones.rules) == 0:
        return {"q": np.empty(0, np.intp), "rule": np.empty(0, np.intp),
                "ref": np.empty(0, np.intp), "distance_m": np.empty(0)}
    near = d <= zones.reach[zones.ref[e]] + _TOL_M  # within the widest zone of the reference
    q, e, d = q[near], e[near], d[near]
    thr = zones.thresholds[zones.ref[e]]
    with np.errstate(invalid="ignore"):
        ok = (d[:, None] <= thr + _TOL_M) & zones.works[:, code[q]].T
    pi, rule = np.nonzero(ok)
    hq, href, hd = q[pi], zones.ref[e[pi]], d[pi]
    o = np.lexsort((hd, href, rule, hq))
    hq, rule, href, hd = hq[o], rule[o], href[o], hd[o]
    first = np.ones(len(hq), dtype=bool)
    first[1:] = (hq[1:] != hq[:-1]) | (rule[1:] != rule[:-1]) | (href[1:] != href[:-1])
    return {"q": hq[first], "rule": rule[first], "ref": href[first], "distance_m": hd[first]}


def _point_distances(zones: ProtectionZones, x: np.ndarray, y: np.ndarray, q: np.ndarray,
                     e: np.ndarray) -> np.ndarray:
    """Exact distance of points (x[q], y[q]) to elements e: pieces by arithmetic, facility
    footprints by shapely."""
    s = zones.segments[e]
    line = ~np.isnan(s[:, 0])
    d = np.empty(len(q))
    if line.any():
        px, py = x[q[line]], y[q[line]]
        ax, ay, dx, dy = s[line].T
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        d[line] = np.hypot(px - ax - t * dx, py - ay - t * dy)
    if (~line).any():
        d[~line] = shapely.distance(shapely.points(x[q[~line]], y[q[~line]]),
                                    zones.ref_geoms[e[~line]])
    return d


def _take(hits: Hits, keep: np.ndarray) -> Hits:
    return {c: v[keep] for c, v in hits.items()}


def _best(hits: Hits, zones: ProtectionZones, *, also: bool = True) -> Hits:
    """Per query the worst hit: forbidden before permit, higher severity, nearer, rule order;
    ``also`` adds the ids of every rule the query hit (``;``-joined, in that order)."""
    cols = {c: hits[c] for c in ("q", "rule", "ref", "distance_m")}
    if len(cols["q"]) == 0:
        return {**cols, "also": np.empty(0, dtype=object)} if also else cols
    forb = np.array([r.action == "forbidden" for r in zones.rules])
    sev = np.array([SEVERITIES.index(r.severity) for r in zones.rules])
    q, rule = cols["q"], cols["rule"]
    o = np.lexsort((cols["ref"], rule, cols["distance_m"], sev[rule], ~forb[rule], q))
    s = {c: v[o] for c, v in cols.items()}
    starts = np.flatnonzero(np.r_[True, s["q"][1:] != s["q"][:-1]])
    out = {c: v[starts] for c, v in s.items()}
    if also:
        ids = np.array([r.id + ";" for r in zones.rules], dtype=object)
        # each rule once per query, in the order above
        key = s["q"].astype(np.int64) * len(zones.rules) + s["rule"]
        _, first = np.unique(key, return_index=True)
        keep = np.zeros(len(key), dtype=bool)
        keep[first] = True
        kq, kr = s["q"][keep], s["rule"][keep]
        kstarts = np.flatnonzero(np.r_[True, kq[1:] != kq[:-1]])
        joined = np.add.reduceat(ids[kr], kstarts) if len(kr) else np.empty(0, dtype=object)
        out["also"] = np.array([t[:-1] for t in joined], dtype=object)
    return out


# --- permits ------------------------------------------------------------------------------------
def _ordinals(values: np.ndarray, missing: int) -> np.ndarray:
    """Day ordinals of dates (date, Timestamp or ISO text); ``missing`` where empty."""
    s = pd.to_datetime(pd.Series(values, dtype=object), errors="coerce")
    out = np.full(len(s), missing, dtype=np.int64)
    ok = s.notna().to_numpy()
    if ok.any():
        days = s[ok].to_numpy(dtype="datetime64[D]").astype(np.int64)
        out[ok] = days + dt.date(1970, 1, 1).toordinal()
    return out


def permit_states(sites: pd.DataFrame, *, on: dt.date | np.ndarray) -> np.ndarray:
    """Permit state of each site on ``on`` (a date, or one day ordinal per site): ``valid``,
    ``missing`` (no permit_no), ``expired`` (permit_to before the day) or ``not_yet_valid``
    (permit_from after it; not for ``planned`` sites, whose work has not started).
    Validity is inclusive: permit_from <= day <= permit_to."""
    n = len(sites)
    day = (np.full(n, on.toordinal(), dtype=np.int64) if isinstance(on, dt.date)
           else np.asarray(on, dtype=np.int64))
    no = _col(sites, "permit_no", n)
    has = np.array([v is not None and str(v).strip() != "" for v in no], dtype=bool)
    start = _ordinals(_col(sites, "permit_from", n), _NO_DAY)
    end = _ordinals(_col(sites, "permit_to", n), _ANY_DAY)
    planned = _col(sites, "status", n) == "planned"
    out = np.full(n, "valid", dtype=object)
    out[(day < start) & ~planned] = "not_yet_valid"
    out[day > end] = "expired"
    out[~has] = "missing"
    return out


# --- construction sites -------------------------------------------------------------------------
def _ref_texts(zones: ProtectionZones, ref: np.ndarray, rule: np.ndarray
               ) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(zh, en) description of each reference, its layer, id and pipeline id."""
    npl = zones.n_pipelines
    zh, en = [], []
    layer = np.where(ref < npl, "pipelines", "pipeline_facilities").astype(object)
    rid = np.empty(len(ref), dtype=object)
    pipe = np.empty(len(ref), dtype=object)
    for k, (r, j) in enumerate(zip(ref.tolist(), rule.tolist(), strict=True)):
        if r < npl:
            p = zones.pipeline_ids[r]
            rid[k] = pipe[k] = p
            wall = zones.rules[j].measure_from == "pipe_wall"
            zh.append(f"管道{p}{'管壁' if wall else '中心线'}")
            en.append(f"pipeline {p} {'pipe wall' if wall else 'centre line'}")
        else:
            f = r - npl
            fid, fk = zones.facility_ids[f], str(zones.facility_kinds[f])
            fp = zones.facility_pipeline[f]
            rid[k] = fid
            pipe[k] = zones.pipeline_ids[fp] if fp >= 0 else None
            zh.append(f"{_FACILITY_ZH.get(fk, fk)}{fid}")
            en.append(f"facility {fid} ({fk.replace('_', ' ')})")
    return zh, en, layer, rid, pipe


def _chainages(zones: ProtectionZones, geoms: np.ndarray, pipe: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Chainage range of each geometry along its pipeline (NaN where none)."""
    lo = np.full(len(geoms), np.nan)
    hi = np.full(len(geoms), np.nan)
    pos = {p: i for i, p in enumerate(zones.pipeline_ids.tolist())}
    idx = np.array([pos.get(p, -1) for p in pipe.tolist()], dtype=np.intp)
    for i in np.unique(idx[idx >= 0]):  # one vectorised call per pipeline with findings
        sel = idx == i
        lo[sel], hi[sel] = chainage_range(zones.pipeline_refs[i], geoms[sel])
        pt = sel & np.array([g.geom_type == "Point" for g in geoms])
        if pt.any():
            lo[pt] = hi[pt] = chainage(zones.pipeline_refs[i], geoms[pt])
    return lo, hi


def check_construction(
    sites: gpd.GeoDataFrame,
    pipelines: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame | None = None,
    *,
    rules: ProtectionRules,
    on: dt.date,
    zones: ProtectionZones | None = None,
) -> gpd.GeoDataFrame:
    """Construction sites whose work is forbidden where they stand (critical) or needs a
    permit they do not hold valid on ``on`` (high): one finding per site (the worst).

    Parameters
    ----------
    sites
        ``construction_sites``: ``id``, ``work``, ``permit_no``, ``permit_from``,
        ``permit_to``, ``status``; projected CRS (metres), the pipelines' CRS.
    pipelines, facilities
        The references (see :func:`prepare_zones`); ``zones`` may pass them prepared.
    on
        The day permits are judged on (the district's date).

    Returns
    -------
    GeoDataFrame
        The common findings schema (``kind`` construction_forbidden | construction_no_permit |
        construction_permit_expired | construction_permit_not_yet_valid; ``other_layer`` /
        ``other_id`` the pipeline or facility) plus ``pipeline_id``, ``work``, ``distance_m``,
        ``required_m``, ``clause``, ``confidence``, ``permit_no``, ``permit_from``,
        ``permit_to``, ``permit_state``, ``on`` and ``rules_matched``; geometry = the site.
    """
    require_projected(sites, "construction_sites")
    require_same_crs(sites, pipelines.crs, "construction_sites", "pipelines")
    if zones is None:
        zones = prepare_zones(pipelines, facilities, rules=rules)
    n = len(sites)
    status = _col(sites, "status", n)
    geoms = sites.geometry.to_numpy()
    live = (status != "finished") & ~pd.isna(geoms)
    live[live] = ~shapely.is_empty(geoms[live])
    idx = np.flatnonzero(live)
    if len(idx) == 0:
        return _empty(sites.crs)
    g = geoms[idx]
    code = zones.work_code(_col(sites, "work", n)[idx])
    q, e = zones.tree.query(g)
    d = shapely.distance(g[q], zones.ref_geoms[e])
    hits = _hits(zones, (q, e), d, code)
    states = permit_states(sites.iloc[idx], on=on)
    forb = np.array([r.action == "forbidden" for r in zones.rules], dtype=bool)
    hits = _take(hits, forb[hits["rule"]] | (states[hits["q"]] != "valid"))
    best = _best(hits, zones)
    if len(best["q"]) == 0:
        return _empty(sites.crs)
    q, rule, ref = best["q"], best["rule"], best["ref"]
    rows = sites.iloc[idx[q]]
    state = states[q]
    action = np.where(forb[rule], "forbidden", state)
    kinds = {"forbidden": "construction_forbidden", "missing": "construction_no_permit",
             "expired": "construction_permit_expired",
             "not_yet_valid": "construction_permit_not_yet_valid"}
    rzh, ren, layer, rid, pipe = _ref_texts(zones, ref, rule)
    lo, hi = _chainages(zones, g[q], pipe)
    dist = best["distance_m"].astype(float)
    req = zones.thresholds[ref, rule]
    sid = rows["id"].astype(str).to_numpy(dtype=object)
    work = _col(rows, "work", len(rows))
    pno, pfrom, pto = (_col(rows, c, len(rows)) for c in ("permit_no", "permit_from", "permit_to"))
    zh, en = [], []
    for k in range(len(q)):
        z = zones.rules[rule[k]]
        w = str(work[k])
        head_zh = (f"第三方施工{sid[k]}({_WORK_ZH.get(w, w)})距{rzh[k]}{dist[k]:.2f}米,"
                   f"在{req[k]:g}米范围内")
        head_en = (f"construction site {sid[k]} ({w.replace('_', ' ')}) is {dist[k]:.2f} m "
                   f"from {ren[k]}, within {req[k]:g} m")
        a = action[k]
        if a == "forbidden":
            zh.append(f"{head_zh}:禁止{_WORK_ZH.get(w, w)}作业({z.clause}: {z.name_zh})")
            en.append(f"{head_en}: {w.replace('_', ' ')} is forbidden there ({z.clause})")
        elif a == "missing":
            zh.append(f"{head_zh}:须经批准({z.clause}),未登记许可")
            en.append(f"{head_en}: needs a permit ({z.clause}); none recorded")
        elif a == "expired":
            zh.append(f"{head_zh}:须经批准({z.clause}),许可{pno[k]}已于{_iso(pto[k])}到期")
            en.append(f"{head_en}: needs a permit ({z.clause}); permit {pno[k]} expired "
                      f"after {_iso(pto[k])}")
        else:
            zh.append(f"{head_zh}:须经批准({z.clause}),许可{pno[k]}自{_iso(pfrom[k])}起生效")
            en.append(f"{head_en}: needs a permit ({z.clause}); permit {pno[k]} is valid only "
                      f"from {_iso(pfrom[k])}")
    frame = pd.DataFrame({
        "severity": [zones.rules[j].severity for j in rule],
        "layer": "construction_sites", "feature_id": sid, "other_layer": layer,
        "other_id": rid, "rule_id": [zones.rules[j].id for j in rule],
        "rule_source": [zones.rules[j].source for j in rule],
        "chainage_from_m": np.round(lo, 3), "chainage_to_m": np.round(hi, 3),
        "station": format_stations(lo), "message_zh": zh, "message_en": en,
        "pipeline_id": pipe, "work": work, "distance_m": np.round(dist, 3),
        "required_m": np.round(req, 3), "clause": [zones.rules[j].clause for j in rule],
        "confidence": [zones.rules[j].confidence for j in rule],
        "permit_no": pno, "permit_from": [_iso(v) for v in pfrom],
        "permit_to": [_iso(v) for v in pto], "permit_state": state, "on": on.isoformat(),
        "rules_matched": best["also"],
        "_kind": [kinds[a] for a in action],
    })
    out = []
    for kind, part in frame.groupby("_kind", sort=True):
        out.append(make_findings(part.drop(columns="_kind"), kind=str(kind),
                                 geometry=g[q][part.index.to_numpy()], crs=sites.crs,
                                 id_columns=["feature_id"]))
    res = pd.concat(out, ignore_index=True)
    return gpd.GeoDataFrame(res.sort_values("finding_id", kind="stable").reset_index(drop=True),
                            geometry=res.geometry.name, crs=sites.crs)


def _empty(crs: Any) -> gpd.GeoDataFrame:
    out = empty_findings(crs)
    for c in _EXTRA:
        out[c] = pd.Series(dtype=float if c.endswith("_m") else object)
    return out


def _iso(v: object) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (dt.date, pd.Timestamp)):
        return v.isoformat()[:10]
    return str(v)[:10]


# --- machine positions --------------------------------------------------------------------------
@dataclass(frozen=True)
class HeldSites:
    """Active permitted construction sites: where each covers machines of its work."""

    areas: np.ndarray
    code: np.ndarray
    start: np.ndarray
    end: np.ndarray
    ids: np.ndarray
    tree: shapely.STRtree


def held_areas(sites: gpd.GeoDataFrame | None, zones: ProtectionZones) -> HeldSites:
    """Index the active sites holding a permit (dates are checked per position)."""
    if sites is None or sites.empty:
        e = np.empty(0, dtype=object)
        return HeldSites(e, np.empty(0, np.intp), np.empty(0, np.int64), np.empty(0, np.int64), e,
                     shapely.STRtree(e))
    require_same_crs(sites, zones.crs, "construction_sites", "the zones")
    n = len(sites)
    no = _col(sites, "permit_no", n)
    ok = ((_col(sites, "status", n) == "active")
          & np.array([v is not None and str(v).strip() != "" for v in no], dtype=bool)
          & ~pd.isna(sites.geometry.to_numpy()))
    s = sites.loc[ok]
    g = s.geometry.to_numpy()
    pts = shapely.get_type_id(g) == 0
    g = g.copy()
    g[pts] = shapely.buffer(g[pts], zones.point_site_radius_m, quad_segs=32)
    shapely.prepare(g)
    return HeldSites(g, zones.work_code(_col(s, "work", len(s))),
                 _ordinals(_col(s, "permit_from", len(s)), _NO_DAY),
                 _ordinals(_col(s, "permit_to", len(s)), _ANY_DAY),
                 s["id"].astype(str).to_numpy(dtype=object), shapely.STRtree(g))


def check_positions(
    zones: ProtectionZones,
    held: HeldSites,
    *,
    x: np.ndarray,
    y: np.ndarray,
    work: Sequence[object] | np.ndarray,
    day: np.ndarray,
) -> Hits:
    """Alerts for machine positions (x, y in the zones' projected CRS; ``work`` the kind of
    work of each machine; ``day`` the day ordinal of each position in the district).

    A position alerts when its work is forbidden in a zone it is in (critical), or needs a
    permit there and no site in ``held`` of the same work, active, permitted on that day, and
    containing the position (a point site: within ``point_site_radius_m``) covers it (high).

    Returns arrays with one entry per alerting position: ``position`` (index into the
    inputs), ``rule``, ``ref``, ``distance_m``, ``required_m``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    code = zones.work_code(work)
    day = np.asarray(day, dtype=np.int64)
    pts = shapely.points(x, y)
    q, e = zones.tree.query(pts)
    d = _point_distances(zones, x, y, q, e)
    hits = _hits(zones, (q, e), d, code)
    forb = np.array([r.action == "forbidden" for r in zones.rules], dtype=bool)
    if len(hits["q"]):
        need = ~forb[hits["rule"]]
        askers = np.unique(hits["q"][need])
        covered = np.zeros(len(x), dtype=bool)
        if len(askers) and len(held.areas):
            hq, hs = held.tree.query(pts[askers])
            pq = askers[hq]
            ok = ((held.code[hs] == code[pq]) & (held.start[hs] <= day[pq])
                  & (day[pq] <= held.end[hs]))
            pq, hs = pq[ok], hs[ok]
            inside = shapely.contains_xy(held.areas[hs], x[pq], y[pq]) | shapely.intersects_xy(
                held.areas[hs], x[pq], y[pq])
            covered[pq[inside]] = True
        hits = _take(hits, ~need | ~covered[hits["q"]])
    best = _best(hits, zones, also=False)
    return {"position": best["q"], "rule": best["rule"], "ref": best["ref"],
            "distance_m": best["distance_m"],
            "required_m": zones.thresholds[best["ref"], best["rule"]]}


def alert_texts(zones: ProtectionZones, alerts: Hits, machine: Sequence[object] | np.ndarray,
                work: Sequence[object] | np.ndarray) -> Hits:
    """Columns describing each alert: severity, rule_id, rule_source, clause, other_layer,
    other_id, pipeline_id, message_zh, message_en (``machine``/``work`` per alert)."""
    rule = alerts["rule"].astype(np.intp)
    ref = alerts["ref"].astype(np.intp)
    rzh, ren, layer, rid, pipe = _ref_texts(zones, ref, rule)
    dist = alerts["distance_m"].astype(float)
    req = alerts["required_m"].astype(float)
    zh, en = [], []
    for k in range(len(rule)):
        z = zones.rules[rule[k]]
        w = str(work[k])
        m = machine[k]
        if z.action == "forbidden":
            zh.append(f"机械{m}({_WORK_ZH.get(w, w)})距{rzh[k]}{dist[k]:.1f}米,在{req[k]:g}米"
                      f"禁止范围内({z.clause})")
            en.append(f"machine {m} ({w.replace('_', ' ')}) is {dist[k]:.1f} m from {ren[k]}, "
                      f"inside the {req[k]:g} m zone where it is forbidden ({z.clause})")
        else:
            zh.append(f"机械{m}({_WORK_ZH.get(w, w)})距{rzh[k]}{dist[k]:.1f}米,在{req[k]:g}米"
                      f"范围内作业须经批准({z.clause}),所在处无有效许可的施工场地")
            en.append(f"machine {m} ({w.replace('_', ' ')}) is {dist[k]:.1f} m from {ren[k]}, "
                      f"inside the {req[k]:g} m zone where it needs a permit ({z.clause}); "
                      "no permitted site covers it")
    rules = zones.rules
    return {
        "severity": np.array([rules[j].severity for j in rule], dtype=object),
        "rule_id": np.array([rules[j].id for j in rule], dtype=object),
        "rule_source": np.array([rules[j].source for j in rule], dtype=object),
        "clause": np.array([rules[j].clause for j in rule], dtype=object),
        "other_layer": layer, "other_id": rid, "pipeline_id": pipe,
        "message_zh": np.array(zh, dtype=object), "message_en": np.array(en, dtype=object),
    }
