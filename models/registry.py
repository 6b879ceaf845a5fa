"""Model registry: ``register_model``, ``get_model``, ``list_models``.

Each architecture is a small builder function ``builder(config) -> nn.Module`` registered under a
name. Names not registered here fall back to torchvision's classification models.

Shape options (:data:`MODEL_OPTIONS`: ``depth``, ``width``, ``dropout``, train.py's flags of the same
names) exist for the architectures that declare them (``register_model(name, options=...)``); the
others refuse them. A snapshot records them in its ``args``, and :func:`model_options` reads them
back, so every analysis rebuilds the same model from the file alone.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn

from models.forward import hooked_forward
from utils.errors import UserError

Builder = Callable[["ModelConfig"], nn.Module]
_REGISTRY: dict[str, Builder] = {}
_OPTIONS: dict[str, dict] = {}  # the shape options each registered architecture takes, with defaults
MODEL_OPTIONS = ("depth", "width", "dropout")


@dataclass(frozen=True)
class ModelConfig:
    """What a builder needs to know about the data and the weights."""

    num_classes: int
    in_channels: int = 3
    image_size: int = 32
    pretrained: bool = False
    download: bool = False
    depth: int | None = None  # shape options: None is the architecture's default
    width: int | None = None
    dropout: float | None = None


def register_model(name: str, *, options: Mapping | None = None) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder`` under ``name``, taking the shape ``options`` (keys of
    :data:`MODEL_OPTIONS`, mapped to their defaults); a duplicate name is a programming error."""
    options = dict(options or {})
    if not set(options) <= set(MODEL_OPTIONS):
        raise ValueError(f"model {name!r}: unknown options {sorted(set(options) - set(MODEL_OPTIONS))}")

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = builder
        _OPTIONS[name] = options
        return builder

    return decorator


def default_options(name: str) -> dict:
    """The shape options architecture ``name`` takes, with their defaults (``{}``: a fixed shape)."""
    return dict(_OPTIONS.get(name, {}))


def model_options(args: Mapping | None) -> dict:
    """The shape options set in ``args`` (a snapshot's or the parsed flags'), None ones left out."""
    args = args or {}
    return {key: args[key] for key in MODEL_OPTIONS if args.get(key) is not None}


def check_model_options(name: str, options: Mapping) -> None:
    """Refuse shape options ``name`` does not take, and values out of range, in one line each."""
    accepted = _OPTIONS.get(name, {})
    refused = [key for key in options if key not in accepted]
    if refused:
        flags = " ".join(f"--{key}" for key in refused)
        takers = ", ".join(sorted(arch for arch, keys in _OPTIONS.items() if keys)) or "none"
        raise UserError(f"{flags}: architecture {name!r} has a fixed shape (these flags are for: {takers}); "
                        f"drop {flags}")
    depth, width, dropout = (options.get(key) for key in MODEL_OPTIONS)
    if depth is not None and depth < 1:
        raise UserError(f"--depth {depth} must be at least 1")
    if width is not None and width < 1:
        raise UserError(f"--width {width} must be at least 1")
    if dropout is not None and not 0 <= dropout < 1:
        raise UserError(f"--dropout {dropout} must be in [0, 1)")


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
    options: Mapping | None = None,
) -> nn.Module:
    """Build architecture ``name`` for ``num_classes`` outputs and ``in_channels`` x ``image_size``^2 inputs.

    ``pretrained`` loads torchvision's ImageNet weights from the local torch hub cache (downloading
    only with ``download``). With ``check_input`` a dummy forward verifies the model can run on the
    input size, so a mismatch fails here with advice instead of deep inside training. ``options``:
    shape options (``{"depth": 6, "width": 32}``, see :func:`model_options`), refused by an
    architecture that does not take them.
    """
    if num_classes < 1 or in_channels < 1 or image_size < 1:
        raise UserError(
            f"invalid model shape: num_classes={num_classes}, in_channels={in_channels}, image_size={image_size}"
        )
    options = model_options(options)
    check_model_options(name, options)
    config = ModelConfig(num_classes, in_channels, image_size, pretrained, download,
                         **(default_options(name) | options))
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
