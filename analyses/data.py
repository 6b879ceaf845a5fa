"""The data a snapshot was trained on, for the analyses that evaluate it (DSE, HSIC, reinit).

A snapshot's run fixed its data options (class subset, validation split, upscaling,
normalization): its stored arguments win, and a flag that disagrees with them is an error. Plain
weight files (the reference's) take them from the flags, else from ``datasets.DataOptions``'s
defaults (the reference's).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import datasets
from analyses.loading import LoadedModel
from utils.errors import UserError

# Data options a training run fixes that change the validation and test splits the analyses see.
RUN_DATA_OPTIONS = ("subsample_classes", "class_sample_seed", "split", "stratified", "split_seed", "shuffle",
                    "upscale", "upscale_padding", "unnormalize")
DEFAULTS = datasets.DataOptions()


def _given(name: str, value) -> bool:
    """A flag the user set: store_true flags are False and --subsample-classes 0 when not given."""
    return value is not None and value is not False and not (name == "subsample_classes" and value == 0)


@dataclass(frozen=True)
class DataSettings:
    """``--data-path``, ``--download`` and the data options given on the command line."""

    data_path: str | None = None
    download: bool = False
    given: tuple[tuple[str, object], ...] = ()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "DataSettings":
        given = tuple((name, getattr(args, name)) for name in RUN_DATA_OPTIONS
                      if _given(name, getattr(args, name, None)))
        return cls(getattr(args, "data_path", None), bool(getattr(args, "download", False)), given)

    def options(self, loaded: LoadedModel) -> datasets.DataOptions:
        """The data options of the run that wrote ``loaded``."""
        stored, values = loaded.args or {}, {}
        for name, value in self.given:
            if name in stored and value != stored[name]:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} {value} disagrees with snapshot {loaded.path}, trained with "
                                f"{name}={stored[name]}; drop the flag (the snapshot knows its data)")
            values[name] = value
        for name in RUN_DATA_OPTIONS:
            if name in stored:
                values[name] = stored[name]
        values["subsample_classes"] = values.get("subsample_classes") or 0
        data_path = self.data_path or stored.get("data_path") or DEFAULTS.data_path
        return datasets.DataOptions(data_path=data_path, download=self.download, **values)


def describe_shape(num_classes: int, channels: int, size: int) -> str:
    return f"{num_classes} classes, {channels}x{size}x{size} inputs"


class SnapshotData:
    """The data bundle of each snapshot's run, built once per dataset and options."""

    def __init__(self, settings: DataSettings) -> None:
        self.settings = settings
        self._cache: dict[tuple, datasets.DataBundle] = {}

    def __call__(self, loaded: LoadedModel) -> datasets.DataBundle:
        options = self.settings.options(loaded)
        key = (loaded.dataset, options)
        if key not in self._cache:
            self._cache[key] = datasets.build_data(loaded.dataset, options)
        data = self._cache[key]
        shape = (data.num_classes, data.in_channels, data.image_size)
        expected = (loaded.num_classes, loaded.in_channels, loaded.image_size)
        if shape != expected:
            raise UserError(f"the data of {loaded.dataset} ({describe_shape(*shape)}) do not fit {loaded.stem} "
                            f"({describe_shape(*expected)}); check --subsample-classes and --upscale")
        return data
