"""Benchmark: pipeline occupancy + setback check against PostGIS and DuckDB (issue 12).

    .venv/bin/python bench/pipeline_check.py [--workloads demo,dense,urban] [--dense-size 1m]
        [--demo-size 100k] [--urban-scale 4] [--repeat 3] [--postgis URL | --postgis none]
        [--no-duckdb] [--json FILE]

Workloads (stores built once, cached in ``bench/out/``; see ``bench/workloads.py``):

- **demo**: the demo district at the ``--scale`` matching ``--demo-size`` (9 pipelines, few
  buildings near them);
- **dense**: 20 km x 20 km in EPSG:4548, 50 urban gas mains (sub-high A, 1.2 MPa, 219 mm,
  5-20 km, a vertex every 10 m) through ``--dense-size`` clustered buildings, ~8.4 % of them
  inside the 13.5 m clearance;
- **urban**: the demo at ``--urban-scale`` with a gas main along every road segment
  (14,225 mains at scale 4, pressure classes by road class).

Timed in the same run, on the same data (median of ``--repeat``):

- **riskmap e2e**: the ``riskmap check pipelines --store S --out F.gpkg`` process, from spawn
  to exit (read the store, project, check, write findings), its own peak RSS (VmHWM), and the
  time from spawn to its first progress line on stderr;
- **riskmap check**: ``geo.pipelines.check_pipelines`` alone on every building, in memory,
  already projected;
- **PostGIS**: buildings with a GiST index, pipelines cut by ``ST_Subdivide(ST_Segmentize(g,
  200), 8)`` with a GiST index, ``ST_DWithin`` join keeping the minimum ``ST_Distance`` per
  (pipeline, building); ``SET jit = off``, 2 parallel workers allowed; query time only;
- **DuckDB spatial**: the same pieces (PostGIS's; cut by shapely the same way, <= 200 m and
  <= 8 vertices, when PostGIS is skipped), its spatial join on ``ST_DWithin`` plus ``ST_Distance``; ``SET threads = 2``; query only.

Each baseline's distance threshold per pipeline is ``geo.pipelines.search_radius`` (the
farthest distance at which a rule applies); a returned pair flags its building when it is
within the radius of the rules for that building's use (only oil-pipeline rules name uses).
The flagged sets are compared with riskmap's buildings with a finding; a mismatch is printed
loudly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# ``api`` is a namespace package: drop bench/ from the path so bench/api.py cannot shadow it
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.workloads import dense_store, urban_store  # noqa: E402

OUT = ROOT / "bench" / "out"
SIZES = {"10k": 10_000, "100k": 100_000, "200k": 200_000, "500k": 500_000, "1m": 1_000_000}
DEFAULT_PG = "postgresql://riskmap@127.0.0.1:55432/riskmap_test"
PIECE_M, PIECE_VERTICES = 200.0, 8
TARGETS = {"dense_pg": 0.65, "dense_duck": 1.0, "dense_s": 5.0, "dense_mb": 2048.0,
           "urban_s": 3.0, "first_line_s": 0.5}


def _size(text: str) -> int:
    key = text.strip().lower()
    if key in SIZES:
        return SIZES[key]
    try:
        return int(key.replace("_", "").replace("k", "000").replace("m", "000000"))
    except ValueError:
        raise SystemExit(f"size {text!r}: expected e.g. 100k, 1m or 250000") from None


def demo_store(n: int) -> Path:
    """The demo GeoPackage with about ``n`` buildings (built once, cached)."""
    from layers.demo import write_demo

    scale = round(n / 23_058, 3)  # buildings of the demo per unit of --scale
    path = OUT / f"demo_{scale:g}.gpkg"
    if not path.exists():
        print(f"  building the demo at --scale {scale:g} …", file=sys.stderr, flush=True)
        write_demo(path, seed=42, scale=scale)
    return path


# --- riskmap: the CLI process ----------------------------------------------------------------
# the console script's body (api.cli.main) plus a report of this process's peak RSS on exit
_CLI = ("import sys; from api.cli import finish, main; rc = main(sys.argv[1:]); "
        "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')]; "
        "open(sys.argv[-1] + '.rss', 'w').write(hwm[0].split()[1]); finish(rc)")


def run_cli(store: Path) -> dict[str, Any]:
    """One ``riskmap check pipelines`` process: wall time, time to first progress, peak MB."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "findings.gpkg")
        cmd = [sys.executable, "-c", _CLI, "check", "pipelines", "--store", str(store),
               "--out", out]
        first: list[float] = []
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        err = bytearray()

        def drain() -> None:
            assert proc.stderr is not None
            while chunk := proc.stderr.read1(4096):  # type: ignore[attr-defined]
                if not first and b"[" in chunk:
                    first.append(time.perf_counter() - t0)
                err.extend(chunk)

        th = threading.Thread(target=drain)
        th.start()
        stdout = proc.stdout.read() if proc.stdout else b""
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        rc = proc.returncode = os.waitstatus_to_exitcode(status)
        th.join()
        if rc != 0:
            raise RuntimeError(f"riskmap check pipelines failed ({rc}):\n{err.decode()[-3000:]}")
        import pyogrio

        f = pyogrio.read_dataframe(out, columns=["feature_id", "layer"], read_geometry=False)
        rss_mb = int(Path(out + ".rss").read_text()) / 1024
    flagged = set(f.loc[f["layer"] == "buildings", "feature_id"].astype(str))
    return {"seconds": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "first_line": first[0] if first else float("nan"),
            "stages": _stages(err.decode(errors="replace"), first[0] if first else 0.0, wall),
            "rss_mb": rss_mb, "findings": len(f), "flagged": flagged,
            "stdout_tail": stdout.decode().strip().splitlines()[-2:]}


def _stages(err: str, first: float, wall: float) -> str:
    """Seconds per stage from the progress lines (``[##--] 2/4 label   1.3 s``, the time since
    the first line): spawn to the first line, each stage, and the last line to exit."""
    import itertools
    import re

    marks = [(m.group(1).strip(), float(m.group(2))) for m in
             re.finditer(r"\] \d+/\d+ (.+?)\s+(\d+\.\d) s", err)]
    if not marks:
        return ""
    parts = [f"start {first:.2f}"]
    parts += [f"{a} {t1 - t0:.2f}"
              for (a, t0), (_b, t1) in itertools.pairwise(marks)]
    parts.append(f"summary+exit {wall - first - marks[-1][1]:.2f}")
    return ", ".join(parts)


# --- riskmap: the check in memory ------------------------------------------------------------
def load(store: Path) -> dict[str, Any]:
    """Pipelines and every building, projected to the analysis CRS, with the rule radii."""
    from api.runs.pipelines import load_pipeline_rules
    from geo.crs import analysis_crs
    from geo.pipelines import search_radius
    from layers.store import open_store

    rules = load_pipeline_rules(None)
    occ, sb = rules.rows("occupancy"), rules.rows("setback")
    st = open_store(store)
    p = st.read("pipelines")
    crs = analysis_crs(p)
    p = p.to_crs(crs).reset_index(drop=True)
    b = st.read("buildings", columns=["id", "use"]).to_crs(crs).reset_index(drop=True)
    radius = search_radius(p, occupancy_rules=occ, setback_rules=sb)
    # rules naming building uses (oil pipelines near crowded buildings): radius per use
    uses = b["use"].astype(str).to_numpy()
    by_use = {u: search_radius(p, occupancy_rules=occ, setback_rules=[
        r for r in sb if "building_uses" not in r or u in r["building_uses"]])
        for u in np.unique(uses)}
    return {"pipes": p, "buildings": b, "occ": occ, "sb": sb, "radius": radius, "crs": crs,
            "radius_by_use": by_use, "use_of": dict(zip(b["id"].astype(str), uses, strict=True))}


def check_in_memory(data: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Median seconds of ``check_pipelines`` on every building; the flagged building ids."""
    from geo.pipelines import check_pipelines

    times, cpu, found = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), _cpu()
        found = check_pipelines(data["pipes"], data["buildings"],
                                occupancy_rules=data["occ"], setback_rules=data["sb"])
        times.append(time.perf_counter() - t)
        cpu.append(_cpu() - c)
    assert found is not None
    flagged = set(found.loc[found["layer"] == "buildings", "feature_id"].astype(str))
    return {"seconds": statistics.median(times), "cpu": statistics.median(cpu),
            "findings": len(found), "flagged": flagged}


def _cpu(pid: int | None = None) -> float:
    """CPU seconds (user + system) of this process (all threads), or of process ``pid``."""
    if pid is None:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # a server on another machine
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pieces(lines: np.ndarray, radius: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lines cut as ``ST_Subdivide(ST_Segmentize(g, 200), 8)`` cuts them (<= 200 m segments,
    <= 8 vertices a piece), vectorised: (line index, radius, piece geometry) per piece."""
    import shapely

    parts, part_line = shapely.get_parts(shapely.segmentize(lines, PIECE_M), return_index=True)
    xy, vi = shapely.get_coordinates(parts, return_index=True)
    n_vert = np.bincount(vi, minlength=len(parts))
    first = np.concatenate([[0], np.cumsum(n_vert)[:-1]])
    k = np.arange(len(xy)) - first[vi]  # vertex number within its part
    per = PIECE_VERTICES - 1  # segments a piece
    n_seg = n_vert - 1
    n_pc = -(-n_seg // per)
    pc_first = np.concatenate([[0], np.cumsum(n_pc)[:-1]])
    # a vertex starts piece k // per and (k % per == 0, k > 0) also ends the piece before
    own = pc_first[vi] + np.minimum(k // per, n_pc[vi] - 1)
    shared = (k % per == 0) & (k > 0) & (k < n_seg[vi])
    idx = np.concatenate([own, own[shared] - 1])
    pts = np.concatenate([xy, xy[shared]])
    order = np.lexsort((np.concatenate([k, k[shared]]), idx))
    geoms = shapely.linestrings(pts[order], indices=idx[order])
    line = np.repeat(part_line, n_pc)
    return line, radius[line], geoms


def _pairs_flagged(rows: list[tuple[Any, ...]], data: dict[str, Any]) -> set[str]:
    """Buildings of the (line, id, distance) rows within their line's radius for their use."""
    by_use, use_of = data["radius_by_use"], data["use_of"]
    return {str(i) for line, i, d in rows if d <= by_use[use_of[str(i)]][int(line)]}


# --- PostGIS ---------------------------------------------------------------------------------
def postgis(url: str | None, data: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Best-practice PostGIS query time on the same data (load excluded)."""
    if url is None:
        return {"skip": "--postgis none"}
    try:
        import psycopg
    except ImportError:
        return {"skip": "psycopg is not installed (pip install -e '.[postgis]')"}
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=3)
    except Exception as exc:  # no server
        return {"skip": f"no PostGIS server at {url} ({str(exc).splitlines()[0][:80]})"}
    import shapely

    p, b, radius = data["pipes"], data["buildings"], data["radius"]
    epsg = int(p.crs.to_epsg())
    s = "bench_pipeline"
    with conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
        conn.execute(f"CREATE SCHEMA {s}")
        t = time.perf_counter()
        conn.execute(f"CREATE TABLE {s}.buildings (id text, geom geometry(Polygon, {epsg}))")
        wkb = shapely.to_wkb(np.asarray(b.geometry.values), hex=True, include_srid=False)
        with conn.cursor() as cur, cur.copy(f"COPY {s}.buildings (id, geom) FROM STDIN") as cp:
            for i, g in zip(b["id"].astype(str), wkb, strict=True):
                cp.write_row((i, f"SRID={epsg};{g}"))
        conn.execute(f"CREATE INDEX ON {s}.buildings USING gist (geom)")
        conn.execute(f"CREATE TABLE {s}.pipes (line int, radius float8, "
                     f"geom geometry(Geometry, {epsg}))")
        with conn.cursor() as cur, cur.copy(f"COPY {s}.pipes (line, radius, geom) FROM STDIN") as cp:
            for i, (r, g) in enumerate(zip(radius, shapely.to_wkb(
                    np.asarray(p.geometry.values), hex=True), strict=True)):
                cp.write_row((i, float(r), f"SRID={epsg};{g}"))
        conn.execute(f"CREATE TABLE {s}.pieces AS SELECT line, radius, ST_Subdivide("
                     f"ST_Segmentize(geom, {PIECE_M}), {PIECE_VERTICES}) AS geom FROM {s}.pipes")
        conn.execute(f"CREATE INDEX ON {s}.pieces USING gist (geom)")
        conn.execute(f"VACUUM ANALYZE {s}.buildings")
        conn.execute(f"VACUUM ANALYZE {s}.pieces")
        load_s = time.perf_counter() - t
        conn.execute("SET jit = off")
        conn.execute("SET max_parallel_workers_per_gather = 2")
        q = (f"SELECT s.line, b.id, min(ST_Distance(s.geom, b.geom)) FROM {s}.pieces s "
             f"JOIN {s}.buildings b ON ST_DWithin(s.geom, b.geom, s.radius) "
             "GROUP BY s.line, b.id")
        # the planner's choice, then parallel workers forced: the faster counts
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        variants = {}
        for name, settings in (("planner", ()), ("forced parallel", (
                "SET parallel_setup_cost = 0", "SET parallel_tuple_cost = 0",
                "SET min_parallel_table_scan_size = 0", "SET min_parallel_index_scan_size = 0"))):
            for stmt in settings:
                conn.execute(stmt)
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + q).fetchall())
            times, cpu, rows = [], [], []
            for _ in range(repeat):
                t, c = time.perf_counter(), _cpu(backend)
                rows = conn.execute(q).fetchall()
                times.append(time.perf_counter() - t)
                cpu.append(_cpu(backend) - c)
            variants[name] = (statistics.median(times), "Gather" in plan, rows,
                              statistics.median(cpu))
        best = min(variants, key=lambda k: variants[k][0])
        rows = variants[best][2]
        version = conn.execute("SELECT postgis_lib_version()").fetchone()[0]  # type: ignore[index]
        cut = conn.execute(f"SELECT line, radius, ST_AsBinary(geom) FROM {s}.pieces").fetchall()
        conn.execute(f"DROP SCHEMA {s} CASCADE")
    return {"seconds": variants[best][0], "load": load_s, "version": version,
            "flagged": _pairs_flagged(rows, data), "pairs": len(rows), "pieces": len(cut),
            "cut": cut, "best": best, "parallel": variants[best][1],
            "variants": {k: (round(v[0], 3), v[1], round(v[3], 3)) for k, v in variants.items()},
            "cpu": variants[best][3],
            "index": "Index Scan" in plan}


# --- DuckDB ----------------------------------------------------------------------------------
def duckdb_spatial(data: dict[str, Any], repeat: int,
                   cut: list[tuple[Any, ...]] | None = None) -> dict[str, Any]:
    """DuckDB spatial on the same pieces: spatial join on ST_DWithin + ST_Distance.

    ``cut``: PostGIS's pieces (line, radius, WKB) when it ran; else :func:`pieces` cuts."""
    try:
        import duckdb
        import duckdb_ext  # noqa: F401  (the duckdb-ext-spatial wheel)
    except ImportError:
        return {"skip": "duckdb / duckdb-ext-spatial not installed (pip install -e '.[bench]')"}
    import pandas as pd
    import shapely

    ext_dir = Path(next(iter(sys.modules["duckdb_ext"].__path__))) / "extensions"
    p, b, radius = data["pipes"], data["buildings"], data["radius"]
    con = duckdb.connect()
    con.execute("SET extension_directory = ?", [str(ext_dir)])
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("LOAD spatial")
    con.execute("SET threads = 2")
    t = time.perf_counter()
    if cut:
        line = np.array([c[0] for c in cut])
        rad = np.array([c[1] for c in cut])
        geoms = shapely.from_wkb([bytes(c[2]) for c in cut])
        source = "PostGIS's ST_Subdivide pieces"
    else:
        line, rad, geoms = pieces(np.asarray(p.geometry.values), np.asarray(radius, float))
        source = "pieces cut by shapely (<= 200 m, <= 8 vertices)"
    bdf = pd.DataFrame({"id": b["id"].astype(str).to_numpy(),
                        "wkb": shapely.to_wkb(np.asarray(b.geometry.values))})
    pdf = pd.DataFrame({"line": line, "radius": rad, "wkb": shapely.to_wkb(geoms)})
    con.register("bdf", bdf)
    con.register("pdf", pdf)
    con.execute("CREATE TABLE buildings AS SELECT id, ST_GeomFromWKB(wkb) AS geom FROM bdf")
    con.execute("CREATE TABLE pieces AS SELECT line, radius, ST_GeomFromWKB(wkb) AS geom "
                "FROM pdf")
    con.execute("CREATE INDEX buildings_rtree ON buildings USING RTREE (geom)")
    load_s = time.perf_counter() - t
    rmax = float(np.max(radius))
    # the spatial join needs one distance; pairs beyond their own line's radius are dropped
    q = ("SELECT s.line, b.id, min(ST_Distance(s.geom, b.geom)) AS d FROM pieces s "
         f"JOIN buildings b ON ST_DWithin(s.geom, b.geom, {rmax!r}) "
         "GROUP BY s.line, b.id")
    plan = "\n".join(str(r[1]) for r in con.execute("EXPLAIN " + q).fetchall())
    times, cpu, rows = [], [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), _cpu()
        rows = con.execute(q).fetchall()
        times.append(time.perf_counter() - t)
        cpu.append(_cpu() - c)
    version = duckdb.__version__
    con.close()
    return {"seconds": statistics.median(times), "cpu": statistics.median(cpu), "load": load_s,
            "version": version, "flagged": _pairs_flagged(rows, data), "pieces": len(geoms),
            "source": source, "spatial_join": "SPATIAL_JOIN" in plan}


# --- main ------------------------------------------------------------------------------------
def measure(name: str, store: Path, *, repeat: int, pg: str | None,
            duck: bool) -> dict[str, Any]:
    """Every timing of one workload."""
    print(f"{name}: {store.name} — riskmap check pipelines …", file=sys.stderr, flush=True)
    cli = [run_cli(store) for _ in range(repeat)]
    data = load(store)
    print(f"{name}: {len(data['buildings']):,} buildings, {len(data['pipes']):,} pipelines — "
          "check in memory, PostGIS, DuckDB …", file=sys.stderr, flush=True)
    chk = check_in_memory(data, repeat)
    res = {"workload": name, "buildings": len(data["buildings"]),
           "pipelines": len(data["pipes"]),
           "e2e": statistics.median(r["seconds"] for r in cli),
           "e2e_cpu": statistics.median(r["cpu"] for r in cli), "check_cpu": chk["cpu"],
           "first_line": statistics.median(r["first_line"] for r in cli),
           "rss_mb": max(r["rss_mb"] for r in cli), "findings": cli[0]["findings"],
           "stages": cli[-1]["stages"],
           "check": chk["seconds"], "flagged": {"riskmap e2e": cli[0]["flagged"],
                                                 "riskmap check": chk["flagged"]}}
    res["pg"] = postgis(pg, data, repeat)
    cut = res["pg"].pop("cut", None)
    res["duck"] = duckdb_spatial(data, repeat, cut) if duck else {"skip": "--no-duckdb"}
    for key, label in (("pg", "PostGIS"), ("duck", "DuckDB")):
        if "flagged" in res[key]:
            res["flagged"][label] = res[key].pop("flagged")
    return res


def _load_line() -> str:
    try:
        la = os.getloadavg()
    except OSError:
        return "load average unavailable"
    return f"load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} (1/5/15 min)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="demo,dense,urban")
    ap.add_argument("--demo-size", default="100k")
    ap.add_argument("--dense-size", default="1m", help="buildings of the dense district "
                    "(e.g. 100k for a quick run, 1m for the target)")
    ap.add_argument("--urban-scale", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--postgis", default=None,
                    help="server URL; default $RISKMAP_TEST_POSTGIS_URL or the local test "
                         "server of .ci/postgis.sh; 'none' to skip")
    ap.add_argument("--no-duckdb", action="store_true")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    pg = args.postgis or os.environ.get("RISKMAP_TEST_POSTGIS_URL") or DEFAULT_PG
    pg = None if pg == "none" else pg
    stores = {"demo": lambda: demo_store(_size(args.demo_size)),
              "dense": lambda: dense_store(_size(args.dense_size)),
              "urban": lambda: urban_store(args.urban_scale)}
    load_before = _load_line()
    rows = []
    for w in args.workloads.split(","):
        w = w.strip()
        if w not in stores:
            raise SystemExit(f"--workloads {w!r}: expected demo, dense or urban")
        rows.append(measure(w, stores[w](), repeat=args.repeat, pg=pg,
                            duck=not args.no_duckdb))
    print(f"\n{os.cpu_count()} CPUs; before: {load_before}; after: {_load_line()}")
    ok = report(rows, dense_size=_size(args.dense_size))
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{k: v for k, v in r.items() if k != "flagged"} |
             {"flagged": {k: len(v) for k, v in r["flagged"].items()}} for r in rows],
            indent=1, default=str), encoding="utf-8")
    return 0 if ok else 1


def _fmt(d: dict[str, Any]) -> str:
    return f"{d['seconds']:.2f}" if "seconds" in d else "skipped"


def _ratio(a: float, d: dict[str, Any]) -> str:
    return f"{a / d['seconds']:.2f}x" if "seconds" in d else "-"


def report(rows: list[dict[str, Any]], *, dense_size: int) -> bool:
    """Print the table, the flagged-set comparison and the targets; False on a mismatch."""
    print("Pipeline occupancy + setback check — median seconds; ratio = riskmap e2e / baseline "
          "query (< 1 is faster than the baseline)\n")
    head = ("workload", "buildings", "mains", "flagged", "riskmap e2e", "first line",
            "peak MB", "check only", "PostGIS", "e2e/PG", "DuckDB", "e2e/Duck")
    lines = [head]
    for r in rows:
        lines.append((r["workload"], f"{r['buildings']:,}", f"{r['pipelines']:,}",
                      f"{len(r['flagged']['riskmap e2e']):,}", f"{r['e2e']:.2f}",
                      f"{r['first_line']:.2f}", f"{r['rss_mb']:.0f}", f"{r['check']:.2f}",
                      _fmt(r["pg"]), _ratio(r["e2e"], r["pg"]), _fmt(r["duck"]),
                      _ratio(r["e2e"], r["duck"])))
    widths = [max(len(x[i]) for x in lines) for i in range(len(head))]
    for k, ln in enumerate(lines):
        print("  ".join(c.rjust(w) for c, w in zip(ln, widths, strict=True)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    ok = True
    print()
    for r in rows:
        ref = r["flagged"]["riskmap e2e"]
        counts = ", ".join(f"{k} {len(v):,}" for k, v in r["flagged"].items())
        bad = {k: len(v ^ ref) for k, v in r["flagged"].items() if v != ref}
        print(f"{r['workload']}: flagged buildings — {counts}; {r['findings']:,} findings")
        print(f"  riskmap check pipelines stages (s, last run): {r['stages']}")
        cpus = [f"riskmap e2e {r['e2e_cpu']:.2f}", f"check only {r['check_cpu']:.2f}"]
        cpus += [f"{label} {r[k]['cpu']:.2f}" for k, label in
                 (("pg", "PostGIS backend (parallel workers not counted)"), ("duck", "DuckDB"))
                 if "cpu" in r[k]]
        print(f"  CPU seconds (median; wall times above depend on the machine's load): "
              f"{', '.join(cpus)}")
        if bad:
            ok = False
            print(f"  !!! FLAGGED SETS DIFFER from riskmap e2e: {bad} buildings not in both !!!")
        for key, label in (("pg", "PostGIS"), ("duck", "DuckDB")):
            d = r[key]
            if "seconds" not in d:
                print(f"  {label} skipped: {d['skip']}")
            elif key == "pg":
                print(f"  PostGIS {d['version']}: {d['pieces']:,} pieces, load {d['load']:.1f} s "
                      f"(excluded), {d['pairs']:,} pairs; jit off; "
                      + "; ".join(f"{k} {v[0]:.2f} s, leader CPU {v[2]:.2f} s (Gather in "
                                  f"plan: {v[1]})"
                                  for k, v in d["variants"].items())
                      + f"; counted: {d['best']}")
            else:
                print(f"  DuckDB {d['version']}: {d['pieces']:,} {d['source']}, load {d['load']:.1f} s "
                      f"(excluded); threads 2; SPATIAL_JOIN in plan: {d['spatial_join']}")
    print("\nTargets (issue 12):")
    for r in rows:
        if r["workload"] == "dense":
            note = "" if dense_size == 1_000_000 else f" (run at {dense_size:,}, target is 1 M)"
            e2e = r["e2e"]
            _target(f"dense: e2e <= {TARGETS['dense_pg']}x PostGIS{note}",
                    e2e / r["pg"]["seconds"] <= TARGETS["dense_pg"] if "seconds" in r["pg"]
                    else None, _ratio(e2e, r["pg"]))
            _target(f"dense: e2e <= {TARGETS['dense_duck']}x DuckDB{note}",
                    e2e / r["duck"]["seconds"] <= TARGETS["dense_duck"]
                    if "seconds" in r["duck"] else None, _ratio(e2e, r["duck"]))
            _target(f"dense: e2e <= {TARGETS['dense_s']:g} s{note}", e2e <= TARGETS["dense_s"],
                    f"{e2e:.2f} s")
            _target(f"dense: peak <= 2 GB{note}", r["rss_mb"] <= TARGETS["dense_mb"],
                    f"{r['rss_mb']:.0f} MB")
            pgf = r["flagged"].get("PostGIS")
            _target("dense: same flagged set as PostGIS",
                    pgf == r["flagged"]["riskmap e2e"] if pgf is not None else None,
                    f"{len(r['flagged']['riskmap e2e']):,} buildings, "
                    f"{len(pgf ^ r['flagged']['riskmap e2e']) if pgf is not None else '-'} "
                    "not in both")
        if r["workload"] == "urban":
            _target(f"urban network: e2e <= {TARGETS['urban_s']:g} s", r["e2e"] <=
                    TARGETS["urban_s"], f"{r['e2e']:.2f} s")
    first = max(r["first_line"] for r in rows)
    _target(f"start to first progress line <= {TARGETS['first_line_s']} s", first <=
            TARGETS["first_line_s"], f"{first:.2f} s (slowest workload)")
    return ok


def _target(label: str, met: bool | None, value: str) -> None:
    state = "not measured" if met is None else ("met" if met else "NOT MET")
    print(f"  [{state:>12}] {label}: {value}")


if __name__ == "__main__":
    sys.exit(main())
