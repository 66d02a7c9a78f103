"""Linear referencing along pipelines: chainage (里程), stations (桩号 K12+345.6), pieces.

Chainage is metres along the centre line from its start, measured in the analysis CRS
(projected, metres). A MultiLineString is referenced as its parts chained end to start: the
parts are ordered and oriented greedily by nearest end points, a gap between consecutive parts
is *reported* (:class:`Gap`) and is not counted in the chainage — the pipe is not silently
joined across it.

Example
-------
>>> from shapely import LineString
>>> ref = line_reference(LineString([(0, 0), (1000, 0)]))
>>> float(chainage(ref, [Point(250, 3)])[0]), format_station(12345.6)
(250.0, 'K12+345.6')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.ops
from shapely.geometry import LineString, MultiLineString, Point
from shapely.geometry.base import BaseGeometry

from geo.findings import format_station

__all__ = [
    "Gap",
    "LineRef",
    "Pieces",
    "chainage",
    "chainage_near",
    "chainage_range",
    "cover_max",
    "format_station",
    "line_reference",
    "line_references",
    "merge_intervals",
    "pieces",
    "point_at",
    "substring",
]


@dataclass(frozen=True)
class Gap:
    """A gap between two consecutive parts of a MultiLineString.

    ``chainage_m`` is where the gap sits (end of the part before it); ``gap_m`` its length;
    ``after_part`` the index (in the ordered parts) of the part before it.
    """

    after_part: int
    chainage_m: float
    gap_m: float
    from_xy: tuple[float, float]
    to_xy: tuple[float, float]


@dataclass(frozen=True)
class LineRef:
    """A centre line ready for linear referencing.

    ``parts`` are ordered and oriented; ``starts[i]`` is the chainage at the start of part i;
    ``length_m`` the total pipe length (gaps excluded).
    """

    parts: tuple[LineString, ...]
    starts: np.ndarray
    length_m: float
    gaps: tuple[Gap, ...]

    @property
    def ends(self) -> np.ndarray:
        return self.starts + np.array([p.length for p in self.parts])


def _endpoints(line: LineString) -> tuple[np.ndarray, np.ndarray]:
    c = shapely.get_coordinates(line)
    return c[0], c[-1]


def _order_parts(parts: list[LineString]) -> list[LineString]:
    """Chain parts greedily: start with the first, then repeatedly attach (append or prepend,
    reversing when needed) the unused part with the nearest end point."""
    seq = [parts[0]]
    unused = list(range(1, len(parts)))
    ends = [_endpoints(p) for p in parts]
    head, tail = ends[0]
    while unused:
        best: tuple[float, int, int, bool] | None = None  # (dist, pos in unused, side, reverse)
        for k, i in enumerate(unused):
            s, e = ends[i]
            options = (
                (float(np.hypot(*(s - tail))), 1, False),  # append as is
                (float(np.hypot(*(e - tail))), 1, True),  # append reversed
                (float(np.hypot(*(e - head))), 0, False),  # prepend as is
                (float(np.hypot(*(s - head))), 0, True),  # prepend reversed
            )
            for d, side, rev in options:
                if best is None or d < best[0]:
                    best = (d, k, side, rev)
        assert best is not None
        _, k, side, rev = best
        i = unused.pop(k)
        part = parts[i].reverse() if rev else parts[i]
        s, e = _endpoints(part)
        if side == 1:
            seq.append(part)
            tail = e
        else:
            seq.insert(0, part)
            head = s
    return seq


def line_reference(geom: BaseGeometry, *, gap_tolerance_m: float = 0.01) -> LineRef:
    """Prepare a LineString / MultiLineString (projected, metres) for linear referencing.

    Parts of a MultiLineString are chained (ordered, oriented) by nearest end points starting
    from the first part; consecutive parts further apart than ``gap_tolerance_m`` are reported
    as :class:`Gap` s. A LineString keeps its direction.
    """
    if geom is None or geom.is_empty:
        raise ValueError("cannot reference an empty line")
    if isinstance(geom, LineString):
        parts = [geom]
    elif isinstance(geom, MultiLineString):
        parts = [p for p in geom.geoms if not p.is_empty and p.length > 0]
        if not parts:
            raise ValueError("cannot reference a MultiLineString of zero length")
        parts = _order_parts(parts)
    else:
        raise ValueError(f"expected a LineString or MultiLineString, got {geom.geom_type}")
    lengths = np.array([p.length for p in parts])
    starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    gaps = []
    for i in range(len(parts) - 1):
        _, e = _endpoints(parts[i])
        s, _ = _endpoints(parts[i + 1])
        d = float(np.hypot(*(s - e)))
        if d > gap_tolerance_m:
            gaps.append(Gap(i, float(starts[i] + lengths[i]), d, (float(e[0]), float(e[1])),
                            (float(s[0]), float(s[1]))))
    return LineRef(tuple(parts), starts, float(lengths.sum()), tuple(gaps))


def line_references(geoms: Sequence[BaseGeometry] | np.ndarray, *,
                    gap_tolerance_m: float = 0.01) -> list[LineRef]:
    """:func:`line_reference` of many lines; LineStrings (most networks) in bulk."""
    g = np.asarray(geoms, dtype=object)
    simple = (shapely.get_type_id(g) == 1) & ~shapely.is_empty(g)
    length = shapely.length(g)
    zero = np.zeros(1)
    return [LineRef((geom,), zero, float(ln), ()) if ok
            else line_reference(geom, gap_tolerance_m=gap_tolerance_m)
            for geom, ok, ln in zip(g.tolist(), simple.tolist(), length.tolist(), strict=True)]


def _nearest_part(ref: LineRef, geoms: np.ndarray) -> np.ndarray:
    if len(ref.parts) == 1:
        return np.zeros(len(geoms), dtype=np.intp)
    d = np.stack([shapely.distance(geoms, p) for p in ref.parts], axis=1)
    return np.argmin(d, axis=1)


def chainage(ref: LineRef, geoms: Sequence[BaseGeometry] | np.ndarray) -> np.ndarray:
    """Chainage (m) of the point of the line nearest to each geometry.

    For a footprint crossing the line this is a point where it crosses.
    """
    g = np.asarray(geoms, dtype=object)
    if g.size == 0:
        return np.zeros(0)
    part = _nearest_part(ref, g)
    out = np.empty(len(g))
    for i, line in enumerate(ref.parts):
        sel = part == i
        if not sel.any():
            continue
        near = shapely.get_point(shapely.shortest_line(g[sel], line), 1)
        out[sel] = ref.starts[i] + shapely.line_locate_point(line, near)
    return out


def chainage_range(
    ref: LineRef, geoms: Sequence[BaseGeometry] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Chainage extent (from, to) of each geometry: min/max chainage of its vertices projected
    onto the line (the stretch of line the footprint lies alongside)."""
    g = np.asarray(geoms, dtype=object)
    if g.size == 0:
        return np.zeros(0), np.zeros(0)
    xy, idx = shapely.get_coordinates(g, return_index=True)
    pts = shapely.points(xy)
    ch = chainage(ref, pts)
    lo = np.full(len(g), np.inf)
    hi = np.full(len(g), -np.inf)
    np.minimum.at(lo, idx, ch)
    np.maximum.at(hi, idx, ch)
    return lo, hi


def point_at(ref: LineRef, chainage_m: float | np.ndarray) -> np.ndarray:
    """Point(s) at the given chainage(s); clipped to [0, length]."""
    c = np.clip(np.atleast_1d(np.asarray(chainage_m, dtype=float)), 0.0, ref.length_m)
    part = np.clip(np.searchsorted(ref.starts, c, side="right") - 1, 0, len(ref.parts) - 1)
    out = np.empty(len(c), dtype=object)
    for i, line in enumerate(ref.parts):
        sel = part == i
        if sel.any():
            out[sel] = shapely.line_interpolate_point(line, c[sel] - ref.starts[i])
    return out


def substring(ref: LineRef, from_m: float, to_m: float) -> BaseGeometry:
    """The centre line between two chainages (a MultiLineString when it spans a gap)."""
    lo, hi = sorted((max(0.0, float(from_m)), min(ref.length_m, float(to_m))))
    pieces_ = []
    for line, s in zip(ref.parts, ref.starts, strict=True):
        e = s + line.length
        if e < lo or s > hi:
            continue
        a, b = max(lo, s) - s, min(hi, e) - s
        piece = shapely.ops.substring(line, a, b)
        if isinstance(piece, Point):
            continue
        pieces_.append(piece)
    if not pieces_:
        return LineString()
    if len(pieces_) == 1:
        return pieces_[0]
    return MultiLineString(pieces_)


@dataclass(frozen=True)
class Pieces:
    """Centre lines cut into short straight pieces for spatial indexing.

    ``line[i]`` is the index of the source line of piece i, ``start_m[i]`` its chainage at the
    piece start (in that line's :class:`LineRef`), ``geoms[i]`` a 2-point LineString.
    """

    geoms: np.ndarray
    line: np.ndarray
    start_m: np.ndarray


def pieces(refs: Sequence[LineRef], *, max_length_m: float = 200.0) -> Pieces:
    """Cut referenced lines into straight pieces no longer than ``max_length_m`` (like
    ``ST_Subdivide``: a long line has a huge bounding box; short pieces index tightly).

    Vectorised: every vertex-to-vertex segment is split into ceil(len / max_length_m) equal
    pieces. Zero-length segments are dropped. The union of the pieces is the line.
    """
    if max_length_m <= 0:
        raise ValueError(f"max_length_m is {max_length_m}; expected a length > 0")
    parts = [p for ref in refs for p in ref.parts]
    if not parts:
        return Pieces(np.empty(0, dtype=object), np.empty(0, dtype=np.intp), np.empty(0))
    part_line = np.repeat(np.arange(len(refs)), [len(ref.parts) for ref in refs])
    part_start = np.concatenate([ref.starts for ref in refs])
    xy, pi = shapely.get_coordinates(np.asarray(parts, dtype=object), return_index=True)
    same = pi[1:] == pi[:-1]
    a, b, sp = xy[:-1][same], xy[1:][same], pi[1:][same]
    ln = np.hypot(*(b - a).T)
    # chainage of each segment start: the part's start plus the lengths before it in the part
    cum = np.cumsum(ln) - ln
    first = np.r_[True, sp[1:] != sp[:-1]]
    cum -= np.maximum.accumulate(np.where(first, cum, -np.inf))
    keep = ln > 0
    a, b = a[keep], b[keep]
    start = (part_start[sp] + cum)[keep]
    line = part_line[sp][keep]
    ln = np.hypot(*(b - a).T)
    k = np.maximum(1, np.ceil(ln / max_length_m).astype(np.intp))
    seg = np.repeat(np.arange(len(a)), k)
    j = np.arange(len(seg)) - np.repeat(np.cumsum(k) - k, k)
    t0 = (j / k[seg])[:, None]
    t1 = ((j + 1) / k[seg])[:, None]
    d = (b - a)[seg]
    p0 = a[seg] + t0 * d
    p1 = np.where(((j + 1) == k[seg])[:, None], b[seg], a[seg] + t1 * d)
    coords = np.stack([p0, p1], axis=1)
    geoms = shapely.linestrings(coords)
    return Pieces(geoms, line[seg], start[seg] + t0[:, 0] * ln[seg])


def _seg_locate(
    px: np.ndarray, py: np.ndarray, ax: np.ndarray, ay: np.ndarray, dx: np.ndarray,
    dy: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points (px, py) to segments from (ax, ay) along (dx, dy) (non-zero
    length; 1-d arrays) and the fraction (0..1) along each segment of its point nearest to
    the point."""
    ux, uy = px - ax, py - ay
    t = (ux * dx + uy * dy) / (dx * dx + dy * dy)
    np.clip(t, 0.0, 1.0, out=t)
    ux -= t * dx
    uy -= t * dy
    return np.hypot(ux, uy), t


def _nearest_chainage(
    pcs: Pieces, px: np.ndarray, py: np.ndarray, line: np.ndarray, piece: np.ndarray,
    seg: tuple[np.ndarray, ...], tree: shapely.STRtree | None,
) -> np.ndarray:
    """Chainage of the point of line ``line[i]`` nearest to (px[i], py[i]), where piece
    ``piece[i]`` of that line bounds how far it can be: the pieces of that line within that
    distance of the point are all the candidates (one tree query per point)."""
    ax, ay, dx, dy, plen = seg
    m = len(px)
    r = _seg_locate(px, py, ax[piece], ay[piece], dx[piece], dy[piece])[0]
    r += 1e-6 + 1e-9 * np.maximum(np.abs(px), np.abs(py))
    if tree is None:
        tree = shapely.STRtree(pcs.geoms)
    # a 2-point line is the cheapest geometry with this envelope (the query tests envelopes)
    diag = np.stack([np.c_[px - r, py - r], np.c_[px + r, py + r]], axis=1)
    q, cand = tree.query(shapely.linestrings(diag))
    keep = pcs.line[cand] == line[q]
    q, cand = q[keep], cand[keep]
    if len(q) > 1 and (q[1:] < q[:-1]).any():
        o = np.argsort(q, kind="stable")
        q, cand = q[o], cand[o]
    starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
    if len(starts) != m:
        raise ValueError("chainage_near: a footprint's piece is not near it (wrong piece index?)")
    d, t = _seg_locate(px[q], py[q], ax[cand], ay[cand], dx[cand], dy[cand])
    ch = pcs.start_m[cand] + t * plen[cand]
    # per point: the nearest, and the first along the line on ties
    dmin = np.minimum.reduceat(d, starts)
    return np.minimum.reduceat(np.where(d <= dmin[q] + _TIE_M, ch, np.inf), starts)


# Nearer by less than this (m) is a tie: the point first along the line is taken.
_TIE_M = 1e-9


def chainage_near(
    pcs: Pieces, geoms: np.ndarray, line: np.ndarray, piece: np.ndarray, *,
    tree: shapely.STRtree | None = None,
    near: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each footprint ``geoms[k]`` lies along line ``line[k]``, found on ``piece[k]``
    (an index into ``pcs``; any piece of that line near the footprint will do).

    Returns (centroid chainage, from, to): the chainage of the point of the line nearest to
    the footprint's centroid, and the min / max chainage of the points of the line nearest
    to its vertices — the same numbers as :func:`chainage` and :func:`chainage_range`
    against the whole line, computed from the pieces near the footprint only.

    Every vertex is referenced to the nearest point of the *whole line*, not of the piece
    the pair was found on: a footprint beside a bend, a piece boundary or a line that
    doubles back gets the range of the stretches its vertices are nearest to. Where two
    points of the line are equally near (within 1e-9 m), the first along the line counts.
    Exact and vectorised: the piece the pair was found on bounds how far the nearest point
    of the line can be from each vertex (and from the centroid, inside their hull), so the
    pieces of that line within that bound of the footprint are all the candidates.

    ``near`` = (footprint k, piece, within_m) can hand over pieces already known: every
    piece of line[k] within ``within_m[k]`` of footprint k (the pairs a distance search
    kept). A point whose nearest among them is within ``within_m[k]`` has its answer
    there (the line's nearest piece to it is that close to the footprint, so among them);
    only the other points are looked up in the tree.
    """
    g = np.asarray(geoms, dtype=object)
    n = len(g)
    if n == 0:
        e = np.zeros(0)
        return e, e, e
    line = np.asarray(line, dtype=np.intp)
    piece = np.asarray(piece, dtype=np.intp)
    xy, owner = shapely.get_coordinates(g, return_index=True)
    cen = shapely.get_coordinates(shapely.centroid(g))
    nv = np.bincount(owner, minlength=n)
    if len(cen) != n or nv.min() == 0:
        raise ValueError("chainage_near: every footprint needs a non-empty geometry")
    # a ring's closing vertex repeats its first: one point fewer per footprint
    voff = np.cumsum(nv) - nv
    again = (np.arange(len(xy)) != voff[owner]) & (xy == xy[voff[owner]]).all(axis=1)
    xy, owner = xy[~again], owner[~again]
    nv = np.bincount(owner, minlength=n)
    voff = np.cumsum(nv) - nv
    # points grouped by footprint: its vertices, then its centroid
    npt = nv + 1
    off = np.cumsum(npt) - npt
    m = len(xy) + n
    px, py, own = np.empty(m), np.empty(m), np.empty(m, dtype=np.intp)
    vpos = off[owner] + np.arange(len(xy)) - voff[owner]
    cpos = off + nv
    px[vpos], py[vpos], own[vpos] = xy[:, 0], xy[:, 1], owner
    px[cpos], py[cpos], own[cpos] = cen[:, 0], cen[:, 1], np.arange(n)
    e = shapely.get_coordinates(pcs.geoms).reshape(-1, 4)
    ax, ay, dx, dy = e[:, 0], e[:, 1], e[:, 2] - e[:, 0], e[:, 3] - e[:, 1]
    plen = np.hypot(dx, dy)
    best = np.full(m, np.nan)
    todo = np.arange(m)
    if near is not None:
        nk, npc, within = (np.asarray(v) for v in near)
        o = np.lexsort((npc, nk))
        nk, npc = nk[o], npc[o]
        nc = np.bincount(nk, minlength=n)
        coff = np.cumsum(nc) - nc
        # every (point, known piece of its footprint), point-major
        per = nc[own]
        pt = np.repeat(np.arange(m), per)
        w = np.arange(len(pt)) - np.repeat(np.cumsum(per) - per, per)
        pc = npc[coff[own[pt]] + w]
        d, t = _seg_locate(px[pt], py[pt], ax[pc], ay[pc], dx[pc], dy[pc])
        ch = pcs.start_m[pc] + t * plen[pc]
        has = per > 0
        starts = (np.cumsum(per) - per)[has]
        dmin = np.full(m, np.inf)
        dmin[has] = np.minimum.reduceat(d, starts)
        first = np.full(m, np.inf)
        first[has] = np.minimum.reduceat(np.where(d <= dmin[pt] + _TIE_M, ch, np.inf), starts)
        done = dmin <= np.asarray(within, dtype=float)[own] - 1e-6
        best[done] = first[done]
        todo = np.flatnonzero(~done)
    if len(todo):
        best[todo] = _nearest_chainage(pcs, px[todo], py[todo], line[own[todo]],
                                       piece[own[todo]], (ax, ay, dx, dy, plen), tree)
    mid = best[cpos]
    is_cen = np.zeros(m, dtype=bool)
    is_cen[cpos] = True
    lo = np.minimum.reduceat(np.where(is_cen, np.inf, best), off)
    hi = np.maximum.reduceat(np.where(is_cen, -np.inf, best), off)
    return mid, lo, hi


# --- interval algebra along the chainage -----------------------------------------------------
def cover_max(a: np.ndarray, b: np.ndarray, key: np.ndarray, m: int) -> np.ndarray:
    """For m cells and ranges [a, b) of cells with integer ``key`` >= 0: the max key covering
    each cell, -1 where none does. Vectorised: each range is written as two power-of-two
    blocks of a sparse table, which is then pushed down level by level (O((n + m) log m))."""
    levels = max(1, int(np.ceil(np.log2(max(m, 1)))) + 1)
    table = np.full((levels, m), -1, dtype=np.int64)
    a, b, key = np.asarray(a), np.asarray(b), np.asarray(key, dtype=np.int64)
    ok = b > a
    a, b, key = a[ok], b[ok], key[ok]
    lvl = np.floor(np.log2(np.maximum(b - a, 1))).astype(np.intp)
    np.maximum.at(table, (lvl, a), key)
    np.maximum.at(table, (lvl, b - (1 << lvl)), key)
    for j in range(levels - 1, 0, -1):
        half = 1 << (j - 1)
        row = table[j]
        np.maximum(table[j - 1], row, out=table[j - 1])
        np.maximum(table[j - 1][half:], row[: m - half], out=table[j - 1][half:])
    return table[0]


def merge_intervals(
    group: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, gap_m: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge overlapping intervals (or closer than ``gap_m``) within each integer group.

    Returns (group, lo, hi, label) where ``label[i]`` is the merged interval of input i.
    """
    group = np.asarray(group, dtype=np.int64)
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    if len(lo) == 0:
        e = np.empty(0)
        return group[:0], e, e, np.empty(0, dtype=np.intp)
    order = np.lexsort((lo, group))
    g, a, z = group[order], lo[order], hi[order]
    span = float(np.nanmax(np.abs(np.r_[a, z]))) * 2 + gap_m + 1.0
    offset = (g - g.min()) * span
    run = np.maximum.accumulate(z + offset) - offset
    new = np.r_[True, (g[1:] != g[:-1]) | (a[1:] > run[:-1] + gap_m)]
    lab = np.cumsum(new) - 1
    n = lab[-1] + 1
    out_lo = np.full(n, np.inf)
    out_hi = np.full(n, -np.inf)
    np.minimum.at(out_lo, lab, a)
    np.maximum.at(out_hi, lab, z)
    out_g = g[new]
    label = np.empty(len(lo), dtype=np.intp)
    label[order] = lab
    return out_g, out_lo, out_hi, label
