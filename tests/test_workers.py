"""Many runs, many processes: ``python -m course_lib.experiments train --workers N`` (or ``--gpus 0,1``).

The three smoke runs of chapter 6's probe (100 real CIFAR-10 images, 1 epoch, bfloat16 on
the CPU), into temporary folders: trained by the plain queue (one process), then by two
workers while this test holds the first run's lock, as a worker in the middle of it would.
Both workers skip it, train the other two, go back for it, and one of them trains it once
the lock is free. Every run is started and finished exactly once, and the records equal
the one-process records (smoke runs on the CPU are deterministic at a fixed thread count).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib.engine import distributed
from course_lib.engine import records as res
from course_lib.instructor import experiments as cli
from course_lib.study import queue, specs
from helpers_wait import communicate, wait_until

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["train", "--profile", "smoke", "--chapter", "06", "--group", "probe"]


def _env(data_root, runs: Path) -> dict:
    env = dict(os.environ, COURSE_DATA=str(data_root), COURSE_RUNS=str(runs), OMP_NUM_THREADS="1",
               COURSE_PROGRESS="0", PYTHONHASHSEED="0")
    for var in distributed.TORCHRUN_VARS:
        env.pop(var, None)
    return env


def _command(*args) -> list[str]:
    return [sys.executable, "-m", "course_lib.experiments", *args]


def _records(folder: Path) -> dict:
    return {r["key"]: r for r in res.iter_records(folder)}


def _finished(folder: Path) -> set:
    return {k for k, r in _records(folder).items() if r.get("status") == "finished"}


def _log_counts(folder: Path) -> dict:
    """{run label: [starts, finishes]} from <results>/LOG.md."""
    counts = {}
    for spec in specs.all_specs("smoke", "06", ["probe"]):
        lines = (folder / "LOG.md").read_text().splitlines()
        counts[spec.label] = [sum(f"start  {spec.describe()}" in x for x in lines),
                              sum(f"finished {spec.label} seed" in x for x in lines)]
    return counts


def _same(a: dict, b: dict) -> bool:
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    return (a["test_acc"], a["val_acc"], strip(a["history"])) == (b["test_acc"], b["val_acc"], strip(b["history"]))


def test_two_workers_train_every_run_once_and_match_one_process(tmp_path, monkeypatch, real_data_root):
    runs = specs.all_specs("smoke", "06", ["probe"])
    keys = {specs.run_key(s) for s in runs}
    one, two = tmp_path / "one", tmp_path / "two"
    monkeypatch.setenv("COURSE_DATA", str(real_data_root))
    monkeypatch.setenv("COURSE_RUNS", str(tmp_path / "r1"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                    # as each worker (OMP_NUM_THREADS=1)
    try:
        queue.train("smoke", "06", one, groups=["probe"])       # the plain queue, in this process
    finally:
        torch.set_num_threads(threads)
    assert _finished(one) == keys

    monkeypatch.setenv("COURSE_RUNS", str(tmp_path / "r2"))     # the workers' checkpoints and locks
    held = runs[0]
    with queue._run_lock(held, "smoke") as mine:
        assert mine
        proc = subprocess.Popen(_command(*ARGS, "--results", str(two), "--workers", "2"), cwd=ROOT,
                                env=_env(real_data_root, tmp_path / "r2"), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        wait_until(lambda: len(_finished(two)) >= 2 or proc.poll() is not None, [proc.pid],
                   "two workers training the free runs", poll=0.2)
        assert _finished(two) == keys - {specs.run_key(held)}, proc.communicate()[0][-3000:] if proc.poll() else ""
        assert proc.poll() is None                              # the workers wait for the held run
    out, _ = communicate(proc)                                  # the lock is free: one of them trains it
    assert proc.returncode == 0, out[-3000:]
    assert "2 of 2 workers finished" in out
    assert out.count(f"skipped, another process is training it: {held.describe()}") == 2
    assert out.count("taken over, the process that held it stopped") == 1

    assert _finished(two) == keys
    assert all(c == [1, 1] for c in _log_counts(two).values()), _log_counts(two)
    assert all(c == [1, 1] for c in _log_counts(one).values()), _log_counts(one)
    a, b = _records(one), _records(two)
    assert all(_same(a[k], b[k]) for k in keys)


def test_torchrun_trains_the_queue_with_rank_0_writing_once(tmp_path, real_data_root):
    """``torchrun --standalone --nproc_per_node=2 -m course_lib.experiments train``: each run on 2 processes."""
    runs = specs.all_specs("smoke", "06", ["probe"])
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "course_lib.experiments", *ARGS, "--results", str(results)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(real_data_root, tmp_path / "runs"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = communicate(proc)
    assert proc.returncode == 0, (out + err)[-3000:]
    records = _records(results)
    assert set(records) == {specs.run_key(s) for s in runs}
    assert all(r["status"] == "finished" and r["settings"]["world_size"] == 2 for r in records.values())
    assert all(c == [1, 1] for c in _log_counts(results).values()), _log_counts(results)
    assert out.count("[1/3]") == 1                      # rank 0 alone prints


# --------------------------------------------------------------------------- the command line
def test_workers_and_gpus_become_one_device_per_worker():
    assert cli.worker_devices(3, None, 0) == [None, None, None]
    assert cli.worker_devices(None, "0,1,2,3", 4) == ["0", "1", "2", "3"]
    assert cli.worker_devices(None, "1,1", 2) == ["1", "1"]                       # two workers on GPU 1
    assert cli.worker_devices(None, "0,1", 2, visible="4,6") == ["4", "6"]        # indices into the caller's own
    with pytest.raises(ValueError, match="not both"):
        cli.worker_devices(2, "0,1", 2)
    with pytest.raises(ValueError, match="no CUDA GPU.*--workers N"):
        cli.worker_devices(None, "0", 0)
    with pytest.raises(ValueError, match="there is no GPU 4; torch sees 4"):
        cli.worker_devices(None, "0,4", 4)
    with pytest.raises(ValueError, match="separated by commas"):
        cli.worker_devices(None, "cuda:0", 4)
    with pytest.raises(ValueError, match="1 or more"):
        cli.worker_devices(0, None, 0)


def test_parallel_options_that_do_not_fit_stop_with_a_message(capsys, monkeypatch):
    assert cli.main(["train", "--profile", "smoke", "--gpus", "0"]) == 2
    assert "torch sees no CUDA GPU" in capsys.readouterr().err
    assert cli.main(["train", "--profile", "smoke", "--sync-bn"]) == 2
    assert "under torchrun" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert cli.main(["train", "--profile", "smoke", "--workers", "2"]) == 2
    assert "use `train` without --workers/--gpus" in capsys.readouterr().err
    assert cli.main(["run", "--profile", "smoke"]) == 2
    assert "under torchrun" in capsys.readouterr().err
