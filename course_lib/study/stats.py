"""Statistics of the studies: is a difference between two sets of seeds larger than their spread?"""
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
