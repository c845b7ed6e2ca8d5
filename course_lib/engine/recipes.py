"""Recipes: everything about *how* a model is trained (not which model, not which data).

A :class:`Recipe` is a frozen dataclass of optimiser, schedule, regularisation and
augmentation settings; ``RECIPES`` holds the book's (``report``, ``book``, ``study``,
``finetune``) and :func:`get_recipe` derives new ones by name. :class:`Schedule` is
the learning-rate factor per optimizer step.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

SCHEDULES = ("constant", "cosine", "linear")
LOSS_REDUCTIONS = ("mean", "sum")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Recipe:
    """Everything about *how* a model is trained (not which model, not which data).

    Built-in recipes (``RECIPES``): ``report``, the report's section IV-A recipe, whose
    learning rate the report does not give: we chose 0.1, constant; ``book``, the book's
    recipe for the same 20 epochs; ``finetune``, the report's section IV-C recipe.
    """
    name: str = "custom"
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.1                 # peak learning rate (of the body, see head_lr_mult)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "constant"      # constant | cosine (to 0) | linear (to 0), after warm-up
    warmup_epochs: float = 0.0      # linear ramp from lr/steps to lr
    warmup_steps: int = 0           # the same ramp counted in steps; when > 0 it replaces warmup_epochs
    label_smoothing: float = 0.0
    drop_rate: float | None = 0.2   # dropout before the classifier; None: the model's default
    crop_padding: int = 0           # random crop after zero padding by this many pixels; 0 = off
    resized_crop: bool = False      # random box (8-100 % of the area, aspect 3/4-4/3) resized to the input: D2L's
    flip: bool = False              # random horizontal flip
    test_crop: float = 1.0          # evaluation sees the central fraction of each side, resized (D2L: 224/256)
    freeze_body: bool = False       # train the classifier only, the body fixed in eval mode (a linear probe)
    head_lr_mult: float = 1.0       # learning rate multiplier of the classifier (fine-tuning)
    loss_reduction: str = "mean"    # 'sum' reproduces D2L's l.sum().backward()
    grad_clip: float | None = None  # max gradient norm, None = no clipping

    def __post_init__(self):
        numbers = ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "drop_rate",
                   "head_lr_mult", "grad_clip", "test_crop")
        wrong = [f"{k} must be a finite number, got {getattr(self, k)!r}" for k in numbers
                 if getattr(self, k) is not None and not _finite(getattr(self, k))]
        wrong += [f"{k} must be True or False, got {getattr(self, k)!r}" for k in ("nesterov", "flip")
                  if not isinstance(getattr(self, k), bool)]
        if wrong:  # before the range checks, which would fail inside Python's comparisons
            raise ValueError(f"bad recipe {self.name!r}: " + "; ".join(wrong))
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, "epochs must be an integer >= 1"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size must be an integer >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
            (0 <= self.warmup_epochs <= self.epochs, "warmup_epochs must be in [0, epochs]"),
            (isinstance(self.warmup_steps, int) and self.warmup_steps >= 0, "warmup_steps must be an integer >= 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.drop_rate is None or 0 <= self.drop_rate < 1, "drop_rate must be None or in [0, 1)"),
            (isinstance(self.crop_padding, int) and self.crop_padding >= 0, "crop_padding must be an integer >= 0"),
            (not (self.crop_padding and self.resized_crop), "crop_padding and resized_crop exclude each other"),
            (0 < self.test_crop <= 1, "test_crop must be in (0, 1]"),
            (self.head_lr_mult > 0, "head_lr_mult must be > 0"),
            (self.loss_reduction in LOSS_REDUCTIONS, f"loss_reduction must be one of {LOSS_REDUCTIONS}"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip must be None or > 0"),
        ]
        broken = [msg for ok, msg in checks if not ok]
        if broken:
            raise ValueError(f"bad recipe {self.name!r}: " + "; ".join(broken))

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed; an unknown field raises ValueError listing the known ones."""
        unknown = sorted(set(changes) - set(self.fields()))
        if unknown:
            raise ValueError(f"unknown recipe field(s) {unknown}; the fields are {list(self.fields())}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def warmup(self, steps_per_epoch: int) -> int:
        """Warm-up length in optimizer steps (``warmup_steps`` if set, else ``warmup_epochs``)."""
        return self.warmup_steps or round(self.warmup_epochs * steps_per_epoch)


RECIPES: dict[str, Recipe] = {
    # Report, section IV-A. Its learning rate is not given: we use 0.1, the usual SGD
    # rate for batch 256 (ResNet paper) and the ResNeSt article's base rate per 256 images.
    "report": Recipe(name="report", epochs=20, batch_size=256, lr=0.1, momentum=0.9,
                     weight_decay=1e-4, schedule="constant", drop_rate=0.2),
    # The book's recipe, same 20 epochs: crop + flip augmentation, 1 epoch of warm-up
    # then cosine decay, label smoothing 0.1, Nesterov momentum and weight decay 5e-4.
    "book": Recipe(name="book", epochs=20, batch_size=256, lr=0.2, momentum=0.9, nesterov=True,
                   weight_decay=5e-4, schedule="cosine", warmup_epochs=1.0, label_smoothing=0.1,
                   drop_rate=0.2, crop_padding=4, flip=True),
    # The study's recipe (chapters 6-8): the book's, with the warm-up counted in steps
    # (352 = 2 epochs of 45,000 images at batch 256) so that short runs warm up as long
    # as long runs; the peak rate comes from the 1-epoch probe of chapter 6
    # (course_lib.study.specs.STUDY_LR); the 10 epochs are set per study.
    "study": Recipe(name="study", epochs=10, batch_size=256, lr=0.1, momentum=0.9, nesterov=True,
                    weight_decay=5e-4, schedule="cosine", warmup_steps=352, label_smoothing=0.1,
                    drop_rate=0.2, crop_padding=4, flip=True),
    # Report, section IV-C (after D2L): fine-tune a pretrained model for 5 epochs, lr 5e-5
    # on the body and 10x on the new classifier, weight decay 1e-3, summed loss as in D2L.
    "finetune": Recipe(name="finetune", epochs=5, batch_size=128, lr=5e-5, momentum=0.9,
                       weight_decay=1e-3, schedule="constant", drop_rate=None, crop_padding=4,
                       flip=True, head_lr_mult=10.0, loss_reduction="sum"),
    # D2L's own fine-tuning (section 14.2) at the images' native size: plain SGD (no momentum), lr 5e-5
    # on the body and 10x on the new classifier, weight decay 1e-3, summed loss, batch 128, 5 epochs;
    # training images randomly cropped and resized, flipped; test images centre-cropped (224 of 256).
    "d2l-finetune": Recipe(name="d2l-finetune", epochs=5, batch_size=128, lr=5e-5, momentum=0.0,
                           weight_decay=1e-3, schedule="constant", drop_rate=None, resized_crop=True, flip=True,
                           test_crop=224 / 256, head_lr_mult=10.0, loss_reduction="sum"),
}


def get_recipe(recipe: str | Recipe | dict = "book", **changes) -> Recipe:
    """A recipe by name ('report', 'book', 'finetune'), a Recipe, or a dict of fields.

    A dict may name its base in ``name`` (unknown names start from the defaults).
    Changed fields are appended to the name, e.g. ``book(lr=0.05)``, unless ``name``
    is given explicitly.
    """
    if isinstance(recipe, dict):
        changes = {**recipe, **changes}
        recipe = changes.get("name", "custom")
        if recipe not in RECIPES:
            return Recipe().replace(**changes)
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}: use one of {list(RECIPES)}, a Recipe or a dict of fields")
        recipe = RECIPES[recipe]
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a name, a Recipe or a dict, got {type(recipe).__name__}")
    if not changes:
        return recipe
    new = recipe.replace(**changes)
    if "name" not in changes:
        diff = {k: v for k, v in changes.items() if getattr(recipe, k) != v}
        if diff:
            new = new.replace(name=f"{recipe.name}(" + ",".join(f"{k}={v}" for k, v in sorted(diff.items())) + ")")
    return new


class Schedule:
    """Learning-rate factor per optimizer step: linear warm-up, then constant, cosine or linear decay."""

    def __init__(self, kind: str, total_steps: int, warmup_steps: int = 0):
        self.kind, self.total_steps, self.warmup_steps = kind, max(total_steps, 1), warmup_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        t = min((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 1.0)
        if self.kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        return 1.0 - t if self.kind == "linear" else 1.0
