"""The training loop: train a model you built on uint8 tensors, evaluate it, checkpoint it.

``train(model, data, recipe, ...)`` trains on ``{'train', 'val', 'test'}`` splits of
uint8 tensors (see :func:`course_lib.engine.data.load_data`); ``course_lib.engine.runner.run``
adds the data set, the model by name and the run record around it.

Images stay uint8 tensors (N, 3, H, W) until a batch is on the device: there it is
augmented (random crop with padding, horizontal flip), normalised and, on CUDA,
laid out channels-last. Shuffling and augmentation draw from a generator seeded by
(seed, epoch), and dropout from torch's global generator, which checkpoints save:
on the CPU a resumed run ends bitwise equal to an uninterrupted one.

Under torchrun (``course_lib.engine.distributed``) the same function trains one run on
every process with ``DistributedDataParallel``. The recipe's batch is the global batch:
every rank draws the same permutation and the same augmentation numbers for the whole
batch, and takes its own contiguous share of it (``batch_size / world_size`` images), so
the images seen and how they are cropped and flipped are those of a single process.
What differs: batch norm normalises each share with its own statistics (unless
``sync_bn``), and dropout draws from each rank's own generator, seeded by (seed, rank).
Rank 0 writes the checkpoint (with every rank's random state) and calls ``callback``.
"""
from __future__ import annotations

import math

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.cost import count_params
from ..models.pretrained import DamagedFileError, load_torch_file
from . import distributed
from .files import atomic_write, set_aside
from .data import CIFAR10_MEAN, CIFAR10_STD, as_pair, normalize
from .device import RunSettings, deterministic, pick_device, rng_state, set_rng_state
from .recipes import Recipe, Schedule, get_recipe


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite: the run stopped (its last good epoch is checkpointed)."""

    def __init__(self, epoch: int, step: int, steps: int, lr: float, loss: float):
        self.epoch, self.step, self.lr, self.loss = epoch, step, lr, loss
        super().__init__(
            f"training diverged at epoch {epoch}, step {step}/{steps}: the loss is {loss} "
            f"(learning rate {lr:.3g}). Try a smaller lr (e.g. {lr / 4:.3g}), a longer warm-up "
            f"(warmup_epochs), gradient clipping (grad_clip=1.0) or float32 (no mixed precision).")


# A run ends "diverged" also when its loss exploded but stayed finite: its last epoch's training loss
# is more than this many nats above ln(classes), the loss of a uniform guess (it does worse on its own
# training data than guessing: the weights blew up), or a final loss overflowed.
EXPLODED_MARGIN = 0.5


class LossExplodedError(DivergenceError):
    """The run finished its epochs, but its loss exploded without becoming NaN (see :func:`loss_exploded`)."""

    def __init__(self, reason: str):
        RuntimeError.__init__(self, reason)


def loss_exploded(history: list, num_classes: int, final: dict | None = None) -> str | None:
    """Why a run that finished its epochs has in fact diverged, or None if it has not.

    ``final``: the last losses measured after training (e.g. {"test_loss": ...}). Diverged when a
    loss is infinite or NaN, or the last epoch's training loss is above ln(num_classes) + EXPLODED_MARGIN.
    """
    losses = {**({f"epoch {history[-1]['epoch']} {k}": history[-1].get(k) for k in ("train_loss", "val_loss")}
                 if history else {}), **(final or {})}
    bad = [f"{name} = {value}" for name, value in losses.items() if value is not None and not math.isfinite(value)]
    if bad:
        return f"the loss overflowed: {', '.join(bad)}. Try a smaller lr or a longer warm-up."
    chance = math.log(num_classes)
    last = history[-1]["train_loss"] if history else None
    if last is not None and num_classes > 1 and last > chance + EXPLODED_MARGIN:
        return (f"the loss exploded without becoming NaN: the last epoch's training loss {last:.3g} is above "
                f"ln({num_classes}) = {chance:.3g}, the loss of a uniform guess, by more than {EXPLODED_MARGIN} "
                "(the model does worse than guessing on its own training data). Try a smaller lr (e.g. a quarter), "
                "a longer warm-up (warmup_epochs) or gradient clipping (grad_clip=1.0).")
    return None


# --------------------------------------------------------------------------- batches on the device
def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None,
                offsets: torch.Tensor | None = None) -> torch.Tensor:
    """Zero-pad (B, C, H, W) by ``padding`` and cut a random H x W window per image.

    ``offsets`` (B, 2), each in [0, 2 * padding], are the windows' corners when drawn already.
    """
    b, c, h, w = x.shape
    if offsets is None:
        offsets = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator)
    off = offsets.to(x.device)                                                             # (B, 2)
    xp = F.pad(x, (padding,) * 4)                                                          # (B, C, H+2p, W+2p)
    rows = off[:, :1] + torch.arange(h, device=x.device)                                   # (B, H)
    cols = off[:, 1:] + torch.arange(w, device=x.device)                                   # (B, W)
    bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    ci = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return xp[bi, ci, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None,
                flips: torch.Tensor | None = None) -> torch.Tensor:
    """Mirror each image of (B, C, H, W) left-right with probability 1/2 (or where ``flips``, (B,), is True)."""
    if flips is None:
        flips = torch.rand(x.shape[0], generator=generator) < 0.5
    flip = flips.to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def _boxes_as_grid(boxes: torch.Tensor, shape) -> torch.Tensor:
    """Sampling grid of boxes (B, 4) = (width, height, centre x, centre y), as fractions of the image."""
    w, h, cx, cy = boxes.unbind(1)                                                         # (B,) each
    zero = torch.zeros_like(w)
    theta = torch.stack([torch.stack([w, zero, 2 * cx - 1], 1),
                         torch.stack([zero, h, 2 * cy - 1], 1)], 1)                       # (B, 2, 3)
    return F.affine_grid(theta, list(shape), align_corners=False)                         # (B, H, W, 2)


def crop_resize(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Cut one box per image of (B, C, H, W) and resize it to H x W (bilinear); float output, same value range."""
    grid = _boxes_as_grid(boxes.to(x.device, torch.float32), x.shape)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def resized_crop_boxes(n: int, generator: torch.Generator | None = None, scale=(0.08, 1.0),
                       ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """(n, 4) random boxes: area a fraction ``scale`` of the image, aspect (w/h) in ``ratio``, inside it.

    torchvision's RandomResizedCrop retries a box that does not fit; here its sides are clipped to the image.
    """
    area = torch.empty(n).uniform_(*scale, generator=generator)
    aspect = torch.exp(torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator))
    w, h = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    u = torch.rand(n, 2, generator=generator)
    cx, cy = w / 2 + u[:, 0] * (1 - w), h / 2 + u[:, 1] * (1 - h)
    return torch.stack([w, h, cx, cy], 1)


def center_crop_resize(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """The central ``fraction`` of each side, resized back to the full size (D2L's Resize(256) + CenterCrop(224))."""
    box = torch.tensor([[fraction, fraction, 0.5, 0.5]]).expand(len(x), 4)
    return crop_resize(x, box)


def augmentation_draws(n: int, recipe: Recipe, generator: torch.Generator) -> dict:
    """The random numbers that augment a batch of ``n`` images, in the order ``augment`` draws them.

    Under torchrun every rank draws them for the whole global batch and keeps its share.
    """
    out = {}
    if recipe.crop_padding:
        out["offsets"] = torch.randint(0, 2 * recipe.crop_padding + 1, (n, 2), generator=generator)  # (n, 2)
    if recipe.resized_crop:
        out["boxes"] = resized_crop_boxes(n, generator)                                              # (n, 4)
    if recipe.flip:
        out["flips"] = torch.rand(n, generator=generator) < 0.5                                      # (n,)
    return out


def augment(x: torch.Tensor, recipe: Recipe, generator: torch.Generator | None = None,
            draws: dict | None = None) -> torch.Tensor:
    """Crop and flip as the recipe says, drawing from ``generator`` (or with ``draws``, see augmentation_draws)."""
    draws = augmentation_draws(len(x), recipe, generator) if draws is None else draws
    if recipe.crop_padding:
        x = random_crop(x, recipe.crop_padding, offsets=draws["offsets"])
    if recipe.resized_crop:
        x = crop_resize(x, draws["boxes"])
    return random_flip(x, flips=draws["flips"]) if recipe.flip else x


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Index batches over range(n), shuffled when a generator is given; a last batch of 1 is dropped."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    out = list(order.split(batch_size))
    if generator is not None and len(out) > 1 and len(out[-1]) < 2:
        out.pop()  # batch norm cannot train on a single image
    return out


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's shuffle and augmentation: a function of (seed, epoch) only."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


# --------------------------------------------------------------------------- training
def _classifier(model: nn.Module) -> nn.Module:
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Module) or not list(head.parameters()):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        head = linears[-1] if linears else None
    if head is None:
        raise ValueError("head_lr_mult != 1 needs a classifier: the model has no get_classifier() and no nn.Linear")
    return head


def freeze_body(model: nn.Module) -> None:
    """Fix every parameter but the classifier's (a linear probe); see :func:`train_mode` for batch norm."""
    head = {id(p) for p in _classifier(model).parameters()}
    for p in model.parameters():
        if id(p) not in head:
            p.requires_grad_(False)


def train_mode(model: nn.Module, recipe: Recipe) -> None:
    """``model.train()``; with ``freeze_body`` the body stays in eval mode (batch norm keeps its statistics)."""
    if not recipe.freeze_body:
        model.train()
        return
    model.eval()
    _classifier(model).train()


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.SGD:
    """SGD with momentum; the classifier gets lr * head_lr_mult when that is not 1."""
    if recipe.freeze_body:
        freeze_body(model)
    groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    if recipe.head_lr_mult != 1:
        head = {id(p) for p in _classifier(model).parameters()}
        groups = [{"params": [p for p in groups[0]["params"] if id(p) not in head]},
                  {"params": [p for p in groups[0]["params"] if id(p) in head], "lr": recipe.lr * recipe.head_lr_mult}]
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                           weight_decay=recipe.weight_decay)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, settings: RunSettings | None = None,
             mean=CIFAR10_MEAN, std=CIFAR10_STD, batch_size: int = 500, image_size: int | None = None,
             predictions: bool = False, context: distributed.Context | None = None, crop: float = 1.0) -> dict:
    """Mean cross-entropy and accuracy of ``model`` on uint8 images (N, 3, H, W).

    ``crop`` < 1: the model sees the central ``crop`` of each side, resized (a recipe's ``test_crop``).
    ``predictions=True`` adds the predicted class of every image (int64 tensor, N).
    With a distributed ``context`` (every rank calls it), each rank evaluates its share
    of the images with rank 0's batch-norm statistics, and the sums are added up.
    """
    ctx = context or distributed.SINGLE
    settings = settings or RunSettings.for_device("cpu")
    was_training = model.training
    ctx.sync_buffers(model)
    model.eval()
    total = len(labels)
    part = ctx.share(total)
    images, labels = settings.to_device(images[part]), settings.to_device(labels[part])
    loss, correct = torch.zeros((), device=settings.device), torch.zeros((), device=settings.device)
    preds = []
    for idx in batch_indices(len(labels), batch_size):
        x = images[idx.to(images.device)]
        x = center_crop_resize(x, crop) if crop < 1 else x
        x, y = _prepare(x, settings, mean, std, image_size), labels[idx.to(labels.device)]
        with settings.autocast():
            logits = model(x).float()                                   # (B, classes)
        loss += F.cross_entropy(logits, y, reduction="sum")
        preds.append(logits.argmax(1))
        correct += (preds[-1] == y).sum()
    model.train(was_training)
    if ctx.distributed:
        loss, correct = ctx.sum_(torch.stack([loss, correct]))
    n = max(total, 1)
    out = {"loss": loss.item() / n, "acc": correct.item() / n}
    if predictions:
        mine = torch.cat(preds).cpu() if preds else torch.zeros(0, dtype=torch.int64)
        out["predictions"] = torch.cat(ctx.gather(mine)) if ctx.distributed else mine
    return out


def labels_sha256(labels: torch.Tensor) -> str:
    """The identity of a test set and its order: sha256 of its labels as uint8 bytes."""
    import hashlib
    return hashlib.sha256(labels.to("cpu", torch.int64).numpy().astype("uint8").tobytes()).hexdigest()


def encode_predictions(predictions: torch.Tensor, labels: torch.Tensor) -> dict:
    """Predicted classes of the test images, compact for a JSON record (base64 of uint8).

    ``labels_sha256`` identifies the test set and its order, so that two records are
    compared image by image (McNemar's test) only when they saw the same images.
    """
    import base64
    p = predictions.to("cpu", torch.int64)
    if len(p) and (int(p.min()) < 0 or int(p.max()) > 255):
        raise ValueError("encode_predictions stores classes 0..255 only")
    return {"encoding": "base64-uint8", "n": len(p),
            "data": base64.b64encode(p.numpy().astype("uint8").tobytes()).decode("ascii"),
            "labels_sha256": labels_sha256(labels)}


def decode_predictions(blob: dict) -> torch.Tensor:
    """The int64 tensor (N,) stored by :func:`encode_predictions`; ValueError if damaged."""
    import base64
    import binascii
    if not isinstance(blob, dict) or blob.get("encoding") != "base64-uint8":
        raise ValueError("test_predictions: expected {'encoding': 'base64-uint8', 'n', 'data'}")
    try:
        raw = base64.b64decode(blob["data"], validate=True)
    except (binascii.Error, KeyError, TypeError) as err:
        raise ValueError(f"test_predictions: the data is not valid base64 ({err})") from None
    if len(raw) != blob.get("n"):
        raise ValueError(f"test_predictions: {len(raw)} predictions stored, the record says {blob.get('n')}")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.int64)


def _prepare(x: torch.Tensor, settings: RunSettings, mean, std, image_size) -> torch.Tensor:
    """uint8 batch on the device -> the float input of the model."""
    x = normalize(x, mean, std)                                          # (B, 3, H, W) float32
    if image_size and x.shape[-1] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return x.contiguous(memory_format=torch.channels_last) if settings.channels_last else x


@dataclass
class _State:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    history: list = field(default_factory=list)
    epoch: int = 0  # completed epochs
    forward: Callable | None = None  # what a training step calls: the model, or torch.compile(model)


def save_checkpoint(path: Path, st: _State, key: str | None = None, rng_ranks: list | None = None) -> None:
    """Everything needed to continue exactly where the run stands, written atomically.

    ``rng_ranks``: under torchrun, every rank's random state (rank 0 writes the file).
    """
    blob = {"key": key, "epoch": st.epoch, "history": st.history, "model": st.model.state_dict(),
            "optimizer": st.optimizer.state_dict(), "scheduler": st.scheduler.state_dict(),
            "scaler": st.scaler.state_dict(), "rng": rng_ranks[0] if rng_ranks else rng_state(),
            "torch": str(torch.__version__), "world_size": len(rng_ranks) if rng_ranks else 1}
    if rng_ranks:
        blob["rng_ranks"] = rng_ranks
    atomic_write(path, lambda fh: torch.save(blob, fh), what="checkpoint")


def read_checkpoint(path: Path) -> dict | None:
    """A checkpoint's contents (torch's safe loader), or None when there is none. A damaged file
    (truncated, empty, overwritten) is set aside as ``<name>.damaged`` with a one-line notice, and
    the run starts from scratch instead of failing at every later start."""
    if not path.exists():
        return None
    try:
        blob = load_torch_file(path)
        if not isinstance(blob, dict) or "model" not in blob or "epoch" not in blob:
            raise DamagedFileError(f"{path} is not a course_lib checkpoint (no 'model' and 'epoch')")
    except DamagedFileError as err:
        set_aside(path, f"cannot be used ({str(err).removeprefix(str(path)).strip(' :')})",
                  then="the run starts again from its first epoch")
        return None
    return blob


def _read_checkpoint(path: Path | None, ctx: distributed.Context):
    """The checkpoint's contents on every rank (rank 0 reads the file), or None."""
    found = path is not None and ctx.is_main
    return ctx.broadcast(read_checkpoint(path) if found else None)


def _restore(blob: dict, st: _State, key: str | None, path: Path, ctx: distributed.Context, seed: int) -> None:
    if key is not None and blob.get("key") not in (None, key):
        raise ValueError(f"checkpoint {path} belongs to another configuration ({blob.get('key')} != {key}): "
                         "delete it or pass force=True")
    st.model.load_state_dict(blob["model"])
    st.optimizer.load_state_dict(blob["optimizer"])
    st.scheduler.load_state_dict(blob["scheduler"])
    st.scaler.load_state_dict(blob["scaler"])
    st.history, st.epoch = blob["history"], blob["epoch"]
    saved = blob.get("world_size", 1)
    if saved == ctx.world_size:
        set_rng_state(blob["rng_ranks"][ctx.rank] if ctx.distributed else blob["rng"])
        return
    warnings.warn(f"checkpoint {path} was written by {saved} process(es) and resumes on {ctx.world_size}: "
                  "weights, optimizer and schedule continue exactly, the shares of each batch and the "
                  "dropout draws do not", stacklevel=3)
    if ctx.distributed:
        torch.manual_seed(distributed.rank_seed(seed, ctx.rank) + st.epoch)
    else:
        set_rng_state(blob["rng"])


def _progress_default(progress):
    import os
    return os.environ.get("COURSE_PROGRESS", "1") != "0" if progress is None else progress


def train(model: nn.Module, data: dict, recipe: str | Recipe | dict = "book", *, settings: RunSettings | None = None,
          device=None, seed: int = 0, checkpoint: str | Path | None = None, key: str | None = None,
          mean=CIFAR10_MEAN, std=CIFAR10_STD, image_size: int | None = None, progress: bool | None = None,
          callback: Callable | None = None, eval_batch_size: int = 500, use_deterministic: bool = True) -> dict:
    """Train ``model`` on ``data = {'train': (images, labels), 'val': ..., 'test': ...}`` (uint8 tensors).

    With ``checkpoint``, the state is saved there after every epoch and a run finds it
    and continues from the last completed epoch. ``callback(epoch, entry, history)``
    runs after each epoch's checkpoint. Returns {history, val_acc, val_loss,
    test_acc, test_loss, params, settings, wall_seconds}. Raises DivergenceError
    on a NaN/inf loss.
    """
    recipe = get_recipe(recipe)
    settings = settings or RunSettings.for_device(pick_device(device))
    ctx = distributed.context(settings.device)
    (xtr, ytr), val, test = as_pair(data["train"]), as_pair(data.get("val")), as_pair(data.get("test"))
    if len(ytr) < 2:
        raise ValueError(f"the training set has {len(ytr)} image(s); at least 2 are needed")
    distributed.check_batches(len(ytr), recipe.batch_size, ctx.world_size)
    if ctx.distributed and settings.sync_bn and settings.device.type != "cuda":
        raise ValueError("sync_bn needs GPUs: torch.nn.SyncBatchNorm synchronises CUDA tensors only. On the CPU, "
                         "train without it (each process then normalises its share of a batch by itself)")
    xtr, ytr = settings.to_device(xtr), settings.to_device(ytr)  # the whole uint8 set lives on the device
    val = tuple(map(settings.to_device, val)) if val is not None else None
    test = tuple(map(settings.to_device, test)) if test is not None else None
    model = settings.prepare_model(model).train()
    if ctx.distributed and settings.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    steps = len(batch_indices(len(ytr), recipe.batch_size, torch.Generator()))
    optimizer = make_optimizer(model, recipe)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, Schedule(
        recipe.schedule, steps * recipe.epochs, min(recipe.warmup(steps), steps * recipe.epochs)))
    st = _State(model, optimizer, sched, settings.grad_scaler())
    checkpoint = Path(checkpoint) if checkpoint else None
    blob = _read_checkpoint(checkpoint, ctx)
    if blob is not None:
        _restore(blob, st, key, checkpoint, ctx, seed)
    elif ctx.distributed:
        torch.manual_seed(distributed.rank_seed(seed, ctx.rank))   # each rank its own dropout draws
    st.forward = settings.compiled(_parallel(model, settings, ctx))
    loss_fn = nn.CrossEntropyLoss(reduction=recipe.loss_reduction, label_smoothing=recipe.label_smoothing)
    ev = dict(settings=settings, mean=mean, std=std, batch_size=eval_batch_size, image_size=image_size, context=ctx,
              crop=recipe.test_crop)
    progress = _progress_default(progress) and ctx.is_main
    from tqdm.auto import tqdm
    with deterministic(use_deterministic):
        bar = tqdm(range(st.epoch, recipe.epochs), initial=st.epoch, total=recipe.epochs, desc=recipe.name,
                   disable=not progress, unit="epoch")
        for epoch in bar:
            t0 = time.perf_counter()
            tr = _train_epoch(st, xtr, ytr, recipe, settings, loss_fn, seed, epoch, steps, mean, std, image_size,
                              progress, ctx)
            entry = {"epoch": epoch + 1, "train_loss": tr["loss"], "train_acc": tr["acc"],
                     "val_loss": None, "val_acc": None, "lr": optimizer.param_groups[0]["lr"]}
            if "clipped_steps" in tr:   # with grad_clip: how often it acted, and the largest norm it met
                entry.update({k: tr[k] for k in ("clipped_steps", "grad_norm_max", "skipped_steps") if k in tr})
            if val is not None:
                v = evaluate(model, *val, **ev)
                entry.update(val_loss=v["loss"], val_acc=v["acc"])
            entry["seconds"] = time.perf_counter() - t0
            st.history.append(entry)
            st.epoch = epoch + 1
            if checkpoint:
                rngs = ctx.gather(rng_state()) if ctx.distributed else None
                if ctx.is_main:
                    save_checkpoint(checkpoint, st, key, rngs)
            bar.set_postfix({k: round(entry[k], 4) for k in ("train_loss", "train_acc", "val_acc")
                             if entry[k] is not None})
            if callback and ctx.is_main:
                callback(epoch + 1, entry, st.history)
            ctx.barrier()   # the others wait while rank 0 writes
        bar.close()
        t0 = time.perf_counter()
        final = evaluate(model, *test, **ev, predictions=True) if test is not None else {"loss": None, "acc": None}
    last = st.history[-1] if st.history else {}
    return {"history": st.history, "val_acc": last.get("val_acc"), "val_loss": last.get("val_loss"),
            "test_acc": final["acc"], "test_loss": final["loss"], "params": count_params(model),
            "test_predictions": encode_predictions(final["predictions"], test[1]) if test is not None else None,
            "settings": {**settings.describe(), **({"world_size": ctx.world_size} if ctx.distributed else {})},
            "wall_seconds": sum(h["seconds"] for h in st.history) + time.perf_counter() - t0}


def _parallel(model: nn.Module, settings: RunSettings, ctx: distributed.Context) -> nn.Module:
    """The model itself, or under torchrun the model in DistributedDataParallel (gradients averaged)."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel
    ids = [settings.device.index if settings.device.index is not None else torch.cuda.current_device()] \
        if settings.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _loss_factor(recipe: Recipe, ctx: distributed.Context, share: int, batch: int) -> float:
    """What a rank's loss is multiplied by so that DDP's mean of the ranks' gradients is the
    gradient of the global batch's loss (1 for equal shares of a mean loss)."""
    if not ctx.distributed:
        return 1.0
    return float(ctx.world_size) if recipe.loss_reduction == "sum" else ctx.world_size * share / batch


def _train_epoch(st: _State, xtr, ytr, recipe: Recipe, settings: RunSettings, loss_fn, seed: int, epoch: int,
                 steps: int, mean, std, image_size, progress: bool,
                 ctx: distributed.Context = distributed.SINGLE) -> dict:
    from tqdm.auto import tqdm
    gen = epoch_generator(seed, epoch)
    batches = batch_indices(len(ytr), recipe.batch_size, gen)   # the same on every rank
    train_mode(st.model, recipe)
    total_loss = torch.zeros((), device=settings.device)
    correct = torch.zeros((), device=settings.device)
    clipped = torch.zeros((), device=settings.device)
    skipped = torch.zeros((), device=settings.device)
    norm_max = torch.zeros((), device=settings.device)
    seen = 0
    for i, idx in enumerate(tqdm(batches, desc=f"epoch {epoch + 1}", leave=False, disable=not progress)):
        draws = augmentation_draws(len(idx), recipe, gen)                # the whole global batch's
        part = ctx.share(len(idx))                                       # this rank's share of it
        mine = idx[part].to(xtr.device)
        x = _prepare(augment(xtr[mine], recipe, draws={k: v[part] for k, v in draws.items()}),
                     settings, mean, std, image_size)                    # (b, 3, H, W)
        y = ytr[mine]                                                    # (b,)
        with settings.autocast():
            logits = (st.model if st.forward is None else st.forward)(x)  # (b, classes)
        if i == 0 and epoch == st.epoch:
            top = int(ytr[idx.to(ytr.device)].max())
            if logits.ndim != 2 or top >= logits.shape[1]:
                raise ValueError(f"the model outputs {tuple(logits.shape)} but labels go up to {top}: "
                                 "set num_classes to the number of classes of the data set")
        loss = loss_fn(logits.float(), y)
        if ctx.any(not torch.isfinite(loss), settings.device):
            raise DivergenceError(epoch + 1, i + 1, len(batches), st.optimizer.param_groups[0]["lr"], loss.item())
        factor = _loss_factor(recipe, ctx, len(y), len(idx))
        st.optimizer.zero_grad(set_to_none=True)
        st.scaler.scale(loss if factor == 1 else loss * factor).backward()
        if recipe.grad_clip:
            st.scaler.unscale_(st.optimizer)
            norm = nn.utils.clip_grad_norm_(st.model.parameters(), recipe.grad_clip).detach()  # before clipping
            finite = torch.isfinite(norm)      # not finite: an fp16 overflow, a step the GradScaler skips
            clipped += finite & (norm > recipe.grad_clip)
            skipped += ~finite
            norm_max = torch.where(finite, torch.maximum(norm_max, norm), norm_max)
        st.scaler.step(st.optimizer)
        st.scaler.update()
        st.scheduler.step()
        n = len(y)
        total_loss += loss.detach() * (1 if recipe.loss_reduction == "sum" else n)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += n
    if ctx.distributed:
        total_loss, correct, seen = ctx.sum_(torch.stack([total_loss, correct.float(),
                                                          torch.tensor(float(seen), device=settings.device)]))
    out = {"loss": total_loss.item() / float(seen), "acc": correct.item() / float(seen)}
    if recipe.grad_clip:   # DDP averaged the gradients before clipping: every rank saw the same norms
        out.update(clipped_steps=int(clipped.item()), grad_norm_max=float(norm_max.item()))
        if skipped.item():
            out["skipped_steps"] = int(skipped.item())
    return out
