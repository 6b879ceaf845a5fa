"""Oriented-hyperplane projection statistics per layer, and the distance from the initialization.

For every conv layer (1x1 skipped unless ``include_1x1``; linear layers with ``with_linear``) the
distribution over filters of ``p(w) = <w, 1>`` (``normalize``: the cosine ``<w, 1> / (||w|| sqrt(d))``)
and, given an initialization, the distance from it (math: ``metrics/projections.py``). Documents
keep the reference's ``"<stage>": {"<block>": LAYER}`` nesting, add ``net`` (every analysed layer
pooled) and a flat ``layers`` list with module names.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

import torch

import schema
from analyses.base import Analysis, fmt, log_table
from analyses.registry import Declaration, Measure, ZooUse, summary_covers
from analyses.subject import Subject
from metrics.layers import LayerInfo, enumerate_layers
from metrics.projections import LayerWeights, filter_projections, network_statistics, projection_mass
from schema.thresholds import SIGNIFICANCE
from utils.errors import UserError

logger = logging.getLogger(__name__)

LAYER_FIELDS = ("name", "kind", "stage", "block", "index", "input_shape", "out_units", "is_1x1")
# Per-layer values the summary lays out as layers x epochs matrices.
SUMMARY_METRICS = ("mean", "std", "median", "mass", "sign_test_p", "ks_stat", "ks_p", "l2_dist", "l_inf_dist",
                   "cosine", "init_mean", "init_mass")
SUMMARY = schema.SummarySpec(
    "projections_summary", constants=("normalize",), layer_fields=("name", "kind", "stage", "block", "fan_in",
                                                                   "n_filters"),
    layer_metrics=SUMMARY_METRICS, net_metrics=("n_filters", *SUMMARY_METRICS))


@dataclass(frozen=True)
class ProjectionSettings:
    normalize: bool = False
    include_1x1: bool = False
    with_linear: bool = False
    stage_rule: str = "resolution"  # or "maxpool": the reference's (--layout reference)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--normalize", action="store_true", help="Normalize projections: <w,1> / (||w|| sqrt(d)), a cosine in [-1, 1] [default = off].")
        parser.add_argument("--with-linear", action="store_true", help="Compute statistics also for fully connected layers [default = off].")
        parser.add_argument("--include-1x1", action="store_true", help="Also analyse 1x1 convolutions [default = off, as in the paper].")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ProjectionSettings:
        rule = "maxpool" if getattr(args, "layout", None) == "reference" else "resolution"
        return cls(normalize=args.normalize, include_1x1=args.include_1x1, with_linear=args.with_linear,
                   stage_rule=rule)


class Projections(Analysis):
    name = kind = "projections"
    summary = SUMMARY
    needs_init = True

    def layers(self, model: torch.nn.Module, input_shape: tuple[int, ...]) -> list[LayerInfo]:
        return enumerate_layers(model, input_shape, include_1x1=self.settings.include_1x1,
                                with_linear=self.settings.with_linear, rule=self.settings.stage_rule)

    def reference_document(self, document: dict, *, stem: str, subsample_classes: int) -> tuple[str, dict]:
        """``<stem>.json`` as the reference's compute_projections.py writes it."""
        return f"{stem}.json", schema.to_reference_projections(document, stem=stem,
                                                               subsample_classes=subsample_classes)

    def init_filters(self, init: Subject | None) -> dict[str, torch.Tensor] | None:
        """Filters ``(out_units, fan_in)`` of the initialization's analysed layers, by module name."""
        if init is None:
            return None
        return {layer.name: layer.filters() for layer in self.layers(init.model, init.input_shape)}

    def measure(self, subject: Subject) -> dict:
        """``{"layers": [LayerInfo], "records": [per-layer statistics], "net", "init_from"}``."""
        layers = self.layers(subject.model, subject.input_shape)
        init_path, init = subject.initialization
        weights = [LayerWeights(layer.name, layer.filters()) for layer in layers]
        try:
            records, net = network_statistics(weights, normalize=self.settings.normalize,
                                              init=self.init_filters(init))
        except UserError as err:
            raise UserError(f"{subject.name}: {err}") from err
        return {"layers": layers, "records": records, "net": net, "init_from": init_path}

    def document(self, measured: dict, subject: Subject, args: dict) -> dict:
        """``projections_<stem>.json``: the header, the reference's nesting, ``net`` and ``layers``."""
        document = subject.header(self.kind, args) | {
            "source": subject.source,
            "snapshot": str(subject.path) if subject.path is not None else None,
            "init_from": str(measured["init_from"]) if measured["init_from"] is not None else None,
            "normalize": self.settings.normalize,
            "num_classes": subject.num_classes,
            "input_shape": list(subject.input_shape),
        }
        pairs = list(zip(measured["layers"], measured["records"]))
        for layer, record in pairs:
            document.setdefault(str(layer.stage), {})[str(layer.block)] = record
        document["net"] = measured["net"]
        document["layers"] = [layer_fields(layer) | record for layer, record in pairs]
        return document

    def log(self, document: dict, path) -> None:
        """One table per snapshot: the numbers a user looks at first."""
        super().log(document, path)
        rows = [[layer["name"], f"{layer['stage']}.{layer['block']}", str(layer["fan_in"]), layer]
                for layer in document["layers"]] + [["net", "-", "-", document["net"]]]
        log_table([("layer", "%-22s"), ("s.b", "%5s"), ("filters", "%7s"), ("fan_in", "%6s"), ("mean", "%10s"),
                   ("mass", "%6s"), ("sign_p", "%9s"), ("l2_dist", "%8s"), ("ks_p", "%8s")],
                  [[name, position, str(record["n_filters"]), fan_in, fmt(record["mean"], ".4g"),
                    fmt(record["mass"], ".3f"), fmt(record["sign_test_p"], ".2g"), fmt(record.get("l2_dist")),
                    fmt(record.get("ks_p"))] for name, position, fan_in, record in rows], log=logger)


def layer_fields(layer: LayerInfo) -> dict:
    values = {name: getattr(layer, name) for name in LAYER_FIELDS}
    return values | {"input_shape": list(layer.input_shape)}


def snapshot_scalars(model: torch.nn.Module, input_shape: tuple[int, ...], settings: ProjectionSettings) -> dict:
    """What train.py logs at every snapshot: ``{"<module>/mean", "<module>/mass", "<module>/histogram"
    ((n_filters,) tensor), "net/mean", "net/mass"}`` of the (normalized, by default) projections."""
    results, pooled = {}, []
    for layer in enumerate_layers(model, input_shape, include_1x1=settings.include_1x1,
                                  with_linear=settings.with_linear):
        projections = filter_projections(layer.filters(), normalize=settings.normalize, layer=layer.name)
        results[f"{layer.name}/mean"] = float(projections.mean())
        results[f"{layer.name}/mass"] = projection_mass(projections)
        results[f"{layer.name}/histogram"] = projections.float().cpu()
        pooled.append(projections)
    if pooled:
        net = torch.cat(pooled)
        results["net/mean"], results["net/mass"] = float(net.mean()), projection_mass(net)
    return results


# -- what the rest of the suite knows about this analysis -----------------------------------------------
TABLE_METRICS = ("mean", "std", "mass", "sign_test_p", "ks_p", "l2_dist", "cosine")


def table_rows(run) -> list[tuple]:
    return schema.layered_rows(run.of_kind("projections"), TABLE_METRICS, run.summary("projections_summary"))


class ProjectionLogging:
    """train.py's per-layer normalized projection mean, mass and histogram (TensorBoard ``projections/...``)."""

    name = "projections"
    settings = ProjectionSettings(normalize=True)

    def analyze(self, subject: Subject) -> dict:
        return snapshot_scalars(subject.model, subject.input_shape, self.settings)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-projection-logging", action="store_true", help="Do not log per-layer projection mean/mass/histograms at each snapshot [default = logged].")


# For the ranking of measures (comparison/measures.py derives them from the table's rows): what each
# measure is, and its expected sign.
MEASURES = {
    "bias_mean": Measure(+1, "mean over analysed layers of |mass - 0.5|, mass = P(p <= 0) of the filters' projections",
                         "hyperplane paper: bias emerges from training and correlates with learning"),
    "bias_last_conv": Measure(+1, "|mass - 0.5| of the last analysed layer (the last conv layer)", "hyperplane paper"),
    "biased_fraction": Measure(+1, f"fraction of analysed layers whose sign test of mass = 0.5 has p < {SIGNIFICANCE}",
                               "hyperplane paper"),
    "dist_init": Measure(-1, "mean over analysed layers of ||W - W0||_F / ||W0||_F (distance from init, relative)",
                         "WeightWatcher; Jiang et al. 2020: it grows as a model memorizes"),
    "cosine_init": Measure(+1, "mean over analysed layers of the cosine between W and W0", "the inverse of dist_init"),
}


DECLARATION = Declaration(
    "projections", kinds=("projections", "projections_summary"), cli="compute_projections.py",
    table_rows=table_rows, metrics=TABLE_METRICS,
    sweep_arguments=lambda at: ["--load-from", at.run, "--normalize", "--results", at.results, *at.device],
    sweep_default=True, done=summary_covers("projections"),
    train_arguments=add_train_arguments,
    train_analyzer=lambda args: None if args.no_projection_logging else ProjectionLogging(),
    compared_as="bias", measures=MEASURES,
    zoo=ZooUse(build=lambda probe: Projections(ProjectionSettings(normalize=True)), default=True))
