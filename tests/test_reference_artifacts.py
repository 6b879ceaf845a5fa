"""The reference tool's artifacts (magamba/hp_arrangements) give the reference's numbers.

Every reference file here is written the way the reference writes it (``torch.save`` of a plain
state dict, or of ``{"epoch", "top1_acc", "top5_acc", "model_state_dict", "optimizer_state_dict",
"scheduler_state_dict"}`` for its ``<arch>_<e>.tar``), never with our writer, and every expected
number is derived here from the reference's documented procedure, not read back from our code.
"""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import compute_projections
import reinit_layers
import train
from datasets import DataOptions, build_data
from datasets.reference import REFERENCE_STATISTICS
from models import get_model
from tests import formats
from tests.checks import unwrap_notices
from utils.cli import run_main

CIFAR_REFERENCE_MEAN, CIFAR_REFERENCE_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
REFERENCE_KEYS = ("net", "arch", "dataset", "seed", "epoch")


@pytest.fixture
def rng():
    return np.random.default_rng(16)


def reference_tar(path: Path, model: torch.nn.Module, epoch: int, *, steps: int = 2, lr: float = 0.05) -> dict:
    """What the reference's snapshot.save_snapshot writes after epoch index ``epoch`` (SGD, momentum)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(epoch)
    shape = (4, model.features[0].in_channels, 28, 28)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(torch.randn(shape, generator=generator)).logsumexp(1).mean()
        loss.backward()
        optimizer.step()
    state = {"epoch": epoch, "top1_acc": 11.0, "top5_acc": 55.0, "model_state_dict": model.state_dict(),
             "optimizer_state_dict": optimizer.state_dict(), "scheduler_state_dict": {}}
    torch.save(state, path)
    return state


def mnist_lenet(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_model("lenet", 10, 1, image_size=28)


@pytest.fixture
def mnist_root(tmp_path, rng):
    root = tmp_path / "data"
    formats.write_mnist(root, "MNIST", formats.random_images(rng, 60, (28, 28), 10),
                        formats.random_images(rng, 30, (28, 28), 10))
    return root


@pytest.fixture
def reference_run(tmp_path):
    """A reference run folder of 3 epochs: ``lenet_init_0.pt``, ``lenet_{0,1,2}.tar``, ``lenet_3.pt``."""
    folder = tmp_path / "models" / "mnist" / "lenet" / "5"
    folder.mkdir(parents=True)
    model = mnist_lenet(5)
    torch.save(model.state_dict(), folder / "lenet_init_0.pt")
    for epoch in range(3):
        reference_tar(folder / f"lenet_{epoch}.tar", model, epoch)
    torch.save(model.state_dict(), folder / "lenet_3.pt")  # the final weights: those of lenet_2.tar
    return folder


# -- 1. normalization ---------------------------------------------------------------------------------
def _cifar_test_set(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The test batch as the reference's loader reads it: uint8 CHW rows, then ToTensor (/255)."""
    with open(root / "cifar-10-batches-py" / "test_batch", "rb") as handle:
        batch = pickle.load(handle, encoding="latin1")
    images = torch.tensor(np.asarray(batch["data"]), dtype=torch.float32).reshape(-1, 3, 32, 32) / 255
    return images, torch.tensor(batch["labels"])


def _reference_eval(model, images, labels, mean, std) -> tuple[float, float]:
    x = (images - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    with torch.no_grad():
        logits = model.eval()(x)
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    return loss, 100.0 * (logits.argmax(1) == labels).float().mean().item()


@pytest.fixture
def cifar_reference_file(tmp_path, rng):
    root = tmp_path / "data"
    formats.write_cifar10(root, formats.random_images(rng, 20, (3, 32, 32), 10),
                          formats.random_images(rng, 40, (3, 32, 32), 10))
    torch.manual_seed(3)
    model = get_model("lenet", 10, 3, image_size=32)
    with torch.no_grad():  # a model whose outputs depend on the input scale
        model.classifier[-1].weight.mul_(5)
    path = tmp_path / "lenet_4.pt"
    torch.save(model.state_dict(), path)
    return root, model, path


def test_reference_statistics_are_the_reference_loaders(tmp_path, rng):
    formats.write_cifar10(tmp_path, formats.random_images(rng, 10, (3, 32, 32), 10),
                          formats.random_images(rng, 10, (3, 32, 32), 10))
    expected = {(False, False): ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
                (True, False): ((0.4914, 0.4822, 0.4465), (0.1953, 0.1925, 0.1942)),
                (False, True): ((0.1229, 0.1206, 0.1117), (0.2367, 0.2323, 0.2190))}
    for (upscale, padding), (mean, std) in expected.items():
        bundle = build_data("cifar10", DataOptions(data_path=str(tmp_path), normalization="reference",
                                                   upscale=upscale, upscale_padding=padding))
        assert (bundle.test.view.mean, bundle.test.view.std) == (mean, std)
    assert REFERENCE_STATISTICS["mnist"]["native"] == ((0.1307,), (0.3015,))
    assert REFERENCE_STATISTICS["cifar100"]["native"][1] == (0.2009, 0.1984, 0.2023)
    ours = build_data("cifar10", DataOptions(data_path=str(tmp_path)))
    assert ours.test.view.std == (0.2470, 0.2435, 0.2616)


def test_evaluate_gives_the_reference_accuracy_on_a_reference_file(tmp_path, capsys, cifar_reference_file):
    root, model, path = cifar_reference_file
    images, labels = _cifar_test_set(root)
    loss, top1 = _reference_eval(model, images, labels, CIFAR_REFERENCE_MEAN, CIFAR_REFERENCE_STD)
    ours_loss, _ = _reference_eval(model, images, labels, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    assert abs(loss - ours_loss) > 1e-3  # the test can tell the two normalizations apart

    argv = ["--arch", "lenet", "--dataset", "cifar10", "--data-path", str(root), "--resume-from", str(path),
            "--evaluate", "--models-path", str(tmp_path / "m"), "--tb-logdir", str(tmp_path / "tb")]
    assert run_main(train.main, argv) == 0
    out = capsys.readouterr()
    printed = re.search(r"test: loss ([\d.]+)  top1 ([\d.]+)%", out.out)
    assert float(printed.group(1)) == pytest.approx(loss, abs=1e-4)
    assert float(printed.group(2)) == pytest.approx(top1, abs=1e-6)
    assert "reference-tool file" in out.err and "--normalization" in out.err

    assert run_main(train.main, argv + ["--normalization", "dataset"]) == 0
    printed = re.search(r"test: loss ([\d.]+)", capsys.readouterr().out)
    assert float(printed.group(1)) == pytest.approx(ours_loss, abs=1e-4)


def test_reinit_scores_a_reference_file_with_its_normalization_and_records_it(tmp_path, cifar_reference_file):
    root, model, path = cifar_reference_file
    images, labels = _cifar_test_set(root)
    loss, top1 = _reference_eval(model, images, labels, CIFAR_REFERENCE_MEAN, CIFAR_REFERENCE_STD)
    assert run_main(reinit_layers.main, ["--arch", "lenet", "--dataset", "cifar10", "--data-path", str(root),
                                         "--load-from", str(path), "--rand", "--results", str(tmp_path / "r"),
                                         "--plots", str(tmp_path / "p")]) == 0
    document = json.loads(next((tmp_path / "r").rglob("reinit_lenet_4.json")).read_text())
    assert document["loss_test"] == pytest.approx(loss, abs=1e-5)
    assert document["top1_test"] == pytest.approx(top1, abs=1e-6)
    conventions = document["data_conventions"]
    assert conventions["normalization"] == "reference"
    assert (tuple(conventions["mean"]), tuple(conventions["std"])) == (CIFAR_REFERENCE_MEAN, CIFAR_REFERENCE_STD)


def test_our_snapshots_keep_the_normalization_they_recorded(digits_run, tmp_path):
    snapshot = digits_run / "lenet_epoch0003.pt"
    assert run_main(reinit_layers.main, ["--load-from", str(snapshot), "--rand", "--results", str(tmp_path / "r"),
                                         "--plots", str(tmp_path / "p")]) == 0
    document = json.loads(next((tmp_path / "r").rglob("reinit_lenet_epoch0003.json")).read_text())
    recorded = torch.load(snapshot, weights_only=True)["data"]["view"]
    assert document["data_conventions"]["normalization"] == "dataset"
    assert document["data_conventions"]["mean"] == list(recorded["mean"])
    assert document["data_conventions"]["std"] == list(recorded["std"])


# -- 2. resuming from a reference .tar -----------------------------------------------------------------
def _resume_args(path: Path, *extra: str) -> list[str]:
    return ["--arch", "lenet", "--dataset", "mnist", "--resume-from", str(path), "--lr", "0.05", *extra]


def test_a_reference_tar_resumes_after_its_epochs_with_its_momentum(tmp_path, mnist_root):
    from training.arguments import get_args_parser
    from training.optim import build_optimizer
    from training.resume import load_resume, restore_training_state

    model = mnist_lenet(1)
    saved = reference_tar(tmp_path / "lenet_2.tar", model, epoch=2)
    argv = _resume_args(tmp_path / "lenet_2.tar", "--data-path", str(mnist_root))
    args = get_args_parser().parse_args(argv)
    checkpoint = load_resume(args, argv)
    assert args.start_epoch == 3  # lenet_2.tar holds epochs 0, 1 and 2
    fresh = mnist_lenet(99)
    fresh.load_state_dict(checkpoint["model_state_dict"])
    optimizer = build_optimizer("sgd", fresh.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    assert restore_training_state(checkpoint, optimizer, None, torch.Generator(), args.start_epoch) == 3
    restored = optimizer.state_dict()["state"]
    assert len(restored) == len(saved["optimizer_state_dict"]["state"]) == len(list(model.parameters()))
    for index, state in saved["optimizer_state_dict"]["state"].items():
        torch.testing.assert_close(restored[index]["momentum_buffer"], state["momentum_buffer"], rtol=0, atol=0)

    args = get_args_parser().parse_args(argv + ["--start-epoch", "1"])
    load_resume(args, argv + ["--start-epoch", "1"])
    assert args.start_epoch == 1


def test_another_optimizer_starts_afresh_and_the_notice_names_the_file(tmp_path, mnist_root, caplog):
    from training.arguments import get_args_parser
    from training.optim import build_optimizer
    from training.resume import load_resume, restore_training_state

    reference_tar(tmp_path / "lenet_2.tar", mnist_lenet(1), epoch=2)
    argv = _resume_args(tmp_path / "lenet_2.tar", "--data-path", str(mnist_root), "--optimizer", "adam")
    args = get_args_parser().parse_args(argv)
    checkpoint = load_resume(args, argv)
    model = mnist_lenet(1)
    optimizer = build_optimizer("adam", model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.0)
    assert restore_training_state(checkpoint, optimizer, None, torch.Generator(), args.start_epoch) == 3
    assert optimizer.state_dict()["state"] == {}
    # a notice wraps its lines (after a long path too): read it unwrapped
    said = [" ".join(line.removeprefix("notice:").strip() for line in record.getMessage().splitlines())
            for record in caplog.records]
    assert any(f"the optimizer state in {tmp_path / 'lenet_2.tar'} is sgd's" in message for message in said), said


def test_train_continues_a_reference_run_at_the_next_epoch(tmp_path, mnist_root):
    reference_tar(tmp_path / "lenet_2.tar", mnist_lenet(1), epoch=2)
    common = ["--data-path", str(mnist_root), "--epochs", "4", "--seed", "5", "--no-progress",
              "--models-path", str(tmp_path / "m"), "--tb-logdir", str(tmp_path / "tb"),
              "--results", str(tmp_path / "r"), "--batch-size", "16"]
    assert run_main(train.main, _resume_args(tmp_path / "lenet_2.tar", *common)) == 0
    run = json.loads((tmp_path / "m" / "mnist" / "lenet" / "5" / "run.json").read_text())
    assert [row["epoch"] for row in run["epochs"]] == [4]  # epoch 3 is not trained twice
    assert run["args"]["start_epoch"] == 3
    assert run_main(train.main, _resume_args(tmp_path / "lenet_2.tar", *common, "--start-epoch", "2",
                                             "--models-path", str(tmp_path / "m2"))) == 0
    run = json.loads((tmp_path / "m2" / "mnist" / "lenet" / "5" / "run.json").read_text())
    assert [row["epoch"] for row in run["epochs"]] == [3, 4]


# -- 3. class subsets ----------------------------------------------------------------------------------
def _reference_subset(names: list[str], k: int, seed: int, shuffle: bool) -> list[str]:
    """subsample_classes() of the reference: np.random.seed + np.random.shuffle of the class list."""
    classes = list(names)
    if shuffle:
        np.random.seed(seed)
        np.random.shuffle(classes)
    return classes[:k]


@pytest.mark.parametrize("shuffle", [True, False])
def test_reference_class_subset_keeps_the_drawn_classes_in_drawn_order(tmp_path, rng, shuffle):
    labels = np.repeat(np.arange(6), 2)
    images = rng.integers(0, 256, size=(len(labels), 8, 8, 3), dtype=np.uint8)
    for split in ("train", "val"):
        formats.write_image_folder(tmp_path, split, images, labels)
    names = sorted(f"class{c}" for c in range(6))
    expected = _reference_subset(names, 3, seed=7, shuffle=shuffle)
    bundle = build_data("imagenet", DataOptions(data_path=str(tmp_path), subsample_classes=3, class_sample_seed=7,
                                                shuffle=shuffle, class_order="reference"))
    assert bundle.class_names == expected
    folder = bundle.test.source.folder
    for index, label in zip(bundle.test.indices, bundle.test.targets):
        assert Path(folder.samples[index][0]).parent.name == expected[label]
    ours = build_data("imagenet", DataOptions(data_path=str(tmp_path), subsample_classes=3, class_sample_seed=7,
                                              shuffle=shuffle))
    assert ours.class_names == sorted(ours.class_names)  # ours: a seeded draw, labels in class order


# -- 4 and 5. epoch labels and --layout reference ------------------------------------------------------
def test_reference_files_are_labelled_by_completed_epochs_one_per_epoch(tmp_path, reference_run, capsys):
    assert run_main(compute_projections.main, ["--load-from", str(reference_run), "--arch", "lenet",
                                               "--dataset", "mnist", "--seed", "5",
                                               "--results", str(tmp_path / "r")]) == 0
    folder = tmp_path / "r" / "mnist" / "lenet" / "5"
    summary = json.loads((folder / "projections_summary.json").read_text())
    assert summary["epochs"] == [0, 1, 2, 3]
    assert sorted(p.name for p in folder.glob("projections_lenet_*.json")) == [
        "projections_lenet_0.json", "projections_lenet_1.json", "projections_lenet_3.json",
        "projections_lenet_init_0.json"]
    assert "leaving out lenet_2.tar" in unwrap_notices(capsys.readouterr().err)


def _notebook_loop(document: dict) -> list[float]:
    """What a notebook written for the reference's files does: every stage and block's mass."""
    masses = []
    for stage in document:
        if stage in REFERENCE_KEYS:
            continue
        for block in document[stage]:
            masses.append(document[stage][block]["mass"] + 0.0)
    return masses


def test_layout_reference_writes_projection_files_as_the_reference(tmp_path, reference_run):
    results = tmp_path / "r"
    assert run_main(compute_projections.main, ["--load-from", str(reference_run), "--arch", "lenet",
                                               "--dataset", "mnist", "--seed", "5", "--normalize",
                                               "--init-from", str(reference_run / "lenet_init_0.pt"),
                                               "--results", str(results), "--layout", "reference"]) == 0
    folder = results / "mnist" / "lenet" / "5"
    files = sorted(p.name for p in results.rglob("*.json"))
    assert files == ["lenet_0.json", "lenet_1.json", "lenet_2.json", "lenet_3.json", "lenet_init_0.json"]
    labels = {name: json.loads((folder / name).read_text())["epoch"] for name in files}
    assert labels == {"lenet_init_0.json": "0", "lenet_0.json": "1", "lenet_1.json": "2", "lenet_2.json": "3",
                      "lenet_3.json": "4"}  # the reference's int(last field) + 1, its E + 1 included
    document = json.loads((folder / "lenet_3.json").read_text())
    assert list(document)[-4:] == ["arch", "dataset", "seed", "epoch"]
    assert set(document) == {"0", "1", "2", "net", "arch", "dataset", "seed", "epoch"}
    assert (document["arch"], document["dataset"], document["seed"]) == ("lenet", "mnist", "5")
    assert set(document["net"]) == {"projections", "mass", "mean"}
    for stage in ("0", "1", "2"):
        for record in document[stage].values():
            assert set(record) == {"projections", "mass", "mean", "l2_dist", "l_inf_dist"}
    # the numbers: the reference's kernel_all_positive_proj and ECDF mass of the first conv layer
    weights = torch.load(reference_run / "lenet_3.pt", weights_only=True)["features.0.weight"].reshape(6, -1)
    projections = (weights.sum(1) / (weights.norm(dim=1) * weights.shape[1] ** 0.5)).tolist()
    assert document["0"]["0"]["projections"] == pytest.approx(projections, abs=1e-6)
    assert document["0"]["0"]["mass"] == pytest.approx(np.mean(np.array(projections) <= 0))
    assert len(_notebook_loop(document)) == 6  # LeNet's six 3x3 convs


def test_layout_reference_dataset_carries_the_class_count(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "lenet_init_0.pt"
    torch.save(get_model("lenet", 4, 1, image_size=28).state_dict(), path)
    assert run_main(compute_projections.main, ["--load-from", str(path), "--arch", "lenet", "--dataset", "mnist",
                                               "--subsample-classes", "4", "--results", str(tmp_path / "r"),
                                               "--layout", "reference"]) == 0
    document = json.loads((tmp_path / "r" / "mnist_4" / "lenet" / "lenet_init_0.json").read_text())
    assert document["dataset"] == "mnist_4" and "seed" not in document and document["epoch"] == "0"


def test_reinit_layout_reference_and_default_rows(tmp_path, reference_run, mnist_root, capsys):
    listing = tmp_path / "inits.txt"
    names = ["lenet_init_0.pt", "lenet_2.tar", "lenet_0.tar", "lenet_1.tar", "lenet_3.pt"]
    listing.write_text("".join(f"{reference_run / name}\n" for name in names) + "\n")
    base = ["--load-from", str(reference_run / "lenet_3.pt"), "--arch", "lenet", "--dataset", "mnist", "--seed",
            "5", "--data-path", str(mnist_root), "--inits-from", str(listing), "--rand", "--plots",
            str(tmp_path / "p")]
    assert run_main(reinit_layers.main, base + ["--results", str(tmp_path / "ours")]) == 0
    ours = json.loads(next((tmp_path / "ours").rglob("reinit_lenet_3.json")).read_text())
    assert [row["key"] for row in ours["rows"]] == ["0", "1", "2", "3", "rand"]
    assert "leaving out lenet_2.tar" in unwrap_notices(capsys.readouterr().err)

    assert run_main(reinit_layers.main, base + ["--results", str(tmp_path / "ref"), "--layout", "reference"]) == 0
    path = tmp_path / "ref" / "mnist" / "lenet" / "5" / "reinit_lenet_3.json"
    document = json.loads(path.read_text())
    assert list(document) == ["init_from_epoch", "arch", "dataset", "top1_test", "top5_test", "seed", "epoch"]
    assert list(document["init_from_epoch"]) == ["0", "3", "1", "2", "4", "rand"]  # the list's order
    assert (document["dataset"], document["seed"], document["epoch"]) == ("mnist", "5", "4")
    assert all(len(accuracies) == 6 for accuracies in document["init_from_epoch"].values())
    assert document["init_from_epoch"]["4"] == ours["rows"][3]["top1"]  # lenet_3.pt: the trained weights
    assert document["top1_test"] == ours["top1_test"]


# -- 6. projections without a forward pass ------------------------------------------------------------
def test_alexnet_on_cifar_sizes_falls_back_to_the_maxpool_rule(tmp_path, capsys):
    assert run_main(compute_projections.main, ["--arch", "alexnet", "--dataset", "cifar10", "--seed", "0",
                                               "--results", str(tmp_path / "r")]) == 0
    document = json.loads(next((tmp_path / "r").rglob("projections_init_alexnet.json")).read_text())
    stages = {layer["name"]: (layer["stage"], layer["block"]) for layer in document["layers"]}
    assert stages == {"features.0": (0, 0), "features.3": (1, 0), "features.6": (2, 0), "features.8": (2, 1),
                      "features.10": (2, 2)}
    assert "stages advancing at each MaxPool" in unwrap_notices(capsys.readouterr().err)
    assert run_main(compute_projections.main, ["--arch", "alexnet", "--dataset", "cifar10", "--seed", "0",
                                               "--upscale-padding", "--results", str(tmp_path / "r2")]) == 0
    padded = json.loads(next((tmp_path / "r2").rglob("projections_init_alexnet.json")).read_text())
    assert padded["input_shape"] == [3, 224, 224]
    assert [layer["mean"] for layer in padded["layers"]] == [layer["mean"] for layer in document["layers"]]


# -- 7. multi-GPU reference files ----------------------------------------------------------------------
def test_features_module_keys_load(tmp_path):
    model = mnist_lenet(2)
    wrapped = {key.replace("features.", "features.module.", 1) if key.startswith("features.") else key: value
               for key, value in model.state_dict().items()}
    assert any(key.startswith("features.module.") for key in wrapped)
    torch.save({"epoch": 0, "model_state_dict": wrapped, "optimizer_state_dict": {}}, tmp_path / "lenet_0.tar")
    assert run_main(compute_projections.main, ["--load-from", str(tmp_path / "lenet_0.tar"), "--arch", "lenet",
                                               "--dataset", "mnist", "--no-init", "--results",
                                               str(tmp_path / "r")]) == 0
    document = json.loads(next((tmp_path / "r").rglob("projections_lenet_0.json")).read_text())
    expected = model.state_dict()["features.0.weight"].reshape(6, -1).sum(1).tolist()
    assert document["0"]["0"]["projections"] == pytest.approx(expected, abs=1e-6)
    assert document["epoch"] == 1


# -- 8. label noise with --split --shuffle -------------------------------------------------------------
def _reference_noise(labels: np.ndarray, split: float, split_seed: int, noise: float, noise_seed: int,
                     classes: int) -> tuple[np.ndarray, np.ndarray]:
    """split_dataset() then corrupt_labels() of the reference: (corrupted indices, labels after)."""
    indices = list(range(len(labels)))
    np.random.seed(split_seed)
    np.random.shuffle(indices)
    train_indices = indices[: len(labels) - int(np.floor(len(labels) * split))]
    mask = np.zeros(len(labels), dtype=bool)
    mask[train_indices] = True
    np.random.seed(noise_seed)
    train_labels = labels[mask].copy()
    chosen = np.random.rand(len(train_labels)) <= noise
    train_labels[chosen] = (train_labels[chosen] + np.random.choice(range(1, classes), chosen.sum())) % classes
    after = labels.copy()
    after[mask] = train_labels
    return np.flatnonzero(mask)[chosen], after


def test_label_noise_with_a_shuffled_split_corrupts_the_reference_samples(tmp_path, rng):
    train_set = formats.random_images(rng, 270, (28, 28), 10)
    formats.write_mnist(tmp_path, "MNIST", train_set, formats.random_images(rng, 10, (28, 28), 10))
    expected, labels_after = _reference_noise(train_set[1], 0.2, 42, 0.2, 12345, 10)
    bundle = build_data("mnist", DataOptions(data_path=str(tmp_path), split=0.2, shuffle=True, split_seed=42,
                                             noise=0.2, noise_seed=12345))
    assert len(expected) > 20
    assert bundle.corrupted_indices.tolist() == sorted(expected.tolist())
    assert bundle.train.targets.tolist() == labels_after[bundle.train.indices].tolist()


# -- 9. notices ----------------------------------------------------------------------------------------
def test_deliberate_differences_print_one_notice_each(tmp_path, capsys, caplog):
    argv = ["--arch", "lenet", "--dataset", "digits", "--seed", "0", "--epochs", "1", "--optimizer", "adam",
            "--kill-plateaus", "--noise", "-1", "--no-progress", "--models-path", str(tmp_path / "m"),
            "--tb-logdir", str(tmp_path / "tb"), "--results", str(tmp_path / "r"), "--batch-size", "256",
            "--no-projection-logging"]
    assert run_main(train.main, argv) == 0
    notices = [line for line in unwrap_notices(capsys.readouterr().err).splitlines() if line.startswith("notice: ")]
    for flag in ("--optimizer adam", "--kill-plateaus", "--noise -1"):
        assert sum(flag in message for message in notices) == 1, flag
    assert "notice: --optimizer adam" in (tmp_path / "m" / "digits" / "pixel_shuffle" / "lenet" / "0"
                                                          / "train.log").read_text()
    assert run_main(train.main, argv[:8] + ["--eval-regularization-loss", "--models-path", str(tmp_path / "m")]) == 0
    assert "notice: --eval-regularization-loss" in unwrap_notices(capsys.readouterr().err)

    from training.arguments import get_args_parser, notice_reference_differences

    with caplog.at_level("WARNING", logger="utils.notices"):  # outside a CLI: no handler of ours on the root
        notice_reference_differences(get_args_parser().parse_args(["--dataset", "cifar10", "--augmentation",
                                                                   "--upscale"]))
    assert "crops +-4 px at the native 32x32 before upscaling (+-28 px after it)" in unwrap_notices(caplog.text)


def test_noise_folders_round_as_the_reference():
    from utils.paths import run_subdir

    assert run_subdir(dataset="cifar10", arch="vgg11", seed=0, noise=0.29) == "cifar10/noise_28/vgg11/0"
    assert run_subdir(dataset="cifar10", arch="vgg11", seed=0, noise=0.2) == "cifar10/noise_20/vgg11/0"
