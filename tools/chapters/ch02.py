"""Source of chapters/02_squeeze_excitation.ipynb."""
from tools.nb import code, execute, md, setup_cell, write

PATH = "chapters/02_squeeze_excitation.ipynb"
WIDGET_NOTE = ("*Move the sliders in a live kernel (Colab or local); "
               "the static page shows the initial state.*")

write(PATH, [
    md("""
# Squeeze-and-Excitation

In a ResNeXt block every channel enters the next layer with a fixed weight: the
network treats the feature "fur texture" the same way for a photo of a cat and for
a photo of a lorry. Squeeze-and-Excitation (SE) blocks {cite}`hu2018senet` change
that with a small side network that looks at the whole feature map and returns one
gate in $(0, 1)$ per channel, computed anew for every image. SENet won the ILSVRC
2017 classification challenge with these gates, and they are the simplest case of
the Split-Attention of ResNeSt: one group, one split, a sigmoid instead of a
softmax {cite}`zhang2022resnest,resnestreport`.

In this chapter you will

- write the block from its equations and check `course_lib.blocks.se.SqueezeExcite` against them;
- see what the reduction ratio $r$ costs and saves;
- train a small SE network on CIFAR-10 {cite}`krizhevsky2009cifar` on the CPU, and
  measure whether its gates differ between classes, and where in the network.
"""),
    setup_cell(),
    code("""
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.blocks import cost
from course_lib.blocks.se import SqueezeExcite
from course_lib.engine.data import CIFAR10_MEAN, CIFAR10_STD, balanced_order, load_data, normalize
from course_lib.engine.device import seed_everything
from course_lib.engine.recipes import get_recipe
from course_lib.engine.train import train
from course_lib.figures import diagrams
"""),
    md("""
## Squeeze, excite, scale

The block receives the output $\\mathbf{U}$ of a convolution, $C$ feature maps of
size $H \\times W$, and works in three steps.

**Squeeze.** Global average pooling turns each channel into one number, a summary of
where and how strongly the feature fired anywhere in the image:

$$
s_c = \\frac{1}{H \\times W} \\sum_{i=1}^{H} \\sum_{j=1}^{W} \\mathbf{U}_c(i, j),
\\qquad \\mathbf{s} \\in \\mathbb{R}^{C}.
$$

A convolution only sees a small window; $\\mathbf{s}$ is the first quantity in the
block that describes the *whole* image.

**Excitation.** Two fully connected layers turn the descriptor into gates. The first,
$\\mathbf{W} \\in \\mathbb{R}^{\\frac{C}{r} \\times C}$, squeezes the $C$ numbers into
$C / r$, followed by a ReLU $\\delta$; the second,
$\\tilde{\\mathbf{W}} \\in \\mathbb{R}^{C \\times \\frac{C}{r}}$, expands back to $C$,
followed by a sigmoid $\\sigma$:

$$
\\mathbf{z} = \\delta(\\mathbf{W} \\mathbf{s}), \\qquad
\\mathbf{a} = \\sigma(\\tilde{\\mathbf{W}} \\mathbf{z}) \\in (0, 1)^{C}.
$$

The hidden layer is a bottleneck controlled by the *reduction ratio* $r$: it keeps
the block cheap and forces the gates to be built from a few shared factors, so
that channels are switched on and off together rather than one by one. A sigmoid,
not a softmax, lets any number of channels be fully open at once.

**Scale.** Each channel is multiplied by its gate:

$$
\\mathbf{V}_c = a_c \\, \\mathbf{U}_c , \\qquad c = 1, \\dots, C.
$$

No label enters the computation of $\\mathbf{a}$: the image decides, through
$\\mathbf{U}$, which of its own features to amplify. That is why the report calls
the mechanism a form of self-attention {cite}`resnestreport`. In a residual network
the SE block sits on the residual branch, after the last convolution and before the
shortcut is added.
"""),
    code("""
fig = diagrams.draw_se(channels=64, reduction=4, height=32, width=32)
"""),
    md("""
## The block by hand

`course_lib.blocks.se.SqueezeExcite` stores $\\mathbf{W}$ and $\\tilde{\\mathbf{W}}$ as
$1 \\times 1$ convolutions on the pooled $(C, 1, 1)$ tensor, which is the same
fully connected layer (with a bias each, as in SENet). We recompute its output from
the three equations with plain matrix products.
"""),
    code("""
torch.manual_seed(0)
se = SqueezeExcite(channels=64, reduction=4)
u = torch.randn(8, 64, 16, 16)                       # U: (N, C, H, W)

s = u.mean(dim=(2, 3))                               # squeeze: (N, C)
W, b = se.fc1.weight.flatten(1), se.fc1.bias         # (C/r, C), (C/r,)
W_tilde, b_tilde = se.fc2.weight.flatten(1), se.fc2.bias   # (C, C/r), (C,)
z = torch.relu(s @ W.T + b)                          # (N, C/r)
a = torch.sigmoid(z @ W_tilde.T + b_tilde)           # (N, C)
v = u * a[:, :, None, None]                          # scale: (N, C, H, W)

with torch.no_grad():
    out = se(u)
shapes = {"s": s, "z": z, "a": a, "V": v}
print("shapes:", ", ".join(f"{k} {tuple(t.shape)}" for k, t in shapes.items()))
print("by hand == SqueezeExcite:", torch.allclose(v, out, atol=1e-6))
print("gates kept in se.last_gate:", tuple(se.last_gate.shape),
      torch.allclose(se.last_gate, a, atol=1e-6))
"""),
    md("""
## What the reduction ratio costs

The two layers hold $C \\cdot C/r + C/r$ and $C/r \\cdot C + C$ parameters: about
$2C^2/r$. Their multiply-adds per image are the same $2C^2/r$, because they act on
one pooled vector, not on every pixel. Compare with the $3 \\times 3$ convolution
$C \\to C$ the block would follow, $9C^2$ weights and $9C^2 HW$ multiply-adds on
an $H \\times W$ map. SENet settled on $r = 16$ {cite}`hu2018senet`.
"""),
    code("""
C, size = 256, 14
conv_p = cost.conv_params(C, C, 3)
conv_m = cost.conv_macs(C, C, size, size, 3)
lines = [f"3x3 conv {C}->{C} on {size}x{size}: {conv_p:,} params, "
         f"{conv_m:,} MACs",
         f"{'r':>3} {'hidden':>6} {'SE params':>10} {'formula':>8}"
         f" {'SE MACs':>8} {'params/conv':>12} {'MACs/conv':>10}"]
for r in [1, 2, 4, 8, 16, 32]:
    block = SqueezeExcite(C, reduction=r)
    p = cost.count_params(block)
    m = cost.count_macs(block, input_size=(C, size, size))
    formula = 2 * C * (C // r) + C // r + C
    lines.append(f"{r:>3} {C // r:>6} {p:>10,} {formula:>8,} {m:>8,}"
                 f" {p / conv_p:>12.1%} {m / conv_m:>10.2%}")
print("\\n".join(lines))
"""),
    md("""
The multiply-adds of SE are a rounding error next to the convolution's; only its
parameters matter, and $r$ divides them. (The counter sees the two products; the
pooling, sigmoid and scaling add about $2 C H W$ more operations, still small.)
The explorer below lets you vary $C$ and $r$ and redraws the block with its shapes.
"""),
    md(WIDGET_NOTE),
    code("""
import ipywidgets as widgets

channels_w = widgets.SelectionSlider(options=[32, 64, 128, 256, 512, 1024],
                                     value=256, description="channels C")
reduction_w = widgets.SelectionSlider(options=[1, 2, 4, 8, 16, 32], value=16,
                                      description="reduction r")
picture = widgets.Image(format="png", width=400)
numbers = widgets.HTML()


def update(_=None):
    C, r = channels_w.value, reduction_w.value
    params = cost.count_params(SqueezeExcite(C, reduction=r))
    conv = cost.conv_params(C, C, 3)
    fig, ax = plt.subplots(figsize=(5.5, 6.2))
    diagrams.draw_se(C, r, 14, 14, ax=ax)
    picture.value = diagrams.figure_png(fig)
    numbers.value = (f"<pre>hidden units    C/r = {C // r}\\n"
                     f"SE parameters   {params:,}\\n"
                     f"3x3 conv {C}->{C}: {conv:,} weights\\n"
                     f"SE / conv       {params / conv:.1%}</pre>")


for w in (channels_w, reduction_w):
    w.observe(update, "value")
update()
widgets.VBox([channels_w, reduction_w, picture, numbers])
"""),
    md("""
## An experiment: do the gates depend on the class?

SENet's authors looked at the average gates of images from a few ImageNet classes
and found that early blocks gate all classes alike, while the gates of deep blocks
become specific to the class {cite}`hu2018senet`. We can ask the same question of a
network small enough to train here, on a CPU, in under a minute.

The network has four stages. Each is a $3 \\times 3$ convolution, batch norm, ReLU
and an SE block with $r = 4$; stages 2 to 4 halve the resolution and double the
channels (16, 32, 64, 128 channels at $32^2$, $16^2$, $8^2$, $4^2$ pixels). Global
average pooling and a linear layer classify.
"""),
    code("""
class SEStage(nn.Sequential):
    \"\"\"3x3 conv -> BN -> ReLU -> Squeeze-and-Excitation.\"\"\"

    def __init__(self, in_channels, out_channels, stride, reduction=4):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride, padding=1,
                      bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            SqueezeExcite(out_channels, reduction))


class TinySENet(nn.Module):
    def __init__(self, widths=(16, 32, 64, 128), num_classes=10):
        super().__init__()
        stages, in_channels = [], 3
        for i, w in enumerate(widths):
            stages.append(SEStage(in_channels, w, stride=1 if i == 0 else 2))
            in_channels = w
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):                                # (N, 3, 32, 32)
        return self.fc(self.stages(x).mean(dim=(2, 3)))  # (N, classes)

    def gates(self):
        \"\"\"Gates of the last forward pass: one (N, C) tensor per stage.\"\"\"
        return [stage[-1].last_gate for stage in self.stages]


seed_everything(0)
model = TinySENet()
untrained = TinySENet()
untrained.load_state_dict(model.state_dict())   # the same start, kept aside
se_params = sum(cost.count_params(s[-1]) for s in model.stages)
print(f"parameters: {cost.count_params(model):,}, of which SE: {se_params:,}")
print(f"multiply-adds per image: {cost.count_macs(model, (3, 32, 32)):,}")
"""),
    md("""
We train it with the book's training engine, `course_lib.engine.train.train`, on 8,000
class-balanced CIFAR-10 training images for 3 epochs (SGD with Nesterov momentum,
batch 64, learning rate 0.1 with half an epoch of warm-up and cosine decay, random
crops and flips, label smoothing 0.1), and report the accuracy on 1,000 balanced
validation images after each epoch. The seed fixes the initial weights, the
order of the batches and the augmentation. PyTorch is told to use one thread: on
this shared 2-core machine that is faster than two, and it makes the run repeat
bit for bit. Every number and figure below comes from this run; to reproduce them,
run the notebook, or `python -m tools.chapters.ch02` from the repository root.

```{note}
CIFAR-10's splits are stored sorted by class, so the first 1,000 validation images
are nearly all aeroplanes and cars. Take a balanced subset
(`course_lib.engine.data.balanced_order`) whenever you use only part of a split.
```
"""),
    code("""
torch.set_num_threads(1)
data = load_data("cifar10", images=8000)
val = data["val"]                                            # 5,000 images
val_small = val.subset(balanced_order(val.labels)[:1000])    # 100 per class
recipe = get_recipe("book", epochs=3, batch_size=64, lr=0.1,
                    warmup_epochs=0.5, drop_rate=None)

result = train(model, {"train": data["train"], "val": val_small, "test": None},
               recipe, device="cpu", seed=0, progress=False)
for h in result["history"]:
    print(f"epoch {h['epoch']}: train loss {h['train_loss']:.3f}, "
          f"train acc {h['train_acc']:.3f}, val acc {h['val_acc']:.3f}")
"""),
    md("""
Nearly half of the validation images are classified correctly after three short
epochs: far from a good CIFAR-10 network, but a network that has learnt something.
Now run all 5,000 validation images through it and keep every gate.
"""),
    code("""
@torch.no_grad()
def collect_gates(net, images, batch_size=500):
    \"\"\"Gates of every stage for uint8 images: a list of (N, C) tensors.\"\"\"
    net.eval()
    parts = []
    for chunk in images.split(batch_size):
        net(normalize(chunk, CIFAR10_MEAN, CIFAR10_STD))
        parts.append(net.gates())
    return [torch.cat(stage) for stage in zip(*parts)]


gates = collect_gates(model, val.images)
gates_untrained = collect_gates(untrained, val.images)
labels = val.labels
classes = val.classes
for i, g in enumerate(gates):
    print(f"stage {i + 1}: {g.shape[1]:>3} gates, mean {g.mean():.3f}, "
          f"std over images and channels {g.std():.3f}")
"""),
    md("""
The heat maps show, for each class, its mean gate minus the mean over all images,
for every channel of the first and the last stage. Channels are sorted so that the
most class-dependent ones are on the left.
"""),
    code("""
def class_means(g, labels, num_classes=10):
    \"\"\"Mean gate of each class: (classes, C).\"\"\"
    return torch.stack([g[labels == k].mean(0) for k in range(num_classes)])


def eta_squared(g, labels, num_classes=10):
    \"\"\"Per channel: the share of the gate's variance explained by class.\"\"\"
    overall = g.mean(0)
    counts = torch.bincount(labels, minlength=num_classes).float()[:, None]
    spread = class_means(g, labels, num_classes) - overall
    between = (counts * spread ** 2).sum(0)
    total = ((g - overall) ** 2).sum(0)
    return between / total


fig, axes = plt.subplots(1, 2, figsize=(13, 3.8),
                         gridspec_kw={"width_ratios": [1, 3]})
for ax, stage in zip(axes, [0, 3]):
    g = gates[stage]
    order = eta_squared(g, labels).argsort(descending=True)
    centred = (class_means(g, labels) - g.mean(0))[:, order]
    limit = centred.abs().max().item()
    im = ax.imshow(centred, cmap="RdBu_r", vmin=-limit, vmax=limit,
                   aspect="auto")
    ax.set_yticks(range(10), classes, fontsize=8)
    ax.set_xlabel("channel (sorted by class dependence)")
    ax.set_title(f"stage {stage + 1}: class mean gate - overall mean")
    fig.colorbar(im, ax=ax, fraction=0.04)
fig.suptitle("TinySENet trained on 8,000 CIFAR-10 images, 3 epochs, seed 0, "
             "CPU; gates of 5,000 validation images", fontsize=10)
fig.tight_layout()
"""),
    md("""
Mind the colour scales. In the first stage the class means differ from the overall
mean by less than 0.01; in the last stage by up to about 0.08, and the rows look
different from each other: each class opens its own set of channels. The four
vehicle classes seem to share one pattern and the six animal classes another. The
correlation between the classes' rows checks that impression:
"""),
    code("""
centred = class_means(gates[3], labels) - gates[3].mean(0)   # (10, 128)
corr = torch.corrcoef(centred)                               # (10, 10)
vehicles = [0, 1, 8, 9]          # airplane, automobile, ship, truck
animals = [2, 3, 4, 5, 6, 7]     # bird, cat, deer, dog, frog, horse


def mean_correlation(a, b):
    \"\"\"Mean correlation of the rows of classes a with those of classes b.\"\"\"
    pairs = [corr[i, j] for i in a for j in b if i != j]  # not with itself
    return torch.stack(pairs).mean().item()


print("mean correlation of the stage-4 gate patterns:")
for name, a, b in [("vehicle-vehicle", vehicles, vehicles),
                   ("animal-animal", animals, animals),
                   ("vehicle-animal", vehicles, animals)]:
    print(f"  {name:<16} {mean_correlation(a, b):+.2f}")
"""),
    md("""
Within each group the gate patterns correlate strongly (0.66 among vehicles, 0.75
among animals); across the groups they are opposite (-0.77). Part of that negative
value is mechanical, since the centred rows sum to zero over the classes, but the
positive correlations within each group are not: the last stage gates vehicles one
way and animals another.

To put a number on "depends on the class", treat each channel's
gate as a response variable and the class as a factor, as in a one-way analysis of
variance. The share of the gate's variance that the class explains is

$$
\\eta^2_c = \\frac{\\sum_{k} n_k \\, (\\bar a_{c,k} - \\bar a_c)^2}{\\sum_{n} (a_{c,n} - \\bar a_c)^2},
$$

with $\\bar a_{c,k}$ the mean gate of channel $c$ over the $n_k$ images of class
$k$ and $\\bar a_c$ its mean over all images: 0 when the class tells nothing about
the gate, 1 when all variation is between classes. Two baselines keep us honest.
With the labels shuffled, $\\eta^2$ measures chance (about $9/5000$ for 10 classes
and 5,000 images). The *untrained* network, the same weights before training, shows
how much class information random features already carry: classes differ in colour
and texture, and the gates see that even without learning.
"""),
    code("""
generator = torch.Generator().manual_seed(0)
shuffled = labels[torch.randperm(len(labels), generator=generator)]


def mean_eta(all_gates, labels):
    return [eta_squared(g, labels).mean().item() for g in all_gates]


rows = {"trained": mean_eta(gates, labels),
        "untrained (same start)": mean_eta(gates_untrained, labels),
        "trained, labels shuffled": mean_eta(gates, shuffled)}
print(f"{'mean eta^2 over channels':<26}"
      + "".join(f"{f'stage {i + 1}':>9}" for i in range(4)))
for name, values in rows.items():
    print(f"{name:<26}" + "".join(f"{v:>9.3f}" for v in values))

fig, ax = plt.subplots(figsize=(6, 3.6))
for name, values in rows.items():
    ax.plot(range(1, 5), values, "o-", label=name)
ax.set_xticks(range(1, 5), [f"stage {i + 1}\\n{g.shape[1]} ch"
                            for i, g in enumerate(gates)])
ax.set_ylabel("share of gate variance\\nexplained by class")
ax.set_title("Class dependence of SE gates (CIFAR-10, 8,000 images, "
             "3 epochs, seed 0, CPU)", fontsize=9)
ax.legend()
ax.grid(alpha=0.3)
"""),
    md("""
The gates of the trained network depend on the class, and more so the deeper the
stage: the class explains about a seventh of the gate variance in the first stage
and over two fifths in the last, against a chance level of 0.003. The untrained
network is lower at every stage and its class dependence does not grow with depth
(it peaks in stage 2), so the rise towards the last stage is something training
produced. This is the pattern SENet reported for ImageNet
{cite}`hu2018senet`: early gates react to generic properties of the image, late
gates act like a class-conditional switchboard for the features the classifier will
use.

Two cautions. This is one small network, one seed and three epochs; the numbers will
move with all three. And "depends on the class" is not "knows the class": the gates
are computed from the image alone, so they can only follow the class as far as the
features do.

Pick a class and a stage below to see, channel by channel, how far the class's mean
gate lies from the mean over all classes (the rows of the heat maps, as bars on a
fixed scale).
"""),
    md(WIDGET_NOTE),
    code("""
class_w = widgets.Dropdown(options=list(classes), value="cat",
                           description="class")
stage_w = widgets.IntSlider(value=4, min=1, max=4, description="stage")
gate_picture = widgets.Image(format="png", width=640)


def show_class_gates(_=None):
    g = gates[stage_w.value - 1]
    k = classes.index(class_w.value)
    deviation = g[labels == k].mean(0) - g.mean(0)       # (C,)
    order = deviation.argsort()
    share = eta_squared(g, labels).mean()
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(range(len(order)), deviation[order], width=1.0)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("channel (sorted by the deviation)")
    ax.set_ylabel("class mean gate\\n- overall mean")
    ax.set_ylim(-0.1, 0.1)
    ax.set_title(f"{class_w.value}, stage {stage_w.value} "
                 f"(mean eta^2 of the stage = {share:.2f})")
    gate_picture.value = diagrams.figure_png(fig)


class_w.observe(show_class_gates, "value")
stage_w.observe(show_class_gates, "value")
show_class_gates()
widgets.VBox([class_w, stage_w, gate_picture])
"""),
    md("""
## Exercises

**Exercise 2.1.** Add SE to the ResNeXt block of chapter 1: write a module that runs
`course_lib.blocks.grouped.ResNeXtBlock`'s residual branch, gates it with an SE block and
then adds the shortcut. How many parameters does SE add to a block with $c = 256$,
$b = 128$, $K = 32$ and $r = 16$, as a share of the block?

**Exercise 2.2.** Replace the sigmoid by a softmax over the channels. What do the
gates of a 256-channel block sum to, how large is a typical gate, and what does that
do to the scale of $\\mathbf{V}$? Why is the sigmoid the better choice here?

**Exercise 2.3.** Set $\\tilde{\\mathbf{W}}$ and its bias to zero in a fresh
`SqueezeExcite`. What are the gates, whatever the input, and what does the block
compute? How would you set that bias instead, so that a new SE block inserted into a
pretrained network starts out almost as the identity?
"""),
    md("**Solution 2.1** (folded: click to show)"),
    code("""
# Solution 2.1
from course_lib.blocks.grouped import ResNeXtBlock


class SEResNeXtBlock(nn.Module):
    def __init__(self, channels, bottleneck, cardinality, reduction=16):
        super().__init__()
        self.block = ResNeXtBlock(channels, bottleneck, cardinality)
        self.se = SqueezeExcite(channels, reduction)

    def forward(self, x):
        b = self.block
        out = F.relu(b.bn1(b.conv1(x)))
        out = F.relu(b.bn2(b.conv2(out)))
        out = self.se(b.bn3(b.conv3(out)))   # gate the residual branch
        return F.relu(out + x)               # then add the shortcut


net = SEResNeXtBlock(256, 128, 32)
print(tuple(net(torch.randn(2, 256, 8, 8)).shape))
added, total = cost.count_params(net.se), cost.count_params(net)
print(f"SE adds {added:,} of {total:,} parameters ({added / total:.1%})")
""", tags=["hide-input", "hide-output"]),
    md("**Solution 2.2** (folded: click to show)"),
    code("""
# Solution 2.2
torch.manual_seed(0)
se = SqueezeExcite(256, reduction=16)
u = torch.randn(4, 256, 8, 8)
with torch.no_grad():
    s = u.mean((2, 3), keepdim=True)
    logits = se.fc2(F.relu(se.fc1(s))).flatten(1)             # (N, C)
soft, sig = torch.softmax(logits, dim=1), torch.sigmoid(logits)
print(f"softmax gates sum to {soft.sum(1)[0]:.3f}, typical gate "
      f"{soft.median():.4f} (1/C = {1 / 256:.4f})")
print(f"sigmoid gates: typical gate {sig.median():.3f}")
# With a softmax the channels compete: V shrinks by a factor of about C,
# and opening one channel closes the others. SE wants to keep many
# features at once, so it gates each channel on its own with a sigmoid.
""", tags=["hide-input", "hide-output"]),
    md("**Solution 2.3** (folded: click to show)"),
    code("""
# Solution 2.3
se = SqueezeExcite(64, reduction=4)
u = torch.randn(2, 64, 8, 8)
with torch.no_grad():
    se.fc2.weight.zero_()
    se.fc2.bias.zero_()
    print("gates:", se.gate(u).unique().tolist())
    print("V == U / 2:", torch.allclose(se(u), u / 2))
    se.fc2.bias.fill_(6.0)          # sigmoid(6) = 0.9975
    change = (se(u) - u).abs().max() / u.abs().max()
    print(f"with bias 6: smallest gate {se.gate(u).min():.4f}, "
          f"max |V - U| / max |U| = {change:.4f}")
# With zero weights and bias every gate is sigmoid(0) = 1/2: the block
# halves its input, whatever the image. A large positive bias opens every
# gate almost fully, so the new block starts close to the identity and does
# not disturb the pretrained layers around it; training then moves the
# weights away from zero and the gates start to depend on the image.
""", tags=["hide-input", "hide-output"]),
])
execute(PATH)
