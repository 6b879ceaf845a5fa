"""A Keras ``Sequential`` config (a PGDL model's ``config.json``) as a torch module, with Keras's conventions.

The config is a list of layers, each ``{"layer_name": <tf.keras.layers class>, **its keyword
arguments}``, built in order for an input of ``input_shape`` ``[H, W, C]`` (channels last). Each
class has a translator in :data:`TRANSLATORS` (a registry, not a chain of ifs) that turns it into
standard torch modules and says how its HDF5 weights go into them:

- inputs are channels-last in Keras; the torch module takes ``(N, C, H, W)`` as every module of
  the suite does, and keeps channels-last order where it shows: ``Flatten`` flattens ``(H, W, C)``,
  so the ``Dense`` after it sees its features in Keras's order;
- ``padding="same"`` pads as TensorFlow does: ``total = max((ceil(n / s) - 1) s + (k - 1) d + 1 - n, 0)``,
  the odd pixel after (bottom, right). The pads are fixed for the config's input size (Keras builds
  the model for it too): symmetric ones are the conv's or pool's own padding, asymmetric ones an
  ``nn.ZeroPad2d`` (an ``nn.ConstantPad2d`` of -inf before a max pool) in front;
- kernels are HWIO (conv) and ``(in, out)`` (dense); ``BatchNormalization``'s epsilon defaults to
  1e-3 (torch's to 1e-5);
- a final softmax (a ``Softmax`` or ``Activation`` layer, or a last ``Dense``'s activation) is kept
  apart: the module returns logits, and ``softmax_output`` says the config ended with one.

Keyword arguments that only matter for training (initializers, regularizers, constraints, names,
dtypes, trainability, momentum, dropout's noise shape and seed) are ignored; any other that the
translator does not read, or a value it does not translate, is refused with one line naming the
task, the model, the layer's index and class, and the argument. Integral floats are integers, as
the competition's loader casts them.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from utils.errors import UserError

# Training-only keyword arguments (and those that only say how the model was built): ignored.
IGNORED = frozenset({
    "name", "trainable", "dtype", "autocast", "input_shape", "batch_input_shape", "batch_size", "input_dim",
    "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer", "activity_regularizer",
    "kernel_constraint", "bias_constraint", "beta_initializer", "gamma_initializer", "moving_mean_initializer",
    "moving_variance_initializer", "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint",
    "momentum", "fused", "virtual_batch_size", "adjustment", "synchronized", "noise_shape", "seed", "sparse",
    "ragged", "renorm_clipping", "renorm_momentum", "lora_rank", "lora_alpha"})

Shape = tuple[int, ...]  # one sample, torch's order: (C, H, W) or (features,)


@dataclass(frozen=True)
class Where:
    """How messages name a model: its task and its id (e.g. ``task1_v4``, ``model_20``)."""

    task: str = "?"
    model: str = "?"

    def layer(self, index: int, name: str) -> str:
        return f"task {self.task}, model {self.model}, layer {index} ({name})"


@dataclass
class Layer:
    """One layer of the config while it is translated: its keyword arguments and input shape."""

    index: int
    name: str  # the Keras class
    kwargs: dict
    shape: Shape
    where: Where

    @property
    def at(self) -> str:
        return self.where.layer(self.index, self.name)

    def get(self, key: str, default=None):
        return self.kwargs.get(key, default)

    def refuse(self, key: str, why: str) -> UserError:
        value = self.kwargs.get(key)
        return UserError(f"{self.at}: {key}={value!r} {why}; this reader cannot translate the model (a "
                         "translator in models/keras.py would)")

    def pair(self, key: str, default) -> tuple[int, int]:
        value = self.get(key, default)
        value = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (list, tuple)) else value
        if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
            raise self.refuse(key, "is not one positive integer or two")
        return value

    def choice(self, key: str, default, allowed: tuple) -> object:
        value = self.get(key, default)
        value = value.lower() if isinstance(value, str) else value
        if value not in allowed:
            raise self.refuse(key, f"is not one of {', '.join(map(repr, allowed))}")
        return value

    def image(self) -> Shape:
        if len(self.shape) != 3:
            raise UserError(f"{self.at}: its input has shape {self.shape} and it needs an image (H, W, C); "
                            "this reader cannot translate the model")
        return self.shape


Setter = Callable[[list], None]  # the layer's HDF5 arrays, in the file's order -> into the modules


@dataclass
class Built:
    """What a translator made: named modules, the output shape, and how the HDF5 weights go in."""

    modules: list[tuple[str, nn.Module]]
    shape: Shape
    weights: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)  # (Keras weight, shape) in file order
    set_weights: Setter | None = None


@dataclass(frozen=True)
class Translator:
    build: Callable[[Layer, str], Built]  # (layer, module name stem) -> Built
    reads: frozenset[str]  # the keyword arguments that change the function, which it translates


TRANSLATORS: dict[str, Translator] = {}


def translator(*names: str, reads: tuple[str, ...] = ()):
    """Register a translator for the Keras classes ``names``."""
    def decorator(build):
        for name in names:
            if name in TRANSLATORS:
                raise ValueError(f"a translator for {name} is already registered")
            TRANSLATORS[name] = Translator(build, frozenset(reads) | {"data_format"})
        return build
    return decorator


# -- activations --------------------------------------------------------------------------------------
ACTIVATIONS: dict[str | None, Callable[[], nn.Module | None]] = {
    None: lambda: None, "linear": lambda: None, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "elu": lambda: nn.ELU(alpha=1.0), "softmax": lambda: nn.Softmax(dim=1)}


def activation_modules(layer: Layer, stem: str, key: str = "activation") -> list[tuple[str, nn.Module]]:
    value = layer.get(key)
    value = value.lower() if isinstance(value, str) else value
    if not isinstance(value, (str, type(None))) or value not in ACTIVATIONS:
        raise layer.refuse(key, f"is not an activation this reader knows ({', '.join(a for a in ACTIVATIONS if a)})")
    module = ACTIVATIONS[value]()
    return [] if module is None else [(f"{stem}_{value}", module)]


# -- TensorFlow's "same" padding ------------------------------------------------------------------------
def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """``(before, after)`` of TensorFlow's ``same`` padding of one spatial dimension."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def output_size(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    if padding == "same":
        return math.ceil(size / stride)
    return (size - (kernel - 1) * dilation - 1) // stride + 1


def padding_of(layer: Layer, kernel, stride, dilation=(1, 1)) -> tuple[str, tuple[int, int, int, int]]:
    """``(padding, (left, right, top, bottom))``, and the output must not be empty."""
    padding = layer.choice("padding", "valid", ("valid", "same"))
    _, height, width = layer.image()
    pads = (0, 0, 0, 0)
    if padding == "same":
        top, bottom = same_pads(height, kernel[0], stride[0], dilation[0])
        left, right = same_pads(width, kernel[1], stride[1], dilation[1])
        pads = (left, right, top, bottom)
    out = [output_size(n, k, s, padding, d) for n, k, s, d in zip((height, width), kernel, stride, dilation)]
    if min(out) < 1:
        raise UserError(f"{layer.at}: its {height}x{width} input is smaller than its window {kernel}; the config "
                        "does not fit its input_shape")
    return padding, pads


def symmetric(pads: tuple[int, int, int, int]) -> bool:
    left, right, top, bottom = pads
    return left == right and top == bottom


# -- the layers -------------------------------------------------------------------------------------------
def _bias_setter(module: nn.Module, transform: Callable[[torch.Tensor], torch.Tensor]) -> Setter:
    def set_weights(arrays: list) -> None:
        with torch.no_grad():
            module.weight.copy_(transform(torch.as_tensor(arrays[0])))
            if module.bias is not None:
                module.bias.copy_(torch.as_tensor(arrays[1]))
    return set_weights


@translator("Conv2D", "Convolution2D",
            reads=("filters", "kernel_size", "strides", "padding", "dilation_rate", "use_bias", "activation", "groups"))
def conv2d(layer: Layer, stem: str) -> Built:
    channels, height, width = layer.image()
    filters, kernel = layer.get("filters"), layer.pair("kernel_size", None)
    stride, dilation = layer.pair("strides", 1), layer.pair("dilation_rate", 1)
    if not isinstance(filters, int) or filters < 1:
        raise layer.refuse("filters", "is not a positive integer")
    if layer.get("groups", 1) != 1:
        raise layer.refuse("groups", "(a grouped convolution) is not translated")
    bias = bool(layer.get("use_bias", True))
    padding, pads = padding_of(layer, kernel, stride, dilation)
    own = (pads[2], pads[0]) if symmetric(pads) else (0, 0)
    conv = nn.Conv2d(channels, filters, kernel, stride=stride, padding=own, dilation=dilation, bias=bias)
    modules = [] if symmetric(pads) else [(f"{stem}_pad", nn.ZeroPad2d(pads))]
    modules += [(stem, conv), *activation_modules(layer, stem)]
    out = tuple(output_size(n, k, s, padding, d) for n, k, s, d in zip((height, width), kernel, stride, dilation))
    weights = [("kernel", (*kernel, channels, filters))] + ([("bias", (filters,))] if bias else [])
    return Built(modules, (filters, *out), weights, _bias_setter(conv, lambda k: k.permute(3, 2, 0, 1)))


@translator("Dense", reads=("units", "use_bias", "activation"))
def dense(layer: Layer, stem: str) -> Built:
    if len(layer.shape) != 1:
        raise UserError(f"{layer.at}: its input has shape {layer.shape} (Keras applies a Dense to the last axis of "
                        "an image at every position); this reader translates a Dense after a Flatten or a global "
                        "pooling only")
    units, features = layer.get("units"), layer.shape[0]
    if not isinstance(units, int) or units < 1:
        raise layer.refuse("units", "is not a positive integer")
    bias = bool(layer.get("use_bias", True))
    linear = nn.Linear(features, units, bias=bias)
    weights = [("kernel", (features, units))] + ([("bias", (units,))] if bias else [])
    return Built([(stem, linear), *activation_modules(layer, stem)], (units,), weights,
                 _bias_setter(linear, lambda k: k.t()))


def _channel_axis(layer: Layer) -> None:
    axis = layer.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if axis not in (-1, len(layer.shape)):  # Keras counts the batch axis: channels are the last one
        raise layer.refuse("axis", "does not normalize the channels (the last axis)")


@translator("BatchNormalization", reads=("axis", "epsilon", "center", "scale", "renorm"))
def batch_norm(layer: Layer, stem: str) -> Built:
    if len(layer.shape) not in (1, 3):
        raise UserError(f"{layer.at}: its input has shape {layer.shape}; this reader normalizes images and features")
    _channel_axis(layer)
    if layer.get("renorm", False):
        raise layer.refuse("renorm", "(batch renormalization) is not translated")
    epsilon = layer.get("epsilon", 1e-3)
    if not isinstance(epsilon, (int, float)) or epsilon < 0:
        raise layer.refuse("epsilon", "is not a non-negative number")
    center, scale = bool(layer.get("center", True)), bool(layer.get("scale", True))
    channels = layer.shape[0]
    norm = (nn.BatchNorm2d if len(layer.shape) == 3 else nn.BatchNorm1d)(channels, eps=float(epsilon))
    norm.eval()
    names = [name for name, kept in (("gamma", scale), ("beta", center)) if kept] + ["moving_mean", "moving_variance"]

    def set_weights(arrays: list) -> None:
        found = dict(zip(names, (torch.as_tensor(a) for a in arrays)))
        with torch.no_grad():
            norm.weight.copy_(found.get("gamma", torch.ones(channels)))
            norm.bias.copy_(found.get("beta", torch.zeros(channels)))
            norm.running_mean.copy_(found["moving_mean"])
            norm.running_var.copy_(found["moving_variance"])

    return Built([(stem, norm)], layer.shape, [(name, (channels,)) for name in names], set_weights)


class AsymmetricAvgPool2d(nn.Module):
    """TensorFlow's average pooling with ``same`` padding whose pads differ: the padded positions are
    left out of each window's mean (as ``count_include_pad=False`` does for symmetric pads)."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], pads: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride, self.pads = kernel, stride, pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = nn.functional.avg_pool2d
        ones = torch.ones_like(x[:1, :1])
        counted = pool(nn.functional.pad(ones, self.pads), self.kernel, self.stride)
        return pool(nn.functional.pad(x, self.pads), self.kernel, self.stride) / counted

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, pads={self.pads}"


@translator("MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D", reads=("pool_size", "strides", "padding"))
def pooling(layer: Layer, stem: str) -> Built:
    channels, height, width = layer.image()
    kernel = layer.pair("pool_size", 2)
    stride = kernel if layer.get("strides") is None else layer.pair("strides", None)  # Keras: None is pool_size
    padding, pads = padding_of(layer, kernel, stride)
    left, right, top, bottom = pads
    if layer.name.startswith("Max"):
        if symmetric(pads):
            modules = [(stem, nn.MaxPool2d(kernel, stride, padding=(top, left)))]
        else:
            modules = [(f"{stem}_pad", nn.ConstantPad2d(pads, -math.inf)), (stem, nn.MaxPool2d(kernel, stride))]
    elif symmetric(pads):
        modules = [(stem, nn.AvgPool2d(kernel, stride, padding=(top, left), count_include_pad=False))]
    else:
        modules = [(stem, AsymmetricAvgPool2d(kernel, stride, pads))]
    out = tuple(output_size(n, k, s, padding) for n, k, s in zip((height, width), kernel, stride))
    return Built(modules, (channels, *out))


@translator("GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D", reads=("keepdims",))
def global_pooling(layer: Layer, stem: str) -> Built:
    channels, _, _ = layer.image()
    pool = nn.AdaptiveMaxPool2d(1) if "Max" in layer.name else nn.AdaptiveAvgPool2d(1)
    if layer.get("keepdims", False):
        return Built([(stem, pool)], (channels, 1, 1))
    return Built([(stem, pool), (f"{stem}_flatten", nn.Flatten(1))], (channels,))


class ChannelsLastFlatten(nn.Module):
    """Keras's ``Flatten`` of an image: ``(N, C, H, W)`` flattened in ``(H, W, C)`` order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


@translator("Flatten")
def flatten(layer: Layer, stem: str) -> Built:
    return Built([(stem, ChannelsLastFlatten())], (math.prod(layer.shape),))


@translator("Dropout", reads=("rate",))
def dropout(layer: Layer, stem: str) -> Built:
    rate = layer.get("rate", 0.0)
    if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise layer.refuse("rate", "is not in [0, 1)")
    return Built([(stem, nn.Dropout(float(rate)))], layer.shape)


@translator("Activation", reads=("activation",))
def activation(layer: Layer, stem: str) -> Built:
    return Built(activation_modules(layer, stem), layer.shape)


@translator("ReLU", reads=("max_value", "negative_slope", "threshold"))
def relu(layer: Layer, stem: str) -> Built:
    if layer.get("max_value") is not None:
        raise layer.refuse("max_value", "(a capped ReLU) is not translated")
    if layer.get("threshold", 0) not in (0, 0.0):
        raise layer.refuse("threshold", "is not 0")
    slope = layer.get("negative_slope", 0.0)
    if not isinstance(slope, (int, float)):
        raise layer.refuse("negative_slope", "is not a number")
    return Built([(stem, nn.LeakyReLU(float(slope)) if slope else nn.ReLU())], layer.shape)


@translator("Softmax", reads=("axis",))
def softmax(layer: Layer, stem: str) -> Built:
    axis = layer.get("axis", -1)
    if axis not in (-1, [-1], len(layer.shape)):
        raise layer.refuse("axis", "is not the last axis")
    return Built([(stem, nn.Softmax(dim=1))], layer.shape)


@translator("ZeroPadding2D", reads=("padding",))
def zero_padding(layer: Layer, stem: str) -> Built:
    channels, height, width = layer.image()
    value = layer.get("padding", 1)
    if isinstance(value, int):
        value = ((value, value), (value, value))
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        value = ((value[0], value[0]), (value[1], value[1]))
    try:
        (top, bottom), (left, right) = value
        assert all(isinstance(v, int) and v >= 0 for v in (top, bottom, left, right))
    except (TypeError, ValueError, AssertionError):
        raise layer.refuse("padding", "is not an integer, two, or two pairs") from None
    return Built([(stem, nn.ZeroPad2d((left, right, top, bottom)))], (channels, height + top + bottom,
                                                                       width + left + right))


@translator("InputLayer", reads=("shape",))
def input_layer(layer: Layer, stem: str) -> Built:
    return Built([], layer.shape)
