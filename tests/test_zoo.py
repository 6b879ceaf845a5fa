"""The zoo path of rank_measures.py, offline: random weights of small torchvision architectures at
the cache file names torchvision uses, in the test's private TORCH_HOME; targets from the real
weights metadata; DSE on a probe written in CIFAR-10's on-disk format; local .pt and .safetensors
weight files; timm without timm; utils/weights.py."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

import rank_measures
from analyses import zoo
from models.torchvision_models import pretrained_cache_file
from tests import formats
from utils.cli import run_main
from utils.errors import UserError
from utils.weights import read_state_dict, write_safetensors

SMALL = ("mnasnet0_5", "shufflenet_v2_x0_5", "mobilenet_v3_small")  # fast spectra, distinct acc@1


def cache(*names: str) -> dict[str, torch.nn.Module]:
    """Random weights of each architecture where torchvision's cache keeps its default weights."""
    built = {}
    for number, name in enumerate(names):
        torch.manual_seed(number)
        built[name] = torchvision.models.get_model(name, weights=None)
        path = Path(pretrained_cache_file(name)[0])  # under the private TORCH_HOME of conftest
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(built[name].state_dict(), path)
    return built


def acc(name: str, key: str = "acc@1") -> float:
    return torchvision.models.get_model_weights(name).DEFAULT.meta["_metrics"]["ImageNet-1K"][key]


@pytest.mark.slow
def test_a_zoo_is_analysed_in_parallel_offline_and_ranked_against_its_metadata(tmp_path, capsys):
    cache(*SMALL)
    out = tmp_path / "zoo"
    argv = ["--zoo", *SMALL, "--out", str(out), "--jobs", "2", "--analyses", "projections", "--resamples", "100",
            "--formats", "png"]
    assert run_main(rank_measures.main, argv) == 0
    for name in SMALL:
        folder = out / "models" / name / "imagenet" / name / "none"
        projections = json.loads((folder / f"projections_pretrained_{name}.json").read_text())
        assert projections["epoch"] == -1 and projections["normalize"] is True and projections["args"]["zoo"] == name
    table = pd.read_csv(out / "measures.csv")
    assert set(table.model) == set(SMALL) and set(table.source) == {"zoo"}
    for name in SMALL:
        row = table[table.model == name].iloc[0]
        assert row.test_top1 == acc(name) and row.test_top5 == acc(name, "acc@5")
    assert set(table.measure) == {"bias_mean", "bias_last_conv", "biased_fraction"}
    ranking = pd.read_csv(out / "ranking.csv")
    assert set(ranking.target) == {"test_top1", "test_top5"} and (ranking.n_models == 3).all()
    assert ranking.granulated_kendall.isna().all()  # a zoo is no grid
    report = (out / "report.md").read_text()
    assert "fewer than 5" in report and "3 zoo model(s)" in report
    stamps = {path: path.stat().st_mtime_ns for path in (out / "models").rglob("*.json")}
    capsys.readouterr()
    assert run_main(rank_measures.main, argv[:-4] + ["--formats", "png"]) == 0  # again: the results are reused
    assert {path: path.stat().st_mtime_ns for path in (out / "models").rglob("*.json")} == stamps
    assert capsys.readouterr().err.count(": 0 file(s) written") == len(SMALL)
    one = ["--zoo", "shufflenet_v2_x0_5", "--out", str(out), "--formats", "png"]  # the default analyses add spectra
    assert run_main(rank_measures.main, one) == 0
    assert {"alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "stable_rank", "entropy", "rand_distance",
            "bias_mean"} <= set(pd.read_csv(out / "measures.csv").measure)


def test_the_zoo_s_dse_is_measured_on_a_probe_dataset(tmp_path, capsys):
    cache("mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1")
    rng = np.random.default_rng(0)
    formats.write_cifar10(tmp_path / "data", formats.random_images(rng, 20, (3, 32, 32), 10),
                          formats.random_images(rng, 30, (3, 32, 32), 10))
    out = tmp_path / "probe"
    assert run_main(rank_measures.main, ["--zoo", "mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1",
                                         "--analyses", "dse", "--probe-dataset", "cifar10", "--data-path",
                                         str(tmp_path / "data"), "--probe-samples", "12", "--out", str(out),
                                         "--formats", "png"]) == 0
    document = json.loads((out / "models" / "mobilenet_v3_small" / "imagenet" / "mobilenet_v3_small" / "none"
                           / "dse_pretrained_mobilenet_v3_small.json").read_text())
    assert document["probe"]["dataset"] == "cifar10" and document["probe"]["size"] == 12
    assert document["settings"]["sigma"] == "auto" and document["feature_dim"] == 1024
    table = pd.read_csv(out / "measures.csv")
    assert set(table[table.measure == "dsmi_y"].model) == {"mobilenet_v3_small", "shufflenet_v2_x0_5"}
    assert "squeezenet1_1 has no DSE" in capsys.readouterr().err  # it has no linear layer to probe


def test_local_pt_and_safetensors_weights_are_ranked_with_accuracy_from_a_csv(tmp_path):
    built = cache("shufflenet_v2_x0_5")
    model = built["shufflenet_v2_x0_5"]
    write_safetensors(tmp_path / "a.safetensors", model.state_dict())
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "b.pt")  # a DataParallel file
    (tmp_path / "acc.csv").write_text("model,top1,top5\na,50.5,70\nb,40,\nshufflenet_v2_x0_5,99,99.5\n")
    out = tmp_path / "out"
    assert run_main(rank_measures.main, ["--weights", str(tmp_path / "a.safetensors"), str(tmp_path / "b.pt"),
                                         "--arch", "shufflenet_v2_x0_5", "--zoo", "shufflenet_v2_x0_5",
                                         "--accuracy", str(tmp_path / "acc.csv"), "--analyses", "projections",
                                         "--out", str(out), "--formats", "png"]) == 0
    table = pd.read_csv(out / "measures.csv")
    top1 = table.drop_duplicates("model").set_index("model").test_top1
    assert top1.to_dict() == {"a": 50.5, "b": 40.0, "shufflenet_v2_x0_5": 99.0}  # the file overrides the metadata
    same = table[table.measure == "bias_mean"].set_index("model").value
    assert same["a"] == pytest.approx(same["b"]) == pytest.approx(same["shufflenet_v2_x0_5"])  # one set of weights
    assert (out / "models" / "a" / "imagenet" / "shufflenet_v2_x0_5" / "none" / "projections_a.json").is_file()


def test_weight_files_read_the_same_tensors_and_bad_ones_are_one_line(tmp_path):
    state = {"w": torch.randn(3, 4), "b": torch.arange(3)}
    write_safetensors(tmp_path / "w.safetensors", state)
    torch.save(state, tmp_path / "w.pth")
    for name in ("w.safetensors", "w.pth"):
        read = read_state_dict(tmp_path / name)
        assert set(read) == {"w", "b"} and all(torch.equal(read[k], state[k]) for k in state)
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    for name, message in (("broken.safetensors", "not a safetensors file"), ("missing.safetensors", "does not exist")):
        with pytest.raises(UserError, match=message):
            read_state_dict(tmp_path / name)


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed here")
def test_a_timm_entry_without_timm_is_one_line(tmp_path, capsys):
    assert run_main(rank_measures.main, ["--zoo", "timm/resnet50.a1_in1k", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs timm, which is not installed" in err


@pytest.mark.parametrize("argv, message", [
    (["--zoo", "resnet18", "mobilenet_v3_small"], "resnet18-f37072fd.pth"),
    (["--zoo", "mobilenet_v3_small", "--probe-dataset", "digits"], "1-channel images"),
    (["--zoo", "mobilenet_v3_small", "--probe-dataset", "cifar10", "--data-path", "{tmp}/nowhere"], "cifar"),
    (["--weights", "{tmp}/none.safetensors", "--arch", "resnet18"], "does not exist"),
    (["--weights", "{tmp}/acc.csv", "--arch", "resnet18"], "not a weight file"),
    (["--weights", "{tmp}/w.pt"], "pass --arch"),
    (["--weights", "{tmp}/w.pt", "--arch", "resnet18"], "without a target"),
    (["--zoo", "mobilenet_v3_small", "--accuracy", "{tmp}/acc.csv"], "lacks the column(s) model"),
])
def test_bad_zoo_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    cache("mobilenet_v3_small")
    (tmp_path / "acc.csv").write_text("name,top1\nx,1\n")
    torch.save({"w": torch.zeros(1)}, tmp_path / "w.pt")
    out = tmp_path / "out"
    assert run_main(rank_measures.main, [a.format(tmp=tmp_path) for a in argv] + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and message in err
    assert not out.exists()


def test_zoo_names_resolve_to_torchvision_s_and_describe_their_family():
    entries = zoo.parse_entries(["vgg11bn", "resnet18"], [])
    assert [(e.arch, e.factors()) for e in entries] == [
        ("vgg11_bn", {"family": "vgg", "batch_norm": True}), ("resnet18", {"family": "resnet", "batch_norm": False})]
    with pytest.raises(UserError, match="did you mean resnet18"):
        zoo.parse_entries(["resnet81"], [])


def test_every_load_from_reads_safetensors_as_it_reads_a_state_dict(tmp_path):
    """--load-from takes a .safetensors file wherever it takes a .pt state dict (utils.checkpoints)."""
    import compute_projections
    from models import get_model

    torch.manual_seed(0)
    state = get_model("lenet", 4, 1, image_size=28).state_dict()
    torch.save(state, tmp_path / "lenet_2.pt")
    write_safetensors(tmp_path / "lenet_2.safetensors", state)
    documents = []
    for name in ("lenet_2.pt", "lenet_2.safetensors"):
        out = tmp_path / name.replace(".", "_")
        assert run_main(compute_projections.main, ["--load-from", str(tmp_path / name), "--arch", "lenet", "--dataset",
                                                   "mnist", "--subsample-classes", "4", "--results", str(out)]) == 0
        found = sorted(out.rglob("projections_lenet_2.json"))
        assert len(found) == 1, sorted(out.rglob("*.json"))
        documents.append(json.loads(found[0].read_text()))
    assert documents[0]["layers"] == documents[1]["layers"] and documents[0]["epoch"] == documents[1]["epoch"]
