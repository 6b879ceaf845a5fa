"""compare_runs.py and schema.load_table: synthetic families with known effects (table values,
combined p-values, Spearman, the report's sentences), a real tiny sweep end to end, runs that
differ, the reference tool's files, bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import compare_runs
import schema
from comparison import stats as family_stats
from comparison.family import build_family
from tests.checks import document_header, write_document
from utils.cli import run_main

LAYERS = ["conv0", "conv1", "conv2", "conv3"]
# Level "noise=0": bias grows with depth (conv3: mass 0.8) and so does the drop from epoch 0 (ranks agree);
# level "noise=1": no bias anywhere.
MASS = {0.0: [0.5, 0.6, 0.7, 0.8], 1.0: [0.5, 0.5, 0.5, 0.5]}
SIGN_P = {0.0: [1.0, 0.2, 0.02, 1e-4], 1.0: [1.0, 1.0, 1.0, 1.0]}
DROP = {0.0: [0.0, 0.1, 0.2, 0.6], 1.0: [0.05, 0.0, 0.1, 0.02]}
DSMI = {0.0: [1.5, 1.6, 1.7], 1.0: [0.5, 0.6, 0.4]}
TOP1 = {0.0: [97.0, 98.0, 96.0], 1.0: [10.0, 11.0, 9.0]}


def make_run(root: Path, noise: float, seed: int, *, reinit: bool = True, state: str = "finished",
             extra: dict | None = None) -> Path:
    """One hand-made run in the standard layout: run.json (``extra``: more of its keys), projections at
    epochs 0 and 5, reinit, DSE."""
    sub = Path("digits", *(["noise_100"] if noise else []), "lenet", str(seed))
    i = seed
    record = {"schema_version": 1, "kind": "run", "arch": "lenet", "dataset": "digits", "seed": seed,
              "args": {"arch": "lenet", "dataset": "digits", "seed": seed, "noise": noise, "lr": 0.01, "epochs": 5},
              "epochs": [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.0, "val_top1": TOP1[noise][i] * e / 5,
                          "eval_split": "test"} for e in range(1, 6)],
              "snapshots": [{"epoch": 0}, {"epoch": 5}], "status": {"state": state, "reason": None, "last_epoch": 5}}
    record |= extra or {}
    write_document(root / "models" / sub / "run.json", record)
    for epoch in (0, 5):
        layers = [{"name": name, "mass": MASS[noise][j] if epoch else 0.5, "mean": 0.0, "std": 1.0,
                   "sign_test_p": SIGN_P[noise][j] if epoch else 1.0} for j, name in enumerate(LAYERS)]
        write_document(root / "results" / sub / f"projections_lenet_epoch{epoch:04d}.json",
               document_header("projections", seed, epoch) | {"layers": layers, "net": {"mass": 0.5}})
        write_document(root / "results" / sub / f"dse_lenet_epoch{epoch:04d}.json",
               document_header("dse", seed, epoch) | {"settings": {"sigma": 10.0, "layer": None}, "dse": 2.0,
                                              "dsmi_y": DSMI[noise][i] if epoch else 0.1, "cse": 5.0})
    if reinit:
        top1 = 90.0
        rows = [{"key": "0", "source": "snapshot", "epoch": 0, "top1": [top1 * (1 - d) for d in DROP[noise]],
                 "relative_drop": DROP[noise]},
                {"key": "rand", "source": "rand", "epoch": None, "top1": [9.0] * 4, "relative_drop": [0.9] * 4}]
        write_document(root / "results" / sub / "reinit_lenet_epoch0005.json",
               document_header("reinit", seed, 5) | {"top1_test": top1, "layer_names": LAYERS, "rows": rows,
                                             "init_from_epoch": {r["key"]: r["top1"] for r in rows}})
    return root / "models" / sub


@pytest.fixture
def synthetic(tmp_path) -> Path:
    for noise in (0.0, 1.0):
        for seed in range(3):
            make_run(tmp_path / "fam", noise, seed)
    return tmp_path / "fam"


def test_the_table_holds_every_value_once_in_tidy_form(synthetic):
    table = schema.load_table([synthetic])
    assert {"run", "level", "dataset", "arch", "noise", "seed", "epoch", "layer", "metric", "value"} <= set(table)
    assert sorted(table.level.unique()) == ["noise=0", "noise=1"]
    assert "lr" not in table  # it does not vary
    mass = table[(table.metric == "mass") & (table.epoch == 5) & (table.layer == "conv3")]
    assert sorted(mass.value) == [0.5, 0.5, 0.5, 0.8, 0.8, 0.8]
    drops = table[(table.metric == "reinit_drop") & (table.noise == 0.0) & (table.seed == 1)]
    assert list(drops.value) == DROP[0.0] and list(drops.layer) == LAYERS
    assert set(table[table.metric == "reinit_drop_rand"].value) == {0.9}
    top1 = table[(table.metric == "test_top1") & (table.epoch == 5)].sort_values(["noise", "seed"])
    assert list(top1.value) == TOP1[0.0] + TOP1[1.0]
    net = table[(table.metric == "mass") & (table.layer == "net")]
    assert len(net) == 12 and set(net.value) == {0.5}
    dsmi = table[(table.metric == "dsmi_y") & (table.layer == "") & (table.epoch == 5)]
    assert sorted(dsmi.value) == sorted(DSMI[0.0] + DSMI[1.0])
    assert table.duplicated(["run", "epoch", "layer", "metric"]).sum() == 0


def test_combined_p_values_spearman_and_contrasts_match_scipy(synthetic):
    family = build_family([synthetic])
    assert family.levels == ["noise=0", "noise=1"] and family.layers == LAYERS and not family.notes
    bias = family_stats.bias_table(family)
    conv3 = bias[(bias.level == "noise=0") & (bias.layer == "conv3")].iloc[0]
    assert conv3.combined_p == pytest.approx(stats.combine_pvalues([1e-4] * 3, method="fisher").pvalue)
    assert (conv3.mass, conv3.biased_seeds, conv3.seeds) == (pytest.approx(0.8), 3, 3)
    conv2 = bias[(bias.level == "noise=0") & (bias.layer == "conv2")].iloc[0]
    assert conv2.biased_seeds == 0 and conv2.combined_p < 0.01  # 0.02 per seed: not biased alone, but together
    points = family_stats.bias_criticality_points(family)
    level_a = family_stats.spearman(points[points.level == "noise=0"])
    assert level_a.rho == pytest.approx(1.0) and level_a.runs == 3 and level_a.points == 12
    assert level_a.low == pytest.approx(1.0) and level_a.high == pytest.approx(1.0)  # every resample agrees
    assert family_stats.spearman(points[points.level == "noise=1"]) is None  # no bias to rank
    overall = family_stats.spearman(points)
    x = [abs(m - 0.5) for noise in (0.0, 1.0) for _ in range(3) for m in MASS[noise]]
    y = [d for noise in (0.0, 1.0) for _ in range(3) for d in DROP[noise]]
    assert overall.rho == pytest.approx(stats.spearmanr(x, y).statistic)
    assert overall.low <= overall.rho <= overall.high
    contrasts = {c.what: c for c in family_stats.contrasts(family, bias, family_stats.criticality_table(family))}
    dsmi = contrasts["DSMI(Z; Y) (bits)"]
    assert dsmi.p == pytest.approx(stats.ttest_ind(DSMI[1.0], DSMI[0.0], equal_var=False).pvalue)
    assert (dsmi.value, dsmi.baseline_value, dsmi.enough) == (pytest.approx(0.5), pytest.approx(1.6), True)
    paired = contrasts["orientation bias |mass - 0.5|"]
    assert paired.p == pytest.approx(stats.wilcoxon([0, 0, 0, 0], [0, 0.1, 0.2, 0.3]).pvalue)
    assert not paired.enough  # 4 layers


def test_the_cli_writes_the_table_figures_and_a_report_that_states_the_contrasts(synthetic, tmp_path):
    out = tmp_path / "compare"
    assert run_main(compare_runs.main, [str(synthetic), "--out", str(out)]) == 0
    csv = pd.read_csv(out / "table.csv", keep_default_na=False)
    assert len(csv) == len(schema.load_table([synthetic]))
    for stem in ("bias_heatmap", "bias_dynamics", "bias_vs_criticality", "dse_curves", "accuracy_curves",
                 "reinit_heatmaps"):
        assert (out / f"{stem}.png").stat().st_size > 5000 and (out / f"{stem}.pdf").is_file()
    report = (out / "report.md").read_text()
    assert "`conv3` in 3 of 3 seeds (mass 0.80" in report
    assert "At noise=0, 1 of 4 layers biased in every seed; at noise=1, 0 of 4." in report
    assert "`conv3` (60%)" in report  # the one critical layer
    assert "Spearman rho = 1.00" in report and "DSMI(Z; Y) (bits): 0.50 at noise=1 vs 1.60 at noise=0" in report
    assert "4 layers is too few for a claim" in report and "DSE kernel sigma: 10.0" in report
    assert "![bias_heatmap](bias_heatmap.png)" in report
    assert "fewer than 3 seeds" not in report  # three seeds per level


def test_runs_that_differ_are_one_line_each_and_the_rest_is_compared(tmp_path, capsys):
    root = tmp_path / "fam"
    for seed in range(2):
        make_run(root, 0.0, seed)
        make_run(root, 1.0, seed, reinit=seed == 0)  # the second run lacks its reinit sweep
    make_run(root, 1.0, 2, state="non_finite")
    write_document(root / "sweep.json", {"schema_version": 1, "kind": "sweep", "name": "fam", "members": [
        {"id": "noise=1.0,seed=3", "status": "failed", "error": "train: error: out of memory"}]})
    assert run_main(compare_runs.main, [str(root), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    report = (tmp_path / "out" / "report.md").read_text()
    for line in ("member noise=1.0,seed=3 of sweep fam is failed: train: error: out of memory; left out",
                 "digits/noise_100/lenet/2 ended non_finite; left out",
                 "digits/noise_100/lenet/1 has no reinit results; compared without it for criticality"):
        assert line in err and line in report
    assert "### noise=1 (2 seeds)" in report  # the finished runs are compared


def test_runs_without_their_criterion_and_levels_at_chance_are_named(tmp_path):
    from comparison.report import report_markdown

    data = {"num_classes": 10, "sizes": {"test": 450}}  # noise=1: top-1 9-11% of 450, at chance
    for noise in (0.0, 1.0):
        for seed in range(2):
            outcome = "cap reached" if (noise, seed) == (0.0, 1) else "converged"
            make_run(tmp_path / "fam", noise, seed, extra={"data": data, "stopping": {
                "criterion": {"train_loss": 0.01}, "outcome": outcome, "epoch": 5}})
    family = build_family([tmp_path / "fam"])
    assert len(family.status) == 2
    assert family.status[0].startswith("1 run(s) did not reach training cross-entropy <= 0.01 within 5 epochs")
    assert "digits/lenet/1" in family.status[0]
    assert family.status[1].startswith("the noise=1 runs are at chance on the test set, as models fitting random "
                                       "labels are")
    assert {item.name.split("/")[-1] for item in family.at_chance} == {"0", "1"}
    bias, criticality = family_stats.bias_table(family), family_stats.criticality_table(family)
    report = report_markdown(family, bias=bias, criticality=criticality, correlations={}, contrasts=[], figures=[],
                             report_dir=tmp_path)
    assert f"- {family.status[0]}" in report and f"- {family.status[1]}" in report
    noisy = report[report.index("### noise=1"):]
    assert "(2 of 2 runs at chance on the test set, as models fitting random labels are" in noisy
    clean = report[report.index("### noise=0"):report.index("### noise=1")]
    assert "at chance" not in clean and "`conv3` (60%)." in clean


def test_reference_tool_files_are_compared_by_their_folders(tmp_path):
    for noise_folder, seed, mass in (("noise_20", "1", 0.9), ("noise_20", "2", 0.8), ("pixel_shuffle", "1", 0.5)):
        folder = tmp_path / "ref" / "mnist" / noise_folder / "lenet" / seed
        negative = int(20 * mass)
        document = {"0": {"0": {"projections": [-1.0] * negative + [1.0] * (20 - negative), "mass": mass,
                                "mean": 0.0}}, "net": {"projections": [0.0], "mass": 1.0, "mean": 0.0},
                    "arch": "lenet", "dataset": "mnist", "seed": seed, "epoch": "4"}
        write_document(folder / "lenet_3.json", document)
        write_document(folder / "reinit_lenet_3.json", {"init_from_epoch": {"0": [50.0], "rand": [10.0]}, "arch": "lenet",
                                                "dataset": "mnist", "top1_test": 100.0, "seed": seed, "epoch": "4"})
    table = schema.load_table([tmp_path / "ref"])
    assert sorted(table.level.unique()) == ["noise=0.2", "noise=pixel shuffle"]
    mass = table[(table.metric == "mass") & (table.layer == "stage 0.0")].sort_values(["noise", "seed"])
    assert list(mass.value) == [0.5, 0.9, 0.8] and list(mass.epoch) == [4, 4, 4]
    assert set(table[table.metric == "reinit_drop"].value) == {0.5}
    p = table[(table.metric == "sign_test_p") & (table.seed == 1) & (table.noise == 0.2)].value.iloc[0]
    assert p == pytest.approx(stats.binomtest(18, 20, 0.5).pvalue)


@pytest.mark.parametrize("argv, message", [
    (["{empty}"], "no finished runs found"),
    (["{fam}", "--by", "lr"], "--by lr: does not vary across the 2 runs"),
    (["{missing}"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    make_run(tmp_path / "fam", 0.0, 0)
    make_run(tmp_path / "fam", 1.0, 0)
    names = {"empty": tmp_path / "empty", "fam": tmp_path / "fam", "missing": tmp_path / "missing"}
    argv = [word.format(**names) for word in argv]
    assert run_main(compare_runs.main, [*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_real_tiny_sweep_end_to_end(grid_2x2, tmp_path):
    root, code = grid_2x2
    assert code == 0
    out = tmp_path / "compare"
    assert run_main(compare_runs.main, [str(root / "grid"), "--out", str(out)]) == 0
    table = schema.load_table([root / "grid"])
    assert sorted(table.level.unique()) == ["noise=0", "noise=pixel shuffle"] and table.run.nunique() == 4
    assert {"mass", "reinit_drop", "reinit_drop_rand", "dse", "dsmi_y", "test_top1", "train_loss"} <= set(table.metric)
    layers = table[table.metric == "mass"].layer.unique()
    assert list(layers[:2]) == ["features.0", "features.2"]
    assert len(pd.read_csv(out / "table.csv")) == len(table)
    report = (out / "report.md").read_text()
    assert report.count("### noise=") >= 3 and "With fewer than 3 seeds" in report
    assert np.isfinite(table.value).all()


def test_a_level_without_projections_is_reported_not_a_crash(tmp_path):
    root = tmp_path / "fam"
    for seed in range(2):
        make_run(root, 0.0, seed)
        make_run(root, 1.0, seed)
    for path in (root / "results" / "digits" / "noise_100").rglob("projections_*.json"):
        path.unlink()
    assert run_main(compare_runs.main, [str(root), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "### noise=1 (2 seeds)" in report and "none (no projection results); no layer analysed" in report
    assert "has no projections results; compared without it for bias" in report


def test_the_report_names_the_layers_weightwatcher_flags_per_level():
    from types import SimpleNamespace

    from comparison.report import weightwatcher_sentence

    rows = []
    for run, alphas, traps in (("a", (1.5, 4.0, 7.0), (0, 2, 0)), ("b", (3.0, 4.0, 8.0), (0, 1, 0))):
        for epoch, scale in ((0, 10.0), (5, 1.0)):  # only the last epoch counts
            for layer, alpha, trap in zip(("conv0", "conv1", "fc"), alphas, traps):
                rows += [{"level": "noise=0", "run": run, "epoch": epoch, "layer": layer, "metric": "alpha",
                          "value": alpha * scale},
                         {"level": "noise=0", "run": run, "epoch": epoch, "layer": layer, "metric": "num_traps",
                          "value": trap}]
    family = SimpleNamespace(table=pd.DataFrame(rows))
    assert weightwatcher_sentence(family, "noise=0") == (
        "- **WeightWatcher's flags** at the last snapshot: over-trained (alpha < 2): `conv0` in 1 of 2 seeds "
        "(mean 2.25); under-trained (alpha > 6): `fc` in 2 of 2 seeds (mean 7.50); correlation traps: `conv1` in "
        "2 of 2 seeds (mean 1.50).")
    assert weightwatcher_sentence(family, "noise=1") is None
