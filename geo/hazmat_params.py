"""Hazmat rule values as ``geo`` takes them: :class:`RoutingParams` and :class:`RouteCheckParams`.

``geo`` owns these types (:mod:`geo.routing` and :mod:`geo.route_check` re-export them);
:func:`layers.hazmat_rules.load_hazmat_rules` parses ``layers/rule_tables/hazmat.toml`` into
them. Standard library only, so the rule loader does not load the routing engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RouteCheckParams", "RoutingParams"]


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


@dataclass(frozen=True)
class RouteCheckParams:
    """Check parameters (``layers.hazmat_rules`` loads them from ``hazmat.toml``).

    ``severity`` / ``source`` are keyed by check id (``forbidden_zone``, ``permit_zone``,
    ``bridge_tunnel_zone``, ``hazmat_no_road``, ``off_network``).
    """

    off_network_m: float
    road_match_m: float
    min_stretch_m: float
    severity: Mapping[str, str]
    source: Mapping[str, str]
