"""Source of chapters/01_grouped_convolutions.ipynb."""
from tools.nb import code, execute, md, setup_cell, write

PATH = "chapters/01_grouped_convolutions.ipynb"
WIDGET_NOTE = ("*Move the sliders in a live kernel (Colab or local); "
               "the static page shows the initial state.*")

write(PATH, [
    md("""
# Grouped convolutions and cardinality

A Split-Attention block, the unit ResNeSt is built from {cite}`zhang2022resnest`,
does two things at once: it cuts its channels into groups that are convolved
separately, and it learns how much each group should count. This chapter is about
the first half. It starts from an old idea, *split, transform, merge*, follows it
into the grouped convolution of ResNeXt {cite}`xie2017resnext`, and measures what
grouping saves and what it costs. Chapters 2 and 3 add the second half, attention.

By the end of the chapter you will have

- written a grouped convolution as a loop and checked it against PyTorch's `groups=`;
- counted its parameters and multiply-adds as the number of groups $g$ grows,
  and timed it on this machine;
- built the ResNeXt bottleneck in both of the forms shown in the report's Fig. 1
  {cite}`resnestreport` and shown that they compute the same function;
- seen, with a Jacobian, exactly which channel interactions grouping removes, and
  how the $1 \\times 1$ convolutions of the block put them back.
"""),
    setup_cell(),
    code("""
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.blocks import cost, grouped
from course_lib.figures import diagrams
from course_lib.engine.timing import measure_latency
"""),
    md("""
## Split, transform, merge

A ResNet block {cite}`he2016resnet` transforms its input along one path and adds
the result to the input. The Inception blocks of GoogLeNet {cite}`szegedy2015inception`
took another route: send the same input down several parallel paths ($1 \\times 1$,
$3 \\times 3$ and $5 \\times 5$ convolutions and a pooling path), then concatenate
what comes out. Each path is narrow, so the block stays cheap, yet together the
paths look at the input in several ways at once. This pattern has a name:
*split* the input into low-dimensional pieces, *transform* each piece, *merge*
the results.

Inception's paths are all different, which makes the design hard to adapt: every
block is tuned by hand. ResNeXt kept the split-transform-merge idea but made all
paths identical and added the residual shortcut. The number of identical paths is
the block's **cardinality** $K$, a third dimension of a network's size next to its
depth and its width. Xie et al. found that raising the cardinality improved accuracy
more than making the network deeper or wider at the same cost
{cite}`xie2017resnext`. Identical paths have a second advantage: they can be
computed together, as one *grouped convolution*.

## The grouped convolution

A convolution with $n_i$ input and $n_o$ output channels and a $k \\times k$ kernel
mixes every input channel into every output channel. Its weight has shape
$(n_o, n_i, k, k)$ and output channel $o$ is

$$
Y_o = \\sum_{i=1}^{n_i} W_{o,i} \\star X_i ,
$$

where $\\star$ is the two-dimensional cross-correlation. A grouped convolution with
$g$ groups cuts the input channels into $g$ slices of $n_i / g$ and the output
channels into $g$ slices of $n_o / g$, and lets slice $j$ of the output see only
slice $j$ of the input. For an output channel $o$ in group $j$,

$$
Y_o = \\sum_{i \\in \\mathcal{G}_j} W_{o,i} \\star X_i ,
\\qquad |\\mathcal{G}_j| = n_i / g ,
$$

so the weight shrinks to shape $(n_o, n_i / g, k, k)$. It is $g$ small convolutions
side by side. The picture below draws every pair (input channel, output channel)
that shares a weight, for a dense convolution ($g = 1$) and for $g = 4$.
"""),
    code("""
fig, axes = plt.subplots(2, 1, figsize=(8, 8.4))
diagrams.draw_grouped_conv(16, 16, groups=1, ax=axes[0])
diagrams.draw_grouped_conv(16, 16, groups=4, ax=axes[1])
axes[0].set_title("dense convolution, g = 1")
axes[1].set_title("grouped convolution, g = 4")
fig.tight_layout()
"""),
    md("""
`course_lib.blocks.grouped.grouped_conv_by_loop` writes the definition out: split the
channels, convolve each slice with its own block of weights, concatenate. It must
agree with PyTorch's built-in `groups=` argument.
"""),
    code("""
x = torch.randn(2, 16, 10, 10)                       # (N, n_i, H, W)
conv = nn.Conv2d(16, 32, 3, padding=1, groups=4, bias=False)
print("weight shape:", tuple(conv.weight.shape), "= (n_o, n_i / g, k, k)")

by_loop = grouped.grouped_conv_by_loop(x, conv.weight, groups=4, padding=1)
built_in = conv(x)
print("output shape:", tuple(built_in.shape))
print("loop and groups= agree:", torch.allclose(by_loop, built_in, atol=1e-6))
"""),
    md("""
## What grouping saves

Count the weights of one kernel position. The dense convolution has $n_i n_o$. The
grouped one has $g$ blocks of $(n_i / g)(n_o / g)$:

$$
g \\cdot \\frac{n_i}{g} \\cdot \\frac{n_o}{g} = \\frac{n_i n_o}{g} .
$$

Multiply by $k^2$ for the parameters, and by the $H' W'$ output positions for the
multiply-adds (MACs) of one image. Both costs drop from $\\mathcal{O}(n_i n_o)$ to
$\\mathcal{O}(n_i n_o / g)$: a $g$-fold saving {cite}`resnestreport`. Below, a
$3 \\times 3$ convolution with 256 input and 256 output channels on an $8 \\times 8$
feature map, for $g$ from 1 to 256. `cost.conv_params` and `cost.conv_macs` use the
formula; `cost.count_params` and `cost.count_macs` count on the real layer (the MACs
with PyTorch's FLOP counter). The two must agree.
"""),
    code("""
n, size = 256, 8
group_counts = [1, 2, 4, 8, 16, 32, 64, 128, 256]
layers = {g: nn.Conv2d(n, n, 3, padding=1, groups=g, bias=False)
          for g in group_counts}

lines = [f"{'g':>4} {'params':>9} {'formula':>9} {'MACs':>11} {'formula':>11}"
         f" {'saving':>7}"]
for g, layer in layers.items():
    params = cost.count_params(layer)
    macs = cost.count_macs(layer, input_size=(n, size, size))
    f_params = cost.conv_params(n, n, 3, g)
    f_macs = cost.conv_macs(n, n, size, size, 3, g)
    saving = layers[1].weight.numel() / params
    row = f"{g:>4} {params:>9,} {f_params:>9,} {macs:>11,} {f_macs:>11,}"
    lines.append(f"{row} {saving:>6.0f}x")
print("\\n".join(lines))
"""),
    md("""
The last line, $g = n_i = n_o$, is a *depthwise* convolution: every channel is
filtered on its own, the extreme case that networks for mobile phones build on.

Do fewer multiply-adds mean less time? Not necessarily. A dense convolution is one
large, regular matrix product that the CPU library runs near its peak speed; many
small independent products use the hardware less well. Let us time each layer on
one CPU thread: the fastest of 15 forward passes of a batch of 16, after 2 untimed
ones. (On a machine shared with other jobs the fastest run is the best estimate of
what the layer itself costs; the median would mostly measure the neighbours.)
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
# Timings depend on the machine and on what else runs on it: not checked.
def fastest_ms_per_image(layer, input_size, batch_size=16, repeats=15):
    \"\"\"The fastest of `repeats` timed passes on one thread, ms per image.\"\"\"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        record = measure_latency(layer, batch_size=batch_size,
                                 input_size=input_size, warmup=2,
                                 repeats=repeats, device="cpu")
    finally:
        torch.set_num_threads(threads)
    return min(record["times_ms"]) / batch_size


timings = {g: fastest_ms_per_image(layer, (n, size, size))
           for g, layer in layers.items()}
macs = {g: cost.conv_macs(n, n, size, size, 3, g) for g in group_counts}

fig, ax = plt.subplots(figsize=(6.4, 4))
ax.loglog(group_counts, [macs[g] / macs[1] for g in group_counts], "o-",
          label="multiply-adds (1/g)")
ax.loglog(group_counts, [timings[g] / timings[1] for g in group_counts], "s-",
          label="measured time")
ax.set_xscale("log", base=2)
ax.set_xticks(group_counts, [str(g) for g in group_counts])
ax.set_xlabel("groups g")
ax.set_ylabel("relative to the dense convolution (g = 1)")
ax.set_title(f"3x3 conv, {n} -> {n} channels, {size}x{size} map, "
             "batch 16, one CPU thread", fontsize=10)
ax.legend()
ax.grid(True, which="both", alpha=0.3)
for g in group_counts:
    print(f"g = {g:>3}: {timings[g]:.3f} ms per image, "
          f"speed-up {timings[1] / timings[g]:5.1f}x")
"""),
    md("""
On the CPU that built this page, the time followed the multiply-adds for the
first few doublings of $g$ and then stopped falling: beyond about 16 groups the work
per group is too small to keep the arithmetic units busy, and memory traffic, which
grouping does not reduce, takes over. Some group counts can even be slower than
smaller ones, while the depthwise case ($g = 256$) is fast again because libraries
ship a kernel written for it. The exact numbers depend on the machine and on
whatever else it was running; rerun the cell on yours. This gap between counted and measured cost
comes back in the experiments of later chapters, where ResNeSt's latency is
compared with its multiply-adds.

## The bottleneck: $b < c$

A block of ResNeXt does not apply its grouped convolution to all $c$ channels of
the block. Like ResNet's bottleneck block, it first shrinks the channels with a
$1 \\times 1$ convolution to a width $b < c$, applies the $3 \\times 3$ on those $b$
channels, and widens back to $c$ with another $1 \\times 1$. Per output position,
the weights are

$$
\\underbrace{c\\,b}_{1 \\times 1,\\ c \\to b}
+ \\underbrace{9\\,b^2 / g}_{3 \\times 3,\\ g \\text{ groups}}
+ \\underbrace{b\\,c}_{1 \\times 1,\\ b \\to c} .
$$

Without the bottleneck a $1 \\times 1$ on all channels would cost $\\mathcal{O}(c^2)$
and the grouped $3 \\times 3$ $\\mathcal{O}(c^2 / g)$; with it, the $3 \\times 3$ costs
$\\mathcal{O}(b^2 / g)$ {cite}`resnestreport`. Compare, for $c = 256$ channels, two
plain $3 \\times 3$ convolutions, ResNet's bottleneck ($b = 64$, $g = 1$) and
ResNeXt's "32x4d" bottleneck ($b = 128$, $g = K = 32$, so 4 channels per path):
"""),
    code("""
def block_weights(c, b=None, g=1):
    \"\"\"Conv weights of a block: two plain 3x3s (b=None) or a bottleneck.\"\"\"
    if b is None:
        return 2 * cost.conv_params(c, c, 3)
    return (cost.conv_params(c, b, 1) + cost.conv_params(b, b, 3, g)
            + cost.conv_params(b, c, 1))


def conv_weights(module):
    return sum(m.weight.numel() for m in module.modules()
               if isinstance(m, nn.Conv2d))


c = 256
resnext = grouped.ResNeXtBlock(c, bottleneck=128, cardinality=32)
rows = {"two plain 3x3 convolutions": block_weights(c),
        "ResNet bottleneck, b = 64": block_weights(c, 64),
        "ResNeXt 32x4d, b = 128, g = 32": block_weights(c, 128, 32),
        "  counted on the ResNeXtBlock": conv_weights(resnext)}
print("\\n".join(f"{name:<31} {w:>9,} weights" for name, w in rows.items()))
"""),
    md("""
The bottleneck cuts the block's cost by a factor of about 17. Grouping then pays for
a wider bottleneck: ResNeXt doubles $b$ from 64 to 128 and still costs what
ResNet's block costs. That is the trade ResNeXt offers: at the same budget, more
channels in the $3 \\times 3$, split into many narrow paths.

## Two forms of one block

The report's Fig. 1 draws the ResNeXt bottleneck in two ways {cite}`resnestreport`.
On the right, the form above: a $1 \\times 1$ from $c$ to $b$, a grouped
$3 \\times 3$ with $K$ groups, a $1 \\times 1$ from $b$ to $c$. On the left, $K$
explicit paths: each has its own $1 \\times 1$ from $c$ to $b/K$ and its own
$3 \\times 3$ on $b/K$ channels; the $K$ outputs are concatenated and one $1 \\times 1$
returns to $c$ channels. ResNeSt builds on the left form, because it attends over
such paths.
"""),
    code("""
fig = diagrams.draw_resnext_forms(channels=256, bottleneck=128, cardinality=32)
"""),
    md("""
Why are they the same function? The first $1 \\times 1$ of the right form is a
$(b, c)$ matrix. Cut its rows into $K$ blocks of $b/K$: block $k$ is exactly the
$1 \\times 1$ of path $k$, because each output channel of a $1 \\times 1$ is computed
from its own row. The grouped $3 \\times 3$ is by definition $K$ separate
convolutions, the one of path $k$ on channels $k b/K, \\dots, (k+1) b/K - 1$. Batch
normalisation and ReLU act on each channel separately, so they can be cut the same
way. Concatenating the paths restores the channel order, and the last $1 \\times 1$
is shared.

`course_lib.blocks.grouped.branches_to_grouped` performs this mapping on real weights: it
stacks the paths' weights into the grouped block. Give the branch form random
weights and random batch-norm statistics (fresh ones would make batch norm an
identity and hide mistakes), map it, and compare outputs on random inputs.
"""),
    code("""
torch.manual_seed(0)


@torch.no_grad()
def randomize_batch_norm(model):
    \"\"\"Random affine parameters and running statistics for every BN.\"\"\"
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.5)
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)


branch_form = grouped.ResNeXtBranchBlock(64, bottleneck=32, cardinality=8)
randomize_batch_norm(branch_form)
grouped_form = grouped.branches_to_grouped(branch_form)
branch_form.eval(), grouped_form.eval()

x = torch.randn(4, 64, 16, 16)
with torch.no_grad():
    difference = (branch_form(x) - grouped_form(x)).abs().max().item()
forms = {"branch form": branch_form, "grouped form": grouped_form}
print("\\n".join(
    f"{name:<13} {cost.count_params(m):>6,} parameters, "
    f"{cost.count_macs(m, (64, 16, 16)):,} MACs per 16x16 image"
    for name, m in forms.items()))
print(f"max |difference| of the outputs: {difference:.5f}")
print("equal up to float32 rounding:", difference < 1e-4)
"""),
    md("""
The parameters and the multiply-adds are identical, and the outputs differ only by
float32 rounding (the two forms add the same products in a different order). The
inverse map, `grouped.grouped_to_branches`, goes the other way. The forms are the
same network; they differ in how fast they run. The grouped form is one convolution
call, the branch form $2K$ small ones in a Python loop, which is why libraries
ship the grouped form and why ResNeSt's implementation, too, packs its paths into
grouped convolutions.

## What grouping loses

Grouping saves a factor of $g$ by *not computing* most channel interactions. In
the grouped convolution, an output channel of group $j$ never sees an input channel
of another group {cite}`resnestreport`. A perturbation test makes this concrete:
change only the input channels of group 0 and see which output groups move.
"""),
    code("""
torch.manual_seed(0)
g, channels = 4, 16
conv = nn.Conv2d(channels, channels, 3, padding=1, groups=g, bias=False)
x = torch.randn(1, channels, 8, 8)
x_changed = x.clone()
x_changed[:, : channels // g] += torch.randn(1, channels // g, 8, 8)  # group 0

with torch.no_grad():
    change = (conv(x_changed) - conv(x)).abs()                 # (1, 16, 8, 8)
print("\\n".join(f"output group {j}: largest change {part.max().item():.3f}"
                for j, part in enumerate(change.chunk(g, dim=1))))
"""),
    md("""
The Jacobian gives the whole picture at once. For a layer $f$ mapping channels to
channels, sum $|\\partial f(X)_{o,p} / \\partial X_{i,q}|$ over all positions $p$ and
$q$: the result is a matrix $D_{o,i}$ that is zero exactly when output channel $o$
cannot depend on input channel $i$. We compute it for three layers with 16 channels
and $g = 4$ groups: the grouped $3 \\times 3$ alone, a $1 \\times 1$ followed by the
grouped $3 \\times 3$, and the residual branch of a ResNeXt block
($1 \\times 1$, grouped $3 \\times 3$, $1 \\times 1$, with batch norm and ReLU).
"""),
    code("""
def dependency(f, x):
    \"\"\"D[o, i] = sum over positions of |d f(x)[o] / d x[i]|: (C_out, C_in).\"\"\"
    jac = torch.autograd.functional.jacobian(f, x)  # (1,C_o,H,W, 1,C_i,H,W)
    return jac.abs().sum(dim=(0, 2, 3, 4, 6, 7))


torch.manual_seed(0)
block = grouped.ResNeXtBlock(channels, bottleneck=channels, cardinality=g)
block.eval()
randomize_batch_norm(block)
pointwise = nn.Conv2d(channels, channels, 1, bias=False)


def residual_branch(x):
    out = F.relu(block.bn1(block.conv1(x)))
    out = F.relu(block.bn2(block.conv2(out)))
    return block.bn3(block.conv3(out))


layers_to_probe = {
    "grouped 3x3": block.conv2,
    "1x1, then grouped 3x3": lambda x: block.conv2(pointwise(x)),
    "ResNeXt residual branch": residual_branch,
}
x = torch.randn(1, channels, 6, 6)
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
lines = []
for ax, (name, f) in zip(axes, layers_to_probe.items()):
    d = dependency(f, x)
    zeros = (d == 0).float().mean().item()
    lines.append(f"{name:<24} zero entries: {zeros:.2f}")
    ax.imshow((d > 0).float(), cmap="Greys", vmin=0, vmax=1.4)
    ax.set_title(name)
    ax.set_xlabel("input channel i")
    ax.set_ylabel("output channel o")
print("\\n".join(lines))
fig.suptitle("Which outputs depend on which inputs (dark: D[o, i] > 0)")
fig.tight_layout()
"""),
    md("""
The grouped convolution alone is block-diagonal: three quarters of the
input-output pairs, $1 - 1/g$, are cut. One $1 \\times 1$ in front fills the matrix:
it mixes all channels *before* the split, so each group's slice already carries
information from every input channel. In the ResNeXt block the $1 \\times 1$s sit on
both sides of the grouped convolution, one to mix before the split and one to mix
the groups' outputs after it, so every output depends on every input. That is why
the report says the $1 \\times 1$ convolutions "capture the interdependency" that
grouping loses {cite}`resnestreport`, at a cost of $\\mathcal{O}(c\\,b)$ each thanks
to the bottleneck.

The $1 \\times 1$s restore *which* channels may interact, but not *how much* each
path should count for a given image: every path's output enters the final
$1 \\times 1$ with fixed weights. Chapter 2 adds exactly that, a gate per channel
computed from the image itself.

## Explore the cost yourself

Choose the number of channels ($n_i = n_o$), the groups $g$ and the kernel size $k$.
The explorer redraws the connections, computes parameters and multiply-adds on a
$16 \\times 16$ map, and times the layer on this machine (batch 8, fastest of 5, one thread).
"""),
    md(WIDGET_NOTE),
    code("""
import ipywidgets as widgets

channels_w = widgets.SelectionSlider(options=[16, 32, 64, 128, 256], value=64,
                                     description="channels")
groups_w = widgets.SelectionSlider(options=[1, 2, 4, 8, 16], value=4,
                                   description="groups g")
kernel_w = widgets.SelectionSlider(options=[1, 3, 5, 7], value=3,
                                   description="kernel k")
picture = widgets.Image(format="png", width=560)
numbers = widgets.HTML()


def update(_=None):
    channels, groups, k = channels_w.value, groups_w.value, kernel_w.value
    size = 16
    layer = nn.Conv2d(channels, channels, k, padding=k // 2, groups=groups,
                      bias=False)
    params = cost.count_params(layer)
    macs = cost.count_macs(layer, input_size=(channels, size, size))
    ms = fastest_ms_per_image(layer, (channels, size, size), batch_size=8,
                              repeats=5)
    dense = cost.conv_params(channels, channels, k)
    fig, ax = plt.subplots(figsize=(8, 4.4))
    diagrams.draw_grouped_conv(channels, channels, groups, k, size, size,
                               ax=ax)
    picture.value = diagrams.figure_png(fig)
    numbers.value = (
        f"<pre>parameters     {params:,} (dense: {dense:,}, "
        f"{dense / params:.0f}x more)\\n"
        f"multiply-adds  {macs:,} per image\\n"
        f"measured       {ms:.3f} ms per image</pre>")


for w in (channels_w, groups_w, kernel_w):
    w.observe(update, "value")
update()
widgets.VBox([channels_w, groups_w, kernel_w, picture, numbers])
"""),
    md("""
## Exercises

**Exercise 1.1.** A $3 \\times 3$ grouped convolution has 128 input channels, 256
output channels and $g = 8$. Predict its number of weights and its multiply-adds on
a $14 \\times 14$ map (stride 1, padding 1), then check with `course_lib.blocks.cost`.

**Exercise 1.2.** A *depthwise separable* convolution is a depthwise $3 \\times 3$
($g = n_i$) followed by a $1 \\times 1$ on all channels. For $n_i = n_o = 256$,
compare its weights with a dense $3 \\times 3$, and use `dependency` to show that
the pair, unlike the depthwise convolution alone, connects every input channel to
every output channel.

**Exercise 1.3.** ResNeXt's paper draws a third form: every path ends with its own
$1 \\times 1$ from $b/K$ to $c$ channels, and the $K$ results are *added*. Show in
code that a $1 \\times 1$ applied to the concatenation of the paths equals the sum of
$K$ smaller $1 \\times 1$s, one per path, whose weights are column blocks of the big
one.

The solutions are folded away below; open one only after you have tried.
"""),
    md("**Solution 1.1** (folded: click to show)"),
    code("""
# Solution 1.1
n_in, n_out, g, k, size = 128, 256, 8, 3, 14
predicted_weights = n_out * (n_in // g) * k * k      # 256 * 16 * 9
predicted_macs = predicted_weights * size * size     # per output position
layer = nn.Conv2d(n_in, n_out, k, padding=1, groups=g, bias=False)
print(predicted_weights, cost.count_params(layer))
print(predicted_macs, cost.count_macs(layer, input_size=(n_in, size, size)))
""", tags=["hide-input", "hide-output"]),
    md("**Solution 1.2** (folded: click to show)"),
    code("""
# Solution 1.2
n = 256
depthwise = nn.Conv2d(n, n, 3, padding=1, groups=n, bias=False)
separable = nn.Sequential(depthwise, nn.Conv2d(n, n, 1, bias=False))
print(f"dense 3x3 {cost.conv_params(n, n, 3):,} weights, "
      f"separable {cost.count_params(separable):,}")

small = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),
                      nn.Conv2d(16, 16, 1, bias=False))
x = torch.randn(1, 16, 5, 5)
for name, f in [("depthwise alone", small[0]), ("depthwise + 1x1", small)]:
    print(f"{name}: zero entries {(dependency(f, x) == 0).float().mean():.4f}")
""", tags=["hide-input", "hide-output"]),
    md("**Solution 1.3** (folded: click to show)"),
    code("""
# Solution 1.3
torch.manual_seed(0)
K, width, c = 4, 8, 32                     # K paths of b/K = 8, b = 32
paths = [torch.randn(2, width, 5, 5) for _ in range(K)]
last = nn.Conv2d(K * width, c, 1, bias=False)
on_concat = last(torch.cat(paths, dim=1))
blocks = last.weight.split(width, dim=1)   # K column blocks (c, b/K, 1, 1)
summed = sum(F.conv2d(p, w) for p, w in zip(paths, blocks))
print("concatenate then 1x1 == sum of per-path 1x1s:",
      torch.allclose(on_concat, summed, atol=1e-5))
""", tags=["hide-input", "hide-output"]),
])
execute(PATH)
