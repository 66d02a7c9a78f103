"""Demo warning signs, patrol paths and inspection dates with planted cases (issue 16 part B).

Distances in local demo metres (shifted to EPSG:4548 by the demo builder); chainage along each
pipeline as :func:`geo.linref.line_reference` measures it. Rule values assumed (patrol.toml
defaults): sign spacing 100 m within 50 m of the line, patrol reach 50 m, inspection interval
3 years; the demo is judged on or after :data:`AS_OF` (and before 2028-04).

- **Signs**: every long-distance line carries a sign in good order every 100 m (chainage 50,
  150, …) and one at its end, 2 m beside the line, so every HCA is signed — except three
  planted gaps of exactly 100 m: a *missing* sign on P-OIL-01, a *damaged* one on P-GAS-01 and
  one taken off the record on P-OIL-02 (chainage 350, across nothing special).
- **Patrol paths**: a path 20 m beside every long-distance line (served: all of it, reach 50 m)
  except a 400 m break on P-OIL-01 (the Lu-Ning line, target 2020) and a 500 m impassable
  stretch on P-GAS-01 (target 2022): served ends reach sqrt(50² − 20²) ≈ 45.826 m past a path
  end, so the gaps are 400 − 2 × 45.826 and 500 − 2 × 45.826 m. Urban gas mains have no path
  and no target.
- **Inspection**: lines in service are due in 2028 (valid) except P-OIL-02 (due 2026-06-30:
  overdue), P-GAS-U02 (no date at all: no record) and P-GAS-U04 (only last_inspection
  2022-05-01: due 2025-05-01 on the 3-year interval: overdue).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
import shapely

from geo.linref import line_reference, point_at, substring

__all__ = ["AS_OF", "build_paths", "build_signs", "plant_inspections"]

AS_OF = "2026-12-01"
SPACING_M = 100.0
REACH_M = 50.0
PATH_OFFSET_M = 20.0
_SIGN_OFFSET_M = 2.0
_REACH_PAST = math.sqrt(REACH_M**2 - PATH_OFFSET_M**2)
# (pipeline, chainage of the sign, status or None = not on record)
_SIGN_CASES = (("P-OIL-01", 1050.0, "missing"), ("P-GAS-01", 650.0, "damaged"),
               ("P-OIL-02", 350.0, None))
# (pipeline, from, to, how): the path is broken there, or impassable
_PATH_CASES = (("P-OIL-01", 2000.0, 2400.0, "break"), ("P-GAS-01", 1500.0, 2000.0,
                                                        "impassable"))


def _long(pipes: pd.DataFrame) -> pd.DataFrame:
    return pipes[pipes["kind"] == "long_distance"]


def build_signs(pipes: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Warning signs along every long-distance line and the planted sign-gap cases."""
    rows: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    planted = {(p, c): s for p, c, s in _SIGN_CASES}
    for pid, geom in zip(_long(pipes)["id"], _long(pipes)["geometry"], strict=True):
        ref = line_reference(geom)
        ch = np.r_[np.arange(50.0, ref.length_m, SPACING_M), ref.length_m]
        at = point_at(ref, ch)
        ahead = point_at(ref, np.minimum(ch + 1.0, ref.length_m))
        back = point_at(ref, np.maximum(ch - 1.0, 0.0))
        dx = shapely.get_x(ahead) - shapely.get_x(back)
        dy = shapely.get_y(ahead) - shapely.get_y(back)
        n = np.hypot(dx, dy)
        x = shapely.get_x(at) - dy / n * _SIGN_OFFSET_M
        y = shapely.get_y(at) + dx / n * _SIGN_OFFSET_M
        for k, (c, px, py) in enumerate(zip(ch.tolist(), x.tolist(), y.tolist(),
                                            strict=True), start=1):
            sid = f"WS-{pid[2:]}-{k:03d}"
            status = planted.get((pid, c), "ok")
            if (pid, c) in planted:
                cases.append({"case": "sign_gap", "layer": "warning_signs", "id": sid,
                              "pipeline_id": pid, "expect": "finding",
                              "sign_status": status or "not on record",
                              "chainage_from_m": c - SPACING_M / 2,
                              "chainage_to_m": c + SPACING_M / 2, "gap_m": SPACING_M,
                              "note": "one sign out of a row 100 m apart: a 100 m gap"})
                if status is None:
                    continue
            rows.append({"id": sid, "pipeline_id": pid, "kind": "hca", "status": status,
                         "geometry": shapely.Point(px, py)})
    return pd.DataFrame(rows), cases


def build_paths(pipes: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Patrol paths 20 m beside every long-distance line and the planted patrol-gap cases."""
    rows: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    for pid, geom in zip(_long(pipes)["id"], _long(pipes)["geometry"], strict=True):
        ref = line_reference(geom)
        spans: list[tuple[float, float, bool]] = [(0.0, ref.length_m, True)]
        for cid, a, z, how in _PATH_CASES:
            if cid != pid:
                continue
            spans = [(0.0, a, True), (z, ref.length_m, True)]
            if how == "impassable":
                spans.insert(1, (a, z, False))
            cases.append({"case": "patrol_gap", "layer": "pipelines", "id": pid,
                          "pipeline_id": pid, "expect": "finding", "how": how,
                          "chainage_from_m": round(a + _REACH_PAST, 3),
                          "chainage_to_m": round(z - _REACH_PAST, 3),
                          "note": f"patrol path {'broken' if how == 'break' else 'impassable'} "
                                  f"from chainage {a:g} to {z:g}; 20 m off the line, reach 50 m"})
        k = 0
        for a, z, passable in spans:
            line = substring(ref, a, z)
            for part in shapely.get_parts(np.asarray([line], dtype=object)).tolist():
                k += 1
                off = shapely.offset_curve(part, -PATH_OFFSET_M, join_style="round")
                rows.append({"id": f"PP-{pid[2:]}-{k:02d}", "pipeline_id": pid,
                             "passable": passable, "geometry": off})
    return pd.DataFrame(rows), cases


def plant_inspections(pipes: pd.DataFrame) -> list[dict[str, Any]]:
    """Set the inspection dates of ``pipes`` (in place) and return the planted cases."""
    last = pd.Series(pipes["last_inspection"], dtype=object)
    nxt = [dt.date(2028, d.month, min(d.day, 28)) if d is not None else None for d in last]
    pipes["next_inspection_due"] = pd.Series(nxt, index=pipes.index, dtype=object)
    plan = {"P-OIL-02": (dt.date(2023, 6, 30), dt.date(2026, 6, 30), "inspection_overdue",
                         "next_inspection_due 2026-06-30 passed"),
            "P-GAS-U02": (None, None, "inspection_missing", "no inspection date at all"),
            "P-GAS-U04": (dt.date(2022, 5, 1), None, "inspection_overdue",
                          "last inspected 2022-05-01, no due date: due 2025-05-01 (3 years)")}
    cases = []
    for pid, (li, nd, case, note) in plan.items():
        sel = pipes.index[pipes["id"] == pid]
        pipes.loc[sel, "last_inspection"] = pd.Series([li] * len(sel), index=sel, dtype=object)
        pipes.loc[sel, "next_inspection_due"] = pd.Series([nd] * len(sel), index=sel,
                                                          dtype=object)
        cases.append({"case": case, "layer": "pipelines", "id": pid, "pipeline_id": pid,
                      "expect": "finding", "as_of": AS_OF, "note": note})
    return cases
