"""Dataset registry, readers for the standard on-disk formats, corruptions and splits.

The names below are imported when first used (PEP 562): ``datasets.options``, which the result schema
reads, and the CLIs' parsers then import neither torch nor the readers. The registry loads the
catalog of datasets (``datasets.catalog``) the first time it is asked for one.
"""
from __future__ import annotations

import importlib

_HOMES = {"DataBundle": "datasets.data", "Split": "datasets.data", "build_data": "datasets.data",
          "DataOptions": "datasets.options", "DatasetSpec": "datasets.registry",
          "get_dataset_spec": "datasets.registry", "list_datasets": "datasets.registry",
          "register_dataset": "datasets.registry"}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'datasets' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
