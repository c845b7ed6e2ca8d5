"""course_lib's layers: no module imports from a layer above its own.

The folders read as the book, from the blocks up to the instructor's tools; each
package's ``__init__.py`` says in one line what it may import. This test reads every
module with ``ast`` (imports inside functions count too) and checks it against ``MAY_IMPORT``.
"""
import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "course_lib"

# layer -> the other layers of course_lib it may import from
MAY_IMPORT = {
    "blocks": set(),
    "models": {"blocks"},
    "figures": {"blocks", "models"},
    "engine": {"blocks", "models"},
    "study": {"engine", "models", "blocks"},
    "instructor": {"study", "engine", "figures", "models", "blocks", "check"},
    "check": set(),
    "experiments": {"instructor"},  # python -m course_lib.experiments: the command line, nothing else
}
# Beyond the standard library: the blocks import torch only, check.py nothing.
OUTSIDE = {"blocks": {"torch"}, "check": set()}
# Imported inside functions only, so that ``import course_lib.models`` needs none of them.
LAZY = {"models": {"timm", "huggingface_hub", "safetensors"}}
# What a module may take from the package root itself (its lazy table reaches every layer).
ROOT_NAMES = {"__version__", "REPO_URL"}


def layer_of(path: Path) -> str | None:
    """'blocks' for course_lib/blocks/se.py, 'check' for course_lib/check.py; None for the root __init__."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts == ("__init__",):
        return None
    return parts[0]


def _targets(node, module_parts: list[str]):
    """The absolute dotted name of everything an import statement brings in."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        base = node.module.split(".")
    else:
        base = module_parts[:len(module_parts) - node.level] + (node.module.split(".") if node.module else [])
    return [".".join(base + [alias.name]) for alias in node.names]


def _layer_of_name(dotted: str) -> str:
    """The layer of ``course_lib.<layer>...``; 'root:<name>' for a name taken from the package root."""
    parts = dotted.split(".")
    if len(parts) == 1:
        return "root"
    head = parts[1]
    if (PACKAGE / head).is_dir() or (PACKAGE / f"{head}.py").exists():
        return head
    return f"root:{head}"


def violations(layer: str, source: str, module: str) -> list[str]:
    """What in ``source`` (the module ``module``, dotted) breaks the rules of ``layer``."""
    tree = ast.parse(source)
    inside_functions = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                        for n in ast.walk(f)}
    package_parts = module.split(".")[:-1]  # course_lib.study.specs and course_lib.study.__init__: course_lib.study
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for dotted in _targets(node, package_parts + ["_"]):
            top = dotted.split(".")[0]
            where = f"line {node.lineno}: {dotted}"
            if top == "course_lib":
                target = _layer_of_name(dotted)
                if target.startswith("root:"):
                    if target[5:] not in ROOT_NAMES:
                        found.append(f"{where} (the root's lazy table reaches every layer: import the module)")
                elif target != layer and target not in MAY_IMPORT[layer]:
                    found.append(f"{where} ({layer} may not import {target})")
            elif top in sys.stdlib_module_names:
                continue
            elif layer in OUTSIDE and top not in OUTSIDE[layer]:
                found.append(f"{where} ({layer} imports {sorted(OUTSIDE[layer]) or 'the standard library'} only)")
            elif top in LAZY.get(layer, ()) and id(node) not in inside_functions:
                found.append(f"{where} ({top} is imported inside the functions that need it)")
    return found


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if layer_of(p) is not None)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_from_a_layer_above(path):
    layer = layer_of(path)
    assert layer in MAY_IMPORT, f"{path}: a new top-level folder or module needs its place in MAY_IMPORT"
    module = ".".join(("course_lib", *path.relative_to(PACKAGE).with_suffix("").parts))
    assert violations(layer, path.read_text(), module) == []


def test_every_layer_says_what_it_may_import():
    for package in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        assert "\n" not in doc.strip() and "may import" in doc, package.name


@pytest.mark.parametrize("layer,source,bad", [
    ("blocks", "from ..engine import data", True),           # a block that needs the engine
    ("blocks", "import numpy", True),                         # blocks: torch only
    ("blocks", "from .grouped import check_groups\nimport torch", False),
    ("engine", "def f():\n    from ..study import specs", True),  # inside a function counts too
    ("engine", "from course_lib.models.factory import create_model", False),
    ("figures", "from ..engine.timing import compare", True),
    ("study", "from course_lib import create_model", True),  # through the root's lazy table
    ("study", "from .. import __version__", False),
    ("models", "import timm", True),                          # timm only inside functions
    ("models", "def f():\n    import timm", False),
    ("check", "import nbformat", True),
])
def test_the_checker_sees_a_violation(layer, source, bad):
    module = f"course_lib.{layer}.example"
    assert bool(violations(layer, source, module)) is bad


def test_the_root_exports_every_name_it_lists():
    import course_lib
    for name in course_lib._ENGINE:
        assert getattr(course_lib, name) is not None, name
