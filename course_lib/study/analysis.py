"""What the study's runs say: variants over seeds, paired contrasts with intervals, McNemar.

The study (``specs.protocol``) trains every Table I variant with the same seeds; for
a given seed every variant sees the same batches, so seeds are blocks and two variants
are compared seed by seed (``stats.paired_ci``). Three contrasts are declared before
any result (``MAIN_CONTRASTS``); the report's other pairs are corrected for
multiplicity with Holm's method.
"""
from __future__ import annotations

from functools import lru_cache

from ..engine.records import precision_of
from .report import REPORT_TABLE1, REPORT_TABLE2, TABLE1_CLAIMS, TABLE1_COST_CLAIMS, TABLE1_PAIRS
from .specs import STUDY_TRANSFER, find, protocol, results_dir
from .stats import holm, mcnemar, median_ci, paired_ci, pooled_sd, sd_ci

# Declared in chapter 6 before its results: (name, variant, baseline)
MAIN_CONTRASTS = (
    ("the whole ResNeSt change", "ResNeSt-14-2s1x64d", "ResNet-14-0s1x64d"),
    ("stem + shortcut", "ResNeSt-14-0s1x64d", "ResNet-14-0s1x64d"),
    ("split attention (radix 2)", "ResNeSt-14-2s1x64d", "ResNeSt-14-0s1x64d"),
)


def runs(chapter: str, profile: str, group: str, directory=None) -> list[tuple]:
    """(spec, record or None) of every run of a chapter's protocol group."""
    directory = results_dir(profile, directory)
    return [(s, find(s, directory)) for s in protocol(chapter, profile) if s.group == group]


def finished(rec) -> bool:
    return bool(rec) and rec.get("status") == "finished" and rec.get("test_acc") is not None


def study_records(chapter: str, profile: str, directory=None, group: str = "study") -> list[dict]:
    """One row per finished run of a protocol group: label, seed, test accuracy (%), precision, record.

    A bfloat16 study run trained in float32 instead (``specs.fp32_fallback``) is there with precision 'fp32'.
    """
    return [{"label": s.label, "seed": s.seed, "acc": 100 * rec["test_acc"], "precision": precision_of(rec),
             "record": rec} for s, rec in runs(chapter, profile, group, directory) if finished(rec)]


def one_precision_seeds(rows) -> list[dict]:
    """The rows of the seeds whose runs all trained in one precision (a seed is the block of every pairing)."""
    kinds: dict = {}
    for r in rows:
        kinds.setdefault(r["seed"], set()).add(r.get("precision"))
    return [r for r in rows if len(kinds[r["seed"]]) == 1]


def float32_rows(rows, twin_rows) -> list[dict]:
    """Table I in float32 alone: the study's float32 runs, and each float32 twin where its seed has no float32
    run of that variant (Table I's seed 0 trained in bfloat16; its twins repeat it in float32)."""
    mine = [r for r in rows if r.get("precision") == "fp32"]
    have = {(r["label"], r["seed"]) for r in mine}
    return mine + [t for t in twin_rows if t.get("precision") == "fp32" and (t["label"], t["seed"]) not in have]


def by_label(rows) -> dict[str, dict[int, float]]:
    """{label: {seed: accuracy %}}."""
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        out.setdefault(r["label"], {})[r["seed"]] = r["acc"]
    return out


def variants(rows, report=REPORT_TABLE1):
    """Per variant: seeds, mean and SD of the test accuracy (%), and the report's single value."""
    import statistics

    import pandas as pd
    table = []
    for label, accs in by_label(rows).items():
        v = list(accs.values())
        table.append({"model": label, "seeds": len(v), "mean %": round(statistics.mean(v), 2),
                      "SD": round(statistics.stdev(v), 2) if len(v) > 1 else None,
                      "report %": report.get(label, (None,) * 4)[3]})
    return pd.DataFrame(table).set_index("model") if table else pd.DataFrame()


# Fixed before Table I's study runs: the seed SD expected at 45,000 images x 10 epochs, and the
# limit above which the cause is looked for before more seeds are run.
SEED_SD_EXPECTED = (0.3, 0.6)
SEED_SD_LIMIT = 1.0


def seed_spread(rows, level: float = 0.95, limit: float = SEED_SD_LIMIT) -> dict:
    """The seed SD (points) pooled over the variants with 2+ seeds, its CI, and how it stands to ``limit``."""
    sd, df = pooled_sd([list(v.values()) for v in by_label(rows).values()])
    if sd is None:
        return {"sd": None, "df": 0, "low": None, "high": None, "verdict": "needs a variant with 2+ seeds"}
    low, high = sd_ci(sd, df, level)
    verdict = (f"above {limit:g} point: find out why" if low > limit else
               f"at most {limit:g} point" if high <= limit else
               f"{'above' if sd > limit else 'below'} {limit:g} point, but the interval includes it")
    return {"sd": sd, "df": df, "low": low, "high": high, "verdict": verdict}


def contrasts(rows, pairs=TABLE1_PAIRS, main=MAIN_CONTRASTS, level: float = 0.95, report=REPORT_TABLE1):
    """Each contrast: paired mean difference (points) with its CI, p, and Holm's p for the non-main ones;
    beside it the report's single-run gap, and whether the study's interval holds it."""
    import pandas as pd
    acc = by_label(rows)
    main_pairs = {(a, b): name for name, a, b in main}
    todo = [(name, a, b, True) for name, a, b in main]
    todo += [(f"{a} - {b}", a, b, False) for a, b in pairs if (a, b) not in main_pairs]
    out = []
    for name, a, b, is_main in todo:
        c = paired_ci(acc.get(a, {}), acc.get(b, {}), level)
        gap = round(report[a][3] - report[b][3], 2) if a in report and b in report else None
        holds = None if gap is None or c["low"] is None else bool(c["low"] <= gap <= c["high"])
        out.append({"contrast": name, "variant": a, "baseline": b, "main": is_main, "seeds": c["n"],
                    "difference": c["diff"], "CI low": c["low"], "CI high": c["high"], "p": c["p"],
                    "report gap": gap, "report gap in CI": holds})
    extra = [i for i, r in enumerate(out) if not r["main"] and r["p"] is not None]
    adjusted = holm([out[i]["p"] for i in extra])
    for r in out:
        r["p (Holm)"] = None
    for i, p in zip(extra, adjusted):
        out[i]["p (Holm)"] = p
    for r in out:
        p = r["p"] if r["main"] else r["p (Holm)"]
        r["verdict"] = ("needs >= 2 seeds of both" if p is None else "no difference shown" if p >= 1 - level else
                        "differs (95 % CI excludes 0)" if r["main"] else "differs (Holm's p < 0.05)")
    return pd.DataFrame(out).set_index("contrast")


def mcnemar_by_seed(rows, variant: str, baseline: str):
    """McNemar's test of two variants on the test images, one row per seed both have."""
    import pandas as pd
    from ..engine.train import decode_predictions
    recs = {(r["label"], r["seed"]): r["record"] for r in rows}
    out = []
    for seed in sorted({s for (lab, s) in recs if lab == variant} & {s for (lab, s) in recs if lab == baseline}):
        ra, rb = recs[(variant, seed)], recs[(baseline, seed)]
        pa, pb = ra.get("test_predictions"), rb.get("test_predictions")
        if not pa or not pb or pa.get("labels_sha256") != pb.get("labels_sha256"):
            continue
        labels = _labels(ra)
        a, b = decode_predictions(pa) == labels, decode_predictions(pb) == labels
        m = mcnemar(a.tolist(), b.tolist())
        out.append({"seed": seed, f"only {variant} right": m["only_a"], f"only {baseline} right": m["only_b"],
                    "p": m["p"]})
    return pd.DataFrame(out)


def _labels(record: dict):
    """The test labels a record's predictions refer to (checked against the stored hash)."""
    from ..engine.data import DataConfig, load_data
    from ..engine.train import labels_sha256
    cfg = record["config"]
    data = load_data(**{k: cfg[k] for k in ("dataset", "images", "val_size", "split_seed", "test_images",
                                            "image_size", "folds", "fold")
                        if k in DataConfig.fields() and k in cfg})
    y = data["test"].labels
    if labels_sha256(y) != record["test_predictions"]["labels_sha256"]:
        raise ValueError(f"the test set here differs from the one run {record['key']} was scored on: "
                         "its predictions cannot be compared image by image")
    return y


# ------------------------------------------------------------------------------- the report's readings
# Fixed on 2 December 2026, before any clipped study run had finished: "no noticeable change" holds when
# the whole 95 % interval lies within NO_EFFECT_MARGIN points of zero. The report treats 0.01 points as no
# change and 1.4 points and more as clear effects (0.60, with a caution about chance, as a slight one).
# Throughputs are "comparable" when the interval of their ratio lies within COMPARABLE_MARGIN of 1.
NO_EFFECT_MARGIN = 1.0
COMPARABLE_MARGIN = 0.10


def pair_verdict(sign: int, low, high, zero: float, margin: float, shown: bool | None = None) -> str:
    """One pair against a claim of ``sign``: the interval (low, high) of the variant's edge over its baseline,
    around ``zero`` (0 for a difference, 1 for a ratio). ``shown``: a difference is shown (defaults to the
    interval excluding ``zero``). Sign 0 is an equivalence claim: it holds inside zero +- margin."""
    if low is None:
        return "needs 2+ seeds"
    if sign == 0:
        if zero - margin <= low and high <= zero + margin:
            return "holds"
        return "contradicted" if low > zero + margin or high < zero - margin else "not settled"
    shown = (low > zero or high < zero) if shown is None else shown
    if not shown:
        return "not shown"
    return "holds" if ((low + high) / 2 > zero) == (sign > 0) else "reversed"


_ORDER = ("holds", "not shown", "not settled", "needs 2+ seeds", "reversed", "contradicted")


def _claim_frame(out: list, columns: list):
    """Rows of pairs, indexed by (reading, the reading's verdict, pair): a reading holds only if all its
    pairs hold, and otherwise takes the verdict of its weakest pair (``_ORDER``)."""
    import pandas as pd
    frame = pd.DataFrame(out)
    worst = frame.groupby("the report reads", sort=False)["this pair"].agg(lambda v: max(v, key=_ORDER.index))
    frame["verdict"] = frame["the report reads"].map(worst)
    frame = frame.set_index(["the report reads", "verdict", "pair"])[columns]
    for col in columns:
        if col not in ("report's table agrees", "this pair"):
            frame[col] = pd.to_numeric(frame[col])
    return frame


def claims(rows, readings=TABLE1_CLAIMS, level: float = 0.95, margin: float = NO_EFFECT_MARGIN,
           report=REPORT_TABLE1):
    """The report's readings of Table I's accuracy, each judged on the study's paired intervals.

    A pair in the contrasts table is judged as there (main contrasts at the 5 % level, the report's other
    pairs by Holm's p); a reading about several pairs holds only if each pair holds at the 5 % level on its
    own, so looking at all of them needs no correction (an intersection-union test). "No noticeable
    change" holds when the interval lies within +- ``margin`` points. Beside each verdict: whether the
    report's own table (one run each) shows what its text reads from it.
    """
    acc = by_label(rows)
    table = contrasts(rows, level=level, report=report)
    judged = {(r.variant, r.baseline): r for _, r in table.iterrows()}
    out = []
    for reading, pairs, sign in readings:
        for a, b in pairs:
            c = paired_ci(acc.get(a, {}), acc.get(b, {}), level)
            if (a, b) in judged and len(pairs) == 1:
                verdict = judged[(a, b)]["verdict"]
                shown = None if verdict.startswith("needs") else verdict.startswith("differs")
            else:
                shown = None if c["p"] is None else c["p"] < 1 - level
            gap = round(report[a][3] - report[b][3], 2) if a in report and b in report else None
            out.append({"the report reads": reading, "pair": f"{a} - {b}", "seeds": c["n"], "difference": c["diff"],
                        "CI low": c["low"], "CI high": c["high"], "report gap": gap,
                        "report's table agrees": None if gap is None else
                        bool(abs(gap) < margin if sign == 0 else (gap > 0) == (sign > 0)),
                        "this pair": pair_verdict(sign, c["low"], c["high"], 0.0, margin, shown)})
    return _claim_frame(out, ["seeds", "difference", "CI low", "CI high", "report gap", "report's table agrees",
                              "this pair"])


def compact(frame, digits: int = 2):
    """A claims table for reading on a page: short names (ResNeSt-14-0s1x64d -> ResNeSt 0s1x64d), the interval in
    one column, short headings, and no "this pair" column when every pair has its reading's verdict."""
    import pandas as pd
    out = frame.copy()
    out.index = out.index.set_levels(out.index.levels[-1].str.replace("-14-", " "), level=-1)
    def interval(r):
        return "" if pd.isna(r["CI low"]) else f"[{r['CI low']:.{digits}f}, {r['CI high']:.{digits}f}]"
    out.insert(list(out.columns).index("CI low"), "95 % CI", out.apply(interval, axis=1))
    out = out.drop(columns=["CI low", "CI high", "repeats"], errors="ignore")
    if (out["this pair"] == out.index.get_level_values("verdict")).all():   # every pair as its reading: say it once
        out = out.drop(columns="this pair")
    out = out.rename(columns={"report's table agrees": "report agrees", "if time followed MACs": "MACs predict",
                              "throughput ratio": "ratio", "difference": "diff."})
    return out.round(digits)


def cost_claims(grid: dict, readings=TABLE1_COST_CLAIMS, batch: int = 64, threads: int = 1, clock: str = "wall",
                level: float = 0.95, margin: float = COMPARABLE_MARGIN, report=REPORT_TABLE1, size: int = 32):
    """The report's readings of Table I's throughput, judged on a latency grid measured here.

    The grid's networks take turns in every repeat, so repeat i of two networks ran side by side: their
    throughput ratio is taken repeat by repeat, and its median gets a distribution-free interval
    (``stats.median_ci``). Beside it: the ratio of multiply-adds, what the ratio would be if time followed
    the arithmetic, and the report's single-run ratio.
    """
    from .cost import macs_per_image
    cells = {c["model"]: c[clock]["ms_per_batch"] for c in grid["cells"]
             if c["batch_size"] == batch and c["threads"] == threads}
    out = []
    for reading, pairs, sign in readings:
        for a, b in pairs:
            if a not in cells or b not in cells:
                raise ValueError(f"the latency grid has no {batch}-image, {threads}-thread cell of "
                                 f"{a if a not in cells else b}: measure it with "
                                 "python -m course_lib.experiments latency --profile cpu --grid")
            ratios = [tb / ta for ta, tb in zip(cells[a], cells[b], strict=True)]   # images/s of a over b's
            m = median_ci(ratios, level)
            gap = report[a][2] / report[b][2] if a in report and b in report else None
            out.append({"the report reads": reading, "pair": f"{a} / {b}", "repeats": m["n"],
                        "throughput ratio": m["median"], "CI low": m["low"], "CI high": m["high"],
                        "if time followed MACs": macs_per_image(b, size, 10) / macs_per_image(a, size, 10),
                        "report ratio": gap, "report's table agrees": None if gap is None else
                        bool(abs(gap - 1) < margin if sign == 0 else (gap > 1) == (sign > 0)),
                        "this pair": pair_verdict(sign, m["low"], m["high"], 1.0, margin)})
    return _claim_frame(out, ["repeats", "throughput ratio", "CI low", "CI high", "if time followed MACs",
                              "report ratio", "report's table agrees", "this pair"])


# ------------------------------------------------------------------------------- before Table I
def _pct(x):
    return None if x is None else round(100 * x, 2)


def probe_table(profile: str, directory=None):
    """The two probes of the peak rate: the first (1 epoch, zero-init) and the one at Table I's scale."""
    import pandas as pd
    rows = []
    for group, what in (("probe-1epoch", "1 epoch, zero-init"), ("probe", "Table I's scale, no zero-init")):
        for s, rec in runs("06", profile, group, directory):
            done = finished(rec)
            rows.append({"probe": what, "epochs": s.epochs, "peak lr": s.recipe_fields["lr"],
                         "status": "finished" if done else "not finished",
                         "val %": _pct(rec.get("val_acc")) if done else None,
                         "test %": _pct(rec.get("test_acc")) if done else None})
    return pd.DataFrame(rows)


def zero_init_histories(profile: str, directory=None) -> dict:
    """{label: record} of ResNet-14-0s1x64d seed 0 with and without zero-init (finished runs)."""
    out = {}
    for s, rec in runs("06", profile, "zero-init", directory):
        label = ("last BN of each block at 1 (as the study builds it)" if s.overrides else "last BN of each block at 0 (zero-init)")
        if s.seed == 0 and finished(rec):
            out[label] = rec
    return out


def precision_table(profile: str, directory=None, level: float = 0.95):
    """bf16 against fp32, seed by seed (test %), and the paired difference with its CI."""
    import pandas as pd
    acc: dict = {"fp32": {}, "bf16": {}}
    for s, rec in runs("06", profile, "precision", directory):
        if finished(rec):
            acc[s.precision][s.seed] = 100 * rec["test_acc"]
    seeds = sorted(set(acc["fp32"]) | set(acc["bf16"]))
    table = pd.DataFrame({"fp32 %": [acc["fp32"].get(k) for k in seeds],
                          "bf16 %": [acc["bf16"].get(k) for k in seeds]}, index=pd.Index(seeds, name="seed"))
    return table, paired_ci(acc["bf16"], acc["fp32"], level)


def _twin_pairs(bf16_rows, fp32_rows) -> list[tuple[dict, dict]]:
    """(bf16 row, fp32 row) of each (variant, seed) trained in both precisions, in fp32_rows' order."""
    mine = {(r["label"], r["seed"]): r for r in bf16_rows if r.get("precision", "bf16") == "bf16"}
    return [(b, r) for r in fp32_rows for b in [mine.get((r["label"], r["seed"]))]
            if b is not None and r.get("precision", "fp32") == "fp32"]


def precision_twins(bf16_rows, fp32_rows, level: float = 0.95):
    """bfloat16 against float32 at the study's scale: each (variant, seed) trained in both precisions, with the
    same start, batches and clip. Returns (table of pairs, paired CI of bf16 - fp32 over the pairs)."""
    import pandas as pd
    rows = [{"variant": r["label"], "seed": r["seed"], "fp32 %": r["acc"], "bf16 %": b["acc"],
             "bf16 - fp32": b["acc"] - r["acc"]} for b, r in _twin_pairs(bf16_rows, fp32_rows)]
    table = pd.DataFrame(rows).set_index(["variant", "seed"]) if rows else pd.DataFrame()
    return table, paired_ci([x["bf16 %"] for x in rows], [x["fp32 %"] for x in rows], level)


def first_epoch_gap(bf16_rows, fp32_rows) -> float:
    """The largest gap in validation accuracy (points) after the first epoch between twins (see precision_twins)."""
    gaps = [abs(b["record"]["history"][0]["val_acc"] - r["record"]["history"][0]["val_acc"]) * 100
            for b, r in _twin_pairs(bf16_rows, fp32_rows)]
    return max(gaps, default=float("nan"))


def warmup_epochs(record: dict) -> int:
    """How many epochs of a CIFAR-10/Hotdog record the recipe's warm-up touches (from its config)."""
    from ..engine.data import DATASETS, DataConfig
    from ..engine.recipes import get_recipe
    from .cost import IMAGES
    cfg = record["config"]
    recipe = get_recipe(dict(cfg["recipe"]))
    data = DataConfig(cfg["dataset"], cfg.get("images"), cfg.get("val_size"), 0).resolved()
    train = data.images or (IMAGES[cfg["dataset"]][0] - (data.val_size or DATASETS[cfg["dataset"]]["val_size"]))
    per_epoch = -(-train // recipe.batch_size)
    return -(-recipe.warmup(per_epoch) // per_epoch)


def clipping(rows):
    """Where each clipped run's gradient clip acted: steps clipped during the warm-up and after it, and the
    largest gradient norm met after it (a step clipped after the warm-up is the trace of a spike)."""
    import math

    import pandas as pd
    out = []
    for r in rows:
        rec = r["record"]
        hist = rec.get("history") or []
        if not rec["config"]["recipe"].get("grad_clip") or not any("clipped_steps" in h for h in hist):
            continue
        warm = warmup_epochs(rec)
        after = [h for h in hist[warm:] if "clipped_steps" in h]
        norms = [h["grad_norm_max"] for h in after if math.isfinite(h.get("grad_norm_max", math.nan))]
        out.append({"run": f"{r['label']}, seed {r['seed']}", "warm-up epochs": warm,
                    "clipped in warm-up": sum(h.get("clipped_steps", 0) for h in hist[:warm]),
                    "clipped after": sum(h["clipped_steps"] for h in after),
                    "largest norm after": max(norms, default=None)})
    return pd.DataFrame(out).set_index("run") if out else pd.DataFrame()


def loss_rose(record: dict, after: int | None = None) -> bool:
    """Did the training loss rise from one epoch to the next after the warm-up (``after`` epochs; from the
    record's recipe if not given)? The per-epoch trace of a spike: with a decaying rate a smooth run's loss
    only falls."""
    after = warmup_epochs(record) if after is None else after
    loss = [h["train_loss"] for h in record.get("history") or []]
    return any(b > a for a, b in zip(loss[max(after - 1, 0):], loss[max(after, 1):]))


def clip_effect(clipped, unclipped, level: float = 0.95):
    """What clipping changed, run by run: each (variant, seed) trained both ways, same start and batches.

    Returns (table of pairs, paired CI over the pairs whose unclipped run trained smoothly, the same over
    all pairs); a pair whose unclipped run's loss rose after the warm-up (``loss_rose``) is marked.
    """
    import pandas as pd
    mine = {(r["label"], r["seed"]): r for r in clipped}
    rows = []
    for r in unclipped:
        c = mine.get((r["label"], r["seed"]))
        if c is not None:
            rows.append({"variant": r["label"], "seed": r["seed"], "unclipped %": r["acc"], "clipped %": c["acc"],
                         "clipped - unclipped": c["acc"] - r["acc"], "unclipped loss rose": loss_rose(r["record"])})
    table = pd.DataFrame(rows).set_index(["variant", "seed"]) if rows else pd.DataFrame()
    smooth = [x for x in rows if not x["unclipped loss rose"]]
    ci = lambda part: paired_ci([x["clipped %"] for x in part], [x["unclipped %"] for x in part], level)  # noqa: E731
    return table, ci(smooth), ci(rows)


def progress(chapter: str, profile: str, directory=None, group: str = "study") -> str:
    """'n of N study runs finished' for a chapter's protocol group."""
    group_runs = runs(chapter, profile, group, directory)
    done = sum(1 for _, rec in group_runs if finished(rec))
    return f"{done} of {len(group_runs)} {group} runs finished"


# ------------------------------------------------------------------------------- Table II (chapter 7)
# Declared in chapter 7 before its results: (question, first, second); the gap is first - second.
# The first four are the report's readings of its Table II, the last is the book's own.
TABLE2_QUESTIONS = (
    ("report: deeper ResNeSt is worse (14 vs 50)", "ResNeSt-14", "ResNeSt-50"),
    ("report: deeper ResNeSt is worse (14 vs 101)", "ResNeSt-14", "ResNeSt-101"),
    ("report's table: bigger EfficientNet is worse (b0 vs b3)", "EfficientNet-b0", "EfficientNet-b3"),
    ("report: ResNeSt beats EfficientNet of its size", "ResNeSt-14", "EfficientNet-b2"),
    ("book: ResNeSt-14 against the fastest, ResNet-18", "ResNeSt-14", "ResNet-18"),
)
TIE_SDS = 2.0   # a gap smaller than this many seed SDs is a tie


def table2_frame(profile: str, directory=None, params: dict | None = None):
    """Per Table II network: seeds finished (of planned), test accuracy % per seed, mean, SD, params, the report's.

    ``params``: {network: parameter count} for networks without a finished record (which carries its own).
    """
    import statistics

    import pandas as pd
    planned: dict = {}
    acc: dict = {}
    count = dict(params or {})
    for s, rec in runs("07", profile, "study", directory):
        planned.setdefault(s.label, []).append(s.seed)
        if finished(rec):
            acc.setdefault(s.label, {})[s.seed] = 100 * rec["test_acc"]
            count[s.label] = rec.get("params") or count.get(s.label)
    seeds = sorted({k for v in planned.values() for k in v})
    rows = []
    for name, mine in planned.items():
        got = acc.get(name, {})
        v = [got[k] for k in sorted(got)]
        n = count.get(name)
        rows.append({"network": name, "params (M)": None if n is None else round(n / 1e6, 2),
                     "seeds": len(v), "planned": len(mine), **{f"seed {k} %": got.get(k) for k in seeds},
                     "mean %": statistics.mean(v) if v else None,
                     "SD": statistics.stdev(v) if len(v) > 1 else None,
                     "report %": REPORT_TABLE2.get(name, (None,) * 4)[3]})
    return pd.DataFrame(rows).set_index("network").apply(pd.to_numeric) if rows else pd.DataFrame()


def seed_sds(profile: str, directory=None):
    """The seed SD (points) of the study's runs: pooled over Table II's networks with 2+ seeds, and Table I's."""
    import pandas as pd
    out = []
    for source, chapter in (("Table II (chapter 7)", "07"), ("Table I (chapter 6)", "06")):
        samples = [list(v.values()) for v in by_label(study_records(chapter, profile, directory)).values()]
        sd, df = pooled_sd(samples)
        out.append({"seeds of": source, "networks with 2+ seeds": sum(len(v) > 1 for v in samples),
                    "df": df, "SD": sd})
    frame = pd.DataFrame(out).set_index("seeds of")
    frame["SD"] = pd.to_numeric(frame["SD"])
    return frame


def tie_sd(sds) -> float | None:
    """The SD the tie rule uses: the larger of those :func:`seed_sds` measured (None before any)."""
    known = [x for x in sds["SD"] if x is not None and x == x]
    return max(known) if known else None


def tie_verdict(gap, sd, first: str = "first", second: str = "second", k: float = TIE_SDS) -> str:
    """Chapter 7's rule: a gap (points) smaller than k seed SDs is a tie; otherwise the one ahead."""
    if gap is None or gap != gap:
        return "not both finished"
    if sd is None or sd != sd:
        return "no seed SD yet"
    if abs(gap) < k * sd:
        return f"tie (gap < {k:g} SD)"
    return f"{first if gap > 0 else second} ahead"


def table2_gaps(table, sd, questions=TABLE2_QUESTIONS, k: float = TIE_SDS):
    """Each declared question: the gap (points) over the seeds both networks have, and the tie rule's verdict."""
    import pandas as pd
    cols = [c for c in table.columns if str(c).startswith("seed ") and str(c).endswith(" %")]
    out = []
    for question, a, b in questions:
        both = [(table.at[a, c], table.at[b, c]) for c in cols if a in table.index and b in table.index]
        d = [x - y for x, y in both if pd.notna(x) and pd.notna(y)]
        gap = sum(d) / len(d) if d else None
        out.append({"question": question, "first": a, "second": b, "seeds": len(d), "gap": gap,
                    f"{k:g} SD": None if sd is None else k * sd, "verdict": tie_verdict(gap, sd, a, b, k)})
    frame = pd.DataFrame(out).set_index("question")
    for col in ("gap", f"{k:g} SD"):
        frame[col] = pd.to_numeric(frame[col])
    return frame


def table2_setting(profile: str, directory=None) -> str:
    """Data, images, epochs, seeds, recipe and hardware of Table II's study runs (two lines, for a figure)."""
    return study_setting("07", profile, directory)


def study_setting(chapter: str, profile: str, directory=None) -> str:
    """Data, images, epochs, seeds, recipe and hardware of a chapter's study runs (two lines, for a figure)."""
    group = runs(chapter, profile, "study", directory)
    if not group:
        return f"no study runs of chapter {chapter} in the '{profile}' profile"
    first = group[0][0]
    by_seed: dict = {}
    for s, _ in group:
        by_seed.setdefault(s.seed, []).append(s.label)
    n = len({s.label for s, _ in group})
    spans: list = []                                     # [first seed, last seed, labels]: runs of like seeds
    for k, v in sorted(by_seed.items()):
        if spans and spans[-1][2] == v and spans[-1][1] == k - 1:
            spans[-1][1] = k
        else:
            spans.append([k, k, v])
    seeds = "; ".join(f"{f'seed {a}' if a == b else f'seeds {a}-{b}'}: "
                      f"{f'all {n} networks' if len(v) == n else ', '.join(v)}" for a, b, v in spans)
    images = "45,000" if first.images is None else f"{first.images:,}"
    from .tables import hardware_text
    hardware = sorted({hardware_text(rec.get("hardware") or {}) for _, rec in group if finished(rec)})
    return (f"CIFAR-10, {images} training images, {first.epochs} epoch{'s' * (first.epochs != 1)}, "
            f"'{first.recipe}' recipe (peak lr {first.recipe_fields.get('lr', 'default')}), {first.precision}; "
            f"{seeds}\ntraining hardware: " + ("; ".join(hardware) if hardware else "no run finished yet"))


def find_grid(profile: str, directory=None) -> dict | None:
    """The latency grid of a profile (the first folder of ``record_dirs`` that has one, checked), or None."""
    from .latency import GRID_FILE, load_grid
    from .specs import record_dirs
    path = next((d / GRID_FILE for d in record_dirs(profile, directory) if (d / GRID_FILE).exists()), None)
    return load_grid(path) if path else None


def grid_cell(frame, batch: int = 64, threads: int = 1, clock: str = "wall"):
    """One cell of every model in a ``latency_frame``: median and quartiles (ms per image), by model."""
    return frame[(frame.batch == batch) & (frame.threads == threads) & (frame.clock == clock)].set_index("model")


def study_costs(profile: str, ms_per_image, unit: str = "ResNeSt-14"):
    """Training cost of Table II's study, of chapter 6's Table I study, and of Table II at Table I's scale.

    In millions of ``unit`` image passes: images x epochs of every run, each weighted by its network's
    inference time per image (``ms_per_image``, by model) over ``unit``'s, a rough stand-in for training time.
    """
    import pandas as pd
    weight = {m: ms / ms_per_image[unit] for m, ms in ms_per_image.items()}
    passes = lambda s: (s.images or 45_000) * s.epochs                                  # noqa: E731
    table2 = [s for s in protocol("07", profile) if s.group == "study"]
    table1 = [s for s in protocol("06", profile) if s.group == "study"]
    seeds1 = min(sum(1 for s in table1 if s.label == name) for name in {s.label for s in table1})
    rows = {f"Table II, this protocol ({len(table2)} runs)": sum(passes(s) * weight[s.model] for s in table2),
            f"Table I, chapter 6's study ({len(table1)} runs)": sum(passes(s) * weight[s.model] for s in table1),
            f"Table II at Table I's scale ({seeds1} seeds)":
                sum(seeds1 * passes(table1[0]) * weight[m] for m in dict.fromkeys(s.model for s in table2))}
    return pd.Series({k: round(v / 1e6, 1) for k, v in rows.items()}, name=f"M {unit} image passes")


# ------------------------------------------------------------------------------- transfer (chapter 8)
# (question, variant, baseline): labels of protocol('08') runs, paired by (seed, fold)
TRANSFER_CONTRASTS = (
    ("ResNeSt-50 against ResNet-50, fine-tuned", "ResNeSt-50 (fine-tuned)", "ResNet-50 (fine-tuned)"),
    ("pretraining pays: ResNeSt-50", "ResNeSt-50 (fine-tuned)", "ResNeSt-50 (from scratch)"),
    ("pretraining pays: ResNet-50", "ResNet-50 (fine-tuned)", "ResNet-50 (from scratch)"),
    ("fine-tuning against a linear probe: ResNeSt-50", "ResNeSt-50 (fine-tuned)", "ResNeSt-50 (linear probe)"),
    ("fine-tuning against a linear probe: ResNet-50", "ResNet-50 (fine-tuned)", "ResNet-50 (linear probe)"),
    ("ResNeSt-14 against ResNet-14, from Table I's own seeds", "ResNeSt-14-2s1x64d (Table I weights)",
     "ResNet-14-0s1x64d (Table I weights)"),
)
# The two questions chapter 8 reads as they are; the other rows of TRANSFER_CONTRASTS get Holm's correction
TRANSFER_MAIN = (TRANSFER_CONTRASTS[0][0], TRANSFER_CONTRASTS[-1][0])


def transfer_cells(profile: str, directory=None) -> dict:
    """{label: {(seed, fold): (correct, tested)}} of the finished fine-tuning runs of chapter 8."""
    out: dict = {}
    for s, rec in runs("08", profile, "transfer", directory) + runs("08", profile, "transfer-table1", directory):
        if finished(rec):
            n = rec["test_predictions"]["n"] if rec.get("test_predictions") else None
            if n:
                out.setdefault(s.label, {})[(s.seed, s.fold)] = (round(rec["test_acc"] * n), n)
    return out


def transfer_table(cells: dict):
    """Per label: (seed, fold) cells done, and per seed the cross-validated accuracy over every photo tested."""
    import pandas as pd
    rows = []
    for label, got in cells.items():
        seeds = sorted({s for s, _ in got})
        per_seed = {s: 100 * sum(c for (k, _), (c, n) in got.items() if k == s)
                    / sum(n for (k, _), (c, n) in got.items() if k == s) for s in seeds}
        rows.append({"run": label, "cells (seed, fold)": len(got),
                     "photos per seed": {s: sum(n for (k, _), (c, n) in got.items() if k == s) for s in seeds},
                     **{f"seed {s} %": round(v, 2) for s, v in per_seed.items()}})
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


def _test_train(folds: int | None) -> float:
    """n_test / n_train of one cross-validation cell: 1 / (k - 1) for k folds (specs.STUDY_TRANSFER's k)."""
    if folds is None:
        (folds,) = {t["folds"] for t in STUDY_TRANSFER.values()}
    return 1 / (folds - 1)


@lru_cache(maxsize=None)
def _seed_unit_labels() -> frozenset:
    """Arms whose pretraining is repeated per seed (Table I's weights): their unit is the seed, not the cell."""
    return frozenset(s.label for s in protocol("08", "smoke") if s.group == "transfer-table1")


def _seed_values(got: dict, seeds_folds: dict) -> dict:
    """{seed: accuracy % pooled over the given folds of that seed} from {(seed, fold): (correct, tested)}."""
    return {s: 100 * sum(got[(s, f)][0] for f in fs) / sum(got[(s, f)][1] for f in fs)
            for s, fs in seeds_folds.items()}


def _complete_seeds(*arms: dict, folds: int | None = None) -> dict:
    """{seed: folds} for the seeds on which every arm has every fold."""
    k = round(1 / _test_train(folds)) + 1
    seeds = set.intersection(*({s for s, _ in got} for got in arms)) if arms else set()
    return {s: range(k) for s in sorted(seeds) if all((s, f) in got for got in arms for f in range(k))}


def _transfer_ci(cells: dict, a: str, b: str | None, level: float, folds: int | None) -> dict:
    """The interval of one arm (b None) or one contrast, in the unit its pretraining allows (see transfer_contrasts)."""
    from .stats import corrected_paired_ci
    arms = [cells.get(lab, {}) for lab in (a, b) if lab is not None]
    if {a, b} & _seed_unit_labels():
        complete = _complete_seeds(*arms, folds=folds)
        vals = [_seed_values(got, complete) for got in arms]
        c = paired_ci(vals[0], vals[1] if b else {s: 0.0 for s in vals[0]}, level)
        return {"unit": "pretraining seeds (folds pooled)", **c}
    acc = [{k: 100 * c / n for k, (c, n) in got.items()} for got in arms]
    c = corrected_paired_ci(acc[0], acc[1] if b else {k: 0.0 for k in acc[0]}, _test_train(folds), level)
    return {"unit": "(seed, fold) cells, corrected", **c}


def transfer_contrasts(cells: dict, pairs=TRANSFER_CONTRASTS, level: float = 0.95, main=TRANSFER_MAIN,
                       folds: int | None = None):
    """Paired mean difference of accuracy (points) with its CI, in the unit each question's design allows.

    - Arms with one pretraining run each: the (seed, fold) cells both arms have, paired, with Nadeau and
      Bengio's corrected interval (``stats.corrected_paired_ci``): the folds' training sets overlap, so the
      cells are not independent. It carries seed and fold variation, not a second pretraining's.
    - Arms fine-tuned from Table I's weights: one pretraining per seed, so the unit is the seed. Each seed's
      accuracy is pooled over its folds (only seeds with every fold in both arms count), and the seeds are paired.

    The questions in ``main`` are read as they are; the others' p-values get Holm's correction.
    """
    import pandas as pd
    out = []
    for question, a, b in pairs:
        c = _transfer_ci(cells, a, b, level, folds)
        out.append({"question": question, "main": question in main, "unit": c["unit"], "n": c["n"],
                    "difference": c["diff"], "CI low": c["low"], "CI high": c["high"], "p": c["p"]})
    extra = [r for r in out if not r["main"] and r["p"] is not None]
    for r in out:
        r["p (Holm)"] = None
    for r, p in zip(extra, holm([r["p"] for r in extra])):
        r["p (Holm)"] = p
    for r in out:
        p = r["p"] if r["main"] else r["p (Holm)"]
        need = "seeds with every fold" if r["unit"].startswith("pretraining") else "cells"
        r["verdict"] = (f"needs >= 2 {need} of both" if p is None else "no difference shown" if p >= 1 - level else
                        "differs (95 % CI excludes 0)" if r["main"] else "differs (Holm's p < 0.05)")
    return pd.DataFrame(out).set_index("question")


def transfer_points(cells: dict):
    """One row per (run, seed, fold) cell: photos right, photos tested, accuracy %."""
    import pandas as pd
    rows = [{"run": label, "seed": s, "fold": f, "correct": c, "tested": n, "acc %": 100 * c / n}
            for label, got in cells.items() for (s, f), (c, n) in sorted(got.items())]
    return pd.DataFrame(rows, columns=["run", "seed", "fold", "correct", "tested", "acc %"])


def transfer_means(cells: dict, level: float = 0.95, folds: int | None = None):
    """Per run: mean accuracy (%) with a 95 % interval in the unit of :func:`transfer_contrasts` (corrected
    over the cells, or over complete seeds for Table I's weights); no interval below 2 units."""
    import pandas as pd
    rows = []
    for label in cells:
        c = _transfer_ci(cells, label, None, level, folds)
        rows.append({"run": label, "cells": len(cells[label]), "unit": c["unit"], "n": c["n"], "mean %": c["diff"],
                     "CI low": c["low"], "CI high": c["high"]})
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


def latency_frame(grid: dict):
    """One row per (model, threads, batch, clock) of a latency grid: median and quartiles, ms per image."""
    import pandas as pd
    rows = [{"model": c["model"], "threads": c["threads"], "batch": c["batch_size"], "clock": clock,
             "median": c[clock]["median"], "q1": c[clock]["q1"], "q3": c[clock]["q3"]}
            for c in grid["cells"] for clock in ("wall", "cpu")]
    return pd.DataFrame(rows)
