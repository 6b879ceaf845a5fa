"""The schema owner: ``schema.load`` reads one document of every kind we write, and the reference
tool's projection and reinit files (written here as its code writes them), normalized to ours."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

import compute_dse
import compute_measures
import compute_projections
import compute_spectra
import reinit_layers
import schema
from utils.cli import run_main
from utils.errors import UserError


@pytest.fixture(scope="module")
def every_kind(digits_run, tmp_path_factory):
    """Each analysis once on two snapshots of the digits run (so that summaries are written too)."""
    out = tmp_path_factory.mktemp("every_kind")
    snapshots = str(digits_run / "lenet_epoch000[23].pt")
    common = ["--results", str(out / "results")]
    assert run_main(compute_projections.main, ["--load-from", snapshots, "--normalize", *common]) == 0
    assert run_main(compute_spectra.main, ["--load-from", snapshots, *common]) == 0
    assert run_main(compute_dse.main, ["--load-from", snapshots, "--dse-samples", "60", "--hsic", *common]) == 0
    assert run_main(reinit_layers.main, ["--load-from", str(digits_run / "lenet_epoch0003.pt"), "--inits-from",
                                         str(digits_run), "--rand", "--plots", str(out / "plots"), *common]) == 0
    assert run_main(compute_measures.main, ["--load-from", snapshots, "--margin-samples", "100", "--sharpness-samples",
                                            "32", "--mc-samples", "4", "--ascent-steps", "2", *common]) == 0
    return [*sorted((out / "results").rglob("*.json")), digits_run / "run.json"]


def test_load_reads_every_kind_we_write(every_kind):
    kinds = {}
    for path in every_kind:
        document = schema.load(path)
        assert document == json.loads(path.read_text())  # ours come back as written
        kinds.setdefault(document["kind"], []).append(path.name)
    assert set(kinds) == set(schema.result_kinds())
    assert kinds["projections_summary"] == ["projections_summary.json"]
    assert all(schema.load(path)["schema_version"] == schema.SCHEMA_VERSION for path in every_kind)


def test_collect_groups_every_kind_of_a_run_folder(every_kind, digits_run):
    results = every_kind[0].parent
    runs = schema.collect([results, digits_run])
    assert list(runs) == ["."]
    assert set(runs["."]) == set(schema.result_kinds())
    assert [d["epoch"] for d in runs["."]["projections"]] == [2, 3]


def _reference_projection_file(tmp_path, epoch: str) -> tuple:
    """Two stages of one block each, as the reference's compute_projections.py writes them."""
    rng = np.random.default_rng(int(epoch))
    layers = [rng.normal(0.1 * stage, 1.0, size=16 * (stage + 1)).tolist() for stage in range(2)]
    document = {str(stage): {"0": {"projections": values, "mass": float(np.mean(np.array(values) <= 0)),
                                   "mean": float(np.mean(values)), "l2_dist": 0.5, "l_inf_dist": 0.25}}
                for stage, values in enumerate(layers)}
    pooled = [value for values in layers for value in values]
    document |= {"net": {"projections": pooled, "mass": float(np.mean(np.array(pooled) <= 0)),
                         "mean": float(np.mean(pooled))},
                 "arch": "lenet", "dataset": "mnist", "seed": "1", "epoch": epoch}
    path = tmp_path / f"lenet_{int(epoch) - 1}.json"
    path.write_text(json.dumps(document))
    return path, document, layers


def test_reference_projection_files_are_normalized_to_ours(tmp_path):
    path, original, layers = _reference_projection_file(tmp_path, "3")
    document = schema.load(path)
    assert (document["kind"], document["format"], document["epoch"], document["seed"]) == ("projections", "reference",
                                                                                           3, 1)
    assert [layer["name"] for layer in document["layers"]] == ["stage 0.0", "stage 1.0"]
    for layer, values in zip(document["layers"], layers):
        negative = int(np.sum(np.array(values) <= 0))
        assert layer["sign_test_k"] == negative
        assert layer["sign_test_p"] == pytest.approx(stats.binomtest(negative, len(values), 0.5).pvalue)
        assert layer["median"] == pytest.approx(np.median(values))
        assert (layer["l2_dist"], layer["l_inf_dist"]) == (0.5, 0.25)  # the reference's own values are kept
    for key in ("0", "1", "net", "arch", "dataset"):  # a loop written for the reference's files still works
        assert set(original[key]) <= set(document[key]) if isinstance(original[key], dict) else \
            original[key] == document[key]
    assert document["0"]["0"]["mass"] == original["0"]["0"]["mass"]
    assert document["net"]["n_filters"] == len(layers[0]) + len(layers[1])


def test_reference_reinit_files_are_normalized_to_ours(tmp_path):
    original = {"init_from_epoch": {"rand": [9.0, 11.0], "10": [80.0, 60.0], "0": [40.0, 79.0]},
                "arch": "lenet", "dataset": "mnist", "top1_test": 80.0, "top5_test": 99.0, "seed": "2", "epoch": "10"}
    path = tmp_path / "reinit_lenet_9.json"
    path.write_text(json.dumps(original))
    document = schema.load(path)
    assert (document["kind"], document["epoch"], document["seed"]) == ("reinit", 10, 2)
    assert document["init_from_epoch"] == original["init_from_epoch"]
    assert [(row["key"], row["source"], row["epoch"]) for row in document["rows"]] == [
        ("0", "snapshot", 0), ("10", "snapshot", 10), ("rand", "rand", None)]
    assert document["rows"][0]["relative_drop"] == pytest.approx([0.5, 1 / 80])
    assert document["rows"][2]["drop"] == pytest.approx([71.0, 69.0])


def test_what_is_not_a_result_is_refused_by_load_and_skipped_by_collect(tmp_path, digits_run):
    (tmp_path / "sweep.json").write_text(json.dumps({"grid": {}, "members": []}))
    (tmp_path / "future.json").write_text(json.dumps({"kind": "projections", "schema_version": 99}))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(UserError, match="not a result document"):
        schema.load(tmp_path / "sweep.json")
    with pytest.raises(UserError, match="newer than this tool reads"):
        schema.load(tmp_path / "future.json")
    with pytest.raises(UserError, match="cannot read result file"):
        schema.load(tmp_path / "broken.json")
    with pytest.raises(UserError, match="no result JSON"):
        schema.collect([tmp_path])
    (tmp_path / "run.json").write_text((digits_run / "run.json").read_text())
    assert list(schema.collect([tmp_path])["."]) == ["run"]
