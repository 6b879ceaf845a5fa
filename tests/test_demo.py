"""The demo pipeline end to end on a shortened schedule, and plot_results on its own."""
from __future__ import annotations

import json

import pytest

import demo
import plot_results
import schema
from plotting import headline
from tests.checks import assert_real_png
from utils.cli import run_main


@pytest.mark.slow
def test_demo_produces_every_file(tmp_path):
    assert demo.main(["--output", str(tmp_path), "--epochs", "3", "--snapshot-all-until", "1",
                      "--snapshot-every", "3"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "Biased layers" in report or "No layer is significantly biased" in report
    pngs = sorted((tmp_path / "plots").rglob("*.png"))
    names = {p.stem for p in pngs}
    assert {"training_curves", "projection_heatmaps", "projection_histograms", "dse_curves",
            "headline_bias_vs_reinit", "reinit_lenet_epoch0003", "hsic_plane", "hsic_epochs", "spectra_heatmaps",
            "spectra_alpha_rand_distance"} <= names
    for statement in ("Critical layers", "Spearman correlation", "Diffusion spectral entropy", "Weight spectra",
                      "DSMI(Z; X) with the inputs' clusters", "WeightWatcher's flags"):
        assert statement in report
    # The flags are those of the last spectra document: each warned layer is named with its alpha.
    last = schema.read_json(next((tmp_path / "results").rglob("spectra_lenet_epoch0003.json")))
    flags = report.split("WeightWatcher's flags")[1].split("\n")[0]
    for layer in last["layers"]:
        named = f"`{layer['name']}` (alpha {layer['alpha']:.2f})" in flags if layer["alpha"] is not None else False
        assert named == bool(layer["warning"]), layer["name"]
    for png in pngs:
        assert_real_png(png)
        assert png.with_suffix(".pdf").is_file()
        assert png.name in report


def test_missing_data_is_skipped_with_a_notice(tmp_path, digits_run, capsys):
    out = tmp_path / "plots"
    assert plot_results.main([str(digits_run), "--plots", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipped projection_heatmaps" in err and "no 'projections' results" in err
    assert_real_png(out / "training_curves.png")


def test_reference_projection_json_is_plotted(tmp_path):
    """The reference tool's files: stage/block nesting, string epochs, no 'kind'."""
    for epoch, shift in (("0", 0.0), ("5", -0.2)):
        doc = {"arch": "lenet", "dataset": "mnist", "seed": "1", "epoch": epoch,
               "net": {"projections": [0.1, -0.1], "mean": 0.0, "mass": 0.5}}
        for stage in range(2):
            projections = [shift + 0.01 * i - 0.05 for i in range(12)]
            doc[str(stage)] = {"0": {"projections": projections, "mean": sum(projections) / 12,
                                     "mass": sum(p <= 0 for p in projections) / 12}}
        (tmp_path / f"lenet_{epoch}.json").write_text(json.dumps(doc))
    out = tmp_path / "plots"
    assert plot_results.main([str(tmp_path), "--plots", str(out)]) == 0
    assert_real_png(out / "projection_heatmaps.png")
    assert_real_png(out / "projection_histograms.png")


def test_no_results_is_a_user_error(tmp_path, capsys):
    assert run_main(plot_results.main, [str(tmp_path)]) == 2
    assert "no result JSON" in capsys.readouterr().err


def _projection_doc(epoch: int, masses: list[float]) -> dict:
    layers = []
    for i, mass in enumerate(masses):
        negative = round(20 * mass)
        projections = [-1.0] * negative + [1.0] * (20 - negative)
        layers.append({"name": f"conv{i}", "mass": mass, "mean": sum(projections) / 20, "projections": projections})
    return {"kind": "projections", "arch": "lenet", "dataset": "digits", "seed": 0, "epoch": epoch, "layers": layers}


def test_headline_pairs_bias_with_the_drop_from_epoch_0(tmp_path):
    """Monotone bias and drop give Spearman 1; the figure names it; the reinit row of epoch 0 is used."""
    masses = [0.5, 0.6, 0.75, 0.9, 1.0]
    top1 = 90.0
    after_reset = [89.0, 80.0, 60.0, 40.0, 10.0]
    reinit = {"kind": "reinit", "arch": "lenet", "dataset": "digits", "seed": 0, "epoch": 7, "top1_test": top1,
              "layer_names": [f"conv{i}" for i in range(5)],
              "init_from_epoch": {"0": after_reset, "3": [top1] * 5, "rand": [10.0] * 5}}
    rows = headline.bias_and_criticality(_projection_doc(7, masses), reinit)
    assert [r["drop"] for r in rows] == pytest.approx([(top1 - a) / top1 for a in after_reset])
    rho, p_value, count = headline.spearman(rows)
    assert rho == pytest.approx(1.0) and count == 5 and p_value < 0.05
    (tmp_path / "projections_lenet_epoch0007.json").write_text(json.dumps(_projection_doc(7, masses)))
    (tmp_path / "projections_lenet_epoch0000.json").write_text(json.dumps(_projection_doc(0, [0.5] * 5)))
    (tmp_path / "reinit_lenet_epoch0007.json").write_text(json.dumps(reinit))
    out = tmp_path / "plots"
    assert plot_results.main([str(tmp_path), "--plots", str(out)]) == 0
    assert_real_png(out / "headline_bias_vs_reinit.png")


def test_headline_reads_the_reference_files_by_position():
    """The reference's reinit JSON has no layer names: its conv columns follow forward order."""
    projections = {"arch": "lenet", "dataset": "mnist", "seed": "1", "epoch": "9"}
    for stage, mass in enumerate((0.5, 0.8, 1.0)):
        projections[str(stage)] = {"0": {"mass": mass, "projections": [-1.0, 1.0]}}
    reinit = {"init_from_epoch": {"0": [95.0, 50.0, 20.0]}, "top1_test": 100.0, "epoch": "9"}
    rows = headline.bias_and_criticality(schema.normalize(projections), schema.normalize(reinit))
    assert [r["layer"] for r in rows] == ["stage 0.0", "stage 1.0", "stage 2.0"]
    assert [r["drop"] for r in rows] == pytest.approx([0.05, 0.5, 0.8])


def test_dse_curves_from_a_summary_alone(tmp_path):
    summary = {"kind": "dse_summary", "arch": "lenet", "dataset": "digits", "seed": 0, "epoch": None,
               "settings": {"sigma": 10.0, "t": 1}, "layer": None, "log2_size": 7.0,
               "epochs": [0, 1, 5], "dse": [0.1, 1.0, 3.0], "dsmi_y": [0.0, 0.5, 1.8], "cse": [7.0, 6.9, 6.5]}
    (tmp_path / "dse_summary.json").write_text(json.dumps(summary))
    out = tmp_path / "plots"
    assert plot_results.main([str(tmp_path), "--plots", str(out)]) == 0
    assert_real_png(out / "dse_curves.png")
    assert not (out / "headline_bias_vs_reinit.png").exists()
