"""Profile the pipeline check on a dense district, and pin its findings across optimisations.

    .venv/bin/python bench/profile_dense.py build  --n 100000           # the store (cached)
    .venv/bin/python bench/profile_dense.py run    --n 100000 [--profile] [--save F | --compare F]
    .venv/bin/python bench/profile_dense.py demo   [--save F | --compare F]
    .venv/bin/python bench/profile_dense.py urban  [--profile] [--save F | --compare F]

The stores are bench/pipeline_check.py's (:mod:`bench.workloads`: the dense district of issue
12 with ``--n`` buildings, and the urban network at scale 4). ``run`` times
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

from bench.workloads import dense_store, urban_store  # noqa: E402

OUT = ROOT / "bench" / "out"
COMPARE = ["finding_id", "kind", "chainage_from_m", "chainage_to_m", "chainage_m", "station",
           "distance_m", "clear_distance_m", "shortfall_m", "required_m", "overlap_m2",
           "rule_id", "severity", "message_zh", "message_en"]


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
