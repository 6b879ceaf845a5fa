"""Batch norms folded in execution order (metrics/folding.py), checked on the outputs, and the field's
measures computed on the folded network: a function-preserving rescaling of a BN ConvNet changes none."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metrics.folding import BATCHNORM_TYPES, execution_order, fold_batchnorm, fold_plan, relative_difference
from models import get_model


def with_statistics(model: nn.Module, seed: int = 1) -> nn.Module:
    """``model`` in eval mode with random, far from trivial batch-norm statistics and affine parameters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, BATCHNORM_TYPES):
                size = module.num_features
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.5)
                module.running_var.copy_(torch.rand(size, generator=generator) * 1.5 + 0.25)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.3)
    return model.eval()


def assert_folds_every_batchnorm(arch: str, size: int, channels: int = 3) -> None:
    torch.manual_seed(0)
    model = with_statistics(get_model(arch, 10, channels, image_size=size))
    found = fold_batchnorm(model, (channels, size, size))
    inputs = torch.randn(3, channels, size, size)
    with torch.no_grad():
        expected, folded = model(inputs), found.model(inputs)
    assert relative_difference(folded, expected) <= 1e-4
    assert not any(isinstance(module, BATCHNORM_TYPES) for module in found.model.modules())
    assert found.kept == () and found.undone == ()
    assert len(found.folded) == sum(isinstance(module, BATCHNORM_TYPES) for module in model.modules())


@pytest.mark.parametrize(("arch", "size"), [("convnet", 8), ("mlp_bn", 8), ("resnet18", 32), ("vgg11bn", 32)])
def test_every_batch_norm_of_a_registry_architecture_is_folded_and_the_outputs_stay(arch, size):
    assert_folds_every_batchnorm(arch, size)


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "size"), [("vgg13bn", 32), ("vgg16bn", 32), ("vgg19bn", 32), ("resnet34", 32),
                                            ("resnet50", 32), ("mobilenet_v3_large", 32)])
def test_the_other_batch_norm_architectures_of_the_registry_and_the_zoo(arch, size):
    assert_folds_every_batchnorm(arch, size)


@pytest.mark.slow
def test_the_fold_tests_cover_every_registered_architecture_with_batch_norms():
    from models import list_models

    with_bn = {name for name in list_models()
               if any(isinstance(m, BATCHNORM_TYPES) for m in get_model(name, 10, 3, check_input=False).modules())}
    assert with_bn == {"convnet", "mlp_bn", "vgg11bn", "vgg13bn", "vgg16bn", "vgg19bn", "resnet18", "resnet34",
                       "resnet50"}


def test_mlp_bn_pairs_each_batch_norm_with_the_layer_that_ran_before_it():
    """Each block registers its dropout and batch norm before its linear layer: registration order
    would fold hidden2.bn into hidden1.fc (the bug this replaces)."""
    model = with_statistics(get_model("mlp_bn", 10, 1, image_size=4))
    pairs, kept = fold_plan(model, execution_order(model, torch.randn(2, 1, 4, 4)))
    assert pairs == [("hidden1.bn", "hidden1.fc"), ("hidden2.bn", "hidden2.fc2"), ("hidden3.bn", "hidden3.fc2"),
                     ("hidden4.bn", "hidden4.fc2")]
    assert kept == []


class AfterActivation(nn.Module):
    """conv -> ReLU -> BN (cannot be folded backward), and conv -> functional ReLU -> BN (the hooks see
    the conv just before the BN, but folding changes the outputs: the check must undo it)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu, self.bn1 = nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv3, self.bn3 = nn.Conv2d(4, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        x = self.bn1(self.relu(self.conv1(x)))
        x = self.bn2(F.relu(self.conv2(x)))
        return self.bn3(self.conv3(x)).mean(dim=(2, 3))


def test_a_batch_norm_after_an_activation_stays_and_a_broken_fold_is_undone():
    model = with_statistics(AfterActivation())
    found = fold_batchnorm(model, (2, 6, 6))
    assert found.folded == (("bn3", "conv3"),)
    assert dict(found.kept)["bn1"] == "it follows relu (ReLU), not a conv or linear layer"
    assert found.undone == ("bn2",) and "changed the outputs" in dict(found.kept)["bn2"]
    inputs = torch.randn(4, 2, 6, 6)
    with torch.no_grad():
        assert relative_difference(found.model(inputs), model(inputs)) <= 1e-4
    assert isinstance(found.model.bn1, nn.BatchNorm2d) and isinstance(found.model.bn3, nn.Identity)
    lines = found.notes("tiny")
    assert lines[0].startswith("tiny: folding bn2 changed the model's outputs") and "bn1" in lines[1]
    assert found.record()["folded"] == [{"batchnorm": "bn3", "into": "conv3"}]


def test_a_layer_without_bias_gets_one_and_the_original_is_untouched():
    model = with_statistics(nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.Dropout(0.5), nn.BatchNorm2d(2)))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    found = fold_batchnorm(model, (1, 5, 5))
    assert found.folded == (("2", "0"),) and found.model[0].bias is not None
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    bn = model[2]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(found.model[0].bias, bn.bias - bn.running_mean * scale)


# -- the measures on the folded network --------------------------------------------------------------
SCALES = (0.25, 1.0, 4.0)
FAST = ["--measure-samples", "128", "--sharpness-samples", "32", "--mc-samples", "3", "--ascent-steps", "2"]


def rescaled(state: dict, scale: float, eps: float = 1e-5) -> dict:
    """Every conv weight times ``scale``, its batch norm's statistics compensated (mean times ``scale``,
    variance such that ``var + eps`` is times ``scale^2``): the same function."""
    found = {key: value.clone() for key, value in state.items()}
    for key, value in state.items():
        if key.startswith("features.") and key.endswith(".weight") and value.dim() == 4:
            prefix, index, _ = key.split(".")
            norm = f"{prefix}.{int(index) + 1}"
            found[key] = value * scale
            found[f"{norm}.running_mean"] = state[f"{norm}.running_mean"] * scale
            found[f"{norm}.running_var"] = (state[f"{norm}.running_var"] + eps) * scale**2 - eps
    return found


@pytest.fixture(scope="module")
def rescaled_runs(tmp_path_factory):
    """A depth-2 width-4 ConvNet trained three epochs on digits, and two copies of its run whose last
    snapshot is rescaled by 1/4 and 4: ``{scale: run directory}``."""
    from tests.train_helpers import run_dir, run_train
    from utils.checkpoints import load_checkpoint, save_snapshot

    root = tmp_path_factory.mktemp("rescaled")
    assert run_train(root, "--arch", "convnet", "--depth", "2", "--width", "4", "--dataset", "digits", "--seed", "0",
                     "--optimizer", "adam", "--lr", "0.01", "--batch-size", "32", "--epochs", "3",
                     "--snapshot-every", "3") == 0
    original = run_dir(root, arch="convnet")
    runs = {}
    for scale in SCALES:
        folder = root / f"scaled_{scale}" / "digits/convnet/0"
        shutil.copytree(original, folder)
        payload = load_checkpoint(folder / "convnet_epoch0003.pt")
        payload["model_state_dict"] = rescaled(payload["model_state_dict"], scale)
        save_snapshot(folder / "convnet_epoch0003.pt", payload)
        runs[scale] = folder
    return runs


def measured(run, results) -> dict:
    """``{analysis: document}`` of compute_measures.py on the run's latest snapshot."""
    import compute_measures

    assert compute_measures.main(["--load-from", str(run), "--latest", "--results", str(results), *FAST]) == 0
    folder = results / "digits/convnet/0"
    return {path.name.split("_")[0]: json.loads(path.read_text()) for path in folder.glob("*_convnet_epoch0003.json")}


@pytest.mark.slow
def test_a_function_preserving_rescaling_changes_no_function_level_measure(rescaled_runs, tmp_path):
    from analyses.registry import declaration

    found = {scale: measured(run, tmp_path / str(scale)) for scale, run in rescaled_runs.items()}
    compared = 0
    for name in ("norms", "margin", "sharpness", "optimization"):
        for measure, declared in declaration(name).measures.items():
            values = [found[scale][name]["measures"][measure] for scale in SCALES]
            assert declared.defined_on == "function"
            if values[1] is None:
                assert values == [None] * 3, measure
                continue
            assert values[0] == pytest.approx(values[1], rel=1e-4) and values[2] == pytest.approx(values[1], rel=1e-4), \
                f"{measure}: {values}"
            compared += 1
    assert compared >= 40
    assert found[1.0]["sharpness"]["batchnorm"]["folded"] == [{"batchnorm": "features.1", "into": "features.0"},
                                                              {"batchnorm": "features.6", "into": "features.5"}]


@pytest.mark.slow
def test_on_the_unfolded_network_the_same_rescaling_moves_the_pacbayes_sigma(rescaled_runs):
    """What the fold prevents (the issue's 0.236, 0.415, 0.694): the same search on the stored weights."""
    import datasets
    from metrics import flatness
    from models import get_model
    from utils.checkpoints import load_checkpoint

    inputs, labels = next(iter(datasets.build_data("digits").train.batches(256)))
    sigmas = []
    for scale in (0.25, 4.0):
        model = get_model("convnet", 10, 1, image_size=32, options={"depth": 2, "width": 4}).eval()
        model.load_state_dict(load_checkpoint(rescaled_runs[scale] / "convnet_epoch0003.pt")["model_state_dict"])
        _, weights = flatness.flat_parameters(model)
        correct = flatness.stacked_correct(model, inputs, labels)
        base = float(sum(counts[0] for counts, _ in correct(weights[None]))) / len(inputs)
        judge = flatness.pacbayes_judge(correct, weights, base_accuracy=base, samples=len(inputs), draws=3)
        sigmas.append(flatness.bisect(judge).value)
    assert base > 0.2 and sigmas[1] > 1.5 * sigmas[0], (base, sigmas)  # above chance (0.1); sigma moves
