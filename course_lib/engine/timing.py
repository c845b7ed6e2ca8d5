"""Cost of a network as the report measures it: parameters, multiply-adds, latency, throughput.

- ``count_macs`` (from ``course_lib.blocks.cost``): multiply-adds of one forward pass per
  image, counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per
  multiply-add; biases, normalisation and activations are not counted).
- ``measure_latency``: inference time of a batch, after ``warmup`` untimed passes,
  the median of ``repeats`` timed ones. Like the report, latency is milliseconds per
  image (batch time / batch size) and throughput its inverse, images per second.
- ``measure_train_speed``: the same for a full training step (forward, backward, SGD).
- ``compare``: several functions timed in turns (the order rotates every repeat), so
  that all of them see the same load on a shared machine; ``CLOCKS`` names the clocks.

All take ``clock``: ``"wall"`` (elapsed time, the report's measure and the right one
on a GPU) or ``"cpu"`` (CPU time of this process: on a shared CPU other programs do
not inflate it; use it with one thread, ``torch.set_num_threads(1)``).

Each returns a small JSON-ready dict that can be stored next to a run record.
Timings depend on the machine and on what else runs on it: compare ratios measured
together, never absolute numbers from different sessions.
"""
from __future__ import annotations

import copy
import statistics
import time
from typing import Callable

import torch
from torch import nn

from ..blocks.cost import count_macs, count_params  # noqa: F401  (one counter for the whole book)
from .device import RunSettings, hardware, pick_device

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _timed(fn: Callable[[], object], clock: Callable[[], float]) -> float:
    t0 = clock()
    fn()
    return clock() - t0


def compare(fns: dict[str, Callable[[], object]], repeats: int, warmup: int,
            clock: str = "wall") -> dict[str, list[float]]:
    """Seconds per call of each function, interleaved: the order rotates every repeat.

    ``clock="wall"`` measures elapsed time; ``"cpu"`` the CPU time of this process,
    which other programs on a shared machine do not inflate (use it with one thread).
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times = {name: [] for name in names}
    for i in range(repeats):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            times[name].append(_timed(fns[name], CLOCKS[clock]))
    return times


def compare_clocks(fns: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, dict]:
    """Like :func:`compare`, but every call is timed on both clocks at once:
    ``{name: {"wall": [s, ...], "cpu": [s, ...]}}``."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times = {name: {"wall": [], "cpu": []} for name in names}
    for i in range(repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            w0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            c1, w1 = time.process_time(), time.perf_counter()
            times[name]["wall"].append(w1 - w0)
            times[name]["cpu"].append(c1 - c0)
    return times


def spread(times: list[float]) -> dict:
    """Median and quartiles (q1, q3) of a list of times, in the same unit."""
    if not times:
        raise ValueError("spread needs at least one time")
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [times[0]] * 3
    return {"median": statistics.median(times), "q1": q[0], "q3": q[2]}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _time(fn, device: torch.device, warmup: int, repeats: int, clock: str = "wall") -> list[float]:
    """Seconds of ``repeats`` calls of fn, after ``warmup`` untimed calls."""
    now = CLOCKS[clock]
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = now()
        fn()
        _sync(device)
        times.append(now() - t0)
    return times


def _check(batch_size: int, warmup: int, repeats: int) -> None:
    if batch_size < 1 or warmup < 0 or repeats < 1:
        raise ValueError(f"need batch_size >= 1, warmup >= 0 and repeats >= 1; got {batch_size}, {warmup}, {repeats}")


def _check_clock(clock: str, settings: RunSettings) -> None:
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}: use one of {sorted(CLOCKS)}")
    if clock == "cpu" and settings.device.type != "cpu":
        raise ValueError(f"clock='cpu' measures CPU time, which misses the work of a {settings.device.type} "
                         "device: use clock='wall' there")


def _record(mode: str, times: list[float], batch_size: int, input_size, warmup: int, settings: RunSettings,
            clock: str = "wall") -> dict:
    batch_s = statistics.median(times)
    return {"mode": mode, "clock": {"wall": "elapsed time", "cpu": "CPU time"}[clock],
            "batch_size": batch_size, "input_size": list(input_size), "warmup": warmup,
            "repeats": len(times), "ms_per_batch": 1000 * batch_s, "ms_per_image": 1000 * batch_s / batch_size,
            "img_per_s": batch_size / batch_s, "times_ms": [round(1000 * t, 4) for t in times],
            **settings.describe(), "hardware": hardware(settings.device)}


def _setup(model, input_size, batch_size, device, settings, clock):
    settings = settings or RunSettings.for_device(pick_device(device))
    _check_clock(clock, settings)
    model = settings.prepare_model(copy.deepcopy(model))  # never move or change the caller's model
    x = torch.randn(batch_size, *input_size, generator=torch.Generator().manual_seed(0))
    x = settings.to_device(x)                                   # (B, C, H, W)
    if settings.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return model, x, settings


def measure_latency(model: nn.Module, *, batch_size: int = 64, input_size=(3, 32, 32), warmup: int = 3,
                    repeats: int = 10, device=None, settings: RunSettings | None = None,
                    clock: str = "wall") -> dict:
    """Inference latency (ms per image) and throughput (img/s): median of ``repeats`` batches."""
    _check(batch_size, warmup, repeats)
    model, x, settings = _setup(model, input_size, batch_size, device, settings, clock)
    model.eval()

    def forward():
        with torch.inference_mode(), settings.autocast():
            model(x)
    return _record("inference", _time(forward, settings.device, warmup, repeats, clock), batch_size, input_size,
                   warmup, settings, clock)


def measure_train_speed(model: nn.Module, *, batch_size: int = 64, input_size=(3, 32, 32), num_classes: int = 10,
                        warmup: int = 2, repeats: int = 5, device=None, settings: RunSettings | None = None,
                        clock: str = "wall") -> dict:
    """Training step time (forward + backward + SGD update): ms per image and img/s."""
    _check(batch_size, warmup, repeats)
    model, x, settings = _setup(model, input_size, batch_size, device, settings, clock)
    model.train()
    y = settings.to_device(torch.randint(0, num_classes, (batch_size,), generator=torch.Generator().manual_seed(0)))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = settings.grad_scaler()

    def step():
        with settings.autocast():
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return _record("train", _time(step, settings.device, warmup, repeats, clock), batch_size, input_size, warmup,
                   settings, clock)


def benchmark(model: nn.Module, *, input_size=(3, 32, 32), train: bool = False, **kwargs) -> dict:
    """Parameters, multiply-adds per image and latency (plus training speed if ``train``)."""
    out = {"params": count_params(model), "macs": count_macs(model, input_size),
           "latency": measure_latency(model, input_size=input_size, **kwargs)}
    if train:
        out["train_speed"] = measure_train_speed(model, input_size=input_size, **kwargs)
    return out
