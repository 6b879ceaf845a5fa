"""The robust statistics of the ranking by hand: Dziugaite et al.'s sign agreement on a 2x2x2 grid (a
measure equal to the target agrees on every axis, its negation on none), the worst axis of a measure
that fails along one hyperparameter, ties, Holm's correction against a hand computation, and the
verdicts and robustness the ranking derives from them."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from comparison import ranking as ranking_stats
from comparison.robust import TIE, holm, sign_agreement, single_axis_pairs

AXES = ["depth", "lr", "width"]


def grid(seeds: tuple[int, ...] = (0,)) -> pd.DataFrame:
    """A 2x2x2 grid; ``y`` (the gap) grows with depth and width and falls with lr, distinct everywhere."""
    rows = [{"depth": d, "lr": lr, "width": w, "seed": s, "y": 10.0 * d - 5.0 * (lr == 0.1) + 2.0 * w + 0.1 * s}
            for d, lr, w, s in itertools.product((2, 4), (0.01, 0.1), (8, 16), seeds)]
    return pd.DataFrame(rows)


def test_a_measure_equal_to_the_gap_agrees_on_every_axis_and_its_negation_on_none():
    frame = grid()
    same = sign_agreement(frame.assign(x=frame.y), AXES, +1)
    assert same.mean == 1.0 and same.per_axis == {axis: 1.0 for axis in AXES}
    assert same.pairs == 12 and same.pairs_per_axis == {axis: 4 for axis in AXES}  # 4 pairs per axis of a 2^3 grid
    negated = sign_agreement(frame.assign(x=-frame.y), AXES, +1)
    assert negated.mean == 0.0 and negated.per_axis == {axis: 0.0 for axis in AXES}
    assert sign_agreement(frame.assign(x=-frame.y), AXES, -1).mean == 1.0  # an expected sign of -1 turns it


def test_the_worst_axis_is_the_hyperparameter_along_which_the_measure_fails():
    frame = grid()
    # Follows depth and width like the gap, but rises with lr where the gap falls: right on two axes.
    frame["x"] = 10.0 * frame.depth + 5.0 * (frame.lr == 0.1) + 2.0 * frame.width
    found = sign_agreement(frame, AXES, +1)
    assert found.per_axis == {"depth": 1.0, "lr": 0.0, "width": 1.0}
    assert found.worst_axis == "lr" and found.worst == 0.0
    assert found.mean == pytest.approx(8 / 12)


def test_pairs_differ_in_exactly_one_axis_seeds_of_any_kind_and_ties_count_half():
    frame = grid(seeds=(0, 1)).assign(x=1.0)  # a constant measure predicts nothing
    first, second = single_axis_pairs(frame, "lr", AXES)
    assert len(first) == 4 * 4  # 4 (depth, width) cells, 2 seeds on each side of lr
    assert all(frame.depth[first].to_numpy() == frame.depth[second].to_numpy())
    assert all(frame.lr[first].to_numpy() != frame.lr[second].to_numpy())
    assert sign_agreement(frame, AXES, +1).mean == TIE
    # Pairs whose targets are equal are skipped: there is nothing to predict.
    flat = grid().assign(x=grid().y, y=1.0)
    assert math.isnan(sign_agreement(flat, AXES, +1).mean) and sign_agreement(flat, AXES, +1).pairs == 0
    assert math.isnan(sign_agreement(grid().assign(x=grid().y), AXES, 0).mean)  # no orientation: no prediction


def test_holm_matches_a_hand_computation():
    # Sorted: 0.01, 0.03, 0.04, 0.2 of m = 4 -> 4 * 0.01, 3 * 0.03, max(0.09, 2 * 0.04), max(0.09, 0.2).
    adjusted = holm([0.04, 0.01, np.nan, 0.2, 0.03])
    assert adjusted[[1, 4, 0, 3]] == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert np.isnan(adjusted[2])  # an undefined test is no test: m counts the 4 defined ones
    assert holm([0.1, 0.2, 0.3]) == pytest.approx([0.3, 0.4, 0.4])  # 3 * 0.1, 2 * 0.2, max(0.4, 1 * 0.3)
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]).shape == (0,)


def _table(frame: pd.DataFrame, measures: dict[str, np.ndarray]) -> pd.DataFrame:
    base = frame.assign(model=[f"m{i}" for i in range(len(frame))], label="", source="run", epoch=5, analysis="x",
                        test_top1=90.0, gen_gap=frame.y).drop(columns="y")
    base["group"] = base.model
    return pd.concat([base.assign(measure=name, value=values) for name, values in measures.items()])


def test_the_ranking_holm_corrects_per_target_and_names_robust_measures():
    frame = grid(seeds=(0, 1))
    rng = np.random.default_rng(0)
    table = _table(frame, {"equal": frame.y.to_numpy(), "noise": rng.normal(size=len(frame)),
                           "lr_blind": (10.0 * frame.depth + 5.0 * (frame.lr == 0.1) + 2.0 * frame.width).to_numpy()})
    ranking = ranking_stats.rank(table, targets=["gen_gap"], resamples=200)
    ranking = ranking.set_index("measure")
    assert ranking.p_holm.to_numpy() == pytest.approx(holm(ranking.p.to_numpy()))
    assert ranking.loc["equal", "robust"] and ranking.loc["equal", "worst_sign"] == 1.0
    assert ranking.loc["equal", "sign_from"] == "fitted"  # no expected sign for an unknown measure: tau's
    assert not ranking.loc["noise", "robust"]
    assert ranking.loc["lr_blind", "worst_axis"] == "lr" and not ranking.loc["lr_blind", "robust"]
    assert set(ranking.role) == {ranking_stats.SEED}  # analysis "x" declares nothing: a seeds' measure


def test_seeds_measures_and_baselines_come_from_the_declarations():
    from analyses.registry import declarations

    roles = {found.name: ranking_stats.role_of(found.name) for found in declarations()}
    assert {name for name, role in roles.items() if role == ranking_stats.BASELINE} == \
        {found.name for found in declarations() if found.baseline}
    assert roles["projections"] == roles["dse"] == roles["spectra"] == ranking_stats.SEED
    assert ranking_stats.role_of("an unknown analysis") == ranking_stats.SEED
