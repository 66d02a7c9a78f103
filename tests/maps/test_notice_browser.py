"""The public notice in Chromium on the demo district (network to other hosts blocked).

While HR-02 crosses the drinking-water zone Z-01 the notice view and its sheets are refused
(409 naming HR-02, Z-01 and the finding); a police key's override gives an A4 PDF that says
so; once HR-02 is rerouted the view opens at desktop and phone size with no console error and
no foreign request, links the sheets, and its PDF is an A4 page whose text layer holds the
title, the north arrow and road names.
"""

from __future__ import annotations

import base64
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_server import live_server

pytestmark = pytest.mark.server

playwright = pytest.importorskip("playwright.sync_api")
pypdf = pytest.importorskip("pypdf")

POLICE_KEY = "police-key-0001"
TITLE = "危险化学品运输车辆通行路线及限行区域公告"
VIEWPORTS = {"desktop": (1440, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def served(demo_path: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, Path]]:

    from api.app import create_app
    from api.settings import Settings

    path = tmp_path_factory.mktemp("notice") / "demo.gpkg"
    shutil.copyfile(demo_path, path)
    settings = Settings(store=str(path),
                        api_keys=f"police:police-user:{POLICE_KEY}")  # type: ignore[arg-type]
    app = create_app(settings)
    with live_server(app) as url:
        yield url, path


def _page(browser: Any, base: str, viewport: tuple[int, int]) -> tuple[Any, list[str],
                                                                        list[str]]:
    """A page whose requests to other hosts are aborted (and listed), with its console errors."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    errors: list[str] = []
    foreign: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(base + "/") or url.startswith("data:"):
            r.continue_()
        else:
            foreign.append(url)
            r.abort()

    page.route("**/*", route)
    return page, errors, foreign


def _fetch(page: Any, url: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """GET ``url`` from inside the page: status, content type and body."""
    status, ctype, b64 = page.evaluate("""async ([url, headers]) => {
        const r = await fetch(url, {headers: headers || {}});
        const buf = new Uint8Array(await r.arrayBuffer()); let s = '';
        for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode(...buf.subarray(i, i + 0x8000));
        return [r.status, r.headers.get('content-type'), btoa(s)]; }""", [url, headers])
    return int(status), str(ctype), base64.b64decode(b64)


def _pdf_text(data: bytes) -> tuple[str, tuple[float, float]]:
    page = pypdf.PdfReader(io.BytesIO(data)).pages[0]
    return page.extract_text(), (float(page.mediabox.width), float(page.mediabox.height))


def test_notice_refused_overridden_then_published(served: tuple[str, Path],
                                                  browser: Any) -> None:
    from maps.browser import wait_for_map

    base, path = served
    # refused while HR-02 crosses Z-01: the view and both sheets
    page, errors, foreign = _page(browser, base, VIEWPORTS["desktop"])
    resp = page.goto(f"{base}/maps/police?publish=true", wait_until="load")
    assert resp.status == 409  # a page saying why, in both languages
    assert page.title() == "拒绝发布 · Publishing refused — riskmap"
    assert page.locator('.riskmap-refused[data-route="HR-02"][data-other="Z-01"]').count() == 1
    item = page.inner_text(".riskmap-refused")
    assert "通行路线 HR-02 穿越禁行区域 Z-01（岩马水库饮用水水源保护区）" in item
    assert "route HR-02 crosses forbidden zone Z-01 (岩马水库饮用水水源保护区)" in item
    assert "route_in_forbidden_zone" in item
    assert "拒绝发布" in page.inner_text("pre.riskmap-refusal")
    # Chromium logs the page's own status; nothing else fails
    assert errors == ["Failed to load resource: the server responded with a status of 409 "
                      "(Conflict)"], errors
    errors.clear()
    status, _, raw = _fetch(page, "/maps/police/notice.pdf")
    assert status == 409 and b'"route_id":"HR-02"' in raw and b'"other_id":"Z-01"' in raw
    assert _fetch(page, "/maps/police/notice.png")[0] == 409
    # the override needs the police role; then the sheet says so
    q = "/maps/police/notice.pdf?override=" + "市局批准"
    assert _fetch(page, q)[0] == 401
    status, ctype, pdf = _fetch(page, q, {"X-API-Key": POLICE_KEY})
    assert (status, ctype) == (200, "application/pdf")
    text, (w, h) = _pdf_text(pdf)
    assert abs(w - 595.28) <= 1 and abs(h - 841.89) <= 1
    assert ("注意：通行路线 HR-02 穿越禁行区域 Z-01（岩马水库饮用水水源保护区），经批准发布（理由："
            "市局批准）") in text.replace("\n", "")
    assert foreign == []
    page.close()

    # HR-02 rerouted along HR-01 in the store: published, at both viewports
    from layers.store import GeoPackageStore

    store = GeoPackageStore(path)
    routes = store.read("hazmat_routes")
    routes.loc[routes["id"] == "HR-02", "geometry"] = \
        routes.loc[routes["id"] == "HR-01", "geometry"].iloc[0]
    store.write({"hazmat_routes": routes})
    for name, vp in VIEWPORTS.items():
        page, errors, foreign = _page(browser, base, vp)
        resp = page.goto(f"{base}/maps/police?publish=true", wait_until="load")
        assert resp.status == 200, name
        wait_for_map(page)
        links = page.locator(".riskmap-notice-links a")
        assert links.count() == 3
        assert [links.nth(i).get_attribute("href") for i in range(3)] == [
            "/maps/police/notice.pdf", "/maps/police/notice.pdf?paper=a3&orientation=landscape",
            "/maps/police/notice.png"]
        box = page.locator(".riskmap-notice-links").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= vp[0], name
        status, ctype, pdf = _fetch(page, "/maps/police/notice.pdf")
        assert (status, ctype) == (200, "application/pdf")
        text, (w, h) = _pdf_text(pdf)
        assert abs(w - 595.28) <= 1 and abs(h - 841.89) <= 1
        assert TITLE in text and "\nN\n" in f"\n{text}\n" and "北" in text
        for road in ("京台高速", "光明大道"):
            assert road in text, road
        assert "注意" not in text
        assert errors == [] and foreign == [], (name, errors, foreign)
        page.close()
