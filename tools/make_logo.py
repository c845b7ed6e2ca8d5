"""Draw book/logo.png: R radix splits fused by attention into one feature map."""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, Rectangle

fig, ax = plt.subplots(figsize=(3.2, 2.0), dpi=100)
colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
for i, c in enumerate(colors):  # the radix splits
    ax.add_patch(Rectangle((0.05, 0.12 + 0.28 * i), 0.3, 0.2, color=c, alpha=0.85))
    ax.add_patch(FancyArrowPatch((0.37, 0.22 + 0.28 * i), (0.6, 0.5), arrowstyle="-|>",
                                 mutation_scale=10, color="#444", lw=1.2))
ax.add_patch(Rectangle((0.62, 0.3), 0.32, 0.4, color="#6a3d9a"))  # the fused output
ax.text(0.78, 0.5, "SA", color="white", ha="center", va="center", fontsize=20, weight="bold")
ax.set_xlim(0, 1); ax.set_ylim(0, 1); ax.axis("off")
fig.savefig("book/logo.png", transparent=True, bbox_inches="tight")
