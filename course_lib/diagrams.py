"""Block diagrams drawn with matplotlib: boxes, arrows and tensor shapes.

A small box-and-arrow kit (:func:`canvas`, :func:`box`, :func:`arrow`, :func:`node`)
and one function per block of the book. Every drawing function takes the block's
sizes, writes the tensor shapes on the arrows, accepts ``ax=`` to draw into an
existing axes (for widgets and side-by-side figures) and returns the figure.

Coordinates are in "box units": x grows to the right, y grows *upwards*, and a
block is drawn from the top (input) to the bottom (output), as in the papers.
Shapes are written for one image, channels first: ``(C, H, W)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle

__all__ = ["Box", "canvas", "box", "node", "arrow", "elbow", "COLORS",
           "draw_grouped_conv", "draw_resnext_forms", "draw_se", "draw_sk"]

# One colour per kind of layer, used by every diagram of the book.
COLORS = {
    "tensor": "#f2f2f2",   # a feature map, or the input/output
    "conv1": "#cfe2f3",    # 1x1 convolution
    "conv": "#9fc5e8",     # k x k convolution
    "pool": "#d9ead3",     # pooling / squeeze
    "fc": "#fff2cc",       # fully connected (dense) layer
    "act": "#fce5cd",      # activation: ReLU, sigmoid, softmax
    "norm": "#ead1dc",     # batch normalisation
    "op": "#ffffff",       # sum, product, concatenation
}
GROUP_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
                "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


@dataclass(frozen=True)
class Box:
    """Where a drawn box is: centre (x, y), width w and height h; anchors for arrows."""
    x: float
    y: float
    w: float
    h: float

    @property
    def top(self):
        return (self.x, self.y + self.h / 2)

    @property
    def bottom(self):
        return (self.x, self.y - self.h / 2)

    @property
    def left(self):
        return (self.x - self.w / 2, self.y)

    @property
    def right(self):
        return (self.x + self.w / 2, self.y)


def canvas(width: float, height: float, ax=None, scale: float = 0.9, title: str | None = None):
    """An empty drawing area of width x height box units: (fig, ax), axes hidden."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(width * scale, height * scale))
    else:
        fig = ax.figure
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11)
    return fig, ax


def box(ax, x: float, y: float, text: str, w: float = 2.4, h: float = 0.55, kind: str = "conv",
        color: str | None = None, fontsize: float = 9) -> Box:
    """A rounded box centred at (x, y) with ``text``; ``kind`` picks a colour from COLORS."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=color or COLORS[kind], ec="#333333", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return Box(x, y, w, h)


def node(ax, x: float, y: float, symbol: str = "+", r: float = 0.22, fontsize: float = 12) -> Box:
    """A small circle with an operator (+ for a sum, x for a product, c for concatenation)."""
    ax.add_patch(Circle((x, y), r, fc=COLORS["op"], ec="#333333", lw=1))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=fontsize)
    return Box(x, y, 2 * r, 2 * r)


def arrow(ax, start, end, label: str | None = None, side: str = "right", fontsize: float = 8,
          color: str = "#333333", rad: float = 0.0, lw: float = 1.0):
    """An arrow from point ``start`` to ``end``, with an optional label (a tensor shape) beside it."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, color=color, lw=lw,
                                 shrinkA=0, shrinkB=0, connectionstyle=f"arc3,rad={rad}"))
    if label:
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        dx = 0.12 if side == "right" else -0.12
        ax.text(mx + dx, my, label, ha="left" if side == "right" else "right", va="center",
                fontsize=fontsize, color="#555555", family="monospace")


def elbow(ax, points, label: str | None = None, fontsize: float = 8, color: str = "#333333"):
    """A line through ``points`` with an arrow head at the last one (shortcuts, skip paths).

    The label is written beside the longest segment.
    """
    xs, ys = zip(*points)
    ax.plot(xs[:-1], ys[:-1], color=color, lw=1)
    arrow(ax, points[-2], points[-1], color=color)
    if label:
        seg = max(range(len(points) - 1), key=lambda i: abs(xs[i + 1] - xs[i]) + abs(ys[i + 1] - ys[i]))
        mx, my = (xs[seg] + xs[seg + 1]) / 2, (ys[seg] + ys[seg + 1]) / 2
        ax.text(mx + 0.1, my, label, ha="left", va="center", fontsize=fontsize, color="#555555",
                family="monospace")


def _finish(fig, ax_given):
    if ax_given is None:
        fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- grouped convolution
def draw_grouped_conv(in_channels: int = 16, out_channels: int = 16, groups: int = 4, kernel_size: int = 3,
                      height: int = 32, width: int = 32, ax=None, max_drawn: int = 32):
    """Which input channels feed which output channels in a grouped convolution.

    Each channel is a small square, coloured by its group; a line joins every
    (input, output) pair that shares a weight. ``groups=1`` is a dense convolution.
    """
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ValueError(f"groups ({groups}) must be >= 1 and divide in_channels ({in_channels}) "
                         f"and out_channels ({out_channels})")
    given = ax
    fig, ax = canvas(9, 5.2, ax)
    n_i, n_o = min(in_channels, max_drawn), min(out_channels, max_drawn)
    xi = [0.6 + 7.8 * (k + 0.5) / n_i for k in range(n_i)]
    xo = [0.6 + 7.8 * (k + 0.5) / n_o for k in range(n_o)]
    side = min(7.8 / max(n_i, n_o) * 0.8, 0.35)
    y_in, y_out = 4.1, 1.2

    def group_of(k, n):  # channel k of n drawn squares -> its group
        return k * groups // n

    for a in range(n_i):
        for b in range(n_o):
            if group_of(a, n_i) == group_of(b, n_o):
                ax.plot([xi[a], xo[b]], [y_in - side / 2, y_out + side / 2], lw=0.5, alpha=0.45,
                        color=GROUP_COLORS[group_of(a, n_i) % len(GROUP_COLORS)])
    for xs, y, n in ((xi, y_in, n_i), (xo, y_out, n_o)):
        for k, x in enumerate(xs):
            ax.add_patch(Rectangle((x - side / 2, y - side / 2), side, side, ec="#333333", lw=0.5,
                                   fc=GROUP_COLORS[group_of(k, n) % len(GROUP_COLORS)]))
    cut = " (first %d drawn)" % max_drawn if max(in_channels, out_channels) > max_drawn else ""
    ax.text(4.5, y_in + 0.55, f"input  ({in_channels}, {height}, {width}){cut}", ha="center", fontsize=9,
            family="monospace")
    ax.text(4.5, y_out - 0.65, f"output ({out_channels}, {height}, {width})", ha="center", fontsize=9,
            family="monospace")
    weights = out_channels * (in_channels // groups) * kernel_size ** 2
    ax.text(4.5, (y_in + y_out) / 2, f"{kernel_size}x{kernel_size} conv, g = {groups}\n"
            f"{groups} x ({in_channels // groups} -> {out_channels // groups}) channels\n"
            f"weights: {weights:,}", ha="center", va="center", fontsize=9,
            bbox=dict(boxstyle="round", fc="white", ec="#999999", alpha=0.9))
    return _finish(fig, given)


# --------------------------------------------------------------------------- ResNeXt, Fig. 1
def draw_resnext_forms(channels: int = 256, bottleneck: int = 128, cardinality: int = 32, ax=None):
    """The two equivalent ResNeXt bottlenecks of the report's Fig. 1, side by side.

    Left: K branches, each 1x1 (c -> b/K) then 3x3 (b/K -> b/K), concatenated, one 1x1
    (b -> c). Right: 1x1 (c -> b), grouped 3x3 (b -> b, K groups), 1x1 (b -> c).
    Three branches are drawn; the dots stand for the other K - 3.
    """
    c, b, k = channels, bottleneck, cardinality
    if k < 1 or b % k:
        raise ValueError(f"the bottleneck b ({b}) must be a multiple of the cardinality K ({k})")
    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(12, 6.2), gridspec_kw={"width_ratios": [1.45, 1]})
    else:
        fig, axes = ax.figure, None
    left, right = (axes if axes is not None else (ax, None))
    w = b // k
    # left: branch form
    canvas(8.6, 7.3, left, title=f"branch form: K = {k} paths")
    top = box(left, 4.2, 6.4, f"input ({c}, H, W)", w=3.0, kind="tensor")
    xs = [1.8, 3.9, 7.0] if k >= 3 else [2.2, 6.2] if k == 2 else [4.2]
    names = ["path 1", "path 2", f"path {k}"] if k >= 3 else [f"path {i + 1}" for i in range(k)]
    concat = node(left, 4.2, 2.35, "c")
    for x, name in zip(xs, names):
        b1 = box(left, x, 4.9, f"1x1, {c}->{w}", w=1.75, kind="conv1", fontsize=8)
        b2 = box(left, x, 3.6, f"3x3, {w}->{w}", w=1.75, kind="conv", fontsize=8)
        arrow(left, (top.bottom[0], top.bottom[1]), b1.top)
        arrow(left, b1.bottom, b2.top, f"({w},H,W)" if x == xs[0] else None, fontsize=7)
        arrow(left, b2.bottom, concat.top if x == 4.2 else (concat.x + (0.15 if x > 4.2 else -0.15),
                                                             concat.y + 0.15),
              f"({w},H,W)" if x == xs[-1] else None, fontsize=7)
        left.text(x, 5.35, name, ha="center", fontsize=7, color="#555555")
    if k > 3:
        left.text(5.45, 4.25, ". . .", ha="center", va="center", fontsize=14)
    last = box(left, 4.2, 1.25, f"1x1, {b}->{c}", w=2.2, kind="conv1")
    arrow(left, concat.bottom, last.top, f"({b},H,W) = {k} x {w}", fontsize=7)
    out = node(left, 4.2, 0.35, "+")
    arrow(left, last.bottom, out.top)
    elbow(left, [top.left, (0.35, top.y), (0.35, out.y), out.left])
    left.text(0.45, 2.0, "identity", fontsize=7, color="#555555", rotation=90)
    # right: grouped form
    canvas(5.6, 7.3, right, title="grouped form: one grouped 3x3")
    t = box(right, 2.8, 6.4, f"input ({c}, H, W)", w=3.0, kind="tensor")
    r1 = box(right, 2.8, 4.9, f"1x1, {c}->{b}", w=2.6, kind="conv1")
    r2 = box(right, 2.8, 3.6, f"3x3, {b}->{b}, g={k}", w=2.6, kind="conv")
    r3 = box(right, 2.8, 1.25, f"1x1, {b}->{c}", w=2.6, kind="conv1")
    arrow(right, t.bottom, r1.top, f"({c},H,W)", fontsize=7)
    arrow(right, r1.bottom, r2.top, f"({b},H,W)", fontsize=7)
    arrow(right, r2.bottom, r3.top, f"({b},H,W)", fontsize=7)
    o = node(right, 2.8, 0.35, "+")
    arrow(right, r3.bottom, o.top, f"({c},H,W)", fontsize=7)
    elbow(right, [t.left, (0.6, t.y), (0.6, o.y), o.left])
    right.text(0.7, 2.0, "identity", fontsize=7, color="#555555", rotation=90)
    if ax is None:
        fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- SE
def draw_se(channels: int = 64, reduction: int = 16, height: int = 32, width: int = 32, ax=None):
    """The Squeeze-and-Excitation block with its tensor shapes (one image)."""
    c, h, w = channels, height, width
    d = max(c // reduction, 1)
    fig, ax_ = canvas(6.4, 7.6, ax, title=f"Squeeze-and-Excitation, C = {c}, r = {reduction}")
    u = box(ax_, 2.4, 6.9, "U", w=1.6, kind="tensor")
    gap = box(ax_, 2.4, 5.7, "global average pool", w=2.8, kind="pool")
    fc1 = box(ax_, 2.4, 4.55, f"FC  $W$: {c}->{d}", w=2.8, kind="fc")
    relu = box(ax_, 2.4, 3.6, "ReLU  (δ)", w=2.8, kind="act")
    fc2 = box(ax_, 2.4, 2.65, f"FC  $\\tilde{{W}}$: {d}->{c}", w=2.8, kind="fc")
    sig = box(ax_, 2.4, 1.7, "sigmoid  (σ)", w=2.8, kind="act")
    mul = node(ax_, 2.4, 0.75, "×")
    arrow(ax_, u.bottom, gap.top, f"({c}, {h}, {w})")
    arrow(ax_, gap.bottom, fc1.top, f"s: ({c},)")
    arrow(ax_, fc1.bottom, relu.top, f"({d},)")
    arrow(ax_, relu.bottom, fc2.top, f"z: ({d},)")
    arrow(ax_, fc2.bottom, sig.top, f"({c},)")
    arrow(ax_, sig.bottom, mul.top, f"a: ({c},)")
    elbow(ax_, [u.left, (0.45, u.y), (0.45, mul.y), mul.left])
    ax_.text(0.55, 3.6, f"U ({c},{h},{w})", fontsize=8, color="#555555", family="monospace", rotation=90,
             va="center")
    ax_.text(2.75, 0.3, f"V = a·U  ({c}, {h}, {w})", fontsize=8, va="center", family="monospace")
    ax_.text(4.1, 5.7, "squeeze", fontsize=9, style="italic", va="center")
    ax_.text(4.1, 3.6, "excitation", fontsize=9, style="italic", va="center")
    ax_.text(4.1, 0.75, "scale", fontsize=9, style="italic", va="center")
    return _finish(fig, ax)


# --------------------------------------------------------------------------- SK
def draw_sk(channels: int = 64, kernel_sizes=(3, 5), reduction: int = 16, min_channels: int = 32,
            height: int = 32, width: int = 32, ax=None):
    """The Selective Kernel convolution: split into R branches, fuse, select (one image)."""
    c, h, w = channels, height, width
    ks = tuple(kernel_sizes)
    r_ = len(ks)
    if r_ < 1:
        raise ValueError("kernel_sizes needs at least one entry (one per branch)")
    d = max(c // reduction, min_channels)
    width_units = max(8.0, 2.3 * r_ + 3.2)
    fig, ax_ = canvas(width_units, 8.6, ax, title=f"Selective Kernel, C = {c}, R = {r_}, d = max(C/r, L) = {d}")
    mid = width_units / 2 - 0.9
    x_in = box(ax_, mid, 8.1, f"X ({c}, {h}, {w})", w=2.6, kind="tensor")
    xs = [mid + (i - (r_ - 1) / 2) * 2.3 for i in range(r_)]
    branch_out = []
    for i, (x, k) in enumerate(zip(xs, ks)):
        bx = box(ax_, x, 6.9, f"{k}x{k} conv\nBN, ReLU", w=1.9, h=0.8, kind="conv", fontsize=8)
        arrow(ax_, x_in.bottom, bx.top)
        branch_out.append(bx)
    fuse = node(ax_, mid, 5.55, "+")
    for i, bx in enumerate(branch_out):
        arrow(ax_, bx.bottom, fuse.top if len(xs) == 1 or abs(bx.x - mid) < 1e-6
              else (fuse.x + (0.16 if bx.x > mid else -0.16), fuse.y + 0.16),
              f"U{i + 1} ({c},{h},{w})" if i == 0 else None, side="left", fontsize=7)
    gap = box(ax_, mid, 4.6, "global average pool", w=2.8, kind="pool")
    fc1 = box(ax_, mid, 3.65, f"FC {c}->{d}, BN, ReLU", w=2.8, kind="fc")
    fc2 = box(ax_, mid, 2.7, f"FC {d}->{r_}x{c}", w=2.8, kind="fc")
    soft = box(ax_, mid, 1.75, "softmax over branches", w=2.8, kind="act")
    out = node(ax_, mid, 0.6, "Σ")
    arrow(ax_, fuse.bottom, gap.top, f"U ({c},{h},{w})")
    arrow(ax_, gap.bottom, fc1.top, f"s: ({c},)")
    arrow(ax_, fc1.bottom, fc2.top, f"z: ({d},)")
    arrow(ax_, fc2.bottom, soft.top, f"({r_}, {c})")
    arrow(ax_, soft.bottom, out.top, f"a: ({r_}, {c}), Σ_i a_ic = 1")
    right = branch_out[-1]
    x_far = right.right[0] + 0.4
    elbow(ax_, [right.right, (x_far, right.y), (x_far, out.y), out.right])
    ax_.text(x_far + 0.1, 3.2, f"U1..U{r_}", fontsize=7, color="#555555", family="monospace", rotation=90,
             va="center")
    ax_.text(mid + 0.35, 0.2, f"V = Σ_i a_i·U_i  ({c}, {h}, {w})", fontsize=8, family="monospace")
    ax_.text(0.1, 6.9, "split", fontsize=9, style="italic", va="center")
    ax_.text(0.1, 4.1, "fuse", fontsize=9, style="italic", va="center")
    ax_.text(0.1, 1.75, "select", fontsize=9, style="italic", va="center")
    return _finish(fig, ax)
