"""The robust statistics of the ranking by hand: the Hoeffding weight of a pair (Dziugaite et al.'s,
and the 9 points that 450 test images cannot resolve), the environments of a 2x2 grid with two seeds
(weights, sign-errors, effective sample sizes, the robust sign-error and its environment, computed
by hand), the unweighted view, a grid where no pair carries weight, Holm's correction, and the
verdicts and robustness the ranking derives from them."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from comparison import ranking as ranking_stats
from comparison.ranking import Weighting
from comparison.robust import environments, hoeffding_weight, holm, kept, robustness

AXES = ["lr", "width"]
N = 10000
# d = 2 points on n = 10000 test examples: (1 - 2 exp(-10000 * 0.02^2 / 2))^2 - 0.5
W_2_POINTS = (1 - 2 * math.exp(-2.0)) ** 2 - 0.5


def test_the_hoeffding_weight_by_hand():
    assert hoeffding_weight(0.02, N, N) == pytest.approx(W_2_POINTS)
    assert W_2_POINTS == pytest.approx(0.0319, abs=1e-4)
    assert hoeffding_weight(0.01, N, N) == 0.0  # 1 - 2 exp(-0.5) < 0: clipped, then below 0.5
    assert hoeffding_weight(0.5, N, N) == pytest.approx(0.5)  # surely different: weight 1 - 0.5
    assert hoeffding_weight(-0.02, N, N) == hoeffding_weight(0.02, N, N)  # the size of the difference counts
    # Two test sets of different sizes: the product of the two probabilities, less 0.5.
    both = (1 - 2 * math.exp(-12.5)) * (1 - 2 * math.exp(-2.5)) - 0.5  # d = 0.05 on 10000 and on 2000 examples
    assert hoeffding_weight(0.05, N, 2000) == pytest.approx(both) and both == pytest.approx(0.3358, abs=1e-4)
    assert hoeffding_weight(0.02, N, 0) == 0.0  # an unknown test set (n = 0) vouches for nothing
    # 450 test images (the digits): (1 - 2 exp(-225 d^2))^2 = 1/2 at d = 9.24 points, so pairs whose targets
    # differ by less carry no weight.
    threshold = math.sqrt(-math.log((1 - math.sqrt(0.5)) / 2) / 225)
    assert threshold == pytest.approx(0.0924, abs=1e-4)
    assert hoeffding_weight(0.09, 450, 450) == 0.0 and hoeffding_weight(0.095, 450, 450) > 0.0


def grid() -> pd.DataFrame:
    """A 2x2 grid (lr x width) with two seeds, tested on 10000 examples. Gaps y (points) and measure x:

    lr 0.01, width 8:  y 10, 12      x 1, 2      | lr 0.1, width 8:  y 40, 42      x 5, 3
    lr 0.01, width 16: y 10.5, 11    x 1, 1      | lr 0.1, width 16: y 11.2, 12.5  x 0, 4
    """
    rows = [(0.01, 8, 10.0, 1.0), (0.01, 8, 12.0, 2.0), (0.1, 8, 40.0, 5.0), (0.1, 8, 42.0, 3.0),
            (0.01, 16, 10.5, 1.0), (0.01, 16, 11.0, 1.0), (0.1, 16, 11.2, 0.0), (0.1, 16, 12.5, 4.0)]
    return pd.DataFrame([{"lr": lr, "width": width, "seed": i % 2, "y": y, "x": x, "n": N}
                         for i, (lr, width, y, x) in enumerate(rows)])


def test_the_environments_of_a_2x2_grid_by_hand():
    found = environments(grid(), AXES).set_index("environment")
    assert list(found.index) == ["lr 0.01 → 0.1 at width=8", "lr 0.01 → 0.1 at width=16",
                                 "width 8 → 16 at lr=0.01", "width 8 → 16 at lr=0.1"]
    assert (found.pairs == 4).all()  # 2 seeds x 2 seeds
    # lr at width 8: gaps 28 to 32 points apart, so every pair weighs 0.5; x (1, 2 against 5, 3) rises with
    # lr as y does: every pair right.
    lr8 = found.loc["lr 0.01 → 0.1 at width=8"]
    assert lr8.weight == pytest.approx(2.0) and lr8.ess == pytest.approx(4.0) and lr8.error == 0.0
    # lr at width 16: the gaps differ by 0.7, 2, 0.2 and 1.5 points; only the 2-point pair (10.5 vs 12.5,
    # x 1 vs 4: right) carries weight.
    lr16 = found.loc["lr 0.01 → 0.1 at width=16"]
    assert lr16.weight == pytest.approx(W_2_POINTS) and lr16.ess == pytest.approx(1.0) and lr16.error == 0.0
    assert lr16.largest_difference == pytest.approx(2.0)
    # width at lr 0.01: the gaps differ by 0.5, 1, 1.5 and 1 points: no pair carries weight.
    quiet = found.loc["width 8 → 16 at lr=0.01"]
    assert quiet.weight == 0.0 and quiet.ess == 0.0 and np.isnan(quiet.error)
    # width at lr 0.1: (x 5, y 40), (3, 42) against (0, 11.2), (4, 12.5): the pair (3, 42) vs (4, 12.5) is wrong.
    width01 = found.loc["width 8 → 16 at lr=0.1"]
    assert width01.weight == pytest.approx(2.0) and width01.ess == pytest.approx(4.0)
    assert width01.error == pytest.approx(0.25)
    assert list(kept(found.reset_index(), 4.0)) == [True, False, False, True]


def test_the_robust_sign_error_is_the_worst_judged_environment():
    found = environments(grid(), AXES)
    summary = robustness(found, +1, min_ess=4.0)
    assert (summary.environments, summary.weighted, summary.kept) == (4, 3, 2)
    assert summary.robust_error == pytest.approx(0.25) and summary.worst_axis == "width"
    assert summary.worst == "width 8 → 16 at lr=0.1" and summary.worst_ess == pytest.approx(4.0)
    assert summary.mean == pytest.approx(0.125) and summary.median == pytest.approx(0.125)
    assert summary.p90 == pytest.approx(0.225)  # linear interpolation between 0 and 0.25
    total, squared = 4.0 + W_2_POINTS, 2.0 + W_2_POINTS**2  # 8 pairs of weight 0.5 and one of W_2_POINTS
    assert summary.ess == pytest.approx(total**2 / squared)
    turned = robustness(found, -1, min_ess=4.0)  # expected to fall with the gap: every sign-error is 1 - e
    assert turned.robust_error == 1.0 and turned.worst_axis == "lr" and turned.mean == pytest.approx(0.875)
    assert math.isnan(robustness(found, +1).robust_error)  # the reference's 12: no environment is judged
    assert robustness(found, +1).kept == 0 and robustness(found, +1).weighted == 3
    assert math.isnan(robustness(found, 0, min_ess=4.0).robust_error)  # no orientation: nothing predicted


def test_the_unweighted_view_counts_every_pair_ties_as_half():
    found = environments(grid(), AXES, weighted=False).set_index("environment")
    assert (found.weight == 4.0).all() and (found.ess == 4.0).all()
    # lr at width 16: (1, 10.5), (1, 11) against (0, 11.2), (4, 12.5): against x 0 both pairs are wrong.
    assert found.loc["lr 0.01 → 0.1 at width=16", "error"] == pytest.approx(0.5)
    # width at lr 0.01: (1, 10), (2, 12) against (1, 10.5), (1, 11): two ties of x (1/2 each), two right.
    assert found.loc["width 8 → 16 at lr=0.01", "error"] == pytest.approx(0.25)
    summary = robustness(found.reset_index(), +1, min_ess=4.0)
    assert summary.kept == 4 and summary.robust_error == pytest.approx(0.5)
    assert summary.worst == "lr 0.01 → 0.1 at width=16"


def test_holm_matches_a_hand_computation():
    # Sorted: 0.01, 0.03, 0.04, 0.2 of m = 4 -> 4 * 0.01, 3 * 0.03, max(0.09, 2 * 0.04), max(0.09, 0.2).
    adjusted = holm([0.04, 0.01, np.nan, 0.2, 0.03])
    assert adjusted[[1, 4, 0, 3]] == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert np.isnan(adjusted[2])  # an undefined test is no test: m counts the 4 defined ones
    assert holm([0.1, 0.2, 0.3]) == pytest.approx([0.3, 0.4, 0.4])  # 3 * 0.1, 2 * 0.2, max(0.4, 1 * 0.3)
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]).shape == (0,)


def cube(seeds: tuple[int, ...] = (0, 1, 2, 3)) -> pd.DataFrame:
    """A 2x2x2 grid (depth, lr, width); the gap y grows with depth and width and falls with lr, settings at
    least 4 points apart (seeds 0.1 apart), tested on 10000 examples."""
    rows = [{"depth": d, "lr": lr, "width": w, "seed": s, "y": 10.0 * d - 5.0 * (lr == 0.1) + 2.0 * w + 0.1 * s}
            for d, lr, w, s in itertools.product((2, 4), (0.01, 0.1), (8, 16), seeds)]
    return pd.DataFrame(rows)


def _table(frame: pd.DataFrame, measures: dict[str, np.ndarray], *, test_size: float = N) -> pd.DataFrame:
    base = frame.assign(model=[f"m{i}" for i in range(len(frame))], label="", source="run", epoch=5, analysis="x",
                        test_top1=90.0, gen_gap=frame.y, test_size=test_size, train_size=1000.0).drop(columns="y")
    base["group"] = base.depth.astype(str) + base.lr.astype(str) + base.width.astype(str)
    return pd.concat([base.assign(measure=name, value=values) for name, values in measures.items()])


def test_the_ranking_holm_corrects_per_target_and_names_robust_measures():
    frame = cube()
    rng = np.random.default_rng(0)
    table = _table(frame, {"equal": frame.y.to_numpy(), "noise": rng.normal(size=len(frame)),
                           "lr_blind": (10.0 * frame.depth + 5.0 * (frame.lr == 0.1) + 2.0 * frame.width).to_numpy()})
    ranking = ranking_stats.rank(table, targets=["gen_gap"], resamples=200).set_index("measure")
    assert ranking.p_holm.to_numpy() == pytest.approx(holm(ranking.p.to_numpy()))
    # 12 environments (4 per axis), 16 pairs each (4 seeds x 4 seeds), every pair weighed: ESS about 16 >= 12.
    assert (ranking.environments == 12).all() and (ranking.kept_environments == 12).all()
    assert (ranking.weighting == "hoeffding").all()
    assert ranking.loc["equal", "robust"] and ranking.loc["equal", "robust_sign_error"] == 0.0
    assert ranking.loc["equal", "sign_from"] == "fitted"  # no expected sign for an unknown measure: tau's
    assert not ranking.loc["noise", "robust"]
    # Right along depth and width, wrong along lr: its worst environment is an lr one, with sign-error 1.
    assert ranking.loc["lr_blind", "worst_environment_axis"] == "lr" and not ranking.loc["lr_blind", "robust"]
    assert ranking.loc["lr_blind", "robust_sign_error"] == 1.0
    assert ranking.loc["lr_blind", "mean_sign_error"] == pytest.approx(4 / 12)
    assert set(ranking.role) == {ranking_stats.SEED}  # analysis "x" declares nothing: a seeds' measure


def test_where_no_pair_carries_weight_no_measure_is_robust():
    # The cube's gaps divided by 10: an environment's pairs differ by at most 2 + 0.03 points (depth), below
    # the 9.2 points that 450 test images can tell apart.
    frame = cube().assign(y=lambda f: f.y / 10.0)
    table = _table(frame, {"equal": frame.y.to_numpy()}, test_size=450)
    result = ranking_stats.ranked(table, targets=["gen_gap"], resamples=0)
    row = result.ranking.iloc[0]
    assert row.environments == 12 and row.weighted_environments == 0 and row.kept_environments == 0
    assert np.isnan(row.robust_sign_error) and not row.robust
    found = result.evidence["gen_gap"]
    assert (found.weighted, found.sizes, found.largest_difference) == (0, (450,), pytest.approx(2.03))
    unfiltered = ranking_stats.ranked(table, targets=["gen_gap"], resamples=0, weighting=Weighting(noise_filter=False))
    row = unfiltered.ranking.iloc[0]
    assert row.weighting == ranking_stats.UNFILTERED and row.kept_environments == 12 and row.robust
    assert (unfiltered.environments.weighting == ranking_stats.UNFILTERED).all()


def test_a_run_without_a_test_set_size_carries_no_weight_and_the_loss_gap_is_unweighted():
    frame = cube()
    table = _table(frame, {"equal": frame.y.to_numpy()}, test_size=math.nan).assign(loss_gap=lambda t: t.gen_gap)
    result = ranking_stats.ranked(table, targets=["gen_gap", "loss_gap"], resamples=0)
    rows = result.ranking.set_index("target")
    assert rows.loc["gen_gap", "weighted_environments"] == 0 and not rows.loc["gen_gap", "robust"]
    assert len(result.evidence["gen_gap"].unsized) == len(frame) and result.evidence["gen_gap"].sizes == ()
    # The loss is unbounded: no Hoeffding weight, every pair weighs 1, and the report says so.
    assert rows.loc["loss_gap", "weighting"] == ranking_stats.UNBOUNDED and rows.loc["loss_gap", "robust"]
    assert rows.loc["loss_gap", "effective_sample_size"] == pytest.approx(12 * 16)


def test_the_ranking_gives_jiang_s_cmi_and_the_pgdl_score_and_says_when_there_is_none():
    frame = cube()
    table = _table(frame, {"equal": frame.y.to_numpy(), "depth_only": frame.depth.to_numpy(float),
                           "constant": np.ones(len(frame))})
    result = ranking_stats.ranked(table, targets=["gen_gap"], resamples=0)
    rows = result.ranking.set_index("measure")
    # The gap's own order: every sign right given any conditioning set, 1 bit of information per bit of entropy.
    assert rows.loc["equal", "cmi"] == pytest.approx(1.0) and rows.loc["equal", "pgdl_score"] == pytest.approx(1.0)
    # Following depth alone: once the pair's depths are known, its sign tells nothing more.
    assert rows.loc["depth_only", "cmi"] == pytest.approx(0.0, abs=1e-12) and "depth" in rows.loc["depth_only",
                                                                                                    "cmi_set"]
    assert rows.loc["depth_only", "pgdl_score"] == pytest.approx(0.0, abs=1e-9)
    assert rows.loc["constant", "cmi"] == 0.0 and rows.loc["constant", "pgdl_score"] == pytest.approx(0.0, abs=1e-9)
    found = result.evidence["gen_gap"]
    assert found.pgdl_problem is None and found.seeds == 4  # 4 seeds a setting: the score reads their means
    # A setting without models: an incomplete grid has no PGDL score, and the evidence says why.
    holed = _table(frame[~((frame.depth == 4) & (frame.lr == 0.1) & (frame.width == 16))].reset_index(drop=True),
                   {"equal": frame.y.to_numpy()[:28]})
    result = ranking_stats.ranked(holed, targets=["gen_gap"], resamples=0)
    assert np.isnan(result.ranking.iloc[0].pgdl_score) and result.ranking.iloc[0].cmi == pytest.approx(1.0)
    assert "incomplete: 1 of 8 settings have no model" in result.evidence["gen_gap"].pgdl_problem
    # Two hyperparameters: conditioned on both, a cell holds one pair of settings; no score, and why.
    flat = cube().query("width == 8").reset_index(drop=True)
    result = ranking_stats.ranked(_table(flat, {"equal": flat.y.to_numpy()}), targets=["gen_gap"], resamples=0)
    assert np.isnan(result.ranking.iloc[0].pgdl_score)
    assert result.evidence["gen_gap"].pgdl_problem.startswith("it needs at least 3 hyperparameters, and the grid "
                                                               "has 2 (depth, lr)")


def test_seeds_measures_and_baselines_come_from_the_declarations():
    from analyses.registry import declarations

    roles = {found.name: ranking_stats.role_of(found.name) for found in declarations()}
    assert {name for name, role in roles.items() if role == ranking_stats.BASELINE} == \
        {found.name for found in declarations() if found.baseline}
    assert roles["projections"] == roles["dse"] == roles["spectra"] == ranking_stats.SEED
    assert ranking_stats.role_of("an unknown analysis") == ranking_stats.SEED


def test_what_each_measure_reads_is_declared_and_a_robust_held_out_measure_is_named_as_such():
    from comparison.measures import reads
    from comparison.ranking_report import held_out_line

    # the DSE probe, the HSIC probe and the reinit drops read images the model was not trained on; the margin,
    # the flatness searches and the training history read the training split; the rest reads the weights alone
    assert {reads(name) for name in ("dse", "dsmi_y", "dsmi_x", "cse", "hsic_y", "reinit_drop")} == {"held-out"}
    assert {reads(name) for name in ("margin", "pacbayes_flatness", "sharpness", "epochs_to_fit")} == {"training"}
    assert {reads(name) for name in ("log_prod_spec", "path_norm", "alpha", "bias_mean")} == {"weights"}
    frame = cube()
    # a declared held-out measure and an undeclared one, both tracking the gap exactly (dsmi_y's expected sign is
    # +1 for accuracy, -1 for a gap: the negated gap tracks as expected)
    table = _table(frame, {"dsmi_y": -frame.y.to_numpy(), "equal": frame.y.to_numpy()})
    ranking = ranking_stats.rank(table, targets=["gen_gap"], resamples=200)
    assert ranking.set_index("measure").robust.all()
    line = " ".join(held_out_line(ranking))
    assert "`dsmi_y` reads held-out data" in line and "`equal`" not in line
    assert held_out_line(ranking[ranking.measure == "equal"]) == []
