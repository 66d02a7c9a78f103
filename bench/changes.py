"""Snapshots and changes on the dense workload, against plain geopandas baselines measured in
the same run.

The dense district (bench/workloads.py: 50 gas mains, ``--n`` buildings) is copied to
``bench/out/changes_<n>.gpkg``. Then:

1. **snapshot**: :func:`layers.snapshots.create_snapshot` (SQL copy of every layer inside the
   store, one transaction) vs the baseline *read every layer with the store and write it with
   geopandas into a second GeoPackage* (``GeoDataFrame.to_file``);
2. a survey is simulated: 1 % of the buildings moved 0.5 m, 1 % gain a floor, 0.5 % removed,
   0.5 % added (written through the store);
3. **changes**: reading the snapshot and the store and :func:`layers.snapshots.feature_changes`
   (outer join on id, ``equals_exact`` then Hausdorff only where that fails, every attribute
   compared as text) vs the baseline *geopandas merge on id + ``geom_equals_exact`` + ``!=`` per
   column* on the same two frames (the reads timed apart). Both must find the same ids.

Prints seconds and ratios (riskmap / baseline; < 1 is faster). CPU is shared: compare the
ratios, not the seconds, between runs.

Usage: ``.venv/bin/python bench/changes.py [--n 100000]`` (from the repository root).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"


def _t(fn, *a, **k):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def _survey(store, rng: np.random.Generator) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    import geopandas as gpd
    import pandas as pd

    b = store.read("buildings", crs=4548)
    n = len(b)
    idx = rng.permutation(n)
    moved, floors = idx[: n // 100], idx[n // 100: n // 50]
    gone = idx[n // 50: n // 50 + n // 200]
    b.loc[b.index[moved], "geometry"] = b.geometry.iloc[moved].translate(xoff=0.5)
    b.loc[b.index[floors], "floors"] = b["floors"].iloc[floors] + 1
    kept = b.drop(index=b.index[gone])
    add = b.iloc[idx[-(n // 200):]].copy()
    add["id"] = "N" + add["id"].str[1:]
    add["geometry"] = add.geometry.translate(yoff=40.0)
    store.write({"buildings": gpd.GeoDataFrame(pd.concat([kept, add], ignore_index=True),
                                               crs=4548)})
    ids = b["id"].to_numpy()
    return {"changed": set(ids[moved]) | set(ids[floors]), "removed": set(ids[gone]),
            "added": set(add["id"])}


def _baseline_changes(before, after) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    """geopandas merge on id, geom_equals_exact, != per column."""
    import geopandas as gpd

    m = before.merge(after, on="id", how="outer", suffixes=("_b", "_a"), indicator=True)
    both = m[m["_merge"] == "both"]
    gb = gpd.GeoSeries(both["geometry_b"], crs=before.crs)
    ga = gpd.GeoSeries(both["geometry_a"], crs=after.crs)
    changed = ~gb.geom_equals_exact(ga, tolerance=0.01)
    for c in (set(before.columns) & set(after.columns)) - {"id", "geometry"}:
        x, y = both[f"{c}_b"], both[f"{c}_a"]
        changed |= (x != y) & ~(x.isna() & y.isna())
    return {"changed": set(both.loc[changed.to_numpy(), "id"]),
            "removed": set(m.loc[m["_merge"] == "left_only", "id"]),
            "added": set(m.loc[m["_merge"] == "right_only", "id"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="buildings (default 100,000)")
    args = ap.parse_args()
    from bench.workloads import dense_store
    from layers.snapshots import create_snapshot, feature_changes, snapshot_store
    from layers.store import GeoPackageStore

    src = dense_store(args.n)
    path = OUT / f"changes_{args.n}.gpkg"
    for p in (path, OUT / f"changes_{args.n}_copy.gpkg"):
        p.unlink(missing_ok=True)
    shutil.copy(src, path)
    store = GeoPackageStore(path)

    info, t_snap = _t(create_snapshot, store, "bench", created="2026-12-07T12:00:00+08:00")

    def baseline_copy() -> None:
        dst = OUT / f"changes_{args.n}_copy.gpkg"
        for layer in info.layers:
            store.read(layer).to_file(dst, layer=layer, driver="GPKG")

    _, t_copy = _t(baseline_copy)
    truth = _survey(store, np.random.default_rng(7))

    snap = snapshot_store(store, "bench")
    (before, after), t_read = _t(lambda: (snap.read("buildings", crs=4548),
                                          store.read("buildings", crs=4548)))
    ch, t_diff = _t(feature_changes, before, after, layer="buildings")
    base, t_base = _t(_baseline_changes, before, after)
    got = {k: set(ch.loc[ch["change"] == k, "feature_id"]) for k in truth}
    assert got == truth, {k: len(got[k] ^ truth[k]) for k in truth}
    assert base == truth, {k: len(base[k] ^ truth[k]) for k in truth}
    n = sum(info.layers.values())
    print(f"dense workload: {args.n:,} buildings ({n:,} features in the snapshot)")
    print(f"snapshot in the store  {t_snap:7.2f} s   baseline read + to_file copy {t_copy:7.2f} s"
          f"   ratio {t_snap / t_copy:5.2f}")
    print(f"changes (buildings)    {t_diff:7.2f} s   baseline gpd merge + compare  {t_base:7.2f} s"
          f"   ratio {t_diff / t_base:5.2f}")
    print(f"  reading both states  {t_read:7.2f} s (same for both)")
    print(f"  found: {', '.join(f'{k} {len(v):,}' for k, v in got.items())} (= planted; "
          "baseline finds the same ids)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
