"""Layer re-initialization: exactness of the prefix-cached sweep, BatchNorm resets, reinit_layers.py in-process."""
from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest
import torch
from torch import nn

import datasets
import models
import reinit_layers
import schema
from analyses import reinit_rows
from analyses.loading import load_snapshot_model
from metrics.chance import chance_verdict
from metrics.layers import enumerate_layers
from metrics.prefix import PrefixPlan
from metrics.reinit import ResetRow, following_batchnorms, reinit_sweep
from plotting.reinit import reinit_heatmap_data
from tests.checks import tiny_vit
from training.evaluate import evaluate
from utils import progress
from utils.cli import run_main
from utils.errors import UserError

BATCH = 128


def run_cli(*argv: str) -> int:
    return run_main(reinit_layers.main, list(argv))


def snapshot_state(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model_state_dict"]


def conv_names(model: nn.Module, input_shape) -> list[str]:
    return [layer.name for layer in enumerate_layers(model, input_shape, include_1x1=True)]


@pytest.fixture(scope="module")
def digits_test():
    return datasets.build_data("digits").test


def oracle_cell(model: nn.Module, modules: list[str], state: dict, split, num_classes: int):
    """The reference's way: copy the tensors in, evaluate everything, copy the trained ones back."""
    trained = {name: {k: v.clone() for k, v in model.get_submodule(name).state_dict().items()} for name in modules}
    for name in modules:
        module = model.get_submodule(name)
        module.load_state_dict({key: state[f"{name}.{key}"] for key in module.state_dict()})
    try:
        return evaluate(model, split.batches(BATCH), num_classes=num_classes)
    finally:
        for name in modules:
            model.get_submodule(name).load_state_dict(trained[name])


def tiny_bn_net() -> nn.Module:
    """Conv-BN-ReLU twice and a linear head, defined only for these tests."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
        nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5),
    ).eval()


def random_batches(samples: int, shape, classes: int, seed: int = 0, batch: int = 8):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, *shape, generator=generator)
    labels = torch.randint(0, classes, (samples,), generator=generator)
    return [(inputs[i:i + batch], labels[i:i + batch]) for i in range(0, samples, batch)]


# -- the sweep is exact ----------------------------------------------------------------------------
def test_prefix_cells_equal_a_naive_reevaluation_on_digits(digits_run, digits_test):
    loaded = load_snapshot_model(digits_run / "lenet_epoch0003.pt")
    layers = conv_names(loaded.model, loaded.input_shape)
    rows = [ResetRow(f"epoch {e}", snapshot_state(digits_run / f"lenet_epoch000{e}.pt")) for e in range(3)]
    result = reinit_sweep(loaded.model, layers, rows, digits_test.batches(BATCH), num_classes=10, method="prefix")
    assert result.method == "prefix" and result.reused_cells == 0
    reference = evaluate(loaded.model, digits_test.batches(BATCH), num_classes=10)
    assert (result.reference.top1, result.reference.top5, result.reference.loss) == (
        reference.top1, reference.top5, reference.loss)
    differs = 0
    for row, scores in zip(rows, result.cells):
        for layer, score in zip(layers, scores):
            expected = oracle_cell(loaded.model, [layer], row.state, digits_test, 10)
            assert (score.top1, score.top5, score.loss, score.samples) == (
                expected.top1, expected.top5, expected.loss, expected.samples), (row.label, layer)
            differs += score.top1 != reference.top1
    assert differs > 0  # the epoch-0 layers are not all harmless: the comparison is not vacuous


def test_after_the_sweep_the_model_equals_the_snapshot_bit_for_bit(digits_run, digits_test):
    path = digits_run / "lenet_epoch0003.pt"
    loaded = load_snapshot_model(path)
    loaded.model.train()
    rows = [ResetRow("init", snapshot_state(digits_run / "lenet_epoch0000.pt"))]
    layers = [layer.name for layer in enumerate_layers(loaded.model, loaded.input_shape, with_linear=True)]
    for method in ("prefix", "naive"):
        reinit_sweep(loaded.model, layers, rows, digits_test.batches(BATCH), num_classes=10, method=method)
    after, snapshot = loaded.model.state_dict(), snapshot_state(path)
    assert after.keys() == snapshot.keys()
    assert all(torch.equal(after[key], snapshot[key]) for key in snapshot)
    assert loaded.model.training  # the mode is restored too
    assert all(m.inplace for m in loaded.model.modules() if isinstance(m, nn.ReLU))


@pytest.mark.parametrize("arch", ["lenet", "resnet18"])
def test_a_suffix_with_the_trained_tensors_reproduces_the_trained_logits(arch):
    torch.manual_seed(0)
    model = models.get_model(arch, 10, 3, image_size=32).eval()
    layers = conv_names(model, (3, 32, 32))
    plan = PrefixPlan(model, layers)
    inputs = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        eager = model(inputs)
        cache, logits = plan.record(inputs)
        assert torch.equal(logits, eager)
        for layer in layers:
            trained = {layer: {k: v.clone() for k, v in model.get_submodule(layer).state_dict().items()}}
            assert torch.equal(plan.suffix(layer, cache, trained), eager), layer
    assert len(plan.suffixes[layers[-1]]) < len(plan.suffixes[layers[0]])  # later layers recompute less


def test_reinit_from_the_snapshot_itself_gives_zero_drop_in_every_cell(digits_run, digits_test):
    loaded = load_snapshot_model(digits_run / "lenet_epoch0002.pt")
    layers = conv_names(loaded.model, loaded.input_shape)
    itself = ResetRow("itself", snapshot_state(digits_run / "lenet_epoch0002.pt"))
    result = reinit_sweep(loaded.model, layers, [itself], digits_test.batches(BATCH), num_classes=10)
    assert all(cell == result.reference for cell in result.cells[0])
    assert result.reused_cells == len(layers)


def test_residual_network_prefix_equals_naive_with_batchnorm_reset():
    torch.manual_seed(0)
    model = models.get_model("resnet18", 7, 3, image_size=32).eval()
    torch.manual_seed(1)
    other = models.get_model("resnet18", 7, 3, image_size=32)
    for module in other.modules():  # give the donor's BatchNorms statistics unlike the trained ones
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    layers = conv_names(model, (3, 32, 32))
    batchnorms = following_batchnorms(model, (3, 32, 32), layers)
    assert batchnorms["conv1"] == "bn1" and batchnorms["layer2.0.downsample.0"] == "layer2.0.downsample.1"
    assert all(batchnorms.values())
    rows = [ResetRow("other", other.state_dict())]
    batches = random_batches(24, (3, 32, 32), 7)
    prefix = reinit_sweep(model, layers, rows, batches, num_classes=7, with_bn=batchnorms, method="prefix")
    naive = reinit_sweep(model, layers, rows, batches, num_classes=7, with_bn=batchnorms, method="naive")
    assert prefix.method == "prefix" and naive.method == "naive"
    assert prefix.cells == naive.cells and prefix.reference == naive.reference


def test_with_bn_resets_the_following_batchnorm_statistics():
    torch.manual_seed(0)
    model = tiny_bn_net()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_var.fill_(0.5)
    layers = conv_names(model, (3, 8, 8))
    assert layers == ["0", "3"]
    batchnorms = following_batchnorms(model, (3, 8, 8), layers)
    assert batchnorms == {"0": "1", "3": "4"}
    donor = {key: value.clone() for key, value in model.state_dict().items()}
    donor["1.running_mean"] += 100.0  # same conv, a BatchNorm whose statistics wipe out the signal
    batches = random_batches(40, (3, 8, 8), 5)
    plain = reinit_sweep(model, layers, [ResetRow("donor", donor)], batches, num_classes=5)
    with_bn = reinit_sweep(model, layers, [ResetRow("donor", donor)], batches, num_classes=5, with_bn=batchnorms)
    assert plain.cells[0][0] == plain.reference  # the conv alone is unchanged
    model.get_submodule("1").running_mean += 100.0
    expected = evaluate(model, batches, num_classes=5)
    model.get_submodule("1").running_mean -= 100.0
    assert (with_bn.cells[0][0].top1, with_bn.cells[0][0].loss) == (expected.top1, expected.loss)
    assert with_bn.cells[0][0].loss != with_bn.reference.loss
    assert with_bn.cells[0][1] == with_bn.reference  # the second BatchNorm was not touched
    assert torch.equal(model.get_submodule("1").running_mean, torch.zeros(4))


def test_a_batchnorm_after_an_inplace_relu_does_not_directly_follow_the_conv():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3),
                          nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(64, 3))
    assert following_batchnorms(model, (3, 8, 8), ["0", "3"]) == {"0": None, "3": "4"}


# -- list files and paths --------------------------------------------------------------------------
def test_list_file_parsing_ignores_blank_lines_and_comments():
    text = "\n/a/one.pt\n\n   \n# a comment\n  /b/two.pt  \n/c/three.pt\n\n"
    assert reinit_rows.parse_inits_list(text) == ["/a/one.pt", "/b/two.pt", "/c/three.pt"]


def test_missing_listed_snapshots_are_one_error_naming_them_all(digits_run, tmp_path):
    listing = tmp_path / "inits.txt"
    listing.write_text(f"{digits_run / 'lenet_epoch0000.pt'}\n\n{tmp_path / 'gone_1.pt'}\n{tmp_path / 'gone_2.pt'}\n")
    with pytest.raises(UserError) as error:
        reinit_rows.listed_paths(listing, skip_missing=False)
    assert "gone_1.pt" in str(error.value) and "gone_2.pt" in str(error.value) and "--skip-missing" in str(error.value)
    assert reinit_rows.listed_paths(listing, skip_missing=True) == [digits_run / "lenet_epoch0000.pt"]


def test_list_entries_may_be_relative_to_the_list_file(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "a_epoch0001.pt").write_bytes(b"x")
    listing = tmp_path / "inits.txt"
    listing.write_text("runs/a_epoch0001.pt\n")
    assert reinit_rows.listed_paths(listing, skip_missing=False) == [tmp_path / "runs" / "a_epoch0001.pt"]


# -- reinit_layers.py in-process -------------------------------------------------------------------
def read_json(tmp_path, stem: str) -> dict:
    return json.loads((tmp_path / "results" / "digits" / "lenet" / "0" / f"reinit_{stem}.json").read_text())


def test_cli_on_a_run_directory_writes_the_json_and_the_heatmap(digits_run, tmp_path):
    code = run_cli("--load-from", str(digits_run / "lenet_epoch0003.pt"), "--inits-from", str(digits_run), "--rand",
                   "--results", str(tmp_path / "results"), "--plots", str(tmp_path / "plots"))
    assert code == 0
    document = read_json(tmp_path, "lenet_epoch0003")
    layers = conv_names(load_snapshot_model(digits_run / "lenet_epoch0003.pt").model, (1, 32, 32))
    assert document["layer_names"] == layers
    assert list(document["init_from_epoch"]) == ["0", "1", "2", "3", "rand"]
    assert all(len(values) == len(layers) for values in document["init_from_epoch"].values())
    assert document["kind"] == "reinit" and document["schema_version"] == 1
    assert (document["arch"], document["dataset"], document["seed"], document["epoch"]) == ("lenet", "digits", 0, 3)
    run = json.loads((digits_run / "run.json").read_text())
    assert document["top1_test"] == pytest.approx(run["epochs"][-1]["val_top1"])  # what training measured
    assert document["chance_top1"] == 10.0
    assert document["chance"] == chance_verdict(document["top1_test"], n_test=document["test_samples"],
                                                num_classes=10).as_dict()
    assert document["chance"]["above_chance"] and document["chance"]["n_test"] == 450
    rows = {row["key"]: row for row in document["rows"]}
    assert rows["3"]["relative_drop"] == [0.0] * len(layers)  # the snapshot itself
    for row in document["rows"]:
        assert row["drop"] == pytest.approx([document["top1_test"] - acc for acc in row["top1"]])
        assert len(row["top5"]) == len(row["loss"]) == len(layers)
    assert min(rows["rand"]["top1"]) < 50  # a random layer hurts somewhere
    plots = tmp_path / "plots" / "digits" / "lenet" / "0"
    image = matplotlib.image.imread(plots / "reinit_lenet_epoch0003.png")
    assert image.shape[0] > 300 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # not blank
    assert (plots / "reinit_lenet_epoch0003.pdf").read_bytes().startswith(b"%PDF")


def test_an_untrained_model_is_named_as_such_and_the_sweep_shows_progress(digits_run, tmp_path, capsys, monkeypatch):
    """The init snapshot (epoch 0) is at chance: its document and its log say so, and the drops are not
    called critical layers; with progress lines forced (as in a log file), the sweep reports its cells."""
    monkeypatch.setenv("HP_PROGRESS", "lines")
    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.0)
    assert run_cli("--load-from", str(digits_run / "lenet_epoch0000.pt"), "--rand", "--results", str(tmp_path / "results"),
                   "--plots", str(tmp_path / "plots")) == 0
    document = read_json(tmp_path, "lenet_epoch0000")
    expected = chance_verdict(document["top1_test"], n_test=450, num_classes=10)
    assert document["chance"] == expected.as_dict() and not expected.above_chance
    err = capsys.readouterr().err
    assert f"warning: the trained model is {expected.describe()}" in err
    assert "do not show which layers the task needs" in err
    lines = [line for line in err.splitlines() if line.startswith("reinit: ")]
    assert lines and "batches (100%)" in lines[-1] and all("batches" in line for line in lines)
    assert max(map(len, lines)) <= 120  # the progress lines fit a terminal (the others name long paths)


def test_rand_is_reproducible_with_the_seed_and_independent_of_the_run_init(digits_run, tmp_path):
    snapshot = str(digits_run / "lenet_epoch0003.pt")
    for name in ("a", "b"):
        assert run_cli("--load-from", snapshot, "--rand", "--rand-repeats", "2", "--seed", "0",
                       "--results", str(tmp_path / name / "results"), "--plots", str(tmp_path / name / "plots")) == 0
    first, second = (read_json(tmp_path / name, "lenet_epoch0003") for name in ("a", "b"))
    assert first["rows"] == second["rows"]
    rand = first["rows"][-1]
    assert rand["key"] == "rand" and len(rand["repeats"]) == 2
    assert rand["repeats"][0]["seed"] != rand["repeats"][1]["seed"]
    assert rand["top1"] == pytest.approx([(a + b) / 2 for a, b in zip(*(r["top1"] for r in rand["repeats"]))])
    assert len(rand["top1_std"]) == len(rand["top1"])
    init = snapshot_state(digits_run / "lenet_epoch0000.pt")
    torch.manual_seed(rand["repeats"][0]["seed"])
    drawn = models.get_model("lenet", 10, 1, image_size=32, check_input=False).state_dict()
    assert not torch.equal(drawn["features.0.weight"], init["features.0.weight"])


def test_rand_seed_streams_differ_by_seed_and_repeat():
    seeds = {reinit_rows.rand_seed(base, repeat) for base in range(3) for repeat in range(3)}
    assert len(seeds) == 9 and all(0 <= seed < 2**63 for seed in seeds)
    assert reinit_rows.rand_seed(5, 1) == reinit_rows.rand_seed(5, 1)


def test_cli_list_file_with_missing_entries(digits_run, tmp_path, capsys):
    listing = tmp_path / "inits.txt"
    listing.write_text(f"\n{digits_run / 'lenet_epoch0000.pt'}\n\n{tmp_path / 'missing.pt'}\n"
                       f"{digits_run / 'lenet_epoch0002.pt'}\n\n")
    common = ["--load-from", str(digits_run / "lenet_epoch0002.pt"), "--inits-from", str(listing),
              "--results", str(tmp_path / "results"), "--plots", str(tmp_path / "plots")]
    assert run_cli(*common) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.pt" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "results" / "digits" / "lenet" / "0" / "reinit_lenet_epoch0002.json").exists()
    assert run_cli(*common, "--skip-missing") == 0
    document = read_json(tmp_path, "lenet_epoch0002")
    assert list(document["init_from_epoch"]) == ["0", "2"]


@pytest.mark.parametrize("flags, message", [
    (["--upscale"], "--upscale"),
    (["--subsample-classes", "4"], "subsample"),
    (["--seed", "5"], "--seed 5"),
    (["--rand-repeats", "3"], "--rand"),
    ([], "nothing to reset from"),
])
def test_flags_that_disagree_or_are_incomplete_exit_2_with_one_line(digits_run, tmp_path, capsys, flags, message):
    inits = [] if "--rand-repeats" in flags or not flags else ["--inits-from", str(digits_run)]
    code = run_cli("--load-from", str(digits_run / "lenet_epoch0001.pt"), *inits, *flags,
                   "--results", str(tmp_path / "results"), "--plots", str(tmp_path / "plots"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_reference_format_files_load_with_arch_and_dataset(digits_run, tmp_path):
    reference_run = tmp_path / "reference"
    reference_run.mkdir()
    torch.save(snapshot_state(digits_run / "lenet_epoch0002.pt"), reference_run / "lenet_1.tar")
    torch.save(snapshot_state(digits_run / "lenet_epoch0000.pt"), reference_run / "lenet_init.tar")
    listing = tmp_path / "inits.txt"
    listing.write_text(f"{reference_run / 'lenet_init.tar'}\n{reference_run / 'lenet_1.tar'}\n")
    assert run_cli("--arch", "lenet", "--dataset", "digits", "--seed", "0", "--load-from",
                   str(reference_run / "lenet_1.tar"), "--inits-from", str(listing),
                   "--results", str(tmp_path / "results"), "--plots", str(tmp_path / "plots")) == 0
    document = read_json(tmp_path, "lenet_1")
    assert list(document["init_from_epoch"]) == ["0", "2"]
    assert document["init_from_epoch"]["2"] == [document["top1_test"]] * len(document["layer_names"])
    assert document["init_from_epoch"]["0"] != document["init_from_epoch"]["2"]


def test_heatmap_reads_reference_documents_with_rand_last():
    document = {"top1_test": 80.0, "init_from_epoch": {"rand": [8.0, 10.0], "10": [80.0, 60.0], "2": [40.0, 80.0]}}
    data = reinit_heatmap_data(schema.normalize(document))  # the reference's files, as schema.load reads them
    assert data.row_labels == ["epoch 2", "epoch 10", "random init"]
    assert data.layer_labels == ["layer 0", "layer 1"]
    assert np.allclose(data.relative_drop, [[0.5, 0.0], [0.0, 0.25], [0.9, 0.875]])


def test_rand_depends_on_the_seed_for_plain_weight_files(digits_run, tmp_path):
    trained = tmp_path / "lenet_3.tar"
    torch.save(snapshot_state(digits_run / "lenet_epoch0003.pt"), trained)
    rows = {}
    for seed in ("0", "1"):
        assert run_cli("--arch", "lenet", "--dataset", "digits", "--seed", seed, "--load-from", str(trained), "--rand",
                       "--results", str(tmp_path / "results"), "--plots", str(tmp_path / "plots")) == 0
        path = tmp_path / "results" / "digits" / "lenet" / seed / "reinit_lenet_3.json"
        rows[seed] = json.loads(path.read_text())["rows"][-1]
    assert rows["0"]["seed"] != rows["1"]["seed"]
    assert rows["0"]["top1"] != rows["1"]["top1"]


# -- an attention block is one layer ---------------------------------------------------------------
def test_an_attention_block_is_reset_as_one_layer_with_its_out_proj():
    model, donor = tiny_vit(seed=0), tiny_vit(seed=1)
    layers = enumerate_layers(model, (3, 16, 16), include_1x1=True, with_linear=True, with_attention=True)
    attention = "encoder.layers.encoder_layer_0.self_attention"
    names = [layer.name for layer in layers]
    assert names[:4] == ["conv_proj", attention, "encoder.layers.encoder_layer_0.mlp.0",
                         "encoder.layers.encoder_layer_0.mlp.3"]
    assert len(names) == 1 + 2 * 3 + 1 and not any(name.endswith("out_proj") for name in names)
    assert layers[1].kind == "attention" and (layers[1].fan_in, layers[1].out_units) == (16, 16)
    without = enumerate_layers(model, (3, 16, 16), include_1x1=True, with_linear=True)
    assert [layer.name for layer in without] == [name for name in names if not name.endswith("self_attention")]
    row = ResetRow("donor", reinit_rows.kept_state(donor, set(names)))
    assert {f"{attention}.out_proj.weight", f"{attention}.in_proj_weight"} <= set(row.state)
    batches = random_batches(32, (3, 16, 16), 5)
    prefix = reinit_sweep(model, names, [row], batches, num_classes=5, method="prefix")
    naive = reinit_sweep(model, names, [row], batches, num_classes=5, method="naive")
    assert prefix.method == "prefix" and prefix.cells == naive.cells and prefix.reference == naive.reference
    # the oracle: the donor's whole attention block (in_proj and out_proj) loaded into a copy of the model
    swapped = tiny_vit(seed=0)
    swapped.get_submodule(attention).load_state_dict(donor.get_submodule(attention).state_dict())
    with torch.no_grad():
        losses = [nn.functional.cross_entropy(swapped(x), y, reduction="sum") for x, y in batches]
    assert naive.cells[0][1].loss == pytest.approx(float(sum(losses)) / 32, rel=1e-5)
    assert naive.cells[0][1].loss != naive.reference.loss
    # in_proj alone would differ: out_proj is part of the reset
    swapped.get_submodule(attention).out_proj.load_state_dict(model.get_submodule(attention).out_proj.state_dict())
    with torch.no_grad():
        partial = sum(float(nn.functional.cross_entropy(swapped(x), y, reduction="sum")) for x, y in batches) / 32
    assert partial != pytest.approx(naive.cells[0][1].loss, rel=1e-5)
