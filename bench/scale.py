"""Benchmark: the pipeline check at province scale — in-process vs PostGIS pushdown vs Dask.

    .venv/bin/python bench/scale.py [--n 1m] [--big 10m | --big none] [--repeat 3]
                                    [--postgis URL]

On the demo district built at ``--n`` buildings (cached in ``bench/out/``, shared with
``bench/pipeline_check.py``), timed in the same run, median of ``--repeat`` runs, each run in a
child process so that its peak memory is its own (the sum over the process and its children,
i.e. the Dask workers; the PostgreSQL server's memory is not included):

- **(a) default**: ``riskmap check pipelines`` on the GeoPackage store — pipelines, then the
  buildings near them through the R-tree, exact check in-process.
- **(a′) default on PostGIS**: the same in-process engine reading from the PostGIS store.
- **(b) PostGIS pushdown**: ``--engine postgis`` — the candidate search as an ``ST_DWithin``
  join in the database, the exact check in-process on the candidates.
- **(c) Dask**: ``--engine dask`` on a LocalCluster with 2 workers (startup included) — every
  building read in partitions, Hilbert-shuffled, checked partition by partition, findings
  written as GeoParquet parts.

Every engine's finding ids are compared with (a)'s. Then ``--big``: the synthetic district
(``bench/district.py``) with 10 M buildings as GeoParquet parts, checked by Dask with 2 workers
(2.5 GiB memory limit each): time and peak RSS of the whole process tree, which must stay under
6 GB. Prints one table; ratios are against (a) measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# the repository first; not bench/ itself (bench/api.py would shadow the api package)
sys.path[:] = [str(ROOT), *(p for p in sys.path
                            if p and Path(p).resolve() not in (ROOT, ROOT / "bench"))]

OUT = ROOT / "bench" / "out"
DEFAULT_PG = "postgresql://riskmap@127.0.0.1:55432/riskmap_test"
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
BASE = 24_000  # buildings of the demo at scale 1 (approx.)


def _size(text: str) -> int:
    return SIZES.get(text.lower()) or int(float(text))


# --- data ------------------------------------------------------------------------------------
def demo_for(n: int) -> tuple[Path, int]:
    """The demo GeoPackage with about ``n`` buildings (built once, cached); its building count."""
    from layers.demo import manifest_path, write_demo

    scale = round(n / BASE, 3)
    path = OUT / f"demo_{scale:g}.gpkg"
    if not path.exists():
        t = time.perf_counter()
        print(f"  building the demo at --scale {scale:g} …", file=sys.stderr, flush=True)
        write_demo(path, seed=42, scale=scale)
        print(f"  built in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
    return path, int(manifest["counts"]["buildings"])


def postgis_copy(url: str, gpkg: Path) -> str:
    """The demo loaded into schema ``bench_<file stem>`` (loaded once); the store URL."""
    from layers.postgis import PostGISStore, with_schema
    from layers.store import GeoPackageStore

    schema = "bench_" + gpkg.stem.replace(".", "_").replace("-", "_")
    store_url = with_schema(url, schema)
    pg = PostGISStore(store_url)
    src = GeoPackageStore(gpkg)
    want = {i.name: i.count for i in src.layers() if i.name in ("pipelines", "buildings")}
    have = {i.name: i.count for i in pg.layers()}
    if any(have.get(k) != v for k, v in want.items()):
        t = time.perf_counter()
        print(f"  loading {gpkg.name} into PostGIS schema {schema} …", file=sys.stderr,
              flush=True)
        pg.write({k: src.read(k) for k in want})
        print(f"  loaded in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    return store_url


def big_district(n: int, part_rows: int = 250_000) -> tuple[Path, Path]:
    """The synthetic district of ``n`` buildings as GeoParquet parts (cached), and its
    pipelines (GeoParquet)."""
    from bench import district

    root = OUT / f"district_{n}"
    parts, pipes = root / "buildings", root / "pipelines.parquet"
    done = root / "COMPLETE"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        parts.mkdir(parents=True)
        t = time.perf_counter()
        print(f"  generating {n:,} synthetic buildings …", file=sys.stderr, flush=True)
        district.pipelines(n).to_crs(4490).to_parquet(pipes)
        for k, start in enumerate(range(0, n, part_rows)):
            b = district.buildings(n, start=start, count=min(part_rows, n - start))
            b.to_crs(4490).to_parquet(parts / f"part.{k:05d}.parquet")
        done.write_text(str(n))
        print(f"  generated in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    return parts, pipes


# --- child processes ---------------------------------------------------------------------------
def _tree_rss() -> int:
    import psutil

    me = psutil.Process()
    total = 0
    for p in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _child(engine: str, args: dict[str, Any], q: Any) -> None:
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss())
            stop.wait(0.1)

    # imports are not part of the timing
    import api.commands.pipelines  # noqa: F401
    import layers.postgis
    import layers.rules

    if engine == "dask":
        import distributed  # noqa: F401

        import layers.dask_engine  # noqa: F401
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        t0 = time.perf_counter()
        ids = RUNNERS[engine](**args)
        seconds = time.perf_counter() - t0
        stop.set()
        th.join()
        q.put({"seconds": seconds, "peak_rss": max(peak[0], _tree_rss()), "ids": ids})
    except BaseException as exc:  # reported by the parent
        stop.set()
        q.put({"error": f"{type(exc).__name__}: {exc}"})


def _run_local(store: str) -> list[str]:
    from api.commands.pipelines import run_pipeline_check
    from layers.store import open_store

    return sorted(run_pipeline_check(open_store(store)).findings["finding_id"])


def _run_pushdown(store: str) -> list[str]:
    from api.commands.pipelines import run_pipeline_check
    from layers.store import open_store

    return sorted(run_pipeline_check(open_store(store), engine="postgis")
                  .findings["finding_id"])


def _run_dask(source: str, pipelines: str, out: str) -> list[str] | int:
    import geopandas as gpd

    from layers.dask_engine import check_pipelines_dask, read_findings
    from layers.rules import load_rules
    from layers.store import open_store

    rules = load_rules("pipelines")
    if pipelines.endswith(".parquet"):
        pipes = gpd.read_parquet(pipelines)
    else:
        pipes = open_store(pipelines).read("pipelines")
    run = check_pipelines_dask(pipes, source, occupancy_rules=rules.rows("occupancy"),
                               setback_rules=rules.rows("setback"), out=out, n_workers=2)
    if run.findings > 2_000_000:  # the 10 M run: do not gather the findings
        return run.findings
    return sorted(read_findings(out)["finding_id"])


RUNNERS = {"local": _run_local, "pushdown": _run_pushdown, "dask": _run_dask}


def timed(engine: str, repeat: int, **args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    runs = []
    for _ in range(repeat):
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(engine, args, q))
        p.start()
        res = q.get()
        p.join()
        if "error" in res:
            raise RuntimeError(f"{engine}: {res['error']}")
        runs.append(res)
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "peak_rss": max(r["peak_rss"] for r in runs), "ids": runs[0]["ids"],
            "runs": [round(r["seconds"], 1) for r in runs]}


# --- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="1m", help="buildings of the demo run (default 1m)")
    ap.add_argument("--big", default="10m", help="buildings of the Dask-only run, or none")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--postgis", default=os.environ.get("RISKMAP_TEST_POSTGIS_URL", DEFAULT_PG),
                    help="PostgreSQL/PostGIS URL (make postgis starts one); 'none' to skip")
    a = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, dict[str, Any]]] = []

    gpkg, count = demo_for(_size(a.n))
    print(f"demo: {count:,} buildings ({gpkg.name})", file=sys.stderr)
    base = timed("local", a.repeat, store=str(gpkg))
    rows.append(("(a) default (GeoPackage)", base))
    pg_url = None
    if a.postgis != "none":
        try:
            pg_url = postgis_copy(a.postgis, gpkg)
        except Exception as exc:
            print(f"  PostGIS skipped: {exc}", file=sys.stderr)
    if pg_url is not None:
        rows.append(("(a') default (PostGIS store)", timed("local", a.repeat, store=pg_url)))
        rows.append(("(b) PostGIS pushdown", timed("pushdown", a.repeat, store=pg_url)))
    out = OUT / "scale_dask_findings"
    rows.append(("(c) dask, 2 workers", timed("dask", a.repeat, source=str(gpkg),
                                              pipelines=str(gpkg), out=str(out))))
    for _name, r in rows[1:]:
        same = r["ids"] == base["ids"]
        r["same"] = "yes" if same else f"NO ({len(r['ids'])} vs {len(base['ids'])})"
    base["same"] = f"{len(base['ids']):,} findings"

    big = None
    if a.big != "none":
        n_big = _size(a.big)
        parts, pipes = big_district(n_big)
        big = timed("dask", 1, source=str(parts), pipelines=str(pipes),
                    out=str(OUT / "scale_dask_big"))
        big["same"] = f"{big['ids']:,} findings" if isinstance(big["ids"], int) else \
            f"{len(big['ids']):,} findings"

    print(f"\nPipeline check, {count:,} buildings (demo district); median of {a.repeat}; "
          f"peak RSS = process + children")
    print(f"{'engine':32} {'median s':>9} {'vs (a)':>7} {'peak RSS':>9}  runs / same findings")
    for name, r in rows:
        print(f"{name:32} {r['seconds']:9.1f} {r['seconds'] / base['seconds']:6.2f}x "
              f"{r['peak_rss'] / 2**30:7.2f} GB  {r['runs']} {r['same']}")
    if big is not None:
        ok = "under" if big["peak_rss"] < 6e9 else "OVER"
        print(f"{'(c) dask, ' + a.big + ' synthetic':32} {big['seconds']:9.1f} {'':>7} "
              f"{big['peak_rss'] / 2**30:7.2f} GB  {big['same']}; peak {ok} 6 GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
