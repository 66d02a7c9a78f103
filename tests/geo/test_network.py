"""Exact tests of the shared road graph on small hand-made networks (EPSG:4548, metres)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csgraph
from shapely.geometry import LineString, MultiLineString, Point

from geo.errors import CRSError
from geo.network import (
    build_graph,
    multi_source_dijkstra,
    oneway_direction,
    path_edges,
    path_nodes,
)

CRS = "EPSG:4548"


def lines(rows: list[dict]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)


def test_cross_with_shared_vertex_is_split_into_four_pieces():
    g = build_graph(lines([
        {"id": "A", "geometry": LineString([(0, 0), (100, 0), (200, 0)])},
        {"id": "B", "geometry": LineString([(100, -100), (100, 0), (100, 100)])},
    ]))
    assert g.n_nodes == 5
    assert g.n_edges == 8  # 4 pieces × 2 directions
    assert sorted(g.edges["length_m"].round(6).unique()) == [100.0]
    centre = g.nearest_node([Point(100, 0)])[0][0]
    assert np.array_equal(g.nodes[centre], [100.0, 0.0])
    assert (np.bincount(g.u, minlength=g.n_nodes)[centre]) == 4


def test_crossing_without_shared_vertex_is_a_bridge_not_a_junction():
    g = build_graph(lines([
        {"id": "A", "geometry": LineString([(0, 0), (200, 0)])},
        {"id": "B", "geometry": LineString([(100, -100), (100, 100)])},
    ]))
    assert g.n_nodes == 4
    assert g.n_edges == 4
    dist = csgraph.dijkstra(g.matrix(), indices=0)
    assert np.isinf(dist).sum() == 2  # B is unreachable from A's start


def test_split_false_connects_only_endpoints():
    data = lines([
        {"id": "A", "geometry": LineString([(0, 0), (100, 0), (200, 0)])},
        {"id": "B", "geometry": LineString([(100, -100), (100, 0), (100, 100)])},
    ])
    g = build_graph(data, split_at_intersections=False)
    assert g.n_nodes == 4 and g.n_edges == 4


def test_endpoints_within_snap_distance_meet_at_first_vertex():
    g = build_graph(lines([
        {"id": "A", "geometry": LineString([(0, 0), (100, 0)])},
        {"id": "B", "geometry": LineString([(100.3, 0.2), (200, 0)])},
    ]), snap_m=0.5)
    assert g.n_nodes == 3
    np.testing.assert_array_equal(g.nodes, [[0, 0], [100, 0], [200, 0]])
    # B's geometry starts at the node now
    b = g.edges[(g.edges["source_id"] == "B") & ~g.edges["reverse"]].geometry.iloc[0]
    assert b.coords[0] == (100.0, 0.0)
    g2 = build_graph(lines([
        {"id": "A", "geometry": LineString([(0, 0), (100, 0)])},
        {"id": "B", "geometry": LineString([(100.3, 0.2), (200, 0)])},
    ]), snap_m=0.1)
    assert g2.n_nodes == 4


def test_dense_vertices_of_one_line_do_not_collapse():
    pts = [(x * 0.2, 0.0) for x in range(51)]  # 10 m line with 0.2 m vertex spacing
    g = build_graph(lines([{"id": "A", "geometry": LineString(pts)}]), snap_m=0.5)
    assert g.n_nodes == 2
    assert g.edges["length_m"].iloc[0] == pytest.approx(10.0)


def test_oneway_and_attributes_and_orientation():
    g = build_graph(lines([
        {"id": "A", "oneway": True, "road_class": "arterial",
         "geometry": LineString([(0, 0), (100, 0)])},
        {"id": "B", "oneway": "-1", "road_class": "local",
         "geometry": LineString([(100, 0), (100, 50)])},
        {"id": "C", "oneway": None, "road_class": "local",
         "geometry": LineString([(100, 50), (0, 0)])},
    ]))
    e = g.edges
    assert list(e["source_id"]) == ["A", "B", "C", "C"]
    assert list(e["reverse"]) == [False, True, False, True]
    assert list(e["road_class"]) == ["arterial", "local", "local", "local"]
    assert list(e["edge_id"]) == [0, 1, 2, 3]
    b = e.iloc[1]
    assert b.geometry.coords[0] == (100.0, 50.0)  # oriented u → v
    assert tuple(g.nodes[b["u"]]) == (100.0, 50.0)
    assert list(g.twin) == [-1, -1, 3, 2]
    assert set(e["source_layer"]) == {"roads"}


def test_multilinestring_parts_and_chainage_span():
    g = build_graph(lines([
        {"id": "A", "geometry": MultiLineString([[(0, 0), (30, 0), (100, 0)],
                                                 [(0, 10), (50, 10)]])},
        {"id": "X", "geometry": LineString([(30, -10), (30, 0)])},
    ]), oneway_column=None)
    fw = g.edges[~g.edges["reverse"]]
    got = fw[["source_id", "part", "from_m", "to_m"]].values.tolist()
    assert got == [["A", 0, 0.0, 30.0], ["A", 0, 30.0, 100.0], ["A", 1, 0.0, 50.0],
                   ["X", 0, 0.0, 10.0]]


def test_source_layer_column_wins_and_concat_of_roads_and_lanes():
    roads = lines([{"id": "R1", "geometry": LineString([(0, 0), (100, 0)])}])
    lanes = lines([{"id": "FL-1", "width_m": 3.2, "geometry": LineString([(100, 0), (100, 40)])}])
    both = pd.concat([roads.assign(source_layer="roads"), lanes.assign(source_layer="fire_lanes")])
    g = build_graph(gpd.GeoDataFrame(both, crs=CRS))
    assert g.edges.groupby("source_layer").size().to_dict() == {"fire_lanes": 2, "roads": 2}
    assert g.n_nodes == 3
    assert g.edges.loc[g.edges["source_id"] == "FL-1", "width_m"].tolist() == [3.2, 3.2]


def test_matrix_keeps_minimum_of_parallel_edges_and_reports_it():
    g = build_graph(lines([
        {"id": "long", "geometry": LineString([(0, 0), (50, 50), (100, 0)])},
        {"id": "short", "geometry": LineString([(0, 0), (100, 0)])},
    ]))
    m, entry = g.matrix_with_edges(g.length_m)
    assert m.nnz == 2
    assert m[0, 1] == pytest.approx(100.0)
    assert set(g.edges.loc[entry, "source_id"]) == {"short"}
    # blocking "short" with inf leaves "long"
    w = np.where(g.edges["source_id"] == "short", np.inf, g.length_m)
    m2, entry2 = g.matrix_with_edges(w)
    assert m2[0, 1] == pytest.approx(100 * np.sqrt(2))
    assert set(g.edges.loc[entry2, "source_id"]) == {"long"}
    mt, entry_t = g.matrix_with_edges(w, transpose=True)
    assert (mt != m2.T).nnz == 0
    assert set(g.edges.loc[entry_t, "source_id"]) == {"long"}
    # the edge realising a node pair, vectorised
    e = g.edge_between([0, 1, 0], [1, 0, 0])
    assert g.edges.loc[e[:2], "source_id"].tolist() == ["short", "short"] and e[2] == -1
    e = g.edge_between([0], [1], weights=w)
    assert g.edges.loc[e, "source_id"].tolist() == ["long"]
    # NaN is left out like inf, without hiding the parallel edge
    w_nan = np.where(g.edges["source_id"] == "short", np.nan, g.length_m)
    m4, entry4 = g.matrix_with_edges(w_nan)
    assert m4[0, 1] == pytest.approx(100 * np.sqrt(2)) and m4.nnz == 2
    assert set(g.edges.loc[entry4, "source_id"]) == {"long"}
    # equal weights: the lowest edge id wins
    _, entry3 = g.matrix_with_edges(np.ones(g.n_edges))
    assert sorted(entry3.tolist()) == [0, 1]
    with pytest.raises(ValueError, match="negative"):
        g.matrix(-g.length_m)
    with pytest.raises(ValueError, match="one weight per edge"):
        g.matrix(np.ones(3))


def test_zero_weight_edges_stay_edges():
    g = build_graph(lines([{"id": "A", "geometry": LineString([(0, 0), (100, 0)])}]))
    d = csgraph.dijkstra(g.matrix(np.zeros(g.n_edges)), indices=0)
    assert d[1] < 1e-6


def test_snap_nearest_with_mask_and_max_distance():
    g = build_graph(lines([
        {"id": "A", "geometry": LineString([(0, 0), (100, 0)])},
        {"id": "B", "geometry": LineString([(0, 30), (100, 30)])},
    ]))
    pts = gpd.GeoSeries([Point(40, 10), Point(40, 500)], crs=CRS)
    s = g.snap(pts)
    assert list(s.edge) == [0, 2]  # A forward (lowest id of the tie), B forward
    assert s.distance_m[0] == pytest.approx(10.0)
    assert s.position_m[0] == pytest.approx(40.0)
    assert (s.x[0], s.y[0]) == (40.0, 0.0)
    s = g.snap(pts, max_m=50)
    assert list(s.edge) == [0, -1]
    assert np.isnan(s.distance_m[1])
    mask = (g.edges["source_id"] == "B").to_numpy()
    s = g.snap(pts, max_m=50, mask=mask)
    assert list(s.edge) == [2, -1]
    assert s.distance_m[0] == pytest.approx(20.0)
    s = g.snap(pts, mask=mask)  # infinite max distance
    assert list(s.edge) == [2, 2]
    # reverse edge position counts from its own u
    only_rev = (g.edges["reverse"] & (g.edges["source_id"] == "A")).to_numpy()
    s = g.snap(pts[:1], mask=only_rev)
    assert s.edge[0] == 1 and s.position_m[0] == pytest.approx(60.0)
    with pytest.raises(ValueError, match="CRS"):
        g.snap(pts.to_crs(4490))


def test_nearest_node():
    g = build_graph(lines([{"id": "A", "geometry": LineString([(0, 0), (100, 0)])}]))
    node, d = g.nearest_node([Point(90, 0), Point(500, 0)], max_m=20)
    assert list(node) == [1, -1]
    assert d[0] == pytest.approx(10.0) and np.isnan(d[1])


def grid_graph():
    # 3 × 3 grid of 100 m blocks, nodes on a lattice
    rows = []
    for i in range(3):
        rows.append({"id": f"H{i}", "geometry": LineString([(0, i * 100), (200, i * 100)])})
        rows.append({"id": f"V{i}", "geometry": LineString([(i * 100, 0), (i * 100, 200)])})
    # shared vertices at crossings
    rows = [{"id": r["id"], "geometry": LineString(
        [(x, r["geometry"].coords[0][1]) for x in (0, 100, 200)] if r["id"][0] == "H"
        else [(r["geometry"].coords[0][0], y) for y in (0, 100, 200)])} for r in rows]
    return build_graph(lines(rows))


def test_multi_source_dijkstra_costs_and_sources():
    g = grid_graph()
    assert g.n_nodes == 9 and g.n_edges == 24
    corner_a = g.nearest_node([Point(0, 0)])[0][0]
    corner_b = g.nearest_node([Point(200, 200)])[0][0]
    centre = g.nearest_node([Point(100, 100)])[0][0]
    m = g.matrix()
    r = multi_source_dijkstra(m, [corner_a, corner_b])
    assert r.cost[corner_a] == 0 and r.cost[corner_b] == 0
    assert r.cost[centre] == pytest.approx(200.0)
    far = g.nearest_node([Point(200, 0)])[0][0]
    assert r.cost[far] == pytest.approx(200.0)
    assert r.source[corner_b] == 1 and r.source[corner_a] == 0
    # head start: source b starts 150 late → centre reached from a; a node next to b from b
    r = multi_source_dijkstra(m, [corner_a, corner_b], initial_costs=[0.0, 150.0])
    assert r.cost[centre] == pytest.approx(200.0) and r.source[centre] == 0
    nb = g.nearest_node([Point(200, 100)])[0][0]
    assert r.cost[nb] == pytest.approx(250.0) and r.source[nb] == 1
    assert r.cost[corner_b] == pytest.approx(150.0)
    assert r.cost[corner_a] == 0.0
    # limit
    r = multi_source_dijkstra(m, [corner_a], limit=150)
    assert np.isfinite(r.cost).sum() == 3
    assert set(r.source[np.isinf(r.cost)]) == {-1}


def test_path_nodes_and_edges():
    g = grid_graph()
    a = g.nearest_node([Point(0, 0)])[0][0]
    b = g.nearest_node([Point(200, 0)])[0][0]
    m, entry = g.matrix_with_edges(g.length_m)
    _, pred = csgraph.dijkstra(m, indices=a, return_predecessors=True)
    nodes = path_nodes(pred, b)
    assert len(nodes) == 3 and nodes[0] == a and nodes[-1] == b
    e = path_edges(m, entry, nodes)
    assert list(g.edges.loc[e, "source_id"]) == ["H0", "H0"]
    assert g.edges.loc[e, "length_m"].sum() == pytest.approx(200.0)


def test_oneway_direction_values():
    got = oneway_direction([True, False, None, "yes", "no", "-1", -1, 1, np.nan, "reverse"])
    assert list(got) == [1, 0, 0, 1, 0, -1, -1, 1, 0, -1]


def test_rejects_degrees_and_points():
    with pytest.raises(CRSError):
        build_graph(gpd.GeoDataFrame(geometry=[LineString([(117, 34), (117.1, 34)])], crs=4490))
    with pytest.raises(ValueError, match="LineString"):
        build_graph(gpd.GeoDataFrame(geometry=[Point(0, 0)], crs=CRS))


def test_matrix_data_keeps_the_layout_and_inf():
    g = grid_graph()
    indptr, indices = g.csr_layout()
    w = g.length_m.copy()
    w[0] = np.inf
    data, entry = g.matrix_data(w)
    assert len(data) == len(indices) == g.n_edges and indptr[-1] == g.n_edges
    assert np.isinf(data).sum() == 1 and entry[np.isinf(data)][0] == 0
    full = g.matrix(g.length_m)
    assert np.array_equal(full.indices, indices) and np.array_equal(full.indptr, indptr)
    m = g.matrix(w)
    assert m.nnz == g.n_edges - 1
