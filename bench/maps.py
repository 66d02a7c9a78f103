"""Benchmark: the planner map at 10 k / 100 k / 1 M buildings against naive ``GeoDataFrame.explore()``.

For each size a synthetic district (grid of buildings, three pipelines, one planted setback
finding per 1,000 buildings) is written to a GeoPackage store and served by the app. Measured in
one run, in headless Chromium (Debian ``chromium``):

- riskmap ``/maps/planner`` (served): server build time (HTTP), HTML size, time until the map is
  interactive (controls and inline layers drawn, first bbox page of buildings drawn) and until
  every page has arrived, and the same two times after zooming into a street block; the
  standalone export size (``riskmap map … --out x.html``).
- naive ``explore()`` of the same buildings + pipelines + findings: build time, HTML size and
  load time until its layers are drawn (Leaflet from the vendored copy; its other CDN files are
  blocked, as on an intranet). Skipped above ``--naive-max`` buildings (it inlines everything).

Usage: ``pip install -e .[bench]`` (matplotlib + mapclassify for ``explore()``), then
``.venv/bin/python bench/maps.py [--sizes 10000,100000,1000000] [--naive-max 100000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

# this file is bench/maps.py: keep its folder off sys.path so ``maps`` is the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from geo.findings import make_findings  # noqa: E402
from maps.offline import ASSETS_DIR  # noqa: E402

LON0, LAT0 = 117.20, 34.78


def district(n: int) -> tuple[dict[str, gpd.GeoDataFrame], gpd.GeoDataFrame]:
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    step = 0.00025  # ~25 m
    x = LON0 + (i % side) * step
    y = LAT0 + (i // side) * step
    geoms = shapely.box(x, y, x + step * 0.5, y + step * 0.5)
    b = gpd.GeoDataFrame({"id": [f"B-{k:07d}" for k in i], "use": "residential", "floors": 3,
                          "households": 12}, geometry=geoms, crs=4490)
    span = side * step
    pipes = gpd.GeoDataFrame({
        "id": ["P-01", "P-02", "P-03"], "name": ["a", "b", "c"],
        "medium": ["crude_oil", "natural_gas", "refined_oil"],
        "kind": ["long_distance", "urban_gas", "long_distance"],
        "pressure_mpa": [6.3, 0.4, 8.0], "diameter_mm": [720.0, 219.0, 508.0]},
        geometry=[shapely.LineString([(LON0, LAT0 + span * f), (LON0 + span, LAT0 + span * f)])
                  for f in (0.25, 0.5, 0.75)], crs=4490)
    sel = b.iloc[:: 1000]
    f = make_findings(pd.DataFrame({
        "severity": "high", "layer": "buildings", "feature_id": sel["id"].to_numpy(),
        "other_layer": "pipelines", "other_id": "P-01", "rule_id": "gb50253_residential",
        "rule_source": "GB 50253-2014 4.1.6", "distance_m": 14.86, "clear_distance_m": 14.5,
        "required_m": 15.0, "shortfall_m": 0.5, "chainage_from_m": 100.0,
        "message_zh": "建筑距管道不足", "message_en": "building too close"}),
        kind="setback", geometry=sel.geometry.values, crs=4490, id_columns=["feature_id"])
    return {"buildings": b, "pipelines": pipes}, f


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(store, findings):  # type: ignore[no-untyped-def]
    import uvicorn

    import api.routers.maps as mr
    from api.app import create_app
    from api.settings import Settings

    mr.analysis_inputs = lambda s, name: (findings, {})  # type: ignore[assignment]
    app = create_app(Settings(store=store.url if hasattr(store, "url") else "x",
                              anonymous_role="admin"), store=store)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    while not srv.started:
        time.sleep(0.05)
    return srv, th, f"http://127.0.0.1:{port}"


# The map is interactive (controls drawn, inline layers drawn, the first page of every bbox
# layer in view drawn; later pages keep arriving without blocking the page).
FIRST_DRAWN = """() => window.RiskMap && RiskMap.apps.length > 0 && RiskMap.apps.every(a =>
    Object.values(a.layers).every(e => !e.pending || e.loaded > 0))"""


def bench_riskmap(browser, base: str, n: int, repeat: int = 1) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median over ``repeat`` page loads of each timing (the machine is shared and noisy); the
    density overview's time is the first (cold) load's."""
    runs = [_bench_riskmap_once(browser, base, n) for _ in range(max(1, repeat))]
    out = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    out["overview_s"] = runs[0]["overview_s"]  # cold: computed once per store version, then cached
    return out


def _bench_riskmap_once(browser, base: str, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import urllib.request

    from maps.browser import wait_for_map

    t0 = time.perf_counter()
    with urllib.request.urlopen(f"{base}/maps/planner") as r:
        html = r.read()
    build_s = time.perf_counter() - t0
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    t0 = time.perf_counter()
    page.goto(f"{base}/maps/planner", wait_until="load")
    page.wait_for_function(FIRST_DRAWN, timeout=120000)
    load_s = time.perf_counter() - t0
    wait_for_map(page, timeout_ms=120000)
    complete_s = time.perf_counter() - t0
    first_view = int(page.get_attribute(".folium-map", "data-loaded-buildings") or 0)
    # below the buildings' zoom: their density overview (GET /maps/density/buildings)
    if page.evaluate("() => RiskMap.app.map.getZoom() < RiskMap.app.layers.buildings.spec.remote.minZoom"):
        page.wait_for_function("() => document.querySelector('.folium-map').hasAttribute("
                               "'data-overview-buildings')", timeout=120000)
    overview_s = time.perf_counter() - t0
    # zoom into a block at zoom 17: buildings come by bbox
    t0 = time.perf_counter()
    page.evaluate("""() => { const m = RiskMap.app.map; m.setView(m.getCenter(), 17, {animate: false}); }""")
    page.wait_for_function(FIRST_DRAWN, timeout=120000)
    zoom_s = time.perf_counter() - t0
    wait_for_map(page, timeout_ms=120000)
    zoom_complete_s = time.perf_counter() - t0
    drawn = int(page.get_attribute(".folium-map", "data-loaded-buildings") or 0)
    page.close()
    return {"build_s": build_s, "load_s": load_s, "complete_s": complete_s,
            "overview_s": overview_s, "zoom_s": zoom_s,
            "zoom_complete_s": zoom_complete_s, "html_mb": len(html) / 1e6,
            "first_view": first_view, "drawn": drawn}


def bench_naive(browser, layers, findings, tmp: Path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    m = layers["buildings"].explore(name="buildings")
    layers["pipelines"].explore(m=m, color="red", name="pipelines")
    findings.explore(m=m, color="black", name="findings")
    html = m.get_root().render()
    build_s = time.perf_counter() - t0
    size = len(html.encode())
    leaflet = (ASSETS_DIR / "leaflet").as_uri()
    html = re.sub(r"https://cdn\.jsdelivr\.net/npm/leaflet@[0-9.]+/dist/", leaflet + "/", html)
    path = tmp / "naive.html"
    path.write_text(html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.route("http*://**", lambda route: route.abort())
    t0 = time.perf_counter()
    page.goto(path.as_uri(), wait_until="load", timeout=600000)
    page.wait_for_function("() => document.querySelectorAll('.leaflet-overlay-pane path').length > 0",
                           timeout=600000)
    load_s = time.perf_counter() - t0
    page.close()
    return {"build_s": build_s, "load_s": load_s, "html_mb": size / 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--naive-max", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="riskmap page loads per size; the median of each timing is reported")
    args = ap.parse_args()
    from layers.store import GeoPackageStore
    from maps.base import MapOptions
    from maps.browser import launch
    from maps.offline import render_html
    from maps.sources import build, read_layers

    rows = []
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)", flush=True)
    with tempfile.TemporaryDirectory() as tmpd, launch() as browser:
        tmp = Path(tmpd)
        for n in (int(s) for s in args.sizes.split(",")):
            layers, findings = district(n)
            store = GeoPackageStore(tmp / f"d{n}.gpkg")
            t0 = time.perf_counter()
            store.write(layers)
            write_s = time.perf_counter() - t0
            srv, th, base = serve(store, findings)
            try:
                ours = bench_riskmap(browser, base, n, args.repeat)
            finally:
                srv.should_exit = True
                th.join(timeout=10)
            t0 = time.perf_counter()
            opts = MapOptions(mode="standalone")
            m = build("planner", read_layers(store, "planner", options=opts, findings=findings),
                      findings, options=opts)
            export = render_html(m, mode="inline")
            export_s = time.perf_counter() - t0
            naive = (bench_naive(browser, layers, findings, tmp) if n <= args.naive_max
                     else None)
            rows.append((n, write_s, ours, len(export.encode()) / 1e6, export_s, naive))
            print(f"n={n:,}: store write {write_s:.1f} s; riskmap {ours}; export "
                  f"{len(export.encode()) / 1e6:.2f} MB in {export_s:.2f} s; naive {naive}",
                  flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print()
    print("| buildings | riskmap build (s) | riskmap load → interactive (s) | … all pages (s) | "
          "… density overview (s) | buildings in first view | zoom-in, first page (s) | … all pages (s) | page (MB) | "
          "standalone export (MB) | explore() build (s) | explore() load (s) | explore() HTML (MB) "
          "| load ratio explore/riskmap |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, _w, o, exp_mb, _es, nv in rows:
        nb = f"{nv['build_s']:.2f}" if nv else "n/a"
        nl = f"{nv['load_s']:.2f}" if nv else "n/a"
        nm = f"{nv['html_mb']:.1f}" if nv else "n/a"
        ratio = f"{nv['load_s'] / o['load_s']:.0f}x" if nv else "n/a"
        print(f"| {n:,} | {o['build_s']:.2f} | {o['load_s']:.2f} | {o['complete_s']:.2f} | "
              f"{o['overview_s']:.2f} | {int(o['first_view']):,} | {o['zoom_s']:.2f} | {o['zoom_complete_s']:.2f} | "
              f"{o['html_mb']:.2f} | {exp_mb:.2f} | {nb} | {nl} | {nm} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
