"""Dataset registry, readers for the standard on-disk formats, corruptions and splits."""
from datasets.data import DataBundle, Split, build_data
from datasets.options import DataOptions
from datasets.registry import DatasetSpec, get_dataset_spec, list_datasets, register_dataset

# Importing the catalog registers the datasets.
from datasets import catalog  # noqa: F401  isort:skip

__all__ = [
    "DataBundle",
    "DataOptions",
    "DatasetSpec",
    "Split",
    "build_data",
    "get_dataset_spec",
    "list_datasets",
    "register_dataset",
]
