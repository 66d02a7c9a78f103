"""Profile the pipeline check on a dense district, and pin its findings across optimisations.

    .venv/bin/python bench/profile_dense.py build  --n 100000           # the store (cached)
    .venv/bin/python bench/profile_dense.py run    --n 100000 [--profile] [--save F | --compare F]
    .venv/bin/python bench/profile_dense.py demo   [--save F | --compare F]
    .venv/bin/python bench/profile_dense.py urban  [--profile] [--save F | --compare F]

A deterministic dense district like issue 12's: a 20 km x 20 km square in EPSG:4548, 50 urban
gas mains (sub-high A, 1.2 MPa, 219 mm, 5-20 km, wandering, vertices every 10 m; some
MultiLineStrings with gaps) through ``--n`` clustered rectangular buildings (rotated, 8-30 m),
about 8 % of them inside the 13.5 m clearance (1 M buildings -> ~80 k findings). ``run`` times
``riskmap check pipelines`` end to end in-process (read store, project, check, write the
findings GeoPackage) with the stage timings; ``--profile`` prints the cProfile top 30.

``--save`` writes the findings' comparable columns to a parquet file; ``--compare`` checks the
current findings against one: same ids and kinds, chainages within 1 mm, same distances /
shortfalls / overlaps, same messages. (The permanent version of this check is a test on
crafted geometry, tests/geo/test_pipelines.py.)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "out"
CRS = "EPSG:4548"
X0, Y0 = 500_000.0, 3_800_000.0
SIDE = 20_000.0
COMPARE = ["finding_id", "kind", "chainage_from_m", "chainage_to_m", "chainage_m", "station",
           "distance_m", "clear_distance_m", "shortfall_m", "required_m", "overlap_m2",
           "rule_id", "severity", "message_zh", "message_en"]


def _main(rng: np.random.Generator, length: float) -> np.ndarray:
    """A wandering line of ``length`` m, vertices every 10 m, inside the square."""
    n = int(length / 10.0) + 1
    turn = np.cumsum(rng.normal(0.0, 0.02, n - 1)) + rng.uniform(0, 2 * np.pi)
    xy = np.empty((n, 2))
    xy[0] = rng.uniform(2000, SIDE - 2000, 2)
    for i in range(1, n):  # reflect at the border (generator only; not a hot path)
        step = 10.0 * np.array([np.cos(turn[i - 1]), np.sin(turn[i - 1])])
        nxt = xy[i - 1] + step
        if not (0 < nxt[0] < SIDE and 0 < nxt[1] < SIDE):
            turn[i - 1:] += np.pi / 2
            step = 10.0 * np.array([np.cos(turn[i - 1]), np.sin(turn[i - 1])])
            nxt = xy[i - 1] + step
        xy[i] = nxt
    return xy + np.array([X0, Y0])


def dense_layers(n: int, *, seed: int = 12) -> tuple[object, object]:
    """(pipelines, buildings) GeoDataFrames of the dense district in EPSG:4548."""
    import geopandas as gpd
    import shapely
    from shapely.geometry import LineString, MultiLineString

    rng = np.random.default_rng(seed)
    geoms, mains = [], []
    for i in range(50):
        xy = _main(rng, rng.uniform(5000, 20000))
        mains.append(xy)
        if i % 10 == 3:  # a MultiLineString with a 30 m gap in the middle
            k = len(xy) // 2
            geoms.append(MultiLineString([xy[:k], xy[k + 3:]]))
        else:
            geoms.append(LineString(xy))
    pipes = gpd.GeoDataFrame({
        "id": [f"G-{i:03d}" for i in range(50)], "kind": "urban_gas", "medium": "natural_gas",
        "pressure_mpa": 1.2, "diameter_mm": 219.0, "wall_mm": np.nan, "status": "in_service",
    }, geometry=geoms, crs=CRS)
    # clusters: a fifth of them centred near the mains (streets), the others anywhere
    allxy = np.concatenate(mains)
    n_cl = max(10, n // 200)
    n_on = n_cl // 5
    on = allxy[rng.integers(0, len(allxy), n_on)] + rng.normal(0, 80, (n_on, 2))
    off = rng.uniform(0, SIDE, (n_cl - n_on, 2)) + np.array([X0, Y0])
    centres = np.concatenate([on, off])
    c = rng.integers(0, len(centres), n)
    sigma = np.where(c < len(on), 60.0, 250.0)
    xy = centres[c] + rng.normal(0, 1, (n, 2)) * sigma[:, None]
    w, h = rng.uniform(8, 30, n), rng.uniform(8, 20, n)
    a = rng.uniform(0, np.pi, n)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float) / 2
    cx = corners[None, :, 0] * w[:, None]
    cy = corners[None, :, 1] * h[:, None]
    px = xy[:, 0:1] + cx * np.cos(a)[:, None] - cy * np.sin(a)[:, None]
    py = xy[:, 1:2] + cx * np.sin(a)[:, None] + cy * np.cos(a)[:, None]
    polys = shapely.polygons(np.stack([px, py], axis=2))
    uses = rng.choice(["residential", "office", "school", "industrial", "shed"], n,
                      p=[0.6, 0.2, 0.05, 0.1, 0.05])
    blds = gpd.GeoDataFrame({"id": [f"B{i:07d}" for i in range(n)], "use": uses},
                            geometry=polys, crs=CRS)
    return pipes, blds


def dense_store(n: int) -> Path:
    from layers.store import GeoPackageStore

    path = OUT / f"dense2_{n}.gpkg"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        pipes, blds = dense_layers(n)
        GeoPackageStore(path).write({"pipelines": pipes, "buildings": blds})  # type: ignore[dict-item]
        print(f"built {path} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return path


def urban_store(scale: float = 4.0) -> Path:
    """The demo at ``--scale`` with an urban gas main along every street (one per road:
    ~14 k mains, ~94 k buildings at scale 4), pressures from low to sub-high A."""
    import geopandas as gpd

    from layers.demo import write_demo
    from layers.store import GeoPackageStore

    path = OUT / f"urban_{scale:g}.gpkg"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    write_demo(path, seed=42, scale=scale)
    store = GeoPackageStore(path)
    roads = store.read("roads", columns=["id"])
    n = len(roads)
    i = np.arange(n)
    pressure = np.array([0.005, 0.3, 0.6, 1.2])[i % 4]
    diameter = np.array([160.0, 219.0, 273.0, 323.9])[(i // 4) % 4]
    mains = gpd.GeoDataFrame({
        "id": [f"UG-{k:05d}" for k in i], "kind": "urban_gas", "medium": "natural_gas",
        "pressure_mpa": pressure, "diameter_mm": diameter, "wall_mm": np.nan,
        "status": "in_service"}, geometry=roads.geometry.values, crs=roads.crs)
    store.write({"pipelines": mains})
    return path


def run_e2e(store_path: Path, *, profile: bool = False) -> object:
    """``riskmap check pipelines`` in-process: read, project, check, write; prints timings."""
    from api.runs.pipelines import Progress, run_pipeline_check
    from layers.store import open_store
    from layers.writers import write_findings

    prof = cProfile.Profile() if profile else None
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        prog = Progress(4, stream=None)
        run = run_pipeline_check(open_store(store_path), progress=prog)
        prog.step("write")
        write_findings(run.findings, Path(tmp) / "f.gpkg")
        prog.done()
        if prof:
            prof.disable()
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
    stages = " ".join(f"{k.split()[0]}={v:.2f}" for k, v in prog.timings.items())
    print(f"e2e {total:.2f} s (cpu {cpu:.2f} s)  read={run.buildings_read:,} findings={len(run.findings):,}  "
          f"[{stages}]")
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(30)
        print(s.getvalue())
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(20)
        print(s.getvalue())
    return run.findings


def save(findings: object, path: str) -> None:
    import pandas as pd

    df = pd.DataFrame(findings)[COMPARE]
    df.to_parquet(path)
    print(f"saved {len(df):,} findings to {path}")


def compare(findings: object, path: str) -> bool:
    """True when ``findings`` match the saved ones (see the module docstring)."""
    import pandas as pd

    want = pd.read_parquet(path).set_index("finding_id")
    got = pd.DataFrame(findings)[COMPARE].set_index("finding_id")
    ok = True
    if list(want.index) != list(got.index):
        print(f"ids differ: {len(set(want.index) ^ set(got.index))} not in both")
        return False
    for c in want.columns:
        a, b = want[c].to_numpy(), got[c].to_numpy()
        if c.startswith("chainage"):
            bad = ~np.isclose(a.astype(float), b.astype(float), atol=1e-3, rtol=0)
        elif a.dtype.kind == "f":
            bad = ~np.isclose(a, b, atol=1e-9, rtol=0)
        else:
            bad = a != b
        if bad.any():
            ok = False
            print(f"{c}: {int(bad.sum())} differ, e.g. {want.index[bad][:3].tolist()}: "
                  f"{a[bad][:3].tolist()} vs {b[bad][:3].tolist()}")
    print("same findings" if ok else "FINDINGS DIFFER")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["build", "run", "demo", "urban"])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--save")
    ap.add_argument("--compare")
    a = ap.parse_args()
    if a.what == "urban":
        path = urban_store()
    elif a.what == "demo":
        from layers.demo import write_demo

        path = OUT / "demo_profile.gpkg"
        if not path.exists():
            OUT.mkdir(parents=True, exist_ok=True)
            write_demo(path, seed=42, scale=1.0)
    else:
        path = dense_store(a.n)
        if a.what == "build":
            return
    found = run_e2e(path, profile=a.profile)
    if a.save:
        save(found, a.save)
    if a.compare and not compare(found, a.compare):
        sys.exit(1)


if __name__ == "__main__":
    main()
