"""The chapters' prose quotes the committed `cpu` reference runs: keep the two in step.

Each test recomputes, from the records in results/cpu/, a statement that a chapter
makes in words, and reads the sentence from the chapter's text source in src/chapters/.
"""
import math
from pathlib import Path

import pandas as pd
import pytest

from course_lib import study as ex

ROOT = Path(__file__).resolve().parents[1]


def _source(chapter: str) -> str:
    """The chapter's text source (src/chapters/NN_*.md), whitespace collapsed."""
    (path,) = (ROOT / "src" / "chapters").glob(f"{chapter}_*.md")
    return " ".join(path.read_text().split())


def _finished(chapter: str, group: str):
    runs = ex.collect(chapter, "cpu")
    return runs[(runs.group == group) & (runs.status == "finished")]


def test_chapter6_table1_claims():
    everything = ex.collect("06", "cpu")
    runs = everything[(everything.group == "table") & (everything.status == "finished")]
    if len(runs) < 3 * len(ex.TABLE1):
        pytest.skip("Table I reference runs are not all committed")
    acc = runs.test_acc.astype(float) * 100
    by = acc.groupby(runs.label)
    text = _source("06")
    assert "none of the seven differences is larger than the seed spread" in text
    pairs = ex.compare(everything, ex.TABLE1_PAIRS)
    assert (pairs.p.astype(float) > 0.05).all()
    lo, hi = by.std().min(), by.std().max()
    assert f"is {lo:.1f} to {hi:.1f} points" in text
    assert by.mean().idxmax() == "ResNeSt-14-0s1x64d" and "ResNeSt-14-0s1x64d has the best mean" in text
    assert by.std().idxmax() == "ResNeSt-14-2s1x64d" and "widest spread" in text


def _histories(chapter: str, group: str) -> dict:
    out = {}
    for spec in ex.study(chapter, "cpu"):
        rec = ex.find(spec, ex.results_dir("cpu"))
        if spec.group == group and rec and rec.get("status") == "finished":
            out[spec.label] = rec
    return out


def test_chapter7_table2_claims():
    recs = _histories("07", "table")
    if len(recs) < len(ex.TABLE2):
        pytest.skip("Table II reference runs are not all committed")
    text = _source("07")
    acc = {k: 100 * r["test_acc"] for k, r in recs.items()}
    assert max(acc, key=acc.get) == "ResNet-18" and f"most accurate ({acc['ResNet-18']:.1f}%)" in text
    stuck = [k for k in acc if k.startswith("EfficientNet")] + ["ResNeSt-101"]
    lo, hi = min(acc[k] for k in stuck), max(acc[k] for k in stuck)
    assert f"chance ({lo:.1f}% to {hi:.1f}%)" in text and hi < 13
    first = {k: r["history"][0]["train_loss"] for k, r in recs.items()}
    assert first["ResNet-18"] < 2.5 and all(v > 3.5 for k, v in first.items() if k != "ResNet-18")
    assert all(h["train_loss"] >= 3.0 for k, r in recs.items() if k.startswith("EfficientNet") for h in r["history"])
    latency = ex.load_latency("cpu")
    both = pd.DataFrame({k: {"ms": latency[k]["latency"]["ms_per_image"], "acc": acc[k]} for k in acc}).T
    assert both.ms.rank().corr(both.acc.rank()) < -0.3 and "clearly negative" in text


def test_chapter8_transfer_claims():
    recs = {**_histories("08", "pretrain"), **_histories("08", "finetune")}
    if len(recs) < 3 * len(ex.TRANSFER_MODELS):
        pytest.skip("transfer reference runs are not all committed")
    text = _source("08")
    assert "nothing transferred" in text
    pre = [round(100 * recs[f"{m} (CIFAR-10 pretraining)"]["test_acc"]) for m in ex.TRANSFER_MODELS]
    assert pre == [26, 26] and "reached only 26% test accuracy" in text
    pct = {k: f"{100 * r['test_acc']:.1f}%" for k, r in recs.items()}
    assert (f"end at {pct['ResNeSt-50 (CIFAR-10 weights)']} (ResNeSt-50) and {pct['ResNet-50 (CIFAR-10 weights)']} "
            f"(ResNet-50) on hotdog64") in text
    assert f"end at {pct['ResNeSt-50 (from scratch)']} and {pct['ResNet-50 (from scratch)']}." in text
    for m in ex.TRANSFER_MODELS:
        tuned, scratch = recs[f"{m} (CIFAR-10 weights)"], recs[f"{m} (from scratch)"]
        assert all(abs(h["train_loss"] - 0.693) < 0.06 for h in tuned["history"])   # "about ln 2"
        a, b = tuned["test_acc"], scratch["test_acc"]
        assert abs(a - b) / ((a * (1 - a) + b * (1 - b)) / 400) ** 0.5 < 2          # "no difference reaches 2 SE"


def test_chapter6_fullscale_claims():
    recs = _histories("06", "fullscale")
    if len(recs) < 2:
        pytest.skip("full-scale reference runs are not both committed")
    text = _source("06")
    report, book = recs["ResNeSt-14-2s1x64d (report recipe)"], recs["ResNeSt-14-2s1x64d (book recipe)"]
    assert f"reaches {100 * report['test_acc']:.2f}% test accuracy, " \
           f"{100 * report['test_acc'] - ex.REPORT_TABLE1['ResNeSt-14-2s1x64d'][3]:.2f} points above" in text
    gain = 100 * (book["test_acc"] - report["test_acc"])
    assert f"reaches {100 * book['test_acc']:.2f}% with the same network" in text and f"{gain:.2f} points more" in text
    table = _finished("06", "table")
    worst = (table.test_acc.astype(float) * 100).groupby(table.label).std().max()
    assert 3.25 <= gain / worst < 3.75 and "three and a half times the largest" in text
    for rec, name in ((book, "Its two curves end"), (report, "the report recipe's")):
        last = rec["history"][-1]
        assert f"{name} {100 * (last['train_acc'] - last['val_acc']):.1f} points" in text


def test_chapter6_recipe_claims():
    runs = ex.collect("06", "cpu")
    book = runs[(runs.group == "recipe") & (runs.status == "finished")]
    if len(book) < 3:
        pytest.skip("the book-recipe runs at Table I's scale are not all committed")
    report = runs[(runs.group == "table") & (runs.label == "ResNeSt-14-2s1x64d")]
    a, b = book.test_acc.astype(float) * 100, report.test_acc.astype(float) * 100
    text = _source("06")
    assert f"reaches {a.mean():.2f} ± {a.std():.2f}% against {b.mean():.2f} ± {b.std():.2f}%" in text
    w = ex.welch(a, b)
    assert w["diff"] < 0 and f"difference of {w['diff']:.2f} points" in text and f"(p = {w['p']:.2f})" in text


def test_chapter6_study_probe_and_zero_init_claims():
    from course_lib.study import analysis
    text = _source("06")
    probe = analysis.probe_table("cpu")
    first = probe[(probe.probe == "1 epoch, zero-init") & (probe.status == "finished")]
    if len(first) < 3:
        pytest.skip("the 1-epoch probe is not committed")
    val = dict(zip(first["peak lr"], first["val %"]))
    assert f"It picked 0.05 (validation accuracy {val[0.05]:.2f} %, against {val[0.1]:.2f} % and {val[0.2]:.2f} %)" \
        in text and max(val, key=val.get) == 0.05
    hist = analysis.zero_init_histories("cpu")["last BN of each block at 0 (zero-init)"]["history"]
    loss = [h["train_loss"] for h in hist]
    assert loss[1] > loss[0] and loss[1] > math.log(10)
    assert f"in the second epoch, to {loss[1]:.2f}, above $\\ln 10 \\approx 2.30$" in text
    rec = next(r for s, r in analysis.runs("06", "cpu", "zero-init") if r)
    assert f"it ended at {100 * rec['test_acc']:.2f} %" in text
    both = analysis.zero_init_histories("cpu")
    if len(both) == 2:                                              # the control without zero-init
        zero, plain = both["last BN of each block at 0 (zero-init)"], both[
            "last BN of each block at 1 (as the study builds it)"]
        loss = [h["train_loss"] for h in plain["history"]]
        assert loss[1] < loss[0] and f"its loss falls from the first epoch on ({loss[0]:.2f}, then {loss[1]:.2f})" in text
        a, b = 100 * plain["test_acc"], 100 * zero["test_acc"]
        assert f"ends at {a:.2f} % instead of {b:.2f} %, a gap of {a - b:.2f} points" in text
    fp32 = next(r for s, r in analysis.runs("06", "cpu", "precision") if s.precision == "fp32" and s.seed == 0)
    a, b = fp32["history"][0]["train_loss"], fp32["history"][1]["train_loss"]
    assert b > a and f"show the same rise ({a:.2f} to {b:.2f} for seed 0)" in text


def test_chapter6_precision_claims():
    from course_lib.study import analysis
    text = " ".join(_source("06").split())
    table, d = analysis.precision_table("cpu")
    if table.notna().sum().sum() < 8:
        pytest.skip("the precision check is not all committed")
    assert d["diff"] < 0 and d["low"] < 0 < d["high"]
    assert f"bfloat16 ended {-d['diff']:.2f} points below float32 on average" in text
    assert f"interval of [{d['low']:+.2f}, {d['high']:+.2f}] points: no difference is shown" in text
    gaps = table["bf16 %"] - table["fp32 %"]
    assert f"gaps range from {gaps.max():+.2f} to {gaps.min():+.2f} points" in text
    assert f"the runs reached {table.min().min():.2f} % to {table.max().max():.2f} %, far above chance" in text


def test_chapter6_precision_twin_claims():
    """bfloat16 against float32 at the study's scale: the twins' interval, spread and first-epoch gap."""
    import math
    import statistics

    from course_lib.study import analysis
    text = _source("06")
    rows = analysis.study_records("06", "cpu")
    twins = analysis.study_records("06", "cpu", group="precision-study")
    table, d = analysis.precision_twins(rows, twins)
    if d["n"] < 5:
        pytest.skip("fewer than five twins are committed")
    g = table["bf16 - fp32"]
    words = {5: "five", 6: "six", 7: "seven"}
    assert f"When this was written, {words[d['n']]} twins had finished." in text
    assert f"averaged {d['diff']:+.2f} points, with a 95 % interval of [{d['low']:+.2f}, {d['high']:+.2f}]: no shift " \
           f"is shown, but the interval leaves room for bfloat16 costing up to {-d['low']:.1f} points." in text
    assert d["low"] < 0 < d["high"]
    assert f"from {g.max():+.2f} ({g.idxmax()[0]}) to {g.min():+.2f} ({g.idxmin()[0]}), a standard deviation of " \
           f"{statistics.stdev(g):.2f} points" in text
    assert f"already up to {analysis.first_epoch_gap(rows, twins):.0f} points apart" in text
    lo, hi = analysis.SEED_SD_EXPECTED
    assert f"{lo} to {hi} points" in text and f"{math.sqrt(2) * lo:.2f} to {math.sqrt(2) * hi:.2f} points: rounding " \
           "alone moves a run about as far as a new seed does" in text
    assert math.sqrt(2) * lo <= statistics.stdev(g) * 1.25 and statistics.stdev(g) <= math.sqrt(2) * hi * 1.25


def test_chapter7_latency_grid_claims():
    from course_lib.study import analysis, latency
    path = ROOT / "results" / "cpu" / latency.GRID_FILE
    if not path.exists():
        pytest.skip("no latency grid committed")
    grid = latency.load_grid(path)
    assert grid["busy_before"] < latency.MAX_BUSY and grid["busy_after"] < latency.MAX_BUSY and grid["repeats"] >= 30
    f = analysis.latency_frame(grid)
    w = f[f.clock == "wall"].pivot_table(index="model", columns=["batch", "threads"], values="median")
    c = f[f.clock == "cpu"].pivot_table(index="model", columns=["batch", "threads"], values="median")
    text = _source("07")
    r = w[(1, 1)] / w[(64, 1)]
    assert f"{r.min():.2f} ({r.idxmin()}) to {r.max():.2f} ({r.idxmax()}) times less" in text
    sp = w[(64, 1)] / w[(64, 2)]
    eff = sp[[m for m in sp.index if m.startswith("EfficientNet")]]
    res = sp[[m for m in sp.index if not m.startswith("EfficientNet")]]
    assert f"by {res.min():.2f} to {res.max():.2f} times for every ResNet and ResNeSt" in text
    assert f"by only {eff.min():.2f} to {eff.max():.2f} times for the EfficientNets" in text
    one = w[(1, 1)] / w[(1, 2)]
    assert all(round(one[m], 2) <= 1.0 for m in eff.index)      # "gains nothing at all"
    base = w.loc["ResNet-14-0s1x64d", (64, 1)]
    t1 = w.loc[list(ex.TABLE1), (64, 1)] / base
    assert f"costs {t1['ResNeSt-14-2s1x64d']:.2f} times ResNet-14-0s1x64d" in text
    assert t1.idxmax() == "ResNeSt-14-1s2x64d" and f"at {t1.max():.2f} times" in text
    assert ((c[(64, 1)] / w[(64, 1)]).round(2) == 1.0).all()
    t2 = w[(64, 1)] / w.loc["ResNeSt-14", (64, 1)]                 # the study's "why this scale"
    assert t2["ResNeSt-101"] > 3 and 2 < t2["EfficientNet-b3"] < 3
    assert "ResNeSt-101 costs more than three times as much per image as ResNeSt-14 and EfficientNet-b3 more " \
           "than twice as much" in text
    study, table1, at_table1_scale = analysis.study_costs("cpu", w[(64, 1)])   # the budget, weighted by that cost
    assert study < table1 / 2 < table1 < at_table1_scale
    assert "adds less than half of Table I's study" in text and "would cost more than Table I's whole study" in text


def test_chapter7_study_protocol_claims():
    """Chapter 7's study section describes course_lib.study.specs' protocol (no result of it yet)."""
    import torch

    from course_lib.engine.recipes import get_recipe
    from course_lib.engine.train import batch_indices
    from course_lib.study import specs
    text = _source("07")
    t = specs.STUDY_TABLE2["cpu"]
    plan = [s for s in specs.protocol("07", "cpu") if s.group == "study"]
    assert {s.images for s in plan} == {t["images"]} and {s.epochs for s in plan} == {t["epochs"]}
    assert f"on {t['images']:,} CIFAR-10 images for {t['epochs']} epochs" in text
    assert f"Each run sees {t['images']:,} of the 45,000 training images for {t['epochs']} epochs" in text
    assert [s.label for s in plan if s.seed == 0] == list(ex.TABLE2)
    assert [s.label for s in plan if s.seed == 1] == list(specs.TABLE2_SECOND_SEED)
    assert "seed 1 for ResNeSt-14, ResNeSt-50, ResNet-18 and EfficientNet-b0" in text
    assert f"a peak rate of {specs.STUDY_LR:g} followed by a cosine decay to zero, gradients clipped at a total " \
           f"norm of {specs.STUDY_CLIP:g}," in text and {s.recipe_fields["grad_clip"] for s in plan} == {specs.STUDY_CLIP}
    r = get_recipe(plan[0].recipe, **plan[0].recipe_fields)
    epoch = len(batch_indices(t["images"], r.batch_size, torch.Generator()))
    assert r.warmup_steps == 2 * len(batch_indices(45_000, r.batch_size, torch.Generator()))
    assert f"{r.warmup_steps} steps, two epochs of the full training set" in text
    assert 2 * r.warmup_steps > epoch * r.epochs and (f"is {epoch} steps, so the warm-up takes up {r.warmup_steps} of "
                                                      f"the run's {epoch * r.epochs} steps, more than half") in text


def test_chapter7_efficientnet_scaling_claims():
    from course_lib import create_model
    text = _source("07")
    blocks, params = {}, {}
    for b in ("b0", "b1", "b2", "b3"):
        net = create_model(f"EfficientNet-{b}", num_classes=10)
        blocks[b] = sum(len(stage) for stage in net.blocks)
        params[b] = round(sum(p.numel() for p in net.parameters()) / 1e6, 2)
        assert params[b] == ex.REPORT_TABLE2[f"EfficientNet-{b}"][0]      # "their parameter counts are the report's"
    assert (blocks["b0"], blocks["b1"], blocks["b2"], blocks["b3"]) == (16, 23, 23, 26)
    assert "b1 is b0 with seven more blocks (23 against 16)" in text and "b3 has 26 blocks" in text


def test_chapter6_study_rate_claims():
    from course_lib.study import analysis, specs
    probe = analysis.probe_table("cpu")
    full = probe[(probe.probe == "Table I's scale, no zero-init") & (probe.status == "finished")]
    if len(full) < 3:
        pytest.skip("the probe at Table I's scale is not committed")
    val = dict(zip(full["peak lr"], full["val %"]))
    best = max(val, key=val.get)
    assert specs.STUDY_LR == best
    text = _source("06")
    lo, hi = min(val.values()), max(val.values())
    assert f"within {hi - lo:.2f} points of each other in validation accuracy ({lo:.2f} % to {hi:.2f} %)" in text
    assert f"the study uses {best:g}." in text


def test_chapter6_seed_spread_rule_claims():
    """The spread rule the chapter states is the one analysis.seed_spread applies, with its interval's width."""
    from scipy import stats

    from course_lib.study import analysis
    text = _source("06")
    lo, hi = analysis.SEED_SD_EXPECTED
    assert f"deviation of {lo:g} to {hi:g} points was expected (`analysis.SEED_SD_EXPECTED`)" in text
    assert f"above {analysis.SEED_SD_LIMIT:g} point (`analysis.SEED_SD_LIMIT`)" in text
    factor = math.sqrt(stats.chi2.ppf(0.975, 2) / stats.chi2.ppf(0.025, 2))   # high / low for 3 seeds
    assert round(factor) == 12 and "its 95 % interval spans a factor of twelve" in text


def test_chapter6_out_of_reach_interval_claim():
    """Six seeds at a seed SD of 0.5, runs that share nothing: the paired interval's half-width."""
    from scipy import stats
    text = _source("06")
    sd_diff = 0.5 * math.sqrt(2)
    half = stats.t.ppf(0.975, 5) * sd_diff / math.sqrt(6)
    assert f"$0.5\\sqrt{{2}} \\approx {sd_diff:.2f}$ points" in text
    assert f"/ \\sqrt{{6}} \\approx \\pm {half:.2f}$ points" in text


def test_chapter6_multiplicity_and_speed_claims():
    """1 - 0.95^3 for three uncorrected main contrasts; the bf16 speed-ups as notes/bench.txt recorded them."""
    import re
    text = _source("06")
    assert f"up to $1 - 0.95^3 \\approx {round(100 * (1 - 0.95 ** 3))}$ %" in text
    bench = (ROOT / "notes" / "bench.txt").read_text()
    ratio = {m: float(r) for m, r in re.findall(r"^(\S+)\s+bf16 \+ channels-last\s+[\d.]+ img/s\s+ratio over fp32 eager "
                                                 r"([\d.]+)", bench, flags=re.M)}
    assert f"measured a training step {ratio['ResNet-14-0s1x64d']:.2f} (ResNet-14-0s1x64d) to " \
           f"{ratio['ResNeSt-14-2s1x64d']:.2f} (ResNeSt-14-2s1x64d) times as fast" in text


def test_chapter6_emulated_bf16_speed_claims():
    """The speeds of bf16 and fp32 on a CPU without native bf16, as notes/bench.txt recorded them (indented)."""
    import re
    text = " ".join(_source("06").split())
    bench = (ROOT / "notes" / "bench.txt").read_text()
    part = bench[bench.index("--fast-path --bf16"):]
    part = part.split("\n#")[0]                                   # that run's block only
    speed = {(m, v): r for m, v, r in re.findall(r"^  (\S+)\s+(fp32 eager|bf16 \+ channels-last)\s+([\d.]+) img/s",
                                                 part, flags=re.M)}
    a, b = "ResNeSt-14-2s1x64d", "ResNet-14-0s1x64d"
    assert (f"ResNeSt-14-2s1x64d in bfloat16 processed {speed[a, 'bf16 + channels-last']} images per second, "
            f"against {speed[a, 'fp32 eager']} in float32 (ResNet-14-0s1x64d: {speed[b, 'bf16 + channels-last']} "
            f"against {speed[b, 'fp32 eager']};") in text


def test_chapter8_study_progress_claims():
    """Chapter 8's "How to read it" says which of the study's runs had finished; the records must agree."""
    from course_lib.study import analysis
    text = _source("08")
    done = {g: [s for s, r in analysis.runs("08", "cpu", g) if analysis.finished(r)]
            for g in ("transfer-pretrain", "transfer", "transfer-table1")}
    claim = ("the study's only finished runs were the first fine-tunes of the Table I question, those of seed 0; "
             "one seed gives that question no interval, so the text quotes no result.")
    if claim in text:
        assert done["transfer-table1"] and not done["transfer-pretrain"] and not done["transfer"]
        assert {s.seed for s in done["transfer-table1"]} == {0}
    else:
        assert not any(done.values()) and "No run of the study had finished when this text was written" in text


def test_chapter8_corrected_interval_claims():
    """Nadeau and Bengio's factor for ten cells of five folds, as chapter 8 states it."""
    text = _source("08")
    factor = math.sqrt((1 / 10 + 1 / 4) / (1 / 10))
    assert f"$\\sqrt{{3.5}} \\approx {factor:.2f}$ times the naive one" in text and (1 / 10 + 1 / 4) * 10 == 3.5


def test_chapter6_report_readings_claims():
    """The report's readings of Table I: its own table against its text, and its throughput readings
    against the committed latency grid."""
    from course_lib.study import analysis
    from course_lib.study.cost import macs_per_image
    from course_lib.study.report import REPORT_TABLE1 as R
    text = _source("06")
    radix = R["ResNet-14-1s1x64d"][3] - R["ResNet-14-0s1x64d"][3]
    assert f"ResNet-14-1s1x64d {R['ResNet-14-1s1x64d'][3]:.2f} % and ResNet-14-0s1x64d " \
           f"{R['ResNet-14-0s1x64d'][3]:.2f} %" in text and f"the radix block is {radix:.2f} points *ahead*" in text
    effects = [abs(R[a][3] - R[b][3]) for a, b in [("ResNeSt-14-2s1x64d", "ResNeSt-14-1s1x64d"),
               ("ResNeSt-14-1s2x64d", "ResNeSt-14-1s1x64d"), ("ResNeSt-14-1s1x64d", "ResNeSt-14-0s1x64d"),
               ("ResNeSt-14-0s1x64d", "ResNet-14-0s1x64d"), ("ResNeSt-14-2s1x64d", "ResNet-14-0s1x64d")]]
    width = abs(R["ResNeSt-14-1s1x40d"][3] - R["ResNeSt-14-1s1x64d"][3])
    assert f"no change ({width:.2f} points, width) and as clear effects ({min(effects):.1f} points and more)" in text
    assert f"it reads {abs(radix):.2f} points, with its caution about chance, as a slight one" in text
    assert width < analysis.NO_EFFECT_MARGIN < min(effects)
    grid = analysis.find_grid("cpu")
    assert grid is not None and grid["busy_before"] < 0.02 and grid["repeats"] == 30
    t = analysis.cost_claims(grid).droplevel(0)
    row = lambda a, b: t.xs(f"{a} / {b}", level="pair").iloc[0]                   # noqa: E731
    verdict = lambda a, b: t.xs(f"{a} / {b}", level="pair").index[0]              # noqa: E731
    ci = lambda r: f"95 % CI [{r['CI low']:.2f}, {r['CI high']:.2f}]"            # noqa: E731
    r = row("ResNeSt-14-1s1x64d", "ResNeSt-14-0s1x64d")
    up = R["ResNeSt-14-1s1x64d"][2] / R["ResNeSt-14-0s1x64d"][2] - 1
    assert f"{R['ResNeSt-14-1s1x64d'][2]:,}" in text and f"{R['ResNeSt-14-0s1x64d'][2]:,} with the plain" in text
    assert f"{100 * up:.0f} % more" in text and f"its {100 * up:.0f} % gain" in text
    assert f"(their multiply-adds differ by {100 * (1 / r['if time followed MACs'] - 1):.1f} %)" in text
    assert f"costs {100 * (1 - r['throughput ratio']):.0f} % of the throughput (ratio " \
           f"{r['throughput ratio']:.2f}, {ci(r)})" in text and verdict("ResNeSt-14-1s1x64d", "ResNeSt-14-0s1x64d") == "reversed"
    r = row("ResNeSt-14-1s1x40d", "ResNeSt-14-1s1x64d")
    assert f"does {r['if time followed MACs']:.2f} times fewer" in text
    assert f"runs {r['throughput ratio']:.2f} times as fast ({ci(r)})" in text
    assert f"The report's {r['report ratio']:.2f} has the sign" in text and r["report ratio"] < 1 < r["CI low"]
    plain, radix1 = row("ResNeSt-14-0s1x64d", "ResNet-14-0s1x64d"), row("ResNeSt-14-1s1x64d", "ResNet-14-1s1x64d")
    assert f"keeps {100 * plain['throughput ratio']:.0f} % (plain block) and {100 * radix1['throughput ratio']:.0f} %" \
           " (radix 1)" in text and plain["CI high"] < 0.9 and radix1["CI high"] < 0.9
    assert f"(plain block) ({plain['report ratio']:.2f} of ResNet's" in text or \
           f"for the plain block ({plain['report ratio']:.2f} of ResNet's throughput)" in text
    assert abs(radix1["report ratio"] - 1) <= 0.1 < abs(plain["report ratio"] - 1)
    assert macs_per_image("ResNeSt-14-0s1x64d", 32, 10) / macs_per_image("ResNet-14-0s1x64d", 32, 10) > 1.8
    r2, k2 = row("ResNeSt-14-2s1x64d", "ResNeSt-14-1s1x64d"), row("ResNeSt-14-1s2x64d", "ResNeSt-14-1s1x64d")
    assert f"(ratios {r2['throughput ratio']:.2f} and {k2['throughput ratio']:.2f})" in text
    assert r2["CI high"] < 1 and k2["CI high"] < 1
    r = row("ResNet-14-1s1x64d", "ResNet-14-0s1x64d")
    assert f"nothing measurable in the ResNet body ({r['throughput ratio']:.2f}, {ci(r)})" in text \
        and r["CI low"] < 1 < r["CI high"]
    own = R["ResNet-14-1s1x64d"][2], R["ResNet-14-0s1x64d"][2]
    assert own[0] < own[1] and f"costing throughput ({own[0]:,} against {own[1]:,}" in text


def test_chapter6_spike_and_clipping_claims():
    """The unclipped Table I runs and the replay of the run that jumped, as notes/spike.json recorded it."""
    import json

    from course_lib.study import analysis, specs
    text = _source("06")
    first = analysis.study_records("06", "cpu", group="unclipped")
    assert len(first) == sum(map(len, specs.UNCLIPPED_RUNS.values())) == 12 and "first twelve runs" in text
    odd = [r for r in first if r["acc"] < 70]
    assert len(odd) == 1 and (odd[0]["label"], odd[0]["seed"]) == ("ResNeSt-14-1s1x40d", 1)
    twin = next(r for r in first if r["label"] == odd[0]["label"] and r["seed"] == 0)
    assert f"ended {twin['acc'] - odd[0]['acc']:.0f}\npoints below" .replace("\n", " ") in text
    check = analysis.seed_spread(first)
    assert check["verdict"].startswith("above") and \
        f"pooled seed SD is {check['sd']:.2f} points, 95 % CI [{check['low']:.2f}, {check['high']:.2f}]" in text
    rest = analysis.seed_spread([r for r in first if r["label"] != odd[0]["label"]])
    assert f"without it, {rest['sd']:.2f}, 95 % CI [{rest['low']:.2f}, {rest['high']:.2f}]" in text
    spike = json.loads((ROOT / "notes" / "spike.json").read_text())
    assert (spike["label"], spike["seed"]) == (odd[0]["label"], odd[0]["seed"]) and spike["replay_identical"]
    top, n = spike["largest_step"], spike["steps_per_epoch"]
    hist = odd[0]["record"]["history"]
    assert f"At step {top['step']} of {n * len(hist):,}, in epoch {top['epoch']}" in text
    assert f"was {top['grad_norm']:.1f}, {top['grad_norm'] / top['epoch_median_grad_norm']:.0f} times the median " \
           f"of that epoch ({top['epoch_median_grad_norm']:.2f})" in text
    assert f"its loss was {top['loss']:.2f}" in text and f"next batch's loss was {top['next_loss']:.2f}" in text
    assert f"validation accuracy fell to {100 * hist[top['epoch'] - 1]['val_acc']:.0f} %" in text
    re = spike["recomputed"]
    assert re["bf16"]["grad_norm"] == top["grad_norm"] and f"in float32, has a norm of {re['fp32']['grad_norm']:.1f}" in text
    assert all(k.startswith(("conv1.", "layer1.0.")) for k in re["largest"])    # the stem and the first block
    binds = spike["clip_binds_as_run"]["5.0"]
    assert binds[top["epoch"] - 1] == 1 and binds[2] == 0             # as run: epoch 3 none, epoch 4 the spike
    # the clipped branch's epoch 5: none clipped. Its norms are logged after clipping, so a clipped step
    # would show as 5 (to within the clip's 1e-6 guard): the largest is far below
    assert spike["epochs"]["clip5"][-1]["max_grad_norm"] < 4.99
    assert f"{binds[0]} of the first epoch's {n} steps" in text and spike["branch"] == 3
    val = {k: 100 * v[-1]["val_acc"] for k, v in spike["epochs"].items()}
    assert f"validation accuracy is {val['clip5']:.2f} %, against {val['bf16 (as run)']:.2f} % as the run went." \
           in text and f"The float32 branch, which never spiked, reached {val['fp32']:.2f} %" in text
    fp32 = spike["epochs"]["fp32"]
    assert f"(its largest norm in epochs 4 and 5: {max(e['max_grad_norm'] for e in fp32):.2f})" in text
    assert max(e["max_grad_norm"] for e in fp32) < 5
    assert specs.STUDY_CLIP == 5.0 and "total norm of 5" in text


def test_chapter6_shared_rate_caution_claims():
    """ResNet-14-0s1x64d at 0.05 and 0.2 (seed 0, no zero-init, no clip) against the probe's two runs."""
    from course_lib.study import analysis
    text = _source("06")
    low = analysis.zero_init_histories("cpu")["last BN of each block at 1 (as the study builds it)"]
    high = next(r for r in analysis.study_records("06", "cpu", group="unclipped")
                if r["label"] == "ResNet-14-0s1x64d" and r["seed"] == 0)["record"]
    for rec, lr in ((low, 0.05), (high, 0.2)):
        cfg = rec["config"]
        assert cfg["recipe"]["lr"] == lr and cfg["seed"] == 0 and not cfg["recipe"]["grad_clip"]
        assert cfg["overrides"] == {"zero_init_last": False} and cfg["images"] is None
    a, b = 100 * low["test_acc"], 100 * high["test_acc"]
    probe = analysis.probe_table("cpu")
    full = probe[probe.probe == "Table I's scale, no zero-init"].set_index("peak lr")["test %"]
    assert f"It ended at {a:.2f} % and {b:.2f} %, {b - a:.2f} points apart" in text
    assert f"ended {full[0.2] - full[0.05]:.2f} points apart ({full[0.05]:.2f} % and {full[0.2]:.2f} % test accuracy)" \
        in text
    assert round(b - a - (full[0.2] - full[0.05])) == 4 and "about four points larger" in text


def test_chapter6_first_caught_spike_claim():
    from course_lib.study import analysis
    text = _source("06")
    runs = {(r["label"], r["seed"]): r for r in analysis.study_records("06", "cpu")}
    first = {(r["label"], r["seed"]): r for r in analysis.study_records("06", "cpu", group="unclipped")}
    key = ("ResNeSt-14-1s1x40d", 0)
    if key not in runs:
        pytest.skip("the clipped run is not committed")
    hist = runs[key]["record"]["history"]
    caught = [h for h in hist[analysis.warmup_epochs(runs[key]["record"]):] if h["clipped_steps"]]
    assert len(caught) == 1 and caught[0]["clipped_steps"] == 1
    assert f"in epoch {caught[0]['epoch']} of seed 0 of ResNeSt-14-1s1x40d, one step had a gradient norm of " \
           f"{caught[0]['grad_norm_max']:.1f}" in text
    assert f"the run ended at {runs[key]['acc']:.2f} %, beside {first[key]['acc']:.2f} % for the same seed" in text
    clips = analysis.clipping(list(runs.values()))
    assert clips.loc["ResNeSt-14-1s1x40d, seed 0", "clipped after"] == 1
