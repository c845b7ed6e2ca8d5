"""``run``: data set + model + training loop + run record, resumable and reused.

``run(model_or_name, recipe, ...)`` loads the data set, builds the model, trains it
(resuming from its checkpoint) and writes one JSON record (``course_lib.engine.records``);
a finished run with the same configuration is reused unless ``force=True``.

What a run does is split in three small frozen parts: the recipe (how it trains,
``course_lib.engine.recipes``), the data (:class:`~course_lib.engine.data.DataConfig`)
and the numerics (:class:`Numerics`). ``run`` takes each either whole
(``data=DataConfig(...)``) or field by field (``images=1000, epochs=3, precision="bf16"``).

Under torchrun every process calls ``run`` with the same arguments: rank 0 decides whether
the record is finished already, and writes the record; all train (``course_lib.engine.train``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..blocks.cost import count_params
from ..models.factory import create_model
from . import distributed
from . import records as res
from .data import DataConfig, data_identity
from .device import RunSettings, hardware, pick_device, seed_everything
from .recipes import Recipe, get_recipe
from .train import DivergenceError, LossExplodedError, loss_exploded, read_checkpoint, train


@dataclass(frozen=True)
class Numerics:
    """How a run computes: ``precision``, ``channels_last`` and ``compile`` on ``device``
    (``RunSettings.for_device``: 'auto' picks what pays off there); ``settings`` overrides them all.

    ``sync_bn`` (under torchrun, on GPUs): batch norm over the global batch. Like the device
    and the number of processes, it is recorded in the record's settings, not in its key:
    it makes a multi-process run compute the statistics a single process computes.
    """
    device: str | torch.device | None = None
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    settings: RunSettings | None = None
    sync_bn: bool = False

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def resolve(self) -> RunSettings:
        return self.settings or RunSettings.for_device(pick_device(self.device), precision=self.precision,
                                                       channels_last=self.channels_last, compile=self.compile,
                                                       sync_bn=self.sync_bn)


def build_model(name: str, num_classes: int, drop_rate: float | None = None, **overrides) -> nn.Module:
    """``course_lib.create_model(name, num_classes, drop_rate=..., **overrides)``."""
    if drop_rate is not None:
        overrides.setdefault("drop_rate", drop_rate)
    return create_model(name, num_classes=num_classes, **overrides)


def architecture(model: nn.Module) -> str:
    """A 12-hex-digit hash of a model's printed structure: what keys a run of a model object."""
    return hashlib.sha256(repr(model).encode()).hexdigest()[:12]


def _resolve_model(model, name, recipe: Recipe, num_classes: int, overrides: dict, seed: int):
    """(model factory, config name, architecture hash or None)."""
    if isinstance(model, str):
        return (lambda: build_model(model, num_classes, recipe.drop_rate, **overrides)), model, None
    if overrides:
        raise ValueError("model_overrides apply to models given by name only")
    if isinstance(model, nn.Module):
        instance = model
        make = lambda: instance  # noqa: E731
    elif callable(model):
        make = model
        seed_everything(seed)
        instance = model()
    else:
        raise ValueError(f"model must be a name, an nn.Module or a function returning one, got {type(model).__name__}")
    if recipe.drop_rate is not None:
        warnings.warn("recipe.drop_rate is applied to models built by name only; pass drop_rate=None "
                      "or build the dropout into your model", stacklevel=3)
    return make, name or type(instance).__name__, architecture(instance)


def run_config(model_name: str, recipe: Recipe, data: DataConfig, *, seed: int, num_classes: int,
               overrides: dict, arch: str | None, precision: str = "fp32", channels_last: bool = False,
               compile: bool = False) -> dict:
    """The configuration that keys a run record (``data`` resolved: its val_size filled in).

    The device is not part of it; the numerics are (precision, channels-last, compile).
    """
    return {"model": model_name, "arch": arch, "overrides": dict(sorted(overrides.items())),
            "num_classes": num_classes, "recipe": recipe.as_dict(), **data.config(), "seed": seed,
            "precision": precision, "channels_last": channels_last, "compile": compile}


RUN_OPTIONS = (*DataConfig.fields(), "seed", "name", "num_classes", "model_overrides", *Numerics.fields(),
               "results_dir", "runs_dir", "force", "progress", "callback", "raise_on_divergence", "data",
               "numerics")


def _parts(recipe, data: DataConfig | None, numerics: Numerics | None, fields: dict):
    """(Recipe, DataConfig, Numerics) from run()'s arguments; ValueError names what is unknown or given twice."""
    parts = {"data": DataConfig.fields(), "numerics": Numerics.fields(), "recipe": Recipe.fields()}
    unknown = sorted(set(fields) - {f for names in parts.values() for f in names})
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown}: run() takes the recipe fields {list(Recipe.fields())} "
                         f"and the options {list(RUN_OPTIONS)}")
    given = {part: {k: v for k, v in fields.items() if k in names} for part, names in parts.items()}
    for part, whole in (("data", data), ("numerics", numerics)):
        if whole is not None and given[part]:
            raise ValueError(f"{sorted(given[part])} belong to {part}=: pass them inside it, or drop {part}=")
    recipe = get_recipe(recipe, **given["recipe"])
    data = (data or DataConfig(**given["data"])).resolved()
    return recipe, data, numerics or Numerics(**given["numerics"])


def run(model, recipe: str | Recipe | dict = "book", *, data: DataConfig | None = None,
        numerics: Numerics | None = None, seed: int = 0, name: str | None = None, num_classes: int | None = None,
        model_overrides: dict | None = None, results_dir=None, runs_dir=None, force: bool = False,
        progress: bool | None = None, callback: Callable | None = None, raise_on_divergence: bool = True,
        **fields) -> dict:
    """Train one configuration and return its record (see ``course_lib.engine.records``).

    ``model``: a name for ``create_model`` (e.g. 'ResNeSt-14-2s1x64d'), an nn.Module
    (trained in place) or a function returning one. ``fields``: the fields of
    :class:`DataConfig` (``dataset, images, val_size, split_seed, test_images,
    image_size, data_root``), of :class:`Numerics` (``device, precision,
    channels_last, compile, settings``) and of the recipe (``epochs=3, lr=0.05``).
    A finished record with the same configuration in ``results_dir`` is returned as
    it is unless ``force``; an interrupted run resumes from its checkpoint in
    ``runs_dir``. ``progress=None`` shows tqdm bars unless the environment sets
    ``COURSE_PROGRESS=0``.
    """
    recipe, data, numerics = _parts(recipe, data, numerics, fields)
    num_classes = num_classes or data.spec["num_classes"]
    overrides = dict(model_overrides or {})
    make, model_name, arch = _resolve_model(model, name, recipe, num_classes, overrides, seed)
    settings = numerics.resolve()
    config = run_config(model_name, recipe, data, seed=seed, num_classes=num_classes, overrides=overrides,
                        arch=arch, precision=settings.precision, channels_last=settings.channels_last,
                        compile=settings.compile)
    key = res.config_key(config)
    ckpt = res.runs_dir(runs_dir) / f"{res.record_path(config).stem}.pt"
    ctx = distributed.context(settings.device)
    found = ctx.broadcast(res.find_record(config, results_dir) if ctx.is_main else None)
    if found and found.get("status") == "finished" and not force:
        _maybe_load_weights(model, ckpt)
        return found
    if force and ckpt.exists() and ctx.is_main:
        ckpt.unlink()
    ctx.barrier()
    splits = data.load()
    started = res.now()
    described = {**settings.describe(), **({"world_size": ctx.world_size} if ctx.distributed else {})}
    record = {"schema": res.SCHEMA, "key": key, "config": config, "status": "running", "error": None,
              "history": [], "val_acc": None, "val_loss": None, "test_acc": None, "test_loss": None,
              "params": None, "settings": described, "hardware": hardware(settings.device),
              "torch": torch.__version__, "course_lib": _version(), "versions": res.versions(),
              "git_commit": res.git_commit(), "data": data_identity(data.dataset, splits, data.data_root),
              "wall_seconds": None, "started": started, "updated": started, "checkpoint": ckpt.name}

    def on_epoch(epoch, entry, history):   # rank 0 only
        record.update(history=history, updated=res.now(), wall_seconds=sum(h["seconds"] for h in history))
        res.write_record(record, results_dir)
        if callback:
            callback(epoch, entry, history)

    seed_everything(seed)
    net = make()
    record["params"] = count_params(net)
    try:
        out = train(net, splits, recipe, settings=settings, seed=seed, checkpoint=ckpt, key=key,
                    mean=data.spec["mean"], std=data.spec["std"], image_size=data.image_size, progress=progress,
                    callback=on_epoch)
    except DivergenceError as err:
        record.update(status="diverged", error=str(err), updated=res.now())
        if ctx.is_main:
            res.write_record(record, results_dir)
        if raise_on_divergence:
            raise
        return record
    exploded = loss_exploded(out["history"], num_classes, {"test_loss": out["test_loss"]})
    record.update(out, status="diverged" if exploded else "finished", error=exploded, updated=res.now())
    if ctx.is_main:
        res.write_record(record, results_dir)
    ctx.barrier()
    if exploded and raise_on_divergence:
        raise LossExplodedError(f"{model_name}: {exploded} (record: {res.record_path(config, results_dir)})")
    return res.as_stored(record)


def _maybe_load_weights(model, ckpt: Path) -> None:
    blob = read_checkpoint(ckpt) if isinstance(model, nn.Module) else None
    if blob is not None:
        model.load_state_dict(blob["model"])


def load_model(record: dict, runs_dir=None, device="cpu") -> nn.Module:
    """The trained model of a record built by name, with its checkpoint's weights."""
    cfg = record["config"]
    if cfg.get("arch"):
        raise ValueError("this run used a model object, not a name: rebuild it and load the checkpoint yourself")
    model = build_model(cfg["model"], cfg["num_classes"], cfg["recipe"].get("drop_rate"), **cfg["overrides"])
    path = res.runs_dir(runs_dir) / f"{res.record_path(cfg).stem}.pt"
    blob = read_checkpoint(path)
    if blob is None:
        raise ValueError(f"no usable checkpoint at {path}: the weights were not kept here; rerun with force=True")
    if blob.get("key") not in (None, record.get("key")):
        raise ValueError(f"checkpoint {path} belongs to another run ({blob.get('key')}, not {record.get('key')})")
    epochs = len(record.get("history") or [])
    if blob["epoch"] < epochs:   # an interrupted retrain of the run left its weights half-way
        raise ValueError(f"checkpoint {path} holds epoch {blob['epoch']} of the record's {epochs}: "
                         f"not the finished weights; rerun with force=True")
    model.load_state_dict(blob["model"])
    return model.to(device).eval()


def _version() -> str:
    from .. import __version__
    return __version__
