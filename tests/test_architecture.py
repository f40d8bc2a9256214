"""docs/ARCHITECTURE.md's import order is the package's: every import (function-level ones included) points down.

The order is read from the document itself (the block between ``<!-- import-order -->`` markers: one level per
line, lowest first), so the test and the document cannot disagree. A unit is a folder of ``savi_plugin`` or one of
its top-level modules; a unit may import units on lower lines only.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.builders import REPO_ROOT

PACKAGE = REPO_ROOT / "savi_plugin"
MARKER = "<!-- import-order -->"
#: a string naming a module inside a folder (``"savi_plugin.training.trainer"``): a lazy import by name. One dot is
#: not enough: entry-point groups are named like folders (``"savi_plugin.losses"``).
MODULE_PATH = re.compile(r"savi_plugin(\.[A-Za-z_]\w*){2,}")


def documented_levels() -> dict[str, int]:
    text = (REPO_ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    parts = text.split(MARKER)
    assert len(parts) == 3, f"docs/ARCHITECTURE.md needs one block between two {MARKER} markers"
    levels = {}
    lines = [line.strip().strip("`") for line in parts[1].splitlines()]
    for level, line in enumerate(line for line in lines if line and not line.startswith("```")):
        for unit in re.split(r"[,\s]+", line):
            if unit:
                levels[unit.rstrip("/").removesuffix(".py")] = level
    return levels


def unit_of(module: str) -> str | None:
    """``savi_plugin.training.scoring`` -> ``training``; the package itself (``__version__``) -> None."""
    parts = module.split(".")
    if parts[0] != "savi_plugin" or len(parts) == 1:
        return None
    return parts[1]


def imports(path: Path, root: Path = REPO_ROOT) -> list[tuple[str, int]]:
    """Every module imported anywhere in ``path`` (module level or inside functions), relative ones resolved, and
    every string naming a module inside a ``savi_plugin`` folder (``importlib.import_module("savi_plugin.x.y")``, a
    table of lazy exports)."""
    module = ".".join(path.relative_to(root).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "savi_plugin":  # from savi_plugin import registry: the submodule is the target
                found += [(f"savi_plugin.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((target, node.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_PATH.fullmatch(node.value):
            found.append((node.value, node.lineno))
    return found


def import_graph() -> dict[tuple[str, str], list[str]]:
    """``(importer unit, imported unit) -> ["file:line", ...]`` across units."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = unit_of(".".join(path.relative_to(REPO_ROOT).with_suffix("").parts))
        for target, line in imports(path):
            imported = unit_of(target)
            if imported is None or source is None or imported == source:
                continue
            if not (PACKAGE / imported).is_dir() and not (PACKAGE / f"{imported}.py").is_file():
                continue  # an attribute of the package (``__version__``)
            edges.setdefault((source, imported), []).append(f"{path.relative_to(REPO_ROOT)}:{line}")
    return edges


def test_every_unit_is_placed_in_the_documented_order():
    levels = documented_levels()
    units = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    units |= {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert units - set(levels) == set(), "units missing from docs/ARCHITECTURE.md's import order"
    assert set(levels) - units == set(), "docs/ARCHITECTURE.md's import order names units that do not exist"


def test_imports_point_down_the_documented_order():
    levels = documented_levels()
    upward = {f"{a} -> {b}": where for (a, b), where in import_graph().items() if levels[b] >= levels[a]}
    assert upward == {}, "imports against docs/ARCHITECTURE.md's order (move the code, or the documented order)"


def test_the_graph_reader_sees_function_level_imports(tmp_path):
    """The reader counts an import inside a function, and relative imports, as arrows."""
    module = PACKAGE / "pipeline" / "align.py"
    targets = [target for target, _ in imports(module)]
    tree = ast.parse(module.read_text(encoding="utf-8"))
    nested = [node for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef) for node in ast.walk(fn)
              if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("savi_plugin")]
    assert nested and all(node.module in targets for node in nested)
    relative = tmp_path / "savi_plugin" / "a" / "b.py"
    relative.parent.mkdir(parents=True)
    relative.write_text("def f():\n    from ..c import d\n    from . import e\n    g('savi_plugin.h.i', 'savi_plugin.j')\n")
    assert sorted(t for t, _ in imports(relative, tmp_path)) == ["savi_plugin.a", "savi_plugin.c", "savi_plugin.h.i"]


def test_the_output_layer_s_modules_import_only_those_before_them():
    """``savi_plugin/data/outputs/`` is split by job; its ``__init__`` lists the modules in order, and each imports
    only modules before it (no cycle; an import for annotations only, under ``TYPE_CHECKING``, is no arrow)."""
    layer = PACKAGE / "data" / "outputs"
    doc = ast.get_docstring(ast.parse((layer / "__init__.py").read_text(encoding="utf-8")))
    order = re.findall(r"``(\w+)``\s+\(", doc.split("The layer is split by job", 1)[1])
    assert sorted(order) == sorted(p.stem for p in layer.glob("*.py") if p.name != "__init__.py")
    upward = []
    for position, name in enumerate(order):
        tree = ast.parse((layer / f"{name}.py").read_text(encoding="utf-8"))
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and id(node) not in typing_only and node.module:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                for target in targets:
                    parts = target.split(".")
                    if parts[:3] == ["savi_plugin", "data", "outputs"] and len(parts) == 4 and parts[3] in order:
                        if order.index(parts[3]) >= position:
                            upward.append(f"{name} -> {parts[3]} (line {node.lineno})")
    assert upward == [], "imports against the output layer's order in savi_plugin/data/outputs/__init__.py"
