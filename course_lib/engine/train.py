"""The training loop: train a model you built on uint8 tensors, evaluate it, checkpoint it.

``train(model, data, recipe, ...)`` trains on ``{'train', 'val', 'test'}`` splits of
uint8 tensors (see :func:`course_lib.engine.data.load_data`); ``course_lib.engine.runner.run``
adds the data set, the model by name and the run record around it.

Images stay uint8 tensors (N, 3, H, W) until a batch is on the device: there it is
augmented (random crop with padding, horizontal flip), normalised and, on CUDA,
laid out channels-last. Shuffling and augmentation draw from a generator seeded by
(seed, epoch), and dropout from torch's global generator, which checkpoints save:
on the CPU a resumed run ends bitwise equal to an uninterrupted one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.cost import count_params
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


# --------------------------------------------------------------------------- batches on the device
def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad (B, C, H, W) by ``padding`` and cut a random H x W window per image."""
    b, c, h, w = x.shape
    off = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator).to(x.device)  # (B, 2)
    xp = F.pad(x, (padding,) * 4)                                                          # (B, C, H+2p, W+2p)
    rows = off[:, :1] + torch.arange(h, device=x.device)                                   # (B, H)
    cols = off[:, 1:] + torch.arange(w, device=x.device)                                   # (B, W)
    bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    ci = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return xp[bi, ci, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of (B, C, H, W) left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def augment(x: torch.Tensor, recipe: Recipe, generator: torch.Generator) -> torch.Tensor:
    if recipe.crop_padding:
        x = random_crop(x, recipe.crop_padding, generator)
    return random_flip(x, generator) if recipe.flip else x


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


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.SGD:
    """SGD with momentum; the classifier gets lr * head_lr_mult when that is not 1."""
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
             predictions: bool = False) -> dict:
    """Mean cross-entropy and accuracy of ``model`` on uint8 images (N, 3, H, W).

    ``predictions=True`` adds the predicted class of every image (int64 tensor, N).
    """
    settings = settings or RunSettings.for_device("cpu")
    was_training = model.training
    model.eval()
    images, labels = settings.to_device(images), settings.to_device(labels)
    loss, correct = torch.zeros((), device=settings.device), torch.zeros((), device=settings.device)
    preds = []
    for idx in batch_indices(len(labels), batch_size):
        x, y = _prepare(images[idx.to(images.device)], settings, mean, std, image_size), labels[idx.to(labels.device)]
        with settings.autocast():
            logits = model(x).float()                                   # (B, classes)
        loss += F.cross_entropy(logits, y, reduction="sum")
        preds.append(logits.argmax(1))
        correct += (preds[-1] == y).sum()
    model.train(was_training)
    n = max(len(labels), 1)
    out = {"loss": loss.item() / n, "acc": correct.item() / n}
    if predictions:
        out["predictions"] = torch.cat(preds).cpu() if preds else torch.zeros(0, dtype=torch.int64)
    return out


def encode_predictions(predictions: torch.Tensor, labels: torch.Tensor) -> dict:
    """Predicted classes of the test images, compact for a JSON record (base64 of uint8).

    ``labels_sha256`` identifies the test set and its order, so that two records are
    compared image by image (McNemar's test) only when they saw the same images.
    """
    import base64
    import hashlib
    p = predictions.to("cpu", torch.int64)
    if len(p) and (int(p.min()) < 0 or int(p.max()) > 255):
        raise ValueError("encode_predictions stores classes 0..255 only")
    y = labels.to("cpu", torch.int64).numpy().astype("uint8").tobytes()
    return {"encoding": "base64-uint8", "n": len(p),
            "data": base64.b64encode(p.numpy().astype("uint8").tobytes()).decode("ascii"),
            "labels_sha256": hashlib.sha256(y).hexdigest()}


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


def save_checkpoint(path: Path, st: _State, key: str | None = None) -> None:
    """Everything needed to continue exactly where the run stands, written atomically."""
    blob = {"key": key, "epoch": st.epoch, "history": st.history, "model": st.model.state_dict(),
            "optimizer": st.optimizer.state_dict(), "scheduler": st.scheduler.state_dict(),
            "scaler": st.scaler.state_dict(), "rng": rng_state(), "torch": torch.__version__}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(blob, tmp)
    tmp.replace(path)


def _load_checkpoint(path: Path, st: _State, key: str | None) -> None:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if key is not None and blob.get("key") not in (None, key):
        raise ValueError(f"checkpoint {path} belongs to another configuration ({blob.get('key')} != {key}): "
                         "delete it or pass force=True")
    st.model.load_state_dict(blob["model"])
    st.optimizer.load_state_dict(blob["optimizer"])
    st.scheduler.load_state_dict(blob["scheduler"])
    st.scaler.load_state_dict(blob["scaler"])
    set_rng_state(blob["rng"])
    st.history, st.epoch = blob["history"], blob["epoch"]


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
    (xtr, ytr), val, test = as_pair(data["train"]), as_pair(data.get("val")), as_pair(data.get("test"))
    if len(ytr) < 2:
        raise ValueError(f"the training set has {len(ytr)} image(s); at least 2 are needed")
    xtr, ytr = settings.to_device(xtr), settings.to_device(ytr)  # the whole uint8 set lives on the device
    val = tuple(map(settings.to_device, val)) if val is not None else None
    test = tuple(map(settings.to_device, test)) if test is not None else None
    model = settings.prepare_model(model).train()
    steps = len(batch_indices(len(ytr), recipe.batch_size, torch.Generator()))
    optimizer = make_optimizer(model, recipe)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, Schedule(
        recipe.schedule, steps * recipe.epochs, min(recipe.warmup(steps), steps * recipe.epochs)))
    st = _State(model, optimizer, sched, settings.grad_scaler(), forward=settings.compiled(model))
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint and checkpoint.exists():
        _load_checkpoint(checkpoint, st, key)
    loss_fn = nn.CrossEntropyLoss(reduction=recipe.loss_reduction, label_smoothing=recipe.label_smoothing)
    ev = dict(settings=settings, mean=mean, std=std, batch_size=eval_batch_size, image_size=image_size)
    progress = _progress_default(progress)
    from tqdm.auto import tqdm
    with deterministic(use_deterministic):
        bar = tqdm(range(st.epoch, recipe.epochs), initial=st.epoch, total=recipe.epochs, desc=recipe.name,
                   disable=not progress, unit="epoch")
        for epoch in bar:
            t0 = time.perf_counter()
            tr = _train_epoch(st, xtr, ytr, recipe, settings, loss_fn, seed, epoch, steps, mean, std, image_size,
                              progress)
            entry = {"epoch": epoch + 1, "train_loss": tr["loss"], "train_acc": tr["acc"],
                     "val_loss": None, "val_acc": None, "lr": optimizer.param_groups[0]["lr"]}
            if val is not None:
                v = evaluate(model, *val, **ev)
                entry.update(val_loss=v["loss"], val_acc=v["acc"])
            entry["seconds"] = time.perf_counter() - t0
            st.history.append(entry)
            st.epoch = epoch + 1
            if checkpoint:
                save_checkpoint(checkpoint, st, key)
            bar.set_postfix({k: round(entry[k], 4) for k in ("train_loss", "train_acc", "val_acc")
                             if entry[k] is not None})
            if callback:
                callback(epoch + 1, entry, st.history)
        bar.close()
        t0 = time.perf_counter()
        final = evaluate(model, *test, **ev, predictions=True) if test is not None else {"loss": None, "acc": None}
    last = st.history[-1] if st.history else {}
    return {"history": st.history, "val_acc": last.get("val_acc"), "val_loss": last.get("val_loss"),
            "test_acc": final["acc"], "test_loss": final["loss"], "params": count_params(model),
            "test_predictions": encode_predictions(final["predictions"], test[1]) if test is not None else None,
            "settings": settings.describe(),
            "wall_seconds": sum(h["seconds"] for h in st.history) + time.perf_counter() - t0}


def _train_epoch(st: _State, xtr, ytr, recipe: Recipe, settings: RunSettings, loss_fn, seed: int, epoch: int,
                 steps: int, mean, std, image_size, progress: bool) -> dict:
    from tqdm.auto import tqdm
    gen = epoch_generator(seed, epoch)
    batches = batch_indices(len(ytr), recipe.batch_size, gen)
    total_loss = torch.zeros((), device=settings.device)
    correct = torch.zeros((), device=settings.device)
    seen = 0
    for i, idx in enumerate(tqdm(batches, desc=f"epoch {epoch + 1}", leave=False, disable=not progress)):
        idx = idx.to(xtr.device)
        x = _prepare(augment(xtr[idx], recipe, gen), settings, mean, std, image_size)  # (B, 3, H, W)
        y = ytr[idx]                                                                     # (B,)
        with settings.autocast():
            logits = (st.model if st.forward is None else st.forward)(x)                 # (B, classes)
        if i == 0 and epoch == st.epoch and (logits.ndim != 2 or int(y.max()) >= logits.shape[1]):
            raise ValueError(f"the model outputs {tuple(logits.shape)} but labels go up to {int(y.max())}: "
                             "set num_classes to the number of classes of the data set")
        loss = loss_fn(logits.float(), y)
        if not torch.isfinite(loss):
            raise DivergenceError(epoch + 1, i + 1, len(batches), st.optimizer.param_groups[0]["lr"], loss.item())
        st.optimizer.zero_grad(set_to_none=True)
        st.scaler.scale(loss).backward()
        if recipe.grad_clip:
            st.scaler.unscale_(st.optimizer)
            nn.utils.clip_grad_norm_(st.model.parameters(), recipe.grad_clip)
        st.scaler.step(st.optimizer)
        st.scaler.update()
        st.scheduler.step()
        n = len(y)
        total_loss += loss.detach() * (1 if recipe.loss_reduction == "sum" else n)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += n
    return {"loss": total_loss.item() / seen, "acc": correct.item() / seen}
