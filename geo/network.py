"""The road network shared by hazmat routing and fire-lane coverage.

:func:`build_graph` turns line features (roads, fire lanes, or both concatenated) in a
projected metric CRS into a :class:`RoadGraph`: an array of node coordinates and a
GeoDataFrame of *directed* edges that keeps every source attribute. Shortest paths run on
``scipy.sparse.csgraph`` matrices built from any per-edge weight array
(:meth:`RoadGraph.matrix`), so one graph serves distance, travel time, risk and
rule-dependent costs (an edge with a non-finite weight is left out of the matrix).

Topology rules
--------------
* Nodes are made at line endpoints and — when ``split_at_intersections`` — at interior
  vertices that a line *shares* with another line (X crossings digitised with a common
  vertex, T-junctions whose end touches a vertex). Points closer than ``snap_m`` are one node.
* Lines that cross **without** a shared vertex are not connected: bridges, tunnels and
  flyovers cross roads without a junction, so geometric crossings never create nodes.
  Data whose junctions are not noded must be noded before import.
* ``oneway`` true (or ``"yes"``/``1``) keeps only the digitised direction; ``-1`` /
  ``"reverse"`` only the opposite one; anything else (false, missing) gives both.

Example
-------
>>> g = build_graph(store.read("roads", crs=analysis_crs))          # doctest: +SKIP
>>> m = g.matrix(g.edges["length_m"].to_numpy())                      # doctest: +SKIP
>>> res = multi_source_dijkstra(m, [0, 5])                            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from geo.crs import require_projected

__all__ = [
    "EDGE_COLUMNS",
    "DijkstraResult",
    "RoadGraph",
    "SnapResult",
    "build_graph",
    "multi_source_dijkstra",
    "oneway_direction",
    "path_edges",
    "path_nodes",
]

# Columns every edge frame has (source attributes follow; a source column with one of these
# names is dropped in favour of the graph's own).
EDGE_COLUMNS = (
    "edge_id",
    "u",
    "v",
    "piece",
    "reverse",
    "source_layer",
    "source_id",
    "source_row",
    "part",
    "from_m",
    "to_m",
    "length_m",
)

# Smallest weight stored in a matrix: csgraph would otherwise read an explicit 0 as "no edge".
_MIN_WEIGHT = 1e-9

_FORWARD_TEXT = frozenset({"yes", "true", "1", "t", "y"})
_BACKWARD_TEXT = frozenset({"-1", "reverse", "backward"})


@dataclass(frozen=True)
class SnapResult:
    """Where points meet the network.

    ``edge`` is the row position in ``RoadGraph.edges`` (-1 when nothing lies within
    ``max_m``), ``distance_m`` the straight distance to it, ``position_m`` the distance
    along the edge geometry from its ``u`` end to the foot point, ``x``/``y`` the foot
    point. Arrays align with the input points.
    """

    edge: np.ndarray
    distance_m: np.ndarray
    position_m: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def to_frame(self, index: pd.Index | None = None) -> pd.DataFrame:
        return pd.DataFrame(
            {"edge": self.edge, "distance_m": self.distance_m, "position_m": self.position_m,
             "x": self.x, "y": self.y},
            index=index,
        )


@dataclass(frozen=True)
class DijkstraResult:
    """Result of :func:`multi_source_dijkstra`.

    ``cost`` per node (inf when unreached), ``source`` the position in the ``sources``
    argument of the source that reaches the node first (-1 when unreached), ``predecessor``
    per node (-9999 for sources and unreached nodes; scipy's convention).
    """

    cost: np.ndarray
    source: np.ndarray
    predecessor: np.ndarray


@dataclass(frozen=True)
class _Structure:
    """Cached CSR layout of the edges sorted by (row, col, edge id)."""

    order: np.ndarray
    starts: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    multi: np.ndarray
    multi_members: np.ndarray
    multi_pos: np.ndarray
    entry: np.ndarray  # edge of each group's first member
    indptr: np.ndarray  # CSR row pointer when no entry is dropped (int32)
    cols32: np.ndarray


@dataclass
class RoadGraph:
    """A directed road graph in a projected metric CRS.

    Attributes
    ----------
    crs
        The CRS of ``nodes`` and ``edges`` (projected, metres).
    nodes
        ``(n, 2)`` float array of node coordinates.
    edges
        One row per directed edge (``edge_id`` equals the row position): ``u``/``v`` node
        indices, ``piece`` the undirected piece both directions share, ``reverse`` whether
        the edge runs against the digitised direction, ``source_layer``/``source_id``/
        ``source_row``/``part`` where it came from, ``from_m``/``to_m`` the piece's span
        along the source line part (digitised direction), ``length_m``, the geometry
        oriented ``u``→``v``, then all source attributes.
    """

    crs: Any
    nodes: np.ndarray
    edges: gpd.GeoDataFrame
    _tree: shapely.STRtree | None = field(default=None, init=False, repr=False)
    _twin: np.ndarray | None = field(default=None, init=False, repr=False)
    _structures: dict[bool, _Structure] = field(default_factory=dict, init=False, repr=False)
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    # -- sizes ------------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def array(self, column: str) -> np.ndarray:
        """Column of ``edges`` as a cached numpy array (treat ``edges`` as read-only)."""
        if column not in self._arrays:
            self._arrays[column] = self.edges[column].to_numpy()
        return self._arrays[column]

    @property
    def geoms(self) -> np.ndarray:
        """Edge geometries as a cached numpy object array."""
        if "__geometry__" not in self._arrays:
            self._arrays["__geometry__"] = np.asarray(self.edges.geometry.values, dtype=object)
        return self._arrays["__geometry__"]

    @property
    def u(self) -> np.ndarray:
        return self.array("u")

    @property
    def v(self) -> np.ndarray:
        return self.array("v")

    @property
    def length_m(self) -> np.ndarray:
        return self.array("length_m")

    @property
    def twin(self) -> np.ndarray:
        """Per edge, the opposite-direction edge of the same piece (-1 when oneway)."""
        if self._twin is None:
            piece = self.array("piece")
            rev = self.array("reverse").astype(bool)
            twin = np.full(self.n_edges, -1, dtype=np.int64)
            fwd_of_piece = np.full(int(piece.max()) + 1 if len(piece) else 0, -1, dtype=np.int64)
            bwd_of_piece = fwd_of_piece.copy()
            ids = np.arange(self.n_edges)
            fwd_of_piece[piece[~rev]] = ids[~rev]
            bwd_of_piece[piece[rev]] = ids[rev]
            twin[~rev] = bwd_of_piece[piece[~rev]]
            twin[rev] = fwd_of_piece[piece[rev]]
            self._twin = twin
        return self._twin

    # -- matrices ---------------------------------------------------------------------------
    def _structure(self, transpose: bool) -> _Structure:
        key = bool(transpose)
        if key not in self._structures:
            rows, cols = (self.v, self.u) if transpose else (self.u, self.v)
            ids = np.arange(self.n_edges, dtype=np.int64)
            order = np.lexsort((ids, cols, rows))
            r, c = rows[order], cols[order]
            new = np.ones(len(r), dtype=bool)
            new[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
            starts = np.flatnonzero(new)
            size = np.diff(np.append(starts, len(r)))
            multi = np.flatnonzero(size > 1)
            members = np.repeat(multi, size[multi])
            offs = np.concatenate([np.arange(k) for k in size[multi]]) if len(multi) else \
                np.zeros(0, dtype=np.int64)
            member_pos = starts[members] + offs
            n = self.n_nodes
            indptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(np.bincount(r[starts], minlength=n), out=indptr[1:])
            idx_t = np.int32 if len(r) < 2**31 - 1 and n < 2**31 - 1 else np.int64
            self._structures[key] = _Structure(
                order=order, starts=starts, rows=r[starts], cols=c[starts],
                multi=multi, multi_members=members, multi_pos=member_pos,
                entry=order[starts], indptr=indptr.astype(idx_t),
                cols32=c[starts].astype(idx_t))
        return self._structures[key]

    def csr_layout(self, *, transpose: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(indptr, indices)`` of the full n×n CSR layout (one entry per distinct node pair,
        sorted), the layout :meth:`matrix_data` fills. Cached; do not modify."""
        st = self._structure(transpose)
        return st.indptr, st.cols32

    def matrix_data(self, weights: np.ndarray, *, transpose: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
        """``(data, entry)`` aligned with :meth:`csr_layout`: per node pair the smallest
        weight of its parallel edges (ties: lowest edge id) and that edge. Non-finite weights
        stay ``inf`` (csgraph never relaxes an inf edge); 0 becomes 1e-9."""
        w = np.asarray(weights, dtype=float)
        if w.shape != (self.n_edges,):
            raise ValueError(f"weights has shape {w.shape}; expected ({self.n_edges},), "
                             "one weight per edge")
        if np.any(w < 0):
            raise ValueError("weights must be >= 0; got a negative weight "
                             f"on edge {int(np.flatnonzero(w < 0)[0])}")
        st = self._structure(transpose)
        if len(w) == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        # 0 → 1e-9; inf stays inf; NaN (→ inf below) never beats a parallel edge
        ws = np.maximum(w, _MIN_WEIGHT)[st.order]
        if len(st.multi):
            gmin = np.fmin.reduceat(ws, st.starts)
            entry = st.entry.copy()
            # lowest weight, then lowest edge id, inside each parallel group
            mw = ws[st.multi_pos]
            me = st.order[st.multi_pos]
            o = np.lexsort((me, mw, st.multi_members))
            g = st.multi_members[o]
            first = np.ones(len(g), dtype=bool)
            first[1:] = g[1:] != g[:-1]
            entry[g[first]] = me[o][first]
        else:
            gmin, entry = ws, st.entry
        nan = np.isnan(gmin)
        if nan.any():
            gmin = np.where(nan, np.inf, gmin)
        return gmin, entry

    def matrix_with_edges(
        self, weights: np.ndarray, *, transpose: bool = False
    ) -> tuple[sparse.csr_matrix, np.ndarray]:
        """``(matrix, entry_edge)``: the n×n CSR cost matrix and, aligned with its ``data``,
        the edge (row position) whose weight each entry holds.

        Parallel edges keep the smallest weight (ties: the lowest edge id). Edges with a
        non-finite weight (inf/NaN) are left out; weights must be >= 0 (0 is stored as 1e-9
        because csgraph reads an explicit zero as a missing edge). ``transpose`` gives the
        matrix of the reversed graph (entry ``[v, u]`` for edge ``u→v``), for searches
        towards a target. The sparsity structure is cached, so a new weight array costs
        O(edges) vectorised work.
        """
        gmin, entry = self.matrix_data(weights, transpose=transpose)
        st = self._structure(transpose)
        n = self.n_nodes
        if len(gmin) == 0:
            return sparse.csr_matrix((n, n)), np.zeros(0, dtype=np.int64)
        keep = gmin < np.inf
        if keep.all():
            m = sparse.csr_matrix((gmin, st.cols32, st.indptr), shape=(n, n), copy=False)
            return m, entry
        gmin, entry, rows, cols = gmin[keep], entry[keep], st.rows[keep], st.cols32[keep]
        indptr = np.zeros(n + 1, dtype=st.indptr.dtype)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        m = sparse.csr_matrix((gmin, cols, indptr), shape=(n, n), copy=False)
        return m, entry

    def edge_between(self, u: np.ndarray | Sequence[int], v: np.ndarray | Sequence[int], *,
                     weights: np.ndarray | None = None) -> np.ndarray:
        """The edge ``u[i]→v[i]`` for each pair (vectorised; -1 where there is none).

        Among parallel edges the one with the lowest ``weights`` (default ``length_m``) wins,
        ties to the lowest edge id — the edge :meth:`matrix_with_edges` reports.
        """
        uu = np.asarray(u, dtype=np.int64).ravel()
        vv = np.asarray(v, dtype=np.int64).ravel()
        st = self._structure(False)
        n = max(self.n_nodes, 1)
        keys = st.rows.astype(np.int64) * n + st.cols.astype(np.int64)
        want = uu * n + vv
        gi = np.searchsorted(keys, want)
        gi_c = np.minimum(gi, max(len(keys) - 1, 0))
        found = (gi < len(keys)) & (keys[gi_c] == want) if len(keys) else np.zeros(len(uu), bool)
        out = np.where(found, st.entry[gi_c] if len(keys) else -1, -1).astype(np.int64)
        if len(st.multi) and found.any():
            w = self.length_m if weights is None else np.asarray(weights, dtype=float)
            multi_groups = np.isin(gi_c, st.multi) & found
            for i in np.flatnonzero(multi_groups):
                g = gi_c[i]
                lo = st.starts[g]
                hi = st.starts[g + 1] if g + 1 < len(st.starts) else len(st.order)
                members = np.sort(st.order[lo:hi])
                ww = np.where(np.isnan(w[members]), np.inf, w[members])
                out[i] = members[int(np.argmin(ww))]
        return out

    def matrix(self, weights: np.ndarray | None = None) -> sparse.csr_matrix:
        """The n×n CSR cost matrix for ``weights`` (default ``length_m``).

        See :meth:`matrix_with_edges` for the rules (parallel edges → minimum, non-finite →
        left out).
        """
        return self.matrix_with_edges(self.length_m if weights is None else weights)[0]

    # -- snapping ---------------------------------------------------------------------------
    @property
    def tree(self) -> shapely.STRtree:
        """STRtree over the edge geometries (positions = edge row positions)."""
        if self._tree is None:
            self._tree = shapely.STRtree(self.geoms)
        return self._tree

    def snap(
        self,
        points: gpd.GeoSeries | Sequence[Any] | np.ndarray,
        *,
        max_m: float = np.inf,
        mask: np.ndarray | None = None,
    ) -> SnapResult:
        """Snap points to the nearest edge (among ``mask`` when given) within ``max_m``.

        ``points`` are shapely points in the graph's CRS (a GeoSeries is checked for it).
        Equidistant edges (e.g. both directions of a two-way piece) resolve to the lowest
        edge id. Points with no edge within ``max_m`` get ``edge = -1`` and NaN distances.
        """
        geoms = self._points(points)
        k = len(geoms)
        best_e = np.full(k, -1, dtype=np.int64)
        best_d = np.full(k, np.inf)
        if k == 0 or self.n_edges == 0:
            return self._snap_result(geoms, best_e, best_d)
        allowed = None if mask is None else np.asarray(mask, dtype=bool)
        if allowed is not None and allowed.shape != (self.n_edges,):
            raise ValueError(f"mask has shape {allowed.shape}; expected ({self.n_edges},)")
        if allowed is None:
            kw: dict[str, Any] = {"all_matches": True, "return_distance": True}
            if np.isfinite(max_m):
                kw["max_distance"] = float(max_m)
            (pi, ei), d = self.tree.query_nearest(geoms, **kw)
        elif np.isfinite(max_m):
            # fast path: the nearest edges, when one of them is allowed
            (pi, ei), d = self.tree.query_nearest(geoms, max_distance=float(max_m),
                                                  all_matches=True, return_distance=True)
            ok = allowed[ei]
            pi, ei, d = pi[ok], ei[ok], d[ok]
            todo = np.setdiff1d(np.arange(k), pi)
            if len(todo):
                qi, qe = self.tree.query(geoms[todo], predicate="dwithin",
                                         distance=float(max_m))
                keep = allowed[qe]
                qi, qe = todo[qi[keep]], qe[keep]
                qd = shapely.distance(geoms[qi], self.geoms[qe])
                pi, ei, d = (np.concatenate([pi, qi]), np.concatenate([ei, qe]),
                             np.concatenate([d, qd]))
        else:
            sub = np.flatnonzero(allowed)
            if len(sub) == 0:
                return self._snap_result(geoms, best_e, best_d)
            tree = shapely.STRtree(self.geoms[sub])
            (pi, si), d = tree.query_nearest(geoms, all_matches=True, return_distance=True)
            ei = sub[si]
        if len(pi):
            order = np.lexsort((ei, d, pi))
            pi, ei, d = pi[order], ei[order], d[order]
            first = np.ones(len(pi), dtype=bool)
            first[1:] = pi[1:] != pi[:-1]
            best_e[pi[first]] = ei[first]
            best_d[pi[first]] = d[first]
        return self._snap_result(geoms, best_e, best_d)

    def _points(self, points: Any) -> np.ndarray:
        if isinstance(points, gpd.GeoSeries):
            if points.crs is not None and self.crs is not None and not points.crs.equals(self.crs):
                raise ValueError(f"points are in {points.crs.to_string()}; expected the graph's "
                                 f"CRS {gpd.GeoSeries([], crs=self.crs).crs.to_string()}")
            return np.asarray(points.values, dtype=object)
        return np.asarray(points, dtype=object)

    def _snap_result(self, geoms: np.ndarray, e: np.ndarray, d: np.ndarray) -> SnapResult:
        ok = e >= 0
        pos = np.full(len(e), np.nan)
        x = np.full(len(e), np.nan)
        y = np.full(len(e), np.nan)
        if ok.any():
            lines = self.geoms[e[ok]]
            pos[ok] = shapely.line_locate_point(lines, geoms[ok])
            foot = shapely.line_interpolate_point(lines, pos[ok])
            x[ok], y[ok] = shapely.get_x(foot), shapely.get_y(foot)
        dist = np.where(ok, d, np.nan)
        return SnapResult(edge=e, distance_m=dist, position_m=pos, x=x, y=y)

    def nearest_node(
        self, points: gpd.GeoSeries | Sequence[Any] | np.ndarray, *, max_m: float = np.inf
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(node, distance_m)`` of the nearest node per point (-1 / NaN beyond ``max_m``)."""
        geoms = self._points(points)
        xy = shapely.get_coordinates(geoms)
        if self.n_nodes == 0 or len(xy) == 0:
            return np.full(len(xy), -1, dtype=np.int64), np.full(len(xy), np.nan)
        d, i = cKDTree(self.nodes).query(xy, distance_upper_bound=max_m)
        far = ~np.isfinite(d)
        i = np.where(far, -1, i).astype(np.int64)
        return i, np.where(far, np.nan, d)

    node_of_points = nearest_node


# -- building -------------------------------------------------------------------------------
def oneway_direction(values: pd.Series | np.ndarray | Sequence[Any]) -> np.ndarray:
    """Map oneway values to 1 (digitised direction only), -1 (opposite only) or 0 (both)."""
    s = pd.Series(values, dtype="object")
    out = np.zeros(len(s), dtype=np.int8)
    for i, val in enumerate(s.to_numpy()):
        if val is None or (isinstance(val, float) and np.isnan(val)):
            continue
        if isinstance(val, (bool, np.bool_)):
            out[i] = 1 if val else 0
        elif isinstance(val, (int, np.integer, float, np.floating)):
            out[i] = 1 if val == 1 else (-1 if val == -1 else 0)
        else:
            text = str(val).strip().lower()
            out[i] = 1 if text in _FORWARD_TEXT else (-1 if text in _BACKWARD_TEXT else 0)
    return out


def build_graph(
    lines: gpd.GeoDataFrame,
    *,
    id_column: str = "id",
    oneway_column: str | None = "oneway",
    snap_m: float = 0.5,
    split_at_intersections: bool = True,
    source_layer: str = "roads",
) -> RoadGraph:
    """Build the directed :class:`RoadGraph` of line features.

    Parameters
    ----------
    lines
        LineString/MultiLineString features, projected CRS in metres.
    id_column
        Column copied to ``source_id`` (row position when absent).
    oneway_column
        Column read by :func:`oneway_direction`; ``None`` or absent → every line two-way.
    snap_m
        Endpoints (and shared vertices) closer than this become one node. Interior vertices
        of the same line are never merged with each other.
    split_at_intersections
        Also split lines at interior vertices shared with another line (default). Lines that
        cross without a shared vertex (bridges, tunnels) are never connected.
    source_layer
        Value of ``source_layer`` for every edge, unless ``lines`` has a ``source_layer``
        column (e.g. a concatenation of roads and fire lanes), whose per-row values win.

    Returns
    -------
    RoadGraph
    """
    require_projected(lines, "lines")
    if snap_m < 0:
        raise ValueError(f"snap_m is {snap_m}; expected a distance >= 0 in metres")
    src = lines.reset_index(drop=True)
    geom = src.geometry.values
    ok = ~(shapely.is_missing(geom) | shapely.is_empty(geom))
    gtype = shapely.get_type_id(geom)
    bad = ok & ~np.isin(gtype, (1, 5))
    if bad.any():
        raise ValueError(f"lines: row {int(np.flatnonzero(bad)[0])} is a "
                         f"{shapely.get_type_id(geom[bad][0])} geometry; expected LineString or "
                         "MultiLineString")
    parts, part_row = shapely.get_parts(geom[ok], return_index=True)
    part_row = np.flatnonzero(ok)[part_row]
    # part number within its source row
    part_no = np.arange(len(part_row)) - np.searchsorted(part_row, part_row, side="left")
    keep = shapely.get_num_points(parts) >= 2
    parts, part_row, part_no = parts[keep], part_row[keep], part_no[keep]

    coords, line_of = shapely.get_coordinates(parts, return_index=True)
    coords = np.ascontiguousarray(coords, dtype=float)
    nv = len(coords)
    counts = np.bincount(line_of, minlength=len(parts))
    starts = np.zeros(len(parts), dtype=np.int64)
    if len(parts):
        np.cumsum(counts[:-1], out=starts[1:])
    ends = starts + counts - 1
    is_end = np.zeros(nv, dtype=bool)
    is_end[starts] = True
    is_end[ends] = True

    # cumulative distance along each part, per vertex
    seg = np.zeros(nv)
    if nv > 1:
        step = np.hypot(*(coords[1:] - coords[:-1]).T)
        same_line = line_of[1:] == line_of[:-1]
        seg[1:] = np.where(same_line, step, 0.0)
    cum = np.cumsum(seg)
    cum -= cum[starts][line_of] if nv else 0.0

    label = _cluster(coords, line_of, is_end, snap_m)
    # a vertex is a node when it is an endpoint, or (splitting) shares its cluster with
    # another line's vertex
    if split_at_intersections:
        lines_in_cluster = pd.Series(line_of).groupby(label).nunique().to_numpy()
        shared = lines_in_cluster[label] >= 2
        is_node_vertex = is_end | shared
    else:
        is_node_vertex = is_end
    node_vertices = np.flatnonzero(is_node_vertex)
    clusters, first_pos, node_of_vertex_nv = np.unique(
        label[node_vertices], return_index=True, return_inverse=True
    )
    # number nodes by first appearance
    rank = np.argsort(np.argsort(node_vertices[first_pos]))
    node_id_nv = rank[node_of_vertex_nv]
    nodes = np.empty((len(clusters), 2))
    nodes[rank] = coords[node_vertices[first_pos]]
    vertex_node = np.full(nv, -1, dtype=np.int64)
    vertex_node[node_vertices] = node_id_nv
    adj = coords.copy()
    adj[node_vertices] = nodes[node_id_nv]

    # pieces between consecutive node vertices of the same line
    same = line_of[node_vertices[1:]] == line_of[node_vertices[:-1]]
    p_start = node_vertices[:-1][same]
    p_end = node_vertices[1:][same]
    p_count = p_end - p_start + 1
    piece_of = np.repeat(np.arange(len(p_start)), p_count)
    offs = np.zeros(len(p_start), dtype=np.int64)
    if len(p_start):
        np.cumsum(p_count[:-1], out=offs[1:])
    within = np.arange(int(p_count.sum())) - np.repeat(offs, p_count)
    vidx = p_start[piece_of] + within
    piece_geom = (shapely.linestrings(adj[vidx], indices=piece_of) if len(p_start)
                  else np.empty(0, dtype=object))
    pu, pv = vertex_node[p_start], vertex_node[p_end]
    plen = shapely.length(piece_geom)
    real = ~((pu == pv) & (plen <= max(snap_m, 1e-9)))
    p_start, p_end, piece_geom, pu, pv, plen = (
        p_start[real], p_end[real], piece_geom[real], pu[real], pv[real], plen[real])
    p_line = line_of[p_start]
    p_row = part_row[p_line]
    p_from, p_to = cum[p_start], cum[p_end]

    # directions
    if oneway_column is not None and oneway_column in src.columns:
        direction = oneway_direction(src[oneway_column])[p_row]
    else:
        direction = np.zeros(len(p_row), dtype=np.int8)
    fwd = direction >= 0
    bwd = direction <= 0
    piece_ids = np.concatenate([np.flatnonzero(fwd), np.flatnonzero(bwd)])
    reverse = np.concatenate([np.zeros(int(fwd.sum()), bool), np.ones(int(bwd.sum()), bool)])
    order = np.lexsort((reverse, piece_ids))
    piece_ids, reverse = piece_ids[order], reverse[order]
    e_geom = piece_geom[piece_ids].copy()
    if reverse.any():
        e_geom[reverse] = shapely.reverse(e_geom[reverse])
    eu = np.where(reverse, pv[piece_ids], pu[piece_ids])
    ev = np.where(reverse, pu[piece_ids], pv[piece_ids])
    rows = p_row[piece_ids]

    if id_column in src.columns:
        source_id = src[id_column].to_numpy(dtype=object)[rows]
    else:
        source_id = rows.astype(object)
    if "source_layer" in src.columns:
        layer_col = src["source_layer"].fillna(source_layer).to_numpy(dtype=object)[rows]
    else:
        layer_col = np.full(len(rows), source_layer, dtype=object)
    data: dict[str, Any] = {
        "edge_id": np.arange(len(rows), dtype=np.int64),
        "u": eu.astype(np.int64),
        "v": ev.astype(np.int64),
        "piece": piece_ids.astype(np.int64),
        "reverse": reverse,
        "source_layer": layer_col,
        "source_id": source_id,
        "source_row": rows.astype(np.int64),
        "part": part_no[p_line[piece_ids]].astype(np.int64),
        "from_m": p_from[piece_ids],
        "to_m": p_to[piece_ids],
        "length_m": plen[piece_ids],
    }
    attrs = src.drop(columns=[src.geometry.name]).iloc[rows].reset_index(drop=True)
    attrs = attrs.drop(columns=[c for c in attrs.columns if c in data])
    frame = pd.concat([pd.DataFrame(data), attrs], axis=1)
    edges = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(e_geom, crs=src.crs), crs=src.crs)
    return RoadGraph(crs=src.crs, nodes=nodes, edges=edges)


def _cluster(coords: np.ndarray, line_of: np.ndarray, is_end: np.ndarray,
             snap_m: float) -> np.ndarray:
    """Cluster label per vertex: vertices closer than ``snap_m`` join, except two interior
    vertices of the same line (so densely digitised curves do not collapse)."""
    nv = len(coords)
    if nv == 0:
        return np.zeros(0, dtype=np.int64)
    if snap_m > 0:
        pairs = cKDTree(coords).query_pairs(snap_m, output_type="ndarray")
    else:
        _, inv = np.unique(coords, axis=0, return_inverse=True)
        inv = inv.ravel()
        order = np.argsort(inv, kind="stable")
        s = inv[order]
        dup = s[1:] == s[:-1]
        pairs = np.column_stack([order[:-1][dup], order[1:][dup]])
    if len(pairs):
        a, b = pairs[:, 0], pairs[:, 1]
        keep = (line_of[a] != line_of[b]) | (is_end[a] & is_end[b])
        a, b = a[keep], b[keep]
    else:
        a = b = np.zeros(0, dtype=np.int64)
    g = sparse.coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(nv, nv))
    _, label = csgraph.connected_components(g, directed=False)
    return label.astype(np.int64)


# -- shortest paths ---------------------------------------------------------------------------
def multi_source_dijkstra(
    matrix: sparse.csr_matrix,
    sources: Sequence[int] | np.ndarray,
    *,
    initial_costs: Sequence[float] | np.ndarray | None = None,
    limit: float = np.inf,
) -> DijkstraResult:
    """Cost from the nearest of several sources to every node, in one pass.

    ``sources`` are node indices; ``initial_costs`` (same length) a head start per source
    (e.g. turnout time, or the cost from a point on an edge to the edge's end node), default
    0. ``limit`` stops the search beyond that cost (nodes beyond stay unreached). Uses
    ``scipy.sparse.csgraph.dijkstra(indices=sources, min_only=True)``; with initial costs a
    virtual super-source is added.
    """
    src = np.asarray(sources, dtype=np.int64).ravel()
    n = matrix.shape[0]
    if len(src) == 0:
        return DijkstraResult(np.full(n, np.inf), np.full(n, -1, np.int64),
                              np.full(n, -9999, np.int64))
    if np.any((src < 0) | (src >= n)):
        raise ValueError(f"sources must be node indices in 0..{n - 1}")
    if initial_costs is None:
        dist, pred, srcnode = csgraph.dijkstra(matrix, directed=True, indices=src,
                                               min_only=True, return_predecessors=True,
                                               limit=limit)
        pos_of_node = np.full(n, -1, dtype=np.int64)
        # first occurrence of a node in ``sources`` wins
        pos_of_node[src[::-1]] = np.arange(len(src))[::-1]
        source = np.where(srcnode >= 0, pos_of_node[np.maximum(srcnode, 0)], -1)
        return DijkstraResult(dist, source.astype(np.int64), pred.astype(np.int64))
    init = np.asarray(initial_costs, dtype=float).ravel()
    if init.shape != src.shape:
        raise ValueError("initial_costs must have one value per source")
    if np.any(~np.isfinite(init) | (init < 0)):
        raise ValueError("initial_costs must be finite and >= 0")
    # best (lowest) head start per distinct node; ties → first in sources
    order = np.lexsort((np.arange(len(src)), init, src))
    s_sorted = src[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = s_sorted[1:] != s_sorted[:-1]
    pick = order[first]
    aug = sparse.bmat(
        [[matrix, None],
         [sparse.csr_matrix((np.maximum(init[pick], _MIN_WEIGHT),
                             (np.zeros(len(pick), dtype=np.int64), src[pick])), shape=(1, n)),
          None]], format="csr")
    aug.resize((n + 1, n + 1))
    dist, pred = csgraph.dijkstra(aug, directed=True, indices=n, return_predecessors=True,
                                  limit=limit + _MIN_WEIGHT)
    dist, pred = dist[:n], pred[:n].astype(np.int64)
    # zero head starts were stored as 1e-9: remove it from every reached cost
    reached = np.isfinite(dist)
    # root (child of the super-source) of every reached node by pointer jumping
    root = np.where(pred == n, np.arange(n), pred)
    root = np.where(reached, root, -1)
    for _ in range(64):
        nxt = np.where(root >= 0, root[np.maximum(root, 0)], -1)
        if np.array_equal(nxt, root):
            break
        root = nxt
    pos_of_node = np.full(n, -1, dtype=np.int64)
    pos_of_node[src[pick]] = pick
    source = np.where(root >= 0, pos_of_node[np.maximum(root, 0)], -1)
    head = np.where(root >= 0, init[np.maximum(source, 0)], 0.0)
    stored = np.where(root >= 0, np.maximum(head, _MIN_WEIGHT), 0.0)
    dist = np.where(reached, dist - stored + head, np.inf)
    pred = np.where(pred == n, -9999, pred)
    return DijkstraResult(dist, source.astype(np.int64), pred)


def path_nodes(predecessor: np.ndarray, target: int) -> np.ndarray:
    """Node sequence from the source to ``target`` along a predecessor array (empty when
    ``target`` is unreached and not a source)."""
    out = [int(target)]
    p = int(predecessor[target])
    seen = 0
    while p >= 0:
        out.append(p)
        p = int(predecessor[p])
        seen += 1
        if seen > len(predecessor):
            raise ValueError("predecessor array has a cycle")
    return np.asarray(out[::-1], dtype=np.int64)


def path_edges(matrix: sparse.csr_matrix, entry_edge: np.ndarray,
               nodes: Sequence[int] | np.ndarray) -> np.ndarray:
    """Edges (row positions) realising consecutive node pairs of ``nodes`` in a matrix from
    :meth:`RoadGraph.matrix_with_edges` (-1 where the matrix has no such entry)."""
    nodes = np.asarray(nodes, dtype=np.int64)
    if len(nodes) < 2:
        return np.zeros(0, dtype=np.int64)
    a, b = nodes[:-1], nodes[1:]
    out = np.full(len(a), -1, dtype=np.int64)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        lo, hi = matrix.indptr[x], matrix.indptr[x + 1]
        j = lo + np.searchsorted(matrix.indices[lo:hi], y)
        if j < hi and matrix.indices[j] == y:
            out[i] = entry_edge[j]
    return out
