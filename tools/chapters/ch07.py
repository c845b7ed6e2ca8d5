"""Source of chapters/07_accuracy_latency.ipynb (Table II of the report, rerun)."""
import nbformat

from tools.nb import code, execute, md, setup_cell, write

PATH = "chapters/07_accuracy_latency.ipynb"
PARAMETERS = {"PROFILE": {"choices": ["smoke", "cpu", "full"]}, "TRAIN": {"choices": [False, True]}}

cells = [
    md("""
# Accuracy against latency

The ResNeSt article's opening figure plots ImageNet accuracy against inference
latency and shows ResNeSt above EfficientNet at every latency. The report tried
the same comparison on CIFAR-10 with ResNeSt of depths 14 to 101, ResNet-18 and
EfficientNet-b0 to b3, each trained for 20 epochs with the report's recipe. Its
larger networks came out *less* accurate than the small ones, so it drew no
trade-off curve.

This chapter reruns that table on this book's CPU, puts its measurements beside
the report's and draws both as accuracy against latency. It adds ResNeSt-26, the
standard depth between 14 and 50 that the report skipped (the report's ResNeSt-32
is not a standard depth; `course_lib.models.names.parse_name` explains which layer
split reproduces its parameter count).
"""),
    setup_cell(),
    md("""
## Parameters

As in the previous chapter: the defaults render the committed records of
`results/cpu/` without training anything, and `TRAIN = True` (what
`make experiments` sets) trains the runs that are missing.
"""),
    code("""
PROFILE = "cpu"   # "smoke" (CI: a few images), "cpu" (this book's reference runs) or "full" (report scale, GPU)
TRAIN = False     # True: train the runs that have no finished record yet
RESULTS = ""      # folder of the run records; "" means results/<PROFILE>/ (smoke: runs/results/smoke/)
""", tags=["parameters"]),
    code("""
import matplotlib.pyplot as plt
import pandas as pd
from course_lib import study as ex

pd.set_option("display.width", 200)
RESULTS_DIR, runs, latency = ex.open_chapter("07", PROFILE, TRAIN, RESULTS)
"""),
    md("""
## Scale of the `cpu` profile

Ten networks, from EfficientNet-b0 (4 million parameters) to ResNeSt-101
(46 million), would take days to train at the report's scale on two shared CPU
cores. The `cpu` profile therefore trains each network on 5,000 CIFAR-10 images
for 5 epochs with one seed, the report's recipe otherwise. That is enough to see
how cost grows with depth and how fast each network starts to learn; it is not
enough to rank the networks' final accuracy, and the seed spread measured in the
previous chapter (for much longer runs) is a lower bound on the noise here.
The `full` profile runs the report's scale (45,000 images, 20 epochs, 3 seeds).
"""),
    code("""
table = ex.summary(runs, latency, ex.REPORT_TABLE2)
table
"""),
    code("""
print(ex.missing_text(runs, PROFILE, "07"))
lat = next(iter(latency.values()), {}).get("latency") if latency else None
if lat:
    print(f"Latency: batch of {lat['batch_size']} images of 32x32, median of {lat['repeats']} batches "
          f"after {lat['warmup']} warm-up batches, {lat['device']}, {lat['precision']}, "
          f"{lat.get('clock', 'elapsed time')}.")
else:
    print("Latency: not measured yet; python -m course_lib.experiments latency --profile", PROFILE, "--chapter 07")
"""),
    md("""
## Accuracy against latency

Left, this book's runs: latency as CPU time per image on one thread of this
machine's CPU (all ten networks measured together in rotating order, batch 64;
see chapter 6 for why CPU time), accuracy after the profile's short training. Right, the report's Table II: latency on a T4 GPU,
accuracy after 20 epochs on all of CIFAR-10. The two latency axes are different
hardware and cannot be compared in absolute terms; compare the *order* of the
networks along each axis.
"""),
    code("""
done = runs[runs.status == "finished"]
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
colors = {"ResNeSt": "C0", "ResNet": "C2", "EfficientNet": "C3"}
family = lambda name: next(k for k in ("ResNeSt", "ResNet", "EfficientNet") if name.startswith(k))
nudge = lambda name: (3, 3) if ex.TABLE2.index(name) % 2 == 0 else (3, -9)   # neighbours' labels apart
short = lambda name: name.replace("EfficientNet-", "")                          # b0..b3: the red points
shown = 0
for name in ex.TABLE2:
    acc = done[done.label == name].test_acc.astype(float) * 100
    lat = (latency.get(name) or {}).get("latency")
    if len(acc) and lat:
        left.scatter(lat["ms_per_image"], acc.mean(), color=colors[family(name)])
        left.annotate(short(name), (lat["ms_per_image"], acc.mean()), fontsize=7, xytext=nudge(name), textcoords="offset points")
        shown += 1
    if name in ex.REPORT_TABLE2:
        p, ms, ips, a = ex.REPORT_TABLE2[name]
        right.scatter(ms, a, color=colors[family(name)])
        right.annotate(short(name), (ms, a), fontsize=7, xytext=nudge(name), textcoords="offset points")
first = done.iloc[0] if len(done) else None
where = (f"CIFAR-10, {int(first.train_images):,} images, {first.epochs} epochs, seeds "
         f"{sorted(done.seed.unique().tolist())}\\n{first.hardware}" if first is not None else "")
left.set_title(f"This book ('{PROFILE}' profile): {where}" if shown else
               f"This book ('{PROFILE}' profile): no finished run with a latency yet", fontsize=8)
if not shown:
    left.text(0.5, 0.5, "nothing to plot yet", ha="center", transform=left.transAxes)
right.set_title("Report, Table II: CIFAR-10, 50,000 images, 20 epochs, one run\\nT4 GPU", fontsize=8)
left.set_xlabel("latency (ms of CPU time per image, 1 thread)")
right.set_xlabel("latency (ms per image, T4 GPU)")
for ax in (left, right):
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
for k, c in colors.items():
    right.scatter([], [], color=c, label=k + (" (b0 to b3)" if k == "EfficientNet" else ""))
right.legend(fontsize=8, loc="center right")
fig.text(0.01, 0.005, f"reproduce: {ex.command(PROFILE, '07')}", fontsize=7, color="0.4")
fig.tight_layout(rect=(0, 0.04, 1, 1))
"""),
    code("""
if len(done) >= 2 and latency:
    both = pd.DataFrame({name: {"latency": latency[name]["latency"]["ms_per_image"],
                                "accuracy": done[done.label == name].test_acc.astype(float).mean()}
                         for name in ex.TABLE2 if name in latency and (done.label == name).any()}).T
    rho = both.latency.rank().corr(both.accuracy.rank())
    print(f"Rank correlation of latency and accuracy over {len(both)} networks (this book): {rho:+.2f}")
rep = pd.DataFrame(ex.REPORT_TABLE2, index=["params", "ms", "img/s", "acc"]).T
print(f"Rank correlation of latency and accuracy over {len(rep)} networks (report): "
      f"{rep.ms.rank().corr(rep.acc.rank()):+.2f}")
"""),
    md("""
A clearly positive rank correlation would mean that the slower networks are also
the more accurate ones, the premise of a trade-off curve. The report's table gives
a correlation near zero: its slower ResNeSts are not its more accurate ones, and
EfficientNet loses accuracy as it grows. The report's own explanation is that
short training favours small networks: a deep network has more weights to fit
and, with a constant learning rate and no augmentation, may need more epochs
before its capacity shows. Compare the sign of this book's correlation, measured
with even shorter training.

### Did every network learn?

A test accuracy near 10% on ten balanced classes is a network that has not
learned anything yet. The training loss per epoch tells which networks were
still at that point, and why.
"""),
    code("""
fig, ax = plt.subplots(figsize=(7, 3.6))
for k, spec in enumerate(s for s in ex.study("07", PROFILE) if s.group == "table"):
    rec = ex.find(spec, RESULTS_DIR)
    if not rec or rec.get("status") != "finished":
        continue
    hist = rec["history"]
    ax.plot([h["epoch"] for h in hist], [h["train_loss"] for h in hist], "o-" if k < 6 else "s--",
            color=f"C{k}", ms=3, label=f"{spec.label} (seed {spec.seed})")
ax.axhline(2.303, color="0.5", ls=":", lw=1)
ax.text(1, 2.33, "ln 10: a uniform guess", fontsize=7, color="0.4", va="bottom")
ax.set(xlabel="epoch", ylabel="training loss")
ax.grid(alpha=0.3)
if ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize=6, ncol=2)
ax.set_title(f"Table II runs, '{PROFILE}' profile: {where.replace(chr(10), ', ') if where else 'no runs yet'}", fontsize=8)
fig.text(0.01, 0.005, f"reproduce: {ex.command(PROFILE, '07')}", fontsize=7, color="0.4")
fig.tight_layout(rect=(0, 0.04, 1, 1))
"""),
    md("""
What the book's committed `cpu` runs say (5,000 images, 5 epochs, one seed; a
rerun at another profile draws its own figures above): after about 100 SGD
steps at the report's constant rate of 0.1, ResNet-18, the fastest network, is
also the most accurate (40.8%). The four EfficientNets and ResNeSt-101 end at
chance (9.7% to 12.0%). Every network but ResNet-18 starts with a training loss
far above $\\ln 10$, the mark of first steps that overshoot, and the
EfficientNets never get back below 3. The rank correlation is therefore clearly
negative: here the slower networks are the *less* accurate ones. That is a
finding about the recipe at a small step budget (a constant rate of 0.1 without
warm-up), not about the architectures; with one seed per network, and a seed
spread of several points measured in chapter 6, the order of the networks that
did learn is not established either.

## Exercises

1. Which network's latency rank differs most between the CPU and the report's
   GPU? EfficientNet's depthwise convolutions do few multiply-adds per byte moved;
   look up `macs` in `results/cpu/latency.json` and compare multiply-adds per
   millisecond across the networks.
2. Train ResNeSt-50 and EfficientNet-b0 with the book's recipe instead of the
   report's (`course_lib.run("ResNeSt-50", "book", images=5000, epochs=5)`).
   Does the order of the two change?
"""),
]

write(PATH, cells)
nb = nbformat.read(PATH, as_version=4)
nb.metadata["course"] = {"parameters": PARAMETERS}
nbformat.write(nb, PATH)
execute(PATH)
