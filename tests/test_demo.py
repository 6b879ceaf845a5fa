"""The demo pipeline end to end on a shortened schedule, and plot_results on its own."""
from __future__ import annotations

import json

import matplotlib.image
import pytest

import demo
import plot_results
from utils.cli import run_main


def _assert_real_png(path):
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300, path
    assert pixels[..., :3].std() > 0.05, f"{path} looks blank"


@pytest.mark.slow
def test_demo_produces_every_file(tmp_path):
    assert demo.main(["--output", str(tmp_path), "--epochs", "3", "--snapshot-all-until", "1",
                      "--snapshot-every", "3"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "Biased layers" in report or "No layer is significantly biased" in report
    pngs = sorted((tmp_path / "plots").rglob("*.png"))
    names = {p.stem for p in pngs}
    assert {"training_curves", "projection_heatmaps", "projection_histograms"} <= names
    for png in pngs:
        _assert_real_png(png)
        assert png.with_suffix(".pdf").is_file()
        assert png.name in report


def test_missing_data_is_skipped_with_a_notice(tmp_path, digits_run, capsys):
    out = tmp_path / "plots"
    assert plot_results.main([str(digits_run), "--plots", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipped projection_heatmaps" in err and "no 'projections' results" in err
    _assert_real_png(out / "training_curves.png")


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
    _assert_real_png(out / "projection_heatmaps.png")
    _assert_real_png(out / "projection_histograms.png")


def test_no_results_is_a_user_error(tmp_path, capsys):
    assert run_main(plot_results.main, [str(tmp_path)]) == 2
    assert "no result JSON" in capsys.readouterr().err
