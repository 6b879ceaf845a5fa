"""From a dataset name and the user's options to train/validation/test splits that yield batches.

Order of operations: read sources -> keep the chosen classes (all splits) -> split validation off
the training set -> corrupt training labels or shuffle training pixels. Validation and test stay
clean. Every step is seeded so the same options give the same data.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from PIL import Image

from datasets.options import DataOptions
from datasets.reference import reference_classes, reference_statistics, view_kind
from datasets.registry import DatasetSpec, get_dataset_spec
from datasets.sampling import choose_classes, corrupt_labels, restrict_to_classes, split_indices
from datasets.sources import FolderSource, TensorSource, check_files
from datasets.transforms import (
    ImageView,
    folder_transform,
    make_view,
    pixel_permutation,
    sample_transform,
    shuffle_pixels,
    transform_batch,
)
from utils.errors import UserError

PIPELINES = ("fast", "dataloader")  # batches on the device, or per-sample PIL transforms in a DataLoader


@dataclass
class Split:
    """One part of the data (train, val or test): which source images, their labels, their view.

    ``indices`` point into ``source``; ``targets`` are the labels the network is trained or
    evaluated on (remapped to 0..k-1, and possibly corrupted). ``shuffle_ids`` holds, for pixel
    shuffle, the id whose seeded permutation each image gets (``shared`` mode: one for all).
    """

    name: str
    source: TensorSource | FolderSource
    indices: np.ndarray
    targets: np.ndarray
    view: ImageView
    shuffle_seed: int | None = None
    shuffle_shared: bool = False
    _device_images: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.indices)

    def permutations(self, positions: np.ndarray) -> torch.Tensor | None:
        """Pixel permutations ``(B, H*W)`` for the samples at ``positions``, or None."""
        if self.shuffle_seed is None:
            return None
        size = self.view.out_size**2
        if self.shuffle_shared:
            return pixel_permutation(size, self.shuffle_seed).expand(len(positions), size)
        return torch.stack([pixel_permutation(size, self.shuffle_seed, int(self.indices[p])) for p in positions])

    def images_on(self, device: torch.device) -> torch.Tensor:
        """This split's uint8 images, materialized once per device (in-memory sources only)."""
        key = str(device)
        if key not in self._device_images:
            chosen = self.source.images[torch.from_numpy(self.indices)]
            self._device_images[key] = chosen.to(device)
        return self._device_images[key]

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
        workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pipeline: str = "fast",
    ):
        """Iterable over ``(inputs, labels)`` batches on ``device``, sharded by ``rank``.

        ``pipeline="fast"`` cuts in-memory images on the device and transforms whole batches;
        ``"dataloader"`` goes through a DataLoader with per-sample PIL transforms (``workers``
        processes), as the reference tool does; image folders always take that path.
        """
        if batch_size < 1:
            raise UserError(f"--batch-size {batch_size} must be at least 1")
        device = torch.device(device)
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        if pipeline not in PIPELINES:
            raise UserError(f"unknown data pipeline {pipeline!r}; choose {' or '.join(PIPELINES)}")
        if isinstance(self.source, TensorSource) and pipeline == "fast":
            return TensorBatches(self, batch_size, shuffle, device, generator, rank, world_size)
        return LoaderBatches(self, batch_size, shuffle, device, generator, rank, world_size, workers)


class _Sharded:
    """One epoch's order of samples, cut into global batches and sharded across ranks.

    Rank ``r`` takes every ``world_size``-th sample of each global batch, so a step of a
    distributed run sees exactly the samples of the same step of a single-process run. A last
    global batch smaller than ``world_size`` is dropped so that every rank takes the same steps.
    """

    def __init__(self, split: Split, batch_size, shuffle, device, generator, rank, world_size) -> None:
        self.split, self.batch_size, self.shuffle = split, batch_size, shuffle
        self.device, self.generator, self.rank, self.world_size = device, generator, rank, world_size

    def __len__(self) -> int:
        n, steps = len(self.split), math.ceil(len(self.split) / self.batch_size)
        return steps - 1 if steps and n - (steps - 1) * self.batch_size < self.world_size else steps

    def global_batch_size(self, step: int) -> int:
        """Samples in global batch ``step`` across all ranks (for loss weighting)."""
        return min(self.batch_size, len(self.split) - step * self.batch_size)

    def local_positions(self):
        n = len(self.split)
        order = torch.randperm(n, generator=self.generator).numpy() if self.shuffle else np.arange(n)
        for step in range(len(self)):
            yield order[step * self.batch_size : (step + 1) * self.batch_size][self.rank :: self.world_size]


class TensorBatches(_Sharded):
    """The in-memory fast path: batches cut from device-resident uint8 images, transformed on device."""

    def __iter__(self):
        images = self.split.images_on(self.device)
        labels = torch.from_numpy(self.split.targets).to(self.device)
        for positions in self.local_positions():
            index = torch.from_numpy(positions).to(self.device)
            inputs = transform_batch(
                images[index],
                self.split.view,
                generator=self.generator,
                permutations=self.split.permutations(positions),
            )
            yield inputs, labels[index]


class _PerSampleDataset(torch.utils.data.Dataset):
    """One transformed sample at a time: decoded from a folder, or a PIL image of an in-memory one."""

    def __init__(self, split: Split) -> None:
        self.split = split
        folder = isinstance(split.source, FolderSource)
        self.transform = folder_transform(split.view) if folder else sample_transform(split.view)
        self.hwc = None if folder else split.source.images_hwc

    def __len__(self) -> int:
        return len(self.split)

    def _image(self, position: int):
        index = int(self.split.indices[position])
        if isinstance(self.split.source, FolderSource):
            path, _ = self.split.source.folder.samples[index]
            return self.split.source.folder.loader(path)
        image = self.hwc[index]
        return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)

    def __getitem__(self, position: int):
        image = self.transform(self._image(position))
        permutation = self.split.permutations(np.array([position]))
        if permutation is not None:
            image = shuffle_pixels(image[None], permutation)[0]
        return image, int(self.split.targets[position])


class LoaderBatches(_Sharded):
    """The per-sample path: a DataLoader with PIL transforms (image folders, or on request)."""

    def __init__(self, split, batch_size, shuffle, device, generator, rank, world_size, workers) -> None:
        super().__init__(split, batch_size, shuffle, device, generator, rank, world_size)
        self.workers = workers

    def __iter__(self):
        loader = torch.utils.data.DataLoader(
            _PerSampleDataset(self.split),
            batch_sampler=[positions.tolist() for positions in self.local_positions()],
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for inputs, labels in loader:
            yield inputs.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)


@dataclass
class DataBundle:
    """Everything training and analyses need to know about the data of one run."""

    spec: DatasetSpec
    options: DataOptions
    classes: np.ndarray
    class_names: list[str]
    train: Split
    val: Split | None
    test: Split
    corrupted_indices: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return self.spec.in_channels

    @property
    def image_size(self) -> int:
        return self.train.view.out_size

    def facts(self) -> dict:
        """Plain-dict description for run.json and snapshots."""
        return {
            "dataset": self.spec.name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "classes": self.classes.tolist(),
            "class_names": self.class_names,
            "sizes": {"train": len(self.train), "val": len(self.val) if self.val else 0, "test": len(self.test)},
            "corrupted_count": int(len(self.corrupted_indices)),
            "corrupted_indices": self.corrupted_indices.tolist(),
            "pixel_shuffle": self.options.pixel_shuffle_mode if self.options.pixel_shuffle else None,
            "view": self.train.view.to_dict(),
            "options": asdict(self.options),
        }


def _read(spec: DatasetSpec, options: DataOptions, train: bool):
    check_files(spec.name, options.data_path, spec.required_files, download=options.download)
    return spec.reader(options.data_path, train, options.download)


def build_data(name: str, options: DataOptions | None = None) -> DataBundle:
    """Read dataset ``name`` and apply ``options``; see the module docstring for the order."""
    options = options or DataOptions()
    options.validate()
    spec = get_dataset_spec(name)
    train_source, test_source = _read(spec, options, True), _read(spec, options, False)
    if train_source.class_names != test_source.class_names and not isinstance(train_source, TensorSource):
        raise UserError(f"dataset {name!r}: train and test folders have different classes; make them match")
    total_classes = len(train_source.class_names) or spec.num_classes
    classes = choose_classes(total_classes, options.subsample_classes, options.class_sample_seed)
    if options.class_order == "reference":
        classes = reference_classes(total_classes, options.subsample_classes, seed=options.class_sample_seed,
                                    shuffle=options.shuffle)
    train_idx, train_targets = restrict_to_classes(train_source.targets, classes)
    test_idx, test_targets = restrict_to_classes(test_source.targets, classes)
    fit_pos, val_pos = split_indices(
        train_targets, options.split, seed=options.split_seed, shuffle=options.shuffle, stratified=options.stratified
    )
    view = make_view(
        native_size=spec.image_size,
        mean=spec.mean,
        std=spec.std,
        upscale=options.upscale,
        upscale_padding=options.upscale_padding,
        unnormalize=options.unnormalize,
        augment=options.augmentation,
        hflip=spec.hflip,
    )
    if options.normalization == "reference" and not options.unnormalize:
        mean, std = reference_statistics(name, view_kind(upscale=options.upscale,
                                                         upscale_padding=options.upscale_padding))
        view = dataclasses.replace(view, mean=mean, std=std)
    fit_targets, corrupted = train_targets[fit_pos], np.zeros(0, dtype=np.int64)
    if options.noise > 0:  # drawn over the kept samples in increasing index order, as the reference does
        order = np.argsort(fit_pos, kind="stable")
        noise = corrupt_labels(fit_targets[order], options.noise, len(classes), seed=options.noise_seed)
        fit_targets = fit_targets.copy()
        fit_targets[order] = noise.targets
        corrupted = train_idx[fit_pos[order[noise.corrupted]]]
    train = Split("train", train_source, train_idx[fit_pos], fit_targets, view)
    if options.pixel_shuffle:
        train.shuffle_seed = options.noise_seed
        train.shuffle_shared = options.pixel_shuffle_mode == "shared"
    val = None
    if len(val_pos):
        val = Split("val", train_source, train_idx[val_pos], train_targets[val_pos], view.for_eval())
    test = Split("test", test_source, test_idx, test_targets, view.for_eval())
    names = [train_source.class_names[c] for c in classes] if train_source.class_names else [str(c) for c in classes]
    return DataBundle(spec, options, classes, names, train, val, test, np.sort(corrupted))
