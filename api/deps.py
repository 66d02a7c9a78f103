"""FastAPI dependencies shared by routers (store, settings, the analysis service)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from api.settings import Settings
from layers.store import Store

if TYPE_CHECKING:
    from api.service import AnalysisService

__all__ = ["get_service", "get_settings", "get_store"]


def get_store(request: Request) -> Store:
    """The app's store."""
    return request.app.state.store  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


def get_service(request: Request) -> AnalysisService:
    """The app's analysis service (the district's rules and clock, the one cache)."""
    return request.app.state.service  # type: ignore[no-any-return]
