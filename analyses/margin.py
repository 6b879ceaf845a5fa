"""The output margin and the margin-normalized norms (Jiang et al. 2020, appendix C; math:
``metrics/margin.py``, ``metrics/norms.py``), on the folded network.

The margin is the 10th percentile of ``logit of the label - largest other logit`` over the run's
training split (``--measure-samples``: a fixed draw of it, ``--measure-seed``, recorded), with the
labels the run trained on. The normalized forms divide the norms of the folded network
(``analyses/norms.py``) by the squared margin (``- 2 log|margin|`` in log form), as Jiang do. A model
without its training data (a zoo model) gets one line saying so.
"""
from __future__ import annotations

import math

import torch

from analyses.field import (
    CLI,
    ZOO_MISSING,
    FieldMeasure,
    FieldSettings,
    fold_facts,
    folded,
    latest_covered,
    missing_data,
    run_level_rows,
    sweep_arguments,
    sweep_together,
    training_subset,
)
from analyses.norms import EXACT, JIANG, LayerNorms, layer_norms, path_norm, trained, weight_measures
from analyses.registry import Declaration, ZooUse
from analyses.subject import Subject
from metrics import norms
from metrics.margin import PERCENTILE, margin_percentile, output_margins

OVER_MARGIN = "divided by the squared margin (minus 2 log|margin|)"
MEASURES = {
    "margin": trained(+1, f"{PERCENTILE}th percentile over the training samples of the label's logit minus the "
                      "largest other", f"{JIANG}, eq. 22 (its inverse square is the complexity measure)", None),
    "inverse_margin": trained(-1, "1 / margin^2", f"{JIANG}, eq. 22", "sqrt"),
    "log_prod_spec_over_margin": trained(-1, f"log_prod_spec {OVER_MARGIN}", f"{JIANG}, eq. 31 (Bartlett et al. "
                                         "2017's spectral bound)", "log"),
    "log_sum_spec_over_margin": trained(-1, f"log_sum_spec, its mean term {OVER_MARGIN}", f"{JIANG}, eq. 34", "log"),
    "log_prod_fro_over_margin": trained(-1, f"log_prod_fro {OVER_MARGIN}", f"{JIANG}, eq. 36", "log"),
    "log_sum_fro_over_margin": trained(-1, f"log_sum_fro, its mean term {OVER_MARGIN}", f"{JIANG}, eq. 38", "log"),
    "path_norm_over_margin": trained(-1, f"path_norm {OVER_MARGIN}", f"{JIANG}, eq. 43", "sqrt"),
    "spec_init": trained(-1, "log_prod_spec_over_margin + log sum_i ||W_i - W0_i||_F^2 / ||W_i||_2^2",
                         f"{JIANG}, eq. 29 (Bartlett et al. 2017, distance from the initialization)", "log"),
    "spec_orig": trained(-1, "log_prod_spec_over_margin + log fro_over_spec", f"{JIANG}, eq. 30 (Bartlett et al. 2017)",
                         "log"),
    "log_prod_spec_fft_over_margin": trained(-1, f"log_prod_spec_fft {OVER_MARGIN}", f"{JIANG}, eq. 31, {EXACT}",
                                             "log"),
    "log_sum_spec_fft_over_margin": trained(-1, f"log_sum_spec_fft, its mean term {OVER_MARGIN}",
                                            f"{JIANG}, eq. 34, {EXACT}", "log"),
    "spec_init_fft": trained(-1, "spec_init with the exact convolution norms", f"{JIANG}, eq. 29, {EXACT}", "log"),
    "spec_orig_fft": trained(-1, "spec_orig with the exact convolution norms", f"{JIANG}, eq. 30, {EXACT}", "log"),
}


@torch.no_grad()
def logits_of(model, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(inputs[start:start + batch_size]) for start in range(0, len(inputs), batch_size)])


def normalized(found: LayerNorms, margin: float, path: float) -> dict:
    """The margin-normalized measures of the folded network's norms ``found`` (None where undefined)."""
    if margin == 0:
        return {}
    log_square = 2.0 * math.log(abs(margin))
    layers = len(found.names)
    plain = weight_measures(found)
    measures = {"inverse_margin": 1.0 / margin**2, "path_norm_over_margin": path / margin**2}
    for suffix, spec in (("", found.spec), ("_fft", found.spec_fft)):
        if spec is None:
            continue
        over = plain[f"log_prod_spec{suffix}"] - log_square
        measures |= {f"log_prod_spec{suffix}_over_margin": over,
                     f"log_sum_spec{suffix}_over_margin": plain[f"log_sum_spec{suffix}"] - log_square / layers,
                     f"spec_orig{suffix}": over + math.log(norms.ratio_sum(found.fro, spec))}
        if found.dist_fro is not None:
            measures[f"spec_init{suffix}"] = over + math.log(norms.ratio_sum(found.dist_fro, spec))
    return measures | {"log_prod_fro_over_margin": plain["log_prod_fro"] - log_square,
                       "log_sum_fro_over_margin": plain["log_sum_fro"] - log_square / layers}


class Margin(FieldMeasure):
    name = kind = "margin"
    metrics = tuple(MEASURES)
    needs_init = True  # spec_init
    uses_training_data = True

    def measure(self, subject: Subject) -> dict:
        if self.missing is not None:
            return {"measures": {}} | missing_data("margin", subject, self.missing, "the norms are data-free")
        inputs, labels, record = training_subset(subject, self.settings.measure_samples, self.settings.seed)
        margins = output_margins(logits_of(folded(subject).model, inputs, self.settings.batch_size), labels)
        margin = margin_percentile(margins, PERCENTILE)
        found = layer_norms(subject)
        facts = fold_facts(subject)
        return {"measures": {"margin": margin} | normalized(found, margin, path_norm(subject)),
                "training_subset": record, "percentile": PERCENTILE,
                "misclassified": float((margins <= 0).float().mean()), "batchnorm": facts["batchnorm"],
                "notes": facts["notes"] + list(found.notes)}


def make(settings: FieldSettings, missing: str | None = None) -> Margin:
    return Margin(settings, missing=missing)


DECLARATION = Declaration(
    "margin", kinds=("margin",), cli=CLI, table_rows=run_level_rows("margin"), metrics=tuple(MEASURES),
    sweep_arguments=sweep_arguments("margin"), done=latest_covered("margin"), measures=MEASURES,
    sweep_together=sweep_together,
    zoo=ZooUse(build=lambda probe: Margin(missing=ZOO_MISSING)), make=make, baseline=True)
