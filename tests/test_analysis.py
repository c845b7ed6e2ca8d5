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
    assert c["main"].sum() == 3 and c[c.main]["p (Holm)"].isna().all()
    others = c[~c.main]
    assert len(others) == 5 and (others["p (Holm)"] >= others["p"]).all()


def test_contrasts_say_when_seeds_are_missing():
    rows = [r for r in _rows() if r["seed"] == 0]
    c = analysis.contrasts(rows)
    assert (c["verdict"] == "needs >= 2 seeds of both").all()


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
    assert c.loc["A vs B", "cells"] == 6                         # only the cells both have
    diffs = [100 * (380 + f - 360) / 400 for f in range(5)] + [100 * (370 - 350) / 400]
    assert abs(c.loc["A vs B", "difference"] - sum(diffs) / 6) < 1e-9
    assert c.loc["A vs B", "CI low"] < c.loc["A vs B", "difference"] < c.loc["A vs B", "CI high"]
