"""Layer enumeration, snapshot resolution and model rebuilding shared by the analysis CLIs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import models
from analyses.loading import fresh_model, load_snapshot_model
from metrics.layers import enumerate_layers
from utils.checkpoints import reference_epoch, resolve_snapshots
from utils.errors import UserError


def reference_numbering(features: nn.Sequential) -> list[tuple[int, int]]:
    """The reference's rule: a MaxPool starts a new stage; 1x1 convs are skipped."""
    stage, block, out = 0, 0, []
    for layer in features:
        if isinstance(layer, nn.Conv2d) and layer.kernel_size != (1, 1):
            out.append((stage, block))
            block += 1
        elif isinstance(layer, nn.MaxPool2d):
            stage, block = stage + 1, 0
    return out


@pytest.mark.parametrize("arch,shape", [("lenet", (1, 32, 32)), ("vgg11", (3, 32, 32)), ("vgg16bn", (3, 32, 32)),
                                        ("alexnet", (3, 224, 224))])
def test_stage_block_numbering_equals_the_reference(arch, shape):
    model = models.get_model(arch, 10, shape[0], image_size=shape[1])
    layers = enumerate_layers(model, shape)
    assert [(layer.stage, layer.block) for layer in layers] == reference_numbering(model.features)


def test_resnet18_covers_every_3x3_conv_and_skips_1x1():
    model = models.get_model("resnet18", 10, 3)
    layers = enumerate_layers(model, (3, 32, 32))
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    assert sorted(layer.name for layer in layers) == sorted(convs)
    assert len(enumerate_layers(model, (3, 32, 32), include_1x1=True)) == len(convs) + 3
    assert [layer.stage for layer in layers] == sorted(layer.stage for layer in layers)


def test_grouped_conv_fan_in_and_linear_stage():
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=4), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 5))
    layers = enumerate_layers(model, (4, 4, 4), with_linear=True)
    assert [(layer.kind, layer.fan_in, layer.out_units, layer.stage) for layer in layers] == [("conv", 9, 8, 0), ("linear", 128, 5, 1)]
    assert layers[0].filters().shape == (8, 9)


def test_resolve_snapshots_in_epoch_order(digits_run):
    files = resolve_snapshots(digits_run)
    assert [f.name for f in files] == [f"lenet_epoch000{e}.pt" for e in range(4)]
    assert resolve_snapshots(str(digits_run / "lenet_epoch000*.pt")) == files
    with pytest.raises(UserError, match="no snapshot matches"):
        resolve_snapshots(str(digits_run / "nothing*.pt"))


def test_load_snapshot_model_checks_agreement(digits_run):
    loaded = load_snapshot_model(digits_run / "lenet_epoch0002.pt")
    assert (loaded.arch, loaded.dataset, loaded.epoch, loaded.seed, loaded.input_shape) == ("lenet", "digits", 2, 0, (1, 32, 32))
    with pytest.raises(UserError, match="disagrees"):
        load_snapshot_model(digits_run / "lenet_epoch0002.pt", arch="vgg11")


def test_reference_plain_files_load_with_arch_and_dataset(tmp_path, digits_run):
    state = torch.load(digits_run / "lenet_epoch0002.pt", weights_only=True)["model_state_dict"]
    torch.save({"model_state_dict": state}, tmp_path / "lenet_4.tar")
    torch.save(state, tmp_path / "lenet_init_0.pt")
    assert reference_epoch(tmp_path / "lenet_4.tar") == 5 and reference_epoch(tmp_path / "lenet_init_0.pt") == 0
    loaded = load_snapshot_model(tmp_path / "lenet_4.tar", arch="lenet", dataset="digits")
    assert loaded.epoch == 5 and torch.equal(loaded.model.state_dict()["features.0.weight"], state["features.0.weight"])
    with pytest.raises(UserError, match="--arch and --dataset"):
        load_snapshot_model(tmp_path / "lenet_init_0.pt")
    assert [p.name for p in resolve_snapshots(tmp_path)] == ["lenet_init_0.pt", "lenet_4.tar"]


def test_fresh_model_is_seeded():
    a = fresh_model("lenet", "digits", seed=3).model.state_dict()["features.0.weight"]
    b = fresh_model("lenet", "digits", seed=3).model.state_dict()["features.0.weight"]
    assert torch.equal(a, b)
