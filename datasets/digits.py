"""The offline default dataset: scikit-learn's bundled 8x8 handwritten digits, as 32x32 images.

1,797 real scans in 10 classes ship with scikit-learn, so the demo and the tests need no download.
Images are upsampled bilinearly to 32x32 (the input size of the CIFAR-style models) and split into
a fixed, seeded, stratified train/test split.

Importing scikit-learn takes about 1.5 s on 2 cores, paid by every process that reads the digits (a
sweep member's training and its analyses, each CLI run): the pixels are read from the CSV file that
scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``, as its ``load_digits`` reads it) and the
split's test indices from ``digits_test_indices.json`` (``train_test_split``'s, stored once;
tests/test_datasets.py checks both against scikit-learn). Where either does not fit (another
scikit-learn), scikit-learn computes them.
"""
from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from datasets.sources import TensorSource

IMAGE_SIZE = 32
TEST_FRACTION = 0.25
SPLIT_SEED = 0
SAMPLES = 1797
BUNDLED = ("datasets", "data", "digits.csv.gz")  # inside scikit-learn's package
STORED_SPLIT = Path(__file__).with_name("digits_test_indices.json")


def bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images (1797, 8, 8) in 0..16, labels (1797,))`` as ``sklearn.datasets.load_digits`` gives them,
    read from its CSV file without importing scikit-learn (with it where the file is elsewhere)."""
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0], *BUNDLED) if locations else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target.astype(np.int64)
    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)


@functools.lru_cache(maxsize=1)
def _all_digits() -> tuple[torch.Tensor, np.ndarray]:
    """Every digit as a uint8 image (1, 32, 32), and the labels (read once per process)."""
    images, targets = bundled_digits()
    pixels = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
    pixels = F.interpolate(pixels, size=IMAGE_SIZE, mode="bilinear", align_corners=False)
    return (pixels * 255).round().clamp(0, 255).to(torch.uint8), targets


def split_by_scikit_learn(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``train_test_split`` of the positions, stratified by ``targets``, seeded: ``(train, test)``, sorted."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(targets))
    train, test = train_test_split(indices, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=targets)
    return np.sort(train), np.sort(test)


def train_test_indices(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The split of :func:`split_by_scikit_learn`: the stored one for the 1,797 bundled digits."""
    if len(targets) != SAMPLES:
        return split_by_scikit_learn(targets)
    test = np.array(json.loads(STORED_SPLIT.read_text())["test_indices"], dtype=np.int64)
    return np.setdiff1d(np.arange(len(targets)), test), test


def read_digits(root: str, train: bool, download: bool) -> TensorSource:
    """Read the train or test part of the digits; ``root`` and ``download`` are not needed."""
    images, targets = _all_digits()
    train_idx, test_idx = train_test_indices(targets)
    chosen = train_idx if train else test_idx
    return TensorSource(images[torch.from_numpy(chosen)], targets[chosen], [str(d) for d in range(10)])
