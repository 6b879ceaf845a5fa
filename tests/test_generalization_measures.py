"""The field's generalization measures (norms, margin, sharpness, optimization): analytic cases for
the math in ``metrics/``, then the registered analyses through compute_measures.py and the zoo."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from metrics import norms, sharpness
from metrics.margin import margin_percentile, output_margins

# -- norms ---------------------------------------------------------------------------------------------


def test_path_norm_of_a_two_layer_linear_net_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    first, second = net[0].weight.detach().double(), net[2].weight.detach().double()
    by_paths = sum(float(second[k, j] ** 2 * first[j, i] ** 2) for k in range(2) for j in range(4) for i in range(3))
    assert norms.path_norm(net, (3,)) == pytest.approx(by_paths, rel=1e-9)


def test_the_other_norms_by_hand():
    first, second = torch.diag(torch.tensor([3.0, 4.0])), torch.tensor([[1.0, 2.0], [2.0, 4.0]])  # rank 1
    fro, spec = norms.frobenius_norms([first, second]), norms.spectral_norms([first, second])
    assert fro == pytest.approx([5.0, 5.0]) and spec == pytest.approx([4.0, 5.0])
    assert norms.log_product(fro) == pytest.approx(2 * math.log(25))
    assert norms.log_sum(spec) == pytest.approx(math.log(2) + (math.log(16) + math.log(25)) / 2)
    assert norms.distance_from_init([first, second], [torch.eye(2), second]) == pytest.approx(4 + 9)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3, 5))
    assert norms.count_parameters(net) == 2 * 3 * 9 + 3 + 3 * 5 + 5
    assert [tuple(w.shape) for _, w in norms.layer_weights(net)] == [(3, 18), (5, 3)]


def test_folding_batch_norms_keeps_the_function():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 9, 3),
                        nn.BatchNorm1d(3))
    for module in (net[1], net[5]):
        module.running_mean.uniform_(-1, 1)
        module.running_var.uniform_(0.5, 2)
        module.weight.data.uniform_(0.5, 2)
    net.eval()
    folded = norms.fold_batchnorm(net)
    x = torch.randn(5, 2, 5, 5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(folded(x), net(x), rtol=1e-5, atol=1e-5)


# -- margin --------------------------------------------------------------------------------------------
def test_the_margin_of_hand_made_logits():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 5.0], [1.0, 1.0, 0.0]])
    margins = output_margins(logits, torch.tensor([0, 1, 0]))
    assert margins.tolist() == [2.0, -3.0, 0.0]
    assert margin_percentile(margins) == -3.0  # fewer than 10 samples: the smallest
    assert margin_percentile(torch.arange(1.0, 21.0)) == 2.0  # the 2nd smallest of 20


# -- flatness and sharpness ------------------------------------------------------------------------------
CURVATURE = torch.linspace(0.5, 2.0, 40, dtype=torch.float64)


def quadratic(centre: torch.Tensor):
    """``L(w) = 1/2 sum_i a_i (w_i - c_i)^2`` of a stack ``(S, P)``: the expected increase under
    ``u_i ~ N(0, v_i)`` at ``w = c`` is ``1/2 sum_i a_i v_i``."""
    return lambda stack: 0.5 * ((stack - centre) ** 2 * CURVATURE).sum(dim=1)


def test_the_pacbayes_sigma_of_a_quadratic_loss():
    centre = torch.zeros(40, dtype=torch.float64)
    found = sharpness.pacbayes_sigma(quadratic(centre), centre, samples=2000, seed=1)
    exact = math.sqrt(2 * sharpness.TOLERANCE / float(CURVATURE.sum()))
    assert found.value == pytest.approx(exact, rel=0.04)
    assert found.flatness == pytest.approx(1 / found.value**2)
    assert abs(found.increase - sharpness.TOLERANCE) <= sharpness.PRECISION


def test_a_perturbation_at_the_found_sigma_raises_the_loss_by_the_tolerance():
    """Fresh draws (another seed) at the sigma found: the mean increase is the tolerance, within the
    Monte Carlo error (4 standard errors) and the search's precision."""
    centre = torch.zeros(40, dtype=torch.float64)
    loss = quadratic(centre)
    found = sharpness.pacbayes_sigma(loss, centre, samples=200, seed=0)
    draws = torch.randn((4000, 40), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    increases = loss(centre + found.value * draws)
    error = float(increases.std()) / math.sqrt(len(increases))
    assert abs(float(increases.mean()) - sharpness.TOLERANCE) <= 4 * error + sharpness.PRECISION


def test_the_magnitude_aware_sigma_of_a_quadratic_loss():
    centre = torch.linspace(-1.0, 1.0, 40, dtype=torch.float64)  # the weights: the minimum, not zero
    eps = sharpness.MAGNITUDE_EPS
    found = sharpness.pacbayes_sigma(quadratic(centre), centre, samples=2000, seed=1, magnitude_eps=eps)
    exact = math.sqrt((2 * sharpness.TOLERANCE - float((CURVATURE * eps**2).sum()))
                      / float((CURVATURE * centre**2).sum()))
    assert found.value == pytest.approx(exact, rel=0.04)


def test_worst_case_sharpness_of_a_linear_loss():
    """``L(w) = g.w``: the worst case over the box is ``sum |g_i| alpha (|w_i| + 1)``, at a corner."""
    gradient = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    weights = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    loss = lambda w: (gradient * w).sum()  # noqa: E731
    reach = float((gradient.abs() * (weights.abs() + 1)).sum())
    base = float(loss(weights))
    value, measured_base = sharpness.keskar_sharpness(loss, weights, radius=0.01, steps=3)
    assert measured_base == pytest.approx(base)
    assert value == pytest.approx(100 * 0.01 * reach / (1 + base))
    found = sharpness.sharpness_radius(loss, weights, tolerance=0.1)
    assert abs(found.increase - 0.1) <= sharpness.PRECISION
    assert found.value == pytest.approx(0.1 / reach, rel=0.1)


def test_the_batched_loss_equals_perturbing_a_copy():
    """The vmapped evaluation of a stack of parameter vectors is the loop it replaces."""
    import copy

    import torch.nn.functional as F

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 4)).eval()
    inputs, labels = torch.randn(10, 1, 6, 6), torch.randint(0, 4, (10,))
    _, weights = sharpness.flat_parameters(net)
    stack = weights + 0.1 * torch.randn(3, weights.numel())
    batched = sharpness.stacked_loss(net, inputs, labels, batch_size=4, sample_chunk=2)(stack)
    looped = []
    for row in stack:
        copied = copy.deepcopy(net)
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(row, copied.parameters())
            looped.append(float(F.cross_entropy(copied(inputs), labels)))
    assert batched.tolist() == pytest.approx(looped, rel=1e-5)


# -- optimization ----------------------------------------------------------------------------------------
def test_epochs_and_steps_to_fit_from_a_hand_made_run_record():
    from analyses.optimization import fitting_speed

    losses = [2.0, 0.5, 0.09, 0.02, 0.009]
    record = {"args": {"batch_size": 128}, "data": {"sizes": {"train": 1000}},
              "epochs": [{"epoch": e, "train_loss": 9.0, "train_eval_loss": loss} for e, loss in enumerate(losses)]}
    found = fitting_speed(record, fit_loss=0.1, converged_loss=0.01)
    assert found["measures"] == {"epochs_to_fit": 2, "steps_to_fit": 2 * 8, "epochs_fit_to_converged": 2}
    assert found["loss_key"] == "train_eval_loss" and found["notes"] == []
    for row in record["epochs"]:
        row["train_loss"] = row.pop("train_eval_loss")  # an older run: the epochs' running loss stands in
    fallback = fitting_speed(record, fit_loss=0.1, converged_loss=0.001)
    assert fallback["measures"] == {"epochs_to_fit": 2, "steps_to_fit": 16, "epochs_fit_to_converged": None}
    assert fallback["loss_key"] == "train_loss" and "no train_eval_loss" in fallback["notes"][0]


# -- the analyses ----------------------------------------------------------------------------------------
SMALL = ["--margin-samples", "200", "--sharpness-samples", "32", "--mc-samples", "2", "--ascent-steps", "1"]


@pytest.fixture(scope="module")
def measured(digits_run, tmp_path_factory):
    """compute_measures.py on the latest snapshot of the shared digits run: ``(results root, exit code)``."""
    import compute_measures

    results = tmp_path_factory.mktemp("measures") / "results"
    code = compute_measures.main(["--load-from", str(digits_run), "--latest", "--results", str(results), *SMALL])
    return results, code


@pytest.mark.slow
def test_the_cli_writes_every_measure_of_the_latest_snapshot(measured):
    import schema
    from analyses.registry import declaration

    results, code = measured
    assert code == 0
    folder = results / "digits/lenet/0"
    for name in ("norms", "margin", "sharpness", "optimization"):
        document = schema.load(folder / f"{name}_lenet_epoch0003.json")
        assert document["kind"] == name and document["epoch"] == 3
        assert set(document["measures"]) == set(declaration(name).measures)
    norms_document = schema.load(folder / "norms_lenet_epoch0003.json")
    assert all(value is not None and value > 0 for value in norms_document["measures"].values())
    assert norms_document["init_from"].endswith("lenet_epoch0000.pt")
    sharp = schema.load(folder / "sharpness_lenet_epoch0003.json")
    assert sharp["training_subset"] == {"split": "train", "size": 32, "of": 1347, "seed": 0}
    assert sharp["measures"]["pacbayes_flatness"] > 0 and sharp["settings"]["mc_samples"] == 2
    margin = schema.load(folder / "margin_lenet_epoch0003.json")
    assert margin["training_subset"]["size"] == 200


@pytest.mark.slow
def test_the_measures_reach_the_table_with_their_declared_signs(measured):
    import schema
    from comparison.measures import KNOWN, expected_sign

    results, _ = measured
    table = schema.load_table([results])
    found = set(table[table.epoch == 3].metric)
    assert {"path_norm", "margin", "pacbayes_flatness", "sharpness", "log_prod_spec_over_margin"} <= found
    assert KNOWN["path_norm"].direction == -1 and expected_sign("margin", "gen_gap") == -1
    assert expected_sign("pacbayes_mag_flatness", "test_top1") == -1


def test_the_cli_s_data_free_measures(digits_run, tmp_path):
    """Fast tier: norms and optimization (no training data read) of the shared run's latest snapshot."""
    import compute_measures
    import schema

    assert compute_measures.main(["--load-from", str(digits_run), "--latest", "--measures", "norms", "optimization",
                                  "--results", str(tmp_path)]) == 0
    folder = tmp_path / "digits/lenet/0"
    assert sorted(path.name for path in folder.glob("*.json")) == ["norms_lenet_epoch0003.json",
                                                                     "optimization_lenet_epoch0003.json"]
    document = schema.load(folder / "norms_lenet_epoch0003.json")
    assert document["init_from"] == str(digits_run / "lenet_epoch0000.pt") and document["measures"]["fro_dist"] > 0
    optimization = schema.load(folder / "optimization_lenet_epoch0003.json")
    assert optimization["run_json"] == str(digits_run / "run.json")
    assert optimization["loss_key"] in ("train_eval_loss", "train_loss") and optimization["steps_per_epoch"] > 0


def test_bad_settings_are_one_line(tmp_path, capsys):
    import compute_measures
    from utils.cli import run_main

    code = run_main(compute_measures.main, ["--load-from", str(tmp_path / "run"), "--mc-samples", "0",
                                            "--results", str(tmp_path / "r")])
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: --mc-samples 0 must be at least 1"
    assert not (tmp_path / "r").exists()


def test_a_zoo_model_without_training_data_gets_its_data_free_measures(tmp_path):
    import schema
    from analyses import zoo
    from models import get_model

    torch.manual_seed(0)
    weights = tmp_path / "tiny.pt"
    torch.save(get_model("lenet", 10, 1, image_size=32).state_dict(), weights)
    (entry,) = zoo.parse_entries([], [f"lenet={weights}"], dataset="digits")
    found = zoo.analyse(zoo.ZooTask(entry, str(tmp_path / "zoo"), ("norms", "margin", "sharpness")))
    assert [note for note in found["notes"] if "training data" in note] == [
        f"zoo model tiny: tiny: no {name} measures: {zoo_missing()}; the norms are data-free"
        for name in ("margin", "sharpness")]
    document = schema.load(entry.results(tmp_path / "zoo") / "norms_tiny.json")
    assert document["measures"]["path_norm"] > 0 and document["measures"]["fro_dist"] is None
    assert schema.load(entry.results(tmp_path / "zoo") / "margin_tiny.json")["measures"]["margin"] is None


def zoo_missing() -> str:
    from analyses.field import ZOO_MISSING

    return ZOO_MISSING
