"""``--dse-sigma auto``: the kernel bandwidth is the median pairwise distance of the probe's
representation, recorded in every result; 10 stays the default."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

import compute_dse
import datasets
from analyses.dse import AUTO, DSESettings
from analyses.loading import load_snapshot_model
from metrics.dse import diffusion_spectral_entropy
from schema import read_json
from tests.checks import probe_inputs
from training.arguments import get_args_parser as train_parser
from utils.cli import run_main


def test_auto_sigma_is_the_median_distance_of_the_representation_and_is_recorded(digits_run, tmp_path):
    snapshot = digits_run / "lenet_epoch0003.pt"
    assert run_main(compute_dse.main, ["--load-from", str(snapshot), "--results", str(tmp_path), "--sigma", "auto",
                                       "--dse-samples", "120"]) == 0
    document = read_json(tmp_path / "digits" / "lenet" / "0" / "dse_lenet_epoch0003.json")
    assert document["settings"]["sigma"] == AUTO
    data = datasets.build_data("digits")
    positions = np.sort(np.random.default_rng(0).choice(len(data.test), size=120, replace=False))
    inputs, _ = probe_inputs(data.test, positions)
    model = load_snapshot_model(snapshot).model.eval()
    with torch.no_grad():
        features = model.classifier[:6](torch.flatten(model.avgpool(model.features(inputs)), 1)).double()
    distances = pdist(features.numpy())
    assert document["sigma_used"] == pytest.approx(float(np.median(distances[distances > 0])), rel=1e-9)
    assert document["dse"] == pytest.approx(diffusion_spectral_entropy(features, sigma=document["sigma_used"]),
                                            abs=1e-9)
    summary = read_json(tmp_path / "digits" / "lenet" / "0" / "dse_summary.json")
    assert summary["settings"]["sigma"] == AUTO and summary["sigma_used"] == [document["sigma_used"]]


def test_the_default_stays_10_and_train_py_takes_auto():
    parser = train_parser()
    assert DSESettings.from_train_args(parser.parse_args([])).sigma == 10.0
    settings = DSESettings.from_train_args(parser.parse_args(["--dse-sigma", "auto"]))
    assert settings.sigma == AUTO and settings.record()["sigma"] == AUTO
    settings.validate()
    with pytest.raises(SystemExit):
        parser.parse_args(["--dse-sigma", "wide"])
