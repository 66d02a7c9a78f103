"""The import graph of geo, layers, api and maps: the house's one-way data flow, no cycles.

Every ``.py`` file under ``geo/``, ``layers/``, ``api/`` and ``maps/`` is parsed with ``ast``
(never imported). Each import statement becomes an edge between project modules, of one of
three kinds:

- ``module``: runs when the importing module is imported (module body, class bodies,
  ``try``/``if`` blocks at module level);
- ``lazy``: inside a function (runs when the function is called);
- ``typing``: under ``if TYPE_CHECKING:`` (never runs).

An ``importlib.import_module`` / ``__import__`` call naming a module (``"a.b"``) or a package
(``f"a.b.{name}"`` → ``a.b``) counts as an import at the place of the call.

``import a.b.c`` and ``from a.b import c`` point at ``a.b.c`` when it is a project module,
else at the longest prefix that is one; ``from . import x`` is resolved against the importing
module's package. An edge to a module does not add edges to its parent packages (their
``__init__`` files are empty docstrings and Python tolerates package-init cycles).

The rules (:data:`FORBIDDEN` and the cycle checks):

(a) ``geo`` imports none of ``layers``, ``api``, ``maps`` — of any kind: ``geo`` owns its
    types (``geo.errors``, ``geo.fire_params``, ``geo.hazmat_params``, ``geo.pressure``);
(b) ``layers`` imports neither ``api`` nor ``maps``;
(c) ``maps`` does not import ``api`` (``api`` may import ``maps``: it serves them);
(d) no cycle between top-level packages, counting every kind of edge (so a lazy import cannot
    smuggle a back edge in), and no cycle between modules counting ``module`` edges only: an
    import-time cycle makes import order matter (a half-initialised module raises
    ``ImportError``), whereas a lazy import inside a function is the sanctioned way for a
    module to use a sibling that imports it, as long as the package rules above hold.

(e) portable: no module imports a POSIX-only standard module (``fcntl``, ``pwd`` …) when it
    is imported.

Each rule is also checked against a tiny synthetic tree in ``tmp_path``, so the checker
itself is shown to fail on a planted bad edge or cycle. Two subprocess checks complete the
picture: every module imports (and ``riskmap --help`` runs) with the optional packages made
unimportable, and geo's type modules plus the rule loaders load no numeric/geo stack.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("geo", "layers", "api", "maps")

FORBIDDEN: Mapping[str, frozenset[str]] = {
    "geo": frozenset({"layers", "api", "maps"}),
    "layers": frozenset({"api", "maps"}),
    "maps": frozenset({"api"}),
    "api": frozenset(),
}


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` (both project modules) at ``path:line``."""

    source: str
    target: str
    kind: str  # "module", "lazy" or "typing"
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} -> {self.target} ({self.kind})"


def module_names(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``: dotted name → file (``a/__init__.py`` → ``a``)."""
    found: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """``name`` if it is a project module, else its longest prefix that is; None if outside."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Collector(ast.NodeVisitor):
    """Collect the import statements of one module with their kind."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.kind_stack = ["module"]
        self.found: list[tuple[str, str, int]] = []  # (dotted name, kind, line)

    def _push(self, kind: str, nodes: Iterable[ast.AST]) -> None:
        self.kind_stack.append(kind)
        for node in nodes:
            self.visit(node)
        self.kind_stack.pop()

    @property
    def kind(self) -> str:
        return self.kind_stack[-1]

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        kind = "typing" if self.kind == "typing" else "lazy"
        self._push(kind, [*node.decorator_list, *node.body])

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        kind = "typing" if self.kind == "typing" else "lazy"
        self._push(kind, [*node.decorator_list, *node.body])

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._push("typing" if self.kind == "typing" else "lazy", [node.body])

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._push("typing", node.body)
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, self.kind, node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base_parts = self.package.split(".") if self.package else []
            if node.level - 1 >= len(base_parts):
                raise ValueError(f"{self.module}:{node.lineno}: relative import beyond the "
                                 "top-level package")
            base_parts = base_parts[:len(base_parts) - (node.level - 1)]
            base = ".".join([*base_parts, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        for alias in node.names:
            # `from a.b import c`: c is a submodule (a.b.c) or a name in a.b; _resolve keeps
            # the longest prefix that is a project module.
            self.found.append((base if alias.name == "*" else f"{base}.{alias.name}",
                               self.kind, node.lineno))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        named = (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
            isinstance(func, ast.Name) and func.id in ("import_module", "__import__"))
        name = _literal_module(node.args[0]) if named and node.args else None
        if name:
            self.found.append((name, self.kind, node.lineno))
        self.generic_visit(node)


def _literal_module(arg: ast.expr) -> str | None:
    """The module a dynamic import names: ``"a.b"``, or the package ``a.b`` of an f-string
    ``f"a.b.{name}"``; None when the name is not written in the call."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        prefix = str(arg.values[0].value)
        return prefix.rpartition(".")[0] or None
    return None


def _all_imports(root: Path, modules: Mapping[str, Path]) -> Iterable[tuple[str, Path, str,
                                                                             str, int]]:
    """(module, file, imported dotted name, kind, line) of every import in ``modules``."""
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector = _Collector(module, path.name == "__init__.py")
        collector.visit(tree)
        for name, kind, line in collector.found:
            yield module, path, name, kind, line


def import_edges(root: Path, packages: Iterable[str]) -> list[Edge]:
    """The project-module import edges of every module of ``packages`` under ``root``."""
    modules = module_names(root, packages)
    edges: set[Edge] = set()
    for module, path, name, kind, line in _all_imports(root, modules):
        target = _resolve(name, modules)
        if target is None or target == module:
            continue
        edges.add(Edge(module, target, kind, str(path.relative_to(root)), line))
    return sorted(edges, key=lambda e: (e.path, e.line, e.target))


def external_imports(root: Path, packages: Iterable[str]) -> list[Edge]:
    """Imports of anything outside the project, the target being its top-level name."""
    modules = module_names(root, packages)
    found = {Edge(module, name.split(".")[0], kind, str(path.relative_to(root)), line)
             for module, path, name, kind, line in _all_imports(root, modules)
             if name and _resolve(name, modules) is None}
    return sorted(found, key=lambda e: (e.path, e.line, e.target))


def forbidden_edges(edges: Iterable[Edge], forbidden: Mapping[str, frozenset[str]]
                    ) -> list[Edge]:
    """Edges from a top-level package to one it must not import (any kind)."""
    return [e for e in edges
            if e.target.split(".")[0] in forbidden.get(e.source.split(".")[0], frozenset())]


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with a cycle (Tarjan), each sorted; sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = 0
    nodes = sorted(set(graph) | {t for ts in graph.values() for t in ts})

    def strong(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                result.append(sorted(component))

    for v in nodes:
        if v not in index:
            strong(v)
    return sorted(result)


def package_cycles(edges: Iterable[Edge]) -> list[list[str]]:
    """Cycles between top-level packages, counting every kind of edge."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        a, b = e.source.split(".")[0], e.target.split(".")[0]
        if a != b:
            graph.setdefault(a, set()).add(b)
    return find_cycles(graph)


def module_cycles(edges: Iterable[Edge]) -> list[list[str]]:
    """Cycles between modules, counting import-time (``module``) edges only."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.kind == "module":
            graph.setdefault(e.source, set()).add(e.target)
    return find_cycles(graph)


# ---------------------------------------------------------------------------------------------
# The project


@pytest.fixture(scope="module")
def project_edges() -> list[Edge]:
    return import_edges(ROOT, PACKAGES)


def test_the_project_is_parsed(project_edges: list[Edge]) -> None:
    """The walk sees the real tree: known import-time and lazy edges are found."""
    modules = module_names(ROOT, PACKAGES)
    assert {"geo.errors", "geo.fire_params", "layers.errors", "api.cli"} <= set(modules)
    pairs = {(e.source, e.target, e.kind) for e in project_edges}
    assert ("layers.errors", "geo.errors", "module") in pairs
    assert ("layers.fire_rules", "geo.fire_params", "module") in pairs
    assert ("geo.coverage", "geo.fire_params", "module") in pairs
    assert ("layers.schema", "layers.errors", "lazy") in pairs  # inside get_schema


def test_no_forbidden_edge(project_edges: list[Edge]) -> None:
    """(a) geo → layers/api/maps, (b) layers → api/maps, (c) maps → api: none, of any kind."""
    bad = forbidden_edges(project_edges, FORBIDDEN)
    assert not bad, "forbidden imports:\n" + "\n".join(map(str, bad))


def test_no_package_cycle(project_edges: list[Edge]) -> None:
    """(d) the top-level packages form a DAG, lazy and TYPE_CHECKING imports included."""
    assert package_cycles(project_edges) == []


def test_no_import_time_module_cycle(project_edges: list[Edge]) -> None:
    """(d) no two modules import each other (directly or around a loop) at import time."""
    cycles = module_cycles(project_edges)
    assert cycles == [], "import-time cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


POSIX_ONLY = frozenset({"fcntl", "grp", "posix", "pty", "pwd", "resource", "termios", "tty"})
"""Standard-library modules missing on Windows (where most district offices run riskmap)."""


def test_no_posix_only_module_at_import_time() -> None:
    """Portable: no module imports a POSIX-only standard module when it is imported."""
    bad = [e for e in external_imports(ROOT, PACKAGES)
           if e.target in POSIX_ONLY and e.kind == "module"]
    assert not bad, "POSIX-only imports at import time:\n" + "\n".join(map(str, bad))


def test_geo_errors_are_the_layers_errors() -> None:
    """layers.errors re-exports geo's classes (same objects: one except clause, one status)."""
    import geo.errors
    import geo.routing
    import layers.errors

    assert layers.errors.RiskmapError is geo.errors.RiskmapError
    assert layers.errors.CRSError is geo.errors.CRSError
    assert layers.errors.RuleError is geo.errors.RuleError
    assert geo.routing.NoRouteError is geo.errors.NoRouteError
    assert geo.routing.SnapError is geo.errors.SnapError
    assert issubclass(layers.errors.StoreBusy, geo.errors.RiskmapError)
    exported = {name: getattr(layers.errors, name) for name in layers.errors.__all__}
    assert {"CRSError", "RiskmapError", "RuleError", "StoreBusy", "STORE_BUSY_EXIT",
            "LayerValidationError", "MissingExtraError", "missing_extra",
            "missing_layer"} <= set(exported)


def test_rule_types_are_geos() -> None:
    """The rule loaders in layers return the dataclasses geo defines (re-exported by name)."""
    import geo.fire_params
    import geo.hazmat_params
    import geo.pressure
    import geo.route_check
    import geo.routing
    import layers.fire_rules
    import layers.hazmat_rules
    import layers.schema

    assert layers.fire_rules.FireRules is geo.fire_params.FireRules
    assert layers.fire_rules.RuleRow is geo.fire_params.RuleRow
    assert geo.routing.RoutingParams is geo.hazmat_params.RoutingParams
    assert geo.route_check.RouteCheckParams is geo.hazmat_params.RouteCheckParams
    assert layers.schema.pressure_class is geo.pressure.pressure_class
    assert layers.schema.PRESSURE_CLASSES is geo.pressure.PRESSURE_CLASSES
    fire = layers.fire_rules.load_fire_rules()
    assert type(fire) is geo.fire_params.FireRules
    hazmat = layers.hazmat_rules.load_hazmat_rules()
    assert type(hazmat.routing) is geo.hazmat_params.RoutingParams
    assert type(hazmat.check) is geo.hazmat_params.RouteCheckParams


def test_geo_types_and_rule_loaders_load_no_analysis_stack() -> None:
    """geo's type modules and the rule loaders import without numpy/pandas/shapely/geopandas/
    scipy/pyproj, so parsing a district's rules (e.g. at CLI start) stays cheap."""
    code = ("import sys, json; import geo.errors, geo.fire_params, geo.hazmat_params, "
            "geo.pressure, layers.errors, layers.schema, layers.rules, layers.fire_rules, "
            "layers.hazmat_rules; layers.fire_rules.load_fire_rules(); "
            "layers.hazmat_rules.load_hazmat_rules(); print(json.dumps(sorted({m.split('.')[0] "
            "for m in sys.modules} & {'numpy', 'pandas', 'shapely', 'geopandas', 'scipy', "
            "'pyproj'})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == []


# ---------------------------------------------------------------------------------------------
# The checker itself, on a synthetic tree


def _tree(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


_CLEAN = {
    "geo/__init__.py": '"""geo."""\n',
    "geo/a.py": "import numpy\n",
    "geo/b.py": "from geo.a import x\nfrom . import a\n",
    "layers/__init__.py": "",
    "layers/s.py": "from geo import b\n",
    "layers/sub/__init__.py": "from .. import s\n",
    "layers/sub/t.py": "from ..s import y\nfrom . import u\n",
    "layers/sub/u.py": "def f():\n    from layers.sub import t\n",
    "maps/__init__.py": "",
    "maps/m.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import layers.s\n",
    "api/__init__.py": "",
    "api/r.py": "import maps.m, layers.sub.t as t\n",
}


def test_checker_resolves_every_import_form(tmp_path: Path) -> None:
    root = _tree(tmp_path, _CLEAN)
    edges = {(e.source, e.target, e.kind) for e in import_edges(root, PACKAGES)}
    assert edges == {
        ("geo.b", "geo.a", "module"),                # absolute from-import of a name, and `from . import a`
        ("layers.s", "geo.b", "module"),             # `from geo import b`: b is a submodule
        ("layers.sub", "layers.s", "module"),        # `from .. import s` in a package __init__
        ("layers.sub.t", "layers.s", "module"),      # `from ..s import y`
        ("layers.sub.t", "layers.sub.u", "module"),  # `from . import u`
        ("layers.sub.u", "layers.sub.t", "lazy"),    # inside a function
        ("maps.m", "layers.s", "typing"),            # under TYPE_CHECKING
        ("api.r", "maps.m", "module"),
        ("api.r", "layers.sub.t", "module"),
    }
    assert forbidden_edges(import_edges(root, PACKAGES), FORBIDDEN) == []
    # u -> t is lazy, so the t -> u edge closes no import-time cycle
    assert module_cycles(import_edges(root, PACKAGES)) == []
    assert package_cycles(import_edges(root, PACKAGES)) == []


def test_checker_lists_external_imports_with_their_kind(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**_CLEAN, "layers/lock.py": "import fcntl\nimport os.path\n\n"
                                                       "def f():\n    import msvcrt\n"})
    found = [(e.source, e.target, e.kind) for e in external_imports(root, PACKAGES)
             if e.source == "layers.lock"]
    assert found == [("layers.lock", "fcntl", "module"), ("layers.lock", "os", "module"),
                     ("layers.lock", "msvcrt", "lazy")]


@pytest.mark.parametrize(("rel", "text", "bad"), [
    ("geo/c.py", "from layers.s import z\n", ("geo.c", "layers.s")),
    ("geo/c.py", "def f():\n    import api.r\n", ("geo.c", "api.r")),
    ("geo/c.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from maps import m\n",
     ("geo.c", "maps.m")),
    ("geo/c.py", "import importlib\n\ndef f():\n    importlib.import_module('layers.sub.u')\n",
     ("geo.c", "layers.sub.u")),
    ("maps/n.py", "from importlib import import_module\nx = 'r'\nimport_module(f'api.{x}')\n",
     ("maps.n", "api")),
    ("layers/sub/v.py", "import api.r as r\n", ("layers.sub.v", "api.r")),
    ("maps/n.py", "import api.r\n", ("maps.n", "api.r")),
])
def test_checker_fails_on_a_planted_forbidden_edge(tmp_path: Path, rel: str, text: str,
                                                   bad: tuple[str, str]) -> None:
    root = _tree(tmp_path, {**_CLEAN, rel: text})
    found = [(e.source, e.target) for e in forbidden_edges(import_edges(root, PACKAGES),
                                                           FORBIDDEN)]
    assert found == [bad]


def test_checker_fails_on_a_planted_module_cycle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**_CLEAN, "layers/sub/u.py": "from layers.sub import t\n"})
    assert module_cycles(import_edges(root, PACKAGES)) == [["layers.sub.t", "layers.sub.u"]]


def test_checker_fails_on_a_three_module_cycle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**_CLEAN, "geo/a.py": "import geo.c\n", "geo/c.py": "import geo.b\n"})
    assert module_cycles(import_edges(root, PACKAGES)) == [["geo.a", "geo.b", "geo.c"]]


def test_checker_fails_on_a_lazy_package_cycle(tmp_path: Path) -> None:
    """A back edge from geo to layers closes a package cycle even when it is lazy."""
    root = _tree(tmp_path, {**_CLEAN, "geo/c.py": "def f():\n    from layers import s\n"})
    edges = import_edges(root, PACKAGES)
    assert module_cycles(edges) == []
    assert package_cycles(edges) == [["geo", "layers"]]


def test_checker_rejects_a_relative_import_beyond_the_top(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**_CLEAN, "geo/c.py": "from .. import x\n"})
    with pytest.raises(ValueError, match=r"geo\.c:1: relative import beyond the top-level"):
        import_edges(root, PACKAGES)


# ---------------------------------------------------------------------------------------------
# Optional dependencies: the package imports and the CLI starts without them

OPTIONAL = ("dask", "dask_geopandas", "distributed", "networkx", "osmium", "playwright",
            "psycopg")
"""Packages only one feature needs (``--engine dask``, PostGIS, PDF/PNG maps, OSM import) or
no production code uses (networkx): importing any project module must not need them."""

_BLOCKED_RUN = """
import importlib, importlib.abc, json, pathlib, sys
BLOCK = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCK:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
failed = {}
for pkg in ("geo", "layers", "api", "maps"):
    for p in sorted(pathlib.Path(pkg).rglob("*.py")):
        parts = list(p.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        try:
            importlib.import_module(".".join(parts))
        except Exception as exc:
            failed[".".join(parts)] = repr(exc)
from api.cli import main
try:
    main(["--help"])
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps({"failed": failed, "help_exit": code,
                  "loaded": sorted({m.split(".")[0] for m in sys.modules} & BLOCK)}))
"""


def _run_blocked(root: Path, blocked: Iterable[str]) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _BLOCKED_RUN, ",".join(blocked)], cwd=root,
                         capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_every_module_imports_and_the_cli_starts_without_optional_packages() -> None:
    """With the optional packages made unimportable, every module of geo/layers/api/maps
    imports, ``riskmap --help`` exits 0, and none of them was loaded."""
    result = _run_blocked(ROOT, OPTIONAL)
    assert result == {"failed": {}, "help_exit": 0, "loaded": []}


def test_blocked_run_reports_a_module_that_needs_an_optional_package(tmp_path: Path) -> None:
    """The same check fails on a planted module-level import of a blocked package."""
    for pkg in ("geo", "layers", "maps"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "layers" / "pg.py").write_text("import psycopg\n", encoding="utf-8")
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "api" / "cli.py").write_text("def main(argv):\n    raise SystemExit(0)\n",
                                             encoding="utf-8")
    result = _run_blocked(tmp_path, ["psycopg"])
    assert result == {"failed": {"layers.pg": "ModuleNotFoundError(\"No module named 'psycopg' "
                                              "(blocked)\")"},
                      "help_exit": 0, "loaded": []}


def test_missing_extra_names_the_package_and_the_extra() -> None:
    """The error a feature raises when its optional package is absent: a RiskmapError and an
    ImportError, naming the feature, the package and the pip command."""
    from layers.errors import MissingExtraError, RiskmapError, missing_extra

    try:
        raise missing_extra("osmium", extra="osm", feature="reading OSM .pbf files") \
            from ModuleNotFoundError("No module named 'osmium'")
    except ImportError as exc:
        assert isinstance(exc, MissingExtraError) and isinstance(exc, RiskmapError)
        assert exc.name == "osmium"
        assert str(exc) == ("reading OSM .pbf files needs the optional package 'osmium', which "
                            "is not installed; install it with: pip install 'riskmap[osm]'")
