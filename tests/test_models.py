"""The model registry: every model builds and runs, inputs adapt, errors are clear."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import models
from models.torchvision_models import pretrained_cache_file
from utils.errors import UserError

EXPECTED = {
    "lenet", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11bn", "vgg13bn", "vgg16bn", "vgg19bn",
    "vgg19_orig", "resnet18", "resnet34", "resnet50", "mlp", "mlp_bn", "convnet",
}
# (in_channels, image size) of the datasets: digits/MNIST-like, CIFAR/SVHN, upscaled.
SMALL_SHAPES = [(1, 32), (3, 32)]
# MNIST-sized inputs for one member of each family (VGG builds are slow on two cores).
MNIST_FAMILY = ["lenet", "alexnet", "vgg11", "resnet18", "mlp_bn", "convnet"]


def needs_upscale(name: str, size: int) -> bool:
    """AlexNet's strides and VGG's five poolings need larger inputs than 32 and 28 pixels."""
    return name == "alexnet" or (name.startswith("vgg") and size < 32)


def test_every_listed_model_is_registered():
    assert EXPECTED <= set(models.list_models())
    assert set(models.list_models()) < set(models.list_models(include_torchvision=True))


def shape_case(name: str, in_channels: int, size: int):
    """VGGs other than vgg11 and vgg11bn are slow to build (1.5-2 s each on two cores): ``make test`` only."""
    slow = name.startswith("vgg") and name not in ("vgg11", "vgg11bn")
    return pytest.param(name, in_channels, size, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize(
    "name,in_channels,size",
    [shape_case(n, c, s) for n in sorted(EXPECTED) for c, s in SMALL_SHAPES] + [(n, 1, 28) for n in MNIST_FAMILY],
)
def test_model_runs_on_dataset_shape(name, in_channels, size):
    if needs_upscale(name, size):
        with pytest.raises(UserError, match="--upscale"):
            models.get_model(name, 7, in_channels, image_size=size)
        return
    model = models.get_model(name, 7, in_channels, image_size=size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, 7)


def test_alexnet_runs_upscaled():
    model = models.get_model("alexnet", 10, 1, image_size=224).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 224, 224)).shape == (1, 10)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "squeezenet1_1"])
def test_any_torchvision_classifier_by_name(name):
    model = models.get_model(name, 5, 1, image_size=64).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 5)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UserError, match="lenet.*vgg19"):
        models.get_model("lenet5000", 10)


def test_register_model_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        models.register_model("lenet")(lambda config: nn.Identity())


def _convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_lenet_matches_the_reference_layout():
    model = models.get_model("lenet", 10, 3)
    assert [c.out_channels for c in _convs(model)] == [6, 6, 16, 16, 64, 64]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in _convs(model))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(576, 120), (120, 84), (84, 10)]
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 2
    # The reference's module names, so its snapshots load.
    keys = set(model.state_dict())
    assert {"features.0.weight", "features.12.weight", "classifier.6.bias"} <= keys
    for conv in _convs(model):
        assert torch.count_nonzero(conv.bias) == 0
        fan_in, fan_out = conv.in_channels * 9, conv.out_channels * 9
        bound = nn.init.calculate_gain("relu") * (6 / (fan_in + fan_out)) ** 0.5
        assert conv.weight.abs().max() <= bound + 1e-6


def test_in_channels_replaces_first_conv_with_same_geometry():
    ref = models.get_model("vgg11", 10, 3)
    model = models.get_model("vgg11", 10, 1)
    first, ref_first = _convs(model)[0], _convs(ref)[0]
    assert first.weight.shape == (64, 1, 3, 3)
    assert (first.kernel_size, first.stride, first.padding) == (ref_first.kernel_size, ref_first.stride, ref_first.padding)
    assert torch.count_nonzero(first.bias) == 0
    resnet = models.get_model("resnet18", 10, 1)
    assert resnet.conv1.weight.shape == (64, 1, 7, 7) and resnet.conv1.stride == (2, 2)


def test_vgg19_orig_uses_the_papers_init():
    model = models.get_model("vgg19_orig", 10, 3)
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))])
    assert weights.std().item() == pytest.approx(0.01, rel=0.01)
    assert all(torch.count_nonzero(m.bias) == 0 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


@pytest.mark.parametrize("name,has_bn", [("mlp", False), ("mlp_bn", True)])
def test_mlp_structure(name, has_bn):
    model = models.get_model(name, 10, 3, image_size=32)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    assert shapes == [(3072, 4096)] + [(4096, 1024), (1024, 4096)] * 3 + [(4096, 10)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == (4 if has_bn else 0)
    assert all(m.p == 0.2 for m in model.modules() if isinstance(m, nn.Dropout))
    head = model.classifier.weight
    assert head.std().item() == pytest.approx((2 / 10) ** 0.5, rel=0.1)  # Kaiming normal, fan_out = 10


def test_pretrained_without_cache_names_the_file():
    path, _ = pretrained_cache_file("resnet18")
    assert not os.path.exists(path)
    with pytest.raises(UserError, match=os.path.basename(path)):
        models.get_model("resnet18", 1000, 3, pretrained=True)


def test_pretrained_loads_from_the_local_cache():
    path, _ = pretrained_cache_file("resnet18")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    reference = models.get_model("resnet18", 1000, 3, check_input=False)
    torch.save(reference.state_dict(), path)
    loaded = models.get_model("resnet18", 1000, 3, pretrained=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "resnet18", "num_classes": 10, "in_channels": 3}, "1000 classes"),
        ({"name": "resnet18", "num_classes": 1000, "in_channels": 1}, "3 input channels"),
        ({"name": "lenet", "num_classes": 10, "in_channels": 3}, "no pretrained weights"),
    ],
)
def test_pretrained_refuses_what_it_cannot_honour(kwargs, match):
    with pytest.raises(UserError, match=match):
        models.get_model(pretrained=True, **kwargs)


@pytest.mark.parametrize("depth,convs,channels", [(1, [0], [8]), (2, [0, 5], [8, 16]), (4, [0, 3, 8, 13], [8, 8, 16, 32]),
                                                   (7, [0, 3, 6, 11, 14, 19, 22], [8, 8, 8, 16, 16, 32, 32])])
def test_convnet_shape_follows_depth_and_width(depth, convs, channels):
    """depth convolutions in up to three stages (earlier stages take the extra ones), channels doubling."""
    for size, in_channels in ((8, 1), (28, 1), (32, 3)):  # digits, MNIST-like, CIFAR-like
        model = models.get_model("convnet", 10, in_channels, image_size=size,
                                 options={"depth": depth, "width": 8, "dropout": 0.5}).eval()
        assert model(torch.randn(2, in_channels, size, size)).shape == (2, 10)
    found = [(int(name.split(".")[1]), m.out_channels) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert found == list(zip(convs, channels))
    assert model.classifier.in_features == channels[-1]
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.5}


def test_shape_options_are_recorded_defaults_and_refused_elsewhere():
    assert models.default_options("convnet") == {"depth": 4, "width": 16, "dropout": 0.0}
    assert models.default_options("lenet") == {}
    assert models.model_options({"depth": 2, "width": None, "lr": 0.1}) == {"depth": 2}
    with pytest.raises(UserError, match="--depth: architecture 'lenet' has a fixed shape"):
        models.get_model("lenet", 10, 1, image_size=8, options={"depth": 2})
    with pytest.raises(UserError, match="--width 0 must be at least 1"):
        models.get_model("convnet", 10, 1, image_size=8, options={"width": 0})
