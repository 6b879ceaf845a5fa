"""Norm-based measures of the weights (Jiang et al. 2020, appendix C; math: ``metrics/norms.py``).

Data-free: the parameter count, the log product and log "sum" of the layers' squared Frobenius and
spectral norms, the Frobenius distance from the initialization (the run's epoch-0 snapshot, or
``--init-from``; absent, with one line saying so, for a model without one: a zoo model, a random
init) and the path-norm. Batch normalizations are folded into the layer before them first. The
margin-normalized forms are the margin analysis's (``analyses/margin.py``), which has both.
"""
from __future__ import annotations

from analyses.field import (
    CLI,
    FieldMeasure,
    FieldSettings,
    latest_covered,
    run_level_rows,
    sweep_arguments,
    sweep_together,
)
from analyses.registry import Declaration, Measure, ZooUse
from analyses.subject import Subject
from metrics import norms

JIANG = "Jiang et al. 2020 (Fantastic Generalization Measures), appendix C"
LAYERS = "over the conv and linear layers (weights as out x in*kh*kw matrices, batch norms folded)"
MEASURES = {
    "num_params": Measure(-1, "every parameter of the model", f"{JIANG}, eq. 20: a VC-style capacity"),
    "log_prod_fro": Measure(-1, f"sum of log ||W_i||_F^2 {LAYERS}", f"{JIANG}, eq. 37"),
    "log_sum_fro": Measure(-1, f"log(d) + mean of log ||W_i||_F^2 {LAYERS}", f"{JIANG}, eq. 39"),
    "log_prod_spec": Measure(-1, f"sum of log ||W_i||_2^2 {LAYERS}", f"{JIANG}, eq. 32"),
    "log_sum_spec": Measure(-1, f"log(d) + mean of log ||W_i||_2^2 {LAYERS}", f"{JIANG}, eq. 35"),
    "fro_dist": Measure(-1, f"sum of ||W_i - W0_i||_F^2 {LAYERS}, W0 the epoch-0 snapshot",
                        f"{JIANG}, eq. 40 (Nagarajan & Kolter 2019)"),
    "path_norm": Measure(-1, "every parameter squared, an all-ones input forwarded, outputs summed",
                         f"{JIANG}, eq. 44 (Neyshabur et al. 2015): among the best in Jiang's study"),
}


def weight_norms(model) -> dict:
    """``{"layers": [{name, fro, spec}], "measures": {...}}`` of a model's data-free norms (no distance)."""
    folded = norms.fold_batchnorm(model)
    named = norms.layer_weights(folded)
    weights = [weight for _, weight in named]
    fro, spec = norms.frobenius_norms(weights), norms.spectral_norms(weights)
    measures = {"num_params": norms.count_parameters(model), "log_prod_fro": norms.log_product(fro),
                "log_sum_fro": norms.log_sum(fro), "log_prod_spec": norms.log_product(spec),
                "log_sum_spec": norms.log_sum(spec)}
    layers = [{"name": name, "fro": f, "spec": s} for (name, _), f, s in zip(named, fro, spec)]
    return {"layers": layers, "measures": measures, "folded": folded}


class Norms(FieldMeasure):
    name = kind = "norms"
    needs_init = True
    metrics = tuple(MEASURES)

    def measure(self, subject: Subject) -> dict:
        found = weight_norms(subject.model)
        folded = found.pop("folded")
        found["measures"]["path_norm"] = norms.path_norm(folded, subject.input_shape)
        init_path, init = subject.initialization
        notes = []
        if init is None:
            notes.append(f"{subject.stem}: no fro_dist: no initialization to measure the distance from (a run's "
                         "epoch-0 snapshot, or --init-from)")
        else:
            init_weights = [w for _, w in norms.layer_weights(norms.fold_batchnorm(init.model))]
            found["measures"]["fro_dist"] = norms.distance_from_init([w for _, w in norms.layer_weights(folded)],
                                                                     init_weights)
        return found | {"init_from": str(init_path) if init_path is not None else None, "notes": notes}


def make(settings: FieldSettings, missing: str | None = None) -> Norms:
    return Norms(settings)


DECLARATION = Declaration(
    "norms", kinds=("norms",), cli=CLI, table_rows=run_level_rows("norms"), metrics=tuple(MEASURES),
    sweep_arguments=sweep_arguments("norms"), done=latest_covered("norms"), measures=MEASURES,
    sweep_together=sweep_together,
    zoo=ZooUse(build=lambda probe: Norms()), make=make, baseline=True)
