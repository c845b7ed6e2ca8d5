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

from ..blocks.cost import conv_params
from ..blocks.grouped import check_groups
from ..blocks.split_attn import check_attn_channels, split_attn_channels

__all__ = ["Box", "canvas", "box", "node", "arrow", "elbow", "figure_png", "COLORS",
           "draw_grouped_conv", "draw_resnext_forms", "draw_inception", "draw_se", "draw_sk"]

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


def figure_png(fig, dpi: int = 80) -> bytes:
    """The figure as PNG bytes, then closed: the value of an ``ipywidgets.Image``.

    Widgets that redraw a figure this way need no Output widget, so a notebook run
    by nbclient or nbval stores their first picture in the widget state.
    """
    import io
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


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
    weights = conv_params(in_channels, out_channels, kernel_size, groups)  # checks that groups divide both
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
    check_groups(b, k, what="the bottleneck b")
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


def draw_inception(in_channels: int = 192, out_1x1: int = 64, reduce_3x3: int = 96, out_3x3: int = 128,
                   reduce_5x5: int = 16, out_5x5: int = 32, pool_proj: int = 32, height: int = 28, ax=None):
    """GoogLeNet's Inception module: four different paths over one input, concatenated.

    Defaults are the module "3a". Every convolution is followed by a ReLU (not drawn);
    the shapes on the arrows are for one ``in_channels x height x height`` input.
    """
    h = height
    out = out_1x1 + out_3x3 + out_5x5 + pool_proj
    fig, ax_ = canvas(10.4, 6.2, ax, title=f"Inception module: 4 different paths, {in_channels} -> {out} channels")
    top = box(ax_, 5.2, 5.5, f"input ({in_channels}, {h}, {h})", w=3.2, kind="tensor")
    xs = [1.4, 3.9, 6.5, 9.0]
    firsts = [None,
              box(ax_, xs[1], 4.2, f"1x1, {in_channels}->{reduce_3x3}", w=2.1, kind="conv1", fontsize=8),
              box(ax_, xs[2], 4.2, f"1x1, {in_channels}->{reduce_5x5}", w=2.1, kind="conv1", fontsize=8),
              box(ax_, xs[3], 4.2, "3x3 max pool", w=2.1, kind="pool", fontsize=8)]
    lasts = [box(ax_, xs[0], 2.8, f"1x1, {in_channels}->{out_1x1}", w=2.1, kind="conv1", fontsize=8),
             box(ax_, xs[1], 2.8, f"3x3, {reduce_3x3}->{out_3x3}", w=2.1, kind="conv", fontsize=8),
             box(ax_, xs[2], 2.8, f"5x5, {reduce_5x5}->{out_5x5}", w=2.1, kind="conv", fontsize=8),
             box(ax_, xs[3], 2.8, f"1x1, {in_channels}->{pool_proj}", w=2.1, kind="conv1", fontsize=8)]
    widths = [out_1x1, out_3x3, out_5x5, pool_proj]
    middle = [None, reduce_3x3, reduce_5x5, in_channels]
    concat = node(ax_, 5.2, 1.4, "c")
    for x, first, last, c_mid, c_out in zip(xs, firsts, lasts, middle, widths):
        if first is None:                 # the lone 1x1 path: around the other boxes
            elbow(ax_, [top.left, (x, top.y), last.top])
        else:
            arrow(ax_, top.bottom, first.top)
        if first is not None:
            arrow(ax_, first.bottom, last.top, f"({c_mid},{h},{h})", fontsize=7)
        arrow(ax_, last.bottom, (concat.x + 0.2 * (x - concat.x) / abs(x - concat.x), concat.y + 0.12),
              f"({c_out},{h},{h})", side="left" if x < concat.x else "right", fontsize=7)
    result = box(ax_, 5.2, 0.35, f"output ({out}, {h}, {h})", w=3.2, kind="tensor")
    arrow(ax_, concat.bottom, result.top)
    return _finish(fig, ax)


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
    arrow(ax_, soft.bottom, out.top, f"a: ({r_}, {c})")
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


# --------------------------------------------------------------------------- Split-Attention, Figs. 4-5
# (chapters 4-5; appended to the kit above, which they reuse)
__all__ += ["draw_split_attention", "draw_featuremap_orders", "draw_resnest_block", "draw_stems"]


def _shown(n: int, most: int = 3) -> list:
    """Indices drawn for n items: all if n <= most, else the first most-1 and the last (None = dots)."""
    return list(range(n)) if n <= most else [*range(most - 1), None, n - 1]


def _cell(ax, x: float, y: float, k: int, r: int, side: float, label: bool = True, fontsize: float = 6):
    """One featuremap group: coloured by its cardinal group k, labelled 'k,i' (both counted from 1; i is the radix split)."""
    ax.add_patch(Rectangle((x - side / 2, y - side / 2), side, side, ec="#333333", lw=0.6,
                           fc=GROUP_COLORS[k % len(GROUP_COLORS)], alpha=1.0 - 0.55 * r / max(r + 1, 4)))
    if label:
        ax.text(x, y, f"{k + 1},{r + 1}", ha="center", va="center", fontsize=fontsize, color="white",
                fontweight="bold")


def draw_split_attention(cardinality: int = 2, radix: int = 2, channels: int = 64, height: int = 32,
                         width: int = 32, attn_channels: int | None = None, axes=None):
    """Split-Attention in its two layouts, side by side, with the tensor shapes of one image.

    Left, cardinality-major (report Fig. 4): K cardinal groups, each with its own R
    splits and attention, concatenated. Right, radix-major (Fig. 5, the official
    code): one grouped convolution with G = K*R groups whose outputs are ordered
    radix first, one attention over the whole tensor. A cell "k,i" is split i of
    cardinal group k. ``channels`` is C (input = output), ``attn_channels`` d
    (default: ``blocks.split_attn.split_attn_channels``). ``axes``: two axes to draw into.
    """
    k_, r_, c, h, w = cardinality, radix, channels, height, width
    check_groups(c, k_, r_)
    if attn_channels is None:
        attn_channels = split_attn_channels(c, r_)
    d, ck = attn_channels, c // k_
    check_attn_channels(d, k_)
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 7.4), gridspec_kw={"wspace": 0.02})
    left, right = axes
    fig = left.figure
    gate = "softmax over R" if r_ > 1 else "sigmoid (R = 1)"
    fs, small = 9.5, 8.5

    # left: cardinality-major
    canvas(8, 10.4, left, title=f"cardinality-major (Fig. 4)\nK = {k_}, R = {r_}, G = {k_ * r_}")
    x_in = box(left, 4.0, 9.7, f"X ({c}, {h}, {w})", w=3.4, kind="tensor", fontsize=fs)
    cols = _shown(k_)
    dots_w, gap_w = 0.6, 0.2
    n_groups = sum(kk is not None for kk in cols)
    col_w = min(2.4, (7.8 - (dots_w if None in cols else 0) - gap_w * (len(cols) - 1)) / n_groups)
    widths = [dots_w if kk is None else col_w for kk in cols]
    total = sum(widths) + gap_w * (len(cols) - 1)
    xs, x = [], 4.0 - total / 2
    for wd in widths:
        xs.append(x + wd / 2)
        x += wd + gap_w
    concat = node(left, 4.0, 1.75, "c", r=0.25)
    for x, kk in zip(xs, cols):
        if kk is None:
            left.text(x, 5.6, "···", ha="center", va="center", fontsize=14)
            continue
        color = GROUP_COLORS[kk % len(GROUP_COLORS)]
        left.add_patch(FancyBboxPatch((x - col_w / 2, 2.6), col_w, 6.1,
                                      boxstyle="round,pad=0.02,rounding_size=0.1",
                                      fc=color, alpha=0.12, ec=color, lw=1.2))
        left.text(x, 8.3, f"group {kk + 1}", ha="center", fontsize=fs, color=color, fontweight="bold")
        arrow(left, x_in.bottom, (x, 8.7))
        splits = _shown(r_, 3)
        cell = 0.6 if len(splits) <= 3 else 0.45
        sx = [x + (j - (len(splits) - 1) / 2) * cell * 1.2 for j in range(len(splits))]
        for x2, rr in zip(sx, splits):
            if rr is None:
                left.text(x2, 7.5, "··", ha="center", va="center", fontsize=10)
                continue
            _cell(left, x2, 7.5, kk, rr, cell, label=cell > 0.5, fontsize=7)
        left.text(x, 6.95, f"{r_} x 3x3\n{c // (k_ * r_)}->{ck}", ha="center", va="top", fontsize=small)
        att = box(left, x, 4.75, f"Σ, GAP\n{ck}->{d // k_}->{r_}x{ck}\n{'softmax' if r_ > 1 else 'sigmoid'}",
                  w=col_w - 0.25, h=1.5, kind="fc", fontsize=small)
        arrow(left, (x, 6.05), att.top)
        wsum = node(left, x, 3.2, "Σ", r=0.24, fontsize=10)
        arrow(left, att.bottom, wsum.top)
        arrow(left, wsum.bottom, (concat.x + (x - 4.0) * 0.06, concat.y + 0.25))
    left.text(xs[-1] + 0.2, 2.25, f"V^k: ({ck},{h},{w})", fontsize=small, color="#555555",
              family="monospace")
    out = box(left, 4.0, 0.7, f"V ({c}, {h}, {w})", w=3.4, kind="tensor", fontsize=fs)
    arrow(left, concat.bottom, out.top)

    # right: radix-major
    canvas(8, 10.4, right, title=f"radix-major (Fig. 5)\nK = {k_}, R = {r_}, G = {k_ * r_}")
    mid = 3.6
    x_in = box(right, mid, 9.7, f"X ({c}, {h}, {w})", w=3.4, kind="tensor", fontsize=fs)
    conv = box(right, mid, 8.65, f"3x3 conv {c}->{r_}x{c}\ngroups G = {k_ * r_}, BN, ReLU", w=5.0, h=0.85,
               kind="conv", fontsize=fs)
    arrow(right, x_in.bottom, conv.top)
    blocks, cells = _shown(r_, 3), _shown(k_, 4)
    side = min(0.55, 5.6 / max(1, len(blocks) * len(cells) + len(blocks)))
    block_w = len(cells) * side * 1.05
    bx = [mid + (i - (len(blocks) - 1) / 2) * (block_w + 0.4) for i in range(len(blocks))]
    y_strip = 7.25
    for x, rr in zip(bx, blocks):
        if rr is None:
            right.text(x, y_strip, "··", ha="center", va="center", fontsize=12)
            continue
        right.text(x, y_strip + side / 2 + 0.12, f"r = {rr + 1}", ha="center", fontsize=small)
        cx = [x + (j - (len(cells) - 1) / 2) * side * 1.05 for j in range(len(cells))]
        for x2, kk in zip(cx, cells):
            if kk is None:
                right.text(x2, y_strip, "·", ha="center", va="center", fontsize=10)
                continue
            _cell(right, x2, y_strip, kk, rr, side, label=side >= 0.45, fontsize=7)
    arrow(right, conv.bottom, (mid, y_strip + side / 2 + 0.45))
    fuse = node(right, mid, 6.15, "+", r=0.24, fontsize=11)
    arrow(right, (mid, y_strip - side / 2 - 0.05), fuse.top)
    right.text(mid + 0.35, 6.15, "Σ over R", fontsize=small, va="center")
    gap = box(right, mid, 5.35, "global average pool", w=3.6, kind="pool", fontsize=fs)
    fc1 = box(right, mid, 4.45, f"dense {c}->{d}, BN, ReLU", w=5.0, kind="fc", fontsize=fs)
    fc2 = box(right, mid, 3.55, f"dense {d}->{r_}x{c}", w=5.0, kind="fc", fontsize=fs)
    soft = box(right, mid, 2.65, f"r-softmax: {gate}", w=4.2, kind="act", fontsize=fs)
    wsum = node(right, mid, 1.7, "Σ", r=0.24, fontsize=10)
    arrow(right, fuse.bottom, gap.top)
    arrow(right, gap.bottom, fc1.top, f"({c},)", fontsize=small)
    arrow(right, fc1.bottom, fc2.top, f"({d},)", fontsize=small)
    arrow(right, fc2.bottom, soft.top)
    arrow(right, soft.bottom, wsum.top, f"a: ({r_}, {c})", fontsize=small)
    right.text(mid + 2.6, 3.95, f"groups\nK = {k_}", fontsize=small, va="center", color="#555555")
    x_far = 7.4
    elbow(right, [(bx[-1] + block_w / 2 + 0.05, y_strip), (x_far, y_strip), (x_far, wsum.y), wsum.right])
    right.text(x_far + 0.12, (y_strip + wsum.y) / 2, f"U ({r_}x{c},{h},{w})", fontsize=small,
               rotation=90, va="center", color="#555555", family="monospace")
    out = box(right, mid, 0.7, f"V = Σ_r a_r·U_r ({c}, {h}, {w})", w=5.0, kind="tensor", fontsize=fs)
    arrow(right, wsum.bottom, out.top)
    if len(fig.axes) == 2:
        fig.subplots_adjust(left=0.01, right=0.99, top=0.92, bottom=0.01)
    return fig


def draw_featuremap_orders(cardinality: int = 2, radix: int = 2, ax=None):
    """The G = K*R featuremap groups in cardinality-major order (top) and radix-major
    order (bottom), a line joining the two places of each group: the permutation
    ``(k, r) -> (r, k)`` that maps one layout onto the other."""
    k_, r_ = cardinality, radix
    check_groups(k_ * r_, k_, r_)
    g = k_ * r_
    given = ax
    span = max(6.0, 0.62 * g + 1.6)
    fig, ax = canvas(span, 3.2, ax, scale=1.0,
                     title=f"featuremap groups, K = {k_}, R = {r_}: position of 'k,i' in each layout")
    side = min(0.5, (span - 1.8) / g * 0.85)
    x0 = 1.6
    step = (span - 1.9) / g
    ax.text(0.1, 2.3, "cardinality-\nmajor", fontsize=8, va="center")
    ax.text(0.1, 0.7, "radix-\nmajor", fontsize=8, va="center")
    for kk in range(k_):
        for rr in range(r_):
            top_x = x0 + (kk * r_ + rr + 0.5) * step
            bot_x = x0 + (rr * k_ + kk + 0.5) * step
            ax.plot([top_x, bot_x], [2.3 - side / 2, 0.7 + side / 2], lw=0.8,
                    color=GROUP_COLORS[kk % len(GROUP_COLORS)])
            _cell(ax, top_x, 2.3, kk, rr, side, label=side >= 0.38)
            _cell(ax, bot_x, 0.7, kk, rr, side, label=side >= 0.38)
    return _finish(fig, given)


# --------------------------------------------------------------------------- ResNeSt block and stems
def draw_resnest_block(in_channels: int = 256, planes: int = 128, stride: int = 2, radix: int = 2,
                       cardinality: int = 1, width: int = 64, height: int = 32, avd: bool = True,
                       avg_down: bool = True, ax=None):
    """One ResNeSt bottleneck with the shapes of one image (as ``blocks.resnest.ResNestBottleneck``).

    ``B = int(planes * width / 64) * K`` channels in the 3x3 stage; output ``4 * planes``.
    A strided block with ``avd`` runs the Split-Attention at stride 1 and halves the
    map with a 3x3 average pool after it; with ``avg_down`` the shortcut averages
    2x2 patches before its 1x1 convolution instead of striding the 1x1.
    """
    b = int(planes * width / 64) * cardinality
    check_groups(b, cardinality, radix, min_radix=0, what=f"the 3x3 stage of planes={planes} at width {width}")
    out_c, h, s = 4 * planes, height, stride
    h2 = (h + s - 1) // s
    given = ax
    fig, ax = canvas(9.4, 9.2, ax, title=f"ResNeSt bottleneck: {radix}s{cardinality}x{width}d, "
                     f"planes {planes}, stride {s}")
    x_in = box(ax, 3.6, 8.7, f"X ({in_channels}, {h}, {h})", w=3.0, kind="tensor")
    c1 = box(ax, 3.6, 7.6, f"1x1 conv {in_channels}->{b}, BN, ReLU", w=4.2, kind="conv1", fontsize=9.5)
    arrow(ax, x_in.bottom, c1.top)
    sa_stride = 1 if (avd and s > 1) else s
    h_sa = h if sa_stride == 1 else h2
    name = "Split-Attention 3x3" if radix >= 1 else "3x3 conv"
    c2 = box(ax, 3.6, 6.1, f"{name}, K = {cardinality}, R = {radix}\n{b}->{b}, stride {sa_stride}",
             w=4.2, h=0.8, kind="conv", fontsize=9.5)
    arrow(ax, c1.bottom, c2.top, f"({b},{h},{h})", fontsize=8.5)
    y = c2.bottom
    if avd and s > 1:
        pool = box(ax, 3.6, 4.7, f"avd: 3x3 avg pool, stride {s}", w=4.2, kind="pool", fontsize=9.5)
        arrow(ax, y, pool.top, f"({b},{h_sa},{h_sa})", fontsize=8.5)
        y = pool.bottom
        h_sa = h2
    c3 = box(ax, 3.6, 3.3, f"1x1 conv {b}->{out_c}, BN", w=4.2, kind="conv1", fontsize=9.5)
    arrow(ax, y, c3.top, f"({b},{h_sa},{h_sa})", fontsize=8.5)
    plus = node(ax, 3.6, 2.0, "+")
    arrow(ax, c3.bottom, plus.top, f"({out_c},{h2},{h2})", fontsize=8.5)
    relu = box(ax, 3.6, 1.0, f"ReLU -> ({out_c}, {h2}, {h2})", w=3.6, kind="act", fontsize=9.5)
    arrow(ax, plus.bottom, relu.top)
    xs = 7.6
    if s == 1 and in_channels == out_c:
        elbow(ax, [x_in.right, (xs, x_in.y), (xs, plus.y), plus.right], "identity", fontsize=8.5)
        return _finish(fig, given)
    items = []
    if avg_down and s > 1:
        items.append((f"{s}x{s} avg pool,\nstride {s}", "pool"))
    items.append((f"1x1 conv{'' if avg_down or s == 1 else f', stride {s}'}\n{in_channels}->{out_c}, BN",
                   "conv1"))
    ys = [6.4, 4.9][:len(items)] if len(items) == 2 else [5.6]
    ax.plot([x_in.right[0], xs], [x_in.y, x_in.y], color="#333333", lw=1)
    prev = (xs, x_in.y)
    for (text, kind), yy in zip(items, ys):
        bb = box(ax, xs, yy, text, w=2.7, h=0.8, kind=kind, fontsize=9)
        arrow(ax, prev, bb.top)
        prev = bb.bottom
    elbow(ax, [prev, (xs, plus.y), plus.right])
    ax.text(xs, 7.9, "shortcut" + (" (avg-down)" if avg_down and s > 1 else ""), ha="center", fontsize=9.5,
            style="italic")
    return _finish(fig, given)


def draw_stems(size: int = 224, stem_width: int = 32, axes=None):
    """ResNet's 7x7 stem against ResNeSt's deep stem (three 3x3), with shapes of one image."""
    h2 = (size + 1) // 2
    h4 = (h2 + 1) // 2
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
    left, right = axes
    fig = left.figure
    canvas(6, 6.6, left, title=f"ResNet stem: one 7x7, {3 * 64 * 49:,} weights")
    t = box(left, 3, 5.7, f"image (3, {size}, {size})", w=3.2, kind="tensor")
    c = box(left, 3, 4.3, "7x7 conv 3->64, stride 2\nBN, ReLU", w=3.8, h=0.8, kind="conv", fontsize=9.5)
    p = box(left, 3, 2.5, "3x3 max pool, stride 2", w=3.8, kind="pool", fontsize=9.5)
    o = box(left, 3, 1.0, f"(64, {h4}, {h4})", w=2.6, kind="tensor")
    arrow(left, t.bottom, c.top)
    arrow(left, c.bottom, p.top, f"(64, {h2}, {h2})", fontsize=8.5)
    arrow(left, p.bottom, o.top)
    sw = stem_width
    canvas(6, 6.6, right, title=f"ResNeSt deep stem: three 3x3, "
           f"{9 * (3 * sw + sw * sw + sw * 2 * sw):,} weights")
    t = box(right, 3, 5.7, f"image (3, {size}, {size})", w=3.2, kind="tensor")
    c1 = box(right, 3, 4.75, f"3x3 conv 3->{sw}, stride 2, BN, ReLU", w=4.6, kind="conv", fontsize=9.5)
    c2 = box(right, 3, 3.85, f"3x3 conv {sw}->{sw}, BN, ReLU", w=4.6, kind="conv", fontsize=9.5)
    c3 = box(right, 3, 2.95, f"3x3 conv {sw}->{2 * sw}, BN, ReLU", w=4.6, kind="conv", fontsize=9.5)
    p = box(right, 3, 2.0, "3x3 max pool, stride 2", w=3.8, kind="pool", fontsize=9.5)
    o = box(right, 3, 1.0, f"({2 * sw}, {h4}, {h4})", w=2.6, kind="tensor")
    arrow(right, t.bottom, c1.top)
    arrow(right, c1.bottom, c2.top, f"({sw}, {h2}, {h2})", fontsize=8.5)
    arrow(right, c2.bottom, c3.top, f"({sw}, {h2}, {h2})", fontsize=8.5)
    arrow(right, c3.bottom, p.top, f"({2 * sw}, {h2}, {h2})", fontsize=8.5)
    arrow(right, p.bottom, o.top)
    if len(fig.axes) == 2:
        fig.tight_layout()
    return fig
