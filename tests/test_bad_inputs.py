"""Every wrong input gets one clear line: exit code 2, no traceback, nothing written.

Each case runs a CLI in-process through ``utils.cli.run_main`` with its output folders
(``--models-path``, ``--results``, ``--plots``, ``--tb-logdir``) inside ``out/`` and checks that
stderr holds exactly one line naming the problem and that no file appeared under ``out/``.
Argparse's own errors print the usage first; for those the last line must name the problem.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field

import pytest
import torch

import compute_dse
import compute_projections
import plot_results
import reinit_layers
import train
from utils.cli import run_main

CLIS = {"train": train, "projections": compute_projections, "reinit": reinit_layers, "dse": compute_dse,
        "plot": plot_results}
# Output folders every case passes first (a case may name its own afterwards: argparse keeps the last).
OUTPUTS = {
    "train": ["--models-path", "{out}/models", "--results", "{out}/results", "--tb-logdir", "{out}/tb",
              "--no-progress"],
    "projections": ["--results", "{out}/results"],
    "reinit": ["--results", "{out}/results", "--plots", "{out}/plots"],
    "dse": ["--results", "{out}/results"],
    "plot": ["--plots", "{out}/plots"],
}
TRAIN = ["--arch", "lenet", "--dataset", "digits", "--epochs", "1", "--seed", "0"]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


@dataclass(frozen=True)
class Case:
    cli: str
    argv: str  # split like a shell; {name} is one of the inputs below, {train} a minimal training command
    match: str  # must appear in the last stderr line
    by_argparse: bool = False  # argparse prints the usage before the error line
    marks: list = field(default_factory=list)


CASES = {
    # -- train.py: options out of range ----------------------------------------------------------
    "train-unknown-arch": Case("train", "--arch nosuchnet --dataset digits", "unknown architecture 'nosuchnet'"),
    "train-unknown-dataset": Case("train", "--arch lenet --dataset nosuchdata", "unknown dataset 'nosuchdata'"),
    "train-noise-above-1": Case("train", "{train} --noise 1.5", "--noise 1.5"),
    "train-noise-below-minus-1": Case("train", "{train} --noise -2", "--noise -2"),
    "train-noise-between-minus-1-and-0": Case("train", "{train} --noise -0.5", "--noise -0.5"),
    "train-split-1": Case("train", "{train} --split 1", "--split 1"),
    "train-split-negative": Case("train", "{train} --split -0.1", "--split -0.1"),
    "train-subsample-too-many": Case("train", "{train} --subsample-classes 11", "--subsample-classes 11"),
    "train-subsample-negative": Case("train", "{train} --subsample-classes -1", "--subsample-classes -1"),
    "train-epochs-0": Case("train", "{train} --epochs 0", "--epochs 0"),
    "train-epochs-negative": Case("train", "{train} --epochs -3", "--epochs -3"),
    "train-batch-size-0": Case("train", "{train} --batch-size 0", "--batch-size 0"),
    "train-lr-negative": Case("train", "{train} --lr -0.1", "--lr -0.1"),
    "train-momentum-negative": Case("train", "{train} --momentum -1", "--momentum -1"),
    "train-snapshot-every-negative": Case("train", "{train} --snapshot-every -2", "--snapshot-every -2"),
    "train-upscale-and-padding": Case("train", "{train} --upscale --upscale-padding",
                                      "--upscale and --upscale-padding"),
    "train-mnist-without-files": Case("train", "--arch lenet --dataset mnist --data-path {nodata}", "missing"),
    "train-pretrained-wrong-shape": Case("train", "--arch resnet18 --dataset digits --pretrained",
                                         "pretrained 'resnet18'"),
    "train-cuda-without-gpu": Case("train", "{train} --cuda", "CUDA is not available", marks=[NO_CUDA]),
    "train-device-that-does-not-exist": Case("train", "{train} --device cuda:99", "cuda:99"),
    "train-device-unknown": Case("train", "{train} --device gpu0", "unknown device 'gpu0'"),
    "train-noise-not-a-number": Case("train", "{train} --noise lots", "--noise", by_argparse=True),
    # -- train.py: the run's folders ------------------------------------------------------------
    "train-models-path-under-a-file": Case("train", "{train} --models-path {blocked}", "{blocker}"),
    "train-results-under-a-file": Case("train", "{train} --results {blocked}", "{blocker}"),
    "train-tb-logdir-under-a-file": Case("train", "{train} --tb-logdir {blocked}", "{blocker}"),
    # -- train.py --resume-from: broken or foreign snapshots ---------------------------------------
    "train-resume-missing": Case("train", "--resume-from {missing}", "does not exist"),
    "train-resume-empty": Case("train", "--resume-from {empty}", "is empty"),
    "train-resume-truncated": Case("train", "--resume-from {truncated}", "truncated or not a checkpoint"),
    "train-resume-text-file": Case("train", "--resume-from {text}", "{text}"),
    "train-resume-other-arch": Case("train", "--resume-from {snapshot} --arch vgg11", "--arch vgg11"),
    "train-resume-other-class-count": Case("train", "--resume-from {snapshot} --subsample-classes 3",
                                           "--subsample-classes 3"),
    "train-resume-plain-into-other-arch": Case("train", "--resume-from {plain} --arch mlp --dataset digits",
                                               "does not fit"),
    "train-resume-already-finished": Case("train", "--resume-from {snapshot} --epochs 1", "--epochs 1"),
    "train-log-under-a-file": Case("train", "{train} --log {blocked}/train.log", "{blocker}"),
    "train-resume-non-finite": Case("train", "--resume-from {nan} --epochs 5", "features.5.weight"),
    # -- compute_projections.py ------------------------------------------------------------------
    "projections-missing-snapshot": Case("projections", "--load-from {missing}", "{missing}"),
    "projections-empty-snapshot": Case("projections", "--load-from {empty}", "is empty"),
    "projections-truncated-snapshot": Case("projections", "--load-from {truncated}", "truncated or not a checkpoint"),
    "projections-text-file": Case("projections", "--load-from {text}", "{text}"),
    "projections-other-arch": Case("projections", "--load-from {snapshot} --arch vgg11", "--arch vgg11 disagrees"),
    "projections-other-class-count": Case("projections", "--load-from {snapshot} --subsample-classes 3",
                                          "--subsample-classes 3 disagrees"),
    "projections-plain-other-arch": Case("projections", "--load-from {plain} --arch vgg11 --dataset digits",
                                         "does not fit"),
    "projections-plain-other-class-count": Case("projections", "--load-from {plain} --arch lenet "
                                                               "--dataset digits --subsample-classes 3",
                                                               "does not fit"),
    "projections-run-dir-without-snapshots": Case("projections", "--load-from {emptydir}", "holds no snapshots"),
    "projections-non-finite-weight": Case("projections", "--load-from {nan}", "features.5.weight"),
    "projections-results-under-a-file": Case("projections", "--load-from {snapshot} --results {blocked}", "{blocker}"),
    "projections-unknown-arch": Case("projections", "--arch nosuchnet --dataset digits", "unknown architecture"),
    "projections-unknown-dataset": Case("projections", "--arch lenet --dataset nosuchdata", "unknown dataset"),
    "projections-subsample-too-many": Case("projections", "--arch lenet --dataset digits --subsample-classes 12",
                                           "--subsample-classes 12"),
    "projections-pretrained-offline": Case("projections", "--arch resnet18 --dataset imagenet --pretrained",
                                           "not in the local cache"),
    "projections-cuda-without-gpu": Case("projections", "--load-from {snapshot} --cuda",
                                         "CUDA is not available", marks=[NO_CUDA]),
    "projections-log-under-a-file": Case("projections", "--load-from {snapshot} --log {blocked}/p.log", "{blocker}"),
    "projections-init-from-missing": Case("projections", "--load-from {snapshot} --init-from {missing}", "{missing}"),
    # -- reinit_layers.py ------------------------------------------------------------------------
    "reinit-inits-list-with-missing-paths": Case("reinit", "--load-from {snapshot} --inits-from {list_missing}",
                                                 "do not exist"),
    "reinit-inits-list-empty": Case("reinit", "--load-from {snapshot} --inits-from {list_empty}",
                                    "lists no existing snapshot"),
    "reinit-inits-from-empty-string": Case("reinit", "--load-from {snapshot} --inits-from ''", "nothing to reset from"),
    "reinit-inits-from-missing": Case("reinit", "--load-from {snapshot} --inits-from {missing}", "{missing}"),
    "reinit-inits-from-empty-dir": Case("reinit", "--load-from {snapshot} --inits-from {emptydir}",
                                        "holds no snapshots"),
    "reinit-run-dir-without-snapshots": Case("reinit", "--load-from {emptydir} --rand", "holds no snapshots"),
    "reinit-truncated-snapshot": Case("reinit", "--load-from {truncated} --rand", "truncated or not a checkpoint"),
    "reinit-non-finite-weight": Case("reinit", "--load-from {nan} --rand", "features.5.weight"),
    "reinit-non-finite-init": Case("reinit", "--load-from {snapshot} --inits-from {nan}", "features.5.weight"),
    "reinit-other-class-count": Case("reinit", "--load-from {snapshot} --rand --subsample-classes 3",
                                     "--subsample-classes 3"),
    "reinit-mnist-without-files": Case("reinit", "--load-from {plain} --arch lenet "
                                                 "--dataset mnist --data-path {nodata} --rand",
                                                 "missing"),
    "reinit-upscale-and-padding": Case("reinit", "--load-from {plain} --arch lenet "
                                                 "--dataset digits --upscale --upscale-padding --rand",
                                                 "--upscale and --upscale-padding"),
    "reinit-batch-size-0": Case("reinit", "--load-from {snapshot} --rand --batch-size 0", "--batch-size"),
    "reinit-rand-repeats-0": Case("reinit", "--load-from {snapshot} --rand --rand-repeats 0", "--rand-repeats 0"),
    "reinit-plots-under-a-file": Case("reinit", "--load-from {snapshot} --rand --plots {blocked}", "{blocker}"),
    "reinit-results-under-a-file": Case("reinit", "--load-from {snapshot} --rand --results {blocked}", "{blocker}"),
    # -- compute_dse.py --------------------------------------------------------------------------
    "dse-missing-snapshot": Case("dse", "--load-from {missing}", "{missing}"),
    "dse-non-finite-weight": Case("dse", "--load-from {nan}", "features.5.weight"),
    "dse-samples-1": Case("dse", "--load-from {snapshot} --dse-samples 1", "--dse-samples 1"),
    "dse-sigma-0": Case("dse", "--load-from {snapshot} --sigma 0", "sigma"),
    "dse-max-n-0": Case("dse", "--load-from {snapshot} --max-n 0", "--max-n 0"),
    "dse-dsmi-x-clusters-1": Case("dse", "--load-from {snapshot} --dsmi-x-clusters 1", "--dsmi-x-clusters 1"),
    "dse-probe-below-the-clusters": Case("dse", "--load-from {snapshot} --dse-samples 12 --dsmi-x-clusters 12",
                                         "--dse-samples 12"),
    "dse-unknown-variant": Case("dse", "--load-from {snapshot} --dse-variants dsmi_z", "dsmi_z"),
    "train-dsmi-x-clusters-1": Case("train", "--arch lenet --dataset digits --dsmi-x-clusters 1", "--dsmi-x-clusters 1"),
    "dse-unknown-layer": Case("dse", "--load-from {snapshot} --layer nosuchmodule", "nosuchmodule"),
    "dse-mnist-without-files": Case("dse", "--load-from {plain} --arch lenet --dataset mnist --data-path {nodata}",
                                    "missing"),
    "dse-split-out-of-range": Case("dse", "--load-from {plain} --arch lenet --dataset digits --split 1.5",
                                   "--split 1.5"),
    "dse-other-class-count": Case("dse", "--load-from {snapshot} --subsample-classes 3", "--subsample-classes 3"),
    "dse-upscale-and-padding": Case("dse", "--load-from {plain} --arch lenet "
                                           "--dataset digits --upscale --upscale-padding",
                                           "--upscale and --upscale-padding"),
    "dse-pretrained-offline": Case("dse", "--arch alexnet --dataset imagenet --pretrained", "not in the local cache"),
    "dse-results-under-a-file": Case("dse", "--load-from {snapshot} --results {blocked}", "{blocker}"),
    # -- plot_results.py -------------------------------------------------------------------------
    "plot-missing-input": Case("plot", "{missing}", "{missing}"),
    "plot-folder-without-results": Case("plot", "{emptydir}", "no result JSON"),
    "plot-only-broken-json": Case("plot", "{broken_json_dir}", "no result JSON"),
    "plot-text-file-as-input": Case("plot", "{text}", "no result JSON"),
    "plot-plots-under-a-file": Case("plot", "{results_dir} --plots {blocked}", "{blocker}"),
    "plot-unknown-format": Case("plot", "{results_dir} --formats nosuchformat", "nosuchformat"),
    "plot-unknown-figure": Case("plot", "{results_dir} --figures nosuchfigure", "nosuchfigure", by_argparse=True),
}


@pytest.fixture(scope="module")
def inputs(digits_run, tmp_path_factory) -> dict[str, str]:
    """Broken and foreign input files, built once from the shared digits run."""
    root = tmp_path_factory.mktemp("bad_inputs")
    snapshot = digits_run / "lenet_epoch0001.pt"
    data = snapshot.read_bytes()
    (root / "empty.pt").write_bytes(b"")
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])
    (root / "notes.pt").write_text("these are my notes, not a snapshot\n")
    checkpoint = torch.load(snapshot, weights_only=True)
    torch.save({"model_state_dict": checkpoint["model_state_dict"]}, root / "plain_lenet.pt")
    checkpoint["model_state_dict"]["features.5.weight"][1, 0, 0, 0] = float("inf")
    torch.save(checkpoint, root / "lenet_epoch0001.pt")  # the non-finite one
    (root / "empty_run").mkdir()
    (root / "blocker").write_text("a regular file where a folder is expected\n")
    (root / "nodata").mkdir()
    (root / "inits_missing.txt").write_text(f"{digits_run / 'lenet_epoch0000.pt'}\n{root / 'gone_epoch0.pt'}\n"
                                            f"{root / 'gone_epoch1.pt'}\n")
    (root / "inits_empty.txt").write_text("# nothing here\n\n")
    (root / "broken_json").mkdir()
    (root / "broken_json" / "projections_x.json").write_text('{"kind": "projections", "net": ')
    results = root / "results"
    results.mkdir()
    (results / "run.json").write_bytes((digits_run / "run.json").read_bytes())
    return {
        "snapshot": str(snapshot), "run": str(digits_run), "missing": str(root / "no_such_snapshot.pt"),
        "empty": str(root / "empty.pt"), "truncated": str(root / "truncated.pt"), "text": str(root / "notes.pt"),
        "plain": str(root / "plain_lenet.pt"), "nan": str(root / "lenet_epoch0001.pt"),
        "emptydir": str(root / "empty_run"), "blocker": str(root / "blocker"),
        "blocked": str(root / "blocker" / "out"), "nodata": str(root / "nodata"),
        "list_missing": str(root / "inits_missing.txt"), "list_empty": str(root / "inits_empty.txt"),
        "broken_json_dir": str(root / "broken_json"), "results_dir": str(results),
    }


def _cases():
    return [pytest.param(case, id=name, marks=case.marks) for name, case in CASES.items()]


def test_there_are_at_least_30_cases_across_every_cli():
    assert len(CASES) >= 30
    assert {case.cli for case in CASES.values()} == set(CLIS)


@pytest.mark.parametrize("case", _cases())
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    values = {**inputs, "out": str(out)}
    words = [word for token in shlex.split(case.argv) for word in (TRAIN if token == "{train}" else [token])]
    argv = [arg.format(**values) for arg in OUTPUTS[case.cli] + words]
    try:
        code = run_main(CLIS[case.cli].main, argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("notice: ")]
    assert code == 2, err
    assert "Traceback" not in err
    if case.by_argparse:  # usage lines, then "<prog>: error: ..."
        assert ": error: " in lines[-1]
    else:
        assert len(lines) == 1, err
    assert case.match.format(**values) in lines[-1]
    written = [path for path in out.rglob("*") if path.is_file()] if out.exists() else []
    assert not written
