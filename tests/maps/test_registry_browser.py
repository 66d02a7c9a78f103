"""The registry workspace in headless Chromium (issue 15), every request to another host
aborted: a fire user signs in, sees only fire hazards, opens one, adds a measure with a photo,
moves it to rectified and closed; the dashboard's rate changes; a planner with a stale page is
told who changed the hazard and keeps what was typed. The list page at 1440×900 and 390×844."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from live_server import live_server

pytestmark = [pytest.mark.server, pytest.mark.slow]

playwright = pytest.importorskip("playwright.sync_api")

KEYS = {"planner": "planner-key-0001", "fire": "fire-key-00000001",
        "admin": "admin-key-0000001"}
VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
FIRE = ["compound_lane_gap:B-03", "compound_lane_gap:B-05"]
PLANNER = "occupancy:P-01:B-00"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(300)


def _finding(fid: str, kind: str, feature: str) -> dict[str, Any]:
    return {"finding_id": fid, "kind": kind, "severity": "high", "layer": "buildings",
            "feature_id": feature, "other_layer": "compounds", "other_id": "C-1",
            "rule_id": "fire.lane", "rule_source": "GB 50016-2014 7.1.8",
            "message_zh": f"建筑 {feature} 无消防车道", "message_en": f"{feature}: no lane",
            "lon": 117.2505, "lat": 34.8005}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:

    from api.app import create_app
    from api.settings import Settings
    from layers.registry import Actor, Registry
    from layers.store import GeoPackageStore
    from tests.api.conftest import small_layers

    path = tmp_path_factory.mktemp("registry") / "store.gpkg"
    store = GeoPackageStore(path)
    store.write(small_layers())
    reg = Registry(path)
    admin = Actor("setup", "admin")
    for fid in FIRE:
        reg.register(_finding(fid, "compound_lane_gap", fid.split(":")[1]),
                     analysis="fire_findings", owner_role="fire", actor=admin,
                     fields={"department": "消防救援大队"})
    reg.register(_finding(PLANNER, "occupancy", "B-00") | {"other_layer": "pipelines",
                                                           "other_id": "P-01"},
                 analysis="pipeline_findings", owner_role="planner", actor=admin)
    keys = ",".join(f"{role}:{role}-user:{key}" for role, key in KEYS.items())
    app = create_app(Settings(store=str(path), api_keys=keys, session_secret="y" * 40),
                     store=store)
    with live_server(app) as url:
        yield url, reg


class Session:
    """A fresh browser context at one viewport; other hosts aborted, console errors kept."""

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

    def sign_in(self, role: str, next_path: str) -> None:
        self.goto(f"/signin?next={next_path}")
        self.page.fill("#riskmap-key", KEYS[role])
        with self.page.expect_navigation(wait_until="load"):
            self.page.click(".riskmap-signin-form button[type=submit]")

    def ids(self) -> list[str]:
        rows = self.page.locator("#hazards tr[data-id]")
        return [str(rows.nth(i).get_attribute("data-id")) for i in range(rows.count())]

    def message(self) -> str:
        return str(self.page.locator("#msg").inner_text())

    def close(self) -> None:
        assert self.foreign == [], self.foreign
        assert self.errors == [], self.errors
        self.ctx.close()


def _rate(s: Session, kind: str) -> str:
    s.goto("/registry/dashboard")
    cell = s.page.locator(f"table.by-kind tr[data-key='{kind}'] td.rate")
    return str(cell.inner_text())


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_list_page_per_role(browser: Any, server: tuple[str, Any], viewport: str) -> None:
    url, _ = server
    s = Session(browser, url, VIEWPORTS[viewport])
    s.goto("/registry")
    assert s.page.url == f"{url}/signin?next=/registry"  # not signed in: sent to sign in
    s.sign_in("fire", "/registry")
    assert s.page.url == f"{url}/registry"
    assert s.ids() == FIRE  # only fire hazards
    bar = s.page.locator(".riskmap-rolebar").first
    assert bar.get_attribute("data-role") == "fire"
    width = s.page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1]  # the table scrolls inside its box, the page does not
    link = s.page.locator("#hazards a", has_text=FIRE[0])
    assert link.is_visible()
    s.page.select_option("#f-status", "closed")
    with s.page.expect_navigation(wait_until="load"):
        s.page.click("#apply")
    assert s.ids() == [] and "status=closed" in s.page.url
    s.close()
    p = Session(browser, url, VIEWPORTS[viewport])
    p.sign_in("planner", "/registry")
    assert p.ids() == [*FIRE, PLANNER]  # planner sees every hazard
    p.close()


def test_fire_user_works_a_hazard_to_closure(browser: Any, server: tuple[str, Any],
                                             tmp_path: Any) -> None:
    url, reg = server
    s = Session(browser, url, VIEWPORTS["desktop"])
    s.sign_in("fire", "/registry")
    assert _rate(s, "compound_lane_gap") == "0.0 %"
    s.goto("/registry")
    with s.page.expect_navigation(wait_until="load"):
        s.page.click(f"#hazards a:text-is('{FIRE[0]}')")
    page = s.page
    page.wait_for_function("() => document.querySelectorAll('#map path').length >= 2")
    assert page.locator("#rule").inner_text() == "fire.lane GB 50016-2014 7.1.8"
    assert page.locator("#status").inner_text() == "待整改 identified"
    assert [page.locator("#transitions button").nth(i).get_attribute("data-to")
            for i in range(page.locator("#transitions button").count())] == ["rectifying"]
    page.click("#to-rectifying")  # required fields missing: told, nothing sent
    assert s.message() == "缺少 missing: measures, responsible, deadline"
    assert reg.hazard(FIRE[0])["version"] == 1
    page.fill("#measures", "打通消防车道，拆除占道围墙")
    page.fill("#responsible", "王队长")
    page.fill("#deadline", "2027-03-31")
    photo = tmp_path / "现场.png"
    photo.write_bytes(PNG)
    page.set_input_files("#file", str(photo))
    page.click("#to-rectifying")
    page.wait_for_function("() => document.getElementById('status').textContent"
                           " === '整改中 rectifying'")
    assert page.locator("#attachments li a").inner_text() == "现场.png"
    for to, label in (("rectified", "已整改 rectified"), ("verified", "已验收 verified"),
                      ("closed", "已销号 closed")):
        page.click(f"#to-{to}")
        page.wait_for_function(f"() => document.getElementById('status').textContent"
                               f" === '{label}'")
    h = reg.hazard(FIRE[0])
    assert (h["status"], h["measures"], h["responsible"], h["deadline"]) == (
        "closed", "打通消防车道，拆除占道围墙", "王队长", "2027-03-31")
    assert [a["name"] for a in h["attachments"]] == ["现场.png"]
    assert page.locator("#transitions button").count() == 0
    assert page.locator("#save").is_disabled()
    page.wait_for_function("() => { const c = document.querySelector("
                           "'#history tr:nth-child(2) td:nth-child(3)');"
                           " return c && c.textContent === 'status:verified->closed'; }")
    actions = page.locator("#history tr td:nth-child(3)").all_inner_texts()
    assert actions[:4] == ["status:verified->closed", "status:rectified->verified",
                           "status:rectifying->rectified", "status:identified->rectifying"]
    with page.expect_download() as dl:
        page.click("#attachments li a")
    assert dl.value.suggested_filename == "现场.png"
    assert _rate(s, "compound_lane_gap") == "50.0 %"  # one of the two fire hazards closed
    s.close()


def test_stale_page_is_told_and_keeps_what_was_typed(browser: Any, server: tuple[str, Any]
                                                      ) -> None:
    url, reg = server
    from layers.registry import Actor

    s = Session(browser, url, VIEWPORTS["desktop"])
    s.sign_in("planner", "/registry/hazards/" + PLANNER.replace(":", "%3A"))
    page = s.page
    page.wait_for_function("() => document.getElementById('version').textContent !== ''")
    seen = int(page.locator("#version").inner_text())
    # meanwhile someone else saves a change
    reg.update(PLANNER, {"department": "住建局"}, actor=Actor("admin-user", "admin"),
               expected_version=seen)
    page.fill("#measures", "迁改管道 120 m")
    page.click("#save")
    page.wait_for_selector("#stale")
    text = s.message()
    assert re.match(r"有人已修改此隐患 someone changed this hazard at "
                    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00 "
                    r"\(admin-user \(admin\)\); 请重新载入 reload", text), text
    assert page.locator("#measures").input_value() == "迁改管道 120 m"  # nothing lost
    assert reg.hazard(PLANNER)["measures"] is None
    page.click("#reload")
    page.wait_for_function(f"() => document.getElementById('version').textContent"
                           f" === '{seen + 1}'")
    assert page.locator("#measures").input_value() == "迁改管道 120 m"
    assert page.locator("#department").input_value() == "住建局"
    page.click("#save")
    page.wait_for_function("() => document.getElementById('msg').textContent"
                           ".startsWith('已保存 saved')")
    h = reg.hazard(PLANNER)
    assert (h["measures"], h["department"], h["version"]) == ("迁改管道 120 m", "住建局",
                                                              seen + 2)
    # the one refused save is Chromium's only console line; nothing else went wrong
    assert s.errors == ["Failed to load resource: the server responded with a status of 409 "
                        "(Conflict)"]
    s.errors.clear()
    s.close()
