"""CLI command groups; each module has ``register(subparsers, groups)``.

``groups`` holds shared sub-command groups (e.g. ``check``) so several modules can add to
one group: use :func:`group` to get or create it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = ["group", "note_absent", "open_existing"]


def open_existing(url: str) -> Any:
    """Open the store ``url`` for reading: a GeoPackage path that does not exist (a typo) is
    an error, not an empty store."""
    from layers.errors import StoreError
    from layers.store import GeoPackageStore, open_store

    store = open_store(url)
    if isinstance(store, GeoPackageStore) and not store.path.exists():
        raise StoreError(f"store {store.path} does not exist; create it with riskmap import "
                         "or riskmap demo")
    return store


def note_absent(store: Any, skipped: Mapping[str, str], *, stream: TextIO | None = None) -> None:
    """Say on ``stream`` (stderr) which optional layers ``store`` lacks and what was therefore
    not checked, with the import that adds each: an empty result then does not read as a
    clean bill. ``skipped`` maps layer → what it is needed for."""
    out = stream if stream is not None else sys.stderr
    for layer, what in skipped.items():
        if not store.has_layer(layer):
            print(f"note: no layer {layer!r}: {what} not checked; add it with "
                  f"`riskmap import --store {store.url} {layer} FILE`", file=out)


def group(sub: argparse._SubParsersAction, groups: dict, name: str, help: str) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """Get or create the sub-command group ``name`` (e.g. ``riskmap check …``)."""
    if name not in groups:
        p = sub.add_parser(name, help=help)
        groups[name] = p.add_subparsers(dest=f"{name}_command", required=True, metavar="WHAT")
    return groups[name]
