"""Small matplotlib helpers shared by the chapters."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def show_images(images: torch.Tensor, titles=None, ncols: int = 8, scale: float = 1.4):
    """Show a batch of uint8 (N, 3, H, W) or float images in a grid; returns the figure."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * scale, nrows * scale * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = images[i]
            img = img.permute(1, 2, 0) if img.ndim == 3 else img
            ax.imshow(img.numpy() if img.dtype == torch.uint8 else img.clamp(0, 1).numpy())
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    return fig
