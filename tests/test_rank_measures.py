"""rank_measures.py on runs: hand-made families with known rankings (tau = 1 for a monotone measure,
about 0 for a shuffled one), Jiang's tau and the granulated Kendall coefficient by hand (a 2x2 grid,
a constant measure, a 3x3 grid where a measure follows one axis), the bootstrap over settings against
scipy on every resampled data set, the CLI's files and report (its first lines where the test set
cannot tell the gaps apart, the unweighted view), Jiang's dataset-size scaling, runs that lack an
analysis or a target, bad input, and a real tiny sweep end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import rank_measures
from comparison import correlations, outcomes
from comparison import ranking as ranking_stats
from comparison.measures import expected_sign, load_measures, size_scaling
from comparison.ranking import Weighting
from tests.checks import document_header, write_document
from utils.cli import run_main

NOISES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
LAYERS = ["conv0", "conv1", "conv2"]
SHUFFLED = [3, 9, 0, 11, 5, 2, 7, 10, 1, 6, 8, 4]  # a fixed permutation of the 12 models
TEST_SIZE = 450  # the digits' test set


def top1_of(noise: float, seed: int) -> float:
    return 95.0 - 80.0 * noise - 0.5 * seed  # distinct for every model, falls with noise


def make_run(root: Path, noise: float, seed: int, *, lr: float = 0.01, index: int = 0, spectra: bool = True,
             run_json: bool = True, record: dict | None = None) -> Path:
    """One run in the standard layout: run.json (with train top-1), projections, spectra and DSE at epochs 0 and 5.

    At epoch 5: DSMI(Z; Y) rises with test top-1, alpha falls with it, rand_distance is shuffled.
    ``record``: more keys of run.json (``stopping``, ``data``)."""
    sub = Path("digits", *([f"noise_{int(noise * 100)}"] if noise else []), "lenet", f"{seed}_{lr}")
    top1 = top1_of(noise, seed) + (10.0 if lr == 0.1 else 0.0)
    if run_json:
        extra, record = record, {"schema_version": 1, "kind": "run", "arch": "lenet", "dataset": "digits", "seed": seed,
                  "args": {"arch": "lenet", "dataset": "digits", "seed": seed, "noise": noise, "lr": lr, "epochs": 5},
                  "epochs": [{"epoch": e, "train_loss": 0.1 * e, "val_loss": 1.0 + e, "val_top1": top1 - 5 + e,
                              "train_top1": 99.0 + 0.1 * e, "eval_split": "test"} for e in range(1, 6)],
                  "snapshots": [{"epoch": 0}, {"epoch": 5}], "status": {"state": "finished", "last_epoch": 5},
                  "data": {"num_classes": 10, "sizes": {"train": 1347, "val": 0, "test": TEST_SIZE}}}
        record |= extra or {}
        write_document(root / "models" / sub / "run.json", record)
    for epoch in (0, 5):
        trained = epoch == 5
        mass = [0.5 + (0.1 * (j + 1) * (1 - noise) if trained else 0.0) for j in range(len(LAYERS))]
        layers = [{"name": name, "kind": "conv", "mass": mass[j], "mean": 0.0, "std": 1.0,
                   "sign_test_p": 1e-4 if trained and j >= 1 and noise < 0.5 else 0.5, "l2_dist": 0.1 * (j + 1)}
                  for j, name in enumerate(LAYERS)]
        results = root / "results" / sub
        write_document(results / f"projections_lenet_epoch{epoch:04d}.json",
               document_header("projections", seed, epoch) | {"layers": layers, "net": {"mass": 0.5}})
        write_document(results / f"dse_lenet_epoch{epoch:04d}.json",
               document_header("dse", seed, epoch) | {"settings": {"sigma": 10.0, "layer": None}, "dse": 3.0,
                                              "dsmi_y": top1 / 50.0 if trained else 0.1, "cse": 5.0})
        if spectra:
            net = {"alpha": 10.0 - top1 / 20.0 if trained else 6.0, "alpha_weighted": 1.0,
                   "rand_distance": float(SHUFFLED[index]), "n_layers": 3}
            write_document(results / f"spectra_lenet_epoch{epoch:04d}.json",
                   document_header("spectra", seed, epoch) | {"conv_mode": "slices",
                                                      "layers": [{"name": n, "alpha": net["alpha"]} for n in LAYERS],
                                                      "net": net})
    return root / "models" / sub


@pytest.fixture
def family(tmp_path) -> Path:
    root = tmp_path / "fam"
    for index, (noise, seed) in enumerate((n, s) for n in NOISES for s in (0, 1)):
        make_run(root, noise, seed, index=index)
    return root


def _tau(ranking, measure: str, target: str = "test_top1"):
    return ranking[(ranking.measure == measure) & (ranking.target == target)].iloc[0]


def test_the_measures_table_holds_one_number_per_model_and_measure(family):
    table = load_measures([family])
    assert table.model.nunique() == 12
    assert {"model", "label", "source", "group", "seed", "epoch", "noise", "test_top1", "gen_gap", "loss_gap",
            "test_size", "train_size", "measure", "analysis", "value", "size_scaling"} <= set(table.columns)
    assert set(table.test_size) == {TEST_SIZE} and set(table.train_size) == {1347}
    assert set(table.size_scaling) == {""}  # one training-set size: nothing to scale
    assert table.groupby(["model", "measure"]).size().max() == 1
    row = table[(table.noise == 0.2) & (table.seed == 1)]
    values = row.set_index("measure").value
    mass = [0.5 + 0.1 * (j + 1) * 0.8 for j in range(3)]
    assert values["bias_mean"] == pytest.approx(np.mean([m - 0.5 for m in mass]))
    assert values["bias_last_conv"] == pytest.approx(mass[-1] - 0.5)
    assert values["biased_fraction"] == pytest.approx(2 / 3)
    assert values["dist_init"] == pytest.approx(0.2)
    assert values["alpha"] == pytest.approx(10.0 - top1_of(0.2, 1) / 20.0)  # the spectra document's net average
    assert values["dsmi_y"] == pytest.approx(top1_of(0.2, 1) / 50.0)
    assert row.epoch.iloc[0] == 5 and row.group.iloc[0] == "noise=0.2"
    assert row.test_top1.iloc[0] == pytest.approx(top1_of(0.2, 1))
    assert row.gen_gap.iloc[0] == pytest.approx(99.5 - top1_of(0.2, 1))
    assert row.loss_gap.iloc[0] == pytest.approx(6.0 - 0.5)


def test_a_monotone_measure_gives_tau_1_and_a_shuffled_one_about_0(family):
    table = load_measures([family])
    # Settings 16 points of top-1 apart on 450 images: every pair of two settings weighs about 0.49, four
    # pairs (2 seeds x 2) make an effective sample size just under 4.
    ranking = ranking_stats.rank(table, resamples=500, weighting=Weighting(min_ess=3))
    dsmi, alpha, shuffled = _tau(ranking, "dsmi_y"), _tau(ranking, "alpha"), _tau(ranking, "rand_distance")
    assert dsmi.kendall_tau == pytest.approx(1.0) and dsmi.spearman == pytest.approx(1.0)
    assert (dsmi.tau_low, dsmi.tau_high) == pytest.approx((1.0, 1.0))
    assert dsmi.verdict == "tracks, as expected" and dsmi.agrees == "yes"
    assert alpha.kendall_tau == pytest.approx(-1.0) and alpha.expected == -1 and alpha.agrees == "yes"
    assert _tau(ranking, "dsmi_y", "gen_gap").kendall_tau == pytest.approx(-1.0)  # the gap is 99.5 - top-1
    assert _tau(ranking, "dsmi_y", "gen_gap").expected == -1
    top1 = [top1_of(n, s) for n in NOISES for s in (0, 1)]
    assert shuffled.kendall_tau == pytest.approx(stats.kendalltau(SHUFFLED, top1).statistic)
    assert abs(shuffled.kendall_tau) < 0.35 and shuffled.tau_low < 0 < shuffled.tau_high
    assert shuffled.verdict == "does not track"
    assert shuffled.n_models == 12 and shuffled.n_groups == 6
    assert _tau(ranking, "dsmi_y").granulated_kendall == pytest.approx(1.0)  # one axis: the mean over seeds
    assert ranking[ranking.target == "test_top1"].kendall_tau.abs().dropna().is_monotonic_decreasing
    # 6 noise levels: 15 environments, every one judged; a measure in the order of the target errs nowhere.
    assert (dsmi.environments, dsmi.weighted_environments, dsmi.kept_environments) == (15, 15, 15)
    assert dsmi.robust_sign_error == 0.0 and dsmi.worst_environment_axis == "noise"
    assert _tau(ranking, "dsmi_y", "gen_gap").robust_sign_error == 0.0  # turned by its expected sign, -1 for a gap
    assert alpha.robust_sign_error == 0.0 and dsmi.robust and not shuffled.robust
    assert dsmi.cmi == pytest.approx(1.0) and np.isnan(dsmi.pgdl_score)  # one axis: no PGDL score
    assert shuffled.robust_sign_error > 0.5
    assert dsmi.p_holm >= dsmi.p and shuffled.p_holm >= shuffled.p


def test_the_granulated_coefficient_by_hand_on_a_2x2_grid():
    # Along noise both lr groups agree (tau +1, +1): psi(noise) = 1. Along lr one noise group agrees
    # and one disagrees (tau +1, -1): psi(lr) = 0. Overall: (1 + 0) / 2.
    frame = pd.DataFrame({"lr": [0.01, 0.01, 0.1, 0.1], "noise": [0.0, 0.5, 0.0, 0.5], "seed": [0] * 4,
                          "x": [4.0, 1.0, 5.0, 2.0], "y": [90.0, 20.0, 95.0, 10.0]})
    overall, per_axis = correlations.granulated_kendall(frame, ["lr", "noise"])
    assert per_axis == pytest.approx({"noise": 1.0, "lr": 0.0})
    assert overall == pytest.approx(0.5)


def test_jiang_s_tau_counts_ties_as_0_where_tau_b_leaves_them_out():
    # Pairs of (x, y): (1, 1)-(1, 2) a tie in x: 0; (1, 1)-(2, 3): +1; (1, 2)-(2, 3): +1. Mean 2/3; tau-b
    # divides the 2 concordant pairs by sqrt(2 untied in x * 3 untied in y) instead.
    assert correlations.jiang_tau([1.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(2 / 3)
    assert correlations.kendall_tau_b([1.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(2 / np.sqrt(6))
    assert correlations.jiang_tau([5.0, 5.0, 5.0], [1.0, 2.0, 3.0]) == 0.0  # a constant measure
    assert correlations.jiang_tau([3.0, 2.0, 1.0], [1.0, 2.0, 3.0]) == -1.0
    assert np.isnan(correlations.jiang_tau([1.0], [2.0]))  # no pair


def test_a_measure_that_follows_one_axis_of_a_3x3_grid_gets_half_and_a_constant_one_0():
    # Width 8, 16, 32 x lr 0.01, 0.02, 0.04; the gap rises with both, distinct everywhere. A measure equal to
    # the width: in each lr group it orders the 3 widths as the gap does (tau 1), in each width group it is
    # constant (Jiang's tau 0): psi(width) = 1, psi(lr) = 0, Psi = 0.5. With tau-b the constant groups were
    # dropped, psi(lr) undefined and left out: Psi 1.0.
    frame = pd.DataFrame([{"width": w, "lr": lr, "seed": 0, "x": float(w), "y": w / 8 + 10 * lr}
                          for w in (8, 16, 32) for lr in (0.01, 0.02, 0.04)])
    overall, per_axis = correlations.granulated_kendall(frame, ["width", "lr"])
    assert per_axis == pytest.approx({"width": 1.0, "lr": 0.0}) and overall == pytest.approx(0.5)
    constant, per_axis = correlations.granulated_kendall(frame.assign(x=1.0), ["width", "lr"])
    assert constant == 0.0 and per_axis == {"width": 0.0, "lr": 0.0}
    # A group with one value of the axis (a seed's lone run) holds no pair along it and does not count.
    lone = pd.concat([frame, frame.iloc[:1].assign(seed=1)])
    assert correlations.granulated_kendall(lone, ["width", "lr"])[0] == pytest.approx(0.5)


def test_the_granulated_coefficient_of_a_real_2x2_family(tmp_path):
    root = tmp_path / "grid"
    for index, (noise, lr) in enumerate([(0.0, 0.01), (0.5, 0.01), (0.0, 0.1), (0.5, 0.1)]):
        make_run(root, noise, 0, lr=lr, index=index)
    ranking = ranking_stats.rank(load_measures([root]), resamples=0)
    row = _tau(ranking, "dsmi_y")
    assert row.granulated_noise == pytest.approx(1.0) and row.granulated_lr == pytest.approx(1.0)
    assert row.granulated_kendall == pytest.approx(1.0)
    assert np.isnan(row.tau_low)  # no interval with resamples 0


def test_the_bootstrap_resamples_settings_and_matches_scipy_on_every_draw():
    rng = np.random.default_rng(3)
    groups = np.repeat(["a", "b", "c", "d", "e"], 2)
    x, y = rng.normal(size=10).round(1), rng.normal(size=10).round(1)  # rounding makes ties
    counts = correlations.bootstrap_counts(groups, resamples=50, seed=1)
    assert counts.shape == (50, 10)
    assert np.array_equal(counts[:, 0::2], counts[:, 1::2])  # the two models of a setting come together
    assert np.all(counts.sum(axis=1) == 10)  # five settings of two models drawn per resample
    taus, rhos = correlations.counted_kendall(counts, x, y), correlations.counted_spearman(counts, x, y)
    for draw in range(50):
        repeat = counts[draw].astype(int)
        xs, ys = np.repeat(x, repeat), np.repeat(y, repeat)
        if len(np.unique(xs)) > 1 and len(np.unique(ys)) > 1:
            assert taus[draw] == pytest.approx(stats.kendalltau(xs, ys).statistic, abs=1e-12)
            assert rhos[draw] == pytest.approx(stats.spearmanr(xs, ys).statistic, abs=1e-12)
    two = correlations.correlate(x[:4], y[:4], ["a", "a", "b", "b"], resamples=100)
    assert np.isnan(two["tau_low"])  # two settings make no interval


def test_expected_signs_follow_the_literature_and_the_target():
    assert expected_sign("alpha", "test_top1") == -1 and expected_sign("alpha", "gen_gap") == 1
    assert expected_sign("dsmi_y", "test_top1") == 1 and expected_sign("dse", "test_top1") == 0
    assert expected_sign("a_new_diagnostic", "test_top1") == 0


def test_the_cli_writes_the_tables_the_figures_and_a_report(family, tmp_path):
    out = tmp_path / "out"
    assert run_main(rank_measures.main, [str(family), "--out", str(out), "--resamples", "200", "--min-ess", "3",
                                         "--formats", "png"]) == 0
    names = {path.name for path in out.iterdir()}
    assert {"measures.csv", "ranking.csv", "environments.csv", "report.md", "tau_forest.png", "scatter_test_top1.png",
            "scatter_gen_gap.png", "environments_test_top1.png", "environments_gen_gap.png"} <= names
    assert "environments_loss_gap.png" in names  # unweighted, but judged: 4 pairs each
    ranking = pd.read_csv(out / "ranking.csv")
    assert {"measure", "target", "kendall_tau", "tau_low", "tau_high", "p", "spearman", "granulated_kendall",
            "n_models", "expected", "verdict", "environments", "weighted_environments", "kept_environments",
            "effective_sample_size", "robust_sign_error", "worst_environment_axis", "worst_environment",
            "mean_sign_error", "median_sign_error", "p90_sign_error", "weighting", "cmi", "cmi_set",
            "pgdl_score"} <= set(ranking.columns)
    assert set(ranking.target) == {"test_top1", "gen_gap", "loss_gap"}
    assert set(ranking[ranking.target == "loss_gap"].weighting) == {"none (no Hoeffding bound for it)"}
    environments = pd.read_csv(out / "environments.csv")
    assert len(environments) == ranking.measure.nunique() * 3 * 15  # 15 pairs of noise levels per measure and target
    assert environments.kept.all() and environments.environment.str.startswith("noise ").all()
    report = (out / "report.md").read_text()
    first_table = report[report.index("\n|"):].split("\n\n")[0]
    assert report.index("## Robust predictors") < report.index("\n|") and "`dsmi_y`" in first_table
    assert "`rand_distance`" not in first_table
    assert "Environments: 15, 15 carry weight, 15 judged (effective sample size at least 3)" in report
    assert "Jiang's* tau, not tau-b" in report and "robust sign-error (axis)" in report
    assert "The PGDL score is empty: it needs at least 3 hyperparameters, and the grid has 1 (noise)" in report
    assert "Holm-corrected across the" in report and "single axis (noise)" in report
    assert "Hyperplane Arrangements of Trained ConvNets Are Biased" in report and "Gamba" in report
    tracked = next(line for line in report.splitlines() if line.startswith("- **Track it, in the direction"))
    assert "`dsmi_y`" in tracked and "`alpha`" in tracked and "`rand_distance`" not in tracked
    assert "`rand_distance`" in next(line for line in report.splitlines() if line.startswith("- **Do not track"))
    assert "![tau_forest](tau_forest.png)" in report and "fewer than 5" not in report
    assert "![environments_gen_gap](environments_gen_gap.png)" in report
    assert len(pd.read_csv(out / "measures.csv")) == 12 * pd.read_csv(out / "measures.csv").measure.nunique()


def _first_lines(report: str) -> list[str]:
    """The report's lines before its first section."""
    return report[:report.index("\n## ")].splitlines()


def test_where_the_test_set_cannot_tell_the_gaps_apart_the_report_says_so_first(tmp_path):
    # Settings 2 points of top-1 apart (0.5 per seed) on 450 test images: no pair carries weight.
    root = tmp_path / "close"
    for index, (noise, seed) in enumerate((n, s) for n in (0.0, 0.025, 0.05) for s in (0, 1)):
        make_run(root, noise, seed, index=index)
    out = tmp_path / "out"
    assert run_main(rank_measures.main, [str(root), "--out", str(out), "--resamples", "0", "--formats", "png"]) == 0
    first = "\n".join(_first_lines((out / "report.md").read_text()))
    # The gaps are 99.5 - top-1: the largest difference within an environment is 4 + 0.5 points (noise 0 vs
    # 0.05, seeds 0 and 1).
    assert "the test set cannot tell these gaps apart: the gaps differ by at most 4.50 points and n = 450" in first
    assert "the test set cannot tell these test accuracies apart" in first
    ranking = pd.read_csv(out / "ranking.csv")
    gaps = ranking[ranking.target != "loss_gap"]
    assert (gaps.weighted_environments == 0).all() and not gaps.robust.any()
    assert not any(path.name.startswith("environments_gen_gap") for path in out.iterdir())
    unfiltered = tmp_path / "unfiltered"
    assert run_main(rank_measures.main, [str(root), "--out", str(unfiltered), "--resamples", "0", "--formats", "png",
                                         "--no-noise-filter", "--min-ess", "4"]) == 0
    report = (unfiltered / "report.md").read_text()
    assert "cannot tell" not in report and "**unweighted** (`--no-noise-filter`)" in report
    assert set(pd.read_csv(unfiltered / "ranking.csv").weighting) == {"none (--no-noise-filter)",
                                                                      "none (no Hoeffding bound for it)"}


def test_with_one_seed_per_setting_no_environment_reaches_the_reference_s_sample_size(tmp_path):
    root = tmp_path / "one"
    for index, noise in enumerate((0.0, 0.4, 0.8)):
        make_run(root, noise, 0, index=index)
    out = tmp_path / "out"
    assert run_main(rank_measures.main, [str(root), "--out", str(out), "--resamples", "0", "--formats", "png"]) == 0
    first = _first_lines((out / "report.md").read_text())
    judged = [line for line in first if "no environment is judged" in line]
    assert len(judged) == 3  # one per target (the loss gap's pairs weigh 1, but are still single pairs)
    assert "3 of 3 carry weight, but none has an effective sample size of 12 or more (the largest: 1.0" in judged[0]
    assert not pd.read_csv(out / "ranking.csv").robust.any()


def test_a_target_no_model_has_is_one_line_naming_the_flag_that_records_it(tmp_path, capsys):
    # Runs trained without --train-acc or a training criterion: run.json has no training top-1, so no gap.
    root = tmp_path / "nogap"
    for index, noise in enumerate((0.0, 0.5, 1.0)):
        run = make_run(root, noise, 0, index=index)
        record = json.loads((run / "run.json").read_text())
        for row in record["epochs"]:
            del row["train_top1"]
        (run / "run.json").write_text(json.dumps(record))
    out = tmp_path / "out"
    assert run_main(rank_measures.main, [str(root), "--targets", "gen_gap", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: no model has the target gen_gap")
    assert "--train-acc" in err and "--stop-train-loss" in err
    assert not out.exists()


@pytest.fixture
def scaled_measures():
    """Two measures that declare Jiang's dataset-size scaling, registered for the test alone."""
    from analyses import registry

    registry.register(registry.Declaration("toy_bounds", kinds=("toy_bounds",), measures={
        "toy_sqrt": registry.Measure(-1, "", "", size_scaling="sqrt"),
        "toy_log": registry.Measure(-1, "", "", size_scaling="log")}))
    yield
    registry.unregister("toy_bounds")


def test_measures_of_models_trained_on_different_sizes_are_scaled_as_jiang_does(scaled_measures):
    table = pd.DataFrame({"model": ["a", "a", "a", "b", "b", "b"], "train_size": [100.0] * 3 + [400.0] * 3,
                          "measure": ["toy_sqrt", "toy_log", "bias_mean"] * 2,
                          "value": [25.0, 10.0, 0.3, 100.0, 10.0, 0.3]})
    lines = size_scaling(table)
    values = table.set_index(["model", "measure"]).value
    assert values["a", "toy_sqrt"] == pytest.approx(0.5) and values["b", "toy_sqrt"] == pytest.approx(0.5)  # 25/100
    assert values["a", "toy_log"] == pytest.approx((10 - np.log(100)) / 2)
    assert values["b", "toy_log"] == pytest.approx((10 - np.log(400)) / 2)
    assert values["a", "bias_mean"] == 0.3  # no scaling declared: compared as it is
    assert list(table.size_scaling) == ["sqrt(x / m)", "(x - log m) / 2", ""] * 2
    assert len(lines) == 1 and "m = 100, 400" in lines[0]
    assert "`bias_mean` declare none" in lines[0] and "not comparable across training-set sizes" in lines[0]
    same = pd.DataFrame({"model": ["a", "b"], "train_size": [100.0, 100.0], "measure": ["toy_sqrt"] * 2,
                         "value": [25.0, 4.0]})
    assert size_scaling(same) == [] and list(same.value) == [25.0, 4.0]  # one size: nothing changes


STOPPED = {"criterion": {"train_loss": 0.01}, "outcome": "converged", "epoch": 5}


def test_runs_that_did_not_converge_or_are_at_chance_are_named(tmp_path, capsys):
    # 20 test examples of 10 classes: top-1 31% (noise 0.8) and 15% (noise 1.0) are not above chance.
    root = tmp_path / "fam"
    for index, noise in enumerate(NOISES):
        stopping = STOPPED | ({"outcome": "cap reached"} if noise in (0.6, 1.0) else {})
        make_run(root, noise, 0, index=index,
                 record={"stopping": stopping, "data": {"num_classes": 10, "sizes": {"test": 20}}})
    out = tmp_path / "out"
    assert run_main(rank_measures.main, [str(root), "--out", str(out), "--resamples", "0", "--formats", "png"]) == 0
    err = capsys.readouterr().err.splitlines()
    lines = [line for line in err if "did not reach" in line]
    assert len(lines) == 1 and "2 run(s) did not reach training cross-entropy <= 0.01" in lines[0]
    assert "noise_60" in lines[0] and "noise_100" in lines[0] and "left out of the gap targets" in lines[0]
    table = pd.read_csv(out / "measures.csv").drop_duplicates("model")
    capped = table.model.str.contains("noise_60|noise_100")
    assert table[capped].gen_gap.isna().all() and table[~capped].gen_gap.notna().all()
    assert table[capped].test_top1.notna().all()  # still ranked against test accuracy
    assert (pd.read_csv(out / "ranking.csv").query("target == 'gen_gap'").n_models <= 4).all()
    chance = sorted(line for line in err if "on the test set" in line)
    assert len(chance) == 2 and "n = 20" in chance[0]
    assert chance[0].startswith("1 noise=0.8 run(s) are not above chance") and "untrained models" in chance[0]
    assert chance[1].startswith("the noise=1 runs are at chance on the test set, as models fitting random labels are")
    report = (out / "report.md").read_text()
    assert "did not reach" in report and "as models fitting random labels are" in report
    assert load_measures([root], keep_unconverged=True).drop_duplicates("model").gen_gap.notna().all()
    assert outcomes.at_chance("r", "g", record={}, top1=15.0) is None  # no test size in run.json: no verdict


def test_with_few_models_the_report_makes_no_claim(tmp_path):
    root = tmp_path / "few"
    for index, noise in enumerate((0.0, 0.4, 0.8, 1.0)):
        make_run(root, noise, 0, index=index)
    assert run_main(rank_measures.main, [str(root), "--out", str(tmp_path / "out"), "--formats", "png"]) == 0
    assert "fewer than 5" in (tmp_path / "out" / "report.md").read_text()


def test_a_run_without_an_analysis_is_named_with_the_command_that_computes_it(tmp_path, capsys):
    root = tmp_path / "fam"
    for index, noise in enumerate((0.0, 0.5, 1.0)):
        make_run(root, noise, 0, index=index, spectra=index != 1)
    assert run_main(rank_measures.main, [str(root), "--out", str(tmp_path / "out"), "--formats", "png"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "has no spectra results" in line]
    assert len(lines) == 1 and "noise_50" in lines[0]
    assert "python compute_spectra.py --load-from" in lines[0] and "--results" in lines[0]
    assert "has no spectra results" in (tmp_path / "out" / "report.md").read_text()


def _results_only(root: Path) -> Path:
    make_run(root, 0.0, 0, run_json=False)
    return root


@pytest.mark.parametrize("argv, message", [
    ([], "no models"),
    (["{results_only}"], "have no target"),
    (["--zoo", "resnet1800"], "unknown zoo model 'resnet1800'"),
    (["--zoo", "resnet18"], "not in the local cache"),
    (["{family}", "--accuracy", "{bad_csv}"], "lacks the column(s) top1"),
    (["{family}", "--epoch", "5", "--analyses", "dse"], "needs --probe-dataset"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    paths = {"results_only": _results_only(tmp_path / "r"), "family": make_run(tmp_path / "f", 0.0, 0).parents[3],
             "bad_csv": tmp_path / "bad.csv"}
    paths["bad_csv"].write_text("model,accuracy\nresnet18,70\n")
    out = tmp_path / "out"
    assert run_main(rank_measures.main, [a.format(**paths) for a in argv] + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and message in err
    assert not out.exists()  # nothing written, not even the folder


@pytest.mark.slow
def test_a_real_tiny_sweep_end_to_end(grid_2x2, tmp_path):
    root, code = grid_2x2
    assert code == 0
    out = tmp_path / "measures"
    assert run_main(rank_measures.main, [str(root / "grid"), "--out", str(out), "--resamples", "200",
                                         "--formats", "png"]) == 0
    table = pd.read_csv(out / "measures.csv")
    assert table.model.nunique() == 4 and set(table.epoch) == {2}
    assert {"bias_mean", "bias_last_conv", "biased_fraction", "dist_init", "dse", "dsmi_y",
            "reinit_drop"} <= set(table.measure)
    assert table.test_top1.between(0, 100).all() and table.noise.nunique() == 2
    ranking = pd.read_csv(out / "ranking.csv")
    assert set(ranking.target) >= {"test_top1", "loss_gap"} and (ranking.n_models == 4).all()
    assert ranking.granulated_noise.notna().any()
    assert "fewer than 5" in (out / "report.md").read_text()
