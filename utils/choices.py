"""What every CLI prints when --arch or --dataset is missing, and the device flags they share."""
from __future__ import annotations

import argparse


def print_missing_choice(args: argparse.Namespace, *, needs_dataset: bool = True) -> bool:
    """Without --arch list the architectures; without --dataset the datasets (as the reference does).

    Returns True when something was listed (the CLI then exits 0).
    """
    import datasets
    import models

    if getattr(args, "arch", None) is None:
        print("Supported architectures:\n  " + "\n  ".join(models.list_models()))
        print("(and any torchvision classification model by name)")
        return True
    if needs_dataset and getattr(args, "dataset", None) is None:
        print("Supported datasets:")
        for name in datasets.list_datasets():
            print(f"  {name:14s}{datasets.get_dataset_spec(name).description}")
        return True
    return False


def add_device_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cuda", action="store_true", help="Enable GPU support [default = off].")
    parser.add_argument("--device", default=None,
                        help="Device to use, e.g. cpu, cuda, cuda:1 (overrides --cuda) [default = cpu].")
