"""Domain exceptions raised by ``geo``. They subclass builtins and know nothing of HTTP.

``geo`` owns these classes; :mod:`layers.errors` re-exports the very same objects, so
``except layers.errors.CRSError`` catches what a ``geo`` function raises and the API's status
table (keyed by class) maps both. Routing errors live here too, so a caller can catch or map
them without importing the routing engine.
"""

from __future__ import annotations

__all__ = [
    "CRSError",
    "NoRouteError",
    "RiskmapError",
    "RouteRequestError",
    "RuleError",
    "SnapError",
]


class RiskmapError(Exception):
    """Base of every riskmap error."""


class CRSError(RiskmapError, ValueError):
    """Missing, wrong or unusable coordinate reference system, or swapped axes."""


class RuleError(RiskmapError, ValueError):
    """A rule table that is malformed."""


class NoRouteError(RiskmapError, LookupError):
    """No permitted route exists; the message names what blocks it."""


class SnapError(RiskmapError, ValueError):
    """An origin/destination is too far from a permitted road, or not lon/lat."""


class RouteRequestError(RiskmapError, ValueError):
    """A malformed request: unknown objective or permit zone, alternatives < 1."""
