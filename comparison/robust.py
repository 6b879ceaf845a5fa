"""Robust statistics of the ranking: Dziugaite et al.'s sign agreement over single-hyperparameter
changes, its worst axis, and Holm's correction of many tests.

Dziugaite, Drouin, Neal, Rajkumar, Caballero, Wang, Mitliagkas, Roy, "In Search of Robust Measures
of Generalization", NeurIPS 2020: a measure is judged on *environments*, pairs of models that differ
in exactly one hyperparameter. In each pair, does the sign of the measure's difference (turned by
the sign the measure is expected to have) predict the sign of the target's difference? A measure
that is right on average but wrong along one hyperparameter is not robust: the *worst* axis (the
axis whose pairs agree least) says so.

Holm, "A Simple Sequentially Rejective Multiple Test Procedure", Scand. J. Statist. 1979: the
step-down correction of ``m`` p-values, valid under any dependence between the tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

TIE = 0.5  # a pair whose measures are equal predicts nothing: half right, as a coin flip


@dataclass(frozen=True)
class SignAgreement:
    """The sign statistic of one measure against one target over a grid."""

    mean: float  # over every pair that differs in one axis (NaN without pairs)
    pairs: int
    per_axis: dict[str, float] = field(default_factory=dict)  # the mean over each axis's pairs
    pairs_per_axis: dict[str, int] = field(default_factory=dict)

    @property
    def worst_axis(self) -> str | None:
        """The axis with the lowest agreement (None without any defined axis)."""
        defined = {axis: value for axis, value in self.per_axis.items() if math.isfinite(value)}
        return min(defined, key=lambda axis: (defined[axis], axis)) if defined else None

    @property
    def worst(self) -> float:
        axis = self.worst_axis
        return math.nan if axis is None else self.per_axis[axis]


def pair_agreement(dx: np.ndarray, dy: np.ndarray, orientation: int) -> np.ndarray:
    """Per pair: 1 when ``orientation * sign(dx)`` is the sign of ``dy``, 0 when it is the opposite,
    :data:`TIE` when ``dx`` is 0. ``dx``, ``dy``: ``(pairs,)`` differences of the measure and the
    target; pairs with ``dy == 0`` must be left out before (nothing to predict)."""
    predicted = orientation * np.sign(dx)
    return np.where(predicted == 0, TIE, (predicted == np.sign(dy)).astype(float))


def single_axis_pairs(frame, axis: str, axes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(first, second)`` row positions of the pairs of ``frame`` that differ in ``axis`` and agree on
    every other axis (the seed is no hyperparameter: pairs of any seeds count)."""
    others = [column for column in axes if column != axis]
    keys = frame[others].map(str).agg("|".join, axis=1).to_numpy() if others else np.zeros(len(frame), str)
    values = frame[axis].map(str).to_numpy()
    first, second = np.triu_indices(len(frame), k=1)
    keep = (keys[first] == keys[second]) & (values[first] != values[second])
    return first[keep], second[keep]


def sign_agreement(frame, axes: list[str], orientation: int) -> SignAgreement:
    """The sign statistic of a frame with columns ``x`` (the measure), ``y`` (the target) and the
    ``axes``; ``orientation`` is the sign the measure is expected to have against the target (+1:
    a higher measure predicts a higher target). 0 gives NaN: nothing is predicted."""
    if orientation == 0 or not axes or len(frame) < 2:
        return SignAgreement(math.nan, 0, {axis: math.nan for axis in axes}, {axis: 0 for axis in axes})
    x, y = frame.x.to_numpy(float), frame.y.to_numpy(float)
    per_axis, counts, every = {}, {}, []
    for axis in axes:
        first, second = single_axis_pairs(frame, axis, axes)
        dx, dy = x[first] - x[second], y[first] - y[second]
        informative = dy != 0
        agreed = pair_agreement(dx[informative], dy[informative], orientation)
        per_axis[axis] = float(agreed.mean()) if len(agreed) else math.nan
        counts[axis] = len(agreed)
        every.append(agreed)
    pooled = np.concatenate(every)
    return SignAgreement(float(pooled.mean()) if len(pooled) else math.nan, len(pooled), per_axis, counts)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values of ``p_values`` (NaN stays NaN and does not count in ``m``):
    the i-th smallest of m becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    defined = np.flatnonzero(np.isfinite(p))
    order = defined[np.argsort(p[defined], kind="stable")]
    m = len(order)
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled) if m else scaled
    return adjusted
