"""The book's three studies as data, and the commands that run them.

Each experiment chapter (06 ablation, 07 accuracy against latency, 08 transfer
learning) lists its runs per *profile*:

- ``smoke``: a few hundred images, 1 epoch, 1 seed: checks the pipeline (CI, minutes);
- ``cpu``:   the reference runs of this book, measured on a 2-core CPU (records in results/cpu/);
- ``full``:  the report's scale, for a GPU (45,000 CIFAR-10 training images, 20 epochs,
  3 seeds; ImageNet weights for the transfer chapter; records in results/full/).

Commands (from the repository root)::

    python -m course_lib.experiments list  --profile cpu               # which runs exist, which are missing
    python -m course_lib.experiments train --profile cpu [--chapter 06] # train missing runs, no notebooks
    python -m course_lib.experiments run   --profile smoke [--chapter 06] [-p NAME VALUE]
                                                                     # execute the chapters with papermill

``train`` goes through the runs in priority order, writes each record as it finishes
(``course_lib.train.run`` checkpoints every epoch and resumes) and appends a line per
run to ``<results>/LOG.md``. ``run`` checks the notebook parameters with
``course_lib.nbparams.validate`` first, then executes each chapter with ``TRAIN=True``;
executed notebooks go to ``runs/notebooks/<profile>/`` (git-ignored).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import results as res

PROFILES = ("smoke", "cpu", "full")
REPO = Path(__file__).resolve().parent.parent
CHAPTERS = {
    "06": "chapters/06_ablation.ipynb",
    "07": "chapters/07_accuracy_latency.ipynb",
    "08": "chapters/08_transfer_learning.ipynb",
}
# papermill time limit per chapter (seconds): smoke must fit in CI, the others train for hours or days
TIMEOUTS = {"smoke": 900, "cpu": 7 * 24 * 3600, "full": 14 * 24 * 3600}

# ------------------------------------------------------------------------------- the report's figures
TABLE1 = ("ResNet-14-0s1x64d", "ResNet-14-1s1x64d", "ResNeSt-14-0s1x64d", "ResNeSt-14-1s1x64d",
          "ResNeSt-14-1s1x40d", "ResNeSt-14-1s2x64d", "ResNeSt-14-2s1x64d")
# model: (parameters in millions, latency ms per image, throughput img/s, test accuracy %); T4 GPU, CIFAR-10
REPORT_TABLE1 = {
    "ResNet-14-0s1x64d": (8.03, 0.1223, 8177, 58.08), "ResNet-14-1s1x64d": (8.21, 0.1311, 7624, 58.68),
    "ResNeSt-14-0s1x64d": (8.06, 0.1716, 5826, 62.96), "ResNeSt-14-1s1x64d": (8.23, 0.1282, 7797, 61.21),
    "ResNeSt-14-1s1x40d": (5.44, 0.1435, 6967, 61.22), "ResNeSt-14-1s2x64d": (13.63, 0.1307, 7646, 62.95),
    "ResNeSt-14-2s1x64d": (8.58, 0.1545, 6471, 62.64),
}
# The differences the report reads a conclusion from, each (variant, baseline)
TABLE1_PAIRS = (
    ("ResNeSt-14-0s1x64d", "ResNet-14-0s1x64d"),   # ResNeSt's stem and shortcut, same plain block
    ("ResNet-14-1s1x64d", "ResNet-14-0s1x64d"),    # radix-1 block in the ResNet body
    ("ResNeSt-14-1s1x64d", "ResNeSt-14-0s1x64d"),  # radix 1 against the plain block
    ("ResNeSt-14-2s1x64d", "ResNeSt-14-1s1x64d"),  # radix 2 against radix 1
    ("ResNeSt-14-1s2x64d", "ResNeSt-14-1s1x64d"),  # cardinality 2 against 1
    ("ResNeSt-14-1s1x40d", "ResNeSt-14-1s1x64d"),  # width 40 against 64
    ("ResNeSt-14-2s1x64d", "ResNet-14-0s1x64d"),   # the full change
)
# the book's recipe at Table I's scale (its label differs from the full-scale row's, which in the
# smoke and full profiles is the very same run as this row's seed 0)
RECIPE_ROW = "ResNeSt-14-2s1x64d (book recipe, Table I scale)"
TABLE2 = ("ResNeSt-14", "ResNeSt-26", "ResNeSt-32", "ResNeSt-50", "ResNeSt-101", "ResNet-18",
          "EfficientNet-b0", "EfficientNet-b1", "EfficientNet-b2", "EfficientNet-b3")
REPORT_TABLE2 = {  # ResNeSt-26 is not in the report
    "ResNeSt-14": (8.58, 0.1808, 5530, 61.68), "ResNeSt-32": (16.56, 0.1761, 5678, 59.04),
    "ResNeSt-50": (25.45, 0.1894, 5277, 59.45), "ResNeSt-101": (46.14, 0.2670, 3745, 58.18),
    "ResNet-18": (11.18, 0.1247, 8016, 58.55), "EfficientNet-b0": (4.02, 0.1450, 6668, 50.72),
    "EfficientNet-b1": (6.53, 0.1692, 5908, 46.57), "EfficientNet-b2": (7.72, 0.1703, 5871, 43.23),
    "EfficientNet-b3": (10.71, 0.2181, 4584, 41.80),
}
TRANSFER_MODELS = ("ResNeSt-50", "ResNet-50")
REPORT_TRANSFER = {"ResNeSt-50": 0.950, "ResNet-50": 0.907}  # validation accuracy on D2L's Hotdog


# ------------------------------------------------------------------------------- one run
@dataclass(frozen=True)
class Spec:
    """One training run of a chapter: what ``course_lib.train.run`` is called with.

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

    @property
    def recipe_fields(self) -> dict:
        return dict(self.fields)

    @property
    def epochs(self) -> int:
        from .train import get_recipe
        return get_recipe(self.recipe, **self.recipe_fields).epochs

    def describe(self) -> str:
        imgs = "all" if self.images is None else f"{self.images:,}"
        return (f"ch{self.chapter} {self.group:9s} {self.label:34s} seed {self.seed}  {self.dataset} "
                f"{imgs} images, {self.epochs} epochs, recipe {self.recipe}, init {self.init}"
                + ("" if self.precision == "fp32" else f", {self.precision}"))

    def numerics(self) -> dict:
        """precision, channels_last, compile as they enter the run's configuration."""
        if self.precision != "auto":
            return {"precision": self.precision, "channels_last": self.channels_last, "compile": False}
        from .device import RunSettings, pick_device
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


def study(chapter: str, profile: str) -> list[Spec]:
    """The runs of one chapter under one profile, in the chapter's order."""
    check_profile(profile)
    chapter = check_chapter(chapter)
    out: list[Spec] = []
    if chapter == "06":
        s = SCALES["06"][profile]
        for seed in s["seeds"]:
            for name in TABLE1:
                out.append(Spec("06", "table", name, name, "report", seed, 10 + seed, **_cifar(s),
                                fields=_fields(epochs=s["epochs"])))
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
        for seed in s["seeds"]:
            for name in TABLE2:
                out.append(Spec("07", "table", name, name, "report", seed, 30 + seed, **_cifar(s),
                                fields=_fields(epochs=s["epochs"])))
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
# They train with bfloat16 autocast and channels-last (course_lib.device) and live beside the
# report-recipe runs above, which stay as the chapters' lesson on recipes.
PROBE_LRS = (0.05, 0.1, 0.2)        # the peak rates the 1-epoch probe tries
# the peak rate the probe chose (None until it has run). Probe, 45,000 images, 1 epoch, seed 0,
# bf16 (results/cpu, group 'probe'): validation accuracy 52.84 % at 0.05, 46.34 % at 0.1, 41.92 % at 0.2.
# The best rate is the lowest tried; a 1-epoch probe favours small rates, and chapter 6 says so.
STUDY_LR = 0.05
MAIN_ARMS = ("ResNet-14-0s1x64d", "ResNeSt-14-0s1x64d", "ResNeSt-14-2s1x64d")
PROBE_MODEL = "ResNeSt-14-2s1x64d"
STUDY_SCALES = {
    "smoke": dict(**SMOKE, epochs=1, seeds=(0,), extra_seeds=(), probe=dict(**SMOKE),
                  precision_check=dict(**SMOKE, epochs=1, seeds=(0,))),
    "cpu": dict(images=None, epochs=10, seeds=(0, 1, 2), extra_seeds=(3, 4, 5), probe=dict(images=None),
                precision_check=dict(images=10_000, epochs=5, seeds=(0, 1))),
    "full": dict(images=None, epochs=20, seeds=(0, 1, 2), extra_seeds=(3, 4, 5), probe=dict(images=None),
                 precision_check=None),
}
STUDY_NUMERICS = {"smoke": dict(precision="bf16", channels_last=True),
                  "cpu": dict(precision="bf16", channels_last=True),
                  "full": dict(precision="auto", channels_last=True)}


def _steps_per_epoch(images: int | None, batch_size: int = 256) -> int:
    n = 45_000 if images is None else images
    return max(1, -(-n // batch_size))


def protocol(chapter: str, profile: str) -> list[Spec]:
    """The study runs of one chapter under one profile (see STUDY_SCALES)."""
    check_profile(profile)
    chapter = check_chapter(chapter)
    s, num = STUDY_SCALES[profile], STUDY_NUMERICS[profile]
    out: list[Spec] = []
    if chapter != "06":
        return out
    # 1 epoch at each peak rate, warm-up over its first half, then cosine to zero
    p = s["probe"]
    for lr in PROBE_LRS:
        out.append(Spec("06", "probe", f"{PROBE_MODEL}, peak lr {lr}", PROBE_MODEL, "study", 0, 1,
                        **_cifar(p), **num,
                        fields=_fields(epochs=1, lr=lr, warmup_steps=_steps_per_epoch(p["images"]) // 2)))
    if STUDY_LR is None:
        return out  # the rest waits for the probe's choice
    c = s["precision_check"]
    if c:  # the same runs in float32 and in bfloat16 (warm-up 1 epoch: 200 steps in all)
        for seed in c["seeds"]:
            for prec, cl in (("fp32", False), ("bf16", True)):
                out.append(Spec("06", "precision", f"{PROBE_MODEL}, {prec}", PROBE_MODEL, "study", seed, 2,
                                **_cifar(c), precision=prec, channels_last=cl,
                                fields=_fields(epochs=c["epochs"], lr=STUDY_LR,
                                               warmup_steps=_steps_per_epoch(c["images"]))))
    for seed in s["seeds"]:
        for name in TABLE1:
            out.append(Spec("06", "study", name, name, "study", seed, 10 + seed, **_cifar(s), **num,
                            fields=_fields(epochs=s["epochs"], lr=STUDY_LR)))
    for seed in s["extra_seeds"]:
        for name in MAIN_ARMS:
            out.append(Spec("06", "study", name, name, "study", seed, 80 + seed, **_cifar(s), **num,
                            fields=_fields(epochs=s["epochs"], lr=STUDY_LR)))
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
    """Records of a profile: ``directory`` if given, else results/<profile>/ (smoke: runs/results/smoke/)."""
    if directory:
        return Path(directory).expanduser()
    check_profile(profile)
    if profile == "smoke":
        return res.runs_dir() / "results" / "smoke"
    return res.results_dir() / profile


def checkpoints_dir(profile: str) -> Path:
    return res.runs_dir() / "checkpoints" / profile


def notebooks_dir(profile: str) -> Path:
    return res.runs_dir() / "notebooks" / profile


# ------------------------------------------------------------------------------- configuration and records
def _recipe(spec: Spec):
    from .train import get_recipe
    return get_recipe(spec.recipe, **spec.recipe_fields)


def _num_classes(spec: Spec) -> int:
    from .train import DATASETS
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


def _factory(spec: Spec, profile: str | None, directory=None, *, weights: bool = True):
    """(model argument of run(), its name): a name, or a function that builds the initialised model."""
    from .resnest import create_model
    if spec.init == "scratch":
        return spec.model, None
    if spec.init == "imagenet":
        return (lambda: create_model(spec.model, num_classes=_num_classes(spec), pretrained=weights)), \
            f"{spec.model} (ImageNet weights)"
    pre = _pretrain_spec(spec)
    tag = run_key(pre)

    def build():
        if weights:
            model = pretrained_model(pre, profile, directory)
        else:  # the same network without the weights (for the configuration's architecture hash)
            from .train import build_model
            model = build_model(pre.model, _num_classes(pre), _recipe(pre).drop_rate)
        model.reset_classifier(_num_classes(spec))
        return model
    return build, f"{spec.model} (CIFAR-10 weights {tag})"


def run_config(spec: Spec) -> dict:
    """The configuration ``course_lib.train.run`` keys this run's record with."""
    import hashlib
    from .device import seed_everything
    from .train import DATASETS, run_config as engine_config
    model, name = _factory(spec, None, weights=False)
    arch = None
    if not isinstance(model, str):
        seed_everything(spec.seed)
        arch = hashlib.sha256(repr(model()).encode()).hexdigest()[:12]
    val_size = DATASETS[spec.dataset]["val_size"] if spec.val_size is None else spec.val_size
    return engine_config(name or model, _recipe(spec), dataset=spec.dataset, images=spec.images,
                         val_size=val_size, split_seed=0, test_images=spec.test_images,
                         image_size=spec.image_size, seed=spec.seed, num_classes=_num_classes(spec),
                         overrides={}, arch=arch, **spec.numerics())


_KEYS: dict = {}


def run_key(spec: Spec) -> str:
    if spec not in _KEYS:
        _KEYS[spec] = res.config_key(run_config(spec))
    return _KEYS[spec]


def find(spec: Spec, directory) -> dict | None:
    """The stored record of a run (any status), or None."""
    return res.find_record(run_config(spec), directory)


def pretrained_model(pre: Spec, profile: str | None, directory=None):
    """The model of a finished pretraining run, with its weights (retrained when its checkpoint is gone)."""
    from .train import load_model, run
    directory = results_dir(profile, directory) if profile else directory
    record = find(pre, directory)
    ckpts = checkpoints_dir(profile) if profile else None
    try:
        if record is None or record.get("status") != "finished":
            raise ValueError("not trained yet")
        return load_model(record, runs_dir=ckpts)
    except ValueError:
        record = train_one(pre, profile, directory, force=record is not None)
        return load_model(record, runs_dir=ckpts)


# ------------------------------------------------------------------------------- training
def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def log(directory: Path, text: str) -> None:
    """Append one line to <results>/LOG.md (created with a header)."""
    path = Path(directory) / "LOG.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("# Training log\n\nOne line per run started or finished by "
                        "`python -m course_lib.experiments`: time, run, outcome, wall time.\n\n")
    with path.open("a") as fh:
        fh.write(f"- {_now()}  {text}\n")


def train_one(spec: Spec, profile: str, directory=None, *, force: bool = False, progress: bool = False) -> dict:
    """Train one run (or reuse its finished record); the record is written every epoch."""
    from .train import run
    directory = results_dir(profile, directory)
    found = find(spec, directory)
    if found and found.get("status") == "finished" and not force:
        return found
    model, name = _factory(spec, profile, directory)
    log(directory, f"start  {spec.describe()}")
    t0 = time.perf_counter()

    def on_epoch(epoch, entry, history):
        val = "-" if entry["val_acc"] is None else f"{entry['val_acc']:.4f}"
        print(f"    epoch {epoch}/{spec.epochs}: train loss {entry['train_loss']:.4f}, train acc "
              f"{entry['train_acc']:.4f}, val acc {val}, {entry['seconds']:.0f} s", flush=True)
    try:
        record = run(model, spec.recipe, dataset=spec.dataset, images=spec.images, val_size=spec.val_size,
                     test_images=spec.test_images, image_size=spec.image_size, seed=spec.seed, name=name,
                     results_dir=directory, runs_dir=checkpoints_dir(profile), force=force, progress=progress,
                     callback=on_epoch, raise_on_divergence=False, **spec.numerics(), **spec.recipe_fields)
    except BaseException as err:  # noqa: BLE001 - log the interruption, then let it go on
        log(directory, f"stopped {spec.label} seed {spec.seed}: {type(err).__name__} "
                       f"after {time.perf_counter() - t0:.0f} s (resumes from its checkpoint)")
        raise
    acc = record.get("test_acc")
    log(directory, f"{record['status']:8s} {spec.label} seed {spec.seed}: test acc "
                   f"{'-' if acc is None else f'{acc:.4f}'}, {record.get('wall_seconds') or 0:.0f} s of training "
                   f"({time.perf_counter() - t0:.0f} s in this session)")
    return record


LATENCY_FILE = "latency.json"
LATENCY = {"smoke": dict(batch_size=2, warmup=0, repeats=1),
           "cpu": dict(batch_size=64, warmup=2, repeats=9),
           "full": dict(batch_size=256, warmup=10, repeats=50)}


def latency_models(chapter: str) -> tuple[str, ...]:
    return {"06": TABLE1, "07": TABLE2}.get(check_chapter(chapter), ())


def load_latency(profile: str, directory=None) -> dict:
    path = results_dir(profile, directory) / LATENCY_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def measure_latencies(chapter: str, profile: str, directory=None, *, force: bool = False) -> dict:
    """Parameters, multiply-adds and inference latency of a chapter's models (10 classes, 32x32),
    stored in <results>/latency.json; a chapter already measured is kept unless ``force``.

    On a GPU (the full profile): elapsed time per batch (``course_lib.latency.measure_latency``).
    On a CPU: one thread and the CPU time of this process, all the chapter's models
    measured together, their order rotating every repeat (``course_lib.bench.compare``):
    other programs on a shared machine inflate elapsed time, not this process's CPU time.
    """
    import statistics
    import torch
    from .bench import compare
    from .device import RunSettings, hardware, pick_device
    from .latency import count_macs, count_params, measure_latency
    from .resnest import create_model
    directory = results_dir(profile, directory)
    table = load_latency(profile, directory)
    names = latency_models(chapter)
    if not names or (all(n in table for n in names) and not force):
        return table
    opts = LATENCY[profile]
    settings = RunSettings.for_device(pick_device())
    models = {n: create_model(n, num_classes=10, drop_rate=0.2).eval() for n in names}
    out = {n: {"params": count_params(m), "macs": count_macs(m, (3, 32, 32))} for n, m in models.items()}
    if settings.device.type != "cpu":
        for n, m in models.items():
            out[n]["latency"] = measure_latency(m, input_size=(3, 32, 32), settings=settings, **opts)
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            x = torch.randn(opts["batch_size"], 3, 32, 32, generator=torch.Generator().manual_seed(0))

            def forward(m):
                def call():
                    with torch.inference_mode():
                        m(x)
                return call
            times = compare({n: forward(m) for n, m in models.items()}, opts["repeats"], opts["warmup"], "cpu")
        finally:
            torch.set_num_threads(threads)
        for n in names:
            batch_s = statistics.median(times[n])
            out[n]["latency"] = {
                "mode": "inference", "clock": "CPU time of the process, 1 thread", "batch_size": opts["batch_size"],
                "input_size": [3, 32, 32], "warmup": opts["warmup"], "repeats": opts["repeats"],
                "ms_per_batch": 1000 * batch_s, "ms_per_image": 1000 * batch_s / opts["batch_size"],
                "img_per_s": opts["batch_size"] / batch_s, "times_ms": [round(1000 * t, 3) for t in times[n]],
                "device": "cpu", "precision": "fp32", "channels_last": False,
                "hardware": {**hardware(torch.device("cpu")), "torch_threads": 1}}
    for n in names:
        out[n]["measured"] = _now()
        table[n] = out[n]
        print(f"  latency {n}: {out[n]['latency']['ms_per_image']:.3f} ms/image "
              f"(batch {opts['batch_size']})", flush=True)
    res.write_json(directory / LATENCY_FILE, table)
    return table


@contextlib.contextmanager
def _run_lock(spec: Spec, profile: str):
    """True while this process holds the run's lock file (flock: released when the process dies)."""
    import fcntl
    path = checkpoints_dir(profile) / f"{run_key(spec)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def train(profile: str, chapter: str | None = None, directory=None, *, dry_run: bool = False,
          groups=None) -> list[dict]:
    """Train every missing run of a profile in priority order (latencies last); returns the records."""
    directory = results_dir(profile, directory)
    specs = all_specs(profile, chapter, groups)
    if dry_run:
        for s in specs:
            rec = find(s, directory)
            print(("done    " if rec and rec.get("status") == "finished" else "missing ") + s.describe())
        return []
    out = []
    for i, s in enumerate(specs, 1):
        rec = find(s, directory)
        if rec and rec.get("status") == "finished":
            out.append(rec)
            continue
        with _run_lock(s, profile) as mine:
            if not mine:
                print(f"[{i}/{len(specs)}] skipped, another process is training it: {s.describe()}", flush=True)
                continue
            print(f"[{i}/{len(specs)}] {s.describe()}", flush=True)
            out.append(train_one(s, profile, directory))
    # latencies last: training comes first on a busy machine (``latency`` measures them on their own)
    for ch in [] if groups else ([check_chapter(chapter)] if chapter else list(CHAPTERS)):
        measure_latencies(ch, profile, directory)
    return out


# ------------------------------------------------------------------------------- rerunning one record
def read_record(path) -> dict:
    """A record from disk, checked: valid JSON, a configuration, and a key that matches it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"{path}: no such record file")
    try:
        rec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a valid JSON record ({err}): restore it from git or delete it") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("config"), dict) or "key" not in rec:
        raise ValueError(f"{path} is not a run record: it has no 'config' and 'key'")
    if res.config_key(rec["config"]) != rec["key"]:
        raise ValueError(f"{path}: its key {rec['key']} does not match its configuration "
                         f"({res.config_key(rec['config'])}): the record was edited or damaged")
    return rec


def spec_of(key: str) -> tuple[Spec, str] | None:
    """The (spec, profile) of the book's run with this key, or None."""
    for profile in PROFILES:
        for ch in CHAPTERS:
            for s in (*study(ch, profile), *protocol(ch, profile)):
                if run_key(s) == key:
                    return s, profile
    return None


def rerun(path, *, workdir=None, progress: bool = False) -> dict:
    """Train the run of a stored record again, in a scratch folder, and compare it with the record.

    Returns {stored, new, test_acc difference, identical, seed spread of its siblings}.
    """
    import tempfile
    from .train import run
    path = Path(path).expanduser()
    rec = read_record(path)
    cfg = rec["config"]
    work = Path(workdir or tempfile.mkdtemp(prefix="rerun-"))
    found = spec_of(rec["key"])
    if found:
        spec, profile = found
        model, name = _factory(spec, profile, path.parent)
    elif cfg.get("arch") is None:
        model, name = cfg["model"], None
    else:
        raise ValueError(f"{path}: this run trained a model object ({cfg['model']}) that is not one of the "
                         "book's runs, so it cannot be rebuilt from the record alone")
    new = run(model, dict(cfg["recipe"]), dataset=cfg["dataset"], images=cfg["images"],
              val_size=cfg["val_size"], split_seed=cfg["split_seed"], test_images=cfg["test_images"],
              image_size=cfg["image_size"], seed=cfg["seed"], name=name, num_classes=cfg["num_classes"],
              model_overrides=cfg.get("overrides") or None, precision=cfg.get("precision", "fp32"),
              channels_last=cfg.get("channels_last", False), compile=cfg.get("compile", False),
              results_dir=work / "results", runs_dir=work / "runs", force=True, progress=progress,
              raise_on_divergence=False)
    if new["key"] != rec["key"]:
        raise ValueError(f"rerun of {path} produced another configuration ({new['key']} != {rec['key']}): "
                         "the code that builds this run has changed since it was recorded")
    siblings = [r.get("test_acc") for r in res.iter_records(path.parent)
                if r.get("status") == "finished" and r["key"] != rec["key"]
                and res.group_key(r["config"]) == res.group_key(cfg)]
    spread = None
    if len(siblings) + 1 >= 2 and rec.get("test_acc") is not None:
        import statistics
        spread = statistics.stdev([rec["test_acc"], *siblings])
    same = [h.get("train_loss") for h in rec.get("history", [])] == [h.get("train_loss") for h in new["history"]]
    out = {"record": str(path), "stored_test_acc": rec.get("test_acc"), "new_test_acc": new.get("test_acc"),
           "difference": None if rec.get("test_acc") is None or new.get("test_acc") is None
           else new["test_acc"] - rec["test_acc"],
           "identical": same and new.get("test_acc") == rec.get("test_acc"),
           "seed_std": spread, "seeds_in_spread": len(siblings) + 1, "new_record": str(
               res.record_path(new["config"], work / "results"))}
    return out


def rerun_text(out: dict) -> str:
    """What ``rerun`` prints: the stored and the new accuracy, and how far apart they are."""
    if out["difference"] is None:
        return f"{out['record']}: no test accuracy to compare (stored {out['stored_test_acc']}, new {out['new_test_acc']})"
    lines = [f"record:  {out['record']}",
             f"stored test accuracy {100 * out['stored_test_acc']:.2f} %, rerun {100 * out['new_test_acc']:.2f} %, "
             f"difference {100 * out['difference']:+.2f} points"]
    if out["identical"]:
        lines.append("the rerun is identical: same training losses at every epoch, same test accuracy")
    elif out["seed_std"]:
        k = abs(out["difference"]) / out["seed_std"]
        lines.append(f"seed std of this configuration ({out['seeds_in_spread']} seeds): "
                     f"{100 * out['seed_std']:.2f} points; the difference is {k:.2f} of it "
                     + ("(within the seed spread)" if k <= 2 else "(OUTSIDE twice the seed spread)"))
    else:
        lines.append("no other seed of this configuration is stored, so there is no seed spread to judge by")
    lines.append(f"new record: {out['new_record']}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- reading results
def open_chapter(chapter: str, profile: str, train_missing: bool = False, results: str = ""):
    """A chapter's first cell: its records folder, the missing runs trained if asked, what it shows.

    Prints the chapter's setting (data, scale, seeds, hardware, command) and returns
    ``(results folder, runs table, latency records)``.
    """
    directory = results_dir(profile, results or None)
    if train_missing:
        train(profile, chapter, directory)
    runs = collect(chapter, profile, directory)
    print(f"Profile '{profile}':")
    print(setting(runs, profile, chapter))
    return directory, runs, load_latency(profile, directory)


def collect(chapter: str, profile: str, directory=None):
    """One row per run of the chapter: spec fields + record fields (None where not finished).

    A record still being written (status 'running') counts as missing, so what a chapter
    shows depends on finished, committed records only.
    """
    import pandas as pd
    directory = results_dir(profile, directory)
    rows = []
    for s in study(chapter, profile):
        rec = find(s, directory) or {}
        if rec.get("status") != "finished":
            rec = {}
        hw = rec.get("hardware") or {}
        rows.append({"group": s.group, "label": s.label, "model": s.model, "recipe": s.recipe, "seed": s.seed,
                     "dataset": s.dataset, "images": s.images, "epochs": s.epochs, "init": s.init,
                     "status": rec.get("status", "missing"), "test_acc": rec.get("test_acc"),
                     "val_acc": rec.get("val_acc"), "params": rec.get("params"),
                     "train_images": _train_images(s), "wall_seconds": rec.get("wall_seconds"),
                     "hardware": _hardware_text(hw, rec.get("settings") or {})})
    return pd.DataFrame(rows)


def _train_images(spec: Spec) -> int | None:
    if spec.images is not None:
        return spec.images
    return {"cifar10": 50_000 - (5_000 if spec.val_size is None else spec.val_size), "hotdog": None}[spec.dataset]


def _hardware_text(hw: dict, settings: dict) -> str:
    if not hw:
        return ""
    what = hw.get("gpu") or f"{hw.get('cpu') or 'CPU'} ({hw.get('torch_threads')} threads)"
    return f"{what}, {settings.get('precision', 'float32')}"


def missing(chapter: str, profile: str, directory=None) -> list[Spec]:
    directory = results_dir(profile, directory)
    return [s for s in study(chapter, profile) if (find(s, directory) or {}).get("status") != "finished"]


def welch(a, b) -> dict:
    """Welch's t-test of two samples (unequal variances): difference of means, t, degrees of freedom, p."""
    import numpy as np
    from scipy import stats
    a, b = np.asarray(a, float), np.asarray(b, float)
    t = stats.ttest_ind(a, b, equal_var=False)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if va + vb > 0 else float("nan")
    return {"diff": a.mean() - b.mean(), "t": float(t.statistic), "df": float(df), "p": float(t.pvalue)}


DATASET_NAMES = {"cifar10": "CIFAR-10 (the book's JPEG copy)",
                 "hotdog": "hotdog64 (64x64 Food-101 photos, 1,598 train / 400 test; not D2L's Hotdog)"}
# with internet (the full profile) the hotdog loader finds or downloads D2L's own set
DATASET_NAMES_FULL = {**DATASET_NAMES, "hotdog": "D2L's Hotdog (2,000 train / 800 test photos, resized to 224x224)"}


def setting(rows, profile: str, chapter: str) -> str:
    """Where the figures of ``rows`` (from :func:`collect`) come from: data, images, epochs, seeds, hardware."""
    lines = []
    for (group, dataset, images, epochs, recipe), part in rows.groupby(
            ["group", "dataset", "train_images", "epochs", "recipe"], sort=False, dropna=False):
        done = part[part.status == "finished"]
        imgs = "all" if images != images or images is None else f"{int(images):,}"
        seeds = ", ".join(str(v) for v in sorted(part.seed.unique()))
        names = DATASET_NAMES_FULL if profile == "full" else DATASET_NAMES
        lines.append(f"- {group}: {names[dataset]}, {imgs} training images, {epochs} epochs, "
                     f"'{recipe}' recipe, seeds {seeds}; {len(done)} of {len(part)} runs finished")
    hw = sorted({h for h in rows.hardware if h})
    lines.append(f"- hardware: {'; '.join(hw) if hw else 'no finished run yet'}")
    lines.append(f"- reproduce: {command(profile, chapter)}  (or: make experiments PROFILE={profile})")
    return "\n".join(lines)


def missing_text(rows, profile: str, chapter: str) -> str:
    todo = rows[rows.status != "finished"]
    if todo.empty:
        return f"All {len(rows)} runs of this chapter's '{profile}' profile are finished."
    names = "\n".join(f"  - {label}: seed{'s' if len(p) > 1 else ''} {', '.join(map(str, p.seed))}"
                      for label, p in todo.groupby("label", sort=False))
    return (f"{len(todo)} of {len(rows)} runs of the '{profile}' profile have no finished record yet, "
            f"so no figure is shown for them:\n{names}\nProduce them with:\n  {command(profile, chapter)}")


def summary(rows, latency: dict | None = None, report: dict | None = None, group: str = "table"):
    """One row per model of a group: parameters, latency, accuracy mean ± std over seeds, and the report's."""
    import pandas as pd
    latency, report = latency or {}, report or {}
    out = []
    for label, part in rows[rows.group == group].groupby("label", sort=False):
        done = part[part.status == "finished"]
        acc = done.test_acc.astype(float)
        lat = (latency.get(part.model.iloc[0]) or {}).get("latency") or {}
        params = done.params.iloc[0] if len(done) else (latency.get(part.model.iloc[0]) or {}).get("params")
        rep = report.get(label)
        out.append({
            "model": label,
            "params (M)": None if params is None else round(params / 1e6, 2),
            "ms / image": None if not lat else round(lat["ms_per_image"], 3),
            "img/s": None if not lat else round(lat["img_per_s"]),
            "accuracy %": res.mean_std(acc.mean(), acc.std() if len(acc) > 1 else None) if len(acc) else "-",
            "seeds": len(acc),
            "report params (M)": rep[0] if rep else None,
            "report ms / img/s": f"{rep[1]:.4f} / {rep[2]}" if rep else "-",
            "report accuracy %": f"{rep[3]:.2f}" if rep else "-",
        })
    return pd.DataFrame(out).set_index("model")


def compare(rows, pairs, group: str = "table"):
    """Each pair (a, b): difference of mean test accuracy, pooled seed std, Welch's t-test."""
    import math
    import pandas as pd
    done = rows[(rows.group == group) & (rows.status == "finished")]
    out = []
    for a, b in pairs:
        xa = done[done.label == a].test_acc.astype(float).values * 100
        xb = done[done.label == b].test_acc.astype(float).values * 100
        row = {"comparison": f"{a} - {b}", "seeds": f"{len(xa)} / {len(xb)}"}
        if len(xa) < 2 or len(xb) < 2:
            row.update({"difference (pp)": None, "pooled std (pp)": None, "Welch t": None, "p": None,
                        "verdict": "needs >= 2 seeds of each"})
        else:
            w = welch(xa, xb)
            pooled = math.sqrt((xa.var(ddof=1) + xb.var(ddof=1)) / 2)
            row.update({"difference (pp)": round(w["diff"], 2), "pooled std (pp)": round(pooled, 2),
                        "Welch t": round(w["t"], 2), "p": round(w["p"], 3),
                        "verdict": "larger than the seed spread (p < 0.05)" if w["p"] < 0.05
                        else "within the seed spread"})
        out.append(row)
    return pd.DataFrame(out).set_index("comparison")


def command(profile: str, chapter: str) -> str:
    """The shell command that produces a chapter's runs of a profile."""
    return f"python -m course_lib.experiments train --profile {profile} --chapter {chapter}"


# ------------------------------------------------------------------------------- notebooks through papermill
def notebook_params(chapter: str, profile: str, extra: dict | None = None, directory=None) -> dict:
    """Validated papermill parameters of a chapter (ValueError lists the allowed ones)."""
    from .nbparams import validate
    path = REPO / CHAPTERS[check_chapter(chapter)]
    params = {"PROFILE": profile, "TRAIN": True, **(extra or {})}
    if directory is not None:
        params["RESULTS"] = str(directory)
    elif profile == "smoke" and "RESULTS" not in params:
        params["RESULTS"] = str(results_dir("smoke"))
    return validate(path, params)


def run_notebooks(profile: str, chapter: str | None = None, extra: dict | None = None, directory=None,
                  timeout: float | None = None) -> list[dict]:
    """Execute the chapters with papermill; every chapter's parameters are validated before any runs."""
    from .nbparams import run as nb_run
    chapters = [check_chapter(chapter)] if chapter else list(CHAPTERS)
    params = {ch: notebook_params(ch, profile, extra, directory) for ch in chapters}
    out_dir = notebooks_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for ch in chapters:
        src = REPO / CHAPTERS[ch]
        dest = out_dir / src.name
        print(f"chapter {ch}: papermill {src.name} -> {dest} with {params[ch]}", flush=True)
        outcome = nb_run(src, dest, params[ch], timeout=timeout or TIMEOUTS[profile], cwd=src.parent)
        outcome.update(chapter=ch, notebook=str(dest))
        print(f"chapter {ch}: {outcome['status']} in {outcome['seconds']} s {outcome['error']}", flush=True)
        outcomes.append(outcome)
    return outcomes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.experiments", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "execute the chapters with papermill (TRAIN=True)"),
                       ("train", "train the missing runs directly, no notebooks (resumable)"),
                       ("list", "show which runs are done and which are missing"),
                       ("latency", "measure the chapters' parameters, multiply-adds and latency only")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--profile", required=True, help=f"one of {', '.join(PROFILES)}")
        p.add_argument("--chapter", default=None, help=f"one of {', '.join(CHAPTERS)} (default: all)")
        p.add_argument("--results", default=None, help="records folder (default results/<profile>/; "
                                                       "smoke: runs/results/smoke/)")
        if name in ("train", "list"):
            p.add_argument("--group", action="append", default=None,
                           help="only the runs of this group (repeatable), e.g. probe, precision, study")
        if name == "run":
            p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                           help="another notebook parameter, checked against the notebook's allowed values")
            p.add_argument("--timeout", type=float, default=None, help="seconds per chapter")
    p = sub.add_parser("rerun", help="train the run of one record again and compare the result with it")
    p.add_argument("record", help="a record file, e.g. results/cpu/<model>_cifar10_seed0_<key>.json")
    p.add_argument("--workdir", default=None, help="where the new record and checkpoint go (default: a temp folder)")
    args = parser.parse_args(argv)
    try:
        if args.command == "rerun":
            print(rerun_text(rerun(args.record, workdir=args.workdir, progress=True)))
            return 0
        if args.command == "run":
            outcomes = run_notebooks(args.profile, args.chapter, dict(args.param), args.results, args.timeout)
            return 0 if all(o["status"] == "ok" for o in outcomes) else 1
        check_profile(args.profile)
        if args.command == "latency":
            for ch in ([check_chapter(args.chapter)] if args.chapter else list(CHAPTERS)):
                measure_latencies(ch, args.profile, args.results)
            return 0
        train(args.profile, args.chapter, args.results, dry_run=args.command == "list", groups=args.group)
        return 0
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
