"""The figures of the seeds' diagnostics: HSIC(T, X) and HSIC(T, Y) against epoch (seed 002), alpha
against rand_distance per layer and the ESD with WeightWatcher's overlays (seed 003), drawn from the
real result files of a short run."""
from __future__ import annotations

import compute_dse
import compute_spectra
import plot_results
import schema
from plotting.spectra import spectra_alpha_rand_distance
from tests.checks import assert_real_png
from utils.cli import run_main


def test_hsic_against_epoch_and_alpha_against_rand_distance(digits_run, tmp_path):
    results = tmp_path / "results"
    assert run_main(compute_dse.main, ["--load-from", str(digits_run), "--hsic", "--dse-samples", "60",
                                       "--results", str(results)]) == 0
    assert run_main(compute_spectra.main, ["--load-from", str(digits_run), "--results", str(results)]) == 0
    run = results / "digits/lenet/0"
    assert plot_results.main([str(run), "--plots", str(tmp_path / "plots"), "--figures", "hsic_epochs",
                              "spectra_alpha", "--formats", "png"]) == 0
    for name in ("hsic_epochs.png", "spectra_alpha_rand_distance.png"):
        assert_real_png(tmp_path / "plots" / name)
    ((stem, figure),) = spectra_alpha_rand_distance(schema.Run.of_documents(run, schema.collect([run])["."]), {})
    points = figure.axes[0].collections
    last = schema.load(run / "spectra_lenet_epoch0003.json")
    expected = [(layer["alpha"], layer["rand_distance"]) for layer in last["layers"]
                if layer.get("alpha") is not None and layer.get("rand_distance") is not None]
    assert [tuple(map(float, c.get_offsets()[0])) for c in points] == expected


def test_the_esd_overlays_the_randomized_esd_the_bulk_edge_and_the_traps(digits_run, tmp_path):
    results = tmp_path / "results"
    assert run_main(compute_spectra.main, ["--load-from", str(digits_run / "lenet_epoch0003.pt"), "--no-init",
                                           "--results", str(results)]) == 0
    path = results / "digits/lenet/0/spectra_lenet_epoch0003.json"
    document = schema.load(path)
    layer = max(document["layers"], key=lambda record: record["N"] * record["M"] * record["n_matrices"])
    top = max(layer["eigenvalues"])
    layer |= {"rand_eigenvalues": [value / 2 for value in layer["eigenvalues"]], "bulk_max": top / 3,
              "num_spikes": 2, "num_traps": 1, "rand_bulk_max": top / 4}
    from plotting.spectra import spectra_esd

    ((stem, figure),) = spectra_esd(schema.Run.of_documents(".", {"spectra": [document]}), {})
    labels = [text.get_text() for text in figure.axes[-1].get_legend().get_texts()]
    assert "randomized ESD" in labels and "MP bulk edge (2 spikes)" in labels
    assert "1 correlation traps beyond" in labels
