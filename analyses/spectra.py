"""Weight-spectrum metrics per layer (WeightWatcher's), and the distance from the initialization.

For every conv (1x1 included), linear and attention matrix (``metrics/matrices.py``: an attention's
in-projection as its q, k and v blocks, and its out_proj; any other matrix-shaped parameter is
named in one notice): the eigenvalues of ``W^T W / N`` (conv layers as
their kh*kw slices pooled into one spectrum, or flattened with ``conv_mode="flatten"``), matrix
entropy, stable rank, norms, the power-law ``alpha``, ``rand_distance`` and, given an
initialization, the relative Frobenius distance and cosine from it (math: ``metrics/spectral.py``).
Next to them, WeightWatcher's diagnostics (``metrics/ww_diagnostics.py``): the Marchenko-Pastur fit
(``num_spikes``, ``mp_softrank``, bulk edges), correlation traps of the randomized spectrum
(``num_traps``; ``--no-traps`` skips their SVDs), the ``warning`` (over-trained alpha < 2,
under-trained alpha > 6), ``log_alpha_norm`` and, given an initialization, its ``euclidean`` and
``cka`` distances.
"""
from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass

import torch

import schema
from analyses.base import Analysis, fmt, log_table, log_written, model_label
from analyses.registry import Declaration, Measure, ZooUse, summary_covers
from analyses.subject import Subject
from metrics.conv_modes import CONV_MODES, DEFAULT_CONV_MODE
from metrics.layers import LayerInfo
from metrics.matrices import weight_matrices
from metrics.spectral import layer_spectrum, shuffled_spectrum
from metrics.ww_diagnostics import layer_diagnostics
from utils.errors import UserError
from utils.notices import notice
from utils.progress import progress

logger = logging.getLogger(__name__)

# Per-layer values the summary lays out as layers x epochs matrices.
SUMMARY_METRICS = ("alpha", "alpha_weighted", "entropy", "stable_rank", "spectral_norm", "log_spectral_norm",
                   "log_norm", "rand_distance", "xmin", "ks_distance", "l2_dist", "cosine",
                   "num_spikes", "mp_softrank", "num_traps", "log_alpha_norm", "euclidean", "cka")
# Averages over layers, as WeightWatcher's get_summary() (plus entropy and rand_distance).
NET_METRICS = ("alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "stable_rank", "entropy", "rand_distance",
               "log_alpha_norm", "mp_softrank")
LAYER_FIELDS = ("name", "kind", "stage", "block", "index", "out_units", "fan_in", "is_1x1")
SUMMARY = schema.SummarySpec(
    "spectra_summary", constants=("conv_mode", "shuffle_seed"),
    layer_fields=("name", "kind", "stage", "block", "shape", "N", "M", "n_matrices", "num_evals"),
    layer_metrics=SUMMARY_METRICS, net_metrics=NET_METRICS)


@dataclass(frozen=True)
class SpectraSettings:
    conv_mode: str = DEFAULT_CONV_MODE
    shuffle_seed: int = 0
    traps: bool = True  # correlation traps: one randomized SVD per matrix (5 for layers under 100 eigenvalues)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--conv-mode", choices=CONV_MODES, default=DEFAULT_CONV_MODE, help="How a conv layer becomes matrices: its kh*kw (out x in) slices pooled into one spectrum, as WeightWatcher does, or one flattened out x (in*kh*kw) matrix [default = slices].")
        parser.add_argument("--shuffle-seed", type=int, default=0, help="Seed of the weight shuffle behind rand_distance and the correlation traps (combined with each layer's name) [default = 0].")
        parser.add_argument("--no-traps", action="store_true", help="Skip WeightWatcher's correlation traps (num_traps), which need the SVDs of each layer's randomized weights [default = computed].")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SpectraSettings:
        return cls(conv_mode=args.conv_mode, shuffle_seed=args.shuffle_seed, traps=not args.no_traps)


def select_layers(model: torch.nn.Module, input_shape: tuple[int, ...], *, name: str = "") -> list[LayerInfo]:
    """Every conv (1x1 included), linear and attention matrix, in forward order; one notice names the
    other parameters of two or more dimensions (embeddings, tokens), which are skipped."""
    layers, skipped = weight_matrices(model, input_shape)
    if skipped:
        described = "; ".join(f"{parameter} ({why})" for parameter, why in skipped)
        notice(f"spectra-skipped:{type(model).__name__}:{len(skipped)}", "spectra of %s skip %d weight tensor(s): %s",
               name or type(model).__name__, len(skipped), described)
    return layers


class Spectra(Analysis):
    name = kind = "spectra"
    summary = SUMMARY
    needs_init = True

    @property
    def file_prefix(self) -> str:
        """``spectra`` for the default slices, ``spectra_conv-flatten`` for flattened conv layers,
        so both modes can live in one folder."""
        mode = self.settings.conv_mode
        return "spectra" if mode == DEFAULT_CONV_MODE else f"spectra_conv-{mode}"

    def measure(self, subject: Subject) -> dict:
        """``{"records": [per-layer record], "init_from"}``."""
        init_path, init = subject.initialization
        init_weights = layer_weights(init)
        records = []
        layers = select_layers(subject.model, subject.input_shape, name=subject.name)
        for layer in progress(layers, desc=f"spectra of {subject.stem}", unit="layer"):
            init_weight = init_weights.get(layer.name) if init_weights is not None else None
            if init_weights is not None and init_weight is None:
                raise UserError(f"{subject.name}: layer {layer.name} is missing from the initialization {init_path}")
            try:
                mode, seed = self.settings.conv_mode, self.settings.shuffle_seed
                randomized = shuffled_spectrum(layer.weight.detach(), mode=mode, seed=seed, name=layer.name)
                record = layer_spectrum(layer.weight, mode=mode, init_weight=init_weight, seed=seed, name=layer.name,
                                        randomized=randomized)
                record |= self.diagnostics(layer, record, init_weight, randomized.eigenvalues)
            except UserError as err:
                raise UserError(f"{subject.name}: {err}") from err
            records.append(layer_fields(layer) | record)
        return {"records": records, "init_from": init_path}

    def diagnostics(self, layer: LayerInfo, record: dict, init_weight: torch.Tensor | None,
                    shuffled: torch.Tensor) -> dict:
        """WeightWatcher's diagnostics of one layer (``metrics.ww_diagnostics``), the traps unless ``--no-traps``
        (fitted to ``shuffled``, the spectrum behind rand_distance, where the layer is one large matrix)."""
        return layer_diagnostics(layer.weight.detach(), record, mode=self.settings.conv_mode, init_weight=init_weight,
                                 seed=self.settings.shuffle_seed, name=layer.name, traps=self.settings.traps,
                                 shuffled=shuffled)

    def document(self, measured: dict, subject: Subject, args: dict) -> dict:
        """``spectra_<stem>.json``: the header, a ``layers`` list (forward order) and ``net`` averages."""
        return subject.header(self.kind, args) | {
            "source": subject.source,
            "snapshot": str(subject.path) if subject.path is not None else None,
            "init_from": str(measured["init_from"]) if measured["init_from"] is not None else None,
            "conv_mode": self.settings.conv_mode,
            "shuffle_seed": self.settings.shuffle_seed,
            "traps": self.settings.traps,
            "num_classes": subject.num_classes,
            "input_shape": list(subject.input_shape),
            "layers": measured["records"],
            "net": net_averages(measured["records"]),
        }

    def log(self, document: dict, path) -> None:
        """One table per snapshot: the numbers a user looks at first."""
        log_written(logger, f"{model_label(document)} (epoch {document['epoch']}, conv mode {document['conv_mode']})",
                    path)
        rows = []
        for record in document["layers"]:
            size = f"{record['N']}x{record['M']}" + (f"x{record['n_matrices']}" if record["n_matrices"] > 1 else "")
            rows.append([record["name"], size, *(fmt(record.get(key)) for key in (
                "alpha", "entropy", "stable_rank", "log_norm", "rand_distance", "l2_dist", "num_spikes",
                "num_traps")), record.get("warning") or ""])
        log_table([("layer", "%-22s"), ("N x M (x B)", "%14s"), ("alpha", "%7s"), ("entropy", "%8s"),
                   ("st.rank", "%8s"), ("log_norm", "%8s"), ("rand_dist", "%9s"), ("l2_dist", "%8s"),
                   ("spikes", "%6s"), ("traps", "%5s"), ("warning", "%-13s")], rows, log=logger)


def layer_weights(init: Subject | None) -> dict[str, torch.Tensor] | None:
    """The initialization's weight tensors of the analysed layers, by module name."""
    if init is None:
        return None
    return {layer.name: layer.weight.detach() for layer in select_layers(init.model, init.input_shape)}


def layer_fields(layer: LayerInfo) -> dict:
    return {name: getattr(layer, name) for name in LAYER_FIELDS} | {"shape": list(layer.weight.shape)}


def net_averages(records: list[dict]) -> dict:
    """Mean over the layers where a metric is defined (``None`` where it is nowhere)."""
    averages = {}
    for metric in NET_METRICS:
        values = [record[metric] for record in records if _finite(record.get(metric))]
        averages[metric] = sum(values) / len(values) if values else None
    return averages | {"n_layers": len(records)}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# -- what the rest of the suite knows about this analysis -----------------------------------------------
TABLE_METRICS = ("alpha", "stable_rank", "entropy", "rand_distance", "num_spikes", "mp_softrank", "num_traps",
                 "log_alpha_norm")
TABLE_CONV_MODE = DEFAULT_CONV_MODE  # the table holds the default conv mode's values


def table_rows(run) -> list[tuple]:
    documents = [d for d in run.of_kind("spectra") if d.get("conv_mode", TABLE_CONV_MODE) == TABLE_CONV_MODE]
    return schema.layered_rows(documents, TABLE_METRICS, run.summary("spectra_summary", conv_mode=TABLE_CONV_MODE))


_WW = "WeightWatcher (Martin & Mahoney 2021)"
_LAYERS = "mean over conv and linear layers (WeightWatcher's get_summary)"
# For the ranking of measures (comparison/measures.py): what each measure is, and its expected sign.
MEASURES = {
    "alpha": Measure(-1, f"power-law exponent of the layer ESD, {_LAYERS}", _WW),
    "alpha_weighted": Measure(-1, f"alpha * log10(largest eigenvalue) (alpha-hat), {_LAYERS}", _WW),
    "log_norm": Measure(-1, f"log10 of the squared Frobenius norm, {_LAYERS}", _WW),
    "log_spectral_norm": Measure(-1, f"log10 of the largest eigenvalue, {_LAYERS}", _WW),
    "stable_rank": Measure(0, f"||W||_F^2 / ||W||_2^2, {_LAYERS}", "no agreed sign"),
    "entropy": Measure(-1, f"normalized matrix entropy, {_LAYERS}", "WeightWatcher: it decreases as a layer trains"),
    "rand_distance": Measure(+1, f"Jensen-Shannon distance of the ESD to the shuffled weights' ESD, {_LAYERS}",
                             "WeightWatcher: larger for well-trained layers"),
    "log_alpha_norm": Measure(-1, f"log10 of the sum of eigenvalues^alpha (alpha-norm), {_LAYERS}", _WW),
    "mp_softrank": Measure(0, f"Marchenko-Pastur bulk edge / largest eigenvalue, {_LAYERS}",
                           "WeightWatcher: lower once a layer learns structure, near 1 for random weights"),
    "num_spikes": Measure(0, "mean over conv and linear layers of the eigenvalues beyond the MP bulk edge", _WW),
    "num_traps": Measure(-1, "mean over conv and linear layers of the correlation traps of the randomized ESD",
                         "WeightWatcher: traps mark over-trained layers"),
}


DECLARATION = Declaration(
    "spectra", kinds=("spectra", "spectra_summary"), cli="compute_spectra.py", table_rows=table_rows,
    metrics=TABLE_METRICS, sweep_arguments=lambda at: ["--load-from", at.run, "--results", at.results, *at.device],
    done=summary_covers("spectra"), measures=MEASURES, zoo=ZooUse(build=lambda probe: Spectra(SpectraSettings()), default=True))
