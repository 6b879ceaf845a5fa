"""Model registry: ``register_model``, ``get_model``, ``list_models``.

Each architecture is a small builder function ``builder(config) -> nn.Module`` registered under a
name. Names not registered here fall back to torchvision's classification models.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from models.forward import hooked_forward
from utils.errors import UserError

Builder = Callable[["ModelConfig"], nn.Module]
_REGISTRY: dict[str, Builder] = {}


@dataclass(frozen=True)
class ModelConfig:
    """What a builder needs to know about the data and the weights."""

    num_classes: int
    in_channels: int = 3
    image_size: int = 32
    pretrained: bool = False
    download: bool = False


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder`` under ``name``; a duplicate name is a programming error."""

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorator


def list_models(*, include_torchvision: bool = False) -> list[str]:
    """Names of the registered models; with ``include_torchvision`` also every torchvision classifier."""
    names = set(_REGISTRY)
    if include_torchvision:
        names |= set(_torchvision_classifiers())
    return sorted(names)


def _torchvision_classifiers() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def get_model(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    pretrained: bool = False,
    *,
    image_size: int = 32,
    download: bool = False,
    check_input: bool = True,
) -> nn.Module:
    """Build architecture ``name`` for ``num_classes`` outputs and ``in_channels`` x ``image_size``^2 inputs.

    ``pretrained`` loads torchvision's ImageNet weights from the local torch hub cache (downloading
    only with ``download``). With ``check_input`` a dummy forward verifies the model can run on the
    input size, so a mismatch fails here with advice instead of deep inside training.
    """
    if num_classes < 1 or in_channels < 1 or image_size < 1:
        raise UserError(
            f"invalid model shape: num_classes={num_classes}, in_channels={in_channels}, image_size={image_size}"
        )
    config = ModelConfig(num_classes, in_channels, image_size, pretrained, download)
    builder = _REGISTRY.get(name)
    if builder is None:
        if name not in _torchvision_classifiers():
            raise UserError(
                f"unknown architecture {name!r}; choose one of: {', '.join(list_models())} "
                "(or any torchvision classification model name)"
            )
        from models.torchvision_models import build_torchvision

        model = build_torchvision(name, config)
    else:
        model = builder(config)
    if check_input:
        check_input_size(model, name=name, in_channels=in_channels, image_size=image_size)
    return model


def check_input_size(model: nn.Module, *, name: str, in_channels: int, image_size: int) -> None:
    """Run one dummy forward; raise :class:`UserError` suggesting ``--upscale`` if it cannot run."""
    try:
        hooked_forward(model, (in_channels, image_size, image_size))
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"architecture {name!r} cannot run on {in_channels}x{image_size}x{image_size} inputs "
            f"({first_line}); use --upscale or --upscale-padding to feed it 224x224 images"
        ) from err


def refuse_pretrained(name: str, config: ModelConfig) -> None:
    """Architectures without zoo weights refuse ``pretrained``."""
    if config.pretrained:
        raise UserError(f"there are no pretrained weights for {name!r}; drop --pretrained")
