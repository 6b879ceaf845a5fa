"""torchvision-backed architectures: AlexNet, VGG (+BN, +original init), ResNets, and any other
torchvision classifier by name. Pretrained weights come from the local torch hub cache only,
unless the caller allows a download. torchvision is imported when a model is built, not when the
names are registered (the CLIs' ``--help`` needs none of it).
"""
from __future__ import annotations

import os
from functools import partial
from urllib.parse import urlparse

import torch
from torch import nn

from models.registry import ModelConfig, refuse_pretrained, register_model
from utils.errors import UserError

# Our name -> torchvision's name, for the variants the reference tool offered.
TORCHVISION_VARIANTS = {
    "alexnet": "alexnet",
    "vgg11": "vgg11",
    "vgg13": "vgg13",
    "vgg16": "vgg16",
    "vgg19": "vgg19",
    "vgg11bn": "vgg11_bn",
    "vgg13bn": "vgg13_bn",
    "vgg16bn": "vgg16_bn",
    "vgg19bn": "vgg19_bn",
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50",
}

IMAGENET_CLASSES = 1000


def pretrained_cache_file(tv_name: str) -> tuple[str, str]:
    """Where torchvision keeps ``tv_name``'s default ImageNet weights, and their URL."""
    import torchvision

    weights = torchvision.models.get_model_weights(tv_name).DEFAULT
    filename = os.path.basename(urlparse(weights.url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename), weights.url


def _pretrained_weights(name: str, tv_name: str, config: ModelConfig):
    import torchvision

    if config.num_classes != IMAGENET_CLASSES or config.in_channels != 3:
        raise UserError(
            f"pretrained {name!r} has {IMAGENET_CLASSES} classes and 3 input channels, but "
            f"{config.num_classes} classes and {config.in_channels} channels were asked for; "
            "drop --pretrained or use an ImageNet-shaped dataset"
        )
    try:
        weights = torchvision.models.get_model_weights(tv_name).DEFAULT
    except ValueError as err:
        raise UserError(f"torchvision has no pretrained weights for {name!r}; drop --pretrained") from err
    path, url = pretrained_cache_file(tv_name)
    if not config.download and not os.path.isfile(path):
        raise UserError(
            f"pretrained weights for {name!r} are not in the local cache: expected {path}; "
            f"copy the file from {url} there (or set TORCH_HOME), or pass --download"
        )
    return weights


def build_torchvision(tv_name: str, config: ModelConfig, *, name: str | None = None) -> nn.Module:
    """Build torchvision's ``tv_name``, pretrained or for ``config.num_classes``, adapting the input."""
    import torchvision

    name = name or tv_name
    if config.pretrained:
        weights = _pretrained_weights(name, tv_name, config)
        model = torchvision.models.get_model(tv_name, weights=weights)
    else:
        model = torchvision.models.get_model(tv_name, weights=None, num_classes=config.num_classes)
    if config.in_channels != 3:
        replace_first_conv(model, config.in_channels)
    return model


def replace_first_conv(model: nn.Module, in_channels: int) -> nn.Conv2d:
    """Swap the first ``Conv2d`` for one with ``in_channels`` inputs and the same geometry.

    The new layer gets Kaiming-normal (fan_out, ReLU) weights and a zero bias.
    """
    found = next(((name, module) for name, module in model.named_modules() if isinstance(module, nn.Conv2d)), None)
    if found is None:
        raise ValueError("model has no Conv2d to adapt to the input channels")
    module_name, module = found
    new_conv = nn.Conv2d(
        in_channels,
        module.out_channels,
        kernel_size=module.kernel_size,
        stride=module.stride,
        padding=module.padding,
        dilation=module.dilation,
        groups=1,
        bias=module.bias is not None,
        padding_mode=module.padding_mode,
    )
    nn.init.kaiming_normal_(new_conv.weight, mode="fan_out", nonlinearity="relu")
    if new_conv.bias is not None:
        nn.init.zeros_(new_conv.bias)
    parent_name, _, attr = module_name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new_conv)
    return new_conv


def _variant(config: ModelConfig, *, name: str, tv_name: str) -> nn.Module:
    return build_torchvision(tv_name, config, name=name)


for _name, _tv_name in TORCHVISION_VARIANTS.items():
    register_model(_name)(partial(_variant, name=_name, tv_name=_tv_name))


@register_model("vgg19_orig")
def vgg19_orig(config: ModelConfig) -> nn.Module:
    """VGG19 with the original paper's initialization: N(0, 0.01) weights, zero biases."""
    refuse_pretrained("vgg19_orig", config)
    model = build_torchvision("vgg19", config, name="vgg19_orig")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(module.weight, mean=0.0, std=0.01)
            nn.init.zeros_(module.bias)
    return model
