"""Norm-based measures of the weights (Jiang et al. 2020, appendix C; math: ``metrics/norms.py``,
``metrics/conv_norms.py``), on the folded network (``analyses.field.folded``: each batch norm folded
into the conv or linear layer that ran before it, checked on the outputs).

Data-free: the weight count, the log product and log "sum" of the layers' squared Frobenius and
spectral norms, their sum (``param_norm``) and ratio (``fro_over_spec``), the distances from the
initialization (the run's epoch-0 snapshot, or ``--init-from``, folded the same way; absent, with one
line saying so, for a model without one: a zoo model, a random init) and the path-norm. The ``_fft``
forms take each convolution's exact spectral norm as an operator on its input (Sedghi et al. 2019)
instead of its reshaped kernel's. The margin-normalized forms are the margin analysis's
(``analyses/margin.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from analyses.field import (
    CLI,
    FieldMeasure,
    FieldSettings,
    fold_facts,
    folded,
    latest_covered,
    run_level_rows,
    sweep_arguments,
    sweep_together,
)
from analyses.registry import TRAINING, WEIGHTS, Declaration, Measure, ZooUse
from analyses.subject import Subject
from metrics import conv_norms, norms

JIANG = "Jiang et al. 2020 (Fantastic Generalization Measures), appendix C"
LAYERS = "over the conv and linear layers of the folded network (weights as out x in*kh*kw matrices)"
EXACT = "with each convolution's exact operator norm (Sedghi et al. 2019: the FFT of the kernel over its input)"


def measure(direction: int, aggregation: str, source: str, scaling: str | None, reads: str = WEIGHTS) -> Measure:
    """A measure the field defines on the network's function (computed on the folded network)."""
    return Measure(direction, aggregation, source, defined_on="function", size_scaling=scaling, reads=reads)


def trained(direction: int, aggregation: str, source: str, scaling: str | None) -> Measure:
    """A measure of the folded network that reads the training split (margins, losses under perturbation)."""
    return measure(direction, aggregation, source, scaling, reads=TRAINING)


MEASURES = {
    "num_params": measure(-1, "weights of the conv and linear layers (no biases, no batch-norm parameters)",
                          f"{JIANG}, eq. 20: a VC-style capacity", "sqrt"),
    "log_prod_fro": measure(-1, f"sum of log ||W_i||_F^2 {LAYERS}", f"{JIANG}, eq. 37", "log"),
    "log_sum_fro": measure(-1, f"log(d) + mean of log ||W_i||_F^2 {LAYERS}", f"{JIANG}, eq. 39", "log"),
    "log_prod_spec": measure(-1, f"sum of log ||W_i||_2^2 {LAYERS}", f"{JIANG}, eq. 32", "log"),
    "log_sum_spec": measure(-1, f"log(d) + mean of log ||W_i||_2^2 {LAYERS}", f"{JIANG}, eq. 35", "log"),
    "param_norm": measure(-1, f"sum of ||W_i||_F^2 {LAYERS}", f"{JIANG}, eq. 42", "sqrt"),
    "fro_over_spec": measure(-1, f"sum of ||W_i||_F^2 / ||W_i||_2^2 {LAYERS}", f"{JIANG}, eq. 33", "sqrt"),
    "fro_dist": measure(-1, f"sum of ||W_i - W0_i||_F^2 {LAYERS}, W0 the folded epoch-0 snapshot",
                        f"{JIANG}, eq. 40 (Nagarajan & Kolter 2019)", "sqrt"),
    "dist_spec_init": measure(-1, f"sum of ||W_i - W0_i||_2^2 {LAYERS}", f"{JIANG}, eq. 41", "sqrt"),
    "path_norm": measure(-1, "every parameter of the folded network squared, an all-ones input forwarded, outputs "
                         "summed", f"{JIANG}, eq. 44 (Neyshabur et al. 2015): among the best in Jiang's study", "sqrt"),
    "log_prod_spec_fft": measure(-1, f"log_prod_spec {EXACT}", f"{JIANG}, eq. 32; Sedghi et al. 2019", "log"),
    "log_sum_spec_fft": measure(-1, f"log_sum_spec {EXACT}", f"{JIANG}, eq. 35; Sedghi et al. 2019", "log"),
    "fro_over_spec_fft": measure(-1, f"fro_over_spec {EXACT}", f"{JIANG}, eq. 33; Sedghi et al. 2019", "sqrt"),
    "dist_spec_init_fft": measure(-1, f"dist_spec_init {EXACT}", f"{JIANG}, eq. 41; Sedghi et al. 2019", "sqrt"),
}


@dataclass(frozen=True)
class LayerNorms:
    """The norms of each conv and linear layer of the folded network, and of its distance from the
    folded initialization (None without one); ``*_fft``: the exact operator norms (None where they are
    not computed, ``notes`` saying why)."""

    names: tuple[str, ...]
    fro: list[float]
    spec: list[float]
    spec_fft: list[float] | None
    dist_fro: list[float] | None
    dist_spec: list[float] | None
    dist_spec_fft: list[float] | None
    weights: int
    notes: tuple[str, ...] = ()

    def layers(self) -> list[dict]:
        columns = {"fro": self.fro, "spec": self.spec, "spec_fft": self.spec_fft, "dist_fro": self.dist_fro,
                   "dist_spec": self.dist_spec, "dist_spec_fft": self.dist_spec_fft}
        return [{"name": name} | {key: (values[i] if values is not None else None) for key, values in columns.items()}
                for i, name in enumerate(self.names)]


def layer_norms(subject: Subject) -> LayerNorms:
    """The subject's :class:`LayerNorms`, once per subject (the norms and margin analyses share them)."""
    if "layer_norms" not in subject.derived:
        subject.derived["layer_norms"] = _layer_norms(subject)
    return subject.derived["layer_norms"]


def _layer_norms(subject: Subject) -> LayerNorms:
    from metrics.layers import traced_stages

    model = folded(subject).model
    named = norms.layer_weights(model)
    names, weights = tuple(name for name, _ in named), [weight for _, weight in named]
    differences, notes = _differences(subject, named)
    modules = dict(model.named_modules())
    shapes = {found.name: found.input_shape for found in traced_stages(model, subject.input_shape, norms.LAYER_TYPES)}
    spec, exact_notes = norms.spectral_norms(weights), []
    spec_fft = _exact(modules, names, shapes, spec, None, exact_notes, subject.stem)
    dist_spec = norms.spectral_norms(differences) if differences is not None else None
    dist_fft = (_exact(modules, names, shapes, dist_spec, differences, [], subject.stem)
                if differences is not None and spec_fft is not None else None)
    return LayerNorms(names, norms.frobenius_norms(weights), spec, spec_fft,
                      norms.frobenius_norms(differences) if differences is not None else None, dist_spec, dist_fft,
                      norms.count_weights(model), tuple(notes + exact_notes))


def _differences(subject: Subject, named: list) -> tuple[list | None, list[str]]:
    """``W_i - W0_i`` per layer (the folded initialization's, paired by name), or None and why."""
    init_path, init = subject.initialization
    if init is None:
        return None, [f"{subject.stem}: no distance from the initialization (fro_dist, dist_spec_init, spec_init, "
                      "the *_init bounds): no initialization to measure it from (a run's epoch-0 snapshot, or "
                      "--init-from)"]
    start = dict(norms.layer_weights(folded(init).model))
    if [name for name, _ in named] != list(start) or any(w.shape != start[n].shape for n, w in named):
        return None, [f"{subject.stem}: no distance from the initialization: its layers ({init_path}) differ"]
    return [weight - start[name].to(weight.device) for name, weight in named], []


def _exact(modules: dict, names: tuple, shapes: dict, spec: list[float], differences: list | None,
           notes: list[str], stem: str) -> list[float] | None:
    """Each layer's exact operator norm (of its weight, or of ``differences``); None, with a note, when a
    layer's kind has none here or the work would exceed ``conv_norms.WORK_LIMIT``."""
    kinds = {type(modules[name]).__name__ for name in names if not isinstance(modules[name], (nn.Conv2d, nn.Linear))}
    missing = [name for name in names if name not in shapes]
    work = sum(conv_norms.work(modules[name], shapes[name]) for name in names if name in shapes)
    if kinds or missing or work > conv_norms.WORK_LIMIT:
        why = (f"no exact norm for {', '.join(sorted(kinds))} layers" if kinds else
               f"{', '.join(missing)} did not run on the traced input" if missing else
               f"the exact convolution norms would take too long here (work {work:.2g} > {conv_norms.WORK_LIMIT:.0e})")
        notes.append(f"{stem}: no *_fft measures: {why}")
        return None
    found = []
    for i, name in enumerate(names):
        module = modules[name]
        if not isinstance(module, nn.Conv2d):
            found.append(spec[i])
            continue
        kernel = module.weight if differences is None else differences[i].reshape(module.weight.shape)
        found.append(conv_norms.conv_operator_norm(kernel, tuple(shapes[name][-2:]), groups=module.groups,
                                                   dilation=tuple(module.dilation)))
    return found


def weight_measures(found: LayerNorms) -> dict:
    """The data-free measures of :data:`MEASURES` but the path-norm (None where undefined)."""
    exact = found.spec_fft
    distance = found.dist_fro is not None
    return {"num_params": found.weights, "log_prod_fro": norms.log_product(found.fro),
            "log_sum_fro": norms.log_sum(found.fro), "log_prod_spec": norms.log_product(found.spec),
            "log_sum_spec": norms.log_sum(found.spec), "param_norm": norms.squared_sum(found.fro),
            "fro_over_spec": norms.ratio_sum(found.fro, found.spec),
            "fro_dist": norms.squared_sum(found.dist_fro) if distance else None,
            "dist_spec_init": norms.squared_sum(found.dist_spec) if distance else None,
            "log_prod_spec_fft": norms.log_product(exact) if exact else None,
            "log_sum_spec_fft": norms.log_sum(exact) if exact else None,
            "fro_over_spec_fft": norms.ratio_sum(found.fro, exact) if exact else None,
            "dist_spec_init_fft": norms.squared_sum(found.dist_spec_fft) if found.dist_spec_fft else None}


def path_norm(subject: Subject) -> float:
    """The path-norm of the folded network, once per subject."""
    if "path_norm" not in subject.derived:
        subject.derived["path_norm"] = norms.path_norm(folded(subject).model, subject.input_shape)
    return subject.derived["path_norm"]


class Norms(FieldMeasure):
    name = kind = "norms"
    needs_init = True
    metrics = tuple(MEASURES)

    def measure(self, subject: Subject) -> dict:
        found = layer_norms(subject)
        facts = fold_facts(subject)
        init_path, _ = subject.initialization
        return {"measures": weight_measures(found) | {"path_norm": path_norm(subject)}, "layers": found.layers(),
                "init_from": str(init_path) if init_path is not None else None,
                "batchnorm": facts["batchnorm"], "notes": facts["notes"] + list(found.notes)}


def make(settings: FieldSettings, missing: str | None = None) -> Norms:
    return Norms(settings)


DECLARATION = Declaration(
    "norms", kinds=("norms",), cli=CLI, table_rows=run_level_rows("norms"), metrics=tuple(MEASURES),
    sweep_arguments=sweep_arguments("norms"), done=latest_covered("norms"), measures=MEASURES,
    sweep_together=sweep_together,
    zoo=ZooUse(build=lambda probe: Norms()), make=make, baseline=True)
