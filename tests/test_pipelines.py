"""The fast in-memory pipeline and the reference-style DataLoader pipeline are interchangeable.

Images here encode their own index (a constant grey level), which survives every augmentation
(crops of a constant image, flips, resized crops), so the index of every sample in a batch can be
read back and each epoch's coverage checked on the real batches.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from datasets.data import Split
from datasets.sources import FolderSource, TensorSource
from datasets.transforms import make_view
from tests.train_helpers import run_dir, run_train

N, CLASSES, STEP = 60, 3, 4  # sample i is grey level STEP * i, class i % CLASSES


def _view(augment: bool, normalize: bool = False, size: int = 32):
    mean, std = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)) if normalize else (None, None)
    return make_view(native_size=size, mean=mean, std=std, upscale=False, upscale_padding=False,
                     unnormalize=not normalize, augment=augment, hflip=augment)


def _tensor_split(view, images=None) -> Split:
    if images is None:
        images = (STEP * torch.arange(N, dtype=torch.uint8))[:, None, None, None].expand(N, 3, 32, 32).contiguous()
    labels = np.arange(N) % CLASSES
    return Split("train", TensorSource(images, labels, ["a", "b", "c"]), np.arange(N), labels, view)


def _folder_split(root, view) -> Split:
    for i in range(N):
        folder = root / f"class{i % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((32, 32, 3), STEP * i, dtype=np.uint8)).save(folder / f"{i:03d}.png")
    source = FolderSource(torchvision.datasets.ImageFolder(str(root)))
    indices = np.arange(len(source))
    return Split("train", source, indices, source.targets, view)


def _epoch(batches) -> tuple[list[int], list[int]]:
    ids, labels = [], []
    for inputs, targets in batches:
        ids += torch.round(inputs[:, 0, 16, 16] * 255 / STEP).long().tolist()
        labels += targets.tolist()
    return ids, labels


@pytest.mark.parametrize("source", ["memory-fast", "memory-dataloader", "folder-dataloader"])
def test_every_sample_once_per_epoch_with_its_label(tmp_path, source):
    view = _view(augment=True)
    split = _folder_split(tmp_path, view) if source.startswith("folder") else _tensor_split(view)
    pipeline = source.split("-")[1]
    generator = torch.Generator().manual_seed(0)
    orders = []
    for _ in range(2):
        ids, labels = _epoch(split.batches(8, shuffle=True, generator=generator, pipeline=pipeline))
        assert sorted(ids) == list(range(N))
        assert labels == [i % CLASSES for i in ids]
        assert np.bincount(labels).tolist() == [N // CLASSES] * CLASSES
        orders.append(ids)
    assert orders[0] != orders[1], "a shuffled epoch repeats the previous order"


def test_both_pipelines_shard_the_same_global_batches():
    split = _tensor_split(_view(augment=False))
    for pipeline in ("fast", "dataloader"):
        per_rank = [_epoch(split.batches(8, shuffle=True, generator=torch.Generator().manual_seed(3), rank=r,
                                         world_size=2, pipeline=pipeline))[0] for r in (0, 1)]
        assert sorted(per_rank[0] + per_rank[1]) == list(range(N))
    fast = [_epoch(split.batches(8, shuffle=True, generator=torch.Generator().manual_seed(3), pipeline=p))[0]
            for p in ("fast", "dataloader")]
    assert fast[0] == fast[1], "the same generator must give the same sample order on both pipelines"


def test_without_augmentation_both_pipelines_give_the_same_inputs():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(N, 3, 32, 32), dtype=np.uint8))
    split = _tensor_split(_view(augment=False, normalize=True), images)
    fast, slow = (torch.cat([x for x, _ in split.batches(16, pipeline=p)]) for p in ("fast", "dataloader"))
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-5)


def test_augmented_batches_have_the_same_pixel_statistics():
    """Crop with zero padding and flip: per-position means over many epochs agree between pipelines."""
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.integers(0, 256, size=(N, 3, 32, 32), dtype=np.uint8))
    split = _tensor_split(_view(augment=True), images)
    means = {}
    for pipeline in ("fast", "dataloader"):
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        batches = [x for _ in range(20) for x, _ in split.batches(30, shuffle=True, generator=generator, pipeline=pipeline)]
        stacked = torch.cat(batches)
        means[pipeline] = (stacked.mean().item(), (stacked == 0).float().mean().item())
    # the zero border of the padded crop: P(pixel is padding) = E[|offset - 4|] / 32 per axis, in both
    assert means["fast"][1] == pytest.approx(means["dataloader"][1], abs=0.01)
    assert means["fast"][0] == pytest.approx(means["dataloader"][0], abs=0.01)


@pytest.mark.slow
def test_training_accuracy_is_equivalent_on_both_pipelines(tmp_path):
    """LeNet on digits with augmentation, 3 seeds on each pipeline: the same test accuracy within noise.

    Seeds share the initialization and the sample order across pipelines; only the random crops and
    flips differ. Adam at 1e-3 for 10 epochs converges on every seed (a shorter schedule leaves some
    seeds on LeNet's initial plateau, and the comparison then measures when training took off).
    """
    accuracy = {"fast": [], "dataloader": []}
    for pipeline in accuracy:
        for seed in (1, 2, 3):
            folder = tmp_path / pipeline
            assert run_train(folder, "--arch", "lenet", "--dataset", "digits", "--seed", str(seed), "--optimizer",
                             "adam", "--lr", "0.001", "--batch-size", "16", "--epochs", "10", "--augmentation",
                             "--data-pipeline", pipeline, "--workers", "0", "--no-dse",
                             "--no-projection-logging") == 0
            record = json.loads((run_dir(folder, seed=seed) / "run.json").read_text())
            accuracy[pipeline].append(record["epochs"][-1]["val_top1"])
    fast, slow = np.array(accuracy["fast"]), np.array(accuracy["dataloader"])
    assert fast.min() > 90 and slow.min() > 90, accuracy
    assert abs(fast.mean() - slow.mean()) < 3, accuracy


@pytest.mark.slow
def test_speed_flags_combine_on_the_cpu(tmp_path):
    """--compile, --channels-last, the DataLoader pipeline and augmentation in one run (a small
    model: torch.compile on a 2-core CPU takes ~70 s for LeNet); the snapshot has plain keys."""
    import models
    import tests.ddp_worker  # noqa: F401  (registers tiny_cnn)

    assert run_train(tmp_path, "--arch", "tiny_cnn", "--dataset", "digits", "--seed", "0", "--epochs", "1",
                     "--batch-size", "64", "--augmentation", "--data-pipeline", "dataloader", "--channels-last",
                     "--compile", "--no-dse", "--no-projection-logging") == 0
    run = run_dir(tmp_path, arch="tiny_cnn")
    snapshot = torch.load(run / "tiny_cnn_epoch0001.pt", weights_only=True)
    plain = models.get_model("tiny_cnn", 10, 1)
    assert list(snapshot["model_state_dict"]) == list(plain.state_dict())  # no _orig_mod. prefixes
    plain.load_state_dict(snapshot["model_state_dict"])
    assert json.loads((run / "run.json").read_text())["status"]["state"] == "finished"
