"""course_lib.study.analysis: the study's tables from records (synthetic ones here)."""
import pytest
import torch

from course_lib.engine.data import load_data
from course_lib.engine.train import encode_predictions
from course_lib.study import analysis


def _rows():
    base = {0: 80.0, 1: 82.0, 2: 78.0}                   # a seed effect of +-2 points
    shift = {"ResNet-14-0s1x64d": 0.0, "ResNeSt-14-0s1x64d": 0.3, "ResNeSt-14-2s1x64d": 1.0,
             "ResNeSt-14-1s1x64d": 0.3, "ResNet-14-1s1x64d": 0.1, "ResNeSt-14-1s2x64d": 0.2,
             "ResNeSt-14-1s1x40d": -0.4}
    noise = {0: 0.05, 1: -0.05, 2: 0.0}
    return [{"label": lab, "seed": s, "acc": base[s] + d + noise[s] * (i + 1), "record": {}}
            for i, (lab, d) in enumerate(shift.items()) for s in base]


def test_variants_table_has_mean_sd_and_the_report():
    t = analysis.variants(_rows())
    assert t.loc["ResNeSt-14-2s1x64d", "seeds"] == 3 and t.loc["ResNeSt-14-2s1x64d", "report %"] == 62.64
    assert t.loc["ResNet-14-0s1x64d", "mean %"] == 80.0 and t.loc["ResNet-14-0s1x64d", "SD"] == 1.98  # 80.05, 81.95, 78


def test_contrasts_pair_seeds_declare_three_and_holm_the_rest():
    c = analysis.contrasts(_rows())
    assert list(c.index[:3]) == [name for name, _, _ in analysis.MAIN_CONTRASTS]
    whole = c.loc["the whole ResNeSt change"]
    assert whole["difference"] == pytest.approx(1.0 + 0.0, abs=0.2) and whole["CI low"] > 0
    assert whole["verdict"].startswith("differs")              # paired: the seed effect cancels
    assert whole["report gap"] == 4.56 and whole["report gap in CI"] in (False,)   # 62.64 - 58.08: far above ~1
    assert c["main"].sum() == 3 and c[c.main]["p (Holm)"].isna().all()
    others = c[~c.main]
    assert len(others) == 5 and (others["p (Holm)"] >= others["p"]).all()
    # the secondary pairs' verdict follows Holm's p, not their unadjusted interval
    assert list(others.verdict) == ["differs (Holm's p < 0.05)" if p < 0.05 else "no difference shown"
                                    for p in others["p (Holm)"]]
    assert "differs (Holm's p < 0.05)" in set(others.verdict)
    only_main = analysis.contrasts(_rows(), pairs=())               # chapter 6's reading without one seed
    assert list(only_main.index) == list(c.index[:3]) and only_main["p (Holm)"].isna().all()


def test_contrasts_say_when_seeds_are_missing():
    rows = [r for r in _rows() if r["seed"] == 0]
    c = analysis.contrasts(rows)
    assert (c["verdict"] == "needs >= 2 seeds of both").all() and c["report gap in CI"].isna().all()


# ---- the report's readings of Table I
def test_pair_verdicts_read_a_sign_claim_and_an_equivalence_claim():
    v = analysis.pair_verdict
    assert v(+1, 0.5, 2.0, 0.0, 1.0) == "holds" and v(-1, 0.5, 2.0, 0.0, 1.0) == "reversed"
    assert v(+1, -0.5, 2.0, 0.0, 1.0) == "not shown" and v(+1, None, None, 0.0, 1.0) == "needs 2+ seeds"
    assert v(+1, 0.5, 2.0, 0.0, 1.0, shown=False) == "not shown"          # Holm's p says no
    assert v(0, -0.8, 0.9, 0.0, 1.0) == "holds" and v(0, 0.2, 0.8, 0.0, 1.0) == "holds"  # small, shown
    assert v(0, -0.5, 1.5, 0.0, 1.0) == "not settled" and v(0, 1.2, 3.0, 0.0, 1.0) == "contradicted"
    assert v(+1, 1.05, 1.2, 1.0, 0.1) == "holds" and v(0, 0.95, 1.08, 1.0, 0.1) == "holds"   # ratios


def test_claims_judge_each_reading_by_its_weakest_pair_and_check_the_reports_own_table():
    t = analysis.claims(_rows())
    readings = [r for r, _, _ in analysis.TABLE1_CLAIMS]
    assert list(dict.fromkeys(t.index.get_level_values(0))) == readings
    every = t.xs(readings[0], level=0)
    assert len(every) == 5 and every.index.get_level_values(0).unique().tolist() == ["not shown"]
    assert set(every["this pair"]) == {"holds", "not shown"}            # 1s1x40d is 0.4 below ResNet here
    ok = t["report's table agrees"].droplevel([1, 2])
    assert not ok["the radix block slightly lowers ResNet's accuracy"]   # its text: lower; its table: +0.60
    assert ok.drop("the radix block slightly lowers ResNet's accuracy").all()
    width = t.xs("width 40 instead of 64 changes accuracy unnoticeably", level=0)
    assert width["difference"].iloc[0] == pytest.approx(-0.7, abs=0.2)
    # -0.55, -0.85, -0.70 by seed: the 95 % interval reaches just past -1 point, so it is not settled
    assert width["CI low"].iloc[0] < -1 < width["CI high"].iloc[0] and width["this pair"].iloc[0] == "not settled"
    one_seed = analysis.claims([r for r in _rows() if r["seed"] == 0])
    assert set(one_seed.index.get_level_values(1)) == {"needs 2+ seeds"}


def test_compact_claims_read_on_a_page():
    t = analysis.compact(analysis.claims(_rows()))
    assert "ResNeSt 0s1x64d - ResNet 0s1x64d" in t.index.get_level_values("pair")
    assert {"95 % CI", "report agrees", "this pair", "diff."} <= set(t.columns) and "CI low" not in t.columns
    full = analysis.claims(_rows())
    first = full.iloc[0]
    assert t.iloc[0]["95 % CI"] == f"[{first['CI low']:.2f}, {first['CI high']:.2f}]"
    one_seed = analysis.compact(analysis.claims([r for r in _rows() if r["seed"] == 0]))
    assert (one_seed["95 % CI"] == "").all() and "this pair" not in one_seed   # all "needs 2+ seeds": said once


def _grid(ms: dict, repeats: int = 12):
    cells = [{"model": m, "threads": 1, "batch_size": 64,
              "wall": {"ms_per_batch": [t * (1 + 0.2 * (i % 3)) for i in range(repeats)]}} for m, t in ms.items()]
    return {"cells": cells}


def test_cost_claims_pair_the_repeats_and_compare_the_arithmetic():
    from course_lib.study.report import TABLE1
    ms = dict.fromkeys(TABLE1, 100.0) | {"ResNeSt-14-1s1x40d": 50.0, "ResNeSt-14-1s1x64d": 130.0}
    t = analysis.cost_claims(_grid(ms))
    width = t.xs("width 40 instead of 64 lowers throughput slightly", level=0)
    # every repeat slows both networks alike, so the paired ratio is exactly 130 / 50
    assert width["throughput ratio"].iloc[0] == pytest.approx(2.6) and width["CI low"].iloc[0] == pytest.approx(2.6)
    assert width.index[0][0] == "reversed" and width["if time followed MACs"].iloc[0] > 1.5
    assert width["report ratio"].iloc[0] == pytest.approx(6967 / 7797)
    same = t.xs("ResNet and ResNeSt with the same block are comparable", level=0)
    assert list(same["this pair"]) == ["holds", "contradicted"]         # 1.0, then 100 / 130, beyond 0.9
    with pytest.raises(ValueError, match="latency grid has no 64-image.*ResNeSt-14-1s1x40d"):
        analysis.cost_claims(_grid({k: v for k, v in ms.items() if k != "ResNeSt-14-1s1x40d"}))


def test_clipping_separates_the_warm_up_from_spikes_after_it():
    def row(label, clipped, norms):
        hist = [{"epoch": i + 1, "clipped_steps": c, "grad_norm_max": n} for i, (c, n) in enumerate(zip(clipped, norms))]
        recipe = {"name": "study", "grad_clip": 5.0, "batch_size": 256, "warmup_steps": 352}
        return {"label": label, "seed": 0, "acc": 80.0, "record": {"config": {"dataset": "cifar10", "images": None,
                                                                              "recipe": recipe}, "history": hist}}
    smooth = row("A", [54, 1, 0, 0], [10.7, 5.7, 1.4, 1.2])
    spike = row("B", [40, 0, 0, 1], [9.0, 4.0, 1.1, 45.9])
    unclipped = {"label": "C", "seed": 0, "acc": 80.0,
                 "record": {"config": {"dataset": "cifar10", "images": None,
                                       "recipe": {"name": "study", "grad_clip": None, "batch_size": 256}},
                            "history": [{"epoch": 1}]}}
    t = analysis.clipping([smooth, spike, unclipped])
    assert list(t.index) == ["A, seed 0", "B, seed 0"] and set(t["warm-up epochs"]) == {2}   # 352 steps / 176
    assert t.loc["A, seed 0", "clipped in warm-up"] == 55 and t.loc["A, seed 0", "clipped after"] == 0
    assert t.loc["B, seed 0", "clipped after"] == 1 and t.loc["B, seed 0", "largest norm after"] == 45.9
    assert analysis.clipping([unclipped]).empty
    table2 = row("D", [30, 2, 1, 0, 0, 1, 0, 0], [9.0] * 8)            # 20,000 images: 79 steps, 352 -> 5 epochs
    table2["record"]["config"]["images"] = 20_000
    t = analysis.clipping([table2])
    assert t.loc["D, seed 0", "warm-up epochs"] == 5 and t.loc["D, seed 0", "clipped after"] == 1


def test_clip_effect_pairs_variant_and_seed_and_sets_aside_the_run_that_spiked():
    config = {"dataset": "cifar10", "images": None, "recipe": {"name": "study", "batch_size": 256, "warmup_steps": 352}}

    def row(label, seed, acc, losses):
        return {"label": label, "seed": seed, "acc": acc, "record": {
            "config": config, "history": [{"epoch": i + 1, "train_loss": x} for i, x in enumerate(losses)]}}
    smooth = [2.1, 1.8, 1.5, 1.4, 1.3]
    unclipped = [row("A", 0, 80.0, smooth), row("A", 1, 79.0, smooth), row("B", 0, 81.0, smooth),
                 row("B", 1, 66.5, [2.1, 1.9, 1.6, 1.5, 1.8]), row("C", 0, 70.0, smooth)]
    clipped = [row("A", 0, 79.0, smooth), row("A", 1, 78.2, smooth), row("B", 0, 79.9, smooth),
               row("B", 1, 79.5, smooth)]                                    # C not yet trained with the clip
    assert analysis.loss_rose(unclipped[3]["record"]) and not analysis.loss_rose(unclipped[0]["record"])
    assert not analysis.loss_rose(row("D", 0, 0, [2.3, 2.4, 2.0])["record"])   # a rise inside the warm-up
    assert analysis.loss_rose(row("D", 0, 0, [2.3, 2.4, 2.0])["record"], after=0)
    assert not analysis.loss_rose(row("E", 0, 0, [2.3, 2.0, 1.8])["record"], after=0)   # smooth, from epoch 1
    table, smooth_ci, all_ci = analysis.clip_effect(clipped, unclipped)
    assert len(table) == 4 and table.loc[("B", 1), "unclipped loss rose"]
    assert smooth_ci["n"] == 3 and smooth_ci["diff"] == pytest.approx((-1.0 - 0.8 - 1.1) / 3)
    assert all_ci["n"] == 4 and all_ci["diff"] > 0                          # the rescued run outweighs the rest


def test_precision_twins_pair_variant_and_seed():
    row = lambda label, seed, acc: {"label": label, "seed": seed, "acc": acc, "record": {}}  # noqa: E731
    bf16 = [row("A", 0, 80.0), row("B", 0, 82.0), row("C", 0, 79.0), row("A", 1, 81.0)]
    fp32 = [row("A", 0, 80.5), row("B", 0, 81.0), row("C", 0, 79.9), row("D", 0, 70.0)]   # D: no bf16 twin yet
    table, ci = analysis.precision_twins(bf16, fp32)
    assert list(table.index) == [("A", 0), ("B", 0), ("C", 0)]
    assert table.loc[("B", 0), "bf16 - fp32"] == pytest.approx(1.0)
    assert ci["n"] == 3 and ci["diff"] == pytest.approx((-0.5 + 1.0 - 0.9) / 3) and ci["low"] < ci["diff"] < ci["high"]
    assert analysis.precision_twins(bf16, [])[1]["n"] == 0
    stand_in = [{**row("A", 0, 80.5), "precision": "fp32"}]         # a study run trained in fp32: not a pair
    assert analysis.precision_twins(stand_in, fp32)[0].empty


def test_one_precision_seeds_keeps_the_seeds_trained_in_one_precision():
    rows = [{"label": v, "seed": k, "acc": 80.0, "precision": p} for v, k, p in
            [("A", 0, "bf16"), ("B", 0, "bf16"), ("A", 1, "bf16"), ("B", 1, "fp32"), ("A", 2, "fp32"), ("B", 2, "fp32")]]
    assert [(r["label"], r["seed"]) for r in analysis.one_precision_seeds(rows)] == [("A", 0), ("B", 0), ("A", 2), ("B", 2)]


# ---- Table II (chapter 7)
def _table2_groups(accs: dict, table1: dict | None = None) -> dict:
    """What runs() returns per chapter: (spec, record) for {(label, seed): test accuracy, 'running' or None}."""
    from types import SimpleNamespace

    def rec(acc):
        if acc is None:
            return None
        if acc == "running":
            return {"status": "running", "test_acc": None}
        return {"status": "finished", "test_acc": acc, "params": 8_583_178}
    return {ch: [(SimpleNamespace(label=lab, seed=seed), rec(a)) for (lab, seed), a in got.items()]
            for ch, got in (("07", accs), ("06", table1 or {}))}


def _patch_runs(monkeypatch, groups):
    monkeypatch.setattr(analysis, "runs", lambda chapter, profile, group, directory=None: groups[chapter])


def test_table2_frame_counts_seeds_and_keeps_unfinished_networks(monkeypatch):
    accs = {("ResNeSt-14", 0): 0.80, ("ResNet-18", 0): 0.75, ("EfficientNet-b2", 0): None,
            ("ResNeSt-14", 1): 0.78, ("ResNet-18", 1): "running"}
    _patch_runs(monkeypatch, _table2_groups(accs))
    t = analysis.table2_frame("cpu", params={"EfficientNet-b2": 7_715_084, "ResNeSt-14": 1})
    assert list(t.index) == ["ResNeSt-14", "ResNet-18", "EfficientNet-b2"]
    assert list(t.seeds) == [2, 1, 0] and list(t.planned) == [2, 2, 1]
    assert t.loc["ResNeSt-14", "mean %"] == pytest.approx(79.0)
    assert t.loc["ResNeSt-14", "SD"] == pytest.approx(2 ** 0.5)           # 80 and 78
    assert t.loc["ResNet-18", "mean %"] == pytest.approx(75.0) and t.loc["ResNet-18", "SD"] != t.loc["ResNet-18", "SD"]
    assert t.loc["ResNet-18", "seed 1 %"] != t.loc["ResNet-18", "seed 1 %"]  # running: not counted
    assert t.loc["ResNeSt-14", "params (M)"] == 8.58                      # the record's count wins
    assert t.loc["EfficientNet-b2", "params (M)"] == 7.72 and t.loc["EfficientNet-b2", "report %"] == 43.23


def test_table2_frame_and_setting_follow_the_protocol(tmp_path):
    t = analysis.table2_frame("cpu", tmp_path)                            # an empty folder: nothing finished
    from course_lib.study.report import TABLE2
    assert list(t.index) == list(TABLE2) and t.planned.sum() == 14 and (t.seeds == 0).all()
    text = analysis.table2_setting("cpu", tmp_path)
    assert "CIFAR-10, 20,000 training images, 8 epochs, 'study' recipe (peak lr 0.2), bf16" in text
    assert "seed 0: all 10 networks; seed 1: ResNeSt-14, ResNeSt-50, ResNet-18, EfficientNet-b0" in text
    assert text.endswith("\ntraining hardware: no run finished yet")
    table1 = analysis.study_setting("06", "cpu", tmp_path)
    assert "CIFAR-10, 45,000 training images, 10 epochs, 'study' recipe (peak lr 0.2), bf16" in table1
    assert "; seeds 0-2: all 7 networks; seeds 3-5: ResNet-14-0s1x64d, ResNeSt-14-0s1x64d, ResNeSt-14-2s1x64d\n" in table1


def test_pooled_sd_weights_each_network_by_its_degrees_of_freedom():
    sd, df = analysis.pooled_sd([[80, 78], [70, 71, 72], [60]])           # variances 2 (1 df) and 1 (2 df)
    assert df == 3 and sd == pytest.approx((4 / 3) ** 0.5)
    assert analysis.pooled_sd([[60], []]) == (None, 0)


def test_seed_spread_pools_the_variants_and_judges_the_limit_by_its_interval():
    def rows(table):
        return [{"label": lab, "seed": k, "acc": a} for lab, accs in table.items() for k, a in enumerate(accs)]
    assert analysis.seed_spread(rows({"A": [80.0], "B": [79.0]}))["verdict"] == "needs a variant with 2+ seeds"
    tight = analysis.seed_spread(rows({v: [80.0 + d for d in (-0.3, 0.0, 0.3)] for v in "ABCDEFG"}))
    assert tight["df"] == 14 and tight["sd"] == pytest.approx(0.3) and tight["high"] < 1
    assert tight["verdict"] == "at most 1 point"
    wide = analysis.seed_spread(rows({v: [80.0 + d for d in (-3.0, 0.0, 3.0)] for v in "ABCDEFG"}))
    assert wide["low"] > 1 and wide["verdict"] == "above 1 point: find out why"
    few = analysis.seed_spread(rows({"A": [80.0, 81.2]}))       # SD 0.85 with 1 df: the interval is huge
    assert few["low"] < 1 < few["high"] and few["verdict"] == "below 1 point, but the interval includes it"


def test_tie_rule_tells_a_two_sd_tie_from_a_clear_gap(monkeypatch):
    assert analysis.tie_verdict(1.9, 1.0, "A", "B") == "tie (gap < 2 SD)"
    assert analysis.tie_verdict(2.1, 1.0, "A", "B") == "A ahead"
    assert analysis.tie_verdict(-2.5, 1.0, "A", "B") == "B ahead"
    assert analysis.tie_verdict(5.0, None) == "no seed SD yet"
    assert analysis.tie_verdict(None, 1.0) == "not both finished"
    accs = {("ResNeSt-14", 0): 0.80, ("ResNet-18", 0): 0.75, ("ResNeSt-14", 1): 0.78}
    _patch_runs(monkeypatch, _table2_groups(accs))
    t = analysis.table2_frame("cpu")
    q = [("R14 - R18", "ResNeSt-14", "ResNet-18"), ("R14 - b0", "ResNeSt-14", "EfficientNet-b0")]
    g = analysis.table2_gaps(t, 2.4, q)
    assert g.loc["R14 - R18", "seeds"] == 1 and g.loc["R14 - R18", "gap"] == pytest.approx(5.0)  # seed 0 only
    assert g.loc["R14 - R18", "verdict"] == "ResNeSt-14 ahead"            # 5 >= 2 x 2.4
    assert analysis.table2_gaps(t, 2.6, q).loc["R14 - R18", "verdict"] == "tie (gap < 2 SD)"  # 5 < 2 x 2.6
    assert g.loc["R14 - b0", "verdict"] == "not both finished"
    assert list(analysis.table2_gaps(t, 2.4).index) == [name for name, _, _ in analysis.TABLE2_QUESTIONS]


def test_seed_sds_pool_each_table_and_the_rule_takes_the_larger(monkeypatch):
    accs = {("ResNeSt-14", 0): 0.80, ("ResNeSt-14", 1): 0.78, ("ResNet-18", 0): 0.75}
    table1 = {("A", s): a for s, a in enumerate((0.80, 0.81, 0.82))}
    table1 |= {("B", s): a for s, a in enumerate((0.7, 0.7, 0.7))}
    _patch_runs(monkeypatch, _table2_groups(accs, table1))
    sds = analysis.seed_sds("cpu")
    assert sds.loc["Table II (chapter 7)", "SD"] == pytest.approx(2 ** 0.5)
    assert sds.loc["Table II (chapter 7)", "networks with 2+ seeds"] == 1
    assert sds.loc["Table I (chapter 6)", "df"] == 4
    assert sds.loc["Table I (chapter 6)", "SD"] == pytest.approx((2 / 4) ** 0.5)  # (1 + 0) x 2 df over 4 df
    assert analysis.tie_sd(sds) == pytest.approx(2 ** 0.5)
    _patch_runs(monkeypatch, _table2_groups({("ResNeSt-14", 0): 0.8}))
    assert analysis.tie_sd(analysis.seed_sds("cpu")) is None


def test_mcnemar_by_seed_reads_the_stored_predictions(real_data_root, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(real_data_root))
    cfg = dict(dataset="cifar10", images=100, val_size=100, split_seed=0, test_images=100)
    y = load_data(**cfg)["test"].labels
    wrong = (y + 1) % 10
    a = y.clone()
    a[:10] = wrong[:10]                                 # a misses 10 images
    b = y.clone()
    b[:30] = wrong[:30]                                 # b misses 30, including a's 10
    rows = [{"label": lab, "seed": 0, "acc": 0, "record": {"key": lab, "config": cfg,
                                                          "test_predictions": encode_predictions(p, y)}}
            for lab, p in (("A", a), ("B", b))]
    t = analysis.mcnemar_by_seed(rows, "A", "B")
    assert t.loc[0, "only A right"] == 20 and t.loc[0, "only B right"] == 0 and t.loc[0, "p"] < 1e-4
    rows[1]["record"]["test_predictions"]["labels_sha256"] = "0" * 64   # another test set: not compared
    assert analysis.mcnemar_by_seed(rows, "A", "B").empty


def test_transfer_tables_pair_cells_by_seed_and_fold():
    from course_lib.study import analysis
    cells = {"A (fine-tuned)": {(0, f): (380 + f, 400) for f in range(5)} | {(1, f): (370, 400) for f in range(5)},
             "B (fine-tuned)": {(0, f): (360, 400) for f in range(5)} | {(1, 0): (350, 400)}}
    table = analysis.transfer_table(cells)
    assert table.loc["A (fine-tuned)", "seed 0 %"] == round(100 * (5 * 380 + 10) / 2000, 2)
    assert table.loc["B (fine-tuned)", "cells (seed, fold)"] == 6
    c = analysis.transfer_contrasts(cells, [("A vs B", "A (fine-tuned)", "B (fine-tuned)")])
    assert c.loc["A vs B", "n"] == 6                             # only the cells both have
    diffs = [100 * (380 + f - 360) / 400 for f in range(5)] + [100 * (370 - 350) / 400]
    assert abs(c.loc["A vs B", "difference"] - sum(diffs) / 6) < 1e-9
    assert c.loc["A vs B", "CI low"] < c.loc["A vs B", "difference"] < c.loc["A vs B", "CI high"]
    # Nadeau and Bengio: the variance of the mean is (1/J + 1/4) s^2 for 5 folds, not s^2 / J
    from scipy import stats as sp
    mean = sum(diffs) / 6
    s2 = sum((d - mean) ** 2 for d in diffs) / 5
    half = sp.t.ppf(0.975, 5) * ((1 / 6 + 1 / 4) * s2) ** 0.5
    assert c.loc["A vs B", "CI high"] == pytest.approx(mean + half)
    assert c.loc["A vs B", "unit"] == "(seed, fold) cells, corrected"


def _transfer_cells():
    """Every run of TRANSFER_CONTRASTS on 2 seeds x 5 folds of 400 photos: a large (seed, fold) effect that
    every run shares, a fixed shift per run (photos) and a little noise per run and cell."""
    shift = {"ResNeSt-50 (fine-tuned)": 8, "ResNet-50 (fine-tuned)": 0, "ResNeSt-50 (from scratch)": -40,
             "ResNet-50 (from scratch)": -40, "ResNeSt-50 (linear probe)": -12, "ResNet-50 (linear probe)": -1,
             "ResNeSt-14-2s1x64d (Table I weights)": 0, "ResNet-14-0s1x64d (Table I weights)": 0}
    cells = {}
    for i, (label, d) in enumerate(shift.items()):
        for seed in (0, 1):
            for fold in range(5):
                noise = ((3 * i + 7 * fold + 5 * seed) % 5) - 2              # -2..2 photos
                cells.setdefault(label, {})[(seed, fold)] = (280 + 12 * fold + 9 * seed + d + noise, 400)
    return cells


def test_transfer_contrasts_declare_two_main_and_holm_the_rest():
    from course_lib.study import stats
    cells = _transfer_cells()
    c = analysis.transfer_contrasts(cells)
    assert list(c.index) == [q for q, _, _ in analysis.TRANSFER_CONTRASTS]
    assert list(c.index[c.main]) == list(analysis.TRANSFER_MAIN) == [analysis.TRANSFER_CONTRASTS[0][0],
                                                                    analysis.TRANSFER_CONTRASTS[-1][0]]
    assert c[c.main]["p (Holm)"].isna().all()
    table1 = c.loc[analysis.TRANSFER_CONTRASTS[-1][0]]       # one pretraining per seed: the seed is the unit
    assert table1["unit"] == "pretraining seeds (folds pooled)" and table1["n"] == 2
    assert (c.drop(analysis.TRANSFER_CONTRASTS[-1][0]).n == 10).all()
    others = c[~c.main]
    assert list(others["p (Holm)"]) == pytest.approx(stats.holm(list(others.p)))
    assert (others["p (Holm)"] >= others.p).all()
    main = c.loc[analysis.TRANSFER_CONTRASTS[0][0]]
    assert main["difference"] == pytest.approx(2.0, abs=0.5) and main["CI low"] > 0
    assert main["verdict"] == "differs (95 % CI excludes 0)"
    # paired by (seed, fold) the shared effect cancels; the same cells unpaired show nothing
    a, b = (list(v.values()) for v in (cells["ResNeSt-50 (fine-tuned)"], cells["ResNet-50 (fine-tuned)"]))
    assert stats.welch([100 * x / n for x, n in a], [100 * x / n for x, n in b])["p"] > 0.05
    assert c.loc[analysis.TRANSFER_CONTRASTS[-1][0], "verdict"] == "no difference shown"
    assert c.loc["pretraining pays: ResNeSt-50", "verdict"] == "differs (Holm's p < 0.05)"
    assert c.loc["fine-tuning against a linear probe: ResNet-50", "verdict"] == "no difference shown"


def test_transfer_contrasts_say_when_cells_are_missing():
    cells = {label: {(0, 0): got[(0, 0)]} for label, got in _transfer_cells().items()}
    c = analysis.transfer_contrasts(cells)
    table1 = analysis.TRANSFER_CONTRASTS[-1][0]
    assert (c.drop(table1)["verdict"] == "needs >= 2 cells of both").all() and c["p (Holm)"].isna().all()
    assert c.loc[table1, "verdict"] == "needs >= 2 seeds with every fold of both" and c.loc[table1, "n"] == 0
    assert (analysis.transfer_contrasts({})["n"] == 0).all()


def test_transfer_table1_question_pairs_seeds_with_every_fold_pooled():
    """Three pretraining runs per network: the contrast has 2 degrees of freedom, whatever the cells."""
    from scipy import stats as sp
    a, b = "ResNeSt-14-2s1x64d (Table I weights)", "ResNet-14-0s1x64d (Table I weights)"
    cells = {a: {(s, f): (300 + 10 * s + f, 400) for s in range(3) for f in range(5)},
             b: {(s, f): (300 + 2 * s * s, 400) for s in range(3) for f in range(5)}}
    cells[b][(2, 4)] = (1, 399)
    del cells[a][(2, 4)]                                        # seed 2 lacks a fold in one arm: not counted
    c = analysis.transfer_contrasts(cells, [("q", a, b)], main=("q",)).loc["q"]
    pooled = lambda arm, s: 100 * sum(cells[arm][(s, f)][0] for f in range(5)) / 2000   # noqa: E731
    d = [pooled(a, s) - pooled(b, s) for s in (0, 1)]
    assert c["n"] == 2 and c["difference"] == pytest.approx(sum(d) / 2)
    half = sp.t.ppf(0.975, 1) * abs(d[0] - d[1]) / 2 ** 0.5 / 2 ** 0.5
    assert c["CI high"] == pytest.approx(sum(d) / 2 + half)
    m = analysis.transfer_means(cells)
    assert m.loc[a, "n"] == 2 and m.loc[a, "cells"] == 14 and m.loc[a, "unit"].startswith("pretraining seeds")


def test_transfer_points_and_means():
    cells = {"A": {(0, 0): (300, 400), (0, 1): (320, 400), (1, 0): (310, 400)}, "B": {(0, 0): (200, 400)}}
    pts = analysis.transfer_points(cells)
    assert len(pts) == 4 and list(pts[pts.run == "A"]["acc %"]) == [75.0, 80.0, 77.5]
    assert list(pts[pts.run == "A"].fold) == [0, 1, 0] and list(pts[pts.run == "A"].seed) == [0, 0, 1]
    m = analysis.transfer_means(cells)
    half = 4.302653 * ((1 / 3 + 1 / 4) * 2.5 ** 2) ** 0.5           # t(0.975, 2) x corrected SE, 5 folds
    assert m.loc["A", "mean %"] == pytest.approx(77.5)
    assert m.loc["A", "CI low"] == pytest.approx(77.5 - half, abs=1e-4)
    assert m.loc["A", "CI high"] == pytest.approx(77.5 + half, abs=1e-4)
    assert m.loc["B", "n"] == 1 and m.loc[["B"], ["CI low", "CI high"]].isna().all(axis=None)
    assert analysis.transfer_points({}).empty and analysis.transfer_means({}).empty


def test_transfer_cells_count_finished_runs_with_predictions(monkeypatch):
    from types import SimpleNamespace
    spec = lambda label, seed, fold: SimpleNamespace(label=label, seed=seed, fold=fold)  # noqa: E731
    done = {"status": "finished", "test_acc": 0.7525, "test_predictions": {"n": 400}}
    groups = {"transfer": [(spec("A", 0, 0), done), (spec("A", 0, 1), {**done, "status": "running"}),
                           (spec("A", 1, 0), {**done, "test_predictions": None}), (spec("B", 0, 0), None)],
              "transfer-table1": [(spec("C", 2, 4), {**done, "test_acc": 0.5, "test_predictions": {"n": 399}})]}
    monkeypatch.setattr(analysis, "runs", lambda chapter, profile, group, directory=None: groups[group])
    assert analysis.transfer_cells("cpu") == {"A": {(0, 0): (301, 400)}, "C": {(2, 4): (200, 399)}}


def test_study_costs_count_image_passes_weighted_by_inference_time():
    from course_lib.study import analysis, report
    flat = {m: 2.0 for m in report.TABLE1 + report.TABLE2}           # every network as slow as ResNeSt-14
    cost = analysis.study_costs("cpu", flat)
    assert list(cost.values) == [round(14 * 20_000 * 8 / 1e6, 1), round(30 * 45_000 * 10 / 1e6, 1),
                                 round(10 * 3 * 45_000 * 10 / 1e6, 1)]
    slow = dict(flat, **{"ResNeSt-101": 8.0})                        # one network 4x slower
    assert analysis.study_costs("cpu", slow).iloc[0] == round((13 + 4) * 20_000 * 8 / 1e6, 1)


def test_float32_rows_take_the_seed0_twins_beside_the_float32_runs():
    rows = [{"label": "A", "seed": 0, "acc": 80.0, "precision": "bf16"}, {"label": "B", "seed": 0, "acc": 81.0, "precision": "bf16"},
            {"label": "A", "seed": 1, "acc": 79.0, "precision": "fp32"}, {"label": "B", "seed": 1, "acc": 80.5, "precision": "fp32"}]
    twins = [{"label": "A", "seed": 0, "acc": 80.5, "precision": "fp32"}, {"label": "C", "seed": 0, "acc": 82.0, "precision": "fp32"},
             {"label": "A", "seed": 1, "acc": 1.0, "precision": "fp32"}]          # a seed-1 run of its own wins
    out = analysis.float32_rows(rows, twins)
    assert sorted((r["label"], r["seed"], r["acc"]) for r in out) == [("A", 0, 80.5), ("A", 1, 79.0), ("B", 1, 80.5),
                                                                      ("C", 0, 82.0)]
    assert all(r["precision"] == "fp32" for r in out) and analysis.float32_rows([], []) == []
