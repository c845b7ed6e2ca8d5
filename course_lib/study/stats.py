"""Statistics of the studies: is a difference between two sets of seeds larger than their spread?

Every variant of a study sees the same batch order for a given seed, so two variants'
runs pair up seed by seed (seeds are blocks): ``paired_ci`` gives the mean paired
difference with a t interval over seeds. Main contrasts are declared before the results;
the others are corrected for multiplicity with ``holm``. ``mcnemar`` compares two runs
image by image on the same test set (from the predictions each record keeps).
"""
from __future__ import annotations

import math

import numpy as np


def welch(a, b) -> dict:
    """Welch's t-test of two samples (unequal variances): difference of means, t, degrees of freedom, p."""
    from scipy import stats
    a, b = np.asarray(a, float), np.asarray(b, float)
    t = stats.ttest_ind(a, b, equal_var=False)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if va + vb > 0 else float("nan")
    return {"diff": a.mean() - b.mean(), "t": float(t.statistic), "df": float(df), "p": float(t.pvalue)}


def pooled_std(a, b) -> float:
    """sqrt((s_a^2 + s_b^2) / 2), the sample variances (n - 1) of the two sets averaged."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)

def pooled_sd(samples) -> tuple:
    """(SD, degrees of freedom) pooled over the samples with two or more values; (None, 0) without any.

    SD = sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)): each network's spread around its own mean.
    """
    import math
    import statistics
    used = [list(v) for v in samples if len(v) > 1]
    df = sum(len(v) - 1 for v in used)
    if not df:
        return None, 0
    return math.sqrt(sum((len(v) - 1) * statistics.variance(v) for v in used) / df), df


def sd_ci(sd: float, df: int, level: float = 0.95) -> tuple:
    """Confidence interval of a standard deviation from its sample value and degrees of freedom.

    (df s^2 / sigma^2 is chi-square with df degrees of freedom, for normal errors.)
    """
    from scipy import stats
    if df < 1:
        raise ValueError(f"sd_ci needs at least 1 degree of freedom, got {df}")
    tail = (1 - level) / 2
    return (sd * math.sqrt(df / stats.chi2.ppf(1 - tail, df)), sd * math.sqrt(df / stats.chi2.ppf(tail, df)))


def paired_ci(a, b, level: float = 0.95) -> dict:
    """Mean paired difference a_i - b_i with its t confidence interval, t statistic and p-value.

    ``a`` and ``b`` map seed -> value (dicts), or are sequences in the same seed order.
    Only seeds present in both count.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        seeds = sorted(set(a) & set(b))
        a, b = [a[s] for s in seeds], [b[s] for s in seeds]
    if len(a) != len(b):
        raise ValueError(f"paired_ci needs the same number of values on both sides, got {len(a)} and {len(b)}")
    return _mean_ci([x - y for x, y in zip(a, b)], level)


def corrected_paired_ci(a, b, test_train: float, level: float = 0.95) -> dict:
    """Mean paired difference over cross-validation cells with Nadeau and Bengio's corrected t interval.

    The cells' training sets overlap, so their differences are correlated and s^2 / J understates the
    variance of the mean. The correction uses (1 / J + n_test / n_train) s^2 instead (J cells, J - 1 degrees
    of freedom; ``test_train`` = n_test / n_train, 1 / (k - 1) for k folds). ``a``/``b`` map cell -> value.
    """
    cells = sorted(set(a) & set(b))
    return _mean_ci([a[c] - b[c] for c in cells], level, test_train)


def _mean_ci(d: list, level: float, inflate: float = 0.0) -> dict:
    """Mean of the differences ``d`` with a t interval on n - 1 degrees of freedom, its variance taken as
    (1/n + inflate) s^2 (inflate 0: the usual s^2 / n)."""
    from scipy import stats
    n = len(d)
    if n < 2:
        return {"n": n, "diff": d[0] if d else None, "low": None, "high": None, "se": None, "t": None, "p": None}
    mean = sum(d) / n
    se = math.sqrt((1 / n + inflate) * sum((x - mean) ** 2 for x in d) / (n - 1))
    q = stats.t.ppf(0.5 + level / 2, n - 1)
    if se == 0:
        t, p = (math.inf if mean else 0.0), (0.0 if mean else 1.0)
    else:
        t = mean / se
        p = float(2 * stats.t.sf(abs(t), n - 1))
    return {"n": n, "diff": mean, "low": mean - q * se, "high": mean + q * se, "se": se, "t": t, "p": p}


def median_ci(x, level: float = 0.95) -> dict:
    """Median of ``x`` with a distribution-free CI: the order statistics x_(k), x_(n-k+1) that the sign
    test puts around it (coverage at least ``level`` for any continuous distribution)."""
    from scipy import stats
    x = sorted(float(v) for v in x)
    if not all(math.isfinite(v) for v in x):
        raise ValueError("median_ci needs finite values: a NaN or an infinity has no place in the order")
    n, tail = len(x), (1 - level) / 2
    k = max((j for j in range(1, n // 2 + 1) if stats.binom.cdf(j - 1, n, 0.5) <= tail), default=0)
    if not k:
        raise ValueError(f"median_ci needs more values for a {100 * level:g} % interval, got {n}")
    return {"n": n, "median": float(np.median(x)), "low": x[k - 1], "high": x[n - k],
            "coverage": 1 - 2 * float(stats.binom.cdf(k - 1, n, 0.5))}


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (each capped at 1, never decreasing)."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    m, out, running = len(pvalues), [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def mcnemar(correct_a, correct_b) -> dict:
    """McNemar's exact test: do two classifiers err on the same images at the same rate?

    ``correct_a``/``correct_b``: booleans per test image, same images in the same order.
    Returns the discordant counts (a right & b wrong, a wrong & b right) and the two-sided p.
    """
    from scipy import stats
    if len(correct_a) != len(correct_b):
        raise ValueError(f"mcnemar needs the same test images: {len(correct_a)} against {len(correct_b)}")
    only_a = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)
    only_b = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)
    n = only_a + only_b
    p = 1.0 if n == 0 else min(1.0, float(2 * stats.binom.cdf(min(only_a, only_b), n, 0.5)))
    return {"only_a": only_a, "only_b": only_b, "p": p}
