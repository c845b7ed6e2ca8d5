"""The book's three studies as data: every training run of chapters 6-8, per profile.

Each experiment chapter (06 ablation, 07 accuracy against latency, 08 transfer
learning) lists its runs per *profile*:

- ``smoke``: a few hundred images, 1 epoch, 1 seed: checks the pipeline (CI, minutes);
- ``cpu``:   the reference runs of this book, measured on a 2-core CPU (records in results/cpu/);
- ``full``:  the report's scale, for a GPU (45,000 CIFAR-10 training images, 20 epochs,
  3 seeds; ImageNet weights for the transfer chapter; records in results/full/).

A :class:`Spec` is one run; :func:`study` lists a chapter's runs after the report,
:func:`protocol` the runs of the study recipe, :func:`all_specs` everything in training
order. :func:`run_config` is the configuration that keys a run's record, so
:func:`find` finds it without training anything.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from torch import nn

from ..engine import records as res
from ..engine.data import DATASETS, DataConfig
from ..engine.device import RunSettings, pick_device, seed_everything
from ..engine.recipes import get_recipe
from ..engine.runner import architecture, build_model
from ..engine.runner import run_config as engine_config
from ..models.factory import create_model
from .report import TABLE1, TABLE2, TRANSFER_MODELS

PROFILES = ("smoke", "cpu", "full")
CHAPTERS = {
    "06": "chapters/06_ablation.ipynb",
    "07": "chapters/07_accuracy_latency.ipynb",
    "08": "chapters/08_transfer_learning.ipynb",
}
# the book's recipe at Table I's scale (its label differs from the full-scale row's, which in the
# smoke and full profiles is the very same run as this row's seed 0)
RECIPE_ROW = "ResNeSt-14-2s1x64d (book recipe, Table I scale)"


# ------------------------------------------------------------------------------- one run
@dataclass(frozen=True)
class Spec:
    """One training run of a chapter: what ``course_lib.engine.runner.run`` is called with.

    ``init``: 'scratch', 'imagenet' (timm's ImageNet weights, needs internet) or
    'cifar10' (the weights of this profile's CIFAR-10 pretraining run of the same model).
    """
    chapter: str
    group: str                   # table | fullscale | recipe | pretrain | finetune
    label: str                   # the row name in the chapter's table
    model: str                   # a name for course_lib.create_model
    recipe: str                  # 'report' | 'book' | 'finetune'
    seed: int = 0
    priority: int = 0            # smaller trains first
    dataset: str = "cifar10"
    images: int | None = None    # None: every training image (45,000 for CIFAR-10)
    val_size: int | None = None  # None: the data set's default (CIFAR-10: 5,000 held out)
    test_images: int | None = None
    image_size: int | None = None
    init: str = "scratch"
    fields: tuple = ()           # recipe changes, as sorted (name, value) pairs
    precision: str = "fp32"      # 'fp32' | 'bf16' | 'fp16' | 'auto' (resolved on the machine that asks)
    channels_last: bool = False
    overrides: tuple = ()        # model options, as sorted (name, value) pairs (create_model's overrides)
    folds: int | None = None     # k-fold cross-validation over the data set's images pooled (None: its split)
    fold: int | None = None      # the fold this run tests on
    source: "Spec | None" = None  # init 'cifar10': the run whose trained weights start this one (None: the
                                  # chapter's pretraining run of the same model)

    @property
    def recipe_fields(self) -> dict:
        return dict(self.fields)

    @property
    def model_overrides(self) -> dict:
        return dict(self.overrides)

    @property
    def epochs(self) -> int:
        return get_recipe(self.recipe, **self.recipe_fields).epochs

    def data(self) -> DataConfig:
        """The data part of the run, resolved (the data set's default validation size filled in)."""
        return DataConfig(self.dataset, self.images, self.val_size, 0, self.test_images, self.image_size,
                          folds=self.folds, fold=self.fold).resolved()

    def describe(self) -> str:
        imgs = "all" if self.images is None else f"{self.images:,}"
        return (f"ch{self.chapter} {self.group:9s} {self.label:34s} seed {self.seed}  {self.dataset} "
                f"{imgs} images{'' if self.folds is None else f' (fold {self.fold} of {self.folds})'}, "
                f"{self.epochs} epochs, recipe {self.recipe}, init {self.init}"
                + ("" if self.precision == "fp32" else f", {self.precision}"))

    def numerics(self) -> dict:
        """precision, channels_last, compile as they enter the run's configuration."""
        if self.precision != "auto":
            return {"precision": self.precision, "channels_last": self.channels_last, "compile": False}
        s = RunSettings.for_device(pick_device())
        return {"precision": s.precision, "channels_last": s.channels_last, "compile": False}


def _fields(**changes) -> tuple:
    return tuple(sorted(changes.items()))


# ------------------------------------------------------------------------------- the studies
SMOKE = dict(images=100, val_size=100, test_images=100)
SCALES = {
    # chapter 06, Table I
    "06": {"smoke": dict(**SMOKE, epochs=1, seeds=(0,)),
           "cpu": dict(images=10_000, epochs=10, seeds=(0, 1, 2)),
           "full": dict(images=None, epochs=20, seeds=(0, 1, 2))},
    # chapter 06, one row at the report's scale (report recipe, then the book's recipe)
    "06-fullscale": {"smoke": dict(**SMOKE, epochs=1),
                     "cpu": dict(images=None, epochs=20),
                     "full": dict(images=None, epochs=20)},
    # chapter 07, Table II
    "07": {"smoke": dict(**SMOKE, epochs=1, seeds=(0,)),
           "cpu": dict(images=5_000, epochs=5, seeds=(0,)),
           "full": dict(images=None, epochs=20, seeds=(0, 1, 2))},
    # chapter 08: CIFAR-10 pretraining (cpu, smoke), then fine-tuning on Hotdog
    "08-pretrain": {"smoke": dict(**SMOKE, epochs=1),
                    "cpu": dict(images=10_000, epochs=5)},
    "08": {"smoke": dict(images=64, epochs=1, test_images=64, image_size=None, init="cifar10"),
           "cpu": dict(images=None, epochs=5, test_images=None, image_size=None, init="cifar10"),
           "full": dict(images=None, epochs=5, test_images=None, image_size=224, init="imagenet")},
}
# D2L trains the network from scratch with a 10 times larger rate on every layer
SCRATCH_LR = 5e-4


def _cifar(s: dict) -> dict:
    return {k: s[k] for k in ("images", "val_size", "test_images") if k in s}


def _grid(chapter: str, group: str, names, recipe: str, scale: dict, seeds, priority: int, numerics=None,
          init: tuple = (), **fields) -> list[Spec]:
    """One run per seed and name, seed-major (seed 0 of every model first); priority + seed orders them.

    ``init``: model overrides for the networks that take them (see :func:`_init_overrides`).
    """
    return [Spec(chapter, group, name, name, recipe, seed, priority + seed, **_cifar(scale), **(numerics or {}),
                 fields=_fields(**fields), overrides=_init_overrides(name, init))
            for seed in seeds for name in names]


def _init_overrides(name: str, init: tuple) -> tuple:
    """``init`` for course_lib's ResNeSt/ResNet and timm's ResNet-18; EfficientNet has no zero-init to turn off."""
    return () if name.startswith("EfficientNet") else tuple(init)


def study(chapter: str, profile: str) -> list[Spec]:
    """The runs of one chapter under one profile, in the chapter's order."""
    check_profile(profile)
    chapter = check_chapter(chapter)
    out: list[Spec] = []
    if chapter == "06":
        s = SCALES["06"][profile]
        out += _grid("06", "table", TABLE1, "report", s, s["seeds"], 10, epochs=s["epochs"])
        f = SCALES["06-fullscale"][profile]
        for recipe, prio in (("report", 20), ("book", 50)):
            out.append(Spec("06", "fullscale", f"ResNeSt-14-2s1x64d ({recipe} recipe)", "ResNeSt-14-2s1x64d",
                            recipe, 0, prio, **_cifar(f), fields=_fields(epochs=f["epochs"])))
        # the book's recipe at Table I's scale and seeds, against Table I's report-recipe runs
        for seed in s["seeds"]:
            out.append(Spec("06", "recipe", RECIPE_ROW, "ResNeSt-14-2s1x64d", "book",
                            seed, 60 + seed, **_cifar(s), fields=_fields(epochs=s["epochs"])))
    elif chapter == "07":
        s = SCALES["07"][profile]
        out += _grid("07", "table", TABLE2, "report", s, s["seeds"], 30, epochs=s["epochs"])
    else:
        s = SCALES["08"][profile]
        if s["init"] == "cifar10":
            p = SCALES["08-pretrain"][profile]
            for name in TRANSFER_MODELS:
                out.append(Spec("08", "pretrain", f"{name} (CIFAR-10 pretraining)", name, "book", 0, 40,
                                **_cifar(p), fields=_fields(epochs=p["epochs"])))
        hot = dict(dataset="hotdog", images=s["images"], test_images=s["test_images"], image_size=s["image_size"])
        for name in TRANSFER_MODELS:
            weights = "ImageNet" if s["init"] == "imagenet" else "CIFAR-10"
            out.append(Spec("08", "finetune", f"{name} ({weights} weights)", name, "finetune", 0, 41, **hot,
                            init=s["init"], fields=_fields(epochs=s["epochs"])))
            out.append(Spec("08", "finetune", f"{name} (from scratch)", name, "finetune", 0, 41, **hot,
                            fields=_fields(epochs=s["epochs"], lr=SCRATCH_LR, head_lr_mult=1.0)))
    return out


# ------------------------------------------------------------------------------- the study protocol
# The runs that answer the report's questions (one recipe, 'study'; sized to the seed noise).
# They train with bfloat16 autocast and channels-last (course_lib.engine.device) and live beside the
# report-recipe runs above, which stay as the chapters' lesson on recipes.
PROBE_LRS = (0.05, 0.1, 0.2)        # the peak rates the probe tries
# The peak rate the probe chose. The probe is PROBE_MODEL, seed 0, at Table I's scale (so the run at the
# chosen rate is also Table I's seed-0 run of PROBE_MODEL); selection by validation accuracy.
# Probe at Table I's scale (results/cpu, group 'probe'): validation accuracy 79.72 % at 0.05, 79.44 % at 0.1,
# 80.30 % at 0.2 -- within 0.9 points, a flat optimum; by the rule (best validation accuracy) 0.2.
STUDY_LR = 0.2
# Gradient clipping (total norm) of every study run from Table I's seed-1 runs on. At 0.2, with no clipping,
# seed 1 of ResNeSt-14-1s1x40d met one step with a gradient norm of 45.9 (the median of its epoch: 0.75;
# recomputed in float32 from the same weights and batch: 44.9, so not bfloat16's doing), in the stem; the
# loss jumped and the run ended 13 points below its seed 0. Replayed from its epoch-3 checkpoint
# (tools/spike.py), clipping at 5 cut that one step and nothing else after the warm-up, and the run went
# on as if nothing had happened. The runs made before (UNCLIPPED_RUNS) stay as records, group 'unclipped'.
STUDY_CLIP = 5.0
# The Table I runs made at STUDY_LR without clipping, by seed (group 'unclipped'); seed 0 of PROBE_MODEL is
# the probe's run at 0.2.
UNCLIPPED_RUNS = {0: ("ResNet-14-0s1x64d", "ResNet-14-1s1x64d", "ResNeSt-14-0s1x64d", "ResNeSt-14-1s1x64d",
                      "ResNeSt-14-1s1x40d", "ResNeSt-14-1s2x64d", "ResNeSt-14-2s1x64d"),
                  1: ("ResNet-14-0s1x64d", "ResNet-14-1s1x64d", "ResNeSt-14-0s1x64d", "ResNeSt-14-1s1x64d",
                      "ResNeSt-14-1s1x40d")}
# The rate of the runs made before the probe at Table I's scale (the precision check, the zero-init run):
# the 1-epoch probe's choice. Kept so that their records keep their keys.
FIRST_PROBE_LR = 0.05
# Every study network starts with its blocks' last BN at weight 1, not 0 (timm's and our default is 0,
# "zero-init"). With zero-init, the 14-layer networks of Table I stall at 32x32 pixels: the training loss
# of ResNet-14-0s1x64d rose above chance (2.36 > ln 10) in epoch 2 and the run ended at 62.88 %. Chapter 6
# shows the two loss curves; the 1-epoch probe and the precision check below ran before this was found
# and keep zero-init, so their records stay valid as they are.
STUDY_INIT = (("zero_init_last", False),)
PROTOCOL_GROUPS = ("probe", "probe-1epoch", "precision", "zero-init", "unclipped", "study", "transfer-pretrain",
                   "transfer", "transfer-table1", "precision-study")
# float32 twins of Table I's seed-0 study runs (cpu): the same network, seed, data and clip, only the precision
# changed, which measures bfloat16's effect at the study's scale. Added when a session's machine (an AMD EPYC
# with AVX2 only) trained 10 to 13x slower in bfloat16 than in float32, so could run nothing else of the
# study. They train right after Table I's seed 0: they measure the shift that a seed trained partly in float32
# (fp32_fallback) would carry. Fastest first.
PRECISION_TWINS = ("ResNeSt-14-1s1x40d", "ResNet-14-0s1x64d", "ResNeSt-14-0s1x64d", "ResNeSt-14-1s1x64d",
                   "ResNet-14-1s1x64d", "ResNeSt-14-1s2x64d", "ResNeSt-14-2s1x64d")
# The groups whose bfloat16 runs have a float32 version (fp32_fallback) for a machine without native bfloat16:
# Table I from seed 1, Table II, and the transfer chain (added when two sessions in a row had AVX2-only CPUs).
FP32_FALLBACK_GROUPS = ("study", "transfer-pretrain", "transfer", "transfer-table1")
MAIN_ARMS = ("ResNet-14-0s1x64d", "ResNeSt-14-0s1x64d", "ResNeSt-14-2s1x64d")
PROBE_MODEL = "ResNeSt-14-2s1x64d"
STUDY_SCALES = {
    "smoke": dict(**SMOKE, epochs=1, seeds=(0,), extra_seeds=(), probe=dict(**SMOKE),
                  precision_check=dict(**SMOKE, epochs=1, seeds=(0,))),
    "cpu": dict(images=None, epochs=10, seeds=(0, 1, 2), extra_seeds=(3, 4, 5), probe=dict(images=None),
                precision_check=dict(images=10_000, epochs=5, seeds=(0, 1, 2, 3))),
    "full": dict(images=None, epochs=20, seeds=(0, 1, 2), extra_seeds=(3, 4, 5), probe=dict(images=None),
                 precision_check=None),
}
# Table II (chapter 07): every network on 20,000 images for 8 epochs, a second seed for four of them
TABLE2_SECOND_SEED = ("ResNeSt-14", "ResNeSt-50", "ResNet-18", "EfficientNet-b0")
STUDY_TABLE2 = {"smoke": dict(**SMOKE, epochs=1, seeds=(0,), extra_seeds=()),
                "cpu": dict(images=20_000, epochs=8, seeds=(0,), extra_seeds=(1,)),
                "full": dict(images=None, epochs=20, seeds=(0, 1, 2), extra_seeds=())}
STUDY_NUMERICS = {"smoke": dict(precision="bf16", channels_last=True),
                  "cpu": dict(precision="bf16", channels_last=True),
                  "full": dict(precision="auto", channels_last=True)}


# Transfer (chapter 08): each network pretrained on CIFAR-10 with the study recipe (full profile: ImageNet
# weights instead), then fine-tuned on Hotdog with D2L's recipe, at the photos' native 64 px (full: 224 px),
# in 5-fold cross-validation over all photos (train and test pooled) x 2 seeds, against the same network
# from scratch and a linear probe of the pretrained body. The Table I networks of TRANSFER_FROM_TABLE1 are
# fine-tuned too, each of their seeds on every fold: a seed-replicated comparison from identical pretraining.
# Those fine-tunes share their source seed's priority, so the queue runs them soon after that seed of Table I
# (for seed 0, after the float32 twins), while its checkpoints are still on the machine (a new machine has
# none, and a missing source is trained again). Their records name the source's bfloat16 run even where
# its float32 version (fp32_fallback) gave the weights.
TRANSFER_FROM_TABLE1 = ("ResNeSt-14-2s1x64d", "ResNet-14-0s1x64d")
TRANSFER_KINDS = ("fine-tuned", "from scratch", "linear probe")
STUDY_TRANSFER = {
    "smoke": dict(pretrain=dict(**SMOKE, epochs=1), folds=5, test_folds=(0,), seeds=(0,), table1_seeds=(0,),
                  hotdog=dict(images=64, test_images=64)),
    "cpu": dict(pretrain=dict(images=None, epochs=8), folds=5, test_folds=(0, 1, 2, 3, 4), seeds=(0, 1),
                table1_seeds=(0, 1, 2), hotdog=dict()),
    "full": dict(pretrain=None, folds=5, test_folds=(0, 1, 2, 3, 4), seeds=(0, 1), table1_seeds=(0, 1, 2),
                 hotdog=dict(image_size=224)),
}


def _transfer(profile: str, num: dict) -> list[Spec]:
    """Chapter 08's study runs (see STUDY_TRANSFER)."""
    t = STUDY_TRANSFER[profile]
    hot = dict(dataset="hotdog", folds=t["folds"], **t["hotdog"], **num)
    kinds = {"fine-tuned": {}, "from scratch": dict(lr=SCRATCH_LR, head_lr_mult=1.0),
             "linear probe": dict(freeze_body=True, lr=SCRATCH_LR, head_lr_mult=1.0)}
    out = []
    for name in TRANSFER_MODELS:
        pre = None
        if t["pretrain"]:
            p = t["pretrain"]
            pre = Spec("08", "transfer-pretrain", f"{name} (CIFAR-10 pretraining)", name, "study", 0, 40,
                       **_cifar(p), **num, fields=_fields(epochs=p["epochs"], lr=STUDY_LR, grad_clip=STUDY_CLIP),
                       overrides=STUDY_INIT)
            out.append(pre)
        for seed in t["seeds"]:
            for fold in t["test_folds"]:
                for kind, fields in kinds.items():
                    scratch = kind == "from scratch"
                    init = "scratch" if scratch else ("cifar10" if pre else "imagenet")
                    out.append(Spec("08", "transfer", f"{name} ({kind})", name, "d2l-finetune", seed, 41 + seed,
                                    **hot, fold=fold, init=init, fields=_fields(**fields),
                                    overrides=STUDY_INIT if scratch else (), source=None if scratch else pre))
    table1 = {(x.label, x.seed): x for x in protocol("06", profile) if x.group == "study"}
    for name in TRANSFER_FROM_TABLE1:
        for seed in t["table1_seeds"]:
            for fold in t["test_folds"]:
                src = table1[(name, seed)]   # trains right after its source's seed: checkpoints may not last
                out.append(Spec("08", "transfer-table1", f"{name} (Table I weights)", name, "d2l-finetune", seed,
                                src.priority, **hot, fold=fold, init="cifar10", source=src))
    return out


def _steps_per_epoch(images: int | None, batch_size: int = 256) -> int:
    n = 45_000 if images is None else images
    return max(1, -(-n // batch_size))


def protocol(chapter: str, profile: str) -> list[Spec]:
    """The study runs of one chapter under one profile (see STUDY_SCALES)."""
    check_profile(profile)
    chapter = check_chapter(chapter)
    s, num = STUDY_SCALES[profile], STUDY_NUMERICS[profile]
    out: list[Spec] = []
    if chapter == "07" and STUDY_LR is not None:
        t = STUDY_TABLE2[profile]
        out += _grid("07", "study", TABLE2, "study", t, t["seeds"], 60, num, STUDY_INIT, epochs=t["epochs"],
                     lr=STUDY_LR, grad_clip=STUDY_CLIP)
        out += _grid("07", "study", TABLE2_SECOND_SEED, "study", t, t["extra_seeds"], 60, num, STUDY_INIT,
                     epochs=t["epochs"], lr=STUDY_LR, grad_clip=STUDY_CLIP)
    if chapter == "08" and STUDY_LR is not None:
        out += _transfer(profile, num)
    if chapter != "06":
        return out
    # the probe: PROBE_MODEL at each peak rate, at Table I's scale (the run at STUDY_LR is seed 0 of 'unclipped')
    out += [Spec("06", "probe", f"{PROBE_MODEL}, peak lr {lr}", PROBE_MODEL, "study", 0, 1, **_cifar(s), **num,
                 fields=_fields(epochs=s["epochs"], lr=lr), overrides=STUDY_INIT) for lr in PROBE_LRS]
    # the first probe, before STUDY_INIT: 1 epoch at each rate, warm-up over its first half (cpu records)
    p = s["probe"]
    out += [] if profile != "cpu" else [Spec("06", "probe-1epoch", f"{PROBE_MODEL}, peak lr {lr}, 1 epoch", PROBE_MODEL, "study", 0, 1,
                 **_cifar(p), **num, fields=_fields(epochs=1, lr=lr, warmup_steps=_steps_per_epoch(p["images"]) // 2))
            for lr in PROBE_LRS]
    if STUDY_LR is None:
        return out  # the rest waits for the probe's choice
    c = s["precision_check"]
    if c:  # the same runs in float32 and in bfloat16 (warm-up 1 epoch), zero-init as before STUDY_INIT
        for seed in c["seeds"]:
            for prec, cl in (("fp32", False), ("bf16", True)):
                out.append(Spec("06", "precision", f"{PROBE_MODEL}, {prec}", PROBE_MODEL, "study", seed, 2,
                                **_cifar(c), precision=prec, channels_last=cl,
                                fields=_fields(epochs=c["epochs"], lr=FIRST_PROBE_LR,
                                               warmup_steps=_steps_per_epoch(c["images"]))))
    if profile == "cpu":  # the first Table I run, before STUDY_INIT (chapter 6 compares its loss curve)
        out += _grid("06", "zero-init", ("ResNet-14-0s1x64d",), "study", s, s["seeds"][:1], 10, num,
                     epochs=s["epochs"], lr=FIRST_PROBE_LR)
        # ... and its control: the same run without zero-init (same rate, seed and data)
        out.append(Spec("06", "zero-init", "ResNet-14-0s1x64d (no zero-init)", "ResNet-14-0s1x64d", "study", 0, 10,
                        **_cifar(s), **num, fields=_fields(epochs=s["epochs"], lr=FIRST_PROBE_LR),
                        overrides=STUDY_INIT))
    if profile == "cpu":  # Table I's first runs, made without clipping (see STUDY_CLIP)
        for seed, names in UNCLIPPED_RUNS.items():
            out += _grid("06", "unclipped", names, "study", s, (seed,), 10, num, STUDY_INIT, epochs=s["epochs"],
                         lr=STUDY_LR)
    out += _grid("06", "study", TABLE1, "study", s, s["seeds"], 10, num, STUDY_INIT, epochs=s["epochs"], lr=STUDY_LR,
                 grad_clip=STUDY_CLIP)
    out += _grid("06", "study", MAIN_ARMS, "study", s, s["extra_seeds"], 80, num, STUDY_INIT,
                 epochs=s["epochs"], lr=STUDY_LR, grad_clip=STUDY_CLIP)
    if profile == "cpu":
        out += _grid("06", "precision-study", PRECISION_TWINS, "study", s, s["seeds"][:1], 10,
                     dict(precision="fp32", channels_last=True), STUDY_INIT, epochs=s["epochs"], lr=STUDY_LR,
                     grad_clip=STUDY_CLIP)
    return out


def all_specs(profile: str, chapter: str | None = None, groups=None) -> list[Spec]:
    """Every run of a profile (or of one chapter, or of some groups), in training order; duplicates dropped."""
    chapters = [check_chapter(chapter)] if chapter else list(CHAPTERS)
    specs = [s for ch in chapters for s in (*study(ch, profile), *protocol(ch, profile))]
    if groups:
        known = {s.group for ch in CHAPTERS for s in (*study(ch, profile), *protocol(ch, profile))}
        unknown = sorted(set(groups) - known)
        if unknown:
            raise ValueError(f"unknown group(s) {unknown}: the '{profile}' profile has {sorted(known)}")
        specs = [s for s in specs if s.group in groups]
    order = sorted(range(len(specs)), key=lambda i: (specs[i].priority, i))
    seen, out = set(), []
    for i in order:
        key = run_key(specs[i])
        if key not in seen:
            seen.add(key)
            out.append(specs[i])
    return out


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use one of {list(PROFILES)}")
    return profile


def check_chapter(chapter) -> str:
    chapter = f"{int(chapter):02d}" if str(chapter).isdigit() else str(chapter)
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}: use one of {list(CHAPTERS)}")
    return chapter


# ------------------------------------------------------------------------------- where things go
def results_dir(profile: str, directory=None) -> Path:
    """Where a profile's new records are written: ``directory`` if given, else results/<profile>/ in a
    checkout or ``./course-results/<profile>`` when installed, ``$COURSE_RESULTS/<profile>`` if that is
    set (smoke: runs/results/smoke/). Read with :func:`record_dirs`."""
    if directory:
        return Path(directory).expanduser()
    check_profile(profile)
    if profile == "smoke":
        return res.runs_dir() / "results" / "smoke"
    return res.results_dir() / profile


def record_dirs(profile: str, directory=None) -> list[Path]:
    """The folders a profile's records are read from, in order.

    The default folder (``directory`` empty, or equal to ``results_dir(profile)``) is read first,
    then the records of that profile that came with course_lib (the repository's results/<profile>/,
    or the installed package's copy of it). A folder given explicitly is read alone.
    """
    mine = results_dir(profile, directory)
    out = [mine]
    shipped = res.packaged_dir()
    if shipped is not None and _same(mine, results_dir(profile)) and (shipped / profile).is_dir():
        if not _same(shipped / profile, mine):
            out.append(shipped / profile)
    return out


def _same(a: Path, b: Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _profile_folder(directory) -> list[Path]:
    """``record_dirs`` of the profile whose default folder ``directory`` is; else ``[directory]``."""
    if isinstance(directory, (list, tuple)):
        return [Path(d) for d in directory]
    if directory is None:
        return [res.results_dir()]
    for profile in PROFILES:
        if _same(directory, results_dir(profile)):
            return record_dirs(profile)
    return [Path(directory).expanduser()]


def checkpoints_dir(profile: str) -> Path:
    return res.runs_dir() / "checkpoints" / profile


def notebooks_dir(profile: str) -> Path:
    return res.runs_dir() / "notebooks" / profile


# ------------------------------------------------------------------------------- configuration and records
def _recipe(spec: Spec):
    return get_recipe(spec.recipe, **spec.recipe_fields)


def _num_classes(spec: Spec) -> int:
    return DATASETS[spec.dataset]["num_classes"]


def _pretrain_spec(spec: Spec) -> Spec:
    found = [s for s in study(spec.chapter, _profile_of(spec)) if s.group == "pretrain" and s.model == spec.model]
    return found[0]


def _profile_of(spec: Spec) -> str:
    for profile in PROFILES:
        try:
            if spec in study(spec.chapter, profile):
                return profile
        except ValueError:
            continue
    raise ValueError(f"{spec} belongs to no profile")


def model_factory(spec: Spec, weights: Callable[[Spec], nn.Module] | None = None):
    """(model argument of ``run``, its name): a name, or a function that builds the initialised model.

    ``weights(pre)`` returns the trained model of the pretraining run ``pre`` (init 'cifar10');
    with ``weights=None`` the networks are built without any weights, ImageNet's included:
    the architecture is all a run's configuration needs.
    """
    if spec.init == "scratch":
        return spec.model, None
    if spec.overrides:
        raise ValueError(f"{spec.label}: model overrides apply to runs from scratch only")
    if spec.init == "imagenet":
        return (lambda: create_model(spec.model, num_classes=_num_classes(spec), pretrained=weights is not None)), \
            f"{spec.model} (ImageNet weights)"
    pre = spec.source or _pretrain_spec(spec)

    def build():
        if weights is not None:
            model = weights(pre)
        else:
            model = build_model(pre.model, _num_classes(pre), _recipe(pre).drop_rate, **pre.model_overrides)
        model.reset_classifier(_num_classes(spec))
        return model
    return build, f"{spec.model} (CIFAR-10 weights {run_key(pre)})"


def run_config(spec: Spec) -> dict:
    """The configuration ``course_lib.engine.runner.run`` keys this run's record with."""
    model, name = model_factory(spec)
    arch = None
    if not isinstance(model, str):  # the structure depends on the name (which names the weights) and the classes
        arch_key = (name, _num_classes(spec))
        if arch_key not in _ARCH:
            seed_everything(spec.seed)
            _ARCH[arch_key] = architecture(model())
        arch = _ARCH[arch_key]
    return engine_config(name or model, _recipe(spec), spec.data(), seed=spec.seed, num_classes=_num_classes(spec),
                         overrides=spec.model_overrides, arch=arch, **spec.numerics())


_KEYS: dict = {}
_ARCH: dict = {}


def run_key(spec: Spec) -> str:
    if spec not in _KEYS:
        _KEYS[spec] = res.config_key(run_config(spec))
    return _KEYS[spec]


def fp32_fallback(spec: Spec) -> Spec | None:
    """The float32 version of a bfloat16 study run, or None.

    Where the CPU has no native bfloat16 the queue trains it instead, and :func:`find` returns its record
    when the bfloat16 run has none; the record says which precision it ran in. Table I's seed 0 has none:
    six of its seven runs were in bfloat16 when the fallback came, and a seed is the block of every pairing
    (its float32 twins are the 'precision-study' group). A fine-tune's float32 version starts from its
    source's float32 version, so that a transfer chain trained on such a machine is float32 throughout;
    for a Table I seed-0 source that is the seed's float32 twin (the same run key).
    """
    if spec.precision != "bf16" or spec.group not in FP32_FALLBACK_GROUPS:
        return None
    if spec.group == "study" and spec.chapter == "06" and spec.seed == 0:
        return None
    src = spec.source and replace(spec.source, precision="fp32")   # sources train from scratch
    return replace(spec, precision="fp32", source=src)


def find(spec: Spec, directory) -> dict | None:
    """The stored record of a run (any status), or None.

    ``directory``: a records folder; a profile's default folder (``results_dir(profile)``, what
    ``open_chapter`` returns for ``RESULTS = ""``) is read as :func:`record_dirs` says, the
    user's folder first, then the records that came with course_lib. A finished record wins,
    then the finished record of the run's float32 version (:func:`fp32_fallback`).
    """
    rec = res.find_record(run_config(spec), _profile_folder(directory))
    alt = fp32_fallback(spec)
    if alt is not None and not (rec and rec.get("status") == "finished"):
        other = res.find_record(run_config(alt), _profile_folder(directory))
        if other and other.get("status") == "finished":
            return other
    return rec


def command(profile: str, chapter: str, *groups: str) -> str:
    """The shell command that produces a chapter's runs of a profile (only those of ``groups``, if given).

    A group that this profile does not have (some are the ``cpu`` profile's only) is left out of the command.
    """
    known = {p: {s.group for s in (*study(chapter, p), *protocol(chapter, p))} for p in PROFILES}
    unknown = sorted(set(groups) - set().union(*known.values()))
    if unknown:
        raise ValueError(f"chapter {chapter} has no group {unknown}: it has {sorted(set().union(*known.values()))}")
    return f"python -m course_lib.experiments train --profile {profile} --chapter {chapter}" + \
        "".join(f" --group {g}" for g in groups if g in known[profile])
