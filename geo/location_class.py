"""Location class (地区等级) along long-distance pipelines — GB 50251-2015 §4.2.

Method (rule row ``location_class`` of ``layers/rule_tables/location_class.toml``):

1. Every building within ``half_width_m`` of the centre line (exact distance) is placed at the
   chainage of its centroid projected on the line and counts its households
   (:func:`households`).
2. Every 2 km window ``[s, s + window_m]`` is evaluated. The windows that matter start at a
   building's chainage, so all of them are enumerated exactly with cumulative sums and
   ``searchsorted`` (no sampling step).
3. Window class: ``households < class2_min_households`` → 1 (一级一类 when 0, else 一级二类),
   ``>= class2_min_households`` → 2, ``>= class3_min_households`` → 3; class 4 when the
   window has ``>= class4_min_households`` and more than ``class4_min_share`` of its counted
   buildings have ``floors >= class4_min_floors`` (riskmap's reading of "prevalent").
4. A window's class covers the line from ``boundary_m`` before the outer edge of its first
   building to ``boundary_m`` after its last (4.2.2: boundary >= 200 m from the nearest
   building). Each chainage takes the highest (class, households) of the windows covering it;
   the rest of the line is 一级一类.
5. Gathering places (schools, hospitals … within ``half_width_m``) in class 1/2 stretches give
   the class 3 *design* class from ``boundary_m`` before to ``boundary_m`` after them (4.2.2-3).

Output: chainage ranges per pipeline with the class, the household count and the window
(``window_from_m``/``window_to_m``) that decided it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import require_projected
from geo.errors import CRSError
from geo.findings import format_station
from geo.linref import (
    LineRef,
    chainage,
    chainage_range,
    cover_max,
    line_reference,
    pieces,
    substring,
)
from geo.pipelines import pipeline_distances

__all__ = ["CLASS_LABELS", "households", "location_classes", "window_classes"]

Rule = Mapping[str, Any]

# (zh, en) by (class, subclass): subclass 1 = 一级一类 (no households), 2 = 一级二类
CLASS_LABELS = {
    (1, 1): ("一级一类", "class 1 division 1"),
    (1, 2): ("一级二类", "class 1 division 2"),
    (2, 0): ("二级", "class 2"),
    (3, 0): ("三级", "class 3"),
    (4, 0): ("四级", "class 4"),
}


def households(buildings: gpd.GeoDataFrame, *, rule: Rule) -> np.ndarray:
    """Households each building counts for (rule row ``households``).

    Residential uses count their ``households`` (missing → footprint area × floors /
    ``household_area_m2``, at least 1); ``zero_uses`` count 0; every other building counts 1.
    """
    n = len(buildings)
    use = (buildings["use"].fillna("other").astype(str).to_numpy() if "use" in buildings
           else np.full(n, "other", dtype=object))
    hh = (pd.to_numeric(buildings["households"], errors="coerce").to_numpy(dtype=float)
          if "households" in buildings else np.full(n, np.nan))
    floors = (pd.to_numeric(buildings["floors"], errors="coerce").fillna(1).to_numpy(dtype=float)
              if "floors" in buildings else np.ones(n))
    res = np.isin(use, list(rule["residential_uses"]))
    zero = np.isin(use, list(rule["zero_uses"]))
    est = np.maximum(1.0, np.round(shapely.area(buildings.geometry.values) * floors
                                   / float(rule["household_area_m2"])))
    out = np.where(res, np.where(np.isfinite(hh), hh, est), np.where(zero, 0.0, 1.0))
    return out.astype(np.int64)


def window_classes(
    chainage_m: np.ndarray, hh: np.ndarray, tall: np.ndarray, *, rule: Rule
) -> pd.DataFrame:
    """Class of every window starting at a building (inputs sorted by chainage).

    Returns one row per building ``i``: ``start``/``end`` (index range of the window's
    buildings), ``households``, ``buildings``, ``tall`` (counted buildings with floors >= the
    class 4 floors), ``location_class``.
    """
    c = np.asarray(chainage_m, dtype=float)
    h = np.asarray(hh, dtype=np.int64)
    counted = h > 0
    t = np.asarray(tall, dtype=bool) & counted
    start = np.searchsorted(c, c, side="left")
    end = np.searchsorted(c, c + float(rule["window_m"]), side="right")
    H = np.concatenate([[0], np.cumsum(h)])
    B = np.concatenate([[0], np.cumsum(counted)])
    T = np.concatenate([[0], np.cumsum(t)])
    n_h = H[end] - H[start]
    n_b = B[end] - B[start]
    n_t = T[end] - T[start]
    cls = np.ones(len(c), dtype=np.int64)
    cls[n_h >= rule["class2_min_households"]] = 2
    cls[n_h >= rule["class3_min_households"]] = 3
    share = np.divide(n_t, n_b, out=np.zeros(len(c)), where=n_b > 0)
    c4 = (n_h >= rule["class4_min_households"]) & (share > float(rule["class4_min_share"]))
    cls[c4] = 4
    return pd.DataFrame({"start": start, "end": end, "households": n_h, "buildings": n_b,
                         "tall": n_t, "location_class": cls})


def _range_min(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, fn: Any) -> np.ndarray:
    """fn (np.minimum / np.maximum) of values[lo:hi] for many ranges (sparse table)."""
    n = len(values)
    table = [values]
    k = 1
    while (1 << k) <= n:
        prev = table[-1]
        half = 1 << (k - 1)
        table.append(fn(prev[: n - (1 << k) + 1], prev[half: half + n - (1 << k) + 1]))
        k += 1
    length = hi - lo
    lvl = np.floor(np.log2(np.maximum(length, 1))).astype(np.intp)
    out = np.empty(len(lo), dtype=values.dtype)
    for j in np.unique(lvl):
        sel = lvl == j
        tj = table[j]
        out[sel] = fn(tj[lo[sel]], tj[hi[sel] - (1 << j)])
    return out


def _classify_line(
    ref: LineRef, c: np.ndarray, lo: np.ndarray, hi: np.ndarray, hh: np.ndarray,
    tall: np.ndarray, gather: tuple[np.ndarray, np.ndarray], *, rule: Rule,
) -> pd.DataFrame:
    length = ref.length_m
    bnd = float(rule["boundary_m"])
    L = float(rule["window_m"])
    if len(c):
        order = np.argsort(c, kind="stable")
        c, lo, hi, hh, tall = c[order], lo[order], hi[order], hh[order], tall[order]
        w = window_classes(c, hh, tall, rule=rule)
        first = np.r_[True, c[1:] != c[:-1]]  # one window per distinct start chainage
        w = w[first].reset_index(drop=True)
        s, e = w["start"].to_numpy(), w["end"].to_numpy()
        w_lo = np.clip(_range_min(lo, s, e, np.minimum) - bnd, 0.0, length)
        w_hi = np.clip(_range_min(hi, s, e, np.maximum) + bnd, 0.0, length)
        w_s = c[s]
    else:
        w = pd.DataFrame({"households": [], "tall": [], "buildings": [], "location_class": []})
        w_lo = w_hi = w_s = np.zeros(0)
    g_lo = np.clip(gather[0] - bnd, 0.0, length)
    g_hi = np.clip(gather[1] + bnd, 0.0, length)
    # millimetre grid: no sliver ranges from floating-point noise
    w_lo, w_hi, g_lo, g_hi = (np.round(v, 3) for v in (w_lo, w_hi, g_lo, g_hi))
    pts = np.unique(np.concatenate([[0.0, length], w_lo, w_hi, g_lo, g_hi]))
    m = len(pts) - 1
    if m <= 0:
        pts, m = np.array([0.0, length]), 1
    nw = len(w)
    n_h = w["households"].to_numpy(dtype=np.int64)
    key = (w["location_class"].to_numpy(dtype=np.int64) * (n_h.max(initial=0) + 1) + n_h) * max(
        nw, 1) + (nw - 1 - np.arange(nw))
    best = cover_max(np.searchsorted(pts, w_lo), np.searchsorted(pts, w_hi), key, m)
    win = np.where(best >= 0, nw - 1 - best % max(nw, 1), -1)
    cls = np.where(win >= 0, w["location_class"].to_numpy()[np.maximum(win, 0)], 1) if nw else np.ones(m, np.int64)
    diff = np.zeros(m + 1, dtype=np.int64)
    np.add.at(diff, np.searchsorted(pts, g_lo), 1)
    np.add.at(diff, np.searchsorted(pts, g_hi), -1)
    gathered = (np.cumsum(diff)[:m] > 0) & (g_hi.size > 0)
    # elementary intervals → ranges of equal (class, design class)
    design = np.where(gathered & (cls < 3), 3, cls)
    inhabited = (win >= 0) & (n_h[np.maximum(win, 0)] > 0 if nw else False)
    brk = np.r_[True, (cls[1:] != cls[:-1]) | (design[1:] != design[:-1])
                | (inhabited[1:] != inhabited[:-1])]
    gid = np.cumsum(brk) - 1
    rows = []
    for g in range(gid[-1] + 1):
        idx = np.flatnonzero(gid == g)
        ws = win[idx]
        if (ws >= 0).any():
            k = idx[np.argmax(best[idx])]
            wi = win[k]
            hh_n, ws_from = int(n_h[wi]), float(w_s[wi])
            nb, nt = int(w["buildings"].iat[wi]), int(w["tall"].iat[wi])
        else:
            hh_n, ws_from, nb, nt = 0, np.nan, 0, 0
        rows.append((float(pts[idx[0]]), float(pts[idx[-1] + 1]), int(cls[idx[0]]),
                     int(design[idx[0]]), hh_n, nb, nt, ws_from))
    out = pd.DataFrame(rows, columns=["chainage_from_m", "chainage_to_m", "location_class",
                                      "design_class", "households", "buildings",
                                      "tall_buildings", "window_from_m"])
    out["window_to_m"] = np.minimum(out["window_from_m"] + L, length)
    cols = ["chainage_from_m", "chainage_to_m", "window_from_m", "window_to_m"]
    out[cols] = out[cols].round(3)
    return out


def location_classes(
    pipelines: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    *,
    rule: Rule,
    household_rule: Rule,
    sites: gpd.GeoDataFrame | None = None,
    gathering_rule: Rule | None = None,
    design_factor_rule: Rule | None = None,
    piece_length_m: float = 200.0,
) -> gpd.GeoDataFrame:
    """Location-class ranges along each pipeline (see the module docstring).

    Parameters
    ----------
    pipelines, buildings, sites
        Projected (metres), one CRS. Only the pipelines given are classified (pass the
        long-distance ones).
    rule, household_rule, gathering_rule, design_factor_rule
        Rows ``location_class``, ``households``, ``gathering_places``, ``design_factor``.

    Returns
    -------
    GeoDataFrame
        One row per range: ``pipeline_id``, ``chainage_from_m``, ``chainage_to_m``,
        ``station_from``, ``station_to``, ``location_class`` (1–4), ``class_zh``,
        ``class_en``, ``households``, ``buildings``, ``tall_buildings``, ``window_from_m``,
        ``window_to_m``, ``design_class``, ``design_factor``, ``rule_id``, ``rule_source``;
        geometry = the centre-line piece. Ranges cover every pipeline end to end.
    """
    require_projected(pipelines, "pipelines")
    require_projected(buildings, "buildings")
    crs = pipelines.crs
    for gdf, what in ((buildings, "buildings"), (sites, "sites")):
        if gdf is not None and (what == "buildings" or len(gdf)) and gdf.crs != crs:
            raise CRSError(f"{what} ({gdf.crs}) and pipelines ({crs}) are in different CRSs; "
                           "project both with geo.crs.to_analysis")
    pipes = pipelines[pipelines.geometry.notna() & ~pipelines.geometry.is_empty].reset_index(drop=True)
    blds = buildings.reset_index(drop=True)
    refs = [line_reference(g) for g in pipes.geometry.values]
    half = float(rule["half_width_m"])  # inclusive; +1e-6 m below absorbs float noise
    pcs = pieces(refs, max_length_m=piece_length_m)
    bgeom = np.asarray(blds.geometry.values, dtype=object)
    pairs = pipeline_distances(refs, bgeom, radius_m=np.full(len(refs), half + 1e-6), pcs=pcs)
    pl, bi = pairs["line"].to_numpy(), pairs["building"].to_numpy()
    hh_all = households(blds, rule=household_rule)
    floors = (pd.to_numeric(blds["floors"], errors="coerce").fillna(1).to_numpy()
              if "floors" in blds else np.ones(len(blds)))
    tall_all = floors >= float(rule["class4_min_floors"])
    gather_b = np.zeros(len(blds), dtype=bool)
    site_geoms = np.empty(0, dtype=object)
    if gathering_rule is not None:
        if "use" in blds:
            gather_b = blds["use"].isin(list(gathering_rule.get("building_uses", []))).to_numpy()
        if sites is not None and len(sites):
            require_projected(sites, "sites")
            ks = sites["kind"].isin(list(gathering_rule.get("site_kinds", []))).to_numpy()
            site_geoms = np.asarray(sites.geometry.values, dtype=object)[ks]
    if len(site_geoms):
        spairs = pipeline_distances(refs, site_geoms, radius_m=np.full(len(refs), half + 1e-6), pcs=pcs)
    else:
        spairs = pd.DataFrame({"line": np.empty(0, np.intp), "building": np.empty(0, np.intp)})
    frames = []
    for li, ref in enumerate(refs):
        sel = pl == li
        b = bi[sel]
        lo, hi = chainage_range(ref, bgeom[b])
        gb = b[gather_b[b]]
        glo, ghi = chainage_range(ref, bgeom[gb])
        ssel = spairs["line"].to_numpy() == li
        slo, shi = chainage_range(ref, site_geoms[spairs["building"].to_numpy()[ssel]])
        ch = chainage(ref, shapely.centroid(bgeom[b]))
        df = _classify_line(ref, ch, lo, hi, hh_all[b], tall_all[b],
                            (np.r_[glo, slo], np.r_[ghi, shi]), rule=rule)
        df.insert(0, "pipeline_id", pipes["id"].iat[li])
        df["geometry"] = [substring(ref, a, z) for a, z in
                          zip(df["chainage_from_m"], df["chainage_to_m"], strict=True)]
        frames.append(df)
    if not frames:
        return gpd.GeoDataFrame({"pipeline_id": []}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    out = pd.concat(frames, ignore_index=True)
    sub = np.where(out["households"] > 0, 2, 1)
    keys = list(zip(out["location_class"], np.where(out["location_class"] == 1, sub, 0),
                    strict=True))
    out["class_zh"] = [CLASS_LABELS[k][0] for k in keys]
    out["class_en"] = [CLASS_LABELS[k][1] for k in keys]
    if design_factor_rule is not None:
        dsub = np.where(out["design_class"] == 1, sub, 0)
        names = [f"class_{c}_{s}" if c == 1 else f"class_{c}" for c, s in
                 zip(out["design_class"], dsub, strict=True)]
        out["design_factor"] = [float(design_factor_rule[n]) for n in names]
    out["station_from"] = [format_station(v) for v in out["chainage_from_m"]]
    out["station_to"] = [format_station(v) for v in out["chainage_to_m"]]
    out["rule_id"] = rule.get("id")
    out["rule_source"] = rule.get("source")
    return gpd.GeoDataFrame(out, geometry="geometry", crs=crs)
