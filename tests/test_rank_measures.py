"""rank_measures.py on runs: hand-made families with known rankings (tau = 1 for a monotone measure,
about 0 for a shuffled one), the granulated Kendall coefficient by hand on a 2x2 grid, the bootstrap
over settings against scipy on every resampled data set, the CLI's files and report, runs that lack
an analysis, bad input, and a real tiny sweep end to end."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import rank_measures
from comparison import outcomes
from comparison import ranking as ranking_stats
from comparison.measures import expected_sign, load_measures
from tests.checks import document_header, write_document
from utils.cli import run_main

NOISES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
LAYERS = ["conv0", "conv1", "conv2"]
SHUFFLED = [3, 9, 0, 11, 5, 2, 7, 10, 1, 6, 8, 4]  # a fixed permutation of the 12 models


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
                  "snapshots": [{"epoch": 0}, {"epoch": 5}], "status": {"state": "finished", "last_epoch": 5}}
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
            "measure", "analysis", "value"} <= set(table.columns)
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
    ranking = ranking_stats.rank(table, resamples=500)
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
    assert dsmi.sign_agreement == 1.0 and dsmi.worst_axis == "noise" and dsmi.worst_sign == 1.0
    assert _tau(ranking, "dsmi_y", "gen_gap").sign_agreement == 1.0  # turned by its expected sign, -1 for a gap
    assert alpha.sign_agreement == 1.0 and dsmi.robust and not shuffled.robust
    assert dsmi.p_holm >= dsmi.p and shuffled.p_holm >= shuffled.p


def test_the_granulated_coefficient_by_hand_on_a_2x2_grid():
    # Along noise both lr groups agree (tau +1, +1): psi(noise) = 1. Along lr one noise group agrees
    # and one disagrees (tau +1, -1): psi(lr) = 0. Overall: (1 + 0) / 2.
    frame = pd.DataFrame({"lr": [0.01, 0.01, 0.1, 0.1], "noise": [0.0, 0.5, 0.0, 0.5], "seed": [0] * 4,
                          "x": [4.0, 1.0, 5.0, 2.0], "y": [90.0, 20.0, 95.0, 10.0]})
    overall, per_axis = ranking_stats.granulated_kendall(frame, ["lr", "noise"])
    assert per_axis == pytest.approx({"noise": 1.0, "lr": 0.0})
    assert overall == pytest.approx(0.5)


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
    counts = ranking_stats.bootstrap_counts(groups, resamples=50, seed=1)
    assert counts.shape == (50, 10)
    assert np.array_equal(counts[:, 0::2], counts[:, 1::2])  # the two models of a setting come together
    assert np.all(counts.sum(axis=1) == 10)  # five settings of two models drawn per resample
    taus, rhos = ranking_stats.counted_kendall(counts, x, y), ranking_stats.counted_spearman(counts, x, y)
    for draw in range(50):
        repeat = counts[draw].astype(int)
        xs, ys = np.repeat(x, repeat), np.repeat(y, repeat)
        if len(np.unique(xs)) > 1 and len(np.unique(ys)) > 1:
            assert taus[draw] == pytest.approx(stats.kendalltau(xs, ys).statistic, abs=1e-12)
            assert rhos[draw] == pytest.approx(stats.spearmanr(xs, ys).statistic, abs=1e-12)
    two = ranking_stats.correlate(x[:4], y[:4], ["a", "a", "b", "b"], resamples=100)
    assert np.isnan(two["tau_low"])  # two settings make no interval


def test_expected_signs_follow_the_literature_and_the_target():
    assert expected_sign("alpha", "test_top1") == -1 and expected_sign("alpha", "gen_gap") == 1
    assert expected_sign("dsmi_y", "test_top1") == 1 and expected_sign("dse", "test_top1") == 0
    assert expected_sign("a_new_diagnostic", "test_top1") == 0


def test_the_cli_writes_the_tables_the_figures_and_a_report(family, tmp_path):
    out = tmp_path / "out"
    assert run_main(rank_measures.main, [str(family), "--out", str(out), "--resamples", "200",
                                         "--formats", "png"]) == 0
    names = {path.name for path in out.iterdir()}
    assert {"measures.csv", "ranking.csv", "report.md", "tau_forest.png", "scatter_test_top1.png",
            "scatter_gen_gap.png"} <= names
    ranking = pd.read_csv(out / "ranking.csv")
    assert {"measure", "target", "kendall_tau", "tau_low", "tau_high", "p", "spearman", "granulated_kendall",
            "n_models", "expected", "verdict"} <= set(ranking.columns)
    assert set(ranking.target) == {"test_top1", "gen_gap", "loss_gap"}
    report = (out / "report.md").read_text()
    first_table = report[report.index("\n|"):].split("\n\n")[0]
    assert report.index("## Robust predictors") < report.index("\n|") and "`dsmi_y`" in first_table
    assert "`rand_distance`" not in first_table
    assert "Holm-corrected across the" in report and "single axis (noise)" in report
    assert "Hyperplane Arrangements of Trained ConvNets Are Biased" in report and "Gamba" in report
    tracked = next(line for line in report.splitlines() if line.startswith("- **Track it, in the direction"))
    assert "`dsmi_y`" in tracked and "`alpha`" in tracked and "`rand_distance`" not in tracked
    assert "`rand_distance`" in next(line for line in report.splitlines() if line.startswith("- **Do not track"))
    assert "![tau_forest](tau_forest.png)" in report and "fewer than 5" not in report
    assert len(pd.read_csv(out / "measures.csv")) == 12 * pd.read_csv(out / "measures.csv").measure.nunique()


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
