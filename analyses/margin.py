"""The output margin and the margin-normalized norms (Jiang et al. 2020, appendix C; math:
``metrics/margin.py``, ``metrics/norms.py``).

The margin is the 10th percentile of ``logit of the label - largest other logit`` over a fixed
draw of the training set (``--margin-samples``, ``--measure-seed``, recorded), with the labels the
run trained on. The normalized forms divide the norms by the squared margin (``- 2 log|margin|`` in
log form), as Jiang do. A model without its training data (a zoo model) gets one line saying so.
"""
from __future__ import annotations

import math

import torch

from analyses.field import (
    CLI,
    ZOO_MISSING,
    FieldMeasure,
    FieldSettings,
    latest_covered,
    missing_data,
    run_level_rows,
    sweep_arguments,
    sweep_together,
    training_subset,
)
from analyses.norms import JIANG, weight_norms
from analyses.registry import Declaration, Measure, ZooUse
from analyses.subject import Subject
from metrics import norms
from metrics.margin import PERCENTILE, margin_percentile, output_margins

OVER_MARGIN = "divided by the squared margin (minus 2 log|margin|)"
MEASURES = {
    "margin": Measure(+1, f"{PERCENTILE}th percentile over training samples of the label's logit minus the "
                      "largest other", f"{JIANG}, eq. 22 (its inverse square is the complexity measure)"),
    "inverse_margin": Measure(-1, "1 / margin^2", f"{JIANG}, eq. 22"),
    "log_prod_spec_over_margin": Measure(-1, f"log_prod_spec {OVER_MARGIN}", f"{JIANG}, eq. 31 (Bartlett et al. "
                                         "2017's spectral bound)"),
    "log_sum_spec_over_margin": Measure(-1, f"log_sum_spec, its mean term {OVER_MARGIN}", f"{JIANG}, eq. 34"),
    "log_prod_fro_over_margin": Measure(-1, f"log_prod_fro {OVER_MARGIN}", f"{JIANG}, eq. 36"),
    "log_sum_fro_over_margin": Measure(-1, f"log_sum_fro, its mean term {OVER_MARGIN}", f"{JIANG}, eq. 38"),
    "path_norm_over_margin": Measure(-1, f"path_norm {OVER_MARGIN}", f"{JIANG}, eq. 43"),
}


@torch.no_grad()
def logits_of(model, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(inputs[start:start + batch_size]) for start in range(0, len(inputs), batch_size)])


def normalized(found: dict, margin: float, path_norm: float) -> dict:
    """The margin-normalized measures of the norms ``found`` (``weight_norms``'s measures)."""
    if margin == 0:
        return {}
    log_square = 2.0 * math.log(abs(margin))
    layers = len(found["layers"])
    measures = found["measures"]
    return {"inverse_margin": 1.0 / margin**2,
            "log_prod_spec_over_margin": measures["log_prod_spec"] - log_square,
            "log_sum_spec_over_margin": measures["log_sum_spec"] - log_square / layers,
            "log_prod_fro_over_margin": measures["log_prod_fro"] - log_square,
            "log_sum_fro_over_margin": measures["log_sum_fro"] - log_square / layers,
            "path_norm_over_margin": path_norm / margin**2}


class Margin(FieldMeasure):
    name = kind = "margin"
    metrics = tuple(MEASURES)
    uses_training_data = True

    def measure(self, subject: Subject) -> dict:
        if self.missing is not None:
            return {"measures": {}} | missing_data("margin", subject, self.missing, "the norms are data-free")
        inputs, labels, record = training_subset(subject, self.settings.margin_samples, self.settings.seed)
        margins = output_margins(logits_of(subject.model, inputs, self.settings.batch_size), labels)
        margin = margin_percentile(margins, PERCENTILE)
        found = weight_norms(subject.model)
        path = norms.path_norm(found["folded"], subject.input_shape)
        return {"measures": {"margin": margin} | normalized(found, margin, path), "training_subset": record,
                "percentile": PERCENTILE, "misclassified": float((margins <= 0).float().mean()), "notes": []}


def make(settings: FieldSettings, missing: str | None = None) -> Margin:
    return Margin(settings, missing=missing)


DECLARATION = Declaration(
    "margin", kinds=("margin",), cli=CLI, table_rows=run_level_rows("margin"), metrics=tuple(MEASURES),
    sweep_arguments=sweep_arguments("margin"), done=latest_covered("margin"), measures=MEASURES,
    sweep_together=sweep_together,
    zoo=ZooUse(build=lambda probe: Margin(missing=ZOO_MISSING)), make=make, baseline=True)
