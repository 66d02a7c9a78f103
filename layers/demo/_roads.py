"""Road network (segments split at every junction) and hydrants of the demo district."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from layers.demo import _layout as L
from layers.demo._geom import ids, segments

__all__ = ["ROAD_COLUMNS", "build_hydrants", "build_roads"]

ROAD_COLUMNS = ["id", "name", "road_class", "oneway", "speed_kmh", "width_m", "lanes", "bridge",
                "tunnel", "hazmat", "max_weight_t", "max_height_m"]  # fmt: skip

_ARTERIAL_NAMES = ["光明大道", "复元路", "祁连山路", "泰山路", "长白山路", "华山路", "衡山路",
                   "嵩山路", "恒山路", "黄山路", "峨眉山路", "庐山路"]  # fmt: skip
_CN_DIGITS = "〇一二三四五六七八九"


def _num(k: int) -> str:
    return "".join(_CN_DIGITS[int(c)] for c in str(k))


def _line_names(n: int, vertical: bool) -> np.ndarray:
    names = []
    for k in range(n + 1):
        if k % 8 == 0:
            base = _ARTERIAL_NAMES[(k // 8 + (0 if vertical else 6)) % len(_ARTERIAL_NAMES)]
            names.append(base if (k // 8) < len(_ARTERIAL_NAMES) else f"{base}{k // 8}")
        else:
            names.append(("经" if vertical else "纬") + _num(k) + "路")
    return np.array(names, dtype=object)


def _frame(x0, y0, x1, y1, k, vertical: bool, names: np.ndarray) -> pd.DataFrame:
    cls = L.line_class(k)
    width = np.select([cls == "arterial", cls == "collector"], [40.0, 24.0], 14.0)
    lanes = np.select([cls == "arterial", cls == "collector"], [6, 4], 2)
    speed = np.select([cls == "arterial", cls == "collector"], [60.0, 50.0], 30.0)
    return pd.DataFrame({
        "x0": x0, "y0": y0, "x1": x1, "y1": y1, "k": k, "vertical": vertical,
        "name": names[k], "road_class": cls, "speed_kmh": speed, "width_m": width,
        "lanes": lanes,
    })  # fmt: skip


def _inside(df: pd.DataFrame, box: tuple[float, float, float, float]) -> np.ndarray:
    mx = (df["x0"].to_numpy() + df["x1"].to_numpy()) / 2
    my = (df["y0"].to_numpy() + df["y1"].to_numpy()) / 2
    return (mx > box[0]) & (mx < box[2]) & (my > box[1]) & (my < box[3])


def build_roads(grid: L.Grid, lane_nodes: list[tuple[int, int]]) -> pd.DataFrame:
    """All road segments as a frame with endpoint columns and road attributes.

    ``lane_nodes`` are (i, j) horizontal segments split at their midpoint where a compound
    fire lane joins the street.
    """
    b, nx, ny = grid.b, grid.nx, grid.ny
    # vertical segments (i, j): (iB, jB) -> (iB, (j+1)B)
    ii, jj = (a.ravel() for a in np.meshgrid(np.arange(nx + 1), np.arange(ny), indexing="ij"))
    v = _frame(ii * b, jj * b, ii * b, (jj + 1) * b, ii, True, _line_names(nx, True))
    v["i"], v["j"] = ii, jj
    # horizontal segments (i, j): (iB, jB) -> ((i+1)B, jB), split at lane nodes
    ii, jj = (a.ravel() for a in np.meshgrid(np.arange(nx), np.arange(ny + 1), indexing="ij"))
    key = ii * (ny + 1) + jj
    split = np.isin(key, [i * (ny + 1) + j for i, j in lane_nodes])
    xs0 = np.concatenate([ii[~split] * b, ii[split] * b, ii[split] * b + b / 2])
    xs1 = np.concatenate([(ii[~split] + 1) * b, ii[split] * b + b / 2, (ii[split] + 1) * b])
    hi = np.concatenate([ii[~split], ii[split], ii[split]])
    hj = np.concatenate([jj[~split], jj[split], jj[split]])
    order = np.lexsort((xs0, hj))
    xs0, xs1, hi, hj = xs0[order], xs1[order], hi[order], hj[order]
    h = _frame(xs0, hj * b, xs1, hj * b, hj, False, _line_names(ny, False))
    h["i"], h["j"] = hi, hj
    df = pd.concat([v, h], ignore_index=True)

    # river: local streets end at the banks, the others cross on bridges
    river = df["vertical"].to_numpy() & (df["j"].to_numpy() == L.RIVER_ROW)
    local = df["road_class"].to_numpy() == "local"
    df = df[~(river & local)].copy()
    df["bridge"] = df["vertical"].to_numpy() & (df["j"].to_numpy() == L.RIVER_ROW)
    # no streets through the reservoir
    df = df[~_inside(df, L.RESERVOIR)].copy()
    df["tunnel"] = False
    df["hazmat"] = "yes"
    df["oneway"] = False
    df["max_weight_t"] = np.where(df["bridge"], 49.0, np.nan)
    df["max_height_m"] = np.nan
    df["urban"] = True

    # one-way local streets in the city centre, alternating direction
    ci0, ci1, cj0, cj1 = L.CITY_CENTRE
    i, j, k = df["i"].to_numpy(), df["j"].to_numpy(), df["k"].to_numpy()
    vert = df["vertical"].to_numpy()
    incc = np.where(vert, (i > ci0) & (i <= ci1) & (j >= cj0) & (j <= cj1),
                    (i >= ci0) & (i <= ci1) & (j > cj0) & (j <= cj1))
    one = incc & (df["road_class"].to_numpy() == "local")
    df["oneway"] = one
    flip = one & (k % 2 == 1)
    x0, y0 = df["x0"].to_numpy().copy(), df["y0"].to_numpy().copy()
    df.loc[flip, "x0"] = df.loc[flip, "x1"]
    df.loc[flip, "y0"] = df.loc[flip, "y1"]
    df.loc[flip, "x1"] = x0[flip]
    df.loc[flip, "y1"] = y0[flip]
    df.loc[one, "lanes"] = 2

    # access-only (destination) streets around the depots
    for bi, bj, bi1, bj1 in [(*L.DEPOTS["D1"], *L.DEPOTS["D1"]), (*L.DEPOTS["D2"], *L.DEPOTS["D2"]),
                             (L.OIL_DEPOT[0], L.OIL_DEPOT[2], L.OIL_DEPOT[1], L.OIL_DEPOT[3])]:
        box = (bi * b - 1, bj * b - 1, (bi1 + 1) * b + 1, (bj1 + 1) * b + 1)
        on_edge = (
            (df["x0"].between(box[0], box[2]) & df["x1"].between(box[0], box[2]))
            & (df["y0"].between(box[1], box[3]) & df["y1"].between(box[1], box[3]))
        )
        df.loc[on_edge & (df["road_class"] == "local"), "hazmat"] = "destination"

    df = pd.concat([df, _rural(grid)], ignore_index=True)
    df["lanes"] = df["lanes"].astype(int)
    df["id"] = ids("R-", len(df), 6)
    return df.reset_index(drop=True)


def _rural(grid: L.Grid) -> pd.DataFrame:
    """Expressway, interchange links, national/provincial roads and the tunnel road."""
    b, w, hgt, m = grid.b, grid.width, grid.height, L.MARGIN
    rows: list[dict[str, object]] = []

    def add(x0, y0, x1, y1, name, cls, speed, width, lanes, **kw):
        rows.append({"x0": x0, "y0": y0, "x1": x1, "y1": y1, "name": name, "road_class": cls,
                     "speed_kmh": speed, "width_m": width, "lanes": lanes, **kw})

    links = [i * b for i in range(0, grid.nx + 1, 8)]
    xs = [-m, *links, w + m]
    for x0, x1 in itertools.pairwise(xs):
        add(x0, -500.0, x1, -500.0, "京台高速", "expressway", 100.0, 28.0, 4)
    for x in links:
        add(x, 0.0, x, -500.0, "高速连接线", "arterial", 60.0, 24.0, 4)
    add(-m, 8 * b, 0.0, 8 * b, "G206国道", "national", 80.0, 24.0, 4)
    add(w, 8 * b, w + m, 8 * b, "G206国道", "national", 80.0, 24.0, 4)
    add(16 * b, -500.0, 16 * b, -m, "S345省道", "provincial", 60.0, 12.0, 2)
    x = 24 * b
    add(x, hgt, x, hgt + 150.0, "S244省道", "provincial", 60.0, 12.0, 2)
    add(x, hgt + 150.0, x, hgt + 900.0, "抱犊崮隧道", "provincial", 60.0, 12.0, 2,
        tunnel=True, hazmat="no", max_height_m=4.5)
    add(x, hgt + 900.0, x, hgt + m, "S244省道", "provincial", 60.0, 12.0, 2)
    df = pd.DataFrame(rows)
    df["tunnel"] = df.get("tunnel", False)
    df["tunnel"] = df["tunnel"].fillna(False).astype(bool)
    df["hazmat"] = df["hazmat"].fillna("yes")
    df["bridge"] = False
    df["oneway"] = False
    df["max_weight_t"] = np.nan
    df["urban"] = False
    df["vertical"] = df["x0"] == df["x1"]
    return df


def road_geometries(df: pd.DataFrame) -> np.ndarray:
    return segments(df["x0"].to_numpy(), df["y0"].to_numpy(), df["x1"].to_numpy(),
                    df["y1"].to_numpy())


def build_hydrants(df: pd.DataFrame, grid: L.Grid, rng: np.random.Generator, n_faulty: int = 6):
    """Hydrants on the verge of every road but the expressway, at most 50 m apart (so one
    faulty hydrant leaves no spacing gap), on both river banks of each bridge, except the
    planted gap. Returns (frame with x, y, id, status, road_id; gap road ids)."""
    i = df["i"].fillna(-1).to_numpy().astype(np.int64)
    j = df["j"].fillna(-1).to_numpy().astype(np.int64)
    key = i * 1_000_000 + j
    vert = df["vertical"].to_numpy().astype(bool)
    gv = [a * 1_000_000 + c for a, c in L.HYDRANT_GAP["v"]]
    gh = [a * 1_000_000 + c for a, c in L.HYDRANT_GAP["h"]]
    gap_mask = df["urban"].to_numpy().astype(bool) & np.where(
        vert, np.isin(key, gv), np.isin(key, gh))
    sel = (df["road_class"].to_numpy() != "expressway") & ~gap_mask
    seg = df[sel]
    x0, y0 = seg["x0"].to_numpy(), seg["y0"].to_numpy()
    x1, y1 = seg["x1"].to_numpy(), seg["y1"].to_numpy()
    length = np.hypot(x1 - x0, y1 - y0)
    bridge = seg["bridge"].to_numpy().astype(bool)
    n = np.where(bridge, 2, np.maximum(1, np.ceil(length / 50.0))).astype(int)
    rep = np.repeat(np.arange(len(seg)), n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    t = (k + 0.5) / n[rep]
    # bridges: one hydrant on each bank, 20 m from the bridge ends (the river is 100 m wide)
    lb = length[rep]
    t = np.where(bridge[rep], np.where(k == 0, 20.0 / lb, (lb - 20.0) / lb), t)
    px = x0[rep] + (x1 - x0)[rep] * t
    py = y0[rep] + (y1 - y0)[rep] * t
    hw = seg["width_m"].to_numpy()[rep] / 2.0
    off = np.maximum(hw - 1.0, 2.0)
    # verge on the west side of north-south streets, south side of east-west streets
    isv = seg["vertical"].to_numpy()[rep].astype(bool)
    px = np.where(isv, np.minimum(x0, x1)[rep] - off, px)
    py = np.where(isv, py, np.minimum(y0, y1)[rep] - off)
    out = pd.DataFrame({"x": px, "y": py, "road_id": seg["id"].to_numpy()[rep]})
    out["id"] = ids("H-", len(out), 6)
    out["status"] = "ok"
    faulty = np.sort(rng.choice(len(out), size=n_faulty, replace=False))
    out.loc[faulty, "status"] = "faulty"
    return out, df.loc[gap_mask, "id"].tolist()
