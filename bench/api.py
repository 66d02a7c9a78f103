"""Items-endpoint throughput and latency: riskmap vs pygeoapi on the same GeoPackage, and
riskmap on PostGIS vs riskmap on GeoPackage for the same buildings.

The servers run side by side in this one run, each with ``--workers`` processes (default 2,
one per core of the benchmark machine), over the same demo
district GeoPackage; the client asks each for the same random bbox pages of 100 buildings
(``/collections/buildings/items?bbox=…&limit=100``), interleaved, and prints throughput
(sequential and with concurrent clients) and p50/p95 latency, and the ratio riskmap/pygeoapi.

With ``--postgis URL`` (default ``$RISKMAP_BENCH_POSTGIS_URL``, else
``$RISKMAP_TEST_POSTGIS_URL``) the GeoPackage's buildings are copied once into the schema
``bench_api_<count>`` of that server and a third server, riskmap on that PostGIS store, is timed
on the same pages; the output adds the PostGIS/GeoPackage p95 ratio (issue 11: within 2× at
1 M buildings). Pages on PostGIS are one SQL query each (``layers.pg_query``).

pygeoapi serves the GeoPackage with its OGR provider, which needs GDAL's Python bindings;
the project venv has none, so the bench builds ``bench/out/pygeoapi-venv`` from the system
Python (``--system-site-packages``: Debian ``python3-gdal``) and installs pygeoapi and gunicorn
there — never a riskmap dependency. pygeoapi runs as in production under gunicorn with the
same number of worker processes as riskmap's uvicorn (``--workers``), threaded workers
(``gthread``, 4 threads each) so that, like uvicorn's thread pool for riskmap's sync routes, a
worker overlaps requests. If that fails, the output says so and only riskmap is timed.

Usage: ``.venv/bin/python bench/api.py [--store data/demo.gpkg] [--requests 200]
[--clients 4] [--workers 2] [--scale 1.0] [--postgis URL | --postgis none] [--no-pygeoapi]`` (run from the
repository root; ``--scale 41.7`` builds a demo of about 1 M buildings)
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
KEY = "bench-admin-key-0001"
PAGE = 100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log(name: str) -> Any:
    """A log file for a server's output (a pipe nobody reads would fill up and block it)."""
    return open(OUT / f"{name}-server.log", "wb")


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            name = "pygeoapi" if "gunicorn" in str(proc.args) else "riskmap"
            logs = sorted(OUT.glob(f"{name}*-server.log"), key=lambda p: p.stat().st_mtime)
            out = logs[-1].read_text(errors="replace") if logs else "(no log)"
            raise RuntimeError(f"server exited: {out[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")


def _ensure_store(path: Path, scale: float) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"building the demo district into {path} (scale {scale}) …", flush=True)
    subprocess.run([str(ROOT / ".venv" / "bin" / "riskmap"), "demo", "--out", str(path),
                    "--scale", str(scale)], check=True)
    return path


def _start_riskmap(store: Path | str, name: str = "riskmap", *, workers: int = 2
                   ) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "RISKMAP_STORE": str(store), "RISKMAP_API_KEYS": f"admin:{KEY}"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", str(port), "--workers",
                             str(workers), "--log-level", "warning"], env=env, cwd=ROOT, stdout=_log(name),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/health", proc)
    return proc, url


def _postgis_copy(store: Path, url: str) -> str:
    """The URL of a PostGIS schema holding the GeoPackage's buildings (copied once)."""
    from layers.postgis import PostGISStore, with_schema
    from layers.store import GeoPackageStore

    gpkg = GeoPackageStore(store)
    n = {i.name: i.count for i in gpkg.layers()}["buildings"]
    target = with_schema(url, f"bench_api_{n}")
    pg = PostGISStore(target)
    if {i.name: i.count for i in pg.layers()}.get("buildings") != n:
        print(f"copying {n:,} buildings into PostGIS ({pg.schema}) …", flush=True)
        t0 = time.perf_counter()
        pg.write({"buildings": gpkg.read("buildings")})
        print(f"  written in {time.perf_counter() - t0:.1f} s", flush=True)
    return target


def _pygeoapi_python() -> Path:
    venv = OUT / "pygeoapi-venv"
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import pygeoapi, osgeo, gunicorn, flask"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    system = shutil.which("python3", path="/usr/bin")
    if system is None:
        raise RuntimeError("no system python3 for pygeoapi")
    if subprocess.run([system, "-c", "from osgeo import ogr"], capture_output=True
                      ).returncode != 0:
        raise RuntimeError("the system python3 has no GDAL bindings (apt-get install "
                           "python3-gdal)")
    subprocess.run([system, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "pygeoapi>=0.21,<0.22",
                    "gunicorn>=22,<24"], check=True)
    if subprocess.run(check, capture_output=True).returncode != 0:
        raise RuntimeError("pygeoapi did not install")
    return py


def _pygeoapi_config(store: Path, bbox: list[float], port: int) -> Path:
    cfg = textwrap.dedent(f"""\
        server:
          bind: {{host: 127.0.0.1, port: {port}}}
          url: http://127.0.0.1:{port}
          mimetype: application/json; charset=UTF-8
          encoding: utf-8
          languages: [en-US]
          limits: {{default_items: 100, max_items: 10000}}
          map: {{url: "http://127.0.0.1/tiles/{{z}}/{{x}}/{{y}}.png", attribution: none}}
        logging: {{level: ERROR}}
        metadata:
          identification: {{title: bench, description: bench, keywords: [bench],
                            keywords_type: theme, terms_of_service: none, url: "http://x"}}
          license: {{name: none, url: "http://x"}}
          provider: {{name: none, url: "http://x"}}
          contact: {{name: none, position: none, address: none, city: none,
                     stateorprovince: none, postalcode: none, country: none, phone: none,
                     fax: none, email: none, url: "http://x", hours: none, instructions: none,
                     role: pointOfContact}}
        resources:
          buildings:
            type: collection
            title: buildings
            description: buildings
            keywords: [buildings]
            extents:
              spatial: {{bbox: {json.dumps(bbox)},
                         crs: "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}}
            providers:
              - type: feature
                name: OGR
                data:
                  source_type: GPKG
                  source: {store}
                  source_capabilities: {{paging: true}}
                  source_options: {{}}
                  gdal_ogr_options: {{EMPTY_AS_NULL: "NO", GDAL_CACHEMAX: "64", CPL_DEBUG: "NO"}}
                id_field: id
                layer: buildings
        """)
    path = OUT / "pygeoapi-config.yml"
    path.write_text(cfg)
    return path


def _start_pygeoapi(store: Path, bbox: list[float], *, workers: int = 2
                    ) -> tuple[subprocess.Popen[bytes], str]:
    py = _pygeoapi_python()
    port = _free_port()
    cfg = _pygeoapi_config(store, bbox, port)
    oas = OUT / "pygeoapi-openapi.yml"
    env = {**os.environ, "PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(oas)}
    bindir = py.parent
    subprocess.run([str(bindir / "pygeoapi"), "openapi", "generate", str(cfg), "--output-file",
                    str(oas)], env=env, check=True, capture_output=True)
    # gunicorn, as many worker processes as riskmap's uvicorn, threaded workers
    proc = subprocess.Popen([str(bindir / "gunicorn"), "-w", str(workers), "-k", "gthread",
                             "--threads", "4", "-b", f"127.0.0.1:{port}",
                             "--log-level", "warning", "pygeoapi.flask_app:APP"],
                            env=env, cwd=OUT, stdout=_log("pygeoapi"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/collections/buildings", proc)
    return proc, url


def _bboxes(store: Path, n: int, seed: int = 7) -> list[tuple[float, float, float, float]]:
    """Random boxes around buildings, each holding at least ``PAGE`` buildings."""
    from layers.store import GeoPackageStore

    b = GeoPackageStore(store).read("buildings", columns=["id"])
    cent = np.asarray(b.geometry.representative_point().get_coordinates())
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        cx, cy = cent[rng.integers(len(cent))]
        half = 0.002
        while True:
            box = (cx - half, cy - half, cx + half, cy + half)
            inside = ((cent[:, 0] >= box[0]) & (cent[:, 0] <= box[2])
                      & (cent[:, 1] >= box[1]) & (cent[:, 1] <= box[3])).sum()
            if inside >= 2 * PAGE or half > 0.05:
                break
            half *= 1.5
        out.append(tuple(round(v, 6) for v in box))
    return out


def _get(client: httpx.Client, url: str, box: tuple[float, ...], headers: dict[str, str]
         ) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = client.get(url, params={"bbox": ",".join(map(str, box)), "limit": PAGE},
                   headers=headers)
    dt = time.perf_counter() - t0
    r.raise_for_status()
    return dt, len(r.json()["features"])


def _sequential(url: str, boxes: list, headers: dict[str, str]
                ) -> tuple[list[float], str | None]:
    """Latencies of the requests that completed, and the error that stopped the run."""
    out: list[float] = []
    with httpx.Client(timeout=60) as c:
        try:
            _get(c, url, boxes[0], headers)  # warm up
            for box in boxes:
                dt, n = _get(c, url, box, headers)
                if n != PAGE:
                    raise RuntimeError(f"bbox {box} returned {n} features, expected {PAGE}")
                out.append(dt)
        except (httpx.HTTPError, RuntimeError) as exc:
            return out, f"{type(exc).__name__} after {len(out)} requests: {exc}"[:200]
    return out, None


def _concurrent(url: str, boxes: list, headers: dict[str, str], clients: int) -> float:
    def work(chunk: list) -> int:
        with httpx.Client(timeout=30) as c:
            for box in chunk:
                _get(c, url, box, headers)
        return len(chunk)

    chunks = [boxes[i::clients] for i in range(clients)]
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as ex:
        done = sum(ex.map(work, chunks))
    return done / (time.perf_counter() - t0)


def _stats(lat: list[float]) -> dict[str, float]:
    a = np.asarray(lat) * 1000
    return {"rps": len(a) / (a.sum() / 1000), "p50_ms": float(np.percentile(a, 50)),
            "p95_ms": float(np.percentile(a, 95)), "mean_ms": float(a.mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=None,
                    help="GeoPackage (default data/demo.gpkg, else built in bench/out/)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2,
                    help="worker processes of every server (default 2)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="demo scale when the store has to be built")
    ap.add_argument("--postgis", default=os.environ.get("RISKMAP_BENCH_POSTGIS_URL")
                    or os.environ.get("RISKMAP_TEST_POSTGIS_URL"),
                    help="PostGIS server URL for the riskmap-on-PostGIS case ('none' skips)")
    ap.add_argument("--no-pygeoapi", action="store_true", help="do not time pygeoapi")
    args = ap.parse_args(argv)
    if args.postgis in ("", "none"):
        args.postgis = None
    OUT.mkdir(parents=True, exist_ok=True)
    default = ROOT / "data" / "demo.gpkg"
    path = Path(args.store) if args.store else (default if default.exists()
                                                 else OUT / "api-demo.gpkg")
    store = _ensure_store(path.resolve(), args.scale)
    from layers.store import GeoPackageStore

    info = {i.name: i for i in GeoPackageStore(store).layers()}
    n_b = info["buildings"].count
    bbox = list(info["buildings"].bbox or (0, 0, 0, 0))
    boxes = _bboxes(store, args.requests)
    print(f"store {store}: {n_b:,} buildings; {len(boxes)} bbox pages of {PAGE}; "
          f"{args.clients} concurrent clients; {args.workers} worker processes per server")
    procs = []
    results: dict[str, dict[str, float | str | None]] = {}
    try:
        rp, rurl = _start_riskmap(store, workers=args.workers)
        procs.append(rp)
        servers = {"riskmap": (f"{rurl}/collections/buildings/items",
                               {"Authorization": f"Bearer {KEY}"})}
        if args.postgis:
            gp, gurl = _start_riskmap(_postgis_copy(store, args.postgis), "riskmap-postgis",
                                      workers=args.workers)
            procs.append(gp)
            servers["postgis"] = (f"{gurl}/collections/buildings/items",
                                  {"Authorization": f"Bearer {KEY}"})
        try:
            if args.no_pygeoapi:
                raise RuntimeError("--no-pygeoapi")
            pp, purl = _start_pygeoapi(store, bbox, workers=args.workers)
            procs.append(pp)
            servers["pygeoapi"] = (f"{purl}/collections/buildings/items",
                                   {"Accept": "application/geo+json"})
        except Exception as exc:  # report and time riskmap alone
            print(f"pygeoapi not timed: {exc}")
        # the same boxes, interleaved per half so drift hits both alike
        half = len(boxes) // 2
        lat: dict[str, list[float]] = {k: [] for k in servers}
        errors: dict[str, str] = {}
        for part in (boxes[:half], boxes[half:]):
            for name, (url, headers) in servers.items():
                if name in errors:
                    continue
                print(f"  {name}: {len(part)} sequential requests …", flush=True)
                done, err = _sequential(url, part, headers)
                lat[name] += done
                if err is not None:
                    errors[name] = err
                    print(f"  {name}: stopped — {err}", flush=True)
        for name, (url, headers) in servers.items():
            if not lat[name]:
                continue
            st: dict[str, float | str | None] = dict(_stats(lat[name]))
            st["completed"] = float(len(lat[name]))
            if name in errors:
                st["concurrent_rps"] = None
                st["sequential_error"] = errors[name]
                results[name] = st
                continue
            print(f"  {name}: {len(boxes)} requests from {args.clients} clients …", flush=True)
            try:
                st["concurrent_rps"] = _concurrent(url, boxes, headers, args.clients)
            except httpx.HTTPError as exc:
                st["concurrent_rps"] = None
                st["concurrent_error"] = f"{type(exc).__name__} (server hung under " \
                    f"{args.clients} concurrent clients)"
            results[name] = st
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    print(f"\n{'server':10} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
          f"{f'req/s x{args.clients}':>12}")
    for name, st in results.items():
        conc = st["concurrent_rps"]
        ctext = f"{conc:12.1f}" if isinstance(conc, float) else f"{'failed':>12}"
        print(f"{name:10} {st['rps']:8.1f} {st['p50_ms']:8.1f} {st['p95_ms']:8.1f} {ctext}")
        if st.get("concurrent_error"):
            print(f"{'':10} concurrent run: {st['concurrent_error']}")
        if st.get("sequential_error"):
            print(f"{'':10} sequential run stopped ({int(st['completed'] or 0)} requests "
                  f"timed): {st['sequential_error']}")
    if "pygeoapi" in results:
        r, p = results["riskmap"], results["pygeoapi"]
        rc, pc = r["concurrent_rps"], p["concurrent_rps"]
        conc = (f"x{rc / pc:.2f} with {args.clients} clients" if isinstance(rc, float)
                and isinstance(pc, float) else f"pygeoapi failed with {args.clients} clients")
        print(f"\nriskmap / pygeoapi: throughput x{r['rps'] / p['rps']:.2f} sequential, "  # type: ignore[operator]
              f"{conc}; p95 latency x{p['p95_ms'] / r['p95_ms']:.2f} lower")  # type: ignore[operator]
    if "postgis" in results:
        r, g = results["riskmap"], results["postgis"]
        print(f"\nriskmap on PostGIS / on GeoPackage ({n_b:,} buildings): p95 "
              f"{g['p95_ms']:.1f} ms / {r['p95_ms']:.1f} ms = "
              f"x{g['p95_ms'] / r['p95_ms']:.2f} (target <= 2)")  # type: ignore[operator]
    (OUT / "api.json").write_text(json.dumps({"buildings": n_b, "requests": len(boxes),
                                              "workers": args.workers,
                                              "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
