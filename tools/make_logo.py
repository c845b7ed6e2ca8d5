"""Draw book/logo.png: R radix splits, weighted by attention, summed into one feature map.

    .venv/bin/python tools/make_logo.py

Left, three feature-map splits (each a small stack of channels); their arrows are
as thick as their attention weights, which sum to one; a circle adds them up;
right, the fused map, "SA". Transparent, with greys that read on light and dark themes.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "book" / "logo.png"
SPLITS = ["#1f77b4", "#ff7f0e", "#2ca02c"]   # the radix splits
WEIGHTS = [0.5, 0.3, 0.2]                    # their attention weights (a softmax: sum 1)
FUSED = "#6a3d9a"
LINE = "#8a8a8a"


def feature_map(ax, x, y, size, color, depth=3, step=0.035):
    """A stack of `depth` channel squares, drawn back to front, lower-left corner at (x, y)."""
    for k in reversed(range(depth)):
        ax.add_patch(FancyBboxPatch((x + k * step, y + k * step), size, size,
                                    boxstyle="round,pad=0,rounding_size=0.02",
                                    fc=color, ec="white", lw=1.2, alpha=1 - 0.25 * k))


def main():
    fig, ax = plt.subplots(figsize=(3.6, 2.0), dpi=150)
    hub = (1.02, 0.5)
    for i, (color, w) in enumerate(zip(SPLITS, WEIGHTS)):
        y = 0.8 - 0.34 * i
        feature_map(ax, 0.05, y - 0.1, 0.2, color)
        ax.add_patch(FancyArrowPatch((0.36, y), hub, arrowstyle="-", connectionstyle="arc3,rad=0",
                                     color=color, lw=1 + 9 * w, shrinkB=16, capstyle="round"))
    ax.add_patch(Circle(hub, 0.1, fc="none", ec=LINE, lw=2.2))
    ax.text(*hub, "Σ", ha="center", va="center", fontsize=17, color=LINE, weight="bold")
    ax.add_patch(FancyArrowPatch((hub[0] + 0.11, 0.5), (1.36, 0.5), arrowstyle="-|>",
                                 mutation_scale=16, color=LINE, lw=2.2))
    feature_map(ax, 1.4, 0.29, 0.38, FUSED)
    ax.text(1.59, 0.48, "SA", color="white", ha="center", va="center", fontsize=19, weight="bold")
    ax.set_xlim(0, 1.95)
    ax.set_ylim(0, 1.05)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.savefig(OUT, transparent=True, bbox_inches="tight", pad_inches=0.02)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
