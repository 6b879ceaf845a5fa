"""Image sources: the raw train or test images of a dataset, before any option is applied.

Two kinds: :class:`TensorSource` keeps every image in memory as uint8 ``(N, C, H, W)``;
:class:`FolderSource` reads image files one by one (ImageNet-style folders). torchvision is imported
when a reader runs, not before: the CLIs' ``--help`` and argument errors need none of it.
"""
from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from utils.errors import UserError


@dataclass
class TensorSource:
    """In-memory images ``(N, C, H, W)`` uint8 and integer labels ``(N,)``."""

    images: torch.Tensor
    targets: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.targets)

    @functools.cached_property
    def images_hwc(self) -> np.ndarray:
        """The images as one contiguous ``(N, H, W, C)`` uint8 array (what PIL reads), made once per
        source, whichever splits read it."""
        return np.ascontiguousarray(self.images.permute(0, 2, 3, 1).numpy())


@dataclass
class FolderSource:
    """A torchvision ``ImageFolder``; images are decoded when a batch needs them."""

    folder: object  # a torchvision.datasets.ImageFolder

    @property
    def targets(self) -> np.ndarray:
        return np.asarray(self.folder.targets, dtype=np.int64)

    @property
    def class_names(self) -> list[str]:
        return list(self.folder.classes)

    def __len__(self) -> int:
        return len(self.folder.targets)


def check_files(dataset: str, root: str, required: Sequence[str], *, download: bool) -> None:
    """Raise a clear :class:`UserError` when files the reader needs are missing."""
    if download:
        return
    missing = [os.path.join(root, rel) for rel in required if not os.path.exists(os.path.join(root, rel))]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(
            f"dataset {dataset!r}: missing {missing[0]}{more}; put the dataset's standard files under "
            f"--data-path {root} or pass --download"
        )


def _uint8_nchw(data, in_channels: int) -> torch.Tensor:
    """torchvision keeps ``.data`` as (N,H,W), (N,H,W,C) or (N,C,H,W); return uint8 (N,C,H,W)."""
    tensor = torch.as_tensor(np.asarray(data))
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)
    elif tensor.shape[1] != in_channels and tensor.shape[-1] == in_channels:
        tensor = tensor.permute(0, 3, 1, 2)
    return tensor.to(torch.uint8).contiguous()


def _skip_checksum(cls):
    """A subclass of a torchvision dataset that trusts files already on disk.

    torchvision verifies MD5 sums of the official archives; we check presence ourselves and let
    parsing errors surface, so files in the right format (a local copy, a test fixture) load.
    """
    attributes = {"_check_integrity": lambda self: True}
    if isinstance(getattr(cls, "meta", None), dict):  # CIFAR checks its metadata file separately
        attributes["meta"] = {**cls.meta, "md5": None}
    return type(cls.__name__, (cls,), attributes)


def torchvision_reader(name: str, *, in_channels: int, split_arg: str = "train", verify_checksum: bool = True):
    """A generic reader for the torchvision dataset class ``name`` (``torchvision.datasets.<name>``), which
    exposes ``.data`` and ``.targets``/``.labels``.

    ``split_arg`` is ``"train"`` (bool argument, MNIST/CIFAR) or ``"split"`` (``"train"``/``"test"``,
    SVHN).
    """

    def read(root: str, train: bool, download: bool) -> TensorSource:
        import torchvision

        cls = getattr(torchvision.datasets, name)
        dataset_cls = cls if (download or not verify_checksum) else _skip_checksum(cls)
        split = {"train": train} if split_arg == "train" else {"split": "train" if train else "test"}
        try:
            dataset = dataset_cls(root=root, download=download, **split)
        except (RuntimeError, OSError, ValueError, KeyError, EOFError, TypeError, pickle.UnpicklingError) as err:
            raise UserError(
                f"cannot read {cls.__name__} from {root}: {err}; check the files or pass --download"
            ) from err
        labels = getattr(dataset, "targets", None)
        if labels is None:
            labels = dataset.labels
        names = list(getattr(dataset, "classes", [])) or [str(c) for c in sorted(set(np.asarray(labels).tolist()))]
        return TensorSource(_uint8_nchw(dataset.data, in_channels), np.asarray(labels, dtype=np.int64), names)

    return read


def image_folder_reader(root: str, train: bool, download: bool) -> FolderSource:
    """``<root>/train`` and ``<root>/val`` class-per-folder image trees."""
    import torchvision

    path = os.path.join(root, "train" if train else "val")
    try:
        folder = torchvision.datasets.ImageFolder(path)
    except (FileNotFoundError, OSError) as err:
        raise UserError(f"cannot read image folders in {path}: {err}") from err
    return FolderSource(folder)
