"""The printed public notice of the hazmat routes: a print layout at A4 / A3, PDF and PNG.

Not a screenshot of the web map: the sheet is drawn with matplotlib in the projected CRS of
the data (metres) at a round scale chosen so the map fills its frame, with the title, issuing
authority, notice number, date and validity; the road network with road names, the published
routes with their hours, the restricted zones with their rule and hours (on the map and in a
table); a legend, a north arrow, a metric scale bar (m / km only) and the CRS stated. The PDF
is vector with its text in the text layer (TrueType, ``pdf.fonttype`` 42, the CJK font
embedded), so the title, "N" / "北" and the road names can be searched and extracted.

:func:`render_notice` is pure: it takes GeoDataFrames (one projected CRS) and a
:class:`NoticeInfo` and returns the file's bytes; it reads nothing but the font file.

Example
-------
>>> data = render_notice(roads=roads, routes=routes, zones=zones,   # doctest: +SKIP
...                      info=NoticeInfo(date="2026-12-07"), paper="a4", fmt="pdf")
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo.crs import require_projected
from geo.zones import parse_hours

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FORMATS",
    "ORIENTATIONS",
    "PAPERS",
    "NoticeInfo",
    "Override",
    "find_cjk_font",
    "map_scale",
    "render_notice",
    "scale_bar_length",
]

#: Paper sizes (portrait width, height) in millimetres (ISO 216).
PAPERS: dict[str, tuple[float, float]] = {"a4": (210.0, 297.0), "a3": (297.0, 420.0)}
ORIENTATIONS = ("portrait", "landscape")
FORMATS = ("pdf", "png")
MM = 1 / 25.4  # inches per millimetre

TITLE_ZH = "危险化学品运输车辆通行路线及限行区域公告"
TITLE_EN = "Public notice: hazardous-chemical vehicle routes and restricted zones"
TEXT_ZH = ("危险化学品运输车辆须按本公告公布的路线和时段通行；禁行区域在所示时段内禁止驶入，"
           "凭证通行区域须持公安机关核发的通行证。")
TEXT_EN = ("Hazmat vehicles must keep to the routes and hours published here; forbidden zones "
           "may not be entered during the hours shown; permit zones only with a police permit.")

_RULE = {"forbidden": ("禁行", "forbidden"), "permit": ("凭证通行", "permit only"),
         "avoid": ("建议绕行", "avoid")}
_ZONE_STYLE = {"forbidden": ("#d7301f", "#fc9272"), "permit": ("#e6550d", "#fdd0a2"),
               "avoid": ("#b8a100", "#fff3a0")}
_ROAD_CLASS_RANK = {"expressway": 0, "national": 1, "provincial": 2, "arterial": 3,
                    "collector": 4, "local": 5}
_ROAD_WIDTH_PT = {0: 2.2, 1: 1.9, 2: 1.7, 3: 1.3, 4: 0.9, 5: 0.5}
_ROUTE_COLOURS = ("#1a9850", "#2166ac", "#762a83", "#8c510a", "#01665e", "#c51b7d")
_NICE = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0)


@dataclass(frozen=True)
class Override:
    """A route published although the route check found a critical problem on it."""

    route_id: str
    other_id: str | None
    message_zh: str
    message_en: str
    reason: str


@dataclass(frozen=True)
class NoticeInfo:
    """What the sheet says besides the map. ``date`` and ``valid_until`` are ISO dates in the
    district's calendar; ``notice_no`` None prints 未编号 / "no number"."""

    date: str
    authority: str | None = None
    notice_no: str | None = None
    valid_until: str | None = None
    title_zh: str = TITLE_ZH
    title_en: str = TITLE_EN
    text_zh: str = TEXT_ZH
    text_en: str = TEXT_EN
    check_zh: str | None = None
    check_en: str | None = None
    overrides: tuple[Override, ...] = field(default_factory=tuple)


def find_cjk_font(path: str | os.PathLike[str] | None = None) -> Path:
    """The CJK font file: ``path`` (a setting) when given, else what ``fc-match`` finds for
    WenQuanYi Micro Hei (Debian ``fonts-wqy-microhei``), else its usual place.

    Raises FileNotFoundError naming the package to install or the setting to use.
    """
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"notice font {str(p)!r} does not exist; expected a "
                                    "TrueType/OpenType file (.ttf, .ttc, .otf) with Chinese "
                                    "glyphs, e.g. /usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
        return p
    fc = shutil.which("fc-match")
    if fc:
        try:
            out = subprocess.run([fc, "-f", "%{file}", "WenQuanYi Micro Hei:lang=zh-cn"],
                                 capture_output=True, text=True, timeout=10, check=False)
            cand = Path(out.stdout.strip())
            if out.returncode == 0 and cand.is_file() and "wqy" in cand.name.lower():
                return cand
        except (OSError, subprocess.SubprocessError):
            pass
    for cand in (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
                 Path("/usr/share/fonts/wqy-microhei/wqy-microhei.ttc")):
        if cand.is_file():
            return cand
    raise FileNotFoundError("no CJK font for the printed notice: install Debian's "
                            "fonts-wqy-microhei (apt-get install fonts-wqy-microhei) or set "
                            "RISKMAP_NOTICE_FONT to a font file with Chinese glyphs")


def map_scale(extent_m: tuple[float, float], frame_mm: tuple[float, float]) -> int:
    """The smallest round scale denominator (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 7.5 × 10^k) at
    which a ground extent (width, height in metres) fits a frame (width, height in mm).

    >>> map_scale((8000.0, 9000.0), (190.0, 170.0))
    75000
    """
    need = max(extent_m[0] / (frame_mm[0] / 1000.0), extent_m[1] / (frame_mm[1] / 1000.0), 1.0)
    exp = math.floor(math.log10(need))
    for f in _NICE:
        value = f * 10**exp
        if value >= need * (1 - 1e-9):
            return round(value)
    return int(10 ** (exp + 1))  # pragma: no cover - _NICE ends with 10


def scale_bar_length(max_m: float) -> float:
    """The longest length of 1, 2 or 5 × 10^k metres not over ``max_m``.

    >>> scale_bar_length(1800.0)
    1000.0
    """
    if max_m <= 0:
        raise ValueError(f"scale bar room is {max_m} m; expected > 0")
    exp = math.floor(math.log10(max_m))
    best = 10.0**exp
    for f in (1.0, 2.0, 5.0):
        if f * 10**exp <= max_m:
            best = f * 10**exp
    return best


def _metres(v: float) -> str:
    """``500 m`` / ``1 km`` / ``2.5 km`` (metric only)."""
    if v >= 1000:
        km = v / 1000
        return f"{km:g} km"
    return f"{v:g} m"


def _hours(text: Any) -> str:
    h = parse_hours(text if isinstance(text, str) else "")
    return "全天 00:00-24:00" if h.always else h.describe()


def _hours_en(text: Any) -> str:
    h = parse_hours(text if isinstance(text, str) else "")
    return "all day" if h.always else h.describe()


def _str(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def _wrap(text: str, em: float) -> list[str]:
    """``text`` in lines of at most ``em`` ems (a CJK character 1 em, others 0.55 em),
    broken at spaces or between CJK characters."""
    lines: list[str] = []
    cur, w, last_break = "", 0.0, -1
    for ch in text:
        cw = _em(ch)
        if w + cw > em and cur:
            cut = last_break if last_break > 0 else len(cur)
            lines.append(cur[:cut].rstrip())
            cur = cur[cut:].lstrip()
            w = sum(_em(c) for c in cur)
            last_break = -1
        cur += ch
        w += cw
        if ch == " " or cw == 1.0:
            last_break = len(cur)
    if cur.strip():
        lines.append(cur.strip())
    return lines


def _em(ch: str) -> float:
    return 1.0 if ord(ch) >= 0x2E80 else 0.55


def _fit(text: str, em: float) -> str:
    """``text`` cut to ``em`` ems with an ellipsis (a table cell)."""
    if sum(_em(c) for c in text) <= em:
        return text
    out, w = "", 1.0
    for ch in text:
        if w + _em(ch) > em:
            break
        out += ch
        w += _em(ch)
    return out + "…"


def _crs_label(crs: Any) -> str:
    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"{c.name} (EPSG:{epsg})" if epsg else c.name


# --- layout -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    page: tuple[float, float]  # mm
    header: tuple[float, float, float, float]  # x, y (bottom), w, h in mm
    frame: tuple[float, float, float, float]
    panel: tuple[float, float, float, float]
    footer: tuple[float, float, float, float]
    scale: float  # text scale relative to A4


def _layout(paper: str, orientation: str, n_override: int) -> _Layout:
    w, h = PAPERS[paper]
    if orientation == "landscape":
        w, h = h, w
    k = PAPERS[paper][0] / 210.0  # A3 draws its text √2 larger
    m = 10.0 * k
    warn = (6.0 * n_override + 3.0) * k if n_override else 0.0
    head_h = 27.0 * k + warn
    foot_h = 9.0 * k
    header = (m, h - m - head_h, w - 2 * m, head_h)
    footer = (m, m, w - 2 * m, foot_h)
    top = header[1] - 3.0 * k
    bottom = m + foot_h + 2.0 * k
    if orientation == "portrait":
        panel_h = 62.0 * k
        panel = (m, bottom, w - 2 * m, panel_h)
        frame = (m, bottom + panel_h + 3.0 * k, w - 2 * m, top - (bottom + panel_h + 3.0 * k))
    else:
        panel_w = 88.0 * k
        frame = (m, bottom, w - 2 * m - panel_w - 4.0 * k, top - bottom)
        panel = (m + frame[2] + 4.0 * k, bottom, panel_w, top - bottom)
    return _Layout((w, h), header, frame, panel, footer, k)


def _axes(fig: Figure, page: tuple[float, float], box: tuple[float, float, float, float],
          ) -> Axes:
    x, y, w, h = box
    ax = fig.add_axes((x / page[0], y / page[1], w / page[0], h / page[1]))
    return ax


def _blank(ax: Axes) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_axis_off()


# --- geometry to artists -------------------------------------------------------------------
def _segments(geoms: np.ndarray) -> list[np.ndarray]:
    """Vertex arrays of every line part (a LineCollection's segments)."""
    if not len(geoms):
        return []
    parts = shapely.get_parts(geoms)
    parts = parts[np.isin(shapely.get_type_id(parts), (1, 2))]  # LineString, LinearRing
    if not len(parts):
        return []
    coords, idx = shapely.get_coordinates(parts, return_index=True)
    cuts = np.flatnonzero(np.diff(idx)) + 1
    return list(np.split(coords, cuts))


def _rings(geoms: np.ndarray) -> list[np.ndarray]:
    """Exterior rings of every polygon part (holes are drawn as their own rings)."""
    if not len(geoms):
        return []
    parts = shapely.get_parts(geoms)
    parts = parts[shapely.get_type_id(parts) == 3]  # Polygon
    rings = np.concatenate([shapely.get_exterior_ring(parts),
                            *[shapely.get_interior_ring(parts, i) for i in
                              range(int(shapely.get_num_interior_rings(parts).max(initial=0)))]]
                           ) if len(parts) else np.array([], dtype=object)
    rings = rings[~shapely.is_missing(rings)]
    return _segments(rings.astype(object)) if len(rings) else []


def _extent(routes: gpd.GeoDataFrame, zones: gpd.GeoDataFrame, roads: gpd.GeoDataFrame,
            bbox: Sequence[float] | None) -> tuple[float, float, float, float]:
    if bbox is not None:
        x0, y0, x1, y1 = (float(v) for v in bbox)
    else:
        frames = [g for g in (routes, zones) if len(g)] or [roads]
        b = np.array([g.total_bounds for g in frames if len(g)])
        if not len(b) or not np.isfinite(b).all():
            raise ValueError("nothing to draw: no published route, no restricted zone and no "
                             "road; import them first")
        x0, y0 = b[:, 0].min(), b[:, 1].min()
        x1, y1 = b[:, 2].max(), b[:, 3].max()
        pad = 0.06 * max(x1 - x0, y1 - y0, 200.0)
        x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"map extent {x0, y0, x1, y1} is empty; expected minx < maxx, miny < maxy")
    return x0, y0, x1, y1


def _road_labels(ax: Axes, roads: gpd.GeoDataFrame, view: Any, fs: float, font: Any,
                 avoid: list[Any]) -> list[str]:
    """Label each road name once, on the longest piece of it in view, along the road;
    labels that would overlap a placed one (or the map furniture) are left out."""
    if "name" not in roads.columns or not len(roads):
        return []
    named = roads[roads["name"].map(_str) != ""]
    if not len(named):
        return []
    clipped = shapely.intersection(named.geometry.values, view)
    rank = named.get("road_class", pd.Series("local", index=named.index)).map(
        lambda c: _ROAD_CLASS_RANK.get(_str(c), 5)).to_numpy()
    names = named["name"].map(_str).to_numpy()
    cands: list[tuple[int, float, str, shapely.Geometry]] = []
    for nm in np.unique(names):
        sel = names == nm
        merged = shapely.line_merge(shapely.union_all(clipped[sel]))
        parts = [p for p in shapely.get_parts(merged) if p.geom_type == "LineString"
                 and p.length > 0]
        if not parts:
            continue
        best = max(parts, key=lambda p: p.length)
        cands.append((int(rank[sel].min()), -best.length, str(nm), best))
    cands.sort(key=lambda c: (c[0], c[1]))
    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    placed: list[Any] = list(avoid)
    drawn: list[str] = []
    for rk, neg_len, nm, line in cands:
        length = -neg_len
        for at in (0.5, 0.3, 0.7, 0.15, 0.85):
            t = _label_at(ax, line, length, at, nm, font, fs * (1.15 if rk <= 3 else 1.0))
            ext = t.get_window_extent(renderer)
            if (ext.width * ext.height == 0 or any(ext.overlaps(p) for p in placed)
                    or length * 0.9 < _data_len(ax, ext)):  # overlaps, or longer than the road
                t.remove()
                continue
            placed.append(ext)
            drawn.append(nm)
            break
    return drawn


def _label_at(ax: Axes, line: shapely.LineString, length: float, at: float, name: str,
              font: Any, fs: float) -> Any:
    """A road name centred at ``at`` (share of the length) of ``line``, along it."""
    d = min(20.0, 0.25 * length)
    a = line.interpolate(at * length - d)
    b = line.interpolate(at * length + d)
    mid = line.interpolate(at * length)
    ang = math.degrees(math.atan2(b.y - a.y, b.x - a.x))
    if ang > 90:
        ang -= 180
    elif ang <= -90:
        ang += 180
    return ax.text(mid.x, mid.y, name, fontproperties=font, fontsize=fs, rotation=ang,
                   rotation_mode="anchor", ha="center", va="center", color="#333333",
                   zorder=6, clip_on=True,
                   bbox={"boxstyle": "square,pad=0.08", "fc": "white", "ec": "none",
                         "alpha": 0.75})


def _data_len(ax: Axes, ext: Any) -> float:
    """The longer side of a display box in data units (metres)."""
    inv = ax.transData.inverted()
    (x0, y0), (x1, y1) = inv.transform([[ext.x0, ext.y0], [ext.x1, ext.y1]])
    return float(max(abs(x1 - x0), abs(y1 - y0)))


def _north_arrow(ax: Axes, font: Any, fs: float) -> Any:
    """A north arrow in the top right corner of the map (grid north of the projected CRS)."""
    from matplotlib.patches import Polygon as MplPolygon

    cx, top, h, w = 0.955, 0.975, 0.075, 0.022
    aspect = ax.bbox.height / ax.bbox.width
    w_ax = w * aspect
    left = MplPolygon([(cx, top - 0.018), (cx - w_ax, top - h), (cx, top - h * 0.78)],
                      closed=True, transform=ax.transAxes, fc="black", ec="black", lw=0.6,
                      zorder=9)
    right = MplPolygon([(cx, top - 0.018), (cx + w_ax, top - h), (cx, top - h * 0.78)],
                       closed=True, transform=ax.transAxes, fc="white", ec="black", lw=0.6,
                       zorder=9)
    ax.add_patch(left)
    ax.add_patch(right)
    n = ax.text(cx, top - 0.012, "N", transform=ax.transAxes, ha="center", va="bottom",
                fontsize=fs * 1.5, fontweight="bold", fontproperties=font, zorder=9)
    ax.text(cx, top - h - 0.006, "北", transform=ax.transAxes, ha="center", va="top",
            fontsize=fs * 1.2, fontproperties=font, zorder=9)
    return n


def _scale_bar(ax: Axes, *, width_m: float, font: Any, fs: float) -> float:
    """A metric scale bar (four alternating blocks, labels in m / km) in the bottom left
    corner of the map, on a white box; returns its length in metres."""
    from matplotlib.patches import Rectangle

    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    length = scale_bar_length(0.28 * width_m)
    bx, by = x0 + 0.03 * (x1 - x0), y0 + 0.035 * (y1 - y0)
    bh = 0.011 * (y1 - y0)
    ax.add_patch(Rectangle((bx - 0.012 * (x1 - x0), by - 0.028 * (y1 - y0)),
                           length + 0.05 * (x1 - x0), 0.075 * (y1 - y0), fc="white",
                           ec="#666666", lw=0.4, alpha=0.9, zorder=8))
    for i in range(4):
        ax.add_patch(Rectangle((bx + i * length / 4, by), length / 4, bh,
                               fc="black" if i % 2 == 0 else "white", ec="black", lw=0.5,
                               zorder=9))
    for v in (0.0, length / 2, length):
        ax.text(bx + v, by + bh * 1.5, _metres(v) if v else "0", ha="center", va="bottom",
                fontsize=fs, fontproperties=font, zorder=9)
    return length


def _legend(ax: Axes, zones: gpd.GeoDataFrame, routes: gpd.GeoDataFrame, has_no_roads: bool,
            font: Any, fs: float, *, flagged: bool = False) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    for i, rid in enumerate(routes["id"].map(_str) if len(routes) else []):
        handles.append(Line2D([], [], color=_ROUTE_COLOURS[i % len(_ROUTE_COLOURS)], lw=3.2,
                              label=f"通行路线 Route {rid}"))
    rules = set(zones["rule"].map(_str)) if len(zones) and "rule" in zones.columns else set()
    for rule in ("forbidden", "permit", "avoid"):
        if rule in rules:
            edge, fill = _ZONE_STYLE[rule]
            zh, en = _RULE[rule]
            handles.append(Patch(fc=fill, ec=edge, lw=1.0, alpha=0.8,
                                 label=f"{zh}区域 {en} zone"))
    if flagged:
        handles.append(Line2D([], [], color="#d7191c", lw=2.2, ls=(0, (3, 2)),
                              label="注意：经批准发布的违规路段\nStretch published by override"))
    handles.append(Line2D([], [], color="#9a9a9a", lw=1.4, label="道路 Road"))
    if has_no_roads:
        handles.append(Line2D([], [], color="#6a51a3", lw=1.6, ls=(0, (1, 2)),
                              label="禁止危化品车辆道路 Road closed to hazmat"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 1.0), frameon=False,
              prop=font.copy() if hasattr(font, "copy") else font, fontsize=fs,
              title="图例 Legend", title_fontproperties=font, borderaxespad=0.0,
              handlelength=2.2, labelspacing=0.45)
    leg = ax.get_legend()
    if leg is None:  # pragma: no cover - legend() always sets one
        return
    for t in leg.get_texts():
        t.set_fontsize(fs)
    leg.get_title().set_fontsize(fs * 1.15)
    leg.get_title().set_fontweight("bold")


def _zone_rows(zones: gpd.GeoDataFrame) -> list[tuple[str, str, str, str]]:
    """Zone table rows (ids, name, rule zh/en, hours), zones of one name, rule and hours on
    one row (e.g. the twelve school areas)."""
    if not len(zones):
        return []
    z = zones.assign(_n=zones.get("name", pd.Series("", index=zones.index)).map(_str),
                     _r=zones["rule"].map(_str), _h=zones.get(
                         "hours", pd.Series("", index=zones.index)).map(_str))
    order = {"forbidden": 0, "permit": 1, "avoid": 2}
    rows = []
    for (n, r, h), g in z.groupby(["_n", "_r", "_h"], sort=False):
        ids = sorted(g["id"].map(_str))
        label = ids[0] if len(ids) == 1 else f"{ids[0]}…{ids[-1]}"
        zh, en = _RULE.get(str(r), (str(r), str(r)))
        rows.append((order.get(str(r), 9), label, str(n), f"{zh} {en}",
                     f"{_hours(h)}" if parse_hours(h).always else _hours(h)))
    rows.sort(key=lambda t: (t[0], t[1]))
    return [(a, b, c, d) for _, a, b, c, d in rows]


def _table(ax: Axes, top: float, title: str, header: Sequence[str],
           rows: Sequence[Sequence[str]], cols: Sequence[float], font: Any, fs: float,
           line: float) -> float:
    """Rows of text at column offsets (axes fraction) from ``top`` down; returns the y below."""
    ax.text(0.0, top, title, fontproperties=font, fontsize=fs * 1.15, fontweight="bold",
            va="top", transform=ax.transAxes)
    y = top - line * 1.3
    for x, h in zip(cols, header, strict=True):
        ax.text(x, y, h, fontproperties=font, fontsize=fs * 0.92, color="#555555", va="top",
                transform=ax.transAxes)
    y -= line
    width_pt = ax.bbox.width / ax.figure.dpi * 72.0
    edges = [*cols[1:], 1.0]
    for r in rows:
        for x, x_next, cell in zip(cols, edges, r, strict=True):
            room = (x_next - x) * width_pt / fs - 0.8  # ems, with a gap
            ax.text(x, y, _fit(cell, room), fontproperties=font, fontsize=fs, va="top",
                    transform=ax.transAxes)
        y -= line
    return y - line * 0.4


# --- the sheet ----------------------------------------------------------------------------
def render_notice(
    *,
    roads: gpd.GeoDataFrame,
    routes: gpd.GeoDataFrame,
    zones: gpd.GeoDataFrame,
    info: NoticeInfo,
    paper: str = "a4",
    orientation: str = "portrait",
    fmt: str = "pdf",
    dpi: int = 200,
    font: str | os.PathLike[str] | None = None,
    bbox: Sequence[float] | None = None,
    flagged: gpd.GeoDataFrame | None = None,
) -> bytes:
    """The notice sheet as PDF or PNG bytes.

    Parameters
    ----------
    roads, routes, zones
        Roads (``name``, ``road_class``, ``hazmat``), the routes to publish (``id``,
        ``name``, ``hours``) and the restricted zones (``id``, ``name``, ``rule``,
        ``hours``), all in one projected CRS (metres).
    info
        Title, authority, notice number, date, validity, route-check line, overrides.
    paper, orientation
        ``a4`` / ``a3`` and ``portrait`` / ``landscape``.
    fmt, dpi
        ``pdf`` (vector, text in the text layer) or ``png`` at ``dpi`` (72-600).
    font
        The CJK font file (default: :func:`find_cjk_font`).
    bbox
        Map extent (minx, miny, maxx, maxy) in the data's CRS; default: the routes and
        zones, padded. The frame is filled at the next round scale, so more may show.
    flagged
        Stretches published by override (the blocking findings' lines, same CRS), drawn in
        red dashes and marked 注意 / override on the map and in the legend.
    """
    paper, orientation, fmt = paper.lower(), orientation.lower(), fmt.lower()
    if paper not in PAPERS:
        raise ValueError(f"paper {paper!r}; expected one of {', '.join(PAPERS)}")
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation {orientation!r}; expected portrait or landscape")
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}; expected pdf or png")
    if not 72 <= int(dpi) <= 600:
        raise ValueError(f"dpi {dpi}; expected 72 to 600")
    layers = [("roads", roads), ("routes", routes), ("restricted_zones", zones)]
    if flagged is not None:
        layers.append(("flagged", flagged))
    for what, g in layers:
        require_projected(g, what)
    crs = roads.crs
    for what, g in layers[1:]:
        if not CRS.from_user_input(g.crs).equals(CRS.from_user_input(crs)):
            raise ValueError(f"{what} are in {g.crs.to_string()} but roads in "
                             f"{crs.to_string()}; project all to one CRS")

    import matplotlib as mpl

    mpl.use("agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    fp = FontProperties(fname=str(find_cjk_font(font)))
    lay = _layout(paper, orientation, len(info.overrides))
    k = lay.scale
    fs = 7.0 * k  # body text size (pt)
    rc: dict[str, Any] = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none",
          "font.family": "sans-serif", "axes.unicode_minus": False, "hatch.linewidth": 0.5}
    with mpl.rc_context(rc):  # type: ignore[arg-type]
        fig = Figure(figsize=(lay.page[0] * MM, lay.page[1] * MM), dpi=dpi)
        FigureCanvasAgg(fig)

        # header --------------------------------------------------------------------
        hx = _axes(fig, lay.page, lay.header)
        _blank(hx)
        hh = lay.header[3]
        y = 1.0
        hx.text(0.5, y, info.title_zh, ha="center", va="top", fontproperties=fp,
                fontsize=16 * k, fontweight="bold")
        y -= 9.0 * k / hh
        hx.text(0.5, y, info.title_en, ha="center", va="top", fontproperties=fp,
                fontsize=8.5 * k)
        y -= 6.0 * k / hh
        number = info.notice_no or "未编号 / no number"
        authority = info.authority or "未注明 / not stated"
        valid = info.valid_until or "另行通知前 / until further notice"
        hx.text(0.0, y, f"发布机关 Issued by：{authority}", va="top", fontproperties=fp,
                fontsize=fs * 1.05)
        hx.text(1.0, y, f"编号 Notice No.：{number}", va="top", ha="right", fontproperties=fp,
                fontsize=fs * 1.05)
        y -= 4.6 * k / hh
        hx.text(0.0, y, f"发布日期 Date：{info.date}", va="top", fontproperties=fp,
                fontsize=fs * 1.05)
        hx.text(1.0, y, f"有效期至 Valid until：{valid}", va="top", ha="right",
                fontproperties=fp, fontsize=fs * 1.05)
        y -= 5.0 * k / hh
        for ov in info.overrides:
            hx.text(0.0, y, f"注意：{ov.message_zh}，经批准发布（理由：{ov.reason}）",
                    va="top", fontproperties=fp, fontsize=fs * 1.05, color="#b30000",
                    fontweight="bold")
            y -= 3.2 * k / hh
            hx.text(0.0, y, f"Warning: {ov.message_en}; published by override "
                            f"(reason: {ov.reason})", va="top", fontproperties=fp,
                    fontsize=fs * 0.95, color="#b30000")
            y -= 2.8 * k / hh
        hx.axhline(0.0, color="black", lw=1.2 * k)

        # map -------------------------------------------------------------------------
        fw, fh = lay.frame[2], lay.frame[3]
        ax = _axes(fig, lay.page, lay.frame)
        x0, y0, x1, y1 = _extent(routes, zones, roads, bbox)
        scale = map_scale((x1 - x0, y1 - y0), (fw, fh))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half_w, half_h = fw / 2000.0 * scale, fh / 2000.0 * scale
        ax.set_xlim(cx - half_w, cx + half_w)
        ax.set_ylim(cy - half_h, cy + half_h)
        ax.set_aspect("auto")
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_linewidth(1.0 * k)
        view = shapely.box(cx - half_w, cy - half_h, cx + half_w, cy + half_h)
        ax.set_facecolor("#fbfbf8")

        # zones
        if len(zones):
            for rule in ("avoid", "permit", "forbidden"):
                sel = zones[zones["rule"].map(_str) == rule]
                if not len(sel):
                    continue
                edge, fill = _ZONE_STYLE[rule]
                rings = _rings(sel.geometry.values)
                ax.add_collection(PolyCollection(
                    rings, facecolors=fill, edgecolors=edge, linewidths=0.9 * k, alpha=0.55,
                    hatch="////" if rule == "forbidden" else None, zorder=2))
        # roads
        rd = roads[shapely.intersects(roads.geometry.values, view)] if len(roads) else roads
        if len(rd):
            ranks = rd.get("road_class", pd.Series("local", index=rd.index)).map(
                lambda c: _ROAD_CLASS_RANK.get(_str(c), 5)).to_numpy()
            for rk in sorted(set(ranks.tolist()), reverse=True):
                g = rd.geometry.values[ranks == rk]
                ax.add_collection(LineCollection(
                    _segments(g), colors="#9a9a9a" if rk > 3 else "#7a7a7a",
                    linewidths=_ROAD_WIDTH_PT[rk] * k, capstyle="round", zorder=3))
        has_no = bool(len(rd)) and "hazmat" in rd.columns and bool(
            (rd["hazmat"].map(_str) == "no").any())
        if has_no:
            no = rd[rd["hazmat"].map(_str) == "no"]
            ax.add_collection(LineCollection(_segments(no.geometry.values), colors="#6a51a3",
                                             linewidths=1.6 * k, linestyles=(0, (1, 2)),
                                             zorder=4))
        # routes
        for i, r in enumerate(routes.itertuples(index=False)):
            colour = _ROUTE_COLOURS[i % len(_ROUTE_COLOURS)]
            g = np.array([r.geometry], dtype=object)
            ax.add_collection(LineCollection(_segments(g), colors="white",
                                             linewidths=5.6 * k, zorder=5, capstyle="round"))
            ax.add_collection(LineCollection(_segments(g), colors=colour,
                                             linewidths=3.4 * k, zorder=5, capstyle="round"))
        if flagged is not None and len(flagged):
            segs = _segments(flagged.geometry.values)
            ax.add_collection(LineCollection(segs, colors="#d7191c", linewidths=2.6 * k,
                                             linestyles=(0, (3, 2)), zorder=6.5))
        # furniture first, so road names keep clear of it
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        north = _north_arrow(ax, fp, fs)
        bar = _scale_bar(ax, width_m=2 * half_w, font=fp, fs=fs)
        avoid = [north.get_window_extent(renderer)]
        sb = ax.transAxes.transform([[0.0, 0.0], [0.06 + bar / (2 * half_w), 0.13]])
        from matplotlib.transforms import Bbox

        avoid.append(Bbox(sb))
        ne = ax.transAxes.transform([[0.91, 0.86], [1.0, 1.0]])
        avoid.append(Bbox(ne))
        # route and zone labels
        for i, r in enumerate(routes.itertuples(index=False)):
            geom = shapely.intersection(r.geometry, view)
            if geom.is_empty:
                continue
            parts = [p for p in shapely.get_parts(shapely.line_merge(geom))
                     if p.geom_type == "LineString"]
            if not parts:
                continue
            best = max(parts, key=lambda p: p.length)
            pt = best.interpolate(0.35, normalized=True)
            hours = _hours(getattr(r, "hours", ""))
            t = ax.text(pt.x, pt.y, f"{_str(r.id)}  {hours}", fontproperties=fp,
                        fontsize=fs * 1.1, fontweight="bold",
                        color=_ROUTE_COLOURS[i % len(_ROUTE_COLOURS)], ha="left", va="bottom",
                        zorder=7, clip_on=True,
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white",
                              "ec": _ROUTE_COLOURS[i % len(_ROUTE_COLOURS)], "lw": 0.6})
            avoid.append(t.get_window_extent(renderer))
        if len(zones):
            vis = zones[shapely.intersects(zones.geometry.values, view)]
            pts = shapely.point_on_surface(shapely.intersection(vis.geometry.values, view))
            for z, p in zip(vis.itertuples(index=False), pts, strict=True):
                rule = _str(getattr(z, "rule", ""))
                zh, _en = _RULE.get(rule, (rule, rule))
                hrs = parse_hours(_str(getattr(z, "hours", "")))
                full = f"{_str(z.id)} {zh}" + ("" if hrs.always else f"\n{hrs.describe()}")
                for label in (full, _str(z.id)):
                    t = ax.text(p.x, p.y, label, fontproperties=fp, fontsize=fs * 0.85,
                                color=_ZONE_STYLE.get(rule, ("#333333", ""))[0], ha="center",
                                va="center", zorder=7, clip_on=True, linespacing=1.1,
                                bbox={"boxstyle": "square,pad=0.1", "fc": "white",
                                      "ec": "none", "alpha": 0.6})
                    ext = t.get_window_extent(renderer)
                    if not any(ext.overlaps(b) for b in avoid):
                        avoid.append(ext)
                        break
                    t.remove()
        _road_labels(ax, rd, view, fs * 0.8, fp, avoid)
        ax.text(0.995, 0.004, f"比例尺 Scale 1:{scale:,}".replace(",", " "),
                transform=ax.transAxes, ha="right", va="bottom", fontproperties=fp,
                fontsize=fs * 0.9, zorder=9,
                bbox={"boxstyle": "square,pad=0.2", "fc": "white", "ec": "none",
                      "alpha": 0.85})

        # panel: legend, routes, zones -------------------------------------------------
        px, py, pw, ph = lay.panel
        if orientation == "portrait":
            lw = 0.36 * pw
            leg_ax = _axes(fig, lay.page, (px, py, lw, ph))
            tab_ax = _axes(fig, lay.page, (px + lw, py, pw - lw, ph))
        else:
            lh = 0.36 * ph
            leg_ax = _axes(fig, lay.page, (px, py + ph - lh, pw, lh))
            tab_ax = _axes(fig, lay.page, (px, py, pw, ph - lh))
        _blank(leg_ax)
        _blank(tab_ax)
        _legend(leg_ax, zones, routes, has_no, fp, fs,
                flagged=flagged is not None and bool(len(flagged)))
        line = 3.6 * k / (tab_ax.bbox.height / fig.dpi / MM)  # 3.6 mm per row
        route_rows = [(_str(r.id), _str(getattr(r, "name", "")), _hours(getattr(r, "hours", "")))
                      for r in routes.itertuples(index=False)]
        if not route_rows:
            route_rows = [("—", "无已公布路线 / no published route", "")]
        wide = orientation == "portrait"
        cols = (0.0, 0.14, 0.66) if wide else (0.0, 0.15, 0.58)
        y = _table(tab_ax, 1.0, "通行路线 Published routes", ("编号 ID", "名称 Name",
                   "通行时段 Hours"), route_rows, cols, fp, fs, line)
        zrows = _zone_rows(zones)
        zcols = (0.0, 0.2, 0.47, 0.63) if wide else (0.0, 0.235, 0.46, 0.61)
        y = _table(tab_ax, y, "限行区域 Restricted zones", ("编号 ID", "名称 Name",
                   "规定 Rule", "时段 Hours"), [(a, b, c.split(" ")[0], d) for a, b, c, d in
                                              zrows], zcols, fp, fs, line)
        width_pt = tab_ax.bbox.width / fig.dpi * 72.0
        for txt, size, colour in ((info.text_zh, fs, "black"),
                                  (info.text_en, fs * 0.9, "#333333")):
            for ln in _wrap(txt, width_pt / size):
                tab_ax.text(0.0, y, ln, fontproperties=fp, fontsize=size, va="top",
                            color=colour)
                y -= line * 0.95

        # footer ----------------------------------------------------------------------
        ft = _axes(fig, lay.page, lay.footer)
        _blank(ft)
        ft.axhline(1.0, color="black", lw=0.6 * k)
        ft.text(0.0, 0.68, f"坐标系 CRS：{_crs_label(crs)}；单位 米 metres；上为坐标北 "
                           "grid north up", fontproperties=fp, fontsize=fs * 0.85, va="center")
        if info.check_zh or info.check_en:
            ft.text(0.0, 0.24, " / ".join(x for x in (info.check_zh, info.check_en) if x),
                    fontproperties=fp, fontsize=fs * 0.85, va="center")

        buf = io.BytesIO()
        meta: dict[str, Any] = ({"Title": f"{info.title_zh} {info.title_en}",
                                 "Subject": number, "Author": authority,
                                 "Creator": "riskmap"} if fmt == "pdf" else {})
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta or None)
    return buf.getvalue()
