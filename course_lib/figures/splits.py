"""One image through one Split-Attention convolution: its radix splits U_i, their weights a_i and V."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

__all__ = ["draw_radix_splits"]


def _check(u: torch.Tensor, a: torch.Tensor, v: torch.Tensor, channels) -> None:
    if u.ndim != 4 or a.shape != u.shape[:2] or v.shape != u.shape[1:]:
        raise ValueError(f"need U (R, C, h, w), a (R, C) and V (C, h, w) of one image, got "
                         f"{tuple(u.shape)}, {tuple(a.shape)}, {tuple(v.shape)}")
    if not channels or any(not 0 <= c < u.shape[1] for c in channels):
        raise ValueError(f"channels must be a non-empty list of indices below C = {u.shape[1]}, got {channels}")


def _weights_panel(ax, weights: torch.Tensor, names) -> None:
    """A horizontal bar per split: a_i in [0, 1]."""
    rows = range(len(weights))
    ax.barh(rows, weights.tolist(), color="#4c72b0")
    ax.set_yticks(rows, [f"$a_{i + 1}$ ({n})" for i, n in zip(rows, names)], fontsize=8)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    for i, w in zip(rows, weights.tolist()):
        ax.text(min(w + 0.03, 0.75), i, f"{w:.2f}", va="center", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)


def draw_radix_splits(image: torch.Tensor, u: torch.Tensor, a: torch.Tensor, v: torch.Tensor, channels,
                      split_names=None, scale: float = 1.7):
    """Image, then one row per channel c: U_1[c], ..., U_R[c], the weights a_i[c], and V[c].

    ``image`` uint8 (3, H, W); ``u`` (R, C, h, w), ``a`` (R, C), ``v`` (C, h, w) for that image.
    The maps of a row share one colour scale, from 0 to the row's largest value. Returns the figure.
    """
    _check(u, a, v, channels)
    r = u.shape[0]
    names = split_names or [f"split {i + 1}" for i in range(r)]
    fig, axes = plt.subplots(len(channels), r + 3, figsize=(scale * (r + 3.4), scale * len(channels)),
                             squeeze=False, gridspec_kw={"width_ratios": [1] * (r + 1) + [1.4, 1]})
    for row, c in zip(axes, channels):
        top = max(u[:, c].max().item(), v[c].max().item(), 1e-6)
        maps = [(u[i, c], f"$U_{i + 1}$, {names[i]}") for i in range(r)] + [(v[c], "$V$")]
        for ax, (m, title) in zip([*row[1:r + 1], row[-1]], maps):
            ax.imshow(m.float().numpy(), cmap="magma", vmin=0, vmax=top, interpolation="nearest")
            ax.set_title(f"{title}, channel {c}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        _weights_panel(row[r + 1], a[:, c], names)
        row[0].axis("off")
    axes[0, 0].imshow(image.permute(1, 2, 0).numpy())
    axes[0, 0].set_title("image", fontsize=8)
    fig.tight_layout()
    return fig
