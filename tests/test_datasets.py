"""Dataset readers on tiny files in the real on-disk formats, and the registry's errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import datasets
from datasets import DataOptions, build_data
from tests import formats
from utils.errors import UserError

RNG_SEED = 1234


@pytest.fixture
def rng():
    return np.random.default_rng(RNG_SEED)


def _first_batch(split, n=1000):
    return next(iter(split.batches(n)))


def _check_pixels(split, raw_images, view_mean, view_std):
    """Batches (no augmentation) reproduce the raw pixels after normalization, in order."""
    inputs, labels = _first_batch(split)
    expected = torch.as_tensor(raw_images).float() / 255
    mean = torch.tensor(view_mean)[:, None, None]
    std = torch.tensor(view_std)[:, None, None]
    torch.testing.assert_close(inputs * std + mean, expected, atol=1e-5, rtol=0)
    return labels


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashionmnist", "FashionMNIST"), ("kmnist", "KMNIST")])
def test_mnist_family_reads_idx_files(tmp_path, rng, name, folder):
    train = formats.random_images(rng, 30, (28, 28), 10)
    test = formats.random_images(rng, 12, (28, 28), 10)
    formats.write_mnist(tmp_path, folder, train, test)
    bundle = build_data(name, DataOptions(data_path=str(tmp_path)))
    assert (len(bundle.train), len(bundle.test), bundle.image_size, bundle.in_channels) == (30, 12, 28, 1)
    spec = bundle.spec
    labels = _check_pixels(bundle.train, train[0][:, None], spec.mean, spec.std)
    assert labels.tolist() == train[1].tolist()


def test_cifar10_reads_pickled_batches(tmp_path, rng):
    train = formats.random_images(rng, 25, (3, 32, 32), 10)
    test = formats.random_images(rng, 10, (3, 32, 32), 10)
    formats.write_cifar10(tmp_path, train, test)
    bundle = build_data("cifar10", DataOptions(data_path=str(tmp_path)))
    assert bundle.class_names == [f"class{i}" for i in range(10)]
    labels = _check_pixels(bundle.train, train[0], bundle.spec.mean, bundle.spec.std)
    assert labels.tolist() == train[1].tolist()
    _check_pixels(bundle.test, test[0], bundle.spec.mean, bundle.spec.std)


def test_cifar100_reads_fine_labels(tmp_path, rng):
    train = formats.random_images(rng, 40, (3, 32, 32), 100)
    test = formats.random_images(rng, 8, (3, 32, 32), 100)
    formats.write_cifar100(tmp_path, train, test)
    bundle = build_data("cifar100", DataOptions(data_path=str(tmp_path)))
    assert bundle.num_classes == 100
    labels = _check_pixels(bundle.train, train[0], bundle.spec.mean, bundle.spec.std)
    assert labels.tolist() == train[1].tolist()


def test_svhn_reads_mat_files_and_maps_label_10_to_0(tmp_path, rng):
    train = formats.random_images(rng, 20, (3, 32, 32), 10)
    test = formats.random_images(rng, 10, (3, 32, 32), 10)
    formats.write_svhn(tmp_path, train, test)
    bundle = build_data("svhn", DataOptions(data_path=str(tmp_path)))
    labels = _check_pixels(bundle.train, train[0], bundle.spec.mean, bundle.spec.std)
    assert labels.tolist() == train[1].tolist() and 0 in labels.tolist()


def test_imagenet_reads_class_folders(tmp_path, rng):
    images, labels = formats.random_images(rng, 12, (40, 48, 3), 3)
    formats.write_image_folder(tmp_path, "train", images, labels)
    formats.write_image_folder(tmp_path, "val", images[:6], np.arange(6) % 3)
    bundle = build_data("imagenet", DataOptions(data_path=str(tmp_path), subsample_classes=2, class_sample_seed=0))
    assert bundle.num_classes == 2 and len(bundle.train) == int(np.isin(labels, bundle.classes).sum())
    inputs, targets = _first_batch(bundle.train)
    assert inputs.shape[1:] == (3, 224, 224)
    assert set(targets.tolist()) <= {0, 1}


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "svhn", "imagenet"])
def test_missing_files_name_the_path(tmp_path, name):
    with pytest.raises(UserError, match=str(tmp_path)):
        build_data(name, DataOptions(data_path=str(tmp_path)))


def test_corrupt_file_is_a_user_error(tmp_path, rng):
    formats.write_cifar10(tmp_path, formats.random_images(rng, 5, (3, 32, 32), 10),
                          formats.random_images(rng, 5, (3, 32, 32), 10))
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="cannot read CIFAR10"):
        build_data("cifar10", DataOptions(data_path=str(tmp_path)))


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(UserError, match="cifar10.*digits"):
        datasets.get_dataset_spec("cifar11")


def test_digits_is_offline_and_its_statistics_fit():
    bundle = build_data("digits")
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (10, 1, 32)
    assert len(bundle.train) + len(bundle.test) == 1797
    raw = bundle.train.source.images.float() / 255
    assert raw.mean().item() == pytest.approx(bundle.spec.mean[0], abs=1e-3)
    assert raw.std().item() == pytest.approx(bundle.spec.std[0], abs=1e-3)
    test_counts = np.bincount(bundle.test.targets, minlength=10)
    all_counts = test_counts + np.bincount(bundle.train.targets, minlength=10)
    assert np.all(np.abs(test_counts - 0.25 * all_counts) <= 1)  # stratified test split


def test_the_digits_read_without_scikit_learn_are_scikit_learn_s_with_its_split():
    """The CSV read directly, and the stored test indices, equal load_digits() and train_test_split's."""
    from sklearn.datasets import load_digits

    from datasets import digits

    images, targets = digits.bundled_digits()
    reference = load_digits()
    assert np.array_equal(images, reference.images) and np.array_equal(targets, reference.target)
    stored = digits.train_test_indices(targets)
    computed = digits.split_by_scikit_learn(targets)
    assert all(np.array_equal(a, b) for a, b in zip(stored, computed))
    assert len(stored[1]) == 450 and not set(stored[0]) & set(stored[1])


def test_every_registered_spec_is_consistent():
    for name in datasets.list_datasets():
        spec = datasets.get_dataset_spec(name)
        assert len(spec.mean) == len(spec.std) == spec.in_channels
