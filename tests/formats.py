"""Writers of tiny datasets in the exact on-disk formats the readers expect (no mocks)."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """IDX3: big-endian magic 2051, count, rows, cols, then uint8 pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n, rows, cols = images.shape
    path.write_bytes(struct.pack(">iiii", 2051, n, rows, cols) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """IDX1: big-endian magic 2049, count, then uint8 labels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str, train: tuple, test: tuple) -> None:
    raw = root / folder / "raw"
    write_idx_images(raw / "train-images-idx3-ubyte", train[0])
    write_idx_labels(raw / "train-labels-idx1-ubyte", train[1])
    write_idx_images(raw / "t10k-images-idx3-ubyte", test[0])
    write_idx_labels(raw / "t10k-labels-idx1-ubyte", test[1])


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=2)


def write_cifar10(root: Path, train: tuple, test: tuple, batches: int = 5) -> None:
    """Pickled batches: {'data': (N, 3072) uint8 in CHW order, 'labels': list}, plus batches.meta."""
    folder = root / "cifar-10-batches-py"
    images, labels = train
    for b, chunk in enumerate(np.array_split(np.arange(len(labels)), batches), start=1):
        _pickle(folder / f"data_batch_{b}", {"data": images[chunk].reshape(len(chunk), -1), "labels": labels[chunk].tolist()})
    _pickle(folder / "test_batch", {"data": test[0].reshape(len(test[1]), -1), "labels": test[1].tolist()})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})


def write_cifar100(root: Path, train: tuple, test: tuple) -> None:
    folder = root / "cifar-100-python"
    for name, (images, labels) in (("train", train), ("test", test)):
        _pickle(folder / name, {"data": images.reshape(len(labels), -1), "fine_labels": labels.tolist(),
                                "coarse_labels": (labels // 5).tolist()})
    _pickle(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)]})


def write_svhn(root: Path, train: tuple, test: tuple) -> None:
    """.mat with X (32, 32, 3, N) uint8 and y (N, 1) where digit 0 is stored as 10."""
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in (("train_32x32.mat", train), ("test_32x32.mat", test)):
        stored = np.where(labels == 0, 10, labels).reshape(-1, 1).astype(np.uint8)
        savemat(root / name, {"X": np.transpose(images, (2, 3, 1, 0)), "y": stored})


def write_image_folder(root: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """``root/split/class<k>/<i>.png`` for images (N, H, W, 3) uint8."""
    from PIL import Image

    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / split / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")


def random_images(rng: np.random.Generator, n: int, shape: tuple, classes: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), labels.astype(np.int64)
