"""CLI command groups; each module has ``register(subparsers, groups)``.

``groups`` holds shared sub-command groups (e.g. ``check``) so several modules can add to
one group: use :func:`group` to get or create it.

Command modules only define arguments, call :class:`api.service.AnalysisService` and print;
they import nothing heavy at module level (geopandas, shapely, the analyses are imported in
the functions that run), so ``riskmap --help`` starts fast. :func:`add_district` adds the
district options (``--rules``, ``--tz``), :func:`service` builds the service from them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from api.district import District
    from api.service import AnalysisService

__all__ = ["add_district", "district", "group", "note_absent", "open_existing", "service",
           "stamp"]


def add_district(p: argparse.ArgumentParser, *, tz: bool = False) -> None:
    """Add ``--rules FILE`` (default $RISKMAP_RULES) and, with ``tz``, ``--tz ZONE`` (default
    $RISKMAP_TIMEZONE or Asia/Shanghai)."""
    p.add_argument("--rules", metavar="FILE", default=None,
                   help="district rule file overriding rows of the shipped rule tables "
                        "(pipelines, location_class, hca, fire, hazmat) by id "
                        "(default: $RISKMAP_RULES, else the shipped tables)")
    if tz:
        p.add_argument("--tz", metavar="ZONE", default=None,
                       help="district time zone (IANA) times without an offset are read in "
                            "(default: $RISKMAP_TIMEZONE or Asia/Shanghai)")


def district(args: argparse.Namespace) -> District:
    """The district of a command: ``--rules`` / ``--tz``, else $RISKMAP_RULES /
    $RISKMAP_TIMEZONE, else the shipped rules and Asia/Shanghai."""
    from api.district import District

    return District.from_env(rules=getattr(args, "rules", None),
                             timezone=getattr(args, "tz", None))


def service(args: argparse.Namespace) -> AnalysisService:
    """The analysis service of a command: the existing store ``--store`` under its district."""
    from api.service import AnalysisService

    return AnalysisService(open_existing(args.store), district(args))


def stamp(svc: AnalysisService, at: Any = None, *, with_at: bool = False) -> str:
    """The summary line saying which rules (file, hash) and, for timed answers, which time
    (district zone) a command applied."""
    d = svc.district
    line = f"riskmap: rules {d.rules_label}"
    if with_at:
        line += f"; at {d.describe_at(at)}"
    return line


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
