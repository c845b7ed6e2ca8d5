"""The repository's one-place settings stay in agreement."""
import json
from pathlib import Path

import course_lib
from tools.nb import repo_url

ROOT = Path(__file__).resolve().parents[1]


def test_repo_url_is_set_in_one_place():
    assert course_lib.REPO_URL == repo_url()


def test_every_chapter_starts_with_the_setup_cell():
    notebooks = sorted((ROOT / "chapters").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        first_code = next(c for c in cells if c["cell_type"] == "code")
        source = "".join(first_code["source"])
        assert f"git+{repo_url()}" in source, path.name


def test_no_control_characters_in_notebook_text():
    """A TeX command written as "\\a..." in a Python string becomes a bell character (\\x07)."""
    notebooks = sorted((ROOT / "chapters").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            text = "".join(cell["source"])
            bad = sorted({hex(ord(ch)) for ch in text if ord(ch) < 32 and ch not in "\n\t"})
            assert not bad, f"{path.name}, cell {i}: control characters {bad}; escape the backslash in its source"
