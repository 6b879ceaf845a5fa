"""Rebuilding models for analysis: from a snapshot (ours or the reference's), the zoo, or a seed.

Our snapshots describe themselves, so ``arch``/``dataset`` are optional and, when given, must
agree. Plain state dicts (the reference's files) need ``arch`` and ``dataset``; their shape then
follows from the dataset, the class subset and the upscaling flags.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from datasets import get_dataset_spec
from datasets.transforms import UPSCALE_SIZE
from models.registry import get_model
from utils.checkpoints import is_reference_file, load_checkpoint, load_model_state, reference_epoch
from utils.errors import UserError

PRETRAINED_EPOCH = -1


@dataclass
class LoadedModel:
    """A model ready for analysis and what is known about where it came from."""

    model: nn.Module
    arch: str
    dataset: str
    num_classes: int
    in_channels: int
    image_size: int
    epoch: int | None
    seed: int | None
    path: Path | None = None
    args: dict = field(default_factory=dict)  # the training run's arguments, when known
    data: dict = field(default_factory=dict)  # the training run's data facts (classes, view), when known
    reference: bool = False  # a file without our header: the reference tool's (its conventions apply)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)

    @property
    def stem(self) -> str:
        """Name used for result files: the snapshot's file stem, or pretrained_/init_<arch>."""
        if self.path is not None:
            return self.path.stem
        return f"pretrained_{self.arch}" if self.epoch == PRETRAINED_EPOCH else f"init_{self.arch}"


def model_shape(dataset: str, *, subsample_classes: int = 0, upscale: bool = False) -> tuple[int, int, int]:
    """(num_classes, in_channels, image_size) of a model trained on ``dataset`` with these options."""
    spec = get_dataset_spec(dataset)
    if subsample_classes < 0 or subsample_classes > spec.num_classes:
        raise UserError(f"--subsample-classes {subsample_classes} is out of range for {dataset} "
                        f"({spec.num_classes} classes)")
    return subsample_classes or spec.num_classes, spec.in_channels, UPSCALE_SIZE if upscale else spec.image_size


def _check_agrees(name: str, given, stored, path: Path) -> None:
    if given is not None and stored is not None and given != stored:
        raise UserError(f"--{name} {given} disagrees with snapshot {path} ({stored}); drop the flag or fix it")


def load_snapshot_model(
    path: str | Path,
    *,
    arch: str | None = None,
    dataset: str | None = None,
    subsample_classes: int | None = None,
    upscale: bool = False,
    seed: int | None = None,
    like: "LoadedModel | None" = None,
    device: torch.device | str = "cpu",
) -> LoadedModel:
    """Load ``path`` into a freshly built model (see the module docstring).

    ``like``: a plain file is rebuilt in that model's shape (its architecture, dataset, classes and
    input size): an initialization or checkpoint compared with it.
    """
    if like is not None:
        arch, dataset = arch or like.arch, dataset or like.dataset
    path = Path(path)
    checkpoint = load_checkpoint(path)
    if not is_reference_file(checkpoint):
        stored_args = checkpoint.get("args") or {}
        _check_agrees("arch", arch, checkpoint["arch"], path)
        _check_agrees("dataset", dataset, checkpoint.get("dataset"), path)
        if subsample_classes:
            _check_agrees("subsample-classes", subsample_classes, stored_args.get("subsample_classes"), path)
        arch, dataset = checkpoint["arch"], checkpoint["dataset"]
        shape = (checkpoint["num_classes"], checkpoint["in_channels"], checkpoint["image_size"])
        epoch, seed, args = checkpoint.get("epoch"), checkpoint.get("seed", seed), stored_args
        data, reference = checkpoint.get("data") or {}, False
    else:
        if arch is None or dataset is None:
            raise UserError(f"{path} holds plain weights without a description; pass --arch and --dataset")
        shape = (like.num_classes, like.in_channels, like.image_size) if like is not None else \
            model_shape(dataset, subsample_classes=subsample_classes or 0, upscale=upscale)
        epoch, args, data, reference = reference_epoch(path), {}, {}, True
    model = get_model(arch, shape[0], shape[1], image_size=shape[2], check_input=False)
    load_model_state(model, checkpoint["model_state_dict"], source=str(path))
    return LoadedModel(model.to(device).eval(), arch, dataset, *shape, epoch, seed, path, args, data, reference)


def fresh_model(
    arch: str,
    dataset: str,
    *,
    pretrained: bool = False,
    seed: int | None = None,
    subsample_classes: int = 0,
    upscale: bool = False,
    download: bool = False,
    check_input: bool = True,
    device: torch.device | str = "cpu",
) -> LoadedModel:
    """The zoo's pretrained weights (epoch -1) or one random initialization seeded by ``seed`` (epoch 0)."""
    num_classes, in_channels, image_size = model_shape(dataset, subsample_classes=subsample_classes, upscale=upscale)
    if seed is not None:
        torch.manual_seed(seed)
    model = get_model(arch, num_classes, in_channels, pretrained, image_size=image_size, download=download,
                      check_input=check_input)
    epoch = PRETRAINED_EPOCH if pretrained else 0
    return LoadedModel(model.to(device).eval(), arch, dataset, num_classes, in_channels, image_size, epoch, seed)
