"""The offline default dataset: scikit-learn's bundled 8x8 handwritten digits, as 32x32 images.

1,797 real scans in 10 classes ship with scikit-learn, so the demo and the tests need no download.
Images are upsampled bilinearly to 32x32 (the input size of the CIFAR-style models) and split into
a fixed, seeded, stratified train/test split.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from datasets.sources import TensorSource

IMAGE_SIZE = 32
TEST_FRACTION = 0.25
SPLIT_SEED = 0


def _all_digits() -> tuple[torch.Tensor, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    pixels = F.interpolate(pixels, size=IMAGE_SIZE, mode="bilinear", align_corners=False)
    images = (pixels * 255).round().clamp(0, 255).to(torch.uint8)
    return images, digits.target.astype(np.int64)


def train_test_indices(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(targets))
    train, test = train_test_split(
        indices, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=targets
    )
    return np.sort(train), np.sort(test)


def read_digits(root: str, train: bool, download: bool) -> TensorSource:
    """Read the train or test part of the digits; ``root`` and ``download`` are not needed."""
    images, targets = _all_digits()
    train_idx, test_idx = train_test_indices(targets)
    chosen = train_idx if train else test_idx
    return TensorSource(images[torch.from_numpy(chosen)], targets[chosen], [str(d) for d in range(10)])
