"""Where a run computes, and what that choice implies.

``pick_device()`` prefers CUDA, then Apple's MPS, then the CPU. ``RunSettings``
turns a device into the speed tricks that pay off on it:

=============  ====================  =============  ==========================
device         mixed precision       channels-last  pinned, non-blocking copy
=============  ====================  =============  ==========================
CUDA           bfloat16 if the GPU   yes            yes
               has it, else float16
               (+ gradient scaling)
MPS            no                    no             no
CPU            no                    no             no
=============  ====================  =============  ==========================

``RunSettings.for_device`` is a pure function of the device (and of whether
the GPU supports bfloat16), so the table above is tested on a machine
without a GPU.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
from dataclasses import dataclass

import torch

DEVICE_TYPES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``name`` if given, else CUDA > MPS > CPU."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    kind = name.split(":")[0]
    if kind not in DEVICE_TYPES:
        raise ValueError(f"unknown device {name!r}: use one of {DEVICE_TYPES} (cuda may carry an index, cuda:1)")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU: use device='auto' or 'cpu'")
    if kind == "mps" and not _mps_available():
        raise ValueError("device 'mps' was asked for, but this torch has no MPS backend: use 'auto' or 'cpu'")
    return torch.device(name)


@dataclass(frozen=True)
class RunSettings:
    """The device plus the speed options used on it."""
    device: torch.device
    amp_dtype: torch.dtype | None = None   # autocast dtype, None = float32 throughout
    channels_last: bool = False            # NHWC memory format for images and conv weights
    pin_memory: bool = False               # page-locked host copy before an async transfer

    @classmethod
    def for_device(cls, device, *, amp: bool = True, bf16_supported: bool | None = None) -> "RunSettings":
        """The table of the module docstring; ``amp=False`` keeps float32 everywhere."""
        device = pick_device(device)
        if device.type != "cuda":
            return cls(device)
        if bf16_supported is None:
            bf16_supported = torch.cuda.is_bf16_supported()
        dtype = (torch.bfloat16 if bf16_supported else torch.float16) if amp else None
        return cls(device, amp_dtype=dtype, channels_last=True, pin_memory=True)

    @property
    def non_blocking(self) -> bool:
        return self.pin_memory

    @property
    def use_scaler(self) -> bool:
        """Gradient scaling is needed for float16 only (bfloat16 has float32's range)."""
        return self.amp_dtype == torch.float16

    @property
    def precision(self) -> str:
        return next(k for k, v in PRECISIONS.items() if v == self.amp_dtype)

    def autocast(self):
        """Mixed precision context for forward passes, or a no-op."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.use_scaler)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move the model to the device (in channels-last layout if chosen)."""
        if self.channels_last:
            return model.to(self.device, memory_format=torch.channels_last)
        return model.to(self.device)

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        """Copy a host tensor to the device (pinned + asynchronous where it helps)."""
        if t.device == self.device:
            return t
        if self.pin_memory and t.device.type == "cpu":
            t = t.pin_memory()
        return t.to(self.device, non_blocking=self.non_blocking)

    def describe(self) -> dict:
        return {"device": str(self.device), "precision": self.precision, "channels_last": self.channels_last}


def cpu_name() -> str:
    """The CPU model, e.g. 'Intel(R) Xeon(R) CPU @ 2.20GHz'."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device | None = None) -> dict:
    """What a measurement ran on: CPU, threads, GPU, torch version."""
    device = device or torch.device("cpu")
    info = {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": str(device), "gpu": None, "torch": torch.__version__,
            "python": platform.python_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        info["gpu"] = "Apple MPS"
    return info


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    try:
        import numpy as np
        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic(enabled: bool = True):
    """Ask torch for deterministic kernels inside the block, then restore the old setting.

    ``warn_only``: an op without a deterministic version warns instead of failing.
    """
    old = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    old_bench = torch.backends.cudnn.benchmark
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old[0], warn_only=old[1])
        torch.backends.cudnn.benchmark = old_bench


def rng_state() -> dict:
    """Every global random state a run depends on (for checkpoints)."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np
        state["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np
        np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
