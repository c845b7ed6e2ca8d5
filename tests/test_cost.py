"""course_lib.study.cost: images and multiply-adds per run, and hours at measured rates."""
import pytest

from course_lib.study import cost
from course_lib.study.specs import Spec, all_specs


def _spec(**kw):
    base = dict(chapter="06", group="study", label="x", model="ResNeSt-14-2s1x64d", recipe="study")
    return Spec(**{**base, **kw})


def test_images_follow_the_data_set_and_its_split():
    assert cost.images(_spec(), "cpu") == (45_000, 5_000 * 10 + 10_000)         # 10 epochs of validation, 1 test
    assert cost.images(_spec(images=10_000, test_images=2_000), "cpu") == (10_000, 50_000 + 2_000)
    fold = _spec(dataset="hotdog", folds=5, fold=0, recipe="d2l-finetune")
    assert cost.images(fold, "cpu") == (1_998 - 399, 399)                          # hotdog64 pooled, 1 of 5 tested
    assert cost.images(fold, "full") == (2_800 - 560, 560)                         # D2L's Hotdog with internet
    assert cost.images(_spec(dataset="hotdog", recipe="finetune"), "cpu") == (1_598, 400)


def test_a_frozen_body_trains_at_the_cost_of_a_forward_pass():
    tuned = _spec(dataset="hotdog", folds=5, fold=0, recipe="d2l-finetune")
    probe = _spec(dataset="hotdog", folds=5, fold=0, recipe="d2l-finetune", fields=(("freeze_body", True),))
    macs = cost.macs_per_image("ResNeSt-14-2s1x64d", 64, 2)
    train, evaluated = cost.images(tuned, "cpu")
    assert cost.run_cost(tuned, "cpu")["macs"] == macs * (3 * train * tuned.epochs + evaluated)
    assert cost.run_cost(probe, "cpu")["macs"] == macs * (train * probe.epochs + evaluated)


def test_hours_use_each_networks_rate_and_the_median_for_the_others():
    specs = [_spec(), _spec(model="ResNet-14-0s1x64d")]
    a, b = (cost.run_cost(s, "cpu")["macs"] for s in specs)
    rates = {"model": {"ResNeSt-14-2s1x64d": 1e11}, "fastest": {"ResNeSt-14-2s1x64d": 2e11}, "median": 5e10}
    assert cost.cpu_hours(specs, "cpu", rates) == pytest.approx((a / 1e11 + b / 5e10) / 3600)
    assert cost.cpu_hours(specs, "cpu", rates, "fastest") == pytest.approx((a / 2e11 + b / 5e10) / 3600)


def test_without_finished_records_there_is_no_rate(tmp_path):
    text = cost.report(profiles=("smoke",), directory=tmp_path)
    assert "no finished 'cpu' run to measure a rate from" in text and "an assumption, not a measurement" in text
    assert f"\nsmoke    {len(all_specs('smoke')):>5} " in text


def test_the_instructors_cost_table_counts_what_the_specs_hold():
    """book/instructors.md's runs, images and multiply-adds per profile, recomputed from the specs."""
    from pathlib import Path
    text = " ".join((Path(__file__).resolve().parents[1] / "book" / "instructors.md").read_text().split())
    for profile, unit in (("smoke", 12), ("cpu", 15), ("full", 15)):
        c = cost.profile_cost(profile)
        macs = f"{c['macs'] / 10 ** unit:.1f} x 10^{unit}"
        row = f"| `{profile}` | {c['runs']} | {c['cifar10 images']:,} | {c['hotdog images']:,} | {macs} |"
        assert row in text, row
