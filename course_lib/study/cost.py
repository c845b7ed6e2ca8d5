"""What a profile's runs cost: images seen, multiply-adds, and hours at the rate this machine measured.

A training image costs about three forward passes (the forward pass, then the backward pass through the
activations and through the weights); with a frozen body (a linear probe) about one. Every CIFAR-10 epoch
also evaluates the validation images, and every run ends on the test images. The rate comes from the
finished records of a folder: their multiply-adds over their training time, as they ran (bf16 or fp32,
idle or beside other work), so it is a measurement of this book's queue, not of the hardware's peak.
"""
from __future__ import annotations

from functools import lru_cache

from .specs import Spec, all_specs, find, results_dir

# (training, test) images of each copy of the data; fold runs pool both and train on (k - 1) / k of them
IMAGES = {"cifar10": (50_000, 10_000), "hotdog": (2_000, 800), "hotdog64": (1_598, 400)}
NATIVE_SIZE = {"cifar10": 32, "hotdog": 224, "hotdog64": 64}
CLASSES = {"cifar10": 10, "hotdog": 2}
# Which Hotdog each profile runs on in this book: offline the 64-pixel stand-in, with internet D2L's own
HOTDOG_COPY = {"smoke": "hotdog64", "cpu": "hotdog64", "full": "hotdog"}
# Not measured (this book's machine has no GPU): what one GPU is assumed to sustain on these small networks
GPU_RATE = (0.5e12, 2.5e12)


def copy_of(spec: Spec, profile: str) -> str:
    return HOTDOG_COPY[profile] if spec.dataset == "hotdog" else spec.dataset


def images(spec: Spec, profile: str) -> tuple[int, int]:
    """(training images per epoch, images evaluated over the whole run) of one run."""
    train_all, test_all = IMAGES[copy_of(spec, profile)]
    if spec.dataset == "cifar10":
        val = 5_000 if spec.val_size is None else spec.val_size
        train = spec.images or train_all - val
        return train, val * spec.epochs + (spec.test_images or test_all)
    if spec.folds:
        pooled = train_all + test_all
        test = pooled // spec.folds
        return min(spec.images or pooled, pooled - test), min(spec.test_images or test, test)
    return spec.images or train_all, spec.test_images or test_all


@lru_cache(maxsize=None)
def macs_per_image(model: str, size: int, classes: int) -> int:
    """Multiply-adds of one forward pass, counted on the meta device (nothing is allocated)."""
    import torch

    from ..blocks.cost import count_macs
    from ..models.factory import create_model
    with torch.device("meta"):
        net = create_model(model, num_classes=classes)
    return count_macs(net, (3, size, size))


def run_cost(spec: Spec, profile: str) -> dict:
    """Images trained and multiply-adds of one run."""
    copy = copy_of(spec, profile)
    size = spec.image_size or NATIVE_SIZE[copy]
    macs = macs_per_image(spec.model, size, CLASSES[spec.dataset])
    train, evaluated = images(spec, profile)
    passes = 1 if spec.recipe_fields.get("freeze_body") else 3
    return {"dataset": spec.dataset, "trained": train * spec.epochs,
            "macs": macs * (passes * train * spec.epochs + evaluated)}


def profile_cost(profile: str) -> dict:
    """Runs, images trained (CIFAR-10, Hotdog) and multiply-adds of every run of a profile."""
    costs = [run_cost(s, profile) for s in all_specs(profile)]
    return {"profile": profile, "runs": len(costs),
            "cifar10 images": sum(c["trained"] for c in costs if c["dataset"] == "cifar10"),
            "hotdog images": sum(c["trained"] for c in costs if c["dataset"] == "hotdog"),
            "macs": sum(c["macs"] for c in costs)}


def measured_rates(profile: str, directory=None) -> dict:
    """Multiply-adds per second of a profile's finished records: per network, its fastest run (the machine
    nearly idle) and its median run (as the queue ran, beside other work); over all runs, the median run and
    the rate as run (all multiply-adds over all training time, slow runs weighing most)."""
    import statistics
    directory = results_dir(profile, directory)
    done = [(s, rec) for s in all_specs(profile) for rec in [find(s, directory)]
            if rec and rec.get("status") == "finished" and rec.get("wall_seconds")]
    per_run = [(s, run_cost(s, profile)["macs"], rec["wall_seconds"]) for s, rec in done]
    by_model: dict = {}
    for s, macs, seconds in per_run:
        by_model.setdefault(s.model, []).append(macs / seconds)
    return {"runs": len(done), "done": {s for s, _ in done},
            "fastest": {m: max(v) for m, v in by_model.items()},
            "model": {m: statistics.median(v) for m, v in by_model.items()},
            "median": statistics.median(m / t for _, m, t in per_run) if per_run else None,
            "as run": sum(m for _, m, _ in per_run) / sum(t for _, _, t in per_run) if per_run else None,
            "hours": sum(t for _, _, t in per_run) / 3600,
            "hardware": "; ".join(sorted({(rec.get("hardware") or {}).get("cpu") or "CPU" for _, rec in done}))}


def cpu_hours(specs, profile: str, rates: dict, which: str = "model") -> float:
    """Hours of training at the measured rates (``which``: 'model', each network's median run, or 'fastest',
    its fastest run), for a network that has not run yet the median run's."""
    return sum(run_cost(s, profile)["macs"] / rates[which].get(s.model, rates["median"]) for s in specs) / 3600


def _hours(specs, profile: str, rates: dict) -> str:
    return f"{cpu_hours(specs, profile, rates, 'fastest'):.1f} to {cpu_hours(specs, profile, rates):.1f}"


def report(profiles=("smoke", "cpu", "full"), measured: str = "cpu", directory=None) -> str:
    """The cost table of the profiles, with CPU hours at the rates measured from ``measured``'s finished records."""
    rates = measured_rates(measured, directory)
    lines = [f"{'profile':8} {'runs':>5} {'CIFAR-10 images':>16} {'Hotdog images':>14} {'multiply-adds':>14} "
             f"{'CPU hours':>14} {'GPU hours (assumed)':>20}"]
    for p in profiles:
        c = profile_cost(p)
        cpu = f"{_hours(all_specs(p), p, rates):>14}" if rates["median"] else f"{'-':>14}"
        gpu = f"{c['macs'] / GPU_RATE[1] / 3600:.2f} to {c['macs'] / GPU_RATE[0] / 3600:.2f}"
        lines.append(f"{p:8} {c['runs']:>5} {c['cifar10 images']:>16,} {c['hotdog images']:>14,} "
                     f"{c['macs']:>14.2e} {cpu} {gpu:>20}")
    if rates["median"]:
        left = [s for s in all_specs(measured) if s not in rates["done"]]
        lines += [f"rates from the {rates['runs']} finished '{measured}' runs ({rates['hours']:.1f} hours of training; "
                  f"{rates['hardware']}): median run {rates['median']:.2e} multiply-adds per second, "
                  f"{min(rates['model'].values()):.1e} to {max(rates['model'].values()):.1e} by network; "
                  f"as run, slow runs included, {rates['as run']:.2e}",
                  f"left in '{measured}': {len(left)} runs, {_hours(left, measured, rates)} CPU hours",
                  "CPU hours: at each network's fastest run (an idle machine) to its median run (as the queue ran)"]
    else:
        lines.append(f"no finished '{measured}' run to measure a rate from")
    lines.append(f"GPU hours assume {GPU_RATE[0]:.1e} to {GPU_RATE[1]:.1e} multiply-adds per second: "
                 "an assumption, not a measurement")
    return "\n".join(lines)
