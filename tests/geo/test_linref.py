"""Linear referencing: chainage, stations, MultiLineString ordering and gaps, pieces."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiLineString, Point, box

from geo.linref import (
    chainage,
    chainage_range,
    format_station,
    line_reference,
    pieces,
    point_at,
    substring,
)

X0, Y0 = 500_000.0, 3_800_000.0


def test_station_format() -> None:
    assert format_station(0) == "K0+000.0"
    assert format_station(12345.6) == "K12+345.6"
    assert format_station(999.96) == "K1+000.0"
    assert format_station(None) is None


def test_chainage_of_points_and_footprints_on_a_bent_line() -> None:
    ref = line_reference(LineString([(X0, Y0), (X0 + 1000, Y0), (X0 + 1000, Y0 + 500)]))
    assert ref.length_m == 1500.0
    got = chainage(ref, [Point(X0 + 250, Y0 + 3), Point(X0 + 1003, Y0 + 200), Point(X0 - 5, Y0)])
    np.testing.assert_allclose(got, [250.0, 1200.0, 0.0])
    lo, hi = chainage_range(ref, [box(X0 + 100, Y0 + 2, X0 + 130, Y0 + 20)])
    np.testing.assert_allclose([lo[0], hi[0]], [100.0, 130.0])


def test_multilinestring_parts_are_ordered_and_the_gap_reported() -> None:
    # parts given out of order and the middle one reversed; a 50 m gap between 2nd and 3rd
    line = MultiLineString([
        [(X0 + 1050, Y0), (X0 + 2050, Y0)],
        [(X0 + 1000, Y0), (X0 + 400, Y0)],
        [(X0, Y0), (X0 + 400, Y0)],
    ])
    ref = line_reference(line)
    assert [p.coords[0][0] - X0 for p in ref.parts] == [0.0, 400.0, 1050.0]
    assert ref.length_m == 2000.0
    np.testing.assert_allclose(ref.starts, [0.0, 400.0, 1000.0])
    assert len(ref.gaps) == 1
    gap = ref.gaps[0]
    assert (gap.after_part, gap.chainage_m, gap.gap_m) == (1, 1000.0, 50.0)
    # chainage does not count the gap
    np.testing.assert_allclose(chainage(ref, [Point(X0 + 1550, Y0 + 4)]), [1500.0])
    sub = substring(ref, 900, 1100)
    assert sub.geom_type == "MultiLineString"
    assert sub.length == pytest.approx(200.0)
    np.testing.assert_allclose(shapely.get_coordinates(point_at(ref, [999.0, 1001.0])),
                               [[X0 + 999, Y0], [X0 + 1051, Y0]])


def test_touching_parts_have_no_gap() -> None:
    ref = line_reference(MultiLineString([[(0, 0), (10, 0)], [(10, 0), (10, 10)]]))
    assert ref.gaps == ()
    assert ref.length_m == 20.0


def test_pieces_are_short_and_cover_the_line() -> None:
    refs = [line_reference(LineString([(X0, Y0), (X0 + 1000, Y0), (X0 + 1000, Y0 + 50)]))]
    pcs = pieces(refs, max_length_m=200.0)
    lengths = shapely.length(pcs.geoms)
    assert lengths.max() <= 200.0 + 1e-9
    assert lengths.sum() == pytest.approx(1050.0)
    np.testing.assert_allclose(pcs.start_m, [0, 200, 400, 600, 800, 1000])
    assert shapely.union_all(pcs.geoms).length == pytest.approx(1050.0)


def test_empty_or_wrong_geometry_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        line_reference(LineString())
    with pytest.raises(ValueError, match="LineString"):
        line_reference(Point(0, 0))
