"""course_lib.study.stats: paired intervals, Holm's correction and McNemar's test against scipy's own."""
import math

import numpy as np
import pytest
from scipy import stats as sp

from course_lib.study.stats import corrected_paired_ci, holm, mcnemar, median_ci, paired_ci, sd_ci


def test_paired_interval_matches_a_one_sample_t_test_of_the_differences():
    a = {0: 80.1, 1: 81.0, 2: 79.6, 3: 80.9}
    b = {0: 79.0, 1: 80.2, 2: 79.1, 3: 79.5, 7: 10.0}     # seed 7 has no partner: left out
    out = paired_ci(a, b)
    d = [1.1, 0.8, 0.5, 1.4]
    ref = sp.ttest_1samp(d, 0.0)
    low, high = sp.t.interval(0.95, len(d) - 1, loc=sum(d) / 4, scale=sp.sem(d))
    assert out["n"] == 4 and out["diff"] == pytest.approx(0.95)
    assert (out["low"], out["high"]) == (pytest.approx(low), pytest.approx(high))
    assert out["p"] == pytest.approx(ref.pvalue) and out["t"] == pytest.approx(ref.statistic)


def test_pairing_removes_what_the_seeds_share():
    # a seed effect of +-3 points hides a steady +0.5 from an unpaired test, not from a paired one
    a = [83.5, 77.5, 80.5, 86.5]
    b = [83.0, 77.0, 80.0, 86.0 - 0.1]
    assert paired_ci(a, b)["p"] < 0.001
    assert sp.ttest_ind(a, b, equal_var=False).pvalue > 0.5


def test_paired_interval_edge_cases():
    assert paired_ci([1.0], [0.5])["low"] is None
    same = paired_ci([1.0, 2.0], [0.5, 1.5])
    assert same["se"] == 0 and same["p"] == 0.0 and math.isinf(same["t"])
    with pytest.raises(ValueError, match="same number"):
        paired_ci([1.0, 2.0], [1.0])


def test_holm_steps_down_and_never_decreases():
    p = [0.01, 0.04, 0.03, 0.5]
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_mcnemar_counts_disagreements_and_matches_the_binomial_test():
    a = [True] * 30 + [False] * 10 + [True] * 50
    b = [False] * 30 + [True] * 10 + [True] * 50
    out = mcnemar(a, b)
    assert (out["only_a"], out["only_b"]) == (30, 10)
    assert out["p"] == pytest.approx(sp.binomtest(10, 40, 0.5).pvalue)
    assert mcnemar([True, False], [True, False])["p"] == 1.0
    with pytest.raises(ValueError, match="same test images"):
        mcnemar([True], [True, False])


def test_sd_interval_is_the_chi_square_interval_and_covers_as_often_as_it_says():
    low, high = sd_ci(1.0, 2)                                   # df s^2 / sigma^2 ~ chi2(2)
    assert low == pytest.approx(math.sqrt(2 / 7.3778), rel=1e-4) and high == pytest.approx(math.sqrt(2 / 0.050636), rel=1e-4)
    rng = np.random.default_rng(0)
    draws = rng.normal(0.0, 1.0, size=(4000, 3))                # 4,000 studies of 3 seeds, true SD 1
    cover = [lo <= 1.0 <= hi for lo, hi in (sd_ci(s, 2) for s in draws.std(axis=1, ddof=1))]
    assert 0.93 < sum(cover) / len(cover) < 0.97
    with pytest.raises(ValueError, match="degree of freedom"):
        sd_ci(1.0, 0)


def test_corrected_interval_widens_the_paired_one_by_the_overlap_of_training_sets():
    a = {(s, f): 70 + s + 0.7 * f for s in range(2) for f in range(5)}
    b = {(s, f): 69 + 0.9 * s + ((3 * f) % 5) * 0.4 for s in range(2) for f in range(5)}
    plain, fixed = paired_ci(a, b), corrected_paired_ci(a, b, 0.0)
    assert fixed["diff"] == pytest.approx(plain["diff"]) and fixed["high"] == pytest.approx(plain["high"])
    five = corrected_paired_ci(a, b, 1 / 4)                     # 5 folds: n_test / n_train = 1/4
    assert five["se"] == pytest.approx(plain["se"] * math.sqrt((1 / 10 + 1 / 4) / (1 / 10)))
    assert five["p"] > plain["p"] and corrected_paired_ci({0: 1.0}, {0: 0.5}, 0.25)["low"] is None


def test_median_interval_takes_the_sign_test_order_statistics_and_covers():
    m = median_ci(range(1, 31))                       # n = 30: P(B <= 9) = 0.021, P(B <= 10) = 0.049
    assert (m["low"], m["high"], m["median"]) == (10, 21, 15.5) and m["coverage"] == pytest.approx(0.957, abs=1e-3)
    rng = np.random.default_rng(0)
    hits = [(lambda c: c["low"] <= 1.0 <= c["high"])(median_ci(rng.lognormal(0.0, 1.0, 15))) for _ in range(4000)]
    assert 0.95 <= np.mean(hits) <= 0.99               # the lognormal's median is 1; coverage 0.965 by design
    with pytest.raises(ValueError, match="needs more values"):
        median_ci([1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="finite"):
        median_ci([1, 2, 3, 4, 5, 6, float("nan")])
