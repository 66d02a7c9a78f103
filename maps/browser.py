"""Headless Chromium (Debian ``chromium``) through Playwright's Python package.

Never a downloaded browser: the system executable is used (``RISKMAP_CHROMIUM`` or
``/usr/bin/chromium``) with networking features that phone home switched off. Used to export
the police publish view as PDF/PNG, by the browser tests and by ``bench/maps.py``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_ARGS", "chromium_path", "export_page", "launch", "wait_for_map"]

CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def chromium_path() -> str:
    """The system Chromium executable; raises FileNotFoundError naming how to install it."""
    for cand in (os.environ.get("RISKMAP_CHROMIUM"), "/usr/bin/chromium",
                 shutil.which("chromium"), shutil.which("chromium-browser")):
        if cand and Path(cand).is_file():
            return cand
    raise FileNotFoundError("Chromium not found; install Debian's package (apt-get install "
                            "chromium) or set RISKMAP_CHROMIUM to its executable")


@contextmanager
def launch() -> Iterator[Any]:
    """A Playwright ``Browser`` on the system Chromium (closed on exit)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        from layers.errors import missing_extra

        raise missing_extra("playwright", extra="export",
                            feature="PDF/PNG map export") from exc

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                     args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def wait_for_map(page: Any, *, timeout_ms: int = 30000) -> None:
    """Wait until riskmap.js has initialised the map and no remote layer is loading."""
    page.wait_for_selector("[data-riskmap-ready]", timeout=timeout_ms)
    page.wait_for_function(
        """() => (window.RiskMap && window.RiskMap.apps.length > 0 && window.RiskMap.apps.every(
              a => Object.values(a.layers).every(e => !e.pending)))""",
        timeout=timeout_ms)


def export_page(url_or_html: str, out: str | Path, *, width: int = 1600, height: int = 1100,
                headers: dict[str, str] | None = None, browser: Any = None) -> Path:
    """Render a map page (URL, or HTML text) to ``out``: ``.pdf`` (one page) or ``.png``.

    ``browser``: an open Playwright browser to reuse (else the system Chromium is launched).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".pdf", ".png"):
        raise ValueError(f"output {out.name!r}: expected a .pdf or .png file name")
    if browser is None:
        with launch() as b:
            return export_page(url_or_html, out, width=width, height=height, headers=headers,
                               browser=b)
    ctx = browser.new_context(viewport={"width": width, "height": height},
                              device_scale_factor=1, extra_http_headers=headers or None)
    page = ctx.new_page()
    if url_or_html.lstrip().startswith("<"):
        page.set_content(url_or_html, wait_until="load")
    else:
        page.goto(url_or_html, wait_until="load")
    wait_for_map(page)
    page.wait_for_timeout(300)  # let the canvas renderer paint
    if suffix == ".png":
        page.screenshot(path=str(out), full_page=False)
    else:
        page.emulate_media(media="screen")
        page.pdf(path=str(out), width=f"{width}px", height=f"{height}px",
                 print_background=True, page_ranges="1")
    ctx.close()
    return out
