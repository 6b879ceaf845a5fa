"""Index-level sampling: class subsets, train/validation splits and label noise.

Pure functions over label arrays; every random choice is seeded, so a run reproduces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utils.errors import UserError


def choose_classes(num_classes: int, k: int, seed: int) -> np.ndarray:
    """The ``k`` classes kept by class subsampling (all classes when ``k == 0``), sorted."""
    if k < 0 or k > num_classes:
        raise UserError(
            f"--subsample-classes {k} is out of range: the dataset has {num_classes} classes "
            f"(use 0 for all, or 1..{num_classes})"
        )
    if k == 0 or k == num_classes:
        return np.arange(num_classes)
    return np.sort(np.random.RandomState(seed).permutation(num_classes)[:k])


def restrict_to_classes(targets: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of samples whose label is in ``classes`` and their labels remapped to 0..k-1."""
    remap = np.full(int(max(targets.max(initial=0), classes.max(initial=0))) + 1, -1, dtype=np.int64)
    remap[classes] = np.arange(len(classes))
    indices = np.flatnonzero(remap[targets] >= 0)
    return indices, remap[targets[indices]]


def split_indices(
    targets: np.ndarray, fraction: float, *, seed: int, shuffle: bool, stratified: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into ``targets``) of the training and validation parts.

    Without ``shuffle`` the validation part is the last ``floor(n * fraction)`` samples, as in the
    reference. ``stratified`` keeps class proportions equal in both parts (it always shuffles,
    with ``seed``).
    """
    if not 0.0 <= fraction < 1.0:
        raise UserError(f"--split {fraction} is out of range; use a fraction in [0, 1)")
    n = len(targets)
    positions = np.arange(n)
    if fraction == 0.0:
        return positions, positions[:0]
    n_val = int(np.floor(n * fraction))
    if n_val == 0 or n_val == n:
        raise UserError(f"--split {fraction} leaves an empty part of {n} samples; choose another fraction")
    if stratified:
        from sklearn.model_selection import train_test_split

        try:
            train, val = train_test_split(positions, test_size=n_val, random_state=seed, stratify=targets)
        except ValueError as err:
            raise UserError(f"stratified --split {fraction} impossible: {err}") from err
        return np.sort(train), np.sort(val)
    if shuffle:
        np.random.RandomState(seed).shuffle(positions)
    return positions[: n - n_val], positions[n - n_val :]


@dataclass(frozen=True)
class LabelNoise:
    """Labels after corruption and which positions were corrupted."""

    targets: np.ndarray
    corrupted: np.ndarray


def corrupt_labels(targets: np.ndarray, ratio: float, num_classes: int, *, seed: int) -> LabelNoise:
    """Choose each sample with probability ``ratio`` and give it a different class, uniformly.

    The new label is ``(y + u) mod C`` with ``u`` uniform in 1..C-1, so it always differs. The draws
    are the reference's: one uniform per sample in the order given (``u <= ratio`` chooses it), then
    one offset per chosen sample, from ``RandomState(seed)``.
    """
    if not 0.0 <= ratio <= 1.0:
        raise UserError(f"label noise ratio {ratio} is out of range; use [0, 1] (or -1 for pixel shuffle)")
    if ratio > 0 and num_classes < 2:
        raise UserError("label noise needs at least 2 classes; raise --subsample-classes or drop --noise")
    rng = np.random.RandomState(seed)
    chosen = rng.random_sample(len(targets)) <= ratio if ratio > 0 else np.zeros(len(targets), bool)
    offsets = rng.randint(1, max(num_classes, 2), size=int(chosen.sum()))
    noisy = targets.copy()
    noisy[chosen] = (targets[chosen] + offsets) % num_classes
    return LabelNoise(noisy, np.flatnonzero(chosen))
