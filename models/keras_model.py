"""A Keras model of the PGDL competition as a torch module: its ``config.json`` translated layer by
layer (``models/keras.py``) and its weights read from Keras's HDF5 files with h5py, no TensorFlow.

``config.json`` is ``{"model_config": [layers], "input_shape": [H, W, C]}``. The weight files
(``weights.hdf5``, ``weights_init.hdf5``) are in the legacy layout Keras's ``save_weights`` writes
to an ``.hdf5`` path:

- the root (or its ``model_weights`` group, in a whole saved model) names the layers in its
  attribute ``layer_names`` (split into ``layer_names0``, ``layer_names1``, ... when long);
- each layer's group names its arrays in ``weight_names``, in Keras's legacy order (trainable
  first: ``kernel, bias``; ``gamma, beta, moving_mean, moving_variance``);
- groups are matched to the config's layers **by order**: the groups of ``layer_names`` that hold
  weights, in that order, to the layers that have weights. PGDL's layers are instances of a wrapper
  class, so their names (``wrapped_layer_3``) say nothing. Groups the list does not name (Keras 3's
  ``top_level_model_weights``) and named groups without weights are ignored.

A file that h5py cannot read (truncated, not HDF5), a layer count or an array shape that does not
fit the config is one line naming the task, the model, the layer and the file.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.keras import IGNORED, TRANSLATORS, Layer, Shape, Where
from utils.errors import UserError

logger = logging.getLogger(__name__)


@dataclass
class Slot:
    """A layer of the config that has weights: where its HDF5 arrays go."""

    index: int
    name: str  # the Keras class
    weights: list[tuple[str, tuple[int, ...]]]
    set_weights: object


class KerasSequential(nn.Sequential):
    """The translated model: standard torch modules in the config's order, taking ``(N, C, H, W)``.

    ``softmax_output``: the config ended with a softmax, left out (the module returns logits);
    ``slots``: the layers with weights, in order; ``where``: the task and model, for messages;
    ``input_shape`` and ``output_shape``: one sample's, torch's order.
    """

    def __init__(self, modules: list[tuple[str, nn.Module]], *, slots: list[Slot], softmax_output: bool,
                 where: Where, input_shape: Shape, output_shape: Shape) -> None:
        super().__init__()
        for name, module in modules:
            self.add_module(name, module)
        self.slots, self.softmax_output, self.where = slots, softmax_output, where
        self.input_shape, self.output_shape = input_shape, output_shape


@dataclass(frozen=True)
class KerasConfig:
    layers: list
    input_shape: tuple[int, int, int]  # Keras's (H, W, C)
    where: Where = field(default_factory=Where)

    @property
    def torch_shape(self) -> Shape:
        height, width, channels = self.input_shape
        return (channels, height, width)


def read_config(path: str | Path, where: Where) -> KerasConfig:
    """``config.json`` of a PGDL model; a missing or malformed file is one line."""
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"task {where.task}, model {where.model}: cannot read {path} ({err}); each model folder "
                        "needs the config.json of the competition's data") from None
    layers, shape = (found.get("model_config"), found.get("input_shape")) if isinstance(found, dict) else (None, None)
    if not isinstance(layers, list) or not all(isinstance(layer, dict) and "layer_name" in layer for layer in layers):
        raise UserError(f"task {where.task}, model {where.model}: {path} has no model_config list of layers with a "
                        "layer_name each; it is not a PGDL config.json")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(n, int) and n > 0 for n in shape)):
        raise UserError(f"task {where.task}, model {where.model}: {path} has input_shape {shape!r}, not [H, W, C]")
    return KerasConfig(layers, tuple(shape), where)


def _integers(kwargs: dict) -> dict:
    """Integral floats as integers, as the competition's loader casts them."""
    return {key: int(value) if isinstance(value, float) and value.is_integer() else value
            for key, value in kwargs.items()}


def _snake(name: str) -> str:
    """``MaxPooling2D`` -> ``max_pooling2d``, as Keras names its layers."""
    words = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", words).lower()


def translate(config: KerasConfig) -> KerasSequential:
    """The torch module of ``config`` (random weights until :func:`load_weights`); an unknown layer or
    argument is a :class:`UserError` (see ``models/keras.py``)."""
    shape, modules, slots = config.torch_shape, [], []
    for index, spec in enumerate(config.layers):
        name = spec["layer_name"]
        found = TRANSLATORS.get(name)
        at = config.where.layer(index, name)
        if found is None:
            raise UserError(f"{at}: unknown layer; this reader translates {', '.join(sorted(TRANSLATORS))} (a "
                            "translator in models/keras.py would add it)")
        kwargs = _integers({key: value for key, value in spec.items() if key != "layer_name"})
        unknown = sorted(set(kwargs) - IGNORED - found.reads)
        if unknown:
            raise UserError(f"{at}: keyword argument {unknown[0]}={kwargs[unknown[0]]!r} may change the function and "
                            "this reader does not translate it (a translator in models/keras.py would)")
        layer = Layer(index, name, kwargs, shape, config.where)
        layer.choice("data_format", None, (None, "channels_last"))
        built = found.build(layer, f"{_snake(name)}_{index}")
        modules += built.modules
        if built.weights:
            slots.append(Slot(index, name, built.weights, built.set_weights))
        shape = built.shape
    softmax = bool(modules) and isinstance(modules[-1][1], nn.Softmax)
    if softmax:
        modules = modules[:-1]  # the measures that need logits get logits
    return KerasSequential(modules, slots=slots, softmax_output=softmax, where=config.where,
                           input_shape=config.torch_shape, output_shape=shape).eval()


# -- the HDF5 weights -----------------------------------------------------------------------------------------
def _attribute_list(group, name: str) -> list[str]:
    """A list attribute, joined from its chunks ``<name>0``, ``<name>1``, ... when Keras split it."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values += list(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [value.decode("utf8") if isinstance(value, bytes) else str(value) for value in values]


def _unreadable(path: Path, where: Where, err: Exception) -> UserError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return UserError(f"task {where.task}, model {where.model}: cannot read {path} ({first}); the file is truncated "
                     "or not a Keras HDF5 weight file: copy it again from the competition's data")


def read_weights(path: str | Path, where: Where, *, data: bool = True) -> list[tuple[str, list]]:
    """``(group, arrays)`` of each layer group with weights, in ``layer_names`` order; with ``data=False``
    the arrays' shapes only (a cheap check that reads no weights)."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            root = handle["model_weights"] if "model_weights" in handle and "layer_names" not in handle.attrs \
                else handle
            found = []
            for name in _attribute_list(root, "layer_names"):
                group = root[name]
                names = _attribute_list(group, "weight_names")
                if names:
                    found.append((name, [np.asarray(group[w]) if data else tuple(group[w].shape) for w in names]))
            return found
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise _unreadable(path, where, err) from None


def _shape(item) -> tuple[int, ...]:
    return tuple(item.shape) if isinstance(item, np.ndarray) else tuple(item)


def check_weights(model: KerasSequential, groups: list[tuple[str, list]], path: Path) -> None:
    """The file's layers with weights fit the config's, in number and in every array's shape."""
    where = model.where
    if len(groups) != len(model.slots):
        raise UserError(f"task {where.task}, model {where.model}: {path.name} holds {len(groups)} layer(s) with "
                        f"weights and config.json has {len(model.slots)}; they do not belong together")
    for slot, (group, arrays) in zip(model.slots, groups):
        wanted = [shape for _, shape in slot.weights]
        if [_shape(item) for item in arrays] != wanted:
            needed = ", ".join(f"{name} {shape}" for name, shape in slot.weights)
            raise UserError(f"{where.layer(slot.index, slot.name)}: {path.name} group {group} holds arrays of "
                            f"shapes {[_shape(item) for item in arrays]}, the layer needs {needed}")


def load_weights(model: KerasSequential, path: str | Path) -> KerasSequential:
    """``model`` with the weights of ``path`` (see the module docstring); returns it."""
    path = Path(path)
    groups = read_weights(path, model.where)
    check_weights(model, groups, path)
    for slot, (_, arrays) in zip(model.slots, groups):
        slot.set_weights([np.asarray(array, dtype=np.float32) for array in arrays])
    return model


def build(model_dir: str | Path, where: Where, *, weights: str = "weights.hdf5") -> KerasSequential:
    """The model of a PGDL model folder with the weights of ``weights`` (a file in it)."""
    model_dir = Path(model_dir)
    model = translate(read_config(model_dir / "config.json", where))
    return load_weights(model, model_dir / weights)


@torch.no_grad()
def logits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """The model's outputs (logits: a final softmax is left out) on ``images`` ``(N, C, H, W)``."""
    return torch.cat([model(images[start:start + batch_size]) for start in range(0, len(images), batch_size)])
