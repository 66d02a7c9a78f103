"""Machine early warning: positions checked per second and alert latency (issue 16).

Throughput: machine positions on the demo district (half of them within 300 m of a
long-distance line or facility, the rest anywhere; random kinds of work) are checked in
batches by riskmap's index (:func:`geo.protection.check_positions`: one STRtree query and exact
point-to-piece distances, a (reference x rule) threshold matrix, permitted sites by prepared
containment) and, in the same run, by the baseline a GIS developer would write: the zones as
buffered polygons per (rule, reference) built once, then per batch ``geopandas.sjoin`` of the
points with the zones (predicate ``within``), the kinds filtered by rule, and a second
``sjoin`` with the permitted sites. Both must alert the same positions (the buffer's
polygonal arcs can differ by a few centimetres on a zone's edge: the count of such positions is
printed). ``--with-parse`` also times riskmap's whole path from records (validation, time
zones, lon/lat → EPSG:4548).

Latency: a riskmap server (uvicorn, one process) on the demo; a client keeps
``GET /protection/alerts`` open and another posts single alerting positions to
``POST /protection/positions``; latency = from just before the POST to the event read from
the stream. p50/p95 over ``--posts`` posts.

Targets (issue 16): >= 20,000 positions/s; alert latency p95 < 100 ms. The output says met /
NOT MET for each.

Usage: ``.venv/bin/python bench/positions.py [--store data/demo.gpkg] [--positions 200000]
[--batch 10000] [--posts 200] [--with-parse]`` (builds the demo in bench/out when no store is
given).
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
KEY = "bench-police-key-0001"
DAY = dt.date(2026, 12, 7)
KINDS = np.array(["excavation", "road", "blasting", "drilling", "dredging", "mining", "cable",
                  "building", "other"])


def _store(path: str | None) -> Path:
    if path:
        return Path(path)
    from layers.demo import write_demo

    p = OUT / "positions_demo.gpkg"
    if not p.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        write_demo(p, seed=42, scale=1.0)
    return p


def _positions(index: Any, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """n positions (analysis CRS): half within 300 m of a zone reference, half anywhere."""
    z = index.zones
    env = shapely.total_bounds(z.ref_geoms)
    x0, y0, x1, y1 = env[0] - 2000, env[1] - 2000, env[2] + 2000, env[3] + 2000
    near = n // 2
    ref = z.ref_geoms[rng.integers(0, len(z.ref_geoms), near)]
    anchor = shapely.get_coordinates(shapely.point_on_surface(ref))
    ang = rng.uniform(0, 2 * np.pi, near)
    r = rng.uniform(0, 300, near)
    x = np.r_[anchor[:, 0] + r * np.cos(ang), rng.uniform(x0, x1, n - near)]
    y = np.r_[anchor[:, 1] + r * np.sin(ang), rng.uniform(y0, y1, n - near)]
    work = KINDS[rng.integers(0, len(KINDS), n)]
    return x, y, work.astype(object), np.full(n, DAY.toordinal(), dtype=np.int64)


def _baseline_zones(index: Any) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Zones as buffered polygons per (rule, reference) and the permitted-site areas."""
    z = index.zones
    rows = []
    npl = z.n_pipelines
    for j, rule in enumerate(z.rules):
        for ref in np.flatnonzero(~np.isnan(z.thresholds[:, j])):
            geom = (z.pipeline_refs[ref].parts if ref < npl else
                    [z.ref_geoms[z.ref == ref][0]])
            g = shapely.union_all(np.asarray(geom, dtype=object))
            rows.append({"rule": j, "ref": int(ref), "forbidden": rule.action == "forbidden",
                         "works": set(rule.works), "geometry":
                         shapely.buffer(g, z.thresholds[ref, j] + 1e-6, quad_segs=16)})
    zones = gpd.GeoDataFrame(rows, crs=z.crs)
    held = gpd.GeoDataFrame({"code": index.held.code, "start": index.held.start,
                             "end": index.held.end}, geometry=list(index.held.areas), crs=z.crs)
    return zones, held


def _baseline(zones: gpd.GeoDataFrame, held: gpd.GeoDataFrame, index: Any, x: np.ndarray,
              y: np.ndarray, work: np.ndarray, day: np.ndarray) -> set[int]:
    """Positions alerted by the sjoin baseline (one batch)."""
    pts = gpd.GeoDataFrame({"pos": np.arange(len(x)), "work": work, "day": day},
                           geometry=gpd.points_from_xy(x, y), crs=zones.crs)
    j = gpd.sjoin(pts, zones, predicate="within", how="inner")
    ok = np.fromiter((w in ws or "*" in ws for w, ws in zip(j["work"], j["works"], strict=True)),
                     dtype=bool, count=len(j))
    j = j.loc[ok]
    forb = set(j.loc[j["forbidden"], "pos"])
    need = j.loc[~j["forbidden"], ["pos", "work", "day", "geometry"]].drop_duplicates("pos")
    need = gpd.GeoDataFrame(need, geometry="geometry", crs=zones.crs)
    code = index.zones.work_code(need["work"].to_numpy())
    need = need.assign(wcode=code)
    h = gpd.sjoin(need, held, predicate="within", how="inner")
    covered = set(h.loc[(h["wcode"] == h["code"]) & (h["start"] <= h["day"])
                        & (h["day"] <= h["end"]), "pos"])
    return forb | (set(need["pos"]) - covered)


def throughput(store: Path, n: int, batch: int, with_parse: bool) -> dict[str, float]:
    from api.district import District
    from api.runs.protection import check_batch, parse_positions, protection_index
    from api.service import AnalysisService
    from geo.protection import check_positions
    from layers.store import GeoPackageStore

    svc = AnalysisService(GeoPackageStore(store), District())
    t0 = time.perf_counter()
    index = protection_index(svc)
    t_index = time.perf_counter() - t0
    rng = np.random.default_rng(16)
    x, y, work, day = _positions(index, n, rng)
    print(f"zones index: {len(index.zones.ref_geoms)} references, {len(index.zones.rules)} "
          f"rules, {len(index.held.areas)} permitted sites; built in {t_index:.2f} s")
    ours: set[int] = set()
    t0 = time.perf_counter()
    for s in range(0, n, batch):
        sl = slice(s, s + batch)
        a = check_positions(index.zones, index.held, x=x[sl], y=y[sl], work=work[sl],
                            day=day[sl])
        ours.update((a["position"] + s).tolist())
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    zones, held = _baseline_zones(index)
    t_zones = time.perf_counter() - t0
    base: set[int] = set()
    nb = min(n, max(batch, n // 4))  # the baseline is slow: time a quarter (>= one batch)
    t0 = time.perf_counter()
    for s in range(0, nb, batch):
        sl = slice(s, min(s + batch, nb))
        got = _baseline(zones, held, index, x[sl], y[sl], work[sl], day[sl])
        base.update(p + s for p in got)
    t_base = time.perf_counter() - t0
    ours_part = {p for p in ours if p < nb}
    differ = len(ours_part ^ base)
    rate, brate = n / t_ours, nb / t_base
    print(f"riskmap  : {n} positions in batches of {batch}: {t_ours:.3f} s = {rate:,.0f} "
          f"positions/s; {len(ours)} alerts")
    print(f"baseline : geopandas sjoin per batch (zones buffered once in {t_zones:.2f} s): "
          f"{nb} positions in {t_base:.3f} s = {brate:,.0f} positions/s")
    print(f"ratio    : riskmap / baseline = {rate / brate:.1f}x; alerted positions differing "
          f"on the first {nb}: {differ} (buffer arcs vs exact distance)")
    out = {"rate": rate, "baseline": brate}
    if with_parse:
        from pyproj import Transformer

        to_ll = Transformer.from_crs(index.crs, 4490, always_xy=True)
        lon, lat = to_ll.transform(x, y)
        recs = pd.DataFrame({"machine_id": [f"M{i}" for i in range(n)], "kind": work,
                             "time": "2026-12-07T09:30:00", "lon": lon, "lat": lat}
                            ).to_dict("records")
        t0 = time.perf_counter()
        alerts = 0
        for s in range(0, n, batch):
            b = parse_positions(recs[s:s + batch], crs="EPSG:4490", tz=svc.district.tz,
                                names=index.names)
            alerts += len(check_batch(index, b))
        t_full = time.perf_counter() - t0
        print(f"riskmap from records (validate, zone, transform, check, messages): "
              f"{n / t_full:,.0f} positions/s; {alerts} alerts")
        out["full"] = n / t_full
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def latency(store: Path, posts: int) -> list[float]:
    import os
    import subprocess

    import httpx

    port = _free_port()
    env = {**os.environ, "RISKMAP_STORE": str(store), "RISKMAP_API_KEYS": f"police:{KEY}"}
    OUT.mkdir(parents=True, exist_ok=True)
    log = open(OUT / "positions-server.log", "wb")  # noqa: SIM115 - closed with the server
    # one worker: the alert hub lives in the serving process (see README, protection)
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--log-level", "warning"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError((OUT / "positions-server.log").read_text()[-2000:])
        time.sleep(0.1)
    head = {"Authorization": f"Bearer {KEY}"}
    import csv

    with open(store.with_name(store.stem + "_positions.csv"), encoding="utf-8") as fh:
        m01 = next(r for r in csv.DictReader(fh) if r["machine_id"] == "M-01")
    body = {"crs": "EPSG:4490", "positions": [
        {k: m01[k] for k in ("machine_id", "kind", "time", "lon", "lat")}]}
    got: dict[int, float] = {}
    ready = threading.Event()
    done = threading.Event()

    def listen() -> None:
        with httpx.Client(timeout=60) as c, c.stream(
                "GET", f"{base}/protection/alerts?timeout_s=600", headers=head) as r:
            for line in r.iter_lines():
                if line.startswith(": riskmap"):
                    ready.set()
                if line.startswith("data: "):
                    got[len(got)] = time.perf_counter()
                    if len(got) >= posts + 1:
                        done.set()
                        return

    lt = threading.Thread(target=listen, daemon=True)
    lt.start()
    ready.wait(10)
    lat = []
    with httpx.Client(timeout=30) as c:
        c.post(f"{base}/protection/positions", json=body, headers=head)  # warm the index
        while len(got) < 1:
            time.sleep(0.01)
        for k in range(posts):
            n0 = len(got)
            t0 = time.perf_counter()
            r = c.post(f"{base}/protection/positions", json=body, headers=head)
            assert r.status_code == 200 and r.json()["alerts"], r.text
            while len(got) <= n0:
                time.sleep(0.0002)
            lat.append((got[n0] - t0) * 1000.0)
            del k
    proc.terminate()
    proc.wait(10)
    log.close()
    return lat


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", help="demo store (default: built in bench/out)")
    ap.add_argument("--positions", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--posts", type=int, default=200)
    ap.add_argument("--with-parse", action="store_true")
    args = ap.parse_args(argv)
    store = _store(args.store)
    res = throughput(store, args.positions, args.batch, args.with_parse)
    lat = latency(store, args.posts)
    p50, p95 = np.percentile(lat, [50, 95])
    print(f"latency  : POST -> SSE event over {len(lat)} posts: p50 {p50:.1f} ms, "
          f"p95 {p95:.1f} ms")
    print(f"target >= 20,000 positions/s: {'met' if res['rate'] >= 20_000 else 'NOT MET'} "
          f"({res['rate']:,.0f}/s)")
    print(f"target alert latency p95 < 100 ms: {'met' if p95 < 100 else 'NOT MET'} "
          f"({p95:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
