"""PGDL's Keras configs as torch modules (models/keras.py, models/keras_model.py) against Keras itself:
Keras 3 on its torch backend (no TensorFlow) builds the same config, loads the same HDF5 file (written
with h5py in Keras 2's legacy layout), and its outputs must equal ours within 1e-5. The conventions
that differ from torch's are each tested: a Flatten before a Dense (channels-last order), TensorFlow's
``same`` padding (odd and even sizes, strides 1 and 2, convs and pools), BatchNormalization's epsilon
(1e-3 by default) and a final softmax (kept apart: the module returns logits)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.keras import Where
from models.keras_model import KerasConfig, build, load_weights, logits, translate
from tests.pgdl_helpers import keras_model, keras_outputs, randomize, write_weights
from utils.errors import UserError

pytest.importorskip("keras")  # requirements-dev.txt installs it (make setup); CI runs these
TOLERANCE = 1e-5


def compare_images(seed: int, shape) -> np.ndarray:
    """Five random channels-last images (the draw :func:`compare` uses)."""
    return np.random.default_rng(seed + 1).normal(size=(5, *shape)).astype(np.float32)


def _nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def compare(tmp_path, layers: list[dict], shape, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, object]:
    """``(Keras's outputs, ours, our module)`` of ``layers`` on :func:`compare_images`, the weights
    through a legacy HDF5 file that Keras and we both load."""
    writer = keras_model(layers, shape)
    randomize(writer, np.random.default_rng(seed))
    path = write_weights(tmp_path / "weights.hdf5", writer)
    oracle = keras_model(layers, shape)
    oracle.load_weights(str(path))
    images = compare_images(seed, shape)
    ours = load_weights(translate(KerasConfig(layers, tuple(shape), Where("t", "m"))), path)
    return keras_outputs(oracle, images), logits(ours, _nchw(images)).numpy(), ours


def test_a_flatten_before_a_dense_keeps_keras_s_channels_last_order(tmp_path):
    layers = [{"layer_name": "Conv2D", "filters": 3, "kernel_size": 2, "activation": "relu"},
              {"layer_name": "Flatten"}, {"layer_name": "Dense", "units": 4}]
    theirs, ours, module = compare(tmp_path, layers, (5, 4, 2))
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, rtol=0)
    module.flatten_1 = torch.nn.Flatten(1)  # torch's (C, H, W) order: the same weights give other outputs
    assert np.abs(logits(module, _nchw(compare_images(0, (5, 4, 2)))).numpy() - theirs).max() > 1e-2


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [2, 3])
def test_same_padding_is_tensorflow_s(tmp_path, size, stride, kernel):
    """Odd and even sizes, strides 1 and 2: TensorFlow pads the odd pixel after (bottom, right)."""
    layers = [{"layer_name": "Conv2D", "filters": 3, "kernel_size": kernel, "strides": stride, "padding": "same"},
              {"layer_name": "MaxPooling2D", "pool_size": kernel, "strides": stride, "padding": "same"},
              {"layer_name": "AveragePooling2D", "pool_size": kernel, "strides": 1, "padding": "same"},
              {"layer_name": "Flatten"}, {"layer_name": "Dense", "units": 3}]
    theirs, ours, module = compare(tmp_path, layers, (size, size + 1, 2))
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, rtol=0)


def test_valid_padding_pools_and_global_pooling(tmp_path):
    layers = [{"layer_name": "ZeroPadding2D", "padding": [[1, 0], [2, 1]]},
              {"layer_name": "Conv2D", "filters": 4, "kernel_size": [3, 2], "strides": [2, 1], "activation": "elu"},
              {"layer_name": "AveragePooling2D", "pool_size": 2},
              {"layer_name": "Activation", "activation": "tanh"},
              {"layer_name": "GlobalMaxPooling2D"}, {"layer_name": "Dense", "units": 3, "activation": "sigmoid"},
              {"layer_name": "Dense", "units": 2, "use_bias": False}]
    theirs, ours, _ = compare(tmp_path, layers, (11, 9, 3))
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("epsilon", [None, 0.1])
def test_batch_normalization_uses_keras_s_epsilon(tmp_path, epsilon):
    """Variances near 0.01 (randomize) make the epsilon show: torch's 1e-5 would be off by far more than 1e-5."""
    norm = {"layer_name": "BatchNormalization", "momentum": 0.9} | ({"epsilon": epsilon} if epsilon else {})
    layers = [{"layer_name": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same", "use_bias": False}, norm,
              {"layer_name": "ReLU"}, {"layer_name": "GlobalAveragePooling2D"},
              {"layer_name": "BatchNormalization", "center": False}, {"layer_name": "Dense", "units": 2}]
    theirs, ours, module = compare(tmp_path, layers, (6, 6, 2))
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, rtol=0)
    assert module.batch_normalization_1.eps == pytest.approx(epsilon or 1e-3)
    module.batch_normalization_1.eps = 1e-5  # torch's default: visibly other outputs
    assert np.abs(logits(module, _nchw(compare_images(0, (6, 6, 2)))).numpy() - theirs).max() > 1e-3


def test_a_final_softmax_is_kept_apart(tmp_path):
    layers = [{"layer_name": "Flatten"}, {"layer_name": "Dropout", "rate": 0.5},
              {"layer_name": "Dense", "units": 4, "activation": "softmax"}]
    theirs, ours, module = compare(tmp_path, layers, (3, 3, 2))
    assert module.softmax_output and not any(isinstance(m, torch.nn.Softmax) for m in module.modules())
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(ours), dim=1).numpy(), theirs, atol=TOLERANCE, rtol=0)


def test_layer_names_split_in_chunks_and_groups_no_layer_names(tmp_path):
    """Keras splits a long layer_names attribute into layer_names0, layer_names1, ...; a group the list does
    not name (Keras 3's top_level_model_weights) and listed layers without weights are ignored."""
    import h5py

    layers = [{"layer_name": "Flatten"}, {"layer_name": "Dense", "units": 3}, {"layer_name": "Dense", "units": 2}]
    theirs, _, _ = compare(tmp_path, layers, (2, 2, 1))
    path = tmp_path / "weights.hdf5"
    with h5py.File(path, "a") as handle:
        names = list(handle.attrs["layer_names"])
        del handle.attrs["layer_names"]
        handle.attrs["layer_names0"], handle.attrs["layer_names1"] = np.array(names[:2]), np.array(names[2:])
        handle.create_group("unlisted").attrs["weight_names"] = np.array([b"unlisted/kernel:0"])
    ours = load_weights(translate(KerasConfig(layers, (2, 2, 1), Where("t", "m"))), path)
    np.testing.assert_allclose(logits(ours, _nchw(compare_images(0, (2, 2, 1)))).numpy(), theirs,
                               atol=TOLERANCE, rtol=0)


def _refused(layers, shape=(4, 4, 1)) -> str:
    with pytest.raises(UserError) as found:
        translate(KerasConfig(layers, shape, Where("task1_v4", "model_20")))
    message = str(found.value)
    assert "\n" not in message and "task task1_v4, model model_20" in message
    return message


def test_an_unknown_layer_is_one_line_naming_it():
    message = _refused([{"layer_name": "Flatten"}, {"layer_name": "LSTM", "units": 3}])
    assert "layer 1 (LSTM): unknown layer" in message and "Conv2D" in message


@pytest.mark.parametrize(("layer", "argument"), [
    ({"layer_name": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "causal"}, "padding='causal'"),
    ({"layer_name": "Conv2D", "filters": 2, "kernel_size": 3, "groups": 2}, "groups=2"),
    ({"layer_name": "Conv2D", "filters": 2, "kernel_size": 3, "data_format": "channels_first"}, "data_format="),
    ({"layer_name": "Conv2D", "filters": 2, "kernel_size": 3, "activation": "swish"}, "activation='swish'"),
    ({"layer_name": "MaxPooling2D", "interpolation": "bilinear"}, "interpolation='bilinear'"),
    ({"layer_name": "ReLU", "max_value": 6.0}, "max_value=6"),
    ({"layer_name": "BatchNormalization", "axis": 1}, "axis=1")])
def test_an_argument_that_changes_the_function_is_refused(layer, argument):
    message = _refused([layer])
    assert "layer 0 (" in message and argument in message


def test_training_only_arguments_are_ignored():
    layers = [{"layer_name": "Conv2D", "filters": 2.0, "kernel_size": 3, "kernel_initializer": {"class_name": "x"},
               "kernel_regularizer": {"l2": 0.001}, "bias_constraint": None, "name": "c", "trainable": False},
              {"layer_name": "BatchNormalization", "momentum": 0.9, "beta_regularizer": None},
              {"layer_name": "Dropout", "rate": 0.5, "seed": 3, "noise_shape": None}]
    module = translate(KerasConfig(layers, (4, 4, 1), Where()))
    assert module.output_shape == (2, 2, 2)


def test_weights_that_do_not_fit_are_one_line(tmp_path):
    layers = [{"layer_name": "Flatten"}, {"layer_name": "Dense", "units": 3}]
    path = write_weights(tmp_path / "weights.hdf5", keras_model([{"layer_name": "Flatten"},
                                                                 {"layer_name": "Dense", "units": 4}], (2, 2, 1)))
    module = translate(KerasConfig(layers, (2, 2, 1), Where("t", "m")))
    with pytest.raises(UserError, match=r"task t, model m, layer 1 \(Dense\): weights.hdf5 group wrapped_layer_1"):
        load_weights(module, path)


def test_a_truncated_weight_file_is_one_line(tmp_path):
    layers = [{"layer_name": "Flatten"}, {"layer_name": "Dense", "units": 3}]
    folder = tmp_path / "model_3"
    whole = write_weights(folder / "weights.hdf5", keras_model(layers, (2, 2, 1))).read_bytes()
    (folder / "weights.hdf5").write_bytes(whole[: len(whole) // 2])
    (folder / "config.json").write_text(json.dumps({"model_config": layers, "input_shape": [2, 2, 1]}))
    with pytest.raises(UserError) as found:
        build(folder, Where("t", "model_3"))
    assert "\n" not in str(found.value) and "weights.hdf5" in str(found.value) and "truncated" in str(found.value)
