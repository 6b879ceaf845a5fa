"""The registered datasets. Statistics are per-channel mean/std of the native training images."""
from __future__ import annotations

from datasets.digits import read_digits
from datasets.registry import DatasetSpec, register_dataset
from datasets.sources import image_folder_reader, torchvision_reader

_MNIST_RAW = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _mnist_like(name: str, cls: str, folder: str, mean: float, std: float, description: str) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        num_classes=10,
        in_channels=1,
        image_size=28,
        mean=(mean,),
        std=(std,),
        reader=torchvision_reader(cls, in_channels=1),
        required_files=tuple(f"{folder}/raw/{f}" for f in _MNIST_RAW),
        description=description,
    )


register_dataset(
    DatasetSpec(
        name="digits",
        num_classes=10,
        in_channels=1,
        image_size=32,
        mean=(0.3052,),
        std=(0.3236,),
        reader=read_digits,
        description="scikit-learn's bundled 8x8 handwritten digits upsampled to 32x32 (offline)",
    )
)
register_dataset(_mnist_like("mnist", "MNIST", "MNIST", 0.1307, 0.3081, "MNIST (IDX files)"))
register_dataset(
    _mnist_like(
        "fashionmnist", "FashionMNIST", "FashionMNIST", 0.2860, 0.3530, "Fashion-MNIST (IDX)"
    )
)
register_dataset(_mnist_like("kmnist", "KMNIST", "KMNIST", 0.1918, 0.3483, "Kuzushiji-MNIST (IDX)"))
register_dataset(
    DatasetSpec(
        name="cifar10",
        num_classes=10,
        in_channels=3,
        image_size=32,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        reader=torchvision_reader("CIFAR10", in_channels=3),
        required_files=tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
        + ("cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta"),
        hflip=True,
        description="CIFAR-10 (python pickled batches)",
    )
)
register_dataset(
    DatasetSpec(
        name="cifar100",
        num_classes=100,
        in_channels=3,
        image_size=32,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        reader=torchvision_reader("CIFAR100", in_channels=3),
        required_files=("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"),
        hflip=True,
        description="CIFAR-100, fine labels (python pickled batches)",
    )
)
register_dataset(
    DatasetSpec(
        name="svhn",
        num_classes=10,
        in_channels=3,
        image_size=32,
        mean=(0.4377, 0.4438, 0.4728),
        std=(0.1980, 0.2010, 0.1970),
        reader=torchvision_reader("SVHN", in_channels=3, split_arg="split"),
        required_files=("train_32x32.mat", "test_32x32.mat"),
        description="SVHN cropped digits (.mat files)",
    )
)
register_dataset(
    DatasetSpec(
        name="imagenet",
        num_classes=1000,
        in_channels=3,
        image_size=224,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        reader=image_folder_reader,
        required_files=("train", "val"),
        hflip=True,
        in_memory=False,
        description="ImageNet-style train/ and val/ class folders (read from disk per batch)",
    )
)
