"""The ``riskmap`` command line. Each command group lives in ``api/commands/<name>.py``."""

from __future__ import annotations

import argparse
import importlib
import sys

from layers.errors import STORE_BUSY_EXIT, RiskmapError, StoreBusy

__all__ = ["build_parser", "main"]

# Command modules, each with ``register(subparsers)``; add yours here.
COMMAND_MODULES = (
    "api.commands.data",
    "api.commands.demo",
    "api.commands.serve",
    "api.commands.pipelines",
    "api.commands.fire",
    "api.commands.db",
    "api.commands.maps",
    "api.commands.routes",
    "api.commands.publish",
    "api.commands.registry",
    "api.commands.patrol",
    "api.commands.snapshots",
    "api.commands.protection",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskmap",
        description="Spatial risk mapping: pipelines, hazmat routes, fire lanes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}  # type: ignore[type-arg]
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StoreBusy as exc:
        print(f"riskmap: error: {exc}", file=sys.stderr)
        return STORE_BUSY_EXIT
    except RiskmapError as exc:
        print(f"riskmap: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
