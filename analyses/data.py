"""The data a snapshot was trained on, for the analyses that evaluate it (DSE, HSIC, reinit).

A snapshot's run fixed its data options (class subset, validation split, upscaling,
normalization): its stored arguments win, and a flag that disagrees with them is an error. Plain
weight files (the reference's) take them from the flags, else from ``datasets.DataOptions``'s
defaults (the reference's).
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import datasets
from analyses.loading import LoadedModel
from datasets.reference import SNAPSHOT, resolve_conventions
from utils.errors import UserError
from utils.notices import notice

# Data options a training run fixes that change the validation and test splits the analyses see.
RUN_DATA_OPTIONS = ("subsample_classes", "class_sample_seed", "split", "stratified", "split_seed", "shuffle",
                    "upscale", "upscale_padding", "unnormalize")  # (+ normalization, class_order: conventions())
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
    normalization: str = SNAPSHOT  # --normalization: snapshot | dataset | reference
    class_order: str = SNAPSHOT  # --class-order: snapshot | sorted | reference

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "DataSettings":
        given = tuple((name, getattr(args, name)) for name in RUN_DATA_OPTIONS
                      if _given(name, getattr(args, name, None)))
        return cls(getattr(args, "data_path", None), bool(getattr(args, "download", False)), given,
                   getattr(args, "normalization", SNAPSHOT), getattr(args, "class_order", SNAPSHOT))

    def conventions(self, loaded: LoadedModel, values: dict) -> dict:
        """``normalization`` and ``class_order`` for ``loaded`` (:func:`datasets.reference.resolve_conventions`)."""
        return resolve_conventions(self.normalization, self.class_order, reference_file=loaded.reference,
                                   dataset=loaded.dataset, upscale=bool(values.get("upscale")),
                                   upscale_padding=bool(values.get("upscale_padding")),
                                   subsample_classes=values["subsample_classes"], stored=loaded.args or {},
                                   what=str(loaded.path or loaded.stem))

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
        values |= self.conventions(loaded, values)
        data_path = self.data_path or stored.get("data_path") or DEFAULTS.data_path
        return datasets.DataOptions(data_path=data_path, download=self.download, **values)


def describe_shape(num_classes: int, channels: int, size: int) -> str:
    return f"{num_classes} classes, {channels}x{size}x{size} inputs"


class SnapshotData:
    """The data bundle of each snapshot's run, built once per dataset and options."""

    def __init__(self, settings: DataSettings) -> None:
        self.settings = settings
        self._cache: dict[tuple, datasets.DataBundle] = {}
        self._last: tuple[LoadedModel, datasets.DataBundle] | None = None  # the model whose data were asked last

    def conventions(self, loaded: LoadedModel) -> dict | None:
        """How the data of ``loaded`` were made, for its documents (None: its analyses used no data)."""
        if self._last is None or self._last[0] is not loaded:
            return None
        data = self._last[1]
        view = data.test.view
        return {"normalization": data.options.normalization, "mean": view.mean, "std": view.std,
                "class_order": data.options.class_order, "classes": data.classes.tolist()}

    def __call__(self, loaded: LoadedModel) -> datasets.DataBundle:
        options = self.settings.options(loaded)
        recorded = recorded_statistics(loaded, options) if self.settings.normalization == SNAPSHOT else None
        key = (loaded.dataset, options, recorded)
        if key not in self._cache:
            self._cache[key] = keep_statistics(datasets.build_data(loaded.dataset, options), recorded, loaded)
        data = self._cache[key]
        self._last = (loaded, data)
        shape = (data.num_classes, data.in_channels, data.image_size)
        expected = (loaded.num_classes, loaded.in_channels, loaded.image_size)
        if shape != expected:
            raise UserError(f"the data of {loaded.dataset} ({describe_shape(*shape)}) do not fit {loaded.stem} "
                            f"({describe_shape(*expected)}); check --subsample-classes and --upscale")
        return data


def recorded_statistics(loaded: LoadedModel, options: datasets.DataOptions) -> tuple | None:
    """The normalization our snapshot recorded for its view, when it has one for these options."""
    view = (loaded.data or {}).get("view") or {}
    stored = loaded.args or {}
    if not view or view.get("mean") is None or options.normalization != stored.get("normalization", "dataset"):
        return None
    return tuple(view["mean"]), tuple(view["std"])


def keep_statistics(data: datasets.DataBundle, recorded: tuple | None, loaded: LoadedModel) -> datasets.DataBundle:
    """Our snapshots keep the normalization they were trained with, even if this version's differs."""
    if recorded is None or data.test.view.mean is None:
        return data
    mean, std = recorded
    if (tuple(data.test.view.mean), tuple(data.test.view.std)) == (mean, std):
        return data
    notice(f"recorded-view:{recorded}", "%s was trained with normalization mean %s, std %s, which it recorded; "
           "using them (this version computes %s, %s; --normalization dataset uses ours)", loaded.stem, mean, std,
           data.test.view.mean, data.test.view.std)
    for split in (data.train, data.val, data.test):
        if split is not None:
            split.view = dataclasses.replace(split.view, mean=mean, std=std)
    return data
