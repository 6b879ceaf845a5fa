"""Label noise, pixel shuffle, class subsets, splits, upscaling and the in-memory fast path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from datasets import DataOptions, build_data
from datasets.sampling import corrupt_labels
from utils.errors import UserError


def clean_train_labels(bundle):
    return bundle.train.source.targets[bundle.train.indices]


@pytest.mark.parametrize("ratio", [0.2, 0.5, 1.0])
def test_label_noise_fraction_and_every_label_changes(ratio):
    bundle = build_data("digits", DataOptions(noise=ratio, split=0.2, stratified=True))
    clean, noisy = clean_train_labels(bundle), bundle.train.targets
    changed = clean != noisy
    assert changed.sum() == len(bundle.corrupted_indices)
    # The count is Binomial(n, r): a two-sided test must not reject.
    assert stats.binomtest(int(changed.sum()), len(clean), ratio).pvalue > 1e-3 if ratio < 1 else changed.all()
    assert set(bundle.train.indices[changed]) == set(bundle.corrupted_indices)
    # Validation and test keep their clean labels.
    assert np.array_equal(bundle.val.targets, bundle.val.source.targets[bundle.val.indices])
    assert np.array_equal(bundle.test.targets, bundle.test.source.targets[bundle.test.indices])


def test_label_noise_is_seeded():
    first = build_data("digits", DataOptions(noise=0.3, noise_seed=7))
    again = build_data("digits", DataOptions(noise=0.3, noise_seed=7))
    other = build_data("digits", DataOptions(noise=0.3, noise_seed=8))
    assert np.array_equal(first.train.targets, again.train.targets)
    assert not np.array_equal(first.train.targets, other.train.targets)


def test_noisy_labels_are_uniform_over_other_classes():
    targets = np.zeros(20000, dtype=np.int64)
    noisy = corrupt_labels(targets, 1.0, 5, seed=0).targets
    counts = np.bincount(noisy, minlength=5)
    assert counts[0] == 0
    assert stats.chisquare(counts[1:]).pvalue > 1e-3


def _batches_in_order(split, **kwargs):
    return next(iter(split.batches(len(split), **kwargs)))


@pytest.mark.parametrize("upscale", [False, True])
def test_pixel_shuffle_keeps_pixel_multiset_and_labels(upscale):
    clean = build_data("digits", DataOptions(upscale=upscale, unnormalize=True))
    shuffled = build_data("digits", DataOptions(noise=-1, upscale=upscale, unnormalize=True))
    n = 64 if upscale else len(clean.train)
    x_clean, y_clean = next(iter(clean.train.batches(n)))
    x_shuf, y_shuf = next(iter(shuffled.train.batches(n)))
    assert torch.equal(y_clean, y_shuf)
    assert not torch.equal(x_clean, x_shuf)
    assert torch.equal(x_clean.flatten(1).sort(1).values, x_shuf.flatten(1).sort(1).values)
    # Each image has its own permutation, fixed across epochs.
    assert not torch.equal(shuffled.train.permutations(np.array([0]))[0], shuffled.train.permutations(np.array([1]))[0])
    assert torch.equal(x_shuf, next(iter(shuffled.train.batches(n)))[0])
    # Test data stays clean.
    assert torch.equal(_batches_in_order(clean.test)[0], _batches_in_order(shuffled.test)[0])


def test_shared_pixel_shuffle_uses_one_permutation():
    bundle = build_data("digits", DataOptions(noise=-1, pixel_shuffle_mode="shared"))
    perms = bundle.train.permutations(np.arange(5))
    assert all(torch.equal(perms[0], p) for p in perms)


def test_pixel_shuffle_moves_channels_together():
    from datasets.transforms import shuffle_pixels

    image = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    perms = torch.stack([torch.randperm(16), torch.randperm(16)])
    out = shuffle_pixels(image, perms)
    for b in range(2):
        for c in range(3):
            assert torch.equal(out[b, c].flatten(), image[b, c].flatten()[perms[b]])


def test_class_subsample_is_the_same_in_every_split():
    bundle = build_data("digits", DataOptions(subsample_classes=4, class_sample_seed=3, split=0.25))
    chosen = set(bundle.classes.tolist())
    assert len(chosen) == 4 and bundle.num_classes == 4
    for split in (bundle.train, bundle.val, bundle.test):
        assert set(split.source.targets[split.indices].tolist()) == chosen
        assert set(split.targets.tolist()) == {0, 1, 2, 3}
    again = build_data("digits", DataOptions(subsample_classes=4, class_sample_seed=3))
    assert np.array_equal(again.classes, bundle.classes)


def test_stratified_split_keeps_class_proportions():
    bundle = build_data("digits", DataOptions(split=0.2, stratified=True, split_seed=5))
    train_counts = np.bincount(bundle.train.targets, minlength=10)
    val_counts = np.bincount(bundle.val.targets, minlength=10)
    expected = (train_counts + val_counts) * 0.2
    assert np.all(np.abs(val_counts - expected) <= 1)
    assert len(set(bundle.train.indices) & set(bundle.val.indices)) == 0


def test_plain_split_takes_the_tail_unless_shuffled():
    plain = build_data("digits", DataOptions(split=0.1))
    n = len(plain.train) + len(plain.val)
    assert len(plain.val) == int(np.floor(n * 0.1))
    assert plain.val.indices.min() > plain.train.indices.max()
    shuffled = build_data("digits", DataOptions(split=0.1, shuffle=True, split_seed=1))
    assert not np.array_equal(np.sort(shuffled.val.indices), np.sort(plain.val.indices))


@pytest.mark.parametrize("option", ["upscale", "upscale_padding"])
def test_upscaled_shapes_and_statistics(option):
    bundle = build_data("digits", DataOptions(**{option: True}))
    inputs, _ = next(iter(bundle.train.batches(256)))
    assert inputs.shape[1:] == (1, 224, 224) and bundle.image_size == 224
    # Normalization statistics fit the transformed images: roughly zero mean, unit std.
    assert abs(inputs.mean().item()) < 0.1 and abs(inputs.std().item() - 1) < 0.1
    if option == "upscale_padding":
        border = inputs[:, :, :56, :]
        assert torch.allclose(border, border.flatten()[0].expand_as(border))


def test_augmentation_changes_batches_but_not_shapes():
    bundle = build_data("digits", DataOptions(augmentation=True))
    gen = torch.Generator().manual_seed(0)
    first = next(iter(bundle.train.batches(32, generator=gen)))[0]
    second = next(iter(bundle.train.batches(32, generator=gen)))[0]
    assert first.shape == second.shape == (32, 1, 32, 32)
    assert not torch.equal(first, second)
    assert not bundle.train.view.hflip  # no flips for digits
    assert torch.equal(*(next(iter(bundle.test.batches(16)))[0] for _ in range(2)))


def test_fast_path_yields_every_sample_once_per_epoch():
    bundle = build_data("digits")
    loader = bundle.train.batches(100, shuffle=True, generator=torch.Generator().manual_seed(1))
    labels = torch.cat([y for _, y in loader])
    assert len(loader) == int(np.ceil(len(bundle.train) / 100))
    assert np.array_equal(np.bincount(labels.numpy(), minlength=10), np.bincount(bundle.train.targets, minlength=10))
    # Two ranks split an epoch between them without overlap.
    halves = [torch.cat([y for _, y in bundle.train.batches(100, rank=r, world_size=2)]) for r in (0, 1)]
    assert sum(len(h) for h in halves) == len(bundle.train)


@pytest.mark.parametrize(
    "options,match",
    [
        (dict(noise=1.5), "--noise"),
        (dict(noise=-0.5), "--noise"),
        (dict(split=1.0), "--split"),
        (dict(split=-0.1), "--split"),
        (dict(subsample_classes=11), "--subsample-classes"),
        (dict(subsample_classes=-1), "--subsample-classes"),
        (dict(upscale=True, upscale_padding=True), "exclude each other"),
        (dict(pixel_shuffle_mode="rows"), "pixel shuffle mode"),
    ],
)
def test_bad_options_are_user_errors(options, match):
    with pytest.raises(UserError, match=match):
        build_data("digits", DataOptions(**options))
