"""Hazmat restricted zones: opening hours and which lines lie in which zone.

Hours are daily windows ``"HH:MM-HH:MM"`` joined by ``;`` (or ``,``), e.g.
``"07:00-09:00;17:00-19:00"``. A window is half-open — active from its start minute up to,
not including, its end minute — so a zone ``07:00-09:00`` is on at 07:00 and off at 09:00.
A window whose end is before its start runs overnight (``22:00-06:00``); ``00:00-24:00``
and an empty text mean always. Times are local clock times; a timezone-aware datetime is
read by its own wall clock.

A line is *in* a zone when any stretch of it lies in the closed polygon — interior
included, not only boundary crossings (Valhalla's ``exclude_polygons`` only drops edges that
cross a boundary, so a road wholly inside a zone would stay usable). A line that only
touches a zone at a point (a road ending at the boundary) is not in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.crs import require_projected
from geo.errors import RuleError

__all__ = [
    "ZONE_RULES",
    "Hours",
    "edges_in_zones",
    "hours_overlap",
    "parse_hours",
    "zone_label",
    "zones_active",
    "zones_at_points",
]

ZONE_RULES = ("forbidden", "permit", "avoid")
_DAY = 1440
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*(?:-|–|—|~|～|至|to)\s*(\d{1,2}):(\d{2})\s*$")
_SPLIT = re.compile(r"[;,；，、]")


@dataclass(frozen=True)
class Hours:
    """Daily opening windows of a zone.

    ``text`` is the normalised text (``"07:00-09:00;17:00-19:00"``, ``""`` = always);
    ``intervals`` the half-open minute intervals within one day, overnight windows split at
    midnight, sorted and merged.
    """

    text: str
    intervals: tuple[tuple[int, int], ...]

    @property
    def always(self) -> bool:
        return self.intervals == ((0, _DAY),)

    def active(self, at: datetime | time | None) -> bool:
        """Whether the zone is on at ``at`` (``None`` = at some time of day → any window)."""
        if at is None:
            return bool(self.intervals)
        minute = at.hour * 60 + at.minute
        return any(a <= minute < b for a, b in self.intervals)

    def describe(self) -> str:
        """``"00:00-24:00"`` for always, else the windows."""
        return "00:00-24:00" if self.always else self.text

    def __str__(self) -> str:
        return self.describe()


def _merge(intervals: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def parse_hours(text: str | None) -> Hours:
    """Parse ``"07:00-09:00;17:00-19:00"`` / ``"22:00-06:00"`` / ``""`` into :class:`Hours`.

    Raises
    ------
    RuleError
        For a window that is not ``HH:MM-HH:MM`` with hours 0–24 and minutes 0–59, or a
        zero-length window.
    """
    if text is None or (isinstance(text, float) and np.isnan(text)):
        text = ""
    raw = str(text).strip()
    if not raw:
        return Hours("", ((0, _DAY),))
    intervals: list[tuple[int, int]] = []
    parts: list[str] = []
    for piece in _SPLIT.split(raw):
        if not piece.strip():
            continue
        m = _WINDOW.match(piece)
        if not m:
            raise RuleError(f"hours {raw!r}: window {piece.strip()!r} is not HH:MM-HH:MM; "
                            "expected e.g. '07:00-09:00;17:00-19:00' or '22:00-06:00'")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or (h1 == 24 and m1) or (h2 == 24 and m2):
            raise RuleError(f"hours {raw!r}: window {piece.strip()!r} has an impossible time; "
                            "expected hours 00–24 and minutes 00–59")
        a, b = h1 * 60 + m1, h2 * 60 + m2
        if a == b:
            raise RuleError(f"hours {raw!r}: window {piece.strip()!r} is empty; write "
                            "00:00-24:00 (or nothing) for a zone that is always on")
        a %= _DAY
        if b == 0:
            b = _DAY
        if a < b:
            intervals.append((a, b))
        else:  # overnight
            intervals.append((a, _DAY))
            intervals.append((0, b))
        parts.append(f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}")
    if not parts:
        return Hours("", ((0, _DAY),))
    merged = _merge(intervals)
    return Hours("" if merged == ((0, _DAY),) else ";".join(parts), merged)


def hours_overlap(a: Hours | str | None, b: Hours | str | None) -> bool:
    """Whether two sets of daily windows share at least one minute."""
    ha = a if isinstance(a, Hours) else parse_hours(a)
    hb = b if isinstance(b, Hours) else parse_hours(b)
    return any(x0 < y1 and y0 < x1 for x0, x1 in ha.intervals for y0, y1 in hb.intervals)


def zones_active(zones: pd.DataFrame, at: datetime | time | None) -> np.ndarray:
    """Boolean per zone row: on at ``at`` according to its ``hours`` (``None`` → any time)."""
    hours = zones["hours"] if "hours" in zones.columns else pd.Series([""] * len(zones))
    return np.array([parse_hours(h).active(at) for h in hours], dtype=bool)


def zone_label(zone: Any) -> str:
    """``"Z-03 (水源地) forbidden 00:00-24:00"`` from a zone row (mapping or Series)."""
    get = zone.get if hasattr(zone, "get") else lambda k, d=None: getattr(zone, k, d)
    zid = get("id", "?")
    name = get("name", None)
    rule = get("rule", "?")
    hours = parse_hours(get("hours", "")).describe()
    named = f" ({name})" if isinstance(name, str) and name else ""
    text = f"{zid}{named} {rule} {hours}"
    if rule == "avoid":
        pen = get("penalty", None)
        if pen is not None and not (isinstance(pen, float) and np.isnan(pen)):
            text += f" ×{float(pen):g}"
    return text


def edges_in_zones(
    lines: gpd.GeoSeries | gpd.GeoDataFrame,
    zones: gpd.GeoDataFrame,
    *,
    min_overlap_m: float = 0.0,
) -> pd.DataFrame:
    """Every (line, zone) pair where the line has a stretch in the zone.

    Parameters
    ----------
    lines, zones
        Projected, metres, same CRS.
    min_overlap_m
        A pair counts when the length of line ∩ zone exceeds this (default 0: any stretch;
        a line merely touching the zone at a point does not count).

    Returns
    -------
    DataFrame
        Columns ``line`` and ``zone`` (row positions) and ``overlap_m``, sorted by line, zone.
    """
    require_projected(lines, "lines")
    require_projected(zones, "zones")
    if not lines.crs.equals(zones.crs):
        raise ValueError(f"lines are in {lines.crs.to_string()} but zones in "
                         f"{zones.crs.to_string()}; project both to one CRS")
    lg = np.asarray(lines.geometry.values if isinstance(lines, gpd.GeoDataFrame)
                    else lines.values, dtype=object)
    zg = np.asarray(zones.geometry.values, dtype=object)
    if len(lg) == 0 or len(zg) == 0:
        return pd.DataFrame({"line": np.zeros(0, np.int64), "zone": np.zeros(0, np.int64),
                             "overlap_m": np.zeros(0)})
    zi, li = shapely.STRtree(lg).query(zg, predicate="intersects")
    # whole line inside: overlap = its length without computing the intersection
    inside = shapely.covers(zg[zi], lg[li])
    overlap = np.where(inside, shapely.length(lg[li]), 0.0)
    todo = ~inside
    if todo.any():
        overlap[todo] = shapely.length(shapely.intersection(lg[li[todo]], zg[zi[todo]]))
    keep = overlap > max(min_overlap_m, 1e-9)
    out = pd.DataFrame({"line": li[keep].astype(np.int64), "zone": zi[keep].astype(np.int64),
                        "overlap_m": overlap[keep]})
    return out.sort_values(["line", "zone"], kind="stable").reset_index(drop=True)


def zones_at_points(points: Sequence[Any] | np.ndarray | gpd.GeoSeries,
                    zones: gpd.GeoDataFrame) -> list[np.ndarray]:
    """Per point, the zone row positions whose closed polygon contains it (sorted)."""
    pts = np.asarray(points.values if isinstance(points, gpd.GeoSeries) else points, dtype=object)
    zg = np.asarray(zones.geometry.values, dtype=object)
    out: list[list[int]] = [[] for _ in range(len(pts))]
    if len(pts) and len(zg):
        pi, zi = shapely.STRtree(zg).query(pts, predicate="intersects")
        for p, z in zip(pi, zi, strict=True):
            out[int(p)].append(int(z))
    return [np.asarray(sorted(z), dtype=np.int64) for z in out]
