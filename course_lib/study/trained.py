"""Small trained Split-Attention networks, trained once and shipped with course_lib (chapters 4 and 5).

Two quarter-wide ResNeSt-14 networks (``ResNeSt-14-2s1x64d`` with ``base_planes=16``,
``stem_width=16``: bottleneck widths B = 16, 32, 64, 128), one with two 3x3 radix
splits (``plain``) and one whose splits are 3x3 and 5x5 (``mixed``), each trained
from seeds 0, 1 and 2 on the 45,000 CIFAR-10 training images. Their weights are
stored as float16 state dicts in ``course_lib/study/weights/`` (package data), with
their sha256 and what the run reached in ``weights/trained.json``.

Rebuild them (about 3 CPU-minutes per network and seed on one core of a recent CPU)::

    python -m course_lib.study.trained                     # every network and seed
    python -m course_lib.study.trained --nets mixed --seeds 0

:func:`load_trained` checks the checksum before it loads: a damaged file raises
:class:`WeightsError` naming the file and the command that rebuilds it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..engine.data import as_pair, load_data
from ..engine.device import RunSettings, hardware, seed_everything
from ..engine.recipes import get_recipe
from ..engine.train import evaluate, train
from ..models.factory import create_model

__all__ = ["TrainedNet", "NETWORKS", "SEEDS", "WeightsError", "WEIGHTS_DIR", "build", "untrained",
           "train_net", "summary_table", "save_fp16", "file_sha256", "rebuild_command", "read_manifest", "load_trained",
           "main"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = "trained.json"
SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class TrainedNet:
    """One network of the chapters: a name for ``create_model``, its overrides, how it trains."""
    key: str
    model: str = "ResNeSt-14-2s1x64d"
    overrides: dict = field(default_factory=dict)
    epochs: int = 6
    batch_size: int = 128
    lr: float = 0.1
    images: int | None = None          # None: all 45,000 training images (5,000 are held out)

    def recipe(self):
        """The book's recipe, shortened: crop + flip, label smoothing 0.1, warm-up then cosine."""
        return get_recipe("book", epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                          warmup_epochs=0.5, drop_rate=None)


_QUARTER = dict(base_planes=16, stem_width=16)   # B = 16, 32, 64, 128 in stages 1-4
NETWORKS = {
    "plain": TrainedNet("plain", overrides=dict(_QUARTER)),                          # R = 2, 3x3 + 3x3
    "mixed": TrainedNet("mixed", overrides=dict(_QUARTER, kernel_sizes=(3, 5))),     # R = 2, 3x3 + 5x5
}


class WeightsError(RuntimeError):
    """A shipped weight file is missing, or its sha256 is not the one recorded."""


def _net(key: str) -> TrainedNet:
    if key not in NETWORKS:
        raise ValueError(f"unknown trained network {key!r}: use one of {list(NETWORKS)}")
    return NETWORKS[key]


def build(key: str) -> nn.Module:
    """The network ``key``, freshly initialised (10 classes)."""
    net = _net(key)
    return create_model(net.model, num_classes=10, **net.overrides)


def untrained(key: str, seed: int) -> nn.Module:
    """The weights network ``key`` started from with ``seed``: the same start as its training run."""
    seed_everything(seed)
    return build(key).eval()


def rebuild_command(key: str, seed: int) -> str:
    return f"python -m course_lib.study.trained --nets {key} --seeds {seed}"


def weights_file(key: str, seed: int, directory: Path | None = None) -> Path:
    return Path(directory or WEIGHTS_DIR) / f"{key}_seed{seed}.pt"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_fp16(model: nn.Module, path: Path) -> str:
    """Save the state dict with float tensors in float16; returns the file's sha256."""
    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return file_sha256(path)


def read_manifest(directory: Path | None = None) -> dict:
    """{key: {seed (str): entry}} from ``trained.json``; {} when there is none."""
    path = Path(directory or WEIGHTS_DIR) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _entry(key: str, seed: int, directory: Path | None) -> dict:
    _net(key)
    entry = read_manifest(directory).get(key, {}).get(str(seed))
    if entry is None:
        raise WeightsError(f"no trained weights of {key!r}, seed {seed}, in {directory or WEIGHTS_DIR}: "
                           f"build them with `{rebuild_command(key, seed)}`")
    return entry


def _read_fp16(key: str, path: Path) -> nn.Module:
    """Network ``key`` with the float16 state dict at ``path``, back in float32, eval mode."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build(key)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


def load_trained(key: str, seed: int = 0, directory: Path | None = None) -> nn.Module:
    """The trained network ``key`` of ``seed`` in float32, eval mode, its checksum checked first."""
    entry = _entry(key, seed, directory)
    path = weights_file(key, seed, directory)
    if not path.exists():
        raise WeightsError(f"{path} is missing: rebuild it with `{rebuild_command(key, seed)}`")
    found = file_sha256(path)
    if found != entry["sha256"]:
        raise WeightsError(f"{path} is damaged: its sha256 is {found[:12]}..., trained.json records "
                           f"{entry['sha256'][:12]}...; rebuild it with `{rebuild_command(key, seed)}`")
    return _read_fp16(key, path)


def summary_table(directory: Path | None = None):
    """One row per shipped network and seed: how it was trained, what it reached, its file."""
    import pandas as pd
    rows = [{"network": key, "seed": int(seed), "kernels": _kernels(e), "epochs": e["epochs"],
             "train images": e["train_images"], "val acc": round(e["val_acc"], 4),
             "test acc": round(e["test_acc"], 4), "CPU min": round(e["cpu_seconds"] / 60, 1),
             "MiB": round(e["bytes"] / 2 ** 20, 2), "sha256": e["sha256"][:12]}
            for key, seeds in read_manifest(directory).items() for seed, e in sorted(seeds.items())]
    return pd.DataFrame(rows).set_index(["network", "seed"]) if rows else pd.DataFrame()


def _kernels(entry: dict) -> str:
    sizes = entry["overrides"].get("kernel_sizes", [3, 3])
    return " + ".join(f"{k}x{k}" for k in sizes)


def train_net(key: str, seed: int, data: dict | None = None) -> tuple[nn.Module, dict]:
    """Train network ``key`` from ``seed`` with the engine; (model, the engine's result)."""
    net = _net(key)
    data = data or load_data("cifar10", images=net.images)
    model = untrained(key, seed)
    splits = {"train": data["train"], "val": data["val"], "test": None}   # the test set: after float16
    t0 = time.process_time()
    out = train(model, splits, net.recipe(), device="cpu", seed=seed, progress=False)
    out["cpu_seconds"] = round(time.process_time() - t0, 1)
    return model.eval(), out


def _record(key: str, seed: int, out: dict, data: dict, path: Path) -> dict:
    """What trained.json says about one trained network (test accuracy of the float16 file)."""
    net = _net(key)
    fp32 = RunSettings.for_device(torch.device("cpu"), precision="fp32")
    test = evaluate(_read_fp16(key, path), *as_pair(data["test"]), settings=fp32)
    return {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size,
            "model": net.model, "overrides": {k: list(v) if isinstance(v, tuple) else v
                                              for k, v in net.overrides.items()},
            "seed": seed, "epochs": net.epochs, "train_images": len(data["train"]),
            "recipe": net.recipe().as_dict(), "val_acc": out["val_acc"], "test_acc": test["acc"],
            "test_images": len(data["test"]), "settings": out["settings"],
            "cpu_seconds": out["cpu_seconds"], "wall_seconds": round(out["wall_seconds"], 1),
            "hardware": hardware(torch.device("cpu")), "torch": torch.__version__,
            "command": rebuild_command(key, seed)}


def build_weights(keys, seeds, directory: Path | None = None) -> dict:
    """Train, save and record every (key, seed); returns the updated manifest."""
    directory = Path(directory or WEIGHTS_DIR)
    manifest = read_manifest(directory)
    for key in keys:
        data = load_data("cifar10", images=_net(key).images)
        for seed in seeds:
            model, out = train_net(key, seed, data)
            path = weights_file(key, seed, directory)
            save_fp16(model, path)
            entry = _record(key, seed, out, data, path)
            manifest = read_manifest(directory)          # re-read: another process may have added to it
            manifest.setdefault(key, {})[str(seed)] = entry
            (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            print(f"{key} seed {seed}: val {entry['val_acc']:.4f}, test {entry['test_acc']:.4f} "
                  f"(float16 file), {entry['cpu_seconds']:.0f} CPU s, {path}", flush=True)
    return manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train the chapters' small Split-Attention networks.")
    parser.add_argument("--nets", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: repeatable bit for bit)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    build_weights(args.nets, args.seeds)


if __name__ == "__main__":
    main()
