"""The student edition of the site (tools/student_edition.py), checked on its sources, without a build."""
import importlib.util
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("student_edition", ROOT / "tools" / "student_edition.py")
edition = importlib.util.module_from_spec(spec)
spec.loader.exec_module(edition)


def test_the_student_edition_has_no_solutions_answers_or_checks(tmp_path):
    assert edition.leaks(ROOT)                      # the public sources do hold them (folded)
    src = edition.prepare(tmp_path / "src")
    assert edition.leaks(src) == []
    for path in sorted((src / "exercises").glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert "YOUR CODE HERE" in text and any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert sorted(p.name for p in (src / "exercises").glob("*.ipynb")) == \
        sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    assert 'execute_notebooks: "off"' in (src / "_config.yml").read_text()
    assert (src / "chapters" / "04_split_attention.ipynb").read_bytes() == \
        (ROOT / "chapters" / "04_split_attention.ipynb").read_bytes()
