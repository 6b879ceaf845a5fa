"""The field's generalization measures (norms, margin, sharpness, optimization): analytic cases for
the math in ``metrics/``, then the registered analyses through compute_measures.py and the zoo."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from metrics import conv_norms, flatness, norms, sharpness
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
    assert norms.squared_sum(fro) == pytest.approx(50) and norms.ratio_sum(fro, spec) == pytest.approx(25 / 16 + 1)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3, 5))
    assert norms.count_weights(net) == 2 * 3 * 9 + 3 * 5  # what the reference counts: no biases, no BN
    assert [tuple(w.shape) for _, w in norms.layer_weights(net)] == [(3, 18), (5, 3)]


@pytest.mark.parametrize(("channels", "out", "kernel", "size", "groups", "dilation"),
                         [(2, 3, 3, 5, 1, 1), (4, 4, 3, 4, 2, 1), (2, 3, 3, 2, 1, 1), (3, 3, 3, 6, 1, 2),
                          (2, 2, 5, 3, 1, 1)])
def test_the_exact_convolution_norm_is_the_dense_operator_s(channels, out, kernel, size, groups, dilation):
    """Sedghi et al.'s FFT norm equals the largest singular value of the circular convolution written
    as a dense matrix on a tiny input (grouped, dilated, and a kernel larger than the input included)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(channels, out, kernel, padding=(kernel // 2) * dilation, padding_mode="circular", bias=False,
                     groups=groups, dilation=dilation).double()
    basis = torch.eye(channels * size * size, dtype=torch.float64).reshape(-1, channels, size, size)
    with torch.no_grad():
        dense = conv(basis).reshape(channels * size * size, -1).T
    exact = float(torch.linalg.matrix_norm(dense, ord=2))
    found = conv_norms.conv_operator_norm(conv.weight, (size, size), groups=groups, dilation=(dilation, dilation))
    assert found == pytest.approx(exact, rel=1e-9)
    reshaped = norms.spectral_norms([conv.weight.detach().reshape(out, -1)])[0]
    assert found != pytest.approx(reshaped, rel=1e-3)  # the two norms are different quantities


# -- margin --------------------------------------------------------------------------------------------
def test_the_margin_of_hand_made_logits():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 5.0], [1.0, 1.0, 0.0]])
    margins = output_margins(logits, torch.tensor([0, 1, 0]))
    assert margins.tolist() == [2.0, -3.0, 0.0]
    assert margin_percentile(margins) == -3.0  # fewer than 10 samples: the smallest
    assert margin_percentile(torch.arange(1.0, 21.0)) == 2.0  # the 2nd smallest of 20


# -- flatness and sharpness ------------------------------------------------------------------------------
def test_the_reference_s_bisection_by_hand():
    """rise(x) = x on [0, 2]: midpoints 1, 0.5, 0.25, 0.125, 0.0625 (below), 0.09375 (within 0.1 +- 0.01)."""
    found = flatness.bisect(lambda x, last: flatness.Trial(x, flatness.outcome(x), x, (x, x)))
    assert [trial.value for trial in found.trials] == [1.0, 0.5, 0.25, 0.125, 0.0625, 0.09375]
    assert found.value == 0.09375 and found.reached and found.bracket == (0.0625, 0.125)
    assert found.flatness == pytest.approx(1 / 0.09375**2)
    never = flatness.bisect(lambda x, last: flatness.Trial(x, flatness.BELOW, 0.0, (0.0, 0.0)), depth=4)
    assert never.value == 1.875 and not never.reached  # the reference returns the last midpoint


def power_law_judge(scale: float, power: float, *, early: bool, offset: float = 0.0):
    """A judge whose rise is ``0.1 ((x + offset) / scale)^power``; ``early``: a try above the window is decided
    before the end (no rise, an estimate), as the PAC-Bayes judge decides them."""
    def judge(x: float, last: bool) -> flatness.Trial:
        rise = 0.1 * ((x + offset) / scale) ** power
        decided = flatness.outcome(rise)
        if early and decided == flatness.ABOVE and not last:
            return flatness.Trial(x, decided, None, (0.11, 1.0), 0.2, estimate=rise)
        return flatness.Trial(x, decided, rise, (rise, rise))
    return judge


@pytest.mark.parametrize("scale, power", [(0.04, 3.0), (0.3, 2.0), (0.0007, 1.5), (1.3, 4.0)])
def test_the_search_lands_in_the_window_in_fewer_tries_than_the_bisection(scale, power):
    """The reference's bracket and stopping rule, with power-law interpolation once a try fell below the
    window: a value whose rise is within 0.1 +- 0.01, in no more tries than bisection, at most 2 of them
    measured near the window after the first below it."""
    for early in (False, True):
        ours = flatness.search(power_law_judge(scale, power, early=early))
        reference = flatness.bisect(power_law_judge(scale, power, early=early))
        assert ours.reached and abs(0.1 * (ours.value / scale) ** power - 0.1) < 0.01
        assert len(ours.trials) <= len(reference.trials)
        first_below = next(i for i, trial in enumerate(ours.trials) if trial.outcome == flatness.BELOW)
        assert len(ours.trials) - first_below <= 3
        assert all(trial.value == 2.0 / 2 ** (i + 1) for i, trial in enumerate(ours.trials[:first_below + 1]))


def test_a_search_descending_by_four_keeps_its_depth_for_the_window():
    """A worst-case box is about 1e-3 wide: halving from 1 takes 10 tries above the window, dividing by 4
    takes 5 (1, 0.25, ..., 0.00098), leaving the rest of the 15 for the window."""
    halving = flatness.search(power_law_judge(0.0007, 1.5, early=True))
    quartering = flatness.search(power_law_judge(0.0007, 1.5, early=True), descent=4.0)
    assert quartering.reached and abs(0.1 * (quartering.value / 0.0007) ** 1.5 - 0.1) < 0.01
    above = [trial.value for trial in quartering.trials if trial.outcome == flatness.ABOVE]
    assert above[:6] == [1.0, 0.25, 0.0625, 0.015625, 0.00390625, 0.0009765625]
    assert len(quartering.trials) < len(halving.trials)


def test_a_search_whose_smallest_perturbation_already_rises_too_far_is_undefined():
    never = flatness.search(power_law_judge(0.04, 2.0, early=True, offset=1.0), lower_first=True)  # 0 rises too far
    assert never.never_below and not never.reached and len(never.trials) == 1 and never.value == 0.0
    found = flatness.search(power_law_judge(0.04, 2.0, early=True, offset=0.01), lower_first=True)  # below at 0
    assert found.reached and not found.never_below and found.trials[0].value == 0.0


def test_serfling_s_radius_by_hand():
    assert flatness.serfling_radius(100, 1000, 1e-4) == pytest.approx(math.sqrt(math.log(2e4) * 0.901 / 200))
    assert flatness.serfling_radius(1000, 1000, 1e-4) == 0.0
    assert flatness.serfling_radius(10, 20, 0.1) < flatness.serfling_radius(10, 10**6, 0.1)  # the finite population


def threshold_population(samples: int, seed: int = 0):
    """A stand-in for ``stacked_correct``: sample i is right under a perturbation u (a stack of one
    parameter) when ``|u| < c_i``, the c_i spread over (0, 1], in the batches of ``batch_bounds``."""
    limits = torch.rand(samples, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 1e-3

    def correct(stack: torch.Tensor):
        for start, stop in flatness.batch_bounds(samples):
            yield (stack.abs() < limits[start:stop][None, :]).sum(dim=1), stop - start

    return correct


def test_a_try_decided_with_confidence_is_decided_as_all_the_samples_decide_it_sooner():
    """Far from the window the statistical decision comes after a few dozen samples, where the sure one
    needs a sixth of them; every outcome equals the whole sample's."""
    samples, weights = 2000, torch.zeros(1, dtype=torch.float64)
    correct = threshold_population(samples)
    kwargs = {"base_accuracy": 1.0, "samples": samples, "draws": 10, "seed": 3}
    sure = flatness.pacbayes_judge(correct, weights, **kwargs)
    quick = flatness.pacbayes_judge(correct, weights, confidence=1e-4, **kwargs)
    for sigma in (2.0, 1.0, 0.5, 0.3, 0.2, 0.12, 0.1, 0.08, 0.05, 0.02, 0.01):
        whole, fast, slow = sure(sigma, True), quick(sigma, False), sure(sigma, False)
        assert fast.outcome == slow.outcome == whole.outcome
        assert fast.done <= slow.done
    assert quick(2.0, False).done < 0.05 < sure(2.0, False).done


def two_logits(a: float) -> nn.Module:
    """A linear model whose two logits are ``a x`` and ``-a x`` on the input ``x = 1`` (label 0)."""
    model = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[a], [-a]]))
    return model.eval()


def pacbayes_of(model: nn.Module, *, draws: int, eps: float | None = None, seed: int = 0, inputs=None, labels=None):
    inputs = torch.ones(1, 1) if inputs is None else inputs
    labels = torch.zeros(1, dtype=torch.long) if labels is None else labels
    _, weights = flatness.flat_parameters(model)
    correct = flatness.stacked_correct(model, inputs, labels, vectorize=True)
    base = float(sum(counts[0] for counts, _ in correct(weights[None]))) / len(inputs)
    judge = flatness.pacbayes_judge(correct, weights, base_accuracy=base, samples=len(inputs), draws=draws,
                                    seed=seed, magnitude_eps=eps)
    return flatness.search(judge), judge


def test_the_pacbayes_sigma_of_two_logits_in_closed_form():
    """The logit difference 2a + (u0 - u1), u0 - u1 ~ N(0, 2 sigma^2): the accuracy is Phi(sqrt(2) a / sigma),
    and falls by 0.1 at sigma* = sqrt(2) a / Phi^-1(0.9). Over 4000 draws the search lands within the
    window's sigmas widened by 3 Monte Carlo standard errors."""
    from scipy.stats import norm

    a = 0.05
    found, _ = pacbayes_of(two_logits(a), draws=4000)
    assert found.reached
    low, high = (math.sqrt(2) * a / norm.ppf(1 - rise) for rise in (0.09 - 0.015, 0.11 + 0.015))
    assert low <= found.value <= high
    assert found.trials[-1].standard_error == pytest.approx(math.sqrt(0.9 * 0.1 / 4000), rel=0.1)


def test_the_magnitude_aware_sigma_of_two_logits_in_closed_form():
    """u_i ~ N(0, sigma^2 w_i^2 + eps^2) (Jiang's variance): the logit difference's variance is
    2 (sigma^2 a^2 + eps^2), so the accuracy falls by 0.1 where 2a / sqrt(that) = Phi^-1(0.9)."""
    from scipy.stats import norm

    a, eps = 0.3, 0.05
    found, _ = pacbayes_of(two_logits(a), draws=4000, eps=eps)

    def sigma_at(rise):
        return math.sqrt(((2 * a / norm.ppf(1 - rise)) ** 2 / 2 - eps**2) / a**2)

    assert found.reached and sigma_at(0.09 - 0.015) <= found.value <= sigma_at(0.11 + 0.015)


def test_deciding_a_midpoint_early_returns_what_the_whole_evaluation_returns():
    """Every midpoint of a search decided after part of the samples gets the outcome its whole
    evaluation (same draws) gives, so the search returns the same sigma."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    inputs = torch.randn(700, 6)
    with torch.no_grad():
        labels = model(inputs).argmax(dim=1)
    labels[:70] = (labels[:70] + 1) % 3  # a model that is not perfect
    found, judge = pacbayes_of(model, draws=5, inputs=inputs, labels=labels)
    early = [trial for trial in found.trials if trial.done < 1]
    assert early, "no midpoint was decided early"
    for trial in found.trials:
        whole = judge(trial.value, True)
        assert whole.outcome == trial.outcome and whole.bounds[0] >= trial.bounds[0] - 1e-12
        assert whole.rise <= trial.bounds[1] + 1e-12
    forced = flatness.bisect(lambda x, last: judge(x, True))
    assert forced.value == found.value and sum(t.done for t in found.trials) < len(found.trials)


@pytest.mark.parametrize("vectorize", [True, False])
def test_the_stacked_evaluation_equals_perturbing_a_copy(vectorize):
    import copy

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 4)).eval()
    inputs, labels = torch.randn(300, 1, 6, 6), torch.randint(0, 4, (300,))
    _, weights = flatness.flat_parameters(net)
    stack = weights + 0.3 * torch.randn(3, weights.numel())
    batched = sum(counts for counts, _ in flatness.stacked_correct(net, inputs, labels, vectorize=vectorize)(stack))
    looped = []
    for row in stack:
        copied = copy.deepcopy(net)
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(row, copied.parameters())
            looped.append(int((copied(inputs).argmax(dim=1) == labels).sum()))
    assert batched.tolist() == looped


def linear_case(gradient: torch.Tensor):
    """``L(w) = g.w`` and an accuracy that falls by ``g.(w - w0)``: the worst case over a box is at its
    corner ``sign(g) b``."""
    start = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=torch.float64)

    def evaluate(w):
        return (gradient * w).sum(), 1.0 - float((gradient * (w.detach() - start)).sum())

    return evaluate, start


def test_the_ascent_reaches_the_box_s_corner_and_keskar_s_sharpness_by_hand():
    gradient = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    evaluate, weights = linear_case(gradient)
    bound = sharpness.keskar_box(weights, 0.01)
    ascent = sharpness.ascend(evaluate, weights, bound, steps=3)
    assert ascent.at_boundary == 0.75 and ascent.unmoved == 0.25  # the zero gradient's coordinate stays
    reach = float((gradient.abs() * bound).sum())
    assert ascent.loss_increase == pytest.approx(reach) and ascent.error_rise == pytest.approx(reach)
    value, _ = sharpness.keskar_sharpness(evaluate, weights, radius=0.01)
    base = float((gradient * weights).sum())
    assert value == pytest.approx(100 * reach / (1 + base))


@pytest.mark.parametrize("box", ["isotropic", "magnitude"])
def test_the_largest_box_whose_worst_case_raises_the_error_by_the_target(box):
    """Worst-case rise alpha sum|g_i| (isotropic) or sum |g_i| (alpha |w_i| + eps) (magnitude): the
    search's alpha' has a rise within 0.1 +- 0.01, so alpha' is within the window's alphas."""
    gradient = torch.tensor([0.3, -0.2, 0.1, 0.05], dtype=torch.float64)
    evaluate, weights = linear_case(gradient)
    found = flatness.bisect(sharpness.worst_case_judge(evaluate, weights, sharpness.BOXES[box], steps=2))
    per_alpha = float((gradient.abs() * (1 if box == "isotropic" else weights.abs())).sum())
    offset = 0.0 if box == "isotropic" else float(gradient.abs().sum()) * sharpness.MAGNITUDE_EPS
    assert found.reached and (0.09 - offset) / per_alpha < found.value < (0.11 - offset) / per_alpha
    assert found.trials[-1].details["at_boundary"] == 1.0


def test_the_bounds_by_hand():
    assert flatness.pacbayes_bound(8.0, 0.5, 100) == pytest.approx(8 / 1 + math.log(200) + 10)
    assert sharpness.sharpness_bound(8.0, 0.5, 4, 100) == pytest.approx(8 * math.log(8) / 1 + math.log(200) + 10)
    differences = torch.tensor([1.0, 0.0])
    expected = 0.25 * (math.log((1e-6 + 1.25 * 3 / 2) / (1e-6 + 0.25)) + math.log((1e-6 + 1.25 * 3 / 2) / 1e-6))
    assert flatness.magnitude_bound(3.0, differences, 0.5, 100) == pytest.approx(expected + math.log(200) + 10)


# -- optimization ----------------------------------------------------------------------------------------
def test_epochs_and_steps_to_fit_from_a_hand_made_run_record():
    from analyses.optimization import fitting_speed

    losses = [2.0, 0.5, 0.09, 0.02, 0.009]
    record = {"args": {"batch_size": 128}, "data": {"sizes": {"train": 1000}},
              "epochs": [{"epoch": e, "train_loss": 9.0, "train_eval_loss": loss} for e, loss in enumerate(losses)]}
    found = fitting_speed(record, fit_loss=0.1, converged_loss=0.01)
    assert found["measures"] == {"epochs_to_fit": 2, "steps_to_fit": 2 * 8, "steps_fit_to_converged": 2 * 8,
                                 "epochs_fit_to_converged": 2}
    assert found["loss_key"] == "train_eval_loss" and found["notes"] == []
    for row in record["epochs"]:
        row["train_loss"] = row.pop("train_eval_loss")  # an older run: the epochs' running loss stands in
    fallback = fitting_speed(record, fit_loss=0.1, converged_loss=0.001)
    assert fallback["measures"] == {"epochs_to_fit": 2, "steps_to_fit": 16, "steps_fit_to_converged": None,
                                    "epochs_fit_to_converged": None}
    assert fallback["loss_key"] == "train_loss" and "no train_eval_loss" in fallback["notes"][0]


# -- the analyses ----------------------------------------------------------------------------------------
# --margin-samples: the old name of --measure-samples (users paste their old commands)
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
    assert sharp["training_subset"] == {"split": "train", "size": 200, "of": 1347, "seed": 0}
    assert sharp["sharpness_subset"] == {"split": "train", "size": 32, "of": 1347, "seed": 0}
    assert sharp["measures"]["pacbayes_flatness"] > 0 and sharp["settings"]["mc_samples"] == 2
    for key in ("pacbayes", "pacbayes_mag", "sharpness_flatness", "sharpness_mag"):
        search = sharp["searches"][key]
        assert search["trials"][-1]["value"] == search["value"] and search["rise"] is not None
    assert sharp["searches"]["pacbayes"]["standard_error"] is not None
    assert any("PAC-Bayes on 200 of 1347 training samples" in note for note in sharp["notes"])
    assert sharp["batchnorm"] == {"folded": [], "kept": [], "output_difference": 0.0, "rtol": 1e-4}
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


def test_every_field_measure_says_what_it_is_defined_on_and_how_it_scales_with_the_data():
    """Jiang's appendix C, as the reference applies it: the logarithms scale as (x - log m) / 2 (its
    ``LOG_`` measures, spec_init and spec_orig among them), the other bounds as sqrt(x / m); the
    margin, Keskar's sharpness and the optimization measures are no bounds."""
    from analyses.registry import declaration

    unscaled = {"margin", "sharpness", "epochs_to_fit", "steps_to_fit", "steps_fit_to_converged",
                "epochs_fit_to_converged"}
    for name in ("norms", "margin", "sharpness", "optimization"):
        for measure, declared in declaration(name).measures.items():
            assert declared.defined_on == "function", measure
            logarithm = measure.startswith("log_") or measure.startswith("spec_")
            expected = None if measure in unscaled else "log" if logarithm else "sqrt"
            assert declared.size_scaling == expected, measure
