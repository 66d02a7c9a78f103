"""Zone hours and line-in-zone tests with exact answers."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, box

from geo.errors import RuleError
from geo.zones import (
    edges_in_zones,
    hours_overlap,
    parse_hours,
    zone_label,
    zones_active,
    zones_at_points,
)

CRS = "EPSG:4548"


def test_parse_two_windows():
    h = parse_hours("07:00-09:00;17:00-19:00")
    assert h.intervals == ((420, 540), (1020, 1140))
    assert h.text == "07:00-09:00;17:00-19:00"
    assert not h.always


@pytest.mark.parametrize("text", ["", None, "00:00-24:00", " ; ", "00:00-00:00"[:0]])
def test_always(text):
    h = parse_hours(text)
    assert h.always and h.describe() == "00:00-24:00"
    assert h.active(time(3, 0)) and h.active(time(23, 59))


def test_boundary_minutes_are_half_open():
    h = parse_hours("07:00-09:00;17:00-19:00")
    day = datetime(2024, 5, 6)
    assert not h.active(day.replace(hour=6, minute=59))
    assert h.active(day.replace(hour=7, minute=0))
    assert h.active(day.replace(hour=8, minute=59))
    assert not h.active(day.replace(hour=9, minute=0))
    assert h.active(time(17, 0)) and not h.active(time(19, 0))


def test_overnight_window():
    h = parse_hours("22:00-06:00")
    assert h.intervals == ((0, 360), (1320, 1440))
    assert h.active(time(22, 0)) and h.active(time(0, 0)) and h.active(time(5, 59))
    assert not h.active(time(6, 0)) and not h.active(time(21, 59)) and not h.active(time(12, 0))


def test_timezone_aware_reads_wall_clock():
    h = parse_hours("07:00-09:00")
    at = datetime(2024, 5, 6, 8, 30, tzinfo=timezone(timedelta(hours=8)))
    assert h.active(at)


def test_other_separators_and_24():
    assert parse_hours("7:00～9:00，17:00至24:00").intervals == ((420, 540), (1020, 1440))


@pytest.mark.parametrize("bad", ["7-9", "25:00-26:00", "07:60-08:00", "08:00-08:00", "24:30-01:00"])
def test_bad_hours(bad):
    with pytest.raises(RuleError, match="hours"):
        parse_hours(bad)


def test_overlap():
    assert hours_overlap("07:00-09:00", "08:59-10:00")
    assert not hours_overlap("07:00-09:00", "09:00-10:00")
    assert hours_overlap("22:00-06:00", "05:00-05:30")
    assert hours_overlap("", "12:00-12:01")
    assert not hours_overlap("22:00-06:00", "06:00-22:00")


def test_zones_active_and_label():
    zones = pd.DataFrame({"id": ["Z-01", "Z-02", "Z-03"], "name": ["水源地", None, "学校"],
                          "rule": ["forbidden", "permit", "avoid"],
                          "hours": ["", "07:00-09:00", "22:00-06:00"], "penalty": [None, None, 3.0]})
    assert zones_active(zones, time(8, 0)).tolist() == [True, True, False]
    assert zones_active(zones, time(9, 0)).tolist() == [True, False, False]
    assert zones_active(zones, None).tolist() == [True, True, True]
    assert zone_label(zones.iloc[0]) == "Z-01 (水源地) forbidden 00:00-24:00"
    assert zone_label(zones.iloc[1]) == "Z-02 permit 07:00-09:00"
    assert zone_label(zones.iloc[2]) == "Z-03 (学校) avoid 22:00-06:00 ×3"


def test_line_wholly_inside_counts_touching_does_not():
    zones = gpd.GeoDataFrame({"id": ["Z"]}, geometry=[box(100, -50, 300, 50)], crs=CRS)
    lines = gpd.GeoSeries([
        LineString([(150, 0), (250, 0)]),   # wholly inside, no boundary crossing
        LineString([(0, 0), (100, 0)]),     # ends at the boundary: touches only
        LineString([(50, 0), (150, 0)]),    # crosses the boundary: 50 m inside
        LineString([(0, 100), (400, 100)]), # outside
        LineString([(100, -100), (100, 100)]),  # runs along the boundary: 100 m on it
    ], crs=CRS)
    got = edges_in_zones(lines, zones)
    assert got["line"].tolist() == [0, 2, 4]
    assert got["zone"].tolist() == [0, 0, 0]
    assert got["overlap_m"].tolist() == pytest.approx([100.0, 50.0, 100.0])
    got = edges_in_zones(lines, zones, min_overlap_m=60)
    assert got["line"].tolist() == [0, 4]


def test_points_in_zones():
    zones = gpd.GeoDataFrame({"id": ["A", "B"]}, geometry=[box(0, 0, 10, 10), box(5, 5, 20, 20)],
                             crs=CRS)
    got = zones_at_points([Point(1, 1), Point(7, 7), Point(50, 50), Point(10, 0)], zones)
    assert [g.tolist() for g in got] == [[0], [0, 1], [], [0]]


def test_crs_mismatch():
    zones = gpd.GeoDataFrame({"id": ["Z"]}, geometry=[box(0, 0, 1, 1)], crs=CRS)
    with pytest.raises(ValueError, match="one CRS"):
        edges_in_zones(gpd.GeoSeries([LineString([(0, 0), (1, 1)])], crs="EPSG:4547"), zones)
