"""Model names: the report's (``ResNeSt-14-2s1x64d``, ``ResNet-14``, ...) and timm's.

:func:`parse_name` turns a name into a :class:`ModelConfig` (what
:func:`course_lib.models.factory.create_model` builds); :func:`list_models` lists
the names accepted as they are.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

__all__ = ["ModelConfig", "parse_name", "list_models", "DEPTH_LAYERS", "TIMM_RESNEST", "TIMM_BASELINES",
           "REPORT_NAMES"]

# depth = 2 + 3 * sum(layers) for bottleneck networks (stem conv + classifier + 3 per block).
DEPTH_LAYERS = {
    14: (1, 1, 1, 1),
    26: (2, 2, 2, 2),
    # Not a standard depth. Of all 4-stage splits of 10 blocks (2 + 3*10 = 32), only
    # (2, 3, 3, 2) with the 32-wide deep stem gives the report's parameter count
    # (course_lib.study.report.REPORT_PARAMS; chapter 5 shows the search).
    32: (2, 3, 3, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    200: (3, 24, 36, 3),
    269: (3, 30, 48, 8),
}

_REPORT_NAME = re.compile(r"^(resnest|resnet)-(\d+)(?:-(\d+)s(\d+)x(\d+)d)?$", re.IGNORECASE)


@dataclass(frozen=True)
class ModelConfig:
    """What a model name stands for. ``builder`` is ``"resnest"`` (the blocks'
    :class:`~course_lib.blocks.resnest.ResNeSt`, built from ``kwargs``) or ``"timm"`` (a baseline built by timm
    from ``timm_name``). ``pretrained`` names timm's ImageNet weights (None: none exist)."""
    name: str
    builder: str
    kwargs: dict = field(default_factory=dict)
    timm_name: str | None = None
    pretrained: str | None = None

    def __getattr__(self, key):  # config.radix, config.layers, ... for resnest configs
        kwargs = self.__dict__.get("kwargs", {})
        if key in kwargs:
            return kwargs[key]
        raise AttributeError(key)


def _resnest_kwargs(layers, radix=2, cardinality=1, width=64, stem_width=32, avd_first=False):
    return dict(layers=tuple(layers), radix=radix, cardinality=cardinality, width=width,
                deep_stem=True, stem_width=stem_width, avg_down=True, avd=True,
                avd_first=avd_first)


def _resnet_kwargs(layers, radix=0, cardinality=1, width=64):
    """The report's ResNet-N baseline: 7x7 stem + max pool, strided 1x1 shortcut, no avd."""
    return dict(layers=tuple(layers), radix=radix, cardinality=cardinality, width=width,
                deep_stem=False, stem_width=64, avg_down=False, avd=False, avd_first=False)


# timm's ResNeSt names: identical configurations, same parameter names, ImageNet weights.
TIMM_RESNEST = {
    "resnest14d": (_resnest_kwargs(DEPTH_LAYERS[14]), "resnest14d.gluon_in1k"),
    "resnest26d": (_resnest_kwargs(DEPTH_LAYERS[26]), "resnest26d.gluon_in1k"),
    "resnest50d": (_resnest_kwargs(DEPTH_LAYERS[50]), "resnest50d.in1k"),
    "resnest101e": (_resnest_kwargs(DEPTH_LAYERS[101], stem_width=64), "resnest101e.in1k"),
    "resnest200e": (_resnest_kwargs(DEPTH_LAYERS[200], stem_width=64), "resnest200e.in1k"),
    "resnest269e": (_resnest_kwargs(DEPTH_LAYERS[269], stem_width=64), "resnest269e.in1k"),
    "resnest50d_4s2x40d": (_resnest_kwargs(DEPTH_LAYERS[50], 4, 2, 40, avd_first=True),
                           "resnest50d_4s2x40d.in1k"),
    "resnest50d_1s4x24d": (_resnest_kwargs(DEPTH_LAYERS[50], 1, 4, 24, avd_first=True),
                           "resnest50d_1s4x24d.in1k"),
}

# Baselines that are not bottleneck networks, built by timm (their parameter counts with 10
# classes are Table II's, course_lib.study.report).
# ResNet-18's weights are torchvision's (timm "tv_in1k"), the ones D2L fine-tunes.
TIMM_BASELINES = {
    "ResNet-18": ("resnet18", "resnet18.tv_in1k"),
    "EfficientNet-b0": ("efficientnet_b0", "efficientnet_b0.ra_in1k"),
    "EfficientNet-b1": ("efficientnet_b1", "efficientnet_b1.ft_in1k"),
    "EfficientNet-b2": ("efficientnet_b2", "efficientnet_b2.ra_in1k"),
    "EfficientNet-b3": ("efficientnet_b3", "efficientnet_b3.ra2_in1k"),
}

# The report's names that the tables use, plus the depths the book mentions.
REPORT_NAMES = (
    "ResNet-14-0s1x64d", "ResNet-14-1s1x64d",
    "ResNeSt-14-0s1x64d", "ResNeSt-14-1s1x64d", "ResNeSt-14-1s1x40d", "ResNeSt-14-1s2x64d",
    "ResNeSt-14-2s1x64d",
    "ResNeSt-14", "ResNeSt-26", "ResNeSt-32", "ResNeSt-50", "ResNeSt-101",
    "ResNet-14", "ResNet-26", "ResNet-50", "ResNet-101",
)


def list_models() -> list[str]:
    """Names :func:`create_model` accepts as they are (the report's pattern
    ``ResNeSt-<depth>-<R>s<K>x<width>d`` also takes any other R, K, width)."""
    return [*REPORT_NAMES, *TIMM_BASELINES, *TIMM_RESNEST]


def _unknown(name: str, why: str) -> ValueError:
    close = difflib.get_close_matches(name, list_models(), n=4, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(f"unknown model name {name!r}: {why}.{hint} Accepted: {', '.join(list_models())}, "
                      "or ResNeSt-<depth>-<R>s<K>x<width>d / ResNet-<depth>-<R>s<K>x<width>d "
                      f"with depth in {sorted(DEPTH_LAYERS)}.")


def parse_name(name: str) -> ModelConfig:
    """The configuration a model name stands for (report or timm naming).

    Report names, ``ResNeSt-<depth>[-<R>s<K>x<width>d]`` and ``ResNet-<depth>[-...]``:

    - depth -> blocks per stage via ``depth = 2 + 3*sum(layers)``: 14 (1,1,1,1),
      26 (2,2,2,2), 50 (3,4,6,3), 101 (3,4,23,3). The report's ResNeSt-32 is not a
      standard depth; (2,3,3,2) is the one split of 10 blocks that reproduces its
      parameter count.
    - ResNeSt: deep stem of width 32, average-pool shortcut, avd; default 2s1x64d.
      The report's ResNeSt-101 has the 32-wide stem too (its parameter count says
      so); timm's ``resnest101e`` (the paper's ResNeSt-101) has a 64-wide stem.
    - ResNet: the 7x7 stem with max pool, strided 1x1 shortcut, no avd; default
      0s1x64d (so ``ResNet-50`` is torchvision's/timm's ``resnet50``). The report's
      "ResNet-14-1s1x64d" is this network with radix-1 Split-Attention blocks.

    ``ResNet-18`` and ``EfficientNet-b0``..``b3`` are timm baselines. timm's
    ResNeSt names (``resnest14d``, ``resnest50d``, ``resnest101e``,
    ``resnest50d_4s2x40d``, ...) give timm's configurations.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a model name must be a non-empty string, got {name!r}")
    key = name.strip()
    lower = key.lower()
    if lower.startswith("efficientnet"):            # EfficientNet-b0, efficientnet_b0, "EfficientNet b0"
        lower = re.sub(r"[\s_-]+", "-", lower)
    for canonical, (timm_name, weights) in TIMM_BASELINES.items():
        if lower in (canonical.lower(), timm_name.replace("_", "-")):
            return ModelConfig(canonical, "timm", {}, timm_name, weights)
    if key.lower() in TIMM_RESNEST:
        kwargs, weights = TIMM_RESNEST[key.lower()]
        return ModelConfig(key.lower(), "resnest", dict(kwargs), key.lower(), weights)
    match = _REPORT_NAME.match(key)
    if match is None:
        raise _unknown(name, "it is neither a known name nor of the form "
                             "ResNeSt-<depth>-<R>s<K>x<width>d")
    family, depth = match.group(1).lower(), int(match.group(2))
    if depth not in DEPTH_LAYERS:
        raise _unknown(name, f"depth {depth} has no layer configuration (known depths: "
                             f"{sorted(DEPTH_LAYERS)}; depth = 2 + 3*sum(layers))")
    is_resnest = family == "resnest"
    if match.group(3) is None:
        radix, card, width = (2, 1, 64) if is_resnest else (0, 1, 64)
    else:
        radix, card, width = (int(g) for g in match.group(3, 4, 5))
    if card < 1:
        raise ValueError(f"{name!r}: cardinality K (the number before 'x') must be >= 1, got {card}")
    if width < 1:
        raise ValueError(f"{name!r}: bottleneck width (the number before 'd') must be >= 1")
    layers = DEPTH_LAYERS[depth]
    kwargs = _resnest_kwargs(layers, radix, card, width) if is_resnest else \
        _resnet_kwargs(layers, radix, card, width)
    canonical = f"{'ResNeSt' if is_resnest else 'ResNet'}-{depth}"
    if match.group(3) is not None:
        canonical += f"-{radix}s{card}x{width}d"
    weights = _timm_weights_for(kwargs)
    return ModelConfig(canonical, "resnest", kwargs, None, weights)


def _timm_weights_for(kwargs: dict) -> str | None:
    """timm's ImageNet weights for a configuration identical to one of timm's models."""
    for resnest_kwargs, weights in TIMM_RESNEST.values():
        if resnest_kwargs == kwargs:
            return weights
    if kwargs == _resnet_kwargs(DEPTH_LAYERS[50]):
        return "resnet50.tv_in1k"   # torchvision's ResNet-50 weights (the D2L fine-tuning recipe)
    if kwargs == _resnet_kwargs(DEPTH_LAYERS[101]):
        return "resnet101.tv_in1k"
    return None
