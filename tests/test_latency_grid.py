"""Chapter 7's latency grid: its layout, its idle check and its file check (no verdict depends on speed)."""
import json

import pytest

from course_lib.engine.timing import compare_clocks, spread
from course_lib.study import latency


def test_spread_gives_median_and_quartiles():
    s = spread([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s == {"median": 3.0, "q1": 2.0, "q3": 4.0}


def test_compare_clocks_times_every_call_on_both_clocks():
    calls = []
    t = compare_clocks({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=4, warmup=1)
    assert calls == ["a", "b"] + ["a", "b", "b", "a", "a", "b", "b", "a"]      # warm-up, then rotating order
    assert all(len(t[n][c]) == 4 and min(t[n][c]) >= 0 for n in t for c in ("wall", "cpu"))


def test_a_busy_machine_is_refused_unless_allowed(monkeypatch):
    monkeypatch.setattr(latency, "busy_fraction", lambda seconds=2.0: 0.9)
    with pytest.raises(ValueError, match="busy: other programs use 90 %.*kill -STOP"):
        latency.measure_grid(["ResNeSt-14"], batch_sizes=(1,), threads=(1,), repeats=4, warmup=0)


def test_grid_file_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(latency, "busy_fraction", lambda seconds=2.0: 0.0)
    monkeypatch.setitem(latency.GRID, "smoke", dict(batch_sizes=(1, 2), threads=(1,), repeats=4, warmup=0))
    monkeypatch.setattr(latency, "TABLE1", ("ResNeSt-14-2s1x64d",))
    monkeypatch.setattr(latency, "TABLE2", ("ResNet-18",))
    path = latency.measure_and_store("smoke", tmp_path)
    grid = latency.load_grid(path)
    assert {(c["model"], c["threads"], c["batch_size"]) for c in grid["cells"]} == \
        {(m, 1, b) for m in ("ResNeSt-14-2s1x64d", "ResNet-18") for b in (1, 2)}
    assert all(len(c["wall"]["ms_per_batch"]) == 4 for c in grid["cells"])
    broken = json.loads(path.read_text())
    broken["cells"][0]["wall"]["q1"] = broken["cells"][0]["wall"]["q3"] + 1
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="not a latency grid.*--grid"):
        latency.load_grid(path)
    with pytest.raises(ValueError, match="profiles"):
        latency.measure_and_store("full", tmp_path)
