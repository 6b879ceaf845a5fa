"""The training data of a PGDL task (``<task>/dataset_1/train/shard_*.tfrecord``) as an in-memory source.

Each record is a ``tf.train.Example`` with two bytes features, ``inputs`` and ``output``, each a
serialized tensor (``datasets/tfrecord.py``): a float32 ``(H, W, C)`` image and an int32 label.
The images become ``(N, C, H, W)`` float32 exactly as stored: the competition's models were trained
on these values, so no normalization of ours is applied. Shards are read in the order of their
numbers (``shard_1``, ``shard_2``, ..., ``shard_10``), records in file order.

The tasks give no held-out data: the bundle's training split is the task's data, and so is its
probe split (DSE, HSIC), named ``train`` in every document; its test split is empty.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from datasets.data import DataBundle, Split
from datasets.options import DataOptions
from datasets.registry import DatasetSpec
from datasets.sources import TensorSource
from datasets.tfrecord import bytes_features, count_records, records, tensor_array
from datasets.transforms import ImageView
from utils.errors import UserError

DATA_FOLDER = Path("dataset_1") / "train"
FEATURES = ("inputs", "output")


def _number(path: Path) -> int:
    found = re.fullmatch(r"shard_(\d+)\.tfrecord", path.name)
    return int(found.group(1)) if found else -1


def shard_paths(task_dir: str | Path) -> list[Path]:
    """The task's training shards in the order of their numbers; none is a :class:`UserError`."""
    folder = Path(task_dir) / DATA_FOLDER
    found = sorted((path for path in folder.glob("shard_*.tfrecord") if _number(path) >= 0), key=_number)
    if not found:
        raise UserError(f"task {Path(task_dir).name}: no training data in {folder} (shard_<n>.tfrecord files); "
                        "lay out the task as the competition's public_data/input_data/<task>/ is")
    return found


def check_shards(task_dir: str | Path) -> int:
    """The number of training examples, every shard's framing checked (a truncated file is a UserError)."""
    return sum(count_records(path) for path in shard_paths(task_dir))


def _example(record: bytes, where: str) -> tuple[np.ndarray, int]:
    found = bytes_features(record)
    missing = [name for name in FEATURES if name not in found]
    if missing:
        raise UserError(f"{where} has no bytes feature {missing[0]!r} (it has {', '.join(found) or 'none'}); it is "
                        "not PGDL training data")
    try:
        image, label = tensor_array(found["inputs"]), tensor_array(found["output"])
    except ValueError as err:  # protobuf's DecodeError is a ValueError too
        raise UserError(f"{where}: {err}") from None
    if image.ndim != 3 or label.size != 1:
        raise UserError(f"{where} holds an input of shape {image.shape} and an output of shape {label.shape}; "
                        "PGDL's are an (H, W, C) image and one label")
    return image, int(label.reshape(-1)[0])


def read_examples(task_dir: str | Path, *, limit: int | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """``(images (N, C, H, W) float32, labels (N,) int64)`` of the task's shards, in shard order (the
    first ``limit`` examples when given)."""
    images, labels = [], []
    for path in shard_paths(task_dir):
        for number, record in enumerate(records(path)):
            if limit is not None and len(labels) >= limit:
                break
            image, label = _example(record, f"{path}: record {number}")
            if images and image.shape != images[0].shape:
                raise UserError(f"{path}: record {number} holds an image of shape {image.shape}, the first "
                                f"{images[0].shape}; one task's images share one shape")
            images.append(image)
            labels.append(label)
    if not labels:
        raise UserError(f"task {Path(task_dir).name}: its shards hold no example")
    stacked = torch.from_numpy(np.stack(images).astype(np.float32, copy=False))
    return stacked.permute(0, 3, 1, 2).contiguous(), np.asarray(labels, dtype=np.int64)


def task_bundle(task: str, images: torch.Tensor, labels: np.ndarray, *, num_classes: int) -> DataBundle:
    """The data of a task's models as a :class:`datasets.DataBundle` (see the module docstring)."""
    if labels.min() < 0 or labels.max() >= num_classes:
        raise UserError(f"task {task}: labels from {labels.min()} to {labels.max()} do not fit models with "
                        f"{num_classes} outputs")
    channels, height, width = images.shape[1:]
    if height != width:
        raise UserError(f"task {task}: images of {height}x{width} pixels; the analyses take square images")
    spec = DatasetSpec(f"pgdl-{task}", num_classes, channels, height, (), (), reader=None,
                       description=f"the training data of PGDL task {task}")
    names = [str(label) for label in range(num_classes)]
    source = TensorSource(images, labels, names)
    view = ImageView(native_size=height)
    everything = np.arange(len(labels))
    train = Split("train", source, everything, labels, view)
    probe = Split("train", source, everything, labels, view)  # no held-out data: the probe is training data
    empty = Split("test", source, everything[:0], labels[:0], view)
    return DataBundle(spec, DataOptions(), np.arange(num_classes), names, train, probe, empty,
                      np.zeros(0, dtype=np.int64))


def conventions(task: str) -> dict:
    """How the data were made, for the documents of the analyses that read them."""
    return {"normalization": "none: the task's stored values", "mean": None, "std": None,
            "class_order": "the task's labels", "source": f"PGDL task {task}, {DATA_FOLDER}/shard_*.tfrecord"}
