"""Chapter 7's latency grid: every network, batch 1 and 64, 1 and 2 threads, wall and CPU clocks.

The report's "latency" is the time of a batch of 64 divided by 64 on a GPU: inverse throughput.
The ResNeSt paper measured throughput too (images per second at a large batch on a V100).
On a CPU the batch of 1 is a different question (how long one image waits), so both are
measured here. The networks are timed in turns, their order rotating every repeat, so that
they all see the same machine; every call is timed on the wall clock and on the process's
CPU clock at once. The file stores every time, the medians and the quartiles.

Measure on an idle machine (the study's queue paused: ``kill -STOP``): :func:`busy_fraction`
is checked before and after, and stored.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..engine import records as res
from ..engine.device import hardware
from ..engine.timing import compare_clocks, spread
from ..models.factory import create_model
from .report import TABLE1, TABLE2

GRID_FILE = "latency-grid.json"
GRID = {"smoke": dict(batch_sizes=(1, 2), threads=(1,), repeats=3, warmup=1),
        "cpu": dict(batch_sizes=(1, 64), threads=(1, 2), repeats=30, warmup=5)}
MAX_BUSY = 0.10   # share of all CPUs that other programs may use while we measure


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)      # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_fraction(seconds: float = 2.0) -> float | None:
    """Share of all CPUs busy over ``seconds`` while this process sleeps (None where /proc is missing)."""
    try:
        b0, t0 = _cpu_times()
        time.sleep(seconds)
        b1, t1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    return (b1 - b0) / max(t1 - t0, 1)


def _check_idle(busy: float | None, allow_busy: bool) -> None:
    if busy is not None and busy > MAX_BUSY and not allow_busy:
        raise ValueError(f"the machine is busy: other programs use {100 * busy:.0f} % of its CPUs. Pause the "
                         "study's queue (kill -STOP <pid>; kill -CONT after) and anything else, then measure "
                         "again; or pass allow_busy=True / --busy-ok, and the file will say it was busy")


def measure_grid(names=None, *, batch_sizes=(1, 64), threads=(1, 2), repeats: int = 30, warmup: int = 5,
                 allow_busy: bool = False) -> dict:
    """Inference times (fp32, eager, 32x32, 10 classes) of ``names`` (default: Tables I and II) on the CPU."""
    names = list(names or dict.fromkeys(TABLE1 + TABLE2))
    if repeats < 4:
        raise ValueError(f"repeats must be at least 4 for quartiles, got {repeats}")
    before = busy_fraction()
    _check_idle(before, allow_busy)
    models = {n: create_model(n, num_classes=10).eval() for n in names}
    saved_threads = torch.get_num_threads()
    cells = []
    try:
        for t in threads:
            torch.set_num_threads(t)
            for b in batch_sizes:
                x = torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(0))

                def call(m):
                    def run():
                        with torch.inference_mode():
                            m(x)
                    return run
                times = compare_clocks({n: call(m) for n, m in models.items()}, repeats, warmup)
                for n in names:
                    cell = {"model": n, "threads": t, "batch_size": b}
                    for clock in ("wall", "cpu"):
                        ms = [1000 * s for s in times[n][clock]]
                        cell[clock] = {**{k: v / b for k, v in spread(ms).items()},   # ms per image
                                       "ms_per_batch": [round(v, 4) for v in ms]}
                    cells.append(cell)
                print(f"  {t} thread(s), batch {b}: " + ", ".join(
                    f"{c['model']} {c['wall']['median']:.3f}" for c in cells[-len(names):]) + " ms/image (wall)",
                    flush=True)
    finally:
        torch.set_num_threads(saved_threads)
    after = busy_fraction()
    return {"what": "inference, fp32, eager, 3x32x32 input, 10 classes; ms per image = batch time / batch size",
            "repeats": repeats, "warmup": warmup, "order": "models interleaved, order rotating every repeat",
            "busy_before": before, "busy_after": after, "allowed_busy": allow_busy,
            "measured": res.log_time(), "hardware": hardware(torch.device("cpu")), "versions": res.versions(),
            "cells": cells}


def measure_and_store(profile: str, directory, *, allow_busy: bool = False) -> Path:
    """Measure the grid of ``profile`` (see GRID) and write it to <directory>/latency-grid.json."""
    if profile not in GRID:
        raise ValueError(f"the latency grid has profiles {list(GRID)}, not {profile!r} (on a GPU, use "
                         "`experiments latency` without --grid)")
    out = Path(directory) / GRID_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    res.write_json(out, measure_grid(**GRID[profile], allow_busy=allow_busy))
    return out


def load_grid(path) -> dict:
    """A stored grid, checked: every cell names a model, threads and batch, with both clocks' times."""
    import json
    path = Path(path)
    try:
        grid = json.loads(path.read_text())
        for c in grid["cells"]:
            for clock in ("wall", "cpu"):
                if not (c[clock]["q1"] <= c[clock]["median"] <= c[clock]["q3"]) or not c[clock]["ms_per_batch"]:
                    raise ValueError(f"cell {c['model']} {c['threads']}t b{c['batch_size']}: quartiles out of order")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a latency grid written by course_lib ({err}); measure it again with "
                         "`python -m course_lib.experiments latency --profile cpu --grid`") from None
    return grid
