"""CLI command groups; each module has ``register(subparsers, groups)``.

``groups`` holds shared sub-command groups (e.g. ``check``) so several modules can add to
one group: use :func:`group` to get or create it.
"""

from __future__ import annotations

import argparse

__all__ = ["group"]


def group(sub: argparse._SubParsersAction, groups: dict, name: str, help: str) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """Get or create the sub-command group ``name`` (e.g. ``riskmap check …``)."""
    if name not in groups:
        p = sub.add_parser(name, help=help)
        groups[name] = p.add_subparsers(dest=f"{name}_command", required=True, metavar="WHAT")
    return groups[name]
