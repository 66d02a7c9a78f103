"""The frame of the service's own HTML pages: header, role bar, CSS, CSRF token, ``riskmapFetch``.

One helper for every HTML page of the service (sign-in, the map index, the landing page, the
registry pages) so they all look alike and show who is signed in:

- :func:`page` — a whole page (``<title>``, shared CSS, nav, role bar, the CSRF token in
  ``<meta name="csrf-token">`` and the ``riskmapFetch`` script) as an ``HTMLResponse``;
- :func:`inject` — the same title, role bar, token and script put into an HTML document built
  elsewhere (the Folium maps);
- :func:`role_bar` — "已登录 signed in as NAME (规划 planner) · 退出 sign out" or
  "未登录 not signed in · 登录 sign in";
- :func:`local_next` — a ``next=`` target reduced to a path of this site (no open redirect).

``riskmapFetch(url, opts)`` is ``fetch`` with ``credentials: 'same-origin'`` and the page's
``X-CSRF-Token`` header (needed by every POST/PUT/PATCH/DELETE made with the session cookie).
The script also makes plain ``fetch`` add the header to same-origin writes, so page code written
before sign-in existed keeps working. No external asset is referenced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.auth import CSRF_FIELD, CSRF_HEADER, Principal, csrf_token, request_session
from api.ogc import esc

__all__ = [
    "FETCH_JS",
    "PAGE_CSS",
    "ROLEBAR_CSS",
    "ROLE_LABELS",
    "csrf_meta",
    "has_route",
    "inject",
    "local_next",
    "page",
    "role_bar",
    "root_path",
]

ROLE_LABELS: dict[str, str] = {"public": "公众", "planner": "规划", "police": "交警",
                               "fire": "消防", "admin": "管理员"}

ROLEBAR_CSS = (
    ".riskmap-rolebar{font:13px/1.4 system-ui,'WenQuanYi Micro Hei',sans-serif;color:#222;"
    "background:#f3f5f8;border-bottom:1px solid #d6dbe1;padding:4px 10px;display:flex;"
    "flex-wrap:wrap;gap:4px 10px;align-items:center}"
    ".riskmap-rolebar form{display:inline;margin:0}"
    ".riskmap-rolebar button{font:inherit;color:#0645ad;background:none;border:0;padding:0;"
    "cursor:pointer;text-decoration:underline}"
    ".riskmap-rolebar a{color:#0645ad}"
    ".riskmap-rolebar-who{margin-left:auto}"
    # on a map page the bar floats over the map, top centre, above Leaflet's controls
    ".riskmap-rolebar.riskmap-rolebar-map{position:fixed;top:0;left:50%;transform:translateX(-50%);"
    "z-index:1200;max-width:calc(100% - 130px);box-sizing:border-box;border:1px solid #c5ccd4;"
    "border-top:0;"
    "border-radius:0 0 6px 6px;background:rgba(255,255,255,.92);padding:2px 8px;font-size:12px;"
    "white-space:nowrap;overflow:hidden;text-overflow:ellipsis;display:block}"
    ".riskmap-rolebar-map .riskmap-rolebar-nav{display:none}"
    ".riskmap-rolebar-map .riskmap-rolebar-name{display:inline-block;max-width:9em;"
    "overflow:hidden;text-overflow:ellipsis;vertical-align:bottom}"
    "@media (max-width:480px){.riskmap-rolebar-map .riskmap-en{display:none}}"
)

PAGE_CSS = (
    "body{font-family:system-ui,'WenQuanYi Micro Hei',sans-serif;margin:0;color:#222}"
    "main{margin:1em 1.5em;max-width:70em}"
    "h1{font-size:1.5em;margin:.4em 0}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}"
    "label{display:block;margin:.6em 0 .2em}"
    "input[type=password],input[type=text]{font:inherit;padding:6px;width:100%;"
    "max-width:24em;box-sizing:border-box}"
    "button.primary{font:inherit;padding:6px 16px;margin-top:.8em}"
    ".riskmap-error{color:#a00;border:1px solid #e0a0a0;background:#fff4f4;padding:6px 10px;"
    "max-width:40em}"
    ".riskmap-note{color:#555;font-size:90%}"
    ".riskmap-maps{list-style:none;padding:0}.riskmap-maps li{margin:.7em 0}"
    ".riskmap-maps .riskmap-locked{color:#777}"
    + ROLEBAR_CSS
)

# riskmapFetch(url, opts): fetch with the session's CSRF header on same-origin requests; plain
# fetch is wrapped so that same-origin writes get the header too.
FETCH_JS = (
    "(function(w){if(w.riskmapFetch)return;var f=w.fetch.bind(w);"
    "function tok(){var m=w.document.querySelector('meta[name=\"csrf-token\"]');"
    "return m?m.getAttribute('content'):''}"
    "function same(u){try{return new URL(u,w.location.href).origin===w.location.origin}"
    "catch(e){return false}}"
    "function add(input,opts,always){opts=Object.assign({credentials:'same-origin'},opts||{});"
    "var url=(typeof input==='string'||input instanceof URL)?String(input):input.url;"
    "var m=(opts.method||(input&&input.method)||'GET').toUpperCase();"
    "var t=tok();if(t&&same(url)&&(always||['POST','PUT','PATCH','DELETE'].indexOf(m)>=0)){"
    "var h=new Headers(opts.headers||(input&&input.headers)||{});"
    f"if(!h.has('{CSRF_HEADER}'))h.set('{CSRF_HEADER}',t);opts.headers=h}}return opts}}"
    "w.riskmapFetch=function(input,opts){return f(input,add(input,opts,true))};"
    "w.fetch=function(input,opts){return f(input,add(input,opts,false))};"
    "})(window);"
)


def root_path(request: Request) -> str:
    """The path prefix the app is mounted under (``''`` at the root)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def local_next(value: str | None, *, default: str = "/maps") -> str:
    """``value`` when it is a path on this site (``/maps/police?x=1``), else ``default``.

    Refuses absolute and scheme-relative URLs (``https://x``, ``//x``, ``/\\x``), control
    characters and anything longer than 2000 characters: no open redirect."""
    if not value or len(value) > 2000 or not value.startswith("/"):
        return default
    if value.startswith(("//", "/\\")) or re.search(r"[\x00-\x20\x7f\\]", value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def csrf_meta(request: Request) -> str:
    """``<meta name="csrf-token">`` with this request's session token (empty when none)."""
    session = request_session(request)
    token = csrf_token(request.app.state.settings, session) if session is not None else ""
    return f'<meta name="csrf-token" content="{esc(token)}">'


def _current(request: Request) -> str:
    path = root_path(request) + request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return path


def _paths(routes: Iterable[Any], prefix: str = "") -> Iterator[str]:
    for r in routes:
        path = getattr(r, "path", None)
        if isinstance(path, str):
            yield prefix + path
        inner = getattr(r, "original_router", None)  # FastAPI's included routers
        if inner is not None:
            ctx = getattr(r, "include_context", None)
            yield from _paths(inner.routes, prefix + str(getattr(ctx, "prefix", "") or ""))


def has_route(request: Request, path: str) -> bool:
    """True when the app serves ``path`` (e.g. ``/registry``, added by another router)."""
    paths = getattr(request.app.state, "riskmap_paths", None)
    if paths is None:
        paths = request.app.state.riskmap_paths = frozenset(_paths(request.app.routes))
    return path in paths


def role_bar(principal: Principal, *, request: Request, on_map: bool = False) -> str:
    """The bar naming the caller and its role, with sign-out (signed in by the session) or
    sign-in; ``on_map`` floats it over a full-screen map."""
    root = root_path(request)
    # English words of the map's bar are dropped on a phone (.riskmap-en)
    label = (f"{ROLE_LABELS.get(principal.role, principal.role)}"
             f'<span class="riskmap-en"> {esc(principal.role)}</span>')
    signed = "" if on_map else "已登录 signed in as "  # a map's floating bar is compact
    if principal.session:
        session = request_session(request)
        token = csrf_token(request.app.state.settings, session) if session is not None else ""
        who = (f'{signed}<b class="riskmap-rolebar-name">{esc(principal.name)}</b> '
               f'({label}) · <form method="post" action="{root}/signout">'
               f'<input type="hidden" name="{CSRF_FIELD}" value="{esc(token)}">'
               '<button type="submit" class="riskmap-signout">退出'
               '<span class="riskmap-en"> sign out</span></button></form>')
    elif principal.authenticated:  # a header key: nothing to sign out of
        who = (f'API key <b class="riskmap-rolebar-name">{esc(principal.name)}</b> '
               f"({label})")
    else:
        anon = "" if principal.role == "public" else (
            f" ({label})" if on_map else f" (anonymous: {label})")
        nxt = quote(_current(request), safe="/")
        who = (f"未登录{'' if on_map else ' not signed in'}{anon} · "
               f'<a class="riskmap-signin" href="{root}/signin?next={nxt}">登录'
               '<span class="riskmap-en"> sign in</span></a>')
    nav = [(f"{root}/", "首页 Home"), (f"{root}/maps", "地图 Maps")]
    if has_route(request, "/registry"):
        nav.append((f"{root}/registry", "隐患台账 Registry"))
    nav.append((f"{root}/api.html", "API"))
    links = " · ".join(f'<a href="{h}">{t}</a>' for h, t in nav)
    cls = "riskmap-rolebar riskmap-rolebar-map" if on_map else "riskmap-rolebar"
    return (f'<div class="{cls}" role="navigation" data-role="{esc(principal.role)}" '
            f'data-name="{esc(principal.name)}" '
            f'data-signed-in="{"true" if principal.authenticated else "false"}">'
            f'<span class="riskmap-rolebar-nav">{links}</span>'
            f'<span class="riskmap-rolebar-who">{who}</span></div>')


def _head(title: str, request: Request) -> str:
    return (f"<title>{esc(title)}</title>{csrf_meta(request)}"
            f"<script>{FETCH_JS}</script>")


def page(title: str, body_html: str, principal: Principal, *, request: Request,
         status_code: int = 200, head: str = "", heading: bool = True) -> HTMLResponse:
    """A whole HTML page: ``title`` (``<title>`` "TITLE — SITE" and ``<h1>``), the role bar,
    then ``body_html`` (already escaped) inside ``<main>``. ``head`` is added to ``<head>``."""
    site = request.app.state.settings.title
    full = title if title == site else f"{title} — {site}"
    h1 = f"<h1>{esc(title)}</h1>" if heading else ""
    doc = ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width, initial-scale=1">'
           f'<link rel="icon" href="data:,">{_head(full, request)}<style>{PAGE_CSS}</style>'
           f"{head}</head><body>{role_bar(principal, request=request)}"
           f"<main>{h1}{body_html}</main></body></html>")
    return HTMLResponse(doc, status_code=status_code)


_TITLE_RE = re.compile(r"<title>.*?</title>", re.DOTALL | re.IGNORECASE)
_HEAD_RE = re.compile(r"<head[^>]*>", re.IGNORECASE)
_BODY_RE = re.compile(r"<body[^>]*>", re.IGNORECASE)


def inject(html: str, *, title: str, principal: Principal, request: Request,
           floating: bool = True) -> str:
    """``html`` (a whole document, e.g. a Folium map) with ``title`` as its ``<title>``
    ("TITLE — SITE"; replacing any), the CSRF token, ``riskmapFetch`` and the role bar:
    floating over the page (class ``riskmap-rolebar riskmap-rolebar-map``) or, with
    ``floating=False``, at the top of the body."""
    site = request.app.state.settings.title
    full = esc(f"{title} — {site}")
    end = html.lower().find("</head>")
    if end >= 0:  # only the head's title (an SVG in the body may hold <title> elements)
        html = _TITLE_RE.sub("", html[:end], count=1) + html[end:]
    head = (f"<title>{full}</title>{csrf_meta(request)}<script>{FETCH_JS}</script>"
            f"<style>{ROLEBAR_CSS}</style>")
    m = _HEAD_RE.search(html)
    html = (html[:m.end()] + head + html[m.end():]) if m else head + html
    bar = role_bar(principal, request=request, on_map=floating)
    m = _BODY_RE.search(html)
    return (html[:m.end()] + bar + html[m.end():]) if m else html + bar
