"""Hazmat vehicle routing: zone rules with hours, permits, risk score, alternatives.

:func:`prepare_network` precomputes, once per road/zone/building data set, everything a
request needs per edge — travel time (hazmat speed caps), population exposure within the
impact corridor, the zones each edge lies in (any stretch, interior included) and the
hazmat/weight/height restrictions. :func:`route` then answers one request with vectorised
weight arrays and ``scipy.sparse.csgraph`` Dijkstra searches on the shared
:class:`geo.network.RoadGraph`.

Rules per request (zones evaluated at ``depart_at``; ``None`` = every zone counts as on):

* ``forbidden`` zones remove their edges while on; ``permit`` zones too, unless the request
  carries a permit for that zone id; ``avoid`` zones multiply the edge cost by ``penalty``
  (the largest penalty when an edge lies in several).
* ``roads.hazmat = no`` is always refused; ``destination`` only at the ends of the trip: the
  destination-only stretch (connected destination-only edges) the origin or destination is
  snapped onto is usable, no other.
* ``vehicle.weight_t`` > ``max_weight_t`` or ``vehicle.height_m`` > ``max_height_m`` refuses
  the edge.

Risk score of a route = Σ over its edges of exposure × length (km), exposure = households of
buildings + occupants of sensitive sites within ``corridor_m`` of the edge (FHWA-style
population-at-risk along the route). Units: exposed households/persons × km.

Alternatives are found by the *plateau* method (choice routing; Abraham et al. 2013): one
forward search from the origin and one backward search to the destination; a stretch where the
two shortest-path trees coincide (a plateau) yields a locally optimal via-route. Candidates
within ``max_stretch`` × the best cost are accepted when they share at most ``max_overlap`` of
their length with every better route; if that gives fewer than ``k``, a penalty search (the
edges of accepted routes cost double) fills up.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.ops
from pyproj import CRS, Transformer
from scipy import sparse
from scipy.sparse import csgraph
from shapely.geometry import LineString, Point

from geo.crs import STORAGE_CRS, require_projected
from geo.network import RoadGraph, build_graph
from geo.zones import Hours, edges_in_zones, parse_hours, zones_at_points
from layers.errors import RiskmapError

__all__ = [
    "OBJECTIVES",
    "HazmatNetwork",
    "NoRouteError",
    "RouteResult",
    "RoutingParams",
    "SnapError",
    "Vehicle",
    "prepare_network",
    "route",
]

Objective = Literal["time", "distance", "risk"]
OBJECTIVES: tuple[str, ...] = ("time", "distance", "risk")
_HAZMAT_CODES = {"yes": 0, "destination": 1, "no": 2}
_EPS = 1e-9


class NoRouteError(RiskmapError, LookupError):
    """No permitted route exists; the message names what blocks it."""


class SnapError(RiskmapError, ValueError):
    """An origin/destination is too far from a permitted road, or not lon/lat."""


@dataclass(frozen=True)
class Vehicle:
    """The vehicle of a request (``None`` = not checked)."""

    weight_t: float | None = None
    height_m: float | None = None


@dataclass(frozen=True)
class RoutingParams:
    """Rule values for routing (loaded by ``layers.hazmat_rules``; see ``hazmat.toml``)."""

    speeds_kmh: Mapping[str, float]
    default_speed_kmh: float
    speed_caps_kmh: Mapping[str, float]
    default_speed_cap_kmh: float
    corridor_m: float
    snap_max_m: float
    graph_snap_m: float
    avoid_penalty: float
    max_stretch: float
    max_overlap: float
    sensitive_site_kinds: tuple[str, ...]
    risk_tiebreak_per_m: float = 1e-3


@dataclass
class HazmatNetwork:
    """Everything :func:`route` needs, precomputed per data set (cache it per store version).

    Per-edge arrays align with ``graph.edges``. ``zone_edge``/``zone_zone`` list the
    (edge, zone row) pairs where the edge has a stretch in the zone.
    """

    graph: RoadGraph
    zones: gpd.GeoDataFrame
    params: RoutingParams
    time_s: np.ndarray
    speed_kmh: np.ndarray
    exposure: np.ndarray
    risk: np.ndarray
    hazmat: np.ndarray
    max_weight_t: np.ndarray
    max_height_m: np.ndarray
    zone_edge: np.ndarray
    zone_zone: np.ndarray
    dest_component: np.ndarray
    zone_hours: list[Hours] = field(default_factory=list)
    _to_xy: Transformer | None = field(default=None, init=False, repr=False)

    @property
    def crs(self) -> Any:
        return self.graph.crs

    def base_cost(self, objective: str) -> np.ndarray:
        """Per-edge cost of ``objective`` before any rule (time s, length m, risk + tiebreak)."""
        if objective == "time":
            return self.time_s
        if objective == "distance":
            return self.graph.length_m
        if objective == "risk":
            return self.risk + self.params.risk_tiebreak_per_m * self.graph.length_m
        raise ValueError(f"objective is {objective!r}; expected one of {', '.join(OBJECTIVES)}")

    def to_xy(self, lonlat: Sequence[float], what: str) -> Point:
        lon, lat = (float(lonlat[0]), float(lonlat[1]))
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise SnapError(f"{what} ({lon}, {lat}) is not lon/lat in degrees; expected "
                            "LON,LAT with -180 <= lon <= 180 and -90 <= lat <= 90")
        if self._to_xy is None:
            self._to_xy = Transformer.from_crs(STORAGE_CRS, CRS.from_user_input(self.crs),
                                               always_xy=True)
        x, y = self._to_xy.transform(lon, lat)
        return Point(x, y)


def prepare_network(
    roads: gpd.GeoDataFrame,
    *,
    zones: gpd.GeoDataFrame | None,
    buildings: gpd.GeoDataFrame | None,
    sites: gpd.GeoDataFrame | None,
    params: RoutingParams,
    graph: RoadGraph | None = None,
) -> HazmatNetwork:
    """Precompute the hazmat network of ``roads`` (projected, metres; all inputs one CRS).

    ``graph`` reuses an already built graph of the same roads. Buildings need
    ``households`` (missing → 0), sites ``kind`` and ``occupants`` (missing → 0).
    """
    require_projected(roads, "roads")
    crs = roads.crs
    for name, gdf in (("zones", zones), ("buildings", buildings), ("sites", sites)):
        if gdf is not None:
            require_projected(gdf, name)
            if not gdf.crs.equals(crs):
                raise ValueError(f"{name} are in {gdf.crs.to_string()} but roads in "
                                 f"{crs.to_string()}; project both to one CRS")
    g = graph if graph is not None else build_graph(roads, snap_m=params.graph_snap_m)
    e = g.edges
    m = g.n_edges

    road_class = _col(e, "road_class", "local").astype(str).to_numpy()
    speed = pd.to_numeric(_col(e, "speed_kmh", np.nan), errors="coerce").to_numpy(dtype=float)
    default = np.array([params.speeds_kmh.get(c, params.default_speed_kmh) for c in road_class])
    speed = np.where(np.isfinite(speed) & (speed > 0), speed, default)
    cap = np.array([params.speed_caps_kmh.get(c, params.default_speed_cap_kmh)
                    for c in road_class])
    speed = np.minimum(speed, cap)
    time_s = g.length_m / (speed / 3.6)

    piece = e["piece"].to_numpy()
    first_of_piece = np.unique(piece, return_index=True)[1]
    piece_geom = e.geometry.values[first_of_piece]
    n_piece = int(piece.max()) + 1 if m else 0
    exposure_piece = np.zeros(n_piece)
    if buildings is not None and len(buildings):
        hh = pd.to_numeric(_col(buildings, "households", 0), errors="coerce").fillna(0)
        exposure_piece += _corridor_sum(piece_geom, buildings.geometry.values,
                                        hh.to_numpy(dtype=float), params.corridor_m)
    if sites is not None and len(sites):
        sens = _col(sites, "kind", "").isin(params.sensitive_site_kinds).to_numpy()
        occ = pd.to_numeric(_col(sites, "occupants", 0), errors="coerce").fillna(0)
        if sens.any():
            exposure_piece += _corridor_sum(piece_geom, sites.geometry.values[sens],
                                            occ.to_numpy(dtype=float)[sens], params.corridor_m)
    piece_pos = np.zeros(n_piece, dtype=np.int64)
    piece_pos[piece[first_of_piece]] = np.arange(len(first_of_piece))
    exposure = exposure_piece[piece]
    risk = exposure * g.length_m / 1000.0

    hz = _col(e, "hazmat", "yes").fillna("yes").astype(str).str.lower()
    hazmat = hz.map(_HAZMAT_CODES).fillna(0).to_numpy(dtype=np.int8)
    mw = pd.to_numeric(_col(e, "max_weight_t", np.nan), errors="coerce").to_numpy(dtype=float)
    mh = pd.to_numeric(_col(e, "max_height_m", np.nan), errors="coerce").to_numpy(dtype=float)

    if zones is None:
        zones = gpd.GeoDataFrame({"id": [], "rule": [], "hours": []},
                                 geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    zones = zones.reset_index(drop=True)
    pairs = edges_in_zones(gpd.GeoSeries(piece_geom, crs=crs), zones)
    # expand piece pairs to both directed edges
    edges_of_piece = pd.Series(np.arange(m)).groupby(piece).apply(list)
    ze: list[int] = []
    zz: list[int] = []
    for li, zi in zip(pairs["line"].to_numpy(), pairs["zone"].to_numpy(), strict=True):
        for ed in edges_of_piece.iloc[li]:
            ze.append(ed)
            zz.append(int(zi))
    hours = [parse_hours(h) for h in _col(zones, "hours", "")]

    dest = hazmat == 1
    comp = np.full(m, -1, dtype=np.int64)
    if dest.any():
        n = g.n_nodes
        a = sparse.coo_matrix((np.ones(int(dest.sum())), (g.u[dest], g.v[dest])), shape=(n, n))
        _, lab = csgraph.connected_components(a, directed=False)
        comp[dest] = lab[g.u[dest]]
    del piece_pos
    return HazmatNetwork(
        graph=g, zones=zones, params=params, time_s=time_s, speed_kmh=speed,
        exposure=exposure, risk=risk, hazmat=hazmat, max_weight_t=mw, max_height_m=mh,
        zone_edge=np.asarray(ze, dtype=np.int64), zone_zone=np.asarray(zz, dtype=np.int64),
        dest_component=comp, zone_hours=hours,
    )


def _col(df: pd.DataFrame, name: str, default: Any) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series([default] * len(df), index=df.index)


def _corridor_sum(lines: np.ndarray, geoms: np.ndarray, values: np.ndarray,
                  corridor_m: float) -> np.ndarray:
    """Per line, the sum of ``values`` of geometries within ``corridor_m`` of it."""
    li, gi = shapely.STRtree(geoms).query(lines, predicate="dwithin", distance=corridor_m)
    return np.bincount(li, weights=values[gi], minlength=len(lines))


# -- requests -----------------------------------------------------------------------------------
@dataclass
class _Request:
    """Per-request rule state."""

    zone_block: np.ndarray  # per zone
    zone_factor: np.ndarray  # per zone (1 = no effect)
    edge_zone_block: np.ndarray  # per edge
    factor: np.ndarray  # per edge
    overweight: np.ndarray
    overheight: np.ndarray

    def hard_block(self, net: HazmatNetwork) -> np.ndarray:
        return self.edge_zone_block | (net.hazmat == 2) | self.overweight | self.overheight


def _request_state(net: HazmatNetwork, at: datetime | time | None, permits: Iterable[str],
                   vehicle: Vehicle | None) -> _Request:
    z = net.zones
    nz = len(z)
    rule = _col(z, "rule", "forbidden").astype(str).to_numpy()
    ids = _col(z, "id", "").astype(str).to_numpy()
    permits = {str(p) for p in permits}
    unknown = permits - set(ids[rule == "permit"])
    if unknown:
        known = ", ".join(sorted(set(ids[rule == "permit"]))) or "none"
        raise ValueError(f"permit for unknown zone {', '.join(sorted(unknown))}; "
                         f"permit zones are: {known}")
    active = np.array([h.active(at) for h in net.zone_hours], dtype=bool) if nz else \
        np.zeros(0, bool)
    block = active & ((rule == "forbidden") | ((rule == "permit") & ~np.isin(ids, list(permits))))
    pen = pd.to_numeric(_col(z, "penalty", np.nan), errors="coerce").to_numpy(dtype=float)
    pen = np.where(np.isfinite(pen) & (pen > 0), pen, net.params.avoid_penalty)
    factor_z = np.where(active & (rule == "avoid"), pen, 1.0)
    m = net.graph.n_edges
    eblock = np.zeros(m, dtype=bool)
    if len(net.zone_edge):
        eblock[net.zone_edge[block[net.zone_zone]]] = True
    factor = np.ones(m)
    if len(net.zone_edge):
        np.maximum.at(factor, net.zone_edge, factor_z[net.zone_zone])
    ow = np.zeros(m, bool)
    oh = np.zeros(m, bool)
    if vehicle is not None and vehicle.weight_t is not None:
        ow = np.nan_to_num(net.max_weight_t, nan=np.inf) < vehicle.weight_t
    if vehicle is not None and vehicle.height_m is not None:
        oh = np.nan_to_num(net.max_height_m, nan=np.inf) < vehicle.height_m
    return _Request(block, factor_z, eblock, factor, ow, oh)


@dataclass(frozen=True)
class _Snap:
    edge: int
    pos: float
    dist: float
    point: Point
    foot: Point


@dataclass
class _Path:
    """A route as (edge, from, to) spans along each edge's own geometry."""

    edges: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def fractions(self, lengths: np.ndarray) -> np.ndarray:
        ln = lengths[self.edges]
        return np.where(ln > 0, (self.end - self.start) / np.where(ln > 0, ln, 1.0), 0.0)

    def total(self, values: np.ndarray, lengths: np.ndarray) -> float:
        return float(np.sum(values[self.edges] * self.fractions(lengths)))


@dataclass
class RouteResult:
    """Answer to one request.

    ``routes``: one row per alternative (graph CRS) — ``rank``, ``objective``, ``cost``,
    ``length_m``, ``time_s``, ``risk_score``, ``stretch`` (cost / best cost), ``overlap``
    (largest share of its length shared with a better route), ``zones`` / ``zone_ids`` (every
    zone it passes, with rule and hours), ``roads`` (road ids in order). ``refused``: the roads
    the unrestricted (shortest ignoring the rules) way would use but this request may not,
    with ``reason``, zone id/name/rule/hours and ``message``. ``origin`` / ``destination``:
    the snapping (road id, ``snap_m``, foot point).
    """

    routes: gpd.GeoDataFrame
    refused: pd.DataFrame
    origin: dict[str, Any]
    destination: dict[str, Any]
    depart_at: datetime | time | None
    objective: str

    def to_frame(self) -> gpd.GeoDataFrame:
        """Routes, origin/destination points and refused stretches as one frame with a
        ``feature`` column (route / origin / destination / refused), for GeoJSON."""
        crs = self.routes.crs
        parts = [self.routes.assign(feature="route")]
        ends = pd.DataFrame([{**{k: v for k, v in d.items() if k not in ("foot", "point")},
                              "feature": f} for f, d in (("origin", self.origin),
                                                         ("destination", self.destination))])
        parts.append(gpd.GeoDataFrame(ends, geometry=[self.origin["foot"],
                                                      self.destination["foot"]], crs=crs))
        if len(self.refused):
            parts.append(gpd.GeoDataFrame(self.refused.drop(columns="geometry").assign(
                feature="refused"), geometry=list(self.refused["geometry"]), crs=crs))
        out = pd.concat(parts, ignore_index=True)
        cols = ["feature"] + [c for c in out.columns if c not in ("feature", "geometry")]
        return gpd.GeoDataFrame(out[[*cols, "geometry"]], geometry="geometry", crs=crs)


def route(
    net: HazmatNetwork,
    origin: Sequence[float],
    destination: Sequence[float],
    depart_at: datetime | time | None = None,
    *,
    vehicle: Vehicle | None = None,
    permits: Iterable[str] = (),
    alternatives: int = 1,
    objective: Objective | str = "time",
) -> RouteResult:
    """Route a hazmat vehicle from ``origin`` to ``destination`` (lon, lat in EPSG:4490).

    Parameters
    ----------
    net
        From :func:`prepare_network`.
    depart_at
        Local departure time; zones are evaluated at it (``None``: every zone counts as on).
    vehicle
        Weight/height checked against ``max_weight_t``/``max_height_m``.
    permits
        Ids of ``permit`` zones the vehicle holds a permit for.
    alternatives
        Up to this many genuinely different routes, ranked by the objective.
    objective
        ``time`` (s), ``distance`` (m) or ``risk`` (exposure × km).

    Raises
    ------
    SnapError
        An end farther than ``snap_max_m`` from a permitted road.
    NoRouteError
        An end inside a refused zone, or no permitted connection; the message names the
        zones / roads that block it.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective is {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    if alternatives < 1:
        raise ValueError(f"alternatives is {alternatives}; expected a whole number >= 1")
    g = net.graph
    req = _request_state(net, depart_at, permits, vehicle)
    hard = req.hard_block(net)
    o_pt, d_pt = net.to_xy(origin, "origin"), net.to_xy(destination, "destination")
    for what, pt in (("origin", o_pt), ("destination", d_pt)):
        inside = zones_at_points([pt], net.zones)[0]
        bad = inside[req.zone_block[inside]] if len(inside) else inside
        if len(bad):
            raise NoRouteError(f"{what} lies in " + "; ".join(
                _zone_words(net.zones.iloc[int(z)]) for z in bad))
    o = _snap(net, o_pt, ~hard, req, "origin")
    d = _snap(net, d_pt, ~hard, req, "destination")

    base = net.base_cost(objective)
    allowed_dest = np.zeros(g.n_edges, dtype=bool)
    for s in (o, d):
        c = net.dest_component[s.edge]
        if c >= 0:
            allowed_dest |= net.dest_component == c
    w = base * req.factor
    w = np.where(hard | ((net.hazmat == 1) & ~allowed_dest), np.inf, w)

    search = _Search(g, w, o, d)
    best = search.cost
    if not np.isfinite(best):
        raise NoRouteError(_explain_blocked(net, req, o_pt, d_pt, objective, depart_at))
    paths = [search.best_path()]
    costs = [best]
    if alternatives > 1:
        _alternatives(net, search, w, o, d, paths, costs, alternatives)
    order = np.argsort(costs, kind="stable")
    paths = [paths[i] for i in order]
    costs = [costs[i] for i in order]
    routes = _route_frame(net, paths, costs, objective, depart_at)
    refused = _refused(net, req, o_pt, d_pt, objective, hard, allowed_dest, paths[0])
    return RouteResult(routes=routes, refused=refused, origin=_snap_info(net, o),
                       destination=_snap_info(net, d), depart_at=depart_at, objective=objective)


def _zone_words(z: pd.Series) -> str:
    name = z.get("name")
    named = f" ({name})" if isinstance(name, str) and name else ""
    return f"{z.get('rule')} zone {z.get('id')}{named} {parse_hours(z.get('hours', '')).describe()}"


def _snap(net: HazmatNetwork, pt: Point, mask: np.ndarray, req: _Request, what: str) -> _Snap:
    g = net.graph
    lim = net.params.snap_max_m
    s = g.snap([pt], max_m=lim, mask=mask)
    if s.edge[0] < 0:
        near = g.snap([pt], max_m=np.inf)
        msg = f"{what} is more than {lim:g} m from the nearest permitted road"
        if near.edge[0] >= 0:
            e = int(near.edge[0])
            why = _reasons(net, req, np.array([e]))[0]
            road = g.edges["source_id"].iloc[e]
            msg += (f"; the nearest road {road} is {near.distance_m[0]:.0f} m away"
                    + (f" but refused: {why}" if why else ""))
        raise SnapError(msg + "; choose a point nearer a permitted road")
    e = int(s.edge[0])
    return _Snap(edge=e, pos=float(s.position_m[0]), dist=float(s.distance_m[0]), point=pt,
                 foot=Point(s.x[0], s.y[0]))


def _snap_info(net: HazmatNetwork, s: _Snap) -> dict[str, Any]:
    e = net.graph.edges.iloc[s.edge]
    return {"road_id": e["source_id"], "snap_m": round(s.dist, 3), "edge": s.edge,
            "position_m": round(s.pos, 3), "foot": s.foot, "point": s.point}


class _Search:
    """Forward search from the origin and backward search to the destination on a graph
    augmented with two virtual nodes: O = n (the origin's foot point) and D = n + 1."""

    def __init__(self, g: RoadGraph, w: np.ndarray, o: _Snap, d: _Snap,
                 *, backward: bool = True, limit: float = np.inf) -> None:
        self.g, self.w, self.o, self.d = g, w, o, d
        n = g.n_nodes
        self.O, self.D = n, n + 1
        ln = g.length_m
        twin = g.twin
        # extra entries: (row, col, cost, edge, start, end)
        ex: list[tuple[int, int, float, int, float, float]] = []
        e, p, L = o.edge, o.pos, ln[o.edge]
        if np.isfinite(w[e]):
            ex.append((self.O, int(g.v[e]), w[e] * (L - p) / L if L else 0.0, e, p, L))
        t = twin[e]
        if t >= 0 and np.isfinite(w[t]):
            ex.append((self.O, int(g.v[t]), w[t] * p / L if L else 0.0, int(t), L - p, L))
        f, q, L2 = d.edge, d.pos, ln[d.edge]
        if np.isfinite(w[f]):
            ex.append((int(g.u[f]), self.D, w[f] * q / L2 if L2 else 0.0, f, 0.0, q))
        t2 = twin[f]
        if t2 >= 0 and np.isfinite(w[t2]):
            ex.append((int(g.u[t2]), self.D, w[t2] * (L2 - q) / L2 if L2 else 0.0, int(t2),
                       0.0, L2 - q))
        piece = g.edges["piece"].to_numpy()
        rev = g.edges["reverse"].to_numpy(dtype=bool)
        if piece[e] == piece[f]:
            # both ends on one piece: positions along its digitised direction
            po = L - p if rev[e] else p
            pd_ = L2 - q if rev[f] else q
            pair = [x for x in (e, int(twin[e])) if x >= 0]
            fwd = next((x for x in pair if not rev[x]), -1)
            bwd = next((x for x in pair if rev[x]), -1)
            if pd_ >= po and fwd >= 0 and np.isfinite(w[fwd]):
                ex.append((self.O, self.D, w[fwd] * (pd_ - po) / L if L else 0.0, fwd, po, pd_))
            elif pd_ < po and bwd >= 0 and np.isfinite(w[bwd]):
                ex.append((self.O, self.D, w[bwd] * (po - pd_) / L, bwd, L - po, L - pd_))
        self.extras = ex
        self.extra_span = {(r, c): (ed, s0, s1) for r, c, _, ed, s0, s1 in ex}
        m, entry = g.matrix_with_edges(w)
        self.m = _augment(m, [(r, c, cost) for r, c, cost, *_ in ex], n + 2)
        self.entry = entry
        self.dist_f, pred = csgraph.dijkstra(self.m, directed=True, indices=self.O,
                                             return_predecessors=True, limit=limit)
        self.pred_f = pred.astype(np.int64)
        self.cost = float(self.dist_f[self.D])
        self.dist_b: np.ndarray | None = None
        self.pred_b: np.ndarray | None = None
        if backward and np.isfinite(self.cost):
            mt, _ = g.matrix_with_edges(w, transpose=True)
            mt = _augment(mt, [(c, r, cost) for r, c, cost, *_ in ex], n + 2)
            db, pb = csgraph.dijkstra(mt, directed=True, indices=self.D,
                                      return_predecessors=True, limit=self.cost * 2.0 + 1.0)
            self.dist_b, self.pred_b = db, pb.astype(np.int64)
        self._base = m

    def best_path(self) -> _Path:
        nodes = _walk(self.pred_f, self.D)
        return self.to_path(nodes)

    def to_path(self, nodes: Sequence[int]) -> _Path:
        """Spans of a node path O … D."""
        g = self.g
        edges: list[int] = []
        start: list[float] = []
        end: list[float] = []
        ln = g.length_m
        mid: list[tuple[int, int]] = []
        for a, b in itertools.pairwise(nodes):
            if (a, b) in self.extra_span:
                if mid:
                    self._mid(mid, edges, start, end, ln)
                    mid = []
                ed, s0, s1 = self.extra_span[(a, b)]
                edges.append(ed)
                start.append(s0)
                end.append(s1)
            else:
                mid.append((a, b))
        if mid:
            self._mid(mid, edges, start, end, ln)
        return _Path(np.asarray(edges, dtype=np.int64), np.asarray(start), np.asarray(end))

    def _mid(self, pairs: list[tuple[int, int]], edges: list[int], start: list[float],
             end: list[float], ln: np.ndarray) -> None:
        a = np.array([p[0] for p in pairs])
        b = np.array([p[1] for p in pairs])
        m = self._base
        out = np.full(len(a), -1, dtype=np.int64)
        for i in range(len(a)):
            lo, hi = m.indptr[a[i]], m.indptr[a[i] + 1]
            j = lo + np.searchsorted(m.indices[lo:hi], b[i])
            out[i] = self.entry[j]
        edges.extend(out.tolist())
        start.extend([0.0] * len(out))
        end.extend(ln[out].tolist())


def _augment(m: sparse.csr_matrix, extra: Sequence[tuple[int, int, float]],
             size: int) -> sparse.csr_matrix:
    """``m`` grown to ``size`` × ``size`` with extra entries (min of duplicates)."""
    n = m.shape[0]
    best: dict[tuple[int, int], float] = {}
    for r, c, cost in extra:
        cost = max(float(cost), _EPS)
        if (r, c) not in best or cost < best[(r, c)]:
            best[(r, c)] = cost
    items = sorted(best.items())
    indptr = np.concatenate([m.indptr, np.full(size - n, m.indptr[-1])]).astype(np.int64)
    indices = m.indices.astype(np.int64)
    data = m.data
    if items:
        rows = np.array([k[0] for k, _ in items], dtype=np.int64)
        cols = np.array([k[1] for k, _ in items], dtype=np.int64)
        vals = np.array([v for _, v in items])
        pos = indptr[rows + 1]
        indices = np.insert(indices, pos, cols)
        data = np.insert(data, pos, vals)
        indptr = indptr + np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=size))])
    return sparse.csr_matrix((data, indices, indptr), shape=(size, size))


def _walk(pred: np.ndarray, target: int) -> list[int]:
    out = [int(target)]
    p = int(pred[target])
    while p >= 0:
        out.append(p)
        p = int(pred[p])
        if len(out) > len(pred):
            raise RuntimeError("predecessor cycle")
    return out[::-1]


def _walk_back(pred_b: np.ndarray, start: int) -> list[int]:
    out = [int(start)]
    p = int(pred_b[start])
    while p >= 0:
        out.append(p)
        p = int(pred_b[p])
        if len(out) > len(pred_b):
            raise RuntimeError("predecessor cycle")
    return out


def _piece_lengths(g: RoadGraph, path: _Path) -> dict[int, float]:
    piece = g.edges["piece"].to_numpy()[path.edges]
    out: dict[int, float] = {}
    for pc, a, b in zip(piece, path.start, path.end, strict=True):
        out[int(pc)] = out.get(int(pc), 0.0) + float(b - a)
    return out


def _overlap(g: RoadGraph, cand: dict[int, float], others: list[dict[int, float]]) -> float:
    total = sum(cand.values()) or 1.0
    worst = 0.0
    for o in others:
        shared = sum(min(v, o[k]) for k, v in cand.items() if k in o)
        worst = max(worst, shared / total)
    return worst


def _alternatives(net: HazmatNetwork, search: _Search, w: np.ndarray, o: _Snap, d: _Snap,
                  paths: list[_Path], costs: list[float], k: int) -> None:
    g = net.graph
    p = net.params
    best = search.cost
    ln = g.length_m
    accepted = [_piece_lengths(g, paths[0])]
    df, db = search.dist_f, search.dist_b
    pf, pb = search.pred_f, search.pred_b
    if db is not None and pb is not None:
        n = g.n_nodes
        b = np.arange(n)
        a = pf[:n]
        ok = (a >= 0) & (a < n)
        a_ok = np.where(ok, a, 0)
        plateau = ok & (pb[a_ok] == b)
        pa, pb_ = a[plateau], b[plateau]
        if len(pa):
            adj = sparse.coo_matrix((np.ones(len(pa)), (pa, pb_)), shape=(n, n))
            _, lab = csgraph.connected_components(adj, directed=False)
            nodes = np.unique(np.concatenate([pa, pb_]))
            via = df[nodes] + db[nodes]
            frame = pd.DataFrame({"node": nodes, "lab": lab[nodes], "df": df[nodes], "via": via})
            grp = frame.groupby("lab")
            summary = pd.DataFrame({
                "via": grp["via"].min(),
                "span": grp["df"].max() - grp["df"].min(),
                "start": frame.loc[grp["df"].idxmin(), "node"].to_numpy(),
            })
            summary = summary[(summary["via"] <= best * p.max_stretch + _EPS)
                              & (summary["via"] > best * (1 + 1e-9) + _EPS)
                              & (summary["span"] > 0)]
            summary = summary.assign(score=summary["via"] - summary["span"]).sort_values(
                ["score", "via"], kind="stable").head(max(20, 8 * k))
            for _, row in summary.iterrows():
                if len(paths) >= k:
                    return
                s = int(row["start"])
                fwd = _walk(pf, s)
                bwd = _walk_back(pb, s)
                nodes_ = fwd[:-1] + bwd
                if len(set(nodes_)) != len(nodes_):
                    continue
                path = search.to_path(nodes_)
                cand = _piece_lengths(g, path)
                if _overlap(g, cand, accepted) > p.max_overlap:
                    continue
                cost = path.total(w, ln)
                paths.append(path)
                costs.append(cost)
                accepted.append(cand)
    # penalty fill-up
    used = np.zeros(g.n_edges)
    piece = g.edges["piece"].to_numpy()
    for _ in range(2 * k):
        if len(paths) >= k:
            return
        for path in paths:
            used[np.isin(piece, piece[path.edges])] += 1.0
        wp = w * (1.0 + used)
        s2 = _Search(g, wp, o, d, backward=False, limit=best * p.max_stretch * (1 + used.max()))
        if not np.isfinite(s2.cost):
            return
        path = s2.best_path()
        cost = path.total(w, ln)
        if cost > best * p.max_stretch + _EPS:
            continue
        cand = _piece_lengths(g, path)
        if _overlap(g, cand, accepted) > p.max_overlap:
            continue
        paths.append(path)
        costs.append(cost)
        accepted.append(cand)


def _path_geometry(g: RoadGraph, path: _Path) -> LineString:
    coords: list[tuple[float, float]] = []
    geoms = g.edges.geometry.values
    ln = g.length_m
    for ed, a, b in zip(path.edges, path.start, path.end, strict=True):
        line = geoms[ed]
        if a <= _EPS and b >= ln[ed] - _EPS:
            part = list(line.coords)
        else:
            part = list(shapely.ops.substring(line, a, b).coords) if b > a else []
        if not part:
            continue
        if coords and np.allclose(coords[-1], part[0]):
            part = part[1:]
        coords.extend((float(x), float(y)) for x, y, *_ in part)
    if len(coords) < 2:
        coords = coords * 2 if coords else [(0.0, 0.0), (0.0, 0.0)]
    return LineString(coords)


def _route_frame(net: HazmatNetwork, paths: list[_Path], costs: list[float], objective: str,
                 at: datetime | time | None) -> gpd.GeoDataFrame:
    g = net.graph
    ln = g.length_m
    rows = []
    geoms = []
    accepted: list[dict[int, float]] = []
    best = costs[0]
    active = np.array([h.active(at) for h in net.zone_hours], dtype=bool)
    for i, (path, cost) in enumerate(zip(paths, costs, strict=True)):
        geom = _path_geometry(g, path)
        geoms.append(geom)
        cand = _piece_lengths(g, path)
        overlap = _overlap(g, cand, accepted) if accepted else 0.0
        accepted.append(cand)
        zp = edges_in_zones(gpd.GeoSeries([geom], crs=g.crs), net.zones) if len(net.zones) \
            else pd.DataFrame({"zone": []})
        zl = [int(z) for z in zp["zone"]]
        labels = []
        for z in zl:
            zr = net.zones.iloc[z]
            labels.append(f"{_zone_words(zr)}{'' if active[z] else ' (off at departure)'}")
        roads = g.edges["source_id"].to_numpy()[path.edges]
        road_seq = [str(r) for j, r in enumerate(roads) if j == 0 or r != roads[j - 1]]
        rows.append({
            "rank": i + 1,
            "objective": objective,
            "cost": round(float(cost), 3),
            "length_m": round(path.total(ln, ln), 3),
            "time_s": round(path.total(net.time_s, ln), 3),
            "risk_score": round(path.total(net.risk, ln), 6),
            "stretch": round(float(cost / best) if best > 0 else 1.0, 4),
            "overlap": round(float(overlap), 4),
            "zone_ids": ";".join(str(net.zones.iloc[z]["id"]) for z in zl),
            "zones": "; ".join(labels),
            "roads": ";".join(road_seq),
        })
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=g.crs)


def _reasons(net: HazmatNetwork, req: _Request, edges: np.ndarray,
             allowed_dest: np.ndarray | None = None) -> list[str]:
    """Why each edge is refused for this request ("" when it is not)."""
    out = []
    for e in edges:
        why = []
        if net.hazmat[e] == 2:
            why.append("road signed hazmat=no")
        if net.hazmat[e] == 1 and allowed_dest is not None and not allowed_dest[e]:
            why.append("road signed hazmat=destination (only at the start or end of a trip)")
        if req.overweight[e]:
            why.append(f"weight limit {net.max_weight_t[e]:g} t")
        if req.overheight[e]:
            why.append(f"height limit {net.max_height_m[e]:g} m")
        zs = net.zone_zone[net.zone_edge == e]
        for z in zs:
            if req.zone_block[z]:
                why.append("in " + _zone_words(net.zones.iloc[int(z)]))
        out.append("; ".join(why))
    return out


def _unrestricted(net: HazmatNetwork, o_pt: Point, d_pt: Point, objective: str) -> _Path | None:
    g = net.graph
    so = g.snap([o_pt])
    sd = g.snap([d_pt])
    if so.edge[0] < 0 or sd.edge[0] < 0:
        return None
    o = _Snap(int(so.edge[0]), float(so.position_m[0]), float(so.distance_m[0]), o_pt,
              Point(so.x[0], so.y[0]))
    d = _Snap(int(sd.edge[0]), float(sd.position_m[0]), float(sd.distance_m[0]), d_pt,
              Point(sd.x[0], sd.y[0]))
    s = _Search(g, net.base_cost(objective), o, d, backward=False)
    if not np.isfinite(s.cost):
        return None
    return s.best_path()


def _refused_rows(net: HazmatNetwork, req: _Request, path: _Path,
                  allowed_dest: np.ndarray) -> pd.DataFrame:
    g = net.graph
    refused_mask = (req.hard_block(net) | ((net.hazmat == 1) & ~allowed_dest))[path.edges]
    rows = []
    ids = g.edges["source_id"].to_numpy()
    names = (g.edges["name"].to_numpy() if "name" in g.edges.columns
             else np.full(g.n_edges, None, dtype=object))
    for i in np.flatnonzero(refused_mask):
        e = int(path.edges[i])
        seg_len = float(path.end[i] - path.start[i])
        base = {"road_id": ids[e], "road_name": names[e], "length_m": seg_len, "edge": e,
                "start": float(path.start[i]), "end": float(path.end[i])}
        found = False
        if net.hazmat[e] == 2:
            rows.append({**base, "reason": "hazmat_no", "message": "road signed hazmat=no"})
            found = True
        if net.hazmat[e] == 1 and not allowed_dest[e]:
            rows.append({**base, "reason": "hazmat_destination",
                         "message": "road signed hazmat=destination: only at the start or end"})
            found = True
        if req.overweight[e]:
            rows.append({**base, "reason": "weight",
                         "message": f"weight limit {net.max_weight_t[e]:g} t"})
            found = True
        if req.overheight[e]:
            rows.append({**base, "reason": "height",
                         "message": f"height limit {net.max_height_m[e]:g} m"})
            found = True
        for z in net.zone_zone[net.zone_edge == e]:
            if req.zone_block[z]:
                zr = net.zones.iloc[int(z)]
                rows.append({**base, "reason": f"zone_{zr.get('rule')}", "zone_id": zr.get("id"),
                             "zone_name": zr.get("name"), "rule": zr.get("rule"),
                             "hours": parse_hours(zr.get("hours", "")).describe(),
                             "message": "in " + _zone_words(zr)})
                found = True
        if not found:  # pragma: no cover - refused_mask says there is a reason
            rows.append({**base, "reason": "other", "message": "refused"})
    cols = ["road_id", "road_name", "reason", "zone_id", "zone_name", "rule", "hours",
            "length_m", "message"]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in [*cols, "geometry"]})
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df.columns:
            df[c] = None
    geoms = [_path_geometry(g, _Path(np.array([r["edge"]]), np.array([r["start"]]),
                                     np.array([r["end"]]))) for r in rows]
    df["geometry"] = geoms
    key = ["road_id", "reason", "zone_id"]
    agg = (df.assign(zone_id=df["zone_id"].fillna(""))
           .groupby(key, sort=False, dropna=False)
           .agg({"road_name": "first", "zone_name": "first", "rule": "first", "hours": "first",
                 "length_m": "sum", "message": "first",
                 "geometry": lambda s: shapely.line_merge(shapely.union_all(list(s)))})
           .reset_index())
    agg["zone_id"] = agg["zone_id"].replace("", None)
    agg["length_m"] = agg["length_m"].round(3)
    agg["message"] = [f"road {r} refused: {m}" for r, m in zip(agg["road_id"], agg["message"],
                                                              strict=True)]
    return agg[[*cols, "geometry"]]


def _refused(net: HazmatNetwork, req: _Request, o_pt: Point, d_pt: Point, objective: str,
             hard: np.ndarray, allowed_dest: np.ndarray, chosen: _Path) -> pd.DataFrame:
    path = _unrestricted(net, o_pt, d_pt, objective)
    if path is None:
        return _refused_rows(net, req, _Path(np.zeros(0, np.int64), np.zeros(0), np.zeros(0)),
                             allowed_dest)
    return _refused_rows(net, req, path, allowed_dest)


def _explain_blocked(net: HazmatNetwork, req: _Request, o_pt: Point, d_pt: Point,
                     objective: str, at: datetime | time | None) -> str:
    g = net.graph
    when = "" if at is None else f" at {at.strftime('%H:%M')}"
    path = _unrestricted(net, o_pt, d_pt, objective)
    if path is None:
        return ("no route" + when + ": origin and destination are not connected on the road "
                "network (check one-way roads and unconnected road ends)")
    allowed = np.zeros(g.n_edges, dtype=bool)
    rows = _refused_rows(net, req, path, allowed)
    if rows.empty:
        return "no permitted route" + when
    what = []
    for _, r in rows.drop_duplicates(["reason", "zone_id", "road_id"]).iterrows():
        if r["zone_id"] is not None and isinstance(r["zone_id"], str):
            zr = net.zones[net.zones["id"] == r["zone_id"]].iloc[0]
            what.append(_zone_words(zr))
        else:
            what.append(f"road {r['road_id']} ({r['message'].split(': ', 1)[-1]})")
    what = list(dict.fromkeys(what))
    return ("no permitted route" + when + "; every way is blocked — the direct way is refused by "
            + "; ".join(what))
