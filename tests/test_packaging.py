"""pyproject.toml says the truth about course_lib: its imports, its subpackages, its records, its version."""
import ast
import re
import sys
import tomllib
from pathlib import Path

import course_lib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# import name -> the distribution that provides it (when the names differ), or the declared
# distribution that brings it in as its own dependency
PROVIDED_BY = {"PIL": "pillow", "yaml": "pyyaml", "huggingface_hub": "timm", "safetensors": "timm"}
# the layers that may use an extra, and which one
EXTRAS = {"instructor": "instructor"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def _third_party_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return {m for m in out if m not in sys.stdlib_module_names and m not in ("course_lib", "__future__")}


def test_every_import_of_course_lib_is_a_declared_dependency():
    core = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = {k: {_name(r) for r in v} for k, v in PYPROJECT["project"]["optional-dependencies"].items()}
    missing = []
    for path in sorted((ROOT / "course_lib").rglob("*.py")):
        layer = path.relative_to(ROOT / "course_lib").parts[0]
        allowed = core | extras.get(EXTRAS.get(layer, ""), set())
        for module in _third_party_imports(path):
            if PROVIDED_BY.get(module, module).lower() not in allowed:
                missing.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not missing, "declare these in pyproject.toml:\n" + "\n".join(missing)


def test_d2l_is_not_needed():
    for path in (ROOT / "course_lib").rglob("*.py"):
        assert "d2l" not in _third_party_imports(path), path


def test_every_subpackage_and_every_records_folder_is_packaged():
    tool = PYPROJECT["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "course_lib").rglob("__init__.py")}
    profiles = {p.name for p in (ROOT / "results").iterdir() if p.is_dir()}
    records = {"course_lib._records"} | {f"course_lib._records.{p}" for p in profiles}
    assert set(tool["packages"]) == found | records
    assert tool["package-dir"] == {"course_lib._records": "results"}
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert {f"course_lib._records.{p}" for p in profiles} <= set(data)
    assert all({"*.json", "*.md"} <= set(data[f"course_lib._records.{p}"]) for p in profiles)


def test_one_version_in_one_place_with_its_changelog_entry():
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "course_lib.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", course_lib.__version__)
    first = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert first == course_lib.__version__, "the newest CHANGELOG.md entry is the version being released"
