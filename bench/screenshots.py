"""Screenshots of every audience map at desktop and phone size, for the README.

``python -m bench.screenshots --store data/demo.gpkg --out docs/screenshots`` serves the
store (anonymous role admin, on 127.0.0.1), opens each map in the system Chromium
(:mod:`maps.browser`) with every other host blocked, waits until the map is drawn and writes
``{map}-{desktop|phone}.png`` (1440x900 and 390x844). A PNG over :data:`MAX_BYTES` is
re-encoded with a 256-colour palette. Without ``--store`` the demo district is written to a
temporary directory first.

The public notice view is refused (409) while a published route has a critical route-check
finding (the demo plants one: HR-02 through the drinking-water zone Z-01); its screenshot is
taken on a copy of the store in which those routes are withdrawn (``status = draft``), as the
refusal page tells the police to do.
"""

from __future__ import annotations

import argparse
import io
import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["MAPS", "MAX_BYTES", "VIEWPORTS", "main", "serve", "shoot", "withdraw_refused"]

MAPS: tuple[tuple[str, str], ...] = (
    ("planner", "/maps/planner"),
    ("police", "/maps/police"),
    ("police-publish", "/maps/police?publish=true"),
    ("fire", "/maps/fire"),
    ("overview", "/maps/overview"),
)
VIEWPORTS: dict[str, tuple[int, int]] = {"desktop": (1440, 900), "phone": (390, 844)}
MAX_BYTES = 400_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(store_path: str | Path) -> Iterator[str]:
    """The app on ``store_path`` (anonymous role admin) on a free local port; yields its URL."""
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from layers.store import GeoPackageStore

    store = GeoPackageStore(store_path)
    app = create_app(Settings(store=str(store_path), anonymous_role="admin"), store=store)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    if not srv.started:
        raise RuntimeError("the map server did not start within 30 s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        th.join(timeout=10)


def _shrink(png: bytes, max_bytes: int) -> bytes:
    """``png`` as is when small enough, else re-encoded with a 256-colour palette."""
    if len(png) <= max_bytes:
        return png
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    for colours in (256, 128, 64):
        buf = io.BytesIO()
        img.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(
            buf, format="PNG", optimize=True)
        if buf.tell() <= max_bytes:
            break
    return buf.getvalue()


def shoot(base_url: str, out_dir: str | Path, *, browser: Any = None,
          maps: Sequence[tuple[str, str]] = MAPS, max_bytes: int = MAX_BYTES,
          timeout_ms: int = 120_000) -> list[Path]:
    """Screenshots of ``maps`` (name, path) at each viewport into ``out_dir``; returns the
    files. Raises RuntimeError naming the page when it logs a console error or asks for
    another host."""
    from maps.browser import launch, wait_for_map

    if browser is None:
        with launch() as b:
            return shoot(base_url, out_dir, browser=b, maps=maps, max_bytes=max_bytes,
                         timeout_ms=timeout_ms)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for name, path in maps:
        for vp, (w, h) in VIEWPORTS.items():
            ctx = browser.new_context(viewport={"width": w, "height": h}, device_scale_factor=1)
            page = ctx.new_page()
            problems: list[str] = []
            page.route(re.compile(r"^(?!" + re.escape(base_url) + r"/|data:).*"),
                       lambda route, p=problems: (p.append("request " + route.request.url),
                                                  route.abort()))
            page.on("console", lambda m, p=problems: p.append(m.text) if m.type == "error"
                    else None)
            page.on("pageerror", lambda e, p=problems: p.append(str(e)))
            resp = page.goto(base_url + path, wait_until="load", timeout=timeout_ms)
            if resp is None or resp.status != 200:
                ctx.close()
                raise RuntimeError(f"{path}: HTTP {resp.status if resp else '?'}")
            wait_for_map(page, timeout_ms=timeout_ms)
            page.wait_for_timeout(800)  # canvases painted, labels placed
            if problems:
                ctx.close()
                raise RuntimeError(f"{path} at {w}x{h}: {problems[0]}")
            target = out / f"{name}-{vp}.png"
            target.write_bytes(_shrink(page.screenshot(full_page=False), max_bytes))
            files.append(target)
            ctx.close()
    return files


def withdraw_refused(store_path: str | Path, out: str | Path) -> list[str]:
    """Copy the store to ``out`` with the routes the notice refuses set to draft; their ids."""
    import shutil

    from api.district import District
    from api.runs.notice import publish_check
    from api.service import AnalysisService
    from layers.store import GeoPackageStore

    shutil.copyfile(store_path, out)
    store = GeoPackageStore(out)
    ids = sorted({b.route_id for b in publish_check(AnalysisService(store, District.from_env())).blockers})
    if ids:
        routes = store.read("hazmat_routes")
        routes.loc[routes["id"].astype(str).isin(ids), "status"] = "draft"
        store.write({"hazmat_routes": routes})
    return ids


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.screenshots [--store STORE] [--out DIR]``."""
    ap = argparse.ArgumentParser(prog="python -m bench.screenshots", description=__doc__)
    ap.add_argument("--store", help="GeoPackage store (default: the demo district, written "
                    "to a temporary directory)")
    ap.add_argument("--out", default="docs/screenshots", help="output directory")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store
        if store is None:
            from layers.demo import write_demo

            store = str(Path(tmp) / "demo.gpkg")
            write_demo(store, seed=42, scale=1.0)
        from maps.browser import launch

        fixed = str(Path(tmp) / "withdrawn.gpkg")
        withdrawn = withdraw_refused(store, fixed)
        with launch() as browser:
            with serve(store) as url:
                files = shoot(url, args.out, browser=browser,
                              maps=[m for m in MAPS if m[0] != "police-publish"])
            with serve(fixed) as url:
                files += shoot(url, args.out, browser=browser,
                               maps=[m for m in MAPS if m[0] == "police-publish"])
        for f in files:
            print(f"{f} {f.stat().st_size / 1000:.0f} kB")
        if withdrawn:
            print("police-publish: taken with route(s) " + ", ".join(withdrawn)
                  + " withdrawn (status = draft): the notice refuses them")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
