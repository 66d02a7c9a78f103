"""Domain exceptions. They subclass builtins and know nothing of HTTP; the API maps them.

:class:`RiskmapError`, :class:`CRSError` and :class:`RuleError` are defined in
:mod:`geo.errors` (``geo`` raises them and imports nothing from ``layers``); they are
re-exported here as the same class objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from geo.errors import CRSError, RiskmapError, RuleError

__all__ = [
    "MISSING",
    "STORE_BUSY_EXIT",
    "CRSError",
    "InputFileError",
    "LayerNotFoundError",
    "LayerValidationError",
    "MissingExtraError",
    "Problem",
    "RiskmapError",
    "RuleError",
    "StoreBusy",
    "StoreError",
    "StoredLayerError",
    "UnknownLayerError",
    "missing_extra",
    "missing_layer",
]


class _Missing:
    """Sentinel for a value that is absent (no field, or an empty value)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "missing"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()
"""``Problem.received`` when the value is absent: the message reads "<field> is missing"."""


@dataclass(frozen=True)
class Problem:
    """One problem found while validating a layer."""

    layer: str
    feature: str | None
    field: str | None
    received: object
    expected: str
    note: str = ""

    def __str__(self) -> str:
        where = f"layer {self.layer!r}"
        if self.feature is not None:
            where += f", feature {self.feature!r}"
        if self.field is None:
            return f"{where}: {self.note or self.expected}"
        received = "missing" if self.received is MISSING else repr(self.received)
        text = f"{where}: {self.field} is {received}; expected {self.expected}"
        return text + (f" ({self.note})" if self.note else "")

    def as_dict(self) -> dict[str, object]:
        return {
            "layer": self.layer,
            "feature": self.feature,
            "field": self.field,
            "received": None if self.received is None or self.received is MISSING
            else str(self.received),
            "expected": self.expected,
            "message": str(self),
        }


class LayerValidationError(RiskmapError, ValueError):
    """A layer failed validation; ``problems`` lists every problem found."""

    def __init__(self, layer: str, problems: list[Problem]) -> None:
        self.layer = layer
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = len(self.problems) - 50
        tail = f"\n  … and {more} more" if more > 0 else ""
        super().__init__(
            f"layer {layer!r}: {len(self.problems)} problem(s), nothing imported:\n{shown}{tail}"
        )


class StoredLayerError(LayerValidationError):
    """A layer already in the store holds values an analysis cannot use (written around
    validation, e.g. edited in the database); ``problems`` names each feature and field."""

    def __init__(self, layer: str, problems: list[Problem], *, analysis: str) -> None:
        super().__init__(layer, problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = len(self.problems) - 50
        tail = f"\n  … and {more} more" if more > 0 else ""
        self.args = (f"layer {layer!r} in the store: {len(self.problems)} problem(s) stop "
                     f"{analysis}; correct them (riskmap import --replace, or edit the "
                     f"store):\n{shown}{tail}",)


class UnknownLayerError(RiskmapError, ValueError):
    """A layer name that is not part of the schema."""


class InputFileError(RiskmapError, ValueError):
    """A file that cannot be read as geodata (broken, unsupported, empty, too large)."""


class StoreError(RiskmapError, RuntimeError):
    """The store cannot be opened or written."""


class StoreBusy(StoreError):
    """Another writer held the store longer than the busy timeout; nothing was changed.

    The CLI exits with :data:`STORE_BUSY_EXIT` (75, ``EX_TEMPFAIL``); the API answers 503
    with ``Retry-After``.
    """


STORE_BUSY_EXIT = 75


class LayerNotFoundError(RiskmapError, LookupError):
    """The store has no such layer."""


def missing_layer(store_url: str, layer: str | list[str], needed_by: str | None = None
                  ) -> LayerNotFoundError:
    """The error for the layer(s) ``store_url`` lacks, naming what needs them and how to add
    each (``riskmap import --store S LAYER FILE``)."""
    names = [layer] if isinstance(layer, str) else list(layer)
    need = f" (needed by {needed_by})" if needed_by else ""
    how = ", ".join(f"`riskmap import --store {store_url} {n} FILE`" for n in names)
    if len(names) == 1:
        return LayerNotFoundError(f"store {store_url} has no layer {names[0]!r}{need}; "
                                  f"add it with {how}")
    listed = ", ".join(repr(n) for n in names)
    return LayerNotFoundError(f"store {store_url} has no layers {listed}{need}; "
                              f"add them with {how}")


class MissingExtraError(RiskmapError, ImportError):
    """A feature needs an optional package that is not installed (a ``riskmap[extra]``)."""


def missing_extra(package: str, *, extra: str, feature: str) -> MissingExtraError:
    """The error for ``feature`` when its optional ``package`` cannot be imported, naming the
    extra that installs it. Raise it ``from`` the ImportError::

        try:
            import osmium
        except ImportError as exc:
            raise missing_extra("osmium", extra="osm", feature="reading OSM files") from exc
    """
    return MissingExtraError(
        f"{feature} needs the optional package {package!r}, which is not installed; "
        f"install it with: pip install 'riskmap[{extra}]'", name=package)
