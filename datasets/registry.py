"""Dataset registry: one :class:`DatasetSpec` per dataset, looked up by name. The catalog of the
suite's datasets (``datasets.catalog``) registers itself the first time one is looked up or listed."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from utils.errors import UserError

_REGISTRY: dict[str, DatasetSpec] = {}
_CATALOG = "datasets.catalog"


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is and how to read it.

    ``reader(root, train, download)`` returns an image source for the train or test files;
    ``required_files`` (relative to ``--data-path``) are checked first, for a clear error.
    ``image_size`` is the native side length the network sees without upscaling; ``mean``/``std``
    are per-channel statistics of the native training images in [0, 1].
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    reader: Callable
    description: str
    required_files: tuple[str, ...] = ()
    hflip: bool = False
    in_memory: bool = True
    citation: str = field(default="", compare=False)


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _load_catalog() -> None:
    importlib.import_module(_CATALOG)  # registers its datasets, once


def list_datasets() -> list[str]:
    _load_catalog()
    return sorted(_REGISTRY)


def get_dataset_spec(name: str) -> DatasetSpec:
    _load_catalog()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(list_datasets())}") from None
