"""Offline maps: vendored assets, served or inlined, and the no-external-host check.

A map built by :func:`maps.base.make_map` references its Leaflet and riskmap.js/css files
under ``/static/maps/…`` (:data:`maps.base.STATIC_PREFIX`). :func:`render_html` either keeps
those app-relative URLs (``mode="served"``, optionally under another prefix) or inlines the
files (``mode="inline"``) into one standalone HTML file: CSS as ``<style>`` (comments
dropped, images as ``data:`` URIs) and JavaScript as ``data:`` URI scripts, which also keeps a
``</script>`` inside a library from closing the tag early. :func:`external_urls` lists every
``http(s)://`` URL of a page other than the chosen tile URLs; :func:`render_html` refuses to
return a page that has one.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import folium

from maps.base import STATIC_PREFIX

__all__ = [
    "ASSETS_DIR",
    "OfflineError",
    "asset_path",
    "external_urls",
    "render_html",
    "tile_urls",
]

ASSETS_DIR = Path(__file__).parent / "assets"

_URL = re.compile(r"https?://[^\s\"'<>()\\`]+", re.IGNORECASE)
_SCRIPT = re.compile(r'<script src="' + re.escape(STATIC_PREFIX) + r'/([^"]+)"></script>')
_LINK = re.compile(r'<link rel="stylesheet" href="' + re.escape(STATIC_PREFIX) + r'/([^"]+)"/>')
_CSS_URL = re.compile(r"url\((['\"]?)([^'\")]+)\1\)")
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


class OfflineError(ValueError):
    """A map page would load something from a host other than the app and its tile URL."""


def asset_path(rel: str) -> Path:
    """The vendored file for ``rel`` (``leaflet/leaflet.js``); refuses paths leaving assets."""
    p = (ASSETS_DIR / rel).resolve()
    if ASSETS_DIR.resolve() not in p.parents or not p.is_file():
        raise FileNotFoundError(f"no vendored map asset {rel!r} under {ASSETS_DIR}")
    return p


def tile_urls(m: folium.Map) -> list[str]:
    """Tile URL templates of the map's tile layers (the only external URLs allowed)."""
    out = []
    for child in m._children.values():
        if isinstance(child, folium.TileLayer):
            out.append(child.tiles)
    return out


def _allowed(url: str, allowed: Iterable[str]) -> bool:
    # A page may carry a template whole or cut at an escape (``\u0026`` for ``&`` in JSON):
    # accept a URL that is a prefix of an allowed template and names its host completely.
    return any(url == a or (a.startswith(url) and "/" in url.split("://", 1)[1])
               for a in allowed)


def external_urls(html: str, allowed: Iterable[str] = ()) -> list[str]:
    """Every ``http(s)://`` URL in ``html`` except those of the ``allowed`` tile templates.

    A URL is allowed when it is an allowed template or a prefix of one that includes the
    template's host and a path (a template cut short by JSON escaping in the page).
    """
    allowed = list(allowed)
    return [u for u in _URL.findall(html) if not _allowed(u, allowed)]


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".js":
        mime = "text/javascript"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _inline_css(rel: str) -> str:
    path = asset_path(rel)
    css = _CSS_COMMENT.sub("", path.read_text(encoding="utf-8"))
    base = path.parent

    def repl(mo: re.Match[str]) -> str:
        ref = mo.group(2)
        if ref.startswith(("data:", "#")):
            return mo.group(0)
        target = (base / ref).resolve()
        if ASSETS_DIR.resolve() not in target.parents or not target.is_file():
            raise OfflineError(f"{rel}: url({ref}) is not a vendored file")
        return f"url({_data_uri(target)})"

    return "<style>\n" + _CSS_URL.sub(repl, css) + "\n</style>"


def render_html(
    m: folium.Map,
    *,
    mode: Literal["served", "inline"] = "inline",
    static_prefix: str = STATIC_PREFIX,
    check: bool = True,
) -> str:
    """The page of map ``m``: assets served from ``static_prefix`` or inlined.

    Raises :class:`OfflineError` when ``check`` and the page references a host other than
    the app and the map's tile URLs (e.g. a folium plugin that still points at a CDN).
    """
    html = m.get_root().render()
    if mode == "inline":
        html = _SCRIPT.sub(lambda mo: f'<script src="{_data_uri(asset_path(mo.group(1)))}"></script>',
                           html)
        html = _LINK.sub(lambda mo: _inline_css(mo.group(1)), html)
    elif mode == "served":
        if static_prefix != STATIC_PREFIX:
            prefix = static_prefix.rstrip("/")
            html = _SCRIPT.sub(lambda mo: f'<script src="{prefix}/{mo.group(1)}"></script>', html)
            html = _LINK.sub(lambda mo: f'<link rel="stylesheet" href="{prefix}/{mo.group(1)}"/>',
                             html)
    else:
        raise ValueError(f"unknown mode {mode!r}; expected 'served' or 'inline'")
    if check:
        bad = external_urls(html, tile_urls(m))
        if bad:
            raise OfflineError(
                f"map page references {len(bad)} external URL(s), e.g. {bad[0]!r}; vendor the "
                "asset under maps/assets/ or drop the element")
    return html
