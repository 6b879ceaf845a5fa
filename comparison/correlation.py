"""Spearman's rank correlation, the one estimate the single-run report, its headline figure and the
family comparison all state (the family's adds a bootstrap CI over runs, in :mod:`comparison.stats`)."""
from __future__ import annotations

MIN_POINTS = 3


def rank_correlation(x, y) -> tuple[float, float, int] | None:
    """``(rho, p, points)`` of Spearman's rank correlation of ``x`` and ``y``; None with fewer than
    three points or when either is constant (no ranking to correlate)."""
    from scipy import stats  # here: plot_results.py's --help imports this module (its figures' registry)

    x, y = list(x), list(y)
    if len(x) < MIN_POINTS or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    result = stats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue), len(x)
