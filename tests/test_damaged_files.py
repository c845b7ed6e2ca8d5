"""Damaged, unsafe and unwritable files (issue 15, sections 1-2), with real files: truncated, emptied and
byte-flipped checkpoints and records, a pickle that would run code, a full tmpfs under runs/, and runs whose
loss exploded while staying finite."""
import json
import math
import subprocess
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from course_lib import create_model
from course_lib.engine import records as res
from course_lib.engine.files import DiskFullError
from course_lib.engine.recipes import get_recipe
from course_lib.engine.runner import load_model, run
from course_lib.engine.train import LossExplodedError, loss_exploded, read_checkpoint, save_checkpoint, train
from course_lib.models.pretrained import DamagedFileError, UnsafeFileError

NAME = "ResNeSt-14-2s1x64d"
SMALL = dict(num_classes=2, width=64, stem_width=8, base_planes=16)   # the same network, narrow: fast to train
RECIPE = get_recipe("book", epochs=1, batch_size=8)


def _data():
    g = torch.Generator().manual_seed(0)
    return {"train": (torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8, generator=g), torch.arange(16) % 2)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real course_lib training checkpoint (one epoch of ResNeSt-14 on 16 images)."""
    path = tmp_path_factory.mktemp("ckpt") / "run.pt"
    torch.manual_seed(0)
    train(create_model(NAME, **SMALL), _data(), RECIPE, checkpoint=path, progress=False)
    return path


def test_create_model_loads_a_course_lib_training_checkpoint(checkpoint):
    model = create_model(NAME, **SMALL, pretrained=checkpoint)
    blob = read_checkpoint(checkpoint)
    assert all(torch.equal(v, blob["model"][k]) for k, v in model.state_dict().items())
    assert isinstance(blob["torch"], str) and blob["epoch"] == 1


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:   # the first bytes flipped
        path.write_bytes(bytes(b ^ 0xFF for b in data[:64]) + data[64:])


@pytest.mark.parametrize("how", ["truncated", "empty", "flipped"])
def test_a_damaged_checkpoint_is_named_set_aside_and_the_run_starts_again(checkpoint, tmp_path, how, capfd):
    path = tmp_path / "run.pt"
    path.write_bytes(checkpoint.read_bytes())
    _damage(path, how)
    with pytest.raises(DamagedFileError, match=rf"{path} is damaged") as err:
        create_model(NAME, **SMALL, pretrained=path)
    assert "weights_only" not in str(err.value)
    torch.manual_seed(0)
    out = train(create_model(NAME, **SMALL), _data(), RECIPE, checkpoint=path, progress=False)
    assert len(out["history"]) == 1                             # trained from scratch, no traceback
    notice = capfd.readouterr().err
    assert f"{path} cannot be used" in notice and "run.pt.damaged" in notice
    assert (tmp_path / "run.pt.damaged").exists() and read_checkpoint(path)["epoch"] == 1   # later loads work


def test_a_checkpoint_that_would_run_code_is_refused_without_torchs_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "epoch": 1, "hook": subprocess.Popen}, path)
    with pytest.raises(UnsafeFileError, match=r"holds [\w.]*Popen, which course_lib does not load") as err:
        create_model(NAME, **SMALL, pretrained=path)
    assert "weights_only" not in str(err.value) and path.exists()   # refused, not set aside


def _record(tmp_path, **extra):
    config = {"model": NAME, "dataset": "cifar10", "seed": 0, "num_classes": 10}
    return {"key": res.config_key(config), "config": config, "status": "finished", **extra}


@pytest.mark.parametrize("how", ["truncated", "empty", "flipped"])
def test_a_damaged_record_is_named_listed_and_set_aside_when_rewritten(tmp_path, how, capfd):
    rec = _record(tmp_path, test_acc=0.5, history=[{"epoch": 1, "train_loss": 1.0}])
    path = res.write_record(rec, tmp_path)
    _damage(path, how)
    with pytest.warns(res.RecordWarning, match=rf"{path.name}: not valid JSON"):
        assert res.find_record(rec["config"], tmp_path) is None
    with pytest.warns(res.RecordWarning):
        table = res.load_results(tmp_path, status=None)
    assert table.status.tolist() == ["damaged"] and table.file.tolist() == [str(path)]
    res.write_record(rec, tmp_path)                               # the run writes its record again
    assert "damaged" in capfd.readouterr().err and (tmp_path / f"{path.name}.damaged").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert res.find_record(rec["config"], tmp_path)["test_acc"] == 0.5


def test_an_overflowed_loss_is_stored_as_inf_not_as_not_measured(tmp_path):
    rec = _record(tmp_path, test_loss=math.inf, val_loss=None,
                  history=[{"epoch": 1, "train_loss": 3.5, "val_loss": math.nan}])
    path = res.write_record(rec, tmp_path)
    stored = json.loads(path.read_text())
    assert stored["test_loss"] == "inf" and stored["history"][0]["val_loss"] == "nan" and stored["val_loss"] is None
    back = res.find_record(rec["config"], tmp_path)
    assert back["test_loss"] == math.inf and math.isnan(back["history"][0]["val_loss"]) and back["val_loss"] is None
    assert res.as_stored(rec)["test_loss"] == math.inf


def test_loss_exploded_rule():
    h = lambda *losses: [{"epoch": i + 1, "train_loss": x, "val_loss": None} for i, x in enumerate(losses)]  # noqa
    assert loss_exploded(h(2.2, 1.4, 0.9), 10) is None
    assert loss_exploded(h(0.69, 0.69), 2) is None                  # learnt nothing, but did not blow up
    assert "above ln(10) = 2.3" in loss_exploded(h(4.6, 3.3, 3.05), 10)
    assert "test_loss = inf" in loss_exploded(h(1.0), 10, {"test_loss": math.inf})


class Exploded(nn.Module):
    """A classifier whose logits are huge and wrong: a finite loss far above ln(classes)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc.weight.fill_(0.0)
            self.fc.bias.copy_(torch.tensor([0.0, 1e4]))

    def forward(self, x):                                           # (B, 3, H, W) -> (B, 2)
        return self.fc(x.mean((2, 3)))                              # always class 1, by 1e4


def test_a_run_whose_loss_exploded_finitely_is_stored_as_diverged(real_data_root, tmp_path):
    kw = dict(dataset="hotdog", images=16, test_images=16, image_size=8, epochs=1, batch_size=8, lr=1e-9, drop_rate=None,
              results_dir=tmp_path, runs_dir=tmp_path, progress=False, name="exploded")
    with pytest.raises(LossExplodedError, match=r"exploded: .*training loss .* above ln\(2\)"):
        run(Exploded(), "book", **kw)
    rec = run(Exploded(), "book", raise_on_divergence=False, **kw)
    assert rec["status"] == "diverged" and "above ln(2)" in rec["error"] and math.isfinite(rec["test_loss"])
    assert res.load_results(tmp_path).empty                          # not among the finished runs


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs (needs root); skipped where it cannot be mounted."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "256k"):
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_under_runs_names_it_and_leaves_no_tmp(full_disk, checkpoint):
    blob = read_checkpoint(checkpoint)                              # larger than the disk
    model = create_model(NAME, **SMALL)
    model.load_state_dict(blob["model"])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    from course_lib.engine.train import _State
    st = _State(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), torch.amp.GradScaler("cpu", enabled=False))
    with pytest.raises(DiskFullError, match=r"could not write the checkpoint .*run\.pt: the disk is full"):
        save_checkpoint(full_disk / "run.pt", st)
    rec = _record(full_disk, history=[{"epoch": i, "log": "x" * 1000} for i in range(400)])
    with pytest.raises(DiskFullError, match=r"could not write the run record .*: the disk is full"):
        res.write_record(rec, full_disk)
    assert list(full_disk.iterdir()) == []                           # no .tmp left behind


def test_files_renamed_into_place_get_the_usual_mode(tmp_path):
    """tempfile makes 0600 files and 0700 folders; a cache renamed into place must be readable by others
    (the grading sandbox reads it as another user)."""
    import os
    import stat
    from course_lib.engine.files import atomic_write
    umask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "cache.bin", lambda fh: fh.write(b"x"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(umask)
