"""Speed of course_lib's blocks against timm's, and of the engine's fast path, as median ratios (CPU).

    python -m course_lib.engine.bench                 # the full run (a few minutes on 2 cores)
    python -m course_lib.engine.bench --repeats 3     # quicker, noisier
    python -m course_lib.engine.bench --threads 0 --clock wall   # torch's threads, elapsed time
    python -m course_lib.engine.bench --fast-path [--compile]    # bf16 + channels-last against fp32 eager
    python -m course_lib.engine.bench --fast-path --bf16         # the same where the CPU only emulates bf16

``--fast-path`` times one training step (batch 128, 32x32, SGD) of ResNeSt-14-2s1x64d,
ResNet-14-0s1x64d and ResNeSt-50 in float32 eager mode (the reference) and with the
settings the engine picks on this CPU (``RunSettings.for_device``: bfloat16 autocast
and channels-last where the CPU has AVX512-BF16 or AMX), optionally also through
``torch.compile``; every variant of a network starts from the same weights, and the
variants alternate within each repeat. It prints each variant's images per second and
its ratio over the reference; run it on an otherwise idle machine (wall clock, all threads).

For ResNeSt-14 and ResNeSt-50 (timm ``resnest14d``/``resnest50d``, 10 classes),
course_lib's network gets timm's weights, so both compute the same thing. Each
repeat times one forward pass (eval, no grad) and one SGD training step (forward,
loss, backward, update) of a batch of 64 32x32 images, for both models back to
back, alternating which goes first. The printed ratio is timm's time divided by
course_lib's (>= 1.0: course_lib is at least as fast), the median over repeats.
By default one thread and CPU time: on a shared machine, other programs inflate
elapsed time by a factor that changes from one call to the next.

Then the radix-major :class:`~course_lib.blocks.split_attn.SplitAttn` against the
cardinality-major :class:`~course_lib.blocks.split_attn.SplitAttnCardinal` holding the
same weights, for K = 1, 2, 4 (R = 2, 128 channels, 16x16 maps): forward, and
forward + backward in training mode (ratio = cardinality-major time / radix-major
time; > 1 means the radix-major layout is faster).
"""
from __future__ import annotations

import argparse
import copy
import statistics
from typing import Callable

import torch
from torch import nn

from ..blocks.split_attn import SplitAttn, radix_input_order, radix_to_cardinal
from ..models.factory import create_model
from .device import RunSettings
from .timing import CLOCKS, compare


def _forward(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run():
        with torch.no_grad():
            return model(x)
    return run


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], object]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def run():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return run


def _forward_backward(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run():
        model(x).square().mean().backward()
    return run


def _ratio(times: dict[str, list[float]], slow: str, fast: str) -> float:
    """Median over repeats of time(slow) / time(fast)."""
    return statistics.median(a / b for a, b in zip(times[slow], times[fast]))


def _ms(values: list[float]) -> str:
    return f"{1000 * statistics.median(values):8.1f} ms"


def bench_networks(names, batch: int, size: int, repeats: int, warmup: int,
                   clock: str = "wall") -> None:
    import timm
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    for name in names:
        reference = timm.create_model(name, num_classes=10)
        ours = create_model(name, num_classes=10)
        ours.load_state_dict(reference.state_dict(), strict=True)
        for mode in ("forward", "train step"):
            for m in (ours, reference):
                m.train(mode == "train step")
            if mode == "forward":
                fns = {"course_lib": _forward(ours, x), "timm": _forward(reference, x)}
            else:
                fns = {"course_lib": _train_step(ours, x, y), "timm": _train_step(reference, x, y)}
            times = compare(fns, repeats, warmup, clock)
            print(f"{name:12s} {mode:10s}  course_lib {_ms(times['course_lib'])}  "
                  f"timm {_ms(times['timm'])}  "
                  f"ratio timm/course_lib {_ratio(times, 'timm', 'course_lib'):.3f}")


def bench_layouts(batch: int, channels: int, size: int, repeats: int, warmup: int,
                  clock: str = "wall") -> None:
    torch.manual_seed(0)
    for k in (1, 2, 4):
        radix = SplitAttn(channels, channels, cardinality=k, radix=2)
        card = radix_to_cardinal(radix)
        x = torch.randn(batch, channels, size, size)
        x_radix = x[:, radix_input_order(channels, k, 2)].contiguous()
        for mode in ("forward", "fwd+bwd"):
            for m in (radix, card):
                m.train(mode == "fwd+bwd")
            make = _forward if mode == "forward" else _forward_backward
            fns = {"radix": make(radix, x_radix), "cardinal": make(card, x)}
            times = compare(fns, repeats, warmup, clock)
            print(f"K={k} R=2 C={channels:<4d} {mode:10s}  radix-major {_ms(times['radix'])}  "
                  f"cardinality-major {_ms(times['cardinal'])}  "
                  f"ratio cardinal/radix {_ratio(times, 'cardinal', 'radix'):.3f}")


def _settings_step(model: nn.Module, settings, x: torch.Tensor, y: torch.Tensor) -> Callable[[], object]:
    """One SGD training step of ``model`` under ``settings`` (precision, channels-last, compile)."""
    model = settings.prepare_model(model).train()
    forward = settings.compiled(model)
    if settings.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def run():
        opt.zero_grad(set_to_none=True)
        with settings.autocast():
            logits = forward(x)
        loss = loss_fn(logits.float(), y)
        loss.backward()
        opt.step()
        return loss
    return run


FAST_PATH_MODELS = ("ResNeSt-14-2s1x64d", "ResNet-14-0s1x64d", "ResNeSt-50")


def bench_fast_path(names=FAST_PATH_MODELS, batch: int = 128, size: int = 32, repeats: int = 10,
                    warmup: int = 2, clock: str = "wall", with_compile: bool = False,
                    bf16: bool = False) -> dict:
    """Train-step speed of the engine's CPU settings over float32 eager; returns {model: {variant: ratio}}.

    ``bf16``: time bfloat16 + channels-last even where the CPU has no native bfloat16 (what it would cost).
    float32 + channels-last is always timed: the study's float32 runs use it. ``with_compile``: the engine's
    precision (bf16 where native, else fp32) with channels-last and ``torch.compile``.
    """
    variants = {"fp32 eager": RunSettings.for_device("cpu", precision="fp32"),
                # the study's float32 runs (twins, stand-ins) keep the bf16 runs' channels-last layout
                "fp32 + channels-last": RunSettings.for_device("cpu", precision="fp32", channels_last=True)}
    fast = RunSettings.for_device("cpu", precision="bf16" if bf16 else "auto")
    if fast.precision != "fp32":
        variants[f"{fast.precision} + channels-last"] = fast
    if with_compile:
        variants[f"{fast.precision} + channels-last + compile"] = RunSettings.for_device(
            "cpu", precision=fast.precision, channels_last=True, compile=True)
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    out = {}
    for name in names:
        base = create_model(name, num_classes=10)
        fns = {v: _settings_step(copy.deepcopy(base), s, x, y) for v, s in variants.items()}
        times = compare(fns, repeats, warmup, clock)
        out[name] = {}
        for v in variants:
            ratio = _ratio(times, "fp32 eager", v)
            out[name][v] = ratio
            print(f"{name:20s} {v:28s} {batch / statistics.median(times[v]):7.1f} img/s  "
                  f"ratio over fp32 eager {ratio:.3f}", flush=True)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per model (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    parser.add_argument("--batch", type=int, default=None, help="default 64")
    parser.add_argument("--size", type=int, default=32, help="image side (default 32, CIFAR)")
    parser.add_argument("--models", nargs="+", default=["resnest14d", "resnest50d"],
                        help="timm ResNeSt names (default: resnest14d resnest50d)")
    parser.add_argument("--skip-layouts", action="store_true", help="only the networks")
    parser.add_argument("--fast-path", action="store_true",
                        help="instead: the engine's CPU fast path against fp32 eager, one training step "
                             "(defaults then: batch 128, 10 repeats, torch's threads, wall clock)")
    parser.add_argument("--compile", action="store_true", help="with --fast-path: also time torch.compile")
    parser.add_argument("--bf16", action="store_true",
                        help="with --fast-path: time bfloat16 even on a CPU without native bfloat16 (emulated)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default 1: on a shared machine a busy neighbour stalls "
                             "multi-threaded runs at every operation, drowning the comparison; "
                             "0 = torch's default)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default=None,
                        help="cpu (default): CPU time of this process, not inflated by other "
                             "programs; wall: elapsed time")
    args = parser.parse_args(argv)
    fast = args.fast_path
    args.repeats = args.repeats or (10 if fast else 15)
    args.batch = args.batch or (128 if fast else 64)
    args.threads = (0 if fast else 1) if args.threads is None else args.threads
    args.clock = args.clock or ("wall" if fast else "cpu")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.clock} clock, "
          f"batch {args.batch}, {args.size}x{args.size}, {args.repeats} interleaved repeats "
          f"after {args.warmup} warm-up, medians")
    if fast:
        bench_fast_path(batch=args.batch, size=args.size, repeats=args.repeats, warmup=args.warmup,
                        clock=args.clock, with_compile=args.compile, bf16=args.bf16)
        return
    bench_networks(args.models, args.batch, args.size, args.repeats, args.warmup, args.clock)
    if not args.skip_layouts:
        bench_layouts(args.batch, 128, 16, args.repeats, args.warmup, args.clock)


if __name__ == "__main__":
    main()
