"""Chapters 4-5 quote numbers that their own cells print: keep the prose and the stored outputs in step.

Each test reads a cell's output from the executed notebook (chapters/NN_*.ipynb) and the sentence from
the chapter's text source (src/chapters/NN_*.md), whitespace collapsed.
"""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _text(chapter: str) -> str:
    (path,) = (ROOT / "src" / "chapters").glob(f"{chapter}_*.md")
    return " ".join(path.read_text().split())


def _output_of(chapter: str, marker: str) -> str:
    """The printed output of the one code cell whose source contains ``marker``."""
    (path,) = (ROOT / "chapters").glob(f"{chapter}_*.ipynb")
    cells = [c for c in json.loads(path.read_text())["cells"]
             if c["cell_type"] == "code" and marker in "".join(c["source"])]
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells contain {marker!r}"
    return "".join("".join(o.get("text", "")) for o in cells[0].get("outputs", []))


def test_chapter4_radix_cost_sentence_follows_its_table():
    out = _output_of("04", "kept_for_backward(block, x)")
    rows = {int(m[0]): (int(m[1].replace(",", "")), int(m[2].replace(",", "")))
            for m in re.findall(r"^\s*(\d)\s+[\d,]+\s+([\d,]+)\s+([\d,]+)\s", out, flags=re.M)}
    assert set(rows) == {1, 2, 4}, out
    (p1, m1), (p2, _), (p4, m4) = rows[1], rows[2], rows[4]
    text = _text("04")
    assert f"add {p2 - p1:,} parameters from $R = 1$ to $R = 2$ and {p4 - p1:,} ({100 * (p4 - p1) / p1:.0f} %)" in text
    assert f"at most {m4 - m1:,} multiply-adds out of {m1 / 1e6:.1f} million" in text


def test_chapter4_layouts_are_identical_as_the_prose_says():
    out = _output_of("04", "p_radix, p_card")
    diffs = re.findall(r"(\d\.\de[+-]\d\d)\s+True", out)
    assert diffs and all(float(d) == 0.0 for d in diffs), out
    assert "The outputs are identical (every difference is exactly 0)" in _text("04")


def test_chapter5_report_rounding_slip():
    out = _output_of("05", "agree = abs(counted[name] - theirs) < 0.01")
    counted = float(re.search(r"ResNet-14-0s1x64d\s+([\d.]+) M", out).group(1))
    assert round(counted, 2) == 8.04 and "`ResNet-14-0s1x64d` has 8.036 M parameters, which rounds to 8.04" in _text("05")
