"""DSE-guided initialization (the DSE paper's utility study): ``train.py --conv-init normal`` draws every
convolution's weights from N(0, --conv-init-std), records it, and a resumed run keeps it."""
from __future__ import annotations

import torch
from torch import nn

import models
from analyses.loading import load_snapshot_model
from analyses.reinit_rows import rand_rows
from tests.train_helpers import read_run, run_dir, run_train
from utils.cli import run_main
from utils.errors import UserError

QUICK = ["--arch", "lenet", "--dataset", "digits", "--seed", "0", "--epochs", "1", "--batch-size", "256",
         "--no-dse", "--no-projection-logging"]


def _conv_weights(path) -> torch.Tensor:
    state = torch.load(path, weights_only=True)["model_state_dict"]
    return torch.cat([value.flatten() for key, value in state.items() if key.endswith("weight") and value.dim() == 4])


def test_the_convolutions_start_with_the_asked_std_and_the_rest_as_built(tmp_path):
    assert run_train(tmp_path / "low", *QUICK, "--conv-init", "normal", "--conv-init-std", "0.01") == 0
    assert run_train(tmp_path / "plain", *QUICK) == 0
    low = _conv_weights(run_dir(tmp_path / "low") / "lenet_epoch0000.pt")
    plain = _conv_weights(run_dir(tmp_path / "plain") / "lenet_epoch0000.pt")
    assert low.numel() > 2000
    assert abs(float(low.std()) / 0.01 - 1) < 0.05 and abs(float(low.mean())) < 0.002
    assert float(plain.std()) > 0.05  # the architecture's own (Kaiming-uniform) scale
    state = torch.load(run_dir(tmp_path / "low") / "lenet_epoch0000.pt", weights_only=True)["model_state_dict"]
    plain_state = torch.load(run_dir(tmp_path / "plain") / "lenet_epoch0000.pt", weights_only=True)["model_state_dict"]
    linear = [key for key, value in state.items() if key.endswith("weight") and value.dim() == 2]
    assert linear and all(abs(float(state[k].std()) / float(plain_state[k].std()) - 1) < 0.2 for k in linear)
    args = read_run(tmp_path / "low")["args"]
    assert (args["conv_init"], args["conv_init_std"]) == ("normal", 0.01)
    # reinit --rand re-draws a layer as the run drew it: the low run's random rows have std 0.01 convolutions.
    for run, expected in (("low", (0.008, 0.012)), ("plain", (0.05, 1.0))):
        subject = load_snapshot_model(run_dir(tmp_path / run) / "lenet_epoch0001.pt")
        names = {name.removesuffix(".weight") for name, value in state.items() if value.dim() == 4}
        (row,) = rand_rows(subject, names, repeats=1, seed=None)
        drawn = torch.cat([row.row.state[f"{name}.weight"].flatten() for name in sorted(names)])
        assert expected[0] < float(drawn.std()) < expected[1], run
        assert ("conv normal std 0.01" in row.row.label) == (run == "low")


def test_a_resumed_run_keeps_its_initialization_scheme(tmp_path):
    assert run_train(tmp_path, *QUICK, "--conv-init", "normal", "--conv-init-std", "0.01") == 0
    last = run_dir(tmp_path) / "last.pt"
    assert run_main(lambda argv: run_train(tmp_path, *argv), [*QUICK[:-4], "--epochs", "2", "--no-dse",
                                                            "--no-projection-logging", "--resume-from", str(last),
                                                            "--conv-init", "default"]) == 2
    assert run_train(tmp_path, *QUICK[:-4], "--epochs", "2", "--no-dse", "--no-projection-logging",
                     "--resume-from", str(last)) == 0
    assert read_run(tmp_path)["args"]["conv_init"] == "normal"


def test_bad_values_are_one_line(tmp_path, capsys):
    assert run_main(lambda argv: run_train(tmp_path, *argv), [*QUICK, "--conv-init", "normal",
                                                            "--conv-init-std", "-1"]) == 2
    assert run_main(lambda argv: run_train(tmp_path, *argv), [*QUICK, "--conv-init", "normal", "--pretrained"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--conv-init-std -1" in err[0] and "--pretrained" in err[1]
    assert not (tmp_path / "models").exists()


def test_a_model_without_convolutions_is_refused():
    try:
        models.apply_conv_init(nn.Sequential(nn.Linear(3, 2)), "normal", 0.1)
    except UserError as err:
        assert "no convolution" in str(err)
    else:
        raise AssertionError("expected a UserError")
