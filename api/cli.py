"""The ``riskmap`` command line. Each command group lives in ``api/commands/<name>.py``."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from typing import NoReturn

from layers.errors import STORE_BUSY_EXIT, RiskmapError, StoreBusy

__all__ = ["build_parser", "finish", "main", "run"]

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


def finish(rc: int) -> NoReturn:
    """Leave the process with ``rc`` as the ``riskmap`` command does: every object left is
    frozen first, so the interpreter's last garbage collection at exit does not walk them
    all (0.3 s after a pipeline check of a dense district, for nothing: the process ends).
    Files and connections are closed by the commands themselves (context managers)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader went away (riskmap … | head): nothing more to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.dup2(devnull, sys.stderr.fileno())
    gc.freeze()
    sys.exit(rc)


def run() -> NoReturn:
    """The ``riskmap`` console script: :func:`main`, then :func:`finish`."""
    finish(main())


if __name__ == "__main__":  # pragma: no cover
    run()
