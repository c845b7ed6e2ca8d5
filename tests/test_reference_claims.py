"""The chapters' prose quotes the committed `cpu` reference runs: keep the two in step.

Each test recomputes, from the records in results/cpu/, a statement that a chapter
makes in words, and reads the sentence from the chapter's source.
"""
from pathlib import Path

import pytest

from course_lib import experiments as ex

ROOT = Path(__file__).resolve().parents[1]


def _source(chapter: str) -> str:
    return " ".join((ROOT / "tools" / "chapters" / f"ch{chapter}.py").read_text().split())


def _finished(chapter: str, group: str):
    runs = ex.collect(chapter, "cpu")
    return runs[(runs.group == group) & (runs.status == "finished")]


def test_chapter6_table1_claims():
    runs = _finished("06", "table")
    if len(runs) < 3 * len(ex.TABLE1):
        pytest.skip("Table I reference runs are not all committed")
    acc = runs.test_acc.astype(float) * 100
    by = acc.groupby(runs.label)
    text = _source("06")
    assert "none of the seven differences is larger than the seed spread" in text
    pairs = ex.compare(ex.collect("06", "cpu"), ex.TABLE1_PAIRS)
    assert (pairs.p.astype(float) > 0.05).all()
    lo, hi = by.std().min(), by.std().max()
    assert f"is {lo:.1f} to {hi:.1f} points" in text
    assert by.mean().idxmax() == "ResNeSt-14-0s1x64d" and "ResNeSt-14-0s1x64d has the best mean" in text
    assert by.std().idxmax() == "ResNeSt-14-2s1x64d" and "widest spread" in text

