"""Jiang's conditional mutual information and the PGDL competition's score (comparison/cmi.py), against
hand computations and a literal, loop-by-loop reading of the competition's definition."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from comparison.cmi import check_grid, conditional_ratio, grid_problem, jiang_cmi, pgdl_score
from utils.errors import UserError


def grid(axes: dict[str, list], *, seed: int = 0) -> pd.DataFrame:
    """One model per setting of the product of ``axes``, with a gap that depends on every axis (ties
    included: gaps rounded to one decimal)."""
    rng = np.random.default_rng(seed)
    rows = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    frame = pd.DataFrame(rows)
    gap = sum(frame[axis].rank(method="dense") * (i + 1) for i, axis in enumerate(axes)) + rng.normal(0, 1, len(frame))
    frame["y"] = np.round(gap, 1)
    return frame


def test_the_unconditioned_ratio_of_three_models_matches_a_hand_computation():
    # gaps 1, 2, 3 and measures 1, 3, 2: of the 6 ordered pairs, (-,-) twice, (+,+) twice, (-,+) and (+,-) once
    frame = pd.DataFrame({"x": [1.0, 3.0, 2.0], "y": [1.0, 2.0, 3.0]})
    expected = (2 / 3) * math.log2(4 / 3) + (1 / 3) * math.log2(2 / 3)  # H(V_g) is 1 bit
    assert conditional_ratio(frame, [], ()) == pytest.approx(expected)
    found = jiang_cmi(frame, [])
    assert found.score == pytest.approx(expected) and found.worst_set == ()


def test_a_measure_with_the_gaps_order_scores_one_and_a_constant_measure_zero():
    frame = grid({"width": [8, 16, 32], "lr": [0.1, 0.01], "depth": [2, 3]})
    axes = ["width", "lr", "depth"]
    same = frame.assign(x=3 * frame.y + 1)
    assert jiang_cmi(same, axes).score == pytest.approx(1.0)
    assert pgdl_score(same, axes) == pytest.approx(1.0, abs=1e-9)
    constant = frame.assign(x=0.5)
    assert jiang_cmi(constant, axes).score == 0.0
    assert pgdl_score(constant, axes) == 0.0


def test_a_measure_that_only_follows_one_hyperparameter_scores_zero_once_it_is_conditioned_on():
    frame = grid({"width": [8, 16, 32], "lr": [0.1, 0.03, 0.01]})
    frame["x"] = np.log2(frame.width.astype(float))
    found = jiang_cmi(frame, ["width", "lr"])
    assert found.per_set[("width",)] == pytest.approx(0.0, abs=1e-12)
    assert found.score == pytest.approx(0.0, abs=1e-12) and "width" in found.worst_set
    assert found.per_set[()] > 0.05  # unconditioned, its sign does say something about the gap


def _competition_score(frame: pd.DataFrame, axes: list[str]) -> float:
    """The PGDL score read literally: tables of counts keyed by the pair's values, filled pair by pair."""
    def entropy(counts):
        p = np.asarray(counts, float) / sum(counts)
        return -float(np.sum(p * np.log2(p + 1e-12)))

    def information(table):
        total = table.sum()
        rows, columns = table.sum(axis=1), table.sum(axis=0)
        found = 0.0
        for i, j in itertools.product(range(2), range(2)):
            if table[i, j]:
                joint = table[i, j] / total
                found += joint * math.log2(joint / (rows[i] / total * columns[j] / total))
        return found

    values = {axis: sorted(set(frame[axis].astype(str))) for axis in axes}
    best = math.inf
    for h1, h2 in itertools.permutations(axes, 2):
        tables = {key: np.zeros((2, 2)) for key in itertools.product(values[h1], values[h1], values[h2], values[h2])}
        models = list(zip(frame[h1].astype(str), frame[h2].astype(str), frame.x, frame.y))
        for (a1, a2, ax, ay), (b1, b2, bx, by) in itertools.product(models, models):
            tables[(a1, b1, a2, b2)][0 if ay > by else 1, 0 if ax > bx else 1] += 1
        mi = np.mean([information(table) for table in tables.values()])
        h = np.mean([entropy(table.sum(axis=1)) for table in tables.values()])
        best = min(best, mi / h)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_pgdl_score_equals_the_competitions_definition_read_literally(seed):
    frame = grid({"width": [8, 16], "lr": [0.1, 0.03, 0.01], "depth": [2, 3]}, seed=seed)
    rng = np.random.default_rng(10 + seed)
    frame["x"] = np.round(frame.y + rng.normal(0, 2, len(frame)), 0)  # noisy, with ties
    axes = ["width", "lr", "depth"]
    assert pgdl_score(frame, axes) == pytest.approx(_competition_score(frame, axes), rel=1e-12)


def test_the_pgdl_score_needs_two_axes_and_every_cell():
    frame = grid({"width": [8, 16], "lr": [0.1, 0.01]}).assign(x=lambda f: f.y)
    assert math.isnan(pgdl_score(frame, ["width"]))
    assert math.isnan(pgdl_score(frame.iloc[1:], ["width", "lr"]))  # (width 8, lr 0.1) is gone: empty cells


def test_the_grid_check_names_missing_repeated_and_foreign_settings():
    frame = grid({"width": [8, 16], "lr": [0.1, 0.01]}).assign(x=0.0)
    assert grid_problem(frame, ["width", "lr"]) is None
    assert "incomplete: 1 of 4" in grid_problem(frame.iloc[1:], ["width", "lr"])
    assert "more than one model" in grid_problem(pd.concat([frame, frame.iloc[:1]]), ["width", "lr"])
    assert "incomplete" in grid_problem(frame, ["width", "lr"], {"width": ["8", "16", "32"], "lr": ["0.1", "0.01"]})
    assert "outside" in grid_problem(frame, ["width", "lr"], {"width": ["8"], "lr": ["0.1", "0.01"]})
    with pytest.raises(UserError, match="task_1: the grid over width, lr is incomplete"):
        check_grid(frame.iloc[1:], ["width", "lr"], what="task_1")
