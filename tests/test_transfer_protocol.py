"""Chapter 8's study: D2L's fine-tuning transforms, a linear probe, and k-fold cross-validation on Hotdog."""
import pytest
import torch
from torch import nn

from course_lib.engine import records
from course_lib.engine.data import cross_validation, fold_of, load_data, TensorImages
from course_lib.engine.recipes import get_recipe
from course_lib.engine.train import (augment, augmentation_draws, center_crop_resize, crop_resize,
                                     resized_crop_boxes, train)
from course_lib.study import specs


def test_folds_are_stratified_and_partition_the_pool():
    labels = torch.tensor([0] * 999 + [1] * 999)
    fold = fold_of(labels, 5, seed=0)
    for k in range(5):
        part = labels[fold == k]
        assert len(part) in (399, 400) and abs(int((part == 0).sum()) - int((part == 1).sum())) <= 1
    assert torch.equal(fold, fold_of(labels, 5, seed=0)) and not torch.equal(fold, fold_of(labels, 5, seed=1))
    pool = TensorImages(torch.arange(1998).view(-1, 1, 1, 1).expand(-1, 3, 1, 1).to(torch.int64), labels, ("a", "b"))
    tests = [cross_validation(pool, 5, k)[1].images[:, 0, 0, 0] for k in range(5)]
    assert sorted(torch.cat(tests).tolist()) == list(range(1998))             # every photo tested exactly once
    train, test = cross_validation(pool, 5, 2)
    assert not set(train.images[:, 0, 0, 0].tolist()) & set(test.images[:, 0, 0, 0].tolist())


def test_hotdog_cross_validation_pools_train_and_test(real_data_root):
    data_root = real_data_root
    parts = load_data("hotdog", root=data_root)
    n = len(parts["train"]) + len(parts["test"])
    five = [load_data("hotdog", root=data_root, folds=5, fold=k) for k in range(5)]
    assert all(len(f["train"]) + len(f["test"]) == n and f["val"] is None for f in five)
    assert sum(len(f["test"]) for f in five) == n
    with pytest.raises(ValueError, match="fold must be an integer in 0..4"):
        load_data("hotdog", root=data_root, folds=5, fold=5)
    with pytest.raises(ValueError, match="val_size=0"):
        load_data("cifar10", root=data_root, folds=5, fold=0)


def test_resized_crop_boxes_stay_inside_the_image():
    b = resized_crop_boxes(10_000, torch.Generator().manual_seed(0))
    w, h, cx, cy = b.unbind(1)
    assert (w * h).min() >= 0.08 * 0.999 and (w <= 1).all() and (h <= 1).all()
    assert (cx - w / 2 >= -1e-6).all() and (cx + w / 2 <= 1 + 1e-6).all()
    assert (cy - h / 2 >= -1e-6).all() and (cy + h / 2 <= 1 + 1e-6).all()


def test_crops_of_the_whole_image_change_nothing():
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    assert torch.allclose(center_crop_resize(x, 1.0), x.float(), atol=1e-3)
    quads = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    quads[..., :8, :8], quads[..., :8, 8:], quads[..., 8:, :] = 200, 100, 50
    top_left = crop_resize(quads, torch.tensor([[0.5, 0.5, 0.25, 0.25]]))       # the top-left quarter, x2
    assert top_left.shape == quads.shape and torch.allclose(top_left[..., :-2, :-2], torch.tensor(200.0))


def test_d2l_recipe_draws_boxes_and_flips_in_a_fixed_order():
    r = get_recipe("d2l-finetune")
    assert r.momentum == 0 and r.resized_crop and r.flip and r.test_crop == 224 / 256 and r.crop_padding == 0
    d1 = augmentation_draws(8, r, torch.Generator().manual_seed(3))
    d2 = augmentation_draws(8, r, torch.Generator().manual_seed(3))
    assert set(d1) == {"boxes", "flips"} and all(torch.equal(d1[k], d2[k]) for k in d1)
    out = augment(torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8), r, draws=d1)
    assert out.shape == (8, 3, 64, 64) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 255
    with pytest.raises(ValueError, match="exclude each other"):
        get_recipe("d2l-finetune", crop_padding=4)


def test_new_recipe_fields_at_their_defaults_keep_old_keys():
    old = {"model": "m", "recipe": get_recipe("book").as_dict(), "seed": 0, "images": 10}
    trimmed = {**old, "recipe": {k: v for k, v in old["recipe"].items()
                                 if k not in ("resized_crop", "test_crop", "freeze_body", "warmup_steps")}}
    assert records.config_key(old) == records.config_key(trimmed)
    assert records.config_key({**old, "folds": None, "fold": None}) == records.config_key(old)
    assert records.config_key({**old, "folds": 5, "fold": 0}) != records.config_key(old)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, 2)

    def get_classifier(self):
        return self.fc

    def forward(self, x):
        return self.fc(self.body(x))


def test_a_linear_probe_changes_the_classifier_only():
    torch.manual_seed(0)
    model = _Tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(64) % 2
    train(model, {"train": (x, y), "test": (x, y)}, get_recipe("d2l-finetune", freeze_body=True, lr=0.01, epochs=2,
                                                              batch_size=16, head_lr_mult=1.0),
          device="cpu", progress=False)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"}        # BN statistics and conv weights untouched


def test_transfer_protocol_lists_folds_seeds_and_kinds():
    runs = [s for s in specs.all_specs("cpu", "08") if s.group.startswith("transfer")]
    main = [s for s in runs if s.group == "transfer"]
    assert len(main) == len(specs.TRANSFER_MODELS) * 2 * 5 * 3
    assert {(s.folds, s.fold) for s in main} == {(5, k) for k in range(5)}
    probes = [s for s in main if "linear probe" in s.label]
    assert all(s.recipe_fields["freeze_body"] and s.init == "cifar10" and s.source.group == "transfer-pretrain"
               for s in probes)
    pre = [s for s in runs if s.group == "transfer-pretrain"]
    assert all(s.images is None and s.epochs == 8 and s.model_overrides == {"zero_init_last": False} for s in pre)
    t1 = [s for s in runs if s.group == "transfer-table1"]
    assert len(t1) == 2 * 3 * 5 and all(s.source.group == "study" and s.source.seed == s.seed for s in t1)
    order = [s.group for s in specs.all_specs("cpu")]
    assert order.index("transfer-pretrain") > max(i for i, g in enumerate(order) if g == "probe")
    queue = specs.all_specs("cpu")
    for s in t1:   # each fine-tune of Table I weights right after its source's seed, before the next seed
        later = [i for i, q in enumerate(queue) if q.group == "study" and q.chapter == "06" and q.seed > s.seed]
        assert queue.index(s.source) < queue.index(s) < min(later)
    assert len({specs.run_key(s) for s in runs}) == len(runs)
