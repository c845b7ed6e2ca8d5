"""One run on several processes (course_lib.engine.distributed + train): torchrun, gloo, 2 processes on the CPU.

A small network without batch norm or dropout (torch's SyncBatchNorm runs on GPUs only, so on
the CPU the comparison needs a network whose steps do not depend on per-rank statistics), fp32,
the book's recipe (crop and flip) on 301 real CIFAR-10 images, global batch 64: five steps per
epoch, the last of 45 images cut 23 + 22. Trained once in this process and once under
``torchrun --standalone --nproc_per_node=2``, the losses agree to float rounding; killed in its
second epoch and started again, the torchrun run ends exactly where the uninterrupted one does.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from course_lib.engine import distributed, runner
from course_lib.engine import train as tr
from course_lib.engine.device import RunSettings

from helpers_ddp import Plain
from helpers_wait import communicate, wait_until

ROOT = Path(__file__).resolve().parents[1]
OPTS = dict(images=301, val_size=100, test_images=100, batch_size=64, epochs=3, drop_rate=None, precision="fp32",
            progress=False, name="plain")

CHILD = r'''
import json, os, sys, time
from pathlib import Path
import torch
from torch import nn
from course_lib.engine import runner

out, stall = Path(sys.argv[1]), sys.argv[2] == "stall"
rank = int(os.environ["RANK"])
(out / "pids").mkdir(parents=True, exist_ok=True)
(out / "pids" / f"{rank}").write_text(str(os.getpid()))
STEPS = 0


sys.path.insert(0, sys.argv[4])
from helpers_ddp import Plain


def on_step():
    global STEPS
    STEPS += 1
    if stall and rank == 0 and STEPS == 7:      # the 2nd step of epoch 2, after epoch 1's checkpoint
        (out / "stalled").write_text("")
        while True:
            time.sleep(1)


def stalling():
    """Plain, with the hook on the instance (its repr, and so the run's key, stays Plain's)."""
    model = Plain()
    model.on_step = on_step
    return model


rec = runner.run(stalling, "book", results_dir=out / "results", runs_dir=out / "runs", **json.loads(sys.argv[3]))
if rank == 0:
    (out / "record.json").write_text(json.dumps(rec))
'''


def _torchrun(folder: Path, mode: str, data_root) -> subprocess.Popen:
    script = folder.parent / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, COURSE_DATA=str(data_root), OMP_NUM_THREADS="1", COURSE_PROGRESS="0")
    for var in distributed.TORCHRUN_VARS:
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(folder), mode, json.dumps(OPTS), str(Path(__file__).resolve().parent)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, folder: Path) -> dict:
    out, _ = communicate(proc)
    assert proc.returncode == 0, out[-3000:]
    return json.loads((folder / "record.json").read_text())


def _kill_ranks(folder: Path) -> None:
    for pid_file in (folder / "pids").glob("*"):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _no_time(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def _weights(folder: Path) -> dict:
    (path,) = (folder / "runs").glob("*.pt")
    return torch.load(path, weights_only=False)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, real_data_root):
    """The run under torchrun with 2 processes, uninterrupted."""
    folder = tmp_path_factory.mktemp("ddp") / "whole"
    return _finish(_torchrun(folder, "whole", real_data_root), folder), folder


def test_two_processes_follow_the_single_process_loss_curve(ddp_run, tmp_path, real_data_root):
    record, folder = ddp_run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = runner.run(Plain, "book", results_dir=tmp_path / "r", runs_dir=tmp_path / "c",
                            data_root=real_data_root, **OPTS)
    finally:
        torch.set_num_threads(threads)
    assert record["key"] == single["key"]                       # the same run: the world size is not in the key
    assert record["settings"]["world_size"] == 2 and "world_size" not in single["settings"]
    assert record["data"]["train"]["n"] == 301                  # last batch 45 = 23 + 22
    for a, b in zip(single["history"], record["history"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
        assert b["lr"] == a["lr"]
        assert b["train_acc"] == pytest.approx(a["train_acc"], abs=1 / 301)   # at most one image apart
        assert b["val_acc"] == pytest.approx(a["val_acc"], abs=1 / 100)
    assert record["test_acc"] == pytest.approx(single["test_acc"], abs=1 / 100)
    a, b = torch.load(next((tmp_path / "c").glob("*.pt")), weights_only=False), _weights(folder)
    assert all(torch.allclose(a["model"][k], b["model"][k], atol=1e-5) for k in a["model"])
    assert b["world_size"] == 2 and len(b["rng_ranks"]) == 2     # every rank's random state is saved


def test_torchrun_run_killed_in_its_second_epoch_resumes_exactly(ddp_run, tmp_path, real_data_root):
    whole, whole_folder = ddp_run
    folder = tmp_path / "killed"
    proc = _torchrun(folder, "stall", real_data_root)
    try:
        wait_until(lambda: (folder / "stalled").exists() or proc.poll() is not None, [proc.pid],
                   "torchrun before its second epoch")
        assert (folder / "stalled").exists(), proc.communicate()[0][-3000:]
        _kill_ranks(folder)                                          # SIGKILL both training processes
        communicate(proc)                                            # torchrun sees them die and stops
    finally:
        _kill_ranks(folder)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert _weights(folder)["epoch"] == 1                            # only epoch 1 was saved
    (partial,) = (folder / "results").glob("*.json")
    assert json.loads(partial.read_text())["status"] == "running"
    (folder / "pids").rename(folder / "pids-killed")
    resumed = _finish(_torchrun(folder, "whole", real_data_root), folder)
    assert _no_time(resumed["history"]) == _no_time(whole["history"])
    assert (resumed["test_acc"], resumed["val_acc"]) == (whole["test_acc"], whole["val_acc"])
    a, b = _weights(whole_folder), _weights(folder)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(x, y) for x, y in zip(a["optimizer"]["state"][0].values(),
                                                  b["optimizer"]["state"][0].values()))


# --------------------------------------------------------------------------- the parts, without processes
def test_torchrun_environment_is_read_or_refused():
    assert distributed.torchrun_env({}) is None
    assert distributed.torchrun_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == (1, 4, 1)
    with pytest.raises(ValueError, match="not \\['LOCAL_RANK'\\]"):
        distributed.torchrun_env({"RANK": "1", "WORLD_SIZE": "4"})
    with pytest.raises(ValueError, match="0 <= RANK < WORLD_SIZE"):
        distributed.torchrun_env({"RANK": "4", "WORLD_SIZE": "4", "LOCAL_RANK": "0"})


def test_each_rank_takes_a_contiguous_share_and_the_shares_cover_the_batch():
    for n, world in ((64, 2), (45, 2), (45, 4), (7, 3)):
        parts = [distributed.Context(r, world).share(n) for r in range(world)]
        sizes = [p.stop - p.start for p in parts]
        assert parts[0].start == 0 and parts[-1].stop == n and max(sizes) - min(sizes) <= 1
        assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    # the rank's loss is scaled so that DDP's mean gradient is the global batch's
    recipe = tr.get_recipe("book")
    assert tr._loss_factor(recipe, distributed.Context(0, 2), 32, 64) == 1.0
    assert tr._loss_factor(recipe, distributed.Context(0, 2), 23, 45) == pytest.approx(46 / 45)
    assert tr._loss_factor(tr.get_recipe("finetune"), distributed.Context(1, 4), 8, 32) == 4.0


def test_union_of_the_ranks_augmentation_is_the_single_process_one():
    x = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    recipe = tr.get_recipe("book")
    whole = tr.augment(x, recipe, torch.Generator().manual_seed(5))
    draws = tr.augmentation_draws(10, recipe, torch.Generator().manual_seed(5))
    parts = []
    for r in range(3):
        part = distributed.Context(r, 3).share(10)
        parts.append(tr.augment(x[part], recipe, draws={k: v[part] for k, v in draws.items()}))
    assert torch.equal(torch.cat(parts), whole)


def test_a_batch_that_does_not_divide_and_sync_bn_on_the_cpu_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="global batch of 100 images does not divide among 3 processes"):
        distributed.check_batches(1000, 100, 3)
    with pytest.raises(ValueError, match="last batch of each epoch has 3 image"):
        distributed.check_batches(259, 256, 2)
    distributed.check_batches(257, 256, 2)          # a last batch of 1 is dropped anyway
    distributed.check_batches(45_000, 256, 8)
    # under torchrun with 2 processes on the CPU, sync_bn stops before anything is exchanged
    monkeypatch.setattr(distributed, "context", lambda device=None: distributed.Context(0, 2, 0, "gloo"))
    data = {"train": (torch.zeros(8, 3, 8, 8, dtype=torch.uint8), torch.zeros(8, dtype=torch.int64))}
    settings = RunSettings.for_device("cpu", precision="fp32", sync_bn=True)
    with pytest.raises(ValueError, match="sync_bn needs GPUs"):
        tr.train(Plain(), data, tr.get_recipe("book", batch_size=4, epochs=1), settings=settings, progress=False)
    with pytest.raises(ValueError, match="does not divide among 2"):
        tr.train(Plain(), data, tr.get_recipe("book", batch_size=5, epochs=1), settings=settings, progress=False)
