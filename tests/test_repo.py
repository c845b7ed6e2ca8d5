"""The repository's one-place settings stay in agreement."""
import json
import re
from pathlib import Path

import yaml

import course_lib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb"))
TEXTS = sorted((ROOT / "src").glob("*/*.md"))   # their MyST sources (tests/test_text_sources.py)


def repo_url() -> str:
    """The repository address, set once in _config.yml."""
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def test_repo_url_is_set_in_one_place():
    assert course_lib.REPO_URL == repo_url()


def test_every_notebook_starts_with_the_setup_cell():
    """The first code cell installs course_lib on Colab from _config.yml's repository, at the release tag
    of this course_lib (v + __version__), so a chapter and its library never drift apart."""
    assert NOTEBOOKS
    pinned = f'"course_lib @ git+{repo_url()}@v{course_lib.__version__}"'
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        first_code = next(c for c in cells if c["cell_type"] == "code")
        source = "".join(first_code["source"])
        assert pinned in source, f"{path.name}: the setup cell must install {pinned}"
        assert "setup" in first_code["metadata"].get("tags", []), f"{path.name}: tag the setup cell `setup`"


def test_no_control_characters_in_notebook_text():
    """A TeX command written as "\\a..." in a Python string became a bell character (\\x07)."""
    assert NOTEBOOKS and TEXTS
    for path in NOTEBOOKS:
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            text = "".join(cell["source"])
            bad = sorted({hex(ord(ch)) for ch in text if ord(ch) < 32 and ch not in "\n\t"})
            assert not bad, f"{path.name}, cell {i}: control characters {bad}"
    for path in TEXTS:
        bad = sorted({hex(ord(ch)) for ch in path.read_text() if ord(ch) < 32 and ch not in "\n\t"})
        assert not bad, f"{path.relative_to(ROOT)}: control characters {bad}"


def test_tex_is_not_double_escaped():
    """In Markdown a TeX command has one backslash: `\\\\mathbf` is a line break and `mathbf`."""
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "markdown":
                doubled = re.findall(r"\\\\[A-Za-z]+", "".join(cell["source"]))
                assert not doubled, f"{path.name}, cell {i}: doubled backslashes {doubled}"


def test_the_release_the_setup_cells_install_is_tagged():
    """The tag v + __version__ exists (once a release is tagged) and carries that very version."""
    import subprocess
    tag = f"v{course_lib.__version__}"
    try:
        tags = subprocess.run(["git", "-C", str(ROOT), "tag", "-l", "v*"], capture_output=True, text=True,
                              timeout=30, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        tags = []
    if not tags:
        import pytest
        pytest.skip("no release tags in this clone (a clone without tags)")
    assert tag in tags, f"tag the release: git tag -a {tag} -m 'course_lib {course_lib.__version__}' (CHANGELOG.md)"
    tagged = subprocess.run(["git", "-C", str(ROOT), "show", f"{tag}:course_lib/__init__.py"], capture_output=True,
                            text=True, timeout=30).stdout
    assert f'__version__ = "{course_lib.__version__}"' in tagged, f"{tag} carries another __version__"
