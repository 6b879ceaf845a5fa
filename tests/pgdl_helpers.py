"""Small PGDL tasks in the competition's exact on-disk formats, and Keras 3 as the oracle (no mocks).

- ``config.json``: ``{"model_config": [layers], "input_shape": [H, W, C]}``;
- ``weights.hdf5`` / ``weights_init.hdf5``: written with h5py in the legacy layout TensorFlow's Keras 2
  ``save_weights`` writes (root ``layer_names``, groups named ``wrapped_layer_<i>``, each with
  ``weight_names`` such as ``wrapped_layer_3/kernel:0`` and the arrays nested under them, layers
  without weights listed with an empty list), plus an extra group no layer names, as other Keras
  versions write;
- ``dataset_1/train/shard_<n>.tfrecord``: ``tf.train.Example``s of serialized float32 images and
  int32 labels, written by the reader's own writer (``datasets/tfrecord.py``), framed and checksummed
  as TensorFlow frames them;
- ``reference_data/<task>/model_configs.json``: hyperparameters and metrics, where ``train_acc`` is
  what Keras itself (3, torch backend, no TensorFlow) measures on those shards.
"""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported: Keras 3 without TensorFlow

SHAPE = (8, 8, 3)
GRID = {"conv_width": [4, 6], "dropout": [0.0, 0.5], "weight_decay": [0.0, 0.001]}


def keras_model(layers: list[dict], input_shape):
    """Keras 3's own Sequential of a PGDL config (as the competition's loader builds it)."""
    import keras

    def kwargs(spec: dict) -> dict:  # integral floats as integers, as the competition's loader casts them
        return {key: int(value) if isinstance(value, float) and value.is_integer() else value
                for key, value in spec.items() if key != "layer_name"}

    model = keras.Sequential([getattr(keras.layers, spec["layer_name"])(**kwargs(spec)) for spec in layers])
    model.build((None, *input_shape))
    return model


def randomize(model, rng: np.random.Generator) -> None:
    """Random weights of unit-scale outputs (kernels ~ N(0, 1/fan_in), biases and BN statistics nonzero,
    BN variances small so that the epsilon shows) so that every convention shows."""
    for layer in model.layers:
        values = []
        for weight in layer.get_weights():
            scale = 1.0 / np.sqrt(np.prod(weight.shape[:-1])) if weight.ndim > 1 else 0.2
            values.append(rng.normal(scale=scale, size=weight.shape).astype(np.float32))
        if type(layer).__name__ == "BatchNormalization":
            values[-1] = (0.01 + 0.04 * rng.random(values[-1].shape)).astype(np.float32)  # moving_variance
        layer.set_weights(values)


def write_weights(path: Path, model, *, extra_group: bool = True) -> Path:
    """``model``'s weights in Keras 2's legacy HDF5 layout (see the module docstring)."""
    import h5py
    import keras

    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f"wrapped_layer_{i}" if i else "wrapped_layer" for i in range(len(model.layers))]
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = np.array([name.encode() for name in names])
        handle.attrs["backend"], handle.attrs["keras_version"] = b"tensorflow", b"2.4.0"
        for name, layer in zip(names, model.layers):
            group = handle.create_group(name)
            weights = layer.trainable_weights + layer.non_trainable_weights  # Keras's legacy order
            keys = [f"{name}/{weight.name}:0" for weight in weights]
            group.attrs["weight_names"] = np.array([key.encode() for key in keys]) if keys else np.zeros(0)
            for key, weight in zip(keys, weights):
                group.create_dataset(key, data=keras.ops.convert_to_numpy(weight))
        if extra_group:
            handle.create_group("top_level_model_weights").attrs["weight_names"] = np.zeros(0)
    return path


def keras_outputs(model, images_hwc: np.ndarray) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(model(images_hwc, training=False))


def config_of(width: int, dropout: float) -> list[dict]:
    """A small VGG-like model (as task 1's): same and valid convs, BN, pooling, Flatten before Dense."""
    return [{"layer_name": "Conv2D", "filters": width, "kernel_size": 3, "padding": "same", "activation": "relu",
             "kernel_initializer": "he_normal", "kernel_regularizer": None},
            {"layer_name": "BatchNormalization", "momentum": 0.99},
            {"layer_name": "MaxPooling2D", "pool_size": 2},
            {"layer_name": "Conv2D", "filters": 8.0, "kernel_size": 3, "padding": "valid", "activation": "relu"},
            {"layer_name": "Flatten"},
            {"layer_name": "Dropout", "rate": dropout},
            {"layer_name": "Dense", "units": 16, "activation": "relu"},
            {"layer_name": "Dense", "units": 10, "activation": "softmax"}]


def write_examples(folder: Path, images: np.ndarray, labels: np.ndarray, *, shards: int = 2) -> list[Path]:
    from datasets.tfrecord import example_bytes, tensor_bytes, write_records

    paths = []
    for number, chunk in enumerate(np.array_split(np.arange(len(labels)), shards), start=1):
        records = [example_bytes({"inputs": tensor_bytes(images[i]), "output": tensor_bytes(np.int32(labels[i]))})
                   for i in chunk]
        paths.append(write_records(folder / f"shard_{number}.tfrecord", records))
    return paths


def write_task(root: Path, *, task: str = "task9_t", examples: int = 64, seed: int = 0,
               skip: tuple[int, ...] = ()) -> tuple[Path, Path]:
    """``(input_data/<task>, reference_data/<task>)`` of a complete 2x2x2 grid (the models at ``skip``
    left out); ``train_acc`` is Keras's top-1 on the task's shards."""
    rng = np.random.default_rng(seed)
    task_dir, reference_dir = root / "input_data" / task, root / "reference_data" / task
    images = rng.normal(size=(examples, *SHAPE)).astype(np.float32)
    labels = rng.integers(0, 10, size=examples)
    write_examples(task_dir / "dataset_1" / "train", images, labels)
    configs = {}
    for number, values in enumerate(itertools.product(*GRID.values())):
        if number in skip:
            continue
        hparams = dict(zip(GRID, values))
        layers = config_of(hparams["conv_width"], hparams["dropout"])
        folder = task_dir / f"model_{number}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"model_config": layers, "input_shape": list(SHAPE)}))
        model = keras_model(layers, SHAPE)
        randomize(model, rng)
        write_weights(folder / "weights_init.hdf5", model)
        randomize(model, rng)
        write_weights(folder / "weights.hdf5", model)
        labels_hit = (keras_outputs(model, images).argmax(axis=1) == labels).mean()
        configs[str(number)] = {
            "hparams": {name: {"current_value": value, "possible_values": GRID[name]} for name, value in hparams.items()},
            "metrics": {"train_acc": float(labels_hit), "test_acc": float(rng.uniform(0.05, 0.2))}}
    reference_dir.mkdir(parents=True)
    (reference_dir / "model_configs.json").write_text(json.dumps(configs))
    return task_dir, reference_dir


def fails_on_two(number: int) -> int:
    """A call for the launcher's tests (module-level, so that a spawned process can import it)."""
    if number == 2:
        raise ValueError("two is not allowed\nsecond line")
    return number * 10
