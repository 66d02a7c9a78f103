"""The benchmark workloads and the pieces the DuckDB baseline is given (bench/workloads.py,
bench/pipeline_check.py): deterministic, valid stores; lines cut as ST_Subdivide cuts them."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString

from bench.pipeline_check import _pairs_flagged, _stages, pieces
from bench.workloads import SIDE, X0, Y0, dense_layers, fold
from layers.validate import validate_layer


def test_fold_reflects_into_the_interval() -> None:
    v = np.array([-3.0, 0.0, 4.0, 10.0, 13.0, 21.0, 27.0])
    assert fold(v, 0.0, 10.0).tolist() == [3.0, 0.0, 4.0, 10.0, 7.0, 1.0, 7.0]


def test_dense_layers_deterministic_valid_and_dense() -> None:
    pipes, blds = dense_layers(20_000)
    pipes2, blds2 = dense_layers(20_000)
    assert pipes.geometry.geom_equals_exact(pipes2.geometry, 0).all()
    assert blds.geometry.geom_equals_exact(blds2.geometry, 0).all()
    assert len(pipes) == 50 and len(blds) == 20_000
    assert str(pipes.crs) == "EPSG:4548"
    lengths = pipes.length.to_numpy()
    assert (lengths > 4_900).all() and (lengths < 20_100).all()
    xy = shapely.get_coordinates(pipes.geometry.values)
    assert xy[:, 0].min() >= X0 and xy[:, 0].max() <= X0 + SIDE
    assert xy[:, 1].min() >= Y0 and xy[:, 1].max() <= Y0 + SIDE
    # a vertex every 10 m (a chord is shorter only where the walk bounced off the border)
    seg = np.hypot(*np.diff(shapely.get_coordinates(pipes.geometry.values[0]), axis=0).T)
    assert abs(np.median(seg) - 10.0) < 1e-9 and seg.max() <= 10.0 + 1e-9
    assert set(pipes["pressure_mpa"]) == {1.2} and set(pipes["diameter_mm"]) == {219.0}
    # what riskmap import checks: no problems, both layers
    for gdf, layer in ((pipes, "pipelines"), (blds, "buildings")):
        clean, report = validate_layer(gdf, layer)
        assert len(clean) == len(gdf) and report.count == len(gdf) and not report.repairs
    # the share of buildings inside the 13.5 m clearance is about 8.4 % (1 M -> ~84 k)
    tree = shapely.STRtree(np.asarray(blds.geometry.values))
    near = tree.query(np.asarray(pipes.geometry.values), predicate="dwithin",
                      distance=13.5 + 0.1095)[1]
    assert 0.06 < len(np.unique(near)) / len(blds) < 0.11


def test_pieces_cut_like_st_subdivide() -> None:
    a = LineString([(0, 0), (1000, 0)])  # segmentized to 200 m: 6 vertices, one piece
    b = LineString([(x, (x // 10) % 2) for x in range(0, 201, 10)])  # 21 vertices
    c = MultiLineString([[(0, 5), (0, 90)], [(0, 100), (0, 130), (0, 150)]])
    line, radius, geoms = pieces(np.array([a, b, c]), np.array([1.0, 2.0, 3.0]))
    n_vert = shapely.get_num_coordinates(geoms)
    assert n_vert.max() <= 8 and n_vert.min() >= 2
    assert line.tolist() == [0, 1, 1, 1, 2, 2]
    assert radius.tolist() == [1.0, 2.0, 2.0, 2.0, 3.0, 3.0]
    # consecutive pieces share their end vertex; together they are the line
    for i, g in enumerate((a, b, c)):
        mine = geoms[line == i]
        assert abs(shapely.length(mine).sum() - g.length) < 1e-9
        assert shapely.equals(shapely.line_merge(shapely.union_all(mine)), shapely.line_merge(g))


def test_pairs_flagged_uses_the_radius_of_the_building_use() -> None:
    data = {"radius_by_use": {"residential": np.array([10.0, 5.0]),
                              "shed": np.array([3.0, 5.0])},
            "use_of": {"B1": "residential", "B2": "shed", "B3": "shed"}}
    rows = [(0, "B1", 9.5), (0, "B2", 9.5), (1, "B2", 4.0), (1, "B3", 5.0), (1, "B1", 6.0)]
    assert _pairs_flagged(rows, data) == {"B1", "B2", "B3"}
    assert _pairs_flagged(rows[:2], data) == {"B1"}


def test_stages_from_progress_lines() -> None:
    err = ("\r[------] 1/4 reading pipelines                   0.0 s"
           "\r[#-----] 2/4 reading buildings near pipelines    0.2 s"
           "\r[###---] 3/4 checking 8,725 buildings            0.5 s"
           "\r[####--] 4/4 writing findings.gpkg               1.1 s"
           "\r[######] 4/4 done                                1.3 s\n")
    assert _stages(err, 0.55, 2.0) == ("start 0.55, reading pipelines 0.20, reading buildings "
                                       "near pipelines 0.30, checking 8,725 buildings 0.60, "
                                       "writing findings.gpkg 0.20, summary+exit 0.15")
