"""Source of chapters/04_split_attention.ipynb."""
import nbformat

from tools.nb import code, execute, md, setup_cell, write

PATH = "chapters/04_split_attention.ipynb"
WIDGET_NOTE = ("Move the sliders in a live kernel (Colab or local); the static page shows the "
               "initial state.")

write(PATH, [
    md("""
# Split-Attention

The last three chapters built three blocks. ResNeXt {cite}`xie2017resnext` cut the
3x3 convolution of a bottleneck into $K$ parallel paths, a grouped convolution.
Squeeze-and-Excitation {cite}`hu2018senet` pooled every channel to one number and
turned those numbers into a gate in $(0, 1)$ per channel. Selective Kernel
{cite}`li2019sknet` ran $R$ branches side by side and let a softmax decide, channel
by channel, how much of each branch to keep.

ResNeSt's Split-Attention block {cite}`zhang2022resnest` is all three at once: $K$
cardinal groups as in ResNeXt, each cut into $R$ radix splits as in SKNet, with an
SE-like attention inside each cardinal group. This chapter writes the block down as
equations, checks in code that its two extreme cases really are SE and SK, proves
that the two ways of laying it out in memory (the report's Figs. 4 and 5
{cite}`resnestreport`) compute the same function, times them, and ends with the
extension the report proposes: different kernel sizes for different splits.
"""),
    setup_cell(),
    code("""
import torch
from torch import nn

from course_lib.blocks.split_attn import (
    SplitAttn, SplitAttnCardinal, MixedKernelSplitAttn, split_attn_channels,
    radix_input_order, radix_to_cardinal, mixed_from_plain)
from course_lib.blocks.se import SqueezeExcite
from course_lib.blocks.sk import SelectiveKernel
from course_lib.blocks.cost import count_params, count_macs
from course_lib.figures import diagrams

_ = torch.manual_seed(0)
"""),
    md("""
## Featuremap groups

A Split-Attention convolution takes $C$ channels to $C$ channels (inside ResNeSt it
replaces the 3x3 of the bottleneck). It first cuts its work into

$$
G = K \\cdot R
$$

*featuremap groups*: $K$ **cardinal groups**, each made of $R$ **radix splits**.
Every featuremap group is a 3x3 convolution that reads its own $C/G$ input channels
and writes $C/K$ output channels, followed by batch normalisation and a ReLU. Call
the outputs $U_1, \\dots, U_G$, each of shape $(C/K, H, W)$; cardinal group $k$
owns the $R$ consecutive splits $U_{R(k-1)+1}, \\dots, U_{Rk}$.

**Squeeze within each cardinal group.** The splits of group $k$ are added, and
the sum is averaged over the image, one number per channel:

$$
\\hat U^k = \\sum_{j = R(k-1)+1}^{Rk} U_j ,
$$

$$
s^k_c = \\frac{1}{H W} \\sum_{i=1}^{H} \\sum_{j=1}^{W} \\hat U^k_c(i, j),
\\qquad c = 1, \\dots, C/K .
$$

**Attention across the radix splits.** A small two-layer network $\\mathcal G$ (dense
$C/K \\to d/K$, batch norm, ReLU, dense $d/K \\to R \\cdot C/K$), one per cardinal
group, turns $s^k$ into $R$ numbers per channel, and an *r-softmax* normalises them
over the splits. With a single split there is nothing to share out, and a sigmoid
gate is used instead, as in SE:

$$
a^k_i(c) =
\\begin{cases}
\\dfrac{\\exp\\big(\\mathcal G^c_i(s^k)\\big)}{\\sum_{j=1}^{R} \\exp\\big(\\mathcal G^c_j(s^k)\\big)} & R > 1, \\\\[2ex]
\\dfrac{1}{1 + \\exp\\big(-\\mathcal G^c_1(s^k)\\big)} & R = 1.
\\end{cases}
$$

**Weighted sum, concatenation, shortcut.** Each cardinal group keeps a per-channel
mixture of its splits, the $K$ mixtures are concatenated back to $C$ channels, and
the block adds its shortcut $\\mathcal T(X)$ (the identity, or a projection when
the shape changes):

$$
\\begin{aligned}
V^k_c &= \\sum_{i=1}^{R} a^k_i(c)\\, U_{R(k-1)+i,\\,c}, \\\\
V &= \\operatorname{Concat}\\big(V^1, \\dots, V^K\\big), \\\\
Y &= V + \\mathcal T(X).
\\end{aligned}
$$

The hidden width is $d = \\max(C R / 4,\\ 32)$, rounded to a multiple of 8 so that
timm's pretrained weights fit (`split_attn_channels`). Here is the block with
$C = 64$, $K = 2$, $R = 2$:
"""),
    code("""
block = SplitAttn(64, 64, cardinality=2, radix=2).eval()
x = torch.randn(4, 64, 32, 32)                 # (N, C, H, W)
y = block(x)
for name, part in block.named_children():   # the layers and their weight shapes
    shapes = [tuple(p.shape) for p in part.parameters()]
    groups = f", groups {part.groups}" if getattr(part, "groups", 1) > 1 else ""
    print(f"{name:9s} {type(part).__name__:12s} {shapes}{groups}")
print("input", tuple(x.shape), "-> output", tuple(y.shape))
print("attention weights a:", tuple(block.last_attention.shape), "(N, R, C)")
print(f"hidden width d = {block.attn_channels}, parameters = {count_params(block):,}")
"""),
    md("""
Drawn in the two layouts that the next sections compare. Each coloured cell is
one featuremap group, labelled *k,r*: split $r$ of cardinal group $k$.
"""),
    code("""
fig = diagrams.draw_split_attention(2, 2, channels=64, height=32, width=32)
"""),
    md("""
## R = 1 is Squeeze-and-Excitation

With one split per cardinal group there is nothing to sum and nothing to choose
between: the block is a convolution followed by a gate, $V_c = a_c U_c$ with
$a_c = \\sigma(\\cdot) \\in (0, 1)$. That is SE {cite}`hu2018senet`, with one
difference in the MLP: ResNeSt puts a batch norm after the first dense layer. In
evaluation mode a batch norm is an affine map, so it can be folded into the dense
layer before it, and then an SE block with the *same* weights must produce the
same output.

To see the equality without float32 rounding in the way, the check runs in double
precision, on weights and batch-norm statistics drawn at random (a freshly built
block would have trivial statistics).
"""),
    code("""
def randomise(module, seed=0):
    \"\"\"Random weights, biases and batch-norm statistics; eval mode, double precision.\"\"\"
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            if not t.dtype.is_floating_point:
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.3)
    return module.double().eval()


se_like = randomise(SplitAttn(64, 64, cardinality=1, radix=1), seed=1)
x = torch.randn(2, 64, 16, 16, dtype=torch.float64)
y = se_like(x)
gate = se_like.last_attention                  # (N, 1, C): one gate per channel
print("R = 1: attention shape", tuple(gate.shape),
      f"values in ({gate.min():.4f}, {gate.max():.4f}): a sigmoid gate")

# The same computation with course_lib's SqueezeExcite: fold bn1 into fc1, copy fc2.
se = SqueezeExcite(64, hidden_channels=se_like.attn_channels).double().eval()
with torch.no_grad():
    bn = se_like.bn1
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)   # BN(z) = scale*z + shift
    se.fc1.weight.copy_(se_like.fc1.weight * scale.view(-1, 1, 1, 1))
    se.fc1.bias.copy_((se_like.fc1.bias - bn.running_mean) * scale + bn.bias)
    se.fc2.load_state_dict(se_like.fc2.state_dict())
    u = torch.relu(se_like.bn0(se_like.conv(x)))        # the split U, (N, C, H, W)
    out = se(u)
    gate_gap = (se.last_gate - gate.flatten(1)).abs().max()
    print(f"max |SplitAttn(R=1) - SE(conv(x))| = {(out - y).abs().max():.1e}")
    print(f"max |gate difference|              = {gate_gap:.1e}")
"""),
    md("""
## K = 1, R = 2 is Selective Kernel

With one cardinal group and two splits, Split-Attention sums the two splits,
pools, and sends the result through dense, batch norm, ReLU and dense layers to a
softmax over the two splits: the *fuse* and *select* steps of SKNet
{cite}`li2019sknet`. Two details differ from the original SKNet, and both appear in
course_lib's `SelectiveKernel` as options: ResNeSt's splits read *different slices*
of the input (`split_input=True`, as timm's SK-ResNets do) and all use 3x3 kernels
(no 5x5 or dilated branch). The dense layers of SK have no biases; zeroing
ResNeSt's makes the two blocks identical.

First the softmax property: for every image and channel the weights of the two
splits add up to one.
"""),
    code("""
sk_like = randomise(SplitAttn(64, 64, cardinality=1, radix=2, attn_channels=32), seed=2)
y = sk_like(x)
a = sk_like.last_attention                     # (N, R, C)
print("K = 1, R = 2: attention shape", tuple(a.shape))
for r in range(2):
    weights = [round(v, 3) for v in a[0, r, :4].tolist()]
    print(f"weights of split {r + 1}, channels 0-3:", weights)
print(f"max |a_1 + a_2 - 1| over images and channels = "
      f"{(a.sum(1) - 1).abs().max():.1e}")
"""),
    code("""
sk = SelectiveKernel(64, 64, kernel_sizes=(3, 3), dilations=(1, 1), split_input=True,
                     attn_channels=32)
sk = randomise(sk, seed=3)
with torch.no_grad():                  # SK's weights -> the Split-Attention layout
    sk_like.conv.weight.copy_(torch.cat([p.conv.weight for p in sk.paths]))
    for name in ("weight", "bias", "running_mean", "running_var"):
        stacked = torch.cat([getattr(p.bn, name) for p in sk.paths])
        getattr(sk_like.bn0, name).copy_(stacked)
    sk_like.fc1.weight.copy_(sk.attn.fc_reduce.weight)
    sk_like.fc1.bias.zero_()
    sk_like.bn1.load_state_dict(sk.attn.bn.state_dict())
    sk_like.fc2.weight.copy_(sk.attn.fc_select.weight)
    sk_like.fc2.bias.zero_()
    gap = (sk_like(x) - sk(x)).abs().max()
    print(f"max |SplitAttn(K=1, R=2) - SelectiveKernel| = {gap:.1e}")
"""),
    md("""
So a Split-Attention block with $R = 1$ is an SE block, and with $K = 1$, $R = 2$
it is the simplest SK block; in between, $K$ independent copies of that SK block
run side by side, which is where ResNeXt's cardinality comes in.

## Two layouts of the same block

The report describes two ways to arrange the $G$ featuremap groups
{cite}`resnestreport`:

- **cardinality-major** (its Fig. 4): the $R$ splits of a cardinal group sit next
  to each other. The code mirrors the equations: a list of $K$ `CardinalGroup`
  modules, each with its own convolution and attention, concatenated at the end
  (`SplitAttnCardinal`).
- **radix-major** (its Fig. 5): splits with the same radix index sit next to each
  other, one block of $C$ channels per radix index. The whole block is then a
  single convolution with `groups = K*R`, one attention MLP whose dense layers have
  `groups = K`, and a softmax over the radix axis of an $(N, R, C)$ tensor
  (`SplitAttn`). This is what the official code and timm use.

Number the featuremap groups from 0. In the cardinality-major layout, group
$(k, r)$ is the $(kR + r)$-th; in the radix-major layout it is the $(rK + k)$-th.
The map $\\pi: kR + r \\mapsto rK + k$ is a permutation of $\\{0, \\dots, G-1\\}$,
the transpose of a $K \\times R$ table read row by row:
"""),
    code("""
K, R = 4, 2
pi = torch.arange(K * R).view(K, R).t().reshape(-1)   # radix-major slot -> group kR+r
print("radix-major slot :", list(range(K * R)))
print("holds group kR+r :", pi.tolist())
print("  i.e. (k, r)    :", [(int(g) // R + 1, int(g) % R + 1) for g in pi])
fig = diagrams.draw_featuremap_orders(K, R)
"""),
    md("""
**Why the two layouts compute the same function.** Apply $\\pi$ to everything
that is indexed by featuremap group, and nothing else changes:

1. *Convolution.* A grouped convolution is $G$ independent convolutions, group $g$
   reading input slice $g$ and writing output slice $g$. Reordering the groups
   (their weights, their input slices and their output slices by the same $\\pi$)
   reorders the outputs and changes no value. So the radix-major convolution,
   given weights in order $\\pi$ and input slices in order $\\pi$
   (`radix_input_order`), returns the same $U_j$ in radix-major order. Batch norm
   and ReLU act channel by channel and follow along.
2. *Squeeze.* In radix-major order the $R$ splits are $R$ blocks of $C$ channels,
   and block $r$ holds $(U_{r}^{k=1}, \\dots, U_{r}^{k=K})$. Adding the $R$ blocks
   gives $(\\hat U^1, \\dots, \\hat U^K)$, already concatenated in cardinal order, so
   the pooled vector is $(s^1, \\dots, s^K)$.
3. *Attention MLP.* A dense layer with `groups = K` is $K$ independent dense
   layers, the $k$-th reading $s^k$: exactly the $K$ separate MLPs of the
   cardinality-major form, stacked. Its $K \\cdot R \\cdot C/K$ logits come out
   ordered $(k, r, c)$.
4. *r-softmax and sum.* The softmax is over $r$ for each $(k, c)$, wherever those
   numbers are stored; the radix-major code transposes the logits to $(r, k, c)$
   so that they line up with the features, multiplies and sums over $r$, and gets
   $V^k_c$ at position $k \\cdot C/K + c$: the concatenation $V$.

In a ResNeSt bottleneck the input order is set by the 1x1 convolution before the
block, so a trained network simply learns its rows in whichever order the layout
needs. Now the numerical check: random weights and statistics, double precision,
several $K > 1$ and $R > 1$, weights copied with `radix_to_cardinal`:
"""),
    code("""
print(" K  R    C   parameters (radix / cardinal)   max |diff|   same attention")
for K, R, C in [(2, 2, 64), (4, 2, 64), (2, 3, 96), (4, 4, 128), (8, 2, 128)]:
    radix_major = randomise(SplitAttn(C, C, cardinality=K, radix=R), seed=K * 10 + R)
    cardinal_major = radix_to_cardinal(radix_major).double().eval()
    order = radix_input_order(C, K, R)                  # input slice pi(g) -> group g
    x = torch.randn(2, C, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        diff = (cardinal_major(x) - radix_major(x[:, order])).abs().max().item()
        same = torch.allclose(cardinal_major.last_attention, radix_major.last_attention)
    p_radix, p_card = count_params(radix_major), count_params(cardinal_major)
    print(f"{K:2d} {R:2d} {C:4d}   {p_radix:>10,} / {p_card:<10,}"
          f"         {diff:.1e}      {same}")
"""),
    md("""
The differences are at the level of double-precision rounding ($10^{-16}$ relative),
the attention weights agree, and the two forms hold exactly the same number of
parameters: the layouts differ only in where the numbers live in memory.

## Which layout is faster?

Same function, same parameters, same multiply-adds, but not the same work for the
computer. The cardinality-major form launches $K$ small convolutions, $K$ small
MLPs and $K$ softmaxes one after another from a Python loop, and copies the pieces
into one tensor at the end; the radix-major form launches one of each, however
large $K$ is. Each launch has a fixed cost, so the loop should hurt most where
each piece has little arithmetic to do: small maps, many groups.

The cell below times both forms on the same weights (inference, a batch of 8,
$R = 2$) in two settings: small maps with many channels, $256 \\times 8 \\times 8$,
as in the late stages of a network on CIFAR-10, and large maps with few channels,
$64 \\times 32 \\times 32$. The two forms take turns, so that both see the same load
on the machine; the plot shows the median over repeats of the time ratio. PyTorch
runs on one thread here, which makes timings on a shared machine steadier.
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
import statistics
import matplotlib.pyplot as plt
from course_lib.engine.timing import compare


def time_layouts(C, size, ks, R=2, batch=8, repeats=9):
    \"\"\"Median time (ms) of each layout and median ratio cardinal/radix, for each K.\"\"\"
    rows = {}
    for K in ks:
        torch.manual_seed(K)
        radix_major = SplitAttn(C, C, cardinality=K, radix=R).eval()
        cardinal_major = radix_to_cardinal(radix_major).eval()
        x = torch.randn(batch, C, size, size)
        x_radix = x[:, radix_input_order(C, K, R)].contiguous()

        def run_radix():
            with torch.no_grad():
                radix_major(x_radix)

        def run_cardinal():
            with torch.no_grad():
                cardinal_major(x)

        t = compare({"radix": run_radix, "cardinal": run_cardinal},
                    repeats=repeats, warmup=2)
        ratio = statistics.median(c / r for c, r in zip(t["cardinal"], t["radix"]))
        ms = {key: 1000 * statistics.median(v) for key, v in t.items()}
        rows[K] = (ms["radix"], ms["cardinal"], ratio)
    return rows


threads = torch.get_num_threads()
torch.set_num_threads(1)
settings = {"256 x 8 x 8 (small maps)": (256, 8), "64 x 32 x 32 (large maps)": (64, 32)}
ks = (1, 2, 4, 8, 16, 32)
results = {}
for label, (C, size) in settings.items():
    results[label] = time_layouts(C, size, ks)
    print(label)
    for K, (t_radix, t_card, ratio) in results[label].items():
        print(f"  K = {K:2d}: radix-major {t_radix:7.2f} ms, "
              f"cardinality-major {t_card:7.2f} ms, ratio {ratio:5.2f}")
torch.set_num_threads(threads)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
for ax, (label, rows) in zip(axes, results.items()):
    ax.bar([str(k) for k in rows], [rows[k][2] for k in rows],
           color=["#f28e2b" if rows[k][2] > 1 else "#4e79a7" for k in rows])
    ax.axhline(1, color="#333333", lw=0.8)
    ax.set(yscale="log", xlabel="cardinality K", title=f"C x H x W = {label}")
axes[0].set_ylabel("time cardinal-major / radix-major")
fig.suptitle("above 1: radix-major is faster (inference, batch 8, R = 2, one thread)",
             fontsize=10)
fig.tight_layout()
"""),
    md("""
The exact numbers change from run to run on a machine shared with other work, so
read the pattern. With small maps the arithmetic per group is tiny, the launches
dominate, and the cardinality-major loop falls far behind as $K$ grows. With large
maps the arithmetic dominates and the two forms stay within a small factor of each
other, in either direction: on a CPU, how well the convolution library handles
one convolution with many small groups, compared with several convolutions with
few groups, matters as much as the number of launches. On a GPU, where every
launch costs far more than a little arithmetic, one launch for all groups is the
clear winner. That is why the official code and timm, and course_lib's `ResNeSt`,
use the radix-major `SplitAttn`; the cardinality-major form stays in course_lib
because it reads like the equations. `python -m course_lib.engine.bench` repeats the
comparison for a training step as well.

## Explore the block

Choose the cardinality $K$, the radix $R$ and the width $C$. The explorer builds
the radix-major block, counts its parameters and its multiply-adds on one
$C \\times 16 \\times 16$ map (`count_macs`), times a batch of 16 such maps on one
thread, and redraws the diagram. A width that $G = K R$ does not divide is refused
by course_lib with a message saying which constraint broke.

*""" + WIDGET_NOTE + """*
"""),
    code("""
import html
import ipywidgets as widgets
from course_lib.engine.timing import measure_latency

k_slider = widgets.IntSlider(value=2, min=1, max=8, description="K",
                             continuous_update=False)
r_slider = widgets.IntSlider(value=2, min=1, max=4, description="R",
                             continuous_update=False)
c_slider = widgets.IntSlider(value=64, min=16, max=256, step=8, description="width C",
                             continuous_update=False)
report = widgets.HTML()
picture = widgets.Image(format="png",
                        layout=widgets.Layout(width="100%", max_width="800px"))


def update(_=None):
    K, R, C = k_slider.value, r_slider.value, c_slider.value
    try:
        block = SplitAttn(C, C, cardinality=K, radix=R)
    except ValueError as err:              # course_lib names the broken constraint
        report.value = ("<p style='color:#b00020'><b>ValueError:</b> "
                        f"{html.escape(str(err))}</p>")
        picture.layout.display = "none"
        return
    macs = count_macs(block, input_size=(C, 16, 16))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                 # steadier on a shared machine
    speed = measure_latency(block, batch_size=16, input_size=(C, 16, 16),
                            warmup=1, repeats=5)
    torch.set_num_threads(threads)
    report.value = (
        f"<p>G = K&middot;R = {K * R} featuremap groups, "
        f"hidden width d = {block.attn_channels}<br>"
        f"parameters: <b>{count_params(block):,}</b> &nbsp; "
        f"multiply-adds per {C}x16x16 map: <b>{macs / 1e6:.2f} M</b> &nbsp; "
        f"latency: <b>{speed['ms_per_batch']:.2f} ms</b> per batch of 16 "
        "(one thread, this machine, now)</p>")
    fig = diagrams.draw_split_attention(K, R, channels=C, height=16, width=16)
    picture.value = diagrams.figure_png(fig, dpi=72)
    picture.layout.display = None


for s in (k_slider, r_slider, c_slider):
    s.observe(update, "value")
update()
sliders = widgets.HBox([k_slider, r_slider, c_slider],
                       layout=widgets.Layout(flex_flow="row wrap"))
widgets.VBox([sliders, report, picture])
"""),
    md("""
A few things to try: at fixed $C$ and $K$, raise $R$ and watch the parameters. The
3x3 convolution has $C \\cdot R$ outputs, each reading $C/(KR)$ inputs, so its
$9C^2/K$ weights do not depend on $R$ at all; only the attention MLP grows with
$R$. Raising $K$ divides the convolution's cost by $K$, the saving of a grouped
convolution. And $C = 72$ with $K = 4$, $R = 4$ shows the error message. Odd
cardinalities such as $K = 3$ often fail for a second reason that the message also
names: the hidden width $d$ (at least 32) must split evenly into $K$ per-group MLPs.

## Different kernels for different splits

The report notes that ResNeSt gives all radix splits the same 3x3 kernel, which
drops the original motivation of SKNet: letting each channel choose its receptive
field {cite}`resnestreport`. `MixedKernelSplitAttn` restores it: split $r$ gets
its own kernel size (or dilation). Each split is then its own grouped convolution
(`groups = K`) over its own input slice, so the channel layout stays radix-major
and everything after the convolutions is unchanged. With all kernels equal it is
exactly `SplitAttn`:
"""),
    code("""
plain = randomise(SplitAttn(64, 64, cardinality=2, radix=2), seed=5)
x = torch.randn(2, 64, 16, 16, dtype=torch.float64)
same = mixed_from_plain(plain).double().eval()
with torch.no_grad():
    gap = (same(x) - plain(x)).abs().max()
    print(f"kernels {same.kernel_sizes}: max |Mixed - SplitAttn| = {gap:.1e}")

print()
print("block (C = 64, K = 2, R = 2)          parameters   MACs per 64x32x32 map")
for label, module in [
        ("SplitAttn, 3x3 + 3x3", SplitAttn(64, 64, cardinality=2, radix=2)),
        ("Mixed, 3x3 + 5x5", MixedKernelSplitAttn(64, 64, (3, 5), cardinality=2)),
        ("Mixed, 3x3 + 3x3 dilation 2",
         MixedKernelSplitAttn(64, 64, (3, 3), (1, 2), cardinality=2)),
        ("Mixed, 3x3 + 5x5 + 7x7 (R = 3)",
         MixedKernelSplitAttn(96, 96, (3, 5, 7), cardinality=2))]:
    macs = count_macs(module, input_size=(module.in_channels, 32, 32))
    print(f"{label:34s} {count_params(module):>10,}   {macs / 1e6:8.2f} M")
"""),
    md("""
A 5x5 split costs $25/9 \\approx 2.8$ times the weights of a 3x3 one; a 3x3 with
dilation 2 sees the same $5 \\times 5$ window for the price of a 3x3, which is why
SKNet used it. (The last row has $C = 96$ so that three splits divide it.) After a
forward pass the attention tells how the block shares each channel between its
kernels. Untrained, it has no reason to prefer either (on average the 5x5 split
gets about half of every channel); after training, these weights are the quantity
to watch:
"""),
    code("""
mixed = MixedKernelSplitAttn(64, 64, kernel_sizes=(3, 5), cardinality=2).eval()
with torch.no_grad():
    out = mixed(torch.randn(8, 64, 32, 32))
a = mixed.last_attention                       # (N, R, C)
print("output", tuple(out.shape), "| attention", tuple(a.shape))
for r, k in enumerate(mixed.kernel_sizes):
    print(f"image 0, channels 0-5, weight of the {k}x{k} split:",
          [round(v, 2) for v in a[0, r, :6].tolist()])
print(f"mean weight of the 5x5 split over images and channels: {a[:, 1].mean():.2f}")
"""),
    md("""
The same option reaches whole networks: `create_model("ResNeSt-14", kernel_sizes=(3, 5))`
builds every block with a 3x3 and a 5x5 split. Chapter 5 assembles those networks.

## Exercises

**Exercise 1 (parameters by formula).** For the radix-major block with $C$
channels, cardinality $K$, radix $R$ and hidden width $d$, write the number of
parameters as a formula (convolution, `bn0`, `fc1` with bias, `bn1`, `fc2` with
bias) and check it against `count_params` for $C = 128$ and every $K \\in \\{1, 2, 4\\}$,
$R \\in \\{1, 2, 4\\}$. Which part grows with $R$?
"""),
    code("""
# Solution to exercise 1
def split_attn_params(C, K, R, d):
    conv = (R * C) * (C // (K * R)) * 9   # R*C outputs reading C/(KR) inputs: 9C^2/K
    bn0 = 2 * R * C                       # weight and bias (statistics are buffers)
    fc1 = (C // K) * d + d                # K dense maps C/K -> d/K, plus biases
    bn1 = 2 * d
    fc2 = (d // K) * (R * C) + R * C      # K dense maps d/K -> R*C/K, plus biases
    return conv + bn0 + fc1 + bn1 + fc2


C = 128
for K in (1, 2, 4):
    for R in (1, 2, 4):
        block = SplitAttn(C, C, cardinality=K, radix=R)
        formula = split_attn_params(C, K, R, block.attn_channels)
        counted = count_params(block)
        print(f"K={K} R={R}: d={block.attn_channels:4d}  formula {formula:>8,}  "
              f"count_params {counted:>8,}  equal: {formula == counted}")
# The convolution's 9 C^2 / K weights do not depend on R;
# the MLP (d = C R / 4) grows with R.
""", tags=["hide-input"]),
    md("""
**Exercise 2 (undo the layout).** The radix-major convolution returns a tensor of
shape $(N, R \\cdot C, H, W)$ whose channel $r C + k C/K + j$ is channel $j$ of split
$r$ of cardinal group $k$. Write `to_cardinal_major(u, K, R)` that reorders it so
that channel $(kR + r) C/K + j$ holds that value, using only `view`, `transpose`
and `reshape`. Check it on a tensor whose values are their own channel index.
"""),
    code("""
# Solution to exercise 2
def to_cardinal_major(u, K, R):
    n, rc, h, w = u.shape
    ck = rc // (R * K)
    u = u.view(n, R, K, ck, h, w)                    # (r, k, j)
    return u.transpose(1, 2).reshape(n, rc, h, w)    # (k, r, j)


K, R, ck = 2, 3, 2
u = torch.arange(R * K * ck).float().view(1, -1, 1, 1)   # value = its channel index
v = to_cardinal_major(u, K, R).flatten().long()
print("cardinal-major position -> radix-major channel:", v.tolist())
expected = [r * K * ck + k * ck + j
            for k in range(K) for r in range(R) for j in range(ck)]
print("matches r*C + k*C/K + j:", v.tolist() == expected)
""", tags=["hide-input"]),
    md("""
**Exercise 3 (attention of a wide block).** Build `SplitAttn(128, 128, cardinality=4,
radix=4)`, run it on a random batch, and verify from `last_attention` that (a) for
every image, cardinal group and channel the four radix weights add up to one, and
(b) with `radix=1` the weights no longer add up to anything in particular. Which
activation produces each?
"""),
    code("""
# Solution to exercise 3
torch.manual_seed(0)
wide = SplitAttn(128, 128, cardinality=4, radix=4).eval()
with torch.no_grad():
    wide(torch.randn(4, 128, 8, 8))
a = wide.last_attention                                 # (N, R, C)
print("R = 4 (softmax): max |sum over R - 1| =", f"{(a.sum(1) - 1).abs().max():.1e}")

gated = SplitAttn(128, 128, cardinality=4, radix=1).eval()
with torch.no_grad():
    gated(torch.randn(4, 128, 8, 8))
g = gated.last_attention                                # (N, 1, C): sigmoid gates
print(f"R = 1 (sigmoid): gates between {g.min():.3f} and {g.max():.3f}, "
      "each on its own")
""", tags=["hide-input"]),
])
# One output box per cell on the site, however the kernel happened to flush stdout.
notebook = nbformat.read(PATH, as_version=4)
notebook.metadata["mystnb"] = {"merge_streams": True}
nbformat.write(notebook, PATH)
execute(PATH)
