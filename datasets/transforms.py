"""How the network sees an image: resizing, augmentation, pixel shuffle and normalization.

The in-memory fast path applies an :class:`ImageView` to whole uint8 batches on the training
device (:func:`transform_batch`); folder datasets get the equivalent per-sample PIL pipeline
(:func:`folder_transform`). Random choices are drawn from a CPU ``torch.Generator`` so they are
the same on every device.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

UPSCALE_SIZE = 224
PADDED_CONTENT_SIZE = 112


@dataclass(frozen=True)
class ImageView:
    """The transform from a stored image to the network's input.

    ``resize_to``: side after resizing (None keeps the native size); ``pad_to``: side after
    zero-padding around the centre; ``mean``/``std``: normalization (None for pixels in [0, 1]);
    ``augment``: random crop with ``crop_padding`` zero pixels (and a horizontal flip if ``hflip``).
    """

    native_size: int
    resize_to: int | None = None
    pad_to: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: bool = False
    hflip: bool = False

    @property
    def out_size(self) -> int:
        return self.pad_to or self.resize_to or self.native_size

    @property
    def crop_padding(self) -> int:
        return max(1, round(self.native_size / 8))

    def for_eval(self) -> ImageView:
        return replace(self, augment=False)

    def to_dict(self) -> dict:
        return asdict(self) | {"out_size": self.out_size}


def padded_statistics(
    mean: tuple[float, ...], std: tuple[float, ...], content: int, total: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std of images whose ``content``^2 centre keeps the statistics and the rest is zero."""
    fraction = (content / total) ** 2
    new_mean = tuple(fraction * m for m in mean)
    new_std = tuple(float(np.sqrt(fraction * (s * s + m * m) - (fraction * m) ** 2)) for m, s in zip(mean, std))
    return new_mean, new_std


def make_view(
    *, native_size: int, mean, std, upscale: bool, upscale_padding: bool, unnormalize: bool, augment: bool, hflip: bool
) -> ImageView:
    """The training view for a dataset and the user's options (``for_eval()`` gives the test view)."""
    resize_to = pad_to = None
    if upscale:
        resize_to = UPSCALE_SIZE
    elif upscale_padding:
        resize_to, pad_to = PADDED_CONTENT_SIZE, UPSCALE_SIZE
        mean, std = padded_statistics(mean, std, PADDED_CONTENT_SIZE, UPSCALE_SIZE)
    if unnormalize:
        mean = std = None
    return ImageView(native_size, resize_to, pad_to, mean, std, augment, hflip)


def pixel_permutation(size: int, seed: int, sample_id: int | None = None) -> torch.Tensor:
    """A fixed permutation of ``size`` pixel positions for one sample (or shared, ``sample_id=None``)."""
    entropy = [seed] if sample_id is None else [seed, int(sample_id)]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    generator = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
    return torch.randperm(size, generator=generator)


def _random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    batch, _, height, width = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator).to(x.device)
    rows = offsets[0, :, None] + torch.arange(height, device=x.device)
    cols = offsets[1, :, None] + torch.arange(width, device=x.device)
    batch_idx = torch.arange(batch, device=x.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[batch_idx, rows[:, :, None], cols[:, None, :]]
    return cropped.permute(0, 3, 1, 2)


def _random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _resize_and_pad(x: torch.Tensor, view: ImageView) -> torch.Tensor:
    if view.resize_to and view.resize_to != x.shape[-1]:
        x = F.interpolate(x, size=view.resize_to, mode="bilinear", align_corners=False, antialias=True)
    if view.pad_to:
        before = (view.pad_to - x.shape[-1]) // 2
        after = view.pad_to - x.shape[-1] - before
        x = F.pad(x, (before, after, before, after))
    return x


def _normalize(x: torch.Tensor, view: ImageView) -> torch.Tensor:
    if view.mean is None:
        return x
    mean = torch.tensor(view.mean, device=x.device, dtype=x.dtype)[:, None, None]
    std = torch.tensor(view.std, device=x.device, dtype=x.dtype)[:, None, None]
    return (x - mean) / std


def shuffle_pixels(x: torch.Tensor, permutations: torch.Tensor) -> torch.Tensor:
    """Permute pixel positions of each image ``(B, C, H, W)`` by ``permutations`` ``(B, H*W)``.

    The same permutation moves every channel of an image.
    """
    batch, channels, height, width = x.shape
    index = permutations.to(x.device)[:, None, :].expand(batch, channels, height * width)
    return x.reshape(batch, channels, -1).gather(2, index).reshape(batch, channels, height, width)


def transform_batch(
    images: torch.Tensor,
    view: ImageView,
    *,
    generator: torch.Generator | None = None,
    permutations: torch.Tensor | None = None,
) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` -> float network input: augment, resize/pad, shuffle, normalize. Float
    images (a foreign source that stores the network's inputs, e.g. a PGDL task) are taken as they are."""
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    if view.augment:
        x = _random_crop(x, view.crop_padding, generator)
        if view.hflip:
            x = _random_hflip(x, generator)
    x = _resize_and_pad(x, view)
    if permutations is not None:
        x = shuffle_pixels(x, permutations)
    return _normalize(x, view)


def sample_transform(view: ImageView):
    """Per-sample PIL pipeline with the semantics of :func:`transform_batch` (the reference's way).

    For in-memory images fed through a DataLoader (``--data-pipeline dataloader``): random crop with
    zero padding and flip, resize/pad, ToTensor, normalize; pixel shuffle is applied by the caller.
    """
    from torchvision import transforms as T

    steps = []
    if view.augment:
        steps.append(T.RandomCrop(view.native_size, padding=view.crop_padding))
        if view.hflip:
            steps.append(T.RandomHorizontalFlip())
    return T.Compose(steps + _to_network_input(view))


def folder_transform(view: ImageView):
    """Per-sample PIL pipeline for folder datasets (ImageNet style) matching ``view``."""
    from torchvision import transforms as T

    steps = []
    if view.augment:
        steps += [T.RandomResizedCrop(view.native_size)] + ([T.RandomHorizontalFlip()] if view.hflip else [])
    else:
        steps += [T.Resize(round(view.native_size * 256 / 224)), T.CenterCrop(view.native_size)]
    return T.Compose(steps + _to_network_input(view))


def _to_network_input(view: ImageView) -> list:
    """The per-sample steps after cropping, as :func:`transform_batch` does them: resize, ToTensor,
    zero padding (the odd pixel after), normalize."""
    from torchvision import transforms as T

    steps = []
    if view.resize_to and view.resize_to != view.native_size:
        steps.append(T.Resize((view.resize_to, view.resize_to)))
    steps.append(T.ToTensor())
    if view.pad_to:
        before = (view.pad_to - (view.resize_to or view.native_size)) // 2
        after = view.pad_to - (view.resize_to or view.native_size) - before
        steps.append(T.Pad((before, before, after, after)))
    if view.mean is not None:
        steps.append(T.Normalize(view.mean, view.std))
    return steps
