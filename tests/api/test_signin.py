"""Browser sign-in (issue 14, Access): session cookie, CSRF, role bar, /maps index, redirects,
the landing page and the vendored API docs (no browser; see tests/maps/test_signin_browser.py)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import SESSION_COOKIE
from api.pages import local_next
from api.settings import Settings
from tests.api.conftest import API_KEYS, KEYS, auth

SECRET = "s" * 40
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _client(store: Path, clock: Clock | None = None, *, base_url: str = "http://testserver",
            **overrides: object) -> TestClient:
    overrides.setdefault("api_keys", API_KEYS)
    settings = Settings(store=str(store), **overrides)  # type: ignore[arg-type]
    return TestClient(create_app(settings, clock=clock), base_url=base_url)


@pytest.fixture()
def store(small_store_path: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "store.gpkg"
    shutil.copy(small_store_path, dst)
    return dst


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def c(store: Path, clock: Clock) -> Iterator[TestClient]:
    with _client(store, clock, session_secret=SECRET) as client:
        yield client


def _signin(client: TestClient, role: str, nxt: str = "/maps") -> str:
    r = client.post("/signin", data={"key": KEYS[role], "next": nxt}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return str(client.cookies[SESSION_COOKIE])


def _csrf(client: TestClient) -> str:
    m = re.search(r'<meta name="csrf-token" content="([^"]*)">',
                  client.get("/signin").text)
    assert m is not None
    return m.group(1)


def _layers(client: TestClient, **kw: object) -> set[str]:
    return {li["name"] for li in client.get("/layers", **kw).json()["layers"]}  # type: ignore[arg-type]


# --- the form and the exchange -----------------------------------------------------------------
def test_signin_form_is_local_and_bilingual(c):
    r = c.get("/signin?next=/maps/police")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<title>登录 Sign in — riskmap</title>" in r.text
    assert '<input type="hidden" name="next" value="/maps/police">' in r.text
    assert '<input type="password" id="riskmap-key" name="key"' in r.text
    assert re.findall(r"https?://", r.text) == []  # nothing from another host
    assert 'data-signed-in="false"' in r.text and "未登录 not signed in" in r.text
    assert c.get("/signin?nxt=/").status_code == 400  # unknown parameter


def test_signin_sets_an_httponly_cookie_without_the_key(c):
    r = c.post("/signin", data={"key": KEYS["police"], "next": "/maps/police?lang=en"},
               follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/maps/police?lang=en"
    cookie = r.headers["set-cookie"]
    value = cookie.split(";")[0].split("=", 1)[1]
    attrs = sorted(a.strip() for a in cookie.split(";")[1:])
    assert attrs == ["HttpOnly", "Max-Age=43200", "Path=/", "SameSite=lax"]  # http: no Secure
    assert KEYS["police"] not in value and "police" not in value
    import base64

    payload = base64.urlsafe_b64decode(value.split(".")[0] + "==").decode()
    assert KEYS["police"] not in payload and set(re.findall(r'"(\w)":', payload)) == {
        "k", "n", "i", "e"}


def test_signin_secure_cookie_on_https(store):
    with _client(store, base_url="https://testserver", session_secret=SECRET) as c:
        r = c.post("/signin", data={"key": KEYS["fire"]}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/maps"
        assert "Secure" in [a.strip() for a in r.headers["set-cookie"].split(";")]


def test_unknown_key_is_401_with_the_form_and_no_cookie(c, caplog):
    r = c.post("/signin", data={"key": "wrong-key-123456", "next": "/maps"},
               follow_redirects=False)
    assert r.status_code == 401
    assert "set-cookie" not in r.headers
    assert "密钥无效。The API key is not known to this service." in r.text
    assert "wrong-key-123456" not in r.text and "wrong-key-123456" not in caplog.text
    r = c.post("/signin", content=b'{"key": "x"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert "expected application/x-www-form-urlencoded" in r.json()["description"]


@pytest.mark.parametrize(("value", "expected"), [
    ("/maps/police?publish=true", "/maps/police?publish=true"),
    ("/", "/"),
    ("https://evil.example/x", "/maps"),
    ("//evil.example/x", "/maps"),
    ("/\\evil.example", "/maps"),
    ("/maps\r\nSet-Cookie: x=1", "/maps"),
    ("javascript:alert(1)", "/maps"),
    ("maps", "/maps"),
    ("", "/maps"),
    (None, "/maps"),
])
def test_local_next(value, expected):
    assert local_next(value) == expected


def test_open_redirect_refused(c):
    r = c.post("/signin", data={"key": KEYS["planner"], "next": "//evil.example/"},
               follow_redirects=False)
    assert r.headers["location"] == "/maps"


# --- the cookie as a credential ---------------------------------------------------------------
def test_cookie_grants_the_role_and_header_key_wins(c):
    assert _layers(c) == {"restricted_zones", "hazmat_routes"}  # public
    _signin(c, "fire")
    fire = _layers(c)
    assert "hydrants" in fire or "compounds" in fire
    assert "pipelines" not in fire
    assert "pipelines" in _layers(c, headers=auth("planner"))  # the header wins
    r = c.get("/layers", headers={"X-API-Key": "not-a-key-at-all"})
    assert r.status_code == 401  # a bad header key is not rescued by the cookie


def test_cookie_answers_are_private(c):
    _signin(c, "planner")
    assert c.get("/layers").headers["cache-control"] == "private, no-store"


def test_write_with_cookie_needs_the_csrf_token(c):
    _signin(c, "planner")
    body = {"finding_id": "occupancy:P-01:B-00", "analysis": "pipeline_findings"}
    r = c.post("/registry/hazards", json=body)
    assert r.status_code == 403
    assert r.json()["description"] == ("a change made with the session cookie needs the "
                                       "X-CSRF-Token header of the page (riskmapFetch sends "
                                       "it); it was missing")
    r = c.post("/registry/hazards", json=body, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403 and r.json()["description"].endswith("it was wrong")
    assert c.get("/registry/hazards").json()["numberMatched"] == 0
    r = c.post("/registry/hazards", json=body, headers={"X-CSRF-Token": _csrf(c)})
    assert r.status_code == 201, r.text
    # a header-key client needs no token, cookie or not
    r = c.post("/registry/hazards", json=body, headers=auth("planner"))
    assert r.status_code in (200, 201)


def test_session_expires_after_session_hours(c, clock):
    _signin(c, "planner")
    clock.now = T0 + timedelta(hours=11, minutes=59)
    assert "pipelines" in _layers(c)
    clock.now = T0 + timedelta(hours=12)
    assert _layers(c) == {"restricted_zones", "hazmat_routes"}  # anonymous again
    assert 'data-signed-in="false"' in c.get("/signin").text


def test_session_shared_by_workers_with_one_secret(c, store, clock):
    value = _signin(c, "planner")
    with _client(store, clock, session_secret=SECRET) as other:  # another worker / a restart
        other.cookies.set(SESSION_COOKIE, value)
        assert "pipelines" in _layers(other)
    with _client(store, clock, session_secret="t" * 40) as other:  # another secret
        other.cookies.set(SESSION_COOKIE, value)
        assert "pipelines" not in _layers(other)
    with _client(store, clock) as other:  # no secret: a random one per process
        other.cookies.set(SESSION_COOKIE, value)
        assert "pipelines" not in _layers(other)
    keys = API_KEYS.replace(f"planner:planner-user:{KEYS['planner']},", "")
    with _client(store, clock, session_secret=SECRET, api_keys=keys) as other:  # key removed
        other.cookies.set(SESSION_COOKIE, value)
        assert "pipelines" not in _layers(other)


def test_tampered_cookie_is_anonymous(c):
    value = _signin(c, "planner")
    payload, sig = value.split(".")
    for bad in (payload + "." + sig[:-2] + "AA", payload[:-2] + "." + sig, "x", "a.b.c",
                payload + "." + "%%%"):
        c.cookies.set(SESSION_COOKIE, bad)
        assert "pipelines" not in _layers(c), bad


def test_signout_needs_the_token_then_clears_the_cookie(c):
    _signin(c, "planner")
    token = _csrf(c)
    r = c.post("/signout", data={"csrf_token": "nope"}, follow_redirects=False)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    r = c.post("/signout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert r.headers["set-cookie"].startswith(f'{SESSION_COOKIE}=""; ')
    assert "Max-Age=0" in r.headers["set-cookie"]
    c.cookies.clear()
    assert _layers(c) == {"restricted_zones", "hazmat_routes"}


def test_short_session_secret_refused():
    with pytest.raises(ValueError, match="RISKMAP_SESSION_SECRET is shorter than 32") as exc:
        Settings(store="x.gpkg", session_secret="short-secret-1")
    assert "short-secret-1" not in str(exc.value)
    s = Settings(store="x.gpkg", session_secret=SECRET)
    assert s.session_secret is None and SECRET not in repr(s)


# --- role bar, landing, maps index, redirects --------------------------------------------------
def test_role_bar_names_the_session(c):
    _signin(c, "police")
    html = c.get("/", headers={"Accept": "text/html"}).text
    assert ('data-role="police" data-name="police-user" data-signed-in="true"') in html
    assert ('已登录 signed in as <b class="riskmap-rolebar-name">police-user</b> (交警'
            '<span class="riskmap-en"> police</span>)') in html
    assert f'name="csrf_token" value="{_csrf(c)}"' in html


def test_landing_links_maps_signin_and_docs_json_unchanged(c):
    r = c.get("/", headers={"Accept": "text/html"})
    for link in ('href="/maps"', 'href="/signin"', 'href="/api.html"', 'href="/redoc.html"',
                 "/collections"):
        assert link in r.text, link
    assert "<title>riskmap</title>" in r.text
    j = c.get("/", headers={"Accept": "application/json"}).json()
    assert {li["rel"] for li in j["links"]} >= {"self", "service-desc", "service-doc", "data"}


def _index(client: TestClient, **kw: object) -> list[tuple[str, bool, bool]]:
    r = client.get("/maps", **kw)  # type: ignore[arg-type]
    assert r.status_code == 200
    return [(m["name"], m["publish"], m["allowed"]) for m in r.json()["maps"]]


def test_maps_index_per_role(c, store):
    notice = ("police", True, True)
    assert _index(c) == [("planner", False, False), ("police", False, False),
                         ("fire", False, False), ("overview", False, False), notice,
                         ("protection", False, False)]
    assert _index(c, headers=auth("fire")) == [
        ("planner", False, False), ("police", False, False), ("fire", False, True),
        ("overview", False, False), notice, ("protection", False, False)]
    assert _index(c, headers=auth("police"))[-1] == ("protection", False, True)
    assert [m[2] for m in _index(c, headers=auth("admin"))] == [True] * 6
    _signin(c, "planner")
    assert _index(c) == [("planner", False, True), ("police", False, False),
                         ("fire", False, False), ("overview", False, True), notice,
                         ("protection", False, True)]
    html = c.get("/maps", headers={"Accept": "text/html"}).text
    assert '<a href="/maps/planner">规划管线安全图 · Planner pipeline map</a>' in html
    assert '<a href="/maps/police?publish=true">危化品车辆通行公告 · Public hazmat route notice' \
        in html
    assert '需要角色 needs role: 消防 fire · <a href="/signin?next=/maps/fire">' in html
    with _client(store, anonymous_role="planner") as anon:
        assert [m[2] for m in _index(anon)] == [True, False, False, True, True, True]


def test_map_redirects_browsers_and_keeps_json_errors(c):
    r = c.get("/maps/police?lang=en", headers={"Accept": "text/html,*/*"},
              follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/signin?next=/maps/police%3Flang%3Den"
    r = c.get("/maps/police")
    assert r.status_code == 401 and r.headers["content-type"] == "application/json"
    r = c.get("/maps/police", headers=auth("fire"))
    assert r.status_code == 403
    _signin(c, "fire")
    r = c.get("/maps/police", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=/maps/police"


@pytest.mark.slow
def test_public_notice_and_raised_anonymous_role(store):
    with _client(store, anonymous_role="planner") as c:
        r = c.get("/maps/police?publish=true", headers={"Accept": "text/html"})
        assert r.status_code == 200
        assert "<title>危化品车辆通行公告 · Public hazmat route notice — riskmap</title>" in r.text
        assert r.text.count("<title>") == 1
        assert 'class="riskmap-rolebar riskmap-rolebar-map"' in r.text
        assert '未登录 (规划<span class="riskmap-en"> planner</span>) · ' in r.text  # compact
        r = c.get("/maps/planner", headers={"Accept": "text/html"})
        assert r.status_code == 200
        assert "<title>规划管线安全图 · Planner pipeline map — riskmap</title>" in r.text
    with _client(store) as c:  # anonymous public: the notice too
        assert c.get("/maps/police?publish=true").status_code == 200


# --- API docs ---------------------------------------------------------------------------------
def test_api_docs_are_vendored(c):
    r = c.get("/api.html")
    assert r.status_code == 200
    srcs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert "/static/maps/apidocs/swagger-ui/swagger-ui-bundle.js" in srcs
    assert "/static/maps/apidocs/swagger-ui/swagger-ui.css" in srcs
    assert [s for s in srcs if "://" in s] == []
    assert "<title>API 文档 API documentation — riskmap</title>" in r.text
    r = c.get("/redoc.html")
    assert r.status_code == 200 and "/static/maps/apidocs/redoc/redoc.standalone.js" in r.text
    assert "fonts.googleapis" not in r.text
    for path in ("swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css",
                 "swagger-ui/LICENSE", "redoc/redoc.standalone.js", "redoc/LICENSE"):
        assert c.get(f"/static/maps/apidocs/{path}").status_code == 200, path
    assert "cdn.redoc.ly" not in c.get("/static/maps/apidocs/redoc/redoc.standalone.js").text


def test_failed_signins_are_throttled_per_address(c, clock):
    for i in range(5):
        r = c.post("/signin", data={"key": f"wrong-key-{i:06d}"}, follow_redirects=False)
        assert r.status_code == 401
    r = c.post("/signin", data={"key": KEYS["planner"]}, follow_redirects=False)
    assert r.status_code == 429 and "set-cookie" not in r.headers
    assert ("登录失败次数过多，请 5 分钟后再试。Too many failed sign-ins from this address; "
            "try again in 5 minute(s).") in r.text
    clock.now = T0 + timedelta(minutes=4, seconds=59)
    assert c.post("/signin", data={"key": KEYS["planner"]},
                  follow_redirects=False).status_code == 429
    clock.now = T0 + timedelta(minutes=5)  # the first failure left the window
    assert c.post("/signin", data={"key": KEYS["planner"]},
                  follow_redirects=False).status_code == 303
