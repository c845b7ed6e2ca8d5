"""course_lib.engine (train, recipes, runner): recipes, tensor augmentation, exact resume, divergence, reuse of records.

Runs use a tiny CNN on a few hundred real CIFAR-10 images, so the whole file is quick.
"""
import json

import pytest
import torch
from torch import nn

from course_lib.engine import recipes, runner
from course_lib.engine import train as tr
from course_lib.engine.data import DataConfig, load_data
from course_lib.engine.device import RunSettings


class Tiny(nn.Module):
    """Two strided convs, batch norm, dropout: enough to exercise every RNG and buffer."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2))
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


QUICK = dict(images=300, val_size=100, test_images=100, batch_size=64, epochs=3, drop_rate=None,
             progress=False, name="tiny")


@pytest.fixture
def dirs(tmp_path, real_data_root):
    return dict(results_dir=tmp_path / "results", runs_dir=tmp_path / "runs", data_root=real_data_root)


# --------------------------------------------------------------------------- recipes
def test_recipes_are_data_and_reject_unknown_fields():
    report = recipes.get_recipe("report")
    assert (report.lr, report.momentum, report.weight_decay, report.batch_size, report.epochs,
            report.drop_rate, report.schedule, report.crop_padding, report.flip) == \
        (0.1, 0.9, 1e-4, 256, 20, 0.2, "constant", 0, False)
    assert recipes.get_recipe("book").epochs == report.epochs
    changed = recipes.get_recipe("book", lr=0.05, epochs=3)
    assert changed.lr == 0.05 and changed.name == "book(epochs=3,lr=0.05)"
    assert recipes.get_recipe({"name": "report", "epochs": 2}).epochs == 2
    with pytest.raises(ValueError, match="'warmup_epochs'"):  # lists the known fields
        recipes.get_recipe("book", lrate=0.1)
    with pytest.raises(ValueError, match="'report', 'book'"):
        recipes.get_recipe("fast")


@pytest.mark.parametrize("bad", [dict(epochs=-1), dict(epochs=0), dict(batch_size=0), dict(lr=0),
                                 dict(schedule="step"), dict(label_smoothing=1.0), dict(warmup_epochs=25)])
def test_bad_recipe_values_raise(bad):
    with pytest.raises(ValueError, match="bad recipe"):
        recipes.get_recipe("book", **bad)


def test_run_rejects_unknown_arguments_and_devices(dirs):
    with pytest.raises(ValueError, match="recipe fields"):
        runner.run(Tiny, "report", lrate=0.1, **dirs, **QUICK)
    with pytest.raises(ValueError, match="unknown device"):
        runner.run(Tiny, "report", device="tpu", **dirs, **QUICK)
    with pytest.raises(ValueError, match="unknown dataset"):
        runner.run(Tiny, "report", dataset="mnist", **dirs, **QUICK)


def test_run_takes_the_data_and_the_numerics_whole_or_field_by_field():
    by_field = runner._parts("report", None, None, dict(images=300, val_size=100, precision="fp32", epochs=2))
    whole = runner._parts("report", DataConfig(images=300, val_size=100), runner.Numerics(precision="fp32"),
                          dict(epochs=2))
    assert by_field == whole and by_field[0].epochs == 2
    assert DataConfig().resolved().val_size == 5000 and DataConfig("hotdog").resolved().val_size == 0
    with pytest.raises(ValueError, match="belong to data="):
        runner._parts("report", DataConfig(), None, dict(images=10))


def test_schedule_warms_up_then_decays():
    cos = recipes.Schedule("cosine", total_steps=10, warmup_steps=2)
    assert [cos(0), cos(1), cos(2)] == [0.5, 1.0, 1.0] and cos(10) == pytest.approx(0.0)
    assert recipes.Schedule("linear", 10)(5) == 0.5 and recipes.Schedule("constant", 10)(9) == 1.0


# --------------------------------------------------------------------------- tensor batches
def test_crop_and_flip_move_pixels_as_asked():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(tr.random_crop(x, 0, g), x)
    crop = tr.random_crop(x, 2, g)
    assert crop.shape == x.shape and crop.dtype == torch.uint8
    padded = nn.functional.pad(x, (2,) * 4)
    for i in range(2):  # every crop is some 4x4 window of the padded image
        assert any(torch.equal(crop[i], padded[i, :, r:r + 4, c:c + 4]) for r in range(5) for c in range(5))
    flipped = tr.random_flip(x, torch.Generator().manual_seed(1))
    assert all(torch.equal(f, im) or torch.equal(f, im.flip(2)) for f, im in zip(flipped, x))
    a = tr.augment(x, recipes.get_recipe("book"), torch.Generator().manual_seed(3))
    b = tr.augment(x, recipes.get_recipe("book"), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)  # the generator alone decides


def test_batches_cover_the_data_once_and_shuffle_by_seed():
    batches = tr.batch_indices(10, 4, tr.epoch_generator(0, 0))
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert [len(b) for b in tr.batch_indices(9, 4, torch.Generator())] == [4, 4]  # a batch of 1 is dropped
    again = tr.batch_indices(10, 4, tr.epoch_generator(0, 0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert not torch.equal(torch.cat(batches), torch.cat(tr.batch_indices(10, 4, tr.epoch_generator(0, 1))))


def test_normalize_is_per_channel():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    y = tr.normalize(x, (0.5, 0.5, 0.0), (0.5, 0.25, 1.0))
    assert y[0, :, 0, 0].tolist() == [1.0, 2.0, 1.0]


# --------------------------------------------------------------------------- runs on real images
def _final(runs_dir):
    (path,) = runs_dir.glob("*.pt")
    return torch.load(path, weights_only=False)


def _no_time(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_killed_run_resumes_to_the_same_weights_and_history(dirs, tmp_path):
    recipe = recipes.get_recipe("book", **{k: QUICK[k] for k in ("batch_size", "epochs", "drop_rate")})
    opts = {k: v for k, v in QUICK.items() if k not in ("batch_size", "epochs", "drop_rate")}
    whole = runner.run(Tiny, recipe, **dirs, **opts)
    assert whole["status"] == "finished" and len(whole["history"]) == 3

    def kill_after_first(epoch, entry, history):
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill")
    other = dict(dirs, results_dir=tmp_path / "r2", runs_dir=tmp_path / "k2")
    with pytest.raises(KeyboardInterrupt):
        runner.run(Tiny, recipe, callback=kill_after_first, **other, **opts)
    assert _final(other["runs_dir"])["epoch"] == 1
    (partial,) = other["results_dir"].glob("*.json")
    assert json.loads(partial.read_text())["status"] == "running"
    (other["runs_dir"] / ".half-written.pt.tmp").write_bytes(b"\0" * 10)  # a write killed midway is ignored
    seen = []
    resumed = runner.run(Tiny, recipe, callback=lambda e, *_: seen.append(e), **other, **opts)
    assert seen == [2, 3]  # only the missing epochs ran
    a, b = _final(dirs["runs_dir"]), _final(other["runs_dir"])
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert _no_time(whole["history"]) == _no_time(resumed["history"])
    assert (whole["test_acc"], whole["val_acc"]) == (resumed["test_acc"], resumed["val_acc"])
    assert whole["key"] == resumed["key"]


def test_finished_runs_are_reused_unless_forced(dirs):
    first = runner.run(Tiny, "report", seed=1, **dirs, **{**QUICK, "epochs": 1})
    rec = first["history"][0]
    assert 0 <= rec["train_acc"] <= 1 and rec["train_loss"] > 0 and rec["seconds"] > 0
    assert first["params"] == sum(p.numel() for p in Tiny().parameters())
    assert first["config"]["recipe"]["lr"] == 0.1 and first["config"]["images"] == 300
    assert first["hardware"]["torch_threads"] >= 1 and first["settings"]["device"] == "cpu"
    calls = []
    again = runner.run(Tiny, "report", seed=1, callback=lambda *a: calls.append(a), **dirs, **{**QUICK, "epochs": 1})
    assert calls == [] and again == first
    forced = runner.run(Tiny, "report", seed=1, force=True, callback=lambda *a: calls.append(a), **dirs,
                    **{**QUICK, "epochs": 1})
    assert len(calls) == 1 and _no_time(forced["history"]) == _no_time(first["history"])  # seeded: same numbers
    other_seed = runner.run(Tiny, "report", seed=2, **dirs, **{**QUICK, "epochs": 1})
    assert other_seed["key"] != first["key"] and len(list(dirs["results_dir"].glob("*.json"))) == 2


def test_gradient_clipping_is_counted_and_changes_nothing_it_does_not_touch(dirs):
    opts = {**QUICK, "epochs": 2}
    plain = runner.run(Tiny, "book", seed=1, **dirs, **opts)
    assert not {"clipped_steps", "grad_norm_max"} & set(plain["history"][0])    # no clipping, no counts
    loose = runner.run(Tiny, "book", seed=1, grad_clip=1e9, **dirs, **opts)
    steps = -(-300 // 64)                                                          # 300 training images
    for h in loose["history"]:
        assert h["clipped_steps"] == 0 and 0 < h["grad_norm_max"] < 1e9
    # a threshold that never binds multiplies every gradient by exactly 1: the same run, bit for bit
    strip = lambda hist: [{k: v for k, v in h.items() if k not in ("seconds", "clipped_steps", "grad_norm_max")}
                          for h in hist]                                            # noqa: E731
    assert strip(loose["history"]) == strip(plain["history"]) and loose["test_acc"] == plain["test_acc"]
    tight = runner.run(Tiny, "book", seed=1, grad_clip=1e-6, **dirs, **opts)
    assert [h["clipped_steps"] for h in tight["history"]] == [steps, steps]
    assert all(h["grad_norm_max"] > 1e-6 for h in tight["history"])
    assert strip(tight["history"]) != strip(plain["history"])


def test_an_overflowing_step_is_counted_as_skipped_not_clipped(dirs, monkeypatch):
    real, calls = nn.utils.clip_grad_norm_, []

    def overflow_once(params, max_norm, *args, **kwargs):     # an fp16 step: the norm is inf, the scaler skips it
        calls.append(1)
        norm = real(params, max_norm, *args, **kwargs)
        return torch.tensor(float("inf")) if len(calls) == 2 else norm
    monkeypatch.setattr(tr.nn.utils, "clip_grad_norm_", overflow_once)
    rec = runner.run(Tiny, "book", seed=1, grad_clip=1e9, **dirs, **{**QUICK, "epochs": 1})
    (h,) = rec["history"]
    assert h["skipped_steps"] == 1 and h["clipped_steps"] == 0 and 0 < h["grad_norm_max"] < 1e9


def test_divergence_stops_with_a_clear_error(dirs):
    with pytest.raises(tr.DivergenceError, match=r"epoch \d+, step \d+/\d+.*learning rate 1e\+06.*Try"):
        runner.run(Tiny, "report", lr=1e6, **dirs, **QUICK)
    (path,) = dirs["results_dir"].glob("*.json")
    assert json.loads(path.read_text())["status"] == "diverged"
    rec = runner.run(Tiny, "report", lr=1e6, raise_on_divergence=False, **dirs, **QUICK)
    assert rec["status"] == "diverged" and "diverged at epoch" in rec["error"]


def test_wrong_number_of_classes_is_explained(dirs):
    with pytest.raises(ValueError, match="num_classes"):
        runner.run(lambda: Tiny(num_classes=3), "report", **dirs, **QUICK)


def test_channels_last_and_bfloat16_autocast_train_on_cpu(real_data_root):
    data = load_data("cifar10", images=128, val_size=64, test_images=64, root=real_data_root)
    settings = RunSettings(torch.device("cpu"), amp_dtype=torch.bfloat16, channels_last=True)
    torch.manual_seed(0)
    out = tr.train(Tiny(), data, recipes.get_recipe("book", epochs=1, batch_size=64), settings=settings, progress=False)
    h = out["history"][0]
    assert torch.isfinite(torch.tensor(h["train_loss"])) and 0 <= h["val_acc"] <= 1
    assert out["settings"] == {"device": "cpu", "precision": "bf16", "channels_last": True, "compile": False,
                               "pointwise_matmul": True}


def test_record_says_what_ran_on_which_data_and_keeps_the_predictions(dirs):
    rec = runner.run(lambda: Tiny(), "report", **dirs, **QUICK, precision="bf16", channels_last=True)
    assert rec["config"]["precision"] == "bf16" and rec["config"]["channels_last"] is True
    assert rec["config"]["compile"] is False and rec["settings"]["precision"] == "bf16"
    assert rec["versions"]["torch"] and rec["versions"]["torchvision"] and "timm" in rec["versions"]
    assert rec["git_commit"] is None or len(rec["git_commit"].split("+")[0]) == 40
    data = rec["data"]
    assert data["source"]["where"].startswith("archive: ") and len(data["source"]["archive_sha256"]) == 64
    assert (data["train"]["n"], data["val"]["n"], data["test"]["n"]) == (300, 100, 100)
    # the predictions decode to the stored accuracy, against the same test images
    test = load_data("cifar10", images=300, val_size=100, test_images=100, root=dirs["data_root"])["test"]
    pred = tr.decode_predictions(rec["test_predictions"])
    assert len(pred) == 100 and (pred == test.labels).float().mean().item() == pytest.approx(rec["test_acc"])
    # another precision is another configuration: both records live side by side
    other = runner.run(lambda: Tiny(), "report", **dirs, **QUICK, precision="fp32")
    assert other["key"] != rec["key"] and other["config"]["channels_last"] is False


def test_damaged_predictions_are_refused():
    blob = tr.encode_predictions(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 0]))
    assert tr.decode_predictions(blob).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="predictions stored"):
        tr.decode_predictions({**blob, "n": 4})
    with pytest.raises(ValueError, match="base64"):
        tr.decode_predictions({**blob, "data": "***"})


def test_warmup_in_steps_replaces_warmup_in_epochs():
    r = recipes.get_recipe("study")
    assert r.warmup(176) == 352 and r.replace(warmup_steps=0, warmup_epochs=1.0).warmup(176) == 176
    with pytest.raises(ValueError, match="warmup_steps"):
        r.replace(warmup_steps=-1)


def test_head_gets_its_own_learning_rate():
    opt = tr.make_optimizer(Tiny(), recipes.get_recipe("finetune"))
    body, head = opt.param_groups
    assert head["lr"] == pytest.approx(10 * body["lr"]) and len(head["params"]) == 2


def test_models_by_name_are_rebuilt_and_reloaded(dirs, monkeypatch):
    built = []

    def fake_build(name, num_classes, drop_rate=None, **overrides):
        built.append((name, num_classes, drop_rate, overrides))
        return Tiny(num_classes)
    monkeypatch.setattr(runner, "build_model", fake_build)
    opts = {**QUICK, "epochs": 1, "drop_rate": 0.2, "val_size": 0}
    opts.pop("name")
    rec = runner.run("Tiny-by-name", "report", model_overrides={"width": 8}, **dirs, **opts)
    assert built[0] == ("Tiny-by-name", 10, 0.2, {"width": 8}) and rec["config"]["arch"] is None
    assert rec["val_acc"] is None and rec["test_acc"] is not None  # val_size=0: train on train+val
    model = runner.load_model(rec, runs_dir=dirs["runs_dir"])
    (ckpt,) = dirs["runs_dir"].glob("*.pt")
    saved = torch.load(ckpt, weights_only=False)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items()) and not model.training


def test_hotdog_fine_tuning_runs_on_tensors(dirs):
    data = load_data("hotdog", images=64, test_images=32, root=dirs["data_root"])
    assert data["train"].images.shape[1:] == (3, 64, 64) and data["val"] is None
    assert data["train"].labels.bincount().tolist() == [32, 32]
    rec = runner.run(lambda: Tiny(num_classes=2), "finetune", dataset="hotdog", images=64, test_images=32,
                 epochs=1, name="tiny", progress=False, **dirs)
    assert rec["status"] == "finished" and rec["config"]["num_classes"] == 2 and 0 <= rec["test_acc"] <= 1


KILLED_CHILD = """
import sys, time
from tests.test_train import Tiny, QUICK
from course_lib.engine.runner import run
# after epoch 1 (its checkpoint is written before the callback) the child waits until the parent,
# however slow, sees the checkpoint and kills it mid-run
def wait_for_the_kill(epoch, *args):
    while epoch == 1:
        time.sleep(1)

run(Tiny, "book", batch_size=64, epochs=3, drop_rate=None, callback=wait_for_the_kill,
    results_dir=sys.argv[1], runs_dir=sys.argv[2], data_root=sys.argv[3],
    **{k: v for k, v in QUICK.items() if k not in ("batch_size", "epochs", "drop_rate")})
"""


def test_process_killed_with_sigkill_resumes_exactly(dirs, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from helpers_wait import wait_until
    root = Path(__file__).resolve().parents[1]
    killed = dict(dirs, results_dir=tmp_path / "kr", runs_dir=tmp_path / "kc")
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(killed["results_dir"]),
                              str(killed["runs_dir"]), str(dirs["data_root"])], cwd=root)
    def after_epoch_1():
        found = list(killed["runs_dir"].glob("*.pt"))
        return child.poll() is not None or bool(found) and torch.load(found[0], weights_only=False)["epoch"] >= 1
    wait_until(after_epoch_1, [child.pid], "a training process before its first checkpoint", poll=0.05)
    assert child.poll() is None, "the child ended before it was killed"
    child.kill()  # SIGKILL: no cleanup, no except/finally in the child
    child.wait()
    assert torch.load(next(killed["runs_dir"].glob("*.pt")), weights_only=False)["epoch"] < 3
    opts = {k: v for k, v in QUICK.items() if k not in ("batch_size", "epochs", "drop_rate")}
    resumed = runner.run(Tiny, "book", batch_size=64, epochs=3, drop_rate=None, **killed, **opts)
    whole = runner.run(Tiny, "book", batch_size=64, epochs=3, drop_rate=None, **dirs, **opts)
    a, b = _final(dirs["runs_dir"]), _final(killed["runs_dir"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert _no_time(whole["history"]) == _no_time(resumed["history"]) and whole["test_acc"] == resumed["test_acc"]
