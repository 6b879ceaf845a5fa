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
from analyses.subject import Subject
from datasets.options import SPLITS, data_flags
from datasets.reference import SNAPSHOT, add_convention_arguments, resolve_conventions
from utils.errors import UserError
from utils.notices import notice

# Data options a training run fixes that change the validation and test splits the analyses see.
RUN_DATA_OPTIONS = data_flags(SPLITS)  # (+ normalization, class_order: conventions())
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

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """The data flags of the analysis CLIs that evaluate a model: where its dataset is, and the
        options of its run that change the splits (for plain reference files; snapshots know them).
        ``--subsample-classes``, ``--upscale`` and ``--upscale-padding`` are :class:`SourceSettings`'."""
        parser.add_argument("--data-path", default=None, help="Path to the local dataset files [default = the snapshot's run's, else './data'].")
        parser.add_argument("--split", type=float, default=None, help="Validation split size the model was trained with (plain reference files and zoo models; snapshots know) [default = 0].")
        parser.add_argument("--stratified", action="store_true", help="The validation split was stratified (as --split) [default = off].")
        parser.add_argument("--split-seed", type=int, default=None, help="Seed of the validation split (as --split) [default = 42].")
        parser.add_argument("--class-sample-seed", type=int, default=None, help="Seed used for sampling classes with --subsample-classes (as --split) [default = the snapshot's, else 42].")
        parser.add_argument("--unnormalize", action="store_true", help="The model was trained on unnormalized [0,1] pixels (as --split) [default = off].")
        add_convention_arguments(parser, shuffle_flag=True)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DataSettings:
        given = tuple((name, getattr(args, name)) for name in RUN_DATA_OPTIONS if _given(name, getattr(args, name)))
        return cls(args.data_path, bool(args.download), given, args.normalization, args.class_order)

    def conventions(self, subject: Subject, values: dict) -> dict:
        """``normalization`` and ``class_order`` for ``subject`` (:func:`datasets.reference.resolve_conventions`)."""
        return resolve_conventions(self.normalization, self.class_order, reference_file=subject.reference,
                                   dataset=subject.dataset, upscale=bool(values.get("upscale")),
                                   upscale_padding=bool(values.get("upscale_padding")),
                                   subsample_classes=values["subsample_classes"], stored=subject.args or {},
                                   what=str(subject.path or subject.stem))

    def options(self, subject: Subject) -> datasets.DataOptions:
        """The data options of the run that wrote ``subject``."""
        stored, values = subject.args or {}, {}
        for name, value in self.given:
            if name in stored and value != stored[name]:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} {value} disagrees with snapshot {subject.path}, trained with "
                                f"{name}={stored[name]}; drop the flag (the snapshot knows its data)")
            values[name] = value
        for name in RUN_DATA_OPTIONS:
            if name in stored:
                values[name] = stored[name]
        values["subsample_classes"] = values.get("subsample_classes") or 0
        values |= self.conventions(subject, values)
        data_path = self.data_path or stored.get("data_path") or DEFAULTS.data_path
        return datasets.DataOptions(data_path=data_path, download=self.download, **values)


def describe_shape(num_classes: int, channels: int, size: int) -> str:
    return f"{num_classes} classes, {channels}x{size}x{size} inputs"


class DataBundles:
    """The data bundle of each model's run, built once per dataset and options (a cache: it keeps no
    model)."""

    def __init__(self, settings: DataSettings) -> None:
        self.settings = settings
        self._cache: dict[tuple, datasets.DataBundle] = {}

    def of(self, subject: Subject) -> tuple[datasets.DataBundle, dict]:
        """``(bundle, conventions)`` of ``subject``'s run: its data, and how they were made (for its
        documents)."""
        options = self.settings.options(subject)
        recorded = recorded_statistics(subject, options) if self.settings.normalization == SNAPSHOT else None
        key = (subject.dataset, options, recorded)
        if key not in self._cache:
            self._cache[key] = keep_statistics(datasets.build_data(subject.dataset, options), recorded, subject)
        data = self._cache[key]
        shape = (data.num_classes, data.in_channels, data.image_size)
        expected = (subject.num_classes, subject.in_channels, subject.image_size)
        if shape != expected:
            raise UserError(f"the data of {subject.dataset} ({describe_shape(*shape)}) do not fit {subject.stem} "
                            f"({describe_shape(*expected)}); check --subsample-classes and --upscale")
        return data, conventions_of(data)


def conventions_of(data: datasets.DataBundle) -> dict:
    """How ``data`` were made: normalization and its statistics, class order and the classes."""
    view = data.test.view
    return {"normalization": data.options.normalization, "mean": view.mean, "std": view.std,
            "class_order": data.options.class_order, "classes": data.classes.tolist()}


def recorded_statistics(subject: Subject, options: datasets.DataOptions) -> tuple | None:
    """The normalization our snapshot recorded for its view, when it has one for these options."""
    view = (subject.data_facts or {}).get("view") or {}
    stored = subject.args or {}
    if not view or view.get("mean") is None or options.normalization != stored.get("normalization", "dataset"):
        return None
    return tuple(view["mean"]), tuple(view["std"])


def keep_statistics(data: datasets.DataBundle, recorded: tuple | None, subject: Subject) -> datasets.DataBundle:
    """Our snapshots keep the normalization they were trained with, even if this version's differs."""
    if recorded is None or data.test.view.mean is None:
        return data
    mean, std = recorded
    if (tuple(data.test.view.mean), tuple(data.test.view.std)) == (mean, std):
        return data
    notice(f"recorded-view:{recorded}", "%s was trained with normalization mean %s, std %s, which it recorded; "
           "using them (this version computes %s, %s; --normalization dataset uses ours)", subject.stem, mean, std,
           data.test.view.mean, data.test.view.std)
    for split in (data.train, data.val, data.test):
        if split is not None:
            split.view = dataclasses.replace(split.view, mean=mean, std=std)
    return data
