"""Layer re-initialization robustness (Zhang, Bengio, Singer 2019, "Are All Layers Created Equal?").

For a trained snapshot, each layer in turn gets its parameters from an earlier checkpoint
(re-initialization) or from a fresh random initialization (``rand``, re-randomization) while
every other layer stays trained, and the test accuracy is measured on the snapshot's own test data
(class subset, upscaling, normalization from its run). Rows: ``analyses/reinit_rows.py``; the
exact, fast sweep: ``metrics/reinit.py``.
"""
from __future__ import annotations

import argparse
import logging
import statistics
from dataclasses import dataclass

import schema
from analyses.base import Analysis, log_chance, log_wrapped, log_written, shown_path
from analyses.registry import HELD_OUT, Declaration, Measure
from analyses.reinit_rows import RAND_KEY, RowSource, init_rows, rand_rows
from analyses.subject import Subject
from metrics.chance import chance_verdict
from metrics.layers import LayerInfo, enumerate_layers
from metrics.reinit import DEFAULT_CACHE_BYTES, METHODS, SweepResult, following_batchnorms, reinit_sweep
from utils.errors import UserError
from utils.notices import notice
from utils.progress import progress

logger = logging.getLogger(__name__)

# Which layers are reset. 1x1 convolutions are always included: Zhang et al. reset every layer.
# conv+linear includes each attention block (nn.MultiheadAttention) as one layer: in_proj and out_proj.
LAYER_SELECTIONS = {"conv": {"with_linear": False}, "conv+linear": {"with_linear": True, "with_attention": True}}


@dataclass(frozen=True)
class ReinitSettings:
    inits_from: str = ""
    skip_missing: bool = False
    rand: bool = False
    rand_repeats: int = 1
    rand_seed: int | None = None  # the --rand stream's seed [default: the snapshot's, else 0]
    layers: str = "conv"
    with_bn: bool = False
    method: str = "auto"
    cache_mb: int = DEFAULT_CACHE_BYTES // 2**20
    batch_size: int = 128
    workers: int = 1
    reference_layout: bool = False  # --layout reference: the reference's layers (no 1x1), rows in list order

    @staticmethod
    def add_inits_arguments(parser: argparse.ArgumentParser) -> None:
        """``--inits-from`` and ``--skip-missing`` (listed beside ``--load-from``)."""
        parser.add_argument("--inits-from", default="", help="Weights to reinitialize from: a plain-text list of snapshot paths (one per line, blank lines ignored), a run directory (its snapshots up to the loaded epoch), a snapshot file or a glob [default = none].")
        parser.add_argument("--skip-missing", action="store_true", help="Skip snapshots named by --inits-from that do not exist (with a warning) instead of stopping [default = off].")

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """The sweep's flags (with :meth:`add_inits_arguments`, every flag of the analysis)."""
        parser.add_argument("--rand", action="store_true", help="Perform weight randomization test: also reset each layer to a fresh random initialization [default = off].")
        parser.add_argument("--rand-repeats", type=int, default=1, help="With --rand: number of independent random initializations; the rand row is their mean (std in the JSON) [default = 1].")
        parser.add_argument("--layers", choices=sorted(LAYER_SELECTIONS), default="conv", help="Layers to reset, one at a time; 1x1 convolutions included; conv+linear also resets each attention block as one layer (its in_proj and out_proj) [default = conv].")
        parser.add_argument("--with-bn", action="store_true", help="Also reset the BatchNorm that directly follows a reset layer (affine parameters and running statistics) [default = off, as in the reference].")
        parser.add_argument("--method", choices=METHODS, default="auto", help="auto: prefix caching (recompute only from the reset layer on) where the model allows it, else naive; naive: a full forward pass per cell (slow, for checking) [default = auto].")
        parser.add_argument("--cache-mb", type=int, default=DEFAULT_CACHE_BYTES // 2**20, help=f"Memory for cached activations; the test set is processed in chunks of this size [default = {DEFAULT_CACHE_BYTES // 2**20}].")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ReinitSettings:
        return cls(inits_from=args.inits_from, skip_missing=args.skip_missing, rand=args.rand,
                   rand_repeats=args.rand_repeats, rand_seed=args.seed, layers=args.layers, with_bn=args.with_bn,
                   method=args.method, cache_mb=args.cache_mb, batch_size=args.batch_size, workers=args.workers,
                   reference_layout=getattr(args, "layout", None) == "reference")

    def validate(self) -> None:
        if not self.inits_from and not self.rand:
            raise UserError("nothing to reset from: pass --inits-from (checkpoints, e.g. the run directory) and/or --rand")
        if self.rand_repeats < 1 or (self.rand_repeats > 1 and not self.rand):
            raise UserError(f"--rand-repeats {self.rand_repeats} needs --rand and a count of at least 1")
        if self.batch_size < 1 or self.cache_mb < 1:
            raise UserError("--batch-size and --cache-mb must be at least 1")


class Reinit(Analysis):
    name = kind = "reinit"
    summary = None
    needs_data = True
    logs_chance = True

    def select_layers(self, subject: Subject) -> list[LayerInfo]:
        selection, reference = self.settings.layers, self.settings.reference_layout
        layers = enumerate_layers(subject.model, subject.input_shape, include_1x1=not reference,
                                  rule="maxpool" if reference else "resolution", **LAYER_SELECTIONS[selection])
        if reference and len(layers) < len(enumerate_layers(subject.model, subject.input_shape, include_1x1=True,
                                                            rule="maxpool", **LAYER_SELECTIONS[selection])):
            notice("reinit-1x1", "--layout reference: 1x1 convolutions are not reset, as in the reference "
                   "(its lists have one value per other conv layer)")
        if not layers:
            raise UserError(f"{subject.arch} has no {selection} layers to reset; try --layers conv+linear")
        return layers

    def following_bn(self, subject: Subject, layers: list[LayerInfo]) -> dict[str, str | None]:
        if not self.settings.with_bn:
            return {layer.name: None for layer in layers}
        found = following_batchnorms(subject.model, subject.input_shape, [layer.name for layer in layers])
        if not any(found.values()):
            logger.warning("--with-bn: no BatchNorm directly follows any reset layer of %s; nothing extra is reset",
                           subject.arch)
        return found

    def measure(self, subject: Subject) -> dict:
        settings = self.settings
        layers = self.select_layers(subject)
        batchnorms = self.following_bn(subject, layers)
        keep = {layer.name for layer in layers} | {bn for bn in batchnorms.values() if bn}
        rows = init_rows(settings.inits_from, subject, keep, skip_missing=settings.skip_missing,
                         reference_order=settings.reference_layout)
        if settings.rand:
            rows += rand_rows(subject, keep, repeats=settings.rand_repeats, seed=settings.rand_seed)
        data = subject.data
        result = self.sweep(subject, layers, rows, data, batchnorms, subject.device)
        return {"layers": layers, "batchnorms": batchnorms, "rows": rows, "result": result, "data": data}

    def sweep(self, subject: Subject, layers: list[LayerInfo], rows: list[RowSource], data,
              batchnorms: dict[str, str | None], device) -> SweepResult:
        batches = data.test.batches(self.settings.batch_size, device=device, workers=self.settings.workers)
        log_wrapped(logger, f"trained model: {shown_path(subject.path)} ({subject.arch} on {subject.dataset}, "
                    f"epoch {subject.epoch}, seed {subject.seed})")
        logger.info("resetting %d layers from %d rows (%d cells) on %d test samples of %s", len(layers), len(rows),
                    len(rows) * len(layers), len(data.test), subject.dataset)
        bar = progress([], total=len(batches) * (1 + len(rows) * len(layers)), desc="reinit", unit="batch")
        try:
            result = reinit_sweep(subject.model, [layer.name for layer in layers], [row.row for row in rows], batches,
                                  num_classes=subject.num_classes, with_bn=batchnorms, method=self.settings.method,
                                  cache_bytes=self.settings.cache_mb * 2**20, on_step=bar.update)
        finally:
            bar.close()
        logger.info("evaluated with %s (%d cell(s) equal to the trained network reused)",
                    "prefix caching" if result.method == "prefix" else "a full forward pass per cell",
                    result.reused_cells)
        return result

    def reference_document(self, document: dict, *, stem: str, subsample_classes: int) -> tuple[str, dict]:
        """``reinit_<stem>.json`` as the reference's reinit_layers.py writes it."""
        return f"reinit_{stem}.json", schema.to_reference_reinit(document, stem=stem)

    def document(self, measured: dict, subject: Subject, args: dict) -> dict:
        """``reinit_<stem>.json``: the reference's keys plus layers, per-cell metrics and drops and,
        when the subject's data were decided from data settings, their conventions."""
        result, layers = measured["result"], measured["layers"]
        top1 = result.reference.top1
        merged = merge_rows(measured["rows"], result, top1)
        return subject.header(self.kind, args) | {
            "snapshot": str(subject.path), "stem": subject.stem, "num_classes": subject.num_classes,
            "input_shape": list(subject.input_shape), "test_samples": result.reference.samples,
            "classes": measured["data"].classes.tolist(), "layer_selection": self.settings.layers,
            "with_bn": self.settings.with_bn, "method": result.method,
            "top1_test": top1, "top5_test": result.reference.top5, "loss_test": result.reference.loss,
            "chance_top1": 100.0 / subject.num_classes,
            "chance": chance_verdict(top1, n_test=result.reference.samples, num_classes=subject.num_classes).as_dict(),
            "chance_top5": 100.0 * 5 / subject.num_classes if subject.num_classes >= 5 else None,
            "layer_names": [layer.name for layer in layers],
            "layers": [layer_record(layer, measured["batchnorms"].get(layer.name)) for layer in layers],
            "init_from_epoch": {row["key"]: row["top1"] for row in merged},
            "rows": merged,
        } | subject.conventions_record()

    def log(self, document: dict, path) -> None:
        """Top-1 (%) per row and layer, the numbers a user looks at first, after whether the trained
        model is above chance (when it is not, the table describes an untrained model)."""
        names = document["layer_names"]
        logger.info("trained: top-1 %.2f%%, top-5 %s, loss %.4f (chance %.3g%%)", document["top1_test"],
                    "-" if document["top5_test"] is None else f"{document['top5_test']:.2f}%", document["loss_test"],
                    document["chance_top1"])
        log_chance(logger, document.get("chance"), label="the trained model",
                   findings="the drops below do not show which layers the task needs")
        width = 7
        logger.info("  %-12s %s", "top-1 from", " ".join(f"{i:>{width}d}" for i in range(len(names))))
        for row in document["rows"]:
            logger.info("  %-12s %s", row["key"], " ".join(f"{acc:>{width}.2f}" for acc in row["top1"]))
        log_wrapped(logger, "  layers: " + ", ".join(f"{i}={name}" for i, name in enumerate(names)), indent="    ")
        log_written(logger, "results", path)


def layer_record(layer: LayerInfo, batchnorm: str | None) -> dict:
    return {"name": layer.name, "kind": layer.kind, "stage": layer.stage, "block": layer.block, "index": layer.index,
            "out_units": layer.out_units, "fan_in": layer.fan_in, "is_1x1": layer.is_1x1, "batchnorm": batchnorm}


def merge_rows(rows: list[RowSource], result: SweepResult, top1: float) -> list[dict]:
    """One record per key: snapshot rows as they are, the rand repeats as their mean (and std)."""
    records = [row_record(row, scores, top1) for row, scores in zip(rows, result.cells)]
    plain = [record for record, row in zip(records, rows) if row.source != RAND_KEY]
    repeats = [record for record, row in zip(records, rows) if row.source == RAND_KEY]
    return plain + ([mean_record(repeats, top1)] if repeats else [])


def _drops(accuracies: list, top1: float) -> dict:
    return {"drop": [top1 - acc for acc in accuracies],
            "relative_drop": [(top1 - acc) / top1 if top1 else None for acc in accuracies]}


def row_record(row: RowSource, scores, top1: float) -> dict:
    accuracies = [score.top1 for score in scores]
    return {
        "key": row.key, "source": row.source, "epoch": row.epoch,
        "snapshot": str(row.path) if row.path is not None else None, "seed": row.seed,
        "top1": accuracies, "top5": [score.top5 for score in scores], "loss": [score.loss for score in scores],
        **_drops(accuracies, top1),
    }


def mean_record(repeats: list[dict], top1: float) -> dict:
    def mean(name):
        columns = zip(*(record[name] for record in repeats))
        return [None if None in column else statistics.fmean(column) for column in columns]

    accuracies = mean("top1")
    spread = [statistics.pstdev(column) for column in zip(*(record["top1"] for record in repeats))]
    return {
        "key": RAND_KEY, "source": RAND_KEY, "epoch": None, "snapshot": None, "seed": repeats[0]["seed"],
        "top1": accuracies, "top1_std": spread, "top5": mean("top5"), "loss": mean("loss"),
        **_drops(accuracies, top1),
        "repeats": [{"seed": r["seed"], "top1": r["top1"], "top5": r["top5"], "loss": r["loss"]} for r in repeats],
    }


# -- what the rest of the suite knows about this analysis -----------------------------------------------
TABLE_METRICS = ("reinit_drop", "reinit_drop_rand")


def table_rows(run) -> list[tuple]:
    """The relative top-1 drop of each swept snapshot with a layer reset to epoch 0 (``reinit_drop``)
    or re-randomized (``reinit_drop_rand``)."""
    rows = []
    for document in run.of_kind("reinit"):
        names = schema.reinit_layer_names(document)
        for row in document.get("rows") or []:
            metric = "reinit_drop_rand" if row["source"] == "rand" else "reinit_drop" if row.get("epoch") == 0 else None
            if metric:
                rows += [(document.get("epoch"), name, metric, v) for name, v in zip(names, row["relative_drop"])
                         if schema.finite(v)]
    return rows


def sweep_done(results, arch: str, epochs: list[int]) -> bool:
    """The sweep of the run's last snapshot is on disk."""
    return bool(epochs) and (results / f"reinit_{arch}_epoch{epochs[-1]:04d}.json").is_file()


# For the ranking of measures (comparison/measures.py): what each measure is, and its expected sign (the drops
# are measured on the test split: held-out images).
MEASURES = {
    "reinit_drop": Measure(0, "mean over layers of the relative test top-1 drop when the layer is reset to epoch 0",
                           "contested: Chatterji et al. 2020 (less critical = better) vs. a chance-level model "
                           "having nothing to lose", reads=HELD_OUT),
    "reinit_drop_rand": Measure(0, "mean over layers of the relative test top-1 drop when the layer is re-randomized",
                                "as reinit_drop", reads=HELD_OUT),
}


DECLARATION = Declaration(
    "reinit", kinds=("reinit",), cli="reinit_layers.py", table_rows=table_rows, metrics=TABLE_METRICS,
    sweep_arguments=lambda at: ["--load-from", at.run, "--inits-from", at.run, "--rand", "--results", at.results,
                                "--plots", at.plots, *at.device],
    sweep_default=True, done=sweep_done, compared_as="criticality", measures=MEASURES)
