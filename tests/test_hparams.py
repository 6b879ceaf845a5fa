"""TensorBoard's HParams view of a family, read back through a real TensorBoard and its hparams endpoints.

A hand-made family (every kind of member: converged, capped, failed, pending) in the fast tier; the
2x2 sweep of conftest (sweep.py's own view), then compare_runs.py, rank_measures.py and a re-run of
sweep.py on a copy of it, in the slow tier.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

import compare_runs
import rank_measures
from comparison.hparams import write_view
from comparison.measures import load_measures
from tests.checks import document_header, write_document
from tests.sweep_helpers import manifest, run_sweep
from tests.tensorboard_helpers import experiment, loaded_groups, tensorboard
from utils.cli import run_main
from utils.hparams_events import EVENTS_FILE

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("features.0", "features.3")
FLOAT32 = 1e-6  # TensorBoard keeps scalars as float32


def _member(member_id: str, values: dict, sub: str, status: str) -> dict:
    folders = {root: f"{root}/{sub}" for root in ("models", "results", "plots", "tensorboard")}
    flags = ["--arch", "lenet", "--dataset", "digits", "--epochs", "3", "--noise", values["noise"],
             *(["--augmentation"] if values["augmentation"] == "on" else []), "--seed", "0"]
    return {"id": member_id, "values": values, "flags": flags, "extra": sub.split("/")[0], "analyses": ["projections"],
            "nproc": 1, "folders": folders | {"log": f"logs/{member_id}.log"}, "commands": [], "status": status,
            "error": "train: error: training loss became nan" if status == "failed" else None,
            "started": "2024-05-01T12:00:00", "finished": None if status == "pending" else "2024-05-01T12:05:00",
            "seconds": None, "job_id": None}


def _run(folder: Path, sub: str, *, top1: float, stopping: dict | None, state: str = "finished",
         epochs: int = 3, mass: tuple[float, ...] = (0.7, 0.4)) -> None:
    """run.json (the last epoch's test top-1 is ``top1``; the training set in eval mode at 99.5%, loss
    0.01) and projections at epochs 0 and ``epochs`` of a hand-made member."""
    rows = [{"epoch": e, "train_loss": 0.5 / e, "val_loss": 1.0 + e, "val_top1": top1 - epochs + e,
             "eval_split": "test", "train_eval_loss": 0.01, "train_eval_top1": 99.5} for e in range(1, epochs + 1)]
    record = {"schema_version": 1, "kind": "run", "arch": "lenet", "dataset": "digits", "seed": 0,
              "args": {"arch": "lenet", "dataset": "digits", "seed": 0, "epochs": 3}, "epochs": rows,
              "snapshots": [{"epoch": 0}, {"epoch": epochs}], "status": {"state": state, "last_epoch": epochs},
              "stopping": stopping}
    write_document(folder / "models" / sub / "run.json", record)
    if state != "finished":
        return
    for epoch, masses in ((0, (0.5, 0.5)), (epochs, mass)):
        layers = [{"name": name, "kind": "conv", "mass": m, "mean": 0.0, "std": 1.0, "sign_test_p": 0.5,
                   "l2_dist": 0.1} for name, m in zip(LAYERS, masses)]
        write_document(folder / "results" / sub / f"projections_lenet_epoch{epoch:04d}.json",
                       document_header("projections", 0, epoch) | {"layers": layers, "net": {"mass": 0.5}})


def hand_made_family(folder: Path) -> dict[str, dict]:
    """A sweep folder of four members (noise x augmentation): converged, epoch cap reached, failed
    (diverged after 1 epoch), pending; returns its manifest's members by id."""
    specs = [("noise=0,augmentation=off", "0", "off", "done"), ("noise=0,augmentation=on", "0", "on", "done"),
             ("noise=0.5,augmentation=off", "0.5", "off", "failed"),
             ("noise=0.5,augmentation=on", "0.5", "on", "pending")]
    members = []
    for member_id, noise, augmentation, status in specs:
        sub = f"augmentation={augmentation}/digits/{'noise_50/' if noise == '0.5' else ''}lenet/0"
        members.append(_member(member_id, {"noise": noise, "augmentation": augmentation}, sub, status))
    criterion = {"train_loss": 0.01}
    _run(folder, members[0]["folders"]["models"][len("models/"):], top1=90.0,
         stopping={"criterion": criterion, "outcome": "converged", "epoch": 3})
    _run(folder, members[1]["folders"]["models"][len("models/"):], top1=80.0, mass=(0.9, 0.5),
         stopping={"criterion": criterion, "outcome": "cap reached", "epoch": 3})
    _run(folder, members[2]["folders"]["models"][len("models/"):], top1=10.0, state="failed", epochs=1,
         stopping={"criterion": criterion, "outcome": None, "epoch": None})
    grid = {"fixed": {"--arch": ["lenet"], "--dataset": ["digits"], "--epochs": ["3"]},
            "axes": {"--noise": [["0"], ["0.5"]], "--augmentation": [None, []]}, "analyses": ["projections"]}
    write_document(folder / "sweep.json", {"schema_version": 1, "kind": "sweep", "name": folder.name,
                                           "created": "2024-05-01T11:59:00", "grids": [grid], "members": members})
    return {member["id"]: member for member in members}


def _by_member(groups: list[dict], members: dict[str, dict], family: str) -> dict[str, dict]:
    """The session groups by member id: one session each, in the member's TensorBoard run, and its
    Trial ID ``<member> (<family>)``."""
    found = {}
    for group in groups:
        member_id, _, rest = group["name"].rpartition(" (")
        assert rest == f"{family})" and [session["name"] for session in group["sessions"]] == [
            members[member_id]["folders"]["tensorboard"]]
        found[member_id] = group
    assert len(found) == len(groups)
    return found


def _metrics(group: dict) -> dict[str, float]:
    return {value["name"]["tag"]: value["value"] for value in group["sessions"][0].get("metricValues", [])}


def _runs(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/data/runs", timeout=30) as answer:
        return json.loads(answer.read())


def test_every_member_is_a_session_marked_with_its_status_and_a_rewrite_replaces_it(tmp_path):
    folder = tmp_path / "family"
    members = hand_made_family(folder)
    write_view(folder)
    pending = folder / members["noise=0.5,augmentation=on"]["folders"]["tensorboard"] / EVENTS_FILE
    assert pending.is_file()  # a member that never trained still gets its folder and its session
    # the pending member then fails: the view is written again, over the first one
    entries = json.loads((folder / "sweep.json").read_text())
    entries["members"][3] |= {"status": "failed", "error": "train: error: out of memory"}
    write_document(folder / "sweep.json", entries)
    write_view(folder)
    stamps = {path: path.stat().st_mtime_ns for path in (folder / "tensorboard").rglob(EVENTS_FILE)}
    # unchanged, written again by another process (another hash seed: the same bytes): left as they are
    subprocess.run([sys.executable, "-c", f"from comparison.hparams import write_view; write_view({str(folder)!r})"],
                   cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "1"}, check=True)
    assert {path: path.stat().st_mtime_ns for path in (folder / "tensorboard").rglob(EVENTS_FILE)} == stamps
    files = sorted(path.relative_to(folder).as_posix() for path in (folder / "tensorboard").rglob("*")
                   if path.is_file())
    assert files == sorted(f"{member['folders']['tensorboard']}/{EVENTS_FILE}" for member in members.values())

    with tensorboard(folder, log=tmp_path / "tensorboard.log") as url:
        groups = _by_member(loaded_groups(url, 4), members, "family")
        found = experiment(url)
        runs = _runs(url)
    assert sorted(runs) == sorted(member["folders"]["tensorboard"] for member in members.values())
    hparams = {info["name"]: info for info in found["hparamInfos"]}
    assert set(hparams) == {"noise", "augmentation", "seed", "status", "stopping"}
    assert (hparams["noise"]["type"], hparams["noise"]["domainDiscrete"]) == ("DATA_TYPE_FLOAT64", [0.0, 0.5])
    assert (hparams["augmentation"]["type"], hparams["augmentation"]["domainDiscrete"]) == ("DATA_TYPE_STRING",
                                                                                            ["off", "on"])
    assert hparams["seed"]["domainDiscrete"] == [0.0] and hparams["status"]["domainDiscrete"] == ["done", "failed"]
    metrics = {info["name"]["tag"]: info["displayName"] for info in found["metricInfos"]}
    assert list(metrics)[:8] == ["final/test_top1", "final/train_top1", "final/gen_gap", "final/loss_gap",
                                 "final/epochs", "final/criterion_met", "final/train_loss", "final/test_loss"]
    assert metrics["measure/bias_mean"] == "bias_mean" and metrics["final/gen_gap"] == "gen_gap"

    converged, capped = groups["noise=0,augmentation=off"], groups["noise=0,augmentation=on"]
    assert converged["hparams"] == {"noise": 0.0, "augmentation": "off", "seed": 0.0, "status": "done",
                                    "stopping": "converged"}
    assert converged["sessions"][0]["status"] == "STATUS_SUCCESS"
    values = _metrics(converged)
    assert values["final/test_top1"] == pytest.approx(90.0, rel=FLOAT32)
    assert values["final/train_top1"] == pytest.approx(99.5, rel=FLOAT32)  # in eval mode, not the running top-1
    assert values["final/gen_gap"] == pytest.approx(9.5, rel=FLOAT32)
    assert values["final/loss_gap"] == pytest.approx(4.0 - 0.01, rel=FLOAT32)
    assert (values["final/epochs"], values["final/criterion_met"]) == (3.0, 1.0)
    assert values["measure/bias_mean"] == pytest.approx((0.2 + 0.1) / 2, rel=FLOAT32)
    assert capped["hparams"]["stopping"] == "cap reached" and _metrics(capped)["final/criterion_met"] == 0.0
    assert _metrics(capped)["measure/bias_mean"] == pytest.approx(0.2, rel=FLOAT32)
    for member_id, error_status in (("noise=0.5,augmentation=off", "failed"), ("noise=0.5,augmentation=on", "failed")):
        group = groups[member_id]
        assert group["hparams"]["status"] == error_status and group["sessions"][0]["status"] == "STATUS_FAILURE"
    assert groups["noise=0.5,augmentation=off"]["hparams"]["stopping"] == "unfinished"
    assert _metrics(groups["noise=0.5,augmentation=off"]) == {"final/epochs": 1.0}  # how far it got, nothing more
    assert groups["noise=0.5,augmentation=on"]["hparams"]["stopping"] == "not started"
    assert _metrics(groups["noise=0.5,augmentation=on"]) == {}


# -- a family that sweep.py ran (conftest's 2x2 grid: noise 0 and pixel shuffle, two seeds) ----------------
def _run_folder(folder: Path, member: dict) -> Path:
    return (folder / member["folders"]["models"]).resolve()


@pytest.mark.slow
def test_a_swept_family_s_tensorboard_shows_its_grid_and_each_member_s_final_metrics(grid_2x2, tmp_path):
    root, code = grid_2x2
    assert code == 0
    folder = root / "grid"
    members = {member["id"]: member for member in manifest(root, "grid")["members"]}
    measured = load_measures([folder])  # measures.csv's numbers
    with tensorboard(folder, log=tmp_path / "tensorboard.log") as url:
        groups = _by_member(loaded_groups(url, 4), members, "grid")
        found = experiment(url)
    hparams = {info["name"]: info["domainDiscrete"] for info in found["hparamInfos"]}
    assert hparams == {"noise": [-1.0, 0.0], "seed": [0.0, 1.0], "status": ["done"], "stopping": ["no criterion"]}
    assert {info["displayName"] for info in found["metricInfos"]} >= {"test_top1", "train_loss", "loss_gap", "epochs",
                                                                      *measured.measure}
    for member_id, member in members.items():
        group = groups[member_id]
        assert group["hparams"] == {"noise": float(member["values"]["noise"]), "seed": float(member["values"]["seed"]),
                                    "status": "done", "stopping": "no criterion"}
        last = json.loads((_run_folder(folder, member) / "run.json").read_text())["epochs"][-1]
        values = _metrics(group)
        assert last["eval_split"] == "test"
        assert values["final/test_top1"] == pytest.approx(last["val_top1"], rel=FLOAT32)
        assert values["final/train_loss"] == pytest.approx(last["train_loss"], rel=FLOAT32)
        assert values["final/epochs"] == 2.0 and "final/criterion_met" not in values  # no criterion
        rows = measured[[Path(model).resolve() == _run_folder(folder, member) for model in measured.model]]
        assert len(rows) >= 10
        for name, value in zip(rows.measure, rows.value):
            assert values[f"measure/{name}"] == pytest.approx(value, rel=FLOAT32, abs=1e-12), name


@pytest.mark.slow
def test_the_comparisons_and_a_re_run_rewrite_the_view_and_add_nothing(grid_2x2, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(grid_2x2[0] / "grid", root / "grid")  # the shared sweep stays as it is
    folder = root / "grid"
    views = sorted((folder / "tensorboard").rglob(EVENTS_FILE))
    swept = {path: path.read_bytes() for path in views}
    assert len(swept) == 4
    for path in views:
        path.unlink()
    assert run_main(compare_runs.main, [str(folder), "--out", str(tmp_path / "compare"), "--formats", "png"]) == 0
    assert {path: path.read_bytes() for path in views} == swept  # the same view as sweep.py's

    # a member that failed before it wrote anything, and one that reached its cap without its criterion
    recorded = json.loads((folder / "sweep.json").read_text())
    first = recorded["members"][0]
    failed = first | {"id": "noise=0,seed=2", "values": {"noise": "0", "seed": "2"}, "status": "failed",
                      "flags": [*first["flags"][:-1], "2"], "error": "train: error: CUDA out of memory",
                      "folders": {key: value[:-1] + "2" if key != "log" else "logs/noise=0,seed=2.log"
                                  for key, value in first["folders"].items()}}
    write_document(folder / "sweep.json", recorded | {"members": [*recorded["members"], failed]})
    capped = recorded["members"][1]
    record = json.loads((folder / capped["folders"]["models"] / "run.json").read_text())
    record["stopping"] = {"criterion": {"train_loss": 0.01}, "outcome": "cap reached", "epoch": 2}
    write_document(folder / capped["folders"]["models"] / "run.json", record)

    out = tmp_path / "measures"
    assert run_main(rank_measures.main, [str(folder), "--out", str(out), "--resamples", "50", "--formats", "png"]) == 0
    table = pd.read_csv(out / "measures.csv")
    views = sorted((folder / "tensorboard").rglob(EVENTS_FILE))
    assert len(views) == 5
    stamps = {path: path.stat().st_mtime_ns for path in views}
    assert run_sweep(root, "--resume", str(folder)) == 1  # the failed member is skipped, and named
    assert {path: path.stat().st_mtime_ns for path in views} == stamps  # the same view: nothing rewritten

    members = {member["id"]: member for member in manifest(root, "grid")["members"]}
    with tensorboard(folder, log=tmp_path / "tensorboard.log") as url:
        groups = _by_member(loaded_groups(url, 5), members, "grid")
        runs = _runs(url)
    assert len(groups) == 5  # one session per member: no duplicate, no timestamped extra run
    tensorboard_runs = {member["folders"]["tensorboard"] for member in members.values()}
    assert set(runs) == tensorboard_runs and len(runs) == 5
    assert groups["noise=0,seed=2"]["hparams"] == {"noise": 0.0, "seed": 2.0, "status": "failed",
                                                   "stopping": "not started"}
    assert groups["noise=0,seed=2"]["sessions"][0]["status"] == "STATUS_FAILURE"
    assert _metrics(groups["noise=0,seed=2"]) == {}
    assert groups[capped["id"]]["hparams"]["stopping"] == "cap reached"
    assert _metrics(groups[capped["id"]])["final/criterion_met"] == 0.0
    for member_id, member in members.items():
        rows = table[[Path(model).resolve() == _run_folder(folder, member) for model in table.model]]
        assert len(rows) >= 10 or member_id == "noise=0,seed=2"
        values = _metrics(groups[member_id])
        for name, value in zip(rows.measure, rows.value):  # named and valued as in measures.csv
            assert values[f"measure/{name}"] == pytest.approx(value, rel=FLOAT32, abs=1e-12), name
