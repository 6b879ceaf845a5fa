"""The data options of a run, and the roles each plays: the one list of train.py's data flags.

Every list of data flags elsewhere (what a resumed run must keep, which flags change the splits an
analysis sees, which are factors of a family's design) is derived from the roles here, with
:func:`data_flags`. This module imports nothing heavy, so that ``schema`` can read it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from datasets.reference import CLASS_ORDERS, NORMALIZATIONS
from utils.errors import UserError

PIXEL_SHUFFLE = -1.0
PIXEL_SHUFFLE_MODES = ("per_image", "shared")

# Roles of a data option:
IDENTITY = "identity"  # defines the run: a resumed run keeps it, and a flag that disagrees is an error
HYPER = "hyper"  # a training hyperparameter: a resumed run keeps it unless --override
SPLITS = "splits"  # changes the validation and test splits an analysis of the run's model sees
DESIGN = "design"  # a factor of a family's design (the levels of compare_runs.py)


def _option(default, *roles: str, flag: str | None = None):
    """A field with its roles and, when it differs from the field's name, train.py's destination."""
    return field(default=default, metadata={"roles": roles, "flag": flag})


@dataclass(frozen=True)
class DataOptions:
    """Every option that changes the data; defaults reproduce the reference tool's."""

    data_path: str = _option("./data")
    download: bool = _option(False)
    subsample_classes: int = _option(0, IDENTITY, SPLITS, DESIGN)
    class_sample_seed: int = _option(42, IDENTITY, SPLITS)
    noise: float = _option(0.0, IDENTITY, DESIGN)
    noise_seed: int = _option(12345, IDENTITY)
    pixel_shuffle_mode: str = _option("per_image", IDENTITY, DESIGN, flag="pixel_shuffle")
    split: float = _option(0.0, IDENTITY, SPLITS, DESIGN)
    stratified: bool = _option(False, IDENTITY, SPLITS, DESIGN)
    split_seed: int = _option(42, IDENTITY, SPLITS)
    shuffle: bool = _option(False, IDENTITY, SPLITS)
    augmentation: bool = _option(False, HYPER, DESIGN)
    upscale: bool = _option(False, IDENTITY, SPLITS, DESIGN)
    upscale_padding: bool = _option(False, IDENTITY, SPLITS, DESIGN)
    unnormalize: bool = _option(False, IDENTITY, SPLITS, DESIGN)
    # "reference": the reference tool's constants (datasets/reference.py)
    normalization: str = _option("dataset", IDENTITY)
    # "reference": the reference's subset, in the order it drew it
    class_order: str = _option("sorted", IDENTITY)

    def validate(self) -> None:
        if self.upscale and self.upscale_padding:
            raise UserError("--upscale and --upscale-padding exclude each other; choose one")
        if not (self.noise == PIXEL_SHUFFLE or 0.0 <= self.noise <= 1.0):
            raise UserError(f"--noise {self.noise} is out of range; use a ratio in [0, 1], or -1 for pixel shuffle")
        if not 0.0 <= self.split < 1.0:
            raise UserError(f"--split {self.split} is out of range; use a fraction in [0, 1)")
        if self.normalization not in NORMALIZATIONS:
            raise UserError(f"unknown normalization {self.normalization!r}; choose {' or '.join(NORMALIZATIONS)}")
        if self.class_order not in CLASS_ORDERS:
            raise UserError(f"unknown class order {self.class_order!r}; choose {' or '.join(CLASS_ORDERS)}")
        if self.pixel_shuffle_mode not in PIXEL_SHUFFLE_MODES:
            raise UserError(
                f"unknown pixel shuffle mode {self.pixel_shuffle_mode!r}; choose {' or '.join(PIXEL_SHUFFLE_MODES)}"
            )

    @property
    def pixel_shuffle(self) -> bool:
        return self.noise == PIXEL_SHUFFLE


def data_flags(role: str) -> tuple[str, ...]:
    """train.py's destinations (``args.<name>``) of the data options that play ``role``, in field order."""
    return tuple(option.metadata["flag"] or option.name for option in dataclasses.fields(DataOptions)
                 if role in option.metadata["roles"])


def flag_of(name: str) -> str:
    """train.py's destination of the data option ``name``."""
    return next(option.metadata["flag"] or option.name for option in dataclasses.fields(DataOptions)
                if option.name == name)
