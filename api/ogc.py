"""Small OGC API helpers shared by the routers: links, format negotiation, strict query params,
HTML page shell."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Literal

from fastapi import Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict

from api.errors import BadRequest

__all__ = [
    "FORMAT_PARAM",
    "Link",
    "base_url",
    "check_params",
    "esc",
    "href",
    "html_page",
    "wants_html",
]

FORMAT_PARAM = "f"


class Link(BaseModel):
    """An OGC / RFC 8288 link."""

    model_config = ConfigDict(extra="allow")

    href: str
    rel: str
    type: str | None = None
    title: str | None = None


def base_url(request: Request) -> str:
    """The service root URL without a trailing slash."""
    return str(request.base_url).rstrip("/")


def href(request: Request, path: str, **query: object) -> str:
    """Absolute URL for ``path`` with the (non-None) ``query`` parameters."""
    from urllib.parse import urlencode

    q = {k.replace("_", "-") if k == "bbox_crs" else k: v for k, v in query.items()
         if v is not None}
    return base_url(request) + path + (("?" + urlencode(q)) if q else "")


def check_params(request: Request, allowed: Iterable[str]) -> None:
    """Raise 400 for any query parameter not in ``allowed`` (never ignore one silently)."""
    allowed_set = set(allowed) | {FORMAT_PARAM}
    unknown = sorted({k for k in request.query_params if k not in allowed_set})
    if unknown:
        raise BadRequest(f"unknown query parameter(s) {', '.join(unknown)}; allowed: "
                         + ", ".join(sorted(allowed_set)))
    for k in request.query_params:
        if len(request.query_params.getlist(k)) > 1:
            raise BadRequest(f"query parameter {k!r} given more than once")


def wants_html(request: Request, *, formats: tuple[str, ...] = ("json", "html")) -> bool:
    """True for ``f=html`` (or a browser Accept header without ``f``); 400 on unknown ``f``."""
    f = request.query_params.get(FORMAT_PARAM)
    if f is not None:
        if f not in formats:
            raise BadRequest(f"f={f!r} is not supported; expected one of {', '.join(formats)}")
        return f == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "json" not in accept


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def html_page(title: str, body: str, *, head: str = "", links: list[Link] | None = None,
              kind: Literal["page", "map"] = "page", request: Request | None = None
              ) -> HTMLResponse:
    """A minimal, dependency-free HTML page (no CDN assets); with ``request``, the role bar
    (who is signed in, sign-in/out) of every riskmap page above it."""
    nav = ""
    if links:
        nav = "<nav>" + " · ".join(
            f'<a href="{esc(li.href)}">{esc(li.title or li.rel)}</a>' for li in links
            if li.type in (None, "text/html")) + "</nav>"
    style = ("body{font-family:system-ui,sans-serif;margin:1.5em;max-width:70em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
             "font-size:90%}#map{height:420px;margin:1em 0}")
    # no favicon request (a 404 in the browser console)
    bar = ""
    if request is not None:
        from api.auth import get_principal
        from api.pages import ROLEBAR_CSS, role_bar

        bar = role_bar(get_principal(request), request=request)
        style += ROLEBAR_CSS
    doc = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}'
           f'</title><link rel="icon" href="data:,"><style>{style}</style>{head}</head><body>'
           f"{bar}{nav}<h1>{esc(title)}</h1>"
           f"{body}</body></html>")
    return HTMLResponse(doc)
