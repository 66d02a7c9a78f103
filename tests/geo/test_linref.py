"""Linear referencing: chainage, stations, MultiLineString ordering and gaps, pieces."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import shapely.affinity
from shapely.geometry import LineString, MultiLineString, Point, box

from geo.linref import (
    chainage,
    chainage_near,
    chainage_range,
    format_station,
    line_reference,
    line_references,
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


# --- chainage_near: chainage from the pieces near each footprint ----------------------------
def _near(line, geoms, *, piece_m: float = 200.0):
    """chainage_near for footprints near one line, each found on its nearest piece (as
    pipeline_distances finds it); also the whole-line answer (chainage, chainage_range)."""
    ref = line_reference(line)
    pcs = pieces([ref], max_length_m=piece_m)
    g = np.asarray(geoms, dtype=object)
    d = shapely.distance(pcs.geoms[:, None], g[None, :])
    found = np.argmin(d, axis=0)
    got = chainage_near(pcs, g, np.zeros(len(g), dtype=np.intp), found)
    whole = (chainage(ref, shapely.centroid(g)), *chainage_range(ref, g))
    return got, whole, pcs


def test_chainage_near_across_a_piece_boundary_and_beyond_the_ends() -> None:
    line = LineString([(X0, Y0), (X0 + 1000, Y0)])
    geoms = [box(X0 + 190, Y0 + 2, X0 + 215, Y0 + 10),  # pieces 0 and 1 (boundary at 200)
             box(X0 - 30, Y0 - 5, X0 - 10, Y0 + 5),  # before the start
             box(X0 + 1010, Y0 + 1, X0 + 1020, Y0 + 4)]  # after the end
    (mid, lo, hi), whole, pcs = _near(line, geoms)
    np.testing.assert_allclose(lo, [190.0, 0.0, 1000.0], atol=1e-9)
    np.testing.assert_allclose(hi, [215.0, 0.0, 1000.0], atol=1e-9)
    np.testing.assert_allclose(mid, [202.5, 0.0, 1000.0], atol=1e-9)
    for a, b in zip((mid, lo, hi), whole, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-9)
    # found on the other piece of the boundary: the same answer
    other = chainage_near(pcs, np.asarray(geoms[:1]), np.zeros(1, np.intp), np.array([1]))
    np.testing.assert_allclose(np.ravel(other), [202.5, 190.0, 215.0], atol=1e-9)


def test_chainage_near_inside_a_bend_ties_go_to_the_first_along_the_line() -> None:
    line = LineString([(X0, Y0), (X0 + 1000, Y0), (X0 + 1000, Y0 + 500)])
    # (995, 5) and (980, 20) are as near to both legs: the first leg counts
    g = box(X0 + 980, Y0 + 5, X0 + 995, Y0 + 20)
    (mid, lo, hi), whole, _ = _near(line, [g])
    assert (lo[0], hi[0]) == (980.0, 1020.0)
    assert mid[0] == 987.5  # centroid (987.5, 12.5): a tie, first leg
    np.testing.assert_allclose(np.ravel(whole), [987.5, 980.0, 1020.0], atol=1e-9)


def test_chainage_near_on_a_line_that_doubles_back() -> None:
    # there along y = 0, back along y = 20: a footprint between the legs has its south
    # vertices nearest the outward leg and its north vertices nearest the return leg, whichever
    # piece the pair was found on — the range spans both (as against the whole line)
    line = LineString([(X0, Y0), (X0 + 2000, Y0), (X0 + 2000, Y0 + 20), (X0, Y0 + 20)])
    g = box(X0 + 500, Y0 + 8, X0 + 520, Y0 + 12)
    (mid, lo, hi), whole, pcs = _near(line, [g])
    assert (lo[0], hi[0], mid[0]) == (500.0, 3520.0, 510.0)  # 2020 + (2000 - 500)
    np.testing.assert_allclose(np.ravel(whole), [510.0, 500.0, 3520.0], atol=1e-9)
    ret = int(np.flatnonzero((pcs.start_m >= 2020) & (pcs.start_m < 3500))[-1])
    again = chainage_near(pcs, np.asarray([g]), np.zeros(1, np.intp), np.array([ret]))
    np.testing.assert_allclose(np.ravel(again), [510.0, 500.0, 3520.0], atol=1e-9)


def test_chainage_near_over_a_gap_of_a_multilinestring() -> None:
    line = MultiLineString([[(X0 + 1100, Y0), (X0 + 2000, Y0)], [(X0, Y0), (X0 + 1000, Y0)]])
    g = box(X0 + 990, Y0 + 2, X0 + 1110, Y0 + 6)
    (mid, lo, hi), whole, _ = _near(line, [g])
    # the gap is not counted: x = 1110 is 1000 + 10; the centroid (1050, 4) is as near to
    # both ends of the gap: the first along the line (the end of the first part) counts
    assert (lo[0], hi[0], mid[0]) == (990.0, 1010.0, 1000.0)
    np.testing.assert_allclose(np.ravel(whole), [1000.0, 990.0, 1010.0], atol=1e-9)


def test_chainage_near_equals_the_whole_line_answer_on_wandering_lines() -> None:
    from geo.pipelines import pipeline_distances

    rng = np.random.default_rng(3)
    lines = []
    for _ in range(4):  # 3 km wandering lines, vertices every 10 m, crossing each other
        turn = np.cumsum(rng.normal(0, 0.08, 300)) + rng.uniform(0, 2 * np.pi)
        xy = np.cumsum(10 * np.c_[np.cos(turn), np.sin(turn)], axis=0) + np.array([X0, Y0])
        lines.append(LineString(xy))
    lines.append(MultiLineString([shapely.get_coordinates(lines[0])[:100] + np.array([0, 30]),
                                  shapely.get_coordinates(lines[0])[105:] + np.array([0, 30])]))
    refs = [line_reference(g) for g in lines]
    pcs = pieces(refs, max_length_m=25.0)
    at = shapely.line_interpolate_point(np.asarray(lines)[rng.integers(0, 5, 3000)],
                                        rng.uniform(0, 1, 3000), normalized=True)
    xy = shapely.get_coordinates(at) + rng.uniform(-25, 25, (3000, 2))
    w, h, a = rng.uniform(4, 30, 3000), rng.uniform(4, 20, 3000), rng.uniform(0, 3, 3000)
    geoms = np.array([
        shapely.affinity.rotate(box(x - ww / 2, y - hh / 2, x + ww / 2, y + hh / 2), aa,
                                use_radians=True)
        for (x, y), ww, hh, aa in zip(xy, w, h, a, strict=True)], dtype=object)
    pairs = pipeline_distances(refs, geoms, radius_m=np.full(5, 20.0), pcs=pcs)
    assert len(pairs) > 1000
    li, bi = pairs["line"].to_numpy(), pairs["building"].to_numpy()
    mid, lo, hi = chainage_near(pcs, geoms[bi], li, pairs["piece"].to_numpy())
    # the same with the pieces within 20 m of each footprint handed over: most points are
    # answered from them, the far corners of big footprints from the tree
    d = shapely.distance(pcs.geoms[None, :], geoms[bi][:, None])
    k, pc = np.nonzero((d <= 20.0) & (pcs.line[None, :] == li[:, None]))
    got = chainage_near(pcs, geoms[bi], li, pairs["piece"].to_numpy(),
                        near=(k, pc, np.full(len(bi), 20.0)))
    np.testing.assert_array_equal(np.stack(got), np.stack([mid, lo, hi]))
    # and with a radius no vertex is within: every point from the tree
    few = chainage_near(pcs, geoms[bi], li, pairs["piece"].to_numpy(),
                        near=(k, pc, np.full(len(bi), 1e-7)))
    np.testing.assert_array_equal(np.stack(few), np.stack([mid, lo, hi]))
    for i, ref in enumerate(refs):
        s = li == i
        np.testing.assert_allclose(mid[s], chainage(ref, shapely.centroid(geoms[bi[s]])),
                                   atol=1e-6)
        wlo, whi = chainage_range(ref, geoms[bi[s]])
        np.testing.assert_allclose(lo[s], wlo, atol=1e-6)
        np.testing.assert_allclose(hi[s], whi, atol=1e-6)


def test_line_references_in_bulk_and_pieces_of_several_lines() -> None:
    lines = [LineString([(X0, Y0), (X0 + 300, Y0), (X0 + 300, Y0 + 100)]),
             MultiLineString([[(X0 + 1050, Y0), (X0 + 2050, Y0)], [(X0 + 1000, Y0), (X0, Y0)]])]
    refs = line_references(lines)
    for ref, one in zip(refs, [line_reference(g) for g in lines], strict=True):
        assert [p.wkt for p in ref.parts] == [p.wkt for p in one.parts]
        np.testing.assert_array_equal(ref.starts, one.starts)
        assert (ref.length_m, ref.gaps) == (one.length_m, one.gaps)
    pcs = pieces(refs, max_length_m=250.0)
    assert pcs.line.tolist() == [0, 0, 0] + [1] * 8
    # 300 m cut in two, then 100 m; 1000 m in four; after the 50 m gap, 1000 m in four
    np.testing.assert_allclose(pcs.start_m, [0, 150, 300, 0, 250, 500, 750,
                                             1000, 1250, 1500, 1750], atol=1e-9)
