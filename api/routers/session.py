"""Browser sign-in: ``GET /signin`` (a form), ``POST /signin`` (an API key exchanged for a
session cookie) and ``POST /signout``.

After 5 failed sign-ins from one address within 5 minutes, further attempts from it are 429
until the oldest failure is 5 minutes old (per process).

The cookie (``riskmap_session``) is HttpOnly, SameSite=Lax, Secure on https, Path=/ (the app's
root) and lasts ``session_hours``; it holds a signed fingerprint of the key, never the key (see
:mod:`api.auth`). SameSite=Lax rather than Strict: a link to a map followed from another site
(mail, chat) must arrive signed in; writes are protected by the CSRF token and the Guard's
same-origin check instead. The pages are not part of the OpenAPI description.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    Principal,
    csrf_token,
    issue_session,
    request_session,
)
from api.errors import BadRequest
from api.ogc import check_params, esc
from api.pages import ROLE_LABELS, local_next, page, root_path

__all__ = ["router", "signin_form"]

log = logging.getLogger("riskmap.api")

router = APIRouter(tags=["Session"], include_in_schema=False)

_MAX_FIELDS = 8
# Failed sign-ins: at most _MAX_FAILS per client address within _FAIL_WINDOW_S, then 429 until
# the oldest falls out of the window (per process; a guard against guessing keys online).
_MAX_FAILS = 5
_FAIL_WINDOW_S = 300.0
_FAILS_LOCK = threading.Lock()


def _recent_fails(request: Request, client: str, now: float) -> deque[float]:
    """The times of ``client``'s failed sign-ins within the window (the app's table)."""
    with _FAILS_LOCK:
        table: dict[str, deque[float]] | None = getattr(request.app.state, "signin_fails", None)
        if table is None:
            table = request.app.state.signin_fails = {}
        fails = table.setdefault(client, deque(maxlen=_MAX_FAILS))
        while fails and fails[0] <= now - _FAIL_WINDOW_S:
            fails.popleft()
        if len(table) > 10_000:  # bounded: forget the oldest addresses
            for k in list(table)[:1000]:
                table.pop(k, None)
        return fails


def _anonymous(request: Request) -> Principal:
    return Principal(role=request.app.state.settings.anonymous_role, name="anonymous",
                     authenticated=False)


def _viewer(request: Request) -> Principal:
    """Who the page is shown to: the session's key when there is one (no CSRF check: this
    only decides what the page says), else anonymous."""
    s = request_session(request)
    if s is None:
        return _anonymous(request)
    return Principal(role=s.key.role, name=s.key.name, authenticated=True, session=True)


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST (first value of each field)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise BadRequest(f"Content-Type {ctype[:60]!r}; expected "
                         "application/x-www-form-urlencoded (the sign-in form)")
    body = (await request.body()).decode("utf-8", "replace")
    try:
        fields = parse_qs(body, keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except ValueError:
        raise BadRequest(f"the form has more than {_MAX_FIELDS} fields") from None
    return {k: v[0] for k, v in fields.items()}


def signin_form(request: Request, principal: Principal, *, next_path: str,
                error: str = "", status_code: int = 200) -> HTMLResponse:
    """The sign-in page for ``principal`` (an ``error`` shown above the form)."""
    root = root_path(request)
    parts = []
    if error:
        parts.append(f'<p class="riskmap-error" role="alert">{error}</p>')
    if principal.authenticated:
        label = f"{ROLE_LABELS.get(principal.role, principal.role)} {principal.role}"
        parts.append(f"<p>当前已登录为 {esc(principal.name)}（{esc(label)}）。如所需页面要求"
                     f"其他角色，请用该角色的密钥登录。<br>Signed in as {esc(principal.name)} "
                     f"({esc(label)}). If the page you asked for needs another role, sign in "
                     "with a key of that role.</p>")
    parts.append(
        f'<form method="post" action="{root}/signin" class="riskmap-signin-form">'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        '<label for="riskmap-key">API 密钥 API key</label>'
        '<input type="password" id="riskmap-key" name="key" autocomplete="off" required '
        'autofocus spellcheck="false">'
        '<button type="submit" class="primary">登录 Sign in</button></form>'
        '<p class="riskmap-note">密钥由管理员分发（RISKMAP_API_KEYS），只用于换取本浏览器的'
        f"会话，不会保存在 Cookie 中；会话 {request.app.state.settings.session_hours:g} 小时后"
        "失效。<br>Keys are issued by the administrator (RISKMAP_API_KEYS); the key is only "
        "exchanged for this browser's session and is not stored in the cookie; the session "
        f"ends after {request.app.state.settings.session_hours:g} hours.</p>")
    return page("登录 Sign in", "".join(parts), principal, request=request,
                status_code=status_code)


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request) -> HTMLResponse:
    """The sign-in form (``next``: the local page to return to)."""
    check_params(request, ("next",))
    root = root_path(request)
    nxt = local_next(request.query_params.get("next"), default=f"{root}/maps")
    return signin_form(request, _viewer(request), next_path=nxt)


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Exchange the form's ``key`` for a session cookie, then 303 to ``next`` (local only)."""
    check_params(request, ())
    form = await _form(request)
    settings = request.app.state.settings
    root = root_path(request)
    nxt = local_next(form.get("next"), default=f"{root}/maps")
    now = float(request.app.state.service.district.now().timestamp())
    client = request.client.host if request.client else "?"
    fails = _recent_fails(request, client, now)
    if len(fails) >= _MAX_FAILS:
        wait = max(1, int(fails[0] + _FAIL_WINDOW_S - now + 59) // 60)
        log.warning("sign-in refused: %d failed attempts from %s", len(fails), client)
        return signin_form(request, _viewer(request), next_path=nxt, status_code=429,
                           error=f"登录失败次数过多，请 {wait} 分钟后再试。Too many failed "
                           f"sign-ins from this address; try again in {wait} minute(s).")
    key = settings.lookup_key(form.get("key", "").strip())
    if key is None:
        with _FAILS_LOCK:
            fails.append(now)
        log.warning("sign-in refused: unknown API key (from %s)", client)
        return signin_form(request, _viewer(request), next_path=nxt, status_code=401,
                           error="密钥无效。The API key is not known to this service.")
    value, session = issue_session(settings, key, now=now)
    log.info("sign-in: %s (%s)", key.name, key.role)
    out = RedirectResponse(nxt, status_code=303)
    out.set_cookie(SESSION_COOKIE, value, max_age=session.expires - session.issued,
                   path=root or "/", secure=request.url.scheme == "https", httponly=True,
                   samesite="lax")
    return out


@router.post("/signout")
async def signout(request: Request) -> Response:
    """End this browser's session (the cookie is cleared), then 303 to the landing page.

    With a valid session the form's ``csrf_token`` field (or the header) must match."""
    check_params(request, ())
    session = request_session(request)
    if session is not None:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            sent = (await _form(request)).get(CSRF_FIELD)
        if sent != csrf_token(request.app.state.settings, session):
            return page("退出 Sign out", '<p class="riskmap-error" role="alert">退出请求缺少'
                        "本页的 CSRF 令牌，已拒绝。The sign-out request lacks this site's CSRF "
                        "token and was refused.</p>", _viewer(request),
                        request=request, status_code=403)
        log.info("sign-out: %s (%s)", session.key.name, session.key.role)
    root = root_path(request)
    out = RedirectResponse(f"{root}/", status_code=303)
    out.delete_cookie(SESSION_COOKIE, path=root or "/", secure=request.url.scheme == "https",
                      httponly=True, samesite="lax")
    return out

