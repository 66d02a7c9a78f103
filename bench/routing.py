"""Hazmat routing benchmark on the demo district at scale.

    .venv/bin/python bench/routing.py [--scale 30] [--pairs 100] [--alternatives 3] [--libs]

Builds the demo district in memory (``layers.demo.build_demo``; scale 30 gives ~55 k graph
nodes), then measures, all in the same run:

* graph build (``geo.network.build_graph``) and the per-data-set preparation
  (``geo.routing.prepare_network``: speeds, exposure in the 200 m corridor, edges in zones);
* one route request, and ``--pairs`` random depot-to-anywhere O-D requests at 08:00 with
  ``--alternatives`` alternatives: median and p95 latency (snapping, zone rules, searches,
  alternatives, refusal explanation, output frame);
* the baseline: plain ``networkx.dijkstra_path`` (one path, no rules) on the same graph and
  weights for the same O-D node pairs;
* the pgRouting baseline (``--postgis URL``, default the test server; ``none`` to skip): the
  same directed edges and weights in a table, ``pgr_dijkstra`` (one path) and ``pgr_KSP``
  (``--alternatives`` paths) per request for the first ``--pg-pairs`` O-D pairs, and one
  batched ``pgr_dijkstra`` over all of them (combinations SQL); query time only, ``jit`` off;
  path costs checked against networkx. Skipped with the install command when pgRouting is
  missing;
* ``--libs``: one shortest-path tree from the same sources with scipy.sparse.csgraph,
  igraph, rustworkx and networkx (how the library was chosen).

Prints the figures and the ratios against the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import time as dtime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from geo.network import build_graph
from geo.routing import NoRouteError, SnapError, prepare_network, route
from layers.demo import build_demo
from layers.hazmat_rules import load_hazmat_rules


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=30.0, help="demo scale (default 30)")
    ap.add_argument("--pairs", type=int, default=100, help="random O-D requests (default 100)")
    ap.add_argument("--alternatives", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--libs", action="store_true", help="also compare graph libraries")
    ap.add_argument("--postgis", default=None, help="server for the pgRouting baseline; "
                    "default $RISKMAP_TEST_POSTGIS_URL or the local test server; 'none' skips")
    ap.add_argument("--pg-pairs", type=int, default=20,
                    help="O-D pairs timed one by one with pgRouting (default 20)")
    args = ap.parse_args(argv)
    rules = load_hazmat_rules().routing

    t = time.perf_counter()
    demo = build_demo(seed=42, scale=args.scale)
    lay = demo.layers
    print(f"demo scale {args.scale:g}: {len(lay['roads'])} roads, {len(lay['buildings'])} "
          f"buildings, {len(lay['restricted_zones'])} zones ({time.perf_counter() - t:.1f} s)")

    t = time.perf_counter()
    g = build_graph(lay["roads"], snap_m=rules.graph_snap_m)
    t_graph = time.perf_counter() - t
    t = time.perf_counter()
    net = prepare_network(lay["roads"], zones=lay["restricted_zones"], buildings=lay["buildings"],
                          sites=lay["sites"], params=rules, graph=g)
    t_prep = time.perf_counter() - t
    print(f"graph: {g.n_nodes} nodes, {g.n_edges} directed edges; build {t_graph:.2f} s, "
          f"prepare (speeds, corridor exposure, zones) {t_prep:.2f} s")

    # O-D: depots and random points on the network (lon/lat)
    rng = np.random.default_rng(args.seed)
    depots = [c["lonlat"] for c in demo.manifest["cases"] if c["case"] == "depot"]
    from pyproj import Transformer

    to_ll = Transformer.from_crs(g.crs, 4490, always_xy=True)
    pick = rng.choice(g.n_nodes, size=args.pairs * 2, replace=True)
    pts = [to_ll.transform(*g.nodes[i]) for i in pick]
    pairs = [(depots[k % len(depots)] if k % 2 == 0 else pts[2 * k], pts[2 * k + 1])
             for k in range(args.pairs)]
    at = dtime(8, 0)

    route(net, pairs[0][0], pairs[0][1], at, alternatives=args.alternatives)  # warm caches
    t = time.perf_counter()
    res = route(net, pairs[0][0], pairs[0][1], at, alternatives=args.alternatives)
    t_single = time.perf_counter() - t
    print(f"single request ({args.alternatives} alternatives): {t_single * 1000:.1f} ms, "
          f"{len(res.routes)} route(s)")

    lat_k: list[float] = []
    lat_1: list[float] = []
    failed = 0
    od_nodes: list[tuple[int, int]] = []
    for o, d in pairs:
        try:
            t = time.perf_counter()
            r = route(net, o, d, at, alternatives=args.alternatives)
            lat_k.append(time.perf_counter() - t)
            t = time.perf_counter()
            route(net, o, d, at, alternatives=1)
            lat_1.append(time.perf_counter() - t)
        except (NoRouteError, SnapError):
            failed += 1
            continue
        e0 = int(r.origin["edge"])
        e1 = int(r.destination["edge"])
        od_nodes.append((int(g.v[e0]), int(g.u[e1])))

    # baseline: plain networkx Dijkstra (no rules, one path) on the same graph and weights
    import networkx as nx

    t = time.perf_counter()
    G = nx.DiGraph()
    m, _entry = g.matrix_with_edges(net.time_s)
    coo = m.tocoo()
    G.add_weighted_edges_from(zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(),
                                  strict=True))
    t_nxbuild = time.perf_counter() - t
    lat_nx: list[float] = []
    for a, b in od_nodes:
        t = time.perf_counter()
        with contextlib.suppress(nx.NetworkXNoPath):
            nx.dijkstra_path(G, a, b)
        lat_nx.append(time.perf_counter() - t)

    def line(name: str, vals: list[float]) -> str:
        return (f"  {name:<44} median {statistics.median(vals) * 1000:8.1f} ms   "
                f"p95 {_pct(vals, 95) * 1000:8.1f} ms")

    print(f"{len(lat_k)} O-D requests at 08:00 ({failed} refused: snap/no route):")
    print(line(f"riskmap route, {args.alternatives} alternatives + rules", lat_k))
    print(line("riskmap route, 1 route + rules", lat_1))
    print(line("networkx dijkstra_path, 1 route, no rules", lat_nx))
    print(f"  networkx graph build {t_nxbuild:.2f} s")
    mk, m1, mn = (statistics.median(v) for v in (lat_k, lat_1, lat_nx))
    print(f"ratio networkx / riskmap: {mn / m1:.1f}x (1 route), {mn / mk:.1f}x "
          f"({args.alternatives} alternatives)")
    target = "met" if mk < 0.050 else "NOT met"
    print(f"target: {args.alternatives} alternatives < 50 ms median — {target} "
          f"({mk * 1000:.1f} ms)")

    _pgrouting(args, coo, G, od_nodes, lat_k, lat_1)
    if args.libs:
        _libs(g, net.time_s, [a for a, _ in od_nodes[:10]])
    return 0


def _pgrouting(args: argparse.Namespace, coo: Any, G: Any, od_nodes: list[tuple[int, int]],
               lat_k: list[float], lat_1: list[float]) -> None:
    """pgr_dijkstra / pgr_KSP on the same edges and weights (node ids + 1: pgRouting's ids
    are positive); ratios against riskmap's latencies on the same O-D pairs."""
    import networkx as nx

    from bench.pgr import connect, drop, load_edges, server_url

    conn, info = connect(server_url(args.postgis))
    if conn is None:
        print(f"pgRouting baseline skipped: {info}")
        return
    load_s = load_edges(conn, "route_edges", coo.row + 1, coo.col + 1, coo.data)
    edges = "SELECT id, source, target, cost FROM bench_pgr.route_edges"
    pairs = od_nodes[:args.pg_pairs]
    lat_d, lat_ksp, diff = [], [], 0.0
    ours_1 = statistics.median(lat_1[:len(pairs)])
    ours_k = statistics.median(lat_k[:len(pairs)])
    for a, b in pairs:
        t = time.perf_counter()
        rows = conn.execute("SELECT max(agg_cost) FROM pgr_dijkstra(%s, %s, %s, directed => "
                            "true)", (edges, a + 1, b + 1)).fetchall()
        lat_d.append(time.perf_counter() - t)
        t = time.perf_counter()
        conn.execute("SELECT path_id, max(agg_cost) FROM pgr_KSP(%s, %s, %s, %s, directed => "
                     "true) GROUP BY path_id", (edges, a + 1, b + 1, args.alternatives)).fetchall()
        lat_ksp.append(time.perf_counter() - t)
        with contextlib.suppress(nx.NetworkXNoPath):
            want = nx.dijkstra_path_length(G, a, b)
            got = rows[0][0] if rows and rows[0][0] is not None else float("inf")
            diff = max(diff, abs(float(got) - want))
    values = ", ".join(f"({a + 1}, {b + 1})" for a, b in od_nodes)
    t = time.perf_counter()
    conn.execute("SELECT count(*) FROM pgr_dijkstra(%s, %s, directed => true)",
                 (edges, f"SELECT * FROM (VALUES {values}) AS t(source, target)")).fetchall()
    t_batch = time.perf_counter() - t
    drop(conn)
    md, mkp = statistics.median(lat_d), statistics.median(lat_ksp)
    print(f"pgRouting {info} (same {len(coo.data):,} directed edges, loaded in {load_s:.1f} s, "
          f"excluded; {len(pairs)} O-D pairs; jit off):")
    print(f"  {'pgr_dijkstra, 1 route, no rules':<44} median {md * 1000:8.1f} ms   "
          f"p95 {_pct(lat_d, 95) * 1000:8.1f} ms")
    print(f"  {f'pgr_KSP, {args.alternatives} routes, no rules':<44} median "
          f"{mkp * 1000:8.1f} ms   p95 {_pct(lat_ksp, 95) * 1000:8.1f} ms")
    print(f"  pgr_dijkstra batched, {len(od_nodes)} pairs in one call: {t_batch:.2f} s = "
          f"{t_batch / max(len(od_nodes), 1) * 1000:.1f} ms/pair")
    print(f"  path costs vs networkx: max difference {diff:.2e} s")
    print(f"  riskmap on the same {len(pairs)} pairs: median {ours_1 * 1000:.1f} ms (1 route), "
          f"{ours_k * 1000:.1f} ms ({args.alternatives} alternatives)")
    print(f"ratio pgRouting / riskmap: {md / ours_1:.1f}x (1 route, pgr_dijkstra), "
          f"{mkp / ours_k:.1f}x ({args.alternatives} alternatives, pgr_KSP); batched "
          f"pgr_dijkstra per pair / riskmap 1 route: {t_batch / max(len(od_nodes), 1) / ours_1:.1f}x")


def _libs(g, w: np.ndarray, sources: list[int]) -> None:
    """One full shortest-path tree per source with each candidate library."""
    from scipy.sparse import csgraph

    m, _ = g.matrix_with_edges(w)
    coo = m.tocoo()
    rows, cols, data = coo.row.tolist(), coo.col.tolist(), coo.data.tolist()
    out = {}
    t = time.perf_counter()
    for s in sources:
        csgraph.dijkstra(m, indices=s, return_predecessors=True)
    out["scipy.sparse.csgraph"] = (time.perf_counter() - t) / len(sources)
    try:
        import igraph as ig

        G = ig.Graph(n=g.n_nodes, edges=list(zip(rows, cols, strict=True)), directed=True)
        G.es["w"] = data
        t = time.perf_counter()
        for s in sources:
            G.distances(source=s, weights="w")
        out["igraph"] = (time.perf_counter() - t) / len(sources)
    except ImportError:
        pass
    try:
        import rustworkx as rx

        R = rx.PyDiGraph()
        R.add_nodes_from(range(g.n_nodes))
        R.add_edges_from(list(zip(rows, cols, data, strict=True)))
        t = time.perf_counter()
        for s in sources:
            rx.digraph_dijkstra_shortest_path_lengths(R, s, edge_cost_fn=float)
        out["rustworkx"] = (time.perf_counter() - t) / len(sources)
    except ImportError:
        pass
    import networkx as nx

    X = nx.DiGraph()
    X.add_weighted_edges_from(zip(rows, cols, data, strict=True))
    t = time.perf_counter()
    for s in sources[:3]:
        nx.single_source_dijkstra(X, s)
    out["networkx"] = (time.perf_counter() - t) / min(3, len(sources))
    base = out["networkx"]
    print("one shortest-path tree (all nodes) from a source:")
    for k, v in sorted(out.items(), key=lambda kv: kv[1]):
        print(f"  {k:<22} {v * 1000:8.1f} ms   {base / v:6.1f}x networkx")


if __name__ == "__main__":
    sys.exit(main())
