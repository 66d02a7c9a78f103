"""FastAPI dependencies shared by routers (store, settings)."""

from __future__ import annotations

from fastapi import Request

from api.settings import Settings
from layers.store import Store

__all__ = ["get_settings", "get_store"]


def get_store(request: Request) -> Store:
    """The app's store."""
    return request.app.state.store  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]
