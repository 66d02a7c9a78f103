"""Sign-in in headless Chromium (issue 14, Access), desktop 1440×900 and phone 390×844, with
every request to another host aborted: sign in from the landing page, the role bar on every
page, /maps lists the right maps per role, a map lacking the role sends the browser to sign in
and back, map titles, the police map's own fetch carries the CSRF token, Swagger UI and ReDoc
render offline, sign out; no console error, no foreign request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_server import live_server

pytestmark = [pytest.mark.server, pytest.mark.slow]

playwright = pytest.importorskip("playwright.sync_api")

KEYS = {"planner": "planner-key-0001", "police": "police-key-0001", "fire": "fire-key-00000001"}
VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
TITLES = {
    "planner": "规划管线安全图 · Planner pipeline map — riskmap",
    "police": "危化品运输路线图 · Police hazmat route map — riskmap",
    "notice": "危化品车辆通行公告 · Public hazmat route notice — riskmap",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from crafted_maps import crafted_findings, crafted_layers

    import api.routers.maps as maps_router
    from api.app import create_app
    from api.settings import Settings
    from layers.store import GeoPackageStore

    path = tmp_path_factory.mktemp("signin") / "store.gpkg"
    store = GeoPackageStore(path)
    store.write(crafted_layers())
    mp = pytest.MonkeyPatch()
    mp.setattr(maps_router, "analysis_inputs", lambda service, name: (crafted_findings(), {}))
    keys = ",".join(f"{role}:{role}-user:{key}" for role, key in KEYS.items())
    app = create_app(Settings(store=str(path), api_keys=keys, session_secret="x" * 40),
                     store=store)
    with live_server(app) as url:
        yield url
    mp.undo()


class Session:
    """A fresh browser context (own cookies) at one viewport; requests to any other host are
    aborted and recorded, console errors collected."""

    def __init__(self, browser: Any, server: str, viewport: dict[str, int]) -> None:
        self.server = server
        self.ctx = browser.new_context(viewport=viewport)
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.ctx.route("**/*", self._route)
        self.page = self.ctx.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text)
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.server + "/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def goto(self, path: str) -> None:
        self.page.goto(self.server + path, wait_until="load")

    def bar(self) -> dict[str, str]:
        loc = self.page.locator(".riskmap-rolebar").first
        return {"role": loc.get_attribute("data-role"), "name": loc.get_attribute("data-name"),
                "signed_in": loc.get_attribute("data-signed-in"), "text": loc.inner_text()}

    def sign_in(self, role: str) -> None:
        self.page.fill("#riskmap-key", KEYS[role])
        with self.page.expect_navigation(wait_until="load"):
            self.page.click(".riskmap-signin-form button[type=submit]")

    def maps(self) -> list[tuple[str, str]]:
        items = self.page.locator(".riskmap-maps li")
        return [(str(items.nth(i).get_attribute("class")),
                 str(items.nth(i).get_attribute("data-map"))
                 + ("?publish" if items.nth(i).get_attribute("data-publish") == "true" else ""))
                for i in range(items.count())]

    def close(self) -> None:
        self.ctx.close()


def _wait_map(page: Any) -> None:
    from maps.browser import wait_for_map

    wait_for_map(page)


def _in_view(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    vp = page.viewport_size
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= vp["width"] + 0.5, (box, vp)
    return dict(box)


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_sign_in_roles_maps_and_sign_out(server: str, browser: Any, viewport: str,
                                         tmp_path: Path) -> None:
    s = Session(browser, server, VIEWPORTS[viewport])
    page = s.page
    # landing: not signed in, links to the maps, sign-in and the API docs
    s.goto("/")
    assert page.title() == "riskmap"
    assert s.bar()["signed_in"] == "false" and "未登录 not signed in" in s.bar()["text"]
    for href in ("/maps", "/signin", "/api.html"):
        assert page.locator(f'main a[href="{href}"]').count() == 1, href
    _in_view(page, ".riskmap-rolebar .riskmap-signin")
    # anonymous (public) sees only the notice open
    s.goto("/maps")
    assert [m for c, m in s.maps() if c == "riskmap-map"] == ["police?publish"]
    # sign in as planner from the landing page's link
    s.goto("/")
    with page.expect_navigation(wait_until="load"):
        page.click("main a[href='/signin']")
    assert page.title() == "登录 Sign in — riskmap"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _in_view(page, ".riskmap-signin-form button[type=submit]")
    s.sign_in("planner")
    assert page.url == f"{server}/maps"
    bar = s.bar()
    assert (bar["role"], bar["name"], bar["signed_in"]) == ("planner", "planner-user", "true")
    assert "已登录 signed in as planner-user (规划 planner)" in bar["text"]
    assert s.maps() == [("riskmap-map", "planner"), ("riskmap-locked", "police"),
                        ("riskmap-locked", "fire"), ("riskmap-map", "overview"),
                        ("riskmap-map", "police?publish"), ("riskmap-map", "protection")]
    page.screenshot(path=str(tmp_path / f"maps-{viewport}.png"))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    cookie = next(c for c in s.ctx.cookies() if c["name"] == "riskmap_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    assert KEYS["planner"] not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # not readable by scripts
    # the planner map: its title and the role bar over it
    with page.expect_navigation(wait_until="load"):
        page.click("a[href='/maps/planner']")
    _wait_map(page)
    assert page.title() == TITLES["planner"]
    box = _in_view(page, ".riskmap-rolebar-map")
    assert box["height"] <= 30 and box["width"] <= VIEWPORTS[viewport]["width"] - 120, box
    out = page.locator(".riskmap-rolebar-map .riskmap-signout").bounding_box()
    assert out["x"] + out["width"] <= box["x"] + box["width"], (out, box)  # not cut off
    assert page.inner_text(".riskmap-rolebar-map") == (
        "planner-user (规划 planner) · 退出 sign out" if viewport == "desktop"
        else "planner-user (规划) · 退出")
    assert s.bar()["role"] == "planner"
    page.screenshot(path=str(tmp_path / f"planner-{viewport}.png"))
    # the police map needs another role: sent to sign in, and back after it
    s.goto("/maps/police?lang=zh")
    assert page.url == f"{server}/signin?next=/maps/police%3Flang%3Dzh"
    assert "当前已登录为 planner-user" in page.inner_text("main")
    s.sign_in("police")
    assert page.url == f"{server}/maps/police?lang=zh"
    _wait_map(page)
    assert page.title() == TITLES["police"]
    assert s.bar()["role"] == "police"
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    assert token
    # the map's own (plain) fetch of POST /routes carries the token; a request without it is 403
    sent: list[dict[str, str]] = []

    def handle(route: Any) -> None:
        sent.append(dict(route.request.headers))
        route.fulfill(status=200, content_type="application/geo+json",
                      body=json.dumps({"type": "FeatureCollection", "features": []}))

    page.route(f"{server}/routes", handle)
    page.evaluate("""() => { const app = RiskMap.app;  // the form's own request (riskmap.js)
        app.setRouteEnds([117.25, 34.80], [117.251, 34.80]); return app.requestRoute(); }""")
    assert sent and sent[0].get("x-csrf-token") == token
    page.unroute(f"{server}/routes")
    assert s.errors == []
    statuses = page.evaluate("""async () => {
        const body = JSON.stringify({origin: [117.25, 34.80], destination: [117.251, 34.80]});
        const plain = await fetch('/routes', {method: 'POST', body,
            headers: {'Content-Type': 'application/json'}});
        const bare = await new Promise(ok => { const x = new XMLHttpRequest();
            x.open('POST', '/routes'); x.setRequestHeader('Content-Type', 'application/json');
            x.onload = () => ok([x.status, JSON.parse(x.responseText).description]);
            x.send(body); });
        return [plain.status, bare]; }""")
    assert statuses[0] != 403
    assert statuses[1] == [403, "a change made with the session cookie needs the X-CSRF-Token "
                           "header of the page (riskmapFetch sends it); it was missing"]
    s.errors.clear()  # Chromium logs the refused requests above ("Failed to load resource")
    # the public notice for everybody, with its title
    s.goto("/maps/police?publish=true")
    _wait_map(page)
    assert page.title() == TITLES["notice"]
    # sign out from the role bar
    s.goto("/maps")
    with page.expect_navigation(wait_until="load"):
        page.click(".riskmap-rolebar .riskmap-signout")
    assert page.url == f"{server}/"
    assert s.bar()["signed_in"] == "false"
    assert [c for c in s.ctx.cookies() if c["name"] == "riskmap_session"] == []
    s.goto("/maps/planner")
    assert page.url.startswith(f"{server}/signin?next=/maps/planner")
    # a forged session cookie is no sign-in
    s.ctx.add_cookies([{"name": "riskmap_session", "value": "e30.AAAA", "url": server}])
    s.goto("/maps")
    assert s.bar()["signed_in"] == "false"
    assert s.errors == [] and s.foreign == []
    s.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_api_docs_render_offline(server: str, browser: Any, viewport: str) -> None:
    s = Session(browser, server, VIEWPORTS[viewport])
    page = s.page
    s.goto("/api.html")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30000)
    assert "riskmap" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".swagger-ui .opblock").count() > 10
    assert page.title() == "API 文档 API documentation — riskmap"
    assert s.bar()["signed_in"] == "false"
    s.goto("/redoc.html")
    page.wait_for_selector("redoc h1, .api-info h1", timeout=30000)
    assert "riskmap" in page.inner_text(".api-info h1")
    page.wait_for_timeout(500)
    assert s.errors == [] and s.foreign == []
    s.close()
